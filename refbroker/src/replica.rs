//! Replica state of every partition this broker hosts: the log, the role
//! (leader or follower at a leader epoch), the high watermark, and as leader
//! the log end offset each follower last fetched from.
//!
//! The role follows the agent's view, never the other way round: a broker
//! becomes leader at epoch E only after `check_produce` / `check_fetch`
//! answered Ok(E) or its agent published `BecameLeader` at E, and from then
//! on a follower append (from an older leader) is refused. The high
//! watermark advances only as leader, to the smallest log end offset among
//! the "maximal ISR", and never moves back.
//!
//! The maximal ISR (KIP-497) is the ISR of the newest view this replica
//! adopted plus the followers it asked the controller to add. A leader asks
//! for a follower (through its agent, `Agent::request_isr_expansion`) once
//! the follower's fetch offset reached both the high watermark and the start
//! of this leader epoch, and counts it from that moment; the controller adds
//! followers to the ISR only on such a request, at the partition epoch it
//! names. So no write is acknowledged without a follower the controller may
//! already have put in the ISR. A pending follower is forgotten when a view
//! with a newer partition epoch is adopted: it is then in the ISR, or the
//! request was refused or overtaken (and is asked again if still caught up).
//! Views are adopted by partition epoch only upwards, so a caller holding an
//! older view (read before the ISR grew) never shrinks the set.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use baton_agent::PartitionView;
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

use crate::batch::Batch;
use crate::log::{EpochEnd, PartitionLog};

/// What a partition replica is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Neither leading nor following yet.
    Idle,
    Leader {
        epoch: i32,
    },
    Follower {
        epoch: i32,
    },
}

/// The replica's current role does not allow the operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("replica is {role:?}, not the expected role at epoch {epoch}")]
pub struct WrongRole {
    pub role: Role,
    pub epoch: i32,
}

/// Offsets a reader needs, read under one lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Marks {
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    pub high_watermark: i64,
    pub role: Role,
}

/// What the high watermark needs of the agent's view of a partition.
#[derive(Clone, Copy, Debug)]
pub struct IsrView<'a> {
    pub partition_epoch: i32,
    pub replicas: &'a [i32],
    pub isr: &'a [i32],
}

impl<'a> From<&'a PartitionView> for IsrView<'a> {
    fn from(view: &'a PartitionView) -> IsrView<'a> {
        IsrView { partition_epoch: view.partition_epoch, replicas: &view.replicas, isr: &view.isr }
    }
}

/// A follower this leader should ask the controller to add to the ISR: it
/// is counted in the high watermark already. Send it with
/// `Agent::request_isr_expansion` (with the leader epoch of the fetch).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExpansionRequest {
    pub follower: i32,
    pub partition_epoch: i32,
}

struct State {
    log: PartitionLog,
    role: Role,
    high_watermark: i64,
    /// As leader at the current epoch: follower id → log end offset it
    /// claimed in its last fetch. Reset on every new leader epoch.
    follower_leo: HashMap<i32, i64>,
    /// Replicas and ISR of the newest view adopted, and its partition epoch
    /// (-1: none yet). Only a higher partition epoch replaces them.
    replicas: Vec<i32>,
    isr: Vec<i32>,
    isr_epoch: i32,
    /// As leader: followers asked for at partition epoch `isr_epoch`, counted
    /// in the high watermark until a newer partition epoch is adopted.
    pending_isr: BTreeSet<i32>,
    /// As leader: the log end offset when this leader epoch began. A
    /// follower below it may lack writes an earlier leader acknowledged.
    epoch_start_offset: i64,
}

impl State {
    /// Adopts `view` if it is newer than the one held; forgets pending
    /// additions then (answered, refused or overtaken).
    fn adopt(&mut self, view: IsrView<'_>) {
        if view.partition_epoch > self.isr_epoch {
            self.isr_epoch = view.partition_epoch;
            self.replicas = view.replicas.to_vec();
            self.isr = view.isr.to_vec();
            self.pending_isr.clear();
        }
    }
}

/// One partition replica.
pub struct Partition {
    pub topic: Arc<str>,
    pub partition: i32,
    state: Mutex<State>,
    /// Bumped on every append, high-watermark move and role change: wakes
    /// acks=all producers and long-polling fetches.
    changes: Arc<watch::Sender<u64>>,
}

