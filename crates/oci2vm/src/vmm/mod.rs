//! Running a guest: [`VmSpec`] (a validated plan) and the QEMU launcher [`run`].
//!
//! The launcher boots the kernel + initramfs from [`crate::guest::prepare`] with the root disk,
//! hands the per-run config to the init (kernel command line, or an initramfs segment when too
//! long), relays the workload's stdout/stderr/stdin over virtio-serial ports, forwards Ctrl-C
//! as the image's stop signal, and returns the workload's exit status.

mod channels;
pub mod qemu;
mod run;
mod sys;
pub mod terminal;

pub use run::{RunIo, run, run_with};
pub use sys::kvm_usable;

use std::path::PathBuf;
use std::time::Duration;

/// Hardware acceleration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// KVM (checked by creating a VM).
    Kvm,
    /// QEMU's emulator.
    Tcg,
}

/// The machine model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Machine {
    /// `-M microvm`: virtio-mmio, ACPI, fastest boot.
    Microvm,
    /// `-M q35`: virtio-pci.
    Q35,
}

/// A TCP port forwarded from the host to the guest (QEMU user networking).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortForward {
    /// Host address to bind (127.0.0.1 unless asked).
    pub host_addr: String,
    /// Host port.
    pub host_port: u16,
    /// Guest port.
    pub guest_port: u16,
}

/// A host directory shared with virtiofs; where and how the guest mounts it is in the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// Host directory.
    pub host: PathBuf,
    /// virtiofs tag.
    pub tag: String,
}

/// Where the kernel's console log goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelLog {
    /// A temporary file, shown (last lines) only when the guest fails.
    Hidden,
    /// This file.
    File(PathBuf),
    /// Our stderr.
    Stderr,
}

/// Everything needed to boot one VM.
#[derive(Debug, Clone)]
pub struct VmSpec {
    /// QEMU binary.
    pub qemu: PathBuf,
    /// virtiofsd binary (needed for volumes).
    pub virtiofsd: Option<PathBuf>,
    /// Kernel image.
    pub kernel: PathBuf,
    /// Initramfs (from [`crate::guest::prepare`]).
    pub initramfs: PathBuf,
    /// Root filesystem image (ext4).
    pub root_disk: PathBuf,
    /// Attach the root disk read-only.
    pub root_readonly: bool,
    /// Attach the root disk copy-on-write: the guest may write, but its writes go to a
    /// temporary overlay QEMU discards at exit (so a cached image stays pristine).
    pub root_snapshot: bool,
    /// Config document applied after the image's `/.oci2vm/config` (see `oci2vm_guest::Overlay`).
    pub overlay: String,
    /// Memory in MiB.
    pub memory_mib: u32,
    /// vCPUs.
    pub cpus: u32,
    /// `None`: no network device; `Some(forwards)`: user networking with these forwards.
    pub network: Option<Vec<PortForward>>,
    /// Shared directories.
    pub volumes: Vec<Volume>,
    /// Attach a virtio entropy device (virtio-rng). Default: only when the host CPU has no
    /// RDRAND; with it (and always under TCG's `-cpu max`) the guest kernel seeds its CRNG
    /// from RDRAND at boot, and the device would only cost a module load and a probe.
    pub entropy: bool,
    /// Forward our stdin.
    pub stdin: bool,
    /// The workload has a terminal (`-t`): forward our terminal's size changes to it.
    pub tty: bool,
    /// Signal sent on Ctrl-C / SIGTERM (the image's StopSignal).
    pub stop_signal: i32,
    /// Grace period after the stop signal before powering off.
    pub stop_timeout: Duration,
    /// Kill the VM after this long.
    pub timeout: Option<Duration>,
    /// Kernel log destination.
    pub kernel_log: KernelLog,
    /// Acceleration; `None` = KVM when usable, else TCG with a notice.
    pub accel: Option<Accel>,
    /// Machine model.
    pub machine: Machine,
    /// Verbose kernel and init logging.
    pub debug: bool,
    /// Print the guest's healthcheck status changes to stderr (`health: healthy (...)`); the
    /// check itself is in the overlay.
    pub report_health: bool,
    /// Catch SIGINT/SIGTERM in this process and forward them (CLI use).
    pub catch_signals: bool,
    /// Where to remember host facts between runs (the `kvm-unusable` stamp, keyed by boot id).
    pub state_dir: Option<PathBuf>,
}

