//! What a failed command gives the UI: `{code, message, reason}` — a code to branch on, a
//! sentence for people. The UI never matches on message text.

use serde::Serialize;
use ts_rs::TS;

/// What kind of failure, for the UI to branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// This profile is not signed in.
    NotSignedIn,
    /// No such room here.
    NoSuchRoom,
    /// No longer a member of the room.
    NotAMember,
    /// No failed outbox item with that id.
    NoSuchOutboxItem,
    /// No such message in that room (or it was deleted).
    NoSuchMessage,
    /// Only a message's sender edits it or deletes it for everyone.
    NotYourMessage,
    /// No photo in that message.
    NoSuchImage,
    /// The picture cannot be sent (format, size, damage).
    BadPhoto,
    /// No QR code could be read from the picture.
    NoCode,
    /// The text or QR code is not a Tidings contact code.
    BadContactCode,
    /// The text or QR code is not a Tidings link code (or is a contact code).
    BadLinkCode,
    /// A contact code for another server.
    ForeignServer,
    /// A value the user gave is not acceptable.
    Invalid,
    /// No encrypted chat with this person yet, so no security code: write to them first.
    NoSharedEncryption,
    /// The key the server gave for the person whose contact code was scanned is not the one
    /// their code names: someone may be intercepting. Sending to them is held.
    KeyMismatch,
    /// A verified contact's security code changed: sending to them is held until the new
    /// code is accepted or they are verified again.
    KeyChanged,
    /// A scanned security code is not the one I share with that person: not verified.
    SecurityCodeMismatch,
    /// The text or QR code is not a Tidings security (verify) code (or is a contact code).
    BadVerifyCode,
    /// The server address cannot be used (malformed, or unencrypted to the internet).
    Address,
    /// The server's certificate was refused (unknown authority, expired, wrong name, not
    /// the pinned one): `message` says which.
    Tls,
    /// The server cannot be reached.
    Network,
    /// The server refused; `reason` has its error code.
    Server,
    /// A file could not be read or written.
    File,
    /// A fault in this program.
    Internal,
}

/// A failed command.
#[derive(Debug, Clone, Serialize, TS)]
pub struct AppError {
    /// What kind of failure.
    pub code: ErrorCode,
    /// For people.
    pub message: String,
    /// For `server`: the server's error code (`bad_credentials`, `username_taken`, …).
    pub reason: Option<String>,
}

impl AppError {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), reason: None }
    }
}

/// What a text or QR code that is no link code gets, and where the right one is.
const NOT_A_LINK_CODE: &str = "This is not a Tidings link code. On the device you already use, \
                               open Settings › Link a new device and show its code here.";

impl From<tidings_core::Error> for AppError {
    fn from(e: tidings_core::Error) -> Self {
        use tidings_core::{contact::ScanError, link::LinkCodeError, Error as E};
        let code = match &e {
            E::NotSignedIn => ErrorCode::NotSignedIn,
            E::NoSuchRoom(_) => ErrorCode::NoSuchRoom,
            E::NotAMember(_) => ErrorCode::NotAMember,
            E::NoSuchOutboxItem(_) => ErrorCode::NoSuchOutboxItem,
            E::NoSuchMessage(_) => ErrorCode::NoSuchMessage,
            E::NotYourMessage(_) => ErrorCode::NotYourMessage,
            E::NoSuchImage { .. } => ErrorCode::NoSuchImage,
            E::Photo(_) => ErrorCode::BadPhoto,
            E::Scan(_) => ErrorCode::NoCode,
            E::ContactCode(_) => ErrorCode::BadContactCode,
            E::LinkScan(ScanError::Code(_)) | E::LinkCode(_) | E::LinkRefused => {
                ErrorCode::BadLinkCode
            }
            E::LinkScan(_) => ErrorCode::NoCode,
            E::ForeignServer { .. } => ErrorCode::ForeignServer,
            E::Invalid(_) | E::NotARequest(_) => ErrorCode::Invalid,
            E::NoSharedEncryption(_) => ErrorCode::NoSharedEncryption,
            E::KeyMismatch(_) => ErrorCode::KeyMismatch,
            E::KeyChanged(_) => ErrorCode::KeyChanged,
            E::SecurityCodeMismatch(_) => ErrorCode::SecurityCodeMismatch,
            E::VerifyCode(_) | E::VerifyScan(ScanError::Code(_)) => ErrorCode::BadVerifyCode,
            E::VerifyScan(_) => ErrorCode::NoCode,
            E::Address(_) => ErrorCode::Address,
            E::Tls(_) => ErrorCode::Tls,
            E::Network(_) => ErrorCode::Network,
            E::Server(_) => ErrorCode::Server,
            E::Io(_) => ErrorCode::File,
            _ => ErrorCode::Internal,
        };
        let reason = match &e {
            E::Server(info) => Some(info.code.as_str().to_owned()),
            _ => None,
        };
        let message = match &e {
            // The server's sentence without our "server:" prefix.
            E::Server(info) => info.message.as_str().to_owned(),
            // Where to find the right code, in the app's words.
            E::LinkCode(LinkCodeError::NotALinkCode)
            | E::LinkScan(ScanError::Code(LinkCodeError::NotALinkCode)) => NOT_A_LINK_CODE.into(),
            // What to do about it, as a sentence.
            E::NoSharedEncryption(name) => {
                format!("No encrypted chat with {name} yet — write to them first")
            }
            E::KeyMismatch(name) => format!(
                "Security warning: the key the server gave for {name} is not the one in \
                 {name}'s code — someone may be intercepting your messages. {name} is not \
                 verified and sending to them is held: compare your security codes in person."
            ),
            E::KeyChanged(name) => {
                format!("{name}'s security code changed — accept it or verify again to send")
            }
            E::SecurityCodeMismatch(name) => format!(
                "This is not the security code you share with {name}, so {name} is not \
                 verified. Scan the code on {name}'s own device."
            ),
            other => other.to_string(),
        };
        Self { code, message, reason }
    }
}

