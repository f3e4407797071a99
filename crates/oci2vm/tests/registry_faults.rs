//! The registry client against a fault-injecting server: every fault is either retried to a
//! correct result or rejected with a clear error, and no unverified byte reaches the sink.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns panic on purpose

mod common;

use std::time::{Duration, Instant};

use common::fault_server::{AuthMode, Fault, FaultServer};
use oci2vm::Digest;
use oci2vm::error::{Classify, ErrorKind};
use oci2vm::registry::{MANIFEST_MEDIA_TYPES, RegistryClient, RegistryError, RegistryOptions};

const REPO: &str = "test/app";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn blob_bytes() -> Vec<u8> {
    (0..256 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

fn manifest_bytes() -> Vec<u8> {
    br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":0},"layers":[]}"#.to_vec()
}

struct Fixture {
    server: FaultServer,
    blob: Vec<u8>,
    digest: Digest,
    manifest: Vec<u8>,
    manifest_digest: Digest,
}

fn fixture(auth: AuthMode) -> Fixture {
    let server = FaultServer::start(auth);
    let blob = blob_bytes();
    let digest = Digest::sha256_of(&blob);
    server.add_blob(&digest.to_string(), &blob);
    let manifest = manifest_bytes();
    let manifest_digest = Digest::sha256_of(&manifest);
    server.add_manifest("latest", OCI_MANIFEST, &manifest);
    server.add_manifest(&manifest_digest.to_string(), OCI_MANIFEST, &manifest);
    Fixture {
        server,
        blob,
        digest,
        manifest,
        manifest_digest,
    }
}

fn client(max_retries: u32) -> RegistryClient {
    let opts = RegistryOptions {
        max_retries,
        ..Default::default()
    };
    RegistryClient::new(opts).unwrap()
}

impl Fixture {
    fn fetch(&self, c: &RegistryClient) -> (Result<(), RegistryError>, Vec<u8>) {
        let mut sink = Vec::new();
        let r = c.fetch_blob(
            &self.server.registry(),
            REPO,
            &self.digest,
            self.blob.len() as u64,
            &mut sink,
        );
        (r, sink)
    }

    fn fetch_ok(&self, c: &RegistryClient) {
        let (r, sink) = self.fetch(c);
        r.unwrap();
        assert!(sink == self.blob, "sink differs from the blob");
    }

    fn fetch_err(&self, c: &RegistryClient) -> RegistryError {
        let (r, sink) = self.fetch(c);
        let e = r.expect_err("fetch should fail");
        assert!(
            sink.is_empty(),
            "{} bytes reached the sink despite {e}",
            sink.len()
        );
        e
    }

    fn blob_requests(&self) -> Vec<common::fault_server::Logged> {
        self.server.requests_to("/blobs/")
    }
}

#[test]
fn manifest_by_tag_and_digest_sends_all_four_accept_types() {
    let f = fixture(AuthMode::None);
    let c = client(2);
    let m = c
        .fetch_manifest(&f.server.registry(), REPO, "latest")
        .unwrap();
    assert_eq!(m.bytes, f.manifest);
    assert_eq!(m.media_type, OCI_MANIFEST);
    assert_eq!(m.digest, f.manifest_digest);
    let by_digest = c
        .fetch_manifest(&f.server.registry(), REPO, &f.manifest_digest.to_string())
        .unwrap();
    assert_eq!(by_digest, m);
    let accept = f.server.requests_to("/manifests/")[0].headers["accept"].clone();
    for t in MANIFEST_MEDIA_TYPES {
        assert!(accept.contains(t), "Accept {accept:?} lacks {t}");
    }
}

#[test]
fn manifest_digest_mismatches_are_rejected() {
    let f = fixture(AuthMode::None);
    let c = client(0);
    let wrong = Digest::sha256_of(b"something else");
    f.server
        .add_manifest(&wrong.to_string(), OCI_MANIFEST, &f.manifest);
    let e = c
        .fetch_manifest(&f.server.registry(), REPO, &wrong.to_string())
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::DigestMismatch, "{e}");

    f.server
        .inject("/manifests/latest", Fault::DigestHeader(wrong.to_string()));
    let e = c
        .fetch_manifest(&f.server.registry(), REPO, "latest")
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::DigestMismatch, "{e}");
    // a matching header is fine
    f.server.inject(
        "/manifests/latest",
        Fault::DigestHeader(f.manifest_digest.to_string()),
    );
    c.fetch_manifest(&f.server.registry(), REPO, "latest")
        .unwrap();
}

