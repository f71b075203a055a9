//! Where the server is, and the one way this engine reaches it: TLS unless the server is on
//! this machine or a private network.
//!
//! The rules (docs/protocol.md, "Addresses and TLS"):
//! - a bare host (`chat.example.org`, `chat.example.org:7878`) means `https://`;
//! - `https://` (or `wss://`) is verified against the platform's trust store through
//!   rustls-platform-verifier (the OS verifier on Android, iOS, macOS and Windows; the system's
//!   roots on Linux, where `SSL_CERT_FILE` may name others);
//! - `http://` is accepted only for loopback and private addresses (127/8, ::1, `localhost`,
//!   10/8, 172.16/12, 192.168/16, 169.254/16, fc00::/7, fe80::/10): anything else would send
//!   passwords and messages in the clear, and is an [`AddressError::Insecure`];
//! - a **pin** (`sha256:` and the hex SHA-256 of the server's certificate, as `tidings serve
//!   --tls-self-signed` prints it) replaces the trust store: the connection is accepted when,
//!   and only when, the server presents exactly that certificate. This is how self-hosters
//!   without a CA connect securely. A pinned certificate's names and dates are not checked
//!   (the pin says more than they could).
//!
//! TLS failures are typed ([`TlsFailure`]) so front ends say what happened in words; none of
//! them is retried into a plain connection. rustls with *ring* everywhere (no OpenSSL, builds
//! for Android and iOS).

use std::{
    net::{IpAddr, SocketAddr},
    sync::{Arc, OnceLock},
};

use rustls::{
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::CryptoProvider,
    pki_types::{CertificateDer, ServerName, UnixTime},
    CertificateError, ClientConfig, DigitallySignedStruct, SignatureScheme,
};
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;
use url::{Host, Url};

use crate::Error;

/// A byte stream to the server, plain or TLS.
pub(crate) trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// The SHA-256 of a server's certificate, which a profile may pin instead of trusting CAs.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pin(pub [u8; 32]);

impl Pin {
    /// The pin of a DER certificate.
    pub fn of(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }
}

impl std::fmt::Display for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sha256:")?;
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl std::fmt::Debug for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pin({self})")
    }
}

impl std::str::FromStr for Pin {
    type Err = AddressError;

    /// `sha256:` and 64 hex digits; colons between bytes (as openssl prints them) are fine.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex = s.trim().strip_prefix("sha256:").ok_or(AddressError::Pin)?;
        let digits: Vec<u8> = hex.bytes().filter(|b| *b != b':').collect();
        if digits.len() != 64 {
            return Err(AddressError::Pin);
        }
        let mut pin = [0u8; 32];
        for (byte, pair) in pin.iter_mut().zip(digits.chunks(2)) {
            let pair = std::str::from_utf8(pair).map_err(|_| AddressError::Pin)?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| AddressError::Pin)?;
        }
        Ok(Self(pin))
    }
}

/// A server address that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Not an address at all.
    #[error("not a server address: {0}")]
    Malformed(String),
    /// A scheme other than https/http (or wss/ws).
    #[error("unsupported address scheme {0}: use https://")]
    Scheme(String),
    /// `http://` to a public address: everything would travel in the clear.
    #[error(
        "http:// would send passwords and messages unencrypted; it is allowed only on this \
         machine or a private network: use https://{0}"
    )]
    Insecure(String),
    /// This profile used TLS before, and the new address does not.
    #[error("this profile connected over TLS before; it will not sign in without it")]
    Downgrade,
    /// A pin that is not `sha256:` and 64 hex digits.
    #[error("a certificate pin is sha256: followed by 64 hex digits")]
    Pin,
}

