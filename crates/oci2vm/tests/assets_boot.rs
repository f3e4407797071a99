//! End-to-end checks of the VM assets with real tools: the vmlinux extracted from Debian's
//! cloud kernel (readelf), and the generated `qemu.sh` booting a tiny busybox initramfs under
//! QEMU (TCG here) on microvm, on q35, and on q35 with the extracted vmlinux (PVH entry).
//!
//! The initramfs is ours (busybox + virtio modules + an /init that reports the root disk and
//! powers off), so this proves the script and the files, not the guest init (tested elsewhere).
//! Needs: qemu-system-x86_64, readelf, /bin/busybox (busybox-static), the kernel and modules of
//! linux-image-cloud-amd64. Missing tools skip locally and fail under CI=true.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use oci2vm::Digest;
use oci2vm::assets::{self, AssetFiles, AssetsPlan, PortForward, Protocol, RuntimeConfig};
use oci2vm::fs::cpio::CpioWriter;

const MARKER: &str = "OCI2VM-ASSETS-MARKER";
const MODULES: &[&str] = &[
    "kernel/drivers/virtio/virtio_ring.ko",
    "kernel/drivers/virtio/virtio.ko",
    "kernel/drivers/virtio/virtio_mmio.ko",
    "kernel/drivers/virtio/virtio_pci_modern_dev.ko",
    "kernel/drivers/virtio/virtio_pci_legacy_dev.ko",
    "kernel/drivers/virtio/virtio_pci.ko",
    "kernel/drivers/block/virtio_blk.ko",
];

fn kernel() -> PathBuf {
    oci2vm::guest::kernel::test_kernel().unwrap_or_else(|| "/boot/vmlinuz-missing".into())
}

/// The kernel's version, from its file name (`vmlinuz-VERSION`).
fn kver() -> String {
    kernel()
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("vmlinuz-"))
        .unwrap_or("missing")
        .to_string()
}

fn moddir() -> PathBuf {
    std::env::var_os("OCI2VM_MODDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(format!("/lib/modules/{}", kver())))
}

/// True when everything is there; otherwise prints why (and panics under CI=true).
fn have(what: &[(&str, bool)]) -> bool {
    let missing: Vec<&str> = what.iter().filter(|(_, ok)| !ok).map(|(n, _)| *n).collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "missing under CI: {missing:?}"
    );
    eprintln!("SKIPPED: missing {missing:?}");
    false
}

