#!/usr/bin/env python3
"""Packs a directory as a one-layer image tarball (docker-archive format) that
`ctr -n k8s.io images import` loads: no registry, no Docker engine.

    mkimage.py ROOTFS OUT.tar NAME:TAG [--entrypoint ARG ...] [--user UID]

Files are stored owned by root with mtime 0, sorted, so the same input gives the same image.
"""
import argparse
import hashlib
import io
import json
import os
import tarfile


def layer(rootfs):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for root, dirs, files in os.walk(rootfs):
            dirs.sort()
            for name in sorted(dirs) + sorted(files):
                path = os.path.join(root, name)
                info = tar.gettarinfo(path, arcname=os.path.relpath(path, rootfs))
                info.uid = info.gid = 0
                info.uname = info.gname = "root"
                info.mtime = 0
                if info.isfile():
                    with open(path, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
    return buf.getvalue()


def add(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("rootfs")
    p.add_argument("out")
    p.add_argument("ref")
    p.add_argument("--entrypoint", nargs="+", default=[])
    p.add_argument("--user", default="")
    a = p.parse_args()
    blob = layer(a.rootfs)
    diff_id = "sha256:" + hashlib.sha256(blob).hexdigest()
    config = json.dumps({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": a.entrypoint or None, "User": a.user, "Env": ["PATH=/bin:/usr/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "tests/cluster/images/mkimage.py"}],
    }, sort_keys=True).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    layer_name = diff_id[7:] + "/layer.tar"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [a.ref], "Layers": [layer_name]}]).encode()
    with tarfile.open(a.out, "w") as tar:
        add(tar, config_name, config)
        add(tar, layer_name, blob)
        add(tar, "manifest.json", manifest)


if __name__ == "__main__":
    main()
