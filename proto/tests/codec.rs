//! The codec: every frame round-trips, newer peers' frames are tolerated, and limits hold
//! before allocation.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is a failed test

use proptest::{collection::vec, option, prelude::*};
use serde::Serialize;
use tidings_proto::{
    bounded::{Blob, List, Text},
    codec::{self, DecodeError},
    limits::*,
    *,
};

fn text<const N: usize>() -> impl Strategy<Value = Text<N>> {
    "\\PC{0,12}".prop_filter_map("fits", |s| Text::new(s).ok())
}

fn blob<const N: usize>() -> impl Strategy<Value = Blob<N>> {
    vec(any::<u8>(), 0..64).prop_map(|b| Blob::new(b).unwrap())
}

fn list<T: std::fmt::Debug, const N: usize>(
    item: impl Strategy<Value = T>,
) -> impl Strategy<Value = List<T, N>> {
    vec(item, 0..4).prop_map(|v| List::new(v).unwrap())
}

fn request_id() -> impl Strategy<Value = RequestId> {
    any::<[u8; 16]>().prop_map(RequestId)
}

fn room() -> impl Strategy<Value = RoomId> {
    any::<i64>().prop_map(RoomId)
}

fn user() -> impl Strategy<Value = UserId> {
    any::<i64>().prop_map(UserId)
}

fn user_ref() -> impl Strategy<Value = UserRef> {
    (user(), text()).prop_map(|(id, username)| UserRef { id, username })
}

fn credentials() -> impl Strategy<Value = Credentials> {
    (text(), text(), text()).prop_map(|(username, p, device_name)| Credentials {
        username,
        password: Password(p),
        device_name,
    })
}

fn room_kind() -> impl Strategy<Value = RoomKind> {
    prop_oneof![Just(RoomKind::Direct), Just(RoomKind::Group)]
}

fn call_record() -> impl Strategy<Value = CallRecord> {
    let outcome = prop_oneof![
        Just(CallOutcome::Missed),
        Just(CallOutcome::Declined),
        Just(CallOutcome::Busy),
        Just(CallOutcome::Completed),
        Just(CallOutcome::Cancelled),
    ];
    (any::<u64>(), user(), outcome, any::<u64>(), any::<bool>()).prop_map(
        |(call, caller, outcome, duration_ms, video)| CallRecord {
            call,
            caller,
            outcome,
            duration_ms,
            video,
        },
    )
}

fn signal() -> impl Strategy<Value = CallSignal> {
    let refuse = prop_oneof![
        Just(RefuseReason::Busy),
        Just(RefuseReason::Declined),
        Just(RefuseReason::Unavailable)
    ];
    let hangup = prop_oneof![
        Just(HangupReason::Normal),
        Just(HangupReason::Declined),
        Just(HangupReason::NoAnswer),
        Just(HangupReason::AnsweredElsewhere),
        Just(HangupReason::DeclinedElsewhere),
        Just(HangupReason::Failed),
    ];
    prop_oneof![
        any::<bool>().prop_map(|video| CallSignal::Inquire { video }),
        Just(CallSignal::Grant {}),
        refuse.prop_map(|reason| CallSignal::Refuse { reason }),
        blob().prop_map(|sdp| CallSignal::Offer { sdp }),
        blob().prop_map(|sdp| CallSignal::Answer { sdp }),
        blob().prop_map(|candidate| CallSignal::Candidate { candidate }),
        hangup.prop_map(|reason| CallSignal::Hangup { reason }),
        Just(CallSignal::Cancel {}),
    ]
}

