#!/usr/bin/env bash
# Registry faults under load, and the cold path of a large image, through the admission
# webhook (release build) on loopback.
#
# Setup: a loopback registry (Debian docker-registry, CNCF distribution 2.8) behind
# scripts/registry-fault-proxy.py; images pushed to it by hand (blobs and an OCI manifest over
# the registry API), each signed with `provenance sign image --key` and given a SLSA v1
# provenance with `provenance attest` (a key generated for the run); the webhook with
# `--online`, `registry.example.com` reached at the proxy over plain HTTP, and one
# verifyImages policy requiring the signature and the attestation.
#
# Fault phases (default): the webhook with --deadline-ms 2000 and --evidence-ttl-seconds 0
# (no evidence is reused: every admission asks the registry), driven by
# provenance-webhook-load at a fixed rate while the proxy goes
#   pass -> stall -> pass -> 5xx -> pass -> reset -> pass -> slow -> pass.
# Four images (four digests), Pods sent round-robin. The verifier's memo and the webhook's
# VerifyImagesCache stay on (they reuse verification, never evidence: a failed retrieval is
# never cached, and a pass is only looked up once the evidence was retrieved). For every phase:
# requests, allowed, denied (by reason), p50/p99/max latency, answers later than the deadline,
# HTTP-level failures, and the registry requests the proxy saw. A request counts for a phase
# when it was sent and answered within it ("inside"); those sent in one phase and answered in
# the next are counted apart ("straddling": either answer is right).
# Requirements (exit 1 otherwise):
#   - no request failed at the HTTP level, and no answer came later than the deadline;
#   - in fault phases, every request inside the phase is denied, for an infrastructure
#     reason (the deadline, or evidence that could not be fetched);
#   - in pass phases, every request sent after the first deadline of the phase is allowed
#     (denials in that first deadline, while requests of the fault drain, are reported).
#
# Cold path (--cold): an image whose manifest declares 10 GB of layers (eight layer
# descriptors whose `size` fields add up to 10,000,000,000 bytes; the blobs behind them are a
# few bytes: distribution 2.8 checks that a manifest's blobs exist, not their size), signed and
# attested. With the proxy at latency=0, 20 and 100 ms (one way), a fresh webhook (every cache
# cold, deadline 10 s) admits the Pod once; prints the latency and every registry request it
# made with the bytes returned. Exit 1 if the Pod is not admitted or a layer blob is requested.
#
# Usage: scripts/webhook-faults.sh [--quick] [--cold | --and-cold] [--tls]
#   --quick     phases of 4 s (CI) instead of 10 s
#   --cold      the cold path only;  --and-cold  the fault phases, then the cold path
#   --tls       the proxy serves TLS (Python ssl) to the webhook: `slow` is slow TLS
# Env: CARGO_TARGET_DIR (default target), SKIP_BUILD=1 to use the release binaries already
# built, RATE (default 40: every admission costs 9 registry requests, and the loopback registry
# serves about 450 a second on a 2-vCPU machine), CONNS (default 128: more connections than
# RATE x deadline requests in flight, so that a stalled phase does not queue in the load
# generator),
# PHASE_SECONDS (overrides --quick), DEADLINE_MS (default 2000), PHASES (default
# "pass stall pass 5xx pass reset pass slow pass"; any proxy modes, e.g. "pass latency=50").
# Needs: docker-registry (scripts/ci-setup-oci.sh), python3, openssl, curl.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

QUICK=0 FAULTS=1 COLD=0 TLS=0
for a in "$@"; do
    case "$a" in
        --quick) QUICK=1 ;;
        --cold) FAULTS=0 COLD=1 ;;
        --and-cold) COLD=1 ;;
        --tls) TLS=1 ;;
        *) echo "usage: scripts/webhook-faults.sh [--quick] [--cold | --and-cold] [--tls]" >&2; exit 2 ;;
    esac
