//! Hostile layers (research note §2.3, B1-B56): a clear error naming the layer digest and
//! the entry, or the documented sanitisation; never a panic.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use oci2vm::layers::ApplyOptions;
use oci2vm::layers::tree::InodeKind;

/// Builds one plain layer and expects an error whose chain names the layer digest, the entry
/// index and contains `needle`.
fn rejects(tar: Vec<u8>, entry: u64, needle: &str) -> String {
    rejects_with(tar, TAR, &ApplyOptions::default(), Some(entry), needle)
}

fn rejects_with(
    bytes: Vec<u8>,
    mt: &str,
    opts: &ApplyOptions,
    entry: Option<u64>,
    needle: &str,
) -> String {
    let digest = oci2vm::Digest::sha256_of(&bytes).to_string();
    let e = match build_with(vec![input(bytes, mt)], opts) {
        Err(e) => e,
        Ok(b) => panic!("accepted; tree {:?}", paths(&b.tree)),
    };
    let msg = chain(&e);
    assert!(msg.contains(&digest), "no layer digest in {msg:?}");
    if let Some(i) = entry {
        assert!(
            msg.contains(&format!("entry {i}")),
            "no entry {i} in {msg:?}"
        );
    }
    assert!(msg.contains(needle), "{needle:?} not in {msg:?}");
    msg
}

#[test]
fn b01_b02_escapes_rejected_inner_dotdot_sanitised() {
    let m = rejects(
        TarB::new().file("ok", "").file("../etc/passwd", "").end(),
        1,
        "escapes the image root",
    );
    assert!(m.contains("../etc/passwd"), "{m}");
    rejects(
        TarB::new().file("a/../../x", "").end(),
        0,
        "escapes the image root",
    );
    let b = build(vec![TarB::new().file("a/../b", "").end()]).unwrap();
    assert_eq!(paths(&b.tree), ["b"]);
    assert_eq!(b.report.layers[0].stats.sanitised, 1);
}

#[test]
fn b03_b04_absolute_and_messy_names_sanitised() {
    let b = build(vec![
        TarB::new()
            .file("/etc/shadow", "")
            .file("./a//b/./c", "")
            .end(),
    ])
    .unwrap();
    assert_eq!(
        paths(&b.tree),
        ["a/", "a/b/", "a/b/c", "etc/", "etc/shadow"]
    );
    assert_eq!(b.report.layers[0].stats.sanitised, 2);
}

#[test]
fn b05_b06_empty_names_and_non_dir_roots() {
    rejects(TarB::new().file("", "").end(), 0, "empty name");
    rejects(
        TarB::new().file("/", "").end(),
        0,
        "root entry is not a directory",
    );
    rejects(
        TarB::new().symlink(".", "/").end(),
        0,
        "root entry is not a directory",
    );
    rejects(
        TarB::new().dev("./", b'4', 8, 0).end(),
        0,
        "root entry is not a directory",
    );
}

#[test]
fn b07_nul_in_pax_path() {
    rejects(
        TarB::new().pax(&[("path", b"a\0b")]).file("x", "").end(),
        0,
        "NUL",
    );
    rejects(
        TarB::new()
            .pax(&[("linkpath", b"a\0b")])
            .symlink("x", "t")
            .end(),
        0,
        "NUL",
    );
}

#[test]
fn b08_long_components_and_paths() {
    let long = "n".repeat(256);
    rejects(
        TarB::new()
            .pax(&[("path", long.as_bytes())])
            .file("x", "")
            .end(),
        0,
        "exceeds 255",
    );
    let deep = vec!["abcdefgh"; 600].join("/");
    rejects(
        TarB::new()
            .pax(&[("path", deep.as_bytes())])
            .file("x", "")
            .end(),
        0,
        "exceeds 4096",
    );
}

