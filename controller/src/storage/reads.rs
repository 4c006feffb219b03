//! Reads: the accessors, the snapshot read-back and the `raft::Storage` impl.
//!
//! Bounds come from the in-memory cache; data from a redb read transaction.
//! Raft reads from the same task that writes, so the two always agree there.
//! A clone used from another task may see a write land between the two; the
//! read then fails with `Compacted` or `Unavailable` (never returns wrong
//! entries: every entry's index is checked against its key).

use raft::prelude::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState};
use redb::ReadableDatabase;

use super::frame::{Key, LogPoint, SnapshotDescriptor, decode_entry, parse_entry, unframe};
use super::store::{ENTRIES, META, META_SNAPSHOT, SNAPSHOT_CHUNKS};
use super::{RaftStorage, StorageError};

impl RaftStorage {
    pub fn hard_state(&self) -> HardState {
        self.inner.cache.read().hard_state.clone()
    }

    pub fn conf_state(&self) -> ConfState {
        self.inner.cache.read().conf_state.clone()
    }

    /// Index of the first entry held; `compaction_point().index + 1`.
    pub fn first_index(&self) -> u64 {
        self.inner.cache.read().first_index()
    }

    /// Index of the last entry held (the compaction point's when the log is empty).
    pub fn last_index(&self) -> u64 {
        self.inner.cache.read().last.index
    }

    /// (index, term) of the last entry (the compaction point when the log is empty).
    pub fn last_point(&self) -> LogPoint {
        self.inner.cache.read().last
    }

    /// (index, term) of the last entry removed from the log: answers `term(first_index - 1)`.
    pub fn compaction_point(&self) -> LogPoint {
        self.inner.cache.read().compacted
    }

    /// Whether raft asked for a snapshot the stored one could not serve;
    /// clears the request.
    pub fn take_snapshot_request(&self) -> bool {
        self.inner.snapshot_wanted.swap(false, std::sync::atomic::Ordering::AcqRel)
    }

    /// (index, term) of the stored snapshot, without reading its data.
    pub fn snapshot_point(&self) -> Option<LogPoint> {
        self.inner.cache.read().snapshot
    }

    /// Entries in `[low, high)`, at most `max_size` bytes of them (raft's
    /// protobuf size, as `raft::util::limit_size` counts) but always at least
    /// one when the range is not empty. `None` or `u64::MAX` means no limit.
    /// Below the first index: `Compacted`; `high` beyond `last + 1`:
    /// `Unavailable` (where `MemStorage` panics).
    pub fn read_entries(&self, low: u64, high: u64, max_size: Option<u64>) -> Result<Vec<Entry>, StorageError> {
        let (first, last) = {
            let cache = self.inner.cache.read();
            (cache.first_index(), cache.last.index)
        };
        if low < first {
            return Err(StorageError::Compacted);
        }
        if high > last + 1 || low > high {
            return Err(StorageError::Unavailable);
        }
        if low == high {
            return Ok(Vec::new());
        }
        let max_size = max_size.unwrap_or(raft::NO_LIMIT);

        let txn = self.inner.db.begin_read()?;
        let table = txn.open_table(ENTRIES)?;
        // Bounded: the loop stops at `high` or at `max_size`, and only entries
        // inside the budget are decoded.
        let mut out = Vec::with_capacity((high - low).min(256) as usize);
        let mut size = 0u64;
        let mut next = low;
        for item in table.range(low..high)? {
            let (k, v) = item?;
            let index = k.value();
            if index != next {
                // Compacted meanwhile (first key above `low`), or a hole: the log
                // is contiguous in every committed state, so a hole is corruption.
                return Err(if next == low {
                    StorageError::Compacted
                } else {
                    StorageError::corrupt(format!("{} is missing", Key::Entry(next)))
                });
            }
            let framed = v.value();
            let payload = unframe(framed, Key::Entry(index))?;
            let len = payload.len() as u64;
            if !out.is_empty() && size.saturating_add(len) > max_size {
                return Ok(out);
            }
            size += len;
            out.push(parse_entry(index, payload)?);
            next += 1;
        }
        if next != high {
            // Truncated meanwhile by another handle's write.
            return Err(StorageError::Unavailable);
        }
        Ok(out)
    }

