//! Fulcio v2 (`POST /api/v2/signingCert`) and the checks on its answer before the certificate
//! is used: it certifies our key, chains to a certificate authority of the trust root, is a
//! code-signing certificate valid now, and carries an SCT from a CT log of the trust root.

use aws_lc_rs::signature::{self as sig, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use provenance_core::{KeyKind, TrustRoot, UnixTime};
use serde_json::{Value, json};
use x509_cert::der::asn1::OctetString;
use x509_cert::der::{Decode, Encode};

use super::http::Endpoint;
use crate::error::{Error, SigningStep};

/// The path of Fulcio's v2 signing-certificate API.
pub const SIGNING_CERT_PATH: &str = "/api/v2/signingCert";

const OID_SCT_LIST: &str = "1.3.6.1.4.1.11129.2.4.2";
/// id-kp-codeSigning (1.3.6.1.5.5.7.3.3), DER value bytes.
const EKU_CODE_SIGNING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03];

/// Asks Fulcio to certify `public_key_pem`; returns the chain (DER, leaf first).
pub(crate) async fn request_certificate(
    ep: &Endpoint,
    token: &str,
    public_key_pem: &str,
    proof_of_possession: &[u8],
) -> Result<Vec<Vec<u8>>, Error> {
    let body = json!({
        "credentials": { "oidcIdentityToken": token },
        "publicKeyRequest": {
            "publicKey": { "algorithm": "ECDSA", "content": public_key_pem },
            "proofOfPossession": STANDARD.encode(proof_of_possession),
        },
    });
    let answer = ep
        .post(
            SIGNING_CERT_PATH,
            "application/json",
            serde_json::to_vec(&body).unwrap_or_default(),
        )
        .await?;
    parse_answer(&answer)
}

fn bad(detail: impl Into<String>) -> Error {
    SigningStep::FulcioResponse.fail(detail)
}

/// The certificate chain out of Fulcio's answer.
pub(crate) fn parse_answer(answer: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
    let v: Value =
        serde_json::from_slice(answer).map_err(|e| bad(format!("answer is not JSON: {e}")))?;
    if v.get("signedCertificateDetachedSct").is_some() {
        return Err(bad(
            "Fulcio answered with a detached SCT; a bundle can only carry a certificate with an embedded SCT",
        ));
    }
    let certs = v
        .pointer("/signedCertificateEmbeddedSct/chain/certificates")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("answer has no signedCertificateEmbeddedSct.chain.certificates"))?;
    let mut chain = Vec::new();
    for (i, c) in certs.iter().enumerate() {
        let text = c
            .as_str()
            .ok_or_else(|| bad(format!("certificates[{i}] is not a string")))?;
        let p = pem::parse(text).map_err(|e| bad(format!("certificates[{i}]: {e}")))?;
        if p.tag() != "CERTIFICATE" {
            return Err(bad(format!("certificates[{i}] is a PEM {:?}", p.tag())));
        }
        chain.push(p.contents().to_vec());
    }
    if chain.is_empty() {
        return Err(bad("the certificate chain is empty"));
    }
    Ok(chain)
}

/// Checks Fulcio's chain (leaf first) before anything is signed with the certificate: the leaf
/// certifies `spki_der`, chains (through the answer's intermediates) to a certificate authority
/// of `root` valid at `now`, is valid at `now` for code signing, and carries exactly one SCT
/// that verifies against a CT log key of `root`.
pub(crate) fn check_certificate(
    chain: &[Vec<u8>],
    spki_der: &[u8],
    root: &TrustRoot,
    now: UnixTime,
) -> Result<(), Error> {
    let Some((leaf_der, rest)) = chain.split_first() else {
        return Err(bad("the certificate chain is empty"));
    };
    let leaf = x509_cert::Certificate::from_der(leaf_der)
        .map_err(|e| bad(format!("the signing certificate is not DER: {e}")))?;
    let leaf_spki = leaf
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| bad(format!("the signing certificate's key: {e}")))?;
    if leaf_spki != spki_der {
        return Err(SigningStep::CertificateKeyMismatch.fail(
            "Fulcio's certificate is for another public key than the ephemeral key it was asked to certify",
        ));
    }
    let issuer_spki = check_chain(leaf_der, rest, root, now)?;
    check_sct(&leaf, &issuer_spki, root)
}

