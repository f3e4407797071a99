//! Kernel modules for the initramfs: which files, in which order, decompressed.
//!
//! ```text
//! ELF64 little-endian relocatable (.ko):
//!   0x28 u64 e_shoff   0x3A u16 e_shentsize   0x3C u16 e_shnum   0x3E u16 e_shstrndx
//!   section header (64 bytes): 0x00 u32 sh_name, 0x18 u64 sh_offset, 0x20 u64 sh_size
//!   ".modinfo" section: NUL-separated "key=value" strings; "depends=a,b" lists the modules
//!   whose symbols this one uses
//! ```
//!
//! Dependencies come from each module's own `.modinfo` `depends=` field, not `modules.dep`:
//! Debian's kernel packages ship no `modules.dep` until `depmod` runs in postinst (and an
//! extracted or foreign kernel may never have had it), so reading the ELF needs no depmod and
//! no root. Modules are found by walking the modules directory (`-` and `_` are the same in
//! names); built-in ones are listed in `modules.builtin` and skipped. `.ko.xz`, `.ko.zst` and
//! `.ko.gz` are decompressed here, so the init only ever calls `finit_module` on plain ELF.
//! Spec: ELF (System V gABI), `kernel/module/main.c`, `scripts/mod/modpost.c`.

use super::GuestError;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Modules the guest cannot boot without (unless built in); group `core`.
pub const REQUIRED: [&str; 4] = ["virtio_mmio", "virtio_blk", "virtio_console", "ext4"];
/// Modules shipped when present, with the group that tells the init when to load them:
/// `pci` when the guest has a PCI bus (q35), `rng` when it has a virtio entropy device, `net`
/// when eth0 is configured, `fs` when volumes are mounted. Loading only what a run needs keeps
/// boots short.
pub const OPTIONAL: [(&str, &str); 5] = [
    ("virtio_rng", "rng"),
    ("virtio_pci", "pci"),
    ("virtio_net", "net"),
    ("fuse", "fs"),
    ("virtiofs", "fs"),
];

/// Every group, in the order the init loads them (`core` first and always).
pub const GROUPS: [&str; 5] = ["core", "pci", "rng", "net", "fs"];

/// Canonical module name: file stem without `.ko*`, `-` replaced by `_`.
pub fn canonical(name: &str) -> String {
    let stem = name.split(".ko").next().unwrap_or(name);
    stem.replace('-', "_")
}

fn rd(b: &[u8], off: usize, n: usize) -> Option<u64> {
    let s = b.get(off..off.checked_add(n)?)?;
    Some(
        s.iter()
            .rev()
            .fold(0u64, |acc, &x| (acc << 8) | u64::from(x)),
    )
}

/// The `.modinfo` strings of a module ELF image (empty when it has none).
pub fn modinfo(elf: &[u8]) -> Option<Vec<String>> {
    if elf.get(0..6) != Some(b"\x7fELF\x02\x01") {
        return None;
    }
    let shoff = usize::try_from(rd(elf, 0x28, 8)?).ok()?;
    let shentsize = rd(elf, 0x3a, 2)? as usize;
    let shnum = rd(elf, 0x3c, 2)? as usize;
    let shstrndx = rd(elf, 0x3e, 2)? as usize;
    if shentsize < 0x28 {
        return None;
    }
    let sh = |i: usize| -> Option<(usize, usize, usize)> {
        let base = shoff.checked_add(i.checked_mul(shentsize)?)?;
        Some((
            rd(elf, base, 4)? as usize,
            usize::try_from(rd(elf, base + 0x18, 8)?).ok()?,
            usize::try_from(rd(elf, base + 0x20, 8)?).ok()?,
        ))
    };
    let (_, stroff, strsize) = sh(shstrndx)?;
    let strtab = elf.get(stroff..stroff.checked_add(strsize)?)?;
    for i in 0..shnum {
        let (name, off, size) = sh(i)?;
        let n = strtab.get(name..)?;
        let n = &n[..n.iter().position(|&b| b == 0)?];
        if n == b".modinfo" {
            let data = elf.get(off..off.checked_add(size)?)?;
            return Some(
                data.split(|&b| b == 0)
                    .filter(|s| !s.is_empty())
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect(),
            );
        }
    }
    Some(Vec::new())
}

