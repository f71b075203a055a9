//! The `tidings` binary: `tidings serve` runs the server; the client commands (client.rs)
//! drive a profile through tidings-core. docs/cli.md documents them.

mod call;
mod client;
mod contacts;

use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "tidings", version, about = "Tidings: an offline-first messenger")]
struct Cli {
    /// Profile directory of the client commands.
    #[arg(long, global = true, env = "TIDINGS_PROFILE")]
    profile: Option<PathBuf>,
    /// Print one JSON object per line.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server on an embedded SQLite database (no other process needed).
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:7878", env = "TIDINGS_LISTEN")]
        listen: SocketAddr,
        /// Data directory (database and media). Default: the user's data directory.
        #[arg(long, env = "TIDINGS_DATA")]
        data: Option<PathBuf>,
        /// Largest media upload in bytes (the default holds a 100 MiB file sealed).
        #[arg(long, default_value_t = tidings_server::config::DEFAULT_MAX_UPLOAD_BYTES)]
        max_upload_bytes: u64,
        #[command(flatten)]
        ice: IceArgs,
        #[command(flatten)]
        tls: TlsArgs,
        /// A reverse proxy (its IP address) whose X-Forwarded-For names the client, for the
        /// per-address limits; repeatable. Its own connections are not counted.
        #[arg(long = "trusted-proxy")]
        trusted_proxies: Vec<std::net::IpAddr>,
        /// Where /metrics is served: `main` (beside the protocol), `off`, or an address of
        /// its own such as 127.0.0.1:9100.
        #[arg(long, default_value = "main", value_parser = parse_metrics)]
        metrics: tidings_server::config::MetricsAt,
        /// Sign-ups one address may make at once (and again per hour); load tests from one
        /// machine raise it.
        #[arg(long, default_value_t = 30)]
        sign_ups_per_addr: u32,
        /// Open TCP connections one address may hold (IPv4, or an IPv6 /64).
        #[arg(long, default_value_t = 1000)]
        max_connections_per_addr: usize,
        /// Joined connections one device (session) may hold.
        #[arg(long, default_value_t = 16)]
        max_connections_per_device: usize,
        /// Devices one account may have signed in at once (each is a leaf in every group of
        /// the account's rooms).
        #[arg(long, default_value_t = tidings_server::config::DEFAULT_MAX_DEVICES_PER_USER)]
        max_devices_per_user: usize,
        /// Rooms one user may be in (at most 5,000).
        #[arg(long, default_value_t = tidings_proto::limits::MAX_ROOMS_PER_USER)]
        max_rooms_per_user: usize,
        /// Open requests (rooms from people not in their contacts) one user may hold (at
        /// most 100).
        #[arg(long, default_value_t = tidings_proto::limits::MAX_REQUESTS_PER_USER)]
        max_requests_per_user: usize,
        /// A session (a signed-in device) ends this many days after its sign-in, however
        /// active; unused, it ends after 90 days (or this, if shorter).
        #[arg(long, default_value_t = 365)]
        session_days: u64,
    },
    /// Create an account and sign this profile in (password on stdin).
    Signup(SessionArgs),
    /// Sign this profile in to an existing account as a new device (password on stdin).
    Login(SessionArgs),
    /// Sign this device out (on the server too); with --everywhere, every device of mine.
    Logout {
        /// Sign out every device of this account (a lost phone, a leaked password).
        #[arg(long)]
        everywhere: bool,
    },
    /// List this account's signed-in devices.
    Devices,
    /// Change my password: the current one, then the new one, each on a line of stdin.
    /// Every other device is signed out.
    Passwd,
    /// Show who this profile is signed in as.
    Whoami,
    /// Add a user to a group room.
    Invite {
        /// Room id.
        room: String,
        /// Username.
        username: String,
    },
    /// Leave a room.
    Leave {
        /// Room id.
        room: String,
    },
    /// Rename a group room.
    Rename {
        /// Room id.
        room: String,
        /// New name.
        name: String,
    },
    /// Tell the room I am typing.
    Typing {
        /// Room id.
        room: String,
    },
    /// Stay connected and print every event as it happens.
    Listen,
    /// Create a room (direct with one member and no name, else a group).
    CreateRoom {
        /// Group name.
        #[arg(long)]
        name: Option<String>,
        /// Members by username.
        #[arg(long = "member", required = true, num_args = 1..)]
        members: Vec<String>,
    },
    /// Queue a text message or a photo; returns at once, also offline.
    Send {
        /// Room id (from `rooms`).
        room: String,
        /// The text.
        #[arg(required_unless_present_any = ["image", "file"], conflicts_with_all = ["image", "file"])]
        text: Option<String>,
        /// Send this photo (JPEG, PNG, WebP or GIF) instead of a text.
        #[arg(long, conflicts_with = "file")]
        image: Option<PathBuf>,
        /// Send this file (any type, up to 100 MB; a video gets a preview).
        #[arg(long)]
        file: Option<PathBuf>,
        /// The photo's caption.
        #[arg(long, requires = "image")]
        caption: Option<String>,
    },
    /// Reply to message SEQ of a room (it is quoted).
    Reply {
        /// Room id.
        room: String,
        /// The message's seq.
        seq: u64,
        /// The text.
        text: String,
    },
    /// Edit my message SEQ: its text (a photo's caption) becomes TEXT, shown as edited.
    Edit {
        /// Room id.
        room: String,
        /// The message's seq.
        seq: u64,
        /// The new text.
        text: String,
    },
    /// Delete my message SEQ for everyone (a stub stays), or with --for-me any message from
    /// this device only.
    Delete {
        /// Room id.
        room: String,
        /// The message's seq.
        seq: u64,
        /// Only on this device (anyone's message; nothing is sent).
        #[arg(long)]
        for_me: bool,
    },
    /// React to message SEQ with an emoji.
    React {
        /// Room id.
        room: String,
        /// The message's seq.
        seq: u64,
        /// The emoji.
        emoji: String,
    },
    /// Take back my reaction EMOJI to message SEQ.
    Unreact {
        /// Room id.
        room: String,
        /// The message's seq.
        seq: u64,
        /// The emoji.
        emoji: String,
    },
    /// Forward message SEQ of ROOM to room TO_ROOM (a photo or file is not uploaded again).
    Forward {
        /// Room id of the message.
        room: String,
        /// The message's seq.
        seq: u64,
        /// Room id to forward it to.
        to_room: String,
    },
    /// Set a room's disappearing-message timer: messages sent after it are erased on every
    /// device SECONDS after they were sent; `off` turns it off.
    Disappearing {
        /// Room id.
        room: String,
        /// Seconds (at most four weeks), or `off`.
        seconds: String,
    },
    /// Mute a room (only messages that mention me notify), or unmute it with --off.
    Mute {
        /// Room id.
        room: String,
        /// Unmute.
        #[arg(long)]
        off: bool,
    },
    /// Search my messages on this device (works offline): messages with every word (the
    /// last one as a prefix; case and accents ignored), newest first, with the matching words
    /// marked.
    Search {
        /// The words.
        query: String,
        /// Only in this room.
        #[arg(long)]
        room: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Write a message's photo to a file: the full image (downloaded if not cached) or,
    /// with --thumbnail, the thumbnail that came with the message.
    FetchMedia {
        /// Room id.
        room: String,
        /// The message's seq.
        seq: u64,
        /// Where to write it.
        #[arg(long)]
        out: PathBuf,
        /// The thumbnail instead of the full image (no network needed).
        #[arg(long)]
        thumbnail: bool,
    },
    /// Connect, send the outbox, catch up; exit 0 when done.
    Sync {
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// List rooms.
    Rooms,
    /// Show a room's messages, oldest first.
    Messages {
        /// Room id.
        room: String,
        /// How many of the newest.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Mark everything in a room read (sent on the next sync).
    Read {
        /// Room id.
        room: String,
    },
    /// List pending and failed outbox items.
    Outbox,
    /// Put a failed outbox item back in line.
    Retry {
        /// Outbox id.
        id: i64,
    },
    /// Drop a failed outbox item.
    Discard {
        /// Outbox id.
        id: i64,
    },
    /// Call a user (voice, a synthetic tone); prints the call's states, exits with its
    /// outcome.
    Call {
        /// Username.
        username: String,
        /// Hang up this many seconds after the call connects.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[command(flatten)]
        audio: call::CallArgs,
    },
    /// Print my contact code (and write it as a QR code).
    ContactCode {
        /// Write the QR code as PNG here.
        #[arg(long)]
        png: Option<PathBuf>,
        /// Write the QR code as SVG here.
        #[arg(long)]
        svg: Option<PathBuf>,
        /// A new code (the old one stops working).
        #[arg(long)]
        reset: bool,
        /// With --reset: the new code stops working after this many minutes.
        #[arg(long, requires = "reset")]
        minutes: Option<f64>,
    },
    /// Replace my contact code (the old one stops working); prints the new one.
    ResetContactCode {
        /// The new code stops working after this many minutes.
        #[arg(long)]
        minutes: Option<f64>,
    },
    /// Add a contact from their code, or from a picture of their QR code.
    AddContact {
        /// The code (tidings:contact?…).
        #[arg(required_unless_present = "qr_image", conflicts_with = "qr_image")]
        uri: Option<String>,
        /// A picture of their QR code (PNG, JPEG, WebP, GIF; a photo of a screen works).
        #[arg(long)]
        qr_image: Option<PathBuf>,
    },
    /// Offer a session on my account to a new device: print the link code (and write it as a
    /// QR code). It works once, for a few minutes; a new one replaces it.
    LinkCode {
        /// Also send the new device my chats' history as this device has it (sealed; its
        /// size is printed). The new device imports it at its first `sync`.
        #[arg(long)]
        history: bool,
        /// Write the QR code as PNG here.
        #[arg(long)]
        png: Option<PathBuf>,
        /// Write the QR code as SVG here.
        #[arg(long)]
        svg: Option<PathBuf>,
    },
    /// Sign this profile in as a new device of my account, from the link code another of my
    /// devices shows (no password; my identity comes with it).
    Link {
        /// The code (tidings:link?…).
        #[arg(required_unless_present = "qr_image", conflicts_with = "qr_image")]
        uri: Option<String>,
        /// A picture of the QR code (PNG, JPEG, WebP, GIF; a photo of a screen works).
        #[arg(long)]
        qr_image: Option<PathBuf>,
    },
    /// List my contacts.
    Contacts,
    /// The security code I share with someone: 60 digits to compare with theirs (on their
    /// device, or read aloud); the same on both sides only if nobody swapped our keys.
    SecurityCode {
        /// Their username.
        username: String,
        /// Write it as a QR code for them to scan (`verify`), as PNG here.
        #[arg(long)]
        png: Option<PathBuf>,
        /// … as SVG here.
        #[arg(long)]
        svg: Option<PathBuf>,
    },
    /// Verify someone by the security code their device shows (its QR code, or its text):
    /// it must be the code I share with them.
    Verify {
        /// Their username.
        username: String,
        /// The code's text (tidings:verify?…).
        #[arg(required_unless_present = "qr_image", conflicts_with = "qr_image")]
        uri: Option<String>,
        /// A picture of the QR code on their screen.
        #[arg(long)]
        qr_image: Option<PathBuf>,
    },
    /// Accept someone's new security code after it changed: sending to them resumes (verify
    /// them again to be sure it is them).
    AcceptKey {
        /// Their username.
        username: String,
    },
    /// Rooms people who are not my contacts put me in, waiting for my answer.
    Requests,
    /// Accept a request: the room becomes a chat (replying to it accepts it too).
    Accept {
        /// Room id.
        room: String,
    },
    /// Decline a request: leave the room.
    Decline {
        /// Room id.
        room: String,
    },
    /// Block a user: no rooms, invitations, calls or direct messages from them; their open
    /// requests are declined.
    Block {
        /// Username.
        username: String,
    },
    /// Unblock a user.
    Unblock {
        /// Username.
        username: String,
    },
    /// List the users I block.
    Blocked,
    /// People nearby: opt-in, for at most an hour, shown as a distance bucket.
    Nearby {
        #[command(subcommand)]
        action: NearbyAction,
    },
    /// Find a user by exact username.
    FindUser {
        /// Username.
        username: String,
    },
    /// Wait for a call and take it; prints its states, exits when it ends.
    Answer {
        /// Accept at once (else ask on stdin).
        #[arg(long)]
        auto: bool,
        #[command(flatten)]
        audio: call::CallArgs,
    },
}

/// `nearby` subcommands.
#[derive(Subcommand, Debug)]
enum NearbyAction {
    /// Be visible to people nearby (only a ~1 km cell leaves this device).
    On {
        /// Latitude, degrees.
        #[arg(long, allow_negative_numbers = true)]
        lat: f64,
        /// Longitude, degrees.
        #[arg(long, allow_negative_numbers = true)]
        lon: f64,
        /// Stay visible this long (at most 60).
        #[arg(long, default_value_t = 60.0)]
        minutes: f64,
    },
    /// Stop being visible, at once.
    Off,
    /// Who is visible nearby (needs `nearby on`).
    List,
}

/// STUN/TURN servers handed to clients for calls.
#[derive(clap::Args, Default)]
struct IceArgs {
    /// A STUN server URL (stun:host:port); repeatable.
    #[arg(long = "stun-url")]
    stun_urls: Vec<String>,
    /// A TURN server URL (turn:host:port?transport=udp); repeatable. Needs the secret.
    #[arg(long = "turn-url")]
    turn_urls: Vec<String>,
    /// The secret shared with the TURN server (coturn use-auth-secret); best given in the
    /// environment so it stays out of the process list.
    #[arg(long, env = "TIDINGS_TURN_SECRET", hide_env_values = true)]
    turn_secret: Option<String>,
}

impl std::fmt::Debug for IceArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceArgs")
            .field("stun_urls", &self.stun_urls)
            .field("turn_urls", &self.turn_urls)
            .field("turn_secret", &self.turn_secret.as_ref().map(|_| "…"))
            .finish()
    }
}

