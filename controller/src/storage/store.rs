//! `RaftStorage`: the handle, its in-memory cache and every write. Opening
//! checks live in `load.rs`, reads in `reads.rs`.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use raft::prelude::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use redb::{Database, Durability, ReadableTable, TableDefinition, WriteTransaction};

use super::StorageError;
use super::frame::{Key, LogPoint, SnapshotDescriptor, decode_entry, frame_bytes, frame_message};
use super::load;

/// Log entries keyed by raft index; value = frame(Entry protobuf).
pub(super) const ENTRIES: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_log_entries");
/// Small records keyed by name (the `META_*` constants); value = frame(record).
pub(super) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_meta");
/// Data of the latest snapshot, keyed by (snapshot index, chunk number); value = frame(bytes).
pub(super) const SNAPSHOT_CHUNKS: TableDefinition<(u64, u32), &[u8]> = TableDefinition::new("raft_snapshot_chunks");

pub(super) const META_FORMAT_VERSION: &str = "format_version";
pub(super) const META_HARD_STATE: &str = "hard_state";
pub(super) const META_CONF_STATE: &str = "conf_state";
/// (index, term) of the last entry removed from the log; answers `term(first_index - 1)`.
pub(super) const META_COMPACTION_POINT: &str = "compaction_point";
pub(super) const META_SNAPSHOT: &str = "snapshot";

const DB_FILE_NAME: &str = "raft.redb";

/// Snapshot data is stored in chunks of at most this many bytes, so no single
/// redb value (and no single allocation on read-back of one chunk) is huge.
pub const SNAPSHOT_CHUNK_BYTES: usize = 4 << 20;

/// redb's page cache. The hot set is the tail of the log; redb's default (1 GiB)
/// would let a small control-plane process grow far past its needs.
const DB_CACHE_BYTES: usize = 64 << 20;

/// What raft asks for on every call, kept in memory. Replaced only after the
/// transaction that changes it has committed (fsynced), with one exception:
/// `hard_state.commit` moves ahead of the stored hard state (see
/// [`RaftStorage::set_commit`]) and is written by the next transaction.
#[derive(Clone, Debug, Default)]
pub(super) struct Cache {
    pub hard_state: HardState,
    pub conf_state: ConfState,
    /// Last entry removed from the log (or the snapshot installed in its place).
    /// `first_index == compacted.index + 1`.
    pub compacted: LogPoint,
    /// Last entry of the log; equal to `compacted` when the log is empty.
    pub last: LogPoint,
    /// (index, term) of the stored snapshot, if any.
    pub snapshot: Option<LogPoint>,
}

impl Cache {
    pub(super) fn first_index(&self) -> u64 {
        self.compacted.index + 1
    }

    fn is_empty(&self) -> bool {
        self.hard_state == HardState::default()
            && self.conf_state == ConfState::default()
            && self.last.index == 0
            && self.snapshot.is_none()
    }
}

struct Writer {
    /// Set when a commit failed: see `StorageError::Fenced`.
    fenced: bool,
    /// The hard state the newest committed transaction stored. The cached
    /// one differs from it only by a commit index not yet written; every
    /// transaction writes the cached one when they differ.
    stored_hard_state: HardState,
}

pub(super) struct Inner {
    pub db: Database,
    pub cache: RwLock<Cache>,
    /// Serialises writers so the cache is replaced in commit order; readers
    /// never wait on it (nor on an fsync).
    writer: Mutex<Writer>,
    path: PathBuf,
    /// Raft asked for a snapshot the stored one cannot serve (see `snapshot`).
    pub snapshot_wanted: std::sync::atomic::AtomicBool,
    /// Transactions committed (each with an fsync) since the store was opened.
    transactions: std::sync::atomic::AtomicU64,
    /// Test-only: drop as a crash would, without storing a pending commit index.
    #[cfg(test)]
    pub crashed: std::sync::atomic::AtomicBool,
}

