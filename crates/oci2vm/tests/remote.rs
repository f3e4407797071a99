//! docker:// sources end to end: the registry client behind the `RemoteFetcher` seam, a real
//! registry with authentication, and the store read back by skopeo.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns panic on purpose

mod common;

use oci2vm::registry::{RegistryClient, RegistryOptions};
use oci2vm::source::{SourceOptions, pull, resolve};
use oci2vm::store::Store;
use oci2vm::{Digest, ErrorKind, Reference};

fn opts(p: &str) -> SourceOptions {
    SourceOptions {
        platform: Some(p.parse().unwrap()),
        progress: false,
    }
}

#[test]
fn pull_from_an_authenticated_registry_matches_local_forms() {
    let Some(reg) = common::local_registry::LocalRegistry::start(true) else {
        return;
    };
    let fx = common::fixtures_dir();
    let client = RegistryClient::new(RegistryOptions {
        creds: reg.creds.clone(),
        ..RegistryOptions::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();

    // an index: the platform manifest chosen by digest, same as the entry skopeo sees
    let index: serde_json::Value =
        serde_json::from_slice(&reg.skopeo_raw("busybox-multi:latest")).unwrap();
    let r = Reference::parse(&format!("docker://{}/fixtures/busybox-multi", reg.addr)).unwrap();
    for arch in ["amd64", "arm64"] {
        let img = resolve(&r, &opts(&format!("linux/{arch}")), Some(&client)).unwrap();
        let entry = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["platform"]["architecture"] == arch)
            .unwrap();
        assert_eq!(
            img.manifest_digest.to_string(),
            entry["digest"].as_str().unwrap()
        );
        assert_eq!(
            img.index_digest,
            Some(Digest::sha256_of(&reg.skopeo_raw("busybox-multi:latest")))
        );
    }
    let e = resolve(&r, &opts("linux/ppc64le"), Some(&client)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);

    // a pull equals the OCI layout fixture blob for blob, and skopeo reads it from the store
    let r = Reference::parse(&format!("{}/fixtures/edge:latest", reg.addr)).unwrap();
    let pulled = pull(&r, &store, &opts("linux/amd64"), Some(&client)).unwrap();
    let local = resolve(
        &Reference::parse(&format!("oci:{}/oci/edge", fx.display())).unwrap(),
        &opts("linux/amd64"),
        None,
    )
    .unwrap();
    assert_eq!(pulled.image.layers, local.layers);
    assert_eq!(pulled.image.config_bytes, local.config_bytes);
    for l in &pulled.image.layers {
        assert!(store.verify_blob(&l.digest, l.size).unwrap());
    }
    let Some(()) = common::need_tool("skopeo") else {
        return;
    };
    let raw = std::process::Command::new("skopeo")
        .args([
            "inspect",
            "--raw",
            &format!("oci:{}:{}", store.root().display(), pulled.name),
        ])
        .output()
        .unwrap();
    assert!(
        raw.status.success(),
        "{}",
        String::from_utf8_lossy(&raw.stderr)
    );
    assert_eq!(Digest::sha256_of(&raw.stdout), pulled.image.manifest_digest);

    // wrong credentials: unauthorized, nothing recorded
    let bad = RegistryClient::new(RegistryOptions {
        creds: Some(("fixture".into(), "wrong".into())),
        max_retries: 0,
        ..RegistryOptions::default()
    })
    .unwrap();
    let r = Reference::parse(&format!("{}/fixtures/busybox", reg.addr)).unwrap();
    let e = pull(&r, &store, &opts("linux/amd64"), Some(&bad)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized);
    assert_eq!(store.list_images().unwrap().len(), 1);
}
