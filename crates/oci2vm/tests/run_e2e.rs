//! Boots the busybox fixture under QEMU (TCG here) through `vmm::run_with` and checks what
//! `docker run` would print and exit with. Each case also runs under runc when it can.

mod support;

use oci2vm_guest::Overlay;
use support::*;

fn argv(s: &[&str]) -> Vec<String> {
    s.iter().map(|x| x.to_string()).collect()
}

#[test]
fn exit_code_propagates() {
    let Some(env) = env() else { return };
    let _g = serial();
    let disk = make_disk(env, "exit7", &busybox_config());
    let mut o = Overlay::new();
    o.argv(&argv(&["sh", "-c", "echo out; echo err >&2; exit 7"]));
    let r = boot(&spec(env, &disk, &o), b"");
    eprintln!("{r:?}");
    assert_eq!(
        (r.status, r.stdout.as_str(), r.stderr.as_str()),
        (7, "out\n", "err\n")
    );
}
