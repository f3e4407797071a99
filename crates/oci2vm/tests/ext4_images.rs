//! ext4 writer on real rootfs trees, large files and determinism.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use std::path::{Path, PathBuf};

use common::{Fx, compare_with_ext4_view, fsck, tarload, tool};
use oci2vm::fs::ext4::{Ext4Options, write_ext4};

fn fixtures() -> Option<PathBuf> {
    let dir = PathBuf::from(
        std::env::var("OCI2VM_FIXTURES").unwrap_or_else(|_| "/var/tmp/oci2vm-fixtures".into()),
    );
    let tar = dir.join("rootfs/debian-minbase.tar");
    if tar.exists() {
        return Some(tar);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("fixture {} missing under CI=true", tar.display());
    }
    eprintln!(
        "SKIP: fixture {} missing (run scripts/fixtures/make-images.sh)",
        tar.display()
    );
    None
}

fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    }
}

#[test]
fn debian_minbase_rootfs() {
    let Some(tar) = fixtures() else { return };
    if !tool("e2fsck") {
        return;
    }
    let tmp = scratch();
    let fx = tarload::load(&tar, tmp.path());
    assert!(fx.tree.len() > 8000);
    let img = tmp.path().join("debian.ext4");
    let opts = Ext4Options {
        seed: [42; 16],
        ..Ext4Options::default()
    };
    let report = write_ext4(&fx.tree, &fx.spool, &img, &opts).unwrap();
    eprintln!("{report:?}");
    fsck(&img);
    compare_with_ext4_view(&img, &fx);
    let first = common::sha256_file(&img);
    std::fs::remove_file(&img).unwrap();
    write_ext4(&fx.tree, &fx.spool, &img, &opts).unwrap();
    assert_eq!(
        common::sha256_file(&img),
        first,
        "same tree and options => same bytes"
    );
    std::fs::remove_file(&img).unwrap();
    let opts = Ext4Options {
        journal: true,
        size: Some(2 << 30),
        ..opts
    };
    let report = write_ext4(&fx.tree, &fx.spool, &img, &opts).unwrap();
    assert_eq!(report.blocks, (2 << 30) / 4096);
    fsck(&img);
    assert!(common::dumpe2fs_features(&img).contains("has_journal"));
}

fn pattern(len: usize, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i / 4096) as u8).wrapping_mul(31) ^ (i as u8) ^ salt | 1)
        .collect()
}

#[test]
fn files_of_128mib_plus_one_and_600mib() {
    if !tool("e2fsck") {
        return;
    }
    let tmp = scratch();
    let mut fx = Fx::with_file_spool(tmp.path());
    fx.file("big/128m1", &pattern((128 << 20) + 1, 3));
    fx.file("big/600m", &pattern(600 << 20, 7));
    let img = tmp.path().join("big.ext4");
    write_ext4(&fx.tree, &fx.spool, &img, &Ext4Options::default()).unwrap();
    fsck(&img);
    compare_with_ext4_view(&img, &fx);
    let st = common::debugfs(&img, "stat /big/600m");
    assert!(st.contains("Size: 629145600"), "{st}");
}

/// A fixed small tree's image hash is pinned: any change to the on-disk output shows here.
#[test]
fn golden_small_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let mut fx = Fx::new();
    fx.file("etc/hostname", b"oci2vm\n");
    fx.file("bin/sh", &pattern(10_000, 1));
    fx.symlink("lib", b"usr/lib");
    fx.dir("usr/lib");
    // 8 MiB: 1 KiB blocks when the size is ours to choose; and the same tree in 4 KiB blocks
    for (block_size, want) in [
        (
            None,
            "505adcf23c597b9c55c8f3bb0e2d222d8b04f912dca28d8141e958fa04a622ca",
        ),
        (
            Some(4096),
            "f2470c671e3105b906974f804b337857b56908a869a592c78d57333a921ad96d",
        ),
    ] {
        let img = tmp.path().join("golden.ext4");
        let opts = Ext4Options {
            size: Some(8 << 20),
            block_size,
            seed: [5; 16],
            timestamp: Some(1_700_000_000),
            ..Ext4Options::default()
        };
        write_ext4(&fx.tree, &fx.spool, &img, &opts).unwrap();
        if tool("e2fsck") {
            fsck(&img);
        }
        let first = common::sha256_file(&img);
        std::fs::remove_file(&img).unwrap();
        write_ext4(&fx.tree, &fx.spool, &img, &opts).unwrap();
        assert_eq!(common::sha256_file(&img), first, "same input, same bytes");
        assert_eq!(first, want, "{block_size:?}");
        std::fs::remove_file(&img).unwrap();
    }
}

