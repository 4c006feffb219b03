//! AlterIsr: the compare-and-swap on partition_epoch.

use super::*;
use crate::{IsrChange, IsrOutcome, NO_LEADER, Outcome};

fn change(topic: &str, partition: i32, partition_epoch: i32, new_isr: Vec<BrokerId>) -> IsrChange {
    IsrChange { topic: topic.into(), partition, partition_epoch, new_isr }
}

fn alter(changes: Vec<IsrChange>) -> Command {
    Command::AlterIsr { changes }
}

fn results(applied: &Applied) -> Vec<Result<i32, StateError>> {
    match &applied.outcome {
        Ok(Outcome::IsrAltered(outcomes)) => outcomes.iter().map(|o| o.result.clone()).collect(),
        other => panic!("unexpected outcome {other:?}"),
    }
}

/// Rule: a matching partition epoch lets the ISR shrink and grow back, each
/// time bumping the partition epoch (not the leader epoch), ISR kept in
/// replica order whatever order the request used.
#[test]
fn isr_shrinks_and_grows_with_matching_epoch() {
    let mut h = cluster(3);
    h.create_with_replicas("t", vec![vec![1, 2, 3]], false);
    let applied = h.apply(alter(vec![change("t", 0, 0, vec![1, 3])]));
    assert_eq!(results(&applied), vec![Ok(1)]);
    let applied = h.apply(alter(vec![change("t", 0, 1, vec![3, 2, 1])]));
    assert_eq!(results(&applied), vec![Ok(2)]);
    let p = h.partition("t", 0);
    assert_eq!((p.isr.clone(), p.leader, p.leader_epoch, p.partition_epoch), (vec![1, 2, 3], 1, 0, 2));
    assert_eq!(applied.changes.partitions.len(), 1);
    assert_eq!(applied.changes.partitions[0].record, p);
}

/// Rule: a stale partition epoch is refused with the current one, changing nothing.
#[test]
fn stale_partition_epoch_is_refused() {
    let mut h = cluster(2);
    h.create_with_replicas("t", vec![vec![1, 2]], false);
    let before = h.partition("t", 0);
    let applied = h.apply(alter(vec![change("t", 0, 5, vec![1])]));
    let stale = StateError::StalePartitionEpoch { topic: "t".into(), partition: 0, expected: 0, got: 5 };
    assert_eq!(results(&applied), vec![Err(stale)]);
    assert!(applied.changes.is_empty());
    assert_eq!(h.partition("t", 0), before);
}

/// Rule: invalid ISRs (empty, repeated, not replicas, without the leader,
/// adding a non-alive broker, keeping a fenced one beside others) and unknown
/// partitions are refused, each changing nothing.
#[test]
fn invalid_isr_changes_are_refused() {
    let mut h = cluster(4);
    h.create_with_replicas("t", vec![vec![1, 2, 3]], false);
    h.apply(alter(vec![change("t", 0, 0, vec![1, 2])]));
    h.fence(3);
    let before = content(&h.state);
    let bad = [vec![], vec![1, 1], vec![1, 4], vec![2], vec![1, 3]];
    for isr in bad {
        let applied = h.apply(alter(vec![change("t", 0, 1, isr.clone())]));
        assert!(matches!(results(&applied)[..], [Err(StateError::InvalidRequest(_))]), "{isr:?}: {applied:?}");
    }
    let applied =
        h.apply(alter(vec![change("x", 0, 0, vec![1]), change("t", 1, 0, vec![1]), change("t", -1, 0, vec![1])]));
    assert_eq!(
        results(&applied),
        vec![
            Err(StateError::TopicNotFound("x".into())),
            Err(StateError::PartitionNotFound { topic: "t".into(), partition: 1 }),
            Err(StateError::PartitionNotFound { topic: "t".into(), partition: -1 }),
        ]
    );
    assert_eq!(content(&h.state), before);
}

/// Rule: a fenced last ISR member may be kept alone but not beside others.
#[test]
fn fenced_broker_may_only_remain_as_sole_member() {
    let mut h = cluster(2);
    h.create_with_replicas("t", vec![vec![1, 2]], false);
    h.apply(alter(vec![change("t", 0, 0, vec![1])]));
    h.fence(1);
    let p = h.partition("t", 0);
    assert_eq!((p.leader, p.isr.clone()), (NO_LEADER, vec![1]));
    let applied = h.apply(alter(vec![change("t", 0, p.partition_epoch, vec![1, 2])]));
    assert!(matches!(results(&applied)[..], [Err(StateError::InvalidRequest(_))]));
    // Replacing it by a live replica is allowed and elects that replica.
    let applied = h.apply(alter(vec![change("t", 0, p.partition_epoch, vec![2])]));
    assert_eq!(results(&applied), vec![Ok(p.partition_epoch + 1)]);
    let q = h.partition("t", 0);
    assert_eq!((q.leader, q.isr.clone(), q.leader_epoch), (2, vec![2], p.leader_epoch + 1));
    assert_eq!(applied.changes.partitions[0].previous_leader, NO_LEADER);
}

/// Rule: the changes of one batch are independent: a failing one does not
/// stop the others; a second change of the same partition in one batch sees
/// the first one's epoch.
#[test]
fn batch_changes_are_independent() {
    let mut h = cluster(3);
    h.create_with_replicas("t", vec![vec![1, 2, 3], vec![2, 3, 1]], false);
    let applied = h.apply(alter(vec![
        change("t", 0, 0, vec![1, 2]),
        change("t", 1, 9, vec![2]),
        change("t", 0, 0, vec![1]),
        change("t", 0, 1, vec![1]),
    ]));
    let outcomes = match &applied.outcome {
        Ok(Outcome::IsrAltered(o)) => o.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(outcomes[0], IsrOutcome { topic: "t".into(), partition: 0, result: Ok(1) });
    assert!(matches!(outcomes[1].result, Err(StateError::StalePartitionEpoch { expected: 0, got: 9, .. })));
    assert!(matches!(outcomes[2].result, Err(StateError::StalePartitionEpoch { expected: 1, got: 0, .. })));
    assert_eq!(outcomes[3].result, Ok(2));
    assert_eq!(h.partition("t", 0).isr, vec![1]);
    assert_eq!(h.partition("t", 1).isr, vec![2, 3, 1]);
    assert_eq!(applied.changes.partitions.len(), 2);
}