done
RATE=${RATE:-40}
CONNS=${CONNS:-128}
DEADLINE_MS=${DEADLINE_MS:-2000}
if [ "$QUICK" = 1 ]; then PHASE_SECONDS=${PHASE_SECONDS:-4}; else PHASE_SECONDS=${PHASE_SECONDS:-10}; fi
TARGET=${CARGO_TARGET_DIR:-target}
BIN=$TARGET/release

say() { printf 'webhook-faults: %s\n' "$*"; }
die() { printf 'webhook-faults: FAILED: %s\n' "$*" >&2; exit 1; }
for tool in docker-registry python3 openssl curl; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found (scripts/ci-setup-oci.sh installs docker-registry)"
done

[ "${SKIP_BUILD:-}" = 1 ] || cargo build --release --locked -q -p provenance-cli --bin provenance \
    -p provenance-admission-webhook --bins
for b in provenance provenance-webhook provenance-webhook-load; do
    [ -x "$BIN/$b" ] || die "$BIN/$b not found (build it, or set CARGO_TARGET_DIR)"
done

W=$(mktemp -d "${TMPDIR:-/tmp}/provenance-faults.XXXXXX")
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$W"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_file() { for _ in $(seq 100); do [ -s "$1" ] && return 0; sleep 0.1; done; die "$2"; }

# --- the registry, and the proxy in front of it
REG_PORT=$(free_port)
cat >"$W/registry.yml" <<CFG
version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: $W/store}
http: {addr: 127.0.0.1:$REG_PORT}
CFG
docker-registry serve "$W/registry.yml" >"$W/registry.log" 2>&1 &
REG_PID=$!
PIDS+=($REG_PID)
for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$REG_PORT/v2/" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS "http://127.0.0.1:$REG_PORT/v2/" >/dev/null || die "the registry did not start: $(cat "$W/registry.log")"

# A CA for the run: the webhook's serving certificate, and the proxy's with --tls.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj "/CN=faults CA" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign \
    -keyout "$W/ca.key" -out "$W/ca.crt" 2>/dev/null
leaf() { # NAME: NAME.key, NAME.crt for localhost and 127.0.0.1, issued by the CA
    printf '%s\n' basicConstraints=critical,CA:FALSE extendedKeyUsage=serverAuth \
        subjectAltName=DNS:localhost,IP:127.0.0.1 >"$W/$1.ext"
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
        -keyout "$W/$1.key" -out "$W/$1.csr" 2>/dev/null
    openssl x509 -req -in "$W/$1.csr" -CA "$W/ca.crt" -CAkey "$W/ca.key" -set_serial "$RANDOM" \
        -days 1 -extfile "$W/$1.ext" -out "$W/$1.crt" 2>/dev/null
}
leaf tls
proxy_tls=()
if [ "$TLS" = 1 ]; then leaf proxy; proxy_tls=(--tls-cert "$W/proxy.crt" --tls-key "$W/proxy.key"); fi
python3 scripts/registry-fault-proxy.py --upstream "127.0.0.1:$REG_PORT" --port-file "$W/proxy.port" \
    --control-port-file "$W/control.port" --log "$W/proxy.log" "${proxy_tls[@]}" 2>"$W/proxy.err" &
PROXY_PID=$!
PIDS+=($PROXY_PID)
wait_file "$W/proxy.port" "the proxy did not start: $(cat "$W/proxy.err" 2>/dev/null)"
PROXY=$(cat "$W/proxy.port")
CONTROL=$(cat "$W/control.port")
# fault MODE: switches the proxy (the reply comes once the mode is in force).
fault() {
    local reply
    exec 3<>"/dev/tcp/127.0.0.1/$CONTROL"
    printf '%s\n' "$1" >&3
    read -r reply <&3 || true
    exec 3<&-
    case "$reply" in ok*) ;; *) die "proxy: $1: ${reply:-no reply}" ;; esac
}
say "registry 127.0.0.1:$REG_PORT, fault proxy 127.0.0.1:$PROXY$([ "$TLS" = 1 ] && echo ' (TLS)') (control port $CONTROL)"

