//! `baton-refbroker`: a reference Kafka-protocol broker that embeds the
//! Baton agent. It exists to show, with real Kafka clients, that Baton's
//! leadership, leases and ISR keep every acknowledged write across broker
//! failures; it is not a production broker.
//!
//! What it speaks (wire format by the `kafka-protocol` crate): ApiVersions,
//! Metadata, Produce (acks 0, 1, all), Fetch (consumers and follower
//! replicas), ListOffsets and OffsetForLeaderEpoch. No consumer groups, no
//! transactions, no idempotent producers, no `min.insync.replicas` (acks=all
//! waits for the ISR as it is, the leader alone included), no topic
//! creation (topics are created through Baton: `batonctl topic create`).
//!
//! How it uses the agent:
//! - every Produce goes through [`baton_agent::Agent::check_produce`]; a
//!   refusal answers Kafka error 6 NOT_LEADER_OR_FOLLOWER (or 3/74/75) with
//!   the KIP-951 CurrentLeader hint and the leader's NodeEndpoint;
//! - every Fetch, ListOffsets and OffsetForLeaderEpoch goes through
//!   [`baton_agent::Agent::check_fetch`] with the client's leader epoch;
//! - Metadata is the agent's view (leaders, replicas, ISR, leader epochs)
//!   and the brokers' endpoints as they registered them: the agent
//!   registers this broker's Kafka listener as its advertised endpoint;
//! - the leader reports its log end offset with `record_produce`, followers
//!   theirs with `record_replica_progress`, so the controller can shrink the
//!   ISR; the leader asks for growth with `request_isr_expansion`.
//!
//! Replication works like Kafka's: followers fetch from the leader with
//! their broker id as `replica_id`; the leader's high watermark is the
//! smallest log end offset among the maximal ISR (the ISR of its view plus
//! the followers it asked to add) and acks=all answers
//! only once it passed the produce; a follower of a new leader epoch first
//! truncates to the epoch boundary the leader gives (OffsetForLeaderEpoch).
//! Logs live in memory with a CRC-32C check of every batch: see [`log`].
//!
//! ISR growth is by request, as Kafka's AlterPartition (KIP-497): the
//! agent is started with `isr_expansion_by_request`, so the controller adds
//! a follower to an ISR this broker leads only when it asks. The leader asks
//! (`Agent::request_isr_expansion`) once a follower's fetch offset reached
//! its high watermark and the start of its leader epoch, and counts that
//! follower in the high watermark from that moment until a newer partition
//! epoch answers: no acks=all write is acknowledged without a replica the
//! controller may already have put in the ISR. See [`replica`] and
//! `docs/SAFETY.md` ("ISR growth and acks=all").
//!
//! What it lacks: consumer groups and committed offsets, transactions,
//! idempotent producers (a retried produce may be written twice),
//! `min.insync.replicas`, persistence (logs are in memory: a restarted
//! broker comes back empty, outside every ISR, and catches up like a new
//! replica; losing every replica at once loses the data), retention beyond
//! the per-partition memory bound.
//!
//! Modules: `batch` (record batches as checked bytes), `log` (the
//! partition log and its epoch cache), `replica` (roles, high watermark),
//! `server` (connections and dispatch), `handlers` (one per API),
//! `follower` (replica fetchers and the reaction to leadership events),
//! `client` (the follower's Kafka connection), `wire` (framing).

pub mod batch;
pub mod client;
mod follower;
mod handlers;
pub mod log;
pub mod replica;
mod server;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use baton_agent::{Agent, AgentConfig};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::replica::Replicas;

/// Default bound on one partition's in-memory log.
pub const DEFAULT_MAX_LOG_BYTES: usize = 256 << 20;

/// What the broker needs to know.
#[derive(Clone, Debug)]
pub struct BrokerConfig {
    pub broker_id: i32,
    /// Controller addresses, `host:port`.
    pub controllers: Vec<String>,
    /// `host:port` Kafka clients and followers reach this broker at; it is
    /// registered with the controllers, so Metadata and NOT_LEADER hints
    /// name it.
    pub advertised: String,
    pub rack: String,
    pub max_log_bytes: usize,
    /// The longest a follower's fetch waits at the leader for new data.
    pub replica_fetch_wait: Duration,
    pub heartbeat_interval: Option<Duration>,
}

impl BrokerConfig {
    pub fn new(broker_id: i32, controllers: Vec<String>, advertised: impl Into<String>) -> Self {
        Self {
            broker_id,
            controllers,
            advertised: advertised.into(),
            rack: String::new(),
            max_log_bytes: DEFAULT_MAX_LOG_BYTES,
            replica_fetch_wait: Duration::from_millis(500),
            heartbeat_interval: None,
        }
    }
}

/// State every connection and task shares.
pub(crate) struct Broker {
    pub(crate) config: BrokerConfig,
    pub(crate) agent: Agent,
    pub(crate) replicas: Replicas,
}

/// Runs the broker on `listener` (already bound to the advertised address's
/// port) until `shutdown` turns true; then shuts the agent down cleanly.
pub async fn run(config: BrokerConfig, listener: TcpListener, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let mut agent_config = AgentConfig::new(config.broker_id, config.controllers.clone(), config.advertised.clone());
    agent_config.rack = config.rack.clone();
    // The high watermark counts the followers this broker asked to add
    // (replica.rs): the controller may grow its ISRs only on request.
    agent_config.isr_expansion_by_request = true;
    if let Some(interval) = config.heartbeat_interval {
        agent_config.heartbeat_interval = interval;
    }
    agent_config.validate().context("agent configuration")?;
    let agent = Agent::start(agent_config);
    serve(config, agent.clone(), listener, shutdown).await?;
    agent.shutdown().await;
    Ok(())
}

/// Serves Kafka clients with an agent the caller started (tests pass one
/// fed by hand, `baton_agent::testing`), until `shutdown` turns true.
pub async fn serve(
    config: BrokerConfig,
    agent: Agent,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let broker = Arc::new(Broker { replicas: Replicas::new(config.max_log_bytes), config, agent });
    tracing::info!(
        broker_id = broker.config.broker_id,
        listen = %listener.local_addr().context("listener address")?,
        advertised = %broker.config.advertised,
        "reference broker started"
    );
    let followers = tokio::spawn(follower::run(Arc::clone(&broker), shutdown.clone()));
    let result = tokio::select! {
        r = server::serve(Arc::clone(&broker), listener) => r.context("serving Kafka clients"),
        _ = shutdown.wait_for(|s| *s) => Ok(()),
    };
    followers.abort();
    result
}
