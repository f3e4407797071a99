//! Outputs from the merged tree: the flattened tar (re-read by our reader and by GNU tar)
//! and the `dir` unpack (listed by the fixture oracle script), plus output atomicity.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::FileTypeExt;

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::*;
use oci2vm::fs;
use oci2vm::layers::ApplyOptions;
use oci2vm::layers::spool::Spool;
use oci2vm::layers::tree::Tree;

/// Every inode field, for exact round trips (listing() only has what tree.py shows).
fn full(tree: &Tree, spool: &Spool) -> BTreeMap<String, String> {
    let l = listing(tree, spool);
    tree.walk()
        .into_iter()
        .map(|n| {
            let k = format!("/{}", String::from_utf8_lossy(&tree.path(n)));
            let i = tree.inode_of(n);
            let v = format!("{} mtime={:?} xattrs={:?}", l[&k], i.mtime, i.xattrs);
            (k, v)
        })
        .collect()
}

fn rich() -> Built {
    let cap = [
        1u8, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let long = format!("long/{}/{}", "d".repeat(150), "f".repeat(120));
    let l0 = TarB::new()
        .dir_mode("./", 0o755, 0)
        .file("a", "v1")
        .hardlink("b", "a")
        .file("old", "old content")
        .dir_mode("tmp", 0o1777, 0)
        .file_mode("usr/bin/sudo", "s", 0o4755, 0, 0)
        .pax(&[
            ("uid", b"4294967294"),
            ("gid", b"100000"),
            ("mtime", b"1700000000.123456789"),
        ])
        .file("big-ids", "ids")
        .pax(&[("mtime", b"-100.5")])
        .file("pre-1970", "p")
        .pax(&[
            ("SCHILY.xattr.user.k", b"v"),
            ("SCHILY.xattr.security.capability", &cap),
        ])
        .file("xattr", "x")
        .dev("dev/null", b'3', 1, 3)
        .dev("dev/sda", b'4', 8, 0)
        .dev("fifo", b'6', 0, 0)
        .symlink("lnk", "../../../../etc/passwd")
        .symlink("abs", "/tmp")
        .pax(&[("path", long.as_bytes())])
        .file("x", "long")
        .pax(&[("linkpath", long.as_bytes())])
        .hardlink("long-link", "x")
        .entry(Hdr::new(b'0', &b"caf\xe9"[..]), b"latin1")
        .file("empty", "")
        .end();
    let l1 = TarB::new()
        .file("a", "v2")
        .hardlink("c", "old")
        .file("abs/evil", "inside")
        .end();
    let l2 = TarB::new().file(".wh.old", "").end();
    build(vec![l0, l1, l2]).unwrap()
}

fn tar_bytes(b: &Built) -> Vec<u8> {
    let mut out = Vec::new();
    fs::tar::write(&b.tree, &b.spool, &mut out).unwrap();
    out
}

#[test]
fn flattened_tar_rereads_to_the_same_tree() {
    let b = rich();
    let bytes = tar_bytes(&b);
    assert_eq!(bytes.len() % 512, 0);
    let again = build(vec![bytes.clone()]).unwrap();
    assert_same(
        &full(&again.tree, &again.spool),
        &full(&b.tree, &b.spool),
        "re-read",
    );
    let r = again.tree.inode_of(again.tree.root());
    let r0 = b.tree.inode_of(b.tree.root());
    assert_eq!((r.mode, r.uid, r.mtime), (r0.mode, r0.uid, r0.mtime));
    // deterministic bytes
    assert_eq!(tar_bytes(&b), bytes);
    // T44/T43 cases survived: `b` keeps v1, `c` keeps old content, no dangling link
    assert_eq!(content(&again, "b").unwrap(), b"v1");
    assert_eq!(content(&again, "c").unwrap(), b"old content");
    assert_eq!(content(&again, "tmp/evil").unwrap(), b"inside");
}

#[test]
fn flattened_tar_order_parents_first_links_after_targets() {
    let b = rich();
    let bytes = tar_bytes(&b);
    let mut r = oci2vm::layers::tar::TarReader::new(&bytes[..], 1 << 20);
    let mut seen: Vec<Vec<u8>> = Vec::new();
    while let Some(e) = r.next_entry().unwrap() {
        let p = e.path.strip_suffix(b"/").unwrap_or(&e.path).to_vec();
        assert!(!p.starts_with(b"/") && !p.split(|&c| c == b'/').any(|c| c == b".."));
        if let Some(i) = p.iter().rposition(|&c| c == b'/') {
            assert!(
                seen.iter().any(|s| s == &p[..i]),
                "parent of {:?} not before it",
                String::from_utf8_lossy(&p)
            );
        }
        if e.kind == oci2vm::layers::tar::EntryKind::Link {
            assert!(seen.contains(&e.link), "link target after link");
        }
        assert!(
            !p.rsplit(|&c| c == b'/')
                .next()
                .unwrap()
                .starts_with(b".wh.")
        );
        seen.push(p);
    }
    let mut dedup = seen.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), seen.len(), "duplicates in output");
}

