//! Test support shared by the CLI integration tests: skip-or-fail rules, fixtures, the binary.
#![allow(dead_code, clippy::unwrap_used)] // test support: panics are the failure reports

use std::path::{Path, PathBuf};

use assert_cmd::Command;

/// Whether a missing tool or fixture must fail the test instead of skipping it.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// `ok`, or prints why the test is skipped (panics under CI=true).
pub fn require(ok: bool, what: &str) -> bool {
    if !ok {
        assert!(!in_ci(), "required under CI=true: {what}");
        eprintln!("SKIPPED: {what}");
    }
    ok
}

/// The fixture images (`OCI2VM_FIXTURES`, default `/var/tmp/oci2vm-fixtures`), when built.
pub fn fixtures() -> Option<PathBuf> {
    let dir = std::env::var_os("OCI2VM_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/oci2vm-fixtures"));
    require(
        dir.join("images.json").is_file(),
        &format!("fixture images at {}", dir.display()),
    )
    .then_some(dir)
}

/// Whether `name` is on PATH (skips, or fails under CI, when not).
pub fn tool(name: &str) -> bool {
    let found = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .is_ok_and(|o| o.status.success());
    require(found, &format!("{name} installed"))
}

/// `oci2vm --store STORE` with a clean environment for the store and logging.
pub fn oci2vm(store: &Path) -> Command {
    let mut c = Command::cargo_bin("oci2vm").unwrap();
    c.env_remove("OCI2VM_STORE")
        .env_remove("RUST_LOG")
        .arg("--store")
        .arg(store);
    c
}
