//! Image configs (OCI `application/vnd.oci.image.config.v1+json` and Docker
//! `application/vnd.docker.container.image.v1+json`).
//!
//! ```text
//! {"architecture","os","variant"?,"config":{"Entrypoint","Cmd","Env","WorkingDir","User",
//!   "ExposedPorts":{p:{}},"Volumes":{v:{}},"Labels","StopSignal","Healthcheck"(Docker only)},
//!  "rootfs":{"type":"layers","diff_ids":[..]}, "history":[..]}
//! ```
//!
//! `oci-spec`'s `ImageConfiguration` parses everything but `Healthcheck` (not in the OCI spec),
//! which we read from the same bytes ourselves.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ImageError, MAX_CONFIG_SIZE};
use crate::digest::Digest;
use crate::platform::Platform;

/// Docker's `HEALTHCHECK` (durations in nanoseconds, as Docker stores them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Healthcheck {
    /// `["NONE"]`, `["CMD", args..]` or `["CMD-SHELL", command]`.
    #[serde(default)]
    pub test: Vec<String>,
    /// Time between checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<i64>,
    /// Time before a check is considered hung.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
    /// Grace period after start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period: Option<i64>,
    /// Interval during the start period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_interval: Option<i64>,
    /// Consecutive failures before unhealthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<i64>,
}

/// The runtime part of a config: what the guest's init needs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RuntimeConfig {
    /// `Entrypoint`.
    pub entrypoint: Option<Vec<String>>,
    /// `Cmd`.
    pub cmd: Option<Vec<String>>,
    /// `Env` (`NAME=value`).
    pub env: Vec<String>,
    /// `WorkingDir`.
    pub working_dir: Option<String>,
    /// `User` (`name`, `uid`, `uid:gid`, ...).
    pub user: Option<String>,
    /// `ExposedPorts` (`80/tcp`), sorted.
    pub exposed_ports: Vec<String>,
    /// `Volumes`, sorted.
    pub volumes: Vec<String>,
    /// `Labels`.
    pub labels: BTreeMap<String, String>,
    /// `StopSignal`.
    pub stop_signal: Option<String>,
    /// `Healthcheck` (Docker configs only).
    pub healthcheck: Option<Healthcheck>,
}

/// A parsed config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageConfig {
    /// The platform the image is built for.
    pub platform: Platform,
    /// Creation time as written.
    pub created: Option<String>,
    /// The runtime defaults.
    pub runtime: RuntimeConfig,
    /// `rootfs.diff_ids`, bottom layer first.
    pub diff_ids: Vec<Digest>,
}

#[derive(Deserialize)]
struct HealthcheckOnly {
    #[serde(default)]
    config: Option<HealthcheckConfig>,
}

#[derive(Deserialize)]
struct HealthcheckConfig {
    #[serde(rename = "Healthcheck", default)]
    healthcheck: Option<Healthcheck>,
}

