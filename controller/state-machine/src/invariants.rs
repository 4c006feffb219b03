//! The state's invariants, checked in full (O(all partitions)): by tests after
//! every apply and by `decode_snapshot` before a snapshot is trusted.

use crate::index::DerivedIndex;
use crate::state::State;
use crate::types::{BrokerState, MAX_PARTITIONS_PER_TOPIC, NO_LEADER};

impl State {
    /// Ok, or the first broken invariant:
    /// - brokers and topics are keyed by their own id / name; ids ≤ applied index;
    /// - every partition: replicas non-empty, distinct, registered brokers;
    ///   ISR non-empty, distinct, ⊆ replicas, in replica order;
    ///   leader ∈ ISR or -1; a leader is not fenced; 0 ≤ leader_epoch ≤ partition_epoch;
    /// - a fenced broker is in an ISR only as its sole member;
    /// - a leaderless partition has no Alive ISR member (else it would have
    ///   been given a leader: the liveness half of the elector's contract);
    /// - the derived indexes equal a fresh rebuild.
    pub fn check_invariants(&self) -> Result<(), String> {
        self.check_records()?;
        let rebuilt = DerivedIndex::rebuild(self.topics.values());
        if rebuilt != self.index {
            return Err("derived index differs from a rebuild".to_owned());
        }
        Ok(())
    }

    /// Every invariant but the derived index's (which `decode_snapshot` has
    /// just rebuilt, so comparing it would only double the work).
    pub(crate) fn check_records(&self) -> Result<(), String> {
        for ((topic_id, p), r) in &self.reassignments {
            let part = self
                .index
                .topic_names
                .get(topic_id)
                .and_then(|name| self.topics.get(name))
                .and_then(|t| usize::try_from(*p).ok().and_then(|i| t.partitions.get(i)));
            let Some(part) = part else {
                return Err(format!("reassignment of a missing partition {topic_id}/{p}"));
            };
            if r.target.is_empty() || !r.target.iter().chain(&r.original).all(|b| part.replicas.contains(b)) {
                return Err(format!(
                    "reassignment {r:?} of {topic_id}/{p} is not within its replicas {:?}",
                    part.replicas
                ));
            }
        }
        for (id, broker) in &self.brokers {
            if *id != broker.id || *id < 0 {
                return Err(format!("broker keyed {id} has id {}", broker.id));
            }
            if broker.epoch > self.applied_index {
                return Err(format!(
                    "broker {id} epoch {} is after applied index {}",
                    broker.epoch, self.applied_index
                ));
            }
        }
        let state_of = |b: i32| self.brokers.get(&b).map(|broker| broker.state);
        for (name, topic) in &self.topics {
            if **name != *topic.name {
                return Err(format!("topic keyed {name:?} is named {:?}", topic.name));
            }
            if topic.id == 0 || topic.id > self.applied_index {
                return Err(format!("topic {name:?} id {} is not a past log index", topic.id));
            }
            let count = i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX);
            if !(1..=MAX_PARTITIONS_PER_TOPIC).contains(&count) {
                return Err(format!("topic {name:?} has {count} partitions"));
            }
            for (p, part) in topic.partitions.iter().enumerate() {
                let at = || format!("{name}-{p}");
                // Quadratic but allocation-free: replica lists are a handful long.
                let repeated = part.replicas.iter().enumerate().any(|(i, r)| part.replicas[..i].contains(r));
                if part.replicas.is_empty() || repeated {
                    return Err(format!("{}: replicas {:?} empty or repeated", at(), part.replicas));
                }
                if let Some(b) = part.replicas.iter().find(|b| state_of(**b).is_none()) {
                    return Err(format!("{}: replica {b} is not a registered broker", at()));
                }
                let in_replica_order = part.replicas.iter().filter(|r| part.isr.contains(r)).eq(part.isr.iter());
                if part.isr.is_empty() || !in_replica_order {
                    return Err(format!(
                        "{}: isr {:?} empty, repeated, not within or not in the order of replicas {:?}",
                        at(),
                        part.isr,
                        part.replicas
                    ));
                }
                if part.leader != NO_LEADER && !part.isr.contains(&part.leader) {
                    return Err(format!("{}: leader {} not in isr {:?}", at(), part.leader, part.isr));
                }
                if part.leader != NO_LEADER && state_of(part.leader) == Some(BrokerState::Fenced) {
                    return Err(format!("{}: leader {} is fenced", at(), part.leader));
                }
                if part.leader_epoch < 0 || part.leader_epoch > part.partition_epoch {
                    return Err(format!(
                        "{}: leader_epoch {} outside 0..=partition_epoch {}",
                        at(),
                        part.leader_epoch,
                        part.partition_epoch
                    ));
                }
                if part.isr.len() > 1
                    && let Some(b) = part.isr.iter().find(|b| state_of(**b) == Some(BrokerState::Fenced))
                {
                    return Err(format!("{}: fenced broker {b} in a multi-member isr {:?}", at(), part.isr));
                }
                if part.leader == NO_LEADER
                    && let Some(b) = part.isr.iter().find(|b| state_of(**b) == Some(BrokerState::Alive))
                {
                    return Err(format!("{}: leaderless although isr member {b} is alive", at()));
                }
            }
        }
        Ok(())
    }
}
