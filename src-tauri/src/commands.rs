//! The commands the UI invokes: each a few lines over `tidings-core`, no logic of their own
//! beyond turning UI words (usernames, picked files) into core calls. Reads come from the
//! profile's SQLite store; changes are saved and queued by the core before they return, so
//! the UI shows them at once whatever the network does. Errors reach the UI as
//! [`AppError`] (`{code, message, reason}`).

use std::path::PathBuf;

use serde::Serialize;
use tauri::{ipc::InvokeBody, AppHandle, State};
use tidings_core::{
    contact::{Code, ContactCode, VerifyCode},
    link::LinkCode,
    verification::Trust,
    ConnectionState, Device, MemberReceipt, Message, OutboxEntry, RoomKey, RoomSummary,
};
use tidings_proto::RoomKind;
use ts_rs::TS;

use crate::{
    error::{AppError, ErrorCode, Result},
    App,
};

/// The signed-in account, as the UI shows it (the session token stays in the core).
#[derive(Debug, Clone, Serialize, TS)]
pub struct SessionView {
    /// Server base URL.
    pub server: String,
    /// My username.
    pub username: String,
    /// My user id.
    pub user_id: i64,
    /// This device.
    pub device_id: i64,
    /// Whether the connection is encrypted (https); the UI says "not encrypted" when not.
    pub encrypted: bool,
    /// The certificate pin the server is trusted by, if any (`sha256:…`).
    pub pin: Option<String>,
}

/// What the first screen needs: the session, if any, and the server to suggest.
#[derive(Debug, Clone, Serialize, TS)]
pub struct Startup {
    /// Signed in as.
    pub session: Option<SessionView>,
    /// The server the first-run screen suggests (`--server`, `TIDINGS_SERVER`).
    pub suggested_server: Option<String>,
    /// The connection now.
    pub connection: ConnectionState,
}

/// My contact code: its text and its QR code.
#[derive(Debug, Clone, Serialize, TS)]
pub struct ContactCodeView {
    /// The `tidings:contact?…` text.
    pub uri: String,
    /// The QR code as an SVG document.
    pub svg: String,
}

/// A link code for a new device of my account: its text, its QR code, and until when the
/// server takes it. The text is a credential: the UI shows it and never logs it.
#[derive(Debug, Clone, Serialize, TS)]
pub struct LinkCodeView {
    /// The `tidings:link?…` text.
    pub uri: String,
    /// The QR code as an SVG document.
    pub svg: String,
    /// When the code stops working, Unix milliseconds.
    pub expires_ms: i64,
    /// The history of my chats that goes with it, if I chose to send it.
    pub history: Option<HistorySizeView>,
}

/// The size of the history of my chats sent to a new device: what it is (with a link code),
/// or at most what it would be (before I choose).
#[derive(Debug, Clone, Copy, Serialize, TS)]
pub struct HistorySizeView {
    /// Messages in it.
    pub messages: u64,
    /// Bytes it takes on the network.
    pub bytes: u64,
}

impl From<tidings_core::history::HistorySize> for HistorySizeView {
    fn from(size: tidings_core::history::HistorySize) -> Self {
        Self { messages: size.messages, bytes: size.bytes }
    }
}

/// One contact.
#[derive(Debug, Clone, Serialize, TS)]
pub struct ContactView {
    /// Their username.
    pub username: String,
    /// Their user id.
    pub user_id: i64,
    /// Our direct room here, once synced.
    pub room: Option<RoomKey>,
    /// How far I trust their identity key (the list shows verified ones with a badge).
    pub trust: Trust,
}

/// The verify code my screen shows a contact: the security code we share as a QR code for
/// their device to scan (`tidings:verify?…`; not secret).
#[derive(Debug, Clone, Serialize, TS)]
pub struct VerifyCodeView {
    /// The `tidings:verify?…` text.
    pub uri: String,
    /// The QR code as an SVG document.
    pub svg: String,
}

fn session_view(a: tidings_core::Account) -> SessionView {
    SessionView {
        encrypted: a.server.starts_with("https://"),
        pin: a.pin.map(|p| p.to_string()),
        server: a.server,
        username: a.username,
        user_id: a.user_id,
        device_id: a.device_id,
    }
}

