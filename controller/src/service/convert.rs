//! State-machine records to wire messages, and the update stream shared by
//! `WatchLeadership` and broker sessions (a full view, then deltas).

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::Arc;

use baton_proto::v1 as pb;
use baton_state_machine::{
    Broker, BrokerId, BrokerState, Changes, NO_LEADER, Partition, PartitionChange, State, Topic,
};
use tokio::sync::watch;

use crate::metadata::{LoggedChanges, Metadata};

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

/// What a delta's partitions take from the state rather than from the
/// change itself, resolved once under one read of the state: the id of each
/// topic as it stands now (for a change to a topic since deleted and
/// re-created this names the newer one) and each leader's endpoint.
struct Names {
    topic_ids: HashMap<Arc<str>, u64>,
    endpoints: HashMap<BrokerId, String>,
}

impl Names {
    fn resolve<'c>(state: &State, changes: impl Iterator<Item = &'c PartitionChange>) -> Names {
        let mut names = Names { topic_ids: HashMap::new(), endpoints: HashMap::new() };
        // Changes come grouped by topic: look each name up once per run of it.
        let mut last: Option<&'c Arc<str>> = None;
        for c in changes {
            if !last.is_some_and(|name| Arc::ptr_eq(name, &c.topic)) {
                names.topic_ids.entry(c.topic.clone()).or_insert_with(|| state.topic(&c.topic).map_or(0, |t| t.id));
                last = Some(&c.topic);
            }
            names.endpoints.entry(c.record.leader).or_insert_with(|| leader_endpoint(state, c.record.leader));
        }
        names
    }

    fn info(&self, c: &PartitionChange) -> pb::PartitionInfo {
        let p = &c.record;
        pb::PartitionInfo {
            topic_id: self.topic_ids.get(&c.topic).copied().unwrap_or(0),
            topic: c.topic.to_string(),
            partition: c.partition,
            leader: p.leader,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            replicas: p.replicas.clone(),
            isr: p.isr.clone(),
            leader_endpoint: self.endpoints.get(&p.leader).cloned().unwrap_or_default(),
        }
    }
}

/// How many changes a reader hears of: all of `changes.partitions`, or
/// those at `only`'s indexes.
fn selected_len(changes: &Changes, only: Option<&[u32]>) -> usize {
    only.map_or(changes.partitions.len(), <[u32]>::len)
}

/// The changes at `positions` (clamped) of what a reader hears of.
fn selected<'c>(
    changes: &'c Changes,
    only: Option<&'c [u32]>,
    positions: Range<usize>,
) -> impl Iterator<Item = &'c PartitionChange> + Clone {
    let end = positions.end.min(selected_len(changes, only));
    (positions.start..end).filter_map(move |k| changes.partitions.get(only.map_or(k, |ix| ix[k] as usize)))
}

/// The first message of an entry's delta, without its partitions.
fn delta_head(version: u64, changes: &Changes) -> pb::LeadershipUpdate {
    pb::LeadershipUpdate {
        metadata_version: version,
        full: false,
        partitions: Vec::new(),
        deleted_topics: changes.deleted_topics.clone(),
        brokers: changes.brokers.iter().map(|b| broker_info(b, -1)).collect(),
        partial: false,
    }
}

/// The update of one applied entry: every partition change, or (`only`)
/// those at these indexes of `changes.partitions`.
pub fn delta_update(state: &State, version: u64, changes: &Changes, only: Option<&[u32]>) -> pb::LeadershipUpdate {
    let names = Names::resolve(state, selected(changes, only, 0..usize::MAX));
    pb::LeadershipUpdate {
        partitions: selected(changes, only, 0..usize::MAX).map(|c| names.info(c)).collect(),
        ..delta_head(version, changes)
    }
}

/// An update on its way to one reader, handed out as messages of at most a
/// given number of partitions (see `LeadershipUpdate.partial`): the first
/// carries the update's other fields, each is `partial` but the last.
///
/// A single entry's delta (the usual case) is encoded message by message
/// straight from the change log, so a mass election is never held whole as
/// protobuf: for a fence moving 300,000 partitions that was about 70 MB of
/// fresh memory per stream, and most of the controller's time went into the
/// page faults (docs/BENCHMARKS.md, "Bottlenecks found" 5).
pub struct PendingUpdate {
    /// The first message, without partitions, until it is handed out.
    head: Option<pb::LeadershipUpdate>,
    version: u64,
    parts: Parts,
}

