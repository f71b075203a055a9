//! Hard limits of the protocol. Decoders enforce them before allocating; the server also
//! enforces them on HTTP uploads. They are part of the protocol: docs/protocol.md lists them.

/// Largest websocket frame either side accepts, in bytes. Media never travels in frames.
pub const MAX_FRAME_BYTES: usize = 256 * 1024;
/// Largest message body (opaque payload), in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Largest SDP or ICE blob in a call signal, in bytes.
pub const MAX_SIGNAL_BYTES: usize = 16 * 1024;
/// Longest username, in bytes (usernames are ASCII).
pub const MAX_USERNAME_BYTES: usize = 32;
/// Shortest username.
pub const MIN_USERNAME_BYTES: usize = 3;
/// Longest password, in bytes.
pub const MAX_PASSWORD_BYTES: usize = 256;
/// Shortest password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest room name, in bytes.
pub const MAX_ROOM_NAME_BYTES: usize = 128;
/// Longest device or client name, in bytes.
pub const MAX_NAME_BYTES: usize = 64;
/// Longest session token, in bytes.
pub const MAX_TOKEN_BYTES: usize = 128;
/// Longest error message, in bytes.
pub const MAX_ERROR_BYTES: usize = 512;
/// Most members named when a room is created, and most members of a room.
pub const MAX_ROOM_MEMBERS: usize = 256;
/// Most room cursors in a Join (rooms a client may know).
pub const MAX_JOIN_ROOMS: usize = 10_000;
/// Rooms one user may be a member of at once (the server's default cap; a server may set
/// it lower, never above [`MAX_JOIN_ROOMS`], so that a Join always lists every room).
pub const MAX_ROOMS_PER_USER: usize = 5_000;
/// Open requests one user may hold at once (rooms from people who are not their contacts,
/// not yet accepted or declined); they do not count against [`MAX_ROOMS_PER_USER`].
pub const MAX_REQUESTS_PER_USER: usize = 100;
const _: () = assert!(
    MAX_ROOMS_PER_USER + MAX_REQUESTS_PER_USER <= MAX_JOIN_ROOMS,
    "a Join must list every room"
);
/// Most unconfirmed request ids in a Join.
pub const MAX_JOIN_UNCONFIRMED: usize = 1_000;
/// Most attachments referenced by one message.
pub const MAX_ATTACHMENTS: usize = 16;
/// Most events in one catch-up page.
pub const MAX_PAGE_EVENTS: usize = 500;
/// Most devices listed for one user.
pub const MAX_DEVICES: usize = 100;
/// Largest MLS KeyPackage, in bytes (a suite-1 one is about 300).
pub const MAX_KEY_PACKAGE_BYTES: usize = 2 * 1024;
/// Most KeyPackages published in one request, and most a device keeps on the server.
pub const MAX_KEY_PACKAGES: usize = 100;
/// Length of a link offer's id (a SHA-256).
pub const LINK_ID_BYTES: usize = 32;
/// Largest sealed payload of a link offer (an identity key and a little framing).
pub const MAX_LINK_OFFER_BYTES: usize = 256;
/// Largest MLS commit, Welcome or GroupInfo carried in a frame, in bytes. Three of them and
/// the rest of a request fit one frame.
pub const MAX_MLS_BYTES: usize = 80 * 1024;
/// Largest plaintext of a message in an end-to-end encrypted room: the MLS framing and
/// padding around it must still fit [`MAX_BODY_BYTES`].
pub const MAX_PLAINTEXT_BYTES: usize = MAX_BODY_BYTES - 1024;

/// People returned by one nearby lookup.
pub const MAX_NEARBY: usize = 50;
/// Longest time one can be visible nearby without turning it on again, in seconds.
pub const MAX_NEARBY_TTL_S: u32 = 3600;
/// Contacts one user can have.
pub const MAX_CONTACTS: usize = 10_000;
/// Users one user can block.
pub const MAX_BLOCKED: usize = 10_000;
/// STUN/TURN servers (and URLs per server) handed to a client for calls.
pub const MAX_ICE_SERVERS: usize = 8;
/// Longest STUN/TURN URL, username or credential, in bytes.
pub const MAX_ICE_URL_BYTES: usize = 256;
