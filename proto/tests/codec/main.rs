//! The codec: every frame round-trips, the wire format is the documented one, newer peers'
//! frames are tolerated (`compat`), and limits hold before allocation (`limits`).

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is a failed test

mod compat;
mod limits;
mod mp;
mod strategies;

use std::collections::BTreeSet;

use proptest::{collection::vec, prelude::*, strategy::ValueTree, test_runner::TestRunner};
use tidings_proto::{codec, *};

use crate::{
    mp::{bin, map, s, u, variant, Mp},
    strategies::*,
};

proptest! {
    #[test]
    fn every_client_frame_round_trips(id in any::<u32>(), request in request()) {
        let frame = ClientFrame { id, request };
        let bytes = encode_client(&frame).unwrap();
        prop_assert_eq!(decode_client(&bytes).unwrap(), frame.clone());
        prop_assert_eq!(codec::peek_client_id(&bytes), Some(id));

        let tag = request_tag(&frame.request);
        prop_assert!(Request::KINDS.contains(&tag), "{} is missing from Request::KINDS", tag);
        prop_assert_eq!(wire_tag(&codec::encode(&frame.request).unwrap()), tag);
        prop_assert_eq!(frame.request.kind(), snake_case(tag));
        prop_assert_eq!(frame.request.request_id().is_some(), MUTATIONS.contains(&tag));
    }

    #[test]
    fn every_server_frame_round_trips(frame in server_frame()) {
        let bytes = encode_server(&frame).unwrap();
        prop_assert_eq!(decode_server(&bytes).unwrap(), frame.clone());

        let tag = server_tag(&frame);
        prop_assert!(ServerFrame::KINDS.contains(&tag), "{} is missing from ServerFrame::KINDS", tag);
        prop_assert_eq!(frame.kind(), tag);
        prop_assert_eq!(wire_tag(&bytes), tag);
    }

    #[test]
    fn every_room_event_round_trips_as_stored(event in event()) {
        // The server stores events with `codec::encode` and reads them back with `decode`.
        let bytes = codec::encode(&event).unwrap();
        prop_assert_eq!(codec::decode::<RoomEvent>(&bytes).unwrap(), event);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_what_decodes_is_stable(bytes in vec(any::<u8>(), 0..512)) {
        let _ = codec::peek_client_id(&bytes);
        if let Ok(frame) = decode_client(&bytes) {
            prop_assert_eq!(decode_client(&encode_client(&frame).unwrap()).unwrap(), frame);
        }
        if let Ok(frame) = decode_server(&bytes) {
            prop_assert_eq!(decode_server(&encode_server(&frame).unwrap()).unwrap(), frame);
        }
    }

    /// Random bytes rarely get past the first marker; damaged real frames reach deep into
    /// the decoders (what the fuzz targets do at length).
    #[test]
    fn damaged_frames_never_panic_and_what_decodes_is_stable(
        client in request(),
        server in server_frame(),
        damage in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let client = encode_client(&ClientFrame { id: 1, request: client }).unwrap();
        let server = encode_server(&server).unwrap();
        for mut bytes in [client, server] {
            for (at, byte) in &damage {
                let i = at.index(bytes.len());
                bytes[i] = *byte;
            }
            for bytes in [&bytes[..], &bytes[..cut.index(bytes.len())]] {
                let _ = codec::peek_client_id(bytes);
                if let Ok(frame) = decode_client(bytes) {
                    prop_assert_eq!(decode_client(&encode_client(&frame).unwrap()).unwrap(), frame);
                }
                if let Ok(frame) = decode_server(bytes) {
                    prop_assert_eq!(decode_server(&encode_server(&frame).unwrap()).unwrap(), frame);
                }
            }
        }
    }
}

#[test]
fn the_kinds_lists_are_exactly_the_variants_the_decoder_knows() {
    // Read from serde's own list, so a variant added without its KINDS entry fails here even
    // before a strategy makes it. Order too: KINDS reads as the enum does.
    assert_eq!(serde_variants::<Request>(), Request::KINDS);
    assert_eq!(serde_variants::<ServerFrame>(), ServerFrame::KINDS);
}

#[test]
fn the_strategies_produce_every_variant() {
    // Guards the round-trip tests: a variant the strategies never make is never tested.
    let mut runner = TestRunner::deterministic();
    let mut seen: [BTreeSet<&str>; 6] = Default::default();
    let [requests, frames, replies, contents, signals, codes] = &mut seen;
    let (request, frame) = (request(), server_frame());
    for _ in 0..4000 {
        let r = request.new_tree(&mut runner).unwrap().current();
        requests.insert(request_tag(&r));
        if let Request::Signal { signal, .. } = &r {
            signals.insert(signal_tag(signal));
        }
        let f = frame.new_tree(&mut runner).unwrap().current();
        frames.insert(server_tag(&f));
        match &f {
            ServerFrame::Reply { result: Ok(reply), .. } => {
                replies.insert(reply_tag(reply));
                if let Reply::Page { events, .. } = reply {
                    contents.extend(events.iter().map(|e| content_tag(&e.content)));
                }
            }
            ServerFrame::Reply { result: Err(e), .. } | ServerFrame::Closing { error: e } => {
                codes.insert(code_name(e.code));
            }
            ServerFrame::Event { event } => {
                contents.insert(content_tag(&event.content));
            }
            ServerFrame::Signal { signal, .. } => {
                signals.insert(signal_tag(signal));
            }
            ServerFrame::Receipt { .. } | ServerFrame::Typing { .. } => {}
        }
    }
    let names = |s: &BTreeSet<&str>| s.iter().map(|n| n.to_string()).collect::<BTreeSet<_>>();
    let all = |v: Vec<String>| v.into_iter().collect::<BTreeSet<_>>();
    assert_eq!(names(requests), all(serde_variants::<Request>()));
    assert_eq!(names(frames), all(serde_variants::<ServerFrame>()));
    assert_eq!(names(replies), all(serde_variants::<Reply>()));
    assert_eq!(names(contents), all(serde_variants::<EventContent>()));
    assert_eq!(names(signals), all(serde_variants::<CallSignal>()));
    assert_eq!(names(codes), ALL_CODES.map(|c| code_name(c).to_owned()).into());
}

/// The string a unit-like enum value is on the wire.
fn unit_on_wire(value: impl serde::Serialize) -> String {
    let bytes = codec::encode(&value).unwrap();
    let mut buf = [0u8; 64];
    rmp::decode::read_str(&mut &bytes[..], &mut buf).unwrap().to_owned()
}

#[test]
fn codes_and_reasons_are_snake_case_strings_on_the_wire() {
    for code in ALL_CODES {
        assert_eq!(code.as_str(), code_name(code));
        assert_eq!(unit_on_wire(code), code_name(code));
        assert_eq!(codec::decode::<ErrorCode>(&codec::encode(&code).unwrap()).unwrap(), code);
    }
    assert_eq!(ALL_CODES.map(code_name).iter().collect::<BTreeSet<_>>().len(), ALL_CODES.len());
    assert_eq!(unit_on_wire(RefuseReason::Unavailable), "unavailable");
    assert_eq!(unit_on_wire(HangupReason::AnsweredElsewhere), "answered_elsewhere");
    assert_eq!(unit_on_wire(CallOutcome::Cancelled), "cancelled");
    assert_eq!(unit_on_wire(RoomKind::Direct), "direct");
}

#[test]
fn the_transient_codes_are_the_documented_ones() {
    let transient: Vec<_> = ALL_CODES.into_iter().filter(|c| c.is_transient()).collect();
    assert_eq!(
        transient,
        [
            ErrorCode::Unauthenticated,
            ErrorCode::RateLimited,
            ErrorCode::ShuttingDown,
            ErrorCode::TooSlow,
            ErrorCode::Internal,
            // A full disk on the server clears: retried like the others.
            ErrorCode::StorageFull,
        ]
    );
}

// ---- The wire format, byte for byte, as docs/protocol.md describes it.

#[test]
fn the_wire_format_is_named_fields_and_one_entry_maps_for_variants() {
    let frame = ClientFrame { id: 7, request: Request::Ping { nonce: 1 } };
    let expected = map([("id", u(7)), ("request", variant("Ping", map([("nonce", u(1))])))]);
    assert_eq!(encode_client(&frame).unwrap(), expected.bytes());

    // A request without fields is an empty map.
    let frame = ClientFrame { id: 7, request: Request::SignOut {} };
    let expected = map([("id", u(7)), ("request", variant("SignOut", map([])))]);
    assert_eq!(encode_client(&frame).unwrap(), expected.bytes());

    // Ids are integers, request ids 16-byte `bin`.
    let leave = Request::Leave { request: RequestId([0xab; 16]), room: RoomId(9) };
    let expected = variant("Leave", map([("request", bin(&[0xab; 16])), ("room", u(9))]));
    assert_eq!(codec::encode(&leave).unwrap(), expected.bytes());

    // A result is {"Ok": …} or {"Err": …}; an absent option is nil.
    let err = ServerFrame::Reply {
        id: 3,
        result: Err(ErrorInfo::new(ErrorCode::RateLimited, "slow down")),
    };
    let info = map([
        ("code", s("rate_limited")),
        ("message", s("slow down")),
        ("retry_after_ms", Mp::Nil),
    ]);
    let expected = variant("Reply", map([("id", u(3)), ("result", variant("Err", info))]));
    assert_eq!(encode_server(&err).unwrap(), expected.bytes());
    assert_eq!(decode_server(&expected.bytes()).unwrap(), err);
}

#[test]
fn fields_may_come_in_any_order() {
    let catch_up = map([("limit", u(100)), ("after", u(5)), ("room", u(2))]);
    let bytes = map([("request", variant("CatchUp", catch_up)), ("id", u(4))]).bytes();
    let expected =
        ClientFrame { id: 4, request: Request::CatchUp { room: RoomId(2), after: 5, limit: 100 } };
    assert_eq!(decode_client(&bytes).unwrap(), expected);
}
