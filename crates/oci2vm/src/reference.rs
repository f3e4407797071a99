//! Image references in skopeo's transport syntax.
//!
//! ```text
//! docker://REF | REF              registry image, Docker Hub normalisation
//! oci:DIR[:TAG]                   OCI image layout directory
//! oci-archive:FILE[:TAG]          tar of an OCI image layout
//! docker-archive:FILE[:REF]       `docker save` / skopeo docker-archive tar
//!
//! REF   := [DOMAIN '/'] PATH [':' TAG] ['@' DIGEST]
//! DOMAIN:= component ('.' component)* [':' port] | '[' ipv6 ']' [':' port]
//! PATH  := path-component ('/' path-component)*        lowercase [a-z0-9] with [._-] separators
//! TAG   := [\w][\w.-]{0,127}
//! ```
//!
//! Grammar: <https://github.com/distribution/reference/blob/main/reference.go>; transports:
//! containers-transports(5). As in containers/image, the path of `oci:`, `oci-archive:` and
//! `docker-archive:` ends at the first `:`, so the tag part may itself contain colons
//! (`oci:STORE:docker.io/library/busybox:latest`).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::digest::Digest;
use crate::error::{Classify, ErrorKind};

/// The registry Docker Hub images live on, after normalisation.
pub const DOCKER_HUB: &str = "docker.io";
const NAME_TOTAL_MAX: usize = 255;
const TAG_MAX: usize = 128;

/// Errors from parsing a reference.
#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    /// The reference is malformed.
    #[error("invalid reference {input:?}: {reason}")]
    Invalid {
        /// The reference as given (truncated).
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The transport prefix is not one we know.
    #[error(
        "unknown transport {transport:?} (want docker://, oci:, oci-archive: or docker-archive:)"
    )]
    UnknownTransport {
        /// The prefix before the first `:`.
        transport: String,
    },
}

impl Classify for ReferenceError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidInput
    }
}

impl From<ReferenceError> for crate::Error {
    fn from(e: ReferenceError) -> Self {
        crate::Error::new(e.kind(), e)
    }
}

/// A registry image reference (`docker://`), normalised.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DockerReference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl DockerReference {
    /// Parses a Docker reference (without the `docker://` prefix), applying Docker Hub
    /// normalisation: `busybox` is `docker.io/library/busybox:latest`.
    pub fn parse(s: &str) -> Result<Self, ReferenceError> {
        let invalid = |reason: &str| ReferenceError::Invalid {
            input: s.chars().take(300).collect(),
            reason: reason.to_string(),
        };
        if s.is_empty() {
            return Err(invalid("empty reference"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((name, d)) => {
                let digest = Digest::parse(d).map_err(|e| invalid(&e.to_string()))?;
                (name, Some(digest))
            }
            None => (s, None),
        };
        // A tag follows the last ':' that comes after the last '/'.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let (n, t) = rest.split_at(last_slash + i);
                (n, Some(&t[1..]))
            }
            None => (rest, None),
        };
        if let Some(t) = tag {
            validate_tag(t).map_err(invalid)?;
        }
        if name.is_empty() {
            return Err(invalid("missing repository name"));
        }
        let (registry, path) = split_domain(name);
        let registry = match registry {
            Some(d) => {
                validate_domain(d).map_err(invalid)?;
                if d == "index.docker.io" {
                    DOCKER_HUB.to_string()
                } else {
                    d.to_string()
                }
            }
            None => DOCKER_HUB.to_string(),
        };
        if path.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(invalid("repository name must be lowercase"));
        }
        for component in path.split('/') {
            validate_path_component(component).map_err(invalid)?;
        }
        let repository = if registry == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_string()
        };
        if registry.len() + 1 + repository.len() > NAME_TOTAL_MAX {
            return Err(invalid("repository name longer than 255 characters"));
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, None) => Some("latest".to_string()),
            (None, Some(_)) => None,
        };
        Ok(DockerReference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The registry host (`docker.io`, `127.0.0.1:5000`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path (`library/busybox`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if any (`latest` when neither tag nor digest was given).
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The pinned digest, if any.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// What to ask the registry for: the digest if pinned, else the tag.
    pub fn manifest_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_string(),
        }
    }

    /// `registry/repository`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

impl fmt::Display for DockerReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// Splits off the domain: the first component is a domain when it contains `.` or `:`, is
/// `localhost`, or has uppercase letters (Docker's rule).
fn split_domain(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

fn validate_tag(tag: &str) -> Result<(), &'static str> {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut chars = tag.chars();
    match chars.next() {
        None => return Err("empty tag"),
        Some(c) if !word(c) => return Err("tag must start with a letter, digit or '_'"),
        Some(_) => {}
    }
    if tag.len() > TAG_MAX {
        return Err("tag longer than 128 characters");
    }
    if !chars.all(|c| word(c) || c == '.' || c == '-') {
        return Err("tag may only contain letters, digits, '_', '.' and '-'");
    }
    Ok(())
}

fn validate_domain(domain: &str) -> Result<(), &'static str> {
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        let (ip, after) = rest
            .split_once(']')
            .ok_or("unterminated '[' in registry host")?;
        if ip.is_empty() || !ip.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
            return Err("invalid IPv6 registry host");
        }
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or("junk after IPv6 registry host")?),
        };
        (None, port)
    } else {
        match domain.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(domain), None),
        }
    };
    if let Some(host) = host {
        if host.is_empty() {
            return Err("empty registry host");
        }
        for label in host.split('.') {
            let ok = !label.is_empty()
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-');
            if !ok {
                return Err("invalid registry host name");
            }
        }
    }
    if let Some(p) = port {
        if p.is_empty() || p.len() > 5 || !p.chars().all(|c| c.is_ascii_digit()) {
            return Err("invalid registry port");
        }
    }
    Ok(())
}

