//! A strict streaming tar reader (ustar, PAX, GNU long names), our own code.
//!
//! Spec: POSIX.1-2017 `pax` (ustar + pax extended headers), GNU tar "Basic Tar Format";
//! reference reader: Go `archive/tar` (what Docker, containerd and BuildKit use).
//!
//! ```text
//! archive = entry* EOF
//! entry   = ext* header data pad          ext: x (PAX local) | L (GNU long name)
//!                                              | K (GNU long link) | g (PAX global, ignored)
//! header  = 512-byte block (see header.rs) data = size bytes, pad to 512
//! EOF     = two zero blocks, then anything (ignored; the caller hashes it)
//! ```
//!
//! Strict where parsers disagree (research note §2.2-2.3): PAX `path` and GNU `L` on one entry,
//! two `x` or two `L`/`K` in a row, an extension with no entry after it, special headers over
//! the limit, malformed PAX records, non-zero size on header-only types, negative numbers,
//! unknown typeflags, sparse files, typeflag `0` + trailing `/` outside ustar: all errors.
//! PAX `size` always wins over the ustar size. The reader never touches the filesystem.

mod header;
pub mod pax;

use std::io::{self, Read, Write};

pub use header::{BLOCK, Format};

use crate::layers::tree::Timestamp;

/// What is wrong with the archive.
#[derive(Debug, thiserror::Error)]
pub enum TarErrorKind {
    /// Reading the stream failed (includes decompression errors).
    #[error("read failed")]
    Io(#[source] io::Error),
    /// The stream ended inside a header, a data section or its padding.
    #[error("archive truncated")]
    Truncated,
    /// Header checksum does not match (signed and unsigned sums both tried).
    #[error("header checksum mismatch")]
    Checksum,
    /// A numeric field is not octal/base-256, or overflows.
    #[error("malformed numeric field")]
    Numeric,
    /// A numeric field that must not be negative is.
    #[error("negative numeric field")]
    Negative,
    /// The magic/version says neither ustar nor GNU nor V7.
    #[error("ambiguous or unknown header format (magic/version)")]
    AmbiguousFormat,
    /// A PAX record is malformed.
    #[error("malformed pax record")]
    PaxRecord,
    /// A PAX `path`/`linkpath` contains NUL.
    #[error("NUL byte in a pax path")]
    NulInName,
    /// GNU sparse files (typeflag `S`, `GNU.sparse.*`) are refused rather than misparsed.
    #[error("sparse files are not supported")]
    Sparse,
    /// An extension header repeats before its entry (`x x`, `L L`, `K K`).
    #[error("two {0:?} extension headers in a row")]
    DuplicateExtension(char),
    /// Both PAX and GNU headers name the entry (or its link target).
    #[error("entry named by both a pax record and a GNU long-name header")]
    MixedNaming,
    /// Extension headers with no entry after them.
    #[error("extension header not followed by an entry")]
    DanglingExtension,
    /// A PAX or GNU long header body is larger than the limit.
    #[error("special header of {size} bytes exceeds the limit of {limit}")]
    SpecialTooLarge {
        /// Declared size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A header-only type (link, symlink, dir, device, fifo) declares data.
    #[error("typeflag {typeflag:?} must have size 0, has {size}")]
    SizeOnHeaderOnly {
        /// The typeflag.
        typeflag: char,
        /// The declared size.
        size: u64,
    },
    /// Typeflag `0` with a trailing `/` in a GNU/V7 header (readers disagree: file or dir).
    #[error("regular-file typeflag with a trailing '/' in a non-ustar header")]
    AmbiguousType,
    /// A typeflag we do not accept.
    #[error("unsupported typeflag {0:?}")]
    UnknownType(char),
    /// A uid/gid above 2^32-1.
    #[error("uid/gid {0} exceeds 32 bits")]
    IdRange(u64),
    /// A non-zero block after the first end-of-archive zero block.
    #[error("data after a single zero block")]
    BrokenEndMarker,
}

/// A tar error with where it happened.
#[derive(Debug, thiserror::Error)]
#[error("entry {index}{}", path.as_ref().map(|p| format!(" {p:?}")).unwrap_or_default())]
pub struct TarError {
    /// Ordinal of the entry being read (0-based, extension headers not counted).
    pub index: u64,
    /// The entry's path when known.
    pub path: Option<String>,
    /// What went wrong.
    #[source]
    pub kind: TarErrorKind,
}

/// The type of an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// Regular file (`0`, `\0`, `7`).
    File,
    /// Directory (`5`, `\0` + trailing `/`, `D`).
    Dir,
    /// Symbolic link (`2`) to the link name.
    Symlink,
    /// Hard link (`1`) to the link name.
    Link,
    /// Character device (`3`).
    Char,
    /// Block device (`4`).
    Block,
    /// FIFO (`6`).
    Fifo,
}

/// One entry's metadata; its data (files only) is read through [`TarReader::data`].
#[derive(Debug, Clone)]
pub struct Entry {
    /// Ordinal in the archive (0-based).
    pub index: u64,
    /// Raw path bytes as stored (not normalised).
    pub path: Vec<u8>,
    /// Raw link name (symlink target or hard-link target).
    pub link: Vec<u8>,
    /// Type.
    pub kind: EntryKind,
    /// Permission bits (`& 0o7777`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time.
    pub mtime: Timestamp,
    /// Data size (files; 0 otherwise).
    pub size: u64,
    /// Device major.
    pub devmajor: u64,
    /// Device minor.
    pub devminor: u64,
    /// `SCHILY.xattr.*` records.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Streaming reader over a tar archive.
#[derive(Debug)]
pub struct TarReader<R> {
    inner: R,
    /// Data bytes of the current entry not yet consumed.
    remaining: u64,
    /// Padding after the current entry's data.
    padding: u64,
    index: u64,
    done: bool,
    special_limit: u64,
    warnings: Vec<String>,
}

fn lossy(p: &[u8]) -> String {
    String::from_utf8_lossy(p).into_owned()
}

impl<R: Read> TarReader<R> {
    /// A reader; PAX/GNU long header bodies above `special_limit` bytes are refused.
    pub fn new(inner: R, special_limit: u64) -> Self {
        TarReader {
            inner,
            remaining: 0,
            padding: 0,
            index: 0,
            done: false,
            special_limit,
            warnings: Vec::new(),
        }
    }

