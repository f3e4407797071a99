//! Building a partial config document: only the keys the host wants to override.
//!
//! The init applies it after `/.oci2vm/config` with the merge rules of
//! [`GuestConfig::apply`](crate::GuestConfig::apply): lists given here replace the image's
//! (`arg`, `dns`, `mount`, `rlimit`), `env` entries replace per KEY, scalars replace.

use crate::codec::escape;
use crate::config::{HEADER, Mount, Network, Rlimit};

/// A partial config document under construction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overlay {
    lines: Vec<String>,
}

fn field(s: &str) -> String {
    escape(s).replace(' ', "\\x20")
}

fn flag(b: bool) -> &'static str {
    if b { "1" } else { "0" }
}

impl Overlay {
    /// An empty overlay (changes nothing).
    pub fn new() -> Self {
        Overlay::default()
    }

    fn push(&mut self, key: &str, value: &str) -> &mut Self {
        self.lines.push(format!("{key} {value}"));
        self
    }

    /// Replaces argv (Entrypoint + Cmd, already resolved by the host).
    pub fn argv(&mut self, argv: &[String]) -> &mut Self {
        for a in argv {
            self.push("arg", &escape(a));
        }
        self
    }

    /// Sets one `KEY=VALUE` environment entry.
    pub fn env(&mut self, entry: &str) -> &mut Self {
        self.push("env", &escape(entry))
    }

    /// Sets the working directory.
    pub fn workdir(&mut self, dir: &str) -> &mut Self {
        self.push("workdir", &escape(dir))
    }

    /// Sets the user spec.
    pub fn user(&mut self, user: &str) -> &mut Self {
        self.push("user", &escape(user))
    }

    /// Sets the host name.
    pub fn hostname(&mut self, name: &str) -> &mut Self {
        self.push("hostname", &escape(name))
    }

    /// Sets the network.
    pub fn network(&mut self, net: &Network) -> &mut Self {
        let v = match net {
            Network::None => "none".to_string(),
            Network::Static {
                addr: a,
                prefix,
                gateway,
            } => {
                let gw = gateway.map_or("-".into(), |g| {
                    format!("{}.{}.{}.{}", g[0], g[1], g[2], g[3])
                });
                format!("{}.{}.{}.{}/{prefix} {gw}", a[0], a[1], a[2], a[3])
            }
        };
        self.push("network", &v)
    }

    /// Adds a name server.
    pub fn dns(&mut self, d: [u8; 4]) -> &mut Self {
        self.push("dns", &format!("{}.{}.{}.{}", d[0], d[1], d[2], d[3]))
    }

    /// Adds a shared directory.
    pub fn mount(&mut self, m: &Mount) -> &mut Self {
        let ro = if m.readonly { "ro" } else { "rw" };
        let v = format!(
            "{} {} {} {ro}",
            field(&m.kind),
            field(&m.tag),
            field(&m.path)
        );
        self.push("mount", &v)
    }

    /// Adds a resource limit.
    pub fn rlimit(&mut self, r: &Rlimit) -> &mut Self {
        let lim = |v: u64| {
            if v == u64::MAX {
                "unlimited".to_string()
            } else {
                v.to_string()
            }
        };
        let v = format!("{} {} {}", field(&r.name), lim(r.soft), lim(r.hard));
        self.push("rlimit", &v)
    }

    /// Sets the stop signal.
    pub fn stop_signal(&mut self, sig: i32) -> &mut Self {
        self.push("stopsignal", &sig.to_string())
    }

    /// Runs a healthcheck and reports it (`run --health`).
    pub fn health(&mut self, h: &crate::Health) -> &mut Self {
        let mut v = format!(
            "{} {} {} {}",
            h.interval_ms, h.timeout_ms, h.start_ms, h.retries
        );
        for a in &h.argv {
            v.push(' ');
            v.push_str(&field(a));
        }
        self.push("health", &v)
    }

    /// docker run --init.
    pub fn init(&mut self, on: bool) -> &mut Self {
        self.push("init", flag(on))
    }

    /// Give the workload a pseudo-terminal (docker run -t) of `rows` x `cols` when known.
    pub fn tty(&mut self, on: bool, winsize: Option<(u16, u16)>) -> &mut Self {
        self.push("tty", flag(on));
        if let Some((rows, cols)) = winsize.filter(|_| on) {
            self.push("winsize", &format!("{rows} {cols}"));
        }
        self
    }

    /// Forward stdin.
    pub fn stdin(&mut self, on: bool) -> &mut Self {
        self.push("stdin", flag(on))
    }

    /// Force /etc/hosts and /etc/resolv.conf.
    pub fn force_etc(&mut self, on: bool) -> &mut Self {
        self.push("etc", flag(on))
    }

