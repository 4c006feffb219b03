//! Prometheus metrics of one controller, served as text on `GET /metrics`
//! at `metrics_listen` (off when empty). Counters and histograms are updated
//! where things happen; gauges derived from the state (brokers by state,
//! leaderless partitions, heartbeat ages) are computed at scrape time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use baton_state_machine::{BrokerState, FenceReason, NO_LEADER};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::warn;

use crate::Shared;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BrokerLabel {
    broker: String,
}

/// Everything a controller counts. Cheap to update: atomics only.
pub struct Metrics {
    pub heartbeats: Counter,
    pub leases_granted: Counter,
    pub leader_changes: Counter,
    fences: Family<ReasonLabel, Counter>,
    commit_seconds: Histogram,
    failover_seconds: Histogram,
    raft_term: Gauge,
    raft_is_leader: Gauge,
    raft_commit_index: Gauge,
    raft_applied_index: Gauge,
    brokers: Family<StateLabel, Gauge>,
    partitions: Gauge,
    leaderless_partitions: Gauge,
    heartbeat_age_seconds: Family<BrokerLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// Connections refused by the accept loop (filled by it).
    pub accept: std::sync::Arc<baton_security::server::AcceptStats>,
    refused_connections: Family<ReasonLabel, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            heartbeats: Counter::default(),
            leases_granted: Counter::default(),
            leader_changes: Counter::default(),
            fences: Family::default(),
            // 0.25 ms .. ~8 s
            commit_seconds: Histogram::new(exponential_buckets(0.000_25, 2.0, 16)),
            failover_seconds: Histogram::new(exponential_buckets(0.000_25, 2.0, 16)),
            raft_term: Gauge::default(),
            raft_is_leader: Gauge::default(),
            raft_commit_index: Gauge::default(),
            raft_applied_index: Gauge::default(),
            brokers: Family::default(),
            partitions: Gauge::default(),
            leaderless_partitions: Gauge::default(),
            heartbeat_age_seconds: Family::default(),
            accept: Default::default(),
            refused_connections: Family::default(),
        }
    }
}

impl Metrics {
    pub fn observe_commit(&self, took: Duration) {
        self.commit_seconds.observe(took.as_secs_f64());
    }

    /// A broker fenced: the reason, and how long the fence took to commit
    /// (the controller's share of failover time).
    pub fn observe_fence(&self, reason: FenceReason, took: Duration) {
        let reason = format!("{reason:?}");
        self.fences.get_or_create(&ReasonLabel { reason }).inc();
        self.failover_seconds.observe(took.as_secs_f64());
    }

    /// Renders every metric, refreshing the derived gauges first.
    pub fn render(&self, shared: &Shared) -> String {
        let status = shared.raft.status();
        self.raft_term.set(status.term as i64);
        self.raft_is_leader.set(i64::from(status.is_leader));
        self.raft_commit_index.set(status.commit_index as i64);
        self.raft_applied_index.set(status.applied_index as i64);
        let now = Instant::now();
        self.brokers.clear();
        self.heartbeat_age_seconds.clear();
        shared.raft.metadata().read(|s| {
            for state in
                [BrokerState::Alive, BrokerState::Fenced, BrokerState::ControlledShutdown, BrokerState::Drained]
            {
                let count = s.brokers().filter(|b| b.state == state).count();
                self.brokers.get_or_create(&StateLabel { state: format!("{state:?}") }).set(count as i64);
            }
            let (mut total, mut leaderless) = (0i64, 0i64);
            for t in s.topics() {
                total += t.partitions.len() as i64;
                leaderless += t.partitions.iter().filter(|p| p.leader == NO_LEADER).count() as i64;
            }
            self.partitions.set(total);
            self.leaderless_partitions.set(leaderless);
            for b in s.brokers() {
                if let Some(age) = shared.liveness.heartbeat_age(b.id, now) {
                    self.heartbeat_age_seconds
                        .get_or_create(&BrokerLabel { broker: b.id.to_string() })
                        .set(age.as_secs_f64());
                }
            }
        });
        use std::sync::atomic::Ordering::Relaxed;
        for (reason, count) in [
            ("over_limit", &self.accept.over_limit),
            ("tls_handshake", &self.accept.handshake_failed),
            ("no_identity", &self.accept.no_identity),
        ] {
            self.refused_connections
                .get_or_create(&ReasonLabel { reason: reason.to_owned() })
                .set(count.load(Relaxed) as i64);
        }
        let mut registry = Registry::with_prefix("baton_controller");
        self.register(&mut registry);
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
            warn!(error = %e, "encoding metrics failed");
        }
        out
    }

    fn register(&self, r: &mut Registry) {
        r.register("heartbeats", "Broker heartbeats received", self.heartbeats.clone());
        r.register(
            "refused_connections",
            "Connections closed at accept, by reason (over_limit, tls_handshake, no_identity)",
            self.refused_connections.clone(),
        );
        r.register("leases_granted", "Leases granted to brokers", self.leases_granted.clone());
        r.register("leader_changes", "Times this controller's raft leader changed", self.leader_changes.clone());
        r.register("fenced_brokers", "Brokers fenced by this controller, by reason", self.fences.clone());
        r.register("commit_seconds", "Proposal to applied, as the proposer saw it", self.commit_seconds.clone());
        r.register("failover_seconds", "Fence proposal to applied (partitions moved)", self.failover_seconds.clone());
        r.register("raft_term", "Current raft term", self.raft_term.clone());
        r.register("raft_is_leader", "1 when this controller is the raft leader", self.raft_is_leader.clone());
        r.register("raft_commit_index", "Raft commit index", self.raft_commit_index.clone());
        r.register("raft_applied_index", "Applied index (the metadata version)", self.raft_applied_index.clone());
        r.register("brokers", "Registered brokers by state", self.brokers.clone());
        r.register("partitions", "Partitions in the cluster", self.partitions.clone());
        r.register("leaderless_partitions", "Partitions without a leader", self.leaderless_partitions.clone());
        r.register(
            "broker_heartbeat_age_seconds",
            "Time since the active controller accepted each broker's heartbeat",
            self.heartbeat_age_seconds.clone(),
        );
    }
}

/// Counts leader changes from the raft status, until shutdown.
pub async fn watch_raft(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut status = shared.raft.subscribe_status();
    let mut leader = status.borrow().leader_id;
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            changed = status.changed() => {
                if changed.is_err() {
                    return;
                }
                let now = status.borrow_and_update().leader_id;
                if now != leader {
                    leader = now;
                    shared.metrics.leader_changes.inc();
                }
            }
        }
    }
}

/// Serves `GET /metrics` and `GET /healthz` (HTTP/1.1, plaintext) on `addr`
/// until shutdown. `/healthz` answers 200 while the process serves; it is
/// for probes that cannot present a client certificate (the kubelet's).
pub async fn serve(shared: Arc<Shared>, addr: SocketAddr, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    use axum::routing::get;
    let listener = TcpListener::bind(addr).await?;
    let app = axum::Router::new().route("/healthz", get(|| async { "ok\n" })).route(
        "/metrics",
        get(move || {
            let shared = shared.clone();
            async move {
                (
                    [(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
                    shared.metrics.render(&shared),
                )
            }
        }),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        })
        .await?;
    Ok(())
}
