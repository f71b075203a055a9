//! Photos end to end: two profiles through a real `tidings serve`, with the real camera
//! photos of shared/testdata.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is a failed test

mod common;

use std::path::{Path, PathBuf};

use common::{exec, files_in, ok, serve};
use serde_json::Value;

fn images() -> PathBuf {
    tidings_testkit::test_images().unwrap()
}

/// Width and height from a JPEG's frame header.
fn jpeg_size(bytes: &[u8]) -> (u32, u32) {
    let mut i = 2;
    while i + 9 < bytes.len() {
        assert_eq!(bytes[i], 0xFF, "not a marker at {i}");
        let marker = bytes[i + 1];
        let len = usize::from(u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]));
        if matches!(marker, 0xC0..=0xC2) {
            let h = u16::from_be_bytes([bytes[i + 5], bytes[i + 6]]);
            let w = u16::from_be_bytes([bytes[i + 7], bytes[i + 8]]);
            return (u32::from(w), u32::from(h));
        }
        i += 2 + len;
    }
    panic!("no frame header")
}

fn has_metadata(bytes: &[u8]) -> bool {
    [&b"Exif"[..], b"GPS", b"http://ns.adobe.com/xap"]
        .iter()
        .any(|needle| bytes.windows(needle.len()).any(|w| w == *needle))
}

struct Pair {
    _dir: tempfile::TempDir,
    server: common::Server,
    server_data: PathBuf,
    alice: PathBuf,
    bob: PathBuf,
    /// The room as alice knows it, and as bob knows it (after his first sync).
    room: String,
}

fn pair() -> Pair {
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob) = (dir.path().join("alice"), dir.path().join("bob"));
    let server_data = dir.path().join("server");
    let server = serve(&server_data);
    for (p, name) in [(&alice, "alice"), (&bob, "bob")] {
        let args = ["signup", "--server", &server.url, "--username", name, "--password-stdin"];
        assert_eq!(exec(p, &args, "correct horse battery\n").0, 0);
    }
    let room =
        ok(&alice, &["create-room", "--member", "bob"])[0]["room"].as_str().unwrap().to_owned();
    ok(&alice, &["sync"]);
    Pair { _dir: dir, server, server_data, alice, bob, room }
}

fn bob_room(bob: &Path) -> String {
    ok(bob, &["rooms"])[0]["room"].as_str().unwrap().to_owned()
}

#[test]
fn a_photo_arrives_upright_without_metadata_thumbnail_at_once_and_full_on_demand() {
    let p = pair();
    let photo = images().join("xiaomi_mi9t_12mp_orient6.jpg");
    let original = std::fs::read(&photo).unwrap();
    assert!(has_metadata(&original), "the test photo carries EXIF");

    let sent = ok(
        &p.alice,
        &["send", &p.room, "--image", photo.to_str().unwrap(), "--caption", "the bay"],
    );
    assert_eq!(sent[0]["state"], "pending");
    // The message is there at once, pending, with its photo laid out (no upload yet).
    let mine = ok(&p.alice, &["messages", &p.room]);
    let m = mine.last().unwrap();
    assert_eq!((m["state"].as_str(), m["text"].as_str()), (Some("pending"), Some("the bay")));
    assert_eq!(
        (m["image"]["width"].as_u64(), m["image"]["height"].as_u64()),
        (Some(1536), Some(2048))
    );
    assert!(m["image"]["media"].is_null());

    ok(&p.alice, &["sync"]);
    assert!(ok(&p.alice, &["outbox"]).is_empty());
    let mine = ok(&p.alice, &["messages", &p.room]);
    assert!(mine.last().unwrap()["image"]["media"].as_i64().is_some(), "{mine:?}");

    // What reached the server is sealed, and what was sealed has no metadata.
    let uploaded = files_in(&p.server_data.join("media"));
    assert_eq!(uploaded.len(), 1, "{uploaded:?}");
    let sealed = std::fs::read(&uploaded[0]).unwrap();
    let outgoing = files_in(&p.alice.join("outgoing"));
    assert_eq!(outgoing.len(), 1, "Alice keeps her copy: {outgoing:?}");
    // She keeps it sealed at rest: the very bytes the server has (docs/storage.md); it
    // opens from there, without the network.
    assert_eq!(std::fs::read(&outgoing[0]).unwrap(), sealed, "Alice's copy is kept sealed");
    let seq_alice = ok(&p.alice, &["messages", &p.room]).last().unwrap()["seq"].to_string();
    let mine = p.alice.join("mine.jpg");
    ok(&p.alice, &["fetch-media", &p.room, &seq_alice, "--out", mine.to_str().unwrap()]);
    let prepared = std::fs::read(&mine).unwrap();
    let sealed_len = tidings_core::e2ee::file::sealed_len(prepared.len() as u64);
    assert_eq!(sealed.len() as u64, sealed_len);
    assert!(!sealed.windows(64).any(|w| w == &prepared[prepared.len() / 2..][..64]));
    assert!(!has_metadata(&prepared), "metadata reached the server");
    assert_eq!(jpeg_size(&prepared), (1536, 2048));

    // Bob's sync brings the message with its thumbnail and placeholder, and downloads nothing.
    ok(&p.bob, &["sync"]);
    let room = bob_room(&p.bob);
    let theirs = ok(&p.bob, &["messages", &room]);
    let m: &Value = theirs.iter().find(|m| !m["image"].is_null()).unwrap();
    let image = &m["image"];
    assert_eq!(m["text"], "the bay");
    assert_eq!((image["width"].as_u64(), image["height"].as_u64()), (Some(1536), Some(2048)));
    assert_eq!(
        (image["thumbnail_width"].as_u64(), image["thumbnail_height"].as_u64()),
        (Some(240), Some(320))
    );
    assert_eq!(image["mime"], "image/jpeg");
    assert!(!image["placeholder"].as_str().unwrap().is_empty());
    assert!(files_in(&p.bob.join("cache")).is_empty(), "catch-up downloaded media");

    let seq = m["seq"].as_u64().unwrap().to_string();
    let thumb = p.bob.join("thumb.jpg");
    ok(&p.bob, &["fetch-media", &room, &seq, "--out", thumb.to_str().unwrap(), "--thumbnail"]);
    let thumb = std::fs::read(thumb).unwrap();
    assert_eq!(jpeg_size(&thumb), (240, 320), "the thumbnail is portrait");
    assert!(!has_metadata(&thumb));

    let full = p.bob.join("full.jpg");
    ok(&p.bob, &["fetch-media", &room, &seq, "--out", full.to_str().unwrap()]);
    assert_eq!(std::fs::read(full).unwrap(), prepared, "the full image, byte for byte");
    assert_eq!(files_in(&p.bob.join("cache")).len(), 1, "opened once, cached");

    // The sender opens her own photo without the network: her copy is cached.
    drop(p.server);
    let again = p.alice.join("again.jpg");
    ok(&p.alice, &["fetch-media", &p.room, &seq_alice, "--out", again.to_str().unwrap()]);
    assert_eq!(std::fs::read(again).unwrap(), prepared);
}

