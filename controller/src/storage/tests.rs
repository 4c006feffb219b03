//! Each test proves one property of the raft log store, on a fresh temp dir.
//! "Crash" means dropping every handle without any shutdown call, then reopening.

use std::error::Error;
use std::time::Instant;

use protobuf::Message as _;
use raft::prelude::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, Storage as _};

use super::frame::Key;
use super::{LogPoint, RaftStorage, SNAPSHOT_CHUNK_BYTES, StorageError};

type TestResult = Result<(), Box<dyn Error>>;

fn entry(index: u64, term: u64) -> Entry {
    Entry { index, term, data: format!("payload-{index:06}-{term}").into_bytes().into(), ..Default::default() }
}

fn entries(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
    range.map(|i| entry(i, term)).collect()
}

fn hard_state(term: u64, vote: u64, commit: u64) -> HardState {
    HardState { term, vote, commit, ..Default::default() }
}

fn voters(ids: &[u64]) -> ConfState {
    ConfState { voters: ids.to_vec(), ..Default::default() }
}

/// Drops the store as a crash would (no clean-close write of a commit index
/// that moved only in memory) and opens it again.
fn crash_and_reopen(store: RaftStorage, dir: &std::path::Path) -> Result<RaftStorage, StorageError> {
    store.inner.crashed.store(true, std::sync::atomic::Ordering::Relaxed);
    drop(store);
    RaftStorage::open(dir)
}

fn all_entries(store: &RaftStorage) -> Result<Vec<Entry>, StorageError> {
    store.read_entries(store.first_index(), store.last_index() + 1, None)
}

fn is_corrupt<T: std::fmt::Debug>(r: &Result<T, StorageError>) -> bool {
    matches!(r, Err(StorageError::Corrupt { .. }))
}

#[test]
fn append_then_read_round_trips_entries_and_bounds() -> TestResult {
    // Appended entries read back identical, and the bounds follow them.
    let dir = tempfile::tempdir()?;
    let store = RaftStorage::open(dir.path())?;
    assert!(store.is_empty());
    assert_eq!((store.first_index(), store.last_index()), (1, 0));
    assert_eq!(store.term(0)?, 0);

    let written = entries(1..=10, 1);
    store.append_and_persist(&written, None)?;
    assert_eq!(all_entries(&store)?, written);
    assert_eq!(store.entries(3, 6, None, GetEntriesContext::empty(false))?, written[2..5].to_vec());
    assert_eq!((store.first_index(), store.last_index()), (1, 10));
    assert_eq!(store.term(10)?, 1);
    assert_eq!(store.term(4)?, 1);
    assert!(!store.is_empty());
    Ok(())
}

#[test]
fn conflicting_suffix_is_replaced_on_append() -> TestResult {
    // Appending at an index inside the log first deletes everything from there on.
    let dir = tempfile::tempdir()?;
    let store = RaftStorage::open(dir.path())?;
    store.append_and_persist(&entries(1..=10, 1), None)?;
    store.append_and_persist(&entries(6..=7, 2), None)?;

    let mut expected = entries(1..=5, 1);
    expected.extend(entries(6..=7, 2));
    assert_eq!(all_entries(&store)?, expected);
    assert_eq!(store.last_point(), LogPoint { index: 7, term: 2 });
    assert!(matches!(store.read_term(8), Err(StorageError::Unavailable)));

    // Reopen: the deleted suffix stays deleted.
    drop(store);
    let store = RaftStorage::open(dir.path())?;
    assert_eq!(all_entries(&store)?, expected);
    Ok(())
}

#[test]
fn appends_that_leave_a_hole_are_refused() -> TestResult {
    // A gap after the last entry, or a non-consecutive batch, is an error and writes nothing.
    let dir = tempfile::tempdir()?;
    let store = RaftStorage::open(dir.path())?;
    store.append_and_persist(&entries(1..=3, 1), None)?;
    let gap = store.append_and_persist(&entries(5..=6, 1), Some(&hard_state(9, 9, 9)));
    assert!(matches!(gap, Err(StorageError::AppendOutOfRange { .. })));
    let batch = vec![entry(4, 1), entry(6, 1)];
    assert!(matches!(
        store.append_and_persist(&batch, None),
        Err(StorageError::NonContiguousBatch { expected: 5, found: 6 })
    ));
    assert_eq!(store.last_index(), 3);
    assert_eq!(store.hard_state(), HardState::default());
    Ok(())
}