fn on_path(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn initramfs() -> Vec<u8> {
    let init = format!(
        "#!/bin/busybox sh\n\
         /bin/busybox mount -t proc proc /proc\n\
         /bin/busybox mount -t sysfs sys /sys\n\
         /bin/busybox mount -t devtmpfs dev /dev\n\
         for m in {mods}; do /bin/busybox insmod /lib/modules/$m.ko 2>/dev/null; done\n\
         i=0\n\
         while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do /bin/busybox sleep 0.1; i=$((i+1)); done\n\
         if [ -b /dev/vda ]; then d=vda; else d=none; fi\n\
         echo \"{MARKER} disk=$d cmdline=$(/bin/busybox cat /proc/cmdline)\"\n\
         /bin/busybox poweroff -f\n",
        mods = MODULES
            .iter()
            .map(|m| m.rsplit('/').next().unwrap_or(m).trim_end_matches(".ko"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut w = CpioWriter::new(Vec::new());
    for d in ["bin", "dev", "proc", "sys", "lib", "lib/modules"] {
        w.dir(d.as_bytes(), 0o755).expect("dir");
    }
    w.char_device(b"dev/console", 0o600, 5, 1).expect("console");
    let busybox = std::fs::read("/bin/busybox").expect("busybox");
    w.file(b"bin/busybox", 0o755, &busybox).expect("busybox");
    w.symlink(b"bin/sh", b"busybox").expect("sh");
    for m in MODULES {
        let data = std::fs::read(moddir().join(m)).expect("module");
        let name = format!("lib/modules/{}", m.rsplit('/').next().unwrap_or(m));
        w.file(name.as_bytes(), 0o644, &data).expect("module");
    }
    w.file(b"init", 0o755, init.as_bytes()).expect("init");
    w.finish().expect("finish")
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn assets_dir(root: &Path) -> (PathBuf, AssetsPlan) {
    let dir = root.join("assets");
    std::fs::create_dir(&dir).expect("mkdir");
    let files = AssetFiles::default();
    std::fs::copy(kernel(), dir.join(&files.bzimage)).expect("copy kernel");
    assets::vmlinux::extract_file(&kernel(), &dir.join(&files.vmlinux)).expect("extract vmlinux");
    std::fs::write(dir.join(&files.initramfs), initramfs()).expect("write initramfs");
    let rootfs = std::fs::File::create(dir.join(&files.rootfs)).expect("rootfs");
    rootfs.set_len(8 << 20).expect("size rootfs");
    let port = free_port();
    let plan = AssetsPlan {
        source: "oci:/tmp/test:latest".into(),
        digest: Digest::sha256_of(b"assets-boot"),
        platform: "linux/amd64".into(),
        runtime: RuntimeConfig::default(),
        files,
        kernel_cmdline: "console=hvc0 root=/dev/sda rw panic=-1 quiet oci2vm.test=1".into(),
        user_net_cmdline: None,
        memory_mib: 256,
        cpus: 1,
        tap: None,
        mac: None,
        port_forwards: vec![PortForward {
            protocol: Protocol::Tcp,
            host: port,
            guest: 80,
        }],
    };
    assets::writer::write(&plan, &dir).expect("write assets");
    (dir, plan)
}

/// Runs `qemu.sh ARGS` from another directory with a timeout; returns the console output.
/// The first boot leaves ACCEL unset so the script's KVM probe runs (it must fall back to TCG
/// where /dev/kvm is unusable, and may pick KVM where it works).
fn boot(dir: &Path, args: &[&str], probe_kvm: bool) -> (String, Duration) {
    let start = Instant::now();
    let mut cmd = Command::new("timeout");
    cmd.arg("120")
        .arg(dir.join("qemu.sh"))
        .args(args)
        .current_dir("/");
    if !probe_kvm {
        cmd.env("ACCEL", "tcg");
    }
    let out = cmd.output().expect("run qemu.sh");
    let elapsed = start.elapsed();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "qemu.sh {args:?} failed ({:?}): {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        text
    );
    (text, elapsed)
}

#[test]
fn extracted_vmlinux_is_an_x86_64_elf_with_a_pvh_note() {
    if !have(&[
        ("readelf", on_path("readelf")),
        ("kernel", kernel().exists()),
    ]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("vmlinux");
    let start = Instant::now();
    let info = assets::vmlinux::extract_file(&kernel(), &out).expect("extract");
    let size = std::fs::metadata(&out).expect("stat").len();
    eprintln!("vmlinux: {size} bytes extracted in {:.2?}", start.elapsed());
    let h = Command::new("readelf")
        .arg("-h")
        .arg(&out)
        .output()
        .expect("readelf -h");
    let h = String::from_utf8_lossy(&h.stdout);
    assert!(
        h.contains("ELF64") && h.contains("Advanced Micro Devices X86-64"),
        "{h}"
    );
    assert!(
        h.contains(&format!(
            "Entry point address:               {:#x}",
            info.entry
        )),
        "{h}"
    );
    let n = Command::new("readelf")
        .arg("-n")
        .arg(&out)
        .output()
        .expect("readelf -n");
    let n = String::from_utf8_lossy(&n.stdout);
    // binutils 2.40 prints the PVH note as "Unknown note type: (0x00000012)".
    let pvh = info.pvh_entry.expect("pvh entry");
    let bytes: Vec<String> = pvh
        .to_le_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let lines: Vec<&str> = n.lines().collect();
    let at = lines
        .iter()
        .position(|l| {
            l.contains("Xen") && (l.contains("(0x00000012)") || l.contains("PHYS32_ENTRY"))
        })
        .unwrap_or_else(|| panic!("no PVH note: {n}"));
    assert!(
        lines[at + 1].contains(&bytes.join(" ")),
        "PVH entry {pvh:#x} differs: {}",
        lines[at + 1]
    );
    // The kernel's own tool for its payload gives the same bytes.
    if on_path("lz4") {
        let image = std::fs::read(kernel()).expect("kernel");
        let payload = assets::vmlinux::payload(&image).expect("payload");
        let p = dir.path().join("payload");
        std::fs::write(&p, payload).expect("write");
        let lz = Command::new("lz4")
            .arg("-dc")
            .arg(&p)
            .output()
            .expect("lz4");
        let ours = std::fs::read(&out).expect("read");
        assert!(
            lz.stdout == ours,
            "differs from lz4 -dc ({} vs {} bytes)",
            lz.stdout.len(),
            ours.len()
        );
    }
    let l = Command::new("readelf")
        .arg("-lW")
        .arg(&out)
        .output()
        .expect("readelf -l");
    let loads = String::from_utf8_lossy(&l.stdout)
        .lines()
        .filter(|l| l.trim_start().starts_with("LOAD"))
        .count();
    assert_eq!(loads, info.load_segments);
}

#[test]
fn qemu_sh_boots_microvm_q35_and_pvh_vmlinux() {
    let ok = have(&[
        ("qemu-system-x86_64", on_path("qemu-system-x86_64")),
        ("kernel", kernel().exists()),
        ("modules", moddir().join(MODULES[0]).exists()),
        ("/bin/busybox", Path::new("/bin/busybox").exists()),
    ]);
    if !ok {
        return;
    }
    let root = tempfile::tempdir().expect("tempdir");
    let (dir, _plan) = assets_dir(root.path());
    for args in [
        &[][..],
        &["--machine", "q35"][..],
        &["--machine", "q35", "-kernel", "vmlinux"][..],
    ] {
        if args.contains(&"vmlinux") {
            // QEMU takes the last -kernel; spoil the bzImage so only the PVH ELF can boot.
            std::fs::write(dir.join("bzImage"), b"not a kernel").expect("spoil bzImage");
        }
        let (console, took) = boot(&dir, args, args.is_empty());
        // SeaBIOS (q35) leaves terminal escapes on the line before the marker.
        let line = console
            .lines()
            .find_map(|l| l.find(MARKER).map(|i| &l[i..]))
            .unwrap_or_else(|| panic!("no marker for {args:?}:\n{console}"));
        eprintln!("qemu.sh {args:?}: {took:.2?}: {line}");
        assert!(
            line.contains("disk=vda"),
            "{args:?}: root disk not attached: {line}"
        );
        assert!(
            line.contains("console=ttyS0") && line.contains("root=/dev/vda"),
            "{line}"
        );
        assert!(line.contains("oci2vm.test=1"), "{line}");
        assert_eq!(line.contains("tsc_early_khz="), args.is_empty(), "{line}");
    }
}