/// `[a-z0-9]+ ((\.|_|__|-+) [a-z0-9]+)*`
fn validate_path_component(c: &str) -> Result<(), &'static str> {
    const BAD: &str = "repository path components are lowercase letters and digits separated by '.', '_', '__' or '-'";
    if c.is_empty() {
        return Err("empty repository path component");
    }
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    let mut i = 0;
    loop {
        let start = i;
        while i < b.len() && alnum(b[i]) {
            i += 1;
        }
        if i == start {
            return Err(BAD);
        }
        if i == b.len() {
            return Ok(());
        }
        let sep_start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[sep_start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return Err(BAD);
        }
    }
}

/// A source reference in one of the supported transports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// `docker://REF` or a bare `REF`.
    Docker(DockerReference),
    /// `oci:DIR[:TAG]`.
    OciLayout {
        /// The layout directory.
        dir: PathBuf,
        /// The `org.opencontainers.image.ref.name` to select, if given.
        tag: Option<String>,
    },
    /// `oci-archive:FILE[:TAG]`.
    OciArchive {
        /// The tar file.
        file: PathBuf,
        /// The `org.opencontainers.image.ref.name` to select, if given.
        tag: Option<String>,
    },
    /// `docker-archive:FILE[:REF]`.
    DockerArchive {
        /// The tar file.
        file: PathBuf,
        /// The `RepoTags` entry to select, if given.
        reference: Option<DockerReference>,
    },
}

impl Reference {
    /// Parses a reference in skopeo's transport syntax.
    pub fn parse(s: &str) -> Result<Self, ReferenceError> {
        let invalid = |reason: &str| ReferenceError::Invalid {
            input: s.chars().take(300).collect(),
            reason: reason.to_string(),
        };
        if s.contains(['\0', '\n', '\r']) {
            return Err(invalid("control characters are not allowed"));
        }
        if let Some(r) = s.strip_prefix("docker://") {
            return Ok(Reference::Docker(DockerReference::parse(r)?));
        }
        if let Some((transport, rest)) = s.split_once(':') {
            let path_and_tag = || -> Result<(PathBuf, Option<String>), ReferenceError> {
                let (path, tag) = match rest.split_once(':') {
                    Some((p, t)) => (p, Some(t)),
                    None => (rest, None),
                };
                if path.is_empty() {
                    return Err(invalid("missing path"));
                }
                if tag == Some("") {
                    return Err(invalid("empty tag after ':'"));
                }
                Ok((PathBuf::from(path), tag.map(str::to_string)))
            };
            match transport {
                "oci" => {
                    let (dir, tag) = path_and_tag()?;
                    if let Some(t) = &tag {
                        validate_layout_ref(t).map_err(invalid)?;
                    }
                    return Ok(Reference::OciLayout { dir, tag });
                }
                "oci-archive" => {
                    let (file, tag) = path_and_tag()?;
                    if let Some(t) = &tag {
                        validate_layout_ref(t).map_err(invalid)?;
                    }
                    return Ok(Reference::OciArchive { file, tag });
                }
                "docker-archive" => {
                    let (file, r) = path_and_tag()?;
                    let reference = r.as_deref().map(DockerReference::parse).transpose()?;
                    if reference.as_ref().is_some_and(|r| r.digest().is_some()) {
                        return Err(invalid("a docker-archive reference cannot carry a digest"));
                    }
                    return Ok(Reference::DockerArchive { file, reference });
                }
                "docker" => return Err(invalid("docker transport needs '//': docker://REF")),
                t if looks_like_transport(t, rest) => {
                    return Err(ReferenceError::UnknownTransport {
                        transport: t.to_string(),
                    });
                }
                _ => {}
            }
        }
        Ok(Reference::Docker(DockerReference::parse(s)?))
    }

