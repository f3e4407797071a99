//! Shared harness for the boot tests: busybox fixture -> our converter (`convert::flatten`) and
//! ext4 writer, with each case's config at /.oci2vm/config -> QEMU TCG boot through
//! `vmm::run_with`, and the same case under runc (umoci unpack bundle) for comparison.
#![allow(dead_code)]

use oci2vm::guest::{self, GuestAssets};
use oci2vm::vmm::{self, RunIo, VmSpec};
use oci2vm_guest::GuestConfig;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

/// The guest kernel of the boot tests (see `oci2vm::guest::kernel::test_kernel`).
pub fn kernel() -> PathBuf {
    oci2vm::guest::kernel::test_kernel().unwrap_or_else(|| "/boot/vmlinuz-missing".into())
}

/// Skips (prints why) or, under CI=true, fails.
pub fn skip(reason: &str) -> bool {
    assert_ne!(
        std::env::var("CI").as_deref(),
        Ok("true"),
        "required under CI: {reason}"
    );
    eprintln!("skipped: {reason}");
    true
}

pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub fn fixtures() -> PathBuf {
    std::env::var_os("OCI2VM_FIXTURES")
        .map_or_else(|| "/var/tmp/oci2vm-fixtures".into(), PathBuf::from)
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// One boot at a time: TCG boots are CPU-bound and the machine is shared.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

pub struct Env {
    pub assets: GuestAssets,
    pub rootfs: PathBuf,
    pub scratch: PathBuf,
}

/// Builds the init, the initramfs and the unpacked busybox rootfs once per test binary.
pub fn env() -> Option<&'static Env> {
    static ENV: OnceLock<Option<Env>> = OnceLock::new();
    ENV.get_or_init(|| {
        for t in ["qemu-system-x86_64", "umoci"] {
            if !have(t) {
                skip(&format!("{t} not installed"));
                return None;
            }
        }
        if !kernel().exists() {
            skip(&format!("{} missing", kernel().display()));
            return None;
        }
        let image = fixtures().join("oci/busybox");
        if !image.exists() {
            skip(&format!(
                "{} missing (scripts/fixtures/make-images.sh)",
                image.display()
            ));
            return None;
        }
        let st = Command::new(workspace().join("scripts/build-init.sh"))
            .stdout(Stdio::null())
            .status()
            .expect("build-init.sh");
        assert!(st.success(), "build-init.sh failed");
        // Reused between runs (cargo's per-target scratch dir), so nothing piles up in /tmp.
        let scratch = Path::new(env!("CARGO_TARGET_TMPDIR")).join("oci2vm-e2e");
        let _ = std::fs::remove_dir_all(scratch.join("rootfs"));
        std::fs::create_dir_all(&scratch).expect("scratch");
        let init = workspace().join("target/x86_64-unknown-linux-gnu/release/oci2vm-init");
        // every module group: the tests boot with and without network and volumes
        let assets = guest::prepare(
            Some(&kernel()),
            None,
            Some(&init),
            &scratch.join("cache"),
            &guest::InitramfsPlan::all(),
        )
        .expect("prepare");
        let rootfs = scratch.join("rootfs");
        let out = Command::new("umoci")
            .args([
                "raw",
                "unpack",
                "--image",
                &format!("{}:latest", image.display()),
            ])
            .arg(&rootfs)
            .output()
            .expect("umoci");
        assert!(
            out.status.success(),
            "umoci: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(Env {
            assets,
            rootfs,
            scratch,
        })
    })
    .as_ref()
}

/// The busybox fixture's own runtime config (Cmd ["sh"], Env PATH=...).
pub fn busybox_config() -> GuestConfig {
    guest::image::guest_config(&guest::image::ImageRuntime {
        cmd: vec!["sh".into()],
        env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
        ..Default::default()
    })
}

/// The busybox fixture converted by our pipeline (flatten, then the ext4 writer), with `cfg`
/// at /.oci2vm/config in place of the image's own runtime config.
pub fn make_disk(env: &Env, name: &str, cfg: &GuestConfig) -> PathBuf {
    let reference: oci2vm::Reference =
        format!("oci:{}:latest", fixtures().join("oci/busybox").display())
            .parse()
            .expect("reference");
    let store = oci2vm::store::Store::open(env.scratch.join("store")).expect("store");
    let opts = oci2vm::convert::FlattenOptions {
        source: Default::default(),
        apply: Default::default(),
        scratch_dir: Some(env.scratch.clone()),
    };
    let mut flat = oci2vm::convert::flatten(&reference, &store, &opts, None).expect("flatten");
    flat.embed_config(cfg).expect("embed config");
    let disk = env.scratch.join(format!("{name}.ext4"));
    let _ = std::fs::remove_file(&disk);
    flat.write_ext4(&disk, &flat.ext4_options(None))
        .expect("write ext4");
    disk
}

