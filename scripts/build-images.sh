#!/usr/bin/env bash
# Builds the project's container images without a Docker daemon and without a base image:
#   provenance-webhook  (package provenance-admission-webhook, binary provenance-webhook)
#   model-verifier      (package model-verifier)
# Each image is one layer holding the release binary, exactly the shared libraries `ldd` lists
# for it, /etc/passwd and /etc/group with the non-root user 65532 and, for the webhook (it
# reaches registries over HTTPS), the CA certificates. No shell. The image runs as 65532.
#
# Reproducible: the layer tar has sorted entries, owner 0:0, fixed modes and every mtime set to
# SOURCE_DATE_EPOCH (default: the commit time of HEAD); the config's `created` and the
# `org.opencontainers.image.created` label come from it too. The script assembles every image
# twice from scratch and fails unless both give the same manifest digest; it also compares with
# the digests of the previous run of the same commit, when there is one.
#
# Usage: scripts/build-images.sh [--out DIR] [--no-build]
#   --out DIR    where the OCI layouts go (default: $CARGO_TARGET_DIR/images, else target/images):
#                DIR/<name>/ is an OCI image layout tagged with the workspace version,
#                DIR/digests.txt lists "<name> <version> <manifest digest> <revision>", and
#                DIR/build-info.json records the build for its provenance (the commit, the
#                Cargo.lock digest, the toolchain, start and finish times, the digests):
#                scripts/slsa-provenance.py reads it
#   --no-build   use the release binaries already in the target directory
# Needs: cargo, umoci (apt-get install umoci), GNU tar, ldd, git. Dockerfiles for building the
# same images with a daemon: examples/admission-webhook/Dockerfile, examples/model-verifier/Dockerfile.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

out=""
build=1
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out=${2:?--out needs a folder}; shift 2 ;;
        --no-build) build=0; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "build-images: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

say() { printf 'build-images: %s\n' "$*"; }
die() { printf 'build-images: error: %s\n' "$*" >&2; exit 1; }

for tool in umoci tar ldd git sha256sum; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found (umoci: apt-get install umoci, or scripts/ci-setup-oci.sh)"
done

target="${CARGO_TARGET_DIR:-$repo/target}"
out="${out:-$target/images}"
mkdir -p "$out"
out=$(cd "$out" && pwd)

source_url="https://github.com/provenance-rs/provenance"
version=$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' Cargo.toml | head -n1)
revision=$(git rev-parse HEAD)
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
    say "warning: the work tree has uncommitted changes; the images are labelled with $revision but built from the work tree"
fi
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct HEAD)}"
created=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
say "revision $revision, version $version, SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH ($created)"

started_on=$(date -u +%Y-%m-%dT%H:%M:%SZ)
work=$(mktemp -d "${TMPDIR:-/tmp}/provenance-images.XXXXXX")
trap 'rm -rf "$work"' EXIT

if [ "$build" -eq 1 ]; then
    # The same package set as .ci/extra's release build, so features unify the same way and
    # CI builds the binaries once.
    say "cargo build --release --locked (provenance-cli, provenance-admission-webhook, model-verifier)"
    cargo build --release --locked -p provenance-cli -p provenance-admission-webhook -p model-verifier
fi
cargo_command="cargo build --release --locked -p provenance-cli -p provenance-admission-webhook -p model-verifier"

# rootfs NAME BINARY CA DEST: the root filesystem of one image in DEST.
rootfs() {
    local name=$1 bin=$2 ca=$3 dest=$4
    mkdir -p "$dest/usr/local/bin" "$dest/etc"
    install -m 0755 "$bin" "$dest/usr/local/bin/$name"
    # Exactly what the dynamic loader needs: every absolute path ldd prints (the libraries and
    # the loader itself, at the path the binary names), copied as files.
    local lib
    while read -r lib; do
        [ -n "$lib" ] || continue
        mkdir -p "$dest$(dirname "$lib")"
        install -m 0755 "$(readlink -f "$lib")" "$dest$lib"
    done < <(ldd "$bin" | grep -o '/[^ ]*' | sort -u)
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin\n' >"$dest/etc/passwd"
    printf 'root:x:0:\nnonroot:x:65532:\n' >"$dest/etc/group"
    chmod 0644 "$dest/etc/passwd" "$dest/etc/group"
    mkdir -p "$dest/tmp"
    if [ "$ca" = ca ]; then
        local bundle=/etc/ssl/certs/ca-certificates.crt
        [ -s "$bundle" ] || die "$bundle missing (apt-get install ca-certificates)"
        mkdir -p "$dest/etc/ssl/certs"
        install -m 0644 "$bundle" "$dest/etc/ssl/certs/ca-certificates.crt"
    fi
    find "$dest" -type d -exec chmod 0755 {} +
    chmod 1777 "$dest/tmp"
}

