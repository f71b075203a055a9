//! Linking a device by code (OfferLink / RedeemLink) and the cap on devices per account,
//! through the real server.

use std::time::Duration;

use sha2::{Digest, Sha256};
use tidings_proto::{bounded::Blob, ErrorCode, LinkId, Reply, Request};
use tidings_testkit::{request_id, text, Client, TestServer};

fn link_id() -> LinkId {
    Blob::new(Sha256::digest(request_id().to_string()).to_vec()).unwrap()
}

fn offer(id: &LinkId, sealed: &[u8]) -> Request {
    Request::OfferLink { id: id.clone(), sealed: Blob::new(sealed.to_vec()).unwrap() }
}

/// Redeems `id` on a new connection: the reply, or the error's code.
async fn redeem(url: &str, id: &LinkId) -> Result<Reply, ErrorCode> {
    let mut c = Client::connect_hello(url).await.unwrap();
    let request = Request::RedeemLink { id: id.clone(), device_name: text("new phone") };
    c.request(request).await.unwrap().map_err(|e| e.code)
}

#[tokio::test]
async fn a_link_offer_hands_its_sealed_payload_to_one_new_device_once() {
    let server = TestServer::start().await.unwrap();
    let url = server.ws_url();
    let mut alice = Client::sign_up(&url, "alice").await.unwrap();

    let short = Blob::new(vec![7; 31]).unwrap();
    let refused = alice.request(offer(&short, b"x")).await.unwrap().unwrap_err();
    assert_eq!(refused.code, ErrorCode::InvalidInput);

    let id = link_id();
    let Reply::LinkOffered { expires_ms } =
        alice.request(offer(&id, b"sealed")).await.unwrap().unwrap()
    else {
        panic!("no offer")
    };
    assert!(expires_ms > 0);
    let Ok(Reply::Linked { user, device, token, sealed }) = redeem(&url, &id).await else {
        panic!("not linked")
    };
    assert_eq!(user, alice.me().user);
    assert_ne!(device, alice.me().device);
    assert_eq!(sealed.as_bytes(), b"sealed");
    // The new session works like any other.
    let session = tidings_testkit::Session { user, device, token };
    let (_phone, joined) = Client::resume(&url, &session, &[], &[]).await.unwrap();
    assert!(joined.is_ok(), "{joined:?}");
    // Once only, and an id nobody offered is no better.
    assert_eq!(redeem(&url, &id).await.unwrap_err(), ErrorCode::InvalidLinkCode);
    assert_eq!(redeem(&url, &link_id()).await.unwrap_err(), ErrorCode::InvalidLinkCode);

    // A device has one open offer: a new one replaces the last.
    let (first, second) = (link_id(), link_id());
    alice.request(offer(&first, b"one")).await.unwrap().unwrap();
    alice.request(offer(&second, b"two")).await.unwrap().unwrap();
    assert_eq!(redeem(&url, &first).await.unwrap_err(), ErrorCode::InvalidLinkCode);

    // An offer dies with the device that made it.
    let mut laptop = Client::sign_in(&url, "alice").await.unwrap();
    let from_laptop = link_id();
    laptop.request(offer(&from_laptop, b"laptop")).await.unwrap().unwrap();
    let revoke = Request::RevokeDevice { device: laptop.me().device };
    alice.request(revoke).await.unwrap().unwrap();
    assert_eq!(redeem(&url, &from_laptop).await.unwrap_err(), ErrorCode::InvalidLinkCode);
    assert!(matches!(redeem(&url, &second).await, Ok(Reply::Linked { .. })));
}

#[tokio::test]
async fn a_link_offer_expires() {
    let server = TestServer::start_with(|c| c.link_ttl = Duration::from_millis(300)).await.unwrap();
    let url = server.ws_url();
    let mut alice = Client::sign_up(&url, "alice").await.unwrap();
    let id = link_id();
    alice.request(offer(&id, b"late")).await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(redeem(&url, &id).await.unwrap_err(), ErrorCode::InvalidLinkCode);
}

#[tokio::test]
async fn an_account_has_at_most_its_cap_of_devices() {
    let server = TestServer::start_with(|c| c.max_devices_per_user = 2).await.unwrap();
    let url = server.ws_url();
    let mut alice = Client::sign_up(&url, "alice").await.unwrap();
    let laptop = Client::sign_in(&url, "alice").await.unwrap();
    // At the cap: no sign-in, no offer, and an offer made before does not redeem.
    let mut c = Client::connect_hello(&url).await.unwrap();
    let sign_in = Request::SignIn(tidings_testkit::credentials("alice"));
    assert_eq!(
        c.request(sign_in.clone()).await.unwrap().unwrap_err().code,
        ErrorCode::TooManyDevices
    );
    let refused = alice.request(offer(&link_id(), b"x")).await.unwrap().unwrap_err();
    assert_eq!(refused.code, ErrorCode::TooManyDevices);
    // Signing one out makes room; other accounts were never affected.
    let revoke = Request::RevokeDevice { device: laptop.me().device };
    alice.request(revoke).await.unwrap().unwrap();
    let id = link_id();
    alice.request(offer(&id, b"x")).await.unwrap().unwrap();
    assert!(matches!(redeem(&url, &id).await, Ok(Reply::Linked { .. })));
    assert_eq!(c.request(sign_in).await.unwrap().unwrap_err().code, ErrorCode::TooManyDevices);
    Client::sign_up(&url, "bob").await.unwrap();
    Client::sign_in(&url, "bob").await.unwrap();
}
