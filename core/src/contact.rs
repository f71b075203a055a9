//! Contacts: finding people by username, contact codes and their QR codes, my contacts
//! and the users I block ([`Client::contacts`]; the list lives on the server, the same on
//! every device, so these requests need the network).
//!
//! Contact codes as QR codes are made with `qrcode` (SVG for a UI, PNG for a file) and read
//! with `rqrr` from an image — a file, a pasted screenshot or a camera frame.
//!
//! Reading is meant for real photos of screens, not just clean renders: the image goes
//! through the photo pipeline first (limits checked before decoding, JPEG decoded at a
//! reduced scale, EXIF orientation applied, at most [`SCAN_SIDE`] px on the long side),
//! then `rqrr` looks for codes in the grey image as it is, contrast-stretched, and
//! binarized at its mean — whichever finds one first. What a code says is untrusted and goes
//! through [`ContactCode::parse`], so every failure is a typed [`ScanError`].

use image::{DynamicImage, GrayImage, ImageFormat, Luma};
use qrcode::{render::svg, EcLevel, QrCode};
pub use tidings_proto::contact::{ContactCode, ContactCodeError, ContactVerification};
pub use tidings_proto::verify::{VerifyCode, VerifyCodeError};

use std::time::Duration;

use tidings_proto::{bounded::Text, Reply, Request};

use rusqlite::OptionalExtension;

use crate::{
    e2ee::{security_code::SecurityCode, Identity, IdentityKey},
    model::{Event, RoomKey},
    photo::{self, Limits, PhotoError},
    sync::{self, unexpected},
    verification::{self, Trust},
    Client, Error,
};

/// How long a scan waits for our direct room's group to show the scanned user's leaves.
const SCAN_GROUP_WAIT: Duration = Duration::from_secs(5);

impl Client {
    /// Lookups, contact codes, contacts and blocking.
    pub fn contacts(&self) -> Contacts<'_> {
        Contacts { client: self }
    }
}

/// See [`Client::contacts`].
#[derive(Debug, Clone, Copy)]
pub struct Contacts<'a> {
    client: &'a Client,
}

