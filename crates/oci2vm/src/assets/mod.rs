//! VM assets: ready-to-run configurations for every VMM we target, written next to the kernel,
//! initramfs and root disk of a converted image.
//!
//! ```text
//! AssetsPlan ──> firecracker.json      (firecracker --no-api --config-file)
//!            ──> cloud-hypervisor.sh   (cloud-hypervisor command line)
//!            ──> qemu.sh               (microvm by default, --machine q35)
//!            ──> libvirt.xml           (direct kernel boot domain)
//!            ──> manifest.json         (ours + Gondolin's AssetManifest v1 keys)
//! RuntimeConfig ──> lxc `config`, `.nspawn` + systemd-nspawn command (rootfs-directory outputs)
//!                ──> health::HealthPlan (for `run --health`)
//! ```
//!
//! Every emitter is a pure function from the plan to the file text; [`writer`] stages them in a
//! temporary directory inside `DIR` and renames them into place. `vmlinux` extracts the ELF
//! kernel Firecracker needs from a bzImage. The files and their consumers are listed in
//! `docs/assets.md`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::Digest;

pub mod build;
pub mod cloud_hypervisor;
pub mod cmdline;
pub mod firecracker;
pub mod gondolin;
pub mod health;
pub mod libvirt;
pub mod lxc;
pub mod manifest;
pub mod nspawn;
pub mod qemu;
pub mod vmlinux;
pub mod writer;

#[cfg(test)]
mod fc_schema;

/// Everything the emitters need, mapped by the caller from the conversion pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct AssetsPlan {
    /// The source reference as the user gave it (`docker://busybox`, `oci:DIR:tag`, ...).
    pub source: String,
    /// The resolved manifest digest.
    pub digest: Digest,
    /// The platform converted, `os/arch[/variant]`.
    pub platform: String,
    /// The image's runtime configuration.
    pub runtime: RuntimeConfig,
    /// File names (relative to DIR) of the boot artefacts.
    pub files: AssetFiles,
    /// The guest's kernel command line, as built by the guest side; each VMM adapts the
    /// console (see [`cmdline`]).
    pub kernel_cmdline: String,
    /// The command line for QEMU and libvirt when it differs from `kernel_cmdline` (user
    /// networking: the guest's eth0 set up for SLIRP's 10.0.2.15/24), None to use that one.
    pub user_net_cmdline: Option<String>,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// vCPUs.
    pub cpus: u32,
    /// A host tap device for VMMs without user networking (Firecracker, Cloud Hypervisor).
    pub tap: Option<String>,
    /// The guest MAC address (`52:54:00:..`), when fixed.
    pub mac: Option<String>,
    /// Host-to-guest port forwards, usually [`PortForward::from_exposed_ports`].
    pub port_forwards: Vec<PortForward>,
}

/// The image config's runtime part (OCI image-spec `config` object), names as in the spec.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RuntimeConfig {
    /// `Entrypoint`.
    pub entrypoint: Vec<String>,
    /// `Cmd`.
    pub cmd: Vec<String>,
    /// `Env`, `KEY=VALUE` entries in order.
    pub env: Vec<String>,
    /// `WorkingDir`, empty when unset.
    pub working_dir: String,
    /// `User`: `name`, `uid`, `uid:gid` or `name:group`; empty when unset.
    pub user: String,
    /// `ExposedPorts` keys, e.g. `8080/tcp`.
    pub exposed_ports: Vec<String>,
    /// `Volumes` keys (container paths).
    pub volumes: Vec<String>,
    /// `Labels`.
    pub labels: BTreeMap<String, String>,
    /// `StopSignal`, e.g. `SIGTERM` or `15`.
    pub stop_signal: Option<String>,
    /// Docker's `Healthcheck`.
    pub healthcheck: Option<Healthcheck>,
}

impl AssetsPlan {
    /// The command line QEMU and libvirt boot with (before [`cmdline::for_qemu`]).
    pub fn qemu_cmdline(&self) -> &str {
        self.user_net_cmdline
            .as_deref()
            .unwrap_or(&self.kernel_cmdline)
    }
}

