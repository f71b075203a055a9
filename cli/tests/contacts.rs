//! Contacts end to end through a real `tidings serve`: QR codes that other tools read (and
//! theirs that we read), redeeming from a picture, one direct room per pair, reset and
//! expired codes, and codes that are not ours.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is a failed test

mod common;

use std::{path::Path, process::Command};

use common::{exec, ok, serve};

fn signup(url: &str, profile: &Path, name: &str) {
    let args = ["signup", "--server", url, "--username", name, "--password-stdin"];
    assert_eq!(exec(profile, &args, "correct horse battery\n").0, 0, "signup {name}");
}

/// Runs a command that must fail; returns its exit code (stderr holds the reason).
fn fails(profile: &Path, args: &[&str]) -> i32 {
    let (code, _) = exec(profile, args, "");
    assert_ne!(code, 0, "tidings {args:?} should fail");
    code
}

/// Runs a command that must fail with exit code 1 and `reason` on stderr.
fn refused(profile: &Path, args: &[&str], reason: &str) {
    let out = common::command(profile).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "tidings {args:?}: {stderr}");
    assert!(stderr.contains(reason), "tidings {args:?}: {stderr}");
}

#[test]
fn scanning_a_qr_code_makes_two_people_contacts_with_one_direct_room() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("server"));
    let (alice, bob, carol, dave) = (
        dir.path().join("alice"),
        dir.path().join("bob"),
        dir.path().join("carol"),
        dir.path().join("dave"),
    );
    for (p, name) in [(&alice, "alice"), (&bob, "bob"), (&carol, "carol"), (&dave, "dave")] {
        signup(&server.url, p, name);
    }

    // Alice shows her code; zbar (an independent reader) reads what we drew.
    let png = dir.path().join("alice.png");
    let svg = dir.path().join("alice.svg");
    let shown = ok(
        &alice,
        &["contact-code", "--png", png.to_str().unwrap(), "--svg", svg.to_str().unwrap()],
    );
    let uri = shown[0]["uri"].as_str().unwrap().to_owned();
    // Version 2: it carries her identity fingerprint and the secret that makes a scan verify.
    assert!(uri.starts_with("tidings:contact?v=2&server="), "{uri}");
    let zbar = Command::new("zbarimg").args(["--raw", "-q"]).arg(&png).output().unwrap();
    assert!(zbar.status.success(), "zbarimg reads our PNG");
    assert_eq!(String::from_utf8(zbar.stdout).unwrap().trim(), uri);
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
    // Asking again shows the same code (every device shows one code).
    assert_eq!(ok(&alice, &["contact-code"])[0]["uri"], uri.as_str());

    // Bob scans the picture: contacts, with a direct room both sides see.
    let added = ok(&bob, &["add-contact", "--qr-image", png.to_str().unwrap()]);
    assert_eq!(added[0]["user"], "alice");
    let bob_room = added[0]["room"].as_str().unwrap().to_owned();
    ok(&bob, &["send", &bob_room, "hi alice, scanned you"]);
    ok(&bob, &["sync"]);
    ok(&alice, &["sync"]);
    let rooms = ok(&alice, &["rooms"]);
    assert_eq!(rooms.len(), 1, "{rooms:?}");
    assert_eq!(rooms[0]["name"], "bob");
    let alice_room = rooms[0]["room"].as_str().unwrap();
    let texts: Vec<String> = ok(&alice, &["messages", alice_room])
        .iter()
        .filter_map(|m| m["text"].as_str().map(str::to_owned))
        .collect();
    assert!(texts.contains(&"hi alice, scanned you".to_owned()), "{texts:?}");
    let names = |p: &Path| -> Vec<String> {
        ok(p, &["contacts"]).iter().map(|c| c["user"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(names(&alice), ["bob"]);
    assert_eq!(names(&bob), ["alice"]);

    // Scanning again, or from the text, reuses the room.
    let again = ok(&bob, &["add-contact", &uri]);
    assert_eq!(again[0]["room"].as_str(), Some(bob_room.as_str()));
    assert_eq!(ok(&bob, &["rooms"]).len(), 1);

    // A QR code made by another tool (qrencode) reads too.
    let theirs = dir.path().join("qrencode.png");
    let made = Command::new("qrencode").arg("-o").arg(&theirs).arg(&uri).status().unwrap();
    assert!(made.success());
    let added = ok(&dave, &["add-contact", "--qr-image", theirs.to_str().unwrap()]);
    assert_eq!(added[0]["user"], "alice");

    // Reset: the old code no longer works, the new one does.
    let new_uri = ok(&alice, &["reset-contact-code"])[0]["uri"].as_str().unwrap().to_owned();
    assert_ne!(new_uri, uri);
    refused(&carol, &["add-contact", &uri], "invalid_contact_key");
    assert_eq!(ok(&carol, &["add-contact", &new_uri])[0]["user"], "alice");
    let mut all = names(&alice);
    all.sort();
    assert_eq!(all, ["bob", "carol", "dave"]);
}

#[test]
fn bad_codes_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("server"));
    let (alice, bob) = (dir.path().join("alice"), dir.path().join("bob"));
    signup(&server.url, &alice, "alice");
    signup(&server.url, &bob, "bob");

    // Expired.
    let uri = ok(&alice, &["contact-code", "--reset", "--minutes", "0.02"])[0]["uri"]
        .as_str()
        .unwrap()
        .to_owned();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    refused(&bob, &["add-contact", &uri], "expired_contact_key");
    // Asking for the code again gives a new one that lives as long (not forever).
    let again = ok(&alice, &["contact-code"])[0]["uri"].as_str().unwrap().to_owned();
    assert_ne!(again, uri);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    refused(&bob, &["add-contact", &again], "expired_contact_key");
    // Another server's code, not a code at all, a picture without a code, my own code.
    let foreign = uri.replace("127.0.0.1", "chat.example.org");
    assert_eq!(fails(&bob, &["add-contact", &foreign]), 2);
    assert_eq!(fails(&bob, &["add-contact", "https://example.com/"]), 2);
    assert_eq!(fails(&bob, &["add-contact", &"x".repeat(5000)]), 2);
    let blank = dir.path().join("blank.png");
    image::GrayImage::from_pixel(64, 64, image::Luma([255])).save(&blank).unwrap();
    assert_eq!(fails(&bob, &["add-contact", "--qr-image", blank.to_str().unwrap()]), 2);
    let not_image = dir.path().join("notes.txt");
    std::fs::write(&not_image, "hello").unwrap();
    assert_eq!(fails(&bob, &["add-contact", "--qr-image", not_image.to_str().unwrap()]), 2);
    let fresh = ok(&alice, &["reset-contact-code"])[0]["uri"].as_str().unwrap().to_owned();
    refused(&alice, &["add-contact", &fresh], "own contact code");
    // Nothing of this made a contact or a room.
    assert!(ok(&bob, &["contacts"]).is_empty());
    assert!(ok(&bob, &["rooms"]).is_empty());

    // Find by exact username only.
    assert_eq!(ok(&bob, &["find-user", "alice"])[0]["user"], "alice");
    assert_eq!(fails(&bob, &["find-user", "ali"]), 1);
}

