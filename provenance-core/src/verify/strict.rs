//! Checks added on top of `sigstore-verify`, found by the mutation test: material it accepted
//! although a field was altered. Each makes the verifier stricter; none relaxes anything.
//!
//! - Every log entry's `logId` must name a transparency log of the trust root.
//! - An inclusion proof's `rootHash` and `treeSize` must be the checkpoint's; for Rekor v2
//!   entries the proof's `logIndex` must be the entry's.
//! - An RFC 3161 timestamp must be well-formed throughout: a granted status, one signer, the
//!   signer's digest algorithm listed in `digestAlgorithms`, a known signature algorithm, a
//!   TSTInfo content type, and any embedded certificate must be one the trust root lists for a
//!   timestamp authority (embedded certificates are not signed, so an unknown one is refused
//!   rather than ignored).

use cms::content_info::ContentInfo;
use cms::signed_data::SignedData;
use const_oid::ObjectIdentifier;
use sigstore_verify::types::{Bundle, KindVersion};
use x509_cert::der::asn1::Any;
use x509_cert::der::{Decode, Encode, Tag, Tagged};

use super::check::Check;
use crate::error::Error;
use crate::trust_root::TrustRoot;

const OID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const OID_TST_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");
/// Signature algorithms a timestamp signer may use.
const SIGNATURE_ALGORITHMS: &[&str] = &[
    "1.2.840.10045.4.3.2",   // ecdsa-with-SHA256
    "1.2.840.10045.4.3.3",   // ecdsa-with-SHA384
    "1.2.840.10045.4.3.4",   // ecdsa-with-SHA512
    "1.2.840.10045.2.1",     // id-ecPublicKey (some TSAs write the key algorithm)
    "1.2.840.113549.1.1.1",  // rsaEncryption
    "1.2.840.113549.1.1.10", // RSASSA-PSS
    "1.2.840.113549.1.1.11", // sha256WithRSAEncryption
    "1.2.840.113549.1.1.12", // sha384WithRSAEncryption
    "1.2.840.113549.1.1.13", // sha512WithRSAEncryption
    "1.3.101.112",           // Ed25519
];

/// Log entries: known log ids, proofs consistent with their checkpoints.
pub(crate) fn check_log_entries(bundle: &Bundle, root: &TrustRoot) -> Result<(), Error> {
    for (i, e) in bundle.verification_material.tlog_entries.iter().enumerate() {
        if e.log_index.as_i64() < 0 {
            return Err(Check::TlogMalformed.fail(format!("tlogEntries[{i}]: negative log index")));
        }
        let id = e.log_id.key_id.as_bytes();
        if root.tlog_by_id(id).is_none() {
            return Err(Check::TlogUnknownLog.fail(format!(
                "tlogEntries[{i}]: log id {} is not a transparency log of the trust root",
                hex::encode(id)
            )));
        }
        let Some(proof) = &e.inclusion_proof else {
            continue;
        };
        if let Some(cp) = proof.checkpoint.checkpoint() {
            if cp.tree_size() != proof.tree_size {
                return Err(Check::TlogInclusionProof.fail(format!(
                    "tlogEntries[{i}]: proof tree size {} differs from the checkpoint's {}",
                    proof.tree_size,
                    cp.tree_size()
                )));
            }
            if cp.root_hash().as_bytes() != proof.root_hash.as_bytes() {
                return Err(Check::TlogInclusionProof.fail(format!(
                    "tlogEntries[{i}]: proof root hash differs from the checkpoint's"
                )));
            }
        }
        let rekor_v2 = !matches!(
            e.kind_version,
            KindVersion::HashedRekordV001 | KindVersion::DsseV001 | KindVersion::IntotoV002
        );
        if rekor_v2 && proof.log_index.as_i64() != e.log_index.as_i64() {
            return Err(Check::TlogInclusionProof.fail(format!(
                "tlogEntries[{i}]: proof log index {} differs from the entry's {}",
                proof.log_index.as_i64(),
                e.log_index.as_i64()
            )));
        }
        if proof.log_index.as_i64() < 0 || proof.log_index.as_i64() as u64 >= proof.tree_size {
            return Err(Check::TlogInclusionProof.fail(format!(
                "tlogEntries[{i}]: proof log index outside the tree"
            )));
        }
    }
    Ok(())
}

