//! Block and inode bitmaps: one 4 KiB block per group each, bit `i` (LSB first within a byte)
//! = block/inode `i` of the group is in use.
//!
//! Spec: <https://www.kernel.org/doc/html/latest/filesystems/ext4/bitmaps.html>
//!
//! ```text
//! byte 0           byte 1                      byte 4095
//! +--------------+ +--------------+           +--------------+
//! |b7 ........ b0| |b15 ...... b8|   ...     |b32767 .......|
//! +--------------+ +--------------+           +--------------+
//!  used prefix (1s) | free (0s) | padding past the group's end (1s, e2fsck checks them)
//! ```
//!
//! This writer allocates blocks and inodes as one contiguous prefix, so every bitmap is
//! "first `used` bits set, then zeros, then padding bits set": no in-memory bitmap needed.

/// Bits in one bitmap block.
pub const BITS: usize = super::BLOCK_SIZE as usize * 8;

/// A bitmap block with bits `0..used` set, `used..valid` clear and `valid..BITS` set.
pub fn prefix_bitmap(used: usize, valid: usize) -> Vec<u8> {
    debug_assert!(used <= valid && valid <= BITS);
    let mut b = vec![0u8; BITS / 8];
    set_range(&mut b, 0, used);
    set_range(&mut b, valid, BITS);
    b
}

fn set_range(b: &mut [u8], from: usize, to: usize) {
    let mut i = from;
    while i < to && i % 8 != 0 {
        b[i / 8] |= 1 << (i % 8);
        i += 1;
    }
    while i + 8 <= to {
        b[i / 8] = 0xFF;
        i += 8;
    }
    while i < to {
        b[i / 8] |= 1 << (i % 8);
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bit(b: &[u8], i: usize) -> bool {
        b[i / 8] & (1 << (i % 8)) != 0
    }

    #[test]
    fn prefix_and_padding_bits() {
        for (used, valid) in [(0, BITS), (11, 8192), (13, 13), (BITS, BITS), (7, 9)] {
            let b = prefix_bitmap(used, valid);
            for i in 0..BITS {
                assert_eq!(
                    bit(&b, i),
                    i < used || i >= valid,
                    "bit {i} used {used} valid {valid}"
                );
            }
        }
    }
}
