//! Drafts: what I was writing in a room and did not send, kept in the profile across restarts
//! (and shown in the room list), one per room. Local to this device, never sent; sending a
//! message does not clear it by itself — the composer sets the draft it has left (empty,
//! after a send), as it does while I type.

use rusqlite::{params, OptionalExtension};

use crate::{model::Event, rooms::Room, stamp::now_ms, Error};

impl Room<'_> {
    /// Keeps `text` as this room's draft; an empty (or blank) text clears it. At most a
    /// message's size.
    pub async fn set_draft(&self, text: &str) -> Result<(), Error> {
        let max = tidings_proto::limits::MAX_PLAINTEXT_BYTES;
        if text.len() > max {
            return Err(Error::Invalid(format!("a draft may be at most {max} bytes")));
        }
        let room = self.key();
        let text = (!text.trim().is_empty()).then(|| text.to_owned());
        let changed = self
            .client()
            .db(move |c| {
                let exists: bool = c
                    .prepare_cached("SELECT EXISTS (SELECT 1 FROM rooms WHERE id = ?1)")?
                    .query_row([room], |r| r.get(0))?;
                if !exists {
                    return Err(Error::NoSuchRoom(room));
                }
                let old: Option<String> = c
                    .prepare_cached("SELECT text FROM drafts WHERE room_id = ?1")?
                    .query_row([room], |r| r.get(0))
                    .optional()?;
                if old == text {
                    return Ok(false);
                }
                match &text {
                    Some(text) => c
                        .prepare_cached(
                            "INSERT INTO drafts (room_id, text, updated_ms) VALUES (?1, ?2, ?3)
                             ON CONFLICT (room_id) DO UPDATE
                                 SET text = excluded.text, updated_ms = excluded.updated_ms",
                        )?
                        .execute(params![room, text, now_ms()])?,
                    None => c
                        .prepare_cached("DELETE FROM drafts WHERE room_id = ?1")?
                        .execute([room])?,
                };
                Ok(true)
            })
            .await?;
        if changed {
            self.client().emit([Event::RoomsChanged]);
        }
        Ok(())
    }

    /// This room's draft, if there is one.
    pub async fn draft(&self) -> Result<Option<String>, Error> {
        let room = self.key();
        self.client()
            .db(move |c| {
                Ok(c.prepare_cached("SELECT text FROM drafts WHERE room_id = ?1")?
                    .query_row([room], |r| r.get(0))
                    .optional()?)
            })
            .await
    }
}
