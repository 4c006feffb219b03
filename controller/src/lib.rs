//! The Baton controller daemon: a raft-replicated quorum that owns partition
//! assignments, in-sync replica sets and leader election for Kafka-style
//! brokers. `main` parses configuration and calls [`run`]; tests call it too.
//!
//! Module map (see ARCHITECTURE.md): [`raft`] (the driver task that owns
//! `RawNode`, and the peer transport), [`storage`] (the durable log),
//! [`metadata`] (the applied state machine shared with readers), [`liveness`]
//! and [`active`] (what only the active controller decides), [`service`] (the
//! gRPC services). The state machine itself is the `baton-state-machine` crate.

pub mod active;
pub mod config;
pub mod liveness;
pub mod metadata;
pub mod metrics;
pub mod raft;
pub mod service;
pub mod storage;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use baton_proto::v1::broker_session_server::BrokerSessionServer;
use baton_proto::v1::controller_server::ControllerServer;
use baton_proto::v1::raft_server::RaftServer;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{error, info};

pub use config::ControllerConfig;

use crate::liveness::Liveness;
use crate::metadata::Metadata;
use crate::raft::driver::{Driver, restore_state};
use crate::raft::transport::{RaftService, Transport};
use crate::raft::{DRIVER_QUEUE, Members, PeerContact, QuorumContact, RaftHandle, RaftStatus};
use crate::service::controller::ControllerService;
use crate::service::forward::Forwarder;
use crate::service::session::BrokerSessionService;
use crate::storage::RaftStorage;

/// What every service and background task of one controller shares.
pub struct Shared {
    pub raft: RaftHandle,
    pub liveness: Arc<Liveness>,
    pub forwarder: Forwarder,
    pub config: ControllerConfig,
    pub metrics: metrics::Metrics,
}

impl Shared {
    /// Proposes through raft and records the commit latency.
    pub async fn propose(&self, command: &baton_state_machine::Command) -> Result<raft::Proposed, raft::ProposeError> {
        let started = std::time::Instant::now();
        let result = self.raft.propose(command).await;
        if result.is_ok() {
            self.metrics.observe_commit(started.elapsed());
        }
        result
    }
}

