//! cpio "newc" archives, the format of Linux initramfs images.
//!
//! ```text
//! entry := header(110 ASCII bytes) name NUL pad4 data pad4
//! header := "070701" ino mode uid gid nlink mtime filesize devmajor devminor
//!           rdevmajor rdevminor namesize check       (13 fields, 8 hex digits each)
//! archive := entry* "TRAILER!!!" entry
//! ```
//!
//! Spec: `Documentation/driver-api/early-userspace/buffer-format.rst` in the kernel tree and
//! `init/initramfs.c`. Every numeric field is 32 bits, so files of 4 GiB or more and mtimes
//! past 2106 cannot be stored. The kernel creates no missing parents: emit parents first.
//! Hard links are entries with the same `ino` and `nlink > 1`; the data goes with one of them.

use std::io::{self, Write};

const MAGIC: &[u8; 6] = b"070701";
const TRAILER: &[u8] = b"TRAILER!!!";

/// One entry's header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpioHeader {
    /// Inode number (entries with the same number and `nlink > 1` are hard links).
    pub ino: u32,
    /// Full `st_mode` (type bits and permissions).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Link count.
    pub nlink: u32,
    /// Modification time in seconds (0..2^32).
    pub mtime: u32,
    /// Major device number of a device node.
    pub rdev_major: u32,
    /// Minor device number of a device node.
    pub rdev_minor: u32,
}

/// Errors writing a cpio archive.
#[derive(Debug, thiserror::Error)]
pub enum CpioError {
    /// A file too large for the 32-bit size field.
    #[error("{path}: {size} bytes does not fit cpio newc (4 GiB limit)")]
    TooLarge {
        /// The entry's path.
        path: String,
        /// Its size.
        size: u64,
    },
    /// A name with a NUL byte, or empty.
    #[error("invalid cpio entry name {path:?}")]
    InvalidName {
        /// The entry's path (lossy).
        path: String,
    },
    /// Writing failed.
    #[error("writing cpio archive")]
    Io(#[from] io::Error),
}

impl crate::error::Classify for CpioError {
    fn kind(&self) -> crate::ErrorKind {
        match self {
            CpioError::TooLarge { .. } => crate::ErrorKind::Unsupported,
            CpioError::InvalidName { .. } => crate::ErrorKind::InvalidImage,
            CpioError::Io(_) => crate::ErrorKind::Io,
        }
    }
}

impl From<CpioError> for crate::Error {
    fn from(e: CpioError) -> Self {
        crate::Error::new(crate::error::Classify::kind(&e), e)
    }
}

/// Streams a newc archive to `W`. Paths are given without a leading `/`.
#[derive(Debug)]
pub struct CpioWriter<W: Write> {
    out: W,
    written: u64,
    next_ino: u32,
}

impl<W: Write> CpioWriter<W> {
    /// Starts an archive. Inode numbers for the convenience methods start at 1.
    pub fn new(out: W) -> Self {
        CpioWriter {
            out,
            written: 0,
            next_ino: 1,
        }
    }

