//! Shared helpers for integration tests: fixtures and external tools, skipped with a printed
//! reason locally and failing under `CI=true`.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Skips (returns `None`) or, under CI, panics.
pub fn skip<T>(reason: &str) -> Option<T> {
    if ci() {
        panic!("required for this test under CI=true: {reason}");
    }
    eprintln!("SKIP: {reason}");
    None
}

/// The fixture directory (`OCI2VM_FIXTURES`, default /var/tmp/oci2vm-fixtures).
pub fn fixtures() -> Option<PathBuf> {
    let dir = std::env::var_os("OCI2VM_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/oci2vm-fixtures"));
    if dir.join("images.json").is_file() {
        Some(dir)
    } else {
        skip(&format!(
            "fixtures missing at {} (run scripts/fixtures/make-images.sh)",
            dir.display()
        ))
    }
}

/// Whether `tool` runs (`tool --version`).
pub fn tool(tool: &str) -> Option<()> {
    match Command::new(tool).arg("--version").output() {
        Ok(o) if o.status.success() => Some(()),
        _ => skip(&format!("{tool} not installed")),
    }
}

/// Runs skopeo and parses its JSON stdout.
pub fn skopeo_json(args: &[&str]) -> serde_json::Value {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("skopeo printed JSON")
}
