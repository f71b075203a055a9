//! Security codes: the 60 digits two people compare — read aloud, or side by side — to know
//! that the keys their devices encrypt to are each other's (issue 17; shared/e2ee.md §9).
//!
//! Each person contributes 30 digits computed from their user id and their identity key (the
//! key that certifies every device of theirs: [`super::identity`]), so a new device linked
//! from an existing one changes nothing, and a new identity (a password-only sign-in) changes
//! that person's half. The construction is Signal's safety number: SHA-512 over a version,
//! the key and the id, then 5,200 more rounds over the previous hash and the key (so trying
//! keys until a half matches costs 5,200 hashes per try); the first 30 bytes as six 5-byte
//! big-endian numbers, each modulo 100,000, give six 5-digit groups. The two halves go in
//! ascending order, so both people see the same 60 digits.

use sha2::{Digest, Sha512};

use super::IdentityKey;

/// Hash rounds per half.
pub const ROUNDS: usize = 5_200;

/// The code's version, hashed first (a later construction gets another).
const VERSION: [u8; 2] = [0, 0];

/// The security code two people share: 60 digits.
#[derive(Clone, PartialEq, Eq)]
pub struct SecurityCode(String);

impl SecurityCode {
    /// The code of `a` and `b` (each a user id and identity key), the same whichever is which.
    pub fn of(a: (i64, &IdentityKey), b: (i64, &IdentityKey)) -> Self {
        let (a, b) = (half(a.0, a.1), half(b.0, b.1));
        Self(if a <= b { a + &b } else { b + &a })
    }

    /// The 60 digits.
    pub fn digits(&self) -> &str {
        &self.0
    }

    /// The 60 digits in twelve groups of five, as people read them.
    pub fn grouped(&self) -> String {
        let groups: Vec<&str> = (0..12).map(|i| &self.0[i * 5..i * 5 + 5]).collect();
        groups.join(" ")
    }
}

impl std::fmt::Debug for SecurityCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecurityCode({})", self.grouped())
    }
}

/// One person's 30 digits.
fn half(user: i64, key: &IdentityKey) -> String {
    let mut hash = Sha512::new()
        .chain_update(VERSION)
        .chain_update(key.0)
        .chain_update(user.to_be_bytes())
        .finalize();
    for _ in 0..ROUNDS {
        hash = Sha512::new().chain_update(hash).chain_update(key.0).finalize();
    }
    hash[..30]
        .chunks(5)
        .map(|chunk| {
            let n = chunk.iter().fold(0u64, |n, b| n << 8 | u64::from(*b));
            format!("{:05}", n % 100_000)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_see_the_same_sixty_digits_and_any_other_key_changes_them() {
        let (alice, bob) = (IdentityKey([1; 32]), IdentityKey([2; 32]));
        let code = SecurityCode::of((10, &alice), (20, &bob));
        assert_eq!(code, SecurityCode::of((20, &bob), (10, &alice)));
        assert_eq!(code.digits().len(), 60);
        assert!(code.digits().bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(code.grouped().len(), 60 + 11);
        // Fixed: a later version of this code must compute the same digits for the same keys.
        assert_eq!(code.grouped(), KNOWN);
        // Another identity for Bob changes his half and so the code; so does another id.
        assert_ne!(code, SecurityCode::of((10, &alice), (20, &IdentityKey([3; 32]))));
        assert_ne!(code, SecurityCode::of((10, &alice), (21, &bob)));
        // Alice's half stays hers, in whichever pair.
        let with_carol = SecurityCode::of((10, &alice), (30, &IdentityKey([4; 32])));
        let alice_half = half(10, &alice);
        assert!(code.digits().contains(&alice_half) && with_carol.digits().contains(&alice_half));
    }

    /// Computed independently (Python's hashlib, the construction in the module's docs).
    const KNOWN: &str = "49476 67773 18959 10202 64645 24379 72637 76280 11349 87682 45086 11335";
}
