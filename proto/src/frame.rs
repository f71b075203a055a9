//! Every frame of the protocol.
//!
//! A connection carries [`ClientFrame`]s up and [`ServerFrame`]s down, one per websocket
//! binary message. Each client frame has a connection-local `id`; the server answers it with
//! exactly one [`ServerFrame::Reply`] carrying the same id. Everything else the server sends
//! (room events, receipts, typing, call signals) is a push that answers nothing.
//!
//! Mutations of a room log carry a [`RequestId`]: the idempotency key (docs/protocol.md,
//! "Idempotency"). Ephemeral frames (typing, call signals) are relayed, never stored.

use serde::{Deserialize, Serialize};

use crate::{
    bounded::{Blob, List, Text},
    ids::{CallId, DeviceId, MediaId, RequestId, RoomId, Seq, UserId},
    limits::*,
};

/// Protocol version this build speaks natively. Version 2 added end-to-end encryption (MLS
/// events and key packages).
pub const PROTOCOL_VERSION: u16 = 2;
/// Oldest protocol version this build still accepts. A version-1 client cannot read an
/// encrypted room's log, so it gets `incompatible_version` rather than a log it misreads.
pub const MIN_PROTOCOL_VERSION: u16 = 2;

/// A username on the wire (validated by the server: 3–32 of `a-z 0-9 _ . -`).
pub type Username = Text<MAX_USERNAME_BYTES>;
/// A room name.
pub type RoomName = Text<MAX_ROOM_NAME_BYTES>;
/// A device or client name.
pub type Name = Text<MAX_NAME_BYTES>;
/// An opaque message body; the server never reads it. In an end-to-end encrypted room it is
/// an MLS `PrivateMessage`, so the plaintext inside is at most [`MAX_PLAINTEXT_BYTES`].
pub type Body = Blob<MAX_BODY_BYTES>;
/// One MLS KeyPackage (TLS-encoded `MLSMessage`-less `KeyPackage`).
pub type KeyPackageBlob = Blob<MAX_KEY_PACKAGE_BYTES>;
/// One MLS message: a commit (`PublicMessage`), a Welcome or a GroupInfo (TLS-encoded
/// `MLSMessage`).
pub type MlsBlob = Blob<MAX_MLS_BYTES>;
/// A link offer's id: the SHA-256 of the link code's secret (the secret itself stays in the
/// QR code). Exactly [`LINK_ID_BYTES`] bytes; the server refuses any other length.
pub type LinkId = Blob<LINK_ID_BYTES>;
/// What a link offer hands the new device, sealed with a key derived from the code's secret.
pub type LinkBlob = Blob<MAX_LINK_OFFER_BYTES>;
/// An opaque SDP or ICE blob.
pub type SignalBlob = Blob<MAX_SIGNAL_BYTES>;

/// A password. Its `Debug` never prints it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Password(pub Text<MAX_PASSWORD_BYTES>);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(…)")
    }
}

/// A session token: `<device id>.<secret>`. Its `Debug` never prints the secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Token(pub Text<MAX_TOKEN_BYTES>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(…)")
    }
}

/// One frame from client to server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientFrame {
    /// Connection-local correlation id, echoed in the reply.
    pub id: u32,
    /// What the client asks for.
    pub request: Request,
}

/// Direct (two people) or group room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoomKind {
    /// Exactly two members, no name needed.
    Direct,
    /// Any number of members up to the limit.
    Group,
}

/// Where a client stands in one room's log, sent in [`Request::Join`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomCursor {
    /// The room.
    pub room: RoomId,
    /// The last seq the client has committed (0 if none).
    pub last_seq: Seq,
}

/// Sign-up or sign-in credentials.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Credentials {
    /// Exact username.
    pub username: Username,
    /// Password.
    pub password: Password,
    /// Name of this device as the user will see it in their device list.
    pub device_name: Name,
}

