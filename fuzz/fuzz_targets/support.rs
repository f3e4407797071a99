//! Shared by the fuzz targets: layer inputs from raw parts, and [`Settle`], which lets the
//! layer engine's worker threads finish exiting before an input returns.
//!
//! The engine runs each layer's read, inflate and parse stages on scoped threads. A scope
//! returns once their closures are done, while the OS threads may still be running their
//! thread-local destructors (std's channel context, the thread handle). libFuzzer checks for
//! leaks right after an input, and would report what those destructors are about to free.

use std::io::Read;
use std::time::{Duration, Instant};

use oci2vm::Digest;
use oci2vm::layers::{BlobInput, LayerInput};

/// One gzip-labelled layer per part (the content is sniffed: plain tar stays plain).
pub fn inputs<P: AsRef<[u8]>>(parts: &[P]) -> Vec<BlobInput> {
    parts
        .iter()
        .map(|p| LayerInput {
            digest: Digest::sha256_of(p.as_ref()),
            diff_id: None,
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            reader: Box::new(std::io::Cursor::new(p.as_ref().to_vec())) as Box<dyn Read + Send>,
            verify_digest: false,
        })
        .collect()
}

/// Threads of this process.
fn count() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count())
}

/// On drop, waits (at most a second) until no more threads run than when it was made.
pub struct Settle(usize);

impl Settle {
    pub fn new() -> Self {
        Settle(count())
    }
}

impl Drop for Settle {
    fn drop(&mut self) {
        let start = Instant::now();
        while count() > self.0 && start.elapsed() < Duration::from_secs(1) {
            std::thread::yield_now();
        }
    }
}
