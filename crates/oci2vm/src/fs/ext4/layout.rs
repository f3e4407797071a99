//! The plan: inode numbers and the place of every metadata block, computed from the final
//! tree once the file data is in place.
//!
//! Spec: <https://www.kernel.org/doc/html/latest/filesystems/ext4/overview.html#layout>
//!
//! ```text
//! inode numbers: 1..10 reserved (2 = root), 11 = lost+found, 12.. breadth-first by sorted
//!                names (a hard-link group takes the number of its first name)
//! blocks:        superblock | descriptors | (reserve) | file data .. data end |
//!                block bitmaps | inode bitmaps | inode tables | journal | per inode: dir
//!                blocks (+ tree blocks) or symlink block | xattr blocks | extent tree blocks
//!                of fragmented files = meta end | free
//! ```
//!
//! [`number`] needs only the tree; [`place`] needs where the data ended and how many extent
//! tree blocks the files take. Sizing: `content` = data blocks in use + metadata blocks +
//! 256 bytes per used inode; the default size is the meta end + `content / 4` + 64 MiB,
//! rounded up to 1 MiB; the default inode count is `max(size / inode_ratio, used * 5/4 + 64)`.

use std::collections::{HashMap, VecDeque};

use super::dir::{self, ftype};
use super::extent;
use super::geometry::{Geometry, default_size};
use super::xattr::{self, Attr};
use super::{Ext4Error, Ext4Options, INODE_SIZE};
use crate::layers::tree::{InodeId, InodeKind, NodeId, Tree};

/// Root directory inode.
pub const ROOT_INO: u32 = 2;
/// `lost+found` inode.
pub const LPF_INO: u32 = 11;
/// Bytes mke2fs gives `lost+found` (16 KiB: 4 blocks of 4 KiB, 16 of 1 KiB).
pub const LPF_BYTES: u64 = 16 * 1024;
/// ext4's largest link count for a non-directory.
const LINK_MAX: u32 = 65000;

/// Where an inode's xattrs go.
#[derive(Debug, Clone)]
pub enum XattrPlace {
    /// None.
    None,
    /// In the inode.
    Inline(Vec<Attr>),
    /// In shared xattr block number `n` (index into [`Plan::xattr_blocks`]).
    Block(usize),
}

/// One planned inode (numbers `2` and `11..`).
#[derive(Debug, Clone)]
pub struct PlanInode {
    /// The tree inode, or `None` for a synthetic `lost+found`.
    pub source: Option<InodeId>,
    /// A name of it (for directories: its only one).
    pub node: NodeId,
    /// First block (directories, slow symlinks), 0 if none.
    pub first_block: u64,
    /// Blocks (directory blocks or 1 symlink block), tree blocks excluded.
    pub nblocks: u64,
    /// For directories: range in [`Plan::children`].
    pub children: (u32, u32),
    /// For directories: the on-disk link count.
    pub links: u16,
    /// For directories: hashed (htree) rather than linear.
    pub htree: bool,
    /// Xattr placement.
    pub xattrs: XattrPlace,
}

/// One shared xattr block.
#[derive(Debug, Clone)]
pub struct XattrBlock {
    /// The attributes.
    pub attrs: Vec<Attr>,
    /// Inodes referencing it.
    pub refcount: u32,
    /// Its block number.
    pub block: u64,
}

