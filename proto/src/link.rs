//! Link codes: what a signed-in device shows so that a new device joins the same account
//! (docs/protocol.md, "Linking a device").
//!
//! ```text
//! tidings:link?v=1&server=http%3A%2F%2Fchat.example%3A7878&secret=3f9a…(64 hex digits)
//! ```
//!
//! `server` is the account's server; `secret` is 32 random bytes made by the showing device.
//! Their SHA-256 is the offer's id on the server; a key derived from them seals what the
//! offer hands over (the account's identity key), so the server learns neither. A code works
//! once, for a few minutes. An optional `pin` is the server certificate's fingerprint, as in
//! contact codes.
//!
//! Parsing follows contact codes ([`crate::contact`]): length first, the `tidings` scheme
//! only, a typed [`LinkCodeError`] for anything else, never a panic.

use std::fmt;

use crate::contact::{
    check_server, fields, percent_encode, query_of, shorten, valid_pin, FieldError, SchemeError,
};

/// Longest link code accepted, in bytes.
pub const MAX_LINK_CODE_BYTES: usize = 512;

/// A parsed, valid link code.
#[derive(Clone, PartialEq, Eq)]
pub struct LinkCode {
    /// The account's server, `http(s)://host[:port]` with no trailing slash.
    pub server: String,
    /// The code's secret (never printed).
    pub secret: [u8; 32],
    /// The server certificate's fingerprint, for `https://` servers trusted by a pin.
    pub pin: Option<String>,
}

impl fmt::Debug for LinkCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkCode")
            .field("server", &self.server)
            .field("pin", &self.pin)
            .finish_non_exhaustive()
    }
}

/// Why a scanned or pasted text is not a link code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LinkCodeError {
    /// Longer than any link code.
    #[error("this code is too long to be a Tidings link code ({len} bytes, at most {max})")]
    TooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not a Tidings link code: plain text, another scheme, a contact code.
    #[error("this is not a Tidings link code (show the code from Settings › Link a device)")]
    NotALinkCode,
    /// Made by a newer version of Tidings.
    #[error("this link code is from a newer version of Tidings (version {0})")]
    UnsupportedVersion(String),
    /// A field is missing.
    #[error("this link code has no {0}")]
    Missing(&'static str),
    /// A field appears twice, or an unknown one appears.
    #[error("this link code has a repeated or unknown field: {0}")]
    BadField(String),
    /// The server address is not an http(s) base URL.
    #[error("this link code names an invalid server address")]
    BadServer,
    /// The secret is not 64 hex digits.
    #[error("this link code's secret is malformed")]
    BadSecret,
    /// The certificate pin is malformed, or given for a server without TLS.
    #[error("this link code's certificate pin is malformed")]
    BadPin,
}

impl LinkCode {
    /// Parses scanned or pasted text (surrounding whitespace is ignored).
    pub fn parse(text: &str) -> Result<Self, LinkCodeError> {
        if text.len() > MAX_LINK_CODE_BYTES {
            return Err(LinkCodeError::TooLong { len: text.len(), max: MAX_LINK_CODE_BYTES });
        }
        let query = query_of(text, "link").map_err(|e| match e {
            SchemeError::NotACode | SchemeError::Foreign(_) | SchemeError::OtherKind => {
                LinkCodeError::NotALinkCode
            }
        })?;
        let [version, server, secret, pin] = fields(query, ["v", "server", "secret", "pin"])
            .map_err(|e| match e {
                FieldError::Bad(name) => LinkCodeError::BadField(name),
                FieldError::Undecodable => LinkCodeError::NotALinkCode,
            })?;
        match version.as_deref() {
            Some("1") => {}
            Some(v) => return Err(LinkCodeError::UnsupportedVersion(shorten(v))),
            None => return Err(LinkCodeError::Missing("version")),
        }
        let server = server.ok_or(LinkCodeError::Missing("server"))?;
        let server = check_server(&server).map_err(|_| LinkCodeError::BadServer)?;
        let secret = secret.ok_or(LinkCodeError::Missing("secret"))?;
        let secret = crate::contact::hex_bytes::<32>(&secret).ok_or(LinkCodeError::BadSecret)?;
        let pin = pin.map(|p| p.to_ascii_lowercase());
        if pin.as_deref().is_some_and(|p| !valid_pin(p) || !server.starts_with("https://")) {
            return Err(LinkCodeError::BadPin);
        }
        Ok(Self { server, secret, pin })
    }

    /// The code as text (what the QR code holds).
    pub fn to_uri(&self) -> String {
        let mut uri = format!("tidings:link?v=1&server={}&secret=", percent_encode(&self.server));
        for b in self.secret {
            uri.push_str(&format!("{b:02x}"));
        }
        if let Some(pin) = &self.pin {
            uri.push_str("&pin=");
            uri.push_str(&percent_encode(pin));
        }
        uri
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code() -> LinkCode {
        LinkCode { server: "http://127.0.0.1:7878".into(), secret: [0xa5; 32], pin: None }
    }

    #[test]
    fn a_code_reads_back_as_itself_and_never_prints_its_secret() {
        let pinned = LinkCode {
            server: "https://chat.example:8443".into(),
            pin: Some(format!("sha256:{}", "ab".repeat(32))),
            ..code()
        };
        for code in [code(), pinned] {
            assert_eq!(LinkCode::parse(&code.to_uri()).unwrap(), code);
            assert_eq!(LinkCode::parse(&format!("  {}\n", code.to_uri())).unwrap(), code);
            assert!(!format!("{code:?}").contains("a5a5"), "{code:?}");
        }
        let upper = code().to_uri().replace("a5", "A5");
        assert_eq!(LinkCode::parse(&upper).unwrap(), code());
    }

    #[test]
    fn what_is_not_a_link_code_is_named() {
        use LinkCodeError as E;
        let uri = code().to_uri();
        let cases: Vec<(String, E)> = vec![
            ("hello".into(), E::NotALinkCode),
            ("https://example.com".into(), E::NotALinkCode),
            ("tidings:contact?v=1&server=http%3A%2F%2Fa&user=al&key=x".into(), E::NotALinkCode),
            (uri.replace("v=1", "v=2"), E::UnsupportedVersion("2".into())),
            (uri.replace("v=1&", ""), E::Missing("version")),
            (uri.replace(&"a5".repeat(32), &"a5".repeat(31)), E::BadSecret),
            (uri.replace(&"a5".repeat(32), &"zz".repeat(32)), E::BadSecret),
            (format!("{uri}&secret=00"), E::BadField("secret".into())),
            (format!("{uri}&user=bob"), E::BadField("user".into())),
            (uri.replace("http%3A", "ftp%3A"), E::BadServer),
            (format!("{uri}&pin=sha256%3A{}", "ab".repeat(32)), E::BadPin),
            ("x".repeat(MAX_LINK_CODE_BYTES + 1), E::TooLong { len: 513, max: 512 }),
        ];
        for (text, expected) in cases {
            assert_eq!(LinkCode::parse(&text), Err(expected), "{text}");
        }
    }
}
