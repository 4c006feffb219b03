//! The session task: registration, the Session stream, heartbeats, lease
//! grants and leadership updates. One task owns all of it; nothing else
//! talks to the controllers.
//!
//! Failure handling (see `Session::run`):
//! - connect failure / UNAVAILABLE without hint / timeout / stream closed:
//!   next controller (round robin) after a jittered backoff (50 ms → 1 s).
//! - UNAVAILABLE with a `baton-leader` hint: straight to the named controller
//!   (backoff only after `MAX_REDIRECTS_IN_A_ROW` hops without an ack).
//! - `baton-error` STALE_BROKER_EPOCH / BROKER_FENCED / BROKER_NOT_FOUND, or
//!   NOT_FOUND: suspend, register again (same incarnation), reopen.
//! - No ack for a whole lease on an open stream: the agent abandons the
//!   stream, and suspends its lease *first* (the controller may treat a
//!   closed session as a dead broker and move its partitions at once).
//!   A stream closed by the server or the network does not suspend: the lease
//!   runs out by itself.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use baton_proto::v1::broker_session_client::BrokerSessionClient;
use baton_proto::v1::{
    Heartbeat, LeadershipUpdate, PartitionInfo, RegisterBrokerRequest, RegisterBrokerResponse, SessionRequest,
    SessionResponse, session_request, session_response,
};
use baton_proto::{ERROR_METADATA_KEY, LEADER_METADATA_KEY};
use baton_security::Connector;
use rand::Rng;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Code, Status, Streaming};
use tracing::Instrument;

use crate::agent::{ControllerRef, Shared};
use crate::lease::{AckOutcome, now_nanos};

/// Heartbeats buffered towards the transport. When full, a tick's heartbeat
/// is skipped (the stream is not draining; the stall timer will tell).
pub const OUTBOUND_CAPACITY: usize = 8;
/// First and largest retry delay; each failure doubles it, an ack resets it.
pub const BACKOFF_MIN: Duration = Duration::from_millis(50);
pub const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Leader hints followed at once before backing off (guards against two
/// controllers naming each other during an election).
pub const MAX_REDIRECTS_IN_A_ROW: u32 = 3;
/// Distinct controller addresses with a cached channel.
pub const MAX_CACHED_CHANNELS: usize = 16;
/// Least time between two heartbeats sent early (on an applied update that
/// took a leadership or while no lease is held): a burst of updates (a
/// thousand brokers registering, a topic created per entry) then costs at
/// most 20 early heartbeats a second, well under the controller's per-session
/// bound (`limits.max_heartbeats_per_second`, 50 by default), instead of one
/// per update, which got healthy sessions closed as floods.
pub const MIN_EARLY_HEARTBEAT_GAP: Duration = Duration::from_millis(50);

/// Jittered exponential backoff, bounded by [`BACKOFF_MAX`].
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    pub(crate) fn new() -> Self {
        Self { next: BACKOFF_MIN }
    }

    /// A delay in [next/2, next]; doubles `next` up to the bound.
    pub(crate) fn delay(&mut self) -> Duration {
        let cap = self.next;
        self.next = (cap * 2).min(BACKOFF_MAX);
        rand::rng().random_range(cap / 2..=cap)
    }

    pub(crate) fn reset(&mut self) {
        self.next = BACKOFF_MIN;
    }
}

/// What to do after a failed call.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Disposition {
    /// The broker epoch is stale, the broker fenced or unknown: register again.
    Reregister,
    /// Not the active controller; this one is.
    Redirect(ControllerRef),
    /// Anything else: next controller after a backoff.
    Retry,
}

/// Parses a `baton-leader` value, `"<id>=<host:port>"`.
pub(crate) fn parse_leader_hint(value: &str) -> Option<ControllerRef> {
    let (id, address) = value.trim().split_once('=')?;
    let id: u64 = id.trim().parse().ok()?;
    let address = address.trim();
    if address.is_empty() || address.len() > 255 || address.contains(char::is_whitespace) {
        return None;
    }
    Some(ControllerRef { address: address.to_owned(), id })
}