#[test]
fn hard_state_and_entries_survive_a_crash() -> TestResult {
    // Everything acknowledged by append_and_persist is there after drop-and-reopen.
    let dir = tempfile::tempdir()?;
    let store = RaftStorage::open(dir.path())?;
    store.initialize(&voters(&[1, 2, 3]))?;
    let written = entries(1..=20, 3);
    store.append_and_persist(&written, Some(&hard_state(3, 2, 15)))?;
    let clone = store.clone();
    drop(store);
    drop(clone);

    let store = RaftStorage::open(dir.path())?;
    assert_eq!(all_entries(&store)?, written);
    assert_eq!(store.hard_state(), hard_state(3, 2, 15));
    assert_eq!(store.conf_state(), voters(&[1, 2, 3]));
    let state = store.initial_state()?;
    assert_eq!(state.hard_state, hard_state(3, 2, 15));
    assert_eq!(state.conf_state, voters(&[1, 2, 3]));
    assert_eq!(store.last_point(), LogPoint { index: 20, term: 3 });
    Ok(())
}

#[test]
fn set_commit_is_durable_with_the_next_fsynced_write() -> TestResult {
    // The commit index from a LightReady is kept in memory, leaves term and
    // vote alone, and is written by the next transaction (here an append
    // with no hard state, as a follower's next Ready).
    let dir = tempfile::tempdir()?;
    let store = RaftStorage::open(dir.path())?;
    store.append_and_persist(&entries(1..=5, 2), Some(&hard_state(2, 1, 1)))?;
    store.set_commit(4)?;
    assert_eq!(store.hard_state(), hard_state(2, 1, 4), "readers see it at once");
    store.append_and_persist(&entries(6..=6, 2), None)?;
    let store = crash_and_reopen(store, dir.path())?;
    assert_eq!(store.hard_state(), hard_state(2, 1, 4));
    Ok(())
}

#[test]
fn a_commit_index_no_transaction_followed_is_stored_on_close_not_on_a_crash() -> TestResult {
    // What a crash right after a commit-only Ready leaves: the commit index
    // stored last. (Raft re-learns the rest from the leader; see set_commit.)
    let dir = tempfile::tempdir()?;
    let store = RaftStorage::open(dir.path())?;
    store.append_and_persist(&entries(1..=5, 2), Some(&hard_state(2, 1, 2)))?;
    store.set_commit(4)?;
    drop(store);
    // A clean close stores it.
    let store = RaftStorage::open(dir.path())?;
    assert_eq!(store.hard_state(), hard_state(2, 1, 4));
    store.set_commit(5)?;
    let store = crash_and_reopen(store, dir.path())?;
    assert_eq!(store.hard_state(), hard_state(2, 1, 4));
    Ok(())
}

#[test]
fn a_snapshot_is_stored_with_the_commit_index_that_covers_it() -> TestResult {
    // A restart applies from the snapshot: the stored commit must never be
    // below it, even when the commit index moved only in memory before.
    let dir = tempfile::tempdir()?;
    let store = RaftStorage::open(dir.path())?;
    store.initialize(&voters(&[1]))?;
    store.append_and_persist(&entries(1..=8, 1), Some(&hard_state(1, 1, 2)))?;
    store.set_commit(8)?;
    store.save_snapshot(7, &voters(&[1]), b"state@7".to_vec(), 2)?;
    let store = crash_and_reopen(store, dir.path())?;
    assert_eq!(store.hard_state(), hard_state(1, 1, 8));
    assert_eq!(store.initial_state()?.hard_state.commit, 8);
    Ok(())
}

