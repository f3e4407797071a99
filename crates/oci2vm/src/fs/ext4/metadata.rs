//! The group metadata: block and inode bitmaps and descriptors, computed once every block in
//! use is known; descriptors and the superblock are written last, at the start of the image.
//!
//! Spec: <https://www.kernel.org/doc/html/latest/filesystems/ext4/globals.html>
//!
//! ```text
//! byte 1024: superblock (1024 B)     block gdt_start..: descriptors (32 B each)
//! after the data: block bitmaps (1 per group) | inode bitmaps (1 per group)
//! block bitmap of group g: the runs in use that overlap [group_first(g), + valid), padding
//! past the filesystem's last block set; inode bitmap: inodes 1..=max_ino set, padding set
//! ```
//!
//! UUID and directory hash seed are derived from `Ext4Options::seed` (sha256 with a tag) unless
//! a UUID is given, so the same tree and options give the same bytes.

use sha2::{Digest as _, Sha256};

use super::bitmap;
use super::csum;
use super::group::{self, GroupDesc};
use super::layout::Plan;
use super::superblock::Superblock;
use super::writer::{Blocks, journal_tree};
use super::{Ext4Error, Ext4Options};
use crate::layers::tree::Tree;

/// The bitmaps and descriptors of every group.
pub(super) struct GroupMeta {
    /// One block bitmap per group.
    pub block_bitmaps: Vec<Vec<u8>>,
    /// One inode bitmap per group.
    pub inode_bitmaps: Vec<Vec<u8>>,
    /// The descriptors (bitmap checksums filled in with `metadata_csum`).
    pub descs: Vec<GroupDesc>,
    /// Free blocks in all groups.
    pub free_blocks: u64,
    /// Free inodes in all groups.
    pub free_inodes: u64,
}

/// Bitmaps and descriptors from the blocks in `used` (sorted, merged `(start, len)` runs)
/// and the inodes `1..=max_ino`.
pub(super) fn group_meta(
    tree: &Tree,
    plan: &Plan,
    used: &[(u64, u64)],
    seed: Option<u32>,
) -> GroupMeta {
    let g = plan.geometry;
    let bs = g.bs();
    let ipg = u64::from(plan.inodes_per_group);
    let ipb = g.inodes_per_block();
    let max_ino = u64::from(plan.max_ino());
    let mut dirs = vec![0u16; plan.groups as usize];
    for (ino, p) in plan.inodes.iter().enumerate() {
        let is_dir = p
            .as_ref()
            .is_some_and(|p| p.source.is_none_or(|s| tree.inode(s).is_dir()));
        if is_dir {
            dirs[(ino as u64 - 1).div_euclid(ipg) as usize] += 1;
        }
    }
    let mut meta = GroupMeta {
        block_bitmaps: Vec::with_capacity(plan.groups as usize),
        inode_bitmaps: Vec::with_capacity(plan.groups as usize),
        descs: Vec::with_capacity(plan.groups as usize),
        free_blocks: 0,
        free_inodes: 0,
    };
    let mut r = 0usize;
    for grp in 0..plan.groups {
        let first = g.group_first(grp);
        let valid = (plan.blocks - first).min(g.blocks_per_group);
        let end = first + valid;
        let mut bmap = bitmap::padded(bs, valid as usize);
        // runs are sorted: skip those that end before this group, mark the overlapping ones
        while r < used.len() && used[r].0 + used[r].1 <= first {
            r += 1;
        }
        let mut k = r;
        while k < used.len() && used[k].0 < end {
            let (s, l) = used[k];
            let a = s.max(first) - first;
            let b = (s + l).min(end) - first;
            bitmap::set_range(&mut bmap, a as usize, b as usize);
            k += 1;
        }
        let used_blocks = bitmap::count_set(&bmap, valid as usize);
        let iused = max_ino.saturating_sub(grp * ipg).min(ipg);
        let imap = bitmap::prefix(bs, iused as usize, ipg as usize);
        let free = valid - used_blocks as u64;
        meta.free_blocks += free;
        meta.free_inodes += ipg - iused;
        let mut d = GroupDesc {
            block_bitmap: (plan.block_bitmaps + grp) as u32,
            inode_bitmap: (plan.inode_bitmaps + grp) as u32,
            inode_table: (plan.inode_tables + grp * ipg / ipb) as u32,
            free_blocks: free as u16,
            free_inodes: (ipg - iused) as u16,
            used_dirs: dirs[grp as usize],
            block_bitmap_csum: 0,
            inode_bitmap_csum: 0,
        };
        if let Some(s) = seed {
            d.block_bitmap_csum =
                csum::crc32c(s, &bmap[..(g.blocks_per_group / 8) as usize]) as u16;
            d.inode_bitmap_csum = csum::crc32c(s, &imap[..(ipg / 8) as usize]) as u16;
        }
        meta.block_bitmaps.push(bmap);
        meta.inode_bitmaps.push(imap);
        meta.descs.push(d);
    }
    meta
}

