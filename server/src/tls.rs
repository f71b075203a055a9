//! TLS for every listener: the websocket, media and health endpoints all behind rustls.
//!
//! Two sources of a certificate:
//! - **files** (`--tls-cert PEM --tls-key PEM`): a CA-signed chain, e.g. from Let's Encrypt.
//!   [`Tls::reload`] reads them again (the CLI does on SIGHUP): connections already open keep
//!   the key they were made with, new handshakes get the new one, nobody is dropped. A reload
//!   that fails (a half-written file) keeps the old certificate and says why.
//! - **self-signed** (`--tls-self-signed`): made once and kept in the data directory
//!   (`tls/cert.pem`, `tls/key.pem`, mode 0600), so its fingerprint stays the same across
//!   restarts and clients that pinned it keep connecting. [`Tls::fingerprint`] is what a
//!   client pins (`sha256:…`).
//!
//! Protocol versions are rustls' safe defaults: TLS 1.3 and 1.2, no older. The crypto is
//! *ring* (pure Rust and C, no cmake), chosen explicitly so that a second provider elsewhere
//! in the dependency tree cannot change it.

use std::{
    io,
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
};

use rustls::{
    crypto::CryptoProvider,
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer},
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
    ServerConfig,
};
use sha2::{Digest, Sha256};

/// Where the server's certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSource {
    /// A certificate chain and its private key, PEM files.
    Files {
        /// The chain, leaf first.
        cert: PathBuf,
        /// The private key (PKCS#8, PKCS#1 or SEC1).
        key: PathBuf,
    },
    /// A self-signed certificate kept in the data directory, made on first start.
    SelfSigned,
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// A PEM file held nothing usable.
    #[error("{path}: {what}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is missing or wrong.
        what: String,
    },
    /// rustls refused the key or the certificate.
    #[error("the certificate or key is not usable: {0}")]
    Rustls(#[from] rustls::Error),
    /// The self-signed certificate could not be made.
    #[error("cannot make a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// The server's TLS: the rustls configuration and the certificate it serves, swappable.
#[derive(Debug)]
pub struct Tls {
    source: TlsSource,
    data_dir: PathBuf,
    current: Arc<CurrentKey>,
    config: Arc<ServerConfig>,
}

/// The certificate served to new handshakes; replaced whole on reload.
#[derive(Debug)]
struct CurrentKey(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for CurrentKey {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.read().ok().map(|k| k.clone())
    }
}

/// The crypto provider of every TLS connection the server makes or takes.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Tls {
    /// Loads (or, for a self-signed certificate, makes on first use) the certificate.
    pub fn load(source: TlsSource, data_dir: &Path) -> Result<Self, TlsError> {
        let key = certified_key(&source, data_dir)?;
        let current = Arc::new(CurrentKey(RwLock::new(Arc::new(key))));
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        // Websockets and media are HTTP/1.1 (the websocket upgrade needs it).
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self { source, data_dir: data_dir.to_owned(), current, config: Arc::new(config) })
    }

    /// Reads the certificate again; new handshakes use it, open connections are untouched.
    /// On failure the old certificate stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let key = certified_key(&self.source, &self.data_dir)?;
        if let Ok(mut current) = self.current.0.write() {
            *current = Arc::new(key);
        }
        Ok(())
    }

    /// `sha256:` and the hex SHA-256 of the leaf certificate now served: what a client pins.
    pub fn fingerprint(&self) -> String {
        let current = self.current.0.read().ok().map(|k| k.clone());
        current.and_then(|k| k.cert.first().map(|c| fingerprint(c))).unwrap_or_default()
    }

    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.config.clone())
    }
}

/// `sha256:` and the lowercase hex SHA-256 of a DER certificate.
pub fn fingerprint(der: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(der)))
}

fn certified_key(source: &TlsSource, data_dir: &Path) -> Result<CertifiedKey, TlsError> {
    let (cert, key) = match source {
        TlsSource::Files { cert, key } => (cert.clone(), key.clone()),
        TlsSource::SelfSigned => self_signed(data_dir)?,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
        .map_err(|e| pem_error(&cert, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| pem_error(&cert, e))?;
    if chain.is_empty() {
        return Err(TlsError::Pem { path: cert, what: "no CERTIFICATE block".into() });
    }
    let private = PrivateKeyDer::from_pem_file(&key).map_err(|e| pem_error(&key, e))?;
    Ok(CertifiedKey::from_der(chain, private, &provider())?)
}

fn pem_error(path: &Path, e: rustls::pki_types::pem::Error) -> TlsError {
    match e {
        rustls::pki_types::pem::Error::Io(source) => TlsError::Io { path: path.to_owned(), source },
        other => TlsError::Pem { path: path.to_owned(), what: other.to_string() },
    }
}

/// The self-signed certificate's files, made on first use. Its names: localhost, the
/// loopback addresses and this host's name (a pinning client checks the fingerprint, not
/// the name; these are for the curious with a browser).
fn self_signed(data_dir: &Path) -> Result<(PathBuf, PathBuf), TlsError> {
    let dir = data_dir.join("tls");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    crate::private_dir(&dir).map_err(|source| TlsError::Io { path: dir.clone(), source })?;
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    if let Ok(host) = std::fs::read_to_string("/etc/hostname") {
        let host = host.trim();
        if !host.is_empty() {
            names.push(host.to_owned());
        }
    }
    let made = rcgen::generate_simple_self_signed(names)?;
    // The key first: a certificate without its key would be taken as made next time.
    crate::write_private(&key, made.signing_key.serialize_pem().as_bytes())
        .map_err(|source| TlsError::Io { path: key.clone(), source })?;
    crate::write_private(&cert, made.cert.pem().as_bytes())
        .map_err(|source| TlsError::Io { path: cert.clone(), source })?;
    Ok((cert, key))
}
