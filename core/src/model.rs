//! What front ends render: rooms, messages with their state, outbox entries, and the events
//! that say something changed. Plain data, read from SQLite; never waits on the network.

use serde::{Deserialize, Serialize};
use tidings_proto::Seq;

/// Local room id (stable for the life of the profile, also for rooms made offline).
pub type RoomKey = i64;

/// Delivery state of a message, as ticks show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum MessageState {
    /// Saved here, not yet confirmed by the server (clock).
    Pending,
    /// The server refused it; see the outbox for why (retry or discard).
    Failed,
    /// The server has it (one tick). Messages from others are always at least this.
    Sent,
    /// Every other member's device has it (two ticks).
    Delivered,
    /// Every other member has read it (two blue ticks).
    Read,
}

/// One room in the room list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct RoomSummary {
    /// Local id.
    pub room: RoomKey,
    /// Server id, once the server has created the room.
    pub server_id: Option<i64>,
    /// Group name, or the other member's username for a direct room.
    pub name: String,
    /// Messages from others after my read marker.
    pub unread: u64,
    /// Highest seq applied here.
    pub last_seq: Seq,
    /// Text of the newest message, if any.
    pub last_message: Option<String>,
    /// State of my newest message, if the newest message is mine.
    pub my_last_state: Option<MessageState>,
    /// Still a member.
    pub member: bool,
    /// A direct (one-to-one) room rather than a group.
    pub direct: bool,
    /// When something last happened in it (Unix ms; local time for local echoes).
    pub last_activity_ms: i64,
    /// Who is typing in the room now (usernames).
    pub typing: Vec<String>,
    /// A request: who (not a contact) put me in this room. Accept, decline or block; a
    /// reply accepts.
    pub request_from: Option<String>,
    /// What I was writing here and did not send (crate::drafts).
    pub draft: Option<String>,
    /// The disappearing-message timer, in seconds, when it is on (crate::disappearing).
    pub disappearing_s: Option<u32>,
    /// Muted: only messages that mention me notify.
    pub muted: bool,
    /// Unread messages that mention me.
    pub unread_mentions: u64,
}

/// One timeline item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Message {
    /// Local room id.
    pub room: RoomKey,
    /// Server seq; `None` while pending.
    pub seq: Option<Seq>,
    /// The request id it was sent with.
    pub request_id: String,
    /// Sender's username.
    pub sender: String,
    /// When it was sent (Unix ms): the server's time; for a message sent from this device,
    /// this device's time when it was sent (the server's confirmation carries only its seq).
    pub at_ms: i64,
    /// Text (for membership and call events, a short English description, for scripts).
    pub text: String,
    /// A membership or naming event (joined, left, renamed…), shown as a line, not a bubble:
    /// the facts, which the UI words.
    pub notice: Option<Notice>,
    /// Delivery state.
    pub state: MessageState,
    /// Keyset cursor: pass it as `before` to get the next older page.
    pub position: i64,
    /// A photo, if the message carries one.
    pub image: Option<ImageView>,
    /// A file, if the message carries one (a video too).
    pub file: Option<FileView>,
    /// A video's preview, if the file is a video.
    pub video: Option<VideoView>,
    /// The call this event records, if it is a call record.
    pub call: Option<CallView>,
    /// The message this one replies to, quoted.
    pub reply_to: Option<Quote>,
    /// Its sender edited it: `text` is the last version (crate::relations).
    pub edited: bool,
    /// Its sender deleted it for everyone: a stub, nothing of its content is left.
    pub deleted: bool,
    /// Reactions, by emoji in order of first use.
    pub reactions: Vec<Reaction>,
    /// Forwarded from another chat.
    pub forwarded: bool,
    /// A disappearing message: when every device erases it (Unix ms).
    pub expires_ms: Option<i64>,
    /// It mentions me.
    pub mentions_me: bool,
}

/// The message a reply quotes: enough to show it and to jump to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Quote {
    /// Its request id.
    pub request_id: String,
    /// Its seq, once the server has it.
    pub seq: Option<Seq>,
    /// Its timeline position (to jump to); `None` while it is not on this device (not
    /// received yet, or deleted for me).
    pub position: Option<i64>,
    /// Who sent it (when it is here).
    pub sender: Option<String>,
    /// The start of its text, as it shows now (edited, or the deleted stub).
    pub text: Option<String>,
}

