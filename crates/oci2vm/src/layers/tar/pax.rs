//! PAX extended header records (`x` and `g` typeflags).
//!
//! Spec: POSIX.1-2017 `pax` "pax Extended Header"
//! (<https://pubs.opengroup.org/onlinepubs/9799919799/utilities/pax.html#tag_20_92_13_03>).
//!
//! ```text
//! body  = record*
//! record = LEN SP KEY "=" VALUE LF      LEN: decimal byte count of the whole record,
//!                                         including LEN itself, the space and the LF
//! e.g.   "30 mtime=1700000000.123456789\n"
//! ```
//!
//! Strict: every record must parse (length, space, `=`, final LF); numerics must be decimal;
//! a repeated key takes its last value (Go). Keys we do not know are ignored, except
//! `GNU.sparse.*` (sparse files are refused rather than misparsed).

use super::TarErrorKind;
use crate::layers::tree::Timestamp;

/// The records of one PAX header we act on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pax {
    /// `path`.
    pub path: Option<Vec<u8>>,
    /// `linkpath`.
    pub linkpath: Option<Vec<u8>>,
    /// `size`.
    pub size: Option<u64>,
    /// `uid`.
    pub uid: Option<u64>,
    /// `gid`.
    pub gid: Option<u64>,
    /// `mtime` with fraction.
    pub mtime: Option<Timestamp>,
    /// `SCHILY.xattr.NAME` records, in order (last value of a repeated name wins).
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// One record: `(key, value)`.
pub type Record<'a> = (&'a [u8], &'a [u8]);

/// Splits a body into `(key, value)` records.
pub fn records(body: &[u8]) -> Result<Vec<Record<'_>>, TarErrorKind> {
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        // Go tolerates NUL padding after the last record only in bodies it wrote itself;
        // we accept a NUL-only tail too (some writers pad), nothing else.
        if rest.iter().all(|&b| b == 0) {
            break;
        }
        let sp = rest
            .iter()
            .position(|&b| b == b' ')
            .ok_or(TarErrorKind::PaxRecord)?;
        let len_digits = &rest[..sp];
        if len_digits.is_empty()
            || len_digits.len() > 19
            || !len_digits.iter().all(u8::is_ascii_digit)
        {
            return Err(TarErrorKind::PaxRecord);
        }
        let len: usize = std::str::from_utf8(len_digits)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(TarErrorKind::PaxRecord)?;
        if len <= sp + 1 || len > rest.len() {
            return Err(TarErrorKind::PaxRecord);
        }
        let rec = &rest[sp + 1..len];
        let Some((&b'\n', kv)) = rec.split_last() else {
            return Err(TarErrorKind::PaxRecord);
        };
        let eq = kv
            .iter()
            .position(|&b| b == b'=')
            .ok_or(TarErrorKind::PaxRecord)?;
        let (key, value) = (&kv[..eq], &kv[eq + 1..]);
        if key.is_empty() || key.contains(&0) {
            return Err(TarErrorKind::PaxRecord);
        }
        out.push((key, value));
        rest = &rest[len..];
    }
    Ok(out)
}

fn decimal(v: &[u8]) -> Result<u64, TarErrorKind> {
    if v.is_empty() || v.len() > 20 || !v.iter().all(u8::is_ascii_digit) {
        return Err(TarErrorKind::PaxRecord);
    }
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(TarErrorKind::PaxRecord)
}

/// Parses a PAX time: `[-]SECONDS[.FRACTION]`; the fraction is truncated to nanoseconds.
pub fn parse_time(v: &[u8]) -> Result<Timestamp, TarErrorKind> {
    let (neg, v) = match v.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, v),
    };
    let (secs, frac) = match v.iter().position(|&b| b == b'.') {
        Some(i) => (&v[..i], Some(&v[i + 1..])),
        None => (v, None),
    };
    let secs = i64::try_from(decimal(secs)?).map_err(|_| TarErrorKind::PaxRecord)?;
    let mut nsec: u32 = 0;
    if let Some(frac) = frac {
        if frac.is_empty() || !frac.iter().all(u8::is_ascii_digit) {
            return Err(TarErrorKind::PaxRecord);
        }
        for i in 0..9 {
            nsec = nsec * 10 + frac.get(i).map_or(0, |d| u32::from(d - b'0'));
        }
    }
    if !neg {
        return Ok(Timestamp { sec: secs, nsec });
    }
    // -S.F means -(S + F): floor to whole seconds, positive nanoseconds.
    Ok(if nsec == 0 {
        Timestamp {
            sec: -secs,
            nsec: 0,
        }
    } else {
        Timestamp {
            sec: -secs - 1,
            nsec: 1_000_000_000 - nsec,
        }
    })
}

