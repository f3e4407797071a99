//! `firecracker.json`: Firecracker's `--config-file` (the `FullVmConfiguration` object of its
//! API, `src/firecracker/swagger/firecracker.yaml`).
//!
//! ```text
//! { "boot-source":   { kernel_image_path, initrd_path, boot_args },
//!   "drives":        [ { drive_id "rootfs", path_on_host, is_root_device false, is_read_only } ],
//!   "machine-config":{ vcpu_count 1..=32, mem_size_mib, smt false },
//!   "network-interfaces": [ { iface_id "eth0", host_dev_name TAP, guest_mac? } ]   (with --tap) }
//! ```
//!
//! Paths are relative, so it runs as `cd DIR && firecracker --no-api --config-file
//! firecracker.json`. The kernel is the ELF `vmlinux` (Firecracker does not load bzImages on
//! x86_64). `is_root_device` is false: our initramfs mounts `/dev/vda` itself (the command line
//! says `root=/dev/vda`), so Firecracker must not append its own `root=` argument.
//!
//! Guest kernel requirement: Firecracker announces its virtio-mmio devices on the kernel
//! command line, so the kernel needs `CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES=y` (Debian's cloud
//! kernel does not have it; Firecracker's CI kernels do).

use serde::Serialize;

use super::{AssetsError, AssetsPlan, cmdline};

/// The `iface_id` of the one network interface.
pub const IFACE_ID: &str = "eth0";
/// The `drive_id` of the root disk.
pub const ROOT_DRIVE_ID: &str = "rootfs";
/// Firecracker's vCPU limit (`MachineConfiguration.vcpu_count.maximum`).
pub const MAX_VCPUS: u32 = 32;

/// The config file, field names as Firecracker spells them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FirecrackerConfig {
    /// `boot-source`.
    #[serde(rename = "boot-source")]
    pub boot_source: BootSource,
    /// `drives`.
    pub drives: Vec<Drive>,
    /// `machine-config`.
    #[serde(rename = "machine-config")]
    pub machine_config: MachineConfig,
    /// `network-interfaces` (omitted without a tap).
    #[serde(rename = "network-interfaces", skip_serializing_if = "Vec::is_empty")]
    pub network_interfaces: Vec<NetworkInterface>,
}

/// `BootSource`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BootSource {
    /// The ELF kernel.
    pub kernel_image_path: String,
    /// The initramfs.
    pub initrd_path: String,
    /// The kernel command line.
    pub boot_args: String,
}

/// `Drive` (virtio-block variant).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Drive {
    /// Drive name.
    pub drive_id: String,
    /// The image file.
    pub path_on_host: String,
    /// Whether Firecracker should add `root=` for it (we do not).
    pub is_root_device: bool,
    /// Read-only block device.
    pub is_read_only: bool,
}

/// `MachineConfiguration`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MachineConfig {
    /// vCPUs, 1..=32.
    pub vcpu_count: u32,
    /// Memory in MiB.
    pub mem_size_mib: u32,
    /// Simultaneous multithreading (off: it needs an even vCPU count).
    pub smt: bool,
}

/// `NetworkInterface`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NetworkInterface {
    /// Interface name.
    pub iface_id: String,
    /// The host tap device.
    pub host_dev_name: String,
    /// Guest MAC address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guest_mac: Option<String>,
}

/// Builds the config object from the plan.
pub fn config(plan: &AssetsPlan) -> Result<FirecrackerConfig, AssetsError> {
    if plan.cpus == 0 || plan.cpus > MAX_VCPUS {
        return Err(AssetsError::OutOfRange {
            target: "firecracker.json",
            field: "vcpu_count",
            value: plan.cpus.into(),
            reason: "1..=32",
        });
    }
    if plan.memory_mib == 0 {
        return Err(AssetsError::OutOfRange {
            target: "firecracker.json",
            field: "mem_size_mib",
            value: 0,
            reason: "at least 1 MiB",
        });
    }
    let network_interfaces = plan
        .tap
        .iter()
        .map(|tap| NetworkInterface {
            iface_id: IFACE_ID.into(),
            host_dev_name: tap.clone(),
            guest_mac: plan.mac.clone(),
        })
        .collect();
    Ok(FirecrackerConfig {
        boot_source: BootSource {
            kernel_image_path: plan.files.vmlinux.clone(),
            initrd_path: plan.files.initramfs.clone(),
            boot_args: cmdline::for_firecracker(&plan.kernel_cmdline),
        },
        drives: vec![Drive {
            drive_id: ROOT_DRIVE_ID.into(),
            path_on_host: plan.files.rootfs.clone(),
            is_root_device: false,
            is_read_only: false,
        }],
        machine_config: MachineConfig {
            vcpu_count: plan.cpus,
            mem_size_mib: plan.memory_mib,
            smt: false,
        },
        network_interfaces,
    })
}

/// The text of `firecracker.json`.
pub fn emit(plan: &AssetsPlan) -> Result<String, AssetsError> {
    let cfg = config(plan)?;
    let mut text = serde_json::to_string_pretty(&cfg).map_err(|source| AssetsError::Json {
        file: "firecracker.json",
        source,
    })?;
    text.push('\n');
    Ok(text)
}

