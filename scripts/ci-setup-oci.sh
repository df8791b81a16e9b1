#!/usr/bin/env bash
# Installs what provenance-oci's integration tests need from Debian:
#   docker-registry  (CNCF distribution 2.8; the tests start their own instances on 127.0.0.1)
#   skopeo           (layout interoperability test; pushes the project's images in CI)
#   umoci            (scripts/build-images.sh: the project's images, without a daemon)
# Idempotent and quiet: installs only what is missing. Needs root (CI runs as root) or sudo.
set -euo pipefail

missing=()
[ -x /usr/bin/docker-registry ] || command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
command -v skopeo >/dev/null 2>&1 || missing+=(skopeo)
command -v umoci >/dev/null 2>&1 || missing+=(umoci)
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "ci-setup-oci: need root to apt-get install ${missing[*]}" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

for bin in docker-registry skopeo umoci; do
    if ! command -v "$bin" >/dev/null 2>&1; then
        echo "ci-setup-oci: $bin did not install" >&2
        exit 1
    fi
done
# The Debian package may enable a system service on :5000; the tests use their own instances.
if command -v systemctl >/dev/null 2>&1; then
    $SUDO systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi
echo "ci-setup-oci: installed ${missing[*]}"
