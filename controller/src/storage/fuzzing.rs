//! Fuzzing entry points for every record the store reads back from disk and
//! for raft messages as the transport receives them (`fuzz/` runs them under
//! libFuzzer; the tests below run them over generated input on stable).
//! None may panic, whatever the bytes.

use protobuf::Message as _;
use raft::prelude::{ConfState, HardState, Message};

use super::frame::{Key, LogPoint, SnapshotDescriptor, decode_entry, decode_message, decode_u32, frame_bytes};

/// Every stored record type, both as found on disk (checksum first) and as
/// a payload behind a valid checksum, so the payload parsers are reached.
pub fn record(data: &[u8]) {
    let key = Key::Meta("fuzz");
    for framed in [data.to_vec(), frame_bytes(data)] {
        let _ = decode_entry(1, &framed);
        let _ = LogPoint::decode(&framed, key);
        let _ = decode_u32(&framed, key);
        let _ = SnapshotDescriptor::decode(&framed, key);
        let _ = decode_message::<HardState>(&framed, key);
        let _ = decode_message::<ConfState>(&framed, key);
    }
}

/// A raft message as `baton.v1.Raft/Send` decodes it (raft-rs's protobuf 2
/// codec; see the advisory note in docs/SAFETY.md: only peers may send it).
pub fn raft_message(data: &[u8]) {
    let _ = Message::parse_from_bytes(data);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn record_and_raft_decoders_survive_arbitrary_bytes() {
        let entry = raft::prelude::Entry { index: 7, term: 2, data: b"payload".to_vec().into(), ..Default::default() };
        let valid = entry.write_to_bytes().expect("encode");
        for seed in 0..2_000_u64 {
            let random = bytes(seed, (seed % 300) as usize);
            record(&random);
            raft_message(&random);
            let mut mutated = valid.clone();
            let at = (seed as usize) % mutated.len();
            mutated[at] ^= (seed >> 3) as u8 | 1;
            record(&mutated);
            raft_message(&mutated);
        }
    }
}
