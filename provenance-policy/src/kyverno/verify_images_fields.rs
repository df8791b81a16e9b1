//! The field inventory of a ClusterPolicy's `verifyImages` entries, checked when a policy
//! loads, and the conversion of Kyverno's deprecated entry fields into attestors.
//!
//! Every field Kyverno's CRD defines for these objects is listed here as either **enforced**
//! (read and applied by [`crate::kyverno::verify_images`]) or **refused** (the policy does not
//! load, with [`Error::Unsupported`] naming the field). A field in neither list is refused too, so
//! a field added to Kyverno later cannot be silently dropped. `docs/kyverno-compatibility.md`
//! has the same table with the reason for every row.

use serde_json::{Map, Value, json};

use crate::Error;

/// Fields of one `verifyImages` entry that are enforced.
pub const ENTRY_ENFORCED: &[&str] = &[
    "failureAction",
    "type",
    "imageReferences",
    "skipImageReferences",
    "attestors",
    "attestations",
    "repository",
    "mutateDigest",
    "verifyDigest",
    "required",
    "validate",
    "useCache",
    "cosignOCI11",
    "skipBackgroundRequests",
    "imageRegistryCredentials",
    // Deprecated, converted into `imageReferences` and an attestor when the policy loads.
    "image",
    "key",
    "roots",
    "subject",
    "issuer",
    "additionalExtensions",
    "annotations",
];

/// Fields of an attestor entry (`attestors[].entries[]`) that are enforced.
pub const ATTESTOR_ENFORCED: &[&str] =
    &["keys", "keyless", "attestor", "annotations", "certificates"];
/// Fields of an attestor entry that are refused.
pub const ATTESTOR_REFUSED: &[&str] = &["repository"];
/// Fields of `certificates` that are enforced (`certChain` is refused when set: Kyverno
/// cannot verify a `cert` with a `certChain`, and a chain alone names no identity).
pub const CERTIFICATES_ENFORCED: &[&str] = &["cert", "rekor", "ctlog"];
/// Fields of `certificates` that are refused.
pub const CERTIFICATES_REFUSED: &[&str] = &["certChain"];
/// Fields of `keys` that are enforced.
pub const KEYS_ENFORCED: &[&str] = &["publicKeys", "signatureAlgorithm", "rekor", "ctlog"];
/// Fields of `keys` that are refused.
pub const KEYS_REFUSED: &[&str] = &["kms", "secret"];
/// Fields of `keyless` that are enforced.
pub const KEYLESS_ENFORCED: &[&str] = &[
    "issuer",
    "issuerRegExp",
    "subject",
    "subjectRegExp",
    "additionalExtensions",
    "rekor",
    "ctlog",
    "roots",
];
/// Fields of `keyless` that are refused.
pub const KEYLESS_REFUSED: &[&str] = &[];
/// Fields of `rekor` / `ctlog` that are enforced. `url` names a log (verification is offline:
/// the trust root, or `pubkey`, decides which logs are trusted); `pubkey` and `tsaCertChain`
/// replace the trust root's Rekor keys, CT log keys and timestamp authorities for this
/// attestor; `ignoreTlog` / `ignoreSCT` waive the log inclusion and SCT checks.
pub const LOG_ENFORCED: &[&str] = &["url", "ignoreTlog", "ignoreSCT", "pubkey", "tsaCertChain"];
/// Fields of `rekor` / `ctlog` that are refused.
pub const LOG_REFUSED: &[&str] = &[];
/// Fields of one `attestations[]` item that are enforced.
pub const ATTESTATION_ENFORCED: &[&str] =
    &["type", "predicateType", "name", "attestors", "conditions"];
/// Fields of an attestor set that are enforced.
pub const ATTESTOR_SET_ENFORCED: &[&str] = &["count", "entries"];
/// Fields of `validate` that are enforced.
pub const VALIDATE_ENFORCED: &[&str] = &["message", "deny"];
/// Fields of `imageRegistryCredentials` (refused unless empty: credentials are the embedding
/// application's registry configuration, and insecure registries are allowed there only).
pub const CREDENTIALS_REFUSED: &[&str] = &["allowInsecureRegistry", "providers", "secrets"];

fn unsupported(path: &str, why: &str) -> Error {
    Error::Unsupported {
        field: format!("{path} ({why})"),
    }
}

