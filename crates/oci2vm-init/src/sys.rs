//! The init's only `unsafe`: thin wrappers over the Linux system calls it needs.
//!
//! Every wrapper converts its arguments to C strings first, makes one call, and turns `-1` into
//! `io::Error::last_os_error()`. The init is single-threaded, which is what makes `fork` and
//! the post-fork code in `workload.rs` sound.
#![allow(unsafe_code)]

use std::ffi::{CString, c_int};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

fn cstr(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn check(r: c_int) -> io::Result<c_int> {
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// mount(2). `source`/`fstype`/`data` may be empty (passed as NULL).
pub fn mount(
    source: &str,
    target: &str,
    fstype: &str,
    flags: libc::c_ulong,
    data: &str,
) -> io::Result<()> {
    let (s, t, f, d) = (cstr(source)?, cstr(target)?, cstr(fstype)?, cstr(data)?);
    let opt = |c: &CString, empty: bool| if empty { std::ptr::null() } else { c.as_ptr() };
    // SAFETY: all pointers are NUL-terminated strings that outlive the call, or NULL.
    check(unsafe {
        libc::mount(
            opt(&s, source.is_empty()),
            t.as_ptr(),
            opt(&f, fstype.is_empty()),
            flags,
            opt(&d, data.is_empty()).cast(),
        )
    })
    .map(drop)
}

/// chroot(2).
pub fn chroot(path: &str) -> io::Result<()> {
    let p = cstr(path)?;
    // SAFETY: `p` is a valid C string for the duration of the call.
    check(unsafe { libc::chroot(p.as_ptr()) }).map(drop)
}

/// finit_module(2) with no parameters.
pub fn finit_module(fd: &OwnedFd) -> io::Result<()> {
    let params = c"";
    // SAFETY: the fd is open and `params` is a static C string; no pointers are retained.
    let r = unsafe { libc::syscall(libc::SYS_finit_module, fd.as_raw_fd(), params.as_ptr(), 0) };
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// sync(2).
pub fn sync() {
    // SAFETY: no arguments, cannot fail.
    unsafe { libc::sync() }
}

/// reboot(2) with `RB_POWER_OFF`; returns only on failure.
pub fn power_off() -> io::Error {
    // SAFETY: no pointers; the call does not return on success.
    unsafe { libc::reboot(libc::RB_POWER_OFF) };
    io::Error::last_os_error()
}

/// reboot(2) with `RB_AUTOBOOT` (with QEMU's -no-reboot this exits QEMU).
pub fn reboot() -> io::Error {
    // SAFETY: no pointers; the call does not return on success.
    unsafe { libc::reboot(libc::RB_AUTOBOOT) };
    io::Error::last_os_error()
}

/// sethostname(2).
pub fn sethostname(name: &str) -> io::Result<()> {
    // SAFETY: the pointer and length describe `name`'s bytes.
    check(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) }).map(drop)
}

/// unshare(2).
pub fn unshare(flags: c_int) -> io::Result<()> {
    // SAFETY: no pointers.
    check(unsafe { libc::unshare(flags) }).map(drop)
}

/// setns(2) into the namespace `fd` refers to (`nstype` 0: any).
pub fn setns(fd: &OwnedFd, nstype: c_int) -> io::Result<()> {
    // SAFETY: no pointers; `fd` is a valid open descriptor.
    check(unsafe { libc::setns(fd.as_raw_fd(), nstype) }).map(drop)
}

/// fork(2): `Ok(0)` in the child, the child's pid in the parent.
pub fn fork() -> io::Result<i32> {
    // SAFETY: the init is single-threaded, so the child inherits a consistent address space.
    check(unsafe { libc::fork() })
}

/// execve(2); returns only on failure.
pub fn execve(path: &str, argv: &[String], env: &[String]) -> io::Error {
    let to_c = |v: &[String]| {
        v.iter()
            .map(|s| cstr(s))
            .collect::<io::Result<Vec<CString>>>()
    };
    let (p, a, e) = match (cstr(path), to_c(argv), to_c(env)) {
        (Ok(p), Ok(a), Ok(e)) => (p, a, e),
        _ => return io::Error::from(io::ErrorKind::InvalidInput),
    };
    let mut ap: Vec<*const libc::c_char> = a.iter().map(|c| c.as_ptr()).collect();
    ap.push(std::ptr::null());
    let mut ep: Vec<*const libc::c_char> = e.iter().map(|c| c.as_ptr()).collect();
    ep.push(std::ptr::null());
    // SAFETY: NULL-terminated arrays of valid C strings, all alive across the call.
    unsafe { libc::execve(p.as_ptr(), ap.as_ptr(), ep.as_ptr()) };
    io::Error::last_os_error()
}

/// _exit(2): leaves without running destructors or flushing (safe after fork).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: terminates the process; no invariants to uphold.
    unsafe { libc::_exit(code) }
}

