//! Boots the busybox fixture under QEMU (TCG here) through `vmm::run_with` and checks what
//! `docker run` would print and exit with. The root disk is the fixture converted by our
//! pipeline (`convert::flatten` + the ext4 writer) with each case's config embedded. Each case
//! also runs under runc (umoci unpack of the same image, same argv/env/user/cwd) when runc works
//! here; rows go to target/tmp/run-vs-runc.tsv, from which docs/run-vs-runc.md is written.
//! `crates/oci2vm-cli/tests/run_cli.rs` runs the same cases through `oci2vm run SOURCE`.

mod support;

use oci2vm::guest::image::resolve_argv;
use oci2vm_guest::{GuestConfig, Overlay};
use std::io::Write;
use support::*;

fn v(s: &[&str]) -> Vec<String> {
    s.iter().map(|x| x.to_string()).collect()
}

/// One `docker run` case: the image's config, the run's overrides, and what must come out.
struct Case {
    name: &'static str,
    image: GuestConfig,
    overlay: Overlay,
    stdin: &'static [u8],
    /// runc gets this user instead (runc takes numeric ids; Docker resolves names first).
    runc_user: Option<&'static str>,
    compare_runc: bool,
}

impl Case {
    fn new(name: &'static str, argv: &[&str]) -> Self {
        let mut overlay = Overlay::new();
        overlay.argv(&v(argv));
        Case {
            name,
            image: busybox_config(),
            overlay,
            stdin: b"",
            runc_user: None,
            compare_runc: true,
        }
    }

    /// Boots, checks against `want` (status, stdout), compares with runc, records the row.
    fn check(self, want_status: i32, want_stdout: &str) -> Outcome {
        let Some(env) = env() else {
            return Outcome {
                status: want_status,
                stdout: want_stdout.into(),
                stderr: String::new(),
                boot_to_exec: None,
            };
        };
        let _g = serial();
        let disk = make_disk(env, self.name, &self.image);
        let r = boot(&spec(env, &disk, &self.overlay), self.stdin);
        eprintln!("{}: {r:?}", self.name);
        let mut merged = self.image.clone();
        merged.apply(&self.overlay.render()).expect("overlay");
        if let Some(u) = self.runc_user {
            merged.user = u.into();
        }
        let runc = if self.compare_runc {
            support::runc(env, self.name, &merged, !self.stdin.is_empty())
        } else {
            None
        };
        record(self.name, &merged, &r, runc.as_ref());
        assert_eq!(
            (r.status, r.stdout.as_str()),
            (want_status, want_stdout),
            "{}: stderr {:?}",
            self.name,
            r.stderr
        );
        if let Some((code, out, _)) = &runc {
            assert_eq!(
                (*code, out.as_str()),
                (r.status, r.stdout.as_str()),
                "{}: runc differs",
                self.name
            );
        }
        r
    }
}

fn record(name: &str, cfg: &GuestConfig, r: &Outcome, runc: Option<&(i32, String, String)>) {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("run-vs-runc.tsv");
    let esc = |s: &str| s.replace('\n', "\\n").replace('\t', "\\t");
    let runc_cols = runc.map_or("-\t-".to_string(), |(c, o, _)| format!("{c}\t{}", esc(o)));
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(
            f,
            "{name}\t{}\t{}\t{}\t{runc_cols}\t{:?}",
            esc(&format!("{:?}", cfg.argv)),
            r.status,
            esc(&r.stdout),
            r.boot_to_exec
        );
    }
}

#[test]
fn exit_code_and_stream_separation() {
    let r = Case::new("exit7", &["sh", "-c", "echo out; echo err >&2; exit 7"]).check(7, "out\n");
    assert_eq!(r.stderr, "err\n");
}

#[test]
fn stdout_and_stderr_stay_apart() {
    let script = "for i in 1 2 3; do echo o$i; echo e$i >&2; done";
    let r = Case::new("streams", &["sh", "-c", script]).check(0, "o1\no2\no3\n");
    assert_eq!(r.stderr, "e1\ne2\ne3\n");
}

#[test]
fn default_entrypoint_and_cmd() {
    let mut c = Case::new("default-cmd", &[]);
    c.overlay = Overlay::new();
    c.image.argv = resolve_argv(&v(&["echo", "from"]), &v(&["image", "cmd"]), None, None);
    c.check(0, "from image cmd\n");
}

