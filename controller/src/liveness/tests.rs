//! Liveness decisions, tested by their outputs with no network.

use std::sync::Arc;
use std::time::{Duration, Instant};

use baton_state_machine::{Command, State, TopicConfig};

use super::{IsrExpansion, Liveness};
use crate::config::LivenessConfig;

fn cluster(brokers: i32) -> (State, u64) {
    let mut s = State::new();
    let mut index = 0;
    for id in 1..=brokers {
        index += 1;
        s.apply(
            index,
            &Command::RegisterBroker {
                broker_id: id,
                incarnation_id: format!("i{id}"),
                endpoint: format!("h:{id}"),
                rack: String::new(),
            },
        );
    }
    index += 1;
    let created = s.apply(
        index,
        &Command::CreateTopic {
            name: "t".into(),
            partitions: 1,
            replication_factor: brokers.min(3),
            config: TopicConfig::default(),
        },
    );
    assert!(created.outcome.is_ok());
    (s, index)
}

fn liveness(fast: bool) -> Liveness {
    Liveness::new(LivenessConfig { fast_failover_on_disconnect: fast, ..LivenessConfig::default() })
}

/// `broker` heartbeats in this term, declaring whether its data plane grows
/// ISRs by request, with `requests`.
fn heartbeat_with(l: &Liveness, state: &State, broker: i32, by_request: bool, requests: Vec<IsrExpansion>) {
    let epoch = state.broker(broker).map(|b| b.epoch).expect("registered");
    l.open_session(broker, epoch, Instant::now());
    l.record_isr_requests(state, broker, epoch, by_request, requests.into_iter());
}

fn expansion(partition_epoch: i32, leader_epoch: i32, followers: &[i32]) -> IsrExpansion {
    IsrExpansion { topic: Arc::from("t"), partition: 0, leader_epoch, partition_epoch, followers: followers.to_vec() }
}

#[test]
fn new_leader_waits_a_full_session_timeout_before_fencing_anyone() {
    let (state, index) = cluster(3);
    let l = liveness(true);
    let t0 = Instant::now();
    l.set_leader(true, 1, t0, index);
    let timeout = l.session_timeout();
    assert!(l.due_for_fencing(&state, t0 + timeout / 2).is_empty(), "fenced before one session timeout");
    let due = l.due_for_fencing(&state, t0 + timeout + Duration::from_millis(1));
    assert_eq!(due.len(), 3, "never-heard brokers are fenced after one timeout: {due:?}");
    // Marked as fencing: not proposed twice.
    assert!(l.due_for_fencing(&state, t0 + timeout * 2).is_empty());
}

#[test]
fn heartbeats_keep_a_broker_alive_and_stop_granting_once_fencing_starts() {
    let (state, index) = cluster(3);
    let l = liveness(true);
    let t0 = Instant::now();
    l.set_leader(true, 1, t0, index);
    let epoch = state.broker(1).map(|b| b.epoch).expect("broker 1");
    let session = l.open_session(1, epoch, t0);
    let timeout = l.session_timeout();
    let later = t0 + timeout - Duration::from_millis(10);
    assert!(l.heartbeat(1, epoch, 5, || 0, later));
    let due = l.due_for_fencing(&state, t0 + timeout + Duration::from_millis(100));
    assert!(!due.iter().any(|(b, _)| *b == 1), "a broker that heartbeated was fenced");
    assert!(l.begin_fence(1, epoch));
    assert!(!l.heartbeat(1, epoch, 6, || 0, later), "a lease was granted while a fence is in flight");
    assert!(!l.session_closed(1, epoch, session), "fast path must not fence twice");
}

#[test]
fn only_the_current_session_closing_triggers_fast_failover() {
    let (state, index) = cluster(3);
    let epoch = state.broker(2).map(|b| b.epoch).expect("broker 2");
    let l = liveness(true);
    let t0 = Instant::now();
    l.set_leader(true, 1, t0, index);
    let old = l.open_session(2, epoch, t0);
    let new = l.open_session(2, epoch, t0);
    assert!(!l.session_closed(2, epoch, old), "a superseded session closing fenced the broker");
    assert!(l.session_closed(2, epoch, new));

    let off = liveness(false);
    off.set_leader(true, 1, t0, index);
    let s = off.open_session(2, epoch, t0);
    assert!(!off.session_closed(2, epoch, s), "fast failover ran while turned off");
}

