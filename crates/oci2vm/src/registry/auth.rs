//! Answering a registry's `401` challenge: basic auth, anonymous or credentialed bearer tokens
//! (the [token flow](https://distribution.github.io/distribution/spec/auth/token/)), and OAuth2
//! identity (refresh) tokens.
//!
//! Requests go out without credentials (or with what worked before for the same repository);
//! only a `401` makes us read the credential stores, so pulling public images never runs a
//! credential helper. The bearer-token request itself is `oci_client::Client::auth`, which
//! probes `/v2/`, follows the `Bearer realm=..,service=..` challenge and asks for
//! `repository:<repo>:pull`, with basic credentials when we have them. Identity tokens need an
//! OAuth2 `POST` that oci-client does not make; that one request is ours.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine as _;
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Reference, RegistryOperation};
use reqwest::header::HeaderValue;

use super::docker_config::{Credential, CredentialSources};
use super::{RegistryError, Target};

/// A parsed `WWW-Authenticate` challenge: the scheme and its `key=value` parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge {
    pub scheme: String,
    pub params: HashMap<String, String>,
}

impl Challenge {
    /// Parses `Scheme k1="v1",k2=v2` (one challenge; what registries send).
    pub(crate) fn parse(header: &str) -> Option<Challenge> {
        let header = header.trim();
        let (scheme, mut rest) = match header.split_once(char::is_whitespace) {
            Some((s, r)) => (s, r.trim_start()),
            None => (header, ""),
        };
        if scheme.is_empty() {
            return None;
        }
        let mut params = HashMap::new();
        while !rest.is_empty() {
            let (key, after) = rest.split_once('=')?;
            let key = key
                .trim()
                .trim_start_matches(',')
                .trim()
                .to_ascii_lowercase();
            let after = after.trim_start();
            let (value, remaining) = if let Some(q) = after.strip_prefix('"') {
                let mut value = String::new();
                let mut chars = q.char_indices();
                let mut end = None;
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some((_, n)) = chars.next() {
                                value.push(n);
                            }
                        }
                        '"' => {
                            end = Some(i + 1);
                            break;
                        }
                        c => value.push(c),
                    }
                }
                (value, &q[end?..])
            } else {
                let end = after.find(',').unwrap_or(after.len());
                (after[..end].trim().to_string(), &after[end..])
            };
            params.insert(key, value);
            rest = remaining.trim_start().trim_start_matches(',').trim_start();
        }
        Some(Challenge {
            scheme: scheme.to_ascii_lowercase(),
            params,
        })
    }
}

/// Credentials and per-repository authorisation state, shared by all requests of a client.
pub(crate) struct Authenticator {
    sources: CredentialSources,
    /// Credential per registry, looked up once (`None` = anonymous).
    credentials: Mutex<HashMap<String, Option<Credential>>>,
    /// The `Authorization` header that last worked, per (API host, repository).
    headers: Mutex<HashMap<(String, String), HeaderValue>>,
    oci_http: oci_client::Client,
    oci_https: oci_client::Client,
    http: reqwest::Client,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("sources", &self.sources)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    pub(crate) fn new(
        sources: CredentialSources,
        oci_http: oci_client::Client,
        oci_https: oci_client::Client,
        http: reqwest::Client,
    ) -> Self {
        Authenticator {
            sources,
            credentials: Mutex::default(),
            headers: Mutex::default(),
            oci_http,
            oci_https,
            http,
        }
    }

    /// The `Authorization` header to send to `target`, if we have one.
    pub(crate) fn header(&self, target: &Target) -> Option<HeaderValue> {
        let headers = self.headers.lock().unwrap_or_else(|p| p.into_inner());
        headers
            .get(&(target.host.clone(), target.repository.clone()))
            .cloned()
    }

    /// Whether we hold a credential for the target's registry (for error messages).
    pub(crate) fn has_credential(&self, target: &Target) -> bool {
        let creds = self.credentials.lock().unwrap_or_else(|p| p.into_inner());
        matches!(creds.get(&target.registry), Some(Some(_)))
    }

    fn credential(&self, registry: &str) -> Result<Option<Credential>, RegistryError> {
        if let Some(c) = self
            .credentials
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(registry)
        {
            return Ok(c.clone());
        }
        let c = self.sources.lookup(registry)?;
        tracing::debug!(registry, found = c.is_some(), "registry credentials");
        self.credentials
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(registry.to_string(), c.clone());
        Ok(c)
    }

    /// Answers the challenge of a `401` from `target`, so the next request carries what it asked
    /// for. Errors are [`RegistryError::Unauthorized`] unless the token service was unreachable.
    pub(crate) async fn authenticate(
        &self,
        target: &Target,
        www_authenticate: Option<&str>,
    ) -> Result<(), RegistryError> {
        let challenge = www_authenticate.and_then(Challenge::parse);
        let credential = self.credential(&target.registry)?;
        let unauthorized = |reason: String| target.unauthorized(credential.is_some(), reason);
        let header = match (challenge.as_ref().map(|c| c.scheme.as_str()), &credential) {
            (Some("basic"), Some(Credential::UserPass { username, password })) => {
                let raw = format!("{username}:{password}");
                let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
                HeaderValue::from_str(&format!("Basic {b64}"))
                    .map_err(|_| unauthorized("credentials are not a valid header".into()))?
            }
            (Some("basic"), Some(Credential::IdentityToken(_))) => {
                return Err(unauthorized(
                    "registry wants basic auth but only an identity token is configured".into(),
                ));
            }
            (Some("basic"), None) => {
                return Err(unauthorized(
                    "authentication required and no credentials found".into(),
                ));
            }
            (Some("bearer"), Some(Credential::IdentityToken(refresh))) => {
                let c = challenge.as_ref().expect("scheme matched Some");
                self.oauth2_refresh(target, c, refresh).await?
            }
            (Some("bearer"), _) => self.oci_client_token(target, credential.as_ref()).await?,
            (other, _) => {
                return Err(unauthorized(format!(
                    "unsupported authentication challenge {:?}",
                    other.unwrap_or("(none)")
                )));
            }
        };
        let mut headers = self.headers.lock().unwrap_or_else(|p| p.into_inner());
        headers.insert((target.host.clone(), target.repository.clone()), header);
        Ok(())
    }