/// A message found by search ([`crate::Client::search`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct SearchHit {
    /// Its room.
    pub room: RoomKey,
    /// The room's name, as the room list shows it.
    pub room_name: String,
    /// Its seq (`None` while pending).
    pub seq: Option<Seq>,
    /// Its timeline position, to jump to.
    pub position: i64,
    /// Its request id.
    pub request_id: String,
    /// Who sent it.
    pub sender: String,
    /// When (Unix ms).
    pub at_ms: i64,
    /// The part of its text around the matching words, in order.
    pub snippet: Vec<SnippetPart>,
}

/// A piece of a search snippet: a matching word or the text between.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct SnippetPart {
    /// The text.
    pub text: String,
    /// Whether it matched (shown highlighted).
    pub hit: bool,
}

/// One emoji's reactions to a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Reaction {
    /// The emoji.
    pub emoji: String,
    /// Who reacted with it (usernames); its count is their number.
    pub users: Vec<String>,
    /// Whether I am one of them (the UI toggles it).
    pub mine: bool,
}

/// A membership or naming event in a timeline (the facts; the UI words them, with the
/// message's `sender` as who did it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Notice {
    /// The sender created the room.
    Created,
    /// `user` joined.
    Joined {
        /// Who joined.
        user: String,
    },
    /// The sender invited `user`, who is not their contact: a request until accepted.
    Invited {
        /// Who was invited.
        user: String,
    },
    /// The sender accepted the request.
    Accepted,
    /// The sender left.
    Left,
    /// The sender removed a member.
    Removed,
    /// The sender renamed the room.
    Renamed {
        /// The new name.
        name: String,
    },
    /// The sender set the disappearing-message timer (crate::disappearing).
    Disappearing {
        /// Seconds after sending that messages disappear; `None`: turned off.
        seconds: Option<u32>,
    },
    /// What the server logged from the sender failed a check of who is in the room's
    /// encryption, and this device refused it; or news of the sender's identity key (it
    /// changed, or is verified).
    Security {
        /// Which check.
        issue: SecurityIssue,
    },
}

/// A check of who is in a room's encryption that failed (core/src/e2ee): the event that
/// failed it was refused, and the timeline says so. The last two are news of a member's
/// identity key (crate::verification), shown as notices about them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum SecurityIssue {
    /// A device its user's identity did not certify was to be let into the room's
    /// encryption.
    Uncertified,
    /// A device of someone who is not in the room was to be let into its encryption.
    NotAMember,
    /// A message whose encryption names another sender than the server does.
    WrongSender,
    /// A message whose signature is not its sender's: forged by someone who holds the room's
    /// keys but not the sender's, or damaged.
    BadSignature,
    /// The notice's user has a new identity key (crate::verification): their security code
    /// changed; if they were verified, sending to them is held until the new key is accepted.
    KeyChanged,
    /// The notice's user is verified (crate::verification).
    Verified,
}

impl SecurityIssue {
    /// Its stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityIssue::Uncertified => "uncertified",
            SecurityIssue::NotAMember => "not_a_member",
            SecurityIssue::WrongSender => "wrong_sender",
            SecurityIssue::BadSignature => "bad_signature",
            SecurityIssue::KeyChanged => "key_changed",
            SecurityIssue::Verified => "verified",
        }
    }

    /// The issue a stored name names.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::Uncertified,
            Self::NotAMember,
            Self::WrongSender,
            Self::BadSignature,
            Self::KeyChanged,
            Self::Verified,
        ]
        .into_iter()
        .find(|i| i.as_str() == name)
    }

    /// The issue an MLS failure is, if it is one ([`crate::e2ee::E2eeError::is_security`]).
    pub fn of(error: &crate::e2ee::E2eeError) -> Option<Self> {
        match error {
            crate::e2ee::E2eeError::Uncertified(_) => Some(Self::Uncertified),
            crate::e2ee::E2eeError::NotAMember(_) => Some(Self::NotAMember),
            crate::e2ee::E2eeError::BadSignature => Some(Self::BadSignature),
            _ => None,
        }
    }
}

/// A call record in a timeline (the facts; the UI words them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct CallView {
    /// Who called (user id).
    pub caller: i64,
    /// How it ended.
    pub outcome: tidings_proto::CallOutcome,
    /// Talk time in milliseconds (0 unless completed).
    pub duration_ms: u64,
    /// A video call.
    pub video: bool,
}

