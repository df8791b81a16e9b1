#!/usr/bin/env bash
# Three webhook replicas behind one "Service" on loopback: what each caches, how they stay
# consistent after a policy or trust-root change, and what three replicas do to throughput.
#
# Starts three release webhooks (the AI-workload policies, the example OCI layout, one policy
# folder and one trust root file shared by all three, as a ConfigMap mounted in each replica;
# --reload-seconds 1) and measures:
#   1. max-rate throughput against one replica, then with the same connections spread over the
#      three (connection i to replica i mod 3, as a Service spreads connections), and each
#      replica's evidence-cache misses: every replica fetches the evidence it needs itself;
#   2. with a fixed-rate load over the three running throughout, a policy change (the signer
#      identity the policy requires) and then a trust-root change (a root without the
#      example's CA), each written as the kubelet updates a ConfigMap volume (a new file renamed
#      into place): a prober asks every replica about a digest-pinned Pod every 20 ms and
#      records when each replica's answer changed, and whether any answer went back;
#   3. the load's failed requests (must be 0) and its latency over the whole run.
# Exits 1 when a request failed, a replica never took a change, or an answer went back.
#
# Usage: scripts/webhook-replicas.sh [seconds per throughput run, default 8] [connections,
# default 16]. Env: CARGO_TARGET_DIR (default target), SKIP_BUILD=1 to use the release binaries
# already built, RATE for the fixed-rate load of step 2 (default 900 requests/s).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-8}
CONNS=${2:-16}
RATE=${RATE:-900}
TARGET=${CARGO_TARGET_DIR:-target}
EX=examples/ai-workloads

[ "${SKIP_BUILD:-}" = 1 ] || cargo build --release --locked -q -p provenance-admission-webhook --bins
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
# The "ConfigMap": one folder and one trust root file, read by every replica.
cp -r $EX/policies "$W/policies"
cp $EX/registry/trusted_root.json "$W/trusted_root.json"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

PORTS=()
HPIDS=()
for r in 0 1 2; do
    port=$(free_port)
    "$HOOK" --listen "127.0.0.1:$port" --cert "$W/tls.crt" --key "$W/tls.key" \
        --namespace-labels "$W/ns.yaml" --policies "$W/policies" --registry-layout $EX/registry \
        --trust-root "$W/trusted_root.json" --reload-seconds 1 2>"$W/replica-$r.log" &
    PIDS+=($!)
    HPIDS+=($!)
    PORTS+=("$port")
done
for r in 0 1 2; do
    for _ in $(seq 100); do
        curl -sf --cacert "$W/tls.crt" "https://localhost:${PORTS[$r]}/readyz" >/dev/null && continue 2
        sleep 0.1
    done
    echo "replica $r did not start:"; cat "$W/replica-$r.log"; exit 1
done

PODS=(--resources $EX/workloads/inference-pods.yaml --resources $EX/workloads/gpu-pods.yaml
      --resources $EX/workloads/training.yaml)
