//! Block-placed file data: a sink that writes each file's bytes straight into block-aligned
//! runs of one output file (an ext4 image's data area) while the layer streams, and the map
//! the spool reads them back through.
//!
//! ```text
//! output file  ... | a:0 | a:1 | a:3 | b:0 | c:0 | c:1 | ...      (a:2 is all zeros: a hole)
//!                    ^ first block              next block ^  (advances in stream order)
//! BlockMap: files[content] = run range;  runs = (logical block, physical block, length)
//!           a -> (0, p, 2) (3, p+2, 1)    b -> (0, p+3, 1)    c -> (0, p+4, 2)
//! ```
//!
//! Blocks are handed out in stream order, so the same layers give the same placement. A file
//! whose every block is zero takes no block at all. Data that a later entry or layer makes
//! unreachable stays where it was written; the writer that owns the file frees it (for ext4:
//! a hole punched, the blocks left free in the bitmap). Writes go out in runs of up to
//! [`FLUSH`] bytes, each one positioned write.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use super::build::{DataSource, SinkError};
use super::error::{EntryError, LayerError};
use super::spool::ContentRef;
use super::stream::PlaceData;

/// Bytes buffered before a positioned write.
const FLUSH: usize = 1 << 20;

/// A run of one file's blocks: `len` blocks from logical block `logical` of the file, stored
/// from physical block `start` of the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// First logical block in the file.
    pub logical: u32,
    /// First physical block in the output file.
    pub start: u64,
    /// Number of blocks.
    pub len: u32,
}

/// Where block-placed files live: one output file, their runs, and the blocks handed out.
#[derive(Debug)]
pub struct BlockMap {
    file: Arc<File>,
    block_size: u32,
    runs: Vec<Run>,
    /// Content index -> `runs[a..b]`.
    files: Vec<(u32, u32)>,
    first: u64,
    end: u64,
}

impl BlockMap {
    /// The output file.
    pub fn file(&self) -> &Arc<File> {
        &self.file
    }

    /// Block size in bytes.
    pub fn block_size(&self) -> u32 {
        self.block_size
    }

    /// The first block this map could hand out.
    pub fn first_block(&self) -> u64 {
        self.first
    }

    /// One past the last block handed out.
    pub fn end_block(&self) -> u64 {
        self.end
    }

    /// Number of files placed (content indexes are `0..files()`).
    pub fn files(&self) -> usize {
        self.files.len()
    }

    /// The runs of content index `i` (sorted by logical block; holes between them).
    pub fn runs_of(&self, i: usize) -> &[Run] {
        self.files
            .get(i)
            .map_or(&[][..], |&(a, b)| &self.runs[a as usize..b as usize])
    }

    /// Reads up to `buf.len()` bytes of a placed file of `len` bytes from `pos` (holes read
    /// as zeros).
    pub(crate) fn read_at(
        &self,
        index: u64,
        len: u64,
        pos: u64,
        buf: &mut [u8],
    ) -> io::Result<usize> {
        if pos >= len || buf.is_empty() {
            return Ok(0);
        }
        let runs = usize::try_from(index)
            .ok()
            .filter(|&i| i < self.files.len())
            .map(|i| self.runs_of(i))
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no such placed file"))?;
        let bs = u64::from(self.block_size);
        let want = usize::try_from(len - pos)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let block = pos / bs;
        // the run holding `block`, or the first run after it
        let i = runs.partition_point(|r| u64::from(r.logical) + u64::from(r.len) <= block);
        match runs.get(i) {
            Some(r) if u64::from(r.logical) <= block => {
                let run_end = (u64::from(r.logical) + u64::from(r.len)) * bs;
                let n = want.min(usize::try_from(run_end - pos).unwrap_or(usize::MAX));
                let at = r.start * bs + (pos - u64::from(r.logical) * bs);
                self.file.read_at(&mut buf[..n], at)
            }
            next => {
                let hole_end = next.map_or(len, |r| u64::from(r.logical) * bs).min(len);
                let n = want.min(usize::try_from(hole_end - pos).unwrap_or(usize::MAX));
                buf[..n].fill(0);
                Ok(n)
            }
        }
    }
}

