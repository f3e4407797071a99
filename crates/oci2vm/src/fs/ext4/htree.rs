//! Hashed (htree) directories: a root block indexing leaf blocks by name hash, for
//! directories larger than one block (what the kernel builds when a directory grows).
//!
//! Spec: <https://www.kernel.org/doc/html/latest/filesystems/ext4/directory.html#hash-tree-directories>
//!
//! ```text
//! logical block 0 (dx_root)                      index node (only with indirect_levels 1)
//! +---------------------------------+            +---------------------------------+
//! | "." dirent (rec_len 12)         |            | fake dirent: inode 0, rec_len   |
//! | ".." dirent (rec_len bs - 12)   |            |   bs (the block size)           |
//! | dx_root_info: 0u32, hash ver 1, |            | limit u16 | count u16 | block   |
//! |   info_length 8, levels, 0      |            | (hash u32, block u32) ...       |
//! | limit u16 | count u16 | block   |            | [dx_tail: 0u32, crc32c]         |
//! | (hash u32, block u32) ...       |            +---------------------------------+
//! | [dx_tail: 0u32, crc32c]         |   leaves: ordinary directory blocks whose entries
//! +---------------------------------+   hash into [entry hash, next entry hash)
//! ```
//!
//! Hash: half-MD4 on unsigned name bytes (`s_flags` says unsigned), seeded with
//! `s_hash_seed`; the low bit of an index hash marks a leaf that continues the previous
//! leaf's last hash (collision across a block boundary).

use super::dir::{self, ftype};
use super::{put16, put32};

/// Leaves one root can index directly: (block size - 32) / 8, one less for the checksum tail.
fn root_limit(bs: usize, csum: bool) -> usize {
    (bs - 32) / 8 - usize::from(csum)
}
/// Entries of one index node: (block size - 8) / 8, one less for the checksum tail.
fn node_limit(bs: usize, csum: bool) -> usize {
    (bs - 8) / 8 - usize::from(csum)
}

fn half_md4(buf: &mut [u32; 4], input: &[u32; 8]) {
    let f = |x: u32, y: u32, z: u32| z ^ (x & (y ^ z));
    let g = |x: u32, y: u32, z: u32| (x & y).wrapping_add((x ^ y) & z);
    let h = |x: u32, y: u32, z: u32| x ^ y ^ z;
    let (k2, k3) = (0o13240474631u32, 0o15666365641u32);
    let [mut a, mut b, mut c, mut d] = *buf;
    macro_rules! round {
        ($f:ident, $a:ident, $b:ident, $c:ident, $d:ident, $x:expr, $s:expr) => {
            $a = $a
                .wrapping_add($f($b, $c, $d))
                .wrapping_add($x)
                .rotate_left($s);
        };
    }
    let i = input;
    round!(f, a, b, c, d, i[0], 3);
    round!(f, d, a, b, c, i[1], 7);
    round!(f, c, d, a, b, i[2], 11);
    round!(f, b, c, d, a, i[3], 19);
    round!(f, a, b, c, d, i[4], 3);
    round!(f, d, a, b, c, i[5], 7);
    round!(f, c, d, a, b, i[6], 11);
    round!(f, b, c, d, a, i[7], 19);
    round!(g, a, b, c, d, i[1].wrapping_add(k2), 3);
    round!(g, d, a, b, c, i[3].wrapping_add(k2), 5);
    round!(g, c, d, a, b, i[5].wrapping_add(k2), 9);
    round!(g, b, c, d, a, i[7].wrapping_add(k2), 13);
    round!(g, a, b, c, d, i[0].wrapping_add(k2), 3);
    round!(g, d, a, b, c, i[2].wrapping_add(k2), 5);
    round!(g, c, d, a, b, i[4].wrapping_add(k2), 9);
    round!(g, b, c, d, a, i[6].wrapping_add(k2), 13);
    round!(h, a, b, c, d, i[3].wrapping_add(k3), 3);
    round!(h, d, a, b, c, i[7].wrapping_add(k3), 9);
    round!(h, c, d, a, b, i[2].wrapping_add(k3), 11);
    round!(h, b, c, d, a, i[6].wrapping_add(k3), 15);
    round!(h, a, b, c, d, i[1].wrapping_add(k3), 3);
    round!(h, d, a, b, c, i[5].wrapping_add(k3), 9);
    round!(h, c, d, a, b, i[0].wrapping_add(k3), 11);
    round!(h, b, c, d, a, i[4].wrapping_add(k3), 15);
    buf[0] = buf[0].wrapping_add(a);
    buf[1] = buf[1].wrapping_add(b);
    buf[2] = buf[2].wrapping_add(c);
    buf[3] = buf[3].wrapping_add(d);
}

