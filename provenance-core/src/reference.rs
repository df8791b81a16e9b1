//! Container image references, following the distribution reference grammar.
//!
//! The grammar is the one Docker, containerd, Kubernetes and Kyverno use:
//!
//! ```text
//! reference       := name [ ":" tag ] [ "@" digest ]
//! name            := [domain '/'] remote-name
//! domain          := host [':' port-number]
//! host            := domain-name | '[' ipv6-hex-and-colons ']'
//! domain-name     := domain-component ['.' domain-component]*
//! domain-component:= /([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])/
//! remote-name     := path-component ['/' path-component]*
//! path-component  := alpha-numeric [separator alpha-numeric]*
//! alpha-numeric   := /[a-z0-9]+/
//! separator       := /[_.]|__|[-]+/
//! tag             := /[\w][\w.-]{0,127}/
//! digest          := algorithm ":" hex   (sha256 with 64 lowercase hex characters)
//! ```
//!
//! Two entry points matter:
//!
//! - [`ImageReference::parse`] normalizes as Docker and Kubernetes do: `nginx` becomes
//!   `docker.io/library/nginx`, `index.docker.io` becomes `docker.io`, and the first path
//!   component is a registry only if it contains `.` or `:`, is `localhost`, or has an uppercase
//!   letter. This is what a Pod's `image:` field means.
//! - [`ImageReference::parse_raw`] applies the grammar without normalization (the first
//!   component is a domain whenever it matches the domain grammar and more components follow).
//!
//! ```
//! use provenance_core::ImageReference;
//! let r = ImageReference::parse("nginx").unwrap();
//! assert_eq!(r.to_string(), "docker.io/library/nginx");
//! assert_eq!(r.with_default_tag().to_string(), "docker.io/library/nginx:latest");
//! assert_eq!(r.familiar_string(), "nginx");
//! let r = ImageReference::parse("localhost:5000/ml/llama:v3").unwrap();
//! assert_eq!((r.domain(), r.path(), r.tag()), ("localhost:5000", "ml/llama", Some("v3")));
//! ```

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;
use crate::error::{Error, ReferencePart, clip};

/// The registry Docker Hub images live on, after normalization.
pub const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
const OFFICIAL_REPO_PREFIX: &str = "library/";
/// The longest repository path accepted (the domain does not count).
pub const NAME_TOTAL_LENGTH_MAX: usize = 255;

/// Why a reference failed to parse; the reasons are the grammar's own messages.
pub mod reason {
    /// The input is empty.
    pub const NAME_EMPTY: &str = "repository name must have at least one component";
    /// The input does not follow the grammar.
    pub const INVALID_FORMAT: &str = "invalid reference format";
    /// The repository path has uppercase letters.
    pub const NAME_CONTAINS_UPPERCASE: &str = "repository name must be lowercase";
    /// The repository path is longer than 255 characters.
    pub const NAME_TOO_LONG: &str = "repository name must not be more than 255 characters";
    /// The tag does not follow the grammar.
    pub const TAG_INVALID_FORMAT: &str = "invalid tag format";
    /// The digest does not follow the grammar.
    pub const DIGEST_INVALID_FORMAT: &str = "invalid digest format";
    /// The digest's hex part has the wrong length for its algorithm.
    pub const DIGEST_INVALID_LENGTH: &str = "invalid checksum digest length";
    /// The digest's algorithm is not supported.
    pub const DIGEST_UNSUPPORTED: &str = "unsupported digest algorithm";
    /// A bare 64-hex string is an image id, not a repository name.
    pub const NAME_IS_HEX_ID: &str = "cannot specify 64-byte hexadecimal strings";
    /// A name that is not in canonical (fully qualified) form.
    pub const NAME_NOT_CANONICAL: &str = "repository name must be canonical";
}

/// A parsed image reference: optional domain, repository path, optional tag, optional digest.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageReference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<String>,
}