#[tauri::command]
pub async fn startup(app: State<'_, App>) -> Result<Startup> {
    let session = app.client.account().await?.filter(|_| !app.ended());
    Ok(Startup {
        session: session.map(session_view),
        suggested_server: app.launch.server.clone(),
        connection: app.connection(),
    })
}

/// The UI has painted the chat list: logged with the time since the app started (and
/// printed for `cargo xtask bench app` when `TIDINGS_PRINT_READY` is set).
#[tauri::command]
pub fn ready(app: State<'_, App>, rooms: u32) {
    let ms = app.started.elapsed().as_millis();
    tracing::info!(ms, rooms, "Chat list shown.");
    if std::env::var_os("TIDINGS_PRINT_READY").is_some() {
        println!("ready {ms} ms after start, {rooms} rooms");
    }
}

#[tauri::command]
pub async fn sign_up(
    handle: AppHandle,
    app: State<'_, App>,
    server: String,
    username: String,
    password: String,
) -> Result<SessionView> {
    enter(&handle, &app, &server, &username, &password, true).await
}

#[tauri::command]
pub async fn sign_in(
    handle: AppHandle,
    app: State<'_, App>,
    server: String,
    username: String,
    password: String,
) -> Result<SessionView> {
    enter(&handle, &app, &server, &username, &password, false).await
}

/// Creates the account (`new_account`) or signs in to it, then starts syncing and calls.
async fn enter(
    handle: &AppHandle,
    app: &App,
    server: &str,
    username: &str,
    password: &str,
    new_account: bool,
) -> Result<SessionView> {
    let server = normalize_server(server)?;
    let username = username.trim();
    let server =
        tidings_core::endpoint::Endpoint::parse(&server).map_err(tidings_core::Error::from)?;
    let account = if new_account {
        app.client.sessions().sign_up(&server, username, password).await?
    } else {
        app.client.sessions().sign_in(&server, username, password).await?
    };
    app.go_online(handle);
    Ok(session_view(account))
}

/// `host:port` or a full URL → `http(s)://host:port` without a trailing slash. A bare host
/// means https (core's rule), except a bare address on this machine or a private network:
/// that is the local server of `cargo xtask run`, which speaks plain http (and the sign-in
/// screen says "not encrypted").
fn normalize_server(server: &str) -> Result<String> {
    use tidings_core::endpoint::Endpoint;
    let server = server.trim().trim_end_matches('/');
    if server.is_empty() || server.contains(char::is_whitespace) {
        return Err(AppError::new(ErrorCode::Invalid, "Enter the server's address."));
    }
    if !server.contains("://") {
        if let Ok(local) = Endpoint::parse(&format!("http://{server}")) {
            return Ok(local.base());
        }
    }
    Ok(Endpoint::parse(server).map_err(tidings_core::Error::from)?.base())
}

#[tauri::command]
pub async fn sign_out(handle: AppHandle, app: State<'_, App>) -> Result<()> {
    app.go_offline();
    let result = app.client.sessions().sign_out().await;
    if result.is_err() {
        // Still signed in (offline, say): keep receiving.
        app.go_online(&handle);
    }
    Ok(result?)
}

#[tauri::command]
pub async fn devices(app: State<'_, App>) -> Result<Vec<Device>> {
    Ok(app.client.sessions().devices().await?)
}

#[tauri::command]
pub async fn revoke_device(app: State<'_, App>, device: i64) -> Result<()> {
    Ok(app.client.sessions().revoke(device).await?)
}

#[tauri::command]
pub async fn rooms(app: State<'_, App>) -> Result<Vec<RoomSummary>> {
    Ok(app.client.rooms().list().await?)
}

#[tauri::command]
pub async fn messages(
    app: State<'_, App>,
    room: RoomKey,
    before: Option<i64>,
    limit: u32,
) -> Result<Vec<Message>> {
    Ok(app.client.room(room).timeline().page(before, limit.min(200) as usize).await?)
}

#[tauri::command]
pub async fn read_by(app: State<'_, App>, room: RoomKey, seq: u64) -> Result<Vec<MemberReceipt>> {
    Ok(app.client.room(room).read_by(seq).await?)
}

