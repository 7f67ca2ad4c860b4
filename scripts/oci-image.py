#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes a one-layer OCI image archive from files on this machine, without
a container daemon: the layer holds exactly the files named, each ELF one
with the shared libraries `ldd` says it loads (and the dynamic loader), so an
image is only what its binary needs.

    oci-image.py --name ghcr.io/weft-mesh/weft-proxy:0.1.0 --out weft-proxy.tar \
        --file build/bin/weft-proxy:/usr/local/bin/weft-proxy \
        --user 15100:15100 --entrypoint /usr/local/bin/weft-proxy \
        --label org.opencontainers.image.version=0.1.0

The archive is an OCI image layout in a tar (`ctr images import` takes it).
It is reproducible: the same files give the same bytes (entries sorted,
times 0, owner root, gzip without name or time), so the same digest.
"""
import argparse
import gzip
import hashlib
import io
import json
import os
import re
import stat
import subprocess
import sys
import tarfile

EPOCH = 0


def is_elf(path):
    with open(path, "rb") as f:
        return f.read(4) == b"\x7fELF"


def ldd_closure(path):
    """The shared objects the dynamic loader maps for path (ldd), as absolute
    paths; empty for a static binary."""
    r = subprocess.run(["ldd", path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        if "not a dynamic executable" in r.stdout or "statically linked" in r.stdout:
            return []
        raise SystemExit("oci-image: ldd %s: %s" % (path, r.stdout.strip()))
    libs = []
    for line in r.stdout.splitlines():
        if "not found" in line:
            raise SystemExit("oci-image: %s: %s" % (path, line.strip()))
        m = re.search(r"=>\s+(/\S+)", line) or re.match(r"\s*(/\S+)\s+\(", line)
        if m:
            libs.append(m.group(1))
    return libs


class Tree:
    """The layer's contents: image path -> (kind, source or target, mode)."""

    def __init__(self):
        self.entries = {}

    def add_dir(self, dest, mode=0o755):
        dest = "/" + dest.strip("/")
        parts = dest.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            p = "/" + "/".join(parts[:i])
            if p not in self.entries:
                self.entries[p] = ("dir", None, mode if i == len(parts) else 0o755)

    def add_file(self, src, dest, mode=None, deps=True):
        dest = "/" + dest.strip("/")
        self.add_dir(os.path.dirname(dest))
        st = os.stat(src)
        self.entries[dest] = ("file", os.path.realpath(src),
                              mode if mode is not None else stat.S_IMODE(st.st_mode))
        if deps and is_elf(src):
            for lib in ldd_closure(src):
                if lib not in self.entries:
                    self.add_file(lib, lib, deps=False)

    def add_link(self, dest, target):
        dest = "/" + dest.strip("/")
        self.add_dir(os.path.dirname(dest))
        self.entries[dest] = ("link", target, 0o777)

    def add_data(self, dest, data, mode=0o644):
        dest = "/" + dest.strip("/")
        self.add_dir(os.path.dirname(dest))
        self.entries[dest] = ("data", data, mode)

    def tar(self):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
            for path in sorted(self.entries):
                kind, what, mode = self.entries[path]
                ti = tarfile.TarInfo(path.lstrip("/"))
                ti.mtime = EPOCH
                ti.uid = ti.gid = 0
                ti.uname = ti.gname = ""
                ti.mode = mode
                if kind == "dir":
                    ti.type = tarfile.DIRTYPE
                    tf.addfile(ti)
                elif kind == "link":
                    ti.type = tarfile.SYMTYPE
                    ti.linkname = what
                    tf.addfile(ti)
                else:
                    data = what if kind == "data" else open(what, "rb").read()
                    ti.size = len(data)
                    tf.addfile(ti, io.BytesIO(data))
        return buf.getvalue()


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def add_blob(tf, data):
    digest = hashlib.sha256(data).hexdigest()
    ti = tarfile.TarInfo("blobs/sha256/" + digest)
    ti.size, ti.mode, ti.mtime = len(data), 0o444, EPOCH
    tf.addfile(ti, io.BytesIO(data))
    return {"digest": "sha256:" + digest, "size": len(data)}