/// Reads the typed metadata of a status; never its message.
pub(crate) fn classify(status: &Status) -> Disposition {
    let error = status.metadata().get(ERROR_METADATA_KEY).and_then(|v| v.to_str().ok()).map(|s| {
        let s = s.trim();
        s.strip_prefix("ERROR_CODE_").unwrap_or(s)
    });
    if matches!(error, Some("STALE_BROKER_EPOCH" | "BROKER_FENCED" | "BROKER_NOT_FOUND"))
        || status.code() == Code::NotFound
    {
        return Disposition::Reregister;
    }
    if status.code() == Code::Unavailable
        && let Some(hint) =
            status.metadata().get(LEADER_METADATA_KEY).and_then(|v| v.to_str().ok()).and_then(parse_leader_hint)
    {
        return Disposition::Redirect(hint);
    }
    Disposition::Retry
}

/// Resolves once a stop is requested (never if the sender is gone).
pub(crate) async fn stop_requested(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// How a stream ended.
enum StreamEnd {
    Stopped,
    Reregister,
    Redirect(ControllerRef),
    Failed,
}

enum Sent {
    Seq(u64),
    Full,
    Closed,
}

pub(crate) struct Session {
    shared: Arc<Shared>,
    /// Dials controllers: with mTLS, presents our certificate and accepts
    /// only a controller of our trust domain.
    connector: Connector,
    stop: watch::Receiver<bool>,
    channels: HashMap<String, Channel>,
    /// Raft ids learned from hints, by address.
    known_ids: HashMap<String, u64>,
    next_controller: usize,
    /// Where to go next, ahead of the round robin.
    hinted: Option<ControllerRef>,
    backoff: Backoff,
    redirects_in_a_row: u32,
    seq: u64,
    need_register: bool,
}

impl Session {
    pub(crate) fn new(shared: Arc<Shared>, connector: Connector) -> Self {
        let stop = shared.stop.subscribe();
        Self {
            shared,
            connector,
            stop,
            channels: HashMap::new(),
            known_ids: HashMap::new(),
            next_controller: 0,
            hinted: None,
            backoff: Backoff::new(),
            redirects_in_a_row: 0,
            seq: 0,
            need_register: true,
        }
    }

    pub(crate) async fn run(mut self) {
        let span = tracing::info_span!(
            "agent_session",
            broker_id = self.shared.config.broker_id,
            incarnation = %self.shared.incarnation_id,
        );
        async {
            loop {
                if *self.stop.borrow() {
                    break;
                }
                if self.need_register && !self.register().await {
                    break;
                }
                let target = self.next_target();
                match self.run_stream(&target).await {
                    StreamEnd::Stopped => break,
                    StreamEnd::Reregister => {
                        self.need_register = true;
                        self.hinted = Some(target);
                        if !self.pause().await {
                            break;
                        }
                    }
                    StreamEnd::Redirect(to) => {
                        if !self.follow(to).await {
                            break;
                        }
                    }
                    StreamEnd::Failed => {
                        self.channels.remove(&target.address);
                        self.next_controller = self.next_controller.wrapping_add(1);
                        if !self.pause().await {
                            break;
                        }
                    }
                }
            }
            tracing::info!("session task stopped");
        }
        .instrument(span)
        .await;
        // Fail closed, whatever ended the loop.
        self.shared.lease.close();
        self.shared.connected.store(false, Ordering::Release);
        self.shared.stopped.send_replace(true);
    }

    fn next_target(&mut self) -> ControllerRef {
        if let Some(hint) = self.hinted.take() {
            return hint;
        }
        let controllers = &self.shared.config.controllers;
        // validate() guarantees at least one controller.
        let entry = &controllers[self.next_controller % controllers.len().max(1)];
        let (listed_id, address) = parse_controller(entry);
        let id = listed_id.or_else(|| self.known_ids.get(address).copied()).unwrap_or(0);
        ControllerRef { address: address.to_owned(), id }
    }

    /// Follows a leader hint; false when stopped. A hint names the leader's
    /// raft id and the address its peers use; when our --controllers list
    /// gives that id an address of its own (`id=host:port`), that address is
    /// the one this broker can reach, and it wins.
    async fn follow(&mut self, mut to: ControllerRef) -> bool {
        if let Some(own) = self
            .shared
            .config
            .controllers
            .iter()
            .map(|c| parse_controller(c))
            .find_map(|(id, addr)| (id == Some(to.id)).then_some(addr))
        {
            to.address = own.to_owned();
        }
        tracing::info!(controller = %to.address, controller_id = to.id, "following leader hint");
        self.known_ids.insert(to.address.clone(), to.id);
        self.hinted = Some(to);
        self.redirects_in_a_row += 1;
        if self.redirects_in_a_row > MAX_REDIRECTS_IN_A_ROW {
            return self.pause().await;
        }
        true
    }

    /// Sleeps the next backoff delay; false when stopped meanwhile.
    async fn pause(&mut self) -> bool {
        let delay = self.backoff.delay();
        let mut stop = self.stop.clone();
        tokio::select! {
            _ = tokio::time::sleep(delay) => true,
            _ = stop_requested(&mut stop) => false,
        }
    }

    fn channel(&mut self, address: &str) -> Result<Channel, tonic::transport::Error> {
        if let Some(channel) = self.channels.get(address) {
            return Ok(channel.clone());
        }
        if self.channels.len() >= MAX_CACHED_CHANNELS {
            self.channels.clear();
        }
        let rpc_timeout = self.shared.config.rpc_timeout;
        let endpoint = Connector::endpoint(address)?
            .connect_timeout(rpc_timeout)
            .http2_keep_alive_interval(self.shared.config.heartbeat_interval.max(Duration::from_millis(100)))
            .keep_alive_timeout(rpc_timeout)
            .keep_alive_while_idle(true);
        let channel = self.connector.lazy(endpoint);
        self.channels.insert(address.to_owned(), channel.clone());
        Ok(channel)
    }

    /// Registers, retrying across controllers; false when stopped.
    async fn register(&mut self) -> bool {
        loop {
            if *self.stop.borrow() {
                return false;
            }
            let target = self.next_target();
            match self.register_at(&target).await {
                Ok(response) if response.broker_epoch > 0 => {
                    tracing::info!(
                        controller = %target.address,
                        broker_epoch = response.broker_epoch,
                        metadata_version = response.metadata_version,
                        "registered"
                    );
                    self.shared.broker_epoch.send_replace(response.broker_epoch);
                    self.need_register = false;
                    // Open the session where registration succeeded; a follower redirects.
                    self.hinted = Some(target);
                    return true;
                }
                Ok(_) => tracing::warn!(controller = %target.address, "registration answered epoch 0; retrying"),
                Err(status) => match classify(&status) {
                    Disposition::Redirect(to) if to.address != target.address => {
                        if !self.follow(to).await {
                            return false;
                        }
                        continue;
                    }
                    _ => {
                        let error = status.metadata().get(ERROR_METADATA_KEY).and_then(|v| v.to_str().ok());
                        tracing::warn!(controller = %target.address, code = ?status.code(), error, detail = status.message(), "registration failed");
                    }
                },
            }
            self.channels.remove(&target.address);
            self.next_controller = self.next_controller.wrapping_add(1);
            if !self.pause().await {
                return false;
            }
        }
    }

    async fn register_at(&mut self, target: &ControllerRef) -> Result<RegisterBrokerResponse, Status> {
        let channel = self.channel(&target.address).map_err(|e| Status::unavailable(e.to_string()))?;
        let config = &self.shared.config;
        let request = RegisterBrokerRequest {
            broker_id: config.broker_id,
            incarnation_id: self.shared.incarnation_id.clone(),
            endpoint: config.advertised_endpoint.clone(),
            rack: config.rack.clone(),
        };
        let mut client = BrokerSessionClient::new(channel).max_decoding_message_size(MAX_SESSION_MESSAGE_BYTES);
        match tokio::time::timeout(config.rpc_timeout, client.register_broker(request)).await {
            Ok(result) => result.map(tonic::Response::into_inner),
            Err(_) => Err(Status::deadline_exceeded("registration timed out")),
        }
    }

    fn send_heartbeat(&mut self, tx: &mpsc::Sender<SessionRequest>, shutting_down: bool) -> Sent {
        match tx.try_reserve() {
            Ok(permit) => {
                let seq = self.next_seq();
                permit.send(self.heartbeat(seq, shutting_down));
                Sent::Seq(seq)
            }
            Err(TrySendError::Full(())) => Sent::Full,
            Err(TrySendError::Closed(())) => Sent::Closed,
        }
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Builds heartbeat `seq` and records its send instant: called right
    /// before the message goes to the transport (earlier is only safer).
    fn heartbeat(&self, seq: u64, shutting_down: bool) -> SessionRequest {
        let progress = self.shared.table.drain_progress(self.shared.config.max_progress_per_heartbeat);
        let heartbeat = Heartbeat {
            broker_id: self.shared.config.broker_id,
            broker_epoch: *self.shared.broker_epoch.borrow(),
            seq,
            metadata_version: self.shared.table.metadata_version(),
            progress,
            shutting_down,
            controlled_shutdown: *self.shared.draining.borrow(),
            isr_expansion_by_request: self.shared.config.isr_expansion_by_request,
            hosted_view: self.shared.config.hosted_view,
            isr_expansions: self
                .shared
                .isr_requests
                .for_heartbeat(self.shared.config.max_progress_per_heartbeat, |t, p| self.shared.table.partition(t, p)),
        };
        self.shared.lease.record_send(seq, now_nanos());
        SessionRequest { kind: Some(session_request::Kind::Heartbeat(heartbeat)) }
    }

    async fn run_stream(&mut self, target: &ControllerRef) -> StreamEnd {
        let span = tracing::info_span!("stream", controller = %target.address, controller_id = target.id);
        self.stream(target).instrument(span).await
    }

    async fn stream(&mut self, target: &ControllerRef) -> StreamEnd {
        let config = self.shared.config.clone();
        let channel = match self.channel(&target.address) {
            Ok(channel) => channel,
            Err(error) => {
                tracing::warn!(%error, "bad controller address");
                return StreamEnd::Failed;
            }
        };
        *self.shared.controller.lock() = Some(target.clone());
        let (tx, rx) = mpsc::channel(OUTBOUND_CAPACITY);
        // A controller that just took the session holds no progress of ours.
        self.shared.table.remark_all_progress();
        // The first message: a heartbeat carrying our metadata version.
        if !matches!(self.send_heartbeat(&tx, false), Sent::Seq(_)) {
            return StreamEnd::Failed;
        }
        let mut stop = self.stop.clone();
        let mut client = BrokerSessionClient::new(channel).max_decoding_message_size(MAX_SESSION_MESSAGE_BYTES);
        let opened = tokio::select! {
            r = tokio::time::timeout(config.rpc_timeout, client.session(ReceiverStream::new(rx))) => r,
            _ = stop_requested(&mut stop) => {
                self.shared.lease.close();
                return StreamEnd::Stopped;
            }
        };
        let mut inbound = match opened {
            Ok(Ok(response)) => response.into_inner(),
            Ok(Err(status)) => return self.disposition(&status, target),
            Err(_) => {
                // We give up on a stream that may be open at the controller: suspend first.
                tracing::warn!("session did not open in time; suspending and moving on");
                self.shared.lease.suspend();
                return StreamEnd::Failed;
            }
        };
        self.shared.connected.store(true, Ordering::Release);
        tracing::info!(metadata_version = self.shared.table.metadata_version(), "session open");

        let mut draining = self.shared.draining.subscribe();
        let mut ticker =
            tokio::time::interval_at(Instant::now() + config.heartbeat_interval, config.heartbeat_interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut last_ack = Instant::now();
        let mut granted: Option<Duration> = None;
        // The last early heartbeat, and whether one is owed (see MIN_EARLY_HEARTBEAT_GAP).
        let mut last_early: Option<Instant> = None;
        let mut early_owed = false;
        // Chunks of a large update, applied together when the last arrives.
        let mut reassembly: Option<Reassembly> = None;
        let end = loop {
            tokio::select! {
                biased;
                _ = stop_requested(&mut stop) => break self.graceful_stop(&tx, &mut inbound).await,
                message = inbound.message() => match message {
                    Ok(Some(SessionResponse { kind: Some(session_response::Kind::Ack(ack)) })) => {
                        let lease = Duration::from_millis(u64::from(ack.lease_ms));
                        let outcome = self.shared.lease.on_ack(ack.seq, lease);
                        tracing::trace!(seq = ack.seq, lease_ms = ack.lease_ms, ?outcome, "ack");
                        if outcome != AckOutcome::UnknownSeq {
                            last_ack = Instant::now();
                            granted = Some(lease);
                            self.backoff.reset();
                            self.redirects_in_a_row = 0;
                        }
                        if ack.controller_id != 0 && ack.controller_id != target.id {
                            self.known_ids.insert(target.address.clone(), ack.controller_id);
                            if let Some(c) = self.shared.controller.lock().as_mut() {
                                c.id = ack.controller_id;
                            }
                        }
                        if ack.drained && *self.shared.draining.borrow() {
                            self.shared.drained_at.send_replace(Some(ack.metadata_version));
                        }
                    }
                    Ok(Some(SessionResponse { kind: Some(session_response::Kind::Update(update)) })) => {
                        let update = match reassemble(&mut reassembly, update) {
                            Ok(Some(complete)) => complete,
                            Ok(None) => continue,
                            Err(reason) => {
                                // We abandon a stream that is still open: suspend first.
                                tracing::warn!(reason, "malformed chunked update; suspending and abandoning the session");
                                self.shared.lease.suspend();
                                break StreamEnd::Failed;
                            }
                        };
                        // Heartbeat at once when leadership was taken (the
                        // controller waits for our acknowledgement to hand it
                        // on) or when we hold no lease (the controller grants
                        // only once we report the version we just applied).
                        let lost = self.apply(&update);
                        if lost || !self.shared.lease.is_valid_now() {
                            if last_early.is_some_and(|at| at.elapsed() < MIN_EARLY_HEARTBEAT_GAP) {
                                early_owed = true;
                            } else {
                                last_early = Some(Instant::now());
                                if matches!(self.send_heartbeat(&tx, false), Sent::Closed) {
                                    break StreamEnd::Failed;
                                }
                            }
                        }
                    }
                    Ok(Some(SessionResponse { kind: None })) => tracing::debug!("empty session message ignored"),
                    Ok(None) => {
                        tracing::info!("controller ended the session");
                        break StreamEnd::Failed;
                    }
                    Err(status) => break self.disposition(&status, target),
                },
                // A controlled shutdown was asked for: tell the controller now.
                Ok(()) = draining.changed() => {
                    if *draining.borrow_and_update() && matches!(self.send_heartbeat(&tx, false), Sent::Closed) {
                        break StreamEnd::Failed;
                    }
                }
                // An early heartbeat held back by the gap: it reports
                // everything applied since.
                _ = tokio::time::sleep_until(last_early.unwrap_or_else(Instant::now) + MIN_EARLY_HEARTBEAT_GAP),
                    if early_owed =>
                {
                    early_owed = false;
                    last_early = Some(Instant::now());
                    if matches!(self.send_heartbeat(&tx, false), Sent::Closed) {
                        break StreamEnd::Failed;
                    }
                }
                _ = ticker.tick() => {
                    let stall_limit = granted.unwrap_or(config.rpc_timeout).max(config.rpc_timeout);
                    if last_ack.elapsed() > stall_limit {
                        // Abandoning a stream that may still be open: suspend first.
                        tracing::warn!(stall_ms = stall_limit.as_millis() as u64, "no ack for the longer of the last lease and the rpc timeout; suspending and abandoning the session");
                        self.shared.lease.suspend();
                        break StreamEnd::Failed;
                    }
                    match self.send_heartbeat(&tx, false) {
                        Sent::Seq(seq) => tracing::trace!(seq, "heartbeat"),
                        Sent::Full => tracing::debug!("outbound queue full; heartbeat skipped"),
                        Sent::Closed => break StreamEnd::Failed,
                    }
                }
            }
        };
        self.shared.connected.store(false, Ordering::Release);
        end
    }

    /// Applies an update and publishes its event; true when leadership was lost.
    fn apply(&self, update: &LeadershipUpdate) -> bool {
        let current = self.shared.table.metadata_version();
        let Some(applied) = self.shared.table.apply(update) else {
            tracing::debug!(version = update.metadata_version, current, "stale delta ignored");
            return false;
        };
        if applied.rejected > 0 {
            tracing::warn!(rejected = applied.rejected, "malformed partition entries skipped");
        }
        tracing::debug!(
            version = update.metadata_version,
            full = update.full,
            changes = applied.event.changes.len(),
            lost_leadership = applied.lost_leadership,
            "leadership update applied"
        );
        // No subscriber is not an error.
        let _ = self.shared.events.send(applied.event);
        applied.lost_leadership
    }

    fn disposition(&mut self, status: &Status, target: &ControllerRef) -> StreamEnd {
        let error = status.metadata().get(ERROR_METADATA_KEY).and_then(|v| v.to_str().ok());
        match classify(status) {
            Disposition::Reregister => {
                tracing::info!(code = ?status.code(), error, "broker epoch stale, fenced or unknown: registering again");
                // The controller no longer counts our leases; stop acting on ours.
                self.shared.lease.suspend();
                StreamEnd::Reregister
            }
            Disposition::Redirect(to) if to.address != target.address => StreamEnd::Redirect(to),
            _ => {
                tracing::warn!(code = ?status.code(), error, detail = status.message(), "session failed");
                if ends_locally(status) {
                    // A message we could not decode ends the stream on OUR
                    // side while the controller may still count it open: the
                    // controller may fence us at once, so stop acting first.
                    self.shared.lease.suspend();
                }
                StreamEnd::Failed
            }
        }
    }

    /// Clean exit on an open stream: suspend for good, tell the controller,
    /// wait up to rpc_timeout for its ack.
    async fn graceful_stop(
        &mut self,
        tx: &mpsc::Sender<SessionRequest>,
        inbound: &mut Streaming<SessionResponse>,
    ) -> StreamEnd {
        // First stop acting as leader: the controller may move our partitions
        // the moment it reads `shutting_down`.
        self.shared.lease.close();
        let deadline = Instant::now() + self.shared.config.rpc_timeout;
        let seq = match tokio::time::timeout_at(deadline, tx.reserve()).await {
            Ok(Ok(permit)) => {
                let seq = self.next_seq();
                permit.send(self.heartbeat(seq, true));
                seq
            }
            _ => return StreamEnd::Stopped,
        };
        loop {
            match tokio::time::timeout_at(deadline, inbound.message()).await {
                Ok(Ok(Some(SessionResponse { kind: Some(session_response::Kind::Ack(ack)) }))) if ack.seq >= seq => {
                    tracing::info!("controller acknowledged the shutdown");
                    break;
                }
                Ok(Ok(Some(_))) => {}
                Ok(Ok(None)) | Ok(Err(_)) => break,
                Err(_) => {
                    tracing::warn!("no ack of the shutdown heartbeat in time");
                    break;
                }
            }
        }
        StreamEnd::Stopped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::metadata::MetadataValue;

    fn status_with(code: Code, pairs: &[(&'static str, &'static str)]) -> Status {
        let mut status = Status::new(code, "x");
        for (k, v) in pairs {
            status.metadata_mut().insert(*k, MetadataValue::from_static(v));
        }
        status
    }

    #[test]
    fn leader_hint_parses_and_rejects_garbage() {
        assert_eq!(
            parse_leader_hint("2=127.0.0.1:7102"),
            Some(ControllerRef { address: "127.0.0.1:7102".into(), id: 2 })
        );
        assert_eq!(parse_leader_hint(""), None);
        assert_eq!(parse_leader_hint("x=a:1"), None);
        assert_eq!(parse_leader_hint("3="), None);
        assert_eq!(parse_leader_hint("127.0.0.1:7102"), None);
    }

    #[test]
    fn statuses_map_to_dispositions_by_metadata_only() {
        let redirect = status_with(Code::Unavailable, &[(LEADER_METADATA_KEY, "3=h:7103")]);
        assert_eq!(classify(&redirect), Disposition::Redirect(ControllerRef { address: "h:7103".into(), id: 3 }));
        let stale = status_with(Code::FailedPrecondition, &[(ERROR_METADATA_KEY, "STALE_BROKER_EPOCH")]);
        assert_eq!(classify(&stale), Disposition::Reregister);
        let fenced = status_with(Code::FailedPrecondition, &[(ERROR_METADATA_KEY, "ERROR_CODE_BROKER_FENCED")]);
        assert_eq!(classify(&fenced), Disposition::Reregister);
        assert_eq!(classify(&Status::not_found("broker 1")), Disposition::Reregister);
        assert_eq!(classify(&Status::unavailable("no leader")), Disposition::Retry);
        // A hint on a status that is not UNAVAILABLE is not a redirect.
        let other = status_with(Code::Internal, &[(LEADER_METADATA_KEY, "3=h:7103")]);
        assert_eq!(classify(&other), Disposition::Retry);
    }

    #[test]
    fn backoff_is_jittered_and_bounded() {
        let mut backoff = Backoff::new();
        let mut last = Duration::ZERO;
        for _ in 0..20 {
            last = backoff.delay();
            assert!(last <= BACKOFF_MAX);
        }
        assert!(last >= BACKOFF_MAX / 2);
        backoff.reset();
        assert!(backoff.delay() <= BACKOFF_MIN);
    }
}

/// Largest session message the agent decodes (the controller chunks updates
/// far below this).
pub(crate) const MAX_SESSION_MESSAGE_BYTES: usize = 64 << 20;
/// Bound on partitions held while reassembling one chunked update.
const MAX_REASSEMBLED_PARTITIONS: usize = 1 << 23;

/// Statuses that the client library produces itself (decode failures, size
/// limits) rather than receives from the controller or the network.
fn ends_locally(status: &Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::OutOfRange | tonic::Code::Internal | tonic::Code::ResourceExhausted | tonic::Code::DataLoss
    )
}

/// An update whose messages are still arriving: its first message, and the
/// partitions of the later ones kept apart until the last arrives, so a
/// mass election's 300,000 partitions are copied once into place instead of
/// at every doubling of one growing list.
pub(crate) struct Reassembly {
    first: LeadershipUpdate,
    rest: Vec<Vec<PartitionInfo>>,
    partitions: usize,
}

/// Collects the chunks of one update (see `LeadershipUpdate.partial`):
/// Ok(None) while more are due, Ok(Some(update)) when complete.
fn reassemble(
    pending: &mut Option<Reassembly>,
    chunk: LeadershipUpdate,
) -> Result<Option<LeadershipUpdate>, &'static str> {
    let partial = chunk.partial;
    let acc = match pending.take() {
        None => Reassembly { partitions: chunk.partitions.len(), first: chunk, rest: Vec::new() },
        Some(mut acc) => {
            if chunk.metadata_version != acc.first.metadata_version || chunk.full {
                return Err("a chunk does not continue the update in progress");
            }
            if acc.partitions + chunk.partitions.len() > MAX_REASSEMBLED_PARTITIONS {
                return Err("a chunked update is over the bound");
            }
            acc.partitions += chunk.partitions.len();
            acc.first.deleted_topics.extend(chunk.deleted_topics);
            acc.first.brokers.extend(chunk.brokers);
            acc.rest.push(chunk.partitions);
            acc
        }
    };
    if partial {
        *pending = Some(acc);
        return Ok(None);
    }
    let Reassembly { mut first, rest, partitions } = acc;
    if !rest.is_empty() {
        let mut all = Vec::with_capacity(partitions);
        all.append(&mut first.partitions);
        for mut part in rest {
            all.append(&mut part);
        }
        first.partitions = all;
    }
    first.partial = false;
    Ok(Some(first))
}

#[cfg(test)]
mod reassembly_tests {
    use baton_proto::v1::{LeadershipUpdate, PartitionInfo};

    use super::reassemble;

    fn chunk(version: u64, full: bool, partial: bool, partitions: &[i32]) -> LeadershipUpdate {
        LeadershipUpdate {
            metadata_version: version,
            full,
            partial,
            partitions: partitions
                .iter()
                .map(|p| PartitionInfo { topic: "t".into(), partition: *p, ..Default::default() })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn chunks_are_applied_together_when_the_last_arrives() {
        let mut pending = None;
        assert_eq!(reassemble(&mut pending, chunk(7, true, true, &[0, 1])), Ok(None));
        assert_eq!(reassemble(&mut pending, chunk(7, false, true, &[2])), Ok(None));
        let whole = reassemble(&mut pending, chunk(7, false, false, &[3])).expect("valid").expect("complete");
        assert!(whole.full && !whole.partial);
        assert_eq!(whole.partitions.iter().map(|p| p.partition).collect::<Vec<_>>(), vec![0, 1, 2, 3]);
        assert!(pending.is_none());
        // A single-message update passes straight through.
        assert!(reassemble(&mut pending, chunk(8, false, false, &[1])).expect("valid").is_some());
    }

    #[test]
    fn a_chunk_of_another_version_is_refused() {
        let mut pending = None;
        assert_eq!(reassemble(&mut pending, chunk(7, true, true, &[0])), Ok(None));
        assert!(reassemble(&mut pending, chunk(8, false, false, &[1])).is_err());
    }
}

/// A `--controllers` entry: `host:port`, or `id=host:port` to say which raft
/// id answers there (hints naming that id then use this address).
pub(crate) fn parse_controller(entry: &str) -> (Option<u64>, &str) {
    match entry.split_once('=') {
        Some((id, address)) => match id.trim().parse() {
            Ok(id) => (Some(id), address.trim()),
            Err(_) => (None, entry),
        },
        None => (None, entry),
    }
}

#[cfg(test)]
mod controller_entry_tests {
    use super::parse_controller;

    #[test]
    fn controller_entries_may_name_their_raft_id() {
        assert_eq!(parse_controller("127.0.0.1:7101"), (None, "127.0.0.1:7101"));
        assert_eq!(parse_controller("2=10.0.0.2:7101"), (Some(2), "10.0.0.2:7101"));
        assert_eq!(parse_controller("x=10.0.0.2:7101"), (None, "x=10.0.0.2:7101"));
    }
}
