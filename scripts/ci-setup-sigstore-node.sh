#!/usr/bin/env bash
# Installs the npm packages of scripts/fixtures/sigstore (@sigstore/mock, @sigstore/verify, ...)
# before `cargo test`: provenance-oci's keyless-signing tests serve @sigstore/mock's Fulcio,
# Rekor and timestamp authority on loopback (mock-services.js) and cross-check their bundles
# with @sigstore/verify (verify-one.js). Needs Node 20 and npm.
# Idempotent and quiet: does nothing when the locked packages are already installed.
set -euo pipefail
cd "$(dirname "$0")/fixtures/sigstore"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "ci-setup-sigstore-node: node and npm are needed (Node 20)" >&2
    exit 1
fi
if [ -d node_modules/@sigstore/mock ] && [ -f node_modules/.package-lock.json ] \
    && [ ! package-lock.json -nt node_modules/.package-lock.json ]; then
    exit 0
fi
npm ci --no-audit --no-fund --loglevel=error >/dev/null
echo "ci-setup-sigstore-node: installed scripts/fixtures/sigstore/node_modules"
