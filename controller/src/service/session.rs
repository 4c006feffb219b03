//! `baton.v1.BrokerSession`: broker registration and the session stream
//! (heartbeats in, lease grants and leadership updates out). Sessions are
//! held with the ACTIVE controller only; see broker_session.proto.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use baton_proto::v1 as pb;
use baton_proto::v1::ErrorCode;
use baton_proto::v1::broker_session_server::BrokerSession;
use baton_proto::v1::session_request::Kind as RequestKind;
use baton_proto::v1::session_response::Kind as ResponseKind;
use baton_security::Peer;
use baton_state_machine::{BrokerState, Command, FenceReason, Outcome, StateError};
use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status, Streaming};
use tracing::{debug, info, warn};

use super::convert::{self, UpdateCursor};
use super::forward::Route;
use super::{auth, invalid, not_leader, propose_error, state_error, typed_status};
use crate::{Shared, active};

/// Bound on messages queued toward one agent.
const SESSION_QUEUE: usize = 64;
/// Bound on partitions per update message (about 1 MiB on the wire).
const MAX_PARTITIONS_PER_MESSAGE: usize = 10_000;
/// How long a new session may take to send its first heartbeat.
const FIRST_MESSAGE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Bounds on registration fields.
const MAX_ID_LEN: usize = 256;

pub struct BrokerSessionService {
    shared: Arc<Shared>,
}

impl BrokerSessionService {
    pub fn new(shared: Arc<Shared>) -> BrokerSessionService {
        BrokerSessionService { shared }
    }
}

type SessionStream = Pin<Box<dyn Stream<Item = Result<pb::SessionResponse, Status>> + Send>>;

#[tonic::async_trait]
impl BrokerSession for BrokerSessionService {
    async fn register_broker(
        &self,
        request: Request<pb::RegisterBrokerRequest>,
    ) -> Result<Response<pb::RegisterBrokerResponse>, Status> {
        auth::authorize_broker(request.extensions().get::<Peer>(), request.get_ref().broker_id)?;
        if let Route::Leader(addr) = self.shared.forwarder.route(&self.shared.raft, &request)? {
            let inner = request.into_inner();
            return self
                .shared
                .forwarder
                .broker_session(&addr, inner, |mut c, r| async move { c.register_broker(r).await })
                .await;
        }
        let req = request.into_inner();
        if req.incarnation_id.is_empty() || req.incarnation_id.len() > MAX_ID_LEN {
            return Err(invalid("incarnation_id must be 1..=256 bytes"));
        }
        if req.endpoint.len() > MAX_ID_LEN || req.rack.len() > MAX_ID_LEN {
            return Err(invalid("endpoint and rack must be at most 256 bytes"));
        }
        let command = Command::RegisterBroker {
            broker_id: req.broker_id,
            incarnation_id: req.incarnation_id,
            endpoint: req.endpoint,
            rack: req.rack,
        };
        let handle = &self.shared.raft;
        let proposed = self.shared.propose(&command).await.map_err(|e| propose_error(e, handle))?;
        match proposed.outcome {
            Ok(Outcome::BrokerRegistered { broker_epoch }) => {
                info!(broker = req.broker_id, broker_epoch, "broker registered");
                Ok(Response::new(pb::RegisterBrokerResponse { broker_epoch, metadata_version: proposed.index }))
            }
            Ok(other) => Err(Status::internal(format!("unexpected outcome {other:?}"))),
            Err(e) => Err(state_error(&e)),
        }
    }

    type SessionStream = SessionStream;

