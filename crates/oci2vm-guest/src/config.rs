//! `GuestConfig`: what the init needs to run the workload, and its line-based text form.
//!
//! ```text
//! oci2vm-config 1                 header (format version)
//! arg sh                          argv[0]          (repeatable, in order; Entrypoint + Cmd)
//! arg -c                          argv[1] ...
//! env PATH=/usr/bin               KEY=VALUE        (repeatable; later wins per KEY)
//! workdir /srv                    created if missing
//! user 1000:1000                  name | uid | uid:gid | name:group (resolved in the guest)
//! hostname box
//! network 10.0.2.15/24 10.0.2.2   ADDR/PREFIX [GATEWAY|-]  or  network none
//! dns 10.0.2.3                    repeatable
//! mount virtiofs vol0 /data ro    KIND TAG GUESTPATH ro|rw   (repeatable)
//! rlimit nofile 1048576 1048576   NAME SOFT HARD  (a number or "unlimited")
//! stopsignal 15
//! health 5000 2000 0 3 true       INTERVAL_MS TIMEOUT_MS START_MS RETRIES ARGV... (run --health)
//! init 0|1                        docker run --init semantics
//! tty 0|1    stdin 0|1          tty: the workload's stdio is a pseudo-terminal (docker run -t)
//! winsize 24 80                   ROWS COLS of that terminal (the host's, when it has one)
//! etc 0|1                         1: always write /etc/hosts and /etc/resolv.conf
//! root /dev/vda ext4 rw           DEVICE FSTYPE ro|rw
//! ephemeral 1                     the root disk's writes are discarded at exit (written only when 1)
//! ```
//!
//! One entry per line, `KEY VALUE`; values are escaped with [`crate::codec::escape`] and fields
//! of multi-field entries also escape spaces (`\x20`). Unknown keys are an error so typos do not
//! pass silently; a newer format bumps the header version. Applying a second document (the
//! kernel command line override) on top of the first replaces scalar values and whole lists
//! (`arg`, `dns`, `mount`, `rlimit`), except `env`, which merges per KEY.

use crate::codec::{escape, unescape};
pub use crate::fields::parse_ip;
use crate::fields::{parse_flag, parse_mount, parse_network, parse_rlimit, parse_root};
use std::fmt;

/// The header line every config document starts with.
pub const HEADER: &str = "oci2vm-config 1";

/// Docker's default PATH, used when the image sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// An IPv4 address.
pub type Ipv4 = [u8; 4];

/// The guest's network setup.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Network {
    /// Only the loopback interface.
    #[default]
    None,
    /// eth0 with a static address.
    Static {
        /// Address of eth0.
        addr: Ipv4,
        /// Prefix length (0-32).
        prefix: u8,
        /// Default gateway.
        gateway: Option<Ipv4>,
    },
}

impl Network {
    /// QEMU user networking's defaults: 10.0.2.15/24 via 10.0.2.2.
    pub fn qemu_user() -> Self {
        Network::Static {
            addr: [10, 0, 2, 15],
            prefix: 24,
            gateway: Some([10, 0, 2, 2]),
        }
    }
}

/// A host directory shared into the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Transport: `virtiofs` (9p is not built into the Debian cloud kernel).
    pub kind: String,
    /// The device tag the VMM exposes.
    pub tag: String,
    /// Absolute path in the guest.
    pub path: String,
    /// Mounted read-only.
    pub readonly: bool,
}

/// A resource limit applied to the workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rlimit {
    /// Name without the `RLIMIT_` prefix, lower case: one of [`RLIMIT_NAMES`].
    pub name: String,
    /// Soft limit (`u64::MAX` = unlimited).
    pub soft: u64,
    /// Hard limit (`u64::MAX` = unlimited).
    pub hard: u64,
}

/// Linux resource names, indexed by their `RLIMIT_*` number (same on every architecture we run).
pub const RLIMIT_NAMES: [&str; 16] = [
    "cpu",
    "fsize",
    "data",
    "stack",
    "core",
    "rss",
    "nproc",
    "nofile",
    "memlock",
    "as",
    "locks",
    "sigpending",
    "msgqueue",
    "nice",
    "rtprio",
    "rttime",
];

