//! Fetch, for consumers (`replica_id` -1: up to the high watermark) and for
//! follower replicas (`replica_id` = their broker id: up to the log end, and
//! the fetch offset tells the leader how far the follower's log reaches).

use std::time::Duration;

use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse};
use tokio::time::Instant;

use super::{code, hint};
use crate::Broker;
use crate::replica::IsrView;

/// Bound on a fetch's long poll, whatever it asks.
const MAX_FETCH_WAIT: Duration = Duration::from_secs(30);

pub(super) async fn handle(broker: &Broker, request: &FetchRequest, version: i16) -> FetchResponse {
    let wait = Duration::from_millis(u64::try_from(request.max_wait_ms).unwrap_or(0)).min(MAX_FETCH_WAIT);
    let deadline = Instant::now() + wait;
    let min_bytes = usize::try_from(request.min_bytes).unwrap_or(0).max(1);
    let mut changes = broker.replicas.subscribe();
    let mut first = true;
    loop {
        changes.borrow_and_update();
        let (response, bytes, errors) = read(broker, request, version, first);
        first = false;
        if bytes >= min_bytes || errors || Instant::now() >= deadline {
            return response;
        }
        match tokio::time::timeout_at(deadline, changes.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => return read(broker, request, version, false).0,
        }
    }
}

/// One pass over the requested partitions: (response, record bytes, any
/// error). A follower's fetch offset counts on the `first` pass only: a
/// fetch still long-polling says nothing about the follower later (it may
/// have died meanwhile), so it must not make the leader ask for it again.
fn read(broker: &Broker, request: &FetchRequest, version: i16, first: bool) -> (FetchResponse, usize, bool) {
    let follower = if first { request.replica_id.0 } else { -1 };
    let replica_fetch = request.replica_id.0 >= 0;
    let me = broker.config.broker_id;
    let mut budget = usize::try_from(request.max_bytes).unwrap_or(0).max(1);
    let mut response = FetchResponse::default();
    let mut total = 0usize;
    let mut errors = false;
    for topic in &request.topics {
        let name = topic.topic.0.as_str();
        let mut out = FetchableTopicResponse::default();
        out.topic = topic.topic.clone();
        for fp in &topic.partitions {
            let mut p = PartitionData::default();
            p.partition_index = fp.partition;
            p.high_watermark = -1;
            let leader_epoch = if version >= 9 { fp.current_leader_epoch } else { -1 };
            match broker.agent.check_fetch(name, fp.partition, leader_epoch) {
                Err(refusal) => {
                    let (leader, epoch, _) = hint(&refusal);
                    p.error_code = refusal.kafka_error_code();
                    p.current_leader.leader_id = BrokerId(leader);
                    p.current_leader.leader_epoch = epoch;
                    errors = true;
                }
                Ok(epoch) => {
                    let view = broker.agent.partition(name, fp.partition);
                    let Some(view) = view else {
                        p.error_code = baton_agent::kafka_error::UNKNOWN_TOPIC_OR_PARTITION;
                        errors = true;
                        out.partitions.push(p);
                        continue;
                    };
                    let replica = broker.replicas.get_or_create(&view.topic, fp.partition);
                    replica.ensure_leader(epoch);
                    if follower >= 0
                        && let Some(ask) =
                            replica.follower_fetched(follower, fp.fetch_offset, epoch, IsrView::from(&view), me)
                    {
                        // Already counted in the high watermark: now ask.
                        match broker.agent.request_isr_expansion(
                            name,
                            fp.partition,
                            epoch,
                            ask.partition_epoch,
                            follower,
                        ) {
                            Ok(()) => tracing::info!(
                                topic = name,
                                partition = fp.partition,
                                follower,
                                partition_epoch = ask.partition_epoch,
                                "follower caught up: asked to add it to the ISR"
                            ),
                            // It stays counted until the next partition epoch; harmless.
                            Err(refused) => {
                                tracing::debug!(topic = name, partition = fp.partition, follower, %refused, "ISR expansion not requested")
                            }
                        }
                    }
                    let marks = replica.marks();
                    p.high_watermark = marks.high_watermark;
                    p.last_stable_offset = marks.high_watermark;
                    if version >= 5 {
                        p.log_start_offset = marks.log_start_offset;
                    }
                    if fp.fetch_offset < marks.log_start_offset || fp.fetch_offset > marks.log_end_offset {
                        p.error_code = code::OFFSET_OUT_OF_RANGE;
                        errors = true;
                    } else {
                        let limit = if replica_fetch { marks.log_end_offset } else { marks.high_watermark };
                        let max = usize::try_from(fp.partition_max_bytes).unwrap_or(0).min(budget).max(1);
                        let records = replica.read(fp.fetch_offset, limit, max);
                        budget = budget.saturating_sub(records.len());
                        total += records.len();
                        p.records = Some(records);
                    }
                }
            }
            out.partitions.push(p);
        }
        response.responses.push(out);
    }
    (response, total, errors)
}
