#!/usr/bin/env bash
# The pure crates (core, attest, policy) must never pull in an async runtime or an HTTP stack
# when built without features. Fails if `cargo tree` shows any of them. No library crate may
# depend on a Kubernetes API client.
set -euo pipefail
cd "$(dirname "$0")/.."
forbidden='^(tokio|reqwest|hyper|hyper-util|oci-client|oci-distribution|axum) v'
status=0
for crate in provenance-core provenance-attest provenance-policy; do
    found=$(cargo tree -p "$crate" --no-default-features -e normal --prefix none --format '{p}' 2>/dev/null \
        | grep -E "$forbidden" | sort -u || true)
    if [ -n "$found" ]; then
        echo "boundary violation: $crate (no default features) depends on:"
        echo "$found" | sed 's/^/    /'
        echo "  path: $(cargo tree -p "$crate" --no-default-features -e normal -i "$(echo "$found" | head -1 | cut -d' ' -f1)" 2>/dev/null | head -8 | tr '\n' ' ')"
        status=1
    else
        echo "boundary ok: $crate pulls in none of tokio, reqwest, hyper, oci-client"
    fi
done
# No library crate (oci included, with its default features) may pull in a Kubernetes API
# client: kube-client belongs to the examples that talk to a cluster (examples/audit-scan).
kube_client='^(kube-client|kube-runtime) v'
for crate in provenance-core provenance-attest provenance-oci provenance-policy; do
    found=$(cargo tree -p "$crate" -e normal --prefix none --format '{p}' 2>/dev/null \
        | grep -E "$kube_client" | sort -u || true)
    if [ -n "$found" ]; then
        echo "boundary violation: $crate depends on a Kubernetes client:"
        echo "$found" | sed 's/^/    /'
        status=1
    else
        echo "boundary ok: $crate pulls in no Kubernetes client (kube-client, kube-runtime)"
    fi
done
# Verify-only builds compile no private-key code: the policy engine with evidence gathering,
# and the admission webhooks, leave out signing (cosign's encrypted keys: scrypt, salsa20,
# poly1305), which only the `sign` features of core, attest and oci bring in.
signing='^(scrypt|salsa20|poly1305) v'
for spec in "provenance-policy --features oci" "provenance-admission-webhook" "provenance-kube-webhook" "model-verifier"; do
    # shellcheck disable=SC2086
    found=$(cargo tree -p $spec -e normal --prefix none --format '{p}' 2>/dev/null \
        | grep -E "$signing" | sort -u || true)
    if [ -n "$found" ]; then
        echo "boundary violation: $spec compiles signing code:"
        echo "$found" | sed 's/^/    /'
        status=1
    else
        echo "boundary ok: $spec compiles no signing code (scrypt, salsa20, poly1305)"
    fi
done
exit $status
