//! The archive's codec within its limits, building newest first, and importing into a store:
//! what is filled, what is passed over, what is left alone, twice, and a bad archive.

use std::io::Write;

use rand::Rng;
use rusqlite::{params, Connection};
use tidings_proto::{bounded::List, codec, limits::MAX_PLAINTEXT_BYTES, EventContent, MediaId};

use super::{archive::*, *};
use flate2::{read::DeflateDecoder, write::DeflateEncoder, Compression};
use std::io::Read;

const SMALL: Limits = Limits { archive: 1024 * 1024, inflated: 8 * 1024 * 1024 };

fn deflate(raw: &[u8]) -> Vec<u8> {
    let mut out = DeflateEncoder::new(Vec::new(), Compression::default());
    out.write_all(raw).unwrap();
    out.finish().unwrap()
}

fn inflate(deflated: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    DeflateDecoder::new(deflated).read_to_end(&mut out).unwrap();
    out
}

fn records(deflated: &[u8], limits: Limits) -> Result<Vec<Record>, HistoryError> {
    let mut reader = Reader::new(deflated, limits)?;
    let mut out = Vec::new();
    while let Some(record) = reader.next()? {
        out.push(record);
    }
    Ok(out)
}

fn room(id: i64, through: u64, name: Option<&str>) -> ArchivedRoom {
    ArchivedRoom { room: id, through, name: name.map(str::to_owned) }
}

/// The raw bytes of an archive's start: magic, version, one room.
fn head() -> Vec<u8> {
    let mut raw = MAGIC.to_vec();
    raw.push(VERSION);
    raw.push(ROOM);
    raw.extend_from_slice(&5i64.to_be_bytes());
    raw.extend_from_slice(&9u64.to_be_bytes());
    raw.push(0);
    raw
}

fn event_head(room: u32, seq: u64, len: u32) -> Vec<u8> {
    let mut raw = vec![EVENT];
    raw.extend_from_slice(&room.to_be_bytes());
    raw.extend_from_slice(&seq.to_be_bytes());
    raw.extend_from_slice(&len.to_be_bytes());
    raw
}

fn end(from: &[u64]) -> Vec<u8> {
    let mut raw = vec![END];
    for f in from {
        raw.extend_from_slice(&f.to_be_bytes());
    }
    raw
}

#[test]
fn records_round_trip() {
    let mut writer = Writer::new(Vec::new(), SMALL).unwrap();
    writer.room(&room(7, 12, Some("plans"))).unwrap();
    writer.room(&room(8, 3, None)).unwrap();
    writer.quiet(&[4; 16]).unwrap();
    assert!(writer.event(0, 12, Some(b"\x81\xa4text\xa2hi")).unwrap());
    assert!(writer.event(1, 2, None).unwrap());
    assert!(writer.event(0, 11, Some(&[])).unwrap());
    assert!(writer.room(&room(9, 1, None)).is_err(), "rooms come first");
    assert!(writer.quiet(&[5; 16]).is_err(), "namings too");
    assert!(writer.event(2, 1, None).is_err(), "no third room");
    assert!(writer.event(0, 1, Some(&vec![0; MAX_PLAINTEXT_BYTES + 1])).is_err());
    let (bytes, len) = writer.finish(&[4, 0]).unwrap();
    assert_eq!(bytes.len() as u64, len);
    assert_eq!(
        records(&bytes, SMALL).unwrap(),
        [
            Record::Room(room(7, 12, Some("plans"))),
            Record::Room(room(8, 3, None)),
            Record::Quiet([4; 16]),
            Record::Event { room: 0, seq: 12, body: Some(b"\x81\xa4text\xa2hi".to_vec()) },
            Record::Event { room: 1, seq: 2, body: None },
            Record::Event { room: 0, seq: 11, body: Some(Vec::new()) },
            Record::End(vec![4, 0]),
        ]
    );
}

