//! tidings-proto: the wire protocol shared by the Tidings client core and server.
//!
//! No I/O and no async: types, encoding, limits and validation, so that it can be fuzzed and
//! reused by any client. The map:
//!
//! - [`frame`] — every frame ([`ClientFrame`] up, [`ServerFrame`] down), with the room log's
//!   event types, call signals and typed error codes;
//! - [`codec`] — MessagePack encoding that tolerates added fields and unknown frame kinds;
//! - [`bounded`] — strings, byte strings and lists whose limits are checked while decoding,
//!   before allocating;
//! - [`limits`] — the protocol's hard limits;
//! - [`ids`] — identifiers;
//! - [`validate`] — checks the server applies to user-chosen values (usernames, passwords);
//! - [`contact`] — contact codes (what QR codes carry): the typed parser for scanned text.
//!
//! docs/protocol.md describes the conversation, idempotency and limits in prose.

pub mod bounded;
pub mod codec;
pub mod contact;
pub mod frame;
pub mod ids;
pub mod limits;
pub mod link;
pub mod validate;
pub mod verify;

pub use codec::{decode_client, decode_server, encode_client, encode_server, DecodeError};
pub use frame::*;
pub use ids::*;