/// Why a TLS connection was refused, in words a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsFailure {
    /// Signed by nobody this device trusts (self-signed without a pin, a private CA).
    #[error("the server's certificate is not signed by an authority this device trusts")]
    UnknownIssuer,
    /// Outside its validity period.
    #[error("the server's certificate has expired (or is not valid yet)")]
    Expired,
    /// Made for another name than the address.
    #[error("the server's certificate is for another name than {0}")]
    WrongName(String),
    /// Revoked by its authority.
    #[error("the server's certificate has been revoked")]
    Revoked,
    /// Not the certificate this profile pinned: maybe someone in between.
    #[error("the server's certificate is not the pinned one (it is {found})")]
    PinMismatch {
        /// The pin of the certificate the server presented.
        found: String,
    },
    /// Anything else rustls refused (no common protocol version, a bad signature…).
    #[error("TLS failed: {0}")]
    Other(String),
}

/// A checked server address, with the pin the profile trusts it by (if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    base: Url,
    pin: Option<Pin>,
}

impl Endpoint {
    /// Checks an address a person typed or a profile stored (rules in the module doc).
    pub fn parse(address: &str) -> Result<Self, AddressError> {
        let address = address.trim().trim_end_matches('/');
        if address.is_empty() || address.contains(char::is_whitespace) {
            return Err(AddressError::Malformed(address.to_owned()));
        }
        let with_scheme =
            if address.contains("://") { address.to_owned() } else { format!("https://{address}") };
        let mut base =
            Url::parse(&with_scheme).map_err(|_| AddressError::Malformed(address.to_owned()))?;
        let scheme = match base.scheme() {
            "https" | "wss" => "https",
            "http" | "ws" => "http",
            other => return Err(AddressError::Scheme(other.to_owned())),
        };
        if base.scheme() != scheme {
            // Url refuses some scheme changes in place; rebuild with the new one.
            let rest = &with_scheme[with_scheme.find("://").unwrap_or(0)..];
            base = Url::parse(&format!("{scheme}{rest}"))
                .map_err(|_| AddressError::Malformed(address.to_owned()))?;
        }
        let host = base.host().ok_or_else(|| AddressError::Malformed(address.to_owned()))?;
        if scheme == "http" && !is_local(&host) {
            let shown = base.host_str().unwrap_or_default().to_owned();
            return Err(AddressError::Insecure(shown));
        }
        if base.query().is_some() || base.fragment().is_some() || !base.username().is_empty() {
            return Err(AddressError::Malformed(address.to_owned()));
        }
        Ok(Self { base, pin: None })
    }

    /// The same address, trusted by `pin` instead of the trust store. Only for `https://`.
    pub fn pinned(mut self, pin: Option<Pin>) -> Self {
        self.pin = pin.filter(|_| self.is_encrypted());
        self
    }

    /// The pin, if the profile trusts the server by one.
    pub fn pin(&self) -> Option<Pin> {
        self.pin
    }

    /// Whether the connection is encrypted (https). Front ends show "not encrypted" when not.
    pub fn is_encrypted(&self) -> bool {
        self.base.scheme() == "https"
    }

    /// The base URL as stored and shown: `https://host[:port][/path]`, no trailing slash.
    pub fn base(&self) -> String {
        self.base.as_str().trim_end_matches('/').to_owned()
    }

    /// The URL of an HTTP path (`/v1/media/…`).
    pub(crate) fn http_url(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }

    /// The websocket's URL.
    pub(crate) fn ws_url(&self) -> String {
        let base = self.base();
        let rest = base.split_once("://").map_or(base.as_str(), |(_, rest)| rest);
        let scheme = if self.is_encrypted() { "wss" } else { "ws" };
        format!("{scheme}://{rest}/v1/ws")
    }