fn str2hashbuf(msg: &[u8], out: &mut [u32; 8]) {
    let len = msg.len() as u32;
    let mut pad = len | (len << 8);
    pad |= pad << 16;
    let mut val = pad;
    let mut k = 0;
    for (i, &c) in msg.iter().take(32).enumerate() {
        val = u32::from(c).wrapping_add(val << 8);
        if i % 4 == 3 {
            out[k] = val;
            k += 1;
            val = pad;
        }
    }
    if k < 8 {
        out[k] = val;
        k += 1;
    }
    while k < 8 {
        out[k] = pad;
        k += 1;
    }
}

/// The major hash of `name` (half-MD4, unsigned), low bit cleared.
pub fn name_hash(name: &[u8], seed: &[u8; 16]) -> u32 {
    let mut buf = [0x6745_2301u32, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];
    if seed.iter().any(|&b| b != 0) {
        for (i, w) in buf.iter_mut().enumerate() {
            *w = u32::from_le_bytes([
                seed[4 * i],
                seed[4 * i + 1],
                seed[4 * i + 2],
                seed[4 * i + 3],
            ]);
        }
    }
    let mut input = [0u32; 8];
    // Each round pads with the remaining length, as the kernel passes `len`, not 32.
    for off in (0..name.len()).step_by(32) {
        str2hashbuf(&name[off..], &mut input);
        half_md4(&mut buf, &input);
    }
    let hash = buf[1] & !1;
    if hash == 0x7fff_ffff << 1 {
        (0x7fff_ffff - 1) << 1
    } else {
        hash
    }
}

/// Entry of a directory: inode, name, file type.
pub type Entry<'a> = (u32, &'a [u8], u8);

