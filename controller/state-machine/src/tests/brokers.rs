//! RegisterBroker and FenceBroker.

use super::*;
use crate::{BrokerState, ElectionType, NO_LEADER, Outcome};

/// Rule: a broker's epoch is the log index of its registration, and the
/// registration is reported in Changes.
#[test]
fn registration_epoch_is_the_log_index() {
    let mut h = cluster(2);
    let applied = h.apply(register(7, "inc-a", "r1"));
    assert_eq!(applied.outcome, Ok(Outcome::BrokerRegistered { broker_epoch: 3 }));
    let broker = h.state.broker(7).cloned().expect("registered");
    assert_eq!((broker.epoch, broker.state, broker.rack.as_str()), (3, BrokerState::Alive, "r1"));
    assert_eq!(applied.changes.brokers, vec![broker]);
    assert_eq!(h.state.live_broker_count(), 3);
    assert_eq!(h.state.brokers().map(|b| b.id).collect::<Vec<_>>(), vec![1, 2, 7]);
}

/// Rule: a negative id or an empty endpoint is refused and changes nothing.
#[test]
fn registration_with_bad_id_or_endpoint_is_refused() {
    let mut h = cluster(1);
    let bad_id = register(-1, "x", "");
    let before = content(&h.state);
    let applied = h.apply(bad_id);
    assert!(matches!(applied.outcome, Err(StateError::InvalidRequest(_))));
    let no_endpoint = Command::RegisterBroker {
        broker_id: 3,
        incarnation_id: "x".into(),
        endpoint: String::new(),
        rack: String::new(),
    };
    let applied = h.apply(no_endpoint);
    assert!(matches!(applied.outcome, Err(StateError::InvalidRequest(_))));
    assert_eq!(content(&h.state), before);
}

/// Rule: a second live incarnation of a broker id is refused; the first keeps
/// its epoch.
#[test]
fn second_live_incarnation_is_refused() {
    let mut h = cluster(1);
    h.refused(register(1, "other", ""), StateError::DuplicateBrokerRegistration { broker_id: 1 });
    assert_eq!(h.state.broker(1).map(|b| b.epoch), Some(1));
}

/// Rule: the same incarnation may register again (a retried request) and gets
/// a fresh epoch; a fenced broker may come back with a new incarnation.
#[test]
fn same_incarnation_or_fenced_broker_may_register_again() {
    let mut h = cluster(1);
    let applied = h.apply(register(1, "inc-1", "moved"));
    assert_eq!(applied.outcome, Ok(Outcome::BrokerRegistered { broker_epoch: 2 }));
    assert_eq!(h.state.broker(1).map(|b| b.rack.as_str()), Some("moved"));
    h.fence(1);
    let applied = h.apply(register(1, "restarted", ""));
    assert_eq!(applied.outcome, Ok(Outcome::BrokerRegistered { broker_epoch: 4 }));
    assert_eq!(
        h.state.broker(1).map(|b| (b.state, b.incarnation_id.as_str())),
        Some((BrokerState::Alive, "restarted"))
    );
}

/// Rule: fencing an unknown broker, with a stale epoch, or twice is refused
/// and changes nothing.
#[test]
fn fence_errors_change_nothing() {
    let mut h = cluster(3);
    h.create("t", 3, 3);
    let fence = |id, epoch| Command::FenceBroker { broker_id: id, broker_epoch: epoch, reason: FenceReason::Operator };
    h.refused(fence(9, 1), StateError::BrokerNotFound(9));
    h.refused(fence(2, 1), StateError::StaleBrokerEpoch { broker_id: 2, expected: 2, got: 1 });
    assert!(h.apply(fence(2, 2)).outcome.is_ok());
    h.refused(fence(2, 2), StateError::BrokerFenced(2));
}

/// Rule: fencing a leader elects the first live ISR member in replica order,
/// bumps both epochs, and removes the fenced broker from the ISR.
#[test]
fn fence_moves_leadership_to_first_live_isr_member_in_replica_order() {
    let mut h = cluster(4);
    h.create_with_replicas("t", vec![vec![1, 3, 2], vec![2, 1, 3]], false);
    let applied = h.fence(1);
    assert_eq!(applied.outcome, Ok(Outcome::BrokerFenced { partitions_moved: 1 }));
    let p0 = h.partition("t", 0);
    assert_eq!((p0.leader, p0.isr.clone(), p0.leader_epoch, p0.partition_epoch), (3, vec![3, 2], 1, 1));
    // Partition 1 was only followed by broker 1: leader and leader epoch stay.
    let p1 = h.partition("t", 1);
    assert_eq!((p1.leader, p1.isr.clone(), p1.leader_epoch, p1.partition_epoch), (2, vec![2, 3], 0, 1));
    assert_eq!(applied.changes.brokers.len(), 1);
    let changed: Vec<_> = applied.changes.partitions.iter().map(|c| (c.partition, c.previous_leader)).collect();
    assert_eq!(changed, vec![(0, 1), (1, 2)]);
    assert_eq!(applied.changes.partitions[0].record, p0);
}

