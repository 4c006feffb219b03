//! One partition's replica log, in memory.
//!
//! Why memory and not disk: the reference broker exists to show that Baton's
//! leadership and ISR decisions keep acknowledged writes across broker
//! failures; a replica that restarts comes back empty and catches up from
//! the leader like a new replica (it is not in any ISR when it re-registers,
//! so it cannot be elected before it has caught up). Durability against the
//! loss of *every* replica at once is out of scope, as with Kafka running
//! without fsync. Every batch's CRC-32C is checked when it enters the log
//! (from a producer or from the leader), and the log is bounded: past
//! `max_bytes` the oldest batches go and the log start offset moves up.
//!
//! The log keeps, like Kafka's leader-epoch cache, the first offset of every
//! leader epoch it holds data from, which answers OffsetForLeaderEpoch and
//! drives follower truncation.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use crate::batch::Batch;

/// A bounded in-memory log of record batches.
pub struct PartitionLog {
    batches: VecDeque<Batch>,
    /// (leader epoch, first offset written at that epoch), epochs increasing.
    epochs: Vec<(i32, i64)>,
    log_start_offset: i64,
    log_end_offset: i64,
    bytes: usize,
    max_bytes: usize,
}

/// An answer to "where does epoch E end?" (OffsetForLeaderEpoch).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochEnd {
    /// The largest epoch <= the one asked for that this log holds; -1 if none.
    pub leader_epoch: i32,
    /// The first offset after that epoch's data (the log end offset for the
    /// latest epoch); -1 if none.
    pub end_offset: i64,
}

