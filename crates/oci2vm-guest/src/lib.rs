//! The host<->guest contract of oci2vm (see `docs/guest-contract.md`).
//!
//! Both sides link this crate: the host (`oci2vm`) writes the config and the kernel command line
//! and reads the control channel; the guest (`oci2vm-init`) does the reverse. It has no
//! dependencies so the static init stays small.

pub mod cmdline;
pub mod codec;
pub mod config;
mod fields;
pub mod overlay;
pub mod protocol;

pub use cmdline::{CmdlineArgs, ConfigSource};
pub use config::{GuestConfig, Health, Mount, Network, Rlimit, RootDevice};
pub use overlay::Overlay;
pub use protocol::{Control, Event, Step};

/// Where the image's runtime config lives in the root filesystem.
pub const CONFIG_PATH: &str = "/.oci2vm/config";

/// Where the kernel modules sit in the initramfs, and the file listing their load order.
pub const MODULES_DIR: &str = "/lib/oci2vm/modules";
/// One module file name per line, dependencies first.
pub const MODULES_ORDER: &str = "/lib/oci2vm/modules/order";

/// Where the init expects a config override shipped in an extra initramfs segment.
pub const OVERRIDE_PATH: &str = "/oci2vm-override";

/// Name of the virtio-serial port carrying the workload's stdout (and stdin with `-i`).
pub const PORT_STDOUT: &str = "oci2vm.stdout";
/// Name of the virtio-serial port carrying the workload's stderr.
pub const PORT_STDERR: &str = "oci2vm.stderr";
/// Name of the virtio-serial port carrying stdin (present with `-i` only; host EOF = guest EOF).
pub const PORT_STDIN: &str = "oci2vm.stdin";
/// Name of the virtio-serial control port (events out, signals in).
pub const PORT_CONTROL: &str = "oci2vm.ctl";
