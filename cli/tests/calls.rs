//! Calls end to end: `tidings call` and `tidings answer` as separate processes through a real
//! `tidings serve`, WebRTC media over loopback UDP (and through a real coturn), and what each
//! side heard checked for the other side's tone — its frequency and its level.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is a failed test

mod common;

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Stdio},
    sync::mpsc,
    time::Duration,
};

use common::{command, exec, ok, serve, serve_with_env, Server};
use serde_json::Value;
use tidings_core::call::audio::{analyze, read_wav, Spectrum};

const LOOPBACK: &str = "127.0.0.1:0";

fn signup(server: &Server, profile: &Path, name: &str) {
    let args = ["signup", "--server", &server.url, "--username", name, "--password-stdin"];
    let (code, _) = exec(profile, &args, "correct horse battery\n");
    assert_eq!(code, 0, "signup {name}");
}

/// A running `tidings answer`, its JSON lines arriving on a channel.
struct Answerer {
    child: Child,
    lines: mpsc::Receiver<Value>,
}

impl Answerer {
    /// Starts `answer` with `args` and waits until it is ready for calls.
    fn start(profile: &Path, args: &[&str]) -> Self {
        let mut child = command(profile)
            .arg("answer")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel::<Value>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(serde_json::from_str(&line).unwrap());
            }
        });
        let first = lines.recv_timeout(Duration::from_secs(30)).expect("answer starts");
        assert_eq!(first["state"], "waiting");
        Self { child, lines }
    }

    /// Waits for it to exit; returns its code and the states it printed.
    fn finish(mut self) -> (i32, Vec<String>) {
        let code = wait_exit(&mut self.child, Duration::from_secs(60));
        let states = self.lines.try_iter().map(|v| state_of(&v)).collect();
        (code, states)
    }
}

impl Drop for Answerer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_exit(child: &mut Child, limit: Duration) -> i32 {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        assert!(std::time::Instant::now() < deadline, "the process did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// "ended:hung_up" for an end, else the state.
fn state_of(v: &Value) -> String {
    match (v["state"].as_str(), v["reason"].as_str()) {
        (Some(s), Some(r)) => format!("{s}:{r}"),
        (Some(s), None) => s.to_owned(),
        _ => String::new(),
    }
}

fn call(profile: &Path, args: &[&str]) -> (i32, Vec<String>) {
    let mut all = vec!["call"];
    all.extend_from_slice(args);
    let (code, lines) = exec(profile, &all, "");
    (code, lines.iter().map(state_of).collect())
}

/// The steady part of a recording (the first half second is the codec and jitter settling).
fn heard(path: &Path) -> Spectrum {
    let samples = read_wav(path).unwrap();
    assert!(samples.len() > 48_000, "{} heard only {} samples", path.display(), samples.len());
    analyze(&samples[24_000..])
}

fn assert_tone(path: &Path, hz: f32) {
    let s = heard(path);
    assert!((s.dominant_hz - hz).abs() <= 10.0, "{}: {s:?}, expected {hz} Hz", path.display());
    assert!(s.rms > 0.05 && s.purity > 0.5, "{}: {s:?}", path.display());
}

struct People {
    _dir: tempfile::TempDir,
    server: Server,
    root: PathBuf,
}

impl People {
    fn new(names: &[&str]) -> Self {
        Self::with_server(names, serve)
    }

    fn with_server(names: &[&str], start: impl FnOnce(&Path) -> Server) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_owned();
        let server = start(&root.join("server"));
        let people = Self { _dir: dir, server, root };
        for name in names {
            signup(&people.server, &people.profile(name), name);
        }
        // Calls ring only between contacts (or in accepted rooms): everyone scans everyone
        // who signed up after them.
        for (i, name) in names.iter().enumerate() {
            for other in &names[i + 1..] {
                let code = ok(&people.profile(other), &["contact-code"]);
                let uri = code[0]["uri"].as_str().unwrap().to_owned();
                ok(&people.profile(name), &["add-contact", &uri]);
            }
        }
        people
    }

    fn profile(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }
}

#[test]
fn a_call_carries_each_sides_tone_and_hanging_up_ends_both() {
    let p = People::new(&["alice", "bob"]);
    let (alice, bob) = (p.profile("alice"), p.profile("bob"));
    let (at_alice, at_bob) = (p.file("alice.wav"), p.file("bob.wav"));
    let bob_rec = at_bob.to_str().unwrap();
    let answerer = Answerer::start(
        &bob,
        &["--auto", "--tone", "660", "--record", bob_rec, "--bind", LOOPBACK],
    );
    let alice_rec = at_alice.to_str().unwrap();
    let (code, states) = call(
        &alice,
        &["bob", "--tone", "440", "--seconds", "3", "--record", alice_rec, "--bind", LOOPBACK],
    );
    assert_eq!(code, 0, "{states:?}");
    assert_eq!(states.first().map(String::as_str), Some("requesting"), "{states:?}");
    assert!(states.contains(&"ringing_remote".to_owned()), "{states:?}");
    assert!(states.contains(&"connected".to_owned()), "{states:?}");
    assert_eq!(states.last().map(String::as_str), Some("ended:hung_up"), "{states:?}");

    let (code, states) = answerer.finish();
    assert_eq!(code, 0, "{states:?}");
    assert_eq!(states.last().map(String::as_str), Some("ended:remote_hung_up"), "{states:?}");

    // Each heard the other's tone, not their own and not silence.
    assert_tone(&at_bob, 440.0);
    assert_tone(&at_alice, 660.0);

    // The caller recorded the call once, as completed, with its talk time.
    ok(&bob, &["sync"]);
    let room = ok(&bob, &["rooms"])[0]["room"].as_str().unwrap().to_owned();
    let calls: Vec<Value> =
        ok(&bob, &["messages", &room]).into_iter().filter(|m| !m["call"].is_null()).collect();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["call"]["outcome"], "completed");
    let talked = calls[0]["call"]["duration_ms"].as_u64().unwrap();
    assert!((2_500..10_000).contains(&talked), "talk time {talked} ms");

