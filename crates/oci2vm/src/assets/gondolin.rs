//! Gondolin's guest-asset layout, so DIR can be given as `GONDOLIN_GUEST_DIR`.
//!
//! Targeted: earendil-works/gondolin 0.7.0 (`host/src/assets.ts`, `AssetManifest` version 1),
//! the same layout vmg-dev/docker2vm's `--mode assets` writes:
//!
//! ```text
//! DIR/manifest.json   { "version": 1, "buildTime": ISO-8601,
//!                       "assets":    { "kernel": FILE, "initramfs": FILE, "rootfs": FILE },
//!                       "checksums": { "kernel": SHA256-HEX, "initramfs": ..., "rootfs": ... },
//!                       ...other keys ignored by Gondolin }
//! DIR/FILE...         the three files named in "assets" (defaults when there is no manifest:
//!                     vmlinuz-virt, initramfs.cpio.lz4, rootfs.ext4)
//! ```
//!
//! Gondolin's `loadGuestAssets(dir)` reads `manifest.assets` and requires the three files to
//! exist; `buildId`, `config` and `ociSource` are optional in practice (only typed). Our
//! `manifest.json` is a superset: these keys at the top level, ours under `"oci2vm"`. Booting
//! the layout is compatible; Gondolin's exec/VFS features additionally need its `sandboxd`
//! guest daemon, which docker2vm injects into the rootfs and oci2vm does not (our init runs the
//! image's entrypoint instead).

use serde_json::{Map, Value, json};

use super::AssetFiles;

/// The Gondolin release whose asset loader this layout follows.
pub const TARGET_VERSION: &str = "0.7.0";
/// Gondolin's `AssetManifest.version`.
pub const MANIFEST_VERSION: u64 = 1;

/// Gondolin's top-level keys; `sha256_of(file)` gives the hex digest of a file in DIR, None
/// when it is absent (then that checksum is left out).
pub fn manifest_fields(
    files: &AssetFiles,
    build_time: &str,
    sha256_of: impl Fn(&str) -> Option<String>,
) -> Map<String, Value> {
    let roles = [
        ("kernel", &files.bzimage),
        ("initramfs", &files.initramfs),
        ("rootfs", &files.rootfs),
    ];
    let mut assets = Map::new();
    let mut checksums = Map::new();
    for (role, name) in roles {
        assets.insert(role.into(), Value::String(name.clone()));
        if let Some(sum) = sha256_of(name) {
            checksums.insert(role.into(), Value::String(sum));
        }
    }
    let mut m = Map::new();
    m.insert("version".into(), json!(MANIFEST_VERSION));
    m.insert("buildTime".into(), json!(build_time));
    m.insert("assets".into(), Value::Object(assets));
    m.insert("checksums".into(), Value::Object(checksums));
    m
}

/// How Gondolin uses DIR.
pub fn command_line() -> String {
    "GONDOLIN_GUEST_DIR=\"$PWD\" gondolin bash".into()
}

/// What Gondolin's loader does with DIR (`loadGuestAssets`), for tests and `oci2vm` checks:
/// the paths of kernel, initramfs and rootfs, or the missing file names.
pub fn resolve(dir: &std::path::Path) -> Result<[std::path::PathBuf; 3], Vec<String>> {
    let manifest: Option<Value> = std::fs::read(dir.join("manifest.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .filter(Value::is_object);
    let name = |role: &str, default: &str| -> String {
        manifest
            .as_ref()
            .and_then(|m| m["assets"][role].as_str())
            .unwrap_or(default)
            .to_string()
    };
    let names = [
        name("kernel", "vmlinuz-virt"),
        name("initramfs", "initramfs.cpio.lz4"),
        name("rootfs", "rootfs.ext4"),
    ];
    let missing: Vec<String> = names
        .iter()
        .filter(|n| !dir.join(n).exists())
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Err(missing);
    }
    Ok(names.map(|n| dir.join(n)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_follow_asset_manifest_v1() {
        let files = AssetFiles::default();
        let m = manifest_fields(&files, "2026-01-01T00:00:00Z", |n| {
            (n != "rootfs.ext4").then(|| format!("sum-of-{n}"))
        });
        assert_eq!(m["version"], 1);
        assert_eq!(m["assets"]["kernel"], "bzImage");
        assert_eq!(m["assets"]["initramfs"], "initramfs");
        assert_eq!(m["assets"]["rootfs"], "rootfs.ext4");
        assert_eq!(m["checksums"]["kernel"], "sum-of-bzImage");
        assert!(m["checksums"].get("rootfs").is_none());
    }

    #[test]
    fn resolve_uses_manifest_names_then_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(
            resolve(dir.path()).expect_err("empty"),
            ["vmlinuz-virt", "initramfs.cpio.lz4", "rootfs.ext4"]
        );
        let m = Value::Object(manifest_fields(&AssetFiles::default(), "t", |_| None));
        std::fs::write(dir.path().join("manifest.json"), m.to_string()).expect("write");
        for f in ["bzImage", "initramfs"] {
            std::fs::write(dir.path().join(f), b"x").expect("write");
        }
        assert_eq!(resolve(dir.path()).expect_err("no rootfs"), ["rootfs.ext4"]);
        std::fs::write(dir.path().join("rootfs.ext4"), b"x").expect("write");
        assert_eq!(
            resolve(dir.path()).expect("complete")[0],
            dir.path().join("bzImage")
        );
    }
}
