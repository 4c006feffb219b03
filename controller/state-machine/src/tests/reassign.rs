//! Partition reassignment: never fewer in-sync copies than before, completes
//! in the entry that brings the last target replica in sync, leadership moves
//! by the elector's rules, cancel restores the original replicas.

use super::*;
use crate::{IsrChange, Outcome, ReassignmentChange, ReassignmentResult};

fn reassign(topic: &str, partition: i32, target: Option<Vec<BrokerId>>) -> Command {
    Command::AlterReassignments { changes: vec![ReassignmentChange { topic: topic.into(), partition, target }] }
}

fn result(applied: &Applied) -> Result<ReassignmentResult, StateError> {
    match &applied.outcome {
        Ok(Outcome::ReassignmentsAltered(o)) => o[0].result.clone(),
        other => panic!("unexpected outcome {other:?}"),
    }
}

/// Rule: start adds the target replicas in front (not in sync yet) and keeps
/// the originals; the entry that brings the last target in sync completes
/// it: replicas = target, ISR cut to it, the leader (not in target) replaced
/// at a higher epoch.
#[test]
fn reassignment_adds_then_completes_when_the_targets_are_in_sync() {
    let mut h = cluster(5);
    h.create_with_replicas("t", vec![vec![1, 2, 3]], false);
    let applied = h.apply(reassign("t", 0, Some(vec![4, 5, 2])));
    assert_eq!(result(&applied), Ok(ReassignmentResult::Started));
    let p = h.partition("t", 0);
    assert_eq!((p.replicas.clone(), p.isr.clone(), p.leader), (vec![4, 5, 2, 1, 3], vec![2, 1, 3], 1));
    assert_eq!(h.state.reassignments().len(), 1);

    // 4 catches up: not complete yet.
    let epoch = h.partition("t", 0).partition_epoch;
    h.apply(Command::AlterIsr {
        changes: vec![IsrChange { topic: "t".into(), partition: 0, partition_epoch: epoch, new_isr: vec![4, 2, 1, 3] }],
    });
    assert_eq!(h.partition("t", 0).replicas, vec![4, 5, 2, 1, 3]);
    // 5 catches up: complete in the same entry.
    let epoch = h.partition("t", 0).partition_epoch;
    let applied = h.apply(Command::AlterIsr {
        changes: vec![IsrChange {
            topic: "t".into(),
            partition: 0,
            partition_epoch: epoch,
            new_isr: vec![4, 5, 2, 1, 3],
        }],
    });
    let p = h.partition("t", 0);
    assert_eq!((p.replicas.clone(), p.isr.clone(), p.leader, p.leader_epoch), (vec![4, 5, 2], vec![4, 5, 2], 4, 1));
    assert!(h.state.reassignments().is_empty());
    assert_eq!(applied.changes.partitions.last().map(|c| c.previous_leader), Some(1));
    // Brokers 1 and 3 left the replicas: hosted-only views must still hear of it.
    let last = applied.changes.partitions.last().expect("a change");
    assert_eq!(last.removed_replicas, vec![1, 3]);
    assert!(last.concerns(1) && last.concerns(3) && last.concerns(4) && !last.concerns(6));
    assert!(applied.changes.partitions.iter().rev().skip(1).all(|c| c.removed_replicas.is_empty()));
    assert_eq!(h.state.partitions_of_broker(1).count(), 0, "the derived index follows the replicas");
    assert_eq!(h.state.partitions_of_broker(5).count(), 1);
}

/// Rule: cancel goes back to the original replicas keeping their ISR
/// members; a reassignment to the current replicas is a no-op; bad targets
/// and a cancel with nothing in flight are refused and change nothing;
/// deleting the topic forgets its reassignments.
#[test]
fn reassignment_cancel_and_refusals() {
    let mut h = cluster(4);
    h.create_with_replicas("t", vec![vec![1, 2], vec![2, 3]], false);
    h.apply(reassign("t", 0, Some(vec![3, 4])));
    let applied = h.apply(reassign("t", 0, None));
    assert_eq!(result(&applied), Ok(ReassignmentResult::Cancelled));
    let p = h.partition("t", 0);
    assert_eq!((p.replicas.clone(), p.isr.clone(), p.leader), (vec![1, 2], vec![1, 2], 1));
    assert!(h.state.reassignments().is_empty());

    assert_eq!(result(&h.apply(reassign("t", 1, Some(vec![2, 3])))), Ok(ReassignmentResult::Completed));
    for (target, err) in [
        (Some(vec![]), "empty"),
        (Some(vec![1, 1]), "repeated"),
        (Some(vec![9]), "not registered"),
        (None, "no reassignment"),
    ] {
        let before = h.state.clone();
        let applied = h.apply(reassign("t", 1, target.clone()));
        assert!(result(&applied).is_err(), "{target:?} ({err}) accepted");
        assert!(applied.changes.is_empty());
        assert_eq!(h.state.partition("t", 1), before.partition("t", 1));
    }
    h.apply(reassign("t", 1, Some(vec![4])));
    assert_eq!(h.state.reassignments().len(), 1);
    h.apply(Command::DeleteTopic { name: "t".into() });
    assert!(h.state.reassignments().is_empty());
}
