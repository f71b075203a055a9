//! Call signals sealed for a room's group: the SDP offers and answers and the ICE candidates
//! of a call go through the server, which relays them without reading them.
//!
//! A signal is not an event of the room's log: it is relayed live, and may arrive before the
//! receiver has caught up messages of the same sender. Sealing it as an MLS application
//! message would move the sender's ratchet out of log order, and a receiver that opened the
//! signal first could no longer open those messages. So a signal is sealed with a key the
//! group **exports** for that one call (RFC 9420 §8.5: every member at the epoch derives the
//! same key, nobody else can), and **signed with the sending leaf's signature key**, which the
//! receiver finds in the group by the (user, device) the server says sent it: a member cannot
//! pass a signal off as another's, and the server can neither read nor forge one.
//!
//! ```text
//! sealed = "TSS1" ‖ epoch (8) ‖ kind (1) ‖ nonce (12) ‖ ChaCha20-Poly1305(key, nonce,
//!          aad = the 25 header bytes, the signal's blob) ‖ signature (64)
//! key    = MLS-Exporter("tidings call signal v1", call id (8, big-endian), 32)
//! signed = "tidings call signal v1" ‖ call id ‖ sender user ‖ sender device ‖ everything
//!          before the signature
//! ```
//!
//! Both sides must be at the same epoch (a commit during call setup fails that signal; the
//! call's own timeouts end it, as for a lost signal).

use chacha20poly1305::{aead::Aead, ChaCha20Poly1305, KeyInit};
use ed25519_dalek::{Signature, VerifyingKey};
use openmls::prelude::*;
use openmls_traits::signatures::Signer as _;
use rusqlite::Connection;

use super::{load, refused, Device, E2eeError, LeafId, Provider};

const MAGIC: &[u8; 4] = b"TSS1";
const LABEL: &str = "tidings call signal v1";
const HEADER: usize = 4 + 8 + 1 + 12;
const SIGNATURE: usize = 64;

/// Whether a signal's blob is sealed (else it is in clear, which no Tidings device sends).
pub fn is_sealed(blob: &[u8]) -> bool {
    blob.starts_with(MAGIC)
}

/// Bytes added by sealing.
pub const OVERHEAD: usize = HEADER + 16 + SIGNATURE;

fn signed_bytes(call: u64, sender: LeafId, sealed: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(LABEL.len() + 24 + sealed.len());
    bytes.extend_from_slice(LABEL.as_bytes());
    bytes.extend_from_slice(&call.to_be_bytes());
    bytes.extend_from_slice(&sender.user.to_be_bytes());
    bytes.extend_from_slice(&sender.device.to_be_bytes());
    bytes.extend_from_slice(sealed);
    bytes
}

fn cipher(
    mls: &MlsGroup,
    provider: &Provider<'_>,
    call: u64,
) -> Result<ChaCha20Poly1305, E2eeError> {
    let key =
        mls.export_secret(&provider.crypto, LABEL, &call.to_be_bytes(), 32).map_err(refused)?;
    ChaCha20Poly1305::new_from_slice(&key).map_err(refused)
}

impl Device {
    /// Seals `blob`, a signal of kind `kind` (the caller's tag: offer, answer, candidate) in
    /// call `call`, for the members of `group` at its current epoch.
    pub fn seal_signal(
        &self,
        conn: &Connection,
        group: &[u8],
        call: u64,
        kind: u8,
        blob: &[u8],
    ) -> Result<Vec<u8>, E2eeError> {
        let provider = Provider::new(conn);
        let mls = load(&provider, group)?;
        let nonce: [u8; 12] = rand::random();
        let mut sealed = Vec::with_capacity(blob.len() + OVERHEAD);
        sealed.extend_from_slice(MAGIC);
        sealed.extend_from_slice(&mls.epoch().as_u64().to_be_bytes());
        sealed.push(kind);
        sealed.extend_from_slice(&nonce);
        let payload = chacha20poly1305::aead::Payload { msg: blob, aad: &sealed };
        let ciphertext =
            cipher(&mls, &provider, call)?.encrypt(&nonce.into(), payload).map_err(refused)?;
        sealed.extend_from_slice(&ciphertext);
        let signature = self
            .signer
            .sign(&signed_bytes(call, self.id, &sealed))
            .map_err(|e| E2eeError::Refused(format!("signing a call signal: {e:?}")))?;
        sealed.extend_from_slice(&signature);
        Ok(sealed)
    }
}

/// Opens a signal of kind `kind` in call `call` that the server says `from` sent: its blob,
/// if `from` is a leaf of `group` whose key signed it, for this call and kind, at the epoch
/// this device is at.
pub fn open_signal(
    conn: &Connection,
    group: &[u8],
    call: u64,
    kind: u8,
    from: LeafId,
    sealed: &[u8],
) -> Result<Vec<u8>, E2eeError> {
    if !is_sealed(sealed) || sealed.len() < OVERHEAD {
        return Err(E2eeError::Malformed("a sealed call signal"));
    }
    let (body, signature) = sealed.split_at(sealed.len() - SIGNATURE);
    let (header, ciphertext) = body.split_at(HEADER);
    let provider = Provider::new(conn);
    let mls = load(&provider, group)?;
    let epoch = u64::from_be_bytes(header[4..12].try_into().unwrap_or_default());
    if epoch != mls.epoch().as_u64() {
        return Err(E2eeError::Refused(format!(
            "a call signal sealed at epoch {epoch}, this device is at {}",
            mls.epoch().as_u64()
        )));
    }
    if header[12] != kind {
        return Err(E2eeError::Refused("a call signal of another kind".into()));
    }
    let key = mls
        .members()
        .find(|m| LeafId::from_credential(&m.credential).is_ok_and(|leaf| leaf == from))
        .ok_or(E2eeError::Refused("a call signal from a device not in the group".into()))?
        .signature_key;
    let key: [u8; 32] =
        key.try_into().map_err(|_| E2eeError::Malformed("a leaf's signature key"))?;
    let signature: [u8; 64] =
        signature.try_into().map_err(|_| E2eeError::Malformed("a signal's signature"))?;
    VerifyingKey::from_bytes(&key)
        .and_then(|key| {
            key.verify_strict(&signed_bytes(call, from, body), &Signature::from_bytes(&signature))
        })
        .map_err(|_| E2eeError::Refused("a call signal its sender did not sign".into()))?;
    let nonce: [u8; 12] = header[13..].try_into().unwrap_or_default();
    let payload = chacha20poly1305::aead::Payload { msg: ciphertext, aad: header };
    cipher(&mls, &provider, call)?
        .decrypt(&nonce.into(), payload)
        .map_err(|_| E2eeError::Refused("a call signal that does not open".into()))
}
