//! Producing attestations: in-toto Statements, predicates (SLSA provenance v1 for a build or a
//! training run, the model card, dataset provenance) and signed DSSE envelopes.
//!
//! Every builder checks its output with the same parser the verifier uses, so a predicate that
//! is produced here is one the policies can read: producer and verifier cannot drift apart.
//!
//! ```
//! use provenance_attest::build::{SlsaProvenanceBuilder, resource, sign_statement, statement};
//! use provenance_attest::{Limits, slsa::SLSA_PROVENANCE_V1};
//! use provenance_core::sign::{KeyAlgorithm, SigningKey};
//! use provenance_core::{Digest, UnixTime};
//!
//! let model = Digest::sha256_of(b"model weights");
//! let predicate = SlsaProvenanceBuilder::new(
//!         "https://ci.example.com/trainer", "https://example.com/training/v1")
//!     .external_parameter("epochs", 3)
//!     .dataset("s3://data/train.parquet", &Digest::sha256_of(b"data"))
//!     .base_model("meta-llama/Llama-3.1-8B", &Digest::sha256_of(b"base"))
//!     .started_on(UnixTime(1_800_000_000))
//!     .build()
//!     .unwrap();
//! let st = statement(vec![resource("model", &model)], SLSA_PROVENANCE_V1, predicate).unwrap();
//! let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
//! let envelope = sign_statement(&st, &key).unwrap();
//! assert_eq!(envelope.statement(&Limits::default()).unwrap(), st);
//! ```

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use provenance_core::sign::Signer;
use provenance_core::{Digest, UnixTime};
use serde_json::{Map, Value, json};

use crate::croissant::{DATASET_PROVENANCE_V1, DatasetProvenance};
use crate::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE, Signature};
use crate::error::Error;
use crate::json::Limits;
use crate::modelcard::{MODEL_CARD_V1, ModelCard};
use crate::predicate::Predicate;
use crate::slsa::{ProvenanceV1, SLSA_PROVENANCE_V1};
use crate::statement::{ResourceDescriptor, Statement, StatementVersion};

/// A resource descriptor (a Statement subject or a dependency) named `name` with `digest`.
pub fn resource(name: &str, digest: &Digest) -> ResourceDescriptor {
    let mut r = ResourceDescriptor::default();
    if !name.is_empty() {
        r.name = Some(name.to_owned());
    }
    r.digest
        .insert(digest.algorithm().as_str().to_owned(), digest.hex());
    r
}

/// An in-toto Statement v1 over `subjects`. The predicate is checked first by this crate's
/// parser for its type when the type is one it knows (SLSA, model card, dataset provenance,
/// SPDX, CycloneDX, ...); other types are taken as any JSON object.
pub fn statement(
    subjects: Vec<ResourceDescriptor>,
    predicate_type: &str,
    predicate: Value,
) -> Result<Statement, Error> {
    let limits = Limits::default();
    Predicate::parse(predicate_type, predicate.clone(), &limits)?;
    Statement::new(
        StatementVersion::V1,
        subjects,
        predicate_type,
        predicate,
        &limits,
    )
}

fn signing_error(e: provenance_core::Error) -> Error {
    Error::Signing {
        code: e.code(),
        message: e.to_string(),
    }
}

/// Signs `payload` of `payload_type` into a DSSE envelope with one signature.
pub fn sign_envelope(
    payload_type: &str,
    payload: &[u8],
    signer: &dyn Signer,
) -> Result<Envelope, Error> {
    let sig = signer
        .sign(&crate::dsse::pae(payload_type, payload))
        .map_err(signing_error)?;
    Ok(Envelope {
        payload_type: payload_type.to_owned(),
        payload: payload.to_vec(),
        signatures: vec![Signature {
            keyid: String::new(),
            sig: STANDARD.encode(sig),
        }],
    })
}

/// Signs a Statement (as JSON, `application/vnd.in-toto+json`) into a DSSE envelope.
pub fn sign_statement(statement: &Statement, signer: &dyn Signer) -> Result<Envelope, Error> {
    sign_envelope(IN_TOTO_PAYLOAD_TYPE, &statement.to_json(), signer)
}

impl Envelope {
    /// The envelope as DSSE JSON (`payloadType`, base64 `payload`, `signatures`), as cosign
    /// stores it in an attestation layer.
    pub fn to_json(&self) -> Vec<u8> {
        let sigs: Vec<Value> = self
            .signatures
            .iter()
            .map(|s| json!({ "keyid": s.keyid, "sig": s.sig }))
            .collect();
        serde_json::to_vec(&json!({
            "payloadType": self.payload_type,
            "payload": STANDARD.encode(&self.payload),
            "signatures": sigs,
        }))
        .unwrap_or_default()
    }
}

/// Builds a SLSA provenance v1 predicate (`https://slsa.dev/provenance/v1`) for a build or a
/// training run: who ran it (`runDetails.builder.id`, what policies trust), how
/// (`buildDefinition.buildType`, external and internal parameters) and from what
/// (`resolvedDependencies`: sources, datasets, base models, each with digests).
#[derive(Debug, Clone)]
pub struct SlsaProvenanceBuilder {
    builder_id: String,
    build_type: String,
    external: Map<String, Value>,
    internal: Map<String, Value>,
    dependencies: Vec<ResourceDescriptor>,
    byproducts: Vec<ResourceDescriptor>,
    invocation_id: Option<String>,
    started_on: Option<UnixTime>,
    finished_on: Option<UnixTime>,
}

