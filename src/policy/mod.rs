//! The artifact-type policy: which manifests berth accepts, from Quay's configuration keys.
//!
//! Quay checks a layer's media type against the union of every listed type. berth checks pairs:
//! a manifest is accepted when its config media type (or, for an OCI 1.1 artifact, its
//! `artifactType`) is an allowed key and every layer's media type is allowed with that key.
//! The allowed pairs are berth's built-in defaults (unless `DEFAULT_OCI_ARTIFACT_TYPES` is
//! false) plus what `ALLOWED_OCI_ARTIFACT_TYPES` lists, as Quay's configured map adds to its
//! built-in types, plus the Helm chart types while `FEATURE_HELM_OCI_SUPPORT` is on.
//! Container images are always accepted, and for the OCI image config the image layer types
//! stay allowed beside the listed ones, so a partly encrypted image works.
//! Indexes are accepted when their children are (berth stores an index only once every child is
//! stored, and each child passed this check when it was pushed); an index with an
//! `artifactType` also needs that type to be a key.
//!
//! The policy is a pure value built from settings; it is checked at manifest push only, so what
//! was accepted before a configuration change stays readable.

use std::collections::{BTreeMap, BTreeSet};

use oci::media_type::{self as mt, HELM_CONFIG, OCI_IMAGE_CONFIG};
use oci::ParsedManifest;

/// The policy's inputs, as configured (Quay's keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySettings {
    /// `FEATURE_GENERAL_OCI_SUPPORT`: when false, only container images are accepted.
    pub general_oci_support: bool,
    /// `FEATURE_HELM_OCI_SUPPORT`: Helm charts allowed even when the map omits them.
    pub helm_oci_support: bool,
    /// `DEFAULT_OCI_ARTIFACT_TYPES`: berth's built-in pairs ([`default_allowed_types`]) are
    /// allowed beside the configured ones; when false only the configured map (and Helm, while
    /// `FEATURE_HELM_OCI_SUPPORT` is on) applies.
    pub default_artifact_types: bool,
    /// `ALLOWED_OCI_ARTIFACT_TYPES`: config (or artifact) type to allowed layer types, added to
    /// the defaults. `None` when the key is not set.
    pub allowed_artifact_types: Option<BTreeMap<String, Vec<String>>>,
    /// `IGNORE_UNKNOWN_MEDIATYPES`: accept every artifact type (the policy is off).
    pub ignore_unknown_mediatypes: bool,
}

impl Default for PolicySettings {
    fn default() -> Self {
        PolicySettings {
            general_oci_support: true,
            helm_oci_support: true,
            default_artifact_types: true,
            allowed_artifact_types: None,
            ignore_unknown_mediatypes: false,
        }
    }
}

/// berth's built-in pairs, allowed unless `DEFAULT_OCI_ARTIFACT_TYPES` is false: cosign
/// signatures and attestations, Notary Project signatures, SBOMs and sigstore bundles. Helm
/// charts come from `FEATURE_HELM_OCI_SUPPORT` instead. Encrypted layers are not among them, as
/// in Quay.
pub fn default_allowed_types() -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut add = |key: &str, layers: &[&str]| {
        map.entry(key.to_string())
            .or_default()
            .extend(layers.iter().map(|s| s.to_string()));
    };
    // Tag-scheme cosign artifacts (`sha256-<hex>.sig|.att|.sbom`) use the OCI image config.
    add(
        OCI_IMAGE_CONFIG,
        &[mt::COSIGN_SIMPLESIGNING, mt::DSSE_ENVELOPE, mt::IN_TOTO],
    );
    add(OCI_IMAGE_CONFIG, mt::SBOM_TYPES);
    // OCI 1.1 referrers carry an empty config and say what they are in `artifactType`.
    add(mt::COSIGN_SIG_ARTIFACT, &[mt::COSIGN_SIMPLESIGNING]);
    add(mt::SIGSTORE_BUNDLE, &[mt::SIGSTORE_BUNDLE]);
    add(mt::NOTARY_SIGNATURE, mt::NOTARY_ENVELOPE_TYPES);
    add(mt::DSSE_ENVELOPE, &[mt::DSSE_ENVELOPE]);
    add(mt::IN_TOTO, &[mt::IN_TOTO, mt::DSSE_ENVELOPE]);
    for sbom in mt::SBOM_TYPES {
        add(sbom, mt::SBOM_TYPES);
    }
    map
}

