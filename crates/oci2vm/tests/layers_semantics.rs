//! The research note's T-cases (§1.4) as synthetic layers: expected merged trees.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use oci2vm::layers::tree::{InodeKind, Timestamp};
use oci2vm::layers::{ApplyOptions, EntryError, LayerError};

fn c(b: &Built, p: &str) -> String {
    String::from_utf8(content(b, p).unwrap_or_else(|| panic!("{p} missing"))).unwrap()
}

fn entry_err(r: Result<Built, LayerError>) -> EntryError {
    match r {
        Err(LayerError::Entry { source, .. }) => source,
        Err(e) => panic!("unexpected error {}", chain(&e)),
        Ok(b) => panic!("expected an error, got {:?}", paths(&b.tree)),
    }
}

#[test]
fn t01_override() {
    let b = build(vec![
        TarB::new().file("f", "0").end(),
        TarB::new().file_mode("f", "1", 0o600, 7, 8).end(),
    ])
    .unwrap();
    assert_eq!(c(&b, "f"), "1");
    let i = b.tree.inode_of(lookup(&b.tree, "f").unwrap());
    assert_eq!((i.mode, i.uid, i.gid), (0o600, 7, 8));
}

#[test]
fn t02_t03_whiteouts_recursive_and_hidden() {
    let b = build(vec![
        TarB::new().file("a/f", "x").file("d/x/y", "y").end(),
        TarB::new().file("a/.wh.f", "").file(".wh.d", "").end(),
    ])
    .unwrap();
    assert_eq!(paths(&b.tree), ["a/"]);
}

#[test]
fn t04_t05_whiteout_then_recreate() {
    let b = build(vec![
        TarB::new().file("f", "old").end(),
        TarB::new().file(".wh.f", "").end(),
        TarB::new().file("f", "new").end(),
    ])
    .unwrap();
    assert_eq!(c(&b, "f"), "new");
    let b = build(vec![
        TarB::new().file("a/foo", "").file("b/bar", "").end(),
        TarB::new().file(".wh.a", "").end(),
        TarB::new().file("a/baz", "").end(),
    ])
    .unwrap();
    assert_eq!(paths(&b.tree), ["a/", "a/baz", "b/", "b/bar"]);
}

#[test]
fn t06_t07_whiteout_hits_lower_layers_only() {
    let b = build(vec![
        TarB::new().file("f", "0").end(),
        TarB::new().file("f", "1").file(".wh.f", "").end(),
    ])
    .unwrap();
    assert_eq!(c(&b, "f"), "1");
    assert!(
        b.report.layers[1]
            .stats
            .warnings
            .iter()
            .any(|w| w.contains("same layer"))
    );
    let b = build(vec![
        TarB::new().file("f", "0").end(),
        TarB::new().file(".wh.f", "").file("f", "1").end(),
    ])
    .unwrap();
    assert_eq!(c(&b, "f"), "1");
}

#[test]
fn t08_t09_opaque_order_independent() {
    let l0 = TarB::new().file("a/b/c/bar", "").end();
    let first = TarB::new()
        .dir("a")
        .file("a/.wh..wh..opq", "")
        .dir("a/b")
        .dir("a/b/c")
        .file("a/b/c/foo", "")
        .end();
    let last = TarB::new()
        .dir("a")
        .dir("a/b")
        .dir("a/b/c")
        .file("a/b/c/foo", "")
        .file("a/.wh..wh..opq", "")
        .end();
    for l1 in [first, last] {
        let b = build(vec![l0.clone(), l1]).unwrap();
        assert_eq!(paths(&b.tree), ["a/", "a/b/", "a/b/c/", "a/b/c/foo"]);
    }
}

#[test]
fn t10_t13_opaque_root_keeps_own_layer_and_later_layers() {
    let b = build(vec![
        TarB::new().file("x", "").file("d/y", "").end(),
        TarB::new()
            .file("mine", "")
            .file(".wh..wh..opq", "")
            .file("d/z", "")
            .end(),
        TarB::new().file("later", "").end(),
    ])
    .unwrap();
    assert_eq!(paths(&b.tree), ["d/", "d/z", "later", "mine"]);
}

