//! The JSON document `{{ }}` variables and JMESPath expressions are evaluated against.
//!
//! Kyverno builds it per request: `request` (operation, object, oldObject, userInfo, roles,
//! clusterRoles, namespace, ...), `images` (the container images of the resource, parsed),
//! `serviceAccountName` / `serviceAccountNamespace`, rule `context` entries, and, in
//! `kyverno test`, values from a values file. Foreach loops add `element`, `elementIndex` and
//! their nested forms `element0`, `elementIndex0`, ...

use provenance_core::ImageReference;
use serde_json::{Map, Value, json};

use crate::admission::request::ResourceInput;

/// Kyverno's view of one image (`images.containers.<name>`).
pub fn image_info(image: &str) -> Option<Value> {
    // Kyverno adds the default registry the way the reference grammar's normalization does,
    // then parses without normalization (so `nginx` keeps the path `nginx`).
    let full = match image.find('/') {
        Some(i) => {
            let first = &image[..i];
            if !first.contains(['.', ':']) && first != "localhost" && first.to_lowercase() == first
            {
                format!("docker.io/{image}")
            } else {
                image.to_owned()
            }
        }
        None => format!("docker.io/{image}"),
    };
    let r = ImageReference::parse_raw(&full).ok()?;
    let (registry, path) = (r.domain().to_owned(), r.path().to_owned());
    let name = path.rsplit('/').next().unwrap_or_default().to_owned();
    let mut tag = r.tag().unwrap_or_default().to_owned();
    let digest = r.digest_str().unwrap_or_default().to_owned();
    if tag.is_empty() && digest.is_empty() {
        tag = "latest".into();
    }
    let base = if registry.is_empty() {
        path.clone()
    } else {
        format!("{registry}/{path}")
    };
    let reference = if digest.is_empty() {
        format!("{base}:{tag}")
    } else {
        format!("{base}@{digest}")
    };
    let mut info = Map::new();
    info.insert("registry".into(), json!(registry));
    info.insert("name".into(), json!(name));
    info.insert("path".into(), json!(path));
    if !tag.is_empty() {
        info.insert("tag".into(), json!(tag));
    }
    if !digest.is_empty() {
        info.insert("digest".into(), json!(digest));
    }
    info.insert("reference".into(), json!(reference));
    info.insert("referenceWithTag".into(), json!(format!("{base}:{tag}")));
    Some(Value::Object(info))
}

/// The pod spec of a Pod, a Pod controller or a CronJob, if the resource has one.
pub fn pod_spec(resource: &Value) -> Option<&Value> {
    match resource.get("kind").and_then(Value::as_str)? {
        "Pod" => resource.get("spec"),
        "CronJob" => resource.pointer("/spec/jobTemplate/spec/template/spec"),
        _ => resource.pointer("/spec/template/spec"),
    }
}

/// One image found in a resource, with where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSite {
    /// `containers`, `initContainers`, `ephemeralContainers`, `volumes`, or `custom` (found
    /// by `imageExtractors`).
    pub section: &'static str,
    /// Container or volume name.
    pub name: String,
    /// The image as written.
    pub image: String,
    /// JSON pointer of the image field in the resource.
    pub pointer: String,
}

/// Every image a resource runs or mounts: containers, init containers, ephemeral containers,
/// and image volumes (`volumes[].image.reference`, how models ship as OCI artifacts).
pub fn images_of(resource: &Value) -> Vec<ImageSite> {
    let mut out = Vec::new();
    let Some(spec) = pod_spec(resource) else {
        return out;
    };
    let prefix = match resource.get("kind").and_then(Value::as_str) {
        Some("Pod") => "/spec".to_owned(),
        Some("CronJob") => "/spec/jobTemplate/spec/template/spec".to_owned(),
        _ => "/spec/template/spec".to_owned(),
    };
    for section in ["initContainers", "containers", "ephemeralContainers"] {
        if let Some(Value::Array(cs)) = spec.get(section) {
            for (i, c) in cs.iter().enumerate() {
                if let Some(img) = c.get("image").and_then(Value::as_str) {
                    out.push(ImageSite {
                        section: match section {
                            "initContainers" => "initContainers",
                            "containers" => "containers",
                            _ => "ephemeralContainers",
                        },
                        name: c
                            .get("name")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned(),
                        image: img.to_owned(),
                        pointer: format!("{prefix}/{section}/{i}/image"),
                    });
                }
            }
        }
    }
    if let Some(Value::Array(vols)) = spec.get("volumes") {
        for (i, v) in vols.iter().enumerate() {
            if let Some(img) = v.pointer("/image/reference").and_then(Value::as_str) {
                out.push(ImageSite {
                    section: "volumes",
                    name: v
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    image: img.to_owned(),
                    pointer: format!("{prefix}/volumes/{i}/image/reference"),
                });
            }
        }
    }
    out
}

