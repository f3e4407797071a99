//! The one-layer fast path: the flattened tar written while the layer streams
//! (`fs::tar_stream`) is byte-identical to the tar written from the finished tree, whether the
//! stream could be kept (layer in walk order) or had to be rewritten; and the tree built while
//! streaming equals the tree built the usual way (layer parsed first, applied after).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::*;
use oci2vm::digest::Digest;
use oci2vm::fs;
use oci2vm::fs::tar_stream::TarStream;
use oci2vm::layers::spool::Spool;
use oci2vm::layers::{ApplyOptions, BlobInput, build_single};

/// Streams `layer` to a tar; returns (bytes, whether the stream was kept).
fn streamed(layer: BlobInput, dir: &Path) -> (Vec<u8>, bool) {
    let out = dir.join("streamed.tar");
    let mut spool = Spool::new();
    let mut stream = TarStream::create(&out, &mut spool).unwrap();
    let (tree, _) = build_single(layer, &ApplyOptions::default(), &mut stream).unwrap();
    let kept = stream.streaming();
    stream.finish(&tree, &spool).unwrap();
    (std::fs::read(&out).unwrap(), kept)
}

/// The usual path: an empty bottom layer makes the build parse every layer before applying.
fn reference(layer: Vec<u8>) -> Vec<u8> {
    let b = build(vec![TarB::new().end(), layer]).unwrap();
    let mut out = Vec::new();
    fs::tar::write(&b.tree, &b.spool, &mut out).unwrap();
    out
}

/// Equal bytes, or a panic naming the first difference (not the whole archives).
fn same(ours: &[u8], theirs: &[u8]) {
    if ours == theirs {
        return;
    }
    if let Ok(d) = std::env::var("TAR_STREAM_DUMP") {
        std::fs::write(format!("{d}/ours.tar"), ours).unwrap();
        std::fs::write(format!("{d}/theirs.tar"), theirs).unwrap();
    }
    let at = ours
        .iter()
        .zip(theirs)
        .position(|(a, b)| a != b)
        .unwrap_or(ours.len().min(theirs.len()));
    let show = |b: &[u8]| {
        String::from_utf8_lossy(&b[at - at % 512..(at - at % 512 + 512).min(b.len())]).into_owned()
    };
    panic!(
        "streamed tar ({} bytes) differs from the tree's tar ({} bytes) at {at}:\n{:?}\nvs\n{:?}",
        ours.len(),
        theirs.len(),
        show(ours),
        show(theirs)
    );
}

fn check(layer: Vec<u8>, kept: bool) {
    let dir = tempfile::tempdir().unwrap();
    let (ours, was_kept) = streamed(input(layer.clone(), TAR), dir.path());
    same(&ours, &reference(layer));
    assert_eq!(was_kept, kept, "stream kept");
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 1, "only the output remains: {left:?}");
}

fn in_walk_order() -> TarB {
    let long = format!("long/{}/{}", "d".repeat(150), "f".repeat(120));
    TarB::new()
        .dir_mode("./", 0o700, 0)
        .file("a", "v1")
        .hardlink("a-link", "a")
        .dir("bin")
        .file_mode("bin/sh", "#!", 0o4755, 1000, 2_000_000)
        .symlink("bin/sym", "sh")
        .dev("dev-null", b'3', 1, 3)
        .dev("fifo", b'6', 0, 0)
        .pax(&[("path", long.as_bytes())])
        .file("ignored", "long content")
        .pax(&[("SCHILY.xattr.user.k", b"v")])
        .file("x", &"z".repeat(70_000))
}

#[test]
fn a_layer_in_walk_order_streams_and_matches() {
    check(in_walk_order().end(), true);
    // no root entry, implied parents created on the way
    check(TarB::new().file("d/e/f", "x").file("d/g", "y").end(), true);
    // an empty layer is just the root
    check(TarB::new().end(), true);
    // a whiteout in a one-layer image removes nothing
    check(in_walk_order().file("zz/.wh.gone", "").end(), true);
}

#[test]
fn out_of_order_and_changes_fall_back_to_a_rewrite() {
    check(TarB::new().file("b", "1").file("a", "2").end(), false);
    // "a/b" sorts before "a-b" in a walk
    check(TarB::new().file("a-b", "1").file("a/b", "2").end(), false);
    // an implied parent declared later with other attributes
    check(
        TarB::new().file("d/f", "x").dir_mode("d", 0o700, 5).end(),
        false,
    );
    // the same name twice: the last one wins
    check(TarB::new().file("a", "old").file("a", "new!").end(), false);
    // the root's attributes after other entries
    check(
        TarB::new().file("a", "1").dir_mode("./", 0o711, 3).end(),
        false,
    );
    // a hard link whose header changes the shared inode's mode
    let t = TarB::new().file("a", "1");
    let mut h = Hdr::new(b'1', "b");
    h.link = b"a".to_vec();
    h.mode = 0o600;
    check(t.entry(h, b"").end(), false);
    // a duplicate directory with the same attributes changes nothing
    check(TarB::new().dir("d").file("d/f", "1").dir("d").end(), true);
}

#[test]
fn a_bad_diff_id_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.tar");
    let mut layer = input(in_walk_order().end(), TAR);
    layer.diff_id = Some(Digest::sha256_of(b"something else"));
    let mut spool = Spool::new();
    let mut stream = TarStream::create(&out, &mut spool).unwrap();
    let err = build_single(layer, &ApplyOptions::default(), &mut stream).unwrap_err();
    drop(stream);
    assert!(
        err.to_string().contains("layer") || chain(&err).contains("diff"),
        "{}",
        chain(&err)
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn real_one_layer_images_stream_the_same_bytes() {
    let Some(fx) = fixtures() else { return };
    for name in ["busybox", "debian-minbase", "edge-umoci"] {
        let layout = fx.join("oci").join(name);
        let mut layers = layout_layers(&layout, "latest");
        if layers.len() != 1 {
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("streamed.tar");
        let mut spool = Spool::new();
        let mut stream = TarStream::create(&out, &mut spool).unwrap();
        let (tree, _) =
            build_single(layers.pop().unwrap(), &ApplyOptions::default(), &mut stream).unwrap();
        eprintln!("{name}: stream kept = {}", stream.streaming());
        stream.finish(&tree, &spool).unwrap();
        let b = build_with(layout_layers(&layout, "latest"), &ApplyOptions::default()).unwrap();
        let reference = dir.path().join("reference.tar");
        fs::tar::write_to(&b.tree, &b.spool, &reference).unwrap();
        assert_eq!(sha256_file(&out), sha256_file(&reference), "{name}");
    }
}