#[test]
fn a_reader_refuses_what_breaks_the_format_before_allocating() {
    let malformed = |raw: &[u8]| match records(&deflate(raw), SMALL) {
        Err(HistoryError::Malformed(why)) => why,
        other => panic!("{other:?} for {raw:?}"),
    };
    let mut good = head();
    good.extend(event_head(0, 3, 2));
    good.extend_from_slice(b"\x80\x00");
    good.extend(end(&[0]));
    assert_eq!(records(&deflate(&good), SMALL).unwrap().len(), 3);

    assert_eq!(malformed(b"tidings history"), "cut short");
    let mut other = good.clone();
    other[0] = b'T';
    assert_eq!(malformed(&other), "not a history archive of this version");
    let mut newer = good.clone();
    newer[MAGIC.len()] = 2;
    assert_eq!(malformed(&newer), "not a history archive of this version");
    let mut unknown = head();
    unknown.push(7);
    assert_eq!(malformed(&unknown), "a record of no known kind");
    let mut late_room = head();
    late_room.extend(event_head(0, 3, NO_BODY));
    late_room.extend_from_slice(&head()[MAGIC.len() + 1..]);
    assert_eq!(malformed(&late_room), "a room after events, or too many rooms");
    let mut late_naming = head();
    late_naming.extend(event_head(0, 3, NO_BODY));
    late_naming.push(QUIET);
    late_naming.extend_from_slice(&[1; 16]);
    assert_eq!(malformed(&late_naming), "a naming after events, or too many");
    let mut no_room = head();
    no_room.extend(event_head(1, 3, NO_BODY));
    assert_eq!(malformed(&no_room), "an event of no room");
    let mut seq_zero = head();
    seq_zero.extend(event_head(0, 0, NO_BODY));
    assert_eq!(malformed(&seq_zero), "an event of no room");
    // A declared length over the limit is refused as declared, not read (nothing follows).
    let mut huge = head();
    huge.extend(event_head(0, 3, 0x7fff_ffff));
    assert_eq!(malformed(&huge), "a message over the plaintext limit");
    let mut long_name = MAGIC.to_vec();
    long_name.push(VERSION);
    long_name.push(ROOM);
    long_name.extend_from_slice(&[0; 16]);
    long_name.push(200);
    assert_eq!(malformed(&long_name), "a room name over its limit");
    let mut not_text = head();
    let name_at = not_text.len() - 1;
    not_text[name_at] = 2;
    not_text.extend_from_slice(&[0xff, 0xfe]);
    assert_eq!(malformed(&not_text), "a room name that is not text");
    assert_eq!(malformed(&good[..good.len() - 1]), "cut short");
    assert_eq!(malformed(&head()), "cut short");
    let mut after = good.clone();
    after.push(0);
    assert_eq!(malformed(&after), "bytes after the end");
    // Not deflate at all.
    assert!(matches!(
        records(&[0xff; 64], SMALL),
        Err(HistoryError::Malformed("not deflated data" | "cut short"))
    ));
}

#[test]
fn inflating_stops_at_the_limit() {
    // Zeros deflate a thousandfold: a small archive that would inflate past the limit.
    let mut bomb = head();
    for seq in 1..=200 {
        bomb.extend(event_head(0, seq, 60_000));
        bomb.extend(std::iter::repeat_n(0u8, 60_000));
    }
    bomb.extend(end(&[0]));
    let deflated = deflate(&bomb);
    assert!(deflated.len() < 100_000, "{}", deflated.len());
    assert_eq!(records(&deflated, SMALL), Err(HistoryError::TooLarge { max: SMALL.inflated }));
    let roomy = Limits { archive: SMALL.archive, inflated: bomb.len() as u64 };
    assert_eq!(records(&deflated, roomy).unwrap().len(), 202, "exactly at the limit is fine");
    let short = Limits { archive: SMALL.archive, inflated: bomb.len() as u64 - 1 };
    assert_eq!(records(&deflated, short), Err(HistoryError::TooLarge { max: short.inflated }));
    // The archive itself over its limit is refused before it is read.
    let (_dir, c) = profile();
    let tight = Limits { archive: deflated.len() as u64 - 1, inflated: SMALL.inflated };
    let refused = import_archive(&c, 1, &deflated, tight);
    assert!(matches!(refused, Err(Error::History(HistoryError::TooLarge { .. }))), "{refused:?}");
}