fn invalid(path: &str, reason: impl Into<String>) -> Error {
    Error::InvalidPolicy {
        policy: String::new(),
        path: path.to_owned(),
        reason: reason.into(),
    }
}

fn is_set(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        Value::Bool(b) => *b,
        Value::Number(_) => true,
    }
}

fn object<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>, Error> {
    v.as_object()
        .ok_or_else(|| invalid(path, "must be an object"))
}

/// Checks that every key of `o` is enforced; a refused or unknown key is an error.
fn check_keys(
    o: &Map<String, Value>,
    path: &str,
    enforced: &[&str],
    refused: &[&str],
) -> Result<(), Error> {
    for (k, v) in o {
        if enforced.contains(&k.as_str()) {
            continue;
        }
        if refused.contains(&k.as_str()) {
            if is_set(v) {
                return Err(unsupported(
                    &format!("{path}.{k}"),
                    "not enforced by this engine",
                ));
            }
            continue;
        }
        return Err(unsupported(
            &format!("{path}.{k}"),
            "unknown field: not enforced, so the policy is refused",
        ));
    }
    Ok(())
}

/// Checks a rule's `verifyImages` list against the inventory and converts deprecated
/// fields. Returns the list to evaluate. `path` is the rule's path (`spec.rules[0]`).
pub fn normalize(list: &Value, path: &str) -> Result<Value, Error> {
    let entries = list
        .as_array()
        .ok_or_else(|| invalid(&format!("{path}.verifyImages"), "must be a list"))?;
    let mut out = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        out.push(normalize_entry(e, &format!("{path}.verifyImages[{i}]"))?);
    }
    Ok(Value::Array(out))
}

fn normalize_entry(entry: &Value, path: &str) -> Result<Value, Error> {
    let o = object(entry, path)?;
    check_keys(o, path, ENTRY_ENFORCED, &[])?;
    // Every field is read with its CRD type: a field written with another type would be
    // read as absent (an attestor set written as a map: no attestors at all).
    check_types(
        o,
        path,
        &[
            "type",
            "repository",
            "failureAction",
            "image",
            "key",
            "issuer",
            "subject",
            "roots",
        ],
        &[
            "mutateDigest",
            "verifyDigest",
            "required",
            "useCache",
            "cosignOCI11",
            "skipBackgroundRequests",
        ],
    )?;
    for field in ["imageReferences", "skipImageReferences"] {
        check_string_list(o, path, field)?;
    }
    for field in ["attestors", "attestations"] {
        check_list(o, path, field)?;
    }
    let ty = o.get("type").and_then(Value::as_str).unwrap_or("Cosign");
    if ty != "Cosign" && ty != "SigstoreBundle" {
        return Err(unsupported(
            &format!("{path}.type: {ty}"),
            "only Cosign and SigstoreBundle verification are implemented",
        ));
    }
    if let Some(a) = o.get("failureAction").filter(|v| !v.is_null()) {
        match a.as_str().map(str::to_ascii_lowercase).as_deref() {
            Some("audit" | "enforce") => {}
            _ => {
                return Err(invalid(
                    &format!("{path}.failureAction"),
                    "must be Audit or Enforce",
                ));
            }
        }
    }
    if let Some(c) = o.get("imageRegistryCredentials").filter(|v| !v.is_null()) {
        let c = object(c, &format!("{path}.imageRegistryCredentials"))?;
        check_keys(
            c,
            &format!("{path}.imageRegistryCredentials"),
            &[],
            CREDENTIALS_REFUSED,
        )?;
    }
    if let Some(v) = o.get("validate").filter(|v| !v.is_null()) {
        let vo = object(v, &format!("{path}.validate"))?;
        check_keys(vo, &format!("{path}.validate"), VALIDATE_ENFORCED, &[])?;
    }
    let mut e = o.clone();
    convert_deprecated(&mut e, path)?;
    if let Some(Value::Array(sets)) = e.get("attestors") {
        for (i, s) in sets.iter().enumerate() {
            check_attestor_set(s, &format!("{path}.attestors[{i}]"), 0)?;
        }
    }
    if let Some(atts) = e.get("attestations").filter(|v| !v.is_null()) {
        let atts = atts
            .as_array()
            .ok_or_else(|| invalid(&format!("{path}.attestations"), "must be a list"))?;
        for (i, a) in atts.iter().enumerate() {
            let ap = format!("{path}.attestations[{i}]");
            let ao = object(a, &ap)?;
            check_keys(ao, &ap, ATTESTATION_ENFORCED, &[])?;
            check_types(ao, &ap, &["type", "predicateType", "name"], &[])?;
            check_list(ao, &ap, "attestors")?;
            if ao
                .get("conditions")
                .is_some_and(|c| !(c.is_null() || c.is_array() || c.is_object()))
            {
                return Err(invalid(
                    &format!("{ap}.conditions"),
                    "must be a list of condition blocks (or one block)",
                ));
            }
            if let Some(Value::Array(sets)) = ao.get("attestors") {
                for (j, s) in sets.iter().enumerate() {
                    check_attestor_set(s, &format!("{ap}.attestors[{j}]"), 0)?;
                }
            }
        }
    }
    if ty == "SigstoreBundle" {
        sigstore_bundle_entry(&mut e, path)?;
    }
    let refs = e.get("imageReferences").is_some_and(is_set);
    if !refs {
        return Err(invalid(
            &format!("{path}.imageReferences"),
            "an image reference is required",
        ));
    }
    let attestors = e.get("attestors").is_some_and(is_set);
    let attestations = e.get("attestations").is_some_and(is_set);
    let verify_digest = e
        .get("verifyDigest")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let validate = e.get("validate").is_some_and(is_set);
    if !attestors && !attestations && !verify_digest && !validate {
        return Err(invalid(
            path,
            "the entry checks nothing (no attestors, attestations, validate or verifyDigest): it would pass every image",
        ));
    }
    Ok(Value::Object(e))
}