    /// Warnings so far (missing end-of-archive marker, ignored global headers).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The underlying reader (to drain bytes after the end marker).
    pub fn into_inner(self) -> R {
        self.inner
    }

    fn err(&self, kind: TarErrorKind, path: Option<&[u8]>) -> TarError {
        TarError {
            index: self.index,
            path: path.map(lossy),
            kind,
        }
    }

    fn err_data(&self, kind: TarErrorKind) -> TarError {
        TarError {
            index: self.index.saturating_sub(1),
            path: None,
            kind,
        }
    }

    /// Reads a full block; `Ok(false)` on a clean EOF before its first byte.
    fn read_block(&mut self, block: &mut [u8; BLOCK]) -> Result<bool, TarError> {
        let mut got = 0;
        while got < BLOCK {
            match self.inner.read(&mut block[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.err(TarErrorKind::Io(e), None)),
            }
        }
        match got {
            0 => Ok(false),
            BLOCK => Ok(true),
            _ => Err(self.err(TarErrorKind::Truncated, None)),
        }
    }

    fn skip(&mut self, mut n: u64) -> Result<(), TarError> {
        let mut buf = [0u8; 8192];
        while n > 0 {
            let want = usize::try_from(n).unwrap_or(usize::MAX).min(buf.len());
            match self.inner.read(&mut buf[..want]) {
                Ok(0) => return Err(self.err(TarErrorKind::Truncated, None)),
                Ok(k) => n -= k as u64,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.err(TarErrorKind::Io(e), None)),
            }
        }
        Ok(())
    }

    /// Skips padding; `Ok(false)` when the stream ends inside it.
    fn skip_padding(&mut self, mut n: u64) -> Result<bool, TarError> {
        let mut buf = [0u8; BLOCK];
        while n > 0 {
            match self.inner.read(&mut buf[..n as usize]) {
                Ok(0) => return Ok(false),
                Ok(k) => n -= k as u64,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.err(TarErrorKind::Io(e), None)),
            }
        }
        Ok(true)
    }