#[tauri::command]
pub async fn send_text(app: State<'_, App>, room: RoomKey, text: String) -> Result<()> {
    if text.trim().is_empty() {
        return Err(AppError::new(ErrorCode::Invalid, "Type a message first."));
    }
    app.client.room(room).send_queue().send_text(&text).await?;
    Ok(())
}

/// A message named by the UI (its `request_id`).
fn message_id(to: &str) -> Result<tidings_proto::RequestId> {
    to.parse().map_err(|_| AppError::new(ErrorCode::NoSuchMessage, "That message is not here."))
}

#[tauri::command]
pub async fn reply(app: State<'_, App>, room: RoomKey, to: String, text: String) -> Result<()> {
    if text.trim().is_empty() {
        return Err(AppError::new(ErrorCode::Invalid, "Type a reply first."));
    }
    app.client.room(room).send_queue().reply(message_id(&to)?, &text).await?;
    Ok(())
}

#[tauri::command]
pub async fn edit_message(
    app: State<'_, App>,
    room: RoomKey,
    to: String,
    text: String,
) -> Result<()> {
    app.client.room(room).send_queue().edit(message_id(&to)?, &text).await?;
    Ok(())
}

/// Deletes a message for everyone (mine only) or, with `for_everyone` false, on this device.
#[tauri::command]
pub async fn delete_message(
    app: State<'_, App>,
    room: RoomKey,
    to: String,
    for_everyone: bool,
) -> Result<()> {
    let (room, to) = (app.client.room(room), message_id(&to)?);
    if for_everyone {
        room.send_queue().delete_for_everyone(to).await?;
    } else {
        room.delete_for_me(to).await?;
    }
    Ok(())
}

/// Adds (`on`) or takes back my reaction `emoji` to a message.
#[tauri::command]
pub async fn react(
    app: State<'_, App>,
    room: RoomKey,
    to: String,
    emoji: String,
    on: bool,
) -> Result<()> {
    let (queue, to) = (app.client.room(room).send_queue(), message_id(&to)?);
    if on {
        queue.react(to, &emoji).await?;
    } else {
        queue.unreact(to, &emoji).await?;
    }
    Ok(())
}

/// Forwards message `message` of room `from` into room `room`.
#[tauri::command]
pub async fn forward(
    app: State<'_, App>,
    room: RoomKey,
    from: RoomKey,
    message: String,
) -> Result<()> {
    app.client.room(room).send_queue().forward(from, message_id(&message)?).await?;
    Ok(())
}

/// Sets a room's disappearing-message timer (`0`: off).
#[tauri::command]
pub async fn set_disappearing(app: State<'_, App>, room: RoomKey, seconds: u32) -> Result<()> {
    app.client.room(room).send_queue().set_disappearing(seconds).await?;
    Ok(())
}

/// Keeps what I am writing in a room (empty: no draft).
#[tauri::command]
pub async fn set_draft(app: State<'_, App>, room: RoomKey, text: String) -> Result<()> {
    Ok(app.client.room(room).set_draft(&text).await?)
}

/// A room's draft.
#[tauri::command]
pub async fn draft(app: State<'_, App>, room: RoomKey) -> Result<Option<String>> {
    Ok(app.client.room(room).draft().await?)
}

/// Where a room's first unread message is (its timeline position), before it is marked read.
#[tauri::command]
pub async fn first_unread(app: State<'_, App>, room: RoomKey) -> Result<Option<i64>> {
    Ok(app.client.room(room).first_unread().await?)
}

/// Mutes or unmutes a room.
#[tauri::command]
pub async fn set_room_muted(app: State<'_, App>, room: RoomKey, muted: bool) -> Result<()> {
    Ok(app.client.room(room).set_muted(muted).await?)
}

/// A message's versions, oldest first: as sent, then each edit (text, Unix ms).
#[tauri::command]
pub async fn message_versions(
    app: State<'_, App>,
    room: RoomKey,
    message: String,
) -> Result<Vec<(String, i64)>> {
    Ok(app.client.room(room).timeline().versions(message_id(&message)?).await?)
}

