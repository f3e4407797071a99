//! The QEMU command line for a [`VmSpec`](super::VmSpec).
//!
//! ```text
//! qemu-system-x86_64 -M microvm[,memory-backend=mem] -accel tcg|kvm -cpu max,-erms|host -m MiB -smp N
//!   -nodefaults -no-user-config -no-reboot -display none [-global virtio-mmio.force-legacy=false]
//!   -kernel bzImage -initrd initramfs -append "console=ttyS0 panic=-1 [quiet] tsc_early_khz=K oci2vm.*"
//!   -chardev file,id=kl,path=LOG,append=on -serial chardev:kl        kernel log
//!   -drive file=ROOT,format=raw,if=none,id=root[,readonly=on] -device virtio-blk-device,drive=root
//!   -device virtio-serial-device,max_ports=4|5                       (the ports below + port 0)
//!   -chardev socket,id=ctl,path=S -device virtserialport,chardev=ctl,name=oci2vm.ctl   (+stdout,
//!                                                                   stderr, stdin with -i)
//!   -device virtio-rng-device                                        (only when the host CPU
//!                                                                     has no RDRAND)
//!   -netdev user,id=n0[,hostfwd=tcp:127.0.0.1:H-:G] -device virtio-net-device,netdev=n0
//!   -object memory-backend-memfd,id=mem,size=MiB,share=on            (only with volumes)
//!   -chardev socket,id=fsN,path=S -device vhost-user-fs-device,chardev=fsN,tag=TAG
//! ```
//!
//! microvm (virtio-mmio, ACPI on) is the default: it boots fastest under TCG. The Debian cloud
//! kernel finds virtio-mmio devices only through ACPI, and microvm under TCG needs
//! `tsc_early_khz=` (no HPET/PM timer to calibrate against). q35 uses the `-pci` devices.
//!
//! `-cpu max,-erms` under TCG: with ERMS ("enhanced REP MOVSB/STOSB") advertised, the guest
//! kernel's memset/memcpy/clear_page (and glibc's for large sizes) use byte-granular
//! `rep stosb`/`rep movsb`, which TCG emulates one byte per iteration; without it they use
//! `rep stosq`/`movsq` (the kernel's REP_GOOD path) and vector loops. Zeroing every
//! allocation (the Debian kernel has `init_on_alloc` on) made this the largest single cost of
//! a TCG boot: ~150 ms of ours, ~100 ms of a bare busybox boot (bench/README.md).
//!
//! `max_ports`: QEMU's default of 31 makes the guest's virtio_console set up 64 port queues
//! (two per possible port) at probe; sized to the ports we attach (port 0 stays reserved for a
//! console), the module's probe took ~11 ms less under TCG (bench/README.md).

use super::{Accel, Machine, VmSpec};
use std::path::{Path, PathBuf};

/// Files the launcher created for this run.
#[derive(Debug, Clone)]
pub struct RunPaths {
    /// Kernel log file (or /dev/stderr).
    pub kernel_log: PathBuf,
    /// The initramfs to boot (cached one, or a copy with the override appended).
    pub initramfs: PathBuf,
    /// Control socket.
    pub ctl: PathBuf,
    /// Stdout socket.
    pub stdout: PathBuf,
    /// Stderr socket.
    pub stderr: PathBuf,
    /// Stdin socket (with -i).
    pub stdin: Option<PathBuf>,
    /// virtiofsd sockets, one per volume, in order.
    pub virtiofs: Vec<PathBuf>,
}

fn p(path: &Path) -> String {
    // QEMU option values: a comma must be doubled.
    path.to_string_lossy().replace(',', ",,")
}

/// The host TSC rate in kHz: sysfs `tsc_freq_khz` when the kernel exposes it, else the
/// `cpu MHz` of /proc/cpuinfo (under TCG the guest TSC runs at the host rate).
pub fn host_tsc_khz() -> Option<u64> {
    if let Ok(s) = std::fs::read_to_string("/sys/devices/system/cpu/cpu0/tsc_freq_khz")
        && let Ok(v) = s.trim().parse::<u64>()
    {
        return Some(v);
    }
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let mhz = info
        .lines()
        .find(|l| l.starts_with("cpu MHz"))?
        .split(':')
        .nth(1)?;
    let khz = (mhz.trim().parse::<f64>().ok()? * 1000.0).round();
    (1.0..1e9).contains(&khz).then_some(khz as u64)
}

/// The guest CPU model under TCG (see the module docs for why ERMS is off).
pub const TCG_CPU: &str = "max,-erms";

/// True when the host CPU has RDRAND (`/proc/cpuinfo` flags); KVM's `-cpu host` passes it
/// through and TCG's `-cpu max` always emulates it.
pub fn host_has_rdrand() -> bool {
    std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|info| {
        info.lines()
            .find(|l| l.starts_with("flags"))
            .is_some_and(|l| l.split_whitespace().any(|f| f == "rdrand"))
    })
}