#[test]
fn a_new_device_links_from_a_picture_of_the_code_another_device_shows() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("server"));
    let (laptop, phone, bob) =
        (dir.path().join("laptop"), dir.path().join("phone"), dir.path().join("bob"));
    signup(&server.url, &laptop, "alice");
    signup(&server.url, &bob, "bob");
    let contact = ok(&laptop, &["contact-code"])[0]["uri"].as_str().unwrap().to_owned();
    let bob_room = ok(&bob, &["add-contact", &contact])[0]["room"].as_str().unwrap().to_owned();
    ok(&bob, &["send", &bob_room, "before the phone"]);
    ok(&bob, &["sync"]);

    // The laptop shows a link code; zbar reads what we drew.
    let png = dir.path().join("link.png");
    let shown = ok(&laptop, &["link-code", "--png", png.to_str().unwrap()]);
    let uri = shown[0]["uri"].as_str().unwrap().to_owned();
    assert!(uri.starts_with("tidings:link?v=1&server="), "{uri}");
    assert!(shown[0]["expires_ms"].as_i64().unwrap() > 0);
    let zbar = Command::new("zbarimg").args(["--raw", "-q"]).arg(&png).output().unwrap();
    assert_eq!(String::from_utf8(zbar.stdout).unwrap().trim(), uri);

    // The phone links from the picture: Alice's account, a device of its own, no password.
    let linked = ok(&phone, &["link", "--qr-image", png.to_str().unwrap()]);
    let whoami = ok(&laptop, &["whoami"]);
    assert_eq!(linked[0]["username"], "alice");
    assert_eq!(linked[0]["user"], whoami[0]["user"]);
    assert_ne!(linked[0]["device"], whoami[0]["device"]);

    // It reads what Bob writes next, with the laptop and Bob offline meanwhile.
    ok(&phone, &["sync"]);
    ok(&bob, &["send", &bob_room, "to both of alice's devices"]);
    ok(&bob, &["sync"]);
    ok(&phone, &["sync"]);
    let rooms = ok(&phone, &["rooms"]);
    let room = rooms[0]["room"].as_str().unwrap();
    let texts: Vec<String> = ok(&phone, &["messages", room])
        .iter()
        .filter_map(|m| m["text"].as_str().map(str::to_owned))
        .collect();
    assert!(texts.contains(&"to both of alice's devices".to_owned()), "{texts:?}");

    // The phone carries Alice's identity: the security code Bob compares with hers is the
    // same on both her devices, 60 digits in twelve groups of five, and offline.
    let code = |profile: &Path, with: &str| {
        let shown = ok(profile, &["security-code", with]);
        assert_eq!(shown[0]["user"], with);
        shown[0]["code"].as_str().unwrap().to_owned()
    };
    ok(&laptop, &["sync"]);
    let at_bob = code(&bob, "alice");
    assert_eq!(at_bob.len(), 71, "{at_bob}");
    assert!(at_bob.split(' ').all(|g| g.len() == 5 && g.bytes().all(|b| b.is_ascii_digit())));
    assert_eq!(code(&laptop, "bob"), at_bob);
    assert_eq!(code(&phone, "bob"), at_bob);
    refused(&bob, &["security-code", "carol"], "no encrypted chat with carol");

    // The code worked once; a contact code is not a link code.
    let third = dir.path().join("third");
    refused(&third, &["link", &uri], "unknown, used or expired");
    assert_eq!(fails(&third, &["link", &contact]), 2);
    assert_eq!(fails(&third, &["whoami"]), 1, "not signed in");
}