/// Rule: ControlledShutdown and Drained brokers stay in ISRs but never lead.
#[test]
fn non_alive_isr_members_are_skipped_as_leaders() {
    let mut h = cluster(3);
    h.create_with_replicas("t", vec![vec![1, 2, 3]], false);
    if let Some(b) = h.state.brokers.get_mut(&2) {
        b.state = BrokerState::Drained;
    }
    h.fence(1);
    let p = h.partition("t", 0);
    assert_eq!((p.leader, p.isr), (3, vec![2, 3]));
}

/// Rule: the last ISR member stays in the ISR when fenced (it may hold the
/// only copy) and the partition goes leaderless; when that broker registers
/// again it leads again, in the same entry, at a higher leader epoch.
#[test]
fn fenced_last_isr_member_leads_again_after_reregistration() {
    let mut h = cluster(2);
    h.create_with_replicas("t", vec![vec![1, 2]], false);
    h.fence(2);
    h.fence(1);
    let p = h.partition("t", 0);
    assert_eq!((p.leader, p.isr.clone(), p.leader_epoch), (NO_LEADER, vec![1], 1));
    assert_eq!(h.state.leader_count(1), 0);

    // Broker 2 coming back is not in the ISR: still no leader.
    let applied = h.apply(register(2, "inc-2b", ""));
    assert!(applied.changes.partitions.is_empty());
    assert_eq!(h.partition("t", 0).leader, NO_LEADER);

    let applied = h.apply(register(1, "inc-1b", ""));
    let p = h.partition("t", 0);
    assert_eq!((p.leader, p.isr.clone(), p.leader_epoch), (1, vec![1], 2));
    assert_eq!(applied.changes.partitions.len(), 1);
    assert_eq!(applied.changes.partitions[0].previous_leader, NO_LEADER);
    assert_eq!(applied.changes.brokers.len(), 1);
    assert_eq!(h.state.leader_count(1), 1);
}

/// Rule: with unclean election enabled on the topic, losing the last live ISR
/// member hands leadership to the first live replica, with an ISR of one.
#[test]
fn fence_with_unclean_topic_elects_an_out_of_sync_replica() {
    let mut h = cluster(3);
    h.create_with_replicas("u", vec![vec![1, 2, 3]], true);
    h.create_with_replicas("c", vec![vec![1, 2, 3]], false);
    h.apply(Command::AlterIsr {
        changes: ["u", "c"]
            .iter()
            .map(|t| crate::IsrChange { topic: (*t).into(), partition: 0, partition_epoch: 0, new_isr: vec![1] })
            .collect(),
    });
    h.fence(1);
    let u = h.partition("u", 0);
    assert_eq!((u.leader, u.isr, u.leader_epoch), (2, vec![2], 1));
    let c = h.partition("c", 0);
    assert_eq!((c.leader, c.isr, c.leader_epoch), (NO_LEADER, vec![1], 1));
}

/// Rule: fencing touches only the fenced broker's partitions (the derived
/// index, not a scan), and the index lists exactly them.
#[test]
fn fence_changes_only_the_brokers_partitions() {
    let mut h = cluster(4);
    h.create_with_replicas("a", vec![vec![1, 2], vec![3, 4], vec![4, 1]], false);
    h.create_with_replicas("b", vec![vec![2, 3]], false);
    let mine: Vec<_> = h.state.partitions_of_broker(1).map(|(t, p)| (t.to_owned(), p)).collect();
    assert_eq!(mine, vec![("a".to_owned(), 0), ("a".to_owned(), 2)]);
    let before_b = h.partition("b", 0);
    let before_a1 = h.partition("a", 1);
    let applied = h.fence(1);
    let touched: Vec<_> = applied.changes.partitions.iter().map(|c| (c.topic.to_string(), c.partition)).collect();
    assert_eq!(touched, mine);
    assert_eq!(h.partition("b", 0), before_b);
    assert_eq!(h.partition("a", 1), before_a1);
    // The index still lists a fenced broker's replicas: it still hosts them.
    assert_eq!(h.state.partitions_of_broker(1).count(), 2);
    assert_eq!(h.state.partitions_of_broker(99).count(), 0);
}