    /// The token flow through oci-client: anonymous, or with basic credentials at the realm.
    async fn oci_client_token(
        &self,
        target: &Target,
        credential: Option<&Credential>,
    ) -> Result<HeaderValue, RegistryError> {
        let auth = match credential {
            Some(Credential::UserPass { username, password }) => {
                RegistryAuth::Basic(username.clone(), password.clone())
            }
            _ => RegistryAuth::Anonymous,
        };
        let reference = Reference::with_tag(
            target.host.clone(),
            target.repository.clone(),
            "latest".into(),
        );
        let client = if target.plain_http {
            &self.oci_http
        } else {
            &self.oci_https
        };
        let has_cred = credential.is_some();
        match client
            .auth(&reference, &auth, RegistryOperation::Pull)
            .await
        {
            Ok(Some(token)) => bearer(&token)
                .ok_or_else(|| target.unauthorized(has_cred, "token is not a valid header".into())),
            Ok(None) => {
                Err(target.unauthorized(has_cred, "the token service gave no token".into()))
            }
            Err(OciDistributionError::AuthenticationFailure(reason)) => Err(target.unauthorized(
                has_cred,
                format!("token request refused: {}", reason.trim()),
            )),
            Err(OciDistributionError::RequestError(e)) => Err(RegistryError::Http {
                url: format!("token service for {}", target.host),
                source: e,
            }),
            Err(e) => Err(target.unauthorized(has_cred, format!("token request failed: {e}"))),
        }
    }

    /// Exchanges an OAuth2 refresh token (`identitytoken`) for an access token. oci-client has
    /// no such flow, so this `POST` is made with reqwest directly.
    async fn oauth2_refresh(
        &self,
        target: &Target,
        challenge: &Challenge,
        refresh: &str,
    ) -> Result<HeaderValue, RegistryError> {
        let realm = challenge
            .params
            .get("realm")
            .ok_or_else(|| target.unauthorized(true, "bearer challenge without realm".into()))?;
        let scope = format!("repository:{}:pull", target.repository);
        let service = challenge.params.get("service").cloned().unwrap_or_default();
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("service", service.as_str()),
            ("scope", scope.as_str()),
            ("client_id", "oci2vm"),
        ];
        let resp = self
            .http
            .post(realm.as_str())
            .form(&form)
            .send()
            .await
            .map_err(|e| RegistryError::Http {
                url: realm.clone(),
                source: e,
            })?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| RegistryError::Http {
            url: realm.clone(),
            source: e,
        })?;
        if !status.is_success() {
            let msg = String::from_utf8_lossy(&body[..body.len().min(512)])
                .trim()
                .to_string();
            return Err(
                target.unauthorized(true, format!("identity token refused ({status}): {msg}"))
            );
        }
        #[derive(serde::Deserialize)]
        struct TokenAnswer {
            access_token: Option<String>,
            token: Option<String>,
        }
        let ans: TokenAnswer = serde_json::from_slice(&body)
            .map_err(|e| target.unauthorized(true, format!("bad token answer: {e}")))?;
        let token = ans.access_token.or(ans.token).unwrap_or_default();
        bearer(&token)
            .ok_or_else(|| target.unauthorized(true, "empty or invalid access token".into()))
    }
}

fn bearer(token: &str) -> Option<HeaderValue> {
    if token.is_empty() {
        return None;
    }
    let mut v = HeaderValue::from_str(&format!("Bearer {token}")).ok()?;
    v.set_sensitive(true);
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_and_basic_challenges() {
        let c = Challenge::parse(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.params["realm"], "https://auth.docker.io/token");
        assert_eq!(c.params["service"], "registry.docker.io");
        assert_eq!(c.params["scope"], "repository:library/busybox:pull");

        let c = Challenge::parse(r#"Basic realm="fixtures-registry""#).unwrap();
        assert_eq!(c.scheme, "basic");
        assert_eq!(c.params["realm"], "fixtures-registry");

        let c = Challenge::parse(
            r#"bearer realm=http://x/t, service = "a\"b" ,error="insufficient_scope""#,
        )
        .unwrap();
        assert_eq!(c.params["realm"], "http://x/t");
        assert_eq!(c.params["service"], "a\"b");
        assert_eq!(c.params["error"], "insufficient_scope");

        assert_eq!(Challenge::parse("Basic").unwrap().params.len(), 0);
        assert!(Challenge::parse("").is_none());
        assert!(Challenge::parse(r#"Bearer realm="unterminated"#).is_none());
    }

    #[test]
    fn bearer_header_is_sensitive_and_rejects_junk() {
        assert!(bearer("abc").unwrap().is_sensitive());
        assert!(bearer("").is_none());
        assert!(bearer("a\nb").is_none());
    }
}
