#!/usr/bin/env bash
# Installs every released PyPI `model-signing` still plausibly in use, one Python venv per
# release, for scripts/fixtures/model-signing/releases.sh and the cross-release test
# (examples/provenance-cli/tests/model_signing_releases.rs).
#
# Releases on PyPI (checked with `pip index versions model-signing`): 0.1.0, 0.1.1, 0.2.0,
# 0.3.0, 0.3.1, 1.0.0, 1.0.1, 1.1.0, 1.1.1. All are installed: 0.1.x and 0.2.0 are the
# library-only generation (no CLI; `model_signing.api`), 0.3.0 onwards have the
# `model_signing` CLI.
#
# Each release pins its own dependencies: releases before 1.1 import
# `sigstore_protobuf_specs` and the sigstore 3.x API (sigstore 4 removed both), and every
# release imports pyOpenSSL for certificate signing without declaring it.
#
# Venvs live outside the repository, in ${PROVENANCE_TOOLS_CACHE:-$HOME/.cache/provenance-tools}
# /model-signing/<version>. Idempotent and quiet: a venv whose stamp matches its pins is kept.
set -euo pipefail
CACHE="${PROVENANCE_TOOLS_CACHE:-$HOME/.cache/provenance-tools}/model-signing"
PY="${PYTHON:-python3}"

# version|pins (besides model-signing==version)
RELEASES=(
    "0.1.0|sigstore==3.6.2 pyopenssl==24.3.0 in-toto-attestation==0.9.3"
    "0.1.1|sigstore==3.6.2 pyopenssl==24.3.0 in-toto-attestation==0.9.3"
    "0.2.0|sigstore==3.6.2 pyopenssl==24.3.0 in-toto-attestation==0.9.3"
    "0.3.0|sigstore==3.6.2 pyopenssl==24.3.0 in-toto-attestation==0.9.3 click==8.1.8"
    "0.3.1|sigstore==3.6.2 pyopenssl==24.3.0 in-toto-attestation==0.9.3 click==8.1.8"
    "1.0.0|sigstore==3.6.2 pyopenssl==24.3.0 in-toto-attestation==0.9.3 click==8.1.8"
    "1.0.1|sigstore==3.6.2 pyopenssl==24.3.0 in-toto-attestation==0.9.3 click==8.1.8"
    "1.1.0|sigstore==4.5.1 pyopenssl==26.4.0 in-toto-attestation==0.9.3 click==8.1.8"
    "1.1.1|sigstore==4.5.1 pyopenssl==26.4.0 in-toto-attestation==0.9.3 click==8.1.8"
)

if [ "${1:-}" = "--list" ]; then
    for r in "${RELEASES[@]}"; do echo "${r%%|*}"; done
    exit 0
fi

if ! "$PY" -m venv --help >/dev/null 2>&1; then
    # Stock Debian splits venv out of python3.
    if command -v apt-get >/dev/null 2>&1; then
        apt-get install -y -qq python3-venv >/dev/null
    fi
fi

mkdir -p "$CACHE"
for r in "${RELEASES[@]}"; do
    v=${r%%|*}
    pins="model-signing==$v ${r#*|}"
    dir="$CACHE/$v"
    stamp="$dir/.provenance-pins"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$pins" ] \
        && "$dir/bin/python" -c 'import model_signing, OpenSSL' 2>/dev/null; then
        continue
    fi
    echo "model-signing $v: installing ($pins) into $dir"
    rm -rf "$dir"
    "$PY" -m venv "$dir"
    # shellcheck disable=SC2086
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check $pins
    got=$("$dir/bin/python" -c 'import importlib.metadata as m; print(m.version("model-signing"))')
    if [ "$got" != "$v" ]; then
        echo "model-signing $v: installed $got instead" >&2
        exit 1
    fi
    "$dir/bin/python" -m pip freeze --disable-pip-version-check > "$dir/.provenance-freeze"
    echo "$pins" > "$stamp"
done