URLS=()
for p in "${PORTS[@]}"; do URLS+=(--url "https://localhost:$p/validate"); done
misses() { curl -sf --cacert "$W/tls.crt" "https://localhost:$1/metrics" | awk '$1=="provenance_cache_misses_total"{print $2}'; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
cpu_all() { local t=0; for p in "${HPIDS[@]}"; do t=$((t + $(ticks "$p"))); done; echo $t; }

echo "== machine"; nproc; uptime
echo
echo "== 1a. one replica, max rate, $CONNS connections"
"$LOAD" --url "https://localhost:${PORTS[0]}/validate" --cacert "$W/tls.crt" "${PODS[@]}" \
    --connections "$CONNS" --duration "$SECS" --warmup 2
echo "  evidence-cache misses per replica: r0 $(misses "${PORTS[0]}"), r1 $(misses "${PORTS[1]}"), r2 $(misses "${PORTS[2]}")"
echo
echo "== 1b. three replicas, max rate, $CONNS connections spread over them"
t0=$(cpu_all)
out=$("$LOAD" "${URLS[@]}" --cacert "$W/tls.crt" "${PODS[@]}" --connections "$CONNS" \
    --duration "$SECS" --warmup 2)
t1=$(cpu_all)
echo "$out"
sent=$(sed -n 's/.*(\([0-9]*\) sent including warm-up).*/\1/p' <<<"$out")
awk -v t=$((t1 - t0)) -v n="$sent" -v hz="$(getconf CLK_TCK)" \
    'BEGIN{printf "  webhook CPU (three replicas together): %.0f us per request\n", t / hz / n * 1e6}'
echo "  evidence-cache misses per replica: r0 $(misses "${PORTS[0]}"), r1 $(misses "${PORTS[1]}"), r2 $(misses "${PORTS[2]}")"
echo
echo "== 2. changes under a fixed load of $RATE requests/s over the three replicas"
LOAD_SECS=40
"$LOAD" "${URLS[@]}" --cacert "$W/tls.crt" "${PODS[@]}" --connections "$CONNS" \
    --rate "$RATE" --duration "$LOAD_SECS" --warmup 1 >"$W/load.out" 2>&1 &
LOADPID=$!
PIDS+=($LOADPID)
sleep 3
status=0
python3 - "$W" "${PORTS[@]}" <<'PY' || status=$?
import base64, copy, http.client, json, os, ssl, sys, time

W, ports = sys.argv[1], [int(p) for p in sys.argv[2:]]
ctx = ssl.create_default_context(cafile=os.path.join(W, "tls.crt"))
conns = [http.client.HTTPSConnection("localhost", p, context=ctx, timeout=10) for p in ports]

def post(i, path, body):
    c = conns[i]
    c.request("POST", path, json.dumps(body), {"content-type": "application/json"})
    r = c.getresponse()
    data = r.read()
    if r.status != 200:
        raise SystemExit(f"replica {i}: HTTP {r.status}: {data[:200]!r}")
    return json.loads(data)["response"]

# A digest-pinned Pod: the example's inference Pod, patched by /mutate.
review = json.load(open("examples/ai-workloads/reviews/inference-pod.json"))
m = post(0, "/mutate", review)
pod = copy.deepcopy(review["request"]["object"])
for op in json.loads(base64.b64decode(m["patch"])):
    assert op["op"] == "replace", op
    parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
    node = pod
    for k in parts[:-1]:
        node = node[int(k)] if isinstance(node, list) else node[k]
    last = parts[-1]
    if isinstance(node, list):
        node[int(last)] = op["value"]
    else:
        node[last] = op["value"]
pinned = copy.deepcopy(review)
pinned["request"]["object"] = pod

def ask(i, n):
    pinned["request"]["uid"] = f"probe-{i}-{n}"
    return post(i, "/validate", pinned)["allowed"]

for i in range(3):
    if ask(i, 0) is not True:
        raise SystemExit(f"replica {i}: the pinned Pod is not admitted before any change")

def replace(path, text):
    # As the kubelet updates a ConfigMap volume: the new content appears whole.
    tmp = path + ".new"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)

def change(name, path, text, expect, restore_text):
    """Writes `text` to `path`; probes every replica every 20 ms until each answers `expect`
    (at most 15 s); checks that no replica answers otherwise afterwards. Then restores."""
    failures = []
    t0 = time.monotonic()
    replace(path, text)
    flipped = [None] * 3
    back = [0] * 3
    probes = 0
    while time.monotonic() - t0 < 15:
        for i in range(3):
            probes += 1
            a = ask(i, probes)
            if a == expect and flipped[i] is None:
                flipped[i] = time.monotonic() - t0
            elif a != expect and flipped[i] is not None:
                back[i] += 1
        if all(f is not None for f in flipped) and time.monotonic() - max(flipped) > 2:
            break
        time.sleep(0.02)
    for i in range(3):
        if flipped[i] is None:
            failures.append(f"{name}: replica {i} never took the change")
        if back[i]:
            failures.append(f"{name}: replica {i} answered the old decision {back[i]} times after taking the change")
    shown = ", ".join(f"r{i} {f * 1000:.0f} ms" if f is not None else f"r{i} never" for i, f in enumerate(flipped))
    spread = (max(flipped) - min(flipped)) * 1000 if all(f is not None for f in flipped) else float("nan")
    print(f"  {name}: in force after {shown}; replicas disagreed for {spread:.0f} ms; answers going back: {sum(back)}")
    # Restore, and wait until every replica admits the pinned Pod again.
    replace(path, restore_text)
    t1 = time.monotonic()
    while time.monotonic() - t1 < 15:
        if all(ask(i, -1) is True for i in range(3)):
            break
        time.sleep(0.05)
    else:
        failures.append(f"{name}: the restored file was not in force on every replica within 15 s")
    return failures

policy = os.path.join(W, "policies", "verify-ai-images.yaml")
original = open(policy).read()
assert "ml-team@example.com" in original
root = os.path.join(W, "trusted_root.json")
root_original = open(root).read()
public_good = json.dumps({
    "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
    "tlogs": json.load(open(root))["tlogs"], "certificateAuthorities": [], "ctlogs": []})

failures = []
failures += change("policy change (another signer identity required)", policy,
                   original.replace("ml-team@example.com", "someone-else@example.com"), False, original)
failures += change("trust-root change (the example's CA removed)", root, public_good, False, root_original)
for f in failures:
    print("  FAILED:", f)
sys.exit(1 if failures else 0)
PY
wait $LOADPID || status=1
echo "  the load during the changes:"
sed 's/^/  /' "$W/load.out"
for r in 0 1 2; do
    echo "  replica $r: $(grep -c '"policies reloaded"' "$W/replica-$r.log") policy reloads, $(grep -c '"trust root reloaded"' "$W/replica-$r.log") trust-root reloads, $(grep -c 'reload failed' "$W/replica-$r.log") failed"
done
echo
uptime
exit $status
