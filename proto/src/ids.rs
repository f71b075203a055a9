//! Identifiers. The server assigns user, device, room and media ids; the client makes request
//! ids (before any I/O, so they survive in its outbox) and call ids.

use std::fmt;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

macro_rules! int_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

int_id!(
    /// A user account, assigned by the server at sign-up.
    UserId
);
int_id!(
    /// One signed-in device of a user (a session), assigned at sign-in.
    DeviceId
);
int_id!(
    /// A room (direct or group), assigned by the server when the room is created.
    RoomId
);
int_id!(
    /// An uploaded media object, assigned by the server on upload.
    MediaId
);

/// Position of an event in its room's log: 1, 2, 3 … with no gaps. 0 means "before the first".
pub type Seq = u64;

/// A call, chosen by the caller. Glare is settled by comparing call ids.
pub type CallId = u64;

/// The client's idempotency key for a mutation (a UUID's 16 bytes), made when the operation
/// enters the outbox and reused on every resend.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub [u8; 16]);

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequestId({self})")
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Text that is not a request id (32 hexadecimal digits).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a request id (32 hexadecimal digits)")]
pub struct BadRequestId(pub String);

impl std::str::FromStr for RequestId {
    type Err = BadRequestId;

    /// Reads what [`fmt::Display`] writes.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadRequestId(s.chars().take(40).collect());
        if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let mut out = [0u8; 16];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(Self(out))
    }
}

impl Serialize for RequestId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for RequestId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = RequestId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("16 bytes")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<RequestId, E> {
                <[u8; 16]>::try_from(v)
                    .map(RequestId)
                    .map_err(|_| E::invalid_length(v.len(), &self))
            }
        }
        d.deserialize_bytes(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_id_reads_back_what_it_writes_and_nothing_else() {
        let id = RequestId(*b"\x00\x01\x7f\x80\xff0123456789a");
        assert_eq!(id.to_string().parse::<RequestId>(), Ok(id));
        assert_eq!("00017F80FF3031323334353637383961".parse::<RequestId>(), Ok(id));
        for bad in [
            "",
            "0001",
            &"0".repeat(33),
            &"g".repeat(32),
            "+1+2+3+4+5+6+7+8+9+a+b+c+d+e+f+0",
            "é".repeat(16).as_str(),
        ] {
            assert!(bad.parse::<RequestId>().is_err(), "{bad:?}");
        }
    }
}
