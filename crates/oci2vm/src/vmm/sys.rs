//! The launcher's only `unsafe`: probing KVM, catching SIGINT/SIGTERM, and waiting for QEMU
//! through a pidfd.
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

/// `KVM_CREATE_VM` = `_IO(KVMIO, 0x01)`, KVMIO = 0xAE (linux/kvm.h).
const KVM_CREATE_VM: libc::c_ulong = 0xAE01;

/// True when /dev/kvm opens and really creates a VM (it can exist yet be unusable, as on
/// nested hosts without VMX passthrough).
pub fn kvm_usable() -> bool {
    let Ok(f) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    else {
        return false;
    };
    // SAFETY: KVM_CREATE_VM takes an integer machine type (0) and returns a new fd or -1.
    let vm = unsafe { libc::ioctl(f.as_raw_fd(), KVM_CREATE_VM, 0 as libc::c_ulong) };
    if vm < 0 {
        return false;
    }
    // SAFETY: `vm` is a fresh fd we own and close exactly once.
    unsafe { libc::close(vm) };
    true
}

static PENDING: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    PENDING.store(sig, Ordering::SeqCst);
}

/// Routes SIGINT and SIGTERM to a flag read by [`take_signal`] instead of killing us.
pub fn catch_stop_signals() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: sigaction is plain data; the handler only stores to an atomic, which is
        // async-signal-safe.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as libc::sighandler_t;
            libc::sigemptyset(&mut sa.sa_mask);
            sa.sa_flags = libc::SA_RESTART;
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

static RESIZED: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_winch(_sig: libc::c_int) {
    RESIZED.store(1, Ordering::SeqCst);
}

/// Notes SIGWINCH (our terminal was resized) in a flag read by [`take_resize`].
pub fn catch_resize() {
    // SAFETY: sigaction is plain data; the handler only stores to an atomic, which is
    // async-signal-safe.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_winch as *const () as libc::sighandler_t;
        libc::sigemptyset(&mut sa.sa_mask);
        sa.sa_flags = libc::SA_RESTART;
        libc::sigaction(libc::SIGWINCH, &sa, std::ptr::null_mut());
    }
}

/// Whether the terminal was resized since the previous call.
pub fn take_resize() -> bool {
    RESIZED.swap(0, Ordering::SeqCst) != 0
}

/// The last stop signal received since the previous call, if any.
pub fn take_signal() -> Option<i32> {
    match PENDING.swap(0, Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// Makes the child get SIGKILL when we die, so a killed `oci2vm` never leaves a VM behind.
pub fn die_with_parent(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs between fork and exec and only calls prctl, which is
    // async-signal-safe; it touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// A pidfd for `pid` (pidfd_open(2), Linux 5.3): it becomes readable when the process exits.
/// `None` when the kernel has no pidfds (callers fall back to sleeping).
pub fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    let pid = libc::pid_t::try_from(pid).ok()?;
    // SAFETY: no pointers; returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = i32::try_from(fd).ok().filter(|fd| *fd >= 0)?;
    // SAFETY: `fd` was just returned by pidfd_open and is owned by nobody else.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Waits up to `timeout` for `fd` to become readable (for a pidfd: the process exited).
pub fn wait_readable(fd: &OwnedFd, timeout: Duration) -> bool {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: `p` is one valid pollfd for the duration of the call.
    unsafe { libc::poll(&mut p, 1, ms) > 0 }
}
