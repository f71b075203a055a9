//! STUN/TURN servers for calls, with short-lived TURN credentials.
//!
//! Tidings does not relay media itself: a TURN server (coturn) does, configured with
//! `use-auth-secret` and the same `static-auth-secret` as this server. A signed-in client
//! asks for the servers before a call and gets credentials in coturn's REST-API scheme:
//! the username is `<expiry unix time>:<user id>` and the password is
//! `base64(HMAC-SHA1(secret, username))`. coturn recomputes the HMAC and refuses expired
//! usernames, so nothing is shared between the two servers but the secret, and a leaked
//! credential stops working at its expiry.
//!
//! A TURN server is an open relay to whoever holds credentials, and sign-up is open, so
//! credentials are short-lived (10 minutes by default: coturn checks them when an
//! allocation is made and keeps the allocation for the call) and issued only **around a
//! call**: to a user who sent or received an Inquire, or sent a Grant, in the last two
//! minutes ([`CallWindows`]). Anyone else gets the STUN servers only, with `ttl_s` 0.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use tidings_proto::{
    bounded::{List, Text},
    IceServer, Reply, UserId,
};

use crate::{config::Config, error::OpError};

/// The TURN username and password for `user`, valid until `expires` (Unix seconds).
pub fn credentials(secret: &str, user: UserId, expires: u64) -> (String, String) {
    let username = format!("{expires}:{}", user.0);
    // HMAC accepts keys of any length; this cannot fail.
    let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(username.as_bytes());
    let password = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    (username, password)
}

/// Users who are setting up or in a call, and until when they may get TURN credentials.
#[derive(Debug)]
pub struct CallWindows {
    window: Duration,
    open: Mutex<HashMap<UserId, Instant>>,
}

/// Past this many users with windows open, closed windows are swept on the next opening.
const SWEEP_AT: usize = 10_000;

impl CallWindows {
    /// Windows that stay open `window` after their last opening.
    pub fn new(window: Duration) -> Self {
        Self { window, open: Mutex::new(HashMap::new()) }
    }

    /// `user` is calling or being called at `now`.
    pub fn open(&self, user: UserId, now: Instant) {
        let Ok(mut open) = self.open.lock() else { return };
        if open.len() >= SWEEP_AT {
            open.retain(|_, until| *until > now);
        }
        open.insert(user, now + self.window);
    }

    /// Whether `user` is in a call window at `now`.
    pub fn is_open(&self, user: UserId, now: Instant) -> bool {
        self.open.lock().is_ok_and(|open| open.get(&user).is_some_and(|until| *until > now))
    }
}

/// The answer to IceServers for `user`: STUN servers as configured, and TURN servers with
/// fresh credentials when a secret is configured and `in_call` (without a secret they are
/// left out: webrtc clients refuse TURN URLs without credentials). `ttl_s` is 0 when no
/// credentials were issued, so that the client does not keep the answer.
pub fn ice_servers(config: &Config, user: UserId, in_call: bool) -> Result<Reply, OpError> {
    let text = |s: &str| {
        Text::new(s.to_owned()).map_err(|e| OpError::internal(format!("ICE configuration: {e}")))
    };
    let urls = |urls: &[String]| -> Result<_, OpError> {
        let urls = urls.iter().map(|u| text(u)).collect::<Result<Vec<_>, _>>()?;
        List::new(urls).map_err(|e| OpError::internal(format!("ICE configuration: {e}")))
    };
    let mut servers = Vec::new();
    if !config.stun_urls.is_empty() {
        servers.push(IceServer {
            urls: urls(&config.stun_urls)?,
            username: text("")?,
            credential: text("")?,
        });
    }
    let turn = config.turn_secret.as_ref().filter(|_| in_call && !config.turn_urls.is_empty());
    if let Some(secret) = turn {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        let expires = (now + config.turn_ttl).as_secs();
        let (username, password) = credentials(&secret.0, user, expires);
        servers.push(IceServer {
            urls: urls(&config.turn_urls)?,
            username: text(&username)?,
            credential: text(&password)?,
        });
    }
    let servers =
        List::new(servers).map_err(|e| OpError::internal(format!("ICE configuration: {e}")))?;
    let ttl_s = if turn.is_some() { config.turn_ttl.as_secs().min(u64::from(u32::MAX)) } else { 0 };
    Ok(Reply::IceServers { servers, ttl_s: ttl_s as u32 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_follow_the_rest_api_scheme() {
        // Reference value computed independently:
        // printf '%s' '1700000000:42' | openssl dgst -sha1 -hmac 'north' -binary | base64
        let (user, pass) = credentials("north", UserId(42), 1_700_000_000);
        assert_eq!(user, "1700000000:42");
        assert_eq!(pass, "DWX3FI7DiPIpadEYQAZsnZBAagI=");
    }

    #[test]
    fn turn_servers_are_handed_out_only_with_a_secret() {
        let mut config = Config::new(([127, 0, 0, 1], 0).into(), "unused".into());
        config.stun_urls = vec!["stun:stun.example:3478".into()];
        config.turn_urls = vec!["turn:turn.example:3478?transport=udp".into()];
        let Reply::IceServers { servers, .. } = ice_servers(&config, UserId(7), true).unwrap()
        else {
            panic!("not an IceServers reply")
        };
        let servers = servers.into_vec();
        assert_eq!(servers.len(), 1, "STUN only without a secret");
        assert!(servers[0].username.as_str().is_empty());

        config.turn_secret = Some(crate::config::Secret("north".into()));
        let Reply::IceServers { servers, ttl_s } = ice_servers(&config, UserId(7), false).unwrap()
        else {
            panic!("not an IceServers reply")
        };
        assert_eq!((servers.len(), ttl_s), (1, 0), "STUN only outside a call");
        let Reply::IceServers { servers, ttl_s } = ice_servers(&config, UserId(7), true).unwrap()
        else {
            panic!("not an IceServers reply")
        };
        let turn = &servers.into_vec()[1];
        let (expires, user) = turn.username.as_str().split_once(':').unwrap();
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let expires: u64 = expires.parse().unwrap();
        assert_eq!(user, "7");
        assert!(expires > now && expires <= now + u64::from(ttl_s) + 1);
        let (_, password) = credentials("north", UserId(7), expires);
        assert_eq!(turn.credential.as_str(), password);
        assert!(ttl_s <= 15 * 60, "TURN credentials last minutes, not hours: {ttl_s} s");
    }

    #[test]
    fn a_call_window_closes_after_its_length() {
        let windows = CallWindows::new(Duration::from_secs(120));
        let t0 = Instant::now();
        assert!(!windows.is_open(UserId(1), t0));
        windows.open(UserId(1), t0);
        assert!(windows.is_open(UserId(1), t0 + Duration::from_secs(119)));
        assert!(!windows.is_open(UserId(1), t0 + Duration::from_secs(120)));
        assert!(!windows.is_open(UserId(2), t0));
    }
}
