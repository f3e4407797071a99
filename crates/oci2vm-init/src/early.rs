//! Boot steps inside the initramfs: API filesystems, kernel modules, devices, ports.

use crate::sys;
use std::cell::OnceCell;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
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

/// The virtio device ID of an entropy source (virtio spec 5.4).
pub const VIRTIO_ID_RNG: u32 = 4;

/// True when a virtio device of type `id` is present (`/sys/bus/virtio/devices/*/device`
/// holds it as `0x0004`); its transport's module must be loaded.
pub fn has_virtio_device(id: u32) -> bool {
    virtio_device_in(Path::new("/sys/bus/virtio/devices"), id)
}

fn virtio_device_in(devices: &Path, id: u32) -> bool {
    let Ok(dir) = fs::read_dir(devices) else {
        return false;
    };
    dir.flatten().any(|e| {
        fs::read_to_string(e.path().join("device"))
            .ok()
            .and_then(|s| u32::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok())
            == Some(id)
    })
}

/// Waits for devices to appear: the kernel announces every device change on a uevent socket,
/// so a wait re-checks the moment something changed instead of on a timer. The socket opens
/// at the first wait whose device is not there yet (subscribed before the next check, so no
/// change is missed); while it is open the kernel builds a message for every uevent, so drop
/// the watch once the boot needs no more devices.
#[derive(Debug, Default)]
pub struct DeviceWatch {
    /// `None` inside: the socket could not be opened (waits poll instead).
    uevents: OnceCell<Option<OwnedFd>>,
}

/// The longest a wait sleeps between checks even without a uevent (a safety net; without
/// the socket, the polling interval).
const RECHECK: Duration = Duration::from_millis(10);

impl DeviceWatch {
    /// Calls `probe` until it yields a value or `timeout` passes, again after every uevent
    /// (and at least every [`RECHECK`]).
    pub fn wait_for<T>(
        &self,
        timeout: Duration,
        mut probe: impl FnMut() -> Option<T>,
    ) -> Option<T> {
        let start = Instant::now();
        if let Some(v) = probe() {
            return Some(v);
        }
        let uevents = self.uevents.get_or_init(|| sys::uevent_socket().ok());
        loop {
            if let Some(v) = probe() {
                return Some(v);
            }
            let left = timeout.saturating_sub(start.elapsed());
            if left.is_zero() {
                return None;
            }
            let nap = left.min(RECHECK);
            match uevents {
                Some(sock) => {
                    let ms = i32::try_from(nap.as_millis()).unwrap_or(i32::MAX).max(1);
                    if sys::poll_readable(&[sock.as_raw_fd()], ms).is_ok_and(|r| r[0]) {
                        sys::drain(sock);
                    }
                }
                None => std::thread::sleep(nap),
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_module_listed_under_two_groups_opens_in_each() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        for f in ["a.ko", "shared.ko", "net.ko", "fs.ko"] {
            fs::write(d.join(f), b"x").expect("write");
        }
        let order = d.join("order");
        fs::write(
            &order,
            "a.ko\nshared.ko net\nnet.ko net\nshared.ko fs\nfs.ko fs\n",
        )
        .expect("write");
        let m = Modules::read(&order.to_string_lossy()).expect("read");
        let names = |g: &str| -> Vec<String> {
            m.open(&d.to_string_lossy(), g)
                .expect("open")
                .into_iter()
                .map(|(p, _)| p.rsplit('/').next().unwrap_or_default().to_string())
                .collect()
        };
        assert_eq!(names("core"), vec!["a.ko"], "no group means core");
        assert_eq!(names("net"), vec!["shared.ko", "net.ko"]);
        assert_eq!(names("fs"), vec!["shared.ko", "fs.ko"]);
        assert!(names("rng").is_empty());
        let missing = Modules::read(&d.join("none").to_string_lossy()).expect("absent");
        assert!(missing.open("/x", "core").expect("open").is_empty());
    }

    #[test]
    fn virtio_devices_are_found_by_type() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(!virtio_device_in(&dir.path().join("none"), VIRTIO_ID_RNG));
        for (dev, id) in [("virtio0", "0x0002\n"), ("virtio1", "0x0003\n")] {
            fs::create_dir(dir.path().join(dev)).expect("mkdir");
            fs::write(dir.path().join(dev).join("device"), id).expect("write");
        }
        assert!(!virtio_device_in(dir.path(), VIRTIO_ID_RNG));
        assert!(virtio_device_in(dir.path(), 3));
        fs::create_dir(dir.path().join("virtio2")).expect("mkdir");
        fs::write(dir.path().join("virtio2/device"), "0x0004\n").expect("write");
        assert!(virtio_device_in(dir.path(), VIRTIO_ID_RNG));
    }

    #[test]
    fn waits_end_with_the_probe_or_the_timeout() {
        let watch = DeviceWatch::default();
        assert_eq!(watch.wait_for(Duration::ZERO, || Some(0)), Some(0));
        assert!(
            watch.uevents.get().is_none(),
            "no socket while devices are there"
        );
        let mut calls = 0;
        let got = watch.wait_for(Duration::from_secs(10), || {
            calls += 1;
            (calls == 3).then_some(calls)
        });
        assert_eq!(got, Some(3));
        let none: Option<()> = watch.wait_for(Duration::from_millis(30), || None);
        assert_eq!(none, None);
        let polling = DeviceWatch {
            uevents: OnceCell::from(None),
        };
        assert_eq!(polling.wait_for(Duration::ZERO, || Some(1)), Some(1));
    }
}
