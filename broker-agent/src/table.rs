//! The local leadership table and the checks that read it.
//!
//! Readers (checks, progress records) find a partition cell through an
//! `arc_swap`'d map of topics: no lock, no allocation, no await. Only the
//! session task writes (under `writer`), applying `LeadershipUpdate`s: a
//! partition's new view is stored into its existing cell (so its progress
//! slot survives), and the topic map is swapped as a whole only when topics
//! or partitions come or go.
//!
//! The checks' hot path (docs/BENCHMARKS.md, section 4) writes no shared
//! memory: each thread keeps the map it last loaded together with the map's
//! version number, and reloads it only when the version moved ([`MapCache`]);
//! a cell keeps its view's (leader, leader epoch) in one atomic word, so an
//! allowed check loads no view. Both are plain loads on x86.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use baton_proto::v1::{LeadershipUpdate, PartitionInfo, ReplicaProgress};
use parking_lot::Mutex;

use crate::checks::{NotLeader, RefusalReason};
use crate::events::{ChangeKind, LeadershipEvent, PartitionChange, PartitionView};
use crate::lease::Lease;
use crate::progress::{DirtyQueue, MAX_DIRTY_PARTITIONS, ProgressSlot};

/// Highest partition index accepted from the network: a bound on the size of
/// a topic's partition vector, whatever a malformed update says.
pub const MAX_PARTITION_INDEX: i32 = 1 << 20;

/// Progress recorded for partitions not (yet) in the view is kept for when
/// they appear, up to this many entries; beyond it such records are dropped.
pub const MAX_PENDING_UNKNOWN_PROGRESS: usize = 4096;

/// Topic names come from the controller (clients' names are looked up, never
/// inserted); foldhash, seeded per process, hashes a short name in a few ns
/// where SipHash took about 180 instructions.
type TopicMap = HashMap<Arc<str>, Arc<TopicEntry>, foldhash::fast::RandomState>;

/// Registered endpoints by broker id.
type BrokerMap = HashMap<i32, Arc<str>, foldhash::fast::RandomState>;

pub(crate) struct TopicEntry {
    name: Arc<str>,
    /// Indexed by partition number; `None` for numbers the view lacks.
    partitions: Box<[Option<Arc<PartitionCell>>]>,
}

impl TopicEntry {
    #[inline]
    fn get(&self, partition: i32) -> Option<&Arc<PartitionCell>> {
        let index = usize::try_from(partition).ok()?;
        self.partitions.get(index)?.as_ref()
    }

    fn cells(&self) -> impl Iterator<Item = &Arc<PartitionCell>> {
        self.partitions.iter().flatten()
    }
}

pub(crate) struct PartitionCell {
    view: ArcSwap<PartitionView>,
    /// The view's (leader, leader epoch), packed by [`pack_lead`]; stored
    /// after the view, so a reader that sees a word and then loads the view
    /// gets that view or a newer one.
    lead: AtomicU64,
    progress: ProgressSlot,
    removed: AtomicBool,
}

fn pack_lead(view: &PartitionView) -> u64 {
    (u64::from(view.leader as u32) << 32) | u64::from(view.leader_epoch as u32)
}

impl PartitionCell {
    fn new(view: Arc<PartitionView>) -> Self {
        Self {
            lead: AtomicU64::new(pack_lead(&view)),
            view: ArcSwap::new(view),
            progress: ProgressSlot::new(),
            removed: AtomicBool::new(false),
        }
    }

    fn store(&self, view: Arc<PartitionView>) {
        let lead = pack_lead(&view);
        self.view.store(view);
        self.lead.store(lead, Ordering::SeqCst);
    }

    /// (leader, leader epoch) of the newest view.
    #[inline]
    fn lead(&self) -> (i32, i32) {
        let word = self.lead.load(Ordering::SeqCst);
        ((word >> 32) as u32 as i32, word as u32 as i32)
    }
}

/// What a check takes out of the table: the leader epoch when the view's
/// word says this broker leads at the client's epoch (no view loaded), else
/// the view, whose refusal needs the leader hint.
enum Found {
    Unknown,
    Leads(i32),
    View(arc_swap::Guard<Arc<PartitionView>>),
}

