#!/usr/bin/env bash
# The project builds, signs and admits its own images, end to end, on loopback only:
#   1. scripts/build-images.sh builds the webhook and model-verifier images (reproducibly);
#   2. they are pushed to a loopback registry (Debian docker-registry) with skopeo, signed with
#      `provenance sign image --key` (a key generated for the run) and attested with
#      `provenance attest`: SLSA provenance v1 (scripts/slsa-provenance.py) and a CycloneDX 1.5
#      SBOM (scripts/sbom-cyclonedx.py);
#   3. the webhook (the binary inside the image) runs over HTTPS with
#      examples/admission-webhook/deploy/policies/verify-provenance-images.yaml and is sent the
#      Deployment of examples/admission-webhook/deploy/webhook.yaml as an AdmissionReview:
#        - the signed and attested image: /mutate pins it to its digest, /validate admits it;
#        - the same image copied to another repository, without signatures: denied;
#        - an image signed, with an SBOM but without the SLSA provenance: denied;
#      and a Pod with the model-verifier image, signed and attested, is admitted too.
# Any other outcome fails the script.
#
# Usage: scripts/check-own-images.sh [--no-build]   (--no-build: reuse the release binaries)
# Needs: what scripts/build-images.sh needs, docker-registry and skopeo
# (scripts/ci-setup-oci.sh), openssl, curl, python3 with PyYAML.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
started=$(date +%s)

build_args=()
case "${1:-}" in
    --no-build) build_args+=(--no-build) ;;
    "") ;;
    *) echo "usage: scripts/check-own-images.sh [--no-build]" >&2; exit 2 ;;
esac

say() { printf 'check-own-images: %s\n' "$*"; }
die() { printf 'check-own-images: FAILED: %s\n' "$*" >&2; exit 1; }

for tool in docker-registry skopeo openssl curl python3; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found (scripts/ci-setup-oci.sh installs docker-registry and skopeo)"
done
python3 -c 'import yaml' 2>/dev/null || die "python3 cannot import yaml (apt-get install python3-yaml)"

target="${CARGO_TARGET_DIR:-$repo/target}"
bin="$target/release"
images="$target/images"
review_py="$repo/scripts/admission-review.py"
deploy="$repo/examples/admission-webhook/deploy"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/provenance-own-images.XXXXXX")
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# --- 1. images
say "building the images (scripts/build-images.sh)"
scripts/build-images.sh --out "$images" "${build_args[@]}"
version=$(awk '$1 == "provenance-webhook" {print $2}' "$images/digests.txt")
webhook_digest=$(awk '$1 == "provenance-webhook" {print $3}' "$images/digests.txt")
verifier_digest=$(awk '$1 == "model-verifier" {print $3}' "$images/digests.txt")
[ -n "$webhook_digest" ] && [ -n "$verifier_digest" ] || die "no digests in $images/digests.txt"

# --- 2. a loopback registry, as the tests start it
reg_port=$(free_port)
mkdir -p "$tmp/registry"
cat >"$tmp/registry/config.yml" <<CFG
version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: $tmp/registry/store}
  delete: {enabled: true}
http: {addr: 127.0.0.1:$reg_port}
CFG
docker-registry serve "$tmp/registry/config.yml" >"$tmp/registry/registry.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
    curl -fsS "http://127.0.0.1:$reg_port/v2/" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fsS "http://127.0.0.1:$reg_port/v2/" >/dev/null || die "the registry did not start: $(cat "$tmp/registry/registry.log")"
say "registry on 127.0.0.1:$reg_port"

# The images keep their production names (ghcr.io/provenance-rs/...); every client reaches
# ghcr.io at the loopback registry, over plain HTTP.
registry=ghcr.io
reach=(--registry-endpoint "$registry=127.0.0.1:$reg_port" --allow-http "$registry")
webhook_ref="$registry/provenance-rs/provenance-webhook:$version"
verifier_ref="$registry/provenance-rs/model-verifier:$version"
copy_ref="$registry/provenance-rs/mirror/provenance-webhook:$version"
unattested_ref="$registry/provenance-rs/provenance-webhook:$version-unattested"

push() { # LAYOUT REF: copies an OCI layout image to the loopback registry, digest unchanged
    local src=$1 ref=$2 want=$3 got
    skopeo copy --quiet --preserve-digests --dest-tls-verify=false "oci:$src" \
        "docker://127.0.0.1:$reg_port/${ref#*/}"
    got=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://127.0.0.1:$reg_port/${ref#*/}")
    [ "$got" = "$want" ] || die "$ref: pushed digest $got, built $want"
    say "pushed $ref ($got)"
}
push "$images/provenance-webhook:$version" "$webhook_ref" "$webhook_digest"
push "$images/model-verifier:$version" "$verifier_ref" "$verifier_digest"
push "$images/provenance-webhook:$version" "$copy_ref" "$webhook_digest"

