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

/// The 1-based line and column of the key at `path` (a field path such as
/// `spec.rules[0].validate.patern`) in the `doc`-th document of `text` (counted as
/// [`load_documents`] counts them: empty documents are skipped). `None` when the path cannot
/// be followed in the text (through an alias or a merge key, for example).
pub fn locate(text: &str, doc: usize, path: &str) -> Option<(usize, usize)> {
    use serde_saphyr::granit_parser::{Event, Parser};
    let segs = path_segments(path)?;
    // Only the nodes matter here; anchors and comments are presentation.
    let mut events: Vec<(Ev, usize, usize)> = Vec::new();
    for item in Parser::new_from_str(text) {
        let (event, span) = item.ok()?;
        let ev = match event {
            Event::DocumentStart(..) => Ev::DocStart,
            Event::Scalar(v, style, ..) => Ev::Scalar(
                v.into_owned(),
                style == serde_saphyr::granit_parser::ScalarStyle::Plain,
            ),
            Event::Alias(..) | Event::UnresolvedAlias(..) => Ev::Scalar(String::new(), false),
            Event::SequenceStart(..) => Ev::SeqStart,
            Event::SequenceEnd => Ev::SeqEnd,
            Event::MappingStart(..) => Ev::MapStart,
            Event::MappingEnd => Ev::MapEnd,
            _ => continue,
        };
        events.push((ev, span.start.line(), span.start.col()));
    }
    let mut seen = 0;
    for i in 0..events.len() {
        if !matches!(events[i].0, Ev::DocStart) {
            continue;
        }
        let root = i + 1;
        let empty = match events.get(root) {
            Some((Ev::Scalar(v, plain), ..)) => {
                *plain && matches!(v.as_str(), "" | "~" | "null" | "Null" | "NULL")
            }
            Some((Ev::DocStart, ..)) | None => true,
            _ => false,
        };
        if empty {
            continue;
        }
        if seen == doc {
            return find(&events, root, &segs).map(|(l, c)| (l, c + 1));
        }
        seen += 1;
    }
    None
}

/// A parse event, as [`locate`] needs it.
enum Ev {
    DocStart,
    /// A scalar's value and whether it is plain.
    Scalar(String, bool),
    SeqStart,
    SeqEnd,
    MapStart,
    MapEnd,
}

enum Seg {
    Key(String),
    Index(usize),
}

fn path_segments(path: &str) -> Option<Vec<Seg>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (key, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            out.push(Seg::Key(key.to_owned()));
        }
        while let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            out.push(Seg::Index(r[..end].parse().ok()?));
            rest = &r[end + 1..];
        }
    }
    Some(out)
}

/// The index just past the node starting at `i`.
fn skip(events: &[(Ev, usize, usize)], mut i: usize) -> Option<usize> {
    match events.get(i)?.0 {
        Ev::Scalar(..) => Some(i + 1),
        Ev::SeqStart | Ev::MapStart => {
            i += 1;
            while !matches!(events.get(i)?.0, Ev::SeqEnd | Ev::MapEnd) {
                i = skip(events, i)?;
            }
            Some(i + 1)
        }
        _ => None,
    }
}

/// The position of the last key of `segs`, following them from the node at `i`.
fn find(events: &[(Ev, usize, usize)], i: usize, segs: &[Seg]) -> Option<(usize, usize)> {
    let (first, rest) = segs.split_first()?;
    match (&events.get(i)?.0, first) {
        (Ev::MapStart, Seg::Key(k)) => {
            let mut j = i + 1;
            while !matches!(events.get(j)?.0, Ev::MapEnd) {
                let value = skip(events, j)?;
                if let (Ev::Scalar(key, _), line, col) = &events[j]
                    && key == k
                {
                    return if rest.is_empty() {
                        Some((*line, *col))
                    } else {
                        find(events, value, rest)
                    };
                }
                j = skip(events, value)?;
            }
            None
        }
        (Ev::SeqStart, Seg::Index(n)) => {
            let mut j = i + 1;
            for _ in 0..*n {
                if matches!(events.get(j)?.0, Ev::SeqEnd) {
                    return None;
                }
                j = skip(events, j)?;
            }
            match (&events.get(j)?.0, rest.is_empty()) {
                (Ev::SeqEnd, _) => None,
                (_, true) => Some((events[j].1, events[j].2)),
                (_, false) => find(events, j, rest),
            }
        }
        _ => None,
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
    fn locate_finds_keys_in_the_right_document() {
        let text = "---\n---\nkind: A\n---\nkind: B\nspec:\n  rules:\n  - name: r\n    validate:\n      patern: {}\n";
        assert_eq!(
            locate(text, 1, "spec.rules[0].validate.patern"),
            Some((10, 7))
        );
        assert_eq!(locate(text, 1, "kind"), Some((5, 1)));
        assert_eq!(locate(text, 0, "kind"), Some((3, 1)));
        assert_eq!(locate(text, 0, "spec"), None);
        assert_eq!(locate(text, 1, "spec.rules[1].name"), None);
        assert_eq!(locate(text, 1, "spec.rules[0]"), Some((8, 5)));
        let json = r#"{"kind": "A", "spec": {"rules": [{"x": 1}, {"y": 2}]}}"#;
        assert_eq!(locate(json, 0, "spec.rules[1].y"), Some((1, 45)));
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
