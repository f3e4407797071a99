//! The user's terminal for `run -t`: its size (handed to the guest's pseudo-terminal) and raw
//! mode while `-it` forwards keystrokes, restored however the run ends.
//!
//! ```text
//! host tty (raw: no echo, no line editing, ^C is a byte) ──stdin port──▶ guest pty master
//!                                                                        line discipline:
//!                                                                        echo, ^C → SIGINT
//! ```

use std::io::{self, IsTerminal};
use std::os::fd::AsFd;

use rustix::termios::{self, OptionalActions, Termios};

/// Rows and columns of the terminal on stdout (else stdin, else stderr), if any.
pub fn size() -> Option<(u16, u16)> {
    let from = |fd: std::os::fd::BorrowedFd<'_>| {
        let ws = termios::tcgetwinsize(fd).ok()?;
        (ws.ws_row > 0 && ws.ws_col > 0).then_some((ws.ws_row, ws.ws_col))
    };
    from(io::stdout().as_fd())
        .or_else(|| from(io::stdin().as_fd()))
        .or_else(|| from(io::stderr().as_fd()))
}

/// Raw mode on stdin until dropped.
#[derive(Debug)]
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    /// Puts stdin in raw mode when it is a terminal (`None` when it is not).
    pub fn enter() -> io::Result<Option<RawMode>> {
        let stdin = io::stdin();
        if !stdin.is_terminal() {
            return Ok(None);
        }
        let saved = termios::tcgetattr(stdin.as_fd())?;
        let mut raw = saved.clone();
        raw.make_raw();
        termios::tcsetattr(stdin.as_fd(), OptionalActions::Now, &raw)?;
        Ok(Some(RawMode { saved }))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(io::stdin().as_fd(), OptionalActions::Now, &self.saved);
    }
}
