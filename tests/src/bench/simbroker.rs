//! A simulated broker for `baton-bench scale`: the BrokerSession protocol as
//! an agent speaks it (register, one session stream, a heartbeat every
//! interval carrying the applied metadata version and progress deltas,
//! chunked updates applied by version), without the agent's check table.
//! A thousand of these share one process and its two cores with the
//! controllers, so each keeps only what the measurement needs: the leader of
//! each partition it hosts (hosted view) and its lease.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use baton_proto::v1::broker_session_client::BrokerSessionClient;
use baton_proto::v1::{
    Heartbeat, PartitionInfo, RegisterBrokerRequest, ReplicaProgress, SessionRequest, session_request, session_response,
};
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// A partition: (topic, partition number).
pub type Key = (Arc<str>, i32);

/// Shared by every simulated broker of a run.
#[derive(Default)]
pub struct Shared {
    /// Heartbeat acks received (all brokers).
    pub acks: AtomicU64,
    /// Sessions that ended and were opened again (all brokers).
    pub reconnects: AtomicU64,
    /// Progress entries sent (all brokers).
    pub progress_sent: AtomicU64,
    /// Set by the bench: from then on, a broker that sees a partition's
    /// leader move away from broker `watch_from` records when.
    pub watching: AtomicBool,
    pub watch_from: std::sync::atomic::AtomicI32,
    pub watch_started: Mutex<Option<Instant>>,
    /// (topic, partition) → when each replica saw the leader move (ms after
    /// `watch_started`).
    pub moved: Mutex<HashMap<Key, Vec<f64>>>,
    pub stop: AtomicBool,
    /// Ask for every partition of the cluster instead of the hosted ones.
    pub full_view: bool,
}

/// What one simulated broker exposes to the bench.
pub struct SimBroker {
    pub id: i32,
    /// Leader of every partition it hosts, as of its applied version.
    pub leaders: Mutex<HashMap<Key, i32>>,
    /// Hosted partitions by progress slot (see [`SimBroker::progress`]).
    slots: Mutex<Vec<Vec<Key>>>,
    pub version: AtomicU64,
    /// Lease end, as nanoseconds since `epoch` (0: none).
    lease_until: AtomicU64,
    epoch: Instant,
}

impl SimBroker {
    /// `epoch`: the run's shared start (ticks and lease times count from it).
    pub fn new(id: i32, epoch: Instant) -> Arc<SimBroker> {
        Arc::new(SimBroker {
            id,
            leaders: Mutex::new(HashMap::new()),
            slots: Mutex::new(Vec::new()),
            version: AtomicU64::new(0),
            lease_until: AtomicU64::new(0),
            epoch,
        })
    }

    pub fn has_lease(&self) -> bool {
        self.epoch.elapsed().as_nanos() < u128::from(self.lease_until.load(Ordering::Relaxed))
    }

