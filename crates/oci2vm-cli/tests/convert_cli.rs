//! `oci2vm convert`: every format through the real CLI, read back by independent tools, and
//! the "nothing at the output path on failure" rule.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns panic on purpose

use std::path::Path;
use std::process::Command as Std;

mod common;

use common::{fixtures, oci2vm, tool};

fn src(fx: &Path, name: &str) -> String {
    format!("oci:{}:latest", fx.join("oci").join(name).display())
}

#[test]
fn tar_output_is_read_back_by_gnu_tar() {
    let Some(fx) = fixtures() else { return };
    if !tool("tar") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("edge.tar");
    oci2vm(&tmp.path().join("store"))
        .args(["convert", &src(&fx, "edge"), "--format", "tar", "-o"])
        .arg(&out)
        .assert()
        .success();
    let list = Std::new("tar").arg("-tf").arg(&out).output().unwrap();
    assert!(list.status.success());
    let names = String::from_utf8(list.stdout).unwrap();
    assert!(names.lines().any(|l| l == "data/keep.txt"), "{names}");
    assert!(
        !names.contains(".wh."),
        "whiteouts leaked into the flattened tar"
    );
    assert!(!names.lines().any(|l| l == "data/delete-me.txt/"));
}

#[test]
fn tar_to_stdout_streams_the_same_bytes_as_to_a_file() {
    let Some(fx) = fixtures() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let file = tmp.path().join("bb.tar");
    oci2vm(&store)
        .args(["convert", &src(&fx, "busybox"), "-f", "tar", "-o"])
        .arg(&file)
        .assert()
        .success();
    let out = oci2vm(&store)
        .args(["convert", &src(&fx, "busybox"), "-f", "tar", "-o", "-"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        out.stdout,
        std::fs::read(&file).unwrap(),
        "deterministic tar output"
    );
}

#[test]
fn ext4_output_is_e2fsck_clean_and_carries_the_guest_config() {
    let Some(fx) = fixtures() else { return };
    if !tool("e2fsck") || !tool("debugfs") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("root.ext4");
    oci2vm(&tmp.path().join("store"))
        .args([
            "convert",
            &src(&fx, "multistage"),
            "--format",
            "ext4",
            "--size",
            "64M",
            "-o",
        ])
        .arg(&img)
        .assert()
        .success();
    assert_eq!(std::fs::metadata(&img).unwrap().len(), 64 << 20);
    let fsck = Std::new("e2fsck").arg("-fn").arg(&img).output().unwrap();
    assert!(
        fsck.status.success(),
        "{}",
        String::from_utf8_lossy(&fsck.stdout)
    );
    let cat = Std::new("debugfs")
        .args(["-R", "cat /.oci2vm/config"])
        .arg(&img)
        .output()
        .unwrap();
    let config = String::from_utf8_lossy(&cat.stdout);
    assert!(
        config.contains("/opt/app/bin/hello"),
        "guest config: {config}"
    );
    assert!(
        config.contains("nobody"),
        "guest config keeps USER: {config}"
    );
}

#[test]
fn ext4_too_small_fails_and_leaves_nothing() {
    let Some(fx) = fixtures() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("small.ext4");
    let out = oci2vm(&tmp.path().join("store"))
        .args([
            "convert",
            &src(&fx, "debian-minbase"),
            "-f",
            "ext4",
            "--size",
            "16M",
            "-o",
        ])
        .arg(&img)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: "), "{err}");
    assert!(!img.exists(), "a failed conversion left {}", img.display());
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != "store")
        .collect();
    assert!(left.is_empty(), "temp files left behind: {left:?}");
}

#[test]
fn cpio_output_lists_with_gnu_cpio() {
    let Some(fx) = fixtures() else { return };
    if !tool("cpio") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("bb.cpio");
    oci2vm(&tmp.path().join("store"))
        .args(["convert", &src(&fx, "busybox"), "--format", "cpio", "-o"])
        .arg(&out)
        .assert()
        .success();
    let list = Std::new("cpio")
        .args(["-it", "--quiet"])
        .stdin(std::fs::File::open(&out).unwrap())
        .output()
        .unwrap();
    assert!(list.status.success());
    let names = String::from_utf8(list.stdout).unwrap();
    assert!(names.lines().any(|l| l == "bin/busybox"));
    assert!(
        names.lines().any(|l| l == "dev/console"),
        "initramfs needs dev/console"
    );
}