impl RuntimeConfig {
    /// The process to start: Entrypoint followed by Cmd.
    pub fn argv(&self) -> Vec<String> {
        self.entrypoint.iter().chain(&self.cmd).cloned().collect()
    }
}

/// Docker's `Healthcheck` (durations in nanoseconds, 0 = default).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Healthcheck {
    /// `["CMD", arg...]`, `["CMD-SHELL", "cmd"]`, `["NONE"]`, or empty (inherit).
    pub test: Vec<String>,
    /// Time between checks.
    pub interval: u64,
    /// Time a check may take.
    pub timeout: u64,
    /// Grace period after start during which failures do not count.
    pub start_period: u64,
    /// Consecutive failures before unhealthy.
    pub retries: u32,
}

/// File names of the boot artefacts inside DIR.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AssetFiles {
    /// The compressed kernel (QEMU, libvirt, Gondolin).
    pub bzimage: String,
    /// The ELF kernel (Firecracker, Cloud Hypervisor).
    pub vmlinux: String,
    /// The initramfs.
    pub initramfs: String,
    /// The root disk.
    pub rootfs: String,
}

impl Default for AssetFiles {
    fn default() -> Self {
        AssetFiles {
            bzimage: "bzImage".into(),
            vmlinux: "vmlinux".into(),
            initramfs: "initramfs".into(),
            rootfs: "rootfs.ext4".into(),
        }
    }
}

/// A transport protocol of a forwarded port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// `tcp` or `udp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// One forwarded port: connections to `host` on the host reach `guest` in the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct PortForward {
    /// The protocol.
    pub protocol: Protocol,
    /// Host port.
    pub host: u16,
    /// Guest port.
    pub guest: u16,
}

/// At most this many ports come from one `ExposedPorts` range (`8000-8100/tcp`).
pub const MAX_PORTS_PER_RANGE: u32 = 256;

