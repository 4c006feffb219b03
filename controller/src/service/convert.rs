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

pub fn partition_info(state: &State, topic: &str, topic_id: u64, partition: i32, p: &Partition) -> pb::PartitionInfo {
    pb::PartitionInfo {
        topic_id,
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
            .map(|(i, p)| partition_info(state, &t.name, t.id, i as i32, p))
            .collect(),
    }
}

pub fn full_update(state: &State) -> pb::LeadershipUpdate {
    let mut partitions = Vec::new();
    for t in state.topics() {
        for (i, p) in t.partitions.iter().enumerate() {
            partitions.push(partition_info(state, &t.name, t.id, i as i32, p));
        }
    }
    pb::LeadershipUpdate {
        metadata_version: state.applied_index(),
        full: true,
        partitions,
        deleted_topics: Vec::new(),
        brokers: state.brokers().map(|b| broker_info(b, -1)).collect(),
        partial: false,
    }
}

pub fn delta_update(state: &State, version: u64, changes: &Changes) -> pb::LeadershipUpdate {
    pb::LeadershipUpdate {
        metadata_version: version,
        full: false,
        partitions: changes
            .partitions
            .iter()
            // The id of the topic as it stands now: for a change to a topic
            // since deleted and re-created this names the newer one.
            .map(|c| partition_info(state, &c.topic, state.topic(&c.topic).map_or(0, |t| t.id), c.partition, &c.record))
            .collect(),
        deleted_topics: changes.deleted_topics.clone(),
        brokers: changes.brokers.iter().map(|b| broker_info(b, -1)).collect(),
        partial: false,
    }
}

/// Splits an update into messages of at most `max_partitions` partitions
/// (see `LeadershipUpdate.partial`), so no message nears a decode limit.
pub fn chunked(mut update: pb::LeadershipUpdate, max_partitions: usize) -> Vec<pb::LeadershipUpdate> {
    let max = max_partitions.max(1);
    if update.partitions.len() <= max {
        return vec![update];
    }
    let mut rest = std::mem::take(&mut update.partitions);
    let mut chunks = Vec::with_capacity(rest.len() / max + 1);
    let tail = rest.split_off(max);
    update.partitions = rest;
    update.partial = true;
    let version = update.metadata_version;
    chunks.push(update);
    let mut iter = tail.into_iter().peekable();
    while iter.peek().is_some() {
        let partitions: Vec<_> = iter.by_ref().take(max).collect();
        chunks.push(pb::LeadershipUpdate {
            metadata_version: version,
            partitions,
            partial: true,
            ..Default::default()
        });
    }
    if let Some(last) = chunks.last_mut() {
        last.partial = false;
    }
    chunks
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_updates_are_split_into_partial_chunks_of_one_version() {
        let update = pb::LeadershipUpdate {
            metadata_version: 9,
            full: true,
            partitions: (0..25).map(|p| pb::PartitionInfo { partition: p, ..Default::default() }).collect(),
            deleted_topics: vec!["gone".into()],
            brokers: vec![pb::BrokerInfo::default()],
            partial: false,
        };
        let chunks = chunked(update, 10);
        assert_eq!(chunks.iter().map(|c| c.partitions.len()).collect::<Vec<_>>(), vec![10, 10, 5]);
        assert_eq!(chunks.iter().map(|c| c.partial).collect::<Vec<_>>(), vec![true, true, false]);
        assert!(chunks[0].full && !chunks[1].full && !chunks[2].full);
        assert!(chunks.iter().all(|c| c.metadata_version == 9));
        assert_eq!(chunks[0].deleted_topics.len() + chunks[0].brokers.len(), 2, "extras ride with the first chunk");
        let small = pb::LeadershipUpdate { metadata_version: 3, ..Default::default() };
        assert_eq!(chunked(small.clone(), 10), vec![small]);
    }
}
