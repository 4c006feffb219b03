//! Partition reassignment: moving a partition's replicas to a new set of
//! brokers without ever having fewer in-sync copies than before.
//!
//! Start: the replica list becomes `target` followed by the original
//! replicas that are not in it, so the new brokers start replicating (they
//! join the ISR through the usual catch-up rule) while the old ones keep
//! serving. Complete (in the same entry as the ISR change that makes every
//! target replica in sync): the replicas become exactly `target`, the ISR is
//! cut to it, and if the leader is not in it, leadership moves to the first
//! eligible in-sync target replica (a live handoff, like any other). Cancel:
//! back to the original replicas, keeping the ISR members among them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::elector;
use crate::error::StateError;
use crate::index::{DerivedIndex, PartitionKey};
use crate::state::{State, eligible_in, record};
use crate::types::{BrokerId, Changes, NO_LEADER, Partition};

/// An in-flight reassignment of one partition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reassignment {
    /// The replicas the partition will have, preferred leader first.
    pub target: Vec<BrokerId>,
    /// The replicas it had before the (first) reassignment started.
    pub original: Vec<BrokerId>,
}

impl Reassignment {
    /// Target replicas not in sync yet (still catching up).
    pub fn adding<'a>(&'a self, p: &'a Partition) -> impl Iterator<Item = BrokerId> + 'a {
        self.target.iter().copied().filter(|b| !p.isr.contains(b))
    }

    /// Original replicas that leave when it completes.
    pub fn removing(&self) -> impl Iterator<Item = BrokerId> + '_ {
        self.original.iter().copied().filter(|b| !self.target.contains(b))
    }
}

/// One item of an `AlterReassignments` command: `Some(target)` starts (or
/// replaces) a reassignment, `None` cancels it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReassignmentChange {
    pub topic: String,
    pub partition: i32,
    pub target: Option<Vec<BrokerId>>,
}

/// What became of one item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReassignmentResult {
    /// In flight: waiting for the new replicas to catch up.
    Started,
    /// Already complete (every target replica was in sync), or nothing to move.
    Completed,
    Cancelled,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReassignmentOutcome {
    pub topic: String,
    pub partition: i32,
    pub result: Result<ReassignmentResult, StateError>,
}

impl State {
    /// In-flight reassignments by (topic id, partition).
    pub fn reassignments(&self) -> &BTreeMap<PartitionKey, Reassignment> {
        &self.reassignments
    }

    pub(crate) fn alter_reassignment(
        &mut self,
        change: &ReassignmentChange,
        changes: &mut Changes,
    ) -> Result<ReassignmentResult, StateError> {
        let (topic_id, current) = {
            let p = self.partition(&change.topic, change.partition)?;
            let id = self.topic(&change.topic).map(|t| t.id).unwrap_or_default();
            (id, p.clone())
        };
        let key = (topic_id, change.partition);
        let Some(target) = &change.target else {
            return self.cancel_reassignment(key, change, &current, changes);
        };
        self.validate_target(target)?;
        let original = self.reassignments.get(&key).map_or_else(|| current.replicas.clone(), |r| r.original.clone());
        if !self.reassignments.contains_key(&key) && *target == current.replicas {
            return Ok(ReassignmentResult::Completed);
        }
        let mut replicas = target.clone();
        replicas.extend(original.iter().copied().filter(|b| !target.contains(b)));
        let isr: Vec<BrokerId> = replicas.iter().copied().filter(|b| current.isr.contains(b)).collect();
        if isr.is_empty() {
            return Err(StateError::InvalidRequest(format!(
                "reassigning {}-{} to {target:?} would leave no in-sync replica",
                change.topic, change.partition
            )));
        }
        self.reassignments.insert(key, Reassignment { target: target.clone(), original });
        self.rewrite_partition(key, replicas, isr, changes);
        if self.maybe_complete_reassignment(key, changes) {
            Ok(ReassignmentResult::Completed)
        } else {
            Ok(ReassignmentResult::Started)
        }
    }