/// The complete plan.
#[derive(Debug)]
pub struct Plan {
    /// Block size and groups.
    pub geometry: Geometry,
    /// Total blocks.
    pub blocks: u64,
    /// Block groups.
    pub groups: u64,
    /// Inodes per group.
    pub inodes_per_group: u32,
    /// Descriptor table blocks (from [`Geometry::gdt_start`]).
    pub gdt_blocks: u64,
    /// First metadata block: the end of the file data.
    pub meta_start: u64,
    /// First block bitmap block (one per group follow).
    pub block_bitmaps: u64,
    /// First inode bitmap block.
    pub inode_bitmaps: u64,
    /// First inode table block (tables of all groups follow each other).
    pub inode_tables: u64,
    /// First extent tree block of fragmented files (they follow each other in inode order).
    pub trees_start: u64,
    /// First block after all metadata.
    pub meta_end: u64,
    /// Planned inodes by number (index = ino; 0, 1, 3..=10 are placeholders).
    pub inodes: Vec<Option<PlanInode>>,
    /// Tree inode -> ino.
    pub ino_of: Vec<u32>,
    /// Children of directories (sorted names), referenced by [`PlanInode::children`].
    pub children: Vec<NodeId>,
    /// Shared xattr blocks.
    pub xattr_blocks: Vec<XattrBlock>,
    /// True when `lost+found` is synthetic (not in the tree).
    pub synthetic_lpf: bool,
    /// Superblock timestamp.
    pub time: i64,
    /// Xattrs dropped (no ext4 namespace).
    pub dropped_xattrs: u64,
    /// Journal: first block and length (0 without a journal).
    pub journal: (u64, u64),
    /// Directory hash seed (`s_hash_seed`).
    pub hash_seed: [u8; 16],
}

impl Plan {
    /// Highest used inode number.
    pub fn max_ino(&self) -> u32 {
        (self.inodes.len() - 1) as u32
    }

    /// The file type byte of a tree inode for directory entries.
    pub fn ftype(kind: &InodeKind) -> u8 {
        match kind {
            InodeKind::File { .. } => ftype::REG,
            InodeKind::Dir => ftype::DIR,
            InodeKind::Symlink { .. } => ftype::SYMLINK,
            InodeKind::CharDevice { .. } => ftype::CHR,
            InodeKind::BlockDevice { .. } => ftype::BLK,
            InodeKind::Fifo => ftype::FIFO,
            InodeKind::Socket => ftype::SOCK,
        }
    }

    /// A directory's entries: `.`, `..`, then children (with a synthetic `lost+found` merged
    /// into the root's sorted list).
    pub fn dir_entries<'t>(&self, tree: &'t Tree, ino: u32) -> Vec<(u32, &'t [u8], u8)> {
        let p = self.inodes[ino as usize]
            .as_ref()
            .expect("directory inode is planned");
        let node = tree.node(p.node);
        let parent = if ino == ROOT_INO {
            ROOT_INO
        } else {
            self.ino_of[tree.node(node.parent).inode.0 as usize]
        };
        let mut out = vec![
            (ino, &b"."[..], ftype::DIR),
            (parent, &b".."[..], ftype::DIR),
        ];
        let kids = &self.children[p.children.0 as usize..p.children.1 as usize];
        let mut lpf = ino == ROOT_INO && self.synthetic_lpf;
        for &c in kids {
            let n = tree.node(c);
            if lpf && n.name[..] > b"lost+found"[..] {
                out.push((LPF_INO, b"lost+found", ftype::DIR));
                lpf = false;
            }
            let inode = tree.inode(n.inode);
            out.push((
                self.ino_of[n.inode.0 as usize],
                &n.name[..],
                Plan::ftype(&inode.kind),
            ));
        }
        if lpf {
            out.push((LPF_INO, b"lost+found", ftype::DIR));
        }
        out
    }
}

fn path_of(tree: &Tree, node: NodeId) -> String {
    format!("/{}", String::from_utf8_lossy(&tree.path(node)))
}