/// Every request a client can make.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// First frame of every connection: the versions the client speaks.
    Hello {
        /// Oldest protocol version the client speaks.
        min_version: u16,
        /// Newest protocol version the client speaks.
        max_version: u16,
        /// Client software name and version, for logs.
        client: Name,
    },
    /// Create an account and a first device session. Replies [`Reply::Session`].
    SignUp(Credentials),
    /// Open a new device session on an existing account. Replies [`Reply::Session`].
    SignIn(Credentials),
    /// Open a new device session on the account of the device that showed a link code (no
    /// password: the code is the proof, once, for a few minutes). Replies [`Reply::Linked`].
    RedeemLink {
        /// The offer's id (from the code).
        id: LinkId,
        /// Name of the new device.
        device_name: Name,
    },
    /// Bind this connection to a session and say what the client already has.
    /// Replies [`Reply::Joined`]; live pushes start after it.
    Join {
        /// The session token (presented once per connection).
        token: Token,
        /// Protocol version the client will speak (from the negotiated range).
        protocol_version: u16,
        /// Last seq the client has per room.
        rooms: List<RoomCursor, MAX_JOIN_ROOMS>,
        /// Request ids still in the client's outbox, to learn which ones the server has.
        unconfirmed: List<RequestId, MAX_JOIN_UNCONFIRMED>,
    },
    /// End this device's session; the connection closes after the reply.
    SignOut {},
    /// Change my password: every other session of mine ends (their connections close);
    /// this one stays. `old` must be right. Replies `Done`.
    ChangePassword {
        /// The current password.
        old: Password,
        /// The new one (the sign-up rules apply).
        new: Password,
    },
    /// End every session of mine, this one included ("sign out everywhere"); the
    /// connection closes after the reply.
    SignOutEverywhere {},
    /// List my devices, a page of at most 100 by id. Replies [`Reply::Devices`].
    ListDevices {
        /// The page after this device (absent: the first page).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<DeviceId>,
    },
    /// Sign one of my devices out; its connections close.
    RevokeDevice {
        /// The device to sign out.
        device: DeviceId,
    },
    /// Find a user by exact username. Replies [`Reply::User`] or `not_found`.
    LookupUser {
        /// The exact username.
        username: Username,
    },
    /// Create a room with me and the given members. Replies [`Reply::Logged`] (seq 1).
    CreateRoom {
        /// Idempotency key.
        request: RequestId,
        /// Direct or group.
        kind: RoomKind,
        /// Group name (ignored for direct rooms).
        name: Option<RoomName>,
        /// Initial members besides me.
        members: List<UserId, MAX_ROOM_MEMBERS>,
    },
    /// Add a user to a group room.
    Invite {
        /// Idempotency key.
        request: RequestId,
        /// The room.
        room: RoomId,
        /// Who to add.
        user: UserId,
    },
    /// Leave a room.
    Leave {
        /// Idempotency key.
        request: RequestId,
        /// The room.
        room: RoomId,
    },
    /// Remove another member from a group room.
    RemoveMember {
        /// Idempotency key.
        request: RequestId,
        /// The room.
        room: RoomId,
        /// Who to remove.
        user: UserId,
    },
    /// Rename a group room.
    Rename {
        /// Idempotency key.
        request: RequestId,
        /// The room.
        room: RoomId,
        /// The new name.
        name: RoomName,
    },
    /// Post a message.
    Send {
        /// Idempotency key.
        request: RequestId,
        /// The room.
        room: RoomId,
        /// Opaque body (text, caption, attachment keys).
        body: Body,
        /// Media this message references; members may download them.
        attachments: List<MediaId, MAX_ATTACHMENTS>,
        /// A deletion for everyone: the request id of the sender's own earlier message in
        /// this room, whose content and media the server drops as it logs this one (the
        /// server learns that a message was deleted, never what it said). Absent otherwise.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        redacts: Option<RequestId>,
    },
    /// An MLS handshake for the room's group, logged as one event ([`EventContent::Mls`]).
    /// In a room with no group yet it sets the group up: `group_info` names the group and
    /// its epoch, `welcome` brings the members' devices in, `commit` is absent. Afterwards
    /// `commit` is required and must be built on the room's current epoch
    /// (`stale_epoch` otherwise); `group_info` is the group after it. Replies
    /// [`Reply::Logged`].
    Mls {
        /// Idempotency key.
        request: RequestId,
        /// The room.
        room: RoomId,
        /// The commit, a `PublicMessage`.
        commit: Option<MlsBlob>,
        /// The Welcome for the devices it adds.
        welcome: Option<MlsBlob>,
        /// The group's GroupInfo after it (with the ratchet tree), kept by the server for
        /// devices that join by external commit.
        group_info: MlsBlob,
    },
    /// Put KeyPackages for this device in the server's directory (one-time ones added to
    /// the stock, a last-resort one replacing the previous). Replies
    /// [`Reply::KeyPackageCount`].
    PublishKeyPackages {
        /// One-time KeyPackages.
        packages: List<KeyPackageBlob, MAX_KEY_PACKAGES>,
        /// The KeyPackage handed out when the one-time ones are gone.
        last_resort: Option<KeyPackageBlob>,
    },
    /// One KeyPackage of each device of `user` (a one-time one, taken out of the directory,
    /// or the device's last-resort one). Replies [`Reply::KeyPackages`].
    ClaimKeyPackages {
        /// Whose devices.
        user: UserId,
    },
    /// Offer a session on my account to whoever presents `id` within a few minutes, handing
    /// them `sealed` (which the server cannot open). Replies [`Reply::LinkOffered`].
    OfferLink {
        /// The offer's id.
        id: LinkId,
        /// The sealed payload for the new device.
        sealed: LinkBlob,
    },
    /// The latest GroupInfo of a room I am a member of. Replies [`Reply::GroupInfo`].
    GroupInfo {
        /// The room.
        room: RoomId,
    },
    /// Store the outcome of a call in the room log.
    RecordCall {
        /// Idempotency key.
        request: RequestId,
        /// The room.
        room: RoomId,
        /// What happened.
        record: CallRecord,
    },
    /// Move my receipt watermarks forward (never back).
    Receipt {
        /// The room.
        room: RoomId,
        /// Everything up to this seq reached one of my devices.
        delivered: Option<Seq>,
        /// Everything up to this seq has been read.
        read: Option<Seq>,
    },
    /// I started or stopped typing. Relayed, not stored; answered only if it fails.
    Typing {
        /// The room.
        room: RoomId,
        /// Typing now.
        active: bool,
    },
    /// A call signal for another member. Relayed, not stored; answered only if it fails.
    Signal {
        /// The room the call belongs to.
        room: RoomId,
        /// The member it is for.
        to_user: UserId,
        /// One device of theirs, or all when `None`.
        to_device: Option<DeviceId>,
        /// The call.
        call: CallId,
        /// The signal.
        signal: CallSignal,
    },
    /// Events of a room after `after`, oldest first. Replies [`Reply::Page`].
    CatchUp {
        /// The room.
        room: RoomId,
        /// Return events with seq > after.
        after: Seq,
        /// At most this many (capped at the page limit).
        limit: u16,
    },
    /// My contact key (what my QR code carries), made if I have none; `reset` replaces it
    /// (the old one stops working), `ttl_s` makes the new one expire. Replies
    /// [`Reply::ContactKey`].
    ContactKey {
        /// Replace the current key.
        reset: bool,
        /// Seconds the new key stays valid (`None`: until reset).
        ttl_s: Option<u32>,
    },
    /// Become contacts with `user` by showing their contact key (from their code); opens
    /// our direct room, or reuses the one we have. Replies [`Reply::Contact`].
    AddContact {
        /// Their username.
        user: Username,
        /// Their contact key.
        key: ContactKeyText,
    },
    /// My contacts. Replies [`Reply::Contacts`].
    Contacts {},
    /// Accept the request that made me a member of `room` (a room or invitation from
    /// someone who is not my contact). Replies [`Reply::Logged`] for the `Accepted` event.
    /// Declining is `Leave`.
    Accept {
        /// Idempotency key.
        request: RequestId,
        /// The room.
        room: RoomId,
    },
    /// Block a user: they can no longer put me in a room, invite me, call me, or send in a
    /// direct room with me. Replies `Done` (blocking twice is fine).
    Block {
        /// Who.
        user: UserId,
    },
    /// Unblock a user. Replies `Done`.
    Unblock {
        /// Who.
        user: UserId,
    },
    /// The users I block. Replies [`Reply::Blocked`].
    Blocked {},
    /// Be visible to people nearby, in this ~1 km cell (a 6-character geohash the client
    /// computed: exact coordinates never leave the device), for `ttl_s` seconds (at most
    /// an hour). Replies [`Reply::Done`].
    NearbyOn {
        /// The geohash cell.
        cell: Text<12>,
        /// Seconds to stay visible.
        ttl_s: u32,
    },
    /// Stop being visible at once. Replies [`Reply::Done`].
    NearbyOff {},
    /// Who is visible near my cell (I must be visible too). Replies [`Reply::Nearby`].
    NearbyList {},
    /// STUN/TURN servers for calls, with TURN credentials valid for a while. Replies
    /// [`Reply::IceServers`] (an empty list when the server has none configured).
    IceServers {},
    /// Liveness check. Replies [`Reply::Pong`].
    Ping {
        /// Echoed back.
        nonce: u64,
    },
}

