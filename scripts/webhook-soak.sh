#!/usr/bin/env bash
# Soak test of the admission webhook on loopback, HTTPS, real AdmissionReviews, with policy
# hot reload and certificate rotation under load.
#
# Starts the webhook with the four AI-workload policies (copied into a temporary folder) and
# the example OCI layout (examples/ai-workloads), `--reload-seconds 1`, and sends the
# AI-workload Pods at a fixed rate (default 1,000 requests/s over 16 connections) for
# SOAK_SECONDS. While the load runs:
#   - every 10 s, the webhook's RSS (VmRSS) and CPU time (user + system clock ticks) are
#     sampled into a CSV (t_seconds,rss_kib,cpu_ticks; t counts from the start of the load,
#     warm-up included);
#   - every 20 s, one policy file is rewritten with a semantically identical change (a
#     comment line), so that a policy reload happens;
#   - every 60 s, the serving certificate and key are replaced with a new leaf issued by a CA
#     made up front (the load generator trusts the CA, so a rotation keeps new connections
#     trusted); after each rotation a new TLS connection checks that the new leaf is served.
# At the end it prints the CSV, the load generator's figures, the reload counters of
# /metrics, the certificate reloads logged, and a verdict: RSS growth from the first minute
# to the end, failed requests, failed reloads, reloads counted vs. policy rewrites.
# Also checks that every resource got the same decision throughout (from the webhook's log).
# Exits 1 if a request or a reload failed, a rewrite was not reloaded, or a decision changed.
# Prints `uptime` and nproc before and after: the machine may be shared.
#
# Usage: scripts/webhook-soak.sh
# Env: SOAK_SECONDS (default 600), RATE (default 1000), CONNS (default 16),
# CARGO_TARGET_DIR (default target), SKIP_BUILD=1 to use release binaries already built,
# HOOK=/path/to/provenance-webhook and LOAD=/path/to/provenance-webhook-load to use other
# binaries (set SKIP_BUILD=1 too).
set -euo pipefail
cd "$(dirname "$0")/.."
SOAK_SECONDS=${SOAK_SECONDS:-600}
RATE=${RATE:-1000}
CONNS=${CONNS:-16}
TARGET=${CARGO_TARGET_DIR:-target}
EX=examples/ai-workloads
POLICY_EVERY=20
CERT_EVERY=60
SAMPLE_EVERY=10
WARMUP=2

# The same package set as scripts/webhook-load.sh, so that both share one release build.
[ "${SKIP_BUILD:-}" = 1 ] || cargo build --release --locked -q -p provenance-policy --example peer_timings \
    -p provenance-cli --bin provenance -p provenance-admission-webhook --bins
HOOK=${HOOK:-$TARGET/release/provenance-webhook}
LOAD=${LOAD:-$TARGET/release/provenance-webhook-load}

W=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$W"
}
trap cleanup EXIT

# One CA up front; the serving certificate is a leaf it issues, rotated during the soak.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=webhook soak CA" -addext basicConstraints=critical,CA:TRUE \
    -addext keyUsage=critical,keyCertSign,cRLSign \
    -keyout "$W/ca.key" -out "$W/ca.crt" 2>/dev/null
cat > "$W/leaf.ext" <<'EXT'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1
EXT
# leaf: issues a new key and certificate, then moves them over tls.key and tls.crt (key
# first; each move is atomic, so the webhook never reads a half-written file).
SERIAL=0
leaf() {
    SERIAL=$((SERIAL + 1))
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
        -keyout "$W/next.key" -out "$W/next.csr" 2>/dev/null
    openssl x509 -req -in "$W/next.csr" -CA "$W/ca.crt" -CAkey "$W/ca.key" -set_serial "$SERIAL" \
        -days 1 -extfile "$W/leaf.ext" -out "$W/next.crt" 2>/dev/null
    mv "$W/next.key" "$W/tls.key"
    mv "$W/next.crt" "$W/tls.crt"
}
leaf

