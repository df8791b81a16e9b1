#!/bin/sh
# Regenerates examples/ai-workloads/registry/ (and the release key in
# policies/verify-gpu-image-sbom.yaml) offline: the images are built by generate.js, every
# signature and attestation is written by `provenance sign image` / `provenance attest` against
# the loopback Sigstore mock of scripts/fixtures/sigstore (npm packages pinned by its
# package-lock.json). With an argument OUT, writes OUT/registry and OUT/policies instead.
# PROVENANCE_BIN: a provenance binary to use (default: built here with cargo).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
deps="$root/scripts/fixtures/sigstore"
if [ ! -d "$deps/node_modules/@sigstore/mock" ]; then
  (cd "$deps" && npm ci --no-audit --no-fund)
fi
if [ -z "${PROVENANCE_BIN:-}" ]; then
  (cd "$root" && cargo build -q -p provenance-cli)
  PROVENANCE_BIN="${CARGO_TARGET_DIR:-$root/target}/debug/provenance"
fi
export PROVENANCE_BIN
exec node "$here/generate.js" "$@"