impl Request {
    /// Names of every request kind this build knows (the tag on the wire).
    pub const KINDS: &'static [&'static str] = &[
        "Hello",
        "SignUp",
        "SignIn",
        "RedeemLink",
        "Join",
        "SignOut",
        "ChangePassword",
        "SignOutEverywhere",
        "ListDevices",
        "RevokeDevice",
        "LookupUser",
        "CreateRoom",
        "Invite",
        "Leave",
        "RemoveMember",
        "Rename",
        "Send",
        "Mls",
        "PublishKeyPackages",
        "ClaimKeyPackages",
        "OfferLink",
        "GroupInfo",
        "RecordCall",
        "Receipt",
        "Typing",
        "Signal",
        "CatchUp",
        "ContactKey",
        "AddContact",
        "Contacts",
        "Accept",
        "Block",
        "Unblock",
        "Blocked",
        "NearbyOn",
        "NearbyOff",
        "NearbyList",
        "IceServers",
        "Ping",
    ];

    /// The room an outbox operation names, so a room made offline can be given its server
    /// id once the server has made it; `None` for requests that name no existing room.
    pub fn room_mut(&mut self) -> Option<&mut RoomId> {
        match self {
            Request::Invite { room, .. }
            | Request::Leave { room, .. }
            | Request::RemoveMember { room, .. }
            | Request::Rename { room, .. }
            | Request::Send { room, .. }
            | Request::RecordCall { room, .. }
            | Request::Mls { room, .. }
            | Request::GroupInfo { room }
            | Request::Accept { room, .. }
            | Request::Receipt { room, .. }
            | Request::Typing { room, .. }
            | Request::Signal { room, .. }
            | Request::CatchUp { room, .. } => Some(room),
            Request::CreateRoom { .. }
            | Request::Hello { .. }
            | Request::SignUp(_)
            | Request::SignIn(_)
            | Request::RedeemLink { .. }
            | Request::Join { .. }
            | Request::SignOut {}
            | Request::ChangePassword { .. }
            | Request::SignOutEverywhere {}
            | Request::ListDevices { .. }
            | Request::RevokeDevice { .. }
            | Request::LookupUser { .. }
            | Request::ContactKey { .. }
            | Request::AddContact { .. }
            | Request::Contacts {}
            | Request::Block { .. }
            | Request::Unblock { .. }
            | Request::Blocked {}
            | Request::NearbyOn { .. }
            | Request::NearbyOff {}
            | Request::NearbyList {}
            | Request::IceServers {}
            | Request::PublishKeyPackages { .. }
            | Request::ClaimKeyPackages { .. }
            | Request::OfferLink { .. }
            | Request::Ping { .. } => None,
        }
    }

    /// The idempotency key of a room-log mutation; `None` for everything else.
    pub fn request_id(&self) -> Option<RequestId> {
        match self {
            Request::CreateRoom { request, .. }
            | Request::Invite { request, .. }
            | Request::Leave { request, .. }
            | Request::RemoveMember { request, .. }
            | Request::Rename { request, .. }
            | Request::Send { request, .. }
            | Request::RecordCall { request, .. }
            | Request::Mls { request, .. }
            | Request::Accept { request, .. } => Some(*request),
            Request::Hello { .. }
            | Request::SignUp(_)
            | Request::SignIn(_)
            | Request::RedeemLink { .. }
            | Request::Join { .. }
            | Request::SignOut {}
            | Request::ChangePassword { .. }
            | Request::SignOutEverywhere {}
            | Request::ListDevices { .. }
            | Request::RevokeDevice { .. }
            | Request::LookupUser { .. }
            | Request::Receipt { .. }
            | Request::Typing { .. }
            | Request::Signal { .. }
            | Request::CatchUp { .. }
            | Request::ContactKey { .. }
            | Request::AddContact { .. }
            | Request::Contacts {}
            | Request::Block { .. }
            | Request::Unblock { .. }
            | Request::Blocked {}
            | Request::NearbyOn { .. }
            | Request::NearbyOff {}
            | Request::NearbyList {}
            | Request::IceServers {}
            | Request::PublishKeyPackages { .. }
            | Request::ClaimKeyPackages { .. }
            | Request::OfferLink { .. }
            | Request::GroupInfo { .. }
            | Request::Ping { .. } => None,
        }
    }

    /// A short stable name for metrics and logs (never the content).
    pub fn kind(&self) -> &'static str {
        match self {
            Request::Hello { .. } => "hello",
            Request::SignUp(_) => "sign_up",
            Request::SignIn(_) => "sign_in",
            Request::RedeemLink { .. } => "redeem_link",
            Request::Join { .. } => "join",
            Request::SignOut {} => "sign_out",
            Request::ChangePassword { .. } => "change_password",
            Request::SignOutEverywhere {} => "sign_out_everywhere",
            Request::ListDevices { .. } => "list_devices",
            Request::RevokeDevice { .. } => "revoke_device",
            Request::LookupUser { .. } => "lookup_user",
            Request::CreateRoom { .. } => "create_room",
            Request::Invite { .. } => "invite",
            Request::Leave { .. } => "leave",
            Request::RemoveMember { .. } => "remove_member",
            Request::Rename { .. } => "rename",
            Request::Send { .. } => "send",
            Request::RecordCall { .. } => "record_call",
            Request::Mls { .. } => "mls",
            Request::PublishKeyPackages { .. } => "publish_key_packages",
            Request::ClaimKeyPackages { .. } => "claim_key_packages",
            Request::OfferLink { .. } => "offer_link",
            Request::GroupInfo { .. } => "group_info",
            Request::Receipt { .. } => "receipt",
            Request::Typing { .. } => "typing",
            Request::Signal { .. } => "signal",
            Request::CatchUp { .. } => "catch_up",
            Request::ContactKey { .. } => "contact_key",
            Request::AddContact { .. } => "add_contact",
            Request::Contacts {} => "contacts",
            Request::Accept { .. } => "accept",
            Request::Block { .. } => "block",
            Request::Unblock { .. } => "unblock",
            Request::Blocked {} => "blocked",
            Request::NearbyOn { .. } => "nearby_on",
            Request::NearbyOff {} => "nearby_off",
            Request::NearbyList {} => "nearby_list",
            Request::IceServers {} => "ice_servers",
            Request::Ping { .. } => "ping",
        }
    }
}