/// Numbers the inodes and sizes every directory, symlink and xattr block of `tree` for
/// blocks of `geometry`; nothing is placed yet (see [`place`]).
pub fn number(tree: &Tree, opts: &Ext4Options, geometry: Geometry) -> Result<Plan, Ext4Error> {
    let root = tree.root();
    let lpf_node = tree.lookup(root, b"lost+found");
    let lpf_in_tree = lpf_node.filter(|n| tree.inode_of(*n).is_dir());
    let synthetic_lpf = lpf_node.is_none();
    let mut ino_of = vec![0u32; inode_slots(tree)];
    let mut inodes: Vec<Option<PlanInode>> = vec![None; 12];
    let blank = |source, node| PlanInode {
        source,
        node,
        first_block: 0,
        nblocks: 0,
        children: (0, 0),
        links: 1,
        htree: false,
        xattrs: XattrPlace::None,
    };
    ino_of[tree.node(root).inode.0 as usize] = ROOT_INO;
    inodes[ROOT_INO as usize] = Some(blank(Some(tree.node(root).inode), root));
    if let Some(n) = lpf_in_tree {
        ino_of[tree.node(n).inode.0 as usize] = LPF_INO;
        inodes[LPF_INO as usize] = Some(blank(Some(tree.node(n).inode), n));
    } else if synthetic_lpf {
        inodes[LPF_INO as usize] = Some(blank(None, root));
    } else {
        inodes.truncate(11); // a non-directory owns the name: no lost+found
    }

    // Breadth-first numbering; children lists recorded per directory.
    let mut children = Vec::new();
    let mut queue = VecDeque::from([root]);
    while let Some(d) = queue.pop_front() {
        let kids = tree.children_sorted(d);
        let start = children.len() as u32;
        let mut subdirs = 0u32;
        for &c in &kids {
            let id = tree.node(c).inode;
            let inode = tree.inode(id);
            if ino_of[id.0 as usize] == 0 {
                if !inode.is_dir() && inode.nlink > LINK_MAX {
                    return Err(Ext4Error::TooManyLinks {
                        path: path_of(tree, c),
                        nlink: inode.nlink,
                    });
                }
                ino_of[id.0 as usize] = inodes.len() as u32;
                inodes.push(Some(blank(Some(id), c)));
            }
            if inode.is_dir() {
                subdirs += 1;
                queue.push_back(c);
            }
        }
        children.extend_from_slice(&kids);
        let ino = ino_of[tree.node(d).inode.0 as usize];
        let p = inodes[ino as usize]
            .as_mut()
            .expect("numbered before its children");
        p.children = (start, children.len() as u32);
        if d == root && synthetic_lpf {
            subdirs += 1;
        }
        p.links = if subdirs + 2 > LINK_MAX {
            1
        } else {
            (subdirs + 2) as u16
        };
    }
    if synthetic_lpf {
        let p = inodes[LPF_INO as usize]
            .as_mut()
            .expect("lost+found planned");
        p.links = 2;
    }
    if u32::try_from(inodes.len()).is_err() {
        return Err(Ext4Error::Inodes {
            inodes: 0,
            used: inodes.len() as u64,
            groups: 0,
        });
    }

    let mut plan = Plan {
        geometry,
        blocks: 0,
        groups: 0,
        inodes_per_group: 0,
        gdt_blocks: 0,
        meta_start: 0,
        block_bitmaps: 0,
        inode_bitmaps: 0,
        inode_tables: 0,
        trees_start: 0,
        meta_end: 0,
        inodes,
        ino_of,
        children,
        xattr_blocks: Vec::new(),
        synthetic_lpf,
        time: 0,
        dropped_xattrs: 0,
        journal: (0, 0),
        hash_seed: super::metadata::derive_ids(opts).1,
    };
    place_xattrs(tree, &mut plan)?;

    let bs = geometry.bs();
    let mut newest = 0i64;
    for ino in 0..plan.inodes.len() {
        let Some(p) = plan.inodes[ino].as_ref() else {
            continue;
        };
        let kind = p.source.map(|s| &tree.inode(s).kind);
        let mut is_htree = false;
        if let Some(s) = p.source {
            newest = newest.max(tree.inode(s).mtime.sec);
        }
        let nblocks = match kind {
            None | Some(InodeKind::Dir) => {
                let min = if ino as u32 == LPF_INO {
                    (LPF_BYTES / geometry.block_size).max(2)
                } else {
                    1
                };
                let entries = plan.dir_entries(tree, ino as u32);
                let linear = dir::blocks_for(
                    bs,
                    entries.iter().map(|e| e.1.len()),
                    min,
                    opts.metadata_csum,
                );
                let hashed = (opts.htree && linear > 1 && ino as u32 != LPF_INO)
                    .then(|| {
                        super::htree::blocks(bs, &entries[2..], &plan.hash_seed, opts.metadata_csum)
                    })
                    .flatten();
                is_htree = hashed.is_some();
                hashed.unwrap_or(linear)
            }
            Some(InodeKind::Symlink { target }) => {
                if target.is_empty() || target.len() >= bs {
                    return Err(Ext4Error::Symlink {
                        path: path_of(tree, p.node),
                        len: target.len(),
                        block_size: geometry.block_size,
                    });
                }
                u64::from(target.len() >= 60)
            }
            _ => 0,
        };
        let p = plan.inodes[ino].as_mut().expect("checked above");
        p.nblocks = nblocks;
        p.htree = is_htree;
    }
    plan.time = opts.timestamp.unwrap_or(newest).max(0);
    Ok(plan)
}

