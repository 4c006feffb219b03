//! The commands the raft log carries, and their wire form.

use serde::{Deserialize, Serialize};

use crate::error::DecodeError;
use crate::types::{BrokerId, ElectionType, FenceReason, IsrChange, TopicConfig};

/// Leading byte of every encoded command. A controller that reads a version
/// it does not know refuses the entry instead of misreading it (upgrades
/// must bump this and keep decoding the old one).
pub const COMMAND_FORMAT_VERSION: u8 = 1;

/// One replicated state change. Everything `apply` needs is in the command:
/// decisions that need a clock or liveness (fencing, ISR shrinks) are taken by
/// the active controller and stamped in before proposing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Leader-proposed no-op (e.g. the first entry of a term).
    Noop,
    RegisterBroker {
        broker_id: BrokerId,
        incarnation_id: String,
        endpoint: String,
        rack: String,
    },
    /// Decided by the active controller's liveness tracker. No-op error if epoch is stale.
    FenceBroker {
        broker_id: BrokerId,
        broker_epoch: u64,
        reason: FenceReason,
    },
    CreateTopic {
        name: String,
        partitions: i32,
        replication_factor: i32,
        config: TopicConfig,
    },
    DeleteTopic {
        name: String,
    },
    /// Batched ISR changes, each a compare-and-swap on partition_epoch.
    AlterIsr {
        changes: Vec<IsrChange>,
    },
    /// None = every partition of the cluster.
    ElectLeaders {
        election: ElectionType,
        partitions: Option<Vec<(String, i32)>>,
    },
    /// Operator drain: the broker stops leading (each partition it leads
    /// moves to the first eligible ISR member, where there is one) but stays
    /// in its ISRs. At most one broker is drained or shutting down at a time
    /// unless `force`. Survives the broker's restart until undrained.
    DrainBroker {
        broker_id: BrokerId,
        force: bool,
    },
    /// Ends a drain: the broker may lead again (leaderless partitions whose
    /// ISR holds it get it at once; others come back by preferred election).
    UndrainBroker {
        broker_id: BrokerId,
    },
    /// Sent by a broker's own agent before it stops (SIGTERM): as a drain,
    /// for that registration only (it registers again as Alive).
    ControlledShutdown {
        broker_id: BrokerId,
        broker_epoch: u64,
    },
    /// Starts, replaces or cancels partition reassignments (see `reassign`).
    AlterReassignments {
        changes: Vec<crate::reassign::ReassignmentChange>,
    },
    /// The controllers' raft addresses. Travels as the context of a raft
    /// configuration change (never as a normal entry), so the addresses of
    /// the quorum change in the same entry as the quorum itself and reach new
    /// or restarted controllers in snapshots. `set` adds or replaces, `removed`
    /// forgets.
    ControllerAddresses {
        set: Vec<(u64, String)>,
        removed: Vec<u64>,
    },
}

impl Command {
    /// `[COMMAND_FORMAT_VERSION] ++ postcard(command)`. The raft log storage
    /// checksums entries, so no checksum here.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.push(COMMAND_FORMAT_VERSION);
        // Serializing plain derived types into a Vec has no failure path in
        // postcard (errors come only from full buffers or unsized sequences).
        postcard::to_extend(self, out).expect("postcard cannot fail to serialize a Command into a Vec")
    }

    /// Decodes bytes from the log or the network; rejects unknown versions and
    /// trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<Command, DecodeError> {
        let (&version, body) = bytes.split_first().ok_or(DecodeError::Empty)?;
        if version != COMMAND_FORMAT_VERSION {
            return Err(DecodeError::UnsupportedVersion(u32::from(version)));
        }
        let (command, rest) =
            postcard::take_from_bytes::<Command>(body).map_err(|e| DecodeError::Malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(DecodeError::TrailingBytes(rest.len()));
        }
        Ok(command)
    }
}
