//! The applied metadata: the state machine as of the applied log index, shared
//! between the raft driver (the only writer) and the services (readers), plus
//! a bounded log of recent changes so watchers and broker sessions can resume
//! from a metadata version with deltas instead of a full view.

use std::collections::VecDeque;
use std::sync::Arc;

use baton_state_machine::{Applied, Changes, Command, State};
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

/// One applied entry's changes, tagged with its metadata version.
pub type VersionedChanges = (u64, Arc<Changes>);

pub struct Metadata {
    state: RwLock<State>,
    log: Mutex<ChangeLog>,
    version: watch::Sender<u64>,
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
            log: Mutex::new(ChangeLog { entries: VecDeque::new(), capacity: change_log_entries.max(1), floor: version }),
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
    pub(crate) fn apply(&self, index: u64, command: &Command) -> Applied {
        let applied = self.state.write().apply(index, command);
        self.record(index, &applied.changes);
        applied
    }

    /// Advances the version for an entry that carries no command (a term's
    /// empty entry, a configuration change).
    pub(crate) fn apply_empty(&self, index: u64) {
        let applied = self.state.write().apply(index, &Command::Noop);
        self.record(index, &applied.changes);
    }

    fn record(&self, index: u64, changes: &Changes) {
        if !is_empty(changes) {
            let mut log = self.log.lock();
            if log.entries.len() == log.capacity
                && let Some((v, _)) = log.entries.pop_front()
            {
                log.floor = v;
            }
            log.entries.push_back((index, Arc::new(changes.clone())));
        }
        self.version.send_replace(index);
    }

    /// Replaces the whole state (a snapshot was installed). Readers holding an
    /// older version must start again from a full view.
    pub(crate) fn restore(&self, state: State) {
        let version = state.applied_index();
        *self.state.write() = state;
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
        m.apply(1, &register(1));
        m.apply(2, &register(2));
        assert_eq!(m.changes_since(0).map(|c| c.len()), Some(2));
        assert_eq!(m.changes_since(1).map(|c| c.iter().map(|(v, _)| *v).collect::<Vec<_>>()), Some(vec![2]));
        m.apply(3, &register(3));
        // Version 1 fell out of the bounded log: a reader at 0 needs a full view.
        assert!(m.changes_since(0).is_none());
        assert_eq!(m.changes_since(1).map(|c| c.len()), Some(2));
        assert_eq!(m.version(), 3);
    }

    #[test]
    fn restore_forces_full_views_for_older_readers() {
        let m = Metadata::new(State::new(), 16);
        m.apply(1, &register(1));
        let mut other = State::new();
        other.apply(5, &register(2));
        m.restore(other);
        assert!(m.changes_since(1).is_none());
        assert_eq!(m.changes_since(5).map(|c| c.len()), Some(0));
        assert_eq!(m.version(), 5);
    }
}
