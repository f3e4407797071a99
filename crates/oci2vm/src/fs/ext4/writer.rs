//! The writing pass: executes a [`Plan`] into a sparse image file.
//!
//! Spec: <https://www.kernel.org/doc/html/latest/filesystems/ext4/>
//!
//! ```text
//! pass 1 (sequential, 4 MiB buffers)          pass 2 (positioned writes at the start)
//! [meta_end .. data_start) dirs/symlinks/xattrs   inode tables (used part only, 4 MiB chunks)
//! [data_start .. ) file data, zero blocks skipped  bitmaps, descriptors, superblock
//! then extent tree blocks of fragmented files
//! ```
//!
//! The image is written to a temporary file next to the output and renamed on success; on
//! failure the temporary file is removed and nothing appears at the output path.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::csum;
use super::extent::{self, Extent};
use super::inode::{self, DiskInode, EXTENTS_FL, INDEX_FL};
use super::layout::{self, LPF_INO, Plan, XattrPlace};
use super::xattr;
use super::{BLOCK_SIZE, Ext4Error, Ext4Options, Ext4Report, INODE_SIZE};
use crate::layers::spool::Spool;
use crate::layers::tree::{InodeKind, Tree};

const BUF: usize = 4 << 20;
const READ_CHUNK: usize = 1 << 20;
const BS: usize = BLOCK_SIZE as usize;

/// Writes `tree` (file contents from `spool`) as an ext4 image at `out`.
pub fn write_ext4(
    tree: &Tree,
    spool: &Spool,
    out: &Path,
    opts: &Ext4Options,
) -> Result<Ext4Report, Ext4Error> {
    let plan = layout::plan(tree, opts)?;
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = out.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Ext4Error::Io { path, source }
    };
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(io(&tmp))?;
    let result = write_all(tree, spool, &plan, opts, &file, &tmp);
    drop(file);
    match result {
        Ok(report) => {
            fs::rename(&tmp, out).map_err(io(out))?;
            Ok(report)
        }
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Sequential block writer with a large buffer.
pub(super) struct Blocks<'f> {
    pub(super) file: &'f File,
    pub(super) path: PathBuf,
    buf: Vec<u8>,
    /// Block number of `buf[0]`.
    at: u64,
    pub(super) written: u64,
}

impl Blocks<'_> {
    fn flush(&mut self) -> Result<(), Ext4Error> {
        debug_assert!(self.buf.len() % BS == 0);
        self.file
            .write_all_at(&self.buf, self.at * BLOCK_SIZE)
            .map_err(|source| Ext4Error::Io {
                path: self.path.clone(),
                source,
            })?;
        self.at += (self.buf.len() / BS) as u64;
        self.written += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    fn room(&mut self, bytes: usize) -> Result<(), Ext4Error> {
        if self.buf.len() + bytes > BUF {
            self.flush()
        } else {
            Ok(())
        }
    }

    /// Block number the next appended block gets.
    fn next_block(&self) -> u64 {
        self.at + (self.buf.len() / BS) as u64
    }

    /// Leaves `n` blocks unwritten (holes).
    fn skip(&mut self, n: u64) -> Result<(), Ext4Error> {
        self.flush()?;
        self.at += n;
        Ok(())
    }

    fn append(&mut self, data: &[u8]) -> Result<(), Ext4Error> {
        self.room(data.len())?;
        self.buf.extend_from_slice(data);
        Ok(())
    }
}

fn is_zero(block: &[u8]) -> bool {
    block
        .chunks_exact(64)
        .all(|c| c.iter().fold(0u8, |a, &b| a | b) == 0)
}

/// Per-file extents recorded during the data pass.
struct FileMap {
    /// `ino -> (first extent, end)` in `extents`.
    ranges: Vec<(u32, u32)>,
    extents: Vec<Extent>,
    /// `ino -> (first tree block, tree blocks)`.
    trees: Vec<(u64, u64)>,
}