#[test]
fn lxc_output_has_rootfs_and_a_config_running_the_entrypoint() {
    let Some(fx) = fixtures() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("lxc");
    let out = oci2vm(&tmp.path().join("store"))
        .args(["convert", &src(&fx, "multistage"), "--format", "lxc", "-o"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.join("rootfs/opt/app/bin/hello").is_file());
    let config = std::fs::read_to_string(dir.join("config")).unwrap();
    assert!(config.contains("lxc.rootfs.path = dir:"), "{config}");
    assert!(config.contains("lxc.init.cwd = /opt/app"), "{config}");
    assert!(
        config.contains("/opt/app/bin/hello default-arg"),
        "{config}"
    );
}

#[test]
fn bad_sources_and_stdout_misuse_exit_with_their_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    oci2vm(&store)
        .args([
            "convert",
            "docker://Bad/UPPER:case",
            "-f",
            "tar",
            "-o",
            "x.tar",
        ])
        .assert()
        .code(2);
    oci2vm(&store)
        .args(["convert", "oci:/nonexistent/layout", "-f", "tar", "-o"])
        .arg(tmp.path().join("x.tar"))
        .assert()
        .failure();
    assert!(!tmp.path().join("x.tar").exists());
    if let Some(fx) = fixtures() {
        oci2vm(&store)
            .args(["convert", &src(&fx, "busybox"), "-f", "ext4", "-o", "-"])
            .assert()
            .code(2);
    }
}

/// The store's layer blob of `name` (the image has one layer).
fn stored_layer(store: &Path, fx: &Path, name: &str) -> std::path::PathBuf {
    let layout = fx.join("oci").join(name);
    let json = |p: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    };
    let index = json(&layout.join("index.json"));
    let m = index["manifests"][0]["digest"].as_str().unwrap();
    let manifest = json(&layout.join("blobs/sha256").join(&m["sha256:".len()..]));
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    store.join("blobs/sha256").join(&layer["sha256:".len()..])
}

#[test]
fn a_corrupt_stored_layer_is_a_digest_mismatch_and_is_fetched_again() {
    let Some(fx) = fixtures() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    for format in ["ext4", "tar"] {
        let out = tmp.path().join(format!("bb.{format}"));
        oci2vm(&store)
            .args(["convert", &src(&fx, "busybox"), "-f", format, "-o"])
            .arg(&out)
            .assert()
            .success();
        std::fs::remove_file(&out).unwrap();
        // same size, different bytes in the middle of the compressed stream
        let blob = stored_layer(&store, &fx, "busybox");
        let mut bytes = std::fs::read(&blob).unwrap();
        let mid = bytes.len() / 2;
        for b in &mut bytes[mid..mid + 64] {
            *b ^= 0x5a;
        }
        std::fs::write(&blob, &bytes).unwrap();
        let run = oci2vm(&store)
            .args(["convert", &src(&fx, "busybox"), "-f", format, "-o"])
            .arg(&out)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(5), "{format}: {err}");
        assert!(err.contains("corrupt"), "{format}: {err}");
        assert!(
            !out.exists(),
            "{format}: output written from a corrupt blob"
        );
        assert!(!blob.exists(), "{format}: corrupt blob kept in the store");
        oci2vm(&store)
            .args(["convert", &src(&fx, "busybox"), "-f", format, "-o"])
            .arg(&out)
            .assert()
            .success();
    }
}