/// Tables this thread read lately: how many it keeps maps of.
const MAP_CACHE_SLOTS: usize = 4;

/// One thread's copies of the topic maps of the tables it checks against
/// (usually one per process; tests run several agents). A copy is used only
/// while its table's `topics_version` is the one it was loaded at, so it is
/// the table's current map; it keeps that map alive until the thread next
/// reads that table (or another takes its slot): memory, never an answer.
struct MapCache {
    slots: [Option<CachedMap>; MAP_CACHE_SLOTS],
    next: usize,
}

struct CachedMap {
    table: u64,
    version: u64,
    map: Arc<TopicMap>,
}

thread_local! {
    static MAPS: RefCell<MapCache> = const { RefCell::new(MapCache { slots: [const { None }; MAP_CACHE_SLOTS], next: 0 }) };
}

impl MapCache {
    /// `table`'s current map: the copy if its version is `version`, else a fresh load.
    #[inline]
    fn current(&mut self, table: &Table, version: u64) -> &TopicMap {
        let index = match self.slots.iter().position(|s| s.as_ref().is_some_and(|s| s.table == table.id)) {
            Some(index) => index,
            None => {
                let index = self.next;
                self.next = (index + 1) % MAP_CACHE_SLOTS;
                index
            }
        };
        let slot = &mut self.slots[index];
        if slot.as_ref().is_some_and(|cached| cached.table != table.id || cached.version != version) {
            *slot = None;
        }
        &slot.get_or_insert_with(|| CachedMap { table: table.id, version, map: table.topics.load_full() }).map
    }
}

#[inline]
fn find<'m>(map: &'m TopicMap, topic: &str, partition: i32) -> Option<&'m Arc<PartitionCell>> {
    map.get(topic).and_then(|t| t.get(partition))
}

fn next_table_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Result of applying one update.
pub(crate) struct Applied {
    pub(crate) event: LeadershipEvent,
    /// Some partition this broker led is no longer led by it: acknowledge the
    /// new version to the controller at once.
    pub(crate) lost_leadership: bool,
    /// Partition entries skipped because they were malformed.
    pub(crate) rejected: usize,
}

struct Writer {
    brokers: BrokerMap,
}

pub(crate) struct Table {
    broker_id: i32,
    /// Unique in the process: the key of this table's maps in [`MapCache`]s.
    id: u64,
    topics: ArcSwap<TopicMap>,
    /// Incremented after each store into `topics`.
    topics_version: AtomicU64,
    metadata_version: AtomicU64,
    partitions_led: AtomicU32,
    partition_count: AtomicU64,
    writer: Mutex<Writer>,
    dirty: DirtyQueue<Arc<PartitionCell>>,
    pending_unknown: Mutex<HashMap<(Arc<str>, i32), i64>>,
}

fn empty_str() -> Arc<str> {
    static EMPTY: OnceLock<Arc<str>> = OnceLock::new();
    EMPTY.get_or_init(|| Arc::from("")).clone()
}

impl Table {
    pub(crate) fn new(broker_id: i32) -> Self {
        Self::with_dirty_bound(broker_id, MAX_DIRTY_PARTITIONS)
    }

