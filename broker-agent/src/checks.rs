//! The answer of a refused leadership check and its Kafka error code.

use std::sync::Arc;

/// Why a produce or fetch check refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RefusalReason {
    /// Another broker leads the partition, or nobody does.
    NotLeader,
    /// This broker's view says it leads, but its lease has lapsed (or was
    /// suspended): it must not act as leader until a fresh grant arrives.
    LeaseExpired,
    /// The topic or partition is not in this broker's view.
    UnknownTopicOrPartition,
    /// The client's leader epoch is older than the view's.
    FencedLeaderEpoch,
    /// The client's leader epoch is newer than the view's (this broker lags).
    UnknownLeaderEpoch,
}

/// Kafka error codes the refusals map to.
pub mod kafka_error {
    /// UNKNOWN_TOPIC_OR_PARTITION.
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    /// NOT_LEADER_OR_FOLLOWER (formerly NOT_LEADER_FOR_PARTITION).
    pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    /// FENCED_LEADER_EPOCH.
    pub const FENCED_LEADER_EPOCH: i16 = 74;
    /// UNKNOWN_LEADER_EPOCH.
    pub const UNKNOWN_LEADER_EPOCH: i16 = 75;
}

impl RefusalReason {
    /// The Kafka error code a broker returns for this refusal.
    pub fn kafka_error_code(self) -> i16 {
        match self {
            Self::NotLeader | Self::LeaseExpired => kafka_error::NOT_LEADER_OR_FOLLOWER,
            Self::UnknownTopicOrPartition => kafka_error::UNKNOWN_TOPIC_OR_PARTITION,
            Self::FencedLeaderEpoch => kafka_error::FENCED_LEADER_EPOCH,
            Self::UnknownLeaderEpoch => kafka_error::UNKNOWN_LEADER_EPOCH,
        }
    }
}

/// A refused check, with a KIP-951-style hint at the current leader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotLeader {
    /// The leader in this broker's view, as (broker id, endpoint); `None` when
    /// the partition has no leader, is unknown, or this broker is the leader
    /// whose lease lapsed. The endpoint is empty when not known.
    pub leader: Option<(i32, Arc<str>)>,
    /// The leader epoch in this broker's view (-1 when unknown).
    pub leader_epoch: i32,
    pub reason: RefusalReason,
}

impl NotLeader {
    /// 6 (NOT_LEADER_OR_FOLLOWER), 3, 74 or 75.
    pub fn kafka_error_code(&self) -> i16 {
        self.reason.kafka_error_code()
    }

    pub(crate) fn unknown() -> Self {
        Self { leader: None, leader_epoch: -1, reason: RefusalReason::UnknownTopicOrPartition }
    }
}

impl std::fmt::Display for NotLeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} (leader epoch {}", self.reason, self.leader_epoch)?;
        if let Some((id, endpoint)) = &self.leader {
            write!(f, ", leader {id} at {endpoint}")?;
        }
        write!(f, ")")
    }
}

impl std::error::Error for NotLeader {}
