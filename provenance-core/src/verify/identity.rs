//! Signer identities in Fulcio certificates, and the expectations Kyverno writes about them.

use std::collections::BTreeMap;

use const_oid::ObjectIdentifier;
use x509_cert::Certificate;
use x509_cert::der::asn1::{Ia5String, Utf8StringRef};
use x509_cert::der::{Decode, Encode};
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;

use super::check::Check;
use crate::error::Error;

const OID_SAN: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.17");
/// The Fulcio extension arc, `1.3.6.1.4.1.57264.1`.
const FULCIO_ARC: &str = "1.3.6.1.4.1.57264.1.";
/// Fulcio's OtherName SAN type for a username identity.
const OID_OTHERNAME_USERNAME: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.7");

/// One Subject Alternative Name of a signing certificate.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SanValue {
    /// An `rfc822Name` (email address).
    Email(String),
    /// A `uniformResourceIdentifier`.
    Uri(String),
    /// A Fulcio `otherName` username (`1.3.6.1.4.1.57264.1.7`).
    OtherName(String),
}

impl SanValue {
    /// The value, whatever its kind.
    pub fn as_str(&self) -> &str {
        match self {
            SanValue::Email(s) | SanValue::Uri(s) | SanValue::OtherName(s) => s,
        }
    }
}

/// The Fulcio extensions `1.3.6.1.4.1.57264.1.<n>` by their short number `n`, with the names
/// Kyverno and Fulcio use for them. The deprecated `.1.1`–`.1.6` are raw strings; `.1.8`
/// onwards are DER UTF8Strings.
const FULCIO_EXTENSIONS: &[(u32, &str, bool)] = &[
    (1, "oidcIssuer", true),
    (2, "githubWorkflowTrigger", true),
    (3, "githubWorkflowSha", true),
    (4, "githubWorkflowName", true),
    (5, "githubWorkflowRepository", true),
    (6, "githubWorkflowRef", true),
    (8, "issuerV2", false),
    (9, "buildSignerURI", false),
    (10, "buildSignerDigest", false),
    (11, "runnerEnvironment", false),
    (12, "sourceRepositoryURI", false),
    (13, "sourceRepositoryDigest", false),
    (14, "sourceRepositoryRef", false),
    (15, "sourceRepositoryIdentifier", false),
    (16, "sourceRepositoryOwnerURI", false),
    (17, "sourceRepositoryOwnerIdentifier", false),
    (18, "buildConfigURI", false),
    (19, "buildConfigDigest", false),
    (20, "buildTrigger", false),
    (21, "runInvocationURI", false),
    (22, "sourceRepositoryVisibilityAtSigning", false),
    (23, "deploymentEnvironment", false),
];

/// What a verified Fulcio certificate says about its signer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CertificateIdentity {
    /// The OIDC issuer (`.1.8`, or the deprecated `.1.1` when `.1.8` is absent).
    pub issuer: Option<String>,
    /// Every Subject Alternative Name, in certificate order.
    pub subject_alternative_names: Vec<SanValue>,
    /// Fulcio extensions by dotted OID (`1.3.6.1.4.1.57264.1.12` → value).
    pub extensions: BTreeMap<String, String>,
}

impl CertificateIdentity {
    /// The first SAN value: what cosign and Kyverno call the certificate's subject.
    pub fn subject(&self) -> Option<&str> {
        self.subject_alternative_names.first().map(SanValue::as_str)
    }

    /// A Fulcio extension by Kyverno/cosign name (`oidcIssuer`, `githubWorkflowRepository`,
    /// ...), Fulcio name (`issuerV2`, `sourceRepositoryURI`, ...) or dotted OID.
    pub fn extension(&self, name: &str) -> Option<&str> {
        let oid = extension_oid(name)?;
        self.extensions.get(&oid).map(String::as_str)
    }

