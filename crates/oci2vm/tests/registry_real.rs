//! The registry client against a real registry (Debian's `docker-registry`, distribution 2.8)
//! on 127.0.0.1, with and without htpasswd auth, filled with the fixture images; skopeo is the
//! oracle for manifest bytes. Skips with a reason when the registry, skopeo or the fixtures are
//! missing; fails instead under `CI=true`.
//!
//! The timing comparison with `skopeo copy` is `#[ignore]`d (not a timed assertion); run it with
//! `TMPDIR=/dev/shm cargo test -p oci2vm --test registry_real -- --ignored --nocapture`.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns panic on purpose

mod common;

use std::time::{Duration, Instant};

use common::local_registry::LocalRegistry;
use oci2vm::Digest;
use oci2vm::error::{Classify, ErrorKind};
use oci2vm::registry::{FetchedManifest, RegistryClient, RegistryOptions};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_V2S2: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// (digest, size) of the config and every layer of an image manifest.
fn blobs_of(manifest: &[u8]) -> Vec<(Digest, u64)> {
    let v: serde_json::Value = serde_json::from_slice(manifest).unwrap();
    let desc = |d: &serde_json::Value| {
        (
            Digest::parse(d["digest"].as_str().unwrap()).unwrap(),
            d["size"].as_u64().unwrap(),
        )
    };
    let mut out = vec![desc(&v["config"])];
    out.extend(v["layers"].as_array().unwrap().iter().map(desc));
    out
}

/// Fetches `fixtures/<name>` by tag, checks it against skopeo, and again by digest.
fn check_manifest(
    c: &RegistryClient,
    reg: &LocalRegistry,
    name: &str,
    tag: &str,
    media_type: &str,
) -> FetchedManifest {
    let repo = format!("fixtures/{name}");
    let m = c.fetch_manifest(&reg.addr, &repo, tag).unwrap();
    let oracle = reg.skopeo_raw(&format!("{name}:{tag}"));
    assert!(
        m.bytes == oracle,
        "{name}:{tag}: manifest bytes differ from skopeo's"
    );
    assert_eq!(m.media_type, media_type, "{name}:{tag}");
    assert_eq!(m.digest, Digest::sha256_of(&oracle));
    let again = c
        .fetch_manifest(&reg.addr, &repo, &m.digest.to_string())
        .unwrap();
    assert_eq!(again, m);
    m
}

/// Fetches every blob of an image manifest and checks digest and size of what reached the sink.
fn check_blobs(c: &RegistryClient, reg: &LocalRegistry, name: &str, manifest: &[u8]) {
    for (digest, size) in blobs_of(manifest) {
        let mut sink = Vec::new();
        c.fetch_blob(
            &reg.addr,
            &format!("fixtures/{name}"),
            &digest,
            size,
            &mut sink,
        )
        .unwrap();
        assert_eq!(sink.len() as u64, size, "{name} {digest}");
        assert_eq!(Digest::sha256_of(&sink), digest, "{name}");
    }
}

#[test]
fn real_registry_anonymous_manifests_and_blobs() {
    let Some(reg) = LocalRegistry::start(false) else {
        return;
    };
    let c = RegistryClient::new(RegistryOptions::default()).unwrap();

    let m = check_manifest(&c, &reg, "busybox", "latest", OCI_MANIFEST);
    check_blobs(&c, &reg, "busybox", &m.bytes);

    let index = check_manifest(&c, &reg, "busybox-multi", "latest", OCI_INDEX);
    let v: serde_json::Value = serde_json::from_slice(&index.bytes).unwrap();
    let children = v["manifests"].as_array().unwrap();
    assert!(
        children.len() >= 2,
        "index lists {} manifests",
        children.len()
    );
    for child in children {
        let d = child["digest"].as_str().unwrap();
        let cm = c
            .fetch_manifest(&reg.addr, "fixtures/busybox-multi", d)
            .unwrap();
        assert_eq!(cm.digest.to_string(), d);
        assert_eq!(cm.bytes, reg.skopeo_raw(&format!("busybox-multi@{d}")));
        check_blobs(&c, &reg, "busybox-multi", &cm.bytes);
    }

    let v2 = check_manifest(&c, &reg, "edge", "v2s2", DOCKER_V2S2);
    check_blobs(&c, &reg, "edge", &v2.bytes);

    let e = c
        .fetch_manifest(&reg.addr, "fixtures/busybox", "no-such-tag")
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    let (d, _) = blobs_of(&m.bytes)[1].clone();
    let mut sink = Vec::new();
    let e = c
        .fetch_blob(&reg.addr, "fixtures/busybox", &d, 1, &mut sink)
        .unwrap_err();
    assert!(
        sink.is_empty(),
        "a blob served longer than declared reached the sink"
    );
    assert_eq!(e.kind(), ErrorKind::DigestMismatch, "{e}");
}

