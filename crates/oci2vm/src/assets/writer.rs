//! Writes the VMM configs and `manifest.json` into DIR atomically, or plans it (`--dry-run`).
//!
//! ```text
//! DIR/.oci2vm-stage-<pid>-<nanos>/   every file written and fsynced here first
//!   firecracker.json cloud-hypervisor.sh qemu.sh libvirt.xml   -> rename(2) into DIR
//!   manifest.json (hashes DIR after the renames)                -> rename(2) into DIR last
//! ```
//!
//! Each file appears complete or not at all; a reader that sees `manifest.json` sees every
//! file it lists. The boot artefacts (kernel, initramfs, root disk) are written by the pipeline
//! before this runs; the manifest hashes whatever regular files DIR holds.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::{AssetsError, AssetsPlan, cloud_hypervisor, firecracker, libvirt, manifest, qemu};

/// One file the writer produces or expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedFile {
    /// Name relative to DIR.
    pub name: String,
    /// Size when known before writing (the configs), None for the manifest and the boot
    /// artefacts made by other stages.
    pub size: Option<u64>,
    /// Who consumes or produces it.
    pub role: &'static str,
}

/// A rendered config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// Name relative to DIR.
    pub name: &'static str,
    /// Contents.
    pub text: String,
    /// Permission bits.
    pub mode: u32,
}

fn io(path: &Path, op: &'static str) -> impl FnOnce(std::io::Error) -> AssetsError {
    let path = path.to_path_buf();
    move |source| AssetsError::Io { path, op, source }
}

/// Renders the configs for DIR (`dir` must be absolute for libvirt.xml).
pub fn render(plan: &AssetsPlan, dir: &Path) -> Result<Vec<Rendered>, AssetsError> {
    Ok(vec![
        Rendered {
            name: "firecracker.json",
            text: firecracker::emit(plan)?,
            mode: 0o644,
        },
        Rendered {
            name: "cloud-hypervisor.sh",
            text: cloud_hypervisor::emit(plan),
            mode: 0o755,
        },
        Rendered {
            name: "qemu.sh",
            text: qemu::emit(plan),
            mode: 0o755,
        },
        Rendered {
            name: "libvirt.xml",
            text: libvirt::emit(plan, dir, libvirt::Net::User),
            mode: 0o644,
        },
    ])
}

fn absolute(dir: &Path) -> Result<PathBuf, AssetsError> {
    std::fs::canonicalize(dir).map_err(io(dir, "resolving directory"))
}

/// What [`write`] would produce, touching nothing (`--dry-run`).
pub fn dry_run(plan: &AssetsPlan, dir: &Path) -> Result<Vec<PlannedFile>, AssetsError> {
    dry_run_only(plan, dir, |_| true)
}

/// [`dry_run`] for the configs whose file name `keep` accepts (`--vmm`).
pub fn dry_run_only(
    plan: &AssetsPlan,
    dir: &Path,
    keep: impl Fn(&str) -> bool,
) -> Result<Vec<PlannedFile>, AssetsError> {
    let abs = absolute(dir).or_else(|_| {
        std::env::current_dir()
            .map(|c| c.join(dir))
            .map_err(io(dir, "resolving directory"))
    })?;
    let mut out: Vec<PlannedFile> = [
        (&plan.files.bzimage, "kernel (QEMU, libvirt, Gondolin)"),
        (
            &plan.files.vmlinux,
            "ELF kernel (Firecracker, Cloud Hypervisor)",
        ),
        (&plan.files.initramfs, "initramfs"),
        (&plan.files.rootfs, "root disk"),
    ]
    .into_iter()
    .map(|(name, role)| PlannedFile {
        name: name.clone(),
        size: None,
        role,
    })
    .collect();
    for r in render(plan, &abs)?.into_iter().filter(|r| keep(r.name)) {
        out.push(PlannedFile {
            name: r.name.into(),
            size: Some(r.text.len() as u64),
            role: "vmm config",
        });
    }
    out.push(PlannedFile {
        name: manifest::FILE_NAME.into(),
        size: None,
        role: "manifest",
    });
    Ok(out)
}

fn write_file(path: &Path, text: &[u8], mode: u32) -> Result<(), AssetsError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io(path, "creating"))?;
    f.write_all(text).map_err(io(path, "writing"))?;
    f.sync_all().map_err(io(path, "syncing"))
}

/// Writes the configs and the manifest into `dir` (which must exist); returns the manifest's
/// file list.
pub fn write(plan: &AssetsPlan, dir: &Path) -> Result<Vec<manifest::FileEntry>, AssetsError> {
    let abs = absolute(dir)?;
    write_only(plan, dir, &abs, |_| true)
}