/// The leaves: each a list of entries with the index hash of its first entry.
fn leaves<'a>(
    bs: usize,
    children: &[Entry<'a>],
    seed: &[u8; 16],
    csum: bool,
) -> Vec<(u32, Vec<Entry<'a>>)> {
    let mut sorted: Vec<(u32, Entry<'a>)> = children
        .iter()
        .map(|e| (name_hash(e.1, seed), *e))
        .collect();
    sorted.sort_by(|a, b| (a.0, a.1.1).cmp(&(b.0, b.1.1)));
    let cap = bs - if csum { dir::TAIL } else { 0 };
    let mut out: Vec<(u32, Vec<Entry<'a>>)> = Vec::new();
    let mut used = 0usize;
    let mut prev_hash = None;
    for (h, e) in sorted {
        let r = (8 + e.1.len() + 3) & !3;
        if out.is_empty() || used + r > cap {
            let start = if prev_hash == Some(h) { h | 1 } else { h };
            out.push((start, Vec::new()));
            used = 0;
        }
        used += r;
        out.last_mut().expect("pushed above").1.push(e);
        prev_hash = Some(h);
    }
    if out.is_empty() {
        out.push((0, Vec::new()));
    }
    out
}

/// Blocks an htree directory with these children takes (`None`: too large for 2 levels).
pub fn blocks(bs: usize, children: &[Entry<'_>], seed: &[u8; 16], csum: bool) -> Option<u64> {
    let n = leaves(bs, children, seed, csum).len();
    let nodes = index_nodes(bs, n, csum)?;
    Some(1 + nodes as u64 + n as u64)
}

fn index_nodes(bs: usize, leaves: usize, csum: bool) -> Option<usize> {
    if leaves <= root_limit(bs, csum) {
        return Some(0);
    }
    let nodes = leaves.div_ceil(node_limit(bs, csum));
    (nodes <= root_limit(bs, csum)).then_some(nodes)
}

fn seal(block: &mut [u8], count_offset: usize, count: usize, limit: usize, iseed: Option<u32>) {
    let Some(s) = iseed else { return };
    let tail = count_offset + limit * 8;
    put32(block, tail, 0);
    put32(block, tail + 4, 0);
    let c = super::csum::crc32c(s, &block[..count_offset + count * 8]);
    let c = super::csum::crc32c(c, &block[tail..tail + 8]); // dx_tail with dt_checksum 0
    put32(block, tail + 4, c);
}

fn index(block: &mut [u8], at: usize, limit: usize, entries: &[(u32, u32)]) {
    put16(block, at, limit as u16);
    put16(block, at + 2, entries.len() as u16);
    put32(block, at + 4, entries[0].1);
    for (i, (h, b)) in entries.iter().enumerate().skip(1) {
        put32(block, at + i * 8, *h);
        put32(block, at + i * 8 + 4, *b);
    }
}

/// Encodes the directory (root, index nodes, leaves) into `out`; leaf blocks get their
/// checksum tails sealed by the caller-provided `seal_leaf`. Returns the block count.
pub fn encode(
    bs: usize,
    ino: u32,
    parent: u32,
    children: &[Entry<'_>],
    seed: &[u8; 16],
    iseed: Option<u32>,
    out: &mut Vec<u8>,
) -> u64 {
    let csum = iseed.is_some();
    let leaves = leaves(bs, children, seed, csum);
    let nodes = index_nodes(bs, leaves.len(), csum).expect("checked by blocks()");
    let first_leaf = 1 + nodes as u32;
    let base = out.len();
    out.resize(base + bs * (1 + nodes), 0);
    {
        let root = &mut out[base..base + bs];
        put32(root, 0, ino);
        put16(root, 4, 12);
        root[6] = 1;
        root[7] = ftype::DIR;
        root[8] = b'.';
        put32(root, 12, parent);
        put16(root, 16, (bs - 12) as u16);
        root[18] = 2;
        root[19] = ftype::DIR;
        root[20..22].copy_from_slice(b"..");
        root[24 + 4] = 1; // half_md4
        root[24 + 5] = 8;
        root[24 + 6] = u8::from(nodes > 0);
    }
    let leaf_entries: Vec<(u32, u32)> = leaves
        .iter()
        .enumerate()
        .map(|(i, l)| (l.0, first_leaf + i as u32))
        .collect();
    if nodes == 0 {
        let root = &mut out[base..base + bs];
        index(root, 32, root_limit(bs, csum), &leaf_entries);
        seal(root, 32, leaf_entries.len(), root_limit(bs, csum), iseed);
    } else {
        let per = node_limit(bs, csum);
        let mut top = Vec::with_capacity(nodes);
        for (k, chunk) in leaf_entries.chunks(per).enumerate() {
            let node = &mut out[base + bs * (1 + k)..base + bs * (2 + k)];
            put16(node, 4, bs as u16);
            index(node, 8, per, chunk);
            seal(node, 8, chunk.len(), per, iseed);
            top.push((chunk[0].0, 1 + k as u32));
        }
        let root = &mut out[base..base + bs];
        index(root, 32, root_limit(bs, csum), &top);
        seal(root, 32, top.len(), root_limit(bs, csum), iseed);
    }
    for (_, entries) in &leaves {
        let n = dir::encode(bs, entries.iter().copied(), 1, csum, out);
        debug_assert_eq!(n, 1);
    }
    if let Some(s) = iseed {
        let start = base + bs * (1 + nodes);
        for block in out[start..].chunks_exact_mut(bs) {
            super::csum::seal_dir_block(s, block);
        }
    }
    ((out.len() - base) / bs) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_even_and_seed_dependent() {
        let a = name_hash(b"hello", &[0; 16]);
        let b = name_hash(b"hello", &[1; 16]);
        assert_eq!(a & 1, 0);
        assert_ne!(a, b);
        assert_ne!(
            name_hash(&[b'x'; 40], &[0; 16]),
            name_hash(&[b'x'; 41], &[0; 16])
        );
    }

    #[test]
    fn leaves_are_hash_ordered() {
        let names: Vec<Vec<u8>> = (0..2000).map(|i| format!("n{i}").into_bytes()).collect();
        let kids: Vec<Entry<'_>> = names.iter().map(|n| (20, &n[..], 1)).collect();
        for bs in [1024, 2048, 4096] {
            let l = leaves(bs, &kids, &[3; 16], true);
            assert!(l.len() > 1);
            assert!(l.windows(2).all(|w| w[0].0 <= w[1].0));
            let mut out = Vec::new();
            let n = encode(bs, 12, 2, &kids, &[3; 16], Some(7), &mut out);
            assert_eq!(Some(n), blocks(bs, &kids, &[3; 16], true));
            assert_eq!(out.len(), n as usize * bs);
        }
    }
}