# --- images: pushed over the registry API (stdlib HTTP), then signed and attested
REGISTRY=registry.example.com
direct=(--registry-endpoint "$REGISTRY=127.0.0.1:$REG_PORT" --allow-http "$REGISTRY")
# push_image NAME TAG LAYER_SIZES...: one config and one layer blob per size (the blob is a few
# bytes; the manifest declares SIZE). Writes the digest to $W/NAME.digest and the layer digests
# to $W/NAME.layers.
push_image() {
    python3 - "127.0.0.1:$REG_PORT" "$W" "$@" <<'PY'
import hashlib, json, sys, urllib.request
reg, out, name, tag, *sizes = sys.argv[1:]
base = f"http://{reg}/v2/faults/{name}"

def req(method, url, data=b"", ctype="application/octet-stream"):
    r = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": ctype})
    with urllib.request.urlopen(r) as resp:
        return resp.status, resp.headers

def blob(data):
    d = "sha256:" + hashlib.sha256(data).hexdigest()
    _, h = req("POST", f"{base}/blobs/uploads/")
    loc = h["Location"]
    loc = loc if loc.startswith("http") else f"http://{reg}{loc}"
    req("PUT", loc + ("&" if "?" in loc else "?") + "digest=" + d, data)
    return d

config = json.dumps({"architecture": "amd64", "os": "linux",
                     "config": {"Labels": {"name": name}},
                     "rootfs": {"type": "layers", "diff_ids": []}}).encode()
layers = []
for i, size in enumerate(sizes):
    data = f"{name} layer {i}\n".encode()
    layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                   "digest": blob(data), "size": int(size)})
manifest = json.dumps({
    "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
               "digest": blob(config), "size": len(config)},
    "layers": layers}).encode()
status, _ = req("PUT", f"{base}/manifests/{tag}", manifest, "application/vnd.oci.image.manifest.v1+json")
assert status == 201, status
open(f"{out}/{name}.digest", "w").write("sha256:" + hashlib.sha256(manifest).hexdigest())
open(f"{out}/{name}.layers", "w").write("".join(l["digest"] + "\n" for l in layers))
PY
}

export PROVENANCE_PASSWORD
PROVENANCE_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
"$BIN/provenance" generate-key-pair --output-key-prefix "$W/signer" >/dev/null
cat >"$W/slsa.json" <<'JSON'
{"buildDefinition": {"buildType": "https://provenance.test/faults/build@v1",
  "externalParameters": {"source": "https://provenance.test/faults"}, "resolvedDependencies": []},
 "runDetails": {"builder": {"id": "https://provenance.test/faults/builder"}, "metadata": {}}}
JSON
sign_and_attest() { # NAME
    local ref="$REGISTRY/faults/$1:v1"
    "$BIN/provenance" sign image "$ref" --key "$W/signer.key" "${direct[@]}" >/dev/null
    "$BIN/provenance" attest "$ref" --key "$W/signer.key" --type slsaprovenance1 \
        --predicate "$W/slsa.json" "${direct[@]}" >/dev/null
}

IMAGES=(model-1 model-2 model-3 model-4)
[ "$FAULTS" = 1 ] || IMAGES=()
[ "$COLD" = 1 ] && IMAGES+=(model-10g)
for name in "${IMAGES[@]}"; do
    if [ "$name" = model-10g ]; then
        # 10,000,000,000 bytes declared, as the layers of a CUDA + model image might be.
        push_image "$name" v1 4200000000 2900000000 1600000000 800000000 300000000 100000000 60000000 40000000
    else
        push_image "$name" v1 2048
    fi
    sign_and_attest "$name"
done
say "pushed, signed and attested: ${IMAGES[*]} (key generated for the run, SLSA v1 provenance)"