/// [`write`] for the configs whose file name `keep` accepts (`--vmm`), rendered for `final_dir`
/// (the absolute path DIR will have: a staging directory renamed later); the manifest is
/// always written and lists what DIR holds.
pub fn write_only(
    plan: &AssetsPlan,
    dir: &Path,
    final_dir: &Path,
    keep: impl Fn(&str) -> bool,
) -> Result<Vec<manifest::FileEntry>, AssetsError> {
    let abs = absolute(dir)?;
    let mut rendered = render(plan, final_dir)?;
    rendered.retain(|r| keep(r.name));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let stage = abs.join(format!(".oci2vm-stage-{}-{nanos}", std::process::id()));
    std::fs::create_dir(&stage).map_err(io(&stage, "creating staging directory"))?;
    let result = (|| {
        for r in &rendered {
            write_file(&stage.join(r.name), r.text.as_bytes(), r.mode)?;
        }
        for r in &rendered {
            let to = abs.join(r.name);
            std::fs::rename(stage.join(r.name), &to).map_err(io(&to, "renaming into place"))?;
        }
        let files = manifest::scan(&abs)?;
        let text = manifest::emit(plan, &files, &manifest::build_time())?;
        let staged = stage.join(manifest::FILE_NAME);
        write_file(&staged, text.as_bytes(), 0o644)?;
        let to = abs.join(manifest::FILE_NAME);
        std::fs::rename(&staged, &to).map_err(io(&to, "renaming into place"))?;
        if let Ok(d) = std::fs::File::open(&abs) {
            // Persist the renames; a failure here loses nothing already visible.
            let _ = d.sync_all();
        }
        Ok(files)
    })();
    let _ = std::fs::remove_dir_all(&stage);
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assets::tests::sample_plan;
    use crate::assets::{gondolin, manifest};

    #[test]
    fn dry_run_writes_nothing_and_lists_everything() {
        let dir = tempfile::tempdir().expect("tempdir");
        let planned = dry_run(&sample_plan(), dir.path()).expect("plan");
        assert_eq!(
            std::fs::read_dir(dir.path()).expect("list").count(),
            0,
            "dry run wrote files"
        );
        let names: Vec<&str> = planned.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "bzImage",
                "vmlinux",
                "initramfs",
                "rootfs.ext4",
                "firecracker.json",
                "cloud-hypervisor.sh",
                "qemu.sh",
                "libvirt.xml",
                "manifest.json"
            ]
        );
        let fc = planned
            .iter()
            .find(|p| p.name == "firecracker.json")
            .expect("listed");
        assert_eq!(
            fc.size,
            Some(firecracker::emit(&sample_plan()).expect("emit").len() as u64)
        );
        // Also for a directory that does not exist yet.
        assert!(dry_run(&sample_plan(), &dir.path().join("new")).is_ok());
        assert!(!dir.path().join("new").exists());
    }

    #[test]
    fn write_produces_configs_and_a_consistent_manifest() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, data) in [
            ("bzImage", "k"),
            ("vmlinux", "v"),
            ("initramfs", "i"),
            ("rootfs.ext4", "r"),
        ] {
            std::fs::write(dir.path().join(name), data).expect("write");
        }
        let plan = sample_plan();
        let files = write(&plan, dir.path()).expect("write");
        let mut listing: Vec<String> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        listing.sort();
        assert_eq!(
            listing,
            [
                "bzImage",
                "cloud-hypervisor.sh",
                "firecracker.json",
                "initramfs",
                "libvirt.xml",
                "manifest.json",
                "qemu.sh",
                "rootfs.ext4",
                "vmlinux"
            ],
            "staging directory left behind or file missing"
        );
        assert_eq!(files.len(), 8);
        let text = std::fs::read_to_string(dir.path().join("manifest.json")).expect("read");
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(
            manifest::scan(dir.path()).expect("rescan"),
            files,
            "manifest is stale"
        );
        let qemu_sum = files.iter().find(|f| f.name == "qemu.sh").expect("hashed");
        assert_eq!(v["oci2vm"]["files"].as_array().expect("files").len(), 8);
        assert!(text.contains(&qemu_sum.sha256));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("qemu.sh"))
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111, "qemu.sh not executable");
        // Gondolin's loader finds its three files through the manifest.
        let [k, i, r] = gondolin::resolve(dir.path()).expect("gondolin layout");
        assert_eq!(
            (k.file_name(), i.file_name(), r.file_name()),
            (
                Some("bzImage".as_ref()),
                Some("initramfs".as_ref()),
                Some("rootfs.ext4".as_ref())
            )
        );
        // Writing again replaces the files (create_new only applies inside the fresh stage).
        write(&plan, dir.path()).expect("rewrite");
    }
}
