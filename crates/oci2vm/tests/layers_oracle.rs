//! Oracle: our merged tree of real fixture images equals `umoci raw unpack` of the same image
//! (expected/NAME.umoci.tree, written by scripts/fixtures/make-images.sh), entry by entry.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use oci2vm::layers::ApplyOptions;

fn compare(name: &str, expected: &str) {
    let Some(fx) = fixtures() else { return };
    let layout = fx.join("oci").join(name);
    if !layout.is_dir() {
        skip(&format!("fixture {name} missing"));
        return;
    }
    let b = build_with(layout_layers(&layout, "latest"), &ApplyOptions::default())
        .unwrap_or_else(|e| panic!("{name}: {}", chain(&e)));
    let ours = listing(&b.tree, &b.spool);
    let theirs = read_listing(&fx.join("expected").join(format!("{expected}.umoci.tree")));
    let mut diffs = Vec::new();
    for (k, v) in &theirs {
        match ours.get(k) {
            Some(o) if o.trim_end() == v.trim_end() => {}
            Some(o) => diffs.push(format!("  umoci: {v}\n  ours:  {o}")),
            None => diffs.push(format!("  missing in ours: {v}")),
        }
    }
    for (k, o) in &ours {
        if !theirs.contains_key(k) {
            diffs.push(format!("  extra in ours: {o}"));
        }
    }
    assert!(
        diffs.is_empty(),
        "{name}: {} differences:\n{}",
        diffs.len(),
        diffs[..diffs.len().min(40)].join("\n")
    );
    assert!(ours.len() > 10, "{name}: suspiciously small tree");
    eprintln!("{name}: {} entries equal to umoci's", ours.len());
}

#[test]
fn oracle_busybox() {
    compare("busybox", "busybox");
}

#[test]
fn oracle_busybox_zstd_uncompressed_and_mislabeled() {
    compare("busybox-zstd", "busybox");
    compare("busybox-uncomp", "busybox");
    compare("busybox-mislabeled", "busybox");
}

#[test]
fn oracle_debian_minbase() {
    compare("debian-minbase", "debian-minbase");
}

#[test]
fn oracle_edge() {
    compare("edge", "edge");
}

#[test]
fn oracle_edge_umoci() {
    compare("edge-umoci", "edge-umoci");
}

#[test]
fn mislabeled_layer_warns() {
    let Some(fx) = fixtures() else { return };
    let b = build_with(
        layout_layers(&fx.join("oci/busybox-mislabeled"), "latest"),
        &ApplyOptions::default(),
    )
    .unwrap();
    assert!(
        b.report
            .layers
            .iter()
            .any(|l| l.warnings.iter().any(|w| w.contains("media type")))
    );
}

#[test]
fn edge_umoci_missing_eof_accepted_with_warning() {
    let Some(fx) = fixtures() else { return };
    let b = build_with(
        layout_layers(&fx.join("oci/edge-umoci"), "latest"),
        &ApplyOptions::default(),
    )
    .unwrap();
    let warned: Vec<&String> = b.report.layers.iter().flat_map(|l| &l.warnings).collect();
    assert!(
        warned.iter().any(|w| w.contains("end-of-archive marker")),
        "{warned:?}"
    );
}

#[test]
fn live_umoci_raw_unpack_equals_our_tree() {
    let Some(fx) = fixtures() else { return };
    if !tool("umoci") || !tool("python3") {
        return;
    }
    if !is_root() {
        skip("umoci raw unpack needs root for ownership and devices");
        return;
    }
    for name in ["edge", "edge-umoci"] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("rootfs");
        let image = format!("{}:latest", fx.join("oci").join(name).display());
        let st = std::process::Command::new("umoci")
            .args(["raw", "unpack", "--image", &image])
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            st.status.success(),
            "{}",
            String::from_utf8_lossy(&st.stderr)
        );
        let b = build_with(
            layout_layers(&fx.join("oci").join(name), "latest"),
            &ApplyOptions::default(),
        )
        .unwrap();
        assert_same(
            &listing(&b.tree, &b.spool),
            &host_listing(&out),
            &format!("{name} vs live umoci"),
        );
    }
}
