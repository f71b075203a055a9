//! The client commands of `tidings`: a thin layer over tidings-core for scripts and bots.
//!
//! Output: one line per item; with `--json`, one JSON object per line. Errors: one line on
//! stderr and a non-zero exit code (docs/cli.md lists them).

use std::{io::BufRead, path::PathBuf, time::Duration};

use serde_json::json;
use tidings_core::{endpoint::Endpoint, sync, Client, Error};
use tidings_proto::RoomKind;

/// Exit code for a usage or input error.
pub const EXIT_USAGE: u8 = 2;
/// Exit code when the server cannot be reached or a sync timed out.
pub const EXIT_NETWORK: u8 = 3;
/// Exit code for any other failure.
pub const EXIT_FAILURE: u8 = 1;

/// A client command's failure, with the exit code it maps to.
#[derive(Debug)]
pub struct Failure {
    /// Exit code.
    pub code: u8,
    /// One line for stderr.
    pub message: String,
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let code = match &e {
            Error::Network(_) | Error::Tls(_) => EXIT_NETWORK,
            Error::Invalid(_)
            | Error::NoSuchRoom(_)
            | Error::NotARequest(_)
            | Error::NoSuchOutboxItem(_)
            | Error::NoSuchMessage(_)
            | Error::NotYourMessage(_)
            | Error::Photo(_)
            | Error::NoSuchImage { .. }
            | Error::ForeignServer { .. }
            | Error::Scan(_)
            | Error::ContactCode(_)
            | Error::LinkScan(_)
            | Error::LinkCode(_)
            | Error::VerifyScan(_)
            | Error::VerifyCode(_)
            | Error::Address(_) => EXIT_USAGE,
            _ => EXIT_FAILURE,
        };
        Failure { code, message: e.to_string() }
    }
}

/// How to print.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// One JSON object per line.
    pub json: bool,
}

impl Output {
    pub(crate) fn line(&self, value: serde_json::Value, human: impl FnOnce() -> String) {
        if self.json {
            println!("{value}");
        } else {
            println!("{}", human());
        }
    }
}

/// Opens the profile given by `--profile` / `TIDINGS_PROFILE`.
pub fn open(profile: Option<PathBuf>) -> Result<Client, Failure> {
    let dir = profile.ok_or_else(|| Failure {
        code: EXIT_USAGE,
        message: "no profile: pass --profile DIR or set TIDINGS_PROFILE".into(),
    })?;
    Ok(Client::open(&dir)?)
}

fn read_password() -> Result<String, Failure> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).map_err(|e| Failure {
        code: EXIT_USAGE,
        message: format!("cannot read the password from stdin: {e}"),
    })?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

pub(crate) fn parse_room(room: &str) -> Result<i64, Failure> {
    room.parse()
        .map_err(|_| Failure { code: EXIT_USAGE, message: format!("not a room id: {room}") })
}

/// `signup` / `login`.
pub async fn session(
    client: &Client,
    out: Output,
    new_account: bool,
    server: &str,
    pin: Option<&str>,
    username: &str,
) -> Result<(), Failure> {
    let pin = pin.map(str::parse).transpose().map_err(Error::Address)?;
    let server = Endpoint::parse(server).map_err(Error::Address)?.pinned(pin);
    if pin.is_some() && server.pin().is_none() {
        return Err(Failure { code: EXIT_USAGE, message: "--pin needs an https:// server".into() });
    }
    let password = read_password()?;
    let account = if new_account {
        client.sessions().sign_up(&server, username, &password).await?
    } else {
        client.sessions().sign_in(&server, username, &password).await?
    };
    out.line(
        json!({"user": account.user_id, "username": account.username, "device": account.device_id}),
        || format!("signed in as {} (device {})", account.username, account.device_id),
    );
    Ok(())
}

/// `link-code`: offers a session on my account to a new device; prints the code and writes
/// it as a QR code if asked.
pub async fn link_code(
    client: &Client,
    out: Output,
    history: bool,
    png: Option<&std::path::Path>,
    svg: Option<&std::path::Path>,
) -> Result<(), Failure> {
    let offer = match history {
        true => client.sessions().offer_link_with_history().await?,
        false => client.sessions().offer_link().await?,
    };
    if let Some(path) = png {
        crate::contacts::write(path, &tidings_core::contact::qr_png(&offer.code, 8))?;
    }
    if let Some(path) = svg {
        crate::contacts::write(path, tidings_core::contact::qr_svg(&offer.code).as_bytes())?;
    }
    let uri = offer.code.to_uri();
    let sent = offer.history.map(|h| json!({"messages": h.messages, "bytes": h.bytes}));
    out.line(json!({"uri": uri, "expires_ms": offer.expires_ms, "history": sent}), || match offer
        .history
    {
        Some(h) => format!("{uri}\nhistory: {} messages, {} bytes", h.messages, h.bytes),
        None => uri.clone(),
    });
    Ok(())
}

