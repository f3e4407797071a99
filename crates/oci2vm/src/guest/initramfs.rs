//! The initramfs: our init, `/dev/console`, and the kernel modules in load order.
//!
//! ```text
//! initramfs.cpio (a cpio newc archive, see fs/cpio.rs; initramfs.cpio.gz for `assets`)
//!   dev/ dev/console (c 5:1)  proc/ sys/ newroot/
//!   init                              oci2vm-init (static)
//!   lib/oci2vm/modules/NAME.ko        decompressed modules of the planned groups
//!   lib/oci2vm/modules/order          "NAME.ko GROUP" per line, dependencies first;
//!                                     GROUP = core | pci | rng | net | fs (when the init
//!                                     loads it); a module several groups need is listed
//!                                     under each (the init skips loaded ones)
//! per-run override (appended, uncompressed; the kernel unpacks concatenated archives):
//!   oci2vm-override                   config document for oci2vm.cfg=file:/oci2vm-override
//! ```
//!
//! `/dev/console` must exist in the archive: the kernel opens it for the init's stdio before
//! devtmpfs is mounted. Built archives are cached by a key over the init binary's bytes, each
//! module's path, size and mtime, and the [`InitramfsPlan`], so a second run costs one stat
//! per module.
//!
//! `run` boots an uncompressed archive with only the groups the run can load: under TCG the
//! kernel unpacks the 1.6 MB uncompressed core archive in ~13 ms, the 1.2 MB gzip of all
//! groups took ~48 ms (lz4 ~34 ms, zstd ~53 ms, xz ~171 ms; bench/README.md). Files handed to
//! other VMMs (`assets`) keep every group, gzip-compressed.

use super::GuestError;
use super::modules::ModuleFile;
use crate::fs::cpio::CpioWriter;
use sha2::{Digest as _, Sha256};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// How the archive is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Plain cpio: nothing for the kernel to decompress (the fastest boot).
    None,
    /// gzip level 1: half the size, for files that are copied around.
    Gzip,
}

/// What an initramfs holds: the module groups (see [`super::modules::GROUPS`]) and the
/// compression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitramfsPlan {
    /// Module groups to ship; `core` is always shipped.
    pub groups: Vec<&'static str>,
    /// Compression of the archive.
    pub compression: Compression,
}

impl InitramfsPlan {
    /// Every group, gzip: a standalone initramfs for any VMM and any config (`assets`).
    pub fn all() -> Self {
        InitramfsPlan {
            groups: super::modules::GROUPS.to_vec(),
            compression: Compression::Gzip,
        }
    }

    /// One run's archive, uncompressed: `core`, plus `pci` for a PCI machine, `rng` with an
    /// entropy device, `net` with a network device, `fs` with shared directories.
    pub fn for_run(pci: bool, rng: bool, net: bool, fs: bool) -> Self {
        let want = [true, pci, rng, net, fs];
        InitramfsPlan {
            groups: super::modules::GROUPS
                .iter()
                .zip(want)
                .filter_map(|(g, w)| w.then_some(*g))
                .collect(),
            compression: Compression::None,
        }
    }

    fn ships(&self, m: &ModuleFile) -> bool {
        m.groups
            .iter()
            .any(|g| *g == "core" || self.groups.contains(g))
    }
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> GuestError + '_ {
    move |e| GuestError::Io {
        path: path.to_path_buf(),
        source: e,
    }
}

/// Writes the initramfs (uncompressed cpio) for `init` and the `modules` the plan ships.
pub fn archive(
    init: &[u8],
    modules: &[ModuleFile],
    plan: &InitramfsPlan,
) -> Result<Vec<u8>, GuestError> {
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
    for m in modules.iter().filter(|m| plan.ships(m)) {
        w.file(
            format!("lib/oci2vm/modules/{}.ko", m.name).as_bytes(),
            0o644,
            &m.image,
        )?;
    }
    let mut order = String::new();
    for g in super::modules::GROUPS {
        if g != "core" && !plan.groups.contains(&g) {
            continue;
        }
        for m in modules.iter().filter(|m| m.groups.contains(&g)) {
            order.push_str(&format!("{}.ko {g}\n", m.name));
        }
    }
    w.file(b"lib/oci2vm/modules/order", 0o644, order.as_bytes())?;
    Ok(w.finish()?)
}

