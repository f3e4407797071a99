//! Boot steps inside the initramfs: API filesystems, kernel modules, devices, ports.

use crate::sys;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

/// A mount the init makes: source, target, fstype, flags, data.
type MountSpec = (
    &'static str,
    &'static str,
    &'static str,
    libc::c_ulong,
    &'static str,
);

const NOSUID_NODEV_NOEXEC: libc::c_ulong = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;

/// The API filesystems of the initramfs (moved into the root later).
pub const INITRAMFS_MOUNTS: [MountSpec; 3] = [
    ("proc", "/proc", "proc", NOSUID_NODEV_NOEXEC, ""),
    ("sysfs", "/sys", "sysfs", NOSUID_NODEV_NOEXEC, ""),
    ("devtmpfs", "/dev", "devtmpfs", libc::MS_NOSUID, "mode=0755"),
];

/// Mounts made in the root filesystem after switching to it (as Docker provides them).
pub const ROOT_MOUNTS: [MountSpec; 2] = [
    (
        "devpts",
        "/dev/pts",
        "devpts",
        libc::MS_NOSUID | libc::MS_NOEXEC,
        "newinstance,ptmxmode=0666,mode=0620,gid=5",
    ),
    (
        "shm",
        "/dev/shm",
        "tmpfs",
        NOSUID_NODEV_NOEXEC,
        "mode=1777,size=65536k",
    ),
];

/// Mounts `specs`, creating each target directory first.
pub fn mount_all(specs: &[MountSpec]) -> io::Result<()> {
    for &(src, target, fstype, flags, data) in specs {
        let _ = fs::create_dir_all(target);
        sys::mount(src, target, fstype, flags, data)
            .map_err(|e| io::Error::new(e.kind(), format!("mount {fstype} on {target}: {e}")))?;
    }
    Ok(())
}

/// Mounts a tmpfs on `target` only when it is missing or empty, so image content is never
/// hidden (Docker leaves /run and /tmp to the image; the VM needs them writable).
pub fn tmpfs_if_empty(target: &str, mode: &str) -> io::Result<()> {
    let empty = match fs::read_dir(target) {
        Ok(mut d) => d.next().is_none(),
        Err(_) => fs::create_dir_all(target).is_ok(),
    };
    if empty {
        sys::mount(
            "tmpfs",
            target,
            "tmpfs",
            libc::MS_NOSUID | libc::MS_NODEV,
            mode,
        )?;
    }
    Ok(())
}

/// The module files of the initramfs, in load order, by group (see `order` in the
/// initramfs: `NAME.ko GROUP` per line, `core` when the group is missing).
#[derive(Debug, Default)]
pub struct Modules {
    entries: Vec<(String, String)>,
}

impl Modules {
    /// Reads the order file (absent = no modules).
    pub fn read(order: &str) -> io::Result<Modules> {
        let list = match fs::read_to_string(order) {
            Ok(l) => l,
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        let entries = list
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                let file = w.next()?.to_string();
                Some((file, w.next().unwrap_or("core").to_string()))
            })
            .collect();
        Ok(Modules { entries })
    }

    /// Opens the files of `group` (kept open across switch_root, loaded later by fd).
    pub fn open(&self, dir: &str, group: &str) -> io::Result<Vec<(String, File)>> {
        self.entries
            .iter()
            .filter(|(_, g)| g == group)
            .map(|(f, _)| {
                let path = format!("{dir}/{f}");
                File::open(&path)
                    .map(|fd| (path.clone(), fd))
                    .map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))
            })
            .collect()
    }
}

/// Loads opened modules in order; ones already present (built in or loaded) are skipped.
pub fn load(files: Vec<(String, File)>) -> io::Result<usize> {
    let mut n = 0;
    for (path, f) in files {
        match sys::finit_module(&f.into()) {
            Ok(()) => n += 1,
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("finit_module {path}: {e}"),
                ));
            }
        }
    }
    Ok(n)
}

/// True when the guest has a PCI bus with devices (q35; microvm has none).
pub fn has_pci() -> bool {
    fs::read_dir("/sys/bus/pci/devices").is_ok_and(|mut d| d.next().is_some())
}

/// Polls `probe` every 5 ms until it yields a value or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = probe() {
            return Some(v);
        }
        if start.elapsed() >= timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The device node of the virtio-serial port named `name` (from /sys/class/virtio-ports).
pub fn find_port(name: &str) -> Option<String> {
    for entry in fs::read_dir("/sys/class/virtio-ports").ok()?.flatten() {
        let n = fs::read_to_string(entry.path().join("name")).unwrap_or_default();
        if n.trim_end() == name {
            let dev = format!("/dev/{}", entry.file_name().to_string_lossy());
            if Path::new(&dev).exists() {
                return Some(dev);
            }
        }
    }
    None
}

/// Opens a port device read-write.
pub fn open_port(dev: &str) -> io::Result<File> {
    OpenOptions::new().read(true).write(true).open(dev)
}