/// `link (URI | --qr-image FILE)`: signs this profile in as a new device of the account
/// whose device shows the code.
pub async fn link(
    client: &Client,
    out: Output,
    uri: Option<&str>,
    qr_image: Option<&std::path::Path>,
) -> Result<(), Failure> {
    let code: tidings_core::link::LinkCode = crate::contacts::read_code(uri, qr_image).await?;
    let account = client.sessions().link(&code).await?;
    let history = client.history().pending().await?;
    out.line(
        json!({"user": account.user_id, "username": account.username, "device": account.device_id,
               "history": history}),
        || match history {
            Some(bytes) => format!(
                "linked as {} (device {}); `sync` imports the history sent with it ({bytes} bytes)",
                account.username, account.device_id
            ),
            None => format!("linked as {} (device {})", account.username, account.device_id),
        },
    );
    Ok(())
}

/// `whoami`.
pub async fn whoami(client: &Client, out: Output) -> Result<(), Failure> {
    let a = client.account().await?.ok_or(Error::NotSignedIn)?;
    let token = client.token_home().await?;
    out.line(
        json!({
            "token": token,
            "key": client.key_home(),
            "user": a.user_id,
            "username": a.username,
            "device": a.device_id,
            "server": a.server,
            "encrypted": a.server.starts_with("https://"),
            "pin": a.pin.map(|p| p.to_string()),
        }),
        || {
            let how = match (a.server.starts_with("https://"), a.pin) {
                (false, _) => " (not encrypted)".to_owned(),
                (true, Some(pin)) => format!(" (pinned {pin})"),
                (true, None) => String::new(),
            };
            format!("{} on {}{how} (device {})", a.username, a.server, a.device_id)
        },
    );
    Ok(())
}

/// `create-room`.
pub async fn create_room(
    client: &Client,
    out: Output,
    name: Option<&str>,
    members: &[String],
) -> Result<(), Failure> {
    let mut ids = Vec::new();
    for m in members {
        ids.push(client.contacts().lookup(m).await?);
    }
    let kind = if name.is_none() && ids.len() == 1 { RoomKind::Direct } else { RoomKind::Group };
    let room = client.rooms().create(kind, name, ids).await?;
    out.line(json!({"room": room.to_string()}), || room.to_string());
    Ok(())
}

/// `send`.
pub async fn send(client: &Client, out: Output, room: &str, text: &str) -> Result<(), Failure> {
    queued(out, client.room(parse_room(room)?).send_queue().send_text(text).await?);
    Ok(())
}

/// `reply`.
pub async fn reply(
    client: &Client,
    out: Output,
    room: &str,
    seq: u64,
    text: &str,
) -> Result<(), Failure> {
    let room = client.room(parse_room(room)?);
    let to = room.message_at(seq).await?;
    queued(out, room.send_queue().reply(to, text).await?);
    Ok(())
}

/// `forward`: queued like a send, also offline.
pub async fn forward(
    client: &Client,
    out: Output,
    room: &str,
    seq: u64,
    to_room: &str,
) -> Result<(), Failure> {
    let message = client.room(parse_room(room)?).message_at(seq).await?;
    let to = client.room(parse_room(to_room)?);
    queued(out, to.send_queue().forward(parse_room(room)?, message).await?);
    Ok(())
}

/// `disappearing`: `off` or seconds.
pub async fn disappearing(
    client: &Client,
    out: Output,
    room: &str,
    seconds: &str,
) -> Result<(), Failure> {
    let seconds = match seconds {
        "off" => 0,
        n => n.parse::<u32>().map_err(|_| Failure {
            code: EXIT_USAGE,
            message: format!("{n:?} is not a number of seconds or \"off\""),
        })?,
    };
    let room = client.room(parse_room(room)?);
    queued(out, room.send_queue().set_disappearing(seconds).await?);
    Ok(())
}

/// `mute`.
pub async fn mute(client: &Client, room: &str, muted: bool) -> Result<(), Failure> {
    client.room(parse_room(room)?).set_muted(muted).await?;
    Ok(())
}

