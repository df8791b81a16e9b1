#!/usr/bin/env bash
# Side by side, in one run, on the same inputs: provenance against the implementations people
# use today, and a ratio table (peer time / our time; above 1 means we are faster).
#
#   area                 ours                                     peer
#   bundle verification  provenance-core Verifier                 sigstore-python 4.5.1, @sigstore/verify 3.1.1
#   model folder         `provenance verify model`                `model_signing verify key` 1.1.1
#   JMESPath             provenance-policy jmespath               PyPI jmespath 1.1.0
#   CEL                  provenance-policy cel                    PyPI cel-python 0.5.0
#   CycloneDX parsing    provenance-attest cyclonedx::Bom         cyclonedx-python-lib 11.12.0
#   webhook throughput   provenance-webhook (scripts/webhook-load.sh)   no peer runs here
#
# Method: in-process timing loops on both sides (prepare once, check the result once, repeat
# the operation for SECONDS, report mean wall and thread-CPU time per operation; the ratio uses
# CPU time, which waiting for a core on a shared machine does not inflate). Model folders are
# timed as whole commands (process start included) with /usr/bin/time, three runs each.
# Peers are installed by this script: a venv (with system site packages) under $PEERS_DIR, and
# `npm ci` in scripts/fixtures/sigstore.
#
# Usage: scripts/bench-peers.sh [SECONDS per loop, default 3] [MODEL_MB, default 256]
# Env: CARGO_TARGET_DIR (default target), PEERS_DIR (default ~/.cache/provenance-peers),
#      PROVENANCE_SHARED (default ../shared), SKIP_WEBHOOK=1 / SKIP_MODEL=1 to leave out the
#      load test / the model folders, SKIP_BUILD=1 to use the release binaries already built.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECS=${1:-3}
MODEL_MB=${2:-256}
TARGET=${CARGO_TARGET_DIR:-target}
PEERS_DIR=${PEERS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/provenance-peers}
SHARED=${PROVENANCE_SHARED:-$ROOT/../shared}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT

echo "== machine: $(nproc) cores; $(uptime)"
START_LOAD=$(uptime | sed 's/.*load average: //')

echo "== peers"
if [ ! -x "$PEERS_DIR/venv/bin/python" ]; then
    python3 -m venv --system-site-packages "$PEERS_DIR/venv"
fi
PY=$PEERS_DIR/venv/bin/python
"$PY" -m pip install --quiet --disable-pip-version-check \
    'sigstore==4.5.1' 'jmespath==1.1.0' 'cel-python==0.5.0' 'cyclonedx-python-lib==11.12.0' \
    'model-signing==1.1.1' pyopenssl
(cd scripts/fixtures/sigstore && { [ -d node_modules/@sigstore/verify ] || npm ci --silent --no-audit --no-fund; })
"$PY" -c 'import importlib.metadata as m; print("  " + ", ".join(f"{p} {m.version(p)}" for p in ["sigstore", "jmespath", "cel-python", "cyclonedx-python-lib", "model-signing"]))'
echo "  node $(node --version), @sigstore/verify $(node -p 'require("./scripts/fixtures/sigstore/node_modules/@sigstore/verify/package.json").version')"

echo "== build (release)"
[ "${SKIP_BUILD:-}" = 1 ] || cargo build --release --locked -q -p provenance-policy --example peer_timings \
    -p provenance-cli --bin provenance -p provenance-admission-webhook --bins
OURS=$TARGET/release/examples/peer_timings

ROWS=()
# cpu LINE: the "X us cpu" figure of a timing line.
cpu() { sed -n 's/.* \([0-9.]*\) us cpu per op.*/\1/p' <<<"$1"; }
# row AREA INPUT OURS_LINE PEER PEER_LINE
row() {
    local o p
    o=$(cpu "$3"); p=$(cpu "$5")
    ROWS+=("| $1 | ${2//|/\\|} | $o µs | $4 | $p µs | $(awk -v a="$p" -v b="$o" 'BEGIN{printf "%.1f×", a/b}') |")
}
show() { echo "  $1"; }

echo "== bundle verification (keyless v0.3 with TSA: Fulcio chain, SCT, Rekor SET + inclusion proof + checkpoint, RFC 3161)"
FX=provenance-core/tests/fixtures/sigstore/keyless-msg-v0.3
o=$("$OURS" bundle "$FX" "$SECS"); show "$o"
j=$(node scripts/fixtures/sigstore/bench_sigstore_js.js "$FX" "$SECS"); show "$j"
p=$("$PY" scripts/fixtures/sigstore/bench_sigstore_python.py "$SHARED" | grep with_tsa); show "$p"
pl="x: 0 us wall, $(sed -n 's/.* \([0-9.]*\) us cpu per verify.*/\1/p' <<<"$p") us cpu per op"
row "bundle verification" "own keyless v0.3 bundle" "$o" "sigstore-python 4.5.1" "$pl"
row "bundle verification" "same" "$o" "@sigstore/verify 3.1.1 (node $(node --version))" "$j"