/// Messages on this device matching `query` (every word, the last one as a prefix), newest
/// first, in `room` or all rooms.
#[tauri::command]
pub async fn search(
    app: State<'_, App>,
    query: String,
    room: Option<RoomKey>,
    limit: u32,
) -> Result<Vec<tidings_core::SearchHit>> {
    Ok(app.client.search(&query, room, limit as usize).await?)
}

/// A picked or dropped file, as raw bytes with `room` and `name` (URI-encoded) headers:
/// photos are sent as photos (made right by the core), anything else as a file.
#[tauri::command]
pub async fn send_attachment(app: State<'_, App>, request: tauri::ipc::Request<'_>) -> Result<()> {
    let (room, name, bytes) = attachment(&request)?;
    let path = app.stage(&name, bytes).await?;
    let result = if is_photo(&name) {
        app.client.room(room).send_queue().send_image(&path, "").await.map(|_| ())
    } else {
        app.client.room(room).send_queue().send_file(&path).await.map(|_| ())
    };
    let _ = tokio::fs::remove_file(&path).await;
    Ok(result?)
}

fn attachment(request: &tauri::ipc::Request<'_>) -> Result<(RoomKey, String, Vec<u8>)> {
    let InvokeBody::Raw(bytes) = request.body() else {
        return Err(AppError::new(ErrorCode::Invalid, "expected the file's bytes"));
    };
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
    let room = header("room")
        .and_then(|r| r.parse().ok())
        .ok_or_else(|| AppError::new(ErrorCode::Invalid, "no room given"))?;
    let name = header("name").map(percent_decode).unwrap_or_else(|| "file".into());
    Ok((room, name, bytes.clone()))
}

fn is_photo(name: &str) -> bool {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    matches!(ext.as_str(), "jpg" | "jpeg" | "png" | "webp" | "gif")
}

/// `encodeURIComponent`'s inverse; a name with a broken escape is kept as it came.
fn percent_decode(s: &str) -> String {
    tidings_proto::contact::percent_decode(s).unwrap_or_else(|| s.to_owned())
}

#[tauri::command]
pub async fn thumbnail(
    app: State<'_, App>,
    room: RoomKey,
    seq: u64,
) -> Result<tauri::ipc::Response> {
    Ok(tauri::ipc::Response::new(app.client.media().thumbnail(room, seq).await?))
}

#[tauri::command]
pub async fn full_image(
    app: State<'_, App>,
    room: RoomKey,
    seq: u64,
) -> Result<tauri::ipc::Response> {
    Ok(tauri::ipc::Response::new(app.client.media().open_full(room, seq).await?))
}

#[tauri::command]
pub async fn outbox(app: State<'_, App>) -> Result<Vec<OutboxEntry>> {
    Ok(app.client.send_queue().items().await?)
}

#[tauri::command]
pub async fn retry(app: State<'_, App>, id: i64) -> Result<()> {
    Ok(app.client.send_queue().retry(id).await?)
}

#[tauri::command]
pub async fn discard(app: State<'_, App>, id: i64) -> Result<()> {
    Ok(app.client.send_queue().discard(id).await?)
}

#[tauri::command]
pub async fn mark_read(app: State<'_, App>, room: RoomKey) -> Result<()> {
    Ok(app.client.room(room).mark_read().await?)
}

#[tauri::command]
pub async fn set_typing(app: State<'_, App>, room: RoomKey, active: bool) -> Result<()> {
    Ok(app.client.room(room).typing(active).await?)
}

/// Our direct room with `username`: the one we have, or a new one (usable at once, made on
/// the server when online).
#[tauri::command]
pub async fn open_direct(app: State<'_, App>, username: String) -> Result<RoomKey> {
    Ok(app.client.rooms().open_direct(&username).await?)
}

#[tauri::command]
pub async fn create_group(
    app: State<'_, App>,
    name: String,
    members: Vec<String>,
) -> Result<RoomKey> {
    let name = name.trim();
    if name.is_empty() {
        return Err(AppError::new(ErrorCode::Invalid, "Give the group a name."));
    }
    let mut ids = Vec::with_capacity(members.len());
    for username in members.iter().map(|m| m.trim()).filter(|m| !m.is_empty()) {
        ids.push(app.client.contacts().lookup(username).await?);
    }
    Ok(app.client.rooms().create(RoomKind::Group, Some(name), ids).await?)
}

