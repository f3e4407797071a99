//! CRC32C (Castagnoli) as ext4's `metadata_csum` uses it: the raw register, seeded by the
//! caller, with no final inversion (the kernel's `ext4_chksum`).
//!
//! Spec: <https://www.kernel.org/doc/html/latest/filesystems/ext4/checksums.html>
//!
//! ```text
//! fs seed    = crc(~0, s_uuid[16])
//! superblock = crc(~0, sb[0..0x3FC])                       -> s_checksum (0x3FC)
//! group desc = crc(seed, le32 group ++ desc, csum zeroed)  -> bg_checksum (low 16 bits)
//! bitmaps    = crc(seed, bitmap bytes)                     -> bg_*_bitmap_csum_lo
//! inode seed = crc(crc(seed, le32 ino), le32 generation)
//! inode      = crc(inode seed, 256 bytes, csum fields zeroed) -> l_i_checksum_lo, i_checksum_hi
//! extent blk = crc(inode seed, block[0..t])                -> tail at t = 12 + 12 * eh_max
//!              (eh_max = (block size - 12) / 12: t = 4092 for 4 KiB, 1020 for 1 KiB)
//! dir block  = crc(inode seed, block[0..bs - 12])          -> 12-byte tail entry at bs - 12
//! xattr blk  = crc(seed, le64 block ++ block, csum zeroed) -> h_checksum (0x10)
//! dx block   = crc(inode seed, block[..count_offset + count*8] ++ dx_tail, csum zeroed)
//! ```

const fn table() -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0x82F6_3B78
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

static TABLE: [u32; 256] = table();

/// Continues a raw CRC32C register over `data`.
pub fn crc32c(mut crc: u32, data: &[u8]) -> u32 {
    for &b in data {
        crc = TABLE[((crc ^ u32::from(b)) & 0xFF) as usize] ^ (crc >> 8);
    }
    crc
}

/// The per-inode seed.
pub fn inode_seed(fs_seed: u32, ino: u32, generation: u32) -> u32 {
    crc32c(
        crc32c(fs_seed, &ino.to_le_bytes()),
        &generation.to_le_bytes(),
    )
}

/// Sets the checksum fields of an encoded 256-byte inode.
pub fn seal_inode(fs_seed: u32, ino: u32, inode: &mut [u8]) {
    inode[0x7C..0x7E].fill(0);
    inode[0x82..0x84].fill(0);
    let generation = u32::from_le_bytes([inode[0x64], inode[0x65], inode[0x66], inode[0x67]]);
    let c = crc32c(inode_seed(fs_seed, ino, generation), &inode[..256]);
    inode[0x7C..0x7E].copy_from_slice(&(c as u16).to_le_bytes());
    inode[0x82..0x84].copy_from_slice(&((c >> 16) as u16).to_le_bytes());
}

/// Sets the tail checksum of an extent tree block (the tail follows the last of the
/// `(len - 12) / 12` entry slots).
pub fn seal_extent_block(iseed: u32, block: &mut [u8]) {
    let tail = 12 + 12 * ((block.len() - 12) / 12);
    let c = crc32c(iseed, &block[..tail]);
    block[tail..tail + 4].copy_from_slice(&c.to_le_bytes());
}

/// Sets the checksum in the 12-byte tail entry of a directory leaf block.
pub fn seal_dir_block(iseed: u32, block: &mut [u8]) {
    let n = block.len();
    let c = crc32c(iseed, &block[..n - 12]);
    block[n - 4..].copy_from_slice(&c.to_le_bytes());
}

/// Sets `h_checksum` of an xattr block stored at block number `blockno`.
pub fn seal_xattr_block(fs_seed: u32, blockno: u64, block: &mut [u8]) {
    block[0x10..0x14].fill(0);
    let c = crc32c(crc32c(fs_seed, &blockno.to_le_bytes()), block);
    block[0x10..0x14].copy_from_slice(&c.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_check_value() {
        // CRC-32C("123456789") = 0xE3069283 with the usual pre/post inversion.
        assert_eq!(!crc32c(!0, b"123456789"), 0xE306_9283);
    }
}