/// Why a callee refused an Inquire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefuseReason {
    /// In another call.
    Busy,
    /// The user declined.
    Declined,
    /// No device of the callee is reachable (sent by the server).
    Unavailable,
    /// A reason a newer peer knows and this build does not.
    #[serde(other)]
    Other,
}

/// Why a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HangupReason {
    /// A participant hung up.
    Normal,
    /// The callee declined the ringing call.
    Declined,
    /// Nobody answered in time.
    NoAnswer,
    /// Another device of the callee answered.
    AnsweredElsewhere,
    /// Another device of the callee declined.
    DeclinedElsewhere,
    /// Media could not be established or was lost.
    Failed,
    /// A reason a newer peer knows and this build does not.
    #[serde(other)]
    Other,
}

/// Call signaling (shared/DESIGN.md §4). Opaque to the server except for routing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CallSignal {
    /// Caller asks whether the callee is free; nothing rings yet.
    Inquire {
        /// The caller wants video too.
        video: bool,
    },
    /// Callee reserved the call id; the caller may send the offer.
    Grant {},
    /// Callee will not take the call.
    Refuse {
        /// Why.
        reason: RefuseReason,
    },
    /// SDP offer (after Grant).
    Offer {
        /// SDP.
        sdp: SignalBlob,
    },
    /// SDP answer.
    Answer {
        /// SDP.
        sdp: SignalBlob,
    },
    /// One ICE candidate (JSON of RTCIceCandidateInit).
    Candidate {
        /// The candidate.
        candidate: SignalBlob,
    },
    /// The call ended.
    Hangup {
        /// Why.
        reason: HangupReason,
    },
    /// The caller gave up before the call was answered.
    Cancel {},
}