/// The kernel command line: the guest's own ([`oci2vm_guest::CmdlineArgs::kernel_cmdline`],
/// shared with the `oci2vm assets` configs) plus `tsc_early_khz=` on microvm.
pub fn kernel_cmdline(
    spec: &VmSpec,
    args: &oci2vm_guest::CmdlineArgs,
    tsc_khz: Option<u64>,
) -> String {
    let mut line = args.kernel_cmdline();
    if spec.machine == Machine::Microvm
        && let Some(k) = tsc_khz
    {
        line.push_str(&format!(" tsc_early_khz={k}"));
    }
    line
}

/// The full argument vector (without the program name).
pub fn args(spec: &VmSpec, paths: &RunPaths, accel: Accel, cmdline: &str) -> Vec<String> {
    let dev = |base: &str| match spec.machine {
        Machine::Microvm => format!("{base}-device"),
        Machine::Q35 => format!("{base}-pci"),
    };
    let mut a: Vec<String> = Vec::new();
    let mut push = |xs: &[&str]| a.extend(xs.iter().map(|s| s.to_string()));
    let shared = !spec.volumes.is_empty();
    let machine = match (spec.machine, shared) {
        (Machine::Microvm, false) => "microvm".to_string(),
        (Machine::Microvm, true) => "microvm,memory-backend=mem".to_string(),
        (Machine::Q35, false) => "q35".to_string(),
        (Machine::Q35, true) => "q35,memory-backend=mem".to_string(),
    };
    let (accel_s, cpu) = match accel {
        Accel::Kvm => ("kvm", "host"),
        Accel::Tcg => ("tcg", TCG_CPU),
    };
    let mem = format!("{}M", spec.memory_mib);
    push(&["-M", &machine, "-accel", accel_s, "-cpu", cpu, "-m", &mem]);
    push(&["-smp", &spec.cpus.to_string()]);
    push(&[
        "-nodefaults",
        "-no-user-config",
        "-no-reboot",
        "-display",
        "none",
    ]);
    if spec.machine == Machine::Microvm {
        // Modern (v2) virtio-mmio: vhost-user devices (virtiofsd) refuse legacy virtio.
        push(&["-global", "virtio-mmio.force-legacy=false"]);
    }
    push(&[
        "-kernel",
        &p(&spec.kernel),
        "-initrd",
        &p(&paths.initramfs),
        "-append",
        cmdline,
    ]);
    push(&[
        "-chardev",
        &format!("file,id=kl,path={},append=on", p(&paths.kernel_log)),
    ]);
    push(&["-serial", "chardev:kl"]);
    let ro = if spec.root_readonly {
        ",readonly=on"
    } else if spec.root_snapshot {
        ",snapshot=on"
    } else {
        ""
    };
    push(&[
        "-drive",
        &format!(
            "file={},format=raw,if=none,id=root,cache=unsafe{ro}",
            p(&spec.root_disk)
        ),
    ]);
    push(&["-device", &format!("{},drive=root", dev("virtio-blk"))]);
    let mut ports = vec![
        ("ctl", &paths.ctl, oci2vm_guest::PORT_CONTROL),
        ("out", &paths.stdout, oci2vm_guest::PORT_STDOUT),
        ("err", &paths.stderr, oci2vm_guest::PORT_STDERR),
    ];
    if let Some(s) = &paths.stdin {
        ports.push(("in", s, oci2vm_guest::PORT_STDIN));
    }
    // port numbers start at 1 (0 is reserved for a console port)
    let serial = format!("{},max_ports={}", dev("virtio-serial"), ports.len() + 1);
    push(&["-device", &serial]);
    for (id, path, name) in ports {
        push(&["-chardev", &format!("socket,id={id},path={}", p(path))]);
        push(&[
            "-device",
            &format!("virtserialport,chardev={id},name={name}"),
        ]);
    }
    if spec.entropy {
        push(&["-device", &dev("virtio-rng")]);
    }
    if let Some(fwd) = &spec.network {
        let mut nd = "user,id=n0".to_string();
        for f in fwd {
            nd.push_str(&format!(
                ",hostfwd=tcp:{}:{}-:{}",
                f.host_addr, f.host_port, f.guest_port
            ));
        }
        push(&[
            "-netdev",
            &nd,
            "-device",
            &format!("{},netdev=n0", dev("virtio-net")),
        ]);
    }
    if shared {
        push(&[
            "-object",
            &format!("memory-backend-memfd,id=mem,size={mem},share=on"),
        ]);
        for (i, (vol, sock)) in spec.volumes.iter().zip(&paths.virtiofs).enumerate() {
            push(&["-chardev", &format!("socket,id=fs{i},path={}", p(sock))]);
            push(&[
                "-device",
                &format!("{},chardev=fs{i},tag={}", dev("vhost-user-fs"), vol.tag),
            ]);
        }
    }
    a
}

