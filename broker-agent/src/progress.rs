//! Progress bookkeeping: the log end offset of this broker's replica of each
//! partition, and the set of partitions whose offset changed since the last
//! heartbeat.
//!
//! A record is one atomic store plus, only on the clean→dirty transition, one
//! push onto a bounded queue; so a partition sits in the queue at most once
//! and the queue never holds more entries than the table has partitions. The
//! session drains at most `max_progress_per_heartbeat` entries per heartbeat;
//! the rest wait for the next one.
//!
//! Also here: a leader's ISR-expansion requests ([`IsrRequests`]), which
//! heartbeats repeat until the view shows the controller's answer. They are
//! rare (one per follower catching up) and never touch the check path.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use baton_proto::v1::IsrExpansionRequest;
use parking_lot::Mutex;

use crate::events::PartitionView;

/// Hard bound on queued dirty partitions. The clean→dirty rule already bounds
/// the queue by the partition count; this is the backstop. At the bound the
/// record is dropped and the partition left clean, so its next record retries.
pub const MAX_DIRTY_PARTITIONS: usize = 1 << 21;

/// `log_end_offset` value meaning "never recorded".
const NO_OFFSET: i64 = i64::MIN;

/// Per-partition progress: the latest log end offset and its dirty flag.
pub(crate) struct ProgressSlot {
    log_end_offset: AtomicI64,
    dirty: AtomicBool,
}

impl ProgressSlot {
    pub(crate) fn new() -> Self {
        Self { log_end_offset: AtomicI64::new(NO_OFFSET), dirty: AtomicBool::new(false) }
    }

    /// Stores the offset; true when the slot just turned dirty and must be queued.
    #[inline]
    pub(crate) fn record(&self, log_end_offset: i64) -> bool {
        self.log_end_offset.store(log_end_offset, Ordering::Release);
        !self.dirty.swap(true, Ordering::AcqRel)
    }

    /// Marks a slot with a known offset dirty again (e.g. for a new controller,
    /// which holds no progress). True when it must be queued.
    pub(crate) fn remark(&self) -> bool {
        self.log_end_offset.load(Ordering::Acquire) != NO_OFFSET && !self.dirty.swap(true, Ordering::AcqRel)
    }

    /// Clears the dirty flag, then reads the offset: a record racing with the
    /// drain either lands in this read or re-queues the slot.
    pub(crate) fn take(&self) -> Option<i64> {
        self.dirty.store(false, Ordering::SeqCst);
        let offset = self.log_end_offset.load(Ordering::Acquire);
        (offset != NO_OFFSET).then_some(offset)
    }

    pub(crate) fn clear_dirty(&self) {
        self.dirty.store(false, Ordering::Release);
    }
}

/// FIFO of dirty entries, bounded by [`MAX_DIRTY_PARTITIONS`] (or a smaller
/// bound for tests).
pub(crate) struct DirtyQueue<T> {
    queue: Mutex<VecDeque<T>>,
    bound: usize,
    dropped: AtomicU64,
}

impl<T> DirtyQueue<T> {
    pub(crate) fn with_bound(bound: usize) -> Self {
        Self { queue: Mutex::new(VecDeque::new()), bound, dropped: AtomicU64::new(0) }
    }