/// Where an allowed pair comes from, as `berth config check` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PairSource {
    /// berth's built-in defaults (`DEFAULT_OCI_ARTIFACT_TYPES`).
    BerthDefault,
    /// The operator's `ALLOWED_OCI_ARTIFACT_TYPES`.
    Configured,
    /// `FEATURE_HELM_OCI_SUPPORT`.
    HelmSupport,
    /// The container image layer types, allowed beside any type listed with the OCI image config.
    ImageLayers,
}

impl PairSource {
    /// The name shown to operators.
    pub fn as_str(self) -> &'static str {
        match self {
            PairSource::BerthDefault => "berth default",
            PairSource::Configured => "ALLOWED_OCI_ARTIFACT_TYPES",
            PairSource::HelmSupport => "FEATURE_HELM_OCI_SUPPORT",
            PairSource::ImageLayers => "image layers beside the OCI image config's list",
        }
    }
}

/// One allowed key: where the key comes from and its layer types with theirs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct AllowedKey {
    sources: BTreeSet<PairSource>,
    layers: BTreeMap<String, BTreeSet<PairSource>>,
}

/// Why a manifest was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The media type that caused the refusal: a layer's when a layer is not allowed, otherwise
    /// the artifact or config type that is no key.
    pub refused: String,
    /// Whether `refused` is a layer's media type.
    pub refused_is_layer: bool,
    /// The config media type the manifest came with.
    pub config_media_type: String,
    /// The manifest's `artifactType`, if any.
    pub artifact_type: Option<String>,
    /// What to add to the config file to allow it; `None` when no config can (general OCI
    /// support is off).
    pub yaml: Option<String>,
    /// Whether berth's defaults are off (`DEFAULT_OCI_ARTIFACT_TYPES: false`).
    pub defaults_off: bool,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.refused_is_layer {
            write!(
                f,
                "layer media type {} is not allowed with config media type {}",
                self.refused, self.config_media_type
            )?;
            if let Some(t) = &self.artifact_type {
                write!(f, " (artifactType {t})")?;
            }
        } else {
            write!(f, "artifact type {} is not allowed", self.refused)?;
        }
        match &self.yaml {
            None => write!(
                f,
                "; only container images are accepted (FEATURE_GENERAL_OCI_SUPPORT is false)"
            ),
            Some(yaml) => {
                write!(f, "; to allow it, add to the config file:\n{yaml}")?;
                if self.defaults_off {
                    write!(f, "(DEFAULT_OCI_ARTIFACT_TYPES is false: berth's built-in types are off; `berth config check` shows the pairs in force)")?;
                }
                Ok(())
            }
        }
    }
}

/// The effective policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactPolicy {
    settings: PolicySettings,
    allowed: BTreeMap<String, AllowedKey>,
}

impl Default for ArtifactPolicy {
    fn default() -> Self {
        ArtifactPolicy::new(PolicySettings::default())
    }
}

fn is_container_image(m: &ParsedManifest) -> bool {
    let Some(config) = &m.config else {
        return false;
    };
    m.artifact_type.is_none()
        && mt::IMAGE_CONFIG_TYPES.contains(&config.media_type.as_str())
        && m.layers
            .iter()
            .all(|l| mt::IMAGE_LAYER_TYPES.contains(&l.media_type.as_str()))
}