#[test]
fn a_writer_stops_at_either_limit_and_what_it_wrote_reads() {
    let mut rng = rand::rng();
    // Random bytes do not deflate: the archive's limit binds.
    let mut writer = Writer::new(Vec::new(), SMALL).unwrap();
    writer.room(&room(1, 1000, None)).unwrap();
    let mut written = 0u64;
    for seq in (1..=1000).rev() {
        let body: Vec<u8> = (0..4096).map(|_| rng.random()).collect();
        if !writer.event(0, seq, Some(&body)).unwrap() {
            break;
        }
        written += 1;
    }
    assert!(written > 100 && written < 256, "{written} events of 4 KiB in 1 MiB");
    let (bytes, len) = writer.finish(&[1000 - written]).unwrap();
    assert!(len <= SMALL.archive && len > SMALL.archive / 2, "{len}");
    assert_eq!(records(&bytes, SMALL).unwrap().len() as u64, written + 2);
    // Zeros deflate to nearly nothing: the inflated limit binds.
    let limits = Limits { archive: SMALL.archive, inflated: 300_000 };
    let mut writer = Writer::new(Vec::new(), limits).unwrap();
    writer.room(&room(1, 1000, None)).unwrap();
    let mut written = 0;
    while writer.event(0, 1000 - written, Some(&[0; 10_000])).unwrap() {
        written += 1;
    }
    assert_eq!(written, 29, "29 × 10,017 bytes and the rest fit in 300,000");
    let (bytes, _) = writer.finish(&[1000 - written]).unwrap();
    assert!(inflate(&bytes).len() <= 300_000);
    assert_eq!(records(&bytes, limits).unwrap().len() as u64, written + 2);
}

proptest::proptest! {
    /// Whatever bytes an archive holds — any bytes, deflated or not, or a real archive with
    /// one byte changed before deflating — reading it never panics: it reads to its end or is
    /// refused.
    #[test]
    fn any_archive_is_read_or_refused(
        raw in proptest::collection::vec(proptest::num::u8::ANY, 0..600),
        deflated in proptest::bool::ANY,
        at in 0usize..10_000,
        bit in 1u8..=255,
    ) {
        let bytes = if deflated { deflate(&raw) } else { raw };
        let _ = records(&bytes, SMALL);
        let mut writer = Writer::new(Vec::new(), SMALL).unwrap();
        writer.room(&room(7, 12, Some("plans"))).unwrap();
        writer.quiet(&[4; 16]).unwrap();
        writer.event(0, 12, Some(b"\x81\xa4text\xa2hi")).unwrap();
        writer.event(0, 11, None).unwrap();
        let (good, _) = writer.finish(&[3]).unwrap();
        let mut changed = inflate(&good);
        let at = at % changed.len();
        changed[at] ^= bit;
        if let Ok(read) = records(&deflate(&changed), SMALL) {
            proptest::prop_assert!(matches!(read.last(), Some(Record::End(_))));
        }
    }
}

// ---------------------------------------------------------------------------------------
// Stores.

fn profile() -> (tempfile::TempDir, Connection) {
    let dir = tempfile::tempdir().unwrap();
    let c = crate::store::open(&dir.path().join("tidings.sqlite"), None).unwrap();
    (dir, c)
}

const ME: i64 = 1;
const BOB: i64 = 2;

