//! Opening: creating the tables, checking the format version, and reading and
//! verifying everything the in-memory cache holds.

use raft::prelude::{ConfState, HardState};
use redb::{Database, Durability, ReadOnlyTable, ReadableDatabase, ReadableTable, ReadableTableMetadata};

use super::StorageError;
use super::frame::{Key, LogPoint, SnapshotDescriptor, decode_entry, decode_message, decode_u32, encode_u32};
use super::store::{
    Cache, ENTRIES, META, META_COMPACTION_POINT, META_CONF_STATE, META_FORMAT_VERSION, META_HARD_STATE, META_SNAPSHOT,
    SNAPSHOT_CHUNKS,
};

/// Version of the layout of tables and records; stored on creation, checked on open.
const FORMAT_VERSION: u32 = 1;

/// On open, the checksums of the newest entries are verified, up to whichever
/// bound is reached first. Older entries are verified when they are read.
const VERIFY_TAIL_ENTRIES: u64 = 256;
const VERIFY_TAIL_BYTES: u64 = 64 << 20;

/// Creates the tables and checks (or, on a new store, writes) the format version.
pub(super) fn prepare_tables(db: &Database) -> Result<(), StorageError> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    {
        let entries = txn.open_table(ENTRIES)?;
        txn.open_table(SNAPSHOT_CHUNKS)?;
        let mut meta = txn.open_table(META)?;
        let stored = match meta.get(META_FORMAT_VERSION)? {
            Some(v) => Some(decode_u32(v.value(), Key::Meta(META_FORMAT_VERSION))?),
            None => None,
        };
        match stored {
            Some(FORMAT_VERSION) => {}
            Some(found) => {
                return Err(StorageError::UnsupportedFormat { found, supported: FORMAT_VERSION });
            }
            None if meta.is_empty()? && entries.is_empty()? => {
                meta.insert(META_FORMAT_VERSION, encode_u32(FORMAT_VERSION).as_slice())?;
            }
            None => {
                return Err(StorageError::corrupt(format!(
                    "{} is missing but the store holds records",
                    Key::Meta(META_FORMAT_VERSION)
                )));
            }
        }
    }
    txn.commit()?;
    Ok(())
}

/// Reads and verifies everything the cache holds.
pub(super) fn load(db: &Database) -> Result<Cache, StorageError> {
    let txn = db.begin_read()?;
    let meta = txn.open_table(META)?;
    let hard_state: HardState = match meta.get(META_HARD_STATE)? {
        Some(v) => decode_message(v.value(), Key::Meta(META_HARD_STATE))?,
        None => HardState::default(),
    };
    let conf_state: ConfState = match meta.get(META_CONF_STATE)? {
        Some(v) => decode_message(v.value(), Key::Meta(META_CONF_STATE))?,
        None => ConfState::default(),
    };
    let compacted = match meta.get(META_COMPACTION_POINT)? {
        Some(v) => LogPoint::decode(v.value(), Key::Meta(META_COMPACTION_POINT))?,
        None => LogPoint::default(),
    };
    let snapshot = match meta.get(META_SNAPSHOT)? {
        Some(v) => Some(SnapshotDescriptor::decode(v.value(), Key::Meta(META_SNAPSHOT))?),
        None => None,
    };
    let snapshot = snapshot.map(|d| LogPoint { index: d.metadata.index, term: d.metadata.term });

    let entries = txn.open_table(ENTRIES)?;
    let last = verify_log(&entries, compacted)?;

    if hard_state.commit > last.index {
        return Err(StorageError::corrupt(format!(
            "hard state commit {} is beyond the last log index {}",
            hard_state.commit, last.index
        )));
    }
    match snapshot {
        None if compacted.index > 0 => {
            return Err(StorageError::corrupt(format!(
                "log compacted up to {} but no snapshot is stored",
                compacted.index
            )));
        }
        Some(s) if s.index < compacted.index || s.index > last.index => {
            return Err(StorageError::corrupt(format!(
                "snapshot at index {} lies outside the log [{}, {}]",
                s.index, compacted.index, last.index
            )));
        }
        _ => {}
    }
    Ok(Cache { hard_state, conf_state, compacted, last, snapshot })
}

/// Checks that the log is one contiguous run starting right after the
/// compaction point, verifies the first entry and the newest ones, and returns
/// the last (index, term).
fn verify_log(entries: &ReadOnlyTable<u64, &'static [u8]>, compacted: LogPoint) -> Result<LogPoint, StorageError> {
    let (Some((first, _)), Some((last, _))) = (entries.first()?, entries.last()?) else {
        return Ok(compacted);
    };
    let (first, last) = (first.value(), last.value());
    if first != compacted.index + 1 {
        return Err(StorageError::corrupt(format!(
            "the log starts at index {first} but the compaction point is {}",
            compacted.index
        )));
    }
    let len = entries.len()?;
    if len != last - first + 1 {
        return Err(StorageError::corrupt(format!("the log [{first}, {last}] holds {len} entries: some are missing")));
    }

    if let Some(v) = entries.get(first)? {
        let entry = decode_entry(first, v.value())?;
        if entry.term < compacted.term {
            return Err(StorageError::corrupt(format!(
                "{} has term {} below the compaction point's {}",
                Key::Entry(first),
                entry.term,
                compacted.term
            )));
        }
    }

    let mut last_point = None;
    let mut later_term = u64::MAX;
    let (mut checked, mut bytes) = (0u64, 0u64);
    for item in entries.range(first..=last)?.rev() {
        let (k, v) = item?;
        let (index, framed) = (k.value(), v.value());
        let entry = decode_entry(index, framed)?;
        if entry.term > later_term {
            return Err(StorageError::corrupt(format!(
                "{} has term {} above a later entry's {later_term}",
                Key::Entry(index),
                entry.term
            )));
        }
        later_term = entry.term;
        last_point.get_or_insert(LogPoint { index, term: entry.term });
        checked += 1;
        bytes += framed.len() as u64;
        if checked >= VERIFY_TAIL_ENTRIES || bytes >= VERIFY_TAIL_BYTES {
            break;
        }
    }
    last_point.ok_or_else(|| StorageError::corrupt("the log's last entry vanished during open"))
}