#[test]
fn entrypoint_override() {
    let mut c = Case::new("entrypoint", &[]);
    c.image.argv = resolve_argv(&v(&["echo", "ep"]), &v(&["x"]), None, None);
    c.overlay = Overlay::new();
    c.overlay.argv(&resolve_argv(
        &v(&["echo", "ep"]),
        &v(&["x"]),
        Some(&v(&["printf"])),
        Some(&v(&["%s-%s\n", "a", "b"])),
    ));
    c.check(0, "a-b\n");
}

#[test]
fn env_from_image_and_overrides() {
    let mut c = Case::new("env", &["sh", "-c", "echo $FOO $BAR $NEW"]);
    c.image.env.extend(v(&["FOO=image", "BAR=keep"]));
    c.overlay.env("FOO=override").env("NEW=1");
    c.check(0, "override keep 1\n");
}

#[test]
fn workdir_is_created() {
    let mut c = Case::new("workdir", &["pwd"]);
    c.overlay.workdir("/work/dir");
    c.compare_runc = false; // runc's rootfs is shared read-only here; it cannot mkdir
    c.check(0, "/work/dir\n");
}

#[test]
fn user_numeric() {
    let mut c = Case::new("user-1000", &["id"]);
    c.overlay.user("1000:1000");
    c.check(0, "uid=1000 gid=1000 groups=1000\n");
}

#[test]
fn user_by_name() {
    let mut c = Case::new("user-nobody", &["sh", "-c", "id; echo $HOME"]);
    c.overlay.user("nobody");
    c.runc_user = Some("65534:65534");
    c.image.env.push("HOME=/nonexistent".into()); // what Docker derives from passwd; runc does not
    c.check(
        0,
        "uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)\n/nonexistent\n",
    );
}

#[test]
fn home_from_passwd() {
    let mut c = Case::new("home", &["sh", "-c", "echo $HOME"]);
    c.overlay.user("nobody");
    c.compare_runc = false; // HOME from passwd is Docker's doing, not runc's
    c.check(0, "/nonexistent\n");
}

#[test]
fn workload_is_pid_1() {
    Case::new("pid1", &["sh", "-c", "echo $$"]).check(0, "1\n");
}

#[test]
fn pid_1_ignores_its_own_sigkill_like_runc() {
    // PID 1 of a namespace cannot be killed from inside it: `kill -9 $$` is a no-op.
    Case::new("kill-self", &["sh", "-c", "kill -9 $$; echo survived"]).check(0, "survived\n");
}

#[test]
fn killed_child_reports_128_plus_signal() {
    Case::new("killed-child", &["sh", "-c", "sh -c 'kill -9 $$'; echo $?"]).check(0, "137\n");
}

#[test]
fn killed_workload_with_init_is_137() {
    let mut c = Case::new("init-kill", &["sh", "-c", "kill -9 $$"]);
    c.overlay.init(true);
    c.compare_runc = false; // runc has no --init; docker run --init gives 137
    c.check(137, "");
}

#[test]
fn zombies_are_reaped_with_init() {
    let script = "sh -c 'sleep 0.2 & exit 0'; sleep 1; cat /proc/[0-9]*/stat | awk '{print $3}' | grep -c Z; true";
    let mut c = Case::new("zombies", &["sh", "-c", script]);
    c.overlay.init(true);
    c.compare_runc = false;
    c.check(0, "0\n");
}

#[test]
fn stdin_not_forwarded_without_i() {
    let mut c = Case::new("no-stdin", &["cat"]);
    c.stdin = b"secret\n";
    c.compare_runc = false; // runc gets /dev/null in this harness either way
    c.check(0, "");
}

#[test]
fn stdin_forwarded_with_i() {
    let mut c = Case::new("stdin", &["sh", "-c", "cat; echo done"]);
    c.stdin = b"secret\n";
    c.overlay.stdin(true);
    c.compare_runc = false;
    // `boot` sets spec.stdin from the overlay? No: the VMM needs the port too.
    let Some(env) = env() else { return };
    let _g = serial();
    let disk = make_disk(env, c.name, &c.image);
    let mut s = spec(env, &disk, &c.overlay);
    s.stdin = true;
    let r = boot(&s, c.stdin);
    assert_eq!(
        (r.status, r.stdout.as_str()),
        (0, "secret\ndone\n"),
        "{r:?}"
    );
}

#[test]
fn default_path_when_image_sets_none() {
    let mut c = Case::new("default-path", &["sh", "-c", "echo $PATH"]);
    c.image.env.clear();
    c.check(
        0,
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n",
    );
}

#[test]
fn command_not_found_is_127() {
    let mut c = Case::new("not-found", &["no-such-command"]);
    c.compare_runc = false; // runc itself fails to start (exit 1 here); Docker reports 127
    let r = c.check(127, "");
    assert!(
        r.stderr.contains("executable file not found in $PATH"),
        "{r:?}"
    );
}