#[test]
fn schema1_and_oversized_manifests_are_unsupported() {
    let f = fixture(AuthMode::None);
    let c = client(0);
    let s1 = br#"{"schemaVersion":1,"name":"test/app","tag":"old","architecture":"amd64","fsLayers":[]}"#;
    f.server.add_manifest(
        "old",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
        s1,
    );
    let e = c
        .fetch_manifest(&f.server.registry(), REPO, "old")
        .unwrap_err();
    assert!(matches!(e, RegistryError::Schema1 { .. }), "{e}");
    assert_eq!(e.kind(), ErrorKind::Unsupported);

    let mut huge = br#"{"schemaVersion":2,"layers":[],"x":""#.to_vec();
    huge.resize(5 << 20, b'a');
    f.server.add_manifest("huge", OCI_MANIFEST, &huge);
    let e = c
        .fetch_manifest(&f.server.registry(), REPO, "huge")
        .unwrap_err();
    assert!(matches!(e, RegistryError::ManifestTooLarge { .. }), "{e}");
    f.server.inject("/manifests/huge", Fault::NoLength);
    let e = c
        .fetch_manifest(&f.server.registry(), REPO, "huge")
        .unwrap_err();
    assert!(matches!(e, RegistryError::ManifestTooLarge { .. }), "{e}");
}

#[test]
fn missing_manifest_and_blob_are_not_found_without_retries() {
    let f = fixture(AuthMode::None);
    let c = client(3);
    let e = c
        .fetch_manifest(&f.server.registry(), REPO, "nope")
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.to_string().contains("MANIFEST_UNKNOWN"), "{e}");
    assert_eq!(f.server.requests_to("/manifests/nope").len(), 1);
    let mut sink = Vec::new();
    let other = Digest::sha256_of(b"absent");
    let e = c
        .fetch_blob(&f.server.registry(), REPO, &other, 6, &mut sink)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(sink.is_empty());
}

#[test]
fn server_error_then_success_is_retried() {
    let f = fixture(AuthMode::None);
    f.server.inject("/blobs/", Fault::Status(500));
    f.server.inject("/blobs/", Fault::Status(503));
    f.fetch_ok(&client(3));
    assert_eq!(f.blob_requests().len(), 3);
    f.server.inject("/manifests/", Fault::Status(502));
    client(3)
        .fetch_manifest(&f.server.registry(), REPO, "latest")
        .unwrap();
}

#[test]
fn persistent_server_errors_give_up_after_max_retries() {
    let f = fixture(AuthMode::None);
    for _ in 0..10 {
        f.server.inject("/blobs/", Fault::Status(503));
    }
    let e = f.fetch_err(&client(2));
    assert_eq!(e.kind(), ErrorKind::Network, "{e}");
    assert_eq!(f.blob_requests().len(), 3, "1 attempt + 2 retries");
}

#[test]
fn too_many_requests_honours_retry_after() {
    let f = fixture(AuthMode::None);
    f.server.inject("/blobs/", Fault::TooManyRequests(1));
    let t = Instant::now();
    f.fetch_ok(&client(3));
    assert!(
        t.elapsed() >= Duration::from_millis(950),
        "waited only {:?}",
        t.elapsed()
    );
    assert_eq!(f.blob_requests().len(), 2);
}

#[test]
fn connection_reset_mid_blob_resumes_with_range() {
    let f = fixture(AuthMode::None);
    f.server.inject("/blobs/", Fault::ResetAfter(100_000));
    f.fetch_ok(&client(3));
    let reqs = f.blob_requests();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    let range = reqs[1]
        .headers
        .get("range")
        .expect("second request has a Range");
    let start: u64 = range
        .trim_start_matches("bytes=")
        .trim_end_matches('-')
        .parse()
        .unwrap();
    assert!(start > 0 && start <= 100_000, "resumed at {range}");
}

