//! A throwaway certificate authority for TLS tests (rcgen): a CA certificate, and leaf
//! certificates it signs for given names and validity, written as PEM files.

use std::path::{Path, PathBuf};

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// A test CA.
#[derive(Debug)]
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate, PEM (what a client trusts).
    pub pem: String,
}

/// A certificate chain and key on disk, as `tidings serve --tls-cert/--tls-key` take them.
#[derive(Debug, Clone)]
pub struct CertFiles {
    /// The chain (leaf, then the CA).
    pub cert: PathBuf,
    /// The leaf's private key.
    pub key: PathBuf,
}

/// Now plus `days` (negative: in the past).
fn at(days: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc() + time::Duration::days(days)
}

impl TestCa {
    /// A new CA named `name`.
    pub fn new(name: &str) -> anyhow::Result<Self> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = at(-1);
        params.not_after = at(3650);
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(Self { pem: cert.pem(), issuer: Issuer::new(params, key) })
    }

    /// A rustls client configuration trusting this CA only (ring, TLS 1.2 and 1.3).
    pub fn client_config(&self) -> anyhow::Result<std::sync::Arc<rustls::ClientConfig>> {
        use rustls::pki_types::{pem::PemObject, CertificateDer};
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(self.pem.as_bytes()) {
            roots.add(cert?)?;
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        Ok(std::sync::Arc::new(
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots)
                .with_no_client_auth(),
        ))
    }

    /// Writes the CA certificate to `dir/name` (for `SSL_CERT_FILE`, `curl --cacert`).
    pub fn write(&self, dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
        let path = dir.join(name);
        std::fs::write(&path, &self.pem)?;
        Ok(path)
    }

    /// A leaf for `names`, valid from `from_days` to `until_days` (relative to now), written
    /// to `dir/<stem>.pem` and `dir/<stem>.key`.
    pub fn leaf(
        &self,
        dir: &Path,
        stem: &str,
        names: &[&str],
        (from_days, until_days): (i64, i64),
    ) -> anyhow::Result<CertFiles> {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names)?;
        params.distinguished_name.push(DnType::CommonName, stem);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = at(from_days);
        params.not_after = at(until_days);
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer).context("signing the leaf")?;
        let files = CertFiles {
            cert: dir.join(format!("{stem}.pem")),
            key: dir.join(format!("{stem}.key")),
        };
        std::fs::write(&files.cert, format!("{}{}", cert.pem(), self.pem))?;
        std::fs::write(&files.key, key.serialize_pem())?;
        Ok(files)
    }
}