/// Places each file's data into consecutive blocks of the output file from a first block on,
/// skipping all-zero blocks.
#[derive(Debug)]
pub struct BlockSink {
    map: BlockMap,
    segment: u32,
    limit: u64,
    /// Data of the blocks `pending_start..map.end` not written yet.
    pending: Vec<u8>,
    pending_start: u64,
    /// The current file's partial block.
    partial: Vec<u8>,
    /// Index in `map.runs` of the current file's first run (runs before it are other files').
    file_runs: usize,
}

impl BlockSink {
    /// A sink placing data from block `first` of `file`, in blocks of `block_size` bytes
    /// (a power of two from 512 to 65536), never at or past block `limit` when one is given.
    /// Contents it places are registered as spool segment `segment`.
    pub fn new(
        file: Arc<File>,
        block_size: u32,
        first: u64,
        limit: Option<u64>,
        segment: u32,
    ) -> Self {
        assert!(
            block_size.is_power_of_two() && (512..=65536).contains(&block_size),
            "block size {block_size}"
        );
        BlockSink {
            map: BlockMap {
                file,
                block_size,
                runs: Vec::new(),
                files: Vec::new(),
                first,
                end: first,
            },
            segment,
            limit: limit.unwrap_or(u64::MAX),
            pending: Vec::with_capacity(FLUSH),
            pending_start: first,
            partial: Vec::with_capacity(block_size as usize),
            file_runs: 0,
        }
    }

    /// The spool segment index of the contents this sink places.
    pub fn segment(&self) -> u32 {
        self.segment
    }

    /// Places one file's data (all that `data` yields) and returns its content reference.
    pub fn place(&mut self, data: &mut dyn DataSource) -> Result<ContentRef, SinkError> {
        let index = self.map.files.len() as u64;
        let first_run = self.map.runs.len() as u32;
        self.file_runs = self.map.runs.len();
        let mut w = FileWriter {
            sink: self,
            logical: 0,
            error: None,
        };
        let copied = data.copy_to(&mut w);
        let (logical, error) = (w.logical, w.error.take());
        if let Some(e) = error {
            return Err(e);
        }
        let len = copied?;
        let mut logical = logical;
        if !self.partial.is_empty() {
            let bs = self.map.block_size as usize;
            let mut block = std::mem::take(&mut self.partial);
            block.resize(bs, 0);
            self.block(&block, &mut logical)?;
            block.clear();
            self.partial = block;
        }
        let end_run = self.map.runs.len() as u32;
        self.map.files.push((first_run, end_run));
        Ok(ContentRef {
            segment: self.segment,
            offset: index,
            len,
        })
    }

    /// Writes what is buffered and returns the map of everything placed.
    pub fn finish(mut self) -> Result<BlockMap, LayerError> {
        self.flush().map_err(LayerError::Spool)?;
        Ok(self.map)
    }

    /// Takes one whole block of the current file (logical block `*logical`).
    fn block(&mut self, block: &[u8], logical: &mut u32) -> Result<(), SinkError> {
        let this = *logical;
        *logical = logical.checked_add(1).ok_or_else(|| {
            let max = (u64::from(u32::MAX) + 1) * u64::from(self.map.block_size);
            SinkError::Entry(EntryError::FileTooLarge { max })
        })?;
        if is_zero(block) {
            return Ok(());
        }
        let physical = self.map.end;
        if physical >= self.limit {
            let limit = self.limit * u64::from(self.map.block_size);
            return Err(SinkError::Entry(EntryError::OutputFull { limit }));
        }
        if self.pending.len() + block.len() > FLUSH {
            self.flush()
                .map_err(|e| SinkError::Layer(LayerError::Spool(e)))?;
        }
        debug_assert_eq!(
            self.pending_start + (self.pending.len() / block.len()) as u64,
            physical
        );
        self.map.end += 1;
        if let Some(run) = push_run(&mut self.map.runs[self.file_runs..], this, physical) {
            self.map.runs.push(run);
        }
        self.pending.extend_from_slice(block);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.pending.is_empty() {
            let at = self.pending_start * u64::from(self.map.block_size);
            self.map.file.write_all_at(&self.pending, at)?;
            self.pending.clear();
        }
        self.pending_start = self.map.end;
        Ok(())
    }
}

