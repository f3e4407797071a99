#!/usr/bin/env bash
# build-init.sh [--debug]: builds the static guest init (oci2vm-init) for x86_64.
#
# +crt-static applies only to this target build: with an explicit --target, RUSTFLAGS do not
# reach build scripts or proc-macros, so the rest of the workspace is unaffected.
# Output: target/x86_64-unknown-linux-gnu/{release,debug}/oci2vm-init; the oci2vm library
# finds it there (or via OCI2VM_INIT, or next to the oci2vm executable).
set -euo pipefail
cd "$(dirname "$0")/.."
profile=(--release); dir=release
[ "${1:-}" = --debug ] && { profile=(); dir=debug; }
RUSTFLAGS='-C target-feature=+crt-static -C strip=symbols' \
  cargo build -p oci2vm-init "${profile[@]}" --target x86_64-unknown-linux-gnu
bin=target/x86_64-unknown-linux-gnu/$dir/oci2vm-init
if readelf -l "$bin" | grep -q INTERP; then
  echo "build-init.sh: $bin has an ELF interpreter (not static)" >&2; exit 1
fi
echo "$bin"