fn add_room(
    c: &Connection,
    server: i64,
    kind: &str,
    name: Option<&str>,
    synced: u64,
    member: bool,
) -> RoomKey {
    c.execute(
        "INSERT INTO rooms (server_id, kind, name, synced_seq, member) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![server, kind, name, synced as i64, member],
    )
    .unwrap();
    c.last_insert_rowid()
}

fn add_event(
    c: &Connection,
    room: RoomKey,
    seq: u64,
    at_ms: i64,
    content: &EventContent,
    security: Option<&str>,
) -> i64 {
    let message = matches!(content, EventContent::Message { .. }) && security.is_none();
    c.execute(
        "INSERT INTO events (room_id, seq, position, request_id, sender, at_ms, content,
                             is_message, security)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            room,
            seq as i64,
            apply::position_of_seq(seq),
            &crate::client::new_request_id().0[..],
            if seq.is_multiple_of(2) { BOB } else { ME },
            at_ms,
            codec::encode(content).unwrap(),
            message,
            security
        ],
    )
    .unwrap();
    let id = c.last_insert_rowid();
    if message {
        c.execute(
            "UPDATE rooms SET last_event_id = ?2, last_preview = ?3 WHERE id = ?1",
            params![room, id, apply::describe(content)],
        )
        .unwrap();
    }
    id
}

fn message(body: &MessageBody, media: &[i64]) -> EventContent {
    EventContent::Message {
        body: tidings_proto::Body::new(codec::encode(body).unwrap()).unwrap(),
        attachments: List::new(media.iter().map(|m| MediaId(*m)).collect()).unwrap(),
    }
}

fn text(t: &str) -> EventContent {
    message(&MessageBody::text(t), &[])
}

/// A message as logged, which this device could not open (MLS ciphertext is no MessagePack
/// map).
fn sealed(n: u8, media: &[i64]) -> EventContent {
    EventContent::Message {
        body: tidings_proto::Body::new(vec![0, 1, n, 0xc1, 0xc1]).unwrap(),
        attachments: List::new(media.iter().map(|m| MediaId(*m)).collect()).unwrap(),
    }
}

fn created() -> EventContent {
    EventContent::Created {
        kind: tidings_proto::RoomKind::Group,
        name: None,
        members: List::empty(),
        requested: List::empty(),
    }
}

/// Each event of server room `server`: (seq, what the timeline shows, media ids).
fn shown(c: &Connection, server: i64) -> Vec<(u64, String, Vec<i64>)> {
    let mut st = c
        .prepare(
            "SELECT e.seq, e.content FROM events e JOIN rooms r ON r.id = e.room_id
             WHERE r.server_id = ?1 ORDER BY e.position",
        )
        .unwrap();
    let rows = st.query_map([server], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)));
    rows.unwrap()
        .map(|row| {
            let (seq, content) = row.unwrap();
            let content: EventContent = codec::decode(&content).unwrap();
            let media = match &content {
                EventContent::Message { attachments, .. } => {
                    attachments.iter().map(|m| m.0).collect()
                }
                _ => Vec::new(),
            };
            (seq as u64, apply::describe(&content), media)
        })
        .collect()
}

/// Everything an import may change, to compare before and after.
fn dump(c: &Connection) -> Vec<String> {
    let mut st = c
        .prepare(
            "SELECT 'e', id, room_id, seq, hex(content), is_message FROM events
             UNION ALL SELECT 'r', id, coalesce(name, ''), unread, coalesce(last_preview, ''),
                 coalesce(last_event_id, 0) FROM rooms ORDER BY 1, 2",
        )
        .unwrap();
    let rows = st.query_map([], |r| {
        Ok(format!(
            "{:?} {:?} {:?} {:?} {:?} {:?}",
            r.get_ref(0)?,
            r.get_ref(1)?,
            r.get_ref(2)?,
            r.get_ref(3)?,
            r.get_ref(4)?,
            r.get_ref(5)?
        ))
    });
    rows.unwrap().map(Result::unwrap).collect()
}

const CANNOT: &str = "(message this version cannot show)";

