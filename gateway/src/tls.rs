//! TLS for client connections, the server side (rustls with the `ring`
//! provider; the terminal side is in the `hts-client` crate).
//!
//! TLS is optional: without a certificate the gateway speaks plain TCP and
//! nothing here is on the path. With one, every accepted connection first
//! completes a TLS handshake (bounded by `tls_handshake_timeout`) and then
//! carries the same frames as a plain connection.
//!
//! The provider is passed explicitly (`builder_with_provider`) instead of
//! relying on rustls' process-wide default, so the choice cannot depend on
//! which crate features another dependency happens to enable.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::ServerConfig;

pub use tokio_rustls::rustls;
pub use tokio_rustls::TlsAcceptor;

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or parsed.
    #[error("cannot read PEM file {path}: {source}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// The certificate file holds no certificate.
    #[error("no certificate in {0}")]
    NoCertificate(PathBuf),
    /// rustls refused the certificate or key.
    #[error("invalid TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The crypto provider of every configuration built here.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn pem_error(path: &Path) -> impl FnOnce(rustls::pki_types::pem::Error) -> TlsError + '_ {
    move |source| TlsError::Pem {
        path: path.to_owned(),
        source,
    }
}

/// Reads every certificate of a PEM file (leaf first, then its chain).
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(pem_error(path))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error(path))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.to_owned()));
    }
    Ok(certs)
}

/// Reads the first private key (PKCS#8, PKCS#1 or SEC1) of a PEM file.
pub fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(pem_error(path))
}

/// A server configuration for `chain` (leaf first) and its `key`: TLS 1.2
/// and 1.3, no client certificates.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    Ok(Arc::new(config))
}

/// [`server_config`] from PEM files (`--tls-cert`, `--tls-key`).
pub fn load_server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    server_config(read_certificates(cert)?, read_private_key(key)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_empty_files_are_clear_errors() {
        let e = load_server_config(Path::new("/nonexistent/c.pem"), Path::new("/x")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/c.pem"), "{e}");
        let dir = std::env::temp_dir().join(format!("hts-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a pem file\n").unwrap();
        assert!(matches!(
            read_certificates(&empty),
            Err(TlsError::NoCertificate(_))
        ));
        assert!(read_private_key(&empty).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