    /// Parses the identity out of a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, Error> {
        let cert = Certificate::from_der(der)
            .map_err(|e| Check::CertificateMalformed.fail(format!("not a DER certificate: {e}")))?;
        let mut id = CertificateIdentity::default();
        let Some(exts) = cert.tbs_certificate.extensions.as_ref() else {
            return Ok(id);
        };
        for ext in exts {
            let value = ext.extn_value.as_bytes();
            if ext.extn_id == OID_SAN {
                let san = SubjectAltName::from_der(value).map_err(|e| {
                    Check::CertificateMalformed.fail(format!("malformed SAN extension: {e}"))
                })?;
                for name in san.0 {
                    match name {
                        GeneralName::Rfc822Name(s) => id
                            .subject_alternative_names
                            .push(SanValue::Email(s.to_string())),
                        GeneralName::UniformResourceIdentifier(s) => id
                            .subject_alternative_names
                            .push(SanValue::Uri(s.to_string())),
                        GeneralName::OtherName(o) if o.type_id == OID_OTHERNAME_USERNAME => {
                            let v = o.value.to_der().ok().and_then(|d| {
                                Utf8StringRef::from_der(&d)
                                    .map(|s| s.as_str().to_owned())
                                    .ok()
                                    .or_else(|| Ia5String::from_der(&d).map(|s| s.to_string()).ok())
                            });
                            if let Some(v) = v {
                                id.subject_alternative_names.push(SanValue::OtherName(v));
                            }
                        }
                        _ => {}
                    }
                }
                continue;
            }
            let oid = ext.extn_id.to_string();
            let Some(n) = oid
                .strip_prefix(FULCIO_ARC)
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let Some(&(_, _, raw)) = FULCIO_EXTENSIONS.iter().find(|(k, _, _)| *k == n) else {
                continue;
            };
            let text = if raw {
                String::from_utf8(value.to_vec()).ok()
            } else {
                Utf8StringRef::from_der(value)
                    .map(|s| s.as_str().to_owned())
                    .ok()
            };
            let Some(text) = text else {
                return Err(Check::CertificateMalformed
                    .fail(format!("Fulcio extension {oid} is not a valid string")));
            };
            id.extensions.insert(oid, text);
        }
        id.issuer = id
            .extensions
            .get("1.3.6.1.4.1.57264.1.8")
            .or_else(|| id.extensions.get("1.3.6.1.4.1.57264.1.1"))
            .cloned();
        Ok(id)
    }
}

/// The dotted OID for an extension name or OID as Kyverno's `additionalExtensions` writes it.
fn extension_oid(name: &str) -> Option<String> {
    if let Some(&(n, _, _)) = FULCIO_EXTENSIONS.iter().find(|(_, k, _)| *k == name) {
        return Some(format!("{FULCIO_ARC}{n}"));
    }
    if name.parse::<ObjectIdentifier>().is_ok() {
        return Some(name.to_owned());
    }
    None
}

/// Who must have signed, as Kyverno's keyless attestor writes it: `subject`, `subjectRegExp`,
/// `issuer`, `issuerRegExp` and `additionalExtensions` (plus `subject_exact`, cosign's
/// `--certificate-identity`).
///
/// Matching follows Kyverno: `subject` is a Kyverno wildcard pattern (`*`, `?`) matched against
/// the certificate's SANs (email, URI or Fulcio otherName; Fulcio issues one); `issuer` is
/// compared exactly; `subjectRegExp` and `issuerRegExp` are unanchored regular expressions, as
/// Go's `regexp.MatchString` is (anchor them with `^...$`); `additionalExtensions` values are
/// wildcard patterns and an empty value only requires the extension to be present. Every
/// constraint given must hold (Kyverno before 1.14 ignored the two regular expressions,
/// GO-2025-3562; this does not). A subject (or subjectRegExp) and an issuer (or issuerRegExp)
/// are required: an expectation that accepts any signer is refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentityExpectation {
    /// Subject as a Kyverno wildcard pattern (any SAN value).
    pub subject: Option<String>,
    /// Subject exactly, no wildcards (cosign's `--certificate-identity`; any SAN value).
    pub subject_exact: Option<String>,
    /// Regular expression the subject must match (any SAN value).
    pub subject_regexp: Option<String>,
    /// Exact OIDC issuer.
    pub issuer: Option<String>,
    /// Regular expression the OIDC issuer must match.
    pub issuer_regexp: Option<String>,
    /// Further Fulcio extensions that must match the given wildcard patterns (an empty pattern:
    /// present with any value), keyed by Kyverno/cosign name (`oidcIssuer`,
    /// `githubWorkflowTrigger`, `githubWorkflowSha`, `githubWorkflowName`,
    /// `githubWorkflowRepository`, `githubWorkflowRef`), Fulcio name (`issuerV2`,
    /// `buildSignerURI`, `sourceRepositoryURI`, ...) or dotted OID (`1.3.6.1.4.1.57264.1.8`).
    pub additional_extensions: BTreeMap<String, String>,
}

impl IdentityExpectation {
    /// Expect exactly this subject and issuer, with no wildcards (what cosign's
    /// `--certificate-identity` and `--certificate-oidc-issuer` mean).
    pub fn exact(subject: impl Into<String>, issuer: impl Into<String>) -> Self {
        IdentityExpectation {
            subject_exact: Some(subject.into()),
            issuer: Some(issuer.into()),
            ..Default::default()
        }
    }

    /// Compiles the expectation, rejecting bad regular expressions, unknown extension names and
    /// expectations that would accept any signer.
    #[cfg(test)]
    pub(crate) fn compile(&self) -> Result<CompiledIdentity, Error> {
        self.compile_with(&RegexCache::default())
    }