impl Contacts<'_> {
    /// Looks a user up by exact username; their user id.
    pub async fn lookup(&self, username: &str) -> Result<i64, Error> {
        let username = Text::new(username).map_err(|e| Error::Invalid(e.to_string()))?;
        match sync::request(self.client, Request::LookupUser { username }).await? {
            Reply::User { user } => Ok(user.id.0),
            other => Err(unexpected(other)),
        }
    }

    /// The security code I share with `username` (crate::e2ee::security_code): from my
    /// identity and theirs, as this device knows it (crate::verification), else as the
    /// leaves of an encrypted room we are both in carry it — a direct room first. Works
    /// offline. [`Error::NoSharedEncryption`] if we share no encrypted room yet.
    pub async fn security_code(&self, username: &str) -> Result<SecurityCode, Error> {
        let me = self.client.require_account().await?.user_id;
        let username = username.to_owned();
        self.client.db(move |c| Ok(their_code(c, me, &username)?.0)).await
    }

    /// The verify code my screen shows for `username` to scan: the security code we share
    /// ([`Self::security_code`]) as a QR code's text ([`qr_svg`], [`qr_png`]).
    pub async fn verify_code(&self, username: &str) -> Result<VerifyCode, Error> {
        let account = self.client.require_account().await?;
        let code = self.security_code(username).await?;
        Ok(VerifyCode {
            from: account.username,
            to: username.to_owned(),
            code: code.digits().into(),
        })
    }

    /// Verifies `username` by the verify code scanned from their screen: it must be the
    /// security code I compute for the two of us ([`Error::SecurityCodeMismatch`] if not —
    /// one of the keys is not what the other device has), shown by them, for me.
    pub async fn verify(&self, username: &str, scanned: &VerifyCode) -> Result<(), Error> {
        let account = self.client.require_account().await?;
        let me = account.user_id;
        let username = username.to_owned();
        let scanned = scanned.clone();
        let room = self
            .client
            .db(move |c| {
                let (code, user, key) = their_code(c, me, &username)?;
                if scanned.from != username
                    || scanned.to != account.username
                    || scanned.code != code.digits()
                {
                    return Err(Error::SecurityCodeMismatch(username));
                }
                let tx = c.transaction()?;
                let room = direct_room(&tx, user)?;
                verification::verified(&tx, room, user, &key)?;
                tx.commit()?;
                Ok(room)
            })
            .await?;
        if let Some(room) = room {
            self.client.emit([Event::TimelineChanged { room }]);
        }
        Ok(())
    }

    /// Accepts `username`'s new identity key: they are no longer verified (verify them again
    /// to be), and sending to them is no longer held.
    pub async fn accept_key(&self, username: &str) -> Result<(), Error> {
        let username = username.to_owned();
        self.client
            .db(move |c| {
                let user = user_id(c, &username)?;
                if let Some((key, Trust::Changed)) = verification::stored(c, user)? {
                    verification::set_key(c, user, &key, Trust::Unverified)?;
                }
                Ok(())
            })
            .await?;
        self.client.emit([Event::RoomsChanged]);
        Ok(())
    }

    /// How far I trust `username`'s identity key (unverified if I have not seen it).
    pub async fn trust(&self, username: &str) -> Result<Trust, Error> {
        let username = username.to_owned();
        self.client
            .db(move |c| {
                let Some(user) = known_user(c, &username)? else { return Ok(Trust::Unverified) };
                Ok(verification::stored(c, user)?.map_or(Trust::Unverified, |(_, t)| t))
            })
            .await
    }

    /// My contact code (what my QR code shows): the server's current contact key for me,
    /// made if I have none; `reset` replaces it (the old code stops working), `ttl` makes
    /// the new one expire.
    pub async fn code(&self, reset: bool, ttl: Option<Duration>) -> Result<ContactCode, Error> {
        let account = self.client.require_account().await?;
        let ttl_s = ttl.map(|t| t.as_secs().clamp(1, u64::from(u32::MAX)) as u32);
        match sync::request(self.client, Request::ContactKey { reset, ttl_s }).await? {
            Reply::ContactKey { key, .. } => {
                let me = account.user_id;
                let identity = self.client.db(move |c| Ok(Identity::load(c, me)?)).await?;
                let code = ContactCode {
                    server: account.server,
                    user: account.username,
                    key: key.0.into_string(),
                    // Whoever scans it can then trust my server the way I do.
                    pin: account.pin.map(|p| p.to_string()),
                    // … and verify me, and prove to my devices they did.
                    verification: identity.map(|i| ContactVerification {
                        fingerprint: i.public().fingerprint(),
                        secret: i.contact_secret(),
                    }),
                };
                // A server address a scanner would refuse (a path, say) makes no usable code.
                ContactCode::parse(&code.to_uri())?;
                Ok(code)
            }
            other => Err(unexpected(other)),
        }
    }

    /// Redeems a contact code: we become contacts and share a direct room (made now, or the
    /// one we had). Returns their user id and the room's local key (after a sync brought it
    /// here).
    ///
    /// A version 2 code also verifies them ([`Self::trust`] says whether it did): the leaves
    /// the server handed out for them in our direct room's group must all carry the identity
    /// key the code's fingerprint names, and a proof that I saw their code goes to their
    /// devices, which verify me in turn (crate::verification). If none does (the keys were
    /// swapped): [`Error::KeyMismatch`], and sending to them is held. If only some do (a
    /// device of theirs with another identity): added, not verified. If the group does not
    /// show their leaves within a few seconds (no device of theirs has keys yet), they stay
    /// unverified.
    pub async fn add(&self, code: &ContactCode) -> Result<(i64, RoomKey), Error> {
        let (user, room, server_room) = self.redeem(code).await?;
        if let Some(v) = code.verification {
            self.check_scanned(user, &code.user, (room, server_room), v).await?;
        }
        Ok((user, room))
    }

    async fn redeem(&self, code: &ContactCode) -> Result<(i64, RoomKey, i64), Error> {
        let account = self.client.require_account().await?;
        if code.server.trim_end_matches('/') != account.server.trim_end_matches('/') {
            return Err(Error::ForeignServer { server: code.server.clone() });
        }
        let user = Text::new(code.user.clone()).map_err(|e| Error::Invalid(e.to_string()))?;
        let key = tidings_proto::ContactKeyText(
            Text::new(code.key.clone()).map_err(|e| Error::Invalid(e.to_string()))?,
        );
        // Events from before the request: the live session's catch-up of our room.
        let mut events = self.client.subscribe();
        let contact = match sync::request(self.client, Request::AddContact { user, key }).await? {
            Reply::Contact { contact } => contact,
            other => return Err(unexpected(other)),
        };
        let server_room = contact.room.0;
        if !self.client.relay.is_live() {
            sync::sync_until_idle(self.client).await?;
            let room = self
                .client
                .db(move |c| crate::apply::known_room(c, server_room))
                .await?
                .ok_or(Error::NoSuchRoom(server_room))?;
            return Ok((contact.user.id.0, room, server_room));
        }
        // Over the live session: the server does not push our room's change (made now, or
        // accepted) back to the connection that asked, so the session catches it up.
        let room = self.client.db(move |c| crate::apply::local_room(c, server_room)).await?;
        self.client.relay.catch_up(room);
        self.client.outbox_ready.notify_one();
        let caught_up = async {
            while let Some(event) = events.recv().await {
                if matches!(event, Event::TimelineChanged { room: r } if r == room) {
                    return;
                }
            }
        };
        // Not in time (a slow link): the room is here and fills in as the session goes on.
        let _ = tokio::time::timeout(sync::link::REPLY_TIMEOUT, caught_up).await;
        Ok((contact.user.id.0, room, server_room))
    }

    /// Checks a scanned code's fingerprint against `user`'s leaves in our direct room's group
    /// (set up now if need be) and, if it matches, verifies them and sends the proof.
    async fn check_scanned(
        &self,
        user: i64,
        username: &str,
        (room, server_room): (RoomKey, i64),
        scanned: ContactVerification,
    ) -> Result<(), Error> {
        let me = self.client.require_account().await?.user_id;
        self.client.db(move |c| crate::sync::group::want(c, room)).await?;
        let leaves = move |c: &mut rusqlite::Connection| -> Result<Vec<IdentityKey>, Error> {
            let Some(group) = crate::sync::group::current(c, room)? else { return Ok(Vec::new()) };
            let leaves = crate::e2ee::identities(c, &group)?;
            Ok(leaves.into_iter().filter(|(l, _)| l.user == user).map(|(_, k)| k).collect())
        };
        let until = tokio::time::Instant::now() + SCAN_GROUP_WAIT;
        let live = self.client.relay.is_live();
        if !live {
            // One sync sets the group up (it runs until nothing is left to do).
            sync::sync_until_idle(self.client).await?;
        }
        let keys = loop {
            let keys = self.client.db(leaves).await?;
            if !keys.is_empty() {
                break keys;
            }
            if !live || tokio::time::Instant::now() >= until {
                tracing::info!(user, "Their leaves are not in our group yet: not verified.");
                return Ok(());
            }
            self.client.outbox_ready.notify_one();
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let username = username.to_owned();
        let result = self
            .client
            .db(move |c| {
                let tx = c.transaction()?;
                let Some(&key) = keys.iter().find(|k| k.fingerprint() == scanned.fingerprint)
                else {
                    // Not one of their devices carries the key their code names: swapped.
                    tracing::warn!(user, "A scanned code's fingerprint is not their leaves' key.");
                    verification::set_key(&tx, user, &keys[0], Trust::Changed)?;
                    tx.commit()?;
                    return Err(Error::KeyMismatch(username));
                };
                if keys.iter().any(|k| *k != key) {
                    // Some are theirs, others carry another identity (a device signed in with
                    // the password alone, or one the server made): not verified either way.
                    tracing::warn!(user, "Not every leaf of theirs has the key their code names.");
                    return Ok(());
                }
                verification::verified(&tx, Some(room), user, &key)?;
                let mine = Identity::load(&tx, me)?.ok_or(Error::NotSignedIn)?.public();
                let proof = verification::proof_body((me, &mine), (user, &key), &scanned.secret);
                let body = crate::apply::MessageBody {
                    verified: Some(proof),
                    ..crate::apply::MessageBody::text("")
                };
                let room_id = tidings_proto::RoomId(server_room);
                crate::send_queue::queue_quiet(&tx, room, room_id, &body)?;
                tx.commit()?;
                Ok(())
            })
            .await;
        self.client.emit([Event::TimelineChanged { room }, Event::OutboxChanged]);
        self.client.outbox_ready.notify_one();
        result?;
        if !live {
            sync::sync_until_idle(self.client).await?;
        }
        Ok(())
    }

    /// My contacts: username, user id and the server id of our direct room.
    pub async fn list(&self) -> Result<Vec<(String, i64, i64)>, Error> {
        match sync::request(self.client, Request::Contacts {}).await? {
            Reply::Contacts { contacts } => Ok(contacts
                .into_vec()
                .into_iter()
                .map(|c| (c.user.username.into_string(), c.user.id.0, c.room.0))
                .collect()),
            other => Err(unexpected(other)),
        }
    }

    /// Blocks a user: they can no longer put me in a room, invite me, call me or write to
    /// me in our direct room. Every request they hold open with me is declined (queued like
    /// any leave).
    pub async fn block(&self, user: i64) -> Result<(), Error> {
        sync::request(self.client, Request::Block { user: tidings_proto::UserId(user) }).await?;
        let requests = self
            .client
            .db(move |c| {
                let mut st = c.prepare_cached("SELECT id FROM rooms WHERE request_from = ?1")?;
                let rows = st.query_map([user], |r| r.get::<_, RoomKey>(0))?;
                Ok(rows.collect::<Result<Vec<_>, _>>()?)
            })
            .await?;
        for room in requests {
            self.client.room(room).decline().await?;
        }
        Ok(())
    }

    /// Unblocks a user.
    pub async fn unblock(&self, user: i64) -> Result<(), Error> {
        let request = Request::Unblock { user: tidings_proto::UserId(user) };
        sync::request(self.client, request).await.map(|_| ())
    }

    /// The users I block: username and user id.
    pub async fn blocked(&self) -> Result<Vec<(String, i64)>, Error> {
        match sync::request(self.client, Request::Blocked {}).await? {
            Reply::Blocked { users } => Ok(users
                .into_vec()
                .into_iter()
                .map(|u| (u.username.into_string(), u.id.0))
                .collect()),
            other => Err(unexpected(other)),
        }
    }
}

