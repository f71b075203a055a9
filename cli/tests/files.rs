//! Files and videos end to end through a real `tidings serve`: a 100 MB upload killed midway
//! resumes, a video made here with ffmpeg arrives with its preview, and content that does not
//! match its name is never trusted as media.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is a failed test

mod common;

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use common::{exec, files_in, ok, serve};
use serde_json::Value;

fn signup(profile: &Path, url: &str, name: &str) {
    let args = ["signup", "--server", url, "--username", name, "--password-stdin"];
    assert_eq!(exec(profile, &args, "correct horse battery\n").0, 0);
}

fn has(bytes: &[u8], needle: &[u8]) -> bool {
    bytes.windows(needle.len()).any(|w| w == needle)
}

/// Bob's view of the newest message with a file.
fn last_file(bob: &Path) -> (String, Value) {
    ok(bob, &["sync"]);
    let room = ok(bob, &["rooms"])[0]["room"].as_str().unwrap().to_owned();
    let m = ok(bob, &["messages", &room]).into_iter().rev().find(|m| !m["file"].is_null()).unwrap();
    (room, m)
}

#[test]
fn a_100_mb_upload_killed_midway_resumes_and_arrives_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob) = (dir.path().join("alice"), dir.path().join("bob"));
    let data = dir.path().join("server");
    let server = serve(&data);
    // Alice's uplink: 40 MB/s, so the upload takes seconds and can be killed midway.
    let slow = throttled_proxy_url(&server.url, 40 * 1024 * 1024);
    signup(&alice, &slow, "alice");
    signup(&bob, &server.url, "bob");
    let room =
        ok(&alice, &["create-room", "--member", "bob"])[0]["room"].as_str().unwrap().to_owned();
    ok(&alice, &["sync"]);

    let big = dir.path().join("big.bin");
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let bytes: Vec<u8> = (0..100 * 1024 * 1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    std::fs::write(&big, &bytes).unwrap();
    ok(&alice, &["send", &room, "--file", big.to_str().unwrap()]);

    // Kill -9 the sender once a third of the file is on the server.
    let mut sync = common::command(&alice)
        .args(["sync", "--timeout", "120"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let media = data.join("media");
    let started = Instant::now();
    let part = loop {
        let part =
            files_in(&media).into_iter().find(|f| f.extension().is_some_and(|e| e == "part"));
        if let Some(p) =
            part.filter(|p| std::fs::metadata(p).map_or(0, |m| m.len()) > 33 * 1024 * 1024)
        {
            break p;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the upload never got going");
        std::thread::sleep(Duration::from_millis(20));
    };
    sync.kill().unwrap();
    sync.wait().unwrap();
    let kept = std::fs::metadata(&part).unwrap().len();
    assert!(kept < bytes.len() as u64, "killed before the end");

    ok(&alice, &["sync", "--timeout", "120"]);
    assert!(ok(&alice, &["outbox"]).is_empty());
    // Resumed, not started over: one upload, one file (sealed: padded, a tag per chunk), no
    // leftover part.
    let stored = files_in(&media);
    assert_eq!(stored.len(), 1, "{stored:?}");
    let sealed = tidings_core::e2ee::file::sealed_len(bytes.len() as u64);
    assert_eq!(std::fs::metadata(&stored[0]).unwrap().len(), sealed);

    let (bob_room, m) = last_file(&bob);
    assert_eq!(m["file"]["name"], "big.bin");
    assert_eq!(m["file"]["size"].as_u64(), Some(bytes.len() as u64));
    assert_eq!(m["file"]["mime"], "application/octet-stream");
    assert!(m["video"].is_null() && m["image"].is_null());
    let out = dir.path().join("received.bin");
    let seq = m["seq"].to_string();
    ok(&bob, &["fetch-media", &bob_room, &seq, "--out", out.to_str().unwrap()]);
    assert!(std::fs::read(&out).unwrap() == bytes, "the file arrived changed");
}

/// A server, alice and bob signed up, and alice's direct room with bob.
fn two_profiles() -> (tempfile::TempDir, common::Server, PathBuf, PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob) = (dir.path().join("alice"), dir.path().join("bob"));
    let server = serve(&dir.path().join("server"));
    signup(&alice, &server.url, "alice");
    signup(&bob, &server.url, "bob");
    let room =
        ok(&alice, &["create-room", "--member", "bob"])[0]["room"].as_str().unwrap().to_owned();
    (dir, server, alice, bob, room)
}

fn throttled_proxy_url(url: &str, rate: usize) -> String {
    format!("http://{}", common::throttled_proxy(url.trim_start_matches("http://"), rate))
}

#[test]
fn a_video_arrives_with_its_poster_duration_and_size() {
    let (dir, _server, alice, bob, room) = two_profiles();
    let clip = dir.path().join("clip.mp4");
    let made = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi", "-i", "testsrc=duration=2:size=320x240:rate=25"])
        .args(["-pix_fmt", "yuv420p", "-metadata", "location=+48.8584+002.2945/"])
        .args(["-metadata", "title=Secret spot"])
        .arg(&clip)
        .status()
        .expect("ffmpeg is installed (cargo xtask test installs it)");
    assert!(made.success());
    ok(&alice, &["send", &room, "--file", clip.to_str().unwrap()]);
    ok(&alice, &["sync"]);

    let (bob_room, m) = last_file(&bob);
    assert_eq!(m["text"], "Video");
    assert_eq!(
        (m["file"]["name"].as_str(), m["file"]["mime"].as_str()),
        (Some("clip.mp4"), Some("video/mp4"))
    );
    let video = &m["video"];
    assert_eq!((video["width"].as_u64(), video["height"].as_u64()), (Some(320), Some(240)));
    let duration = video["duration_ms"].as_u64().unwrap();
    assert!((1900..=2100).contains(&duration), "{duration} ms");
    assert_eq!(video["poster"], true);
    // The poster is there before any download.
    let poster = dir.path().join("poster.jpg");
    let seq = m["seq"].to_string();
    ok(&bob, &["fetch-media", &bob_room, &seq, "--out", poster.to_str().unwrap(), "--thumbnail"]);
    let poster = std::fs::read(poster).unwrap();
    assert_eq!(&poster[..3], &[0xFF, 0xD8, 0xFF], "a JPEG poster");
    assert!(files_in(&bob.join("cache")).is_empty());
    // The server holds the clip sealed: its size padded, no metadata readable.
    let stored = std::fs::read(files_in(&dir.path().join("server/media"))[0].clone()).unwrap();
    let size = m["file"]["size"].as_u64().unwrap();
    assert_eq!(stored.len() as u64, tidings_core::e2ee::file::sealed_len(size));
    assert!(!has(&stored, b"Secret spot") && !has(&stored, b"48.8584"), "metadata in clear");
    // A download interrupted after its first kilobyte continues from there rather than
    // starting over. To see that, the part left behind is marked (zeros): continued, the
    // sealed file no longer opens — a clear error, and nothing of it is kept.
    let media = m["file"]["media"].as_i64().unwrap();
    std::fs::create_dir_all(bob.join("cache")).unwrap();
    std::fs::write(bob.join(format!("cache/{media}.part")), [0u8; 1000]).unwrap();
    let resumed = dir.path().join("resumed.mp4");
    let args = ["fetch-media", &bob_room, &seq, "--out", resumed.to_str().unwrap()];
    let (code, _, stderr) = common::exec_with(&bob, &args, "", &[]);
    assert_ne!(code, 0);
    assert!(stderr.contains("does not match its message"), "{stderr}");
    assert!(files_in(&bob.join("cache")).is_empty(), "the damaged download was kept");
    // A clean download is the clip as sent: without its metadata.
    let full = dir.path().join("full.mp4");
    ok(&bob, &["fetch-media", &bob_room, &seq, "--out", full.to_str().unwrap()]);
    let original = std::fs::read(full).unwrap();
    assert_eq!(original.len() as u64, size);
    assert!(!has(&original, b"Secret spot") && !has(&original, b"48.8584"), "metadata was sent");
    assert!(has(&original, b"ftyp"), "an MP4");
}

#[test]
fn a_file_whose_content_does_not_match_its_name_is_sent_as_a_plain_file() {
    let (dir, _server, alice, bob, room) = two_profiles();
    let fake = dir.path().join("holiday.mp4");
    std::fs::write(&fake, "this is not a video, whatever the name says").unwrap();
    ok(&alice, &["send", &room, "--file", fake.to_str().unwrap()]);
    ok(&alice, &["sync"]);
    let (_, m) = last_file(&bob);
    assert_eq!(
        (m["file"]["name"].as_str(), m["file"]["mime"].as_str()),
        (Some("holiday.mp4"), Some("application/octet-stream"))
    );
    assert!(m["video"].is_null() && m["image"].is_null());
    assert_eq!(m["text"], "holiday.mp4");

    // Too large for the client's limit: a clear error, nothing queued.
    let huge = dir.path().join("huge.bin");
    std::fs::File::create(&huge).unwrap().set_len(101 * 1024 * 1024).unwrap();
    let (code, _) = exec(&alice, &["send", &room, "--file", huge.to_str().unwrap()], "");
    assert_eq!(code, 2);
    assert!(ok(&alice, &["outbox"]).is_empty());
}

#[test]
fn a_file_the_server_refuses_fails_with_its_reason_and_discard_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob) = (dir.path().join("alice"), dir.path().join("bob"));
    let server = common::serve_with(
        "127.0.0.1:0",
        &dir.path().join("server"),
        &["--max-upload-bytes", "1000"],
    );
    let url = server.url.clone();
    signup(&alice, &url, "alice");
    signup(&bob, &url, "bob");
    let room =
        ok(&alice, &["create-room", "--member", "bob"])[0]["room"].as_str().unwrap().to_owned();
    let file = dir.path().join("report.txt");
    std::fs::write(&file, "x".repeat(5000)).unwrap();
    ok(&alice, &["send", &room, "--file", file.to_str().unwrap()]);
    ok(&alice, &["send", &room, "and a text after it"]);
    ok(&alice, &["sync"]);
    // The refused file fails for good, with the server's reason; the text behind it went.
    let outbox = ok(&alice, &["outbox"]);
    assert_eq!((outbox.len(), outbox[0]["state"].as_str()), (1, Some("failed")), "{outbox:?}");
    assert!(outbox[0]["error"].as_str().unwrap().contains("1000"), "{outbox:?}");
    let states: Vec<String> = ok(&alice, &["messages", &room])
        .iter()
        .map(|m| format!("{}={}", m["text"].as_str().unwrap(), m["state"].as_str().unwrap()))
        .collect();
    assert!(states.contains(&"report.txt=failed".to_owned()), "{states:?}");
    assert!(states.contains(&"and a text after it=sent".to_owned()), "{states:?}");
    assert_eq!(files_in(&alice.join("outgoing")).len(), 1);
    let id = outbox[0]["id"].to_string();
    ok(&alice, &["discard", &id]);
    assert!(ok(&alice, &["outbox"]).is_empty());
    assert!(files_in(&alice.join("outgoing")).is_empty(), "the discarded file stays behind");
    assert!(ok(&alice, &["messages", &room]).iter().all(|m| m["text"] != "report.txt"));
}