/// The busybox fixture's single layer (gunzipped by `gzip -dc`) through both writers.
#[test]
fn busybox_layer_to_ext4_and_cpio() {
    let Some(tar) = fixtures() else { return };
    if !tool("e2fsck") || !tool("cpio") {
        return;
    }
    let oci = tar.parent().unwrap().parent().unwrap().join("oci/busybox");
    let blob = |d: &str| {
        oci.join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(oci.join("index.json")).unwrap()).unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(blob(index["manifests"][0]["digest"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "the test loader applies no whiteouts");
    let tmp = scratch();
    let layer_tar = tmp.path().join("layer.tar");
    let out = std::process::Command::new("gzip")
        .arg("-dc")
        .arg(blob(layers[0]["digest"].as_str().unwrap()))
        .output()
        .unwrap();
    assert!(out.status.success());
    std::fs::write(&layer_tar, out.stdout).unwrap();
    let fx = tarload::load(&layer_tar, tmp.path());
    let img = tmp.path().join("busybox.ext4");
    let opts = Ext4Options {
        uuid: Some([0x11; 16]),
        inodes: Some(4096),
        size: Some(64 << 20),
        ..Ext4Options::default()
    };
    let report = write_ext4(&fx.tree, &fx.spool, &img, &opts).unwrap();
    assert_eq!(
        (report.blocks * u64::from(report.block_size), report.inodes),
        (64 << 20, 4096)
    );
    assert_eq!(report.block_size, 1024, "64 MiB is a small filesystem");
    fsck(&img);
    compare_with_ext4_view(&img, &fx);
    let uuid = common::debugfs(&img, "stats");
    assert!(
        uuid.contains("11111111-1111-1111-1111-111111111111"),
        "{uuid}"
    );

    let mut archive = Vec::new();
    let r = oci2vm::fs::cpio::write_cpio(&fx.tree, &fx.spool, &mut archive).unwrap();
    let mut child = std::process::Command::new("cpio")
        .args(["-it", "--quiet"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&archive).unwrap();
    let listed = child.wait_with_output().unwrap();
    let n = String::from_utf8_lossy(&listed.stdout).lines().count() as u64;
    assert_eq!(n, r.entries);
    assert_eq!(n, fx.tree.len() as u64 + 1 + u64::from(r.added_console));
}

/// A tree that brings its own `lost+found` directory (with content) keeps it as inode 11.
#[test]
fn tree_with_its_own_lost_and_found() {
    if !tool("e2fsck") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut fx = Fx::new();
    fx.file("lost+found/stray", b"kept");
    fx.file("a", b"1");
    let img = tmp.path().join("lpf.ext4");
    write_ext4(&fx.tree, &fx.spool, &img, &Ext4Options::default()).unwrap();
    fsck(&img);
    compare_with_ext4_view(&img, &fx);
    let ls = common::debugfs(&img, "ls -l /");
    assert!(
        ls.lines()
            .any(|l| l.trim_start().starts_with("11 ") && l.ends_with("lost+found")),
        "{ls}"
    );
}

/// A regular file named `lost+found` at the root keeps its name: no lost+found directory then
/// (e2fsck only needs one to reconnect orphans).
#[test]
fn tree_with_a_file_named_lost_and_found() {
    if !tool("e2fsck") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut fx = Fx::new();
    fx.file("lost+found", b"file");
    let img = tmp.path().join("lpf-file.ext4");
    let report = write_ext4(&fx.tree, &fx.spool, &img, &Ext4Options::default()).unwrap();
    assert_eq!(report.used_inodes, 11);
    fsck(&img);
    compare_with_ext4_view(&img, &fx);
}
