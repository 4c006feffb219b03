//! The raft driver: one task owns raft-rs's `RawNode` and runs the Ready loop
//! ([`driver`]); controllers exchange raft messages over gRPC ([`transport`]).
//! Everything else talks to raft through a cloneable [`RaftHandle`].

pub mod driver;
mod logger;
pub mod transport;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use baton_state_machine::{Command, Outcome, StateError};
use raft::prelude::Message;
use tokio::sync::{mpsc, oneshot, watch};

use crate::metadata::Metadata;

/// Microseconds on this process's monotonic clock since its first use, plus
/// one: never 0, which means "never" in [`QuorumContact`].
pub fn mono_us() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    BASE.get_or_init(Instant::now).elapsed().as_micros() as u64 + 1
}

/// The leader's proof of recent quorum contact: the latest instant T
/// (`mono_us`) such that a quorum answered, at this leader's term, a
/// heartbeat sent after T. Each of those voters reset its election timer
/// after T and, with check_quorum, refuses to vote for anyone else for an
/// election timeout: no other leader can exist before T + election timeout.
/// 0 when this node is not leader. Written by the driver only.
#[derive(Debug, Default)]
pub struct QuorumContact(AtomicU64);

impl QuorumContact {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    /// How long ago the quorum was last confirmed, or None if never (or not leader).
    pub fn age(&self) -> Option<Duration> {
        let t = self.get();
        (t > 0).then(|| Duration::from_micros(mono_us().saturating_sub(t)))
    }

    pub(crate) fn confirm(&self, t: u64) {
        self.0.fetch_max(t, Ordering::AcqRel);
    }

    pub(crate) fn clear(&self) {
        self.0.store(0, Ordering::Release);
    }
}

/// What the driver publishes after every loop turn.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RaftStatus {
    pub id: u64,
    /// 0 when no leader is known.
    pub leader_id: u64,
    pub term: u64,
    pub is_leader: bool,
    /// Leader AND has applied the first entry of its term, so its state
    /// reflects every change its predecessors committed. Only a ready leader
    /// grants leases or decides liveness.
    pub leader_ready: bool,
    pub commit_index: u64,
    pub applied_index: u64,
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
    /// The leader's view of each member's replicated index (empty elsewhere).
    pub match_index: BTreeMap<u64, u64>,
}

#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProposeError {
    #[error("this controller is not the leader")]
    NotLeader { leader: Option<u64> },
    /// The entry may or may not be applied: leadership changed after it was
    /// proposed. Callers report UNAVAILABLE; a retry is safe for every
    /// command because they are validated against the state they meet.
    #[error("leadership changed; the outcome is unknown")]
    Ambiguous,
    #[error("raft dropped the proposal ({0})")]
    Dropped(String),
    #[error("timed out waiting for the quorum")]
    Timeout,
    #[error("the controller is shutting down")]
    Shutdown,
}

/// The outcome of a committed and applied proposal.
#[derive(Debug)]
pub struct Proposed {
    /// Log index of the entry: the metadata version that includes it.
    pub index: u64,
    pub outcome: Result<Outcome, StateError>,
}

pub(crate) enum DriverMsg {
    Propose { command: Vec<u8>, reply: oneshot::Sender<Result<Proposed, ProposeError>> },
    ReadIndex { reply: oneshot::Sender<Result<u64, ProposeError>> },
    Step(Box<Message>),
    Unreachable(u64),
    SnapshotDone { to: u64, ok: bool },
}

/// Bound on queued driver messages; senders wait when it is full.
pub(crate) const DRIVER_QUEUE: usize = 8192;

/// A cloneable way in to the raft driver.
#[derive(Clone)]
pub struct RaftHandle {
    tx: mpsc::Sender<DriverMsg>,
    status: watch::Receiver<RaftStatus>,
    metadata: Arc<Metadata>,
    peers: Arc<BTreeMap<u64, String>>,
    timeout: Duration,
}

impl RaftHandle {
    pub(crate) fn new(
        tx: mpsc::Sender<DriverMsg>,
        status: watch::Receiver<RaftStatus>,
        metadata: Arc<Metadata>,
        peers: Arc<BTreeMap<u64, String>>,
        timeout: Duration,
    ) -> RaftHandle {
        RaftHandle { tx, status, metadata, peers, timeout }
    }

    pub fn metadata(&self) -> &Arc<Metadata> {
        &self.metadata
    }

    /// Proposes a command and waits until it is committed and applied here.
    pub async fn propose(&self, command: &Command) -> Result<Proposed, ProposeError> {
        let (reply, rx) = oneshot::channel();
        let msg = DriverMsg::Propose { command: command.encode(), reply };
        self.tx.send(msg).await.map_err(|_| ProposeError::Shutdown)?;
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ProposeError::Shutdown),
            Err(_) => Err(ProposeError::Timeout),
        }
    }

    /// A linearizable read barrier (raft ReadIndex): when it returns, this
    /// controller has applied every change committed before the call.
    pub async fn read_barrier(&self) -> Result<u64, ProposeError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(DriverMsg::ReadIndex { reply }).await.map_err(|_| ProposeError::Shutdown)?;
        let deadline = tokio::time::Instant::now() + self.timeout;
        let index = match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(result)) => result?,
            Ok(Err(_)) => return Err(ProposeError::Shutdown),
            Err(_) => return Err(ProposeError::Timeout),
        };
        tokio::time::timeout_at(deadline, self.metadata.wait_for(index)).await.map_err(|_| ProposeError::Timeout)?;
        Ok(index)
    }

    pub fn status(&self) -> RaftStatus {
        self.status.borrow().clone()
    }

    pub fn subscribe_status(&self) -> watch::Receiver<RaftStatus> {
        self.status.clone()
    }

    pub fn id(&self) -> u64 {
        self.status.borrow().id
    }

    /// The address of a controller by raft id.
    pub fn peer_address(&self, id: u64) -> Option<&str> {
        self.peers.get(&id).map(String::as_str)
    }

    /// The leader's id and address, when known and not this node.
    pub fn remote_leader(&self) -> Option<(u64, String)> {
        let s = self.status.borrow();
        if s.leader_id == 0 || s.is_leader {
            return None;
        }
        self.peers.get(&s.leader_id).map(|a| (s.leader_id, a.clone()))
    }

    pub(crate) async fn step(&self, msg: Message) -> Result<(), ProposeError> {
        self.tx.send(DriverMsg::Step(Box::new(msg))).await.map_err(|_| ProposeError::Shutdown)
    }
}