fn parse_metrics(s: &str) -> Result<tidings_server::config::MetricsAt, String> {
    use tidings_server::config::MetricsAt;
    match s {
        "main" => Ok(MetricsAt::Main),
        "off" => Ok(MetricsAt::Off),
        addr => addr
            .parse()
            .map(MetricsAt::Separate)
            .map_err(|_| format!("{addr:?} is not main, off or an address like 127.0.0.1:9100")),
    }
}

/// TLS on the listener (docs/deploy.md).
#[derive(clap::Args, Debug)]
struct TlsArgs {
    /// Certificate chain (PEM, leaf first); reloaded on SIGHUP.
    #[arg(long, requires = "tls_key", conflicts_with = "tls_self_signed")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM); reloaded on SIGHUP.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// A self-signed certificate, made once and kept in the data directory; its fingerprint
    /// is printed at start for clients to pin (`signup --pin`).
    #[arg(long)]
    tls_self_signed: bool,
}

impl TlsArgs {
    fn source(self) -> Option<tidings_server::tls::TlsSource> {
        match (self.tls_cert, self.tls_key, self.tls_self_signed) {
            (Some(cert), Some(key), _) => Some(tidings_server::tls::TlsSource::Files { cert, key }),
            (_, _, true) => Some(tidings_server::tls::TlsSource::SelfSigned),
            _ => None,
        }
    }
}