    fn validate_target(&self, target: &[BrokerId]) -> Result<(), StateError> {
        let repeated = target.iter().enumerate().any(|(i, b)| target[..i].contains(b));
        if target.is_empty() || repeated {
            return Err(StateError::InvalidRequest(format!("target replicas {target:?} are empty or repeated")));
        }
        match target.iter().find(|b| !self.brokers.contains_key(b)) {
            Some(b) => Err(StateError::BrokerNotFound(*b)),
            None => Ok(()),
        }
    }

    fn cancel_reassignment(
        &mut self,
        key: PartitionKey,
        change: &ReassignmentChange,
        current: &Partition,
        changes: &mut Changes,
    ) -> Result<ReassignmentResult, StateError> {
        let Some(r) = self.reassignments.get(&key) else {
            return Err(StateError::InvalidRequest(format!(
                "{}-{} has no reassignment in flight",
                change.topic, change.partition
            )));
        };
        let replicas = r.original.clone();
        let isr: Vec<BrokerId> = replicas.iter().copied().filter(|b| current.isr.contains(b)).collect();
        if isr.is_empty() {
            return Err(StateError::InvalidRequest(format!(
                "cancelling the reassignment of {}-{} would leave no in-sync replica; let it complete",
                change.topic, change.partition
            )));
        }
        self.reassignments.remove(&key);
        self.rewrite_partition(key, replicas, isr, changes);
        Ok(ReassignmentResult::Cancelled)
    }

    /// Completes the reassignment of `key` if every target replica is in
    /// sync. Returns whether it completed.
    pub(crate) fn maybe_complete_reassignment(&mut self, key: PartitionKey, changes: &mut Changes) -> bool {
        let Some(r) = self.reassignments.get(&key) else { return false };
        let Some(name) = self.index.topic_names.get(&key.0) else { return false };
        let Ok(p) = self.partition(name, key.1) else { return false };
        if !r.target.iter().all(|b| p.isr.contains(b)) {
            return false;
        }
        let target = r.target.clone();
        let isr: Vec<BrokerId> = target.iter().copied().filter(|b| p.isr.contains(b)).collect();
        self.reassignments.remove(&key);
        self.rewrite_partition(key, target, isr, changes);
        true
    }

    /// Sets a partition's replicas and ISR (both given in replica order, the
    /// ISR non-empty), moves leadership into the new ISR if needed, bumps
    /// the epochs, keeps the derived index in step and records the change.
    fn rewrite_partition(
        &mut self,
        key: PartitionKey,
        replicas: Vec<BrokerId>,
        isr: Vec<BrokerId>,
        changes: &mut Changes,
    ) {
        let State { brokers, topics, index: derived, .. } = self;
        let DerivedIndex { topic_names, replica_of, leader_count } = derived;
        let Some(name) = topic_names.get(&key.0) else { return };
        let Some(topic) = topics.get_mut(&**name) else { return };
        let Some(p) = usize::try_from(key.1).ok().and_then(|i| topic.partitions.get_mut(i)) else { return };
        let removed: Vec<BrokerId> = p.replicas.iter().copied().filter(|b| !replicas.contains(b)).collect();
        for b in &removed {
            if let Some(set) = replica_of.get_mut(b) {
                set.remove(&key);
                if set.is_empty() {
                    replica_of.remove(b);
                }
            }
        }
        for b in replicas.iter().filter(|b| !p.replicas.contains(b)) {
            replica_of.entry(*b).or_default().insert(key);
        }
        let previous_leader = p.leader;
        p.replicas = replicas;
        p.isr = isr;
        // A leader outside the new ISR (or none) gives way to the first
        // eligible in-sync replica, or to none.
        if !p.isr.contains(&p.leader) {
            let next = elector::first_eligible_in_isr(p, eligible_in(brokers)).unwrap_or(NO_LEADER);
            if next != p.leader {
                p.leader = next;
                p.leader_epoch = elector::bump(p.leader_epoch);
            }
        }
        p.partition_epoch = elector::bump(p.partition_epoch);
        record(changes, leader_count, &topic.name, key.1, previous_leader, p);
        if let Some(change) = changes.partitions.last_mut() {
            change.removed_replicas = removed;
        }
    }
}