    /// Registers, then keeps a session open until `shared.stop`, opening a
    /// new one (registering again) whenever it ends.
    /// Starts at controller `first`; after a failure it tries the next one.
    pub async fn run(
        self: Arc<SimBroker>,
        controllers: Arc<Vec<String>>,
        first: usize,
        interval: Duration,
        slots: usize,
        shared: Arc<Shared>,
    ) {
        let mut at = first;
        let mut failed = false;
        while !shared.stop.load(Ordering::Relaxed) {
            if failed {
                shared.reconnects.fetch_add(1, Ordering::Relaxed);
                at = (at + 1) % controllers.len().max(1);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            failed = self.session(&controllers[at], interval, slots, &shared).await.is_err();
        }
    }

    async fn session(&self, controller: &str, interval: Duration, slots: usize, shared: &Shared) -> anyhow::Result<()> {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{controller}"))?
            .tcp_nodelay(true)
            .connect()
            .await?;
        let mut client = BrokerSessionClient::new(channel).max_decoding_message_size(64 << 20);
        let epoch = client
            .register_broker(RegisterBrokerRequest {
                broker_id: self.id,
                incarnation_id: format!("sim-{}-{}", self.id, self.epoch.elapsed().as_nanos()),
                endpoint: format!("127.0.0.1:{}", 20_000 + self.id),
                rack: format!("rack-{}", self.id % 10),
            })
            .await?
            .into_inner()
            .broker_epoch;
        let (tx, rx) = mpsc::channel(8);
        let mut seq = 0u64;
        let hosted_view = !shared.full_view;
        let heartbeat = |seq: u64, progress: Vec<ReplicaProgress>| SessionRequest {
            kind: Some(session_request::Kind::Heartbeat(Heartbeat {
                broker_id: self.id,
                broker_epoch: epoch,
                seq,
                metadata_version: self.version.load(Ordering::Relaxed),
                progress,
                hosted_view,
                ..Heartbeat::default()
            })),
        };
        // A new session starts from a full view.
        self.version.store(0, Ordering::Relaxed);
        seq += 1;
        tx.send(heartbeat(seq, Vec::new())).await?;
        let mut sent_at: HashMap<u64, Instant> = HashMap::new();
        sent_at.insert(1, Instant::now());
        let mut inbound = client.session(ReceiverStream::new(rx)).await?.into_inner();
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut pending: Option<(u64, Vec<baton_proto::v1::PartitionInfo>, bool)> = None;
        loop {
            tokio::select! {
                message = inbound.message() => {
                    let Some(message) = message? else { anyhow::bail!("the controller ended the session") };
                    match message.kind {
                        Some(session_response::Kind::Ack(ack)) => {
                            shared.acks.fetch_add(1, Ordering::Relaxed);
                            if let Some(sent) = sent_at.remove(&ack.seq) {
                                let until = sent.duration_since(self.epoch) + Duration::from_millis(u64::from(ack.lease_ms));
                                let until = if ack.lease_ms == 0 { 0 } else { until.as_nanos() as u64 };
                                self.lease_until.store(until, Ordering::Relaxed);
                            }
                            sent_at.retain(|s, _| *s > ack.seq);
                        }
                        Some(session_response::Kind::Update(update)) => {
                            let (version, mut partitions, full) =
                                pending.take().unwrap_or((update.metadata_version, Vec::new(), update.full));
                            partitions.extend(update.partitions);
                            if update.partial {
                                pending = Some((version, partitions, full));
                                continue;
                            }
                            self.apply(version, partitions, full, slots, shared);
                        }
                        None => {}
                    }
                }
                _ = ticker.tick() => {
                    let tick = (self.epoch.elapsed().as_nanos() / interval.as_nanos().max(1)) as u64;
                    let reports = self.progress(tick);
                    shared.progress_sent.fetch_add(reports.len() as u64, Ordering::Relaxed);
                    seq += 1;
                    let request = heartbeat(seq, reports);
                    sent_at.insert(seq, Instant::now());
                    if tx.try_send(request).is_err() {
                        sent_at.remove(&seq);
                    }
                    if shared.stop.load(Ordering::Relaxed) {
                        return Ok(());
                    }
                }
            }
        }
    }

    fn apply(&self, version: u64, partitions: Vec<PartitionInfo>, full: bool, slots: usize, shared: &Shared) {
        let watching = shared.watching.load(Ordering::Relaxed);
        let from = shared.watch_from.load(Ordering::Relaxed);
        let mut leaders = self.leaders.lock();
        let mut by_slot = self.slots.lock();
        if full {
            leaders.clear();
            by_slot.clear();
        }
        by_slot.resize(slots.max(1), Vec::new());
        for p in partitions {
            let key: Key = (Arc::from(p.topic.as_str()), p.partition);
            if !p.replicas.contains(&self.id) {
                leaders.remove(&key);
                continue;
            }
            let old = leaders.insert(key.clone(), p.leader);
            if watching && old == Some(from) && p.leader != from && p.leader >= 0 {
                let at = shared.watch_started.lock().map_or(0.0, |t| t.elapsed().as_secs_f64() * 1e3);
                shared.moved.lock().entry(key.clone()).or_default().push(at);
            }
            if old.is_none() {
                let slot = slot_of(&key, by_slot.len());
                by_slot[slot].push(key);
            }
        }
        self.version.store(version, Ordering::Relaxed);
    }

    /// Progress deltas for global tick `tick` (the same for every simulated
    /// broker: ticks count intervals since the shared start): the hosted
    /// partitions in slot `tick % slots`, each at offset `tick × 100`. Every
    /// replica of a partition reports it in the same tick with the same
    /// offset, so followers keep up with their leaders and ISRs stay whole.
    fn progress(&self, tick: u64) -> Vec<ReplicaProgress> {
        let by_slot = self.slots.lock();
        if by_slot.is_empty() {
            return Vec::new();
        }
        let leaders = self.leaders.lock();
        by_slot[(tick % by_slot.len() as u64) as usize]
            .iter()
            .filter(|key| leaders.contains_key(*key))
            .map(|(topic, partition)| ReplicaProgress {
                topic: topic.to_string(),
                partition: *partition,
                log_end_offset: tick as i64 * 100,
            })
            .collect()
    }
}

/// A partition's progress slot: the same in every broker.
fn slot_of(key: &Key, slots: usize) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.0.bytes().chain(key.1.to_le_bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    (h % slots.max(1) as u64) as usize
}
