#!/usr/bin/env bash
# Load test of the admission webhook on loopback, HTTPS, real AdmissionReviews.
#
# Builds the webhook and its load generator (release), starts the webhook with the four
# AI-workload policies and the example OCI layout (examples/ai-workloads), and measures:
#   1. the webhook's own overhead: one pattern policy (no verifyImages), max rate;
#   2. the AI-workload Pods (every Pod of examples/ai-workloads/workloads), warm evidence cache
#      and verifier memo, max rate;
#   3. the same at a fixed 1,000 requests/s (open loop: latency from when a request was due);
#   4. a stalled registry (a loopback TCP server that accepts and never answers) behind
#      --online, every request denied at the deadline: the largest latency against the deadline.
# Prints `uptime` before and after: the machine is shared, and load matters.
#
# Usage: scripts/webhook-load.sh [seconds per run, default 10] [connections, default 16]
# Env: CARGO_TARGET_DIR (default target), DEADLINE_MS for run 4 (default 2000), SKIP_BUILD=1 to
# use the release binaries already built.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
CONNS=${2:-16}
DEADLINE_MS=${DEADLINE_MS:-2000}
TARGET=${CARGO_TARGET_DIR:-target}
EX=examples/ai-workloads

# The same package set as scripts/bench-peers.sh, so that both share one release build.
[ "${SKIP_BUILD:-}" = 1 ] || cargo build --release --locked -q -p provenance-policy --example peer_timings \
    -p provenance-cli --bin provenance -p provenance-admission-webhook --bins
HOOK=$TARGET/release/provenance-webhook
LOAD=$TARGET/release/provenance-webhook-load

W=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$W"
}
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -addext basicConstraints=critical,CA:FALSE -addext extendedKeyUsage=serverAuth \
    -keyout "$W/tls.key" -out "$W/tls.crt" 2>/dev/null
cat > "$W/ns.yaml" <<'NS'
ml-serving: {purpose: ai-inference}
gpu-batch: {purpose: gpu-batch}
ml-training: {purpose: ai-training}
NS
mkdir "$W/plain"
cat > "$W/plain/tag.yaml" <<'POL'
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: disallow-latest-tag}
spec:
  validationFailureAction: Enforce
  rules:
  - name: validate-image-tag
    match: {any: [{resources: {kinds: [Pod]}}]}
    validate:
      message: "Using a mutable image tag e.g. 'latest' is not allowed."
      pattern: {spec: {containers: [{image: "!*:latest"}]}}
POL

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start NAME ARGS...: starts the webhook, waits for /readyz, sets PORT.
start() {
    local name=$1; shift
    PORT=$(free_port)
    "$HOOK" --listen "127.0.0.1:$PORT" --cert "$W/tls.crt" --key "$W/tls.key" \
        --namespace-labels "$W/ns.yaml" "$@" 2>"$W/$name.log" &
    HPID=$!
    PIDS+=($HPID)
    for _ in $(seq 100); do
        curl -sf --cacert "$W/tls.crt" "https://localhost:$PORT/readyz" >/dev/null && return 0
        sleep 0.1
    done
    echo "webhook $name did not start:"; cat "$W/$name.log"; exit 1
}

# CPU time (user + system, in clock ticks) the webhook process has used.
ticks() { awk '{print $14 + $15}' "/proc/$HPID/stat"; }

# load ARGS...: runs the load generator against the webhook started last and prints the
# webhook's own CPU time per answered request (warm-up included).
load() {
    local t0 t1 out status=0
    t0=$(ticks)
    out=$("$LOAD" --url "https://localhost:$PORT/validate" --cacert "$W/tls.crt" \
        --duration "$SECS" --warmup 2 "$@") || status=$?
    t1=$(ticks)
    echo "$out"
    local sent
    sent=$(sed -n 's/.*(\([0-9]*\) sent including warm-up).*/\1/p' <<<"$out")
    [ -n "$sent" ] && [ "$sent" -gt 0 ] && awk -v t=$((t1 - t0)) -v n="$sent" -v hz="$(getconf CLK_TCK)" \
        'BEGIN{printf "  webhook CPU: %.0f us per request (%d requests)\n", t / hz / n * 1e6, n}'
    return $status
}

PODS=(--resources $EX/workloads/inference-pods.yaml --resources $EX/workloads/gpu-pods.yaml
      --resources $EX/workloads/training.yaml)

echo "== machine"; nproc; uptime
echo
echo "== 1. webhook overhead: one pattern policy, no verifyImages, max rate, $CONNS connections"
start plain --policies "$W/plain"
load "${PODS[@]}" --connections "$CONNS"
echo
echo "== 2. AI-workload policies, OCI layout, warm caches, max rate, $CONNS connections"
start ai --policies $EX/policies --registry-layout $EX/registry --trust-root $EX/registry/trusted_root.json
load "${PODS[@]}" --connections "$CONNS"
echo
echo "== 3. AI-workload policies, fixed 1000 requests/s, $CONNS connections"
load "${PODS[@]}" --connections "$CONNS" --rate 1000
echo
echo "== 4. stalled registry (accepts, never answers) via --online, deadline $DEADLINE_MS ms, failurePolicy Fail"
python3 - "$W/stall.port" <<'PY' &
import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1024)
open(sys.argv[1], "w").write(str(s.getsockname()[1]))
held = []
while True:
    c, _ = s.accept(); held.append(c)
PY
PIDS+=($!)
for _ in $(seq 50); do [ -s "$W/stall.port" ] && break; sleep 0.1; done
STALL=$(cat "$W/stall.port")
start stalled --policies $EX/policies --online --trust-root $EX/registry/trusted_root.json \
    --allow-http registry.example.com --registry-endpoint "registry.example.com=127.0.0.1:$STALL" \
    --deadline-ms "$DEADLINE_MS"
load --resources $EX/workloads/inference-pods.yaml --name-contains llm-inference --connections 64 || true
echo "  (every answer above is a denial at the deadline; max must stay below $DEADLINE_MS ms)"
grep -c 'deadline of' "$W/stalled.log" | sed 's/^/  deadline denials logged: /'
echo
echo "== machine"; uptime