/// Kyverno's conversion of the deprecated entry fields: `image` joins `imageReferences`;
/// `key` becomes a key attestor, `issuer`/`subject`/`roots`/`additionalExtensions` a keyless
/// one, both carrying `annotations`; the attestor goes to the attestations when there are
/// any, else to the entry's attestors.
fn convert_deprecated(e: &mut Map<String, Value>, path: &str) -> Result<(), Error> {
    let take = |e: &mut Map<String, Value>, k: &str| e.remove(k).filter(is_set);
    if let Some(img) = take(e, "image") {
        let img = img
            .as_str()
            .ok_or_else(|| invalid(&format!("{path}.image"), "must be a string"))?
            .to_owned();
        let refs = e
            .entry("imageReferences")
            .or_insert_with(|| Value::Array(Vec::new()));
        match refs {
            Value::Array(a) => a.push(Value::String(img)),
            Value::Null => *refs = json!([img]),
            _ => {
                return Err(invalid(
                    &format!("{path}.imageReferences"),
                    "must be a list",
                ));
            }
        }
    }
    let key = take(e, "key");
    let issuer = take(e, "issuer");
    let subject = take(e, "subject");
    let roots = take(e, "roots");
    let extensions = take(e, "additionalExtensions");
    let annotations = take(e, "annotations");
    if key.is_none() && issuer.is_none() && annotations.is_none() {
        if subject.is_some() || roots.is_some() || extensions.is_some() {
            return Err(invalid(
                path,
                "subject, roots or additionalExtensions without issuer or key: Kyverno ignores them, this engine refuses to",
            ));
        }
        return Ok(());
    }
    let mut attestor = Map::new();
    if let Some(a) = annotations {
        attestor.insert("annotations".into(), a);
    }
    if let Some(k) = key {
        if issuer.is_some() || subject.is_some() {
            return Err(invalid(
                path,
                "both key and issuer/subject: Kyverno keeps only the key; say which one is meant with attestors",
            ));
        }
        attestor.insert("keys".into(), json!({ "publicKeys": k }));
    } else if let Some(i) = issuer {
        let mut k = Map::new();
        k.insert("issuer".into(), i);
        if let Some(s) = subject {
            k.insert("subject".into(), s);
        }
        if let Some(r) = roots {
            k.insert("roots".into(), r);
        }
        if let Some(x) = extensions {
            k.insert("additionalExtensions".into(), x);
        }
        attestor.insert("keyless".into(), Value::Object(k));
    } else {
        return Err(invalid(
            &format!("{path}.annotations"),
            "annotations without a key or keyless identity to verify them with",
        ));
    }
    let set = json!({ "entries": [Value::Object(attestor)] });
    match e.get_mut("attestations") {
        Some(Value::Array(atts)) if !atts.is_empty() => {
            for a in atts {
                if let Some(ao) = a.as_object_mut() {
                    match ao.entry("attestors").or_insert_with(|| json!([])) {
                        Value::Array(s) => s.push(set.clone()),
                        other => *other = json!([set.clone()]),
                    }
                }
            }
        }
        _ => match e.entry("attestors").or_insert_with(|| json!([])) {
            Value::Array(s) => s.push(set),
            other => *other = json!([set]),
        },
    }
    Ok(())
}