#[test]
fn t11_t12_opaque_absent_dir_and_with_explicit_whiteouts() {
    let b = build(vec![
        TarB::new().file("x", "").end(),
        TarB::new().file("n/.wh..wh..opq", "").end(),
    ])
    .unwrap();
    assert_eq!(paths(&b.tree), ["n/", "x"]);
    let b = build(vec![
        TarB::new().file("d/a", "").file("d/b", "").end(),
        TarB::new()
            .file("d/.wh..wh..opq", "")
            .file("d/.wh.a", "")
            .file("d/.wh.b", "")
            .file("d/c", "")
            .end(),
    ])
    .unwrap();
    assert_eq!(paths(&b.tree), ["d/", "d/c"]);
}

#[test]
fn t14_marker_matched_exactly() {
    let b = build(vec![
        TarB::new().file("d/.opq", "").file("d/k", "").end(),
        TarB::new().file("d/.wh..opq", "").end(),
    ])
    .unwrap();
    // `.wh..opq` is a whiteout of `.opq`, not an opaque marker; nothing named `.wh..opq` appears
    assert_eq!(paths(&b.tree), ["d/", "d/k"]);
}

#[test]
fn t15_t16_whiteout_missing_and_non_regular_whiteouts() {
    let b = build(vec![
        TarB::new().file("keep", "").end(),
        TarB::new()
            .file(".wh.nothing", "")
            .file("no/such/.wh.x", "")
            .end(),
    ])
    .unwrap();
    assert_eq!(paths(&b.tree), ["keep"]);
    let b = build(vec![
        TarB::new().file("a", "").file("b", "").file("c", "").end(),
        TarB::new()
            .dir(".wh.a")
            .symlink(".wh.b", "x")
            .hardlink(".wh.c", "a")
            .end(),
    ])
    .unwrap();
    assert!(b.tree.is_empty(), "{:?}", paths(&b.tree));
}

#[test]
fn t17_whiteout_prefix_in_directory_is_an_error() {
    let e = entry_err(build(vec![TarB::new().file(".wh.etc/somefile", "").end()]));
    assert!(e.to_string().contains("whiteout prefix"), "{e}");
}

#[test]
fn t18_aufs_metadata_skipped() {
    let b = build(vec![
        TarB::new()
            .file(".wh..wh.plnk/1.2", "")
            .file(".wh..wh.aufs", "")
            .dir(".wh..wh.orph")
            .file("x", "")
            .end(),
    ])
    .unwrap();
    assert_eq!(paths(&b.tree), ["x"]);
}

#[test]
fn t19_t20_t21_whiteouts_and_symlinks() {
    let b = build(vec![
        TarB::new().file("t", "target").symlink("s", "t").end(),
        TarB::new().file(".wh.s", "").end(),
    ])
    .unwrap();
    assert_eq!(paths(&b.tree), ["t"]);
    let b = build(vec![
        TarB::new()
            .file("etc/whitedout", "")
            .file("etc/kept", "")
            .symlink("localetc", "/etc")
            .end(),
        TarB::new().file("localetc/.wh.whitedout", "").end(),
    ])
    .unwrap();
    assert_eq!(paths(&b.tree), ["etc/", "etc/kept", "localetc"]);
    let b = build(vec![
        TarB::new().symlink("dead", "/nowhere").end(),
        TarB::new().file("dead/.wh.x", "").end(),
    ])
    .unwrap();
    assert_eq!(paths(&b.tree), ["dead"]);
}

#[test]
fn t22_whiteout_one_hardlink_name() {
    let b = build(vec![
        TarB::new().file("a", "v").hardlink("b", "a").end(),
        TarB::new().file(".wh.a", "").end(),
    ])
    .unwrap();
    assert_eq!(c(&b, "b"), "v");
    assert_eq!(b.tree.inode_of(lookup(&b.tree, "b").unwrap()).nlink, 1);
}

#[test]
fn t23_t24_file_to_dir() {
    let b = build(vec![
        TarB::new().file("x", "").end(),
        TarB::new().dir("x").file("x/y", "").end(),
    ])
    .unwrap();
    assert_eq!(paths(&b.tree), ["x/", "x/y"]);
    let e = entry_err(build(vec![
        TarB::new().file("x", "").end(),
        TarB::new().file("x/y", "").end(),
    ]));
    assert!(matches!(e, EntryError::NotADirectory { .. }), "{e}");
}