# layer SRC TAR: a reproducible tar of SRC (sorted names, 0:0, mtime SOURCE_DATE_EPOCH).
layer() {
    local src=$1 tarball=$2
    (cd "$src" && find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort) >"$tarball.list"
    tar --create --file "$tarball" --directory "$src" --no-recursion --verbatim-files-from \
        --files-from "$tarball.list" --format=gnu --numeric-owner --owner=0 --group=0 \
        --mtime="@$SOURCE_DATE_EPOCH"
    rm -f "$tarball.list"
}

# image NAME BINARY CA LAYOUT: assembles the image into a fresh OCI layout, prints its digest.
image() {
    local name=$1 bin=$2 ca=$3 layout=$4
    local stage
    stage=$(mktemp -d "$work/stage.XXXXXX")
    rootfs "$name" "$bin" "$ca" "$stage/rootfs"
    layer "$stage/rootfs" "$stage/layer.tar"
    # The root filesystem is enough to run the binary (as root can check: chroot).
    if [ "$(id -u)" -eq 0 ] && command -v chroot >/dev/null 2>&1; then
        chroot --userspec=65532:65532 "$stage/rootfs" "/usr/local/bin/$name" --help >/dev/null \
            || die "$name does not run in its own root filesystem"
    fi
    rm -rf "$layout"
    umoci init --layout "$layout" >&2
    umoci new --image "$layout:$version" >&2
    umoci raw add-layer --image "$layout:$version" --history.created "$created" \
        --history.created_by "scripts/build-images.sh ($name)" "$stage/layer.tar" >&2
    umoci config --image "$layout:$version" --no-history \
        --created "$created" --author "The provenance authors" \
        --config.entrypoint "/usr/local/bin/$name" \
        --config.user 65532:65532 --config.workingdir / \
        --config.env PATH=/usr/local/bin \
        --config.label "org.opencontainers.image.title=$name" \
        --config.label "org.opencontainers.image.source=$source_url" \
        --config.label "org.opencontainers.image.revision=$revision" \
        --config.label "org.opencontainers.image.created=$created" \
        --config.label "org.opencontainers.image.version=$version" \
        --config.label "org.opencontainers.image.licenses=Apache-2.0" >&2
    umoci gc --layout "$layout" >&2
    rm -rf "$stage"
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"])' \
        "$layout/index.json"
}

previous="$out/digests.txt"
declare -A before=()
if [ -f "$previous" ]; then
    while read -r n v d r; do
        [ "$r" = "$revision" ] && [ "$v" = "$version" ] && before[$n]=$d
    done <"$previous"
fi

: >"$work/digests.txt"
for spec in provenance-webhook:provenance-admission-webhook:ca model-verifier:model-verifier:noca; do
    IFS=: read -r name package ca <<<"$spec"
    bin="$target/release/$name"
    [ -x "$bin" ] || die "$bin not built (run without --no-build)"
    say "$name: binary $(sha256sum "$bin" | cut -c1-64)"
    first=$(image "$name" "$bin" "$ca" "$out/$name")
    second=$(image "$name" "$bin" "$ca" "$work/$name-again")
    if [ "$first" != "$second" ]; then
        die "$name is not reproducible: $first, then $second from the same inputs"
    fi
    say "$name: reproducible: assembled twice from scratch, both $first"
    if [ -n "${before[$name]:-}" ]; then
        if [ "${before[$name]}" = "$first" ]; then
            say "$name: same digest as the previous build of this commit"
        else
            say "warning: $name: the previous build of this commit gave ${before[$name]} (different binary or host libraries?)"
        fi
    fi
    printf '%s %s %s %s %s %s\n' "$name" "$version" "$first" "$revision" "$package" \
        "$(sha256sum "$bin" | cut -c1-64)" >>"$work/digests.txt"
    say "$name: oci:$out/$name:$version"
done
finished_on=$(date -u +%Y-%m-%dT%H:%M:%SZ)
python3 - "$work/digests.txt" "$out/build-info.json" <<PY
import json, sys
images = {}
for line in open(sys.argv[1]):
    name, version, digest, revision, package, binary = line.split()
    images[name] = {"package": package, "binary": name, "digest": digest, "binarySha256": binary}
info = {
    "source": "$source_url", "revision": "$revision", "version": "$version",
    "sourceDateEpoch": $SOURCE_DATE_EPOCH, "startedOn": "$started_on", "finishedOn": "$finished_on",
    "cargoCommand": "$cargo_command", "rustc": "$(rustc --version)",
    "cargoLockSha256": "$(sha256sum Cargo.lock | cut -c1-64)", "images": images,
}
open(sys.argv[2], "w").write(json.dumps(info, indent=2) + "\n")
PY
cut -d' ' -f1-4 "$work/digests.txt" >"$out/digests.txt"
cat "$out/digests.txt"
