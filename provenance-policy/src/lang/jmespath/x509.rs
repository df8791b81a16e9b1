//! Kyverno's `x509_decode`: a PEM certificate or certificate request (RSA keys only, as in
//! Kyverno) as the JSON Go's `encoding/json` makes of `x509.Certificate` /
//! `x509.CertificateRequest`, for the fields policies read (`PublicKey.N`, `PublicKey.E`,
//! `Subject`, `Issuer`, `NotBefore`, `NotAfter`, `SerialNumber`, `DNSNames`, `IsCA`, ...).

use base64::Engine as _;
use serde_json::{Map, Value, json};
use x509_cert::der::{Decode, Encode};

const RSA_OID: &str = "1.2.840.113549.1.1.1";

fn b64(b: &[u8]) -> Value {
    Value::String(base64::engine::general_purpose::STANDARD.encode(b))
}

/// Decodes the first PEM block of `input`.
pub(crate) fn decode(input: &str) -> Result<Value, String> {
    let block =
        pem::parse(input.trim_start()).map_err(|_| "failed to decode PEM block".to_string())?;
    match block.tag() {
        "CERTIFICATE" => certificate(block.contents()),
        "CERTIFICATE REQUEST" => request(block.contents()),
        _ => Err("PEM block neither contains a CERTIFICATE or CERTIFICATE REQUEST".into()),
    }
}

fn der<T: Encode>(t: &T) -> Result<Vec<u8>, String> {
    t.to_der().map_err(|e| format!("x509_decode(): {e}"))
}

fn certificate(bytes: &[u8]) -> Result<Value, String> {
    let cert =
        x509_cert::Certificate::from_der(bytes).map_err(|e| format!("x509_decode(): {e}"))?;
    let tbs = &cert.tbs_certificate;
    let spki = &tbs.subject_public_key_info;
    if spki.algorithm.oid.to_string() != RSA_OID {
        return Err("certificate should use rsa algorithm".into());
    }
    let mut m = Map::new();
    m.insert("Raw".into(), b64(bytes));
    m.insert("RawTBSCertificate".into(), b64(&der(tbs)?));
    m.insert("RawSubjectPublicKeyInfo".into(), b64(&der(spki)?));
    m.insert("RawSubject".into(), b64(&der(&tbs.subject)?));
    m.insert("RawIssuer".into(), b64(&der(&tbs.issuer)?));
    m.insert("Signature".into(), b64(cert.signature.raw_bytes()));
    m.insert(
        "SignatureAlgorithm".into(),
        json!(signature_algorithm(
            &cert.signature_algorithm.oid.to_string()
        )),
    );
    m.insert("PublicKeyAlgorithm".into(), json!(1));
    m.insert(
        "PublicKey".into(),
        rsa_public_key(spki.subject_public_key.raw_bytes())?,
    );
    let version = match tbs.version {
        x509_cert::Version::V1 => 1,
        x509_cert::Version::V2 => 2,
        x509_cert::Version::V3 => 3,
    };
    m.insert("Version".into(), json!(version));
    m.insert(
        "SerialNumber".into(),
        big_number(tbs.serial_number.as_bytes()),
    );
    m.insert("Issuer".into(), name(&tbs.issuer));
    m.insert("Subject".into(), name(&tbs.subject));
    m.insert("NotBefore".into(), time(&tbs.validity.not_before));
    m.insert("NotAfter".into(), time(&tbs.validity.not_after));
    let mut exts = Vec::new();
    let (mut dns, mut emails, mut ips) = (Vec::new(), Vec::new(), Vec::new());
    let (mut is_ca, mut bc_valid, mut max_path, mut max_path_zero) = (false, false, -1i64, false);
    let (mut skid, mut akid) = (Value::Null, Value::Null);
    for e in tbs.extensions.iter().flatten() {
        let oid = e.extn_id.to_string();
        let value = e.extn_value.as_bytes();
        exts.push(json!({
            "Id": oid.split('.').filter_map(|p| p.parse::<u64>().ok()).collect::<Vec<_>>(),
            "Critical": e.critical,
            "Value": b64(value),
        }));
        match oid.as_str() {
            "2.5.29.17" => {
                if let Ok(san) = x509_cert::ext::pkix::SubjectAltName::from_der(value) {
                    for g in san.0 {
                        match g {
                            x509_cert::ext::pkix::name::GeneralName::DnsName(s) => {
                                dns.push(Value::String(s.to_string()))
                            }
                            x509_cert::ext::pkix::name::GeneralName::Rfc822Name(s) => {
                                emails.push(Value::String(s.to_string()))
                            }
                            x509_cert::ext::pkix::name::GeneralName::IpAddress(o) => {
                                ips.push(Value::String(ip_string(o.as_bytes())))
                            }
                            _ => {}
                        }
                    }
                }
            }
            "2.5.29.19" => {
                if let Ok(bc) = x509_cert::ext::pkix::BasicConstraints::from_der(value) {
                    bc_valid = true;
                    is_ca = bc.ca;
                    if let Some(p) = bc.path_len_constraint {
                        max_path = i64::from(p);
                        max_path_zero = p == 0;
                    }
                }
            }
            "2.5.29.14" => {
                if let Ok(k) = x509_cert::ext::pkix::SubjectKeyIdentifier::from_der(value) {
                    skid = b64(k.0.as_bytes());
                }
            }
            "2.5.29.35" => {
                if let Ok(k) = x509_cert::ext::pkix::AuthorityKeyIdentifier::from_der(value)
                    && let Some(id) = k.key_identifier
                {
                    akid = b64(id.as_bytes());
                }
            }
            _ => {}
        }
    }
    let list = |v: Vec<Value>| {
        if v.is_empty() {
            Value::Null
        } else {
            Value::Array(v)
        }
    };
    m.insert("Extensions".into(), list(exts));
    m.insert("ExtraExtensions".into(), Value::Null);
    m.insert("DNSNames".into(), list(dns));
    m.insert("EmailAddresses".into(), list(emails));
    m.insert("IPAddresses".into(), list(ips));
    m.insert("URIs".into(), Value::Null);
    m.insert("BasicConstraintsValid".into(), json!(bc_valid));
    m.insert("IsCA".into(), json!(is_ca));
    m.insert(
        "MaxPathLen".into(),
        json!(if bc_valid { max_path } else { 0 }),
    );
    m.insert("MaxPathLenZero".into(), json!(max_path_zero));
    m.insert("SubjectKeyId".into(), skid);
    m.insert("AuthorityKeyId".into(), akid);
    Ok(Value::Object(m))
}