#[test]
fn only_a_commit_only_hard_state_is_written_without_a_transaction() -> TestResult {
    // etcd's MustSync: entries, a new term or a new vote are fsynced before
    // append_and_persist returns; a hard state whose only change is the
    // commit index starts no transaction, and is written by the next one.
    let dir = tempfile::tempdir()?;
    let store = RaftStorage::open(dir.path())?;
    let synced = |before: u64, store: &RaftStorage| store.transactions() - before;

    let n = store.transactions();
    store.append_and_persist(&entries(1..=5, 2), Some(&hard_state(2, 1, 1)))?;
    assert_eq!(synced(n, &store), 1, "entries are fsynced");
    let n = store.transactions();
    store.append_and_persist(&[], Some(&hard_state(2, 1, 3)))?;
    assert_eq!(synced(n, &store), 0, "a commit-only hard state starts no transaction");
    assert_eq!(store.hard_state(), hard_state(2, 1, 3), "readers see it at once");
    let n = store.transactions();
    store.append_and_persist(&[], Some(&hard_state(3, 0, 3)))?;
    assert_eq!(synced(n, &store), 1, "a new term is fsynced");
    let n = store.transactions();
    store.append_and_persist(&[], Some(&hard_state(3, 2, 4)))?;
    assert_eq!(synced(n, &store), 1, "a new vote is fsynced");
    let n = store.transactions();
    store.append_and_persist(&[], Some(&hard_state(3, 2, 5)))?;
    store.set_commit(5)?;
    assert_eq!(synced(n, &store), 0);
    store.append_and_persist(&entries(6..=6, 3), None)?;
    let store = crash_and_reopen(store, dir.path())?;
    assert_eq!(store.hard_state(), hard_state(3, 2, 5), "written by the next transaction");
    assert_eq!(store.last_index(), 6);
    Ok(())
}

#[test]
fn a_commit_beyond_the_log_is_refused() -> TestResult {
    // Such a hard state could never be reopened (nor accepted by raft), so it is never written.
    let dir = tempfile::tempdir()?;
    let store = RaftStorage::open(dir.path())?;
    store.append_and_persist(&entries(1..=5, 2), Some(&hard_state(2, 1, 5)))?;
    assert!(matches!(store.set_commit(6), Err(StorageError::CommitBeyondLog { commit: 6, last_index: 5 })));
    let refused = store.append_and_persist(&entries(6..=6, 2), Some(&hard_state(2, 1, 7)));
    assert!(matches!(refused, Err(StorageError::CommitBeyondLog { .. })));
    assert_eq!((store.last_index(), store.hard_state().commit), (5, 5));
    Ok(())
}

#[test]
fn handle_is_clone_send_and_sync() {
    fn assert_shareable<T: Clone + Send + Sync + 'static>() {}
    assert_shareable::<RaftStorage>();
}

#[test]
fn initialize_and_conf_state_persist_and_initialize_only_once() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = RaftStorage::open(dir.path())?;
    store.initialize(&voters(&[1, 2, 3]))?;
    assert!(!store.is_empty());
    assert!(matches!(store.initialize(&voters(&[4])), Err(StorageError::AlreadyInitialized)));
    store.set_conf_state(&voters(&[1, 2, 3, 4]))?;
    drop(store);
    let store = RaftStorage::open(dir.path())?;
    assert_eq!(store.conf_state(), voters(&[1, 2, 3, 4]));
    Ok(())
}

