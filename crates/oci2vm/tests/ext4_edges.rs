//! ext4 writer edge cases, each image checked by `e2fsck -fn`, ext4-view and debugfs.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use common::{Fx, T0, compare_with_ext4_view, debugfs, fsck, tool};
use oci2vm::fs::ext4::{Ext4Options, write_ext4};
use oci2vm::layers::tree::{Inode, InodeKind, Timestamp};

fn write(fx: &Fx, dir: &std::path::Path, opts: &Ext4Options) -> std::path::PathBuf {
    let out = dir.join("rootfs.ext4");
    let report = write_ext4(&fx.tree, &fx.spool, &out, opts).expect("write_ext4");
    assert!(
        report.free_blocks > 0 && report.used_inodes >= 11,
        "{report:?}"
    );
    out
}

fn acl(entries: &[(u16, u16, u32)]) -> Vec<u8> {
    let mut v = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in entries {
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&perm.to_le_bytes());
        v.extend_from_slice(&id.to_le_bytes());
    }
    v
}

/// Empty, tiny and block-boundary files, sparse and fragmented files, fast and slow symlinks,
/// 2,000 hard links, devices, a fifo and a socket, set-id bits, 32-bit ids, every xattr kind
/// (ACLs included). With `only_4k`, a 4000-byte symlink and a 3000-byte xattr that only 4 KiB
/// blocks can hold.
fn edge_tree(only_4k: bool) -> Fx {
    let mut fx = Fx::new();
    fx.file("empty", b"");
    fx.file("one", b"x");
    for n in [4095usize, 4096, 4097] {
        let data: Vec<u8> = (0..n).map(|i| (i % 251) as u8 + 1).collect();
        fx.file(&format!("sizes/f{n}"), &data);
    }
    // Sparse: zero blocks between data blocks, and an all-zero file.
    let mut sparse = vec![0u8; 10 * 4096 + 17];
    sparse[4096] = 1;
    sparse[8 * 4096 + 5] = 2;
    sparse[10 * 4096 + 16] = 3;
    fx.file("sparse/holes", &sparse);
    fx.file("sparse/zeros", &vec![0u8; 64 * 1024]);
    // Many extents (> 4 in the inode => index block).
    let mut frag = vec![0u8; 40 * 4096];
    for b in (0..40).step_by(2) {
        frag[b * 4096] = 0xAA;
    }
    fx.file("sparse/fragmented", &frag);
    fx.symlink("links/fast", b"../one");
    if only_4k {
        fx.symlink("links/slow", &b"a/".repeat(2000));
    } else {
        fx.symlink("links/slow", &b"a/".repeat(400));
    }
    fx.symlink("links/fiftynine", &[b'b'; 59]);
    fx.symlink("links/sixty", &[b'c'; 60]);
    let target = fx.file("hard/target", b"shared content");
    for i in 0..2000 {
        fx.hardlink(&format!("hard/l{i:04}"), target);
    }
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
    fx.add(
        "dev/big",
        Inode::new(
            InodeKind::BlockDevice {
                major: 259,
                minor: 70000,
            },
            0o660,
            0,
            6,
            T0,
        ),
    );
    fx.add("dev/fifo", Inode::new(InodeKind::Fifo, 0o600, 0, 0, T0));
    fx.add("dev/sock", Inode::new(InodeKind::Socket, 0o755, 0, 0, T0));
    let mut suid = Inode::new(
        InodeKind::File {
            content: fx.spool.append(fx.seg, b"#!").unwrap(),
        },
        0o4755,
        0,
        0,
        T0,
    );
    suid.mode = 0o6755;
    fx.add("bin/suid", suid);
    let nobody = Inode::new(InodeKind::Dir, 0o1777, 4_294_967_294, 4_294_967_294, T0);
    fx.add("nobody", nobody);
    let mut far = Inode::new(
        InodeKind::Fifo,
        0o644,
        70000,
        65536,
        Timestamp {
            sec: 2_000_000_000,
            nsec: 1,
        },
    );
    far.xattrs.insert(b"user.small".to_vec(), b"v".to_vec());
    fx.add("future", far);
    let mut x = Inode::new(
        InodeKind::File {
            content: fx.spool.append(fx.seg, b"caps").unwrap(),
        },
        0o755,
        0,
        0,
        T0,
    );
    x.xattrs.insert(
        b"security.capability".to_vec(),
        vec![
            1, 0, 0, 2, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ],
    );
    x.xattrs.insert(
        b"security.selinux".to_vec(),
        b"system_u:object_r:bin_t:s0\0".to_vec(),
    );
    x.xattrs.insert(b"trusted.overlay".to_vec(), b"y".to_vec());
    x.xattrs.insert(b"user.comment".to_vec(), b"hello".to_vec());
    x.xattrs.insert(
        b"system.posix_acl_access".to_vec(),
        acl(&[
            (1, 7, u32::MAX),
            (2, 5, 1000),
            (4, 5, u32::MAX),
            (0x10, 5, u32::MAX),
            (0x20, 5, u32::MAX),
        ]),
    );
    fx.add("bin/caps", x.clone());
    fx.add("bin/caps2", x);
    let mut d = Inode::new(InodeKind::Dir, 0o755, 0, 0, T0);
    d.xattrs.insert(
        b"system.posix_acl_default".to_vec(),
        acl(&[(1, 7, u32::MAX), (4, 5, u32::MAX), (0x20, 0, u32::MAX)]),
    );
    fx.add("acldir", d);
    let mut big = Inode::new(
        InodeKind::File {
            content: fx.spool.append(fx.seg, b"big").unwrap(),
        },
        0o644,
        0,
        0,
        T0,
    );
    let large = if only_4k { 3000 } else { 900 };
    big.xattrs.insert(b"user.large".to_vec(), vec![b'L'; large]);
    fx.add("bigxattr", big);
    fx
}

