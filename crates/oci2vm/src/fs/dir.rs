//! `dir` output: the merged tree unpacked into a host directory, for inspection.
//!
//! Safe by construction: everything is created relative to directory file descriptors we
//! opened ourselves (`mkdirat`, `openat(O_NOFOLLOW|O_EXCL)`, `symlinkat`, `mknodat`,
//! `linkat`, `fchownat`/`utimensat` with `AT_SYMLINK_NOFOLLOW`), inside a fresh private
//! temporary directory next to the target that is renamed into place at the end. No symlink
//! we created is ever followed (hard-link sources are opened with `RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS`). A failure leaves nothing at the output path.
//!
//! ```text
//! walk (pre-order)   dirs: mkdirat 0700, descend         files: O_CREAT|O_EXCL 0600, data
//!                    symlinks/devices/fifos: *at calls    later hard-link names: linkat
//! after the walk     directories deepest first: fchown, fchmod, xattrs, futimens
//! ```
//!
//! Rootless: what needs privileges (ownership, device nodes, `trusted.*` xattrs) is counted
//! and reported in [`DirReport`], never silently dropped. As root everything is applied.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::Timespec;
use rustix::fs::{
    self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags, Timestamps, XattrFlags,
};

use super::{FsError, lossy, parent_of};
use crate::layers::spool::Spool;
use crate::layers::tree::{Inode, InodeId, InodeKind, NodeId, Tree};

/// What could not be applied (typically: not running as root).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirReport {
    /// Entries created.
    pub entries: u64,
    /// Entries whose owner could not be set.
    pub ownership_not_applied: u64,
    /// Device nodes not created.
    pub devices_not_created: u64,
    /// Xattrs not set.
    pub xattrs_not_applied: u64,
    /// Sockets not created (a socket cannot be made without binding).
    pub sockets_skipped: u64,
    /// The first few affected paths with the reason.
    pub details: Vec<String>,
}

impl DirReport {
    fn note(&mut self, path: &[u8], what: &str, e: io::Error) {
        if self.details.len() < 20 {
            self.details.push(format!("/{}: {what}: {e}", lossy(path)));
        }
    }

    /// True when everything was applied.
    pub fn is_complete(&self) -> bool {
        self.ownership_not_applied
            + self.devices_not_created
            + self.xattrs_not_applied
            + self.sockets_skipped
            == 0
    }
}

fn name_of(b: &[u8]) -> &OsStr {
    OsStr::from_bytes(b)
}

fn ts(t: crate::layers::tree::Timestamp) -> Timestamps {
    let s = Timespec {
        tv_sec: t.sec,
        tv_nsec: i64::from(t.nsec),
    };
    Timestamps {
        last_access: s,
        last_modification: s,
    }
}

/// Unpacks the tree into directory `out`, which must not exist or be an empty directory.
pub fn write_to(tree: &Tree, spool: &Spool, out: &Path) -> Result<DirReport, FsError> {
    if let Ok(meta) = std::fs::symlink_metadata(out) {
        let empty = meta.is_dir()
            && std::fs::read_dir(out)
                .map(|mut d| d.next().is_none())
                .unwrap_or(false);
        if !empty {
            return Err(FsError::OutputExists {
                path: out.to_path_buf(),
            });
        }
    }
    let werr = |source| FsError::Write {
        path: out.to_path_buf(),
        source,
    };
    let tmp = tempfile::Builder::new()
        .prefix(".oci2vm-dir-")
        .tempdir_in(parent_of(out))
        .map_err(werr)?;
    let root_fd = rfs::open(
        tmp.path(),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| werr(e.into()))?;
    let mut u = Unpacker {
        tree,
        spool,
        out: out.to_path_buf(),
        report: DirReport::default(),
        first: HashMap::new(),
    };
    let mut stack: Vec<(NodeId, OwnedFd)> = Vec::new();
    let mut dirs: Vec<NodeId> = Vec::new();
    for node in tree.walk() {
        let parent = tree.node(node).parent;
        while stack.last().is_some_and(|(n, _)| *n != parent) {
            stack.pop();
        }
        let dir_fd = stack.last().map_or(root_fd.as_fd(), |(_, fd)| fd.as_fd());
        if let Some(fd) = u.create(node, dir_fd, &root_fd)? {
            stack.push((node, fd));
            dirs.push(node);
        }
    }
    drop(stack);
    // Directory metadata last, deepest first: every link and child exists by then (mtimes
    // stick), and a read-only or 0000 directory never blocks a later entry.
    for &d in dirs.iter().rev() {
        let fd = rfs::openat2(
            &root_fd,
            name_of(&tree.path(d)),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
        )
        .map_err(|e| u.cerr(d, e))?;
        u.finish_dir(d, &fd);
    }
    u.finish_dir(tree.root(), &root_fd);
    drop(root_fd);
    let kept = tmp.keep();
    std::fs::rename(&kept, out).map_err(|e| {
        let _ = std::fs::remove_dir_all(&kept);
        werr(e)
    })?;
    Ok(u.report)
}

