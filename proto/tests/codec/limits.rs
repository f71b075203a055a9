//! Limits and bad input: every bound holds while decoding, before anything is allocated;
//! nothing panics or overflows the stack; secrets and bodies never reach `Debug` output.

use tidings_proto::{
    bounded::{Blob, List, Text},
    codec::{self, DecodeError},
    limits::*,
    *,
};

use crate::mp::{array, bin, map, raw, request, s, u, variant};

fn malformed<T: std::fmt::Debug>(result: Result<T, DecodeError>) -> String {
    match result {
        Err(DecodeError::Malformed(m)) => m,
        other => panic!("expected Malformed, got {other:?}"),
    }
}

/// A Send with this body and `attachments` media ids.
fn send(body: &[u8], attachments: u64) -> Vec<u8> {
    let fields = map([
        ("request", bin(&[0; 16])),
        ("room", u(1)),
        ("body", bin(body)),
        ("attachments", array((0..attachments).map(u))),
    ]);
    request("Send", fields)
}

#[test]
fn a_frame_over_the_size_limit_is_refused_before_decoding() {
    let bytes = vec![0x90; MAX_FRAME_BYTES + 1];
    let too_large = DecodeError::TooLarge { len: MAX_FRAME_BYTES + 1, max: MAX_FRAME_BYTES };
    assert_eq!(decode_client(&bytes), Err(too_large.clone()));
    assert_eq!(decode_server(&bytes), Err(too_large));
    assert_eq!(codec::peek_client_id(&bytes), None);
    // At the limit it is decoded (and fails for what it is, not for its size).
    malformed(decode_client(&bytes[..MAX_FRAME_BYTES]));
}

#[test]
fn a_list_declaring_four_billion_elements_fails_at_its_header() {
    let join = map([
        ("token", s("1.abc")),
        ("protocol_version", u(1)),
        ("rooms", array([])),
        // An array32 header (0xdd ff ff ff ff) and nothing after it.
        ("unconfirmed", raw(|b| rmp::encode::write_array_len(b, u32::MAX))),
    ]);
    let bytes = request("Join", join);
    assert!(bytes.len() < 100, "no elements follow the header");
    // The message names the declared length and the limit: the header was checked, not
    // trusted for an allocation (4 billion × 16 bytes would abort the test process).
    let m = malformed(decode_client(&bytes));
    assert!(m.contains("4294967295") && m.contains(&MAX_JOIN_UNCONFIRMED.to_string()), "{m}");

    // The same in a server frame: a Page declaring 4 billion events.
    let page = map([("events", raw(|b| rmp::encode::write_array_len(b, u32::MAX)))]);
    let reply = map([("id", u(1)), ("result", variant("Ok", variant("Page", page)))]);
    let m = malformed(decode_server(&variant("Reply", reply).bytes()));
    assert!(m.contains("4294967295") && m.contains(&MAX_PAGE_EVENTS.to_string()), "{m}");
}

#[test]
fn strings_and_bodies_declaring_four_gigabytes_fail_at_their_header() {
    let name = map([("username", raw(|b| rmp::encode::write_str_len(b, u32::MAX)))]);
    malformed(decode_client(&request("LookupUser", name)));
    let body = map([("body", raw(|b| rmp::encode::write_bin_len(b, u32::MAX)))]);
    malformed(decode_client(&request("Send", body)));
}

#[test]
fn values_at_their_limits_decode_and_one_more_is_refused() {
    let lookup = |n: usize| request("LookupUser", map([("username", s(&"a".repeat(n)))]));
    assert!(decode_client(&lookup(MAX_USERNAME_BYTES)).is_ok());
    let m = malformed(decode_client(&lookup(MAX_USERNAME_BYTES + 1)));
    assert!(m.contains(&MAX_USERNAME_BYTES.to_string()), "{m}");

    let most = MAX_ATTACHMENTS as u64;
    assert!(decode_client(&send(&vec![7; MAX_BODY_BYTES], most)).is_ok());
    let m = malformed(decode_client(&send(&vec![7; MAX_BODY_BYTES + 1], most)));
    assert!(m.contains(&MAX_BODY_BYTES.to_string()), "{m}");
    let m = malformed(decode_client(&send(b"hi", most + 1)));
    assert!(m.contains(&MAX_ATTACHMENTS.to_string()), "{m}");
}