/// A `type: SigstoreBundle` entry, checked and adjusted to what Kyverno's bundle verifier does
/// with it. Kyverno reads bundles from the image's own repository and ignores `repository`;
/// bundles carry no cosign annotations, so `annotations` could only fail: both are refused
/// rather than ignored. Kyverno matches a keyless `subject` exactly (not as a wildcard): the
/// subject is rewritten into the internal `subjectExact` (a name no policy can write: unknown
/// fields were refused above).
fn sigstore_bundle_entry(e: &mut Map<String, Value>, path: &str) -> Result<(), Error> {
    if e.get("repository").is_some_and(is_set) {
        return Err(unsupported(
            &format!("{path}.repository"),
            "with type SigstoreBundle bundles are read from the image's own repository",
        ));
    }
    fn visit(set: &mut Value, path: &str) -> Result<(), Error> {
        let Some(entries) = set.get_mut("entries").and_then(Value::as_array_mut) else {
            return Ok(());
        };
        for (i, entry) in entries.iter_mut().enumerate() {
            let ep = format!("{path}.entries[{i}]");
            if entry.get("annotations").is_some_and(is_set) {
                return Err(unsupported(
                    &format!("{ep}.annotations"),
                    "a Sigstore bundle carries no cosign annotations",
                ));
            }
            if let Some(k) = entry.get_mut("keyless").and_then(Value::as_object_mut)
                && let Some(subject) = k.remove("subject")
            {
                k.insert("subjectExact".into(), subject);
            }
            if let Some(n) = entry.get_mut("attestor").filter(|n| !n.is_null()) {
                visit(n, &format!("{ep}.attestor"))?;
            }
        }
        Ok(())
    }
    if let Some(Value::Array(sets)) = e.get_mut("attestors") {
        for (i, s) in sets.iter_mut().enumerate() {
            visit(s, &format!("{path}.attestors[{i}]"))?;
        }
    }
    if let Some(Value::Array(atts)) = e.get_mut("attestations") {
        for (i, a) in atts.iter_mut().enumerate() {
            if let Some(Value::Array(sets)) = a.get_mut("attestors") {
                for (j, s) in sets.iter_mut().enumerate() {
                    visit(s, &format!("{path}.attestations[{i}].attestors[{j}]"))?;
                }
            }
        }
    }
    Ok(())
}

