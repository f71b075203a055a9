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
//! A query is words, all of which must be in a message; the last one, the word being typed,
//! matches as a prefix ("see you hol" finds "see you on holiday") once it has two letters.
//! Case and accents do not matter (`unicode61`, `remove_diacritics 2`). What people type is
//! never FTS5 syntax: quotes and operators are plain text here.
//!
//! Speed: FTS5 reads one word's list newest first and stops at the limit, but answers a
//! prefix by merging the lists of every word with that prefix in full — half a million
//! entries for the commonest word of a million messages. The table therefore keeps prefix
//! indexes of two, three and four characters (migration 0019), where the common words are:
//! a prefix of that length is one list, read newest first; a longer one matches few, rarer
//! words. Only the last word is a prefix, and a one-letter word is matched whole, so no
//! query merges a common word's list (docs/performance.md, "Search").

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
    /// has every word of `query` (the last one as a prefix), newest first: in `room`, or in all
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

/// The FTS5 query for what someone typed: each word quoted, all required, the last one a
/// prefix when it has two characters or more. `None` when there is no word to look for.
pub(crate) fn fts_query(typed: &str) -> Result<Option<String>, Error> {
    if typed.len() > MAX_QUERY_BYTES {
        return Err(Error::Invalid(format!("a search may be at most {MAX_QUERY_BYTES} bytes")));
    }
    let words: Vec<&str> =
        typed.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).collect();
    if words.len() > MAX_QUERY_WORDS {
        return Err(Error::Invalid(format!("a search may have at most {MAX_QUERY_WORDS} words")));
    }
    let Some((last, first)) = words.split_last() else { return Ok(None) };
    let mut query: Vec<String> = first.iter().map(|w| format!("\"{w}\"")).collect();
    let prefix = if last.chars().count() > 1 { "*" } else { "" };
    query.push(format!("\"{last}\"{prefix}"));
    Ok(Some(query.join(" ")))
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
        assert_eq!(fts_query("Holiday pi").unwrap().unwrap(), "\"Holiday\" \"pi\"*");
        assert_eq!(
            fts_query("a\" OR b NEAR(cd").unwrap().unwrap(),
            "\"a\" \"OR\" \"b\" \"NEAR\" \"cd\"*"
        );
        assert_eq!(fts_query("привет, мир").unwrap().unwrap(), "\"привет\" \"мир\"*");
        // One letter is too wide a prefix to be worth it: matched as a word.
        assert_eq!(fts_query("see u").unwrap().unwrap(), "\"see\" \"u\"");
        assert!(fts_query(&"x".repeat(MAX_QUERY_BYTES + 1)).is_err());
        assert!(fts_query(&"a ".repeat(MAX_QUERY_WORDS + 1)).is_err());
    }

    /// A profile indexed before the prefix indexes (migration 0019) is indexed again at the
    /// next open — edited texts as edited — and a prefix then finds its messages.
    #[test]
    fn an_older_profile_is_indexed_again_with_its_edits() {
        use tidings_proto::{bounded::List, codec, Body, EventContent};

        use crate::body::MessageBody;

        // Written as the build before migration 0019 wrote it: two messages, an edit, both
        // messages in the search table without prefix indexes.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.db");
        let older = crate::store::open_up_to(&path, None, 18).unwrap();
        older
            .execute("INSERT INTO rooms (id, server_id, kind) VALUES (1, 10, 'group')", [])
            .unwrap();
        older.execute("INSERT INTO users (id, username) VALUES (1, 'me'), (2, 'ann')", []).unwrap();
        let content = |text: &str| {
            let body = Body::new(codec::encode(&MessageBody::text(text)).unwrap()).unwrap();
            codec::encode(&EventContent::Message { body, attachments: List::empty() }).unwrap()
        };
        for (seq, request, text) in
            [(1, [1u8; 16], "Holiday pictures"), (2, [2; 16], "see you tomorow")]
        {
            older
                .execute(
                    "INSERT INTO events (id, room_id, seq, position, request_id, sender, at_ms,
                                         content, is_message)
                     VALUES (?1, 1, ?1, ?1, ?2, 2, ?1, ?3, 1)",
                    rusqlite::params![seq, &request[..], content(text)],
                )
                .unwrap();
            older
                .execute(
                    "INSERT INTO search (rowid, text, room) VALUES (?1, ?2, 'r1')",
                    rusqlite::params![seq, text],
                )
                .unwrap();
        }
        older
            .execute(
                "INSERT INTO relations (request_id, room_id, target, sender, position, at_ms, kind,
                                        value)
                 VALUES (?1, 1, ?2, 2, 3, 3, 'edit', 'see you tomorrow')",
                rusqlite::params![&[3u8; 16][..], &[2u8; 16][..]],
            )
            .unwrap();
        older.execute("DELETE FROM search_backfill", []).unwrap();
        drop(older);

        let mut c = crate::store::open(&path, None).unwrap();
        assert!(find(&c, "holi", None, 10).unwrap().is_empty(), "emptied until the backfill");
        index::backfill(&mut c).unwrap();
        let texts = |q: &str| -> Vec<String> {
            let hits = find(&c, q, None, 10).unwrap();
            hits.iter().map(|h| h.snippet.iter().map(|p| p.text.as_str()).collect()).collect()
        };
        assert_eq!(texts("holi"), ["Holiday pictures"]);
        assert_eq!(texts("see you tomorr"), ["see you tomorrow"]);
        assert!(texts("tomorow").is_empty(), "the text before the edit");
        assert!(texts("ho pictures").is_empty(), "only the last word is a prefix");
    }

    #[test]
    fn a_snippet_splits_into_plain_and_matching_parts() {
        let got = parts("…see \u{E000}you\u{E001} at \u{E000}six\u{E001}");
        let plain: Vec<(&str, bool)> = got.iter().map(|p| (p.text.as_str(), p.hit)).collect();
        assert_eq!(plain, [("…see ", false), ("you", true), (" at ", false), ("six", true)]);
    }
}