/// What [`ImageReference::parse_any`] found: a named reference or a bare digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnyReference {
    /// A repository name with optional tag and digest (normalized).
    Named(ImageReference),
    /// A bare digest (`sha256:<hex>` or 64 hex characters), e.g. an image id.
    Digest(String),
}

impl fmt::Display for AnyReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnyReference::Named(r) => r.fmt(f),
            AnyReference::Digest(d) => f.write_str(d),
        }
    }
}

fn err(input: &str, part: ReferencePart, reason: &'static str) -> Error {
    Error::InvalidReference {
        input: clip(input, 256),
        part,
        reason,
    }
}

// ---- grammar -------------------------------------------------------------------------------

fn is_alnum_lower(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// `alpha-numeric (separator alpha-numeric)*`
fn is_path_component(s: &str) -> bool {
    let b = s.as_bytes();
    if b.is_empty() || !is_alnum_lower(b[0]) || !is_alnum_lower(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum_lower(b[i]) {
            i += 1;
            continue;
        }
        // a separator run: ".", "_", "__" or "-"+, followed by an alphanumeric
        let start = i;
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
        if i == start || i >= b.len() || !is_alnum_lower(b[i]) {
            return false;
        }
    }
    true
}

fn is_remote_name(s: &str) -> bool {
    !s.is_empty() && s.split('/').all(is_path_component)
}

fn is_domain_component(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
}

fn is_host(s: &str) -> bool {
    if let Some(inner) = s.strip_prefix('[') {
        return match inner.strip_suffix(']') {
            Some(v6) => !v6.is_empty() && v6.bytes().all(|c| c.is_ascii_hexdigit() || c == b':'),
            None => false,
        };
    }
    !s.is_empty() && s.split('.').all(is_domain_component)
}

/// Whether `s` is a registry domain with optional port: `host (":" [0-9]+)?`, where host is a
/// DNS-like name or a bracketed IPv6 literal.
pub fn is_domain_and_port(s: &str) -> bool {
    // The port separator is the last ':' outside IPv6 brackets.
    let host_end = match s.rfind(']') {
        Some(i) => i + 1,
        None => 0,
    };
    match s[host_end..].rfind(':') {
        Some(rel) => {
            let i = host_end + rel;
            let port = &s[i + 1..];
            !port.is_empty() && port.bytes().all(|c| c.is_ascii_digit()) && is_host(&s[..i])
        }
        None => is_host(s),
    }
}

fn is_tag(s: &str) -> bool {
    let b = s.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    !b.is_empty()
        && b.len() <= 128
        && word(b[0])
        && b[1..].iter().all(|&c| word(c) || c == b'.' || c == b'-')
}

/// `[A-Za-z][A-Za-z0-9]*([-_+.][A-Za-z][A-Za-z0-9]*)*:[[:xdigit:]]{32,}`
fn is_digest_grammar(s: &str) -> bool {
    let Some((alg, hex)) = s.split_once(':') else {
        return false;
    };
    if hex.len() < 32 || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
        return false;
    }
    let b = alg.as_bytes();
    let mut i = 0;
    loop {
        if i >= b.len() || !b[i].is_ascii_alphabetic() {
            return false;
        }
        i += 1;
        while i < b.len() && b[i].is_ascii_alphanumeric() {
            i += 1;
        }
        if i == b.len() {
            return true;
        }
        if !b"-_+.".contains(&b[i]) {
            return false;
        }
        i += 1;
    }
}

/// Validates a digest as the OCI digest rules do: grammar, registered algorithm, exact length.
fn validate_digest(s: &str) -> Result<(), &'static str> {
    if !is_digest_grammar(s) {
        return Err(reason::DIGEST_INVALID_FORMAT);
    }
    let (alg, hex) = s.split_once(':').unwrap_or_default();
    if alg != "sha256" {
        return Err(reason::DIGEST_UNSUPPORTED);
    }
    if hex.len() != 64 {
        return Err(reason::DIGEST_INVALID_LENGTH);
    }
    if !hex
        .bytes()
        .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    {
        return Err(reason::DIGEST_INVALID_FORMAT);
    }
    Ok(())
}

