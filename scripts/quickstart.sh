#!/usr/bin/env bash
# quickstart.sh: from a fresh Debian/Ubuntu machine, install what oci2vm needs, build it, make a
# tiny example image offline (busybox-static packed by umoci) and run the main job on it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh runtime
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
cargo build --release --locked -p oci2vm-cli
scripts/build-init.sh >/dev/null
BIN=target/release/oci2vm
IMG=${OCI2VM_DEMO_IMAGE:-/var/tmp/oci2vm-demo}
SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
$SUDO scripts/make-demo-image.sh "$IMG"
$SUDO chown -R "$(id -u):$(id -g)" "$IMG"
set -x
"$BIN" inspect "oci:$IMG:latest"
"$BIN" pull "oci:$IMG:latest"
"$BIN" images
"$BIN" convert "oci:$IMG:latest" --format ext4 -o "${TMPDIR:-/tmp}/oci2vm-demo.ext4"
# the main job: boot the image as a VM and run its Cmd (/bin/hello prints a greeting)
"$BIN" run "oci:$IMG:latest"