/// The type that makes `m` (a manifest that is not a container image) more than an image: its
/// `artifactType`; for an image config, the first layer that is no image layer; otherwise the
/// config type. Returns the type, the key it would be allowed under, and whether it is a layer.
fn what_is_not_an_image(m: &ParsedManifest) -> (&str, &str, bool) {
    let config = m.config.as_ref().map_or("", |c| c.media_type.as_str());
    if let Some(t) = m.artifact_type.as_deref() {
        return (t, t, false);
    }
    if mt::IMAGE_CONFIG_TYPES.contains(&config) {
        if let Some(layer) = m
            .layers
            .iter()
            .find(|l| !mt::IMAGE_LAYER_TYPES.contains(&l.media_type.as_str()))
        {
            return (layer.media_type.as_str(), config, true);
        }
    }
    (config, config, false)
}

impl ArtifactPolicy {
    /// Builds the effective policy: berth's defaults (unless turned off), the configured map and
    /// the Helm types, merged key by key.
    pub fn new(settings: PolicySettings) -> Self {
        let mut allowed: BTreeMap<String, AllowedKey> = BTreeMap::new();
        let mut add = |key: &str, layers: &mut dyn Iterator<Item = &str>, source: PairSource| {
            let entry = allowed.entry(key.to_string()).or_default();
            entry.sources.insert(source);
            for layer in layers {
                entry
                    .layers
                    .entry(layer.to_string())
                    .or_default()
                    .insert(source);
            }
        };
        if settings.default_artifact_types {
            for (key, layers) in default_allowed_types() {
                add(
                    &key,
                    &mut layers.iter().map(String::as_str),
                    PairSource::BerthDefault,
                );
            }
        }
        for (key, layers) in settings.allowed_artifact_types.iter().flatten() {
            add(
                key,
                &mut layers.iter().map(String::as_str),
                PairSource::Configured,
            );
        }
        if settings.helm_oci_support {
            add(
                HELM_CONFIG,
                &mut mt::HELM_LAYER_TYPES.iter().copied(),
                PairSource::HelmSupport,
            );
        }
        if let Some(entry) = allowed.get_mut(OCI_IMAGE_CONFIG) {
            for layer in mt::IMAGE_LAYER_TYPES {
                entry
                    .layers
                    .entry(layer.to_string())
                    .or_default()
                    .insert(PairSource::ImageLayers);
            }
        }
        ArtifactPolicy { settings, allowed }
    }

    /// The settings this policy was built from.
    pub fn settings(&self) -> &PolicySettings {
        &self.settings
    }

    /// Every key with its allowed layer types, as the policy applies them.
    pub fn effective(&self) -> BTreeMap<String, Vec<String>> {
        self.allowed
            .iter()
            .map(|(k, a)| (k.clone(), a.layers.keys().cloned().collect()))
            .collect()
    }

    /// Every allowed pair (key, layer type) with where it comes from; a key allowed with no
    /// layers at all appears once with `None`.
    pub fn pairs(&self) -> Vec<(&str, Option<&str>, Vec<PairSource>)> {
        let mut out = Vec::new();
        for (key, a) in &self.allowed {
            if a.layers.is_empty() {
                out.push((key.as_str(), None, a.sources.iter().copied().collect()));
            }
            for (layer, sources) in &a.layers {
                out.push((
                    key.as_str(),
                    Some(layer.as_str()),
                    sources.iter().copied().collect(),
                ));
            }
        }
        out
    }

