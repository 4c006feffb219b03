//! The sidecar: the `baton.v1.Agent` gRPC service (plus grpc.health.v1) over
//! the same library, for brokers written in any language.
//!
//! Fail closed: Check answers from the lease as it stands at the instant of
//! the call; once the agent shuts down every produce check refuses.

use std::future::Future;
use std::pin::Pin;

use anyhow::Context;
use baton_proto::v1::agent_server::{self, AgentServer};
use baton_proto::v1::{
    AgentStatusRequest, AgentStatusResponse, CheckKind, CheckRequest, CheckResponse, LeadershipChange, ProgressReport,
    RecordProgressAck, RefusalReason as WireRefusal, WatchEvent, WatchRequest,
};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{broadcast, mpsc, watch};
use tokio_stream::wrappers::{ReceiverStream, UnixListenerStream};
use tonic::{Request, Response, Status, Streaming};

use crate::agent::Agent;
use crate::checks::{NotLeader, RefusalReason};
use crate::config::SidecarConfig;
use crate::events::{LeadershipEvent, PartitionView};
use crate::session::stop_requested;

/// Watch events buffered per watcher; a watcher that falls further behind
/// than this plus the agent's event channel is ended with DATA_LOSS and must
/// call Watch again (it gets a fresh view).
pub const WATCH_CHANNEL_CAPACITY: usize = 64;
/// Longest topic name accepted in RecordProgress (Kafka's limit).
pub const MAX_TOPIC_LEN: usize = 249;

/// Where the sidecar listens.
pub enum SidecarListener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl SidecarListener {
    /// Binds `host:port`, or `unix:/path` (a stale socket file is replaced).
    pub async fn bind(listen: &str) -> anyhow::Result<Self> {
        if let Some(path) = listen.strip_prefix("unix:") {
            // A leftover socket from a previous run would make bind fail.
            if std::fs::metadata(path).is_ok() {
                std::fs::remove_file(path).with_context(|| format!("removing stale socket {path}"))?;
            }
            let listener = UnixListener::bind(path).with_context(|| format!("binding unix socket {path}"))?;
            Ok(Self::Unix(listener))
        } else {
            let listener = TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
            Ok(Self::Tcp(listener))
        }
    }

    /// The bound address, for logs and tests.
    pub fn local_addr(&self) -> String {
        match self {
            Self::Tcp(l) => l.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            Self::Unix(l) => l
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(|p| format!("unix:{}", p.display())))
                .unwrap_or_default(),
        }
    }
}

/// Runs the sidecar until `shutdown` resolves, then shuts the agent down
/// (suspend, `shutting_down` heartbeat) and stops serving.
pub async fn run(
    config: SidecarConfig,
    listener: SidecarListener,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let agent = Agent::start(config.agent.clone());
    let (metrics_stop, metrics_stopped) = watch::channel(false);
    if let Some(addr) = &config.metrics_listen {
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("binding the metrics listener {addr}: {e}"))?;
        let mut stop = metrics_stopped;
        tokio::spawn(crate::metrics::serve(agent.clone(), l, async move {
            let _ = stop.wait_for(|s| *s).await;
        }));
    }
    let result = serve(agent.clone(), listener, shutdown).await;
    let _ = metrics_stop.send(true);
    agent.shutdown().await;
    result
}

