//! The spool: where file contents live while the merged tree is built.
//!
//! Each layer's regular-file bytes are appended once to a segment (a scratch file the converter
//! names itself, memory in tests, or block-aligned runs of an output file placed by a
//! [`BlockSink`](super::blocks::BlockSink)); the tree records a [`ContentRef`] per file.
//! Writers read the survivors back with positioned reads, so contents are never held in RAM.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;

use super::blocks::BlockMap;

/// Where one file's bytes are: a segment and a byte range in it (in a block-placed segment,
/// `offset` is the file's index in its [`BlockMap`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContentRef {
    /// Index of the segment in the [`Spool`].
    pub segment: u32,
    /// Byte offset in the segment.
    pub offset: u64,
    /// Length in bytes (the file size).
    pub len: u64,
}

impl ContentRef {
    /// An empty file's content.
    pub const EMPTY: ContentRef = ContentRef {
        segment: 0,
        offset: 0,
        len: 0,
    };
}

/// One append-only segment.
#[derive(Debug)]
pub enum Segment {
    /// A scratch file (deleted or in a temp dir owned by the converter).
    File {
        /// The open file.
        file: File,
        /// Its current length (the append position).
        len: u64,
    },
    /// In-memory bytes (tests, tiny layers).
    Memory(Vec<u8>),
    /// Files placed block by block into an output file (read-only here).
    Blocks(BlockMap),
}

/// A set of segments holding file contents.
#[derive(Debug)]
pub struct Spool {
    segments: Vec<Segment>,
}

impl Default for Spool {
    fn default() -> Self {
        Spool::new()
    }
}

impl Spool {
    /// An empty spool; segment 0 is an empty in-memory segment (used by [`ContentRef::EMPTY`]).
    pub fn new() -> Self {
        Spool {
            segments: vec![Segment::Memory(Vec::new())],
        }
    }

    /// Adds a segment and returns its index.
    pub fn add_segment(&mut self, seg: Segment) -> u32 {
        self.segments.push(seg);
        u32::try_from(self.segments.len() - 1).expect("fewer than 2^32 segments")
    }

    /// Adds a file-backed segment (the file may already hold data: `len` is taken from it).
    pub fn add_file(&mut self, file: File) -> io::Result<u32> {
        let len = file.metadata()?.len();
        Ok(self.add_segment(Segment::File { file, len }))
    }

    /// Appends bytes to a segment and returns where they landed.
    pub fn append(&mut self, segment: u32, data: &[u8]) -> io::Result<ContentRef> {
        let seg = self.segment_mut(segment)?;
        let offset = match seg {
            Segment::File { file, len } => {
                let off = *len;
                file.write_all_at(data, off)?;
                *len += data.len() as u64;
                off
            }
            Segment::Memory(v) => {
                let off = v.len() as u64;
                v.extend_from_slice(data);
                off
            }
            Segment::Blocks(_) => return Err(read_only()),
        };
        Ok(ContentRef {
            segment,
            offset,
            len: data.len() as u64,
        })
    }

    /// Appends everything `r` yields to a segment (streaming, bounded buffer).
    pub fn append_from(&mut self, segment: u32, r: &mut dyn Read) -> io::Result<ContentRef> {
        let seg = self.segment_mut(segment)?;
        let mut buf = vec![0u8; 256 * 1024];
        let (start, total) = match seg {
            Segment::File { file, len } => {
                let start = *len;
                loop {
                    let n = read_retry(r, &mut buf)?;
                    if n == 0 {
                        break;
                    }
                    file.write_all_at(&buf[..n], *len)?;
                    *len += n as u64;
                }
                (start, *len - start)
            }
            Segment::Memory(v) => {
                let start = v.len() as u64;
                loop {
                    let n = read_retry(r, &mut buf)?;
                    if n == 0 {
                        break;
                    }
                    v.write_all(&buf[..n])?;
                }
                (start, v.len() as u64 - start)
            }
            Segment::Blocks(_) => return Err(read_only()),
        };
        Ok(ContentRef {
            segment,
            offset: start,
            len: total,
        })
    }

