#!/usr/bin/env bash
# Installs PyPI sigstore (sigstore-python), pinned, for the tests that use it as an independent
# signer and verifier: scripts/fixtures/sigstore/cosign3_sign_sigstore_python.py (cosign 3 image
# signatures, examples/provenance-cli/tests/cosign3.rs) and verify_one_sigstore_python.py.
# Idempotent and quiet: does nothing when that version is already installed.
set -euo pipefail
VERSION=4.5.1
if python3 -c "import sigstore, sys; sys.exit(sigstore.__version__ != '$VERSION')" 2>/dev/null; then
    exit 0
fi
python3 -m pip install --quiet --disable-pip-version-check "sigstore==$VERSION"
echo "ci-setup-sigstore-python: installed sigstore $VERSION"
