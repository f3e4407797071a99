//! Flattened rootfs tar: PAX, deterministic, canonical (T76, T77).
//!
//! Spec: POSIX.1-2017 `pax` (ustar + pax extended headers).
//!
//! ```text
//! ./                       root directory (mode, owner, mtime, xattrs of the image root)
//! [x PaxHeaders.0/NAME]    only when needed: path/linkpath > ustar fields, uid/gid >= 2^21,
//!                          size >= 8 GiB, mtime negative or with nanoseconds, SCHILY.xattr.*
//! header + data + pad      in Tree::walk order: parents before children, siblings sorted;
//!                          the first name of a hard-link group carries the data, later
//!                          names are typeflag 1 links to it
//! 2 zero blocks            end of archive
//! ```
//! uname/gname are empty; directories end in `/`; names never start with `/` or hold `..`.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use super::{FsError, lossy, parent_of};
use crate::layers::spool::Spool;
use crate::layers::tree::{InodeId, InodeKind, NodeId, Timestamp, Tree};

const BLOCK: usize = 512;
const MAX_OCTAL_7: u64 = 0o7_777_777;
const MAX_OCTAL_11: u64 = 0o77_777_777_777;
const DIRECT_COPY_MIN: u64 = 64 << 10;

/// Counts of what was written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TarStats {
    /// Entries written (root included).
    pub entries: u64,
    /// Bytes of file content written.
    pub data_bytes: u64,
    /// Sockets skipped (tar cannot carry them).
    pub sockets_skipped: u64,
}

/// Writes the tree as a tar stream to `out`.
pub fn write(tree: &Tree, spool: &Spool, out: &mut dyn Write) -> Result<TarStats, FsError> {
    write_inner(tree, spool, out, None)
}

/// `direct`: the file `out` buffers into; file contents are then copied spool -> output in
/// the kernel (`copy_file_range`) after flushing `out`.
fn write_inner(
    tree: &Tree,
    spool: &Spool,
    out: &mut dyn Write,
    direct: Option<&File>,
) -> Result<TarStats, FsError> {
    let mut w = Writer::new(out, direct);
    let wr = |source| FsError::Write {
        path: PathBuf::from("-"),
        source,
    };
    w.entry(tree, spool, tree.root(), b"./".to_vec(), None)
        .map_err(|e| e.into_fs(wr))?;
    let mut first_name: HashMap<InodeId, Vec<u8>> = HashMap::new();
    for node in tree.walk() {
        let path = tree.path(node);
        let ino_id = tree.node(node).inode;
        let ino = tree.inode(ino_id);
        let mut link = None;
        if !ino.is_dir() && ino.nlink > 1 {
            match first_name.get(&ino_id) {
                Some(first) => link = Some(first.clone()),
                None => {
                    first_name.insert(ino_id, path.clone());
                }
            }
        }
        let mut name = path;
        if ino.is_dir() {
            name.push(b'/');
        }
        w.entry(tree, spool, node, name, link)
            .map_err(|e| e.into_fs(wr))?;
    }
    w.out.write_all(&[0u8; 2 * BLOCK]).map_err(wr)?;
    w.out.flush().map_err(wr)?;
    Ok(w.stats)
}

/// Writes the tree as a tar file at `path` (temporary name + rename), or to stdout for `-`.
pub fn write_to(tree: &Tree, spool: &Spool, path: &Path) -> Result<TarStats, FsError> {
    let werr = |source| FsError::Write {
        path: path.to_path_buf(),
        source,
    };
    if path == Path::new("-") {
        let stdout = io::stdout();
        let mut out = BufWriter::with_capacity(1 << 20, stdout.lock());
        return write(tree, spool, &mut out);
    }
    super::check_output_file(path)?;
    let tmp = tempfile::Builder::new()
        .prefix(".oci2vm-tar-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .tempfile_in(parent_of(path))
        .map_err(werr)?;
    let mut out = BufWriter::with_capacity(1 << 20, tmp.as_file());
    let stats = write_inner(tree, spool, &mut out, Some(tmp.as_file())).map_err(|e| match e {
        FsError::Write { source, .. } => werr(source),
        other => other,
    })?;
    drop(out);
    tmp.persist(path).map_err(|e| werr(e.error))?;
    Ok(stats)
}

pub(super) struct Writer<'a, W: Write> {
    pub(super) out: W,
    direct: Option<&'a File>,
    pub(super) stats: TarStats,
    buf: Vec<u8>,
}

