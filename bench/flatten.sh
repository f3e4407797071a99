#!/usr/bin/env bash
# Flatten benchmark: our layer engine + tar writer against the inflate ceiling, gzip -dc and
# umoci raw unpack + tar -c, on one fixture image, all in /dev/shm, same run.
#
# usage: bench/flatten.sh [IMAGE (default debian-minbase)] [RUNS (default 3)]
# prints: wall seconds (best and median of RUNS), MB/s of uncompressed layer data (best), peak RSS
# (MiB, of the best run); the ratio line uses medians
set -euo pipefail
NAME=${1:-debian-minbase}
RUNS=${2:-3}
FIX=${OCI2VM_FIXTURES:-/var/tmp/oci2vm-fixtures}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
W=/dev/shm/oci2vm-bench.$$
trap 'rm -rf "$W"' EXIT
[ -x /usr/bin/time ] || { echo "install package 'time' (/usr/bin/time -v)" >&2; exit 1; }
[ -d "$FIX/oci/$NAME" ] || { echo "fixture $FIX/oci/$NAME missing" >&2; exit 1; }

(cd "$ROOT" && cargo build -q --release -p oci2vm --example flatten --example inflate)
FLATTEN=$ROOT/target/release/examples/flatten
INFLATE=$ROOT/target/release/examples/inflate

mkdir -p "$W"
cp -a "$FIX/oci/$NAME" "$W/layout"
L=$W/layout
mdig=$(jq -r '.manifests[0].digest' "$L/index.json")
mapfile -t BLOBS < <(jq -r '.layers[].digest' "$L/blobs/sha256/${mdig#sha256:}" | sed "s|sha256:|$L/blobs/sha256/|")
BYTES=0
for b in "${BLOBS[@]}"; do BYTES=$((BYTES + $(gzip -dc "$b" | wc -c))); done
COMP=$(cat "${BLOBS[@]}" | wc -c)
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) (wall times are only meaningful on an idle machine)"
echo "image $NAME: ${#BLOBS[@]} layer(s), $COMP compressed, $BYTES uncompressed bytes; $(nproc) cpus; best of $RUNS"

# run LABEL CMD...: best wall time and the peak RSS of that run
run() {
  local label=$1; shift
  local best="" rss="" cpu="" walls=()
  for _ in $(seq "$RUNS"); do
    rm -rf "$W/out" "$W/out.tar" "$W/unpack"
    /usr/bin/time -v -o "$W/time.txt" "$@" >/dev/null 2>"$W/err.txt" || { cat "$W/err.txt" >&2; exit 1; }
    local wall r
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$W/time.txt")
    r=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$W/time.txt")
    c=$(awk -F': ' '/User time|System time/ {s+=$2} END {print s}' "$W/time.txt")
    walls+=("$wall")
    if [ -z "$best" ] || awk "BEGIN{exit !($wall < $best)}"; then best=$wall; rss=$r; cpu=$c; fi
  done
  local med
  med=$(printf '%s\n' "${walls[@]}" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}')
  printf '%-34s %7.3f s best %7.3f s median %7.3f s cpu %8.1f MB/s %7.1f MiB peak RSS\n' "$label" \
    "$best" "$med" "$cpu" "$(awk "BEGIN{print $BYTES/1e6/($best>0?$best:0.001)}")" \
    "$(awk "BEGIN{print $rss/1024}")"
  eval "T_${label//[^a-zA-Z0-9]/_}=$med"
}

run "oci2vm flatten (layers->tar)" "$FLATTEN" "$L" latest "$W/out.tar"
run "ceiling: flate2/zlib-rs inflate" "$INFLATE" "${BLOBS[@]}"
run "gzip -dc" sh -c 'for b in "$@"; do gzip -dc "$b"; done >/dev/null' sh "${BLOBS[@]}"
if command -v umoci >/dev/null; then
  run "umoci raw unpack + tar -c" sh -c 'umoci raw unpack --image "$1:latest" "$2/unpack" && tar -C "$2/unpack" -cf "$2/out.tar" .' sh "$L" "$W"
else
  echo "umoci not installed: skipped"
fi
awk "BEGIN{c=$T_ceiling__flate2_zlib_rs_inflate; if (c < 0.02) print \"flatten / ceiling: ceiling below the timer's resolution (image too small)\"; else printf \"flatten / ceiling (medians) = %.2fx (target <= 1.20x)\n\", $T_oci2vm_flatten__layers__tar_/c}"
