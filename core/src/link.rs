//! Linking a new device by QR code (docs/protocol.md, "Linking a device"): what the showing
//! device seals and the new device opens. [`crate::sessions::Sessions::offer_link`] and
//! [`crate::sessions::Sessions::link`] do the talking.
//!
//! The showing device makes 32 random bytes, the code's secret. The server stores the offer
//! under the secret's SHA-256 and hands its sealed payload to whoever presents that id once,
//! within minutes, together with a new session on the account. The payload is the account's
//! identity key (crate::e2ee's `Identity`), sealed with ChaCha20-Poly1305 under a key derived
//! from the secret, so the server — which sees the id, never the secret — can neither read
//! nor replace it. The new device then certifies its own leaf with that identity and joins
//! every room by external commit, with no other device online: its contacts' security codes
//! stay the same.
//!
//! If the person chooses, the payload also says where the archive of past chats is and how it
//! opens ([`crate::history`]): its media id, length, key and digest, so that the server can
//! neither read nor swap it. Such a payload is version 2 (its own associated data); one
//! without history stays version 1, byte for byte, so older devices still link from it.

use chacha20poly1305::{aead::Aead, ChaCha20Poly1305, KeyInit};
use sha2::{Digest, Sha256};

pub use tidings_proto::link::{LinkCode, LinkCodeError};

use crate::{contact::Code, e2ee::Identity, history::HistoryRef, Error};

impl Code for LinkCode {
    type Error = LinkCodeError;
    fn to_uri(&self) -> String {
        LinkCode::to_uri(self)
    }
    fn parse(text: &str) -> Result<Self, Self::Error> {
        LinkCode::parse(text)
    }
}

/// A link offer the server holds: the code to show, and until when it works.
#[derive(Debug, Clone)]
pub struct LinkOffer {
    /// The code (its QR code: [`crate::contact::qr_png`], [`crate::contact::qr_svg`]).
    pub code: LinkCode,
    /// When the offer expires, Unix milliseconds.
    pub expires_ms: i64,
    /// The history archive sent with it, if the person chose to.
    pub history: Option<crate::history::HistorySize>,
}

/// Associated data of the sealed payload: what it is, so it opens as nothing else.
const SEALED_AAD: &[u8] = b"tidings link offer v1";
/// The same for a payload that carries a history archive's reference.
const SEALED_AAD_V2: &[u8] = b"tidings link offer v2";

/// Bytes of a payload's plaintext: the user id and the identity key, then in version 2 the
/// history reference.
const PLAIN_V1: usize = 8 + 32;
const PLAIN_V2: usize = PLAIN_V1 + HistoryRef::BYTES;
/// What sealing adds (the Poly1305 tag).
const TAG: usize = 16;

/// The offer's id on the server: the secret's SHA-256.
pub(crate) fn offer_id(secret: &[u8; 32]) -> [u8; 32] {
    Sha256::digest(secret).into()
}

fn cipher(secret: &[u8; 32]) -> ChaCha20Poly1305 {
    let mut key = Sha256::new();
    key.update(b"tidings link key v1");
    key.update(secret);
    ChaCha20Poly1305::new(&key.finalize())
}

/// The payload for the new device: the user's id and identity private key, and where the
/// history archive is if one goes with it, sealed. (The key is used once, for this one
/// payload, so a fixed nonce is safe.)
pub(crate) fn seal(
    secret: &[u8; 32],
    identity: &Identity,
    history: Option<&HistoryRef>,
) -> Vec<u8> {
    let mut plain = Vec::with_capacity(PLAIN_V2);
    plain.extend_from_slice(&identity.user().to_be_bytes());
    plain.extend_from_slice(&identity.secret());
    let aad = match history {
        Some(history) => {
            plain.extend_from_slice(&history.to_bytes());
            SEALED_AAD_V2
        }
        None => SEALED_AAD,
    };
    let payload = chacha20poly1305::aead::Payload { msg: &plain, aad };
    let sealed = cipher(secret).encrypt(&Default::default(), payload);
    plain.fill(0);
    sealed.unwrap_or_default()
}

/// Opens what the server handed over with a session for `user`: the identity to certify
/// this device with, and the history archive's reference if one came. A payload that does
/// not open, or that names another user, was not made by my other device for this code.
/// Its length says its version (the server could change the length, not make it open).
pub(crate) fn open(
    secret: &[u8; 32],
    sealed: &[u8],
    user: i64,
) -> Result<(Identity, Option<HistoryRef>), Error> {
    let refused = || Error::LinkRefused;
    let (aad, len) = match sealed.len() {
        n if n == PLAIN_V1 + TAG => (SEALED_AAD, PLAIN_V1),
        n if n == PLAIN_V2 + TAG => (SEALED_AAD_V2, PLAIN_V2),
        _ => return Err(refused()),
    };
    let payload = chacha20poly1305::aead::Payload { msg: sealed, aad };
    let mut plain = cipher(secret).decrypt(&Default::default(), payload).map_err(|_| refused())?;
    let history = match len {
        PLAIN_V2 => HistoryRef::from_bytes(&plain[PLAIN_V1..]),
        _ => None,
    };
    if plain.len() != len
        || plain[..8] != user.to_be_bytes()
        || (len == PLAIN_V2) != history.is_some()
    {
        plain.fill(0);
        return Err(refused());
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(&plain[8..PLAIN_V1]);
    plain.fill(0);
    Ok((Identity::from_secret(user, key), history))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_code_opens_its_offer_and_only_for_its_user() {
        let secret = [7u8; 32];
        let identity = Identity::generate(42);
        let sealed = seal(&secret, &identity, None);
        let (opened, history) = open(&secret, &sealed, 42).unwrap();
        assert_eq!(opened.public(), identity.public());
        assert!(history.is_none());
        assert_eq!(sealed.len(), 56, "version 1, as before history");
        assert!(open(&[8u8; 32], &sealed, 42).is_err(), "another code");
        assert!(open(&secret, &sealed, 43).is_err(), "handed over with another user's session");
        let mut changed = sealed.clone();
        changed[3] ^= 1;
        assert!(open(&secret, &changed, 42).is_err(), "changed by the server");
        assert!(open(&secret, &[], 42).is_err());
        assert_ne!(offer_id(&secret), secret, "the server's id is not the secret");
    }

    #[test]
    fn a_history_reference_goes_sealed_and_fits_the_offer() {
        let secret = [9u8; 32];
        let identity = Identity::generate(42);
        let history = HistoryRef::for_tests(77, 1234);
        let sealed = seal(&secret, &identity, Some(&history));
        assert!(sealed.len() <= tidings_proto::limits::MAX_LINK_OFFER_BYTES, "{}", sealed.len());
        let (opened, got) = open(&secret, &sealed, 42).unwrap();
        assert_eq!(opened.public(), identity.public());
        assert_eq!(got, Some(history));
        // Version 2's bytes do not open as version 1 cut short, nor under another code.
        assert!(open(&secret, &sealed[..PLAIN_V1 + TAG], 42).is_err());
        assert!(open(&[8u8; 32], &sealed, 42).is_err());
        let mut changed = sealed.clone();
        changed[60] ^= 1;
        assert!(open(&secret, &changed, 42).is_err(), "its reference changed by the server");
        // A v1 payload's bytes under v2's associated data (or the reverse) do not open.
        let v1 = seal(&secret, &identity, None);
        let payload = chacha20poly1305::aead::Payload { msg: &v1[..], aad: SEALED_AAD_V2 };
        assert!(cipher(&secret).decrypt(&Default::default(), payload).is_err());
    }
}