/// How a call ended, as stored in the room log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum CallOutcome {
    /// Nobody answered.
    Missed,
    /// The callee declined.
    Declined,
    /// The callee was in another call.
    Busy,
    /// The call was answered and later ended.
    Completed,
    /// The caller cancelled before an answer.
    Cancelled,
    /// An outcome a newer peer knows and this build does not.
    #[serde(other)]
    Other,
}

/// A call's outcome (the facts; UIs derive their wording from them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    /// The call.
    pub call: CallId,
    /// Who called.
    pub caller: UserId,
    /// How it ended.
    pub outcome: CallOutcome,
    /// Talk time in milliseconds (0 unless completed).
    pub duration_ms: u64,
    /// Video call.
    pub video: bool,
}

/// A user as shown to others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRef {
    /// Id.
    pub id: UserId,
    /// Username.
    pub username: Username,
}

/// One event of a room log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomEvent {
    /// The room.
    pub room: RoomId,
    /// Its position in the room log.
    pub seq: Seq,
    /// Who caused it.
    pub sender: UserId,
    /// From which device.
    pub device: DeviceId,
    /// The sender's idempotency key (lets the sending device match its local echo).
    pub request: RequestId,
    /// Server time of the commit, Unix milliseconds.
    pub at_ms: i64,
    /// What happened.
    pub content: EventContent,
}

/// What a room event says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum EventContent {
    /// The room was created with these members (the creator first).
    Created {
        /// Direct or group.
        kind: RoomKind,
        /// Group name.
        name: Option<RoomName>,
        /// Members at creation.
        members: List<UserRef, MAX_ROOM_MEMBERS>,
        /// Those of `members` who have not agreed yet: the creator is not their contact, so
        /// the room is a request to them until they accept ([`EventContent::Accepted`]) or
        /// leave. Absent when empty.
        #[serde(default = "List::empty", skip_serializing_if = "List::is_empty")]
        requested: List<UserId, MAX_ROOM_MEMBERS>,
    },
    /// A user joined (was invited by `by`).
    Joined {
        /// Who joined.
        user: UserRef,
        /// Who added them.
        by: UserId,
        /// `by` is not their contact: the room is a request to them until they accept or
        /// leave. Absent when false.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        request: bool,
    },
    /// A member accepted the request that made them a member.
    Accepted {
        /// Who accepted.
        user: UserId,
    },
    /// A member left.
    Left {
        /// Who left.
        user: UserId,
    },
    /// A member was removed.
    Removed {
        /// Who was removed.
        user: UserId,
        /// By whom.
        by: UserId,
    },
    /// The room was renamed.
    Renamed {
        /// New name.
        name: RoomName,
    },
    /// A message.
    Message {
        /// Opaque body.
        body: Body,
        /// Referenced media.
        attachments: List<MediaId, MAX_ATTACHMENTS>,
    },
    /// A call's outcome.
    Call(CallRecord),
    /// An MLS handshake of the room's group (see [`Request::Mls`]): the group's setup
    /// (`welcome` only) or a commit, and the Welcome for the devices it adds.
    Mls {
        /// The commit (absent for the setup).
        commit: Option<MlsBlob>,
        /// The Welcome.
        welcome: Option<MlsBlob>,
    },
    /// These devices of the event's sender were signed out (revoked, signed out, or signed
    /// out everywhere): their leaves leave the room's group with the next commit. Logged in
    /// every room of the sender that has a group.
    DevicesSignedOut {
        /// The devices.
        devices: List<DeviceId, MAX_DEVICES>,
    },
}

