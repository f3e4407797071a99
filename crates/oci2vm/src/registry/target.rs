//! Which registry host, repository and scheme a request goes to, and the validation of the
//! names that end up in request URLs (so no caller input can change a URL's path or host).

use std::net::IpAddr;

use super::RegistryError;
use crate::digest::Digest;

/// One repository on one registry, resolved for requests.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// As the caller wrote it (`docker.io`); the credential lookup key.
    pub registry: String,
    /// Where requests go (`registry-1.docker.io`).
    pub host: String,
    /// `library/busybox`.
    pub repository: String,
    /// Plain HTTP instead of HTTPS.
    pub plain_http: bool,
}

impl Target {
    pub(crate) fn new(
        registry: &str,
        repository: &str,
        tls_verify: Option<bool>,
    ) -> Result<Self, RegistryError> {
        validate_registry(registry)?;
        validate_repository(repository)?;
        let hub = matches!(
            registry,
            "docker.io" | "index.docker.io" | "registry-1.docker.io"
        );
        let host = if hub {
            "registry-1.docker.io".to_string()
        } else {
            registry.to_string()
        };
        let repository = if hub && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository.to_string()
        };
        let plain_http = match tls_verify {
            Some(false) => true,
            Some(true) => false,
            None => is_loopback(registry),
        };
        Ok(Target {
            registry: registry.to_string(),
            host,
            repository,
            plain_http,
        })
    }

    /// `scheme://host/v2/<repository>/<kind>/<reference>`.
    pub(crate) fn url(&self, kind: &str, reference: &str) -> String {
        let scheme = if self.plain_http { "http" } else { "https" };
        format!(
            "{scheme}://{}/v2/{}/{kind}/{reference}",
            self.host, self.repository
        )
    }

    pub(crate) fn unauthorized(&self, with_credentials: bool, reason: String) -> RegistryError {
        RegistryError::Unauthorized {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            with: if with_credentials {
                "with credentials"
            } else {
                "anonymous"
            },
            reason,
        }
    }
}

/// `localhost`, `127.0.0.0/8`, `::1`, with or without a port.
fn is_loopback(registry: &str) -> bool {
    if registry.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()) {
        return true;
    }
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        registry.rsplit_once(':').map_or(registry, |(h, _)| h)
    };
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn invalid(what: &'static str, value: &str) -> RegistryError {
    RegistryError::InvalidName {
        what,
        value: value.chars().take(300).collect(),
    }
}

/// `host[:port]`, or `[v6]:port`: letters, digits, `.-:[]` only.
fn validate_registry(r: &str) -> Result<(), RegistryError> {
    let ok = !r.is_empty()
        && r.len() <= 255
        && r.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        && !r.starts_with(['.', '-', ':']);
    if ok {
        Ok(())
    } else {
        Err(invalid("registry", r))
    }
}

/// Path components of `[a-z0-9]+([._-]+[a-z0-9]+)*` (distribution's grammar, slightly looser on
/// separators), joined by `/`.
fn validate_repository(r: &str) -> Result<(), RegistryError> {
    let component_ok = |c: &str| {
        !c.is_empty()
            && c.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
            && c.as_bytes()[0].is_ascii_alphanumeric()
            && c.as_bytes()[c.len() - 1].is_ascii_alphanumeric()
    };
    if r.len() <= 255 && r.split('/').all(component_ok) {
        Ok(())
    } else {
        Err(invalid("repository", r))
    }
}

/// A tag (`[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`) or a digest.
pub(crate) fn parse_reference(r: &str) -> Result<Option<Digest>, RegistryError> {
    if r.contains(':') {
        return Digest::parse(r)
            .map(Some)
            .map_err(|_| invalid("reference", r));
    }
    let ok = !r.is_empty()
        && r.len() <= 128
        && r.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        && !r.starts_with(['.', '-']);
    if ok {
        Ok(None)
    } else {
        Err(invalid("reference", r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_detection() {
        for r in [
            "localhost",
            "localhost:5000",
            "127.0.0.1",
            "127.1.2.3:80",
            "[::1]:5000",
            "::1",
        ] {
            assert!(is_loopback(r), "{r}");
        }
        for r in [
            "docker.io",
            "10.0.0.1:5000",
            "[::2]:5000",
            "localhost.example.com",
            "128.0.0.1",
        ] {
            assert!(!is_loopback(r), "{r}");
        }
    }

    #[test]
    fn targets_docker_hub_and_schemes() {
        let t = Target::new("docker.io", "busybox", None).unwrap();
        assert_eq!(t.host, "registry-1.docker.io");
        assert_eq!(
            t.url("manifests", "latest"),
            "https://registry-1.docker.io/v2/library/busybox/manifests/latest"
        );
        let t = Target::new("127.0.0.1:5000", "fixtures/busybox", None).unwrap();
        assert_eq!(
            t.url("blobs", "x"),
            "http://127.0.0.1:5000/v2/fixtures/busybox/blobs/x"
        );
        assert!(
            !Target::new("127.0.0.1:5000", "a", Some(true))
                .unwrap()
                .plain_http
        );
        assert!(
            Target::new("example.com", "a", Some(false))
                .unwrap()
                .plain_http
        );
    }

    #[test]
    fn names_are_validated() {
        for r in ["", "a/b", "a b", "a?x", "-a", "host@x"] {
            assert!(validate_registry(r).is_err(), "{r}");
        }
        for r in ["library/busybox", "a", "a-b/c_d/e.f", "a__b"] {
            assert!(validate_repository(r).is_ok(), "{r}");
        }
        for r in [
            "",
            "Library/x",
            "a//b",
            "/a",
            "a/",
            "a/../b",
            "a?b",
            "a/.b",
            "a%2fb",
        ] {
            assert!(validate_repository(r).is_err(), "{r}");
        }
        assert_eq!(parse_reference("latest").unwrap(), None);
        assert_eq!(parse_reference("v1.2_3-x").unwrap(), None);
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(parse_reference(d).unwrap(), Some(Digest::parse(d).unwrap()));
        for r in ["", ".x", "-x", "a/b", "a?b", "sha256:zz", &"a".repeat(129)] {
            assert!(parse_reference(r).is_err(), "{r}");
        }
    }
}