enum Parts {
    Built(std::vec::IntoIter<pb::PartitionInfo>),
    Logged { logged: Arc<LoggedChanges>, scope: Scope, next: usize, names: Names },
}

impl PendingUpdate {
    /// An update already built (a full view, merged deltas).
    pub fn built(mut update: pb::LeadershipUpdate) -> PendingUpdate {
        let parts = Parts::Built(std::mem::take(&mut update.partitions).into_iter());
        update.partial = false;
        PendingUpdate { version: update.metadata_version, head: Some(update), parts }
    }

    /// One entry's delta, its names resolved in `state` now.
    fn logged(state: &State, version: u64, logged: Arc<LoggedChanges>, scope: Scope) -> PendingUpdate {
        let names = Names::resolve(state, selected(&logged.changes, only(&logged, scope), 0..usize::MAX));
        PendingUpdate {
            head: Some(delta_head(version, &logged.changes)),
            version,
            parts: Parts::Logged { logged, scope, next: 0, names },
        }
    }

    fn remaining(&self) -> usize {
        match &self.parts {
            Parts::Built(iter) => iter.len(),
            Parts::Logged { logged, scope, next, .. } => {
                selected_len(&logged.changes, only(logged, *scope)).saturating_sub(*next)
            }
        }
    }

    /// The next message, with at most `max` partitions (at least one); None
    /// once the last (non-partial) one was handed out.
    pub fn next_message(&mut self, max: usize) -> Option<pb::LeadershipUpdate> {
        let head = self.head.take();
        if head.is_none() && self.remaining() == 0 {
            return None;
        }
        let mut message =
            head.unwrap_or_else(|| pb::LeadershipUpdate { metadata_version: self.version, ..Default::default() });
        let max = max.max(1);
        message.partitions = match &mut self.parts {
            Parts::Built(iter) => iter.by_ref().take(max).collect(),
            Parts::Logged { logged, scope, next, names } => {
                let only = only(logged, *scope);
                let end = next.saturating_add(max).min(selected_len(&logged.changes, only));
                let batch = selected(&logged.changes, only, *next..end).map(|c| names.info(c)).collect();
                *next = end;
                batch
            }
        };
        message.partial = self.remaining() > 0;
        Some(message)
    }

    /// The whole update as one message.
    pub fn into_whole(mut self) -> pb::LeadershipUpdate {
        self.next_message(usize::MAX).unwrap_or_default()
    }
}