/// A member's state in a room, with their receipt watermarks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The member.
    pub user: UserRef,
    /// Everything up to this seq reached one of their devices.
    pub delivered: Seq,
    /// Everything up to this seq has been read by them.
    pub read: Seq,
}

/// The head of one room the user is a member of, in [`Reply::Joined`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomHead {
    /// The room.
    pub room: RoomId,
    /// Its last seq.
    pub last_seq: Seq,
}

/// One of my devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// Device id.
    pub id: DeviceId,
    /// Its name.
    pub name: Name,
    /// When it signed in, Unix ms.
    pub created_ms: i64,
    /// When it last joined, Unix ms.
    pub last_seen_ms: i64,
    /// This is the device asking.
    pub current: bool,
}

/// A request id from [`Request::Join`] that the server has committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmed {
    /// The request id.
    pub request: RequestId,
    /// Its room.
    pub room: RoomId,
    /// The seq it got.
    pub seq: Seq,
}

/// Limits the server announces in [`Reply::Welcome`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerLimits {
    /// Largest frame, bytes.
    pub max_frame_bytes: u32,
    /// Largest upload, bytes.
    pub max_upload_bytes: u64,
}

/// A successful answer to a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Reply {
    /// Answer to Hello: the version both sides will speak.
    Welcome {
        /// Negotiated protocol version.
        version: u16,
        /// Server software and version.
        server: Name,
        /// Server limits.
        limits: ServerLimits,
    },
    /// Answer to SignUp/SignIn: a new device session.
    Session {
        /// The account.
        user: UserRef,
        /// The new device.
        device: DeviceId,
        /// Token for Join and HTTP requests. Keep it secret.
        token: Token,
    },
    /// Answer to RedeemLink: a new device session on the offering device's account, and what
    /// that device sealed for it.
    Linked {
        /// The account.
        user: UserRef,
        /// The new device.
        device: DeviceId,
        /// Token for Join and HTTP requests. Keep it secret.
        token: Token,
        /// The offer's sealed payload.
        sealed: LinkBlob,
    },
    /// Answer to OfferLink: until when the offer can be redeemed.
    LinkOffered {
        /// Expiry, Unix milliseconds.
        expires_ms: i64,
    },
    /// Answer to Join.
    Joined {
        /// The account.
        user: UserRef,
        /// This device.
        device: DeviceId,
        /// Rooms I am a member of that the client did not list or that have events after
        /// the client's cursor, with their last seq.
        rooms: List<RoomHead, MAX_JOIN_ROOMS>,
        /// Rooms the client listed that I am no longer a member of.
        left: List<RoomId, MAX_JOIN_ROOMS>,
        /// Which of the unconfirmed request ids the server has committed.
        confirmed: List<Confirmed, MAX_JOIN_UNCONFIRMED>,
    },
    /// The request took effect and has nothing to report.
    Done {},
    /// My devices.
    Devices {
        /// The devices, by id.
        devices: List<DeviceInfo, MAX_DEVICES>,
        /// There are more: ask again with `after` set to this (absent on the last page).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next: Option<DeviceId>,
    },
    /// The user found by LookupUser.
    User {
        /// The user.
        user: UserRef,
    },
    /// A room-log mutation was committed (or had been: same answer on a resend).
    Logged {
        /// The room.
        room: RoomId,
        /// The seq of its event.
        seq: Seq,
    },
    /// A page of a room's log.
    Page {
        /// The room.
        room: RoomId,
        /// Events after the requested seq, oldest first.
        events: List<RoomEvent, MAX_PAGE_EVENTS>,
        /// The room's last seq: more pages follow while the last event's seq is below it.
        last_seq: Seq,
        /// Current members and their receipts.
        members: List<Member, MAX_ROOM_MEMBERS>,
    },
    /// Answer to ContactKey.
    ContactKey {
        /// The key (a secret: it goes into my contact code and nowhere else).
        key: ContactKeyText,
        /// When it stops working (Unix ms), if ever.
        expires_ms: Option<i64>,
    },
    /// Answer to AddContact.
    Contact {
        /// The new (or existing) contact.
        contact: Contact,
    },
    /// Answer to Contacts.
    Contacts {
        /// Everyone I have as a contact.
        contacts: List<Contact, MAX_CONTACTS>,
    },
    /// Answer to Blocked.
    Blocked {
        /// Everyone I block.
        users: List<UserRef, MAX_BLOCKED>,
    },
    /// Answer to NearbyList: nearest first.
    Nearby {
        /// Who, and how far as a bucket (never a distance).
        people: List<NearbyPerson, MAX_NEARBY>,
    },
    /// Answer to IceServers.
    IceServers {
        /// The servers, in order of preference.
        servers: List<IceServer, MAX_ICE_SERVERS>,
        /// Seconds the TURN credentials stay valid.
        ttl_s: u32,
    },
    /// Answer to Ping.
    Pong {
        /// The nonce from the ping.
        nonce: u64,
    },
    /// Answer to PublishKeyPackages: how many one-time KeyPackages this device has on the
    /// server now.
    KeyPackageCount {
        /// One-time KeyPackages left.
        count: u32,
    },
    /// Answer to ClaimKeyPackages: one per device that has any.
    KeyPackages {
        /// The KeyPackages, by device.
        packages: List<DeviceKeyPackage, MAX_DEVICES>,
    },
    /// Answer to GroupInfo.
    GroupInfo {
        /// The room's latest GroupInfo (`None`: the room has no group yet).
        group_info: Option<MlsBlob>,
    },
}

