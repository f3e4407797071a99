//! `oci2vm assets`: one conversion, a directory every selected VMM boots.
//!
//! ```text
//! Reference ─convert::flatten─> tree ─create_volumes, embed_guest_config─> DIR.stage/rootfs.ext4
//! guest::prepare ─> kernel (copied as bzImage)                         ─> DIR.stage/bzImage
//!               └─> initramfs (init + modules, cached)                 ─> DIR.stage/initramfs
//! bzImage ─vmlinux::extract_file─> (firecracker, cloud-hypervisor only) ─> DIR.stage/vmlinux
//! AssetsPlan ─writer::write_only─> configs + manifest.json in DIR.stage
//! rename(DIR.stage, DIR)                       a failure before this leaves nothing at DIR
//! ```
//!
//! The kernel command line is the one `oci2vm run` uses
//! ([`oci2vm_guest::CmdlineArgs::kernel_cmdline`]) with `oci2vm.console=1`: the VMMs give the
//! guest a serial console and no control channel, so the init sends the workload's output to
//! the console and prints `OCI2VM_EXIT=<status>` before powering off.

use std::path::{Path, PathBuf};

use super::{AssetFiles, AssetsPlan, PortForward, manifest, vmlinux, writer};
use crate::convert::{self, FlattenOptions};
use crate::error::{Classify, ErrorKind, Result};
use crate::image::ResolvedImage;
use crate::reference::Reference;
use crate::source::{self, RemoteFetcher};
use crate::store::Store;

/// A VMM whose files `oci2vm assets` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Vmm {
    /// `firecracker.json` + `vmlinux`.
    Firecracker,
    /// `cloud-hypervisor.sh` + `vmlinux`.
    CloudHypervisor,
    /// `qemu.sh`.
    Qemu,
    /// `libvirt.xml`.
    Libvirt,
    /// Gondolin's guest directory (`manifest.json` + bzImage, initramfs, rootfs.ext4).
    Gondolin,
}

impl Vmm {
    /// Every VMM, in output order.
    pub const ALL: [Vmm; 5] = [
        Vmm::Firecracker,
        Vmm::CloudHypervisor,
        Vmm::Qemu,
        Vmm::Libvirt,
        Vmm::Gondolin,
    ];

    /// The `--vmm` name.
    pub fn name(self) -> &'static str {
        match self {
            Vmm::Firecracker => "firecracker",
            Vmm::CloudHypervisor => "cloud-hypervisor",
            Vmm::Qemu => "qemu",
            Vmm::Libvirt => "libvirt",
            Vmm::Gondolin => "gondolin",
        }
    }

    /// The config file it reads from DIR, if any.
    pub fn config_file(self) -> Option<&'static str> {
        match self {
            Vmm::Firecracker => Some("firecracker.json"),
            Vmm::CloudHypervisor => Some("cloud-hypervisor.sh"),
            Vmm::Qemu => Some("qemu.sh"),
            Vmm::Libvirt => Some("libvirt.xml"),
            Vmm::Gondolin => None,
        }
    }

    /// True when it boots the ELF kernel rather than the bzImage.
    pub fn needs_vmlinux(self) -> bool {
        matches!(self, Vmm::Firecracker | Vmm::CloudHypervisor)
    }

    /// Parses `firecracker,qemu` or `all` (sorted, deduplicated).
    pub fn parse_list(s: &str) -> std::result::Result<Vec<Vmm>, String> {
        let mut out = Vec::new();
        for word in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            if word == "all" {
                out.extend(Vmm::ALL);
                continue;
            }
            let v = Vmm::ALL
                .into_iter()
                .find(|v| v.name() == word)
                .ok_or_else(|| {
                    format!(
                        "unknown VMM {word:?} (expected all or a list of {})",
                        Vmm::ALL.map(Vmm::name).join(", ")
                    )
                })?;
            out.push(v);
        }
        if out.is_empty() {
            return Err("no VMM given".into());
        }
        out.sort();
        out.dedup();
        Ok(out)
    }
}

/// Errors of the assets pipeline itself (each stage reports its own).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// DIR exists and holds something.
    #[error("{path} exists and is not an empty directory")]
    OutputExists {
        /// DIR.
        path: PathBuf,
    },
    /// A filesystem operation on the staging directory or DIR failed.
    #[error("{op} {path}")]
    Io {
        /// The path.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Firecracker and Cloud Hypervisor need an ELF kernel and this bzImage has none we can
    /// extract.
    #[error(
        "{kernel}: cannot extract the ELF vmlinux that {vmm} boots (choose other VMMs with --vmm, or give an extractable bzImage with --kernel)"
    )]
    Vmlinux {
        /// The kernel.
        kernel: PathBuf,
        /// The VMM that needs it.
        vmm: &'static str,
        /// Why.
        #[source]
        source: vmlinux::VmlinuxError,
    },
}

impl Classify for BuildError {
    fn kind(&self) -> ErrorKind {
        match self {
            BuildError::OutputExists { .. } => ErrorKind::InvalidInput,
            BuildError::Io { .. } => ErrorKind::Io,
            BuildError::Vmlinux { .. } => ErrorKind::Unsupported,
        }
    }
}

