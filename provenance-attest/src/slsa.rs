//! SLSA provenance v0.1, v0.2 and v1, and SLSA verification summary attestations (VSA) v1.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Format};
use crate::json::{self, Limits, null_default};
use crate::statement::{DigestSet, ResourceDescriptor};

/// Predicate type of SLSA provenance v0.1.
pub const SLSA_PROVENANCE_V01: &str = "https://slsa.dev/provenance/v0.1";
/// Predicate type of SLSA provenance v0.2.
pub const SLSA_PROVENANCE_V02: &str = "https://slsa.dev/provenance/v0.2";
/// Predicate type of SLSA provenance v1.
pub const SLSA_PROVENANCE_V1: &str = "https://slsa.dev/provenance/v1";
/// Predicate type of a SLSA verification summary attestation v1.
pub const SLSA_VSA_V1: &str = "https://slsa.dev/verification_summary/v1";

/// A builder identity (`builder` in v0.x, `runDetails.builder` in v1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Builder {
    /// URI identifying the builder; what policies trust.
    #[serde(default)]
    pub id: String,
    /// Version of the builder's components (v1).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub version: BTreeMap<String, String>,
    /// Dependencies of the builder itself (v1).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub builder_dependencies: Vec<ResourceDescriptor>,
}

/// A material of a v0.x build: a URI and a digest set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[non_exhaustive]
pub struct Material {
    /// Where the material came from (`git+https://...@ref`).
    #[serde(default)]
    pub uri: String,
    /// Its digests.
    #[serde(default, deserialize_with = "null_default")]
    pub digest: DigestSet,
}

/// Which parts of a v0.x build record are complete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[non_exhaustive]
pub struct Completeness {
    /// `parameters` (v0.2) or `arguments` (v0.1) are complete.
    #[serde(default, alias = "arguments")]
    pub parameters: bool,
    /// `environment` is complete.
    #[serde(default)]
    pub environment: bool,
    /// `materials` are complete.
    #[serde(default)]
    pub materials: bool,
}

/// Build metadata of v0.x provenance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct MetadataV0 {
    /// Identifier of this build invocation.
    #[serde(default)]
    pub build_invocation_id: Option<String>,
    /// RFC 3339 start time, as written.
    #[serde(default)]
    pub build_started_on: Option<String>,
    /// RFC 3339 finish time, as written.
    #[serde(default)]
    pub build_finished_on: Option<String>,
    /// Completeness claims.
    #[serde(default, deserialize_with = "null_default")]
    pub completeness: Completeness,
    /// Whether the builder claims reproducibility.
    #[serde(default)]
    pub reproducible: bool,
}

/// `invocation.configSource` of v0.2.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ConfigSource {
    /// URI of the build configuration's source.
    #[serde(default)]
    pub uri: String,
    /// Its digests.
    #[serde(default, deserialize_with = "null_default")]
    pub digest: DigestSet,
    /// Entry point within the source (a workflow file, a target).
    #[serde(default)]
    pub entry_point: String,
}

/// `invocation` of v0.2: what started the build.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Invocation {
    /// Where the build configuration came from.
    #[serde(default, deserialize_with = "null_default")]
    pub config_source: ConfigSource,
    /// User-controlled parameters.
    #[serde(default)]
    pub parameters: Value,
    /// Builder-controlled environment.
    #[serde(default)]
    pub environment: Value,
}

/// SLSA provenance v0.2 (`https://slsa.dev/provenance/v0.2`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ProvenanceV02 {
    /// The builder.
    #[serde(default, deserialize_with = "null_default")]
    pub builder: Builder,
    /// URI of the build type (how to read `invocation` and `buildConfig`).
    #[serde(default)]
    pub build_type: String,
    /// What started the build.
    #[serde(default, deserialize_with = "null_default")]
    pub invocation: Invocation,
    /// Build steps, builder-specific.
    #[serde(default)]
    pub build_config: Value,
    /// Timing and completeness.
    #[serde(default, deserialize_with = "null_default")]
    pub metadata: MetadataV0,
    /// Inputs of the build.
    #[serde(default, deserialize_with = "null_default")]
    pub materials: Vec<Material>,
}

/// `recipe` of v0.1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Recipe {
    /// URI of the recipe type (the v0.1 build type).
    #[serde(default, rename = "type")]
    pub recipe_type: String,
    /// Index into `materials` of the recipe's definition.
    #[serde(default)]
    pub defined_in_material: Option<u64>,
    /// Entry point.
    #[serde(default)]
    pub entry_point: Option<String>,
    /// Arguments.
    #[serde(default)]
    pub arguments: Value,
    /// Environment.
    #[serde(default)]
    pub environment: Value,
}

