//! The on-disk framing of every value: `crc32(payload)` as 4 little-endian
//! bytes, then the payload. Plus the encodings of the few records that are not
//! raft protobuf messages.

use std::fmt;

use protobuf::Message;
use raft::prelude::{Entry, SnapshotMetadata};

use super::StorageError;

const CRC_LEN: usize = 4;

/// Names a stored value in error messages, so a `Corrupt` error says exactly
/// which record failed its check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Key {
    Entry(u64),
    Meta(&'static str),
    SnapshotChunk { index: u64, chunk: u32 },
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Entry(index) => write!(f, "log entry {index}"),
            Key::Meta(name) => write!(f, "metadata record `{name}`"),
            Key::SnapshotChunk { index, chunk } => {
                write!(f, "chunk {chunk} of the snapshot at index {index}")
            }
        }
    }
}

/// Frames raw bytes.
pub(super) fn frame_bytes(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(CRC_LEN + payload.len());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Encodes a protobuf message straight into a frame (one allocation).
pub(super) fn frame_message<M: Message>(msg: &M, key: Key) -> Result<Vec<u8>, StorageError> {
    let mut out = Vec::with_capacity(CRC_LEN + msg.compute_size() as usize);
    out.extend_from_slice(&[0; CRC_LEN]);
    msg.write_to_vec(&mut out).map_err(|source| StorageError::Codec { what: key.to_string(), source })?;
    let crc = crc32fast::hash(&out[CRC_LEN..]);
    out[..CRC_LEN].copy_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// Verifies a frame's checksum and returns its payload.
pub(super) fn unframe(framed: &[u8], key: Key) -> Result<&[u8], StorageError> {
    let Some((crc, payload)) = framed.split_first_chunk::<CRC_LEN>() else {
        return Err(StorageError::corrupt(format!("{key}: {} bytes is shorter than its checksum", framed.len())));
    };
    let stored = u32::from_le_bytes(*crc);
    let computed = crc32fast::hash(payload);
    if stored != computed {
        return Err(StorageError::corrupt(format!(
            "{key}: checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
        )));
    }
    Ok(payload)
}

/// Verifies a frame and decodes the protobuf message inside.
pub(super) fn decode_message<M: Message>(framed: &[u8], key: Key) -> Result<M, StorageError> {
    let payload = unframe(framed, key)?;
    M::parse_from_bytes(payload).map_err(|source| StorageError::Codec { what: key.to_string(), source })
}

/// Verifies an entry's frame, decodes it and checks it sits under its own index.
pub(super) fn decode_entry(index: u64, framed: &[u8]) -> Result<Entry, StorageError> {
    parse_entry(index, unframe(framed, Key::Entry(index))?)
}

/// Decodes the payload of a verified frame and checks the entry sits under its own index.
pub(super) fn parse_entry(index: u64, payload: &[u8]) -> Result<Entry, StorageError> {
    let entry = Entry::parse_from_bytes(payload)
        .map_err(|source| StorageError::Codec { what: Key::Entry(index).to_string(), source })?;
    if entry.index != index {
        return Err(StorageError::corrupt(format!("{} holds an entry with index {}", Key::Entry(index), entry.index)));
    }
    Ok(entry)
}

/// A (log index, term) pair: the last entry, the compaction point or a snapshot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogPoint {
    pub index: u64,
    pub term: u64,
}

impl LogPoint {
    pub(super) fn encode(self) -> Vec<u8> {
        let mut payload = [0u8; 16];
        payload[..8].copy_from_slice(&self.index.to_le_bytes());
        payload[8..].copy_from_slice(&self.term.to_le_bytes());
        frame_bytes(&payload)
    }

    pub(super) fn decode(framed: &[u8], key: Key) -> Result<LogPoint, StorageError> {
        let payload = unframe(framed, key)?;
        let bad_len = || StorageError::corrupt(format!("{key}: {} bytes, expected 16", payload.len()));
        let (index, term) = payload.split_first_chunk::<8>().ok_or_else(bad_len)?;
        let term: &[u8; 8] = term.try_into().map_err(|_| bad_len())?;
        Ok(LogPoint { index: u64::from_le_bytes(*index), term: u64::from_le_bytes(*term) })
    }
}

pub(super) fn encode_u32(value: u32) -> Vec<u8> {
    frame_bytes(&value.to_le_bytes())
}

pub(super) fn decode_u32(framed: &[u8], key: Key) -> Result<u32, StorageError> {
    let payload = unframe(framed, key)?;
    let bytes: &[u8; 4] =
        payload.try_into().map_err(|_| StorageError::corrupt(format!("{key}: {} bytes, expected 4", payload.len())))?;
    Ok(u32::from_le_bytes(*bytes))
}

/// Describes the stored snapshot: its raft metadata and how its data is chunked.
/// Payload layout: data length (u64 LE), chunk count (u32 LE), then the
/// `SnapshotMetadata` in raft's protobuf encoding.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct SnapshotDescriptor {
    pub data_len: u64,
    pub chunk_count: u32,
    pub metadata: SnapshotMetadata,
}

impl SnapshotDescriptor {
    const HEADER_LEN: usize = 12;

    pub(super) fn encode(&self, key: Key) -> Result<Vec<u8>, StorageError> {
        let mut payload = Vec::with_capacity(Self::HEADER_LEN + self.metadata.compute_size() as usize);
        payload.extend_from_slice(&self.data_len.to_le_bytes());
        payload.extend_from_slice(&self.chunk_count.to_le_bytes());
        self.metadata
            .write_to_vec(&mut payload)
            .map_err(|source| StorageError::Codec { what: key.to_string(), source })?;
        Ok(frame_bytes(&payload))
    }

    pub(super) fn decode(framed: &[u8], key: Key) -> Result<SnapshotDescriptor, StorageError> {
        let payload = unframe(framed, key)?;
        let too_short = || StorageError::corrupt(format!("{key}: {} bytes is too short", payload.len()));
        let (data_len, rest) = payload.split_first_chunk::<8>().ok_or_else(too_short)?;
        let (chunk_count, metadata) = rest.split_first_chunk::<4>().ok_or_else(too_short)?;
        let metadata = SnapshotMetadata::parse_from_bytes(metadata)
            .map_err(|source| StorageError::Codec { what: key.to_string(), source })?;
        Ok(SnapshotDescriptor {
            data_len: u64::from_le_bytes(*data_len),
            chunk_count: u32::from_le_bytes(*chunk_count),
            metadata,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_round_trips_and_detects_a_flipped_bit() {
        let framed = frame_bytes(b"hello raft");
        assert_eq!(unframe(&framed, Key::Entry(1)).ok(), Some(&b"hello raft"[..]));
        for byte in 0..framed.len() {
            let mut bad = framed.clone();
            bad[byte] ^= 0x10;
            assert!(matches!(unframe(&bad, Key::Entry(1)), Err(StorageError::Corrupt { .. })));
        }
        assert!(matches!(unframe(&[1, 2], Key::Entry(1)), Err(StorageError::Corrupt { .. })));
    }
}