#[test]
fn save_snapshot_compacts_and_term_before_first_index_answers() -> TestResult {
    // After compaction: term(first_index - 1) answers, lower indexes are Compacted,
    // and all of it survives a reopen.
    let dir = tempfile::tempdir()?;
    let store = RaftStorage::open(dir.path())?;
    store.append_and_persist(&entries(1..=5, 1), None)?;
    store.append_and_persist(&entries(6..=10, 2), Some(&hard_state(2, 1, 9)))?;
    assert!(matches!(
        store.save_snapshot(10, &voters(&[1]), vec![], 0),
        Err(StorageError::InvalidSnapshotIndex { .. })
    ));
    store.save_snapshot(8, &voters(&[1, 2, 3]), b"state@8".to_vec(), 3)?;

    let check = |store: &RaftStorage| -> TestResult {
        assert_eq!(store.first_index(), 6);
        assert_eq!(store.compaction_point(), LogPoint { index: 5, term: 1 });
        assert_eq!(store.term(5)?, 1);
        assert_eq!(store.term(6)?, 2);
        assert_eq!(store.term(4), Err(raft::Error::Store(raft::StorageError::Compacted)));
        assert_eq!(
            store.entries(4, 7, None, GetEntriesContext::empty(false)),
            Err(raft::Error::Store(raft::StorageError::Compacted))
        );
        assert_eq!(all_entries(store)?, entries(6..=10, 2));

        let snap = store.snapshot(0, 2)?;
        assert_eq!((snap.get_metadata().index, snap.get_metadata().term), (8, 2));
        assert_eq!(snap.get_metadata().get_conf_state(), &voters(&[1, 2, 3]));
        assert_eq!(snap.get_data(), b"state@8");
        assert_eq!(store.snapshot(9, 2), Err(raft::Error::Store(raft::StorageError::SnapshotTemporarilyUnavailable)));
        Ok(())
    };
    check(&store)?;
    drop(store);
    check(&RaftStorage::open(dir.path())?)
}

/// A snapshot taken before a controller was added is useless to it (raft-rs
/// on the new member refuses a snapshot whose configuration lacks it): the
/// store says "temporarily unavailable" and asks the driver for a new one.
#[test]
fn snapshot_for_a_member_outside_its_configuration_is_requested_anew() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = RaftStorage::open(dir.path())?;
    store.append_and_persist(&entries(1..=4, 1), Some(&hard_state(1, 1, 4)))?;
    store.save_snapshot(3, &voters(&[1, 2, 3]), b"s".to_vec(), 0)?;
    assert!(!store.take_snapshot_request());
    assert!(store.snapshot(0, 3).is_ok());
    assert!(!store.take_snapshot_request());
    assert_eq!(store.snapshot(0, 4), Err(raft::Error::Store(raft::StorageError::SnapshotTemporarilyUnavailable)));
    assert!(store.take_snapshot_request(), "the driver is asked for a fresh snapshot");
    assert!(!store.take_snapshot_request(), "the request is taken once");
    store.save_snapshot(4, &voters(&[1, 2, 3, 4]), b"s4".to_vec(), 0)?;
    assert_eq!(store.snapshot(0, 4)?.get_data(), b"s4");
    Ok(())
}

#[test]
fn snapshot_before_any_is_saved_is_temporarily_unavailable() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = RaftStorage::open(dir.path())?;
    assert!(store.latest_snapshot()?.is_none());
    assert_eq!(store.snapshot(0, 2), Err(raft::Error::Store(raft::StorageError::SnapshotTemporarilyUnavailable)));
    Ok(())
}

#[test]
fn compacting_the_whole_log_keeps_last_index_and_term() -> TestResult {
    // keep_entries = 0 at the last index empties the log; appends continue after it.
    let dir = tempfile::tempdir()?;
    let store = RaftStorage::open(dir.path())?;
    store.append_and_persist(&entries(1..=4, 3), Some(&hard_state(3, 1, 4)))?;
    store.save_snapshot(4, &voters(&[1]), vec![7; 10], 0)?;
    assert_eq!((store.first_index(), store.last_index()), (5, 4));
    assert_eq!(store.term(4)?, 3);
    assert_eq!(store.read_entries(5, 5, None)?, vec![]);
    drop(store);
    let store = RaftStorage::open(dir.path())?;
    assert_eq!((store.first_index(), store.last_index(), store.term(4)?), (5, 4, 3));
    store.append_and_persist(&entries(5..=6, 3), None)?;
    assert_eq!(all_entries(&store)?, entries(5..=6, 3));
    Ok(())
}