    // Nobody had written in their room: the call set its encryption group up, and both
    // sides hold it, so the offer, the answer and the candidates went sealed (a side that
    // holds the group drops a signal in clear, and the call would not have connected).
    for profile in [&alice, &bob] {
        let db = tidings_core::store::open_profile(profile).unwrap().0;
        let groups: i64 = db
            .query_row("SELECT COUNT(*) FROM rooms WHERE mls_group IS NOT NULL", [], |r| r.get(0))
            .unwrap();
        assert_eq!(groups, 1, "{}", profile.display());
    }
}

#[test]
fn calling_someone_in_a_call_is_refused_busy() {
    let p = People::new(&["alice", "bob", "carol"]);
    let (alice, bob, carol) = (p.profile("alice"), p.profile("bob"), p.profile("carol"));
    let answerer = Answerer::start(&bob, &["--auto", "--bind", LOOPBACK]);
    let talking =
        std::thread::spawn(move || call(&alice, &["bob", "--seconds", "8", "--bind", LOOPBACK]));
    // Wait until bob is talking to alice.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let line = answerer.lines.recv_timeout(Duration::from_secs(20)).unwrap();
        if line["state"] == "connected" {
            break;
        }
        assert!(std::time::Instant::now() < deadline);
    }
    let (code, states) = call(&carol, &["bob", "--bind", LOOPBACK]);
    assert_eq!(code, 4, "exit code for busy: {states:?}");
    assert_eq!(states.last().map(String::as_str), Some("ended:busy"), "{states:?}");
    assert!(!states.contains(&"ringing_remote".to_owned()), "nothing rang: {states:?}");

    // The call in progress went on undisturbed.
    let (code, states) = talking.join().unwrap();
    assert_eq!((code, states.last().map(String::as_str)), (0, Some("ended:hung_up")));
    let (code, states) = answerer.finish();
    assert_eq!(code, 0, "{states:?}");
    assert!(states.contains(&"called_while_busy".to_owned()), "bob is told: {states:?}");
}

#[test]
fn calling_someone_offline_ends_unavailable_at_once() {
    let p = People::new(&["alice", "dave"]);
    let started = std::time::Instant::now();
    let (code, states) = call(&p.profile("alice"), &["dave", "--bind", LOOPBACK]);
    assert_eq!(code, 5, "exit code for unavailable: {states:?}");
    assert_eq!(states.last().map(String::as_str), Some("ended:unavailable"));
    // Refused by the server at the Inquire, not after the 10 s grant timeout.
    assert!(started.elapsed() < Duration::from_secs(9), "{:?}", started.elapsed());
}

