//! Turning a tar [`Entry`](super::tar::Entry) into a validated [`LayerEntry`]: normalised
//! name, checked link target, device numbers and xattrs, content already spooled.
//!
//! This runs on the per-layer worker (in parallel with other layers); everything here is
//! independent of the merged tree. Tree-dependent checks (parents, hard-link targets) happen
//! when the entry is applied in layer order.

use super::error::EntryError;
use super::limits::{Limits, MAX_DEV_MAJOR, MAX_DEV_MINOR};
use super::path::{CleanPath, PathError, normalize};
use super::spool::ContentRef;
use super::tar::{Entry, EntryKind};
use super::tree::{Timestamp, Xattrs};

/// What an entry creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// A regular file with spooled content.
    File(ContentRef),
    /// A directory.
    Dir,
    /// A symlink to the raw target.
    Symlink(Vec<u8>),
    /// A hard link to the (normalised) target.
    Link(CleanPath),
    /// A character device.
    Char(u32, u32),
    /// A block device.
    Block(u32, u32),
    /// A FIFO.
    Fifo,
}

/// One validated entry of a layer, ready to apply.
#[derive(Debug, Clone)]
pub struct LayerEntry {
    /// Ordinal in the layer's tar stream.
    pub index: u64,
    /// The raw name, for messages.
    pub raw_path: Vec<u8>,
    /// The normalised name.
    pub path: CleanPath,
    /// What it creates.
    pub body: Body,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time.
    pub mtime: Timestamp,
    /// Extended attributes.
    pub xattrs: Xattrs,
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Validates a parsed tar entry. `content` is where its data was spooled (files only).
pub fn prepare(e: Entry, content: ContentRef, limits: &Limits) -> Result<LayerEntry, EntryError> {
    let path = normalize(&e.path, limits.name_len, limits.path_len)?;
    let dev = |major: u64, minor: u64| {
        if major > u64::from(MAX_DEV_MAJOR) || minor > u64::from(MAX_DEV_MINOR) {
            Err(EntryError::DeviceRange { major, minor })
        } else {
            Ok((major as u32, minor as u32))
        }
    };
    let body = match e.kind {
        EntryKind::File => Body::File(content),
        EntryKind::Dir => Body::Dir,
        EntryKind::Fifo => Body::Fifo,
        EntryKind::Char => {
            let (a, b) = dev(e.devmajor, e.devminor)?;
            Body::Char(a, b)
        }
        EntryKind::Block => {
            let (a, b) = dev(e.devmajor, e.devminor)?;
            Body::Block(a, b)
        }
        EntryKind::Symlink => {
            if e.link.is_empty() {
                return Err(EntryError::EmptySymlink);
            }
            if e.link.len() > limits.symlink_target {
                return Err(EntryError::SymlinkTooLong {
                    len: e.link.len(),
                    limit: limits.symlink_target,
                });
            }
            Body::Symlink(e.link)
        }
        EntryKind::Link => {
            let target =
                normalize(&e.link, limits.name_len, limits.path_len).map_err(|source| {
                    EntryError::LinkPath {
                        target: lossy(&e.link),
                        source,
                    }
                })?;
            if target.is_root() {
                return Err(EntryError::LinkPath {
                    target: lossy(&e.link),
                    source: PathError::Empty,
                });
            }
            Body::Link(target)
        }
    };
    let mut xattrs = Xattrs::new();
    for (name, value) in e.xattrs {
        if name.is_empty() || name.len() > limits.xattr_name || name.contains(&0) {
            return Err(EntryError::XattrName { name: lossy(&name) });
        }
        if value.len() > limits.xattr_value {
            return Err(EntryError::XattrValue {
                name: lossy(&name),
                len: value.len(),
                limit: limits.xattr_value,
            });
        }
        xattrs.insert(name, value);
    }
    Ok(LayerEntry {
        index: e.index,
        raw_path: e.path,
        path,
        body,
        mode: e.mode,
        uid: e.uid,
        gid: e.gid,
        mtime: e.mtime,
        xattrs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: EntryKind, path: &str, link: &str) -> Entry {
        Entry {
            index: 0,
            path: path.into(),
            link: link.into(),
            kind,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: Timestamp::default(),
            size: 0,
            devmajor: 0,
            devminor: 0,
            xattrs: Vec::new(),
        }
    }

    #[test]
    fn validates_links_devices_and_xattrs() {
        let l = Limits::default();
        let ok = prepare(
            entry(EntryKind::Link, "b", "/etc/passwd"),
            ContentRef::EMPTY,
            &l,
        )
        .unwrap();
        assert!(matches!(ok.body, Body::Link(ref t) if t.bytes == b"etc/passwd"));
        assert!(matches!(
            prepare(
                entry(EntryKind::Link, "b", "../../etc/passwd"),
                ContentRef::EMPTY,
                &l
            ),
            Err(EntryError::LinkPath { .. })
        ));
        assert!(matches!(
            prepare(entry(EntryKind::Symlink, "s", ""), ContentRef::EMPTY, &l),
            Err(EntryError::EmptySymlink)
        ));
        let long = "x".repeat(4096);
        assert!(matches!(
            prepare(entry(EntryKind::Symlink, "s", &long), ContentRef::EMPTY, &l),
            Err(EntryError::SymlinkTooLong { .. })
        ));
        let mut dev = entry(EntryKind::Char, "c", "");
        dev.devmajor = 4096;
        assert!(matches!(
            prepare(dev, ContentRef::EMPTY, &l),
            Err(EntryError::DeviceRange { .. })
        ));
        let mut x = entry(EntryKind::File, "f", "");
        x.xattrs.push((b"user.big".to_vec(), vec![0; 65_537]));
        assert!(matches!(
            prepare(x, ContentRef::EMPTY, &l),
            Err(EntryError::XattrValue { .. })
        ));
        let mut x = entry(EntryKind::File, "f", "");
        x.xattrs
            .push((format!("user.{}", "n".repeat(251)).into_bytes(), vec![]));
        assert!(matches!(
            prepare(x, ContentRef::EMPTY, &l),
            Err(EntryError::XattrName { .. })
        ));
    }
}
