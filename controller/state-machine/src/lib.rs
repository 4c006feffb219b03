//! Baton's metadata state machine: the replicated record of which brokers
//! exist, which topics and partitions they host, which replicas are in sync
//! and who leads each partition at which epoch.
//!
//! The controller appends [`Command`]s to its raft log and, on every replica
//! of the quorum, feeds each committed entry to [`State::apply`] in log order.
//! Because `apply` is a pure function of the state and the entry (no I/O, no
//! clock, no randomness, no threads, and every iteration that shapes the
//! output ordered), every controller reaches the same state and emits the same
//! [`Changes`], which watchers and broker agents stream as deltas.
//!
//! The applied log index is the metadata version, and log indexes double as
//! generation numbers: a broker's epoch is the index of its registration, a
//! topic's id the index of its creation.
//!
//! Modules: [`types`] (records and answers), [`command`] (the log entries and
//! their wire form), `state` (the state and `apply`), [`placement`] (replica
//! placement for new topics), `elector` (leader choice rules), `index`
//! (derived indexes that keep fencing O(partitions of the broker)), `codec`
//! (checksummed snapshots) and `invariants` (the full consistency check).

mod codec;
pub mod command;
mod elector;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod index;
mod invariants;
pub mod placement;
pub mod reassign;
mod state;
pub mod types;

#[cfg(test)]
mod tests;

pub use codec::{SNAPSHOT_FORMAT_VERSION, SNAPSHOT_HEADER_LEN, SNAPSHOT_MAGIC};
pub use command::{COMMAND_FORMAT_VERSION, Command};
pub use error::{DecodeError, StateError};
pub use reassign::{Reassignment, ReassignmentChange, ReassignmentOutcome, ReassignmentResult};
pub use state::State;
pub use types::{
    Applied, Broker, BrokerId, BrokerState, Changes, ElectionOutcome, ElectionType, FenceReason, IsrChange, IsrOutcome,
    MAX_PARTITIONS_PER_TOPIC, MAX_TOPIC_NAME_LEN, NO_LEADER, Outcome, Partition, PartitionChange, Topic, TopicConfig,
    validate_topic_name,
};
