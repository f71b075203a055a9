//! Identity keys and device certificates.
//!
//! Each user has one **identity key** (Ed25519), made by the first device that signs in with a
//! password and handed to every device linked from it (by QR code: `crate::link`). The
//! identity key certifies each device's leaf: the leaf's credential carries the user and
//! device ids, the identity's public key, and the identity's signature over those ids and the
//! leaf's signature key. A leaf whose certificate does not verify is refused wherever it enters
//! a group — a claimed KeyPackage, a Welcome's tree, a GroupInfo's tree, the new leaves of a
//! commit — so the server, which decides who is in a room, cannot slip in a device that the
//! user's identity did not certify without the identity changing. Signing in with only a
//! password makes a new identity: contacts see a changed security code.
//!
//! ```text
//! credential identity (112 bytes) = user (8, big-endian) ‖ device (8, big-endian)
//!                                 ‖ identity public key (32)
//!                                 ‖ certificate (64) = Ed25519 by the identity key over
//!                                   "tidings device certificate v1" ‖ user ‖ device
//!                                   ‖ leaf signature key (32)
//! ```
//!
//! **Verification by one scan** (crate::verification). A contact code carries the identity
//! key's [`IdentityKey::fingerprint`] and the identity's [`Identity::contact_secret`], which
//! only devices holding the identity's private key can derive. The scanner checks the
//! fingerprint against the leaves the server handed out, then sends, sealed in the direct
//! room, a [`proof`]: an HMAC under that secret over both users and both identity keys as the
//! scanner saw them. The owner's devices recompute it: it verifies the scanner's key, as the
//! owner's group shows it, without a second scan.

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use rusqlite::{Connection, OptionalExtension};

use super::{E2eeError, LeafId};

const CERTIFICATE_CONTEXT: &[u8] = b"tidings device certificate v1";
const FINGERPRINT_CONTEXT: &[u8] = b"tidings identity fingerprint v1";
const CONTACT_SECRET_CONTEXT: &[u8] = b"tidings contact secret v1";
const PROOF_CONTEXT: &[u8] = b"tidings verification proof v1";

/// Length of a leaf credential's identity field.
pub const CREDENTIAL_LEN: usize = 16 + 32 + 64;

/// A user's identity public key: what a security code is computed from.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdentityKey(pub [u8; 32]);

impl std::fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IdentityKey(")?;
        for b in &self.0[..4] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

impl IdentityKey {
    /// What a contact code carries of it: SHA-256 over a context and the key.
    pub fn fingerprint(&self) -> [u8; 32] {
        use sha2::Digest as _;
        let mut hash = sha2::Sha256::new();
        hash.update(FINGERPRINT_CONTEXT);
        hash.update(self.0);
        hash.finalize().into()
    }
}

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

fn hmac(key: &[u8]) -> HmacSha256 {
    use hmac::Mac as _;
    HmacSha256::new_from_slice(key).expect("HMAC takes a key of any length")
}

/// The proof that whoever sent it, `scanner`, saw `owner`'s contact code, whose secret is
/// `secret`: an HMAC-SHA256 under the secret over both users and identity keys.
pub fn proof(
    secret: &[u8; 16],
    owner: (i64, &IdentityKey),
    scanner: (i64, &IdentityKey),
) -> [u8; 32] {
    use hmac::Mac as _;
    proof_mac(secret, owner, scanner).finalize().into_bytes().into()
}

fn proof_mac(
    secret: &[u8; 16],
    owner: (i64, &IdentityKey),
    scanner: (i64, &IdentityKey),
) -> HmacSha256 {
    use hmac::Mac as _;
    let mut mac = hmac(secret);
    mac.update(PROOF_CONTEXT);
    for (user, key) in [owner, scanner] {
        mac.update(&user.to_be_bytes());
        mac.update(&key.0);
    }
    mac
}

/// Whether `tag` is the [`proof`] for these users and keys (compared in constant time).
pub fn proof_holds(
    tag: &[u8],
    secret: &[u8; 16],
    owner: (i64, &IdentityKey),
    scanner: (i64, &IdentityKey),
) -> bool {
    use hmac::Mac as _;
    proof_mac(secret, owner, scanner).verify_slice(tag).is_ok()
}

/// A user's identity: the private key that certifies the user's devices. It never leaves the
/// profile except sealed inside a link code's offer.
pub struct Identity {
    user: i64,
    key: SigningKey,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity").field("user", &self.user).field("key", &self.public()).finish()
    }
}

impl Identity {
    /// A new identity for `user`.
    pub fn generate(user: i64) -> Self {
        Self::from_secret(user, rand::random())
    }

    /// The identity whose private key is `secret` (received from a linking device).
    pub fn from_secret(user: i64, secret: [u8; 32]) -> Self {
        Self { user, key: SigningKey::from_bytes(&secret) }
    }

