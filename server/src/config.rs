//! Server configuration. `tidings serve` fills it from flags; tests build it directly.

use std::{
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    time::Duration,
};

use crate::ratelimit::Rate;

/// The default largest upload: a 100 MiB file, the clients' limit, plus its sealing
/// (core/src/e2ee/file.rs: padding and a tag per 64 KiB chunk, 25 KiB at that size).
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 101 * 1024 * 1024;

/// Devices one account may have signed in at once, unless configured otherwise (the cap
/// issue 16 sets for encrypted rooms: every device is a leaf in each of its rooms' groups).
pub const DEFAULT_MAX_DEVICES_PER_USER: usize = 5;

/// Everything the server can be told.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Directory for the database and media (created if missing).
    pub data_dir: PathBuf,
    /// How long a session token stays valid after its last Join (each Join extends it, up
    /// to `session_max_age`).
    pub session_ttl: Duration,
    /// How long a session lasts at most from its sign-in, however active (`--session-days`).
    pub session_max_age: Duration,
    /// How often the server pings an idle connection.
    pub ping_interval: Duration,
    /// A connection that sends nothing (not even a pong) for this long is dropped.
    pub idle_timeout: Duration,
    /// Largest media upload, bytes.
    pub max_upload_bytes: u64,
    /// Bytes of media one user may keep (their media plus what their open uploads reserve).
    pub quota_bytes: u64,
    /// Media files one user may keep (open uploads count).
    pub quota_files: u64,
    /// Resumable uploads one user may have open at once.
    pub max_open_uploads: u64,
    /// Media that no message lists is deleted this long after its upload (a client that
    /// uploaded and then went offline before sending has this long to send).
    pub unreferenced_media_grace: Duration,
    /// Below this many bytes free on the data directory's disk, writes that grow it are
    /// refused (`storage_full`) and reads go on.
    pub min_free_disk: u64,
    /// How often unreferenced media and abandoned uploads are swept.
    pub sweep_interval: Duration,
    /// How long a resumable upload may take: after this its partial bytes are deleted (and a
    /// finished one's record, kept so a client that lost the last answer can ask again).
    pub upload_ttl: Duration,
    /// Frames queued to one connection before it is dropped as too slow.
    pub outbound_queue: usize,
    /// Bytes queued to one connection before it is dropped as too slow.
    pub outbound_bytes: usize,
    /// Most simultaneous websocket connections.
    pub max_connections: usize,
    /// Most simultaneous TCP connections from one address (IPv4, or IPv6 /64); trusted
    /// proxies are not counted.
    pub max_connections_per_addr: usize,
    /// Rooms one user may be in at once (at most `limits::MAX_ROOMS_PER_USER`).
    pub max_rooms_per_user: usize,
    /// Open requests one user may hold (at most `limits::MAX_REQUESTS_PER_USER`).
    pub max_requests_per_user: usize,
    /// Most simultaneous joined connections of one device (session).
    pub max_connections_per_device: usize,
    /// A connection that has not joined (Hello, maybe SignUp/SignIn, then Join) within this
    /// long is closed: pongs alone do not keep a socket.
    pub join_timeout: Duration,
    /// Proxies whose `X-Forwarded-For` names the client (reverse proxies terminating TLS).
    pub trusted_proxies: Vec<IpAddr>,
    /// Where `/metrics` is served.
    pub metrics: MetricsAt,
    /// Password hashes computed at once (each takes a core for tens of milliseconds);
    /// more wait, and past `password_queue` waiting, sign-ins are refused `rate_limited`.
    pub password_hashers: usize,
    /// Password checks allowed to wait for a hasher.
    pub password_queue: usize,
    /// An upload slower than this on average, once `upload_grace` has passed, is cut.
    pub min_upload_bytes_per_s: u64,
    /// How long an upload may start slowly (a bad link) before its rate counts.
    pub upload_grace: Duration,
    /// Message sends (and other room-log mutations) per connection.
    pub send_rate: Rate,
    /// Typing notices per connection.
    pub typing_rate: Rate,
    /// Sign-in and sign-up attempts per connection, and sign-ins per username from one
    /// address (the owner elsewhere is never locked out by someone guessing).
    pub sign_in_rate: Rate,
    /// Sign-ins from one address, whatever the username.
    pub sign_in_rate_per_addr: Rate,
    /// Sign-ups from one address (30 at once, 30 an hour by default).
    pub sign_up_rate_per_addr: Rate,
    /// Username lookups per connection.
    pub lookup_rate: Rate,
    /// Call signals per connection.
    pub signal_rate: Rate,
    /// Receipts per connection.
    pub receipt_rate: Rate,
    /// Rooms created per user.
    pub create_room_rate: Rate,
    /// Contact-key resets per user.
    pub contact_key_reset_rate: Rate,
    /// Most devices signed in to one account at a time. Each is a leaf in every group of the
    /// account's rooms, so this bounds how large a room's group grows per member
    /// (docs/e2ee.md).
    pub max_devices_per_user: usize,
    /// How long a link code shown by a device can be redeemed by a new one.
    pub link_ttl: Duration,
    /// KeyPackage claims per user (each takes one of another user's one-time KeyPackages).
    pub key_package_claim_rate: Rate,
    /// People-nearby lookups (turning on, listing) per user.
    pub nearby_rate: Rate,
    /// STUN URLs handed to clients for calls.
    pub stun_urls: Vec<String>,
    /// TURN URLs (`turn:host:port?transport=udp`) handed out with credentials.
    pub turn_urls: Vec<String>,
    /// The secret shared with the TURN server (coturn `static-auth-secret`); without it no
    /// TURN server is handed out.
    pub turn_secret: Option<Secret>,
    /// How long TURN credentials stay valid (to make an allocation; one made keeps working
    /// for the call).
    pub turn_ttl: Duration,
    /// How long after an Inquire (sent or received) or a Grant a user may get TURN
    /// credentials: they are issued only around a call.
    pub turn_window: Duration,
    /// TLS on the listener (off: plain HTTP, for loopback or behind a TLS-terminating proxy).
    pub tls: Option<crate::tls::TlsSource>,
    /// Longest wait for an HTTP request's head (slow-loris clients are cut after it).
    pub header_timeout: Duration,
}

