//! A real registry (Debian's `docker-registry`, distribution 2.8) on 127.0.0.1 for one test,
//! run through `scripts/fixtures/registry.sh` with its own state directory, pushed with the
//! fixture images, and stopped (by its recorded PID) when dropped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{fixtures_dir, have_tool, repo_root, require};

#[derive(Debug)]
pub struct LocalRegistry {
    /// `127.0.0.1:<port>`.
    pub addr: String,
    /// `Some` when started with `AUTH=1`.
    pub creds: Option<(String, String)>,
    /// The docker-config-format file the script wrote (`AUTH=1` only).
    pub authfile: Option<PathBuf>,
    dir: PathBuf,
    script: PathBuf,
}

impl LocalRegistry {
    /// Starts and fills a registry, or returns `None` after printing why it cannot (panics
    /// under `CI=true`).
    pub fn start(auth: bool) -> Option<LocalRegistry> {
        let script = repo_root().join("scripts/fixtures/registry.sh");
        let fixtures = fixtures_dir();
        if !require(script.is_file(), &format!("{} missing", script.display()))
            || !require(
                have_tool("docker-registry"),
                "docker-registry not installed",
            )
            || !require(have_tool("skopeo"), "skopeo not installed")
            || !require(
                fixtures.join("oci/busybox").is_dir(),
                &format!(
                    "fixture images missing in {} (run scripts/fixtures/make-images.sh)",
                    fixtures.display()
                ),
            )
        {
            return None;
        }
        let tag = if auth { "auth" } else { "anon" };
        let dir = std::env::temp_dir().join(format!("oci2vm-regtest-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create registry state dir");
        let mut reg = LocalRegistry {
            addr: String::new(),
            creds: None,
            authfile: None,
            dir,
            script,
        };
        // a port picked by the kernel, so parallel tests and other users of 5000+ do not collide
        let mut last_err = String::new();
        for _ in 0..3 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port());
            let port = port.expect("probe a free port");
            match reg.run(&["start", &port.to_string()], auth) {
                Ok(_) => {
                    reg.addr = format!("127.0.0.1:{port}");
                    break;
                }
                Err(e) => last_err = e,
            }
        }
        assert!(!reg.addr.is_empty(), "registry.sh start failed: {last_err}");
        if auth {
            let creds =
                std::fs::read_to_string(reg.dir.join("creds")).expect("registry.sh wrote creds");
            let (u, p) = creds.trim().split_once(':').expect("creds are user:pass");
            reg.creds = Some((u.to_string(), p.to_string()));
            reg.authfile = Some(reg.dir.join("auth.json"));
        }
        let fixtures = fixtures.to_string_lossy().to_string();
        reg.run(&["push", &fixtures], auth)
            .expect("registry.sh push");
        Some(reg)
    }

    /// `--creds`-style argument for skopeo, when auth is on.
    pub fn skopeo_creds(&self) -> Vec<String> {
        match &self.creds {
            Some((u, p)) => vec!["--creds".into(), format!("{u}:{p}")],
            None => vec![],
        }
    }

    /// `skopeo inspect --raw` of `fixtures/<name>:<tag>` (the oracle).
    pub fn skopeo_raw(&self, name_tag: &str) -> Vec<u8> {
        let out = Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .args(self.skopeo_creds())
            .arg(format!("docker://{}/fixtures/{name_tag}", self.addr))
            .output()
            .expect("run skopeo");
        assert!(
            out.status.success(),
            "skopeo inspect: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn run(&self, args: &[&str], auth: bool) -> Result<String, String> {
        let mut cmd = Command::new("bash");
        cmd.arg(&self.script)
            .arg(args[0])
            .arg(&self.dir)
            .args(&args[1..]);
        cmd.env("AUTH", if auth { "1" } else { "0" });
        let out = cmd.output().map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).to_string())
        } else {
            Err(format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        let _ = self.run(&["stop"], false);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