    /// The private key, for sealing into a link offer.
    pub fn secret(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// The secret this identity's contact codes carry: HMAC-SHA256 under the private key,
    /// truncated to 16 bytes — every device linked with the identity derives the same, and
    /// no one else can.
    pub fn contact_secret(&self) -> [u8; 16] {
        use hmac::Mac as _;
        let mut mac = hmac(&self.key.to_bytes());
        mac.update(CONTACT_SECRET_CONTEXT);
        let tag: [u8; 32] = mac.finalize().into_bytes().into();
        let mut secret = [0u8; 16];
        secret.copy_from_slice(&tag[..16]);
        secret
    }

    /// Whose identity this is.
    pub fn user(&self) -> i64 {
        self.user
    }

    /// The public key.
    pub fn public(&self) -> IdentityKey {
        IdentityKey(self.key.verifying_key().to_bytes())
    }

    /// The profile's identity for `user`, if it has one.
    pub fn load(conn: &Connection, user: i64) -> Result<Option<Self>, E2eeError> {
        let secret: Option<Vec<u8>> = conn
            .query_row("SELECT secret FROM e2ee_identity WHERE user = ?1", [user], |r| r.get(0))
            .optional()?;
        let Some(secret) = secret else { return Ok(None) };
        let secret: [u8; 32] =
            secret.try_into().map_err(|_| E2eeError::Malformed("a stored identity key"))?;
        Ok(Some(Self::from_secret(user, secret)))
    }

    /// Stores this identity as the profile's (replacing any other).
    pub fn store(&self, conn: &Connection) -> Result<(), E2eeError> {
        conn.execute(
            "INSERT INTO e2ee_identity (id, user, secret) VALUES (1, ?1, ?2)
             ON CONFLICT (id) DO UPDATE SET user = excluded.user, secret = excluded.secret",
            rusqlite::params![self.user, self.key.to_bytes().as_slice()],
        )?;
        Ok(())
    }

    /// The credential identity of leaf `id` whose signature key is `signature_key`.
    pub(super) fn certify(&self, id: LeafId, signature_key: &[u8]) -> Vec<u8> {
        let signature = self.key.sign(&certified_bytes(id, signature_key));
        let mut credential = Vec::with_capacity(CREDENTIAL_LEN);
        credential.extend_from_slice(&id.user.to_be_bytes());
        credential.extend_from_slice(&id.device.to_be_bytes());
        credential.extend_from_slice(self.key.verifying_key().as_bytes());
        credential.extend_from_slice(&signature.to_bytes());
        credential
    }
}

fn certified_bytes(id: LeafId, signature_key: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(CERTIFICATE_CONTEXT.len() + 16 + signature_key.len());
    bytes.extend_from_slice(CERTIFICATE_CONTEXT);
    bytes.extend_from_slice(&id.user.to_be_bytes());
    bytes.extend_from_slice(&id.device.to_be_bytes());
    bytes.extend_from_slice(signature_key);
    bytes
}

/// The leaf a credential identity names, read without checking its certificate (for a leaf
/// already in the group, whose certificate was checked when it entered).
pub(super) fn leaf(credential: &[u8]) -> Result<(LeafId, IdentityKey), E2eeError> {
    if credential.len() != CREDENTIAL_LEN {
        return Err(E2eeError::Malformed("a leaf credential of the wrong length"));
    }
    let word = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&credential[at..at + 8]);
        i64::from_be_bytes(b)
    };
    let mut key = [0u8; 32];
    key.copy_from_slice(&credential[16..48]);
    Ok((LeafId { user: word(0), device: word(8) }, IdentityKey(key)))
}

/// The leaf a credential identity names, once its certificate verifies for `signature_key`.
pub(super) fn certified(
    credential: &[u8],
    signature_key: &[u8],
) -> Result<(LeafId, IdentityKey), E2eeError> {
    let (id, identity) = leaf(credential)?;
    let key = VerifyingKey::from_bytes(&identity.0)
        .map_err(|_| E2eeError::Uncertified("an identity key that is not a curve point"))?;
    let mut signature = [0u8; 64];
    signature.copy_from_slice(&credential[48..]);
    key.verify_strict(&certified_bytes(id, signature_key), &Signature::from_bytes(&signature))
        .map_err(|_| E2eeError::Uncertified("a device certificate that does not verify"))?;
    Ok((id, identity))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_identity_derives_its_secret_and_a_proof_binds_both_users_and_keys() {
        let alice = Identity::generate(1);
        let linked = Identity::from_secret(1, alice.secret());
        let mallory = Identity::generate(1);
        assert_eq!(alice.contact_secret(), linked.contact_secret(), "every linked device");
        assert_ne!(alice.contact_secret(), mallory.contact_secret());
        assert_ne!(alice.public().fingerprint(), mallory.public().fingerprint());

        let bob = Identity::generate(2).public();
        let (a, m) = (alice.public(), mallory.public());
        let secret = alice.contact_secret();
        let tag = proof(&secret, (1, &a), (2, &bob));
        assert!(proof_holds(&tag, &secret, (1, &a), (2, &bob)));
        // Another secret (a code that was not Alice's), another key on either side, another
        // user, or a damaged tag: no.
        assert!(!proof_holds(&tag, &mallory.contact_secret(), (1, &a), (2, &bob)));
        assert!(!proof_holds(&tag, &secret, (1, &m), (2, &bob)));
        assert!(!proof_holds(&tag, &secret, (1, &a), (2, &m)));
        assert!(!proof_holds(&tag, &secret, (1, &a), (3, &bob)));
        assert!(!proof_holds(&tag[..31], &secret, (1, &a), (2, &bob)));
        assert!(!proof_holds(&[], &secret, (1, &a), (2, &bob)));
    }
}
