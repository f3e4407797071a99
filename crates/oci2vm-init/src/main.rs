//! oci2vm-init: PID 1 of an oci2vm guest. The boot sequence reads top to bottom.
//!
//! Every step that can fail names itself ([`Step`]) on the kernel console and on the control
//! port, then powers the VM off; the host turns that into a "guest failed" error. The contract
//! with the host (paths, kernel command line, ports, messages) is `oci2vm-guest`, documented
//! in `docs/guest-contract.md`.

mod console;
mod early;
mod exec;
mod health;
mod net;
mod root;
mod supervise;
mod sys;
mod tty;
mod users;
mod workload;

use console::{debug, fail, send, step};
use oci2vm_guest::{CmdlineArgs, ConfigSource, Event, GuestConfig, Step};
use std::fs;
use std::time::Duration;

/// How long devices may take to appear after their driver loads.
const DEVICE_TIMEOUT: Duration = Duration::from_secs(10);

fn main() {
    // 1. API filesystems of the initramfs.
    early::mount_all(&early::INITRAMFS_MOUNTS).unwrap_or_else(|e| fail(Step::EarlyMounts, e));

    // 2. Kernel command line and the config override it points to.
    let cmdline = fs::read_to_string("/proc/cmdline").unwrap_or_else(|e| fail(Step::Cmdline, e));
    let args = CmdlineArgs::parse(&cmdline).unwrap_or_else(|e| fail(Step::Cmdline, e));
    console::set_debug(args.debug);
    let overlay = match &args.config {
        None => None,
        Some(ConfigSource::Inline(text)) => Some(text.clone()),
        Some(ConfigSource::File(p)) => Some(
            fs::read_to_string(p).unwrap_or_else(|e| fail(Step::Cmdline, format_args!("{p}: {e}"))),
        ),
    };
    let mut boot = GuestConfig::default();
    if let Some(doc) = &overlay {
        boot.apply(doc).unwrap_or_else(|e| fail(Step::Cmdline, e));
    }
    if let Some(dev) = &args.root {
        boot.root.device = dev.clone();
    }
    console::set_ephemeral_root(boot.ephemeral);

    step(Step::Modules);
    // 3. Kernel modules shipped in the initramfs, dependencies first: the core ones now, the
    //    PCI transport when there is a PCI bus, virtio-rng when there is an entropy device;
    //    network and virtiofs ones are opened now (the initramfs is gone after switch_root)
    //    and loaded once the config says they are needed. Device waits below wake on uevents.
    let devices = early::DeviceWatch::default();
    let dir = oci2vm_guest::MODULES_DIR;
    let modules = early::Modules::read(oci2vm_guest::MODULES_ORDER)
        .unwrap_or_else(|e| fail(Step::Modules, e));
    let open = |group: &str| {
        modules
            .open(dir, group)
            .unwrap_or_else(|e| fail(Step::Modules, e))
    };
    let mut n = early::load(open("core")).unwrap_or_else(|e| fail(Step::Modules, e));
    if early::has_pci() {
        n += early::load(open("pci")).unwrap_or_else(|e| fail(Step::Modules, e));
    }
    if early::has_virtio_device(early::VIRTIO_ID_RNG) {
        n += early::load(open("rng")).unwrap_or_else(|e| fail(Step::Modules, e));
    }
    let (net_modules, fs_modules) = (open("net"), open("fs"));
    debug(&format!("loaded {n} modules"));

    step(Step::Channels);
    // 4. The virtio-serial ports: stdout, stderr and control; or, booted by another VMM
    //    (`oci2vm.console=1`), the kernel console for both outputs and no control channel.
    let port = |name: &str| {
        let dev = devices
            .wait_for(DEVICE_TIMEOUT, || early::find_port(name))
            .unwrap_or_else(|| fail(Step::Channels, format_args!("no virtio port {name}")));
        early::open_port(&dev).unwrap_or_else(|e| fail(Step::Channels, format_args!("{dev}: {e}")))
    };
    let (control, stdout, stderr) = if args.console {
        let dup = || console::console_file().unwrap_or_else(|e| fail(Step::Channels, e));
        (None, dup(), dup())
    } else {
        let control = port(oci2vm_guest::PORT_CONTROL);
        console::set_control(&control);
        send(&Event::Ready);
        let stdout = port(oci2vm_guest::PORT_STDOUT);
        let stderr = port(oci2vm_guest::PORT_STDERR);
        debug("ports open");
        (Some(control), stdout, stderr)
    };

    // 5-7. The root disk: wait for it, mount it, switch into it.
    step(Step::FindRoot);
    let dev = boot.root.device.clone();
    devices
        .wait_for(DEVICE_TIMEOUT, || root::is_block(&dev).then_some(()))
        .unwrap_or_else(|| fail(Step::FindRoot, format_args!("{dev} did not appear")));
    step(Step::MountRoot);
    root::mount_root(&boot.root)
        .unwrap_or_else(|e| fail(Step::MountRoot, format_args!("{dev}: {e}")));
    step(Step::SwitchRoot);
    root::switch_root().unwrap_or_else(|e| fail(Step::SwitchRoot, e));

    step(Step::Config);
    // 8. The image's runtime config, then the host's overrides.
    let mut cfg = match fs::read_to_string(oci2vm_guest::CONFIG_PATH) {
        Ok(text) => GuestConfig::parse(&text).unwrap_or_else(|e| fail(Step::Config, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => GuestConfig::default(),
        Err(e) => fail(
            Step::Config,
            format_args!("{}: {e}", oci2vm_guest::CONFIG_PATH),
        ),
    };
    if let Some(doc) = &overlay {
        cfg.apply(doc).unwrap_or_else(|e| fail(Step::Config, e));
    }
    cfg.root = boot.root;
    if cfg.argv.is_empty() {
        fail(Step::Config, "no command specified");
    }
    // the workload's binary loads from the disk while the steps below run
    workload::prefetch(&cfg.argv[0], &cfg.env);

    step(Step::Identity);
    // 9. /dev/pts, /dev/shm, writable /run and /tmp; hostname, /etc/hosts, /etc/resolv.conf.
    early::mount_all(&early::ROOT_MOUNTS).unwrap_or_else(|e| fail(Step::Identity, e));
    for (dir, mode) in [("/run", "mode=0755"), ("/tmp", "mode=1777")] {
        early::tmpfs_if_empty(dir, mode)
            .unwrap_or_else(|e| fail(Step::Identity, format_args!("{dir}: {e}")));
    }
    root::identity(&cfg).unwrap_or_else(|e| fail(Step::Identity, e));

    step(Step::Network);
    // 10. lo, and eth0 when the host gave an address.
    if cfg.network != oci2vm_guest::Network::None {
        early::load(net_modules).unwrap_or_else(|e| fail(Step::Network, e));
    }
    net::configure(&cfg.network, || {
        devices
            .wait_for(DEVICE_TIMEOUT, || fs::metadata("/sys/class/net/eth0").ok())
            .is_some()
    })
    .unwrap_or_else(|e| fail(Step::Network, e));

    step(Step::Volumes);
    // 11. Shared directories.
    if !cfg.mounts.is_empty() {
        early::load(fs_modules).unwrap_or_else(|e| fail(Step::Volumes, e));
    }
    root::volumes(&cfg).unwrap_or_else(|e| fail(Step::Volumes, e));
    console::set_volumes(
        cfg.mounts
            .iter()
            .filter(|m| !m.readonly)
            .map(|m| m.path.clone())
            .collect(),
    );

    step(Step::User);
    // 12. Who the workload runs as, from the image's /etc/passwd and /etc/group.
    let passwd = users::parse_passwd(&fs::read_to_string("/etc/passwd").unwrap_or_default());
    let groups = users::parse_group(&fs::read_to_string("/etc/group").unwrap_or_default());
    let identity =
        users::resolve(&cfg.user, &passwd, &groups).unwrap_or_else(|e| fail(Step::User, e));

    step(Step::Spawn);
    // 13. The workload: PID 1 of its own namespace, stdio on the ports.
    let workdir = if cfg.workdir.is_empty() {
        "/".to_string()
    } else {
        cfg.workdir.clone()
    };
    fs::create_dir_all(&workdir)
        .unwrap_or_else(|e| fail(Step::Spawn, format_args!("workdir {workdir}: {e}")));
    let stdin = if cfg.stdin && !args.console {
        port(oci2vm_guest::PORT_STDIN)
    } else {
        fs::File::open("/dev/null")
            .unwrap_or_else(|e| fail(Step::Spawn, format_args!("/dev/null: {e}")))
    };
    // no more devices to wait for: the kernel stops building uevent messages for us
    drop(devices);
    // -t: one pseudo-terminal for all three (stderr joins stdout, as with docker run -t)
    let pty = (cfg.tty && !args.console).then(|| {
        sys::open_pty(cfg.winsize).unwrap_or_else(|e| fail(Step::Spawn, format_args!("pty: {e}")))
    });
    use std::os::fd::AsRawFd;
    let mut env = exec::environment(&cfg.env, &cfg.hostname, &identity.home);
    if pty.is_some() && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    let mut checker = cfg
        .health
        .clone()
        .map(|h| health::Checker::new(h, env.clone(), workdir.clone(), identity.clone()));
    let plan = workload::Plan {
        env,
        argv: cfg.argv.clone(),
        workdir,
        identity,
        rlimits: workload::rlimit_numbers(&cfg.rlimits),
        init: cfg.init,
        stdio: match &pty {
            Some((_, slave)) => [slave.as_raw_fd(); 3],
            None => [stdin.as_raw_fd(), stdout.as_raw_fd(), stderr.as_raw_fd()],
        },
        tty: pty.is_some(),
    };
    let signals =
        sys::signalfd(&workload::handled_signals()).unwrap_or_else(|e| fail(Step::Spawn, e));
    send(&Event::Exec);
    let pid = workload::spawn(&plan).unwrap_or_else(|e| fail(Step::Spawn, e));
    debug(&format!("workload started, pid {pid}"));
    let mut relay = pty.map(|(master, slave)| {
        drop(slave);
        let input = (cfg.stdin && !args.console).then_some(stdin);
        tty::Relay::new(fs::File::from(master), stdout, input)
    });
    drop(stderr);

    step(Step::Supervise);
    // 14. Forward signals, reap, wait for the workload's status and report it.
    if let Some(c) = checker.as_mut() {
        c.set_workload(pid);
    }
    let status = supervise::supervise(
        pid,
        &signals,
        control.as_ref(),
        checker.as_mut(),
        relay.as_mut(),
    )
    .unwrap_or_else(|e| fail(Step::Supervise, e));
    debug(&format!("workload exited, status {status}"));
    send(&Event::Exit(status));
    if args.console {
        console::report(&Event::Exit(status));
    }

    step(Step::Shutdown);
    // 15. Flush the root (sync, remount read-only) unless it is ephemeral, and the writable
    //     shared directories; power off.
    console::shutdown()
}
