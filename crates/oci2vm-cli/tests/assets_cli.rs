//! `oci2vm assets` through the binary, checked by the files' real consumers: Firecracker's
//! published API schema, `virt-xml-validate` and `virsh define` (test driver), and QEMU booting
//! `qemu.sh` from DIR with our init and initramfs (TCG here). Plus `--dry-run` writing nothing,
//! the manifest matching DIR, and a failure leaving nothing at DIR.
//!
//! Needs the fixtures, the Debian cloud kernel, qemu-system-x86_64, virt-xml-validate and
//! virsh; missing ones skip locally and fail under CI=true.

#[path = "../../oci2vm/src/assets/fc_schema.rs"]
#[allow(dead_code)]
mod fc_schema;

use assert_cmd::Command;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

fn skip(reason: &str) {
    assert_ne!(
        std::env::var("CI").as_deref(),
        Ok("true"),
        "required under CI: {reason}"
    );
    eprintln!("skipped: {reason}");
}

fn on_path(tool: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn fixtures() -> PathBuf {
    PathBuf::from(
        std::env::var("OCI2VM_FIXTURES").unwrap_or_else(|_| "/var/tmp/oci2vm-fixtures".into()),
    )
}

/// Everything the e2e needs, or the reason it is missing.
fn ready() -> Option<PathBuf> {
    let fx = fixtures();
    for (ok, what) in [
        (fx.join("oci/busybox").exists(), "busybox fixture"),
        (have_kernel(), "Debian cloud kernel"),
        (on_path("qemu-system-x86_64"), "qemu-system-x86_64"),
        (on_path("virt-xml-validate"), "virt-xml-validate"),
        (on_path("virsh"), "virsh"),
    ] {
        if !ok {
            skip(&format!("{what} missing"));
            return None;
        }
    }
    let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    assert!(
        std::process::Command::new(ws.join("scripts/build-init.sh"))
            .stdout(Stdio::null())
            .status()
            .expect("build init")
            .success()
    );
    Some(fx)
}

fn oci2vm(store: &Path) -> Command {
    let mut c = Command::cargo_bin("oci2vm").expect("bin");
    c.arg("--store").arg(store);
    c
}

fn sha256_hex(path: &Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Runs `DIR/qemu.sh` (TCG) until it exits; returns the serial console text.
fn boot(dir: &Path) -> String {
    let start = Instant::now();
    let mut child = std::process::Command::new(dir.join("qemu.sh"))
        .env("ACCEL", "tcg")
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("qemu.sh");
    let deadline = Duration::from_secs(180);
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().expect("output");
    eprintln!("qemu.sh booted and exited in {:?}", start.elapsed());
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn assets_are_accepted_by_their_consumers_and_boot_our_init() {
    let Some(fx) = ready() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = tmp.path().join("store");
    let busybox = format!("oci:{}/oci/busybox:latest", fx.display());
    // the fixture's manifest digest (the fixture is built on each machine)
    let index: Value = serde_json::from_slice(
        &std::fs::read(fx.join("oci/busybox/index.json")).expect("fixture index.json"),
    )
    .expect("index.json");
    let manifest_digest = index["manifests"][0]["digest"]
        .as_str()
        .expect("manifest digest")
        .to_string();

    // --dry-run: the plan, and nothing written (neither DIR nor the store).
    let out = tmp.path().join("out");
    let plan = oci2vm(&store)
        .args(["assets", &busybox, "-o"])
        .arg(&out)
        .arg("--dry-run")
        .assert()
        .success();
    let text = String::from_utf8_lossy(&plan.get_output().stdout).into_owned();
    for want in [
        manifest_digest.as_str(),
        "layers    1",
        "firecracker.json",
        "vmlinux",
        "libvirt.xml",
        "manifest.json",
        "oci2vm.console=1",
    ] {
        assert!(text.contains(want), "{want} missing from the plan:\n{text}");
    }
    assert!(!out.exists(), "--dry-run created DIR");
    assert!(!store.exists(), "--dry-run wrote the store");
    // An existing empty DIR stays empty.
    std::fs::create_dir(&out).expect("mkdir");
    oci2vm(&store)
        .args(["assets", &busybox, "--dry-run", "-o"])
        .arg(&out)
        .assert()
        .success();
    assert_eq!(std::fs::read_dir(&out).expect("ls").count(), 0);

    // A failure (missing kernel) leaves nothing at DIR.
    oci2vm(&store)
        .args(["assets", &busybox, "--kernel", "/nonexistent/bzImage", "-o"])
        .arg(tmp.path().join("failed"))
        .assert()
        .failure();
    assert!(!tmp.path().join("failed").exists());
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("ls")
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".oci2vm-assets-")
        })
        .collect();
    assert!(leftovers.is_empty(), "staging left behind: {leftovers:?}");

    // The real thing, into the (empty) DIR.
    oci2vm(&store)
        .args(["assets", &busybox, "--vmm", "all", "--memory", "256", "-o"])
        .arg(&out)
        .assert()
        .success();
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "bzImage",
            "cloud-hypervisor.sh",
            "firecracker.json",
            "initramfs",
            "libvirt.xml",
            "manifest.json",
            "qemu.sh",
            "rootfs.ext4",
            "vmlinux"
        ]
    );

    // manifest.json: sha256 and size of every other file, the runtime config, the launchers.
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).expect("read"))
            .expect("json");
    let ours = &manifest["oci2vm"];
    let files = ours["files"].as_array().expect("files");
    assert_eq!(files.len(), names.len() - 1, "{files:#?}");
    for f in files {
        let name = f["name"].as_str().expect("name");
        let path = out.join(name);
        assert_eq!(
            f["size"].as_u64(),
            Some(std::fs::metadata(&path).expect("stat").len()),
            "{name}"
        );
        assert_eq!(
            f["sha256"].as_str(),
            Some(sha256_hex(&path).as_str()),
            "{name}"
        );
    }
    assert_eq!(ours["digest"].as_str(), Some(manifest_digest.as_str()));
    assert_eq!(ours["runtime"]["Cmd"][0], "sh");
    assert_eq!(ours["memoryMiB"], 256);
    assert!(ours["launch"]["qemu"].is_string());

    // firecracker.json against Firecracker's published schema.
    let fc: Value =
        serde_json::from_slice(&std::fs::read(out.join("firecracker.json")).expect("read"))
            .expect("json");
    assert_eq!(fc["boot-source"]["kernel_image_path"], "vmlinux");
    assert_eq!(fc["boot-source"]["initrd_path"], "initramfs");
    let args = fc["boot-source"]["boot_args"].as_str().expect("boot_args");
    assert!(
        args.contains("oci2vm.console=1") && args.contains("reboot=k"),
        "{args}"
    );
    if let Some(spec) = fc_schema::shared_spec() {
        let schema = fc_schema::Schema::from_swagger(&spec).expect("definitions");
        let errors = schema.check("FullVmConfiguration", &fc);
        assert!(errors.is_empty(), "schema violations: {errors:#?}");
    }
    let elf = std::fs::read(out.join("vmlinux")).expect("vmlinux");
    assert_eq!(&elf[..4], b"\x7fELF");

    // libvirt.xml: the schema, then libvirt's own parser (test driver).
    let xml = out.join("libvirt.xml");
    let v = std::process::Command::new("virt-xml-validate")
        .arg(&xml)
        .arg("domain")
        .output()
        .expect("virt-xml-validate");
    assert!(
        v.status.success(),
        "virt-xml-validate: {}{}",
        String::from_utf8_lossy(&v.stdout),
        String::from_utf8_lossy(&v.stderr)
    );
    let text = std::fs::read_to_string(&xml).expect("read");
    assert!(
        text.contains(&format!("{}/bzImage", out.display())),
        "{text}"
    );
    let test_xml = tmp.path().join("test.xml");
    std::fs::write(
        &test_xml,
        text.replace("<domain type='kvm'>", "<domain type='test'>"),
    )
    .expect("write");
    let d = std::process::Command::new("virsh")
        .args(["-q", "-c", "test:///default", "define"])
        .arg(&test_xml)
        .output()
        .expect("virsh");
    assert!(
        d.status.success(),
        "virsh define: {}{}",
        String::from_utf8_lossy(&d.stdout),
        String::from_utf8_lossy(&d.stderr)
    );

    // DIR exists now: a second run refuses to overwrite it.
    oci2vm(&store)
        .args(["assets", &busybox, "-o"])
        .arg(&out)
        .assert()
        .failure();

    // qemu.sh from DIR boots OUR init: the edge fixture's entrypoint prints /data/keep.txt,
    // and its volume /vol exists as a directory in the root filesystem.
    let edge = format!("oci:{}/oci/edge:latest", fx.display());
    let edge_out = tmp.path().join("edge");
    oci2vm(&store)
        .args(["assets", &edge, "--vmm", "qemu", "-o"])
        .arg(&edge_out)
        .assert()
        .success();
    assert!(
        !edge_out.join("vmlinux").exists(),
        "vmlinux without a VMM that boots it"
    );
    assert!(!edge_out.join("firecracker.json").exists());
    let qemu_sh = std::fs::read_to_string(edge_out.join("qemu.sh")).expect("read");
    assert!(
        qemu_sh.contains("hostfwd=tcp::8080-:8080") && qemu_sh.contains("hostfwd=udp::53-:53"),
        "ExposedPorts not forwarded:\n{qemu_sh}"
    );
    // The guest's eth0 gets SLIRP's address so the forwards reach it.
    assert!(qemu_sh.contains("oci2vm.cfg=b64:"), "{qemu_sh}");
    let console = boot(&edge_out);
    assert!(
        console.lines().any(|l| l.trim_end() == "keep"),
        "entrypoint output missing:\n{console}"
    );
    assert!(
        console.contains("OCI2VM_EXIT=0"),
        "exit status missing:\n{console}"
    );
}

/// The Debian cloud kernel the run uses by default (the newest in /boot) is installed.
fn have_kernel() -> bool {
    oci2vm::guest::kernel::test_kernel().is_some_and(|k| k.exists())
}
