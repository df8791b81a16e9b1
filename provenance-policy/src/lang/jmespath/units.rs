//! Value parsers shared by the JMESPath functions, conditions and patterns, with Go's and
//! Kubernetes' exact grammars: `time.ParseDuration`, `resource.ParseQuantity`,
//! `strconv.ParseFloat` / `ParseInt`, blang `semver.Parse`, and `fmt.Sprint` formatting.

use serde_json::Value;
use std::cmp::Ordering;

/// Nanoseconds in a second.
pub(crate) const SECOND: i64 = 1_000_000_000;

/// Go's `time.ParseDuration`: `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+` or `0`; nanoseconds.
pub(crate) fn parse_duration(s: &str) -> Option<i64> {
    let (neg, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: u128 = 0;
    let mut r = rest;
    while !r.is_empty() {
        let b = r.as_bytes();
        let mut i = 0;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let int_part = &r[..i];
        let mut frac_part = "";
        if i < b.len() && b[i] == b'.' {
            let st = i + 1;
            i += 1;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            frac_part = &r[st..i];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return None;
        }
        let ustart = i;
        while i < b.len() && !b[i].is_ascii_digit() && b[i] != b'.' {
            i += 1;
        }
        let unit = &r[ustart..i];
        let mult: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        let iv: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse::<u128>().ok()?
        };
        let mut v = iv.checked_mul(mult)?;
        if !frac_part.is_empty() {
            let mut scale: u128 = 1;
            let mut fv: u128 = 0;
            for d in frac_part.bytes().take(18) {
                fv = fv * 10 + u128::from(d - b'0');
                scale *= 10;
            }
            v = v.checked_add(fv * mult / scale)?;
        }
        total = total.checked_add(v)?;
        if total > i64::MAX as u128 + u128::from(neg) {
            return None;
        }
        r = &r[i..];
    }
    let t = total as i128;
    Some(if neg { -t } else { t } as i64)
}

/// Formats nanoseconds as Go's `time.Duration.String()` does (`1h0m0s`, `1.5s`, `300ms`).
pub(crate) fn format_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let neg = ns < 0;
    let u = ns.unsigned_abs();
    let mut out = String::new();
    if u < SECOND as u64 {
        let (unit, div) = if u < 1_000 {
            ("ns", 1u64)
        } else if u < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        out.push_str(&frac_str(u, div));
        out.push_str(unit);
    } else {
        let h = u / 3_600_000_000_000;
        let rem = u % 3_600_000_000_000;
        let m = rem / 60_000_000_000;
        let s_ns = rem % 60_000_000_000;
        if h > 0 {
            out.push_str(&format!("{h}h{m}m"));
        } else if m > 0 {
            out.push_str(&format!("{m}m"));
        }
        out.push_str(&frac_str(s_ns, SECOND as u64));
        out.push('s');
    }
    if neg { format!("-{out}") } else { out }
}

fn frac_str(v: u64, div: u64) -> String {
    let ip = v / div;
    let fp = v % div;
    if fp == 0 {
        return ip.to_string();
    }
    let width = div.to_string().len() - 1;
    let f = format!("{fp:0width$}");
    format!("{ip}.{}", f.trim_end_matches('0'))
}

/// A Kubernetes quantity as an exact decimal: `mant * 10^exp10 * 1024^bin`, normalised to
/// `mant * 10^exp` where possible.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Quantity {
    /// Signed mantissa.
    pub mant: i128,
    /// Power of ten.
    pub exp: i32,
    /// Whether the suffix was binary (`Ki`, `Mi`, ...); used for formatting results.
    pub binary: bool,
}

impl Quantity {
    /// Approximate value.
    pub(crate) fn to_f64(self) -> f64 {
        self.mant as f64 * 10f64.powi(self.exp)
    }