cat > "$W/ns.yaml" <<'NS'
ml-serving: {purpose: ai-inference}
gpu-batch: {purpose: gpu-batch}
ml-training: {purpose: ai-training}
NS
mkdir "$W/policies"
cp "$EX"/policies/*.yaml "$W/policies/"
POLICY_FILES=("$W"/policies/*.yaml)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
"$HOOK" --listen "127.0.0.1:$PORT" --cert "$W/tls.crt" --key "$W/tls.key" \
    --namespace-labels "$W/ns.yaml" --policies "$W/policies" --reload-seconds 1 \
    --registry-layout $EX/registry --trust-root $EX/registry/trusted_root.json 2>"$W/webhook.log" &
HPID=$!
PIDS+=("$HPID")
for _ in $(seq 100); do
    curl -sf --cacert "$W/ca.crt" "https://localhost:$PORT/readyz" >/dev/null && break
    sleep 0.1
done
curl -sf --cacert "$W/ca.crt" "https://localhost:$PORT/readyz" >/dev/null ||
    { echo "webhook did not start:"; cat "$W/webhook.log"; exit 1; }

# sample T: one CSV row for the webhook (resident set in KiB, CPU clock ticks).
sample() {
    local rss ticks
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$HPID/status")
    ticks=$(awk '{print $14 + $15}' "/proc/$HPID/stat")
    echo "$1,$rss,$ticks" >> "$W/rss.csv"
}

# rewrite_policy: a comment line at the end of one policy file (in turn) changes; the policy
# means the same. Written beside the folder and moved in, so the change is atomic.
REWRITES=0
rewrite_policy() {
    local f=${POLICY_FILES[$((REWRITES % ${#POLICY_FILES[@]}))]}
    REWRITES=$((REWRITES + 1))
    { grep -v '^# soak rewrite ' "$f"; echo "# soak rewrite $REWRITES"; } > "$W/policy.next"
    mv "$W/policy.next" "$f"
}

# rotate_cert: a new leaf; then, after two reload periods, a new TLS connection must be
# trusted via the CA and be served the new leaf (its serial).
ROTATIONS=0
ROTATION_CHECKS_FAILED=0
rotate_cert() {
    leaf
    ROTATIONS=$((ROTATIONS + 1))
}
check_rotation() {
    local served
    served=$(openssl s_client -connect "127.0.0.1:$PORT" -servername localhost -CAfile "$W/ca.crt" \
        -verify_return_error </dev/null 2>/dev/null | openssl x509 -noout -serial 2>/dev/null || true)
    if [ "$served" != "serial=$(printf '%02X' "$SERIAL")" ]; then
        ROTATION_CHECKS_FAILED=$((ROTATION_CHECKS_FAILED + 1))
        echo "  rotation $ROTATIONS: served certificate '${served:-none}', expected serial $SERIAL" >&2
    fi
    curl -sf --cacert "$W/ca.crt" "https://localhost:$PORT/readyz" >/dev/null ||
        { ROTATION_CHECKS_FAILED=$((ROTATION_CHECKS_FAILED + 1)); echo "  rotation $ROTATIONS: /readyz failed" >&2; }
}

echo "== machine"; nproc; uptime
echo
echo "== soak: AI-workload policies, OCI layout, $RATE requests/s, $CONNS connections, ${SOAK_SECONDS} s" \
    "(+${WARMUP} s warm-up); policy rewrite every ${POLICY_EVERY} s, certificate rotation every ${CERT_EVERY} s"
echo "t_seconds,rss_kib,cpu_ticks" > "$W/rss.csv"
T0=$(date +%s)
"$LOAD" --url "https://localhost:$PORT/validate" --cacert "$W/ca.crt" \
    --duration "$SOAK_SECONDS" --warmup "$WARMUP" --json \
    --resources $EX/workloads/inference-pods.yaml --resources $EX/workloads/gpu-pods.yaml \
    --resources $EX/workloads/training.yaml --connections "$CONNS" --rate "$RATE" \
    > "$W/load.json" 2>"$W/load.err" &
LPID=$!
PIDS+=("$LPID")
TOTAL=$((SOAK_SECONDS + WARMUP))
CHECK_AT=-1
for ((t = 0; ; t++)); do
    while [ "$(date +%s)" -lt $((T0 + t)) ]; do sleep 0.1; done
    kill -0 "$LPID" 2>/dev/null || break
    [ $((t % SAMPLE_EVERY)) -eq 0 ] && sample "$t"
    # No change in the last seconds: every change must be loaded before the load ends.
    if [ "$t" -gt 0 ] && [ "$t" -le $((TOTAL - 5)) ]; then
        [ $((t % POLICY_EVERY)) -eq 0 ] && rewrite_policy
        [ $((t % CERT_EVERY)) -eq 0 ] && { rotate_cert; CHECK_AT=$((t + 3)); }
    fi
    [ "$t" -eq "$CHECK_AT" ] && check_rotation
done
status=0
wait "$LPID" || status=$?
sample "$(($(date +%s) - T0))"
sleep 3 # the last reload period
METRICS=$(curl -sf --cacert "$W/ca.crt" "https://localhost:$PORT/metrics" || true)

echo
echo "-- webhook RSS and CPU (t from the start of the load)"
cat "$W/rss.csv"
echo
echo "-- load generator (exit status $status)"
cat "$W/load.json"
[ -s "$W/load.err" ] && sed 's/^/  stderr: /' "$W/load.err"
field() { python3 -c 'import json,sys; v=json.load(open(sys.argv[1])).get(sys.argv[2]); print("" if v is None else v)' "$W/load.json" "$1" 2>/dev/null || true; }
REQUESTS=$(field requests); FAILED=$(field failed)
echo "  requests $REQUESTS, allowed $(field allowed), denied $(field denied), failed ${FAILED:-?};" \
    "latency ms: p50 $(field p50_ms)  p90 $(field p90_ms)  p99 $(field p99_ms)  max $(field max_ms)"
[ -n "$(field first_error)" ] && echo "  first error: $(field first_error)"
echo
echo "-- reloads"
RELOADS_OK=$(sed -n 's/^provenance_policy_reloads_total{result="ok"} \([0-9]*\)$/\1/p' <<<"$METRICS")
RELOADS_FAILED=$(sed -n 's/^provenance_policy_reloads_total{result="failed"} \([0-9]*\)$/\1/p' <<<"$METRICS")
CERT_OK=$(grep -c '"msg":"certificate reloaded"' "$W/webhook.log" || true)
CERT_FAILED=$(grep -c '"msg":"certificate reload failed"' "$W/webhook.log" || true)
grep '^provenance_policy_reloads_total\|^provenance_policies_loaded\|^provenance_admissions_total' <<<"$METRICS" | sed 's/^/  /'
echo "  policy rewrites $REWRITES: reloads ok ${RELOADS_OK:-?}, failed ${RELOADS_FAILED:-?}"
echo "  certificate rotations $ROTATIONS: reloads logged ok $CERT_OK, failed $CERT_FAILED; new-connection checks failed $ROTATION_CHECKS_FAILED"
# The same review must get the same decision before and after every reload.
echo "  decisions per resource (webhook log, warm-up included; a resource with both is a flip):"
python3 - "$W/webhook.log" <<'PY' | sort | uniq -c | sed 's/^/    /' > "$W/decisions.txt"
import json, sys
for line in open(sys.argv[1], errors="replace"):
    try:
        v = json.loads(line)
    except ValueError:
        continue
    if isinstance(v, dict) and v.get("path") == "/validate" and "allowed" in v:
        print(f"{v.get('namespace')}/{v.get('name')} {str(v['allowed']).lower()}")
PY
cat "$W/decisions.txt"
FLIPS=$(awk '{print $2}' "$W/decisions.txt" | uniq -d | wc -l)
DECIDED=$(wc -l < "$W/decisions.txt")
ERRORS=$(grep -v '"level":"info"' "$W/webhook.log" || true)
if [ -n "$ERRORS" ]; then
    echo "  webhook log lines that are not info ($(wc -l <<<"$ERRORS")), first 20:"
    head -20 <<<"$ERRORS" | sed 's/^/    /'
fi
echo
echo "== verdict"
awk -F, -v t60=60 'NR > 1 { if (!first && $1 >= t60) { first = $2; at = $1 } last = $2; lt = $1 }
    END {
        if (!first) { print "  RSS: no sample after the first minute"; exit }
        printf "  RSS: %d KiB at t=%d s, %d KiB at t=%d s: growth %+d KiB (%+.1f%%)\n",
            first, at, last, lt, last - first, (last - first) * 100 / first
    }' "$W/rss.csv"
ok=1
[ "${FAILED:-x}" = 0 ] && [ "$status" = 0 ] || ok=0
echo "  failed requests: ${FAILED:-unknown} of ${REQUESTS:-?}"
[ "${RELOADS_FAILED:-x}" = 0 ] && [ "${RELOADS_OK:-x}" = "$REWRITES" ] || ok=0
echo "  policy reloads: ${RELOADS_OK:-?} ok of $REWRITES rewrites, ${RELOADS_FAILED:-?} failed"
echo "  resources whose decision changed: $FLIPS (of $DECIDED resource and decision pairs logged)"
[ "$FLIPS" = 0 ] && [ "$DECIDED" -gt 0 ] || ok=0
[ "$CERT_FAILED" = 0 ] && [ "$CERT_OK" -ge "$ROTATIONS" ] && [ "$ROTATION_CHECKS_FAILED" = 0 ] || ok=0
echo "  certificate reloads: $CERT_OK ok of $ROTATIONS rotations, $CERT_FAILED failed"
if [ "$ok" = 1 ]; then
    echo "  PASS: no failed request, no failed reload, every change reloaded"
else
    echo "  FAIL: see above"
fi
echo
echo "== machine"; nproc; uptime
[ "$ok" = 1 ]