def write_image(out, name, tree, entrypoint=None, cmd=None, user=None, env=None, labels=None,
                workdir="/"):
    """name is a reference or a list of them: one image, several names (one
    index entry each, the same manifest)."""
    names = [name] if isinstance(name, str) else list(name)
    layer = tree.tar()
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    layer_gz = gzip.compress(layer, compresslevel=9, mtime=EPOCH)
    cfg = {"Env": env or ["PATH=/usr/local/bin:/usr/bin:/usr/sbin:/bin:/sbin"],
           "WorkingDir": workdir, "Labels": labels or {}}
    if entrypoint:
        cfg["Entrypoint"] = entrypoint
    if cmd:
        cfg["Cmd"] = cmd
    if user:
        cfg["User"] = user
    config = {"architecture": "amd64", "os": "linux",
              "created": "1970-01-01T00:00:00Z", "config": cfg,
              "rootfs": {"type": "layers", "diff_ids": [diff_id]},
              "history": [{"created": "1970-01-01T00:00:00Z",
                           "created_by": "scripts/oci-image.py"}]}
    tmp = out + ".tmp"
    with open(tmp, "wb") as raw, tarfile.open(fileobj=raw, mode="w",
                                              format=tarfile.USTAR_FORMAT) as tf:
        cdesc = add_blob(tf, canonical(config))
        ldesc = add_blob(tf, layer_gz)
        manifest = {"schemaVersion": 2,
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": dict(mediaType="application/vnd.oci.image.config.v1+json", **cdesc),
                    "layers": [dict(mediaType="application/vnd.oci.image.layer.v1.tar+gzip",
                                    **ldesc)],
                    "annotations": labels or {}}
        mdesc = add_blob(tf, canonical(manifest))
        index = {"schemaVersion": 2,
                 "mediaType": "application/vnd.oci.image.index.v1+json",
                 "manifests": [dict(mediaType="application/vnd.oci.image.manifest.v1+json",
                                    platform={"architecture": "amd64", "os": "linux"},
                                    annotations={"io.containerd.image.name": n,
                                                 "org.opencontainers.image.ref.name":
                                                     n.rsplit(":", 1)[-1]},
                                    **mdesc) for n in names]}
        for fname, obj in (("oci-layout", {"imageLayoutVersion": "1.0.0"}),
                           ("index.json", index)):
            data = canonical(obj)
            ti = tarfile.TarInfo(fname)
            ti.size, ti.mode, ti.mtime = len(data), 0o444, EPOCH
            tf.addfile(ti, io.BytesIO(data))
    os.replace(tmp, out)
    return mdesc["digest"], len(layer_gz)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--name", required=True, action="append",
                    help="image reference, e.g. registry/repo:tag (repeat for more names)")
    ap.add_argument("--out", required=True, help="archive to write")
    ap.add_argument("--file", action="append", default=[],
                    help="SRC[:DEST] (DEST defaults to SRC); ELF files bring their libraries")
    ap.add_argument("--link", action="append", default=[], help="DEST=TARGET symlink")
    ap.add_argument("--dir", action="append", default=[], help="DEST[:MODE] directory")
    ap.add_argument("--data", action="append", default=[],
                    help="DEST=TEXT file holding TEXT (e.g. /etc/passwd)")
    ap.add_argument("--script", action="append", default=[],
                    help="DEST=TEXT like --data, executable (mode 0755)")
    ap.add_argument("--entrypoint", nargs="+")
    ap.add_argument("--cmd", nargs="+")
    ap.add_argument("--user")
    ap.add_argument("--env", action="append")
    ap.add_argument("--label", action="append", default=[], help="KEY=VALUE")
    a = ap.parse_args()

    t = Tree()
    for d in a.dir:
        path, _, mode = d.partition(":")
        t.add_dir(path, int(mode, 8) if mode else 0o755)
    for f in a.file:
        src, _, dest = f.partition(":")
        t.add_file(src, dest or src)
    for l in a.link:
        dest, _, target = l.partition("=")
        t.add_link(dest, target)
    for d in a.data:
        dest, _, text = d.partition("=")
        t.add_data(dest, text.encode().decode("unicode_escape").encode())
    for d in a.script:
        dest, _, text = d.partition("=")
        t.add_data(dest, text.encode().decode("unicode_escape").encode(), mode=0o755)
    labels = dict(l.split("=", 1) for l in a.label)
    digest, size = write_image(a.out, a.name, t, a.entrypoint, a.cmd, a.user, a.env, labels)
    print("%s %s %s layer=%d" % (a.out, ",".join(a.name), digest, size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