/// Serves `agent` on `listener` until `shutdown` resolves. Does not stop the agent.
pub async fn serve(
    agent: Agent,
    listener: SidecarListener,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<AgentServer<AgentService>>().await;
    let service = AgentService { agent: agent.clone(), stop: stop_rx.clone() };
    tracing::info!(listen = %listener.local_addr(), "sidecar serving");

    let mut server_stop = stop_rx.clone();
    let stopped = async move {
        let _ = server_stop.wait_for(|s| *s).await;
    };
    // Over TCP the local API takes the agent's mTLS configuration: only this
    // broker's own identity (the broker process beside it) or an admin may
    // call it. A unix socket is guarded by file permissions instead.
    let tls = match (&listener, agent.shared().config.tls.files()) {
        (SidecarListener::Tcp(_), Ok(Some(_))) => {
            baton_security::Tls::from_config(&agent.shared().config.tls, "sidecar")?
        }
        _ => None,
    };
    let me = baton_security::Principal::Broker(agent.shared().config.broker_id);
    let enforce = tls.is_some();
    let guarded = AgentServer::with_interceptor(service, move |request: tonic::Request<()>| {
        if !enforce {
            return Ok(request);
        }
        match request.extensions().get::<baton_security::Peer>().and_then(|p| p.principal.as_ref()) {
            Some(p) if *p == me || matches!(p, baton_security::Principal::Admin(_)) => Ok(request),
            Some(p) => Err(tonic::Status::permission_denied(format!("{p} may not use the local API of {me}"))),
            None => Err(tonic::Status::permission_denied("no verified identity")),
        }
    });
    let router = tonic::transport::Server::builder().add_service(health_service).add_service(guarded);
    let server: Pin<Box<dyn Future<Output = Result<(), tonic::transport::Error>> + Send>> = match listener {
        SidecarListener::Tcp(l) if tls.is_some() => {
            let incoming = baton_security::server::incoming(l, tls, Default::default(), Default::default());
            Box::pin(router.serve_with_incoming_shutdown(incoming, stopped))
        }
        SidecarListener::Tcp(l) => Box::pin(router.serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(l).with_nodelay(Some(true)),
            stopped,
        )),
        SidecarListener::Unix(l) => Box::pin(router.serve_with_incoming_shutdown(UnixListenerStream::new(l), stopped)),
    };
    let server = tokio::spawn(server);
    shutdown.await;
    tracing::info!("sidecar shutting down");
    health.set_not_serving::<AgentServer<AgentService>>().await;
    // Fail closed before the last answers: suspend the agent, then end Watch
    // streams and stop serving.
    agent.shutdown().await;
    stop_tx.send_replace(true);
    match server.await {
        Ok(result) => result.context("serving the agent API"),
        Err(join) => Err(anyhow::anyhow!("server task failed: {join}")),
    }
}

/// `baton.v1.Agent` over an [`Agent`].
pub struct AgentService {
    agent: Agent,
    stop: watch::Receiver<bool>,
}

impl AgentService {
    pub fn new(agent: Agent) -> Self {
        Self { agent, stop: watch::channel(false).1 }
    }
}

fn wire_reason(reason: RefusalReason) -> WireRefusal {
    match reason {
        RefusalReason::NotLeader => WireRefusal::NotLeader,
        RefusalReason::LeaseExpired => WireRefusal::LeaseExpired,
        RefusalReason::UnknownTopicOrPartition => WireRefusal::UnknownTopicOrPartition,
        RefusalReason::FencedLeaderEpoch => WireRefusal::FencedLeaderEpoch,
        RefusalReason::UnknownLeaderEpoch => WireRefusal::UnknownLeaderEpoch,
    }
}

/// Maps a check result to the wire answer.
pub(crate) fn check_response(result: Result<i32, NotLeader>, view: Option<&PartitionView>) -> CheckResponse {
    match result {
        Ok(leader_epoch) => CheckResponse {
            allowed: true,
            leader_epoch,
            error_code: 0,
            reason: WireRefusal::Unspecified as i32,
            leader_id: view.map_or(-1, |v| v.leader),
            leader_endpoint: view.map(|v| v.leader_endpoint.to_string()).unwrap_or_default(),
        },
        Err(refusal) => {
            let (leader_id, leader_endpoint) =
                refusal.leader.as_ref().map_or((-1, String::new()), |(id, ep)| (*id, ep.to_string()));
            CheckResponse {
                allowed: false,
                leader_epoch: refusal.leader_epoch,
                error_code: i32::from(refusal.kafka_error_code()),
                reason: wire_reason(refusal.reason) as i32,
                leader_id,
                leader_endpoint,
            }
        }
    }
}

fn change_of(view: &PartitionView) -> LeadershipChange {
    LeadershipChange {
        topic: view.topic.to_string(),
        partition: view.partition,
        leader: view.leader,
        leader_epoch: view.leader_epoch,
        leader_endpoint: view.leader_endpoint.to_string(),
        is_leader: view.is_leader,
        is_replica: view.is_replica,
    }
}

fn lease_ms(agent: &Agent) -> u64 {
    u64::try_from(agent.lease_remaining().as_millis()).unwrap_or(u64::MAX)
}

/// The first Watch event: the whole current view.
pub(crate) fn view_event(agent: &Agent) -> WatchEvent {
    let metadata_version = agent.metadata_version();
    WatchEvent {
        metadata_version,
        lease_remaining_ms: lease_ms(agent),
        changes: agent.view().iter().map(change_of).collect(),
        deleted_topics: Vec::new(),
    }
}

