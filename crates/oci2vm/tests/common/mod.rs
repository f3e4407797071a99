//! Test support shared by the `registry_*` integration tests: the fault-injecting server, a
//! real local registry started through `scripts/fixtures/registry.sh`, and skip-or-fail helpers
//! (skip with a printed reason locally, fail when `CI=true`).
#![allow(dead_code, clippy::unwrap_used)] // test support: panics are the failure reports

pub mod ext4;
pub mod fault_server;
pub mod layers;
pub mod local_registry;
pub mod tarload;

#[allow(unused_imports)]
pub use ext4::*;
#[allow(unused_imports)]
pub use layers::*;

use std::path::PathBuf;

/// Whether missing tools or fixtures must fail the test instead of skipping it.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Returns `true` when `ok`; otherwise prints why the test is skipped (or panics under CI).
pub fn require(ok: bool, what: &str) -> bool {
    if !ok {
        if in_ci() {
            panic!("required for this test under CI=true: {what}");
        }
        eprintln!("SKIPPED: {what}");
    }
    ok
}

/// Whether `tool` is an executable in `PATH`.
pub fn have_tool(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|d| {
            let p = d.join(tool);
            std::fs::metadata(&p).is_ok_and(|m| m.is_file())
        })
    })
}

/// The fixture images directory (`OCI2VM_FIXTURES`, default `/var/tmp/oci2vm-fixtures`).
pub fn fixtures_dir() -> PathBuf {
    std::env::var_os("OCI2VM_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/oci2vm-fixtures"))
}

/// The repository root (for `scripts/`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The fixture directory, or `None` (skipped, or a panic under CI) when it is not built.
pub fn fixtures() -> Option<PathBuf> {
    let dir = fixtures_dir();
    let ok = dir.join("images.json").is_file();
    require(
        ok,
        &format!(
            "fixtures at {} (scripts/fixtures/make-images.sh)",
            dir.display()
        ),
    )
    .then_some(dir)
}

/// `Some(())` when `tool` is in `PATH`; otherwise skipped (or a panic under CI).
pub fn need_tool(tool: &str) -> Option<()> {
    require(have_tool(tool), &format!("{tool} installed")).then_some(())
}

/// Runs skopeo and parses its JSON stdout.
pub fn skopeo_json(args: &[&str]) -> serde_json::Value {
    let out = std::process::Command::new("skopeo")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// SHA-256 of a file's bytes, hex (streamed: images and tars can be large).
pub fn sha256_file(path: &std::path::Path) -> String {
    use sha2::Digest as _;
    use std::io::Read;
    let mut f = std::fs::File::open(path).unwrap();
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    hex::encode(h.finalize())
}