    /// The transport name (`docker`, `oci`, `oci-archive`, `docker-archive`).
    pub fn transport(&self) -> &'static str {
        match self {
            Reference::Docker(_) => "docker",
            Reference::OciLayout { .. } => "oci",
            Reference::OciArchive { .. } => "oci-archive",
            Reference::DockerArchive { .. } => "docker-archive",
        }
    }

    /// The name recorded in the store's `index.json` for a pulled image. Registry images (and
    /// docker archives opened with a name) use the full Docker reference; other local images
    /// get `<transport>/<absolute path>:<tag>`, each part cut down to the OCI `ref.name`
    /// grammar so that `skopeo inspect oci:STORE:NAME` accepts it.
    pub fn store_name(&self) -> String {
        let local = |transport: &str, path: &std::path::Path, tag: Option<&str>| {
            let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
            let mut name = transport.to_string();
            for c in abs.components() {
                let part = ref_name_component(&c.as_os_str().to_string_lossy());
                if !part.is_empty() {
                    name.push('/');
                    name.push_str(&part);
                }
            }
            let tag = ref_name_component(tag.unwrap_or("latest"));
            name.push(':');
            name.push_str(if tag.is_empty() { "latest" } else { &tag });
            name
        };
        match self {
            Reference::Docker(d) => d.to_string(),
            Reference::DockerArchive {
                reference: Some(r), ..
            } => r.to_string(),
            Reference::DockerArchive {
                file,
                reference: None,
            } => local("docker-archive", file, None),
            Reference::OciLayout { dir, tag } => local("oci", dir, tag.as_deref()),
            Reference::OciArchive { file, tag } => local("oci-archive", file, tag.as_deref()),
        }
    }
}

/// Maps text onto `alphanum (separator alphanum)*` with separators `[-._:@+/]`: other
/// characters become `-`, runs of separators collapse to one, and the ends are trimmed.
fn ref_name_component(s: &str) -> String {
    let mut out = String::new();
    let mut pending_sep: Option<char> = None;
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            if let Some(sep) = pending_sep.take() {
                if !out.is_empty() {
                    out.push(sep);
                }
            }
            out.push(c);
        } else if matches!(c, '-' | '.' | '_' | ':' | '@' | '+' | '/') {
            // a real separator wins over one substituted for another character
            if pending_sep.is_none_or(|p| p == '-') {
                pending_sep = Some(c);
            }
        } else {
            pending_sep.get_or_insert('-');
        }
    }
    out
}

/// Whether `s` is a valid `org.opencontainers.image.ref.name` (the grammar containers/image
/// enforces): components `alphanum (sep alphanum)*` joined by `/`, sep `[-._:@+]` or `--`.
pub fn is_valid_ref_name(s: &str) -> bool {
    !s.is_empty()
        && s.split('/').all(|comp| {
            let b = comp.as_bytes();
            let mut i = 0;
            loop {
                let start = i;
                while i < b.len() && b[i].is_ascii_alphanumeric() {
                    i += 1;
                }
                if i == start {
                    return false;
                }
                if i == b.len() {
                    return true;
                }
                let sep_start = i;
                while i < b.len() && !b[i].is_ascii_alphanumeric() {
                    i += 1;
                }
                let sep = &comp[sep_start..i];
                if !(sep == "--" || sep.len() == 1 && "-._:@+".contains(sep)) {
                    return false;
                }
            }
        })
}

/// `host:port/...` has a transport-looking prefix but is a registry; a transport is a bare
/// lowercase word not followed by a port number.
fn looks_like_transport(prefix: &str, rest: &str) -> bool {
    let port_like = rest.split('/').next().is_some_and(|p| {
        let digits = p.split(['@']).next().unwrap_or(p);
        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
    });
    !port_like
        && !prefix.is_empty()
        && prefix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && prefix != "localhost"
        && (rest.starts_with('/') || rest.starts_with('.') || rest.contains('/'))
}