/// Path validation with webpki against every certificate authority of the root valid at `now`;
/// returns the DER SubjectPublicKeyInfo of the leaf's issuer on the verified path.
fn check_chain(
    leaf_der: &[u8],
    rest: &[Vec<u8>],
    root: &TrustRoot,
    now: UnixTime,
) -> Result<Vec<u8>, Error> {
    use rustls_pki_types::CertificateDer;
    let fail = |m: String| SigningStep::CertificateChain.fail(m);
    let cas: Vec<_> = root
        .certificate_authorities
        .iter()
        .filter(|ca| ca.valid_for.contains(now))
        .collect();
    if cas.is_empty() {
        return Err(fail(format!(
            "the trust root has no certificate authority valid at {now}"
        )));
    }
    let secs = u64::try_from(now.0).map_err(|_| fail(format!("invalid time {now}")))?;
    let time = rustls_pki_types::UnixTime::since_unix_epoch(std::time::Duration::from_secs(secs));
    let leaf = CertificateDer::from(leaf_der);
    let ee = webpki::EndEntityCert::try_from(&leaf)
        .map_err(|e| fail(format!("the signing certificate: {e:?}")))?;
    let mut last = String::new();
    for ca in cas {
        // The authority's last certificate is its root; the others are intermediates.
        let Some((anchor_der, ca_inters)) = ca.cert_chain.split_last() else {
            continue;
        };
        let anchor_cert = CertificateDer::from(anchor_der.as_slice());
        let anchor = match webpki::anchor_from_trusted_cert(&anchor_cert) {
            Ok(a) => a.to_owned(),
            Err(e) => {
                last = format!("trust root certificate of {}: {e:?}", ca.uri);
                continue;
            }
        };
        let anchors = [anchor];
        let inters: Vec<CertificateDer<'_>> = rest
            .iter()
            .chain(ca_inters.iter())
            .map(|d| CertificateDer::from(d.as_slice()))
            .collect();
        match ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            &inters,
            time,
            webpki::KeyUsage::required(EKU_CODE_SIGNING),
            None,
            None,
        ) {
            Ok(path) => return Ok(path.issuer_spki().as_ref().to_vec()),
            Err(e) => last = format!("{e:?} (against {})", ca.uri),
        }
    }
    Err(fail(format!(
        "the signing certificate does not chain to a certificate authority of the trust root valid now, for code signing: {last}"
    )))
}

fn sct_fail(m: impl Into<String>) -> Error {
    SigningStep::CertificateSct.fail(m)
}

/// A reader over TLS-encoded bytes (RFC 5246 section 4).
struct Tls<'a>(&'a [u8]);

impl<'a> Tls<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        if self.0.len() < n {
            return Err(sct_fail("the SCT list is truncated"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<usize, Error> {
        let b = self.take(2)?;
        Ok(usize::from(u16::from_be_bytes([b[0], b[1]])))
    }
    fn vec16(&mut self) -> Result<&'a [u8], Error> {
        let n = self.u16()?;
        self.take(n)
    }
}

