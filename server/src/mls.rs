//! The server's part in end-to-end encryption: the ordering authority of each room's MLS
//! group, and the KeyPackage directory. It reads only what MLS leaves in clear — a message's
//! group id, epoch and content type, a KeyPackage's credential, a GroupInfo's group and
//! epoch — and never a body.
//!
//! **One commit per epoch.** A room's group has an epoch (`rooms.mls_epoch`). A commit is
//! accepted only if it was built on that epoch, and the epoch moves on in the same
//! transaction that gives the commit its seq; an application message is accepted only at
//! the current epoch. Whoever loses a race gets `stale_epoch`, catches up, rebuilds and
//! resends under the same request id (a failure leaves no trace). So every logged message
//! decrypts with the group state at its place in the log, and members never need secrets of
//! past epochs.
//!
//! **Setup.** A room starts without a group; the first `Mls` request names it (its
//! GroupInfo's group id and epoch) and brings the members' devices in by Welcome. Rooms
//! made before this (and rooms whose members have not set one up yet) still take plain
//! bodies; a room with a group takes only MLS application messages.
//!
//! **KeyPackages.** Each device publishes one-time KeyPackages (at most
//! [`MAX_KEY_PACKAGES`] kept) and one last-resort KeyPackage; a claim takes the oldest
//! one-time KeyPackage of each of a user's devices (deleted in the same transaction) or, when
//! a device has none left, its last-resort one. The server checks each KeyPackage's
//! signature and that its credential names the publishing device ((user, device) ids, 16 bytes
//! big-endian, then the device's certificate, which clients check: docs/protocol.md), so no device can publish keys in another's name. Claims
//! are rate-limited per claimer.

use openmls::prelude::tls_codec::Deserialize as _;
use openmls::prelude::{
    BasicCredential, ContentType, KeyPackageIn, MlsMessageBodyIn, MlsMessageIn, ProtocolMessage,
    ProtocolVersion, Sender,
};
use openmls_rust_crypto::RustCrypto;
use rusqlite::{params, Connection, OptionalExtension};
use tidings_proto::{
    bounded::List, limits::MAX_KEY_PACKAGES, DeviceKeyPackage, ErrorCode, KeyPackageBlob, MlsBlob,
    Reply, RoomId, UserId,
};

use crate::{connection::Conn, error::OpError, roomlog::Actor};

/// The one ciphersuite Tidings groups use (MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519).
const CIPHERSUITE: u16 = 1;

/// Length of a Tidings leaf credential's identity (docs/protocol.md).
const CREDENTIAL_LEN: usize = 112;

/// What MLS leaves in clear about a group message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub group: Vec<u8>,
    pub epoch: u64,
    pub content: ContentType,
    /// An external commit: a device joining the group by itself.
    pub external: bool,
}

fn malformed(what: &str) -> OpError {
    OpError::invalid(format!("not a valid MLS {what}"))
}

/// Reads a group message's header: group, epoch, content type.
pub(crate) fn header(bytes: &[u8]) -> Result<Header, OpError> {
    let message = MlsMessageIn::tls_deserialize_exact(bytes).map_err(|_| malformed("message"))?;
    let message = message.try_into_protocol_message().map_err(|_| malformed("group message"))?;
    let external = match &message {
        ProtocolMessage::PublicMessage(public) => {
            matches!(public.sender(), Sender::NewMemberCommit)
        }
        ProtocolMessage::PrivateMessage(_) => false,
    };
    Ok(Header {
        group: message.group_id().as_slice().to_vec(),
        epoch: message.epoch().as_u64(),
        content: message.content_type(),
        external,
    })
}

/// Reads a GroupInfo's group and epoch.
fn group_info(bytes: &[u8]) -> Result<(Vec<u8>, u64), OpError> {
    let message =
        MlsMessageIn::tls_deserialize_exact(bytes).map_err(|_| malformed("group info"))?;
    let MlsMessageBodyIn::GroupInfo(info) = message.extract() else {
        return Err(malformed("group info"));
    };
    Ok((info.group_id().as_slice().to_vec(), info.epoch().as_u64()))
}

fn welcome(bytes: &[u8]) -> Result<(), OpError> {
    let message = MlsMessageIn::tls_deserialize_exact(bytes).map_err(|_| malformed("welcome"))?;
    match message.extract() {
        MlsMessageBodyIn::Welcome(_) => Ok(()),
        _ => Err(malformed("welcome")),
    }
}