/// The cache key for an initramfs.
pub fn cache_key(init: &[u8], modules: &[PathBuf], plan: &InitramfsPlan) -> String {
    let mut h = Sha256::new();
    h.update(b"oci2vm-initramfs-v3\0");
    h.update(format!("{:?} {:?}\0", plan.groups, plan.compression));
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

/// Builds (or reuses) `cache_dir/initramfs-KEY.cpio` (`.cpio.gz` when compressed).
pub fn build_cached(
    init: &[u8],
    module_paths: &[PathBuf],
    resolve: impl FnOnce() -> Result<Vec<ModuleFile>, GuestError>,
    cache_dir: &Path,
    plan: &InitramfsPlan,
) -> Result<PathBuf, GuestError> {
    let ext = match plan.compression {
        Compression::None => "cpio",
        Compression::Gzip => "cpio.gz",
    };
    let out = cache_dir.join(format!(
        "initramfs-{}.{ext}",
        cache_key(init, module_paths, plan)
    ));
    if out.is_file() {
        return Ok(out);
    }
    fs::create_dir_all(cache_dir).map_err(io_err(cache_dir))?;
    let cpio = archive(init, &resolve()?, plan)?;
    let tmp = cache_dir.join(format!(".initramfs.{}.tmp", std::process::id()));
    let f = std::io::BufWriter::new(fs::File::create(&tmp).map_err(io_err(&tmp))?);
    let mut f = match plan.compression {
        Compression::None => {
            let mut f = f;
            f.write_all(&cpio).map_err(io_err(&tmp))?;
            f
        }
        Compression::Gzip => {
            // Level 1: the kernel inflates faster than we could shave bytes off.
            let mut gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
            gz.write_all(&cpio).map_err(io_err(&tmp))?;
            gz.finish().map_err(io_err(&tmp))?
        }
    };
    f.flush().map_err(io_err(&tmp))?;
    drop(f);
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

    fn module(name: &str, groups: &[&'static str]) -> ModuleFile {
        ModuleFile {
            name: name.into(),
            path: "/x".into(),
            image: b"\x7fELF".to_vec(),
            groups: groups.to_vec(),
            depends: Vec::new(),
        }
    }

    /// `cpio ARGS` over `archive`'s bytes (None, or a failure under CI, without cpio).
    fn cpio(archive: &[u8], args: &[&str]) -> Option<String> {
        let Ok(mut child) = std::process::Command::new("cpio")
            .args(args)
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
            return None;
        };
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(archive)
            .expect("write");
        let out = child.wait_with_output().expect("cpio");
        Some(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    #[test]
    fn archive_ships_the_planned_groups_only() {
        let modules = [
            module("virtio_blk", &["core"]),
            module("shared", &["net", "fs"]),
            module("virtio_net", &["net"]),
            module("fuse", &["fs"]),
        ];
        let plan = InitramfsPlan::for_run(false, false, true, false);
        assert_eq!(plan.groups, vec!["core", "net"]);
        let a = archive(b"#!init", &modules, &plan).expect("archive");
        let Some(list) = cpio(&a, &["-t", "--quiet"]) else {
            return;
        };
        for want in [
            "dev/console",
            "init",
            "lib/oci2vm/modules/virtio_blk.ko",
            "lib/oci2vm/modules/shared.ko",
            "lib/oci2vm/modules/virtio_net.ko",
            "lib/oci2vm/modules/order",
        ] {
            assert!(list.lines().any(|l| l == want), "{want} in {list}");
        }
        assert!(!list.contains("fuse"), "fs group not planned: {list}");
        let order = cpio(
            &a,
            &["-i", "--quiet", "--to-stdout", "lib/oci2vm/modules/order"],
        );
        assert_eq!(
            order.as_deref(),
            Some("virtio_blk.ko core\nshared.ko net\nvirtio_net.ko net\n")
        );
        // every group: a module two groups need is listed under both
        let all = archive(b"#!init", &modules, &InitramfsPlan::all()).expect("archive");
        let order = cpio(
            &all,
            &["-i", "--quiet", "--to-stdout", "lib/oci2vm/modules/order"],
        );
        assert_eq!(
            order.as_deref(),
            Some(
                "virtio_blk.ko core\nshared.ko net\nvirtio_net.ko net\nshared.ko fs\nfuse.ko fs\n"
            )
        );
    }

    #[test]
    fn cache_key_changes_with_init_and_plan() {
        let run = InitramfsPlan::for_run(false, false, false, false);
        assert_ne!(cache_key(b"a", &[], &run), cache_key(b"b", &[], &run));
        assert_eq!(cache_key(b"a", &[], &run), cache_key(b"a", &[], &run));
        let net = InitramfsPlan::for_run(false, false, true, false);
        assert_ne!(cache_key(b"a", &[], &run), cache_key(b"a", &[], &net));
        assert_ne!(
            cache_key(b"a", &[], &run),
            cache_key(b"a", &[], &InitramfsPlan::all())
        );
    }

    #[test]
    fn cached_archive_is_plain_or_gzip_as_planned() {
        let dir = tempfile::tempdir().expect("tempdir");
        let modules = || Ok(vec![module("virtio_blk", &["core"])]);
        let run = InitramfsPlan::for_run(false, false, false, false);
        let plain = build_cached(b"#!init", &[], modules, dir.path(), &run).expect("plain");
        assert!(plain.to_string_lossy().ends_with(".cpio"));
        assert!(fs::read(&plain).expect("read").starts_with(b"070701"));
        let gz =
            build_cached(b"#!init", &[], modules, dir.path(), &InitramfsPlan::all()).expect("gzip");
        assert!(gz.to_string_lossy().ends_with(".cpio.gz"));
        assert!(fs::read(&gz).expect("read").starts_with(&[0x1f, 0x8b]));
        // a second build is a cache hit: resolution does not run
        let again = build_cached(
            b"#!init",
            &[],
            || panic!("resolved again"),
            dir.path(),
            &run,
        )
        .expect("hit");
        assert_eq!(again, plain);
    }
}
