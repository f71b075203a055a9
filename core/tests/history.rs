//! History for a linked device (issue 17, item 5), through the real server on a loopback
//! port: Alice's laptop sends what it has with the link code; the new device shows the past
//! chats — texts, a group's name and a photo that opens — without, it does not; a tampered
//! archive is refused, typed, and nothing is lost.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is a failed test

use std::time::{Duration, Instant};

use tidings_core::{history::HistoryError, link::LinkOffer, model::RoomKey, Client, Error};
use tidings_proto::RoomKind;
use tidings_testkit::TestServer;

const CANNOT: &str = "(message this version cannot show)";

/// A client engine signed up as `name` and synced once.
async fn app_user(server: &TestServer, name: &str) -> (Client, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let app = Client::open(dir.path()).unwrap();
    let endpoint = tidings_core::endpoint::Endpoint::parse(&server.http_url()).unwrap();
    app.sessions().sign_up(&endpoint, name, "correct horse battery").await.unwrap();
    sync(&app).await;
    (app, dir)
}

async fn sync(app: &Client) {
    tidings_core::sync::sync_until_idle(app).await.unwrap();
}

/// A new device linked with `offer`'s code, caught up.
async fn linked(offer: &LinkOffer) -> (Client, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let app = Client::open(dir.path()).unwrap();
    app.sessions().link(&offer.code).await.unwrap();
    sync(&app).await;
    (app, dir)
}

/// `app`'s local room for server room `server_room`.
async fn room_of(app: &Client, server_room: i64) -> RoomKey {
    let rooms = app.rooms().list().await.unwrap();
    rooms.iter().find(|r| r.server_id == Some(server_room)).expect("the room").room
}

/// The texts of a room's timeline on `app`, oldest first.
async fn texts(app: &Client, server_room: i64) -> Vec<String> {
    let room = room_of(app, server_room).await;
    let page = app.room(room).timeline().page(None, 200).await.unwrap();
    page.into_iter().rev().map(|m| m.text).collect()
}