/// The user id of `username`, as this profile knows them ([`Error::NoSharedEncryption`] if
/// it does not: we share no room).
fn user_id(c: &rusqlite::Connection, username: &str) -> Result<i64, Error> {
    known_user(c, username)?.ok_or_else(|| Error::NoSharedEncryption(username.to_owned()))
}

/// The user id of `username`, if this profile knows them.
fn known_user(c: &rusqlite::Connection, username: &str) -> Result<Option<i64>, Error> {
    Ok(c.prepare_cached("SELECT id FROM users WHERE username = ?1")?
        .query_row([username], |r| r.get(0))
        .optional()?)
}

/// The security code I (`me`) share with `username`, their user id and identity key.
fn their_code(
    c: &rusqlite::Connection,
    me: i64,
    username: &str,
) -> Result<(SecurityCode, i64, IdentityKey), Error> {
    let mine = Identity::load(c, me)?.ok_or(Error::NotSignedIn)?.public();
    let user = user_id(c, username)?;
    let key = verification::key_of(c, user)?
        .ok_or_else(|| Error::NoSharedEncryption(username.to_owned()))?;
    Ok((SecurityCode::of((me, &mine), (user, &key)), user, key))
}

/// Our direct room with `user`, if we have one.
fn direct_room(c: &rusqlite::Connection, user: i64) -> Result<Option<RoomKey>, Error> {
    Ok(c.query_row(
        "SELECT r.id FROM rooms r JOIN members m ON m.room_id = r.id
         WHERE r.kind = 'direct' AND m.user_id = ?1 AND r.member = 1 ORDER BY r.id DESC",
        [user],
        |r| r.get(0),
    )
    .optional()?)
}