/// Checks a KeyPackage: well formed, signed, ciphersuite 1, and the credential of `actor`.
fn key_package(bytes: &[u8], actor: Actor) -> Result<(), OpError> {
    let package = KeyPackageIn::tls_deserialize_exact(bytes)
        .map_err(|_| malformed("key package"))?
        .validate(&RustCrypto::default(), ProtocolVersion::Mls10)
        .map_err(|_| malformed("key package"))?;
    if u16::from(package.ciphersuite()) != CIPHERSUITE {
        return Err(OpError::invalid("key packages must use ciphersuite 1"));
    }
    let identity = BasicCredential::try_from(package.leaf_node().credential().clone())
        .map(|c| c.identity().to_vec())
        .map_err(|_| malformed("key package credential"))?;
    // user (8) ‖ device (8) ‖ identity key (32) ‖ device certificate (64): the clients check
    // the certificate; the server checks whose device it names.
    let mut expected = actor.user.0.to_be_bytes().to_vec();
    expected.extend_from_slice(&actor.device.0.to_be_bytes());
    if identity.len() != CREDENTIAL_LEN || identity[..16] != expected {
        return Err(OpError::forbidden("a key package must name the device that publishes it"));
    }
    Ok(())
}

fn stale(epoch: u64) -> OpError {
    OpError::new(
        ErrorCode::StaleEpoch,
        format!("the room's group is at epoch {epoch}: catch up and rebuild"),
    )
}

