//! Mentions: `@username` in a message's text names a member of the room. The sender's device
//! resolves the names to user ids when the message is queued and puts them in the sealed
//! body (`mentions`), so a receiver needs no lookup and a later rename of nobody changes what
//! was meant; a receiver marks a message that mentions it (`mentions_me`), counts it in the
//! room list, and notifies of it even in a muted room. A leaf module.

use rusqlite::{params, Connection};

use crate::{body::MAX_MENTIONS, model::RoomKey, Error};

/// The names written as `@name` in `text` (lower-cased, each once, in order): candidates
/// for [`resolve`].
pub fn names(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find('@') {
        // An address (`ann@example.org`) is not a mention: `@` starts a word.
        let starts_word = rest[..at].chars().last().is_none_or(|c| !c.is_alphanumeric());
        rest = &rest[at + 1..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
            .unwrap_or(rest.len());
        // A sentence may end right after a name: "thanks @ann."
        let name = rest[..end].trim_end_matches(['.', '-']).to_ascii_lowercase();
        if starts_word && !name.is_empty() && !out.contains(&name) && out.len() < MAX_MENTIONS {
            out.push(name);
        }
    }
    out
}

/// The user ids of the current members of `room` whom `text` mentions.
pub(crate) fn resolve(c: &Connection, room: RoomKey, text: &str) -> Result<Vec<i64>, Error> {
    let mut st = c.prepare_cached(
        "SELECT u.id FROM users u JOIN members m ON m.user_id = u.id
         WHERE m.room_id = ?1 AND m.active = 1 AND u.username = ?2",
    )?;
    let mut out = Vec::new();
    for name in names(text) {
        let mut rows = st.query(params![room, name])?;
        if let Some(row) = rows.next()? {
            out.push(row.get(0)?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::{names, resolve};
    use crate::body::MessageBody;
    use crate::testing::{LogRoom, ALICE, BOB, ME};

    #[test]
    fn a_mention_is_an_at_that_starts_a_word() {
        assert_eq!(names("hi @Ann and @bob.smith, see @ann."), ["ann", "bob.smith"]);
        assert_eq!(names("mail ann@example.org"), Vec::<String>::new());
        assert_eq!(names("@ @@ @-"), Vec::<String>::new());
        assert_eq!(names("(@zoe)"), ["zoe"]);
    }

    #[test]
    fn a_mention_of_me_is_marked_and_counted() {
        let mut room = LogRoom::new();
        room.log(ALICE, MessageBody { mentions: vec![ME], ..MessageBody::text("@me hi") });
        room.log(ALICE, MessageBody { mentions: vec![BOB], ..MessageBody::text("@bob hi") });
        let marked: Vec<bool> = {
            let mut st = room.c.prepare("SELECT mentions_me FROM events ORDER BY seq").unwrap();
            st.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
        };
        assert_eq!(marked, [true, false]);
        let count: i64 =
            room.c.query_row("SELECT unread_mentions FROM rooms", [], |r| r.get(0)).unwrap();
        assert_eq!(count, 1);
        // Only the room's members are mentioned; case does not matter.
        assert_eq!(resolve(&room.c, 1, "hi @ALICE, @bob and @carol").unwrap(), [ALICE, BOB]);
    }
}
