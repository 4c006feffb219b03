//! The metadata state and `apply`, the only way it changes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::command::Command;
use crate::elector::{self, NoElection};
use crate::error::StateError;
use crate::index::{DerivedIndex, move_leader};
use crate::placement::{self, Candidate};
use crate::types::{
    Applied, Broker, BrokerId, BrokerState, Changes, ElectionOutcome, ElectionType, IsrChange, IsrOutcome,
    MAX_PARTITIONS_PER_TOPIC, NO_LEADER, Outcome, Partition, PartitionChange, Topic, TopicConfig, validate_topic_name,
};

/// Brokers, topics and partitions as of `applied_index`.
///
/// Every map is a BTreeMap: iteration order decides the order of Changes and
/// outcomes, and every controller must produce the same ones.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    pub(crate) applied_index: u64,
    pub(crate) brokers: BTreeMap<BrokerId, Broker>,
    /// Keyed by the same `Arc<str>` the topic holds.
    pub(crate) topics: BTreeMap<Arc<str>, Topic>,
    pub(crate) index: DerivedIndex,
    /// Raft addresses of controllers added or moved after bootstrap (the
    /// bootstrap members' addresses come from each controller's config).
    pub(crate) controllers: BTreeMap<u64, String>,
    /// Brokers an operator drained: they register again as Drained (never
    /// leaders) until undrained, across restarts and fences.
    pub(crate) drained: BTreeSet<BrokerId>,
    /// In-flight partition reassignments by (topic id, partition).
    pub(crate) reassignments: BTreeMap<crate::index::PartitionKey, crate::reassign::Reassignment>,
}

impl State {
    pub fn new() -> State {
        State::default()
    }

    /// Applies the entry at log `index`. Sets applied_index = index even when
    /// the command fails validation (a failed command changes nothing else).
    ///
    /// An `index` at or below the applied index is refused and changes
    /// nothing, not even the applied index: topic ids and broker epochs are
    /// log indexes and must never repeat, and the metadata version must never
    /// go backwards.
    pub fn apply(&mut self, index: u64, command: &Command) -> Applied {
        let mut changes = Changes::default();
        if index <= self.applied_index {
            let outcome = Err(StateError::InvalidRequest(format!(
                "log index {index} is not after the applied index {}",
                self.applied_index
            )));
            return Applied { outcome, changes };
        }
        self.applied_index = index;
        let outcome = match command {
            Command::Noop => Ok(Outcome::Noop),
            Command::RegisterBroker { broker_id, incarnation_id, endpoint, rack } => {
                self.register_broker(index, *broker_id, incarnation_id, endpoint, rack, &mut changes)
            }
            Command::FenceBroker { broker_id, broker_epoch, reason: _ } => {
                self.fence_broker(*broker_id, *broker_epoch, &mut changes)
            }
            Command::CreateTopic { name, partitions, replication_factor, config } => {
                self.create_topic(index, name, *partitions, *replication_factor, config, &mut changes)
            }
            Command::DeleteTopic { name } => self.delete_topic(name, &mut changes),
            Command::AlterIsr { changes: isr_changes } => {
                let outcomes = isr_changes
                    .iter()
                    .map(|c| {
                        let result = self.alter_isr_one(c, &mut changes);
                        // A reassignment completes in the entry that brings
                        // its last target replica in sync.
                        if result.is_ok()
                            && let Some(id) = self.topics.get(c.topic.as_str()).map(|t| t.id)
                        {
                            self.maybe_complete_reassignment((id, c.partition), &mut changes);
                        }
                        IsrOutcome { topic: c.topic.clone(), partition: c.partition, result }
                    })
                    .collect();
                Ok(Outcome::IsrAltered(outcomes))
            }
            Command::AlterReassignments { changes: items } => {
                let outcomes = items
                    .iter()
                    .map(|c| crate::reassign::ReassignmentOutcome {
                        topic: c.topic.clone(),
                        partition: c.partition,
                        result: self.alter_reassignment(c, &mut changes),
                    })
                    .collect();
                Ok(Outcome::ReassignmentsAltered(outcomes))
            }
            Command::ElectLeaders { election, partitions } => {
                Ok(Outcome::LeadersElected(self.elect_leaders(*election, partitions.as_deref(), &mut changes)))
            }
            Command::DrainBroker { broker_id, force } => self.drain(*broker_id, None, *force, &mut changes),
            Command::ControlledShutdown { broker_id, broker_epoch } => {
                self.drain(*broker_id, Some(*broker_epoch), true, &mut changes)
            }
            Command::UndrainBroker { broker_id } => self.undrain(*broker_id, &mut changes),
            Command::ControllerAddresses { set, removed } => self.set_controller_addresses(set, removed),
        };
        Applied { outcome, changes }
    }

