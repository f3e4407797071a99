//! `oci2vm run SOURCE` through the binary and the whole pipeline: source -> store -> merged
//! tree -> our ext4 writer (cached under the store's rootfs/) -> initramfs -> QEMU (TCG here)
//! -> guest init -> workload. Fixtures: busybox, debian-minbase, multistage, edge, and a tiny
//! image without Env made here with umoci. Boots run one at a time, each with `--timeout 60`.

use assert_cmd::Command;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};

const DOCKER_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Skips (prints why) or, under CI=true, fails.
fn skip(reason: &str) {
    assert_ne!(
        std::env::var("CI").as_deref(),
        Ok("true"),
        "required under CI: {reason}"
    );
    eprintln!("skipped: {reason}");
}

fn have(tool: &str, arg: &str) -> bool {
    std::process::Command::new(tool)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

fn fixtures() -> PathBuf {
    std::env::var_os("OCI2VM_FIXTURES")
        .map_or_else(|| "/var/tmp/oci2vm-fixtures".into(), PathBuf::from)
}

/// `oci:` source of a fixture.
fn img(name: &str) -> String {
    format!("oci:{}:latest", fixtures().join("oci").join(name).display())
}

struct Env {
    /// Shared store (conversions are cached here across cases) and XDG cache (initramfs).
    dir: PathBuf,
    /// busybox with no Env and a shell-form Cmd `/bin/sh -c 'echo $PATH'`.
    noenv: String,
}

/// One boot at a time: TCG boots are CPU-bound and the machine is shared.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// Checks the tools and fixtures, builds the guest init, and makes the no-Env image, once.
fn env() -> Option<&'static Env> {
    static ENV: OnceLock<Option<Env>> = OnceLock::new();
    ENV.get_or_init(|| {
        for (ok, what) in [
            (
                have("qemu-system-x86_64", "--version"),
                "qemu-system-x86_64",
            ),
            (have("umoci", "--version"), "umoci"),
            (have_kernel(), "Debian cloud kernel"),
        ] {
            if !ok {
                skip(&format!("{what} missing"));
                return None;
            }
        }
        for name in ["busybox", "debian-minbase", "multistage", "edge"] {
            if !fixtures().join("oci").join(name).exists() {
                skip(&format!(
                    "fixture {name} missing (scripts/fixtures/make-images.sh)"
                ));
                return None;
            }
        }
        let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let st = std::process::Command::new(ws.join("scripts/build-init.sh"))
            .stdout(Stdio::null())
            .status()
            .expect("build-init.sh");
        assert!(st.success(), "build-init.sh failed");
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("run-cli");
        let layout = dir.join("noenv");
        let _ = std::fs::remove_dir_all(&layout);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let copied = std::process::Command::new("cp")
            .arg("-r")
            .arg(fixtures().join("oci/busybox"))
            .arg(&layout)
            .status()
            .expect("cp");
        assert!(copied.success());
        let out = std::process::Command::new("umoci")
            .args(["config", "--image"])
            .arg(format!("{}:latest", layout.display()))
            .args([
                "--tag",
                "latest",
                "--clear=config.env",
                "--clear=config.cmd",
            ])
            .args(["--config.cmd", "/bin/sh", "--config.cmd", "-c"])
            .args(["--config.cmd", "echo $PATH"])
            .output()
            .expect("umoci config");
        assert!(
            out.status.success(),
            "umoci config: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(Env {
            noenv: format!("oci:{}:latest", layout.display()),
            dir,
        })
    })
    .as_ref()
}

/// `oci2vm --store STORE run --timeout 60 ARGS`, with its own XDG cache.
fn oci2vm(env: &Env, store: &Path) -> Command {
    let mut c = Command::cargo_bin("oci2vm").expect("bin");
    c.env("XDG_CACHE_HOME", env.dir.join("cache"))
        .env_remove("RUST_LOG")
        .arg("--store")
        .arg(store)
        .args(["run", "--timeout", "60"]);
    c
}

/// Runs `oci2vm run ARGS` (one boot at a time) and returns its output; None when skipped.
fn run(args: &[&str]) -> Option<Output> {
    run_with(args, b"", |_| {})
}