/// The root filesystem the init mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootDevice {
    /// Block device path, e.g. `/dev/vda`.
    pub device: String,
    /// Filesystem type, e.g. `ext4`.
    pub fstype: String,
    /// Mounted read-only.
    pub readonly: bool,
}

/// A healthcheck the init runs in the workload's mount namespace (`run --health`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// The check's argv (argv[0] looked up in the workload's PATH).
    pub argv: Vec<String>,
    /// Time between checks, in milliseconds.
    pub interval_ms: u64,
    /// Time one check may take, in milliseconds.
    pub timeout_ms: u64,
    /// Failures during this time after start do not count, in milliseconds.
    pub start_ms: u64,
    /// Consecutive failures that make the workload unhealthy.
    pub retries: u32,
}

/// Everything the init needs to run the workload as `docker run` would.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestConfig {
    /// Entrypoint + Cmd, resolved by the host; argv[0] is looked up in the image's PATH.
    pub argv: Vec<String>,
    /// `KEY=VALUE`, unique keys, in order.
    pub env: Vec<String>,
    /// Working directory (absolute); empty means `/`.
    pub workdir: String,
    /// User spec; empty means root.
    pub user: String,
    /// Host name; empty keeps the kernel's default.
    pub hostname: String,
    /// eth0 setup.
    pub network: Network,
    /// Name servers for /etc/resolv.conf.
    pub dns: Vec<Ipv4>,
    /// Shared directories.
    pub mounts: Vec<Mount>,
    /// Resource limits.
    pub rlimits: Vec<Rlimit>,
    /// The image's StopSignal as a number.
    pub stop_signal: i32,
    /// Run a minimal init as PID 1 of the workload's namespace (`docker run --init`).
    pub init: bool,
    /// Allocate a terminal.
    pub tty: bool,
    /// The terminal's size (rows, columns); `None`: the kernel's default (0x0).
    pub winsize: Option<(u16, u16)>,
    /// Forward the host's stdin.
    pub stdin: bool,
    /// Overwrite /etc/hosts and /etc/resolv.conf even when the image has them.
    pub force_etc: bool,
    /// Root filesystem.
    pub root: RootDevice,
    /// The root disk is attached copy-on-write and its writes are discarded when the VM stops,
    /// so the init does not flush it before powering off (like `root`, taken from the host's
    /// override only).
    pub ephemeral: bool,
    /// Healthcheck to run and report on the control channel.
    pub health: Option<Health>,
}

impl Default for GuestConfig {
    fn default() -> Self {
        GuestConfig {
            argv: Vec::new(),
            env: Vec::new(),
            workdir: String::new(),
            user: String::new(),
            hostname: String::new(),
            network: Network::None,
            dns: Vec::new(),
            mounts: Vec::new(),
            rlimits: vec![Rlimit {
                name: "nofile".into(),
                soft: 1_048_576,
                hard: 1_048_576,
            }],
            stop_signal: 15,
            init: false,
            tty: false,
            winsize: None,
            stdin: false,
            force_etc: false,
            root: RootDevice {
                device: "/dev/vda".into(),
                fstype: "ext4".into(),
                readonly: false,
            },
            ephemeral: false,
            health: None,
        }
    }
}

/// A config document that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// 1-based line number (0: the document as a whole).
    pub line: usize,
    /// What is wrong.
    pub reason: &'static str,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "config line {}: {}", self.line, self.reason)
    }
}

impl std::error::Error for ConfigError {}

fn field(s: &str) -> String {
    escape(s).replace(' ', "\\x20")
}

fn flag(b: bool) -> &'static str {
    if b { "1" } else { "0" }
}

fn ip(a: &Ipv4) -> String {
    format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3])
}

fn limit(v: u64) -> String {
    if v == u64::MAX {
        "unlimited".into()
    } else {
        v.to_string()
    }
}