fn check_attestor_set(set: &Value, path: &str, depth: usize) -> Result<(), Error> {
    if depth > 4 {
        return Err(invalid(path, "attestors nested too deeply"));
    }
    let o = object(set, path)?;
    check_keys(o, path, ATTESTOR_SET_ENFORCED, &[])?;
    let entries = o
        .get("entries")
        .and_then(Value::as_array)
        .filter(|e| !e.is_empty())
        .ok_or_else(|| invalid(&format!("{path}.entries"), "an entry is required"))?;
    if let Some(c) = o.get("count").filter(|c| !c.is_null()) {
        let n = c
            .as_u64()
            .ok_or_else(|| invalid(&format!("{path}.count"), "must be a non-negative integer"))?;
        if n as usize > entries.len() {
            return Err(invalid(
                &format!("{path}.count"),
                format!("count {n} exceeds the {} entries", entries.len()),
            ));
        }
    }
    for (i, e) in entries.iter().enumerate() {
        let ep = format!("{path}.entries[{i}]");
        let eo = object(e, &ep)?;
        check_keys(eo, &ep, ATTESTOR_ENFORCED, ATTESTOR_REFUSED)?;
        let kinds = ["keys", "keyless", "attestor", "certificates"]
            .iter()
            .filter(|k| eo.get(**k).is_some_and(|v| !v.is_null()))
            .count();
        if kinds != 1 {
            return Err(invalid(
                &ep,
                "exactly one of keys, keyless, certificates or a nested attestor is required",
            ));
        }
        if let Some(k) = eo.get("keys").filter(|v| !v.is_null()) {
            let kp = format!("{ep}.keys");
            let ko = object(k, &kp)?;
            check_keys(ko, &kp, KEYS_ENFORCED, KEYS_REFUSED)?;
            check_types(ko, &kp, &["publicKeys", "signatureAlgorithm"], &[])?;
            if let Some(alg) = ko.get("signatureAlgorithm").and_then(Value::as_str)
                && !alg.is_empty()
                && alg != "sha256"
            {
                return Err(unsupported(
                    &format!("{kp}.signatureAlgorithm: {alg}"),
                    "only sha256 is implemented",
                ));
            }
            check_logs(ko, &kp)?;
        }
        if let Some(k) = eo.get("keyless").filter(|v| !v.is_null()) {
            let kp = format!("{ep}.keyless");
            let ko = object(k, &kp)?;
            check_keys(ko, &kp, KEYLESS_ENFORCED, KEYLESS_REFUSED)?;
            check_types(
                ko,
                &kp,
                &[
                    "issuer",
                    "issuerRegExp",
                    "subject",
                    "subjectRegExp",
                    "roots",
                ],
                &[],
            )?;
            check_logs(ko, &kp)?;
        }
        if let Some(c) = eo.get("certificates").filter(|v| !v.is_null()) {
            let cp = format!("{ep}.certificates");
            let co = object(c, &cp)?;
            check_keys(co, &cp, CERTIFICATES_ENFORCED, CERTIFICATES_REFUSED)?;
            check_types(co, &cp, &["cert", "certChain"], &[])?;
            if !co.get("cert").is_some_and(is_set) {
                return Err(invalid(
                    &format!("{cp}.cert"),
                    "a certificate is required (a chain alone names no signer)",
                ));
            }
            check_logs(co, &cp)?;
        }
        if let Some(n) = eo.get("attestor").filter(|v| !v.is_null()) {
            check_attestor_set(n, &format!("{ep}.attestor"), depth + 1)?;
        }
    }
    Ok(())
}

fn check_logs(o: &Map<String, Value>, path: &str) -> Result<(), Error> {
    for log in ["rekor", "ctlog"] {
        if let Some(l) = o.get(log).filter(|v| !v.is_null()) {
            let lp = format!("{path}.{log}");
            let lo = object(l, &lp)?;
            check_keys(lo, &lp, LOG_ENFORCED, LOG_REFUSED)?;
            check_types(
                lo,
                &lp,
                &["url", "pubkey", "tsaCertChain"],
                &["ignoreTlog", "ignoreSCT"],
            )?;
        }
    }
    Ok(())
}

/// Checks that `o.field`, when set, is a list.
fn check_list(o: &Map<String, Value>, path: &str, field: &str) -> Result<(), Error> {
    match o.get(field) {
        None | Some(Value::Null | Value::Array(_)) => Ok(()),
        Some(_) => Err(invalid(&format!("{path}.{field}"), "must be a list")),
    }
}

/// Checks that `o.field`, when set, is a list of strings.
fn check_string_list(o: &Map<String, Value>, path: &str, field: &str) -> Result<(), Error> {
    check_list(o, path, field)?;
    if let Some(Value::Array(items)) = o.get(field)
        && let Some(i) = items.iter().position(|v| !v.is_string())
    {
        return Err(invalid(&format!("{path}.{field}[{i}]"), "must be a string"));
    }
    Ok(())
}

/// Checks that the `strings` fields of `o` are strings and the `bools` booleans when set.
/// Trust material or a waiver written with another type (a list of PEM blocks, `"true"`)
/// would otherwise be read as absent, and the caller's trust root would decide instead.
fn check_types(
    o: &Map<String, Value>,
    path: &str,
    strings: &[&str],
    bools: &[&str],
) -> Result<(), Error> {
    for (k, v) in o {
        if v.is_null() {
            continue;
        }
        if strings.contains(&k.as_str()) && !v.is_string() {
            return Err(invalid(&format!("{path}.{k}"), "must be a string"));
        }
        if bools.contains(&k.as_str()) && !v.is_boolean() {
            return Err(invalid(&format!("{path}.{k}"), "must be true or false"));
        }
    }
    Ok(())
}

