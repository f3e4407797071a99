//! Hostile and malformed inputs: every one fails with the right kind and touches nothing
//! outside the source.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns panic on purpose

use std::path::Path;

use oci2vm::source::{SourceOptions, pull, resolve};
use oci2vm::store::Store;
use oci2vm::{Digest, ErrorKind, Reference};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// A tiny OCI layout written by hand.
struct Layout {
    dir: tempfile::TempDir,
}

impl Layout {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("blobs/sha256")).unwrap();
        std::fs::write(
            dir.path().join("oci-layout"),
            r#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .unwrap();
        Layout { dir }
    }

    fn blob(&self, data: &[u8]) -> Digest {
        let d = Digest::sha256_of(data);
        std::fs::write(self.dir.path().join(d.layout_path()), data).unwrap();
        d
    }

    fn index(&self, entries: &str) {
        std::fs::write(
            self.dir.path().join("index.json"),
            format!(r#"{{"schemaVersion":2,"manifests":[{entries}]}}"#),
        )
        .unwrap();
    }

    fn entry(mt: &str, d: &Digest, size: usize) -> String {
        format!(r#"{{"mediaType":"{mt}","digest":"{d}","size":{size}}}"#)
    }

    fn config(&self, diff_ids: &[&Digest]) -> (Digest, usize) {
        let ids: Vec<String> = diff_ids.iter().map(|d| format!("\"{d}\"")).collect();
        let c = format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":[{}]}}}}"#,
            ids.join(",")
        );
        (self.blob(c.as_bytes()), c.len())
    }

    /// A manifest with one layer (present or not) and index.json pointing at it.
    fn image(&self, layer_mt: &str, layer_present: bool, extra: &str) -> Digest {
        let layer = b"not really gzip";
        let ld = if layer_present {
            self.blob(layer)
        } else {
            Digest::sha256_of(layer)
        };
        let (cd, clen) = self.config(&[&Digest::sha256_of(b"diff")]);
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{},"layers":[{{"mediaType":"{layer_mt}","digest":"{ld}","size":{}{extra}}}]}}"#,
            Layout::entry(OCI_CONFIG, &cd, clen),
            layer.len()
        );
        let md = self.blob(m.as_bytes());
        self.index(&Layout::entry(OCI_MANIFEST, &md, m.len()));
        ld
    }

    fn reference(&self) -> Reference {
        Reference::parse(&format!("oci:{}", self.dir.path().display())).unwrap()
    }
}

fn resolve_kind(r: &Reference) -> (ErrorKind, String) {
    let e = resolve(r, &SourceOptions::default(), None).unwrap_err();
    (e.kind(), error_chain(&e))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[test]
fn a_good_hand_made_layout_resolves() {
    let l = Layout::new();
    l.image(GZIP, true, "");
    let img = resolve(&l.reference(), &SourceOptions::default(), None).unwrap();
    assert_eq!(img.layers.len(), 1);
}

#[test]
fn missing_blob_fails_on_pull() {
    let l = Layout::new();
    let ld = l.image(GZIP, false, "");
    let store_dir = tempfile::tempdir().unwrap();
    let store = Store::open(store_dir.path()).unwrap();
    let e = pull(&l.reference(), &store, &SourceOptions::default(), None).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidImage);
    assert!(e.to_string().contains(&ld.to_string()), "{e}");
    assert!(store.list_images().unwrap().is_empty());
}

