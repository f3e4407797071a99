//! The merged tree: an arena of directory entries ([`Node`]) pointing at inodes ([`Inode`]).
//!
//! Names are raw bytes (never lossy UTF-8). Directory children live in hash maps, so lookups
//! are O(1) and a merge is linear in the number of entries. Hard links are several nodes that
//! share one [`InodeId`]; an inode's `nlink` counts its live names. File contents are
//! [`ContentRef`]s into the [`Spool`](super::spool::Spool), never bytes in RAM.
//!
//! Writers read the tree through [`Tree::walk`] (deterministic: parents before children,
//! siblings sorted by raw name bytes), [`Tree::node`], [`Tree::inode`] and [`Tree::path`].

use std::collections::{BTreeMap, HashMap};

use super::spool::ContentRef;

/// Index of a directory entry in the arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u32);

/// Index of an inode in the arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InodeId(pub u32);

/// Seconds and nanoseconds since the Unix epoch (may be negative).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Timestamp {
    /// Whole seconds.
    pub sec: i64,
    /// Nanoseconds, `0..1_000_000_000`.
    pub nsec: u32,
}

impl Timestamp {
    /// A whole-second timestamp.
    pub const fn from_secs(sec: i64) -> Self {
        Timestamp { sec, nsec: 0 }
    }
}

/// Extended attributes, sorted by full name (`user.x`, `security.capability`, ...).
pub type Xattrs = BTreeMap<Vec<u8>, Vec<u8>>;

/// What an inode is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InodeKind {
    /// A regular file; its bytes are in the spool.
    File {
        /// Where the content is.
        content: ContentRef,
    },
    /// A directory (its children are on its [`Node`]).
    Dir,
    /// A symbolic link.
    Symlink {
        /// The raw target bytes.
        target: Vec<u8>,
    },
    /// A character device.
    CharDevice {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A block device.
    BlockDevice {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A named pipe.
    Fifo,
    /// A unix socket.
    Socket,
}

impl InodeKind {
    /// The `S_IFMT` bits for this kind.
    pub fn format_bits(&self) -> u32 {
        match self {
            InodeKind::File { .. } => 0o100000,
            InodeKind::Dir => 0o040000,
            InodeKind::Symlink { .. } => 0o120000,
            InodeKind::CharDevice { .. } => 0o020000,
            InodeKind::BlockDevice { .. } => 0o060000,
            InodeKind::Fifo => 0o010000,
            InodeKind::Socket => 0o140000,
        }
    }

    /// One letter, as `find -printf %y` prints it (`f d l c b p s`).
    pub fn letter(&self) -> char {
        match self {
            InodeKind::File { .. } => 'f',
            InodeKind::Dir => 'd',
            InodeKind::Symlink { .. } => 'l',
            InodeKind::CharDevice { .. } => 'c',
            InodeKind::BlockDevice { .. } => 'b',
            InodeKind::Fifo => 'p',
            InodeKind::Socket => 's',
        }
    }

    /// Size in bytes as `stat` reports it (files: content length; symlinks: target length).
    pub fn size(&self) -> u64 {
        match self {
            InodeKind::File { content } => content.len,
            InodeKind::Symlink { target } => target.len() as u64,
            _ => 0,
        }
    }
}

/// An inode: type, permissions, ownership, time, xattrs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inode {
    /// What it is.
    pub kind: InodeKind,
    /// Permission bits including set-id and sticky (`mode & 0o7777`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time (also used for atime and ctime by writers).
    pub mtime: Timestamp,
    /// Extended attributes.
    pub xattrs: Xattrs,
    /// Number of live names (directory entries) pointing here. For directories this is 1
    /// (writers compute the on-disk link count from subdirectories).
    pub nlink: u32,
}

impl Inode {
    /// A new inode with no names yet.
    pub fn new(kind: InodeKind, mode: u32, uid: u32, gid: u32, mtime: Timestamp) -> Self {
        Inode {
            kind,
            mode: mode & 0o7777,
            uid,
            gid,
            mtime,
            xattrs: Xattrs::new(),
            nlink: 0,
        }
    }

    /// Is this a directory?
    pub fn is_dir(&self) -> bool {
        matches!(self.kind, InodeKind::Dir)
    }

    /// Full `st_mode`: format bits plus permissions.
    pub fn st_mode(&self) -> u32 {
        self.kind.format_bits() | (self.mode & 0o7777)
    }
}