# --- the policy and the Pods
mkdir -p "$W/policies"
python3 - "$W/signer.pub" "$W/policies/verify-faults.yaml" <<'PY'
import sys
pub, out = sys.argv[1:]
key = "\n".join("                      " + l for l in open(pub).read().strip().splitlines())
open(out, "w").write(f"""apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {{name: verify-faults}}
spec:
  validationFailureAction: Enforce
  rules:
    - name: signed-and-built
      match: {{any: [{{resources: {{kinds: [Pod]}}}}]}}
      verifyImages:
        - imageReferences: ["registry.example.com/faults/*"]
          # Pods name tags: every admission resolves the tag (no /mutate pinning here).
          mutateDigest: false
          verifyDigest: false
          required: true
          attestors:
            - entries:
                - keys:
                    publicKeys: |-
{key}
                    rekor: {{ignoreTlog: true}}
          attestations:
            - type: https://slsa.dev/provenance/v1
              conditions:
                - all:
                    - key: "{{{{ buildDefinition.buildType }}}}"
                      operator: Equals
                      value: "https://provenance.test/faults/build@v1"
""")
PY
pods() { # NAME...: one Pod per image
    local n
    for n in "$@"; do
        printf -- '---\napiVersion: v1\nkind: Pod\nmetadata: {name: %s, namespace: ml}\nspec:\n  containers:\n    - {name: main, image: "%s"}\n' \
            "$n" "$REGISTRY/faults/$n:v1"
    done
}

# start_webhook NAME ARGS...: the webhook over the proxy; waits for /readyz; sets HOOK_PORT, HPID.
start_webhook() {
    local name=$1 reach
    shift
    HOOK_PORT=$(free_port)
    if [ "$TLS" = 1 ]; then
        reach=(--registry-endpoint "$REGISTRY=127.0.0.1:$PROXY")
    else
        reach=(--registry-endpoint "$REGISTRY=127.0.0.1:$PROXY" --allow-http "$REGISTRY")
    fi
    # With --tls the registry client trusts the run's CA (rustls-native-certs reads SSL_CERT_FILE).
    SSL_CERT_FILE=$W/ca.crt "$BIN/provenance-webhook" --listen "127.0.0.1:$HOOK_PORT" \
        --cert "$W/tls.crt" --key "$W/tls.key" --policies "$W/policies" --online "${reach[@]}" \
        "$@" 2>"$W/$name.log" &
    HPID=$!
    PIDS+=($HPID)
    for _ in $(seq 100); do
        curl -fsS --cacert "$W/ca.crt" "https://localhost:$HOOK_PORT/readyz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    die "webhook $name did not start: $(tail -n 20 "$W/$name.log")"
}
stop_webhook() { kill "$HPID" 2>/dev/null || true; wait "$HPID" 2>/dev/null || true; }

status=0

