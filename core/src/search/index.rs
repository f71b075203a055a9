//! Keeping the search index in step with what messages show (see [`crate::search`]): a
//! leaf module the writers — apply, the send queue, relations, history — call in their own
//! transactions.

use rusqlite::{params, Connection};
use tidings_proto::{codec, EventContent};

use crate::{
    body::{decode_body, MessageBody},
    Error,
};

/// The text of stored message content that search finds: its text and its file's name.
pub(crate) fn searchable(content: &EventContent) -> Option<String> {
    let EventContent::Message { body, .. } = content else { return None };
    text_of(&decode_body(body.as_bytes())?)
}

/// [`searchable`] for a body already decoded; `None` for one that shows no text of its own
/// (a relation, a naming, a proof, a timer setting).
pub(crate) fn text_of(body: &MessageBody) -> Option<String> {
    let quiet = body.relates.is_some() || body.name.is_some() || body.verified.is_some();
    if quiet || body.disappearing.is_some() {
        return None;
    }
    let mut text = body.text.clone();
    if let Some(file) = &body.file {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&file.name);
    }
    Some(text)
}

/// Indexes event `id` with `text` (replacing what it had).
pub(crate) fn put(tx: &Connection, id: i64, text: &str) -> Result<(), Error> {
    forget(tx, id)?;
    if !text.is_empty() {
        tx.prepare_cached(
            "INSERT INTO search (rowid, text, room)
             SELECT ?1, ?2, 'r' || room_id FROM events WHERE id = ?1",
        )?
        .execute(params![id, text])?;
    }
    Ok(())
}

/// Takes event `id` out of the index.
pub(crate) fn forget(tx: &Connection, id: i64) -> Result<(), Error> {
    tx.prepare_cached("DELETE FROM search WHERE rowid = ?1")?.execute([id])?;
    Ok(())
}

/// Indexes the messages stored before the index existed, once (the migration leaves a
/// `search_backfill` row; this takes it away), in one transaction.
pub(crate) fn backfill(c: &mut Connection) -> Result<(), Error> {
    let pending: bool =
        c.query_row("SELECT EXISTS (SELECT 1 FROM search_backfill)", [], |r| r.get(0))?;
    if !pending {
        return Ok(());
    }
    let tx = c.transaction()?;
    {
        let mut st = tx.prepare(
            "SELECT id, content, room_id FROM events
             WHERE is_message = 1 AND deleted = 0 AND hidden = 0",
        )?;
        let mut rows = st.query([])?;
        let mut insert =
            tx.prepare("INSERT INTO search (rowid, text, room) VALUES (?1, ?2, 'r' || ?3)")?;
        while let Some(row) = rows.next()? {
            let (id, content, room): (i64, Vec<u8>, i64) = (row.get(0)?, row.get(1)?, row.get(2)?);
            let text = codec::decode::<EventContent>(&content).ok().and_then(|c| searchable(&c));
            if let Some(text) = text.filter(|t| !t.is_empty()) {
                insert.execute(params![id, text, room])?;
            }
        }
    }
    // Edits made before the index existed: their last text replaces the first.
    let edited: Vec<(i64, String)> = {
        let mut st = tx.prepare(
            "SELECT e.id, (SELECT r.value FROM relations r
                           WHERE r.target = e.request_id AND r.kind = 'edit' AND r.sender = e.sender
                           ORDER BY r.position DESC LIMIT 1)
             FROM events e
             WHERE e.deleted = 0 AND e.hidden = 0
                 AND EXISTS (SELECT 1 FROM relations r WHERE r.target = e.request_id AND r.kind = 'edit')",
        )?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get::<_, Option<String>>(1)?)))?;
        rows.filter_map(|r| r.map(|(id, t)| t.map(|t| (id, t))).transpose())
            .collect::<Result<_, _>>()?
    };
    for (id, text) in edited {
        put(&tx, id, &text)?;
    }
    tx.execute("DELETE FROM search_backfill", [])?;
    tx.commit()?;
    Ok(())
}
