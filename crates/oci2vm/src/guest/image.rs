//! From an image's runtime config (OCI `config` object) to the guest's config, with Docker's
//! rules for `docker run` overrides.
//!
//! ```text
//! argv = (--entrypoint given ? [--entrypoint] : Entrypoint)
//!        ++ (CMD given ? CMD : (--entrypoint given ? [] : Cmd))
//! ```

use oci2vm_guest::GuestConfig;

/// The runtime fields of an OCI image config that the guest uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageRuntime {
    /// `Entrypoint`.
    pub entrypoint: Vec<String>,
    /// `Cmd`.
    pub cmd: Vec<String>,
    /// `Env`.
    pub env: Vec<String>,
    /// `WorkingDir`.
    pub workdir: String,
    /// `User`.
    pub user: String,
    /// `StopSignal` (name like `SIGINT`, or a number).
    pub stop_signal: Option<String>,
}

/// Docker's argv rule.
pub fn resolve_argv(
    entrypoint: &[String],
    cmd: &[String],
    entrypoint_override: Option<&[String]>,
    cmd_override: Option<&[String]>,
) -> Vec<String> {
    let ep = entrypoint_override.unwrap_or(entrypoint);
    let cmd = match (cmd_override, entrypoint_override) {
        (Some(c), _) => c,
        (None, Some(_)) => &[],
        (None, None) => cmd,
    };
    ep.iter().chain(cmd).cloned().collect()
}

/// A signal name (`SIGTERM`, `TERM`) or number as a number.
pub fn signal_number(s: &str) -> Option<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let name = s.strip_prefix("SIG").unwrap_or(s);
    const NAMES: [&str; 31] = [
        "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2",
        "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG",
        "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "PWR", "SYS",
    ];
    NAMES.iter().position(|n| *n == name).map(|i| i as i32 + 1)
}

/// The config written to `/.oci2vm/config` in a converted root filesystem.
pub fn guest_config(img: &ImageRuntime) -> GuestConfig {
    GuestConfig {
        argv: resolve_argv(&img.entrypoint, &img.cmd, None, None),
        env: img.env.clone(),
        workdir: img.workdir.clone(),
        user: img.user.clone(),
        stop_signal: img
            .stop_signal
            .as_deref()
            .and_then(signal_number)
            .unwrap_or(15),
        ..GuestConfig::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn docker_argv_rules() {
        let (ep, cmd) = (v(&["/entry"]), v(&["a", "b"]));
        assert_eq!(
            resolve_argv(&ep, &cmd, None, None),
            v(&["/entry", "a", "b"])
        );
        assert_eq!(
            resolve_argv(&ep, &cmd, None, Some(&v(&["x"]))),
            v(&["/entry", "x"])
        );
        assert_eq!(resolve_argv(&ep, &cmd, Some(&v(&["sh"])), None), v(&["sh"]));
        assert_eq!(
            resolve_argv(&ep, &cmd, Some(&v(&["sh"])), Some(&v(&["-c", "x"]))),
            v(&["sh", "-c", "x"])
        );
        assert_eq!(resolve_argv(&[], &v(&["sh"]), None, None), v(&["sh"]));
    }

    #[test]
    fn signals() {
        assert_eq!(signal_number("SIGTERM"), Some(15));
        assert_eq!(signal_number("INT"), Some(2));
        assert_eq!(signal_number("SIGWINCH"), Some(28));
        assert_eq!(signal_number("9"), Some(9));
        assert_eq!(signal_number("SIGNOPE"), None);
        assert_eq!(signal_number("0"), None);
    }

    #[test]
    fn config_from_image() {
        let img = ImageRuntime {
            cmd: v(&["sh"]),
            env: v(&["PATH=/bin"]),
            stop_signal: Some("SIGQUIT".into()),
            ..Default::default()
        };
        let c = guest_config(&img);
        assert_eq!((c.argv, c.stop_signal), (v(&["sh"]), 3));
    }
}