    fn read_special(&mut self, size: u64) -> Result<Vec<u8>, TarError> {
        if size > self.special_limit {
            return Err(self.err(
                TarErrorKind::SpecialTooLarge {
                    size,
                    limit: self.special_limit,
                },
                None,
            ));
        }
        let mut body = vec![0u8; size as usize];
        let mut got = 0;
        while got < body.len() {
            match self.inner.read(&mut body[got..]) {
                Ok(0) => return Err(self.err(TarErrorKind::Truncated, None)),
                Ok(k) => got += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.err(TarErrorKind::Io(e), None)),
            }
        }
        self.skip(pad(size))?;
        Ok(body)
    }

    /// The next entry, or `None` at the end of the archive. Unread data of the previous entry
    /// is skipped. After `None`, the caller should drain [`into_inner`](Self::into_inner).
    pub fn next_entry(&mut self) -> Result<Option<Entry>, TarError> {
        if self.done {
            return Ok(None);
        }
        let (data, padding) = (self.remaining, self.padding);
        self.remaining = 0;
        self.padding = 0;
        self.skip(data).map_err(|mut e| {
            e.index = self.index.saturating_sub(1);
            e
        })?;
        // The data is complete; a stream that ends inside the padding after it is a clean
        // boundary with the end marker missing (umoci 0.4.7 layers end like this).
        if !self.skip_padding(padding)? {
            self.warnings.push(format!(
                "archive ends after {} entries without padding or end-of-archive marker",
                self.index
            ));
            self.done = true;
            return Ok(None);
        }
        let mut pax: Option<pax::Pax> = None;
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        let mut block = [0u8; BLOCK];
        loop {
            let pending = pax.is_some() || long_name.is_some() || long_link.is_some();
            if !self.read_block(&mut block)? {
                if pending {
                    return Err(self.err(TarErrorKind::DanglingExtension, None));
                }
                self.warnings.push(format!(
                    "archive ends after {} entries without an end-of-archive marker",
                    self.index
                ));
                self.done = true;
                return Ok(None);
            }
            if header::is_zero(&block) {
                if pending {
                    return Err(self.err(TarErrorKind::DanglingExtension, None));
                }
                if self.read_block(&mut block)? && !header::is_zero(&block) {
                    return Err(self.err(TarErrorKind::BrokenEndMarker, None));
                }
                self.done = true;
                return Ok(None);
            }
            let h = header::parse(&block).map_err(|k| self.err(k, None))?;
            match h.typeflag {
                b'x' => {
                    if pax.is_some() {
                        return Err(self.err(TarErrorKind::DuplicateExtension('x'), None));
                    }
                    let body = self.read_special(h.size)?;
                    pax = Some(pax::parse_local(&body).map_err(|k| self.err(k, None))?);
                }
                b'g' => {
                    if pending {
                        return Err(self.err(TarErrorKind::DanglingExtension, None));
                    }
                    let body = self.read_special(h.size)?;
                    let recs = pax::records(&body).map_err(|k| self.err(k, None))?;
                    if recs
                        .iter()
                        .any(|(k, _)| matches!(*k, b"path" | b"linkpath" | b"size"))
                    {
                        self.warnings.push(format!(
                            "entry {}: pax global header with path/linkpath/size ignored",
                            self.index
                        ));
                    }
                }
                b'L' | b'K' => {
                    let slot = if h.typeflag == b'L' {
                        &long_name
                    } else {
                        &long_link
                    };
                    if slot.is_some() {
                        return Err(
                            self.err(TarErrorKind::DuplicateExtension(h.typeflag as char), None)
                        );
                    }
                    let body = self.read_special(h.size)?;
                    let v = header::cstr(&body).to_vec();
                    if h.typeflag == b'L' {
                        long_name = Some(v)
                    } else {
                        long_link = Some(v)
                    }
                }
                _ => {
                    return self
                        .finish_entry(h, pax.unwrap_or_default(), long_name, long_link)
                        .map(Some);
                }
            }
        }
    }

    fn finish_entry(
        &mut self,
        h: header::RawHeader,
        pax: pax::Pax,
        long_name: Option<Vec<u8>>,
        long_link: Option<Vec<u8>>,
    ) -> Result<Entry, TarError> {
        if (pax.path.is_some() && long_name.is_some())
            || (pax.linkpath.is_some() && long_link.is_some())
        {
            return Err(self.err(TarErrorKind::MixedNaming, Some(&h.name)));
        }
        let path = pax.path.or(long_name).unwrap_or(h.name);
        let link = pax.linkpath.or(long_link).unwrap_or(h.linkname);
        let size = pax.size.unwrap_or(h.size);
        let id = |v: u64| u32::try_from(v).map_err(|_| TarErrorKind::IdRange(v));
        let uid = id(pax.uid.unwrap_or(h.uid)).map_err(|k| self.err(k, Some(&path)))?;
        let gid = id(pax.gid.unwrap_or(h.gid)).map_err(|k| self.err(k, Some(&path)))?;
        let mtime = pax.mtime.unwrap_or(Timestamp::from_secs(h.mtime));
        let trailing_slash = path.last() == Some(&b'/');
        let (kind, has_data) = match h.typeflag {
            b'\0' if trailing_slash => (EntryKind::Dir, false),
            b'0' if trailing_slash && h.format != Format::Ustar => {
                return Err(self.err(TarErrorKind::AmbiguousType, Some(&path)));
            }
            b'0' | b'\0' | b'7' => (EntryKind::File, true),
            b'1' => (EntryKind::Link, false),
            b'2' => (EntryKind::Symlink, false),
            b'3' => (EntryKind::Char, false),
            b'4' => (EntryKind::Block, false),
            b'5' => (EntryKind::Dir, false),
            b'6' => (EntryKind::Fifo, false),
            b'D' => (EntryKind::Dir, true),
            b'S' => return Err(self.err(TarErrorKind::Sparse, Some(&path))),
            other => return Err(self.err(TarErrorKind::UnknownType(other as char), Some(&path))),
        };
        if !has_data && size != 0 {
            return Err(self.err(
                TarErrorKind::SizeOnHeaderOnly {
                    typeflag: h.typeflag as char,
                    size,
                },
                Some(&path),
            ));
        }
        let is_file = kind == EntryKind::File;
        self.remaining = size;
        self.padding = pad(size);
        let entry = Entry {
            index: self.index,
            path,
            link,
            kind,
            mode: h.mode,
            uid,
            gid,
            mtime,
            size: if is_file { size } else { 0 },
            devmajor: h.devmajor,
            devminor: h.devminor,
            xattrs: pax.xattrs,
        };
        self.index += 1;
        Ok(entry)
    }

    /// Copies the current entry's unread data into `w`; returns the byte count.
    pub fn copy_data(&mut self, w: &mut dyn Write, buf: &mut [u8]) -> Result<u64, TarError> {
        let mut total = 0;
        while self.remaining > 0 {
            let want = usize::try_from(self.remaining)
                .unwrap_or(usize::MAX)
                .min(buf.len());
            let n = match self.inner.read(&mut buf[..want]) {
                Ok(0) => return Err(self.err_data(TarErrorKind::Truncated)),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.err_data(TarErrorKind::Io(e))),
            };
            w.write_all(&buf[..n])
                .map_err(|e| self.err_data(TarErrorKind::Io(e)))?;
            self.remaining -= n as u64;
            total += n as u64;
        }
        Ok(total)
    }
}

