#!/usr/bin/env python3
"""A CycloneDX 1.5 JSON SBOM of one workspace package's binary, from `cargo metadata`.

Usage: scripts/sbom-cyclonedx.py PACKAGE [--out FILE]

Every crate the package's binary is built from (its normal dependencies, transitively, for the
host platform, with the features the package itself enables: `cargo metadata --format-version 1
--locked` for the data and the graph, `cargo tree -p PACKAGE -e normal` for the feature
resolution of the package alone, as `cargo build -p PACKAGE` compiles it) is a component with its name, version, purl `pkg:cargo/NAME@VERSION`, license expression and, when
Cargo.lock records a checksum (crates.io packages), its SHA-256. The package itself is
`metadata.component`; `dependencies` holds the graph. Deterministic: the timestamp is
SOURCE_DATE_EPOCH (default: the commit time of HEAD), the serial number is derived from the
content. Python 3.11 standard library only.
"""

import argparse
import datetime
import hashlib
import json
import os
import subprocess
import sys
import tomllib
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def fail(msg):
    print(f"sbom-cyclonedx: error: {msg}", file=sys.stderr)
    sys.exit(1)


def host_triple():
    out = subprocess.run(["rustc", "-vV"], check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.startswith("host: "):
            return line.split(" ", 1)[1]
    fail("rustc -vV did not say the host triple")


def purl(pkg):
    return f"pkg:cargo/{pkg['name']}@{pkg['version']}"


def source_date():
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if not epoch:
        epoch = subprocess.run(["git", "log", "-1", "--format=%ct", "HEAD"], cwd=ROOT, check=True,
                               capture_output=True, text=True).stdout.strip()
    return datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def component(pkg, checksums, kind):
    c = {
        "type": kind,
        "bom-ref": purl(pkg),
        "name": pkg["name"],
        "version": pkg["version"],
        "purl": purl(pkg),
    }
    if pkg.get("description"):
        c["description"] = pkg["description"].strip()
    if pkg.get("license"):
        c["licenses"] = [{"expression": pkg["license"]}]
    checksum = checksums.get((pkg["name"], pkg["version"], pkg.get("source")))
    if checksum:
        c["hashes"] = [{"alg": "SHA-256", "content": checksum}]
    refs = []
    if pkg.get("repository"):
        refs.append({"type": "vcs", "url": pkg["repository"]})
    if pkg.get("source", "") and pkg["source"].startswith("registry+"):
        refs.append({"type": "distribution",
                     "url": f"https://crates.io/api/v1/crates/{pkg['name']}/{pkg['version']}/download"})
    if refs:
        c["externalReferences"] = refs
    return c


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("package", help="workspace package whose binary the SBOM describes")
    ap.add_argument("--out", help="output file (default: standard output)")
    args = ap.parse_args()

    meta = json.loads(subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--locked", "--filter-platform", host_triple()],
        cwd=ROOT, check=True, capture_output=True, text=True).stdout)
    with open(ROOT / "Cargo.lock", "rb") as f:
        lock = tomllib.load(f)
    checksums = {(p["name"], p["version"], p.get("source")): p["checksum"]
                 for p in lock.get("package", []) if "checksum" in p}

    packages = {p["id"]: p for p in meta["packages"]}
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
    roots = [p["id"] for p in meta["packages"]
             if p["name"] == args.package and p["id"] in meta["workspace_members"]]
    if len(roots) != 1:
        fail(f"{args.package} is not a workspace package")
    root = roots[0]

    # Run-time dependencies: the `normal` edges (kind null), transitively. Build scripts and
    # proc macros run at build time and are not in the binary.
    def all_runtime_deps(node_id):
        out = []
        for d in nodes[node_id]["deps"]:
            if any(k["kind"] is None for k in d["dep_kinds"]):
                out.append(d["pkg"])
        return sorted(set(out))

    # cargo metadata resolves the whole workspace, features unified over every member; cargo
    # tree -p resolves the package alone, which is what its binary is compiled from.
    tree = subprocess.run(
        ["cargo", "tree", "--locked", "-p", args.package, "-e", "normal", "--prefix", "none",
         "-f", "{p}"], cwd=ROOT, check=True, capture_output=True, text=True).stdout
    built = set()
    for line in tree.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1].startswith("v"):
            built.add((parts[0], parts[1][1:]))

    def runtime_deps(node_id):  # noqa: F811 (narrowed to what the package's build compiles)
        return [d for d in all_runtime_deps(node_id)
                if (packages[d]["name"], packages[d]["version"]) in built]

    seen, stack = set(), [root]
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        stack.extend(runtime_deps(n))

    components = sorted((component(packages[i], checksums, "library") for i in seen if i != root),
                        key=lambda c: (c["name"], c["version"]))
    dependencies = sorted(({"ref": purl(packages[i]),
                            "dependsOn": sorted({purl(packages[d]) for d in runtime_deps(i)})}
                           for i in seen), key=lambda d: d["ref"])
    bom = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "metadata": {
            "timestamp": source_date(),
            "component": component(packages[root], checksums, "application"),
        },
        "components": components,
        "dependencies": dependencies,
    }
    body = json.dumps(bom, sort_keys=True).encode()
    bom["serialNumber"] = uuid.uuid5(uuid.NAMESPACE_URL, hashlib.sha256(body).hexdigest()).urn
    text = json.dumps(bom, indent=2) + "\n"
    if args.out:
        Path(args.out).write_text(text)
        print(f"sbom-cyclonedx: {args.package}: {len(components)} components -> {args.out}",
              file=sys.stderr)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