/// Verifies the leaf's one embedded SCT (RFC 6962 section 3.2, precertificate entry) against the
/// CT logs of the root.
fn check_sct(
    leaf: &x509_cert::Certificate,
    issuer_spki: &[u8],
    root: &TrustRoot,
) -> Result<(), Error> {
    let tbs = &leaf.tbs_certificate;
    let exts = tbs.extensions.as_deref().unwrap_or_default();
    let Some(ext) = exts.iter().find(|e| e.extn_id.to_string() == OID_SCT_LIST) else {
        return Err(sct_fail("the signing certificate has no embedded SCT"));
    };
    let list = OctetString::from_der(ext.extn_value.as_bytes())
        .map_err(|e| sct_fail(format!("the SCT extension is not an OCTET STRING: {e}")))?;
    let mut outer = Tls(list.as_bytes());
    let mut scts = Tls(outer.vec16()?);
    let mut all = Vec::new();
    while !scts.0.is_empty() {
        all.push(scts.vec16()?);
    }
    let [one] = all.as_slice() else {
        return Err(sct_fail(format!(
            "expected exactly one embedded SCT, found {}",
            all.len()
        )));
    };
    let mut r = Tls(one);
    if r.u8()? != 0 {
        return Err(sct_fail("unknown SCT version"));
    }
    let log_id = r.take(32)?;
    let ts_bytes = r.take(8)?;
    let extensions = r.vec16()?;
    let (hash_alg, sig_alg) = (r.u8()?, r.u8()?);
    let signature = r.vec16()?;
    // hash sha256 (4) with ecdsa (3); Sigstore's CT logs use ECDSA P-256.
    if (hash_alg, sig_alg) != (4, 3) {
        return Err(sct_fail(format!(
            "unsupported SCT signature algorithm (hash {hash_alg}, signature {sig_alg})"
        )));
    }
    let mut ts = [0u8; 8];
    ts.copy_from_slice(ts_bytes);
    let issued = UnixTime((u64::from_be_bytes(ts) / 1000) as i64);
    let Some(log) = root.ctlog_by_id(log_id) else {
        return Err(sct_fail(format!(
            "the SCT is from CT log {}, which the trust root does not list",
            hex::encode(log_id)
        )));
    };
    if !log.valid_for.contains(issued) {
        return Err(sct_fail(format!(
            "the SCT was issued at {issued}, outside the CT log key's validity"
        )));
    }
    if log.public_key.kind() != KeyKind::EcdsaP256 {
        return Err(sct_fail(format!(
            "CT log key kind {} is not supported for SCTs",
            log.public_key.kind()
        )));
    }
    // The precertificate TBS: the leaf's TBS without the SCT list extension.
    let mut pre = tbs.clone();
    if let Some(v) = pre.extensions.as_mut() {
        v.retain(|e| e.extn_id.to_string() != OID_SCT_LIST);
    }
    let pre_der = pre
        .to_der()
        .map_err(|e| sct_fail(format!("re-encoding the precertificate: {e}")))?;
    let issuer_key_hash = provenance_core::Digest::sha256_of(issuer_spki);
    let mut signed = Vec::with_capacity(pre_der.len() + 64);
    signed.push(0); // version v1
    signed.push(0); // signature_type certificate_timestamp
    signed.extend_from_slice(ts_bytes);
    signed.extend_from_slice(&1u16.to_be_bytes()); // entry_type precert_entry
    signed.extend_from_slice(issuer_key_hash.as_bytes());
    let len = u32::try_from(pre_der.len()).map_err(|_| sct_fail("precertificate too large"))?;
    signed.extend_from_slice(&len.to_be_bytes()[1..]);
    signed.extend_from_slice(&pre_der);
    signed.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
    signed.extend_from_slice(extensions);
    UnparsedPublicKey::new(&sig::ECDSA_P256_SHA256_ASN1, log.public_key.raw())
        .verify(&signed, signature)
        .map_err(|_| sct_fail("the SCT's signature does not verify with the CT log's key"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn conformance() -> Option<PathBuf> {
        let shared = std::env::var_os("PROVENANCE_SHARED")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
        let dir = shared.join("corpora/sigstore-conformance");
        if !dir.is_dir() {
            if std::env::var_os("CI").is_some() {
                panic!("{} is missing", dir.display());
            }
            eprintln!("SKIPPED: {} not found", dir.display());
            return None;
        }
        Some(dir)
    }

    fn leaf_of(bundle: &std::path::Path) -> Vec<u8> {
        let v: Value = serde_json::from_slice(&std::fs::read(bundle).unwrap()).unwrap();
        let b64 = v
            .pointer("/verificationMaterial/certificate/rawBytes")
            .and_then(Value::as_str)
            .unwrap();
        STANDARD.decode(b64).unwrap()
    }

    /// The chain and SCT checks on a real public-good Fulcio certificate (from the Sigstore
    /// conformance suite) against the production trusted root, at a time inside the
    /// certificate's validity.
    #[test]
    fn real_fulcio_certificate_passes_chain_and_sct_checks() {
        let Some(dir) = conformance() else { return };
        let root = TrustRoot::from_trusted_root_json(
            &std::fs::read(dir.join("production-trusted_root.json")).unwrap(),
        )
        .unwrap();
        let leaf_der = leaf_of(&dir.join("happy-path-v0.3/bundle.sigstore.json"));
        let leaf = x509_cert::Certificate::from_der(&leaf_der).unwrap();
        let at = UnixTime(
            leaf.tbs_certificate
                .validity
                .not_before
                .to_unix_duration()
                .as_secs() as i64
                + 60,
        );
        let issuer = check_chain(&leaf_der, &[], &root, at).unwrap();
        check_sct(&leaf, &issuer, &root).unwrap();
        let spki = leaf
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .unwrap();
        check_certificate(std::slice::from_ref(&leaf_der), &spki, &root, at).unwrap();

        // Another key asked for: refused before the chain is looked at.
        let e = check_certificate(std::slice::from_ref(&leaf_der), &issuer, &root, UnixTime(0))
            .unwrap_err();
        assert_eq!(e.code(), "oci.sign.certificate_key_mismatch");
        // Expired by now (Fulcio certificates live 10 minutes).
        let e = check_chain(&leaf_der, &[], &root, UnixTime(at.0 + 3600)).unwrap_err();
        assert_eq!(e.code(), "oci.sign.certificate_chain");
        // The SCT checked against another root's CT log key.
        let other = TrustRoot::from_trusted_root_json(
            &std::fs::read(dir.join("invalid-ct-key_fail/trusted_root.json")).unwrap(),
        )
        .unwrap();
        let e = check_sct(&leaf, &issuer, &other).unwrap_err();
        assert_eq!(e.code(), "oci.sign.certificate_sct");
        // The SCT bound to another issuer key.
        let e = check_sct(&leaf, &spki, &root).unwrap_err();
        assert_eq!(e.code(), "oci.sign.certificate_sct");
        assert!(e.to_string().contains("does not verify"), "{e}");
    }

    #[test]
    fn fulcio_answers_are_checked() {
        for (answer, want) in [
            (&b"not json"[..], "not JSON"),
            (br#"{}"#, "no signedCertificateEmbeddedSct"),
            (br#"{"signedCertificateDetachedSct":{}}"#, "detached SCT"),
            (
                br#"{"signedCertificateEmbeddedSct":{"chain":{"certificates":[]}}}"#,
                "empty",
            ),
            (
                br#"{"signedCertificateEmbeddedSct":{"chain":{"certificates":[1]}}}"#,
                "not a string",
            ),
            (
                br#"{"signedCertificateEmbeddedSct":{"chain":{"certificates":["-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"]}}}"#,
                "PUBLIC KEY",
            ),
        ] {
            let e = parse_answer(answer).unwrap_err();
            assert_eq!(e.code(), "oci.sign.fulcio_response");
            assert!(e.to_string().contains(want), "{e}");
        }
    }
}
