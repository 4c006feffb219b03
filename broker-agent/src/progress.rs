//! Progress bookkeeping: the log end offset of this broker's replica of each
//! partition, and the set of partitions whose offset changed since the last
//! heartbeat.
//!
//! A record is one atomic store plus, only on the clean→dirty transition, one
//! push onto a bounded queue; so a partition sits in the queue at most once
//! and the queue never holds more entries than the table has partitions. The
//! session drains at most `max_progress_per_heartbeat` entries per heartbeat;
//! the rest wait for the next one.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use parking_lot::Mutex;

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
