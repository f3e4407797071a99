//! Pure parts of starting the workload: environment, PATH lookup, exit-status mapping.
//!
//! Docker (through runc) looks argv[0] up in the *container's* PATH, defaulting PATH to
//! [`DEFAULT_PATH`] when the image sets none, adds HOSTNAME and HOME (from passwd, else `/`)
//! when absent, and reports 127 when the executable is not found and 126 when it exists but
//! cannot be executed.

use oci2vm_guest::config::DEFAULT_PATH;

/// What a candidate path turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileCheck {
    /// Nothing there (or a directory).
    Missing,
    /// A file without execute permission for us.
    NotExecutable,
    /// Runnable.
    Executable,
}

/// Why a command cannot be started; the status is what `docker run` exits with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupError {
    /// Not found in PATH: status 127.
    NotFound(String),
    /// Found but not executable: status 126.
    NotExecutable(String),
}

impl LookupError {
    /// The exit status Docker reports.
    pub fn status(&self) -> i32 {
        match self {
            LookupError::NotFound(_) => 127,
            LookupError::NotExecutable(_) => 126,
        }
    }
}

impl std::fmt::Display for LookupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LookupError::NotFound(n) => {
                write!(f, "exec: \"{n}\": executable file not found in $PATH")
            }
            LookupError::NotExecutable(n) => write!(f, "exec: \"{n}\": permission denied"),
        }
    }
}

/// Resolves argv[0]: a name with a `/` is used as is; otherwise each PATH entry is tried in
/// order (an empty entry means the working directory, as in execvp).
pub fn lookup(
    name: &str,
    path: &str,
    check: impl Fn(&str) -> FileCheck,
) -> Result<String, LookupError> {
    if name.is_empty() {
        return Err(LookupError::NotFound(name.into()));
    }
    if name.contains('/') {
        return match check(name) {
            FileCheck::Executable => Ok(name.into()),
            FileCheck::NotExecutable => Err(LookupError::NotExecutable(name.into())),
            FileCheck::Missing => Err(LookupError::NotFound(name.into())),
        };
    }
    let mut saw_non_exec = false;
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let cand = format!("{}/{name}", dir.trim_end_matches('/'));
        match check(&cand) {
            FileCheck::Executable => return Ok(cand),
            FileCheck::NotExecutable => saw_non_exec = true,
            FileCheck::Missing => {}
        }
    }
    if saw_non_exec {
        Err(LookupError::NotExecutable(name.into()))
    } else {
        Err(LookupError::NotFound(name.into()))
    }
}

/// The status for an `execve` errno, as Docker reports it.
pub fn exec_errno_status(errno: i32) -> i32 {
    if errno == libc::ENOENT || errno == libc::ENOTDIR {
        127
    } else {
        126
    }
}

/// The final environment: the config's, plus PATH, HOSTNAME and HOME when absent.
pub fn environment(env: &[String], hostname: &str, home: &str) -> Vec<String> {
    let has = |k: &str| {
        env.iter()
            .any(|e| e.split_once('=').is_some_and(|(x, _)| x == k))
    };
    let mut out = env.to_vec();
    if !has("PATH") {
        out.insert(0, format!("PATH={DEFAULT_PATH}"));
    }
    if !has("HOSTNAME") && !hostname.is_empty() {
        out.push(format!("HOSTNAME={hostname}"));
    }
    if !has("HOME") {
        out.push(format!("HOME={home}"));
    }
    out
}

/// The value of `PATH` in an environment (Docker's default when unset).
pub fn path_of(env: &[String]) -> &str {
    env.iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH)
}

