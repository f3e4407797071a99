//! `oci2vm run`: boot an image as a VM and run its entrypoint like `docker run`.
//!
//! SOURCE is converted once to an ext4 root filesystem with the image's runtime config at
//! `/.oci2vm/config` (cached in the store by manifest digest and options) and attached
//! copy-on-write, so no state is left behind. `--root-disk FILE` boots an existing converted
//! root filesystem instead (and lets the guest write to it).

use anyhow::{Context as _, Result};
use clap::Args;
use oci2vm::convert::{self, FlattenOptions};
use oci2vm::guest::image::{resolve_argv, signal_number};
use oci2vm::{ErrorKind, Reference};

use super::Context;
use oci2vm::vmm::{self, KernelLog, Machine, PortForward, VmSpec, Volume};
use oci2vm_guest::{Mount, Network, Overlay};
use std::path::PathBuf;
use std::time::Duration;

/// Arguments of `oci2vm run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Image to run: docker://REF, REF, oci:DIR[:TAG], oci-archive:FILE, docker-archive:FILE.
    #[arg(required_unless_present = "root_disk")]
    pub source: Option<String>,
    /// Command and arguments (replace the image's Cmd; after `--`).
    #[arg(last = true)]
    pub command: Vec<String>,
    /// Boot this ext4 root filesystem (made by `oci2vm convert --format ext4`) instead of SOURCE.
    #[arg(long, value_name = "FILE", conflicts_with = "source")]
    pub root_disk: Option<PathBuf>,
    /// Size of the converted root filesystem (e.g. 2G) [default: content + headroom].
    #[arg(long, value_name = "SIZE", value_parser = crate::commands::parse_size)]
    pub disk_size: Option<u64>,
    /// Override the image's Entrypoint.
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Set an environment variable (KEY=VALUE, or KEY to copy ours).
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Read environment variables from a file (KEY=VALUE lines, # comments).
    #[arg(long)]
    pub env_file: Vec<PathBuf>,
    /// Working directory in the guest.
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    /// User: name, uid, uid:gid, name:group.
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Guest host name.
    #[arg(long)]
    pub hostname: Option<String>,
    /// Publish a port: [IP:]HOST:GUEST.
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    /// Publish every TCP port of the image's ExposedPorts on a free port of 127.0.0.1
    /// (printed as `publish: 80/tcp -> 127.0.0.1:PORT` on stderr; UDP is not forwarded).
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// `none` for no network (default: QEMU user networking).
    #[arg(long, default_value = "user")]
    pub network: String,
    /// Share a host directory: HOST:GUEST[:ro] (virtiofs), as `docker run -v`.
    #[arg(short = 'v', long = "volume", value_name = "HOST:GUEST[:ro]")]
    pub volume: Vec<String>,
    /// More logging on stderr (--verbose info, twice debug; `-v` is `--volume` here).
    #[arg(long = "verbose", action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Memory in MiB.
    #[arg(long, default_value_t = 512)]
    pub memory: u32,
    /// vCPUs.
    #[arg(long, default_value_t = 1)]
    pub cpus: u32,
    /// Keep stdin open and forward it.
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Give the workload a terminal (stdout and stderr merged, as docker run -t); with -i and a
    /// terminal on stdin, keystrokes go to it raw (^C reaches the workload as a key).
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Run a minimal init as PID 1 that forwards signals and reaps zombies.
    #[arg(long)]
    pub init: bool,
    /// Kernel image (default: the host's, else the newest /boot/vmlinuz-*).
    #[arg(long)]
    pub kernel: Option<PathBuf>,
    /// Modules directory for the kernel.
    #[arg(long)]
    pub modules: Option<PathBuf>,
    /// Stop the VM after this many seconds.
    #[arg(long)]
    pub timeout: Option<u64>,
    /// Write the kernel log here.
    #[arg(long)]
    pub kernel_log: Option<PathBuf>,
    /// Run the image's Healthcheck in the guest (its interval, timeout, start period and
    /// retries) and print `health: healthy|unhealthy (...)` to stderr on each change.
    #[arg(long)]
    pub health: bool,
    /// Machine model: microvm or q35.
    #[arg(long, default_value = "microvm")]
    pub machine: String,
}

/// A usage error: exits with the invalid-input code.
fn invalid(msg: String) -> anyhow::Error {
    oci2vm::Error::new(ErrorKind::InvalidInput, msg).into()
}

macro_rules! bail {
    ($($t:tt)*) => { return Err(invalid(format!($($t)*))) };
}

/// Where the initramfs and other rebuildable files are cached.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("oci2vm")
}

