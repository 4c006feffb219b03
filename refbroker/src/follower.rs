//! Following leadership: a loop reacts to the agent's leadership events
//! (and sweeps the view on a timer, so a lagged subscriber loses nothing),
//! takes the leader role where the agent allows it, and keeps one fetcher
//! task per partition this broker follows.
//!
//! A fetcher works like a Kafka replica fetcher: when the leader epoch
//! changes it first asks the leader where the latest epoch of its own log
//! ends (OffsetForLeaderEpoch) and truncates there, then fetches from its
//! log end with `replica_id` = this broker, appends what the leader returns
//! and reports its new log end offset to the agent (the controller keeps the
//! ISR from those reports).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use baton_agent::PartitionView;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{OffsetForLeaderPartition, OffsetForLeaderTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, OffsetForLeaderEpochRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::Broker;
use crate::batch::parse_batches;
use crate::client::Connection;
use crate::replica::{IsrView, Partition, WrongRole};
use crate::wire::WireError;

const SWEEP_INTERVAL: Duration = Duration::from_millis(200);
const FETCH_VERSION: i16 = 11;
const OFFSET_FOR_LEADER_EPOCH_VERSION: i16 = 4;
const REPLICA_FETCH_MAX_BYTES: i32 = 8 << 20;
const BACKOFF_MIN: Duration = Duration::from_millis(20);
const BACKOFF_MAX: Duration = Duration::from_millis(200);
const OFFSET_OUT_OF_RANGE: i16 = 1;

type Key = (Arc<str>, i32);

/// Runs until `shutdown` turns true (the caller also aborts it).
pub(crate) async fn run(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let mut events = broker.agent.subscribe();
    let mut tick = tokio::time::interval(SWEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut fetchers: HashMap<Key, JoinHandle<()>> = HashMap::new();
    let mut reported: HashMap<Key, i64> = HashMap::new();
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(event) => {
                    for change in event.changes.iter().filter(|c| c.kind == baton_agent::ChangeKind::Removed) {
                        let key = (Arc::clone(&change.view.topic), change.view.partition);
                        if let Some(task) = fetchers.remove(&key) {
                            task.abort();
                        }
                        broker.replicas.remove(&key.0, key.1);
                        reported.remove(&key);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|s| *s) => break,
        }
        sweep(&broker, &mut fetchers, &mut reported);
    }
    for (_, task) in fetchers {
        task.abort();
    }
}

/// Brings roles and fetchers in line with the agent's current view.
fn sweep(broker: &Arc<Broker>, fetchers: &mut HashMap<Key, JoinHandle<()>>, reported: &mut HashMap<Key, i64>) {
    let me = broker.config.broker_id;
    let view = broker.agent.view();
    for v in &view {
        let key = (Arc::clone(&v.topic), v.partition);
        if v.is_leader {
            // Take the role only while the agent allows acting as leader.
            if let Ok(epoch) = broker.agent.check_produce(&v.topic, v.partition) {
                let replica = broker.replicas.get_or_create(&v.topic, v.partition);
                replica.ensure_leader(epoch);
                replica.isr_changed(IsrView::from(v), me);
                let leo = replica.marks().log_end_offset;
                if reported.get(&key) != Some(&leo) {
                    broker.agent.record_produce(&v.topic, v.partition, leo);
                    reported.insert(key, leo);
                }
            }
        } else if v.is_replica && v.leader >= 0 && fetchers.get(&key).is_none_or(JoinHandle::is_finished) {
            let task = tokio::spawn(follow(Arc::clone(broker), Arc::clone(&v.topic), v.partition));
            fetchers.insert(key, task);
        }
    }
    fetchers.retain(|(t, p), task| {
        let keep = !task.is_finished() && view.iter().any(|v| &v.topic == t && v.partition == *p);
        if !keep {
            task.abort();
        }
        keep
    });
}

#[derive(Debug, thiserror::Error)]
enum FollowError {
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error(transparent)]
    Role(#[from] WrongRole),
    #[error("leader answered Kafka error {0}")]
    Kafka(i16),
    #[error("leader's response lacks the partition")]
    Missing,
    #[error("the partition's leadership changed during the request")]
    LeaderChanged,
}

