#!/usr/bin/env bash
# Prepares a fresh machine for the full test suite (`cargo test --workspace --locked`): checks
# what must already be there, then runs every scripts/ci-setup-*.sh (each idempotent: it does
# nothing when its tools are already there).
#
# Must already be there (this script says which are missing and does not install them):
#   - Rust: rustc and cargo at least the workspace's `rust-version` (Cargo.toml), with rustfmt
#     and clippy for .ci/run;
#   - a C compiler (`cc`: gcc or clang) for the crypto crates (aws-lc-rs);
#   - Node 20 and npm (@sigstore/mock, @sigstore/sign, @sigstore/verify);
#   - Python 3 with pip and venv (model-signing, sigstore-python);
#   - the shared corpora in ../shared beside the clone, or in $PROVENANCE_SHARED.
# Installed by the ci-setup scripts (root or sudo for the Debian packages):
#   - Debian `docker-registry` (CNCF distribution 2.8), `skopeo` and `umoci`: scripts/ci-setup-oci.sh;
#   - npm packages of scripts/fixtures/sigstore: scripts/ci-setup-sigstore-node.sh;
#   - PyPI model-signing + pyopenssl, sigstore, and one venv per model-signing release:
#     scripts/ci-setup-model-signing*.sh, scripts/ci-setup-sigstore-python.sh;
#   - crates.io cargo-semver-checks, pinned, for .ci/run's semver step (compiled from source:
#     minutes on a cold machine; skipped with a note below Rust 1.93):
#     scripts/ci-setup-semver-checks.sh.
#
# `scripts/setup.sh --check` only reports. The main job of the README (the AI-workload
# example, offline) needs only Rust and a C compiler.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

check_only=0
case "${1:-}" in
    --check) check_only=1 ;;
    "") ;;
    *) echo "usage: scripts/setup.sh [--check]" >&2; exit 2 ;;
esac

missing=()
note() { printf 'setup: %s\n' "$*"; }

# version_ge A B: whether dotted version A >= B.
version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }

want_rust=$(sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' Cargo.toml | head -n1)
if command -v rustc >/dev/null 2>&1 && command -v cargo >/dev/null 2>&1; then
    have_rust=$(rustc --version | awk '{print $2}')
    if version_ge "$have_rust" "$want_rust"; then
        note "rustc $have_rust (>= $want_rust)"
    else
        missing+=("rustc >= $want_rust (found $have_rust; rustup update stable)")
    fi
    cargo fmt --version >/dev/null 2>&1 || missing+=("rustfmt (rustup component add rustfmt)")
    cargo clippy --version >/dev/null 2>&1 || missing+=("clippy (rustup component add clippy)")
else
    missing+=("rustc and cargo >= $want_rust (https://rustup.rs)")
fi

if command -v cc >/dev/null 2>&1; then
    note "C compiler: $(cc --version | head -n1)"
else
    missing+=("a C compiler as cc (apt-get install gcc)")
fi

if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
    node_major=$(node --version | sed 's/^v\([0-9]*\).*/\1/')
    if [ "$node_major" -ge 20 ]; then
        note "node $(node --version)"
    else
        missing+=("Node 20 or later (found $(node --version))")
    fi
else
    missing+=("Node 20 and npm")
fi

if command -v python3 >/dev/null 2>&1 && python3 -m pip --version >/dev/null 2>&1; then
    note "$(python3 --version)"
    # The releases script installs python3-venv itself on Debian when it can.
    python3 -m venv --help >/dev/null 2>&1 || note "python3 venv missing (scripts/ci-setup-model-signing-releases.sh installs python3-venv as root)"
else
    missing+=("Python 3 with pip (apt-get install python3 python3-pip python3-venv)")
fi

shared="${PROVENANCE_SHARED:-$repo/../shared}"
if [ -d "$shared/corpora" ]; then
    note "shared corpora: $shared"
else
    missing+=("the shared corpora at $shared/corpora (set PROVENANCE_SHARED)")
fi

if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: missing on this machine:" >&2
    printf '  - %s\n' "${missing[@]}" >&2
    exit 1
fi
[ "$check_only" -eq 1 ] && exit 0

for s in scripts/ci-setup-*.sh; do
    [ -e "$s" ] || continue
    note "$s"
    bash "$s"
done
note "ready: cargo test --workspace --locked"
