//! TLS towards the gateway (rustls with the `ring` provider, passed
//! explicitly so the choice cannot depend on another crate's features).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

pub use tokio_rustls::rustls;
pub use tokio_rustls::TlsConnector;

/// Why a client TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The CA file could not be read or parsed, or holds no certificate.
    #[error("cannot read CA certificates from {path}: {message}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// rustls refused the roots.
    #[error("invalid TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The server name is neither a DNS name nor an IP address.
    #[error("invalid TLS server name {0:?}")]
    ServerName(String),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client configuration trusting exactly `roots`.
pub fn client_config(roots: &[CertificateDer<'static>]) -> Result<Arc<ClientConfig>, TlsError> {
    let mut store = RootCertStore::empty();
    for root in roots {
        store.add(root.clone())?;
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(store)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// [`client_config`] trusting the certificates of a PEM file (`--tls-ca`).
pub fn load_client_config(ca: &Path) -> Result<Arc<ClientConfig>, TlsError> {
    let pem = |message: String| TlsError::Pem {
        path: ca.to_owned(),
        message,
    };
    let roots = CertificateDer::pem_file_iter(ca)
        .map_err(|e| pem(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem(e.to_string()))?;
    if roots.is_empty() {
        return Err(pem("no certificate in the file".to_owned()));
    }
    client_config(&roots).map_err(|e| pem(e.to_string()))
}

/// Parses the name the server's certificate must carry (DNS name or IP).
pub fn server_name(name: &str) -> Result<ServerName<'static>, TlsError> {
    ServerName::try_from(name.to_owned()).map_err(|_| TlsError::ServerName(name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_empty_ca_files_are_clear_errors() {
        let e = load_client_config(Path::new("/nonexistent/ca.pem")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
        let dir = std::env::temp_dir().join(format!("hts-client-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a pem file\n").unwrap();
        let e = load_client_config(&empty).unwrap_err();
        assert!(e.to_string().contains("no certificate"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn server_names() {
        assert!(server_name("localhost").is_ok());
        assert!(server_name("127.0.0.1").is_ok());
        assert!(matches!(
            server_name("not a name"),
            Err(TlsError::ServerName(_))
        ));
    }
}