/// The texts of a room's timeline, oldest first.
fn texts(profile: &Path, room: &str) -> Vec<String> {
    ok(profile, &["messages", room])
        .iter()
        .filter_map(|m| m["text"].as_str().map(str::to_owned))
        .collect()
}

/// How far `profile` trusts contact `with`'s key, as `tidings contacts` lists it.
fn trust(profile: &Path, with: &str) -> String {
    let contacts = ok(profile, &["contacts"]);
    let contact = contacts.iter().find(|c| c["user"] == with).expect("a contact");
    contact["trust"].as_str().unwrap().to_owned()
}

#[test]
fn one_scan_verifies_both_ways_and_a_key_the_code_does_not_name_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("server"));
    let [alice, bob, bob_phone, carol, alice_new] =
        ["alice", "bob", "bob-phone", "carol", "alice-new"].map(|p| dir.path().join(p));
    signup(&server.url, &alice, "alice");
    signup(&server.url, &bob, "bob");
    signup(&server.url, &carol, "carol");
    let link = ok(&bob, &["link-code"])[0]["uri"].as_str().unwrap().to_owned();
    ok(&bob_phone, &["link", &link]);

    // Bob scans Alice's QR code: added and verified on his side at once…
    let png = dir.path().join("alice.png");
    let uri = ok(&alice, &["contact-code", "--png", png.to_str().unwrap()])[0]["uri"]
        .as_str()
        .unwrap()
        .to_owned();
    let added = ok(&bob, &["add-contact", "--qr-image", png.to_str().unwrap()]);
    assert_eq!(added[0]["verified"], true, "{added:?}");
    assert_eq!(trust(&bob, "alice"), "verified");
    let bob_room = added[0]["room"].as_str().unwrap().to_owned();
    assert!(texts(&bob, &bob_room).contains(&"security: alice is verified".to_owned()));
    // … and on Alice's, from his proof, with no scan of hers; on his phone too.
    ok(&alice, &["sync"]);
    assert_eq!(trust(&alice, "bob"), "verified");
    let alice_room = ok(&alice, &["rooms"])[0]["room"].as_str().unwrap().to_owned();
    assert!(texts(&alice, &alice_room).contains(&"security: bob is verified".to_owned()));
    ok(&bob_phone, &["sync"]);
    assert_eq!(trust(&bob_phone, "alice"), "verified");
    // The proof itself shows nowhere.
    assert!(!texts(&alice, &alice_room).iter().any(|t| t.is_empty()), "no empty message");
    // A new device of Bob's, certified by his identity (linked), changes nothing for Alice.
    let tablet = dir.path().join("bob-tablet");
    ok(&tablet, &["link", ok(&bob, &["link-code"])[0]["uri"].as_str().unwrap()]);
    ok(&tablet, &["sync"]);
    ok(&tablet, &["send", ok(&tablet, &["rooms"])[0]["room"].as_str().unwrap(), "tablet"]);
    ok(&tablet, &["sync"]);
    ok(&alice, &["sync"]);
    assert!(texts(&alice, &alice_room).contains(&"tablet".to_owned()));
    assert_eq!(trust(&alice, "bob"), "verified");
    assert!(!texts(&alice, &alice_room).iter().any(|t| t.contains("security code changed")));

    // A code v1 (no fingerprint) still adds, unverified.
    let v1 = uri.split("&fp=").next().unwrap().replace("v=2", "v=1");
    let pin = uri.split("&pin=").nth(1).map(|p| format!("&pin={p}")).unwrap_or_default();
    let added = ok(&carol, &["add-contact", &format!("{v1}{pin}")]);
    assert_eq!(added[0]["verified"], false);
    assert_eq!(trust(&carol, "alice"), "unverified");
    let carol_room = added[0]["room"].as_str().unwrap().to_owned();
    ok(&carol, &["send", &carol_room, "hi alice"]);
    ok(&carol, &["sync"]);

    // A device for Alice that her identity did not certify (here: a sign-in with her password
    // alone, which makes a new identity). While her first device is there too, Erin's scan
    // adds her, unverified. Once it is the only one (her first device signed out: what a
    // server that swaps keys shows), Dora's scan fails: no key of hers is the code's.
    let args = ["login", "--server", &server.url, "--username", "alice", "--password-stdin"];
    assert_eq!(exec(&alice_new, &args, "correct horse battery\n").0, 0);
    let [dora, erin] = ["dora", "erin"].map(|p| dir.path().join(p));
    signup(&server.url, &dora, "dora");
    signup(&server.url, &erin, "erin");
    assert_eq!(ok(&erin, &["add-contact", &uri])[0]["verified"], false);
    assert_eq!(trust(&erin, "alice"), "unverified");
    ok(&alice, &["logout"]);
    refused(&dora, &["add-contact", &uri], "not the one in their code");
    assert_eq!(trust(&dora, "alice"), "changed");
    let dora_room = ok(&dora, &["rooms"])[0]["room"].as_str().unwrap().to_owned();
    refused(&dora, &["send", &dora_room, "hello?"], "security code changed");

    // Bob, who verified Alice, meets the new key when it joins their room: verification
    // dropped, a notice, sending held until he accepts it.
    ok(&alice_new, &["sync"]);
    ok(&alice_new, &["send", ok(&alice_new, &["rooms"])[0]["room"].as_str().unwrap(), "new me"]);
    ok(&bob, &["sync"]);
    assert_eq!(trust(&bob, "alice"), "changed");
    assert!(texts(&bob, &bob_room).contains(&"security: alice's security code changed".to_owned()));
    refused(&bob, &["send", &bob_room, "is it you?"], "alice's security code changed");
    // Carol, who never verified her, gets the notice too, and writes on.
    ok(&carol, &["sync"]);
    assert_eq!(trust(&carol, "alice"), "unverified");
    let notice = "security: alice's security code changed".to_owned();
    assert!(texts(&carol, &carol_room).contains(&notice));
    ok(&carol, &["send", &carol_room, "still here"]);
    ok(&bob, &["accept-key", "alice"]);
    assert_eq!(trust(&bob, "alice"), "unverified");
    ok(&bob, &["send", &bob_room, "accepted"]);

    // Scanning the security code on her new device's screen verifies her again.
    let shown = dir.path().join("verify.png");
    let mine = ok(&alice_new, &["security-code", "bob", "--png", shown.to_str().unwrap()]);
    ok(&bob, &["verify", "alice", "--qr-image", shown.to_str().unwrap()]);
    assert_eq!(trust(&bob, "alice"), "verified");
    assert_eq!(ok(&bob, &["security-code", "alice"])[0]["code"], mine[0]["code"]);
    // Carol's screen is not Alice's: refused, and nothing changes.
    let carols = dir.path().join("carol.png");
    ok(&carol, &["security-code", "alice", "--png", carols.to_str().unwrap()]);
    refused(
        &bob,
        &["verify", "alice", "--qr-image", carols.to_str().unwrap()],
        "not the security code",
    );
    assert_eq!(trust(&bob, "alice"), "verified");
}
