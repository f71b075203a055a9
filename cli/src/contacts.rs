//! Contacts from scripts: show my contact code (text, PNG or SVG QR code), add a contact from
//! a code or a QR image, list contacts, find a user by exact username.

use std::{path::Path, time::Duration};

use serde_json::json;
use tidings_core::{
    contact::{self, ContactCode, VerifyCode},
    sync,
    verification::Trust,
    Client,
};

use crate::client::{parse_room, queued, Failure, Output, EXIT_USAGE};

pub(crate) fn write(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    std::fs::write(path, bytes)
        .map_err(|e| Failure { code: EXIT_USAGE, message: format!("{}: {e}", path.display()) })
}

/// Writes `code`'s QR code as PNG to `png` and as SVG to `svg`, each if asked.
pub(crate) fn write_qr(
    code: &impl contact::Code,
    png: Option<&Path>,
    svg: Option<&Path>,
) -> Result<(), Failure> {
    if let Some(path) = png {
        write(path, &contact::qr_png(code, 8))?;
    }
    if let Some(path) = svg {
        write(path, contact::qr_svg(code).as_bytes())?;
    }
    Ok(())
}

/// `contact-code` / `reset-contact-code`: prints the URI; writes the QR code if asked.
pub async fn contact_code(
    client: &Client,
    out: Output,
    reset: bool,
    minutes: Option<f64>,
    png: Option<&Path>,
    svg: Option<&Path>,
) -> Result<(), Failure> {
    let ttl = match minutes {
        Some(m) if m.is_finite() && m > 0.0 && m <= 60.0 * 24.0 * 365.0 => {
            Some(Duration::from_secs_f64((m * 60.0).max(1.0)))
        }
        Some(_) => {
            return Err(Failure {
                code: EXIT_USAGE,
                message: "minutes are > 0, at most a year".into(),
            })
        }
        None => None,
    };
    let code = client.contacts().code(reset, ttl).await?;
    write_qr(&code, png, svg)?;
    let uri = code.to_uri();
    out.line(json!({"uri": uri, "user": code.user, "server": code.server}), || uri.clone());
    Ok(())
}

/// `add-contact (URI | --qr-image FILE)`.
pub async fn add_contact(
    client: &Client,
    out: Output,
    uri: Option<&str>,
    qr_image: Option<&Path>,
) -> Result<(), Failure> {
    let code: ContactCode = read_code(uri, qr_image).await?;
    let (user, room) = client.contacts().add(&code).await?;
    let verified = client.contacts().trust(&code.user).await? == Trust::Verified;
    out.line(
        json!({"user": code.user, "user_id": user, "room": room.to_string(), "verified": verified}),
        || {
            let how = if verified { "added and verified" } else { "added (not verified)" };
            format!("{} {how}; room {room}", code.user)
        },
    );
    Ok(())
}

/// A code given as text or as a picture of its QR code (a contact code, a link code).
pub(crate) async fn read_code<C>(uri: Option<&str>, qr_image: Option<&Path>) -> Result<C, Failure>
where
    C: contact::Code + Send + 'static,
    tidings_core::Error: From<C::Error> + From<contact::ScanError<C::Error>>,
    C::Error: Send,
{
    match (uri, qr_image) {
        (Some(uri), None) => Ok(C::parse(uri).map_err(tidings_core::Error::from)?),
        (None, Some(path)) => {
            let too_big =
                std::fs::metadata(path).is_ok_and(|m| m.len() > contact::MAX_SCAN_FILE_BYTES);
            if too_big {
                let message = format!("{}: too large to be a picture of a code", path.display());
                return Err(Failure { code: EXIT_USAGE, message });
            }
            let bytes = std::fs::read(path).map_err(|e| Failure {
                code: EXIT_USAGE,
                message: format!("{}: {e}", path.display()),
            })?;
            Ok(tokio::task::spawn_blocking(move || contact::scan_for::<C>(&bytes))
                .await
                .map_err(|e| Failure { code: crate::client::EXIT_FAILURE, message: e.to_string() })?
                .map_err(tidings_core::Error::from)?)
        }
        _ => Err(Failure { code: EXIT_USAGE, message: "give a URI or --qr-image".into() }),
    }
}

/// `contacts`: with how far I trust each one's key.
pub async fn contacts(client: &Client, out: Output) -> Result<(), Failure> {
    for (username, id, room) in client.contacts().list().await? {
        let trust = client.contacts().trust(&username).await?;
        let value = serde_json::to_value(trust).unwrap_or_default();
        out.line(
            json!({"user": username, "user_id": id, "server_room": room, "trust": value}),
            || match trust {
                Trust::Unverified => username.clone(),
                Trust::Verified => format!("{username} (verified)"),
                Trust::Changed => format!("{username} (security code changed)"),
            },
        );
    }
    Ok(())
}

