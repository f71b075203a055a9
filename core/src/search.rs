//! Local full-text search over the messages this device has, decrypted: across rooms or in
//! one, newest first, with the matching words marked — offline, since it reads only the
//! profile.
//!
//! The index is an SQLite FTS5 table (`search`) holding each message's text as it shows now
//! (a photo's caption, a file's name, the last edit), keyed by its event's id. It is kept in
//! step in the transactions that change what a message shows: a message stored or filled in
//! from history ([`index`]), edited, deleted for everyone or for me ([`forget`]). Messages
//! stored before the index existed are indexed once, at the first open ([`backfill`]). The
//! table sits in the profile database, so it is encrypted at rest with everything else.
//!
//! A query is words, each matched as a prefix ("hol" finds "holiday"), all of which must be
//! in a message; case and accents do not matter (`unicode61`, `remove_diacritics 2`). What
//! people type is never FTS5 syntax: quotes and operators are plain text here.

use rusqlite::{params, Connection};

use crate::{
    model::{RoomKey, SearchHit, SnippetPart},
    stamp::request_string,
    Error,
};

/// Longest query, in bytes.
pub const MAX_QUERY_BYTES: usize = 256;

/// Most words in a query.
pub const MAX_QUERY_WORDS: usize = 16;

/// Most hits one search returns.
pub const MAX_HITS: usize = 200;

/// Marks around a matching word in a snippet (private-use characters, never in text
/// people type; taken out before anything reaches a front end).
const OPEN: char = '\u{E000}';
const CLOSE: char = '\u{E001}';

pub(crate) mod index;

impl crate::Client {
    /// Messages this device has whose text (a caption, a file's name, the last edit)
    /// has every word of `query` (each as a prefix), newest first: in `room`, or in all
    /// rooms; at most `limit` (and [`MAX_HITS`]). Works offline.
    pub async fn search(
        &self,
        query: &str,
        room: Option<RoomKey>,
        limit: usize,
    ) -> Result<Vec<SearchHit>, Error> {
        let query = query.to_owned();
        self.db(move |c| find(c, &query, room, limit)).await
    }
}

/// The FTS5 query for what someone typed: each word a quoted prefix, all required. `None`
/// when there is no word to look for.
pub(crate) fn fts_query(typed: &str) -> Result<Option<String>, Error> {
    if typed.len() > MAX_QUERY_BYTES {
        return Err(Error::Invalid(format!("a search may be at most {MAX_QUERY_BYTES} bytes")));
    }
    let words: Vec<String> = typed
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| format!("\"{w}\"*"))
        .collect();
    if words.len() > MAX_QUERY_WORDS {
        return Err(Error::Invalid(format!("a search may have at most {MAX_QUERY_WORDS} words")));
    }
    Ok((!words.is_empty()).then(|| words.join(" ")))
}

/// Messages matching `typed`, newest first, in `room` or all rooms: at most `limit`.
pub(crate) fn find(
    c: &Connection,
    typed: &str,
    room: Option<RoomKey>,
    limit: usize,
) -> Result<Vec<SearchHit>, Error> {
    let Some(words) = fts_query(typed)? else { return Ok(Vec::new()) };
    // In one room: its token too, so FTS5 intersects with that room's messages instead of
    // walking every match newest first until enough are in the room.
    let query = match room {
        Some(room) => format!("text : ({words}) AND room : \"r{room}\""),
        None => format!("text : ({words})"),
    };
    let mut st = c.prepare_cached(
        "SELECT e.room_id,
                coalesce(r.name, (SELECT u.username FROM members m JOIN users u ON u.id = m.user_id
                                  WHERE m.room_id = r.id
                                      AND m.user_id != (SELECT user_id FROM account)
                                  ORDER BY m.user_id LIMIT 1), ''),
                e.seq, e.position, e.request_id,
                coalesce(u.username, '?'), e.at_ms,
                snippet(search, 0, char(57344), char(57345), '…', 16)
         FROM search
         JOIN events e ON e.id = search.rowid
         JOIN rooms r ON r.id = e.room_id
         LEFT JOIN users u ON u.id = e.sender
         WHERE search MATCH ?1
         ORDER BY search.rowid DESC LIMIT ?2",
    )?;
    let rows = st.query_map(params![query, limit.min(MAX_HITS) as i64], |r| {
        Ok(SearchHit {
            room: r.get(0)?,
            room_name: r.get(1)?,
            seq: r.get::<_, Option<i64>>(2)?.map(|s| s as tidings_proto::Seq),
            position: r.get(3)?,
            request_id: request_string(&r.get::<_, Vec<u8>>(4)?),
            sender: r.get(5)?,
            at_ms: r.get(6)?,
            snippet: parts(&r.get::<_, String>(7)?),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A marked snippet as its plain and matching parts.
fn parts(marked: &str) -> Vec<SnippetPart> {
    let mut out = Vec::new();
    let mut hit = false;
    let mut text = String::new();
    for c in marked.chars() {
        if c == OPEN || c == CLOSE {
            if !text.is_empty() {
                out.push(SnippetPart { text: std::mem::take(&mut text), hit });
            }
            hit = c == OPEN;
        } else {
            text.push(c);
        }
    }
    if !text.is_empty() {
        out.push(SnippetPart { text, hit });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_people_type_is_words_never_syntax() {
        assert_eq!(fts_query("").unwrap(), None);
        assert_eq!(fts_query("  \"' * ").unwrap(), None);
        assert_eq!(fts_query("Holiday pics").unwrap().unwrap(), "\"Holiday\"* \"pics\"*");
        assert_eq!(
            fts_query("a\" OR b NEAR(c").unwrap().unwrap(),
            "\"a\"* \"OR\"* \"b\"* \"NEAR\"* \"c\"*"
        );
        assert_eq!(fts_query("привет, мир").unwrap().unwrap(), "\"привет\"* \"мир\"*");
        assert!(fts_query(&"x".repeat(MAX_QUERY_BYTES + 1)).is_err());
        assert!(fts_query(&"a ".repeat(MAX_QUERY_WORDS + 1)).is_err());
    }

    #[test]
    fn a_snippet_splits_into_plain_and_matching_parts() {
        let got = parts("…see \u{E000}you\u{E001} at \u{E000}six\u{E001}");
        let plain: Vec<(&str, bool)> = got.iter().map(|p| (p.text.as_str(), p.hit)).collect();
        assert_eq!(plain, [("…see ", false), ("you", true), (" at ", false), ("six", true)]);
    }
}
