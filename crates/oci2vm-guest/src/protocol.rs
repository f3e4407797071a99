//! The control channel: one line per message on the `oci2vm.ctl` virtio-serial port.
//!
//! ```text
//! guest -> host                         host -> guest
//! OCI2VM_READY                          SIGNAL <n>     forward signal n to the workload
//! OCI2VM_EXEC                           POWEROFF       stop now (after a grace period)
//! OCI2VM_EXIT=<status>                  WINSIZE <r> <c> resize the workload's terminal (-t)
//! OCI2VM_ERROR step=<name> code=<n> <escaped message>
//! ```
//!
//! `OCI2VM_EXIT` carries the workload's status as `docker run` reports it: the exit code, or
//! 128+N when killed by signal N. `OCI2VM_ERROR` means the init itself failed; `code` is the
//! failing boot step's number (below), distinct from any workload status because it travels on
//! its own message. The same `OCI2VM_ERROR` line is also written to the kernel console (ttyS0),
//! so the host sees failures that happen before the control port exists.

use crate::codec::{escape, unescape};

/// A boot step of the init; its number is the failure code reported to the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Mounting /proc, /sys, /dev, /run, /tmp in the initramfs.
    EarlyMounts = 1,
    /// Reading /proc/cmdline and the override.
    Cmdline = 2,
    /// Loading kernel modules.
    Modules = 3,
    /// Opening the virtio-serial ports.
    Channels = 4,
    /// Waiting for the root block device.
    FindRoot = 5,
    /// Mounting the root filesystem.
    MountRoot = 6,
    /// Moving mounts and chrooting into the root filesystem.
    SwitchRoot = 7,
    /// Reading /.oci2vm/config.
    Config = 8,
    /// Hostname, /etc/hosts, /etc/resolv.conf.
    Identity = 9,
    /// lo and eth0.
    Network = 10,
    /// Shared directories.
    Volumes = 11,
    /// Resolving the user spec.
    User = 12,
    /// Creating the workload's process.
    Spawn = 13,
    /// Waiting for the workload.
    Supervise = 14,
    /// Sync, unmount, power off.
    Shutdown = 15,
}

impl Step {
    /// Every step, in boot order.
    pub const ALL: [Step; 15] = [
        Step::EarlyMounts,
        Step::Cmdline,
        Step::Modules,
        Step::Channels,
        Step::FindRoot,
        Step::MountRoot,
        Step::SwitchRoot,
        Step::Config,
        Step::Identity,
        Step::Network,
        Step::Volumes,
        Step::User,
        Step::Spawn,
        Step::Supervise,
        Step::Shutdown,
    ];

    /// The step's name as printed.
    pub fn name(self) -> &'static str {
        match self {
            Step::EarlyMounts => "early-mounts",
            Step::Cmdline => "cmdline",
            Step::Modules => "modules",
            Step::Channels => "channels",
            Step::FindRoot => "find-root",
            Step::MountRoot => "mount-root",
            Step::SwitchRoot => "switch-root",
            Step::Config => "config",
            Step::Identity => "identity",
            Step::Network => "network",
            Step::Volumes => "volumes",
            Step::User => "user",
            Step::Spawn => "spawn",
            Step::Supervise => "supervise",
            Step::Shutdown => "shutdown",
        }
    }

    /// The failure code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The step with this name.
    pub fn from_name(name: &str) -> Option<Step> {
        Step::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// A message from the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The init is up and the control channel works.
    Ready,
    /// The workload is about to be executed (boot-to-entrypoint timing point).
    Exec,
    /// The workload finished with this status.
    Exit(i32),
    /// The healthcheck's status changed (`run --health`).
    Health {
        /// Healthy or not.
        healthy: bool,
        /// Why (the last check's outcome, failures counted).
        detail: String,
    },
    /// The init failed.
    Error {
        /// The failing step.
        step: Step,
        /// What went wrong.
        message: String,
    },
}

/// The prefix of an error line (also scanned for in the kernel log).
pub const ERROR_PREFIX: &str = "OCI2VM_ERROR ";

impl Event {
    /// The line (without newline).
    pub fn render(&self) -> String {
        match self {
            Event::Ready => "OCI2VM_READY".into(),
            Event::Exec => "OCI2VM_EXEC".into(),
            Event::Exit(n) => format!("OCI2VM_EXIT={n}"),
            Event::Health { healthy, detail } => format!(
                "OCI2VM_HEALTH={} {}",
                if *healthy { "healthy" } else { "unhealthy" },
                escape(detail)
            ),
            Event::Error { step, message } => format!(
                "{ERROR_PREFIX}step={} code={} {}",
                step.name(),
                step.code(),
                escape(message)
            ),
        }
    }

