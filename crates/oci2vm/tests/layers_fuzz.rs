//! Randomised robustness (the in-suite companion of `fuzz/fuzz_targets/tar_apply.rs`):
//! random bytes and mutated valid layers thrown at the reader + apply + tar writer must never
//! panic; whatever is accepted must flatten and re-read to the same tree.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use oci2vm::fs;
use proptest::prelude::*;

fn seed_layers() -> Vec<Vec<u8>> {
    vec![
        TarB::new()
            .dir("a")
            .file("a/f", "hello")
            .hardlink("a/h", "a/f")
            .symlink("s", "a")
            .file("s/g", "via link")
            .pax(&[
                ("path", b"p/long-name"),
                ("mtime", b"1.5"),
                ("SCHILY.xattr.user.x", b"1"),
            ])
            .file("x", "pax")
            .gnu_long(b'L', b"gnu/long")
            .entry(Hdr::new(b'0', "y").gnu(), b"gnu")
            .dev("dev/null", b'3', 1, 3)
            .end(),
        TarB::new()
            .file("a/.wh.f", "")
            .file("p/.wh..wh..opq", "")
            .file("new", "n")
            .dir("s")
            .end(),
    ]
}

/// The layers applied one after the other while they stream (the ext4 path's engine), file
/// data in one scratch segment.
fn streamed(
    layers: &[Vec<u8>],
) -> Option<(oci2vm::layers::tree::Tree, oci2vm::layers::spool::Spool)> {
    let file = tempfile::tempfile().unwrap();
    let mut spool = oci2vm::layers::spool::Spool::new();
    let seg = spool.add_file(file.try_clone().unwrap()).unwrap();
    let mut sink = oci2vm::layers::ScratchSink::new(file, seg);
    let inputs = layers.iter().map(|l| input(l.clone(), TAR)).collect();
    let (tree, _) =
        oci2vm::layers::build_streamed(inputs, &oci2vm::layers::ApplyOptions::default(), &mut sink)
            .ok()?;
    sink.finish().unwrap();
    Some((tree, spool))
}

/// Applies the layers; if accepted, the flattened tar must re-read to an identical listing, and
/// the streamed engine must accept the same layers into the same tree.
fn check(layers: Vec<Vec<u8>>) {
    let s = streamed(&layers);
    let Ok(b) = build(layers) else {
        assert!(s.is_none(), "streamed accepted what build_tree refused");
        return;
    };
    let (st, ss) = s.expect("streamed refused what build_tree accepted");
    assert_eq!(listing(&st, &ss), listing(&b.tree, &b.spool));
    let mut out = Vec::new();
    fs::tar::write(&b.tree, &b.spool, &mut out).unwrap();
    let again = build(vec![out]).unwrap();
    assert_eq!(
        listing(&again.tree, &again.spool),
        listing(&b.tree, &b.spool)
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(layers in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..3000), 1..4)) {
        check(layers);
    }

    #[test]
    fn mutated_layers_never_panic(
        which in 0usize..2,
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..12),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut layers = seed_layers();
        let l = &mut layers[which];
        for (i, v) in flips {
            let at = i.index(l.len());
            l[at] = v;
        }
        if truncate {
            let at = cut.index(l.len());
            l.truncate(at);
        }
        check(layers);
    }

    #[test]
    fn mutated_headers_with_fixed_checksums_never_panic(
        flips in prop::collection::vec((0usize..512, any::<u8>()), 1..8),
        block in 0usize..6,
    ) {
        // mutate inside one header block and recompute its checksum, so the parser gets past
        // the checksum and exercises the field logic
        let mut l = seed_layers().remove(0);
        let start = (block * 512).min(l.len().saturating_sub(512));
        for (i, v) in flips {
            if !(148..156).contains(&i) {
                l[start + i] = v;
            }
        }
        let blk = &mut l[start..start + 512];
        blk[148..156].copy_from_slice(b"        ");
        let sum: u32 = blk.iter().map(|&b| u32::from(b)).sum();
        blk[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        check(vec![l]);
    }
}
