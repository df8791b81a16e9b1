#!/usr/bin/env bash
# Installs what provenance-oci's integration tests need: Debian's docker-registry (CNCF
# distribution 2.8), started by the tests themselves on 127.0.0.1. Idempotent and quiet:
# does nothing when the binary is already there. Needs root (CI runs as root) or sudo.
set -euo pipefail

if command -v docker-registry >/dev/null 2>&1 || [ -x /usr/bin/docker-registry ]; then
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "ci-setup-oci: need root to apt-get install docker-registry" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends docker-registry >/dev/null

if ! [ -x /usr/bin/docker-registry ]; then
    echo "ci-setup-oci: docker-registry did not install" >&2
    exit 1
fi
# The Debian package enables a system service on :5000; the tests use their own instances.
if command -v systemctl >/dev/null 2>&1; then
    $SUDO systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi
echo "ci-setup-oci: installed $(/usr/bin/docker-registry --version 2>/dev/null || echo docker-registry)"