    pub(crate) fn with_dirty_bound(broker_id: i32, dirty_bound: usize) -> Self {
        Self {
            broker_id,
            id: next_table_id(),
            topics: ArcSwap::from_pointee(TopicMap::default()),
            topics_version: AtomicU64::new(0),
            metadata_version: AtomicU64::new(0),
            partitions_led: AtomicU32::new(0),
            partition_count: AtomicU64::new(0),
            writer: Mutex::new(Writer { brokers: BrokerMap::default() }),
            dirty: DirtyQueue::with_bound(dirty_bound),
            pending_unknown: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn metadata_version(&self) -> u64 {
        self.metadata_version.load(Ordering::Acquire)
    }

    pub(crate) fn partitions_led(&self) -> u32 {
        self.partitions_led.load(Ordering::Acquire)
    }

    // ---- checks (hot path: no lock, no allocation on Ok) ----

    /// Runs `f` on the cell of (`topic`, `partition`), `None` when the view
    /// lacks it, through this thread's copy of the current topic map.
    #[inline]
    fn with_cell<R>(&self, topic: &str, partition: i32, f: impl Fn(Option<&Arc<PartitionCell>>) -> R) -> R {
        let version = self.topics_version.load(Ordering::SeqCst);
        let cached = MAPS.try_with(|maps| {
            let mut maps = maps.try_borrow_mut().ok()?;
            Some(f(find(maps.current(self, version), topic, partition)))
        });
        match cached {
            Ok(Some(r)) => r,
            // The thread is exiting, or `f` itself read the table: no copy.
            Ok(None) | Err(_) => f(find(&self.topics.load(), topic, partition)),
        }
    }

    /// Ok(leader_epoch) iff the view says this broker leads and the lease is
    /// valid at the instant of the call.
    #[inline]
    pub(crate) fn check_produce(&self, lease: &Lease, topic: &str, partition: i32) -> Result<i32, NotLeader> {
        self.check_fetch(lease, topic, partition, -1)
    }

    /// Like [`Self::check_produce`], after comparing the client's leader epoch
    /// (-1 skips the comparison).
    #[inline]
    pub(crate) fn check_fetch(
        &self,
        lease: &Lease,
        topic: &str,
        partition: i32,
        leader_epoch: i32,
    ) -> Result<i32, NotLeader> {
        let found = self.with_cell(topic, partition, |cell| match cell {
            None => Found::Unknown,
            Some(cell) => match cell.lead() {
                (leader, epoch) if leader == self.broker_id && (leader_epoch < 0 || leader_epoch == epoch) => {
                    Found::Leads(epoch)
                }
                _ => Found::View(cell.view.load()),
            },
        });
        match found {
            Found::Leads(epoch) => lease_check(lease, epoch),
            Found::View(view) => self.check_against(lease, &view, leader_epoch),
            Found::Unknown => Err(NotLeader::unknown()),
        }
    }

    /// The check against the view itself: a refusal needs its leader hint.
    #[cold]
    fn check_against(&self, lease: &Lease, view: &PartitionView, leader_epoch: i32) -> Result<i32, NotLeader> {
        if leader_epoch >= 0 && leader_epoch != view.leader_epoch {
            let reason = if leader_epoch < view.leader_epoch {
                RefusalReason::FencedLeaderEpoch
            } else {
                RefusalReason::UnknownLeaderEpoch
            };
            return Err(NotLeader { leader: leader_hint(view), leader_epoch: view.leader_epoch, reason });
        }
        if view.leader != self.broker_id {
            return Err(NotLeader {
                leader: leader_hint(view),
                leader_epoch: view.leader_epoch,
                reason: RefusalReason::NotLeader,
            });
        }
        lease_check(lease, view.leader_epoch)
    }

    // ---- views ----

    pub(crate) fn view(&self) -> Vec<PartitionView> {
        let topics = self.topics.load();
        let mut out = Vec::with_capacity(usize::try_from(self.partition_count.load(Ordering::Relaxed)).unwrap_or(0));
        for topic in topics.values() {
            out.extend(topic.cells().map(|c| PartitionView::clone(&c.view.load())));
        }
        out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        out
    }

    pub(crate) fn partition(&self, topic: &str, partition: i32) -> Option<PartitionView> {
        let topics = self.topics.load();
        let cell = topics.get(topic)?.get(partition)?;
        Some(PartitionView::clone(&cell.view.load()))
    }

    /// Every broker's registered endpoint, by id (from the updates' broker lists).
    pub(crate) fn broker_endpoints(&self) -> Vec<(i32, Arc<str>)> {
        let writer = self.writer.lock();
        let mut out: Vec<(i32, Arc<str>)> = writer.brokers.iter().map(|(id, e)| (*id, Arc::clone(e))).collect();
        drop(writer);
        out.sort_by_key(|(id, _)| *id);
        out
    }

    // ---- progress ----

    /// O(1); allocates only for a partition the view does not hold yet.
    #[inline]
    pub(crate) fn record_progress(&self, topic: &str, partition: i32, log_end_offset: i64) {
        let known =
            self.with_cell(topic, partition, |cell| cell.map(|c| self.record_into(c, log_end_offset)).is_some());
        if !known {
            self.record_unknown(topic, partition, log_end_offset);
        }
    }

    #[inline]
    fn record_into(&self, cell: &Arc<PartitionCell>, log_end_offset: i64) {
        if cell.progress.record(log_end_offset) && !self.dirty.push(Arc::clone(cell)) {
            // At the bound: leave it clean so the next record tries again.
            cell.progress.clear_dirty();
        }
    }

    #[cold]
    fn record_unknown(&self, topic: &str, partition: i32, log_end_offset: i64) {
        if !(0..=MAX_PARTITION_INDEX).contains(&partition) {
            return;
        }
        let mut pending = self.pending_unknown.lock();
        // Re-check under the lock: `apply` drains `pending` after swapping in new cells.
        {
            let topics = self.topics.load();
            if let Some(cell) = find(&topics, topic, partition) {
                self.record_into(cell, log_end_offset);
                return;
            }
        }
        let key = (Arc::<str>::from(topic), partition);
        if pending.len() < MAX_PENDING_UNKNOWN_PROGRESS || pending.contains_key(&key) {
            pending.insert(key, log_end_offset);
        } else {
            tracing::debug!(topic, partition, "progress for an unknown partition dropped: pending set full");
        }
    }

    /// Takes at most `max` changed partitions' progress for the next heartbeat.
    pub(crate) fn drain_progress(&self, max: usize) -> Vec<ReplicaProgress> {
        let batch = self.dirty.pop_batch(max);
        let mut out = Vec::with_capacity(batch.len());
        for cell in batch {
            let Some(log_end_offset) = cell.progress.take() else { continue };
            if cell.removed.load(Ordering::Acquire) {
                continue;
            }
            let view = cell.view.load();
            out.push(ReplicaProgress { topic: view.topic.to_string(), partition: view.partition, log_end_offset });
        }
        out
    }

    /// Queues every partition with a known offset again: a controller that
    /// just took the session (or took over as leader) holds no progress.
    pub(crate) fn remark_all_progress(&self) {
        let topics = self.topics.load();
        for cell in topics.values().flat_map(|t| t.cells()) {
            if cell.progress.remark() && !self.dirty.push(Arc::clone(cell)) {
                cell.progress.clear_dirty();
            }
        }
    }

    pub(crate) fn dirty_len(&self) -> usize {
        self.dirty.len()
    }

    pub(crate) fn progress_dropped(&self) -> u64 {
        self.dirty.dropped()
    }

    // ---- updates (session task only) ----

    /// Applies an update; `None` when it is an old delta and was ignored.
    pub(crate) fn apply(&self, update: &LeadershipUpdate) -> Option<Applied> {
        let mut writer = self.writer.lock();
        let current = self.metadata_version();
        if !update.full && update.metadata_version <= current {
            return None;
        }
        if update.full {
            writer.brokers.clear();
        }
        for broker in &update.brokers {
            if broker.endpoint.is_empty() {
                writer.brokers.remove(&broker.id);
            } else {
                writer.brokers.insert(broker.id, Arc::from(broker.endpoint.as_str()));
            }
        }

        let mut rejected = 0usize;
        // The partitions by topic, in first-seen order. Updates list a
        // topic's partitions together: one map probe per run of a topic.
        let mut by_topic: Vec<(&str, Vec<&PartitionInfo>)> = Vec::new();
        let mut group_of: HashMap<&str, usize, foldhash::fast::RandomState> = HashMap::default();
        let mut last: Option<(&str, usize)> = None;
        for info in &update.partitions {
            if info.topic.is_empty() || !(0..=MAX_PARTITION_INDEX).contains(&info.partition) {
                rejected += 1;
                continue;
            }
            let topic = info.topic.as_str();
            let group = match last {
                Some((t, g)) if t == topic => g,
                _ => *group_of.entry(topic).or_insert_with(|| {
                    by_topic.push((topic, Vec::new()));
                    by_topic.len() - 1
                }),
            };
            last = Some((topic, group));
            by_topic[group].1.push(info);
        }

        let old = self.topics.load_full();
        let mut acc = Accumulator {
            broker_id: self.broker_id,
            changes: Vec::with_capacity(update.partitions.len()),
            led_delta: 0,
            lost: false,
        };
        let mut deleted_topics: Vec<Arc<str>> = Vec::new();
        let mut new_map: TopicMap;
        if update.full {
            new_map = TopicMap::with_capacity_and_hasher(by_topic.len(), Default::default());
            for (name, infos) in &by_topic {
                let entry = build_topic(name, old.get(*name), infos, true, &writer.brokers, &mut acc);
                new_map.insert(entry.name.clone(), entry);
            }
            for (name, entry) in old.iter() {
                if !new_map.contains_key(name) {
                    remove_topic(entry, &mut acc);
                    deleted_topics.push(name.clone());
                }
            }
        } else {
            new_map = TopicMap::clone(&old);
            for name in &update.deleted_topics {
                if let Some(entry) = new_map.remove(name.as_str()) {
                    remove_topic(&entry, &mut acc);
                    deleted_topics.push(entry.name.clone());
                }
            }
            for (name, infos) in &by_topic {
                let entry = build_topic(name, new_map.get(*name), infos, false, &writer.brokers, &mut acc);
                new_map.insert(entry.name.clone(), entry);
            }
        }
        let partition_count: usize = new_map.values().map(|t| t.cells().count()).sum();
        self.topics.store(Arc::new(new_map));
        self.topics_version.fetch_add(1, Ordering::SeqCst);
        self.metadata_version.store(update.metadata_version, Ordering::Release);
        self.partition_count.store(partition_count as u64, Ordering::Relaxed);
        let led = i64::from(self.partitions_led()) + acc.led_delta;
        self.partitions_led.store(u32::try_from(led.max(0)).unwrap_or(u32::MAX), Ordering::Release);
        self.dirty.reserve_for(partition_count);
        drop(writer);
        self.adopt_pending_progress();

        Some(Applied {
            event: LeadershipEvent {
                metadata_version: update.metadata_version,
                full: update.full,
                changes: acc.changes.into(),
                deleted_topics: deleted_topics.into(),
            },
            lost_leadership: acc.lost,
            rejected,
        })
    }

    fn adopt_pending_progress(&self) {
        let mut pending = self.pending_unknown.lock();
        if pending.is_empty() {
            return;
        }
        let topics = self.topics.load();
        pending.retain(|(topic, partition), log_end_offset| match find(&topics, topic, *partition) {
            Some(cell) => {
                self.record_into(cell, *log_end_offset);
                false
            }
            None => true,
        });
    }
}

/// Ok(leader_epoch) iff the lease is valid now. The clock is read last, so
/// the answer holds at the instant it is given.
#[inline]
fn lease_check(lease: &Lease, leader_epoch: i32) -> Result<i32, NotLeader> {
    if lease.is_valid_now() {
        Ok(leader_epoch)
    } else {
        Err(NotLeader { leader: None, leader_epoch, reason: RefusalReason::LeaseExpired })
    }
}

fn leader_hint(view: &PartitionView) -> Option<(i32, Arc<str>)> {
    (view.leader >= 0).then(|| (view.leader, Arc::clone(&view.leader_endpoint)))
}

struct Accumulator {
    broker_id: i32,
    changes: Vec<PartitionChange>,
    led_delta: i64,
    lost: bool,
}

impl Accumulator {
    fn changed(&mut self, old: Option<&PartitionView>, new: &Arc<PartitionView>) {
        let was_leader = old.is_some_and(|o| o.is_leader);
        if was_leader {
            self.led_delta -= 1;
        }
        if new.is_leader {
            self.led_delta += 1;
        }
        let kind = match (old, was_leader, new.is_leader) {
            (_, false, true) => Some(ChangeKind::BecameLeader),
            (Some(o), true, true) if o.leader_epoch != new.leader_epoch => Some(ChangeKind::BecameLeader),
            (_, true, false) => {
                self.lost = true;
                Some(ChangeKind::BecameFollower)
            }
            (None, _, _) => Some(ChangeKind::LeaderChanged),
            (Some(o), _, false)
                if o.leader != new.leader
                    || o.leader_epoch != new.leader_epoch
                    || o.leader_endpoint != new.leader_endpoint =>
            {
                Some(ChangeKind::LeaderChanged)
            }
            (Some(o), _, _) if o != &**new => Some(ChangeKind::Updated),
            _ => None,
        };
        if let Some(kind) = kind {
            self.changes.push(PartitionChange { kind, view: Arc::clone(new) });
        }
    }

    fn removed(&mut self, cell: &PartitionCell) {
        cell.removed.store(true, Ordering::Release);
        let view = cell.view.load_full();
        if view.is_leader {
            self.led_delta -= 1;
            self.lost = true;
        }
        self.changes.push(PartitionChange { kind: ChangeKind::Removed, view });
    }
}

fn remove_topic(entry: &TopicEntry, acc: &mut Accumulator) {
    for cell in entry.cells() {
        acc.removed(cell);
    }
}

fn make_view(
    topic: &Arc<str>,
    info: &PartitionInfo,
    old: Option<&PartitionView>,
    brokers: &BrokerMap,
    me: i32,
) -> Arc<PartitionView> {
    let leader = if info.leader >= 0 { info.leader } else { -1 };
    // A change usually keeps most of a record (a failover keeps the
    // replicas; most partitions keep their leader): share what is equal
    // with the view it replaces, or with the broker list, instead of
    // allocating it again for each of a mass election's partitions.
    let leader_endpoint = if leader < 0 {
        empty_str()
    } else if info.leader_endpoint.is_empty() {
        brokers.get(&leader).cloned().unwrap_or_else(empty_str)
    } else if let Some(o) = old.filter(|o| *o.leader_endpoint == *info.leader_endpoint) {
        Arc::clone(&o.leader_endpoint)
    } else {
        match brokers.get(&leader) {
            Some(known) if **known == *info.leader_endpoint => Arc::clone(known),
            _ => Arc::from(info.leader_endpoint.as_str()),
        }
    };
    let shared = |ids: &[i32], old_ids: Option<&Arc<[i32]>>| match old_ids {
        Some(o) if **o == *ids => Arc::clone(o),
        _ => Arc::from(ids),
    };
    Arc::new(PartitionView {
        topic: Arc::clone(topic),
        partition: info.partition,
        leader,
        leader_endpoint,
        leader_epoch: info.leader_epoch,
        partition_epoch: info.partition_epoch,
        replicas: shared(&info.replicas, old.map(|o| &o.replicas)),
        isr: shared(&info.isr, old.map(|o| &o.isr)),
        is_leader: leader == me,
        is_replica: info.replicas.contains(&me),
    })
}

/// Builds a topic's new entry. `full`: the infos are all of the topic's
/// partitions; otherwise they upsert into `existing`.
fn build_topic(
    name: &str,
    existing: Option<&Arc<TopicEntry>>,
    infos: &[&PartitionInfo],
    full: bool,
    brokers: &BrokerMap,
    acc: &mut Accumulator,
) -> Arc<TopicEntry> {
    let key: Arc<str> = existing.map_or_else(|| Arc::from(name), |e| Arc::clone(&e.name));
    // Partition indices were validated to 0..=MAX_PARTITION_INDEX by the caller.
    let needed = infos.iter().map(|i| i.partition as usize + 1).max().unwrap_or(0);
    let mut partitions: Vec<Option<Arc<PartitionCell>>> = match (full, existing) {
        (false, Some(e)) => {
            let mut v = e.partitions.to_vec();
            if v.len() < needed {
                v.resize(needed, None);
            }
            v
        }
        _ => vec![None; needed],
    };
    for info in infos {
        let index = info.partition as usize;
        match existing.and_then(|e| e.get(info.partition)) {
            Some(cell) => {
                let old = cell.view.load_full();
                let view = make_view(&key, info, Some(&old), brokers, acc.broker_id);
                acc.changed(Some(&old), &view);
                cell.store(view);
                partitions[index] = Some(Arc::clone(cell));
            }
            None => {
                let view = make_view(&key, info, None, brokers, acc.broker_id);
                acc.changed(None, &view);
                partitions[index] = Some(Arc::new(PartitionCell::new(view)));
            }
        }
    }
    if full && let Some(e) = existing {
        for (index, cell) in e.partitions.iter().enumerate() {
            if let Some(cell) = cell
                && partitions.get(index).is_none_or(|p| p.is_none())
            {
                acc.removed(cell);
            }
        }
    }
    Arc::new(TopicEntry { name: key, partitions: partitions.into_boxed_slice() })
}

#[cfg(test)]
mod tests;
