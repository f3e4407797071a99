//! The init's main loop while the workload runs: signals in, control messages in, statuses out.

use crate::health::Checker;
use crate::sys;
use oci2vm_guest::Control;
use oci2vm_guest::protocol::docker_status;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};

/// Waits for `pid` to finish and returns its status as Docker reports it. Meanwhile it reaps
/// every other child, forwards the signals it receives, and obeys control messages.
pub fn supervise(
    pid: i32,
    signals: &OwnedFd,
    mut control: Option<&File>,
    mut health: Option<&mut Checker>,
) -> std::io::Result<i32> {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let mut fds = vec![signals.as_raw_fd()];
        if let Some(c) = control {
            fds.push(c.as_raw_fd());
        }
        let timeout = health
            .as_ref()
            .map_or(-1, |h| h.wait_ms(std::time::Instant::now()));
        let ready = sys::poll_readable(&fds, timeout)?;
        if let Some(h) = health.as_mut() {
            h.tick(std::time::Instant::now());
        }
        if ready[0] {
            match sys::read_signal(signals) {
                Some(libc::SIGCHLD) => {
                    while let Some(r) = sys::reap_any() {
                        if let Some(h) = health.as_mut()
                            && h.reaped(r.pid, r.exited, r.signaled)
                        {
                            continue;
                        }
                        if r.pid == pid {
                            return Ok(docker_status(r.exited, r.signaled));
                        }
                    }
                }
                Some(sig) => {
                    let _ = sys::kill(pid, sig);
                }
                None => {}
            }
        }
        if ready.get(1) == Some(&true)
            && let Some(mut c) = control
        {
            let mut chunk = [0u8; 256];
            match c.read(&mut chunk) {
                Ok(0) | Err(_) => control = None, // host went away: stop listening
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buf.drain(..=nl).collect();
                match Control::parse(&String::from_utf8_lossy(&line)) {
                    Some(Control::Signal(sig)) => {
                        let _ = sys::kill(pid, sig);
                    }
                    Some(Control::Poweroff) => {
                        let _ = sys::kill(pid, libc::SIGKILL);
                    }
                    None => {}
                }
            }
            if buf.len() > 4096 {
                buf.clear();
            }
        }
    }
}