enum WErr {
    Io(io::Error),
    Fs(FsError),
}

impl WErr {
    fn into_fs(self, wr: impl Fn(io::Error) -> FsError) -> FsError {
        match self {
            WErr::Io(e) => wr(e),
            WErr::Fs(e) => e,
        }
    }
}

impl From<io::Error> for WErr {
    fn from(e: io::Error) -> Self {
        WErr::Io(e)
    }
}

/// A PAX record `LEN key=value\n`.
pub fn pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let body = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut n = body + 1;
    loop {
        let total = n.to_string().len() + body;
        if total == n {
            break;
        }
        n = total;
    }
    out.extend_from_slice(n.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

fn pax_time(t: Timestamp) -> String {
    if t.nsec == 0 {
        return t.sec.to_string();
    }
    let (sign, sec, nsec) = if t.sec < 0 {
        ("-", (t.sec + 1).unsigned_abs(), 1_000_000_000 - t.nsec)
    } else {
        ("", t.sec as u64, t.nsec)
    };
    let frac = format!("{nsec:09}");
    format!("{sign}{sec}.{}", frac.trim_end_matches('0'))
}

fn octal(field: &mut [u8], v: u64) {
    let w = field.len() - 1;
    let s = format!("{v:0w$o}");
    field[..w].copy_from_slice(&s.as_bytes()[s.len() - w..]);
    field[w] = 0;
}

/// Splits a name into ustar `(prefix, name)` if it fits.
fn ustar_split(name: &[u8]) -> Option<(&[u8], &[u8])> {
    if name.len() <= 100 {
        return Some((&[], name));
    }
    // The split point is a '/' with at most 155 bytes before and 100 after.
    let lo = name.len().saturating_sub(101);
    (lo..name.len().min(156))
        .find(|&i| name[i] == b'/')
        .and_then(|i| {
            let (p, n) = (&name[..i], &name[i + 1..]);
            (!n.is_empty() && n.len() <= 100 && p.len() <= 155).then_some((p, n))
        })
}

struct Fields<'a> {
    name: &'a [u8],
    link: &'a [u8],
    typeflag: u8,
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: u64,
    dev: (u32, u32),
}

fn header(f: &Fields<'_>, prefix: &[u8]) -> [u8; BLOCK] {
    let mut b = [0u8; BLOCK];
    b[..f.name.len()].copy_from_slice(f.name);
    octal(&mut b[100..108], u64::from(f.mode));
    octal(&mut b[108..116], f.uid);
    octal(&mut b[116..124], f.gid);
    octal(&mut b[124..136], f.size);
    octal(&mut b[136..148], f.mtime);
    b[156] = f.typeflag;
    b[157..157 + f.link.len()].copy_from_slice(f.link);
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    octal(&mut b[329..337], u64::from(f.dev.0));
    octal(&mut b[337..345], u64::from(f.dev.1));
    b[345..345 + prefix.len()].copy_from_slice(prefix);
    b[148..156].copy_from_slice(b"        ");
    let sum: u64 = b.iter().map(|&x| u64::from(x)).sum();
    octal(&mut b[148..155], sum);
    b[155] = b' ';
    b
}

impl<'a, W: Write> Writer<'a, W> {
    /// A writer into `out`; `direct` is the file behind `out` for kernel copies.
    pub(super) fn new(out: W, direct: Option<&'a File>) -> Self {
        Writer {
            out,
            direct,
            stats: TarStats::default(),
            buf: vec![0u8; 256 << 10],
        }
    }

