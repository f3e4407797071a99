//! The optional internal JBD2 journal (inode 8): an empty, clean log.
//!
//! Spec: <https://www.kernel.org/doc/html/latest/filesystems/ext4/journal.html>
//!
//! ```text
//! journal block 0: JBD2 superblock v2 (big-endian)        blocks 1..maxlen: log (zeros;
//! 0x00 h_magic 0xC03B3998  0x04 h_blocktype 4             holes in the sparse image)
//! 0x08 h_sequence 0        0x0C s_blocksize (the fs block size)
//! 0x10 s_maxlen            0x14 s_first 1
//! 0x18 s_sequence 1        0x1C s_start 0 (clean: nothing to replay)
//! 0x24 feature compat/incompat/ro_compat 0
//! 0x30 s_uuid[16] (the filesystem's)  0x40 s_nr_users 1
//! ```
//!
//! The filesystem superblock gets `has_journal`, `s_journal_inum = 8` and a backup of the
//! journal inode's `i_block` and size in `s_jnl_blocks` (`s_jnl_backup_type = 1`).

/// Journal inode number.
pub const JOURNAL_INO: u32 = 8;

/// Journal length for a filesystem of `blocks` blocks (mke2fs's default table).
pub fn default_blocks(blocks: u64) -> u64 {
    match blocks {
        0..32_768 => 1024,
        32_768..262_144 => 4096,
        262_144..524_288 => 8192,
        524_288..4_194_304 => 16_384,
        4_194_304..8_388_608 => 32_768,
        8_388_608..16_777_216 => 65_536,
        16_777_216..33_554_432 => 131_072,
        _ => 262_144,
    }
}

/// The journal superblock (first journal block, `bs` bytes).
pub fn superblock(bs: usize, maxlen: u64, uuid: &[u8; 16]) -> Vec<u8> {
    let mut b = vec![0u8; bs];
    let mut be = |off: usize, v: u32| b[off..off + 4].copy_from_slice(&v.to_be_bytes());
    be(0x00, 0xC03B_3998);
    be(0x04, 4);
    be(0x0C, bs as u32);
    be(0x10, maxlen as u32);
    be(0x14, 1);
    be(0x18, 1);
    be(0x40, 1);
    b[0x30..0x40].copy_from_slice(uuid);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_superblock_fields() {
        assert_eq!(default_blocks(81_664), 4096);
        assert_eq!(default_blocks(1 << 30), 262_144);
        let sb = superblock(4096, 4096, &[3; 16]);
        assert_eq!(&sb[..4], &[0xC0, 0x3B, 0x39, 0x98]);
        assert_eq!(&sb[0x10..0x14], &4096u32.to_be_bytes());
        assert_eq!(&sb[0x1C..0x20], &[0; 4]);
        assert_eq!(&sb[0x30..0x40], &[3; 16]);
    }
}