# --- fault phases under load
if [ "$FAULTS" = 1 ]; then
    pods model-1 model-2 model-3 model-4 >"$W/pods.yaml"
    start_webhook faults --deadline-ms "$DEADLINE_MS" --evidence-ttl-seconds 0
    read -r -a PHASES <<<"${PHASES:-pass stall pass 5xx pass reset pass slow pass}"
    WARMUP=2
    TOTAL=$((PHASE_SECONDS * ${#PHASES[@]}))
    say "fault phases: ${PHASES[*]}, ${PHASE_SECONDS} s each, $RATE requests/s over $CONNS connections," \
        "deadline $DEADLINE_MS ms, Pods over 4 images"
    say "caches: evidence cache OFF (--evidence-ttl-seconds 0: every admission asks the registry);" \
        "verifier memo and VerifyImagesCache ON (passes 300 s, failed checks 10 s; they reuse verification" \
        "of evidence retrieved by the same request, never replace a retrieval; errors are never cached)"
    fault pass
    : >"$W/phases.tsv"
    "$BIN/provenance-webhook-load" --url "https://localhost:$HOOK_PORT/validate" --cacert "$W/ca.crt" \
        --resources "$W/pods.yaml" --connections "$CONNS" --rate "$RATE" \
        --duration "$TOTAL" --warmup "$WARMUP" --json --log "$W/requests.jsonl" \
        >"$W/load.json" 2>"$W/load.err" &
    LPID=$!
    PIDS+=($LPID)
    # cpu: CPU clock ticks (user + system) used so far by the webhook, the proxy, the registry
    # and the load generator.
    cpu() {
        local p out=()
        for p in "$HPID" "$PROXY_PID" "$REG_PID" "$LPID"; do
            out+=("$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)")
        done
        echo "${out[*]}"
    }
    # The load starts 0.2 s after launch, measures after the warm-up; phases follow from there.
    sleep "$(python3 -c "print($WARMUP + 0.2)")"
    T0=$(date +%s%3N)
    for i in "${!PHASES[@]}"; do
        mode=${PHASES[$i]}
        due=$((T0 + i * PHASE_SECONDS * 1000))
        while [ "$(date +%s%3N)" -lt "$due" ]; do sleep 0.02; done
        fault "$mode"
        printf '%s\t%s\t%s\t%s\n' "$((i + 1)). ${mode%%=*}" "$mode" "$(date +%s%3N)" "$(cpu)" >>"$W/phases.tsv"
    done
    while [ "$(date +%s%3N)" -lt $((T0 + TOTAL * 1000)) ]; do sleep 0.02; done
    printf '%s\t%s\t%s\t%s\n' end end "$(date +%s%3N)" "$(cpu)" >>"$W/phases.tsv"
    lstatus=0
    wait "$LPID" || lstatus=$?
    fault pass
    echo
    python3 - "$W" "$DEADLINE_MS" "$lstatus" <<'PY' || status=1
import json, statistics, sys
w, deadline, lstatus = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
import os
hz = os.sysconf("SC_CLK_TCK")
phases = [l.rstrip("\n").split("\t") for l in open(f"{w}/phases.tsv")]
bounds = [(name, mode, float(t), float(phases[i + 1][2])) for i, (name, mode, t, _) in enumerate(phases[:-1])]
cpu = []
for i in range(len(phases) - 1):
    a = [int(x) for x in phases[i][3].split()]
    b = [int(x) for x in phases[i + 1][3].split()]
    secs = (float(phases[i + 1][2]) - float(phases[i][2])) / 1000
    cpu.append([(y - x) / hz / secs * 100 for x, y in zip(a, b)])
reqs = [json.loads(l) for l in open(f"{w}/requests.jsonl")]
proxy = [json.loads(l) for l in open(f"{w}/proxy.log")]

def reason(r):
    m = r["message"]
    if r["outcome"] != "denied":
        return r["outcome"]
    if "deadline of" in m:
        return "deadline"
    if "failed to fetch evidence" in m:
        return "fetch"
    return "other"

def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))] if xs else 0.0