/// A photo's message: its key inside.
fn photo() -> MessageBody {
    MessageBody {
        sealed: Some(crate::apply::SealedFile {
            key: tidings_proto::bounded::Blob::new(vec![7; 32]).unwrap(),
            sha256: tidings_proto::bounded::Blob::new(vec![8; 32]).unwrap(),
        }),
        ..MessageBody::text("the view")
    }
}

/// The request id of the laptop's naming the phone has at seq 10.
const TOLD: [u8; 16] = [0x42; 16];

/// The laptop's store: a group it named, where it opened most messages, a direct room, and a
/// room the phone is not in.
fn laptop() -> (tempfile::TempDir, Connection) {
    let (dir, c) = profile();
    let plans = add_room(&c, 100, "group", Some("plans, renamed"), 8, true);
    add_event(&c, plans, 1, 1_000, &created(), None);
    add_event(&c, plans, 2, 2_000, &text("hello from bob"), None);
    // Seq 3 named the group quietly: passed over, no row.
    add_event(
        &c,
        plans,
        4,
        4_000,
        &EventContent::Renamed { name: tidings_proto::RoomName::new("plans, renamed").unwrap() },
        None,
    );
    add_event(&c, plans, 5, 5_000, &sealed(5, &[]), None);
    add_event(&c, plans, 6, 6_000, &message(&photo(), &[900]), None);
    add_event(&c, plans, 7, 7_000, &sealed(7, &[]), Some("bad_signature"));
    // Seq 8 too was passed over (a handshake).
    let direct = add_room(&c, 200, "direct", None, 2, true);
    add_event(&c, direct, 1, 1_500, &text("direct, before"), None);
    add_event(&c, direct, 2, 2_500, &text("direct, answered"), None);
    let other = add_room(&c, 300, "group", Some("not the phone's"), 1, true);
    add_event(&c, other, 1, 3_000, &text("elsewhere"), None);
    // It told the plans' name to a newcomer at seq 10, and has not met that in its log yet.
    c.execute("INSERT INTO quiet_messages (request_id) VALUES (?1)", [&TOLD[..]]).unwrap();
    (dir, c)
}

/// The phone's store after linking and catching up: everything before the link sealed, and
/// what came after opened; it is in the plans and the direct room, not the third.
fn phone() -> (tempfile::TempDir, Connection) {
    let (dir, c) = profile();
    let plans = add_room(&c, 100, "group", None, 9, true);
    add_event(&c, plans, 1, 1_000, &created(), None);
    add_event(&c, plans, 2, 2_000, &sealed(2, &[]), None);
    let naming = add_event(&c, plans, 3, 3_000, &sealed(3, &[]), None);
    for seq in [4, 5] {
        add_event(&c, plans, seq, seq as i64 * 1_000, &sealed(seq as u8, &[]), None);
    }
    add_event(&c, plans, 6, 6_000, &sealed(6, &[900]), None);
    add_event(&c, plans, 7, 7_000, &sealed(7, &[]), None);
    add_event(&c, plans, 9, 9_000, &text("after the link"), None);
    // The laptop's naming, and a message from another device of mine: sealed here.
    let told = add_event(&c, plans, 10, 10_000, &sealed(10, &[]), None);
    c.execute(
        "UPDATE events SET request_id = ?2, sender = ?3 WHERE id = ?1",
        params![told, &TOLD[..], ME],
    )
    .unwrap();
    add_event(&c, plans, 11, 11_000, &sealed(11, &[]), None);
    c.execute("UPDATE rooms SET synced_seq = 11 WHERE id = ?1", [plans]).unwrap();
    // The room list's newest message is one the import passes over.
    c.execute(
        "UPDATE rooms SET last_event_id = ?2, last_preview = ?3 WHERE id = ?1",
        params![plans, naming, CANNOT],
    )
    .unwrap();
    let direct = add_room(&c, 200, "direct", None, 2, false);
    add_event(&c, direct, 1, 1_500, &sealed(1, &[]), None);
    add_event(&c, direct, 2, 2_500, &sealed(2, &[]), None);
    // A room of the phone's the laptop does not know of.
    let own = add_room(&c, 400, "group", None, 1, true);
    add_event(&c, own, 1, 1_000, &sealed(1, &[]), None);
    c.execute("UPDATE rooms SET unread = 8, read_seq = 0 WHERE server_id = 100", []).unwrap();
    (dir, c)
}

