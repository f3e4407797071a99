//! `docker run -t`: the workload's stdin, stdout and stderr are one pseudo-terminal; the init
//! relays its master side to the stdout port (and the stdin port into it, with `-i`).
//!
//! ```text
//! workload fds 0,1,2 ── /dev/pts/N ══ master ──▶ oci2vm.stdout port ──▶ host stdout
//!                                            ◀── oci2vm.stdin port  ◀── host stdin (-i)
//! ```
//!
//! The relay runs in the supervisor's poll loop (no threads: the init forks health checks).
//! When the host's stdin ends, the terminal gets its end-of-file character (^D), as typing
//! it would; output still buffered when the workload exits is drained before its status is
//! reported.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};

use crate::sys;

/// ^D: the terminal's default VEOF character.
const EOF_CHAR: u8 = 0x04;

/// The master side of the workload's terminal and where its bytes go.
#[derive(Debug)]
pub struct Relay {
    master: Option<File>,
    out: File,
    input: Option<File>,
}

impl Relay {
    /// A relay from `master` to `out`, and from `input` (the stdin port) into `master`.
    pub fn new(master: File, out: File, input: Option<File>) -> Self {
        Relay {
            master: Some(master),
            out,
            input,
        }
    }

    /// The fds to poll: master, then input (`None` once closed).
    pub fn fds(&self) -> [Option<RawFd>; 2] {
        [
            self.master.as_ref().map(AsRawFd::as_raw_fd),
            self.input.as_ref().map(AsRawFd::as_raw_fd),
        ]
    }

    /// The terminal has output (or hung up): copy one chunk to the stdout port.
    pub fn master_ready(&mut self) {
        let Some(m) = self.master.as_mut() else {
            return;
        };
        let mut buf = [0u8; 16 << 10];
        match m.read(&mut buf) {
            Ok(n) if n > 0 => {
                if self.out.write_all(&buf[..n]).is_err() {
                    // the host went away: keep draining so the workload never blocks
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // EIO: every slave fd is closed (the workload and its children are gone)
            _ => self.master = None,
        }
    }

    /// The host sent input: copy one chunk into the terminal; at its end, send ^D.
    pub fn input_ready(&mut self) {
        let Some(i) = self.input.as_mut() else { return };
        let mut buf = [0u8; 16 << 10];
        let data: &[u8] = match i.read(&mut buf) {
            Ok(n) if n > 0 => &buf[..n],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return,
            _ => {
                self.input = None;
                &[EOF_CHAR]
            }
        };
        if let Some(m) = self.master.as_ref()
            && sys::write_all(m.as_raw_fd(), data).is_err()
        {
            self.master = None;
        }
    }

    /// The host's terminal changed size: the kernel tells the foreground job (SIGWINCH).
    pub fn resize(&mut self, rows: u16, cols: u16) {
        if let Some(m) = self.master.as_ref() {
            let _ = sys::set_winsize(m.as_raw_fd(), rows, cols);
        }
    }

    /// After the workload exited: copy what the terminal still holds, waiting at most
    /// `ms` between chunks (a leftover process may keep the terminal open).
    pub fn drain(&mut self, ms: i32) {
        while let Some(fd) = self.fds()[0] {
            match sys::poll_readable(&[fd], ms) {
                Ok(r) if r.first() == Some(&true) => self.master_ready(),
                _ => break,
            }
        }
    }
}
