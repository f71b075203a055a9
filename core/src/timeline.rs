//! A room's timeline: its messages and notices, newest first, each with its ticks
//! ([`crate::rooms::Room::timeline`]).
//!
//! Pages are read by keyset on `position` (pending echoes sort after every logged event), so
//! the cost of a page does not grow with how far back it is. Ticks are facts put together at
//! read time: the outbox row (pending or failed), the event's seq (sent), and the other
//! members' lowest receipt watermarks, which the room row keeps (delivered, read).

use rusqlite::{params, OptionalExtension};
use tidings_proto::{codec, EventContent, RequestId, Seq};

use crate::{
    client::request_string,
    model::{
        neutral_name, CallView, FileView, ImageView, Message, MessageState, Notice, RoomKey,
        SecurityIssue, VideoView,
    },
    relations, Client, Error,
};

/// See [`crate::rooms::Room::timeline`].
#[derive(Debug, Clone, Copy)]
pub struct Timeline<'a> {
    pub(crate) client: &'a Client,
    pub(crate) room: RoomKey,
}

impl Timeline<'_> {
    /// A page of a room's timeline, newest first, strictly before `before` (a message's
    /// `position`), by keyset: the cost does not grow with how far back the page is.
    pub async fn page(&self, before: Option<i64>, limit: usize) -> Result<Vec<Message>, Error> {
        let room = self.room;
        self.client
            .db(move |c| {
                // Ticks come from the other members' lowest watermarks, which the room row
                // keeps (as for the room list), and the outbox's state: one query for the page.
                let (others, delivered, read): (i64, i64, i64) = c
                    .prepare_cached(
                        "SELECT others, others_delivered_seq, others_read_seq FROM rooms
                     WHERE id = ?1",
                    )?
                    .query_row([room], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .optional()?
                    .unwrap_or_default();
                let mut st = c.prepare_cached(
                    "SELECT e.seq, e.request_id, e.sender, e.content, e.position,
                        coalesce(u.username, '?'), e.at_ms, o.state, e.security, e.deleted,
                        EXISTS (SELECT 1 FROM relations r WHERE r.target = e.request_id),
                        e.expires_ms, e.mentions_me
                 FROM events e LEFT JOIN users u ON u.id = e.sender
                 LEFT JOIN outbox o ON o.request_id = e.request_id
                 WHERE e.room_id = ?1 AND e.position < ?2 AND e.hidden = 0
                     AND (e.expires_ms IS NULL OR e.expires_ms > ?4)
                 ORDER BY e.position DESC LIMIT ?3",
                )?;
                // An expired message never shows, even before it is erased
                // (crate::disappearing).
                let now = crate::stamp::now_ms();
                let before = before.unwrap_or(i64::MAX);
                let rows = st.query_map(params![room, before, limit as i64, now], |r| {
                    Ok((
                        r.get::<_, Option<i64>>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, Vec<u8>>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, i64>(6)?,
                        r.get::<_, Option<String>>(7)?,
                        r.get::<_, Option<String>>(8)?,
                        r.get::<_, bool>(9)?,
                        r.get::<_, bool>(10)?,
                        r.get::<_, Option<i64>>(11)?,
                        r.get::<_, bool>(12)?,
                    ))
                })?;
                let me = crate::account::my_id(c).unwrap_or(0);
                let mut out = Vec::new();
                for row in rows {
                    let (
                        seq,
                        req,
                        content,
                        position,
                        sender,
                        at_ms,
                        outbox,
                        security,
                        deleted,
                        related,
                        expires_ms,
                        mentions_me,
                    ) = row?;
                    let seq = seq.map(|s| s as Seq);
                    let mut shown = match security.as_deref().and_then(SecurityIssue::from_name) {
                        Some(issue) => security_notice(issue, &sender),
                        None => view(&content),
                    };
                    let mut edited = false;
                    let mut reactions = Vec::new();
                    if deleted {
                        shown.text = relations::DELETED_TEXT.into();
                    } else if related {
                        if let Some(text) = relations::last_edit(c, &req)? {
                            (shown.text, edited) = (text, true);
                        }
                        reactions = relations::reactions(c, room, &req, me)?;
                    }
                    let reply_to = match &shown.reply_to {
                        Some(to) if !deleted => Some(relations::quote(c, room, to.as_bytes())?),
                        _ => None,
                    };
                    out.push(Message {
                        room,
                        seq,
                        request_id: request_string(&req),
                        sender,
                        at_ms,
                        text: shown.text,
                        notice: shown.notice,
                        state: tick(
                            outbox.as_deref(),
                            seq.map(|s| s as i64),
                            others,
                            delivered,
                            read,
                        ),
                        position,
                        image: shown.image,
                        file: shown.file,
                        video: shown.video,
                        call: shown.call,
                        reply_to,
                        edited,
                        deleted,
                        reactions,
                        forwarded: shown.forwarded && !deleted,
                        expires_ms,
                        mentions_me,
                    });
                }
                Ok(out)
            })
            .await
    }
}