/// An `org.opencontainers.image.ref.name` used to select from an index: printable, no spaces.
fn validate_layout_ref(r: &str) -> Result<(), &'static str> {
    if r.len() > NAME_TOTAL_MAX + TAG_MAX + 80 {
        return Err("image reference too long");
    }
    if !r.chars().all(|c| c.is_ascii_graphic()) {
        return Err("image reference must be printable ASCII without spaces");
    }
    Ok(())
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let opt = |t: &Option<String>| t.as_ref().map(|t| format!(":{t}")).unwrap_or_default();
        match self {
            Reference::Docker(d) => write!(f, "docker://{d}"),
            Reference::OciLayout { dir, tag } => write!(f, "oci:{}{}", dir.display(), opt(tag)),
            Reference::OciArchive { file, tag } => {
                write!(f, "oci-archive:{}{}", file.display(), opt(tag))
            }
            Reference::DockerArchive { file, reference } => {
                write!(f, "docker-archive:{}", file.display())?;
                if let Some(r) = reference {
                    write!(f, ":{r}")?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn docker(s: &str) -> DockerReference {
        match Reference::parse(s).unwrap() {
            Reference::Docker(d) => d,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn docker_hub_normalisation() {
        let cases = [
            ("busybox", "docker.io/library/busybox:latest"),
            ("docker://busybox", "docker.io/library/busybox:latest"),
            ("user/x", "docker.io/user/x:latest"),
            ("docker.io/busybox:1.36", "docker.io/library/busybox:1.36"),
            (
                "index.docker.io/library/busybox",
                "docker.io/library/busybox:latest",
            ),
            ("localhost/x", "localhost/x:latest"),
            ("localhost:5000/x", "localhost:5000/x:latest"),
            ("127.0.0.1:5055/a/b:tag", "127.0.0.1:5055/a/b:tag"),
            ("quay.io/a/b/c:v1.2-rc_3", "quay.io/a/b/c:v1.2-rc_3"),
            ("[::1]:5000/x", "[::1]:5000/x:latest"),
            ("a__b/c-d.e--f", "docker.io/a__b/c-d.e--f:latest"),
        ];
        for (input, want) in cases {
            assert_eq!(docker(input).to_string(), want, "{input}");
        }
        let r = docker("127.0.0.1:5055/a/b:tag");
        assert_eq!(
            (r.registry(), r.repository(), r.tag()),
            ("127.0.0.1:5055", "a/b", Some("tag"))
        );
    }

    #[test]
    fn digests_and_tag_plus_digest() {
        let r = docker(&format!("busybox@{D}"));
        assert_eq!(r.tag(), None);
        assert_eq!(r.manifest_reference(), D);
        assert_eq!(r.to_string(), format!("docker.io/library/busybox@{D}"));
        let r = docker(&format!("localhost:5000/x:v1@{D}"));
        assert_eq!(r.tag(), Some("v1"));
        assert_eq!(r.manifest_reference(), D);
        assert_eq!(docker("busybox:1").manifest_reference(), "1");
    }

    #[test]
    fn local_transports() {
        assert_eq!(
            Reference::parse("oci:/tmp/l").unwrap(),
            Reference::OciLayout {
                dir: "/tmp/l".into(),
                tag: None
            }
        );
        assert_eq!(
            Reference::parse("oci:/s:docker.io/library/busybox:latest").unwrap(),
            Reference::OciLayout {
                dir: "/s".into(),
                tag: Some("docker.io/library/busybox:latest".into())
            }
        );
        assert_eq!(
            Reference::parse("oci-archive:a.tar:v1").unwrap(),
            Reference::OciArchive {
                file: "a.tar".into(),
                tag: Some("v1".into())
            }
        );
        match Reference::parse("docker-archive:/x/b.tar:localhost/b:latest").unwrap() {
            Reference::DockerArchive {
                file,
                reference: Some(r),
            } => {
                assert_eq!(file, PathBuf::from("/x/b.tar"));
                assert_eq!(r.to_string(), "localhost/b:latest");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            Reference::parse("docker-archive:b.tar").unwrap(),
            Reference::DockerArchive {
                reference: None,
                ..
            }
        ));
    }

    #[test]
    fn malformed_references_are_rejected() {
        let bad = [
            "",
            "Busybox",
            "docker.io/Library/busybox",
            "busybox:",
            "busybox:-x",
            "busybox:.x",
            &format!("busybox:{}", "a".repeat(129)),
            "busybox@sha256:abc",
            "busybox@sha256:../../etc/passwd",
            "busybox@sha256:ab/cd",
            "busybox@md5:d41d8cd98f00b204e9800998ecf8427e",
            "a//b",
            "/a",
            "a/",
            "a..b",
            "a___b",
            "-a",
            "a-",
            "a b",
            "localhost:port/x",
            "localhost:123456/x",
            "-bad.io/x",
            "docker:busybox",
            "docker://",
            "oci:",
            "oci::tag",
            "oci:/dir:",
            "oci:/dir:has space",
            "oci-archive:",
            "docker-archive:f.tar:Bad/Name",
            &format!("docker-archive:f.tar:x@{D}"),
            "ftp:/x/y",
            "busy\0box",
            &format!("{}/x", "a".repeat(260)),
        ];
        for b in bad {
            let e = Reference::parse(b);
            assert!(e.is_err(), "{b:?} accepted as {e:?}");
            let e = crate::Error::from(e.unwrap_err());
            assert_eq!(e.kind(), ErrorKind::InvalidInput);
        }
        assert!(matches!(
            Reference::parse("ftp:/x/y"),
            Err(ReferenceError::UnknownTransport { .. })
        ));
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "docker://docker.io/library/busybox:latest",
            "oci:/tmp/l:v1",
            "oci-archive:/a.tar",
            "docker-archive:/b.tar:localhost/b:latest",
        ] {
            let r = Reference::parse(s).unwrap();
            assert_eq!(r.to_string(), s);
            assert_eq!(Reference::parse(&r.to_string()).unwrap(), r);
        }
    }

    #[test]
    fn store_names_are_valid_ref_names() {
        let cases = [
            ("busybox", "docker.io/library/busybox:latest"),
            (
                "oci:/var/tmp/f/oci/busybox:latest",
                "oci/var/tmp/f/oci/busybox:latest",
            ),
            (
                "oci:/s:docker.io/library/busybox:1",
                "oci/s:docker.io/library/busybox:1",
            ),
            (
                "oci-archive:/x/My Image (1).tar",
                "oci-archive/x/My-Image-1.tar:latest",
            ),
            ("docker-archive:/x/b.tar", "docker-archive/x/b.tar:latest"),
            ("docker-archive:/x/b.tar:localhost/b:v1", "localhost/b:v1"),
        ];
        for (input, want) in cases {
            let name = Reference::parse(input).unwrap().store_name();
            assert_eq!(name, want, "{input}");
            assert!(is_valid_ref_name(&name), "{name}");
        }
        assert!(!is_valid_ref_name("oci:/var/x"));
        assert!(!is_valid_ref_name("a//b"));
    }

    proptest::proptest! {
        #[test]
        fn store_name_always_valid(p in "/[ -~]{1,40}", t in "[ -~]{0,20}") {
            let r = Reference::OciLayout { dir: p.into(), tag: Some(t) };
            let name = r.store_name();
            proptest::prop_assert!(is_valid_ref_name(&name), "{}", name);
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,120}") {
            let _ = Reference::parse(&s);
        }

        #[test]
        fn grammar_strings_parse_and_round_trip(
            host in "(localhost|[a-z0-9]{1,8}\\.[a-z]{2,4}|127\\.0\\.0\\.1)(:[0-9]{1,5})?",
            path in "[a-z0-9]{1,6}((\\.|_|__|-{1,2})[a-z0-9]{1,6}){0,2}(/[a-z0-9]{1,6}){0,2}",
            tag in "[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}",
        ) {
            let s = format!("{host}/{path}:{tag}");
            let r = DockerReference::parse(&s).map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
            proptest::prop_assert_eq!(r.to_string(), s.clone());
            proptest::prop_assert_eq!(DockerReference::parse(&r.to_string()).ok(), Some(r));
        }

        #[test]
        fn valid_references_are_path_safe(s in "[a-z0-9./:_@-]{1,80}") {
            if let Ok(Reference::Docker(d)) = Reference::parse(&s) {
                proptest::prop_assert!(!d.repository().split('/').any(|c| c == ".." || c == "." || c.is_empty()));
                proptest::prop_assert!(d.tag().is_none_or(|t| !t.contains('/')));
            }
        }
    }
}
