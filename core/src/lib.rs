//! tidings-core: the client engine of Tidings (shared/DESIGN.md §3).
//!
//! It owns all client state in SQLite so that whatever the network does, what a user sends is
//! saved at once, delivered when it can be, never lost and never duplicated. The map:
//!
//! - [`client`] — the handle front ends hold: the profile's database and its events; every
//!   action goes through a domain handle named after it (the table in [`client`]):
//!   [`sessions`] and [`account`], [`rooms`], [`timeline`], [`send_queue`] (with
//!   [`attachments`] and the rules in [`outbox`]), [`media`], [`contact`], [`nearby`],
//!   [`call`];
//! - [`sync`] — the connection: a sync session that joins, catches up, flushes the send
//!   queue and sends receipts, and carries the relay (`relay.rs`: requests, typing, call signals)
//!   while it is live;
//! - [`endpoint`] — the server's address and the one way to reach it (TLS unless local,
//!   the platform's trust store or a pinned certificate);
//! - [`apply`] — applying server events, watermarks and confirmations to the store;
//! - [`photo`], [`video`] — photos and videos made ready to send, off the runtime;
//! - [`model`] — what front ends render, and the change events;
//! - [`typing`] — who is typing where (in memory, expiring);
//! - [`link`] — linking a new device by QR code (the sealed identity it receives), and
//!   [`history`] — the archive of past chats that may come with it;
//! - [`keychain`] — the session token (and the database's key) in the OS keychain;
//! - [`store`] — the profile's database: encryption at rest, pragmas and the migrations in
//!   `migrations/`; [`profile_key`] — its key and where it is kept.
//!
//! Modules depend on [`client`], never the reverse, and there are no import cycles
//! (`tests/architecture.rs` checks).

pub mod account;
pub mod apply;
pub mod attachments;
pub mod body;
pub mod call;
pub mod client;
pub mod contact;
pub mod disappearing;
pub mod drafts;
pub mod e2ee;
pub mod endpoint;
pub mod history;
pub mod keychain;
pub mod link;
pub mod media;
pub mod mentions;
pub mod model;
pub mod nearby;
pub mod outbox;
pub mod photo;
pub mod profile_key;
pub mod relations;
pub(crate) mod relay;
pub mod rooms;
pub mod search;
pub mod send_queue;
pub mod sessions;
pub(crate) mod stamp;
pub mod store;
pub mod sync;
#[cfg(test)]
pub(crate) mod testing;
pub mod timeline;
pub mod typing;
pub mod verification;
pub mod video;

pub use account::Account;
pub use client::{Client, Subscription};
pub use model::*;
/// What can go wrong in the client engine. Front ends branch on the variant.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The profile's database could not be opened.
    #[error(transparent)]
    Open(#[from] store::OpenError),
    /// A database operation failed.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A file could not be read or written.
    #[error("file error: {0}")]
    Io(String),
    /// The profile is not signed in.
    #[error("this profile is not signed in; sign up or log in first")]
    NotSignedIn,
    /// No room with this id in the profile.
    #[error("no room {0} in this profile")]
    NoSuchRoom(i64),
    /// I am no longer a member of the room.
    #[error("you are no longer a member of room {0}")]
    NotAMember(i64),
    /// The room is not a request (accepted already, or mine).
    #[error("room {0} is not a request")]
    NotARequest(i64),
    /// No failed outbox item with this id.
    #[error("no failed outbox item {0}")]
    NoSuchOutboxItem(i64),
    /// No message with this request id in the room (or it was deleted).
    #[error("no message {0} in this room")]
    NoSuchMessage(String),
    /// Only a message's sender edits it or deletes it for everyone.
    #[error("message {0} is someone else's: only its sender can edit or delete it")]
    NotYourMessage(String),
    /// A photo cannot be sent (format, size, damage); nothing was queued.
    #[error(transparent)]
    Photo(#[from] photo::PhotoError),
    /// The message has no photo, or no such message.
    #[error("no photo in message {seq} of room {room}")]
    NoSuchImage {
        /// The room.
        room: i64,
        /// The message's seq.
        seq: u64,
    },
    /// An attachment that does not open with its message's key or does not match the
    /// digest its message carries (damaged, or replaced on the server). Nothing of it was
    /// kept: opening it again downloads it again.
    #[error("the attachment does not match its message (damaged or replaced on the server)")]
    AttachmentDamaged,
    /// A contact code for another server than this profile's.
    #[error("this contact code is for another server ({server}); this profile is on another")]
    ForeignServer {
        /// The code's server.
        server: String,
    },
    /// No contact code could be read from an image.
    #[error(transparent)]
    Scan(#[from] contact::ScanError),
    /// Text that is not a valid contact code.
    #[error(transparent)]
    ContactCode(#[from] contact::ContactCodeError),
    /// Text that is not a valid link code.
    #[error(transparent)]
    LinkCode(#[from] link::LinkCodeError),
    /// No link code could be read from an image.
    #[error(transparent)]
    LinkScan(#[from] contact::ScanError<link::LinkCodeError>),
    /// The server handed over a link offer that the code did not make (changed on the way, or
    /// another account's): nothing was kept.
    #[error("the server handed over a link offer this code did not make")]
    LinkRefused,
    /// The history archive that came with this device's link was not imported (damaged,
    /// gone, too large, malformed): nothing of it was kept, and nothing else was lost.
    #[error(transparent)]
    History(#[from] history::HistoryError),
    /// A value given by the user is not acceptable.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// No encrypted room with this person yet, so no key of theirs to compute a security
    /// code from: write to them first.
    #[error("no encrypted chat with {0} yet: write to them first")]
    NoSharedEncryption(String),
    /// The identity key the server handed out for the user whose contact code was scanned
    /// is not the one their code shows: someone may be intercepting. They are not verified,
    /// and sending to them is held until the new key is accepted (crate::verification).
    #[error(
        "the key the server gave for {0} is not the one in their code: someone may be \
         intercepting. {0} is not verified; compare security codes in person"
    )]
    KeyMismatch(String),
    /// A verified contact's identity key changed: sending into rooms with them is held until
    /// I accept the new key or verify them again.
    #[error("{0}'s security code changed: accept the new one or verify {0} again to send")]
    KeyChanged(String),
    /// A scanned security code is not the one I share with the user: not verified.
    #[error("this is not the security code you share with {0}: {0} is not verified")]
    SecurityCodeMismatch(String),
    /// Text that is not a valid verify code.
    #[error(transparent)]
    VerifyCode(#[from] tidings_proto::verify::VerifyCodeError),
    /// No verify code could be read from an image.
    #[error(transparent)]
    VerifyScan(#[from] contact::ScanError<tidings_proto::verify::VerifyCodeError>),
    /// A server address that cannot be used (malformed, or plain http to the internet).
    #[error(transparent)]
    Address(#[from] endpoint::AddressError),
    /// The server's certificate was refused; nothing was sent.
    #[error(transparent)]
    Tls(#[from] endpoint::TlsFailure),
    /// The server could not be reached or the connection broke.
    #[error("network: {0}")]
    Network(String),
    /// The server answered with an error.
    #[error("server: {0}")]
    Server(tidings_proto::ErrorInfo),
    /// The OS keychain holds this profile's session token and did not give it (locked,
    /// or the entry was removed): unlock it, or sign in again.
    #[error("the system keychain did not give the session token: {0}")]
    Keychain(String),
    /// A fault in this program.
    #[error("internal error: {0}")]
    Internal(String),
}