    /// Bytes written so far.
    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    /// Writes one entry with explicit header fields; `data` is `size` bytes read from `data`.
    pub fn entry(
        &mut self,
        path: &[u8],
        h: &CpioHeader,
        size: u64,
        data: &mut dyn io::Read,
    ) -> Result<(), CpioError> {
        if path.is_empty() || path.contains(&0) {
            return Err(CpioError::InvalidName {
                path: String::from_utf8_lossy(path).into(),
            });
        }
        let filesize = u32::try_from(size).map_err(|_| CpioError::TooLarge {
            path: String::from_utf8_lossy(path).into(),
            size,
        })?;
        let namesize = u32::try_from(path.len() + 1).map_err(|_| CpioError::InvalidName {
            path: String::from_utf8_lossy(path).into(),
        })?;
        let fields = [
            h.ino,
            h.mode,
            h.uid,
            h.gid,
            h.nlink,
            h.mtime,
            filesize,
            0,
            0,
            h.rdev_major,
            h.rdev_minor,
            namesize,
            0,
        ];
        let mut head = Vec::with_capacity(110 + path.len() + 4);
        head.extend_from_slice(MAGIC);
        for f in fields {
            head.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        head.extend_from_slice(path);
        head.push(0);
        pad_to_4(&mut head, self.written);
        self.out.write_all(&head)?;
        self.written += head.len() as u64;
        let copied = io::copy(&mut io::Read::take(data, size), &mut self.out)?;
        if copied != size {
            return Err(CpioError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{}: content shorter than its size",
                    String::from_utf8_lossy(path)
                ),
            )));
        }
        self.written += size;
        let pad = (4 - (self.written % 4) as usize) % 4;
        self.out.write_all(&[0u8; 3][..pad])?;
        self.written += pad as u64;
        Ok(())
    }

    fn simple(
        &mut self,
        path: &[u8],
        mode: u32,
        rdev: (u32, u32),
        data: &[u8],
    ) -> Result<(), CpioError> {
        let h = CpioHeader {
            ino: self.next_ino,
            mode,
            nlink: if mode & 0o170000 == 0o040000 { 2 } else { 1 },
            rdev_major: rdev.0,
            rdev_minor: rdev.1,
            ..CpioHeader::default()
        };
        self.next_ino += 1;
        self.entry(path, &h, data.len() as u64, &mut &data[..])
    }

    /// A directory owned by root with permissions `perm`.
    pub fn dir(&mut self, path: &[u8], perm: u32) -> Result<(), CpioError> {
        self.simple(path, 0o040000 | (perm & 0o7777), (0, 0), &[])
    }

    /// A regular file owned by root.
    pub fn file(&mut self, path: &[u8], perm: u32, data: &[u8]) -> Result<(), CpioError> {
        self.simple(path, 0o100000 | (perm & 0o7777), (0, 0), data)
    }

    /// A symbolic link.
    pub fn symlink(&mut self, path: &[u8], target: &[u8]) -> Result<(), CpioError> {
        self.simple(path, 0o120777, (0, 0), target)
    }

    /// A character device node.
    pub fn char_device(
        &mut self,
        path: &[u8],
        perm: u32,
        major: u32,
        minor: u32,
    ) -> Result<(), CpioError> {
        self.simple(path, 0o020000 | (perm & 0o7777), (major, minor), &[])
    }

    /// Writes the trailer and returns the inner writer.
    pub fn finish(mut self) -> Result<W, CpioError> {
        let h = CpioHeader {
            nlink: 1,
            ..CpioHeader::default()
        };
        self.entry(TRAILER, &h, 0, &mut io::empty())?;
        self.out.flush()?;
        Ok(self.out)
    }
}

fn pad_to_4(buf: &mut Vec<u8>, already: u64) {
    while (already + buf.len() as u64) % 4 != 0 {
        buf.push(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_aligned_and_parseable() {
        let mut w = CpioWriter::new(Vec::new());
        w.dir(b"dev", 0o755).unwrap();
        w.char_device(b"dev/console", 0o600, 5, 1).unwrap();
        w.file(b"init", 0o755, b"#!/bin/sh\n").unwrap();
        w.symlink(b"sbin", b"bin").unwrap();
        let out = w.finish().unwrap();
        assert_eq!(out.len() % 4, 0);
        assert_eq!(&out[..6], MAGIC);
        // the second header starts 4-aligned right after "dev\0" padded
        let second = 110 + 4; // 110 + "dev\0" = 114 -> padded to 116
        assert_eq!(&out[second + 2..second + 8], MAGIC);
        assert!(out.windows(TRAILER.len()).any(|w| w == TRAILER));
    }

    #[test]
    fn cpio_tool_lists_what_we_wrote() {
        let Ok(st) = std::process::Command::new("cpio").arg("--version").output() else {
            assert!(std::env::var_os("CI").is_none(), "cpio missing under CI");
            eprintln!("skipped: cpio(1) not installed");
            return;
        };
        assert!(st.status.success());
        let mut w = CpioWriter::new(Vec::new());
        w.dir(b"etc", 0o755).unwrap();
        w.file(b"etc/hostname", 0o644, b"vm\n").unwrap();
        w.symlink(b"bin", b"usr/bin").unwrap();
        let out = w.finish().unwrap();
        let mut child = std::process::Command::new("cpio")
            .args(["-it", "--quiet"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&out).unwrap();
        let res = child.wait_with_output().unwrap();
        assert!(res.status.success());
        assert_eq!(
            String::from_utf8(res.stdout).unwrap(),
            "etc\netc/hostname\nbin\n"
        );
    }

    #[test]
    fn rejects_oversized_and_bad_names() {
        let mut w = CpioWriter::new(io::sink());
        let h = CpioHeader::default();
        assert!(matches!(
            w.entry(b"big", &h, 1 << 32, &mut io::empty()),
            Err(CpioError::TooLarge { .. })
        ));
        assert!(matches!(
            w.file(b"a\0b", 0o644, b""),
            Err(CpioError::InvalidName { .. })
        ));
        assert!(matches!(
            w.file(b"", 0o644, b""),
            Err(CpioError::InvalidName { .. })
        ));
    }
}
