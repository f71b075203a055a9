//! Devices, sign-out and read-by through the core's public API, against the real server
//! (in process, on a loopback port) and real profile databases.

use tidings_core::{endpoint::Endpoint, sync, Client, Error};
use tidings_proto::{ErrorCode, RoomKind};
use tidings_testkit::TestServer;

const PASSWORD: &str = "correct horse battery";

async fn profile(dir: &tempfile::TempDir) -> anyhow::Result<Client> {
    Ok(Client::open(dir.path())?)
}

#[tokio::test]
async fn a_revoked_device_is_refused_and_signing_out_forgets_it() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let url = Endpoint::parse(&server.http_url())?;
    let (a_dir, b_dir) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let (laptop, phone) = (profile(&a_dir).await?, profile(&b_dir).await?);
    laptop.sessions().sign_up(&url, "ann", PASSWORD).await?;
    phone.sessions().sign_in(&url, "ann", PASSWORD).await?;

    let devices = laptop.sessions().devices().await?;
    assert_eq!(devices.len(), 2);
    assert_eq!(devices.iter().filter(|d| d.current).count(), 1, "exactly one is this device");
    let other = devices.iter().find(|d| !d.current).map(|d| d.id).expect("the phone");

    laptop.sessions().revoke(other).await?;
    let refused = sync::sync_until_idle(&phone).await;
    assert!(
        matches!(&refused, Err(Error::Server(e)) if e.code == ErrorCode::Unauthenticated),
        "{refused:?}"
    );
    // The server no longer knows the session: signing out just forgets it here.
    phone.sessions().sign_out().await?;
    assert!(phone.account().await?.is_none());
    assert_eq!(laptop.sessions().devices().await?.len(), 1);
    Ok(())
}

#[tokio::test]
async fn read_by_tells_who_in_a_group_has_read_a_message() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let url = Endpoint::parse(&server.http_url())?;
    let dirs = [tempfile::tempdir()?, tempfile::tempdir()?, tempfile::tempdir()?];
    let ann = profile(&dirs[0]).await?;
    let bob = profile(&dirs[1]).await?;
    let cy = profile(&dirs[2]).await?;
    ann.sessions().sign_up(&url, "ann", PASSWORD).await?;
    bob.sessions().sign_up(&url, "bob", PASSWORD).await?;
    cy.sessions().sign_up(&url, "cyd", PASSWORD).await?;
    let members = vec![ann.contacts().lookup("bob").await?, ann.contacts().lookup("cyd").await?];
    let room = ann.rooms().create(RoomKind::Group, Some("trip"), members).await?;
    ann.room(room).send_queue().send_text("Train at 9").await?;
    sync::sync_until_idle(&ann).await?;

    // Bob gets it and reads it; Cyd's device has not been online since.
    sync::sync_until_idle(&bob).await?;
    let bobs_room = bob.rooms().list().await?.first().map(|r| r.room).expect("bob has the room");
    bob.room(bobs_room).mark_read().await?;
    sync::sync_until_idle(&bob).await?;

    sync::sync_until_idle(&ann).await?;
    let sent = ann.room(room).timeline().page(None, 10).await?;
    let seq = sent.iter().find(|m| m.text == "Train at 9").and_then(|m| m.seq).expect("sent");
    let receipts = ann.room(room).read_by(seq).await?;
    let view: Vec<(&str, bool, bool)> =
        receipts.iter().map(|r| (r.username.as_str(), r.delivered, r.read)).collect();
    assert_eq!(view, vec![("bob", true, true), ("cyd", false, false)]);
    Ok(())
}

/// Every event that arrives within a moment of each other, after `during` ran.
async fn events_during(
    client: &Client,
    during: impl std::future::Future<Output = Result<(), Error>>,
) -> anyhow::Result<Vec<tidings_core::Event>> {
    let mut sub = client.subscribe();
    during.await?;
    let mut seen = Vec::new();
    while let Ok(Some(e)) =
        tokio::time::timeout(std::time::Duration::from_millis(100), sub.recv()).await
    {
        seen.push(e);
    }
    Ok(seen)
}

#[tokio::test]
async fn an_open_chat_hears_when_its_message_is_confirmed_or_refused() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let url = Endpoint::parse(&server.http_url())?;
    let dir = tempfile::tempdir()?;
    let ann = profile(&dir).await?;
    ann.sessions().sign_up(&url, "ann", PASSWORD).await?;
    let room = ann.rooms().create(RoomKind::Group, Some("notes"), Vec::new()).await?;
    sync::sync_until_idle(&ann).await?;
    let timeline = |events: &[tidings_core::Event]| {
        events
            .iter()
            .any(|e| matches!(e, tidings_core::Event::TimelineChanged { room: r } if *r == room))
    };

    // A message the server takes: its clock turns into a tick, so the chat must reload.
    ann.room(room).send_queue().send_text("kept").await?;
    let confirmed = events_during(&ann, sync::sync_until_idle(&ann)).await?;
    assert!(timeline(&confirmed), "{confirmed:?}");

    // One it refuses for good (queued after leaving): the failed bubble and its Retry.
    ann.room(room).leave().await?;
    ann.room(room).send_queue().send_text("too late").await?;
    let refused = events_during(&ann, sync::sync_until_idle(&ann)).await?;
    let outbox = ann.send_queue().items().await?;
    assert_eq!(outbox.len(), 1, "{outbox:?}");
    assert_eq!(outbox[0].state, "failed");
    assert_eq!(outbox[0].reason, Some(ErrorCode::Forbidden), "a typed reason the UI words");
    assert!(timeline(&refused), "{refused:?}");
    Ok(())
}