impl Drop for Inner {
    /// A clean close stores a commit index that moved only in memory
    /// ([`RaftStorage::set_commit`]), so a restart after a clean stop
    /// re-applies nothing it need not.
    fn drop(&mut self) {
        #[cfg(test)]
        if *self.crashed.get_mut() {
            return;
        }
        let writer = self.writer.get_mut();
        let hard_state = &self.cache.get_mut().hard_state;
        if writer.fenced || *hard_state == writer.stored_hard_state {
            return;
        }
        let store = || -> Result<(), StorageError> {
            let txn = self.db.begin_write()?;
            put_hard_state(&txn, hard_state)?;
            txn.commit()?;
            Ok(())
        };
        if let Err(e) = store() {
            tracing::warn!(error = %e, commit = hard_state.commit, "storing the commit index on close failed");
        }
    }
}

/// Durable raft log storage. Cheap to clone (an `Arc` inside); `Send + Sync`.
/// Implements [`raft::Storage`].
#[derive(Clone)]
pub struct RaftStorage {
    pub(super) inner: Arc<Inner>,
}

impl std::fmt::Debug for RaftStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cache = self.inner.cache.read();
        f.debug_struct("RaftStorage")
            .field("path", &self.inner.path)
            .field("first_index", &cache.first_index())
            .field("last", &cache.last)
            .field("commit", &cache.hard_state.commit)
            .finish()
    }
}

