#!/usr/bin/env bash
# test.sh: the whole test suite, from a fresh Debian/Ubuntu machine (root or sudo).
#
#   1. installs the tools the tests use (scripts/deps.sh test)
#   2. builds the real fixture images once (scripts/fixtures/make-images.sh; cached in
#      $OCI2VM_FIXTURES, default /var/tmp/oci2vm-fixtures)
#   3. builds the static guest init (scripts/build-init.sh)
#   4. cargo fmt --check, cargo clippy -D warnings, cargo test for the whole workspace
#
# Tests that need a tool skip with a reason when run by hand without it, and fail under CI=true;
# this script sets CI=true so nothing is skipped silently. Registry tests start their own
# Debian docker-registry on 127.0.0.1 and stop it.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s)
step() { printf '\n==> [%3ss] %s\n' "$(( $(date +%s) - t0 ))" "$*"; }

step "dependencies"
scripts/deps.sh test
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"

export OCI2VM_FIXTURES=${OCI2VM_FIXTURES:-/var/tmp/oci2vm-fixtures}
step "fixture images in $OCI2VM_FIXTURES"
SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
$SUDO scripts/fixtures/make-images.sh "$OCI2VM_FIXTURES"

if [ -x scripts/build-init.sh ]; then
  step "static guest init"
  scripts/build-init.sh
fi

export CI=true
step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
step "cargo test"
cargo test --workspace --locked --no-fail-fast 2>&1 | tee /tmp/oci2vm-test.log
step "done"