/// A reaped child.
#[derive(Debug, Clone, Copy)]
pub struct Reaped {
    /// Its pid.
    pub pid: i32,
    /// Exit code if it exited.
    pub exited: Option<i32>,
    /// Signal if it was killed.
    pub signaled: Option<i32>,
}

/// waitpid(-1, WNOHANG): `None` when no child has changed state (or there are none).
pub fn reap_any() -> Option<Reaped> {
    let mut status: c_int = 0;
    // SAFETY: `status` is a valid out-pointer.
    let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
    if pid <= 0 {
        return None;
    }
    let exited = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    let signaled = libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status));
    Some(Reaped {
        pid,
        exited,
        signaled,
    })
}

/// kill(2).
pub fn kill(pid: i32, sig: i32) -> io::Result<()> {
    // SAFETY: no pointers.
    check(unsafe { libc::kill(pid, sig) }).map(drop)
}

fn sigset(sigs: &[i32]) -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it before use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t; signal numbers are in range (callers pass libc consts).
    unsafe {
        libc::sigemptyset(&mut set);
        for &s in sigs {
            libc::sigaddset(&mut set, s);
        }
    }
    set
}

/// Blocks `sigs` and returns a signalfd that reads them.
pub fn signalfd(sigs: &[i32]) -> io::Result<OwnedFd> {
    let set = sigset(sigs);
    // SAFETY: `set` is initialised; old mask not requested.
    check(unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) })?;
    // SAFETY: `set` is initialised; -1 asks for a new fd.
    let fd = check(unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC) })?;
    // SAFETY: `fd` was just returned by signalfd and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Unblocks every signal and resets the forwarded ones to their default action (after fork).
pub fn reset_signals(sigs: &[i32]) {
    let set = sigset(&[]);
    // SAFETY: `set` is initialised (empty); installing SIG_DFL has no memory effects.
    unsafe {
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        for &s in sigs {
            libc::signal(s, libc::SIG_DFL);
        }
    }
}

/// Reads one signal number from a signalfd (`None` on a short or failed read).
pub fn read_signal(fd: &OwnedFd) -> Option<i32> {
    // SAFETY: signalfd_siginfo is plain data; zero is a valid bit pattern.
    let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::signalfd_siginfo>();
    // SAFETY: `info` is a writable buffer of exactly `size` bytes.
    let n = unsafe { libc::read(fd.as_raw_fd(), (&raw mut info).cast(), size) };
    (n == size as isize).then_some(info.ssi_signo as i32)
}

/// poll(2) for readability on `fds`; returns which are readable (or hung up).
pub fn poll_readable(fds: &[RawFd], timeout_ms: c_int) -> io::Result<Vec<bool>> {
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: `p` is a valid array of `p.len()` pollfd structs.
    let r = unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, timeout_ms) };
    if r == -1 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(vec![false; fds.len()]);
        }
        return Err(e);
    }
    Ok(p.iter().map(|x| x.revents != 0).collect())
}

/// dup2(2).
pub fn dup2(from: RawFd, to: RawFd) -> io::Result<()> {
    // SAFETY: no pointers; closing `to` is intended.
    check(unsafe { libc::dup2(from, to) }).map(drop)
}

/// setsid(2).
pub fn setsid() -> io::Result<()> {
    // SAFETY: no pointers.
    check(unsafe { libc::setsid() }).map(drop)
}

