//! `oci2vm run IMAGE` honours the image config beyond argv: Volumes exist as mount points in
//! the guest, `-P` publishes the ExposedPorts, the host's Ctrl-C reaches the workload as the image's StopSignal, and `--health`
//! runs the Healthcheck in the guest with its interval and retries. The config-docker fixture
//! declares `VOLUME /data /cache`, `STOPSIGNAL SIGQUIT` and (Docker form only) `HEALTHCHECK
//! --interval=5s --timeout=2s --retries=3 CMD true`; edge declares `VOLUME /vol` with no such
//! directory in its layers. One test, boots in sequence.
//!
//! Needs the fixtures, the Debian cloud kernel and qemu-system-x86_64; missing ones skip
//! locally and fail under CI=true.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn skip(reason: &str) {
    assert_ne!(
        std::env::var("CI").as_deref(),
        Ok("true"),
        "required under CI: {reason}"
    );
    eprintln!("skipped: {reason}");
}

fn ready() -> Option<PathBuf> {
    let fx = PathBuf::from(
        std::env::var("OCI2VM_FIXTURES").unwrap_or_else(|_| "/var/tmp/oci2vm-fixtures".into()),
    );
    let qemu = Command::new("qemu-system-x86_64")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    for (ok, what) in [
        (
            fx.join("oci/config-docker").exists(),
            "config-docker fixture",
        ),
        (fx.join("oci/edge").exists(), "edge fixture"),
        (
            oci2vm::guest::kernel::test_kernel().is_some_and(|k| k.exists()),
            "Debian cloud kernel",
        ),
        (qemu, "qemu-system-x86_64"),
    ] {
        if !ok {
            skip(&format!("{what} missing"));
            return None;
        }
    }
    let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    assert!(
        Command::new(ws.join("scripts/build-init.sh"))
            .stdout(Stdio::null())
            .status()
            .expect("build init")
            .success()
    );
    Some(fx)
}

fn oci2vm(store: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_oci2vm"));
    c.arg("--store").arg(store);
    c
}

#[test]
fn image_config_reaches_the_guest() {
    let Some(fx) = ready() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = tmp.path().join("store");
    let config_docker = format!("oci:{}/oci/config-docker:latest", fx.display());
    let edge = format!("oci:{}/oci/edge:latest", fx.display());

    // Volumes: declared mount points are directories in the guest.
    let out = oci2vm(&store)
        .args(["run", "--network", "none", "--timeout", "120", &edge])
        .args(["--", "test -d /vol && echo vol-ok"])
        .output()
        .expect("run edge");
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).as_ref()
        ),
        (Some(0), "vol-ok\n"),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = oci2vm(&store)
        .args(["run", "--network", "none", "--timeout", "120"])
        .args(["--entrypoint", "sh", &config_docker])
        .args([
            "--",
            "-c",
            "test -d /data && test -d /cache && echo vols-ok",
        ])
        .output()
        .expect("run config-docker");
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).as_ref()
        ),
        (Some(0), "vols-ok\n"),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // ExposedPorts with -P: 80/tcp and 443/tcp on free host ports, 5353/udp reported as not
    // forwarded; a connection to the 80/tcp one reaches a listener in the guest.
    let mut child = oci2vm(&store)
        .args(["run", "-P", "-u", "0", "--timeout", "120"])
        .args(["--entrypoint", "sh", &config_docker])
        .args([
            "--",
            "-c",
            "(echo hello-port | nc -l -p 80) & echo up; wait; echo served",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn -P");
    let stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let err_lines = std::thread::spawn(move || {
        let mut all = Vec::new();
        for l in stderr.lines().map_while(Result::ok) {
            let _ = tx.send(l.clone());
            all.push(l);
        }
        all
    });
    let mut out_lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    assert_eq!(out_lines.next().and_then(Result::ok).as_deref(), Some("up"));
    let port: u16 = rx
        .try_iter()
        .find_map(|l| {
            l.strip_prefix("publish: 80/tcp -> 127.0.0.1:")
                .and_then(|p| p.parse().ok())
        })
        .expect("80/tcp published");
    let mut got = String::new();
    for _ in 0..40 {
        if let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = std::io::Read::read_to_string(&mut c, &mut got);
            if !got.is_empty() {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(got, "hello-port\n");
    let rest: Vec<String> = out_lines.map_while(Result::ok).collect();
    assert_eq!(rest, ["served"]);
    assert!(child.wait().expect("wait").success());
    let err = err_lines.join().expect("stderr reader");
    assert!(
        err.iter()
            .any(|l| l.starts_with("publish: 443/tcp -> 127.0.0.1:")),
        "{err:?}"
    );
    assert!(
        err.contains(&"publish: 5353/udp not forwarded (TCP only)".to_string()),
        "{err:?}"
    );

    // StopSignal: Ctrl-C on the host arrives as SIGQUIT, not SIGTERM.
    let mut child = oci2vm(&store)
        .args(["run", "--network", "none", "--timeout", "120"])
        .args(["--entrypoint", "sh", &config_docker])
        .args([
            "--",
            "-c",
            "trap 'echo got QUIT; exit 3' QUIT; trap 'echo got TERM; exit 4' TERM; \
             echo ready; while true; do sleep 0.1; done",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let start = Instant::now();
    let first = lines.next().and_then(Result::ok);
    assert_eq!(first.as_deref(), Some("ready"), "workload did not start");
    assert!(start.elapsed() < Duration::from_secs(120));
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().expect("wait");
    assert_eq!(
        (status.code(), rest),
        (Some(3), vec!["got QUIT".to_string()])
    );

    // Healthcheck: `true` passes at ~5 s (healthy); once it is gone, three failures in a row
    // (10, 15, 20 s) make the workload unhealthy.
    let docker = format!(
        "docker-archive:{}/docker-archive/config-docker.tar",
        fx.display()
    );
    let started = Instant::now();
    let out = oci2vm(&store)
        .args([
            "run",
            "--health",
            "--network",
            "none",
            "--timeout",
            "180",
            "-u",
            "0",
        ])
        .args(["--entrypoint", "sh", &docker])
        .args(["--", "-c", "sleep 7; rm -f /bin/true; sleep 17; echo done"])
        .output()
        .expect("run --health");
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("--health run took {:?}", started.elapsed());
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "done\n");
    let health: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("health:"))
        .collect();
    assert_eq!(
        health,
        [
            "health: healthy (exit status 0)",
            "health: unhealthy (3 consecutive failures, last: exit status 127)"
        ],
        "{stderr}"
    );
    // Without --health nothing is run or reported.
    let out = oci2vm(&store)
        .args(["run", "--network", "none", "--timeout", "120", "-u", "0"])
        .args(["--entrypoint", "sh", &docker])
        .args(["--", "-c", "sleep 6"])
        .output()
        .expect("run");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("health:"));
}
