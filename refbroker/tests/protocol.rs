//! The Kafka API of one reference broker, in process, over a real socket,
//! with an agent whose view and lease are fed by hand
//! (`baton_agent::testing`). Each test names what it proves.

mod common;

use std::time::Duration;

use baton_agent::Agent;
use baton_agent::testing::{apply, grant_lease, idle_agent, partition, suspend};
use baton_proto::v1::{BrokerInfo, LeadershipUpdate};
use baton_refbroker::client::Connection;
use common::{T, connect, fetch, fetch_at, listener, produce, produce_at, start, topic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{OffsetForLeaderPartition, OffsetForLeaderTopic};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, BrokerId, MetadataRequest, OffsetForLeaderEpochRequest};

/// Broker 1 leads t/0 (epoch 3, ISR {1}); broker 2 leads t/1 (epoch 5).
async fn broker() -> (Agent, Connection, tokio::sync::watch::Sender<bool>) {
    let agent = idle_agent(1);
    let update = LeadershipUpdate {
        metadata_version: 7,
        full: true,
        partitions: vec![partition("t", 0, 1, 3, &[1]), partition("t", 1, 2, 5, &[2, 1])],
        deleted_topics: Vec::new(),
        brokers: vec![
            BrokerInfo { id: 1, endpoint: "broker-1:9092".into(), ..Default::default() },
            BrokerInfo { id: 2, endpoint: "broker-2:9092".into(), ..Default::default() },
        ],
        partial: false,
    };
    assert!(apply(&agent, &update));
    grant_lease(&agent, Duration::from_secs(60));
    let (listener, addr) = listener().await;
    let stop = start(1, &agent, listener, "broker-1:9092");
    (agent, connect(&addr).await, stop)
}

/// OffsetForLeaderEpoch for t/0 as follower 2, at the leader's epoch 3.
async fn epoch_end(
    c: &mut Connection,
    version: i16,
    leader_epoch: i32,
) -> kafka_protocol::messages::offset_for_leader_epoch_response::EpochEndOffset {
    let mut op = OffsetForLeaderPartition::default();
    op.partition = 0;
    op.current_leader_epoch = 3;
    op.leader_epoch = leader_epoch;
    let mut ot = OffsetForLeaderTopic::default();
    ot.topic = topic();
    ot.partitions.push(op);
    let mut request = OffsetForLeaderEpochRequest::default();
    request.replica_id = BrokerId(2);
    request.topics.push(ot);
    let mut response = c.call(&request, version, T).await.expect("offset for leader epoch");
    response.topics.remove(0).partitions.remove(0)
}

#[tokio::test]
async fn api_versions_lists_the_served_apis() {
    let (_agent, mut c, _stop) = broker().await;
    let response = c.call(&ApiVersionsRequest::default(), 3, T).await.expect("api versions");
    assert_eq!(response.error_code, 0);
    let produce = response.api_keys.iter().find(|k| k.api_key == ApiKey::Produce as i16).expect("produce");
    assert_eq!((produce.min_version, produce.max_version), (3, 10));
}

/// A produce for a partition another broker leads is refused with 6 and the
/// KIP-951 hint: CurrentLeader (id, epoch) and that leader's NodeEndpoint.
#[tokio::test]
async fn produce_to_a_follower_is_refused_with_the_current_leader_hint() {
    let (_agent, mut c, _stop) = broker().await;
    let response = produce(&mut c, 1, -1, 2).await;
    let p = &response.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 6);
    assert_eq!((p.current_leader.leader_id, p.current_leader.leader_epoch), (BrokerId(2), 5));
    let node = response.node_endpoints.iter().find(|n| n.node_id == BrokerId(2)).expect("leader's endpoint");
    assert_eq!((node.host.as_str(), node.port), ("broker-2", 9092));
}

/// acks=all with the leader alone in the ISR is answered with the assigned
/// offset; a consumer reads the batch back; stale and future leader epochs
/// are refused with 74 and 75; OffsetForLeaderEpoch gives the epoch's end.
#[tokio::test]
async fn produce_fetch_and_epoch_checks_on_the_leader() {
    let (_agent, mut c, _stop) = broker().await;
    let first = produce(&mut c, 0, -1, 3).await;
    let p = &first.responses[0].partition_responses[0];
    assert_eq!((p.error_code, p.base_offset), (0, 0));
    let second = produce(&mut c, 0, 1, 2).await;
    assert_eq!(second.responses[0].partition_responses[0].base_offset, 3);

    let read = fetch(&mut c, 0, 3, 0).await;
    let data = &read.responses[0].partitions[0];
    assert_eq!((data.error_code, data.high_watermark), (0, 5));
    let batches = baton_refbroker::batch::parse_batches(data.records.as_ref().expect("records"), false).expect("valid");
    assert_eq!(batches.iter().map(|b| (b.base_offset, b.leader_epoch)).collect::<Vec<_>>(), vec![(0, 3), (3, 3)]);

    assert_eq!(fetch(&mut c, 0, 2, 0).await.responses[0].partitions[0].error_code, 74);
    assert_eq!(fetch(&mut c, 0, 4, 0).await.responses[0].partitions[0].error_code, 75);
    assert_eq!(fetch(&mut c, 0, 3, 99).await.responses[0].partitions[0].error_code, 1, "offset out of range");

    let end = epoch_end(&mut c, 4, 3).await;
    assert_eq!((end.error_code, end.leader_epoch, end.end_offset), (0, 3, 5));
}

