//! When to retry a registry request, and how long to wait first.
//!
//! Retried: connection failures and timeouts, `5xx` answers except `501`/`505` (which will not
//! change on a second try), `429 Too Many Requests` and `408 Request Timeout`. Every other `4xx`
//! is final. The wait is exponential (`base * 2^attempt`, capped at `max_delay`) with "equal
//! jitter" (a uniformly random point in the upper half of that window), so many clients that
//! failed together do not come back together. A `Retry-After: <seconds>` header on a `429` or
//! `503` replaces the computed wait, capped at `retry_after_cap` so a hostile or confused server
//! cannot park us for hours. The HTTP-date form of `Retry-After` is ignored (the computed
//! backoff is used), which keeps us free of a date parser for a rarely used form.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

/// How many times and how patiently to retry.
#[derive(Debug, Clone)]
pub(crate) struct RetryPolicy {
    /// Retries after the first attempt (so `max_retries + 1` attempts in all).
    pub max_retries: u32,
    /// The first backoff window.
    pub base: Duration,
    /// The largest backoff window.
    pub max_delay: Duration,
    /// The longest `Retry-After` we honour.
    pub retry_after_cap: Duration,
}

impl RetryPolicy {
    /// The policy used by [`super::RegistryClient`]: 100 ms doubling to 8 s, `Retry-After` up to 30 s.
    pub(crate) fn new(max_retries: u32) -> Self {
        RetryPolicy {
            max_retries,
            base: Duration::from_millis(100),
            max_delay: Duration::from_secs(8),
            retry_after_cap: Duration::from_secs(30),
        }
    }

    /// The wait before retry number `attempt` (0-based), honouring a server's `Retry-After`.
    pub(crate) fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(ra) = retry_after {
            return ra.min(self.retry_after_cap);
        }
        let window = self
            .base
            .saturating_mul(1u32 << attempt.min(20))
            .min(self.max_delay);
        let half = window / 2;
        half + half.mul_f64(jitter_fraction())
    }
}

/// Whether an HTTP status is worth another try.
pub(crate) fn is_retryable_status(status: StatusCode) -> bool {
    match status.as_u16() {
        408 | 429 => true,
        501 | 505 => false,
        s => (500..600).contains(&s),
    }
}

/// Whether a transport error (no usable HTTP answer) is worth another try: failed or reset
/// connections, timeouts, and bodies cut off mid-way. Builder errors (a bad URL) and redirect
/// loops are final.
pub(crate) fn is_retryable_error(e: &reqwest::Error) -> bool {
    !(e.is_builder() || e.is_redirect() || e.is_status())
        && (e.is_connect() || e.is_timeout() || e.is_request() || e.is_body() || e.is_decode())
}

/// `Retry-After` in its delay-seconds form; `None` when absent or in HTTP-date form.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    v.parse::<u64>().ok().map(Duration::from_secs)
}

/// A number in `[0, 1)`; not cryptographic, only has to differ between processes and calls.
fn jitter_fraction() -> f64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let seed = STATE.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
        ^ nanos
        ^ u64::from(std::process::id());
    // splitmix64 finaliser
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn statuses() {
        for s in [408, 429, 500, 502, 503, 504, 599] {
            assert!(is_retryable_status(StatusCode::from_u16(s).unwrap()), "{s}");
        }
        for s in [200, 206, 301, 400, 401, 403, 404, 405, 416, 501, 505] {
            assert!(
                !is_retryable_status(StatusCode::from_u16(s).unwrap()),
                "{s}"
            );
        }
    }

    #[test]
    fn backoff_grows_is_jittered_and_bounded() {
        let p = RetryPolicy::new(5);
        for attempt in 0..40 {
            let window = p
                .base
                .saturating_mul(1u32 << attempt.min(20))
                .min(p.max_delay);
            for _ in 0..20 {
                let d = p.delay(attempt, None);
                assert!(
                    d >= window / 2 && d <= window,
                    "attempt {attempt}: {d:?} vs {window:?}"
                );
            }
        }
        assert!(p.delay(30, None) <= p.max_delay);
        let samples: std::collections::HashSet<_> = (0..50).map(|_| p.delay(3, None)).collect();
        assert!(samples.len() > 1, "no jitter");
    }

    #[test]
    fn retry_after_is_honoured_and_capped() {
        let p = RetryPolicy::new(3);
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("2"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        assert_eq!(p.delay(0, retry_after(&h)), Duration::from_secs(2));
        h.insert(RETRY_AFTER, HeaderValue::from_static("86400"));
        assert_eq!(p.delay(0, retry_after(&h)), p.retry_after_cap);
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), None);
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }
}
