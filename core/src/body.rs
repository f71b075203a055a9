//! The body of a message, inside the opaque `Body` the server carries (sealed for the
//! room's group): text, photo, file, a group's name, a verification proof, a reply, or what it
//! does to an earlier message (crate::relations). Plain data with its limits; every module
//! that reads or writes bodies uses these, and they use nothing of the engine.

use serde::{Deserialize, Serialize};
use tidings_proto::{bounded, codec, EventContent};

use crate::Error;

/// Largest thumbnail carried inside a message (the body is at most 64 KiB).
pub const MAX_THUMBNAIL_BYTES: usize = 48 * 1024;

/// The body of a message, inside the opaque `Body` the server carries. Fields are named on
/// the wire and unknown ones ignored, so older builds read newer bodies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageBody {
    /// The text (a photo's caption; may be empty then).
    pub text: String,
    /// A photo: the full image is the message's first attachment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageBody>,
    /// A file (any type, a video too): the message's first attachment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileBody>,
    /// The preview of a file that is a video.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<VideoBody>,
    /// The key of the first attachment, which was uploaded sealed ([`crate::e2ee::file`]);
    /// absent for one uploaded in clear (sent before encryption).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<SealedFile>,
    /// The room's name, set by this message: a group's name travels sealed like any message
    /// (the server never sees it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Whether that name is a rename, shown in the timeline; otherwise it names a new group
    /// or tells the name to devices that joined, and shows nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rename: bool,
    /// A verification proof (crate::verification): the sender verified someone's identity
    /// key by a scan. Shows nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<ProofBody>,
    /// A reply: the request id of the message it quotes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<MessageRef>,
    /// An edit, a deletion for everyone or a reaction of an earlier message
    /// (crate::relations). Shows nothing itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relates: Option<Relation>,
    /// Forwarded from another chat: its content (and its attachment's key, so the file is
    /// not uploaded again) copied into a message of this room.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forwarded: bool,
    /// A disappearing message: every device erases it this many seconds after it was sent
    /// (crate::disappearing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u32>,
    /// Sets the room's disappearing-message timer for what is sent after it, in seconds
    /// (`Some(0)`: off). Shown as a notice (crate::disappearing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disappearing: Option<u32>,
    /// The members the text mentions (`@username`), by user id: they are told even in a
    /// muted room. At most [`MAX_MENTIONS`] count.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<i64>,
}

/// Most mentions a message carries that count.
pub const MAX_MENTIONS: usize = 32;

impl MessageBody {
    /// A text message.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            image: None,
            file: None,
            video: None,
            sealed: None,
            name: None,
            rename: false,
            verified: None,
            reply_to: None,
            relates: None,
            forwarded: false,
            expires_in: None,
            disappearing: None,
            mentions: Vec::new(),
        }
    }

    /// The message naming a group room `name`: a rename, or not.
    pub fn naming(name: impl Into<String>, rename: bool) -> Self {
        Self { name: Some(name.into()), rename, ..Self::text("") }
    }
}

/// How to open a sealed attachment: its key, and the SHA-256 of the sealed bytes the
/// server holds. Its plaintext size is the `size` of the photo or file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedFile {
    /// The attachment's own key (32 bytes).
    pub key: tidings_proto::bounded::Blob<{ crate::e2ee::file::KEY_BYTES }>,
    /// SHA-256 of the sealed file.
    pub sha256: tidings_proto::bounded::Blob<{ crate::e2ee::file::KEY_BYTES }>,
}

/// A file attached to a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileBody {
    /// Its name (no directories).
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its MIME type: claimed by the name and, for images and videos, confirmed by the
    /// content (else `application/octet-stream`).
    pub mime: String,
}

/// What a receiver shows of a video before downloading it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VideoBody {
    /// Duration in milliseconds.
    pub duration_ms: u64,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The first frame (JPEG).
    pub poster: tidings_proto::bounded::Blob<MAX_THUMBNAIL_BYTES>,
    /// Its width.
    pub poster_width: u32,
    /// Its height.
    pub poster_height: u32,
}

/// What a receiver needs to show a photo before downloading it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageBody {
    /// MIME type of the full image.
    pub mime: String,
    /// Width of the full image, as displayed.
    pub width: u32,
    /// Height of the full image, as displayed.
    pub height: u32,
    /// Size of the full image in bytes.
    pub size: u64,
    /// The thumbnail (JPEG).
    pub thumbnail: tidings_proto::bounded::Blob<MAX_THUMBNAIL_BYTES>,
    /// Its width.
    pub thumbnail_width: u32,
    /// Its height.
    pub thumbnail_height: u32,
    /// A blurhash to show before even the thumbnail is decoded.
    pub placeholder: String,
}