/// The indexes of the changes a reader of `scope` hears of (None: all).
fn only(logged: &LoggedChanges, scope: Scope) -> Option<&[u32]> {
    match scope {
        Scope::All => None,
        Scope::Hosted(broker) => Some(logged.concerning(broker)),
    }
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

    /// The next update for this reader (a full view, or every delta it has
    /// not seen merged into one), waiting until there is one. Returns None
    /// when the metadata is gone (shutdown).
    pub async fn next(&mut self, metadata: &Metadata) -> Option<PendingUpdate> {
        loop {
            // Mark the current version seen BEFORE reading the log, so a
            // change landing in between wakes the wait below.
            self.rx.borrow_and_update();
            match self.version {
                None => {
                    let update = metadata.read(|s| full_update(s, self.scope));
                    self.version = Some(update.metadata_version);
                    return Some(PendingUpdate::built(update));
                }
                Some(v) => match metadata.changes_since(v) {
                    None => self.version = None,
                    Some(mut list) if list.len() == 1 => {
                        let (version, logged) = list.remove(0);
                        self.version = Some(version);
                        return Some(metadata.read(|s| PendingUpdate::logged(s, version, logged, self.scope)));
                    }
                    Some(list) if !list.is_empty() => {
                        let scope = self.scope;
                        let updates: Vec<_> = metadata.read(|s| {
                            list.iter()
                                .map(|(version, c)| delta_update(s, *version, &c.changes, only(c, scope)))
                                .collect()
                        });
                        // A reader that fell behind gets one update for all
                        // it missed, not one message per entry: under a burst
                        // (a thousand registrations, a fence storm) the
                        // messages otherwise grow with readers × entries.
                        if let Some(update) = merge_deltas(updates) {
                            self.version = Some(update.metadata_version);
                            return Some(PendingUpdate::built(update));
                        }
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

/// Consecutive deltas as one delta to the last one's version: each
/// partition and broker as of its latest change, and every deleted topic,
/// minus the partitions of a topic deleted after they changed (a reader
/// applies a delta's deletions before its partitions, so a topic deleted and
/// created again within the run keeps only its new partitions).
pub fn merge_deltas(updates: Vec<pb::LeadershipUpdate>) -> Option<pb::LeadershipUpdate> {
    if updates.len() <= 1 {
        return updates.into_iter().next();
    }
    // Newest first: which partition entries survive (the latest of each, and
    // none of a topic deleted by a later update), without copying a name.
    let keep: Vec<Vec<bool>> = {
        let mut seen: HashSet<(&str, i32)> = HashSet::new();
        let mut deleted_later: HashSet<&str> = HashSet::new();
        let mut keep: Vec<Vec<bool>> = updates
            .iter()
            .rev()
            .map(|u| {
                let flags = u
                    .partitions
                    .iter()
                    .map(|p| !deleted_later.contains(p.topic.as_str()) && seen.insert((p.topic.as_str(), p.partition)))
                    .collect();
                deleted_later.extend(u.deleted_topics.iter().map(String::as_str));
                flags
            })
            .collect();
        keep.reverse();
        keep
    };
    let mut partitions = Vec::new();
    let mut brokers: HashMap<i32, pb::BrokerInfo> = HashMap::new();
    let mut deleted: Vec<String> = Vec::new();
    let mut version = 0;
    for (update, keep) in updates.into_iter().zip(keep) {
        version = update.metadata_version;
        for topic in update.deleted_topics {
            if !deleted.contains(&topic) {
                deleted.push(topic);
            }
        }
        partitions.extend(update.partitions.into_iter().zip(keep).filter_map(|(p, k)| k.then_some(p)));
        for b in update.brokers {
            brokers.insert(b.id, b);
        }
    }
    let mut brokers: Vec<pb::BrokerInfo> = brokers.into_values().collect();
    brokers.sort_by_key(|b| b.id);
    Some(pb::LeadershipUpdate {
        metadata_version: version,
        full: false,
        partitions,
        deleted_topics: deleted,
        brokers,
        partial: false,
    })
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
        assert_eq!(delta_update(&state, 5, &changes, None).partitions.len(), 8);
        let logged = crate::metadata::LoggedChanges::new(changes);
        let mut seen = 0;
        for b in 1..=4 {
            let full = full_update(&state, Scope::Hosted(b));
            let expected: Vec<u32> =
                (0u32..).zip(&logged.changes.partitions).filter(|(_, c)| c.concerns(b)).map(|(i, _)| i).collect();
            assert_eq!(logged.concerning(b), expected.as_slice(), "the shared index is `concerns`");
            let delta = delta_update(&state, 5, &logged.changes, Some(logged.concerning(b)));
            assert!(!full.partitions.is_empty() && full.partitions.iter().all(|p| hosts(p, b)), "broker {b}");
            assert_eq!(full.partitions, delta.partitions, "broker {b}: the same partitions either way");
            assert_eq!(full.brokers.len(), 4, "every broker's endpoint, for leader hints");
            seen += full.partitions.len();
        }
        assert_eq!(seen, 8 * 2, "each partition goes to its two replicas only");
        assert!(full_update(&state, Scope::Hosted(9)).partitions.is_empty());
    }

    #[test]
    fn merged_deltas_keep_the_latest_of_each_and_respect_deletions() {
        let part = |topic: &str, partition: i32, leader: i32| pb::PartitionInfo {
            topic: topic.into(),
            partition,
            leader,
            ..Default::default()
        };
        let delta = |v: u64, partitions: Vec<pb::PartitionInfo>, deleted: &[&str]| pb::LeadershipUpdate {
            metadata_version: v,
            partitions,
            deleted_topics: deleted.iter().map(|t| (*t).to_owned()).collect(),
            brokers: vec![pb::BrokerInfo { id: v as i32 % 2, epoch: v, ..Default::default() }],
            ..Default::default()
        };
        let merged = merge_deltas(vec![
            delta(3, vec![part("a", 0, 1), part("gone", 0, 1), part("again", 0, 1)], &[]),
            delta(4, vec![part("a", 0, 2), part("a", 1, 3)], &["gone", "again"]),
            delta(5, vec![part("again", 0, 3)], &[]),
        ])
        .expect("merged");
        assert_eq!((merged.metadata_version, merged.full, merged.partial), (5, false, false));
        let got: Vec<(String, i32, i32)> =
            merged.partitions.iter().map(|p| (p.topic.clone(), p.partition, p.leader)).collect();
        assert_eq!(got, vec![("a".into(), 0, 2), ("a".into(), 1, 3), ("again".into(), 0, 3)]);
        assert_eq!(merged.deleted_topics, vec!["gone".to_owned(), "again".to_owned()]);
        assert_eq!(merged.brokers.iter().map(|b| (b.id, b.epoch)).collect::<Vec<_>>(), vec![(0, 4), (1, 5)]);
        let single = delta(7, vec![part("a", 0, 1)], &[]);
        assert_eq!(merge_deltas(vec![single.clone()]), Some(single));
        assert_eq!(merge_deltas(Vec::new()), None);
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
        let chunks = messages(PendingUpdate::built(update.clone()), 10);
        assert_eq!(chunks.iter().map(|c| c.partitions.len()).collect::<Vec<_>>(), vec![10, 10, 5]);
        assert_eq!(chunks.iter().map(|c| c.partial).collect::<Vec<_>>(), vec![true, true, false]);
        assert!(chunks[0].full && !chunks[1].full && !chunks[2].full);
        assert!(chunks.iter().all(|c| c.metadata_version == 9));
        assert_eq!(chunks[0].deleted_topics.len() + chunks[0].brokers.len(), 2, "extras ride with the first chunk");
        assert_eq!(PendingUpdate::built(update.clone()).into_whole(), update, "one message when unbounded");
        let small = pb::LeadershipUpdate { metadata_version: 3, ..Default::default() };
        assert_eq!(messages(PendingUpdate::built(small.clone()), 10), vec![small]);
    }

    fn messages(mut pending: PendingUpdate, max: usize) -> Vec<pb::LeadershipUpdate> {
        std::iter::from_fn(|| pending.next_message(max)).collect()
    }

    /// A delta sent message by message from the change log carries what the
    /// built delta carries, in order, for every scope and chunk size.
    #[test]
    fn a_logged_delta_in_messages_is_the_built_delta() {
        let (state, changes) = four_brokers_one_topic();
        let logged = Arc::new(crate::metadata::LoggedChanges::new(changes));
        for scope in [Scope::All, Scope::Hosted(1), Scope::Hosted(3), Scope::Hosted(9)] {
            let built = delta_update(&state, 5, &logged.changes, only(&logged, scope));
            for max in [1, 3, 8, 100] {
                let chunks = messages(PendingUpdate::logged(&state, 5, logged.clone(), scope), max);
                assert!(chunks.iter().all(|c| c.metadata_version == 5 && !c.full));
                assert!(chunks.iter().rev().skip(1).all(|c| c.partial) && !chunks.last().expect("one").partial);
                assert!(chunks.iter().all(|c| c.partitions.len() <= max));
                let joined: Vec<pb::PartitionInfo> = chunks.iter().flat_map(|c| c.partitions.clone()).collect();
                assert_eq!(joined, built.partitions, "{scope:?}, {max} per message");
                assert_eq!(chunks[0].brokers, built.brokers);
                assert!(joined.iter().all(|p| p.topic_id != 0 && (p.leader < 0 || !p.leader_endpoint.is_empty())));
            }
        }
    }
}