#[test]
fn an_import_fills_in_what_the_device_could_not_open_and_nothing_else() {
    let (_l, laptop) = laptop();
    let (archive, built) = build(&laptop, Vec::new(), SMALL).unwrap();
    assert!(built.complete);
    assert_eq!(built.messages, 5, "two in the plans (one a photo), two direct, one elsewhere");
    let (_p, mut phone) = phone();
    let tx = phone.transaction().unwrap();
    let imported = import_archive(&tx, ME, &archive, SMALL).unwrap();
    tx.commit().unwrap();
    assert_eq!((imported.messages, imported.passed_over, imported.complete), (2, 2, true));
    assert_eq!(imported.rooms.len(), 1, "the plans only");
    assert_eq!(
        shown(&phone, 100),
        [
            (1, "created the room".into(), vec![]),
            (2, "hello from bob".into(), vec![]),
            (4, "renamed the room to plans, renamed".into(), vec![]),
            (5, CANNOT.into(), vec![]),
            (6, "the view".into(), vec![900]),
            (7, CANNOT.into(), vec![]),
            (9, "after the link".into(), vec![]),
            (11, CANNOT.into(), vec![]),
        ],
        "filled, a naming passed over, a rename shown as one; what the laptop could not open \
         or refused stays sealed; what the phone opened itself is untouched"
    );
    // The photo's key came with it, so it opens here; the media id is the log's.
    let body: Vec<u8> = phone
        .query_row("SELECT content FROM events WHERE seq = 6 AND room_id = 1", [], |r| r.get(0))
        .unwrap();
    let EventContent::Message { body, .. } = codec::decode(&body).unwrap() else { panic!() };
    assert_eq!(apply::decode_body(body.as_bytes()).unwrap().sealed, photo().sealed);
    let (name, unread, preview): (Option<String>, i64, String) = phone
        .query_row("SELECT name, unread, last_preview FROM rooms WHERE server_id = 100", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!(name.as_deref(), Some("plans, renamed"), "the name it did not know yet");
    assert_eq!(unread, 2, "Bob's two messages, counted again: not the rename or the naming");
    assert_eq!(preview, CANNOT, "the newest message again");
    assert!(shown(&phone, 200).iter().all(|e| e.1 == CANNOT), "a room it is not in now");
    assert!(shown(&phone, 400).iter().all(|e| e.1 == CANNOT), "a room the archive lacks");

    // Twice is once.
    let before = dump(&phone);
    let tx = phone.transaction().unwrap();
    let again = import_archive(&tx, ME, &archive, SMALL).unwrap();
    tx.commit().unwrap();
    assert_eq!((again.messages, again.passed_over), (0, 0));
    assert_eq!(dump(&phone), before);
}

#[test]
fn a_bad_archive_changes_nothing() {
    let (_l, laptop) = laptop();
    let (archive, _) = build(&laptop, Vec::new(), SMALL).unwrap();
    let (_p, mut phone) = phone();
    let before = dump(&phone);
    // Cut before its end: the events before the cut were filled in, then rolled back.
    let raw = inflate(&archive);
    for bad in [deflate(&raw[..raw.len() - 3]), archive[..archive.len() / 2].to_vec()] {
        let tx = phone.transaction().unwrap();
        let refused = import_archive(&tx, ME, &bad, SMALL);
        assert!(matches!(refused, Err(Error::History(HistoryError::Malformed(_)))), "{refused:?}");
        drop(tx);
        assert_eq!(dump(&phone), before);
    }
}

#[test]
fn the_newest_history_goes_when_not_all_fits() {
    let (_l, laptop) = profile();
    let mut rng = rand::rng();
    let a = add_room(&laptop, 10, "group", None, 300, true);
    let b = add_room(&laptop, 20, "direct", None, 300, true);
    // Interleaved in time; each room's seqs in order. Random text barely deflates.
    let texts: Vec<String> =
        (0..600).map(|_| (0..4000).map(|_| rng.random_range('a'..='z')).collect()).collect();
    for (i, t) in texts.iter().enumerate() {
        let (room, seq) = if i % 2 == 0 { (a, i as u64 / 2 + 1) } else { (b, i as u64 / 2 + 1) };
        add_event(&laptop, room, seq, i as i64, &text(t), None);
    }
    let (archive, built) = build(&laptop, Vec::new(), SMALL).unwrap();
    assert!(!built.complete);
    assert!(built.len <= SMALL.archive);
    let described = records(&archive, SMALL).unwrap();
    let Some(Record::End(from)) = described.last() else { panic!() };
    let a_at = described.iter().position(|r| *r == Record::Room(room(10, 300, None))).unwrap();
    let seqs = |room: usize| -> Vec<u64> {
        described
            .iter()
            .filter_map(|r| match r {
                Record::Event { room: r, seq, .. } if *r == room => Some(*seq),
                _ => None,
            })
            .collect()
    };
    for (index, seqs) in [seqs(0), seqs(1)].into_iter().enumerate() {
        // Each room's newest, contiguous, down to just above its `from`.
        assert!(seqs.len() > 50 && seqs.len() < 300, "{}", seqs.len());
        assert_eq!(seqs[0], 300);
        assert!(seqs.windows(2).all(|w| w[1] == w[0] - 1));
        assert_eq!(*seqs.last().unwrap(), from[index] + 1);
    }
    assert_eq!(built.messages as usize, described.len() - 3);
    // The phone gets the newest filled in, and nothing older touched (or passed over).
    let (_p, mut phone) = profile();
    let a = add_room(&phone, 10, "group", None, 300, true);
    let b = add_room(&phone, 20, "direct", None, 300, true);
    for i in 0..600 {
        let (room, seq) = if i % 2 == 0 { (a, i / 2 + 1) } else { (b, i / 2 + 1) };
        add_event(&phone, room, seq, i as i64, &sealed(1, &[]), None);
    }
    let tx = phone.transaction().unwrap();
    let imported = import_archive(&tx, ME, &archive, SMALL).unwrap();
    tx.commit().unwrap();
    assert_eq!((imported.messages, imported.passed_over), (built.messages, 0));
    let events = shown(&phone, 10);
    assert_eq!(events.len(), 300);
    for (seq, shown, _) in events {
        let expected = if seq > from[a_at] { &texts[(seq as usize - 1) * 2] } else { CANNOT };
        assert_eq!(shown, expected, "seq {seq}");
    }
}

#[tokio::test]
async fn the_size_shown_before_is_at_least_the_archive() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::open(dir.path()).unwrap();
    let laptop = crate::store::open_profile(dir.path()).unwrap().0;
    let plans = add_room(&laptop, 100, "group", Some("plans"), 200, true);
    for seq in 1..=200 {
        let t = format!("message number {seq}, about the plans we made");
        add_event(&laptop, plans, seq, seq as i64, &text(&t), None);
    }
    let size = client.history().size().await.unwrap();
    assert_eq!(size.messages, 200);
    let (archive, built) = build(&client, Vec::new(), LIMITS).unwrap();
    assert_eq!(built.messages, 200);
    assert!(size.bytes >= file::sealed_len(archive.len() as u64), "{size:?} {}", archive.len());
    assert!(archive.len() * 3 < inflate(&archive).len(), "text deflates");
}

