//! LXC config tests: a parser written from LXC's documented/source rules, round trips of tricky
//! values through it, and (when lxc is installed and we are root) the real `lxc-start`.

use super::*;
use std::process::Command;

/// LXC's `parse_line` for one `lxc.*` line: trim spaces/tabs, strip one pair of outer quotes.
fn parse_line(line: &str) -> Option<(String, String)> {
    let line = line.trim_start_matches([' ', '\t']);
    if line.starts_with('#') || !line.starts_with("lxc.") {
        return None;
    }
    let (k, v) = line.split_once('=')?;
    let v = v.trim_matches([' ', '\t']);
    let b = v.as_bytes();
    let v = if b.len() > 1 && matches!(b[0], b'"' | b'\'') && b[b.len() - 1] == b[0] {
        &v[1..v.len() - 1]
    } else {
        v
    };
    Some((k.trim_end_matches([' ', '\t']).to_string(), v.to_string()))
}

/// LXC's `split_init_cmd`: split on ' ', drop empty words.
fn split_init_cmd(v: &str) -> Vec<String> {
    v.split(' ')
        .filter(|w| !w.is_empty())
        .map(String::from)
        .collect()
}

fn parsed(text: &str, key: &str) -> Vec<String> {
    text.lines()
        .filter_map(parse_line)
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v)
        .collect()
}

fn runtime(argv: &[&str], env: &[&str]) -> RuntimeConfig {
    RuntimeConfig {
        entrypoint: argv.iter().map(|s| s.to_string()).collect(),
        env: env.iter().map(|s| s.to_string()).collect(),
        working_dir: "/tmp".into(),
        user: "0:0".into(),
        stop_signal: Some("SIGINT".into()),
        ..RuntimeConfig::default()
    }
}

const TRICKY_ARGS: &[&str] = &[
    "/bin/show",
    "a'b",
    "\"c",
    "$x\\y",
    "'q'",
    "\"dq\"",
    "tab\tin",
    "#h",
    "=",
    "--",
];
const TRICKY_ENV: &[&str] = &[
    "V1= lead and trail ",
    "V2=\"q\"",
    "V3='single'",
    "V4=$HOME\\n",
    "V5=",
    "V6=a=b",
];

#[test]
fn tricky_values_round_trip_through_lxcs_rules() {
    let cfg = emit(&runtime(TRICKY_ARGS, TRICKY_ENV), "c1", "/abs/rootfs").expect("emit");
    assert!(cfg.init_cmd_in_config);
    let cmd = parsed(&cfg.text, "lxc.init.cmd");
    assert_eq!(cmd.len(), 1);
    assert_eq!(split_init_cmd(&cmd[0]), TRICKY_ARGS);
    assert_eq!(parsed(&cfg.text, "lxc.environment"), TRICKY_ENV);
    assert_eq!(parsed(&cfg.text, "lxc.rootfs.path"), ["dir:/abs/rootfs"]);
    assert_eq!(parsed(&cfg.text, "lxc.init.uid"), ["0"]);
    assert_eq!(parsed(&cfg.text, "lxc.signal.stop"), ["SIGINT"]);
    assert_eq!(cfg.start_command, "lxc-start -n c1 -f config -F");
}