/// Metadata is the agent's view, with the brokers' registered endpoints.
#[tokio::test]
async fn metadata_is_the_agents_view() {
    let (_agent, mut c, _stop) = broker().await;
    let mut request = MetadataRequest::default();
    request.topics = None; // all topics
    let response = c.call(&request, 12, T).await.expect("metadata");
    let brokers: Vec<(i32, String, i32)> =
        response.brokers.iter().map(|b| (b.node_id.0, b.host.to_string(), b.port)).collect();
    assert_eq!(brokers, vec![(1, "broker-1".into(), 9092), (2, "broker-2".into(), 9092)]);
    let t = &response.topics[0];
    let leaders: Vec<(i32, i32, i32)> =
        t.partitions.iter().map(|p| (p.partition_index, p.leader_id.0, p.leader_epoch)).collect();
    assert_eq!(leaders, vec![(0, 1, 3), (1, 2, 5)]);
}

/// A leader whose lease lapsed refuses produces (6, no leader named), with
/// nothing appended.
#[tokio::test]
async fn a_lapsed_lease_refuses_produce() {
    let (agent, mut c, _stop) = broker().await;
    suspend(&agent);
    let response = produce(&mut c, 0, -1, 1).await;
    let p = &response.responses[0].partition_responses[0];
    assert_eq!((p.error_code, p.current_leader.leader_id), (6, BrokerId(-1)));
    grant_lease(&agent, Duration::from_secs(60));
    let read = fetch(&mut c, 0, 3, 0).await;
    assert_eq!(read.responses[0].partitions[0].high_watermark, 0, "the refused produce left no trace");
}

/// Every advertised version of Produce and Fetch encodes its answers (a
/// field set outside its versions would make the encoder refuse).
#[tokio::test]
async fn every_advertised_produce_and_fetch_version_answers() {
    let (_agent, mut c, _stop) = broker().await;
    let mut expected_offset = 0;
    for version in 3..=10 {
        let response = produce_at(&mut c, version, 0, 1, 1).await;
        let p = &response.responses[0].partition_responses[0];
        assert_eq!((p.error_code, p.base_offset), (0, expected_offset), "produce v{version}");
        expected_offset += 1;
        let refused = produce_at(&mut c, version, 1, 1, 1).await;
        assert_eq!(refused.responses[0].partition_responses[0].error_code, 6, "produce v{version}");
    }
    for version in 4..=12 {
        let response = fetch_at(&mut c, version, 0, if version >= 9 { 3 } else { -1 }, 0).await;
        let p = &response.responses[0].partitions[0];
        assert_eq!((p.error_code, p.high_watermark), (0, expected_offset), "fetch v{version}");
    }
}

/// Every advertised version of Metadata, ListOffsets, OffsetForLeaderEpoch
/// and ApiVersions answers.
#[tokio::test]
async fn every_advertised_version_of_the_other_apis_answers() {
    use kafka_protocol::messages::ListOffsetsRequest;
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    let (_agent, mut c, _stop) = broker().await;
    produce(&mut c, 0, 1, 2).await;
    for version in 1..=12 {
        let mut request = MetadataRequest::default();
        request.topics = None;
        let response = c.call(&request, version, T).await.expect("metadata");
        assert_eq!(response.topics.len(), 1, "metadata v{version}");
    }
    for version in 1..=7 {
        let mut p = ListOffsetsPartition::default();
        p.partition_index = 0;
        p.timestamp = -1;
        if version >= 4 {
            p.current_leader_epoch = 3;
        }
        let mut t = ListOffsetsTopic::default();
        t.name = topic();
        t.partitions.push(p);
        let mut request = ListOffsetsRequest::default();
        request.replica_id = BrokerId(-1);
        request.topics.push(t);
        let response = c.call(&request, version, T).await.expect("list offsets");
        let p = &response.topics[0].partitions[0];
        assert_eq!((p.error_code, p.offset), (0, 2), "list offsets v{version} (latest = high watermark)");
    }
    for version in 2..=4 {
        assert_eq!(epoch_end(&mut c, version, 3).await.end_offset, 2, "offset for leader epoch v{version}");
    }
    for version in 0..=3 {
        let response = c.call(&ApiVersionsRequest::default(), version, T).await.expect("api versions");
        assert_eq!(response.error_code, 0, "api versions v{version}");
    }
}