/// Reads a module file, decompressing `.xz`, `.zst` and `.gz`.
pub fn read_module(path: &Path) -> Result<Vec<u8>, GuestError> {
    let io = |e| GuestError::Io {
        path: path.to_path_buf(),
        source: e,
    };
    let raw = fs::read(path).map_err(io)?;
    let name = path.to_string_lossy();
    let mut out = Vec::new();
    if name.ends_with(".ko.zst") {
        zstd::stream::read::Decoder::new(&raw[..])
            .and_then(|mut d| d.read_to_end(&mut out))
            .map_err(io)?;
    } else if name.ends_with(".ko.gz") {
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(io)?;
    } else if name.ends_with(".ko.xz") {
        xz2::read::XzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| GuestError::Module {
                path: path.to_path_buf(),
                reason: format!("xz: {e}"),
            })?;
    } else {
        out = raw;
    }
    Ok(out)
}

/// One module to put in the initramfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleFile {
    /// Canonical name.
    pub name: String,
    /// Source file.
    pub path: PathBuf,
    /// Decompressed ELF image.
    pub image: Vec<u8>,
    /// The groups that need it (see [`GROUPS`]): its own and those of every module that
    /// depends on it, so a group loads whole whichever others are loaded; just `core` when
    /// core needs it (core is always loaded first).
    pub groups: Vec<&'static str>,
    /// Canonical names of the modules it depends on (`depends=`; built-ins excluded).
    pub depends: Vec<String>,
}

fn walk(dir: &Path, out: &mut BTreeMap<String, PathBuf>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            walk(&p, out);
        } else if let Some(n) = p.file_name().and_then(|n| n.to_str())
            && [".ko", ".ko.xz", ".ko.zst", ".ko.gz"]
                .iter()
                .any(|s| n.ends_with(s))
        {
            out.entry(canonical(n)).or_insert(p);
        }
    }
}

