//! `manifest.json`: what DIR holds and how to start it.
//!
//! ```text
//! { "version": 1, "buildTime", "assets", "checksums",        Gondolin AssetManifest v1 (gondolin.rs)
//!   "oci2vm": { "schema": 1, "source", "digest", "platform",
//!               "files": [ { "name", "size", "sha256" } ],    every regular file in DIR but this one
//!               "runtime": { "Entrypoint", "Cmd", "Env", "WorkingDir", "User", "ExposedPorts",
//!                            "Volumes", "Labels", "StopSignal", "Healthcheck" },   OCI spelling
//!               "portForwards": [ { "protocol", "host", "guest" } ],
//!               "kernelCmdline", "launch": { consumer: command run from DIR } } }
//! ```

use std::path::Path;

use serde_json::{Map, Value, json};

use super::{
    AssetsError, AssetsPlan, RuntimeConfig, cloud_hypervisor, firecracker, gondolin, libvirt, qemu,
};
use crate::digest::Algorithm;

/// The file name.
pub const FILE_NAME: &str = "manifest.json";
/// Version of the `oci2vm` section.
pub const SCHEMA: u64 = 1;

/// One file of DIR.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FileEntry {
    /// Name relative to DIR.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256, lowercase hex.
    pub sha256: String,
}

/// Hashes every regular file directly in `dir`, except `manifest.json` and dot files (staging
/// directories), sorted by name.
pub fn scan(dir: &Path) -> Result<Vec<FileEntry>, AssetsError> {
    let io = |path: &Path, op: &'static str| {
        let path = path.to_path_buf();
        move |source| AssetsError::Io { path, op, source }
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir, "listing directory"))? {
        let entry = entry.map_err(io(dir, "listing directory"))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name == FILE_NAME {
            continue;
        }
        let path = entry.path();
        if !entry.file_type().map_err(io(&path, "stat"))?.is_file() {
            continue;
        }
        let mut file = std::fs::File::open(&path).map_err(io(&path, "opening"))?;
        let mut hasher = Algorithm::Sha256.hasher();
        let size = std::io::copy(&mut file, &mut hasher).map_err(io(&path, "reading"))?;
        out.push(FileEntry {
            name,
            size,
            sha256: hasher.finish().hex().to_string(),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The runtime config in the OCI image-spec spelling (`ExposedPorts`/`Volumes` as objects).
pub fn runtime_json(r: &RuntimeConfig) -> Value {
    let set = |keys: &[String]| -> Value {
        Value::Object(keys.iter().map(|k| (k.clone(), json!({}))).collect())
    };
    json!({
        "Entrypoint": r.entrypoint,
        "Cmd": r.cmd,
        "Env": r.env,
        "WorkingDir": r.working_dir,
        "User": r.user,
        "ExposedPorts": set(&r.exposed_ports),
        "Volumes": set(&r.volumes),
        "Labels": r.labels,
        "StopSignal": r.stop_signal,
        "Healthcheck": r.healthcheck,
    })
}

/// Command lines, run from DIR, per consumer.
pub fn launch(plan: &AssetsPlan) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("firecracker".into(), json!(firecracker::command_line()));
    m.insert(
        "cloud-hypervisor".into(),
        json!(cloud_hypervisor::command_line()),
    );
    m.insert("qemu".into(), json!(qemu::command_line()));
    m.insert(
        "qemu-q35".into(),
        json!(format!("{} --machine q35", qemu::command_line())),
    );
    m.insert("libvirt".into(), json!(libvirt::command_line(plan)));
    m.insert("gondolin".into(), json!(gondolin::command_line()));
    m
}

/// The text of `manifest.json` for `files` (from [`scan`]) built at `build_time` (RFC 3339).
pub fn emit(
    plan: &AssetsPlan,
    files: &[FileEntry],
    build_time: &str,
) -> Result<String, AssetsError> {
    let sum = |name: &str| {
        files
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.sha256.clone())
    };
    let mut top = gondolin::manifest_fields(&plan.files, build_time, sum);
    let ours = json!({
        "schema": SCHEMA,
        "source": plan.source,
        "digest": plan.digest.to_string(),
        "platform": plan.platform,
        "files": files,
        "runtime": runtime_json(&plan.runtime),
        "portForwards": plan.port_forwards,
        "kernelCmdline": plan.kernel_cmdline,
        "memoryMiB": plan.memory_mib,
        "cpus": plan.cpus,
        "launch": launch(plan),
    });
    top.insert("oci2vm".into(), ours);
    let mut text =
        serde_json::to_string_pretty(&Value::Object(top)).map_err(|source| AssetsError::Json {
            file: FILE_NAME,
            source,
        })?;
    text.push('\n');
    Ok(text)
}

/// `SOURCE_DATE_EPOCH` if set and valid, else now, as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn build_time() -> String {
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        });
    rfc3339(secs)
}

/// Formats Unix seconds as UTC RFC 3339 (proleptic Gregorian, Howard Hinnant's civil_from_days).
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        tod / 3600,
        tod % 3600 / 60,
        tod % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assets::tests::sample_plan;

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn scan_hashes_files_and_skips_manifest_and_dot_entries() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("b"), b"abc").expect("write");
        std::fs::write(dir.path().join("a"), b"").expect("write");
        std::fs::write(dir.path().join(FILE_NAME), b"{}").expect("write");
        std::fs::create_dir(dir.path().join(".tmp-x")).expect("mkdir");
        std::fs::create_dir(dir.path().join("rootfs")).expect("mkdir");
        let files = scan(dir.path()).expect("scan");
        assert_eq!(
            files.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(files[1].size, 3);
        assert_eq!(
            files[1].sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn manifest_has_runtime_and_gondolin_keys() {
        let plan = sample_plan();
        let files = vec![FileEntry {
            name: "bzImage".into(),
            size: 1,
            sha256: "00".into(),
        }];
        let v: Value =
            serde_json::from_str(&emit(&plan, &files, "t").expect("emit")).expect("json");
        assert_eq!(v["version"], 1);
        assert_eq!(v["checksums"]["kernel"], "00");
        let o = &v["oci2vm"];
        assert_eq!(o["digest"], plan.digest.to_string());
        assert_eq!(
            o["runtime"]["ExposedPorts"],
            json!({"8080/tcp": {}, "53/udp": {}})
        );
        assert_eq!(o["runtime"]["Cmd"][0], "echo \"hello world\" $HOME");
        assert_eq!(o["runtime"]["StopSignal"], "SIGINT");
        assert_eq!(
            o["portForwards"][0],
            json!({"protocol": "tcp", "host": 8080, "guest": 8080})
        );
        assert_eq!(o["launch"]["qemu"], "./qemu.sh");
        assert_eq!(o["files"][0]["name"], "bzImage");
    }
}
