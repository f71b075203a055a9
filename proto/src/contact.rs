//! Contact codes: what a QR code on someone's screen says (docs/protocol.md, "Contact codes").
//!
//! ```text
//! tidings:contact?v=1&server=http%3A%2F%2Fchat.example%3A7878&user=alice&key=Q2x…
//! ```
//!
//! `server` is the base URL of the user's server, `user` their username, `key` the contact
//! key their server issued (revocable, optionally expiring, resettable). Redeeming the code
//! with that server makes both users contacts. An optional `pin` (`sha256:` and 64 hex
//! digits) is the fingerprint of the server's certificate, for a self-hosted server without a
//! CA: it comes last, so codes without one read exactly as before.
//!
//! **Version 2** adds what makes one scan a verification ([`ContactVerification`]): `fp`, the
//! fingerprint of the user's identity key (64 hex digits), which the scanner checks against
//! the key the server hands out, and `s`, a secret only the user's own devices can derive
//! (32 hex digits), with which the scanner proves it saw the code. A v1 code still reads, as
//! an unverified one.
//!
//! Whatever a camera or a pasted screenshot gives is untrusted: [`ContactCode::parse`]
//! checks the length before anything else, allows only the `tidings` scheme, and names
//! what is wrong in a typed [`ContactCodeError`]. It never panics (a fuzz target holds it
//! to that) and keeps no more of the input than a code can hold.

use std::fmt;

use crate::validate;

/// Longest contact code accepted, in bytes.
pub const MAX_CONTACT_CODE_BYTES: usize = 512;
/// Longest server URL in a code.
pub const MAX_SERVER_URL_BYTES: usize = 200;
/// Contact keys are 16–64 characters of `A-Z a-z 0-9 - _`.
pub const CONTACT_KEY_CHARS: std::ops::RangeInclusive<usize> = 16..=64;

/// A parsed, valid contact code.
#[derive(Clone, PartialEq, Eq)]
pub struct ContactCode {
    /// The user's server, `http(s)://host[:port]` with no trailing slash.
    pub server: String,
    /// Their username.
    pub user: String,
    /// The contact key their server issued (a secret: shown only in the code).
    pub key: String,
    /// The server certificate's fingerprint (`sha256:` + 64 lowercase hex digits), for
    /// `https://` servers trusted by a pin instead of a CA.
    pub pin: Option<String>,
    /// What verifies the user by this scan (version 2 codes); `None` in a v1 code.
    pub verification: Option<ContactVerification>,
}

/// What a version 2 contact code carries to verify its owner with one scan.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ContactVerification {
    /// The SHA-256 fingerprint of the owner's identity key.
    pub fingerprint: [u8; 32],
    /// A secret only the owner's devices can derive (a secret: shown only in the code).
    pub secret: [u8; 16],
}

impl fmt::Debug for ContactCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContactCode")
            .field("server", &self.server)
            .field("user", &self.user)
            .field("pin", &self.pin)
            .field("verification", &self.verification)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for ContactVerification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContactVerification")
            .field("fingerprint", &hex(&self.fingerprint[..4]))
            .finish_non_exhaustive()
    }
}

/// Why a scanned or pasted text is not a contact code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ContactCodeError {
    /// Longer than any contact code.
    #[error("this code is too long to be a Tidings contact code ({len} bytes, at most {max})")]
    TooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Another kind of link or text (a web address, Wi-Fi details, …).
    #[error("this is not a Tidings contact code (it is a {scheme}: code)")]
    ForeignScheme {
        /// Its scheme, as found (shortened).
        scheme: String,
    },
    /// No scheme at all: plain text.
    #[error("this is not a Tidings contact code")]
    NotACode,
    /// A `tidings:` link of another kind, or a malformed one.
    #[error("this Tidings code is not a contact code")]
    NotAContactCode,
    /// Made by a newer version of Tidings.
    #[error("this contact code is from a newer version of Tidings (version {0})")]
    UnsupportedVersion(String),
    /// A field is missing.
    #[error("this contact code has no {0}")]
    Missing(&'static str),
    /// A field appears twice, or an unknown one appears.
    #[error("this contact code has a repeated or unknown field: {0}")]
    BadField(String),
    /// The server address is not an http(s) base URL.
    #[error("this contact code names an invalid server address")]
    BadServer,
    /// The username is not a valid username.
    #[error("this contact code names an invalid username")]
    BadUser,
    /// The key is malformed.
    #[error("this contact code's key is malformed")]
    BadKey,
    /// The certificate pin is malformed, or given for a server without TLS.
    #[error("this contact code's certificate pin is malformed")]
    BadPin,
    /// The identity fingerprint or the secret of a version 2 code is malformed.
    #[error("this contact code's verification is malformed")]
    BadVerification,
}