/// Resolves `required` and `optional` modules plus their dependencies from `dir`, in load
/// order (dependencies first). Built-in modules are skipped; a required module that is neither
/// built in nor found is an error. Each module records the groups that need it.
pub fn resolve(
    dir: &Path,
    required: &[&str],
    optional: &[(&str, &'static str)],
) -> Result<Vec<ModuleFile>, GuestError> {
    let builtin: BTreeSet<String> = fs::read_to_string(dir.join("modules.builtin"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.rsplit('/').next())
        .map(canonical)
        .collect();
    let mut files = BTreeMap::new();
    walk(dir, &mut files);
    let mut order: Vec<ModuleFile> = Vec::new();
    let mut seen = BTreeSet::new();
    // Depth-first, dependencies before dependants; `seen` guards against cycles. Returns
    // whether `name` is shipped (false: built in, or an optional module that is absent).
    fn visit(
        name: &str,
        files: &BTreeMap<String, PathBuf>,
        builtin: &BTreeSet<String>,
        seen: &mut BTreeSet<String>,
        order: &mut Vec<ModuleFile>,
        required: bool,
    ) -> Result<bool, GuestError> {
        let name = canonical(name);
        if builtin.contains(&name) {
            return Ok(false);
        }
        if !seen.insert(name.clone()) {
            return Ok(order.iter().any(|m| m.name == name));
        }
        let Some(path) = files.get(&name) else {
            return if required {
                Err(GuestError::ModuleMissing { name })
            } else {
                Ok(false)
            };
        };
        let image = read_module(path)?;
        let info = modinfo(&image).ok_or_else(|| GuestError::Module {
            path: path.clone(),
            reason: "not an ELF64 module".into(),
        })?;
        let mut depends = Vec::new();
        for deps in info.iter().filter_map(|kv| kv.strip_prefix("depends=")) {
            for d in deps.split(',').filter(|d| !d.is_empty()) {
                if visit(d, files, builtin, seen, order, true)? {
                    depends.push(canonical(d));
                }
            }
        }
        order.push(ModuleFile {
            name,
            path: path.clone(),
            image,
            groups: Vec::new(),
            depends,
        });
        Ok(true)
    }
    let mut roots: Vec<(String, &'static str)> = Vec::new();
    for r in required {
        if visit(r, &files, &builtin, &mut seen, &mut order, true)? {
            roots.push((canonical(r), "core"));
        }
    }
    for (o, group) in optional {
        if visit(o, &files, &builtin, &mut seen, &mut order, false)? {
            roots.push((canonical(o), group));
        }
    }
    // Each root marks itself and everything it needs with its group.
    for (root, group) in roots {
        let mut stack = vec![root];
        while let Some(n) = stack.pop() {
            let Some(m) = order.iter_mut().find(|m| m.name == n) else {
                continue;
            };
            if !m.groups.contains(&group) {
                m.groups.push(group);
                stack.extend(m.depends.iter().cloned());
            }
        }
    }
    for m in &mut order {
        if m.groups.contains(&"core") {
            m.groups = vec!["core"];
        }
        m.groups.sort_by_key(|g| GROUPS.iter().position(|x| x == g));
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_names() {
        assert_eq!(canonical("virtio-rng.ko"), "virtio_rng");
        assert_eq!(canonical("virtio_blk.ko.zst"), "virtio_blk");
        assert_eq!(canonical("ext4"), "ext4");
    }

    #[test]
    fn modinfo_rejects_garbage_without_panicking() {
        assert_eq!(modinfo(b""), None);
        assert_eq!(modinfo(b"\x7fELF\x02\x01"), None);
        let mut e = vec![0u8; 64];
        e[..6].copy_from_slice(b"\x7fELF\x02\x01");
        e[0x28..0x30].copy_from_slice(&u64::MAX.to_le_bytes());
        e[0x3a] = 64;
        e[0x3c] = 1;
        assert_eq!(modinfo(&e), None);
    }

    #[test]
    fn debian_cloud_kernel_order() {
        let version = crate::guest::kernel::newest(Path::new("/boot"), "-cloud-amd64")
            .and_then(|k| {
                Some(
                    k.file_name()?
                        .to_str()?
                        .strip_prefix("vmlinuz-")?
                        .to_string(),
                )
            })
            .unwrap_or_else(|| "<none>-cloud-amd64".into());
        let dir = Path::new("/lib/modules").join(version);
        let dir = dir.as_path();
        if !dir.is_dir() {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{} missing under CI", dir.display());
            }
            eprintln!("skipped: {} not present", dir.display());
            return;
        }
        let m = resolve(dir, &REQUIRED, &OPTIONAL).expect("resolve");
        let names: Vec<&str> = m.iter().map(|m| m.name.as_str()).collect();
        let pos = |n: &str| names.iter().position(|x| *x == n).unwrap_or(usize::MAX);
        assert!(!names.contains(&"ext4"), "ext4 is built in: {names:?}");
        let groups = |n: &str| m.iter().find(|x| x.name == n).map(|x| x.groups.clone());
        assert_eq!(
            (
                groups("virtio"),
                groups("net_failover"),
                groups("fuse"),
                groups("virtio_pci_modern_dev"),
                groups("virtio_rng"),
            ),
            (
                Some(vec!["core"]),
                Some(vec!["net"]),
                Some(vec!["fs"]),
                Some(vec!["pci"]),
                Some(vec!["rng"])
            )
        );
        for (dep, user) in [
            ("virtio_ring", "virtio"),
            ("virtio", "virtio_blk"),
            ("virtio", "virtio_mmio"),
            ("fuse", "virtiofs"),
            ("net_failover", "virtio_net"),
            ("virtio", "virtio_console"),
        ] {
            assert!(
                pos(dep) < pos(user) && pos(user) != usize::MAX,
                "{dep} before {user}: {names:?}"
            );
        }
        // Cross-check with depmod's modules.dep when it exists.
        if let Ok(dep) = fs::read_to_string(dir.join("modules.dep")) {
            let line = dep
                .lines()
                .find(|l| l.starts_with("kernel/drivers/net/virtio_net.ko:"))
                .expect("line");
            for d in line.split_whitespace().skip(1) {
                let n = canonical(d.rsplit('/').next().unwrap_or(d));
                assert!(pos(&n) < pos("virtio_net"), "{n}");
            }
        }
    }

    /// A relocatable ELF64 whose only content is a `.modinfo` section with `depends=DEPS`.
    fn fake_module(deps: &str) -> Vec<u8> {
        let shstr = b"\0.shstrtab\0.modinfo\0";
        let info = format!("license=GPL\0depends={deps}\0");
        let mut e = vec![0u8; 64];
        e[..6].copy_from_slice(b"\x7fELF\x02\x01");
        let shstr_off = e.len();
        e.extend_from_slice(shstr);
        let info_off = e.len();
        e.extend_from_slice(info.as_bytes());
        let shoff = e.len();
        e[0x28..0x30].copy_from_slice(&(shoff as u64).to_le_bytes());
        e[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        e[0x3c..0x3e].copy_from_slice(&3u16.to_le_bytes());
        e[0x3e..0x40].copy_from_slice(&1u16.to_le_bytes());
        let header = |name: u32, off: usize, size: usize| {
            let mut h = vec![0u8; 64];
            h[..4].copy_from_slice(&name.to_le_bytes());
            h[0x18..0x20].copy_from_slice(&(off as u64).to_le_bytes());
            h[0x20..0x28].copy_from_slice(&(size as u64).to_le_bytes());
            h
        };
        e.extend(header(0, 0, 0));
        e.extend(header(1, shstr_off, shstr.len()));
        e.extend(header(11, info_off, info.len()));
        e
    }

    #[test]
    fn a_dependency_shared_by_optional_groups_is_in_each() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, deps) in [
            ("blk", "ring"),
            ("ring", ""),
            ("shared", ""),
            ("net", "shared,ring"),
            ("fsmod", "shared"),
        ] {
            fs::write(dir.path().join(format!("{name}.ko")), fake_module(deps)).expect("write");
        }
        fs::write(
            dir.path().join("modules.builtin"),
            "kernel/fs/ext4/ext4.ko\n",
        )
        .expect("w");
        let m = resolve(
            dir.path(),
            &["blk", "ext4"],
            &[("net", "net"), ("fsmod", "fs")],
        )
        .expect("resolve");
        let got: Vec<(&str, Vec<&str>)> = m
            .iter()
            .map(|m| (m.name.as_str(), m.groups.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("ring", vec!["core"]),
                ("blk", vec!["core"]),
                ("shared", vec!["net", "fs"]),
                ("net", vec!["net"]),
                ("fsmod", vec!["fs"]),
            ]
        );
        assert_eq!(m[3].depends, vec!["shared", "ring"]);
    }

    #[test]
    fn compressed_modules_decompress() {
        let dir = tempfile::tempdir().expect("tempdir");
        let elf = b"\x7fELF\x02\x01rest".to_vec();
        let z = zstd::encode_all(&elf[..], 3).expect("zstd");
        fs::write(dir.path().join("a.ko.zst"), z).expect("w");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &elf).expect("gz");
        fs::write(dir.path().join("b.ko.gz"), gz.finish().expect("gz")).expect("w");
        let mut xz = xz2::write::XzEncoder::new(Vec::new(), 6);
        std::io::Write::write_all(&mut xz, &elf).expect("xz");
        fs::write(dir.path().join("c.ko.xz"), xz.finish().expect("xz")).expect("w");
        for f in ["a.ko.zst", "b.ko.gz", "c.ko.xz"] {
            assert_eq!(read_module(&dir.path().join(f)).expect(f), elf, "{f}");
        }
    }
}