/// The program interpreter (`PT_INTERP`, e.g. `/lib64/ld-linux-x86-64.so.2`) named in the
/// first bytes of an ELF64 little-endian executable; `None` for static binaries, scripts,
/// other formats, or an interpreter path beyond `head`.
pub fn elf_interpreter(head: &[u8]) -> Option<String> {
    if head.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let num = |off: usize, n: usize| -> Option<usize> {
        let b = head.get(off..off.checked_add(n)?)?;
        usize::try_from(b.iter().rev().fold(0u64, |a, &x| (a << 8) | u64::from(x))).ok()
    };
    let (phoff, phentsize, phnum) = (num(0x20, 8)?, num(0x36, 2)?, num(0x38, 2)?);
    (0..phnum).find_map(|i| {
        let ph = phoff.checked_add(i.checked_mul(phentsize)?)?;
        if num(ph, 4)? != 3 {
            return None; // not PT_INTERP
        }
        let (off, len) = (num(ph + 8, 8)?, num(ph + 0x20, 8)?);
        let raw = head.get(off..off.checked_add(len)?)?;
        let path = raw.split(|&b| b == 0).next()?;
        (!path.is_empty()).then(|| String::from_utf8_lossy(path).into_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 header with one program header of type `ptype` pointing at `interp`.
    fn elf(ptype: u8, interp: &[u8]) -> Vec<u8> {
        let mut e = vec![0u8; 0x40 + 0x38];
        e[..6].copy_from_slice(b"\x7fELF\x02\x01");
        e[0x20] = 0x40; // e_phoff
        e[0x36] = 0x38; // e_phentsize
        e[0x38] = 1; // e_phnum
        e[0x40] = ptype;
        let off = e.len();
        e[0x48] = off as u8; // p_offset
        e[0x60] = interp.len() as u8; // p_filesz
        e.extend_from_slice(interp);
        e
    }

    #[test]
    fn elf_interpreter_of_dynamic_static_and_other_files() {
        assert_eq!(
            elf_interpreter(&elf(3, b"/lib64/ld-linux-x86-64.so.2\0")).as_deref(),
            Some("/lib64/ld-linux-x86-64.so.2")
        );
        assert_eq!(elf_interpreter(&elf(1, b"/x\0")), None, "PT_LOAD only");
        assert_eq!(elf_interpreter(b"#!/bin/sh\n"), None);
        assert_eq!(elf_interpreter(b"\x7fELF\x02\x01"), None, "truncated");
        let mut far = elf(3, b"/lib/ld.so\0");
        far.truncate(far.len() - 4);
        assert_eq!(elf_interpreter(&far), None, "interpreter beyond the head");
    }

    fn fs(p: &str) -> FileCheck {
        match p {
            "/bin/sh" | "/usr/bin/env" | "./local" | "/opt/x" => FileCheck::Executable,
            "/usr/local/bin/env" | "/data/noexec" | "/bin/noexec" => FileCheck::NotExecutable,
            _ => FileCheck::Missing,
        }
    }

    #[test]
    fn lookup_table() {
        assert_eq!(lookup("sh", DEFAULT_PATH, fs), Ok("/bin/sh".into()));
        assert_eq!(
            lookup("env", DEFAULT_PATH, fs),
            Ok("/usr/bin/env".into()),
            "skips non-exec"
        );
        assert_eq!(lookup("/opt/x", "", fs), Ok("/opt/x".into()));
        assert_eq!(lookup("local", "/nope::/bin", fs), Ok("./local".into()));
        assert_eq!(lookup("sh", "/bin/", fs), Ok("/bin/sh".into()));
        let nf = lookup("ghost", DEFAULT_PATH, fs).expect_err("missing");
        assert_eq!(
            (nf.status(), nf.to_string().contains("not found in $PATH")),
            (127, true)
        );
        assert_eq!(
            lookup("noexec", DEFAULT_PATH, fs).map_err(|e| e.status()),
            Err(126)
        );
        assert_eq!(
            lookup("/data/noexec", "", fs).map_err(|e| e.status()),
            Err(126)
        );
        assert_eq!(
            lookup("/data/ghost", "", fs).map_err(|e| e.status()),
            Err(127)
        );
        assert_eq!(
            lookup("", DEFAULT_PATH, fs).map_err(|e| e.status()),
            Err(127)
        );
    }

    #[test]
    fn errno_mapping() {
        assert_eq!(exec_errno_status(libc::ENOENT), 127);
        assert_eq!(exec_errno_status(libc::EACCES), 126);
        assert_eq!(exec_errno_status(libc::ENOEXEC), 126);
    }

    #[test]
    fn environment_defaults() {
        let e = environment(&[], "box", "/root");
        assert_eq!(
            e,
            vec![
                format!("PATH={DEFAULT_PATH}"),
                "HOSTNAME=box".into(),
                "HOME=/root".into()
            ]
        );
        let given = vec!["PATH=/x".to_string(), "HOME=/h".into(), "HOSTNAME=h".into()];
        assert_eq!(environment(&given, "box", "/root"), given);
        assert_eq!(path_of(&given), "/x");
        assert_eq!(path_of(&[]), DEFAULT_PATH);
    }
}