/// One partition's fetcher; returns when this broker leads it or no longer
/// hosts it. A leadership change of the partition cuts a fetch that is
/// long-polling the old leader short (its connection is dropped).
async fn follow(broker: Arc<Broker>, topic: Arc<str>, partition: i32) {
    let replica = broker.replicas.get_or_create(&topic, partition);
    let mut events = broker.agent.subscribe();
    let mut fetcher = Fetcher { broker, replica, connection: None, synced_epoch: None };
    let mut backoff = BACKOFF_MIN;
    loop {
        let Some(view) = fetcher.broker.agent.partition(&topic, partition) else { return };
        if view.is_leader || !view.is_replica {
            return;
        }
        let result = if view.leader < 0 || view.leader_endpoint.is_empty() {
            Err(FollowError::Kafka(crate::handlers::code::LEADER_NOT_AVAILABLE))
        } else {
            tokio::select! {
                r = fetcher.step(&view) => r,
                () = leadership_changed(&mut events, &view) => Err(FollowError::LeaderChanged),
            }
        };
        match result {
            Ok(()) => backoff = BACKOFF_MIN,
            Err(FollowError::LeaderChanged) => {
                fetcher.connection = None;
                backoff = BACKOFF_MIN;
            }
            Err(error) => {
                tracing::debug!(%topic, partition, leader = view.leader, %error, "replica fetch failed; retrying");
                if matches!(error, FollowError::Wire(_)) {
                    fetcher.connection = None;
                }
                // A leadership change ends the wait early.
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = leadership_changed(&mut events, &view) => {}
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

/// Resolves when the agent publishes a new leader or leader epoch for the
/// partition of `view` (or when events were missed, to be safe).
async fn leadership_changed(events: &mut broadcast::Receiver<baton_agent::LeadershipEvent>, view: &PartitionView) {
    loop {
        match events.recv().await {
            Ok(event) => {
                let moved = event.changes.iter().any(|c| {
                    c.view.topic == view.topic
                        && c.view.partition == view.partition
                        && (c.view.leader != view.leader || c.view.leader_epoch != view.leader_epoch)
                });
                if moved {
                    return;
                }
            }
            Err(broadcast::error::RecvError::Lagged(_)) => return,
            Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
        }
    }
}

struct Fetcher {
    broker: Arc<Broker>,
    replica: Arc<Partition>,
    connection: Option<Connection>,
    /// The leader epoch this replica truncated for (None: truncate first).
    synced_epoch: Option<i32>,
}

impl Fetcher {
    fn me(&self) -> i32 {
        self.broker.config.broker_id
    }

    fn rpc_timeout(&self) -> Duration {
        self.broker.config.replica_fetch_wait + Duration::from_secs(5)
    }

    async fn step(&mut self, view: &PartitionView) -> Result<(), FollowError> {
        let epoch = view.leader_epoch;
        if self.connection.as_ref().is_none_or(|c| c.endpoint() != &*view.leader_endpoint) {
            let client_id = format!("baton-refbroker-{}-replica", self.me());
            self.connection = Some(Connection::connect(&view.leader_endpoint, client_id, self.rpc_timeout()).await?);
            self.synced_epoch = None;
        }
        if self.synced_epoch != Some(epoch) {
            if !self.replica.become_follower(epoch) {
                return Err(FollowError::Role(WrongRole { role: self.replica.marks().role, epoch }));
            }
            self.truncate(view, epoch).await?;
            self.synced_epoch = Some(epoch);
        }
        self.fetch(view, epoch).await
    }

    fn topic_name(view: &PartitionView) -> TopicName {
        TopicName(StrBytes::from_string(view.topic.to_string()))
    }

    /// Truncates to where the leader says this log's latest epoch ends.
    async fn truncate(&mut self, view: &PartitionView, epoch: i32) -> Result<(), FollowError> {
        let mine = self.replica.latest_epoch();
        if mine >= 0 {
            let mut p = OffsetForLeaderPartition::default();
            p.partition = view.partition;
            p.current_leader_epoch = epoch;
            p.leader_epoch = mine;
            let mut t = OffsetForLeaderTopic::default();
            t.topic = Self::topic_name(view);
            t.partitions.push(p);
            let mut request = OffsetForLeaderEpochRequest::default();
            request.replica_id = BrokerId(self.me());
            request.topics.push(t);
            let timeout = self.rpc_timeout();
            let connection = self.connection.as_mut().ok_or(FollowError::Missing)?;
            let response = connection.call(&request, OFFSET_FOR_LEADER_EPOCH_VERSION, timeout).await?;
            let answer = response
                .topics
                .iter()
                .flat_map(|t| t.partitions.iter())
                .find(|p| p.partition == view.partition)
                .ok_or(FollowError::Missing)?;
            if answer.error_code != 0 {
                return Err(FollowError::Kafka(answer.error_code));
            }
            let marks = self.replica.marks();
            // Where the answered epoch ends in this log: its data up to there
            // is the leader's too; past it, it is not.
            let local_end = if answer.leader_epoch < 0 {
                marks.log_start_offset
            } else {
                let end = self.replica.end_offset_for_epoch(answer.leader_epoch);
                if end.leader_epoch < 0 { marks.log_start_offset } else { end.end_offset }
            };
            let target = if answer.end_offset < 0 { local_end } else { answer.end_offset.min(local_end) };
            if target < marks.log_end_offset {
                tracing::info!(
                    topic = %view.topic,
                    partition = view.partition,
                    leader_epoch = epoch,
                    from = marks.log_end_offset,
                    to = target,
                    "truncating to the new leader's epoch boundary"
                );
            }
            self.replica.truncate_as_follower(target, epoch)?;
        }
        let leo = self.replica.marks().log_end_offset;
        self.broker.agent.record_replica_progress(&view.topic, view.partition, leo);
        Ok(())
    }

    async fn fetch(&mut self, view: &PartitionView, epoch: i32) -> Result<(), FollowError> {
        let before = self.replica.marks();
        let mut p = FetchPartition::default();
        p.partition = view.partition;
        p.current_leader_epoch = epoch;
        p.fetch_offset = before.log_end_offset;
        p.log_start_offset = before.log_start_offset;
        p.partition_max_bytes = REPLICA_FETCH_MAX_BYTES;
        let mut t = FetchTopic::default();
        t.topic = Self::topic_name(view);
        t.partitions.push(p);
        let mut request = FetchRequest::default();
        request.replica_id = BrokerId(self.me());
        request.max_wait_ms = i32::try_from(self.broker.config.replica_fetch_wait.as_millis()).unwrap_or(500);
        request.min_bytes = 1;
        request.max_bytes = REPLICA_FETCH_MAX_BYTES;
        request.session_epoch = -1;
        request.topics.push(t);
        let timeout = self.rpc_timeout();
        let connection = self.connection.as_mut().ok_or(FollowError::Missing)?;
        let response = connection.call(&request, FETCH_VERSION, timeout).await?;
        if response.error_code != 0 {
            return Err(FollowError::Kafka(response.error_code));
        }
        let data = response
            .responses
            .iter()
            .flat_map(|t| t.partitions.iter())
            .find(|p| p.partition_index == view.partition)
            .ok_or(FollowError::Missing)?;
        match data.error_code {
            0 => {}
            OFFSET_OUT_OF_RANGE if before.log_end_offset < data.log_start_offset => {
                self.replica.reset_as_follower(data.log_start_offset, epoch)?;
                return Ok(());
            }
            OFFSET_OUT_OF_RANGE => {
                self.synced_epoch = None;
                return Err(FollowError::Kafka(OFFSET_OUT_OF_RANGE));
            }
            code => return Err(FollowError::Kafka(code)),
        }
        let batches = match &data.records {
            Some(records) => parse_batches(records, true).map_err(|e| WireError::Codec(e.to_string()))?,
            None => Vec::new(),
        };
        if !self.replica.append_as_follower(batches, epoch, data.high_watermark)? {
            self.synced_epoch = None;
        }
        let leo = self.replica.marks().log_end_offset;
        // Report every fetch: the controller's ISR rejoin compares offsets
        // reported in its own term.
        self.broker.agent.record_replica_progress(&view.topic, view.partition, leo);
        Ok(())
    }
}