/// SLSA provenance v0.1 (`https://slsa.dev/provenance/v0.1`), as Cloud Build still emits it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ProvenanceV01 {
    /// The builder.
    #[serde(default, deserialize_with = "null_default")]
    pub builder: Builder,
    /// The recipe.
    #[serde(default, deserialize_with = "null_default")]
    pub recipe: Recipe,
    /// Timing and completeness.
    #[serde(default, deserialize_with = "null_default")]
    pub metadata: MetadataV0,
    /// Inputs of the build.
    #[serde(default, deserialize_with = "null_default")]
    pub materials: Vec<Material>,
}

/// `buildDefinition` of v1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct BuildDefinition {
    /// URI of the build type.
    #[serde(default)]
    pub build_type: String,
    /// Parameters under external control (what policies usually check: repository, ref, workflow).
    #[serde(default)]
    pub external_parameters: Value,
    /// Parameters under the builder's control.
    #[serde(default)]
    pub internal_parameters: Value,
    /// Inputs of the build.
    #[serde(default, deserialize_with = "null_default")]
    pub resolved_dependencies: Vec<ResourceDescriptor>,
}

/// `runDetails.metadata` of v1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct BuildMetadata {
    /// Identifier of this build invocation.
    #[serde(default)]
    pub invocation_id: Option<String>,
    /// RFC 3339 start time, as written.
    #[serde(default)]
    pub started_on: Option<String>,
    /// RFC 3339 finish time, as written.
    #[serde(default)]
    pub finished_on: Option<String>,
}

/// `runDetails` of v1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct RunDetails {
    /// The builder.
    #[serde(default, deserialize_with = "null_default")]
    pub builder: Builder,
    /// Timing.
    #[serde(default, deserialize_with = "null_default")]
    pub metadata: BuildMetadata,
    /// Additional artifacts of the build (logs, SBOMs).
    #[serde(default, deserialize_with = "null_default")]
    pub byproducts: Vec<ResourceDescriptor>,
}

/// SLSA provenance v1 (`https://slsa.dev/provenance/v1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ProvenanceV1 {
    /// What was built and from what.
    #[serde(default, deserialize_with = "null_default")]
    pub build_definition: BuildDefinition,
    /// Who built it and when.
    #[serde(default, deserialize_with = "null_default")]
    pub run_details: RunDetails,
}

fn required(format: Format, path: &str, value: &str) -> Result<(), Error> {
    if value.is_empty() {
        return Err(Error::MissingField {
            format,
            path: path.to_owned(),
        });
    }
    Ok(())
}

impl ProvenanceV01 {
    /// Parses and checks a v0.1 predicate (`builder.id` and `recipe.type` are required).
    pub fn from_value(value: &Value, limits: &Limits) -> Result<Self, Error> {
        let f = Format::SlsaProvenance;
        json::check_value_depth(f, value, limits)?;
        let p: Self = json::from_value(f, value)?;
        required(f, "builder.id", &p.builder.id)?;
        required(f, "recipe.type", &p.recipe.recipe_type)?;
        limits.check_count(f, "materials", p.materials.len())?;
        Ok(p)
    }
}

impl ProvenanceV02 {
    /// Parses and checks a v0.2 predicate (`builder.id` and `buildType` are required).
    pub fn from_value(value: &Value, limits: &Limits) -> Result<Self, Error> {
        let f = Format::SlsaProvenance;
        json::check_value_depth(f, value, limits)?;
        let p: Self = json::from_value(f, value)?;
        required(f, "builder.id", &p.builder.id)?;
        required(f, "buildType", &p.build_type)?;
        limits.check_count(f, "materials", p.materials.len())?;
        Ok(p)
    }
}

impl ProvenanceV1 {
    /// Parses and checks a v1 predicate (`buildDefinition.buildType`,
    /// `buildDefinition.externalParameters` (an object) and `runDetails.builder.id` are
    /// required).
    ///
    /// ```
    /// use provenance_attest::slsa::ProvenanceV1;
    /// let v = serde_json::json!({
    ///   "buildDefinition": {"buildType": "https://example.com/t", "externalParameters": {}},
    ///   "runDetails": {"builder": {"id": "https://example.com/builder"}}});
    /// let p = ProvenanceV1::from_value(&v, &Default::default()).unwrap();
    /// assert_eq!(p.run_details.builder.id, "https://example.com/builder");
    /// ```
    pub fn from_value(value: &Value, limits: &Limits) -> Result<Self, Error> {
        let f = Format::SlsaProvenance;
        json::check_value_depth(f, value, limits)?;
        let p: Self = json::from_value(f, value)?;
        required(
            f,
            "buildDefinition.buildType",
            &p.build_definition.build_type,
        )?;
        required(f, "runDetails.builder.id", &p.run_details.builder.id)?;
        // SLSA v1 requires externalParameters, an object: what policies check the source by.
        if !p.build_definition.external_parameters.is_object() {
            return Err(Error::Schema {
                format: f,
                path: "buildDefinition.externalParameters".into(),
                message: "required, must be an object".into(),
            });
        }
        limits.check_count(
            f,
            "buildDefinition.resolvedDependencies",
            p.build_definition.resolved_dependencies.len(),
        )?;
        Ok(p)
    }
}