/// Figures for docs/performance.md, on a profile of 20 rooms × 1,000 messages of chat-like
/// text, with a photo every 100th or none:
/// `cargo test -p tidings-core --release --lib history::tests::figures -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a check"]
fn figures() {
    figures_with(true);
    figures_with(false);
}

fn figures_with(photos: bool) {
    use std::time::Instant;
    let words = [
        "the", "plans", "for", "tomorrow", "are", "fine", "see", "you", "at", "noon", "bring", "a",
        "tent", "and", "stove", "ok", "great", "thanks", "lake", "dinner", "seven", "when",
    ];
    let mut rng = rand::rng();
    let (_l, mut laptop) = profile();
    let (_p, mut phone) = profile();
    let (rooms, per_room) = (20u64, 1_000u64);
    let (lt, pt) = (laptop.transaction().unwrap(), phone.transaction().unwrap());
    for r in 0..rooms {
        let (on_laptop, on_phone) = (
            add_room(&lt, r as i64 + 1, "group", Some("a group"), per_room, true),
            add_room(&pt, r as i64 + 1, "group", None, per_room, true),
        );
        for seq in 1..=per_room {
            let n = rng.random_range(3..20);
            let text: Vec<&str> = (0..n).map(|_| words[rng.random_range(0..words.len())]).collect();
            let mut body = MessageBody::text(text.join(" "));
            if photos && seq.is_multiple_of(100) {
                let thumbnail: Vec<u8> = (0..30_000).map(|_| rng.random()).collect();
                body.image = Some(crate::apply::ImageBody {
                    mime: "image/jpeg".into(),
                    width: 2048,
                    height: 1536,
                    size: 900_000,
                    thumbnail: tidings_proto::bounded::Blob::new(thumbnail).unwrap(),
                    thumbnail_width: 320,
                    thumbnail_height: 240,
                    placeholder: "LEHV6nWB2yk8pyo0adR*.7kCMdnj".into(),
                });
                body.sealed = photo().sealed;
            }
            let at = (seq * rooms + r) as i64;
            add_event(&lt, on_laptop, seq, at, &message(&body, &[seq as i64]), None);
            add_event(&pt, on_phone, seq, at, &sealed(1, &[seq as i64]), None);
        }
    }
    lt.commit().unwrap();
    pt.commit().unwrap();
    let stored: i64 =
        laptop.query_row("SELECT sum(length(content)) FROM events", [], |r| r.get(0)).unwrap();
    let started = Instant::now();
    let (archive, built) = build(&laptop, Vec::new(), LIMITS).unwrap();
    let build_time = started.elapsed();
    let started = Instant::now();
    let key = FileKey::random();
    let digest = FileCipher::new(&key, archive.len() as u64).digest(&mut &archive[..]).unwrap();
    let seal_time = started.elapsed();
    let started = Instant::now();
    let mut plain = Vec::new();
    let sealed_bytes = FileCipher::new(&key, archive.len() as u64)
        .seal_range(&mut std::io::Cursor::new(&archive), 0..u64::MAX)
        .unwrap();
    FileCipher::new(&key, archive.len() as u64)
        .open_all(&digest, &mut &sealed_bytes[..], &mut plain)
        .unwrap();
    let open_time = started.elapsed();
    let started = Instant::now();
    let tx = phone.transaction().unwrap();
    let imported = import_archive(&tx, ME, &plain, LIMITS).unwrap();
    tx.commit().unwrap();
    let import_time = started.elapsed();
    assert_eq!(imported.messages, rooms * per_room);
    eprintln!(
        "{} messages ({} photos) in {rooms} rooms, {stored} bytes stored: archive {} bytes \
         deflated, {} sealed; built in {build_time:?}, sealed (digest) in {seal_time:?}, \
         opened in {open_time:?}, imported in {import_time:?}",
        built.messages,
        if photos { rooms * per_room / 100 } else { 0 },
        archive.len(),
        sealed_bytes.len()
    );
}
