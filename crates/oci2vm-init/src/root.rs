//! The root filesystem: mount it, switch into it, and give it an identity (hostname,
//! /etc/hosts, /etc/resolv.conf) and the shared directories.

use crate::sys;
use oci2vm_guest::{GuestConfig, RootDevice};
use std::fs;
use std::io;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

/// Where the root is mounted before the switch.
pub const NEWROOT: &str = "/newroot";

/// True once `dev` exists as a block device.
pub fn is_block(dev: &str) -> bool {
    fs::metadata(dev).is_ok_and(|m| m.file_type().is_block_device())
}

/// Mounts the root filesystem on [`NEWROOT`].
pub fn mount_root(root: &RootDevice) -> io::Result<()> {
    fs::create_dir_all(NEWROOT)?;
    let flags = if root.readonly { libc::MS_RDONLY } else { 0 };
    sys::mount(&root.device, NEWROOT, &root.fstype, flags, "")
}

/// switch_root: move /dev, /proc, /sys into the new root, make it `/`, chroot into it.
/// (pivot_root cannot be used from an initramfs; the initramfs' files stay in memory, which
/// costs only the init binary and the modules.)
pub fn switch_root() -> io::Result<()> {
    for m in ["/dev", "/proc", "/sys"] {
        let target = format!("{NEWROOT}{m}");
        let _ = fs::create_dir_all(&target);
        sys::mount(m, &target, "", libc::MS_MOVE, "")
            .map_err(|e| io::Error::new(e.kind(), format!("move {m}: {e}")))?;
    }
    std::env::set_current_dir(NEWROOT)?;
    sys::mount(".", "/", "", libc::MS_MOVE, "")?;
    sys::chroot(".")?;
    std::env::set_current_dir("/")
}

fn needs_write(path: &str, force: bool) -> bool {
    force || fs::metadata(path).map_or(true, |m| m.len() == 0)
}

/// The /etc/hosts Docker writes.
pub fn hosts_file(hostname: &str, addr: Option<[u8; 4]>) -> String {
    let mut s = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n\
         ff02::2\tip6-allrouters\n",
    );
    if !hostname.is_empty() {
        let a = addr.unwrap_or([127, 0, 1, 1]);
        s.push_str(&format!(
            "{}.{}.{}.{}\t{hostname}\n",
            a[0], a[1], a[2], a[3]
        ));
    }
    s
}

/// Sets the hostname and writes /etc/hosts, /etc/resolv.conf and /etc/hostname when the image
/// has none (or empty ones) or when the config forces it. A read-only root is not an error.
pub fn identity(cfg: &GuestConfig) -> io::Result<()> {
    if !cfg.hostname.is_empty() {
        sys::sethostname(&cfg.hostname)?;
    }
    let addr = match cfg.network {
        oci2vm_guest::Network::Static { addr, .. } => Some(addr),
        oci2vm_guest::Network::None => None,
    };
    let mut files = vec![("/etc/hosts", hosts_file(&cfg.hostname, addr))];
    if !cfg.dns.is_empty() {
        let ns: String = cfg
            .dns
            .iter()
            .map(|d| format!("nameserver {}.{}.{}.{}\n", d[0], d[1], d[2], d[3]))
            .collect();
        files.push(("/etc/resolv.conf", ns));
    }
    if !cfg.hostname.is_empty() {
        files.push(("/etc/hostname", format!("{}\n", cfg.hostname)));
    }
    for (path, text) in files {
        if !needs_write(path, cfg.force_etc) {
            continue;
        }
        let _ = fs::create_dir_all("/etc");
        match fs::write(path, text) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EROFS) => {}
            Err(e) => return Err(io::Error::new(e.kind(), format!("{path}: {e}"))),
        }
    }
    Ok(())
}

/// Mounts the shared directories (virtiofs tags) at their guest paths.
pub fn volumes(cfg: &GuestConfig) -> io::Result<()> {
    for m in &cfg.mounts {
        if !Path::new(&m.path).is_dir() {
            fs::create_dir_all(&m.path)
                .map_err(|e| io::Error::new(e.kind(), format!("mkdir {}: {e}", m.path)))?;
        }
        let flags = if m.readonly { libc::MS_RDONLY } else { 0 };
        sys::mount(&m.tag, &m.path, &m.kind, flags, "")
            .map_err(|e| io::Error::new(e.kind(), format!("mount {} {}: {e}", m.tag, m.path)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_lists_localhost_and_hostname() {
        let h = hosts_file("box", Some([10, 0, 2, 15]));
        assert!(h.starts_with("127.0.0.1\tlocalhost\n"));
        assert!(h.ends_with("10.0.2.15\tbox\n"));
        assert!(!hosts_file("", None).contains("127.0.1.1"));
    }
}
