#!/usr/bin/env python3
"""Writes seed inputs for the fuzz targets into DIR (default fuzz/corpus/seeds).

Each seed is what `tar_apply` and `ext4_layers` parse: byte 0 layer count - 1, bytes 1-2
split points (cut = byte * body_len / 256), byte 3 gzip mask, byte 4 ext4 options, then the
layers. Layers are padded with zeros after their end-of-archive blocks (junk after the end is
ignored) so the split points fall exactly on layer boundaries.

    python3 fuzz/seeds.py [DIR]
"""

import io
import os
import sys
import tarfile

T0 = 1_700_000_000


def member(name, kind=tarfile.REGTYPE, data=b"", **kw):
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.size = len(data) if kind == tarfile.REGTYPE else 0
    ti.mtime = kw.pop("mtime", T0)
    ti.mode = kw.pop("mode", 0o755 if kind == tarfile.DIRTYPE else 0o644)
    for k, v in kw.items():
        setattr(ti, k, v)
    return ti, (data if kind == tarfile.REGTYPE else None)


def layer(entries, fmt=tarfile.PAX_FORMAT):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as t:
        for ti, data in entries:
            t.addfile(ti, None if data is None else io.BytesIO(data))
        end = t.offset + 1024
    return out.getvalue()[:end]  # without tarfile's padding to 10 KiB records


def seed(layers, gz=0, flags=0):
    """Header + layers, padded so that cut = byte * len / 256 hits each boundary."""
    n = len(layers)
    assert 1 <= n <= 3
    q = -(-sum(len(l) for l in layers) // 256) + 2 * 512 // 256 * n
    cuts, body, at = [], b"", 0
    for i, l in enumerate(layers[:-1]):
        b = -(-(at + len(l)) // q)  # smallest byte whose cut is past this layer
        cuts.append(b)
        body += l
        body += b"\0" * (b * q - len(body))
        at = len(body)
    body += layers[-1]
    body += b"\0" * (256 * q - len(body))
    assert len(body) == 256 * q
    hdr = [n - 1] + cuts + [0] * (2 - len(cuts)) + [gz, flags]
    return bytes(hdr) + body


def dirent_names(count, width):
    return [("d/" + (f"{i:03}" * 40)[:width]) for i in range(count)]


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus", "seeds")
    os.makedirs(out, exist_ok=True)
    sparse = bytearray(20_000)
    sparse[5000] = 1
    sparse[19_999] = 2
    acl = bytes.fromhex("02000000" "0100" "0600" "ffffffff" "0400" "0400" "ffffffff" "2000" "0400" "ffffffff")
    base = [
        member("etc", tarfile.DIRTYPE),
        member("etc/passwd", data=b"root:x:0:0::/root:/bin/sh\n"),
        member("etc/old", data=b"old " * 700),
        member("etc/gone", data=b"gone " * 300),
        member("opq", tarfile.DIRTYPE),
        member("opq/a", data=b"a" * 3000),
        member("bin", tarfile.DIRTYPE),
        member("bin/sh", data=b"\x7fELF" + b"\1" * 2100, mode=0o4755, uid=70000, gid=70001),
        member("bin/ln", tarfile.LNKTYPE, linkname="bin/sh"),
        member("lib", tarfile.SYMTYPE, linkname="usr/lib"),
        member("long-target", tarfile.SYMTYPE, linkname="t/" * 40),
        member("sparse", data=bytes(sparse)),
        member("zeros", data=bytes(5000)),
        member("empty"),
        member("dev", tarfile.DIRTYPE),
        member("dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3),
        member("dev/sda", tarfile.BLKTYPE, devmajor=259, devminor=70000),
        member("fifo", tarfile.FIFOTYPE),
    ]
    upper = [
        member("etc/old", data=b"new\n"),
        member("etc/.wh.gone"),
        member("opq/.wh..wh..opq"),
        member("opq/b", data=b"b\n"),
        member("bin/.wh.sh"),
        member("lib", tarfile.DIRTYPE),
        member("lib/x.so", data=b"so" * 600),
    ]
    top = [member("etc/old", data=b"newest " * 400), member(".wh.fifo")]
    xattrs = [
        member("x", data=b"x", pax_headers={"SCHILY.xattr.user.a": "1", "SCHILY.xattr.security.capability": "\x01\x00\x00\x02"}),
        member("acl", data=b"acl", pax_headers={"SCHILY.xattr.system.posix_acl_access": acl.decode("utf-8", "surrogateescape")}),
        member("big-xattr", data=b"", pax_headers={"SCHILY.xattr.user.big": "v" * 1500}),
        member("ns", data=b"ns", pax_headers={"mtime": "1700000000.123456789"}),
    ]
    times = [
        member("future", data=b"2038+", mtime=(1 << 31) + 5),
        member("far", data=b"far", mtime=(1 << 32) + 7),
        member("past", data=b"pre-1970", mtime=-86400),
    ]
    many = [member("d", tarfile.DIRTYPE)] + [member(n, tarfile.SYMTYPE, linkname="x") for n in dirent_names(24, 97)]
    longsym = [member("ls", tarfile.SYMTYPE, linkname="a/" * 700)]
    seeds = {
        "one-ustar": seed([layer(base[:4], tarfile.USTAR_FORMAT)]),
        "one-gnu": seed([layer(base, tarfile.GNU_FORMAT)], flags=1),
        "one-pax-gz": seed([layer(base)], gz=1, flags=3),
        "two": seed([layer(base), layer(upper)], gz=2, flags=2),
        "three": seed([layer(base, tarfile.GNU_FORMAT), layer(upper), layer(top)], gz=5, flags=0x21),
        "three-journal": seed([layer(base), layer(upper), layer(top)], gz=7, flags=0x05),
        "xattrs": seed([layer(xattrs)], flags=1),
        "xattrs-nocsum": seed([layer(xattrs)], flags=0x0a),
        "times": seed([layer(times)], flags=0x41),
        "htree": seed([layer(many)], flags=1),
        "htree-off": seed([layer(many)], flags=0x11),
        "long-symlink": seed([layer(longsym)], flags=0),
        "long-symlink-1k": seed([layer(longsym)], flags=1),
    }
    for name, data in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    print(f"{len(seeds)} seeds in {out}")


if __name__ == "__main__":
    main()