/// Rule: a registration gives leaders only to leaderless partitions (a
/// partition with a leader keeps it, even a non-preferred one).
#[test]
fn registration_does_not_steal_existing_leadership() {
    let mut h = cluster(2);
    h.create_with_replicas("t", vec![vec![1, 2]], false);
    h.fence(1);
    assert_eq!(h.partition("t", 0).leader, 2);
    let applied = h.apply(register(1, "again", ""));
    assert!(applied.changes.partitions.is_empty());
    assert_eq!(h.partition("t", 0).leader, 2);
}

/// Rule: a drain moves every partition the broker leads to the first
/// eligible ISR member (epochs rise), keeps it in the ISRs, and keeps the
/// leadership where no other eligible ISR member exists.
#[test]
fn drain_moves_leadership_and_keeps_isr() {
    let mut h = cluster(3);
    h.create_with_replicas("t", vec![vec![1, 2, 3], vec![1, 3], vec![1], vec![2, 1]], false);
    let applied = h.apply(Command::DrainBroker { broker_id: 1, force: false });
    assert_eq!(applied.outcome, Ok(Outcome::LeadershipDrained { moved: 2, remaining: 1 }));
    let leaders: Vec<_> = (0..4).map(|p| (h.partition("t", p).leader, h.partition("t", p).leader_epoch)).collect();
    assert_eq!(leaders, vec![(2, 1), (3, 1), (1, 0), (2, 0)]);
    assert_eq!(h.partition("t", 0).isr, vec![1, 2, 3], "a drained broker stays in sync");
    assert_eq!(h.state.broker(1).map(|b| b.state), Some(BrokerState::Drained));
    // A drained broker is never elected, also by a preferred election.
    let applied = h.apply(Command::ElectLeaders { election: ElectionType::Preferred, partitions: None });
    assert!(applied.changes.partitions.is_empty(), "{:?}", applied.changes);
}

/// Rule: an operator drain survives the broker's fence and re-registration;
/// undrain makes it eligible again and gives it its leaderless partitions.
#[test]
fn drain_survives_restart_until_undrained() {
    let mut h = cluster(2);
    h.create_with_replicas("t", vec![vec![1]], false);
    h.apply(Command::DrainBroker { broker_id: 1, force: false });
    h.fence(1);
    assert_eq!(h.partition("t", 0).leader, NO_LEADER);
    h.apply(register(1, "inc-1b", ""));
    assert_eq!(h.state.broker(1).map(|b| b.state), Some(BrokerState::Drained));
    assert_eq!(h.partition("t", 0).leader, NO_LEADER, "a drained broker does not lead after a restart");
    let applied = h.apply(Command::UndrainBroker { broker_id: 1 });
    assert_eq!(applied.outcome, Ok(Outcome::BrokerUndrained { elected: 1 }));
    assert_eq!(h.partition("t", 0).leader, 1);
    h.refused(Command::UndrainBroker { broker_id: 1 }, StateError::BrokerNotDrained(1));
    h.refused(Command::UndrainBroker { broker_id: 9 }, StateError::BrokerNotFound(9));
}

/// Rule: one broker drained or shutting down at a time unless forced; a
/// controlled shutdown needs the current epoch and ends with that
/// registration (the broker comes back Alive).
#[test]
fn one_drain_at_a_time_and_controlled_shutdown_is_per_registration() {
    let mut h = cluster(3);
    h.create_with_replicas("t", vec![vec![2, 3]], false);
    h.apply(Command::DrainBroker { broker_id: 1, force: false });
    h.refused(
        Command::DrainBroker { broker_id: 2, force: false },
        StateError::DrainInProgress { broker_id: 2, other: 1 },
    );
    let epoch = h.state.broker(2).map(|b| b.epoch).expect("registered");
    h.refused(
        Command::ControlledShutdown { broker_id: 2, broker_epoch: epoch + 100 },
        StateError::StaleBrokerEpoch { broker_id: 2, expected: epoch, got: epoch + 100 },
    );
    let applied = h.apply(Command::ControlledShutdown { broker_id: 2, broker_epoch: epoch });
    assert_eq!(applied.outcome, Ok(Outcome::LeadershipDrained { moved: 1, remaining: 0 }));
    assert_eq!(h.partition("t", 0).leader, 3);
    assert_eq!(h.state.broker(2).map(|b| b.state), Some(BrokerState::ControlledShutdown));
    h.fence(2);
    h.apply(register(2, "inc-2b", ""));
    assert_eq!(h.state.broker(2).map(|b| b.state), Some(BrokerState::Alive));
    assert!(h.apply(Command::DrainBroker { broker_id: 3, force: true }).outcome.is_ok());
}
