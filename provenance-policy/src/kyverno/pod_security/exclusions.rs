//! Exclusions (Kyverno's `ApplyPodSecurityExclusion` / `exemptExclusions`) and Kyverno's
//! wildcard matching of image patterns and values.

use super::checks::{CheckResult, evaluate};
use super::pod::{Container, Pod};
use super::{Level, PssExclude, control_check_ids};

// ---------------------------------------------------------------------------------------------
// Kyverno's wildcard matching (`*` any run, `?` one character).

/// Kyverno's `wildcard.Match`: `*` matches any run of characters, `?` exactly one.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

fn any_pattern(patterns: &[String], text: &str) -> bool {
    patterns.iter().any(|p| wildcard_match(p, text))
}

// ---------------------------------------------------------------------------------------------
// Exclusions (Kyverno's `ApplyPodSecurityExclusion` / `exemptExclusions`).

/// Replaces every run of ASCII digits by `*`.
fn star_indexes(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut in_digits = false;
    for ch in field.chars() {
        if ch.is_ascii_digit() {
            if !in_digits {
                out.push('*');
            }
            in_digits = true;
        } else {
            out.push(ch);
            in_digits = false;
        }
    }
    out
}

/// Kyverno's `parseField`: the starred field, the first index, and the container list named by
/// the second alphabetic word (when it is one).
fn parse_field(field: &str) -> (String, Option<usize>, Option<&'static str>) {
    let starred = star_indexes(field);
    let first_index = field
        .split(|c: char| !c.is_ascii_digit())
        .find(|s| !s.is_empty())
        .and_then(|s| s.parse().ok());
    let second_word = field
        .split(|c: char| !c.is_ascii_alphabetic())
        .filter(|s| !s.is_empty())
        .nth(1);
    let kind = match second_word {
        Some("containers") => Some("containers"),
        Some("initContainers") => Some("initContainers"),
        Some("ephemeralContainers") => Some("ephemeralContainers"),
        _ => None,
    };
    (starred, first_index, kind)
}

fn container_name<'a>(pod: &Pod<'a>, kind: &str, index: Option<usize>) -> &'a str {
    let list = match kind {
        "containers" => &pod.containers,
        "initContainers" => &pod.init,
        _ => &pod.ephemeral,
    };
    index
        .and_then(|i| list.get(i))
        .map(|c| c.name)
        .unwrap_or("")
}

pub(super) fn apply_exclusions(
    level: Level,
    minor: u32,
    excludes: &[PssExclude],
    mut results: Vec<CheckResult>,
    pod: &Pod,
) -> Vec<CheckResult> {
    for exclude in excludes {
        if results.is_empty() {
            break;
        }
        let ids = control_check_ids(&exclude.control_name);
        if ids.is_empty() {
            continue;
        }
        let container_level = !exclude.images.is_empty();
        let probe = if container_level {
            fn pick<'a>(list: &[Container<'a>], images: &[String]) -> Vec<Container<'a>> {
                list.iter()
                    .filter(|c| any_pattern(images, c.image))
                    .cloned()
                    .collect()
            }
            Pod {
                init: pick(&pod.init, &exclude.images),
                containers: pick(&pod.containers, &exclude.images),
                ephemeral: pick(&pod.ephemeral, &exclude.images),
                ..Pod::default()
            }
        } else {
            Pod {
                containers: vec![Container {
                    name: "fake",
                    ..Container::default()
                }],
                init: Vec::new(),
                ephemeral: Vec::new(),
                ..pod.clone()
            }
        };
        let exclude_results = evaluate(level, minor, &probe);
        for er in &exclude_results {
            if !ids.contains(&er.id) {
                continue;
            }
            for ee in &er.errs {
                let (ex_field, ex_index, ex_kind) = if container_level {
                    parse_field(&ee.field)
                } else {
                    (star_indexes(&ee.field), None, None)
                };
                if !(exclude.restricted_field.is_empty() || ex_field == exclude.restricted_field) {
                    continue;
                }
                if !exclude.values.is_empty()
                    && !ee
                        .bad_values()
                        .iter()
                        .all(|b| any_pattern(&exclude.values, b))
                {
                    continue;
                }
                let ex_container = ex_kind.map(|k| container_name(&probe, k, ex_index));
                let Some(pos) = results.iter().position(|r| r.id == er.id) else {
                    continue;
                };
                let target = &mut results[pos];
                let hit = target.errs.iter().position(|de| {
                    if container_level {
                        let (d_field, d_index, d_kind) = parse_field(&de.field);
                        match d_kind {
                            Some(k) => {
                                ex_field == d_field
                                    && ex_container == Some(container_name(pod, k, d_index))
                            }
                            None => ex_field == d_field,
                        }
                    } else {
                        ex_field == star_indexes(&de.field)
                    }
                });
                if let Some(i) = hit {
                    target.errs.swap_remove(i);
                }
                if target.errs.is_empty() {
                    results.remove(pos);
                }
            }
        }
    }
    results
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn wildcard() {
        assert!(wildcard_match("nginx*", "nginx:1.2"));
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("a?c", "abc"));
        assert!(!wildcard_match("a?c", "ac"));
        assert!(!wildcard_match("busybox", "nginx"));
    }

    #[test]
    fn fields() {
        assert_eq!(
            parse_field("spec.containers[10].ports[2].hostPort"),
            (
                "spec.containers[*].ports[*].hostPort".to_string(),
                Some(10),
                Some("containers")
            )
        );
        assert_eq!(parse_field("spec.hostNetwork").2, None);
    }
}