#[test]
fn gnu_tar_lists_and_extracts_the_tree() {
    if !tool("tar") || !tool("python3") {
        return;
    }
    let b = rich();
    let dir = tempfile::tempdir().unwrap();
    let tarfile = dir.path().join("out.tar");
    fs::tar::write_to(&b.tree, &b.spool, &tarfile).unwrap();
    let out = Command::new("tar")
        .args(["-tf"])
        .arg(&tarfile)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim_end_matches('/').to_string())
        .filter(|l| l != ".")
        .collect();
    names.sort();
    let mut ours: Vec<String> = paths(&b.tree)
        .iter()
        .map(|p| p.trim_end_matches('/').to_string())
        .collect();
    ours.sort();
    // tar -t escapes non-printable bytes; compare the printable ones exactly and the count
    assert_eq!(names.len(), ours.len());
    for n in ours.iter().filter(|n| n.is_ascii()) {
        assert!(names.contains(n), "GNU tar does not list {n}");
    }
    if !is_root() {
        skip("extracting with ownership and devices needs root");
        return;
    }
    let x = dir.path().join("x");
    std::fs::create_dir(&x).unwrap();
    let st = Command::new("tar")
        .args(["--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpf"])
        .arg(&tarfile)
        .arg("-C")
        .arg(&x)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    assert_same(
        &host_listing(&x),
        &listing(&b.tree, &b.spool),
        "GNU tar extraction",
    );
}

#[test]
fn dir_output_matches_the_tree_and_stays_inside() {
    if !tool("python3") {
        return;
    }
    let b = rich();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rootfs");
    let report = fs::dir::write_to(&b.tree, &b.spool, &out).unwrap();
    let host = host_listing(&out);
    let ours = listing(&b.tree, &b.spool);
    if is_root() {
        assert!(report.is_complete(), "{report:?}");
        assert_same(&host, &ours, "dir output");
        let meta = std::fs::symlink_metadata(out.join("usr/bin/sudo")).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o7777,
            0o4755
        );
        let cap =
            rustix::fs::getxattr(out.join("xattr"), "security.capability", &mut [0u8; 64]).unwrap();
        assert_eq!(cap, 20);
    } else {
        assert!(
            report.ownership_not_applied > 0 && report.devices_not_created == 2,
            "{report:?}"
        );
    }
    // nothing escaped through the image's symlinks
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["rootfs"]);
    assert!(!Path::new("/tmp/evil").exists() || std::fs::read("/tmp/evil").unwrap() != b"inside");
}

