//! Bounded JSON parsing: size and depth limits before serde runs, field paths in errors.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{Error, Format, clip};

/// Limits applied to every parse. [`Limits::default`] suits admission-time use.
///
/// ```
/// use provenance_attest::Limits;
/// let tight = Limits::default().with_max_bytes(1 << 20).with_max_subjects(16);
/// assert_eq!(tight.max_bytes, 1 << 20);
/// assert!(tight.max_depth >= 32);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Largest accepted document, in bytes (default 64 MiB).
    pub max_bytes: usize,
    /// Deepest accepted nesting of JSON arrays and objects (default 96; serde_json stops at 128).
    pub max_depth: usize,
    /// Most subjects accepted in one in-toto Statement (default 4096).
    pub max_subjects: usize,
    /// Most entries accepted in one list of a predicate: components, packages, relationships,
    /// materials, files (default 1,000,000).
    pub max_items: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 64 << 20,
            max_depth: 96,
            max_subjects: 4096,
            max_items: 1_000_000,
        }
    }
}

impl Limits {
    /// Sets [`Limits::max_bytes`].
    pub const fn with_max_bytes(mut self, n: usize) -> Self {
        self.max_bytes = n;
        self
    }

    /// Sets [`Limits::max_depth`].
    pub const fn with_max_depth(mut self, n: usize) -> Self {
        self.max_depth = n;
        self
    }

    /// Sets [`Limits::max_subjects`].
    pub const fn with_max_subjects(mut self, n: usize) -> Self {
        self.max_subjects = n;
        self
    }

    /// Sets [`Limits::max_items`].
    pub const fn with_max_items(mut self, n: usize) -> Self {
        self.max_items = n;
        self
    }

    pub(crate) fn check_count(
        &self,
        format: Format,
        path: &str,
        count: usize,
    ) -> Result<(), Error> {
        if count > self.max_items {
            return Err(Error::TooMany {
                format,
                path: path.to_owned(),
                count,
                limit: self.max_items,
            });
        }
        Ok(())
    }
}

/// Checks size and nesting depth of a JSON text without parsing it.
///
/// The scan is linear, allocation-free and understands strings and escapes, so brackets inside
/// strings do not count.
pub(crate) fn check_bounds(format: Format, bytes: &[u8], limits: &Limits) -> Result<(), Error> {
    if bytes.len() > limits.max_bytes {
        return Err(Error::TooLarge {
            format,
            size: bytes.len(),
            limit: limits.max_bytes,
        });
    }
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limits.max_depth {
                    return Err(Error::TooDeep {
                        format,
                        limit: limits.max_depth,
                    });
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Depth of a JSON value (a scalar is 0), computed without recursion.
pub(crate) fn value_depth(value: &Value) -> usize {
    let mut max = 0;
    let mut stack: Vec<(&Value, usize)> = vec![(value, 0)];
    while let Some((v, d)) = stack.pop() {
        match v {
            Value::Array(a) => {
                max = max.max(d + 1);
                stack.extend(a.iter().map(|x| (x, d + 1)));
            }
            Value::Object(o) => {
                max = max.max(d + 1);
                stack.extend(o.values().map(|x| (x, d + 1)));
            }
            _ => {}
        }
    }
    max
}

pub(crate) fn check_value_depth(
    format: Format,
    value: &Value,
    limits: &Limits,
) -> Result<(), Error> {
    if value_depth(value) > limits.max_depth {
        return Err(Error::TooDeep {
            format,
            limit: limits.max_depth,
        });
    }
    Ok(())
}

fn map_err(format: Format, err: serde_path_to_error::Error<serde_json::Error>) -> Error {
    let path = err.path().to_string();
    let inner = err.into_inner();
    match inner.classify() {
        serde_json::error::Category::Data => Error::Schema {
            format,
            path,
            message: clip(&strip_position(&inner.to_string()), 300),
        },
        _ => Error::Syntax {
            format,
            line: inner.line(),
            column: inner.column(),
            message: clip(&strip_position(&inner.to_string()), 300),
        },
    }
}

/// serde_json appends " at line L column C" to its messages; the variants carry them apart.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}

/// Parses bounded JSON text into `T`, reporting the field path on schema errors.
pub(crate) fn from_slice<T: DeserializeOwned>(
    format: Format,
    bytes: &[u8],
    limits: &Limits,
) -> Result<T, Error> {
    check_bounds(format, bytes, limits)?;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| map_err(format, e))?;
    de.end().map_err(|e| Error::Syntax {
        format,
        line: e.line(),
        column: e.column(),
        message: clip(&strip_position(&e.to_string()), 300),
    })?;
    Ok(value)
}

/// Converts a [`Value`] into `T`, reporting the field path on errors.
pub(crate) fn from_value<T: DeserializeOwned>(format: Format, value: &Value) -> Result<T, Error> {
    serde_path_to_error::deserialize(value).map_err(|e| map_err(format, e))
}

/// Serde helper: accepts `null` as the default value.
pub(crate) fn null_default<'de, D, T>(de: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + serde::Deserialize<'de>,
{
    use serde::Deserialize;
    Ok(Option::<T>::deserialize(de)?.unwrap_or_default())
}
