//! Applying validated layer entries to the merged tree with OCI semantics (research note §1.3).
//!
//! Per entry of layer `L`:
//!
//! ```text
//! name -> (dirs, base)        dirs resolved component by component in the tree:
//!                             symlinks expanded with chroot semantics (absolute -> root,
//!                             `..` at root stays), <= 40 hops; missing dirs implied (0755,
//!                             0:0, SOURCE_DATE_EPOCH or 0), non-dir -> ENOTDIR
//! base = .wh..wh..opq         remove every child of dir not touched by L (recursively)
//! base = .wh.X                remove dir/X unless touched by L (whiteouts hit lower layers)
//! base = .wh..wh.*            AUFS metadata: skipped
//! otherwise                   dir over dir: replace attributes (full xattr set), keep children
//!                             anything else: unlink the old entry, create the new one
//! ```
//!
//! Every node carries `touched_layer` (last layer that created/replaced it) and
//! `desc_touched_layer` (last layer that touched it or a descendant). A directory cleaned by
//! an opaque marker in `L` is remembered, so each node is visited at most once per layer:
//! whiteout work is linear in the number of entries (GHSA-rp3h-jf77-q9p4).

use std::collections::HashSet;

use super::entry::{Body, LayerEntry};
use super::error::EntryError;
use super::limits::Limits;
use super::path::{Whiteout, check_dirs, classify};
use super::tree::{Inode, InodeKind, NodeId, Timestamp, Tree};

/// Options for building the merged tree.
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// Resource limits.
    pub limits: Limits,
    /// `SOURCE_DATE_EPOCH`: mtime of implied directories and the default root (else 0).
    pub source_date_epoch: Option<i64>,
}

impl ApplyOptions {
    /// Default limits, `source_date_epoch` from the `SOURCE_DATE_EPOCH` environment variable
    /// (ignored unless it is a decimal integer).
    pub fn from_env() -> Self {
        let source_date_epoch = std::env::var("SOURCE_DATE_EPOCH")
            .ok()
            .and_then(|v| v.trim().parse().ok());
        ApplyOptions {
            limits: Limits::default(),
            source_date_epoch,
        }
    }
}

/// Counters and warnings of one layer's application.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyStats {
    /// Entries applied (including whiteouts).
    pub entries: u64,
    /// Whiteout and opaque markers.
    pub whiteouts: u64,
    /// Entries that replaced an entry of the same layer (duplicates; last wins).
    pub duplicates: u64,
    /// Names that were sanitised (leading `/`, `..`, `//`).
    pub sanitised: u64,
    /// Human-readable warnings (bounded).
    pub warnings: Vec<String>,
}

const MAX_WARNINGS: usize = 20;

impl ApplyStats {
    fn warn(&mut self, msg: String) {
        if self.warnings.len() < MAX_WARNINGS {
            tracing::warn!("{msg}");
            self.warnings.push(msg);
        }
    }
}

/// Applies the entries of one layer to a tree.
#[derive(Debug)]
pub struct Applier<'a> {
    tree: &'a mut Tree,
    limits: &'a Limits,
    implied_mtime: Timestamp,
    layer: u32,
    /// Directories already freed of lower-layer content in this layer.
    clean: HashSet<NodeId>,
    /// Lowest pre-existing entry the last [`Applier::apply`] changed (attributes, shared
    /// inode metadata, or removal), for streaming writers.
    changed: Option<NodeId>,
    /// The entry the last [`Applier::apply`] created for its own name.
    created: Option<NodeId>,
    /// What happened.
    pub stats: ApplyStats,
}

