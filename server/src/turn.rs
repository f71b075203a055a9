//! STUN/TURN servers for calls, with short-lived TURN credentials.
//!
//! Tidings does not relay media itself: a TURN server (coturn) does, configured with
//! `use-auth-secret` and the same `static-auth-secret` as this server. A signed-in client
//! asks for the servers before a call and gets credentials in coturn's REST-API scheme:
//! the username is `<expiry unix time>:<user id>` and the password is
//! `base64(HMAC-SHA1(secret, username))`. coturn recomputes the HMAC and refuses expired
//! usernames, so nothing is shared between the two servers but the secret, and a leaked
//! credential stops working at its expiry.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

/// The answer to IceServers for `user`: STUN servers as configured, TURN servers with fresh
/// credentials when a secret is configured (without one they are left out: webrtc clients
/// refuse TURN URLs without credentials).
pub fn ice_servers(config: &Config, user: UserId) -> Result<Reply, OpError> {
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
    if let (Some(secret), false) = (&config.turn_secret, config.turn_urls.is_empty()) {
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
    Ok(Reply::IceServers {
        servers,
        ttl_s: config.turn_ttl.as_secs().min(u64::from(u32::MAX)) as u32,
    })
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
        let Reply::IceServers { servers, .. } = ice_servers(&config, UserId(7)).unwrap() else {
            panic!("not an IceServers reply")
        };
        let servers = servers.into_vec();
        assert_eq!(servers.len(), 1, "STUN only without a secret");
        assert!(servers[0].username.as_str().is_empty());

        config.turn_secret = Some(crate::config::Secret("north".into()));
        let Reply::IceServers { servers, ttl_s } = ice_servers(&config, UserId(7)).unwrap() else {
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
    }
}