#[test]
fn b09_bad_whiteout_names() {
    for name in [".wh.", "d/.wh..", ".wh...", "a/.wh.b/c"] {
        rejects(TarB::new().file(name, "").end(), 0, "whiteout");
    }
}

#[test]
fn b10_b11_odd_names_and_link_targets_preserved() {
    let b = build(vec![
        TarB::new()
            .file("C:\\windows\\x", "")
            .symlink("abs", "/etc/passwd")
            .symlink("esc", "../../../../etc")
            .end(),
    ])
    .unwrap();
    assert_eq!(paths(&b.tree), ["C:\\windows\\x", "abs", "esc"]);
    let k = b
        .tree
        .inode_of(lookup(&b.tree, "esc").unwrap())
        .kind
        .clone();
    assert_eq!(
        k,
        InodeKind::Symlink {
            target: b"../../../../etc".to_vec()
        }
    );
}

#[test]
fn b12_b13_symlink_parents_stay_inside() {
    let b = build(vec![
        TarB::new().symlink("x", "/tmp").file("x/evil", "e").end(),
    ])
    .unwrap();
    assert_eq!(paths(&b.tree), ["tmp/", "tmp/evil", "x"]);
    let b = build(vec![
        TarB::new()
            .symlink("d", "/etc")
            .dir("d")
            .file("d/f", "")
            .end(),
    ])
    .unwrap();
    assert_eq!(paths(&b.tree), ["d/", "d/f"]);
}

#[test]
fn b14_loops_and_long_chains() {
    rejects(
        TarB::new().symlink("a", "a").file("a/x", "").end(),
        1,
        "too many levels",
    );
    let mut t = TarB::new().dir("l0");
    for i in 1..=45 {
        t = t.symlink(&format!("l{i}"), &format!("l{}", i - 1));
    }
    let t = t.file("l45/x", "").end();
    rejects(t, 46, "too many levels of symbolic links (limit 40)");
}

#[test]
fn b15_b16_symlink_targets() {
    rejects(
        TarB::new().symlink("s", "").end(),
        0,
        "empty symlink target",
    );
    let long = "t".repeat(4096);
    rejects(
        TarB::new()
            .pax(&[("linkpath", long.as_bytes())])
            .symlink("s", "x")
            .end(),
        0,
        "symlink target",
    );
}

#[test]
fn b17_b18_b19_hard_link_targets() {
    rejects(
        TarB::new()
            .file("etc/passwd", "")
            .hardlink("h", "../../etc/passwd")
            .end(),
        1,
        "hard-link target",
    );
    let b = build(vec![
        TarB::new()
            .file("etc/passwd", "pw")
            .hardlink("h", "/etc/passwd")
            .end(),
    ])
    .unwrap();
    assert_eq!(content(&b, "h").unwrap(), b"pw");
    rejects(
        TarB::new().hardlink("h", "missing").end(),
        0,
        "does not exist",
    );
    rejects(
        TarB::new().dir("d").hardlink("h", "d").end(),
        1,
        "is a directory",
    );
    rejects(
        TarB::new().file("h", "").hardlink("h", "h").end(),
        1,
        "hard link to itself",
    );
    rejects(
        TarB::new().hardlink("h", "later").file("later", "").end(),
        0,
        "does not exist",
    );
    let b = build(vec![TarB::new().symlink("s", "t").hardlink("h", "s").end()]).unwrap();
    assert_eq!(b.tree.inode_of(lookup(&b.tree, "s").unwrap()).nlink, 2);
}

#[test]
fn b20_too_many_links_default_limit() {
    let mut t = TarB::new().file("f", "");
    for i in 0..65_000 {
        t = t.hardlink(&format!("l{i}"), "f");
    }
    rejects(t.end(), 65_000, "more than 65000 hard links");
}

