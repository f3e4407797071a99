//! Extent trees: how files and directories map logical blocks to physical blocks.
//!
//! Spec: <https://www.kernel.org/doc/html/latest/filesystems/ext4/ifork.html#extent-tree>
//!
//! ```text
//! i_block (60 bytes) = header + up to 4 entries       tree block (one filesystem block)
//! +-----------------------------+                     +-------------------------------+
//! | eh_magic 0xF30A | eh_entries| 12-byte header      | header (eh_max = (bs-12)/12:  |
//! | eh_max (4) | eh_depth | gen |                     |  340 for 4 KiB, 84 for 1 KiB) |
//! +-----------------------------+                     | eh_max entries x 12 bytes     |
//! |                             |                     | 4-byte checksum tail          |
//! | leaf (depth 0):             |                     +-------------------------------+
//! |  ee_block u32 ee_len u16    |  ee_len <= 32768 (initialised extent)
//! |  ee_start_hi u16 ee_start_lo u32
//! | index (depth > 0):          |
//! |  ei_block u32 ei_leaf_lo u32 ei_leaf_hi u16 unused u16
//! +-----------------------------+
//! ```
//!
//! Up to 4 extents live in the inode (depth 0). More go into leaf blocks of `eh_max` extents,
//! indexed from the inode (depth 1) or through further index levels (depth 2+) when more than
//! 4 blocks are needed on a level. Tree blocks are allocated consecutively by the caller.

use super::{put16, put32};

/// Longest initialised extent, in blocks.
pub const MAX_LEN: u32 = 32768;
/// Entries in the inode's root node.
const ROOT_MAX: usize = 4;
/// Entries in one tree block of `bs` bytes.
fn block_max(bs: usize) -> usize {
    (bs - 12) / 12
}

/// One contiguous run: `len` blocks at logical block `logical` stored from physical `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    /// First logical block.
    pub logical: u32,
    /// Number of blocks (1..=32768).
    pub len: u32,
    /// First physical block.
    pub start: u64,
}

/// A finished tree: the inode's `i_block` bytes and the tree blocks to write.
#[derive(Debug, Clone)]
pub struct ExtentTree {
    /// The 60 bytes for `i_block`.
    pub root: [u8; 60],
    /// Tree blocks in allocation order (block `first + i` holds `blocks[i]`).
    pub blocks: Vec<Vec<u8>>,
}

/// Tree blocks of `bs` bytes needed for `n` extents.
pub fn blocks_needed(bs: usize, n: usize) -> u64 {
    if n <= ROOT_MAX {
        return 0;
    }
    let (mut total, mut count) = (0u64, n);
    loop {
        let blocks = count.div_ceil(block_max(bs));
        total += blocks as u64;
        if blocks <= ROOT_MAX {
            return total;
        }
        count = blocks;
    }
}

/// Splits a physically contiguous range into extents of at most [`MAX_LEN`] blocks.
pub fn contiguous(logical: u32, start: u64, blocks: u64) -> Vec<Extent> {
    let mut out = Vec::new();
    let mut done = 0u64;
    while done < blocks {
        let len = (blocks - done).min(u64::from(MAX_LEN)) as u32;
        out.push(Extent {
            logical: logical + done as u32,
            len,
            start: start + done,
        });
        done += u64::from(len);
    }
    out
}

fn header(buf: &mut [u8], entries: usize, max: usize, depth: u16) {
    put16(buf, 0, 0xF30A);
    put16(buf, 2, entries as u16);
    put16(buf, 4, max as u16);
    put16(buf, 6, depth);
    put32(buf, 8, 0);
}

/// An entry of some level: first logical block and the 12 encoded bytes.
type Entry = (u32, [u8; 12]);

fn leaf_entry(e: &Extent) -> Entry {
    let mut b = [0u8; 12];
    put32(&mut b, 0, e.logical);
    put16(&mut b, 4, e.len as u16); // 32768 is encoded as 0x8000 (initialised, max length)
    put16(&mut b, 6, (e.start >> 32) as u16);
    put32(&mut b, 8, e.start as u32);
    (e.logical, b)
}

fn index_entry(logical: u32, block: u64) -> Entry {
    let mut b = [0u8; 12];
    put32(&mut b, 0, logical);
    put32(&mut b, 4, block as u32);
    put16(&mut b, 8, (block >> 32) as u16);
    (logical, b)
}

fn node(buf: &mut [u8], entries: &[Entry], max: usize, depth: u16) {
    header(buf, entries.len(), max, depth);
    for (i, (_, e)) in entries.iter().enumerate() {
        buf[12 + i * 12..24 + i * 12].copy_from_slice(e);
    }
}

/// Builds the tree for `extents` (sorted, non-overlapping); tree blocks of `bs` bytes are
/// numbered consecutively from `first_block`.
pub fn build(bs: usize, extents: &[Extent], first_block: u64) -> ExtentTree {
    let max = block_max(bs);
    let mut level: Vec<Entry> = extents.iter().map(leaf_entry).collect();
    let mut blocks = Vec::new();
    let mut depth = 0u16;
    while level.len() > ROOT_MAX {
        let mut next = Vec::with_capacity(level.len().div_ceil(max));
        for chunk in level.chunks(max) {
            let mut b = vec![0u8; bs];
            node(&mut b, chunk, max, depth);
            next.push(index_entry(chunk[0].0, first_block + blocks.len() as u64));
            blocks.push(b);
        }
        level = next;
        depth += 1;
    }
    let mut root = [0u8; 60];
    node(&mut root, &level, ROOT_MAX, depth);
    ExtentTree { root, blocks }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u16_at(b: &[u8], o: usize) -> u16 {
        u16::from_le_bytes([b[o], b[o + 1]])
    }

    #[test]
    fn block_counts_by_depth() {
        assert_eq!(blocks_needed(4096, 0), 0);
        assert_eq!(blocks_needed(4096, 4), 0);
        assert_eq!(blocks_needed(4096, 5), 1);
        assert_eq!(blocks_needed(4096, 340 * 4), 4);
        assert_eq!(blocks_needed(4096, 340 * 4 + 1), 6); // 5 leaves + 1 index block
        assert_eq!(blocks_needed(1024, 84 * 4), 4);
        assert_eq!(blocks_needed(1024, 84 * 4 + 1), 6);
        assert_eq!(blocks_needed(2048, 169 * 4 + 1), 6);
    }

    #[test]
    fn depth_grows_and_matches_block_count() {
        for n in [0usize, 3, 4, 5, 340, 1361, 340 * 340 * 4 + 1] {
            let ext: Vec<Extent> = (0..n)
                .map(|i| Extent {
                    logical: 2 * i as u32,
                    len: 1,
                    start: 100 + 2 * i as u64,
                })
                .collect();
            let t = build(4096, &ext, 1000);
            assert_eq!(t.blocks.len() as u64, blocks_needed(4096, n), "n {n}");
            let small = build(1024, &ext, 1000);
            assert_eq!(small.blocks.len() as u64, blocks_needed(1024, n), "n {n}");
            assert!(small.blocks.iter().all(|b| b.len() == 1024));
            assert_eq!(u16_at(&t.root, 0), 0xF30A);
            assert!(u16_at(&t.root, 2) <= 4);
            let depth = u16_at(&t.root, 6);
            let want = match n {
                0..=4 => 0,
                5..=1360 => 1,
                1361..=462_400 => 2,
                _ => 3,
            };
            assert_eq!(depth, want, "n {n}");
        }
    }

    #[test]
    fn contiguous_caps_length() {
        assert_eq!(contiguous(0, 5, 70000).len(), 3);
    }
}
