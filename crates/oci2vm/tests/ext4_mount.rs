//! The kernel as oracle: loop-mount an image read-write, change it, unmount, fsck again.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use std::process::Command;

use common::{Fx, fsck, tool};
use oci2vm::fs::ext4::{Ext4Options, write_ext4};

fn skip(reason: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("loop mount required under CI=true: {reason}");
    }
    eprintln!("SKIP: {reason}");
}

#[test]
fn kernel_mounts_read_write_and_stays_clean() {
    mount_cycle(false);
}

#[test]
fn kernel_mounts_journaled_image() {
    mount_cycle(true);
}

fn mount_cycle(journal: bool) {
    if !tool("e2fsck") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut fx = Fx::new();
    fx.file("etc/hostname", b"vm\n");
    fx.file("usr/bin/tool", &vec![0x5a; 100_000]);
    for i in 0..3000 {
        fx.file(&format!("many/f{i}"), b"x");
    }
    let mut x = oci2vm::layers::tree::Inode::new(
        oci2vm::layers::tree::InodeKind::Dir,
        0o755,
        0,
        0,
        common::T0,
    );
    x.xattrs.insert(b"user.big".to_vec(), vec![1; 2000]);
    fx.add("xdir", x);
    let img = tmp.path().join("rw.ext4");
    write_ext4(
        &fx.tree,
        &fx.spool,
        &img,
        &Ext4Options {
            journal,
            ..Ext4Options::default()
        },
    )
    .unwrap();
    fsck(&img);
    let features = common::dumpe2fs_features(&img);
    assert_eq!(features.contains("has_journal"), journal, "{features}");
    assert!(features.contains("metadata_csum"), "{features}");
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let out = Command::new("mount")
        .arg("-o")
        .arg("loop,rw")
        .arg(&img)
        .arg(&mnt)
        .output();
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            return skip(&format!(
                "mount failed: {}",
                String::from_utf8_lossy(&o.stderr)
            ));
        }
        Err(e) => return skip(&format!("mount not runnable: {e}")),
    }
    let dmesg_before = dmesg_ext4_errors();
    let work = || -> std::io::Result<()> {
        assert_eq!(std::fs::read(mnt.join("etc/hostname"))?, b"vm\n");
        std::fs::write(mnt.join("etc/new"), vec![7u8; 1 << 20])?;
        std::fs::remove_file(mnt.join("usr/bin/tool"))?;
        for i in 0..3000 {
            std::fs::remove_file(mnt.join(format!("many/f{i}")))?;
        }
        std::fs::create_dir_all(mnt.join("a/b/c"))?;
        for i in 0..500 {
            std::fs::write(mnt.join(format!("a/b/c/n{i}")), b"y")?;
        }
        std::fs::write(mnt.join("xdir/file"), b"z")?;
        Ok(())
    };
    let result = work();
    let um = Command::new("umount").arg(&mnt).status().unwrap();
    result.unwrap();
    assert!(um.success());
    fsck(&img);
    if let (Some(before), Some(after)) = (dmesg_before, dmesg_ext4_errors()) {
        assert_eq!(before, after, "the kernel logged ext4 errors (checksums?)");
    }
}

/// Number of kernel log lines reporting ext4 errors or checksum failures (None: no dmesg).
fn dmesg_ext4_errors() -> Option<usize> {
    let out = Command::new("dmesg").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    Some(
        text.lines()
            .filter(|l| l.contains("EXT4-fs error") || l.contains("checksum"))
            .count(),
    )
}
