//! Sessions: signing up, in and out, this account's devices and its password
//! ([`Client::sessions`]). What a sign-in yields is kept by [`crate::account`].

use tidings_proto::{bounded::Text, Credentials, LinkBlob, LinkId, Password, Reply, Request};

use crate::{
    account::Account,
    e2ee,
    endpoint::Endpoint,
    history::{self, HistoryRef, HistorySize},
    link::{self, LinkCode, LinkOffer},
    model::{neutral_name, Device},
    sync::{self, link::Link, unexpected},
    Client, Error,
};

impl Client {
    /// Signing up, in and out; devices; the password.
    pub fn sessions(&self) -> Sessions<'_> {
        Sessions { client: self }
    }
}

/// See [`Client::sessions`].
#[derive(Debug, Clone, Copy)]
pub struct Sessions<'a> {
    client: &'a Client,
}

impl Sessions<'_> {
    /// Creates an account on `server` and signs this profile in to it.
    pub async fn sign_up(
        &self,
        server: &Endpoint,
        username: &str,
        password: &str,
    ) -> Result<Account, Error> {
        let request = Request::SignUp(credentials(username, password)?);
        self.open(server, request, None).await
    }

    /// Signs this profile in to an existing account (a new device session).
    pub async fn sign_in(
        &self,
        server: &Endpoint,
        username: &str,
        password: &str,
    ) -> Result<Account, Error> {
        let request = Request::SignIn(credentials(username, password)?);
        self.open(server, request, None).await
    }

    /// Signs this profile in as a new device of the account whose device shows `code` (a
    /// link code, scanned or pasted): no password, the account's identity received sealed,
    /// so my contacts' security codes stay as they were.
    pub async fn link(&self, code: &LinkCode) -> Result<Account, Error> {
        let pin = code.pin.as_deref().map(str::parse).transpose()?;
        let server = Endpoint::parse(&code.server)?.pinned(pin);
        let id = LinkId::new(link::offer_id(&code.secret))
            .map_err(|e| Error::Internal(e.to_string()))?;
        let request = Request::RedeemLink { id, device_name: device_name()? };
        self.open(&server, request, Some(code.secret)).await
    }

    /// Offers a session on my account to a new device: the code to show it (as a QR code),
    /// valid once, for the minutes the server allows. Showing a new code replaces the last.
    pub async fn offer_link(&self) -> Result<LinkOffer, Error> {
        self.offer(None).await
    }

    /// Like [`Self::offer_link`], sending the new device the history of my chats as this
    /// device has it ([`crate::history`]): caught up, then built, sealed and uploaded first
    /// (its size is in the offer; [`crate::history::History::size`] says at most how large
    /// before).
    pub async fn offer_link_with_history(&self) -> Result<LinkOffer, Error> {
        // What came in since the last sync goes too: the new device cannot open it either.
        sync::sync_until_idle(self.client).await?;
        let history = history::send(self.client).await?;
        self.offer(Some(history)).await
    }

    async fn offer(&self, history: Option<(HistoryRef, HistorySize)>) -> Result<LinkOffer, Error> {
        let account = self.client.require_account().await?;
        let secret: [u8; 32] = rand::random();
        let leaf = e2ee::LeafId { user: account.user_id, device: account.device_id };
        let (history, size) = history.unzip();
        let sealed = self
            .client
            .db(move |c| {
                // Keys made now if this device has none yet (its identity with them).
                e2ee::Device::for_session(c, leaf)?;
                let identity = e2ee::Identity::load(c, leaf.user)?.ok_or(Error::NotSignedIn)?;
                Ok::<_, Error>(link::seal(&secret, &identity, history.as_ref()))
            })
            .await?;
        let invalid = |e: tidings_proto::bounded::TooLong| Error::Internal(e.to_string());
        let id = LinkId::new(link::offer_id(&secret)).map_err(invalid)?;
        let sealed = LinkBlob::new(sealed).map_err(invalid)?;
        let reply = sync::request(self.client, Request::OfferLink { id, sealed }).await?;
        let Reply::LinkOffered { expires_ms } = reply else { return Err(unexpected(reply)) };
        let code = LinkCode {
            server: account.server,
            secret,
            // The new device trusts my server the way I do.
            pin: account.pin.map(|p| p.to_string()),
        };
        LinkCode::parse(&code.to_uri())?;
        Ok(LinkOffer { code, expires_ms, history: size })
    }

    /// Opens a session with `request` (a sign-up, a sign-in, or a link code's redemption,
    /// whose `secret` opens the identity handed over) and keeps it. A password makes a new
    /// identity; a link code brings the account's, and maybe a history archive to import
    /// once caught up ([`crate::history`]).
    async fn open(
        &self,
        server: &Endpoint,
        request: Request,
        secret: Option<[u8; 32]>,
    ) -> Result<Account, Error> {
        // A profile that used TLS never falls back to plain text (no one in between can talk
        // it into sending the password in the clear).
        if !server.is_encrypted() && self.client.used_tls().await? {
            return Err(crate::endpoint::AddressError::Downgrade.into());
        }
        let mut link = Link::connect(server).await?;
        let reply = link.request(request).await?.map_err(Error::Server)?;
        let (user, device, token, sealed) = match (reply, secret.is_some()) {
            (Reply::Session { user, device, token }, false) => (user, device, token, None),
            (Reply::Linked { user, device, token, sealed }, true) => {
                (user, device, token, Some(sealed))
            }
            (reply, _) => return Err(unexpected(reply)),
        };
        let account = Account {
            server: server.base(),
            pin: server.pin(),
            user_id: user.id.0,
            username: user.username.into_string(),
            device_id: device.0,
            token: token.0.into_string(),
        };
        let (identity, history) = match (sealed, secret) {
            (Some(sealed), Some(secret)) => {
                match link::open(&secret, sealed.as_bytes(), account.user_id) {
                    Ok(opened) => opened,
                    Err(e) => {
                        // Not my device's offer: the session it came with is not kept, and
                        // does not take one of the account's device places either.
                        if let Ok(mut link) = Link::joined(&account).await {
                            let _ = link.request(Request::SignOut {}).await;
                        }
                        return Err(e);
                    }
                }
            }
            _ => (e2ee::Identity::generate(account.user_id), None),
        };
        let user = account.user_id;
        self.client
            .db(move |c| {
                let tx = c.transaction()?;
                identity.store(&tx)?;
                match &history {
                    Some(history) => history::keep(&tx, user, history)?,
                    None => history::forget(&tx)?,
                }
                Ok(tx.commit()?)
            })
            .await?;
        self.client.save_account(account.clone()).await?;
        if let Err(e) = sync::publish_first_key_packages(self.client).await {
            tracing::debug!(error = %e, "First KeyPackages not published; the first sync will.");
        }
        Ok(account)
    }

    /// Signs this device out on the server and forgets the session here.
    /// A session the server no longer knows (revoked from another device) is simply
    /// forgotten.
    pub async fn sign_out(&self) -> Result<(), Error> {
        match sync::alone(self.client, Request::SignOut {}).await {
            Ok(_) => {}
            Err(Error::Server(e)) if e.code == tidings_proto::ErrorCode::Unauthenticated => {}
            Err(e) => return Err(e),
        }
        self.client.forget_account().await
    }

    /// Signs every device of mine out, this one too, and forgets the session here: what to
    /// do when a device is lost or the password may have leaked.
    pub async fn sign_out_everywhere(&self) -> Result<(), Error> {
        sync::alone(self.client, Request::SignOutEverywhere {}).await?;
        self.client.forget_account().await
    }

    /// Changes my password (needs the network). Every other device of mine is signed out;
    /// this one stays signed in.
    pub async fn change_password(&self, old: &str, new: &str) -> Result<(), Error> {
        let request = Request::ChangePassword { old: password(old)?, new: password(new)? };
        sync::request(self.client, request).await.map(|_| ())
    }

    /// My signed-in devices, every page of them (needs the network).
    pub async fn devices(&self) -> Result<Vec<Device>, Error> {
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let page = sync::request(self.client, Request::ListDevices { after }).await?;
            let Reply::Devices { devices, next } = page else { return Err(unexpected(page)) };
            all.extend(devices.into_vec().into_iter().map(|d| Device {
                id: d.id.0,
                name: neutral_name(d.name.into_string()),
                created_ms: d.created_ms,
                last_seen_ms: d.last_seen_ms,
                current: d.current,
            }));
            // Pages move forward by id; a server that does not is not followed round in
            // circles.
            match next {
                Some(n) if after.is_none_or(|a: tidings_proto::DeviceId| n.0 > a.0) => {
                    after = Some(n)
                }
                _ => return Ok(all),
            }
        }
    }

    /// Signs one of my other devices out (its connections close; it must sign in again).
    pub async fn revoke(&self, device: i64) -> Result<(), Error> {
        let request = Request::RevokeDevice { device: tidings_proto::DeviceId(device) };
        sync::request(self.client, request).await.map(|_| ())
    }
}

fn password(p: &str) -> Result<Password, Error> {
    Ok(Password(Text::new(p).map_err(|e| Error::Invalid(e.to_string()))?))
}

fn credentials(username: &str, password: &str) -> Result<Credentials, Error> {
    let invalid = |e: tidings_proto::bounded::TooLong| Error::Invalid(e.to_string());
    Ok(Credentials {
        username: Text::new(username).map_err(invalid)?,
        password: self::password(password)?,
        device_name: device_name()?,
    })
}

/// What this device is called in its account's device list.
fn device_name() -> Result<tidings_proto::Name, Error> {
    Text::new(format!("tidings on {}", std::env::consts::OS))
        .map_err(|e| Error::Invalid(e.to_string()))
}