/// Where and as whom to sign in.
#[derive(clap::Args, Debug)]
struct SessionArgs {
    /// Server address: `chat.example.org[:port]` (https), `https://…`, or `http://…` to this
    /// machine or a private network only.
    #[arg(long)]
    server: String,
    /// Trust the server by its certificate's fingerprint (`sha256:…`, as `tidings serve
    /// --tls-self-signed` prints it) instead of the system's certificate authorities.
    #[arg(long)]
    pin: Option<String>,
    /// Username.
    #[arg(long)]
    username: String,
    /// Read the password from the first line of stdin (the only way to give it).
    #[arg(long, required = true)]
    password_stdin: bool,
}

fn default_data_dir() -> anyhow::Result<PathBuf> {
    let dirs = directories::ProjectDirs::from("", "", "tidings")
        .context("Cannot find the user's data directory; pass --data")?;
    Ok(dirs.data_dir().join("server"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The server logs what it does; client commands keep stderr for errors unless asked.
    let default_level = if matches!(cli.command, Command::Serve { .. }) { "info" } else { "warn" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default_level.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(client::EXIT_FAILURE);
        }
    };
    if let Command::Serve {
        listen,
        data,
        max_upload_bytes,
        ice,
        tls,
        trusted_proxies,
        metrics,
        sign_ups_per_addr,
        max_connections_per_addr,
        max_connections_per_device,
        max_devices_per_user,
        max_rooms_per_user,
        max_requests_per_user,
        session_days,
    } = cli.command
    {
        let served = runtime.block_on(async {
            let data = match data {
                Some(d) => d,
                None => default_data_dir()?,
            };
            let mut config = tidings_server::Config::new(listen, data);
            config.max_upload_bytes = max_upload_bytes;
            config.tls = tls.source();
            config.trusted_proxies = trusted_proxies;
            config.metrics = metrics;
            config.max_connections_per_addr = max_connections_per_addr;
            config.max_connections_per_device = max_connections_per_device;
            config.max_devices_per_user = max_devices_per_user;
            config.max_rooms_per_user = max_rooms_per_user;
            config.max_requests_per_user = max_requests_per_user;
            config.session_max_age = std::time::Duration::from_secs(session_days * 24 * 3600);
            let burst = f64::from(sign_ups_per_addr);
            config.sign_up_rate_per_addr =
                tidings_server::ratelimit::Rate { per_second: burst / 3600.0, burst };
            serve(config, ice).await
        });
        return match served {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(client::EXIT_FAILURE)
            }
        };
    }
    let out = client::Output { json: cli.json };
    let result = runtime.block_on(async {
        let c = client::open(cli.profile)?;
        match cli.command {
            Command::Serve { .. } => Ok(()),
            Command::Signup(a) => {
                client::session(&c, out, true, &a.server, a.pin.as_deref(), &a.username).await
            }
            Command::Login(a) => {
                client::session(&c, out, false, &a.server, a.pin.as_deref(), &a.username).await
            }
            Command::Whoami => client::whoami(&c, out).await,
            Command::Logout { everywhere } => client::logout(&c, everywhere).await,
            Command::Passwd => client::passwd(&c).await,
            Command::Devices => client::devices(&c, out).await,
            Command::Invite { room, username } => client::invite(&c, out, &room, &username).await,
            Command::Leave { room } => client::leave(&c, out, &room).await,
            Command::Rename { room, name } => client::rename(&c, out, &room, &name).await,
            Command::Typing { room } => client::typing(&c, &room).await,
            Command::Listen => client::listen(&c, out).await,
            Command::CreateRoom { name, members } => {
                client::create_room(&c, out, name.as_deref(), &members).await
            }
            Command::Send { room, image: Some(image), caption, .. } => {
                client::send_image(&c, out, &room, &image, caption.as_deref().unwrap_or("")).await
            }
            Command::Send { room, file: Some(file), .. } => {
                client::send_file(&c, out, &room, &file).await
            }
            Command::Send { room, text, image: None, .. } => {
                client::send(&c, out, &room, text.as_deref().unwrap_or("")).await
            }
            Command::Reply { room, seq, text } => client::reply(&c, out, &room, seq, &text).await,
            Command::Edit { room, seq, text } => {
                client::relate(&c, out, &room, seq, client::Relate::Edit(&text)).await
            }
            Command::Delete { room, seq, for_me: true } => {
                client::delete_for_me(&c, &room, seq).await
            }
            Command::Delete { room, seq, for_me: false } => {
                client::relate(&c, out, &room, seq, client::Relate::Delete).await
            }
            Command::React { room, seq, emoji } => {
                client::relate(&c, out, &room, seq, client::Relate::React(&emoji)).await
            }
            Command::Unreact { room, seq, emoji } => {
                client::relate(&c, out, &room, seq, client::Relate::Unreact(&emoji)).await
            }
            Command::Forward { room, seq, to_room } => {
                client::forward(&c, out, &room, seq, &to_room).await
            }
            Command::Disappearing { room, seconds } => {
                client::disappearing(&c, out, &room, &seconds).await
            }
            Command::Mute { room, off } => client::mute(&c, &room, !off).await,
            Command::Search { query, room, limit } => {
                client::search(&c, out, &query, room.as_deref(), limit).await
            }
            Command::FetchMedia { room, seq, out: file, thumbnail } => {
                client::fetch_media(&c, &room, seq, &file, thumbnail).await
            }
            Command::Sync { timeout } => client::sync_now(&c, timeout).await,
            Command::Rooms => client::rooms(&c, out).await,
            Command::Messages { room, limit } => client::messages(&c, out, &room, limit).await,
            Command::Read { room } => client::read(&c, &room).await,
            Command::Outbox => client::outbox(&c, out).await,
            Command::Retry { id } => client::outbox_action(&c, id, true).await,
            Command::Discard { id } => client::outbox_action(&c, id, false).await,
            Command::Call { username, seconds, audio } => {
                call::call(&c, out, &username, seconds, &audio).await
            }
            Command::Answer { auto, audio } => call::answer(&c, out, auto, &audio).await,
            Command::ContactCode { png, svg, reset, minutes } => {
                contacts::contact_code(&c, out, reset, minutes, png.as_deref(), svg.as_deref())
                    .await
            }
            Command::ResetContactCode { minutes } => {
                contacts::contact_code(&c, out, true, minutes, None, None).await
            }
            Command::AddContact { uri, qr_image } => {
                contacts::add_contact(&c, out, uri.as_deref(), qr_image.as_deref()).await
            }
            Command::LinkCode { history, png, svg } => {
                client::link_code(&c, out, history, png.as_deref(), svg.as_deref()).await
            }
            Command::Link { uri, qr_image } => {
                client::link(&c, out, uri.as_deref(), qr_image.as_deref()).await
            }
            Command::Contacts => contacts::contacts(&c, out).await,
            Command::SecurityCode { username, png, svg } => {
                contacts::security_code(&c, out, &username, png.as_deref(), svg.as_deref()).await
            }
            Command::Verify { username, uri, qr_image } => {
                contacts::verify(&c, out, &username, uri.as_deref(), qr_image.as_deref()).await
            }
            Command::AcceptKey { username } => contacts::accept_key(&c, &username).await,
            Command::Requests => contacts::requests(&c, out).await,
            Command::Accept { room } => contacts::accept(&c, out, &room).await,
            Command::Decline { room } => contacts::decline(&c, out, &room).await,
            Command::Block { username } => contacts::block(&c, &username, true).await,
            Command::Unblock { username } => contacts::block(&c, &username, false).await,
            Command::Blocked => contacts::blocked(&c, out).await,
            Command::FindUser { username } => contacts::find_user(&c, out, &username).await,
            Command::Nearby { action: NearbyAction::On { lat, lon, minutes } } => {
                contacts::nearby_on(&c, lat, lon, minutes).await
            }
            Command::Nearby { action: NearbyAction::Off } => contacts::nearby_off(&c).await,
            Command::Nearby { action: NearbyAction::List } => contacts::nearby_list(&c, out).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("error: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

async fn serve(mut config: tidings_server::Config, ice: IceArgs) -> anyhow::Result<()> {
    // Every connection is a file descriptor: take the hard limit rather than the shell's
    // usual soft limit of 1024.
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        tracing::warn!(error = %e, "Cannot raise the open-files limit.");
    }
    if !ice.turn_urls.is_empty() && ice.turn_secret.is_none() {
        anyhow::bail!("--turn-url needs the TURN secret (TIDINGS_TURN_SECRET)");
    }
    config.stun_urls = ice.stun_urls;
    config.turn_urls = ice.turn_urls;
    config.turn_secret = ice.turn_secret.map(tidings_server::config::Secret);
    let data = config.data_dir.clone();
    let server = tidings_server::Server::bind(config).await?;
    tracing::info!(data = %data.display(), "Data directory.");
    if let Some(addr) = server.metrics_addr() {
        tracing::info!(%addr, "Metrics on their own address.");
    }
    // The first stdout line is the URL, for people and for scripts that start a server.
    println!("Tidings server listening on {}", server.url()?);
    if let Some(tls) = server.tls() {
        // What clients pin (`tidings signup --pin …`), worth showing for a CA-signed one too.
        // Not println!: a script that read only the first line must not stop the server.
        use std::io::Write;
        let _ = writeln!(std::io::stdout(), "TLS certificate fingerprint: {}", tls.fingerprint());
        reload_on_hangup(tls);
    }
    server.run(shutdown_signal()).await
}

/// Reads the certificate again on each SIGHUP (a renewed Let's Encrypt certificate), without
/// dropping a connection; a failed reload keeps the old one.
fn reload_on_hangup(tls: std::sync::Arc<tidings_server::tls::Tls>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            tracing::warn!("Cannot listen for SIGHUP: the certificate will not be reloaded.");
            return;
        };
        while hangups.recv().await.is_some() {
            match tls.reload() {
                Ok(()) => {
                    tracing::info!(fingerprint = %tls.fingerprint(), "TLS certificate reloaded.")
                }
                Err(e) => {
                    tracing::error!(error = %e, "TLS certificate not reloaded; keeping the old one.")
                }
            }
        }
    });
    #[cfg(not(unix))]
    let _ = tls;
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
