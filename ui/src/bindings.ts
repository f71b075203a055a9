// Generated from the Rust types by src-tauri/src/bindings.rs. Do not edit:
// TIDINGS_WRITE_BINDINGS=1 cargo test -p tidings-app bindings

export type RoomSummary = { 
/**
 * Local id.
 */
room: number, 
/**
 * Server id, once the server has created the room.
 */
server_id: number | null, 
/**
 * Group name, or the other member's username for a direct room.
 */
name: string, 
/**
 * Messages from others after my read marker.
 */
unread: number, 
/**
 * Highest seq applied here.
 */
last_seq: number, 
/**
 * Text of the newest message, if any.
 */
last_message: string | null, 
/**
 * State of my newest message, if the newest message is mine.
 */
my_last_state: MessageState | null, 
/**
 * Still a member.
 */
member: boolean, 
/**
 * A direct (one-to-one) room rather than a group.
 */
direct: boolean, 
/**
 * When something last happened in it (Unix ms; local time for local echoes).
 */
last_activity_ms: number, 
/**
 * Who is typing in the room now (usernames).
 */
typing: Array<string>, 
/**
 * A request: who (not a contact) put me in this room. Accept, decline or block; a
 * reply accepts.
 */
request_from: string | null, 
/**
 * What I was writing here and did not send (crate::drafts).
 */
draft: string | null, 
/**
 * The disappearing-message timer, in seconds, when it is on (crate::disappearing).
 */
disappearing_s: number | null, 
/**
 * Muted: only messages that mention me notify.
 */
muted: boolean, 
/**
 * Unread messages that mention me.
 */
unread_mentions: number, };

export type Message = { 
/**
 * Local room id.
 */
room: number, 
/**
 * Server seq; `None` while pending.
 */
seq: number | null, 
/**
 * The request id it was sent with.
 */
request_id: string, 
/**
 * Sender's username.
 */
sender: string, 
/**
 * When it was sent (Unix ms): the server's time; for a message sent from this device,
 * this device's time when it was sent (the server's confirmation carries only its seq).
 */
at_ms: number, 
/**
 * Text (for membership and call events, a short English description, for scripts).
 */
text: string, 
/**
 * A membership or naming event (joined, left, renamed…), shown as a line, not a bubble:
 * the facts, which the UI words.
 */
notice: Notice | null, 
/**
 * Delivery state.
 */
state: MessageState, 
/**
 * Keyset cursor: pass it as `before` to get the next older page.
 */
position: number, 
/**
 * A photo, if the message carries one.
 */
image: ImageView | null, 
/**
 * A file, if the message carries one (a video too).
 */
file: FileView | null, 
/**
 * A video's preview, if the file is a video.
 */
video: VideoView | null, 
/**
 * The call this event records, if it is a call record.
 */
call: CallView | null, 
/**
 * The message this one replies to, quoted.
 */
reply_to: Quote | null, 
/**
 * Its sender edited it: `text` is the last version (crate::relations).
 */
edited: boolean, 
/**
 * Its sender deleted it for everyone: a stub, nothing of its content is left.
 */
deleted: boolean, 
/**
 * Reactions, by emoji in order of first use.
 */
reactions: Array<Reaction>, 
/**
 * Forwarded from another chat.
 */
forwarded: boolean, 
/**
 * A disappearing message: when every device erases it (Unix ms).
 */
expires_ms: number | null, 
/**
 * It mentions me.
 */
mentions_me: boolean, };

export type Quote = { 
/**
 * Its request id.
 */
request_id: string, 
/**
 * Its seq, once the server has it.
 */
seq: number | null, 
/**
 * Its timeline position (to jump to); `None` while it is not on this device (not
 * received yet, or deleted for me).
 */
position: number | null, 
/**
 * Who sent it (when it is here).
 */
sender: string | null, 
/**
 * The start of its text, as it shows now (edited, or the deleted stub).
 */
text: string | null, };

export type Reaction = { 
/**
 * The emoji.
 */
emoji: string, 
/**
 * Who reacted with it (usernames); its count is their number.
 */
users: Array<string>, 
/**
 * Whether I am one of them (the UI toggles it).
 */
mine: boolean, };

export type SearchHit = { 
/**
 * Its room.
 */
room: number, 
/**
 * The room's name, as the room list shows it.
 */
room_name: string, 
/**
 * Its seq (`None` while pending).
 */
seq: number | null, 
/**
 * Its timeline position, to jump to.
 */
position: number, 
/**
 * Its request id.
 */
request_id: string, 
/**
 * Who sent it.
 */
sender: string, 
/**
 * When (Unix ms).
 */
at_ms: number, 
/**
 * The part of its text around the matching words, in order.
 */
snippet: Array<SnippetPart>, };