fn write_all(
    tree: &Tree,
    spool: &Spool,
    plan: &Plan,
    opts: &Ext4Options,
    file: &File,
    path: &Path,
) -> Result<Ext4Report, Ext4Error> {
    file.set_len(plan.blocks * BLOCK_SIZE)
        .map_err(|source| Ext4Error::Io {
            path: path.into(),
            source,
        })?;
    let mut w = Blocks {
        file,
        path: path.into(),
        buf: Vec::with_capacity(BUF),
        at: plan.meta_end,
        written: 0,
    };

    // The journal: its superblock, a zeroed (sparse) log, tree blocks if it needs any.
    let (uuid, _) = super::metadata::derive_ids(opts);
    let seed = opts.metadata_csum.then(|| csum::crc32c(!0, &uuid));
    let iseed = |ino: u32| seed.map(|s| csum::inode_seed(s, ino, 0));
    if plan.journal.1 > 0 {
        w.append(&super::journal::superblock(plan.journal.1, &uuid))?;
        w.skip(plan.journal.1 - 1)?;
        for mut b in journal_tree(plan).blocks {
            if let Some(s) = iseed(super::journal::JOURNAL_INO) {
                csum::seal_extent_block(s, &mut b);
            }
            w.append(&b)?;
        }
    }

    // Directory, symlink and xattr blocks.
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
                scratch.resize(BS, 0);
            }
            _ if p.htree => {
                let entries = plan.dir_entries(tree, ino as u32);
                let n = super::htree::encode(
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
                let min = if ino as u32 == LPF_INO {
                    layout::LPF_BLOCKS
                } else {
                    1
                };
                let n = super::dir::encode(
                    plan.dir_entries(tree, ino as u32).into_iter(),
                    min,
                    seed.is_some(),
                    &mut scratch,
                );
                debug_assert_eq!(n, p.nblocks);
                if let Some(s) = iseed(ino as u32) {
                    for block in scratch.chunks_exact_mut(BS) {
                        csum::seal_dir_block(s, block);
                    }
                }
            }
        }
        let ext = extent::contiguous(0, p.first_block, p.nblocks);
        let t = extent::build(&ext, p.first_block + p.nblocks);
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
        let mut b = xattr::encode_block(&x.attrs, x.refcount);
        if let Some(s) = seed {
            csum::seal_xattr_block(s, x.block, &mut b);
        }
        w.append(&b)?;
    }
    debug_assert_eq!(w.next_block(), plan.data_start);

    // File data, in inode order, zero blocks left as holes.
    let n = plan.inodes.len();
    let mut map = FileMap {
        ranges: vec![(0, 0); n],
        extents: Vec::new(),
        trees: vec![(0, 0); n],
    };
    for (ino, p) in plan.inodes.iter().enumerate() {
        let Some(InodeKind::File { content }) = p
            .as_ref()
            .and_then(|p| p.source)
            .map(|s| &tree.inode(s).kind)
        else {
            continue;
        };
        let start = map.extents.len() as u32;
        let mut logical = 0u32;
        let mut pos = 0u64;
        while pos < content.len {
            let want = (content.len - pos).min(READ_CHUNK as u64) as usize;
            let padded = want.div_ceil(BS) * BS;
            w.room(padded)?;
            let base = w.buf.len();
            w.buf.resize(base + padded, 0);
            let mut got = 0;
            while got < want {
                let r = spool.read_at(
                    content,
                    pos + got as u64,
                    &mut w.buf[base + got..base + want],
                );
                match r {
                    Ok(0) => {
                        let source = std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "spool truncated",
                        );
                        return Err(spool_err(tree, plan, ino, source));
                    }
                    Ok(k) => got += k,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(spool_err(tree, plan, ino, e)),
                }
            }
            let mut dst = base;
            for k in 0..padded / BS {
                let src = base + k * BS;
                if !is_zero(&w.buf[src..src + BS]) {
                    if dst != src {
                        w.buf.copy_within(src..src + BS, dst);
                    }
                    extent::push_block(&mut map.extents, logical, w.at + (dst / BS) as u64);
                    dst += BS;
                }
                logical += 1;
            }
            w.buf.truncate(dst);
            pos += want as u64;
        }
        map.ranges[ino] = (start, map.extents.len() as u32);
    }

    // Extent tree blocks of fragmented files.
    for ino in 0..n {
        let (a, b) = map.ranges[ino];
        let ext = &map.extents[a as usize..b as usize];
        let need = extent::blocks_needed(ext.len());
        if need > 0 {
            let first = w.next_block();
            let mut t = extent::build(ext, first);
            for blk in &mut t.blocks {
                if let Some(s) = iseed(ino as u32) {
                    csum::seal_extent_block(s, blk);
                }
                w.append(blk)?;
            }
            map.trees[ino] = (first, need);
        }
    }
    let used_blocks = w.next_block();
    w.flush()?;

    write_inodes(tree, plan, &map, seed, &mut w)?;
    super::metadata::write_metadata(tree, plan, opts, used_blocks, &mut w)
}

