//! One live connection: while a sync session is up, requests and typing go over it, and a
//! conversation's turns need no catch-up. Counted on the real server (in process, on a
//! loopback port) through its `/metrics`.

use std::time::Duration;

use tidings_core::{endpoint::Endpoint, sync, Client, ConnectionState, Event, RoomKey};
use tidings_proto::RoomKind;
use tidings_testkit::TestServer;

const PASSWORD: &str = "correct horse battery";
const WAIT: Duration = Duration::from_secs(10);

/// Signs `name` up in a fresh profile.
async fn user(server: &TestServer, name: &str) -> anyhow::Result<(Client, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let client = Client::open(dir.path())?;
    client.sessions().sign_up(&Endpoint::parse(&server.http_url())?, name, PASSWORD).await?;
    Ok((client, dir))
}

/// Runs `client`'s live session in the background until it says it is online.
async fn go_live(client: &Client) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let mut events = client.subscribe();
    let live = client.clone();
    let task = tokio::spawn(async move {
        sync::run(&live).await;
    });
    tokio::time::timeout(WAIT, async {
        while let Some(e) = events.recv().await {
            if matches!(e, Event::Connection { state: ConnectionState::Online }) {
                return;
            }
        }
    })
    .await?;
    Ok(task)
}

/// Waits until `room`'s timeline on `client` shows `text` with its seq.
async fn arrives(client: &Client, room: RoomKey, text: &str) -> anyhow::Result<()> {
    tokio::time::timeout(WAIT, async {
        loop {
            let page = client.room(room).timeline().page(None, 20).await?;
            if page.iter().any(|m| m.text == text && m.seq.is_some()) {
                return anyhow::Ok(());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await?
}

#[tokio::test]
async fn typing_and_requests_go_over_the_live_session_without_new_connections() -> anyhow::Result<()>
{
    // Typing at the app's pace (one notice every 3 s for 60 s) is 20 notices; the server's
    // typing rate is raised so they can be sent 100 ms apart here.
    let server = TestServer::start_with(|c| {
        c.typing_rate.per_second = 100.0;
        c.typing_rate.burst = 100.0;
    })
    .await?;
    let (ann, _a) = user(&server, "ann").await?;
    let (bob, _b) = user(&server, "bob").await?;
    let bob_id = ann.contacts().lookup("bob").await?;
    let room = ann.rooms().create(RoomKind::Direct, None, vec![bob_id]).await?;
    sync::sync_until_idle(&ann).await?;
    sync::sync_until_idle(&bob).await?;
    let bobs_room = bob.rooms().list().await?[0].room;
    let (cy, _c) = user(&server, "cyd").await?;
    let cys_code = cy.contacts().code(false, None).await?;
    let ann_live = go_live(&ann).await?;
    let bob_live = go_live(&bob).await?;
    let mut bobs_events = bob.subscribe();
    let connections = server.handled("hello").await?;

    for _ in 0..20 {
        ann.room(room).typing(true).await?;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let heard = tokio::time::timeout(WAIT, async {
        while let Some(e) = bobs_events.recv().await {
            if matches!(e, Event::Typing { room, active: true, .. } if room == bobs_room) {
                return true;
            }
        }
        false
    })
    .await?;
    assert!(heard, "bob sees ann typing");
    assert_eq!(ann.contacts().lookup("bob").await?, bob_id);
    assert_eq!(ann.sessions().devices().await?.len(), 1);
    let code = bob.contacts().code(false, None).await?;
    assert_eq!(ann.contacts().add(&code).await?, (bob_id, room), "the direct room we had");
    // A new contact: the server makes our room, and the live session brings it (the server
    // pushes it to everyone but the connection that asked).
    let (_, with_cy) = ann.contacts().add(&cys_code).await?;
    let rooms = ann.rooms().list().await?;
    let made = rooms.iter().find(|r| r.room == with_cy).expect("the new room is listed");
    assert!(made.direct && made.member && made.name == "cyd", "{made:?}");
    assert_eq!(ann.contacts().list().await?.len(), 2);
    assert_eq!(
        server.handled("hello").await?,
        connections,
        "typing, lookups, devices, contact codes and contacts went over the live session"
    );

    // With no live session, a request opens a connection of its own (the count works).
    ann_live.abort();
    let _ = ann_live.await;
    assert_eq!(ann.contacts().lookup("bob").await?, bob_id);
    assert_eq!(server.handled("hello").await?, connections + 1);
    bob_live.abort();
    Ok(())
}

#[tokio::test]
async fn a_conversation_needs_no_catch_up_after_my_own_messages() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let (ann, _a) = user(&server, "ann").await?;
    let (bob, _b) = user(&server, "bob").await?;
    let bob_id = ann.contacts().lookup("bob").await?;
    let room = ann.rooms().create(RoomKind::Direct, None, vec![bob_id]).await?;
    ann.room(room).send_queue().send_text("hi bob").await?;
    sync::sync_until_idle(&ann).await?;
    sync::sync_until_idle(&bob).await?;
    let bobs_room = bob.rooms().list().await?[0].room;
    bob.room(bobs_room).accept().await?;
    sync::sync_until_idle(&bob).await?;
    let ann_live = go_live(&ann).await?;
    let bob_live = go_live(&bob).await?;
    let catch_ups = server.handled("catch_up").await?;

    for turn in 0..5 {
        let from_ann = format!("ann {turn}");
        ann.room(room).send_queue().send_text(&from_ann).await?;
        arrives(&bob, bobs_room, &from_ann).await?;
        let from_bob = format!("bob {turn}");
        bob.room(bobs_room).send_queue().send_text(&from_bob).await?;
        arrives(&ann, room, &from_bob).await?;
    }
    assert_eq!(
        server.handled("catch_up").await?,
        catch_ups,
        "each message arrived as a push, none as a gap to catch up"
    );
    let mine = ann.room(room).timeline().page(None, 20).await?;
    let order: Vec<&str> = mine.iter().rev().map(|m| m.text.as_str()).collect();
    assert_eq!(order.last(), Some(&"bob 4"), "{order:?}");
    ann_live.abort();
    bob_live.abort();
    Ok(())
}
