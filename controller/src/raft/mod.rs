//! The raft driver: one task owns raft-rs's `RawNode` and runs the Ready loop
//! ([`driver`]); controllers exchange raft messages over gRPC ([`transport`]).
//! Everything else talks to raft through a cloneable [`RaftHandle`].

pub mod driver;
mod logger;
mod read_rounds;
pub mod transport;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use baton_state_machine::{Command, Outcome, StateError};
use raft::prelude::{ConfChangeV2, Message};
use tokio::sync::{mpsc, oneshot, watch};

use crate::metadata::Metadata;

/// Target of the TRACE events that time a write's path through the driver
/// and the raft links (`RUST_LOG=baton::commit_path=trace`; read with
/// `scripts/commit-path.py`, docs/BENCHMARKS.md "Bottlenecks found" 6).
/// Off, they cost a cached interest check each.
pub const COMMIT_PATH: &str = "baton::commit_path";

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

/// Where each controller is: the peers of this controller's config, overlaid
/// with the addresses that membership changes recorded in the replicated
/// state (so controllers added later are known to every member, also after a
/// restart with an old `peers` setting, and to new members from snapshots).
#[derive(Debug)]
pub struct Members {
    configured: BTreeMap<u64, String>,
    current: RwLock<Arc<BTreeMap<u64, String>>>,
}

impl Members {
    pub fn new(configured: BTreeMap<u64, String>) -> Members {
        let current = RwLock::new(Arc::new(configured.clone()));
        Members { configured, current }
    }

    /// Every known controller's address.
    pub fn all(&self) -> Arc<BTreeMap<u64, String>> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn address(&self, id: u64) -> Option<String> {
        self.all().get(&id).cloned()
    }

    /// Recomputes the map from the replicated addresses; returns it.
    pub(crate) fn refresh(&self, recorded: &BTreeMap<u64, String>) -> Arc<BTreeMap<u64, String>> {
        let mut merged = self.configured.clone();
        merged.extend(recorded.iter().map(|(id, a)| (*id, a.clone())));
        let merged = Arc::new(merged);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = merged.clone();
        merged
    }
}

/// When this controller last received a raft message from each peer
/// (`mono_us`), written by the driver for every message it steps.
#[derive(Debug, Default)]
pub struct PeerContact(parking_lot::Mutex<BTreeMap<u64, u64>>);

impl PeerContact {
    pub(crate) fn heard(&self, id: u64) {
        self.0.lock().insert(id, mono_us());
    }

    /// How long ago `id` was last heard from; None if never.
    pub fn age(&self, id: u64) -> Option<Duration> {
        let t = self.0.lock().get(&id).copied()?;
        Some(Duration::from_micros(mono_us().saturating_sub(t)))
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
    /// Voters of the outgoing configuration while a joint change is under way.
    pub voters_outgoing: Vec<u64>,
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
    Propose {
        command: Vec<u8>,
        reply: oneshot::Sender<Result<Proposed, ProposeError>>,
    },
    ReadIndex {
        reply: oneshot::Sender<Result<u64, ProposeError>>,
    },
    Step(Box<Message>),
    Unreachable(u64),
    SnapshotDone {
        to: u64,
        ok: bool,
    },
    /// A membership change; `addresses` rides along as the entry's context.
    ChangeConf {
        change: ConfChangeV2,
        reply: oneshot::Sender<Result<Proposed, ProposeError>>,
    },
    TransferLeader {
        to: u64,
    },
}

/// Bound on queued driver messages; senders wait when it is full.
pub(crate) const DRIVER_QUEUE: usize = 8192;

/// A cloneable way in to the raft driver.
#[derive(Clone)]
pub struct RaftHandle {
    tx: mpsc::Sender<DriverMsg>,
    status: watch::Receiver<RaftStatus>,
    metadata: Arc<Metadata>,
    members: Arc<Members>,
    contact: Arc<PeerContact>,
    timeout: Duration,
}

impl RaftHandle {
    pub(crate) fn new(
        tx: mpsc::Sender<DriverMsg>,
        status: watch::Receiver<RaftStatus>,
        metadata: Arc<Metadata>,
        members: Arc<Members>,
        contact: Arc<PeerContact>,
        timeout: Duration,
    ) -> RaftHandle {
        RaftHandle { tx, status, metadata, members, contact, timeout }
    }

    pub fn metadata(&self) -> &Arc<Metadata> {
        &self.metadata
    }

    /// Proposes a command and waits until it is committed and applied here.
    pub async fn propose(&self, command: &Command) -> Result<Proposed, ProposeError> {
        let (reply, rx) = oneshot::channel();
        let msg = DriverMsg::Propose { command: command.encode(), reply };
        tracing::trace!(target: COMMIT_PATH, "proposal queued for the driver");
        self.tx.send(msg).await.map_err(|_| ProposeError::Shutdown)?;
        let result = match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ProposeError::Shutdown),
            Err(_) => Err(ProposeError::Timeout),
        };
        tracing::trace!(target: COMMIT_PATH, index = result.as_ref().map_or(0, |p| p.index), "proposal answered");
        result
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
    pub fn peer_address(&self, id: u64) -> Option<String> {
        self.members.address(id)
    }

    pub fn members(&self) -> &Arc<Members> {
        &self.members
    }

    /// How long ago this controller last heard from controller `id`
    /// (Some(0) for itself; None if never).
    pub fn last_contact(&self, id: u64) -> Option<Duration> {
        if id == self.id() { Some(Duration::ZERO) } else { self.contact.age(id) }
    }

    /// Proposes a raft configuration change and waits until it is applied
    /// here. Refused (Dropped) while another change is still pending.
    pub async fn change_conf(&self, change: ConfChangeV2) -> Result<Proposed, ProposeError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(DriverMsg::ChangeConf { change, reply }).await.map_err(|_| ProposeError::Shutdown)?;
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ProposeError::Shutdown),
            Err(_) => Err(ProposeError::Timeout),
        }
    }

    /// Asks raft to hand leadership to `to` (best effort; watch the status).
    pub async fn transfer_leader(&self, to: u64) -> Result<(), ProposeError> {
        self.tx.send(DriverMsg::TransferLeader { to }).await.map_err(|_| ProposeError::Shutdown)
    }

    /// The leader's id and address, when known and not this node.
    pub fn remote_leader(&self) -> Option<(u64, String)> {
        let s = self.status.borrow();
        if s.leader_id == 0 || s.is_leader {
            return None;
        }
        self.members.address(s.leader_id).map(|a| (s.leader_id, a))
    }

    pub(crate) async fn step(&self, msg: Message) -> Result<(), ProposeError> {
        self.tx.send(DriverMsg::Step(Box::new(msg))).await.map_err(|_| ProposeError::Shutdown)
    }
}
