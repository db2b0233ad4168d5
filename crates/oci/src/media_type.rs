//! Media types berth treats specially.

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list (the Docker flavour of an index).
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker schema 1, refused: it is deprecated and cannot be content-addressed reliably.
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
/// Signed Docker schema 1, refused as above.
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
/// The OCI empty descriptor's media type (`{}` content).
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// Digest of the two bytes `{}`, the content of the OCI empty descriptor.
pub const EMPTY_JSON_DIGEST: &str =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

/// The manifest media types berth stores and serves.
pub const MANIFEST_TYPES: [&str; 4] = [
    OCI_MANIFEST,
    OCI_INDEX,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
];

/// Strips parameters (`; charset=utf-8`) and surrounding space from a Content-Type value.
pub fn essence(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or("").trim()
}

/// Whether a media type names an index-like manifest (one listing other manifests).
pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}

/// OCI image config.
pub const OCI_IMAGE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Docker image config.
pub const DOCKER_IMAGE_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Helm chart config (Chart.yaml as JSON).
pub const HELM_CONFIG: &str = "application/vnd.cncf.helm.config.v1+json";
/// Helm chart content layer.
pub const HELM_CHART: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";
/// Helm chart layer as pushed by Helm before 3.7 and by some tools still.
pub const HELM_CHART_LEGACY: &str = "application/tar+gzip";
/// Helm provenance file layer.
pub const HELM_PROVENANCE: &str = "application/vnd.cncf.helm.chart.provenance.v1.prov";
/// cosign simple-signing payload layer.
pub const COSIGN_SIMPLESIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// cosign signature artifact type (OCI 1.1 referrers mode).
pub const COSIGN_SIG_ARTIFACT: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
/// Sigstore bundle (cosign 3), as artifact type and layer type.
pub const SIGSTORE_BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// DSSE envelope (cosign attestations).
pub const DSSE_ENVELOPE: &str = "application/vnd.dsse.envelope.v1+json";
/// in-toto statement (buildx attestations, attestation artifacts).
pub const IN_TOTO: &str = "application/vnd.in-toto+json";
/// Notary Project signature (notation), as the `artifactType` of a referrer.
pub const NOTARY_SIGNATURE: &str = "application/vnd.cncf.notary.signature";
/// Notary Project signature envelope in JWS JSON serialization (a signature layer).
pub const JOSE_JSON: &str = "application/jose+json";
/// Notary Project signature envelope in COSE (a signature layer).
pub const COSE: &str = "application/cose";
/// Signature envelope layer types of Notary Project signatures.
pub const NOTARY_ENVELOPE_TYPES: &[&str] = &[JOSE_JSON, COSE];

/// Layer media types of container images, for OCI and Docker configs alike.
pub const IMAGE_LAYER_TYPES: &[&str] = &[
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.diff.tar.zstd",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
];

/// Config media types of container images.
pub const IMAGE_CONFIG_TYPES: &[&str] = &[OCI_IMAGE_CONFIG, DOCKER_IMAGE_CONFIG];

/// Helm chart layer types berth always allows with the Helm config while Helm support is on.
pub const HELM_LAYER_TYPES: &[&str] = &[HELM_CHART, HELM_CHART_LEGACY, HELM_PROVENANCE];

/// SBOM formats (as layer types and artifact types).
pub const SBOM_TYPES: &[&str] = &[
    "text/spdx",
    "text/spdx+json",
    "text/spdx+xml",
    "application/spdx+json",
    "application/vnd.cyclonedx",
    "application/vnd.cyclonedx+json",
    "application/vnd.cyclonedx+xml",
    "application/vnd.syft+json",
];

/// Whether a layer media type marks ocicrypt-encrypted content.
pub fn is_encrypted_layer(media_type: &str) -> bool {
    media_type.ends_with("+encrypted")
}
