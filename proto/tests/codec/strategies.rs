//! Proptest strategies that make every variant of every enum a frame carries, and the wire
//! tag of each variant by exhaustive `match`: a new variant is a compile error here until it
//! is named, and `the_strategies_produce_every_variant` fails until a strategy makes it.

use proptest::{collection::vec, option, prelude::*};
use tidings_proto::{
    bounded::{Blob, List, Text},
    codec::{self, DecodeError},
    limits::*,
    *,
};

pub fn text<const N: usize>() -> impl Strategy<Value = Text<N>> {
    "\\PC{0,12}".prop_filter_map("fits", |s| Text::new(s).ok())
}

pub fn blob<const N: usize>() -> impl Strategy<Value = Blob<N>> {
    vec(any::<u8>(), 0..64.min(N + 1)).prop_map(|b| Blob::new(b).unwrap())
}

pub fn list<T: std::fmt::Debug, const N: usize>(
    item: impl Strategy<Value = T>,
) -> impl Strategy<Value = List<T, N>> {
    vec(item, 0..4).prop_map(|v| List::new(v).unwrap())
}

pub fn request_id() -> impl Strategy<Value = RequestId> {
    any::<[u8; 16]>().prop_map(RequestId)
}

pub fn room() -> impl Strategy<Value = RoomId> {
    any::<i64>().prop_map(RoomId)
}

pub fn user() -> impl Strategy<Value = UserId> {
    any::<i64>().prop_map(UserId)
}

pub fn device() -> impl Strategy<Value = DeviceId> {
    any::<i64>().prop_map(DeviceId)
}

pub fn media() -> impl Strategy<Value = MediaId> {
    any::<i64>().prop_map(MediaId)
}

pub fn user_ref() -> impl Strategy<Value = UserRef> {
    (user(), text()).prop_map(|(id, username)| UserRef { id, username })
}

pub fn credentials() -> impl Strategy<Value = Credentials> {
    (text(), text(), text()).prop_map(|(username, p, device_name)| Credentials {
        username,
        password: Password(p),
        device_name,
    })
}

pub fn room_kind() -> impl Strategy<Value = RoomKind> {
    prop_oneof![Just(RoomKind::Direct), Just(RoomKind::Group)]
}

/// Every error code; `code_name` below is the exhaustive check on this list.
pub const ALL_CODES: [ErrorCode; 24] = [
    ErrorCode::IncompatibleVersion,
    ErrorCode::Malformed,
    ErrorCode::UnknownRequest,
    ErrorCode::TooLarge,
    ErrorCode::HelloRequired,
    ErrorCode::Unauthenticated,
    ErrorCode::BadCredentials,
    ErrorCode::Forbidden,
    ErrorCode::NotFound,
    ErrorCode::UsernameTaken,
    ErrorCode::InvalidInput,
    ErrorCode::RequestIdReused,
    ErrorCode::RateLimited,
    ErrorCode::ShuttingDown,
    ErrorCode::TooSlow,
    ErrorCode::Internal,
    ErrorCode::InvalidContactKey,
    ErrorCode::ExpiredContactKey,
    ErrorCode::QuotaExceeded,
    ErrorCode::StorageFull,
    ErrorCode::StaleEpoch,
    ErrorCode::InvalidLinkCode,
    ErrorCode::TooManyDevices,
    ErrorCode::Unknown,
];

pub const ALL_OUTCOMES: [CallOutcome; 6] = [
    CallOutcome::Missed,
    CallOutcome::Declined,
    CallOutcome::Busy,
    CallOutcome::Completed,
    CallOutcome::Cancelled,
    CallOutcome::Other,
];

pub const ALL_REFUSALS: [RefuseReason; 4] =
    [RefuseReason::Busy, RefuseReason::Declined, RefuseReason::Unavailable, RefuseReason::Other];

pub const ALL_HANGUPS: [HangupReason; 7] = [
    HangupReason::Normal,
    HangupReason::Declined,
    HangupReason::NoAnswer,
    HangupReason::AnsweredElsewhere,
    HangupReason::DeclinedElsewhere,
    HangupReason::Failed,
    HangupReason::Other,
];

pub fn call_record() -> impl Strategy<Value = CallRecord> {
    (any::<u64>(), user(), proptest::sample::select(&ALL_OUTCOMES[..]), any::<u64>(), any::<bool>())
        .prop_map(|(call, caller, outcome, duration_ms, video)| CallRecord {
            call,
            caller,
            outcome,
            duration_ms,
            video,
        })
}

