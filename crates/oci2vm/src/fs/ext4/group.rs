//! Block group descriptors: 32 bytes each (no `64bit` feature), packed in the blocks right
//! after the superblock's block.
//!
//! Spec: <https://www.kernel.org/doc/html/latest/filesystems/ext4/group_descr.html>
//!
//! ```text
//! 0x00 bg_block_bitmap_lo   u32   block of this group's block bitmap
//! 0x04 bg_inode_bitmap_lo   u32   block of this group's inode bitmap
//! 0x08 bg_inode_table_lo    u32   first block of this group's inode table
//! 0x0C bg_free_blocks_count u16
//! 0x0E bg_free_inodes_count u16
//! 0x10 bg_used_dirs_count   u16
//! 0x12 bg_flags             u16   0: no *_UNINIT flags without checksums
//! 0x14 exclude bitmap, bitmap checksums, bg_itable_unused, bg_checksum: all 0 here
//! ```
//!
//! With `flex_bg` every group's bitmaps and inode table may live anywhere; this writer puts
//! them all in one run after the file data (see [`super::layout`]).

use super::put32;

/// Size of one descriptor.
pub const DESC_SIZE: usize = 32;

/// One group's descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GroupDesc {
    /// Block bitmap block.
    pub block_bitmap: u32,
    /// Inode bitmap block.
    pub inode_bitmap: u32,
    /// First inode table block.
    pub inode_table: u32,
    /// Free blocks in the group.
    pub free_blocks: u16,
    /// Free inodes in the group.
    pub free_inodes: u16,
    /// Directories in the group.
    pub used_dirs: u16,
    /// Low 16 bits of the block bitmap's crc32c (`metadata_csum`).
    pub block_bitmap_csum: u16,
    /// Low 16 bits of the inode bitmap's crc32c (`metadata_csum`).
    pub inode_bitmap_csum: u16,
}

impl GroupDesc {
    /// Writes the descriptor into `out` (at least [`DESC_SIZE`] bytes).
    pub fn encode(&self, out: &mut [u8]) {
        put32(out, 0x00, self.block_bitmap);
        put32(out, 0x04, self.inode_bitmap);
        put32(out, 0x08, self.inode_table);
        out[0x0C..0x0E].copy_from_slice(&self.free_blocks.to_le_bytes());
        out[0x0E..0x10].copy_from_slice(&self.free_inodes.to_le_bytes());
        out[0x10..0x12].copy_from_slice(&self.used_dirs.to_le_bytes());
        out[0x12..DESC_SIZE].fill(0);
        out[0x18..0x1A].copy_from_slice(&self.block_bitmap_csum.to_le_bytes());
        out[0x1A..0x1C].copy_from_slice(&self.inode_bitmap_csum.to_le_bytes());
    }
}

/// Encodes a whole descriptor table, padded to whole blocks of `bs` bytes.
/// With `seed` (`metadata_csum`), `bg_checksum` (0x1E) = low 16 bits of
/// crc32c(seed, le32 group ++ descriptor with the checksum zeroed).
pub fn encode_table(bs: usize, descs: &[GroupDesc], seed: Option<u32>) -> Vec<u8> {
    let bytes = descs.len() * DESC_SIZE;
    let padded = bytes.div_ceil(bs) * bs;
    let mut out = vec![0u8; padded];
    for (i, d) in descs.iter().enumerate() {
        let raw = &mut out[i * DESC_SIZE..(i + 1) * DESC_SIZE];
        d.encode(raw);
        if let Some(s) = seed {
            let c = super::csum::crc32c(super::csum::crc32c(s, &(i as u32).to_le_bytes()), raw);
            raw[0x1E..0x20].copy_from_slice(&(c as u16).to_le_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_block_padded_and_fields_land() {
        let d = GroupDesc {
            block_bitmap: 3,
            inode_bitmap: 4,
            inode_table: 5,
            free_blocks: 0x1234,
            free_inodes: 7,
            used_dirs: 2,
            block_bitmap_csum: 0,
            inode_bitmap_csum: 0,
        };
        let t = encode_table(4096, &[d, GroupDesc::default()], None);
        assert_eq!(t.len(), 4096);
        assert_eq!(encode_table(1024, &[d; 33], None).len(), 2048);
        assert_eq!(&t[0..4], &3u32.to_le_bytes());
        assert_eq!(&t[0x0C..0x0E], &0x1234u16.to_le_bytes());
        assert_eq!(&t[0x10..0x12], &2u16.to_le_bytes());
        assert!(t[32..].iter().all(|&b| b == 0));
    }
}