/// Any version of SLSA provenance, with accessors for what policies ask most.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Provenance {
    /// v0.1.
    V01(ProvenanceV01),
    /// v0.2.
    V02(ProvenanceV02),
    /// v1.
    V1(ProvenanceV1),
}

impl Provenance {
    /// The builder id.
    pub fn builder_id(&self) -> &str {
        match self {
            Provenance::V01(p) => &p.builder.id,
            Provenance::V02(p) => &p.builder.id,
            Provenance::V1(p) => &p.run_details.builder.id,
        }
    }

    /// The build type (`recipe.type` in v0.1).
    pub fn build_type(&self) -> &str {
        match self {
            Provenance::V01(p) => &p.recipe.recipe_type,
            Provenance::V02(p) => &p.build_type,
            Provenance::V1(p) => &p.build_definition.build_type,
        }
    }

    /// The inputs of the build as (uri, digest set) pairs: materials or resolved dependencies.
    pub fn inputs(&self) -> Vec<(&str, &DigestSet)> {
        match self {
            Provenance::V01(p) => p
                .materials
                .iter()
                .map(|m| (m.uri.as_str(), &m.digest))
                .collect(),
            Provenance::V02(p) => p
                .materials
                .iter()
                .map(|m| (m.uri.as_str(), &m.digest))
                .collect(),
            Provenance::V1(p) => p
                .build_definition
                .resolved_dependencies
                .iter()
                .map(|d| (d.uri.as_deref().unwrap_or_default(), &d.digest))
                .collect(),
        }
    }
}

/// Result of a verification recorded in a VSA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum VerificationResult {
    /// The artifact passed the verifier's policy.
    #[serde(rename = "PASSED")]
    Passed,
    /// The artifact failed it.
    #[serde(rename = "FAILED")]
    Failed,
}

/// The verifier of a VSA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[non_exhaustive]
pub struct Verifier {
    /// URI identifying the verifier.
    #[serde(default)]
    pub id: String,
    /// Versions of the verifier's components.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub version: BTreeMap<String, String>,
}

/// SLSA verification summary attestation v1 (`https://slsa.dev/verification_summary/v1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct VsaV1 {
    /// Who verified.
    #[serde(default)]
    pub verifier: Verifier,
    /// When, RFC 3339 as written.
    #[serde(default)]
    pub time_verified: Option<String>,
    /// URI of the artifact that was verified.
    #[serde(default)]
    pub resource_uri: String,
    /// The policy applied.
    #[serde(default)]
    pub policy: Option<ResourceDescriptor>,
    /// Attestations the verifier looked at.
    #[serde(default, deserialize_with = "null_default")]
    pub input_attestations: Vec<ResourceDescriptor>,
    /// PASSED or FAILED (required; absent is an error, never a pass).
    #[serde(default)]
    pub verification_result: Option<VerificationResult>,
    /// Levels verified (`SLSA_BUILD_LEVEL_3`, ...).
    #[serde(default, deserialize_with = "null_default")]
    pub verified_levels: Vec<String>,
    /// Levels of dependencies: level name to count.
    #[serde(default, deserialize_with = "null_default")]
    pub dependency_levels: BTreeMap<String, u64>,
    /// SLSA version the levels refer to.
    #[serde(default)]
    pub slsa_version: Option<String>,
}

impl VsaV1 {
    /// Parses and checks a VSA v1 predicate (`verifier.id`, `resourceUri` and
    /// `verificationResult` are required).
    pub fn from_value(value: &Value, limits: &Limits) -> Result<Self, Error> {
        let f = Format::SlsaVsa;
        json::check_value_depth(f, value, limits)?;
        let p: Self = json::from_value(f, value)?;
        required(f, "verifier.id", &p.verifier.id)?;
        required(f, "resourceUri", &p.resource_uri)?;
        if p.verification_result.is_none() {
            return Err(Error::MissingField {
                format: f,
                path: "verificationResult".into(),
            });
        }
        limits.check_count(f, "inputAttestations", p.input_attestations.len())?;
        Ok(p)
    }

    /// Whether the VSA says PASSED.
    pub fn passed(&self) -> bool {
        self.verification_result == Some(VerificationResult::Passed)
    }
}
