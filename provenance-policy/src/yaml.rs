//! Loading YAML (and JSON) documents into `serde_json::Value`, with positions in errors.
//!
//! YAML is read with `serde-saphyr`: panic-free, with budgets against alias bombs and deep
//! nesting. Multi-document streams are split on `---`; empty documents are dropped.
//!
//! Scalars are typed as Kubernetes types them: `kubectl` and the API machinery read YAML with
//! `sigs.k8s.io/yaml`, which resolves plain scalars by YAML 1.1 rules. So a zero-prefixed
//! integer is octal (`runAsUser: 01000` is 512, `mode: 0644` is 420), `0o17`, `0x1f` and
//! `0b101` are integers, `_` may separate digits (`1_000`), and `yes`/`no`/`on`/`off` are
//! booleans. A zero-prefixed spelling that is not octal (`08`, `09`) is the float 8 or 9, as
//! in YAML 1.1. Sexagesimal spellings (`1:30`) stay strings, as `sigs.k8s.io/yaml` leaves them.

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
    let docs: Vec<Value> =
        serde_saphyr::from_multiple_with_options(text, options()).map_err(|e| {
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

/// Parser options: the defaults (budgets included) plus YAML 1.1 integer spellings.
fn options() -> serde_saphyr::Options {
    let mut o = serde_saphyr::Options::default();
    o.legacy_octal_numbers = true;
    o
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
    fn yaml_1_1_integers_as_kubernetes_reads_them() {
        let v = load_document(
            "octal: 01000\nmode: 0644\nzero: 0\nneg: -010\no: 0o17\nhex: 0x1f\nbin: 0b101\n\
             under: 1_000\ndec: 1000\nnotoctal: 08\nquoted: '01000'\nflag: on\nsexa: 1:30\n",
            "f.yaml",
        )
        .unwrap();
        assert_eq!(v["octal"], 512);
        assert_eq!(v["mode"], 420);
        assert_eq!(v["zero"], 0);
        assert_eq!(v["neg"], -8);
        assert_eq!(v["o"], 15);
        assert_eq!(v["hex"], 31);
        assert_eq!(v["bin"], 5);
        assert_eq!(v["under"], 1000);
        assert_eq!(v["dec"], 1000);
        assert_eq!(v["notoctal"].as_f64(), Some(8.0));
        assert_eq!(v["quoted"], "01000");
        assert_eq!(v["flag"], true);
        assert_eq!(v["sexa"], "1:30");
    }

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
