//! The applied metadata: the state machine as of the applied log index, shared
//! between the raft driver (the only writer) and the services (readers), plus
//! a bounded log of recent changes so watchers and broker sessions can resume
//! from a metadata version with deltas instead of a full view, and the
//! registry of live leadership handoffs (see [`Handoff`]).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, OnceLock};

use baton_state_machine::{Applied, BrokerId, BrokerState, Changes, Command, NO_LEADER, Outcome, State, StateError};
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

/// One applied entry's changes, tagged with its metadata version.
pub type VersionedChanges = (u64, Arc<LoggedChanges>);

/// An entry's changes as the change log keeps them: with, built on first
/// use and shared by every session, which of them each broker must hear of
/// under a hosted view. Without it, every hosted session of a thousand
/// brokers scanned every change of every entry (a fence moving thousands of
/// partitions, a topic of ten thousand): the work grew with brokers ×
/// changes instead of with what each broker is sent.
pub struct LoggedChanges {
    pub changes: Changes,
    by_broker: OnceLock<HashMap<BrokerId, Vec<u32>>>,
}

impl LoggedChanges {
    pub fn new(changes: Changes) -> LoggedChanges {
        LoggedChanges { changes, by_broker: OnceLock::new() }
    }

    /// Indexes into `changes.partitions` of the changes that concern
    /// `broker` (`PartitionChange::concerns`), in order.
    pub fn concerning(&self, broker: BrokerId) -> &[u32] {
        let index = self.by_broker.get_or_init(|| {
            let mut index: HashMap<BrokerId, Vec<u32>> = HashMap::new();
            for (i, c) in (0u32..).zip(&self.changes.partitions) {
                for b in c.concerned_brokers() {
                    let list = index.entry(b).or_default();
                    if list.last() != Some(&i) {
                        list.push(i);
                    }
                }
            }
            index
        });
        index.get(&broker).map_or(&[], Vec::as_slice)
    }
}

pub struct Metadata {
    state: RwLock<State>,
    log: Mutex<ChangeLog>,
    handoffs: Mutex<Handoffs>,
    version: watch::Sender<u64>,
}

/// Leadership of a partition taken from a broker that was still alive (a
/// preferred election, later a drain or reassignment), as opposed to taken
/// from a fenced one. The old leader may still hold a lease on it, so the new
/// leader's session withholds the grant until the old leader acknowledged
/// `version` or its lease has surely run out (docs/SAFETY.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handoff {
    pub from: BrokerId,
    pub version: u64,
}

#[derive(Default)]
struct Handoffs {
    /// Unresolved handoffs per partition (usually zero or one).
    by_partition: HashMap<(Arc<str>, i32), Vec<Handoff>>,
    /// Per broker: the latest version that took a leadership away from it
    /// while it was alive. It gets no lease until it reports this version.
    revoked_at: HashMap<BrokerId, u64>,
    /// Handoffs before this version are unknown here (state restored from a
    /// snapshot): every broker must report at least it before a grant.
    floor: u64,
}

struct ChangeLog {
    entries: VecDeque<VersionedChanges>,
    /// Bound on `entries`; the oldest are dropped first.
    capacity: usize,
    /// Deltas are complete for every version after `floor`: a reader at a
    /// version below it needs a full view.
    floor: u64,
}

impl Metadata {
    pub fn new(state: State, change_log_entries: usize) -> Metadata {
        let version = state.applied_index();
        let (tx, _) = watch::channel(version);
        Metadata {
            state: RwLock::new(state),
            log: Mutex::new(ChangeLog {
                entries: VecDeque::new(),
                capacity: change_log_entries.max(1),
                floor: version,
            }),
            handoffs: Mutex::new(Handoffs { floor: version, ..Handoffs::default() }),
            version: tx,
        }
    }

