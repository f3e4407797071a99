#!/usr/bin/env bash
# bench/boot.sh [SOURCE] [RUNS]: boot-to-entrypoint of `oci2vm run SOURCE -- true` through the
# real pipeline with the conversion cached (SOURCE default: the busybox fixture), against two
# hand-made busybox initramfs baselines, same kernel, QEMU flags, CPU model and machine:
#   (a) busybox /init that powers off at once
#   (b) busybox /init that insmods the same modules ours loads for this run (from the order file
#       of the run's initramfs), mounts the same ext4 root (the cached conversion of SOURCE), and
#       powers off
#       (as shared/fixtures/boot-baseline.sh's initrd-mod)
#   (c) oci2vm run SOURCE (resolve the image, find the cached rootfs, QEMU with the rootfs
#       copy-on-write; init, modules, ports, root, pid namespace, workload `true`, report, off)
# Times are wall-clock seconds from process launch to exit, median of RUNS (default 5).
# Env: KERNEL (default the newest /boot/vmlinuz-*-cloud-amd64), OCI2VM (default target/debug/oci2vm).
set -euo pipefail
FIX=${OCI2VM_FIXTURES:-/var/tmp/oci2vm-fixtures}
SRC=${1:-oci:$FIX/oci/busybox:latest}; RUNS=${2:-5}
cd "$(dirname "$0")/.."
KERNEL=${KERNEL:-$(ls /boot/vmlinuz-*-cloud-amd64 2>/dev/null | sort -V | tail -1)}
OCI2VM=${OCI2VM:-target/debug/oci2vm}
BB=$(command -v busybox); file -L "$BB" | grep -q 'statically linked' || { echo "need busybox-static" >&2; exit 1; }
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
TSC=$(awk -F: '/^cpu MHz/{printf "%d", $2*1000; exit}' /proc/cpuinfo)

# warm the caches (conversion into a bench-only store, initramfs in a bench-only cache), take
# the cached rootfs and the initramfs' module list
export XDG_CACHE_HOME="$W/cache"
RUN=("$OCI2VM" --store "$W/store" run --kernel "$KERNEL" "$SRC" --network none -- true)
"${RUN[@]}" 2>/dev/null
ROOT=$(ls "$W"/store/rootfs/*.ext4)

# the run's initramfs, the only one in the bench's cache (plain cpio; zcat -f reads gzip too)
IRD=$(ls "$W"/cache/oci2vm/initramfs-*.cpio*)
mkdir -p "$W/ours" && (cd "$W/ours" && zcat -f "$IRD" | cpio -id --quiet)

mkird() { (cd "$1" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 | gzip -1) > "$2"; }
base() { mkdir -p "$1"/{bin,proc,sys,dev,newroot,mods}; cp "$BB" "$1/bin/busybox"; ln -s busybox "$1/bin/sh"; }
base "$W/a"; cat > "$W/a/init" <<'EOS'
#!/bin/sh
/bin/busybox mount -t proc proc /proc
/bin/busybox poweroff -f
EOS
# the modules our init loads for this run: `core`, and `rng` when shipped (the entropy device
# is attached only when the host CPU lacks RDRAND); not pci (microvm), net, fs (not needed)
base "$W/b"; cp "$W"/ours/lib/oci2vm/modules/*.ko "$W/b/mods/"
awk '($2 == "core" || $2 == "" || $2 == "rng") && !seen[$1]++ {print $1}' \
  "$W/ours/lib/oci2vm/modules/order" > "$W/b/mods/order"
cat > "$W/b/init" <<'EOS'
#!/bin/sh
B=/bin/busybox
$B mount -t proc proc /proc; $B mount -t sysfs sys /sys; $B mount -t devtmpfs dev /dev
for m in $($B cat /mods/order); do $B insmod /mods/$m; done
i=0; while [ ! -b /dev/vda ] && [ $i -lt 400 ]; do $B sleep 0.01; i=$((i+1)); done
$B mount -t ext4 /dev/vda /newroot
$B umount /newroot
$B poweroff -f
EOS
chmod 755 "$W/a/init" "$W/b/init"; mkird "$W/a" "$W/a.cpio.gz"; mkird "$W/b" "$W/b.cpio.gz"

# the machine and flags `oci2vm run` uses under TCG (crates/oci2vm/src/vmm/qemu.rs, TCG_CPU)
Q=(qemu-system-x86_64 -M microvm -accel tcg -cpu max,-erms -m 512M -smp 1 -nodefaults -no-user-config
   -no-reboot -display none -global virtio-mmio.force-legacy=false -kernel "$KERNEL"
   -chardev file,id=kl,path=/dev/null -serial chardev:kl)
APPEND="console=ttyS0 panic=-1 quiet tsc_early_khz=$TSC"
t() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1 || true; e=$(date +%s.%N); echo "$e - $s" | bc; }
med() { sort -n | awk '{a[NR]=$1} END{print (NR%2)? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
: > "$W/a.t"; : > "$W/b.t"; : > "$W/c.t"
for _ in $(seq "$RUNS"); do   # interleaved, so machine load affects all three alike
  t "${Q[@]}" -initrd "$W/a.cpio.gz" -append "$APPEND" >> "$W/a.t"
  t "${Q[@]}" -initrd "$W/b.cpio.gz" -append "$APPEND" \
    -drive "file=$ROOT,format=raw,if=none,id=root,cache=unsafe,snapshot=on" -device virtio-blk-device,drive=root >> "$W/b.t"
  t "${RUN[@]}" >> "$W/c.t"
done
a=$(med < "$W/a.t"); b=$(med < "$W/b.t"); c=$(med < "$W/c.t")
printf '(a) busybox initramfs, power off          %.2f s  [%s]\n' "$a" "$(tr '\n' ' ' < "$W/a.t")"
printf '(b) busybox + same modules + ext4 mount  %.2f s  [%s]\n' "$b" "$(tr '\n' ' ' < "$W/b.t")"
printf '(c) oci2vm run SOURCE -- true (cached)   %.2f s  [%s]\n' "$c" "$(tr '\n' ' ' < "$W/c.t")"
printf 'c/a = %.2f   c/b = %.2f   (median of %d, interleaved)\n' "$(echo "$c / $a" | bc -l)" "$(echo "$c / $b" | bc -l)" "$RUNS"
