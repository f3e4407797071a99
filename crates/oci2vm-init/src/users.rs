//! User specs (`docker run -u`) resolved against the image's /etc/passwd and /etc/group.
//!
//! ```text
//! passwd: name:password:uid:gid:gecos:home:shell
//! group:  name:password:gid:member,member,...
//! spec:   "" | name | uid | name:group | uid:gid | name:gid | uid:group
//! ```
//!
//! Semantics follow runc's `user.GetExecUser`, which Docker uses: a name must exist in passwd,
//! a number need not; the primary group is the explicit group, else the passwd entry's, else 0;
//! supplementary groups (groups listing the user as a member) only when no group is given,
//! always preceded by the primary group as containerd does for Docker;
//! HOME is the passwd entry's home directory, else `/`. No NSS: the files are parsed here.

/// One /etc/passwd entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passwd {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Home directory.
    pub home: String,
}

/// One /etc/group entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Group name.
    pub name: String,
    /// Group id.
    pub gid: u32,
    /// Member login names.
    pub members: Vec<String>,
}

/// The resolved identity of the workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary group ids.
    pub groups: Vec<u32>,
    /// HOME.
    pub home: String,
}

/// A user spec that cannot be resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserError {
    /// A user name absent from /etc/passwd.
    NoSuchUser(String),
    /// A group name absent from /etc/group.
    NoSuchGroup(String),
    /// Malformed spec (empty part, too many colons, out-of-range number).
    BadSpec(String),
}

impl std::fmt::Display for UserError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UserError::NoSuchUser(u) => {
                write!(
                    f,
                    "unable to find user {u}: no matching entries in passwd file"
                )
            }
            UserError::NoSuchGroup(g) => {
                write!(
                    f,
                    "unable to find group {g}: no matching entries in group file"
                )
            }
            UserError::BadSpec(s) => write!(f, "invalid user spec {s:?}"),
        }
    }
}

/// Parses /etc/passwd; malformed lines are skipped (as libc does).
pub fn parse_passwd(text: &str) -> Vec<Passwd> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 4 || f[0].is_empty() {
                return None;
            }
            Some(Passwd {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f.get(5).copied().unwrap_or("").to_string(),
            })
        })
        .collect()
}

/// Parses /etc/group; malformed lines are skipped.
pub fn parse_group(text: &str) -> Vec<Group> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 3 || f[0].is_empty() {
                return None;
            }
            let members = f.get(3).map_or_else(Vec::new, |m| {
                m.split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            });
            Some(Group {
                name: f[0].to_string(),
                gid: f[2].parse().ok()?,
                members,
            })
        })
        .collect()
}

fn numeric(s: &str) -> Option<Result<u32, ()>> {
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.parse::<u32>().map_err(|_| ()))
}