/// One device's KeyPackage, as claimed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceKeyPackage {
    /// The device.
    pub device: DeviceId,
    /// Its KeyPackage.
    pub package: KeyPackageBlob,
}

/// A contact key as it travels (16–64 characters of `A-Z a-z 0-9 - _`). Its `Debug` never
/// prints it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ContactKeyText(pub Text<64>);

impl std::fmt::Debug for ContactKeyText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ContactKeyText(…)")
    }
}

/// One of my contacts and our direct room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// Who.
    pub user: UserRef,
    /// Our direct room.
    pub room: RoomId,
}

/// Someone visible nearby.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NearbyPerson {
    /// Who.
    pub user: UserRef,
    /// How far, roughly.
    pub distance: DistanceBucket,
}

/// How far someone nearby is, as a bucket (between the centres of the two ~1 km cells).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum DistanceBucket {
    /// Under 1 km.
    Under1Km,
    /// Under 5 km.
    Under5Km,
    /// Under 20 km.
    Under20Km,
    /// A bucket a newer server knows and this build does not.
    #[serde(other)]
    Other,
}

/// A STUN or TURN server for calls (WebRTC's `RTCIceServer`). Its Debug output leaves the
/// credential out.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    /// `stun:` / `turn:` URLs.
    pub urls: List<Text<MAX_ICE_URL_BYTES>, MAX_ICE_SERVERS>,
    /// TURN username (coturn REST scheme: `expiry:user`); empty for STUN.
    pub username: Text<MAX_ICE_URL_BYTES>,
    /// TURN password (base64 HMAC-SHA1 of the username); empty for STUN.
    pub credential: Text<MAX_ICE_URL_BYTES>,
}

impl std::fmt::Debug for IceServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceServer")
            .field("urls", &self.urls)
            .field("username", &self.username)
            .field("credential", &"…")
            .finish()
    }
}

/// Typed error codes. Clients branch on the code, never on the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(rename = "ServerErrorCode"))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// No protocol version in common; the connection closes.
    IncompatibleVersion,
    /// The frame could not be decoded.
    Malformed,
    /// A request kind this server does not know.
    UnknownRequest,
    /// A frame, string or list over its limit.
    TooLarge,
    /// Hello must come first.
    HelloRequired,
    /// The request needs a joined session (or the token is bad, expired or revoked).
    Unauthenticated,
    /// Wrong username or password.
    BadCredentials,
    /// Not allowed (e.g. not a member of the room).
    Forbidden,
    /// No such user, room, device or media.
    NotFound,
    /// The username is taken.
    UsernameTaken,
    /// A field is invalid (message says which).
    InvalidInput,
    /// The request id was used before for different content.
    RequestIdReused,
    /// Too many requests; retry after `retry_after_ms`.
    RateLimited,
    /// The server is shutting down; reconnect later.
    ShuttingDown,
    /// The connection could not keep up with its pushes and is being closed.
    TooSlow,
    /// Something failed on the server; retry later.
    Internal,
    /// No such contact key: mistyped, or replaced by a newer one (revoked).
    InvalidContactKey,
    /// The contact key has expired.
    ExpiredContactKey,
    /// A per-user cap is reached (rooms a user is in, storage); the message says which.
    QuotaExceeded,
    /// The server's disk is nearly full: nothing new is stored for now; retry later.
    StorageFull,
    /// An MLS message built on an epoch the room's group has left (another commit came
    /// first): catch up, rebuild, resend under the same request id. Not transient: the same
    /// bytes would fail again.
    StaleEpoch,
    /// A link code the server does not know: mistyped, already used, or expired.
    InvalidLinkCode,
    /// The account already has as many devices signed in as it may: sign one out first.
    TooManyDevices,
    /// A code a newer server knows and this build does not.
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The code named `name` on the wire (what [`ErrorCode::as_str`] gives); a name this
    /// build does not know is [`ErrorCode::Unknown`].
    pub fn from_name(name: &str) -> Self {
        use serde::de::{value::StrDeserializer, IntoDeserializer};
        let name: StrDeserializer<'_, serde::de::value::Error> = name.into_deserializer();
        Self::deserialize(name).unwrap_or(Self::Unknown)
    }

    /// Whether retrying the same request later can succeed (the outbox retries these).
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            ErrorCode::RateLimited
                | ErrorCode::ShuttingDown
                | ErrorCode::TooSlow
                | ErrorCode::Internal
                | ErrorCode::Unauthenticated
                | ErrorCode::StorageFull
        )
    }

    /// Stable snake_case name (as on the wire and in metrics).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::IncompatibleVersion => "incompatible_version",
            ErrorCode::Malformed => "malformed",
            ErrorCode::UnknownRequest => "unknown_request",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::HelloRequired => "hello_required",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::BadCredentials => "bad_credentials",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::UsernameTaken => "username_taken",
            ErrorCode::InvalidInput => "invalid_input",
            ErrorCode::RequestIdReused => "request_id_reused",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::TooSlow => "too_slow",
            ErrorCode::Internal => "internal",
            ErrorCode::InvalidContactKey => "invalid_contact_key",
            ErrorCode::ExpiredContactKey => "expired_contact_key",
            ErrorCode::QuotaExceeded => "quota_exceeded",
            ErrorCode::StorageFull => "storage_full",
            ErrorCode::StaleEpoch => "stale_epoch",
            ErrorCode::InvalidLinkCode => "invalid_link_code",
            ErrorCode::TooManyDevices => "too_many_devices",
            ErrorCode::Unknown => "unknown",
        }
    }
}

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorInfo {
    /// What went wrong, for programs.
    pub code: ErrorCode,
    /// What went wrong, for people (never contains secrets or bodies).
    pub message: Text<MAX_ERROR_BYTES>,
    /// For `rate_limited`: when to retry.
    pub retry_after_ms: Option<u32>,
}