ok = True
problems = []
rows = []
other_msgs = {}
for name, mode, start, end in bounds:
    fault = mode in ("stall", "5xx", "reset") or mode.startswith("slow")
    inside = [r for r in reqs if start <= r["sent_ms"] and r["sent_ms"] + r["service_ms"] < end]
    straddle = [r for r in reqs if start <= r["sent_ms"] < end and r["sent_ms"] + r["service_ms"] >= end]
    allowed = sum(r["outcome"] == "allowed" for r in inside)
    reasons = {}
    for r in inside:
        if r["outcome"] == "denied":
            reasons[reason(r)] = reasons.get(reason(r), 0) + 1
            if reason(r) == "other":
                other_msgs.setdefault(r["message"][:300], name)
    failed = sum(r["outcome"] == "failed" for r in reqs if start <= r["sent_ms"] < end)
    late = sum(r["service_ms"] > deadline for r in reqs if start <= r["sent_ms"] < end)
    lat = [r["service_ms"] for r in inside]
    # Pass phases: requests sent once the first deadline of the phase is over must pass.
    settled = [r for r in inside if r["sent_ms"] >= start + deadline]
    early_denied = sum(r["outcome"] != "allowed" for r in inside if r["sent_ms"] < start + deadline)
    regs = [p for p in proxy if p.get("event") == "request" and start <= p["t"] < end]
    conns = sum(1 for p in proxy if p.get("event") in ("open",) and start <= p["t"] < end)
    rows.append((name, len(inside), allowed, len(inside) - allowed, reasons, pct(lat, 50), pct(lat, 99),
                 max(lat, default=0), late, failed, len(straddle), len(regs), conns, early_denied if not fault else None))
    if failed:
        problems.append(f"{name}: {failed} requests failed at the HTTP level")
    if late:
        problems.append(f"{name}: {late} answers later than the {deadline:.0f} ms deadline")
    if not inside:
        problems.append(f"{name}: no request sent and answered inside the phase (phase too short?)")
    if fault:
        if allowed:
            problems.append(f"{name}: {allowed} requests ALLOWED while the registry was faulty")
        bad = sum(n for k, n in reasons.items() if k not in ("deadline", "fetch"))
        if bad:
            problems.append(f"{name}: {bad} denials without an infrastructure reason")
    else:
        not_allowed = sum(r["outcome"] != "allowed" for r in settled)
        if not_allowed:
            problems.append(f"{name}: {not_allowed} requests denied after the phase's first deadline")
        if not settled:
            problems.append(f"{name}: no request after the phase's first deadline (phase too short?)")

print("phase      | inside | allowed | denied (reason)                  | p50 ms  | p99 ms  | max ms  | > deadline | failed | straddling | registry requests (connections)")
print("-----------|--------|---------|----------------------------------|---------|---------|---------|------------|--------|------------|--------------------------------")
for (name, n, al, de, reasons, p50, p99, mx, late, failed, strad, regs, conns, early) in rows:
    why = ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())) or "-"
    if early:
        why += f" (first {deadline / 1000:g} s)"
    print(f"{name:<10} | {n:>6} | {al:>7} | {de:>6} {why:<25} | {p50:>7.1f} | {p99:>7.1f} | {mx:>7.1f} | {late:>10} | {failed:>6} | {strad:>10} | {regs:>7} ({conns})")
total = len(reqs)
print("\nCPU per phase, % of one core: webhook / proxy / registry / load generator")
print("  " + "; ".join(f"{b[0]} {c[0]:.0f}/{c[1]:.0f}/{c[2]:.0f}/{c[3]:.0f}" for b, c in zip(bounds, cpu)))
print(f"\nall phases: {total} requests measured, {sum(r['outcome']=='allowed' for r in reqs)} allowed, "
      f"{sum(r['outcome']=='denied' for r in reqs)} denied, {sum(r['outcome']=='failed' for r in reqs)} failed; "
      f"max latency {max((r['service_ms'] for r in reqs), default=0):.1f} ms (deadline {deadline:.0f} ms); "
      f"load generator exit status {lstatus}")
print("reasons: deadline = 'deadline of N ms exceeded' (fail closed); fetch = 'failed to fetch evidence: ...'")
examples = {}
for name, mode, start, end in bounds:
    for r in reqs:
        inside = start <= r["sent_ms"] and r["sent_ms"] + r["service_ms"] < end
        if inside and r["outcome"] == "denied" and (mode, reason(r)) not in examples:
            m = " ".join(r["message"].split())
            i = m.find("failed to fetch evidence")
            examples[(mode, reason(r))] = m[i:][:200] if i >= 0 else m[:200]
for (mode, k), m in examples.items():
    print(f"  e.g. {mode}, {k}: {m}")
for m, name in other_msgs.items():
    print(f"  other denial in {name}: {m}")
if lstatus:
    problems.append(f"the load generator exited with {lstatus}")
if problems:
    print("\nFAIL:\n  " + "\n  ".join(problems))
    sys.exit(1)
