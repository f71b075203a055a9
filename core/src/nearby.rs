//! People nearby ([`Client::nearby`]): being visible for a while in a ~1 km cell, and who
//! else is. Only the cell (a 6-character geohash, computed here) is sent: the exact
//! position never leaves the device.

use std::time::Duration;

use tidings_proto::{bounded::Text, NearbyPerson, Reply, Request};

use crate::{
    sync::{self, unexpected},
    Client, Error,
};

/// Geohash cells for people nearby: 6 characters, ~1.2 × 0.6 km.
const NEARBY_CELL_CHARS: usize = 6;

impl Client {
    /// People nearby.
    pub fn nearby(&self) -> Nearby<'_> {
        Nearby { client: self }
    }
}

/// See [`Client::nearby`].
#[derive(Debug, Clone, Copy)]
pub struct Nearby<'a> {
    client: &'a Client,
}

impl Nearby<'_> {
    /// Becomes visible to people nearby for `ttl` (at most an hour) in the ~1 km cell
    /// around `lat`, `lon`.
    pub async fn on(&self, lat: f64, lon: f64, ttl: Duration) -> Result<(), Error> {
        let valid = lat.is_finite() && lon.is_finite() && lat.abs() <= 90.0 && lon.abs() <= 180.0;
        if !valid {
            return Err(Error::Invalid("latitude is -90…90 and longitude -180…180".into()));
        }
        let cell = geohash::encode(geohash::Coord { x: lon, y: lat }, NEARBY_CELL_CHARS)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        let ttl_s =
            ttl.as_secs().clamp(1, u64::from(tidings_proto::limits::MAX_NEARBY_TTL_S)) as u32;
        let cell = Text::new(cell).map_err(|e| Error::Internal(e.to_string()))?;
        sync::request(self.client, Request::NearbyOn { cell, ttl_s }).await.map(|_| ())
    }

    /// Stops being visible to people nearby, at once.
    pub async fn off(&self) -> Result<(), Error> {
        sync::request(self.client, Request::NearbyOff {}).await.map(|_| ())
    }

    /// Who is visible nearby (I must be visible too), nearest first.
    pub async fn list(&self) -> Result<Vec<NearbyPerson>, Error> {
        match sync::request(self.client, Request::NearbyList {}).await? {
            Reply::Nearby { people } => Ok(people.into_vec()),
            other => Err(unexpected(other)),
        }
    }
}