#[test]
fn lagging_follower_leaves_the_isr_and_rejoins_when_caught_up() {
    let (mut state, mut index) = cluster(3);
    let l = Liveness::new(LivenessConfig { replica_lag_max_ms: 1_000, ..LivenessConfig::default() });
    let t0 = Instant::now();
    l.set_leader(true, 1, t0, index);
    let p = state.partition("t", 0).expect("partition").clone();
    let leader = p.leader;
    let follower = *p.isr.iter().find(|b| **b != leader).expect("a follower");
    let topic: Arc<str> = Arc::from("t");
    heartbeat_with(&l, &state, leader, false, Vec::new());
    l.record_progress(&state, leader, [(topic.clone(), 0, 100)].into_iter());
    l.record_progress(&state, follower, [(topic.clone(), 0, 40)].into_iter());
    // First seen behind at +500 ms: the follower gets replica_lag_max from then.
    assert!(l.isr_changes(&state, t0 + Duration::from_millis(500)).is_empty(), "shrunk before replica_lag_max");
    assert!(l.isr_changes(&state, t0 + Duration::from_millis(1_400)).is_empty(), "shrunk before replica_lag_max");
    let changes = l.isr_changes(&state, t0 + Duration::from_millis(1_600));
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert!(!changes[0].new_isr.contains(&follower));
    index += 1;
    let applied = state.apply(index, &Command::AlterIsr { changes });
    assert!(applied.outcome.is_ok(), "{:?}", applied.outcome);

    // Catching up brings it back.
    l.record_progress(&state, follower, [(topic, 0, 100)].into_iter());
    let changes = l.isr_changes(&state, t0 + Duration::from_millis(1_700));
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert!(changes[0].new_isr.contains(&follower));
}

/// The scan looks only at partitions reported on since the last one (and
/// those lagging): a follower seen caught up long ago still gets the whole
/// lag window from the scan that first sees it behind, and one that stays
/// behind is shrunk without any further report.
#[test]
fn a_follower_falling_behind_after_a_quiet_spell_gets_the_whole_lag_window() {
    let (state, _) = cluster(3);
    let l = Liveness::new(LivenessConfig { replica_lag_max_ms: 1_000, ..LivenessConfig::default() });
    let t0 = Instant::now();
    l.set_leader(true, 1, t0, state.applied_index());
    let p = state.partition("t", 0).expect("partition").clone();
    let topic: Arc<str> = Arc::from("t");
    heartbeat_with(&l, &state, p.leader, false, Vec::new());
    for &replica in &p.isr {
        l.record_progress(&state, replica, [(topic.clone(), 0, 100)].into_iter());
    }
    assert!(l.isr_changes(&state, t0).is_empty());
    // Quiet for 10 s, then the leader moves on (twice, so its mark moves).
    let later = t0 + Duration::from_secs(10);
    l.record_progress(&state, p.leader, [(topic.clone(), 0, 200)].into_iter());
    l.record_progress(&state, p.leader, [(topic, 0, 300)].into_iter());
    let at_once = l.isr_changes(&state, later);
    assert!(at_once.is_empty(), "shrunk at once after a quiet spell: {at_once:?}");
    assert!(l.isr_changes(&state, later + Duration::from_millis(900)).is_empty(), "shrunk before replica_lag_max");
    let changes = l.isr_changes(&state, later + Duration::from_millis(1_100));
    assert_eq!(changes.len(), 1, "a lagging partition is looked at again without a report: {changes:?}");
    assert_eq!(changes[0].new_isr, vec![p.leader]);
}

/// Offsets of a deleted topic are dropped by the scan.
#[test]
fn progress_of_a_deleted_topic_is_forgotten() {
    let (mut state, index) = cluster(3);
    let l = liveness(true);
    let t0 = Instant::now();
    l.set_leader(true, 1, t0, index);
    let p = state.partition("t", 0).expect("partition").clone();
    l.record_progress(&state, p.leader, [(Arc::from("t"), 0, 100)].into_iter());
    assert!(l.isr_changes(&state, t0).is_empty());
    assert_eq!(l.tracked_partitions(), 1);
    let applied = state.apply(index + 1, &Command::DeleteTopic { name: "t".into() });
    assert!(applied.outcome.is_ok());
    assert!(l.isr_changes(&state, t0).is_empty());
    assert_eq!(l.tracked_partitions(), 0);
}

