#!/usr/bin/env bash
# Installs cargo-semver-checks from crates.io, pinned, for .ci/run's semver step: the public
# API of the library crates compared with the baseline revision in .ci/semver-baseline.
# The version must read the rustdoc JSON of the Rust toolchain in use (0.51 reads formats
# v57, v60 and v61: Rust 1.95 emits v57); move the pin when a new Rust changes the format.
# Idempotent and quiet: does nothing when that version is already installed. A cold install
# compiles it from source: about 12 minutes on one core of a shared 2-core machine.
set -euo pipefail
VERSION=0.51.0
NEEDS_RUST=1.93 # its rust-version; the workspace builds with older Rust, this tool does not
if [ "$(cargo semver-checks --version 2>/dev/null)" = "cargo-semver-checks $VERSION" ]; then
    exit 0
fi
have_rust=$(rustc --version | awk '{print $2}')
if [ "$(printf '%s\n%s\n' "$NEEDS_RUST" "$have_rust" | sort -V | head -n1)" != "$NEEDS_RUST" ]; then
    # Only .ci/run's semver step needs it, not the test suite: say so and go on.
    echo "ci-setup-semver-checks: cargo-semver-checks $VERSION needs Rust $NEEDS_RUST (found $have_rust): not installed" >&2
    exit 0
fi
cargo install --locked --quiet --version "$VERSION" cargo-semver-checks
got=$(cargo semver-checks --version 2>/dev/null || true)
if [ "$got" != "cargo-semver-checks $VERSION" ]; then
    echo "ci-setup-semver-checks: expected cargo-semver-checks $VERSION, found '${got:-nothing}'" >&2
    exit 1
fi
echo "ci-setup-semver-checks: installed cargo-semver-checks $VERSION"
