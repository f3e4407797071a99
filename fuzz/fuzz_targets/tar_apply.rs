//! Arbitrary bytes as 1-3 plain-tar layers: decompress/parse/apply must never panic, and an
//! accepted tree must flatten to a tar that re-reads to the same entries.
#![no_main]

mod support;

use support::inputs;

use libfuzzer_sys::fuzz_target;
use oci2vm::fs;
use oci2vm::layers::{ApplyOptions, build_tree};

fuzz_target!(|data: &[u8]| {
    let _settle = support::Settle::new();
    // byte 0: layer count (1-3); bytes 1-4: split points
    if data.len() < 5 {
        return;
    }
    let n = usize::from(data[0] % 3) + 1;
    let body = &data[5..];
    let mut cuts: Vec<usize> = data[1..n]
        .iter()
        .map(|&b| usize::from(b) * body.len() / 256)
        .collect();
    cuts.sort_unstable();
    let mut parts = Vec::new();
    let mut start = 0;
    for c in cuts {
        parts.push(&body[start..c]);
        start = c;
    }
    parts.push(&body[start..]);
    let mut opts = ApplyOptions::default();
    opts.limits.total_bytes = 64 << 20;
    let dir = tempfile::tempdir().expect("temp dir");
    let Ok((tree, spool, _)) = build_tree(inputs(&parts), &opts, dir.path()) else {
        return;
    };
    let mut out = Vec::new();
    fs::tar::write(&tree, &spool, &mut out).expect("flatten an accepted tree");
    let (again, _, _) =
        build_tree(inputs(&[&out]), &opts, dir.path()).expect("re-read our own tar");
    assert_eq!(again.len(), tree.len());
});