#[test]
fn t25_t26_t27_type_changes_replace() {
    let b = build(vec![
        TarB::new().file("d/a", "").end(),
        TarB::new().file("d", "now a file").end(),
    ])
    .unwrap();
    assert_eq!(paths(&b.tree), ["d"]);
    let b = build(vec![
        TarB::new().file("d/a", "").end(),
        TarB::new().symlink("d", "/x").end(),
    ])
    .unwrap();
    assert_eq!(paths(&b.tree), ["d"]);
    let b = build(vec![
        TarB::new()
            .symlink("lib64", "usr/lib64")
            .dir("usr/lib64")
            .end(),
        TarB::new().dir("lib64").end(),
    ])
    .unwrap();
    assert_eq!(paths(&b.tree), ["lib64/", "usr/", "usr/lib64/"]);
}

#[test]
fn t28_t29_t30_entries_under_symlinked_parents() {
    let b = build(vec![
        TarB::new().symlink("lib", "usr/lib").dir("usr/lib").end(),
        TarB::new().file("lib/foo.so", "").end(),
    ])
    .unwrap();
    assert_eq!(
        paths(&b.tree),
        ["lib", "usr/", "usr/lib/", "usr/lib/foo.so"]
    );
    let b = build(vec![
        TarB::new()
            .dir("etc")
            .symlink("localetc", "/etc")
            .file("localetc/unbroken", "")
            .end(),
    ])
    .unwrap();
    assert_eq!(paths(&b.tree), ["etc/", "etc/unbroken", "localetc"]);
    let b = build(vec![
        TarB::new()
            .dir("etc")
            .symlink("localetc", "../../../../etc")
            .file("localetc/clamped", "")
            .end(),
    ])
    .unwrap();
    assert_eq!(paths(&b.tree), ["etc/", "etc/clamped", "localetc"]);
}

#[test]
fn t31_symlink_loop_is_eloop() {
    let e = entry_err(build(vec![
        TarB::new()
            .symlink("a", "b")
            .symlink("b", "a")
            .file("a/x", "")
            .end(),
    ]));
    assert!(matches!(e, EntryError::SymlinkLoop { limit: 40 }), "{e}");
}

#[test]
fn t32_symlink_override_path() {
    let b = build(vec![
        TarB::new()
            .dir("foo")
            .dir("foo/tmp")
            .file("foo/tmp/f", "A")
            .symlink("foo", "/")
            .file("foo/tmp/f", "B")
            .dir("foo")
            .dir("foo/tmp")
            .file("foo/tmp/f", "C")
            .end(),
    ])
    .unwrap();
    assert_eq!(c(&b, "tmp/f"), "B");
    assert_eq!(c(&b, "foo/tmp/f"), "C");
}

#[test]
fn t33_t34_root_entry() {
    let b = build(vec![TarB::new().dir_mode("./", 0o700, 5).end()]).unwrap();
    let r = b.tree.inode_of(b.tree.root());
    assert_eq!((r.mode, r.uid), (0o700, 5));
    for l in [
        TarB::new().symlink(".", "/").end(),
        TarB::new().file("/", "").end(),
        TarB::new().dev("./", b'3', 1, 3).end(),
    ] {
        assert!(matches!(entry_err(build(vec![l])), EntryError::RootNotDir));
    }
}

#[test]
fn t35_duplicates_last_wins() {
    let b = build(vec![
        TarB::new()
            .file("a", "1")
            .file("./a", "2")
            .dir_mode("d", 0o700, 0)
            .dir_mode("d/", 0o711, 0)
            .end(),
    ])
    .unwrap();
    assert_eq!(c(&b, "a"), "2");
    assert_eq!(b.tree.inode_of(lookup(&b.tree, "d").unwrap()).mode, 0o711);
    assert_eq!(b.report.layers[0].stats.duplicates, 2);
}