/// Where the file data ended and what it takes, for [`place`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataSummary {
    /// First block after the file data (metadata starts here).
    pub end: u64,
    /// Blocks of file data in use.
    pub used: u64,
    /// Extent tree blocks the files need.
    pub tree_blocks: u64,
}

/// Chooses the size, group and inode counts and places every metadata block after the data.
pub fn place(plan: &mut Plan, opts: &Ext4Options, data: &DataSummary) -> Result<(), Ext4Error> {
    let g = plan.geometry;
    let bs = g.block_size;
    let ipb = g.inodes_per_block();
    let used_inodes = u64::from(plan.max_ino());
    // directory, symlink and xattr blocks with their own tree blocks
    let mut pre = plan.xattr_blocks.len() as u64 + data.tree_blocks;
    for p in plan.inodes.iter().flatten() {
        pre += p.nblocks + extent::blocks_needed(g.bs(), extent::contiguous(0, 0, p.nblocks).len());
    }
    let content = (data.used + pre) * bs + used_inodes * INODE_SIZE;
    if opts.inode_ratio < 1024 {
        return Err(Ext4Error::Option {
            option: "inode_ratio",
            reason: "below 1024 bytes per inode",
        });
    }
    // Most inodes one group's bitmap can count.
    let max_ipg = g.blocks_per_group;
    let mut blocks = match opts.size {
        Some(s) => s / bs,
        None => default_size((data.end + pre) * bs, content).div_ceil(bs),
    };
    let (groups, ipg, journal, meta_blocks) = loop {
        if blocks < 64 {
            return Err(Ext4Error::Option {
                option: "size",
                reason: "smaller than 64 blocks",
            });
        }
        if blocks > g.max_blocks() {
            return Err(Ext4Error::Option {
                option: "size",
                reason: "more than 2^32 - 1 blocks (16 TiB of 4 KiB blocks)",
            });
        }
        let groups = g.groups(blocks);
        let wanted = match opts.inodes {
            Some(n) => u64::from(n),
            None => (g.bytes(blocks) / opts.inode_ratio).max(used_inodes + used_inodes / 4 + 64),
        };
        if opts.size.is_none() && wanted > groups * max_ipg {
            // enough groups that the default inode count fits
            blocks = g.group_first(wanted.div_ceil(max_ipg));
            continue;
        }
        // whole inode-table blocks, and a multiple of 8 (e2fsprogs splices the inode bitmaps
        // of all groups byte-wise); both are powers of two
        let step = ipb.max(8);
        let mut ipg = wanted.div_ceil(groups).div_ceil(step) * step;
        if opts.inodes.is_none() {
            ipg = ipg.min(max_ipg);
        }
        let ipg = ipg.max(step);
        if ipg > max_ipg || ipg * groups < used_inodes || ipg * groups > u64::from(u32::MAX) {
            return Err(Ext4Error::Inodes {
                inodes: wanted,
                used: used_inodes,
                groups,
            });
        }
        let journal = if opts.journal {
            super::journal::default_blocks(blocks)
        } else {
            0
        };
        let journal_tree = extent::blocks_needed(g.bs(), extent::contiguous(0, 0, journal).len());
        let meta = 2 * groups + groups * ipg / ipb + journal + journal_tree + pre;
        let meta_end = data.end + meta;
        match opts.size {
            Some(size) if meta_end > blocks => {
                return Err(Ext4Error::NoSpace {
                    needed: g.bytes(meta_end),
                    size,
                });
            }
            Some(_) => break (groups, ipg, journal, meta),
            None => {
                let need = default_size(g.bytes(meta_end), content).div_ceil(bs);
                if need > blocks {
                    blocks = need;
                    continue;
                }
                break (groups, ipg, journal, meta);
            }
        }
    };
    plan.blocks = blocks;
    plan.groups = groups;
    plan.inodes_per_group = ipg as u32;
    plan.gdt_blocks = g.gdt_blocks(groups);
    plan.meta_start = data.end;
    plan.block_bitmaps = data.end;
    plan.inode_bitmaps = plan.block_bitmaps + groups;
    plan.inode_tables = plan.inode_bitmaps + groups;
    let mut next = plan.inode_tables + groups * ipg / ipb;
    if journal > 0 {
        plan.journal = (next, journal);
        next += journal + extent::blocks_needed(g.bs(), extent::contiguous(0, 0, journal).len());
    }
    for p in plan.inodes.iter_mut().flatten() {
        if p.nblocks > 0 {
            p.first_block = next;
            next += p.nblocks
                + extent::blocks_needed(g.bs(), extent::contiguous(0, 0, p.nblocks).len());
        }
    }
    for x in &mut plan.xattr_blocks {
        x.block = next;
        next += 1;
    }
    plan.trees_start = next;
    plan.meta_end = next + data.tree_blocks;
    debug_assert_eq!(plan.meta_end, data.end + meta_blocks);
    Ok(())
}