#[test]
fn foreign_layers_are_unsupported() {
    let l = Layout::new();
    l.image(
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        true,
        "",
    );
    assert_eq!(resolve_kind(&l.reference()).0, ErrorKind::Unsupported);
    let l = Layout::new();
    l.image(GZIP, true, r#","urls":["https://example.invalid/layer"]"#);
    let (kind, msg) = resolve_kind(&l.reference());
    assert_eq!(kind, ErrorKind::Unsupported, "{msg}");
}

#[test]
fn negative_size_is_refused() {
    let l = Layout::new();
    let (cd, _) = l.config(&[]);
    let m = format!(
        r#"{{"schemaVersion":2,"config":{{"mediaType":"{OCI_CONFIG}","digest":"{cd}","size":-5}},"layers":[]}}"#
    );
    let md = l.blob(m.as_bytes());
    l.index(&Layout::entry(OCI_MANIFEST, &md, m.len()));
    let (kind, msg) = resolve_kind(&l.reference());
    assert_eq!(kind, ErrorKind::InvalidImage);
    assert!(msg.contains("negative size -5"), "{msg}");
    // negative size in index.json itself
    let l = Layout::new();
    l.index(&format!(
        r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{md}","size":-1}}"#
    ));
    assert_eq!(resolve_kind(&l.reference()).0, ErrorKind::InvalidImage);
}

#[test]
fn oversized_manifest_is_refused_before_reading() {
    let l = Layout::new();
    let big = vec![b' '; (4 << 20) + 1];
    let d = l.blob(&big);
    l.index(&Layout::entry(OCI_MANIFEST, &d, big.len()));
    let (kind, msg) = resolve_kind(&l.reference());
    assert_eq!(kind, ErrorKind::InvalidImage);
    assert!(msg.contains("limit"), "{msg}");
}

#[test]
fn media_type_confusion_is_refused() {
    // index.json says index, the blob is a manifest
    let l = Layout::new();
    l.image(GZIP, true, "");
    let idx = std::fs::read_to_string(l.dir.path().join("index.json")).unwrap();
    std::fs::write(
        l.dir.path().join("index.json"),
        idx.replace(OCI_MANIFEST, OCI_INDEX),
    )
    .unwrap();
    let (kind, msg) = resolve_kind(&l.reference());
    assert_eq!(kind, ErrorKind::InvalidImage);
    assert!(msg.contains("media type mismatch"), "{msg}");
    // a document that is both (CVE-2021-41190)
    let l = Layout::new();
    let (cd, clen) = l.config(&[]);
    let m = format!(
        r#"{{"schemaVersion":2,"manifests":[],"config":{},"layers":[]}}"#,
        Layout::entry(OCI_CONFIG, &cd, clen)
    );
    let md = l.blob(m.as_bytes());
    l.index(&Layout::entry(OCI_MANIFEST, &md, m.len()));
    let (kind, msg) = resolve_kind(&l.reference());
    assert_eq!(kind, ErrorKind::InvalidImage);
    assert!(msg.contains("ambiguous"), "{msg}");
}

#[test]
fn schema1_is_unsupported() {
    let l = Layout::new();
    let m = r#"{"schemaVersion":1,"name":"x","tag":"latest","architecture":"amd64","fsLayers":[],"history":[]}"#;
    let md = l.blob(m.as_bytes());
    l.index(&Layout::entry(
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
        &md,
        m.len(),
    ));
    let (kind, msg) = resolve_kind(&l.reference());
    assert_eq!(kind, ErrorKind::Unsupported);
    assert!(msg.contains("schema 1"), "{msg}");
}

#[test]
fn hostile_digests_never_become_paths() {
    for bad in [
        "sha256:../../../../etc/passwd",
        "sha256:ab/cd",
        "sha256:..",
        "../../etc:passwd",
    ] {
        let l = Layout::new();
        l.index(&format!(
            r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{bad}","size":10}}"#
        ));
        let (kind, msg) = resolve_kind(&l.reference());
        assert_eq!(kind, ErrorKind::InvalidImage, "{bad}: {msg}");
    }
}

#[test]
fn layer_count_must_match_diff_ids() {
    let l = Layout::new();
    let (cd, clen) = l.config(&[]);
    let ld = l.blob(b"x");
    let m = format!(
        r#"{{"schemaVersion":2,"config":{},"layers":[{}]}}"#,
        Layout::entry(OCI_CONFIG, &cd, clen),
        Layout::entry(GZIP, &ld, 1)
    );
    let md = l.blob(m.as_bytes());
    l.index(&Layout::entry(OCI_MANIFEST, &md, m.len()));
    let (kind, msg) = resolve_kind(&l.reference());
    assert_eq!(kind, ErrorKind::InvalidImage);
    assert!(
        msg.contains("1 layers but its config has 0 diff_ids"),
        "{msg}"
    );
}

#[test]
fn tampered_blob_in_layout_is_caught() {
    let l = Layout::new();
    l.image(GZIP, true, "");
    let (cd, _) = l.config(&[&Digest::sha256_of(b"diff")]);
    let p = l.dir.path().join(cd.layout_path());
    let mut c = std::fs::read(&p).unwrap();
    c[2] ^= 0x20;
    std::fs::write(&p, c).unwrap();
    assert_eq!(resolve_kind(&l.reference()).0, ErrorKind::DigestMismatch);
}

#[test]
fn missing_tag_and_several_images() {
    let l = Layout::new();
    l.image(GZIP, true, "");
    let r = Reference::parse(&format!("oci:{}:nope", l.dir.path().display())).unwrap();
    assert_eq!(resolve_kind(&r).0, ErrorKind::NotFound);
    let r = Reference::parse("oci:/nonexistent/dir").unwrap();
    assert_eq!(resolve_kind(&r).0, ErrorKind::NotFound);
    let plain = tempfile::tempdir().unwrap();
    let r = Reference::parse(&format!("oci:{}", plain.path().display())).unwrap();
    let (kind, msg) = resolve_kind(&r);
    assert_eq!(kind, ErrorKind::InvalidImage);
    assert!(msg.contains("not an OCI image layout"), "{msg}");
}

/// Writes a docker-archive with the given manifest.json and members.
fn docker_archive(dir: &Path, manifest: &str, members: &[(&str, &[u8])]) -> std::path::PathBuf {
    let path = dir.join("a.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&path).unwrap());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
    };
    add("manifest.json", manifest.as_bytes());
    for (n, d) in members {
        add(n, d);
    }
    b.finish().unwrap();
    path
}

#[test]
fn docker_archive_paths_stay_inside() {
    let dir = tempfile::tempdir().unwrap();
    let diff = Digest::sha256_of(b"layer");
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{diff}"]}}}}"#
    );
    for (cfg, layer) in [
        ("../../../etc/passwd", "l.tar"),
        ("/etc/passwd", "l.tar"),
        ("c.json", "../outside.tar"),
        ("c.json", "/etc/passwd"),
        ("c.json", "missing.tar"),
        ("missing.json", "l.tar"),
    ] {
        let m = format!(r#"[{{"Config":"{cfg}","RepoTags":null,"Layers":["{layer}"]}}]"#);
        let p = docker_archive(
            dir.path(),
            &m,
            &[("c.json", config.as_bytes()), ("l.tar", b"layer")],
        );
        let r = Reference::parse(&format!("docker-archive:{}", p.display())).unwrap();
        let (kind, msg) = resolve_kind(&r);
        assert_eq!(kind, ErrorKind::InvalidImage, "{cfg} {layer}: {msg}");
    }
    // and the good one works, with the layer digest = its diff_id
    let m = r#"[{"Config":"c.json","RepoTags":["x:1"],"Layers":["./l.tar"]}]"#;
    let p = docker_archive(
        dir.path(),
        m,
        &[("c.json", config.as_bytes()), ("l.tar", b"layer")],
    );
    let r = Reference::parse(&format!("docker-archive:{}", p.display())).unwrap();
    let img = resolve(&r, &SourceOptions::default(), None).unwrap();
    assert_eq!(img.layers[0].digest, diff);
    // a layer whose content does not match its diff_id is caught on pull
    let p = docker_archive(
        dir.path(),
        m,
        &[("c.json", config.as_bytes()), ("l.tar", b"LAYER")],
    );
    let r = Reference::parse(&format!("docker-archive:{}", p.display())).unwrap();
    let sd = tempfile::tempdir().unwrap();
    let store = Store::open(sd.path()).unwrap();
    let e = pull(&r, &store, &SourceOptions::default(), None).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::DigestMismatch);
}