fn request(bytes: &[u8]) -> Result<Value, String> {
    let csr =
        x509_cert::request::CertReq::from_der(bytes).map_err(|e| format!("x509_decode(): {e}"))?;
    let spki = &csr.info.public_key;
    if spki.algorithm.oid.to_string() != RSA_OID {
        return Err("certificate should use rsa algorithm".into());
    }
    let mut m = Map::new();
    m.insert("Raw".into(), b64(bytes));
    m.insert("RawTBSCertificateRequest".into(), b64(&der(&csr.info)?));
    m.insert("RawSubjectPublicKeyInfo".into(), b64(&der(spki)?));
    m.insert("RawSubject".into(), b64(&der(&csr.info.subject)?));
    m.insert("Version".into(), json!(0));
    m.insert("Signature".into(), b64(csr.signature.raw_bytes()));
    m.insert(
        "SignatureAlgorithm".into(),
        json!(signature_algorithm(&csr.algorithm.oid.to_string())),
    );
    m.insert("PublicKeyAlgorithm".into(), json!(1));
    m.insert(
        "PublicKey".into(),
        rsa_public_key(spki.subject_public_key.raw_bytes())?,
    );
    m.insert("Subject".into(), name(&csr.info.subject));
    Ok(Value::Object(m))
}

/// Go's `x509.SignatureAlgorithm` numbering.
fn signature_algorithm(oid: &str) -> i64 {
    match oid {
        "1.2.840.113549.1.1.2" => 1,
        "1.2.840.113549.1.1.4" => 2,
        "1.2.840.113549.1.1.5" => 3,
        "1.2.840.113549.1.1.11" => 4,
        "1.2.840.113549.1.1.12" => 5,
        "1.2.840.113549.1.1.13" => 6,
        "1.2.840.10040.4.3" => 7,
        "2.16.840.1.101.3.4.3.2" => 8,
        "1.2.840.10045.4.1" => 9,
        "1.2.840.10045.4.3.2" => 10,
        "1.2.840.10045.4.3.3" => 11,
        "1.2.840.10045.4.3.4" => 12,
        "1.2.840.113549.1.1.10" => 13,
        "1.3.101.112" => 16,
        _ => 0,
    }
}

/// Reads one DER TLV at `pos`: (tag, content range end, content start).
fn tlv(b: &[u8], pos: usize) -> Option<(u8, usize, usize)> {
    let tag = *b.get(pos)?;
    let l0 = *b.get(pos + 1)?;
    let (len, hdr) = if l0 < 0x80 {
        (usize::from(l0), 2)
    } else {
        let n = usize::from(l0 & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | usize::from(*b.get(pos + 2 + i)?);
        }
        (len, 2 + n)
    };
    let start = pos + hdr;
    let end = start.checked_add(len)?;
    if end > b.len() {
        return None;
    }
    Some((tag, end, start))
}

