//! `.nspawn` tests: the word syntax against a parser written from the rules in the module docs,
//! and the real systemd-nspawn (root, Debian package systemd-container) running a busybox rootfs
//! from both the settings file and the command line.

use super::*;
use std::process::Command;

/// systemd's word splitting for these settings: whitespace separates, quotes group, no escapes.
fn split_words(line: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => cur.get_or_insert_with(String::new).push(c),
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                cur.get_or_insert_with(String::new);
            }
            None if c.is_whitespace() => out.extend(cur.take()),
            None => cur.get_or_insert_with(String::new).push(c),
        }
    }
    if quote.is_some() {
        return None; // "Invalid syntax"
    }
    out.extend(cur);
    Some(out)
}

const TRICKY: &[&str] = &[
    "/bin/show",
    "a b",
    "",
    "it's",
    "say \"hi\"",
    "a'b\"c",
    "\"",
    "'",
    "back\\slash",
    "trail\\",
    "$HOME",
    "%n",
    "tab\there",
    "\"quoted both\"",
];

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn quote_word_round_trips() {
    assert_eq!(quote_word("w", "").expect("ok"), "\"\"");
    assert_eq!(quote_word("w", "a'b\"c").expect("ok"), "\"a'b\"'\"c'");
    assert_eq!(quote_word("w", "\"x").expect("ok"), "'\"x'");
    let line = words("w", &strings(TRICKY)).expect("ok");
    assert_eq!(split_words(&line).expect("valid"), TRICKY);
    assert!(quote_word("w", "a\nb").is_err());
}

#[test]
fn settings_cover_the_image_config() {
    let rt = RuntimeConfig {
        entrypoint: strings(&["/bin/sh", "-c"]),
        cmd: strings(&["echo $X"]),
        env: strings(&["X=a b"]),
        working_dir: "/srv".into(),
        user: "1000:1000".into(),
        exposed_ports: strings(&["8080/tcp", "53/udp"]),
        volumes: strings(&["/data", "/bad:path"]),
        stop_signal: Some("SIGINT".into()),
        ..RuntimeConfig::default()
    };
    let n = emit(&rt, "rootfs", Path::new("/v")).expect("emit");
    let s = &n.settings;
    for line in [
        "Boot=no",
        "Parameters=\"/bin/sh\" \"-c\" \"echo $X\"",
        "Environment=\"X=a b\"",
        "WorkingDirectory=/srv",
        "User=1000",
        "KillSignal=SIGINT",
        "Bind=/v/data:/data",
        "VirtualEthernet=yes",
        "Port=tcp:8080:8080",
        "Port=udp:53:53",
    ] {
        assert!(s.lines().any(|l| l == line), "missing {line:?} in\n{s}");
    }
    assert!(s.contains("# Volume \"/bad:path\" skipped"));
    assert_eq!(
        n.command_line(),
        "systemd-nspawn --directory=rootfs --settings=no '--setenv=X=a b' --chdir=/srv --user=1000 \
         --kill-signal=SIGINT --bind=/v/data:/data --network-veth --port=tcp:8080:8080 \
         --port=udp:53:53 -- /bin/sh -c 'echo $X'"
    );
}

fn nspawn_usable() -> bool {
    crate::assets::tests::root_tool_usable("systemd-nspawn", "systemd-container")
}

fn busybox_machine(dir: &Path, name: &str) -> std::path::PathBuf {
    let root = dir.join(name);
    for d in ["bin", "usr", "tmp", "proc", "sys", "dev", "etc"] {
        std::fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    std::fs::write(root.join("etc/os-release"), "ID=oci2vm-test\n").expect("write");
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).expect("copy busybox");
    std::os::unix::fs::symlink("busybox", root.join("bin/sh")).expect("symlink");
    let show = "#!/bin/sh\nfor a in \"$@\"; do printf '[%s]\\n' \"$a\"; done\necho \"{$V1}{$V2}\"\n/bin/busybox pwd\n";
    std::fs::write(root.join("bin/show"), show).expect("write");
    Command::new("chmod")
        .arg("755")
        .arg(root.join("bin/show"))
        .status()
        .expect("chmod");
    root
}

#[test]
fn real_systemd_nspawn_runs_the_exact_argv() {
    if !nspawn_usable() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let name = "oci2vm-nspawn-test";
    busybox_machine(dir.path(), name);
    let rt = RuntimeConfig {
        entrypoint: strings(TRICKY),
        env: strings(&["V1=it's \"x\"", "V2= sp "]),
        working_dir: "/tmp".into(),
        ..RuntimeConfig::default()
    };
    let n = emit(&rt, name, &dir.path().join("volumes")).expect("emit");
    std::fs::write(dir.path().join(format!("{name}.nspawn")), &n.settings).expect("write");
    let mut want: Vec<String> = TRICKY[1..].iter().map(|a| format!("[{a}]")).collect();
    want.push("{it's \"x\"}{ sp }".into());
    want.push("/tmp".into());
    let local = ["--register=no", "--keep-unit", "--pipe", "--quiet"];
    let from_file = Command::new("systemd-nspawn")
        .args(["-D", name, "--settings=trusted"])
        .args(local)
        .current_dir(dir.path())
        .output()
        .expect("run nspawn");
    let from_cli = Command::new(&n.argv[0])
        .args(local)
        .args(&n.argv[1..])
        .current_dir(dir.path())
        .output()
        .expect("run nspawn");
    for (how, out) in [("settings file", from_file), ("command line", from_cli)] {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{how}: {stderr}");
        assert!(!stderr.contains("Invalid syntax"), "{how}: {stderr}");
        let got: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(String::from)
            .collect();
        assert_eq!(got, want, "{how}");
    }
}

proptest::proptest! {
    /// Any list of words without newlines survives quoting and systemd's splitting.
    #[test]
    fn any_words_round_trip(ws in proptest::collection::vec("[^\n\r\0]{0,12}", 0..6)) {
        let line = words("w", &ws).expect("no newlines");
        proptest::prop_assert_eq!(split_words(&line).expect("valid syntax"), ws);
    }
}