/// What one [`Applier::apply`] call did to entries that existed before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ApplyEvents {
    /// The lowest-numbered existing entry whose attributes, shared inode metadata or
    /// liveness changed (removals of a subtree report its top).
    pub changed: Option<NodeId>,
    /// The entry created for the applied name (implied parents not included).
    pub created: Option<NodeId>,
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl<'a> Applier<'a> {
    /// An applier for layer number `layer` (0 = bottom).
    pub fn new(tree: &'a mut Tree, opts: &'a ApplyOptions, layer: u32) -> Self {
        Applier {
            tree,
            limits: &opts.limits,
            implied_mtime: Timestamp::from_secs(opts.source_date_epoch.unwrap_or(0)),
            layer,
            clean: HashSet::new(),
            changed: None,
            created: None,
            stats: ApplyStats::default(),
        }
    }

    /// The tree being built.
    pub fn tree(&self) -> &Tree {
        self.tree
    }

    /// The tree being built, mutably (to record where a streamed file's content landed).
    pub fn tree_mut(&mut self) -> &mut Tree {
        self.tree
    }

    /// What the last [`apply`](Self::apply) did to existing entries, and what it created.
    pub fn events(&self) -> ApplyEvents {
        ApplyEvents {
            changed: self.changed,
            created: self.created,
        }
    }

    fn mark_changed(&mut self, node: NodeId) {
        if self.changed.is_none_or(|c| node.0 < c.0) {
            self.changed = Some(node);
        }
    }

    fn unlink(&mut self, node: NodeId) {
        self.mark_changed(node);
        self.tree.unlink(node);
    }

    /// Applies one entry.
    pub fn apply(&mut self, e: &LayerEntry) -> Result<(), EntryError> {
        self.changed = None;
        self.created = None;
        self.stats.entries += 1;
        if e.path.sanitised {
            self.stats.sanitised += 1;
            self.stats.warn(format!(
                "entry {} {:?}: name sanitised",
                e.index,
                lossy(&e.raw_path)
            ));
        }
        let Some((dirs, base)) = e.path.split_last() else {
            return self.apply_root(e);
        };
        if check_dirs(&dirs)? {
            self.stats.warn(format!(
                "entry {} {:?}: AUFS metadata skipped",
                e.index,
                lossy(&e.raw_path)
            ));
            return Ok(());
        }
        match classify(base)? {
            Whiteout::Aufs => {
                self.stats.warn(format!(
                    "entry {} {:?}: AUFS metadata skipped",
                    e.index,
                    lossy(&e.raw_path)
                ));
                Ok(())
            }
            Whiteout::Opaque => {
                self.stats.whiteouts += 1;
                let (dir, _) = self
                    .resolve_dir(&dirs, true)?
                    .expect("created when missing");
                self.clean_lower(dir);
                Ok(())
            }
            Whiteout::Target(name) => {
                self.stats.whiteouts += 1;
                if let Some((dir, _)) = self.resolve_dir(&dirs, false)?
                    && let Some(node) = self.tree.lookup(dir, name)
                {
                    self.remove_lower(node, e);
                }
                Ok(())
            }
            Whiteout::None => self.create(e, &dirs, base),
        }
    }

    fn apply_root(&mut self, e: &LayerEntry) -> Result<(), EntryError> {
        if e.body != Body::Dir {
            return Err(EntryError::RootNotDir);
        }
        let root = self.tree.root();
        self.set_attrs(root, e);
        self.touch(root);
        Ok(())
    }

    fn set_attrs(&mut self, node: NodeId, e: &LayerEntry) {
        let ino = self.tree.node(node).inode;
        let i = self.tree.inode(ino);
        if (i.mode, i.uid, i.gid, i.mtime) != (e.mode & 0o7777, e.uid, e.gid, e.mtime)
            || i.xattrs != e.xattrs
        {
            self.mark_changed(node);
        }
        let i = self.tree.inode_mut(ino);
        i.mode = e.mode & 0o7777;
        i.uid = e.uid;
        i.gid = e.gid;
        i.mtime = e.mtime;
        i.xattrs = e.xattrs.clone();
    }

    /// Marks `node` as touched by this layer and propagates to its ancestors.
    fn touch(&mut self, node: NodeId) {
        let layer = self.layer;
        let n = self.tree.node_mut(node);
        n.touched_layer = layer;
        n.desc_touched_layer = layer;
        let mut cur = n.parent;
        let root = self.tree.root();
        loop {
            let p = self.tree.node_mut(cur);
            if p.desc_touched_layer == layer && cur != node {
                break;
            }
            p.desc_touched_layer = layer;
            if cur == root {
                break;
            }
            cur = p.parent;
        }
    }

    /// Resolves directory components with chroot semantics. Returns the directory and its
    /// depth, or `None` when a component is missing (or a dangling symlink) and `create` is off.
    fn resolve_dir(
        &mut self,
        dirs: &[&[u8]],
        create: bool,
    ) -> Result<Option<(NodeId, usize)>, EntryError> {
        let root = self.tree.root();
        let mut pending: Vec<Vec<u8>> = dirs.iter().rev().map(|c| c.to_vec()).collect();
        let (mut cur, mut depth, mut hops) = (root, 0usize, 0u32);
        while let Some(c) = pending.pop() {
            match c.as_slice() {
                b"" | b"." => continue,
                b".." => {
                    cur = self.tree.node(cur).parent;
                    depth = depth.saturating_sub(1);
                    continue;
                }
                _ => {}
            }
            match self.tree.lookup(cur, &c) {
                Some(n) => match &self.tree.inode_of(n).kind {
                    InodeKind::Dir => {
                        cur = n;
                        depth += 1;
                    }
                    InodeKind::Symlink { target } => {
                        hops += 1;
                        if hops > self.limits.symlink_hops {
                            return Err(EntryError::SymlinkLoop {
                                limit: self.limits.symlink_hops,
                            });
                        }
                        if target.first() == Some(&b'/') {
                            cur = root;
                            depth = 0;
                        }
                        pending.extend(target.split(|&b| b == b'/').rev().map(<[u8]>::to_vec));
                    }
                    _ => {
                        return Err(EntryError::NotADirectory {
                            component: lossy(&c),
                        });
                    }
                },
                None if !create => return Ok(None),
                None => {
                    self.check_nodes()?;
                    depth += 1;
                    if depth > self.limits.depth {
                        return Err(EntryError::Depth {
                            limit: self.limits.depth,
                        });
                    }
                    let ino = self.tree.add_inode(Inode::new(
                        InodeKind::Dir,
                        0o755,
                        0,
                        0,
                        self.implied_mtime,
                    ));
                    let n = self.tree.link(cur, &c, ino, self.layer);
                    self.touch(n);
                    cur = n;
                }
            }
        }
        Ok(Some((cur, depth)))
    }

    /// Entries ever created (implied directories included) stay under the entry limit, so
    /// memory is bounded even when every entry implies a deep chain of directories.
    fn check_nodes(&self) -> Result<(), EntryError> {
        let limit = self.limits.entries;
        if self.tree.node_count() as u64 > limit {
            return Err(EntryError::Entries { limit });
        }
        Ok(())
    }

    /// Whiteout of `node`: lower-layer content goes, this layer's entries stay (spec, umoci).
    fn remove_lower(&mut self, node: NodeId, e: &LayerEntry) {
        let n = self.tree.node(node);
        if n.touched_layer == self.layer {
            self.stats.warn(format!(
                "entry {} {:?}: whiteout after an entry of the same layer; the entry is kept",
                e.index,
                lossy(&e.raw_path)
            ));
        } else if n.desc_touched_layer == self.layer {
            self.clean_lower(node);
        } else {
            self.unlink(node);
        }
    }

    /// Removes everything below `dir` that this layer did not touch (opaque semantics).
    fn clean_lower(&mut self, dir: NodeId) {
        let mut stack = vec![dir];
        while let Some(d) = stack.pop() {
            if !self.clean.insert(d) {
                continue;
            }
            let children: Vec<NodeId> = self
                .tree
                .node(d)
                .children
                .as_ref()
                .map(|c| c.values().copied().collect())
                .unwrap_or_default();
            for c in children {
                if self.tree.node(c).desc_touched_layer != self.layer {
                    self.unlink(c);
                } else if self.tree.inode_of(c).is_dir() {
                    stack.push(c);
                }
            }
        }
    }

    fn create(&mut self, e: &LayerEntry, dirs: &[&[u8]], base: &[u8]) -> Result<(), EntryError> {
        // A hard-link target is resolved before anything is unlinked (T50, T54).
        let link_inode = match &e.body {
            Body::Link(target) => Some(self.resolve_link(target)?),
            _ => None,
        };
        let (dir, depth) = self.resolve_dir(dirs, true)?.expect("created when missing");
        if depth + 1 > self.limits.depth {
            return Err(EntryError::Depth {
                limit: self.limits.depth,
            });
        }
        if let Some(existing) = self.tree.lookup(dir, base) {
            if link_inode.is_some_and(|t| t == existing) {
                return Err(EntryError::LinkToSelf);
            }
            if self.tree.node(existing).touched_layer == self.layer {
                self.stats.duplicates += 1;
            }
            if e.body == Body::Dir && self.tree.inode_of(existing).is_dir() {
                self.set_attrs(existing, e);
                self.touch(existing);
                return Ok(());
            }
            self.unlink(existing);
        }
        let inode = match (&e.body, link_inode) {
            (Body::Link(target), Some(tnode)) => {
                if !self.tree.node(tnode).live {
                    return Err(EntryError::LinkTargetMissing {
                        target: lossy(&target.bytes),
                    });
                }
                let ino = self.tree.node(tnode).inode;
                if self.tree.inode(ino).nlink >= self.limits.links_per_inode {
                    return Err(EntryError::TooManyLinks {
                        limit: self.limits.links_per_inode,
                    });
                }
                let i = self.tree.inode(ino);
                let same = i.mode == e.mode & 0o7777
                    && i.uid == e.uid
                    && i.gid == e.gid
                    && i.mtime == e.mtime
                    && (e.xattrs.is_empty() || i.xattrs == e.xattrs);
                if !same && !matches!(i.kind, InodeKind::Symlink { .. }) {
                    self.mark_changed(tnode);
                }
                let i = self.tree.inode_mut(ino);
                // Docker/containerd apply the link header's metadata to the shared inode
                // (not for a symlink, whose metadata lchown/lchmod would not change anyway).
                if !matches!(i.kind, InodeKind::Symlink { .. }) {
                    i.mode = e.mode & 0o7777;
                    i.uid = e.uid;
                    i.gid = e.gid;
                    i.mtime = e.mtime;
                    if !e.xattrs.is_empty() {
                        i.xattrs = e.xattrs.clone();
                    }
                }
                ino
            }
            (body, _) => {
                let kind = match body {
                    Body::File(c) => InodeKind::File { content: *c },
                    Body::Dir => InodeKind::Dir,
                    Body::Symlink(t) => InodeKind::Symlink { target: t.clone() },
                    Body::Char(major, minor) => {
                        if (*major, *minor) == (0, 0) {
                            self.stats.warn(format!(
                                "entry {} {:?}: character device 0:0 (an overlay whiteout?) kept as a device",
                                e.index,
                                lossy(&e.raw_path)
                            ));
                        }
                        InodeKind::CharDevice {
                            major: *major,
                            minor: *minor,
                        }
                    }
                    Body::Block(major, minor) => InodeKind::BlockDevice {
                        major: *major,
                        minor: *minor,
                    },
                    Body::Fifo => InodeKind::Fifo,
                    Body::Link(_) => unreachable!("hard links resolved above"),
                };
                let mut i = Inode::new(kind, e.mode, e.uid, e.gid, e.mtime);
                i.xattrs = e.xattrs.clone();
                self.tree.add_inode(i)
            }
        };
        self.check_nodes()?;
        let node = self.tree.link(dir, base, inode, self.layer);
        self.created = Some(node);
        self.touch(node);
        Ok(())
    }

    /// Resolves a hard-link target: parents through symlinks, the last component not followed.
    fn resolve_link(&mut self, target: &super::path::CleanPath) -> Result<NodeId, EntryError> {
        let missing = || EntryError::LinkTargetMissing {
            target: lossy(&target.bytes),
        };
        let (dirs, base) = target.split_last().ok_or_else(missing)?;
        let (dir, _) = self.resolve_dir(&dirs, false)?.ok_or_else(missing)?;
        let node = self.tree.lookup(dir, base).ok_or_else(missing)?;
        if self.tree.inode_of(node).is_dir() {
            return Err(EntryError::LinkToDirectory {
                target: lossy(&target.bytes),
            });
        }
        Ok(node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::path::normalize;
    use crate::layers::spool::ContentRef;

    fn e(path: &str, body: Body) -> LayerEntry {
        LayerEntry {
            index: 0,
            raw_path: path.into(),
            path: normalize(path.as_bytes(), 255, 4096).unwrap(),
            body,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: Timestamp::default(),
            xattrs: Default::default(),
        }
    }

    #[test]
    fn touched_layers_propagate_and_opaque_keeps_own_layer() {
        let opts = ApplyOptions::default();
        let mut tree = Tree::new(0o755, 0, 0, Timestamp::default());
        let mut a = Applier::new(&mut tree, &opts, 0);
        a.apply(&e("d/old", Body::File(ContentRef::EMPTY))).unwrap();
        let mut b = Applier::new(&mut tree, &opts, 1);
        b.apply(&e("d/sub/new", Body::File(ContentRef::EMPTY)))
            .unwrap();
        b.apply(&e("d/.wh..wh..opq", Body::File(ContentRef::EMPTY)))
            .unwrap();
        assert_eq!(b.stats.whiteouts, 1);
        let d = tree.lookup(tree.root(), b"d").unwrap();
        assert_eq!(tree.node(d).touched_layer, 0);
        assert_eq!(tree.node(d).desc_touched_layer, 1);
        assert_eq!(tree.node(tree.root()).desc_touched_layer, 1);
        assert!(tree.lookup(d, b"old").is_none());
        assert!(tree.lookup(d, b"sub").is_some());
    }

    #[test]
    fn not_a_directory_and_root_errors() {
        let opts = ApplyOptions::default();
        let mut tree = Tree::new(0o755, 0, 0, Timestamp::default());
        let mut a = Applier::new(&mut tree, &opts, 0);
        a.apply(&e("f", Body::File(ContentRef::EMPTY))).unwrap();
        assert!(matches!(
            a.apply(&e("f/x", Body::Dir)),
            Err(EntryError::NotADirectory { .. })
        ));
        assert!(matches!(
            a.apply(&e("./", Body::Fifo)),
            Err(EntryError::RootNotDir)
        ));
    }
}
