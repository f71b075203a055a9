//! Disappearing messages: a room's timer, and erasing its messages when they expire, on
//! every device.
//!
//! The timer is set by a sealed message (`disappearing` in its body: seconds, 0 for off),
//! shown as a notice, and taken by each device in log order, so the last setting in the log
//! is the room's timer everywhere ([`expiry::set`], applied in crate::apply). The server never sees
//! it.
//!
//! Each message sent while the timer is on carries its own timer (`expires_in`), as the
//! sender saw it: a device erases it `expires_in` seconds after it was sent (`at_ms`), so every
//! device agrees on each message whatever order settings and messages reach it in. (A device
//! counts from the time it has for the message: the server's, or for the sender's own device,
//! its own clock when it sent — they differ by the trip to the server.)
//!
//! Expiry is enforced three ways: reads never show an expired message (the timeline's query
//! checks `expires_ms`); [`expiry::sweep`] erases expired messages — content, edits, reactions,
//! search entry, like a deletion for everyone (crate::relations), and hides the stub — when the
//! profile opens, when a message that expired already arrives, and from [`Client::expire`]
//! while the app or `tidings listen` runs; and an edit or deletion of an erased message
//! does nothing, as for a deleted one. The server keeps the sealed ciphertext as it keeps any
//! message's; it cannot read it.

use std::time::Duration;

use crate::{model::Event, stamp::now_ms, Client, Error};

pub(crate) mod expiry;

pub use expiry::{timer, MAX_TIMER_S};

impl Client {
    /// Erases the messages that expired (disappearing messages, [`crate::disappearing`]), then
    /// waits until the next one expires, for ever: the app and `tidings listen` run it beside
    /// the sync session. Messages that arrive meanwhile with an earlier expiry are caught
    /// within [`RECHECK`].
    pub async fn expire(&self) -> Result<(), Error> {
        loop {
            let (rooms, next) = self
                .db(|c| {
                    let tx = c.transaction()?;
                    let rooms = expiry::sweep(&tx, now_ms())?;
                    let next = expiry::next(&tx)?;
                    tx.commit()?;
                    Ok((rooms, next))
                })
                .await?;
            if !rooms.is_empty() {
                self.emit(rooms.into_iter().map(|room| Event::TimelineChanged { room }));
                self.emit([Event::RoomsChanged]);
            }
            let wait = next.map_or(RECHECK, |at| {
                Duration::from_millis((at - now_ms()).clamp(0, RECHECK.as_millis() as i64) as u64)
            });
            tokio::time::sleep(wait).await;
        }
    }
}

/// How often [`Client::expire`] looks again when it knows of no sooner expiry.
pub const RECHECK: Duration = Duration::from_secs(1);