#[test]
fn spaces_and_empty_arguments_move_to_the_command_line() {
    for argv in [&["/bin/sh", "-c", "echo hi"][..], &["/bin/x", ""][..]] {
        assert_eq!(
            init_cmd(&argv.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
            None
        );
        let cfg = emit(&runtime(argv, &[]), "c1", "/abs/rootfs").expect("emit");
        assert!(!cfg.init_cmd_in_config);
        assert!(parsed(&cfg.text, "lxc.init.cmd").is_empty());
        assert!(
            cfg.start_command
                .starts_with("lxc-start -n c1 -f config -F -- "),
            "{}",
            cfg.start_command
        );
        assert!(cfg.text.contains("# the command has an empty argument"));
    }
}

#[test]
fn unrepresentable_values_are_refused() {
    assert!(emit(&runtime(&["/bin/x"], &["A=line\nbreak"]), "c", "/r").is_err());
    assert!(emit(&runtime(&["/bin/x"], &[]), "c", "rootfs").is_err());
    assert_eq!(numeric_user("1000:50"), Some((1000, Some(50))));
    assert_eq!(numeric_user("1000"), Some((1000, None)));
    assert_eq!(numeric_user("nobody"), None);
    assert_eq!(numeric_user("1:staff"), None);
    let mut r = runtime(&["/bin/x"], &[]);
    r.user = "nobody".into();
    let cfg = emit(&r, "c", "/r").expect("emit");
    assert!(parsed(&cfg.text, "lxc.init.uid").is_empty());
    assert!(cfg.text.contains("# User \"nobody\" is not numeric"));
}

fn lxc_usable() -> bool {
    crate::assets::tests::root_tool_usable("lxc-start", "lxc")
}

/// A busybox rootfs whose /bin/show records its argv, env and cwd in /tmp/out.
fn busybox_rootfs(dir: &std::path::Path) -> std::path::PathBuf {
    let root = dir.join("rootfs");
    for d in ["bin", "tmp", "proc", "sys", "dev", "etc"] {
        std::fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).expect("copy busybox");
    std::os::unix::fs::symlink("busybox", root.join("bin/sh")).expect("symlink");
    let show = "#!/bin/sh\n{ for a in \"$@\"; do printf '[%s]\\n' \"$a\"; done; env | /bin/busybox grep '^V' | /bin/busybox sort; /bin/busybox pwd; } > /tmp/out\n";
    std::fs::write(root.join("bin/show"), show).expect("write");
    Command::new("chmod")
        .args(["755"])
        .arg(root.join("bin/show"))
        .status()
        .expect("chmod");
    root
}

fn run_lxc(dir: &std::path::Path, cfg: &LxcConfig) -> String {
    std::fs::write(dir.join("config"), &cfg.text).expect("write config");
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("timeout 60 {}", cfg.start_command))
        .current_dir(dir)
        .output()
        .expect("run lxc-start");
    assert!(
        out.status.success(),
        "lxc-start failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(dir.join("rootfs/tmp/out")).expect("container wrote /tmp/out")
}

#[test]
fn real_lxc_start_runs_the_exact_argv_and_env() {
    if !lxc_usable() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let root = busybox_rootfs(dir.path());
    let name = format!("oci2vm-test-{}", std::process::id());
    let cfg = emit(
        &runtime(TRICKY_ARGS, TRICKY_ENV),
        &name,
        root.to_str().expect("utf8"),
    )
    .expect("emit");
    let out = run_lxc(dir.path(), &cfg);
    let mut want: Vec<String> = TRICKY_ARGS[1..].iter().map(|a| format!("[{a}]")).collect();
    let mut env: Vec<String> = TRICKY_ENV.iter().map(|e| e.to_string()).collect();
    env.sort();
    want.extend(env);
    want.push("/tmp".into());
    assert_eq!(out.lines().collect::<Vec<_>>(), want);

    // Arguments with spaces go through the start command instead.
    let argv = ["/bin/show", "a b", "", " lead"];
    let cfg = emit(&runtime(&argv, &[]), &name, root.to_str().expect("utf8")).expect("emit");
    assert!(!cfg.init_cmd_in_config);
    let out = run_lxc(dir.path(), &cfg);
    assert_eq!(
        out.lines().take(3).collect::<Vec<_>>(),
        ["[a b]", "[]", "[ lead]"]
    );
}

proptest::proptest! {
    /// Any value without newlines survives LXC's trimming and unquoting.
    #[test]
    fn any_value_round_trips(v in "[^\n\r\0]{0,16}") {
        let line = format!("lxc.environment = {}", config_value("v", &v).expect("no newlines"));
        proptest::prop_assert_eq!(parse_line(&line).map(|(_, v)| v), Some(v));
    }

    /// Any argv that init_cmd accepts splits back to itself; the rest is refused.
    #[test]
    fn init_cmd_is_exact_or_refused(argv in proptest::collection::vec("[^\n\r\0]{0,6}", 1..5)) {
        match init_cmd(&argv) {
            Some(cmd) => {
                let line = format!("lxc.init.cmd = {}", config_value("a", &cmd).expect("no newlines"));
                let (_, v) = parse_line(&line).expect("lxc line");
                proptest::prop_assert_eq!(split_init_cmd(&v), argv);
            }
            None => proptest::prop_assert!(argv.iter().any(|a| a.is_empty() || a.contains(' '))),
        }
    }
}