#[test]
fn a_follower_controller_decides_nothing() {
    let (state, _) = cluster(3);
    let l = liveness(true);
    let t0 = Instant::now();
    assert!(l.due_for_fencing(&state, t0 + Duration::from_secs(60)).is_empty());
    assert!(!l.heartbeat(1, 1, 1, || 0, t0));
    assert!(l.isr_changes(&state, t0).is_empty());
}

#[test]
fn a_broker_registered_under_this_leader_gets_a_full_session_timeout() {
    let (mut state, index) = cluster(2);
    let l = liveness(true);
    let t0 = Instant::now();
    l.set_leader(true, 1, t0, index);
    let timeout = l.session_timeout();
    // Broker 3 registers long after leadership began.
    state.apply(
        index + 1,
        &Command::RegisterBroker {
            broker_id: 3,
            incarnation_id: "i3".into(),
            endpoint: "h:3".into(),
            rack: String::new(),
        },
    );
    let first_seen = t0 + timeout * 2;
    let due = l.due_for_fencing(&state, first_seen);
    assert!(!due.iter().any(|(b, _)| *b == 3), "a just-registered broker was fenced at once: {due:?}");
    let due = l.due_for_fencing(&state, first_seen + timeout + Duration::from_millis(1));
    assert!(due.iter().any(|(b, _)| *b == 3), "a silent new broker was never fenced");
}

#[test]
fn no_lease_for_a_broker_that_has_not_seen_its_leadership_taken() {
    let (state, index) = cluster(3);
    let l = liveness(true);
    let t0 = Instant::now();
    l.set_leader(true, 1, t0, index);
    let epoch = state.broker(1).map(|b| b.epoch).expect("broker 1");
    l.open_session(1, epoch, t0);
    assert!(!l.heartbeat(1, epoch, 9, || 10, t0), "granted a lease to a broker behind its revocation");
    assert!(l.heartbeat(1, epoch, 10, || 10, t0));
}

#[test]
fn a_handoff_completes_on_acknowledgement_or_when_every_lease_has_run_out() {
    use crate::metadata::Handoff;
    let (state, index) = cluster(3);
    let l = liveness(true);
    let t0 = Instant::now();
    l.set_leader(true, 1, t0, index);
    let epoch = state.broker(1).map(|b| b.epoch).expect("broker 1");
    l.open_session(1, epoch, t0);
    // We granted broker 1 a lease well after our leadership began.
    let granted_at = t0 + l.session_timeout() + Duration::from_secs(1);
    assert!(l.heartbeat(1, epoch, 5, || 0, granted_at));
    let h = Handoff { from: 1, version: 7 };
    assert!(!l.handoff_done(&state, &h, granted_at), "handed off while the old leader's lease runs");
    assert!(!l.handoff_done(&state, &h, granted_at + l.lease_bound() - Duration::from_millis(1)));
    assert!(l.handoff_done(&state, &h, granted_at + l.lease_bound()), "lease bound passed");
    // Acknowledging the version ends it at once.
    assert!(l.heartbeat(1, epoch, 7, || 0, granted_at));
    assert!(l.handoff_done(&state, &h, granted_at));
    // A broker we never granted anything still waits out a predecessor's lease.
    let fresh = liveness(true);
    fresh.set_leader(true, 1, t0, index);
    assert!(!fresh.handoff_done(&state, &Handoff { from: 2, version: 7 }, t0 + Duration::from_millis(10)));
    assert!(fresh.handoff_done(&state, &Handoff { from: 2, version: 7 }, t0 + fresh.session_timeout()));
}