fn request() -> impl Strategy<Value = Request> {
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
        Just(Request::ListDevices {}),
        any::<i64>().prop_map(|d| Request::RevokeDevice { device: DeviceId(d) }),
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
        (request_id(), room(), blob(), list(any::<i64>().prop_map(MediaId))).prop_map(
            |(request, room, body, attachments)| Request::Send { request, room, body, attachments }
        ),
        (request_id(), room(), call_record())
            .prop_map(|(request, room, record)| { Request::RecordCall { request, room, record } }),
        (room(), option::of(any::<u64>()), option::of(any::<u64>()))
            .prop_map(|(room, delivered, read)| Request::Receipt { room, delivered, read }),
        (room(), any::<bool>()).prop_map(|(room, active)| Request::Typing { room, active }),
        (room(), user(), option::of(any::<i64>().prop_map(DeviceId)), any::<u64>(), signal())
            .prop_map(|(room, to_user, to_device, call, signal)| Request::Signal {
                room,
                to_user,
                to_device,
                call,
                signal
            }),
        (room(), any::<u64>(), any::<u16>()).prop_map(|(room, after, limit)| Request::CatchUp {
            room,
            after,
            limit
        }),
        any::<u64>().prop_map(|nonce| Request::Ping { nonce }),
    ]
}

fn content() -> impl Strategy<Value = EventContent> {
    prop_oneof![
        (room_kind(), option::of(text()), list(user_ref()))
            .prop_map(|(kind, name, members)| { EventContent::Created { kind, name, members } }),
        (user_ref(), user()).prop_map(|(user, by)| EventContent::Joined { user, by }),
        user().prop_map(|user| EventContent::Left { user }),
        (user(), user()).prop_map(|(user, by)| EventContent::Removed { user, by }),
        text().prop_map(|name| EventContent::Renamed { name }),
        (blob(), list(any::<i64>().prop_map(MediaId)))
            .prop_map(|(body, attachments)| EventContent::Message { body, attachments }),
        call_record().prop_map(EventContent::Call),
    ]
}

fn event() -> impl Strategy<Value = RoomEvent> {
    (room(), any::<u64>(), user(), any::<i64>(), request_id(), any::<i64>(), content()).prop_map(
        |(room, seq, sender, device, request, at_ms, content)| RoomEvent {
            room,
            seq,
            sender,
            device: DeviceId(device),
            request,
            at_ms,
            content,
        },
    )
}

fn error_info() -> impl Strategy<Value = ErrorInfo> {
    let code = prop_oneof![
        Just(ErrorCode::Forbidden),
        Just(ErrorCode::RateLimited),
        Just(ErrorCode::Malformed),
        Just(ErrorCode::Internal)
    ];
    (code, "[a-z ]{0,20}", option::of(any::<u32>())).prop_map(|(code, m, retry_after_ms)| {
        ErrorInfo { retry_after_ms, ..ErrorInfo::new(code, m) }
    })
}

fn reply() -> impl Strategy<Value = Reply> {
    prop_oneof![
        (any::<u16>(), text(), any::<u32>(), any::<u64>()).prop_map(|(version, server, f, u)| {
            Reply::Welcome {
                version,
                server,
                limits: ServerLimits { max_frame_bytes: f, max_upload_bytes: u },
            }
        }),
        (user_ref(), any::<i64>(), text()).prop_map(|(user, d, t)| Reply::Session {
            user,
            device: DeviceId(d),
            token: Token(t)
        }),
        (
            user_ref(),
            any::<i64>(),
            list((room(), any::<u64>()).prop_map(|(room, last_seq)| RoomHead { room, last_seq })),
            list(room()),
            list(
                (request_id(), room(), any::<u64>())
                    .prop_map(|(request, room, seq)| { Confirmed { request, room, seq } })
            )
        )
            .prop_map(|(user, d, rooms, left, confirmed)| Reply::Joined {
                user,
                device: DeviceId(d),
                rooms,
                left,
                confirmed
            }),
        Just(Reply::Done {}),
        list((any::<i64>(), text(), any::<i64>(), any::<i64>(), any::<bool>()).prop_map(
            |(id, name, created_ms, last_seen_ms, current)| DeviceInfo {
                id: DeviceId(id),
                name,
                created_ms,
                last_seen_ms,
                current
            }
        ))
        .prop_map(|devices| Reply::Devices { devices }),
        user_ref().prop_map(|user| Reply::User { user }),
        (room(), any::<u64>()).prop_map(|(room, seq)| Reply::Logged { room, seq }),
        (
            room(),
            list(event()),
            any::<u64>(),
            list(
                (user_ref(), any::<u64>(), any::<u64>())
                    .prop_map(|(user, delivered, read)| { Member { user, delivered, read } })
            )
        )
            .prop_map(|(room, events, last_seq, members)| Reply::Page {
                room,
                events,
                last_seq,
                members
            }),
        any::<u64>().prop_map(|nonce| Reply::Pong { nonce }),
    ]
}