/// The rule-level action the entries ask for: `Enforce` when any entry says so, `Audit` when
/// every entry that sets one says `Audit`, `None` when none does.
pub fn entries_failure_action(list: &Value) -> Option<crate::kyverno::policy::FailureAction> {
    let actions: Vec<String> = list
        .as_array()?
        .iter()
        .filter_map(|e| e.get("failureAction").and_then(Value::as_str))
        .map(str::to_ascii_lowercase)
        .collect();
    if actions.iter().any(|a| a == "enforce") {
        Some(crate::kyverno::policy::FailureAction::Enforce)
    } else if actions.is_empty() {
        None
    } else {
        Some(crate::kyverno::policy::FailureAction::Audit)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn legacy_key_becomes_a_key_attestor() {
        let v = normalize(
            &json!([{"imageReferences": ["r/*"], "key": "PEM"}]),
            "spec.rules[0]",
        )
        .unwrap();
        assert_eq!(
            v[0]["attestors"],
            json!([{"entries": [{"keys": {"publicKeys": "PEM"}}]}])
        );
        assert!(v[0].get("key").is_none());
    }

    #[test]
    fn legacy_issuer_goes_to_attestations_when_there_are_some() {
        let v = normalize(
            &json!([{"image": "r/*", "issuer": "https://i", "subject": "s",
                     "attestations": [{"type": "t"}]}]),
            "spec.rules[0]",
        )
        .unwrap();
        assert_eq!(v[0]["imageReferences"], json!(["r/*"]));
        assert_eq!(
            v[0]["attestations"][0]["attestors"][0]["entries"][0]["keyless"],
            json!({"issuer": "https://i", "subject": "s"})
        );
    }

    #[test]
    fn unknown_and_refused_fields_are_load_errors() {
        for (entry, field) in [
            (
                json!({"imageReferences": ["*"], "verifyDigest": true, "newField": 1}),
                "newField",
            ),
            (
                json!({"imageReferences": ["*"], "attestors": [{"entries": [{"keys": {"kms": "x"}}]}]}),
                "kms",
            ),
            (
                json!({"imageReferences": ["*"], "attestors": [{"entries": [{"certificates": {"cert": "C", "certChain": "K"}}]}]}),
                "certChain",
            ),
            (
                json!({"imageReferences": ["*"], "type": "Notary", "attestors": []}),
                "Notary",
            ),
        ] {
            let e = normalize(&json!([entry]), "r").unwrap_err();
            assert_eq!(e.code(), "policy.unsupported", "{e}");
            assert!(e.to_string().contains(field), "{e}");
        }
    }

    #[test]
    fn trust_material_and_waivers_of_another_type_are_refused() {
        for (attestor, field) in [
            (
                json!({"keyless": {"subject": "s", "issuer": "i", "roots": ["PEM"]}}),
                "roots",
            ),
            (
                json!({"keyless": {"subject": "s", "issuer": "i", "roots": 1}}),
                "roots",
            ),
            (
                json!({"keyless": {"subject": "s", "issuer": "i", "rekor": {"pubkey": ["K"]}}}),
                "pubkey",
            ),
            (
                json!({"keyless": {"subject": "s", "issuer": "i", "ctlog": {"pubkey": {"a": "K"}}}}),
                "pubkey",
            ),
            (
                json!({"keyless": {"subject": "s", "issuer": "i", "ctlog": {"ignoreSCT": "true"}}}),
                "ignoreSCT",
            ),
            (
                json!({"keys": {"publicKeys": "P", "rekor": {"ignoreTlog": "yes"}}}),
                "ignoreTlog",
            ),
            (json!({"keys": {"publicKeys": ["P"]}}), "publicKeys"),
            (json!({"certificates": {"cert": ["C"]}}), "cert"),
            (
                json!({"keyless": {"subject": "s", "issuer": "i", "root": "PEM"}}),
                "root",
            ),
        ] {
            let e = normalize(
                &json!([{"imageReferences": ["*"], "attestors": [{"entries": [attestor]}]}]),
                "r",
            )
            .unwrap_err();
            assert!(
                e.code() == "policy.invalid" || e.code() == "policy.unsupported",
                "{e}"
            );
            assert!(e.to_string().contains(field), "{field}: {e}");
        }
    }

    #[test]
    fn an_entry_that_checks_nothing_is_refused() {
        let e = normalize(
            &json!([{"imageReferences": ["*"], "verifyDigest": false}]),
            "r",
        )
        .unwrap_err();
        assert_eq!(e.code(), "policy.invalid");
    }
}
