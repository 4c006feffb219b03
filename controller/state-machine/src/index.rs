//! Indexes derived from the topics, so that fencing a broker and placing a
//! topic cost O(that broker's partitions), not O(every partition).
//!
//! Never serialized: `decode_snapshot` rebuilds them, and `check_invariants`
//! compares them with a fresh rebuild.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::types::{BrokerId, NO_LEADER, Topic};

/// A partition by topic id (8 bytes instead of a name per entry: three
/// million entries for a million partitions at replication factor 3).
pub(crate) type PartitionKey = (u64, i32);

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct DerivedIndex {
    /// Topic id -> name (the key of `State::topics`).
    pub(crate) topic_names: BTreeMap<u64, Arc<str>>,
    /// Broker -> partitions it is a replica of. Ordered, so iteration (and the
    /// Changes it produces) is deterministic.
    pub(crate) replica_of: BTreeMap<BrokerId, BTreeSet<PartitionKey>>,
    /// Broker -> partitions it leads; brokers leading none are absent.
    pub(crate) leader_count: BTreeMap<BrokerId, usize>,
}

impl DerivedIndex {
    pub(crate) fn rebuild<'a>(topics: impl Iterator<Item = &'a Topic>) -> DerivedIndex {
        let mut index = DerivedIndex::default();
        for topic in topics {
            index.add_topic(topic);
        }
        index
    }

    pub(crate) fn add_topic(&mut self, topic: &Topic) {
        self.topic_names.insert(topic.id, topic.name.clone());
        for (p, partition) in (0_i32..).zip(&topic.partitions) {
            for &replica in &partition.replicas {
                self.replica_of.entry(replica).or_default().insert((topic.id, p));
            }
            self.leader_moved(NO_LEADER, partition.leader);
        }
    }

    pub(crate) fn remove_topic(&mut self, topic: &Topic) {
        self.topic_names.remove(&topic.id);
        for (p, partition) in (0_i32..).zip(&topic.partitions) {
            for replica in &partition.replicas {
                if let Some(set) = self.replica_of.get_mut(replica) {
                    set.remove(&(topic.id, p));
                    if set.is_empty() {
                        self.replica_of.remove(replica);
                    }
                }
            }
            self.leader_moved(partition.leader, NO_LEADER);
        }
    }

    pub(crate) fn leader_moved(&mut self, from: BrokerId, to: BrokerId) {
        move_leader(&mut self.leader_count, from, to);
    }

    pub(crate) fn leaders_of(&self, broker: BrokerId) -> usize {
        self.leader_count.get(&broker).copied().unwrap_or(0)
    }
}

/// Keeps a leader count map in step with one partition's leader change. A free
/// function so callers can hold `replica_of` while updating the counts.
pub(crate) fn move_leader(leader_count: &mut BTreeMap<BrokerId, usize>, from: BrokerId, to: BrokerId) {
    if from == to {
        return;
    }
    if from != NO_LEADER
        && let Some(count) = leader_count.get_mut(&from)
    {
        *count = count.saturating_sub(1);
        if *count == 0 {
            leader_count.remove(&from);
        }
    }
    if to != NO_LEADER {
        *leader_count.entry(to).or_default() += 1;
    }
}