    /// Whether `manifest` may be stored.
    pub fn check(&self, manifest: &ParsedManifest) -> Result<(), Violation> {
        if self.settings.ignore_unknown_mediatypes {
            return Ok(());
        }
        if manifest.is_index() {
            return match &manifest.artifact_type {
                None => Ok(()),
                Some(t) if self.settings.general_oci_support && self.allowed.contains_key(t) => {
                    Ok(())
                }
                Some(t) => Err(self.violation(t, t, false, manifest)),
            };
        }
        if is_container_image(manifest) {
            return Ok(());
        }
        if !self.settings.general_oci_support {
            let (refused, key, is_layer) = what_is_not_an_image(manifest);
            return Err(self.violation(refused, key, is_layer, manifest));
        }
        let config_type = manifest
            .config
            .as_ref()
            .map_or("", |c| c.media_type.as_str());
        // The keys this manifest may match: its config type, and its artifactType.
        let keys: Vec<&str> = std::iter::once(config_type)
            .chain(manifest.artifact_type.as_deref())
            .collect();
        let mut first_refusal: Option<(&str, &str)> = None;
        for key in keys {
            let Some(allowed) = self.allowed.get(key) else {
                continue;
            };
            match manifest
                .layers
                .iter()
                .find(|l| !allowed.layers.contains_key(&l.media_type))
            {
                None => return Ok(()),
                Some(layer) => {
                    first_refusal.get_or_insert((key, layer.media_type.as_str()));
                }
            }
        }
        match first_refusal {
            Some((key, layer)) => Err(self.violation(layer, key, true, manifest)),
            None => {
                // No key matched: name the type that made it more than an image.
                let (refused, key, is_layer) = what_is_not_an_image(manifest);
                Err(self.violation(refused, key, is_layer, manifest))
            }
        }
    }

    fn violation(&self, refused: &str, key: &str, is_layer: bool, m: &ParsedManifest) -> Violation {
        let config_media_type = m
            .config
            .as_ref()
            .map_or_else(|| m.media_type.clone(), |c| c.media_type.clone());
        let yaml = self.settings.general_oci_support.then(|| {
            let layers: Vec<&str> = if is_layer {
                vec![refused]
            } else {
                m.layers
                    .iter()
                    .map(|l| l.media_type.as_str())
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect()
            };
            let mut yaml = format!("ALLOWED_OCI_ARTIFACT_TYPES:\n  {key}:\n");
            if layers.is_empty() {
                yaml.push_str("  []\n");
            }
            for l in layers {
                yaml.push_str(&format!("  - {l}\n"));
            }
            yaml
        });
        Violation {
            refused: refused.to_string(),
            refused_is_layer: is_layer,
            config_media_type,
            artifact_type: m.artifact_type.clone(),
            yaml,
            defaults_off: !self.settings.default_artifact_types,
        }
    }

    /// The effective policy, for `berth config check` and the reload log: the flags, then every
    /// allowed pair (config or artifact type -> layer type) with where it comes from.
    pub fn describe(&self) -> String {
        let s = &self.settings;
        let mut out = String::new();
        for (key, value) in [
            ("IGNORE_UNKNOWN_MEDIATYPES", s.ignore_unknown_mediatypes),
            ("FEATURE_GENERAL_OCI_SUPPORT", s.general_oci_support),
            ("FEATURE_HELM_OCI_SUPPORT", s.helm_oci_support),
            ("DEFAULT_OCI_ARTIFACT_TYPES", s.default_artifact_types),
        ] {
            out.push_str(&format!("{key}: {value}\n"));
        }
        out.push_str(
            "# container images (OCI and Docker configs with image layers) are always accepted\n",
        );
        if s.ignore_unknown_mediatypes {
            out.push_str("# the policy is off: every artifact type is accepted\n");
            return out;
        }
        if !s.general_oci_support {
            out.push_str("# only container images are accepted\n");
            return out;
        }
        out.push_str(match (s.default_artifact_types, &s.allowed_artifact_types) {
            (true, None) => "# ALLOWED_OCI_ARTIFACT_TYPES is not set: berth's defaults apply\n",
            (true, Some(_)) => "# berth's defaults plus ALLOWED_OCI_ARTIFACT_TYPES\n",
            (false, _) => {
                "# DEFAULT_OCI_ARTIFACT_TYPES is false: only ALLOWED_OCI_ARTIFACT_TYPES (and Helm, while FEATURE_HELM_OCI_SUPPORT is on)\n"
            }
        });
        out.push_str("# allowed pairs: config or artifact type -> layer type  # from\n");
        for (key, layer, sources) in self.pairs() {
            let from: Vec<&str> = sources.iter().map(|s| s.as_str()).collect();
            out.push_str(&format!(
                "{key} -> {}  # {}\n",
                layer.unwrap_or("(no layers)"),
                from.join(", ")
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests;