/// Whether `s` is a bare 64-character lowercase hex image id.
pub fn is_hex_id(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

/// Splits a repository name into (domain, path) as the grammar does without normalization
/// (the domain is empty when the first component is not taken as one), or `None` if `name` is
/// not a valid name.
pub fn split_name(name: &str) -> Option<(&str, &str)> {
    if let Some(i) = name.find('/') {
        let (d, rest) = (&name[..i], &name[i + 1..]);
        if is_domain_and_port(d) && is_remote_name(rest) {
            return Some((d, rest));
        }
    }
    if is_remote_name(name) {
        Some(("", name))
    } else {
        None
    }
}

/// Splits `name[:tag][@digest]` without validating the parts.
fn split_reference(s: &str) -> (&str, Option<&str>, Option<&str>) {
    let (rest, digest) = match s.find('@') {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
    match rest[last_slash..].find(':') {
        Some(rel) => {
            let i = last_slash + rel;
            (&rest[..i], Some(&rest[i + 1..]), digest)
        }
        None => (rest, None, digest),
    }
}

/// Whether `s` matches the whole reference grammar (not checking digest algorithms or lengths).
fn matches_grammar(s: &str) -> bool {
    split_grammar(s).is_some()
}

/// Splits `s` into (name, tag, digest) if it matches the reference grammar; digests are checked
/// for grammar only (any algorithm, at least 32 hex characters).
pub fn split_grammar(s: &str) -> Option<(&str, Option<&str>, Option<&str>)> {
    let (name, tag, digest) = split_reference(s);
    (split_name(name).is_some() && tag.is_none_or(is_tag) && digest.is_none_or(is_digest_grammar))
        .then_some((name, tag, digest))
}

impl ImageReference {
    /// Parses a reference without normalization (the grammar's `Parse`).
    ///
    /// The first path component is taken as the domain whenever it matches the domain grammar
    /// and more components follow, so `foo/bar` has domain `foo`. Use [`ImageReference::parse`]
    /// for what a Pod's `image:` field means.
    pub fn parse_raw(input: &str) -> Result<Self, Error> {
        if input.is_empty() {
            return Err(err(input, ReferencePart::Whole, reason::NAME_EMPTY));
        }
        if !matches_grammar(input) {
            if matches_grammar(&input.to_ascii_lowercase()) {
                return Err(err(
                    input,
                    ReferencePart::Path,
                    reason::NAME_CONTAINS_UPPERCASE,
                ));
            }
            return Err(err(input, Self::blame(input), reason::INVALID_FORMAT));
        }
        let (name, tag, digest) = split_reference(input);
        let (domain, path) = split_name(name).unwrap_or(("", name));
        if path.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(err(input, ReferencePart::Path, reason::NAME_TOO_LONG));
        }
        if let Some(d) = digest {
            validate_digest(d).map_err(|r| err(input, ReferencePart::Digest, r))?;
        }
        Ok(ImageReference {
            domain: domain.to_owned(),
            path: path.to_owned(),
            tag: tag.map(str::to_owned),
            digest: digest.map(str::to_owned),
        })
    }

    /// Names the part most likely at fault in an input that does not follow the grammar.
    fn blame(input: &str) -> ReferencePart {
        let (name, tag, digest) = split_reference(input);
        if digest.is_some_and(|d| !is_digest_grammar(d)) {
            return ReferencePart::Digest;
        }
        if tag.is_some_and(|t| !is_tag(t)) {
            return ReferencePart::Tag;
        }
        if let Some(i) = name.find('/') {
            let d = &name[..i];
            if (d.contains(['.', ':', '[']) || d == "localhost") && !is_domain_and_port(d) {
                return ReferencePart::Domain;
            }
        }
        if name.is_empty() {
            return ReferencePart::Whole;
        }
        ReferencePart::Path
    }

    /// Parses and normalizes a reference as Docker and Kubernetes do (`ParseNormalizedNamed`).
    pub fn parse(input: &str) -> Result<Self, Error> {
        if is_hex_id(input) {
            return Err(err(input, ReferencePart::Whole, reason::NAME_IS_HEX_ID));
        }
        let (domain, remainder) = split_docker_domain(input);
        let remote = match remainder.find(':') {
            Some(i) => &remainder[..i],
            None => &remainder,
        };
        if remote.to_ascii_lowercase() != remote {
            return Err(err(
                input,
                ReferencePart::Path,
                reason::NAME_CONTAINS_UPPERCASE,
            ));
        }
        let full = format!("{domain}/{remainder}");
        ImageReference::parse_raw(&full).map_err(|e| match e {
            Error::InvalidReference { part, reason, .. } => err(input, part, reason),
            other => other,
        })
    }

    /// Parses a normalized reference and requires the input to already be canonical
    /// (fully qualified, as printed by [`Display`](fmt::Display)).
    pub fn parse_canonical(input: &str) -> Result<Self, Error> {
        let r = Self::parse(input)?;
        if r.to_string() != input {
            return Err(err(input, ReferencePart::Whole, reason::NAME_NOT_CANONICAL));
        }
        Ok(r)
    }

    /// Parses a normalized reference, a `sha256:<hex>` digest, or a bare 64-hex image id.
    pub fn parse_any(input: &str) -> Result<AnyReference, Error> {
        if is_hex_id(input) {
            return Ok(AnyReference::Digest(format!("sha256:{input}")));
        }
        if validate_digest(input).is_ok() {
            return Ok(AnyReference::Digest(input.to_owned()));
        }
        Self::parse(input).map(AnyReference::Named)
    }

    /// Parses as Kubernetes' container runtime does (`ParseDockerRef`): normalizes, adds
    /// `:latest` when there is neither tag nor digest, and drops the tag when a digest is present.
    pub fn parse_docker_ref(input: &str) -> Result<Self, Error> {
        let mut r = Self::parse(input)?;
        if r.digest.is_some() {
            r.tag = None;
        }
        Ok(r.with_default_tag())
    }

    /// Builds a reference from a name alone (no tag or digest), without normalization.
    pub fn from_name(name: &str) -> Result<Self, Error> {
        let Some((domain, path)) = split_name(name) else {
            return Err(err(name, ReferencePart::Whole, reason::INVALID_FORMAT));
        };
        if path.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(err(name, ReferencePart::Path, reason::NAME_TOO_LONG));
        }
        Ok(ImageReference {
            domain: domain.to_owned(),
            path: path.to_owned(),
            tag: None,
            digest: None,
        })
    }

    /// Returns a copy with `tag` set (replacing any tag; the digest is kept).
    pub fn with_tag(&self, tag: &str) -> Result<Self, Error> {
        if !is_tag(tag) {
            return Err(err(tag, ReferencePart::Tag, reason::TAG_INVALID_FORMAT));
        }
        Ok(ImageReference {
            tag: Some(tag.to_owned()),
            ..self.clone()
        })
    }

    /// Returns a copy with `digest` set (grammar-checked only; the tag is kept).
    pub fn with_digest(&self, digest: &str) -> Result<Self, Error> {
        if !is_digest_grammar(digest) {
            return Err(err(
                digest,
                ReferencePart::Digest,
                reason::DIGEST_INVALID_FORMAT,
            ));
        }
        Ok(ImageReference {
            digest: Some(digest.to_owned()),
            ..self.clone()
        })
    }

    /// Returns a copy pinned to `digest`, keeping the tag for readability.
    pub fn pinned(&self, digest: &Digest) -> Self {
        ImageReference {
            digest: Some(digest.to_string()),
            ..self.clone()
        }
    }

    /// Returns a copy with tag `latest` when there is neither tag nor digest.
    pub fn with_default_tag(&self) -> Self {
        let mut r = self.clone();
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = Some("latest".to_owned());
        }
        r
    }

    /// The registry host and optional port (`docker.io`, `localhost:5000`, `[::1]:5000`);
    /// empty for a raw-parsed reference without a domain.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path within the registry (`library/nginx`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest as written, if any (`sha256:<hex>`).
    pub fn digest_str(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// The digest, parsed, if any.
    pub fn digest(&self) -> Option<Digest> {
        self.digest.as_deref().and_then(|d| Digest::parse(d).ok())
    }

    /// The repository name: `domain/path`, or just `path` without a domain.
    pub fn name(&self) -> String {
        if self.domain.is_empty() {
            self.path.clone()
        } else {
            format!("{}/{}", self.domain, self.path)
        }
    }

    /// The name as people write it: `nginx` for `docker.io/library/nginx`,
    /// `user/app` for `docker.io/user/app`.
    pub fn familiar_name(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            match self.path.strip_prefix(OFFICIAL_REPO_PREFIX) {
                Some(rest) if !rest.contains('/') => rest.to_owned(),
                _ => self.path.clone(),
            }
        } else {
            self.name()
        }
    }

    /// The familiar name with tag and digest.
    pub fn familiar_string(&self) -> String {
        let mut s = self.familiar_name();
        self.push_suffix(&mut s);
        s
    }

    /// Matches a `path.Match`-style glob (`*`, `?`, `[a-z]`, `\` escapes) against the familiar
    /// string, then the familiar name (the grammar's `FamiliarMatch`). A malformed pattern is
    /// an error.
    pub fn familiar_match(&self, pattern: &str) -> Result<bool, Error> {
        let m = crate::wildcard::path_match(pattern, &self.familiar_string())
            .map_err(|_| err(pattern, ReferencePart::Whole, "malformed glob pattern"))?;
        if m {
            return Ok(true);
        }
        Ok(crate::wildcard::path_match(pattern, &self.familiar_name()).unwrap_or(false))
    }

    fn push_suffix(&self, s: &mut String) {
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d);
        }
    }
}