impl ContactCode {
    /// Parses scanned or pasted text (surrounding whitespace is ignored).
    pub fn parse(text: &str) -> Result<Self, ContactCodeError> {
        if text.len() > MAX_CONTACT_CODE_BYTES {
            return Err(ContactCodeError::TooLong { len: text.len(), max: MAX_CONTACT_CODE_BYTES });
        }
        let query = query_of(text, "contact").map_err(|e| match e {
            SchemeError::NotACode => ContactCodeError::NotACode,
            SchemeError::Foreign(scheme) => ContactCodeError::ForeignScheme { scheme },
            SchemeError::OtherKind => ContactCodeError::NotAContactCode,
        })?;
        let [version, server, user, key, fingerprint, secret, pin] =
            fields(query, ["v", "server", "user", "key", "fp", "s", "pin"]).map_err(
                |e| match e {
                    FieldError::Bad(name) => ContactCodeError::BadField(name),
                    FieldError::Undecodable => ContactCodeError::NotAContactCode,
                },
            )?;
        let verification = match (version.as_deref(), fingerprint, secret) {
            (Some("1"), None, None) => None,
            (Some("1"), Some(_), _) => return Err(ContactCodeError::BadField("fp".into())),
            (Some("1"), None, Some(_)) => return Err(ContactCodeError::BadField("s".into())),
            (Some("2"), Some(fingerprint), Some(secret)) => Some(ContactVerification {
                fingerprint: hex_bytes(&fingerprint).ok_or(ContactCodeError::BadVerification)?,
                secret: hex_bytes(&secret).ok_or(ContactCodeError::BadVerification)?,
            }),
            (Some("2"), None, _) => return Err(ContactCodeError::Missing("fingerprint")),
            (Some("2"), Some(_), None) => return Err(ContactCodeError::Missing("secret")),
            (Some(v), _, _) => return Err(ContactCodeError::UnsupportedVersion(shorten(v))),
            (None, _, _) => return Err(ContactCodeError::Missing("version")),
        };
        let server = server.ok_or(ContactCodeError::Missing("server"))?;
        let user = user.ok_or(ContactCodeError::Missing("user"))?;
        let key = key.ok_or(ContactCodeError::Missing("key"))?;
        let server = check_server(&server)?;
        validate::username(&user).map_err(|_| ContactCodeError::BadUser)?;
        if !valid_key(&key) {
            return Err(ContactCodeError::BadKey);
        }
        let pin = pin.map(|p| p.to_ascii_lowercase());
        if pin.as_deref().is_some_and(|p| !valid_pin(p) || !server.starts_with("https://")) {
            return Err(ContactCodeError::BadPin);
        }
        let code = Self { server, user, key, pin, verification };
        // Escapes make the printed form longer than what was read; it must still fit.
        let printed = code.to_uri().len();
        if printed > MAX_CONTACT_CODE_BYTES {
            return Err(ContactCodeError::TooLong { len: printed, max: MAX_CONTACT_CODE_BYTES });
        }
        Ok(code)
    }

    /// The code as text (what the QR code holds).
    pub fn to_uri(&self) -> String {
        let version = if self.verification.is_some() { 2 } else { 1 };
        let mut uri = format!(
            "tidings:contact?v={version}&server={}&user={}&key={}",
            percent_encode(&self.server),
            self.user,
            self.key
        );
        if let Some(v) = &self.verification {
            uri.push_str(&format!("&fp={}&s={}", hex(&v.fingerprint), hex(&v.secret)));
        }
        if let Some(pin) = &self.pin {
            uri.push_str("&pin=");
            uri.push_str(&percent_encode(pin));
        }
        uri
    }
}

/// Why a text is not a `tidings:` code of the kind looked for.
pub(crate) enum SchemeError {
    /// No scheme: plain text.
    NotACode,
    /// Another scheme (named, lowercased, shortened).
    Foreign(String),
    /// A `tidings:` code of another kind, or malformed.
    OtherKind,
}

/// The query of a `tidings:<kind>?<query>` code (surrounding whitespace ignored).
pub(crate) fn query_of<'t>(text: &'t str, kind: &str) -> Result<&'t str, SchemeError> {
    let text = text.trim();
    let Some((scheme, rest)) = text.split_once(':') else {
        return Err(SchemeError::NotACode);
    };
    let scheme_ok = !scheme.is_empty()
        && scheme.len() <= 32
        && scheme.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if !scheme_ok {
        return Err(SchemeError::NotACode);
    }
    if !scheme.eq_ignore_ascii_case("tidings") {
        return Err(SchemeError::Foreign(scheme.to_ascii_lowercase()));
    }
    rest.strip_prefix(kind).and_then(|r| r.strip_prefix('?')).ok_or(SchemeError::OtherKind)
}

