//! The records the state machine holds and the answers `apply` gives back.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::StateError;

/// A data-plane broker's id, as configured on the broker. Never negative for a
/// real broker: `-1` ([`NO_LEADER`]) means "no broker".
pub type BrokerId = i32;

/// The `leader` of a partition that has none (Kafka's `-1`).
pub const NO_LEADER: BrokerId = -1;

/// Upper bound on partitions per topic, so one CreateTopic entry (and the
/// changes it emits) stays bounded.
pub const MAX_PARTITIONS_PER_TOPIC: i32 = 1 << 20;

/// Kafka's limit: topic names become directory names on brokers.
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// Lifecycle of a registered broker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BrokerState {
    /// Registered and heard from: may lead and may join ISRs.
    Alive,
    /// Declared dead by the active controller (or an operator): never leads,
    /// removed from every ISR it is not the last member of.
    Fenced,
    /// Stopping cleanly: stays in ISRs but is not chosen as a leader.
    ControlledShutdown,
    /// Drained by an operator: stays in ISRs but is not chosen as a leader.
    Drained,
}

impl BrokerState {
    /// Whether a broker in this state may be chosen as a partition leader.
    pub fn is_eligible_leader(self) -> bool {
        self == BrokerState::Alive
    }
}

/// A registered broker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Broker {
    pub id: BrokerId,
    /// Chosen by the broker process at start; tells two processes claiming the
    /// same id apart.
    pub incarnation_id: String,
    /// The log index of the RegisterBroker entry that produced this
    /// registration: a fencing token that only grows.
    pub epoch: u64,
    pub endpoint: String,
    /// Empty when the broker has no rack; all rack-less brokers form one rack.
    pub rack: String,
    pub state: BrokerState,
}

/// Per-topic settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicConfig {
    /// When the ISR has no live member, let a live out-of-sync replica lead
    /// (losing acknowledged writes) instead of leaving the partition offline.
    pub unclean_leader_election: bool,
}

/// One partition's replication record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    /// Hosting brokers; the first is the preferred leader. Changed only by
    /// a reassignment (see `reassign`).
    pub replicas: Vec<BrokerId>,
    /// In-sync replicas, kept in replica order, never empty.
    pub isr: Vec<BrokerId>,
    /// A member of `isr`, or [`NO_LEADER`].
    pub leader: BrokerId,
    /// Bumped on every leader change (including to and from no leader).
    pub leader_epoch: i32,
    /// Bumped on every change of this record; the compare-and-swap token of AlterIsr.
    pub partition_epoch: i32,
}

impl Partition {
    /// A fresh partition led by its preferred replica with every replica in sync.
    pub fn new(replicas: Vec<BrokerId>) -> Partition {
        let leader = replicas.first().copied().unwrap_or(NO_LEADER);
        Partition { isr: replicas.clone(), replicas, leader, leader_epoch: 0, partition_epoch: 0 }
    }

    pub fn has_leader(&self) -> bool {
        self.leader != NO_LEADER
    }

    /// The first replica, or [`NO_LEADER`] for a (never valid) empty replica list.
    pub fn preferred_leader(&self) -> BrokerId {
        self.replicas.first().copied().unwrap_or(NO_LEADER)
    }
}

/// A topic and its partitions (partition `p` is `partitions[p]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topic {
    /// The log index of the CreateTopic entry: unique even when a name is reused.
    pub id: u64,
    /// Shared with the state's name index and with every [`PartitionChange`],
    /// so a topic's name is allocated once however many partitions change.
    pub name: Arc<str>,
    pub config: TopicConfig,
    pub partitions: Vec<Partition>,
}

/// Why the active controller fenced a broker (recorded for operators; every
/// reason has the same effect on the state).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FenceReason {
    SessionTimeout,
    Disconnected,
    CleanShutdown,
    Operator,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ElectionType {
    /// Move leadership back to the first replica if it is live and in sync.
    Preferred,
    /// Give a leaderless partition a leader, from outside the ISR if need be.
    Unclean,
}