impl From<BuildError> for crate::Error {
    fn from(e: BuildError) -> Self {
        crate::Error::new(e.kind(), e)
    }
}

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The VMMs to write configs for.
    pub vmms: Vec<Vmm>,
    /// Kernel (bzImage) to use instead of the discovered one.
    pub kernel: Option<PathBuf>,
    /// Modules directory for that kernel.
    pub modules: Option<PathBuf>,
    /// The static init (default: [`crate::guest::locate_init`]).
    pub init: Option<PathBuf>,
    /// Where the initramfs is cached.
    pub cache_dir: PathBuf,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// vCPUs.
    pub cpus: u32,
    /// A host tap device for Firecracker and Cloud Hypervisor networking.
    pub tap: Option<String>,
    /// Root filesystem size (default: content-based).
    pub disk_size: Option<u64>,
}

/// The result of [`build`].
#[derive(Debug)]
pub struct Built {
    /// The resolved image.
    pub image: ResolvedImage,
    /// The plan the configs were rendered from.
    pub plan: AssetsPlan,
    /// Every file of DIR with its sha256 and size (as in `manifest.json`).
    pub files: Vec<manifest::FileEntry>,
}

/// The result of [`dry_run`]: nothing was written.
#[derive(Debug)]
pub struct Planned {
    /// The resolved image (manifest and config only; no layer was read).
    pub image: ResolvedImage,
    /// The plan the configs would be rendered from.
    pub plan: AssetsPlan,
    /// The files DIR would hold.
    pub files: Vec<writer::PlannedFile>,
}

/// The kernel command line of every emitted config: `run`'s, in standalone console mode.
pub fn guest_cmdline() -> String {
    oci2vm_guest::CmdlineArgs {
        console: true,
        ..Default::default()
    }
    .kernel_cmdline()
}

/// The command line for QEMU and libvirt with user networking: [`guest_cmdline`] plus an
/// inline config override giving the guest SLIRP's address (10.0.2.15/24 via 10.0.2.2, DNS
/// 10.0.2.3), so the ExposedPorts forwards reach it.
pub fn user_net_cmdline() -> String {
    let mut o = oci2vm_guest::Overlay::new();
    o.network(&oci2vm_guest::Network::qemu_user())
        .dns([10, 0, 2, 3]);
    oci2vm_guest::CmdlineArgs {
        console: true,
        config: Some(oci2vm_guest::ConfigSource::Inline(o.render())),
        ..Default::default()
    }
    .kernel_cmdline()
}

fn plan_for(image: &ResolvedImage, opts: &BuildOptions) -> Result<AssetsPlan> {
    let runtime = convert::assets_runtime(&image.config.runtime);
    let port_forwards = PortForward::from_exposed_ports(&runtime.exposed_ports)?;
    Ok(AssetsPlan {
        source: image.source.clone(),
        digest: image.manifest_digest.clone(),
        platform: image.platform.to_string(),
        runtime,
        files: AssetFiles::default(),
        kernel_cmdline: guest_cmdline(),
        // With a tap the host decides the guest's address; nothing to set.
        user_net_cmdline: opts.tap.is_none().then(user_net_cmdline),
        memory_mib: opts.memory_mib,
        cpus: opts.cpus,
        tap: opts.tap.clone(),
        mac: None,
        port_forwards,
    })
}

fn keep(vmms: &[Vmm]) -> impl Fn(&str) -> bool + '_ {
    move |name| vmms.iter().any(|v| v.config_file() == Some(name))
}

/// The absolute path `out` will have (it need not exist); its parent must exist.
fn target_path(out: &Path) -> Result<PathBuf> {
    let name = out.file_name().ok_or_else(|| BuildError::Io {
        path: out.to_path_buf(),
        op: "naming",
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "no directory name"),
    })?;
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let parent = std::fs::canonicalize(&parent).map_err(|source| BuildError::Io {
        path: parent.clone(),
        op: "resolving",
        source,
    })?;
    Ok(parent.join(name))
}

