//! Wildcard matching as Kyverno does it, and `path.Match`-style globs.
//!
//! # Kyverno wildcards ([`wildcard_match`])
//!
//! Kyverno matches names, namespaces, image references and string values against patterns in
//! which:
//!
//! - `*` matches any sequence of characters, including the empty sequence and `/`;
//! - `?` matches exactly one character (including `/`);
//! - every other character matches itself; there are no escapes and no character classes;
//! - the empty pattern matches only the empty string, and `*` matches everything.
//!
//! Matching is over Unicode scalar values and is case-sensitive. So `registry.example.com/ml/*`
//! matches `registry.example.com/ml/llama:3` and `registry.example.com/ml/team/x@sha256:…`,
//! while `nvcr.io/nim/*` does not match `nvcr.io/nimble`.
//!
//! ```
//! use provenance_core::wildcard::wildcard_match;
//! assert!(wildcard_match("nvcr.io/nim/*", "nvcr.io/nim/meta/llama3:1.0"));
//! assert!(!wildcard_match("nvcr.io/nim/*", "nvcr.io/nimble/x:1"));
//! assert!(wildcard_match("ghcr.io/org/model-?:*", "ghcr.io/org/model-a:v1"));
//! ```
//!
//! # Globs ([`path_match`])
//!
//! The image-reference grammar's `FamiliarMatch` uses Go's `path.Match`: `*` matches any
//! sequence of non-`/` characters, `?` one non-`/` character, `[...]` a class (`^` negates,
//! `a-z` ranges), and `\` escapes. A malformed pattern is an error.

/// Kyverno's wildcard match of `text` against `pattern` (see the [module docs](self)).
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    if pattern.is_empty() {
        return text.is_empty();
    }
    if pattern == "*" {
        return true;
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Iterative glob with single-star backtracking: linear in practice, O(|p|*|t|) worst case.
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || (p[pi] != '*' && p[pi] == t[ti])) {
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

/// Whether `s` contains a Kyverno wildcard character (`*` or `?`).
pub fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?'])
}

/// A malformed glob pattern (unterminated class or trailing escape).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadPattern;

impl std::fmt::Display for BadPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("syntax error in pattern")
    }
}

impl std::error::Error for BadPattern {}

enum Tok {
    Star,
    Any,
    Lit(char),
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

fn compile_glob(pattern: &str) -> Result<Vec<Tok>, BadPattern> {
    let mut out = Vec::new();
    let mut it = pattern.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '*' => out.push(Tok::Star),
            '?' => out.push(Tok::Any),
            '\\' => out.push(Tok::Lit(it.next().ok_or(BadPattern)?)),
            '[' => {
                let negated = it.next_if_eq(&'^').is_some();
                let mut ranges = Vec::new();
                let mut first = true;
                loop {
                    let mut lo = it.next().ok_or(BadPattern)?;
                    if lo == ']' && !first {
                        break;
                    }
                    if lo == ']' || lo == '-' {
                        // Go's path.Match rejects an unescaped ']' or '-' as a class bound
                        return Err(BadPattern);
                    }
                    first = false;
                    if lo == '\\' {
                        lo = it.next().ok_or(BadPattern)?;
                    }
                    let mut hi = lo;
                    if it.next_if_eq(&'-').is_some() {
                        hi = it.next().ok_or(BadPattern)?;
                        if hi == ']' || hi == '-' {
                            return Err(BadPattern);
                        }
                        if hi == '\\' {
                            hi = it.next().ok_or(BadPattern)?;
                        }
                    }
                    ranges.push((lo, hi));
                }
                out.push(Tok::Class { negated, ranges });
            }
            c => out.push(Tok::Lit(c)),
        }
    }
    Ok(out)
}

/// Matches tokens against text with memoization over (token, char) positions: O(|p|·|t|)
/// time, so patterns with many `*` cannot blow up (a naive backtracking match is exponential).
fn glob_match(p: &[Tok], t: &[char]) -> bool {
    let width = t.len() + 1;
    // 0 = unknown, 1 = false, 2 = true
    let mut memo = vec![0u8; (p.len() + 1) * width];
    // Iterative DP from the end: m(i, j) = does p[i..] match t[j..]?
    for i in (0..=p.len()).rev() {
        for j in (0..=t.len()).rev() {
            let v = if i == p.len() {
                j == t.len()
            } else {
                match &p[i] {
                    // `*`: skip it, or consume one non-'/' character and stay on it.
                    Tok::Star => {
                        memo[(i + 1) * width + j] == 2
                            || (j < t.len() && t[j] != '/' && memo[i * width + j + 1] == 2)
                    }
                    tok => {
                        j < t.len()
                            && match tok {
                                Tok::Any => t[j] != '/',
                                Tok::Lit(l) => *l == t[j],
                                Tok::Class { negated, ranges } => {
                                    let c = t[j];
                                    let inside = ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi);
                                    c != '/' && inside != *negated
                                }
                                Tok::Star => false,
                            }
                            && memo[(i + 1) * width + j + 1] == 2
                    }
                }
            };
            memo[i * width + j] = if v { 2 } else { 1 };
        }
    }
    memo[0] == 2
}

/// Go `path.Match` semantics (see the [module docs](self)).
pub fn path_match(pattern: &str, text: &str) -> Result<bool, BadPattern> {
    let toks = compile_glob(pattern)?;
    let t: Vec<char> = text.chars().collect();
    Ok(glob_match(&toks, &t))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert_eq!(path_match("foo/*/ba[rz]", "foo/a/bar"), Ok(true));
        assert_eq!(path_match("foo/*", "foo/a/bar"), Ok(false));
        assert_eq!(path_match("[-x]", "foo"), Err(BadPattern));
        assert_eq!(path_match("a[^b]c", "axc"), Ok(true));
        assert_eq!(path_match("a\\*", "a*"), Ok(true));
        assert_eq!(path_match("ab[", "ab"), Err(BadPattern));
        // Many stars must not blow up (found by fuzzing: exponential backtracking).
        let pattern = "*a".repeat(40) + "*b";
        let text = "a".repeat(200);
        assert_eq!(path_match(&pattern, &text), Ok(false));
    }
}