    /// A TCP connection to the server, wrapped in TLS for `https://`.
    pub(crate) async fn connect(&self) -> Result<Box<dyn Io>, Error> {
        let port = self.base.port_or_known_default().unwrap_or(443);
        let network = |e: std::io::Error| Error::Network(e.to_string());
        let (tcp, name) = match self.base.host() {
            Some(Host::Domain(domain)) => (
                TcpStream::connect((domain, port)).await.map_err(network)?,
                ServerName::try_from(domain.to_owned())
                    .map_err(|e| Error::Network(format!("bad host name: {e}")))?,
            ),
            Some(Host::Ipv4(ip)) => tcp_to(IpAddr::V4(ip), port).await.map_err(network)?,
            Some(Host::Ipv6(ip)) => tcp_to(IpAddr::V6(ip), port).await.map_err(network)?,
            None => return Err(Error::Network("no host in the server address".into())),
        };
        // Frames are small and latency matters.
        let _ = tcp.set_nodelay(true);
        if !self.is_encrypted() {
            return Ok(Box::new(tcp));
        }
        let config = client_config(self.pin)?;
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| self.io_failure(e))?;
        Ok(Box::new(tls))
    }

    /// An HTTP client for media: the same TLS rules as the websocket, and never a redirect
    /// from https to http.
    pub(crate) fn http(&self) -> Result<reqwest::Client, Error> {
        let builder = reqwest::Client::builder();
        let builder = if self.is_encrypted() {
            builder.https_only(true).use_preconfigured_tls((*client_config(self.pin)?).clone())
        } else {
            builder
        };
        builder.build().map_err(|e| Error::Internal(format!("HTTP client: {e}")))
    }

    /// A failed TLS handshake (or connection) as the error a person reads.
    fn io_failure(&self, e: std::io::Error) -> Error {
        match e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
            Some(tls) => Error::Tls(self.failure(tls)),
            None => Error::Network(e.to_string()),
        }
    }

    /// What a rustls error means here.
    pub(crate) fn failure(&self, e: &rustls::Error) -> TlsFailure {
        let rustls::Error::InvalidCertificate(cert) = e else {
            return TlsFailure::Other(e.to_string());
        };
        match cert {
            CertificateError::UnknownIssuer => TlsFailure::UnknownIssuer,
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => TlsFailure::Expired,
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                TlsFailure::WrongName(self.base.host_str().unwrap_or_default().to_owned())
            }
            CertificateError::Revoked => TlsFailure::Revoked,
            CertificateError::Other(other) => match other.0.downcast_ref::<PinMismatch>() {
                Some(PinMismatch(found)) => TlsFailure::PinMismatch { found: found.to_string() },
                None => TlsFailure::Other(e.to_string()),
            },
            _ => TlsFailure::Other(e.to_string()),
        }
    }

    /// Finds a TLS refusal in an HTTP client's error chain.
    pub(crate) fn http_failure(&self, e: &reqwest::Error) -> Option<TlsFailure> {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(s) = source {
            if let Some(tls) = s.downcast_ref::<rustls::Error>() {
                return Some(self.failure(tls));
            }
            source = s.source();
        }
        None
    }
}

async fn tcp_to(ip: IpAddr, port: u16) -> std::io::Result<(TcpStream, ServerName<'static>)> {
    let tcp = TcpStream::connect(SocketAddr::new(ip, port)).await?;
    Ok((tcp, ServerName::IpAddress(ip.into())))
}

/// Whether plain http may go to `host`: this machine or a private network.
fn is_local(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(d) => d.eq_ignore_ascii_case("localhost") || d.ends_with(".localhost"),
        Host::Ipv4(ip) => ip.is_loopback() || ip.is_private() || ip.is_link_local(),
        Host::Ipv6(ip) => {
            let first = ip.segments()[0];
            ip.is_loopback()
                || (first & 0xfe00) == 0xfc00 // unique local, fc00::/7
                || (first & 0xffc0) == 0xfe80 // link local, fe80::/10
                || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback() || v4.is_private())
        }
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The TLS configuration for a pin, or for the platform's trust store (made once: loading
/// the system's roots reads files).
fn client_config(pin: Option<Pin>) -> Result<Arc<ClientConfig>, Error> {
    static PLATFORM: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    let build = |verifier: Arc<dyn ServerCertVerifier>| -> Result<Arc<ClientConfig>, String> {
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    };
    let made = match pin {
        Some(pin) => build(Arc::new(Pinned { pin, provider: provider() })),
        None => PLATFORM
            .get_or_init(|| {
                let verifier = rustls_platform_verifier::Verifier::new(provider())
                    .map_err(|e| format!("the platform's certificate store: {e}"))?;
                build(Arc::new(verifier))
            })
            .clone(),
    };
    made.map_err(|e| Error::Tls(TlsFailure::Other(e)))
}