fn server_frame() -> impl Strategy<Value = ServerFrame> {
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
        (room(), user(), any::<i64>(), any::<u64>(), signal()).prop_map(
            |(room, from_user, d, call, signal)| ServerFrame::Signal {
                room,
                from_user,
                from_device: DeviceId(d),
                call,
                signal
            }
        ),
        error_info().prop_map(|error| ServerFrame::Closing { error }),
    ]
}

/// The wire tag of a request, by exhaustive match: adding a variant without a tag fails here.
fn request_tag(r: &Request) -> &'static str {
    match r {
        Request::Hello { .. } => "Hello",
        Request::SignUp(_) => "SignUp",
        Request::SignIn(_) => "SignIn",
        Request::Join { .. } => "Join",
        Request::SignOut {} => "SignOut",
        Request::ListDevices {} => "ListDevices",
        Request::RevokeDevice { .. } => "RevokeDevice",
        Request::LookupUser { .. } => "LookupUser",
        Request::CreateRoom { .. } => "CreateRoom",
        Request::Invite { .. } => "Invite",
        Request::Leave { .. } => "Leave",
        Request::RemoveMember { .. } => "RemoveMember",
        Request::Rename { .. } => "Rename",
        Request::Send { .. } => "Send",
        Request::RecordCall { .. } => "RecordCall",
        Request::Receipt { .. } => "Receipt",
        Request::Typing { .. } => "Typing",
        Request::Signal { .. } => "Signal",
        Request::CatchUp { .. } => "CatchUp",
        Request::Ping { .. } => "Ping",
    }
}

/// The first map key of an encoded enum value: its tag on the wire.
fn wire_tag(bytes: &[u8]) -> String {
    let mut rd = bytes;
    rmp::decode::read_map_len(&mut rd).unwrap();
    let mut buf = [0u8; 64];
    rmp::decode::read_str(&mut rd, &mut buf).unwrap().to_owned()
}

proptest! {
    #[test]
    fn every_client_frame_round_trips(id in any::<u32>(), request in request()) {
        let frame = ClientFrame { id, request };
        let bytes = encode_client(&frame).unwrap();
        prop_assert_eq!(decode_client(&bytes).unwrap(), frame.clone());
        let tag = request_tag(&frame.request);
        prop_assert!(Request::KINDS.contains(&tag));
        let encoded_request = codec::encode(&frame.request).unwrap();
        prop_assert_eq!(wire_tag(&encoded_request), tag);
    }

    #[test]
    fn every_server_frame_round_trips(frame in server_frame()) {
        let bytes = encode_server(&frame).unwrap();
        prop_assert_eq!(decode_server(&bytes).unwrap(), frame.clone());
        prop_assert!(ServerFrame::KINDS.contains(&frame.kind()));
        prop_assert_eq!(wire_tag(&bytes), frame.kind());
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoders(bytes in vec(any::<u8>(), 0..512)) {
        let _ = decode_client(&bytes);
        let _ = decode_server(&bytes);
        let _ = codec::peek_client_id(&bytes);
    }
}

// ---- A newer server: the frames of a future protocol version, as an older client sees them.

/// RoomEvent as a newer server might send it: the same fields plus new ones.
#[derive(Serialize)]
struct NewerEvent<'a> {
    room: RoomId,
    seq: u64,
    sender: UserId,
    device: DeviceId,
    request: RequestId,
    at_ms: i64,
    content: &'a EventContent,
    edited_at_ms: Option<i64>,
    reactions: Vec<(String, u32)>,
}

