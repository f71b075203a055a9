//! Compatibility: an older client keeps working against a newer server (added fields are
//! ignored, unknown frame kinds are typed, unknown codes fall back), and an older server
//! answers a newer client's unknown request kinds with the frame's id.

use serde::Serialize;
use tidings_proto::{
    bounded::{Blob, List, Text},
    codec::{self, DecodeError},
    *,
};

/// Serde mirrors of today's frames with the fields (and kinds) a newer server might add. The
/// names are the wire names; encoding them with `codec::encode` gives what a newer build sends.
mod newer {
    use serde::Serialize;
    use tidings_proto::{Body, DeviceId, ErrorInfo, RequestId, RoomId, UserId, UserRef};

    #[derive(Serialize)]
    pub struct RoomEvent {
        pub room: RoomId,
        pub seq: u64,
        pub sender: UserId,
        pub device: DeviceId,
        pub request: RequestId,
        pub at_ms: i64,
        pub content: EventContent,
        pub edited_at_ms: Option<i64>,
        pub reactions: Vec<(String, u32)>,
    }

    #[derive(Serialize)]
    pub enum EventContent {
        Message {
            body: Body,
            attachments: Vec<i64>,
            reply_to: Option<u64>,
        },
        Call {
            call: u64,
            caller: UserId,
            outcome: &'static str,
            duration_ms: u64,
            video: bool,
            participants: Vec<UserId>,
        },
        /// A kind today's build does not have.
        Poll {
            question: String,
        },
    }

    #[derive(Serialize)]
    pub enum CallSignal {
        Refuse { reason: &'static str, detail: &'static str },
        Hangup { reason: &'static str },
    }

    #[derive(Serialize)]
    pub struct Error {
        pub code: &'static str,
        pub message: &'static str,
        pub retry_after_ms: Option<u32>,
        pub help_url: &'static str,
    }

    #[derive(Serialize)]
    pub enum Reply {
        Joined {
            user: UserRef,
            device: DeviceId,
            rooms: Vec<()>,
            left: Vec<RoomId>,
            confirmed: Vec<()>,
            server_time_ms: i64,
        },
    }

