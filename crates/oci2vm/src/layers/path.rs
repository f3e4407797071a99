//! Entry names: lexical normalisation (enclosed in the image root) and whiteout names.
//!
//! Normalisation is purely lexical and never touches the host: strip leading `/` (B3),
//! collapse `//` and `.` (B4), resolve `..` against the components seen so far (B2) and refuse
//! a name that climbs above the root (B1). Symlinks in parent components are resolved later,
//! against the merged tree, by `apply` (chroot semantics).
//!
//! Whiteouts (image-spec `layer.md`): `.wh.NAME` deletes `NAME` from lower layers,
//! `.wh..wh..opq` hides every lower child of its directory, other `.wh..wh.*` names are AUFS
//! metadata that Docker skips.

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The name is empty.
    #[error("empty name")]
    Empty,
    /// `..` climbs above the image root.
    #[error("path escapes the image root")]
    Escape,
    /// One component is longer than the limit.
    #[error("path component of {len} bytes exceeds {limit}")]
    NameTooLong {
        /// Its length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The whole path is longer than the limit.
    #[error("path of {len} bytes exceeds {limit}")]
    PathTooLong {
        /// Its length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// `.wh.`, `.wh..` or `.wh...`: a whiteout of nothing, `.` or `..`.
    #[error("malformed whiteout name")]
    BadWhiteout,
    /// A `.wh.` prefix on a directory component (such names cannot exist in an image).
    #[error("whiteout prefix in a directory component")]
    WhiteoutInDirectory,
}

/// A normalised path: components joined by `/`, no leading `/`, empty for the root.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CleanPath {
    /// The joined bytes.
    pub bytes: Vec<u8>,
    /// True when normalisation changed more than a leading `./` or a trailing `/`.
    pub sanitised: bool,
}

impl CleanPath {
    /// Components, in order (none for the root).
    pub fn components(&self) -> impl DoubleEndedIterator<Item = &[u8]> {
        self.bytes.split(|&b| b == b'/').filter(|c| !c.is_empty())
    }

    /// `(parent components, final component)`; `None` for the root.
    pub fn split_last(&self) -> Option<(Vec<&[u8]>, &[u8])> {
        let mut comps: Vec<&[u8]> = self.components().collect();
        let last = comps.pop()?;
        Some((comps, last))
    }

    /// True for the image root.
    pub fn is_root(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// Normalises a raw entry name or hard-link target.
pub fn normalize(raw: &[u8], name_limit: usize, path_limit: usize) -> Result<CleanPath, PathError> {
    if raw.is_empty() {
        return Err(PathError::Empty);
    }
    let mut comps: Vec<&[u8]> = Vec::new();
    let mut sanitised = raw.first() == Some(&b'/');
    let mut leading = true;
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" => {}
            b"." => {
                if !leading {
                    sanitised = true;
                }
            }
            b".." => {
                sanitised = true;
                if comps.pop().is_none() {
                    return Err(PathError::Escape);
                }
            }
            _ => {
                if c.len() > name_limit {
                    return Err(PathError::NameTooLong {
                        len: c.len(),
                        limit: name_limit,
                    });
                }
                comps.push(c);
            }
        }
        leading = false;
    }
    let bytes = comps.join(&b'/');
    if bytes.len() > path_limit {
        return Err(PathError::PathTooLong {
            len: bytes.len(),
            limit: path_limit,
        });
    }
    // `a//b` also counts as sanitised: compare with the raw name minus `./` and trailing `/`.
    let plain = raw.strip_prefix(b"./").unwrap_or(raw);
    let plain = plain.strip_suffix(b"/").unwrap_or(plain);
    if plain != bytes.as_slice() && !(bytes.is_empty() && matches!(plain, b"." | b"")) {
        sanitised = true;
    }
    Ok(CleanPath { bytes, sanitised })
}

/// What a final component means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whiteout<'a> {
    /// An ordinary name.
    None,
    /// `.wh..wh..opq`: opaque directory marker.
    Opaque,
    /// `.wh..wh.*` (AUFS `plnk`, `aufs`, `orph`): skipped.
    Aufs,
    /// `.wh.NAME`: delete `NAME`.
    Target(&'a [u8]),
}

