//! People nearby: strictly opt-in, expiring, coarse.
//!
//! A user who turns it on is visible for at most an hour in a ~1.2 × 0.6 km cell: a
//! 6-character geohash the *client* computed, so exact coordinates never reach the server
//! (and so are in no database or log). Others who are visible themselves can list who is
//! within 20 km, each with a distance bucket (< 1 km, < 5 km, < 20 km) measured between
//! cell centres — never a distance. Turning it off deletes the row at once. Turning on and
//! listing share one rate limit per user (not per connection), so nobody can move a fake
//! position around fast enough to triangulate someone: each lookup says no more than "in
//! this 1 km cell or a few cells away", and only a few lookups are allowed per minute.

use std::time::Instant;

use geohash::Coord;
use rusqlite::params;
use tidings_proto::{
    limits::{MAX_NEARBY, MAX_NEARBY_TTL_S},
    DistanceBucket, NearbyPerson, Reply, UserId,
};

use crate::{
    connection::Conn,
    error::OpError,
    roomlog::{self, bounded},
    unix_ms,
};

/// Geohash cells are this long: ~1.2 km × 0.6 km.
pub const CELL_CHARS: usize = 6;
const GEOHASH_ALPHABET: &[u8] = b"0123456789bcdefghjkmnpqrstuvwxyz";

impl Conn {
    fn limit_nearby(&self, user: UserId) -> Result<(), OpError> {
        let mut buckets = self.shared.nearby_lookups.lock().map_err(OpError::internal)?;
        buckets.take(user.0, Instant::now()).map_err(OpError::rate_limited)
    }

    /// Be visible in `cell` for `ttl_s` seconds (at most an hour).
    pub(crate) async fn nearby_on(&mut self, cell: String, ttl_s: u32) -> Result<Reply, OpError> {
        let actor = self.actor()?;
        let valid = cell.len() == CELL_CHARS && cell.bytes().all(|b| GEOHASH_ALPHABET.contains(&b));
        if !valid {
            return Err(OpError::invalid("a nearby cell is a 6-character geohash"));
        }
        self.limit_nearby(actor.user)?;
        let ttl_ms = i64::from(ttl_s.clamp(1, MAX_NEARBY_TTL_S)) * 1000;
        self.shared
            .store
            .write(move |tx| {
                let now = unix_ms();
                tx.prepare_cached("DELETE FROM nearby WHERE expires_ms <= ?1")?.execute([now])?;
                tx.prepare_cached(
                    "INSERT INTO nearby (user_id, cell, expires_ms) VALUES (?1, ?2, ?3)
                     ON CONFLICT (user_id) DO UPDATE SET cell = excluded.cell,
                         expires_ms = excluded.expires_ms",
                )?
                .execute(params![actor.user.0, cell, now + ttl_ms])?;
                Ok(Reply::Done {})
            })
            .await
    }

    /// Stop being visible, at once.
    pub(crate) async fn nearby_off(&mut self) -> Result<Reply, OpError> {
        let actor = self.actor()?;
        self.shared
            .store
            .write(move |tx| {
                tx.prepare_cached("DELETE FROM nearby WHERE user_id = ?1")?
                    .execute([actor.user.0])?;
                Ok(Reply::Done {})
            })
            .await
    }

