#!/usr/bin/env bash
# Regenerates the AI-workloads layout into a temporary folder with the project's CLI
# (generate.sh OUT), then checks the result the way the committed layout is checked:
# - an independent verifier (scripts/fixtures/sigstore/crosscheck-layout.js, @sigstore/verify)
#   finds exactly the signers and attestations of registry-expect.json;
# - `provenance apply` gives the same verdicts, rule for rule and message for message, on the
#   regenerated layout as on the committed one (ClusterPolicies and the ImageValidatingPolicy).
# Exit 0 only if both hold. Needs node and scripts/fixtures/sigstore/node_modules.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cargo build -q -p provenance-cli
bin="${CARGO_TARGET_DIR:-$root/target}/debug/provenance"
PROVENANCE_BIN="$bin" "$here/generate.sh" "$out" 2>"$out.log" || { tail -20 "$out.log"; exit 1; }
rm -f "$out.log"
node scripts/fixtures/sigstore/crosscheck-layout.js "$out/registry" \
    --expect "$here/registry-expect.json" --keys "$out/registry/keys.json" | tail -1
apply() { # policies layout -> the verdict table (exit 1 is expected: some workloads are blocked)
    "$bin" apply --policy "$1" --resource "$here/workloads" --registry-layout "$2" \
        --trust-root "$2/trusted_root.json" 2>/dev/null || true
}
status=0
for pair in "policies:$out/policies" "policies-cel:$here/policies-cel"; do
    committed=$(apply "$here/${pair%%:*}" "$here/registry")
    regenerated=$(apply "${pair#*:}" "$out/registry")
    if [ -z "$committed" ] || [ "$committed" != "$regenerated" ]; then
        echo "FAILED: apply with ${pair%%:*} differs between the committed and the regenerated layout"
        diff <(echo "$committed") <(echo "$regenerated") || true
        status=1
    else
        echo "ok      apply with ${pair%%:*}: $(echo "$committed" | grep -cE ' (pass|fail|error|skip) ') results, identical on the regenerated layout"
    fi
done
exit $status