impl PortForward {
    /// Maps `ExposedPorts` keys to forwards with host port = guest port (the documented
    /// mapping); `8080`, `8080/tcp`, `53/udp` and ranges `8000-8003/tcp` are accepted, `sctp`
    /// is refused (no VMM user network forwards it). Sorted and deduplicated.
    pub fn from_exposed_ports(ports: &[String]) -> Result<Vec<PortForward>, AssetsError> {
        let mut out = Vec::new();
        for key in ports {
            let bad = |reason: &'static str| AssetsError::ExposedPort {
                value: key.clone(),
                reason,
            };
            let (range, proto) = match key.split_once('/') {
                Some((r, p)) => (r, p),
                None => (key.as_str(), "tcp"),
            };
            let protocol = match proto.to_ascii_lowercase().as_str() {
                "tcp" => Protocol::Tcp,
                "udp" => Protocol::Udp,
                _ => return Err(bad("only tcp and udp can be forwarded")),
            };
            let (lo, hi) = match range.split_once('-') {
                Some((a, b)) => (a, b),
                None => (range, range),
            };
            let lo: u16 = lo.parse().map_err(|_| bad("port is not a number"))?;
            let hi: u16 = hi.parse().map_err(|_| bad("port is not a number"))?;
            if lo == 0 || hi < lo {
                return Err(bad("port range is empty or starts at 0"));
            }
            if u32::from(hi - lo) >= MAX_PORTS_PER_RANGE {
                return Err(bad("port range is too large"));
            }
            for port in lo..=hi {
                out.push(PortForward {
                    protocol,
                    host: port,
                    guest: port,
                });
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }
}

/// Errors building or writing VM assets.
#[derive(Debug, thiserror::Error)]
pub enum AssetsError {
    /// An `ExposedPorts` key we cannot map.
    #[error("exposed port {value:?}: {reason}")]
    ExposedPort {
        /// The key.
        value: String,
        /// Why.
        reason: &'static str,
    },
    /// A value that the target format cannot carry (newline in a config line, ...).
    #[error("{target}: cannot express {what} {value:?}: {reason}")]
    Unrepresentable {
        /// The file or consumer (`lxc config`, `.nspawn`, ...).
        target: &'static str,
        /// What the value is (`argument`, `environment entry`, ...).
        what: &'static str,
        /// The value.
        value: String,
        /// Why.
        reason: &'static str,
    },
    /// A plan value out of the consumer's accepted range.
    #[error("{field} = {value} is out of range for {target} ({reason})")]
    OutOfRange {
        /// The consumer.
        target: &'static str,
        /// The field.
        field: &'static str,
        /// The value.
        value: u64,
        /// The accepted range.
        reason: &'static str,
    },
    /// Reading or writing a file in DIR failed.
    #[error("{path}: {op}")]
    Io {
        /// The path.
        path: std::path::PathBuf,
        /// What we were doing.
        op: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Serialising JSON failed.
    #[error("serialising {file}")]
    Json {
        /// The file.
        file: &'static str,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
}

impl crate::error::Classify for AssetsError {
    fn kind(&self) -> crate::ErrorKind {
        match self {
            AssetsError::ExposedPort { .. } => crate::ErrorKind::InvalidImage,
            AssetsError::Unrepresentable { .. } => crate::ErrorKind::Unsupported,
            AssetsError::OutOfRange { .. } => crate::ErrorKind::InvalidInput,
            AssetsError::Io { .. } | AssetsError::Json { .. } => crate::ErrorKind::Io,
        }
    }
}

impl From<AssetsError> for crate::Error {
    fn from(e: AssetsError) -> Self {
        crate::Error::new(crate::error::Classify::kind(&e), e)
    }
}

/// Quotes `s` for a POSIX shell: bare when it only has safe characters, else single quotes
/// with `'` written as `'\''`.
pub fn sh_quote(s: &str) -> String {
    let safe = !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'/' | b'.' | b'_' | b'-' | b'=' | b':' | b',' | b'+' | b'@'
                )
        });
    if safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Joins `argv` into one shell-quoted command line.
pub fn sh_join<S: AsRef<str>>(argv: &[S]) -> String {
    argv.iter()
        .map(|a| sh_quote(a.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A short machine name from the source reference and digest: the last path component of the
/// repository (tag and transport dropped), restricted to `[a-z0-9-]`, plus 12 digest hex digits,
/// e.g. `busybox-3f2a9c1b7d0e`. Valid as a libvirt domain, LXC utsname and nspawn machine name.
pub fn machine_name(source: &str, digest: &Digest) -> String {
    let no_transport = ["docker://", "oci:", "oci-archive:", "docker-archive:"]
        .iter()
        .find_map(|t| source.strip_prefix(t))
        .unwrap_or(source);
    let no_digest = no_transport.split('@').next().unwrap_or(no_transport);
    let last = no_digest.rsplit('/').next().unwrap_or(no_digest);
    // `oci:DIR:tag` and `repo:tag`: the tag is after the last ':'; keep the part before it.
    let base = last.split(':').next().unwrap_or(last);
    let base = base.strip_suffix(".tar").unwrap_or(base);
    let mut slug: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    slug = slug.trim_matches('-').to_string();
    slug.truncate(40);
    if slug.is_empty() {
        slug.push_str("image");
    }
    let hex = digest.hex();
    format!("{slug}-{}", &hex[..12.min(hex.len())])
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Whether `tool` can be run for real here: installed, we are root, and /bin/busybox exists
    /// (the rootfs the container tests build). Missing tools skip locally and fail under CI.
    pub(crate) fn root_tool_usable(tool: &str, package: &str) -> bool {
        let have = std::process::Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        let root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        if !(have && root) {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{tool} (as root) missing under CI"
            );
            eprintln!("SKIPPED: needs {tool} (Debian package {package}) and root");
        }
        have && root && std::path::Path::new("/bin/busybox").exists()
    }

    /// A plan used by the emitters' tests.
    pub(crate) fn sample_plan() -> AssetsPlan {
        let runtime = RuntimeConfig {
            entrypoint: vec!["/bin/sh".into(), "-c".into()],
            cmd: vec!["echo \"hello world\" $HOME".into()],
            env: vec!["PATH=/usr/bin:/bin".into(), "GREETING=hi there".into()],
            working_dir: "/srv".into(),
            user: "1000:1000".into(),
            exposed_ports: vec!["8080/tcp".into(), "53/udp".into()],
            volumes: vec!["/data".into()],
            labels: BTreeMap::from([("org.example".into(), "x".into())]),
            stop_signal: Some("SIGINT".into()),
            healthcheck: None,
        };
        let port_forwards =
            PortForward::from_exposed_ports(&runtime.exposed_ports).expect("valid ports");
        AssetsPlan {
            source: "docker://docker.io/library/busybox:latest".into(),
            digest: Digest::sha256_of(b"manifest"),
            platform: "linux/amd64".into(),
            runtime,
            files: AssetFiles::default(),
            kernel_cmdline: "console=ttyS0 root=/dev/vda rw panic=-1 quiet".into(),
            user_net_cmdline: None,
            memory_mib: 256,
            cpus: 2,
            tap: None,
            mac: None,
            port_forwards,
        }
    }

    #[test]
    fn exposed_ports_map_host_equal_guest() {
        let ports = ["8080/tcp", "53/udp", "9000", "7000-7002/tcp", "8080/tcp"];
        let got = PortForward::from_exposed_ports(&ports.map(String::from)).expect("valid");
        let want: Vec<(Protocol, u16)> = vec![
            (Protocol::Tcp, 7000),
            (Protocol::Tcp, 7001),
            (Protocol::Tcp, 7002),
            (Protocol::Tcp, 8080),
            (Protocol::Tcp, 9000),
            (Protocol::Udp, 53),
        ];
        assert_eq!(
            got.iter().map(|p| (p.protocol, p.host)).collect::<Vec<_>>(),
            want
        );
        assert!(got.iter().all(|p| p.host == p.guest));
    }

    #[test]
    fn bad_exposed_ports_are_refused() {
        for bad in [
            "80/sctp",
            "http/tcp",
            "0/tcp",
            "90-80/tcp",
            "1-60000/tcp",
            "70000",
        ] {
            let r = PortForward::from_exposed_ports(&[bad.to_string()]);
            assert!(r.is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn sh_quote_round_trips_through_sh() {
        assert_eq!(sh_quote("abc/d.e"), "abc/d.e");
        assert_eq!(sh_quote(""), "''");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
        assert_eq!(sh_quote("$HOME"), "'$HOME'");
        let args = ["a b", "", "it's", "$HOME", "\\n", "*", "--x=1", "\"q\""];
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "for a in {}; do printf '[%s]\\n' \"$a\"; done",
                sh_join(&args)
            ))
            .output()
            .expect("run sh");
        let want: String = args.iter().map(|a| format!("[{a}]\n")).collect();
        assert_eq!(String::from_utf8_lossy(&out.stdout), want);
    }

    #[test]
    fn machine_names_are_safe() {
        let d = Digest::sha256_of(b"x");
        let hex12 = &d.hex()[..12];
        assert_eq!(
            machine_name("docker://docker.io/library/busybox:latest", &d),
            format!("busybox-{hex12}")
        );
        assert_eq!(
            machine_name("oci:/tmp/My Image:v1", &d),
            format!("my-image-{hex12}")
        );
        assert_eq!(
            machine_name("alpine@sha256:abc", &d),
            format!("alpine-{hex12}")
        );
        assert_eq!(machine_name("///", &d), format!("image-{hex12}"));
        assert_eq!(
            machine_name("oci-archive:/x/busybox.tar:latest", &d),
            format!("busybox-{hex12}")
        );
        assert_eq!(
            machine_name("localhost:5000/a/b:1", &d),
            format!("b-{hex12}")
        );
    }
}