/// The room's group and epoch, if it has a group.
fn room_group(tx: &Connection, room: RoomId) -> Result<Option<(Vec<u8>, u64)>, OpError> {
    let row: Option<(Option<Vec<u8>>, i64)> = tx
        .prepare_cached("SELECT mls_group, mls_epoch FROM rooms WHERE id = ?1")?
        .query_row([room.0], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(row.and_then(|(group, epoch)| group.map(|g| (g, epoch as u64))))
}

/// The checks and the epoch step of an `Mls` request, inside its room's write transaction.
pub(crate) fn handshake(
    tx: &Connection,
    room: RoomId,
    commit: Option<&MlsBlob>,
    welcome_blob: Option<&MlsBlob>,
    info: &MlsBlob,
) -> Result<(), OpError> {
    let (info_group, info_epoch) = group_info(info.as_bytes())?;
    if let Some(w) = welcome_blob {
        welcome(w.as_bytes())?;
    }
    match (room_group(tx, room)?, commit) {
        (None, None) => {
            tx.prepare_cached("UPDATE rooms SET mls_group = ?2, mls_epoch = ?3 WHERE id = ?1")?
                .execute(params![room.0, info_group, info_epoch as i64])?;
        }
        (None, Some(_)) => return Err(OpError::invalid("the room's group is not set up yet")),
        (Some((_, epoch)), None) => return Err(stale(epoch)),
        (Some((group, epoch)), Some(commit)) => {
            let header = header(commit.as_bytes())?;
            if header.content != ContentType::Commit {
                return Err(malformed("commit"));
            }
            if header.group != group || info_group != group {
                return Err(OpError::invalid("a commit for another group"));
            }
            if header.epoch != epoch {
                return Err(stale(epoch));
            }
            if info_epoch != epoch + 1 {
                return Err(OpError::invalid("the group info is not the commit's next epoch"));
            }
            tx.prepare_cached("UPDATE rooms SET mls_epoch = mls_epoch + 1 WHERE id = ?1")?
                .execute([room.0])?;
        }
    }
    tx.prepare_cached(
        "INSERT INTO group_infos (room_id, group_info) VALUES (?1, ?2)
         ON CONFLICT (room_id) DO UPDATE SET group_info = excluded.group_info",
    )?
    .execute(params![room.0, info.as_bytes()])?;
    Ok(())
}

/// A message body's check: in a room with a group, an application message of that group at
/// its current epoch; in a room without one, anything (rooms from before encryption).
pub(crate) fn check_body(tx: &Connection, room: RoomId, body: &[u8]) -> Result<(), OpError> {
    let Some((group, epoch)) = room_group(tx, room)? else { return Ok(()) };
    let header = header(body)?;
    if header.content != ContentType::Application || header.group != group {
        return Err(OpError::invalid("this room takes only its group's encrypted messages"));
    }
    if header.epoch != epoch {
        return Err(stale(epoch));
    }
    Ok(())
}

impl Conn {
    /// Adds this device's KeyPackages to the directory.
    pub(crate) async fn publish_key_packages(
        &mut self,
        packages: Vec<KeyPackageBlob>,
        last_resort: Option<KeyPackageBlob>,
    ) -> Result<Reply, OpError> {
        let actor = self.actor()?;
        for package in packages.iter().chain(last_resort.iter()) {
            key_package(package.as_bytes(), actor)?;
        }
        self.shared
            .store
            .write(move |tx| {
                let count = |tx: &Connection| -> Result<i64, OpError> {
                    Ok(tx
                        .prepare_cached(
                            "SELECT count(*) FROM key_packages
                             WHERE device_id = ?1 AND last_resort = 0",
                        )?
                        .query_row([actor.device.0], |r| r.get(0))?)
                };
                if count(tx)? as usize + packages.len() > MAX_KEY_PACKAGES {
                    return Err(OpError::new(
                        ErrorCode::QuotaExceeded,
                        format!("a device keeps at most {MAX_KEY_PACKAGES} key packages"),
                    ));
                }
                let mut insert = tx.prepare_cached(
                    "INSERT INTO key_packages (device_id, user_id, package, last_resort)
                     VALUES (?1, ?2, ?3, ?4)",
                )?;
                for package in &packages {
                    insert.execute(params![actor.device.0, actor.user.0, package.as_bytes(), 0])?;
                }
                if let Some(package) = &last_resort {
                    tx.prepare_cached(
                        "DELETE FROM key_packages WHERE device_id = ?1 AND last_resort = 1",
                    )?
                    .execute([actor.device.0])?;
                    insert.execute(params![actor.device.0, actor.user.0, package.as_bytes(), 1])?;
                }
                Ok(Reply::KeyPackageCount { count: count(tx)? as u32 })
            })
            .await
    }

    /// One KeyPackage of each of `user`'s live devices.
    pub(crate) async fn claim_key_packages(&mut self, user: UserId) -> Result<Reply, OpError> {
        self.actor()?;
        let now = crate::unix_ms();
        self.shared
            .store
            .write(move |tx| {
                let devices: Vec<i64> = tx
                    .prepare_cached(
                        "SELECT id FROM sessions WHERE user_id = ?1 AND revoked_ms IS NULL
                         AND expires_ms > ?2 ORDER BY id",
                    )?
                    .query_map(params![user.0, now], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                let mut packages = Vec::new();
                for device in devices {
                    // The oldest one-time KeyPackage, else the last-resort one (kept).
                    let found: Option<(i64, Vec<u8>, bool)> = tx
                        .prepare_cached(
                            "SELECT id, package, last_resort FROM key_packages
                             WHERE device_id = ?1 ORDER BY last_resort, id LIMIT 1",
                        )?
                        .query_row([device], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                        .optional()?;
                    let Some((id, package, last_resort)) = found else { continue };
                    if !last_resort {
                        tx.prepare_cached("DELETE FROM key_packages WHERE id = ?1")?
                            .execute([id])?;
                    }
                    packages.push(DeviceKeyPackage {
                        device: tidings_proto::DeviceId(device),
                        package: KeyPackageBlob::new(package).map_err(OpError::internal)?,
                    });
                }
                let packages = List::new(packages).map_err(OpError::internal)?;
                Ok(Reply::KeyPackages { packages })
            })
            .await
    }

    /// The latest GroupInfo of a room I am a member of.
    pub(crate) async fn group_info(&mut self, room: RoomId) -> Result<Reply, OpError> {
        let actor = self.actor()?;
        self.shared
            .store
            .read(move |conn| {
                if !crate::roomlog::is_member(conn, room, actor.user)? {
                    return Err(OpError::forbidden("not a member of this room"));
                }
                let info: Option<Vec<u8>> = conn
                    .prepare_cached("SELECT group_info FROM group_infos WHERE room_id = ?1")?
                    .query_row([room.0], |r| r.get(0))
                    .optional()?;
                let group_info = info.map(MlsBlob::new).transpose().map_err(OpError::internal)?;
                Ok(Reply::GroupInfo { group_info })
            })
            .await
    }
}
