//! A tiny Distribution-API server on 127.0.0.1:0 that serves canned manifests and blobs and
//! injects faults on demand: error statuses, `429` + `Retry-After`, connection resets and
//! truncation mid-body, wrong or extra bytes, ignored or bad `Range` answers, redirects to a
//! "storage" path, and basic / bearer-token authentication. Plain std::net, one thread per
//! connection, `Connection: close` on every answer; every request is logged for assertions.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;

/// What to do to the next request whose path contains the fault's pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer this status with an error envelope.
    Status(u16),
    /// `429` with `Retry-After: <secs>`.
    TooManyRequests(u64),
    /// Full headers, then this many body bytes, then a TCP reset.
    ResetAfter(usize),
    /// Full headers, then this many body bytes, then a clean close (FIN).
    TruncateAfter(usize),
    /// The right length, one byte flipped.
    WrongBytes,
    /// `Content-Length` and body both this many bytes too long.
    ExtraBytes(usize),
    /// No `Content-Length` (close-delimited), this many extra bytes.
    ExtraBytesNoLength(usize),
    /// Answer `200` with the whole body even when `Range` was asked for.
    IgnoreRange,
    /// Answer `206` with a `Content-Range` that starts at 0 whatever was asked.
    BadContentRange,
    /// `307` to `/storage/<digest>` (served without auth, like a storage bucket).
    Redirect,
    /// Serve the body without `Content-Length`.
    NoLength,
    /// Add this `Docker-Content-Digest` header.
    DigestHeader(String),
}

/// Authentication the server demands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMode {
    /// Everything is open.
    None,
    /// htpasswd-style basic auth with this user and password.
    Basic(String, String),
    /// Token auth: `/token` hands out a token (to anyone when `None`, else only with these basic
    /// credentials), which must then be sent as `Bearer`.
    Bearer(Option<(String, String)>),
    /// Token auth where `/token` only answers an OAuth2 `POST` with this refresh token
    /// (`grant_type=refresh_token`), as for an `identitytoken` in a docker config.
    BearerRefresh(String),
}

/// One logged request.
#[derive(Debug, Clone)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
}

#[derive(Debug, Default)]
struct State {
    /// Tokens are `token-<generation>`; only the current generation is accepted.
    token_generation: u64,
    manifests: HashMap<String, (String, Vec<u8>)>,
    blobs: HashMap<String, Vec<u8>>,
    faults: VecDeque<(String, Fault)>,
    log: Vec<Logged>,
}

/// The running server; stops accepting when dropped.
#[derive(Debug)]
pub struct FaultServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    auth: Arc<Mutex<AuthMode>>,
    stop: Arc<AtomicBool>,
}