    /// Who is visible within 20 km of my cell, nearest first (I must be visible).
    pub(crate) async fn nearby_list(&mut self) -> Result<Reply, OpError> {
        let actor = self.actor()?;
        self.limit_nearby(actor.user)?;
        self.shared
            .store
            .write(move |conn| {
                let now = unix_ms();
                conn.prepare_cached("DELETE FROM nearby WHERE expires_ms <= ?1")?.execute([now])?;
                let mine: Option<String> = rusqlite::OptionalExtension::optional(
                    conn.prepare_cached(
                        "SELECT cell FROM nearby WHERE user_id = ?1 AND expires_ms > ?2",
                    )?
                    .query_row(params![actor.user.0, now], |r| r.get(0)),
                )?;
                let mine = mine.ok_or_else(|| {
                    OpError::invalid("turn people nearby on first: only the visible see others")
                })?;
                let here = centre(&mine)?;
                // Only the ~150 km cell around mine and its neighbours can be within 20 km.
                let area = &mine[..3];
                let n = geohash::neighbors(area).map_err(OpError::internal)?;
                let areas = [area, &n.n, &n.ne, &n.e, &n.se, &n.s, &n.sw, &n.w, &n.nw];
                let mut rows = Vec::new();
                for area in areas {
                    let found = conn
                        .prepare_cached(
                            "SELECT u.id, u.username, n.cell FROM nearby n
                             JOIN users u ON u.id = n.user_id
                             WHERE n.cell >= ?1 AND n.cell < ?1 || '~' AND n.expires_ms > ?2
                                 AND n.user_id != ?3",
                        )?
                        .query_map(params![area, now, actor.user.0], |r| {
                            Ok((
                                r.get::<_, i64>(0)?,
                                r.get::<_, String>(1)?,
                                r.get::<_, String>(2)?,
                            ))
                        })?
                        .collect::<Result<Vec<_>, _>>()?;
                    rows.extend(found);
                }
                let mut people = Vec::new();
                for (id, username, cell) in rows {
                    let Some(distance) = bucket(km(here, centre(&cell)?)) else { continue };
                    people.push(NearbyPerson {
                        user: roomlog::user_ref(UserId(id), username)?,
                        distance,
                    });
                }
                people.sort_by(|a, b| {
                    (a.distance, a.user.username.as_str())
                        .cmp(&(b.distance, b.user.username.as_str()))
                });
                people.truncate(MAX_NEARBY);
                Ok(Reply::Nearby { people: bounded(people)? })
            })
            .await
    }
}

fn centre(cell: &str) -> Result<Coord, OpError> {
    geohash::decode(cell).map(|(c, _, _)| c).map_err(OpError::internal)
}

/// Great-circle distance in km between two points (x = longitude, y = latitude).
fn km(a: Coord, b: Coord) -> f64 {
    let (la1, la2) = (a.y.to_radians(), b.y.to_radians());
    let (dla, dlo) = ((b.y - a.y).to_radians(), (b.x - a.x).to_radians());
    let h = (dla / 2.0).sin().powi(2) + la1.cos() * la2.cos() * (dlo / 2.0).sin().powi(2);
    2.0 * 6371.0 * h.sqrt().asin()
}

fn bucket(km: f64) -> Option<DistanceBucket> {
    match km {
        d if d < 1.0 => Some(DistanceBucket::Under1Km),
        d if d < 5.0 => Some(DistanceBucket::Under5Km),
        d if d < 20.0 => Some(DistanceBucket::Under20Km),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_follow_the_distance_between_cells() {
        let eiffel = centre(&geohash::encode(Coord { x: 2.2945, y: 48.8584 }, 6).unwrap()).unwrap();
        let louvre = centre(&geohash::encode(Coord { x: 2.3376, y: 48.8606 }, 6).unwrap()).unwrap();
        let versailles =
            centre(&geohash::encode(Coord { x: 2.1204, y: 48.8049 }, 6).unwrap()).unwrap();
        let lyon = centre(&geohash::encode(Coord { x: 4.8357, y: 45.7640 }, 6).unwrap()).unwrap();
        assert_eq!(bucket(km(eiffel, eiffel)), Some(DistanceBucket::Under1Km));
        assert_eq!(bucket(km(eiffel, louvre)), Some(DistanceBucket::Under5Km));
        assert_eq!(bucket(km(eiffel, versailles)), Some(DistanceBucket::Under20Km));
        assert_eq!(bucket(km(eiffel, lyon)), None);
    }
}