    async fn session(
        &self,
        request: Request<Streaming<pb::SessionRequest>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let shared = self.shared.clone();
        // Liveness, not raft status, decides: it is reset when leadership
        // starts, and a session opened before that reset would be forgotten.
        if !shared.raft.status().leader_ready || !shared.liveness.is_leader() {
            return Err(not_leader(&shared.raft));
        }
        let peer = request.extensions().get::<Peer>().cloned();
        let mut inbound = request.into_inner();
        let first = match tokio::time::timeout(FIRST_MESSAGE_TIMEOUT, inbound.message()).await {
            Ok(Ok(Some(pb::SessionRequest { kind: Some(RequestKind::Heartbeat(h)) }))) => h,
            Ok(Err(status)) => return Err(status),
            Ok(_) => return Err(invalid("a session must open with a heartbeat")),
            Err(_) => return Err(invalid("no heartbeat within 10 s of opening the session")),
        };
        auth::authorize_broker(peer.as_ref(), first.broker_id)?;
        check_broker(&shared, &first)?;
        let session = shared.liveness.open_session(first.broker_id, first.broker_epoch, Instant::now());
        debug!(broker = first.broker_id, epoch = first.broker_epoch, session, "session opened");
        let (tx, rx) = mpsc::channel(SESSION_QUEUE);
        tokio::spawn(run_session(shared, first, inbound, tx, session));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// A token bucket: `rate` tokens a second, holding at most `rate`.
struct RateBucket {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl RateBucket {
    fn new(rate: u32, now: Instant) -> RateBucket {
        let rate = f64::from(rate.max(1));
        RateBucket { rate, tokens: rate, at: now }
    }

    fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The heartbeat's broker must exist with exactly this epoch and not be fenced.
fn check_broker(shared: &Shared, h: &pb::Heartbeat) -> Result<(), Status> {
    shared.raft.metadata().read(|s| match s.broker(h.broker_id) {
        None => Err(state_error(&StateError::BrokerNotFound(h.broker_id))),
        Some(b) if b.epoch != h.broker_epoch => Err(state_error(&StateError::StaleBrokerEpoch {
            broker_id: h.broker_id,
            expected: b.epoch,
            got: h.broker_epoch,
        })),
        Some(b) if b.state == BrokerState::Fenced => Err(state_error(&StateError::BrokerFenced(h.broker_id))),
        Some(_) => Ok(()),
    })
}

enum End {
    /// The agent closed its side or the connection broke.
    Disconnected,
    /// We ended it (stale epoch, lost leadership, bad message).
    Refused,
}

async fn run_session(
    shared: Arc<Shared>,
    first: pb::Heartbeat,
    mut inbound: Streaming<pb::SessionRequest>,
    tx: mpsc::Sender<Result<pb::SessionResponse, Status>>,
    session: u64,
) {
    let (broker, epoch) = (first.broker_id, first.broker_epoch);
    let mut status = shared.raft.subscribe_status();
    let term = status.borrow_and_update().term;
    // Updates flow from their own task: a leadership held back for a handoff
    // must never stop this task from answering heartbeats (the broker would
    // lose every lease it holds while it waits).
    let scope = if first.hosted_view { convert::Scope::Hosted(broker) } else { convert::Scope::All };
    let pump = tokio::spawn(pump_updates(shared.clone(), broker, first.metadata_version, scope, tx.clone()));
    let mut rate = RateBucket::new(shared.config.limits.max_heartbeats_per_second, Instant::now());
    let end = async {
        if let Err(e) = on_heartbeat(&shared, &first, &tx).await {
            let _ = tx.send(Err(e)).await;
            return End::Refused;
        }
        loop {
            tokio::select! {
                msg = inbound.message() => match msg {
                    Ok(Some(pb::SessionRequest { kind: Some(RequestKind::Heartbeat(h)) })) => {
                        let result = if h.broker_id != broker || h.broker_epoch != epoch {
                            Err(invalid("a session carries one broker id and epoch"))
                        } else if !rate.take(Instant::now()) {
                            warn!(broker, "heartbeat rate above the bound; closing the session");
                            Err(typed_status(
                                Code::ResourceExhausted,
                                ErrorCode::RateLimited,
                                format!(
                                    "more than {} heartbeats per second",
                                    shared.config.limits.max_heartbeats_per_second
                                ),
                            ))
                        } else {
                            on_heartbeat(&shared, &h, &tx).await
                        };
                        if let Err(e) = result {
                            let _ = tx.send(Err(e)).await;
                            return End::Refused;
                        }
                    }
                    Ok(Some(_)) => {
                        let _ = tx.send(Err(invalid("empty session message"))).await;
                        return End::Refused;
                    }
                    Ok(None) | Err(_) => return End::Disconnected,
                },
                changed = status.changed() => {
                    // A new term, even one this node leads again, starts
                    // liveness afresh: the agent must open a new session.
                    let still_ours = changed.is_ok() && {
                        let s = status.borrow();
                        s.leader_ready && s.term == term
                    };
                    if !still_ours {
                        let _ = tx.send(Err(not_leader(&shared.raft))).await;
                        return End::Refused;
                    }
                }
                _ = tx.closed() => return End::Disconnected,
            }
        }
    }
    .await;
    pump.abort();
    if matches!(end, End::Disconnected) && shared.liveness.session_closed(broker, epoch, session) {
        info!(broker, epoch, "broker session closed: fencing it at once (fast failover)");
        active::fence(&shared, broker, epoch, FenceReason::Disconnected).await;
    } else {
        debug!(broker, epoch, session, "session ended");
    }
}

/// Streams leadership updates to one broker: a full view or deltas from its
/// version, each held until its handoffs are done, in bounded chunks.
async fn pump_updates(
    shared: Arc<Shared>,
    broker: i32,
    from_version: u64,
    scope: convert::Scope,
    tx: mpsc::Sender<Result<pb::SessionResponse, Status>>,
) {
    let metadata = shared.raft.metadata().clone();
    let mut cursor = UpdateCursor::new(&metadata, from_version, scope);
    let mut status = shared.raft.subscribe_status();
    // A broker behind what this controller knows of past handoffs (its state
    // came from a snapshot) may gain a leadership whose handoff we cannot
    // see: its first view waits until no predecessor's lease can be valid.
    let mut unknown_history = from_version < metadata.handoff_floor();
    while let Some(mut update) = cursor.next(&metadata).await {
        // The agent applies an update only once its last message is in, so
        // holding each message until its own partitions' handoffs are done
        // holds the whole update as long as any of them.
        while let Some(chunk) = update.next_message(MAX_PARTITIONS_PER_MESSAGE) {
            if unknown_history
                && chunk.partitions.iter().any(|p| p.leader == broker)
                && !await_predecessor_leases(&shared, &mut status).await
            {
                let _ = tx.send(Err(not_leader(&shared.raft))).await;
                return;
            }
            if !await_handoffs(&shared, broker, &chunk, &mut status).await {
                let _ = tx.send(Err(not_leader(&shared.raft))).await;
                return;
            }
            let msg = pb::SessionResponse { kind: Some(ResponseKind::Update(chunk)) };
            if tx.send(Ok(msg)).await.is_err() {
                return;
            }
        }
        unknown_history = false;
    }
}

/// Holds an update that makes `broker` the leader of a partition taken from
/// another live broker until that broker can no longer act on it (it has
/// acknowledged the change, or its lease has surely run out). Without this
/// wait a preferred election could leave two brokers with valid leases on one
/// partition. Returns false if this controller stopped leading meanwhile.
async fn await_handoffs(
    shared: &Shared,
    broker: i32,
    update: &pb::LeadershipUpdate,
    status: &mut tokio::sync::watch::Receiver<crate::raft::RaftStatus>,
) -> bool {
    let metadata = shared.raft.metadata();
    let version = update.metadata_version;
    let mut waited = false;
    loop {
        let now = Instant::now();
        let mut pending = 0usize;
        metadata.read(|s| {
            if !metadata.has_handoffs() {
                // The usual case (no live broker lost a leadership lately):
                // no per-partition lookups for a mass election's update.
                return;
            }
            for p in update.partitions.iter().filter(|p| p.leader == broker) {
                let handoffs = metadata.handoffs(&p.topic, p.partition);
                if handoffs.is_empty() {
                    continue;
                }
                // Only handoffs this update can depend on: those at or
                // before its version, away from some other broker.
                pending += handoffs
                    .iter()
                    .filter(|h| h.version <= version && h.from != broker)
                    .filter(|h| !shared.liveness.handoff_done(s, h, now))
                    .count();
                metadata.resolve_handoffs(&p.topic, p.partition, |h| shared.liveness.handoff_done(s, h, now));
            }
        });
        if pending == 0 {
            if waited {
                info!(broker, version, "leadership handoff released after waiting for the previous leader");
            }
            return true;
        }
        waited = true;
        tokio::select! {
            _ = tokio::time::sleep(HANDOFF_POLL) => {}
            changed = status.changed() => {
                if changed.is_err() || !status.borrow().leader_ready {
                    return false;
                }
            }
        }
    }
}

/// Waits until every lease a predecessor may have granted has run out.
/// Returns false if this controller stopped leading meanwhile.
async fn await_predecessor_leases(
    shared: &Shared,
    status: &mut tokio::sync::watch::Receiver<crate::raft::RaftStatus>,
) -> bool {
    while !shared.liveness.predecessor_leases_expired(Instant::now()) {
        tokio::select! {
            _ = tokio::time::sleep(HANDOFF_POLL) => {}
            changed = status.changed() => {
                if changed.is_err() || !status.borrow().leader_ready {
                    return false;
                }
            }
        }
    }
    true
}

/// How often a held handoff is re-checked.
const HANDOFF_POLL: std::time::Duration = std::time::Duration::from_millis(10);

async fn on_heartbeat(
    shared: &Arc<Shared>,
    h: &pb::Heartbeat,
    tx: &mpsc::Sender<Result<pb::SessionResponse, Status>>,
) -> Result<(), Status> {
    let now = Instant::now();
    let max = shared.config.limits.max_progress_per_heartbeat;
    if h.progress.len() > max || h.isr_expansions.len() > max {
        return Err(invalid(format!(
            "{} progress reports and {} ISR expansions in one heartbeat; the bound is {max} each",
            h.progress.len(),
            h.isr_expansions.len()
        )));
    }
    check_broker(shared, h)?;
    let metadata = shared.raft.metadata();
    metadata.read(|s| {
        // Before the progress: it tells how the ISRs this broker leads grow.
        let requests = h.isr_expansions.iter().map(crate::liveness::IsrExpansion::from);
        shared.liveness.record_isr_requests(s, h.broker_id, h.broker_epoch, h.isr_expansion_by_request, requests);
        if !h.progress.is_empty() {
            let reports = h.progress.iter().map(|p| (Arc::from(p.topic.as_str()), p.partition, p.log_end_offset));
            shared.liveness.record_progress(s, h.broker_id, reports);
        }
    });
    // A broker must have applied its own registration (hence its fence, if
    // any) and every leadership taken from it before it is granted a lease.
    let floor = || metadata.grant_floor(h.broker_id).max(h.broker_epoch);
    let granted = shared.liveness.heartbeat(h.broker_id, h.broker_epoch, h.metadata_version, floor, now);
    shared.metrics.heartbeats.inc();
    if granted {
        shared.metrics.leases_granted.inc();
    }
    let drained = h.controlled_shutdown && controlled_shutdown(shared, h);
    if h.shutting_down {
        // The agent suspended itself before sending this: move its
        // partitions now. Acknowledge without a lease.
        let ack = pb::HeartbeatAck {
            seq: h.seq,
            lease_ms: 0,
            metadata_version: metadata.version(),
            drained,
            controller_id: shared.raft.id(),
        };
        let _ = tx.send(Ok(pb::SessionResponse { kind: Some(ResponseKind::Ack(ack)) })).await;
        if shared.liveness.begin_fence(h.broker_id, h.broker_epoch) {
            info!(broker = h.broker_id, "broker shutting down cleanly: fencing it");
            active::fence(shared, h.broker_id, h.broker_epoch, FenceReason::CleanShutdown).await;
        }
        return Ok(());
    }
    // Every accepted heartbeat is answered; one we cannot grant a lease for
    // (no recent quorum contact, the broker behind its grant floor, a fence
    // in flight) gets `lease_ms: 0`. The broker's lease then runs out while
    // its session stays up: a controller that is merely slow (a stalled
    // disk) must not make healthy brokers abandon their sessions and be
    // fenced for it.
    let lease_ms = if granted { shared.config.liveness.lease_ms.min(u32::MAX as u64) as u32 } else { 0 };
    let ack = pb::HeartbeatAck {
        seq: h.seq,
        lease_ms,
        metadata_version: metadata.version(),
        drained,
        controller_id: shared.raft.id(),
    };
    if tx.send(Ok(pb::SessionResponse { kind: Some(ResponseKind::Ack(ack)) })).await.is_err() {
        warn!(broker = h.broker_id, "could not deliver a heartbeat ack");
    }
    Ok(())
}

/// A broker asked to stop after its leadership moved away. True once its
/// controlled shutdown (or an operator's drain) is committed for this
/// registration: every partition that could move has moved in that entry.
/// Otherwise proposes it, without holding up the heartbeat; a duplicate
/// proposal from the next heartbeat is harmless (it moves nothing more).
fn controlled_shutdown(shared: &Arc<Shared>, h: &pb::Heartbeat) -> bool {
    let state = shared.raft.metadata().read(|s| s.broker(h.broker_id).map(|b| (b.state, b.epoch)));
    match state {
        Some((BrokerState::ControlledShutdown | BrokerState::Drained, epoch)) if epoch == h.broker_epoch => true,
        Some((BrokerState::Alive, epoch)) if epoch == h.broker_epoch => {
            let (shared, broker_id, broker_epoch) = (shared.clone(), h.broker_id, h.broker_epoch);
            tokio::spawn(async move {
                let command = Command::ControlledShutdown { broker_id, broker_epoch };
                match shared.propose(&command).await {
                    Ok(p) => info!(broker = broker_id, outcome = ?p.outcome, "controlled shutdown committed"),
                    Err(e) => {
                        warn!(broker = broker_id, error = %e, "controlled shutdown not committed; the broker will ask again")
                    }
                }
            });
            false
        }
        _ => false,
    }
}
