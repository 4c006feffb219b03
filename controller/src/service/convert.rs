//! State-machine records to wire messages, and the update stream shared by
//! `WatchLeadership` and broker sessions (a full view, then deltas).

use baton_proto::v1 as pb;
use baton_state_machine::{Broker, BrokerState, Changes, NO_LEADER, Partition, State, Topic};
use tokio::sync::watch;

use crate::metadata::Metadata;

pub fn broker_state(s: BrokerState) -> pb::BrokerState {
    match s {
        BrokerState::Alive => pb::BrokerState::Alive,
        BrokerState::Fenced => pb::BrokerState::Fenced,
        BrokerState::ControlledShutdown => pb::BrokerState::ControlledShutdown,
        BrokerState::Drained => pb::BrokerState::Drained,
    }
}

pub fn broker_info(b: &Broker, last_heartbeat_age_ms: i64) -> pb::BrokerInfo {
    pb::BrokerInfo {
        id: b.id,
        state: broker_state(b.state) as i32,
        epoch: b.epoch,
        endpoint: b.endpoint.clone(),
        rack: b.rack.clone(),
        incarnation_id: b.incarnation_id.clone(),
        last_heartbeat_age_ms,
    }
}

pub fn leader_endpoint(state: &State, leader: i32) -> String {
    if leader == NO_LEADER {
        return String::new();
    }
    state.broker(leader).map(|b| b.endpoint.clone()).unwrap_or_default()
}

pub fn partition_info(state: &State, topic: &str, partition: i32, p: &Partition) -> pb::PartitionInfo {
    pb::PartitionInfo {
        topic: topic.to_string(),
        partition,
        leader: p.leader,
        leader_epoch: p.leader_epoch,
        partition_epoch: p.partition_epoch,
        replicas: p.replicas.clone(),
        isr: p.isr.clone(),
        leader_endpoint: leader_endpoint(state, p.leader),
    }
}

pub fn topic_description(state: &State, t: &Topic) -> pb::TopicDescription {
    pb::TopicDescription {
        name: t.name.to_string(),
        topic_id: t.id,
        config: Some(pb::TopicConfig { unclean_leader_election: t.config.unclean_leader_election }),
        partitions: t
            .partitions
            .iter()
            .enumerate()
            .map(|(i, p)| partition_info(state, &t.name, i as i32, p))
            .collect(),
    }
}

pub fn full_update(state: &State) -> pb::LeadershipUpdate {
    let mut partitions = Vec::new();
    for t in state.topics() {
        for (i, p) in t.partitions.iter().enumerate() {
            partitions.push(partition_info(state, &t.name, i as i32, p));
        }
    }
    pb::LeadershipUpdate {
        metadata_version: state.applied_index(),
        full: true,
        partitions,
        deleted_topics: Vec::new(),
        brokers: state.brokers().map(|b| broker_info(b, -1)).collect(),
    }
}

pub fn delta_update(state: &State, version: u64, changes: &Changes) -> pb::LeadershipUpdate {
    pb::LeadershipUpdate {
        metadata_version: version,
        full: false,
        partitions: changes
            .partitions
            .iter()
            .map(|c| partition_info(state, &c.topic, c.partition, &c.record))
            .collect(),
        deleted_topics: changes.deleted_topics.clone(),
        brokers: changes.brokers.iter().map(|b| broker_info(b, -1)).collect(),
    }
}

/// Where a reader of the update stream stands.
pub struct UpdateCursor {
    /// None: the next update is a full view.
    version: Option<u64>,
    rx: watch::Receiver<u64>,
}

impl UpdateCursor {
    /// `from_version` 0 starts with a full view; otherwise deltas after it
    /// when the change log still holds them.
    pub fn new(metadata: &Metadata, from_version: u64) -> UpdateCursor {
        UpdateCursor { version: (from_version > 0).then_some(from_version), rx: metadata.subscribe() }
    }

    pub fn version(&self) -> Option<u64> {
        self.version
    }

    /// The next updates for this reader, waiting until there are some.
    /// Returns None when the metadata is gone (shutdown).
    pub async fn next(&mut self, metadata: &Metadata) -> Option<Vec<(u64, pb::LeadershipUpdate)>> {
        loop {
            // Mark the current version seen BEFORE reading the log, so a
            // change landing in between wakes the wait below.
            self.rx.borrow_and_update();
            match self.version {
                None => {
                    let update = metadata.read(full_update);
                    self.version = Some(update.metadata_version);
                    return Some(vec![(update.metadata_version, update)]);
                }
                Some(v) => match metadata.changes_since(v) {
                    None => self.version = None,
                    Some(list) if !list.is_empty() => {
                        let updates: Vec<_> = metadata.read(|s| {
                            list.iter().map(|(version, c)| (*version, delta_update(s, *version, c))).collect()
                        });
                        self.version = updates.last().map(|(v, _)| *v);
                        return Some(updates);
                    }
                    Some(_) => {
                        if self.rx.changed().await.is_err() {
                            return None;
                        }
                    }
                },
            }
        }
    }
}