/// Images found by Kyverno `imageExtractors` for one kind: each extractor has a `path` (a
/// `/`-separated path whose `*` steps through every element of a list or value of a map),
/// optionally `value` (the field of the object at `path` that holds the image) and `name`.
/// `key` only names entries in Kyverno's `images` variable and is accepted; `jmesPath`
/// (rewriting the found string) is refused, since the rewritten string is not what the
/// cluster pulls.
pub fn extract_images(resource: &Value, extractors: &Value) -> Result<Vec<ImageSite>, String> {
    let list = extractors
        .as_array()
        .ok_or_else(|| "must be a list of extractors".to_owned())?;
    let mut out = Vec::new();
    for (i, x) in list.iter().enumerate() {
        let o = x
            .as_object()
            .ok_or_else(|| format!("[{i}] must be an object"))?;
        if let Some(k) = o
            .keys()
            .find(|k| !["path", "value", "name", "key", "jmesPath"].contains(&k.as_str()))
        {
            return Err(format!("[{i}].{k}: unknown field"));
        }
        if o.get("jmesPath")
            .and_then(Value::as_str)
            .is_some_and(|j| !j.is_empty())
        {
            return Err(format!("[{i}].jmesPath: unsupported"));
        }
        let path = o
            .get("path")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("[{i}].path is required"))?;
        let value = o
            .get("value")
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty());
        let name = o
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("custom")
            .to_owned();
        let steps: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let mut targets: Vec<(String, &Value)> = vec![(String::new(), resource)];
        for step in steps {
            let mut next = Vec::new();
            for (at, v) in targets {
                if step == "*" {
                    match v {
                        Value::Array(a) => {
                            for (j, e) in a.iter().enumerate() {
                                next.push((format!("{at}/{j}"), e));
                            }
                        }
                        Value::Object(m) => {
                            for (k, e) in m {
                                let k = k.replace('~', "~0").replace('/', "~1");
                                next.push((format!("{at}/{k}"), e));
                            }
                        }
                        _ => {}
                    }
                } else if let Some(e) = v.get(step) {
                    next.push((format!("{at}/{step}"), e));
                }
            }
            targets = next;
        }
        for (at, v) in targets {
            let (pointer, img) = match value {
                Some(field) => (format!("{at}/{field}"), v.get(field)),
                None => (at, Some(v)),
            };
            match img {
                Some(Value::String(s)) => out.push(ImageSite {
                    section: "custom",
                    name: name.clone(),
                    image: s.clone(),
                    pointer,
                }),
                None | Some(Value::Null) => {}
                Some(_) => return Err(format!("[{i}]: the value at {pointer} is not a string")),
            }
        }
    }
    Ok(out)
}

/// The `images` map Kyverno puts in the context.
pub fn images_map(resource: &Value) -> Value {
    let mut out = Map::new();
    for site in images_of(resource) {
        if site.section == "volumes" {
            continue;
        }
        if let Some(info) = image_info(&site.image) {
            let section = out
                .entry(site.section)
                .or_insert_with(|| Value::Object(Map::new()));
            if let Some(m) = section.as_object_mut() {
                m.insert(site.name, info);
            }
        }
    }
    Value::Object(out)
}

/// Builds the base context document for a resource.
pub fn base_context(input: &ResourceInput) -> Value {
    let mut ctx = Map::new();
    ctx.insert("request".into(), input.request_json());
    ctx.insert("images".into(), images_map(&input.object));
    let user = &input.request_info.user_info.username;
    if let Some(rest) = user.strip_prefix("system:serviceaccount:")
        && let Some((ns, name)) = rest.split_once(':')
    {
        ctx.insert("serviceAccountName".into(), json!(name));
        ctx.insert("serviceAccountNamespace".into(), json!(ns));
    } else {
        ctx.insert("serviceAccountName".into(), json!(""));
        ctx.insert("serviceAccountNamespace".into(), json!(""));
    }
    Value::Object(ctx)
}

/// Sets a dotted key (`request.object.metadata.name`, `foo`) in a context document, creating
/// intermediate objects.
pub fn set_dotted(ctx: &mut Value, key: &str, value: Value) {
    let mut cur = ctx;
    let parts = split_dotted(key);
    for (i, part) in parts.iter().enumerate() {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let Some(obj) = cur.as_object_mut() else {
            return;
        };
        if i + 1 == parts.len() {
            obj.insert(part.clone(), value);
            return;
        }
        cur = obj
            .entry(part.clone())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

/// Whether a dotted key is set in the document.
pub fn has_dotted(ctx: &Value, key: &str) -> bool {
    let mut cur = ctx;
    for part in split_dotted(key) {
        match cur.get(&part) {
            Some(v) => cur = v,
            None => return false,
        }
    }
    true
}

/// Splits a dotted key into segments; a segment may be double-quoted to contain dots
/// (`metadata.annotations."example.com/owner"`).
pub fn split_dotted(key: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in key.chars() {
        match c {
            '"' => quoted = !quoted,
            '.' if !quoted => parts.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    parts.push(cur);
    parts
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn kyverno_image_infos() {
        let i = image_info("nginx").unwrap();
        assert_eq!(i["registry"], "docker.io");
        assert_eq!(i["path"], "nginx");
        assert_eq!(i["reference"], "docker.io/nginx:latest");
        let i = image_info("ghcr.io/org/model@sha256:dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c").unwrap();
        assert_eq!(i["name"], "model");
        assert!(i.get("tag").is_none());
        assert!(i["reference"].as_str().unwrap().contains("@sha256:"));
    }

    #[test]
    fn dotted_keys() {
        let mut v = json!({});
        set_dotted(&mut v, "request.object.metadata.name", json!("x"));
        set_dotted(&mut v, r#"a."b.c".d"#, json!(1));
        assert_eq!(v["a"]["b.c"]["d"], 1);
        assert_eq!(v["request"]["object"]["metadata"]["name"], "x");
        assert!(has_dotted(&v, "request.object"));
    }
}
