//! Where the init reports: the kernel console (ttyS0, our fd 2) and the control port.
//!
//! Failures print the boot step by name on both, then power the VM off: the host reads the
//! `OCI2VM_ERROR` line and exits with the guest-failure code.

use crate::sys;
use oci2vm_guest::{Event, Step};
use std::fs::File;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

static DEBUG: AtomicBool = AtomicBool::new(false);
static CONTROL_FD: AtomicI32 = AtomicI32::new(-1);

/// Turns step logging on (`oci2vm.debug=1`).
pub fn set_debug(on: bool) {
    DEBUG.store(on, Ordering::Relaxed);
}

/// Registers the control port once it is open (the file stays open for the VM's lifetime).
pub fn set_control(f: &File) {
    use std::os::fd::AsRawFd;
    CONTROL_FD.store(f.as_raw_fd(), Ordering::Relaxed);
}

/// Logs a boot step to the kernel console when debugging.
pub fn debug(msg: &str) {
    if DEBUG.load(Ordering::Relaxed) {
        let _ = writeln!(std::io::stderr(), "oci2vm-init: {msg}");
    }
}

/// Sends an event on the control port (ignored while there is none).
pub fn send(ev: &Event) {
    let fd = CONTROL_FD.load(Ordering::Relaxed);
    if fd >= 0 {
        let line = format!("{}\n", ev.render());
        let _ = sys::write_all(fd, line.as_bytes());
    }
}

/// A second handle on the kernel console (our fd 2, opened by the kernel before /init ran;
/// it stays valid after switch_root), for the workload's stdio in a standalone boot.
pub fn console_file() -> std::io::Result<File> {
    use std::os::fd::AsFd;
    Ok(File::from(std::io::stderr().as_fd().try_clone_to_owned()?))
}

/// Prints an event on the kernel console (standalone boots have no control port).
pub fn report(ev: &Event) {
    let _ = writeln!(std::io::stderr(), "{}", ev.render());
}

/// Reports a failed step and powers off. Never returns.
pub fn fail(step: Step, msg: impl std::fmt::Display) -> ! {
    let ev = Event::Error {
        step,
        message: msg.to_string(),
    };
    let _ = writeln!(std::io::stderr(), "{}", ev.render());
    send(&ev);
    shutdown()
}

/// Sync, remount the root read-only, power off (reboot as a fallback, exit as a last resort).
pub fn shutdown() -> ! {
    sys::sync();
    let _ = sys::mount("", "/", "", libc::MS_REMOUNT | libc::MS_RDONLY, "");
    sys::sync();
    let e = sys::power_off();
    let _ = writeln!(std::io::stderr(), "oci2vm-init: power off failed: {e}");
    let _ = sys::reboot();
    sys::exit_now(1)
}
