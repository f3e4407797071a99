//! Test helpers: a tiny tar builder that can also emit malformed headers, layer inputs,
//! tree listings in the fixture oracle format, and an OCI-layout loader (tests only).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;

use oci2vm::digest::Digest;
use oci2vm::layers::spool::Spool;
use oci2vm::layers::tree::{InodeKind, Tree};
use oci2vm::layers::{ApplyOptions, LayerError, LayerInput, Report, build_tree};

pub const TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const TGZ: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const TZST: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// One header block under construction.
#[derive(Clone, Debug)]
pub struct Hdr {
    pub name: Vec<u8>,
    pub link: Vec<u8>,
    pub typeflag: u8,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    pub mtime: i64,
    pub devmajor: u64,
    pub devminor: u64,
    pub magic: [u8; 8],
    pub prefix: Vec<u8>,
    /// Replace the size field with these raw bytes (e.g. base-256).
    pub raw_size: Option<[u8; 12]>,
    pub raw_uid: Option<[u8; 8]>,
    pub bad_checksum: bool,
}

impl Hdr {
    pub fn new(typeflag: u8, name: impl AsRef<[u8]>) -> Self {
        Hdr {
            name: name.as_ref().to_vec(),
            link: Vec::new(),
            typeflag,
            mode: if typeflag == b'5' { 0o755 } else { 0o644 },
            uid: 0,
            gid: 0,
            size: 0,
            mtime: 1_000_000_000,
            devmajor: 0,
            devminor: 0,
            magic: *b"ustar\x0000",
            prefix: Vec::new(),
            raw_size: None,
            raw_uid: None,
            bad_checksum: false,
        }
    }

    pub fn gnu(mut self) -> Self {
        self.magic = *b"ustar  \0";
        self
    }

    pub fn v7(mut self) -> Self {
        self.magic = [0; 8];
        self
    }

    pub fn encode(&self) -> [u8; 512] {
        let mut b = [0u8; 512];
        let n = self.name.len().min(100);
        b[..n].copy_from_slice(&self.name[..n]);
        oct(&mut b[100..108], u64::from(self.mode));
        oct(&mut b[108..116], self.uid);
        oct(&mut b[116..124], self.gid);
        oct(&mut b[124..136], self.size);
        oct(&mut b[136..148], self.mtime.max(0) as u64);
        b[156] = self.typeflag;
        let l = self.link.len().min(100);
        b[157..157 + l].copy_from_slice(&self.link[..l]);
        b[257..265].copy_from_slice(&self.magic);
        oct(&mut b[329..337], self.devmajor);
        oct(&mut b[337..345], self.devminor);
        let p = self.prefix.len().min(155);
        b[345..345 + p].copy_from_slice(&self.prefix[..p]);
        if let Some(raw) = self.raw_size {
            b[124..136].copy_from_slice(&raw);
        }
        if let Some(raw) = self.raw_uid {
            b[108..116].copy_from_slice(&raw);
        }
        b[148..156].copy_from_slice(b"        ");
        let mut sum: u64 = b.iter().map(|&x| u64::from(x)).sum();
        if self.bad_checksum {
            sum += 1;
        }
        let s = format!("{sum:06o}\0 ");
        b[148..156].copy_from_slice(s.as_bytes());
        b
    }
}

fn oct(field: &mut [u8], v: u64) {
    let w = field.len() - 1;
    let s = format!("{v:0w$o}");
    let s = &s.as_bytes()[s.len().saturating_sub(w)..];
    field[..s.len()].copy_from_slice(s);
}

pub fn pax_rec(key: &str, value: &[u8]) -> Vec<u8> {
    let body = key.len() + value.len() + 3;
    let mut n = body + 1;
    loop {
        let t = n.to_string().len() + body;
        if t == n {
            break;
        }
        n = t;
    }
    let mut out = format!("{n} {key}=").into_bytes();
    out.extend_from_slice(value);
    out.push(b'\n');
    out
}

/// Builds tar bytes entry by entry.
#[derive(Default, Debug, Clone)]
pub struct TarB {
    pub buf: Vec<u8>,
}

impl TarB {
    pub fn new() -> Self {
        TarB::default()
    }

    /// A header followed by `data` (padded); the header's size is whatever `h.size` says.
    pub fn raw(mut self, h: Hdr, data: &[u8]) -> Self {
        self.buf.extend_from_slice(&h.encode());
        self.buf.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.buf.extend(std::iter::repeat_n(0u8, pad));
        self
    }

    pub fn entry(self, mut h: Hdr, data: &[u8]) -> Self {
        h.size = data.len() as u64;
        self.raw(h, data)
    }

    pub fn file(self, path: &str, data: &str) -> Self {
        self.entry(Hdr::new(b'0', path), data.as_bytes())
    }

    pub fn file_mode(self, path: &str, data: &str, mode: u32, uid: u64, gid: u64) -> Self {
        let mut h = Hdr::new(b'0', path);
        h.mode = mode;
        h.uid = uid;
        h.gid = gid;
        self.entry(h, data.as_bytes())
    }

