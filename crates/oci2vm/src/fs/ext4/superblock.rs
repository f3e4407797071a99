//! The superblock: 1024 bytes at byte offset 1024 of block 0.
//!
//! Spec: <https://www.kernel.org/doc/html/latest/filesystems/ext4/super.html>
//!
//! ```text
//! 0x000 s_inodes_count        0x004 s_blocks_count_lo   0x008 s_r_blocks_count_lo
//! 0x00C s_free_blocks_count   0x010 s_free_inodes_count 0x014 s_first_data_block (1 for
//! 0x018 s_log_block_size      0x01C s_log_cluster_size        1 KiB blocks, else 0)
//!       (block size = 1024 << log)                    0x020 s_blocks_per_group (8 x bs)
//! 0x024 s_clusters_per_group  0x028 s_inodes_per_group  0x02C s_mtime  0x030 s_wtime
//! 0x034 s_mnt_count u16       0x036 s_max_mnt_count u16 0x038 s_magic 0xEF53 u16
//! 0x03A s_state u16 (1 clean) 0x03C s_errors u16        0x040 s_lastcheck
//! 0x048 s_creator_os (0)      0x04C s_rev_level (1)     0x054 s_first_ino (11)
//! 0x058 s_inode_size u16      0x05C compat  0x060 incompat  0x064 ro_compat
//! 0x068 s_uuid[16]            0x078 s_volume_name[16]   0x0EC s_hash_seed[4]
//! 0x0FC s_def_hash_version u8 0x0FE s_desc_size u16     0x100 s_default_mount_opts
//! 0x108 s_mkfs_time           0x15C s_min_extra_isize   0x15E s_want_extra_isize
//! 0x160 s_flags               0x174 s_log_groups_per_flex u8    0x24C s_backup_bgs[2]
//! ```
//!
//! Times are 32-bit here with `*_hi` bytes at 0x274.. (s_wtime_hi, s_mtime_hi, s_mkfs_time_hi,
//! s_lastcheck_hi) for dates past 2038.

use super::{put16, put32};

/// `compat`: an internal journal (inode 8).
pub const COMPAT_HAS_JOURNAL: u32 = 0x4;
/// `compat`: extended attributes.
pub const COMPAT_EXT_ATTR: u32 = 0x8;
/// `compat`: the kernel may index directories it grows.
pub const COMPAT_DIR_INDEX: u32 = 0x20;
/// `compat`: backups only in the groups listed in `s_backup_bgs` (none here).
pub const COMPAT_SPARSE_SUPER2: u32 = 0x200;
/// `incompat`: file type in directory entries.
pub const INCOMPAT_FILETYPE: u32 = 0x2;
/// `incompat`: extent-mapped files.
pub const INCOMPAT_EXTENTS: u32 = 0x40;
/// `incompat`: metadata of groups may live anywhere.
pub const INCOMPAT_FLEX_BG: u32 = 0x200;
/// `ro_compat`: files > 2 GiB.
pub const RO_COMPAT_LARGE_FILE: u32 = 0x2;
/// `ro_compat`: 48-bit `i_blocks`.
pub const RO_COMPAT_HUGE_FILE: u32 = 0x8;
/// `ro_compat`: more than 65000 subdirectories (link count 1).
pub const RO_COMPAT_DIR_NLINK: u32 = 0x20;
/// `ro_compat`: metadata checksums (crc32c).
pub const RO_COMPAT_METADATA_CSUM: u32 = 0x400;
/// `ro_compat`: inodes carry `i_extra_isize` bytes of extra fields.
pub const RO_COMPAT_EXTRA_ISIZE: u32 = 0x40;

/// Everything the superblock records, computed by the layout.
#[derive(Debug, Clone)]
pub struct Superblock {
    /// Block size, group size and first data block.
    pub geometry: super::Geometry,
    /// Total inodes.
    pub inodes_count: u32,
    /// Total blocks.
    pub blocks_count: u64,
    /// Free blocks.
    pub free_blocks: u64,
    /// Free inodes.
    pub free_inodes: u32,
    /// Inodes per group.
    pub inodes_per_group: u32,
    /// log2 of groups per flex group.
    pub log_groups_per_flex: u8,
    /// Filesystem UUID.
    pub uuid: [u8; 16],
    /// Directory hash seed.
    pub hash_seed: [u8; 16],
    /// Volume label.
    pub label: [u8; 16],
    /// mkfs/write/check time.
    pub time: i64,
    /// Journal inode `i_block` words and size, when there is a journal.
    pub journal: Option<([u8; 60], u64)>,
    /// `metadata_csum`: crc32c over the superblock (and all other metadata).
    pub metadata_csum: bool,
}

