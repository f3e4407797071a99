//! Inodes: 256 bytes each (128-byte base + 32 bytes of extra fields + in-inode xattrs).
//!
//! Spec: <https://www.kernel.org/doc/html/latest/filesystems/ext4/inodes.html>
//!
//! ```text
//! 0x00 i_mode u16   0x02 i_uid lo16   0x04 i_size_lo   0x08 i_atime  0x0C i_ctime
//! 0x10 i_mtime      0x14 i_dtime (0)  0x18 i_gid lo16  0x1A i_links_count u16
//! 0x1C i_blocks_lo (512-byte units)   0x20 i_flags     0x24 l_i_version
//! 0x28 i_block[60]: extent root | fast symlink target | device number
//! 0x64 i_generation 0x68 i_file_acl_lo (xattr block)   0x6C i_size_high
//! 0x74 l_i_blocks_high u16  0x76 l_i_file_acl_high u16 0x78 l_i_uid_high 0x7A l_i_gid_high
//! 0x80 i_extra_isize u16 (32)  0x84 i_ctime_extra  0x88 i_mtime_extra  0x8C i_atime_extra
//! 0x90 i_crtime  0x94 i_crtime_extra  0x98 i_version_hi  0x9C i_projid
//! 0xA0 in-inode xattrs: magic 0xEA020000, entries, values (to 0xFF)
//! ```
//!
//! `*_extra` = `nsec << 2 | epoch`, where the 2 epoch bits extend the signed 32-bit seconds
//! (dates from 1901 to 2446). Devices use the old encoding in `i_block[0]` when major and minor
//! are < 256, else the new one in `i_block[1]`.

use super::xattr::{self, Attr};
use super::{put16, put32};
use crate::layers::tree::Timestamp;

/// `i_flags`: hashed (htree) directory.
pub const INDEX_FL: u32 = 0x1000;
/// `i_flags`: extent-mapped.
pub const EXTENTS_FL: u32 = 0x80000;
/// Extra inode bytes in use (`i_extra_isize`).
pub const EXTRA_ISIZE: u16 = 32;

/// Everything one on-disk inode records.
#[derive(Debug, Clone)]
pub struct DiskInode<'a> {
    /// `st_mode`.
    pub mode: u16,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes.
    pub size: u64,
    /// Used for atime, ctime, mtime and crtime.
    pub time: Timestamp,
    /// Link count.
    pub links: u16,
    /// Allocated blocks in 512-byte units (data, tree and xattr blocks).
    pub blocks_512: u64,
    /// `i_flags`.
    pub flags: u32,
    /// The 60 bytes of `i_block`.
    pub i_block: [u8; 60],
    /// Xattr block, or 0.
    pub xattr_block: u64,
    /// In-inode xattrs (`None` or empty: no in-inode area).
    pub inline_xattrs: Option<&'a [Attr]>,
}

/// `(seconds low 32 bits, extra)` for a timestamp, clamped to ext4's range.
pub fn encode_time(t: Timestamp) -> (u32, u32) {
    let min = i64::from(i32::MIN);
    let max = i64::from(i32::MAX) + (3i64 << 32);
    let sec = t.sec.clamp(min, max);
    let epoch = ((sec - i64::from(sec as i32)) >> 32) as u32 & 3;
    let nsec = if t.nsec < 1_000_000_000 { t.nsec } else { 0 };
    (sec as u32, (nsec << 2) | epoch)
}

/// `i_block` for a device number.
pub fn device_block(major: u32, minor: u32) -> [u8; 60] {
    let mut b = [0u8; 60];
    if major < 256 && minor < 256 {
        put32(&mut b, 0, (major << 8) | minor);
    } else {
        put32(
            &mut b,
            4,
            (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & !0xff) << 12),
        );
    }
    b
}

impl DiskInode<'_> {
    /// Writes the 256 bytes into `out`.
    pub fn encode(&self, out: &mut [u8]) {
        out[..256].fill(0);
        put16(out, 0x00, self.mode);
        put16(out, 0x02, self.uid as u16);
        put32(out, 0x04, self.size as u32);
        let (t, extra) = encode_time(self.time);
        for off in [0x08, 0x0C, 0x10, 0x90] {
            put32(out, off, t);
        }
        for off in [0x84, 0x88, 0x8C, 0x94] {
            put32(out, off, extra);
        }
        put16(out, 0x18, self.gid as u16);
        put16(out, 0x1A, self.links);
        put32(out, 0x1C, self.blocks_512 as u32);
        put32(out, 0x20, self.flags);
        out[0x28..0x64].copy_from_slice(&self.i_block);
        put32(out, 0x68, self.xattr_block as u32);
        put32(out, 0x6C, (self.size >> 32) as u32);
        put16(out, 0x74, (self.blocks_512 >> 32) as u16);
        put16(out, 0x76, (self.xattr_block >> 32) as u16);
        put16(out, 0x78, (self.uid >> 16) as u16);
        put16(out, 0x7A, (self.gid >> 16) as u16);
        put16(out, 0x80, EXTRA_ISIZE);
        if let Some(attrs) = self.inline_xattrs.filter(|a| !a.is_empty()) {
            xattr::encode_inline(attrs, &mut out[0x80 + usize::from(EXTRA_ISIZE)..256]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_encode_epoch_and_nanoseconds() {
        assert_eq!(encode_time(Timestamp { sec: 0, nsec: 5 }), (0, 20));
        assert_eq!(encode_time(Timestamp::from_secs(-1)), (u32::MAX, 0));
        assert_eq!(encode_time(Timestamp::from_secs(1 << 31)), (1 << 31, 1));
        assert_eq!(encode_time(Timestamp::from_secs(i64::MIN)).1, 0);
    }

    #[test]
    fn devices_old_and_new_encoding() {
        assert_eq!(&device_block(5, 1)[..4], &0x0501u32.to_le_bytes());
        let b = device_block(259, 300);
        assert_eq!(&b[..4], &[0; 4]);
        assert_eq!(
            u32::from_le_bytes(b[4..8].try_into().unwrap()),
            0x2c | (259 << 8) | (0x100 << 12)
        );
    }

    #[test]
    fn ids_split_high_and_low() {
        let i = DiskInode {
            mode: 0o100644,
            uid: 4_294_967_294,
            gid: 70000,
            size: 5 << 32,
            time: Timestamp { sec: 1, nsec: 2 },
            links: 1,
            blocks_512: 8,
            flags: EXTENTS_FL,
            i_block: [0; 60],
            xattr_block: 0,
            inline_xattrs: None,
        };
        let mut b = [0u8; 256];
        i.encode(&mut b);
        assert_eq!(&b[2..4], &[0xFE, 0xFF]);
        assert_eq!(&b[0x78..0x7A], &[0xFF, 0xFF]);
        assert_eq!(u16::from_le_bytes([b[0x7A], b[0x7B]]), 1);
        assert_eq!(u32::from_le_bytes(b[0x6C..0x70].try_into().unwrap()), 5);
        assert_eq!(&b[0xA0..0xA4], &[0; 4]);
    }
}
