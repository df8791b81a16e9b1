//! Tokenizer for JMESPath expressions.

use serde_json::Value;

/// A token with the byte offset where it starts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// Unquoted identifier.
    Ident(String),
    /// Quoted identifier (`"foo"`).
    QIdent(String),
    /// Integer.
    Number(i64),
    /// Raw string literal (`'foo'`).
    RawStr(String),
    /// JSON literal (`` `...` ``).
    Literal(Value),
    Dot,
    Star,
    Lbracket,
    Rbracket,
    Filter,
    Flatten,
    Lbrace,
    Rbrace,
    Lparen,
    Rparen,
    Comma,
    Colon,
    Pipe,
    Or,
    And,
    Not,
    Current,
    Expref,
    Eq,
    Ne,
    Lt,
    Lte,
    Gt,
    Gte,
    Eof,
}

impl Tok {
    /// Binding power for the Pratt parser.
    pub(crate) fn bp(&self) -> u8 {
        match self {
            Tok::Pipe => 1,
            Tok::Or => 2,
            Tok::And => 3,
            Tok::Eq | Tok::Ne | Tok::Lt | Tok::Lte | Tok::Gt | Tok::Gte => 5,
            Tok::Flatten => 9,
            Tok::Star => 20,
            Tok::Filter => 21,
            Tok::Dot => 40,
            Tok::Not => 45,
            Tok::Lbrace => 50,
            Tok::Lbracket => 55,
            Tok::Lparen => 60,
            _ => 0,
        }
    }
}

/// Splits `src` into tokens (with their byte offsets); the last token is [`Tok::Eof`].
pub(crate) fn tokenize(src: &str) -> Result<Vec<(Tok, usize)>, String> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0usize;
    while i < b.len() {
        let c = b[i];
        let start = i;
        let tok = match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                Tok::Ident(src[start..i].to_string())
            }
            b'0'..=b'9' | b'-' => {
                i += 1;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                let text = &src[start..i];
                if text == "-" {
                    return Err(format!("invalid '-' at offset {start}"));
                }
                let n = text
                    .parse::<i64>()
                    .map_err(|_| format!("number out of range at offset {start}"))?;
                Tok::Number(n)
            }
            b'.' => {
                i += 1;
                Tok::Dot
            }
            b'*' => {
                i += 1;
                Tok::Star
            }
            b'[' => {
                i += 1;
                match b.get(i) {
                    Some(b'?') => {
                        i += 1;
                        Tok::Filter
                    }
                    Some(b']') => {
                        i += 1;
                        Tok::Flatten
                    }
                    _ => Tok::Lbracket,
                }
            }
            b']' => {
                i += 1;
                Tok::Rbracket
            }
            b'{' => {
                i += 1;
                Tok::Lbrace
            }
            b'}' => {
                i += 1;
                Tok::Rbrace
            }
            b'(' => {
                i += 1;
                Tok::Lparen
            }
            b')' => {
                i += 1;
                Tok::Rparen
            }
            b',' => {
                i += 1;
                Tok::Comma
            }
            b':' => {
                i += 1;
                Tok::Colon
            }
            b'@' => {
                i += 1;
                Tok::Current
            }
            b'|' => {
                i += 1;
                if b.get(i) == Some(&b'|') {
                    i += 1;
                    Tok::Or
                } else {
                    Tok::Pipe
                }
            }
            b'&' => {
                i += 1;
                if b.get(i) == Some(&b'&') {
                    i += 1;
                    Tok::And
                } else {
                    Tok::Expref
                }
            }
            b'!' => {
                i += 1;
                if b.get(i) == Some(&b'=') {
                    i += 1;
                    Tok::Ne
                } else {
                    Tok::Not
                }
            }
            b'=' => {
                i += 1;
                if b.get(i) == Some(&b'=') {
                    i += 1;
                    Tok::Eq
                } else {
                    return Err(format!("unexpected '=' at offset {start}, expected '=='"));
                }
            }
            b'<' => {
                i += 1;
                if b.get(i) == Some(&b'=') {
                    i += 1;
                    Tok::Lte
                } else {
                    Tok::Lt
                }
            }
            b'>' => {
                i += 1;
                if b.get(i) == Some(&b'=') {
                    i += 1;
                    Tok::Gte
                } else {
                    Tok::Gt
                }
            }
            b'"' => {
                let end = scan_delimited(b, i, b'"')
                    .ok_or_else(|| format!("unterminated quoted identifier at offset {start}"))?;
                let raw = &src[i..=end];
                i = end + 1;
                let s: String = serde_json::from_str(raw)
                    .map_err(|e| format!("invalid quoted identifier at offset {start}: {e}"))?;
                Tok::QIdent(s)
            }
            b'\'' => {
                let end = scan_delimited(b, i, b'\'')
                    .ok_or_else(|| format!("unterminated raw string at offset {start}"))?;
                let inner = &src[i + 1..end];
                i = end + 1;
                Tok::RawStr(inner.replace("\\'", "'"))
            }
            b'`' => {
                let end = scan_delimited(b, i, b'`')
                    .ok_or_else(|| format!("unterminated JSON literal at offset {start}"))?;
                let inner = src[i + 1..end].replace("\\`", "`");
                i = end + 1;
                let v = parse_literal(&inner)
                    .ok_or_else(|| format!("invalid JSON literal at offset {start}"))?;
                Tok::Literal(v)
            }
            _ => {
                let ch = src[start..].chars().next().unwrap_or('?');
                return Err(format!("unexpected character {ch:?} at offset {start}"));
            }
        };
        out.push((tok, start));
    }
    out.push((Tok::Eof, b.len()));
    Ok(out)
}

/// Finds the closing delimiter of a delimited token starting at `start` (backslash escapes
/// skip the next byte).
fn scan_delimited(b: &[u8], start: usize, delim: u8) -> Option<usize> {
    let mut i = start + 1;
    while i < b.len() {
        if b[i] == b'\\' {
            i += 2;
            continue;
        }
        if b[i] == delim {
            return Some(i);
        }
        i += 1;
    }
    None
}

fn parse_literal(s: &str) -> Option<Value> {
    let t = s.trim();
    if let Ok(v) = serde_json::from_str::<Value>(t) {
        return Some(v);
    }
    // Legacy: an unquoted literal is a string (go-jmespath accepts `foo` as "foo").
    let quoted = format!("\"{t}\"");
    serde_json::from_str::<Value>(&quoted).ok()
}
