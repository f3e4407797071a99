//! One request to a registry, with authentication and retries: the only place that sends.
//!
//! `send` builds the request afresh for every attempt (so a retry never reuses a consumed body),
//! adds the `Authorization` that last worked for the repository, and then:
//! - `2xx`: hands the response (headers only; the body is still unread) to the caller;
//! - `401`: answers the challenge once ([`Authenticator::authenticate`]) and tries again; a
//!   second `401` is [`RegistryError::Unauthorized`];
//! - `5xx`, `429`, `408`, connection failures and timeouts: waits (see [`retry`]) and retries up
//!   to `max_retries` times;
//! - anything else: a final error carrying the registry's error message.
//!
//! Cut-off *bodies* are the caller's to retry (`blob.rs` resumes them; a manifest is re-fetched).

use reqwest::header::{HeaderValue, WWW_AUTHENTICATE};
use reqwest::{RequestBuilder, Response, StatusCode};

use super::auth::Authenticator;
use super::docker_config::CredentialSources;
use super::retry::{self, RetryPolicy};
use super::{CONNECT_TIMEOUT, READ_TIMEOUT, RegistryError, RegistryOptions, Target};

/// Shared HTTP state of a [`super::RegistryClient`].
#[derive(Debug)]
pub(crate) struct Transport {
    pub http: reqwest::Client,
    pub auth: Authenticator,
    pub policy: RetryPolicy,
}

impl Transport {
    pub(crate) fn new(opts: &RegistryOptions) -> Result<Self, RegistryError> {
        let tls_error = |e: reqwest::Error| RegistryError::Http {
            url: "(client setup)".into(),
            source: e,
        };
        let http = reqwest::Client::builder()
            .user_agent(opts.user_agent.clone())
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .build()
            .map_err(tls_error)?;
        // oci-client wants a `&'static str` user agent; one small leak per client, which callers
        // create once per process.
        let user_agent: &'static str = Box::leak(opts.user_agent.clone().into_boxed_str());
        let oci = |protocol| -> Result<oci_client::Client, RegistryError> {
            let config = oci_client::client::ClientConfig {
                protocol,
                user_agent,
                connect_timeout: Some(CONNECT_TIMEOUT),
                read_timeout: Some(READ_TIMEOUT),
                ..Default::default()
            };
            oci_client::Client::try_from(config).map_err(|e| RegistryError::Protocol {
                url: "(client setup)".into(),
                reason: e.to_string(),
            })
        };
        let oci_http = oci(oci_client::client::ClientProtocol::Http)?;
        let oci_https = oci(oci_client::client::ClientProtocol::Https)?;
        let sources = CredentialSources::standard(opts.creds.clone(), opts.authfile.clone());
        Ok(Transport {
            auth: Authenticator::new(sources, oci_http, oci_https, http.clone()),
            http,
            policy: RetryPolicy::new(opts.max_retries),
        })
    }

    /// Sends `build(&client)` to `target` until it succeeds (`2xx`) or fails for good.
    pub(crate) async fn send(
        &self,
        target: &Target,
        url: &str,
        build: &(dyn Fn(&reqwest::Client) -> RequestBuilder + Sync),
    ) -> Result<Response, RegistryError> {
        let mut attempt = 0u32;
        let mut reauthenticated = false;
        loop {
            let mut request = build(&self.http);
            if let Some(h) = self.auth.header(target) {
                request = request.header(reqwest::header::AUTHORIZATION, h);
            }
            let outcome = request.send().await;
            let wait = match outcome {
                Ok(resp) if resp.status().is_success() => return Ok(resp),
                Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED => {
                    let challenge = header_str(resp.headers().get(WWW_AUTHENTICATE));
                    if reauthenticated {
                        let message = error_message(resp).await;
                        let with_credentials = self.auth.has_credential(target);
                        let reason = if with_credentials {
                            format!("credentials rejected: {message}")
                        } else {
                            message
                        };
                        return Err(target.unauthorized(with_credentials, reason));
                    }
                    tracing::debug!(url, challenge = challenge.as_deref(), "401, authenticating");
                    self.auth.authenticate(target, challenge.as_deref()).await?;
                    reauthenticated = true;
                    continue;
                }
                Ok(resp)
                    if retry::is_retryable_status(resp.status())
                        && attempt < self.policy.max_retries =>
                {
                    let ra = retry::retry_after(resp.headers());
                    tracing::debug!(url, status = resp.status().as_u16(), attempt, "retrying");
                    self.policy.delay(attempt, ra)
                }
                Ok(resp) => return Err(status_error(url, resp).await),
                Err(e) if retry::is_retryable_error(&e) && attempt < self.policy.max_retries => {
                    tracing::debug!(url, error = %e, attempt, "retrying");
                    self.policy.delay(attempt, None)
                }
                Err(source) => {
                    return Err(RegistryError::Http {
                        url: url.to_string(),
                        source,
                    });
                }
            };
            attempt += 1;
            tokio::time::sleep(wait).await;
        }
    }
}

fn header_str(v: Option<&HeaderValue>) -> Option<String> {
    v.and_then(|v| v.to_str().ok()).map(str::to_string)
}

/// The final error for an unsuccessful status.
async fn status_error(url: &str, resp: Response) -> RegistryError {
    let status = resp.status().as_u16();
    let message = error_message(resp).await;
    if status == 404 {
        RegistryError::NotFound {
            url: url.to_string(),
            message,
        }
    } else {
        RegistryError::Status {
            url: url.to_string(),
            status,
            message,
        }
    }
}

/// The registry's error text: `errors[].code: message` from the spec's JSON envelope, or the
/// start of the body; at most 64 KiB of body is read.
pub(crate) async fn error_message(mut resp: Response) -> String {
    const LIMIT: usize = 64 * 1024;
    let mut body = Vec::new();
    while body.len() < LIMIT {
        match resp.chunk().await {
            Ok(Some(c)) => body.extend_from_slice(&c[..c.len().min(LIMIT - body.len())]),
            _ => break,
        }
    }
    #[derive(serde::Deserialize)]
    struct Envelope {
        errors: Vec<ErrorItem>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorItem {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    if let Ok(env) = serde_json::from_slice::<Envelope>(&body) {
        if !env.errors.is_empty() {
            let parts: Vec<String> = env
                .errors
                .iter()
                .map(|e| format!("{}: {}", e.code, e.message))
                .collect();
            return parts.join("; ");
        }
    }
    let text = String::from_utf8_lossy(&body);
    let text: String = text.trim().chars().take(300).collect();
    if text.is_empty() {
        "(no message)".to_string()
    } else {
        text
    }
}