fn inode_slots(tree: &Tree) -> usize {
    // Inode ids are dense arena indices; the largest reachable id bounds the table.
    let mut max = tree.node(tree.root()).inode.0;
    for n in tree.walk() {
        max = max.max(tree.node(n).inode.0);
    }
    max as usize + 1
}

fn place_xattrs(tree: &Tree, plan: &mut Plan) -> Result<(), Ext4Error> {
    let mut shared: HashMap<Vec<Attr>, usize> = HashMap::new();
    let mut dropped = 0u64;
    for ino in 0..plan.inodes.len() {
        let Some(p) = plan.inodes[ino].as_ref() else {
            continue;
        };
        let Some(src) = p.source else { continue };
        let xattrs = &tree.inode(src).xattrs;
        if xattrs.is_empty() {
            continue;
        }
        let node = p.node;
        let attrs = xattr::prepare(xattrs, &|| path_of(tree, node), &mut dropped)?;
        let place = if attrs.is_empty() {
            XattrPlace::None
        } else if xattr::fits_inline(&attrs) {
            XattrPlace::Inline(attrs)
        } else if xattr::fits_block(plan.geometry.bs(), &attrs) {
            let idx = match shared.get(&attrs) {
                Some(&i) if plan.xattr_blocks[i].refcount < xattr::MAX_REFCOUNT => i,
                _ => {
                    plan.xattr_blocks.push(XattrBlock {
                        attrs: attrs.clone(),
                        refcount: 0,
                        block: 0,
                    });
                    shared.insert(attrs, plan.xattr_blocks.len() - 1);
                    plan.xattr_blocks.len() - 1
                }
            };
            plan.xattr_blocks[idx].refcount += 1;
            XattrPlace::Block(idx)
        } else {
            return Err(Ext4Error::XattrTooLarge {
                path: path_of(tree, node),
                bytes: xattr::bytes(&attrs),
                block_size: plan.geometry.block_size,
            });
        };
        plan.inodes[ino].as_mut().expect("checked above").xattrs = place;
    }
    plan.dropped_xattrs = dropped;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::spool::ContentRef;
    use crate::layers::tree::{Inode, Timestamp};

    fn tree() -> Tree {
        let mut t = Tree::new(0o755, 0, 0, Timestamp::from_secs(5));
        let r = t.root();
        let d = t.add_inode(Inode::new(
            InodeKind::Dir,
            0o755,
            0,
            0,
            Timestamp::from_secs(9),
        ));
        let b = t.link(r, b"b", d, 0);
        let content = ContentRef {
            segment: 0,
            offset: 0,
            len: 10_000,
        };
        let f = t.add_inode(Inode::new(
            InodeKind::File { content },
            0o644,
            0,
            0,
            Timestamp::from_secs(7),
        ));
        t.link(b, b"f", f, 0);
        t.link(r, b"a", f, 0);
        t
    }

    fn g4() -> Geometry {
        Geometry::new(4096).unwrap()
    }

    fn placed(t: &Tree, opts: &Ext4Options, data: DataSummary) -> Result<Plan, Ext4Error> {
        let mut p = number(t, opts, g4())?;
        place(&mut p, opts, &data)?;
        Ok(p)
    }

    const DATA: DataSummary = DataSummary {
        end: 10,
        used: 3,
        tree_blocks: 0,
    };

    #[test]
    fn numbering_is_breadth_first_and_links_share() {
        let t = tree();
        let p = placed(&t, &Ext4Options::default(), DATA).unwrap();
        // root 2, lost+found 11, then "a" (the file) 12, "b" 13; b/f is the same inode as a.
        assert_eq!(p.max_ino(), 13);
        let a = t.lookup(t.root(), b"a").unwrap();
        assert_eq!(p.ino_of[t.node(a).inode.0 as usize], 12);
        let root = p.inodes[ROOT_INO as usize].as_ref().unwrap();
        assert_eq!(root.links, 4, "., .., b and lost+found");
        let names: Vec<&[u8]> = p.dir_entries(&t, ROOT_INO).iter().map(|e| e.1).collect();
        assert_eq!(names, [&b"."[..], b"..", b"a", b"b", b"lost+found"]);
        assert_eq!(p.time, 9, "newest mtime");
        assert_eq!(p.meta_start, 10, "metadata follows the data");
        assert_eq!(p.block_bitmaps, 10);
        assert!(p.meta_end > p.inode_tables && p.meta_end <= p.blocks);
        assert_eq!(p.inodes[LPF_INO as usize].as_ref().unwrap().nblocks, 4);
        let mut small = number(&t, &Ext4Options::default(), Geometry::new(1024).unwrap()).unwrap();
        assert_eq!(small.inodes[LPF_INO as usize].as_ref().unwrap().nblocks, 16);
        place(&mut small, &Ext4Options::default(), &DATA).unwrap();
        assert_eq!(small.geometry.blocks_per_group, 8192);
    }

    #[test]
    fn default_size_leaves_headroom_past_the_metadata() {
        let t = tree();
        let data = DataSummary {
            end: 100_000,
            used: 50_000,
            tree_blocks: 2,
        };
        let p = placed(&t, &Ext4Options::default(), data).unwrap();
        let free = p.blocks - p.meta_end;
        assert!(free * 4096 >= 64 << 20, "64 MiB of headroom at least");
        assert!(p.blocks * 4096 % (1 << 20) == 0, "whole MiB");
        assert_eq!(p.meta_end - p.trees_start, 2);
    }

    #[test]
    fn sizing_errors() {
        let t = tree();
        let small = Ext4Options {
            size: Some(64 * 4096),
            ..Ext4Options::default()
        };
        assert!(placed(&t, &small, DATA).is_ok());
        let tiny = Ext4Options {
            size: Some(4096),
            ..Ext4Options::default()
        };
        assert!(matches!(
            placed(&t, &tiny, DATA),
            Err(Ext4Error::Option { .. })
        ));
        let few = Ext4Options {
            inodes: Some(u32::MAX),
            size: Some(1 << 30),
            ..Ext4Options::default()
        };
        assert!(matches!(
            placed(&t, &few, DATA),
            Err(Ext4Error::Inodes { .. })
        ));
        let journal = Ext4Options {
            size: Some(64 * 4096),
            journal: true,
            ..Ext4Options::default()
        };
        assert!(matches!(
            placed(&t, &journal, DATA),
            Err(Ext4Error::NoSpace { .. })
        ));
        let full = DataSummary { end: 60, ..DATA };
        assert!(matches!(
            placed(&t, &small, full),
            Err(Ext4Error::NoSpace { .. })
        ));
    }
}