#[test]
fn apply_snapshot_replaces_a_conflicting_log() -> TestResult {
    // A follower with a divergent log installs the leader's snapshot: its log is
    // emptied, bounds move to the snapshot, conf state and commit follow it.
    let dir = tempfile::tempdir()?;
    let store = RaftStorage::open(dir.path())?;
    store.initialize(&voters(&[1, 2, 3]))?;
    store.append_and_persist(&entries(1..=3, 1), None)?;
    store.append_and_persist(&entries(4..=12, 2), Some(&hard_state(2, 3, 3)))?;

    let mut snap = Snapshot {
        data: b"leader state at 10".to_vec().into(),
        metadata: Some(SnapshotMetadata {
            index: 10,
            term: 4,
            conf_state: Some(voters(&[1, 2, 3, 4])).into(),
            ..Default::default()
        })
        .into(),
        ..Default::default()
    };
    store.apply_snapshot(&snap)?;

    let check = |store: &RaftStorage| -> TestResult {
        assert_eq!((store.first_index(), store.last_index()), (11, 10));
        assert_eq!(store.term(10)?, 4);
        assert_eq!(store.term(9), Err(raft::Error::Store(raft::StorageError::Compacted)));
        assert_eq!(store.term(11), Err(raft::Error::Store(raft::StorageError::Unavailable)));
        assert_eq!(store.hard_state(), hard_state(4, 3, 10));
        assert_eq!(store.conf_state(), voters(&[1, 2, 3, 4]));
        assert_eq!(store.latest_snapshot()?.as_ref(), Some(&snap));
        Ok(())
    };
    check(&store)?;
    drop(store);
    let store = RaftStorage::open(dir.path())?;
    check(&store)?;
    store.append_and_persist(&entries(11..=11, 4), None)?;
    assert_eq!(all_entries(&store)?, entries(11..=11, 4));

    // An older snapshot than what the log already dropped is refused.
    snap.mut_metadata().index = 9;
    assert!(matches!(
        store.apply_snapshot(&snap),
        Err(StorageError::SnapshotOutOfDate { index: 9, compacted_index: 10 })
    ));
    Ok(())
}

#[test]
fn entries_max_size_limits_but_returns_at_least_one() -> TestResult {
    // Mirrors raft::util::limit_size: the first entry always, then while the
    // running protobuf size stays within max_size.
    let dir = tempfile::tempdir()?;
    let store = RaftStorage::open(dir.path())?;
    let written = entries(1..=10, 1);
    store.append_and_persist(&written, None)?;
    let size = u64::from(written[0].compute_size());
    assert!(written.iter().all(|e| u64::from(e.compute_size()) == size));

    let ctx = || GetEntriesContext::empty(false);
    assert_eq!(store.entries(1, 11, 0, ctx())?, written[..1].to_vec());
    assert_eq!(store.entries(1, 11, size - 1, ctx())?, written[..1].to_vec());
    assert_eq!(store.entries(1, 11, size * 3, ctx())?, written[..3].to_vec());
    assert_eq!(store.entries(1, 11, size * 3 + 1, ctx())?, written[..3].to_vec());
    assert_eq!(store.entries(2, 11, raft::NO_LIMIT, ctx())?, written[1..].to_vec());

    let mut expected = written[3..].to_vec();
    raft::util::limit_size(&mut expected, Some(size * 4 + 5));
    assert_eq!(store.entries(4, 11, size * 4 + 5, ctx())?, expected);
    Ok(())
}

#[test]
fn out_of_range_reads_are_errors_not_panics() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = RaftStorage::open(dir.path())?;
    store.append_and_persist(&entries(1..=3, 1), None)?;
    let ctx = || GetEntriesContext::empty(false);
    assert_eq!(store.entries(2, 5, None, ctx()), Err(raft::Error::Store(raft::StorageError::Unavailable)));
    assert_eq!(store.entries(4, 4, None, ctx())?, vec![]);
    assert_eq!(store.term(4), Err(raft::Error::Store(raft::StorageError::Unavailable)));
    Ok(())
}

