//! The host ends of the virtio-serial ports: Unix sockets we listen on and QEMU connects to.
//!
//! ```text
//! guest port       host socket     host side
//! oci2vm.stdout -> stdout.sock  -> our stdout (byte for byte)
//! oci2vm.stderr -> stderr.sock  -> our stderr
//! oci2vm.stdin  <- stdin.sock   <- our stdin (with -i); our EOF closes the socket = guest EOF
//! oci2vm.ctl   <-> ctl.sock    <-> Event lines in, Control lines out
//! ```
//!
//! We bind before QEMU starts (QEMU connects as a client at startup), so no connection race.
//! After QEMU exits, [`Channels::finish`] pokes every listener once so threads still waiting
//! in `accept` return, then joins the output threads: all output is written before we exit.

use oci2vm_guest::{Control, Event};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

/// Where output goes (the process's stdout/stderr, or buffers in tests).
pub type Sink = Box<dyn Write + Send>;

/// Running port threads.
#[derive(Debug)]
pub struct Channels {
    paths: Vec<PathBuf>,
    outputs: Vec<JoinHandle<()>>,
    control: Arc<Mutex<Option<UnixStream>>>,
    events: mpsc::Receiver<(Instant, Event)>,
}

fn listen(path: &Path) -> io::Result<UnixListener> {
    let _ = std::fs::remove_file(path);
    UnixListener::bind(path)
}

fn copy_out(listener: UnixListener, mut sink: Sink) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let Ok((mut s, _)) = listener.accept() else {
            return;
        };
        let mut buf = [0u8; 16 * 1024];
        let mut sink_ok = true;
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                // After the sink fails (e.g. `| head` closed the pipe) keep draining, so the
                // guest never blocks on a full port.
                Ok(n) if sink_ok => {
                    sink_ok = sink
                        .write_all(&buf[..n])
                        .and_then(|()| sink.flush())
                        .is_ok();
                }
                Ok(_) => {}
            }
        }
    })
}

impl Channels {
    /// Binds the sockets and starts the threads. `stdin`: forward this reader to the guest.
    pub fn start(
        ctl: &Path,
        stdout: (&Path, Sink),
        stderr: (&Path, Sink),
        stdin: Option<(&Path, Box<dyn Read + Send>)>,
    ) -> io::Result<Channels> {
        let mut paths = vec![
            ctl.to_path_buf(),
            stdout.0.to_path_buf(),
            stderr.0.to_path_buf(),
        ];
        let ctl_l = listen(ctl)?;
        let out_l = listen(stdout.0)?;
        let err_l = listen(stderr.0)?;
        let outputs = vec![copy_out(out_l, stdout.1), copy_out(err_l, stderr.1)];
        if let Some((path, mut input)) = stdin {
            paths.push(path.to_path_buf());
            let l = listen(path)?;
            // Detached: it may block on our stdin after the guest is gone.
            std::thread::spawn(move || {
                let Ok((mut s, _)) = l.accept() else { return };
                let _ = io::copy(&mut input, &mut s);
                // Half-close so QEMU delivers what it has not read yet before it sees EOF;
                // then hold the socket until QEMU closes it.
                let _ = s.shutdown(std::net::Shutdown::Write);
                let _ = s.read(&mut [0u8; 1]);
            });
        }
        let control: Arc<Mutex<Option<UnixStream>>> = Arc::new(Mutex::new(None));
        let (tx, events) = mpsc::channel();
        let slot = Arc::clone(&control);
        std::thread::spawn(move || {
            let Ok((s, _)) = ctl_l.accept() else { return };
            if let (Ok(w), Ok(mut g)) = (s.try_clone(), slot.lock()) {
                *g = Some(w);
            }
            for line in BufReader::new(s).lines() {
                let Ok(line) = line else { break };
                if let Some(ev) = Event::parse(&line)
                    && tx.send((Instant::now(), ev)).is_err()
                {
                    break;
                }
            }
        });
        Ok(Channels {
            paths,
            outputs,
            control,
            events,
        })
    }

    /// Sends a control message (false when the guest's control port is not connected yet).
    pub fn send(&self, c: Control) -> bool {
        let Ok(mut g) = self.control.lock() else {
            return false;
        };
        match g.as_mut() {
            Some(s) => s.write_all(format!("{}\n", c.render()).as_bytes()).is_ok(),
            None => false,
        }
    }

    /// Events received so far.
    pub fn poll_events(&self) -> Vec<(Instant, Event)> {
        self.events.try_iter().collect()
    }

    /// After QEMU has exited: unblocks pending accepts, waits for all output to be written,
    /// and returns the remaining events (waiting briefly for the control reader unless a
    /// final `Exit`/`Error` event has already arrived).
    pub fn finish(self, have_final: bool) -> Vec<(Instant, Event)> {
        for p in &self.paths {
            let _ = UnixStream::connect(p);
        }
        for t in self.outputs {
            let _ = t.join();
        }
        // The control reader ends at EOF too; give it a moment to deliver the last lines.
        let mut out: Vec<(Instant, Event)> = self.events.try_iter().collect();
        let is_final = |e: &Event| matches!(e, Event::Exit(_) | Event::Error { .. });
        if have_final || out.iter().any(|(_, e)| is_final(e)) {
            return out;
        }
        let deadline = Instant::now() + std::time::Duration::from_millis(500);
        while Instant::now() < deadline {
            match self
                .events
                .recv_timeout(std::time::Duration::from_millis(50))
            {
                Ok(e) => out.push(e),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn relays_output_and_events() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (o, e) = (Buf::default(), Buf::default());
        let d = dir.path();
        let ch = Channels::start(
            &d.join("c"),
            (&d.join("o"), Box::new(o.clone())),
            (&d.join("e"), Box::new(e.clone())),
            None,
        )
        .expect("start");
        let mut c = UnixStream::connect(d.join("c")).expect("c");
        let mut so = UnixStream::connect(d.join("o")).expect("o");
        so.write_all(b"hello\n").expect("w");
        c.write_all(b"OCI2VM_READY\nnoise\nOCI2VM_EXIT=7\n")
            .expect("w");
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(ch.send(Control::Signal(15)));
        let mut got = [0u8; 10];
        c.read_exact(&mut got).expect("read control");
        assert_eq!(&got, b"SIGNAL 15\n");
        drop((c, so));
        let evs: Vec<Event> = ch.finish(false).into_iter().map(|(_, e)| e).collect();
        assert_eq!(evs, vec![Event::Ready, Event::Exit(7)]);
        assert_eq!(&*o.0.lock().expect("lock"), b"hello\n");
        assert!(
            e.0.lock().expect("lock").is_empty(),
            "stderr never connected, finish still returns"
        );
    }
}
