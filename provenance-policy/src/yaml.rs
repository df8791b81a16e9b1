//! Loading YAML (and JSON) documents into `serde_json::Value`, with positions in errors.
//!
//! YAML is read with `serde-saphyr`: panic-free, with budgets against alias bombs and deep
//! nesting. Multi-document streams are split on `---`; empty documents are dropped.

use serde_json::Value;

use crate::Error;

/// Largest YAML or JSON input accepted (per file).
pub const MAX_DOCUMENT_BYTES: usize = 8 << 20;

/// Parses every document of a YAML (or JSON) stream. `file` names the source in errors.
pub fn load_documents(text: &str, file: &str) -> Result<Vec<Value>, Error> {
    if text.len() > MAX_DOCUMENT_BYTES {
        return Err(Error::Parse {
            file: file.to_owned(),
            line: 0,
            column: 0,
            reason: format!("input of {} bytes exceeds {MAX_DOCUMENT_BYTES}", text.len()),
        });
    }
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line() as usize, l.column() as usize))
            .unwrap_or((0, 0));
        Error::Parse {
            file: file.to_owned(),
            line,
            column,
            reason: first_line(&e.to_string()),
        }
    })?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_owned()
}

/// Parses a single document; more than one is an error.
pub fn load_document(text: &str, file: &str) -> Result<Value, Error> {
    let mut docs = load_documents(text, file)?;
    match docs.len() {
        1 => Ok(docs.remove(0)),
        n => Err(Error::Parse {
            file: file.to_owned(),
            line: 0,
            column: 0,
            reason: format!("expected one document, found {n}"),
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn multi_document_and_positions() {
        let docs = load_documents("a: 1\n---\n---\nb: [x, z]\n", "f.yaml").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1]["b"][1], "z");
        let err = load_documents("a: 1\nb: [unclosed\n", "bad.yaml").unwrap_err();
        match err {
            Error::Parse { file, line, .. } => {
                assert_eq!(file, "bad.yaml");
                assert!(line >= 2, "line {line}");
            }
            e => panic!("unexpected {e:?}"),
        }
    }
}
