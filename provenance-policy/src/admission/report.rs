//! PolicyReports (`wgpolicyk8s.io/v1alpha2`) from rule results.

use std::collections::BTreeMap;

use provenance_core::{RuleResult, RuleStatus, UnixTime};
use serde_json::{Value, json};

/// Builds one PolicyReport per namespace (and a ClusterPolicyReport for cluster-scoped
/// resources) from rule results. `now` stamps each result.
pub fn policy_reports(results: &[RuleResult], now: UnixTime) -> Vec<Value> {
    let mut by_ns: BTreeMap<&str, Vec<&RuleResult>> = BTreeMap::new();
    for r in results {
        by_ns
            .entry(r.resource.namespace.as_str())
            .or_default()
            .push(r);
    }
    by_ns
        .into_iter()
        .map(|(ns, rs)| {
            let mut summary: BTreeMap<&str, usize> = ["pass", "fail", "warn", "error", "skip"]
                .into_iter()
                .map(|k| (k, 0))
                .collect();
            let items: Vec<Value> = rs
                .iter()
                .map(|r| {
                    *summary.entry(r.status.as_str()).or_default() += 1;
                    let mut item = json!({
                        "policy": r.policy,
                        "rule": r.rule,
                        "result": r.status.as_str(),
                        "message": r.message,
                        "source": "provenance",
                        "scored": true,
                        "timestamp": {"seconds": now.0, "nanos": 0},
                        "resources": [{
                            "apiVersion": r.resource.api_version,
                            "kind": r.resource.kind,
                            "namespace": r.resource.namespace,
                            "name": r.resource.name,
                        }],
                    });
                    if !r.reasons.is_empty() {
                        let props: serde_json::Map<String, Value> = r
                            .reasons
                            .iter()
                            .enumerate()
                            .map(|(i, x)| {
                                (
                                    format!("reason.{i}"),
                                    json!(format!("[{}] {}", x.code, x.message)),
                                )
                            })
                            .collect();
                        item["properties"] = Value::Object(props);
                    }
                    if r.status == RuleStatus::Fail {
                        item["severity"] = json!("medium");
                    }
                    item
                })
                .collect();
            let (kind, meta) = if ns.is_empty() {
                ("ClusterPolicyReport", json!({"name": "provenance-cluster"}))
            } else {
                (
                    "PolicyReport",
                    json!({"name": format!("provenance-{ns}"), "namespace": ns}),
                )
            };
            json!({
                "apiVersion": "wgpolicyk8s.io/v1alpha2",
                "kind": kind,
                "metadata": meta,
                "summary": summary,
                "results": items,
            })
        })
        .collect()
}