fn run_with(args: &[&str], stdin: &[u8], extra: impl FnOnce(&mut Command)) -> Option<Output> {
    let env = env()?;
    let _g = serial();
    let mut c = oci2vm(env, &env.dir.join("store"));
    extra(&mut c);
    let out = c
        .args(args)
        .write_stdin(stdin.to_vec())
        .output()
        .expect("run");
    eprintln!(
        "{args:?}: {:?}\nstdout {:?}\nstderr {:?}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(out)
}

/// Asserts the exit code and the exact stdout.
fn expect(out: Option<Output>, code: i32, stdout: &str) -> Option<Output> {
    let out = out?;
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).as_ref()
        ),
        (Some(code), stdout),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(out)
}

/// Stderr without the one-line TCG notice (this machine has no KVM).
fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.contains("KVM") && !l.contains("TCG"))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        vec!["run"],
        vec!["run", "--root-disk", "x", "-p", "bad"],
        vec!["run", "--root-disk", "x", "--network", "none", "-p", "1:2"],
        vec!["run", "--root-disk", "x", "-v", "no-colon"],
        vec!["run", "-vv", "--root-disk", "x"],
    ] {
        Command::cargo_bin("oci2vm")
            .expect("bin")
            .args(&args)
            .assert()
            .code(2);
    }
}

#[test]
fn exit_code_and_separate_streams() {
    let script = "for i in 1 2; do echo o$i; echo e$i >&2; done; exit 7";
    let Some(out) = expect(
        run(&[&img("busybox"), "--", "sh", "-c", script]),
        7,
        "o1\no2\n",
    ) else {
        return;
    };
    assert_eq!(stderr_of(&out), "e1\ne2\n");
}

#[test]
fn debian_fixture() {
    let Some(out) = expect(
        run(&[
            &img("debian-minbase"),
            "--",
            "sh",
            "-c",
            "cut -d. -f1 /etc/debian_version",
        ]),
        0,
        "12\n",
    ) else {
        return;
    };
    assert_eq!(stderr_of(&out), "");
    expect(
        run(&[
            &img("debian-minbase"),
            "-u",
            "nobody",
            "--",
            "sh",
            "-c",
            "id; echo $HOME",
        ]),
        0,
        "uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)\n/nonexistent\n",
    );
}

#[test]
fn default_entrypoint_cmd_user_workdir() {
    expect(
        run(&[&img("multistage")]),
        0,
        "hello from multistage: default-arg\n",
    );
    expect(
        run(&[&img("multistage"), "--", "x", "y"]),
        0,
        "hello from multistage: x y\n",
    );
    expect(
        run(&[
            &img("multistage"),
            "--entrypoint",
            "sh",
            "--",
            "-c",
            "id -u; pwd; echo $APP_HOME",
        ]),
        0,
        "65534\n/opt/app\n/opt/app\n",
    );
    // edge: USER 1000:1000, WORKDIR /data, ENTRYPOINT ["/bin/sh","-c"] CMD ["cat /data/keep.txt"]
    expect(run(&[&img("edge")]), 0, "keep\nappended\n");
}

#[test]
fn entrypoint_override() {
    expect(
        run(&[
            &img("busybox"),
            "--entrypoint",
            "printf",
            "--",
            "%s-%s\\n",
            "a",
            "b",
        ]),
        0,
        "a-b\n",
    );
}

#[test]
fn shell_form_cmd_and_docker_default_path() {
    // The no-Env image's Cmd is shell form: ["/bin/sh", "-c", "echo $PATH"].
    let Some(env) = env() else { return };
    let noenv = env.noenv.clone();
    expect(run(&[&noenv]), 0, &format!("{DOCKER_PATH}\n"));
}

#[test]
fn env_from_image_and_flags() {
    let Some(env) = env() else { return };
    let env_file = env.dir.join("env-file");
    std::fs::write(&env_file, "# comment\nC=from-file\n").expect("env file");
    let env_file = env_file.display().to_string();
    expect(
        run(&[
            &img("edge"),
            "-e",
            "A=override",
            "-e",
            "NEW=x",
            "--env-file",
            &env_file,
            "--",
            "echo $A/$B/$NEW/$C",
        ]),
        0,
        "override/two words/x/from-file\n",
    );
}

