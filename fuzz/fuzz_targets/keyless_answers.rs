//! What keyless signing reads from the network: identity tokens, Fulcio's and Rekor's answers,
//! and Fulcio certificates through the chain and SCT checks. Never a panic; a fuzzed Fulcio
//! answer never passes the checks for a key it cannot know.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use provenance_core::verify::PUBLIC_GOOD_TRUSTED_ROOT;
use provenance_core::{TrustRoot, UnixTime};
use provenance_oci::keyless::{
    IdentityToken, check_fulcio_certificate, parse_fulcio_answer, rekor_answer_to_tlog_entry,
};

fn root() -> &'static TrustRoot {
    static R: OnceLock<TrustRoot> = OnceLock::new();
    R.get_or_init(|| TrustRoot::from_trusted_root_json(PUBLIC_GOOD_TRUSTED_ROOT).expect("embedded root"))
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(t) = IdentityToken::parse(text) {
            let _ = t.challenge();
        }
    }
    let _ = rekor_answer_to_tlog_entry(data);
    if let Ok(chain) = parse_fulcio_answer(data) {
        let r = check_fulcio_certificate(&chain, b"", root(), UnixTime(1_800_000_000));
        assert!(r.is_err(), "fuzzed Fulcio answer passed");
    }
    // The input as a DER leaf certificate asked for its own key, inside its validity: reaches
    // the chain check and, for certificates that chain to the public-good Fulcio (the seeds),
    // the SCT parser. A pass is possible only for a genuine certificate.
    use x509_cert::der::{Decode, Encode};
    if let Ok(cert) = x509_cert::Certificate::from_der(data) {
        let tbs = &cert.tbs_certificate;
        if let Ok(spki) = tbs.subject_public_key_info.to_der() {
            let at = tbs.validity.not_before.to_unix_duration().as_secs() as i64 + 1;
            let _ = check_fulcio_certificate(&[data.to_vec()], &spki, root(), UnixTime(at));
        }
    }
});