#[derive(Serialize)]
enum NewerServerFrame<'a> {
    Event { event: NewerEvent<'a>, priority: u8 },
    Presence { user: UserId, online: bool },
}

#[test]
fn an_older_client_ignores_fields_a_newer_server_adds() {
    let content = EventContent::Message {
        body: Blob::new(b"hi".to_vec()).unwrap(),
        attachments: List::empty(),
    };
    let newer = NewerServerFrame::Event {
        event: NewerEvent {
            room: RoomId(1),
            seq: 7,
            sender: UserId(2),
            device: DeviceId(3),
            request: RequestId([9; 16]),
            at_ms: 1000,
            content: &content,
            edited_at_ms: Some(2000),
            reactions: vec![("👍".into(), 3)],
        },
        priority: 2,
    };
    let bytes = codec::encode(&newer).unwrap();
    let ServerFrame::Event { event } = decode_server(&bytes).unwrap() else { panic!() };
    assert_eq!((event.room, event.seq, event.content), (RoomId(1), 7, content));
}

#[test]
fn an_older_client_recognises_a_frame_kind_it_does_not_know() {
    let bytes =
        codec::encode(&NewerServerFrame::Presence { user: UserId(1), online: true }).unwrap();
    assert_eq!(decode_server(&bytes), Err(DecodeError::UnknownKind("Presence".into())));
}

#[test]
fn unknown_codes_and_reasons_fall_back_instead_of_failing() {
    #[derive(Serialize)]
    struct NewerError {
        code: &'static str,
        message: &'static str,
        retry_after_ms: Option<u32>,
    }
    #[derive(Serialize)]
    enum Frame {
        Closing { error: NewerError },
    }
    let bytes = codec::encode(&Frame::Closing {
        error: NewerError { code: "payment_required", message: "x", retry_after_ms: None },
    })
    .unwrap();
    let ServerFrame::Closing { error } = decode_server(&bytes).unwrap() else { panic!() };
    assert_eq!(error.code, ErrorCode::Unknown);

    let bytes = codec::encode(&"on_mars").unwrap();
    assert_eq!(codec::decode::<RefuseReason>(&bytes).unwrap(), RefuseReason::Other);
    assert_eq!(codec::decode::<HangupReason>(&bytes).unwrap(), HangupReason::Other);
    assert_eq!(codec::decode::<CallOutcome>(&bytes).unwrap(), CallOutcome::Other);
}

#[test]
fn an_unknown_request_kind_is_typed_and_keeps_its_id() {
    #[derive(Serialize)]
    enum Future {
        Teleport { to: u32 },
    }
    #[derive(Serialize)]
    struct Frame {
        id: u32,
        request: Future,
    }
    let bytes = codec::encode(&Frame { id: 42, request: Future::Teleport { to: 1 } }).unwrap();
    assert_eq!(decode_client(&bytes), Err(DecodeError::UnknownKind("Teleport".into())));
    assert_eq!(codec::peek_client_id(&bytes), Some(42));
}

// ---- Limits.

fn malformed(result: Result<ClientFrame, DecodeError>) -> String {
    match result {
        Err(DecodeError::Malformed(m)) => m,
        other => panic!("expected Malformed, got {other:?}"),
    }
}

/// `{"id": 1, "request": {"<kind>": {…}}}` with the request's fields written by `fields`.
fn hand_made(kind: &str, n_fields: u32, fields: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut b = Vec::new();
    rmp::encode::write_map_len(&mut b, 2).unwrap();
    rmp::encode::write_str(&mut b, "id").unwrap();
    rmp::encode::write_uint(&mut b, 1).unwrap();
    rmp::encode::write_str(&mut b, "request").unwrap();
    rmp::encode::write_map_len(&mut b, 1).unwrap();
    rmp::encode::write_str(&mut b, kind).unwrap();
    rmp::encode::write_map_len(&mut b, n_fields).unwrap();
    fields(&mut b);
    b
}