/// Runs a controller on `listener` until `shutdown` completes or the raft
/// driver fails (a storage error: the node must stop taking part).
pub async fn run(
    config: ControllerConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    config.validate()?;
    let tls = baton_security::Tls::from_config(&config.tls, "controller")?;
    if let Some(tls) = &tls {
        let me = baton_security::Principal::Controller(config.id);
        anyhow::ensure!(
            tls.principal() == me,
            "tls.cert_file names {} but this is {me}: each controller needs its own certificate",
            tls.principal()
        );
    }
    let peers = config.peer_map()?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    let storage = RaftStorage::open(&config.data_dir).context("opening raft storage")?;
    if storage.is_empty() && config.joins() {
        info!(id = config.id, "empty log: joining an existing quorum; waiting for a snapshot from its leader");
    } else if storage.is_empty() {
        let cs = ::raft::prelude::ConfState { voters: peers.keys().copied().collect(), ..Default::default() };
        storage.initialize(&cs).context("initialising raft storage")?;
        info!(voters = ?cs.voters, "initialised a new raft log");
    }
    let members = Arc::new(Members::new(peers));
    let contact = Arc::new(PeerContact::default());
    let state = restore_state(&storage)?;
    info!(id = config.id, applied = state.applied_index(), "restored state machine");
    let metadata = Arc::new(Metadata::new(state, config.limits.change_log_entries));

    let (driver_tx, driver_rx) = mpsc::channel(DRIVER_QUEUE);
    let (status_tx, status_rx) = watch::channel(RaftStatus { id: config.id, ..Default::default() });
    let handle = RaftHandle::new(
        driver_tx.clone(),
        status_rx,
        metadata.clone(),
        members.clone(),
        contact.clone(),
        Duration::from_millis(config.raft.proposal_timeout_ms),
    );
    let transport = Transport::new(config.id, driver_tx, config.limits.max_message_bytes, tls.clone());
    let quorum_contact = Arc::new(QuorumContact::default());
    let driver = Driver::new(
        config.id,
        config.raft.clone(),
        storage,
        metadata,
        driver_rx,
        transport,
        status_tx,
        quorum_contact.clone(),
        members,
        contact,
    )?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let (driver_done_tx, driver_done_rx) = oneshot::channel();
    let driver_stop = stop_rx.clone();
    // The driver does blocking fsyncs: it gets a thread of its own so it never
    // stalls the runtime that serves gRPC.
    std::thread::Builder::new()
        .name(format!("raft-driver-{}", config.id))
        .spawn(move || {
            let result = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("building the driver runtime")
                .and_then(|rt| rt.block_on(driver.run(driver_stop)));
            let _ = driver_done_tx.send(result);
        })
        .context("spawning the raft driver thread")?;

    let shared = Arc::new(Shared {
        raft: handle.clone(),
        liveness: Arc::new(Liveness::new(config.liveness.clone()).with_quorum_contact(
            quorum_contact,
            // A grant needs quorum contact younger than one election timeout
            // less two ticks (a follower's timer may fire a tick early).
            config.election_timeout().saturating_sub(Duration::from_millis(2 * config.raft.tick_ms)),
        )),
        forwarder: Forwarder::new(config.limits.max_message_bytes, tls.clone()),
        config: config.clone(),
        metrics: metrics::Metrics::default(),
    });
    tokio::spawn(active::run(shared.clone(), stop_rx.clone()));
    tokio::spawn(metrics::watch_raft(shared.clone(), stop_rx.clone()));
    if let Some(addr) = config.metrics_listen {
        let (shared, stop) = (shared.clone(), stop_rx.clone());
        tokio::spawn(async move {
            if let Err(e) = metrics::serve(shared, addr, stop).await {
                error!(error = %format!("{e:#}"), %addr, "metrics endpoint failed");
            }
        });
    }

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter.set_serving::<ControllerServer<ControllerService>>().await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(baton_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .context("building the reflection service")?;

    // Per-service bounds on what a peer may make us decode: raft needs room
    // for append batches, sessions for progress reports, the public API little.
    let limits = &config.limits;
    let max = limits.max_message_bytes;
    let controller = ControllerServer::new(ControllerService::new(shared.clone()))
        .max_decoding_message_size(limits.max_request_bytes)
        .max_encoding_message_size(max);
    let sessions = BrokerSessionServer::new(BrokerSessionService::new(shared.clone()))
        .max_decoding_message_size(limits.max_session_message_bytes)
        .max_encoding_message_size(max);
    let raft_service =
        RaftServer::new(RaftService::new(handle)).max_decoding_message_size(max).max_encoding_message_size(max);

    let local = listener.local_addr().ok();
    info!(id = config.id, listen = ?local, "controller serving");
    let (serve_stop_tx, serve_stop_rx) = oneshot::channel::<()>();
    let policy = service::auth::Policy {
        enforce: tls.is_some(),
        open_reads: config.auth.open_reads,
        request_timeout: Duration::from_millis(limits.request_timeout_ms),
        max_inflight: limits.max_inflight_requests,
    };
    let accept_limits = baton_security::server::AcceptLimits {
        max_connections: limits.max_connections,
        handshake_timeout: Duration::from_millis(limits.handshake_timeout_ms),
    };
    let incoming = baton_security::server::incoming(listener, tls, accept_limits, shared.metrics.accept.clone());
    let server = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(5)))
        .http2_keepalive_timeout(Some(Duration::from_secs(5)))
        .max_concurrent_streams(limits.max_concurrent_streams)
        // HTTP/2 rapid-reset and error-reset floods: a connection that
        // provokes more than this many resets is closed (CVE-2023-44487).
        .http2_max_pending_accept_reset_streams(Some(64))
        .http2_max_local_error_reset_streams(Some(256))
        .max_frame_size(Some(1 << 16))
        .http2_max_header_list_size(Some(64 << 10))
        .layer(service::auth::AuthLayer::new(policy))
        .add_service(health_service)
        .add_service(reflection)
        .add_service(controller)
        .add_service(sessions)
        .add_service(raft_service)
        // The accept loop sets TCP_NODELAY (builder options do not apply to
        // an incoming stream), bounds connections and does the TLS handshake.
        .serve_with_incoming_shutdown(incoming, async {
            let _ = serve_stop_rx.await;
        });
    let server = tokio::spawn(server);

    let result = tokio::select! {
        _ = shutdown => {
            info!("shutting down");
            Ok(())
        }
        done = driver_done_rx => match done {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                error!(error = %format!("{e:#}"), "raft driver failed; stopping");
                Err(e)
            }
            Err(_) => Err(anyhow::anyhow!("raft driver thread ended unexpectedly")),
        },
    };
    let _ = stop_tx.send(true);
    let _ = serve_stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
    result
}
