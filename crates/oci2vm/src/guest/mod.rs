//! The guest side as the host prepares it: kernel, modules, initramfs and the init binary.
//!
//! [`prepare`] turns "which kernel" into [`GuestAssets`] (a kernel image and a cached
//! initramfs); the VMM launcher boots them with the root disk. The contract with the init
//! (config format, kernel command line, ports) is the `oci2vm-guest` crate.

pub mod image;
pub mod initramfs;
pub mod kernel;
pub mod modules;

pub use initramfs::{Compression, InitramfsPlan};

use std::path::{Path, PathBuf};

/// Errors preparing guest assets.
#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    /// No kernel image found.
    #[error("no kernel image at {path} (pass --kernel)")]
    NoKernel {
        /// Where we looked.
        path: PathBuf,
    },
    /// The kernel has no modules directory but needs modules.
    #[error("no modules directory for kernel {version} (pass --modules)")]
    NoModules {
        /// The kernel release.
        version: String,
    },
    /// A required module is neither built in nor present.
    #[error("kernel module {name} not found and not built in")]
    ModuleMissing {
        /// Canonical module name.
        name: String,
    },
    /// A module file is unreadable as a module.
    #[error("{path}: {reason}")]
    Module {
        /// The module file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The init binary was not found.
    #[error("static oci2vm-init not found (set OCI2VM_INIT or run scripts/build-init.sh)")]
    NoInit,
    /// Writing the initramfs failed.
    #[error("writing initramfs")]
    Cpio(#[from] crate::fs::cpio::CpioError),
    /// File I/O failed.
    #[error("{path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl crate::error::Classify for GuestError {
    fn kind(&self) -> crate::ErrorKind {
        match self {
            GuestError::NoKernel { .. } | GuestError::NoModules { .. } | GuestError::NoInit => {
                crate::ErrorKind::NotFound
            }
            GuestError::ModuleMissing { .. } | GuestError::Module { .. } => {
                crate::ErrorKind::Unsupported
            }
            GuestError::Cpio(_) | GuestError::Io { .. } => crate::ErrorKind::Io,
        }
    }
}

impl From<GuestError> for crate::Error {
    fn from(e: GuestError) -> Self {
        crate::Error::new(crate::error::Classify::kind(&e), e)
    }
}

/// What the VMM boots besides the root disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestAssets {
    /// The kernel image (bzImage).
    pub kernel: PathBuf,
    /// The kernel release.
    pub kernel_version: String,
    /// The cached initramfs (cpio, gzip-compressed or not as planned).
    pub initramfs: PathBuf,
}

/// Finds the static init binary: `$OCI2VM_INIT`, else next to the running executable, else the
/// workspace's `target/x86_64-unknown-linux-gnu/{release,debug}` (where build-init.sh puts it).
pub fn locate_init() -> Result<PathBuf, GuestError> {
    if let Some(p) = std::env::var_os("OCI2VM_INIT") {
        let p = PathBuf::from(p);
        return if is_static_elf(&p) {
            Ok(p)
        } else {
            Err(GuestError::NoInit)
        };
    }
    let mut candidates = Vec::new();
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.parent()
    {
        candidates.push(dir.join("oci2vm-init"));
        // target/{debug,release}[/deps]/ -> target/
        for up in dir.ancestors().take(3) {
            for prof in ["release", "debug"] {
                candidates.push(
                    up.join("x86_64-unknown-linux-gnu")
                        .join(prof)
                        .join("oci2vm-init"),
                );
            }
        }
    }
    let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/x86_64-unknown-linux-gnu");
    candidates.push(ws.join("release/oci2vm-init"));
    candidates.push(ws.join("debug/oci2vm-init"));
    candidates
        .into_iter()
        .find(|p| is_static_elf(p))
        .ok_or(GuestError::NoInit)
}

/// True for an ELF64 executable without a `PT_INTERP` program header (statically linked);
/// a dynamically linked init cannot start in the initramfs.
pub fn is_static_elf(path: &Path) -> bool {
    let Ok(b) = std::fs::read(path) else {
        return false;
    };
    if b.get(0..6) != Some(b"\x7fELF\x02\x01") {
        return false;
    }
    let rd = |off: usize, n: usize| -> Option<usize> {
        let s = b.get(off..off.checked_add(n)?)?;
        usize::try_from(s.iter().rev().fold(0u64, |a, &x| (a << 8) | u64::from(x))).ok()
    };
    let (Some(phoff), Some(phentsize), Some(phnum)) = (rd(0x20, 8), rd(0x36, 2), rd(0x38, 2))
    else {
        return false;
    };
    (0..phnum).all(|i| {
        let at = phoff.saturating_add(i.saturating_mul(phentsize));
        rd(at, 4).is_some_and(|t| t != 3) // PT_INTERP = 3
    })
}

/// Discovers the kernel and its modules, and builds (or reuses) the initramfs `plan`
/// describes in `cache_dir`.
pub fn prepare(
    kernel: Option<&Path>,
    modules: Option<&Path>,
    init: Option<&Path>,
    cache_dir: &Path,
    plan: &InitramfsPlan,
) -> Result<GuestAssets, GuestError> {
    let k = kernel::discover(
        kernel,
        modules,
        Path::new("/boot"),
        Path::new("/lib/modules"),
    )?;
    let init_path = match init {
        Some(p) => p.to_path_buf(),
        None => locate_init()?,
    };
    let init_bytes = std::fs::read(&init_path).map_err(|e| GuestError::Io {
        path: init_path.clone(),
        source: e,
    })?;
    let mod_dir = k.modules.clone().ok_or_else(|| GuestError::NoModules {
        version: k.version.clone(),
    })?;
    // The key covers the module directory's identity; resolution itself runs only on a miss.
    let key_paths = vec![mod_dir.clone(), mod_dir.join("modules.builtin")];
    let initramfs = initramfs::build_cached(
        &init_bytes,
        &key_paths,
        || modules::resolve(&mod_dir, &modules::REQUIRED, &modules::OPTIONAL),
        cache_dir,
        plan,
    )?;
    Ok(GuestAssets {
        kernel: k.image,
        kernel_version: k.version,
        initramfs,
    })
}
