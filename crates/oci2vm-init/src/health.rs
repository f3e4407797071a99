//! The image's Healthcheck, run by the init while the workload runs (`oci2vm run --health`).
//!
//! ```text
//! every interval: fork ── setns(/proc/WORKLOAD/ns/mnt) ── chdir, identity, env ── exec argv
//!                 (stdio on /dev/null; killed when it outlives the timeout)
//! status: starting ──success──> healthy ──`retries` failures in a row──> unhealthy ──success──> healthy
//!         failures during the start period do not count (Docker's rules)
//! each change is sent as OCI2VM_HEALTH=healthy|unhealthy <detail> on the control port
//! ```
//!
//! The check joins the workload's mount namespace (its root, its /proc), not its PID
//! namespace: joining that would need a second fork whose child the workload, as PID 1 there,
//! would have to reap.

use crate::exec;
use crate::sys;
use crate::users::Identity;
use crate::workload::check_file;
use oci2vm_guest::protocol::docker_status;
use oci2vm_guest::{Event, Health};
use std::time::{Duration, Instant};

/// Runs the checks and tracks the status.
#[derive(Debug)]
pub struct Checker {
    health: Health,
    env: Vec<String>,
    workdir: String,
    identity: Identity,
    workload: i32,
    started: Instant,
    next: Instant,
    running: Option<(i32, Instant)>,
    timed_out: bool,
    failures: u32,
    healthy: Option<bool>,
}

impl Checker {
    /// A checker for `workload`, the first check one interval from now.
    pub fn new(health: Health, env: Vec<String>, workdir: String, identity: Identity) -> Self {
        let now = Instant::now();
        let next = now + Duration::from_millis(health.interval_ms);
        Checker {
            health,
            env,
            workdir,
            identity,
            workload: 0,
            started: now,
            next,
            running: None,
            timed_out: false,
            failures: 0,
            healthy: None,
        }
    }

    /// Sets the workload's pid (after it was spawned).
    pub fn set_workload(&mut self, pid: i32) {
        self.workload = pid;
    }

    /// Milliseconds until [`Checker::tick`] has something to do (for poll).
    pub fn wait_ms(&self, now: Instant) -> i32 {
        let due = match self.running {
            Some((_, t)) => t + Duration::from_millis(self.health.timeout_ms),
            None => self.next,
        };
        let ms = due.saturating_duration_since(now).as_millis();
        i32::try_from(ms).unwrap_or(i32::MAX).max(1)
    }

    /// Starts a due check, or kills one past its timeout.
    pub fn tick(&mut self, now: Instant) {
        match self.running {
            Some((pid, t))
                if !self.timed_out && now >= t + Duration::from_millis(self.health.timeout_ms) =>
            {
                self.timed_out = true;
                let _ = sys::kill(pid, libc::SIGKILL);
            }
            Some(_) => {}
            None if now >= self.next => {
                self.next = now + Duration::from_millis(self.health.interval_ms);
                match self.spawn() {
                    Ok(pid) => {
                        self.running = Some((pid, now));
                        self.timed_out = false;
                    }
                    Err(e) => self.record(false, &format!("starting the check: {e}"), now),
                }
            }
            None => {}
        }
    }

    /// Feeds a reaped child; returns true when it was the check (consumed).
    pub fn reaped(&mut self, pid: i32, exited: Option<i32>, signaled: Option<i32>) -> bool {
        match self.running {
            Some((p, _)) if p == pid => {
                self.running = None;
                let now = Instant::now();
                let status = docker_status(exited, signaled);
                if self.timed_out {
                    let detail = format!("timed out after {} ms", self.health.timeout_ms);
                    self.record(false, &detail, now);
                } else {
                    self.record(status == 0, &format!("exit status {status}"), now);
                }
                true
            }
            _ => false,
        }
    }

    fn record(&mut self, ok: bool, detail: &str, now: Instant) {
        let in_start =
            now.duration_since(self.started) < Duration::from_millis(self.health.start_ms);
        let state = if ok {
            self.failures = 0;
            Some(true)
        } else if in_start {
            None
        } else {
            self.failures += 1;
            (self.failures >= self.health.retries).then_some(false)
        };
        if let Some(h) = state
            && self.healthy != Some(h)
        {
            self.healthy = Some(h);
            let detail = if h {
                detail.to_string()
            } else {
                format!("{} consecutive failures, last: {detail}", self.failures)
            };
            crate::console::send(&Event::Health { healthy: h, detail });
        }
    }

    fn spawn(&self) -> std::io::Result<i32> {
        let ns = std::fs::File::open(format!("/proc/{}/ns/mnt", self.workload))?;
        let devnull = std::fs::File::options()
            .read(true)
            .write(true)
            .open("/dev/null")?;
        let pid = sys::fork()?;
        if pid > 0 {
            return Ok(pid);
        }
        // The child: never returns.
        use std::os::fd::{AsRawFd, OwnedFd};
        sys::reset_signals(&crate::workload::handled_signals());
        let ns: OwnedFd = ns.into();
        let fail = |_: std::io::Error| sys::exit_now(126);
        sys::setns(&ns, libc::CLONE_NEWNS).unwrap_or_else(fail);
        for fd in 0..3 {
            sys::dup2(devnull.as_raw_fd(), fd).unwrap_or_else(fail);
        }
        std::env::set_current_dir(&self.workdir).unwrap_or_else(fail);
        let id = &self.identity;
        sys::set_identity(id.uid, id.gid, &id.groups).unwrap_or_else(fail);
        let Some(name) = self.health.argv.first() else {
            sys::exit_now(127)
        };
        let path = match exec::lookup(name, exec::path_of(&self.env), check_file) {
            Ok(p) => p,
            Err(e) => sys::exit_now(e.status()),
        };
        let _ = sys::execve(&path, &self.health.argv, &self.env);
        sys::exit_now(127)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checker(retries: u32, start_ms: u64) -> Checker {
        Checker::new(
            Health {
                argv: vec!["true".into()],
                interval_ms: 1000,
                timeout_ms: 500,
                start_ms,
                retries,
            },
            vec![],
            "/".into(),
            Identity {
                uid: 0,
                gid: 0,
                groups: vec![],
                home: "/root".into(),
            },
        )
    }

    #[test]
    fn docker_state_machine() {
        let mut c = checker(3, 0);
        let now = Instant::now();
        c.record(false, "exit status 1", now);
        c.record(false, "exit status 1", now);
        assert_eq!(c.healthy, None, "unhealthy before `retries` failures");
        c.record(false, "exit status 1", now);
        assert_eq!(c.healthy, Some(false));
        c.record(true, "exit status 0", now);
        assert_eq!((c.healthy, c.failures), (Some(true), 0));
        // Failures during the start period do not count.
        let mut s = checker(1, 60_000);
        s.record(false, "exit status 1", Instant::now());
        assert_eq!((s.healthy, s.failures), (None, 0));
    }

    #[test]
    fn poll_wait_follows_the_schedule() {
        let c = checker(3, 0);
        let w = c.wait_ms(Instant::now());
        assert!((900..=1000).contains(&w), "{w}");
        assert_eq!(c.wait_ms(Instant::now() + Duration::from_secs(5)), 1);
    }
}