    /// The metadata version.
    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }

    /// Ordered by id.
    pub fn brokers(&self) -> impl Iterator<Item = &Broker> {
        self.brokers.values()
    }

    pub fn broker(&self, id: BrokerId) -> Option<&Broker> {
        self.brokers.get(&id)
    }

    /// Ordered by name.
    pub fn topics(&self) -> impl Iterator<Item = &Topic> {
        self.topics.values()
    }

    pub fn topic(&self, name: &str) -> Option<&Topic> {
        self.topics.get(name)
    }

    /// The topic created by the entry at log index `id`, if it still exists.
    pub fn topic_by_id(&self, id: u64) -> Option<&Topic> {
        self.index.topic_names.get(&id).and_then(|name| self.topics.get(name))
    }

    pub fn partition(&self, topic: &str, partition: i32) -> Result<&Partition, StateError> {
        let t = self.topics.get(topic).ok_or_else(|| StateError::TopicNotFound(topic.to_owned()))?;
        usize::try_from(partition)
            .ok()
            .and_then(|p| t.partitions.get(p))
            .ok_or_else(|| StateError::PartitionNotFound { topic: topic.to_owned(), partition })
    }

    /// Partitions where `id` is a replica, ordered by (topic id, partition).
    /// From the derived index: O(result), not O(all partitions).
    pub fn partitions_of_broker(&self, id: BrokerId) -> impl Iterator<Item = (&str, i32)> {
        self.index
            .replica_of
            .get(&id)
            .into_iter()
            .flatten()
            .filter_map(|(topic_id, p)| self.index.topic_names.get(topic_id).map(|name| (&**name, *p)))
    }

    /// Brokers an operator drained (see `Command::DrainBroker`).
    pub fn drained_brokers(&self) -> &BTreeSet<BrokerId> {
        &self.drained
    }

    /// Raft addresses of controllers recorded through membership changes.
    pub fn controller_addresses(&self) -> &BTreeMap<u64, String> {
        &self.controllers
    }

    /// Brokers in state Alive (the ones placement and elections may choose).
    pub fn live_broker_count(&self) -> usize {
        self.brokers.values().filter(|b| b.state.is_eligible_leader()).count()
    }

    /// Partitions `id` leads now (from the derived index).
    pub fn leader_count(&self, id: BrokerId) -> usize {
        self.index.leaders_of(id)
    }

    /// Partitions over all topics. O(topics).
    pub fn partition_count(&self) -> usize {
        self.topics.values().map(|t| t.partitions.len()).sum()
    }

    /// Drain (`epoch` None, operator) or controlled shutdown (`epoch` of the
    /// registration that is stopping).
    fn drain(
        &mut self,
        broker_id: BrokerId,
        epoch: Option<u64>,
        force: bool,
        changes: &mut Changes,
    ) -> Result<Outcome, StateError> {
        let broker = self.brokers.get(&broker_id).ok_or(StateError::BrokerNotFound(broker_id))?;
        if let Some(got) = epoch {
            if broker.epoch != got {
                return Err(StateError::StaleBrokerEpoch { broker_id, expected: broker.epoch, got });
            }
            if broker.state == BrokerState::Fenced {
                return Err(StateError::BrokerFenced(broker_id));
            }
        }
        let busy = |b: &Broker| self.drained.contains(&b.id) || b.state == BrokerState::ControlledShutdown;
        if !force && let Some(other) = self.brokers.values().find(|b| b.id != broker_id && busy(b)) {
            return Err(StateError::DrainInProgress { broker_id, other: other.id });
        }
        if epoch.is_none() {
            self.drained.insert(broker_id);
        }
        // Fenced stays fenced (it leads nothing); a drained broker that stops
        // cleanly stays drained.
        let target = match (broker.state, epoch) {
            (BrokerState::Fenced | BrokerState::Drained, _) => broker.state,
            (_, None) => BrokerState::Drained,
            (_, Some(_)) => BrokerState::ControlledShutdown,
        };
        if broker.state != target {
            let broker = self.brokers.get_mut(&broker_id).ok_or(StateError::BrokerNotFound(broker_id))?;
            broker.state = target;
            changes.brokers.push(broker.clone());
        }
        let State { brokers, topics, index: derived, .. } = self;
        let DerivedIndex { topic_names, replica_of, leader_count } = derived;
        let eligible = eligible_in(brokers);
        let (mut moved, mut remaining) = (0, 0);
        for &(topic_id, p) in replica_of.get(&broker_id).into_iter().flatten() {
            let Some(found) = lookup_mut(topics, topic_names, topic_id, p) else { continue };
            let previous_leader = found.partition.leader;
            if elector::move_leader_away(found.partition, broker_id, &eligible) {
                moved += 1;
                record(changes, leader_count, found.name, p, previous_leader, found.partition);
            } else if found.partition.leader == broker_id {
                remaining += 1;
            }
        }
        Ok(Outcome::LeadershipDrained { moved, remaining })
    }

    fn undrain(&mut self, broker_id: BrokerId, changes: &mut Changes) -> Result<Outcome, StateError> {
        let broker = self.brokers.get_mut(&broker_id).ok_or(StateError::BrokerNotFound(broker_id))?;
        if !self.drained.remove(&broker_id) {
            return Err(StateError::BrokerNotDrained(broker_id));
        }
        if broker.state == BrokerState::Drained {
            broker.state = BrokerState::Alive;
            changes.brokers.push(broker.clone());
        }
        let State { brokers, topics, index: derived, .. } = self;
        let DerivedIndex { topic_names, replica_of, leader_count } = derived;
        let eligible = eligible_in(brokers);
        let mut elected = 0;
        for &(topic_id, p) in replica_of.get(&broker_id).into_iter().flatten() {
            let Some(found) = lookup_mut(topics, topic_names, topic_id, p) else { continue };
            let previous_leader = found.partition.leader;
            if elector::elect_leaderless_from_isr(found.partition, &eligible) {
                elected += 1;
                record(changes, leader_count, found.name, p, previous_leader, found.partition);
            }
        }
        Ok(Outcome::BrokerUndrained { elected })
    }

    fn set_controller_addresses(&mut self, set: &[(u64, String)], removed: &[u64]) -> Result<Outcome, StateError> {
        if let Some((id, address)) = set.iter().find(|(id, a)| *id == 0 || a.is_empty()) {
            return Err(StateError::InvalidRequest(format!("controller {id} at {address:?}: id 0 or empty address")));
        }
        for id in removed {
            self.controllers.remove(id);
        }
        for (id, address) in set {
            self.controllers.insert(*id, address.clone());
        }
        Ok(Outcome::Noop)
    }

    fn register_broker(
        &mut self,
        index: u64,
        broker_id: BrokerId,
        incarnation_id: &str,
        endpoint: &str,
        rack: &str,
        changes: &mut Changes,
    ) -> Result<Outcome, StateError> {
        if broker_id < 0 {
            return Err(StateError::InvalidRequest(format!("broker id {broker_id} is negative")));
        }
        if endpoint.is_empty() {
            return Err(StateError::InvalidRequest(format!("broker {broker_id} registered without an endpoint")));
        }
        if let Some(existing) = self.brokers.get(&broker_id)
            && existing.state != BrokerState::Fenced
            && existing.incarnation_id != incarnation_id
        {
            return Err(StateError::DuplicateBrokerRegistration { broker_id });
        }
        // An operator's drain outlives restarts of the broker; a controlled
        // shutdown ends with the registration that asked for it.
        let drained = self.drained.contains(&broker_id);
        let broker = Broker {
            id: broker_id,
            incarnation_id: incarnation_id.to_owned(),
            epoch: index,
            endpoint: endpoint.to_owned(),
            rack: rack.to_owned(),
            state: if drained { BrokerState::Drained } else { BrokerState::Alive },
        };
        self.brokers.insert(broker_id, broker.clone());
        changes.brokers.push(broker);

        // Only this broker became eligible, and a leaderless partition never
        // has an eligible ISR member (check_invariants), so the partitions
        // that can gain a leader are among this broker's own.
        let State { brokers, topics, index: derived, .. } = self;
        let DerivedIndex { topic_names, replica_of, leader_count } = derived;
        let eligible = eligible_in(brokers);
        for &(topic_id, p) in replica_of.get(&broker_id).into_iter().flatten() {
            let Some(found) = lookup_mut(topics, topic_names, topic_id, p) else { continue };
            let previous_leader = found.partition.leader;
            if elector::elect_leaderless_from_isr(found.partition, &eligible) {
                record(changes, leader_count, found.name, p, previous_leader, found.partition);
            }
        }
        Ok(Outcome::BrokerRegistered { broker_epoch: index })
    }

    fn fence_broker(
        &mut self,
        broker_id: BrokerId,
        broker_epoch: u64,
        changes: &mut Changes,
    ) -> Result<Outcome, StateError> {
        let broker = self.brokers.get_mut(&broker_id).ok_or(StateError::BrokerNotFound(broker_id))?;
        if broker.epoch != broker_epoch {
            return Err(StateError::StaleBrokerEpoch { broker_id, expected: broker.epoch, got: broker_epoch });
        }
        if broker.state == BrokerState::Fenced {
            return Err(StateError::BrokerFenced(broker_id));
        }
        broker.state = BrokerState::Fenced;
        changes.brokers.push(broker.clone());

        // O(partitions of this broker): the derived index, never a scan.
        let State { brokers, topics, index: derived, .. } = self;
        let DerivedIndex { topic_names, replica_of, leader_count } = derived;
        let eligible = eligible_in(brokers);
        let mut partitions_moved = 0;
        let hosted = replica_of.get(&broker_id);
        // Nearly every hosted partition changes: one allocation, not a
        // doubling series of copies of a list that can hold 100k records.
        changes.partitions.reserve(hosted.map_or(0, |h| h.len()));
        for &(topic_id, p) in hosted.into_iter().flatten() {
            let Some(found) = lookup_mut(topics, topic_names, topic_id, p) else { continue };
            let previous_leader = found.partition.leader;
            if elector::remove_fenced(found.partition, broker_id, found.unclean_leader_election, &eligible) {
                if previous_leader == broker_id {
                    partitions_moved += 1;
                }
                record(changes, leader_count, found.name, p, previous_leader, found.partition);
            }
        }
        Ok(Outcome::BrokerFenced { partitions_moved })
    }

    fn create_topic(
        &mut self,
        index: u64,
        name: &str,
        partitions: i32,
        replication_factor: i32,
        config: &TopicConfig,
        changes: &mut Changes,
    ) -> Result<Outcome, StateError> {
        validate_topic_name(name)?;
        if self.topics.contains_key(name) {
            return Err(StateError::TopicAlreadyExists(name.to_owned()));
        }
        let partition_count = match usize::try_from(partitions) {
            Ok(n) if (1..=MAX_PARTITIONS_PER_TOPIC).contains(&partitions) => n,
            _ => return Err(StateError::InvalidPartitions(partitions)),
        };
        let live = i32::try_from(self.live_broker_count()).unwrap_or(i32::MAX);
        let rf = match usize::try_from(replication_factor) {
            Ok(rf) if (1..=live).contains(&replication_factor) => rf,
            _ => return Err(StateError::InvalidReplicationFactor { requested: replication_factor, available: live }),
        };
        let candidates: Vec<Candidate<'_>> = self
            .brokers
            .values()
            .filter(|b| b.state.is_eligible_leader())
            .map(|b| Candidate { id: b.id, rack: &b.rack, leader_count: self.index.leaders_of(b.id) })
            .collect();
        let assignment = placement::assign_replicas(&candidates, partition_count, rf, index)?;

        let name: Arc<str> = Arc::from(name);
        let topic = Topic {
            id: index,
            name: name.clone(),
            config: config.clone(),
            partitions: assignment.into_iter().map(Partition::new).collect(),
        };
        self.index.add_topic(&topic);
        changes.partitions = (0_i32..)
            .zip(&topic.partitions)
            .map(|(p, record)| PartitionChange {
                topic: name.clone(),
                partition: p,
                record: record.clone(),
                previous_leader: NO_LEADER,
                removed_replicas: Vec::new(),
            })
            .collect();
        self.topics.insert(name, topic);
        Ok(Outcome::TopicCreated { topic_id: index })
    }

    fn delete_topic(&mut self, name: &str, changes: &mut Changes) -> Result<Outcome, StateError> {
        let topic = self.topics.remove(name).ok_or_else(|| StateError::TopicNotFound(name.to_owned()))?;
        self.index.remove_topic(&topic);
        self.reassignments.retain(|(topic_id, _), _| *topic_id != topic.id);
        changes.deleted_topics.push(name.to_owned());
        Ok(Outcome::TopicDeleted)
    }

    /// One compare-and-swap of an AlterIsr batch; independent of the others.
    fn alter_isr_one(&mut self, change: &IsrChange, changes: &mut Changes) -> Result<i32, StateError> {
        let State { brokers, topics, index: derived, .. } = self;
        let topic =
            topics.get_mut(change.topic.as_str()).ok_or_else(|| StateError::TopicNotFound(change.topic.clone()))?;
        let partition =
            usize::try_from(change.partition).ok().and_then(|p| topic.partitions.get_mut(p)).ok_or_else(|| {
                StateError::PartitionNotFound { topic: change.topic.clone(), partition: change.partition }
            })?;
        if partition.partition_epoch != change.partition_epoch {
            return Err(StateError::StalePartitionEpoch {
                topic: change.topic.clone(),
                partition: change.partition,
                expected: partition.partition_epoch,
                got: change.partition_epoch,
            });
        }
        check_new_isr(partition, &change.new_isr, brokers).map_err(StateError::InvalidRequest)?;

        let previous_leader = partition.leader;
        // One change, one partition epoch, even when it also elects a leader.
        let next_partition_epoch = elector::bump(partition.partition_epoch);
        partition.isr = partition.replicas.iter().copied().filter(|r| change.new_isr.contains(r)).collect();
        elector::elect_leaderless_from_isr(partition, eligible_in(brokers));
        partition.partition_epoch = next_partition_epoch;
        record(changes, &mut derived.leader_count, &topic.name, change.partition, previous_leader, partition);
        Ok(next_partition_epoch)
    }

    fn elect_leaders(
        &mut self,
        election: ElectionType,
        partitions: Option<&[(String, i32)]>,
        changes: &mut Changes,
    ) -> Vec<ElectionOutcome> {
        let State { brokers, topics, index: derived, .. } = self;
        let eligible = eligible_in(brokers);
        let mut outcomes = Vec::new();
        match partitions {
            Some(list) => {
                outcomes.reserve(list.len());
                for (name, p) in list {
                    let result = match topics.get_mut(name.as_str()) {
                        None => Err(StateError::TopicNotFound(name.clone())),
                        Some(topic) => match usize::try_from(*p).ok().and_then(|i| topic.partitions.get_mut(i)) {
                            None => Err(StateError::PartitionNotFound { topic: name.clone(), partition: *p }),
                            Some(partition) => elect_one(
                                election,
                                &topic.name,
                                *p,
                                partition,
                                &eligible,
                                changes,
                                &mut derived.leader_count,
                            ),
                        },
                    };
                    outcomes.push(ElectionOutcome { topic: name.clone(), partition: *p, result });
                }
            }
            None => {
                for topic in topics.values_mut() {
                    for (p, partition) in (0_i32..).zip(topic.partitions.iter_mut()) {
                        let result = elect_one(
                            election,
                            &topic.name,
                            p,
                            partition,
                            &eligible,
                            changes,
                            &mut derived.leader_count,
                        );
                        // Keep a whole-cluster answer small: partitions that
                        // needed nothing are not reported.
                        if !matches!(result, Err(StateError::ElectionNotNeeded { .. })) {
                            outcomes.push(ElectionOutcome { topic: topic.name.to_string(), partition: p, result });
                        }
                    }
                }
            }
        }
        outcomes
    }
}