#[test]
fn ext4_block_size_is_chosen_or_taken() {
    let Some(fx) = fixtures() else { return };
    if !tool("dumpe2fs") || !tool("e2fsck") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let block_size = |img: &Path| -> String {
        let out = Std::new("dumpe2fs").arg("-h").arg(img).output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find(|l| l.starts_with("Block size:"))
            .unwrap_or_default()
            .split_whitespace()
            .last()
            .unwrap_or_default()
            .to_string()
    };
    for (arg, want) in [(None, "1024"), (Some("4096"), "4096"), (Some("2k"), "2048")] {
        let img = tmp.path().join(format!("bb-{want}.ext4"));
        let mut cmd = oci2vm(&store);
        cmd.args(["convert", &src(&fx, "busybox"), "-f", "ext4", "-o"])
            .arg(&img);
        if let Some(a) = arg {
            cmd.args(["--block-size", a]);
        }
        cmd.assert().success();
        assert_eq!(block_size(&img), want, "{arg:?}");
        let fsck = Std::new("e2fsck").arg("-fn").arg(&img).output().unwrap();
        assert!(
            fsck.status.success(),
            "{}",
            String::from_utf8_lossy(&fsck.stdout)
        );
    }
    // UUID, label and inode ratio as asked
    let img = tmp.path().join("named.ext4");
    oci2vm(&store)
        .args(["convert", &src(&fx, "busybox"), "-f", "ext4", "-o"])
        .arg(&img)
        .args([
            "--uuid",
            "11111111-2222-3333-4444-555555555555",
            "--label",
            "app-root",
        ])
        .args(["--size", "64M", "--inode-ratio", "4096"])
        .assert()
        .success();
    let dump = Std::new("dumpe2fs").arg("-h").arg(&img).output().unwrap();
    let dump = String::from_utf8_lossy(&dump.stdout);
    assert!(
        dump.contains("11111111-2222-3333-4444-555555555555"),
        "{dump}"
    );
    assert!(
        dump.contains("Filesystem volume name:   app-root"),
        "{dump}"
    );
    assert!(dump.contains("Inode count:              16384"), "{dump}");
    oci2vm(&store)
        .args([
            "convert",
            &src(&fx, "busybox"),
            "-f",
            "ext4",
            "--block-size",
            "512",
            "-o",
        ])
        .arg(tmp.path().join("bad.ext4"))
        .assert()
        .code(2);
}

/// A full disk under the output: the error says so (exit 9) and nothing is left there.
#[test]
fn a_full_disk_is_an_io_error_and_leaves_nothing() {
    let Some(fx) = fixtures() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = Std::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=16m",
            "oci2vm-test",
            mnt.to_str().unwrap(),
        ])
        .output()
        .is_ok_and(|o| o.status.success());
    if !mounted {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "mounting a small tmpfs (root) is required under CI"
        );
        eprintln!("skipped: cannot mount a tmpfs");
        return;
    }
    let store = tmp.path().join("store");
    let result = std::panic::catch_unwind(|| {
        for (format, name) in [
            ("ext4", "root.ext4"),
            ("tar", "root.tar"),
            ("cpio", "root.cpio"),
        ] {
            let run = oci2vm(&store)
                .args(["convert", &src(&fx, "debian-minbase"), "-f", format, "-o"])
                .arg(mnt.join(name))
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&run.stderr);
            assert_eq!(run.status.code(), Some(9), "{format}: {err}");
            assert!(err.contains("No space left"), "{format}: {err}");
            let left: Vec<_> = std::fs::read_dir(&mnt).unwrap().collect();
            assert!(left.is_empty(), "{format}: left {left:?}");
        }
    });
    let _ = Std::new("umount").arg(&mnt).status();
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
}

/// A layer blob corrupted in the source itself (not in the store): streamed while it is
/// stored, it is refused as a digest mismatch, nothing is stored or written, and the image is
/// not named in the store.
#[test]
fn a_corrupt_source_layer_is_a_digest_mismatch_and_is_not_stored() {
    let Some(fx) = fixtures() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    let cp = Std::new("cp")
        .arg("-a")
        .arg(fx.join("oci/busybox"))
        .arg(&layout)
        .status()
        .unwrap();
    assert!(cp.success());
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let m = index["manifests"][0]["digest"].as_str().unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(layout.join("blobs/sha256").join(&m["sha256:".len()..])).unwrap(),
    )
    .unwrap();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    let blob = layout.join("blobs/sha256").join(&layer["sha256:".len()..]);
    let mut bytes = std::fs::read(&blob).unwrap();
    let n = bytes.len();
    bytes[n - 20] ^= 0x01; // in the deflate data's tail: inflates, then fails the digest
    std::fs::write(&blob, &bytes).unwrap();
    let source = format!("oci:{}:latest", layout.display());
    let store = tmp.path().join("store");
    for format in ["ext4", "tar"] {
        let out = tmp.path().join(format!("bb.{format}"));
        let run = oci2vm(&store)
            .args(["convert", &source, "-f", format, "-o"])
            .arg(&out)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(5), "{format}: {err}");
        assert!(!out.exists(), "{format}");
        assert!(
            !store
                .join("blobs/sha256")
                .join(&layer["sha256:".len()..])
                .exists(),
            "{format}: a corrupt blob was stored"
        );
        let images = oci2vm(&store).arg("images").output().unwrap();
        assert!(
            !String::from_utf8_lossy(&images.stdout).contains(&layout.display().to_string()),
            "{format}: the image was named without its layers"
        );
    }
}