impl PlaceData for BlockSink {
    fn place_data(&mut self, data: &mut dyn DataSource) -> Result<ContentRef, SinkError> {
        self.place(data)
    }
}

/// Adds a block to the current file's runs (`runs`, none of another file's): extends the last
/// run when both logically and physically contiguous, else returns the new run to append.
/// (A file whose data starts after a hole at logical block N may follow a file whose last run
/// ends at logical N just before it: contiguous both ways, but not the same file.)
fn push_run(runs: &mut [Run], logical: u32, start: u64) -> Option<Run> {
    if let Some(last) = runs.last_mut()
        && last.logical + last.len == logical
        && last.start + u64::from(last.len) == start
        && last.len < u32::MAX
    {
        last.len += 1;
        return None;
    }
    Some(Run {
        logical,
        start,
        len: 1,
    })
}

fn is_zero(block: &[u8]) -> bool {
    // OR-folding fixed chunks vectorises; block sizes are multiples of 64
    block
        .chunks(64)
        .all(|c| c.iter().fold(0u8, |a, &b| a | b) == 0)
}

/// The `Write` side of one file's placement: whole blocks go straight to the sink; a trailing
/// partial block waits in `sink.partial`.
struct FileWriter<'a> {
    sink: &'a mut BlockSink,
    logical: u32,
    error: Option<SinkError>,
}

