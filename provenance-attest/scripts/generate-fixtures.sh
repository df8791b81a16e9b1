#!/usr/bin/env bash
# Generates documents with real tools (PyPI cyclonedx-bom, spdx-tools, in-toto) for
# provenance-attest's round-trip test (tests/generated.rs). Nothing generated is committed.
#
#   provenance-attest/scripts/generate-fixtures.sh /tmp/attest-fixtures
#   PROVENANCE_ATTEST_FIXTURES=/tmp/attest-fixtures cargo test -p provenance-attest --test generated
#
# Needs python3 (>= 3.9) with venv and access to PyPI. Versions are pinned.
set -euo pipefail
out="${1:?usage: generate-fixtures.sh OUT_DIR}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
here="$(cd "$(dirname "$0")" && pwd)"
venv="$out/venv"

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q --disable-pip-version-check \
  "cyclonedx-bom==7.5.0" "cyclonedx-python-lib==11.12.0" "spdx-tools==0.8.5" "in-toto==3.1.0"

# CycloneDX: SBOMs of the Python environment above, as cyclonedx-py writes them.
for v in 1.4 1.5 1.6; do
  "$venv/bin/cyclonedx-py" environment "$venv" --spec-version "$v" --output-format JSON \
    --output-file "$out/cyclonedx-py-env-$v.json"
done
"$venv/bin/cyclonedx-py" environment "$venv" --spec-version 1.6 --output-format XML \
  --output-file "$out/cyclonedx-py-env-1.6.xml"

# SPDX 2.3: a document for the same environment, built and validated by spdx-tools.
"$venv/bin/python" "$here/spdx_env.py" "$out/spdx-tools-env-2.3.spdx.json"

# in-toto: a DSSE-wrapped link made by in-toto-run with an Ed25519 key.
work="$out/intoto-work"
rm -rf "$work" && mkdir -p "$work" && cd "$work"
"$venv/bin/python" - <<'PY'
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
key = ed25519.Ed25519PrivateKey.generate()
open("key.pem", "wb").write(key.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
open("key.pub.pem", "wb").write(key.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
PY
echo "model weights" > weights.bin
"$venv/bin/in-toto-run" --use-dsse --step-name package --signing-key key.pem \
  --materials weights.bin --products weights.bin -- sha256sum weights.bin >/dev/null
cp package.*.link "$out/in-toto-run-dsse.link.json"
cp key.pub.pem "$out/in-toto-run-dsse.key.pub.pem"
cd "$out" && rm -rf "$work"
ls -l "$out"