#[test]
fn workdir_user_hostname() {
    expect(
        run(&[
            &img("busybox"),
            "-w",
            "/work/dir",
            "-u",
            "1000:1000",
            "--hostname",
            "box",
            "--network",
            "none",
            "--",
            "sh",
            "-c",
            "pwd; id; hostname; ip -4 addr show dev lo | grep -o 'inet [0-9./]*'",
        ]),
        0,
        "/work/dir\nuid=1000 gid=1000 groups=1000\nbox\ninet 127.0.0.1/8\n",
    );
}

#[test]
fn pid_1_signals_and_zombies() {
    let bb = img("busybox");
    expect(run(&[&bb, "--", "sh", "-c", "echo $$"]), 0, "1\n");
    let killed = "sh -c 'kill -9 $$'; echo $?";
    expect(run(&[&bb, "--", "sh", "-c", killed]), 0, "137\n");
    expect(
        run(&[&bb, "--init", "--", "sh", "-c", "kill -9 $$"]),
        137,
        "",
    );
    let zombies = "sh -c 'sleep 0.2 & exit 0'; sleep 1; \
                   cat /proc/[0-9]*/stat | awk '{print $3}' | grep -c Z; true";
    expect(run(&[&bb, "--init", "--", "sh", "-c", zombies]), 0, "0\n");
}

#[test]
fn stdin_only_with_i() {
    let bb = img("busybox");
    expect(run_with(&[&bb, "--", "cat"], b"secret\n", |_| {}), 0, "");
    expect(
        run_with(
            &[&bb, "-i", "--", "sh", "-c", "cat; echo done"],
            b"secret\n",
            |_| {},
        ),
        0,
        "secret\ndone\n",
    );
}

#[test]
fn volume_write_appears_on_host() {
    let Some(env) = env() else { return };
    if !Path::new("/usr/lib/qemu/virtiofsd").exists() && !have("virtiofsd", "--version") {
        return skip("virtiofsd missing (qemu-system-common)");
    }
    let host = env.dir.join("volume");
    let _ = std::fs::remove_dir_all(&host);
    std::fs::create_dir_all(&host).expect("mkdir");
    std::fs::write(host.join("in.txt"), "from-host\n").expect("write");
    let vol = format!("{}:/data", host.display());
    let ro = format!("{}:/ro:ro", host.display());
    expect(
        run(&[
            &img("busybox"),
            "-v",
            &vol,
            "--volume",
            &ro,
            "--",
            "sh",
            "-c",
            "cat /data/in.txt; echo from-guest > /data/out.txt; touch /ro/x 2>/dev/null || echo ro",
        ]),
        0,
        "from-host\nro\n",
    );
    assert_eq!(
        std::fs::read_to_string(host.join("out.txt")).expect("file on host"),
        "from-guest\n"
    );
}