struct Unpacker<'a> {
    tree: &'a Tree,
    spool: &'a Spool,
    out: PathBuf,
    report: DirReport,
    /// First path of each multiply-linked inode.
    first: HashMap<InodeId, Vec<u8>>,
}

impl Unpacker<'_> {
    fn cerr(&self, node: NodeId, e: impl Into<io::Error>) -> FsError {
        FsError::Create {
            path: self.out.clone(),
            entry: lossy(&self.tree.path(node)),
            source: e.into(),
        }
    }

    /// Creates one entry; returns the fd of a new directory to descend into.
    fn create(
        &mut self,
        node: NodeId,
        dir: std::os::fd::BorrowedFd<'_>,
        root: &OwnedFd,
    ) -> Result<Option<OwnedFd>, FsError> {
        let tree = self.tree;
        let n = tree.node(node);
        let name = name_of(&n.name);
        let ino = tree.inode(n.inode);
        let path = tree.path(node);
        self.report.entries += 1;
        if !ino.is_dir() && ino.nlink > 1 {
            if let Some(first) = self.first.get(&n.inode) {
                let (pdir, base) = match first.iter().rposition(|&b| b == b'/') {
                    Some(i) => (&first[..i], &first[i + 1..]),
                    None => (&b"."[..], &first[..]),
                };
                let src = rfs::openat2(
                    root,
                    name_of(pdir),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                    ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
                )
                .map_err(|e| self.cerr(node, e))?;
                rfs::linkat(&src, name_of(base), dir, name, AtFlags::empty())
                    .map_err(|e| self.cerr(node, e))?;
                return Ok(None);
            }
            self.first.insert(n.inode, path.clone());
        }
        match &ino.kind {
            InodeKind::Dir => {
                rfs::mkdirat(dir, name, Mode::from_raw_mode(0o700))
                    .map_err(|e| self.cerr(node, e))?;
                let fd = rfs::openat(
                    dir,
                    name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| self.cerr(node, e))?;
                return Ok(Some(fd));
            }
            InodeKind::File { content } => {
                let fd = rfs::openat(
                    dir,
                    name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(|e| self.cerr(node, e))?;
                let mut f = File::from(fd);
                let mut r = self.spool.reader(content);
                let mut buf = vec![0u8; 256 << 10];
                loop {
                    let k = r.read(&mut buf).map_err(|source| FsError::Spool {
                        entry: lossy(&path),
                        source,
                    })?;
                    if k == 0 {
                        break;
                    }
                    f.write_all(&buf[..k]).map_err(|e| self.cerr(node, e))?;
                }
                self.finish_fd(&path, ino, f.as_fd());
                return Ok(None);
            }
            InodeKind::Symlink { target } => {
                rfs::symlinkat(name_of(target), dir, name).map_err(|e| self.cerr(node, e))?;
            }
            InodeKind::Fifo => {
                rfs::mknodat(dir, name, FileType::Fifo, Mode::from_raw_mode(0o600), 0)
                    .map_err(|e| self.cerr(node, e))?;
            }
            InodeKind::CharDevice { major, minor } | InodeKind::BlockDevice { major, minor } => {
                let ft = if matches!(ino.kind, InodeKind::CharDevice { .. }) {
                    FileType::CharacterDevice
                } else {
                    FileType::BlockDevice
                };
                if let Err(e) = rfs::mknodat(
                    dir,
                    name,
                    ft,
                    Mode::from_raw_mode(0o600),
                    rfs::makedev(*major, *minor),
                ) {
                    if e == rustix::io::Errno::PERM {
                        self.report.devices_not_created += 1;
                        self.report.note(&path, "device node not created", e.into());
                        return Ok(None);
                    }
                    return Err(self.cerr(node, e));
                }
            }
            InodeKind::Socket => {
                self.report.sockets_skipped += 1;
                self.report.note(
                    &path,
                    "socket skipped",
                    io::Error::other("sockets cannot be unpacked"),
                );
                return Ok(None);
            }
        }
        self.finish_at(&path, ino, dir, name);
        Ok(None)
    }

    /// Owner, mode, xattrs, times of a non-directory entry reached by name (no following).
    fn finish_at(
        &mut self,
        path: &[u8],
        ino: &Inode,
        dir: std::os::fd::BorrowedFd<'_>,
        name: &OsStr,
    ) {
        let is_link = matches!(ino.kind, InodeKind::Symlink { .. });
        self.chown(path, ino, |u, g| {
            rfs::chownat(dir, name, u, g, AtFlags::SYMLINK_NOFOLLOW)
        });
        if !is_link
            && let Err(e) = rfs::chmodat(
                dir,
                name,
                Mode::from_raw_mode(ino.mode & 0o7777),
                AtFlags::empty(),
            )
        {
            self.report.note(path, "mode not applied", e.into());
        }
        if !ino.xattrs.is_empty() {
            // Only reachable through /proc for non-regular files; count them as not applied.
            self.report.xattrs_not_applied += ino.xattrs.len() as u64;
            self.report.note(
                path,
                "xattrs on special files not applied",
                io::Error::other("unsupported"),
            );
        }
        if let Err(e) = rfs::utimensat(dir, name, &ts(ino.mtime), AtFlags::SYMLINK_NOFOLLOW) {
            self.report.note(path, "mtime not applied", e.into());
        }
    }

    /// Owner, mode, xattrs, times through an open fd (files and directories).
    fn finish_fd(&mut self, path: &[u8], ino: &Inode, fd: std::os::fd::BorrowedFd<'_>) {
        self.chown(path, ino, |u, g| rfs::fchown(fd, u, g));
        if let Err(e) = rfs::fchmod(fd, Mode::from_raw_mode(ino.mode & 0o7777)) {
            self.report.note(path, "mode not applied", e.into());
        }
        for (k, v) in &ino.xattrs {
            if let Err(e) = rfs::fsetxattr(fd, name_of(k), v, XattrFlags::empty()) {
                self.report.xattrs_not_applied += 1;
                self.report.note(path, "xattr not applied", e.into());
            }
        }
        if let Err(e) = rfs::futimens(fd, &ts(ino.mtime)) {
            self.report.note(path, "mtime not applied", e.into());
        }
    }

    fn chown(
        &mut self,
        path: &[u8],
        ino: &Inode,
        f: impl FnOnce(Option<rfs::Uid>, Option<rfs::Gid>) -> rustix::io::Result<()>,
    ) {
        if ino.uid == u32::MAX || ino.gid == u32::MAX {
            self.report.ownership_not_applied += 1;
            self.report.note(
                path,
                "owner -1 cannot be set",
                io::Error::other("uid/gid 4294967295"),
            );
            return;
        }
        if let Err(e) = f(
            Some(rfs::Uid::from_raw(ino.uid)),
            Some(rfs::Gid::from_raw(ino.gid)),
        ) {
            self.report.ownership_not_applied += 1;
            self.report.note(path, "owner not applied", e.into());
        }
    }

    fn finish_dir(&mut self, node: NodeId, fd: &OwnedFd) {
        let path = self.tree.path(node);
        let ino = self.tree.inode_of(node);
        self.finish_fd(&path, ino, fd.as_fd());
    }
}
