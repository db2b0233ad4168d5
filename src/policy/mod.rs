//! The artifact-type policy: which manifests berth accepts, from Quay's configuration keys.
//!
//! Quay checks a layer's media type against the union of every listed type. berth checks pairs:
//! a manifest is accepted when its config media type (or, for an OCI 1.1 artifact, its
//! `artifactType`) is a key of `ALLOWED_OCI_ARTIFACT_TYPES` and every layer's media type is in
//! that key's list. Container images are always accepted, and for the OCI image config the
//! image layer types stay allowed beside the listed ones, so a partly encrypted image works.
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
    /// `ALLOWED_OCI_ARTIFACT_TYPES`: config (or artifact) type to allowed layer types. `None`
    /// means the defaults.
    pub allowed_artifact_types: Option<BTreeMap<String, Vec<String>>>,
    /// `IGNORE_UNKNOWN_MEDIATYPES`: accept every artifact type (the policy is off).
    pub ignore_unknown_mediatypes: bool,
}

impl Default for PolicySettings {
    fn default() -> Self {
        PolicySettings {
            general_oci_support: true,
            helm_oci_support: true,
            allowed_artifact_types: None,
            ignore_unknown_mediatypes: false,
        }
    }
}

/// The artifact types berth accepts when `ALLOWED_OCI_ARTIFACT_TYPES` is not set: cosign
/// signatures and attestations, SBOMs, sigstore bundles and Helm charts. Encrypted layers are
/// not among them, as in Quay.
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
    add(mt::DSSE_ENVELOPE, &[mt::DSSE_ENVELOPE]);
    add(mt::IN_TOTO, &[mt::IN_TOTO, mt::DSSE_ENVELOPE]);
    for sbom in mt::SBOM_TYPES {
        add(sbom, mt::SBOM_TYPES);
    }
    add(HELM_CONFIG, mt::HELM_LAYER_TYPES);
    map
}