/// What `edit`, `delete`, `react` and `unreact` do to a message.
pub enum Relate<'a> {
    /// `edit`.
    Edit(&'a str),
    /// `delete` (for everyone).
    Delete,
    /// `react`.
    React(&'a str),
    /// `unreact`.
    Unreact(&'a str),
}

/// `edit`, `delete`, `react`, `unreact`: queued like a send, also offline.
pub async fn relate(
    client: &Client,
    out: Output,
    room: &str,
    seq: u64,
    what: Relate<'_>,
) -> Result<(), Failure> {
    let room = client.room(parse_room(room)?);
    let to = room.message_at(seq).await?;
    let queue = room.send_queue();
    let request = match what {
        Relate::Edit(text) => queue.edit(to, text).await?,
        Relate::Delete => queue.delete_for_everyone(to).await?,
        Relate::React(emoji) => queue.react(to, emoji).await?,
        Relate::Unreact(emoji) => queue.unreact(to, emoji).await?,
    };
    queued(out, request);
    Ok(())
}

/// `delete --for-me`.
pub async fn delete_for_me(client: &Client, room: &str, seq: u64) -> Result<(), Failure> {
    let room = client.room(parse_room(room)?);
    let to = room.message_at(seq).await?;
    Ok(room.delete_for_me(to).await?)
}

/// `search`: one line per hit; the snippet's matching words in the JSON's `snippet` parts,
/// and between `[` `]` for people.
pub async fn search(
    client: &Client,
    out: Output,
    query: &str,
    room: Option<&str>,
    limit: usize,
) -> Result<(), Failure> {
    let room = room.map(parse_room).transpose()?;
    for hit in client.search(query, room, limit).await? {
        let marked: String = hit
            .snippet
            .iter()
            .map(|p| if p.hit { format!("[{}]", p.text) } else { p.text.clone() })
            .collect();
        out.line(
            json!({"room": hit.room.to_string(), "room_name": hit.room_name, "seq": hit.seq,
                   "request_id": hit.request_id, "sender": hit.sender, "at_ms": hit.at_ms,
                   "snippet": hit.snippet, "text": marked}),
            || format!("{} in {}: {marked}", hit.sender, hit.room_name),
        );
    }
    Ok(())
}

/// `send --image`.
pub async fn send_image(
    client: &Client,
    out: Output,
    room: &str,
    image: &std::path::Path,
    caption: &str,
) -> Result<(), Failure> {
    queued(out, client.room(parse_room(room)?).send_queue().send_image(image, caption).await?);
    Ok(())
}

/// `send --file`.
pub async fn send_file(
    client: &Client,
    out: Output,
    room: &str,
    file: &std::path::Path,
) -> Result<(), Failure> {
    queued(out, client.room(parse_room(room)?).send_queue().send_file(file).await?);
    Ok(())
}

/// `fetch-media`.
pub async fn fetch_media(
    client: &Client,
    room: &str,
    seq: u64,
    file: &std::path::Path,
    thumbnail: bool,
) -> Result<(), Failure> {
    let room = parse_room(room)?;
    let io = |e: std::io::Error| Failure {
        code: EXIT_FAILURE,
        message: format!("cannot write {}: {e}", file.display()),
    };
    if thumbnail {
        std::fs::write(file, client.media().thumbnail(room, seq).await?).map_err(io)?;
    } else {
        std::fs::write(file, client.media().open_full(room, seq).await?).map_err(io)?;
    }
    Ok(())
}

/// `sync`.
///
/// A server that cannot be reached, or a link that breaks, is tried again (backing off from
/// 0.2 s to 5 s) until the deadline: a script started before the server, or across a
/// restart, still syncs. Once caught up, the history archive that came with this device's
/// link, if any, is imported.
pub async fn sync_now(client: &Client, timeout: u64) -> Result<(), Failure> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
    let timed_out =
        || Failure { code: EXIT_NETWORK, message: format!("not caught up after {timeout} s") };
    let mut delay = Duration::from_millis(200);
    let once = || async {
        sync::sync_until_idle(client).await?;
        client.history().import().await.map(drop)
    };
    loop {
        match tokio::time::timeout_at(deadline, once()).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) if retryable(&e) => {
                if tokio::time::Instant::now() + delay >= deadline {
                    return Err(Failure { code: EXIT_NETWORK, message: e.to_string() });
                }
                tracing::debug!(error = %e, "Sync failed; trying again.");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => return Err(timed_out()),
        }
    }
}

/// A failure that may pass: the network, or a server saying "not now".
fn retryable(e: &Error) -> bool {
    match e {
        Error::Network(_) => true,
        Error::Server(info) => info.code.is_transient(),
        _ => false,
    }
}

/// `rooms`.
pub async fn rooms(client: &Client, out: Output) -> Result<(), Failure> {
    for r in client.rooms().list().await? {
        out.line(
            json!({"room": r.room.to_string(), "name": r.name, "unread": r.unread,
                   "last_seq": r.last_seq, "member": r.member, "request_from": r.request_from,
                   "disappearing_s": r.disappearing_s, "muted": r.muted,
                   "unread_mentions": r.unread_mentions, "draft": r.draft}),
            || format!("{}\t{}\t{} unread", r.room, r.name, r.unread),
        );
    }
    Ok(())
}

