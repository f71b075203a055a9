//! Account security from the command line, through a real `tidings serve`: the devices of
//! an account, changing the password (every other device is signed out), and signing out
//! everywhere.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is a failed test

mod common;

use std::path::Path;

use common::{exec, ok, ok_stdin, serve};

#[test]
fn a_new_password_signs_out_the_other_devices_and_logout_everywhere_signs_out_all() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("server"));
    let profile = |name: &str| dir.path().join(name);
    let session = |p: &Path, cmd: &str, password: &str| {
        let args = [cmd, "--server", &server.url, "--username", "alice", "--password-stdin"];
        exec(p, &args, &format!("{password}\n")).0
    };
    assert_eq!(session(&profile("laptop"), "signup", "first password"), 0);
    assert_eq!(session(&profile("phone"), "login", "first password"), 0);
    let devices = ok(&profile("laptop"), &["devices"]);
    assert_eq!(devices.len(), 2, "{devices:?}");
    assert_eq!(devices.iter().filter(|d| d["current"] == true).count(), 1);

    // The current password must be right.
    let (code, _) = exec(&profile("laptop"), &["passwd"], "not it\nsecond password\n");
    assert_eq!(code, 1);
    ok_stdin(&profile("laptop"), &["passwd"], "first password\nsecond password\n");
    // The laptop stays signed in; the phone is out; the old password opens nothing.
    ok(&profile("laptop"), &["sync"]);
    let (code, _) = exec(&profile("phone"), &["sync", "--timeout", "5"], "");
    assert_ne!(code, 0, "the phone's session survived a password change");
    assert_ne!(session(&profile("tablet"), "login", "first password"), 0);
    assert_eq!(session(&profile("tablet"), "login", "second password"), 0);

    // A lost device: sign out everywhere, from the laptop.
    ok(&profile("laptop"), &["logout", "--everywhere"]);
    let (code, _) = exec(&profile("laptop"), &["whoami"], "");
    assert_ne!(code, 0, "the laptop forgot its session");
    let (code, _) = exec(&profile("tablet"), &["sync", "--timeout", "5"], "");
    assert_ne!(code, 0, "the tablet's session survived signing out everywhere");
    assert_eq!(
        session(&profile("laptop"), "login", "second password"),
        0,
        "signing in again works"
    );
}
