//! Registry credentials from the places Docker, podman and skopeo keep them.
//!
//! Precedence (first hit wins): explicit `creds`, then `authfile`, then
//! `$DOCKER_CONFIG/config.json`, then `~/.docker/config.json`. Within one file (the
//! [config file format](https://docs.docker.com/reference/cli/docker/#credential-store-options)):
//! `credHelpers[<registry>]`, then `credsStore`, then `auths[<registry>]`; an entry in `auths`
//! carries `auth` (base64 `user:pass`), or `username` + `password`, or `identitytoken` (an OAuth2
//! refresh token). A helper is run as `docker-credential-<name> get` with the server URL on stdin
//! and answers `{"ServerURL","Username","Secret"}`; `Username` `<token>` marks an identity token.
//!
//! Docker Hub is keyed `https://index.docker.io/v1/` (also accepted: `index.docker.io`,
//! `docker.io`, `registry-1.docker.io`); other keys match on `host[:port]`, with or without a
//! scheme and path. The `docker_credential` crate was not used: it reads only the default config
//! location (no `--authfile`), and skips identity tokens in `auths`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde::Deserialize;

use super::RegistryError;

/// The key (and credential-helper server URL) Docker uses for Docker Hub.
pub(crate) const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// A credential for one registry.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Credential {
    /// For basic auth, or for a bearer-token request.
    UserPass { username: String, password: String },
    /// An OAuth2 refresh token, exchanged at the token realm for an access token.
    IdentityToken(String),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::UserPass { username, .. } => {
                write!(f, "UserPass({username:?}, <redacted>)")
            }
            Credential::IdentityToken(_) => f.write_str("IdentityToken(<redacted>)"),
        }
    }
}

/// Where to look, in order.
#[derive(Debug, Clone, Default)]
pub(crate) struct CredentialSources {
    pub explicit: Option<(String, String)>,
    /// Config files in precedence order; `true` = must exist (an explicit `--authfile`).
    pub files: Vec<(PathBuf, bool)>,
}

impl CredentialSources {
    /// The standard order for the given explicit settings and the process environment.
    pub(crate) fn standard(creds: Option<(String, String)>, authfile: Option<PathBuf>) -> Self {
        let mut files = Vec::new();
        if let Some(a) = authfile {
            files.push((a, true));
        }
        if let Some(d) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
            files.push((PathBuf::from(d).join("config.json"), false));
        }
        if let Some(h) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
            files.push((PathBuf::from(h).join(".docker").join("config.json"), false));
        }
        CredentialSources {
            explicit: creds,
            files,
        }
    }

    /// The credential for `registry` (as the user wrote it: `docker.io`, `host:port`), if any.
    pub(crate) fn lookup(&self, registry: &str) -> Result<Option<Credential>, RegistryError> {
        if let Some((u, p)) = &self.explicit {
            return Ok(Some(Credential::UserPass {
                username: u.clone(),
                password: p.clone(),
            }));
        }
        for (path, required) in &self.files {
            let text = match std::fs::read_to_string(path) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => continue,
                Err(e) => return Err(config_error(path, e.to_string())),
            };
            let file: ConfigFile =
                serde_json::from_str(&text).map_err(|e| config_error(path, e.to_string()))?;
            if let Some(c) = file.lookup(registry, path)? {
                return Ok(Some(c));
            }
        }
        Ok(None)
    }
}

fn config_error(path: &Path, reason: String) -> RegistryError {
    RegistryError::DockerConfig {
        path: path.to_path_buf(),
        reason,
    }
}

#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    auths: std::collections::BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

impl ConfigFile {
    fn lookup(&self, registry: &str, path: &Path) -> Result<Option<Credential>, RegistryError> {
        let helper = self
            .cred_helpers
            .iter()
            .find(|(k, _)| key_matches(k, registry))
            .map(|(_, h)| h)
            .or(self.creds_store.as_ref())
            .filter(|h| !h.is_empty());
        if let Some(h) = helper {
            if let Some(c) = run_helper(h, &server_url(registry))? {
                return Ok(Some(c));
            }
        }
        for (key, entry) in &self.auths {
            if key_matches(key, registry) {
                if let Some(c) = entry
                    .credential()
                    .map_err(|r| config_error(path, format!("{key}: {r}")))?
                {
                    return Ok(Some(c));
                }
            }
        }
        Ok(None)
    }
}

