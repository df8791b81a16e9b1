//! CycloneDX XML (1.2-1.6): a bounded XML reader that turns the document into the JSON shape
//! of the same BOM, then the JSON serde types of [`crate::cyclonedx`] take over. One set of
//! types, one set of checks, for both encodings.

use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};
use serde_json::{Map, Value};

use crate::error::{Error, Format, clip};
use crate::json::Limits;

const F: Format = Format::CycloneDx;

/// An XML element: local name, attributes, children, text.
#[derive(Default)]
struct Node {
    name: String,
    attrs: Vec<(String, String)>,
    children: Vec<Node>,
    text: String,
}

/// A syntax error at a byte offset, reported as 1-based line and column (in bytes).
fn syntax_in(xml: &str, message: String, position: u64) -> Error {
    let pos = usize::try_from(position)
        .unwrap_or(usize::MAX)
        .min(xml.len());
    let before = &xml.as_bytes()[..pos];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let column = pos
        - before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1)
        + 1;
    Error::Syntax {
        format: F,
        line,
        column,
        message: clip(&message, 300),
    }
}

fn local(name: &str) -> String {
    name.rsplit(':').next().unwrap_or(name).to_owned()
}

fn start_node(xml: &str, e: &BytesStart<'_>, pos: u64) -> Result<Node, Error> {
    let mut node = Node {
        name: local(e.name().as_ref()),
        ..Default::default()
    };
    for a in e.attributes() {
        let a = a.map_err(|err| syntax_in(xml, format!("bad attribute: {err}"), pos))?;
        let key: &str = a.key.as_ref();
        let key = key.to_owned();
        let value = a
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|err| syntax_in(xml, format!("bad attribute value: {err}"), pos))?
            .into_owned();
        node.attrs.push((key, value));
    }
    Ok(node)
}

fn parse_tree(xml: &str, limits: &Limits) -> Result<Node, Error> {
    let mut reader = Reader::from_str(xml);
    let mut stack: Vec<Node> = Vec::new();
    let mut nodes = 0usize;
    let mut root: Option<Node> = None;
    loop {
        let pos = reader.buffer_position();
        let event = reader
            .read_event()
            .map_err(|e| syntax_in(xml, e.to_string(), pos))?;
        match event {
            Event::Start(e) => {
                if root.is_some() {
                    return Err(syntax_in(xml, "content after the root element".into(), pos));
                }
                if stack.len() >= limits.max_depth {
                    return Err(Error::TooDeep {
                        format: F,
                        limit: limits.max_depth,
                    });
                }
                nodes += 1;
                limits.check_count(F, "<elements>", nodes)?;
                stack.push(start_node(xml, &e, pos)?);
            }
            Event::Empty(e) => {
                if root.is_some() {
                    return Err(syntax_in(xml, "content after the root element".into(), pos));
                }
                nodes += 1;
                limits.check_count(F, "<elements>", nodes)?;
                let node = start_node(xml, &e, pos)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => root = Some(node),
                }
            }
            Event::End(e) => {
                let node = stack
                    .pop()
                    .ok_or_else(|| syntax_in(xml, "unexpected end tag".into(), pos))?;
                if node.name != local(e.name().as_ref()) {
                    return Err(syntax_in(
                        xml,
                        format!(
                            "end tag `{}` does not match `{}`",
                            local(e.name().as_ref()),
                            node.name
                        ),
                        pos,
                    ));
                }
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => root = Some(node),
                }
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.xml10_content());
                }
            }
            Event::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.into_inner());
                }
            }
            Event::GeneralRef(r) => {
                let resolved = if r.is_char_ref() {
                    r.resolve_char_ref()
                        .map_err(|e| syntax_in(xml, e.to_string(), pos))?
                        .map(String::from)
                } else {
                    match &*r.xml10_content() {
                        "lt" => Some("<".into()),
                        "gt" => Some(">".into()),
                        "amp" => Some("&".into()),
                        "apos" => Some("'".into()),
                        "quot" => Some("\"".into()),
                        other => {
                            return Err(syntax_in(
                                xml,
                                format!("unknown entity `&{}`;", clip(other, 32)),
                                pos,
                            ));
                        }
                    }
                };
                if let (Some(top), Some(s)) = (stack.last_mut(), resolved) {
                    top.text.push_str(&s);
                }
            }
            Event::DocType(_) => {
                // No DTDs: entity expansion is how XML bombs work.
                return Err(syntax_in(xml, "DOCTYPE is not allowed".into(), pos));
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(syntax_in(
            xml,
            "unexpected end of document".into(),
            xml.len() as u64,
        ));
    }
    root.ok_or_else(|| syntax_in(xml, "no root element".into(), 0))
}

/// Wrapper elements whose children form a JSON array, with the child element name.
fn list_item(wrapper: &str) -> Option<&'static str> {
    Some(match wrapper {
        "components" => "component",
        "services" => "service",
        "hashes" => "hash",
        "externalReferences" => "reference",
        "properties" => "property",
        "dependencies" => "dependency",
        "formulation" => "formula",
        "datasets" => "dataset",
        "inputs" => "input",
        "outputs" => "output",
        "performanceMetrics" => "performanceMetric",
        "users" => "user",
        "useCases" => "useCase",
        "technicalLimitations" => "technicalLimitation",
        "performanceTradeoffs" => "performanceTradeoff",
        "ethicalConsiderations" => "ethicalConsideration",
        "fairnessAssessments" => "fairnessAssessment",
        "workflows" => "workflow",
        "authors" => "author",
        _ => return None,
    })
}

