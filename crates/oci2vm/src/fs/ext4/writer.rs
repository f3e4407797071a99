//! The writing pass: an image whose file data is placed first (while the layers stream, or
//! copied from a spool), then the metadata the plan computes from the final tree.
//!
//! Spec: <https://www.kernel.org/doc/html/latest/filesystems/ext4/>
//!
//! ```text
//! create   temp file beside the output; data area from block `data start` (after the
//!          descriptor table and its reserve)
//! stream   BlockSink (layers::blocks): file data into consecutive blocks, zeros as holes
//! finish   number inodes -> claim placed runs, copy data that lives elsewhere -> punch
//!          what no file uses -> place metadata after the data -> one sequential pass:
//!          bitmaps | inode tables (used part) | journal | dirs, symlinks | xattr blocks |
//!          extent trees; then descriptors and superblock at the start -> rename
//! ```
//!
//! The image is written to a temporary file next to the output and renamed on success; on
//! failure (or when an [`Ext4Image`] is dropped unfinished) the temporary file is removed and
//! nothing appears at the output path.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::csum;
use super::extent::{self, Extent};
use super::geometry::{Geometry, auto_block_size, default_size};
use super::inode::{self, DiskInode, EXTENTS_FL, INDEX_FL};
use super::layout::{self, DataSummary, LPF_INO, Plan, XattrPlace};
use super::xattr;
use super::{Ext4Error, Ext4Options, Ext4Report, INODE_SIZE};
use crate::layers::blocks::{BlockSink, Run};
use crate::layers::build::{DataSource, SinkError};
use crate::layers::error::{EntryError, LayerError};
use crate::layers::spool::{ContentRef, Spool};
use crate::layers::tree::{InodeKind, Tree};

const BUF: usize = 4 << 20;
/// Descriptor blocks are reserved for at least this filesystem size when none is given, so
/// the image can be sized after its data was placed.
const GDT_RESERVE_MIN: u64 = 64 << 30;

/// Writes `tree` (file contents from `spool`) as an ext4 image at `out`.
pub fn write_ext4(
    tree: &Tree,
    spool: &Spool,
    out: &Path,
    opts: &Ext4Options,
) -> Result<Ext4Report, Ext4Error> {
    Ext4Image::create(out, opts, content_bytes(tree))?.finish(tree, spool)
}

/// Bytes of regular-file data in `tree` (each inode once).
fn content_bytes(tree: &Tree) -> u64 {
    let mut seen = std::collections::HashSet::new();
    let mut total = 0u64;
    for n in tree.walk() {
        let id = tree.node(n).inode;
        if let InodeKind::File { content } = &tree.inode(id).kind
            && seen.insert(id)
        {
            total += content.len;
        }
    }
    total
}

/// An ext4 image being written: file data can be placed into it while the layers stream
/// ([`Ext4Image::sink`]); [`Ext4Image::finish`] writes the rest from the final tree.
#[derive(Debug)]
pub struct Ext4Image {
    out: PathBuf,
    tmp: PathBuf,
    file: Arc<File>,
    opts: Ext4Options,
    geometry: Geometry,
    /// The block size was ours to choose (the tree may still need 4 KiB).
    auto: bool,
    gdt_reserved: u64,
    data_start: u64,
    limit: Option<u64>,
    finished: bool,
}

/// What a write attempt needs next.
enum Outcome {
    Done(Ext4Report),
    /// Start again in a new file with this geometry (data copied through the spool).
    Relocate(Geometry),
}

static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

impl Ext4Image {
    /// Creates the temporary image beside `out`. `expected_content` (bytes of file data the
    /// tree is expected to hold; an estimate is fine) chooses the block size when the options
    /// leave it open, and how many descriptor blocks to reserve when they give no size.
    pub fn create(
        out: &Path,
        opts: &Ext4Options,
        expected_content: u64,
    ) -> Result<Self, Ext4Error> {
        let expected_size = opts
            .size
            .unwrap_or_else(|| default_size(expected_content, expected_content));
        let bs = opts
            .block_size
            .unwrap_or_else(|| auto_block_size(expected_size));
        let geometry = Geometry::new(bs)?;
        Self::with_geometry(
            out,
            opts,
            geometry,
            opts.block_size.is_none(),
            expected_size,
        )
    }

