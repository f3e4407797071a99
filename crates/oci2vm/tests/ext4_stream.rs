//! The one-pass ext4 path: layers applied while they stream, file data placed straight into
//! the image's blocks (`Ext4Image::sink`), metadata written at `finish`. Each image is checked
//! by `e2fsck -fn` and read back with ext4-view against the tree the spooled path builds from
//! the same layers.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::{Fx, TGZ, TarB as Tar, compare_with_ext4_view, fsck, gzip, input, tool};
use oci2vm::fs::ext4::{Ext4Image, Ext4Options, Ext4Report, write_ext4};
use oci2vm::layers::spool::{Segment, Spool};
use oci2vm::layers::{ApplyOptions, BlobInput, build_streamed, build_tree};

/// Layers with everything that leaves data behind: files replaced in a later layer, a
/// whiteout, an opaque directory, a hard link across layers, sparse and all-zero files.
fn layers() -> Vec<Vec<u8>> {
    let mut sparse = vec![0u8; 64 * 1024 + 3];
    sparse[5000] = 1;
    sparse[40_000] = 2;
    sparse[64 * 1024 + 2] = 3;
    let big: String = (0..200_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let l0 = Tar::new()
        .dir("etc")
        .file("etc/replaced", &"old ".repeat(5000))
        .file("etc/removed", &"gone ".repeat(3000))
        .file("etc/kept", "kept\n")
        .dir("opaque")
        .file("opaque/old", &"o".repeat(9000))
        .file("big", &big)
        .entry(
            {
                let mut h = common::Hdr::new(b'0', "sparse");
                h.size = sparse.len() as u64;
                h
            },
            &sparse,
        )
        .file("zeros", &"\0".repeat(10_000))
        .file("empty", "")
        .end();
    let l1 = Tar::new()
        .file("etc/replaced", "new\n")
        .file("etc/.wh.removed", "")
        .file("opaque/.wh..wh..opq", "")
        .file("opaque/new", "fresh\n")
        .hardlink("big-link", "big")
        .symlink("lib", "usr/lib")
        .pax(&[("linkpath", "d/".repeat(400).as_bytes())])
        .symlink("long", "short")
        .end();
    let l2 = Tar::new()
        .file("etc/replaced", &"newer ".repeat(2000))
        .end();
    vec![l0, l1, l2]
}

fn inputs(layers: &[Vec<u8>]) -> Vec<BlobInput> {
    layers.iter().map(|l| input(gzip(l), TGZ)).collect()
}

/// The streamed image of `layers` at `out`, and the tree and spool it was built from.
fn streamed(layers: &[Vec<u8>], out: &Path, opts: &Ext4Options) -> (Fx, Ext4Report) {
    let image = Ext4Image::create(out, opts, 1 << 20).unwrap();
    let mut spool = Spool::new();
    let mut sink = image.sink(1);
    let (tree, _) = build_streamed(inputs(layers), &ApplyOptions::default(), &mut sink).unwrap();
    assert_eq!(
        spool.add_segment(Segment::Blocks(sink.finish().unwrap())),
        1
    );
    let report = image.finish(&tree, &spool).unwrap();
    (
        Fx {
            tree,
            spool,
            seg: 0,
        },
        report,
    )
}

fn allocated(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().blocks() * 512
}

fn leftovers(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().contains(".tmp-"))
        })
        .collect()
}

#[test]
fn streamed_layers_match_the_spooled_image() {
    if !tool("e2fsck") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let layers = layers();
    for bs in [None, Some(4096)] {
        let opts = Ext4Options {
            block_size: bs,
            seed: [3; 16],
            ..Ext4Options::default()
        };
        let one = tmp.path().join(format!("streamed-{bs:?}.ext4"));
        let (fx, report) = streamed(&layers, &one, &opts);
        fsck(&one);
        compare_with_ext4_view(&one, &fx);
        assert_eq!(report.block_size, bs.unwrap_or(1024));
        assert!(
            report.dead_blocks > 0,
            "replaced, removed and opaque-hidden files leave dead data: {report:?}"
        );

        // the same layers through the spool and the copying writer
        let dir = tempfile::tempdir().unwrap();
        let (tree, spool, _) =
            build_tree(inputs(&layers), &ApplyOptions::default(), dir.path()).unwrap();
        let copied = tmp.path().join(format!("spooled-{bs:?}.ext4"));
        let r2 = write_ext4(&tree, &spool, &copied, &opts).unwrap();
        fsck(&copied);
        let fx2 = Fx {
            tree,
            spool,
            seg: 0,
        };
        compare_with_ext4_view(&copied, &fx2);
        assert_eq!(
            common::listing(&fx.tree, &fx.spool),
            common::listing(&fx2.tree, &fx2.spool)
        );
        assert_eq!(
            (report.data_blocks, report.used_inodes),
            (r2.data_blocks, r2.used_inodes)
        );
        assert_eq!(r2.dead_blocks, 0);
        // dead data is punched out: the streamed image allocates no more than the copy
        assert!(
            allocated(&one) <= allocated(&copied) + 8192,
            "{} vs {}",
            allocated(&one),
            allocated(&copied)
        );
        // the hole of the sparse file stays a hole
        let st = common::debugfs(&one, "stat /sparse");
        let bs = u64::from(report.block_size);
        let blocks = [5000u64, 40_000, 64 * 1024 + 2]
            .iter()
            .map(|o| o / bs)
            .collect::<std::collections::BTreeSet<_>>()
            .len() as u64;
        assert!(
            st.contains(&format!("Blockcount: {}", blocks * bs / 512)),
            "{st}"
        );
        assert!(leftovers(tmp.path()).is_empty());
    }
}

