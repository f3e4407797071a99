//! cpio "newc" archives: the initramfs format the Linux kernel unpacks into its rootfs.
//!
//! Spec: <https://www.kernel.org/doc/html/latest/driver-api/early-userspace/buffer-format.html>
//! (and `init/initramfs.c` for the semantics).
//!
//! ```text
//! +--------+------------------------------------------------------------+-----------+------+
//! | 070701 | 13 x 8 hex digits: ino mode uid gid nlink mtime filesize   | name NUL  | data |
//! | magic  | devmajor devminor rdevmajor rdevminor namesize check(0)    | pad to 4  | pad 4|
//! +--------+------------------------------------------------------------+-----------+------+
//! ... entries ..., then an entry named "TRAILER!!!"
//! ```
//!
//! Every number is 32 bits: files of 4 GiB or more and mtimes from 2106 on cannot be stored
//! (errors); pre-1970 mtimes are clamped to 0. The kernel creates no missing parents, so
//! parents come first. Hard links share `ino` with `nlink > 1`; the data travels with the last
//! name and the earlier names have size 0 (GNU cpio's convention; the kernel links later names
//! to the first and writes the data through the last one). xattrs cannot be carried (file
//! capabilities and SELinux labels are lost: counted and warned). `dev/console` (c 5 1) is
//! added when the tree has none, or PID 1 starts without a console.

use std::collections::HashMap;
use std::io::{self, Read, Write};

use crate::layers::spool::Spool;
use crate::layers::tree::{InodeKind, Tree};

/// Errors of the cpio writer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CpioError {
    /// A file of 4 GiB or more.
    #[error("{path} is too large for cpio newc ({size} bytes)")]
    TooLarge {
        /// The file's path.
        path: String,
        /// Its size.
        size: u64,
    },
    /// An mtime that does not fit 32 unsigned bits (2106 or later).
    #[error("mtime {mtime} of {path} does not fit cpio newc")]
    Mtime {
        /// The entry's path.
        path: String,
        /// Seconds since the epoch.
        mtime: i64,
    },
    /// A path that cannot be an archive name (empty, NUL byte).
    #[error("invalid cpio entry name {path}")]
    Name {
        /// The path.
        path: String,
    },
    /// Reading a file's content from the spool failed.
    #[error("reading content of {path}")]
    Spool {
        /// The file's path.
        path: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Writing the archive failed.
    #[error("writing cpio archive")]
    Io(#[source] io::Error),
}

impl crate::error::Classify for CpioError {
    fn kind(&self) -> crate::ErrorKind {
        match self {
            CpioError::TooLarge { .. } | CpioError::Mtime { .. } | CpioError::Name { .. } => {
                crate::ErrorKind::Unsupported
            }
            CpioError::Spool { .. } | CpioError::Io(_) => crate::ErrorKind::Io,
        }
    }
}

impl From<CpioError> for crate::Error {
    fn from(e: CpioError) -> Self {
        crate::Error::new(crate::error::Classify::kind(&e), e)
    }
}

/// File type bits for [`Entry::mode`].
pub mod mode {
    /// Directory.
    pub const DIR: u32 = 0o040000;
    /// Regular file.
    pub const FILE: u32 = 0o100000;
    /// Symbolic link.
    pub const SYMLINK: u32 = 0o120000;
    /// Character device.
    pub const CHAR: u32 = 0o020000;
}

/// Metadata of one archive entry (data is passed separately).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    /// Inode number (0: the writer assigns a fresh one).
    pub ino: u32,
    /// Full `st_mode` (type bits + permissions).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Link count.
    pub nlink: u32,
    /// Modification time, seconds.
    pub mtime: u32,
    /// Device major/minor for device nodes.
    pub rdev: (u32, u32),
}

/// Streaming newc writer, also usable on its own (the guest initramfs builder):
/// `dir`, `file`, `symlink`, `char_device`, then `finish`.
#[derive(Debug)]
pub struct CpioWriter<W: Write> {
    out: W,
    next_ino: u32,
    written: u64,
}