#[test]
fn t36_dir_over_dir_replaces_attributes_and_xattrs() {
    let l0 = TarB::new()
        .pax(&[("SCHILY.xattr.user.x", b"1")])
        .dir_mode("d", 0o700, 1)
        .file("d/child", "")
        .end();
    let b = build(vec![l0, TarB::new().dir_mode("d", 0o755, 0).end()]).unwrap();
    let d = lookup(&b.tree, "d").unwrap();
    let i = b.tree.inode_of(d);
    assert_eq!((i.mode, i.uid), (0o755, 0));
    assert!(i.xattrs.is_empty());
    assert_eq!(paths(&b.tree), ["d/", "d/child"]);
}

#[test]
fn t37_t38_implied_parents() {
    let opts = ApplyOptions {
        source_date_epoch: Some(1_234),
        ..Default::default()
    };
    let b = build_with(vec![input(TarB::new().file("a/b/c", "").end(), TAR)], &opts).unwrap();
    for p in ["a", "a/b"] {
        let i = b.tree.inode_of(lookup(&b.tree, p).unwrap());
        assert_eq!(
            (i.mode, i.uid, i.gid, i.mtime),
            (0o755, 0, 0, Timestamp::from_secs(1_234))
        );
    }
    let b = build(vec![
        TarB::new().dir_mode("a", 0o700, 9).end(),
        TarB::new().file("a/x", "").end(),
    ])
    .unwrap();
    let i = b.tree.inode_of(lookup(&b.tree, "a").unwrap());
    assert_eq!((i.mode, i.uid), (0o700, 9));
}

#[test]
fn t39_t40_parent_after_children_and_dir_mtime() {
    let mut h = Hdr::new(b'5', "p");
    h.mode = 0o750;
    h.mtime = 42;
    let b = build(vec![TarB::new().file("p/c", "").entry(h, b"").end()]).unwrap();
    let i = b.tree.inode_of(lookup(&b.tree, "p").unwrap());
    assert_eq!((i.mode, i.mtime), (0o750, Timestamp::from_secs(42)));
    assert_eq!(paths(&b.tree), ["p/", "p/c"]);
}

#[test]
fn t41_t42_t51_hard_links() {
    let b = build(vec![
        TarB::new()
            .file("f", "v")
            .hardlink("g", "f")
            .hardlink("h", "g")
            .end(),
    ])
    .unwrap();
    let ino = b.tree.node(lookup(&b.tree, "f").unwrap()).inode;
    for p in ["g", "h"] {
        assert_eq!(b.tree.node(lookup(&b.tree, p).unwrap()).inode, ino);
    }
    assert_eq!(b.tree.inode(ino).nlink, 3);
    let b = build(vec![
        TarB::new().file("f", "v").end(),
        TarB::new().hardlink("g", "f").end(),
    ])
    .unwrap();
    assert_eq!(b.tree.inode_of(lookup(&b.tree, "g").unwrap()).nlink, 2);
}

#[test]
fn t43_t44_replacing_or_whiting_out_a_link_name_keeps_content() {
    let b = build(vec![
        TarB::new().file("a", "v1").hardlink("b", "a").end(),
        TarB::new().file("a", "v2").end(),
    ])
    .unwrap();
    assert_eq!((c(&b, "a"), c(&b, "b")), ("v2".into(), "v1".into()));
    assert_eq!(b.tree.inode_of(lookup(&b.tree, "b").unwrap()).nlink, 1);
    let b = build(vec![
        TarB::new().file("a", "old").end(),
        TarB::new().hardlink("b", "a").end(),
        TarB::new().file(".wh.a", "").end(),
    ])
    .unwrap();
    assert_eq!(c(&b, "b"), "old");
    assert_eq!(paths(&b.tree), ["b"]);
}

#[test]
fn t45_t46_t52_link_targets() {
    let b = build(vec![
        TarB::new().symlink("s", "target").hardlink("h", "s").end(),
    ])
    .unwrap();
    assert!(matches!(
        b.tree.inode_of(lookup(&b.tree, "h").unwrap()).kind,
        InodeKind::Symlink { .. }
    ));
    let b = build(vec![
        TarB::new()
            .file("etc/passwd", "pw")
            .dir("a/b")
            .symlink("a/b/d1", "../../etc")
            .hardlink("x", "a/b/d1/passwd")
            .end(),
    ])
    .unwrap();
    assert_eq!(c(&b, "x"), "pw");
    let b = build(vec![
        TarB::new()
            .file("etc/passwd", "pw")
            .hardlink("y", "/etc/passwd")
            .end(),
    ])
    .unwrap();
    assert_eq!(c(&b, "y"), "pw");
}