fn env_entry(e: &str) -> Option<String> {
    if e.contains('=') {
        Some(e.to_string())
    } else {
        std::env::var(e).ok().map(|v| format!("{e}={v}"))
    }
}

fn publish(p: &str) -> Result<PortForward> {
    let parts: Vec<&str> = p.split(':').collect();
    let (addr, host, guest) = match parts.as_slice() {
        [h, g] => ("127.0.0.1", *h, *g),
        [a, h, g] => (*a, *h, *g),
        _ => bail!("-p {p}: expected [IP:]HOST:GUEST"),
    };
    let guest = guest.trim_end_matches("/tcp");
    Ok(PortForward {
        host_addr: addr.to_string(),
        host_port: host.parse().with_context(|| format!("-p {p}: host port"))?,
        guest_port: guest
            .parse()
            .with_context(|| format!("-p {p}: guest port"))?,
    })
}

/// `-P`: every TCP ExposedPort (the documented mapping of `assets::PortForward`) on a free
/// host port of 127.0.0.1, like `docker run -P`.
fn publish_all(exposed: &[String]) -> Result<Vec<PortForward>> {
    let ports =
        oci2vm::assets::PortForward::from_exposed_ports(exposed).map_err(oci2vm::Error::from)?;
    let mut out = Vec::new();
    for p in ports {
        if p.protocol != oci2vm::assets::Protocol::Tcp {
            eprintln!("publish: {}/udp not forwarded (TCP only)", p.guest);
            continue;
        }
        let free = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("-P: finding a free host port")?
            .port();
        eprintln!("publish: {}/tcp -> 127.0.0.1:{free}", p.guest);
        out.push(PortForward {
            host_addr: "127.0.0.1".into(),
            host_port: free,
            guest_port: p.guest,
        });
    }
    Ok(out)
}

/// The root disk and what the image says about how to run it.
struct Root {
    disk: PathBuf,
    snapshot: bool,
    runtime: Option<oci2vm::guest::image::ImageRuntime>,
    /// The image's Healthcheck, for `--health`.
    health: Option<oci2vm::assets::Healthcheck>,
    /// The image's ExposedPorts, for `-P`.
    exposed_ports: Vec<String>,
}

fn root_for(ctx: &Context, a: &RunArgs) -> Result<Root> {
    if let Some(disk) = &a.root_disk {
        return Ok(Root {
            disk: disk.clone(),
            snapshot: false,
            runtime: None,
            health: None,
            exposed_ports: Vec::new(),
        });
    }
    let Some(source) = &a.source else {
        bail!("SOURCE or --root-disk FILE is required");
    };
    let reference: Reference = source
        .parse()
        .map_err(oci2vm::Error::from)
        .with_context(|| format!("invalid image reference {source:?}"))?;
    let store = ctx.store()?;
    let client = ctx.registry_for(&reference)?;
    let remote = client
        .as_ref()
        .map(|c| c as &dyn oci2vm::source::RemoteFetcher);
    let opts = FlattenOptions {
        source: ctx.source_options(),
        apply: oci2vm::layers::ApplyOptions::from_env(),
        scratch_dir: None,
    };
    let cached = convert::cached_rootfs(&reference, &store, &opts, remote, a.disk_size)
        .with_context(|| format!("converting {source}"))?;
    let runtime = convert::guest_runtime(&cached.image.config.runtime);
    let health = convert::assets_runtime(&cached.image.config.runtime).healthcheck;
    Ok(Root {
        disk: cached.path,
        snapshot: true,
        runtime: Some(runtime),
        health,
        exposed_ports: cached.image.config.runtime.exposed_ports.clone(),
    })
}