/// Resolves a `-u` spec.
pub fn resolve(spec: &str, passwd: &[Passwd], groups: &[Group]) -> Result<Identity, UserError> {
    let bad = || UserError::BadSpec(spec.to_string());
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if group.is_some_and(|g| g.is_empty() || g.contains(':')) {
        return Err(bad());
    }
    let user = if user.is_empty() && group.is_none() {
        "0"
    } else {
        user
    };
    let entry = match numeric(user) {
        Some(Ok(uid)) => passwd.iter().find(|p| p.uid == uid),
        Some(Err(())) => return Err(bad()),
        None if user.is_empty() => return Err(bad()),
        None => Some(
            passwd
                .iter()
                .find(|p| p.name == user)
                .ok_or_else(|| UserError::NoSuchUser(user.to_string()))?,
        ),
    };
    let uid = match numeric(user) {
        Some(Ok(uid)) => uid,
        _ => entry.map_or(0, |p| p.uid),
    };
    let home = entry
        .map(|p| p.home.clone())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "/".into());
    let (gid, supplementary) = match group {
        Some(g) => {
            let gid = match numeric(g) {
                Some(Ok(gid)) => gid,
                Some(Err(())) => return Err(bad()),
                None => {
                    groups
                        .iter()
                        .find(|x| x.name == g)
                        .ok_or_else(|| UserError::NoSuchGroup(g.to_string()))?
                        .gid
                }
            };
            (gid, Vec::new())
        }
        None => {
            let gid = entry.map_or(0, |p| p.gid);
            let sup = match entry {
                Some(p) => groups
                    .iter()
                    .filter(|g| g.members.contains(&p.name))
                    .map(|g| g.gid)
                    .collect(),
                None => Vec::new(),
            };
            (gid, sup)
        }
    };
    // Docker (containerd's WithAdditionalGIDs) lists the primary group among the
    // supplementary ones, so `id` shows `groups=GID,...`.
    let mut all = vec![gid];
    all.extend(supplementary.into_iter().filter(|g| *g != gid));
    Ok(Identity {
        uid,
        gid,
        groups: all,
        home,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
        daemon:x:1:1:daemon:/usr/sbin:/bin/false\n\
        # comment\n\
        broken line\n\
        bad:x:notanumber:1::/:\n\
        nobody:x:65534:65534:nobody:/home:/bin/false\n\
        app:x:1000:1000::/home/app:/bin/sh\n\
        nohome:x:1001:1001\n";
    const GROUP: &str = "root:x:0:\n\
        daemon:x:1:\n\
        wheel:x:10:app,other\n\
        audio:x:29:app\n\
        nogroup:x:65534:\n\
        app:x:1000:\n\
        junk\n";

    fn r(spec: &str) -> Result<Identity, UserError> {
        resolve(spec, &parse_passwd(PASSWD), &parse_group(GROUP))
    }

    fn id(uid: u32, gid: u32, groups: &[u32], home: &str) -> Result<Identity, UserError> {
        Ok(Identity {
            uid,
            gid,
            groups: groups.to_vec(),
            home: home.into(),
        })
    }

    #[test]
    fn parsing_skips_malformed_lines() {
        assert_eq!(parse_passwd(PASSWD).len(), 5);
        assert_eq!(parse_group(GROUP).len(), 6);
        assert_eq!(parse_group(GROUP)[2].members, vec!["app", "other"]);
    }

    #[test]
    fn resolution_table() {
        assert_eq!(r(""), id(0, 0, &[0], "/root"));
        assert_eq!(r("root"), id(0, 0, &[0], "/root"));
        assert_eq!(r("app"), id(1000, 1000, &[1000, 10, 29], "/home/app"));
        assert_eq!(r("1000"), id(1000, 1000, &[1000, 10, 29], "/home/app"));
        assert_eq!(r("1000:1000"), id(1000, 1000, &[1000], "/home/app"));
        assert_eq!(r("app:wheel"), id(1000, 10, &[10], "/home/app"));
        assert_eq!(r("nobody"), id(65534, 65534, &[65534], "/home"));
        assert_eq!(r("4242"), id(4242, 0, &[0], "/"));
        assert_eq!(r("4242:4243"), id(4242, 4243, &[4243], "/"));
        assert_eq!(r("nohome"), id(1001, 1001, &[1001], "/"));
        assert_eq!(r("daemon:0"), id(1, 0, &[0], "/usr/sbin"));
    }

    #[test]
    fn resolution_errors() {
        assert_eq!(r("ghost"), Err(UserError::NoSuchUser("ghost".into())));
        assert_eq!(
            r("app:ghosts"),
            Err(UserError::NoSuchGroup("ghosts".into()))
        );
        for bad in ["app:", ":1", "1:2:3", "99999999999", "1:99999999999"] {
            assert!(matches!(r(bad), Err(UserError::BadSpec(_))), "{bad}");
        }
    }

    #[test]
    fn never_panics_on_garbage() {
        for s in [
            "",
            ":",
            "::",
            ":::\n:::",
            "a:b:c:d:e:f:g",
            "\u{0}:\u{0}:1:1",
        ] {
            let p = parse_passwd(s);
            let g = parse_group(s);
            let _ = resolve(s, &p, &g);
        }
    }
}
