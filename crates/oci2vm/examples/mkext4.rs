//! Benchmark driver: `mkext4 ROOTFS.tar OUT.ext4 [SPOOL_DIR]` loads a flattened rootfs tar
//! into a merged tree (test-only loader) and writes it with our ext4 writer, printing the
//! time of each phase and the writer's report. Used by `bench/ext4.sh`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark driver, not library code

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::time::Instant;

use oci2vm::fs::ext4::{Ext4Options, write_ext4};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: mkext4 ROOTFS.tar OUT.ext4 [SPOOL_DIR]");
        std::process::exit(2);
    }
    let spool_dir = PathBuf::from(args.get(3).cloned().unwrap_or_else(|| "/dev/shm".into()));
    let t0 = Instant::now();
    let fx = common::tarload::load(args[1].as_ref(), &spool_dir);
    let load = t0.elapsed();
    let t1 = Instant::now();
    let opts = Ext4Options {
        timestamp: std::env::var("SOURCE_DATE_EPOCH")
            .ok()
            .and_then(|s| s.parse().ok()),
        ..Ext4Options::default()
    };
    let report = write_ext4(&fx.tree, &fx.spool, args[2].as_ref(), &opts).expect("write_ext4");
    let write = t1.elapsed();
    println!("entries {}", fx.tree.len());
    println!("load_s {:.3}", load.as_secs_f64());
    println!("ext4_s {:.3}", write.as_secs_f64());
    println!("total_s {:.3}", t0.elapsed().as_secs_f64());
    println!("{report:?}");
}