#[test]
fn a_new_term_starts_liveness_afresh_even_if_this_node_leads_again() {
    let (state, index) = cluster(3);
    let l = liveness(true);
    let t0 = Instant::now();
    l.set_leader(true, 1, t0, index);
    let epoch = state.broker(1).map(|b| b.epoch).expect("broker 1");
    l.open_session(1, epoch, t0);
    assert!(l.heartbeat(1, epoch, 9, || 0, t0));
    // The watch coalesced leader(1) -> follower -> leader(2).
    let t1 = t0 + Duration::from_secs(10);
    l.set_leader(true, 2, t1, index);
    assert!(!l.heartbeat(1, epoch, 9, || 0, t1), "a session of the old term was still counted");
    assert!(
        l.due_for_fencing(&state, t1 + l.session_timeout() / 2).is_empty(),
        "the new term fenced before a full timeout"
    );
}

#[test]
fn no_lease_without_recent_quorum_contact() {
    use crate::raft::{QuorumContact, mono_us};
    let (state, index) = cluster(3);
    let contact = Arc::new(QuorumContact::default());
    let l = liveness(true).with_quorum_contact(contact.clone(), Duration::from_millis(800));
    let t0 = Instant::now();
    l.set_leader(true, 1, t0, index);
    let epoch = state.broker(1).map(|b| b.epoch).expect("broker 1");
    l.open_session(1, epoch, t0);
    assert!(!l.heartbeat(1, epoch, 9, || 0, t0), "granted a lease with no quorum contact at all");
    contact.confirm(mono_us());
    assert!(l.heartbeat(1, epoch, 9, || 0, t0), "no lease despite fresh quorum contact");
    // A bound of zero: any contact that is not from this very microsecond is too old.
    let strict = liveness(true).with_quorum_contact(contact.clone(), Duration::ZERO);
    strict.set_leader(true, 1, t0, index);
    strict.open_session(1, epoch, t0);
    let confirmed = mono_us();
    contact.confirm(confirmed);
    while mono_us() <= confirmed {
        std::hint::spin_loop();
    }
    assert!(!strict.heartbeat(1, epoch, 9, || 0, t0), "granted a lease on quorum contact older than the bound");
}

/// A cluster whose partition t/0 lost a follower to a fence, after which
/// that broker registered again (alive, out of the ISR). Returns the state,
/// its last index, the partition as it was before and the follower.
fn follower_fenced_and_registered_again() -> (State, u64, baton_state_machine::Partition, i32) {
    use baton_state_machine::FenceReason;
    let (mut state, index) = cluster(3);
    let p = state.partition("t", 0).expect("partition").clone();
    let follower = *p.isr.iter().find(|b| **b != p.leader).expect("follower");
    let epoch = state.broker(follower).map(|b| b.epoch).expect("epoch");
    state.apply(
        index + 1,
        &Command::FenceBroker { broker_id: follower, broker_epoch: epoch, reason: FenceReason::SessionTimeout },
    );
    let register = Command::RegisterBroker {
        broker_id: follower,
        incarnation_id: "again".into(),
        endpoint: "h:9".into(),
        rack: String::new(),
    };
    state.apply(index + 2, &register);
    assert!(!state.partition("t", 0).expect("p").isr.contains(&follower));
    (state, index, p, follower)
}

#[test]
fn a_replica_rejoins_only_against_offsets_its_leader_reported() {
    let (state, index, p, follower) = follower_fenced_and_registered_again();

    let l = liveness(true);
    let t0 = Instant::now();
    l.set_leader(true, 1, t0, index + 2);
    let later = t0 + Duration::from_secs(5);
    let topic: Arc<str> = Arc::from("t");
    heartbeat_with(&l, &state, p.leader, false, Vec::new());
    // It claims a high offset, but the leader has not reported: no rejoin.
    l.record_progress(&state, follower, [(topic.clone(), 0, 1_000)].into_iter());
    assert!(l.isr_changes(&state, later).is_empty(), "rejoined on an unconfirmed offset");
    // The leader is ahead of the follower's LATEST report (not its maximum).
    l.record_progress(&state, p.leader, [(topic.clone(), 0, 500)].into_iter());
    l.record_progress(&state, follower, [(topic.clone(), 0, 400)].into_iter());
    assert!(l.isr_changes(&state, later).is_empty(), "rejoined while behind its leader");
    l.record_progress(&state, follower, [(topic, 0, 500)].into_iter());
    let changes = l.isr_changes(&state, later);
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert!(changes[0].new_isr.contains(&follower));
}

