//! The init's main loop while the workload runs: signals in, control messages in, statuses out.

use crate::health::Checker;
use crate::sys;
use crate::tty::Relay;
use oci2vm_guest::Control;
use oci2vm_guest::protocol::docker_status;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};

/// Waits for `pid` to finish and returns its status as Docker reports it. Meanwhile it reaps
/// every other child, forwards the signals it receives, obeys control messages and relays
/// the workload's terminal (`-t`).
pub fn supervise(
    pid: i32,
    signals: &OwnedFd,
    mut control: Option<&File>,
    mut health: Option<&mut Checker>,
    mut tty: Option<&mut Relay>,
) -> std::io::Result<i32> {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        // fixed slots: signals, control, terminal master, terminal input (-1: not polled)
        let relay = tty.as_ref().map_or([None, None], |r| r.fds());
        let fds = [
            signals.as_raw_fd(),
            control.map_or(-1, |c| c.as_raw_fd()),
            relay[0].unwrap_or(-1),
            relay[1].unwrap_or(-1),
        ];
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
                            if let Some(t) = tty.as_mut() {
                                t.drain(200);
                            }
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
        if let Some(t) = tty.as_mut() {
            if ready[2] {
                t.master_ready();
            }
            if ready[3] {
                t.input_ready();
            }
        }
        if ready[1]
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
                    Some(Control::Winsize(rows, cols)) => {
                        if let Some(t) = tty.as_mut() {
                            t.resize(rows, cols);
                        }
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