#[test]
fn small_files_links_devices_xattrs_and_times() {
    if !tool("e2fsck") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let fx = edge_tree(true);

    let opts = Ext4Options {
        seed: [1; 16],
        timestamp: Some(T0.sec),
        ..Ext4Options::default()
    };
    let img = write(&fx, tmp.path(), &opts);
    fsck(&img);
    compare_with_ext4_view(&img, &fx);
    let report = write_ext4(&fx.tree, &fx.spool, &tmp.path().join("again.ext4"), &opts).unwrap();
    assert_eq!(
        report.block_size, 4096,
        "a 4000-byte symlink needs 4 KiB blocks: the automatic size takes them"
    );

    assert!(common::dumpe2fs_features(&img).contains("metadata_csum"));
    let plain = tmp.path().join("plain.ext4");
    let no_csum = Ext4Options {
        metadata_csum: false,
        journal: true,
        ..opts.clone()
    };
    write_ext4(&fx.tree, &fx.spool, &plain, &no_csum).unwrap();
    fsck(&plain);
    assert!(!common::dumpe2fs_features(&plain).contains("metadata_csum"));
    let st = debugfs(&img, "stat /hard/target");
    assert!(st.contains("Links: 2001"), "{st}");
    let st = debugfs(&img, "stat /dev/big");
    assert!(st.contains("Device major/minor number: 259:70000"), "{st}");
    let st = debugfs(&img, "stat /dev/null");
    assert!(st.contains("Device major/minor number: 01:03"), "{st}");
    let st = debugfs(&img, "stat /nobody");
    let ids = st
        .lines()
        .find(|l| l.starts_with("User:"))
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>();
    assert_eq!(
        (ids[1], ids[3]),
        ("-2", "-2"),
        "uid/gid 4294967294 (debugfs prints them signed):\n{st}"
    );
    let ea = debugfs(&img, "ea_list /bin/caps");
    for want in [
        "security.capability",
        "security.selinux",
        "trusted.overlay",
        "user.comment (5) = \"hello\"",
        "system.posix_acl_access (28) = 01 00 00 00 01 00 07 00 02 00 05 00 e8 03 00 00",
        "system.posix_acl_access",
    ] {
        assert!(ea.contains(want), "{want} missing in\n{ea}");
    }
    let ea = debugfs(&img, "ea_list /bigxattr");
    assert!(ea.contains("user.large") && ea.contains("(3000)"), "{ea}");
    let ea = debugfs(&img, "ea_list /acldir");
    assert!(ea.contains("system.posix_acl_default"), "{ea}");
    let st = debugfs(&img, "stat /sparse/holes");
    assert!(st.contains("Blockcount: 24"), "3 data blocks only:\n{st}");
    let st = debugfs(&img, "stat /sparse/fragmented");
    assert!(
        st.contains("Blockcount: 168"),
        "20 data blocks + 1 leaf:\n{st}"
    );
}