    /// Writes one entry with its data from the spool.
    fn entry(
        &mut self,
        tree: &Tree,
        spool: &Spool,
        node: NodeId,
        name: Vec<u8>,
        hardlink: Option<Vec<u8>>,
    ) -> Result<(), WErr> {
        if self
            .header(tree, node, &name, hardlink.as_deref())?
            .is_none()
            || hardlink.is_some()
        {
            return Ok(());
        }
        let InodeKind::File { content } = &tree.inode_of(node).kind else {
            return Ok(());
        };
        let mut left = content.len;
        // Small files go through the buffer (no flush, one pread); big ones are copied in
        // the kernel.
        if let (Some(dst), Some((src, mut off))) = (self.direct, spool.file_range(content))
            && left >= DIRECT_COPY_MIN
        {
            self.out.flush()?;
            while left > 0 {
                let want = usize::try_from(left).unwrap_or(usize::MAX).min(1 << 30);
                match rustix::fs::copy_file_range(src, Some(&mut off), dst, None, want) {
                    Ok(0) | Err(_) => break, // fall back to read/write for the rest
                    Ok(n) => left -= n as u64,
                }
            }
        }
        while left > 0 {
            let want = usize::try_from(left)
                .unwrap_or(usize::MAX)
                .min(self.buf.len());
            let pos = content.len - left;
            let n = spool
                .read_at(content, pos, &mut self.buf[..want])
                .map_err(|source| {
                    WErr::Fs(FsError::Spool {
                        entry: lossy(&tree.path(node)),
                        source,
                    })
                })?;
            if n == 0 {
                let source =
                    io::Error::new(io::ErrorKind::UnexpectedEof, "spool content truncated");
                return Err(WErr::Fs(FsError::Spool {
                    entry: lossy(&tree.path(node)),
                    source,
                }));
            }
            self.out.write_all(&self.buf[..n])?;
            left -= n as u64;
        }
        self.stats.data_bytes += content.len;
        self.pad(content.len)?;
        Ok(())
    }

