//! ListOffsets (earliest, latest = high watermark, by timestamp) and
//! OffsetForLeaderEpoch (where a leader epoch ends in the leader's log; a
//! follower truncates there).

use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::offset_for_leader_epoch_response::{EpochEndOffset, OffsetForLeaderTopicResult};
use kafka_protocol::messages::{
    ListOffsetsRequest, ListOffsetsResponse, OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse,
};

use crate::Broker;
use crate::replica::Partition;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;

/// The leader's replica after `check_fetch`, or the Kafka error code.
fn leader_replica(
    broker: &Broker,
    topic: &str,
    partition: i32,
    leader_epoch: i32,
) -> Result<std::sync::Arc<Partition>, i16> {
    let epoch = broker.agent.check_fetch(topic, partition, leader_epoch).map_err(|r| r.kafka_error_code())?;
    let view = broker.agent.partition(topic, partition).ok_or(baton_agent::kafka_error::UNKNOWN_TOPIC_OR_PARTITION)?;
    let replica = broker.replicas.get_or_create(&view.topic, partition);
    replica.ensure_leader(epoch);
    Ok(replica)
}

pub(super) fn list_offsets(broker: &Broker, request: &ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
    let mut response = ListOffsetsResponse::default();
    for topic in &request.topics {
        let mut out = ListOffsetsTopicResponse::default();
        out.name = topic.name.clone();
        for lp in &topic.partitions {
            let mut p = ListOffsetsPartitionResponse::default();
            p.partition_index = lp.partition_index;
            let leader_epoch = if version >= 4 { lp.current_leader_epoch } else { -1 };
            match leader_replica(broker, topic.name.0.as_str(), lp.partition_index, leader_epoch) {
                Err(code) => p.error_code = code,
                Ok(replica) => {
                    let marks = replica.marks();
                    let found = match lp.timestamp {
                        LATEST => Some((marks.high_watermark, -1, -1)),
                        EARLIEST => Some((marks.log_start_offset, -1, -1)),
                        MAX_TIMESTAMP => None,
                        t => replica.offset_for_timestamp(t).filter(|(offset, _, _)| *offset < marks.high_watermark),
                    };
                    let (offset, timestamp, epoch) = found.unwrap_or((-1, -1, -1));
                    p.offset = offset;
                    p.timestamp = timestamp;
                    if version >= 4 {
                        p.leader_epoch = epoch;
                    }
                }
            }
            out.partitions.push(p);
        }
        response.topics.push(out);
    }
    response
}

pub(super) fn offset_for_leader_epoch(
    broker: &Broker,
    request: &OffsetForLeaderEpochRequest,
    _version: i16,
) -> OffsetForLeaderEpochResponse {
    let mut response = OffsetForLeaderEpochResponse::default();
    for topic in &request.topics {
        let mut out = OffsetForLeaderTopicResult::default();
        out.topic = topic.topic.clone();
        for op in &topic.partitions {
            let mut p = EpochEndOffset::default();
            p.partition = op.partition;
            p.leader_epoch = -1;
            p.end_offset = -1;
            match leader_replica(broker, topic.topic.0.as_str(), op.partition, op.current_leader_epoch) {
                Err(code) => p.error_code = code,
                Ok(replica) => {
                    let end = replica.end_offset_for_epoch(op.leader_epoch);
                    p.leader_epoch = end.leader_epoch;
                    p.end_offset = end.end_offset;
                }
            }
            out.partitions.push(p);
        }
        response.topics.push(out);
    }
    response
}