impl Partition {
    fn bump(&self) {
        self.changes.send_modify(|v| *v = v.wrapping_add(1));
    }

    pub fn marks(&self) -> Marks {
        let s = self.state.lock();
        Marks {
            log_start_offset: s.log.log_start_offset(),
            log_end_offset: s.log.log_end_offset(),
            high_watermark: s.high_watermark,
            role: s.role,
        }
    }

    /// Takes the leader role at `epoch` (idempotent). Followers' offsets from
    /// an earlier epoch mean nothing for this one and are forgotten.
    pub fn ensure_leader(&self, epoch: i32) {
        let mut s = self.state.lock();
        if s.role == (Role::Leader { epoch }) {
            return;
        }
        if role_epoch(s.role) > epoch {
            return; // an older answer raced with a newer view
        }
        s.role = Role::Leader { epoch };
        s.log.start_epoch(epoch);
        s.follower_leo.clear();
        s.pending_isr.clear();
        s.epoch_start_offset = s.log.log_end_offset();
        drop(s);
        self.bump();
    }

    /// Becomes a follower of the leader at `epoch` (before truncating).
    pub fn become_follower(&self, epoch: i32) -> bool {
        let mut s = self.state.lock();
        if role_epoch(s.role) > epoch || s.role == (Role::Leader { epoch }) {
            return false;
        }
        s.role = Role::Follower { epoch };
        s.follower_leo.clear();
        s.pending_isr.clear();
        drop(s);
        self.bump();
        true
    }

    /// The leader's append of checked batches; (first offset, last offset).
    pub fn append_as_leader(
        &self,
        batches: &[Batch],
        epoch: i32,
        view: IsrView<'_>,
        me: i32,
    ) -> Result<(i64, i64), WrongRole> {
        let mut s = self.state.lock();
        if s.role != (Role::Leader { epoch }) {
            return Err(WrongRole { role: s.role, epoch });
        }
        s.adopt(view);
        let mut range = (s.log.log_end_offset(), s.log.log_end_offset() - 1);
        for (i, batch) in batches.iter().enumerate() {
            let (base, last) = s.log.append_as_leader(batch, epoch);
            if i == 0 {
                range.0 = base;
            }
            range.1 = last;
        }
        advance_high_watermark(&mut s, me);
        drop(s);
        self.bump();
        Ok(range)
    }

    /// A follower's fetch at `epoch` reached this leader: it holds every
    /// offset below `fetch_offset`. Some(request) when the follower, outside
    /// the ISR, has just caught up (its fetch offset reached the high
    /// watermark and the start of this leader epoch): it is counted in the
    /// high watermark from now on, and the caller must ask for its addition.
    pub fn follower_fetched(
        &self,
        follower: i32,
        fetch_offset: i64,
        epoch: i32,
        view: IsrView<'_>,
        me: i32,
    ) -> Option<ExpansionRequest> {
        let mut s = self.state.lock();
        if s.role != (Role::Leader { epoch }) {
            return None;
        }
        s.adopt(view);
        // Past the log end the follower's log is not a prefix of this one
        // (the fetch is answered OFFSET_OUT_OF_RANGE): it proves nothing.
        if fetch_offset > s.log.log_end_offset() {
            return None;
        }
        s.follower_leo.insert(follower, fetch_offset);
        let before = s.high_watermark;
        advance_high_watermark(&mut s, me);
        let caught_up = follower != me
            && s.isr_epoch >= 0
            && s.replicas.contains(&follower)
            && !s.isr.contains(&follower)
            && !s.pending_isr.contains(&follower)
            && fetch_offset >= s.high_watermark
            && fetch_offset >= s.epoch_start_offset;
        let request = caught_up.then(|| {
            // Counted before anyone is asked: the maximal ISR.
            s.pending_isr.insert(follower);
            ExpansionRequest { follower, partition_epoch: s.isr_epoch }
        });
        let moved = s.high_watermark != before;
        drop(s);
        if moved {
            self.bump();
        }
        request
    }

    /// A view of the partition arrived: the ISR may have changed, and the
    /// high watermark with it.
    pub fn isr_changed(&self, view: IsrView<'_>, me: i32) {
        let mut s = self.state.lock();
        s.adopt(view);
        if !matches!(s.role, Role::Leader { .. }) {
            return;
        }
        let before = s.high_watermark;
        advance_high_watermark(&mut s, me);
        let moved = s.high_watermark != before;
        drop(s);
        if moved {
            self.bump();
        }
    }