fn spool_err(tree: &Tree, plan: &Plan, ino: usize, source: std::io::Error) -> Ext4Error {
    let node = plan.inodes[ino].as_ref().map_or(tree.root(), |p| p.node);
    Ext4Error::Spool {
        path: format!("/{}", String::from_utf8_lossy(&tree.path(node))),
        source,
    }
}

fn write_inodes(
    tree: &Tree,
    plan: &Plan,
    map: &FileMap,
    seed: Option<u32>,
    w: &mut Blocks<'_>,
) -> Result<(), Ext4Error> {
    let per_chunk = BUF / INODE_SIZE as usize;
    let max = plan.max_ino() as usize;
    let mut chunk = vec![0u8; BUF];
    let mut first = 1usize;
    while first <= max {
        let last = (first + per_chunk - 1).min(max);
        let bytes = (last - first + 1) * INODE_SIZE as usize;
        chunk[..bytes].fill(0);
        for ino in first..=last {
            let off = (ino - first) * INODE_SIZE as usize;
            encode_inode(
                tree,
                plan,
                map,
                ino,
                &mut chunk[off..off + INODE_SIZE as usize],
            );
            let raw = &mut chunk[off..off + INODE_SIZE as usize];
            if let Some(s) = seed.filter(|_| raw[..2] != [0, 0]) {
                csum::seal_inode(s, ino as u32, raw);
            }
        }
        let at = plan.inode_tables * BLOCK_SIZE + (first as u64 - 1) * INODE_SIZE;
        w.file
            .write_all_at(&chunk[..bytes], at)
            .map_err(|source| Ext4Error::Io {
                path: w.path.clone(),
                source,
            })?;
        w.written += bytes as u64;
        first = last + 1;
    }
    Ok(())
}

pub(super) fn journal_tree(plan: &Plan) -> extent::ExtentTree {
    let (first, n) = plan.journal;
    extent::build(&extent::contiguous(0, first, n), first + n)
}

fn encode_inode(tree: &Tree, plan: &Plan, map: &FileMap, ino: usize, out: &mut [u8]) {
    if ino as u32 == super::journal::JOURNAL_INO && plan.journal.1 > 0 {
        let t = journal_tree(plan);
        let blocks = plan.journal.1 + t.blocks.len() as u64;
        let time = crate::layers::tree::Timestamp::from_secs(plan.time);
        DiskInode {
            mode: 0o100600,
            uid: 0,
            gid: 0,
            size: plan.journal.1 * BLOCK_SIZE,
            time,
            links: 1,
            blocks_512: blocks * (BLOCK_SIZE / 512),
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
            let t = extent::build(&ext, p.first_block + p.nblocks);
            i_block = t.root;
            flags = EXTENTS_FL | if p.htree { INDEX_FL } else { 0 };
            blocks = p.nblocks + t.blocks.len() as u64;
            size = match src.map(|i| &i.kind) {
                Some(InodeKind::Symlink { target }) => target.len() as u64,
                _ => p.nblocks * BLOCK_SIZE,
            };
        }
        Some(InodeKind::Symlink { target }) => {
            i_block[..target.len()].copy_from_slice(target);
            size = target.len() as u64;
        }
        Some(InodeKind::File { content }) => {
            let (a, b) = map.ranges[ino];
            let ext = &map.extents[a as usize..b as usize];
            let (tfirst, tcount) = map.trees[ino];
            let t = extent::build(ext, tfirst);
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
        blocks_512: blocks * (BLOCK_SIZE / 512),
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
    fn zero_detection() {
        let mut b = vec![0u8; BS];
        assert!(is_zero(&b));
        b[BS - 1] = 1;
        assert!(!is_zero(&b));
    }
}