/// A directory entry.
#[derive(Debug, Clone)]
pub struct Node {
    /// The entry's name (empty for the root).
    pub name: Box<[u8]>,
    /// The containing directory (the root is its own parent).
    pub parent: NodeId,
    /// The inode this name points at.
    pub inode: InodeId,
    /// Children by name, for directories.
    pub children: Option<HashMap<Box<[u8]>, NodeId>>,
    /// The last layer that created or replaced this entry (used by whiteout rules).
    pub touched_layer: u32,
    /// The last layer that touched this entry or anything below it.
    pub desc_touched_layer: u32,
    /// False once unlinked.
    pub live: bool,
}

/// The merged tree.
#[derive(Debug, Clone)]
pub struct Tree {
    nodes: Vec<Node>,
    inodes: Vec<Inode>,
}

/// Sentinel for "no layer touched this".
pub const NO_LAYER: u32 = u32::MAX;

impl Tree {
    /// A tree holding only the root directory with the given attributes.
    pub fn new(mode: u32, uid: u32, gid: u32, mtime: Timestamp) -> Self {
        let mut root = Inode::new(InodeKind::Dir, mode, uid, gid, mtime);
        root.nlink = 1;
        let node = Node {
            name: Box::default(),
            parent: NodeId(0),
            inode: InodeId(0),
            children: Some(HashMap::new()),
            touched_layer: NO_LAYER,
            desc_touched_layer: NO_LAYER,
            live: true,
        };
        Tree {
            nodes: vec![node],
            inodes: vec![root],
        }
    }

    /// The root entry.
    pub fn root(&self) -> NodeId {
        NodeId(0)
    }

