//! Kafka record batches (magic 2) handled as bytes: the broker never decodes
//! records, it checks each batch's header and CRC-32C and rewrites the two
//! header fields the leader owns (base offset, partition leader epoch),
//! which the CRC does not cover.

use bytes::{Buf, Bytes, BytesMut};

/// Bytes before `batch_length`'s payload: base offset (8) + batch length (4).
const LOG_OVERHEAD: usize = 12;
/// The fixed header of a magic-2 batch.
const HEADER_LEN: usize = 61;
const PARTITION_LEADER_EPOCH_AT: usize = 12;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
/// The CRC covers everything from the attributes on.
const CRC_FROM: usize = 21;
const LAST_OFFSET_DELTA_AT: usize = 23;
const MAX_TIMESTAMP_AT: usize = 35;
const RECORD_COUNT_AT: usize = 57;

/// Why a produce's or a leader's records were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("truncated record batch ({have} bytes, need {need})")]
    Truncated { have: usize, need: usize },
    #[error("unsupported record batch magic {0} (only 2)")]
    Magic(i8),
    #[error("record batch CRC mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    Crc { stored: u32, computed: u32 },
    #[error("record batch with a bad length or record count")]
    Malformed,
}

impl BatchError {
    /// The Kafka error code a produce gets for it.
    pub fn kafka_error_code(&self) -> i16 {
        match self {
            // CORRUPT_MESSAGE
            Self::Crc { .. } | Self::Truncated { .. } | Self::Malformed => 2,
            // UNSUPPORTED_FOR_MESSAGE_FORMAT
            Self::Magic(_) => 43,
        }
    }
}

/// One checked batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    pub base_offset: i64,
    /// Inclusive.
    pub last_offset: i64,
    pub leader_epoch: i32,
    pub max_timestamp: i64,
    /// The whole batch as stored and served.
    pub data: Bytes,
}

impl Batch {
    pub fn record_count(&self) -> i64 {
        self.last_offset - self.base_offset + 1
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// A copy placed at `base_offset` and stamped with `leader_epoch` (the
    /// leader's append). The CRC stays valid: neither field is covered.
    pub fn rebased(&self, base_offset: i64, leader_epoch: i32) -> Batch {
        let mut data = BytesMut::from(&self.data[..]);
        data[0..8].copy_from_slice(&base_offset.to_be_bytes());
        data[PARTITION_LEADER_EPOCH_AT..PARTITION_LEADER_EPOCH_AT + 4].copy_from_slice(&leader_epoch.to_be_bytes());
        Batch {
            base_offset,
            last_offset: base_offset + (self.last_offset - self.base_offset),
            leader_epoch,
            max_timestamp: self.max_timestamp,
            data: data.freeze(),
        }
    }
}

fn read_i32(b: &[u8], at: usize) -> i32 {
    let mut s = &b[at..at + 4];
    s.get_i32()
}

fn read_i64(b: &[u8], at: usize) -> i64 {
    let mut s = &b[at..at + 8];
    s.get_i64()
}

/// Splits `records` into checked batches. `allow_partial_tail`: a fetch
/// response may end with a partial batch (Kafka truncates at max bytes);
/// it is dropped instead of refused.
pub fn parse_batches(records: &Bytes, allow_partial_tail: bool) -> Result<Vec<Batch>, BatchError> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < records.len() {
        let rest = &records[at..];
        if rest.len() < LOG_OVERHEAD {
            if allow_partial_tail {
                break;
            }
            return Err(BatchError::Truncated { have: rest.len(), need: LOG_OVERHEAD });
        }
        let batch_length = read_i32(rest, 8);
        let total = usize::try_from(batch_length).map_err(|_| BatchError::Malformed)? + LOG_OVERHEAD;
        if total < HEADER_LEN {
            return Err(BatchError::Malformed);
        }
        if rest.len() < total {
            if allow_partial_tail {
                break;
            }
            return Err(BatchError::Truncated { have: rest.len(), need: total });
        }
        let batch = records.slice(at..at + total);
        out.push(check(batch)?);
        at += total;
    }
    Ok(out)
}