#[test]
fn not_executable_is_126() {
    let mut c = Case::new("not-exec", &["/etc/passwd"]);
    c.compare_runc = false;
    c.check(126, "");
}

#[test]
fn init_binary_is_static() {
    let Some(_env) = env() else { return };
    let init = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/x86_64-unknown-linux-gnu/release/oci2vm-init");
    assert!(oci2vm::guest::is_static_elf(&init));
    if let Ok(out) = std::process::Command::new("readelf")
        .arg("-l")
        .arg(&init)
        .output()
    {
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("INTERP"),
            "readelf shows an interpreter"
        );
    }
    assert!(
        !oci2vm::guest::is_static_elf(std::path::Path::new("/bin/sh")),
        "/bin/sh is dynamic"
    );
}

#[test]
fn volume_write_appears_on_host() {
    let Some(env) = env() else { return };
    let Some(virtiofsd) = oci2vm::vmm::find_virtiofsd() else {
        skip("virtiofsd not installed");
        return;
    };
    let _g = serial();
    let host = env.scratch.join("volume");
    let _ = std::fs::remove_dir_all(&host);
    std::fs::create_dir_all(&host).expect("mkdir");
    let disk = make_disk(env, "volume", &busybox_config());
    let mut o = Overlay::new();
    o.argv(&v(&["sh", "-c", "echo from-guest > /data/hello.txt"]));
    o.mount(&oci2vm_guest::Mount {
        kind: "virtiofs".into(),
        tag: "vol0".into(),
        path: "/data".into(),
        readonly: false,
    });
    let mut s = spec(env, &disk, &o);
    s.virtiofsd = Some(virtiofsd);
    s.volumes = vec![oci2vm::vmm::Volume {
        host: host.clone(),
        tag: "vol0".into(),
    }];
    let r = boot(&s, b"");
    assert_eq!(r.status, 0, "{r:?}");
    assert_eq!(
        std::fs::read_to_string(host.join("hello.txt")).expect("file on host"),
        "from-guest\n"
    );
}

