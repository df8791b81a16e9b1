//! Which images of a resource a `verifyImages` rule covers: the image sites (built-in Pod
//! extractors or the rule's `imageExtractors`), `imageReferences` / `skipImageReferences`, and
//! the [`ImageRequest`]s listed for them.

use std::collections::BTreeMap;

use provenance_core::wildcard::wildcard_match;
use serde_json::Value;

use super::cache::evidence_digest;
use super::{ImageEvidence, ImageRequest};
use crate::kyverno::context::{image_info, images_of};

pub(super) fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_owned))
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

pub(super) fn attestation_type(a: &Value) -> Option<String> {
    a.get("type")
        .or_else(|| a.get("predicateType"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

pub(super) fn matches_refs(patterns: &[String], image: &str) -> bool {
    let normalized = host_normalized(image);
    patterns.iter().any(|p| {
        wildcard_match(p, image) || normalized.as_deref().is_some_and(|n| wildcard_match(p, n))
    })
}

/// The same reference with its registry host as the network sees it: lower case, without
/// the default HTTPS port. `REGISTRY.example.com:443/ml/x:1` pulls from
/// `registry.example.com`, so patterns naming that registry must select it (Kyverno compares
/// the strings as written, and misses it). `None` when nothing changes.
pub(crate) fn host_normalized(reference: &str) -> Option<String> {
    let (host, rest) = reference.split_once('/')?;
    if !host.contains(['.', ':']) && host != "localhost" {
        return None;
    }
    let mut h = host.to_ascii_lowercase();
    if let Some(stripped) = h.strip_suffix(":443") {
        h = stripped.to_owned();
    }
    (h != host).then(|| format!("{h}/{rest}"))
}

/// Lists the images a `verifyImages` block (the rule's raw list) covers in `resource`.
pub fn image_requests(
    policy: &str,
    rule: &str,
    verify_images: &Value,
    resource: &Value,
) -> Vec<ImageRequest> {
    let mut out = Vec::new();
    let Some(entries) = verify_images.as_array() else {
        return out;
    };
    let sites = parsed_sites(resource);
    for entry in entries {
        out.extend(entry_requests(policy, rule, entry, &sites));
    }
    out
}

/// [`image_requests`] for a rule with Kyverno `imageExtractors` (the rule's
/// `imageExtractors` object, by kind): the images of `resource` are those its kind's
/// extractors find, in place of the built-in Pod extractors. Extractors that cannot be
/// applied give no requests here; evaluation reports them as an `error`.
pub fn image_requests_with_extractors(
    policy: &str,
    rule: &str,
    verify_images: &Value,
    extractors: Option<&Value>,
    resource: &Value,
) -> Vec<ImageRequest> {
    let Some(entries) = verify_images.as_array() else {
        return Vec::new();
    };
    let sites = ParsedSites::for_rule(resource, extractors);
    entries
        .iter()
        .flat_map(|e| entry_requests(policy, rule, e, &sites.sites))
        .collect()
}

/// The image sites of one resource, each parsed once (shared by every `verifyImages` rule
/// that evaluates the resource), and the image fields no extractor covered.
#[derive(Default)]
pub(crate) struct ParsedSites {
    pub(super) sites: Vec<ParsedSite>,
    /// Why some images of the resource cannot be verified (image fields no extractor
    /// reached, extractors that failed): each is an `error` for a rule over the resource.
    pub(super) problems: Vec<String>,
    /// Digests of the evidence of each image, by reference, computed once per request for
    /// the keys of remembered failures (see [`failure_key`](super::cache::failure_key)).
    evidence_digests: std::sync::Mutex<BTreeMap<String, Option<[u8; 32]>>>,
}

impl ParsedSites {
    /// [`evidence_digest`] of `ev`, the evidence of `reference`, computed once.
    pub(super) fn evidence_digest(&self, reference: &str, ev: &ImageEvidence) -> Option<[u8; 32]> {
        let mut memo = self.evidence_digests.lock().ok()?;
        if let Some(d) = memo.get(reference) {
            return *d;
        }
        let d = evidence_digest(ev);
        memo.insert(reference.to_owned(), d);
        d
    }

    /// Whether a `verifyImages` rule produces a result for these sites at all. As Kyverno's
    /// engine does, a rule none of whose entries' `imageReferences` matches any image of the
    /// resource produces **no** rule response (not a skip): nothing in `apply`, `test` or a
    /// PolicyReport. A site that cannot be parsed, or image fields the extractors do not
    /// cover, always produce one (an error: they must not escape verification by not
    /// matching).
    pub(crate) fn covered_by(&self, verify_images: &Value) -> bool {
        if !self.problems.is_empty() || self.sites.iter().any(|ps| ps.info.is_none()) {
            return true;
        }
        let entries: &[Value] = verify_images.as_array().map(Vec::as_slice).unwrap_or(&[]);
        entries.iter().any(|entry| {
            let mut refs = strings(entry.get("imageReferences"));
            refs.extend(strings(entry.get("image")));
            self.sites
                .iter()
                .filter_map(ParsedSite::reference)
                .any(|r| matches_refs(&refs, r))
        })
    }

    /// Parses every image site of `resource` (the built-in Pod extractors).
    pub(crate) fn of(resource: &Value) -> Self {
        let sites = parsed_sites(resource);
        let problems = unextracted(resource, &sites);
        ParsedSites {
            sites,
            problems,
            evidence_digests: Default::default(),
        }
    }

    /// The sites for a rule: its `imageExtractors` for the resource's kind when it has some,
    /// else the built-in ones.
    pub(crate) fn for_rule(resource: &Value, extractors: Option<&Value>) -> Self {
        let kind = resource.get("kind").and_then(Value::as_str).unwrap_or("");
        let Some(list) = extractors
            .and_then(|e| e.get(kind))
            .filter(|l| !l.is_null())
        else {
            return Self::of(resource);
        };
        match crate::kyverno::context::extract_images(resource, list) {
            Ok(found) => {
                let sites: Vec<ParsedSite> = found
                    .into_iter()
                    .map(|site| ParsedSite {
                        info: image_info(&site.image),
                        site,
                    })
                    .collect();
                let problems = unextracted(resource, &sites);
                ParsedSites {
                    sites,
                    problems,
                    evidence_digests: Default::default(),
                }
            }
            Err(e) => ParsedSites {
                sites: Vec::new(),
                problems: vec![format!("imageExtractors.{kind}: {e}")],
                evidence_digests: Default::default(),
            },
        }
    }
}

/// Image fields of `resource` (string values of keys named `image`, outside `metadata` and
/// `status`) that no extracted site covers: a resource whose images the rule cannot see is
/// not a pass (a custom resource without `imageExtractors`, such as an inference service).
fn unextracted(resource: &Value, sites: &[ParsedSite]) -> Vec<String> {
    let mut found = Vec::new();
    collect_image_fields(resource, String::new(), 0, &mut found);
    found
        .into_iter()
        .filter(|(ptr, _)| {
            !ptr.starts_with("/metadata/")
                && !ptr.starts_with("/status/")
                && !sites.iter().any(|s| {
                    s.site.pointer == *ptr || ptr.starts_with(&format!("{}/", s.site.pointer))
                })
        })
        .map(|(ptr, img)| {
            format!(
                "image {img:?} at {ptr} is not extracted (the resource's kind needs imageExtractors)"
            )
        })
        .collect()
}

fn collect_image_fields(v: &Value, at: String, depth: usize, out: &mut Vec<(String, String)>) {
    if depth > 64 || out.len() > 256 {
        return;
    }
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                let p = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                if k == "image"
                    && let Value::String(img) = x
                {
                    out.push((p, img.clone()));
                } else if k == "image"
                    && let Some(r) = x.get("reference").and_then(Value::as_str)
                {
                    out.push((format!("{p}/reference"), r.to_owned()));
                } else {
                    collect_image_fields(x, p, depth + 1, out);
                }
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                collect_image_fields(x, format!("{at}/{i}"), depth + 1, out);
            }
        }
        _ => {}
    }
}