/// Runs one election and records the change; the error names the partition.
fn elect_one(
    election: ElectionType,
    topic: &Arc<str>,
    p: i32,
    partition: &mut Partition,
    eligible: impl Fn(BrokerId) -> bool,
    changes: &mut Changes,
    leader_count: &mut BTreeMap<BrokerId, usize>,
) -> Result<(BrokerId, i32), StateError> {
    let previous_leader = partition.leader;
    let result = match election {
        ElectionType::Preferred => elector::elect_preferred(partition, eligible),
        ElectionType::Unclean => elector::elect_unclean(partition, eligible),
    };
    match result {
        Ok(()) => {
            record(changes, leader_count, topic, p, previous_leader, partition);
            Ok((partition.leader, partition.leader_epoch))
        }
        Err(NoElection::NotNeeded) => Err(StateError::ElectionNotNeeded { topic: topic.to_string(), partition: p }),
        Err(NoElection::NotAvailable) => {
            Err(StateError::EligibleLeadersNotAvailable { topic: topic.to_string(), partition: p })
        }
    }
}

/// AlterIsr's rules for a proposed ISR, checked before anything changes.
fn check_new_isr(
    partition: &Partition,
    new_isr: &[BrokerId],
    brokers: &BTreeMap<BrokerId, Broker>,
) -> Result<(), String> {
    if new_isr.is_empty() {
        return Err("the new ISR is empty".to_owned());
    }
    let mut sorted = new_isr.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted.len() != new_isr.len() {
        return Err(format!("the new ISR {new_isr:?} repeats a broker"));
    }
    if let Some(b) = new_isr.iter().find(|b| !partition.replicas.contains(b)) {
        return Err(format!("broker {b} in the new ISR is not a replica {:?}", partition.replicas));
    }
    if partition.has_leader() && !new_isr.contains(&partition.leader) {
        return Err(format!("the new ISR {new_isr:?} leaves out the leader {}", partition.leader));
    }
    let state_of = |b: &BrokerId| brokers.get(b).map(|broker| broker.state);
    // Drained brokers replicate (they only never lead), so they may rejoin.
    let may_join = |b: &BrokerId| matches!(state_of(b), Some(BrokerState::Alive | BrokerState::Drained));
    if let Some(b) = new_isr.iter().find(|b| !partition.isr.contains(b) && !may_join(b)) {
        return Err(format!("broker {b} cannot join the ISR: it is not alive"));
    }
    // A fenced broker stays in an ISR only as its last member (it may hold the
    // only copy); once others are in sync it must go.
    if new_isr.len() > 1
        && let Some(b) = new_isr.iter().find(|b| state_of(b) == Some(BrokerState::Fenced))
    {
        return Err(format!("fenced broker {b} may only remain as the sole ISR member"));
    }
    Ok(())
}