#[test]
fn outputs_are_atomic_and_never_follow_symlinks() {
    let b = rich();
    let dir = tempfile::tempdir().unwrap();
    // B58: the output path is a symlink: it is replaced, its target untouched
    let victim = dir.path().join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    let out = dir.path().join("out.tar");
    std::os::unix::fs::symlink(&victim, &out).unwrap();
    fs::tar::write_to(&b.tree, &b.spool, &out).unwrap();
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert!(std::fs::symlink_metadata(&out).unwrap().is_file());
    // a non-empty directory output is refused without touching it
    let full = dir.path().join("full");
    std::fs::create_dir(&full).unwrap();
    std::fs::write(full.join("keep"), b"k").unwrap();
    assert!(matches!(
        fs::dir::write_to(&b.tree, &b.spool, &full),
        Err(fs::FsError::OutputExists { .. })
    ));
    assert_eq!(std::fs::read(full.join("keep")).unwrap(), b"k");
    // a file output over a directory, a FIFO or a device is refused, not replaced
    let fifo = dir.path().join("fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    for target in [&full, &fifo, &std::path::PathBuf::from("/dev/null")] {
        assert!(
            matches!(
                fs::tar::write_to(&b.tree, &b.spool, target),
                Err(fs::FsError::OutputNotAFile { .. })
            ),
            "{}",
            target.display()
        );
        let e = fs::ext4::write_ext4(&b.tree, &b.spool, target, &fs::ext4::Ext4Options::default())
            .unwrap_err();
        assert!(matches!(e, fs::ext4::Ext4Error::NotAFile { .. }), "{e}");
    }
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo()
    );
    assert!(
        std::fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device()
    );
    std::fs::remove_file(&fifo).unwrap();
    // an empty directory is replaced
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    fs::dir::write_to(&b.tree, &b.spool, &empty).unwrap();
    assert!(empty.join("usr/bin/sudo").exists());
    // a failure midway leaves nothing behind: a spool that lost its content
    let mut broken = rich();
    broken.spool = Spool::new();
    let failed = dir.path().join("failed.tar");
    assert!(fs::tar::write_to(&broken.tree, &broken.spool, &failed).is_err());
    let faileddir = dir.path().join("faileddir");
    assert!(fs::dir::write_to(&broken.tree, &broken.spool, &faileddir).is_err());
    let mut left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["empty", "full", "out.tar", "victim"]);
}

#[test]
fn fixture_flatten_rereads_equal_to_umoci_and_gnu_tar_agrees() {
    let Some(fx) = fixtures() else { return };
    for name in ["debian-minbase", "edge", "edge-umoci"] {
        let b = build_with(
            layout_layers(&fx.join("oci").join(name), "latest"),
            &ApplyOptions::default(),
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let tarfile = dir.path().join("flat.tar");
        fs::tar::write_to(&b.tree, &b.spool, &tarfile).unwrap();
        let again = build(vec![std::fs::read(&tarfile).unwrap()]).unwrap();
        assert_same(
            &full(&again.tree, &again.spool),
            &full(&b.tree, &b.spool),
            name,
        );
        let expected = read_listing(&fx.join("expected").join(format!("{name}.umoci.tree")));
        assert_same(&listing(&again.tree, &again.spool), &expected, name);
        if tool("tar") && is_root() && tool("python3") {
            let x = dir.path().join("x");
            std::fs::create_dir(&x).unwrap();
            let st = Command::new("tar")
                .args(["--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpf"])
                .arg(&tarfile)
                .arg("-C")
                .arg(&x)
                .status()
                .unwrap();
            assert!(st.success());
            assert_same(
                &host_listing(&x),
                &expected,
                &format!("{name}: GNU tar extraction"),
            );
        }
    }
}

#[test]
fn dir_output_rootless_reports_what_it_cannot_apply() {
    if !is_root() {
        // already unprivileged: the main dir test covers the report
        return;
    }
    if !tool("setpriv") {
        return;
    }
    // re-run the dir test as nobody; that branch asserts the report counts
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(exe)
        .args(["dir_output_", "--nocapture"])
        .env("TMPDIR", "/tmp")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("3 passed; 0 failed"), "{text}");
}

#[test]
fn dir_output_with_unsearchable_dirs_and_links_into_them() {
    // a 0000 directory holding the first name of a hard link whose second name comes later
    let mut h = Hdr::new(b'5', "locked");
    h.mode = 0o000;
    let l = TarB::new()
        .file("locked/f", "data")
        .entry(h, b"")
        .hardlink("z/link", "locked/f")
        .end();
    let b = build(vec![l]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    fs::dir::write_to(&b.tree, &b.spool, &out).unwrap();
    assert_eq!(std::fs::read(out.join("z/link")).unwrap(), b"data");
    let meta = std::fs::metadata(out.join("locked")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o7777,
        0
    );
    std::fs::set_permissions(
        out.join("locked"),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
}
