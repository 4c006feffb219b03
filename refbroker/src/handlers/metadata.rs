//! Metadata: the agent's view of partitions and the brokers' registered
//! (Kafka) endpoints. No topic is ever created here.

use std::collections::BTreeMap;
use std::sync::Arc;

use baton_agent::PartitionView;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::{code, endpoint_of};
use crate::Broker;

pub(super) fn handle(broker: &Broker, request: &MetadataRequest, version: i16) -> MetadataResponse {
    let mut response = MetadataResponse::default();
    let mut endpoints: BTreeMap<i32, Arc<str>> = broker.agent.broker_endpoints().into_iter().collect();
    // This broker before its first update arrives.
    endpoints.entry(broker.config.broker_id).or_insert_with(|| Arc::from(broker.config.advertised.as_str()));
    for (id, endpoint) in &endpoints {
        let Some((host, port)) = endpoint_of(endpoint) else { continue };
        let mut b = MetadataResponseBroker::default();
        b.node_id = BrokerId(*id);
        b.host = host;
        b.port = port;
        response.brokers.push(b);
    }
    if version >= 2 {
        response.cluster_id = Some(StrBytes::from_static_str("baton"));
    }
    response.controller_id = BrokerId(broker.config.broker_id);

    let mut topics: BTreeMap<Arc<str>, Vec<PartitionView>> = BTreeMap::new();
    for view in broker.agent.view() {
        topics.entry(Arc::clone(&view.topic)).or_default().push(view);
    }
    match &request.topics {
        None => {
            for (name, partitions) in &topics {
                response.topics.push(topic(name, partitions, version));
            }
        }
        Some(wanted) => {
            for t in wanted {
                let Some(name) = &t.name else { continue };
                match topics.get(name.0.as_str()) {
                    Some(partitions) => response.topics.push(topic(name.0.as_str(), partitions, version)),
                    None => {
                        let mut unknown = MetadataResponseTopic::default();
                        unknown.error_code = baton_agent::kafka_error::UNKNOWN_TOPIC_OR_PARTITION;
                        unknown.name = Some(name.clone());
                        response.topics.push(unknown);
                    }
                }
            }
        }
    }
    response
}

fn topic(name: &str, partitions: &[PartitionView], version: i16) -> MetadataResponseTopic {
    let mut t = MetadataResponseTopic::default();
    t.name = Some(TopicName(StrBytes::from_string(name.to_owned())));
    for view in partitions {
        let mut p = MetadataResponsePartition::default();
        p.partition_index = view.partition;
        p.error_code = if view.leader < 0 { code::LEADER_NOT_AVAILABLE } else { code::NONE };
        p.leader_id = BrokerId(view.leader);
        if version >= 7 {
            p.leader_epoch = view.leader_epoch;
        }
        p.replica_nodes = view.replicas.iter().map(|r| BrokerId(*r)).collect();
        p.isr_nodes = view.isr.iter().map(|r| BrokerId(*r)).collect();
        t.partitions.push(p);
    }
    t
}