/// Structural checks of every RFC 3161 timestamp in the bundle.
pub(crate) fn check_timestamps(bundle: &Bundle, root: &TrustRoot) -> Result<(), Error> {
    for (i, t) in bundle
        .verification_material
        .timestamp_verification_data
        .rfc3161_timestamps
        .iter()
        .enumerate()
    {
        check_timestamp_token(t.signed_timestamp.as_bytes(), root)
            .map_err(|e| Check::Timestamp.fail(format!("rfc3161Timestamps[{i}]: {e}")))?;
    }
    Ok(())
}

/// `token` is a TimeStampResp (`SEQUENCE { status, token }`) or a bare TimeStampToken
/// (ContentInfo).
fn check_timestamp_token(token: &[u8], root: &TrustRoot) -> Result<(), String> {
    let outer: Vec<Any> = Vec::<Any>::from_der(token).map_err(|e| format!("not DER: {e}"))?;
    let ci_der = match outer.first().map(Tagged::tag) {
        Some(Tag::Sequence) => {
            // TimeStampResp: PKIStatusInfo { status INTEGER, ... } then the token.
            let status: Vec<Any> = outer[0]
                .decode_as()
                .map_err(|e| format!("bad PKIStatusInfo: {e}"))?;
            let code = status
                .first()
                .and_then(|s| s.decode_as::<u8>().ok())
                .ok_or("bad PKIStatus")?;
            if code > 1 {
                return Err(format!("timestamp request not granted (status {code})"));
            }
            if outer.len() != 2 {
                return Err("TimeStampResp without exactly one token".into());
            }
            outer[1].to_der().map_err(|e| e.to_string())?
        }
        Some(Tag::ObjectIdentifier) => token.to_vec(),
        _ => return Err("neither a TimeStampResp nor a TimeStampToken".into()),
    };
    let ci = ContentInfo::from_der(&ci_der).map_err(|e| format!("bad ContentInfo: {e}"))?;
    if ci.content_type != OID_SIGNED_DATA {
        return Err(format!(
            "content type {} is not signedData",
            ci.content_type
        ));
    }
    let sd: SignedData = ci
        .content
        .decode_as()
        .map_err(|e| format!("bad SignedData: {e}"))?;
    if sd.encap_content_info.econtent_type != OID_TST_INFO {
        return Err("encapsulated content is not a TSTInfo".into());
    }
    let signers = sd.signer_infos.0.as_slice();
    let [si] = signers else {
        return Err(format!("{} signers (exactly one expected)", signers.len()));
    };
    if !sd
        .digest_algorithms
        .iter()
        .any(|a| a.oid == si.digest_alg.oid)
    {
        return Err("the signer's digest algorithm is not among digestAlgorithms".into());
    }
    for a in sd.digest_algorithms.iter() {
        if !matches!(
            a.oid.to_string().as_str(),
            "2.16.840.1.101.3.4.2.1" | "2.16.840.1.101.3.4.2.2" | "2.16.840.1.101.3.4.2.3"
        ) {
            return Err(format!("unknown digest algorithm {}", a.oid));
        }
    }
    let sig_alg = si.signature_algorithm.oid.to_string();
    if !SIGNATURE_ALGORITHMS.contains(&sig_alg.as_str()) {
        return Err(format!("unknown signature algorithm {sig_alg}"));
    }
    if sd.crls.is_some() {
        return Err("embedded revocation information is not supported".into());
    }
    if let Some(certs) = &sd.certificates {
        for c in certs.0.iter() {
            let cms::cert::CertificateChoices::Certificate(cert) = c else {
                return Err("embedded non-X.509 certificate".into());
            };
            let der = cert.to_der().map_err(|e| e.to_string())?;
            let trusted = root
                .timestamp_authorities
                .iter()
                .any(|ca| ca.cert_chain.contains(&der));
            if !trusted {
                return Err(
                    "embedded certificate is not one of the trust root's timestamp authority certificates"
                        .into(),
                );
            }
        }
    }
    Ok(())
}
