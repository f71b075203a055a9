//! The outbox's scheduling rules, sans-IO.
//!
//! Every operation a user makes that must reach the server (send, create room, invite, leave,
//! rename) is a row in the `outbox` table, written in the same transaction as its local echo
//! and carrying the request id the server deduplicates by (docs/protocol.md, "Idempotency").
//! This module decides, from those rows and the time passed in, what to send next and when to
//! try again; the sync engine does the I/O and writes the outcome back.
//!
//! The rules:
//! - **In order per room.** Of a room's pending items only the oldest may be in flight, so
//!   the server assigns seqs in the order the user sent. Rooms do not wait for each other.
//! - **Failed items do not block.** An item that failed permanently (no longer a member, a
//!   body the server refuses) is marked failed with its reason and skipped; the items after
//!   it go on. The user may retry it (it becomes pending again, with the same request id) or
//!   discard it.
//! - **Transient failures retry forever** with exponential backoff and jitter (the jitter is
//!   passed in, so the rules stay deterministic): 0.5 s doubling to at most 60 s, each delay
//!   drawn from its upper half.
//! - **The same request id on every attempt**, so a resend after a lost reply is answered by
//!   the server with the original seq instead of a second message.

use std::{collections::BTreeMap, time::Duration};

use tidings_proto::ErrorCode;

/// First retry delay.
pub const BACKOFF_BASE: Duration = Duration::from_millis(500);
/// Longest retry delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// An outbox row as the scheduler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Outbox row id: creation order.
    pub id: i64,
    /// Local room id; `None` for operations outside a room.
    pub room: Option<i64>,
    /// Failed permanently (skipped until retried).
    pub failed: bool,
    /// Attempts so far.
    pub attempts: u32,
    /// Not before this time (Unix ms).
    pub next_attempt_ms: i64,
}

/// What to do after an attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Try again after the delay.
    RetryAfter(Duration),
    /// Give up: mark the item failed with the error's reason.
    Fail,
}

/// The items to send now: for each room, its oldest item that is not failed, if it is due
/// (the machine sends one request at a time, so none is in flight while it asks); items
/// outside rooms each go when due. Ordered by id.
pub fn due(items: &[Item], now_ms: i64) -> Vec<i64> {
    let mut heads: BTreeMap<Option<i64>, &Item> = BTreeMap::new();
    let mut free = Vec::new();
    for item in items.iter().filter(|i| !i.failed) {
        match item.room {
            Some(_) => {
                let head = heads.entry(item.room).or_insert(item);
                if item.id < head.id {
                    *head = item;
                }
            }
            None => free.push(item),
        }
    }
    let mut ready: Vec<i64> = heads
        .into_values()
        .chain(free)
        .filter(|i| i.next_attempt_ms <= now_ms)
        .map(|i| i.id)
        .collect();
    ready.sort_unstable();
    ready
}

/// The earliest time an item that is not due yet becomes due (to arm a timer).
pub fn next_wake(items: &[Item], now_ms: i64) -> Option<i64> {
    items
        .iter()
        .filter(|i| !i.failed && i.next_attempt_ms > now_ms)
        .map(|i| i.next_attempt_ms)
        .min()
}

/// Decides what a failed attempt means. `jitter` is uniform in `[0, 1)`, from the caller.
pub fn after_failure(code: ErrorCode, attempts: u32, jitter: f64) -> Verdict {
    if code.is_transient() {
        Verdict::RetryAfter(backoff(attempts, jitter))
    } else {
        Verdict::Fail
    }
}

/// The delay before attempt `attempts + 1`: exponential from [`BACKOFF_BASE`] to
/// [`BACKOFF_MAX`], drawn from the upper half of the step so clients that failed together do
/// not retry together.
pub fn backoff(attempts: u32, jitter: f64) -> Duration {
    let step = BACKOFF_BASE.saturating_mul(1u32 << attempts.min(16)).min(BACKOFF_MAX);
    step.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn arbitrary_items() -> impl Strategy<Value = Vec<Item>> {
        let item = (prop::option::of(0i64..4), any::<bool>(), 0i64..10);
        prop::collection::vec(item, 0..30).prop_map(|rows| {
            rows.into_iter()
                .enumerate()
                .map(|(i, (room, failed, next))| Item {
                    id: i as i64,
                    room,
                    failed,
                    attempts: 0,
                    next_attempt_ms: next,
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn due_items_keep_room_order_and_skip_what_must_wait(items in arbitrary_items(), now in 0i64..10) {
            let ready = due(&items, now);
            let by_id = |id: i64| items.iter().find(|i| i.id == id).unwrap();
            for id in &ready {
                let it = by_id(*id);
                prop_assert!(!it.failed && it.next_attempt_ms <= now);
                if it.room.is_some() {
                    // Nothing older in its room is still waiting to go.
                    prop_assert!(!items.iter().any(|o| o.room == it.room && !o.failed && o.id < it.id));
                }
            }
            let rooms: Vec<_> = ready.iter().filter_map(|id| by_id(*id).room).collect();
            let mut unique = rooms.clone();
            unique.dedup();
            unique.sort_unstable();
            unique.dedup();
            prop_assert_eq!(unique.len(), rooms.len(), "one item per room at a time");
        }
    }

    fn item(id: i64, room: Option<i64>) -> Item {
        Item { id, room, failed: false, attempts: 0, next_attempt_ms: 0 }
    }

    #[test]
    fn only_the_oldest_item_of_a_room_is_due_and_rooms_do_not_wait_for_each_other() {
        let items = [item(1, Some(10)), item(2, Some(10)), item(3, Some(20)), item(4, None)];
        assert_eq!(due(&items, 0), [1, 3, 4]);
    }

    #[test]
    fn a_failed_item_is_skipped_and_the_next_one_goes() {
        let mut items = vec![item(1, Some(10)), item(2, Some(10))];
        items[0].failed = true;
        assert_eq!(due(&items, 0), [2]);
    }

    #[test]
    fn an_item_backing_off_holds_its_room_until_it_is_due() {
        let mut items = vec![item(1, Some(10)), item(2, Some(10)), item(3, Some(20))];
        items[0].next_attempt_ms = 5_000;
        assert_eq!(due(&items, 1_000), [3]);
        assert_eq!(next_wake(&items, 1_000), Some(5_000));
        assert_eq!(due(&items, 5_000), [1, 3]);
    }

    #[test]
    fn transient_errors_retry_and_permanent_ones_fail() {
        assert!(matches!(after_failure(ErrorCode::RateLimited, 0, 0.5), Verdict::RetryAfter(_)));
        assert!(matches!(after_failure(ErrorCode::Internal, 9, 0.5), Verdict::RetryAfter(_)));
        assert_eq!(after_failure(ErrorCode::Forbidden, 0, 0.5), Verdict::Fail);
        assert_eq!(after_failure(ErrorCode::RequestIdReused, 0, 0.5), Verdict::Fail);
    }

    #[test]
    fn backoff_doubles_from_half_a_second_to_a_minute_within_its_jitter() {
        assert_eq!(backoff(0, 0.0), Duration::from_millis(250));
        assert_eq!(backoff(0, 1.0), Duration::from_millis(500));
        assert_eq!(backoff(3, 1.0), Duration::from_secs(4));
        assert_eq!(backoff(30, 1.0), BACKOFF_MAX);
        assert_eq!(backoff(u32::MAX, 0.0), BACKOFF_MAX / 2);
        for attempts in 0..40 {
            assert!(backoff(attempts, 0.0) <= backoff(attempts + 1, 0.0));
        }
    }
}
