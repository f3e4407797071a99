//! Test-only tar -> Tree loader (the real layer engine lives in `layers`): enough of tar to
//! load a flattened rootfs tar such as the Debian fixture.

use std::io::Read;
use std::path::Path;

use oci2vm::layers::tree::{Inode, InodeKind, NodeId, Timestamp};
use tar::EntryType;

use super::Fx;

fn clean(path: &[u8]) -> Vec<u8> {
    let p = path.strip_prefix(b"./").unwrap_or(path);
    let p = p.strip_prefix(b"/").unwrap_or(p);
    p.strip_suffix(b"/").unwrap_or(p).to_vec()
}

fn lookup(fx: &Fx, path: &[u8]) -> Option<NodeId> {
    let mut cur = fx.tree.root();
    for part in path.split(|&b| b == b'/').filter(|p| !p.is_empty()) {
        cur = fx.tree.lookup(cur, part)?;
    }
    Some(cur)
}

/// Loads a rootfs tar into a fresh tree; contents go to a spool file in `spool_dir`.
pub fn load(tar_path: &Path, spool_dir: &Path) -> Fx {
    let mut fx = Fx::with_file_spool(spool_dir);
    let file = std::fs::File::open(tar_path).expect("open tar");
    let mut ar = tar::Archive::new(std::io::BufReader::with_capacity(1 << 20, file));
    for entry in ar.entries().expect("tar entries") {
        let mut e = entry.expect("tar entry");
        let path = clean(&e.path_bytes());
        let h = e.header().clone();
        let mut mtime = Timestamp::from_secs(h.mtime().unwrap_or(0) as i64);
        let mut xattrs = Vec::new();
        if let Some(exts) = e.pax_extensions().expect("pax") {
            for ext in exts {
                let ext = ext.expect("pax record");
                let key = ext.key_bytes();
                if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                    xattrs.push((name.to_vec(), ext.value_bytes().to_vec()));
                } else if key == b"mtime" {
                    let v = String::from_utf8_lossy(ext.value_bytes()).into_owned();
                    let (s, ns) = v.split_once('.').unwrap_or((&v, "0"));
                    let ns = format!("{ns:0<9}");
                    mtime = Timestamp {
                        sec: s.parse().unwrap_or(0),
                        nsec: ns[..9].parse().unwrap_or(0),
                    };
                }
            }
        }
        let (mode, uid, gid) = (
            h.mode().unwrap_or(0o644),
            h.uid().unwrap_or(0) as u32,
            h.gid().unwrap_or(0) as u32,
        );
        let dev = || {
            (
                h.device_major().ok().flatten().unwrap_or(0),
                h.device_minor().ok().flatten().unwrap_or(0),
            )
        };
        let kind = match h.entry_type() {
            EntryType::Regular | EntryType::Continuous => {
                let seg = fx.seg;
                let content = fx
                    .spool
                    .append_from(seg, &mut e as &mut dyn Read)
                    .expect("spool");
                InodeKind::File { content }
            }
            EntryType::Directory => InodeKind::Dir,
            EntryType::Symlink => InodeKind::Symlink {
                target: e.link_name_bytes().expect("target").to_vec(),
            },
            EntryType::Char => InodeKind::CharDevice {
                major: dev().0,
                minor: dev().1,
            },
            EntryType::Block => InodeKind::BlockDevice {
                major: dev().0,
                minor: dev().1,
            },
            EntryType::Fifo => InodeKind::Fifo,
            EntryType::Link => {
                let target = clean(&e.link_name_bytes().expect("link target"));
                let existing = lookup(&fx, &target).expect("hard link target exists");
                let name = String::from_utf8(path.clone()).expect("utf-8 test paths");
                fx.hardlink(&name, existing);
                continue;
            }
            _ => continue,
        };
        if path.is_empty() {
            let root = fx.tree.root();
            let id = fx.tree.node(root).inode;
            let r = fx.tree.inode_mut(id);
            (r.mode, r.uid, r.gid, r.mtime) = (mode & 0o7777, uid, gid, mtime);
            continue;
        }
        if let Some(old) = lookup(&fx, &path) {
            if matches!(kind, InodeKind::Dir) && fx.tree.inode_of(old).is_dir() {
                let id = fx.tree.node(old).inode;
                let d = fx.tree.inode_mut(id);
                (d.mode, d.uid, d.gid, d.mtime) = (mode & 0o7777, uid, gid, mtime);
                continue;
            }
            fx.tree.unlink(old);
        }
        let mut inode = Inode::new(kind, mode, uid, gid, mtime);
        inode.xattrs.extend(xattrs);
        let name = String::from_utf8(path).expect("utf-8 test paths");
        fx.add(&name, inode);
    }
    fx
}