impl RaftStorage {
    /// Opens or creates `dir/raft.redb`. Verifies redb's page checksums, the
    /// checksum of every metadata record and of the newest entries, and that the
    /// records agree with each other; returns `Corrupt` on any mismatch (the
    /// caller exits: a corrupt node must not take part).
    pub fn open(dir: &Path) -> Result<RaftStorage, StorageError> {
        let io_err = |op, path: &Path| {
            let path = path.to_path_buf();
            move |source| StorageError::Io { op, path, source }
        };
        fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
        let path = dir.join(DB_FILE_NAME);
        let existed = path.try_exists().map_err(io_err("stat", &path))?;
        let db = redb::Builder::new()
            .set_cache_size(DB_CACHE_BYTES)
            // A file changed behind redb's back must fail to open, not panic later.
            .set_check_integrity_on_open(true)
            .create(&path)?;
        if !existed {
            // Make the new file's directory entry durable too.
            fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io_err("fsync directory", dir))?;
        }
        load::prepare_tables(&db)?;
        let cache = load::load(&db)?;
        tracing::info!(
            path = %path.display(),
            first_index = cache.first_index(),
            last_index = cache.last.index,
            commit = cache.hard_state.commit,
            term = cache.hard_state.term,
            snapshot_index = cache.snapshot.map(|s| s.index),
            "opened raft log storage"
        );
        let stored_hard_state = cache.hard_state.clone();
        Ok(RaftStorage {
            inner: Arc::new(Inner {
                db,
                cache: RwLock::new(cache),
                writer: Mutex::new(Writer { fenced: false, stored_hard_state }),
                path,
                snapshot_wanted: std::sync::atomic::AtomicBool::new(false),
                transactions: std::sync::atomic::AtomicU64::new(0),
                #[cfg(test)]
                crashed: std::sync::atomic::AtomicBool::new(false),
            }),
        })
    }

    /// True when the store has never been initialised (no hard state, no conf
    /// state, no entries, no snapshot).
    pub fn is_empty(&self) -> bool {
        self.inner.cache.read().is_empty()
    }

    /// For a brand-new cluster: set the initial ConfState (voters) in one
    /// fsynced transaction. Refused once the store holds any state.
    pub fn initialize(&self, conf_state: &ConfState) -> Result<(), StorageError> {
        self.write(|txn, staged| {
            if !staged.is_empty() {
                return Err(StorageError::AlreadyInitialized);
            }
            put_meta(txn, META_CONF_STATE, &frame_message(conf_state, Key::Meta(META_CONF_STATE))?)?;
            staged.conf_state = conf_state.clone();
            Ok(())
        })
    }

    /// The write path of the Ready loop: in one transaction, append
    /// `entries` (first deleting any existing entries at index >=
    /// `entries[0].index`: a conflicting suffix) and, when given, store the hard
    /// state; fsynced before it returns. Whenever it carries entries, a new
    /// term or a new vote, that is. A hard state whose only change is the
    /// commit index starts no transaction at all: it is
    /// [`RaftStorage::set_commit`], as etcd's raft (`MustSync`) does not sync
    /// it. That commit-only Ready comes once per write on every controller
    /// (the leader's commit advance, a follower learning it), between the
    /// quorum's acknowledgement and the leader's apply: an fsync there was a
    /// second one on every client write's path, and even an unsynced redb
    /// transaction cost tens of µs on it (docs/BENCHMARKS.md, "Bottlenecks
    /// found" 6 and 7).
    pub fn append_and_persist(&self, entries: &[Entry], hard_state: Option<&HardState>) -> Result<(), StorageError> {
        if entries.is_empty() && hard_state.is_none() {
            return Ok(());
        }
        // Only the driver writes the hard state, so the cached one is the
        // one this write follows.
        let must_sync = !entries.is_empty()
            || hard_state.is_some_and(|hs| {
                let current = &self.inner.cache.read().hard_state;
                hs.term != current.term || hs.vote != current.vote
            });
        if let (false, Some(hs)) = (must_sync, hard_state) {
            return self.set_commit(hs.commit);
        }
        self.write(|txn, staged| {
            if let (Some(first), Some(last)) = (entries.first(), entries.last()) {
                check_append(staged, entries)?;
                let mut table = txn.open_table(ENTRIES)?;
                if first.index <= staged.last.index {
                    table.retain_in(first.index.., |_, _| false)?;
                }
                for entry in entries {
                    let framed = frame_message(entry, Key::Entry(entry.index))?;
                    table.insert(entry.index, framed.as_slice())?;
                }
                staged.last = LogPoint { index: last.index, term: last.term };
            }
            if let Some(hs) = hard_state {
                check_commit(hs.commit, staged)?;
                staged.hard_state = hs.clone();
            }
            Ok(())
        })
    }

    /// Records the commit index (a commit-only Ready, or a `LightReady`) in
    /// memory only: readers see it at once, and the next transaction (every
    /// one is fsynced) writes it with whatever else it stores. Raft needs no
    /// durable commit index, and etcd does not sync a commit-only hard state
    /// either: a restart takes the applied index from the snapshot, and every
    /// snapshot is saved (or installed) by a transaction that also writes the
    /// commit index that covers it, so the stored commit is never below it;
    /// entries committed past the stored commit are still in the log and are
    /// committed again (docs/SAFETY.md, "Durability"). It was an unsynced
    /// redb transaction before, which a crash loses just the same; this
    /// saves that transaction's work on the path of every client write.
    pub fn set_commit(&self, commit: u64) -> Result<(), StorageError> {
        let writer = self.inner.writer.lock();
        if writer.fenced {
            return Err(StorageError::Fenced);
        }
        let mut cache = self.inner.cache.write();
        check_commit(commit, &cache)?;
        cache.hard_state.commit = commit;
        Ok(())
    }

    /// How many transactions this store committed since it was opened; each
    /// was fsynced before it returned.
    pub fn transactions(&self) -> u64 {
        self.inner.transactions.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Persists the conf state (after a conf change was applied), fsynced.
    pub fn set_conf_state(&self, conf_state: &ConfState) -> Result<(), StorageError> {
        self.write(|txn, staged| {
            put_meta(txn, META_CONF_STATE, &frame_message(conf_state, Key::Meta(META_CONF_STATE))?)?;
            staged.conf_state = conf_state.clone();
            Ok(())
        })
    }

    /// Installs a snapshot received from the leader, in one transaction: stores
    /// it, drops every entry (raft hands over a snapshot only when its log does
    /// not continue from it, and afterwards believes `last_index == snapshot
    /// index`, exactly as `MemStorage::apply_snapshot` does), sets the
    /// compaction point to the snapshot's (index, term), takes the conf state
    /// from its metadata, and raises the hard state's commit (and term) to the
    /// snapshot's if lower.
    pub fn apply_snapshot(&self, snapshot: &Snapshot) -> Result<(), StorageError> {
        let meta = snapshot.get_metadata();
        let point = LogPoint { index: meta.index, term: meta.term };
        self.write(|txn, staged| {
            // Same rule as MemStorage: nothing older than what we already dropped.
            if point.index < staged.first_index() {
                return Err(StorageError::SnapshotOutOfDate {
                    index: point.index,
                    compacted_index: staged.compacted.index,
                });
            }
            txn.open_table(ENTRIES)?.retain(|_, _| false)?;
            put_snapshot(txn, meta, snapshot.get_data())?;
            put_meta(txn, META_COMPACTION_POINT, &point.encode())?;
            staged.compacted = point;
            staged.last = point;
            staged.snapshot = Some(point);

            staged.hard_state.commit = staged.hard_state.commit.max(point.index);
            staged.hard_state.term = staged.hard_state.term.max(point.term);

            staged.conf_state = meta.get_conf_state().clone();
            let cs = frame_message(&staged.conf_state, Key::Meta(META_CONF_STATE))?;
            put_meta(txn, META_CONF_STATE, &cs)
        })
    }

    /// Stores a snapshot the local state machine produced at `index` (which must
    /// be <= the last index and <= commit) with `conf_state`, then compacts:
    /// deletes entries with index <= `index - keep_entries` and remembers the
    /// (index, term) of the last deleted one. One transaction.
    pub fn save_snapshot(
        &self,
        index: u64,
        conf_state: &ConfState,
        data: Vec<u8>,
        keep_entries: u64,
    ) -> Result<(), StorageError> {
        self.write(|txn, staged| {
            let invalid = |reason| StorageError::InvalidSnapshotIndex { index, reason };
            if index > staged.last.index {
                return Err(invalid("beyond the last log index"));
            }
            if index > staged.hard_state.commit {
                return Err(invalid("beyond the commit index"));
            }
            if index < staged.compacted.index {
                return Err(invalid("below the compaction point"));
            }
            if staged.snapshot.is_some_and(|s| index < s.index) {
                return Err(invalid("older than the stored snapshot"));
            }
            let term = term_in_txn(txn, staged, index)?;
            let meta =
                SnapshotMetadata { index, term, conf_state: Some(conf_state.clone()).into(), ..Default::default() };
            put_snapshot(txn, &meta, &data)?;
            staged.snapshot = Some(LogPoint { index, term });

            let compact_to = index.saturating_sub(keep_entries);
            if compact_to > staged.compacted.index {
                let point = LogPoint { index: compact_to, term: term_in_txn(txn, staged, compact_to)? };
                txn.open_table(ENTRIES)?.retain_in(..=compact_to, |_, _| false)?;
                put_meta(txn, META_COMPACTION_POINT, &point.encode())?;
                staged.compacted = point;
            }
            Ok(())
        })
    }

    /// Runs `f` in one write transaction with `Durability::Immediate` (the fsync
    /// before acknowledging) and, only once it has committed, installs the
    /// cache `f` staged. The transaction also stores the staged hard state
    /// when it differs from the stored one (`f` changed it, or
    /// [`RaftStorage::set_commit`] moved the commit index since).
    fn write<T>(
        &self,
        f: impl FnOnce(&WriteTransaction, &mut Cache) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let mut writer = self.inner.writer.lock();
        if writer.fenced {
            return Err(StorageError::Fenced);
        }
        let mut staged = self.inner.cache.read().clone();
        let mut txn = self.inner.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        let staged_and_hard_state = f(&txn, &mut staged).and_then(|value| {
            if staged.hard_state != writer.stored_hard_state {
                put_hard_state(&txn, &staged.hard_state)?;
            }
            Ok(value)
        });
        let value = match staged_and_hard_state {
            Ok(value) => value,
            Err(e) => {
                if let Err(abort) = txn.abort() {
                    writer.fenced = true;
                    tracing::warn!(error = %abort, "aborting a raft log transaction failed");
                }
                return Err(e);
            }
        };
        if let Err(e) = txn.commit() {
            writer.fenced = true;
            return Err(e.into());
        }
        self.inner.transactions.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        writer.stored_hard_state = staged.hard_state.clone();
        *self.inner.cache.write() = staged;
        Ok(value)
    }

    /// Test-only: stores `value` verbatim (no framing) under `key`, to simulate a
    /// corrupt record. Does not touch the cache.
    #[cfg(test)]
    pub(crate) fn write_raw_for_test(&self, key: Key, value: &[u8]) -> Result<(), StorageError> {
        self.write(|txn, _| {
            match key {
                Key::Entry(index) => {
                    txn.open_table(ENTRIES)?.insert(index, value)?;
                }
                Key::Meta(name) => put_meta(txn, name, value)?,
                Key::SnapshotChunk { index, chunk } => {
                    txn.open_table(SNAPSHOT_CHUNKS)?.insert((index, chunk), value)?;
                }
            }
            Ok(())
        })
    }
}