impl SlsaProvenanceBuilder {
    /// A predicate for a run by `builder_id` of `build_type`.
    pub fn new(builder_id: &str, build_type: &str) -> Self {
        SlsaProvenanceBuilder {
            builder_id: builder_id.to_owned(),
            build_type: build_type.to_owned(),
            external: Map::new(),
            internal: Map::new(),
            dependencies: Vec::new(),
            byproducts: Vec::new(),
            invocation_id: None,
            started_on: None,
            finished_on: None,
        }
    }

    /// Adds `buildDefinition.externalParameters[key]` (inputs under the requester's control:
    /// repository, workflow, hyperparameters).
    pub fn external_parameter(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.external.insert(key.to_owned(), value.into());
        self
    }

    /// Adds `buildDefinition.internalParameters[key]` (set by the builder).
    pub fn internal_parameter(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.internal.insert(key.to_owned(), value.into());
        self
    }

    /// Adds a resolved dependency.
    pub fn dependency(mut self, dependency: ResourceDescriptor) -> Self {
        self.dependencies.push(dependency);
        self
    }

    fn typed(mut self, uri: &str, digest: &Digest, kind: &str) -> Self {
        let mut r = resource("", digest);
        r.uri = Some(uri.to_owned());
        r.annotations = Some(json!({ "kind": kind }));
        self.dependencies.push(r);
        self
    }

    /// Adds a dataset the run consumed (a resolved dependency annotated `kind: dataset`).
    pub fn dataset(self, uri: &str, digest: &Digest) -> Self {
        self.typed(uri, digest, "dataset")
    }

    /// Adds the base model a training run started from (annotated `kind: base-model`).
    pub fn base_model(self, uri: &str, digest: &Digest) -> Self {
        self.typed(uri, digest, "base-model")
    }

    /// Adds a byproduct (logs, SBOM).
    pub fn byproduct(mut self, byproduct: ResourceDescriptor) -> Self {
        self.byproducts.push(byproduct);
        self
    }

    /// Sets `runDetails.metadata.invocationId`.
    pub fn invocation_id(mut self, id: &str) -> Self {
        self.invocation_id = Some(id.to_owned());
        self
    }

    /// Sets `runDetails.metadata.startedOn`.
    pub fn started_on(mut self, t: UnixTime) -> Self {
        self.started_on = Some(t);
        self
    }

    /// Sets `runDetails.metadata.finishedOn`.
    pub fn finished_on(mut self, t: UnixTime) -> Self {
        self.finished_on = Some(t);
        self
    }

    /// The predicate JSON, checked by [`ProvenanceV1::from_value`].
    pub fn build(self) -> Result<Value, Error> {
        let mut metadata = Map::new();
        if let Some(i) = self.invocation_id {
            metadata.insert("invocationId".into(), i.into());
        }
        if let Some(t) = self.started_on {
            metadata.insert("startedOn".into(), t.to_string().into());
        }
        if let Some(t) = self.finished_on {
            metadata.insert("finishedOn".into(), t.to_string().into());
        }
        let mut run = json!({ "builder": { "id": self.builder_id } });
        if !metadata.is_empty() {
            run["metadata"] = Value::Object(metadata);
        }
        if !self.byproducts.is_empty() {
            run["byproducts"] = json!(self.byproducts);
        }
        let mut def = json!({
            "buildType": self.build_type,
            "externalParameters": Value::Object(self.external),
        });
        if !self.internal.is_empty() {
            def["internalParameters"] = Value::Object(self.internal);
        }
        if !self.dependencies.is_empty() {
            def["resolvedDependencies"] = json!(self.dependencies);
        }
        let v = json!({ "buildDefinition": def, "runDetails": run });
        ProvenanceV1::from_value(&v, &Limits::default())?;
        Predicate::parse(SLSA_PROVENANCE_V1, v.clone(), &Limits::default())?;
        Ok(v)
    }
}

/// The model-card predicate (`https://mlcommons.org/model-card/v1`, see
/// `docs/model-card-predicate.md`) for `card`, checked by [`ModelCard::from_value`].
pub fn model_card_predicate(card: &ModelCard) -> Result<Value, Error> {
    let v = card.to_value();
    Predicate::parse(MODEL_CARD_V1, v.clone(), &Limits::default())?;
    Ok(v)
}

/// The dataset provenance predicate for `dataset`, checked by
/// [`DatasetProvenance::from_value`].
pub fn dataset_predicate(dataset: &DatasetProvenance) -> Result<Value, Error> {
    let v = serde_json::to_value(dataset).map_err(|e| Error::Unrecognized {
        reason: e.to_string(),
    })?;
    Predicate::parse(DATASET_PROVENANCE_V1, v.clone(), &Limits::default())?;
    Ok(v)
}