/// setgroups + setgid + setuid, in that order (root drops last).
pub fn set_identity(uid: u32, gid: u32, groups: &[u32]) -> io::Result<()> {
    // SAFETY: the pointer and length describe `groups`.
    check(unsafe { libc::setgroups(groups.len(), groups.as_ptr()) })?;
    // SAFETY: no pointers.
    check(unsafe { libc::setgid(gid) })?;
    // SAFETY: no pointers.
    check(unsafe { libc::setuid(uid) }).map(drop)
}

/// setrlimit(2); `resource` is an RLIMIT_* number, `u64::MAX` means unlimited.
pub fn setrlimit(resource: u32, soft: u64, hard: u64) -> io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: `lim` is a valid rlimit; resource is range-checked by the kernel.
    check(unsafe { libc::setrlimit(resource as _, &lim) }).map(drop)
}

/// An AF_INET datagram socket for interface ioctls.
pub fn inet_socket() -> io::Result<OwnedFd> {
    // SAFETY: no pointers.
    let fd =
        check(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: `fd` is new and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn ifreq(name: &str) -> io::Result<libc::ifreq> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    // SAFETY: ifreq is plain data; zero is a valid bit pattern.
    let mut r: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in r.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    Ok(r)
}

fn sockaddr_in(addr: [u8; 4]) -> libc::sockaddr {
    // SAFETY: sockaddr is plain data; zero is a valid bit pattern.
    let mut sa: libc::sockaddr = unsafe { std::mem::zeroed() };
    sa.sa_family = libc::AF_INET as libc::sa_family_t;
    // sockaddr_in layout inside sa_data: port (2 bytes, zero here), then the address.
    for (d, s) in sa.sa_data[2..6].iter_mut().zip(addr) {
        *d = s as libc::c_char;
    }
    sa
}

/// Sets the IPv4 address and netmask of an interface (SIOCSIFADDR, SIOCSIFNETMASK).
pub fn set_if_addr(sock: &OwnedFd, name: &str, addr: [u8; 4], mask: [u8; 4]) -> io::Result<()> {
    let mut r = ifreq(name)?;
    r.ifr_ifru.ifru_addr = sockaddr_in(addr);
    // SAFETY: `r` is a valid ifreq for this request.
    check(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFADDR, &mut r) })?;
    r.ifr_ifru.ifru_netmask = sockaddr_in(mask);
    // SAFETY: as above.
    check(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFNETMASK, &mut r) }).map(drop)
}

/// Sets IFF_UP (SIOCGIFFLAGS then SIOCSIFFLAGS).
pub fn set_if_up(sock: &OwnedFd, name: &str) -> io::Result<()> {
    let mut r = ifreq(name)?;
    // SAFETY: `r` is a valid ifreq; the kernel fills ifru_flags.
    check(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut r) })?;
    // SAFETY: reading the union member the kernel just wrote.
    let flags = unsafe { r.ifr_ifru.ifru_flags };
    r.ifr_ifru.ifru_flags =
        flags | libc::IFF_UP as libc::c_short | libc::IFF_RUNNING as libc::c_short;
    // SAFETY: `r` is a valid ifreq for this request.
    check(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &mut r) }).map(drop)
}

/// Adds a default route via `gw` (SIOCADDRT).
pub fn add_default_route(sock: &OwnedFd, gw: [u8; 4]) -> io::Result<()> {
    // SAFETY: rtentry is plain data; zero is a valid bit pattern.
    let mut rt: libc::rtentry = unsafe { std::mem::zeroed() };
    rt.rt_dst = sockaddr_in([0; 4]);
    rt.rt_genmask = sockaddr_in([0; 4]);
    rt.rt_gateway = sockaddr_in(gw);
    rt.rt_flags = libc::RTF_UP | libc::RTF_GATEWAY;
    // SAFETY: `rt` is a valid rtentry for SIOCADDRT.
    check(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCADDRT, &mut rt) }).map(drop)
}

