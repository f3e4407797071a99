#!/usr/bin/env bash
# make-demo-image.sh OUTDIR
#
# Makes a tiny example image offline, with real tools only: the static busybox from Debian's
# busybox-static package plus one symlink per applet, packed by umoci into an OCI layout at
# OUTDIR (tag `latest`), with Cmd, Env and a label. Idempotent: does nothing when OUTDIR/index.json
# exists (FORCE=1 rebuilds). Needs root (umoci unpack/repack keep ownership) and umoci + busybox.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
OUT=$(realpath -m "$1")
if [ -f "$OUT/index.json" ] && [ "${FORCE:-0}" != 1 ]; then exit 0; fi
BB=$(command -v busybox || true)
[ -n "$BB" ] && file -L "$BB" 2>/dev/null | grep -q 'statically linked' || BB=/bin/busybox
[ -x "$BB" ] || { echo "make-demo-image.sh: busybox-static is not installed" >&2; exit 1; }
command -v umoci >/dev/null || { echo "make-demo-image.sh: umoci is not installed" >&2; exit 1; }

WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT
rm -rf "$OUT"; mkdir -p "$(dirname "$OUT")"
umoci init --layout "$WORK/layout"
umoci new --image "$WORK/layout:latest"
umoci unpack --image "$WORK/layout:latest" "$WORK/bundle" >/dev/null
R="$WORK/bundle/rootfs"
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,root,run}
chmod 1777 "$R/tmp"; chmod 0700 "$R/root"
install -m 0755 "$BB" "$R/bin/busybox"
for a in $("$BB" --list-full); do
  case $a in bin/busybox|linuxrc) continue;; esac
  case $a in bin/*) rel=busybox;; sbin/*) rel=../bin/busybox;; usr/*) rel=../../bin/busybox;; *) continue;; esac
  ln -sf "$rel" "$R/$a"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$R/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$R/etc/group"
printf '#!/bin/sh\necho "hello from a VM made of a container image: $(uname -sr)"\n' > "$R/bin/hello"
chmod 0755 "$R/bin/hello"
umoci repack --image "$WORK/layout:latest" "$WORK/bundle" >/dev/null
umoci config --image "$WORK/layout:latest" --config.cmd /bin/hello \
  --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --config.workingdir / --config.label org.opencontainers.image.title=oci2vm-demo \
  --os linux --architecture amd64
umoci gc --layout "$WORK/layout"
mv "$WORK/layout" "$OUT"
echo "make-demo-image.sh: oci:$OUT:latest"
