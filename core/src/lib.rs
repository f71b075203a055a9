//! tidings-core: the client engine of Tidings (shared/DESIGN.md §3).
//!
//! It owns all client state in SQLite so that whatever the network does, what a user sends is
//! saved at once, delivered when it can be, never lost and never duplicated. This is its
//! beginning; the map so far:
//!
//! - [`store`] — the profile's database: pragmas and the migrations in `migrations/`;
//! - [`outbox`] — the sans-IO rules for sending the outbox: order per room, failures that do
//!   not block, backoff with jitter.

pub mod outbox;
pub mod store;
