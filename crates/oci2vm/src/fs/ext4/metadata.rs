//! The final metadata: block and inode bitmaps, group descriptors and the superblock, written
//! last (positioned writes at the start of the image) once the data pass knows how many blocks
//! are in use.
//!
//! Spec: <https://www.kernel.org/doc/html/latest/filesystems/ext4/globals.html>
//!
//! ```text
//! block 0: [1024 zero bytes][superblock 1024 B][zeros]   block 1..: descriptors (32 B each)
//! then block bitmaps (1 per group) | inode bitmaps (1 per group)
//! all-zero bitmap blocks are left as holes
//! ```
//!
//! UUID and directory hash seed are derived from `Ext4Options::seed` (sha256 with a tag) unless
//! a UUID is given, so the same tree and options give the same bytes.

use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use sha2::{Digest as _, Sha256};

use super::bitmap::{self, prefix_bitmap};
use super::csum;
use super::group::{self, GroupDesc};
use super::layout::Plan;
use super::superblock::Superblock;
use super::writer::{Blocks, journal_tree};
use super::{BLOCK_SIZE, BLOCKS_PER_GROUP, Ext4Error, Ext4Options, Ext4Report, INODE_SIZE};
use crate::layers::tree::Tree;

pub(super) fn write_metadata(
    tree: &Tree,
    plan: &Plan,
    opts: &Ext4Options,
    used_blocks: u64,
    w: &mut Blocks<'_>,
) -> Result<Ext4Report, Ext4Error> {
    let ipg = u64::from(plan.inodes_per_group);
    let max_ino = u64::from(plan.max_ino());
    let mut descs = Vec::with_capacity(plan.groups as usize);
    let mut dirs = vec![0u16; plan.groups as usize];
    for (ino, p) in plan.inodes.iter().enumerate() {
        let is_dir = p
            .as_ref()
            .is_some_and(|p| p.source.is_none_or(|s| tree.inode(s).is_dir()));
        if is_dir {
            dirs[(ino as u64 - 1).div_euclid(ipg) as usize] += 1;
        }
    }
    let (mut bmaps, mut imaps) = (Vec::new(), Vec::new());
    let (mut free_blocks, mut free_inodes) = (0u64, 0u64);
    for g in 0..plan.groups {
        let first = g * BLOCKS_PER_GROUP;
        let valid = (plan.blocks - first).min(BLOCKS_PER_GROUP);
        let used = used_blocks.saturating_sub(first).min(valid);
        let iused = max_ino.saturating_sub(g * ipg).min(ipg);
        bmaps.push(prefix_bitmap(used as usize, valid as usize));
        imaps.push(prefix_bitmap(iused as usize, ipg as usize));
        free_blocks += valid - used;
        free_inodes += ipg - iused;
        descs.push(GroupDesc {
            block_bitmap: (plan.block_bitmaps + g) as u32,
            inode_bitmap: (plan.inode_bitmaps + g) as u32,
            inode_table: (plan.inode_tables + g * ipg / (BLOCK_SIZE / INODE_SIZE)) as u32,
            free_blocks: (valid - used) as u16,
            free_inodes: (ipg - iused) as u16,
            used_dirs: dirs[g as usize],
            block_bitmap_csum: 0,
            inode_bitmap_csum: 0,
        });
    }
    let ioerr = |path: &PathBuf| {
        let path = path.clone();
        move |source| Ext4Error::Io { path, source }
    };
    for (start, maps) in [(plan.block_bitmaps, &bmaps), (plan.inode_bitmaps, &imaps)] {
        for (g, m) in maps.iter().enumerate() {
            if m.iter().any(|&b| b != 0) {
                w.file
                    .write_all_at(m, (start + g as u64) * BLOCK_SIZE)
                    .map_err(ioerr(&w.path))?;
                w.written += BLOCK_SIZE;
            }
        }
    }
    let (uuid, hash_seed) = derive_ids(opts);
    let seed = opts.metadata_csum.then(|| csum::crc32c(!0, &uuid));
    if let Some(s) = seed {
        for (g, d) in descs.iter_mut().enumerate() {
            d.block_bitmap_csum = csum::crc32c(s, &bmaps[g]) as u16;
            d.inode_bitmap_csum = csum::crc32c(s, &imaps[g][..(ipg / 8) as usize]) as u16;
        }
    }
    let table = group::encode_table(&descs, seed);
    w.file
        .write_all_at(&table, BLOCK_SIZE)
        .map_err(ioerr(&w.path))?;
    w.written += table.len() as u64;

    let mut label = [0u8; 16];
    let l = opts.label.len().min(16);
    label[..l].copy_from_slice(&opts.label[..l]);
    let sb = Superblock {
        inodes_count: (ipg * plan.groups) as u32,
        blocks_count: plan.blocks,
        free_blocks,
        free_inodes: free_inodes as u32,
        inodes_per_group: ipg as u32,
        log_groups_per_flex: log_groups_per_flex(plan.groups),
        uuid,
        hash_seed,
        label,
        time: plan.time,
        metadata_csum: opts.metadata_csum,
        journal: (plan.journal.1 > 0)
            .then(|| (journal_tree(plan).root, plan.journal.1 * BLOCK_SIZE)),
    };
    w.file
        .write_all_at(&sb.encode(), 1024)
        .map_err(ioerr(&w.path))?;
    w.written += BLOCK_SIZE;
    debug_assert!(bitmap::BITS as u64 == BLOCKS_PER_GROUP);
    Ok(Ext4Report {
        blocks: plan.blocks,
        free_blocks,
        inodes: ipg * plan.groups,
        used_inodes: max_ino,
        bytes_written: w.written,
        dropped_xattrs: plan.dropped_xattrs,
    })
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