    fn with_geometry(
        out: &Path,
        opts: &Ext4Options,
        geometry: Geometry,
        auto: bool,
        expected_size: u64,
    ) -> Result<Self, Ext4Error> {
        crate::fs::check_output_file(out).map_err(|_| Ext4Error::NotAFile {
            path: out.to_path_buf(),
        })?;
        let gdt_reserved = match opts.size {
            Some(s) => geometry.gdt_blocks_for_size(s),
            None => {
                geometry.gdt_blocks_for_size(expected_size.saturating_mul(4).max(GDT_RESERVE_MIN))
            }
        };
        let name = out
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let seq = TMP_SEQ.fetch_add(1, Ordering::Relaxed);
        let tmp = out.with_file_name(format!(".{name}.tmp-{}-{seq}", std::process::id()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|source| Ext4Error::Io {
                path: tmp.clone(),
                source,
            })?;
        Ok(Ext4Image {
            out: out.to_path_buf(),
            tmp,
            file: Arc::new(file),
            opts: opts.clone(),
            geometry,
            auto,
            gdt_reserved,
            data_start: geometry.gdt_start() + gdt_reserved,
            limit: opts.size.map(|s| s / geometry.block_size),
            finished: false,
        })
    }

    /// The block size data is placed in.
    pub fn block_size(&self) -> u32 {
        self.geometry.block_size as u32
    }

    /// A sink that places file data straight into this image's data area; its contents are
    /// registered as spool segment `segment`. Use one sink per image.
    pub fn sink(&self, segment: u32) -> BlockSink {
        BlockSink::new(
            self.file.clone(),
            self.block_size(),
            self.data_start,
            self.limit,
            segment,
        )
    }

    /// Writes everything else from the final `tree` (data not yet in this image is copied
    /// from `spool`) and renames the image into place.
    pub fn finish(mut self, tree: &Tree, spool: &Spool) -> Result<Ext4Report, Ext4Error> {
        match self.write(tree, spool)? {
            Outcome::Done(report) => {
                fs::rename(&self.tmp, &self.out).map_err(|source| Ext4Error::Io {
                    path: self.out.clone(),
                    source,
                })?;
                self.finished = true;
                Ok(report)
            }
            Outcome::Relocate(geometry) => {
                tracing::debug!(
                    block_size = geometry.block_size,
                    "ext4: laying the image out again"
                );
                let opts = Ext4Options {
                    block_size: Some(geometry.block_size as u32),
                    ..self.opts.clone()
                };
                let expected = content_bytes(tree);
                let size = opts
                    .size
                    .unwrap_or_else(|| default_size(expected, expected))
                    .max(self.geometry.bytes(self.data_end_hint(spool)));
                let next = Ext4Image::with_geometry(&self.out, &opts, geometry, false, size)?;
                // `self` (and its temporary file) goes when this returns; the spool keeps
                // the old file open for the copy
                next.finish(tree, spool)
            }
        }
    }

    /// The end of the data placed in this image so far, as far as `spool` knows.
    fn data_end_hint(&self, spool: &Spool) -> u64 {
        spool
            .segments()
            .filter_map(|(_, s)| match s {
                crate::layers::spool::Segment::Blocks(m) if Arc::ptr_eq(m.file(), &self.file) => {
                    Some(m.end_block())
                }
                _ => None,
            })
            .max()
            .unwrap_or(self.data_start)
    }

    fn io(&self, source: io::Error) -> Ext4Error {
        Ext4Error::Io {
            path: self.tmp.clone(),
            source,
        }
    }

    fn write(&self, tree: &Tree, spool: &Spool) -> Result<Outcome, Ext4Error> {
        let g = self.geometry;
        let mut plan = match layout::number(tree, &self.opts, g) {
            Err(Ext4Error::Symlink { .. } | Ext4Error::XattrTooLarge { .. })
                if self.auto && g.block_size < 4096 =>
            {
                return Ok(Outcome::Relocate(Geometry::new(4096)?));
            }
            r => r?,
        };
        let files = self.place_data(tree, spool, &plan)?;
        let summary = DataSummary {
            end: files.end,
            used: files.used,
            tree_blocks: files.trees.iter().map(|t| t.1).sum(),
        };
        layout::place(&mut plan, &self.opts, &summary)?;
        if plan.gdt_blocks > self.gdt_reserved {
            return Ok(Outcome::Relocate(g));
        }
        let mut files = files;
        let mut next_tree = plan.trees_start;
        for t in &mut files.trees {
            if t.1 > 0 {
                t.0 = next_tree;
                next_tree += t.1;
            }
        }
        debug_assert_eq!(next_tree, plan.meta_end);
        self.file
            .set_len(g.bytes(plan.blocks))
            .map_err(|e| self.io(e))?;
        self.write_metadata(tree, &plan, &files)
    }

    /// Finds every file's data: runs placed in this image while streaming are taken as they
    /// are; data anywhere else is copied in after them. Placed runs no file uses are punched.
    fn place_data(&self, tree: &Tree, spool: &Spool, plan: &Plan) -> Result<FileMap, Ext4Error> {
        let g = self.geometry;
        let n = plan.inodes.len();
        let mut map = FileMap {
            ranges: vec![(0, 0); n],
            extents: Vec::new(),
            trees: vec![(0, 0); n],
            end: self.data_start,
            used: 0,
            dead: 0,
        };
        // placed segments of this image: segment -> claimed flags
        let mut claimed: HashMap<u32, Vec<bool>> = HashMap::new();
        for (i, seg) in spool.segments() {
            if let crate::layers::spool::Segment::Blocks(m) = seg
                && Arc::ptr_eq(m.file(), &self.file)
                && u64::from(m.block_size()) == g.block_size
            {
                claimed.insert(i, vec![false; m.files()]);
                map.end = map.end.max(m.end_block());
            }
        }
        let mut runs_of: Vec<Option<&[Run]>> = vec![None; n];
        let mut copies: Vec<(usize, ContentRef)> = Vec::new();
        for (ino, p) in plan.inodes.iter().enumerate() {
            let Some(InodeKind::File { content }) = p
                .as_ref()
                .and_then(|p| p.source)
                .map(|s| &tree.inode(s).kind)
            else {
                continue;
            };
            if content.len == 0 {
                continue;
            }
            let placed = claimed.get_mut(&content.segment).and_then(|flags| {
                let i = usize::try_from(content.offset).ok()?;
                let flag = flags.get_mut(i)?;
                if *flag {
                    return None; // a second inode on the same data: copy it
                }
                *flag = true;
                spool.block_map(content).map(|m| m.runs_of(i))
            });
            match placed {
                Some(runs) => runs_of[ino] = Some(runs),
                None => copies.push((ino, *content)),
            }
        }
        // copy what lives elsewhere, after everything placed so far
        let mut copier = BlockSink::new(
            self.file.clone(),
            g.block_size as u32,
            map.end,
            self.limit,
            u32::MAX,
        );
        let mut copied_index = vec![None; n];
        for (ino, content) in &copies {
            let mut src = SpoolData {
                spool,
                content: *content,
            };
            let c = copier
                .place(&mut src)
                .map_err(|e| self.sink_error(e, tree, plan, *ino))?;
            copied_index[*ino] = Some(c.offset as usize);
        }
        let copied = copier.finish().map_err(|e| match e {
            LayerError::Spool(source) => self.io(source),
            other => self.io(io::Error::other(other.to_string())),
        })?;
        map.end = map.end.max(copied.end_block());

        for ino in 0..n {
            let runs = match (runs_of[ino], copied_index[ino]) {
                (Some(r), _) => r,
                (None, Some(i)) => copied.runs_of(i),
                (None, None) => continue,
            };
            let start = map.extents.len() as u32;
            for r in runs {
                map.used += u64::from(r.len);
                map.extents
                    .extend(extent::contiguous(r.logical, r.start, u64::from(r.len)));
            }
            let end = map.extents.len() as u32;
            map.ranges[ino] = (start, end);
            map.trees[ino].1 = extent::blocks_needed(g.bs(), (end - start) as usize);
        }

        // free what was placed here but is not in the final tree
        let mut dead: Vec<(u64, u64)> = Vec::new();
        for (seg, flags) in &claimed {
            let Some(m) = spool.segments().find_map(|(i, s)| match s {
                crate::layers::spool::Segment::Blocks(m) if i == *seg => Some(m),
                _ => None,
            }) else {
                continue;
            };
            for (i, used) in flags.iter().enumerate() {
                if !used {
                    dead.extend(m.runs_of(i).iter().map(|r| (r.start, u64::from(r.len))));
                }
            }
        }
        dead.sort_unstable();
        for (start, len) in merge(dead) {
            map.dead += len;
            punch(&self.file, g.bytes(start), g.bytes(len)).map_err(|e| self.io(e))?;
        }
        Ok(map)
    }

    fn sink_error(&self, e: SinkError, tree: &Tree, plan: &Plan, ino: usize) -> Ext4Error {
        let path = || {
            let node = plan.inodes[ino].as_ref().map_or(tree.root(), |p| p.node);
            format!("/{}", String::from_utf8_lossy(&tree.path(node)))
        };
        match e {
            SinkError::Entry(EntryError::OutputFull { limit }) => Ext4Error::NoSpace {
                needed: limit.saturating_add(1),
                size: limit,
            },
            SinkError::Entry(EntryError::FileTooLarge { max }) => {
                Ext4Error::FileTooLarge { path: path(), max }
            }
            SinkError::Entry(other) => Ext4Error::Spool {
                path: path(),
                source: io::Error::other(other.to_string()),
            },
            SinkError::Layer(LayerError::Spool(source)) => Ext4Error::Spool {
                path: path(),
                source,
            },
            SinkError::Layer(other) => Ext4Error::Spool {
                path: path(),
                source: io::Error::other(other.to_string()),
            },
        }
    }

    fn write_metadata(
        &self,
        tree: &Tree,
        plan: &Plan,
        files: &FileMap,
    ) -> Result<Outcome, Ext4Error> {
        let g = self.geometry;
        let bs = g.bs();
        let (uuid, _) = super::metadata::derive_ids(&self.opts);
        let seed = self.opts.metadata_csum.then(|| csum::crc32c(!0, &uuid));
        let iseed = |ino: u32| seed.map(|s| csum::inode_seed(s, ino, 0));

        // blocks in use: superblock + descriptors, file data, all metadata
        let mut used: Vec<(u64, u64)> = Vec::with_capacity(files.extents.len() + 2);
        used.push((
            g.first_data_block,
            g.gdt_start() + plan.gdt_blocks - g.first_data_block,
        ));
        used.extend(files.extents.iter().map(|e| (e.start, u64::from(e.len))));
        used.push((plan.meta_start, plan.meta_end - plan.meta_start));
        used.sort_unstable();
        let used = merge(used);
        let groups = super::metadata::group_meta(tree, plan, &used, seed);

        let mut w = Blocks {
            file: &self.file,
            path: self.tmp.clone(),
            bs,
            buf: Vec::with_capacity(BUF),
            at: plan.meta_start,
            written: 0,
        };
        for b in groups.block_bitmaps.iter().chain(&groups.inode_bitmaps) {
            w.append(b)?;
        }
        debug_assert_eq!(w.next_block(), plan.inode_tables);
        write_inodes(tree, plan, files, seed, &mut w)?;
        let tables = plan.groups * u64::from(plan.inodes_per_group) / g.inodes_per_block();
        w.skip_to(plan.inode_tables + tables)?;

        // the journal: its superblock, a zeroed (sparse) log, tree blocks if it needs any
        if plan.journal.1 > 0 {
            debug_assert_eq!(w.next_block(), plan.journal.0);
            w.append(&super::journal::superblock(bs, plan.journal.1, &uuid))?;
            w.skip(plan.journal.1 - 1)?;
            for mut b in journal_tree(plan).blocks {
                if let Some(s) = iseed(super::journal::JOURNAL_INO) {
                    csum::seal_extent_block(s, &mut b);
                }
                w.append(&b)?;
            }
        }

        // directory, symlink and xattr blocks
        let mut scratch = Vec::new();
        for (ino, p) in plan.inodes.iter().enumerate() {
            let Some(p) = p else { continue };
            if p.nblocks == 0 {
                continue;
            }
            debug_assert_eq!(w.next_block(), p.first_block);
            scratch.clear();
            match p.source.map(|s| &tree.inode(s).kind) {
                Some(InodeKind::Symlink { target }) => {
                    scratch.extend_from_slice(target);
                    scratch.resize(bs, 0);
                }
                _ if p.htree => {
                    let entries = plan.dir_entries(tree, ino as u32);
                    let n = super::htree::encode(
                        bs,
                        entries[0].0,
                        entries[1].0,
                        &entries[2..],
                        &plan.hash_seed,
                        iseed(ino as u32),
                        &mut scratch,
                    );
                    debug_assert_eq!(n, p.nblocks);
                }
                _ => {
                    let min = if ino as u32 == LPF_INO { p.nblocks } else { 1 };
                    let n = super::dir::encode(
                        bs,
                        plan.dir_entries(tree, ino as u32).into_iter(),
                        min,
                        seed.is_some(),
                        &mut scratch,
                    );
                    debug_assert_eq!(n, p.nblocks);
                    if let Some(s) = iseed(ino as u32) {
                        for block in scratch.chunks_exact_mut(bs) {
                            csum::seal_dir_block(s, block);
                        }
                    }
                }
            }
            let ext = extent::contiguous(0, p.first_block, p.nblocks);
            let t = extent::build(bs, &ext, p.first_block + p.nblocks);
            for mut b in t.blocks {
                if let Some(s) = iseed(ino as u32) {
                    csum::seal_extent_block(s, &mut b);
                }
                scratch.extend_from_slice(&b);
            }
            for chunk in scratch.chunks(BUF) {
                w.append(chunk)?;
            }
        }
        for x in &plan.xattr_blocks {
            debug_assert_eq!(w.next_block(), x.block);
            let mut b = xattr::encode_block(bs, &x.attrs, x.refcount);
            if let Some(s) = seed {
                csum::seal_xattr_block(s, x.block, &mut b);
            }
            w.append(&b)?;
        }

        // extent tree blocks of fragmented files
        debug_assert_eq!(w.next_block(), plan.trees_start);
        for (ino, &(first, count)) in files.trees.iter().enumerate() {
            if count == 0 {
                continue;
            }
            let (a, b) = files.ranges[ino];
            let mut t = extent::build(bs, &files.extents[a as usize..b as usize], first);
            for blk in &mut t.blocks {
                if let Some(s) = iseed(ino as u32) {
                    csum::seal_extent_block(s, blk);
                }
                w.append(blk)?;
            }
        }
        debug_assert_eq!(w.next_block(), plan.meta_end);
        w.flush()?;

        super::metadata::write_tables(plan, &self.opts, &groups, &mut w)?;
        Ok(Outcome::Done(Ext4Report {
            block_size: bs as u32,
            blocks: plan.blocks,
            free_blocks: groups.free_blocks,
            inodes: u64::from(plan.inodes_per_group) * plan.groups,
            used_inodes: u64::from(plan.max_ino()),
            bytes_written: w.written,
            data_blocks: files.used,
            dead_blocks: files.dead,
            dropped_xattrs: plan.dropped_xattrs,
        }))
    }
}

impl Drop for Ext4Image {
    fn drop(&mut self) {
        if !self.finished {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// A spooled file's content as a [`DataSource`] (for the copy into the image).
struct SpoolData<'a> {
    spool: &'a Spool,
    content: ContentRef,
}

impl DataSource for SpoolData<'_> {
    fn copy_to(&mut self, w: &mut dyn Write) -> Result<u64, LayerError> {
        let mut r = self.spool.reader(&self.content);
        io::copy(&mut r, w).map_err(LayerError::Spool)
    }
}

/// Merges sorted `(start, len)` ranges that touch or overlap.
fn merge(sorted: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(sorted.len());
    for (start, len) in sorted {
        if len == 0 {
            continue;
        }
        match out.last_mut() {
            Some(last) if last.0 + last.1 >= start => {
                last.1 = last.1.max(start + len - last.0);
            }
            _ => out.push((start, len)),
        }
    }
    out
}

/// Frees `len` bytes at `offset` of `file` (a hole; the file keeps its size).
fn punch(file: &File, offset: u64, len: u64) -> io::Result<()> {
    use rustix::fs::{FallocateFlags, fallocate};
    match fallocate(
        file,
        FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
        offset,
        len,
    ) {
        Ok(()) => Ok(()),
        // a filesystem without hole punching: write zeros instead
        Err(rustix::io::Errno::OPNOTSUPP) => {
            let zeros = vec![0u8; BUF.min(usize::try_from(len).unwrap_or(BUF))];
            let mut done = 0u64;
            while done < len {
                let n = (len - done).min(zeros.len() as u64) as usize;
                file.write_all_at(&zeros[..n], offset + done)?;
                done += n as u64;
            }
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Sequential block writer with a large buffer.
pub(super) struct Blocks<'f> {
    pub(super) file: &'f File,
    pub(super) path: PathBuf,
    pub(super) bs: usize,
    buf: Vec<u8>,
    /// Block number of `buf[0]`.
    at: u64,
    pub(super) written: u64,
}

impl Blocks<'_> {
    fn flush(&mut self) -> Result<(), Ext4Error> {
        debug_assert!(self.buf.len() % self.bs == 0);
        self.file
            .write_all_at(&self.buf, self.at * self.bs as u64)
            .map_err(|source| Ext4Error::Io {
                path: self.path.clone(),
                source,
            })?;
        self.at += (self.buf.len() / self.bs) as u64;
        self.written += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Block number the next appended block gets.
    fn next_block(&self) -> u64 {
        self.at + (self.buf.len() / self.bs) as u64
    }

    /// Leaves `n` blocks unwritten (holes).
    fn skip(&mut self, n: u64) -> Result<(), Ext4Error> {
        self.flush()?;
        self.at += n;
        Ok(())
    }

    /// Leaves the blocks up to `block` unwritten.
    fn skip_to(&mut self, block: u64) -> Result<(), Ext4Error> {
        let next = self.next_block();
        debug_assert!(block >= next);
        self.skip(block.saturating_sub(next))
    }

    /// Appends whole blocks (`data` is padded with zeros to a block boundary).
    fn append(&mut self, data: &[u8]) -> Result<(), Ext4Error> {
        if self.buf.len() + data.len() > BUF {
            self.flush()?;
        }
        self.buf.extend_from_slice(data);
        let rem = self.buf.len() % self.bs;
        if rem != 0 {
            self.buf.resize(self.buf.len() + self.bs - rem, 0);
        }
        Ok(())
    }

    /// Writes `data` at byte `offset` (outside the sequential pass).
    pub(super) fn write_at(&mut self, data: &[u8], offset: u64) -> Result<(), Ext4Error> {
        self.file
            .write_all_at(data, offset)
            .map_err(|source| Ext4Error::Io {
                path: self.path.clone(),
                source,
            })?;
        self.written += data.len() as u64;
        Ok(())
    }
}

/// Per-file extents, by inode number.
struct FileMap {
    /// `ino -> (first extent, end)` in `extents`.
    ranges: Vec<(u32, u32)>,
    extents: Vec<Extent>,
    /// `ino -> (first tree block, tree blocks)`.
    trees: Vec<(u64, u64)>,
    /// First block after all file data.
    end: u64,
    /// Data blocks in use.
    used: u64,
    /// Blocks placed but not used (punched).
    dead: u64,
}

fn write_inodes(
    tree: &Tree,
    plan: &Plan,
    files: &FileMap,
    seed: Option<u32>,
    w: &mut Blocks<'_>,
) -> Result<(), Ext4Error> {
    let isz = INODE_SIZE as usize;
    let max = plan.max_ino() as usize;
    let mut chunk = vec![0u8; BUF];
    let per_chunk = BUF / isz;
    let mut first = 1usize;
    while first <= max {
        let last = (first + per_chunk - 1).min(max);
        let bytes = (last - first + 1) * isz;
        chunk[..bytes].fill(0);
        for ino in first..=last {
            let off = (ino - first) * isz;
            let raw = &mut chunk[off..off + isz];
            encode_inode(tree, plan, files, ino, raw);
            if let Some(s) = seed.filter(|_| raw[..2] != [0, 0]) {
                csum::seal_inode(s, ino as u32, raw);
            }
        }
        w.append(&chunk[..bytes])?;
        first = last + 1;
    }
    Ok(())
}

pub(super) fn journal_tree(plan: &Plan) -> extent::ExtentTree {
    let (first, n) = plan.journal;
    extent::build(
        plan.geometry.bs(),
        &extent::contiguous(0, first, n),
        first + n,
    )
}

fn encode_inode(tree: &Tree, plan: &Plan, files: &FileMap, ino: usize, out: &mut [u8]) {
    let bs = plan.geometry.block_size;
    let per_block = bs / 512;
    if ino as u32 == super::journal::JOURNAL_INO && plan.journal.1 > 0 {
        let t = journal_tree(plan);
        let blocks = plan.journal.1 + t.blocks.len() as u64;
        let time = crate::layers::tree::Timestamp::from_secs(plan.time);
        DiskInode {
            mode: 0o100600,
            uid: 0,
            gid: 0,
            size: plan.journal.1 * bs,
            time,
            links: 1,
            blocks_512: blocks * per_block,
            flags: EXTENTS_FL,
            i_block: t.root,
            xattr_block: 0,
            inline_xattrs: None,
        }
        .encode(out);
        return;
    }
    let Some(p) = plan.inodes[ino].as_ref() else {
        return;
    };
    let (mut blocks, mut flags, mut i_block, mut size) = (0u64, 0u32, [0u8; 60], 0u64);
    let (xattr_block, inline) = match &p.xattrs {
        XattrPlace::None => (0, None),
        XattrPlace::Inline(a) => (0, Some(&a[..])),
        XattrPlace::Block(i) => (plan.xattr_blocks[*i].block, None),
    };
    let src = p.source.map(|s| tree.inode(s));
    let (mode, uid, gid, time, links) = match src {
        Some(i) => {
            let links = if i.is_dir() { p.links } else { i.nlink as u16 };
            (i.st_mode() as u16, i.uid, i.gid, i.mtime, links)
        }
        None => (
            0o40700,
            0,
            0,
            crate::layers::tree::Timestamp::from_secs(plan.time),
            p.links,
        ),
    };
    match src.map(|i| &i.kind) {
        None | Some(InodeKind::Dir) | Some(InodeKind::Symlink { .. }) if p.nblocks > 0 => {
            let ext = extent::contiguous(0, p.first_block, p.nblocks);
            let t = extent::build(plan.geometry.bs(), &ext, p.first_block + p.nblocks);
            i_block = t.root;
            flags = EXTENTS_FL | if p.htree { INDEX_FL } else { 0 };
            blocks = p.nblocks + t.blocks.len() as u64;
            size = match src.map(|i| &i.kind) {
                Some(InodeKind::Symlink { target }) => target.len() as u64,
                _ => p.nblocks * bs,
            };
        }
        Some(InodeKind::Symlink { target }) => {
            i_block[..target.len()].copy_from_slice(target);
            size = target.len() as u64;
        }
        Some(InodeKind::File { content }) => {
            let (a, b) = files.ranges[ino];
            let ext = &files.extents[a as usize..b as usize];
            let (tfirst, tcount) = files.trees[ino];
            let t = extent::build(plan.geometry.bs(), ext, tfirst);
            debug_assert_eq!(t.blocks.len() as u64, tcount);
            i_block = t.root;
            flags = EXTENTS_FL;
            blocks = ext.iter().map(|e| u64::from(e.len)).sum::<u64>() + tcount;
            size = content.len;
        }
        Some(InodeKind::CharDevice { major, minor })
        | Some(InodeKind::BlockDevice { major, minor }) => {
            i_block = inode::device_block(*major, *minor);
        }
        _ => {}
    }
    if xattr_block != 0 {
        blocks += 1;
    }
    DiskInode {
        mode,
        uid,
        gid,
        size,
        time,
        links,
        blocks_512: blocks * per_block,
        flags,
        i_block,
        xattr_block,
        inline_xattrs: inline,
    }
    .encode(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_merge_when_they_touch() {
        assert_eq!(
            merge(vec![(0, 2), (2, 3), (4, 1), (10, 0), (10, 5), (12, 1)]),
            vec![(0, 5), (10, 5)]
        );
    }

    #[test]
    fn punch_frees_and_reads_zero() {
        let f = tempfile::tempfile().unwrap();
        f.write_all_at(&[7u8; 16384], 0).unwrap();
        punch(&f, 4096, 8192).unwrap();
        let mut b = [1u8; 16384];
        f.read_exact_at(&mut b, 0).unwrap();
        assert!(b[..4096].iter().all(|&x| x == 7));
        assert!(b[4096..12288].iter().all(|&x| x == 0));
        assert!(b[12288..].iter().all(|&x| x == 7));
        assert_eq!(f.metadata().unwrap().len(), 16384);
    }
}