    /// Exact comparison (falls back to floating point when the scales cannot be aligned).
    pub(crate) fn cmp(&self, o: &Quantity) -> Ordering {
        let (mut a, mut b) = (self.mant, o.mant);
        let d = self.exp - o.exp;
        let ok = if d > 0 {
            10i128
                .checked_pow(d as u32)
                .and_then(|p| a.checked_mul(p))
                .map(|x| a = x)
        } else if d < 0 {
            10i128
                .checked_pow((-d) as u32)
                .and_then(|p| b.checked_mul(p))
                .map(|x| b = x)
        } else {
            Some(())
        };
        match ok {
            Some(()) => a.cmp(&b),
            None => self
                .to_f64()
                .partial_cmp(&o.to_f64())
                .unwrap_or(Ordering::Equal),
        }
    }
}

/// Kubernetes `resource.ParseQuantity`.
pub(crate) fn parse_quantity(s: &str) -> Option<Quantity> {
    let b = s.as_bytes();
    if b.is_empty() {
        return None;
    }
    let mut i = 0;
    let neg = match b[0] {
        b'-' => {
            i = 1;
            true
        }
        b'+' => {
            i = 1;
            false
        }
        _ => false,
    };
    let ds = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let int_part = &s[ds..i];
    let mut frac_part = "";
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let fs = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        frac_part = &s[fs..i];
    }
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    let suffix = &s[i..];
    let (exp10, bin): (i32, u32) = match suffix {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 1),
        "Mi" => (0, 2),
        "Gi" => (0, 3),
        "Ti" => (0, 4),
        "Pi" => (0, 5),
        "Ei" => (0, 6),
        _ => {
            let rest = suffix.strip_prefix(['e', 'E'])?;
            let digits = rest.strip_prefix(['+', '-']).unwrap_or(rest);
            if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            (rest.parse::<i32>().ok()?, 0)
        }
    };
    // Mantissa from the significant digits (at most 30 of them; the rest only adds noise).
    let digits: String = format!("{int_part}{frac_part}");
    let trimmed = digits.trim_start_matches('0');
    let keep = trimmed.len().min(30);
    let dropped = (trimmed.len() - keep) as i32;
    let mut mant: i128 = if keep == 0 {
        0
    } else {
        trimmed[..keep].parse::<i128>().ok()?
    };
    // Exponents far outside anything a quantity means are rejected (keeps arithmetic in range).
    let exp64 = i64::from(exp10) - frac_part.len() as i64 + i64::from(dropped);
    if exp64.abs() > 100_000 {
        return None;
    }
    let mut exp = exp64 as i32;
    if bin > 0 {
        let f = 1024i128.pow(bin);
        match mant.checked_mul(f) {
            Some(m) => mant = m,
            None => {
                // Too large to be exact: scale down by powers of ten.
                let mut m = mant;
                while m.checked_mul(f).is_none() {
                    m /= 10;
                    exp += 1;
                }
                mant = m * f;
            }
        }
    }
    if neg {
        mant = -mant;
    }
    Some(Quantity {
        mant,
        exp,
        binary: bin > 0,
    })
}

/// Go's `strconv.ParseFloat(s, 64)` for the forms Kyverno meets (decimal, exponent, `Inf`).
pub(crate) fn parse_float(s: &str) -> Option<f64> {
    if s.is_empty() {
        return None;
    }
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let lower = body.to_ascii_lowercase();
    if lower == "inf" || lower == "infinity" || lower == "nan" {
        return s.parse::<f64>().ok();
    }
    if !body
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
        || !body
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_digit() || b == b'.')
    {
        return None;
    }
    s.parse::<f64>().ok()
}

/// Go's `strconv.ParseInt(s, 10, 64)`.
pub(crate) fn parse_int(s: &str) -> Option<i64> {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    if body.is_empty() || !body.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<i64>().ok()
}

/// A semantic version (blang/semver).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Semver {
    major: u64,
    minor: u64,
    patch: u64,
    pre: Vec<String>,
}