impl AuthEntry {
    fn credential(&self) -> Result<Option<Credential>, String> {
        if let Some(t) = self.identitytoken.as_ref().filter(|t| !t.is_empty()) {
            return Ok(Some(Credential::IdentityToken(t.clone())));
        }
        if let Some(a) = self.auth.as_ref().filter(|a| !a.is_empty()) {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(a.trim())
                .map_err(|e| format!("auth is not base64: {e}"))?;
            let s = String::from_utf8(raw).map_err(|_| "auth is not UTF-8".to_string())?;
            let (u, p) = s.split_once(':').ok_or("auth is not user:password")?;
            return Ok(Some(Credential::UserPass {
                username: u.into(),
                password: p.into(),
            }));
        }
        match (&self.username, &self.password) {
            (Some(u), Some(p)) if !u.is_empty() => Ok(Some(Credential::UserPass {
                username: u.clone(),
                password: p.clone(),
            })),
            _ => Ok(None),
        }
    }
}

fn is_docker_hub(host: &str) -> bool {
    matches!(
        host,
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    )
}

/// The host[:port] part of a config key such as `https://index.docker.io/v1/`.
fn key_host(key: &str) -> &str {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    k.split('/').next().unwrap_or(k)
}

fn key_matches(key: &str, registry: &str) -> bool {
    let host = key_host(key);
    host == registry || (is_docker_hub(host) && is_docker_hub(registry))
}

/// What a credential helper is asked for: Docker Hub's legacy URL, else the registry host.
pub(crate) fn server_url(registry: &str) -> String {
    if is_docker_hub(registry) {
        DOCKER_HUB_KEY.to_string()
    } else {
        registry.to_string()
    }
}

#[derive(Deserialize)]
struct HelperAnswer {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// Runs `docker-credential-<helper> get`; `Ok(None)` when it has nothing for this server.
fn run_helper(helper: &str, server: &str) -> Result<Option<Credential>, RegistryError> {
    let fail = |reason: String| RegistryError::CredentialHelper {
        helper: helper.to_string(),
        reason,
    };
    if !helper
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err(fail("invalid helper name".into()));
    }
    run_program(&format!("docker-credential-{helper}"), helper, server)
}

