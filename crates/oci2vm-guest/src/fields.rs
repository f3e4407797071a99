//! Field parsers of the config document (see `config.rs` for the format).

use crate::codec::unescape;
use crate::config::{Ipv4, Mount, Network, RLIMIT_NAMES, Rlimit, RootDevice};

pub(crate) fn parse_flag(v: &str) -> Option<bool> {
    match v {
        "0" => Some(false),
        "1" => Some(true),
        _ => None,
    }
}

/// Parses dotted-quad IPv4.
pub fn parse_ip(s: &str) -> Option<Ipv4> {
    let mut out = [0u8; 4];
    let mut parts = s.split('.');
    for o in &mut out {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *o = p.parse().ok()?;
    }
    parts.next().is_none().then_some(out)
}

pub(crate) fn parse_network(v: &str) -> Option<Network> {
    if v == "none" {
        return Some(Network::None);
    }
    let (cidr, gw) = v.split_once(' ').unwrap_or((v, "-"));
    let (a, p) = cidr.split_once('/')?;
    let prefix: u8 = p.parse().ok().filter(|p| *p <= 32)?;
    if !p.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let gateway = if gw == "-" { None } else { Some(parse_ip(gw)?) };
    Some(Network::Static {
        addr: parse_ip(a)?,
        prefix,
        gateway,
    })
}

fn fields<const N: usize>(v: &str) -> Option<[String; N]> {
    let parts: Vec<&str> = v.split(' ').collect();
    if parts.len() != N {
        return None;
    }
    let mut out: [String; N] = std::array::from_fn(|_| String::new());
    for (o, p) in out.iter_mut().zip(parts) {
        *o = unescape(p)?;
    }
    Some(out)
}

pub(crate) fn parse_ro(s: &str) -> Option<bool> {
    match s {
        "ro" => Some(true),
        "rw" => Some(false),
        _ => None,
    }
}

pub(crate) fn parse_mount(v: &str) -> Option<Mount> {
    let [kind, tag, path, ro] = fields::<4>(v)?;
    if kind != "virtiofs" || tag.is_empty() || !path.starts_with('/') {
        return None;
    }
    Some(Mount {
        kind,
        tag,
        path,
        readonly: parse_ro(&ro)?,
    })
}

pub(crate) fn parse_limit(s: &str) -> Option<u64> {
    if s == "unlimited" {
        return Some(u64::MAX);
    }
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|v| *v != u64::MAX)
}

pub(crate) fn parse_rlimit(v: &str) -> Option<Rlimit> {
    let [name, soft, hard] = fields::<3>(v)?;
    if !RLIMIT_NAMES.contains(&name.as_str()) {
        return None;
    }
    let (soft, hard) = (parse_limit(&soft)?, parse_limit(&hard)?);
    (soft <= hard).then_some(Rlimit { name, soft, hard })
}

pub(crate) fn parse_root(v: &str) -> Option<RootDevice> {
    let [device, fstype, ro] = fields::<3>(v)?;
    if !device.starts_with("/dev/") || fstype.is_empty() {
        return None;
    }
    Some(RootDevice {
        device,
        fstype,
        readonly: parse_ro(&ro)?,
    })
}
