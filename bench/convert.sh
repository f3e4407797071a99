#!/usr/bin/env bash
# End-to-end benchmark of the real CLI path (issue 4): `oci2vm convert oci:LAYOUT --format ext4`
# (release build) against `umoci raw unpack` + `mke2fs -t ext4 -d` and the inflate ceiling
# (flate2/zlib-rs, the decoder the layer engine uses), same run, everything in /dev/shm.
#
# usage: bench/convert.sh [IMAGE (default debian-minbase)] [RUNS (default 5)]
#        IMAGE debian-layered: Debian minbase in four layers with dead data in the top one,
#        made by bench/make-layered.sh from the rootfs fixture
#        OCI2VM=/path/to/oci2vm bench/convert.sh   (time another build, e.g. a baseline)
# prints per command: median wall seconds (min-max), median cpu seconds (user+sys), max peak
# RSS (MiB), the commands interleaved round by round;
# then the allocated size (du) of each image against content + 3% + 8 MiB, and e2fsck status.
# "cold store": a fresh store each run (blobs copied and verified, then converted);
# "warm store": the layers are already in the store (pull verifies, the reader re-verifies).
set -euo pipefail
NAME=${1:-debian-minbase}
RUNS=${2:-5}
FIX=${OCI2VM_FIXTURES:-/var/tmp/oci2vm-fixtures}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
W=$(mktemp -d /dev/shm/oci2vm-convert.XXXXXX)
trap 'rm -rf "$W"' EXIT
[ -x /usr/bin/time ] || { echo "install package 'time' (/usr/bin/time -v)" >&2; exit 1; }
if [ "$NAME" = debian-layered ] && [ ! -d "$FIX/oci/$NAME" ]; then
	[ -f "$FIX/rootfs/debian-minbase.tar" ] || { echo "fixture $FIX/rootfs/debian-minbase.tar missing" >&2; exit 1; }
else
	[ -d "$FIX/oci/$NAME" ] || { echo "fixture $FIX/oci/$NAME missing" >&2; exit 1; }
fi
for t in umoci mke2fs e2fsck jq; do
	command -v "$t" >/dev/null || { echo "$t not installed" >&2; exit 1; }
done

(cd "$ROOT" && nice cargo build -q --release -p oci2vm-cli --bin oci2vm &&
	nice cargo build -q --release -p oci2vm --example inflate)
OCI2VM=${OCI2VM:-$ROOT/target/release/oci2vm}
INFLATE=$ROOT/target/release/examples/inflate

if [ "$NAME" = debian-layered ] && [ ! -d "$FIX/oci/$NAME" ]; then
	"$ROOT/bench/make-layered.sh" "$FIX/rootfs/debian-minbase.tar" "$W/layout"
else
	cp -a "$FIX/oci/$NAME" "$W/layout"
fi
L=$W/layout
mdig=$(jq -r '.manifests[0].digest' "$L/index.json")
mapfile -t BLOBS < <(jq -r '.layers[].digest' "$L/blobs/sha256/${mdig#sha256:}" | sed "s|sha256:|$L/blobs/sha256/|")
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cpus; median (min-max) of $RUNS interleaved rounds (nice)"
echo "image $NAME: ${#BLOBS[@]} layer(s), $(cat "${BLOBS[@]}" | wc -c) compressed bytes"

