//! Encoding and decoding of frames.
//!
//! Frames are MessagePack with named fields (`rmp_serde::to_vec_named`): compact, and
//! tolerant of change. A decoder ignores fields it does not know, so a newer peer may add
//! fields freely. An enum value is a one-entry map `{variant: fields}`; a frame whose kind is
//! unknown to this build decodes to [`DecodeError::UnknownKind`], which a client skips and a
//! server answers with `unknown_request`. Unit-like error codes and reasons fall back to
//! their `Other`/`Unknown` variant.
//!
//! Limits: the frame length is checked first, then every string, byte string and list
//! against its own bound while decoding (see [`crate::bounded`]), and nesting depth is capped,
//! so no input makes the decoder allocate more than a small multiple of the frame size.

use std::fmt;

use serde::{
    de::{self, IgnoredAny, MapAccess, Visitor},
    Deserialize, Deserializer, Serialize,
};

use crate::{
    frame::{ClientFrame, ServerFrame},
    limits::MAX_FRAME_BYTES,
};

/// Deepest nesting a decoder follows. Our frames nest less than 10 levels.
const MAX_DEPTH: usize = 32;

/// Why bytes could not be decoded into a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The frame is longer than [`MAX_FRAME_BYTES`].
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A well-formed frame of a kind this build does not know.
    #[error("unknown frame kind {0:?}")]
    UnknownKind(String),
    /// Not a valid frame (includes strings and lists over their limits).
    #[error("malformed frame: {0}")]
    Malformed(String),
}

/// A frame could not be encoded (only if a value breaks its own type's limits).
#[derive(Debug, thiserror::Error)]
#[error("cannot encode frame: {0}")]
pub struct EncodeError(#[from] rmp_serde::encode::Error);

/// Encodes a client frame.
pub fn encode_client(frame: &ClientFrame) -> Result<Vec<u8>, EncodeError> {
    encode(frame)
}

/// Encodes a server frame.
pub fn encode_server(frame: &ServerFrame) -> Result<Vec<u8>, EncodeError> {
    encode(frame)
}

/// Encodes any protocol value the way frames are encoded (named fields). Used for values the
/// server stores (room events) so that stored and sent bytes agree.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, EncodeError> {
    Ok(rmp_serde::to_vec_named(value)?)
}

/// Decodes any protocol value with the frame limits. The bytes must hold exactly one value:
/// anything after it (say, a second frame in the same websocket message) is `Malformed`
/// rather than silently dropped.
pub fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, DecodeError> {
    let value = decode_prefix(bytes)?;
    // The value decoded, so skipping it again is cheap and bounded like the decode itself.
    let mut rest = bytes;
    let mut de = rmp_serde::Deserializer::new(&mut rest);
    de.set_max_depth(MAX_DEPTH);
    IgnoredAny::deserialize(&mut de).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(DecodeError::Malformed(format!(
            "{} bytes after the end of the frame",
            rest.len()
        )));
    }
    Ok(value)
}

/// Decodes the value at the start of `bytes`, with the frame limits, ignoring what follows.
fn decode_prefix<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, DecodeError> {
    if bytes.len() > MAX_FRAME_BYTES {
        return Err(DecodeError::TooLarge { len: bytes.len(), max: MAX_FRAME_BYTES });
    }
    let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
    de.set_max_depth(MAX_DEPTH);
    T::deserialize(&mut de).map_err(|e| DecodeError::Malformed(e.to_string()))
}

/// Decodes a client frame.
pub fn decode_client(bytes: &[u8]) -> Result<ClientFrame, DecodeError> {
    decode(bytes).map_err(|e| match e {
        DecodeError::Malformed(_) => match peek_client(bytes) {
            Some(ClientHead { request: Some(Kind(kind)), .. })
                if !crate::frame::Request::KINDS.contains(&kind) =>
            {
                DecodeError::UnknownKind(kind.to_owned())
            }
            _ => e,
        },
        e => e,
    })
}

/// The correlation id of a client frame that may not decode, so that the error reply can
/// carry it.
pub fn peek_client_id(bytes: &[u8]) -> Option<u32> {
    peek_client(bytes).and_then(|h| h.id)
}

/// Decodes a server frame.
pub fn decode_server(bytes: &[u8]) -> Result<ServerFrame, DecodeError> {
    decode(bytes).map_err(|e| match e {
        DecodeError::Malformed(_) => match decode::<Kind<'_>>(bytes) {
            Ok(Kind(kind)) if !ServerFrame::KINDS.contains(&kind) => {
                DecodeError::UnknownKind(kind.to_owned())
            }
            _ => e,
        },
        e => e,
    })
}

/// Lenient on purpose: the id of a frame with trailing bytes still reaches its error reply.
fn peek_client(bytes: &[u8]) -> Option<ClientHead<'_>> {
    decode_prefix::<ClientHead<'_>>(bytes).ok()
}

/// The parts of a client frame needed to answer it even when it does not decode.
#[derive(Deserialize)]
struct ClientHead<'a> {
    id: Option<u32>,
    #[serde(borrow)]
    request: Option<Kind<'a>>,
}

/// The tag of an enum value (`{tag: …}` or a bare `tag`), ignoring its content.
struct Kind<'a>(&'a str);

impl<'de: 'a, 'a> Deserialize<'de> for Kind<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Kind<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an enum tag")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Kind<'de>, E> {
                Ok(Kind(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Kind<'de>, A::Error> {
                let tag: &'de str =
                    map.next_key()?.ok_or_else(|| de::Error::custom("empty enum map"))?;
                map.next_value::<IgnoredAny>()?;
                Ok(Kind(tag))
            }
        }
        let Kind(tag) = d.deserialize_any(V)?;
        Ok(Kind(tag))
    }
}