#[test]
fn b21_b22_pax_size_wins() {
    // TARmageddon: ustar size 0, PAX size 600: the 600 bytes are data, not headers
    let inner = TarB::new().file("smuggled", "x").no_end();
    let mut h = Hdr::new(b'0', "carrier");
    h.size = 0;
    let t = TarB::new()
        .pax(&[("size", inner.len().to_string().as_bytes())])
        .raw(h, &inner)
        .file("after", "a")
        .end();
    let b = build(vec![t]).unwrap();
    assert_eq!(paths(&b.tree), ["after", "carrier"]);
    assert_eq!(content(&b, "carrier").unwrap(), inner);
    let mut h = Hdr::new(b'0', "carrier");
    h.size = 5;
    let t = TarB::new()
        .pax(&[("size", b"3")])
        .raw(h, b"abc")
        .file("after", "a")
        .end();
    let b = build(vec![t]).unwrap();
    assert_eq!(content(&b, "carrier").unwrap(), b"abc");
}

#[test]
fn b23_b24_b25_mixed_duplicate_and_dangling_extensions() {
    rejects(
        TarB::new()
            .pax(&[("path", b"p")])
            .gnu_long(b'L', b"l")
            .file("x", "")
            .end(),
        0,
        "both a pax record and a GNU",
    );
    rejects(
        TarB::new()
            .gnu_long(b'L', b"l")
            .pax(&[("path", b"p")])
            .file("x", "")
            .end(),
        0,
        "both a pax record and a GNU",
    );
    rejects(
        TarB::new()
            .pax(&[("linkpath", b"p")])
            .gnu_long(b'K', b"l")
            .symlink("x", "t")
            .end(),
        0,
        "both a pax",
    );
    rejects(
        TarB::new()
            .pax(&[("mtime", b"1")])
            .pax(&[("mtime", b"2")])
            .file("x", "")
            .end(),
        0,
        "two 'x'",
    );
    rejects(
        TarB::new()
            .gnu_long(b'L', b"a")
            .gnu_long(b'L', b"b")
            .file("x", "")
            .end(),
        0,
        "two 'L'",
    );
    rejects(
        TarB::new().file("x", "").pax(&[("path", b"p")]).end(),
        1,
        "not followed by an entry",
    );
    rejects(
        TarB::new().gnu_long(b'L', b"a").no_end(),
        0,
        "not followed by an entry",
    );
    // PAX without a name plus GNU L is fine (Go applies both)
    let b = build(vec![
        TarB::new()
            .pax(&[("uid", b"7")])
            .gnu_long(b'L', b"long")
            .file("x", "")
            .end(),
    ])
    .unwrap();
    assert_eq!(b.tree.inode_of(lookup(&b.tree, "long").unwrap()).uid, 7);
}

#[test]
fn b26_malformed_pax_records() {
    for body in [
        &b"5 a=b"[..],
        b"99 path=x\n",
        b"10 pathxx\n\n",
        b"9 size=\n",
        b"11 size=1a\n",
        b"12 mtime=1.\n",
    ] {
        rejects(
            TarB::new().pax_raw(b'x', body).file("x", "").end(),
            0,
            "malformed pax record",
        );
    }
}

#[test]
fn b27_size_on_header_only_types() {
    for tf in [b'1', b'2', b'3', b'4', b'5', b'6'] {
        let mut h = Hdr::new(tf, "x");
        h.link = b"t".to_vec();
        let t = TarB::new().file("t", "").entry(h, &[0u8; 512]).end();
        rejects(t, 1, "must have size 0");
    }
}

#[test]
fn b28_checksum() {
    let mut h = Hdr::new(b'0', "x");
    h.bad_checksum = true;
    rejects(TarB::new().entry(h, b"").end(), 0, "checksum");
}