impl VmSpec {
    /// A spec with defaults: microvm, 512 MiB, 1 vCPU, no network, stop signal SIGTERM with a
    /// 10 s grace period (Docker's), auto acceleration, an entropy device only when the host
    /// CPU lacks RDRAND.
    pub fn new(kernel: PathBuf, initramfs: PathBuf, root_disk: PathBuf) -> Self {
        VmSpec {
            qemu: "qemu-system-x86_64".into(),
            virtiofsd: None,
            kernel,
            initramfs,
            root_disk,
            root_readonly: false,
            root_snapshot: false,
            overlay: String::new(),
            memory_mib: 512,
            cpus: 1,
            network: None,
            volumes: Vec::new(),
            entropy: !qemu::host_has_rdrand(),
            stdin: false,
            tty: false,
            stop_signal: 15,
            stop_timeout: Duration::from_secs(10),
            timeout: None,
            kernel_log: KernelLog::Hidden,
            accel: None,
            machine: Machine::Microvm,
            debug: false,
            report_health: false,
            catch_signals: false,
            state_dir: None,
        }
    }

    /// The initramfs this spec boots fastest with: uncompressed, with the module groups its
    /// devices and config can need (PCI transport on q35, virtio-rng with an entropy device,
    /// virtio-net with a network, virtiofs with volumes).
    pub fn initramfs_plan(&self) -> crate::guest::InitramfsPlan {
        crate::guest::InitramfsPlan::for_run(
            self.machine == Machine::Q35,
            self.entropy,
            self.network.is_some(),
            !self.volumes.is_empty(),
        )
    }
}

/// The result of a run whose workload finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutcome {
    /// The workload's status as `docker run` reports it (exit code, or 128+signal).
    pub status: i32,
    /// Time from QEMU launch to the init's `OCI2VM_EXEC` (boot-to-entrypoint).
    pub boot_to_exec: Option<Duration>,
    /// The acceleration used.
    pub accel: Accel,
}

/// Errors running a VM.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// Starting a program failed (QEMU or virtiofsd missing).
    #[error("cannot start {program}")]
    Spawn {
        /// The program.
        program: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// QEMU exited without the guest reporting anything.
    #[error("qemu exited with {status} before the guest reported a status: {stderr}")]
    Qemu {
        /// QEMU's exit status.
        status: String,
        /// QEMU's last stderr lines.
        stderr: String,
    },
    /// The init failed at a boot step.
    #[error("guest init failed at step {step}: {message}")]
    Guest {
        /// The step's name.
        step: &'static str,
        /// The init's message.
        message: String,
    },
    /// The guest powered off without reporting a status.
    #[error("guest stopped without reporting a status; kernel log tail:\n{log}")]
    NoStatus {
        /// Last kernel log lines.
        log: String,
    },
    /// The run timed out.
    #[error("guest timed out after {secs} s")]
    Timeout {
        /// The limit.
        secs: u64,
    },
    /// virtiofsd did not come up.
    #[error("virtiofsd for {path} did not start: {log}")]
    Virtiofsd {
        /// The shared directory.
        path: PathBuf,
        /// Its log.
        log: String,
    },
    /// Volumes need virtiofsd.
    #[error("volumes need virtiofsd (not found; the Debian cloud kernel has no 9p)")]
    NoVirtiofsd,
    /// Local I/O.
    #[error("{path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl crate::error::Classify for LaunchError {
    fn kind(&self) -> crate::ErrorKind {
        match self {
            LaunchError::Spawn { .. }
            | LaunchError::Qemu { .. }
            | LaunchError::Virtiofsd { .. }
            | LaunchError::NoVirtiofsd => crate::ErrorKind::VmmUnavailable,
            LaunchError::Guest { .. }
            | LaunchError::NoStatus { .. }
            | LaunchError::Timeout { .. } => crate::ErrorKind::GuestFailed,
            LaunchError::Io { .. } => crate::ErrorKind::Io,
        }
    }
}

impl From<LaunchError> for crate::Error {
    fn from(e: LaunchError) -> Self {
        crate::Error::new(crate::error::Classify::kind(&e), e)
    }
}

/// The virtiofsd binary, if installed.
pub fn find_virtiofsd() -> Option<PathBuf> {
    let fixed = [
        "/usr/libexec/virtiofsd",
        "/usr/lib/qemu/virtiofsd",
        "/usr/bin/virtiofsd",
    ];
    if let Some(p) = fixed.iter().map(PathBuf::from).find(|p| p.is_file()) {
        return Some(p);
    }
    std::env::var_os("PATH")?
        .to_string_lossy()
        .split(':')
        .map(|d| PathBuf::from(d).join("virtiofsd"))
        .find(|p| p.is_file())
}