#[tauri::command]
pub async fn invite(app: State<'_, App>, room: RoomKey, username: String) -> Result<()> {
    let user = app.client.contacts().lookup(username.trim()).await?;
    app.client.room(room).invite(user).await?;
    Ok(())
}

#[tauri::command]
pub async fn leave(app: State<'_, App>, room: RoomKey) -> Result<()> {
    app.client.room(room).leave().await?;
    Ok(())
}

/// Accepts a request (a room from someone who is not a contact).
#[tauri::command]
pub async fn accept_request(app: State<'_, App>, room: RoomKey) -> Result<()> {
    app.client.room(room).accept().await?;
    Ok(())
}

/// Declines a request: leaves the room.
#[tauri::command]
pub async fn decline_request(app: State<'_, App>, room: RoomKey) -> Result<()> {
    app.client.room(room).decline().await?;
    Ok(())
}

/// Blocks a user (their open requests are declined).
#[tauri::command]
pub async fn block_user(app: State<'_, App>, username: String) -> Result<()> {
    let user = app.client.contacts().lookup(username.trim()).await?;
    app.client.contacts().block(user).await?;
    Ok(())
}

/// Opens a link from a message in the system browser: only when the user clicked it (the
/// app never fetches links), and only `http` and `https` addresses.
#[tauri::command]
pub async fn open_link(app: tauri::AppHandle, url: String) -> Result<()> {
    use tauri_plugin_opener::OpenerExt;
    let not_web = || AppError::new(ErrorCode::Invalid, "That is not a web address.");
    let parsed = url::Url::parse(&url).map_err(|_| not_web())?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(not_web());
    }
    app.opener()
        .open_url(parsed.as_str(), None::<&str>)
        .map_err(|e| AppError::new(ErrorCode::Internal, format!("The browser did not open: {e}")))
}

/// Unblocks a user.
#[tauri::command]
pub async fn unblock_user(app: State<'_, App>, username: String) -> Result<()> {
    let user = app.client.contacts().lookup(username.trim()).await?;
    app.client.contacts().unblock(user).await?;
    Ok(())
}

/// The usernames of the people I block.
#[tauri::command]
pub async fn blocked_users(app: State<'_, App>) -> Result<Vec<String>> {
    Ok(app.client.contacts().blocked().await?.into_iter().map(|(name, _)| name).collect())
}

#[tauri::command]
pub async fn rename(app: State<'_, App>, room: RoomKey, name: String) -> Result<()> {
    app.client.room(room).rename(name.trim()).await?;
    Ok(())
}

#[tauri::command]
pub async fn contact_code(app: State<'_, App>, reset: bool) -> Result<ContactCodeView> {
    let code = app.client.contacts().code(reset, None).await?;
    Ok(ContactCodeView { uri: code.to_uri(), svg: tidings_core::contact::qr_svg(&code) })
}

/// Adds the contact in a pasted or typed code; returns our direct room.
#[tauri::command]
pub async fn add_contact(app: State<'_, App>, code: String) -> Result<RoomKey> {
    let code = ContactCode::parse(code.trim()).map_err(tidings_core::Error::from)?;
    Ok(app.client.contacts().add(&code).await?.1)
}

/// Adds the contact in a QR code picture (raw bytes: a file, a pasted screenshot, a camera
/// frame); returns our direct room.
#[tauri::command]
pub async fn add_contact_image(
    app: State<'_, App>,
    request: tauri::ipc::Request<'_>,
) -> Result<RoomKey> {
    let code: ContactCode = scan_picture(&request).await?;
    Ok(app.client.contacts().add(&code).await?.1)
}