fn check_append(staged: &Cache, entries: &[Entry]) -> Result<(), StorageError> {
    let Some(first) = entries.first() else {
        return Ok(());
    };
    if first.index < staged.first_index() || first.index > staged.last.index + 1 {
        return Err(StorageError::AppendOutOfRange {
            append_index: first.index,
            first_index: staged.first_index(),
            last_index: staged.last.index,
        });
    }
    for (expected, entry) in (first.index..).zip(entries) {
        if entry.index != expected {
            return Err(StorageError::NonContiguousBatch { expected, found: entry.index });
        }
    }
    Ok(())
}

/// A commit index beyond the log would make the store unopenable (and raft
/// refuses such a hard state on restart), so it is refused before writing.
fn check_commit(commit: u64, staged: &Cache) -> Result<(), StorageError> {
    if commit > staged.last.index {
        return Err(StorageError::CommitBeyondLog { commit, last_index: staged.last.index });
    }
    Ok(())
}

fn put_meta(txn: &WriteTransaction, name: &str, framed: &[u8]) -> Result<(), StorageError> {
    txn.open_table(META)?.insert(name, framed)?;
    Ok(())
}

fn put_hard_state(txn: &WriteTransaction, hard_state: &HardState) -> Result<(), StorageError> {
    put_meta(txn, META_HARD_STATE, &frame_message(hard_state, Key::Meta(META_HARD_STATE))?)
}