impl<W: Write> CpioWriter<W> {
    /// A writer over `out` (wrap files in a `BufWriter`).
    pub fn new(out: W) -> Self {
        CpioWriter {
            out,
            next_ino: 1 << 20,
            written: 0,
        }
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    fn put(&mut self, b: &[u8]) -> Result<(), CpioError> {
        self.out.write_all(b).map_err(CpioError::Io)?;
        self.written += b.len() as u64;
        Ok(())
    }

    fn pad(&mut self) -> Result<(), CpioError> {
        let n = (4 - (self.written % 4) as usize) % 4;
        self.put(&[0u8; 3][..n])
    }

    /// Writes a header for `path` with `size` bytes of data to follow.
    fn header(&mut self, path: &[u8], e: &Entry, size: u64) -> Result<(), CpioError> {
        if path.is_empty() || path.contains(&0) {
            return Err(CpioError::Name {
                path: String::from_utf8_lossy(path).into_owned(),
            });
        }
        let size32 = u32::try_from(size).map_err(|_| CpioError::TooLarge {
            path: String::from_utf8_lossy(path).into_owned(),
            size,
        })?;
        let ino = if e.ino == 0 {
            self.next_ino += 1;
            self.next_ino
        } else {
            e.ino
        };
        let nlink = e.nlink.max(1);
        let fields = [
            ino, e.mode, e.uid, e.gid, nlink, e.mtime, size32, 0, 0, e.rdev.0, e.rdev.1,
        ];
        let mut h = String::with_capacity(110);
        h.push_str("070701");
        for f in fields {
            h.push_str(&format!("{f:08X}"));
        }
        h.push_str(&format!("{:08X}{:08X}", path.len() + 1, 0));
        self.put(h.as_bytes())?;
        self.put(path)?;
        self.put(&[0])?;
        self.pad()
    }

    /// Adds an entry whose data comes from `data` (exactly `size` bytes).
    pub fn entry_from_reader(
        &mut self,
        path: &[u8],
        e: &Entry,
        size: u64,
        data: &mut dyn Read,
    ) -> Result<(), CpioError> {
        self.header(path, e, size)?;
        let copied =
            io::copy(&mut data.take(size), &mut self.out).map_err(|source| CpioError::Spool {
                path: String::from_utf8_lossy(path).into_owned(),
                source,
            })?;
        self.written += copied;
        if copied != size {
            return Err(CpioError::Spool {
                path: String::from_utf8_lossy(path).into_owned(),
                source: io::Error::new(io::ErrorKind::UnexpectedEof, "short content"),
            });
        }
        self.pad()
    }

    /// Adds an entry with in-memory data.
    pub fn entry(&mut self, path: &[u8], e: &Entry, data: &[u8]) -> Result<(), CpioError> {
        self.header(path, e, data.len() as u64)?;
        self.put(data)?;
        self.pad()
    }

    /// Adds a directory (owner root, mtime 0).
    pub fn dir(&mut self, path: impl AsRef<[u8]>, perm: u32) -> Result<(), CpioError> {
        self.entry(
            path.as_ref(),
            &Entry {
                mode: mode::DIR | (perm & 0o7777),
                nlink: 2,
                ..Entry::default()
            },
            &[],
        )
    }

    /// Adds a regular file from bytes.
    pub fn file(
        &mut self,
        path: impl AsRef<[u8]>,
        perm: u32,
        data: &[u8],
    ) -> Result<(), CpioError> {
        self.entry(
            path.as_ref(),
            &Entry {
                mode: mode::FILE | (perm & 0o7777),
                ..Entry::default()
            },
            data,
        )
    }

    /// Adds a regular file copied from a host file.
    pub fn file_from_path(
        &mut self,
        path: impl AsRef<[u8]>,
        perm: u32,
        host: &std::path::Path,
    ) -> Result<(), CpioError> {
        let mut f = std::fs::File::open(host).map_err(|source| CpioError::Spool {
            path: host.display().to_string(),
            source,
        })?;
        let size = f
            .metadata()
            .map_err(|source| CpioError::Spool {
                path: host.display().to_string(),
                source,
            })?
            .len();
        let e = Entry {
            mode: mode::FILE | (perm & 0o7777),
            ..Entry::default()
        };
        self.entry_from_reader(path.as_ref(), &e, size, &mut f)
    }

    /// Adds a symbolic link.
    pub fn symlink(
        &mut self,
        path: impl AsRef<[u8]>,
        target: impl AsRef<[u8]>,
    ) -> Result<(), CpioError> {
        self.entry(
            path.as_ref(),
            &Entry {
                mode: mode::SYMLINK | 0o777,
                ..Entry::default()
            },
            target.as_ref(),
        )
    }

    /// Adds a character device.
    pub fn char_device(
        &mut self,
        path: impl AsRef<[u8]>,
        perm: u32,
        major: u32,
        minor: u32,
    ) -> Result<(), CpioError> {
        let e = Entry {
            mode: mode::CHAR | (perm & 0o7777),
            rdev: (major, minor),
            ..Entry::default()
        };
        self.entry(path.as_ref(), &e, &[])
    }

    /// Writes the trailer and returns the inner writer.
    pub fn finish(mut self) -> Result<W, CpioError> {
        self.header(
            b"TRAILER!!!",
            &Entry {
                ino: 0,
                nlink: 1,
                ..Entry::default()
            },
            0,
        )?;
        self.out.flush().map_err(CpioError::Io)?;
        Ok(self.out)
    }
}

/// What [`write_cpio`] produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpioReport {
    /// Entries written (trailer excluded).
    pub entries: u64,
    /// Archive bytes.
    pub bytes: u64,
    /// Inodes whose xattrs were dropped.
    pub dropped_xattrs: u64,
    /// Whether `dev/console` was added.
    pub added_console: bool,
}