/// The helper protocol itself, for a program given by name (looked up in `PATH`) or path.
fn run_program(
    program: &str,
    helper: &str,
    server: &str,
) -> Result<Option<Credential>, RegistryError> {
    let fail = |reason: String| RegistryError::CredentialHelper {
        helper: helper.to_string(),
        reason,
    };
    let mut child = Command::new(program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot run {program}: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // a helper that exits without reading gives EPIPE; its exit status tells the story
        let _ = stdin.write_all(server.as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if msg.to_ascii_lowercase().contains("credentials not found") {
            return Ok(None);
        }
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(fail(format!(
            "{program} get failed ({}): {msg} {err}",
            out.status
        )));
    }
    let ans: HelperAnswer =
        serde_json::from_slice(&out.stdout).map_err(|e| fail(format!("bad answer: {e}")))?;
    if ans.secret.is_empty() {
        return Ok(None);
    }
    if ans.username == "<token>" {
        Ok(Some(Credential::IdentityToken(ans.secret)))
    } else {
        Ok(Some(Credential::UserPass {
            username: ans.username,
            password: ans.secret,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, json: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, json).unwrap();
        p
    }

    fn up(u: &str, p: &str) -> Credential {
        Credential::UserPass {
            username: u.into(),
            password: p.into(),
        }
    }

    #[test]
    fn keys_match_docker_hub_aliases_and_host_port() {
        assert!(key_matches(DOCKER_HUB_KEY, "docker.io"));
        assert!(key_matches("docker.io", "registry-1.docker.io"));
        assert!(key_matches("https://127.0.0.1:5000/v2/", "127.0.0.1:5000"));
        assert!(key_matches("127.0.0.1:5000", "127.0.0.1:5000"));
        assert!(!key_matches("127.0.0.1:5001", "127.0.0.1:5000"));
        assert!(!key_matches("127.0.0.1", "127.0.0.1:5000"));
        assert!(!key_matches("quay.io", "docker.io"));
        assert_eq!(server_url("docker.io"), DOCKER_HUB_KEY);
        assert_eq!(server_url("ghcr.io"), "ghcr.io");
    }

    #[test]
    fn entries_auth_userpass_identitytoken() {
        let d = tempfile::tempdir().unwrap();
        // "u:p:x" base64 -> password may contain ':'
        let f = write(
            d.path(),
            "c.json",
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"dTpwOng="},
                "a.example:5000":{"username":"alice","password":"pw"},
                "b.example":{"auth":"","identitytoken":"refresh"},
                "bad.example":{"auth":"!!!"}}}"#,
        );
        let s = CredentialSources {
            explicit: None,
            files: vec![(f, true)],
        };
        assert_eq!(s.lookup("docker.io").unwrap(), Some(up("u", "p:x")));
        assert_eq!(s.lookup("a.example:5000").unwrap(), Some(up("alice", "pw")));
        assert_eq!(
            s.lookup("b.example").unwrap(),
            Some(Credential::IdentityToken("refresh".into()))
        );
        assert_eq!(s.lookup("c.example").unwrap(), None);
        assert!(matches!(
            s.lookup("bad.example"),
            Err(RegistryError::DockerConfig { .. })
        ));
    }

    #[test]
    fn precedence_creds_then_files_in_order() {
        let d = tempfile::tempdir().unwrap();
        let a = write(
            d.path(),
            "a.json",
            r#"{"auths":{"r.example":{"username":"a","password":"1"}}}"#,
        );
        let b = write(
            d.path(),
            "b.json",
            r#"{"auths":{"r.example":{"username":"b","password":"2"},"s.example":{"username":"b","password":"3"}}}"#,
        );
        let missing = d.path().join("nope.json");
        let s = CredentialSources {
            explicit: None,
            files: vec![
                (a.clone(), true),
                (missing.clone(), false),
                (b.clone(), false),
            ],
        };
        assert_eq!(s.lookup("r.example").unwrap(), Some(up("a", "1")));
        assert_eq!(s.lookup("s.example").unwrap(), Some(up("b", "3")));
        let s2 = CredentialSources {
            explicit: Some(("x".into(), "y".into())),
            files: s.files.clone(),
        };
        assert_eq!(s2.lookup("r.example").unwrap(), Some(up("x", "y")));
        let required_missing = CredentialSources {
            explicit: None,
            files: vec![(missing, true)],
        };
        assert!(matches!(
            required_missing.lookup("r.example"),
            Err(RegistryError::DockerConfig { .. })
        ));
        let garbage = write(d.path(), "g.json", "{not json");
        let s3 = CredentialSources {
            explicit: None,
            files: vec![(garbage, false)],
        };
        assert!(matches!(
            s3.lookup("r.example"),
            Err(RegistryError::DockerConfig { .. })
        ));
    }

    #[test]
    fn helper_runs_and_missing_helper_is_a_clear_error() {
        let d = tempfile::tempdir().unwrap();
        let f = write(
            d.path(),
            "c.json",
            r#"{"credHelpers":{"h.example":"oci2vm-no-such-helper"}}"#,
        );
        let s = CredentialSources {
            explicit: None,
            files: vec![(f, true)],
        };
        let e = s.lookup("h.example").unwrap_err();
        assert!(
            matches!(&e, RegistryError::CredentialHelper { helper, .. } if helper == "oci2vm-no-such-helper")
        );
        assert!(matches!(
            run_helper("../evil", "x"),
            Err(RegistryError::CredentialHelper { .. })
        ));
    }

    #[test]
    fn helper_protocol_userpass_token_and_not_found() {
        use std::os::unix::fs::PermissionsExt as _;
        let d = tempfile::tempdir().unwrap();
        let script = d.path().join("helper");
        std::fs::write(
            &script,
            "#!/bin/sh\n[ \"$1\" = get ] || exit 9\nread s\ncase $s in\n\
             r.example) echo '{\"ServerURL\":\"r\",\"Username\":\"bob\",\"Secret\":\"pw\"}';;\n\
             t.example) echo '{\"ServerURL\":\"t\",\"Username\":\"<token>\",\"Secret\":\"rt\"}';;\n\
             *) echo 'credentials not found in native keychain'; exit 1;;\nesac\n",
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let prog = script.to_str().unwrap();
        assert_eq!(
            run_program(prog, "h", "r.example").unwrap(),
            Some(up("bob", "pw"))
        );
        assert_eq!(
            run_program(prog, "h", "t.example").unwrap(),
            Some(Credential::IdentityToken("rt".into()))
        );
        assert_eq!(run_program(prog, "h", "x.example").unwrap(), None);
    }
}