/// Replaces the stored snapshot (only the latest one is kept).
fn put_snapshot(txn: &WriteTransaction, metadata: &SnapshotMetadata, data: &[u8]) -> Result<(), StorageError> {
    let mut chunks = txn.open_table(SNAPSHOT_CHUNKS)?;
    chunks.retain(|_, _| false)?;
    let mut chunk_count = 0u32;
    for chunk in data.chunks(SNAPSHOT_CHUNK_BYTES) {
        chunks.insert((metadata.index, chunk_count), frame_bytes(chunk).as_slice())?;
        // At most 4 MiB per chunk: 2^32 chunks is 16 PiB, far past any snapshot.
        chunk_count += 1;
    }
    drop(chunks);
    let descriptor = SnapshotDescriptor { data_len: data.len() as u64, chunk_count, metadata: metadata.clone() };
    put_meta(txn, META_SNAPSHOT, &descriptor.encode(Key::Meta(META_SNAPSHOT))?)
}

/// Term of `index` as of this transaction (`index` in [compacted, last]).
fn term_in_txn(txn: &WriteTransaction, staged: &Cache, index: u64) -> Result<u64, StorageError> {
    if index == staged.compacted.index {
        return Ok(staged.compacted.term);
    }
    if index == staged.last.index {
        return Ok(staged.last.term);
    }
    let table = txn.open_table(ENTRIES)?;
    let guard = table.get(index)?.ok_or_else(|| StorageError::corrupt(format!("{} is missing", Key::Entry(index))))?;
    Ok(decode_entry(index, guard.value())?.term)
}
