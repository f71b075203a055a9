//! Token buckets for rate limits. Sans-IO: the caller passes `now`.
//!
//! Small enough to own rather than pull in a crate with its own clock and shared state: each
//! connection holds its buckets; the per-address, per-user and per-(username, address)
//! buckets live in maps on the server, bounded in memory.
//!
//! Addresses are counted as [`AddrKey`]s: an IPv4 address, or an IPv6 /64 — one subscriber
//! gets a whole /64, so counting single IPv6 addresses would give an attacker 2^64 keys.

use std::{
    collections::HashMap,
    hash::Hash,
    net::IpAddr,
    time::{Duration, Instant},
};

/// A client's address as the limits count it: IPv4 /32, IPv6 /64 (an IPv4-mapped IPv6
/// address counts as its IPv4 address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AddrKey(u128);

impl AddrKey {
    /// The key of `ip`.
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self(u128::from(u32::from(v4))),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(u128::from(u32::from(v4))),
                // The top 64 bits, tagged so they never equal an IPv4 key.
                None => Self((u128::from(v6) >> 64) | (1 << 127)),
            },
        }
    }
}

/// A rate: `per_second` on average, bursts up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Sustained requests per second.
    pub per_second: f64,
    /// Requests allowed at once after a quiet period.
    pub burst: f64,
}

/// One token bucket.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: Rate,
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: Rate, now: Instant) -> Self {
        Self { rate, tokens: rate.burst, updated: now }
    }

    /// Takes one token, or says how long until one is available.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate.per_second).min(self.rate.burst);
        self.updated = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - self.tokens) / self.rate.per_second.max(f64::MIN_POSITIVE);
            Err(Duration::from_secs_f64(wait.min(3600.0)))
        }
    }
}

/// Buckets by key (e.g. username), bounded in memory: when it holds `max_keys` keys, full
/// (idle) buckets are forgotten, which loses nothing since a new bucket starts full.
#[derive(Debug)]
pub struct KeyedBuckets<K> {
    rate: Rate,
    max_keys: usize,
    buckets: HashMap<K, TokenBucket>,
}

impl<K: Hash + Eq> KeyedBuckets<K> {
    /// Empty buckets with `rate` each.
    pub fn new(rate: Rate, max_keys: usize) -> Self {
        Self { rate, max_keys, buckets: HashMap::new() }
    }

    /// Takes one token from `key`'s bucket.
    pub fn take(&mut self, key: K, now: Instant) -> Result<(), Duration> {
        if self.buckets.len() >= self.max_keys && !self.buckets.contains_key(&key) {
            let rate = self.rate;
            self.buckets.retain(|_, b| {
                let idle = now.saturating_duration_since(b.updated).as_secs_f64();
                b.tokens + idle * rate.per_second < rate.burst
            });
            if self.buckets.len() >= self.max_keys {
                // Every tracked key is busy: a flood. Refuse new keys rather than grow.
                return Err(Duration::from_secs(1));
            }
        }
        let rate = self.rate;
        self.buckets.entry(key).or_insert_with(|| TokenBucket::new(rate, now)).take(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_count_as_ipv4_hosts_and_ipv6_slash_64s() {
        let key = |s: &str| AddrKey::of(s.parse().unwrap());
        assert_ne!(key("192.0.2.1"), key("192.0.2.2"));
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff::9"), "one /64");
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:192.0.2.1"), key("192.0.2.1"));
        assert_ne!(key("::c000:201"), key("192.0.2.1"), "only mapped addresses are IPv4");
    }

    const RATE: Rate = Rate { per_second: 2.0, burst: 3.0 };

    #[test]
    fn a_burst_is_allowed_then_the_sustained_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(RATE, t0);
        assert!((0..3).all(|_| b.take(t0).is_ok()));
        let wait = b.take(t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert!(b.take(t0 + Duration::from_millis(499)).is_err());
        assert!(b.take(t0 + Duration::from_millis(1000)).is_ok());
    }

    #[test]
    fn keyed_buckets_are_independent_and_bounded() {
        let t0 = Instant::now();
        let mut k = KeyedBuckets::new(RATE, 2);
        assert!((0..3).all(|_| k.take("a", t0).is_ok()));
        assert!(k.take("a", t0).is_err());
        assert!(k.take("b", t0).is_ok());
        // "c" does not fit and no bucket is idle: refused rather than growing the map.
        assert!(k.take("c", t0).is_err());
        assert!(k.take("a", t0).is_err(), "a busy key keeps its bucket");
        // Once "a" and "b" have refilled they are forgotten and "c" gets a bucket.
        assert!(k.take("c", t0 + Duration::from_secs(5)).is_ok());
        assert_eq!(k.buckets.len(), 1);
    }
}