/// How to start it, from DIR.
pub fn command_line() -> String {
    "firecracker --no-api --config-file firecracker.json".into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assets::fc_schema::{Schema, shared_spec};
    use crate::assets::tests::sample_plan;

    /// The facts of Firecracker's API schema (v1.17) that this emitter relies on, kept here so
    /// the test means something when the YAML is not available.
    const REQUIRED: &[(&str, &[&str])] = &[
        ("boot-source", &["kernel_image_path"]),
        ("drives", &["drive_id", "is_root_device"]),
        ("machine-config", &["mem_size_mib", "vcpu_count"]),
        ("network-interfaces", &["host_dev_name", "iface_id"]),
    ];
    const KNOWN: &[(&str, &[&str])] = &[
        (
            "boot-source",
            &["boot_args", "initrd_path", "kernel_image_path"],
        ),
        (
            "drives",
            &[
                "drive_id",
                "partuuid",
                "is_root_device",
                "cache_type",
                "is_read_only",
                "path_on_host",
                "rate_limiter",
                "io_engine",
                "socket",
            ],
        ),
        (
            "machine-config",
            &[
                "cpu_template",
                "smt",
                "mem_size_mib",
                "track_dirty_pages",
                "vcpu_count",
                "huge_pages",
            ],
        ),
        (
            "network-interfaces",
            &[
                "guest_mac",
                "host_dev_name",
                "iface_id",
                "mtu",
                "rx_rate_limiter",
                "tx_rate_limiter",
            ],
        ),
    ];

    fn objects(
        v: &serde_json::Value,
        key: &str,
    ) -> Vec<serde_json::Map<String, serde_json::Value>> {
        match &v[key] {
            serde_json::Value::Array(a) => {
                a.iter().filter_map(|o| o.as_object().cloned()).collect()
            }
            serde_json::Value::Object(o) => vec![o.clone()],
            _ => vec![],
        }
    }

    fn emitted_with_tap() -> serde_json::Value {
        let mut plan = sample_plan();
        plan.tap = Some("tap0".into());
        plan.mac = Some("52:54:00:12:34:56".into());
        serde_json::from_str(&emit(&plan).expect("emits")).expect("valid json")
    }

    #[test]
    fn emitted_fields_match_the_constants() {
        let v = emitted_with_tap();
        let top: Vec<&str> = v
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            top,
            [
                "boot-source",
                "drives",
                "machine-config",
                "network-interfaces"
            ]
        );
        for (section, required) in REQUIRED {
            let objs = objects(&v, section);
            assert!(!objs.is_empty(), "{section} missing");
            let known = KNOWN.iter().find(|(s, _)| s == section).expect("listed").1;
            for o in objs {
                for r in *required {
                    assert!(o.contains_key(*r), "{section}.{r} missing");
                }
                for k in o.keys() {
                    assert!(
                        known.contains(&k.as_str()),
                        "{section}.{k} unknown to firecracker"
                    );
                }
            }
        }
        let vcpus = v["machine-config"]["vcpu_count"].as_u64().expect("integer");
        assert!((1..=u64::from(MAX_VCPUS)).contains(&vcpus));
        assert_eq!(v["boot-source"]["kernel_image_path"], "vmlinux");
        assert_eq!(v["drives"][0]["path_on_host"], "rootfs.ext4");
        assert_eq!(v["drives"][0]["is_root_device"], false);
    }

    #[test]
    fn validates_against_firecrackers_published_schema() {
        let Some(spec) = shared_spec() else {
            return;
        };
        let schema = Schema::from_swagger(&spec).expect("definitions");
        for v in [
            emitted_with_tap(),
            serde_json::from_str(&emit(&sample_plan()).expect("emits")).expect("json"),
        ] {
            let errors = schema.check("FullVmConfiguration", &v);
            assert!(errors.is_empty(), "schema violations: {errors:#?}");
        }
        // The checker must catch what Firecracker would refuse.
        let mut bad = emitted_with_tap();
        bad["machine-config"]["vcpu_count"] = 64.into();
        bad["drives"][0]["bogus"] = true.into();
        bad["boot-source"]
            .as_object_mut()
            .expect("object")
            .remove("kernel_image_path");
        bad["drives"][0]["io_engine"] = "Fast".into();
        let errors = schema.check("FullVmConfiguration", &bad);
        assert_eq!(errors.len(), 4, "{errors:#?}");
    }

    #[test]
    fn boot_args_are_adapted_and_relative_paths_kept() {
        let plan = sample_plan();
        let cfg = config(&plan).expect("valid");
        assert!(cfg.boot_source.boot_args.contains("console=ttyS0"));
        assert!(cfg.boot_source.boot_args.contains("reboot=k"));
        assert!(cfg.network_interfaces.is_empty());
        assert!(!emit(&plan).expect("emits").contains("network-interfaces"));
        for p in [
            &cfg.boot_source.kernel_image_path,
            &cfg.drives[0].path_on_host,
        ] {
            assert!(!p.starts_with('/'), "{p} is absolute");
        }
    }

    #[test]
    fn out_of_range_machine_is_refused() {
        let mut plan = sample_plan();
        plan.cpus = 33;
        assert!(config(&plan).is_err());
        plan.cpus = 0;
        assert!(config(&plan).is_err());
        plan.cpus = 1;
        plan.memory_mib = 0;
        assert!(config(&plan).is_err());
    }
}
