//! Linear directories: blocks of variable-length entries.
//!
//! Spec: <https://www.kernel.org/doc/html/latest/filesystems/ext4/directory.html>
//!
//! ```text
//! one directory block (the filesystem block size)
//! +--------+---------+----------+-----------+------------+-------+--------+----------------+
//! | inode  | rec_len | name_len | file_type | name (pad  | inode | ...    | last entry:    |
//! | u32    | u16     | u8       | u8        | to 4 bytes)| ...   |        | rec_len reaches|
//! +--------+---------+----------+-----------+------------+-------+--------+ the block end  |
//! first block starts with "." (self) and ".." (parent)                    +----------------+
//! ```
//!
//! Entries never cross a block; `rec_len` is a multiple of 4; the last entry of each block
//! extends to the block's end. A block with no entries holds one empty entry (inode 0,
//! `rec_len` = the block size), as mke2fs writes the spare blocks of `lost+found`. Names are written in the
//! order given (the writer passes them sorted). Without `metadata_csum` there is no tail entry.

use super::{put16, put32};

/// `file_type` values (the `filetype` feature).
pub mod ftype {
    /// Regular file.
    pub const REG: u8 = 1;
    /// Directory.
    pub const DIR: u8 = 2;
    /// Character device.
    pub const CHR: u8 = 3;
    /// Block device.
    pub const BLK: u8 = 4;
    /// FIFO.
    pub const FIFO: u8 = 5;
    /// Socket.
    pub const SOCK: u8 = 6;
    /// Symbolic link.
    pub const SYMLINK: u8 = 7;
}

fn rec_len(name_len: usize) -> usize {
    (8 + name_len + 3) & !3
}

/// Bytes of a block available to entries (a checksum tail takes the last 12).
fn capacity(bs: usize, tail: bool) -> usize {
    if tail { bs - TAIL } else { bs }
}

/// Size of the `metadata_csum` tail entry.
pub const TAIL: usize = 12;

/// Blocks of `bs` bytes a directory needs for entries with these name lengths (`.` and `..`
/// included by the caller), but at least `min_blocks`.
pub fn blocks_for(
    bs: usize,
    name_lens: impl Iterator<Item = usize>,
    min_blocks: u64,
    tail: bool,
) -> u64 {
    let cap = capacity(bs, tail);
    let (mut blocks, mut used) = (1u64, 0usize);
    for len in name_lens {
        let r = rec_len(len);
        if used + r > cap {
            blocks += 1;
            used = 0;
        }
        used += r;
    }
    blocks.max(min_blocks)
}

/// Encodes a directory's blocks into `out` (appended), padded with empty blocks up to
/// `min_blocks`; with `tail`, every block ends in a 12-byte checksum entry (inode 0,
/// `rec_len` 12, `file_type` 0xDE) whose checksum the caller fills in. Returns the number of
/// blocks written.
pub fn encode<'a>(
    bs: usize,
    entries: impl Iterator<Item = (u32, &'a [u8], u8)>,
    min_blocks: u64,
    tail: bool,
    out: &mut Vec<u8>,
) -> u64 {
    let cap = capacity(bs, tail);
    let base = out.len();
    let mut block_start = base;
    let mut last: Option<usize> = None;
    out.resize(base + bs, 0);
    for (ino, name, ft) in entries {
        let r = rec_len(name.len());
        let pos = match last {
            None => block_start,
            Some(l) => l + usize::from(u16::from_le_bytes([out[l + 4], out[l + 5]])),
        };
        let pos = if pos + r > block_start + cap {
            close_block(bs, out, last, block_start, tail);
            block_start += bs;
            out.resize(block_start + bs, 0);
            block_start
        } else {
            pos
        };
        put32(out, pos, ino);
        put16(out, pos + 4, r as u16);
        out[pos + 6] = name.len() as u8;
        out[pos + 7] = ft;
        out[pos + 8..pos + 8 + name.len()].copy_from_slice(name);
        last = Some(pos);
    }
    close_block(bs, out, last, block_start, tail);
    let mut blocks = ((out.len() - base) / bs) as u64;
    while blocks < min_blocks {
        let start = out.len();
        out.resize(start + bs, 0);
        close_block(bs, out, None, start, tail);
        blocks += 1;
    }
    blocks
}