    /// The root disk's writes are discarded when the VM stops (attached copy-on-write): the
    /// init skips flushing it at power-off.
    pub fn ephemeral(&mut self, on: bool) -> &mut Self {
        self.push("ephemeral", flag(on))
    }

    /// Appends these lines to `doc`, a document from [`Overlay::render`] (an empty `doc`
    /// gets the header), so later lines override earlier ones.
    pub fn append_to(&self, doc: &str) -> String {
        if doc.is_empty() {
            return self.render();
        }
        let mut s = doc.to_string();
        if !s.ends_with('\n') {
            s.push('\n');
        }
        for l in &self.lines {
            s.push_str(l);
            s.push('\n');
        }
        s
    }

    /// The document.
    pub fn render(&self) -> String {
        let mut s = String::from(HEADER);
        s.push('\n');
        for l in &self.lines {
            s.push_str(l);
            s.push('\n');
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GuestConfig;

    #[test]
    fn health_roundtrips_through_an_overlay() {
        let h = crate::Health {
            argv: vec!["sh".into(), "-c".into(), "wget -q -O- localhost:80 ".into()],
            interval_ms: 5000,
            timeout_ms: 2000,
            start_ms: 100,
            retries: 3,
        };
        let mut base = GuestConfig::default();
        base.apply(Overlay::new().health(&h).render().as_str())
            .expect("applies");
        assert_eq!(base.health, Some(h));
        for bad in [
            "health 0 1 0 3 true",
            "health 1 1 0 3",
            "health x 1 0 3 true",
        ] {
            let doc = format!("{}\n{bad}\n", crate::config::HEADER);
            assert!(GuestConfig::parse(&doc).is_err(), "{bad}");
        }
    }

    #[test]
    fn tty_and_winsize_apply_and_bad_sizes_are_refused() {
        let mut c = GuestConfig::default();
        c.apply(&Overlay::new().tty(true, Some((40, 100))).render())
            .expect("tty");
        assert!(c.tty);
        assert_eq!(c.winsize, Some((40, 100)));
        // without a host terminal no size is sent
        let doc = Overlay::new().tty(true, None).render();
        assert!(!doc.contains("winsize"));
        let mut d = GuestConfig::default();
        for bad in ["0 80", "24", "24 x", "70000 80"] {
            let doc = format!("{HEADER}\nwinsize {bad}\n");
            assert!(d.apply(&doc).is_err(), "{bad}");
        }
        assert_eq!(d.winsize, None);
    }

    #[test]
    fn ephemeral_appends_to_a_rendered_overlay() {
        let doc = Overlay::new().argv(&["true".into()]).render();
        let both = Overlay::new().ephemeral(true).append_to(&doc);
        let c = GuestConfig::parse(&both).expect("parses");
        assert!(c.ephemeral);
        assert_eq!(c.argv, vec!["true"]);
        // an empty document gets the header; without the key the root is flushed as before
        assert!(
            GuestConfig::parse(&Overlay::new().ephemeral(true).append_to(""))
                .expect("alone")
                .ephemeral
        );
        assert!(!GuestConfig::parse(&doc).expect("plain").ephemeral);
    }

    #[test]
    fn overlay_applies() {
        let mut base =
            GuestConfig::parse("oci2vm-config 1\narg sh\nenv A=1\nworkdir /x\n").expect("base");
        let mut o = Overlay::new();
        o.argv(&["echo".into(), "a b".into()])
            .env("B=2")
            .user("1000:1000")
            .network(&Network::qemu_user())
            .dns([10, 0, 2, 3])
            .mount(&Mount {
                kind: "virtiofs".into(),
                tag: "v0".into(),
                path: "/my data".into(),
                readonly: false,
            })
            .rlimit(&Rlimit {
                name: "core".into(),
                soft: 0,
                hard: u64::MAX,
            })
            .stop_signal(2)
            .init(true)
            .stdin(true)
            .force_etc(true)
            .hostname("h")
            .workdir("/w");
        base.apply(&o.render()).expect("apply");
        assert_eq!(base.argv, vec!["echo", "a b"]);
        assert_eq!(base.env, vec!["A=1", "B=2"]);
        assert_eq!(
            (
                base.user.as_str(),
                base.workdir.as_str(),
                base.hostname.as_str()
            ),
            ("1000:1000", "/w", "h")
        );
        assert_eq!(base.network, Network::qemu_user());
        assert_eq!(base.mounts[0].path, "/my data");
        assert_eq!(base.rlimits.len(), 1);
        assert!(base.init && base.stdin && base.force_etc);
        assert_eq!(base.stop_signal, 2);
        let mut same = base.clone();
        same.apply(&Overlay::new().render()).expect("empty overlay");
        assert_eq!(same, base);
    }
}