    /// An entry.
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.0 as usize]
    }

    /// An entry, mutably.
    pub fn node_mut(&mut self, id: NodeId) -> &mut Node {
        &mut self.nodes[id.0 as usize]
    }

    /// An inode.
    pub fn inode(&self, id: InodeId) -> &Inode {
        &self.inodes[id.0 as usize]
    }

    /// An inode, mutably.
    pub fn inode_mut(&mut self, id: InodeId) -> &mut Inode {
        &mut self.inodes[id.0 as usize]
    }

    /// The inode of an entry.
    pub fn inode_of(&self, node: NodeId) -> &Inode {
        self.inode(self.node(node).inode)
    }

    /// Adds an inode (with no names yet) and returns its id.
    pub fn add_inode(&mut self, inode: Inode) -> InodeId {
        self.inodes.push(inode);
        InodeId(u32::try_from(self.inodes.len() - 1).expect("fewer than 2^32 inodes"))
    }

    /// Looks up `name` in directory `dir` (no symlink following).
    pub fn lookup(&self, dir: NodeId, name: &[u8]) -> Option<NodeId> {
        self.node(dir).children.as_ref()?.get(name).copied()
    }

    /// Links `inode` into directory `dir` as `name`, which must not exist yet.
    /// Returns the new entry. Panics if `dir` is not a directory (an invariant of callers).
    pub fn link(&mut self, dir: NodeId, name: &[u8], inode: InodeId, layer: u32) -> NodeId {
        let id = NodeId(u32::try_from(self.nodes.len()).expect("fewer than 2^32 nodes"));
        let is_dir = self.inode(inode).is_dir();
        self.nodes.push(Node {
            name: name.into(),
            parent: dir,
            inode,
            children: if is_dir { Some(HashMap::new()) } else { None },
            touched_layer: layer,
            desc_touched_layer: layer,
            live: true,
        });
        self.inodes[inode.0 as usize].nlink += 1;
        let prev = self
            .node_mut(dir)
            .children
            .as_mut()
            .expect("link into a directory")
            .insert(name.into(), id);
        debug_assert!(prev.is_none(), "link over an existing name");
        id
    }

    /// Removes entry `id` and, for a directory, its whole subtree (iteratively). Inodes whose
    /// last name goes away keep their slot but have `nlink == 0`. The root cannot be removed.
    pub fn unlink(&mut self, id: NodeId) {
        if id == self.root() || !self.node(id).live {
            return;
        }
        let parent = self.node(id).parent;
        let name = self.node(id).name.clone();
        if let Some(ch) = self.node_mut(parent).children.as_mut() {
            ch.remove(&name);
        }
        let mut stack = vec![id];
        while let Some(n) = stack.pop() {
            let node = &mut self.nodes[n.0 as usize];
            node.live = false;
            let inode = node.inode;
            if let Some(ch) = node.children.take() {
                stack.extend(ch.into_values());
            }
            let ino = &mut self.inodes[inode.0 as usize];
            ino.nlink = ino.nlink.saturating_sub(1);
        }
    }

    /// Children of a directory sorted by raw name bytes (empty for non-directories).
    pub fn children_sorted(&self, dir: NodeId) -> Vec<NodeId> {
        let Some(ch) = self.node(dir).children.as_ref() else {
            return Vec::new();
        };
        let mut v: Vec<(&[u8], NodeId)> = ch.iter().map(|(k, v)| (&k[..], *v)).collect();
        v.sort_unstable_by(|a, b| a.0.cmp(b.0));
        v.into_iter().map(|(_, id)| id).collect()
    }

    /// Every live entry except the root in deterministic pre-order: parents before children,
    /// siblings sorted by raw name bytes.
    pub fn walk(&self) -> Vec<NodeId> {
        let mut out = Vec::new();
        let mut stack: Vec<NodeId> = self.children_sorted(self.root());
        stack.reverse();
        while let Some(n) = stack.pop() {
            out.push(n);
            let mut ch = self.children_sorted(n);
            ch.reverse();
            stack.extend(ch);
        }
        out
    }

    /// The entry's path relative to the root, without a leading `/` (empty for the root).
    pub fn path(&self, id: NodeId) -> Vec<u8> {
        let mut parts = Vec::new();
        let mut cur = id;
        while cur != self.root() {
            let n = self.node(cur);
            parts.push(&n.name[..]);
            cur = n.parent;
        }
        parts.reverse();
        parts.join(&b'/')
    }

    /// Depth of an entry (root = 0).
    pub fn depth(&self, id: NodeId) -> usize {
        let mut d = 0;
        let mut cur = id;
        while cur != self.root() {
            d += 1;
            cur = self.node(cur).parent;
        }
        d
    }

    /// Number of live entries (excluding the root).
    pub fn len(&self) -> usize {
        self.nodes.iter().skip(1).filter(|n| n.live).count()
    }

    /// True when the tree holds only the root.
    pub fn is_empty(&self) -> bool {
        self.node(self.root())
            .children
            .as_ref()
            .is_none_or(|c| c.is_empty())
    }

    /// Number of subdirectories of a directory entry (for on-disk link counts).
    pub fn subdir_count(&self, dir: NodeId) -> u32 {
        self.node(dir).children.as_ref().map_or(0, |ch| {
            ch.values().filter(|c| self.inode_of(**c).is_dir()).count() as u32
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(tree: &mut Tree, dir: NodeId, name: &str) -> NodeId {
        let ino = tree.add_inode(Inode::new(
            InodeKind::File {
                content: ContentRef::EMPTY,
            },
            0o644,
            0,
            0,
            Timestamp::default(),
        ));
        tree.link(dir, name.as_bytes(), ino, 0)
    }

    fn dir(tree: &mut Tree, parent: NodeId, name: &str) -> NodeId {
        let ino = tree.add_inode(Inode::new(
            InodeKind::Dir,
            0o755,
            0,
            0,
            Timestamp::default(),
        ));
        tree.link(parent, name.as_bytes(), ino, 0)
    }

    #[test]
    fn walk_is_sorted_preorder_and_paths_join() {
        let mut t = Tree::new(0o755, 0, 0, Timestamp::default());
        let r = t.root();
        let b = dir(&mut t, r, "b");
        file(&mut t, b, "z");
        file(&mut t, b, "a");
        file(&mut t, r, "a");
        let paths: Vec<String> = t
            .walk()
            .iter()
            .map(|n| String::from_utf8(t.path(*n)).unwrap())
            .collect();
        assert_eq!(paths, ["a", "b", "b/a", "b/z"]);
        assert_eq!(t.len(), 4);
        assert_eq!(t.subdir_count(r), 1);
    }

    #[test]
    fn hard_links_share_inode_and_unlink_decrements() {
        let mut t = Tree::new(0o755, 0, 0, Timestamp::default());
        let r = t.root();
        let a = file(&mut t, r, "a");
        let ino = t.node(a).inode;
        let b = t.link(r, b"b", ino, 1);
        assert_eq!(t.inode(ino).nlink, 2);
        t.unlink(a);
        assert_eq!(t.inode(ino).nlink, 1);
        assert_eq!(t.lookup(r, b"b"), Some(b));
        assert_eq!(t.lookup(r, b"a"), None);
    }

    #[test]
    fn unlink_dir_removes_subtree_iteratively() {
        let mut t = Tree::new(0o755, 0, 0, Timestamp::default());
        let mut cur = t.root();
        for _ in 0..10_000 {
            cur = dir(&mut t, cur, "d");
        }
        let first = t.lookup(t.root(), b"d").unwrap();
        t.unlink(first);
        assert!(t.is_empty());
        assert_eq!(t.len(), 0);
    }
}