# An image that will be signed and get an SBOM but no provenance: the webhook image with one
# more label, so a digest of its own.
cp -a "$images/provenance-webhook" "$tmp/unattested"
umoci config --image "$tmp/unattested:$version" --no-history \
    --config.label org.opencontainers.image.description=unattested
unattested_digest=$(python3 -c 'import json,sys
for m in json.load(open(sys.argv[1]))["manifests"]:
    print(m["digest"])' "$tmp/unattested/index.json" | tail -n1)
[ "$unattested_digest" != "$webhook_digest" ] || die "the unattested variant has the webhook's digest"
push "$tmp/unattested:$version" "$unattested_ref" "$unattested_digest"

# --- 3. signed and attested by the project's CLI, with a key generated for the run
export PROVENANCE_PASSWORD
PROVENANCE_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
"$bin/provenance" generate-key-pair --output-key-prefix "$tmp/project" >/dev/null
python3 "$repo/scripts/slsa-provenance.py" "$images/build-info.json" provenance-webhook --out "$tmp/webhook.slsa.json"
python3 "$repo/scripts/slsa-provenance.py" "$images/build-info.json" model-verifier --out "$tmp/verifier.slsa.json"
python3 "$repo/scripts/sbom-cyclonedx.py" provenance-admission-webhook --out "$tmp/webhook.cdx.json"
python3 "$repo/scripts/sbom-cyclonedx.py" model-verifier --out "$tmp/verifier.cdx.json"

sign() { "$bin/provenance" sign image "$1" --key "$tmp/project.key" "${reach[@]}" >/dev/null; }
attest() {
    "$bin/provenance" attest "$1" --key "$tmp/project.key" --type "$2" --predicate "$3" "${reach[@]}" >/dev/null
}
sign "$webhook_ref"
attest "$webhook_ref" slsaprovenance1 "$tmp/webhook.slsa.json"
attest "$webhook_ref" cyclonedx "$tmp/webhook.cdx.json"
sign "$verifier_ref"
attest "$verifier_ref" slsaprovenance1 "$tmp/verifier.slsa.json"
attest "$verifier_ref" cyclonedx "$tmp/verifier.cdx.json"
sign "$unattested_ref"
attest "$unattested_ref" cyclonedx "$tmp/webhook.cdx.json"
say "signed and attested (SLSA provenance v1, CycloneDX 1.5) with a key generated for the run; the $version-unattested image signed with an SBOM only; the mirror copy untouched"

# The CLI verifies what it wrote, as a user would.
"$bin/provenance" verify image "$webhook_ref" --key "$tmp/project.pub" --insecure-ignore-tlog \
    "${reach[@]}" >/dev/null || die "provenance verify image: the signed webhook image does not verify"

# --- 4. the webhook, from its image's root filesystem, with the project's policy
mkdir -p "$tmp/policies" "$tmp/rootfs"
python3 - "$deploy/policies/verify-provenance-images.yaml" "$tmp/project.pub" \
    "$tmp/policies/verify-provenance-images.yaml" <<'PY'
import sys
policy, pub, out = sys.argv[1:]
key = [l for l in open(pub).read().splitlines() if l and "-----" not in l]
text = open(policy).read()
if "REPLACE-WITH-THE-PROJECT-RELEASE-KEY" not in text:
    sys.exit(f"{policy}: no key placeholder")
lines = []
for line in text.splitlines():
    if line.strip() == "REPLACE-WITH-THE-PROJECT-RELEASE-KEY":
        indent = line[: len(line) - len(line.lstrip())]
        lines.extend(indent + k for k in key)
    else:
        lines.append(line)
open(out, "w").write("\n".join(lines) + "\n")
PY
# The binary that runs is the one in the image layer (the layout's single layer).
layer=$(python3 -c 'import json,sys
idx = json.load(open(sys.argv[1] + "/index.json"))
d = idx["manifests"][0]["digest"].split(":")[1]
m = json.load(open(sys.argv[1] + "/blobs/sha256/" + d))
print(m["layers"][0]["digest"].split(":")[1])' "$images/provenance-webhook")
tar -xzf "$images/provenance-webhook/blobs/sha256/$layer" -C "$tmp/rootfs" usr/local/bin/provenance-webhook
cmp -s "$tmp/rootfs/usr/local/bin/provenance-webhook" "$bin/provenance-webhook" \
    || die "the image's webhook binary differs from $bin/provenance-webhook"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout "$tmp/tls.key" -out "$tmp/tls.crt" 2>/dev/null
hook_port=$(free_port)
"$tmp/rootfs/usr/local/bin/provenance-webhook" --listen "127.0.0.1:$hook_port" \
    --policies "$tmp/policies" --cert "$tmp/tls.crt" --key "$tmp/tls.key" --online \
    "${reach[@]}" --evidence-ttl-seconds 0 --deadline-ms 8000 2>"$tmp/webhook.log" &
pids+=($!)
hook="https://127.0.0.1:$hook_port"
for _ in $(seq 100); do
    curl -fsS --cacert "$tmp/tls.crt" "$hook/readyz" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fsS --cacert "$tmp/tls.crt" "$hook/readyz" >/dev/null \
    || die "the webhook did not become ready: $(tail -n 20 "$tmp/webhook.log")"
say "webhook on $hook with verify-provenance-images (the run's key)"

post() { # PATH REVIEW OUT
    curl -fsS --cacert "$tmp/tls.crt" -H 'content-type: application/json' \
        --data-binary "@$2" "$hook$1" -o "$3" || die "POST $1 failed: $(tail -n 5 "$tmp/webhook.log")"
}
admit() { # NAME REVIEW EXPECTED_DIGEST: /mutate pins, then /validate admits
    local name=$1 review=$2 want=$3 pinned
    post /mutate "$review" "$tmp/$name.mutate.json"
    python3 "$review_py" patch "$review" "$tmp/$name.mutate.json" >"$tmp/$name.pinned.json" \
        || die "$name: /mutate"
    pinned=$(python3 "$review_py" image "$tmp/$name.pinned.json")
    case "$pinned" in
        *"@$want") ;;
        *) die "$name: /mutate pinned the image to $pinned, expected @$want" ;;
    esac
    post /validate "$tmp/$name.pinned.json" "$tmp/$name.validate.json"
    python3 "$review_py" expect "$tmp/$name.validate.json" allowed >/dev/null || die "$name: not admitted"
    say "ADMITTED $name: /mutate pinned $pinned, /validate allowed"
}
deny() { # NAME REVIEW TEXT...: /mutate pins nothing, /validate denies saying TEXT
    local name=$1 review=$2 message
    shift 2
    post /mutate "$review" "$tmp/$name.mutate.json"
    python3 "$review_py" patch "$review" "$tmp/$name.mutate.json" >"$tmp/$name.pinned.json" \
        || die "$name: /mutate"
    [ "$(python3 "$review_py" image "$tmp/$name.pinned.json")" = "$(python3 "$review_py" image "$review")" ] \
        || die "$name: /mutate pinned an image that must not verify"
    post /validate "$tmp/$name.pinned.json" "$tmp/$name.validate.json"
    message=$(python3 "$review_py" expect "$tmp/$name.validate.json" denied "$@") || die "$name: not denied as expected"
    say "DENIED $name: $message"
}

