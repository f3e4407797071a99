//! `oci2vm run` through the binary: usage errors, and one boot exercising the flags.

use assert_cmd::Command;
use std::path::Path;
use std::process::Stdio;

fn skip(reason: &str) {
    assert_ne!(
        std::env::var("CI").as_deref(),
        Ok("true"),
        "required under CI: {reason}"
    );
    eprintln!("skipped: {reason}");
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        vec!["run"],
        vec!["run", "--root-disk", "x", "-p", "bad"],
        vec!["run", "--root-disk", "x", "--network", "none", "-p", "1:2"],
    ] {
        Command::cargo_bin("oci2vm")
            .expect("bin")
            .args(&args)
            .assert()
            .code(2);
    }
}

#[test]
fn run_flags_reach_the_workload() {
    let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let fixtures =
        std::env::var("OCI2VM_FIXTURES").unwrap_or_else(|_| "/var/tmp/oci2vm-fixtures".into());
    let image = Path::new(&fixtures).join("oci/busybox");
    for (ok, what) in [
        (image.exists(), "busybox fixture"),
        (
            Path::new("/boot/vmlinuz-6.1.0-56-cloud-amd64").exists(),
            "Debian cloud kernel",
        ),
        (
            std::process::Command::new("qemu-system-x86_64")
                .arg("--version")
                .stdout(Stdio::null())
                .status()
                .is_ok(),
            "qemu",
        ),
        (
            std::process::Command::new("umoci")
                .arg("--version")
                .stdout(Stdio::null())
                .status()
                .is_ok(),
            "umoci",
        ),
        (
            std::process::Command::new("mke2fs")
                .arg("-V")
                .stderr(Stdio::null())
                .status()
                .is_ok(),
            "mke2fs",
        ),
    ] {
        if !ok {
            return skip(&format!("{what} missing"));
        }
    }
    assert!(
        std::process::Command::new(ws.join("scripts/build-init.sh"))
            .stdout(Stdio::null())
            .status()
            .expect("build")
            .success()
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let rootfs = tmp.path().join("rootfs");
    assert!(
        std::process::Command::new("umoci")
            .args([
                "raw",
                "unpack",
                "--image",
                &format!("{}:latest", image.display())
            ])
            .arg(&rootfs)
            .status()
            .expect("umoci")
            .success()
    );
    std::fs::create_dir_all(rootfs.join(".oci2vm")).expect("mkdir");
    std::fs::write(
        rootfs.join(".oci2vm/config"),
        "oci2vm-config 1\narg sh\nenv A=image\n",
    )
    .expect("config");
    let disk = tmp.path().join("root.ext4");
    assert!(
        std::process::Command::new("mke2fs")
            .args(["-q", "-F", "-t", "ext4", "-d"])
            .arg(&rootfs)
            .arg(&disk)
            .arg("64M")
            .status()
            .expect("mke2fs")
            .success()
    );
    let env_file = tmp.path().join("env");
    std::fs::write(&env_file, "# comment\nA=from-file\n").expect("env file");
    Command::cargo_bin("oci2vm")
        .expect("bin")
        .env("XDG_CACHE_HOME", tmp.path().join("cache"))
        .args(["run", "--root-disk"])
        .arg(&disk)
        .arg("--env-file")
        .arg(&env_file)
        .args([
            "-e",
            "B=2",
            "-w",
            "/w",
            "-u",
            "1000:1000",
            "--hostname",
            "box",
            "--network",
            "none",
            "--timeout",
            "60",
        ])
        .args(["--", "sh", "-c", "echo $A $B; pwd; id -u; hostname; exit 4"])
        .assert()
        .code(4)
        .stdout("from-file 2\n/w\n1000\nbox\n");
}
