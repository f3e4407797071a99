//! Finding the guest kernel and its modules directory.
//!
//! ```text
//! bzImage (x86 boot protocol, Documentation/arch/x86/boot.rst):
//!   0x202  "HdrS"                 header magic
//!   0x20E  u16 kernel_version     offset - 0x200 of a NUL-terminated string
//!                                 "6.1.0-56-cloud-amd64 (debian-kernel@...) #1 SMP ..."
//! ```
//!
//! Discovery: `--kernel PATH`, else `/boot/vmlinuz-$(uname -r)`, else the newest (by version
//! order) `/boot/vmlinuz-*`. Modules: `--modules DIR`, else `/lib/modules/VERSION`, where
//! VERSION comes from the bzImage header (or the `vmlinuz-VERSION` file name).

use super::GuestError;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

/// A kernel image and the modules built for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kernel {
    /// The bzImage.
    pub image: PathBuf,
    /// Its release string (`uname -r` in the guest).
    pub version: String,
    /// Its modules directory (`/lib/modules/VERSION`), when there is one.
    pub modules: Option<PathBuf>,
}

/// Reads the release string from a bzImage header.
pub fn bzimage_version(path: &Path) -> Result<Option<String>, GuestError> {
    let io = |e| GuestError::Io {
        path: path.to_path_buf(),
        source: e,
    };
    let mut head = Vec::new();
    fs::File::open(path)
        .map_err(io)?
        .take(64 * 1024)
        .read_to_end(&mut head)
        .map_err(io)?;
    if head.get(0x202..0x206) != Some(b"HdrS") {
        return Ok(None);
    }
    let Some(off) = head
        .get(0x20e..0x210)
        .map(|b| usize::from(u16::from_le_bytes([b[0], b[1]])))
    else {
        return Ok(None);
    };
    let start = off + 0x200;
    let Some(rest) = head.get(start..) else {
        return Ok(None);
    };
    let end = rest
        .iter()
        .position(|&b| b == 0 || b == b' ')
        .unwrap_or(rest.len());
    let v = String::from_utf8_lossy(&rest[..end]).into_owned();
    Ok((!v.is_empty()).then_some(v))
}

/// Splits a version into numeric and text runs so "6.1.10" sorts after "6.1.9".
fn version_key(v: &str) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    let mut num = String::new();
    let mut text = String::new();
    for c in v.chars() {
        if c.is_ascii_digit() {
            if !text.is_empty() {
                out.push((0, std::mem::take(&mut text)));
            }
            num.push(c);
        } else {
            if !num.is_empty() {
                out.push((num.parse().unwrap_or(u64::MAX), String::new()));
                num.clear();
            }
            text.push(c);
        }
    }
    if !num.is_empty() {
        out.push((num.parse().unwrap_or(u64::MAX), String::new()));
    }
    if !text.is_empty() {
        out.push((0, text));
    }
    out
}

/// The newest (by version order) `vmlinuz-VERSION` in `boot` whose VERSION ends with
/// `flavour` (e.g. `-cloud-amd64`; `""` for any).
pub fn newest(boot: &Path, flavour: &str) -> Option<PathBuf> {
    let mut found: Vec<(String, PathBuf)> = fs::read_dir(boot)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let v = name.strip_prefix("vmlinuz-")?.to_string();
            (v.ends_with(flavour) && e.path().is_file()).then(|| (v, e.path()))
        })
        .collect();
    found.sort_by_key(|(v, _)| version_key(v));
    found.pop().map(|(_, p)| p)
}

/// The kernel the boot tests use: `$OCI2VM_KERNEL`, else the newest Debian cloud kernel
/// (`linux-image-cloud-amd64`) or Ubuntu kvm kernel (`linux-image-kvm`) in /boot, which
/// `scripts/deps.sh` installs.
pub fn test_kernel() -> Option<PathBuf> {
    if let Some(k) = std::env::var_os("OCI2VM_KERNEL") {
        return Some(PathBuf::from(k));
    }
    let boot = Path::new("/boot");
    newest(boot, "-cloud-amd64").or_else(|| newest(boot, "-kvm"))
}