/// `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }` as Kyverno's
/// `PublicKey{N: decimal string, E: int}`.
fn rsa_public_key(b: &[u8]) -> Result<Value, String> {
    let bad = || "failed to parse subject public key info".to_string();
    let (tag, end, start) = tlv(b, 0).ok_or_else(bad)?;
    if tag != 0x30 {
        return Err(bad());
    }
    let (t1, e1, s1) = tlv(&b[..end], start).ok_or_else(bad)?;
    let (t2, e2, s2) = tlv(&b[..end], e1).ok_or_else(bad)?;
    if t1 != 0x02 || t2 != 0x02 {
        return Err(bad());
    }
    let n = decimal(&b[s1..e1]);
    let mut e: i64 = 0;
    for byte in &b[s2..e2] {
        e = e.checked_mul(256).ok_or_else(bad)? + i64::from(*byte);
    }
    Ok(json!({"N": n, "E": e}))
}

/// Big-endian unsigned bytes as a decimal string.
fn decimal(bytes: &[u8]) -> String {
    let mut digits: Vec<u8> = vec![0];
    for &byte in bytes {
        let mut carry = u32::from(byte);
        for d in digits.iter_mut() {
            let v = u32::from(*d) * 256 + carry;
            *d = (v % 10) as u8;
            carry = v / 10;
        }
        while carry > 0 {
            digits.push((carry % 10) as u8);
            carry /= 10;
        }
    }
    while digits.len() > 1 && digits.last() == Some(&0) {
        digits.pop();
    }
    digits.iter().rev().map(|d| char::from(b'0' + d)).collect()
}

fn big_number(bytes: &[u8]) -> Value {
    let d = decimal(bytes);
    d.parse::<u64>()
        .map(Value::from)
        .or_else(|_| d.parse::<f64>().map(|f| json!(f)))
        .unwrap_or(Value::Null)
}

fn time(t: &x509_cert::time::Time) -> Value {
    let secs = t.to_unix_duration().as_secs() as i64;
    Value::String(super::time::GoTime::from_unix(secs, 0, 0).format_rfc3339())
}

fn ip_string(b: &[u8]) -> String {
    match b.len() {
        4 => std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string(),
        16 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(b);
            std::net::Ipv6Addr::from(a).to_string()
        }
        _ => String::new(),
    }
}

/// `pkix.Name` as Go marshals it.
fn name(n: &x509_cert::name::Name) -> Value {
    let mut fields: Vec<(&str, Vec<Value>)> = vec![
        ("Country", Vec::new()),
        ("Organization", Vec::new()),
        ("OrganizationalUnit", Vec::new()),
        ("Locality", Vec::new()),
        ("Province", Vec::new()),
        ("StreetAddress", Vec::new()),
        ("PostalCode", Vec::new()),
    ];
    let (mut serial, mut cn) = (String::new(), String::new());
    let mut names = Vec::new();
    for rdn in n.0.iter() {
        for atv in rdn.0.iter() {
            let oid = atv.oid.to_string();
            let value = String::from_utf8_lossy(atv.value.value()).into_owned();
            names.push(json!({
                "Type": oid.split('.').filter_map(|p| p.parse::<u64>().ok()).collect::<Vec<_>>(),
                "Value": value,
            }));
            let field = match oid.as_str() {
                "2.5.4.6" => Some(0),
                "2.5.4.10" => Some(1),
                "2.5.4.11" => Some(2),
                "2.5.4.7" => Some(3),
                "2.5.4.8" => Some(4),
                "2.5.4.9" => Some(5),
                "2.5.4.17" => Some(6),
                "2.5.4.5" => {
                    serial = value.clone();
                    None
                }
                "2.5.4.3" => {
                    cn = value.clone();
                    None
                }
                _ => None,
            };
            if let Some(i) = field {
                fields[i].1.push(Value::String(value));
            }
        }
    }
    let mut m = Map::new();
    for (k, v) in fields {
        m.insert(
            k.into(),
            if v.is_empty() {
                Value::Null
            } else {
                Value::Array(v)
            },
        );
    }
    m.insert("SerialNumber".into(), Value::String(serial));
    m.insert("CommonName".into(), Value::String(cn));
    m.insert("Names".into(), Value::Array(names));
    m.insert("ExtraNames".into(), Value::Null);
    Value::Object(m)
}