/// An image site of a resource with its parsed form (`None`: not a valid reference).
pub(super) struct ParsedSite {
    pub(super) site: crate::kyverno::context::ImageSite,
    pub(super) info: Option<Value>,
}

impl ParsedSite {
    pub(super) fn reference(&self) -> Option<&str> {
        self.info.as_ref()?.get("reference")?.as_str()
    }
}

/// Every image site of `resource`, each parsed once.
fn parsed_sites(resource: &Value) -> Vec<ParsedSite> {
    images_of(resource)
        .into_iter()
        .map(|site| ParsedSite {
            info: image_info(&site.image),
            site,
        })
        .collect()
}

/// The images one `verifyImages` entry covers among `sites`.
pub(super) fn entry_requests(
    policy: &str,
    rule: &str,
    entry: &Value,
    sites: &[ParsedSite],
) -> Vec<ImageRequest> {
    let mut out = Vec::new();
    let refs = {
        let mut r = strings(entry.get("imageReferences"));
        r.extend(strings(entry.get("image")));
        r
    };
    let skip = strings(entry.get("skipImageReferences"));
    for ps in sites {
        let Some(reference) = ps.reference() else {
            continue;
        };
        if !matches_refs(&refs, reference) || matches_refs(&skip, reference) {
            continue;
        }
        out.push(ImageRequest {
            policy: policy.to_owned(),
            rule: rule.to_owned(),
            image: ps.site.image.clone(),
            reference: reference.to_owned(),
            pointer: ps.site.pointer.clone(),
            repository: entry
                .get("repository")
                .and_then(Value::as_str)
                .map(str::to_owned),
            signatures: entry
                .get("attestors")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty()),
            attestation_types: entry
                .get("attestations")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(attestation_type).collect())
                .unwrap_or_default(),
        });
    }
    out
}