print("\nPASS: fail closed in every fault phase, allowed again after each, no late answer, no failed request")
PY
    [ -s "$W/load.err" ] && sed 's/^/  load generator: /' "$W/load.err"
    errs=$(grep -c '"level":"error"' "$W/faults.log" || true)
    say "webhook log: $(grep -c '"msg":"provenance: deadline' "$W/faults.log" || true) deadline lines, $errs error lines"
    stop_webhook
fi

# --- cold path of the 10 GB image
if [ "$COLD" = 1 ]; then
    pods model-10g >"$W/cold-pod.yaml"
    python3 - "$W/cold-pod.yaml" >"$W/cold-review.json" <<'PY'
import json, sys
doc = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "model-10g", "namespace": "ml"},
       "spec": {"containers": [{"name": "main", "image": open(sys.argv[1]).read().split('image: "')[1].split('"')[0]}]}}
print(json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
    "request": {"uid": "cold", "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"}, "operation": "CREATE",
        "namespace": "ml", "name": "model-10g", "userInfo": {"username": "alice"}, "object": doc}}))
PY
    echo
    say "cold path: $REGISTRY/faults/model-10g:v1 ($(cat "$W/model-10g.digest")), 10,000,000,000 bytes of layers declared;" \
        "a fresh webhook (all caches cold) per latency, deadline 10000 ms"
    for ms in 0 20 100; do
        fault "latency=$ms"
        start_webhook "cold-$ms" --deadline-ms 10000
        fault "mark cold $ms begin"
        t0=$(date +%s%3N)
        curl -fsS --cacert "$W/ca.crt" -H 'content-type: application/json' \
            --data-binary "@$W/cold-review.json" "https://localhost:$HOOK_PORT/validate" -o "$W/cold-$ms.json" \
            -w '%{time_total}\n' >"$W/cold-$ms.time" || die "cold $ms ms: POST /validate failed"
        fault "mark cold $ms end"
        stop_webhook
        python3 - "$W" "$ms" "$t0" <<'PY' || status=1
import json, sys
w, ms, t0 = sys.argv[1], sys.argv[2], float(sys.argv[3])
answer = json.load(open(f"{w}/cold-{ms}.json"))["response"]
took = float(open(f"{w}/cold-{ms}.time").read()) * 1000
layers = set(open(f"{w}/model-10g.layers").read().split())
log = [json.loads(l) for l in open(f"{w}/proxy.log")]
begin = next(i for i, e in enumerate(log) if e.get("text") == f"cold {ms} begin")
end = next(i for i, e in enumerate(log) if e.get("text") == f"cold {ms} end")
reqs = [e for e in log[begin:end] if e.get("event") == "request"]
conns = sum(1 for e in log[begin:end] if e.get("event") == "open")
hook = [json.loads(l) for l in open(f"{w}/cold-{ms}.log") if '"path":"/validate"' in l]
server_ms = hook[0]["duration_us"] / 1000 if hook else float("nan")
print(f"latency={ms} ms one way: allowed={answer['allowed']}, {took:.1f} ms at the client "
      f"({server_ms:.1f} ms in the webhook), {len(reqs)} registry requests over {conns} connections, "
      f"{sum(r['bytes'] for r in reqs)} bytes of bodies")
for r in reqs:
    print(f"    conn {r['conn']:<3} {r['method']:<4} {r['path']:<100} {r['status']} {r['bytes']:>6} B {r['ms']:>7.1f} ms")
bad = [r["path"] for r in reqs if "/blobs/" in r["path"] and r["path"].rsplit("/", 1)[1] in layers]
if bad:
    print(f"FAIL: layer blobs requested: {bad}")
    sys.exit(1)
if not answer["allowed"]:
    print(f"FAIL: not admitted: {answer.get('status', {}).get('message')}")
    sys.exit(1)
PY
    done
    fault pass
    [ "$status" = 0 ] && say "cold path: admitted at every latency; no layer blob requested"
fi

if [ -s "$W/proxy.err" ]; then
    echo "the fault proxy wrote to stderr:"; sed 's/^/  /' "$W/proxy.err"
    status=1
fi
[ "$status" = 0 ] || die "see above"
say "passed"
