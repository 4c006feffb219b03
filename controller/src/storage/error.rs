//! The error type of the storage module and its mapping onto raft's.

use std::path::PathBuf;

/// Everything that can go wrong when reading or writing the raft log store.
///
/// Any error other than `Compacted`, `Unavailable`, `SnapshotTemporarilyUnavailable`
/// and `SnapshotOutOfDate` (which raft handles itself) must be treated as fatal by
/// the caller: raft-rs stops taking part after a storage error, and a node whose
/// log cannot be trusted must not lead or vote.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// redb failed (I/O, a failed commit, a transaction error).
    #[error("raft log database: {0}")]
    Db(redb::Error),

    /// A file-system operation outside redb failed.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A checksum did not match, a record is missing, or the stored records
    /// contradict each other. The node must not take part until an operator
    /// repairs or replaces its data folder.
    #[error("corrupt raft storage: {what}")]
    Corrupt { what: String },

    /// A record with a valid checksum could not be decoded (or a message could
    /// not be encoded).
    #[error("cannot encode or decode {what}: {source}")]
    Codec {
        what: String,
        #[source]
        source: protobuf::ProtobufError,
    },

    /// The requested index lies at or below the compaction point.
    #[error("log compacted")]
    Compacted,

    /// The requested index lies beyond the last entry.
    #[error("log entry unavailable")]
    Unavailable,

    /// No snapshot (or none recent enough) is stored yet.
    #[error("snapshot temporarily unavailable")]
    SnapshotTemporarilyUnavailable,

    /// A snapshot to install is older than what the log already covers.
    #[error("snapshot at index {index} is out of date (log compacted up to {compacted_index})")]
    SnapshotOutOfDate { index: u64, compacted_index: u64 },

    /// `initialize` on a store that already holds state.
    #[error("raft storage is already initialised")]
    AlreadyInitialized,

    /// An append that would leave a hole in the log or overwrite compacted entries.
    #[error("cannot append at index {append_index}: the log holds [{first_index}, {last_index}]")]
    AppendOutOfRange { append_index: u64, first_index: u64, last_index: u64 },

    /// A hard state whose commit index lies beyond the last entry.
    #[error("commit index {commit} is beyond the last log index {last_index}")]
    CommitBeyondLog { commit: u64, last_index: u64 },

    /// The entries of one append are not consecutive.
    #[error("entries to append are not consecutive: expected index {expected}, found {found}")]
    NonContiguousBatch { expected: u64, found: u64 },

    /// `save_snapshot` at an index the log cannot describe.
    #[error("cannot save a snapshot at index {index}: {reason}")]
    InvalidSnapshotIndex { index: u64, reason: &'static str },

    /// The data folder was written by a newer (or unknown) storage format.
    #[error("raft storage format {found} is not supported (this build reads format {supported})")]
    UnsupportedFormat { found: u32, supported: u32 },

    /// An earlier commit failed: the on-disk state is unknown (a failed fsync may
    /// have dropped dirty pages), so every later write is refused until the
    /// process reopens the store. Retrying an fsync is not safe.
    #[error("an earlier write to the raft log failed; the store refuses writes until reopened")]
    Fenced,
}

impl StorageError {
    pub(super) fn corrupt(what: impl Into<String>) -> Self {
        StorageError::Corrupt { what: what.into() }
    }
}

impl From<redb::Error> for StorageError {
    fn from(e: redb::Error) -> Self {
        match e {
            redb::Error::Corrupted(what) => StorageError::Corrupt { what: format!("redb: {what}") },
            other => StorageError::Db(other),
        }
    }
}

/// redb reports each operation with its own error type; all convert into
/// `redb::Error`, and from there into ours (so `Corrupted` is never lost).
macro_rules! from_redb {
    ($($t:ty),* $(,)?) => {$(
        impl From<$t> for StorageError {
            fn from(e: $t) -> Self {
                StorageError::from(redb::Error::from(e))
            }
        }
    )*};
}

from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError,
);

impl From<StorageError> for raft::Error {
    fn from(e: StorageError) -> Self {
        let store = match e {
            StorageError::Compacted => raft::StorageError::Compacted,
            StorageError::Unavailable => raft::StorageError::Unavailable,
            StorageError::SnapshotTemporarilyUnavailable => raft::StorageError::SnapshotTemporarilyUnavailable,
            StorageError::SnapshotOutOfDate { .. } => raft::StorageError::SnapshotOutOfDate,
            other => raft::StorageError::Other(Box::new(other)),
        };
        raft::Error::Store(store)
    }
}