/// Decodes a message body; a body this build cannot read decodes as `None`.
pub fn decode_body(body: &[u8]) -> Option<MessageBody> {
    codec::decode::<MessageBody>(body).ok()
}

/// A message body's text for lists and previews; a body this build cannot read shows as a
/// placeholder, a photo without a caption as "Photo".
pub fn body_text(body: &[u8]) -> String {
    match decode_body(body) {
        Some(MessageBody { disappearing: Some(s), .. }) => timer_text((s > 0).then_some(s)),
        Some(b) if !b.text.is_empty() => b.text,
        Some(MessageBody { video: Some(_), .. }) => "Video".into(),
        Some(MessageBody { file: Some(f), .. }) => f.name,
        Some(MessageBody { image: Some(_), .. }) => "Photo".into(),
        Some(b) => b.text,
        None => "(message this version cannot show)".into(),
    }
}

/// What a disappearing-message setting says, for scripts and previews: "disappearing
/// messages: 1 day", or "…: off".
pub fn timer_text(seconds: Option<u32>) -> String {
    let Some(seconds) = seconds else { return "disappearing messages: off".into() };
    let units = [(7 * 86_400, "week"), (86_400, "day"), (3_600, "hour"), (60, "minute")];
    let (n, unit) = units
        .iter()
        .find(|(size, _)| seconds % size == 0)
        .map_or((seconds, "second"), |(size, unit)| (seconds / size, *unit));
    let plural = if n == 1 { "" } else { "s" };
    format!("disappearing messages: {n} {unit}{plural}")
}

/// A short text for a timeline item.
pub fn describe(content: &EventContent) -> String {
    match content {
        EventContent::Message { body, .. } => body_text(body.as_bytes()),
        EventContent::Created { .. } => "created the room".into(),
        EventContent::Joined { user, request: false, .. } => format!("{} joined", user.username),
        EventContent::Joined { user, request: true, .. } => format!("invited {}", user.username),
        EventContent::Accepted { .. } => "accepted the invitation".into(),
        EventContent::Left { .. } => "left".into(),
        EventContent::Removed { .. } => "removed a member".into(),
        EventContent::Renamed { name } => format!("renamed the room to {name}"),
        EventContent::Call(record) => format!("call: {:?}", record.outcome).to_lowercase(),
        EventContent::Mls { .. } => "changed the room's encryption keys".into(),
        EventContent::DevicesSignedOut { .. } => "signed out a device".into(),
    }
}

/// What a verification proof message carries (inside a sealed [`crate::apply::MessageBody`]):
/// the sender verified `user`'s identity key `key` — by scanning `user`'s contact code, whose
/// secret makes `proof` (crate::e2ee's `proof`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofBody {
    /// Whom the sender verified.
    pub user: i64,
    /// Their identity key, as the sender saw it (hex).
    pub key: String,
    /// The proof under their contact code's secret (hex).
    pub proof: String,
}

/// Longest emoji of a reaction, in bytes (a flag or a family with skin tones fits).
pub const MAX_EMOJI_BYTES: usize = 64;

/// A message's request id, naming it in a relation or a reply.
pub type MessageRef = bounded::Blob<16>;

/// What a message does to the message `to` (in a [`MessageBody`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Relation {
    /// The request id of the message it is about.
    pub to: MessageRef,
    /// What it does.
    pub kind: RelationKind,
}

/// See [`Relation`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RelationKind {
    /// The message's text (a photo's caption) is now this.
    Edit {
        /// The new text.
        text: String,
    },
    /// The message is deleted for everyone.
    Delete,
    /// The sender reacts with this emoji.
    React {
        /// The emoji.
        emoji: bounded::Text<MAX_EMOJI_BYTES>,
    },
    /// The sender takes back their reaction with this emoji.
    Unreact {
        /// The emoji.
        emoji: bounded::Text<MAX_EMOJI_BYTES>,
    },
}

/// Checks an emoji for a reaction: short, at least one character beyond ASCII (a keycap
/// starts with a digit), no spaces or controls.
pub fn emoji(s: &str) -> Result<bounded::Text<MAX_EMOJI_BYTES>, Error> {
    let bad = s.is_ascii() || s.chars().any(|c| c.is_whitespace() || c.is_control());
    if bad {
        return Err(Error::Invalid(format!("{s:?} is not an emoji")));
    }
    bounded::Text::new(s)
        .map_err(|_| Error::Invalid(format!("an emoji may be at most {MAX_EMOJI_BYTES} bytes")))
}