/// `messages`.
pub async fn messages(
    client: &Client,
    out: Output,
    room: &str,
    limit: usize,
) -> Result<(), Failure> {
    let room = parse_room(room)?;
    let mut page = client.room(room).timeline().page(None, limit).await?;
    page.reverse();
    for m in page {
        out.line(
            json!({"room": m.room.to_string(), "seq": m.seq, "request_id": m.request_id,
                   "sender": m.sender, "text": m.text, "state": m.state, "image": m.image,
                   "file": m.file, "video": m.video, "call": m.call, "reply_to": m.reply_to,
                   "edited": m.edited, "deleted": m.deleted, "reactions": m.reactions,
                   "forwarded": m.forwarded, "expires_ms": m.expires_ms,
                   "mentions_me": m.mentions_me, "notice": m.notice}),
            || format!("{}: {} [{:?}]", m.sender, m.text, m.state),
        );
    }
    Ok(())
}

/// `read`.
pub async fn read(client: &Client, room: &str) -> Result<(), Failure> {
    Ok(client.room(parse_room(room)?).mark_read().await?)
}

/// `outbox`.
pub async fn outbox(client: &Client, out: Output) -> Result<(), Failure> {
    for e in client.send_queue().items().await? {
        out.line(
            json!({"id": e.id, "request_id": e.request_id, "room": e.room.map(|r| r.to_string()),
                   "kind": e.kind, "state": e.state, "attempts": e.attempts, "error": e.error}),
            || {
                format!(
                    "{}\t{}\t{}\t{}",
                    e.id,
                    e.kind,
                    e.state,
                    e.error.clone().unwrap_or_default()
                )
            },
        );
    }
    Ok(())
}

/// `retry` / `discard`.
pub async fn outbox_action(client: &Client, id: i64, retry: bool) -> Result<(), Failure> {
    if retry {
        client.send_queue().retry(id).await?;
    } else {
        client.send_queue().discard(id).await?;
    }
    Ok(())
}

pub(crate) fn queued(out: Output, request: tidings_proto::RequestId) {
    out.line(json!({"request_id": request.to_string(), "state": "pending"}), || {
        format!("queued {request}")
    });
}

/// `logout`.
pub async fn logout(client: &Client, everywhere: bool) -> Result<(), Failure> {
    if everywhere {
        return Ok(client.sessions().sign_out_everywhere().await?);
    }
    Ok(client.sessions().sign_out().await?)
}

/// `devices`: one line per signed-in device of this account.
pub async fn devices(client: &Client, out: Output) -> Result<(), Failure> {
    for d in client.sessions().devices().await? {
        out.line(
            json!({
                "device": d.id,
                "name": d.name,
                "created_ms": d.created_ms,
                "last_seen_ms": d.last_seen_ms,
                "current": d.current,
            }),
            || format!("{} {}{}", d.id, d.name, if d.current { " (this device)" } else { "" }),
        );
    }
    Ok(())
}

/// `passwd`: the current password and the new one, a line each on stdin.
pub async fn passwd(client: &Client) -> Result<(), Failure> {
    let old = read_password()?;
    let new = read_password()?;
    Ok(client.sessions().change_password(&old, &new).await?)
}

/// `invite`.
pub async fn invite(
    client: &Client,
    out: Output,
    room: &str,
    username: &str,
) -> Result<(), Failure> {
    let room = parse_room(room)?;
    let user = client.contacts().lookup(username).await?;
    queued(out, client.room(room).invite(user).await?);
    Ok(())
}

/// `leave`.
pub async fn leave(client: &Client, out: Output, room: &str) -> Result<(), Failure> {
    queued(out, client.room(parse_room(room)?).leave().await?);
    Ok(())
}

/// `rename`.
pub async fn rename(client: &Client, out: Output, room: &str, name: &str) -> Result<(), Failure> {
    queued(out, client.room(parse_room(room)?).rename(name).await?);
    Ok(())
}

/// `typing`.
pub async fn typing(client: &Client, room: &str) -> Result<(), Failure> {
    Ok(client.room(parse_room(room)?).typing(true).await?)
}

/// `listen`: prints every event as a line until the session ends (signed out or revoked).
pub async fn listen(client: &Client, out: Output) -> Result<(), Failure> {
    let mut events = client.subscribe();
    let printer = async {
        while let Some(event) = events.recv().await {
            let value = serde_json::to_value(&event).unwrap_or_default();
            out.line(value, || format!("{event:?}"));
        }
    };
    tokio::select! {
        _ = printer => Ok(()),
        e = sync::run(client) => Err(e.into()),
        // Disappearing messages go when they expire.
        Err(e) = client.expire() => Err(e.into()),
    }
}