pub fn signal() -> impl Strategy<Value = CallSignal> {
    prop_oneof![
        any::<bool>().prop_map(|video| CallSignal::Inquire { video }),
        Just(CallSignal::Grant {}),
        proptest::sample::select(&ALL_REFUSALS[..])
            .prop_map(|reason| CallSignal::Refuse { reason }),
        blob().prop_map(|sdp| CallSignal::Offer { sdp }),
        blob().prop_map(|sdp| CallSignal::Answer { sdp }),
        blob().prop_map(|candidate| CallSignal::Candidate { candidate }),
        proptest::sample::select(&ALL_HANGUPS[..]).prop_map(|reason| CallSignal::Hangup { reason }),
        Just(CallSignal::Cancel {}),
    ]
}

pub fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        (any::<u16>(), any::<u16>(), text()).prop_map(|(min_version, max_version, client)| {
            Request::Hello { min_version, max_version, client }
        }),
        credentials().prop_map(Request::SignUp),
        credentials().prop_map(Request::SignIn),
        (
            text(),
            any::<u16>(),
            list((room(), any::<u64>()).prop_map(|(room, last_seq)| RoomCursor { room, last_seq })),
            list(request_id())
        )
            .prop_map(|(t, protocol_version, rooms, unconfirmed)| Request::Join {
                token: Token(t),
                protocol_version,
                rooms,
                unconfirmed
            }),
        Just(Request::SignOut {}),
        (text(), text()).prop_map(|(old, new)| Request::ChangePassword {
            old: Password(old),
            new: Password(new)
        }),
        Just(Request::SignOutEverywhere {}),
        option::of(device()).prop_map(|after| Request::ListDevices { after }),
        device().prop_map(|device| Request::RevokeDevice { device }),
        text().prop_map(|username| Request::LookupUser { username }),
        (request_id(), room_kind(), option::of(text()), list(user())).prop_map(
            |(request, kind, name, members)| Request::CreateRoom { request, kind, name, members }
        ),
        (request_id(), room(), user()).prop_map(|(request, room, user)| Request::Invite {
            request,
            room,
            user
        }),
        (request_id(), room()).prop_map(|(request, room)| Request::Leave { request, room }),
        (request_id(), room(), user()).prop_map(|(request, room, user)| Request::RemoveMember {
            request,
            room,
            user
        }),
        (request_id(), room(), text()).prop_map(|(request, room, name)| Request::Rename {
            request,
            room,
            name
        }),
        (request_id(), room(), blob(), list(media()), option::of(request_id())).prop_map(
            |(request, room, body, attachments, redacts)| Request::Send {
                request,
                room,
                body,
                attachments,
                redacts
            }
        ),
        (request_id(), room(), call_record())
            .prop_map(|(request, room, record)| Request::RecordCall { request, room, record }),
        (request_id(), room(), option::of(blob()), option::of(blob()), blob()).prop_map(
            |(request, room, commit, welcome, group_info)| Request::Mls {
                request,
                room,
                commit,
                welcome,
                group_info
            }
        ),
        (list(blob()), option::of(blob())).prop_map(|(packages, last_resort)| {
            Request::PublishKeyPackages { packages, last_resort }
        }),
        user().prop_map(|user| Request::ClaimKeyPackages { user }),
        (blob(), blob()).prop_map(|(id, sealed)| Request::OfferLink { id, sealed }),
        (blob(), text()).prop_map(|(id, device_name)| Request::RedeemLink { id, device_name }),
        room().prop_map(|room| Request::GroupInfo { room }),
        (room(), option::of(any::<u64>()), option::of(any::<u64>()))
            .prop_map(|(room, delivered, read)| Request::Receipt { room, delivered, read }),
        (room(), any::<bool>()).prop_map(|(room, active)| Request::Typing { room, active }),
        (room(), user(), option::of(device()), any::<u64>(), signal()).prop_map(
            |(room, to_user, to_device, call, signal)| Request::Signal {
                room,
                to_user,
                to_device,
                call,
                signal
            }
        ),
        (room(), any::<u64>(), any::<u16>()).prop_map(|(room, after, limit)| Request::CatchUp {
            room,
            after,
            limit
        }),
        (any::<bool>(), option::of(any::<u32>()))
            .prop_map(|(reset, ttl_s)| Request::ContactKey { reset, ttl_s }),
        (text(), text())
            .prop_map(|(user, key)| Request::AddContact { user, key: ContactKeyText(key) }),
        Just(Request::Contacts {}),
        (request_id(), room()).prop_map(|(request, room)| Request::Accept { request, room }),
        user().prop_map(|user| Request::Block { user }),
        user().prop_map(|user| Request::Unblock { user }),
        Just(Request::Blocked {}),
        (text(), any::<u32>()).prop_map(|(cell, ttl_s)| Request::NearbyOn { cell, ttl_s }),
        Just(Request::NearbyOff {}),
        Just(Request::NearbyList {}),
        Just(Request::IceServers {}),
        any::<u64>().prop_map(|nonce| Request::Ping { nonce }),
    ]
}

