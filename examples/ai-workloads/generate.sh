#!/bin/sh
# Regenerates examples/ai-workloads/registry/ (and the release key in
# policies/verify-gpu-image-sbom.yaml) offline, with the npm packages pinned by
# scripts/fixtures/sigstore/package-lock.json (@sigstore/sign, @sigstore/mock, nock).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
deps="$here/../../scripts/fixtures/sigstore"
if [ ! -d "$deps/node_modules/@sigstore/mock" ]; then
  (cd "$deps" && npm ci --no-audit --no-fund)
fi
NODE_PATH="$deps/node_modules" exec node "$here/generate.js" "$@"
