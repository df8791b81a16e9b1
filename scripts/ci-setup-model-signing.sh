#!/usr/bin/env bash
# Installs PyPI model-signing (the reference OpenSSF model-signing implementation) and
# pyopenssl, for scripts/fixtures/model-signing/{generate,cross-check}.sh and the model bench.
# Idempotent and quiet: does nothing when `model_signing` already runs.
set -euo pipefail
if command -v model_signing >/dev/null 2>&1 && python3 -c 'import model_signing, OpenSSL' 2>/dev/null; then
    exit 0
fi
python3 -m pip install --quiet --disable-pip-version-check 'model-signing>=1.1,<2' pyopenssl
