//! The launcher: prepare a run directory, start virtiofsd and QEMU, relay, wait, clean up.

use super::channels::Channels;
use super::qemu::{self, RunPaths};
use super::{Accel, KernelLog, LaunchError, RunOutcome, VmSpec, sys};
use crate::guest::initramfs::override_segment;
use oci2vm_guest::cmdline::MAX_INLINE_CONFIG;
use oci2vm_guest::{CmdlineArgs, ConfigSource, Control, Event, Overlay};
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A private directory for sockets and logs, removed on drop (no state left behind).
struct RunDir(PathBuf);

impl RunDir {
    fn new() -> Result<Self, LaunchError> {
        let base = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|p| p.is_dir())
            .unwrap_or_else(std::env::temp_dir);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = base.join(format!("oci2vm-run-{}-{nanos:x}", std::process::id()));
        fs::create_dir(&dir).map_err(|e| LaunchError::Io {
            path: dir.clone(),
            source: e,
        })?;
        Ok(RunDir(dir))
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Children killed on drop (virtiofsd, or QEMU on an error path).
struct Reaper(Vec<Child>);

impl Drop for Reaper {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let v: Vec<&str> = text.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> LaunchError + '_ {
    move |e| LaunchError::Io {
        path: path.to_path_buf(),
        source: e,
    }
}

/// Set once QEMU failed to run a KVM guest in this process (KVM_CREATE_VM can succeed on
/// hosts where running a vCPU then fails, e.g. nested virtualisation without MSR support).
static KVM_FAILED: AtomicBool = AtomicBool::new(false);

/// The stamp recording that KVM failed on this host boot (so later runs skip the attempt).
fn kvm_stamp(spec: &VmSpec) -> Option<(PathBuf, String)> {
    let dir = spec.state_dir.as_ref()?;
    let boot = fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    Some((dir.join("kvm-unusable"), boot.trim().to_string()))
}

fn kvm_known_broken(spec: &VmSpec) -> bool {
    KVM_FAILED.load(Ordering::Relaxed)
        || kvm_stamp(spec)
            .is_some_and(|(p, boot)| fs::read_to_string(p).is_ok_and(|s| s.trim() == boot))
}

fn remember_kvm_broken(spec: &VmSpec) {
    KVM_FAILED.store(true, Ordering::Relaxed);
    if let Some((p, boot)) = kvm_stamp(spec) {
        let _ = p.parent().map(fs::create_dir_all);
        let _ = fs::write(p, boot);
    }
}

fn choose_accel(spec: &VmSpec) -> Accel {
    match spec.accel {
        Some(a) => a,
        None if !kvm_known_broken(spec) && sys::kvm_usable() => Accel::Kvm,
        None => {
            eprintln!("oci2vm: KVM is not usable here; using TCG emulation (slower)");
            Accel::Tcg
        }
    }
}

/// A writer shared between attempts (a KVM attempt that fails falls back to TCG).
struct SharedWrite(Arc<Mutex<Box<dyn std::io::Write + Send>>>);

impl std::io::Write for SharedWrite {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .write(b)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .flush()
    }
}

struct SharedRead(Arc<Mutex<Box<dyn std::io::Read + Send>>>);

impl std::io::Read for SharedRead {
    fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .read(b)
    }
}