    /// Term of the entry at `index`; `term(first_index - 1)` answers from the
    /// compaction point. Below it: `Compacted`; beyond the last entry: `Unavailable`.
    pub fn read_term(&self, index: u64) -> Result<u64, StorageError> {
        {
            let cache = self.inner.cache.read();
            if index == cache.compacted.index {
                return Ok(cache.compacted.term);
            }
            if index < cache.compacted.index {
                return Err(StorageError::Compacted);
            }
            if index > cache.last.index {
                return Err(StorageError::Unavailable);
            }
            if index == cache.last.index {
                return Ok(cache.last.term);
            }
        }
        let txn = self.inner.db.begin_read()?;
        let table = txn.open_table(ENTRIES)?;
        let Some(guard) = table.get(index)? else {
            // Compacted (or truncated) by another handle meanwhile.
            return Err(StorageError::Unavailable);
        };
        Ok(decode_entry(index, guard.value())?.term)
    }

    /// The latest stored snapshot (data and metadata), or `None`. Every chunk's
    /// checksum is verified, and that none is missing.
    pub fn latest_snapshot(&self) -> Result<Option<Snapshot>, StorageError> {
        let txn = self.inner.db.begin_read()?;
        let descriptor = {
            let meta = txn.open_table(META)?;
            let Some(v) = meta.get(META_SNAPSHOT)? else {
                return Ok(None);
            };
            SnapshotDescriptor::decode(v.value(), Key::Meta(META_SNAPSHOT))?
        };
        let index = descriptor.metadata.index;
        let data_len = usize::try_from(descriptor.data_len).map_err(|_| {
            StorageError::corrupt(format!("snapshot at index {index} claims {} bytes", descriptor.data_len))
        })?;
        let chunks = txn.open_table(SNAPSHOT_CHUNKS)?;
        let mut data = Vec::with_capacity(data_len);
        for chunk in 0..descriptor.chunk_count {
            let key = Key::SnapshotChunk { index, chunk };
            let guard =
                chunks.get((index, chunk))?.ok_or_else(|| StorageError::corrupt(format!("{key} is missing")))?;
            data.extend_from_slice(unframe(guard.value(), key)?);
        }
        if data.len() != data_len {
            return Err(StorageError::corrupt(format!(
                "snapshot at index {index} holds {} bytes, its descriptor says {data_len}",
                data.len()
            )));
        }
        let mut snapshot = Snapshot::default();
        snapshot.set_metadata(descriptor.metadata);
        snapshot.data = data.into();
        Ok(Some(snapshot))
    }
}

impl raft::Storage for RaftStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        let cache = self.inner.cache.read();
        Ok(RaftState::new(cache.hard_state.clone(), cache.conf_state.clone()))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        // Reads are synchronous: `LogTemporarilyUnavailable` is never returned.
        Ok(self.read_entries(low, high, max_size.into())?)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        Ok(self.read_term(idx)?)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(RaftStorage::first_index(self))
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(RaftStorage::last_index(self))
    }

    /// The stored snapshot. When none is stored, or it is older than
    /// `request_index`, `SnapshotTemporarilyUnavailable` (raft retries later);
    /// `MemStorage` instead relabels an older snapshot with `request_index`,
    /// which would hand a follower state that does not match the index.
    ///
    /// A snapshot whose configuration does not include `to` is no use to it
    /// (raft-rs on the receiver refuses it): a fresh one is requested from
    /// the driver (`take_snapshot_request`) and raft retries later.
    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        match self.latest_snapshot()? {
            Some(s) if s.get_metadata().index >= request_index && conf_includes(&s, to) => Ok(s),
            _ => {
                self.inner.snapshot_wanted.store(true, std::sync::atomic::Ordering::Release);
                Err(StorageError::SnapshotTemporarilyUnavailable.into())
            }
        }
    }
}

fn conf_includes(snapshot: &Snapshot, id: u64) -> bool {
    let cs = snapshot.get_metadata().get_conf_state();
    [&cs.voters, &cs.voters_outgoing, &cs.learners, &cs.learners_next].iter().any(|ids| ids.contains(&id))
}