    /// Runs `f` on the applied state. Keep `f` short: the driver waits for it.
    pub fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.state.read())
    }

    /// The metadata version: the applied log index.
    pub fn version(&self) -> u64 {
        *self.version.borrow()
    }

    /// Wakes on every version change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// Waits until the applied version reaches `version`.
    pub async fn wait_for(&self, version: u64) {
        let mut rx = self.subscribe();
        // The sender lives as long as `self`, so this only ends when reached.
        let _ = rx.wait_for(|v| *v >= version).await;
    }

    /// Applies one committed command. Only the raft driver calls this.
    /// The changes go to the change log (moved, not copied: a fence can
    /// change 100k partitions); the caller gets the outcome.
    pub(crate) fn apply(&self, index: u64, command: &Command) -> Result<Outcome, StateError> {
        let mut state = self.state.write();
        // A deleted topic's leaders, read before the delete erases them.
        let deleted_leaders: Vec<(i32, BrokerId)> = match command {
            Command::DeleteTopic { name } => state
                .topic(name)
                .map(|t| t.partitions.iter().enumerate().map(|(i, p)| (i as i32, p.leader)).collect())
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        let Applied { outcome, changes } = state.apply(index, command);
        if !changes.partitions.is_empty() || !changes.deleted_topics.is_empty() {
            self.record_handoffs(&state, index, &changes, &deleted_leaders);
        }
        drop(state);
        self.record(index, changes);
        outcome
    }

    fn record_handoffs(&self, state: &State, index: u64, changes: &Changes, deleted_leaders: &[(i32, BrokerId)]) {
        let mut h = self.handoffs.lock();
        let alive = |b: BrokerId| state.broker(b).is_some_and(|b| b.state != BrokerState::Fenced);
        // A deleted topic's partitions are taken from their leaders too: a
        // topic re-created under the same name must not be led elsewhere
        // while the old leaders may still act on the old one. The handoff is
        // keyed by name, which is what agents check.
        for topic in &changes.deleted_topics {
            let name: Arc<str> = Arc::from(topic.as_str());
            for &(partition, from) in deleted_leaders {
                if from == NO_LEADER {
                    continue;
                }
                let revoked = h.revoked_at.entry(from).or_default();
                *revoked = (*revoked).max(index);
                if alive(from) {
                    h.by_partition.entry((name.clone(), partition)).or_default().push(Handoff { from, version: index });
                }
            }
        }
        for c in &changes.partitions {
            let from = c.previous_leader;
            if from == NO_LEADER || from == c.record.leader {
                continue;
            }
            let revoked = h.revoked_at.entry(from).or_default();
            *revoked = (*revoked).max(index);
            // Taken from a fenced broker: its lease lapsed before the fence,
            // so the new leader need not wait.
            if c.record.leader != NO_LEADER && alive(from) {
                h.by_partition
                    .entry((c.topic.clone(), c.partition))
                    .or_default()
                    .push(Handoff { from, version: index });
            }
        }
    }

    /// Whether any partition has an unresolved handoff.
    pub fn has_handoffs(&self) -> bool {
        !self.handoffs.lock().by_partition.is_empty()
    }

    /// Unresolved handoffs of a partition.
    pub fn handoffs(&self, topic: &str, partition: i32) -> Vec<Handoff> {
        let key: (Arc<str>, i32) = (Arc::from(topic), partition);
        self.handoffs.lock().by_partition.get(&key).cloned().unwrap_or_default()
    }

    /// Forgets handoffs of a partition that are done.
    pub fn resolve_handoffs(&self, topic: &str, partition: i32, done: impl Fn(&Handoff) -> bool) {
        let key: (Arc<str>, i32) = (Arc::from(topic), partition);
        let mut h = self.handoffs.lock();
        if let Some(list) = h.by_partition.get_mut(&key) {
            list.retain(|x| !done(x));
            if list.is_empty() {
                h.by_partition.remove(&key);
            }
        }
    }

    /// Handoffs at or below this version are unknown here (the state came
    /// from a snapshot); 0 when the whole history was replayed.
    pub fn handoff_floor(&self) -> u64 {
        self.handoffs.lock().floor
    }

    /// The metadata version a broker must have applied before it may be
    /// granted a lease: it has then seen every leadership taken from it.
    pub fn grant_floor(&self, broker: BrokerId) -> u64 {
        let h = self.handoffs.lock();
        h.revoked_at.get(&broker).copied().unwrap_or(0).max(h.floor)
    }

    /// Advances the version for an entry that carries no command (a term's
    /// empty entry, a configuration change).
    pub(crate) fn apply_empty(&self, index: u64) {
        let applied = self.state.write().apply(index, &Command::Noop);
        self.record(index, applied.changes);
    }

    fn record(&self, index: u64, changes: Changes) {
        if !is_empty(&changes) {
            let mut log = self.log.lock();
            if log.entries.len() == log.capacity
                && let Some((v, _)) = log.entries.pop_front()
            {
                log.floor = v;
            }
            log.entries.push_back((index, Arc::new(LoggedChanges::new(changes))));
        }
        self.version.send_replace(index);
    }

    /// Replaces the whole state (a snapshot was installed). Readers holding an
    /// older version must start again from a full view.
    pub(crate) fn restore(&self, state: State) {
        let version = state.applied_index();
        *self.state.write() = state;
        *self.handoffs.lock() = Handoffs { floor: version, ..Handoffs::default() };
        let mut log = self.log.lock();
        log.entries.clear();
        log.floor = version;
        drop(log);
        self.version.send_replace(version);
    }

    /// Every change after `from`, in version order, or None when some of them
    /// are no longer held (the reader needs a full view).
    pub fn changes_since(&self, from: u64) -> Option<Vec<VersionedChanges>> {
        let log = self.log.lock();
        if from < log.floor {
            return None;
        }
        let start = log.entries.partition_point(|(v, _)| *v <= from);
        Some(log.entries.range(start..).cloned().collect())
    }
}

