//! Random access to the members of a tar archive without extracting it.
//!
//! ```text
//! tar:  [hdr][data..pad][hdr][data..pad] ...      (PAX/GNU long names handled by `tar`)
//! index: member path (lexically normalised) -> File{offset,size} | Symlink(target) | HardLink(target) | Dir
//! read:  File::open(archive).seek(offset).take(size)
//! ```
//!
//! Spec: POSIX pax/ustar (<https://pubs.opengroup.org/onlinepubs/9699919799/utilities/pax.html>).
//! Member names are archive-internal keys, never host paths: a lookup path or link target
//! that is absolute or climbs out of the archive root with `..` is an error, and links are
//! followed only inside the index (at most [`MAX_LINK_HOPS`]).

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

use super::SourceError;

/// How many symlink/hard-link hops a lookup follows.
pub const MAX_LINK_HOPS: usize = 16;

#[derive(Debug, Clone)]
enum Member {
    File { offset: u64, size: u64 },
    Symlink(String),
    HardLink(String),
    Other,
}

/// An indexed tar archive.
#[derive(Debug)]
pub struct TarIndex {
    path: PathBuf,
    members: HashMap<String, Member>,
}

/// Normalises an archive-internal path relative to `base` (a directory inside the archive,
/// `""` for the root): `.` dropped, `..` applied lexically; absolute paths and escapes are
/// errors.
pub fn normalise(base: &str, rel: &str) -> Result<String, String> {
    let p = Path::new(rel);
    let mut parts: Vec<String> = Vec::new();
    if !base.is_empty() {
        parts.extend(
            base.split('/')
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        );
    }
    for c in p.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_str().ok_or("non-UTF-8 path")?.to_string()),
            Component::CurDir => {}
            Component::ParentDir => {
                if parts.pop().is_none() {
                    return Err(format!("{rel:?} escapes the archive"));
                }
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("{rel:?} is an absolute path"));
            }
        }
    }
    if parts.is_empty() {
        return Err(format!("{rel:?} names the archive root"));
    }
    Ok(parts.join("/"))
}