/// What the new device can show, as the laptop does: every room's timeline.
async fn timelines(app: &Client, rooms: &[i64]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for room in rooms {
        out.push(texts(app, *room).await);
    }
    out
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test]
async fn a_linked_device_shows_the_history_it_was_sent_and_only_then() {
    let server = TestServer::start().await.unwrap();
    let (laptop, _laptop_dir) = app_user(&server, "alice").await;
    let (bob, _bob_dir) = app_user(&server, "bob").await;
    let (carol, _carol_dir) = app_user(&server, "carol").await;

    // Alice writes in a direct room with Bob and in a group with Bob and Carol; they answer,
    // Bob with a photo.
    let bob_id = laptop.contacts().lookup("bob").await.unwrap();
    let carol_id = laptop.contacts().lookup("carol").await.unwrap();
    let direct = laptop.rooms().create(RoomKind::Direct, None, vec![bob_id]).await.unwrap();
    let group = laptop
        .rooms()
        .create(RoomKind::Group, Some("weekend plans"), vec![bob_id, carol_id])
        .await
        .unwrap();
    laptop.room(direct).send_queue().send_text("hi bob, from the laptop").await.unwrap();
    laptop.room(group).send_queue().send_text("who brings the tent?").await.unwrap();
    sync(&laptop).await;
    let rooms = [
        laptop.room(direct).server_id().await.unwrap().unwrap(),
        laptop.room(group).server_id().await.unwrap().unwrap(),
    ];
    sync(&bob).await;
    let photo = tidings_testkit::test_images().unwrap().join("canon_sx60_3mp_orient6.jpg");
    let bobs_direct = room_of(&bob, rooms[0]).await;
    bob.room(bobs_direct).send_queue().send_text("hello alice").await.unwrap();
    bob.room(bobs_direct).send_queue().send_image(&photo, "the lake").await.unwrap();
    let bobs_group = room_of(&bob, rooms[1]).await;
    bob.room(bobs_group).send_queue().send_text("I do").await.unwrap();
    sync(&bob).await;
    sync(&carol).await;
    let carols_group = room_of(&carol, rooms[1]).await;
    carol.room(carols_group).send_queue().send_text("and I the stove").await.unwrap();
    sync(&carol).await;
    sync(&laptop).await;
    let history = timelines(&laptop, &rooms).await;
    assert!(history[0].contains(&"the lake".to_owned()), "{history:?}");
    assert!(history[1].contains(&"and I the stove".to_owned()), "{history:?}");
    assert!(!history.concat().contains(&CANNOT.to_owned()), "{history:?}");

    // The size Alice is shown before choosing, then the archive: sealed, uploaded, and its
    // reference sealed in the code.
    let estimate = laptop.history().size().await.unwrap();
    assert_eq!(estimate.messages, 6);
    let started = Instant::now();
    let offer = laptop.sessions().offer_link_with_history().await.unwrap();
    let sent = offer.history.expect("history goes with the code");
    eprintln!(
        "archive of {} messages (a photo's thumbnail among them): {} bytes sealed (at most {} \
         shown before), built and uploaded in {:?}",
        sent.messages,
        sent.bytes,
        estimate.bytes,
        started.elapsed()
    );
    assert_eq!(sent.messages, 6);
    assert!(sent.bytes <= estimate.bytes);

    // The new phone links with it, catches up (reading nothing from before the link), and
    // imports the history: then it shows what the laptop shows.
    let (phone, _phone_dir) = linked(&offer).await;
    assert_eq!(phone.history().pending().await.unwrap(), Some(sent.bytes));
    let before = timelines(&phone, &rooms).await;
    assert!(before[1].contains(&CANNOT.to_owned()), "{before:?}");
    assert!(!before[1].contains(&"who brings the tent?".to_owned()), "{before:?}");
    let started = Instant::now();
    let imported = phone.history().import().await.unwrap().expect("an archive was pending");
    eprintln!("imported {} messages in {:?}", imported.messages, started.elapsed());
    assert!(imported.complete);
    assert_eq!(imported.messages, 6);
    assert!(imported.passed_over >= 1, "the group's naming, which the laptop passed over");
    assert_eq!(timelines(&phone, &rooms).await, history);
    let phone_group = room_of(&phone, rooms[1]).await;
    let names = phone.rooms().list().await.unwrap();
    let name = &names.iter().find(|r| r.room == phone_group).unwrap().name;
    assert_eq!(name, "weekend plans", "the name came with the history");
    // The photo opens: its key came in the archive, its bytes from the server.
    let phone_direct = room_of(&phone, rooms[0]).await;
    let page = phone.room(phone_direct).timeline().page(None, 50).await.unwrap();
    let with_photo = page.iter().find(|m| m.image.is_some()).expect("the photo");
    let seq = with_photo.seq.unwrap();
    let opened = phone.media().open_full(phone_direct, seq).await.unwrap();
    let laptops = laptop.media().open_full(direct, seq).await.unwrap();
    assert_eq!(opened, laptops);
    assert!(image::load_from_memory(&opened).is_ok());
    // Once is enough: nothing is pending, and a second import does nothing.
    assert_eq!(phone.history().pending().await.unwrap(), None);
    assert!(phone.history().import().await.unwrap().is_none());
    // And the phone reads and writes on as before.
    bob.room(bobs_group).send_queue().send_text("after the phone came").await.unwrap();
    sync(&bob).await;
    sync(&phone).await;
    assert!(texts(&phone, rooms[1]).await.contains(&"after the phone came".to_owned()));

    // A tablet linked without history reads only what comes after.
    let offer = laptop.sessions().offer_link().await.unwrap();
    assert!(offer.history.is_none());
    let (tablet, _tablet_dir) = linked(&offer).await;
    assert!(tablet.history().import().await.unwrap().is_none());
    bob.room(bobs_group).send_queue().send_text("after the tablet came").await.unwrap();
    sync(&bob).await;
    sync(&tablet).await;
    let tablet_group = texts(&tablet, rooms[1]).await;
    assert!(tablet_group.contains(&CANNOT.to_owned()), "{tablet_group:?}");
    assert!(!tablet_group.contains(&"who brings the tent?".to_owned()), "{tablet_group:?}");
    assert!(tablet_group.contains(&"after the tablet came".to_owned()), "{tablet_group:?}");

    // A desk computer linked with history, imported by the live session in the background.
    let offer = laptop.sessions().offer_link_with_history().await.unwrap();
    let (desk, _desk_dir) = linked(&offer).await;
    let live = tokio::spawn({
        let desk = desk.clone();
        async move { tidings_core::sync::run(&desk).await }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let shown = timelines(&desk, &rooms).await;
        if shown[1].contains(&"who brings the tent?".to_owned()) {
            assert!(!shown.concat().contains(&CANNOT.to_owned()), "{shown:?}");
            break;
        }
        assert!(Instant::now() < deadline, "the live session did not import: {shown:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    live.abort();
    assert_eq!(desk.history().pending().await.unwrap(), None);
}

#[tokio::test]
async fn a_tampered_archive_is_refused_and_nothing_is_lost() {
    let server = TestServer::start().await.unwrap();
    let (laptop, _laptop_dir) = app_user(&server, "alice").await;
    let (bob, _bob_dir) = app_user(&server, "bob").await;
    let bob_id = laptop.contacts().lookup("bob").await.unwrap();
    let direct = laptop.rooms().create(RoomKind::Direct, None, vec![bob_id]).await.unwrap();
    for i in 0..20 {
        laptop.room(direct).send_queue().send_text(&format!("note {i}")).await.unwrap();
    }
    sync(&laptop).await;
    let server_room = laptop.room(direct).server_id().await.unwrap().unwrap();

    let offer = laptop.sessions().offer_link_with_history().await.unwrap();
    let sent = offer.history.unwrap();
    // The server (or anyone with its disk) changes the archive it holds.
    let stored: Vec<_> = walk(server.data_dir())
        .into_iter()
        .filter(|p| std::fs::metadata(p).unwrap().len() == sent.bytes)
        .collect();
    assert_eq!(stored.len(), 1, "the sealed archive, {} bytes", sent.bytes);
    let mut bytes = std::fs::read(&stored[0]).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&stored[0], &bytes).unwrap();

    let (phone, phone_dir) = linked(&offer).await;
    let before = texts(&phone, server_room).await;
    assert_eq!(before.iter().filter(|t| *t == CANNOT).count(), 20, "{before:?}");
    match phone.history().import().await {
        Err(Error::History(HistoryError::Damaged)) => {}
        other => panic!("a changed archive was not refused: {other:?}"),
    }
    assert_eq!(texts(&phone, server_room).await, before, "nothing lost, nothing half-done");
    assert_eq!(phone.history().pending().await.unwrap(), None, "not downloaded again and again");
    let history_dir = phone_dir.path().join("history");
    assert_eq!(std::fs::read_dir(history_dir).unwrap().count(), 0, "nothing of it kept");
    // The phone goes on as any linked device.
    sync(&bob).await;
    let bobs = room_of(&bob, server_room).await;
    bob.room(bobs).send_queue().send_text("still here").await.unwrap();
    sync(&bob).await;
    sync(&phone).await;
    assert!(texts(&phone, server_room).await.contains(&"still here".to_owned()));
}