/// Runs the command; returns the workload's exit status.
pub fn run(ctx: &Context, a: &RunArgs, verbose: u8) -> Result<i32> {
    let root = root_for(ctx, a)?;
    let mut o = Overlay::new();
    let ep_override = a.entrypoint.as_ref().map(|e| vec![e.clone()]);
    let cmd_override = (!a.command.is_empty()).then(|| a.command.clone());
    if ep_override.is_some() || cmd_override.is_some() {
        let image = root.runtime.clone().unwrap_or_default();
        let argv = resolve_argv(
            &image.entrypoint,
            &image.cmd,
            ep_override.as_deref(),
            cmd_override.as_deref(),
        );
        if argv.is_empty() {
            bail!("no command: the image has no Entrypoint or Cmd; give one after --");
        }
        o.argv(&argv);
    }
    for f in &a.env_file {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("--env-file {}", f.display()))?;
        for line in text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            if let Some(e) = env_entry(line) {
                o.env(&e);
            }
        }
    }
    for e in &a.env {
        if let Some(e) = env_entry(e) {
            o.env(&e);
        }
    }
    if let Some(w) = &a.workdir {
        o.workdir(w);
    }
    if let Some(u) = &a.user {
        o.user(u);
    }
    if let Some(h) = &a.hostname {
        o.hostname(h);
    }
    let network = match a.network.as_str() {
        "none" => {
            if !a.publish.is_empty() || a.publish_all {
                bail!("-p/-P need a network (not --network none)");
            }
            o.network(&Network::None);
            None
        }
        "user" => {
            o.network(&Network::qemu_user()).dns([10, 0, 2, 3]);
            let mut forwards = a
                .publish
                .iter()
                .map(|p| publish(p))
                .collect::<Result<Vec<_>>>()?;
            if a.publish_all {
                forwards.extend(publish_all(&root.exposed_ports)?);
            }
            Some(forwards)
        }
        n => bail!("--network {n}: expected user or none"),
    };
    let mut volumes = Vec::new();
    for (i, v) in a.volume.iter().enumerate() {
        let parts: Vec<&str> = v.split(':').collect();
        let (host, guest, ro) = match parts.as_slice() {
            [h, g] => (*h, *g, false),
            [h, g, "ro"] => (*h, *g, true),
            [h, g, "rw"] => (*h, *g, false),
            _ => bail!("-v {v}: expected HOST:GUEST[:ro]"),
        };
        let host = std::fs::canonicalize(host).with_context(|| format!("-v {v}"))?;
        let tag = format!("vol{i}");
        o.mount(&Mount {
            kind: "virtiofs".into(),
            tag: tag.clone(),
            path: guest.into(),
            readonly: ro,
        });
        volumes.push(Volume { host, tag });
    }
    if a.init {
        o.init(true);
    }
    if a.health {
        let plan =
            oci2vm::assets::health::plan(root.health.as_ref()).map_err(oci2vm::Error::from)?;
        match plan {
            Some(p) => {
                let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1);
                o.health(&oci2vm_guest::Health {
                    argv: p.argv,
                    interval_ms: ms(p.interval),
                    timeout_ms: ms(p.timeout),
                    start_ms: u64::try_from(p.start_period.as_millis()).unwrap_or(u64::MAX),
                    retries: p.retries.max(1),
                });
            }
            None => eprintln!("health: none (the image has no Healthcheck)"),
        }
    }
    if a.interactive {
        o.stdin(true);
    }
    if a.tty {
        o.tty(true, vmm::terminal::size());
    }
    // kernel and initramfs come last: the initramfs carries the modules this spec needs
    let mut spec = VmSpec::new(PathBuf::new(), PathBuf::new(), root.disk);
    spec.root_snapshot = root.snapshot;
    if let Some(sig) = root.runtime.as_ref().and_then(|r| r.stop_signal.as_deref()) {
        spec.stop_signal = signal_number(sig).unwrap_or(spec.stop_signal);
    }
    spec.overlay = o.render();
    spec.memory_mib = a.memory;
    spec.cpus = a.cpus;
    spec.network = network;
    spec.volumes = volumes;
    spec.virtiofsd = vmm::find_virtiofsd();
    spec.stdin = a.interactive;
    spec.tty = a.tty;
    spec.timeout = a.timeout.map(Duration::from_secs);
    spec.catch_signals = true;
    spec.state_dir = Some(cache_dir());
    spec.debug = verbose > 1;
    spec.report_health = a.health;
    spec.kernel_log = match (&a.kernel_log, verbose) {
        (Some(p), _) => KernelLog::File(p.clone()),
        (None, 0) => KernelLog::Hidden,
        (None, _) => KernelLog::Stderr,
    };
    spec.machine = match a.machine.as_str() {
        "microvm" => Machine::Microvm,
        "q35" => Machine::Q35,
        m => bail!("--machine {m}: expected microvm or q35"),
    };
    let assets = oci2vm::guest::prepare(
        a.kernel.as_deref(),
        a.modules.as_deref(),
        None,
        &cache_dir(),
        &spec.initramfs_plan(),
    )
    .map_err(oci2vm::Error::from)?;
    spec.kernel = assets.kernel;
    spec.initramfs = assets.initramfs;
    // -it on a terminal: raw until the run ends (the guard restores it on every path)
    let raw = if a.tty && a.interactive {
        vmm::terminal::RawMode::enter()
            .map_err(|e| anyhow::anyhow!("putting the terminal in raw mode: {e}"))?
    } else {
        None
    };
    let out = vmm::run(&spec).map_err(oci2vm::Error::from);
    drop(raw);
    let out = out?;
    Ok(out.status)
}