impl ImageConfig {
    /// Parses and validates a config blob (already verified against `digest`).
    pub fn parse(bytes: &[u8], digest: &Digest) -> Result<Self, ImageError> {
        if bytes.len() as u64 > MAX_CONFIG_SIZE {
            return Err(ImageError::TooLarge {
                what: "config",
                digest: digest.to_string(),
                size: bytes.len() as u64,
                limit: MAX_CONFIG_SIZE,
            });
        }
        let malformed = |reason: String| ImageError::Malformed {
            what: "config",
            digest: digest.to_string(),
            reason,
        };
        let c: oci_spec::image::ImageConfiguration =
            serde_json::from_slice(bytes).map_err(|e| malformed(e.to_string()))?;
        let hc: HealthcheckOnly =
            serde_json::from_slice(bytes).map_err(|e| malformed(format!("Healthcheck: {e}")))?;
        if c.rootfs().typ() != "layers" {
            return Err(malformed(format!(
                "rootfs.type is {:?}, want \"layers\"",
                c.rootfs().typ()
            )));
        }
        let diff_ids = c
            .rootfs()
            .diff_ids()
            .iter()
            .map(|d| Digest::parse(d).map_err(|e| malformed(format!("rootfs.diff_ids: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let platform = Platform::new(
            &c.os().to_string(),
            &c.architecture().to_string(),
            c.variant().as_deref(),
        );
        let mut runtime = RuntimeConfig::default();
        if let Some(cfg) = c.config() {
            let sorted = |v: &Option<Vec<String>>| {
                let mut v = v.clone().unwrap_or_default();
                v.sort();
                v.dedup();
                v
            };
            runtime = RuntimeConfig {
                entrypoint: cfg.entrypoint().clone(),
                cmd: cfg.cmd().clone(),
                env: cfg.env().clone().unwrap_or_default(),
                working_dir: cfg.working_dir().clone().filter(|w| !w.is_empty()),
                user: cfg.user().clone().filter(|u| !u.is_empty()),
                exposed_ports: sorted(cfg.exposed_ports()),
                volumes: sorted(cfg.volumes()),
                labels: cfg
                    .labels()
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .collect(),
                stop_signal: cfg.stop_signal().clone().filter(|s| !s.is_empty()),
                healthcheck: hc.config.and_then(|c| c.healthcheck),
            };
        }
        Ok(ImageConfig {
            platform,
            created: c.created().clone(),
            runtime,
            diff_ids,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCKER: &str = r#"{"architecture":"amd64","os":"linux","config":{"Hostname":"h","User":"65534:65534",
      "ExposedPorts":{"443/tcp":{},"80/tcp":{}},"Env":["PATH=/bin","EMPTY="],"Cmd":["-p","8080"],
      "Healthcheck":{"Test":["CMD","true"],"Interval":5000000000,"Timeout":2000000000,"Retries":3},
      "Image":"","Volumes":{"/data":{},"/cache":{}},"WorkingDir":"/srv/www","Entrypoint":["/httpd"],
      "OnBuild":["RUN x"],"Labels":{"a":"b"},"StopSignal":"SIGQUIT"},
      "rootfs":{"type":"layers","diff_ids":["sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"]}}"#;

    #[test]
    fn parses_docker_config_with_healthcheck() {
        let c =
            ImageConfig::parse(DOCKER.as_bytes(), &Digest::sha256_of(DOCKER.as_bytes())).unwrap();
        let r = &c.runtime;
        assert_eq!(c.platform.to_string(), "linux/amd64");
        assert_eq!(r.entrypoint.as_deref(), Some(&["/httpd".to_string()][..]));
        assert_eq!(r.exposed_ports, ["443/tcp", "80/tcp"]);
        assert_eq!(r.volumes, ["/cache", "/data"]);
        assert_eq!(r.user.as_deref(), Some("65534:65534"));
        assert_eq!(r.stop_signal.as_deref(), Some("SIGQUIT"));
        let hc = r.healthcheck.as_ref().unwrap();
        assert_eq!(hc.test, ["CMD", "true"]);
        assert_eq!((hc.interval, hc.retries), (Some(5_000_000_000), Some(3)));
        assert_eq!(c.diff_ids.len(), 1);
    }

    #[test]
    fn rejects_bad_configs() {
        let d = Digest::sha256_of(b"");
        let bad_diff = DOCKER.replace("sha256:e3b0", "sha256:E3B0");
        assert!(ImageConfig::parse(bad_diff.as_bytes(), &d).is_err());
        let bad_type = DOCKER.replace(r#""type":"layers""#, r#""type":"other""#);
        assert!(ImageConfig::parse(bad_type.as_bytes(), &d).is_err());
        assert!(ImageConfig::parse(b"{}", &d).is_err());
        let big = format!("{DOCKER}{}", " ".repeat(8 << 20));
        assert!(matches!(
            ImageConfig::parse(big.as_bytes(), &d),
            Err(ImageError::TooLarge { .. })
        ));
    }

    #[test]
    fn null_fields_are_tolerated() {
        let j = r#"{"architecture":"arm64","os":"linux","config":{"Env":null,"Cmd":null,"Entrypoint":null,"Healthcheck":null},"rootfs":{"type":"layers","diff_ids":[]}}"#;
        let c = ImageConfig::parse(j.as_bytes(), &Digest::sha256_of(j.as_bytes())).unwrap();
        assert_eq!(c.platform.to_string(), "linux/arm64/v8");
        assert_eq!(c.runtime.cmd, None);
        assert!(c.runtime.healthcheck.is_none());
    }
}
