#!/usr/bin/env python3
"""Checks the workspace's crate graph against the layering of docs/architecture.md.

Every crate of the workspace is listed below, bottom first, with the crates of ours it
may use (any kind of dependency: normal, build or dev). The check fails, naming the
crate and the edge, if a crate uses one it may not, if a crate is missing from the list,
if the list itself reaches up (a crate may only use crates listed before it), or if a
crate's name does not match its folder (`om-<folder>`, or the folder's own name).

Run from anywhere in the checkout: python3 scripts/layers.py
"""
import json
import os
import subprocess
import sys

# Bottom first. A crate may use only crates listed before it, and of those only these.
LAYERS = [
    ("om-sys", []),
    ("om-map", []),
    ("om-proto", []),
    ("om-hpcproto", []),
    ("om-docgen", []),
    ("om-testprogs", []),
    ("om-wire", ["om-proto"]),
    ("om-ckpt", ["om-sys", "om-testprogs"]),
    ("om-remote", ["om-ckpt", "om-sys", "om-testprogs"]),
    # Migration between omds: the protocol, the registry, the home and target sides.
    ("om-migrate", ["om-ckpt", "om-map", "om-proto", "om-remote", "om-wire"]),
    (
        "omd",
        [
            "om-ckpt",
            "om-docgen",
            "om-hpcproto",
            "om-map",
            "om-migrate",
            "om-proto",
            "om-remote",
            "om-wire",
        ],
    ),
    # omckpt is a single-node tool: it must never reach the remote or migration crates.
    ("om-tools", ["om-ckpt", "om-docgen", "om-map", "om-proto", "om-sys", "om-testprogs"]),
    ("om-mosmon", ["om-docgen", "om-proto"]),
    # The cluster harness runs omd as a program; its tests use omd's library.
    ("omcluster", ["om-docgen", "om-map", "om-migrate", "om-proto", "om-sys", "om-testprogs", "omd"]),
    ("om-bench", ["om-ckpt", "om-migrate", "omcluster", "omd"]),
]


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    meta = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--no-deps", "--offline"],
            cwd=root,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    ours = {p["name"]: p for p in meta["packages"]}
    problems = []
    order = {name: i for i, (name, _) in enumerate(LAYERS)}
    for i, (name, allowed) in enumerate(LAYERS):
        for dep in allowed:
            if order.get(dep, len(LAYERS)) >= i:
                problems.append(f"the list lets {name} use {dep}, which is not below it")
    for name, p in sorted(ours.items()):
        if name not in order:
            problems.append(f"{name} is not in the layering (scripts/layers.py)")
            continue
        allowed = set(dict(LAYERS)[name])
        for dep in p["dependencies"]:
            d = dep["name"]
            if d in ours and d != name and d not in allowed:
                kind = dep["kind"] or "normal"
                problems.append(f"{name} uses {d} ({kind} dependency), which it may not")
        folder = os.path.basename(os.path.dirname(p["manifest_path"]))
        if name not in (folder, f"om-{folder}"):
            problems.append(f"{name} lives in {folder}/: name it om-{folder} or move it")
    for name in order:
        if name not in ours:
            problems.append(f"{name} is in the layering but not in the workspace")
    if problems:
        for line in problems:
            print(f"layers: {line}", file=sys.stderr)
        sys.exit(1)
    print(f"layers: {len(ours)} crates, every dependency points down")


if __name__ == "__main__":
    main()