/// Picks the kernel: the explicit one, else the running kernel's, else the newest in `boot`.
pub fn discover(
    explicit: Option<&Path>,
    modules: Option<&Path>,
    boot: &Path,
    lib_modules: &Path,
) -> Result<Kernel, GuestError> {
    let image = match explicit {
        Some(p) => p.to_path_buf(),
        None => {
            let running = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
            let own = boot.join(format!("vmlinuz-{}", running.trim()));
            if !running.trim().is_empty() && own.is_file() {
                own
            } else {
                fs::read_dir(boot).map_err(|e| GuestError::Io {
                    path: boot.to_path_buf(),
                    source: e,
                })?;
                newest(boot, "").ok_or_else(|| GuestError::NoKernel {
                    path: boot.to_path_buf(),
                })?
            }
        }
    };
    if !image.is_file() {
        return Err(GuestError::NoKernel { path: image });
    }
    let from_name = image
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("vmlinuz-"))
        .map(str::to_string);
    let version = match bzimage_version(&image)? {
        Some(v) => v,
        None => from_name.unwrap_or_default(),
    };
    let modules = match modules {
        Some(m) => Some(m.to_path_buf()),
        None => {
            let m = lib_modules.join(&version);
            (!version.is_empty() && m.is_dir()).then_some(m)
        }
    };
    Ok(Kernel {
        image,
        version,
        modules,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_order() {
        let mut v = vec![
            "6.1.10-amd64",
            "6.1.9-amd64",
            "5.10.0-1",
            "6.1.0-56-cloud-amd64",
        ];
        v.sort_by_key(|s| version_key(s));
        assert_eq!(
            v,
            vec![
                "5.10.0-1",
                "6.1.0-56-cloud-amd64",
                "6.1.9-amd64",
                "6.1.10-amd64"
            ]
        );
    }

    #[test]
    fn bzimage_header_version() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("vmlinuz-x");
        let mut img = vec![0u8; 0x400];
        img[0x202..0x206].copy_from_slice(b"HdrS");
        img[0x20e..0x210].copy_from_slice(&0x100u16.to_le_bytes());
        img[0x300..0x317].copy_from_slice(b"6.1.0-test (x@y) #1 SMP");
        fs::write(&p, &img).expect("write");
        assert_eq!(
            bzimage_version(&p).expect("read"),
            Some("6.1.0-test".into())
        );
        fs::write(&p, b"not a kernel").expect("write");
        assert_eq!(bzimage_version(&p).expect("read"), None);
        let k = discover(None, None, dir.path(), dir.path()).expect("discover");
        assert_eq!((k.image, k.version, k.modules), (p, "x".to_string(), None));
    }

    #[test]
    fn debian_cloud_kernel_when_present() {
        let Some(p) = newest(Path::new("/boot"), "-cloud-amd64") else {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "no /boot/vmlinuz-*-cloud-amd64 under CI"
            );
            eprintln!("skipped: no Debian cloud kernel installed");
            return;
        };
        let k = discover(
            Some(&p),
            None,
            Path::new("/boot"),
            Path::new("/lib/modules"),
        )
        .expect("k");
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        assert_eq!(Some(k.version.as_str()), name.strip_prefix("vmlinuz-"));
        assert!(k.version.ends_with("-cloud-amd64"));
        assert!(k.modules.is_some());
    }

    #[test]
    fn newest_by_version_and_flavour() {
        let dir = tempfile::tempdir().expect("tempdir");
        for v in [
            "6.1.0-9-cloud-amd64",
            "6.1.0-10-cloud-amd64",
            "6.1.0-11-amd64",
        ] {
            fs::write(dir.path().join(format!("vmlinuz-{v}")), b"x").expect("write");
        }
        fs::write(dir.path().join("config-6.1.0-12-cloud-amd64"), b"x").expect("write");
        let name = |p: Option<PathBuf>| p.and_then(|p| Some(p.file_name()?.to_str()?.to_string()));
        assert_eq!(
            name(newest(dir.path(), "-cloud-amd64")).as_deref(),
            Some("vmlinuz-6.1.0-10-cloud-amd64")
        );
        assert_eq!(
            name(newest(dir.path(), "")).as_deref(),
            Some("vmlinuz-6.1.0-11-amd64")
        );
        assert_eq!(newest(dir.path(), "-kvm"), None);
    }
}
