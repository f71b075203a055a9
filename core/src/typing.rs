//! Who is typing where: ephemeral state, in memory only, each entry expiring on its own so a
//! lost "stopped typing" cannot leave "typing…" on screen. Time is passed in.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use crate::model::RoomKey;

/// How long a "typing" notice lasts unless renewed (clients renew every few seconds).
pub const TYPING_TTL: Duration = Duration::from_secs(6);

/// Typing notices by room and user.
#[derive(Debug, Default)]
pub struct Typing {
    until: BTreeMap<(RoomKey, String), Instant>,
}

impl Typing {
    /// Records that `user` started (`active`) or stopped typing in `room` at `now`.
    pub fn set(&mut self, room: RoomKey, user: &str, active: bool, now: Instant) {
        let key = (room, user.to_owned());
        if active {
            self.until.insert(key, now + TYPING_TTL);
        } else {
            self.until.remove(&key);
        }
    }

    /// Who is typing at `now`, by room (expired entries are dropped).
    pub fn snapshot(&mut self, now: Instant) -> BTreeMap<RoomKey, Vec<String>> {
        self.until.retain(|_, until| *until > now);
        let mut out: BTreeMap<RoomKey, Vec<String>> = BTreeMap::new();
        for (room, user) in self.until.keys() {
            out.entry(*room).or_default().push(user.clone());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typing_shows_until_stopped_or_expired() {
        let t0 = Instant::now();
        let mut t = Typing::default();
        t.set(1, "bob", true, t0);
        t.set(1, "carol", true, t0);
        t.set(2, "dave", true, t0);
        assert_eq!(t.snapshot(t0)[&1], ["bob", "carol"]);
        t.set(1, "bob", false, t0);
        assert_eq!(t.snapshot(t0)[&1], ["carol"]);
        assert!(t.snapshot(t0 + TYPING_TTL).is_empty(), "a lost stop expires");
    }
}