/// The code in a QR code picture sent as the request's raw bytes (a file, a pasted
/// screenshot, a camera frame), read on a blocking thread.
async fn scan_picture<C>(request: &tauri::ipc::Request<'_>) -> Result<C>
where
    C: Code + Send + 'static,
    C::Error: Send,
    tidings_core::Error: From<tidings_core::contact::ScanError<C::Error>>,
{
    let InvokeBody::Raw(bytes) = request.body() else {
        return Err(AppError::new(ErrorCode::Invalid, "expected the picture's bytes"));
    };
    let bytes = bytes.clone();
    let scanned = tokio::task::spawn_blocking(move || tidings_core::contact::scan_for::<C>(&bytes))
        .await
        .map_err(|e| AppError::new(ErrorCode::Internal, e.to_string()))?;
    Ok(scanned.map_err(tidings_core::Error::from)?)
}

/// Offers a session on my account to a new device: the code to show it (a new code
/// replaces the last; it works once, for a few minutes). With `history`, the history of my
/// chats as this device has it goes with it, sealed (built and uploaded first).
#[tauri::command]
pub async fn link_code(app: State<'_, App>, history: bool) -> Result<LinkCodeView> {
    let sessions = app.client.sessions();
    let offer = match history {
        true => sessions.offer_link_with_history().await?,
        false => sessions.offer_link().await?,
    };
    Ok(LinkCodeView {
        uri: offer.code.to_uri(),
        svg: tidings_core::contact::qr_svg(&offer.code),
        expires_ms: offer.expires_ms,
        history: offer.history.map(HistorySizeView::from),
    })
}

/// At most how large the history of my chats sent with a link code would be (from the
/// store, at once), to show before I choose to send it.
#[tauri::command]
pub async fn history_size(app: State<'_, App>) -> Result<HistorySizeView> {
    Ok(app.client.history().size().await?.into())
}

/// Signs this profile in as a new device of the account whose device shows the pasted or
/// typed link code, then starts syncing (it joins every room by itself).
#[tauri::command]
pub async fn link_device(
    handle: AppHandle,
    app: State<'_, App>,
    code: String,
) -> Result<SessionView> {
    let code =
        Scanned::<LinkCode>::parse(code.trim()).map_err(tidings_core::Error::from)?.link_code()?;
    linked(&handle, &app, &code).await
}

/// Like [`link_device`], with the code in a QR code picture (raw bytes: a file, a pasted
/// screenshot, a camera frame).
#[tauri::command]
pub async fn link_device_image(
    handle: AppHandle,
    app: State<'_, App>,
    request: tauri::ipc::Request<'_>,
) -> Result<SessionView> {
    let code = scan_picture::<Scanned<LinkCode>>(&request).await?.link_code()?;
    linked(&handle, &app, &code).await
}

async fn linked(handle: &AppHandle, app: &App, code: &LinkCode) -> Result<SessionView> {
    let account = app.client.sessions().link(code).await?;
    app.go_online(handle);
    Ok(session_view(account))
}

/// What a screen that reads codes of kind `C` (link codes, verify codes) read: such a code,
/// or a contact code given by mistake (told apart so the person hears which code to show
/// instead of "not a link code").
#[derive(Debug)]
enum Scanned<C> {
    Wanted(C),
    Contact(ContactCode),
}

impl<C: Code> Code for Scanned<C> {
    type Error = C::Error;
    fn to_uri(&self) -> String {
        match self {
            Scanned::Wanted(c) => c.to_uri(),
            Scanned::Contact(c) => c.to_uri(),
        }
    }
    fn parse(text: &str) -> std::result::Result<Self, C::Error> {
        match C::parse(text) {
            Ok(code) => Ok(Scanned::Wanted(code)),
            Err(e) => ContactCode::parse(text).map(Scanned::Contact).map_err(|_| e),
        }
    }
}

impl<C> Scanned<C> {
    /// The code wanted, or `code` with `instead` (what to show) for a contact code.
    fn wanted(self, code: ErrorCode, instead: &str) -> Result<C> {
        match self {
            Scanned::Wanted(c) => Ok(c),
            Scanned::Contact(_) => Err(AppError::new(code, instead)),
        }
    }
}

impl Scanned<LinkCode> {
    fn link_code(self) -> Result<LinkCode> {
        self.wanted(
            ErrorCode::BadLinkCode,
            "This is a contact code, for adding a person. To link this device, show the link \
             code from Settings › Link a new device on the device you already use.",
        )
    }
}

impl Scanned<VerifyCode> {
    fn verify_code(self) -> Result<VerifyCode> {
        self.wanted(
            ErrorCode::BadVerifyCode,
            "This is a contact code, for adding a person. To verify, scan the code their \
             Contacts › Security code screen shows for you.",
        )
    }
}

#[tauri::command]
pub async fn contacts(app: State<'_, App>) -> Result<Vec<ContactView>> {
    let mut out = Vec::new();
    for (username, user_id, _server_room) in app.client.contacts().list().await? {
        let room = app.client.rooms().direct_with(user_id).await?;
        let trust = app.client.contacts().trust(&username).await?;
        out.push(ContactView { username, user_id, room, trust });
    }
    Ok(out)
}

/// The security code I share with `username`: 60 digits in twelve groups of five, to
/// compare with the ones on their device.
#[tauri::command]
pub async fn security_code(app: State<'_, App>, username: String) -> Result<String> {
    Ok(app.client.contacts().security_code(username.trim()).await?.grouped())
}

/// How far I trust `username`'s identity key.
#[tauri::command]
pub async fn trust(app: State<'_, App>, username: String) -> Result<Trust> {
    Ok(app.client.contacts().trust(username.trim()).await?)
}

/// The security code I share with `username` as the QR code their device scans to verify me.
#[tauri::command]
pub async fn verify_code(app: State<'_, App>, username: String) -> Result<VerifyCodeView> {
    let code = app.client.contacts().verify_code(username.trim()).await?;
    Ok(VerifyCodeView { uri: code.to_uri(), svg: tidings_core::contact::qr_svg(&code) })
}

/// Verifies `username` by the verify code their screen shows, pasted or typed as text.
#[tauri::command]
pub async fn verify_contact(app: State<'_, App>, username: String, code: String) -> Result<()> {
    let code = Scanned::<VerifyCode>::parse(code.trim())
        .map_err(tidings_core::Error::from)?
        .verify_code()?;
    Ok(app.client.contacts().verify(username.trim(), &code).await?)
}

/// Like [`verify_contact`], with the code in a QR code picture (raw bytes: a file, a pasted
/// screenshot, a camera frame) and the username in the `username` header (URI-encoded).
#[tauri::command]
pub async fn verify_contact_image(
    app: State<'_, App>,
    request: tauri::ipc::Request<'_>,
) -> Result<()> {
    let username = request
        .headers()
        .get("username")
        .and_then(|v| v.to_str().ok())
        .map(percent_decode)
        .ok_or_else(|| AppError::new(ErrorCode::Invalid, "no username given"))?;
    let code = scan_picture::<Scanned<VerifyCode>>(&request).await?.verify_code()?;
    Ok(app.client.contacts().verify(username.trim(), &code).await?)
}

/// Accepts `username`'s new identity key: sending to them resumes; they are unverified until
/// verified again.
#[tauri::command]
pub async fn accept_key(app: State<'_, App>, username: String) -> Result<()> {
    Ok(app.client.contacts().accept_key(username.trim()).await?)
}

/// Who in `room` has a changed key that holds sending there (the banner), if anyone.
#[tauri::command]
pub async fn held_by(app: State<'_, App>, room: RoomKey) -> Result<Option<String>> {
    Ok(app.client.room(room).held_by().await?)
}

#[tauri::command]
pub async fn call(app: State<'_, App>, room: RoomKey) -> Result<()> {
    app.client.calls().call(room, None).await?;
    Ok(())
}

#[tauri::command]
pub fn accept_call(app: State<'_, App>) -> Result<()> {
    Ok(app.client.calls().accept()?)
}

#[tauri::command]
pub fn decline_call(app: State<'_, App>) -> Result<()> {
    Ok(app.client.calls().decline()?)
}

#[tauri::command]
pub fn hang_up(app: State<'_, App>) -> Result<()> {
    Ok(app.client.calls().hang_up()?)
}

#[tauri::command]
pub fn set_muted(app: State<'_, App>, muted: bool) -> Result<()> {
    Ok(app.client.calls().set_muted(muted)?)
}

/// Where a picked file waits while the core takes it in.
pub(crate) fn staging_path(profile: &std::path::Path, name: &str) -> PathBuf {
    let safe: String = name
        .chars()
        .rev()
        .take(80)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .map(|c| if c.is_alphanumeric() || c == '.' || c == '-' || c == '_' { c } else { '_' })
        .collect();
    profile.join("picked").join(uuid::Uuid::new_v4().simple().to_string()).join(safe)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_the_ui_are_decoded_and_made_safe() {
        assert_eq!(percent_decode("caf%C3%A9%20photo.jpg"), "café photo.jpg");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
        let p = staging_path(std::path::Path::new("/p"), "../../x y.JPG");
        assert!(p.starts_with("/p/picked"));
        assert_eq!(p.file_name().and_then(|n| n.to_str()), Some(".._.._x_y.JPG"));
        assert!(is_photo("IMG_1.JPG") && is_photo("a.webp") && !is_photo("notes.txt"));
    }

    /// A contact code (version 1), as someone might show instead of the code a screen wants.
    fn anns_contact_code() -> ContactCode {
        ContactCode {
            server: "http://127.0.0.1:7878".into(),
            user: "ann".into(),
            key: "Q2xldmVyIGdpcmwhIGtleQ".into(),
            pin: None,
            verification: None,
        }
    }

    #[test]
    fn link_screens_tell_a_contact_code_from_a_link_code_in_text_and_pictures() {
        let link = LinkCode { server: "http://127.0.0.1:7878".into(), secret: [7; 32], pin: None };
        let contact = anns_contact_code();
        let read = Scanned::<LinkCode>::parse(&link.to_uri()).expect("a link code");
        assert!(read.link_code().is_ok_and(|c| c == link));
        let mistaken =
            Scanned::<LinkCode>::parse(&contact.to_uri()).expect("a contact code is told apart");
        let e = mistaken.link_code().expect_err("not a link code");
        assert_eq!(e.code, ErrorCode::BadLinkCode);
        assert!(e.message.starts_with("This is a contact code"), "{}", e.message);
        assert!(Scanned::<LinkCode>::parse("hello").is_err());

        use tidings_core::contact::{qr_png, scan_for};
        let scanned = scan_for::<Scanned<LinkCode>>(&qr_png(&link, 4)).expect("the QR code reads");
        assert!(scanned.link_code().is_ok_and(|c| c == link));
        let scanned =
            scan_for::<Scanned<LinkCode>>(&qr_png(&contact, 4)).expect("the QR code reads");
        assert!(scanned.link_code().is_err_and(|e| e.code == ErrorCode::BadLinkCode));
    }

    #[test]
    fn verify_screens_tell_a_contact_code_from_a_security_code_in_text_and_pictures() {
        let verify =
            VerifyCode { from: "ann".into(), to: "bob".into(), code: "0123456789".repeat(6) };
        let contact = anns_contact_code();
        let read = Scanned::<VerifyCode>::parse(&verify.to_uri()).expect("a verify code");
        assert!(read.verify_code().is_ok_and(|c| c == verify));
        let mistaken =
            Scanned::<VerifyCode>::parse(&contact.to_uri()).expect("a contact code is told apart");
        let e = mistaken.verify_code().expect_err("not a verify code");
        assert_eq!(e.code, ErrorCode::BadVerifyCode);
        assert!(e.message.contains("Security code screen"), "{}", e.message);
        assert!(Scanned::<VerifyCode>::parse("hello").is_err());

        use tidings_core::contact::{qr_png, scan_for};
        let scanned =
            scan_for::<Scanned<VerifyCode>>(&qr_png(&verify, 4)).expect("the QR code reads");
        assert!(scanned.verify_code().is_ok_and(|c| c == verify));
    }

    #[test]
    fn server_addresses_get_a_scheme() {
        assert_eq!(
            normalize_server(" 127.0.0.1:7878/ ").ok().as_deref(),
            Some("http://127.0.0.1:7878")
        );
        assert_eq!(
            normalize_server("https://chat.example").ok().as_deref(),
            Some("https://chat.example")
        );
        assert!(normalize_server("  ").is_err());
    }
}
