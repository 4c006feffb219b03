//! Session-loop tests against an in-process fake controller on port 0:
//! registration, the first heartbeat, lease grants from acks, updates
//! enforced by the checks, leader-hint redirects and the clean shutdown.
//! Every wait is on a condition with a generous limit.

use std::sync::Arc;
use std::time::Duration;

use baton_agent::{Agent, AgentConfig, RefusalReason};
use baton_proto::v1::broker_session_server::{BrokerSession, BrokerSessionServer};
use baton_proto::v1::{
    Heartbeat, HeartbeatAck, LeadershipUpdate, PartitionInfo, RegisterBrokerRequest, RegisterBrokerResponse,
    SessionRequest, SessionResponse, session_request, session_response,
};
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};

const LIMIT: Duration = Duration::from_secs(20);

#[derive(Clone, Default)]
struct Fake {
    /// When set, Session is refused with UNAVAILABLE and this leader hint.
    redirect_to: Option<String>,
    heartbeats: Arc<Mutex<Vec<Heartbeat>>>,
    /// Deltas sent right after the full view, one version each (a burst).
    burst: u64,
    /// Granted in every ack; `None`: 2 s.
    lease_ms: Option<u32>,
}

fn full_view() -> LeadershipUpdate {
    LeadershipUpdate {
        metadata_version: 10,
        full: true,
        partitions: vec![PartitionInfo {
            topic_id: 0,
            topic: "t".into(),
            partition: 0,
            leader: 1,
            leader_epoch: 4,
            partition_epoch: 4,
            replicas: vec![1, 2],
            isr: vec![1, 2],
            leader_endpoint: "127.0.0.1:9092".into(),
        }],
        deleted_topics: vec![],
        brokers: vec![],
        partial: false,
    }
}

#[tonic::async_trait]
impl BrokerSession for Fake {
    async fn register_broker(
        &self,
        request: Request<RegisterBrokerRequest>,
    ) -> Result<Response<RegisterBrokerResponse>, Status> {
        assert_eq!(request.get_ref().broker_id, 1);
        Ok(Response::new(RegisterBrokerResponse { broker_epoch: 7, metadata_version: 10 }))
    }

    type SessionStream = ReceiverStream<Result<SessionResponse, Status>>;