    /// The follower's copy of what its leader at `epoch` returned.
    /// Err when the role moved on; Ok(false) when the batches leave a gap.
    pub fn append_as_follower(&self, batches: Vec<Batch>, epoch: i32, leader_hw: i64) -> Result<bool, WrongRole> {
        let mut s = self.state.lock();
        if s.role != (Role::Follower { epoch }) {
            return Err(WrongRole { role: s.role, epoch });
        }
        let mut contiguous = true;
        for batch in batches {
            if !s.log.append_as_follower(batch) {
                contiguous = false;
                break;
            }
        }
        let hw = leader_hw.min(s.log.log_end_offset());
        if hw > s.high_watermark {
            s.high_watermark = hw;
        }
        drop(s);
        self.bump();
        Ok(contiguous)
    }

    /// Follower truncation after OffsetForLeaderEpoch; returns the new log end.
    pub fn truncate_as_follower(&self, offset: i64, epoch: i32) -> Result<i64, WrongRole> {
        let mut s = self.state.lock();
        if s.role != (Role::Follower { epoch }) {
            return Err(WrongRole { role: s.role, epoch });
        }
        s.log.truncate_to(offset);
        let end = s.log.log_end_offset();
        // A follower's high watermark never exceeds its log.
        s.high_watermark = s.high_watermark.min(end);
        drop(s);
        self.bump();
        Ok(end)
    }

    /// Follower whose log ends below the leader's log start: start over there.
    pub fn reset_as_follower(&self, offset: i64, epoch: i32) -> Result<(), WrongRole> {
        let mut s = self.state.lock();
        if s.role != (Role::Follower { epoch }) {
            return Err(WrongRole { role: s.role, epoch });
        }
        s.log.reset(offset);
        s.high_watermark = s.high_watermark.min(offset);
        drop(s);
        self.bump();
        Ok(())
    }

    /// Latest epoch of the local log, and where this log ends for `epoch`.
    pub fn latest_epoch(&self) -> i32 {
        self.state.lock().log.latest_epoch()
    }

    pub fn end_offset_for_epoch(&self, epoch: i32) -> EpochEnd {
        self.state.lock().log.end_offset_for_epoch(epoch)
    }

    /// Whole batches from `offset` below `limit`, at most `max_bytes` (one at least).
    pub fn read(&self, offset: i64, limit: i64, max_bytes: usize) -> bytes::Bytes {
        self.state.lock().log.read(offset, limit, max_bytes)
    }

    pub fn offset_for_timestamp(&self, timestamp: i64) -> Option<(i64, i64, i32)> {
        self.state.lock().log.offset_for_timestamp(timestamp)
    }
}

fn role_epoch(role: Role) -> i32 {
    match role {
        Role::Idle => -1,
        Role::Leader { epoch } | Role::Follower { epoch } => epoch,
    }
}

/// HW = min log end offset over the maximal ISR (the adopted ISR and the
/// pending additions; the leader's own log for itself); a member that has
/// not fetched at this epoch holds it where it is.
fn advance_high_watermark(s: &mut State, me: i32) {
    let mut hw = s.log.log_end_offset();
    for &replica in s.isr.iter().chain(s.pending_isr.iter()).filter(|r| **r != me) {
        hw = hw.min(s.follower_leo.get(&replica).copied().unwrap_or(i64::MIN));
    }
    if hw > s.high_watermark {
        s.high_watermark = hw;
    }
}

/// (topic, partition).
type Key = (Arc<str>, i32);

/// Every partition replica of this broker.
pub struct Replicas {
    partitions: RwLock<HashMap<Key, Arc<Partition>>>,
    max_log_bytes: usize,
    changes: Arc<watch::Sender<u64>>,
}

impl Replicas {
    pub fn new(max_log_bytes: usize) -> Self {
        Self { partitions: RwLock::new(HashMap::new()), max_log_bytes, changes: Arc::new(watch::channel(0).0) }
    }