    /// Parses one line (trailing `\r`/`\n` ignored); `None` for anything else.
    pub fn parse(line: &str) -> Option<Event> {
        let line = line.trim_end_matches(['\r', '\n']);
        match line {
            "OCI2VM_READY" => return Some(Event::Ready),
            "OCI2VM_EXEC" => return Some(Event::Exec),
            _ => {}
        }
        if let Some(n) = line.strip_prefix("OCI2VM_EXIT=") {
            return n
                .parse()
                .ok()
                .filter(|n| (0..=255).contains(n))
                .map(Event::Exit);
        }
        if let Some(h) = line.strip_prefix("OCI2VM_HEALTH=") {
            let (state, detail) = h.split_once(' ').unwrap_or((h, ""));
            let healthy = match state {
                "healthy" => true,
                "unhealthy" => false,
                _ => return None,
            };
            return Some(Event::Health {
                healthy,
                detail: unescape(detail)?,
            });
        }
        let rest = line.strip_prefix(ERROR_PREFIX)?;
        let rest = rest.strip_prefix("step=")?;
        let (name, rest) = rest.split_once(" code=")?;
        let (code, msg) = rest.split_once(' ').unwrap_or((rest, ""));
        let step = Step::from_name(name)?;
        if code != step.code().to_string() {
            return None;
        }
        Some(Event::Error {
            step,
            message: unescape(msg)?,
        })
    }
}

/// A message from the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Deliver this signal to the workload.
    Signal(i32),
    /// Power off now.
    Poweroff,
    /// The host terminal was resized: new rows and columns for the workload's terminal (`-t`).
    Winsize(u16, u16),
}

impl Control {
    /// The line (without newline).
    pub fn render(&self) -> String {
        match self {
            Control::Signal(n) => format!("SIGNAL {n}"),
            Control::Poweroff => "POWEROFF".into(),
            Control::Winsize(rows, cols) => format!("WINSIZE {rows} {cols}"),
        }
    }

    /// Parses one line; `None` for anything else.
    pub fn parse(line: &str) -> Option<Control> {
        let line = line.trim_end_matches(['\r', '\n']);
        if line == "POWEROFF" {
            return Some(Control::Poweroff);
        }
        if let Some(size) = line.strip_prefix("WINSIZE ") {
            let (r, c) = size.split_once(' ')?;
            let (r, c) = (r.parse::<u16>().ok()?, c.parse::<u16>().ok()?);
            return (r > 0 && c > 0).then_some(Control::Winsize(r, c));
        }
        let n: i32 = line.strip_prefix("SIGNAL ")?.parse().ok()?;
        (1..=64).contains(&n).then_some(Control::Signal(n))
    }
}

/// The status `docker run` reports for a wait status: the exit code, or 128+signal.
pub fn docker_status(exited: Option<i32>, signaled: Option<i32>) -> i32 {
    match (exited, signaled) {
        (Some(code), _) => code & 0xff,
        (None, Some(sig)) => 128 + sig,
        (None, None) => 255,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn steps_have_distinct_codes_and_names() {
        let mut codes: Vec<u8> = Step::ALL.iter().map(|s| s.code()).collect();
        codes.dedup();
        assert_eq!(codes.len(), Step::ALL.len());
        for s in Step::ALL {
            assert_eq!(Step::from_name(s.name()), Some(s));
        }
    }

    #[test]
    fn events_roundtrip() {
        let evs = [
            Event::Ready,
            Event::Exec,
            Event::Exit(0),
            Event::Exit(137),
            Event::Health {
                healthy: false,
                detail: "3 failures: exit status 1".into(),
            },
            Event::Health {
                healthy: true,
                detail: String::new(),
            },
            Event::Error {
                step: Step::MountRoot,
                message: "mount /dev/vda: invalid argument\nsecond line".into(),
            },
        ];
        for e in evs {
            assert_eq!(Event::parse(&format!("{}\r\n", e.render())), Some(e));
        }
        for bad in [
            "OCI2VM_EXIT=",
            "OCI2VM_EXIT=256",
            "OCI2VM_ERROR step=x code=1 m",
            "OCI2VM_ERROR step=modules code=4 m",
            "[  1.0] noise",
        ] {
            assert_eq!(Event::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn controls_roundtrip() {
        for c in [
            Control::Signal(15),
            Control::Signal(2),
            Control::Poweroff,
            Control::Winsize(50, 132),
        ] {
            assert_eq!(Control::parse(&c.render()), Some(c));
        }
        assert_eq!(Control::parse("SIGNAL 0"), None);
        assert_eq!(Control::parse("WINSIZE 0 80"), None);
        assert_eq!(Control::parse("WINSIZE 24"), None);
        assert_eq!(Control::parse("SIGNAL 65"), None);
    }

    #[test]
    fn docker_status_mapping() {
        assert_eq!(docker_status(Some(7), None), 7);
        assert_eq!(docker_status(None, Some(9)), 137);
        assert_eq!(docker_status(None, Some(15)), 143);
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in ".*") {
            let _ = Event::parse(&s);
            let _ = Control::parse(&s);
            let _ = Event::parse(&format!("OCI2VM_ERROR step=config code=8 {s}"));
        }
    }
}