/// Why a manifest was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The media type that is not allowed (a layer's, or the config's when it is no key).
    pub refused: String,
    /// The config media type the manifest came with.
    pub config_media_type: String,
    /// The manifest's `artifactType`, if any.
    pub artifact_type: Option<String>,
    /// What to add to the config file to allow it; `None` when no config can (general OCI
    /// support is off).
    pub yaml: Option<String>,
    /// Whether the defaults are in force, so that a configured map would replace them.
    pub defaults_in_force: bool,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.refused == self.config_media_type
            || Some(&self.refused) == self.artifact_type.as_ref()
        {
            write!(f, "artifact type {} is not allowed", self.refused)?;
        } else {
            write!(
                f,
                "layer media type {} is not allowed with config media type {}",
                self.refused, self.config_media_type
            )?;
            if let Some(t) = &self.artifact_type {
                write!(f, " (artifactType {t})")?;
            }
        }
        match &self.yaml {
            None => write!(
                f,
                "; only container images are accepted (FEATURE_GENERAL_OCI_SUPPORT is false)"
            ),
            Some(yaml) => {
                write!(f, "; to allow it, add to the config file:\n{yaml}")?;
                if self.defaults_in_force {
                    write!(f, "(a configured ALLOWED_OCI_ARTIFACT_TYPES replaces berth's defaults; `berth config check` shows the result)")?;
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
    allowed: BTreeMap<String, BTreeSet<String>>,
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

impl ArtifactPolicy {
    /// Builds the effective policy: the configured map, or the defaults when none is set.
    pub fn new(settings: PolicySettings) -> Self {
        let source = settings
            .allowed_artifact_types
            .clone()
            .unwrap_or_else(default_allowed_types);
        let allowed = source
            .into_iter()
            .map(|(k, v)| (k, v.into_iter().collect()))
            .collect();
        ArtifactPolicy { settings, allowed }
    }

    /// The settings this policy was built from.
    pub fn settings(&self) -> &PolicySettings {
        &self.settings
    }

    /// The layer types allowed with `key`, including those berth always adds.
    fn allowed_layers(&self, key: &str) -> Option<BTreeSet<&str>> {
        let mut set: Option<BTreeSet<&str>> = self
            .allowed
            .get(key)
            .map(|s| s.iter().map(String::as_str).collect());
        if key == OCI_IMAGE_CONFIG {
            if let Some(s) = set.as_mut() {
                s.extend(mt::IMAGE_LAYER_TYPES.iter().copied());
            }
        }
        if key == HELM_CONFIG && self.settings.helm_oci_support {
            set.get_or_insert_with(BTreeSet::new)
                .extend(mt::HELM_LAYER_TYPES.iter().copied());
        }
        set
    }

    /// Every key with its allowed layer types, as the policy applies them.
    pub fn effective(&self) -> BTreeMap<String, Vec<String>> {
        let mut keys: BTreeSet<&str> = self.allowed.keys().map(String::as_str).collect();
        if self.settings.helm_oci_support {
            keys.insert(HELM_CONFIG);
        }
        keys.into_iter()
            .filter_map(|k| {
                self.allowed_layers(k)
                    .map(|set| (k.to_string(), set.into_iter().map(str::to_string).collect()))
            })
            .collect()
    }

    /// Whether `manifest` may be stored.
    pub fn check(&self, manifest: &ParsedManifest) -> Result<(), Violation> {
        if self.settings.ignore_unknown_mediatypes {
            return Ok(());
        }
        if manifest.is_index() {
            return match &manifest.artifact_type {
                None => Ok(()),
                Some(t)
                    if self.settings.general_oci_support && self.allowed_layers(t).is_some() =>
                {
                    Ok(())
                }
                Some(t) => Err(self.violation(t, t, manifest, None)),
            };
        }
        if is_container_image(manifest) {
            return Ok(());
        }
        let config_type = manifest
            .config
            .as_ref()
            .map_or("", |c| c.media_type.as_str());
        // The keys this manifest may match: its config type, and its artifactType.
        let keys: Vec<&str> = std::iter::once(config_type)
            .chain(manifest.artifact_type.as_deref())
            .collect();
        let mut first_refusal: Option<(String, String)> = None;
        for key in &keys {
            let Some(allowed) = self.allowed_layers(key) else {
                continue;
            };
            match manifest
                .layers
                .iter()
                .find(|l| !allowed.contains(l.media_type.as_str()))
            {
                None if self.settings.general_oci_support => return Ok(()),
                None => {}
                Some(layer) => {
                    first_refusal.get_or_insert((key.to_string(), layer.media_type.clone()));
                }
            }
        }
        match first_refusal {
            Some((key, layer)) => Err(self.violation(&layer, &key, manifest, Some(&layer))),
            None => {
                // No key matched: name the most specific one.
                let key = manifest.artifact_type.as_deref().unwrap_or(config_type);
                Err(self.violation(key, key, manifest, None))
            }
        }
    }

    fn violation(
        &self,
        refused: &str,
        key: &str,
        m: &ParsedManifest,
        layer: Option<&str>,
    ) -> Violation {
        let config_media_type = m
            .config
            .as_ref()
            .map_or_else(|| m.media_type.clone(), |c| c.media_type.clone());
        let yaml = self.settings.general_oci_support.then(|| {
            let layers: Vec<&str> = match layer {
                Some(l) => vec![l],
                None => m
                    .layers
                    .iter()
                    .map(|l| l.media_type.as_str())
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect(),
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
            config_media_type,
            artifact_type: m.artifact_type.clone(),
            yaml,
            defaults_in_force: self.settings.allowed_artifact_types.is_none(),
        }
    }

    /// The effective policy as YAML, for `berth config check` and the reload log.
    pub fn describe(&self) -> String {
        let s = &self.settings;
        let mut out = String::new();
        out.push_str(&format!(
            "IGNORE_UNKNOWN_MEDIATYPES: {}\n",
            s.ignore_unknown_mediatypes
        ));
        out.push_str(&format!(
            "FEATURE_GENERAL_OCI_SUPPORT: {}\n",
            s.general_oci_support
        ));
        out.push_str(&format!(
            "FEATURE_HELM_OCI_SUPPORT: {}\n",
            s.helm_oci_support
        ));
        out.push_str(
            "# container images (OCI and Docker configs with image layers) are always accepted\n",
        );
        if s.ignore_unknown_mediatypes {
            out.push_str("# the policy is off: every artifact type is accepted\n");
        } else if !s.general_oci_support {
            out.push_str("# only container images are accepted\n");
        } else {
            out.push_str(match s.allowed_artifact_types {
                None => "# ALLOWED_OCI_ARTIFACT_TYPES is not set: berth's defaults apply\n",
                Some(_) => {
                    "# ALLOWED_OCI_ARTIFACT_TYPES as configured, with the types berth always adds\n"
                }
            });
            out.push_str("ALLOWED_OCI_ARTIFACT_TYPES:\n");
            for (key, layers) in self.effective() {
                out.push_str(&format!("  {key}:\n"));
                for l in layers {
                    out.push_str(&format!("  - {l}\n"));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
