//! The session token in a real OS keychain: a private D-Bus session bus with GNOME Keyring
//! as its Secret Service (as on a desktop), and the fallback where there is none.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is a failed test

mod common;

use std::{
    io::{BufRead, BufReader, Write},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use common::{command, ok, run, serve};
use serde_json::Value;

/// A session bus and a Secret Service on it, both killed when dropped.
struct Desktop {
    bus: Child,
    keyring: Child,
    address: String,
    home: std::path::PathBuf,
}

impl Desktop {
    fn start(dir: &Path) -> Self {
        let (home, run) = (dir.join("home"), dir.join("run"));
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&run).unwrap();
        let mut bus = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address=1"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("dbus-daemon (package dbus-daemon)");
        let mut address = String::new();
        BufReader::new(bus.stdout.take().unwrap()).read_line(&mut address).unwrap();
        let address = address.trim().to_owned();
        // Unlocked with a password on stdin, as a desktop session unlocks it at log-in.
        let mut keyring = Command::new("gnome-keyring-daemon")
            .args(["--unlock", "--foreground", "--components=secrets"])
            .env("DBUS_SESSION_BUS_ADDRESS", &address)
            .env("HOME", &home)
            .env("XDG_RUNTIME_DIR", &run)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("gnome-keyring-daemon (package gnome-keyring)");
        keyring.stdin.take().unwrap().write_all(b"the login password").unwrap();
        let desktop = Self { bus, keyring, address, home };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !desktop.has_secret_service() {
            assert!(Instant::now() < deadline, "the Secret Service never came up");
            std::thread::sleep(Duration::from_millis(100));
        }
        desktop
    }

    fn has_secret_service(&self) -> bool {
        let out = Command::new("dbus-send")
            .args(["--session", "--print-reply", "--dest=org.freedesktop.DBus"])
            .args(["/org/freedesktop/DBus", "org.freedesktop.DBus.NameHasOwner"])
            .arg("string:org.freedesktop.secrets")
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).contains("boolean true")
    }

    /// `tidings` for `profile` in this desktop session.
    fn tidings(&self, profile: &Path, args: &[&str], stdin: &str) -> (i32, Vec<Value>) {
        let mut c = command(profile);
        c.args(args)
            .env_remove("TIDINGS_KEYCHAIN")
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .env("HOME", &self.home);
        let (code, lines, _) = run(c, stdin);
        (code, lines)
    }

    /// The secret of the Tidings entry `entry` (`secret-tool lookup`).
    fn secret(&self, entry: &str) -> String {
        let out = Command::new("secret-tool")
            .args(["lookup", "service", "tidings", "username", entry])
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// The secrets the keychain holds for Tidings (`secret-tool search`).
    fn tidings_secrets(&self) -> String {
        let out = Command::new("secret-tool")
            .args(["search", "--all", "service", "tidings"])
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .output()
            .unwrap();
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    }
}

impl Drop for Desktop {
    fn drop(&mut self) {
        for child in [&mut self.keyring, &mut self.bus] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The token column of a profile's database, opened with its key from where the profile
/// keeps it: this desktop's keychain (this test process is not in its session: the key is
/// looked up as `secret-tool` would), or the key file.
fn stored_token(desktop: &Desktop, profile: &Path) -> String {
    let db = match std::fs::read_to_string(profile.join("tidings.keychain")) {
        Ok(entry) => {
            let key = desktop.secret(entry.trim());
            assert_eq!(key.len(), 64, "a 32-byte key in hex");
            let db = rusqlite::Connection::open(profile.join("tidings.sqlite")).unwrap();
            db.pragma_update(None, "key", format!("x'{key}'")).unwrap();
            db
        }
        Err(_) => tidings_core::store::open_profile(profile).unwrap().0,
    };
    db.query_row("SELECT token FROM account", [], |r| r.get(0)).unwrap()
}

#[test]
fn the_session_token_lives_in_the_keychain_and_in_the_profile_only_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("server"));
    let desktop = Desktop::start(dir.path());
    let (alice, bob) = (dir.path().join("alice"), dir.path().join("bob"));
    let signup = ["signup", "--server", &server.url, "--username", "alice", "--password-stdin"];

    // On the desktop: the keychain holds it, the profile does not.
    let (code, _) = desktop.tidings(&alice, &signup, "correct horse battery\n");
    assert_eq!(code, 0);
    let (_, who) = desktop.tidings(&alice, &["whoami"], "");
    assert_eq!(who[0]["token"], "keychain", "{who:?}");
    assert_eq!(who[0]["key"], "keychain", "{who:?}");
    assert_eq!(stored_token(&desktop, &alice), "", "no token in the profile");
    let secrets = desktop.tidings_secrets();
    assert!(secrets.contains("session-"), "{secrets}");
    // The database's key is there too; the profile names its entry and holds no key file.
    assert!(secrets.contains("profile-"), "{secrets}");
    assert!(alice.join("tidings.keychain").exists());
    assert!(!alice.join("tidings.key").exists());
    // Every later command reads it from there: a lookup and a sync, signed in.
    let (code, found) = desktop.tidings(&alice, &["find-user", "alice"], "");
    assert_eq!((code, found[0]["user"].as_str()), (0, Some("alice")), "{found:?}");
    assert_eq!(desktop.tidings(&alice, &["sync"], "").0, 0);
    // Signing out deletes it.
    assert_eq!(desktop.tidings(&alice, &["logout"], "").0, 0);
    let secrets = desktop.tidings_secrets();
    assert!(!secrets.contains("session-"), "{secrets}");
    assert!(secrets.contains("profile-"), "the profile's key stays with the profile");

    // Without a keychain (no session bus): the profile keeps it, and says so.
    let nowhere = dir.path().join("no-bus");
    std::fs::create_dir_all(&nowhere).unwrap();
    let bare = |args: &[&str], stdin: &str| {
        let mut c = command(&bob);
        c.args(args)
            .env_remove("TIDINGS_KEYCHAIN")
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .env("XDG_RUNTIME_DIR", &nowhere);
        let (code, lines, stderr) = run(c, stdin);
        assert_eq!(code, 0, "tidings {args:?}: {stderr}");
        lines.into_iter().next().unwrap_or(Value::Null)
    };
    let signup = ["signup", "--server", &server.url, "--username", "bob", "--password-stdin"];
    bare(&signup, "correct horse battery\n");
    assert_eq!(bare(&["whoami"], "")["token"], "profile");
    assert_eq!(bare(&["whoami"], "")["key"], "profile");
    assert!(!stored_token(&desktop, &bob).is_empty());
    // The database's key, likewise, in an owner-only file beside it.
    assert!(bob.join("tidings.key").exists());
    assert!(!bob.join("tidings.keychain").exists());
    assert_eq!(ok(&bob, &["whoami"])[0]["token"], "profile");
}
