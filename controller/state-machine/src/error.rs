//! Typed errors: why a command was refused, and why bytes did not decode.

use serde::{Deserialize, Serialize};

use crate::types::{BrokerId, MAX_PARTITIONS_PER_TOPIC};

/// Why a command (or one item of a batched command) was refused. A refused
/// command changes nothing but the applied index. Serializable so it can be
/// carried back to a proposer on another controller.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum StateError {
    #[error("topic {0:?} does not exist")]
    TopicNotFound(String),
    #[error("partition {partition} of topic {topic:?} does not exist")]
    PartitionNotFound { topic: String, partition: i32 },
    #[error("topic {0:?} already exists")]
    TopicAlreadyExists(String),
    /// `reason` is a String (not `&'static str`) so the error deserializes.
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopicName { name: String, reason: String },
    #[error("invalid partition count {0}: must be between 1 and {max}", max = MAX_PARTITIONS_PER_TOPIC)]
    InvalidPartitions(i32),
    #[error("invalid replication factor {requested}: must be between 1 and the {available} live brokers")]
    InvalidReplicationFactor { requested: i32, available: i32 },
    #[error("stale epoch {got} for broker {broker_id}: its current epoch is {expected}")]
    StaleBrokerEpoch { broker_id: BrokerId, expected: u64, got: u64 },
    #[error("broker {broker_id} is already registered by another live incarnation")]
    DuplicateBrokerRegistration { broker_id: BrokerId },
    #[error("broker {0} is not registered")]
    BrokerNotFound(BrokerId),
    #[error("broker {0} is already fenced")]
    BrokerFenced(BrokerId),
    #[error(
        "stale partition epoch {got} for partition {partition} of topic {topic:?}: its current epoch is {expected}"
    )]
    StalePartitionEpoch { topic: String, partition: i32, expected: i32, got: i32 },
    #[error("no eligible leader for partition {partition} of topic {topic:?}")]
    EligibleLeadersNotAvailable { topic: String, partition: i32 },
    #[error("partition {partition} of topic {topic:?} needs no election")]
    ElectionNotNeeded { topic: String, partition: i32 },
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("broker {other} is already drained or shutting down; drain one at a time or force it")]
    DrainInProgress { broker_id: BrokerId, other: BrokerId },
    #[error("broker {0} is not drained")]
    BrokerNotDrained(BrokerId),
}

/// Why bytes (a command or a snapshot) did not decode. Decoding never panics.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("no bytes to decode")]
    Empty,
    #[error("truncated: needed {needed} bytes, found {available}")]
    Truncated { needed: usize, available: usize },
    #[error("not a baton snapshot: bad magic bytes")]
    BadMagic,
    #[error("unsupported format version {0}")]
    UnsupportedVersion(u32),
    #[error("checksum mismatch: header says {expected:#010x}, body hashes to {actual:#010x}")]
    ChecksumMismatch { expected: u32, actual: u32 },
    #[error("{0} unexpected trailing bytes")]
    TrailingBytes(usize),
    #[error("malformed body: {0}")]
    Malformed(String),
    #[error("decoded state violates an invariant: {0}")]
    Invariant(String),
}