impl Timeline<'_> {
    /// The edit history of message `request`: its text as first sent, then each edit, oldest
    /// first, with when it was made (Unix ms). Empty for a message not here or deleted.
    pub async fn versions(&self, request: RequestId) -> Result<Vec<(String, i64)>, Error> {
        let room = self.room;
        self.client
            .db(move |c| {
                let first: Option<(Vec<u8>, i64)> = c
                    .prepare_cached(
                        "SELECT content, at_ms FROM events
                         WHERE request_id = ?1 AND room_id = ?2 AND deleted = 0 AND hidden = 0",
                    )?
                    .query_row(params![&request.0[..], room], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                let Some((content, at_ms)) = first else { return Ok(Vec::new()) };
                let mut out = vec![(view(&content).text, at_ms)];
                out.extend(relations::edits(c, &request.0)?);
                Ok(out)
            })
            .await
    }
}

/// What a stored event shows in the timeline: its text and its attachment's views.
struct Shown {
    text: String,
    reply_to: Option<relations::MessageRef>,
    notice: Option<Notice>,
    image: Option<ImageView>,
    file: Option<FileView>,
    video: Option<VideoView>,
    call: Option<CallView>,
    forwarded: bool,
}

/// A refused event: a security notice, whatever it carried.
fn security_notice(issue: SecurityIssue, sender: &str) -> Shown {
    let text = match issue {
        SecurityIssue::Uncertified => {
            "security: a device its owner did not certify was refused".into()
        }
        SecurityIssue::NotAMember => {
            "security: a device of someone not in the room was refused".into()
        }
        SecurityIssue::WrongSender => {
            "security: a message from a device other than its sender's".into()
        }
        SecurityIssue::BadSignature => {
            "security: a message whose signature is not its sender's".into()
        }
        SecurityIssue::KeyChanged => format!("security: {sender}'s security code changed"),
        SecurityIssue::Verified => format!("security: {sender} is verified"),
    };
    Shown {
        text,
        reply_to: None,
        notice: Some(Notice::Security { issue }),
        image: None,
        file: None,
        video: None,
        call: None,
        forwarded: false,
    }
}

fn view(content: &[u8]) -> Shown {
    let none = |text: String| Shown {
        text,
        reply_to: None,
        notice: None,
        image: None,
        file: None,
        video: None,
        call: None,
        forwarded: false,
    };
    let Ok(content) = codec::decode::<EventContent>(content) else {
        return none("(event this version cannot show)".into());
    };
    let text = crate::apply::describe(&content);
    let name = |u: tidings_proto::UserRef| neutral_name(u.username.into_string());
    let notice = |notice: Notice| Shown { notice: Some(notice), ..none(text.clone()) };
    let (body, attachments) = match content {
        EventContent::Message { body, attachments } => (body, attachments),
        EventContent::Call(r) => {
            let call = CallView {
                caller: r.caller.0,
                outcome: r.outcome,
                duration_ms: r.duration_ms,
                video: r.video,
            };
            return Shown { call: Some(call), ..none(text) };
        }
        EventContent::Created { .. } => return notice(Notice::Created),
        EventContent::Joined { user, request: false, .. } => {
            return notice(Notice::Joined { user: name(user) })
        }
        EventContent::Joined { user, request: true, .. } => {
            return notice(Notice::Invited { user: name(user) })
        }
        EventContent::Accepted { .. } => return notice(Notice::Accepted),
        EventContent::Left { .. } => return notice(Notice::Left),
        EventContent::Removed { .. } => return notice(Notice::Removed),
        EventContent::Mls { .. } | EventContent::DevicesSignedOut { .. } => return none(text),
        EventContent::Renamed { name } => {
            return notice(Notice::Renamed { name: neutral_name(name.into_string()) })
        }
    };
    let Some(body) = crate::apply::decode_body(body.as_bytes()) else { return none(text) };
    if let Some(seconds) = body.disappearing {
        let seconds = (seconds > 0).then_some(seconds);
        let text = crate::body::timer_text(seconds);
        return Shown { notice: Some(Notice::Disappearing { seconds }), ..none(text) };
    }
    let media = attachments.iter().next().map(|m| m.0);
    Shown {
        forwarded: body.forwarded,
        text,
        reply_to: body.reply_to,
        notice: None,
        image: body.image.map(|i| ImageView {
            width: i.width,
            height: i.height,
            mime: i.mime,
            size: i.size,
            thumbnail_width: i.thumbnail_width,
            thumbnail_height: i.thumbnail_height,
            placeholder: i.placeholder,
            media,
        }),
        file: body.file.map(|f| FileView {
            name: neutral_name(f.name),
            size: f.size,
            mime: f.mime,
            media,
        }),
        video: body.video.map(|v| VideoView {
            duration_ms: v.duration_ms,
            width: v.width,
            height: v.height,
            poster: !v.poster.as_bytes().is_empty(),
        }),
        call: None,
    }
}

/// Ticks from the facts: the outbox row (if still there), the seq, and the other members'
/// lowest watermarks (`others` is how many other members there are).
pub(crate) fn tick(
    outbox: Option<&str>,
    seq: Option<i64>,
    others: i64,
    delivered: i64,
    read: i64,
) -> MessageState {
    match (outbox, seq) {
        (Some("failed"), _) => MessageState::Failed,
        (Some(_), None) | (None, None) => MessageState::Pending,
        (_, Some(seq)) if others > 0 && read >= seq => MessageState::Read,
        (_, Some(seq)) if others > 0 && delivered >= seq => MessageState::Delivered,
        (_, Some(_)) => MessageState::Sent,
    }
}
