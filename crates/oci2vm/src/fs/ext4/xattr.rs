//! Extended attributes: in the inode's spare bytes or in one (shared) xattr block.
//!
//! Spec: <https://www.kernel.org/doc/html/latest/filesystems/ext4/attributes.html>
//!
//! ```text
//! in-inode (after i_extra_isize, 92 usable bytes here)   xattr block (one fs block)
//! +-------------------+                                  +-------------------------------+
//! | magic 0xEA020000  |                                  | h_magic 0xEA020000 h_refcount |
//! +-------------------+ <- value offsets count from here | h_blocks 1 h_hash h_checksum  |
//! | entries ...       |                                  | reserved (32 bytes in all)    |
//! | 0u32 terminator   |                                  +-------------------------------+
//! |      ... values   |                                  | entries sorted by (index,     |
//! +-------------------+                                  |  name_len, name), 0u32 end    |
//!                                                        |          ... values (from end)|
//! entry: e_name_len u8 | e_name_index u8 | e_value_offs u16 | e_value_inum u32 (0)
//!        e_value_size u32 | e_hash u32 | name (padded to 4)
//! ```
//!
//! Name prefixes are stored as an index: 1 `user.`, 2 `system.posix_acl_access`,
//! 3 `system.posix_acl_default`, 4 `trusted.`, 6 `security.`, 7 `system.`. POSIX ACL values
//! are converted from the VFS format (version 2, 8-byte entries) to the ext4 format (version 1,
//! 4-byte entries for owner/group/mask/other, 8-byte for named users and groups).
//! An inode's set goes wholly in the inode when it fits, else wholly in a block; identical
//! block sets are shared (`h_refcount`, at most 1024 inodes per block).

use super::{Ext4Error, put16, put32};
use crate::layers::tree::Xattrs;

/// Magic of the in-inode area and of xattr blocks.
pub const MAGIC: u32 = 0xEA02_0000;
/// Bytes after the magic in a 256-byte inode with `i_extra_isize` 32.
pub const INLINE_SPACE: usize = 256 - 128 - 32 - 4;
/// Most inodes sharing one block.
pub const MAX_REFCOUNT: u32 = 1024;
const BLOCK_HEADER: usize = 32;

/// One attribute in on-disk form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Attr {
    /// Name index (prefix).
    pub index: u8,
    /// Name without the prefix.
    pub name: Vec<u8>,
    /// Value (ACLs already converted).
    pub value: Vec<u8>,
}

fn split_name(full: &[u8]) -> Option<(u8, &[u8])> {
    match full {
        b"system.posix_acl_access" => return Some((2, b"")),
        b"system.posix_acl_default" => return Some((3, b"")),
        _ => {}
    }
    for (prefix, idx) in [
        (&b"user."[..], 1),
        (b"trusted.", 4),
        (b"security.", 6),
        (b"system.", 7),
    ] {
        if let Some(rest) = full.strip_prefix(prefix) {
            return (!rest.is_empty() && rest.len() <= 255).then_some((idx, rest));
        }
    }
    None
}

/// Converts a VFS (`posix_acl_xattr`, version 2) ACL to the ext4 on-disk format (version 1).
pub fn acl_to_disk(vfs: &[u8]) -> Option<Vec<u8>> {
    let (head, body) = vfs.split_at_checked(4)?;
    if u32::from_le_bytes(head.try_into().ok()?) != 2 || body.len() % 8 != 0 {
        return None;
    }
    let mut out = 1u32.to_le_bytes().to_vec();
    for e in body.chunks_exact(8) {
        let tag = u16::from_le_bytes([e[0], e[1]]);
        match tag {
            0x01 | 0x04 | 0x10 | 0x20 => out.extend_from_slice(&e[..4]),
            0x02 | 0x08 => out.extend_from_slice(e),
            _ => return None,
        }
    }
    Some(out)
}

/// Converts a tree's xattrs to on-disk attributes, sorted as the kernel expects in blocks.
/// Names without an ext4 namespace are dropped and counted in `dropped`.
pub fn prepare(
    xattrs: &Xattrs,
    path: &dyn Fn() -> String,
    dropped: &mut u64,
) -> Result<Vec<Attr>, Ext4Error> {
    let mut out = Vec::with_capacity(xattrs.len());
    for (full, value) in xattrs {
        let Some((index, name)) = split_name(full) else {
            tracing::warn!(path = %path(), name = %String::from_utf8_lossy(full), "xattr namespace not stored by ext4, dropped");
            *dropped += 1;
            continue;
        };
        let value = if index == 2 || index == 3 {
            acl_to_disk(value).ok_or_else(|| Ext4Error::Acl {
                path: path(),
                name: String::from_utf8_lossy(full).into_owned(),
            })?
        } else {
            value.clone()
        };
        out.push(Attr {
            index,
            name: name.to_vec(),
            value,
        });
    }
    out.sort_by(|a, b| (a.index, a.name.len(), &a.name).cmp(&(b.index, b.name.len(), &b.name)));
    Ok(out)
}

fn entry_len(a: &Attr) -> usize {
    (16 + a.name.len() + 3) & !3
}

fn value_len(a: &Attr) -> usize {
    (a.value.len() + 3) & !3
}

/// Bytes the entries and values take (terminator included).
pub fn bytes(attrs: &[Attr]) -> usize {
    attrs
        .iter()
        .map(|a| entry_len(a) + value_len(a))
        .sum::<usize>()
        + 4
}

/// Does the set fit in the inode?
pub fn fits_inline(attrs: &[Attr]) -> bool {
    bytes(attrs) <= INLINE_SPACE
}