/// Under a steady produce load each broker reports at its own heartbeat: a
/// follower that trails its leader by less than a heartbeat rejoins (it has
/// reached the leader's previous report), though its every report is below
/// the leader's latest. Found by the reference broker's e2e run, where
/// caught-up followers never rejoined while producing.
#[test]
fn a_follower_within_a_heartbeat_of_a_moving_leader_rejoins() {
    let (state, index, p, follower) = follower_fenced_and_registered_again();
    let l = liveness(true);
    let t0 = Instant::now();
    l.set_leader(true, 1, t0, index + 2);
    let later = t0 + Duration::from_secs(5);
    let topic: Arc<str> = Arc::from("t");
    heartbeat_with(&l, &state, p.leader, false, Vec::new());
    l.record_progress(&state, p.leader, [(topic.clone(), 0, 1_000)].into_iter());
    l.record_progress(&state, follower, [(topic.clone(), 0, 1_090)].into_iter());
    l.record_progress(&state, p.leader, [(topic.clone(), 0, 1_100)].into_iter());
    let changes = l.isr_changes(&state, later);
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert!(changes[0].new_isr.contains(&follower));
    // Still behind the leader's previous report: not caught up.
    let l = liveness(true);
    l.set_leader(true, 1, t0, index + 2);
    heartbeat_with(&l, &state, p.leader, false, Vec::new());
    l.record_progress(&state, p.leader, [(topic.clone(), 0, 1_000)].into_iter());
    l.record_progress(&state, p.leader, [(topic.clone(), 0, 1_100)].into_iter());
    l.record_progress(&state, follower, [(topic, 0, 990)].into_iter());
    assert!(l.isr_changes(&state, later).is_empty(), "rejoined more than a report behind");
}

#[test]
fn without_any_reports_a_replica_rejoins_only_after_a_lease_of_leadership() {
    let (state, index, p, follower) = follower_fenced_and_registered_again();
    let l = liveness(true);
    let t0 = Instant::now();
    l.set_leader(true, 1, t0, index + 2);
    let new_epoch = state.broker(follower).map(|b| b.epoch).expect("epoch");
    l.open_session(follower, new_epoch, t0);
    assert!(
        l.isr_changes(&state, t0 + Duration::from_millis(1_600)).is_empty(),
        "rejoined though the leader was never heard from in this term (it may grow ISRs by request)"
    );
    heartbeat_with(&l, &state, p.leader, false, Vec::new());
    l.consider_for_isr([follower]);
    assert!(l.isr_changes(&state, t0 + Duration::from_millis(100)).is_empty(), "rejoined before agents could report");
    let changes = l.isr_changes(&state, t0 + Duration::from_millis(1_600));
    assert_eq!(changes.len(), 1, "{changes:?}");
}

/// The acks=all ISR-growth window (KIP-497): a leader whose data plane grows
/// ISRs by request computes its high watermark over the followers it asked
/// for, so the controller must add a follower to its ISR only on its
/// request, at the partition epoch the request names. With the old rule, a
/// follower whose LEO reached the leader's joined the ISR while the leader
/// still acknowledged writes without it.
#[test]
fn a_leader_that_grows_isrs_by_request_is_never_grown_from_reports() {
    let (state, index, p, follower) = follower_fenced_and_registered_again();
    let record = state.partition("t", 0).expect("partition").clone();
    let l = liveness(true);
    let t0 = Instant::now();
    l.set_leader(true, 1, t0, index + 2);
    let later = t0 + Duration::from_secs(5);
    let topic: Arc<str> = Arc::from("t");
    heartbeat_with(&l, &state, p.leader, true, Vec::new());
    heartbeat_with(&l, &state, follower, true, Vec::new());
    l.record_progress(&state, p.leader, [(topic.clone(), 0, 500)].into_iter());
    l.record_progress(&state, p.leader, [(topic.clone(), 0, 500)].into_iter());
    l.record_progress(&state, follower, [(topic.clone(), 0, 500)].into_iter());
    assert!(l.isr_changes(&state, later).is_empty(), "grew the ISR of a by-request leader from reports alone");
    // A later heartbeat without the flag does not turn the old rule back on.
    heartbeat_with(&l, &state, p.leader, false, Vec::new());
    l.record_progress(&state, follower, [(topic, 0, 500)].into_iter());
    assert!(l.isr_changes(&state, later).is_empty(), "the by-request declaration was forgotten");

    // Requests that do not match the partition now are ignored.
    let (pe, le) = (record.partition_epoch, record.leader_epoch);
    let stale =
        [expansion(pe - 1, le, &[follower]), expansion(pe, le - 1, &[follower]), expansion(pe + 1, le, &[follower])];
    for r in stale {
        heartbeat_with(&l, &state, p.leader, true, vec![r]);
        assert!(l.isr_changes(&state, later).is_empty(), "a stale request grew the ISR");
    }
    let other = *record.replicas.iter().find(|b| **b != p.leader && **b != follower).expect("a third replica");
    heartbeat_with(&l, &state, other, true, vec![expansion(pe, le, &[follower])]);
    assert!(l.isr_changes(&state, later).is_empty(), "a request from a broker that does not lead grew the ISR");

    // The leader's request at the current epochs: one change, that epoch as its token.
    heartbeat_with(&l, &state, p.leader, true, vec![expansion(pe, le, &[follower])]);
    let changes = l.isr_changes(&state, later);
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].partition_epoch, pe);
    assert!(changes[0].new_isr.contains(&follower));
    assert!(l.isr_changes(&state, later).is_empty(), "proposed twice from one request");
}