#[test]
fn b29_numeric_fields() {
    let mut h = Hdr::new(b'0', "x");
    h.raw_size = Some([0xff; 12]);
    rejects(TarB::new().raw(h, b"").end(), 0, "negative");
    let mut h = Hdr::new(b'0', "x");
    h.raw_uid = Some([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]);
    rejects(TarB::new().raw(h, b"").end(), 0, "negative");
    let mut h = Hdr::new(b'0', "x");
    h.raw_size = Some(*b"0000000009z\0");
    rejects(TarB::new().raw(h, b"").end(), 0, "malformed numeric");
    let mut h = Hdr::new(b'0', "x");
    let mut big = [0x80u8; 12];
    big[1..].copy_from_slice(&[0xff; 11]);
    h.raw_size = Some(big);
    rejects(TarB::new().raw(h, b"").end(), 0, "malformed numeric");
    // negative mtime (PAX) is preserved
    let b = build(vec![
        TarB::new().pax(&[("mtime", b"-5")]).file("x", "").end(),
    ])
    .unwrap();
    assert_eq!(b.tree.inode_of(lookup(&b.tree, "x").unwrap()).mtime.sec, -5);
}

#[test]
fn b30_b31_field_widths_and_gnu_headers() {
    let name = "n".repeat(100);
    let b = build(vec![TarB::new().file(&name, "").end()]).unwrap();
    assert_eq!(paths(&b.tree), [name]);
    let mut h = Hdr::new(b'0', "g").gnu();
    h.prefix = b"\x31\x32\x33 atime-ish".to_vec();
    let b = build(vec![TarB::new().entry(h, b"").end()]).unwrap();
    assert_eq!(paths(&b.tree), ["g"]);
    let mut h = Hdr::new(b'0', "x");
    h.magic = *b"ustar\0\0\0";
    rejects(TarB::new().entry(h, b"").end(), 0, "ambiguous");
    rejects(
        TarB::new().entry(Hdr::new(b'0', "d/").gnu(), b"").end(),
        0,
        "trailing '/'",
    );
    rejects(
        TarB::new().entry(Hdr::new(b'0', "d/").v7(), b"").end(),
        0,
        "trailing '/'",
    );
}

#[test]
fn b32_typeflags() {
    for tf in [b'M', b'N', b'V', b'A', b'Z', b'9'] {
        rejects(
            TarB::new().entry(Hdr::new(tf, "x"), b"").end(),
            0,
            "unsupported typeflag",
        );
    }
    let b = build(vec![
        TarB::new()
            .entry(Hdr::new(b'D', "dump").gnu(), b"dumpdir listing")
            .file("after", "")
            .end(),
    ])
    .unwrap();
    assert_eq!(paths(&b.tree), ["after", "dump/"]);
}

#[test]
fn b33_global_headers_ignored_with_warning() {
    let t = TarB::new()
        .pax_raw(b'g', &pax_rec("path", b"evil"))
        .file("x", "")
        .end();
    let b = build(vec![t]).unwrap();
    assert_eq!(paths(&b.tree), ["x"]);
    assert!(
        b.report.layers[0]
            .warnings
            .iter()
            .any(|w| w.contains("global header"))
    );
}

#[test]
fn b34_special_headers_over_one_mib() {
    let big = vec![b'a'; (1 << 20) + 1];
    rejects(
        TarB::new().gnu_long(b'L', &big).file("x", "").end(),
        0,
        "exceeds the limit",
    );
    let mut body = pax_rec("comment", &big);
    body.truncate(body.len());
    rejects(
        TarB::new().pax_raw(b'x', &body).file("x", "").end(),
        0,
        "exceeds the limit",
    );
}

#[test]
fn b36_truncation() {
    let full = TarB::new().file("a", &"x".repeat(2000)).end();
    for cut in [100, 512 + 100, 512 + 1999] {
        let msg = rejects(full[..cut].to_vec(), 0, "truncated");
        assert!(!msg.is_empty());
    }
    let msg = rejects(
        TarB::new().file("a", "").end()[..1024 + 100].to_vec(),
        1,
        "truncated",
    );
    assert!(!msg.is_empty());
}