#[derive(Clone, Default)]
pub struct Buf(pub Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buf {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

#[derive(Debug)]
pub struct Outcome {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
    pub boot_to_exec: Option<Duration>,
}

/// A spec for `disk` with the test defaults (TCG, 60 s timeout).
pub fn spec(env: &Env, disk: &Path, overlay: &oci2vm_guest::Overlay) -> VmSpec {
    let mut s = VmSpec::new(
        env.assets.kernel.clone(),
        env.assets.initramfs.clone(),
        disk.to_path_buf(),
    );
    s.overlay = overlay.render();
    s.timeout = Some(Duration::from_secs(60));
    if let Some(log) = std::env::var_os("OCI2VM_E2E_KLOG") {
        s.kernel_log = vmm::KernelLog::File(log.into());
        s.debug = true;
    }
    s
}

/// Boots and collects the streams.
pub fn boot(spec: &VmSpec, stdin: &[u8]) -> Outcome {
    let (o, e) = (Buf::default(), Buf::default());
    let rio = RunIo {
        stdout: Box::new(o.clone()),
        stderr: Box::new(e.clone()),
        stdin: Box::new(std::io::Cursor::new(stdin.to_vec())),
    };
    let r = vmm::run_with(spec, rio)
        .unwrap_or_else(|err| panic!("run failed: {err}\nstderr: {}", e.text()));
    Outcome {
        status: r.status,
        stdout: o.text(),
        stderr: e.text(),
        boot_to_exec: r.boot_to_exec,
    }
}

/// The same workload under runc (umoci unpack bundle), if runc works here.
pub fn runc(
    env: &Env,
    name: &str,
    cfg: &GuestConfig,
    stdin: bool,
) -> Option<(i32, String, String)> {
    if !have("runc") {
        return None;
    }
    let bundle = env.scratch.join(format!("bundle-{name}"));
    let _ = std::fs::remove_dir_all(&bundle);
    std::fs::create_dir_all(&bundle).ok()?;
    // Share the unpacked rootfs read-only (runc writes nothing there with readonly=true).
    let (uid, gid) = match cfg.user.split_once(':') {
        Some((u, g)) => (u.parse::<u32>().ok(), g.parse::<u32>().ok()),
        None => (None, None),
    };
    let user = match (uid, gid, cfg.user.as_str()) {
        (_, _, "") => serde_json::json!({"uid": 0, "gid": 0}),
        (Some(u), Some(g), _) => serde_json::json!({"uid": u, "gid": g, "additionalGids": [g]}),
        _ => return None, // runc's config takes numeric ids only; named users are resolved by docker
    };
    let env_list = oci2vm_test_env(cfg);
    let spec = serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {"terminal": false, "user": user, "args": cfg.argv, "env": env_list,
                     "cwd": if cfg.workdir.is_empty() { "/" } else { cfg.workdir.as_str() }},
        "root": {"path": env.rootfs.to_string_lossy(), "readonly": true},
        "hostname": "runc",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777"]},
            {"destination": "/run", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=755"]}
        ],
        "linux": {"namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "network"}]}
    });
    std::fs::write(bundle.join("config.json"), spec.to_string()).ok()?;
    let id = format!("oci2vm-e2e-{}-{name}", std::process::id());
    let mut cmd = Command::new("timeout");
    cmd.args(["30", "runc", "run", "-b"]).arg(&bundle).arg(&id);
    cmd.stdin(if stdin { Stdio::piped() } else { Stdio::null() });
    let out = cmd.output().ok()?;
    let _ = Command::new("runc").args(["delete", "-f", &id]).output();
    Some((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    ))
}

/// The environment the guest init gives the workload (for an equal runc setup).
fn oci2vm_test_env(cfg: &GuestConfig) -> Vec<String> {
    let mut env = cfg.env.clone();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, format!("PATH={}", oci2vm_guest::config::DEFAULT_PATH));
    }
    env
}