impl FaultServer {
    pub fn start(auth: AuthMode) -> FaultServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(Mutex::new(State::default()));
        let auth = Arc::new(Mutex::new(auth));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, a, st) = (state.clone(), auth.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (s, a) = (s.clone(), a.clone());
                std::thread::spawn(move || {
                    let _ = handle(conn, addr, &s, &a);
                });
            }
        });
        FaultServer {
            addr,
            state,
            auth,
            stop,
        }
    }

    /// `127.0.0.1:<port>`, the registry name to use.
    pub fn registry(&self) -> String {
        self.addr.to_string()
    }

    pub fn add_manifest(&self, reference: &str, media_type: &str, body: &[u8]) {
        let mut st = self.state.lock().unwrap();
        st.manifests.insert(
            reference.to_string(),
            (media_type.to_string(), body.to_vec()),
        );
    }

    pub fn add_blob(&self, digest: &str, body: &[u8]) {
        self.state
            .lock()
            .unwrap()
            .blobs
            .insert(digest.to_string(), body.to_vec());
    }

    /// Queues a fault for the next request whose path contains `pattern`.
    pub fn inject(&self, pattern: &str, fault: Fault) {
        self.state
            .lock()
            .unwrap()
            .faults
            .push_back((pattern.to_string(), fault));
    }

    pub fn log(&self) -> Vec<Logged> {
        self.state.lock().unwrap().log.clone()
    }

    /// Logged requests whose path contains `pattern`.
    pub fn requests_to(&self, pattern: &str) -> Vec<Logged> {
        self.log()
            .into_iter()
            .filter(|l| l.path.contains(pattern))
            .collect()
    }

    /// Expires every token handed out so far (as a token's lifetime running out would).
    pub fn expire_tokens(&self) {
        self.state.lock().unwrap().token_generation += 1;
    }

    pub fn set_auth(&self, auth: AuthMode) {
        *self.auth.lock().unwrap() = auth;
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

fn basic(user: &str, pass: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    format!("Basic {b64}")
}

fn handle(
    conn: TcpStream,
    addr: SocketAddr,
    state: &Mutex<State>,
    auth: &Mutex<AuthMode>,
) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let mut body = vec![
        0u8;
        headers
            .get("content-length")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0)
    ];
    std::io::Read::read_exact(&mut reader, &mut body)?;
    let body = String::from_utf8_lossy(&body).to_string();
    let mut out = conn;
    let logged = Logged {
        method: method.clone(),
        path: path.clone(),
        headers: headers.clone(),
    };
    state.lock().unwrap().log.push(logged);
    let authz = headers.get("authorization").cloned().unwrap_or_default();
    let mode = auth.lock().unwrap().clone();
    let token = format!("token-{}", state.lock().unwrap().token_generation);

    if path.starts_with("/token") {
        let ok = match &mode {
            AuthMode::Bearer(None) => true,
            AuthMode::Bearer(Some((u, p))) => authz == basic(u, p),
            AuthMode::BearerRefresh(rt) => {
                method == "POST"
                    && body.split('&').any(|kv| kv == "grant_type=refresh_token")
                    && body
                        .split('&')
                        .any(|kv| kv == format!("refresh_token={rt}"))
            }
            _ => false,
        };
        return if ok {
            respond(
                &mut out,
                200,
                &[("Content-Type", "application/json")],
                format!(r#"{{"access_token":"{token}"}}"#).as_bytes(),
            )
        } else {
            error(&mut out, 401, "UNAUTHORIZED", "bad token credentials", &[])
        };
    }
    if !path.starts_with("/storage/") {
        let challenge = match &mode {
            AuthMode::None => None,
            AuthMode::Basic(u, p) => {
                (authz != basic(u, p)).then(|| r#"Basic realm="fault""#.to_string())
            }
            AuthMode::Bearer(_) | AuthMode::BearerRefresh(_) => (authz
                != format!("Bearer {token}"))
            .then(|| format!(r#"Bearer realm="http://{addr}/token",service="fault-registry""#)),
        };
        if let Some(c) = challenge {
            return error(
                &mut out,
                401,
                "UNAUTHORIZED",
                "authentication required",
                &[("WWW-Authenticate", &c)],
            );
        }
    }
    if path == "/v2/" {
        return respond(
            &mut out,
            200,
            &[("Content-Type", "application/json")],
            b"{}",
        );
    }
    // faults apply to requests that passed authentication
    let fault = {
        let mut st = state.lock().unwrap();
        let pos = st
            .faults
            .iter()
            .position(|(p, _)| path.contains(p.as_str()));
        pos.and_then(|i| st.faults.remove(i)).map(|(_, f)| f)
    };
    match fault {
        Some(Fault::Status(s)) => return error(&mut out, s, "INJECTED", "injected failure", &[]),
        Some(Fault::TooManyRequests(secs)) => {
            let ra = secs.to_string();
            return error(
                &mut out,
                429,
                "TOOMANYREQUESTS",
                "slow down",
                &[("Retry-After", &ra)],
            );
        }
        Some(Fault::Redirect) => {
            let digest = path.rsplit('/').next().unwrap_or("");
            let loc = format!("http://{addr}/storage/{digest}");
            return respond(&mut out, 307, &[("Location", &loc)], b"");
        }
        _ => {}
    }

    let st = state.lock().unwrap();
    let (content_type, body) = if let Some(r) = path.split("/manifests/").nth(1) {
        match st.manifests.get(r) {
            Some((ct, b)) => (ct.clone(), b.clone()),
            None => {
                drop(st);
                return error(&mut out, 404, "MANIFEST_UNKNOWN", "manifest unknown", &[]);
            }
        }
    } else {
        let d = path.rsplit('/').next().unwrap_or("");
        match st.blobs.get(d) {
            Some(b) if path.contains("/blobs/") || path.starts_with("/storage/") => {
                ("application/octet-stream".to_string(), b.clone())
            }
            _ => {
                drop(st);
                return error(&mut out, 404, "BLOB_UNKNOWN", "blob unknown", &[]);
            }
        }
    };
    drop(st);
    serve_body(&mut out, &content_type, body, headers.get("range"), fault)
}

fn serve_body(
    out: &mut TcpStream,
    content_type: &str,
    mut body: Vec<u8>,
    range: Option<&String>,
    fault: Option<Fault>,
) -> std::io::Result<()> {
    let total = body.len();
    let mut status = 200;
    let mut content_range = None;
    let start = range
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|s| s.parse::<usize>().ok());
    if let Some(start) = start.filter(|_| fault != Some(Fault::IgnoreRange)) {
        if fault == Some(Fault::BadContentRange) {
            content_range = Some(format!("bytes 0-{}/{total}", total - 1));
        } else {
            content_range = Some(format!("bytes {start}-{}/{total}", total - 1));
            body = body[start.min(total)..].to_vec();
        }
        status = 206;
    }
    let mut length = Some(body.len());
    match fault {
        Some(Fault::WrongBytes) if !body.is_empty() => {
            let mid = body.len() / 2;
            body[mid] ^= 0xff;
        }
        Some(Fault::ExtraBytes(n)) => {
            body.extend(std::iter::repeat_n(b'X', n));
            length = Some(body.len());
        }
        Some(Fault::ExtraBytesNoLength(n)) => {
            body.extend(std::iter::repeat_n(b'X', n));
            length = None;
        }
        Some(Fault::NoLength) => length = None,
        _ => {}
    }
    let len_s = length.map(|l| l.to_string());
    let mut hs: Vec<(&str, &str)> = vec![("Content-Type", content_type)];
    if let Some(l) = &len_s {
        hs.push(("Content-Length", l));
    }
    if let Some(cr) = &content_range {
        hs.push(("Content-Range", cr));
    }
    if let Some(Fault::DigestHeader(d)) = &fault {
        hs.push(("Docker-Content-Digest", d));
    }
    write_head(out, status, &hs)?;
    match fault {
        Some(Fault::ResetAfter(n)) => {
            out.write_all(&body[..n.min(body.len())])?;
            out.flush()?;
            std::thread::sleep(Duration::from_millis(20));
            socket2::SockRef::from(&*out).set_linger(Some(Duration::ZERO))?;
            Ok(())
        }
        Some(Fault::TruncateAfter(n)) => {
            out.write_all(&body[..n.min(body.len())])?;
            out.shutdown(std::net::Shutdown::Both)
        }
        _ => {
            out.write_all(&body)?;
            out.flush()
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        307 => "Temporary Redirect",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Whatever",
    }
}

fn write_head(out: &mut TcpStream, status: u16, headers: &[(&str, &str)]) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nConnection: close\r\n",
        reason(status)
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())
}

fn respond(
    out: &mut TcpStream,
    status: u16,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<()> {
    let len = body.len().to_string();
    let mut hs = headers.to_vec();
    hs.push(("Content-Length", &len));
    write_head(out, status, &hs)?;
    out.write_all(body)?;
    out.flush()
}

fn error(
    out: &mut TcpStream,
    status: u16,
    code: &str,
    message: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<()> {
    let body = format!(r#"{{"errors":[{{"code":"{code}","message":"{message}"}}]}}"#);
    let mut hs = headers.to_vec();
    hs.push(("Content-Type", "application/json"));
    respond(out, status, &hs, body.as_bytes())
}