    /// Reads up to `buf.len()` bytes of `content` starting at `pos` within it.
    pub fn read_at(&self, content: &ContentRef, pos: u64, buf: &mut [u8]) -> io::Result<usize> {
        if pos >= content.len {
            return Ok(0);
        }
        let avail = content.len - pos;
        let want = usize::try_from(avail).unwrap_or(usize::MAX).min(buf.len());
        let at = content.offset + pos;
        match self.segment(content.segment)? {
            Segment::File { file, .. } => file.read_at(&mut buf[..want], at),
            Segment::Memory(v) => {
                let start = usize::try_from(at).map_err(|_| out_of_range())?;
                let src = v.get(start..start + want).ok_or_else(out_of_range)?;
                buf[..want].copy_from_slice(src);
                Ok(want)
            }
            Segment::Blocks(map) => map.read_at(content.offset, content.len, pos, buf),
        }
    }

    /// The backing file and absolute byte offset of `content` when it lives in a file segment
    /// (lets writers copy it in the kernel, e.g. with `copy_file_range`).
    pub fn file_range(&self, content: &ContentRef) -> Option<(&File, u64)> {
        match self.segments.get(content.segment as usize)? {
            Segment::File { file, .. } => Some((file, content.offset)),
            Segment::Memory(_) | Segment::Blocks(_) => None,
        }
    }

    /// Every segment with its index.
    pub fn segments(&self) -> impl Iterator<Item = (u32, &Segment)> {
        (0u32..).zip(self.segments.iter())
    }

    /// The block map `content` was placed through, when it lives in a block-placed segment.
    pub fn block_map(&self, content: &ContentRef) -> Option<&BlockMap> {
        match self.segments.get(content.segment as usize)? {
            Segment::Blocks(map) => Some(map),
            _ => None,
        }
    }

    /// A sequential reader over one file's content.
    pub fn reader<'a>(&'a self, content: &ContentRef) -> ContentReader<'a> {
        ContentReader {
            spool: self,
            content: *content,
            pos: 0,
        }
    }

    fn segment(&self, i: u32) -> io::Result<&Segment> {
        self.segments.get(i as usize).ok_or_else(out_of_range)
    }

    fn segment_mut(&mut self, i: u32) -> io::Result<&mut Segment> {
        self.segments.get_mut(i as usize).ok_or_else(out_of_range)
    }
}

fn out_of_range() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "content reference outside the spool",
    )
}

fn read_only() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "a block-placed segment cannot be appended to",
    )
}

fn read_retry(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match r.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Sequential reader of one spooled file.
#[derive(Debug)]
pub struct ContentReader<'a> {
    spool: &'a Spool,
    content: ContentRef,
    pos: u64,
}

impl Read for ContentReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.spool.read_at(&self.content, self.pos, buf)?;
        if n == 0 && self.pos < self.content.len && !buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "spool segment truncated",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_and_file_segments_round_trip() {
        let mut spool = Spool::new();
        let m = spool.add_segment(Segment::Memory(Vec::new()));
        let f = spool.add_file(tempfile::tempfile().unwrap()).unwrap();
        for seg in [m, f] {
            let a = spool.append(seg, b"hello").unwrap();
            let b = spool.append_from(seg, &mut &b"world!"[..]).unwrap();
            let mut out = String::new();
            spool.reader(&a).read_to_string(&mut out).unwrap();
            assert_eq!(out, "hello");
            out.clear();
            spool.reader(&b).read_to_string(&mut out).unwrap();
            assert_eq!(out, "world!");
            let mut two = [0u8; 2];
            assert_eq!(spool.read_at(&b, 4, &mut two).unwrap(), 2);
            assert_eq!(&two, b"d!");
        }
        let mut empty = Vec::new();
        spool
            .reader(&ContentRef::EMPTY)
            .read_to_end(&mut empty)
            .unwrap();
        assert!(empty.is_empty());
    }
}