/// Checks one whole batch (length already known to be `data.len()`).
fn check(data: Bytes) -> Result<Batch, BatchError> {
    let magic = i8::from_be_bytes([data[MAGIC_AT]]);
    if magic != 2 {
        return Err(BatchError::Magic(magic));
    }
    let stored = u32::from_be_bytes([data[CRC_AT], data[CRC_AT + 1], data[CRC_AT + 2], data[CRC_AT + 3]]);
    let computed = crc32c::crc32c(&data[CRC_FROM..]);
    if stored != computed {
        return Err(BatchError::Crc { stored, computed });
    }
    let last_offset_delta = read_i32(&data, LAST_OFFSET_DELTA_AT);
    let record_count = read_i32(&data, RECORD_COUNT_AT);
    if last_offset_delta < 0 || record_count < 0 || i64::from(record_count) > i64::from(last_offset_delta) + 1 {
        return Err(BatchError::Malformed);
    }
    let base_offset = read_i64(&data, 0);
    Ok(Batch {
        base_offset,
        last_offset: base_offset + i64::from(last_offset_delta),
        leader_epoch: read_i32(&data, PARTITION_LEADER_EPOCH_AT),
        max_timestamp: read_i64(&data, MAX_TIMESTAMP_AT),
        data,
    })
}

/// Building batches for tests (here and in `tests/`). Not a supported API.
#[doc(hidden)]
pub mod testing {
    use bytes::Bytes;

    use super::{CRC_AT, CRC_FROM, LOG_OVERHEAD};

    /// A minimal valid batch of `count` empty records (the records bytes are
    /// not parsed by the broker, so they need not be real records).
    pub fn batch_bytes(base_offset: i64, epoch: i32, count: i32) -> Bytes {
        let mut b = Vec::new();
        b.extend_from_slice(&base_offset.to_be_bytes());
        b.extend_from_slice(&0i32.to_be_bytes()); // length, patched below
        b.extend_from_slice(&epoch.to_be_bytes());
        b.push(2); // magic
        b.extend_from_slice(&0u32.to_be_bytes()); // crc, patched below
        b.extend_from_slice(&0i16.to_be_bytes()); // attributes
        b.extend_from_slice(&(count - 1).to_be_bytes()); // last offset delta
        b.extend_from_slice(&1000i64.to_be_bytes()); // base timestamp
        b.extend_from_slice(&2000i64.to_be_bytes()); // max timestamp
        b.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
        b.extend_from_slice(&(-1i16).to_be_bytes()); // producer epoch
        b.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
        b.extend_from_slice(&count.to_be_bytes());
        b.extend_from_slice(b"payload");
        let len = i32::try_from(b.len() - LOG_OVERHEAD).unwrap_or(i32::MAX);
        b[8..12].copy_from_slice(&len.to_be_bytes());
        let crc = crc32c::crc32c(&b[CRC_FROM..]);
        b[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        Bytes::from(b)
    }
}

#[cfg(test)]
mod tests {
    use super::testing::batch_bytes;
    use super::*;

    #[test]
    fn parses_checks_and_rebases_a_batch_without_breaking_its_crc() {
        let raw = batch_bytes(0, -1, 3);
        let batches = parse_batches(&raw, false).expect("valid");
        assert_eq!(batches.len(), 1);
        assert_eq!((batches[0].base_offset, batches[0].last_offset), (0, 2));
        let moved = batches[0].rebased(40, 7);
        let again = parse_batches(&moved.data, false).expect("still valid");
        assert_eq!((again[0].base_offset, again[0].last_offset, again[0].leader_epoch), (40, 42, 7));
    }

    #[test]
    fn a_flipped_bit_is_refused_as_corrupt() {
        let mut raw = batch_bytes(0, -1, 1).to_vec();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        let err = parse_batches(&Bytes::from(raw), false).expect_err("corrupt");
        assert!(matches!(err, BatchError::Crc { .. }));
        assert_eq!(err.kafka_error_code(), 2);
    }

    #[test]
    fn a_partial_tail_is_dropped_only_when_allowed() {
        let mut raw = batch_bytes(0, 1, 1).to_vec();
        raw.extend_from_slice(&batch_bytes(1, 1, 1)[..20]);
        let raw = Bytes::from(raw);
        assert_eq!(parse_batches(&raw, true).expect("tail dropped").len(), 1);
        assert!(matches!(parse_batches(&raw, false), Err(BatchError::Truncated { .. })));
    }
}