pub fn content() -> impl Strategy<Value = EventContent> {
    prop_oneof![
        (room_kind(), option::of(text()), list(user_ref()), list(user())).prop_map(
            |(kind, name, members, requested)| EventContent::Created {
                kind,
                name,
                members,
                requested
            }
        ),
        (user_ref(), user(), any::<bool>()).prop_map(|(user, by, request)| EventContent::Joined {
            user,
            by,
            request
        }),
        user().prop_map(|user| EventContent::Accepted { user }),
        user().prop_map(|user| EventContent::Left { user }),
        (user(), user()).prop_map(|(user, by)| EventContent::Removed { user, by }),
        text().prop_map(|name| EventContent::Renamed { name }),
        (blob(), list(media()))
            .prop_map(|(body, attachments)| EventContent::Message { body, attachments }),
        call_record().prop_map(EventContent::Call),
        (option::of(blob()), option::of(blob()))
            .prop_map(|(commit, welcome)| EventContent::Mls { commit, welcome }),
        list(device()).prop_map(|devices| EventContent::DevicesSignedOut { devices }),
    ]
}

pub fn event() -> impl Strategy<Value = RoomEvent> {
    (room(), any::<u64>(), user(), device(), request_id(), any::<i64>(), content()).prop_map(
        |(room, seq, sender, device, request, at_ms, content)| RoomEvent {
            room,
            seq,
            sender,
            device,
            request,
            at_ms,
            content,
        },
    )
}

pub fn error_info() -> impl Strategy<Value = ErrorInfo> {
    (proptest::sample::select(&ALL_CODES[..]), text::<MAX_ERROR_BYTES>(), option::of(any::<u32>()))
        .prop_map(|(code, message, retry_after_ms)| ErrorInfo { code, message, retry_after_ms })
}

pub fn reply() -> impl Strategy<Value = Reply> {
    prop_oneof![
        (any::<u16>(), text(), any::<u32>(), any::<u64>()).prop_map(|(version, server, f, u)| {
            Reply::Welcome {
                version,
                server,
                limits: ServerLimits { max_frame_bytes: f, max_upload_bytes: u },
            }
        }),
        (user_ref(), device(), text()).prop_map(|(user, device, t)| Reply::Session {
            user,
            device,
            token: Token(t)
        }),
        (user_ref(), device(), text(), blob()).prop_map(|(user, device, t, sealed)| {
            Reply::Linked { user, device, token: Token(t), sealed }
        }),
        any::<i64>().prop_map(|expires_ms| Reply::LinkOffered { expires_ms }),
        (
            user_ref(),
            device(),
            list((room(), any::<u64>()).prop_map(|(room, last_seq)| RoomHead { room, last_seq })),
            list(room()),
            list((request_id(), room(), any::<u64>()).prop_map(|(request, room, seq)| Confirmed {
                request,
                room,
                seq
            }))
        )
            .prop_map(|(user, device, rooms, left, confirmed)| Reply::Joined {
                user,
                device,
                rooms,
                left,
                confirmed
            }),
        Just(Reply::Done {}),
        (
            list((device(), text(), any::<i64>(), any::<i64>(), any::<bool>()).prop_map(
                |(id, name, created_ms, last_seen_ms, current)| DeviceInfo {
                    id,
                    name,
                    created_ms,
                    last_seen_ms,
                    current
                }
            )),
            option::of(device())
        )
            .prop_map(|(devices, next)| Reply::Devices { devices, next }),
        user_ref().prop_map(|user| Reply::User { user }),
        (room(), any::<u64>()).prop_map(|(room, seq)| Reply::Logged { room, seq }),
        (
            room(),
            list(event()),
            any::<u64>(),
            list(
                (user_ref(), any::<u64>(), any::<u64>())
                    .prop_map(|(user, delivered, read)| Member { user, delivered, read })
            )
        )
            .prop_map(|(room, events, last_seq, members)| Reply::Page {
                room,
                events,
                last_seq,
                members
            }),
        (text(), option::of(any::<i64>())).prop_map(|(key, expires_ms)| Reply::ContactKey {
            key: ContactKeyText(key),
            expires_ms
        }),
        (user_ref(), room())
            .prop_map(|(user, room)| Reply::Contact { contact: Contact { user, room } }),
        list((user_ref(), room()).prop_map(|(user, room)| Contact { user, room }))
            .prop_map(|contacts| Reply::Contacts { contacts }),
        list(user_ref()).prop_map(|users| Reply::Blocked { users }),
        list(
            (
                user_ref(),
                prop_oneof![
                    Just(DistanceBucket::Under1Km),
                    Just(DistanceBucket::Under5Km),
                    Just(DistanceBucket::Under20Km)
                ]
            )
                .prop_map(|(user, distance)| NearbyPerson { user, distance })
        )
        .prop_map(|people| Reply::Nearby { people }),
        (
            list((list(text()), text(), text()).prop_map(|(urls, username, credential)| {
                IceServer { urls, username, credential }
            })),
            any::<u32>()
        )
            .prop_map(|(servers, ttl_s)| Reply::IceServers { servers, ttl_s }),
        any::<u64>().prop_map(|nonce| Reply::Pong { nonce }),
        any::<u32>().prop_map(|count| Reply::KeyPackageCount { count }),
        list((device(), blob()).prop_map(|(device, package)| DeviceKeyPackage { device, package }))
            .prop_map(|packages| Reply::KeyPackages { packages }),
        option::of(blob()).prop_map(|group_info| Reply::GroupInfo { group_info }),
    ]
}

