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