/// Parses an `x` header body into the records we act on.
pub fn parse_local(body: &[u8]) -> Result<Pax, TarErrorKind> {
    let mut pax = Pax::default();
    for (key, value) in records(body)? {
        let required = |v: &[u8]| {
            if v.is_empty() {
                Err(TarErrorKind::PaxRecord)
            } else {
                Ok(())
            }
        };
        match key {
            b"path" | b"linkpath" => {
                required(value)?;
                if value.contains(&0) {
                    return Err(TarErrorKind::NulInName);
                }
                if key == b"path" {
                    pax.path = Some(value.to_vec())
                } else {
                    pax.linkpath = Some(value.to_vec())
                }
            }
            b"size" => pax.size = Some(decimal(value)?),
            b"uid" => pax.uid = Some(decimal(value)?),
            b"gid" => pax.gid = Some(decimal(value)?),
            b"mtime" => pax.mtime = Some(parse_time(value)?),
            b"atime" | b"ctime" => {
                parse_time(value)?;
            }
            _ if key.starts_with(b"SCHILY.xattr.") => {
                let name = &key[b"SCHILY.xattr.".len()..];
                if name.is_empty() {
                    return Err(TarErrorKind::PaxRecord);
                }
                pax.xattrs.retain(|(n, _)| n != name);
                pax.xattrs.push((name.to_vec(), value.to_vec()));
            }
            _ if key.starts_with(b"GNU.sparse.") => return Err(TarErrorKind::Sparse),
            _ => {}
        }
    }
    Ok(pax)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(k: &str, v: &str) -> Vec<u8> {
        let body = format!(" {k}={v}\n");
        let mut n = body.len();
        loop {
            let total = n.to_string().len() + body.len();
            if total == n {
                break;
            }
            n = total;
        }
        format!("{n}{body}").into_bytes()
    }

    #[test]
    fn parses_known_keys_last_wins() {
        let mut body = rec("path", "a/b");
        body.extend(rec("path", "c"));
        body.extend(rec("size", "42"));
        body.extend(rec("mtime", "1700000000.5"));
        body.extend(rec("SCHILY.xattr.user.x", "v"));
        body.extend(rec("comment", "ignored"));
        let p = parse_local(&body).unwrap();
        assert_eq!(p.path.as_deref(), Some(&b"c"[..]));
        assert_eq!(p.size, Some(42));
        assert_eq!(
            p.mtime,
            Some(Timestamp {
                sec: 1_700_000_000,
                nsec: 500_000_000
            })
        );
        assert_eq!(p.xattrs, vec![(b"user.x".to_vec(), b"v".to_vec())]);
    }

    #[test]
    fn malformed_records_rejected() {
        for bad in [
            &b"5 a=b"[..],
            b"99 path=x\n",
            b"x path=x\n",
            b"10 pathxx\n\n",
            b"9 path=x ",
            b"8 size=\n",
            b"10 size=1a\n",
            b"9 size=-1\n",
            b"8 path=\n",
            b"3 \n",
        ] {
            assert!(
                parse_local(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(matches!(
            parse_local(b"12 path=a\0b\n"),
            Err(TarErrorKind::NulInName)
        ));
        assert!(matches!(
            parse_local(&rec("GNU.sparse.major", "1")),
            Err(TarErrorKind::Sparse)
        ));
    }

    #[test]
    fn negative_and_fractional_times() {
        assert_eq!(
            parse_time(b"-1.5").unwrap(),
            Timestamp {
                sec: -2,
                nsec: 500_000_000
            }
        );
        assert_eq!(parse_time(b"-3").unwrap(), Timestamp { sec: -3, nsec: 0 });
        assert_eq!(
            parse_time(b"1.1234567899").unwrap(),
            Timestamp {
                sec: 1,
                nsec: 123_456_789
            }
        );
        assert!(parse_time(b"1.").is_err());
        assert!(parse_time(b"").is_err());
    }
}