    #[derive(Serialize)]
    pub enum ServerFrame {
        Reply {
            id: u32,
            result: Result<Reply, Error>,
        },
        Event {
            event: RoomEvent,
            priority: u8,
        },
        Signal {
            room: RoomId,
            from_user: UserId,
            from_device: DeviceId,
            call: u64,
            signal: CallSignal,
            ice_restart: bool,
        },
        Closing {
            error: ErrorInfo,
            reconnect_after_ms: u32,
        },
        /// A frame kind today's build does not have.
        Presence {
            user: UserId,
            online: bool,
        },
    }
}

fn newer_event(content: newer::EventContent) -> newer::ServerFrame {
    newer::ServerFrame::Event {
        event: newer::RoomEvent {
            room: RoomId(1),
            seq: 7,
            sender: UserId(2),
            device: DeviceId(3),
            request: RequestId([9; 16]),
            at_ms: 1000,
            content,
            edited_at_ms: Some(2000),
            reactions: vec![("👍".into(), 3)],
        },
        priority: 2,
    }
}

fn decode_newer(frame: &newer::ServerFrame) -> Result<ServerFrame, DecodeError> {
    decode_server(&codec::encode(frame).unwrap())
}

#[test]
fn an_older_client_ignores_fields_a_newer_server_adds() {
    let body = Blob::new(b"hi".to_vec()).unwrap();
    let newer = newer_event(newer::EventContent::Message {
        body: body.clone(),
        attachments: vec![5],
        reply_to: Some(6),
    });
    let expected = RoomEvent {
        room: RoomId(1),
        seq: 7,
        sender: UserId(2),
        device: DeviceId(3),
        request: RequestId([9; 16]),
        at_ms: 1000,
        content: EventContent::Message { body, attachments: List::new(vec![MediaId(5)]).unwrap() },
    };
    assert_eq!(decode_newer(&newer).unwrap(), ServerFrame::Event { event: expected });

    let alice = UserRef { id: UserId(1), username: Text::new("alice").unwrap() };
    let joined = newer::ServerFrame::Reply {
        id: 5,
        result: Ok(newer::Reply::Joined {
            user: alice.clone(),
            device: DeviceId(2),
            rooms: vec![],
            left: vec![RoomId(8)],
            confirmed: vec![],
            server_time_ms: 1,
        }),
    };
    let expected = Reply::Joined {
        user: alice,
        device: DeviceId(2),
        rooms: List::empty(),
        left: List::new(vec![RoomId(8)]).unwrap(),
        confirmed: List::empty(),
    };
    assert_eq!(decode_newer(&joined).unwrap(), ServerFrame::Reply { id: 5, result: Ok(expected) });

    let error = ErrorInfo::new(ErrorCode::ShuttingDown, "bye");
    let closing = newer::ServerFrame::Closing { error: error.clone(), reconnect_after_ms: 500 };
    assert_eq!(decode_newer(&closing).unwrap(), ServerFrame::Closing { error });
}

#[test]
fn an_older_client_recognises_a_frame_kind_it_does_not_know() {
    let presence = newer::ServerFrame::Presence { user: UserId(1), online: true };
    assert_eq!(decode_newer(&presence), Err(DecodeError::UnknownKind("Presence".into())));
    // A bare tag (a kind without fields) too.
    let bytes = codec::encode(&"Maintenance").unwrap();
    assert_eq!(decode_server(&bytes), Err(DecodeError::UnknownKind("Maintenance".into())));
}

#[test]
fn unknown_codes_and_reasons_fall_back_instead_of_failing() {
    let err = newer::ServerFrame::Reply {
        id: 9,
        result: Err(newer::Error {
            code: "payment_required",
            message: "x",
            retry_after_ms: None,
            help_url: "https://example.org",
        }),
    };
    let Ok(ServerFrame::Reply { id: 9, result: Err(error) }) = decode_newer(&err) else {
        panic!("an error reply");
    };
    assert_eq!(error.code, ErrorCode::Unknown);
    assert!(!error.code.is_transient(), "an unknown code is not retried blindly");

    let signal = |signal| newer::ServerFrame::Signal {
        room: RoomId(1),
        from_user: UserId(2),
        from_device: DeviceId(3),
        call: 4,
        signal,
        ice_restart: true,
    };
    let Ok(ServerFrame::Signal { signal: refuse, .. }) =
        decode_newer(&signal(newer::CallSignal::Refuse { reason: "on_mars", detail: "far" }))
    else {
        panic!("a signal");
    };
    assert_eq!(refuse, CallSignal::Refuse { reason: RefuseReason::Other });
    let Ok(ServerFrame::Signal { signal: hangup, .. }) =
        decode_newer(&signal(newer::CallSignal::Hangup { reason: "battery_died" }))
    else {
        panic!("a signal");
    };
    assert_eq!(hangup, CallSignal::Hangup { reason: HangupReason::Other });

    let call = newer_event(newer::EventContent::Call {
        call: 1,
        caller: UserId(2),
        outcome: "transferred",
        duration_ms: 0,
        video: false,
        participants: vec![UserId(3)],
    });
    let Ok(ServerFrame::Event { event }) = decode_newer(&call) else { panic!("an event") };
    let EventContent::Call(record) = event.content else { panic!("a call record") };
    assert_eq!(record.outcome, CallOutcome::Other);
}

#[test]
fn a_new_variant_inside_a_frame_is_not_skippable_so_it_needs_a_version_bump() {
    // The frame kind is known, so this is Malformed, not UnknownKind: an old client cannot
    // skip it safely (it would leave a hole in the room log). docs/protocol.md, Compatibility.
    let poll = newer_event(newer::EventContent::Poll { question: "lunch?".into() });
    assert!(matches!(decode_newer(&poll), Err(DecodeError::Malformed(m)) if m.contains("Poll")));
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

#[test]
fn an_older_server_ignores_fields_a_newer_client_adds() {
    #[derive(Serialize)]
    enum Newer {
        Send { request: RequestId, room: RoomId, body: Body, attachments: Vec<i64>, silent: bool },
    }
    #[derive(Serialize)]
    struct Frame {
        id: u32,
        request: Newer,
        trace: &'static str,
    }
    let body = Blob::new(b"hey".to_vec()).unwrap();
    let send = Newer::Send {
        request: RequestId([1; 16]),
        room: RoomId(2),
        body: body.clone(),
        attachments: vec![],
        silent: true,
    };
    let decoded =
        decode_client(&codec::encode(&Frame { id: 1, request: send, trace: "abc" }).unwrap());
    let expected = Request::Send {
        request: RequestId([1; 16]),
        room: RoomId(2),
        body,
        attachments: List::empty(),
        redacts: None,
    };
    assert_eq!(decoded.unwrap(), ClientFrame { id: 1, request: expected });
}

#[test]
fn an_error_code_is_read_back_from_its_wire_name_and_unknown_names_are_unknown() {
    for code in super::ALL_CODES {
        assert_eq!(ErrorCode::from_name(code.as_str()), code);
    }
    assert_eq!(ErrorCode::from_name("a_code_from_the_future"), ErrorCode::Unknown);
}