fn json_key(attr: &str) -> String {
    if attr == "bom-ref" || attr == "mime-type" {
        return attr.to_owned();
    }
    let mut out = String::with_capacity(attr.len());
    let mut upper = false;
    for c in attr.chars() {
        if c == '-' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn text_of(node: &Node) -> Value {
    Value::String(node.text.trim().to_owned())
}

fn licenses(node: &Node) -> Value {
    Value::Array(
        node.children
            .iter()
            .map(|c| match c.name.as_str() {
                "expression" => serde_json::json!({ "expression": c.text.trim() }),
                _ => serde_json::json!({ "license": element(c, "licenses") }),
            })
            .collect(),
    )
}

fn dependency(node: &Node) -> Value {
    let reference = node
        .attrs
        .iter()
        .find(|(k, _)| k == "ref")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let depends_on: Vec<Value> = node
        .children
        .iter()
        .filter(|c| c.name == "dependency")
        .filter_map(|c| c.attrs.iter().find(|(k, _)| k == "ref"))
        .map(|(_, v)| Value::String(v.clone()))
        .collect();
    serde_json::json!({ "ref": reference, "dependsOn": depends_on })
}

/// Converts an element to the JSON CycloneDX uses for it. `parent` is the parent's name.
fn element(node: &Node, parent: &str) -> Value {
    match node.name.as_str() {
        "hash" => {
            let alg = node
                .attrs
                .iter()
                .find(|(k, _)| k == "alg")
                .map(|(_, v)| v.as_str());
            return serde_json::json!({ "alg": alg.unwrap_or_default(), "content": node.text.trim() });
        }
        "property" => {
            let name = node
                .attrs
                .iter()
                .find(|(k, _)| k == "name")
                .map(|(_, v)| v.as_str());
            return serde_json::json!({ "name": name.unwrap_or_default(), "value": node.text.trim() });
        }
        "licenses" => return licenses(node),
        "dependency" if parent == "dependencies" => return dependency(node),
        "dataset" if parent == "datasets" => {
            if let Some(r) = node.children.iter().find(|c| c.name == "ref") {
                return serde_json::json!({ "ref": r.text.trim() });
            }
        }
        _ => {}
    }
    if let Some(item) = list_item(&node.name)
        && node.children.iter().all(|c| c.name == item)
        && node.attrs.is_empty()
    {
        {
            return Value::Array(
                node.children
                    .iter()
                    .map(|c| element(c, &node.name))
                    .collect(),
            );
        }
    }
    if node.children.is_empty() && node.attrs.is_empty() {
        return text_of(node);
    }
    let mut obj = Map::new();
    for (k, v) in &node.attrs {
        if k == "xmlns" || k.starts_with("xmlns:") {
            continue;
        }
        obj.insert(json_key(k), Value::String(v.clone()));
    }
    if node.children.is_empty() && !node.text.trim().is_empty() {
        obj.insert("content".into(), text_of(node));
    }
    let always_array = |child: &str| {
        matches!(
            (node.name.as_str(), child),
            (
                "supplier" | "manufacturer" | "manufacture" | "organization" | "provider",
                "url"
            ) | ("component", "data")
                | (_, "sensitiveData")
        )
    };
    // Keys that hold an array because the element repeats (or must always be a list).
    let mut arrays: std::collections::HashSet<String> = std::collections::HashSet::new();
    for c in &node.children {
        let v = element(c, &node.name);
        let key = json_key(&c.name);
        if arrays.contains(&key) {
            if let Some(Value::Array(a)) = obj.get_mut(&key) {
                a.push(v);
            }
        } else if always_array(&c.name) {
            obj.insert(key.clone(), Value::Array(vec![v]));
            arrays.insert(key);
        } else if let Some(existing) = obj.get_mut(&key) {
            let prev = existing.take();
            *existing = Value::Array(vec![prev, v]);
            arrays.insert(key);
        } else {
            obj.insert(key, v);
        }
    }
    Value::Object(obj)
}

/// Parses CycloneDX XML into the JSON value of the same BOM.
pub(crate) fn xml_to_value(xml: &str, limits: &Limits) -> Result<Value, Error> {
    if xml.len() > limits.max_bytes {
        return Err(Error::TooLarge {
            format: F,
            size: xml.len(),
            limit: limits.max_bytes,
        });
    }
    let root = parse_tree(xml, limits)?;
    if root.name != "bom" {
        return Err(Error::Schema {
            format: F,
            path: ".".into(),
            message: format!("root element is `{}`, expected `bom`", clip(&root.name, 64)),
        });
    }
    let ns = root
        .attrs
        .iter()
        .find(|(k, _)| k == "xmlns")
        .map(|(_, v)| v.as_str())
        .unwrap_or_default();
    let spec_version = ns
        .strip_prefix("http://cyclonedx.org/schema/bom/")
        .ok_or_else(|| Error::Schema {
            format: F,
            path: "bom@xmlns".into(),
            message: format!("not a CycloneDX namespace: `{}`", clip(ns, 128)),
        })?;
    let mut value = element(&root, "");
    let obj = match &mut value {
        Value::Object(o) => o,
        _ => {
            return Err(Error::Schema {
                format: F,
                path: ".".into(),
                message: "empty bom element".into(),
            });
        }
    };
    obj.insert("bomFormat".into(), Value::String("CycloneDX".into()));
    obj.insert("specVersion".into(), Value::String(spec_version.to_owned()));
    if let Some(Value::String(v)) = obj.get("version") {
        let n = v.trim().parse::<u64>().map_err(|_| Error::Schema {
            format: F,
            path: "bom@version".into(),
            message: format!("`{}` is not an integer", clip(v, 32)),
        })?;
        obj.insert("version".into(), Value::from(n));
    }
    Ok(value)
}