#[test]
fn a_call_nobody_answers_ends_as_no_answer_on_both_sides() {
    let p = People::new(&["alice", "bob"]);
    // Bob's answer asks on stdin and nobody types.
    let answerer = Answerer::start(&p.profile("bob"), &["--bind", LOOPBACK]);
    let (code, states) =
        call(&p.profile("alice"), &["bob", "--ring-timeout", "2", "--bind", LOOPBACK]);
    assert_eq!(code, 6, "exit code for no answer: {states:?}");
    assert_eq!(states.last().map(String::as_str), Some("ended:no_answer"), "{states:?}");
    assert!(!states.contains(&"connected".to_owned()));
    let (code, states) = answerer.finish();
    assert_eq!(code, 6, "{states:?}");
    assert!(states.contains(&"ringing".to_owned()), "{states:?}");
    assert_eq!(states.last().map(String::as_str), Some("ended:no_answer"), "{states:?}");
}

#[test]
fn a_declined_call_ends_declined_for_both() {
    let p = People::new(&["alice", "bob"]);
    let mut answerer = Answerer::start(&p.profile("bob"), &["--bind", LOOPBACK]);
    let mut stdin = answerer.child.stdin.take().unwrap();
    let alice = p.profile("alice");
    let caller = std::thread::spawn(move || call(&alice, &["bob", "--bind", LOOPBACK]));
    loop {
        let line = answerer.lines.recv_timeout(Duration::from_secs(20)).unwrap();
        if line["state"] == "ringing" {
            break;
        }
    }
    std::io::Write::write_all(&mut stdin, b"n\n").unwrap();
    let (code, states) = caller.join().unwrap();
    assert_eq!(code, 7, "{states:?}");
    assert_eq!(states.last().map(String::as_str), Some("ended:remote_declined"));
    let (code, states) = answerer.finish();
    assert_eq!((code, states.last().map(String::as_str)), (7, Some("ended:declined")));
}

#[test]
fn a_call_answered_on_one_device_stops_ringing_on_the_other() {
    let p = People::new(&["alice", "bob"]);
    let phone = p.profile("bob-phone");
    let login = ["login", "--server", &p.server.url, "--username", "bob", "--password-stdin"];
    assert_eq!(exec(&phone, &login, "correct horse battery\n").0, 0);
    // The laptop asks on stdin (nobody types); the phone answers at once.
    let laptop = Answerer::start(&p.profile("bob"), &["--bind", LOOPBACK]);
    let phone = Answerer::start(&phone, &["--auto", "--bind", LOOPBACK]);
    let (code, states) = call(&p.profile("alice"), &["bob", "--seconds", "2", "--bind", LOOPBACK]);
    assert_eq!(code, 0, "{states:?}");
    let (code, states) = phone.finish();
    assert_eq!((code, states.last().map(String::as_str)), (0, Some("ended:remote_hung_up")));
    let (code, states) = laptop.finish();
    assert_eq!(code, 0, "{states:?}");
    assert!(states.contains(&"ringing".to_owned()), "both devices rang: {states:?}");
    assert!(!states.contains(&"connected".to_owned()), "{states:?}");
    assert_eq!(states.last().map(String::as_str), Some("ended:answered_elsewhere"), "{states:?}");
}

#[test]
fn a_relay_only_call_connects_through_coturn_with_server_issued_credentials() {
    let secret = "a secret only the two servers know";
    let turn = tidings_testkit::Coturn::start(secret).unwrap();
    let turn_url = turn.url();
    let p = People::with_server(&["alice", "bob"], |data| {
        let env = [("TIDINGS_TURN_SECRET", secret)];
        serve_with_env(LOOPBACK, data, &["--turn-url", &turn_url], &env)
    });
    let (at_alice, at_bob) = (p.file("alice.wav"), p.file("bob.wav"));
    let answerer = Answerer::start(
        &p.profile("bob"),
        &[
            "--auto",
            "--relay-only",
            "--bind",
            LOOPBACK,
            "--tone",
            "880",
            "--record",
            at_bob.to_str().unwrap(),
        ],
    );
    let (code, states) = call(
        &p.profile("alice"),
        &[
            "bob",
            "--relay-only",
            "--bind",
            LOOPBACK,
            "--seconds",
            "3",
            "--record",
            at_alice.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{states:?}");
    assert!(states.contains(&"connected".to_owned()), "{states:?}");
    let (code, states) = answerer.finish();
    assert_eq!(code, 0, "{states:?}");
    assert_tone(&at_bob, 440.0);
    assert_tone(&at_alice, 880.0);
}