    pub fn dir(self, path: &str) -> Self {
        self.entry(Hdr::new(b'5', path), b"")
    }

    pub fn dir_mode(self, path: &str, mode: u32, uid: u64) -> Self {
        let mut h = Hdr::new(b'5', path);
        h.mode = mode;
        h.uid = uid;
        self.entry(h, b"")
    }

    pub fn symlink(self, path: &str, target: &str) -> Self {
        let mut h = Hdr::new(b'2', path);
        h.mode = 0o777;
        h.link = target.as_bytes().to_vec();
        self.entry(h, b"")
    }

    pub fn hardlink(self, path: &str, target: &str) -> Self {
        let mut h = Hdr::new(b'1', path);
        h.link = target.as_bytes().to_vec();
        self.entry(h, b"")
    }

    pub fn dev(self, path: &str, typeflag: u8, major: u64, minor: u64) -> Self {
        let mut h = Hdr::new(typeflag, path);
        h.devmajor = major;
        h.devminor = minor;
        self.entry(h, b"")
    }

    /// A PAX `x` header with the given records.
    pub fn pax(self, records: &[(&str, &[u8])]) -> Self {
        let body: Vec<u8> = records.iter().flat_map(|(k, v)| pax_rec(k, v)).collect();
        self.entry(Hdr::new(b'x', "PaxHeaders/x"), &body)
    }

    pub fn pax_raw(self, typeflag: u8, body: &[u8]) -> Self {
        self.entry(Hdr::new(typeflag, "PaxHeaders/x"), body)
    }

    /// A GNU long name (`L`) or long link (`K`) header.
    pub fn gnu_long(self, typeflag: u8, name: &[u8]) -> Self {
        let mut body = name.to_vec();
        body.push(0);
        self.entry(Hdr::new(typeflag, "././@LongLink").gnu(), &body)
    }

    pub fn bytes(mut self, b: &[u8]) -> Self {
        self.buf.extend_from_slice(b);
        self
    }

    /// Two zero blocks.
    pub fn end(mut self) -> Vec<u8> {
        self.buf.extend_from_slice(&[0u8; 1024]);
        self.buf
    }

    pub fn no_end(self) -> Vec<u8> {
        self.buf
    }
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn input(bytes: Vec<u8>, media_type: &str) -> LayerInput<Box<dyn Read + Send>> {
    LayerInput {
        digest: Digest::sha256_of(&bytes),
        diff_id: None,
        media_type: media_type.to_string(),
        reader: Box::new(std::io::Cursor::new(bytes)),
        verify_digest: true,
    }
}

pub struct Built {
    pub tree: Tree,
    pub spool: Spool,
    pub report: Report,
    pub _dir: tempfile::TempDir,
}

pub fn build_with(
    layers: Vec<LayerInput<Box<dyn Read + Send>>>,
    opts: &ApplyOptions,
) -> Result<Built, LayerError> {
    let dir = tempfile::tempdir().unwrap();
    let (tree, spool, report) = build_tree(layers, opts, dir.path())?;
    Ok(Built {
        tree,
        spool,
        report,
        _dir: dir,
    })
}

/// Builds plain-tar layers.
pub fn build(layers: Vec<Vec<u8>>) -> Result<Built, LayerError> {
    build_with(
        layers.into_iter().map(|l| input(l, TAR)).collect(),
        &ApplyOptions::default(),
    )
}

pub fn content(b: &Built, path: &str) -> Option<Vec<u8>> {
    let node = lookup(&b.tree, path)?;
    match &b.tree.inode_of(node).kind {
        InodeKind::File { content } => {
            let mut v = Vec::new();
            b.spool.reader(content).read_to_end(&mut v).unwrap();
            Some(v)
        }
        _ => None,
    }
}

/// Looks a path up without following symlinks.
pub fn lookup(tree: &Tree, path: &str) -> Option<oci2vm::layers::tree::NodeId> {
    let mut cur = tree.root();
    for c in path.split('/').filter(|c| !c.is_empty()) {
        cur = tree.lookup(cur, c.as_bytes())?;
    }
    Some(cur)
}

/// Paths of the tree in walk order (`d/` for directories).
pub fn paths(tree: &Tree) -> Vec<String> {
    tree.walk()
        .into_iter()
        .map(|n| {
            let mut p = String::from_utf8_lossy(&tree.path(n)).into_owned();
            if tree.inode_of(n).is_dir() {
                p.push('/');
            }
            p
        })
        .collect()
}

/// The tree in the fixture oracle format (`scripts/fixtures/tree.py`), keyed by path.
pub fn listing(tree: &Tree, spool: &Spool) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for n in tree.walk() {
        let path = format!("/{}", String::from_utf8_lossy(&tree.path(n)));
        let ino = tree.inode_of(n);
        let mut extra = match &ino.kind {
            InodeKind::File { content } => {
                let mut h = sha2_hex(spool, content);
                h.insert_str(0, "sha256=");
                format!("size={} {h} nlink={}", content.len, ino.nlink)
            }
            InodeKind::Symlink { target } => format!("target={}", String::from_utf8_lossy(target)),
            InodeKind::CharDevice { major, minor } | InodeKind::BlockDevice { major, minor } => {
                format!("rdev={major},{minor}")
            }
            _ => String::new(),
        };
        let xs: Vec<String> = ino
            .xattrs
            .iter()
            .filter(|(k, _)| k.starts_with(b"user."))
            .map(|(k, v)| {
                format!(
                    "{}={}",
                    String::from_utf8_lossy(k),
                    String::from_utf8_lossy(v)
                )
            })
            .collect();
        if !xs.is_empty() {
            extra.push_str(&format!(" xattrs={}", xs.join(",")));
        }
        let line = format!(
            "{path} {} {:04o} {}:{} {extra}",
            ino.kind.letter(),
            ino.mode,
            ino.uid,
            ino.gid
        );
        out.insert(path, line.trim_end().to_string());
    }
    out
}