#[test]
fn real_registry_with_htpasswd_auth() {
    let Some(reg) = LocalRegistry::start(true) else {
        return;
    };
    let (user, pass) = reg.creds.clone().unwrap();

    let anon = RegistryClient::new(RegistryOptions::default()).unwrap();
    let e = anon
        .fetch_manifest(&reg.addr, "fixtures/busybox", "latest")
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");

    let wrong = RegistryOptions {
        creds: Some((user.clone(), format!("{pass}-wrong"))),
        ..Default::default()
    };
    let e =
        RegistryClient::new(wrong)
            .unwrap()
            .fetch_manifest(&reg.addr, "fixtures/busybox", "latest");
    let e = e.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("with credentials") && msg.contains(&reg.addr),
        "unclear: {msg}"
    );
    eprintln!("wrong password -> {msg}");

    let creds = RegistryOptions {
        creds: Some((user, pass)),
        ..Default::default()
    };
    let c = RegistryClient::new(creds).unwrap();
    let m = check_manifest(&c, &reg, "busybox", "latest", OCI_MANIFEST);
    check_blobs(&c, &reg, "busybox", &m.bytes);

    let from_file = RegistryOptions {
        authfile: reg.authfile.clone(),
        ..Default::default()
    };
    let c = RegistryClient::new(from_file).unwrap();
    let v2 = check_manifest(&c, &reg, "edge", "v2s2", DOCKER_V2S2);
    check_blobs(&c, &reg, "edge", &v2.bytes);
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[test]
#[ignore = "timing comparison; run with --ignored --nocapture"]
fn bench_fetch_debian_minbase_vs_skopeo_copy() {
    let Some(reg) = LocalRegistry::start(false) else {
        return;
    };
    let c = RegistryClient::new(RegistryOptions::default()).unwrap();
    let repo = "fixtures/debian-minbase";
    let m = c.fetch_manifest(&reg.addr, repo, "latest").unwrap();
    let blobs = blobs_of(&m.bytes);
    let total: u64 = blobs.iter().map(|b| b.1).sum();
    let shm = std::path::Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let work = base.join(format!("oci2vm-regbench-{}", std::process::id()));
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work).unwrap();
        let t = Instant::now();
        for (d, size) in &blobs {
            let mut f = std::io::BufWriter::new(std::fs::File::create(work.join(d.hex())).unwrap());
            c.fetch_blob(&reg.addr, repo, d, *size, &mut f).unwrap();
        }
        ours.push(t.elapsed());

        let dest = work.join("skopeo");
        let t = Instant::now();
        let st = std::process::Command::new("skopeo")
            .args(["copy", "-q", "--src-tls-verify=false"])
            .arg(format!("docker://{}/{repo}:latest", reg.addr))
            .arg(format!("oci:{}:latest", dest.display()))
            .status()
            .unwrap();
        theirs.push(t.elapsed());
        assert!(st.success());
    }
    let _ = std::fs::remove_dir_all(&work);
    let mb = total as f64 / 1e6;
    let (o, s) = (median(ours), median(theirs));
    eprintln!(
        "debian-minbase: {} blobs, {mb:.1} MB: oci2vm fetch_blob {:.3} s ({:.0} MB/s), skopeo copy {:.3} s ({:.0} MB/s) [median of 3, into {}]",
        blobs.len(),
        o.as_secs_f64(),
        mb / o.as_secs_f64(),
        s.as_secs_f64(),
        mb / s.as_secs_f64(),
        base.display()
    );
}
