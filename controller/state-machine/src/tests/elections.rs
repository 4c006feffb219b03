//! ElectLeaders: preferred and unclean.

use super::*;
use crate::{ElectionOutcome, ElectionType, IsrChange, NO_LEADER, Outcome};

fn elect(election: ElectionType, partitions: Option<Vec<(&str, i32)>>) -> Command {
    Command::ElectLeaders {
        election,
        partitions: partitions.map(|list| list.into_iter().map(|(t, p)| (t.to_owned(), p)).collect()),
    }
}

fn outcomes(applied: &Applied) -> Vec<ElectionOutcome> {
    match &applied.outcome {
        Ok(Outcome::LeadersElected(outcomes)) => outcomes.clone(),
        other => panic!("unexpected outcome {other:?}"),
    }
}

fn outcome(topic: &str, partition: i32, result: Result<(BrokerId, i32), StateError>) -> ElectionOutcome {
    ElectionOutcome { topic: topic.into(), partition, result }
}

/// Rule: preferred election moves leadership back to replicas[0] once it is
/// alive and in sync, bumping both epochs; it reports NotNeeded when it
/// already leads, NotAvailable when it is out of sync, and missing partitions.
#[test]
fn preferred_election_restores_the_first_replica() {
    let mut h = cluster(2);
    h.create_with_replicas("t", vec![vec![1, 2], vec![2, 1]], false);
    h.fence(1);
    h.apply(register(1, "back", ""));
    let p0 = h.partition("t", 0);
    assert_eq!((p0.leader, p0.isr.clone()), (2, vec![2]));

    let list = Some(vec![("t", 0), ("t", 1), ("t", 7), ("nope", 0)]);
    let applied = h.apply(elect(ElectionType::Preferred, list.clone()));
    let not_available = StateError::EligibleLeadersNotAvailable { topic: "t".into(), partition: 0 };
    assert_eq!(
        outcomes(&applied),
        vec![
            outcome("t", 0, Err(not_available)),
            outcome("t", 1, Err(StateError::ElectionNotNeeded { topic: "t".into(), partition: 1 })),
            outcome("t", 7, Err(StateError::PartitionNotFound { topic: "t".into(), partition: 7 })),
            outcome("nope", 0, Err(StateError::TopicNotFound("nope".into()))),
        ]
    );
    assert!(applied.changes.is_empty());

    let epoch = p0.partition_epoch;
    h.apply(Command::AlterIsr {
        changes: vec![IsrChange { topic: "t".into(), partition: 0, partition_epoch: epoch, new_isr: vec![1, 2] }],
    });
    let applied = h.apply(elect(ElectionType::Preferred, list));
    assert_eq!(outcomes(&applied)[0], outcome("t", 0, Ok((1, p0.leader_epoch + 1))));
    let p = h.partition("t", 0);
    assert_eq!((p.leader, p.partition_epoch), (1, epoch + 2));
    assert_eq!(applied.changes.partitions.len(), 1);
    assert_eq!(applied.changes.partitions[0].previous_leader, 2);
}

/// Rule: a whole-cluster election reports only partitions that changed or
/// failed for a reason other than ElectionNotNeeded.
#[test]
fn whole_cluster_election_reports_only_changes_and_failures() {
    let mut h = cluster(3);
    h.create_with_replicas("a", vec![vec![1, 2], vec![2, 3], vec![3, 1]], false);
    h.fence(3);
    let applied = h.apply(elect(ElectionType::Preferred, None));
    // a-0 and a-1 need nothing; a-2's preferred broker 3 is fenced.
    let a2 = h.partition("a", 2);
    assert_eq!(
        outcomes(&applied),
        vec![outcome("a", 2, Err(StateError::EligibleLeadersNotAvailable { topic: "a".into(), partition: 2 }))]
    );
    assert_eq!(a2.leader, 1);
    let applied = h.apply(elect(ElectionType::Unclean, None));
    assert!(outcomes(&applied).is_empty(), "every partition has a leader");
}

/// Rule: unclean election needs a leaderless partition; it takes a live ISR
/// member first, else the first live replica with an ISR of one, else fails.
#[test]
fn unclean_election_rules() {
    let mut h = cluster(3);
    h.create_with_replicas("t", vec![vec![1, 2, 3]], false);
    let applied = h.apply(elect(ElectionType::Unclean, Some(vec![("t", 0)])));
    assert_eq!(
        outcomes(&applied),
        vec![outcome("t", 0, Err(StateError::ElectionNotNeeded { topic: "t".into(), partition: 0 }))]
    );

    h.apply(Command::AlterIsr {
        changes: vec![IsrChange { topic: "t".into(), partition: 0, partition_epoch: 0, new_isr: vec![1] }],
    });
    h.fence(1);
    let p = h.partition("t", 0);
    assert_eq!((p.leader, p.isr.clone(), p.leader_epoch), (NO_LEADER, vec![1], 1));
    let applied = h.apply(elect(ElectionType::Unclean, None));
    assert_eq!(outcomes(&applied), vec![outcome("t", 0, Ok((2, 2)))]);
    let p = h.partition("t", 0);
    assert_eq!((p.leader, p.isr.clone()), (2, vec![2]));
    assert_eq!(applied.changes.partitions[0].record, p);

    // Nobody eligible at all.
    h.fence(2);
    h.fence(3);
    let p = h.partition("t", 0);
    assert_eq!(p.leader, NO_LEADER);
    let applied = h.apply(elect(ElectionType::Unclean, Some(vec![("t", 0)])));
    let none = StateError::EligibleLeadersNotAvailable { topic: "t".into(), partition: 0 };
    assert_eq!(outcomes(&applied), vec![outcome("t", 0, Err(none))]);
    assert_eq!(h.partition("t", 0), p);
}

/// Rule: unclean election prefers a live ISR member over out-of-sync replicas.
#[test]
fn unclean_election_prefers_the_isr() {
    let mut h = cluster(3);
    h.create_with_replicas("t", vec![vec![1, 2, 3]], false);
    // Built by hand (commands elect such a partition at once): leaderless,
    // with live ISR member 3 behind live out-of-sync replicas 1 and 2.
    let part = h.state.topics.get_mut("t").map(|t| &mut t.partitions[0]).expect("exists");
    part.leader = NO_LEADER;
    part.isr = vec![3];
    part.leader_epoch = 1;
    part.partition_epoch = 1;
    h.state.index = crate::index::DerivedIndex::rebuild(h.state.topics.values());
    let applied = h.apply(elect(ElectionType::Unclean, Some(vec![("t", 0)])));
    assert_eq!(outcomes(&applied), vec![outcome("t", 0, Ok((3, 2)))]);
    assert_eq!(h.partition("t", 0).isr, vec![3]);
}
