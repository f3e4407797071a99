//! Shared helpers for the ext4/cpio format tests: tree building, tool oracles, read-back.

use std::path::Path;
use std::process::Command;

use oci2vm::layers::spool::{Segment, Spool};
use oci2vm::layers::tree::{Inode, InodeKind, NodeId, Timestamp, Tree};
use sha2::{Digest, Sha256};

/// Runs `e2fsck -fn` and fails loudly with its output unless it exits 0.
pub fn fsck(image: &Path) {
    let out = Command::new("e2fsck")
        .arg("-fn")
        .arg(image)
        .output()
        .expect("e2fsck runs");
    assert!(
        out.status.success(),
        "e2fsck -fn {} exited {:?}\n{}\n{}",
        image.display(),
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `debugfs -R CMD image` stdout.
pub fn debugfs(image: &Path, cmd: &str) -> String {
    let out = Command::new("debugfs")
        .arg("-R")
        .arg(cmd)
        .arg(image)
        .output()
        .expect("debugfs runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The "Filesystem features:" line of `dumpe2fs -h`.
pub fn dumpe2fs_features(image: &Path) -> String {
    let out = Command::new("dumpe2fs")
        .arg("-h")
        .arg(image)
        .output()
        .expect("dumpe2fs runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find(|l| l.starts_with("Filesystem features:"))
        .unwrap_or_default()
        .to_string()
}

/// A tree plus spool under construction.
#[derive(Debug)]
pub struct Fx {
    pub tree: Tree,
    pub spool: Spool,
    pub seg: u32,
}

pub const T0: Timestamp = Timestamp {
    sec: 1_700_000_000,
    nsec: 123_456_789,
};

impl Fx {
    pub fn new() -> Self {
        let mut spool = Spool::new();
        let seg = spool.add_segment(Segment::Memory(Vec::new()));
        Fx {
            tree: Tree::new(0o755, 0, 0, T0),
            spool,
            seg,
        }
    }

    /// A spool backed by a file in `dir` (large contents).
    pub fn with_file_spool(dir: &Path) -> Self {
        let mut fx = Fx::new();
        let f = tempfile::tempfile_in(dir).expect("spool file");
        fx.seg = fx.spool.add_file(f).expect("segment");
        fx
    }

    fn parent_of(&mut self, path: &str) -> (NodeId, String) {
        let mut cur = self.tree.root();
        let parts: Vec<&str> = path.split('/').collect();
        for p in &parts[..parts.len() - 1] {
            cur = match self.tree.lookup(cur, p.as_bytes()) {
                Some(n) => n,
                None => {
                    let ino = self
                        .tree
                        .add_inode(Inode::new(InodeKind::Dir, 0o755, 0, 0, T0));
                    self.tree.link(cur, p.as_bytes(), ino, 0)
                }
            };
        }
        (cur, parts[parts.len() - 1].to_string())
    }

    pub fn add(&mut self, path: &str, inode: Inode) -> NodeId {
        let (dir, name) = self.parent_of(path);
        let id = self.tree.add_inode(inode);
        self.tree.link(dir, name.as_bytes(), id, 0)
    }

    pub fn file(&mut self, path: &str, data: &[u8]) -> NodeId {
        let content = self.spool.append(self.seg, data).expect("append");
        self.add(
            path,
            Inode::new(InodeKind::File { content }, 0o644, 0, 0, T0),
        )
    }

    pub fn dir(&mut self, path: &str) -> NodeId {
        self.add(path, Inode::new(InodeKind::Dir, 0o755, 0, 0, T0))
    }

    pub fn symlink(&mut self, path: &str, target: &[u8]) -> NodeId {
        self.add(
            path,
            Inode::new(
                InodeKind::Symlink {
                    target: target.to_vec(),
                },
                0o777,
                0,
                0,
                T0,
            ),
        )
    }

    pub fn hardlink(&mut self, path: &str, existing: NodeId) -> NodeId {
        let ino = self.tree.node(existing).inode;
        let (dir, name) = self.parent_of(path);
        self.tree.link(dir, name.as_bytes(), ino, 0)
    }
}

fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Reads the image back with ext4-view and compares every entry with the tree: type, mode,
/// uid, gid, size, mtime, content, link target; and each directory's entry set. Directories
/// are listed once each (lookups by path would be quadratic in linear directories).
pub fn compare_with_ext4_view(image: &Path, fx: &Fx) {
    use std::collections::HashMap;
    let fs = ext4_view::Ext4::load_from_path(image).expect("ext4-view loads the image");
    let tree = &fx.tree;
    let root_meta = fs.metadata("/").expect("root");
    check_meta(fx, tree.root(), &root_meta, "/");
    let mut dirs = vec![tree.root()];
    let mut seen = 0usize;
    while let Some(d) = dirs.pop() {
        let mut p = b"/".to_vec();
        p.extend_from_slice(&tree.path(d));
        let mut listed: HashMap<Vec<u8>, ext4_view::DirEntry> = HashMap::new();
        for e in fs.read_dir(&p[..]).expect("read_dir") {
            let e = e.expect("dir entry");
            listed.insert(e.file_name().as_ref().to_vec(), e);
        }
        let kids = tree.children_sorted(d);
        let extra = if d == tree.root() && tree.lookup(d, b"lost+found").is_none() {
            1
        } else {
            0
        };
        assert_eq!(
            listed.len(),
            kids.len() + 2 + extra,
            "{}: entry count",
            String::from_utf8_lossy(&p)
        );
        for c in kids {
            seen += 1;
            let name = &tree.node(c).name[..];
            let e = listed.get(name).unwrap_or_else(|| {
                panic!(
                    "{}: missing {}",
                    String::from_utf8_lossy(&p),
                    String::from_utf8_lossy(name)
                )
            });
            let shown = String::from_utf8_lossy(e.path().as_ref()).into_owned();
            let m = e.metadata().expect("metadata");
            check_meta(fx, c, &m, &shown);
            match &tree.inode_of(c).kind {
                InodeKind::File { content } if content.len > 0 => {
                    let got = fs
                        .read(e.path().as_ref())
                        .unwrap_or_else(|err| panic!("{shown}: {err}"));
                    let mut want = vec![0u8; content.len as usize];
                    let mut off = 0;
                    while off < want.len() {
                        off += fx
                            .spool
                            .read_at(content, off as u64, &mut want[off..])
                            .expect("spool");
                    }
                    assert!(
                        got == want,
                        "{shown}: content {} vs {}",
                        sha(&got),
                        sha(&want)
                    );
                }
                InodeKind::Symlink { target } => {
                    let got = fs
                        .read_link(e.path().as_ref())
                        .unwrap_or_else(|err| panic!("{shown}: {err}"));
                    assert_eq!(got.as_ref(), &target[..], "{shown}: target");
                }
                InodeKind::Dir => dirs.push(c),
                _ => {}
            }
        }
    }
    assert_eq!(seen, tree.len());
}

fn check_meta(fx: &Fx, n: NodeId, m: &ext4_view::Metadata, shown: &str) {
    let inode = fx.tree.inode_of(n);
    let ft = m.file_type();
    let ok_type = match &inode.kind {
        InodeKind::File { .. } => ft.is_regular_file(),
        InodeKind::Dir => ft.is_dir(),
        InodeKind::Symlink { .. } => ft.is_symlink(),
        InodeKind::CharDevice { .. } => ft.is_char_dev(),
        InodeKind::BlockDevice { .. } => ft.is_block_dev(),
        InodeKind::Fifo => ft.is_fifo(),
        InodeKind::Socket => ft.is_socket(),
    };
    assert!(ok_type, "{shown}: type {ft:?} vs {:?}", inode.kind);
    assert_eq!(u32::from(m.mode()), inode.mode, "{shown}: mode");
    assert_eq!((m.uid(), m.gid()), (inode.uid, inode.gid), "{shown}: owner");
    let t = m.modified();
    assert_eq!(
        (t.seconds(), t.nanoseconds()),
        (inode.mtime.sec, inode.mtime.nsec),
        "{shown}: mtime"
    );
    if !inode.is_dir() {
        assert_eq!(m.len(), inode.kind.size(), "{shown}: size");
    }
}
