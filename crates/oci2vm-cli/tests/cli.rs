//! The `oci2vm` binary: output formats, the store commands and exit codes.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns panic on purpose

use assert_cmd::Command;

mod common;

use common::fixtures;
use predicates::prelude::*;

fn fixture_digest(fx: &std::path::Path, name: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fx.join("images.json")).unwrap()).unwrap();
    let img = v["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == name)
        .unwrap();
    img["digest"].as_str().unwrap().to_string()
}

#[test]
fn inspect_json_of_an_oci_layout() {
    let Some(fx) = fixtures() else { return };
    let store = tempfile::tempdir().unwrap();
    let out = common::oci2vm(store.path())
        .args(["inspect", "--json"])
        .arg(format!("oci:{}/oci/config-docker:latest", fx.display()))
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["Digest"], fixture_digest(&fx, "config-docker"));
    assert_eq!(v["Platform"], "linux/amd64");
    assert_eq!(
        v["Entrypoint"],
        serde_json::json!(["/usr/sbin/httpd", "-f", "-v"])
    );
    assert_eq!(v["Cmd"], serde_json::json!(["-p", "8080"]));
    assert_eq!(v["WorkingDir"], "/srv/www");
    assert_eq!(v["User"], "65534:65534");
    assert_eq!(v["StopSignal"], "SIGQUIT");
    assert_eq!(
        v["ExposedPorts"],
        serde_json::json!(["443/tcp", "5353/udp", "80/tcp"])
    );
    let layers = v["Layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    for l in layers {
        assert!(l["Digest"].as_str().unwrap().starts_with("sha256:"));
        assert!(l["Size"].as_u64().unwrap() > 0);
        assert_eq!(
            l["MediaType"],
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        assert!(l["DiffID"].as_str().unwrap().starts_with("sha256:"));
    }
    // inspect does not write to the store
    assert!(!store.path().join("index.json").exists());
}

#[test]
fn inspect_text_of_a_docker_archive() {
    let Some(fx) = fixtures() else { return };
    let store = tempfile::tempdir().unwrap();
    common::oci2vm(store.path())
        .arg("inspect")
        .arg(format!(
            "docker-archive:{}/docker-archive/config-docker.tar",
            fx.display()
        ))
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "Healthcheck:  CMD true (interval 5s, timeout 2s, retries 3)",
        ))
        .stdout(predicate::str::contains(
            "Volumes:      /cache\n              /data",
        ))
        .stdout(predicate::str::contains(
            "application/vnd.docker.image.rootfs.diff.tar",
        ));
}

#[test]
fn pull_then_images_then_prune() {
    let Some(fx) = fixtures() else { return };
    let store = tempfile::tempdir().unwrap();
    let digest = fixture_digest(&fx, "busybox");
    let src = format!("oci:{}/oci/busybox:latest", fx.display());
    let out = common::oci2vm(store.path())
        .args(["pull", &src])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let line = String::from_utf8(out).unwrap();
    let (name, d) = line.trim().split_once(' ').unwrap();
    assert_eq!(d, digest);
    assert!(name.ends_with("/oci/busybox:latest"), "{name}");
    common::oci2vm(store.path())
        .args(["pull", "--platform", "linux/arm64"])
        .arg(format!("oci:{}/oci/busybox-multi", fx.display()))
        .assert()
        .success();
    let out = common::oci2vm(store.path())
        .args(["images", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let images = v.as_array().unwrap();
    assert_eq!(images.len(), 2);
    assert_eq!(images[0]["name"], name);
    assert_eq!(images[0]["manifest_digest"], digest);
    assert_eq!(images[1]["platform"]["architecture"], "arm64");
    common::oci2vm(store.path())
        .arg("images")
        .assert()
        .success()
        .stdout(predicate::str::starts_with("NAME"))
        .stdout(predicate::str::contains(name))
        .stdout(predicate::str::contains("linux/arm64/v8"));
    // the pulled image reads back from the store as an oci: source
    common::oci2vm(store.path())
        .args(["inspect", "--json"])
        .arg(format!("oci:{}:{name}", store.path().display()))
        .assert()
        .success()
        .stdout(predicate::str::contains(&digest));
    std::fs::write(store.path().join("tmp/deadbeefdeadbeef.stale"), b"x").unwrap();
    common::oci2vm(store.path())
        .arg("prune")
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "removed 0 blobs, 1 temp files and 0 cached root filesystems",
        ));
}

#[test]
fn store_from_the_environment() {
    let Some(fx) = fixtures() else { return };
    let store = tempfile::tempdir().unwrap();
    Command::cargo_bin("oci2vm")
        .unwrap()
        .env("OCI2VM_STORE", store.path())
        .arg("pull")
        .arg(format!(
            "oci-archive:{}/oci-archive/busybox.tar",
            fx.display()
        ))
        .assert()
        .success();
    assert!(store.path().join("oci-layout").is_file());
}

#[test]
fn exit_codes_and_one_line_errors() {
    let store = tempfile::tempdir().unwrap();
    for (args, code, needle) in [
        (
            vec!["inspect", "Bad/Name"],
            2,
            "error: invalid reference \"Bad/Name\": repository name must be lowercase",
        ),
        (
            vec!["inspect", "busybox@sha256:../../etc/passwd"],
            2,
            "invalid digest",
        ),
        (vec!["inspect", "ftp:/x/y"], 2, "unknown transport"),
        (
            vec!["inspect", "oci:/nonexistent/layout"],
            3,
            "error: inspecting oci:/nonexistent/layout",
        ),
        (
            vec!["inspect", "--platform", "linux", "busybox"],
            2,
            "invalid platform",
        ),
        (
            vec!["pull", "--creds", "nocolon", "busybox"],
            2,
            "want USER:PASS",
        ),
        (vec!["frobnicate"], 2, "unrecognized subcommand"),
    ] {
        let out = common::oci2vm(store.path())
            .args(&args)
            .assert()
            .code(code)
            .get_output()
            .clone();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?} printed to stdout");
    }
    let out = common::oci2vm(store.path())
        .args(["inspect", "Bad/Name"])
        .assert()
        .code(2)
        .get_output()
        .clone();
    let stderr = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(lines[1].starts_with("hint: "), "{stderr}");
}

#[test]
fn platform_and_image_errors_have_their_codes() {
    let Some(fx) = fixtures() else { return };
    let store = tempfile::tempdir().unwrap();
    common::oci2vm(store.path())
        .args(["inspect", "--platform", "linux/riscv64"])
        .arg(format!("oci:{}/oci/busybox-multi", fx.display()))
        .assert()
        .code(3)
        .stderr(predicate::str::contains(
            "(the image has: linux/amd64, linux/arm64/v8)",
        ));
    common::oci2vm(store.path())
        .arg("inspect")
        .arg(format!("oci:{}/oci/busybox:no-such-tag", fx.display()))
        .assert()
        .code(3)
        .stderr(predicate::str::contains("it has: latest"));
    // a tar that is neither a docker-archive nor an OCI layout (a plain rootfs tar)
    common::oci2vm(store.path())
        .arg("inspect")
        .arg(format!(
            "docker-archive:{}/context/edge-base.tar",
            fx.display()
        ))
        .assert()
        .code(7)
        .stderr(predicate::str::contains("no manifest.json"));
}