"$PY" scripts/peers/inputs.py "$W"
echo "== JMESPath (precompiled, over a parsed ~3 KB AdmissionReview)"
for e in "request.object.spec.containers[?image=='x'].name | length(@)@1" \
         "request.object.metadata.labels.team@\"ml-platform\"" \
         "request.object.spec.containers[].image | [?starts_with(@, 'registry.example.com/')] | length(@)@2"; do
    expr=${e%@*}; want=${e##*@}
    o=$("$OURS" jmespath "$expr" "$W/review.json" "$want" "$SECS"); show "$o"
    p=$(cd scripts/peers && "$PY" jmespath_py.py "$expr" "$W/review.json" "$want" "$SECS"); show "$p"
    row "JMESPath" "\`$expr\`" "$o" "jmespath 1.1.0" "$p"
done

echo "== CEL (compiled once; binding the Pod as \`object\` included in every evaluation)"
for e in "object.spec.containers.all(c, c.env.exists(e, e.name == 'DATASET_SHA256'))@true" \
         "object.metadata.labels['app'] == 'llama-server'@true"; do
    expr=${e%@*}; want=${e##*@}
    o=$("$OURS" cel "$expr" "$W/pod.json" "$want" "$SECS"); show "$o"
    p=$(cd scripts/peers && "$PY" cel_py.py "$expr" "$W/pod.json" "$want" "$SECS"); show "$p"
    row "CEL" "\`$expr\`, 3-container Pod" "$o" "cel-python 0.5.0" "$p"
done

echo "== CycloneDX (JSON text to the typed model)"
for bom in "$SHARED/corpora/predicates/cyclonedx/sbom/laravel-7.12.0.bom.1.4.json" \
           "$SHARED/corpora/predicates/cyclonedx/mlbom/valid-machine-learning-1.6.json"; do
    o=$("$OURS" cyclonedx "$bom" - "$SECS"); show "$o"
    p=$(cd scripts/peers && "$PY" cyclonedx_py.py "$bom" "$SECS"); show "$p"
    row "CycloneDX parsing" "$(basename "$bom") ($(($(stat -c %s "$bom") / 1024)) KiB)" "$o" "cyclonedx-python-lib 11.12.0" "$p"
done

if [ "${SKIP_MODEL:-}" != 1 ]; then
echo "== model folder ($MODEL_MB MiB in 5 files, key signature, whole commands, 3 runs each)"
MODEL_OUT=$(PATH="$PEERS_DIR/venv/bin:$PATH" MODEL_MB=$MODEL_MB \
    scripts/fixtures/model-signing/bench-side-by-side.sh "$TARGET/release/provenance" "$W/model" 2>&1)
sed 's/^/  /' <<<"$MODEL_OUT"
median() { grep "$1 (run" <<<"$MODEL_OUT" | sed -n "s/.*: \([0-9.]*\) s wall, \([0-9.]*\) s user, \([0-9.]*\) s sys.*/\1 \2 \3/p" \
    | sort -n | sed -n 2p; }
read -r ow ou os <<<"$(median "provenance cold")"
read -r pw pu ps <<<"$(median "model_signing verify")"
ROWS+=("| model folder | $MODEL_MB MiB, 5 files (median of 3, whole command) | $ow s wall, $(awk -v a="$ou" -v b="$os" 'BEGIN{print a+b}') s CPU | model_signing 1.1.1 | $pw s wall, $(awk -v a="$pu" -v b="$ps" 'BEGIN{print a+b}') s CPU | $(awk -v a="$pw" -v b="$ow" 'BEGIN{printf "%.1f×", a/b}') wall, $(awk -v a="$pu" -v b="$ps" -v c="$ou" -v d="$os" 'BEGIN{printf "%.1f×", (a+b)/(c+d)}') CPU |")
fi

if [ "${SKIP_WEBHOOK:-}" != 1 ]; then
    echo "== webhook throughput (ours only: no peer webhook runs on this machine)"
    WH=$(scripts/webhook-load.sh 5 16 2>&1)
    sed 's/^/  /' <<<"$WH"
    tp=$(awk '/^== 2\./{f=1} f && /req\/s;/{print $3; exit}' <<<"$WH")
    p99=$(awk '/^== 3\./{f=1} f && /p99/{for(i=1;i<=NF;i++) if($i=="p99") print $(i+1); exit}' <<<"$WH")
    ROWS+=("| webhook | AI-workload Pods, 4 policies, OCI layout, warm caches, 16 connections | ${tp} admissions/s max; p99 ${p99} ms at 1,000/s | none run here | — | — |")
fi

echo
echo "== results (load at start: $START_LOAD; at end: $(uptime | sed 's/.*load average: //'))"
echo
echo "| area | input | ours | peer | peer | ratio (peer / ours) |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