fn split_docker_domain(name: &str) -> (String, String) {
    let (mut domain, mut remainder) = match name.find('/') {
        Some(i) => {
            let first = &name[..i];
            if !first.contains(['.', ':'])
                && first != "localhost"
                && first.to_ascii_lowercase() == first
            {
                (DEFAULT_DOMAIN.to_owned(), name.to_owned())
            } else {
                (first.to_owned(), name[i + 1..].to_owned())
            }
        }
        None => (DEFAULT_DOMAIN.to_owned(), name.to_owned()),
    };
    if domain == LEGACY_DEFAULT_DOMAIN {
        domain = DEFAULT_DOMAIN.to_owned();
    }
    if domain == DEFAULT_DOMAIN && !remainder.contains('/') {
        remainder = format!("{OFFICIAL_REPO_PREFIX}{remainder}");
    }
    (domain, remainder)
}

impl fmt::Display for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = self.name();
        self.push_suffix(&mut s);
        f.write_str(&s)
    }
}

impl fmt::Debug for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ImageReference({self})")
    }
}

impl FromStr for ImageReference {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        ImageReference::parse(s)
    }
}

impl serde::Serialize for ImageReference {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ImageReference {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        ImageReference::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_part() {
        let part = |s: &str| match ImageReference::parse(s).unwrap_err() {
            Error::InvalidReference { part, .. } => part,
            e => panic!("unexpected {e:?}"),
        };
        assert_eq!(part("nginx:-bad"), ReferencePart::Tag);
        assert_eq!(part("nginx@sha256:abc"), ReferencePart::Digest);
        assert_eq!(part("reg.example.com:port/x"), ReferencePart::Domain);
        assert_eq!(part("ml/Llama"), ReferencePart::Path);
    }

    #[test]
    fn ipv6_domains() {
        let r = ImageReference::parse("[2001:db8::1]:5000/repo:tag").unwrap();
        assert_eq!(r.domain(), "[2001:db8::1]:5000");
        assert_eq!(r.path(), "repo");
        assert!(ImageReference::parse("[fe80::1%eth0]:5000/repo").is_err());
    }
}