pub fn server_frame() -> impl Strategy<Value = ServerFrame> {
    prop_oneof![
        (any::<u32>(), reply()).prop_map(|(id, r)| ServerFrame::Reply { id, result: Ok(r) }),
        (any::<u32>(), error_info()).prop_map(|(id, e)| ServerFrame::Reply { id, result: Err(e) }),
        event().prop_map(|event| ServerFrame::Event { event }),
        (room(), user(), any::<u64>(), any::<u64>()).prop_map(|(room, user, delivered, read)| {
            ServerFrame::Receipt { room, user, delivered, read }
        }),
        (room(), user(), any::<bool>()).prop_map(|(room, user, active)| ServerFrame::Typing {
            room,
            user,
            active
        }),
        (room(), user(), device(), any::<u64>(), signal()).prop_map(
            |(room, from_user, from_device, call, signal)| ServerFrame::Signal {
                room,
                from_user,
                from_device,
                call,
                signal
            }
        ),
        error_info().prop_map(|error| ServerFrame::Closing { error }),
    ]
}

// ---- Wire tags by exhaustive match: a new variant is a compile error here until it is named.

pub fn request_tag(r: &Request) -> &'static str {
    match r {
        Request::Hello { .. } => "Hello",
        Request::SignUp(_) => "SignUp",
        Request::SignIn(_) => "SignIn",
        Request::Join { .. } => "Join",
        Request::SignOut {} => "SignOut",
        Request::ChangePassword { .. } => "ChangePassword",
        Request::SignOutEverywhere {} => "SignOutEverywhere",
        Request::ListDevices { .. } => "ListDevices",
        Request::RevokeDevice { .. } => "RevokeDevice",
        Request::LookupUser { .. } => "LookupUser",
        Request::CreateRoom { .. } => "CreateRoom",
        Request::Invite { .. } => "Invite",
        Request::Leave { .. } => "Leave",
        Request::RemoveMember { .. } => "RemoveMember",
        Request::Rename { .. } => "Rename",
        Request::Send { .. } => "Send",
        Request::RecordCall { .. } => "RecordCall",
        Request::Mls { .. } => "Mls",
        Request::PublishKeyPackages { .. } => "PublishKeyPackages",
        Request::ClaimKeyPackages { .. } => "ClaimKeyPackages",
        Request::OfferLink { .. } => "OfferLink",
        Request::RedeemLink { .. } => "RedeemLink",
        Request::GroupInfo { .. } => "GroupInfo",
        Request::Receipt { .. } => "Receipt",
        Request::Typing { .. } => "Typing",
        Request::Signal { .. } => "Signal",
        Request::CatchUp { .. } => "CatchUp",
        Request::ContactKey { .. } => "ContactKey",
        Request::AddContact { .. } => "AddContact",
        Request::Contacts {} => "Contacts",
        Request::Accept { .. } => "Accept",
        Request::Block { .. } => "Block",
        Request::Unblock { .. } => "Unblock",
        Request::Blocked {} => "Blocked",
        Request::NearbyOn { .. } => "NearbyOn",
        Request::NearbyOff {} => "NearbyOff",
        Request::NearbyList {} => "NearbyList",
        Request::IceServers {} => "IceServers",
        Request::Ping { .. } => "Ping",
    }
}

