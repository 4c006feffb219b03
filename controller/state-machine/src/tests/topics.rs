//! CreateTopic, DeleteTopic, topic names, applied index.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::*;
use crate::{MAX_PARTITIONS_PER_TOPIC, NO_LEADER, Outcome, validate_topic_name};

/// Rule: topic id = log index; new partitions are led by their first replica
/// with every replica in sync at epochs 0, and every one is in Changes.
#[test]
fn created_partitions_start_led_by_the_first_replica() {
    let mut h = cluster(3);
    let applied = h.create("orders", 6, 2);
    assert_eq!(applied.outcome, Ok(Outcome::TopicCreated { topic_id: 4 }));
    let topic = h.state.topic("orders").cloned().expect("created");
    assert_eq!((topic.id, topic.partitions.len()), (4, 6));
    assert_eq!(h.state.topic_by_id(4).map(|t| &*t.name), Some("orders"));
    for (p, part) in topic.partitions.iter().enumerate() {
        assert_eq!(part.replicas.len(), 2);
        assert_eq!(
            (part.leader, &part.isr, part.leader_epoch, part.partition_epoch),
            (part.replicas[0], &part.replicas, 0, 0)
        );
        let change = &applied.changes.partitions[p];
        assert_eq!((change.partition, &change.record, change.previous_leader), (p as i32, part, NO_LEADER));
        // The name is allocated once per topic and shared by every change.
        assert!(Arc::ptr_eq(&change.topic, &topic.name));
    }
    assert_eq!(applied.changes.partitions.len(), 6);
    assert_eq!(h.state.partition_count(), 6);
}

/// Rule: Kafka's name rules; bad names are refused and change nothing.
#[test]
fn invalid_topic_names_are_refused() {
    let mut h = cluster(1);
    let long_ok = "a".repeat(249);
    for good in ["a", "A-b_c.d", "0", long_ok.as_str(), "..."] {
        assert_eq!(validate_topic_name(good), Ok(()), "{good}");
    }
    let too_long = "a".repeat(250);
    for bad in ["", ".", "..", "a b", "ü", "a/b", too_long.as_str()] {
        let applied = h.apply(create(bad, 1, 1, false));
        assert!(
            matches!(applied.outcome, Err(StateError::InvalidTopicName { ref name, .. }) if name == bad),
            "{bad:?}"
        );
        assert!(h.state.topics().next().is_none());
    }
}

/// Rule: an existing name, a partition count outside 1..=2^20 and a
/// replication factor outside 1..=live brokers are refused, changing nothing.
#[test]
fn bad_create_requests_change_nothing() {
    let mut h = cluster(3);
    h.create("t", 1, 1);
    h.refused(create("t", 1, 1, false), StateError::TopicAlreadyExists("t".into()));
    for n in [0, -1, MAX_PARTITIONS_PER_TOPIC + 1, i32::MIN] {
        h.refused(create("u", n, 1, false), StateError::InvalidPartitions(n));
    }
    for rf in [0, -3, 4, i32::MAX] {
        h.refused(create("u", 1, rf, false), StateError::InvalidReplicationFactor { requested: rf, available: 3 });
    }
    // Only Alive brokers count.
    h.fence(3);
    h.refused(create("u", 1, 3, false), StateError::InvalidReplicationFactor { requested: 3, available: 2 });
}

/// Rule: placement never chooses a fenced broker.
#[test]
fn placement_never_chooses_fenced_brokers() {
    let mut h = cluster(5);
    h.fence(2);
    h.fence(4);
    h.create("t", 30, 3);
    let used: BTreeSet<_> =
        h.state.topic("t").into_iter().flat_map(|t| &t.partitions).flat_map(|p| p.replicas.clone()).collect();
    assert_eq!(used, BTreeSet::from([1, 3, 5]));
}

/// Rule: placement through the state spreads replicas over racks first and
/// leaders evenly over brokers, across successive topics too.
#[test]
fn placement_spreads_racks_and_leaders() {
    let mut h = Harness::new();
    for (id, rack) in [(1, "a"), (2, "a"), (3, "b"), (4, "b"), (5, "c"), (6, "c")] {
        h.register(id, rack);
    }
    for t in 0..4 {
        h.create(&format!("t{t}"), 3, 3);
    }
    let rack = |b: BrokerId| h.state.broker(b).map(|b| b.rack.clone()).unwrap_or_default();
    let mut leaders: BTreeMap<BrokerId, usize> = BTreeMap::new();
    for topic in h.state.topics() {
        for p in &topic.partitions {
            let racks: BTreeSet<_> = p.replicas.iter().map(|b| rack(*b)).collect();
            assert_eq!(racks.len(), 3, "{:?}", p.replicas);
            *leaders.entry(p.leader).or_default() += 1;
        }
    }
    assert_eq!(leaders.values().copied().collect::<Vec<_>>(), vec![2; 6], "{leaders:?}");
    for id in 1..=6 {
        assert_eq!(h.state.leader_count(id), 2);
    }
}

/// Rule: deleting removes the topic and its index entries and reports the
/// name; a recreated topic gets a new id; unknown names are refused.
#[test]
fn delete_topic_removes_it_everywhere() {
    let mut h = cluster(2);
    h.create("t", 4, 2);
    h.refused(Command::DeleteTopic { name: "nope".into() }, StateError::TopicNotFound("nope".into()));
    let applied = h.apply(Command::DeleteTopic { name: "t".into() });
    assert_eq!(applied.outcome, Ok(Outcome::TopicDeleted));
    assert_eq!(applied.changes.deleted_topics, vec!["t".to_owned()]);
    assert!(h.state.topic("t").is_none());
    assert_eq!(h.state.partitions_of_broker(1).count(), 0);
    assert_eq!(h.state.leader_count(1) + h.state.leader_count(2), 0);
    assert!(h.state.topic_by_id(3).is_none());
    assert_eq!(h.state.partition("t", 0), Err(StateError::TopicNotFound("t".into())));
    let applied = h.create("t", 1, 1);
    assert_eq!(applied.outcome, Ok(Outcome::TopicCreated { topic_id: 6 }));
}

/// Rule: the applied index advances on every entry, failed or not; Noop only
/// advances it.
#[test]
fn applied_index_advances_even_on_failure() {
    let mut h = cluster(1);
    let applied = h.apply(Command::Noop);
    assert_eq!((applied.outcome, applied.changes.is_empty()), (Ok(Outcome::Noop), true));
    h.apply(Command::DeleteTopic { name: "missing".into() });
    assert_eq!(h.state.applied_index(), 3);
}

/// Rule: an index at or below the applied index is refused and changes
/// nothing, not even the version (ids and epochs never repeat).
#[test]
fn non_increasing_index_is_refused() {
    let mut h = cluster(1);
    let before = h.state.clone();
    for index in [0, 1] {
        let applied = h.state.apply(index, &create("t", 1, 1, false));
        assert!(matches!(applied.outcome, Err(StateError::InvalidRequest(_))));
        assert_eq!(h.state, before);
    }
}

/// Rule: partition lookups name what is missing.
#[test]
fn partition_lookup_errors() {
    let mut h = cluster(1);
    h.create("t", 2, 1);
    assert!(h.state.partition("t", 1).is_ok());
    for p in [2, -1] {
        assert_eq!(h.state.partition("t", p), Err(StateError::PartitionNotFound { topic: "t".into(), partition: p }));
    }
}