#[test]
fn published_port_reaches_guest_server() {
    let Some(env) = env() else { return };
    let _g = serial();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let disk = make_disk(env, "publish", &busybox_config());
    let mut o = Overlay::new();
    o.argv(&v(&["nc", "-l", "-p", "8080"]))
        .network(&oci2vm_guest::Network::qemu_user());
    let mut s = spec(env, &disk, &o);
    s.network = Some(vec![oci2vm::vmm::PortForward {
        host_addr: "127.0.0.1".into(),
        host_port: port,
        guest_port: 8080,
    }]);
    let client = std::thread::spawn(move || {
        // Retry until the guest listens (QEMU accepts on the host side immediately, then
        // resets when nothing listens in the guest, so write and check the server got it).
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_secs(50) {
            if let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                let _ = c.write_all(b"ping\n");
                std::thread::sleep(std::time::Duration::from_millis(300));
                if c.take_error().ok().flatten().is_none() {
                    let _ = c.shutdown(std::net::Shutdown::Both);
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
    });
    let r = boot(&s, b"");
    drop(client);
    assert_eq!((r.status, r.stdout.as_str()), (0, "ping\n"), "{r:?}");
}

#[test]
fn init_failure_names_the_step() {
    let Some(env) = env() else { return };
    let _g = serial();
    let disk = make_disk(env, "bad-config", &busybox_config());
    // The override is parsed in the initramfs (cmdline step) before anything else.
    let mut s = spec(env, &disk, &Overlay::new());
    s.overlay = "oci2vm-config 1\nbogus-key 1\n".into();
    let err = oci2vm::vmm::run_with(
        &s,
        oci2vm::vmm::RunIo {
            stdout: Box::new(std::io::sink()),
            stderr: Box::new(std::io::sink()),
            stdin: Box::new(std::io::empty()),
        },
    )
    .expect_err("init must fail");
    match err {
        oci2vm::vmm::LaunchError::Guest { step, message } => {
            assert_eq!(step, "cmdline");
            assert!(message.contains("unknown key"), "{message}");
        }
        e => panic!("unexpected error: {e}"),
    }
}

#[test]
fn ctrl_c_sends_the_stop_signal() {
    let Some(env) = env() else { return };
    let _g = serial();
    let disk = make_disk(env, "stop", &busybox_config());
    let mut o = Overlay::new();
    o.argv(&v(&[
        "sh",
        "-c",
        "trap 'echo got TERM; exit 3' TERM; echo ready; while true; do sleep 0.1; done",
    ]));
    let mut s = spec(env, &disk, &o);
    s.catch_signals = true;
    let out = Buf::default();
    let watch = out.clone();
    // Once the workload is up, interrupt ourselves as a terminal's Ctrl-C would.
    let pid = std::process::id().to_string();
    let poker = std::thread::spawn(move || {
        let start = std::time::Instant::now();
        while !watch.text().contains("ready")
            && start.elapsed() < std::time::Duration::from_secs(50)
        {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status();
    });
    let r = oci2vm::vmm::run_with(
        &s,
        oci2vm::vmm::RunIo {
            stdout: Box::new(out.clone()),
            stderr: Box::new(std::io::sink()),
            stdin: Box::new(std::io::empty()),
        },
    )
    .expect("run");
    let _ = poker.join();
    assert_eq!((r.status, out.text().as_str()), (3, "ready\ngot TERM\n"));
}

#[test]
fn q35_with_virtio_pci_and_network() {
    let Some(env) = env() else { return };
    let _g = serial();
    let disk = make_disk(env, "q35", &busybox_config());
    let mut o = Overlay::new();
    o.argv(&v(&[
        "sh",
        "-c",
        "ls /sys/class/net; ip route 2>/dev/null | grep -c default; cat /etc/resolv.conf",
    ]))
    .network(&oci2vm_guest::Network::qemu_user())
    .dns([10, 0, 2, 3]);
    let mut s = spec(env, &disk, &o);
    s.machine = oci2vm::vmm::Machine::Q35;
    s.network = Some(Vec::new());
    let r = boot(&s, b"");
    assert_eq!(
        (r.status, r.stdout.as_str()),
        (0, "eth0\nlo\n1\nnameserver 10.0.2.3\n"),
        "{r:?}"
    );
}

/// The file's sha256, hex.
fn digest(path: &std::path::Path) -> String {
    let bytes = std::fs::read(path).expect("read the root disk");
    oci2vm::Digest::sha256_of(&bytes).hex().to_string()
}

#[test]
fn a_writable_root_is_flushed_and_clean_after_power_off() {
    let Some(env) = env() else { return };
    if !have("debugfs") || !have("e2fsck") {
        skip("e2fsprogs missing");
        return;
    }
    let _g = serial();
    let disk = make_disk(env, "persist", &busybox_config());
    let mut o = Overlay::new();
    o.argv(&v(&["sh", "-c", "echo kept > /persist.txt"]));
    let r = boot(&spec(env, &disk, &o), b"");
    assert_eq!(r.status, 0, "{r:?}");
    let cat = std::process::Command::new("debugfs")
        .args(["-R", "cat /persist.txt"])
        .arg(&disk)
        .output()
        .expect("debugfs");
    assert_eq!(String::from_utf8_lossy(&cat.stdout), "kept\n");
    let fsck = std::process::Command::new("e2fsck")
        .arg("-fn")
        .arg(&disk)
        .output()
        .expect("e2fsck");
    assert!(
        fsck.status.success(),
        "unclean after power-off: {}",
        String::from_utf8_lossy(&fsck.stdout)
    );
}

#[test]
fn a_snapshot_root_is_left_untouched() {
    let Some(env) = env() else { return };
    let _g = serial();
    let disk = make_disk(env, "snapshot", &busybox_config());
    let before = digest(&disk);
    let mut o = Overlay::new();
    o.argv(&v(&[
        "sh",
        "-c",
        "echo gone > /scratch.txt; cat /scratch.txt",
    ]));
    let mut s = spec(env, &disk, &o);
    s.root_snapshot = true;
    let r = boot(&s, b"");
    assert_eq!((r.status, r.stdout.as_str()), (0, "gone\n"), "{r:?}");
    assert_eq!(digest(&disk), before, "the cached disk changed");
}

#[test]
fn entropy_device_loads_virtio_rng() {
    let Some(env) = env() else { return };
    let _g = serial();
    let disk = make_disk(env, "rng", &busybox_config());
    let mut o = Overlay::new();
    o.argv(&v(&["cat", "/sys/class/misc/hw_random/rng_current"]));
    let mut s = spec(env, &disk, &o);
    s.entropy = true;
    let r = boot(&s, b"");
    assert_eq!((r.status, r.stdout.trim()), (0, "virtio_rng.0"), "{r:?}");
    s.entropy = false;
    let r = boot(&s, b"");
    assert_eq!((r.status, r.stdout.trim()), (0, "none"), "{r:?}");
}