#[test]
fn a_frame_over_the_size_limit_is_refused_before_decoding() {
    let bytes = vec![0u8; MAX_FRAME_BYTES + 1];
    assert_eq!(
        decode_client(&bytes),
        Err(DecodeError::TooLarge { len: MAX_FRAME_BYTES + 1, max: MAX_FRAME_BYTES })
    );
}

#[test]
fn a_list_declaring_four_billion_elements_fails_at_its_header() {
    let bytes = hand_made("Join", 4, |b| {
        rmp::encode::write_str(b, "token").unwrap();
        rmp::encode::write_str(b, "1.abc").unwrap();
        rmp::encode::write_str(b, "protocol_version").unwrap();
        rmp::encode::write_uint(b, 1).unwrap();
        rmp::encode::write_str(b, "rooms").unwrap();
        rmp::encode::write_array_len(b, 0).unwrap();
        rmp::encode::write_str(b, "unconfirmed").unwrap();
        rmp::encode::write_array_len(b, u32::MAX).unwrap();
    });
    assert!(bytes.len() < 100);
    let m = malformed(decode_client(&bytes));
    assert!(m.contains("4294967295") && m.contains("1000"), "{m}");
}

#[test]
fn over_long_strings_and_bodies_are_refused() {
    let long_name = "a".repeat(MAX_USERNAME_BYTES + 1);
    let bytes = hand_made("LookupUser", 1, |b| {
        rmp::encode::write_str(b, "username").unwrap();
        rmp::encode::write_str(b, &long_name).unwrap();
    });
    assert!(malformed(decode_client(&bytes)).contains("32"));

    let body = vec![0u8; MAX_BODY_BYTES + 1];
    let bytes = hand_made("Send", 4, |b| {
        rmp::encode::write_str(b, "request").unwrap();
        rmp::encode::write_bin(b, &[0; 16]).unwrap();
        rmp::encode::write_str(b, "room").unwrap();
        rmp::encode::write_uint(b, 1).unwrap();
        rmp::encode::write_str(b, "body").unwrap();
        rmp::encode::write_bin(b, &body).unwrap();
        rmp::encode::write_str(b, "attachments").unwrap();
        rmp::encode::write_array_len(b, 0).unwrap();
    });
    assert!(malformed(decode_client(&bytes)).contains(&MAX_BODY_BYTES.to_string()));
}

#[test]
fn invalid_utf8_and_garbage_are_malformed() {
    let bytes = hand_made("LookupUser", 1, |b| {
        rmp::encode::write_str(b, "username").unwrap();
        rmp::encode::write_str_len(b, 3).unwrap();
        b.extend_from_slice(&[0xff, 0xfe, 0x41]);
    });
    malformed(decode_client(&bytes));
    malformed(decode_client(b"\xc1 definitely not msgpack"));
    malformed(decode_client(b""));
}

#[test]
fn deep_nesting_is_refused_without_overflowing_the_stack() {
    let mut bytes = Vec::new();
    for _ in 0..100_000 {
        rmp::encode::write_array_len(&mut bytes, 1).unwrap();
    }
    assert!(decode_client(&bytes).is_err());
    assert!(decode_server(&bytes).is_err());
    assert!(codec::peek_client_id(&bytes).is_none());
}

#[test]
fn secrets_and_bodies_never_appear_in_debug_output() {
    let c = Credentials {
        username: Text::new("alice").unwrap(),
        password: Password(Text::new("hunter2hunter2").unwrap()),
        device_name: Text::new("phone").unwrap(),
    };
    let token = Token(Text::new("5.deadbeefsecret").unwrap());
    let body: Body = Blob::new(b"meet me at noon".to_vec()).unwrap();
    let printed = format!("{c:?} {token:?} {body:?}");
    for secret in ["hunter2", "deadbeef", "noon"] {
        assert!(!printed.contains(secret), "{printed}");
    }
    assert!(printed.contains("15 bytes"), "{printed}");
}