fn check_free(target: &Path) -> Result<()> {
    match std::fs::read_dir(target).map(|mut d| d.next().is_none()) {
        Ok(true) => Ok(()),
        Ok(false) => Err(BuildError::OutputExists {
            path: target.to_path_buf(),
        }
        .into()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(_) => Err(BuildError::OutputExists {
            path: target.to_path_buf(),
        }
        .into()),
    }
}

/// Resolves the image and plans DIR without reading a layer or writing anything.
pub fn dry_run(
    reference: &Reference,
    flatten: &FlattenOptions,
    remote: Option<&dyn RemoteFetcher>,
    opts: &BuildOptions,
    out: &Path,
) -> Result<Planned> {
    let image = source::resolve(reference, &flatten.source, remote)?;
    let plan = plan_for(&image, opts)?;
    let mut files = writer::dry_run_only(&plan, out, keep(&opts.vmms))?;
    if !opts.vmms.iter().any(|v| v.needs_vmlinux()) {
        files.retain(|f| f.name != plan.files.vmlinux);
    }
    Ok(Planned { image, plan, files })
}

/// Converts `reference` and writes DIR (`out`, which must not exist or be empty): kernel,
/// initramfs, root disk, the selected VMMs' configs and `manifest.json`.
pub fn build(
    reference: &Reference,
    store: &Store,
    flatten: &FlattenOptions,
    remote: Option<&dyn RemoteFetcher>,
    opts: &BuildOptions,
    out: &Path,
) -> Result<Built> {
    let target = target_path(out)?;
    check_free(&target)?;
    let parent = target.parent().unwrap_or(Path::new("/")).to_path_buf();
    let stage = tempfile::Builder::new()
        .prefix(".oci2vm-assets-")
        .tempdir_in(&parent)
        .map_err(|source| BuildError::Io {
            path: parent.clone(),
            op: "creating a staging directory in",
            source,
        })?;
    let dir = stage.path();

    // Kernel and initramfs first: they fail fast and cheaply.
    let guest = crate::guest::prepare(
        opts.kernel.as_deref(),
        opts.modules.as_deref(),
        opts.init.as_deref(),
        &opts.cache_dir,
        // any VMM, any config: every module group, compressed (the file is copied around)
        &crate::guest::InitramfsPlan::all(),
    )?;
    let files = AssetFiles::default();
    let copy = |from: &Path, name: &str| -> Result<()> {
        let to = dir.join(name);
        std::fs::copy(from, &to).map_err(|source| BuildError::Io {
            path: to,
            op: "copying into",
            source,
        })?;
        Ok(())
    };
    copy(&guest.kernel, &files.bzimage)?;
    copy(&guest.initramfs, &files.initramfs)?;
    if let Some(vmm) = opts.vmms.iter().find(|v| v.needs_vmlinux()) {
        vmlinux::extract_file(&guest.kernel, &dir.join(&files.vmlinux)).map_err(|source| {
            BuildError::Vmlinux {
                kernel: guest.kernel.clone(),
                vmm: vmm.name(),
                source,
            }
        })?;
    }

    // The root disk, with the declared volumes and the guest config.
    let (flat, _) = convert::flatten_to_ext4(
        reference,
        store,
        flatten,
        remote,
        &dir.join(&files.rootfs),
        |image| convert::ext4_options(image, opts.disk_size),
        |flat| {
            flat.create_volumes()?;
            flat.embed_guest_config()
        },
    )?;

    let plan = plan_for(&flat.image, opts)?;
    let entries = writer::write_only(&plan, dir, &target, keep(&opts.vmms))?;
    let staged = stage.keep();
    // rename(2) replaces an empty directory, so an empty DIR is allowed.
    std::fs::rename(&staged, &target).map_err(|source| {
        let _ = std::fs::remove_dir_all(&staged);
        BuildError::Io {
            path: target.clone(),
            op: "renaming the staging directory to",
            source,
        }
    })?;
    Ok(Built {
        image: flat.image,
        plan,
        files: entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vmm_lists_parse() {
        assert_eq!(Vmm::parse_list("all"), Ok(Vmm::ALL.to_vec()));
        assert_eq!(
            Vmm::parse_list("qemu, firecracker,qemu"),
            Ok(vec![Vmm::Firecracker, Vmm::Qemu])
        );
        assert!(Vmm::parse_list("qemu,vmware").is_err());
        assert!(Vmm::parse_list(" , ").is_err());
        assert!(Vmm::ALL.iter().filter(|v| v.needs_vmlinux()).count() == 2);
    }

    #[test]
    fn configs_follow_the_selection() {
        let k = keep(&[Vmm::Qemu, Vmm::Gondolin]);
        assert!(k("qemu.sh"));
        assert!(!k("firecracker.json") && !k("libvirt.xml") && !k("cloud-hypervisor.sh"));
    }

    #[test]
    fn emitted_cmdline_is_the_runs_in_console_mode() {
        let line = guest_cmdline();
        let args = oci2vm_guest::CmdlineArgs::parse(&line).expect("parses");
        assert!(args.console && !args.debug);
        assert!(line.starts_with("console=ttyS0 panic=-1"), "{line}");
    }

    #[test]
    fn user_net_cmdline_configures_slirp_addresses() {
        let line = user_net_cmdline();
        let args = oci2vm_guest::CmdlineArgs::parse(&line).expect("parses");
        let Some(oci2vm_guest::ConfigSource::Inline(doc)) = args.config else {
            panic!("no inline config in {line}")
        };
        let mut cfg = oci2vm_guest::GuestConfig::default();
        cfg.apply(&doc).expect("applies");
        assert_eq!(cfg.network, oci2vm_guest::Network::qemu_user());
        assert_eq!(cfg.dns, vec![[10, 0, 2, 3]]);
        assert!(args.console);
    }

    #[test]
    fn output_must_be_free() {
        let d = tempfile::tempdir().expect("tempdir");
        assert!(check_free(&d.path().join("new")).is_ok());
        assert!(check_free(d.path()).is_ok());
        std::fs::write(d.path().join("x"), "x").expect("write");
        let e = check_free(d.path()).expect_err("non-empty accepted");
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    }
}