    async fn session(
        &self,
        request: Request<Streaming<SessionRequest>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        if let Some(leader) = &self.redirect_to {
            let mut status = Status::unavailable("not the active controller");
            status.metadata_mut().insert(baton_proto::LEADER_METADATA_KEY, leader.parse().expect("ascii"));
            return Err(status);
        }
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(16);
        let heartbeats = Arc::clone(&self.heartbeats);
        let (burst, lease_ms) = (self.burst, self.lease_ms.unwrap_or(2_000));
        tokio::spawn(async move {
            let mut sent_view = false;
            while let Ok(Some(SessionRequest { kind: Some(session_request::Kind::Heartbeat(hb)) })) =
                inbound.message().await
            {
                let seq = hb.seq;
                let first_version = hb.metadata_version;
                heartbeats.lock().push(hb);
                if !sent_view {
                    sent_view = true;
                    assert_eq!(first_version, 0, "first heartbeat carries the agent's version");
                    let update = SessionResponse { kind: Some(session_response::Kind::Update(full_view())) };
                    if tx.send(Ok(update)).await.is_err() {
                        return;
                    }
                    for version in 11..11 + burst {
                        let delta = LeadershipUpdate { metadata_version: version, ..LeadershipUpdate::default() };
                        let update = SessionResponse { kind: Some(session_response::Kind::Update(delta)) };
                        if tx.send(Ok(update)).await.is_err() {
                            return;
                        }
                    }
                }
                let ack = HeartbeatAck { seq, lease_ms, metadata_version: 10, drained: false, controller_id: 0 };
                if tx.send(Ok(SessionResponse { kind: Some(session_response::Kind::Ack(ack)) })).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

async fn spawn_fake(fake: Fake) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("addr").to_string();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(BrokerSessionServer::new(fake))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    address
}

fn config(controllers: Vec<String>) -> AgentConfig {
    let mut config = AgentConfig::new(1, controllers, "127.0.0.1:9092");
    config.heartbeat_interval = Duration::from_millis(50);
    config.rpc_timeout = Duration::from_millis(500);
    config.tls.plaintext = true;
    config
}

async fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let start = tokio::time::Instant::now();
    while !cond() {
        assert!(start.elapsed() < LIMIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Property: a registered agent with a granted lease allows produce for the
/// partitions it leads, and a clean shutdown suspends before telling the
/// controller (checks refuse afterwards).
#[tokio::test]
async fn registers_leases_enforces_and_shuts_down_cleanly() {
    let fake = Fake::default();
    let heartbeats = Arc::clone(&fake.heartbeats);
    let address = spawn_fake(fake).await;
    let agent = Agent::start(config(vec![address.clone()]));
    assert_eq!(agent.wait_registered(LIMIT).await.expect("registered"), 7);
    wait_for("a leased leadership", || agent.check_produce("t", 0) == Ok(4)).await;
    let status = agent.status();
    assert!(status.connected);
    assert_eq!(status.broker_epoch, 7);
    assert_eq!(status.metadata_version, 10);
    assert_eq!(status.partitions_led, 1);
    assert_eq!(status.controller.as_deref(), Some(address.as_str()));

    agent.record_produce("t", 0, 123);
    wait_for("progress in a heartbeat", || {
        heartbeats.lock().iter().any(|h| h.progress.iter().any(|p| p.log_end_offset == 123))
    })
    .await;
    assert!(heartbeats.lock().iter().all(|h| h.broker_epoch == 7 && h.broker_id == 1));

    agent.shutdown().await;
    assert!(heartbeats.lock().iter().any(|h| h.shutting_down), "shutdown heartbeat sent");
    let refusal = agent.check_produce("t", 0).expect_err("refused after shutdown");
    assert_eq!(refusal.reason, RefusalReason::LeaseExpired);
    assert!(!agent.status().connected);
}

/// Property: an UNAVAILABLE status with a `baton-leader` hint moves the
/// session to the named controller.
#[tokio::test]
async fn follows_leader_hint() {
    let leader = spawn_fake(Fake::default()).await;
    let follower = spawn_fake(Fake { redirect_to: Some(format!("2={leader}")), ..Fake::default() }).await;
    let agent = Agent::start(config(vec![follower]));
    wait_for("a leased leadership via the hinted leader", || agent.check_produce("t", 0).is_ok()).await;
    let status = agent.status();
    assert_eq!(status.controller.as_deref(), Some(leader.as_str()));
    assert_eq!(status.controller_id, 2);
    agent.shutdown().await;
}

/// Property: with no reachable controller the agent never allows produce and
/// keeps retrying (bounded backoff) until shut down.
#[tokio::test]
async fn unreachable_controllers_fail_closed() {
    let agent = Agent::start(config(vec!["127.0.0.1:1".into(), "127.0.0.1:2".into()]));
    assert!(agent.wait_registered(Duration::from_millis(300)).await.is_err());
    assert_eq!(agent.check_produce("t", 0).expect_err("refused").reason, RefusalReason::UnknownTopicOrPartition);
    tokio::time::timeout(LIMIT, agent.shutdown()).await.expect("shutdown is bounded");
}

/// Property: a burst of updates while no lease is held (each would ask for
/// an early heartbeat) costs a bounded number of heartbeats, one per
/// MIN_EARLY_HEARTBEAT_GAP at most, not one per update: the controller
/// closes a session that heartbeats faster than its per-session bound.
#[tokio::test]
async fn a_burst_of_updates_without_a_lease_sends_few_early_heartbeats() {
    let fake = Fake { burst: 300, lease_ms: Some(0), ..Fake::default() };
    let heartbeats = Arc::clone(&fake.heartbeats);
    let address = spawn_fake(fake).await;
    let mut cfg = config(vec![address]);
    cfg.heartbeat_interval = Duration::from_secs(5);
    let started = tokio::time::Instant::now();
    let agent = Agent::start(cfg);
    // The owed early heartbeat reports the whole burst.
    wait_for("a heartbeat reporting the burst", || heartbeats.lock().last().is_some_and(|h| h.metadata_version == 310))
        .await;
    let elapsed = started.elapsed();
    let sent = heartbeats.lock().len() as u128;
    let bound = 2 + elapsed.as_millis() / baton_agent::MIN_EARLY_HEARTBEAT_GAP.as_millis();
    assert!(sent <= bound, "{sent} heartbeats for 300 updates in {elapsed:?} (bound {bound})");
    agent.shutdown().await;
}