impl Config {
    /// The caps that bound what others can put on a user.
    pub(crate) fn caps(&self) -> crate::roomlog::Caps {
        crate::roomlog::Caps {
            rooms: self.max_rooms_per_user,
            requests: self.max_requests_per_user,
        }
    }

    /// Defaults for a server listening on `listen` with data in `data_dir`.
    pub fn new(listen: SocketAddr, data_dir: PathBuf) -> Self {
        Self {
            listen,
            data_dir,
            session_ttl: Duration::from_secs(90 * 24 * 3600),
            session_max_age: Duration::from_secs(365 * 24 * 3600),
            ping_interval: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(60),
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
            upload_ttl: Duration::from_secs(24 * 3600),
            quota_bytes: 10 << 30,
            quota_files: 20_000,
            max_open_uploads: 16,
            unreferenced_media_grace: Duration::from_secs(7 * 24 * 3600),
            sweep_interval: Duration::from_secs(3600),
            min_free_disk: 256 << 20,
            outbound_queue: 4096,
            outbound_bytes: 8 << 20,
            max_connections: 100_000,
            max_connections_per_addr: 1000,
            max_connections_per_device: 16,
            max_rooms_per_user: tidings_proto::limits::MAX_ROOMS_PER_USER,
            max_requests_per_user: tidings_proto::limits::MAX_REQUESTS_PER_USER,
            join_timeout: Duration::from_secs(30),
            trusted_proxies: Vec::new(),
            metrics: MetricsAt::Main,
            password_hashers: std::thread::available_parallelism()
                .map_or(1, |n| n.get().saturating_sub(1).max(1)),
            password_queue: 64,
            min_upload_bytes_per_s: 4096,
            upload_grace: Duration::from_secs(10),
            send_rate: Rate { per_second: 50.0, burst: 200.0 },
            typing_rate: Rate { per_second: 2.0, burst: 5.0 },
            sign_in_rate: Rate { per_second: 0.2, burst: 5.0 },
            sign_in_rate_per_addr: Rate { per_second: 0.5, burst: 30.0 },
            sign_up_rate_per_addr: Rate { per_second: 30.0 / 3600.0, burst: 30.0 },
            lookup_rate: Rate { per_second: 2.0, burst: 30.0 },
            signal_rate: Rate { per_second: 50.0, burst: 200.0 },
            receipt_rate: Rate { per_second: 20.0, burst: 100.0 },
            create_room_rate: Rate { per_second: 0.2, burst: 50.0 },
            contact_key_reset_rate: Rate { per_second: 1.0 / 60.0, burst: 5.0 },
            key_package_claim_rate: Rate { per_second: 1.0, burst: 300.0 },
            max_devices_per_user: DEFAULT_MAX_DEVICES_PER_USER,
            link_ttl: Duration::from_secs(10 * 60),
            nearby_rate: Rate { per_second: 1.0 / 60.0, burst: 6.0 },
            stun_urls: Vec::new(),
            turn_urls: Vec::new(),
            turn_secret: None,
            turn_ttl: Duration::from_secs(10 * 60),
            turn_window: Duration::from_secs(2 * 60),
            tls: None,
            header_timeout: Duration::from_secs(10),
        }
    }
}

/// Where `/metrics` is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsAt {
    /// On the main listener, beside the protocol.
    Main,
    /// On its own address (e.g. loopback only, for a local Prometheus), not on the main one.
    Separate(SocketAddr),
    /// Nowhere.
    Off,
}

/// A secret that never shows in `Debug` output (so never in a log).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}