#[test]
fn b38_bombs_stop_at_the_budget() {
    let mut opts = ApplyOptions::default();
    opts.limits.total_bytes = 1 << 20;
    let zeros = TarB::new()
        .entry(Hdr::new(b'0', "z"), &vec![0u8; 4 << 20])
        .end();
    rejects_with(
        gzip(&zeros),
        TGZ,
        &opts,
        None,
        "exceeds the limit of 1048576 bytes",
    );
    let z = zstd::encode_all(&zeros[..], 19).unwrap();
    assert!(z.len() < 2000);
    rejects_with(z, TZST, &opts, None, "exceeds the limit");
    // the budget is shared by all layers
    let small = TarB::new()
        .entry(Hdr::new(b'0', "s"), &vec![1u8; 600 << 10])
        .end();
    let e = build_with(vec![input(small.clone(), TAR), input(small, TAR)], &opts)
        .err()
        .unwrap();
    assert!(chain(&e).contains("exceeds the limit"));
}

#[test]
fn b39_zstd_window_limit() {
    let data = TarB::new().file("a", "x").end();
    let mut enc = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
    enc.set_parameter(zstd::zstd_safe::CParameter::WindowLog(30))
        .unwrap();
    enc.set_parameter(zstd::zstd_safe::CParameter::ContentSizeFlag(false))
        .unwrap();
    enc.include_contentsize(false).unwrap();
    std::io::Write::write_all(&mut enc, &data).unwrap();
    let z = enc.finish().unwrap();
    rejects_with(
        z,
        TZST,
        &ApplyOptions::default(),
        None,
        "decompression failed",
    );
}

#[test]
fn b41_b43_garbage_after_gzip_and_refused_formats() {
    let mut g = gzip(&TarB::new().file("a", "").end());
    g.extend_from_slice(b"GARBAGE GARBAGE");
    rejects_with(
        g,
        TGZ,
        &ApplyOptions::default(),
        None,
        "decompression failed",
    );
    rejects_with(
        vec![0xfd, b'7', b'z', b'X', b'Z', 0, 0],
        TGZ,
        &ApplyOptions::default(),
        None,
        "xz compression",
    );
    rejects_with(
        b"BZh91AY&SY".to_vec(),
        TAR,
        &ApplyOptions::default(),
        None,
        "bzip2 compression",
    );
    rejects_with(
        vec![],
        "application/vnd.example.not-a-layer",
        &ApplyOptions::default(),
        None,
        "unsupported media type",
    );
}

#[test]
fn b50_b51_entry_and_depth_limits() {
    let mut opts = ApplyOptions::default();
    opts.limits.entries = 10;
    let mut t = TarB::new();
    for i in 0..20 {
        t = t.file(&format!("f{i}"), "");
    }
    rejects_with(t.end(), TAR, &opts, Some(10), "more than 10 entries");
    let deep = vec!["d"; 1100].join("/");
    rejects(
        TarB::new()
            .pax(&[("path", deep.as_bytes())])
            .file("x", "")
            .end(),
        0,
        "depth exceeds 1024",
    );
    // depth through symlinks: a link to its own ancestor does not make paths deeper than the cap
    let mut t = TarB::new().dir("a").symlink("a/up", "..");
    let p = format!("a/{}x", "up/a/".repeat(30));
    t = t.pax(&[("path", p.as_bytes())]).file("y", "");
    let b = build(vec![t.end()]).unwrap();
    assert!(lookup(&b.tree, "a/x").is_some());
}

#[test]
fn b52_many_entries_in_one_directory() {
    let mut t = TarB::new();
    for i in 0..50_000 {
        t = t.file(&format!("d/f{i}"), "");
    }
    let b = build(vec![t.end()]).unwrap();
    assert_eq!(b.tree.len(), 50_001);
}