impl GuestConfig {
    /// Serialises to the text form; [`GuestConfig::parse`] reads it back to an equal value.
    pub fn to_text(&self) -> String {
        let mut o = String::new();
        let mut line = |k: &str, v: &str| {
            o.push_str(k);
            o.push(' ');
            o.push_str(v);
            o.push('\n');
        };
        line("oci2vm-config", "1");
        self.argv.iter().for_each(|a| line("arg", &escape(a)));
        self.env.iter().for_each(|e| line("env", &escape(e)));
        line("workdir", &escape(&self.workdir));
        line("user", &escape(&self.user));
        line("hostname", &escape(&self.hostname));
        match &self.network {
            Network::None => line("network", "none"),
            Network::Static {
                addr,
                prefix,
                gateway,
            } => {
                let gw = gateway.as_ref().map_or("-".to_string(), ip);
                line("network", &format!("{}/{} {}", ip(addr), prefix, gw));
            }
        }
        self.dns.iter().for_each(|d| line("dns", &ip(d)));
        for m in &self.mounts {
            let ro = if m.readonly { "ro" } else { "rw" };
            let v = format!(
                "{} {} {} {}",
                field(&m.kind),
                field(&m.tag),
                field(&m.path),
                ro
            );
            line("mount", &v);
        }
        for r in &self.rlimits {
            let v = format!("{} {} {}", field(&r.name), limit(r.soft), limit(r.hard));
            line("rlimit", &v);
        }
        line("stopsignal", &self.stop_signal.to_string());
        line("init", flag(self.init));
        line("tty", flag(self.tty));
        if let Some((rows, cols)) = self.winsize {
            line("winsize", &format!("{rows} {cols}"));
        }
        line("stdin", flag(self.stdin));
        line("etc", flag(self.force_etc));
        let ro = if self.root.readonly { "ro" } else { "rw" };
        let v = format!(
            "{} {} {}",
            field(&self.root.device),
            field(&self.root.fstype),
            ro
        );
        line("root", &v);
        if self.ephemeral {
            line("ephemeral", "1");
        }
        if let Some(h) = &self.health {
            let mut v = format!(
                "{} {} {} {}",
                h.interval_ms, h.timeout_ms, h.start_ms, h.retries
            );
            for a in &h.argv {
                v.push(' ');
                v.push_str(&field(a));
            }
            line("health", &v);
        }
        o
    }

    /// Parses a whole document onto the defaults.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let mut c = GuestConfig::default();
        c.apply(text)?;
        Ok(c)
    }

    /// Applies a document on top of `self` (see the module docs for the merge rules).
    /// On error `self` is left unchanged.
    pub fn apply(&mut self, text: &str) -> Result<(), ConfigError> {
        let mut next = self.clone();
        let mut lines = text.lines().enumerate();
        match lines.next() {
            Some((_, h)) if h.trim_end() == HEADER => {}
            _ => return Err(err(1, "missing header \"oci2vm-config 1\"")),
        }
        let mut cleared = [false; 4]; // argv, mounts, dns, rlimits
        for (i, raw) in lines {
            let n = i + 1;
            if raw.is_empty() || raw.starts_with('#') {
                continue;
            }
            let (key, value) = raw.split_once(' ').unwrap_or((raw, ""));
            let val = || unescape(value).ok_or(err(n, "bad escape in value"));
            match key {
                "arg" => {
                    if !std::mem::replace(&mut cleared[0], true) {
                        next.argv.clear();
                    }
                    next.argv.push(val()?);
                }
                "env" => {
                    let e = val()?;
                    let k = match e.split_once('=') {
                        Some((k, _)) if !k.is_empty() => k.to_string(),
                        _ => return Err(err(n, "env entry is not KEY=VALUE")),
                    };
                    next.env
                        .retain(|x| x.split_once('=').map(|p| p.0) != Some(k.as_str()));
                    next.env.push(e);
                }
                "workdir" => next.workdir = val()?,
                "user" => next.user = val()?,
                "hostname" => next.hostname = val()?,
                "network" => next.network = parse_network(value).ok_or(err(n, "bad network"))?,
                "dns" => {
                    if !std::mem::replace(&mut cleared[2], true) {
                        next.dns.clear();
                    }
                    next.dns
                        .push(parse_ip(value).ok_or(err(n, "bad dns address"))?);
                }
                "mount" => {
                    if !std::mem::replace(&mut cleared[1], true) {
                        next.mounts.clear();
                    }
                    next.mounts
                        .push(parse_mount(value).ok_or(err(n, "bad mount"))?);
                }
                "rlimit" => {
                    let r = parse_rlimit(value).ok_or(err(n, "bad rlimit"))?;
                    if !std::mem::replace(&mut cleared[3], true) {
                        next.rlimits.clear();
                    }
                    next.rlimits.retain(|x| x.name != r.name);
                    next.rlimits.push(r);
                }
                "stopsignal" => {
                    next.stop_signal = match value.parse::<i32>() {
                        Ok(s) if (1..=64).contains(&s) => s,
                        _ => return Err(err(n, "bad stopsignal")),
                    }
                }
                "init" => next.init = parse_flag(value).ok_or(err(n, "bad flag"))?,
                "tty" => next.tty = parse_flag(value).ok_or(err(n, "bad flag"))?,
                "winsize" => {
                    next.winsize = Some(parse_winsize(value).ok_or(err(n, "bad winsize"))?)
                }
                "stdin" => next.stdin = parse_flag(value).ok_or(err(n, "bad flag"))?,
                "etc" => next.force_etc = parse_flag(value).ok_or(err(n, "bad flag"))?,
                "root" => next.root = parse_root(value).ok_or(err(n, "bad root"))?,
                "ephemeral" => next.ephemeral = parse_flag(value).ok_or(err(n, "bad flag"))?,
                "health" => next.health = Some(parse_health(value).ok_or(err(n, "bad health"))?),
                _ => return Err(err(n, "unknown key")),
            }
        }
        *self = next;
        Ok(())
    }

    /// The value of `KEY` in the environment, if set.
    pub fn env_var(&self, key: &str) -> Option<&str> {
        self.env.iter().find_map(|e| match e.split_once('=') {
            Some((k, v)) if k == key => Some(v),
            _ => None,
        })
    }
}