#[test]
fn published_port_reaches_guest_server() {
    if env().is_none() {
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let publish = format!("{port}:8080");
    let client = std::thread::spawn(move || {
        // QEMU accepts on the host side at once and resets while nothing listens in the
        // guest, so keep sending until the guest's nc has printed it and exited.
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_secs(50) {
            if let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                let _ = c.write_all(b"ping\n");
                std::thread::sleep(std::time::Duration::from_millis(300));
                let _ = c.shutdown(std::net::Shutdown::Both);
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
    });
    let out = run(&[
        &img("busybox"),
        "-p",
        &publish,
        "--",
        "nc",
        "-l",
        "-p",
        "8080",
    ]);
    drop(client);
    expect(out, 0, "ping\n");
}

#[test]
fn second_run_skips_conversion() {
    let Some(env) = env() else { return };
    let store = tempfile::tempdir_in(&env.dir).expect("tempdir");
    let once = |c: &mut Command| {
        c.args([
            "--verbose",
            &img("busybox"),
            "--network",
            "none",
            "--",
            "true",
        ]);
    };
    let _g = serial();
    let mut first = oci2vm(env, store.path());
    once(&mut first);
    let first = first.output().expect("run");
    assert_eq!(first.status.code(), Some(0), "{first:?}");
    let disks: Vec<PathBuf> = std::fs::read_dir(store.path().join("rootfs"))
        .expect("rootfs dir")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(disks.len(), 1, "{disks:?}");
    let mtime = |p: &Path| {
        std::fs::metadata(p)
            .and_then(|m| m.modified())
            .expect("mtime")
    };
    let before = mtime(&disks[0]);
    let reuse = "reusing converted root filesystem";
    assert!(!String::from_utf8_lossy(&first.stderr).contains(reuse));
    let mut second = oci2vm(env, store.path());
    once(&mut second);
    let second = second.output().expect("run");
    assert_eq!(second.status.code(), Some(0), "{second:?}");
    assert!(String::from_utf8_lossy(&second.stderr).contains(reuse));
    assert_eq!(mtime(&disks[0]), before, "the cached rootfs was rewritten");
}

#[test]
fn tty_merges_streams_and_sets_term() {
    let bb = img("busybox");
    let out = expect(
        run(&[
            &bb,
            "-t",
            "--",
            "sh",
            "-c",
            "tty; echo TERM=$TERM; echo err >&2; exit 5",
        ]),
        5,
        "/dev/pts/0\r\nTERM=xterm\r\nerr\r\n",
    );
    if let Some(out) = out {
        assert_eq!(stderr_of(&out), "", "stderr joins stdout on the terminal");
    }
    // -t -i with piped input: the terminal echoes and the shell reads it line by line
    let out = run_with(
        &[&bb, "-i", "-t", "--", "sh"],
        b"echo hi-$((1+2))\nexit 3\n",
        |_| {},
    );
    if let Some(out) = out {
        assert_eq!(out.status.code(), Some(3));
        assert!(String::from_utf8_lossy(&out.stdout).contains("hi-3\r\n"));
    }
}

/// `-it` from a real terminal (a pty made by python3): the size reaches the guest and follows
/// a resize, keys are raw (^C interrupts the foreground job, not `oci2vm`), and the exit code
/// comes back.
#[test]
fn interactive_terminal_raw_keys_and_size() {
    let Some(env) = env() else { return };
    if !have("python3", "--version") {
        skip("python3 missing");
        return;
    }
    let _g = serial();
    let bin = assert_cmd::cargo::cargo_bin("oci2vm");
    let script = r##"
import os, pty, fcntl, termios, struct, time, select, sys
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
out = b""
def pump(until, t):
    global out
    end = time.time() + t
    while time.time() < end and until not in out:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                d = os.read(fd, 4096)
            except OSError:
                return
            if not d:
                return
            out += d
pump(b"# ", 60)
os.write(fd, b"stty size; echo hi-$((1+2))\n")
pump(b"hi-3\r\n", 30)
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 132, 0, 0))
time.sleep(0.5)
os.write(fd, b"stty size\n")
pump(b"50 132\r\n", 30)
os.write(fd, b"sleep 30; echo sl''ept\n")
time.sleep(1.5)
os.write(fd, b"\x03")
os.write(fd, b"echo after-$((2+2))\n")
pump(b"after-4\r\n", 30)
os.write(fd, b"exit 3\n")
pump(b"\0", 30)
_, st = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(st))
"##;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&bin)
        .arg("--store")
        .arg(env.dir.join("store"))
        .args(["run", "--timeout", "90"])
        .arg(img("busybox"))
        .args(["-i", "-t", "--", "sh"])
        .env("XDG_CACHE_HOME", env.dir.join("cache"))
        .output()
        .expect("python3");
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}");
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(text.contains("40 100\r\n"), "size: {text}");
    assert!(text.contains("50 132\r\n"), "resize: {text}");
    assert!(
        text.contains("hi-3\r\n") && text.contains("after-4\r\n"),
        "{text}"
    );
    assert!(
        !text.contains("slept"),
        "^C did not interrupt sleep: {text}"
    );
}

/// The Debian cloud kernel the run uses by default (the newest in /boot) is installed.
fn have_kernel() -> bool {
    oci2vm::guest::kernel::test_kernel().is_some_and(|k| k.exists())
}
