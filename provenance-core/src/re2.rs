//! Regular expressions with Go's (RE2) meaning, for certificate identity regexes
//! (`subjectRegExp`, `issuerRegExp`, cosign's `--certificate-identity-regexp`), CEL
//! `matches()` / `find()` / `findAll()` and Kyverno's JMESPath `regex_*` functions.
//!
//! Rust's `regex` and Go's `regexp` share a syntax, but in Rust the Perl classes are Unicode:
//! `\d` matches `٣` and `３`, `\w` matches `ｒ`, `\s` matches U+3000. In Go they are ASCII:
//! `\d` is `[0-9]`, `\w` is `[0-9A-Za-z_]`, `\s` is `[\t\n\f\r ]`, `\b` is an ASCII word
//! boundary. A policy that allows `^[\w.=-]+$` must not admit full-width look-alikes, so
//! [`compile`] rewrites the shorthand classes into their ASCII sets, outside and inside
//! brackets, and leaves everything else (literals, `\p{..}`, `.`) Unicode-aware as in Go.

/// Largest compiled program accepted (bytes).
pub const SIZE_LIMIT: usize = 1 << 20;

/// Rewrites `\d \D \w \W \s \S \b \B` into Go's ASCII meaning.
pub fn ascii_classes(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut i = 0;
    // Inside `[...]`: the index where the class body starts (after `[` and `^`).
    let mut class_body: Option<usize> = None;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' && i + 1 < chars.len() {
            let d = chars[i + 1];
            let rep = match (d, class_body.is_some()) {
                ('d', false) => Some("[0-9]"),
                ('D', false) => Some("[^0-9]"),
                ('w', false) => Some("[0-9A-Za-z_]"),
                ('W', false) => Some("[^0-9A-Za-z_]"),
                ('s', false) => Some(r"[\t\n\x0C\r ]"),
                ('S', false) => Some(r"[^\t\n\x0C\r ]"),
                ('b', false) => Some(r"(?-u:\b)"),
                ('B', false) => Some(r"(?-u:\B)"),
                ('d', true) => Some("0-9"),
                ('D', true) => Some("[^0-9]"),
                ('w', true) => Some("0-9A-Za-z_"),
                ('W', true) => Some("[^0-9A-Za-z_]"),
                ('s', true) => Some(r"\t\n\x0C\r "),
                ('S', true) => Some(r"[^\t\n\x0C\r ]"),
                _ => None,
            };
            match rep {
                Some(r) => out.push_str(r),
                None => {
                    out.push(c);
                    out.push(d);
                }
            }
            i += 2;
            continue;
        }
        match class_body {
            None if c == '[' => {
                out.push('[');
                i += 1;
                if chars.get(i) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                class_body = Some(i);
                // A `]` first in the class is a literal.
                if chars.get(i) == Some(&']') {
                    out.push(']');
                    i += 1;
                }
                continue;
            }
            Some(_) if c == '[' && chars.get(i + 1) == Some(&':') => {
                // `[:alpha:]` inside a class: copied as is (ASCII in both engines).
                let mut j = i + 2;
                while j + 1 < chars.len() && !(chars[j] == ':' && chars[j + 1] == ']') {
                    j += 1;
                }
                let end = (j + 2).min(chars.len());
                out.extend(&chars[i..end]);
                i = end;
                continue;
            }
            Some(_) if c == ']' => class_body = None,
            _ => {}
        }
        out.push(c);
        i += 1;
    }
    out
}

/// Compiles `pattern` with Go's meaning of the shorthand classes and a bounded size.
pub fn compile(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(&ascii_classes(pattern))
        .size_limit(SIZE_LIMIT)
        .build()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn shorthand_classes_are_ascii() {
        let re = compile(r"^[\w.=-]+$").unwrap();
        assert!(re.is_match("--mode=root"));
        assert!(!re.is_match("--mode=ｒｏｏｔ"));
        assert!(!compile(r"^\d+$").unwrap().is_match("３"));
        assert!(compile(r"^\D$").unwrap().is_match("３"));
        assert!(!compile(r"^\w+$").unwrap().is_match("é"));
        assert!(compile(r"^\W$").unwrap().is_match("é"));
        assert!(!compile(r"^\s$").unwrap().is_match("\u{3000}"));
        assert!(!compile(r"^\s$").unwrap().is_match("\u{0B}"));
        assert!(compile(r"^\S$").unwrap().is_match("\u{3000}"));
        assert!(compile(r"\bé").unwrap().is_match("aé"));
        assert!(compile(r"^[^\d]$").unwrap().is_match("３"));
        assert!(compile(r"^[\D]$").unwrap().is_match("３"));
        assert!(!compile(r"^[\s]$").unwrap().is_match("\u{3000}"));
        // Literals and Unicode classes keep their meaning.
        assert!(compile(r"^é\p{Han}+$").unwrap().is_match("é漢字"));
        assert!(compile(r"^[]a]+$").unwrap().is_match("]a"));
        assert!(compile(r"^[[:alpha:]\d]+$").unwrap().is_match("a1"));
        assert!(compile(r"^\\d$").unwrap().is_match(r"\d"));
        assert!(compile(r"^\.\d$").unwrap().is_match(".1"));
    }
}