/// Stretches the last entry of the block at `block_start` to the usable end (or writes one
/// empty entry into an empty block), then writes the checksum tail entry if asked.
fn close_block(bs: usize, out: &mut [u8], last: Option<usize>, block_start: usize, tail: bool) {
    let cap = capacity(bs, tail);
    match last {
        Some(l) if l >= block_start => put16(out, l + 4, (block_start + cap - l) as u16),
        _ => put16(out, block_start + 4, cap as u16),
    }
    if tail {
        let t = block_start + cap;
        put32(out, t, 0);
        put16(out, t + 4, TAIL as u16);
        out[t + 6] = 0;
        out[t + 7] = 0xDE;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BS: usize = 4096;

    /// Parses blocks back into (inode, name) pairs, checking the invariants e2fsck checks.
    fn parse(bs: usize, bytes: &[u8]) -> Vec<(u32, Vec<u8>)> {
        let mut out = Vec::new();
        for block in bytes.chunks(bs) {
            let mut p = 0;
            while p < bs {
                let ino = u32::from_le_bytes(block[p..p + 4].try_into().unwrap());
                let rl = usize::from(u16::from_le_bytes([block[p + 4], block[p + 5]]));
                let nl = usize::from(block[p + 6]);
                assert!(rl % 4 == 0 && rl >= rec_len(nl) && p + rl <= bs);
                if ino != 0 {
                    out.push((ino, block[p + 8..p + 8 + nl].to_vec()));
                }
                p += rl;
            }
            assert_eq!(p, bs);
        }
        out
    }

    #[test]
    fn packs_entries_and_counts_blocks() {
        let names: Vec<Vec<u8>> = (0..5000)
            .map(|i| format!("file-{i:05}").into_bytes())
            .collect();
        let mut entries = vec![(2u32, &b"."[..], ftype::DIR), (2, &b".."[..], ftype::DIR)];
        entries.extend(
            names
                .iter()
                .enumerate()
                .map(|(i, n)| (12 + i as u32, &n[..], ftype::REG)),
        );
        for bs in [1024, 2048, BS] {
            let mut out = Vec::new();
            let n = encode(bs, entries.iter().copied(), 1, false, &mut out);
            assert_eq!(
                n,
                blocks_for(bs, entries.iter().map(|e| e.1.len()), 1, false)
            );
            let mut csum = Vec::new();
            let m = encode(bs, entries.iter().copied(), 1, true, &mut csum);
            assert_eq!(
                m,
                blocks_for(bs, entries.iter().map(|e| e.1.len()), 1, true)
            );
            assert!(m >= n);
            assert_eq!(parse(bs, &csum).len(), 5002, "the tail entry has inode 0");
            assert_eq!(&csum[bs - 6..bs - 4], &[0, 0xDE]);
            assert_eq!(out.len(), n as usize * bs);
            let back = parse(bs, &out);
            assert_eq!(back.len(), 5002);
            assert_eq!(back[4].1, b"file-00002");
        }
    }

    #[test]
    fn pads_with_empty_blocks_and_long_names_fit() {
        let long = vec![b'x'; 255];
        let entries = [
            (11u32, &b"."[..], ftype::DIR),
            (2, &b".."[..], ftype::DIR),
            (12, &long[..], 1),
        ];
        let mut out = Vec::new();
        assert_eq!(encode(BS, entries.iter().copied(), 4, false, &mut out), 4);
        assert_eq!(parse(BS, &out).len(), 3);
        assert_eq!(&out[BS + 4..BS + 6], &(BS as u16).to_le_bytes());
    }
}
