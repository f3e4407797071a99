//! Benchmark ceiling: inflate the given gzip blobs with the same decoder the layer engine uses
//! (flate2 `MultiGzDecoder`, zlib-rs backend), output discarded; one thread per blob, or one
//! blob after the other with `--serial` (as the one-pass ext4 path reads layers).
//!
//! usage: inflate [--serial] BLOB...

use std::io::{self, Read};

fn inflate(path: &str) -> io::Result<u64> {
    let f = std::fs::File::open(path)?;
    let mut d = flate2::read::MultiGzDecoder::new(f);
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = d.read(&mut buf)?;
        if k == 0 {
            return Ok(n);
        }
        n += k as u64;
    }
}

fn main() -> io::Result<()> {
    let mut blobs: Vec<String> = std::env::args().skip(1).collect();
    if blobs.first().map(String::as_str) == Some("--serial") {
        blobs.remove(0);
        let mut total = 0u64;
        for b in &blobs {
            total += inflate(b)?;
        }
        eprintln!("inflated={total}");
        return Ok(());
    }
    let total: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = blobs.iter().map(|b| s.spawn(move || inflate(b))).collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("inflate thread").unwrap_or(0))
            .sum()
    });
    eprintln!("inflated={total}");
    Ok(())
}
