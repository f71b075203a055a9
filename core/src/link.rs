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

use chacha20poly1305::{aead::Aead, ChaCha20Poly1305, KeyInit};
use sha2::{Digest, Sha256};

pub use tidings_proto::link::{LinkCode, LinkCodeError};

use crate::{contact::Code, e2ee::Identity, Error};

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
}

/// Associated data of the sealed payload: what it is, so it opens as nothing else.
const SEALED_AAD: &[u8] = b"tidings link offer v1";

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

/// The payload for the new device: the user's id and identity private key, sealed. (The key
/// is used once, for this one payload, so a fixed nonce is safe.)
pub(crate) fn seal(secret: &[u8; 32], identity: &Identity) -> Vec<u8> {
    let mut plain = Vec::with_capacity(40);
    plain.extend_from_slice(&identity.user().to_be_bytes());
    plain.extend_from_slice(&identity.secret());
    let payload = chacha20poly1305::aead::Payload { msg: &plain, aad: SEALED_AAD };
    let sealed = cipher(secret).encrypt(&Default::default(), payload);
    plain.fill(0);
    sealed.unwrap_or_default()
}

/// Opens what the server handed over with a session for `user`: the identity to certify
/// this device with. A payload that does not open, or that names another user, was not made
/// by my other device for this code.
pub(crate) fn open(secret: &[u8; 32], sealed: &[u8], user: i64) -> Result<Identity, Error> {
    let refused = || Error::LinkRefused;
    let payload = chacha20poly1305::aead::Payload { msg: sealed, aad: SEALED_AAD };
    let mut plain = cipher(secret).decrypt(&Default::default(), payload).map_err(|_| refused())?;
    if plain.len() != 40 || plain[..8] != user.to_be_bytes() {
        plain.fill(0);
        return Err(refused());
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(&plain[8..]);
    plain.fill(0);
    Ok(Identity::from_secret(user, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_code_opens_its_offer_and_only_for_its_user() {
        let secret = [7u8; 32];
        let identity = Identity::generate(42);
        let sealed = seal(&secret, &identity);
        assert_eq!(open(&secret, &sealed, 42).unwrap().public(), identity.public());
        assert!(open(&[8u8; 32], &sealed, 42).is_err(), "another code");
        assert!(open(&secret, &sealed, 43).is_err(), "handed over with another user's session");
        let mut changed = sealed.clone();
        changed[3] ^= 1;
        assert!(open(&secret, &changed, 42).is_err(), "changed by the server");
        assert!(open(&secret, &[], 42).is_err());
        assert_ne!(offer_id(&secret), secret, "the server's id is not the secret");
    }
}
