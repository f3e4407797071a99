//! The fixture images read from every local form agree with each other and with skopeo.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns panic on purpose

mod common;

use std::path::Path;

use oci2vm::image::ResolvedImage;
use oci2vm::source::{SourceOptions, resolve};
use oci2vm::{Digest, ErrorKind, Platform, Reference};
use serde_json::Value;

fn opts(platform: Option<&str>) -> SourceOptions {
    SourceOptions {
        platform: platform.map(|p| p.parse().unwrap()),
        progress: false,
    }
}

fn resolve_str(r: &str, platform: Option<&str>) -> oci2vm::error::Result<ResolvedImage> {
    resolve(&Reference::parse(r).unwrap(), &opts(platform), None)
}

fn digests(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect()
}

fn diff_ids(img: &ResolvedImage) -> Vec<String> {
    img.layers.iter().map(|l| l.diff_id.to_string()).collect()
}

fn check_image(fx: &Path, name: &str, platform: Option<&str>) {
    let oci = format!("oci:{}/oci/{name}:latest", fx.display());
    let oci_archive = format!("oci-archive:{}/oci-archive/{name}.tar", fx.display());
    let docker_archive = format!("docker-archive:{}/docker-archive/{name}.tar", fx.display());

    // OCI layout vs skopeo --raw / --config
    let a = resolve_str(&oci, platform).unwrap();
    let raw = common::skopeo_json(&["inspect", "--raw", &oci]);
    assert_eq!(
        serde_json::from_slice::<Value>(&a.manifest_bytes).unwrap(),
        raw,
        "{name}"
    );
    assert_eq!(
        a.manifest.config.digest.to_string(),
        raw["config"]["digest"].as_str().unwrap()
    );
    let ours: Vec<String> = a.layers.iter().map(|l| l.digest.to_string()).collect();
    assert_eq!(ours, digests(&raw, "layers"), "{name}");
    let sizes: Vec<u64> = a.layers.iter().map(|l| l.size).collect();
    let raw_sizes: Vec<u64> = raw["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["size"].as_u64().unwrap())
        .collect();
    assert_eq!(sizes, raw_sizes);
    let config = common::skopeo_json(&["inspect", "--config", &oci]);
    let skopeo_diff: Vec<String> = config["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect();
    assert_eq!(diff_ids(&a), skopeo_diff, "{name}");
    assert_eq!(Digest::sha256_of(&a.config_bytes), a.manifest.config.digest);
    let cfg = &config["config"];
    let strings = |v: &Value| -> Option<Vec<String>> {
        v.as_array()
            .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
    };
    assert_eq!(
        a.config.runtime.entrypoint,
        strings(&cfg["Entrypoint"]),
        "{name}"
    );
    assert_eq!(a.config.runtime.cmd, strings(&cfg["Cmd"]), "{name}");
    assert_eq!(
        a.config.runtime.env,
        strings(&cfg["Env"]).unwrap_or_default(),
        "{name}"
    );
    assert_eq!(
        a.platform.architecture,
        config["architecture"].as_str().unwrap()
    );

    // OCI archive: byte-identical manifest
    if Path::new(&oci_archive["oci-archive:".len()..]).exists() {
        let b = resolve_str(&oci_archive, platform).unwrap();
        assert_eq!(b.manifest_digest, a.manifest_digest, "{name}");
        assert_eq!(b.config_bytes, a.config_bytes);
        assert_eq!(b.layers, a.layers);
    }

    // docker-archive: uncompressed layers, so compare config digest (vs skopeo) and diff_ids
    if Path::new(&docker_archive["docker-archive:".len()..]).exists() {
        let c = resolve_str(&docker_archive, platform).unwrap();
        let raw = common::skopeo_json(&["inspect", "--raw", &docker_archive]);
        assert_eq!(
            c.manifest.config.digest.to_string(),
            raw["config"]["digest"].as_str().unwrap()
        );
        let ours: Vec<String> = c.layers.iter().map(|l| l.digest.to_string()).collect();
        assert_eq!(ours, digests(&raw, "layers"), "{name}");
        assert_eq!(diff_ids(&c), diff_ids(&a), "{name}");
        assert_eq!(
            ours,
            diff_ids(&a),
            "docker-archive layers are the uncompressed tars"
        );
        let (rc, ra) = (&c.config.runtime, &a.config.runtime);
        assert_eq!(
            (&rc.entrypoint, &rc.cmd, &rc.env),
            (&ra.entrypoint, &ra.cmd, &ra.env)
        );
        assert_eq!((&rc.working_dir, &rc.user), (&ra.working_dir, &ra.user));
        assert_eq!(c.platform, a.platform);
    }
}

#[test]
fn local_forms_agree_with_skopeo() {
    let Some(fx) = common::fixtures() else { return };
    let Some(()) = common::need_tool("skopeo") else {
        return;
    };
    for name in [
        "busybox",
        "config-docker",
        "edge",
        "edge-umoci",
        "multistage",
    ] {
        check_image(&fx, name, None);
    }
    check_image(&fx, "busybox-arm64", Some("linux/arm64"));
    for name in ["busybox-zstd", "busybox-uncomp", "debian-umoci"] {
        let a = resolve_str(&format!("oci:{}/oci/{name}", fx.display()), None).unwrap();
        assert_eq!(a.layers.len(), a.config.diff_ids.len());
    }
}

#[test]
fn docker_config_fields_and_healthcheck() {
    let Some(fx) = common::fixtures() else { return };
    let img = resolve_str(
        &format!(
            "docker-archive:{}/docker-archive/config-docker.tar",
            fx.display()
        ),
        None,
    )
    .unwrap();
    let r = &img.config.runtime;
    assert_eq!(
        r.entrypoint.as_deref().unwrap(),
        ["/usr/sbin/httpd", "-f", "-v"]
    );
    assert_eq!(r.cmd.as_deref().unwrap(), ["-p", "8080"]);
    assert_eq!(r.working_dir.as_deref(), Some("/srv/www"));
    assert_eq!(r.user.as_deref(), Some("65534:65534"));
    assert_eq!(r.exposed_ports, ["443/tcp", "5353/udp", "80/tcp"]);
    assert_eq!(r.volumes, ["/cache", "/data"]);
    assert_eq!(r.stop_signal.as_deref(), Some("SIGQUIT"));
    assert_eq!(
        r.labels.get("maintainer").map(String::as_str),
        Some("fixtures")
    );
    assert!(r.env.contains(&"EMPTY=".to_string()));
    let hc = r
        .healthcheck
        .as_ref()
        .expect("docker config keeps Healthcheck");
    assert_eq!(hc.test, ["CMD", "true"]);
    assert_eq!(
        (hc.interval, hc.timeout, hc.retries),
        (Some(5_000_000_000), Some(2_000_000_000), Some(3))
    );
    // with the RepoTags name
    let named = resolve_str(
        &format!(
            "docker-archive:{}/docker-archive/config-docker.tar:localhost/config-docker:latest",
            fx.display()
        ),
        None,
    )
    .unwrap();
    assert_eq!(named.manifest_digest, img.manifest_digest);
    let e = resolve_str(
        &format!(
            "docker-archive:{}/docker-archive/config-docker.tar:localhost/other:latest",
            fx.display()
        ),
        None,
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(
        e.to_string().contains("localhost/config-docker:latest"),
        "{e}"
    );
}

#[test]
fn multi_platform_index() {
    let Some(fx) = common::fixtures() else { return };
    let Some(()) = common::need_tool("skopeo") else {
        return;
    };
    for form in [
        format!("oci:{}/oci/busybox-multi", fx.display()),
        format!("oci-archive:{}/oci-archive/busybox-multi.tar", fx.display()),
    ] {
        let index = common::skopeo_json(&["inspect", "--raw", &form]);
        let entry = |arch: &str| {
            index["manifests"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["platform"]["architecture"] == arch)
                .map(|m| m["digest"].as_str().unwrap().to_string())
                .unwrap()
        };
        let host = resolve_str(&form, None).unwrap();
        assert_eq!(host.platform, Platform::host());
        assert_eq!(
            host.manifest_digest.to_string(),
            entry(&Platform::host().architecture)
        );
        assert!(host.index_digest.is_some());
        let arm = resolve_str(&form, Some("linux/arm64")).unwrap();
        assert_eq!(arm.manifest_digest.to_string(), entry("arm64"));
        assert_eq!(arm.platform.to_string(), "linux/arm64/v8");
        let amd = resolve_str(&form, Some("linux/amd64")).unwrap();
        assert_eq!(amd.manifest_digest.to_string(), entry("amd64"));
        let e = resolve_str(&form, Some("linux/riscv64")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        let msg = e.to_string();
        assert!(
            msg.contains("linux/amd64") && msg.contains("linux/arm64/v8"),
            "{msg}"
        );
    }
}

#[test]
fn explicit_platform_mismatch_on_single_manifest() {
    let Some(fx) = common::fixtures() else { return };
    let e = resolve_str(
        &format!("oci:{}/oci/busybox-arm64", fx.display()),
        Some("linux/amd64"),
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.to_string().contains("linux/arm64"), "{e}");
}

/// A Docker 25+ `docker save`: an OCI layout (index.json names the image with
/// `io.containerd.image.name`) plus the legacy manifest.json pointing into blobs/.
#[test]
fn docker25_archive_with_an_oci_layout() {
    let Some(fx) = common::fixtures() else { return };
    let layout = fx.join("oci/busybox");
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let mut entry = index["manifests"][0].clone();
    entry["annotations"] = serde_json::json!({
        "io.containerd.image.name": "docker.io/library/busybox:1.36",
        "org.opencontainers.image.ref.name": "1.36",
    });
    let new_index = serde_json::json!({"schemaVersion": 2, "manifests": [entry]});
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(
            layout.join(
                Digest::parse(entry["digest"].as_str().unwrap())
                    .unwrap()
                    .layout_path(),
            ),
        )
        .unwrap(),
    )
    .unwrap();
    let blob = |d: &Value| format!("blobs/sha256/{}", &d.as_str().unwrap()["sha256:".len()..]);
    let legacy = serde_json::json!([{
        "Config": blob(&manifest["config"]["digest"]),
        "RepoTags": ["busybox:1.36"],
        "Layers": manifest["layers"].as_array().unwrap().iter().map(|l| blob(&l["digest"])).collect::<Vec<_>>(),
    }]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("docker25.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&path).unwrap());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
    };
    add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    add("index.json", &serde_json::to_vec(&new_index).unwrap());
    add("manifest.json", &serde_json::to_vec(&legacy).unwrap());
    for e in std::fs::read_dir(layout.join("blobs/sha256")).unwrap() {
        let e = e.unwrap();
        add(
            &format!("blobs/sha256/{}", e.file_name().to_string_lossy()),
            &std::fs::read(e.path()).unwrap(),
        );
    }
    b.finish().unwrap();
    drop(b);

    let oci = resolve_str(&format!("oci:{}", layout.display()), None).unwrap();
    for r in [
        format!("docker-archive:{}", path.display()),
        format!("docker-archive:{}:busybox:1.36", path.display()),
        format!(
            "docker-archive:{}:docker.io/library/busybox:1.36",
            path.display()
        ),
    ] {
        let img = resolve_str(&r, None).unwrap();
        assert_eq!(
            img.manifest_digest, oci.manifest_digest,
            "{r}: the original manifest is kept"
        );
        assert_eq!(img.layers, oci.layers);
    }
    let e = resolve_str(
        &format!("docker-archive:{}:busybox:latest", path.display()),
        None,
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(
        e.to_string().contains("docker.io/library/busybox:1.36"),
        "{e}"
    );
}