/// blang `semver.Parse` (strict `MAJOR.MINOR.PATCH[-pre][+build]`, no leading zeros).
pub(crate) fn parse_semver(s: &str) -> Option<Semver> {
    let (core, _build) = match s.split_once('+') {
        Some((c, b)) => {
            if b.is_empty() || !b.split('.').all(valid_ident) {
                return None;
            }
            (c, Some(b))
        }
        None => (s, None),
    };
    let (nums, pre) = match core.split_once('-') {
        Some((n, p)) => (n, Some(p)),
        None => (core, None),
    };
    let parts: Vec<&str> = nums.split('.').collect();
    if parts.len() != 3 {
        return None;
    }
    let num = |p: &str| -> Option<u64> {
        if p.is_empty()
            || !p.bytes().all(|b| b.is_ascii_digit())
            || (p.len() > 1 && p.starts_with('0'))
        {
            return None;
        }
        p.parse().ok()
    };
    let mut prev = Vec::new();
    if let Some(p) = pre {
        for id in p.split('.') {
            if !valid_ident(id)
                || (id.bytes().all(|b| b.is_ascii_digit()) && id.len() > 1 && id.starts_with('0'))
            {
                return None;
            }
            prev.push(id.to_string());
        }
    }
    Some(Semver {
        major: num(parts[0])?,
        minor: num(parts[1])?,
        patch: num(parts[2])?,
        pre: prev,
    })
}

fn valid_ident(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

impl Semver {
    /// `0.0.0` (what blang's `Parse` leaves on error).
    pub(crate) fn zero() -> Semver {
        Semver {
            major: 0,
            minor: 0,
            patch: 0,
            pre: Vec::new(),
        }
    }

    /// Precedence comparison.
    pub(crate) fn cmp(&self, o: &Semver) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(o.major, o.minor, o.patch))
            .then_with(|| match (self.pre.is_empty(), o.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => {
                    for (a, b) in self.pre.iter().zip(&o.pre) {
                        let c = match (a.parse::<u64>(), b.parse::<u64>()) {
                            (Ok(x), Ok(y)) => x.cmp(&y),
                            (Ok(_), Err(_)) => Ordering::Less,
                            (Err(_), Ok(_)) => Ordering::Greater,
                            (Err(_), Err(_)) => a.cmp(b),
                        };
                        if c != Ordering::Equal {
                            return c;
                        }
                    }
                    self.pre.len().cmp(&o.pre.len())
                }
            })
    }
}

/// A JSON number as Go sees it after Kyverno's decoding: integers are `int64`, the rest
/// `float64`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum GoNum {
    /// `int64`.
    Int(i64),
    /// `float64`.
    Float(f64),
}

/// Classifies a JSON number.
pub(crate) fn go_num(n: &serde_json::Number) -> GoNum {
    match n.as_i64() {
        Some(i) => GoNum::Int(i),
        None => GoNum::Float(n.as_f64().unwrap_or(0.0)),
    }
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 64)` (what `fmt.Sprint` prints for a float64).
pub(crate) fn format_g(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let e = format!("{f:e}");
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let nd = mant.chars().filter(|c| c.is_ascii_digit()).count() as i32;
    let dp = exp + 1;
    let mut eprec = 6;
    if eprec > nd && nd >= dp {
        eprec = nd;
    }
    if exp < -4 || exp >= eprec {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mant}e{sign}{:02}", exp.abs())
    } else {
        format!("{f}")
    }
}

/// Go's `strconv.FormatFloat(f, 'E', -1, 64)`.
pub(crate) fn format_upper_e(f: f64) -> String {
    let e = format!("{f:E}");
    let (mant, exp) = e.split_once('E').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mant}E{sign}{:02}", exp.abs())
}

/// Go's `fmt.Sprint` of a decoded JSON value.
pub(crate) fn go_sprint(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match go_num(n) {
            GoNum::Int(i) => i.to_string(),
            GoNum::Float(f) => format_g(f),
        },
        Value::String(s) => s.clone(),
        Value::Array(a) => {
            let parts: Vec<String> = a.iter().map(go_sprint).collect();
            format!("[{}]", parts.join(" "))
        }
        Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| format!("{k}:{}", o.get(*k).map(go_sprint).unwrap_or_default()))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

/// Go's `fmt.Sprintf("%f", f)`.
pub(crate) fn format_f6(f: f64) -> String {
    format!("{f:.6}")
}