python3 "$review_py" review "$deploy/webhook.yaml" Deployment provenance-webhook "$webhook_ref" signed >"$tmp/signed.json"
[ "$(python3 "$review_py" image "$tmp/signed.json")" = "$webhook_ref" ] || die "deploy/webhook.yaml"
admit webhook-signed "$tmp/signed.json" "$webhook_digest"

python3 "$review_py" review "$deploy/webhook.yaml" Deployment provenance-webhook "$copy_ref" copy >"$tmp/copy.json"
deny webhook-unsigned-copy "$tmp/copy.json" "verify-provenance-images" "no signatures found"

python3 "$review_py" review "$deploy/webhook.yaml" Deployment provenance-webhook "$unattested_ref" unattested >"$tmp/unattested.json"
deny webhook-without-provenance "$tmp/unattested.json" "verify-provenance-images" "no attestations found (need https://slsa.dev/provenance/v1)"

cat >"$tmp/verifier-pod.yaml" <<POD
apiVersion: v1
kind: Pod
metadata: {name: inference-0, namespace: ml}
spec:
  containers:
    - {name: model-verifier, image: $verifier_ref}
POD
python3 "$review_py" review "$tmp/verifier-pod.yaml" Pod inference-0 "$verifier_ref" verifier >"$tmp/verifier.json"
admit model-verifier-signed "$tmp/verifier.json" "$verifier_digest"

say "passed in $(( $(date +%s) - started ))s: the signed and attested image admitted (pinned to $webhook_digest), the unsigned copy and the image without provenance denied"