/// Writes the whole tree as a newc initramfs to `out`.
pub fn write_cpio<W: Write>(tree: &Tree, spool: &Spool, out: W) -> Result<CpioReport, CpioError> {
    let mut w = CpioWriter::new(out);
    let mut report = CpioReport::default();
    let root = tree.root();
    let walk = tree.walk();
    let dev = tree.lookup(root, b"dev");
    let has_console = dev.and_then(|d| tree.lookup(d, b"console")).is_some();
    let dev_is_dir = dev.is_some_and(|d| tree.inode_of(d).is_dir());
    report.added_console = !has_console && (dev.is_none() || dev_is_dir);
    let console = Entry {
        mode: mode::CHAR | 0o600,
        nlink: 1,
        rdev: (5, 1),
        ..Entry::default()
    };

    let r = tree.inode_of(root);
    let root_entry = Entry {
        mode: r.st_mode(),
        uid: r.uid,
        gid: r.gid,
        nlink: 2 + tree.subdir_count(root),
        mtime: mtime32(b".", r.mtime.sec)?,
        ..Entry::default()
    };
    w.entry(b".", &root_entry, &[])?;
    report.entries += 1;
    if report.added_console && dev.is_none() {
        w.dir("dev", 0o755)?;
        w.entry(b"dev/console", &console, &[])?;
        report.entries += 2;
    }

    // Inode numbers per tree inode, and how many names of each are still to come.
    let mut ino: HashMap<u32, (u32, u32)> = HashMap::new();
    let mut next = 1u32;
    for &n in &walk {
        let id = tree.node(n).inode.0;
        let e = ino.entry(id).or_insert_with(|| {
            next += 1;
            (next, 0)
        });
        e.1 += 1;
    }
    for &n in &walk {
        let path = tree.path(n);
        let inode = tree.inode_of(n);
        let slot = ino.get_mut(&tree.node(n).inode.0).expect("counted above");
        slot.1 -= 1;
        let last_name = slot.1 == 0;
        let nlink = if inode.is_dir() {
            2 + tree.subdir_count(n)
        } else {
            inode.nlink
        };
        let mut e = Entry {
            ino: slot.0,
            mode: inode.st_mode(),
            uid: inode.uid,
            gid: inode.gid,
            nlink,
            mtime: mtime32(&path, inode.mtime.sec)?,
            rdev: (0, 0),
        };
        if !inode.xattrs.is_empty() && last_name {
            tracing::warn!(path = %String::from_utf8_lossy(&path), "cpio cannot carry xattrs, dropped");
            report.dropped_xattrs += 1;
        }
        match &inode.kind {
            InodeKind::File { content } if last_name => {
                w.entry_from_reader(&path, &e, content.len, &mut spool.reader(content))?;
            }
            InodeKind::Symlink { target } => w.entry(&path, &e, target)?,
            InodeKind::CharDevice { major, minor } | InodeKind::BlockDevice { major, minor } => {
                e.rdev = (*major, *minor);
                w.entry(&path, &e, &[])?;
            }
            _ => w.entry(&path, &e, &[])?,
        }
        report.entries += 1;
        if report.added_console && Some(n) == dev {
            w.entry(b"dev/console", &console, &[])?;
            report.entries += 1;
        }
    }
    report.bytes = w.written();
    let _ = w.finish()?;
    report.bytes += 124; // trailer: 110-byte header + "TRAILER!!!\0" + pad
    Ok(report)
}