/// `security-code USERNAME [--png F] [--svg F]`: the 60 digits I share with them, in groups
/// of five, and whether they are verified; the QR code for them to scan, if asked.
pub async fn security_code(
    client: &Client,
    out: Output,
    username: &str,
    png: Option<&Path>,
    svg: Option<&Path>,
) -> Result<(), Failure> {
    let code = client.contacts().security_code(username).await?;
    if png.is_some() || svg.is_some() {
        write_qr(&client.contacts().verify_code(username).await?, png, svg)?;
    }
    let trust = client.contacts().trust(username).await?;
    let state = serde_json::to_value(trust).unwrap_or_default();
    out.line(json!({"user": username, "code": code.grouped(), "trust": state}), || code.grouped());
    Ok(())
}

/// `verify USERNAME (URI | --qr-image FILE)`: verifies them by the security code their screen
/// shows.
pub async fn verify(
    client: &Client,
    out: Output,
    username: &str,
    uri: Option<&str>,
    qr_image: Option<&Path>,
) -> Result<(), Failure> {
    let code: VerifyCode = read_code(uri, qr_image).await?;
    client.contacts().verify(username, &code).await?;
    out.line(json!({"user": username, "verified": true}), || format!("{username} verified"));
    Ok(())
}

/// `accept-key USERNAME`: accepts their new identity key (sending to them resumes; they are
/// unverified until verified again).
pub async fn accept_key(client: &Client, username: &str) -> Result<(), Failure> {
    Ok(client.contacts().accept_key(username).await?)
}

/// `requests`: rooms waiting for my answer, newest first.
pub async fn requests(client: &Client, out: Output) -> Result<(), Failure> {
    for r in client.rooms().list().await? {
        let Some(from) = r.request_from else { continue };
        out.line(
            json!({"room": r.room.to_string(), "name": r.name, "from": from,
                   "direct": r.direct, "last_message": r.last_message}),
            || format!("{}\t{}\tfrom {from}", r.room, r.name),
        );
    }
    Ok(())
}

/// `accept ROOM`.
pub async fn accept(client: &Client, out: Output, room: &str) -> Result<(), Failure> {
    queued(out, client.room(parse_room(room)?).accept().await?);
    Ok(())
}

/// `decline ROOM`.
pub async fn decline(client: &Client, out: Output, room: &str) -> Result<(), Failure> {
    queued(out, client.room(parse_room(room)?).decline().await?);
    Ok(())
}

/// `block USERNAME` / `unblock USERNAME`.
pub async fn block(client: &Client, username: &str, block: bool) -> Result<(), Failure> {
    let user = client.contacts().lookup(username).await?;
    if block {
        client.contacts().block(user).await?;
        // The declines it queued go out now, as a script expects.
        sync::sync_until_idle(client).await?;
    } else {
        client.contacts().unblock(user).await?;
    }
    Ok(())
}

/// `blocked`.
pub async fn blocked(client: &Client, out: Output) -> Result<(), Failure> {
    for (username, id) in client.contacts().blocked().await? {
        out.line(json!({"user": username, "user_id": id}), || username.clone());
    }
    Ok(())
}

/// `find-user USERNAME`: exact usernames only (no listing, no prefix search).
pub async fn find_user(client: &Client, out: Output, username: &str) -> Result<(), Failure> {
    let id = client.contacts().lookup(username).await?;
    out.line(json!({"user": username, "user_id": id}), || format!("{username} ({id})"));
    Ok(())
}

/// `nearby on --lat --lon [--minutes N]`.
pub async fn nearby_on(client: &Client, lat: f64, lon: f64, minutes: f64) -> Result<(), Failure> {
    if !(minutes.is_finite() && minutes > 0.0 && minutes <= 60.0) {
        return Err(Failure { code: EXIT_USAGE, message: "minutes are > 0 and at most 60".into() });
    }
    client.nearby().on(lat, lon, Duration::from_secs_f64(minutes * 60.0)).await?;
    Ok(())
}

/// `nearby off`.
pub async fn nearby_off(client: &Client) -> Result<(), Failure> {
    Ok(client.nearby().off().await?)
}

/// `nearby list`.
pub async fn nearby_list(client: &Client, out: Output) -> Result<(), Failure> {
    for p in client.nearby().list().await? {
        let name = p.user.username.as_str().to_owned();
        let distance = serde_json::to_value(p.distance).unwrap_or_default();
        out.line(json!({"user": name, "user_id": p.user.id.0, "distance": distance}), || {
            format!("{name} ({distance})")
        });
    }
    Ok(())
}