    /// A receiver woken by any partition's change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    pub fn get(&self, topic: &str, partition: i32) -> Option<Arc<Partition>> {
        self.partitions.read().get(&(Arc::<str>::from(topic), partition)).cloned()
    }

    /// The replica of a partition the agent's view holds (created empty).
    pub fn get_or_create(&self, topic: &Arc<str>, partition: i32) -> Arc<Partition> {
        if let Some(p) = self.partitions.read().get(&(Arc::clone(topic), partition)) {
            return Arc::clone(p);
        }
        let mut map = self.partitions.write();
        let entry = map.entry((Arc::clone(topic), partition)).or_insert_with(|| {
            Arc::new(Partition {
                topic: Arc::clone(topic),
                partition,
                state: Mutex::new(State {
                    log: PartitionLog::new(self.max_log_bytes),
                    role: Role::Idle,
                    high_watermark: 0,
                    follower_leo: HashMap::new(),
                    replicas: Vec::new(),
                    isr: Vec::new(),
                    isr_epoch: -1,
                    pending_isr: BTreeSet::new(),
                    epoch_start_offset: 0,
                }),
                changes: Arc::clone(&self.changes),
            })
        });
        Arc::clone(entry)
    }

    /// Forgets a partition that left the view (its topic was deleted).
    pub fn remove(&self, topic: &Arc<str>, partition: i32) {
        self.partitions.write().remove(&(Arc::clone(topic), partition));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::parse_batches;
    use crate::batch::testing::batch_bytes;

    fn batches(n: i32) -> Vec<Batch> {
        parse_batches(&batch_bytes(0, -1, n), false).expect("valid")
    }

    const REPLICAS: [i32; 3] = [1, 2, 3];

    fn view(partition_epoch: i32, isr: &[i32]) -> IsrView<'_> {
        IsrView { partition_epoch, replicas: &REPLICAS, isr }
    }

    #[test]
    fn the_high_watermark_waits_for_every_isr_member_and_never_moves_back() {
        let replicas = Replicas::new(1 << 20);
        let p = replicas.get_or_create(&Arc::from("t"), 0);
        p.ensure_leader(1);
        let isr = [1, 2, 3];
        assert_eq!(p.append_as_leader(&batches(5), 1, view(1, &isr), 1), Ok((0, 4)));
        assert_eq!(p.marks().high_watermark, 0);
        assert_eq!(p.follower_fetched(2, 5, 1, view(1, &isr), 1), None);
        assert_eq!(p.marks().high_watermark, 0, "broker 3 has not fetched");
        p.follower_fetched(3, 3, 1, view(1, &isr), 1);
        assert_eq!(p.marks().high_watermark, 3);
        // Broker 3 leaves the ISR: broker 2 and the leader have everything.
        p.isr_changed(view(2, &[1, 2]), 1);
        assert_eq!(p.marks().high_watermark, 5);
        p.isr_changed(view(3, &[1, 2, 3]), 1);
        assert_eq!(p.marks().high_watermark, 5, "never moves back");
    }

    /// Broker 1 leads t/0 (ISR 1, 2 at partition epoch 5) with 5 records,
    /// which broker 2 has; broker 3 fetched up to 5 and the leader asked for it.
    fn leader_with_3_pending() -> (Replicas, Arc<Partition>) {
        let replicas = Replicas::new(1 << 20);
        let p = replicas.get_or_create(&Arc::from("t"), 0);
        p.ensure_leader(1);
        let isr = [1, 2];
        p.append_as_leader(&batches(5), 1, view(5, &isr), 1).expect("leader");
        p.follower_fetched(2, 5, 1, view(5, &isr), 1);
        assert_eq!(p.marks().high_watermark, 5);
        assert_eq!(p.follower_fetched(3, 4, 1, view(5, &isr), 1), None, "below the high watermark: not caught up");
        let asked = p.follower_fetched(3, 5, 1, view(5, &isr), 1);
        assert_eq!(asked, Some(ExpansionRequest { follower: 3, partition_epoch: 5 }));
        (replicas, p)
    }

    /// The acks=all ISR-growth window (KIP-497). Broker 3, outside the ISR,
    /// catches up; from the fetch that makes the leader ask for its
    /// addition, the high watermark (hence every acks=all answer) waits for
    /// it too, before the controller has answered and after: the controller
    /// may put it in the ISR at any instant from then on, and a leader that
    /// acknowledged a write it lacks would lose that write if 3 were elected.
    /// Without the pending addition the high watermark reached 8 below.
    #[test]
    fn a_follower_the_leader_asked_to_add_holds_the_high_watermark_until_the_answer() {
        let (_replicas, p) = leader_with_3_pending();
        let isr = [1, 2];
        assert_eq!(p.follower_fetched(3, 5, 1, view(5, &isr), 1), None, "asked once per partition epoch");

        // More writes; broker 2 has them, broker 3 not yet.
        p.append_as_leader(&batches(3), 1, view(5, &isr), 1).expect("leader");
        p.follower_fetched(2, 8, 1, view(5, &isr), 1);
        assert_eq!(p.marks().high_watermark, 5, "acknowledged past a follower the controller may add");
        // A caller holding a view read before the ISR grew changes nothing.
        p.isr_changed(view(4, &isr), 1);
        assert_eq!(p.marks().high_watermark, 5);
        p.follower_fetched(3, 8, 1, view(5, &isr), 1);
        assert_eq!(p.marks().high_watermark, 8);

        // Applied: the ISR of partition epoch 6 holds 3; it counts as a member.
        p.isr_changed(view(6, &[1, 2, 3]), 1);
        p.append_as_leader(&batches(2), 1, view(5, &isr), 1).expect("leader");
        p.follower_fetched(2, 10, 1, view(5, &isr), 1);
        assert_eq!(p.marks().high_watermark, 8, "an older view took 3 out of the ISR");
    }

    #[test]
    fn a_refused_or_overtaken_request_is_forgotten_at_the_next_partition_epoch() {
        let (_replicas, p) = leader_with_3_pending();
        let isr = [1, 2];
        p.append_as_leader(&batches(2), 1, view(5, &isr), 1).expect("leader");
        p.follower_fetched(2, 7, 1, view(5, &isr), 1);
        assert_eq!(p.marks().high_watermark, 5, "3 is pending");
        // Partition epoch 6 without 3: the controller did not add it.
        p.isr_changed(view(6, &isr), 1);
        assert_eq!(p.marks().high_watermark, 7, "a forgotten request still holds the high watermark");
        // Still caught up: asked again at the new epoch.
        assert_eq!(
            p.follower_fetched(3, 7, 1, view(6, &isr), 1),
            Some(ExpansionRequest { follower: 3, partition_epoch: 6 })
        );
    }

    #[test]
    fn a_new_leader_asks_only_for_followers_past_the_start_of_its_epoch() {
        let replicas = Replicas::new(1 << 20);
        let p = replicas.get_or_create(&Arc::from("t"), 0);
        assert!(p.become_follower(1));
        p.append_as_follower(batches(4), 1, 0).expect("follower");
        // Leader at epoch 2 with 4 records from epoch 1, some maybe
        // acknowledged by the old leader; its own high watermark says 0.
        p.ensure_leader(2);
        assert_eq!(p.follower_fetched(3, 2, 2, view(5, &[1]), 1), None, "below the epoch start: may lack acked writes");
        assert!(p.follower_fetched(3, 4, 2, view(5, &[1]), 1).is_some());
    }

    #[test]
    fn a_new_leader_epoch_refuses_appends_from_the_old_role_and_forgets_followers() {
        let replicas = Replicas::new(1 << 20);
        let p = replicas.get_or_create(&Arc::from("t"), 0);
        assert!(p.become_follower(1));
        p.ensure_leader(2);
        let isr = [2, 3];
        assert!(p.append_as_follower(batches(1), 1, 0).is_err(), "an old leader's data is refused");
        assert!(p.append_as_leader(&batches(1), 1, view(2, &isr), 2).is_err(), "wrong epoch");
        assert!(!p.become_follower(1), "roles never go back in epoch");
        assert_eq!(p.append_as_leader(&batches(1), 2, view(2, &isr), 2), Ok((0, 0)));
        p.follower_fetched(3, 1, 1, view(2, &isr), 2);
        assert_eq!(p.marks().high_watermark, 0, "a fetch at another epoch does not count");
        p.follower_fetched(3, 7, 2, view(2, &isr), 2);
        assert_eq!(p.marks().high_watermark, 0, "a fetch past the log end does not count");
        p.follower_fetched(3, 1, 2, view(2, &isr), 2);
        assert_eq!(p.marks().high_watermark, 1);
    }
}
