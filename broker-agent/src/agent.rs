//! [`Agent`]: the handle a broker holds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use rand::RngCore;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::checks::NotLeader;
use crate::config::AgentConfig;
use crate::events::{LeadershipEvent, PartitionView};
use crate::lease::Lease;
use crate::progress::{IsrRequestRefused, IsrRequests};
use crate::session::Session;
use crate::table::Table;

/// Updates buffered per subscriber before it lags (and gets `Lagged`).
pub const EVENT_CHANNEL_CAPACITY: usize = 1024;

/// Errors of the agent's async API.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("not registered within {0:?}")]
    Timeout(Duration),
    #[error("the agent has stopped")]
    Stopped,
}

/// A snapshot of the agent's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentStatus {
    pub broker_id: i32,
    pub incarnation_id: String,
    /// 0 until registered.
    pub broker_epoch: u64,
    pub metadata_version: u64,
    /// Zero when the lease has lapsed.
    pub lease_remaining: Duration,
    /// A session stream with a controller is open.
    pub connected: bool,
    /// Address of the controller the session is held with (or last tried).
    pub controller: Option<String>,
    /// Raft id of that controller when a `baton-leader` hint named it; 0 otherwise.
    pub controller_id: u64,
    /// Partitions the view says this broker leads (whether or not leased).
    pub partitions_led: u32,
    /// Progress records dropped at the dirty-queue bound since start.
    pub progress_dropped: u64,
    /// Partitions whose progress waits for a heartbeat.
    pub progress_pending: usize,
}

/// The controller the session is with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ControllerRef {
    pub(crate) address: String,
    pub(crate) id: u64,
}

/// State shared by the handle, the session task and the sidecar.
pub(crate) struct Shared {
    pub(crate) config: AgentConfig,
    pub(crate) incarnation_id: String,
    pub(crate) table: Table,
    pub(crate) lease: Lease,
    pub(crate) events: broadcast::Sender<LeadershipEvent>,
    pub(crate) broker_epoch: watch::Sender<u64>,
    pub(crate) connected: AtomicBool,
    pub(crate) controller: Mutex<Option<ControllerRef>>,
    pub(crate) stop: watch::Sender<bool>,
    pub(crate) stopped: watch::Sender<bool>,
    /// Set by `shutdown`: heartbeats ask for a controlled shutdown.
    pub(crate) draining: watch::Sender<bool>,
    /// The metadata version at which the controller said our controlled
    /// shutdown is committed (from a HeartbeatAck with `drained`).
    pub(crate) drained_at: watch::Sender<Option<u64>>,
    /// The leader's pending ISR-expansion requests, repeated by heartbeats.
    pub(crate) isr_requests: IsrRequests,
    task: Mutex<Option<JoinHandle<()>>>,
}

/// The broker agent: leadership checks, progress reports and the controller
/// session. Cheap to clone; every clone is the same agent.
#[derive(Clone)]
pub struct Agent {
    shared: Arc<Shared>,
}

/// A random RFC 4122 version-4 UUID (a dependency would add nothing here).
pub(crate) fn random_uuid_v4() -> String {
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = |r: std::ops::Range<usize>| b[r].iter().map(|x| format!("{x:02x}")).collect::<String>();
    format!("{}-{}-{}-{}-{}", h(0..4), h(4..6), h(6..8), h(8..10), h(10..16))
}

impl Agent {
    /// Spawns the session task and returns at once; registration and the
    /// connection happen in the background, with retries. Must be called
    /// within a Tokio runtime.
    pub fn start(config: AgentConfig) -> Agent {
        let agent = Self::new_idle(config);
        if let Err(error) = agent.shared.config.validate() {
            tracing::error!(%error, "invalid agent configuration; the session will not start");
            agent.shared.stopped.send_replace(true);
            return agent;
        }
        let tls = match baton_security::Tls::from_config(&agent.shared.config.tls, "agent") {
            Ok(tls) => tls,
            Err(error) => {
                tracing::error!(error = %format!("{error:#}"), "TLS configuration unusable; the session will not start");
                agent.shared.stopped.send_replace(true);
                return agent;
            }
        };
        if let Some(tls) = &tls {
            let me = baton_security::Principal::Broker(agent.shared.config.broker_id);
            if tls.principal() != me {
                tracing::error!(certificate = %tls.principal(), expected = %me, "the TLS certificate is not this broker's; the session will not start");
                agent.shared.stopped.send_replace(true);
                return agent;
            }
        }
        let connector = baton_security::Connector::new(tls, baton_security::Expect::AnyController)
            .with_connect_timeout(agent.shared.config.rpc_timeout);
        let task = tokio::spawn(Session::new(Arc::clone(&agent.shared), connector).run());
        *agent.shared.task.lock() = Some(task);
        agent
    }