#[cfg(test)]
mod tests {
    use super::super::{PortForward, Volume};
    use super::*;

    fn spec() -> VmSpec {
        VmSpec::new("/k/vmlinuz".into(), "/i.gz".into(), "/r,oot.ext4".into())
    }

    fn paths() -> RunPaths {
        RunPaths {
            kernel_log: "/run/kl".into(),
            initramfs: "/run/i.gz".into(),
            ctl: "/run/ctl".into(),
            stdout: "/run/out".into(),
            stderr: "/run/err".into(),
            stdin: None,
            virtiofs: vec!["/run/fs0".into()],
        }
    }

    #[test]
    fn microvm_tcg_defaults() {
        let s = spec();
        let a = args(&s, &paths(), Accel::Tcg, "console=ttyS0");
        let j = a.join(" ");
        assert!(
            j.starts_with("-M microvm -accel tcg -cpu max,-erms -m 512M -smp 1 "),
            "{j}"
        );
        assert!(j.contains("file=/r,,oot.ext4,format=raw"), "{j}");
        assert!(j.contains("-device virtio-blk-device,drive=root"));
        assert!(j.contains("-global virtio-mmio.force-legacy=false"));
        assert!(j.contains("virtserialport,chardev=ctl,name=oci2vm.ctl"));
        assert!(
            j.contains("-device virtio-serial-device,max_ports=4 "),
            "{j}"
        );
        assert!(!j.contains("netdev"), "no network unless asked: {j}");
        assert!(!j.contains("in,path"), "no stdin port without -i");
    }

    #[test]
    fn stdin_port_and_entropy_device() {
        let mut s = spec();
        s.stdin = true;
        s.entropy = false;
        let mut p = paths();
        p.stdin = Some("/run/in".into());
        let j = args(&s, &p, Accel::Tcg, "x").join(" ");
        assert!(
            j.contains("-device virtio-serial-device,max_ports=5 "),
            "{j}"
        );
        assert!(j.contains("name=oci2vm.stdin"), "{j}");
        assert!(!j.contains("virtio-rng"), "{j}");
        s.entropy = true;
        let j = args(&s, &p, Accel::Tcg, "x").join(" ");
        assert!(j.ends_with("-device virtio-rng-device"), "{j}");
    }

    #[test]
    fn initramfs_plan_follows_the_devices() {
        let mut s = spec();
        s.entropy = false;
        assert_eq!(s.initramfs_plan().groups, vec!["core"]);
        assert_eq!(
            s.initramfs_plan().compression,
            crate::guest::Compression::None
        );
        s.machine = Machine::Q35;
        s.entropy = true;
        s.network = Some(Vec::new());
        s.volumes = vec![Volume {
            host: "/h".into(),
            tag: "vol0".into(),
        }];
        assert_eq!(
            s.initramfs_plan().groups,
            vec!["core", "pci", "rng", "net", "fs"]
        );
    }

    #[test]
    fn q35_network_and_volumes() {
        let mut s = spec();
        s.machine = Machine::Q35;
        s.network = Some(vec![PortForward {
            host_addr: "127.0.0.1".into(),
            host_port: 8080,
            guest_port: 80,
        }]);
        s.volumes = vec![Volume {
            host: "/h".into(),
            tag: "vol0".into(),
        }];
        let j = args(&s, &paths(), Accel::Kvm, "x").join(" ");
        assert!(
            j.starts_with("-M q35,memory-backend=mem -accel kvm -cpu host"),
            "{j}"
        );
        assert!(j.contains("hostfwd=tcp:127.0.0.1:8080-:80"));
        assert!(j.contains("-device virtio-net-pci,netdev=n0"));
        assert!(j.contains("vhost-user-fs-pci,chardev=fs0,tag=vol0"));
        assert!(j.contains("memory-backend-memfd,id=mem,size=512M,share=on"));
    }

    #[test]
    fn cmdline_words() {
        let mut s = spec();
        let mut args = oci2vm_guest::CmdlineArgs::default();
        assert_eq!(
            kernel_cmdline(&s, &args, Some(2596000)),
            "console=ttyS0 panic=-1 quiet tsc_early_khz=2596000"
        );
        s.machine = Machine::Q35;
        args.debug = true;
        assert_eq!(
            kernel_cmdline(&s, &args, Some(1)),
            "console=ttyS0 panic=-1 oci2vm.debug=1"
        );
    }

    #[test]
    fn boot_bench_baselines_use_the_same_cpu() {
        let bench = include_str!("../../../../bench/boot.sh");
        assert!(
            bench.contains(&format!("-cpu {TCG_CPU} ")),
            "bench/boot.sh must boot its baselines with -cpu {TCG_CPU}"
        );
    }

    #[test]
    fn tsc_rate_is_plausible() {
        if let Some(k) = host_tsc_khz() {
            assert!((100_000..20_000_000).contains(&k), "{k}");
        }
    }
}