#[test]
fn resume_ignored_or_misanswered_restarts_from_zero() {
    let f = fixture(AuthMode::None);
    f.server.inject("/blobs/", Fault::ResetAfter(50_000));
    f.server.inject("/blobs/", Fault::IgnoreRange);
    f.fetch_ok(&client(3));

    let f = fixture(AuthMode::None);
    f.server.inject("/blobs/", Fault::TruncateAfter(70_000));
    f.server.inject("/blobs/", Fault::BadContentRange);
    f.fetch_ok(&client(3));
    let reqs = f.blob_requests();
    assert_eq!(reqs.len(), 3, "{reqs:?}");
    assert!(
        !reqs[2].headers.contains_key("range"),
        "restart must not ask for a range"
    );
}

#[test]
fn truncated_body_is_resumed_then_fails_when_persistent() {
    let f = fixture(AuthMode::None);
    f.server.inject("/blobs/", Fault::TruncateAfter(1000));
    f.fetch_ok(&client(2));

    let f = fixture(AuthMode::None);
    for _ in 0..10 {
        f.server.inject("/blobs/", Fault::TruncateAfter(0));
    }
    let e = f.fetch_err(&client(2));
    assert!(
        matches!(e, RegistryError::Truncated { attempts: 3, .. }),
        "{e}"
    );
}

#[test]
fn wrong_digest_is_rejected_and_nothing_reaches_the_sink() {
    let f = fixture(AuthMode::None);
    f.server.inject("/blobs/", Fault::WrongBytes);
    let e = f.fetch_err(&client(3));
    assert_eq!(e.kind(), ErrorKind::DigestMismatch, "{e}");
    assert!(e.to_string().contains("does not match"), "{e}");
}

#[test]
fn body_longer_than_descriptor_is_rejected() {
    for fault in [Fault::ExtraBytes(10), Fault::ExtraBytesNoLength(70_000)] {
        let f = fixture(AuthMode::None);
        f.server.inject("/blobs/", fault.clone());
        let e = f.fetch_err(&client(3));
        assert!(matches!(e, RegistryError::TooLong { .. }), "{fault:?}: {e}");
        assert_eq!(e.kind(), ErrorKind::DigestMismatch);
        assert_eq!(f.blob_requests().len(), 1, "{fault:?}: not retried");
    }
}

#[test]
fn blob_redirect_to_storage_is_followed() {
    let f = fixture(AuthMode::Basic("u".into(), "p".into()));
    f.server.inject("/blobs/", Fault::Redirect);
    let opts = RegistryOptions {
        creds: Some(("u".into(), "p".into())),
        ..Default::default()
    };
    f.fetch_ok(&RegistryClient::new(opts).unwrap());
    let storage = f.server.requests_to("/storage/");
    assert_eq!(storage.len(), 1);
}