# once KEY PREP CMD...: one timed run; PREP (a shell snippet) runs untimed before it. Appends
# "wall cpu rss" to $W/KEY.runs (wall from the shell's clock in ns, since time -v rounds to
# 10 ms; cpu and peak RSS from time -v).
once() {
	local key=$1 prep=$2; shift 2
	sh -c "$prep"
	t0=$(date +%s%N)
	nice /usr/bin/time -v -o "$W/time.txt" "$@" >/dev/null 2>"$W/err.txt" || { cat "$W/err.txt" >&2; exit 1; }
	t1=$(date +%s%N)
	awk -F': ' -v w="$(( (t1 - t0) / 1000 ))" '
		/User time|System time/ {c+=$2}
		/Maximum resident set size/ {r=$2}
		END {print w / 1e6, c, r}' "$W/time.txt" >>"$W/$key.runs"
}
# report KEY LABEL: median wall and cpu, max RSS, min..max wall; sets T_KEY to the median
report() {
	local key=$1 label=$2 wall cpu rss lo hi
	read -r wall cpu rss lo hi < <(sort -n "$W/$key.runs" | awk '{w[NR]=$1; c[NR]=$2; if ($3>r) r=$3}
		END {m=int((NR+1)/2); print w[m], c[m], r, w[1], w[NR]}')
	printf '%-40s %7.4f s wall (%.3f-%.3f) %6.3f s cpu %6.1f MiB peak RSS\n' "$label" "$wall" "$lo" "$hi" \
		"$cpu" "$(awk "BEGIN{print $rss/1024}")"
	eval "T_$key=\$wall"
}

CONVERT=("$OCI2VM" convert --store "$W/store" "oci:$L:latest" --format ext4 -o "$W/ours.ext4")
export TMPDIR=$W
"${CONVERT[@]}" >/dev/null 2>&1 # size of our image, for the peer's mke2fs
SIZE=$(stat -c %s "$W/ours.ext4")
PEER=(sh -c 'umoci raw unpack --image "$1:latest" "$2/unpack" && mke2fs -q -F -t ext4 -d "$2/unpack" "$2/peer.ext4" "$3"k'
	sh "$L" "$W" "$((SIZE / 1024))")
# rounds interleave the commands, so drift in the machine's speed (a shared host) hits all alike
for _ in $(seq "$RUNS"); do
	once cold "rm -rf '$W/store' '$W/ours.ext4'" "${CONVERT[@]}"
	once warm "rm -f '$W/ours.ext4'" "${CONVERT[@]}"
	once peer "rm -rf '$W/unpack' '$W/peer.ext4'" "${PEER[@]}"
	once ceiling ":" "$INFLATE" --serial "${BLOBS[@]}"
	if [ "${#BLOBS[@]}" -gt 1 ]; then
		once pceiling ":" "$INFLATE" "${BLOBS[@]}"
	fi
done
report cold "oci2vm convert --format ext4 (cold store)"
report warm "oci2vm convert --format ext4 (warm store)"
report peer "umoci raw unpack + mke2fs -t ext4 -d"
report ceiling "ceiling: flate2/zlib-rs inflate"
if [ "${#BLOBS[@]}" -gt 1 ]; then
	report pceiling "  (layers inflated in parallel)"
fi

# content: regular-file bytes of the unpacked tree, hard links counted once
CONTENT=$(find "$W/unpack" -type f -printf '%i %s\n' | sort -u | awk '{s += $2} END {print s}')
awk -v c="$CONTENT" 'BEGIN {printf "content %d bytes (%.1f MiB); size limit content + 3%% + 8 MiB = %.1f MiB\n", c, c/1048576, c*1.03/1048576 + 8}'
for img in ours peer; do
	fsck=0
	e2fsck -fn "$W/$img.ext4" >/dev/null 2>&1 || fsck=$?
	printf '%-6s image %8.1f MiB apparent %8.1f MiB allocated (du)  e2fsck -fn exit %d\n' "$img" \
		"$(awk "BEGIN{print $(stat -c %s "$W/$img.ext4")/1048576}")" \
		"$(awk "BEGIN{print $(du -k "$W/$img.ext4" | cut -f1)/1024}")" "$fsck"
done
awk -v w="$T_warm" -v c="$T_cold" -v p="$T_peer" -v i="$T_ceiling" 'BEGIN {
	printf "peer / ours (warm) = %.2fx, peer / ours (cold) = %.2fx (target >= 4x)\n", p/w, p/c
	printf "ours (warm) / ceiling = %.2fx, ours (cold) / ceiling = %.2fx (target <= 1.3x)\n", w/i, c/i
}'
if [ -n "${T_pceiling:-}" ]; then
	awk -v w="$T_warm" -v i="$T_pceiling" 'BEGIN {
		printf "ours (warm) / ceiling with the layers inflated in parallel = %.2fx\n", w/i }'
fi
