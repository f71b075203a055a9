//! Sessions: signing up, in and out, this account's devices and its password
//! ([`Client::sessions`]). What a sign-in yields is kept by [`crate::account`].

use tidings_proto::{bounded::Text, Credentials, Password, Reply, Request};

use crate::{
    account::Account,
    endpoint::Endpoint,
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
        self.open(server, request).await
    }

    /// Signs this profile in to an existing account (a new device session).
    pub async fn sign_in(
        &self,
        server: &Endpoint,
        username: &str,
        password: &str,
    ) -> Result<Account, Error> {
        let request = Request::SignIn(credentials(username, password)?);
        self.open(server, request).await
    }

    async fn open(&self, server: &Endpoint, request: Request) -> Result<Account, Error> {
        // A profile that used TLS never falls back to plain text (no one in between can talk
        // it into sending the password in the clear).
        if !server.is_encrypted() && self.client.used_tls().await? {
            return Err(crate::endpoint::AddressError::Downgrade.into());
        }
        let mut link = Link::connect(server).await?;
        let reply = link.request(request).await?.map_err(Error::Server)?;
        let Reply::Session { user, device, token } = reply else {
            return Err(unexpected(reply));
        };
        let account = Account {
            server: server.base(),
            pin: server.pin(),
            user_id: user.id.0,
            username: user.username.into_string(),
            device_id: device.0,
            token: token.0.into_string(),
        };
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
        device_name: Text::new(format!("tidings on {}", std::env::consts::OS)).map_err(invalid)?,
    })
}
