//! Verify codes: the "scan to verify" QR code on a contact's page (docs/protocol.md,
//! "Verify codes").
//!
//! ```text
//! tidings:verify?v=1&from=alice&to=bob&code=<60 digits>
//! ```
//!
//! Alice's screen shows the security code she shares with Bob (from both identity keys:
//! core's `e2ee::security_code`). Bob's device scans it and verifies Alice if it is the one
//! he computes himself — only the same two identity keys give the same 60 digits, so a
//! server that swapped either key is caught. The code is not secret; what it says is checked
//! like any scanned text: length first, typed errors, no panics (a fuzz target holds it to
//! that).

use crate::contact::{fields, query_of, shorten, FieldError, SchemeError};
use crate::validate;

/// Longest verify code accepted, in bytes.
pub const MAX_VERIFY_CODE_BYTES: usize = 256;
/// Digits of a security code.
pub const SECURITY_CODE_DIGITS: usize = 60;

/// A parsed, valid verify code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyCode {
    /// Who shows it (the username whose screen it is on).
    pub from: String,
    /// With whom they share the code (the username who should scan it).
    pub to: String,
    /// The 60-digit security code.
    pub code: String,
}

/// Why a scanned text is not a verify code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyCodeError {
    /// Longer than any verify code.
    #[error("this code is too long to be a Tidings verify code ({len} bytes, at most {max})")]
    TooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not a Tidings verify code (plain text, another scheme, another kind of Tidings code).
    #[error("this is not a Tidings security code")]
    NotAVerifyCode,
    /// Made by a newer version of Tidings.
    #[error("this security code is from a newer version of Tidings (version {0})")]
    UnsupportedVersion(String),
    /// A field is missing.
    #[error("this security code has no {0}")]
    Missing(&'static str),
    /// A field appears twice, or an unknown one appears.
    #[error("this security code has a repeated or unknown field: {0}")]
    BadField(String),
    /// A username is not a valid username.
    #[error("this security code names an invalid username")]
    BadUser,
    /// The code is not 60 digits.
    #[error("this security code is not 60 digits")]
    BadCode,
}

impl VerifyCode {
    /// Parses scanned text (surrounding whitespace is ignored).
    pub fn parse(text: &str) -> Result<Self, VerifyCodeError> {
        if text.len() > MAX_VERIFY_CODE_BYTES {
            return Err(VerifyCodeError::TooLong { len: text.len(), max: MAX_VERIFY_CODE_BYTES });
        }
        let query = query_of(text, "verify").map_err(|e| match e {
            SchemeError::NotACode | SchemeError::Foreign(_) | SchemeError::OtherKind => {
                VerifyCodeError::NotAVerifyCode
            }
        })?;
        let [version, from, to, code] =
            fields(query, ["v", "from", "to", "code"]).map_err(|e| match e {
                FieldError::Bad(name) => VerifyCodeError::BadField(name),
                FieldError::Undecodable => VerifyCodeError::NotAVerifyCode,
            })?;
        match version.as_deref() {
            Some("1") => {}
            Some(v) => return Err(VerifyCodeError::UnsupportedVersion(shorten(v))),
            None => return Err(VerifyCodeError::Missing("version")),
        }
        let from = from.ok_or(VerifyCodeError::Missing("from"))?;
        let to = to.ok_or(VerifyCodeError::Missing("to"))?;
        let code = code.ok_or(VerifyCodeError::Missing("code"))?;
        for user in [&from, &to] {
            validate::username(user).map_err(|_| VerifyCodeError::BadUser)?;
        }
        if code.len() != SECURITY_CODE_DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(VerifyCodeError::BadCode);
        }
        Ok(Self { from, to, code })
    }

    /// The code as text (what the QR code holds).
    pub fn to_uri(&self) -> String {
        format!("tidings:verify?v=1&from={}&to={}&code={}", self.from, self.to, self.code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code() -> VerifyCode {
        VerifyCode { from: "alice".into(), to: "bob".into(), code: "0123456789".repeat(6) }
    }

    #[test]
    fn a_code_round_trips() {
        let uri = code().to_uri();
        assert_eq!(
            uri,
            format!("tidings:verify?v=1&from=alice&to=bob&code={}", "0123456789".repeat(6))
        );
        assert_eq!(VerifyCode::parse(&format!(" {uri}\n")).unwrap(), code());
    }

    #[test]
    fn bad_codes_say_what_is_wrong() {
        use VerifyCodeError as E;
        let uri = code().to_uri();
        let cases: Vec<(String, E)> = vec![
            ("x".repeat(300), E::TooLong { len: 300, max: MAX_VERIFY_CODE_BYTES }),
            ("hello".into(), E::NotAVerifyCode),
            ("https://example.com".into(), E::NotAVerifyCode),
            (uri.replace("verify", "contact"), E::NotAVerifyCode),
            (uri.replace("v=1", "v=2"), E::UnsupportedVersion("2".into())),
            (uri.replace("v=1&", ""), E::Missing("version")),
            (uri.replace("&to=bob", ""), E::Missing("to")),
            (format!("{uri}&x=1"), E::BadField("x".into())),
            (uri.replace("from=alice", "from=Al%20ice"), E::BadUser),
            (uri.replace("code=0123", "code=123"), E::BadCode),
            (uri.replace("code=0123", "code=a123"), E::BadCode),
        ];
        for (text, want) in cases {
            assert_eq!(VerifyCode::parse(&text), Err(want), "{text}");
        }
    }
}
