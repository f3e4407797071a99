//! cpio newc writer checked with GNU cpio (listing and extraction).
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};

use common::{Fx, T0, tool};
use oci2vm::fs::cpio::{CpioError, CpioWriter, write_cpio};
use oci2vm::layers::spool::ContentRef;
use oci2vm::layers::tree::{Inode, InodeKind, Timestamp};

fn cpio_list(archive: &[u8]) -> String {
    let mut child = Command::new("cpio")
        .args(["-itv", "--quiet", "--numeric-uid-gid"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(archive).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn tree_archive_lists_and_extracts() {
    if !tool("cpio") {
        return;
    }
    let mut fx = Fx::new();
    fx.file("etc/hostname", b"vm\n");
    let a = fx.file("bin/busybox", b"ELF...busybox");
    fx.hardlink("bin/sh", a);
    fx.hardlink("bin/ls", a);
    fx.symlink("lib", b"usr/lib");
    fx.add(
        "dev/null",
        Inode::new(
            InodeKind::CharDevice { major: 1, minor: 3 },
            0o666,
            0,
            0,
            T0,
        ),
    );
    let mut x = Inode::new(InodeKind::Fifo, 0o600, 1000, 1000, T0);
    x.xattrs.insert(b"user.k".to_vec(), b"v".to_vec());
    fx.add("run/fifo", x);
    let mut buf = Vec::new();
    let report = write_cpio(&fx.tree, &fx.spool, &mut buf).unwrap();
    assert_eq!(report.bytes, buf.len() as u64);
    assert!(report.added_console);
    assert_eq!(report.dropped_xattrs, 1);
    let list = cpio_list(&buf);
    let names: Vec<&str> = list
        .lines()
        .map(|l| l.rsplit(' ').next().unwrap())
        .collect();
    let pos = |n: &str| {
        names
            .iter()
            .position(|x| *x == n)
            .unwrap_or_else(|| panic!("{n} in {list}"))
    };
    assert!(pos("dev") < pos("dev/console") && pos("bin") < pos("bin/sh"));
    assert!(
        list.contains("crw-------   1 0        0          5,   1"),
        "{list}"
    );

    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new("cpio")
        .args(["-id", "--quiet", "--no-absolute-filenames"])
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&buf).unwrap();
    assert!(child.wait().unwrap().success());
    let p = dir.path();
    assert_eq!(std::fs::read(p.join("bin/ls")).unwrap(), b"ELF...busybox");
    let (i1, i2) = (
        p.join("bin/ls").metadata().unwrap(),
        p.join("bin/sh").metadata().unwrap(),
    );
    assert_eq!(i1.ino(), i2.ino(), "hard links extracted as links");
    assert_eq!(i1.nlink(), 3);
    assert_eq!(
        std::fs::read_link(p.join("lib")).unwrap().to_str(),
        Some("usr/lib")
    );
    assert_eq!(std::fs::read(p.join("etc/hostname")).unwrap(), b"vm\n");
}

#[test]
fn builder_api_for_initramfs() {
    if !tool("cpio") {
        return;
    }
    let mut w = CpioWriter::new(Vec::new());
    w.dir("dev", 0o755).unwrap();
    w.char_device("dev/console", 0o600, 5, 1).unwrap();
    w.file("init", 0o755, b"#!/bin/sh\n").unwrap();
    w.symlink("sbin", "bin").unwrap();
    let buf = w.finish().unwrap();
    assert_eq!(buf.len() % 4, 0);
    let list = cpio_list(&buf);
    assert_eq!(list.lines().count(), 4, "{list}");
    assert!(
        list.contains("-rwxr-xr-x   1 0        0              10 Jan  1  1970 init"),
        "{list}"
    );
    assert!(list.contains("sbin -> bin"), "{list}");
}

#[test]
fn limits_are_errors() {
    let mut fx = Fx::new();
    fx.add(
        "late",
        Inode::new(InodeKind::Fifo, 0o644, 0, 0, Timestamp::from_secs(1 << 32)),
    );
    let err = write_cpio(&fx.tree, &fx.spool, Vec::new()).unwrap_err();
    assert!(matches!(err, CpioError::Mtime { .. }), "{err}");
    let mut fx = Fx::new();
    let huge = ContentRef {
        segment: 0,
        offset: 0,
        len: 4 << 30,
    };
    fx.add(
        "huge",
        Inode::new(InodeKind::File { content: huge }, 0o644, 0, 0, T0),
    );
    let err = write_cpio(&fx.tree, &fx.spool, Vec::new()).unwrap_err();
    assert!(matches!(err, CpioError::TooLarge { .. }), "{err}");
}