#[test]
fn five_mib_snapshot_round_trips_through_chunks() -> TestResult {
    // Data over one chunk is split, verified and reassembled byte for byte.
    let dir = tempfile::tempdir()?;
    let store = RaftStorage::open(dir.path())?;
    store.append_and_persist(&entries(1..=3, 1), Some(&hard_state(1, 1, 3)))?;
    let data: Vec<u8> = (0..5 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    assert!(data.len() > SNAPSHOT_CHUNK_BYTES);
    store.save_snapshot(3, &voters(&[1]), data.clone(), 10)?;
    drop(store);

    let store = RaftStorage::open(dir.path())?;
    let snap = store.latest_snapshot()?.ok_or("snapshot missing")?;
    assert_eq!(snap.get_data(), data.as_slice());
    assert_eq!(snap.get_metadata().index, 3);

    // A smaller, newer snapshot replaces it entirely (no stale chunk 1 left behind).
    store.save_snapshot(3, &voters(&[1]), vec![1, 2, 3], 10)?;
    assert_eq!(store.latest_snapshot()?.ok_or("snapshot missing")?.get_data(), &[1, 2, 3]);
    Ok(())
}

#[test]
fn corrupt_entry_frame_fails_open_and_reads() -> TestResult {
    // A bad CRC on a newest entry fails open; on an older entry, the read that
    // reaches it. Both are Corrupt naming the entry, never a panic.
    let dir = tempfile::tempdir()?;
    let store = RaftStorage::open(dir.path())?;
    store.append_and_persist(&entries(1..=400, 1), None)?;
    let mut bad = super::frame::frame_bytes(&entry(2, 1).write_to_bytes()?);
    bad[0] ^= 0xff;
    store.write_raw_for_test(Key::Entry(2), &bad)?;

    let read = store.read_entries(1, 5, None);
    assert!(is_corrupt(&read), "{read:?}");
    assert!(format!("{:?}", read).contains("log entry 2"));
    let raft_err = store.entries(1, 5, None, GetEntriesContext::empty(false));
    assert!(matches!(raft_err, Err(raft::Error::Store(raft::StorageError::Other(_)))));
    assert!(store.term(2).is_err());
    // Entry 2 is outside the tail verified on open: open succeeds, reads fail.
    drop(store);
    let store = RaftStorage::open(dir.path())?;
    assert!(is_corrupt(&store.read_entries(2, 3, None)));

    store.write_raw_for_test(Key::Entry(399), b"garbage!")?;
    drop(store);
    let reopened = RaftStorage::open(dir.path());
    assert!(is_corrupt(&reopened));
    assert!(format!("{:?}", reopened.err()).contains("log entry 399"));
    Ok(())
}

#[test]
fn corrupt_metadata_or_snapshot_chunk_is_detected() -> TestResult {
    // Hard state is checked on open; a snapshot chunk when the snapshot is read.
    let dir = tempfile::tempdir()?;
    let store = RaftStorage::open(dir.path())?;
    store.append_and_persist(&entries(1..=3, 1), Some(&hard_state(1, 1, 3)))?;
    store.save_snapshot(3, &voters(&[1]), vec![9; 100], 10)?;
    store.write_raw_for_test(Key::SnapshotChunk { index: 3, chunk: 0 }, &[0; 20])?;
    assert!(is_corrupt(&store.latest_snapshot()));
    assert!(store.snapshot(0, 2).is_err());

    let mut hs = super::frame::frame_bytes(&hard_state(1, 1, 3).write_to_bytes()?);
    let last = hs.len() - 1;
    hs[last] ^= 0x01;
    store.write_raw_for_test(Key::Meta("hard_state"), &hs)?;
    drop(store);
    let reopened = RaftStorage::open(dir.path());
    assert!(is_corrupt(&reopened), "{reopened:?}");
    assert!(format!("{:?}", reopened.err()).contains("hard_state"));
    Ok(())
}

#[test]
fn a_missing_entry_in_the_middle_fails_open() -> TestResult {
    // The log must be contiguous: a hole is corruption, caught on open.
    let dir = tempfile::tempdir()?;
    let store = RaftStorage::open(dir.path())?;
    store.append_and_persist(&entries(1..=5, 1), None)?;
    let inner = &store.inner;
    {
        let txn = inner.db.begin_write()?;
        txn.open_table(super::store::ENTRIES)?.remove(3)?;
        txn.commit()?;
    }
    drop(store);
    assert!(is_corrupt(&RaftStorage::open(dir.path())));
    Ok(())
}

#[test]
fn single_node_raft_runs_on_the_store_and_resumes_after_a_crash() -> TestResult {
    // raft-rs drives the store through its Ready loop; after a crash a new
    // RawNode resumes with the same term and log, and the commit index the
    // last transaction stored.
    use raft::{Config, RawNode};
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    let config = Config { id: 1, election_tick: 10, heartbeat_tick: 1, ..Default::default() };

    let dir = tempfile::tempdir()?;
    let store = RaftStorage::open(dir.path())?;
    store.initialize(&voters(&[1]))?;
    let mut node = RawNode::new(&config, store.clone(), &logger)?;
    node.campaign()?;
    let mut applied = 0;
    let mut drive = |node: &mut RawNode<RaftStorage>| -> Result<(), Box<dyn Error>> {
        while node.has_ready() {
            let mut ready = node.ready();
            store.append_and_persist(ready.entries(), ready.hs())?;
            for e in ready.take_committed_entries() {
                applied = e.index;
            }
            let mut light = node.advance(ready);
            if let Some(commit) = light.commit_index() {
                store.set_commit(commit)?;
            }
            for e in light.take_committed_entries() {
                applied = e.index;
            }
            node.advance_apply();
        }
        Ok(())
    };
    drive(&mut node)?;
    for i in 0..5u8 {
        node.propose(vec![], vec![i])?;
        drive(&mut node)?;
    }
    let (term, commit) = (node.raft.term, node.raft.raft_log.committed);
    assert_eq!(commit, 6, "one empty leader entry + 5 proposals");
    assert_eq!((store.hard_state().commit, applied), (6, 6));
    drop(node);
    // As the driver restarts: `applied` is the snapshot's index (none here).
    let store = crash_and_reopen(store, dir.path())?;
    let mut node = RawNode::new(&config, store.clone(), &logger)?;
    assert_eq!(node.raft.term, term);
    assert_eq!(node.raft.raft_log.committed, commit - 1, "the last commit advance was only in memory");
    assert_eq!(node.raft.raft_log.last_index(), 6);
    assert_eq!(store.read_entries(2, 7, None)?.len(), 5);
    // Leading again, in a new term, commits entry 6 again.
    node.campaign()?;
    while node.has_ready() {
        let ready = node.ready();
        store.append_and_persist(ready.entries(), ready.hs())?;
        let light = node.advance(ready);
        if let Some(commit) = light.commit_index() {
            store.set_commit(commit)?;
        }
        node.advance_apply();
    }
    assert_eq!((node.raft.term, node.raft.raft_log.committed), (term + 1, 7));
    Ok(())
}

#[test]
#[ignore = "micro-benchmark: cargo test -p baton-controller --lib storage_append_fsync_latency -- --ignored --nocapture"]
fn storage_append_fsync_latency() -> TestResult {
    // One fsynced transaction per Ready with one entry and the hard state.
    const BATCHES: u64 = 2_000;
    let dir = tempfile::tempdir()?;
    let store = RaftStorage::open(dir.path())?;
    let mut micros = Vec::with_capacity(BATCHES as usize);
    let started = Instant::now();
    for index in 1..=BATCHES {
        let mut e = entry(index, 1);
        e.data = vec![0xab; 256].into();
        let hs = hard_state(1, 1, index.saturating_sub(1));
        let t = Instant::now();
        store.append_and_persist(std::slice::from_ref(&e), Some(&hs))?;
        micros.push(t.elapsed().as_micros() as u64);
    }
    let total = started.elapsed();
    micros.sort_unstable();
    let pct = |p: f64| micros[((micros.len() as f64 * p) as usize).min(micros.len() - 1)];
    println!(
        "storage_append_fsync_latency: {BATCHES} appends (1 entry of 256 B + hard state each) in {:.2?}: \
         {:.0} appends/s, p50 {} us, p99 {} us, max {} us",
        total,
        BATCHES as f64 / total.as_secs_f64(),
        pct(0.50),
        pct(0.99),
        micros[micros.len() - 1],
    );
    Ok(())
}
