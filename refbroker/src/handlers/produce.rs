//! Produce: the agent's `check_produce` first, then a checked append as
//! leader; acks=all answers only once the high watermark passed the append.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::produce_response::{
    LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{BrokerId, ProduceRequest, ProduceResponse};
use tokio::time::Instant;

use super::{code, endpoint_of, hint};
use crate::Broker;
use crate::batch::parse_batches;
use crate::replica::{IsrView, Partition, Role};

/// Bound on how long an acks=all produce may wait, whatever it asks.
const MAX_PRODUCE_TIMEOUT: Duration = Duration::from_secs(60);

/// A partition's append waiting for acks=all.
struct Pending {
    topic: usize,
    partition: usize,
    replica: Arc<Partition>,
    epoch: i32,
    last_offset: i64,
}

pub(super) async fn handle(broker: &Broker, request: ProduceRequest, version: i16) -> Option<ProduceResponse> {
    let acks = request.acks;
    let mut response = ProduceResponse::default();
    let mut endpoints: BTreeMap<i32, Arc<str>> = BTreeMap::new();
    let mut pending = Vec::new();
    for (ti, topic) in request.topic_data.iter().enumerate() {
        let name = topic.name.0.as_str();
        let mut out = TopicProduceResponse::default();
        out.name = topic.name.clone();
        for (pi, data) in topic.partition_data.iter().enumerate() {
            let mut p = PartitionProduceResponse::default();
            p.index = data.index;
            p.base_offset = -1;
            if !matches!(acks, -1..=1) {
                p.error_code = code::INVALID_REQUIRED_ACKS;
                out.partition_responses.push(p);
                continue;
            }
            match broker.agent.check_produce(name, data.index) {
                Err(refusal) => {
                    tracing::debug!(topic = name, partition = data.index, %refusal, "produce refused");
                    let (leader, leader_epoch, endpoint) = hint(&refusal);
                    p.error_code = refusal.kafka_error_code();
                    let mut current = LeaderIdAndEpoch::default();
                    current.leader_id = BrokerId(leader);
                    current.leader_epoch = leader_epoch;
                    p.current_leader = current;
                    if let Some((id, endpoint)) = endpoint {
                        endpoints.insert(id, endpoint);
                    }
                }
                Ok(epoch) => append(broker, name, data, epoch, &mut p, acks, (ti, pi), &mut pending),
            }
            out.partition_responses.push(p);
        }
        response.responses.push(out);
    }
    if acks == 0 {
        return None;
    }
    if !pending.is_empty() {
        let timeout = Duration::from_millis(u64::try_from(request.timeout_ms).unwrap_or(0)).min(MAX_PRODUCE_TIMEOUT);
        wait_for_isr(broker, &mut response, pending, Instant::now() + timeout, &mut endpoints).await;
    }
    if version < 5 {
        // Not in the wire format before v5; the encoder refuses a set value.
        for p in response.responses.iter_mut().flat_map(|t| t.partition_responses.iter_mut()) {
            p.log_start_offset = -1;
        }
    }
    if version >= 10 {
        response.node_endpoints = endpoints
            .iter()
            .filter_map(|(id, endpoint)| {
                let (host, port) = endpoint_of(endpoint)?;
                let mut n = NodeEndpoint::default();
                n.node_id = BrokerId(*id);
                n.host = host;
                n.port = port;
                Some(n)
            })
            .collect();
    }
    Some(response)
}

#[allow(clippy::too_many_arguments)]
fn append(
    broker: &Broker,
    topic: &str,
    data: &kafka_protocol::messages::produce_request::PartitionProduceData,
    epoch: i32,
    p: &mut PartitionProduceResponse,
    acks: i16,
    at: (usize, usize),
    pending: &mut Vec<Pending>,
) {
    let Some(records) = &data.records else {
        p.error_code = code::INVALID_RECORD;
        return;
    };
    let batches = match parse_batches(records, false) {
        Ok(b) if !b.is_empty() => b,
        Ok(_) => {
            p.error_code = code::INVALID_RECORD;
            return;
        }
        Err(error) => {
            tracing::warn!(topic, partition = data.index, %error, "refused a produce");
            p.error_code = error.kafka_error_code();
            return;
        }
    };
    let Some(view) = broker.agent.partition(topic, data.index) else {
        p.error_code = baton_agent::kafka_error::UNKNOWN_TOPIC_OR_PARTITION;
        return;
    };
    let replica = broker.replicas.get_or_create(&view.topic, data.index);
    replica.ensure_leader(epoch);
    match replica.append_as_leader(&batches, epoch, IsrView::from(&view), broker.config.broker_id) {
        Err(error) => {
            tracing::debug!(topic, partition = data.index, %error, "produce refused: the replica changed role");
            p.error_code = code::NOT_LEADER_OR_FOLLOWER;
        }
        Ok((base, last)) => {
            broker.agent.record_produce(topic, data.index, last + 1);
            p.base_offset = base;
            p.log_start_offset = replica.marks().log_start_offset;
            if acks == -1 {
                pending.push(Pending { topic: at.0, partition: at.1, replica, epoch, last_offset: last });
            }
        }
    }
}

/// Waits until every pending append is below its leader's high watermark;
/// those whose leadership ended answer NOT_LEADER_OR_FOLLOWER with a hint,
/// those still short at the deadline REQUEST_TIMED_OUT. Either way the
/// client retries: its data may then be written twice, never lost.
async fn wait_for_isr(
    broker: &Broker,
    response: &mut ProduceResponse,
    mut pending: Vec<Pending>,
    deadline: Instant,
    endpoints: &mut BTreeMap<i32, Arc<str>>,
) {
    let mut changes = broker.replicas.subscribe();
    loop {
        pending.retain(|w| {
            let marks = w.replica.marks();
            let p = &mut response.responses[w.topic].partition_responses[w.partition];
            if marks.role != (Role::Leader { epoch: w.epoch }) {
                p.error_code = code::NOT_LEADER_OR_FOLLOWER;
                p.base_offset = -1;
                if let Err(refusal) = broker.agent.check_produce(&w.replica.topic, w.replica.partition) {
                    let (leader, leader_epoch, endpoint) = hint(&refusal);
                    p.current_leader.leader_id = BrokerId(leader);
                    p.current_leader.leader_epoch = leader_epoch;
                    if let Some((id, e)) = endpoint {
                        endpoints.insert(id, e);
                    }
                }
                return false;
            }
            marks.high_watermark <= w.last_offset
        });
        if pending.is_empty() {
            return;
        }
        match tokio::time::timeout_at(deadline, changes.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => break,
        }
    }
    for w in pending {
        let p = &mut response.responses[w.topic].partition_responses[w.partition];
        p.error_code = code::REQUEST_TIMED_OUT;
        p.base_offset = -1;
    }
}