export type SnippetPart = { 
/**
 * The text.
 */
text: string, 
/**
 * Whether it matched (shown highlighted).
 */
hit: boolean, };

export type MessageState = "pending" | "failed" | "sent" | "delivered" | "read";

export type ImageView = { 
/**
 * Full image width, as displayed.
 */
width: number, 
/**
 * Full image height, as displayed.
 */
height: number, 
/**
 * Full image MIME type.
 */
mime: string, 
/**
 * Full image size in bytes.
 */
size: number, 
/**
 * Thumbnail width.
 */
thumbnail_width: number, 
/**
 * Thumbnail height.
 */
thumbnail_height: number, 
/**
 * Blurhash placeholder.
 */
placeholder: string, 
/**
 * The full image's media id once uploaded (`None` while the sender's upload is pending).
 */
media: number | null, };

export type FileView = { 
/**
 * Its name.
 */
name: string, 
/**
 * Its size in bytes.
 */
size: number, 
/**
 * Its MIME type (`application/octet-stream` when the content did not match the name).
 */
mime: string, 
/**
 * The media id once uploaded.
 */
media: number | null, };

export type VideoView = { 
/**
 * Duration in milliseconds.
 */
duration_ms: number, 
/**
 * Width in pixels.
 */
width: number, 
/**
 * Height in pixels.
 */
height: number, 
/**
 * Whether a poster frame came with it.
 */
poster: boolean, };

export type CallView = { 
/**
 * Who called (user id).
 */
caller: number, 
/**
 * How it ended.
 */
outcome: CallOutcome, 
/**
 * Talk time in milliseconds (0 unless completed).
 */
duration_ms: number, 
/**
 * A video call.
 */
video: boolean, };

export type Notice = { "kind": "created" } | { "kind": "joined", 
/**
 * Who joined.
 */
user: string, } | { "kind": "invited", 
/**
 * Who was invited.
 */
user: string, } | { "kind": "accepted" } | { "kind": "left" } | { "kind": "removed" } | { "kind": "renamed", 
/**
 * The new name.
 */
name: string, } | { "kind": "disappearing", 
/**
 * Seconds after sending that messages disappear; `None`: turned off.
 */
seconds: number | null, } | { "kind": "security", 
/**
 * Which check.
 */
issue: SecurityIssue, };

export type SecurityIssue = "uncertified" | "not_a_member" | "wrong_sender" | "bad_signature" | "key_changed" | "verified";

export type ServerErrorCode = "incompatible_version" | "malformed" | "unknown_request" | "too_large" | "hello_required" | "unauthenticated" | "bad_credentials" | "forbidden" | "not_found" | "username_taken" | "invalid_input" | "request_id_reused" | "rate_limited" | "shutting_down" | "too_slow" | "internal" | "invalid_contact_key" | "expired_contact_key" | "quota_exceeded" | "storage_full" | "stale_epoch" | "invalid_link_code" | "too_many_devices" | "unknown";

export type OutboxEntry = { 
/**
 * Outbox id (for retry and discard).
 */
id: number, 
/**
 * Request id.
 */
request_id: string, 
/**
 * Local room, if the operation is in a room.
 */
room: number | null, 
/**
 * What it is (`send`, `create_room`, …).
 */
kind: string, 
/**
 * `pending` or `failed`.
 */
state: string, 
/**
 * Attempts so far.
 */
attempts: number, 
/**
 * Why it failed (for failed items) or last failed (for pending ones): the server's
 * typed reason, which the UI words.
 */
reason: ServerErrorCode | null, 
/**
 * The server's message with it (for logs and scripts).
 */
error: string | null, };

export type MemberReceipt = { 
/**
 * Their username.
 */
username: string, 
/**
 * One of their devices has it.
 */
delivered: boolean, 
/**
 * They have read it.
 */
read: boolean, };

export type Device = { 
/**
 * Device id (for signing it out).
 */
id: number, 
/**
 * Its name.
 */
name: string, 
/**
 * When it signed in (Unix ms).
 */
created_ms: number, 
/**
 * When it last connected (Unix ms).
 */
last_seen_ms: number, 
/**
 * This device.
 */
current: boolean, };

export type ConnectionState = "offline" | "connecting" | "syncing" | "online";