impl TarIndex {
    /// Reads every header of the archive at `path` (seeking over member data).
    pub fn open(path: &Path) -> Result<Self, SourceError> {
        let io = |source| SourceError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let mut archive = tar::Archive::new(file);
        let mut members = HashMap::new();
        for entry in archive.entries_with_seek().map_err(io)? {
            let entry = entry.map_err(|e| SourceError::BadArchive {
                path: path.to_path_buf(),
                reason: format!("reading tar headers: {e}"),
            })?;
            let name = entry.path().map_err(io)?;
            let Some(name) = name.to_str().and_then(|n| normalise("", n).ok()) else {
                tracing::debug!(member = ?name, "ignoring archive member with an unusable name");
                continue;
            };
            let link = || -> Result<String, SourceError> {
                let l = entry.link_name().map_err(io)?.unwrap_or_default();
                l.to_str()
                    .map(str::to_string)
                    .ok_or_else(|| SourceError::BadArchive {
                        path: path.to_path_buf(),
                        reason: format!("non-UTF-8 link target in {name}"),
                    })
            };
            let member = match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => Member::File {
                    offset: entry.raw_file_position(),
                    size: entry.size(),
                },
                tar::EntryType::Symlink => Member::Symlink(link()?),
                tar::EntryType::Link => Member::HardLink(link()?),
                _ => Member::Other,
            };
            members.insert(name, member);
        }
        Ok(TarIndex {
            path: path.to_path_buf(),
            members,
        })
    }

    /// The archive's path on the host.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether a member exists (without following links).
    pub fn contains(&self, name: &str) -> bool {
        normalise("", name).is_ok_and(|n| self.members.contains_key(&n))
    }

    /// Finds a regular file by archive path, following symlinks (relative to their directory)
    /// and hard links (relative to the root). Returns `(offset, size)` of its data.
    pub fn lookup(&self, name: &str) -> Result<(u64, u64), SourceError> {
        let bad = |reason: String| SourceError::BadArchive {
            path: self.path.clone(),
            reason,
        };
        let mut current = normalise("", name).map_err(&bad)?;
        for _ in 0..=MAX_LINK_HOPS {
            match self.members.get(&current) {
                None => {
                    return Err(SourceError::MissingMember {
                        archive: self.path.clone(),
                        member: current,
                    });
                }
                Some(Member::File { offset, size }) => return Ok((*offset, *size)),
                Some(Member::Symlink(target)) => {
                    let dir = current.rsplit_once('/').map_or("", |(d, _)| d);
                    current = normalise(dir, target)
                        .map_err(|e| bad(format!("symlink {current}: {e}")))?;
                }
                Some(Member::HardLink(target)) => {
                    current = normalise("", target)
                        .map_err(|e| bad(format!("hard link {current}: {e}")))?;
                }
                Some(Member::Other) => return Err(bad(format!("{current} is not a regular file"))),
            }
        }
        Err(bad(format!("too many links resolving {name}")))
    }

    /// A reader over exactly the bytes of member data at `(offset, size)`.
    pub fn reader(&self, offset: u64, size: u64) -> Result<io::Take<File>, SourceError> {
        let io = |source| SourceError::Io {
            path: self.path.clone(),
            source,
        };
        let mut f = File::open(&self.path).map_err(io)?;
        f.seek(SeekFrom::Start(offset)).map_err(io)?;
        Ok(f.take(size))
    }

    /// Reads a whole member (at most `limit` bytes).
    pub fn read_member(&self, name: &str, limit: u64) -> Result<Vec<u8>, SourceError> {
        let (offset, size) = self.lookup(name)?;
        if size > limit {
            return Err(SourceError::BadArchive {
                path: self.path.clone(),
                reason: format!("member {name} is {size} bytes, more than the {limit}-byte limit"),
            });
        }
        let mut out = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        self.reader(offset, size)?
            .read_to_end(&mut out)
            .map_err(|source| SourceError::Io {
                path: self.path.clone(),
                source,
            })?;
        if out.len() as u64 != size {
            return Err(SourceError::BadArchive {
                path: self.path.clone(),
                reason: format!("member {name} is truncated"),
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn build(
        entries: &[(&str, tar::EntryType, &[u8], Option<&str>)],
    ) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        let mut b = tar::Builder::new(f.reopen().unwrap());
        for (name, ty, data, link) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*ty);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            if let Some(l) = link {
                h.set_link_name(l).unwrap();
            }
            // raw name bytes so hostile names can be tested
            let raw = &mut h.as_old_mut().name;
            raw[..name.len()].copy_from_slice(name.as_bytes());
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.finish().unwrap();
        f
    }

    #[test]
    fn normalise_rules() {
        assert_eq!(normalise("", "./a/b").unwrap(), "a/b");
        assert_eq!(normalise("x", "../y.tar").unwrap(), "y.tar");
        assert_eq!(normalise("", "a/../b").unwrap(), "b");
        assert!(normalise("", "/etc/passwd").is_err());
        assert!(normalise("", "../x").is_err());
        assert!(normalise("a", "../../x").is_err());
        assert!(normalise("", ".").is_err());
    }

    #[test]
    fn follows_links_inside_and_refuses_escapes() {
        use tar::EntryType::*;
        let f = build(&[
            ("data.tar", Regular, b"payload", None),
            ("id/layer.tar", Symlink, b"", Some("../data.tar")),
            ("hl.tar", Link, b"", Some("data.tar")),
            ("esc/layer.tar", Symlink, b"", Some("../../etc/passwd")),
            ("abs.tar", Symlink, b"", Some("/etc/passwd")),
            ("loop1", Symlink, b"", Some("loop2")),
            ("loop2", Symlink, b"", Some("loop1")),
            ("../evil", Regular, b"x", None),
        ]);
        let idx = TarIndex::open(f.path()).unwrap();
        for name in ["data.tar", "id/layer.tar", "hl.tar", "./id/layer.tar"] {
            let (o, s) = idx.lookup(name).unwrap();
            let mut v = Vec::new();
            idx.reader(o, s).unwrap().read_to_end(&mut v).unwrap();
            assert_eq!(v, b"payload", "{name}");
        }
        for bad in [
            "esc/layer.tar",
            "abs.tar",
            "loop1",
            "../evil",
            "/data.tar",
            "missing.tar",
        ] {
            assert!(idx.lookup(bad).is_err(), "{bad}");
        }
        assert!(matches!(
            idx.lookup("missing.tar"),
            Err(SourceError::MissingMember { .. })
        ));
        assert!(idx.read_member("data.tar", 3).is_err());
    }
}