#[test]
fn b54_xattr_bounds() {
    rejects(
        TarB::new()
            .pax(&[("SCHILY.xattr.user.big", &vec![b'v'; 65_537])])
            .file("x", "")
            .end(),
        0,
        "value of 65537",
    );
    let name = format!("SCHILY.xattr.user.{}", "n".repeat(251));
    rejects(
        TarB::new()
            .pax(&[(name.as_str(), b"v")])
            .file("x", "")
            .end(),
        0,
        "invalid xattr name",
    );
    let b = build(vec![
        TarB::new()
            .pax(&[("SCHILY.xattr.user.ünï", b"v")])
            .file("x", "")
            .end(),
    ])
    .unwrap();
    assert_eq!(
        b.tree.inode_of(lookup(&b.tree, "x").unwrap()).xattrs.len(),
        1
    );
}

#[test]
fn b55_b56_device_and_id_ranges() {
    rejects(TarB::new().dev("c", b'3', 4096, 0).end(), 0, "out of range");
    rejects(
        TarB::new().dev("c", b'4', 1, 1_048_576).end(),
        0,
        "out of range",
    );
    rejects(
        TarB::new()
            .pax(&[("uid", b"4294967296")])
            .file("x", "")
            .end(),
        0,
        "exceeds 32 bits",
    );
    rejects(
        TarB::new()
            .pax(&[("gid", b"99999999999")])
            .file("x", "")
            .end(),
        0,
        "exceeds 32 bits",
    );
}

#[test]
fn errors_from_the_lowest_failing_layer_are_reported() {
    let good = TarB::new().file("a", "").end();
    let bad1 = TarB::new().file("../x", "").end();
    let bad2 = TarB::new().file("../y", "").end();
    let d1 = oci2vm::Digest::sha256_of(&bad1).to_string();
    for _ in 0..5 {
        let e = build_with(
            vec![
                input(good.clone(), TAR),
                input(bad1.clone(), TAR),
                input(bad2.clone(), TAR),
            ],
            &ApplyOptions::default(),
        )
        .err()
        .unwrap();
        assert!(chain(&e).contains(&d1));
    }
}

#[test]
fn layer_count_limit() {
    let mut opts = ApplyOptions::default();
    opts.limits.layers = 2;
    let l = TarB::new().end();
    let e = build_with(
        vec![input(l.clone(), TAR), input(l.clone(), TAR), input(l, TAR)],
        &opts,
    )
    .err()
    .unwrap();
    assert!(chain(&e).contains("3 layers exceed the limit of 2"));
}

#[test]
fn implied_directories_count_against_the_entry_limit() {
    let mut opts = ApplyOptions::default();
    opts.limits.entries = 100;
    let deep = vec!["d"; 200].join("/");
    let t = TarB::new()
        .pax(&[("path", deep.as_bytes())])
        .file("x", "")
        .end();
    rejects_with(t, TAR, &opts, Some(0), "more than 100 entries");
}

/// The streamed engine (ext4's) starts decoding the next layer early, but reports the lowest
/// failing layer, as `build_tree` does: here layer 0 fails late in its stream while layer 1
/// cannot even start (an unknown media type).
#[test]
fn streamed_layers_report_the_lowest_failing_layer() {
    let mut garbage = Hdr::new(b'0', "late").encode();
    garbage[148] ^= 0x55; // bad checksum, after a good entry
    let l0 = TarB::new().file("ok", "x").bytes(&garbage).end();
    let d0 = oci2vm::Digest::sha256_of(&l0).to_string();
    let mut l1 = input(TarB::new().file("y", "y").end(), TAR);
    l1.media_type = "application/x-not-a-layer".into();
    let file = tempfile::tempfile().unwrap();
    let mut sink = oci2vm::layers::ScratchSink::new(file, 1);
    let e = oci2vm::layers::build_streamed(
        vec![input(l0, TAR), l1],
        &ApplyOptions::default(),
        &mut sink,
    )
    .unwrap_err();
    let msg = chain(&e);
    assert!(
        msg.contains(&d0),
        "layer 0 is the lowest failing layer: {msg}"
    );
}
