//! Per-VMM adaptation of the guest's kernel command line.
//!
//! The guest side builds one command line (`console=ttyS0 root=/dev/vda rw panic=-1 ...`);
//! each VMM needs a few parameters changed:
//!
//! | VMM | console | root disk | extra |
//! |---|---|---|---|
//! | Firecracker | `ttyS0` (8250 UART) | virtio-mmio → `/dev/vda` | `reboot=k` (FC exits on the guest's reboot), `pci=off` |
//! | Cloud Hypervisor | `ttyS0` (`--serial tty`; `hvc0` needs the virtio_console module) | virtio-pci → `/dev/vda` | — |
//! | QEMU microvm / q35, libvirt | `ttyS0` | virtio-mmio / virtio-pci → `/dev/vda` | microvm: `tsc_early_khz=` (added by qemu.sh) |
//!
//! Tokens follow the kernel's own splitting (`lib/cmdline.c` `next_arg`): spaces separate
//! parameters, double quotes may enclose spaces in a value, and everything after a bare `--`
//! goes to init untouched.

/// Splits a command line into parameters the way the kernel does (quotes kept in the token).
pub fn split(cmdline: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_quote = false;
    for c in cmdline.chars() {
        if c == '"' {
            in_quote = !in_quote;
        }
        if c.is_ascii_whitespace() && !in_quote {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
        } else {
            cur.push(c);
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn key_of(token: &str) -> &str {
    token.split_once('=').map_or(token, |(k, _)| k)
}

/// Sets `key=value` for the kernel: every earlier `key=...` is removed and the new one takes
/// the place of the first (or is appended before `--`). `value` None removes the key.
pub fn set_param(cmdline: &str, key: &str, value: Option<&str>) -> String {
    let tokens = split(cmdline);
    let split_at = tokens
        .iter()
        .position(|t| t == "--")
        .unwrap_or(tokens.len());
    let (kernel, init) = tokens.split_at(split_at);
    let mut out: Vec<String> = Vec::with_capacity(tokens.len() + 1);
    let mut placed = false;
    for t in kernel {
        if key_of(t) == key {
            if !placed {
                if let Some(v) = value {
                    out.push(format!("{key}={v}"));
                }
                placed = true;
            }
        } else {
            out.push(t.clone());
        }
    }
    if !placed {
        if let Some(v) = value {
            out.push(format!("{key}={v}"));
        }
    }
    out.extend(init.iter().cloned());
    out.join(" ")
}

/// The value of `key` (the last one wins, as for most kernel parameters), before `--`.
pub fn get_param(cmdline: &str, key: &str) -> Option<String> {
    split(cmdline)
        .into_iter()
        .take_while(|t| t != "--")
        .filter(|t| key_of(t) == key)
        .last()
        .map(|t| {
            t.split_once('=')
                .map_or(String::new(), |(_, v)| v.to_string())
        })
}

/// The command line for Firecracker: serial console, reboot via the keyboard controller (the
/// only way a Firecracker guest makes the VMM exit), no PCI probing, root on `/dev/vda`.
pub fn for_firecracker(base: &str) -> String {
    let c = set_param(base, "console", Some("ttyS0"));
    let c = set_param(&c, "root", Some("/dev/vda"));
    let c = set_param(&c, "reboot", Some("k"));
    set_param(&c, "pci", Some("off"))
}

/// The command line for Cloud Hypervisor (`--serial tty --console off`): `ttyS0`.
pub fn for_cloud_hypervisor(base: &str) -> String {
    let c = set_param(base, "console", Some("ttyS0"));
    set_param(&c, "root", Some("/dev/vda"))
}

/// The command line for QEMU (microvm and q35) and libvirt: `ttyS0`, `/dev/vda`.
pub fn for_qemu(base: &str) -> String {
    let c = set_param(base, "console", Some("ttyS0"));
    set_param(&c, "root", Some("/dev/vda"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_keeps_quoted_values() {
        assert_eq!(
            split(r#"a=1  b="x y" c -- "init arg""#),
            vec!["a=1", r#"b="x y""#, "c", "--", r#""init arg""#]
        );
        assert!(split("   ").is_empty());
    }

    #[test]
    fn set_param_replaces_all_and_keeps_order() {
        let base = "console=tty0 root=/dev/sda console=ttyS1 quiet -- console=keep";
        assert_eq!(
            set_param(base, "console", Some("ttyS0")),
            "console=ttyS0 root=/dev/sda quiet -- console=keep"
        );
        assert_eq!(
            set_param(base, "console", None),
            "root=/dev/sda quiet -- console=keep"
        );
        assert_eq!(
            set_param("quiet -- x", "pci", Some("off")),
            "quiet pci=off -- x"
        );
        assert_eq!(set_param("", "root", Some("/dev/vda")), "root=/dev/vda");
    }

    #[test]
    fn get_param_ignores_init_arguments() {
        let c = "root=/dev/sda root=/dev/vda -- root=no";
        assert_eq!(get_param(c, "root").as_deref(), Some("/dev/vda"));
        assert_eq!(get_param("rw", "rw").as_deref(), Some(""));
        assert_eq!(get_param("rw", "ro"), None);
    }

    #[test]
    fn per_vmm_adaptation() {
        let base = "console=hvc0 root=/dev/sda1 rw panic=-1 oci2vm.x=\"a b\"";
        let fc = for_firecracker(base);
        assert_eq!(get_param(&fc, "console").as_deref(), Some("ttyS0"));
        assert_eq!(get_param(&fc, "root").as_deref(), Some("/dev/vda"));
        assert_eq!(get_param(&fc, "reboot").as_deref(), Some("k"));
        assert!(fc.contains("oci2vm.x=\"a b\""), "{fc}");
        let ch = for_cloud_hypervisor(base);
        assert_eq!(get_param(&ch, "console").as_deref(), Some("ttyS0"));
        assert_eq!(get_param(&ch, "pci"), None);
        assert_eq!(
            get_param(&for_qemu(base), "root").as_deref(),
            Some("/dev/vda")
        );
    }
}
