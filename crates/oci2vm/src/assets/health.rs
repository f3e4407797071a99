//! Turns Docker's `Healthcheck` into a plan for `run --health`.
//!
//! ```text
//! Test: []                 -> inherit: no check (nothing to inherit from after conversion)
//!       ["NONE"]           -> disabled
//!       ["CMD", a, b...]   -> exec argv [a, b...]
//!       ["CMD-SHELL", s]   -> exec ["/bin/sh", "-c", s]
//! Interval 0 -> 30s, Timeout 0 -> 30s, StartPeriod 0 -> 0s, Retries 0 -> 3   (Docker's defaults)
//! ```
//!
//! Durations in the image config are nanoseconds (Go `time.Duration`).

use std::time::Duration;

use super::{AssetsError, Healthcheck};

/// Docker's default interval and timeout.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
/// Docker's default timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Docker's default retries.
pub const DEFAULT_RETRIES: u32 = 3;

/// What to run and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthPlan {
    /// The command to execute in the guest.
    pub argv: Vec<String>,
    /// Time between checks.
    pub interval: Duration,
    /// Time one check may take before it counts as failed.
    pub timeout: Duration,
    /// Failures during this time after start do not count.
    pub start_period: Duration,
    /// Consecutive failures that make the workload unhealthy.
    pub retries: u32,
}

/// The plan for a healthcheck, or None when there is none or it is disabled.
pub fn plan(h: Option<&Healthcheck>) -> Result<Option<HealthPlan>, AssetsError> {
    let Some(h) = h else {
        return Ok(None);
    };
    let bad = |reason: &'static str| AssetsError::Unrepresentable {
        target: "healthcheck",
        what: "test",
        value: format!("{:?}", h.test),
        reason,
    };
    let argv = match h.test.split_first() {
        None => return Ok(None),
        Some((kind, rest)) => match kind.as_str() {
            "NONE" => return Ok(None),
            "CMD" if rest.is_empty() => return Err(bad("CMD without a command")),
            "CMD" => rest.to_vec(),
            "CMD-SHELL" => match rest {
                [script] => vec!["/bin/sh".into(), "-c".into(), script.clone()],
                _ => return Err(bad("CMD-SHELL takes exactly one string")),
            },
            _ => return Err(bad("the first element must be NONE, CMD or CMD-SHELL")),
        },
    };
    let or = |ns: u64, default: Duration| {
        if ns == 0 {
            default
        } else {
            Duration::from_nanos(ns)
        }
    };
    Ok(Some(HealthPlan {
        argv,
        interval: or(h.interval, DEFAULT_INTERVAL),
        timeout: or(h.timeout, DEFAULT_TIMEOUT),
        start_period: Duration::from_nanos(h.start_period),
        retries: if h.retries == 0 {
            DEFAULT_RETRIES
        } else {
            h.retries
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hc(test: &[&str]) -> Healthcheck {
        Healthcheck {
            test: test.iter().map(|s| s.to_string()).collect(),
            ..Healthcheck::default()
        }
    }

    #[test]
    fn defaults_apply_when_zero() {
        let p = plan(Some(&hc(&["CMD", "curl", "-f", "http://localhost/"])))
            .expect("valid")
            .expect("some");
        assert_eq!(p.argv, ["curl", "-f", "http://localhost/"]);
        assert_eq!(p.interval, Duration::from_secs(30));
        assert_eq!(p.timeout, Duration::from_secs(30));
        assert_eq!(p.start_period, Duration::ZERO);
        assert_eq!(p.retries, 3);
    }

    #[test]
    fn explicit_values_are_kept() {
        let h = Healthcheck {
            test: vec!["CMD-SHELL".into(), "test -f /ready || exit 1".into()],
            interval: 5_000_000_000,
            timeout: 2_500_000_000,
            start_period: 10_000_000_000,
            retries: 7,
        };
        let p = plan(Some(&h)).expect("valid").expect("some");
        assert_eq!(p.argv, ["/bin/sh", "-c", "test -f /ready || exit 1"]);
        assert_eq!(p.interval, Duration::from_secs(5));
        assert_eq!(p.timeout, Duration::from_millis(2500));
        assert_eq!(p.start_period, Duration::from_secs(10));
        assert_eq!(p.retries, 7);
    }

    #[test]
    fn none_empty_and_malformed() {
        assert_eq!(plan(None).expect("ok"), None);
        assert_eq!(plan(Some(&hc(&[]))).expect("ok"), None);
        assert_eq!(plan(Some(&hc(&["NONE"]))).expect("ok"), None);
        assert!(plan(Some(&hc(&["CMD"]))).is_err());
        assert!(plan(Some(&hc(&["CMD-SHELL", "a", "b"]))).is_err());
        assert!(plan(Some(&hc(&["curl", "x"]))).is_err());
    }
}