#[test]
fn t47_t48_t49_t50_bad_hard_links() {
    let e = entry_err(build(vec![
        TarB::new().hardlink("g", "f").file("f", "").end(),
    ]));
    assert!(matches!(e, EntryError::LinkTargetMissing { .. }));
    let e = entry_err(build(vec![TarB::new().dir("d").hardlink("g", "d").end()]));
    assert!(matches!(e, EntryError::LinkToDirectory { .. }));
    let e = entry_err(build(vec![
        TarB::new().file("x", "").hardlink("x", "x").end(),
    ]));
    assert!(matches!(e, EntryError::LinkToSelf));
}

#[test]
fn t53_link_limit() {
    let mut t = TarB::new().file("f", "");
    for i in 0..10 {
        t = t.hardlink(&format!("l{i}"), "f");
    }
    let mut opts = ApplyOptions::default();
    opts.limits.links_per_inode = 5;
    let e = build_with(vec![input(t.end(), TAR)], &opts).err().unwrap();
    assert!(
        chain(&e).contains("more than 5 hard links"),
        "{}",
        chain(&e)
    );
}

#[test]
fn t54_t55_link_over_existing_and_link_metadata() {
    let mut h = Hdr::new(b'1', "b");
    h.link = b"a".to_vec();
    h.mode = 0o600;
    h.uid = 33;
    let b = build(vec![
        TarB::new()
            .file("a", "A")
            .file("b", "B")
            .entry(h, b"")
            .end(),
    ])
    .unwrap();
    assert_eq!(c(&b, "b"), "A");
    let i = b.tree.inode_of(lookup(&b.tree, "a").unwrap());
    assert_eq!((i.mode, i.uid, i.nlink), (0o600, 33, 2));
}

#[test]
fn t56_t57_t58_modes_and_ids() {
    let mut h = Hdr::new(b'0', "sudo");
    h.mode = 0o104755; // with type bits
    h.uid = 65534;
    let b = build(vec![
        TarB::new()
            .entry(h, b"")
            .dir_mode("tmp", 0o1777, 0)
            .pax(&[("uid", b"4294967294"), ("gid", b"100000")])
            .file("big", "")
            .end(),
    ])
    .unwrap();
    let i = b.tree.inode_of(lookup(&b.tree, "sudo").unwrap());
    assert_eq!((i.mode, i.uid), (0o4755, 65534));
    assert_eq!(
        b.tree.inode_of(lookup(&b.tree, "tmp").unwrap()).mode,
        0o1777
    );
    let i = b.tree.inode_of(lookup(&b.tree, "big").unwrap());
    assert_eq!((i.uid, i.gid), (4_294_967_294, 100_000));
    let mut h = Hdr::new(b'0', "b256");
    let mut raw = [0u8; 8];
    raw[0] = 0x80;
    raw[4..].copy_from_slice(&3_000_000u32.to_be_bytes());
    h.raw_uid = Some(raw);
    let b = build(vec![TarB::new().entry(h, b"").end()]).unwrap();
    assert_eq!(
        b.tree.inode_of(lookup(&b.tree, "b256").unwrap()).uid,
        3_000_000
    );
}