/// A follower the leader counts as pending but that cannot join (here it
/// was fenced after the leader asked) gets an answer anyway: the ISR
/// unchanged at a new partition epoch, which tells the leader to stop
/// counting it. Without it the leader's high watermark stalled for good
/// (found by the e2e test: a fetch long-polling from a broker killed -9).
#[test]
fn a_request_for_a_follower_that_cannot_join_is_answered_with_the_isr_unchanged() {
    use baton_state_machine::FenceReason;
    let (mut state, index, p, follower) = follower_fenced_and_registered_again();
    let record = state.partition("t", 0).expect("partition").clone();
    let l = liveness(true);
    let t0 = Instant::now();
    l.set_leader(true, 1, t0, index + 2);
    let ask = expansion(record.partition_epoch, record.leader_epoch, &[follower]);
    heartbeat_with(&l, &state, p.leader, true, vec![ask]);
    let epoch = state.broker(follower).map(|b| b.epoch).expect("epoch");
    let fence = Command::FenceBroker { broker_id: follower, broker_epoch: epoch, reason: FenceReason::SessionTimeout };
    state.apply(index + 3, &fence);
    assert_eq!(state.partition("t", 0).expect("p").partition_epoch, record.partition_epoch, "the fence changed t/0");
    let changes = l.isr_changes(&state, t0 + Duration::from_secs(5));
    assert_eq!(changes.len(), 1, "no answer: {changes:?}");
    assert_eq!((changes[0].partition_epoch, &changes[0].new_isr), (record.partition_epoch, &record.isr));
    let applied = state.apply(index + 4, &Command::AlterIsr { changes });
    assert!(applied.outcome.is_ok(), "{:?}", applied.outcome);
    let after = state.partition("t", 0).expect("p");
    assert!(after.partition_epoch > record.partition_epoch && after.isr == record.isr, "{after:?}");
}

#[test]
fn a_request_overtaken_by_another_change_is_not_proposed() {
    let (mut state, index, p, follower) = follower_fenced_and_registered_again();
    let record = state.partition("t", 0).expect("partition").clone();
    let l = liveness(true);
    let t0 = Instant::now();
    l.set_leader(true, 1, t0, index + 2);
    heartbeat_with(
        &l,
        &state,
        p.leader,
        true,
        vec![expansion(record.partition_epoch, record.leader_epoch, &[follower])],
    );
    // Another change commits first (here: the third replica leaves the ISR).
    let other = *record.isr.iter().find(|b| **b != p.leader).expect("another ISR member");
    let shrink = baton_state_machine::IsrChange {
        topic: "t".into(),
        partition: 0,
        partition_epoch: record.partition_epoch,
        new_isr: record.isr.iter().copied().filter(|b| *b != other).collect(),
    };
    assert!(state.apply(index + 3, &Command::AlterIsr { changes: vec![shrink] }).outcome.is_ok());
    assert!(l.isr_changes(&state, t0 + Duration::from_secs(5)).is_empty(), "proposed a request of an older epoch");
}