fn sha2_hex(spool: &Spool, c: &oci2vm::layers::spool::ContentRef) -> String {
    let mut h = oci2vm::Algorithm::Sha256.hasher();
    std::io::copy(&mut spool.reader(c), &mut h).unwrap();
    h.finish().hex().to_string()
}

/// Reads an oracle listing file into the same map (last field may be empty).
pub fn read_listing(path: &Path) -> BTreeMap<String, String> {
    let raw = std::fs::read(path).unwrap();
    let text = String::from_utf8_lossy(&raw);
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        // the path may contain spaces: the type letter field follows the path
        let key = path_of_line(line);
        out.insert(key, line.trim_end().to_string());
    }
    out
}

fn path_of_line(line: &str) -> String {
    // "/p a t h T MODE U:G ..." -> find " T 0NNN " pattern from the left
    let bytes = line.as_bytes();
    for i in 0..bytes.len() {
        if bytes[i] == b' '
            && i + 8 <= bytes.len()
            && bytes[i + 2] == b' '
            && b"fdlcbps".contains(&bytes[i + 1])
            && bytes[i + 3..i + 7].iter().all(u8::is_ascii_digit)
            && bytes[i + 7] == b' '
        {
            return line[..i].to_string();
        }
    }
    line.to_string()
}

/// Prints why a test is skipped, or panics under CI=true (see [`super::require`]).
pub fn skip(reason: &str) {
    super::require(false, reason);
}

/// Whether `name` is installed; a missing tool skips (or fails under CI=true).
pub fn tool(name: &str) -> bool {
    super::require(super::have_tool(name), &format!("{name} installed"))
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Layers of an OCI layout's tagged image: index.json -> manifest -> config diff_ids.
/// Test-only; the real source code lives in the store/sources modules.
pub fn layout_layers(dir: &Path, tag: &str) -> Vec<LayerInput<Box<dyn Read + Send>>> {
    let json = |d: &str| -> serde_json::Value {
        let dg = Digest::parse(d).unwrap();
        serde_json::from_slice(&std::fs::read(dir.join(dg.layout_path())).unwrap()).unwrap()
    };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let manifests = index["manifests"].as_array().unwrap();
    let desc = manifests
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str() == Some(tag))
        .or_else(|| manifests.first())
        .unwrap();
    let manifest = json(desc["digest"].as_str().unwrap());
    let config = json(manifest["config"]["digest"].as_str().unwrap());
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(diff_ids.len(), layers.len());
    layers
        .iter()
        .zip(diff_ids)
        .map(|(l, d)| {
            let digest = Digest::parse(l["digest"].as_str().unwrap()).unwrap();
            let file = std::fs::File::open(dir.join(digest.layout_path())).unwrap();
            LayerInput {
                digest,
                diff_id: Some(Digest::parse(d.as_str().unwrap()).unwrap()),
                media_type: l["mediaType"].as_str().unwrap().to_string(),
                reader: Box::new(std::io::BufReader::with_capacity(1 << 20, file))
                    as Box<dyn Read + Send>,
                verify_digest: true,
            }
        })
        .collect()
}

/// The error and its sources joined with ": ".
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Asserts two listings are equal, printing only the differences.
pub fn assert_same(ours: &BTreeMap<String, String>, theirs: &BTreeMap<String, String>, ctx: &str) {
    let mut diffs = Vec::new();
    for (k, v) in theirs {
        match ours.get(k) {
            Some(o) if o == v => {}
            Some(o) => diffs.push(format!("  expected: {v}\n  ours:     {o}")),
            None => diffs.push(format!("  missing in ours: {v}")),
        }
    }
    for (k, o) in ours {
        if !theirs.contains_key(k) {
            diffs.push(format!("  extra in ours: {o}"));
        }
    }
    assert!(
        diffs.is_empty(),
        "{ctx}: {} differences:\n{}",
        diffs.len(),
        diffs[..diffs.len().min(30)].join("\n")
    );
}

pub fn host_listing(dir: &Path) -> BTreeMap<String, String> {
    let out = std::process::Command::new("python3")
        .arg(super::repo_root().join("scripts/fixtures/tree.py"))
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), &out.stdout).unwrap();
    read_listing(f.path())
}