impl ErrorInfo {
    /// An error with a message (cut to the wire limit at a char boundary).
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        let mut message: String = message.into();
        if message.len() > MAX_ERROR_BYTES {
            let mut end = MAX_ERROR_BYTES;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
        }
        let message = Text::new(message).unwrap_or_default();
        Self { code, message, retry_after_ms: None }
    }
}

impl std::fmt::Display for ErrorInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for ErrorInfo {}

/// One frame from server to client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ServerFrame {
    /// The answer to the client frame with this id.
    Reply {
        /// The client frame's id.
        id: u32,
        /// Success or a typed error.
        result: Result<Reply, ErrorInfo>,
    },
    /// A new event in one of my rooms (live, after the commit).
    Event {
        /// The event.
        event: RoomEvent,
    },
    /// A member's receipt watermarks moved.
    Receipt {
        /// The room.
        room: RoomId,
        /// The member.
        user: UserId,
        /// Delivered watermark.
        delivered: Seq,
        /// Read watermark.
        read: Seq,
    },
    /// A member started or stopped typing.
    Typing {
        /// The room.
        room: RoomId,
        /// Who.
        user: UserId,
        /// Typing now.
        active: bool,
    },
    /// A call signal from another member.
    Signal {
        /// The room of the call.
        room: RoomId,
        /// Sender.
        from_user: UserId,
        /// Sender's device (answers go to it).
        from_device: DeviceId,
        /// The call.
        call: CallId,
        /// The signal.
        signal: CallSignal,
    },
    /// The server is closing this connection, and why.
    Closing {
        /// Why.
        error: ErrorInfo,
    },
}

impl Reply {
    /// A short stable name for logs and errors (never the content: a reply may carry a
    /// session token or TURN credentials).
    pub fn kind(&self) -> &'static str {
        match self {
            Reply::Welcome { .. } => "welcome",
            Reply::Session { .. } => "session",
            Reply::Linked { .. } => "linked",
            Reply::LinkOffered { .. } => "link_offered",
            Reply::Joined { .. } => "joined",
            Reply::Done {} => "done",
            Reply::Devices { .. } => "devices",
            Reply::User { .. } => "user",
            Reply::Logged { .. } => "logged",
            Reply::Page { .. } => "page",
            Reply::ContactKey { .. } => "contact_key",
            Reply::Contact { .. } => "contact",
            Reply::Contacts { .. } => "contacts",
            Reply::Blocked { .. } => "blocked",
            Reply::Nearby { .. } => "nearby",
            Reply::IceServers { .. } => "ice_servers",
            Reply::Pong { .. } => "pong",
            Reply::KeyPackageCount { .. } => "key_package_count",
            Reply::KeyPackages { .. } => "key_packages",
            Reply::GroupInfo { .. } => "group_info",
        }
    }
}

impl ServerFrame {
    /// Names of every frame kind this build knows (the tag on the wire).
    pub const KINDS: &'static [&'static str] =
        &["Reply", "Event", "Receipt", "Typing", "Signal", "Closing"];

    /// The wire tag of this frame.
    pub fn kind(&self) -> &'static str {
        match self {
            ServerFrame::Reply { .. } => "Reply",
            ServerFrame::Event { .. } => "Event",
            ServerFrame::Receipt { .. } => "Receipt",
            ServerFrame::Typing { .. } => "Typing",
            ServerFrame::Signal { .. } => "Signal",
            ServerFrame::Closing { .. } => "Closing",
        }
    }
}