/// Longest side an image is scanned at (photos are scaled down to it first).
pub const SCAN_SIDE: u32 = 1600;

/// Why no code came out of an image (a contact code's `E` is [`ContactCodeError`], a link
/// code's [`crate::link::LinkCodeError`]).
#[derive(Debug, thiserror::Error)]
pub enum ScanError<E = ContactCodeError> {
    /// The file is not an image this reads, too large, or damaged.
    #[error(transparent)]
    Image(#[from] PhotoError),
    /// No QR code was found in the image.
    #[error("no QR code found in the image")]
    NoCode,
    /// A QR code was found, but it is not a (valid) code of the kind looked for.
    #[error(transparent)]
    Code(E),
}

impl From<ContactCodeError> for ScanError {
    fn from(e: ContactCodeError) -> Self {
        ScanError::Code(e)
    }
}

/// A code shown as a QR code and read back from one (contact codes, link codes).
pub trait Code: Sized {
    /// Why a text is not such a code.
    type Error: std::error::Error;
    /// The code's text.
    fn to_uri(&self) -> String;
    /// Reads a code's text (untrusted).
    fn parse(text: &str) -> Result<Self, Self::Error>;
}

impl Code for VerifyCode {
    type Error = VerifyCodeError;
    fn to_uri(&self) -> String {
        VerifyCode::to_uri(self)
    }
    fn parse(text: &str) -> Result<Self, Self::Error> {
        VerifyCode::parse(text)
    }
}

impl Code for ContactCode {
    type Error = ContactCodeError;
    fn to_uri(&self) -> String {
        ContactCode::to_uri(self)
    }
    fn parse(text: &str) -> Result<Self, Self::Error> {
        ContactCode::parse(text)
    }
}

fn qr(code: &impl Code) -> QrCode {
    // Medium error correction: survives glare and a few damaged modules; codes are at most
    // 512 bytes, which always fits (version 40-M holds 2,331).
    QrCode::with_error_correction_level(code.to_uri().as_bytes(), EcLevel::M)
        .expect("a code always fits in a QR code")
}

/// The code as an SVG document (black modules on white, with the quiet zone).
pub fn qr_svg(code: &impl Code) -> String {
    qr(code)
        .render::<svg::Color<'_>>()
        .min_dimensions(256, 256)
        .dark_color(svg::Color("#000000"))
        .light_color(svg::Color("#ffffff"))
        .build()
}

/// The code as a PNG image, `module_px` pixels per module (with the quiet zone).
pub fn qr_png(code: &impl Code, module_px: u32) -> Vec<u8> {
    let image = qr(code).render::<Luma<u8>>().module_dimensions(module_px, module_px).build();
    let mut png = Vec::new();
    DynamicImage::ImageLuma8(image)
        .write_to(&mut std::io::Cursor::new(&mut png), ImageFormat::Png)
        .expect("encoding a PNG into memory does not fail");
    png
}

/// Largest image file scanned for a code.
pub const MAX_SCAN_FILE_BYTES: u64 = 50 * 1024 * 1024;
/// Most pixels an image scanned for a code may have (checked before decoding).
pub const MAX_SCAN_PIXELS: u64 = 40_000_000;

/// Reads the contact code in an image file's bytes (PNG, JPEG, WebP, GIF).
pub fn scan(bytes: &[u8]) -> Result<ContactCode, ScanError> {
    scan_for(bytes)
}

/// Reads a code of kind `C` in an image file's bytes (PNG, JPEG, WebP, GIF).
pub fn scan_for<C: Code>(bytes: &[u8]) -> Result<C, ScanError<C::Error>> {
    if bytes.len() as u64 > MAX_SCAN_FILE_BYTES {
        let bytes = bytes.len() as u64;
        return Err(ScanError::Image(PhotoError::FileTooLarge { bytes, max: MAX_SCAN_FILE_BYTES }));
    }
    let limits = Limits { max_pixels: MAX_SCAN_PIXELS, ..Limits::default() };
    let image = photo::thumbnail_pixels(bytes, SCAN_SIDE, &limits)?;
    scan_gray_for(&image.into_luma8())
}

/// Reads the contact code in a grey image (a camera frame, say).
pub fn scan_gray(gray: &GrayImage) -> Result<ContactCode, ScanError> {
    scan_gray_for(gray)
}

/// Reads a code of kind `C` in a grey image.
pub fn scan_gray_for<C: Code>(gray: &GrayImage) -> Result<C, ScanError<C::Error>> {
    let mut found_text = None;
    for variant in variants(gray) {
        // rqrr can still assert on odd geometry in real photos (its issue #54): a frame that
        // makes it panic is a frame without a readable code, not a crash.
        let texts = std::panic::catch_unwind(move || {
            let mut prepared = rqrr::PreparedImage::prepare(variant);
            prepared
                .detect_grids()
                .into_iter()
                .filter_map(|grid| grid.decode().ok().map(|(_, text)| text))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
        for text in texts {
            match C::parse(&text) {
                Ok(code) => return Ok(code),
                Err(e) => found_text = Some(e),
            }
        }
    }
    Err(found_text.map_or(ScanError::NoCode, ScanError::Code))
}

/// The image as it is, then contrast-stretched, then binarized at its mean (for washed-out
/// or dim photos of screens).
fn variants(gray: &GrayImage) -> impl Iterator<Item = GrayImage> + '_ {
    let (lo, hi, mean) = {
        let (mut lo, mut hi, mut sum) = (u8::MAX, u8::MIN, 0u64);
        for p in gray.pixels() {
            lo = lo.min(p.0[0]);
            hi = hi.max(p.0[0]);
            sum += u64::from(p.0[0]);
        }
        let n = u64::from(gray.width()) * u64::from(gray.height());
        (lo, hi, sum.checked_div(n).unwrap_or(128) as u8)
    };
    let stretch = move |g: &GrayImage| {
        let span = u16::from(hi.saturating_sub(lo)).max(1);
        let mut out = g.clone();
        for p in out.pixels_mut() {
            p.0[0] = ((u16::from(p.0[0].saturating_sub(lo)) * 255) / span).min(255) as u8;
        }
        out
    };
    let binarize = move |g: &GrayImage| {
        let mut out = g.clone();
        for p in out.pixels_mut() {
            p.0[0] = if p.0[0] < mean { 0 } else { 255 };
        }
        out
    };
    [0u8, 1, 2].into_iter().map(move |i| match i {
        0 => gray.clone(),
        1 => stretch(gray),
        _ => binarize(gray),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> ContactCode {
        ContactCode {
            server: "http://127.0.0.1:7878".into(),
            user: "alice".into(),
            key: "0123456789abcdefghijKLMNOP_-".into(),
            pin: None,
            verification: None,
        }
    }

    fn gray_of(png: &[u8]) -> GrayImage {
        image::load_from_memory(png).unwrap().into_luma8()
    }

    /// Nearest-neighbour rotation by `degrees` about the centre, on a white margin (as a
    /// photo has around a screen).
    fn rotate(g: &GrayImage, degrees: f32) -> GrayImage {
        let margin = g.width() / 4;
        let mut padded =
            GrayImage::from_pixel(g.width() + 2 * margin, g.height() + 2 * margin, Luma([255]));
        image::imageops::overlay(&mut padded, g, i64::from(margin), i64::from(margin));
        let g = &padded;
        let (w, h) = g.dimensions();
        let (s, c) = degrees.to_radians().sin_cos();
        let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
        GrayImage::from_fn(w, h, |x, y| {
            let (dx, dy) = (x as f32 - cx, y as f32 - cy);
            let (sx, sy) = (c * dx + s * dy + cx, -s * dx + c * dy + cy);
            if sx >= 0.0 && sy >= 0.0 && (sx as u32) < w && (sy as u32) < h {
                *g.get_pixel(sx as u32, sy as u32)
            } else {
                Luma([255])
            }
        })
    }

    /// Like a dim, washed-out photo of a screen: low contrast plus grain.
    fn photographed(g: &GrayImage) -> GrayImage {
        let mut seed = 0x2545_f491u32;
        let mut out = g.clone();
        for p in out.pixels_mut() {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let grain = (seed % 41) as i32 - 20;
            let v = 90 + i32::from(p.0[0]) * 70 / 255 + grain;
            p.0[0] = v.clamp(0, 255) as u8;
        }
        out
    }

    #[test]
    fn our_png_reads_back() {
        let png = qr_png(&alice(), 6);
        assert_eq!(scan(&png).unwrap(), alice());
        assert!(qr_svg(&alice()).starts_with("<?xml"));
    }

    #[test]
    fn photographed_style_images_read() {
        let clean = gray_of(&qr_png(&alice(), 8));
        let cases = [
            ("rotated 8°", rotate(&clean, 8.0)),
            ("rotated -15°", rotate(&clean, -15.0)),
            (
                "scaled to 60 %",
                image::imageops::resize(
                    &clean,
                    clean.width() * 3 / 5,
                    clean.height() * 3 / 5,
                    image::imageops::FilterType::Triangle,
                ),
            ),
            ("low contrast and grain", photographed(&clean)),
            ("all of it", photographed(&rotate(&clean, 5.0))),
        ];
        for (what, image) in cases {
            assert_eq!(scan_gray(&image).map_err(|e| e.to_string()), Ok(alice()), "{what}");
        }
    }

    #[test]
    fn images_without_a_contact_code_say_why() {
        let blank = GrayImage::from_pixel(200, 200, Luma([255]));
        assert!(matches!(scan_gray(&blank), Err(ScanError::NoCode)));
        let other = QrCode::new(b"https://example.com/").unwrap();
        let other = other.render::<Luma<u8>>().module_dimensions(6, 6).build();
        assert!(matches!(
            scan_gray(&other),
            Err(ScanError::Code(ContactCodeError::ForeignScheme { .. }))
        ));
        assert!(matches!(scan(b"not an image at all"), Err(ScanError::Image(_))));
    }
}