/// The whiteout prefix.
pub const WH_PREFIX: &[u8] = b".wh.";
/// The opaque marker name.
pub const WH_OPAQUE: &[u8] = b".wh..wh..opq";
const WH_META: &[u8] = b".wh..wh.";

/// Classifies a final component.
pub fn classify(base: &[u8]) -> Result<Whiteout<'_>, PathError> {
    if base == WH_OPAQUE {
        return Ok(Whiteout::Opaque);
    }
    if base.starts_with(WH_META) {
        return Ok(Whiteout::Aufs);
    }
    match base.strip_prefix(WH_PREFIX) {
        None => Ok(Whiteout::None),
        Some(b"" | b"." | b"..") => Err(PathError::BadWhiteout),
        Some(target) => Ok(Whiteout::Target(target)),
    }
}

/// Checks the directory components of a name: a `.wh.` prefix there is an error, except the
/// AUFS metadata directories at the root (`.wh..wh.plnk/...`), which mean "skip this entry".
/// Returns `true` when the entry is AUFS metadata.
pub fn check_dirs(dirs: &[&[u8]]) -> Result<bool, PathError> {
    if dirs.first().is_some_and(|d| d.starts_with(WH_META)) {
        return Ok(true);
    }
    if dirs.iter().any(|d| d.starts_with(WH_PREFIX)) {
        return Err(PathError::WhiteoutInDirectory);
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Result<(String, bool), PathError> {
        normalize(s.as_bytes(), 255, 4096)
            .map(|c| (String::from_utf8(c.bytes).unwrap(), c.sanitised))
    }

    #[test]
    fn normalises_lexically() {
        assert_eq!(n("./a//b/./c").unwrap(), ("a/b/c".into(), true));
        assert_eq!(n("/etc/shadow").unwrap(), ("etc/shadow".into(), true));
        assert_eq!(n("a/../b").unwrap(), ("b".into(), true));
        assert_eq!(n("./usr/bin/").unwrap(), ("usr/bin".into(), false));
        assert_eq!(n("usr").unwrap(), ("usr".into(), false));
        assert_eq!(n("./").unwrap(), ("".into(), false));
        assert_eq!(n(".").unwrap(), ("".into(), false));
        assert_eq!(n("/").unwrap(), ("".into(), true));
    }

    #[test]
    fn refuses_escapes_and_oversize() {
        assert_eq!(n("../etc/passwd"), Err(PathError::Escape));
        assert_eq!(n("a/../../x"), Err(PathError::Escape));
        assert_eq!(n(""), Err(PathError::Empty));
        assert!(matches!(
            n(&"x".repeat(256)),
            Err(PathError::NameTooLong { .. })
        ));
        let long = vec!["d"; 3000].join("/");
        assert!(matches!(n(&long), Err(PathError::PathTooLong { .. })));
    }

    #[test]
    fn whiteout_names() {
        assert_eq!(classify(b".wh..wh..opq"), Ok(Whiteout::Opaque));
        assert_eq!(classify(b".wh..wh.plnk"), Ok(Whiteout::Aufs));
        assert_eq!(classify(b".wh.foo"), Ok(Whiteout::Target(b"foo")));
        assert_eq!(classify(b".wh..opq"), Ok(Whiteout::Target(b".opq")));
        assert_eq!(classify(b"foo.wh."), Ok(Whiteout::None));
        for bad in [&b".wh."[..], b".wh..", b".wh..."] {
            assert_eq!(classify(bad), Err(PathError::BadWhiteout));
        }
        assert_eq!(
            check_dirs(&[b"a", b".wh.etc"]),
            Err(PathError::WhiteoutInDirectory)
        );
        assert_eq!(check_dirs(&[b".wh..wh.plnk"]), Ok(true));
        assert_eq!(check_dirs(&[b"a", b"b"]), Ok(false));
    }
}