/// Accepts exactly the pinned certificate (its signatures on the handshake still checked).
#[derive(Debug)]
struct Pinned {
    pin: Pin,
    provider: Arc<CryptoProvider>,
}

/// The certificate presented instead of the pinned one (carried inside rustls' error).
#[derive(Debug)]
struct PinMismatch(Pin);

impl std::fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the certificate is {}, not the pinned one", self.0)
    }
}

impl std::error::Error for PinMismatch {}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let found = Pin::of(end_entity);
        if found == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(
                Arc::new(PinMismatch(found)),
            ))))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<String, AddressError> {
        Endpoint::parse(s).map(|e| e.base())
    }

    #[test]
    fn a_bare_host_means_https_and_http_goes_only_to_local_addresses() {
        assert_eq!(parse("chat.example.org").unwrap(), "https://chat.example.org");
        assert_eq!(parse("chat.example.org:7878/").unwrap(), "https://chat.example.org:7878");
        assert_eq!(parse("wss://chat.example.org").unwrap(), "https://chat.example.org");
        for local in [
            "http://127.0.0.1:7878",
            "http://localhost:7878",
            "http://10.1.2.3",
            "http://192.168.1.20:7878",
            "http://172.20.0.1",
            "http://[::1]:7878",
            "http://[fd00::1]",
            "ws://127.0.0.1:9",
        ] {
            assert!(parse(local).unwrap().starts_with("http://"), "{local}");
        }
        for public in ["http://chat.example.org", "http://8.8.8.8", "http://[2001:db8::1]"] {
            assert!(matches!(parse(public), Err(AddressError::Insecure(_))), "{public}");
        }
        assert!(matches!(parse("ftp://x"), Err(AddressError::Scheme(_))));
        assert!(matches!(parse(""), Err(AddressError::Malformed(_))));
        assert!(matches!(parse("https://a b"), Err(AddressError::Malformed(_))));
        assert!(matches!(parse("https://u:p@host"), Err(AddressError::Malformed(_))));
    }

    #[test]
    fn websocket_urls_follow_the_scheme() {
        let e = Endpoint::parse("chat.example.org:8443/tidings").unwrap();
        assert_eq!(e.ws_url(), "wss://chat.example.org:8443/tidings/v1/ws");
        assert_eq!(e.http_url("/v1/media/3"), "https://chat.example.org:8443/tidings/v1/media/3");
        let plain = Endpoint::parse("http://127.0.0.1:7878").unwrap();
        assert_eq!(plain.ws_url(), "ws://127.0.0.1:7878/v1/ws");
        assert!(!plain.is_encrypted());
    }

    #[test]
    fn pins_are_sha256_hex_with_or_without_colons_and_print_as_they_parse() {
        let pin = Pin::of(b"certificate");
        let text = pin.to_string();
        assert!(text.starts_with("sha256:") && text.len() == 7 + 64);
        assert_eq!(text.parse::<Pin>().unwrap(), pin);
        let colons = format!(
            "sha256:{}",
            pin.0.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
        );
        assert_eq!(colons.parse::<Pin>().unwrap(), pin);
        for bad in ["", "sha256:", "md5:00", "sha256:zz", &text[..text.len() - 1]] {
            assert_eq!(bad.parse::<Pin>(), Err(AddressError::Pin), "{bad}");
        }
        // A pin means nothing without TLS.
        let plain = Endpoint::parse("http://127.0.0.1:1").unwrap().pinned(Some(pin));
        assert_eq!(plain.pin(), None);
    }
}