fn pad(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ustar header with a correct checksum.
    fn hdr(name: &str, typeflag: u8, size: u64) -> [u8; BLOCK] {
        let mut b = [0u8; BLOCK];
        b[..name.len()].copy_from_slice(name.as_bytes());
        b[100..108].copy_from_slice(b"0000644\0");
        b[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
        b[136..148].copy_from_slice(b"00000000001\0");
        b[156] = typeflag;
        b[257..263].copy_from_slice(b"ustar\0");
        b[263..265].copy_from_slice(b"00");
        b[148..156].copy_from_slice(b"        ");
        let s: u32 = b.iter().map(|&x| u32::from(x)).sum();
        b[148..156].copy_from_slice(format!("{s:06o}\0 ").as_bytes());
        b
    }

    fn archive(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    #[test]
    fn reads_entries_data_and_skips_unread_data() {
        let mut data = b"hello".to_vec();
        data.resize(BLOCK, 0);
        let a = archive(&[
            &hdr("a", b'0', 5),
            &data,
            &hdr("b", b'0', 5),
            &data,
            &[0u8; 1024],
            b"junk",
        ]);
        let mut r = TarReader::new(&a[..], 1 << 20);
        let e = r.next_entry().unwrap().unwrap();
        assert_eq!(
            (e.path.as_slice(), e.size, e.kind),
            (&b"a"[..], 5, EntryKind::File)
        );
        let mut out = Vec::new();
        assert_eq!(r.copy_data(&mut out, &mut [0u8; 3]).unwrap(), 5);
        assert_eq!(out, b"hello");
        let e = r.next_entry().unwrap().unwrap(); // data of b never read: skipped
        assert_eq!(e.index, 1);
        assert!(r.next_entry().unwrap().is_none());
        let mut rest = Vec::new();
        r.into_inner().read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b"junk");
    }

    #[test]
    fn pax_applies_to_the_next_entry_only() {
        let rec = b"11 path=pp\n";
        let mut body = rec.to_vec();
        body.resize(BLOCK, 0);
        let a = archive(&[
            &hdr("x", b'x', rec.len() as u64),
            &body,
            &hdr("a", b'5', 0),
            &hdr("b", b'5', 0),
            &[0; 1024],
        ]);
        let mut r = TarReader::new(&a[..], 1 << 20);
        assert_eq!(r.next_entry().unwrap().unwrap().path, b"pp");
        assert_eq!(r.next_entry().unwrap().unwrap().path, b"b");
    }

    #[test]
    fn errors_carry_the_entry_index() {
        let a = archive(&[&hdr("a", b'5', 0), &hdr("s", b'2', 7), &[0; 1024]]);
        let mut r = TarReader::new(&a[..], 1 << 20);
        r.next_entry().unwrap();
        let e = r.next_entry().unwrap_err();
        assert_eq!(e.index, 1);
        assert_eq!(e.path.as_deref(), Some("s"));
        assert!(matches!(
            e.kind,
            TarErrorKind::SizeOnHeaderOnly { size: 7, .. }
        ));
        let a = archive(&[&[0u8; BLOCK], &hdr("a", b'5', 0)]);
        let e = TarReader::new(&a[..], 1 << 20).next_entry().unwrap_err();
        assert!(matches!(e.kind, TarErrorKind::BrokenEndMarker));
    }
}
