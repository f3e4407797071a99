//! Kernel command line keys read by the init.
//!
//! ```text
//! oci2vm.cfg=b64:<base64url of a config document>   override applied after /.oci2vm/config
//! oci2vm.cfg=file:<absolute path in the initramfs>  same, for documents too long for the line
//! oci2vm.root=/dev/vdb                               root device override
//! oci2vm.debug=1                                     boot steps logged to the kernel console
//! oci2vm.console=1                                   no virtio-serial ports: the workload's
//!                                                    stdout/stderr go to the kernel console
//! ```
//!
//! `oci2vm.console=1` is for VMMs other than ours (the `oci2vm assets` outputs: Firecracker,
//! Cloud Hypervisor, qemu.sh, libvirt), which give the guest a serial console and no control
//! channel; the init then prints the exit status as `OCI2VM_EXIT=<status>` on the console.
//!
//! The x86 kernel command line is limited to 2048 bytes; the host switches to `file:` (an
//! extra uncompressed cpio segment appended to the initramfs) when `b64:` would not fit.
//! Unknown `oci2vm.*` keys are ignored (older init, newer host); other words are the kernel's.

use crate::codec::{b64_decode, b64_encode};

/// Where the override document comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// The document itself.
    Inline(String),
    /// A file in the initramfs.
    File(String),
}

/// The `oci2vm.*` keys of a kernel command line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CmdlineArgs {
    /// Config override.
    pub config: Option<ConfigSource>,
    /// Root device override.
    pub root: Option<String>,
    /// Verbose boot.
    pub debug: bool,
    /// Standalone boot: stdio on the kernel console, no virtio-serial ports.
    pub console: bool,
}

/// Key for the config override.
pub const KEY_CFG: &str = "oci2vm.cfg";
/// Key for the root device override.
pub const KEY_ROOT: &str = "oci2vm.root";
/// Key for verbose boot.
pub const KEY_DEBUG: &str = "oci2vm.debug";
/// Key for a standalone boot (stdio on the console).
pub const KEY_CONSOLE: &str = "oci2vm.console";

/// Room we leave for the kernel's own parameters when deciding between `b64:` and `file:`.
pub const MAX_INLINE_CONFIG: usize = 1400;

impl CmdlineArgs {
    /// Parses `/proc/cmdline`. Malformed values are reported, not ignored.
    pub fn parse(cmdline: &str) -> Result<Self, &'static str> {
        let mut out = CmdlineArgs::default();
        for word in cmdline.split_ascii_whitespace() {
            let Some((k, v)) = word.split_once('=') else {
                continue;
            };
            match k {
                KEY_CFG => {
                    out.config = Some(if let Some(b) = v.strip_prefix("b64:") {
                        let bytes = b64_decode(b).ok_or("oci2vm.cfg: bad base64")?;
                        let text = String::from_utf8(bytes).map_err(|_| "oci2vm.cfg: not utf-8")?;
                        ConfigSource::Inline(text)
                    } else if let Some(p) = v.strip_prefix("file:") {
                        if !p.starts_with('/') {
                            return Err("oci2vm.cfg: file path not absolute");
                        }
                        ConfigSource::File(p.to_string())
                    } else {
                        return Err("oci2vm.cfg: expected b64: or file:");
                    })
                }
                KEY_ROOT => {
                    if !v.starts_with("/dev/") {
                        return Err("oci2vm.root: not a /dev path");
                    }
                    out.root = Some(v.to_string());
                }
                KEY_DEBUG => out.debug = v == "1",
                KEY_CONSOLE => out.console = v == "1",
                _ => {}
            }
        }
        Ok(out)
    }

    /// The whole kernel command line for our init: the serial console, reboot on panic (the
    /// VMMs run with no-reboot, so a panic ends the VM), `quiet` unless debugging, then the
    /// `oci2vm.*` keys. The launcher (`oci2vm run`) and the emitted VMM configs
    /// (`oci2vm assets`) both use it; VMM-specific words are appended by them.
    pub fn kernel_cmdline(&self) -> String {
        let mut words = vec!["console=ttyS0".to_string(), "panic=-1".into()];
        if !self.debug {
            words.push("quiet".into());
        }
        let own = self.render();
        if !own.is_empty() {
            words.push(own);
        }
        words.join(" ")
    }

    /// Renders the keys as kernel command line words (space-separated, no leading space).
    pub fn render(&self) -> String {
        let mut words = Vec::new();
        match &self.config {
            Some(ConfigSource::Inline(t)) => {
                words.push(format!("{KEY_CFG}=b64:{}", b64_encode(t.as_bytes())))
            }
            Some(ConfigSource::File(p)) => words.push(format!("{KEY_CFG}=file:{p}")),
            None => {}
        }
        if let Some(r) = &self.root {
            words.push(format!("{KEY_ROOT}={r}"));
        }
        if self.debug {
            words.push(format!("{KEY_DEBUG}=1"));
        }
        if self.console {
            words.push(format!("{KEY_CONSOLE}=1"));
        }
        words.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn roundtrip() {
        let a = CmdlineArgs {
            config: Some(ConfigSource::Inline("oci2vm-config 1\narg x y\n".into())),
            root: Some("/dev/vdb".into()),
            debug: true,
            console: true,
        };
        let line = format!("console=ttyS0 panic=-1 {} quiet", a.render());
        assert_eq!(CmdlineArgs::parse(&line), Ok(a));
        let f = CmdlineArgs {
            config: Some(ConfigSource::File("/oci2vm-override".into())),
            ..Default::default()
        };
        assert_eq!(CmdlineArgs::parse(&f.render()), Ok(f));
    }

    #[test]
    fn kernel_cmdline_carries_console_and_keys() {
        let a = CmdlineArgs {
            console: true,
            ..Default::default()
        };
        assert_eq!(
            a.kernel_cmdline(),
            "console=ttyS0 panic=-1 quiet oci2vm.console=1"
        );
        assert_eq!(CmdlineArgs::parse(&a.kernel_cmdline()), Ok(a));
        let d = CmdlineArgs {
            debug: true,
            ..Default::default()
        };
        assert_eq!(d.kernel_cmdline(), "console=ttyS0 panic=-1 oci2vm.debug=1");
    }

    #[test]
    fn rejects_bad_values() {
        for bad in [
            "oci2vm.cfg=zz",
            "oci2vm.cfg=b64:%%",
            "oci2vm.cfg=file:rel",
            "oci2vm.root=vda",
        ] {
            assert!(CmdlineArgs::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            CmdlineArgs::parse("oci2vm.future=1 ro"),
            Ok(CmdlineArgs::default())
        );
    }

    proptest! {
        #[test]
        fn never_panics(s in ".*") {
            let _ = CmdlineArgs::parse(&s);
            let _ = CmdlineArgs::parse(&format!("oci2vm.cfg=b64:{s}"));
        }
    }
}