fn mtime32(path: &[u8], sec: i64) -> Result<u32, CpioError> {
    if sec < 0 {
        return Ok(0);
    }
    u32::try_from(sec).map_err(|_| CpioError::Mtime {
        path: String::from_utf8_lossy(path).into_owned(),
        mtime: sec,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_newc_ascii_hex_and_padded() {
        let mut w = CpioWriter::new(Vec::new());
        let e = Entry {
            ino: 7,
            mode: mode::FILE | 0o644,
            uid: 1,
            gid: 2,
            nlink: 1,
            mtime: 0x10,
            rdev: (0, 0),
        };
        w.entry(b"ab", &e, b"xyz").unwrap();
        let out = w.finish().unwrap();
        let head = std::str::from_utf8(&out[..110]).unwrap();
        let want = [7u32, 0o100644, 1, 2, 1, 0x10, 3, 0, 0, 0, 0, 3, 0]
            .iter()
            .fold(String::from("070701"), |acc, f| acc + &format!("{f:08X}"));
        assert_eq!(head, want);
        // name "ab\0" after the 110-byte header, padded to 4 (113 -> 116), data padded to 4.
        assert_eq!(&out[110..116], b"ab\0\0\0\0");
        assert_eq!(&out[116..120], b"xyz\0");
        assert!(std::str::from_utf8(&out[120..126]).unwrap() == "070701");
        assert_eq!(out.len() % 4, 0);
    }

    #[test]
    fn bad_names_and_sizes_are_errors() {
        let mut w = CpioWriter::new(Vec::new());
        assert!(matches!(
            w.entry(b"", &Entry::default(), &[]),
            Err(CpioError::Name { .. })
        ));
        assert!(matches!(
            w.entry(b"a\0b", &Entry::default(), &[]),
            Err(CpioError::Name { .. })
        ));
        let r = w.entry_from_reader(b"f", &Entry::default(), 4 << 30, &mut std::io::empty());
        assert!(matches!(r, Err(CpioError::TooLarge { .. })));
        let r = w.entry_from_reader(b"f", &Entry::default(), 5, &mut &b"abc"[..]);
        assert!(matches!(r, Err(CpioError::Spool { .. })));
        assert_eq!(mtime32(b"x", -5).unwrap(), 0);
    }
}