/// A file in a message; its bytes come from [`crate::media::Media::open_full`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct FileView {
    /// Its name.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its MIME type (`application/octet-stream` when the content did not match the name).
    pub mime: String,
    /// The media id once uploaded.
    pub media: Option<i64>,
}

/// A video's preview: its poster comes from [`crate::media::Media::thumbnail`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct VideoView {
    /// Duration in milliseconds.
    pub duration_ms: u64,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Whether a poster frame came with it.
    pub poster: bool,
}

/// A photo in a message: enough to lay it out and show the placeholder and thumbnail at
/// once; the full image comes from [`crate::media::Media::open_full`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ImageView {
    /// Full image width, as displayed.
    pub width: u32,
    /// Full image height, as displayed.
    pub height: u32,
    /// Full image MIME type.
    pub mime: String,
    /// Full image size in bytes.
    pub size: u64,
    /// Thumbnail width.
    pub thumbnail_width: u32,
    /// Thumbnail height.
    pub thumbnail_height: u32,
    /// Blurhash placeholder.
    pub placeholder: String,
    /// The full image's media id once uploaded (`None` while the sender's upload is pending).
    pub media: Option<i64>,
}

/// An outbox entry the user may need to act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct OutboxEntry {
    /// Outbox id (for retry and discard).
    pub id: i64,
    /// Request id.
    pub request_id: String,
    /// Local room, if the operation is in a room.
    pub room: Option<RoomKey>,
    /// What it is (`send`, `create_room`, …).
    pub kind: String,
    /// `pending` or `failed`.
    pub state: String,
    /// Attempts so far.
    pub attempts: u32,
    /// Why it failed (for failed items) or last failed (for pending ones): the server's
    /// typed reason, which the UI words.
    pub reason: Option<tidings_proto::ErrorCode>,
    /// The server's message with it (for logs and scripts).
    pub error: Option<String>,
}

/// How far one other member has got with one of my messages (for "read by" in groups).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct MemberReceipt {
    /// Their username.
    pub username: String,
    /// One of their devices has it.
    pub delivered: bool,
    /// They have read it.
    pub read: bool,
}

/// One of my signed-in devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Device {
    /// Device id (for signing it out).
    pub id: i64,
    /// Its name.
    pub name: String,
    /// When it signed in (Unix ms).
    pub created_ms: i64,
    /// When it last connected (Unix ms).
    pub last_seen_ms: i64,
    /// This device.
    pub current: bool,
}

/// Connection state, for a banner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum ConnectionState {
    /// Not connected (no network, or signed out).
    Offline,
    /// Connecting or joining.
    Connecting,
    /// Catching up.
    Syncing,
    /// Live.
    Online,
}

/// Something changed; emitted only after the transaction that made it true committed. Small
/// on purpose: a front end reloads what the event names from the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// The room list changed (a room, its name, counters or last message).
    RoomsChanged,
    /// A room's timeline changed.
    TimelineChanged {
        /// The room.
        room: RoomKey,
    },
    /// The outbox changed.
    OutboxChanged,
    /// Someone started or stopped typing.
    Typing {
        /// The room.
        room: RoomKey,
        /// Who.
        user: String,
        /// Typing now.
        active: bool,
    },
    /// The connection changed state.
    Connection {
        /// The new state.
        state: ConnectionState,
    },
    /// Catch-up progress (events applied so far of those announced).
    SyncProgress {
        /// Applied.
        done: u64,
        /// Announced.
        total: u64,
    },
    /// Events were lost because the subscriber was too slow: reload everything.
    Overflow,
    /// A call's progress.
    Call(crate::call::CallEvent),
}

/// A name someone else chose (a room's, a file's, a device's) made safe to show: bidi
/// embedding, override and isolate controls are dropped, so "gpj.exe" written backwards
/// behind U+202E shows as what it is, and a name cannot reorder the text around it.
pub fn neutral_name(name: String) -> String {
    let control = |c: char| matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
    if name.chars().any(control) {
        name.chars().filter(|c| !control(*c)).collect()
    } else {
        name
    }
}

#[cfg(test)]
mod name_tests {
    use super::neutral_name;

    #[test]
    fn bidi_controls_are_dropped_and_other_text_kept() {
        assert_eq!(neutral_name("invoice\u{202E}fdp.exe".into()), "invoicefdp.exe");
        assert_eq!(neutral_name("\u{2067}abc\u{2069}".into()), "abc");
        assert_eq!(neutral_name("שלום, Привет".into()), "שלום, Привет");
    }
}