/// `ROWS COLS`, each 1..=65535.
fn parse_winsize(value: &str) -> Option<(u16, u16)> {
    let (r, c) = value.split_once(' ')?;
    let (r, c) = (r.parse::<u16>().ok()?, c.parse::<u16>().ok()?);
    (r > 0 && c > 0).then_some((r, c))
}

fn parse_health(value: &str) -> Option<Health> {
    let mut it = value.split(' ');
    let mut num = || it.next()?.parse::<u64>().ok();
    let (interval_ms, timeout_ms, start_ms) = (num()?, num()?, num()?);
    let retries = u32::try_from(num()?).ok()?;
    let argv = it.map(unescape).collect::<Option<Vec<String>>>()?;
    if argv.is_empty() || argv[0].is_empty() || interval_ms == 0 || timeout_ms == 0 {
        return None;
    }
    Some(Health {
        argv,
        interval_ms,
        timeout_ms,
        start_ms,
        retries: retries.max(1),
    })
}

fn err(line: usize, reason: &'static str) -> ConfigError {
    ConfigError { line, reason }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> GuestConfig {
        GuestConfig {
            argv: vec!["sh".into(), "-c".into(), "echo 'a b'\nexit 7".into()],
            env: vec!["PATH=/bin".into(), "X=a=b c".into()],
            workdir: "/srv/my dir".into(),
            user: "1000:1000".into(),
            hostname: "box".into(),
            network: Network::qemu_user(),
            dns: vec![[10, 0, 2, 3]],
            mounts: vec![Mount {
                kind: "virtiofs".into(),
                tag: "vol0".into(),
                path: "/data dir".into(),
                readonly: true,
            }],
            rlimits: vec![Rlimit {
                name: "core".into(),
                soft: 0,
                hard: u64::MAX,
            }],
            stop_signal: 2,
            init: true,
            tty: false,
            winsize: Some((50, 132)),
            stdin: true,
            force_etc: true,
            root: RootDevice {
                device: "/dev/vda".into(),
                fstype: "ext4".into(),
                readonly: true,
            },
            ephemeral: true,
            health: Some(Health {
                argv: vec!["sh".into(), "-c".into(), "test -e /a b".into()],
                interval_ms: 5000,
                timeout_ms: 2000,
                start_ms: 0,
                retries: 3,
            }),
        }
    }

    #[test]
    fn roundtrip_sample_and_default() {
        for c in [sample(), GuestConfig::default()] {
            assert_eq!(GuestConfig::parse(&c.to_text()), Ok(c));
        }
    }

    #[test]
    fn overlay_replaces_lists_and_merges_env() {
        let mut c = sample();
        c.apply("oci2vm-config 1\narg true\nenv X=1\nenv Y=2\nrlimit nofile 5 6\n")
            .expect("valid overlay");
        assert_eq!(c.argv, vec!["true"]);
        assert_eq!(c.env, vec!["PATH=/bin", "X=1", "Y=2"]);
        assert_eq!(c.env_var("X"), Some("1"));
        assert_eq!(c.rlimits.len(), 1);
        assert_eq!(c.workdir, "/srv/my dir", "untouched scalar kept");
    }

    #[test]
    fn errors_name_the_line_and_leave_config_unchanged() {
        let cases = [
            ("", 1),
            ("oci2vm-config 2\n", 1),
            ("oci2vm-config 1\nbogus 1\n", 2),
            ("oci2vm-config 1\narg ok\nenv =x\n", 3),
            ("oci2vm-config 1\nnetwork 10.0.2.15/33\n", 2),
            ("oci2vm-config 1\nnetwork 1.2.3/24\n", 2),
            ("oci2vm-config 1\nmount 9p t /x rw\n", 2),
            ("oci2vm-config 1\nmount virtiofs t rel rw\n", 2),
            ("oci2vm-config 1\nrlimit nofile 10 5\n", 2),
            ("oci2vm-config 1\nrlimit bogus 1 1\n", 2),
            ("oci2vm-config 1\nstopsignal 0\n", 2),
            ("oci2vm-config 1\ninit yes\n", 2),
            ("oci2vm-config 1\nephemeral yes\n", 2),
            ("oci2vm-config 1\nroot vda ext4 rw\n", 2),
            ("oci2vm-config 1\narg bad\\q\n", 2),
        ];
        for (text, line) in cases {
            let mut c = sample();
            let e = c.apply(text).expect_err(text);
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert_eq!(c, sample());
        }
    }

    #[test]
    fn ip_parsing() {
        assert_eq!(parse_ip("10.0.2.15"), Some([10, 0, 2, 15]));
        for bad in ["", "1.2.3", "1.2.3.4.5", "256.1.1.1", "+1.1.1.1", "1..1.1"] {
            assert_eq!(parse_ip(bad), None, "{bad}");
        }
    }

    #[allow(clippy::field_reassign_with_default)]
    fn arb_config() -> impl Strategy<Value = GuestConfig> {
        let s = "[^\u{0}]{0,12}";
        (
            proptest::collection::vec(s, 0..4),
            proptest::collection::vec("[A-Z]{1,4}=[^\u{0}]{0,8}", 0..4),
            (s, s, s),
            (
                any::<[u8; 4]>(),
                0u8..=32,
                any::<Option<[u8; 4]>>(),
                any::<bool>(),
            ),
            (1i32..=64, any::<[bool; 6]>()),
        )
            .prop_map(|(argv, env, (workdir, user, hostname), net, (sig, f))| {
                let mut c = GuestConfig::default();
                c.argv = argv;
                for e in env {
                    let k = e.split('=').next().unwrap_or_default().to_string();
                    c.env.retain(|x| x.split('=').next() != Some(k.as_str()));
                    c.env.push(e);
                }
                c.workdir = workdir;
                c.user = user;
                c.hostname = hostname;
                if net.3 {
                    c.network = Network::Static {
                        addr: net.0,
                        prefix: net.1,
                        gateway: net.2,
                    };
                }
                c.stop_signal = sig;
                c.init = f[0];
                c.tty = f[1];
                c.stdin = f[2];
                c.force_etc = f[3];
                c.root.readonly = f[4];
                c.ephemeral = f[5];
                c
            })
    }

    proptest! {
        #[test]
        fn roundtrips(c in arb_config()) {
            prop_assert_eq!(GuestConfig::parse(&c.to_text()), Ok(c));
        }

        #[test]
        fn parser_never_panics(s in ".*") {
            let _ = GuestConfig::parse(&s);
            let _ = GuestConfig::parse(&format!("{HEADER}\n{s}"));
        }

        #[test]
        fn parser_never_panics_on_known_keys(k in "(arg|env|network|dns|mount|rlimit|root|ephemeral|stopsignal)", v in ".{0,40}") {
            let _ = GuestConfig::parse(&format!("{HEADER}\n{k} {v}\n"));
        }
    }
}