pub(crate) fn update_event(agent: &Agent, event: &LeadershipEvent) -> WatchEvent {
    WatchEvent {
        metadata_version: event.metadata_version,
        lease_remaining_ms: lease_ms(agent),
        // A removed partition is reported through deleted_topics when its
        // whole topic went; otherwise as a change with no leader.
        changes: event
            .changes
            .iter()
            .filter(|c| !(c.kind == crate::ChangeKind::Removed && event.deleted_topics.contains(&c.view.topic)))
            .map(|c| {
                let mut change = change_of(&c.view);
                if c.kind == crate::ChangeKind::Removed {
                    change.leader = -1;
                    change.leader_endpoint.clear();
                    change.is_leader = false;
                    change.is_replica = false;
                }
                change
            })
            .collect(),
        deleted_topics: event.deleted_topics.iter().map(|t| t.to_string()).collect(),
    }
}

#[tonic::async_trait]
impl agent_server::Agent for AgentService {
    async fn check(&self, request: Request<CheckRequest>) -> Result<Response<CheckResponse>, Status> {
        let request = request.into_inner();
        let kind = CheckKind::try_from(request.kind)
            .map_err(|_| Status::invalid_argument(format!("unknown check kind {}", request.kind)))?;
        // Decided here, from the lease at this instant.
        let result = match kind {
            CheckKind::Produce => self.agent.check_produce(&request.topic, request.partition),
            CheckKind::Fetch => self.agent.check_fetch(&request.topic, request.partition, request.leader_epoch),
        };
        let view = if result.is_ok() { self.agent.partition(&request.topic, request.partition) } else { None };
        Ok(Response::new(check_response(result, view.as_ref())))
    }

    async fn record_progress(
        &self,
        request: Request<Streaming<ProgressReport>>,
    ) -> Result<Response<RecordProgressAck>, Status> {
        let mut reports = request.into_inner();
        let mut accepted = 0u64;
        while let Some(report) = reports.message().await? {
            if report.topic.is_empty() || report.topic.len() > MAX_TOPIC_LEN || report.partition < 0 {
                continue;
            }
            self.agent.record_replica_progress(&report.topic, report.partition, report.log_end_offset);
            accepted += 1;
        }
        Ok(Response::new(RecordProgressAck { accepted }))
    }

    type WatchStream = ReceiverStream<Result<WatchEvent, Status>>;

    async fn watch(&self, _request: Request<WatchRequest>) -> Result<Response<Self::WatchStream>, Status> {
        // Subscribe before reading the view so no update falls in between.
        let mut events = self.agent.subscribe();
        let mut lease = self.agent.lease_changes();
        lease.mark_unchanged();
        let mut stop = self.stop.clone();
        let agent = self.agent.clone();
        let (tx, rx) = mpsc::channel(WATCH_CHANNEL_CAPACITY);
        tokio::spawn(async move {
            let first = view_event(&agent);
            let base_version = first.metadata_version;
            if tx.send(Ok(first)).await.is_err() {
                return;
            }
            loop {
                let event = tokio::select! {
                    _ = stop_requested(&mut stop) => return,
                    _ = tx.closed() => return,
                    received = events.recv() => match received {
                        Ok(event) if !event.full && event.metadata_version <= base_version => continue,
                        Ok(event) => update_event(&agent, &event),
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            let _ = tx.send(Err(Status::data_loss(format!(
                                "watch fell {n} updates behind; call Watch again for a fresh view"
                            )))).await;
                            return;
                        }
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                    changed = lease.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        // A lease-only event: fresh deadline, no changes.
                        WatchEvent {
                            metadata_version: agent.metadata_version(),
                            lease_remaining_ms: lease_ms(&agent),
                            changes: Vec::new(),
                            deleted_topics: Vec::new(),
                        }
                    }
                };
                if tx.send(Ok(event)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn status(&self, _request: Request<AgentStatusRequest>) -> Result<Response<AgentStatusResponse>, Status> {
        let status = self.agent.status();
        Ok(Response::new(AgentStatusResponse {
            broker_id: status.broker_id,
            broker_epoch: status.broker_epoch,
            metadata_version: status.metadata_version,
            lease_remaining_ms: u64::try_from(status.lease_remaining.as_millis()).unwrap_or(u64::MAX),
            connected: status.connected,
            controller_id: status.controller_id,
            partitions_led: status.partitions_led,
        }))
    }
}

/// Resolves on SIGTERM or ctrl-c.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