/// Only Alive brokers may lead.
pub(crate) fn eligible_in(brokers: &BTreeMap<BrokerId, Broker>) -> impl Fn(BrokerId) -> bool + '_ {
    move |id| brokers.get(&id).is_some_and(|b| b.state.is_eligible_leader())
}

/// One partition found through the derived index, with the topic fields the
/// elector needs borrowed beside it.
struct Located<'t> {
    name: &'t Arc<str>,
    unclean_leader_election: bool,
    partition: &'t mut Partition,
}

/// A partition by (topic id, index) through the derived name index.
fn lookup_mut<'t>(
    topics: &'t mut BTreeMap<Arc<str>, Topic>,
    topic_names: &BTreeMap<u64, Arc<str>>,
    topic_id: u64,
    p: i32,
) -> Option<Located<'t>> {
    let Topic { name, config, partitions, .. } = topics.get_mut(&**topic_names.get(&topic_id)?)?;
    let partition = partitions.get_mut(usize::try_from(p).ok()?)?;
    Some(Located { name, unclean_leader_election: config.unclean_leader_election, partition })
}

/// Records a changed partition (the record after the change) and keeps the
/// leader counts in step.
pub(crate) fn record(
    changes: &mut Changes,
    leader_count: &mut BTreeMap<BrokerId, usize>,
    topic: &Arc<str>,
    partition: i32,
    previous_leader: BrokerId,
    after: &Partition,
) {
    move_leader(leader_count, previous_leader, after.leader);
    changes.partitions.push(PartitionChange {
        topic: topic.clone(),
        partition,
        record: after.clone(),
        previous_leader,
        removed_replicas: Vec::new(),
    });
}
