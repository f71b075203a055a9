//! The client engine over TLS, against the real server in process: a self-signed server
//! trusted by its pinned fingerprint (sign-up, messages and a photo's upload and download
//! all over TLS), and the refusals — a wrong pin, no pin for a self-signed certificate, a
//! fall back to plain http on a profile that used TLS — as typed errors, with nothing sent.

use tidings_core::{
    endpoint::{AddressError, Endpoint, Pin, TlsFailure},
    sync, Client, Error,
};
use tidings_proto::RoomKind;
use tidings_server::tls::TlsSource;
use tidings_testkit::TestServer;

const PASSWORD: &str = "correct horse battery";

async fn self_signed() -> anyhow::Result<(TestServer, Pin)> {
    let server = TestServer::start_with(|c| c.tls = Some(TlsSource::SelfSigned)).await?;
    let pin = server.tls().expect("TLS is on").fingerprint().parse()?;
    Ok((server, pin))
}

#[tokio::test]
async fn a_pinned_self_signed_server_carries_messages_and_photos_over_tls() -> anyhow::Result<()> {
    let (server, pin) = self_signed().await?;
    let url = Endpoint::parse(&server.url())?.pinned(Some(pin));
    assert!(url.is_encrypted() && url.base().starts_with("https://"));
    let dirs = [tempfile::tempdir()?, tempfile::tempdir()?];
    let (ann, bob) = (Client::open(dirs[0].path())?, Client::open(dirs[1].path())?);
    let account = ann.sessions().sign_up(&url, "ann", PASSWORD).await?;
    assert_eq!(account.pin, Some(pin), "the profile keeps the pin");
    bob.sessions().sign_up(&url, "bob", PASSWORD).await?;
    let bob_id = ann.contacts().lookup("bob").await?;
    let room = ann.rooms().create(RoomKind::Direct, None, vec![bob_id]).await?;
    ann.room(room).send_queue().send_text("over TLS").await?;
    let photo = tidings_testkit::test_images()?.join("canon_sx60_3mp_orient6.jpg");
    ann.room(room).send_queue().send_image(&photo, "and a photo").await?;
    sync::sync_until_idle(&ann).await?;

    sync::sync_until_idle(&bob).await?;
    let bobs = bob.rooms().list().await?.first().map(|r| r.room).expect("bob has the room");
    let got = bob.room(bobs).timeline().page(None, 10).await?;
    assert!(got.iter().any(|m| m.text == "over TLS"), "{got:?}");
    let with_photo = got.iter().find(|m| m.image.is_some()).expect("the photo arrived");
    let full = bob.media().open_full(bobs, with_photo.seq.expect("sent")).await?;
    assert!(full.len() > 10_000, "the full photo came down over https");
    // The profile is its owner's only.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| -> std::io::Result<u32> {
            Ok(std::fs::metadata(p)?.permissions().mode() & 0o777)
        };
        assert_eq!(mode(dirs[1].path())?, 0o700);
        assert_eq!(mode(&dirs[1].path().join("tidings.sqlite"))?, 0o600);
    }
    // The token is a secret: never in Debug output.
    let shown = format!("{:?}", bob.account().await?.expect("signed in"));
    let token = bob.account().await?.expect("signed in").token;
    assert!(!shown.contains(&token), "{shown}");
    Ok(())
}

#[tokio::test]
async fn a_wrong_pin_or_no_pin_is_refused_before_the_password_is_sent() -> anyhow::Result<()> {
    let (server, pin) = self_signed().await?;
    let dir = tempfile::tempdir()?;
    let client = Client::open(dir.path())?;
    let wrong = Pin::of(b"some other certificate");
    let pinned_wrong = Endpoint::parse(&server.url())?.pinned(Some(wrong));
    match client.sessions().sign_up(&pinned_wrong, "ann", PASSWORD).await {
        Err(Error::Tls(TlsFailure::PinMismatch { found })) => assert_eq!(found, pin.to_string()),
        other => panic!("expected a pin mismatch, got {other:?}"),
    }
    // Without a pin a self-signed certificate is one nobody vouches for.
    let unpinned = Endpoint::parse(&server.url())?;
    match client.sessions().sign_up(&unpinned, "ann", PASSWORD).await {
        Err(Error::Tls(TlsFailure::UnknownIssuer)) => {}
        other => panic!("expected an unknown issuer, got {other:?}"),
    }
    assert!(client.account().await?.is_none(), "nothing was saved");
    // …and nothing reached the server: the name is still free.
    let right = Endpoint::parse(&server.url())?.pinned(Some(pin));
    client.sessions().sign_up(&right, "ann", PASSWORD).await?;
    Ok(())
}

#[tokio::test]
async fn a_profile_that_used_tls_never_signs_in_over_plain_http_again() -> anyhow::Result<()> {
    let (secure, pin) = self_signed().await?;
    let plain = TestServer::start().await?;
    let dir = tempfile::tempdir()?;
    let client = Client::open(dir.path())?;
    client
        .sessions()
        .sign_up(&Endpoint::parse(&secure.url())?.pinned(Some(pin)), "ann", PASSWORD)
        .await?;
    client.sessions().sign_out().await?;
    let downgrade =
        client.sessions().sign_up(&Endpoint::parse(&plain.url())?, "ann", PASSWORD).await;
    assert!(matches!(downgrade, Err(Error::Address(AddressError::Downgrade))), "{downgrade:?}");
    // A fresh profile may use a local plain server (the embedded default).
    let fresh_dir = tempfile::tempdir()?;
    let fresh = Client::open(fresh_dir.path())?;
    fresh.sessions().sign_up(&Endpoint::parse(&plain.url())?, "ann", PASSWORD).await?;
    Ok(())
}