/// Writes the descriptor table and the superblock.
pub(super) fn write_tables(
    plan: &Plan,
    opts: &Ext4Options,
    groups: &GroupMeta,
    w: &mut Blocks<'_>,
) -> Result<(), Ext4Error> {
    let g = plan.geometry;
    let (uuid, hash_seed) = derive_ids(opts);
    let seed = opts.metadata_csum.then(|| csum::crc32c(!0, &uuid));
    let table = group::encode_table(g.bs(), &groups.descs, seed);
    w.write_at(&table, g.bytes(g.gdt_start()))?;

    let mut label = [0u8; 16];
    let l = opts.label.len().min(16);
    label[..l].copy_from_slice(&opts.label[..l]);
    let ipg = u64::from(plan.inodes_per_group);
    let sb = Superblock {
        geometry: g,
        inodes_count: (ipg * plan.groups) as u32,
        blocks_count: plan.blocks,
        free_blocks: groups.free_blocks,
        free_inodes: groups.free_inodes as u32,
        inodes_per_group: ipg as u32,
        log_groups_per_flex: log_groups_per_flex(plan.groups),
        uuid,
        hash_seed,
        label,
        time: plan.time,
        metadata_csum: opts.metadata_csum,
        journal: (plan.journal.1 > 0)
            .then(|| (journal_tree(plan).root, plan.journal.1 * g.block_size)),
    };
    w.write_at(&sb.encode(), 1024)
}

/// All groups form one flex group (their metadata is packed at the start).
fn log_groups_per_flex(groups: u64) -> u8 {
    let mut log = 4u8;
    while (1u64 << log) < groups && log < 31 {
        log += 1;
    }
    log
}

/// UUID (RFC 4122 version 4 layout) and directory hash seed derived from the seed.
pub(super) fn derive_ids(opts: &Ext4Options) -> ([u8; 16], [u8; 16]) {
    let derive = |tag: &[u8]| {
        let mut h = Sha256::new();
        h.update(tag);
        h.update(opts.seed);
        let d = h.finalize();
        let mut out = [0u8; 16];
        out.copy_from_slice(&d[..16]);
        out
    };
    let uuid = opts.uuid.unwrap_or_else(|| {
        let mut u = derive(b"oci2vm ext4 uuid");
        u[6] = (u[6] & 0x0f) | 0x40;
        u[8] = (u[8] & 0x3f) | 0x80;
        u
    });
    (uuid, derive(b"oci2vm ext4 hash seed"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_deterministic_and_version_4() {
        let a = derive_ids(&Ext4Options {
            seed: [1; 16],
            ..Ext4Options::default()
        });
        let b = derive_ids(&Ext4Options {
            seed: [1; 16],
            ..Ext4Options::default()
        });
        let c = derive_ids(&Ext4Options {
            seed: [2; 16],
            ..Ext4Options::default()
        });
        assert_eq!(a, b);
        assert_ne!(a.0, c.0);
        assert_eq!(a.0[6] >> 4, 4);
        let fixed = derive_ids(&Ext4Options {
            uuid: Some([9; 16]),
            ..Ext4Options::default()
        });
        assert_eq!(fixed.0, [9; 16]);
    }

    #[test]
    fn flex_groups_cover_all_groups() {
        assert_eq!(log_groups_per_flex(1), 4);
        assert_eq!(log_groups_per_flex(17), 5);
        assert_eq!(log_groups_per_flex(1 << 20), 20);
    }
}
