//! Where the init reports: the kernel console (ttyS0, our fd 2) and the control port.
//!
//! Failures print the boot step by name on both, then power the VM off: the host reads the
//! `OCI2VM_ERROR` line and exits with the guest-failure code.

use crate::sys;
use oci2vm_guest::{Event, Step};
use std::fs::File;
use std::io::Write;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

static DEBUG: AtomicBool = AtomicBool::new(false);
static CONTROL_FD: AtomicI32 = AtomicI32::new(-1);
/// The root disk's writes are discarded at exit (config `ephemeral 1`): nothing to flush.
static EPHEMERAL_ROOT: AtomicBool = AtomicBool::new(false);
/// Writable shared directories (flushed at power-off).
static VOLUMES: OnceLock<Vec<String>> = OnceLock::new();
/// `/dev/kmsg` while debugging: step lines land in the kernel log with its timestamps.
static KMSG_FD: AtomicI32 = AtomicI32::new(-1);

/// Turns step logging on (`oci2vm.debug=1`). Call after /dev is mounted: the lines go to
/// `/dev/kmsg` (kernel-timestamped, in order with the kernel's own), else to the console.
pub fn set_debug(on: bool) {
    DEBUG.store(on, Ordering::Relaxed);
    if !on {
        return;
    }
    // userspace lines in /dev/kmsg are rate-limited (10 per 5 s) unless this says `on`
    let _ = std::fs::write("/proc/sys/kernel/printk_devkmsg", "on\n");
    if let Ok(f) = std::fs::OpenOptions::new().write(true).open("/dev/kmsg") {
        use std::os::fd::IntoRawFd;
        KMSG_FD.store(f.into_raw_fd(), Ordering::Relaxed);
    }
}

/// Records that the root disk is discarded at exit, so power-off does not flush it.
pub fn set_ephemeral_root(on: bool) {
    EPHEMERAL_ROOT.store(on, Ordering::Relaxed);
}

/// Records the writable shared directories, flushed at power-off.
pub fn set_volumes(paths: Vec<String>) {
    let _ = VOLUMES.set(paths);
}

/// Registers the control port once it is open (the file stays open for the VM's lifetime).
pub fn set_control(f: &File) {
    use std::os::fd::AsRawFd;
    CONTROL_FD.store(f.as_raw_fd(), Ordering::Relaxed);
}

/// Logs a boot step to the kernel console when debugging.
pub fn debug(msg: &str) {
    if !DEBUG.load(Ordering::Relaxed) {
        return;
    }
    let kmsg = KMSG_FD.load(Ordering::Relaxed);
    // one write = one kernel log record; level 6 (info) shows on the non-quiet debug console
    if kmsg < 0 || sys::write_all(kmsg, format!("<6>oci2vm-init: {msg}\n").as_bytes()).is_err() {
        let _ = writeln!(std::io::stderr(), "oci2vm-init: {msg}");
    }
}

/// Logs the start of a boot step when debugging.
pub fn step(step: Step) {
    if DEBUG.load(Ordering::Relaxed) {
        debug(&format!("step {} {}", step as u8, step.name()));
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

/// Flushes what outlives the VM, then powers off (reboot as a fallback, exit as a last
/// resort): the writable shared directories, and the root (sync, remount read-only, sync)
/// unless it is ephemeral (attached copy-on-write and discarded by the host; flushing it cost
/// ~12 ms of a TCG boot).
pub fn shutdown() -> ! {
    for v in VOLUMES.get().into_iter().flatten() {
        if let Err(e) = sys::syncfs(v) {
            let _ = writeln!(std::io::stderr(), "oci2vm-init: syncfs {v}: {e}");
        }
    }
    if !EPHEMERAL_ROOT.load(Ordering::Relaxed) {
        sys::sync();
        let _ = sys::mount("", "/", "", libc::MS_REMOUNT | libc::MS_RDONLY, "");
        sys::sync();
    }
    debug("power off");
    let e = sys::power_off();
    let _ = writeln!(std::io::stderr(), "oci2vm-init: power off failed: {e}");
    let _ = sys::reboot();
    sys::exit_now(1)
}
