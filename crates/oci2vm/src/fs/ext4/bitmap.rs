//! Block and inode bitmaps: one filesystem block per group each, bit `i` (LSB first within a
//! byte) = block/inode `i` of the group is in use.
//!
//! Spec: <https://www.kernel.org/doc/html/latest/filesystems/ext4/bitmaps.html>
//!
//! ```text
//! byte 0           byte 1                      byte bs-1
//! +--------------+ +--------------+           +--------------+
//! |b7 ........ b0| |b15 ...... b8|   ...     |b(8bs-1) .....|
//! +--------------+ +--------------+           +--------------+
//!  used runs (1s) | free (0s) | padding past the group's end (1s, e2fsck checks them)
//! ```
//!
//! A block bitmap covers `8 x block size` blocks (the blocks per group); an inode bitmap uses
//! its first `inodes per group` bits and has the rest of the block set as padding.

/// A bitmap block of `bs` bytes: bits `valid..` set (padding), the rest clear.
pub fn padded(bs: usize, valid: usize) -> Vec<u8> {
    debug_assert!(valid <= bs * 8);
    let mut b = vec![0u8; bs];
    set_range(&mut b, valid, bs * 8);
    b
}

/// A bitmap block with bits `0..used` set, `used..valid` clear and `valid..` set.
pub fn prefix(bs: usize, used: usize, valid: usize) -> Vec<u8> {
    debug_assert!(used <= valid);
    let mut b = padded(bs, valid);
    set_range(&mut b, 0, used);
    b
}

/// Sets bits `from..to`.
pub fn set_range(b: &mut [u8], from: usize, to: usize) {
    let mut i = from;
    while i < to && i % 8 != 0 {
        b[i / 8] |= 1 << (i % 8);
        i += 1;
    }
    if i + 8 <= to {
        let whole = (to - i) / 8;
        b[i / 8..i / 8 + whole].fill(0xFF);
        i += whole * 8;
    }
    while i < to {
        b[i / 8] |= 1 << (i % 8);
        i += 1;
    }
}

/// Number of set bits among the first `bits` bits.
pub fn count_set(b: &[u8], bits: usize) -> usize {
    let whole: usize = b[..bits / 8].iter().map(|x| x.count_ones() as usize).sum();
    let rest = bits % 8;
    let tail = if rest == 0 {
        0
    } else {
        (b[bits / 8] & ((1u8 << rest) - 1)).count_ones() as usize
    };
    whole + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bit(b: &[u8], i: usize) -> bool {
        b[i / 8] & (1 << (i % 8)) != 0
    }

    #[test]
    fn prefix_and_padding_bits() {
        for bs in [1024usize, 4096] {
            let bits = bs * 8;
            for (used, valid) in [(0, bits), (11, 8192), (13, 13), (bits, bits), (7, 9)] {
                let b = prefix(bs, used, valid);
                for i in 0..bits {
                    assert_eq!(
                        bit(&b, i),
                        i < used || i >= valid,
                        "bit {i} used {used} valid {valid}"
                    );
                }
            }
        }
    }

    #[test]
    fn ranges_and_counts() {
        let mut b = padded(1024, 8000);
        set_range(&mut b, 3, 5);
        set_range(&mut b, 16, 40);
        set_range(&mut b, 41, 42);
        assert_eq!(count_set(&b, 8000), 2 + 24 + 1);
        assert_eq!(count_set(&b, 4), 1);
        assert_eq!(count_set(&b, 8003), 27 + 3);
        assert!(!bit(&b, 2) && bit(&b, 3) && bit(&b, 4) && !bit(&b, 5));
        assert!(bit(&b, 39) && !bit(&b, 40) && bit(&b, 41));
        assert!(bit(&b, 8000) && bit(&b, 8191) && !bit(&b, 7999));
    }
}