    /// [`Self::compile`], reusing regular expressions compiled before (compiling one costs
    /// about as much as a signature check).
    pub(crate) fn compile_with(&self, cache: &RegexCache) -> Result<CompiledIdentity, Error> {
        let re = |s: &Option<String>, what: &str| -> Result<Option<regex::Regex>, Error> {
            s.as_deref()
                .map(|p| {
                    cache
                        .get(p)
                        .map_err(|e| Check::Expectation.fail(format!("{what}: {e}")))
                })
                .transpose()
        };
        if self.subject.is_none() && self.subject_exact.is_none() && self.subject_regexp.is_none() {
            return Err(Check::Expectation.fail(
                "a keyless expectation needs a subject or subjectRegExp (refusing to accept any signer)",
            ));
        }
        if self.issuer.is_none() && self.issuer_regexp.is_none() {
            return Err(Check::Expectation.fail(
                "a keyless expectation needs an issuer or issuerRegExp (refusing to accept any issuer)",
            ));
        }
        let mut extensions = Vec::new();
        for (k, v) in &self.additional_extensions {
            if extension_oid(k).is_none() {
                return Err(
                    Check::Expectation.fail(format!("unknown certificate extension name {k:?}"))
                );
            }
            extensions.push((k.clone(), v.clone()));
        }
        Ok(CompiledIdentity {
            subject: self.subject.clone(),
            subject_exact: self.subject_exact.clone(),
            subject_regexp: re(&self.subject_regexp, "subjectRegExp")?,
            issuer: self.issuer.clone(),
            issuer_regexp: re(&self.issuer_regexp, "issuerRegExp")?,
            extensions,
        })
    }
}

/// Compiled regular expressions by pattern, shared by the verifications of one
/// [`super::Verifier`]. Bounded: cleared when it holds [`RegexCache::MAX`] patterns.
#[derive(Debug, Default)]
pub(crate) struct RegexCache(std::sync::Mutex<std::collections::HashMap<String, regex::Regex>>);

impl RegexCache {
    const MAX: usize = 256;

    pub(crate) fn get(&self, pattern: &str) -> Result<regex::Regex, regex::Error> {
        if let Ok(map) = self.0.lock()
            && let Some(r) = map.get(pattern)
        {
            return Ok(r.clone());
        }
        // Go's meaning (cosign and Kyverno are Go): `\w`, `\d`, `\s`, `\b` are ASCII, so an
        // identity pattern does not admit full-width or other-script look-alikes.
        let r = crate::re2::compile(pattern)?;
        if let Ok(mut map) = self.0.lock() {
            if map.len() >= Self::MAX {
                map.clear();
            }
            map.insert(pattern.to_owned(), r.clone());
        }
        Ok(r)
    }
}

/// An [`IdentityExpectation`] ready to match.
#[derive(Debug, Clone)]
pub(crate) struct CompiledIdentity {
    subject: Option<String>,
    subject_exact: Option<String>,
    subject_regexp: Option<regex::Regex>,
    issuer: Option<String>,
    issuer_regexp: Option<regex::Regex>,
    extensions: Vec<(String, String)>,
}

impl CompiledIdentity {
    /// Checks a certificate identity against the expectation.
    pub(crate) fn check(&self, id: &CertificateIdentity) -> Result<(), Error> {
        let sans: Vec<&str> = id
            .subject_alternative_names
            .iter()
            .map(SanValue::as_str)
            .collect();
        if let Some(want) = &self.subject
            && !sans
                .iter()
                .any(|s| crate::wildcard::wildcard_match(want, s))
        {
            return Err(Check::IdentitySubject.fail(format!(
                "expected subject {want:?}, certificate has {sans:?}"
            )));
        }
        if let Some(want) = &self.subject_exact
            && !sans.iter().any(|s| s == want)
        {
            return Err(Check::IdentitySubject.fail(format!(
                "expected subject {want:?}, certificate has {sans:?}"
            )));
        }
        if let Some(re) = &self.subject_regexp
            && !sans.iter().any(|s| re.is_match(s))
        {
            return Err(Check::IdentitySubject.fail(format!(
                "no subject matches /{}/, certificate has {sans:?}",
                re.as_str()
            )));
        }
        let issuer = id.issuer.as_deref();
        if let Some(want) = &self.issuer
            && issuer != Some(want.as_str())
        {
            return Err(Check::IdentityIssuer.fail(format!(
                "expected issuer {want:?}, certificate has {issuer:?}"
            )));
        }
        if let Some(re) = &self.issuer_regexp
            && !issuer.is_some_and(|i| re.is_match(i))
        {
            return Err(Check::IdentityIssuer.fail(format!(
                "issuer {issuer:?} does not match /{}/",
                re.as_str()
            )));
        }
        for (k, want) in &self.extensions {
            let got = id.extension(k);
            if !got.is_some_and(|g| want.is_empty() || crate::wildcard::wildcard_match(want, g)) {
                return Err(Check::IdentityExtension.fail(format!(
                    "extension {k}: expected {want:?}, certificate has {got:?}"
                )));
            }
        }
        Ok(())
    }
}