/// Does the set fit in one block?
pub fn fits_block(bs: usize, attrs: &[Attr]) -> bool {
    bytes(attrs) + BLOCK_HEADER <= bs
}

/// The entry hash (`ext4_xattr_hash_entry`, unsigned name bytes).
pub fn entry_hash(a: &Attr) -> u32 {
    let mut h = 0u32;
    for &c in &a.name {
        h = (h << 5) ^ (h >> 27) ^ u32::from(c);
    }
    let mut padded = a.value.clone();
    padded.resize(value_len(a), 0);
    for w in padded.chunks_exact(4) {
        h = (h << 16) ^ (h >> 16) ^ u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
    }
    h
}

/// Writes entries at `region[0..]` and values from `region.len()` down; value offsets are
/// relative to `region[0] - value_base`. Returns the entry hashes.
fn encode_entries(attrs: &[Attr], region: &mut [u8], value_base: usize) -> Vec<u32> {
    let mut hashes = Vec::with_capacity(attrs.len());
    let (mut e, mut v) = (0usize, region.len());
    for a in attrs {
        let offs = if a.value.is_empty() {
            0
        } else {
            v -= value_len(a);
            region[v..v + a.value.len()].copy_from_slice(&a.value);
            v + value_base
        };
        let h = entry_hash(a);
        region[e] = a.name.len() as u8;
        region[e + 1] = a.index;
        put16(region, e + 2, offs as u16);
        put32(region, e + 4, 0);
        put32(region, e + 8, a.value.len() as u32);
        put32(region, e + 12, h);
        region[e + 16..e + 16 + a.name.len()].copy_from_slice(&a.name);
        e += entry_len(a);
        hashes.push(h);
    }
    put32(region, e, 0);
    hashes
}

/// Encodes the in-inode area: `area` is the inode's bytes after `i_extra_isize` (96 here).
pub fn encode_inline(attrs: &[Attr], area: &mut [u8]) {
    put32(area, 0, MAGIC);
    encode_entries(attrs, &mut area[4..], 0);
}

/// Encodes an xattr block shared by `refcount` inodes.
pub fn encode_block(bs: usize, attrs: &[Attr], refcount: u32) -> Vec<u8> {
    let mut b = vec![0u8; bs];
    let hashes = encode_entries(attrs, &mut b[BLOCK_HEADER..], BLOCK_HEADER);
    let mut h = 0u32;
    for eh in hashes {
        if eh == 0 {
            h = 0;
            break;
        }
        h = (h << 16) ^ (h >> 16) ^ eh;
    }
    put32(&mut b, 0, MAGIC);
    put32(&mut b, 4, refcount);
    put32(&mut b, 8, 1);
    put32(&mut b, 12, h);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(pairs: &[(&str, &[u8])]) -> Xattrs {
        pairs
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.to_vec()))
            .collect()
    }

    #[test]
    fn prefixes_sorting_and_drops() {
        let x = set(&[
            ("user.bb", b"1"),
            ("user.a", b"2"),
            ("security.capability", b"c"),
            ("os2.x", b""),
        ]);
        let mut dropped = 0;
        let a = prepare(&x, &|| "p".into(), &mut dropped).unwrap();
        assert_eq!(dropped, 1);
        let keys: Vec<(u8, &[u8])> = a.iter().map(|a| (a.index, &a.name[..])).collect();
        assert_eq!(keys, [(1, &b"a"[..]), (1, b"bb"), (6, b"capability")]);
    }

    #[test]
    fn acl_conversion_shrinks_short_entries() {
        let mut vfs = 2u32.to_le_bytes().to_vec();
        for (tag, perm, id) in [
            (1u16, 6u16, u32::MAX),
            (2, 4, 1000),
            (4, 4, u32::MAX),
            (0x10, 4, u32::MAX),
            (0x20, 0, u32::MAX),
        ] {
            vfs.extend_from_slice(&tag.to_le_bytes());
            vfs.extend_from_slice(&perm.to_le_bytes());
            vfs.extend_from_slice(&id.to_le_bytes());
        }
        let d = acl_to_disk(&vfs).unwrap();
        assert_eq!(d.len(), 4 + 4 + 8 + 4 + 4 + 4);
        assert_eq!(&d[..4], &1u32.to_le_bytes());
        assert_eq!(&d[8..16], &[2, 0, 4, 0, 0xE8, 3, 0, 0]);
        assert!(acl_to_disk(&[1, 0, 0, 0]).is_none());
        assert!(acl_to_disk(&[2, 0, 0, 0, 1]).is_none());
    }

    #[test]
    fn inline_and_block_layouts() {
        let x = set(&[("user.k", b"value")]);
        let a = prepare(&x, &|| "p".into(), &mut 0).unwrap();
        assert!(fits_inline(&a));
        let mut area = [0u8; 96];
        encode_inline(&a, &mut area);
        assert_eq!(&area[..4], &MAGIC.to_le_bytes());
        let offs = usize::from(u16::from_le_bytes([area[6], area[7]]));
        assert_eq!(&area[4 + offs..4 + offs + 5], b"value");
        let big = set(&[("user.big", &[7u8; 3000])]);
        let a = prepare(&big, &|| "p".into(), &mut 0).unwrap();
        assert!(!fits_inline(&a) && fits_block(4096, &a));
        assert!(!fits_block(1024, &a));
        let b = encode_block(4096, &a, 3);
        let offs = usize::from(u16::from_le_bytes([b[34], b[35]]));
        assert_eq!(&b[offs..offs + 3000], &[7u8; 3000][..]);
        assert_eq!(&b[4..8], &3u32.to_le_bytes());
        assert_ne!(u32::from_le_bytes(b[12..16].try_into().unwrap()), 0);
    }
}