impl PartitionLog {
    pub fn new(max_bytes: usize) -> Self {
        Self {
            batches: VecDeque::new(),
            epochs: Vec::new(),
            log_start_offset: 0,
            log_end_offset: 0,
            bytes: 0,
            max_bytes,
        }
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    pub fn log_end_offset(&self) -> i64 {
        self.log_end_offset
    }

    /// The latest epoch this log holds data from (or was started at); -1 if none.
    pub fn latest_epoch(&self) -> i32 {
        self.epochs.last().map_or(-1, |e| e.0)
    }

    /// Records that a leader at `epoch` starts writing at the log end (a
    /// leader does this when it takes over, before any append).
    pub fn start_epoch(&mut self, epoch: i32) {
        if epoch > self.latest_epoch() {
            self.epochs.push((epoch, self.log_end_offset));
        }
    }

    /// The leader's append: places `batch` at the log end, stamped with
    /// `epoch`. Returns the stored batch's (base offset, last offset).
    pub fn append_as_leader(&mut self, batch: &Batch, epoch: i32) -> (i64, i64) {
        let placed = batch.rebased(self.log_end_offset, epoch);
        let range = (placed.base_offset, placed.last_offset);
        self.push(placed);
        range
    }

    /// A follower's append of a batch copied from the leader. Batches that
    /// do not start at the log end are skipped (duplicates of a re-fetch);
    /// false when the batch leaves a gap (the caller must re-sync).
    pub fn append_as_follower(&mut self, batch: Batch) -> bool {
        if batch.last_offset < self.log_end_offset {
            return true;
        }
        if batch.base_offset != self.log_end_offset {
            return false;
        }
        self.push(batch);
        true
    }

    fn push(&mut self, batch: Batch) {
        if batch.leader_epoch > self.latest_epoch() {
            self.epochs.push((batch.leader_epoch, batch.base_offset));
        }
        self.log_end_offset = batch.last_offset + 1;
        self.bytes += batch.len();
        self.batches.push_back(batch);
        while self.bytes > self.max_bytes && self.batches.len() > 1 {
            if let Some(old) = self.batches.pop_front() {
                self.bytes -= old.len();
                self.log_start_offset = old.last_offset + 1;
            }
        }
    }

    /// Drops every batch at or past `offset` (a batch straddling it goes
    /// whole, so the log end may land below `offset`) and the epochs that
    /// start there.
    pub fn truncate_to(&mut self, offset: i64) {
        while let Some(last) = self.batches.back() {
            if last.last_offset < offset {
                break;
            }
            if let Some(gone) = self.batches.pop_back() {
                self.bytes -= gone.len();
            }
        }
        self.log_end_offset =
            self.batches.back().map_or(self.log_start_offset.min(offset.max(0)), |b| b.last_offset + 1);
        if self.batches.is_empty() {
            self.log_start_offset = self.log_end_offset;
        }
        let end = self.log_end_offset;
        self.epochs.retain(|(_, start)| *start < end);
    }

    /// Empties the log, which now starts (and ends) at `offset`: a follower
    /// that fell behind the leader's log start restarts from there.
    pub fn reset(&mut self, offset: i64) {
        self.batches.clear();
        self.epochs.clear();
        self.bytes = 0;
        self.log_start_offset = offset;
        self.log_end_offset = offset;
    }

    /// Where `epoch` ends in this log (Kafka's `endOffsetForEpoch`).
    pub fn end_offset_for_epoch(&self, epoch: i32) -> EpochEnd {
        let Some(index) = self.epochs.iter().rposition(|(e, _)| *e <= epoch) else {
            return EpochEnd { leader_epoch: -1, end_offset: -1 };
        };
        let end_offset = self.epochs.get(index + 1).map_or(self.log_end_offset, |next| next.1);
        EpochEnd { leader_epoch: self.epochs[index].0, end_offset }
    }

    /// Whole batches holding offsets from `offset` up to (not including)
    /// `limit`, at most `max_bytes` but always the first one.
    pub fn read(&self, offset: i64, limit: i64, max_bytes: usize) -> Bytes {
        let start = self.batches.partition_point(|b| b.last_offset < offset);
        let mut out = BytesMut::new();
        for batch in self.batches.range(start..) {
            if batch.last_offset >= limit || (!out.is_empty() && out.len() + batch.len() > max_bytes) {
                break;
            }
            out.extend_from_slice(&batch.data);
        }
        out.freeze()
    }

    /// The first offset whose batch has a timestamp >= `timestamp`
    /// (ListOffsets by time); None when there is none.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Option<(i64, i64, i32)> {
        self.batches
            .iter()
            .find(|b| b.max_timestamp >= timestamp)
            .map(|b| (b.base_offset, b.max_timestamp, b.leader_epoch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::parse_batches;
    use crate::batch::testing::batch_bytes;

    fn batch(count: i32) -> Batch {
        parse_batches(&batch_bytes(0, -1, count), false).expect("valid").remove(0)
    }

    #[test]
    fn leader_appends_assign_offsets_and_record_epoch_starts() {
        let mut log = PartitionLog::new(1 << 20);
        log.start_epoch(1);
        assert_eq!(log.append_as_leader(&batch(3), 1), (0, 2));
        log.start_epoch(3);
        assert_eq!(log.append_as_leader(&batch(2), 3), (3, 4));
        assert_eq!(log.log_end_offset(), 5);
        assert_eq!(log.end_offset_for_epoch(1), EpochEnd { leader_epoch: 1, end_offset: 3 });
        assert_eq!(log.end_offset_for_epoch(2), EpochEnd { leader_epoch: 1, end_offset: 3 });
        assert_eq!(log.end_offset_for_epoch(3), EpochEnd { leader_epoch: 3, end_offset: 5 });
        assert_eq!(log.end_offset_for_epoch(0), EpochEnd { leader_epoch: -1, end_offset: -1 });
    }

    #[test]
    fn follower_truncates_to_the_epoch_boundary_and_copies_the_leaders_batches() {
        let mut leader = PartitionLog::new(1 << 20);
        let mut follower = PartitionLog::new(1 << 20);
        leader.start_epoch(1);
        leader.append_as_leader(&batch(2), 1);
        for b in parse_batches(&leader.read(0, i64::MAX, 1 << 20), false).expect("valid") {
            assert!(follower.append_as_follower(b));
        }
        // The follower led epoch 2 briefly and wrote data nobody else has.
        follower.start_epoch(2);
        follower.append_as_leader(&batch(4), 2);
        // The old leader leads again at epoch 3.
        leader.start_epoch(3);
        leader.append_as_leader(&batch(1), 3);
        let answer = leader.end_offset_for_epoch(follower.latest_epoch());
        assert_eq!(answer, EpochEnd { leader_epoch: 1, end_offset: 2 });
        let mine = follower.end_offset_for_epoch(answer.leader_epoch).end_offset;
        follower.truncate_to(answer.end_offset.min(mine));
        assert_eq!((follower.log_end_offset(), follower.latest_epoch()), (2, 1));
        let fetched = leader.read(follower.log_end_offset(), i64::MAX, 1 << 20);
        for b in parse_batches(&fetched, false).expect("valid") {
            assert!(follower.append_as_follower(b));
        }
        assert_eq!(follower.log_end_offset(), 3);
        assert_eq!(follower.read(0, i64::MAX, 1 << 20), leader.read(0, i64::MAX, 1 << 20));
    }

    #[test]
    fn reads_stop_at_the_limit_and_at_max_bytes_but_return_one_batch() {
        let mut log = PartitionLog::new(1 << 20);
        log.start_epoch(0);
        for _ in 0..3 {
            log.append_as_leader(&batch(2), 0);
        }
        let one = batch(2).len();
        assert_eq!(log.read(0, 4, 1 << 20).len(), 2 * one, "the high watermark bounds a consumer's read");
        assert_eq!(log.read(3, 6, 1).len(), one, "the batch holding offset 3, even past max bytes");
        assert!(log.read(6, 6, 1 << 20).is_empty());
    }

    #[test]
    fn the_log_is_bounded_and_moves_its_start_offset() {
        let one = batch(1).len();
        let mut log = PartitionLog::new(one * 2);
        log.start_epoch(0);
        for _ in 0..5 {
            log.append_as_leader(&batch(1), 0);
        }
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (3, 5));
        assert_eq!(log.read(0, 5, 1 << 20).len(), 2 * one);
    }
}