#[test]
fn t59_t60_times_and_xattrs() {
    let cap = [
        1u8, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let b = build(vec![
        TarB::new()
            .pax(&[
                ("mtime", b"1700000000.123456789"),
                ("SCHILY.xattr.security.capability", &cap),
                ("SCHILY.xattr.user.k", b"v"),
            ])
            .file("f", "")
            .pax(&[("mtime", b"-100.5")])
            .file("old", "")
            .end(),
    ])
    .unwrap();
    let i = b.tree.inode_of(lookup(&b.tree, "f").unwrap());
    assert_eq!(
        i.mtime,
        Timestamp {
            sec: 1_700_000_000,
            nsec: 123_456_789
        }
    );
    assert_eq!(
        i.xattrs.get(&b"security.capability"[..]).unwrap(),
        &cap.to_vec()
    );
    assert_eq!(i.xattrs.get(&b"user.k"[..]).unwrap(), b"v");
    let i = b.tree.inode_of(lookup(&b.tree, "old").unwrap());
    assert_eq!(
        i.mtime,
        Timestamp {
            sec: -101,
            nsec: 500_000_000
        }
    );
}

#[test]
fn t61_t62_devices_and_fifos() {
    let b = build(vec![
        TarB::new()
            .dev("null", b'3', 1, 3)
            .dev("sda", b'4', 8, 0)
            .dev("fifo", b'6', 0, 0)
            .dev("wh", b'3', 0, 0)
            .end(),
    ])
    .unwrap();
    let k = |p| b.tree.inode_of(lookup(&b.tree, p).unwrap()).kind.clone();
    assert_eq!(k("null"), InodeKind::CharDevice { major: 1, minor: 3 });
    assert_eq!(k("sda"), InodeKind::BlockDevice { major: 8, minor: 0 });
    assert_eq!(k("fifo"), InodeKind::Fifo);
    assert_eq!(k("wh"), InodeKind::CharDevice { major: 0, minor: 0 });
    assert!(
        b.report.layers[0]
            .stats
            .warnings
            .iter()
            .any(|w| w.contains("0:0"))
    );
}

#[test]
fn t63_sparse_refused() {
    let r = build(vec![TarB::new().entry(Hdr::new(b'S', "sparse"), b"").end()]);
    assert!(chain(&r.err().unwrap()).contains("sparse"));
    let r = build(vec![
        TarB::new()
            .pax(&[("GNU.sparse.major", b"1")])
            .file("s", "")
            .end(),
    ]);
    assert!(chain(&r.err().unwrap()).contains("sparse"));
}

#[test]
fn t64_sizes() {
    let mut t = TarB::new();
    let sizes = [0usize, 1, 511, 512, 4095, 4096, 4097, 1 << 20];
    for s in sizes {
        t = t.entry(Hdr::new(b'0', format!("f{s}")), &vec![b'x'; s]);
    }
    let b = build(vec![t.end()]).unwrap();
    for s in sizes {
        assert_eq!(content(&b, &format!("f{s}")).unwrap().len(), s);
    }
}

#[test]
fn t65_t66_long_and_non_utf8_names() {
    let long = format!("{}/{}", "d".repeat(120), "f".repeat(90));
    let mut h = Hdr::new(b'0', &long[121..]);
    h.prefix = long.as_bytes()[..120].to_vec();
    let gnu = format!("g/{}", "x".repeat(200));
    let pax = format!("p/{}", "y".repeat(250));
    let latin1: &[u8] = b"caf\xe9";
    let b = build(vec![
        TarB::new()
            .entry(h, b"ustar")
            .gnu_long(b'L', gnu.as_bytes())
            .entry(Hdr::new(b'0', "trunc").gnu(), b"gnu")
            .pax(&[("path", pax.as_bytes())])
            .file("short", "pax")
            .gnu_long(b'K', format!("/{gnu}").as_bytes())
            .entry(Hdr::new(b'1', "lnk").gnu(), b"")
            .entry(Hdr::new(b'0', latin1), b"latin1")
            .end(),
    ])
    .unwrap();
    assert_eq!(c(&b, &long), "ustar");
    assert_eq!(c(&b, &gnu), "gnu");
    assert_eq!(c(&b, &pax), "pax");
    assert_eq!(c(&b, "lnk"), "gnu");
    assert!(b.tree.lookup(b.tree.root(), latin1).is_some());
}

#[test]
fn t67_typeflag_nul_and_7() {
    let b = build(vec![
        TarB::new()
            .entry(Hdr::new(0, "olddir/"), b"")
            .entry(Hdr::new(0, "oldfile"), b"x")
            .entry(Hdr::new(b'7', "contig"), b"y")
            .end(),
    ])
    .unwrap();
    assert_eq!(paths(&b.tree), ["contig", "olddir/", "oldfile"]);
    // '0' + trailing '/' in ustar: a regular file named without the slash (Go)
    let b = build(vec![TarB::new().entry(Hdr::new(b'0', "f/"), b"z").end()]).unwrap();
    assert_eq!(c(&b, "f"), "z");
}

#[test]
fn t68_t69_t70_t71_global_headers_trailing_bytes_missing_eof_empty_layer() {
    let b = build(vec![
        TarB::new()
            .pax_raw(b'g', &pax_rec("comment", b"hi"))
            .file("a", "")
            .end(),
    ])
    .unwrap();
    assert_eq!(paths(&b.tree), ["a"]);
    let junk = TarB::new()
        .file("a", "")
        .end()
        .into_iter()
        .chain(*b"trailing junk")
        .collect::<Vec<u8>>();
    let b = build(vec![junk.clone()]).unwrap();
    assert_eq!(b.report.layers[0].diff_id, oci2vm::Digest::sha256_of(&junk));
    let b = build(vec![TarB::new().file("a", "").no_end()]).unwrap();
    assert!(
        b.report.layers[0]
            .warnings
            .iter()
            .any(|w| w.contains("without an end-of-archive marker"))
    );
    let b = build(vec![vec![0u8; 1024]]).unwrap();
    assert!(b.tree.is_empty());
    assert_eq!(
        b.report.layers[0].diff_id.to_string(),
        "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"
    );
    let b = build(vec![Vec::new()]).unwrap();
    assert!(b.tree.is_empty());
}

#[test]
fn t72_t74_compression_variants() {
    let tar = TarB::new().file("a", "gz").end();
    let mut multi = gzip(&tar[..700]);
    multi.extend(gzip(&tar[700..]));
    let z = zstd::encode_all(&tar[..], 3).unwrap();
    for (bytes, mt) in [
        (multi, TGZ),
        (z.clone(), TZST),
        (z, TGZ),
        (tar.clone(), TGZ),
        (gzip(&tar), TAR),
    ] {
        let b = build_with(vec![input(bytes, mt)], &ApplyOptions::default()).unwrap();
        assert_eq!(c(&b, "a"), "gz");
        assert_eq!(b.report.layers[0].diff_id, oci2vm::Digest::sha256_of(&tar));
    }
}

#[test]
fn t73_estargz_landmarks_kept() {
    let b = build(vec![
        TarB::new()
            .file("stargz.index.json", "{}")
            .file(".prefetch.landmark", "")
            .file("a", "")
            .end(),
    ])
    .unwrap();
    assert_eq!(
        paths(&b.tree),
        [".prefetch.landmark", "a", "stargz.index.json"]
    );
}

#[test]
fn diff_id_and_blob_digest_verified() {
    let tar = TarB::new().file("a", "").end();
    let mut i = input(tar.clone(), TAR);
    i.diff_id = Some(oci2vm::Digest::sha256_of(b"other"));
    let e = build_with(vec![i], &ApplyOptions::default()).err().unwrap();
    assert!(matches!(e, LayerError::DiffId { .. }), "{}", chain(&e));
    let mut i = input(tar.clone(), TAR);
    i.digest = oci2vm::Digest::sha256_of(b"other");
    let e = build_with(vec![i], &ApplyOptions::default()).err().unwrap();
    assert!(matches!(e, LayerError::BlobDigest { .. }), "{}", chain(&e));
    let mut i = input(tar.clone(), TAR);
    i.diff_id = Some(oci2vm::Digest::sha256_of(&tar));
    build_with(vec![i], &ApplyOptions::default()).unwrap();
}

#[test]
fn whiteout_is_linear_on_big_trees() {
    // B53: 200k lower entries under one dir, opaque + whiteouts on top, must be quick
    let mut t = TarB::new();
    for i in 0..20_000 {
        t = t.file(&format!("big/d{}/f{i}", i % 100), "");
    }
    let mut top = TarB::new();
    for i in 0..100 {
        top = top.file(&format!("big/d{i}/.wh..wh..opq"), "");
    }
    top = top.file("big/.wh..wh..opq", "").file(".wh.big", "");
    let start = std::time::Instant::now();
    let b = build(vec![t.end(), top.end()]).unwrap();
    assert!(b.tree.is_empty());
    assert!(start.elapsed().as_secs() < 20);
}
