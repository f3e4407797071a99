#!/usr/bin/env bash
# bench/make-layered.sh ROOTFS_TAR OUT_LAYOUT
#
# A four-layer OCI image made from a root filesystem tar (the Debian minbase fixture), for the
# multi-layer benchmarks: real sizes, and an upper layer that leaves dead data below it.
#   layer 1  usr/lib
#   layer 2  the rest of usr
#   layer 3  everything else
#   layer 4  usr/share/doc made opaque (one new README), usr/share/man whited out,
#            usr/bin/perl5.36.0 replaced (its hard-link partner usr/bin/perl keeps the old data)
# Layers are PAX tars (GNU tar, names sorted, numeric owners) compressed with gzip -6 (pigz);
# the layout (oci-layout, index.json, manifest, config) is written here. Runs as root (the
# rootfs has device nodes and other owners).
set -euo pipefail
TAR=${1:?rootfs tar}
OUT=${2:?output layout directory}
W=$(mktemp -d /dev/shm/oci2vm-layered.XXXXXX)
trap 'rm -rf "$W"' EXIT
command -v pigz >/dev/null || { echo "pigz not installed" >&2; exit 1; }

mkdir "$W/root" "$W/top"
tar -C "$W/root" -xpf "$TAR" --numeric-owner
pack() { # NAME DIR PATH... [--exclude=...]: a sorted PAX tar of PATHs under DIR
	local name=$1 dir=$2; shift 2
	tar --sort=name --format=pax --numeric-owner --pax-option=delete=atime,delete=ctime \
		-C "$dir" -cf "$W/$name.tar" "$@"
}
pack l1 "$W/root" usr/lib
pack l2 "$W/root" --exclude=usr/lib usr
pack l3 "$W/root" --exclude=./usr .
mkdir -p "$W/top/usr/share/doc" "$W/top/usr/bin"
: > "$W/top/usr/share/doc/.wh..wh..opq"
echo "documentation removed in the top layer" > "$W/top/usr/share/doc/README"
: > "$W/top/usr/share/.wh.man"
head -c 3000000 /dev/urandom > "$W/top/usr/bin/perl5.36.0"
chmod 755 "$W/top/usr/bin/perl5.36.0"
pack l4 "$W/top" usr

rm -rf "$OUT"
mkdir -p "$OUT/blobs/sha256"
for l in l1 l2 l3 l4; do
	pigz -6 -n -c "$W/$l.tar" > "$W/$l.tar.gz"
done
python3 - "$W" "$OUT" <<'EOF'
import hashlib, json, os, shutil, sys
w, out = sys.argv[1], sys.argv[2]
def put(data=None, path=None):
    if path is not None:
        h = hashlib.sha256()
        with open(path, 'rb') as f:
            for chunk in iter(lambda: f.read(1 << 20), b''):
                h.update(chunk)
        d = h.hexdigest()
        shutil.copyfile(path, f"{out}/blobs/sha256/{d}")
        return d, os.path.getsize(path)
    d = hashlib.sha256(data).hexdigest()
    with open(f"{out}/blobs/sha256/{d}", 'wb') as f:
        f.write(data)
    return d, len(data)
def sha_file(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()
layers, diff_ids = [], []
for l in ['l1', 'l2', 'l3', 'l4']:
    diff_ids.append('sha256:' + sha_file(f"{w}/{l}.tar"))
    d, n = put(path=f"{w}/{l}.tar.gz")
    layers.append({'mediaType': 'application/vnd.oci.image.layer.v1.tar+gzip',
                   'digest': 'sha256:' + d, 'size': n})
config = {'architecture': 'amd64', 'os': 'linux',
          'config': {'Cmd': ['bash'], 'Env': ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin']},
          'rootfs': {'type': 'layers', 'diff_ids': diff_ids}}
cd, cn = put(json.dumps(config, sort_keys=True).encode())
manifest = {'schemaVersion': 2, 'mediaType': 'application/vnd.oci.image.manifest.v1+json',
            'config': {'mediaType': 'application/vnd.oci.image.config.v1+json',
                       'digest': 'sha256:' + cd, 'size': cn},
            'layers': layers}
md, mn = put(json.dumps(manifest, sort_keys=True).encode())
index = {'schemaVersion': 2, 'manifests': [{
    'mediaType': 'application/vnd.oci.image.manifest.v1+json', 'digest': 'sha256:' + md,
    'size': mn, 'annotations': {'org.opencontainers.image.ref.name': 'latest'}}]}
with open(f"{out}/index.json", 'w') as f:
    json.dump(index, f)
with open(f"{out}/oci-layout", 'w') as f:
    json.dump({'imageLayoutVersion': '1.0.0'}, f)
EOF
echo "$OUT: 4 layers, $(du -sb "$OUT/blobs" | cut -f1) bytes of blobs" >&2
