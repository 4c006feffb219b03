//! State-machine records to wire messages, and the update stream shared by
//! `WatchLeadership` and broker sessions (a full view, then deltas).

use baton_proto::v1 as pb;
use baton_state_machine::{Broker, BrokerId, BrokerState, Changes, NO_LEADER, Partition, State, Topic};
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

/// Which partitions an update stream carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every partition of the cluster (WatchLeadership, brokers by default).
    All,
    /// Only the partitions this broker is a replica of, plus, in deltas,
    /// those it stopped hosting or leading (`Heartbeat.hosted_view`).
    Hosted(BrokerId),
}

pub fn full_update(state: &State, scope: Scope) -> pb::LeadershipUpdate {
    let mut partitions = Vec::new();
    match scope {
        Scope::All => {
            for t in state.topics() {
                for (i, p) in t.partitions.iter().enumerate() {
                    partitions.push(partition_info(state, &t.name, t.id, i as i32, p));
                }
            }
        }
        Scope::Hosted(broker) => {
            for (name, i) in state.partitions_of_broker(broker) {
                if let Some(t) = state.topic(name)
                    && let Some(p) = usize::try_from(i).ok().and_then(|i| t.partitions.get(i))
                {
                    partitions.push(partition_info(state, name, t.id, i, p));
                }
            }
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

pub fn delta_update(state: &State, version: u64, changes: &Changes, scope: Scope) -> pb::LeadershipUpdate {
    pb::LeadershipUpdate {
        metadata_version: version,
        full: false,
        partitions: changes
            .partitions
            .iter()
            .filter(|c| match scope {
                Scope::All => true,
                Scope::Hosted(broker) => c.concerns(broker),
            })
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
    scope: Scope,
}

impl UpdateCursor {
    /// `from_version` 0 starts with a full view; otherwise deltas after it
    /// when the change log still holds them.
    pub fn new(metadata: &Metadata, from_version: u64, scope: Scope) -> UpdateCursor {
        UpdateCursor { version: (from_version > 0).then_some(from_version), rx: metadata.subscribe(), scope }
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
                    let update = metadata.read(|s| full_update(s, self.scope));
                    self.version = Some(update.metadata_version);
                    return Some(vec![(update.metadata_version, update)]);
                }
                Some(v) => match metadata.changes_since(v) {
                    None => self.version = None,
                    Some(list) if !list.is_empty() => {
                        let scope = self.scope;
                        let mut updates: Vec<_> = metadata.read(|s| {
                            list.iter().map(|(version, c)| (*version, delta_update(s, *version, c, scope))).collect()
                        });
                        if scope != Scope::All {
                            // Most entries concern few brokers: of the empty
                            // deltas only the newest goes out, to move the
                            // reader's version forward.
                            let newest = updates.len().saturating_sub(1);
                            let mut i = 0;
                            updates.retain(|(_, u)| {
                                i += 1;
                                i - 1 == newest || !is_empty_delta(u)
                            });
                        }
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

fn is_empty_delta(u: &pb::LeadershipUpdate) -> bool {
    u.partitions.is_empty() && u.deleted_topics.is_empty() && u.brokers.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_state_machine::{Command, TopicConfig};

    fn four_brokers_one_topic() -> (State, Changes) {
        let mut state = State::new();
        for id in 1..=4 {
            let register = Command::RegisterBroker {
                broker_id: id,
                incarnation_id: format!("i{id}"),
                endpoint: format!("h{id}:9092"),
                rack: String::new(),
            };
            assert!(state.apply(id as u64, &register).outcome.is_ok());
        }
        let create = Command::CreateTopic {
            name: "t".into(),
            partitions: 8,
            replication_factor: 2,
            config: TopicConfig::default(),
        };
        let applied = state.apply(5, &create);
        assert!(applied.outcome.is_ok());
        (state, applied.changes)
    }

    /// A hosted view carries exactly the partitions the broker is a replica
    /// of, in the full view and in deltas; the default view carries all.
    #[test]
    fn hosted_scope_carries_only_the_brokers_replicas() {
        let (state, changes) = four_brokers_one_topic();
        let hosts = |info: &pb::PartitionInfo, b: i32| info.replicas.contains(&b);
        assert_eq!(full_update(&state, Scope::All).partitions.len(), 8);
        assert_eq!(delta_update(&state, 5, &changes, Scope::All).partitions.len(), 8);
        let mut seen = 0;
        for b in 1..=4 {
            let full = full_update(&state, Scope::Hosted(b));
            let delta = delta_update(&state, 5, &changes, Scope::Hosted(b));
            assert!(!full.partitions.is_empty() && full.partitions.iter().all(|p| hosts(p, b)), "broker {b}");
            assert_eq!(full.partitions, delta.partitions, "broker {b}: the same partitions either way");
            assert_eq!(full.brokers.len(), 4, "every broker's endpoint, for leader hints");
            seen += full.partitions.len();
        }
        assert_eq!(seen, 8 * 2, "each partition goes to its two replicas only");
        assert!(full_update(&state, Scope::Hosted(9)).partitions.is_empty());
    }

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