    /// An agent with no session task: for tests of the table and the checks.
    pub(crate) fn new_idle(config: AgentConfig) -> Agent {
        let incarnation_id = config.incarnation_id.clone().unwrap_or_else(random_uuid_v4);
        let shared = Shared {
            table: Table::new(config.broker_id),
            config,
            incarnation_id,
            lease: Lease::new(),
            events: broadcast::channel(EVENT_CHANNEL_CAPACITY).0,
            broker_epoch: watch::channel(0).0,
            connected: AtomicBool::new(false),
            controller: Mutex::new(None),
            stop: watch::channel(false).0,
            stopped: watch::channel(false).0,
            draining: watch::channel(false).0,
            drained_at: watch::channel(None).0,
            isr_requests: IsrRequests::default(),
            task: Mutex::new(None),
        };
        Agent { shared: Arc::new(shared) }
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Waits until the broker is registered; returns its broker epoch.
    pub async fn wait_registered(&self, timeout: Duration) -> Result<u64, AgentError> {
        let mut epoch = self.shared.broker_epoch.subscribe();
        let mut stopped = self.shared.stopped.subscribe();
        let wait = async {
            tokio::select! {
                r = epoch.wait_for(|e| *e > 0) => r.map(|e| *e).map_err(|_| AgentError::Stopped),
                _ = stopped.wait_for(|s| *s) => Err(AgentError::Stopped),
            }
        };
        tokio::time::timeout(timeout, wait).await.map_err(|_| AgentError::Timeout(timeout))?
    }

    /// May this broker accept a produce for the partition now? Ok(leader_epoch).
    #[inline]
    pub fn check_produce(&self, topic: &str, partition: i32) -> Result<i32, NotLeader> {
        self.shared.table.check_produce(&self.shared.lease, topic, partition)
    }

    /// May this broker serve a fetch carrying `leader_epoch` (-1: none)?
    #[inline]
    pub fn check_fetch(&self, topic: &str, partition: i32, leader_epoch: i32) -> Result<i32, NotLeader> {
        self.shared.table.check_fetch(&self.shared.lease, topic, partition, leader_epoch)
    }

    /// Records the leader replica's log end offset; sent with the next heartbeat.
    #[inline]
    pub fn record_produce(&self, topic: &str, partition: i32, log_end_offset: i64) {
        self.shared.table.record_progress(topic, partition, log_end_offset);
    }

    /// Records a follower replica's log end offset (same mechanism).
    #[inline]
    pub fn record_replica_progress(&self, topic: &str, partition: i32, log_end_offset: i64) {
        self.shared.table.record_progress(topic, partition, log_end_offset);
    }

    /// As leader of `topic`/`partition` at `leader_epoch`, asks the
    /// controller to add `follower` to the ISR (KIP-497's AlterPartition,
    /// growth only); the request is the one made at `partition_epoch`, the
    /// partition epoch of the view the data plane decided on. Meant for a
    /// data plane configured with [`AgentConfig::isr_expansion_by_request`].
    ///
    /// The data plane's half of the contract, which makes acks=all safe
    /// while the ISR grows:
    /// - ask only for a replica whose fetch offset reached the high
    ///   watermark and the start offset of the current leader epoch (its log
    ///   then holds every write acknowledged so far, by this leader or an
    ///   earlier one);
    /// - from the moment it asks (before calling this), count the follower in
    ///   the high watermark, as if it were in the ISR (the "maximal ISR");
    /// - keep counting it until a view with a partition epoch above
    ///   `partition_epoch` arrives: then the follower is in the ISR, or the
    ///   controller refused or overtook the request, and the data plane may
    ///   forget it (and ask again at the new epoch if it is still caught up).
    ///
    /// The agent sends the request with every heartbeat (a new active
    /// controller holds none) until its view's partition epoch passes it.
    /// Not on the check path: takes a lock and may allocate. Refused when the
    /// view already disagrees (this broker does not lead at that epoch, or
    /// the partition epoch moved on) or at [`crate::MAX_ISR_REQUESTS`].
    pub fn request_isr_expansion(
        &self,
        topic: &str,
        partition: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        follower: i32,
    ) -> Result<(), IsrRequestRefused> {
        let view = self.shared.table.partition(topic, partition);
        self.shared.isr_requests.request(view.as_ref(), leader_epoch, partition_epoch, follower)
    }

    /// Leadership changes, one event per applied update. Bounded
    /// ([`EVENT_CHANNEL_CAPACITY`]): a subscriber that lags gets `Lagged` and
    /// should re-read [`Agent::view`].
    pub fn subscribe(&self) -> broadcast::Receiver<LeadershipEvent> {
        self.shared.events.subscribe()
    }

    /// The whole current table, sorted by topic and partition.
    pub fn view(&self) -> Vec<PartitionView> {
        self.shared.table.view()
    }

    /// One partition's current view.
    pub fn partition(&self, topic: &str, partition: i32) -> Option<PartitionView> {
        self.shared.table.partition(topic, partition)
    }

    /// Every registered broker's advertised endpoint (`host:port`), sorted by
    /// broker id, as the controller's updates listed them. A broker answering
    /// Kafka Metadata names its peers with these.
    pub fn broker_endpoints(&self) -> Vec<(i32, Arc<str>)> {
        self.shared.table.broker_endpoints()
    }

    /// Notified with the new lease deadline whenever it moves (grant, suspension).
    pub fn lease_changes(&self) -> watch::Receiver<u64> {
        self.shared.lease.subscribe()
    }

    /// Time left on the lease at this instant.
    pub fn lease_remaining(&self) -> Duration {
        self.shared.lease.remaining()
    }

    pub fn metadata_version(&self) -> u64 {
        self.shared.table.metadata_version()
    }

    pub fn status(&self) -> AgentStatus {
        let controller = self.shared.controller.lock().clone();
        AgentStatus {
            broker_id: self.shared.config.broker_id,
            incarnation_id: self.shared.incarnation_id.clone(),
            broker_epoch: *self.shared.broker_epoch.borrow(),
            metadata_version: self.shared.table.metadata_version(),
            lease_remaining: self.shared.lease.remaining(),
            connected: self.shared.connected.load(Ordering::Acquire),
            controller_id: controller.as_ref().map_or(0, |c| c.id),
            controller: controller.map(|c| c.address),
            partitions_led: self.shared.table.partitions_led(),
            progress_dropped: self.shared.table.progress_dropped(),
            progress_pending: self.shared.table.dirty_len(),
        }
    }

    /// Clean exit. First a controlled shutdown (when connected and
    /// `shutdown_drain_timeout` > 0): heartbeats ask the controller to move
    /// this broker's leadership to other in-sync brokers, and the broker keeps
    /// serving what it leads until each revocation arrives, so clients see a
    /// new leader within a handoff, not a failover. Then it suspends the lease
    /// (checks refuse from here on), sends a heartbeat with `shutting_down =
    /// true`, waits up to `rpc_timeout` for its ack, and stops the session
    /// task. Idempotent; any clone may call it.
    pub async fn shutdown(&self) {
        self.drain_before_stop().await;
        self.shared.stop.send_replace(true);
        let has_task = self.shared.task.lock().is_some();
        let mut stopped = self.shared.stopped.subscribe();
        // Bounded: the session waits at most rpc_timeout for the ack, plus slack.
        let limit = self.shared.config.rpc_timeout * 2 + Duration::from_secs(1);
        if has_task && tokio::time::timeout(limit, stopped.wait_for(|s| *s)).await.is_err() {
            tracing::warn!("session task did not stop in time; aborting it");
            if let Some(task) = self.shared.task.lock().take() {
                task.abort();
            }
        }
        // Whatever happened above, fail closed.
        self.shared.lease.close();
        self.shared.connected.store(false, Ordering::Release);
        self.shared.stopped.send_replace(true);
    }

    /// The controlled-shutdown half of [`Agent::shutdown`]: returns once the
    /// controller committed it and this agent applied that version (every
    /// partition that could move has moved), or after the timeout.
    async fn drain_before_stop(&self) {
        let timeout = self.shared.config.shutdown_drain_timeout;
        if timeout.is_zero() || !self.shared.connected.load(Ordering::Acquire) || *self.shared.stop.borrow() {
            return;
        }
        let started = std::time::Instant::now();
        let led = self.shared.table.partitions_led();
        tracing::info!(partitions_led = led, "controlled shutdown: asking the controller to move leadership away");
        let mut drained_at = self.shared.drained_at.subscribe();
        self.shared.draining.send_replace(true);
        let table = &self.shared.table;
        let wait = async {
            let version = loop {
                if let Some(v) = *drained_at.borrow_and_update() {
                    break v;
                }
                if drained_at.changed().await.is_err() {
                    return;
                }
            };
            while table.metadata_version() < version {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(()) => tracing::info!(
                took_ms = started.elapsed().as_millis() as u64,
                still_led = self.shared.table.partitions_led(),
                "controlled shutdown done: leadership moved away"
            ),
            Err(_) => {
                tracing::warn!(timeout_ms = timeout.as_millis() as u64, "controlled shutdown timed out; stopping")
            }
        }
    }
}