#[test]
fn invalid_utf8_and_garbage_are_malformed() {
    let not_utf8 = raw(|b| {
        rmp::encode::write_str_len(b, 3)?;
        b.extend_from_slice(&[0xff, 0xfe, 0x41]);
        Ok::<_, rmp::encode::ValueWriteError>(())
    });
    malformed(decode_client(&request("LookupUser", map([("username", not_utf8)]))));
    for garbage in [&b"\xc1 definitely not msgpack"[..], b"", b"\x82", b"\x81\xa2id"] {
        malformed(decode_client(garbage));
        malformed(decode_server(garbage));
    }
    // A request id is exactly 16 bytes.
    let leave = map([("request", bin(&[1; 15])), ("room", u(1))]);
    malformed(decode_client(&request("Leave", leave)));
}

#[test]
fn bytes_after_the_frame_are_malformed_and_the_id_still_reaches_the_reply() {
    // Two frames in one websocket message: the second must not be silently dropped.
    let ping = ClientFrame { id: 5, request: Request::Ping { nonce: 1 } };
    let mut bytes = encode_client(&ping).unwrap();
    bytes.extend(encode_client(&ClientFrame { id: 6, request: Request::SignOut {} }).unwrap());
    assert!(malformed(decode_client(&bytes)).contains("after the end"));
    assert_eq!(codec::peek_client_id(&bytes), Some(5));

    let done = ServerFrame::Reply { id: 1, result: Ok(Reply::Done {}) };
    let mut bytes = encode_server(&done).unwrap();
    bytes.push(0);
    malformed(decode_server(&bytes));
}

#[test]
fn deep_nesting_is_refused_without_overflowing_the_stack() {
    let mut arrays = Vec::new();
    let mut maps = Vec::new();
    for _ in 0..100_000 {
        rmp::encode::write_array_len(&mut arrays, 1).unwrap();
        rmp::encode::write_map_len(&mut maps, 1).unwrap();
        rmp::encode::write_str(&mut maps, "request").unwrap();
    }
    for bytes in [&arrays, &maps] {
        assert!(decode_client(bytes).is_err());
        assert!(decode_server(bytes).is_err());
        assert!(codec::peek_client_id(bytes).is_none());
    }
    // Deep inside an otherwise valid frame, in a field the decoder would ignore.
    let deep = raw(|b| (0..50_000).try_for_each(|_| rmp::encode::write_array_len(b, 1).map(drop)));
    let ping = map([("nonce", u(1)), ("future_field", deep)]);
    malformed(decode_client(&request("Ping", ping)));
}

#[test]
fn secrets_and_bodies_never_appear_in_debug_output() {
    let credentials = Credentials {
        username: Text::new("alice").unwrap(),
        password: Password(Text::new("hunter2hunter2").unwrap()),
        device_name: Text::new("phone").unwrap(),
    };
    let token = Token(Text::new("5.deadbeefsecret").unwrap());
    let body: Body = Blob::new(b"meet me at noon".to_vec()).unwrap();
    let alone = format!("{:?} {token:?} {body:?}", credentials.password);
    assert!(alone.contains("15 bytes"), "{alone}");

    // And inside whole frames, as a careless `debug!(?frame)` would print them.
    let join = Request::Join {
        token: token.clone(),
        protocol_version: 1,
        rooms: List::empty(),
        unconfirmed: List::empty(),
    };
    let alice = UserRef { id: UserId(1), username: Text::new("alice").unwrap() };
    let session = Reply::Session { user: alice, device: DeviceId(5), token };
    let event = RoomEvent {
        room: RoomId(1),
        seq: 1,
        sender: UserId(1),
        device: DeviceId(5),
        request: RequestId([0; 16]),
        at_ms: 0,
        content: EventContent::Message { body, attachments: List::empty() },
    };
    let frames = format!(
        "{:?} {:?} {:?} {:?}",
        ClientFrame { id: 1, request: Request::SignIn(credentials) },
        ClientFrame { id: 2, request: join },
        ServerFrame::Reply { id: 3, result: Ok(session) },
        ServerFrame::Event { event },
    );
    for secret in ["hunter2", "deadbeef", "noon"] {
        assert!(!alone.contains(secret), "{alone}");
        assert!(!frames.contains(secret), "{frames}");
    }
    assert!(frames.contains("alice"), "the rest is still printed: {frames}");
}