fn start_virtiofsd(
    spec: &VmSpec,
    dir: &Path,
    reaper: &mut Reaper,
) -> Result<Vec<PathBuf>, LaunchError> {
    if spec.volumes.is_empty() {
        return Ok(Vec::new());
    }
    let bin = spec.virtiofsd.clone().ok_or(LaunchError::NoVirtiofsd)?;
    let mut socks = Vec::new();
    for (i, v) in spec.volumes.iter().enumerate() {
        let sock = dir.join(format!("fs{i}.sock"));
        let log = dir.join(format!("virtiofsd{i}.log"));
        let logf = fs::File::create(&log).map_err(io(&log))?;
        let mut cmd = Command::new(&bin);
        sys::die_with_parent(&mut cmd);
        let child = cmd
            .arg(format!("--socket-path={}", sock.display()))
            .arg("-o")
            .arg(format!("source={}", v.host.display()))
            .args(["-o", "cache=none"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(logf)
            .process_group(0)
            .spawn()
            .map_err(|e| LaunchError::Spawn {
                program: bin.display().to_string(),
                source: e,
            })?;
        reaper.0.push(child);
        let start = Instant::now();
        while !sock.exists() {
            if start.elapsed() > Duration::from_secs(5) {
                return Err(LaunchError::Virtiofsd {
                    path: v.host.clone(),
                    log: tail(&log, 5),
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        socks.push(sock);
    }
    Ok(socks)
}

/// Where the workload's streams go.
pub struct RunIo {
    /// Receives the workload's stdout.
    pub stdout: Box<dyn std::io::Write + Send>,
    /// Receives the workload's stderr.
    pub stderr: Box<dyn std::io::Write + Send>,
    /// Fed to the workload's stdin when `spec.stdin` is set.
    pub stdin: Box<dyn std::io::Read + Send>,
}

impl std::fmt::Debug for RunIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RunIo")
    }
}

impl RunIo {
    /// This process's stdin, stdout and stderr.
    pub fn inherit() -> Self {
        RunIo {
            stdout: Box::new(std::io::stdout()),
            stderr: Box::new(std::io::stderr()),
            stdin: Box::new(std::io::stdin()),
        }
    }
}

/// Boots the VM described by `spec` with this process's stdio; returns the workload's status.
pub fn run(spec: &VmSpec) -> Result<RunOutcome, LaunchError> {
    run_with(spec, RunIo::inherit())
}

/// Boots the VM described by `spec` with the given streams; returns the workload's status.
/// With automatic acceleration, a KVM attempt that dies before the guest is up is retried
/// once with TCG.
pub fn run_with(spec: &VmSpec, rio: RunIo) -> Result<RunOutcome, LaunchError> {
    let out = Arc::new(Mutex::new(rio.stdout));
    let err = Arc::new(Mutex::new(rio.stderr));
    let inp = Arc::new(Mutex::new(rio.stdin));
    let shared = || RunIo {
        stdout: Box::new(SharedWrite(Arc::clone(&out))),
        stderr: Box::new(SharedWrite(Arc::clone(&err))),
        stdin: Box::new(SharedRead(Arc::clone(&inp))),
    };
    let accel = choose_accel(spec);
    match attempt(spec, accel, shared()) {
        Err(Attempt::KvmBroken(_)) if spec.accel.is_none() => {
            remember_kvm_broken(spec);
            let accel = choose_accel(spec);
            attempt(spec, accel, shared()).map_err(Attempt::into_error)
        }
        r => r.map_err(Attempt::into_error),
    }
}

/// Why an attempt failed: KVM broken (retryable with TCG) or a real error.
enum Attempt {
    KvmBroken(LaunchError),
    Failed(LaunchError),
}

impl Attempt {
    fn into_error(self) -> LaunchError {
        match self {
            Attempt::KvmBroken(e) | Attempt::Failed(e) => e,
        }
    }
}

impl From<LaunchError> for Attempt {
    fn from(e: LaunchError) -> Self {
        Attempt::Failed(e)
    }
}

/// `health: healthy|unhealthy (detail)` on stderr for each status change, with `--health`.
fn report_health(spec: &VmSpec, events: &[(Instant, Event)]) {
    if !spec.report_health {
        return;
    }
    for (_, e) in events {
        if let Event::Health { healthy, detail } = e {
            let state = if *healthy { "healthy" } else { "unhealthy" };
            eprintln!("health: {state} ({detail})");
        }
    }
}

fn attempt(spec: &VmSpec, accel: Accel, rio: RunIo) -> Result<RunOutcome, Attempt> {
    let dir = RunDir::new()?;
    let mut reaper = Reaper(Vec::new());

    // Config override: on the command line when short, else appended to a copy of the initramfs.
    // A copy-on-write root is discarded at exit: the init need not flush it before power-off.
    let overlay = if spec.root_snapshot {
        Overlay::new().ephemeral(true).append_to(&spec.overlay)
    } else {
        spec.overlay.clone()
    };
    let mut initramfs = spec.initramfs.clone();
    let mut args = CmdlineArgs {
        debug: spec.debug,
        ..Default::default()
    };
    if !overlay.is_empty() {
        if oci2vm_guest::codec::b64_encode(overlay.as_bytes()).len() <= MAX_INLINE_CONFIG {
            args.config = Some(ConfigSource::Inline(overlay.clone()));
        } else {
            let copy = dir.0.join("initramfs.cpio");
            let mut bytes = fs::read(&spec.initramfs).map_err(io(&spec.initramfs))?;
            bytes.extend_from_slice(&override_segment(&overlay).map_err(|e| LaunchError::Io {
                path: copy.clone(),
                source: std::io::Error::other(e),
            })?);
            fs::write(&copy, bytes).map_err(io(&copy))?;
            initramfs = copy;
            args.config = Some(ConfigSource::File(oci2vm_guest::OVERRIDE_PATH.into()));
        }
    }
    let cmdline = qemu::kernel_cmdline(spec, &args, qemu::host_tsc_khz());

    let kernel_log = match &spec.kernel_log {
        KernelLog::Hidden => dir.0.join("kernel.log"),
        KernelLog::File(p) => p.clone(),
        KernelLog::Stderr => PathBuf::from("/dev/stderr"),
    };
    let paths = RunPaths {
        kernel_log: kernel_log.clone(),
        initramfs,
        ctl: dir.0.join("ctl.sock"),
        stdout: dir.0.join("stdout.sock"),
        stderr: dir.0.join("stderr.sock"),
        stdin: spec.stdin.then(|| dir.0.join("stdin.sock")),
        virtiofs: start_virtiofsd(spec, &dir.0, &mut reaper)?,
    };
    let channels = Channels::start(
        &paths.ctl,
        (&paths.stdout, rio.stdout),
        (&paths.stderr, rio.stderr),
        paths.stdin.as_deref().map(|p| (p, rio.stdin)),
    )
    .map_err(io(&dir.0))?;

    let qemu_log = dir.0.join("qemu.log");
    let qlog = fs::File::create(&qemu_log).map_err(io(&qemu_log))?;
    if spec.catch_signals {
        sys::catch_stop_signals();
    }
    if spec.tty {
        sys::catch_resize();
    }
    let started = Instant::now();
    let mut qemu_cmd = Command::new(&spec.qemu);
    sys::die_with_parent(&mut qemu_cmd);
    let mut qemu = qemu_cmd
        .args(qemu::args(spec, &paths, accel, &cmdline))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(qlog)
        .process_group(0) // Ctrl-C reaches us, not QEMU: we stop the guest cleanly.
        .spawn()
        .map_err(|e| LaunchError::Spawn {
            program: spec.qemu.display().to_string(),
            source: e,
        })?;
    // Readable the moment QEMU exits, so the loop below wakes at once instead of on its tick.
    let exited = sys::pidfd_open(qemu.id());

    let mut events: Vec<(Instant, Event)> = Vec::new();
    let mut stop_sent: Option<Instant> = None;
    let mut poweroff_sent: Option<Instant> = None;
    let mut timed_out = false;
    let exit = loop {
        match qemu.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => return Err(io(Path::new("qemu"))(e).into()),
        }
        let new = channels.poll_events();
        report_health(spec, &new);
        events.extend(new);
        if spec.tty
            && sys::take_resize()
            && let Some((rows, cols)) = super::terminal::size()
        {
            channels.send(Control::Winsize(rows, cols));
        }
        if let Some(_sig) = sys::take_signal() {
            if stop_sent.is_none() {
                channels.send(Control::Signal(spec.stop_signal));
                stop_sent = Some(Instant::now());
            } else if poweroff_sent.is_none() {
                channels.send(Control::Poweroff);
                poweroff_sent = Some(Instant::now());
            }
        }
        if let Some(t) = stop_sent
            && poweroff_sent.is_none()
            && t.elapsed() > spec.stop_timeout
        {
            channels.send(Control::Poweroff);
            poweroff_sent = Some(Instant::now());
        }
        let overdue = spec.timeout.is_some_and(|t| started.elapsed() > t);
        let stuck = poweroff_sent.is_some_and(|t| t.elapsed() > Duration::from_secs(5));
        if overdue || stuck {
            timed_out = overdue;
            let _ = qemu.kill();
        }
        match &exited {
            Some(fd) => {
                sys::wait_readable(fd, Duration::from_millis(5));
            }
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    };
    let have_final = events
        .iter()
        .any(|(_, e)| matches!(e, Event::Exit(_) | Event::Error { .. }));
    let rest = channels.finish(have_final);
    report_health(spec, &rest);
    events.extend(rest);
    drop(reaper);

    let boot_to_exec = events
        .iter()
        .find(|(_, e)| *e == Event::Exec)
        .map(|(t, _)| t.saturating_duration_since(started));
    for (_, e) in &events {
        match e {
            Event::Exit(status) => {
                return Ok(RunOutcome {
                    status: *status,
                    boot_to_exec,
                    accel,
                });
            }
            Event::Error { step, message } => {
                return Err(LaunchError::Guest {
                    step: step.name(),
                    message: message.clone(),
                }
                .into());
            }
            _ => {}
        }
    }
    if timed_out {
        return Err(LaunchError::Timeout {
            secs: spec.timeout.map_or(0, |t| t.as_secs()),
        }
        .into());
    }
    // No control message: look for the init's error line on the kernel console.
    let log = fs::read_to_string(&kernel_log).unwrap_or_default();
    if let Some(Event::Error { step, message }) = log
        .lines()
        .filter_map(|l| {
            l.find(oci2vm_guest::protocol::ERROR_PREFIX)
                .map(|i| &l[i..])
        })
        .find_map(Event::parse)
    {
        return Err(LaunchError::Guest {
            step: step.name(),
            message,
        }
        .into());
    }
    if !exit.success() {
        let e = LaunchError::Qemu {
            status: exit.to_string(),
            stderr: tail(&qemu_log, 5),
        };
        return Err(if accel == Accel::Kvm && events.is_empty() {
            Attempt::KvmBroken(e)
        } else {
            Attempt::Failed(e)
        });
    }
    Err(LaunchError::NoStatus {
        log: tail(&kernel_log, 20),
    }
    .into())
}