/// What commands return.
pub type Result<T> = std::result::Result<T, AppError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_refusals_carry_the_server_code_and_sentence() {
        let info = tidings_proto::ErrorInfo::new(
            tidings_proto::ErrorCode::BadCredentials,
            "wrong username or password",
        );
        let e = AppError::from(tidings_core::Error::Server(info));
        let json = serde_json::to_value(&e).expect("serializes");
        assert_eq!(json["code"], "server");
        assert_eq!(json["reason"], "bad_credentials");
        assert_eq!(json["message"], "wrong username or password");
        let e = AppError::from(tidings_core::Error::NoSuchRoom(4));
        assert_eq!(serde_json::to_value(&e).expect("serializes")["code"], "no_such_room");
    }

    #[test]
    fn what_is_no_link_code_says_where_the_right_one_is() {
        use tidings_core::link::LinkCode;
        let garbage = AppError::from(tidings_core::Error::from(
            LinkCode::parse("https://example.com").expect_err("no link code"),
        ));
        assert_eq!(garbage.code, ErrorCode::BadLinkCode);
        assert!(garbage.message.contains("Settings › Link a new device"), "{}", garbage.message);
        let damaged = AppError::from(tidings_core::Error::from(
            LinkCode::parse("tidings:link?v=1&server=http%3A%2F%2F127.0.0.1%3A7878&secret=ab")
                .expect_err("a short secret"),
        ));
        assert_eq!(damaged.code, ErrorCode::BadLinkCode);
        assert!(damaged.message.contains("secret"), "{}", damaged.message);
        let no_qr = tidings_core::contact::ScanError::<tidings_core::link::LinkCodeError>::NoCode;
        let e = AppError::from(tidings_core::Error::from(no_qr));
        assert_eq!(e.code, ErrorCode::NoCode);
        let e = AppError::from(tidings_core::Error::LinkRefused);
        assert_eq!(serde_json::to_value(&e).expect("serializes")["code"], "bad_link_code");
    }

    #[test]
    fn verification_failures_have_their_codes_and_say_what_to_do() {
        let message = |e: tidings_core::Error| {
            let e = AppError::from(e);
            (serde_json::to_value(e.code).expect("serializes"), e.message)
        };
        let (code, text) = message(tidings_core::Error::KeyMismatch("bob".into()));
        assert_eq!(code, "key_mismatch");
        assert!(text.starts_with("Security warning:"), "{text}");
        assert!(text.contains("someone may be intercepting"), "{text}");
        let (code, text) = message(tidings_core::Error::KeyChanged("bob".into()));
        assert_eq!(code, "key_changed");
        assert_eq!(text, "bob's security code changed — accept it or verify again to send");
        let (code, text) = message(tidings_core::Error::SecurityCodeMismatch("bob".into()));
        assert_eq!(code, "security_code_mismatch");
        assert!(text.contains("not the security code you share with bob"), "{text}");
        let not_a_code = tidings_core::contact::VerifyCode::parse("hello").expect_err("no code");
        assert_eq!(message(not_a_code.clone().into()).0, "bad_verify_code");
        let scanned = tidings_core::contact::ScanError::Code(not_a_code);
        assert_eq!(message(scanned.into()).0, "bad_verify_code");
        let blank =
            tidings_core::contact::ScanError::<tidings_core::contact::VerifyCodeError>::NoCode;
        assert_eq!(message(blank.into()).0, "no_code");
    }

    #[test]
    fn no_shared_encryption_says_to_write_first() {
        let e = AppError::from(tidings_core::Error::NoSharedEncryption("bob".into()));
        let json = serde_json::to_value(&e).expect("serializes");
        assert_eq!(json["code"], "no_shared_encryption");
        assert_eq!(json["message"], "No encrypted chat with bob yet — write to them first");
    }
}