#[test]
fn files_that_are_not_photos_get_a_clear_error_and_nothing_is_queued() {
    let p = pair();
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.jpg");
    std::fs::write(&text, "a text file with an image's name").unwrap();
    let truncated = dir.path().join("cut.jpg");
    let original = std::fs::read(images().join("olympus_ep3_12mp.jpg")).unwrap();
    std::fs::write(&truncated, &original[..original.len() / 3]).unwrap();
    for (file, says) in [(&text, "unsupported format"), (&truncated, "damaged")] {
        let out = common::command(&p.alice)
            .args(["send", &p.room, "--image"])
            .arg(file)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{file:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
    }
    assert!(ok(&p.alice, &["outbox"]).is_empty());
    assert!(ok(&p.alice, &["messages", &p.room]).iter().all(|m| m["image"].is_null()));
    // A message without a photo has none to fetch.
    ok(&p.alice, &["send", &p.room, "just text"]);
    ok(&p.alice, &["sync"]);
    let seq = ok(&p.alice, &["messages", &p.room]).last().unwrap()["seq"].to_string();
    let (code, _) = exec(&p.alice, &["fetch-media", &p.room, &seq, "--out", "/dev/null"], "");
    assert_eq!(code, 2);
}

#[test]
fn a_catch_up_of_100_photos_downloads_nothing_and_shows_every_thumbnail() {
    let p = pair();
    let photo = images().join("canon_sx60_3mp_orient6.jpg");
    for i in 0..100 {
        let caption = format!("photo {i}");
        ok(&p.alice, &["send", &p.room, "--image", photo.to_str().unwrap(), "--caption", &caption]);
    }
    ok(&p.alice, &["sync", "--timeout", "120"]);
    assert!(ok(&p.alice, &["outbox"]).is_empty());
    ok(&p.bob, &["sync"]);
    // Thumbnails are in the store: they show with the server gone.
    drop(p.server);
    let room = bob_room(&p.bob);
    let theirs = ok(&p.bob, &["messages", &room, "--limit", "200"]);
    let photos: Vec<&Value> = theirs.iter().filter(|m| !m["image"].is_null()).collect();
    assert_eq!(photos.len(), 100);
    let captions: Vec<&str> = photos.iter().map(|m| m["text"].as_str().unwrap()).collect();
    let expected: Vec<String> = (0..100).map(|i| format!("photo {i}")).collect();
    assert_eq!(captions, expected, "all of them, once, in order");
    assert!(files_in(&p.bob.join("cache")).is_empty(), "catch-up downloaded media");
    let seq = photos[57]["seq"].to_string();
    let thumb = p.bob.join("t.jpg");
    ok(&p.bob, &["fetch-media", &room, &seq, "--out", thumb.to_str().unwrap(), "--thumbnail"]);
    assert_eq!(jpeg_size(&std::fs::read(thumb).unwrap()), (240, 320));
}

#[test]
fn a_photo_queued_while_the_server_is_down_goes_out_when_it_is_back() {
    let p = pair();
    let addr = p.server.url.trim_start_matches("http://").to_owned();
    drop(p.server);
    let photo = images().join("canon_sx60_3mp_orient6.jpg");
    ok(&p.alice, &["send", &p.room, "--image", photo.to_str().unwrap()]);
    let (code, _) = exec(&p.alice, &["sync", "--timeout", "3"], "");
    assert_eq!(code, 3, "no server: the sync gives up, the photo stays queued");
    let queued = ok(&p.alice, &["outbox"]);
    assert_eq!((queued.len(), queued[0]["state"].as_str()), (1, Some("pending")));

    let _server = common::serve_on(&addr, &p.server_data);
    ok(&p.alice, &["sync"]);
    assert!(ok(&p.alice, &["outbox"]).is_empty());
    ok(&p.bob, &["sync"]);
    let room = bob_room(&p.bob);
    let photos: Vec<Value> =
        ok(&p.bob, &["messages", &room]).into_iter().filter(|m| !m["image"].is_null()).collect();
    assert_eq!(photos.len(), 1, "delivered once");
    assert_eq!(photos[0]["text"], "Photo");
}
