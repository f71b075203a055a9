//! The call machine, one ordering per test, then random interleavings with invariants.

use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    time::{Duration, Instant},
};

use proptest::prelude::*;
use tidings_proto::{CallOutcome, CallSignal, HangupReason, RefuseReason};

use super::*;

const ROOM: i64 = 9;
const ANN: i64 = 1;
const BOB: i64 = 2;
const CY: i64 = 3;

fn drain(m: &mut CallMachine) -> Vec<Output> {
    std::iter::from_fn(|| m.poll_output()).collect()
}

fn remote(from_user: i64, from_device: i64, call: CallId, signal: CallSignal) -> Input {
    Input::Remote(Remote { room: ROOM, from_user, from_device, call, signal })
}

fn signals(out: &[Output]) -> Vec<(i64, Option<i64>, CallSignal)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Signal { to_user, to_device, signal, .. } => {
                Some((*to_user, *to_device, signal.clone()))
            }
            _ => None,
        })
        .collect()
}

fn ui(out: &[Output]) -> Vec<CallEvent> {
    out.iter()
        .filter_map(|o| match o {
            Output::Ui(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

fn media(out: &[Output]) -> Vec<MediaCommand> {
    out.iter()
        .filter_map(|o| match o {
            Output::Media(c) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

fn ended(out: &[Output]) -> Option<EndReason> {
    ui(out).into_iter().find_map(|e| match e {
        CallEvent::Ended { reason, .. } => Some(reason),
        _ => None,
    })
}

fn record(out: &[Output]) -> Option<(CallOutcome, Duration)> {
    out.iter().find_map(|o| match o {
        Output::Record { outcome, duration, .. } => Some((*outcome, *duration)),
        _ => None,
    })
}

fn call(call: CallId, user: i64) -> Input {
    Input::Local(Local::Call { call, room: ROOM, user, video: false })
}

/// Ann (device 11) calls bob (device 21) with call 7 up to bob ringing.
fn ringing(t0: Instant) -> (CallMachine, CallMachine) {
    let (mut ann, mut bob) =
        (CallMachine::new(ANN, Timeouts::default()), CallMachine::new(BOB, Timeouts::default()));
    ann.handle(t0, call(7, BOB));
    assert_eq!(signals(&drain(&mut ann)), [(BOB, None, CallSignal::Inquire { video: false })]);
    bob.handle(t0, remote(ANN, 11, 7, CallSignal::Inquire { video: false }));
    let out = drain(&mut bob);
    assert_eq!(signals(&out), [(ANN, Some(11), CallSignal::Grant {})]);
    assert!(ui(&out).is_empty(), "nothing rings at the Inquire");
    ann.handle(t0, remote(BOB, 21, 7, CallSignal::Grant {}));
    assert_eq!(media(&drain(&mut ann)), [MediaCommand::CreateOffer { video: false }]);
    ann.handle(t0, Input::Media(Media::OfferCreated(blob("offer"))));
    assert_eq!(signals(&drain(&mut ann)), [(BOB, None, CallSignal::Offer { sdp: blob("offer") })]);
    bob.handle(t0, remote(ANN, 11, 7, CallSignal::Offer { sdp: blob("offer") }));
    let out = drain(&mut bob);
    assert!(matches!(ui(&out)[..], [CallEvent::Ringing { call: 7, .. }]));
    assert!(media(&out).is_empty(), "no media before accept");
    (ann, bob)
}

#[test]
fn a_call_rings_at_the_offer_connects_after_accept_and_records_its_duration() {
    let t0 = Instant::now();
    let (mut ann, mut bob) = ringing(t0);
    bob.handle(t0, Input::Local(Local::Accept));
    let out = drain(&mut bob);
    assert_eq!(media(&out), [MediaCommand::CreateAnswer { offer: blob("offer") }]);
    // Bob's other devices stop ringing.
    assert!(signals(&out).contains(&(
        BOB,
        None,
        CallSignal::Hangup { reason: HangupReason::AnsweredElsewhere }
    )));
    bob.handle(t0, Input::Media(Media::AnswerCreated(blob("answer"))));
    assert_eq!(
        signals(&drain(&mut bob)),
        [(ANN, Some(11), CallSignal::Answer { sdp: blob("answer") })]
    );
    ann.handle(t0, remote(BOB, 21, 7, CallSignal::Answer { sdp: blob("answer") }));
    assert_eq!(media(&drain(&mut ann)), [MediaCommand::ApplyAnswer { answer: blob("answer") }]);
    let t1 = t0 + Duration::from_millis(200);
    ann.handle(t1, Input::Media(Media::Connected));
    bob.handle(t1, Input::Media(Media::Connected));
    assert_eq!(ui(&drain(&mut ann)), [CallEvent::Connected { call: 7 }]);
    let t2 = t1 + Duration::from_secs(65);
    ann.handle(t2, Input::Local(Local::Hangup));
    let out = drain(&mut ann);
    assert_eq!(record(&out), Some((CallOutcome::Completed, Duration::from_secs(65))));
    assert_eq!(ended(&out), Some(EndReason::HungUp));
    bob.handle(t2, remote(ANN, 11, 7, CallSignal::Hangup { reason: HangupReason::Normal }));
    let out = drain(&mut bob);
    assert_eq!(ended(&out), Some(EndReason::RemoteHungUp));
    assert_eq!(record(&out), None, "only the caller records");
    assert!(!ann.is_busy() && !bob.is_busy());
}

#[test]
fn an_offer_that_cannot_be_sealed_ends_the_call_as_not_encrypted_and_the_callee_as_failed() {
    let t0 = Instant::now();
    let (mut ann, mut bob) =
        (CallMachine::new(ANN, Timeouts::default()), CallMachine::new(BOB, Timeouts::default()));
    ann.handle(t0, call(7, BOB));
    drain(&mut ann);
    bob.handle(t0, remote(ANN, 11, 7, CallSignal::Inquire { video: false }));
    drain(&mut bob);
    ann.handle(t0, remote(BOB, 21, 7, CallSignal::Grant {}));
    drain(&mut ann);
    ann.handle(t0, Input::Media(Media::OfferCreated(blob("offer"))));
    drain(&mut ann);
    // The driver found no group for the room in time: the offer did not go.
    ann.handle(t0, Input::Media(Media::NotEncrypted));
    let out = drain(&mut ann);
    assert_eq!(ended(&out), Some(EndReason::NotEncrypted));
    assert_eq!(record(&out).map(|(o, _)| o), Some(CallOutcome::Missed));
    let hangup = CallSignal::Hangup { reason: HangupReason::Failed };
    // To every device of Bob's, as the offer would have gone.
    assert_eq!(signals(&out), [(BOB, None, hangup.clone())]);
    // Bob's granted device lets its reservation go at once, rather than wait for an offer;
    // the hang-up carries no reason of its own for this (a protocol change), so: failed.
    bob.handle(t0, remote(ANN, 11, 7, hangup));
    let out = drain(&mut bob);
    assert!(ended(&out).is_some());
    assert_eq!(ended(&out), Some(EndReason::Failed));
    assert!(!ann.is_busy() && !bob.is_busy());
}

#[test]
fn offer_after_candidates_buffers_them_until_accept() {
    let t0 = Instant::now();
    let mut bob = CallMachine::new(BOB, Timeouts::default());
    bob.handle(t0, remote(ANN, 11, 7, CallSignal::Inquire { video: false }));
    drain(&mut bob);
    for c in ["c1", "c2"] {
        bob.handle(t0, remote(ANN, 11, 7, CallSignal::Candidate { candidate: blob(c) }));
    }
    // A candidate of another call is dropped.
    bob.handle(t0, remote(ANN, 11, 8, CallSignal::Candidate { candidate: blob("other") }));
    assert!(drain(&mut bob).is_empty());
    bob.handle(t0, remote(ANN, 11, 7, CallSignal::Offer { sdp: blob("offer") }));
    assert!(media(&drain(&mut bob)).is_empty());
    bob.handle(t0, Input::Local(Local::Accept));
    assert_eq!(
        media(&drain(&mut bob)),
        [
            MediaCommand::CreateAnswer { offer: blob("offer") },
            MediaCommand::AddCandidate { candidate: blob("c1") },
            MediaCommand::AddCandidate { candidate: blob("c2") },
        ]
    );
    bob.handle(t0, remote(ANN, 11, 7, CallSignal::Candidate { candidate: blob("c3") }));
    assert_eq!(media(&drain(&mut bob)), [MediaCommand::AddCandidate { candidate: blob("c3") }]);
}

#[test]
fn early_candidates_are_bounded() {
    let t0 = Instant::now();
    let mut bob = CallMachine::new(BOB, Timeouts::default());
    bob.handle(t0, remote(ANN, 11, 7, CallSignal::Inquire { video: false }));
    for i in 0..1000 {
        bob.handle(
            t0,
            remote(ANN, 11, 7, CallSignal::Candidate { candidate: blob(&i.to_string()) }),
        );
    }
    bob.handle(t0, remote(ANN, 11, 7, CallSignal::Offer { sdp: blob("offer") }));
    bob.handle(t0, Input::Local(Local::Accept));
    let adds = media(&drain(&mut bob))
        .into_iter()
        .filter(|m| matches!(m, MediaCommand::AddCandidate { .. }))
        .count();
    assert_eq!(adds, MAX_EARLY_CANDIDATES);
}

#[test]
fn a_busy_callee_refuses_and_hears_who_called() {
    let t0 = Instant::now();
    let (_ann, mut bob) = ringing(t0);
    bob.handle(t0, remote(CY, 31, 99, CallSignal::Inquire { video: false }));
    let out = drain(&mut bob);
    assert_eq!(signals(&out), [(CY, Some(31), CallSignal::Refuse { reason: RefuseReason::Busy })]);
    assert!(matches!(ui(&out)[..], [CallEvent::CalledWhileBusy { call: 99, .. }]));
    assert_eq!(bob.active_call(), Some(7), "the ringing call goes on");
    // The busy caller ends with busy and records it.
    let mut cy = CallMachine::new(CY, Timeouts::default());
    cy.handle(t0, call(99, BOB));
    drain(&mut cy);
    cy.handle(t0, remote(BOB, 21, 99, CallSignal::Refuse { reason: RefuseReason::Busy }));
    let out = drain(&mut cy);
    assert_eq!(
        (ended(&out), record(&out)),
        (Some(EndReason::Busy), Some((CallOutcome::Busy, Duration::ZERO)))
    );
}

#[test]
fn hang_up_before_offer_cancels_the_reservation() {
    let t0 = Instant::now();
    let (mut ann, mut bob) =
        (CallMachine::new(ANN, Timeouts::default()), CallMachine::new(BOB, Timeouts::default()));
    ann.handle(t0, call(7, BOB));
    bob.handle(t0, remote(ANN, 11, 7, CallSignal::Inquire { video: false }));
    drain(&mut ann);
    drain(&mut bob);
    ann.handle(t0, Input::Local(Local::Hangup));
    let out = drain(&mut ann);
    assert_eq!(signals(&out), [(BOB, None, CallSignal::Cancel {})]);
    assert_eq!(record(&out), Some((CallOutcome::Cancelled, Duration::ZERO)));
    bob.handle(t0, remote(ANN, 11, 7, CallSignal::Cancel {}));
    assert_eq!(ended(&drain(&mut bob)), Some(EndReason::Cancelled));
    // The Grant arriving late at ann is dropped; so is a late offer at bob.
    ann.handle(t0, remote(BOB, 21, 7, CallSignal::Grant {}));
    bob.handle(t0, remote(ANN, 11, 7, CallSignal::Offer { sdp: blob("late") }));
    assert!(drain(&mut ann).is_empty() && drain(&mut bob).is_empty());
}

#[test]
fn grant_with_no_offer_releases_the_reservation_at_its_timeout() {
    let t0 = Instant::now();
    let mut bob = CallMachine::new(BOB, Timeouts::default());
    bob.handle(t0, remote(ANN, 11, 7, CallSignal::Inquire { video: false }));
    drain(&mut bob);
    let deadline = bob.poll_timeout().unwrap();
    assert_eq!(deadline, t0 + Timeouts::default().reservation);
    bob.handle(deadline - Duration::from_millis(1), Input::Timer);
    assert!(bob.is_busy());
    bob.handle(deadline, Input::Timer);
    assert_eq!(ended(&drain(&mut bob)), Some(EndReason::ReservationExpired));
    assert!(!bob.is_busy());
    // Free again: a new call is granted.
    bob.handle(deadline, remote(CY, 31, 8, CallSignal::Inquire { video: false }));
    assert_eq!(signals(&drain(&mut bob)), [(CY, Some(31), CallSignal::Grant {})]);
}

#[test]
fn cancel_while_ringing_ends_the_ring() {
    let t0 = Instant::now();
    let (mut ann, mut bob) = ringing(t0);
    ann.handle(t0, Input::Local(Local::Hangup));
    let out = drain(&mut ann);
    assert_eq!(record(&out), Some((CallOutcome::Cancelled, Duration::ZERO)));
    assert_eq!(media(&out), [MediaCommand::Stop]);
    bob.handle(t0, remote(ANN, 11, 7, CallSignal::Cancel {}));
    let out = drain(&mut bob);
    assert_eq!(ended(&out), Some(EndReason::Cancelled));
    assert!(media(&out).is_empty(), "no media ran on the callee");
}

#[test]
fn declined_ends_both_and_records_declined() {
    let t0 = Instant::now();
    let (mut ann, mut bob) = ringing(t0);
    bob.handle(t0, Input::Local(Local::Decline));
    let out = drain(&mut bob);
    assert_eq!(ended(&out), Some(EndReason::Declined));
    assert!(signals(&out).contains(&(
        ANN,
        Some(11),
        CallSignal::Hangup { reason: HangupReason::Declined }
    )));
    ann.handle(t0, remote(BOB, 21, 7, CallSignal::Hangup { reason: HangupReason::Declined }));
    let out = drain(&mut ann);
    assert_eq!(
        (ended(&out), record(&out)),
        (Some(EndReason::RemoteDeclined), Some((CallOutcome::Declined, Duration::ZERO)))
    );
}

#[test]
fn no_answer_times_out_on_both_sides_and_records_missed() {
    let t0 = Instant::now();
    let (mut ann, mut bob) = ringing(t0);
    let late = t0 + Timeouts::default().ring;
    ann.handle(late, Input::Timer);
    let out = drain(&mut ann);
    assert_eq!(
        (ended(&out), record(&out)),
        (Some(EndReason::NoAnswer), Some((CallOutcome::Missed, Duration::ZERO)))
    );
    bob.handle(late, Input::Timer);
    assert_eq!(ended(&drain(&mut bob)), Some(EndReason::NoAnswer));
}

#[test]
fn answered_on_another_device_stops_ringing_here() {
    let t0 = Instant::now();
    let (_ann, mut bob) = ringing(t0);
    // Bob's second device (22) answered and told bob's devices.
    bob.handle(
        t0,
        remote(BOB, 22, 7, CallSignal::Hangup { reason: HangupReason::AnsweredElsewhere }),
    );
    let out = drain(&mut bob);
    assert_eq!(ended(&out), Some(EndReason::AnsweredElsewhere));
    assert!(signals(&out).is_empty(), "nothing goes to the caller from here");
}

#[test]
fn the_caller_talks_to_the_device_that_answered_and_ignores_a_decline_from_another() {
    let t0 = Instant::now();
    let (mut ann, _bob) = ringing(t0);
    ann.handle(t0, remote(BOB, 22, 7, CallSignal::Answer { sdp: blob("answer") }));
    drain(&mut ann);
    ann.handle(t0, remote(BOB, 21, 7, CallSignal::Hangup { reason: HangupReason::Declined }));
    assert!(ann.is_busy(), "a decline from another of bob's devices does not end it");
    ann.handle(t0, Input::Media(Media::LocalCandidate(blob("mine"))));
    assert_eq!(
        signals(&drain(&mut ann)),
        [(BOB, Some(22), CallSignal::Candidate { candidate: blob("mine") })]
    );
}

#[test]
fn an_inquire_nobody_answers_ends_as_unavailable() {
    let t0 = Instant::now();
    let mut ann = CallMachine::new(ANN, Timeouts::default());
    ann.handle(t0, call(7, BOB));
    drain(&mut ann);
    ann.handle(t0, remote(BOB, 0, 7, CallSignal::Refuse { reason: RefuseReason::Unavailable }));
    let out = drain(&mut ann);
    assert_eq!(
        (ended(&out), record(&out)),
        (Some(EndReason::Unavailable), Some((CallOutcome::Missed, Duration::ZERO)))
    );
    // And by timeout when no answer at all comes.
    ann.handle(t0, call(8, BOB));
    drain(&mut ann);
    ann.handle(t0 + Timeouts::default().grant, Input::Timer);
    assert_eq!(ended(&drain(&mut ann)), Some(EndReason::Unavailable));
}

/// Ann calls bob with `a` while bob calls ann with `b`; each gets the other's Inquire.
fn glare(a: CallId, b: CallId) -> (CallMachine, CallMachine, Vec<Output>, Vec<Output>) {
    let t0 = Instant::now();
    let (mut ann, mut bob) =
        (CallMachine::new(ANN, Timeouts::default()), CallMachine::new(BOB, Timeouts::default()));
    ann.handle(t0, call(a, BOB));
    bob.handle(t0, call(b, ANN));
    drain(&mut ann);
    drain(&mut bob);
    ann.handle(t0, remote(BOB, 21, b, CallSignal::Inquire { video: false }));
    bob.handle(t0, remote(ANN, 11, a, CallSignal::Inquire { video: false }));
    let (oa, ob) = (drain(&mut ann), drain(&mut bob));
    (ann, bob, oa, ob)
}

#[test]
fn glare_win_keeps_my_call() {
    let (ann, bob, oa, ob) = glare(20, 10);
    assert_eq!(ann.active_call(), Some(20));
    assert!(signals(&oa).is_empty(), "the winner drops the other Inquire");
    // Bob lost: he abandoned 10 and granted 20.
    assert_eq!(bob.active_call(), Some(20));
    assert_eq!(ended(&ob), Some(EndReason::Glare));
    assert_eq!(signals(&ob), [(ANN, Some(11), CallSignal::Grant {})]);
}

#[test]
fn glare_lose_takes_their_call() {
    let (ann, bob, oa, _) = glare(10, 20);
    assert_eq!((ann.active_call(), bob.active_call()), (Some(20), Some(20)));
    assert_eq!(ended(&oa), Some(EndReason::Glare));
    assert_eq!(record(&oa), None, "an abandoned glare call is not recorded");
}

#[test]
fn glare_tie_ends_both() {
    let (ann, bob, oa, ob) = glare(10, 10);
    assert!(!ann.is_busy() && !bob.is_busy());
    assert_eq!((ended(&oa), ended(&ob)), (Some(EndReason::Glare), Some(EndReason::Glare)));
}

#[test]
fn a_second_caller_while_ringing_is_refused_busy() {
    let t0 = Instant::now();
    let (_ann, mut bob) = ringing(t0);
    bob.handle(t0, remote(CY, 31, 8, CallSignal::Inquire { video: true }));
    assert_eq!(
        signals(&drain(&mut bob)),
        [(CY, Some(31), CallSignal::Refuse { reason: RefuseReason::Busy })]
    );
    // Cy's offer for the refused call is dropped too.
    bob.handle(t0, remote(CY, 31, 8, CallSignal::Offer { sdp: blob("x") }));
    assert!(drain(&mut bob).is_empty());
}

#[test]
fn a_stale_inquire_of_an_ended_call_is_dropped() {
    let t0 = Instant::now();
    let (mut ann, mut bob) = ringing(t0);
    ann.handle(t0, Input::Local(Local::Hangup));
    bob.handle(t0, remote(ANN, 11, 7, CallSignal::Cancel {}));
    drain(&mut bob);
    // The same Inquire delivered again (a retry, a slow path): nothing happens.
    bob.handle(t0, remote(ANN, 11, 7, CallSignal::Inquire { video: false }));
    assert!(drain(&mut bob).is_empty());
    assert!(!bob.is_busy());
}

// ---- random interleavings ------------------------------------------------------------------

/// A device in the property run: its machine and what it has seen.
struct Device {
    user: i64,
    id: i64,
    m: CallMachine,
    accepted: BTreeSet<CallId>,
    connected: BTreeSet<CallId>,
    /// The call this device is in, as its outputs tell (cleared by its Ended event).
    current: Option<CallId>,
    /// When each of its reservations began.
    reserved: BTreeMap<CallId, Instant>,
}

#[derive(Debug, Clone)]
enum Step {
    /// Deliver the next in-flight signal (the index picks which link).
    Deliver(usize),
    /// A user acts on a device.
    Act(usize, u8),
    /// Media on a device reports.
    MediaDone(usize),
    /// Time passes.
    Wait(u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0usize..8).prop_map(Step::Deliver),
        2 => (0usize..3, 0u8..5).prop_map(|(d, a)| Step::Act(d, a)),
        2 => (0usize..3).prop_map(Step::MediaDone),
        1 => (0u64..20_000).prop_map(Step::Wait),
    ]
}

fn run(steps: Vec<Step>) -> Result<(), TestCaseError> {
    let t0 = Instant::now();
    let mut now = t0;
    let mut devices: Vec<Device> = [(ANN, 11), (BOB, 21), (CY, 31)]
        .into_iter()
        .map(|(user, id)| Device {
            user,
            id,
            m: CallMachine::new(user, Timeouts::default()),
            accepted: BTreeSet::new(),
            connected: BTreeSet::new(),
            current: None,
            reserved: BTreeMap::new(),
        })
        .collect();
    // In-flight signals per (from, to) link, in order (a link never reorders).
    let mut links: BTreeMap<(usize, usize), VecDeque<(CallId, CallSignal)>> = BTreeMap::new();
    // Media commands waiting for their report, per device.
    let mut pending_media: Vec<VecDeque<MediaCommand>> = vec![VecDeque::new(); 3];
    let mut next_call: CallId = 100;
    let settle = |devices: &mut Vec<Device>,
                  links: &mut BTreeMap<(usize, usize), VecDeque<(CallId, CallSignal)>>,
                  pending_media: &mut Vec<VecDeque<MediaCommand>>,
                  now: Instant|
     -> Result<(), TestCaseError> {
        for d in 0..devices.len() {
            let outs = drain(&mut devices[d].m);
            for o in outs {
                match o {
                    Output::Signal { to_user, to_device, call, signal, .. } => {
                        for (t, dev) in devices.iter().enumerate() {
                            if t != d
                                && dev.user == to_user
                                && to_device.is_none_or(|x| x == dev.id)
                            {
                                links.entry((d, t)).or_default().push_back((call, signal.clone()));
                            }
                        }
                    }
                    Output::Media(cmd) => {
                        let call = devices[d].m.active_call();
                        // No media on a callee before it accepted.
                        if let (
                            MediaCommand::CreateAnswer { .. } | MediaCommand::AddCandidate { .. },
                            Some(call),
                        ) = (&cmd, call)
                        {
                            let callee = devices[d]
                                .m
                                .active
                                .as_ref()
                                .is_some_and(|a| a.role == Role::Callee);
                            prop_assert!(
                                !callee || devices[d].accepted.contains(&call),
                                "media before accept"
                            );
                        }
                        if !matches!(cmd, MediaCommand::Stop | MediaCommand::AddCandidate { .. }) {
                            pending_media[d].push_back(cmd);
                        } else if matches!(cmd, MediaCommand::Stop) {
                            pending_media[d].clear();
                        }
                    }
                    Output::Ui(CallEvent::Connected { call }) => {
                        devices[d].connected.insert(call);
                    }
                    Output::Ui(CallEvent::Ended { call, .. })
                        if devices[d].current == Some(call) =>
                    {
                        devices[d].current = None;
                    }
                    Output::Ui(_) | Output::Record { .. } => {}
                }
            }
            // Never two active calls: a device's call changes only after it ended.
            if let Some(call) = devices[d].m.active_call() {
                let current = *devices[d].current.get_or_insert(call);
                prop_assert_eq!(current, call, "device {} in two calls", devices[d].id);
            }
            // Reservations never outlive their timeout.
            let reserved =
                devices[d].m.active.as_ref().filter(|a| a.phase == Phase::Reserved).map(|a| a.call);
            if let Some(call) = reserved {
                let since = *devices[d].reserved.entry(call).or_insert(now);
                prop_assert!(
                    now < since + Timeouts::default().reservation,
                    "reservation held too long"
                );
            }
        }
        Ok(())
    };
    for s in steps {
        match s {
            Step::Deliver(i) => {
                let keys: Vec<(usize, usize)> =
                    links.iter().filter(|(_, q)| !q.is_empty()).map(|(k, _)| *k).collect();
                if let Some(&(from, to)) = keys.get(i % keys.len().max(1)) {
                    if let Some((call, signal)) =
                        links.get_mut(&(from, to)).and_then(|q| q.pop_front())
                    {
                        let (user, id) = (devices[from].user, devices[from].id);
                        devices[to].m.handle(now, remote(user, id, call, signal));
                    }
                }
            }
            Step::Act(d, a) => {
                let others: Vec<i64> =
                    devices.iter().filter(|x| x.user != devices[d].user).map(|x| x.user).collect();
                let input = match a {
                    0 | 1 => {
                        next_call += 1;
                        Local::Call {
                            call: next_call,
                            room: ROOM,
                            user: others[usize::from(a) % others.len()],
                            video: false,
                        }
                    }
                    2 => Local::Accept,
                    3 => Local::Decline,
                    _ => Local::Hangup,
                };
                if input == Local::Accept {
                    if let Some(call) = devices[d].m.active_call() {
                        devices[d].accepted.insert(call);
                    }
                }
                devices[d].m.handle(now, Input::Local(input));
            }
            Step::MediaDone(d) => {
                if let Some(cmd) = pending_media[d].pop_front() {
                    let report = match cmd {
                        MediaCommand::CreateOffer { .. } => Media::OfferCreated(blob("offer")),
                        MediaCommand::CreateAnswer { .. } => Media::AnswerCreated(blob("answer")),
                        MediaCommand::ApplyAnswer { .. } => Media::Connected,
                        MediaCommand::AddCandidate { .. } | MediaCommand::Stop => continue,
                    };
                    let after_answer = matches!(report, Media::AnswerCreated(_));
                    devices[d].m.handle(now, Input::Media(report));
                    if after_answer {
                        pending_media[d]
                            .push_back(MediaCommand::ApplyAnswer { answer: blob("connect") });
                    }
                }
            }
            Step::Wait(ms) => {
                now += Duration::from_millis(ms);
                for dev in &mut devices {
                    if dev.m.poll_timeout().is_some_and(|t| t <= now) {
                        dev.m.handle(now, Input::Timer);
                    }
                }
            }
        }
        settle(&mut devices, &mut links, &mut pending_media, now)?;
    }
    // Let everything arrive and every timer fire: every device ends idle.
    for _ in 0..50 {
        for (&(from, to), q) in links.iter_mut() {
            while let Some((call, signal)) = q.pop_front() {
                let (user, id) = (devices[from].user, devices[from].id);
                devices[to].m.handle(now, remote(user, id, call, signal));
            }
        }
        now += Duration::from_secs(30);
        for dev in &mut devices {
            // Media never connects now: nothing is left to report.
            dev.m.handle(now, Input::Timer);
            if dev.m.active.as_ref().is_some_and(|a| matches!(a.phase, Phase::Connected { .. })) {
                dev.m.handle(now, Input::Local(Local::Hangup));
            }
        }
        settle(&mut devices, &mut links, &mut pending_media, now)?;
        pending_media.iter_mut().for_each(VecDeque::clear);
    }
    for dev in &devices {
        prop_assert!(!dev.m.is_busy(), "device {} still in a call", dev.id);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn random_interleavings_keep_the_invariants(steps in prop::collection::vec(step(), 0..120)) {
        run(steps)?;
    }
}