/// The same tree (less what only 4 KiB blocks can hold) with every block size.
#[test]
fn every_block_size() {
    if !tool("e2fsck") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let fx = edge_tree(false);
    for bs in [1024u32, 2048, 4096] {
        for journal in [false, true] {
            let opts = Ext4Options {
                block_size: Some(bs),
                journal,
                seed: [2; 16],
                ..Ext4Options::default()
            };
            let img = tmp.path().join(format!("bs{bs}-{journal}.ext4"));
            let report = write_ext4(&fx.tree, &fx.spool, &img, &opts).unwrap();
            assert_eq!(report.block_size, bs);
            fsck(&img);
            compare_with_ext4_view(&img, &fx);
            let sb = debugfs(&img, "stats");
            assert!(
                sb.contains(&format!("Block size:               {bs}")),
                "{sb}"
            );
            let sectors = u64::from(bs) / 512;
            let st = debugfs(&img, "stat /sparse/holes");
            assert!(
                st.contains(&format!("Blockcount: {}", 3 * sectors)),
                "3 data blocks only ({bs}):\n{st}"
            );
            let st = debugfs(&img, "stat /hard/target");
            assert!(st.contains("Links: 2001"), "{st}");
            let ea = debugfs(&img, "ea_list /bigxattr");
            assert!(ea.contains("user.large") && ea.contains("(900)"), "{ea}");
        }
    }
    // a block size that cannot hold the tree is an error naming the path, not a bad image
    let long = edge_tree(true);
    let err = write_ext4(
        &long.tree,
        &long.spool,
        &tmp.path().join("small.ext4"),
        &Ext4Options {
            block_size: Some(1024),
            ..Ext4Options::default()
        },
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("block size 1024")
            && (msg.contains("/bigxattr") || msg.contains("/links/slow")),
        "{msg}"
    );
    assert!(!tmp.path().join("small.ext4").exists());
    let err = write_ext4(
        &fx.tree,
        &fx.spool,
        &tmp.path().join("odd.ext4"),
        &Ext4Options {
            block_size: Some(512),
            ..Ext4Options::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("block_size"), "{err}");
}

/// ext4-view 1.0 rejects seconds outside i32 (it reads `i_mtime` as unsigned), so times before
/// 1970 and after 2038 are checked with debugfs only.
#[test]
fn timestamps_before_1970_and_after_2038() {
    if !tool("e2fsck") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut fx = Fx::new();
    fx.add(
        "old",
        Inode::new(
            InodeKind::Fifo,
            0o644,
            0,
            0,
            Timestamp {
                sec: -86_400 * 365,
                nsec: 999_999_999,
            },
        ),
    );
    fx.add(
        "y2100",
        Inode::new(
            InodeKind::Fifo,
            0o644,
            0,
            0,
            Timestamp {
                sec: 4_102_444_800,
                nsec: 1,
            },
        ),
    );
    let img = write(
        &fx,
        tmp.path(),
        &Ext4Options {
            timestamp: Some(0),
            ..Ext4Options::default()
        },
    );
    fsck(&img);
    let st = debugfs(&img, "stat /old");
    assert!(
        st.contains("mtime: 0xfe1ecc80:ee6b27fc -- Wed Jan  1 00:00:00 1969"),
        "{st}"
    );
    let st = debugfs(&img, "stat /y2100");
    let line = st
        .lines()
        .find(|l| l.trim_start().starts_with("mtime:"))
        .unwrap_or_default();
    assert!(
        line.contains(":00000005 -- Fri Jan  1 00:00:00 2100"),
        "{st}"
    );
}

#[test]
fn directory_with_100k_entries() {
    if !tool("e2fsck") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut fx = Fx::new();
    for i in 0..100_000 {
        fx.file(&format!("big/entry-with-a-longish-name-{i:06}"), b"");
    }
    let t = std::time::Instant::now();
    let img = write(&fx, tmp.path(), &Ext4Options::default());
    eprintln!("write {:?}", t.elapsed());
    fsck(&img);
    eprintln!("fsck {:?}", t.elapsed());
    compare_with_ext4_view(&img, &fx);
    eprintln!("compare {:?}", t.elapsed());
    let dump = debugfs(&img, "htree_dump /big");
    assert!(
        dump.contains("Indirect levels: 1"),
        "two-level htree expected"
    );
    let linear = tmp.path().join("linear.ext4");
    let opts = Ext4Options {
        htree: false,
        metadata_csum: false,
        ..Ext4Options::default()
    };
    write_ext4(&fx.tree, &fx.spool, &linear, &opts).unwrap();
    fsck(&linear);
    let st = debugfs(&linear, "stat /big");
    assert!(st.contains("Flags: 0x80000"), "linear directory:\n{st}");
}

/// ext4-view resolves paths by scanning linear directories, so this one is checked by
/// e2fsck and debugfs only.
#[test]
fn more_than_65000_subdirectories() {
    if !tool("e2fsck") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut fx = Fx::new();
    for i in 0..65_010 {
        fx.dir(&format!("many/d{i}"));
    }
    let img = write(&fx, tmp.path(), &Ext4Options::default());
    fsck(&img);
    let st = debugfs(&img, "stat /many");
    assert!(
        st.contains("Links: 1"),
        "dir_nlink for > 65000 subdirectories:\n{st}"
    );
    let st = debugfs(&img, "stat /many/d65009");
    assert!(st.contains("Links: 2"), "{st}");
}

#[test]
fn too_small_size_errors_before_writing() {
    let tmp = tempfile::tempdir().unwrap();
    let mut fx = Fx::new();
    fx.file("data", &vec![7u8; 2 << 20]);
    let out = tmp.path().join("small.ext4");
    let err = write_ext4(
        &fx.tree,
        &fx.spool,
        &out,
        &Ext4Options {
            size: Some(1 << 20),
            ..Ext4Options::default()
        },
    );
    assert!(
        matches!(err, Err(oci2vm::fs::ext4::Ext4Error::NoSpace { .. })),
        "{err:?}"
    );
    assert!(!out.exists());
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "no temp file left"
    );
}
