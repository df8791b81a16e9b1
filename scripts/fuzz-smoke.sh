#!/usr/bin/env bash
# Runs every cargo-fuzz target for a short time (default 15 s each) from the committed seeds.
# Usage: scripts/fuzz-smoke.sh [seconds-per-target]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${1:-15}"
export RUSTC_BOOTSTRAP=1
# Sanitizer builds get their own warm target directory (other RUSTFLAGS would rebuild the main one).
if [ -z "${FUZZ_TARGET_DIR:-}" ]; then
    if [ -d /work ] && [ -w /work ]; then FUZZ_TARGET_DIR=/work/target-fuzz; else FUZZ_TARGET_DIR="$(pwd)/../../.provenance-target-fuzz"; fi
fi
export CARGO_TARGET_DIR="$FUZZ_TARGET_DIR"
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked -q
fi
targets=$(cargo fuzz list)
cargo fuzz build -O >/tmp/fuzz-build.log 2>&1 || { tail -40 /tmp/fuzz-build.log; exit 1; }
status=0
for t in $targets; do
    mkdir -p "corpus/$t"
    cp -n seeds/"$t"/* "corpus/$t/" 2>/dev/null || true
    if cargo fuzz run -O "$t" "corpus/$t" -- -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 >"/tmp/fuzz-$t.log" 2>&1; then
        echo "fuzz $t: ok ($(grep -Eo 'Done [0-9]+ runs' "/tmp/fuzz-$t.log" | tail -1 | grep -Eo '[0-9]+' || echo '?') runs in ${secs}s, 0 crashes)"
    else
        echo "fuzz $t: FAILED (see /tmp/fuzz-$t.log)"; tail -30 "/tmp/fuzz-$t.log"; status=1
    fi
done
exit $status
