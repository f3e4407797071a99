//! The initramfs: our init, `/dev/console`, and the kernel modules in load order.
//!
//! ```text
//! initramfs.cpio.gz (gzip of a cpio newc archive, see fs/cpio.rs)
//!   dev/ dev/console (c 5:1)  proc/ sys/ newroot/
//!   init                              oci2vm-init (static)
//!   lib/oci2vm/modules/NAME.ko        decompressed modules
//!   lib/oci2vm/modules/order          "NAME.ko GROUP" per line, dependencies first;
//!                                     GROUP = core | pci | net | fs (when the init loads it)
//! per-run override (appended, uncompressed; the kernel unpacks concatenated archives):
//!   oci2vm-override                   config document for oci2vm.cfg=file:/oci2vm-override
//! ```
//!
//! `/dev/console` must exist in the archive: the kernel opens it for the init's stdio before
//! devtmpfs is mounted. Built archives are cached by a key over the init binary's bytes and
//! each module's path, size and mtime, so a second run costs one stat per module.

use super::GuestError;
use super::modules::ModuleFile;
use crate::fs::cpio::CpioWriter;
use sha2::{Digest as _, Sha256};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> GuestError + '_ {
    move |e| GuestError::Io {
        path: path.to_path_buf(),
        source: e,
    }
}

/// Writes the initramfs (uncompressed cpio) for `init` and `modules`.
pub fn archive(init: &[u8], modules: &[ModuleFile]) -> Result<Vec<u8>, GuestError> {
    let mut w = CpioWriter::new(Vec::new());
    for d in [
        "dev",
        "proc",
        "sys",
        "newroot",
        "lib",
        "lib/oci2vm",
        "lib/oci2vm/modules",
    ] {
        w.dir(d.as_bytes(), 0o755)?;
    }
    w.char_device(b"dev/console", 0o600, 5, 1)?;
    w.file(b"init", 0o755, init)?;
    let mut order = String::new();
    for m in modules {
        let file = format!("{}.ko", m.name);
        w.file(
            format!("lib/oci2vm/modules/{file}").as_bytes(),
            0o644,
            &m.image,
        )?;
        order.push_str(&format!("{file} {}\n", m.group));
    }
    w.file(b"lib/oci2vm/modules/order", 0o644, order.as_bytes())?;
    Ok(w.finish()?)
}

/// The cache key for an initramfs.
pub fn cache_key(init: &[u8], modules: &[PathBuf]) -> String {
    let mut h = Sha256::new();
    h.update(b"oci2vm-initramfs-v2\0");
    h.update(Sha256::digest(init));
    for p in modules {
        h.update(p.as_os_str().as_encoded_bytes());
        if let Ok(m) = fs::metadata(p) {
            h.update(m.len().to_le_bytes());
            let mtime = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
            h.update(mtime.map_or(0, |d| d.as_nanos()).to_le_bytes());
        }
        h.update(b"\0");
    }
    hex::encode(&h.finalize()[..12])
}

/// Builds (or reuses) `cache_dir/initramfs-KEY.cpio.gz`.
pub fn build_cached(
    init: &[u8],
    module_paths: &[PathBuf],
    resolve: impl FnOnce() -> Result<Vec<ModuleFile>, GuestError>,
    cache_dir: &Path,
) -> Result<PathBuf, GuestError> {
    let out = cache_dir.join(format!(
        "initramfs-{}.cpio.gz",
        cache_key(init, module_paths)
    ));
    if out.is_file() {
        return Ok(out);
    }
    fs::create_dir_all(cache_dir).map_err(io_err(cache_dir))?;
    let cpio = archive(init, &resolve()?)?;
    let tmp = cache_dir.join(format!(".initramfs.{}.tmp", std::process::id()));
    let f = fs::File::create(&tmp).map_err(io_err(&tmp))?;
    // Level 1: the kernel inflates faster than we could shave bytes off.
    let mut gz =
        flate2::write::GzEncoder::new(std::io::BufWriter::new(f), flate2::Compression::fast());
    gz.write_all(&cpio).map_err(io_err(&tmp))?;
    let mut bw = gz.finish().map_err(io_err(&tmp))?;
    bw.flush().map_err(io_err(&tmp))?;
    drop(bw);
    fs::rename(&tmp, &out).map_err(io_err(&out))?;
    Ok(out)
}

/// An uncompressed cpio segment holding the per-run config override at
/// [`oci2vm_guest::OVERRIDE_PATH`], to append to the initramfs.
pub fn override_segment(doc: &str) -> Result<Vec<u8>, GuestError> {
    let mut w = CpioWriter::new(Vec::new());
    let name = oci2vm_guest::OVERRIDE_PATH.trim_start_matches('/');
    w.file(name.as_bytes(), 0o644, doc.as_bytes())?;
    Ok(w.finish()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_lists_with_cpio() {
        let m = ModuleFile {
            name: "virtio_blk".into(),
            path: "/x".into(),
            image: b"\x7fELF".to_vec(),
            group: "core",
        };
        let a = archive(b"#!init", std::slice::from_ref(&m)).expect("archive");
        let Ok(mut child) = std::process::Command::new("cpio")
            .args(["-t", "--quiet"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
        else {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "cpio missing under CI"
            );
            eprintln!("skipped: cpio not installed");
            return;
        };
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(&a)
            .expect("write");
        let out = child.wait_with_output().expect("cpio");
        let list = String::from_utf8_lossy(&out.stdout);
        for want in [
            "dev/console",
            "init",
            "lib/oci2vm/modules/virtio_blk.ko",
            "lib/oci2vm/modules/order",
        ] {
            assert!(list.lines().any(|l| l == want), "{want} in {list}");
        }
    }

    #[test]
    fn cache_key_changes_with_init() {
        assert_ne!(cache_key(b"a", &[]), cache_key(b"b", &[]));
        assert_eq!(cache_key(b"a", &[]), cache_key(b"a", &[]));
    }
}