#[test]
fn basic_auth_without_wrong_and_right_credentials() {
    let f = fixture(AuthMode::Basic("alice".into(), "secret".into()));
    let reg = f.server.registry();
    let e = client(1).fetch_manifest(&reg, REPO, "latest").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");
    assert!(e.to_string().contains("anonymous"), "{e}");
    let e = f.fetch_err(&client(1));
    assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");

    let bad = RegistryOptions {
        creds: Some(("alice".into(), "wrong".into())),
        ..Default::default()
    };
    let e = RegistryClient::new(bad)
        .unwrap()
        .fetch_manifest(&reg, REPO, "latest")
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");
    assert!(e.to_string().contains("with credentials"), "{e}");

    // the right ones, from an authfile in docker config format
    let dir = tempfile::tempdir().unwrap();
    let authfile = dir.path().join("auth.json");
    let b64 = "YWxpY2U6c2VjcmV0"; // alice:secret
    std::fs::write(
        &authfile,
        format!(r#"{{"auths":{{"http://{reg}/v2/":{{"auth":"{b64}"}}}}}}"#),
    )
    .unwrap();
    let good = RegistryOptions {
        authfile: Some(authfile),
        ..Default::default()
    };
    let c = RegistryClient::new(good).unwrap();
    c.fetch_manifest(&reg, REPO, "latest").unwrap();
    f.fetch_ok(&c);
}

#[test]
fn bearer_token_anonymous_and_with_credentials() {
    let f = fixture(AuthMode::Bearer(None));
    let c = client(1);
    c.fetch_manifest(&f.server.registry(), REPO, "latest")
        .unwrap();
    f.fetch_ok(&c);
    let tokens = f.server.requests_to("/token");
    assert_eq!(tokens.len(), 1, "token reused for the same repository");
    assert!(
        tokens[0]
            .path
            .contains("scope=repository%3Atest%2Fapp%3Apull"),
        "{}",
        tokens[0].path
    );

    let f = fixture(AuthMode::Bearer(Some(("bob".into(), "pw".into()))));
    let e = client(1)
        .fetch_manifest(&f.server.registry(), REPO, "latest")
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");
    let bad = RegistryOptions {
        creds: Some(("bob".into(), "nope".into())),
        ..Default::default()
    };
    let e = RegistryClient::new(bad)
        .unwrap()
        .fetch_manifest(&f.server.registry(), REPO, "latest");
    let e = e.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");
    assert!(e.to_string().contains("token request refused"), "{e}");
    let good = RegistryOptions {
        creds: Some(("bob".into(), "pw".into())),
        ..Default::default()
    };
    let c = RegistryClient::new(good).unwrap();
    c.fetch_manifest(&f.server.registry(), REPO, "latest")
        .unwrap();
    f.fetch_ok(&c);
}

#[test]
fn identity_token_is_exchanged_with_an_oauth2_post() {
    let f = fixture(AuthMode::BearerRefresh("rt-good".into()));
    let reg = f.server.registry();
    let dir = tempfile::tempdir().unwrap();
    let authfile = dir.path().join("auth.json");
    let with = |token: &str| {
        let json = format!(r#"{{"auths":{{"{reg}":{{"auth":"","identitytoken":"{token}"}}}}}}"#);
        std::fs::write(&authfile, json).unwrap();
        let opts = RegistryOptions {
            authfile: Some(authfile.clone()),
            ..Default::default()
        };
        RegistryClient::new(opts).unwrap()
    };
    let e = with("rt-bad")
        .fetch_manifest(&reg, REPO, "latest")
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");
    let c = with("rt-good");
    c.fetch_manifest(&reg, REPO, "latest").unwrap();
    f.fetch_ok(&c);
    assert!(
        f.server
            .requests_to("/token")
            .iter()
            .all(|r| r.method == "POST")
    );
}

#[test]
fn expired_token_is_renewed_once() {
    let f = fixture(AuthMode::Bearer(None));
    let c = client(1);
    c.fetch_manifest(&f.server.registry(), REPO, "latest")
        .unwrap();
    f.server.expire_tokens();
    f.fetch_ok(&c);
    assert_eq!(f.server.requests_to("/token").len(), 2);
    let blob_reqs = f.blob_requests();
    assert_eq!(blob_reqs.len(), 2, "401 with the old token, then success");
    assert_eq!(blob_reqs[1].headers["authorization"], "Bearer token-1");
}

#[test]
fn scheme_follows_loopback_and_tls_verify() {
    let f = fixture(AuthMode::None);
    let port = f.server.registry().rsplit_once(':').unwrap().1.to_string();
    // localhost is loopback: plain HTTP by default
    client(0)
        .fetch_manifest(&format!("localhost:{port}"), REPO, "latest")
        .unwrap();
    // tls_verify=true forces HTTPS, which this plain-HTTP server cannot speak
    let tls = RegistryOptions {
        tls_verify: Some(true),
        max_retries: 0,
        ..Default::default()
    };
    let e = RegistryClient::new(tls)
        .unwrap()
        .fetch_manifest(&f.server.registry(), REPO, "latest");
    assert_eq!(e.unwrap_err().kind(), ErrorKind::Network);
}

#[test]
fn one_client_serves_parallel_threads() {
    let f = fixture(AuthMode::Bearer(None));
    f.server.inject("/blobs/", Fault::ResetAfter(30_000));
    f.server.inject("/blobs/", Fault::Status(500));
    let c = client(3);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| f.fetch_ok(&c));
        }
    });
    assert!(f.blob_requests().len() >= 6);
}

#[test]
fn invalid_names_are_rejected_before_any_request() {
    let f = fixture(AuthMode::None);
    let c = client(0);
    for (reg, repo, reference) in [
        (f.server.registry(), "../x", "latest"),
        (f.server.registry(), REPO, "a/b"),
        ("a/b".into(), REPO, "latest"),
    ] {
        let e = c.fetch_manifest(&reg, repo, reference).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    }
    assert!(f.server.log().is_empty());
}