    /// Queues `entry`; false (and counted) when the queue is at its bound.
    pub(crate) fn push(&self, entry: T) -> bool {
        let mut queue = self.queue.lock();
        if queue.len() >= self.bound {
            drop(queue);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        queue.push_back(entry);
        true
    }

    /// Pre-sizes the queue so pushes up to `capacity` never allocate.
    pub(crate) fn reserve_for(&self, capacity: usize) {
        let mut queue = self.queue.lock();
        let capacity = capacity.min(self.bound);
        if queue.capacity() < capacity {
            let additional = capacity - queue.len();
            queue.reserve(additional);
        }
    }

    /// Pops at most `max` entries, oldest first.
    pub(crate) fn pop_batch(&self, max: usize) -> Vec<T> {
        let mut queue = self.queue.lock();
        let n = max.min(queue.len());
        queue.drain(..n).collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.queue.lock().len()
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Bound on partitions with a pending ISR-expansion request; beyond it a new
/// request is refused (the data plane keeps the follower pending, which only
/// delays its acknowledgements, and asks again later).
pub const MAX_ISR_REQUESTS: usize = 1 << 16;

/// Why [`IsrRequests::request`] did not queue a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IsrRequestRefused {
    /// The view does not say this broker leads the partition at that leader
    /// epoch, or its partition epoch already passed the request's: the
    /// controller would ignore it. The data plane drops its pending follower
    /// when it adopts the newer view, and asks again if still caught up.
    #[error("the view does not match: not the leader at that epoch, or the partition epoch moved on")]
    Stale,
    /// [`MAX_ISR_REQUESTS`] partitions already have a request pending.
    #[error("too many pending ISR-expansion requests")]
    Full,
}

#[derive(Debug, Clone)]
struct IsrRequest {
    leader_epoch: i32,
    partition_epoch: i32,
    followers: BTreeSet<i32>,
}

/// A leader's pending ISR-expansion requests, keyed by (topic, partition).
/// Level-triggered: a request stays until the view's partition epoch passes
/// the one it was made at (the controller answered, or something else
/// changed the partition first), so heartbeats to a new active controller,
/// which holds nothing of ours, carry it again.
#[derive(Default)]
pub(crate) struct IsrRequests {
    pending: Mutex<IsrQueue>,
}

#[derive(Default)]
struct IsrQueue {
    requests: BTreeMap<(Arc<str>, i32), IsrRequest>,
    /// The last key sent: the next heartbeat continues after it, so with
    /// more requests than fit in one heartbeat every one is sent in turn.
    cursor: Option<(Arc<str>, i32)>,
}

impl IsrRequests {
    /// Queues a request to add `follower` to the ISR of a partition `view`
    /// says this broker leads, made at (`leader_epoch`, `partition_epoch`).
    pub(crate) fn request(
        &self,
        view: Option<&PartitionView>,
        leader_epoch: i32,
        partition_epoch: i32,
        follower: i32,
    ) -> Result<(), IsrRequestRefused> {
        let Some(view) = view.filter(|v| {
            v.is_leader
                && v.leader_epoch == leader_epoch
                && v.partition_epoch <= partition_epoch
                && v.leader != follower
        }) else {
            return Err(IsrRequestRefused::Stale);
        };
        let mut queue = self.pending.lock();
        let key = (Arc::clone(&view.topic), view.partition);
        if let Some(existing) = queue.requests.get_mut(&key) {
            if (existing.leader_epoch, existing.partition_epoch) > (leader_epoch, partition_epoch) {
                return Err(IsrRequestRefused::Stale);
            }
            if (existing.leader_epoch, existing.partition_epoch) < (leader_epoch, partition_epoch) {
                *existing = IsrRequest { leader_epoch, partition_epoch, followers: BTreeSet::new() };
            }
            existing.followers.insert(follower);
            return Ok(());
        }
        if queue.requests.len() >= MAX_ISR_REQUESTS {
            return Err(IsrRequestRefused::Full);
        }
        queue.requests.insert(key, IsrRequest { leader_epoch, partition_epoch, followers: BTreeSet::from([follower]) });
        Ok(())
    }

    /// At most `max` requests for the next heartbeat, after dropping those
    /// the view (`lookup`) shows answered or overtaken: the partition is gone
    /// or led elsewhere or at another epoch, its partition epoch passed the
    /// request's, or every follower is in the ISR.
    pub(crate) fn for_heartbeat(
        &self,
        max: usize,
        lookup: impl Fn(&str, i32) -> Option<PartitionView>,
    ) -> Vec<IsrExpansionRequest> {
        let mut queue = self.pending.lock();
        if queue.requests.is_empty() {
            return Vec::new();
        }
        queue.requests.retain(|(topic, partition), r| {
            lookup(topic, *partition).is_some_and(|v| {
                v.is_leader
                    && v.leader_epoch == r.leader_epoch
                    && v.partition_epoch <= r.partition_epoch
                    && r.followers.iter().any(|f| !v.isr.contains(f))
            })
        });
        let IsrQueue { requests, cursor } = &mut *queue;
        let after = match cursor.as_ref() {
            Some(key) => requests.range::<(Arc<str>, i32), _>((Bound::Excluded(key), Bound::Unbounded)),
            None => requests.range::<(Arc<str>, i32), _>(..),
        };
        let mut out: Vec<(&(Arc<str>, i32), &IsrRequest)> = after.take(max).collect();
        if out.len() < max {
            let wrapped = requests.iter().take(max - out.len()).filter(|(k, _)| !out.iter().any(|(o, _)| o == k));
            let wrapped: Vec<_> = wrapped.collect();
            out.extend(wrapped);
        }
        let last = out.last().map(|(k, _)| (*k).clone());
        let batch = out
            .into_iter()
            .map(|((topic, partition), r)| IsrExpansionRequest {
                topic: topic.to_string(),
                partition: *partition,
                leader_epoch: r.leader_epoch,
                partition_epoch: r.partition_epoch,
                followers: r.followers.iter().copied().collect(),
            })
            .collect();
        *cursor = last;
        batch
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.pending.lock().requests.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(partition_epoch: i32, isr: &[i32]) -> PartitionView {
        PartitionView {
            topic: Arc::from("t"),
            partition: 0,
            leader: 1,
            leader_endpoint: Arc::from("h:1"),
            leader_epoch: 3,
            partition_epoch,
            replicas: Arc::from([1, 2, 3].as_slice()),
            isr: Arc::from(isr),
            is_leader: true,
            is_replica: true,
        }
    }

    #[test]
    fn a_request_is_repeated_until_the_view_answers_it() {
        let r = IsrRequests::default();
        let v = view(7, &[1, 2]);
        assert_eq!(r.request(Some(&v), 3, 7, 3), Ok(()));
        assert_eq!(r.request(Some(&v), 2, 7, 3), Err(IsrRequestRefused::Stale), "old leader epoch");
        assert_eq!(r.request(Some(&view(8, &[1, 2])), 3, 7, 3), Err(IsrRequestRefused::Stale), "view moved on");
        for _ in 0..3 {
            let sent = r.for_heartbeat(16, |_, _| Some(v.clone()));
            assert_eq!(sent.len(), 1);
            assert_eq!((sent[0].leader_epoch, sent[0].partition_epoch, sent[0].followers.clone()), (3, 7, vec![3]));
        }
        // The controller applied it: partition epoch 8 with 3 in the ISR.
        assert!(r.for_heartbeat(16, |_, _| Some(view(8, &[1, 2, 3]))).is_empty());
        assert_eq!(r.len(), 0);
        // Refused or overtaken (a newer epoch without 3): dropped as well.
        assert_eq!(r.request(Some(&view(8, &[1, 2])), 3, 8, 3), Ok(()));
        assert!(r.for_heartbeat(16, |_, _| Some(view(9, &[1, 2]))).is_empty());
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn more_requests_than_fit_in_a_heartbeat_are_sent_in_turn() {
        let r = IsrRequests::default();
        let at = |p: i32| PartitionView { partition: p, ..view(1, &[1]) };
        for p in 0..5 {
            assert_eq!(r.request(Some(&at(p)), 3, 1, 2), Ok(()));
        }
        let mut seen = BTreeSet::new();
        for _ in 0..3 {
            let sent = r.for_heartbeat(2, |_, p| Some(at(p)));
            assert_eq!(sent.len(), 2);
            seen.extend(sent.iter().map(|s| s.partition));
        }
        assert_eq!(seen.len(), 5, "every request went out within three heartbeats: {seen:?}");
    }
}
