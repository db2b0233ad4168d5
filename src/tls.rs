//! HTTPS: serving with a certificate and key, or a self-signed pair for local trials.

use std::path::{Path, PathBuf};

use anyhow::Context;

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

/// Loads a PEM certificate chain and private key for serving.
pub async fn load(
    cert: &Path,
    key: &Path,
) -> anyhow::Result<axum_server::tls_rustls::RustlsConfig> {
    axum_server::tls_rustls::RustlsConfig::from_pem_chain_file(cert, key)
        .await
        .with_context(|| {
            format!(
                "cannot load TLS certificate {} and key {}",
                cert.display(),
                key.display()
            )
        })
}
