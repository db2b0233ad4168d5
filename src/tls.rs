//! HTTPS: serving with a certificate and key, or a self-signed pair for local trials.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Where `--tls-self-signed` keeps its pair, inside the data directory.
pub const SELF_SIGNED_DIR: &str = "tls";

/// Returns the paths of a self-signed certificate and key for `localhost`, `127.0.0.1`,
/// `::1` and `extra_names`, creating them in `<data_dir>/tls/` on first use. Clients trust it
/// by using `cert.pem` as a CA (e.g. `skopeo --cert-dir`, `podman --cert-dir`).
pub fn self_signed(data_dir: &Path, extra_names: &[String]) -> anyhow::Result<(PathBuf, PathBuf)> {
    let dir = data_dir.join(SELF_SIGNED_DIR);
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    names.extend(extra_names.iter().cloned());
    let pair = rcgen::generate_simple_self_signed(names)
        .context("cannot generate a self-signed certificate")?;
    crate::write_private(&key, pair.signing_key.serialize_pem().as_bytes())
        .with_context(|| format!("cannot write {}", key.display()))?;
    std::fs::write(&cert, pair.cert.pem())
        .with_context(|| format!("cannot write {}", cert.display()))?;
    Ok((cert, key))
}

/// Loads a PEM certificate chain and private key for serving (TLS 1.2 and 1.3, offering
/// HTTP/2 and HTTP/1.1).
pub fn load(cert: &Path, key: &Path) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("cannot read the TLS certificates in {}", cert.display()))?;
    if chain.is_empty() {
        anyhow::bail!("no PEM certificate in {}", cert.display());
    }
    let key_der = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("cannot read the TLS private key in {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|builder| {
            builder
                .with_no_client_auth()
                .with_single_cert(chain, key_der)
        })
        .with_context(|| {
            format!(
                "cannot serve with TLS certificate {} and key {}",
                cert.display(),
                key.display()
            )
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