fn is_empty(c: &Changes) -> bool {
    c.partitions.is_empty() && c.deleted_topics.is_empty() && c.brokers.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn register(id: i32) -> Command {
        Command::RegisterBroker {
            broker_id: id,
            incarnation_id: format!("inc-{id}"),
            endpoint: format!("127.0.0.1:{}", 9000 + id),
            rack: String::new(),
        }
    }

    #[test]
    fn deltas_resume_from_a_version_until_the_log_drops_them() {
        let m = Metadata::new(State::new(), 2);
        assert!(m.apply(1, &register(1)).is_ok());
        assert!(m.apply(2, &register(2)).is_ok());
        assert_eq!(m.changes_since(0).map(|c| c.len()), Some(2));
        assert_eq!(m.changes_since(1).map(|c| c.iter().map(|(v, _)| *v).collect::<Vec<_>>()), Some(vec![2]));
        assert!(m.apply(3, &register(3)).is_ok());
        // Version 1 fell out of the bounded log: a reader at 0 needs a full view.
        assert!(m.changes_since(0).is_none());
        assert_eq!(m.changes_since(1).map(|c| c.len()), Some(2));
        assert_eq!(m.version(), 3);
    }

    #[test]
    fn restore_forces_full_views_for_older_readers() {
        let m = Metadata::new(State::new(), 16);
        assert!(m.apply(1, &register(1)).is_ok());
        let mut other = State::new();
        other.apply(5, &register(2));
        m.restore(other);
        assert!(m.changes_since(1).is_none());
        assert_eq!(m.changes_since(5).map(|c| c.len()), Some(0));
        assert_eq!(m.version(), 5);
    }

    /// A preferred election away from a live leader is a handoff that revokes
    /// the old leader's grants; a failover away from a fenced one is not.
    #[test]
    fn live_leadership_moves_are_recorded_as_handoffs() {
        use baton_state_machine::{ElectionType, FenceReason, IsrChange, TopicConfig};
        let m = Metadata::new(State::new(), 64);
        for id in 1..=3 {
            assert!(m.apply(id as u64, &register(id)).is_ok());
        }
        let create = Command::CreateTopic {
            name: "t".into(),
            partitions: 1,
            replication_factor: 3,
            config: TopicConfig::default(),
        };
        assert!(m.apply(4, &create).is_ok());
        let leader = m.read(|s| s.partition("t", 0).map(|p| p.leader)).expect("partition");
        let epoch = m.read(|s| s.broker(leader).map(|b| b.epoch)).expect("broker");
        let fence =
            Command::FenceBroker { broker_id: leader, broker_epoch: epoch, reason: FenceReason::SessionTimeout };
        assert!(m.apply(5, &fence).is_ok());
        assert!(m.handoffs("t", 0).is_empty(), "a failover from a fenced broker needs no handoff");
        let interim = m.read(|s| s.partition("t", 0).map(|p| p.leader)).expect("partition");
        assert!(m.apply(6, &register(leader)).is_ok());
        let (pe, mut isr) = m.read(|s| s.partition("t", 0).map(|p| (p.partition_epoch, p.isr.clone()))).expect("p");
        isr.push(leader);
        let alter = Command::AlterIsr {
            changes: vec![IsrChange { topic: "t".into(), partition: 0, partition_epoch: pe, new_isr: isr }],
        };
        assert!(m.apply(7, &alter).is_ok());
        let elect = Command::ElectLeaders { election: ElectionType::Preferred, partitions: None };
        assert!(m.apply(8, &elect).is_ok());
        assert_eq!(m.read(|s| s.partition("t", 0).map(|p| p.leader)).expect("p"), leader);
        assert_eq!(m.handoffs("t", 0), vec![Handoff { from: interim, version: 8 }]);
        assert_eq!(m.grant_floor(interim), 8);
        assert_eq!(m.grant_floor(leader), 5, "its fence revoked its leadership too");
        m.resolve_handoffs("t", 0, |h| h.version <= 8);
        assert!(m.handoffs("t", 0).is_empty());
    }

    /// A topic deleted and re-created under the same name: the new
    /// partitions wait for the old leaders (alive) to see the delete.
    #[test]
    fn a_deleted_topics_leaders_must_see_the_delete_before_it_is_recreated_elsewhere() {
        use baton_state_machine::TopicConfig;
        let m = Metadata::new(State::new(), 64);
        for id in 1..=3 {
            assert!(m.apply(id as u64, &register(id)).is_ok());
        }
        let create = |rf| Command::CreateTopic {
            name: "t".into(),
            partitions: 1,
            replication_factor: rf,
            config: TopicConfig::default(),
        };
        assert!(m.apply(4, &create(3)).is_ok());
        let old_leader = m.read(|s| s.partition("t", 0).map(|p| p.leader)).expect("partition");
        assert!(m.apply(5, &Command::DeleteTopic { name: "t".into() }).is_ok());
        assert_eq!(m.handoffs("t", 0), vec![Handoff { from: old_leader, version: 5 }]);
        assert_eq!(m.grant_floor(old_leader), 5);
    }
}
