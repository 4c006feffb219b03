//! Helpers shared by the in-process tests: a broker served on a loopback
//! port with a hand-fed agent, and one call per Kafka API.
#![allow(dead_code)] // each test binary uses a subset

use std::time::Duration;

use baton_agent::Agent;
use baton_refbroker::batch::testing::batch_bytes;
use baton_refbroker::client::Connection;
use baton_refbroker::{BrokerConfig, serve};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub const T: Duration = Duration::from_secs(5);

/// Binds a loopback listener (its address is what the views name).
pub async fn listener() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    (listener, addr)
}

/// Serves broker `broker_id` with `agent` on `listener`; dropping the
/// returned sender does not stop it (the runtime's end does).
pub fn start(broker_id: i32, agent: &Agent, listener: TcpListener, advertised: &str) -> watch::Sender<bool> {
    let (stop, shutdown) = watch::channel(false);
    let config = BrokerConfig::new(broker_id, vec!["127.0.0.1:1".into()], advertised);
    tokio::spawn(serve(config, agent.clone(), listener, shutdown));
    stop
}

pub async fn connect(addr: &str) -> Connection {
    Connection::connect(addr, "refbroker-test".into(), T).await.expect("connect")
}

pub fn topic() -> TopicName {
    TopicName(StrBytes::from_static_str("t"))
}

pub async fn produce(c: &mut Connection, partition: i32, acks: i16, count: i32) -> ProduceResponse {
    produce_at(c, 10, partition, acks, count).await
}

pub async fn produce_at(c: &mut Connection, version: i16, partition: i32, acks: i16, count: i32) -> ProduceResponse {
    produce_within(c, version, partition, acks, count, 5000).await
}

/// A produce whose acks=all wait ends after `timeout_ms` (then error 7).
pub async fn produce_within(
    c: &mut Connection,
    version: i16,
    partition: i32,
    acks: i16,
    count: i32,
    timeout_ms: i32,
) -> ProduceResponse {
    let mut data = PartitionProduceData::default();
    data.index = partition;
    data.records = Some(batch_bytes(0, -1, count));
    let mut t = TopicProduceData::default();
    t.name = topic();
    t.partition_data.push(data);
    let mut request = ProduceRequest::default();
    request.acks = acks;
    request.timeout_ms = timeout_ms;
    request.topic_data.push(t);
    c.call(&request, version, T).await.expect("produce")
}

pub async fn fetch(c: &mut Connection, partition: i32, leader_epoch: i32, offset: i64) -> FetchResponse {
    fetch_at(c, 12, partition, leader_epoch, offset).await
}

pub async fn fetch_at(
    c: &mut Connection,
    version: i16,
    partition: i32,
    leader_epoch: i32,
    offset: i64,
) -> FetchResponse {
    fetch_as(c, version, -1, partition, leader_epoch, offset).await
}

/// A fetch as replica `replica_id` (-1: a consumer).
pub async fn fetch_as(
    c: &mut Connection,
    version: i16,
    replica_id: i32,
    partition: i32,
    leader_epoch: i32,
    offset: i64,
) -> FetchResponse {
    let mut p = FetchPartition::default();
    p.partition = partition;
    p.current_leader_epoch = leader_epoch;
    p.fetch_offset = offset;
    p.partition_max_bytes = 1 << 20;
    let mut t = FetchTopic::default();
    t.topic = topic();
    t.partitions.push(p);
    let mut request = FetchRequest::default();
    request.replica_id = BrokerId(replica_id);
    request.max_wait_ms = 0;
    request.max_bytes = 1 << 20;
    request.topics.push(t);
    c.call(&request, version, T).await.expect("fetch")
}