/// Why a code's query does not split into its fields.
pub(crate) enum FieldError {
    /// A field is repeated or unknown (named, shortened).
    Bad(String),
    /// A value with a broken escape.
    Undecodable,
}

/// The percent-decoded values of a code's query fields `names`, in that order.
pub(crate) fn fields<const N: usize>(
    query: &str,
    names: [&str; N],
) -> Result<[Option<String>; N], FieldError> {
    let mut values = [const { None }; N];
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let Some(at) = names.iter().position(|n| *n == name) else {
            return Err(FieldError::Bad(shorten(name)));
        };
        if values[at].is_some() {
            return Err(FieldError::Bad(name.to_owned()));
        }
        values[at] = Some(percent_decode(value).ok_or(FieldError::Undecodable)?);
    }
    Ok(values)
}

/// Lowercase hex digits of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `2 × N` hex digits (either case) as `N` bytes.
pub(crate) fn hex_bytes<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Whether `pin` is `sha256:` and 64 lowercase hex digits.
pub(crate) fn valid_pin(pin: &str) -> bool {
    pin.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Whether `key` looks like a contact key (the server's own check is the real one).
pub fn valid_key(key: &str) -> bool {
    CONTACT_KEY_CHARS.contains(&key.len())
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

/// An `http(s)://host[:port]` base URL, normalized without a trailing slash.
pub(crate) fn check_server(server: &str) -> Result<String, ContactCodeError> {
    let server = server.trim_end_matches('/');
    if server.len() > MAX_SERVER_URL_BYTES {
        return Err(ContactCodeError::BadServer);
    }
    let rest = server
        .strip_prefix("http://")
        .or_else(|| server.strip_prefix("https://"))
        .ok_or(ContactCodeError::BadServer)?;
    // host[:port], the host a name, an IPv4 address or a bracketed IPv6 address.
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => (host, Some(port)),
        _ => (rest, None),
    };
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => {
            !v6.is_empty()
                && v6.len() <= 45
                && v6.bytes().all(|b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.'))
        }
        None => {
            !host.is_empty()
                && host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'))
        }
    };
    if !(host_ok && port_ok) {
        return Err(ContactCodeError::BadServer);
    }
    Ok(server.to_owned())
}

pub(crate) fn shorten(s: &str) -> String {
    s.chars().take(24).collect()
}

pub(crate) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes; `None` for a broken escape or text that is not UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> ContactCode {
        ContactCode {
            server: "http://127.0.0.1:7878".into(),
            user: "alice".into(),
            key: "Q2xldmVyIGdpcmwhIGtleQ".into(),
            pin: None,
            verification: None,
        }
    }

    #[test]
    fn a_version_2_code_carries_the_verification_and_v1_still_reads() {
        let verification = ContactVerification { fingerprint: [0xab; 32], secret: [0x5c; 16] };
        let code = ContactCode { verification: Some(verification), ..alice() };
        let uri = code.to_uri();
        assert!(uri.starts_with("tidings:contact?v=2&"), "{uri}");
        assert!(uri.contains(&format!("&fp={}&s={}", "ab".repeat(32), "5c".repeat(16))), "{uri}");
        assert_eq!(ContactCode::parse(&uri).unwrap(), code);
        let upper = uri.replace(&"ab".repeat(32), &"AB".repeat(32)).replace("5c", "5C");
        assert_eq!(ContactCode::parse(&upper).unwrap(), code, "hex of either case");
        assert!(!format!("{code:?}").contains("5c5c"), "the secret stays out of Debug");
        assert_eq!(ContactCode::parse(&alice().to_uri()).unwrap().verification, None);
        use ContactCodeError as E;
        let fp = format!("&fp={}", "ab".repeat(32));
        let secret = format!("&s={}", "5c".repeat(16));
        let cases: Vec<(String, E)> = vec![
            (uri.replace(&fp, ""), E::Missing("fingerprint")),
            (uri.replace(&secret, ""), E::Missing("secret")),
            (uri.replace(&"ab".repeat(32), &"ab".repeat(31)), E::BadVerification),
            (uri.replace(&"5c".repeat(16), &"zz".repeat(16)), E::BadVerification),
            (uri.replace("v=2", "v=1"), E::BadField("fp".into())),
            (uri.replace("v=2", "v=1").replace(&fp, ""), E::BadField("s".into())),
            (format!("{uri}{secret}"), E::BadField("s".into())),
            (uri.replace("v=2", "v=3"), E::UnsupportedVersion("3".into())),
        ];
        for (text, want) in cases {
            assert_eq!(ContactCode::parse(&text), Err(want), "{text}");
        }
    }

    #[test]
    fn a_pinned_server_travels_in_the_code_and_only_with_https() {
        let pin = format!("sha256:{}", "ab".repeat(32));
        let code = ContactCode {
            server: "https://chat.example:8443".into(),
            pin: Some(pin.clone()),
            ..alice()
        };
        let uri = code.to_uri();
        assert!(uri.ends_with(&format!("&pin=sha256%3A{}", "ab".repeat(32))), "{uri}");
        assert_eq!(ContactCode::parse(&uri).unwrap(), code);
        // Upper-case hex (as openssl prints it) reads as the same pin.
        assert_eq!(ContactCode::parse(&uri.replace("ab", "AB")).unwrap(), code);
        use ContactCodeError as E;
        for bad in [
            uri.replace(&"ab".repeat(32), "ab"),
            uri.replace("sha256", "md5"),
            uri.replace("https%3A", "http%3A"),
            format!("{uri}&pin=x"),
        ] {
            assert!(matches!(ContactCode::parse(&bad), Err(E::BadPin | E::BadField(_))), "{bad}");
        }
    }

    #[test]
    fn a_code_round_trips() {
        let uri = alice().to_uri();
        assert_eq!(
            uri,
            "tidings:contact?v=1&server=http%3A%2F%2F127.0.0.1%3A7878&user=alice&key=Q2xldmVyIGdpcmwhIGtleQ"
        );
        assert_eq!(ContactCode::parse(&uri).unwrap(), alice());
        assert_eq!(
            ContactCode::parse(&format!("  {}\n", uri.replace("tidings", "TIDINGS"))).unwrap(),
            alice()
        );
    }

    #[test]
    fn bad_codes_say_what_is_wrong() {
        use ContactCodeError as E;
        let uri = alice().to_uri();
        let cases: Vec<(String, E)> = vec![
            ("x".repeat(600), E::TooLong { len: 600, max: MAX_CONTACT_CODE_BYTES }),
            ("hello there".into(), E::NotACode),
            ("https://example.com/".into(), E::ForeignScheme { scheme: "https".into() }),
            ("WIFI:S:home;T:WPA;P:secret;;".into(), E::ForeignScheme { scheme: "wifi".into() }),
            ("tidings:room?id=4".into(), E::NotAContactCode),
            // Version 2 is the verifying code (its own test); 9 is from a newer Tidings.
            (uri.replace("v=1", "v=9"), E::UnsupportedVersion("9".into())),
            (uri.replace("v=1&", ""), E::Missing("version")),
            (uri.replace("&user=alice", ""), E::Missing("user")),
            (uri.replace("&user=alice", "&user=alice&user=bob"), E::BadField("user".into())),
            (format!("{uri}&extra=1"), E::BadField("extra".into())),
            (uri.replace("http%3A", "ftp%3A"), E::BadServer),
            (uri.replace("%3A7878", "%2Fpath%3Fq%3D1"), E::BadServer),
            (uri.replace("%3A7878", "%3A%3A%3A%3A"), E::BadServer),
            (uri.replace("%3A7878", "%3A78a"), E::BadServer),
            (uri.replace("user=alice", "user=Alice%20Smith"), E::BadUser),
            (uri.replace("key=Q2xldmVyIGdpcmwhIGtleQ", "key=short"), E::BadKey),
            (uri.replace("key=Q2xldmVyIGdpcmwhIGtleQ", "key=Q2xldmVyIGdpcmwhIGtleQ%21"), E::BadKey),
            (uri.replace("%3A%2F", "%zz"), E::NotAContactCode),
            (uri.replace("user=alice", "user=%FF%FE"), E::NotAContactCode),
        ];
        for (text, want) in cases {
            assert_eq!(ContactCode::parse(&text), Err(want), "{text}");
        }
    }

    #[test]
    fn the_key_stays_out_of_debug_output() {
        assert!(!format!("{:?}", alice()).contains("Q2xl"));
        let key = crate::ContactKeyText(crate::bounded::Text::new(alice().key).unwrap());
        let request = crate::Request::AddContact {
            user: crate::bounded::Text::new("alice").unwrap(),
            key: key.clone(),
        };
        assert!(!format!("{request:?}").contains("Q2xl"), "{request:?}");
        let reply = crate::Reply::ContactKey { key, expires_ms: None };
        assert!(!format!("{reply:?}").contains("Q2xl"), "{reply:?}");
    }
}