    /// Writes the header(s) of one entry (a `hardlink` names the entry carrying the data).
    /// Returns the length of the file data the caller must write next (then [`Self::pad`]),
    /// or `None` when nothing was written (a socket).
    pub(super) fn header(
        &mut self,
        tree: &Tree,
        node: NodeId,
        name: &[u8],
        hardlink: Option<&[u8]>,
    ) -> io::Result<Option<u64>> {
        let ino = tree.inode_of(node);
        let (typeflag, link, size, dev): (u8, &[u8], u64, (u32, u32)) = match (hardlink, &ino.kind)
        {
            (Some(first), _) => (b'1', first, 0, (0, 0)),
            (None, InodeKind::File { content }) => (b'0', &[], content.len, (0, 0)),
            (None, InodeKind::Dir) => (b'5', &[], 0, (0, 0)),
            (None, InodeKind::Symlink { target }) => (b'2', target.as_slice(), 0, (0, 0)),
            (None, InodeKind::CharDevice { major, minor }) => (b'3', &[], 0, (*major, *minor)),
            (None, InodeKind::BlockDevice { major, minor }) => (b'4', &[], 0, (*major, *minor)),
            (None, InodeKind::Fifo) => (b'6', &[], 0, (0, 0)),
            (None, InodeKind::Socket) => {
                self.stats.sockets_skipped += 1;
                return Ok(None);
            }
        };
        let mut pax = Vec::new();
        let split = ustar_split(name);
        if split.is_none() {
            pax_record(&mut pax, b"path", name);
        }
        if link.len() > 100 {
            pax_record(&mut pax, b"linkpath", link);
        }
        let (uid, gid) = (u64::from(ino.uid), u64::from(ino.gid));
        if uid > MAX_OCTAL_7 {
            pax_record(&mut pax, b"uid", uid.to_string().as_bytes());
        }
        if gid > MAX_OCTAL_7 {
            pax_record(&mut pax, b"gid", gid.to_string().as_bytes());
        }
        if size > MAX_OCTAL_11 {
            pax_record(&mut pax, b"size", size.to_string().as_bytes());
        }
        let t = ino.mtime;
        if t.sec < 0 || t.sec as u64 > MAX_OCTAL_11 || t.nsec != 0 {
            pax_record(&mut pax, b"mtime", pax_time(t).as_bytes());
        }
        if hardlink.is_none() {
            for (k, v) in &ino.xattrs {
                let mut key = b"SCHILY.xattr.".to_vec();
                key.extend_from_slice(k);
                pax_record(&mut pax, &key, v);
            }
        }
        if !pax.is_empty() {
            let base = name
                .rsplit(|&b| b == b'/')
                .find(|c| !c.is_empty())
                .unwrap_or(b".");
            let mut pname = b"PaxHeaders.0/".to_vec();
            pname.extend_from_slice(&base[..base.len().min(80)]);
            let f = Fields {
                name: &pname,
                link: &[],
                typeflag: b'x',
                mode: 0o644,
                uid: 0,
                gid: 0,
                size: pax.len() as u64,
                mtime: 0,
                dev: (0, 0),
            };
            self.out.write_all(&header(&f, &[]))?;
            self.out.write_all(&pax)?;
            self.pad(pax.len() as u64)?;
        }
        let (prefix, short) = split.unwrap_or((&[], &name[..name.len().min(100)]));
        let f = Fields {
            name: short,
            link: &link[..link.len().min(100)],
            typeflag,
            mode: ino.mode & 0o7777,
            uid: uid.min(MAX_OCTAL_7),
            gid: gid.min(MAX_OCTAL_7),
            size: size.min(MAX_OCTAL_11),
            mtime: t.sec.clamp(0, MAX_OCTAL_11 as i64) as u64,
            dev,
        };
        self.out.write_all(&header(&f, prefix))?;
        self.stats.entries += 1;
        Ok(Some(if typeflag == b'0' { size } else { 0 }))
    }

    /// Pads file data of `len` bytes to the next 512-byte block.
    pub(super) fn pad(&mut self, len: u64) -> io::Result<()> {
        let p = (BLOCK - (len % BLOCK as u64) as usize) % BLOCK;
        self.out.write_all(&[0u8; BLOCK][..p])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::tar::pax;

    #[test]
    fn pax_records_have_self_consistent_lengths() {
        for v in ["", "x", &"y".repeat(95), &"z".repeat(994)] {
            let mut out = Vec::new();
            pax_record(&mut out, b"path", v.as_bytes());
            let recs = pax::records(&out).unwrap();
            assert_eq!(recs, vec![(&b"path"[..], v.as_bytes())]);
        }
    }

    #[test]
    fn pax_times_round_trip() {
        for t in [
            Timestamp { sec: 5, nsec: 0 },
            Timestamp {
                sec: 1_700_000_000,
                nsec: 123_456_789,
            },
            Timestamp {
                sec: -2,
                nsec: 500_000_000,
            },
            Timestamp { sec: -1, nsec: 1 },
        ] {
            assert_eq!(
                pax::parse_time(pax_time(t).as_bytes()).unwrap(),
                t,
                "{}",
                pax_time(t)
            );
        }
    }

    #[test]
    fn ustar_split_points() {
        assert_eq!(ustar_split(b"short"), Some((&b""[..], &b"short"[..])));
        let long = format!("{}/{}", "a".repeat(120), "b".repeat(90));
        let (p, n) = ustar_split(long.as_bytes()).unwrap();
        assert_eq!((p.len(), n.len()), (120, 90));
        assert!(ustar_split("c".repeat(101).as_bytes()).is_none());
        assert!(
            ustar_split(format!("{}/{}", "a".repeat(200), "b".repeat(50)).as_bytes()).is_none()
        );
    }
}