/// One ISR compare-and-swap: applies only if the partition is still at `partition_epoch`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IsrChange {
    pub topic: String,
    pub partition: i32,
    pub partition_epoch: i32,
    pub new_isr: Vec<BrokerId>,
}

/// The result of one partition's election within an ElectLeaders entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElectionOutcome {
    pub topic: String,
    pub partition: i32,
    /// `(leader, leader_epoch)` after the election.
    pub result: Result<(BrokerId, i32), StateError>,
}

/// The result of one change within an AlterIsr entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IsrOutcome {
    pub topic: String,
    pub partition: i32,
    /// The new partition epoch.
    pub result: Result<i32, StateError>,
}

/// What a successfully applied command answers to its proposer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Noop,
    BrokerRegistered {
        broker_epoch: u64,
    },
    /// `partitions_moved` counts partitions whose leadership left the fenced
    /// broker (to another broker or to none).
    BrokerFenced {
        partitions_moved: usize,
    },
    TopicCreated {
        topic_id: u64,
    },
    TopicDeleted,
    IsrAltered(Vec<IsrOutcome>),
    LeadersElected(Vec<ElectionOutcome>),
    /// Drain or controlled shutdown: `moved` partitions changed leader;
    /// `remaining` are still led by the broker (no other eligible ISR member).
    LeadershipDrained {
        moved: usize,
        remaining: usize,
    },
    BrokerUndrained {
        /// Leaderless partitions it leads again at once.
        elected: usize,
    },
    ReassignmentsAltered(Vec<crate::reassign::ReassignmentOutcome>),
}

/// What one applied entry changed, with the records AFTER the change, so
/// watchers can stream exact deltas. Empty when the command failed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub partitions: Vec<PartitionChange>,
    pub deleted_topics: Vec<String>,
    pub brokers: Vec<Broker>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.partitions.is_empty() && self.deleted_topics.is_empty() && self.brokers.is_empty()
    }
}

/// One partition's record after a change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionChange {
    pub topic: Arc<str>,
    pub partition: i32,
    pub record: Partition,
    /// The leader before the change ([`NO_LEADER`] for a new partition).
    pub previous_leader: BrokerId,
    /// Brokers this change took out of the replica set (a reassignment
    /// finishing or cancelled); empty for every other change. A broker that
    /// asked for only the partitions it hosts still hears of these.
    pub removed_replicas: Vec<BrokerId>,
}

impl PartitionChange {
    /// The brokers that host the partition after the change, or hosted it
    /// (or led it) before: those a hosted-only view must tell. A broker may
    /// appear more than once.
    pub fn concerned_brokers(&self) -> impl Iterator<Item = BrokerId> + '_ {
        let previous = (self.previous_leader != NO_LEADER).then_some(self.previous_leader);
        self.record.replicas.iter().chain(&self.removed_replicas).copied().chain(previous)
    }

    /// Whether `broker` is one of [`Self::concerned_brokers`].
    pub fn concerns(&self, broker: BrokerId) -> bool {
        self.concerned_brokers().any(|b| b == broker)
    }
}

/// The result of applying one log entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    pub outcome: Result<Outcome, StateError>,
    pub changes: Changes,
}

/// Kafka's topic name rules: 1..=249 characters of `[a-zA-Z0-9._-]`, and not
/// `.` or `..` (they name directories on the brokers).
pub fn validate_topic_name(name: &str) -> Result<(), StateError> {
    let invalid = |reason: &str| StateError::InvalidTopicName { name: name.to_owned(), reason: reason.to_owned() };
    if name.is_empty() {
        return Err(invalid("the name is empty"));
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return Err(invalid("the name is longer than 249 characters"));
    }
    if name == "." || name == ".." {
        return Err(invalid("\".\" and \"..\" are reserved"));
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
        return Err(invalid("only ASCII letters, digits, '.', '_' and '-' are allowed"));
    }
    Ok(())
}