/// write(2) until done, on a raw fd we do not own.
pub fn write_all(fd: RawFd, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        // SAFETY: the pointer and length describe `buf`.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        buf = &buf[n as usize..];
    }
    Ok(())
}

/// A new pseudo-terminal pair from `/dev/ptmx` (devpts is mounted on /dev/pts): the master,
/// and the slave opened without becoming our controlling terminal. `winsize`: (rows, cols).
pub fn open_pty(winsize: Option<(u16, u16)>) -> io::Result<(OwnedFd, OwnedFd)> {
    let ptmx = cstr("/dev/ptmx")?;
    // SAFETY: `ptmx` is a valid C string; the returned fd is owned by us.
    let master = unsafe {
        OwnedFd::from_raw_fd(check(libc::open(
            ptmx.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        ))?)
    };
    let unlock: c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int through the pointer.
    check(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) })?;
    let mut n: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes one unsigned int through the pointer.
    check(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut n) })?;
    let path = cstr(&format!("/dev/pts/{n}"))?;
    // SAFETY: `path` is a valid C string; the returned fd is owned by us.
    let slave = unsafe {
        OwnedFd::from_raw_fd(check(libc::open(
            path.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        ))?)
    };
    if let Some((rows, cols)) = winsize {
        set_winsize(master.as_raw_fd(), rows, cols)?;
    }
    Ok((master, slave))
}

/// Sets a terminal's size (TIOCSWINSZ; the kernel signals SIGWINCH to its foreground job).
pub fn set_winsize(fd: RawFd, rows: u16, cols: u16) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one `winsize` through the pointer.
    check(unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) }).map(drop)
}

/// Makes the terminal on `fd` the controlling terminal of this (new) session.
pub fn set_controlling_tty(fd: RawFd) -> io::Result<()> {
    // SAFETY: TIOCSCTTY takes an int argument (0: do not steal), no pointers.
    check(unsafe { libc::ioctl(fd, libc::TIOCSCTTY, 0) }).map(drop)
}

/// A non-blocking NETLINK_KOBJECT_UEVENT socket bound to the kernel's broadcast group: it
/// becomes readable whenever a device is added, changed or removed.
pub fn uevent_socket() -> io::Result<OwnedFd> {
    // SAFETY: no pointers.
    let fd = check(unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            libc::NETLINK_KOBJECT_UEVENT,
        )
    })?;
    // SAFETY: `fd` is new and owned by nobody else.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_nl is plain data; zero is a valid bit pattern.
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    addr.nl_groups = 1; // the kernel's uevent multicast group
    let len = std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
    // SAFETY: `addr` is a valid sockaddr_nl of `len` bytes for the duration of the call.
    check(unsafe { libc::bind(sock.as_raw_fd(), (&raw const addr).cast(), len) })?;
    Ok(sock)
}

/// Reads and discards what is queued on a non-blocking socket.
pub fn drain(sock: &OwnedFd) {
    let mut buf = [0u8; 8192];
    loop {
        // SAFETY: the pointer and length describe `buf`.
        let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        // ENOBUFS: the queue overran and events were lost (callers probe again anyway);
        // EAGAIN or anything else: nothing more to read
        let overrun = n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOBUFS);
        if n <= 0 && !overrun {
            return;
        }
    }
}

/// syncfs(2) on the filesystem holding `path`.
pub fn syncfs(path: &str) -> io::Result<()> {
    let f = std::fs::File::open(path)?;
    // SAFETY: no pointers; `f` is an open descriptor.
    check(unsafe { libc::syncfs(f.as_raw_fd()) }).map(drop)
}

/// posix_fadvise(POSIX_FADV_WILLNEED) on `len` bytes at `offset`: the kernel starts reading
/// them into the page cache and returns without waiting for the reads.
pub fn will_need(f: &std::fs::File, offset: u64, len: u64) -> io::Result<()> {
    let (off, len) = (
        libc::off_t::try_from(offset).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
        libc::off_t::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
    );
    // SAFETY: no pointers; `f` is an open descriptor.
    match unsafe { libc::posix_fadvise(f.as_raw_fd(), off, len, libc::POSIX_FADV_WILLNEED) } {
        0 => Ok(()),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}