pub fn server_tag(f: &ServerFrame) -> &'static str {
    match f {
        ServerFrame::Reply { .. } => "Reply",
        ServerFrame::Event { .. } => "Event",
        ServerFrame::Receipt { .. } => "Receipt",
        ServerFrame::Typing { .. } => "Typing",
        ServerFrame::Signal { .. } => "Signal",
        ServerFrame::Closing { .. } => "Closing",
    }
}

pub fn reply_tag(r: &Reply) -> &'static str {
    match r {
        Reply::Welcome { .. } => "Welcome",
        Reply::Session { .. } => "Session",
        Reply::Linked { .. } => "Linked",
        Reply::LinkOffered { .. } => "LinkOffered",
        Reply::Joined { .. } => "Joined",
        Reply::Done {} => "Done",
        Reply::Devices { .. } => "Devices",
        Reply::User { .. } => "User",
        Reply::Logged { .. } => "Logged",
        Reply::Page { .. } => "Page",
        Reply::ContactKey { .. } => "ContactKey",
        Reply::Contact { .. } => "Contact",
        Reply::Contacts { .. } => "Contacts",
        Reply::Blocked { .. } => "Blocked",
        Reply::Nearby { .. } => "Nearby",
        Reply::IceServers { .. } => "IceServers",
        Reply::Pong { .. } => "Pong",
        Reply::KeyPackageCount { .. } => "KeyPackageCount",
        Reply::KeyPackages { .. } => "KeyPackages",
        Reply::GroupInfo { .. } => "GroupInfo",
    }
}

pub fn content_tag(c: &EventContent) -> &'static str {
    match c {
        EventContent::Created { .. } => "Created",
        EventContent::Joined { .. } => "Joined",
        EventContent::Accepted { .. } => "Accepted",
        EventContent::Left { .. } => "Left",
        EventContent::Removed { .. } => "Removed",
        EventContent::Renamed { .. } => "Renamed",
        EventContent::Message { .. } => "Message",
        EventContent::Call(_) => "Call",
        EventContent::Mls { .. } => "Mls",
        EventContent::DevicesSignedOut { .. } => "DevicesSignedOut",
    }
}

pub fn signal_tag(s: &CallSignal) -> &'static str {
    match s {
        CallSignal::Inquire { .. } => "Inquire",
        CallSignal::Grant {} => "Grant",
        CallSignal::Refuse { .. } => "Refuse",
        CallSignal::Offer { .. } => "Offer",
        CallSignal::Answer { .. } => "Answer",
        CallSignal::Candidate { .. } => "Candidate",
        CallSignal::Hangup { .. } => "Hangup",
        CallSignal::Cancel {} => "Cancel",
    }
}

/// The wire name of an error code, by exhaustive match.
pub fn code_name(c: ErrorCode) -> &'static str {
    match c {
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

/// "SignUp" → "sign_up", the form of `Request::kind` (metrics labels).
pub fn snake_case(tag: &str) -> String {
    let mut out = String::new();
    for (i, c) in tag.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// The first map key of an encoded enum value: its tag on the wire.
pub fn wire_tag(bytes: &[u8]) -> String {
    let mut rd = bytes;
    assert_eq!(rmp::decode::read_map_len(&mut rd).unwrap(), 1, "an enum value is a 1-entry map");
    let mut buf = [0u8; 64];
    rmp::decode::read_str(&mut rd, &mut buf).unwrap().to_owned()
}

/// The variant names serde's derive knows for `T`, read from its "unknown variant" error.
/// This is the list the decoder really accepts, so the KINDS constants are checked against it.
pub fn serde_variants<T: for<'a> serde::Deserialize<'a> + std::fmt::Debug>() -> Vec<String> {
    let mut bytes = Vec::new();
    rmp::encode::write_map_len(&mut bytes, 1).unwrap();
    rmp::encode::write_str(&mut bytes, "\u{1}NoSuchVariant").unwrap();
    rmp::encode::write_map_len(&mut bytes, 0).unwrap();
    let Err(DecodeError::Malformed(message)) = codec::decode::<T>(&bytes) else {
        panic!("an unknown variant must not decode");
    };
    let (_, expected) = message.split_once("expected").expect("serde's unknown-variant error");
    expected.split('`').skip(1).step_by(2).map(str::to_owned).collect()
}

/// Mutations carry the idempotency key; these are the ones.
pub const MUTATIONS: [&str; 9] = [
    "CreateRoom",
    "Invite",
    "Accept",
    "Leave",
    "RemoveMember",
    "Rename",
    "Send",
    "RecordCall",
    "Mls",
];