impl Write for FileWriter<'_> {
    fn write(&mut self, mut buf: &[u8]) -> io::Result<usize> {
        let n = buf.len();
        let bs = self.sink.map.block_size as usize;
        let fail = |this: &mut Self, e: SinkError| {
            this.error = Some(e);
            io::Error::other("block placement failed")
        };
        if !self.sink.partial.is_empty() {
            let take = (bs - self.sink.partial.len()).min(buf.len());
            self.sink.partial.extend_from_slice(&buf[..take]);
            buf = &buf[take..];
            if self.sink.partial.len() == bs {
                let block = std::mem::take(&mut self.sink.partial);
                let r = self.sink.block(&block, &mut self.logical);
                self.sink.partial = block;
                self.sink.partial.clear();
                r.map_err(|e| fail(self, e))?;
            }
        }
        while buf.len() >= bs {
            let (block, rest) = buf.split_at(bs);
            self.sink
                .block(block, &mut self.logical)
                .map_err(|e| fail(self, e))?;
            buf = rest;
        }
        self.sink.partial.extend_from_slice(buf);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Bytes(Vec<u8>);

    impl DataSource for Bytes {
        fn copy_to(&mut self, w: &mut dyn Write) -> Result<u64, LayerError> {
            // odd-sized writes exercise the partial-block path
            for chunk in self.0.chunks(1000) {
                w.write_all(chunk).map_err(LayerError::Spool)?;
            }
            Ok(self.0.len() as u64)
        }
    }

    fn read_all(map: &BlockMap, c: &ContentRef) -> Vec<u8> {
        let mut out = vec![0u8; c.len as usize];
        let mut pos = 0;
        while pos < out.len() {
            let n = map
                .read_at(c.offset, c.len, pos as u64, &mut out[pos..])
                .unwrap();
            assert!(n > 0);
            pos += n;
        }
        out
    }

    #[test]
    fn places_in_stream_order_with_holes_and_reads_back() {
        let file = Arc::new(tempfile::tempfile().unwrap());
        let mut sink = BlockSink::new(file, 1024, 10, None, 3);
        let mut a = vec![7u8; 4096 + 10];
        a[2048..3072].fill(0); // logical block 2: a hole
        let zeros = vec![0u8; 5000];
        let b = b"short".to_vec();
        let ca = sink.place(&mut Bytes(a.clone())).unwrap();
        let cz = sink.place(&mut Bytes(zeros.clone())).unwrap();
        let cb = sink.place(&mut Bytes(b.clone())).unwrap();
        let ce = sink.place(&mut Bytes(Vec::new())).unwrap();
        let map = sink.finish().unwrap();
        assert_eq!((ca.segment, ca.offset, ca.len), (3, 0, 4106));
        assert_eq!(
            map.runs_of(0),
            [
                Run {
                    logical: 0,
                    start: 10,
                    len: 2
                },
                Run {
                    logical: 3,
                    start: 12,
                    len: 2
                }
            ]
        );
        assert!(map.runs_of(1).is_empty(), "all-zero file takes no block");
        assert_eq!(
            map.runs_of(2),
            [Run {
                logical: 0,
                start: 14,
                len: 1
            }]
        );
        assert_eq!(map.end_block(), 15);
        assert_eq!(read_all(&map, &ca), a);
        assert_eq!(read_all(&map, &cz), zeros);
        assert_eq!(read_all(&map, &cb), b);
        assert_eq!(read_all(&map, &ce), b"");
        let mut raw = vec![0u8; 1024];
        map.file().read_exact_at(&mut raw, 14 * 1024).unwrap();
        assert_eq!(&raw[..5], b"short");
        assert!(
            raw[5..].iter().all(|&x| x == 0),
            "tail of the last block is zero"
        );
    }

    #[test]
    fn limit_and_flush_boundaries() {
        let file = Arc::new(tempfile::tempfile().unwrap());
        let mut sink = BlockSink::new(file.clone(), 4096, 0, Some(600), 1);
        let big: Vec<u8> = (0..(FLUSH * 2 + 4096 * 3 + 7))
            .map(|i| (i % 251) as u8 | 1)
            .collect();
        let c = sink.place(&mut Bytes(big.clone())).unwrap();
        let map = sink.finish().unwrap();
        assert_eq!(map.runs_of(0).len(), 1);
        assert!(read_all(&map, &c) == big, "read back differs");
        let mut sink = BlockSink::new(file, 4096, 0, Some(2), 1);
        let err = sink.place(&mut Bytes(vec![1u8; 3 * 4096])).unwrap_err();
        assert!(matches!(
            err,
            SinkError::Entry(EntryError::OutputFull { limit: 8192 })
        ));
    }

    #[test]
    fn a_file_starting_with_a_hole_keeps_its_run_after_a_one_block_file() {
        // `a` ends at logical block 1, physical p; `b`'s first data block is its logical
        // block 1, placed at p + 1: contiguous both ways, but another file's run.
        let file = Arc::new(tempfile::tempfile().unwrap());
        let mut sink = BlockSink::new(file, 1024, 10, None, 1);
        let a = b"x".to_vec();
        let mut b = vec![0u8; 2048];
        b[1500] = 1;
        let ca = sink.place(&mut Bytes(a.clone())).unwrap();
        let cb = sink.place(&mut Bytes(b.clone())).unwrap();
        let map = sink.finish().unwrap();
        assert_eq!(
            map.runs_of(0),
            [Run {
                logical: 0,
                start: 10,
                len: 1
            }]
        );
        assert_eq!(
            map.runs_of(1),
            [Run {
                logical: 1,
                start: 11,
                len: 1
            }]
        );
        assert_eq!(read_all(&map, &ca), a);
        assert!(read_all(&map, &cb) == b, "b read back differs");
    }
}
