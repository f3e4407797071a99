#!/usr/bin/env bash
# deps.sh [runtime|test]
#
# Installs what oci2vm needs on a Debian/Ubuntu machine (root or sudo), idempotently:
#   runtime: qemu-system-x86, a guest kernel (linux-image-cloud-amd64 on Debian), e2fsprogs,
#            umoci (to make the offline example image), busybox-static, jq, and virtiofsd for
#            `run -v` (Debian 12: /usr/lib/qemu/virtiofsd in qemu-system-common; later releases
#            and Ubuntu: the separate virtiofsd package)
#   test:    runtime + mmdebstrap, buildah, skopeo, docker-registry, apache2-utils, curl, cpio,
#            runc, zstd, pigz, time, fdisk, xz-utils, libvirt-clients, libxml2-utils (xmllint for
#            virt-xml-validate), lxc, systemd-container, lz4, python3 (fixture listings, pty tests)
# and a Rust toolchain when `cargo` is missing (rustup; needs network access to its servers).
set -euo pipefail
mode=${1:-runtime}
SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo

pkgs=(qemu-system-x86 qemu-system-common e2fsprogs umoci busybox-static jq ca-certificates curl)
if grep -qi debian /etc/os-release 2>/dev/null && ! grep -qi ubuntu /etc/os-release; then
  pkgs+=(linux-image-cloud-amd64)
else
  pkgs+=(linux-image-kvm)
fi
# virtiofsd: its own package where it exists (Debian 13, Ubuntu 24.04); Debian 12 ships it in
# qemu-system-common (above)
if apt-cache show virtiofsd >/dev/null 2>&1; then
  pkgs+=(virtiofsd)
fi
if [ "$mode" = test ]; then
  pkgs+=(mmdebstrap buildah skopeo docker-registry apache2-utils cpio runc zstd pigz time fdisk
         xz-utils gcc binutils libvirt-clients libxml2-utils lxc systemd-container lz4 python3)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps.sh: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq >/dev/null
  # with Recommends: mmdebstrap wants arch-test/gpg/mount, buildah fuse-overlayfs/crun (as tested)
  $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  # Debian's docker-registry starts a service on *:5000 where systemd runs: the tests start their
  # own on 127.0.0.1, so stop it.
  if [ -d /run/systemd/system ] && systemctl is-active -q docker-registry 2>/dev/null; then
    $SUDO systemctl disable --now docker-registry >/dev/null 2>&1 || true
  fi
fi

if ! command -v cargo >/dev/null 2>&1; then
  [ -x "$HOME/.cargo/bin/cargo" ] || {
    echo "deps.sh: installing a Rust toolchain with rustup" >&2
    curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c clippy,rustfmt >/dev/null
  }
fi
echo "deps.sh: $mode dependencies present" >&2