#[test]
fn streamed_image_is_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    let layers = layers();
    let opts = Ext4Options {
        seed: [4; 16],
        timestamp: Some(1_700_000_000),
        ..Ext4Options::default()
    };
    let a = tmp.path().join("a.ext4");
    let b = tmp.path().join("b.ext4");
    streamed(&layers, &a, &opts);
    streamed(&layers, &b, &opts);
    assert_eq!(common::sha256_file(&a), common::sha256_file(&b));
}

#[test]
fn too_small_fails_while_streaming_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("small.ext4");
    let opts = Ext4Options {
        size: Some(128 * 1024),
        block_size: Some(1024),
        ..Ext4Options::default()
    };
    let image = Ext4Image::create(&out, &opts, 0).unwrap();
    let mut sink = image.sink(1);
    let layer = Tar::new().file("f", &"x".repeat(300_000)).end();
    let err = build_streamed(
        vec![input(gzip(&layer), TGZ)],
        &ApplyOptions::default(),
        &mut sink,
    )
    .unwrap_err();
    let msg = common::chain(&err);
    assert!(
        msg.contains("\"f\"") && msg.contains("does not fit"),
        "{msg}"
    );
    assert_eq!(
        oci2vm::error::Classify::kind(&err),
        oci2vm::ErrorKind::InvalidInput
    );
    drop(sink);
    drop(image);
    assert!(!out.exists());
    assert!(leftovers(tmp.path()).is_empty(), "temporary image removed");
}

#[test]
fn a_long_symlink_moves_an_automatic_image_to_4k_blocks() {
    if !tool("e2fsck") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let layer = Tar::new()
        .file("data", &"z".repeat(50_000))
        .pax(&[("linkpath", "x/".repeat(1500).as_bytes())])
        .symlink("very-long", "x")
        .end();
    let out = tmp.path().join("auto.ext4");
    let (fx, report) = streamed(&[layer], &out, &Ext4Options::default());
    assert_eq!(
        report.block_size, 4096,
        "3000-byte target needs a 4 KiB block"
    );
    fsck(&out);
    compare_with_ext4_view(&out, &fx);
    assert!(leftovers(tmp.path()).is_empty());
}

/// Regression (found by `fuzz/fuzz_targets/ext4_layers.rs`): a file whose first data block
/// is its logical block N, placed right after a file whose last run ended at logical block N,
/// was merged into that file's run; it read back as zeros and the other file's extent grew.
#[test]
fn file_starting_with_a_hole_after_a_one_block_file() {
    if !tool("e2fsck") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    for bs in [1024u32, 4096] {
        let b = bs as usize;
        let mut holed = vec![0u8; 2 * b];
        holed[b + 500] = 1;
        let layer = Tar::new()
            .file("a", "x")
            .entry(
                {
                    let mut h = common::Hdr::new(b'0', "b");
                    h.size = holed.len() as u64;
                    h
                },
                &holed,
            )
            .end();
        let opts = Ext4Options {
            block_size: Some(bs),
            ..Ext4Options::default()
        };
        let out = tmp.path().join(format!("holed-{bs}.ext4"));
        let (fx, _) = streamed(std::slice::from_ref(&layer), &out, &opts);
        fsck(&out);
        compare_with_ext4_view(&out, &fx);
        let fs = ext4_view::Ext4::load_from_path(&out).unwrap();
        assert!(fs.read("/b").unwrap() == holed, "{bs}: /b differs");
        assert_eq!(fs.read("/a").unwrap(), b"x");
    }
}

/// Real images through the streamed path: the multi-layer fixtures (real whiteouts, opaque
/// directories, hard links across layers) and Debian, checked against the spooled tree of the
/// same layers.
#[test]
fn fixtures_through_the_streamed_path() {
    let Some(fix) = common::fixtures() else {
        return;
    };
    if !tool("e2fsck") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    for name in ["edge", "edge-umoci", "multistage", "debian-minbase"] {
        let layout = fix.join("oci").join(name);
        let out = tmp.path().join(format!("{name}.ext4"));
        let image = Ext4Image::create(&out, &Ext4Options::default(), 1 << 20).unwrap();
        let mut spool = Spool::new();
        let mut sink = image.sink(1);
        let layers = common::layout_layers(&layout, "latest");
        let (tree, _) = build_streamed(layers, &ApplyOptions::default(), &mut sink).unwrap();
        spool.add_segment(Segment::Blocks(sink.finish().unwrap()));
        image.finish(&tree, &spool).unwrap();
        fsck(&out);
        let fx = Fx {
            tree,
            spool,
            seg: 0,
        };
        compare_with_ext4_view(&out, &fx);
        let dir = tempfile::tempdir().unwrap();
        let (t2, s2, _) = build_tree(
            common::layout_layers(&layout, "latest"),
            &ApplyOptions::default(),
            dir.path(),
        )
        .unwrap();
        assert_eq!(
            common::listing(&fx.tree, &fx.spool),
            common::listing(&t2, &s2),
            "{name}"
        );
        let mut first = Vec::new();
        std::fs::File::open(&out)
            .unwrap()
            .take(2048)
            .read_to_end(&mut first)
            .unwrap();
        assert_eq!(
            &first[1024 + 0x38..1024 + 0x3A],
            &[0x53, 0xEF],
            "ext4 magic"
        );
    }
}
