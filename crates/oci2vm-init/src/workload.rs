//! The workload's process: PID 1 of its own PID namespace, as `docker run` makes it.
//!
//! ```text
//! oci2vm-init (PID 1, supervises)
//!   └─ fork in a new PID + mount namespace ── PID 1 there: the workload
//!                                          └─ or, with --init: a mini init that forwards
//!                                             signals and reaps, and the workload as PID 2
//! ```

use crate::exec::{self, FileCheck, LookupError};
use crate::sys;
use crate::users::Identity;
use oci2vm_guest::config::RLIMIT_NAMES;
use oci2vm_guest::protocol::docker_status;
use std::io::Write;
use std::os::fd::RawFd;
use std::os::unix::fs::PermissionsExt;

/// Signals the init forwards to the workload (plus SIGCHLD, which it handles itself).
pub const FORWARDED: [i32; 7] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
];

/// The signals the init (and the mini init) block and read from a signalfd.
pub fn handled_signals() -> Vec<i32> {
    let mut v = FORWARDED.to_vec();
    v.push(libc::SIGCHLD);
    v
}

/// Everything the child needs, computed before the fork.
#[derive(Debug)]
pub struct Plan {
    /// argv; argv[0] is looked up in PATH.
    pub argv: Vec<String>,
    /// Final environment.
    pub env: Vec<String>,
    /// Working directory (exists).
    pub workdir: String,
    /// Who to run as.
    pub identity: Identity,
    /// (RLIMIT_* number, soft, hard).
    pub rlimits: Vec<(u32, u64, u64)>,
    /// Run a mini init as PID 1 of the namespace.
    pub init: bool,
    /// fds for 0, 1, 2.
    pub stdio: [RawFd; 3],
    /// The stdio fds are one terminal: make it the session's controlling terminal (`-t`).
    pub tty: bool,
}

/// Maps config rlimit names to numbers.
pub fn rlimit_numbers(limits: &[oci2vm_guest::Rlimit]) -> Vec<(u32, u64, u64)> {
    limits
        .iter()
        .filter_map(|r| {
            let n = RLIMIT_NAMES.iter().position(|x| *x == r.name)?;
            Some((n as u32, r.soft, r.hard))
        })
        .collect()
}

/// Forks the workload into a new PID namespace; returns its pid (in our namespace).
pub fn spawn(plan: &Plan) -> std::io::Result<i32> {
    sys::unshare(libc::CLONE_NEWPID)?;
    let pid = sys::fork()?;
    if pid > 0 {
        return Ok(pid);
    }
    namespace_init(plan)
}

fn die(status: i32, msg: impl std::fmt::Display) -> ! {
    let _ = writeln!(std::io::stderr(), "oci2vm-init: {msg}");
    sys::exit_now(status)
}

/// PID 1 of the new namespace: private mounts, a fresh /proc, stdio, then the workload.
fn namespace_init(plan: &Plan) -> ! {
    let handled = handled_signals();
    sys::reset_signals(&handled);
    if let Err(e) = sys::unshare(libc::CLONE_NEWNS)
        .and_then(|()| sys::mount("", "/", "", libc::MS_REC | libc::MS_PRIVATE, ""))
        .and_then(|()| {
            sys::mount(
                "proc",
                "/proc",
                "proc",
                libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                "",
            )
        })
    {
        die(126, format_args!("pid namespace setup: {e}"));
    }
    for (fd, target) in plan.stdio.iter().zip(0..) {
        if let Err(e) = sys::dup2(*fd, target) {
            die(126, format_args!("stdio: {e}"));
        }
    }
    let _ = sys::setsid();
    if plan.tty
        && let Err(e) = sys::set_controlling_tty(0)
    {
        die(126, format_args!("controlling terminal: {e}"));
    }
    if !plan.init {
        run(plan)
    }
    // --init: block signals before forking so none is lost, then supervise the workload.
    let sfd = match sys::signalfd(&handled) {
        Ok(fd) => fd,
        Err(e) => die(126, format_args!("signalfd: {e}")),
    };
    let child = match sys::fork() {
        Ok(0) => {
            sys::reset_signals(&handled);
            drop(sfd);
            run(plan)
        }
        Ok(pid) => pid,
        Err(e) => die(126, format_args!("fork: {e}")),
    };
    loop {
        match sys::read_signal(&sfd) {
            Some(libc::SIGCHLD) => {
                while let Some(r) = sys::reap_any() {
                    if r.pid == child {
                        sys::exit_now(docker_status(r.exited, r.signaled));
                    }
                }
            }
            Some(sig) => {
                let _ = sys::kill(child, sig);
            }
            None => {}
        }
    }
}

/// How much of one file [`prefetch`] asks for.
const PREFETCH_MAX: u64 = 8 << 20;
/// One read-ahead request (the kernel caps each at the device's request size).
const PREFETCH_CHUNK: u64 = 1 << 20;

/// Starts reading the workload's executable and its ELF interpreter into the page cache, so
/// the exec after the remaining setup steps finds them there: the reads run on the host
/// while the init works. A hint only (looked up as root from `/`); errors are ignored.
pub fn prefetch(argv0: &str, env: &[String]) {
    let Ok(path) = exec::lookup(argv0, exec::path_of(env), check_file) else {
        return;
    };
    let interp = will_need(&path);
    if let Some(i) = interp {
        will_need(&i);
    }
}

/// Asks for the first [`PREFETCH_MAX`] bytes of `path`; returns its ELF interpreter.
fn will_need(path: &str) -> Option<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).ok()?;
    let size = f.metadata().ok()?.len().min(PREFETCH_MAX);
    for off in (0..size).step_by(PREFETCH_CHUNK as usize) {
        let _ = sys::will_need(&f, off, PREFETCH_CHUNK.min(size - off));
    }
    let mut head = [0u8; 4096];
    let n = f.read(&mut head).ok()?;
    exec::elf_interpreter(&head[..n])
}

/// Whether `path` is an executable regular file (for PATH lookup).
pub fn check_file(path: &str) -> FileCheck {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => FileCheck::Executable,
        Ok(m) if m.is_file() => FileCheck::NotExecutable,
        _ => FileCheck::Missing,
    }
}

/// Applies limits, directory and identity, then execs argv. Never returns.
fn run(plan: &Plan) -> ! {
    for &(res, soft, hard) in &plan.rlimits {
        if let Err(e) = sys::setrlimit(res, soft, hard) {
            die(
                126,
                format_args!("setrlimit {}: {e}", RLIMIT_NAMES[res as usize % 16]),
            );
        }
    }
    if let Err(e) = std::env::set_current_dir(&plan.workdir) {
        die(126, format_args!("chdir {}: {e}", plan.workdir));
    }
    let id = &plan.identity;
    if let Err(e) = sys::set_identity(id.uid, id.gid, &id.groups) {
        die(126, format_args!("set user {}:{}: {e}", id.uid, id.gid));
    }
    let Some(name) = plan.argv.first() else {
        die(127, "no command specified")
    };
    let path = match exec::lookup(name, exec::path_of(&plan.env), check_file) {
        Ok(p) => p,
        Err(e @ (LookupError::NotFound(_) | LookupError::NotExecutable(_))) => die(e.status(), e),
    };
    let err = sys::execve(&path, &plan.argv, &plan.env);
    let status = exec::exec_errno_status(err.raw_os_error().unwrap_or(0));
    die(status, format_args!("exec {path}: {err}"))
}
