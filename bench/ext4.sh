#!/bin/sh
# Benchmark: our ext4 writer vs `tar -x` + `mke2fs -t ext4 -d` on a flattened rootfs tar.
# Usage: bench/ext4.sh [ROOTFS.tar]   (default: the Debian minbase fixture)
# Runs in /dev/shm; reports wall time, peak RSS, allocated size (du) vs content, e2fsck status.
set -eu
TAR=${1:-${OCI2VM_FIXTURES:-/var/tmp/oci2vm-fixtures}/rootfs/debian-minbase.tar}
W=$(mktemp -d /dev/shm/oci2vm-bench.XXXXXX)
trap 'rm -rf "$W"' EXIT
cd "$(dirname "$0")/.."
cargo build --release -q -p oci2vm --example mkext4
cp "$TAR" "$W/rootfs.tar"
# content = sum of regular-file sizes in the tar
CONTENT=$(tar -tvf "$W/rootfs.tar" | awk '$1 ~ /^-/ {s += $3} END {print s}')
ROUNDED=$(tar -tvf "$W/rootfs.tar" | awk '$1 ~ /^-/ {s += int(($3 + 4095) / 4096) * 4096} END {print s}')
echo "content_bytes $CONTENT content_in_4k_blocks_bytes $ROUNDED"

measure() { # name, command...
	name=$1; shift
	/usr/bin/time -f "%e %M" -o "$W/time.$name" "$@" >"$W/out.$name" 2>&1 || { cat "$W/out.$name"; exit 1; }
	read -r wall rss <"$W/time.$name"
	echo "$name wall_s $wall peak_rss_kib $rss"
}

measure ours ./target/release/examples/mkext4 "$W/rootfs.tar" "$W/ours.ext4" "$W"
grep -E '_s |Ext4Report' "$W/out.ours"
SIZE=$(stat -c %s "$W/ours.ext4")

mkdir "$W/x"
measure tar_x tar -x -C "$W/x" -f "$W/rootfs.tar"
measure mke2fs_d mke2fs -q -F -t ext4 -d "$W/x" "$W/peer.ext4" "$((SIZE / 1024))k"
# mke2fs picks 1 KiB blocks below 512 MiB ("small" type); the same with 4 KiB blocks:
measure mke2fs_d_4k mke2fs -q -F -t ext4 -b 4096 -d "$W/x" "$W/peer4k.ext4" "$((SIZE / 1024))k"

for img in ours peer peer4k; do
	alloc=$(du -k "$W/$img.ext4" | cut -f1)
	fsck=0; e2fsck -fn "$W/$img.ext4" >/dev/null 2>&1 || fsck=$?
	echo "$img size_bytes $(stat -c %s "$W/$img.ext4") allocated_kib $alloc e2fsck_exit $fsck"
done
awk -v c="$CONTENT" -v r="$ROUNDED" -v a="$(du -k "$W/ours.ext4" | cut -f1)" 'BEGIN {
	limit = c * 1.03 / 1024 + 8192
	printf "ours allocated_kib %d vs content+3%%+8MiB %d kib: %s\n", a, limit, (a <= limit ? "ok" : "over")
	limit = r * 1.03 / 1024 + 8192
	printf "ours allocated_kib %d vs content_in_4k_blocks+3%%+8MiB %d kib: %s\n", a, limit, (a <= limit ? "ok" : "over")
}'
