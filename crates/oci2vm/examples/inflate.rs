//! Benchmark ceiling: inflate the given gzip blobs with the same decoder the layer engine uses
//! (flate2 `MultiGzDecoder`, zlib-rs backend), one thread per blob, output discarded.
//!
//! usage: inflate BLOB...

use std::io::{self, Read};

fn main() -> io::Result<()> {
    let blobs: Vec<String> = std::env::args().skip(1).collect();
    let total: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = blobs
            .iter()
            .map(|b| {
                s.spawn(move || -> io::Result<u64> {
                    let f = std::fs::File::open(b)?;
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
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("inflate thread").unwrap_or(0))
            .sum()
    });
    eprintln!("inflated={total}");
    Ok(())
}