impl Superblock {
    /// The 1024 on-disk bytes.
    pub fn encode(&self) -> [u8; 1024] {
        let mut b = [0u8; 1024];
        put32(&mut b, 0x00, self.inodes_count);
        put32(&mut b, 0x04, self.blocks_count as u32);
        put32(&mut b, 0x0C, self.free_blocks as u32);
        put32(&mut b, 0x10, self.free_inodes);
        let g = &self.geometry;
        put32(&mut b, 0x14, g.first_data_block as u32);
        put32(&mut b, 0x18, g.log_block_size()); // block size = 1024 << log
        put32(&mut b, 0x1C, g.log_block_size());
        put32(&mut b, 0x20, g.blocks_per_group as u32);
        put32(&mut b, 0x24, g.blocks_per_group as u32);
        put32(&mut b, 0x28, self.inodes_per_group);
        let (t_lo, t_hi) = (self.time as u32, ((self.time >> 32) & 0xff) as u8);
        put32(&mut b, 0x30, t_lo); // s_wtime
        put16(&mut b, 0x36, 0xFFFF); // s_max_mnt_count = -1
        put16(&mut b, 0x38, 0xEF53);
        put16(&mut b, 0x3A, 1); // clean
        put16(&mut b, 0x3C, 1); // errors: continue
        put32(&mut b, 0x40, t_lo); // s_lastcheck
        put32(&mut b, 0x48, 0); // Linux
        put32(&mut b, 0x4C, 1); // dynamic rev
        put32(&mut b, 0x54, 11);
        put16(&mut b, 0x58, super::INODE_SIZE as u16);
        let journal = if self.journal.is_some() {
            COMPAT_HAS_JOURNAL
        } else {
            0
        };
        let compat = COMPAT_EXT_ATTR | COMPAT_DIR_INDEX | COMPAT_SPARSE_SUPER2 | journal;
        put32(&mut b, 0x5C, compat);
        if let Some((i_block, size)) = &self.journal {
            put32(&mut b, 0xE0, super::journal::JOURNAL_INO);
            b[0xFD] = 1; // s_jnl_blocks holds a backup of the journal inode's i_block
            b[0x10C..0x10C + 60].copy_from_slice(i_block);
            put32(&mut b, 0x10C + 60, (size >> 32) as u32);
            put32(&mut b, 0x10C + 64, *size as u32);
        }
        put32(
            &mut b,
            0x60,
            INCOMPAT_FILETYPE | INCOMPAT_EXTENTS | INCOMPAT_FLEX_BG,
        );
        put32(
            &mut b,
            0x64,
            RO_COMPAT_LARGE_FILE
                | RO_COMPAT_HUGE_FILE
                | RO_COMPAT_DIR_NLINK
                | RO_COMPAT_EXTRA_ISIZE,
        );
        b[0x68..0x78].copy_from_slice(&self.uuid);
        b[0x78..0x88].copy_from_slice(&self.label);
        b[0xEC..0xFC].copy_from_slice(&self.hash_seed);
        b[0xFC] = 1; // half_md4
        put16(&mut b, 0xFE, 0); // 32-byte descriptors
        put32(&mut b, 0x100, 0x4 | 0x8); // default mount options: user_xattr, acl
        put32(&mut b, 0x108, t_lo); // s_mkfs_time
        put32(&mut b, 0x150, (self.blocks_count >> 32) as u32);
        put32(&mut b, 0x158, (self.free_blocks >> 32) as u32);
        put16(&mut b, 0x15C, 32);
        put16(&mut b, 0x15E, 32);
        put32(&mut b, 0x160, 0x2); // unsigned directory hash
        b[0x174] = self.log_groups_per_flex;
        // s_backup_bgs at 0x24C stay {0, 0}: no backup superblocks (sparse_super2).
        b[0x274] = t_hi; // s_wtime_hi
        b[0x276] = t_hi; // s_mkfs_time_hi
        b[0x277] = t_hi; // s_lastcheck_hi
        if self.metadata_csum {
            let ro = u32::from_le_bytes([b[0x64], b[0x65], b[0x66], b[0x67]]);
            put32(&mut b, 0x64, ro | RO_COMPAT_METADATA_CSUM);
            b[0x175] = 1; // crc32c
            let c = super::csum::crc32c(!0, &b[..0x3FC]);
            put32(&mut b, 0x3FC, c);
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_magic_counts_and_features() {
        let sb = Superblock {
            geometry: crate::fs::ext4::Geometry::new(4096).unwrap(),
            inodes_count: 1024,
            blocks_count: 0x1_0000_0010,
            free_blocks: 5,
            free_inodes: 1000,
            inodes_per_group: 16,
            log_groups_per_flex: 4,
            uuid: [7; 16],
            hash_seed: [9; 16],
            label: *b"root\0\0\0\0\0\0\0\0\0\0\0\0",
            time: 0x1_2345_6789,
            journal: None,
            metadata_csum: true,
        };
        let b = sb.encode();
        assert_eq!(&b[0x38..0x3A], &[0x53, 0xEF]);
        assert_eq!(u32::from_le_bytes(b[4..8].try_into().unwrap()), 0x10);
        assert_eq!(u32::from_le_bytes(b[0x150..0x154].try_into().unwrap()), 1);
        assert_eq!(&b[0x68..0x78], &[7; 16]);
        assert_eq!(
            u32::from_le_bytes(b[0x30..0x34].try_into().unwrap()),
            0x2345_6789
        );
        assert_eq!(b[0x274], 1);
        let ro = u32::from_le_bytes(b[0x64..0x68].try_into().unwrap());
        assert_eq!(ro & 0x1000, 0, "never the read-only bit");
        assert_eq!(&b[0x14..0x1C], &[0, 0, 0, 0, 2, 0, 0, 0]);
        let small = Superblock {
            geometry: crate::fs::ext4::Geometry::new(1024).unwrap(),
            ..sb
        }
        .encode();
        assert_eq!(
            &small[0x14..0x24],
            &[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x20, 0, 0]
        );
    }
}
