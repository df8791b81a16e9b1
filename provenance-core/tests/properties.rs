//! Property tests: reference print/parse round trips, digest streaming vs one-shot, and the
//! wildcard laws Kyverno's matching relies on.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use proptest::prelude::*;
use provenance_core::wildcard::wildcard_match;
use provenance_core::{Digest, DigestAlgorithm, ImageReference};

fn component() -> impl Strategy<Value = String> {
    "[a-z0-9]{1,8}([._-][a-z0-9]{1,8}){0,2}"
}

fn reference() -> impl Strategy<Value = String> {
    (
        prop::option::of((
            "[a-z]([a-z0-9-]{0,8}[a-z0-9])?\\.[a-z]{2,4}",
            prop::option::of(1u16..65535),
        )),
        prop::collection::vec(component(), 1..4),
        prop::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}"),
        prop::option::of(prop::array::uniform32(any::<u8>())),
    )
        .prop_map(|(domain, path, tag, digest)| {
            let mut s = String::new();
            if let Some((host, port)) = domain {
                s.push_str(&host);
                if let Some(p) = port {
                    s.push_str(&format!(":{p}"));
                }
                s.push('/');
            }
            s.push_str(&path.join("/"));
            if let Some(t) = tag {
                s.push(':');
                s.push_str(&t);
            }
            if let Some(d) = digest {
                s.push_str(&format!("@sha256:{}", hex::encode(d)));
            }
            s
        })
}

proptest! {
    #[test]
    fn normalized_references_round_trip(s in reference()) {
        let r = ImageReference::parse(&s).unwrap();
        let printed = r.to_string();
        prop_assert_eq!(ImageReference::parse(&printed).unwrap(), r.clone());
        prop_assert_eq!(ImageReference::parse_canonical(&printed).unwrap(), r.clone());
        // The familiar form names the same image.
        prop_assert_eq!(ImageReference::parse(&r.familiar_string()).unwrap(), r);
    }

    #[test]
    fn raw_parse_prints_its_input(s in reference()) {
        prop_assert_eq!(ImageReference::parse_raw(&s).unwrap().to_string(), s);
    }

    #[test]
    fn arbitrary_input_never_panics(s in ".{0,80}") {
        let _ = ImageReference::parse(&s);
        let _ = ImageReference::parse_any(&s);
        let _ = Digest::parse(&s);
    }

    #[test]
    fn streaming_equals_one_shot(data in prop::collection::vec(any::<u8>(), 0..5000), chunk in 1usize..700) {
        for alg in [DigestAlgorithm::Sha256, DigestAlgorithm::Sha512] {
            let one = Digest::compute(alg, &data);
            // A reader that returns short reads.
            struct Chunks<'a>(&'a [u8], usize);
            impl std::io::Read for Chunks<'_> {
                fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                    let n = self.0.len().min(self.1).min(buf.len());
                    buf[..n].copy_from_slice(&self.0[..n]);
                    self.0 = &self.0[n..];
                    Ok(n)
                }
            }
            let streamed = Digest::compute_reader(alg, Chunks(&data, chunk)).unwrap();
            prop_assert_eq!(&one, &streamed);
            prop_assert!(one.verify(&data).is_ok());
            prop_assert_eq!(Digest::parse(&one.to_string()).unwrap(), one);
        }
    }

    #[test]
    fn wildcard_laws(text in "[a-z/:.@0-9]{0,30}", a in "[a-z/]{0,5}", b in "[a-z:]{0,5}") {
        // Every text matches `*`, and itself.
        prop_assert!(wildcard_match("*", &text));
        prop_assert!(wildcard_match(&text, &text));
        // A prefix pattern matches exactly the texts with that prefix.
        let pat = format!("{a}*");
        prop_assert_eq!(wildcard_match(&pat, &text), text.starts_with(&a));
        // `*` in the middle: prefix and suffix, non-overlapping.
        let pat = format!("{a}*{b}");
        let expect = text.len() >= a.len() + b.len() && text.starts_with(&a) && text.ends_with(&b);
        prop_assert_eq!(wildcard_match(&pat, &text), expect);
        // `?` matches exactly one character.
        let q = "?".repeat(text.chars().count());
        prop_assert!(wildcard_match(&q, &text));
        let longer = format!("{q}?");
        prop_assert!(!wildcard_match(&longer, &text));
    }
}