export type Event = { "kind": "rooms_changed" } | { "kind": "timeline_changed", 
/**
 * The room.
 */
room: number, } | { "kind": "outbox_changed" } | { "kind": "typing", 
/**
 * The room.
 */
room: number, 
/**
 * Who.
 */
user: string, 
/**
 * Typing now.
 */
active: boolean, } | { "kind": "connection", 
/**
 * The new state.
 */
state: ConnectionState, } | { "kind": "sync_progress", 
/**
 * Applied.
 */
done: number, 
/**
 * Announced.
 */
total: number, } | { "kind": "overflow" } | { "kind": "call" } & CallEvent;

export type CallEvent = { "state": "requesting", 
/**
 * The call.
 */
call: number, 
/**
 * Whom.
 */
peer: Peer, } | { "state": "ringing_remote", 
/**
 * The call.
 */
call: number, } | { "state": "ringing", 
/**
 * The call.
 */
call: number, 
/**
 * Who calls.
 */
peer: Peer, 
/**
 * With video.
 */
video: boolean, } | { "state": "connecting", 
/**
 * The call.
 */
call: number, } | { "state": "connected", 
/**
 * The call.
 */
call: number, } | { "state": "ended", 
/**
 * The call.
 */
call: number, 
/**
 * Why.
 */
reason: EndReason, } | { "state": "called_while_busy", 
/**
 * Their call.
 */
call: number, 
/**
 * Who.
 */
peer: Peer, };

export type Peer = { 
/**
 * The room the call belongs to.
 */
room: number, 
/**
 * The other user.
 */
user: number, 
/**
 * Their device, once known (from their first signal).
 */
device: number | null, };

export type EndReason = "hung_up" | "remote_hung_up" | "cancelled" | "declined" | "remote_declined" | "busy" | "unavailable" | "no_answer" | "answered_elsewhere" | "declined_elsewhere" | "failed" | "glare" | "reservation_expired" | "not_encrypted";

export type CallOutcome = "missed" | "declined" | "busy" | "completed" | "cancelled" | "other";

export type SessionView = { 
/**
 * Server base URL.
 */
server: string, 
/**
 * My username.
 */
username: string, 
/**
 * My user id.
 */
user_id: number, 
/**
 * This device.
 */
device_id: number, 
/**
 * Whether the connection is encrypted (https); the UI says "not encrypted" when not.
 */
encrypted: boolean, 
/**
 * The certificate pin the server is trusted by, if any (`sha256:…`).
 */
pin: string | null, };

export type Startup = { 
/**
 * Signed in as.
 */
session: SessionView | null, 
/**
 * The server the first-run screen suggests (`--server`, `TIDINGS_SERVER`).
 */
suggested_server: string | null, 
/**
 * The connection now.
 */
connection: ConnectionState, };

export type ContactCodeView = { 
/**
 * The `tidings:contact?…` text.
 */
uri: string, 
/**
 * The QR code as an SVG document.
 */
svg: string, };

export type LinkCodeView = { 
/**
 * The `tidings:link?…` text.
 */
uri: string, 
/**
 * The QR code as an SVG document.
 */
svg: string, 
/**
 * When the code stops working, Unix milliseconds.
 */
expires_ms: number, 
/**
 * The history of my chats that goes with it, if I chose to send it.
 */
history: HistorySizeView | null, };

export type HistorySizeView = { 
/**
 * Messages in it.
 */
messages: number, 
/**
 * Bytes it takes on the network.
 */
bytes: number, };

export type ContactView = { 
/**
 * Their username.
 */
username: string, 
/**
 * Their user id.
 */
user_id: number, 
/**
 * Our direct room here, once synced.
 */
room: number | null, 
/**
 * How far I trust their identity key (the list shows verified ones with a badge).
 */
trust: Trust, };

export type VerifyCodeView = { 
/**
 * The `tidings:verify?…` text.
 */
uri: string, 
/**
 * The QR code as an SVG document.
 */
svg: string, };

export type Trust = "unverified" | "verified" | "changed";

export type AppError = { 
/**
 * What kind of failure.
 */
code: ErrorCode, 
/**
 * For people.
 */
message: string, 
/**
 * For `server`: the server's error code (`bad_credentials`, `username_taken`, …).
 */
reason: string | null, };

export type ErrorCode = "not_signed_in" | "no_such_room" | "not_a_member" | "no_such_outbox_item" | "no_such_message" | "not_your_message" | "no_such_image" | "bad_photo" | "no_code" | "bad_contact_code" | "bad_link_code" | "foreign_server" | "invalid" | "no_shared_encryption" | "key_mismatch" | "key_changed" | "security_code_mismatch" | "bad_verify_code" | "address" | "tls" | "network" | "server" | "file" | "internal";
