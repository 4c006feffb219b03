//! Snapshot encoding: a fixed header (magic, format version, body length,
//! crc32 of the body) and a postcard body holding the applied index, the
//! brokers, the topics and (from version 2) the controllers' addresses and
//! the drained brokers. Derived indexes are not stored: they are rebuilt,
//! so a snapshot cannot carry an index that disagrees with its topics.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::DecodeError;
use crate::index::{DerivedIndex, PartitionKey};
use crate::reassign::Reassignment;
use crate::state::State;
use crate::types::{Broker, BrokerId, Topic};

/// "BTSM": Baton state machine.
pub const SNAPSHOT_MAGIC: [u8; 4] = *b"BTSM";
/// Bump on any change of the body's shape; older versions must keep decoding.
/// Version 2 added the controllers' addresses and drained brokers; version 1
/// still decodes.
pub const SNAPSHOT_FORMAT_VERSION: u32 = 2;
/// magic (4) + version (4, LE) + body length (8, LE) + crc32 of body (4, LE).
pub const SNAPSHOT_HEADER_LEN: usize = 20;

#[derive(Serialize)]
struct BodyRef<'a> {
    applied_index: u64,
    brokers: Vec<&'a Broker>,
    topics: Vec<&'a Topic>,
    controllers: &'a BTreeMap<u64, String>,
    drained: &'a BTreeSet<BrokerId>,
    reassignments: &'a BTreeMap<PartitionKey, Reassignment>,
}

/// Same wire shape as `BodyRef`, owned.
#[derive(Deserialize)]
struct Body {
    applied_index: u64,
    brokers: Vec<Broker>,
    topics: Vec<Topic>,
    controllers: BTreeMap<u64, String>,
    drained: BTreeSet<BrokerId>,
    reassignments: BTreeMap<PartitionKey, Reassignment>,
}

/// The body of format version 1 (no controllers).
#[derive(Deserialize)]
struct BodyV1 {
    applied_index: u64,
    brokers: Vec<Broker>,
    topics: Vec<Topic>,
}

impl State {
    /// Versioned header + crc32 + postcard body. Deterministic: equal states
    /// encode to equal bytes.
    pub fn encode_snapshot(&self) -> Vec<u8> {
        let body = BodyRef {
            applied_index: self.applied_index,
            brokers: self.brokers.values().collect(),
            topics: self.topics.values().collect(),
            controllers: &self.controllers,
            drained: &self.drained,
            reassignments: &self.reassignments,
        };
        // Plain derived types into a Vec: postcard has no failure path here.
        let mut out = postcard::to_extend(&body, vec![0; SNAPSHOT_HEADER_LEN])
            .expect("postcard cannot fail to serialize a snapshot body into a Vec");
        let body_len = (out.len() - SNAPSHOT_HEADER_LEN) as u64;
        let crc = crc32fast::hash(&out[SNAPSHOT_HEADER_LEN..]);
        out[0..4].copy_from_slice(&SNAPSHOT_MAGIC);
        out[4..8].copy_from_slice(&SNAPSHOT_FORMAT_VERSION.to_le_bytes());
        out[8..16].copy_from_slice(&body_len.to_le_bytes());
        out[16..20].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Checks header, length, version and crc, decodes the body, rebuilds the
    /// derived indexes and checks every invariant. Never panics.
    pub fn decode_snapshot(bytes: &[u8]) -> Result<State, DecodeError> {
        if bytes.is_empty() {
            return Err(DecodeError::Empty);
        }
        let (header, body) = bytes
            .split_first_chunk::<SNAPSHOT_HEADER_LEN>()
            .ok_or(DecodeError::Truncated { needed: SNAPSHOT_HEADER_LEN, available: bytes.len() })?;
        let h = |at: usize| header[at];
        if [h(0), h(1), h(2), h(3)] != SNAPSHOT_MAGIC {
            return Err(DecodeError::BadMagic);
        }
        let version = u32::from_le_bytes([h(4), h(5), h(6), h(7)]);
        if !(1..=SNAPSHOT_FORMAT_VERSION).contains(&version) {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let body_len = u64::from_le_bytes([h(8), h(9), h(10), h(11), h(12), h(13), h(14), h(15)]);
        let expected_crc = u32::from_le_bytes([h(16), h(17), h(18), h(19)]);
        let needed = usize::try_from(body_len).ok().and_then(|n| n.checked_add(SNAPSHOT_HEADER_LEN));
        match needed {
            Some(needed) if needed == bytes.len() => {}
            Some(needed) if needed < bytes.len() => return Err(DecodeError::TrailingBytes(bytes.len() - needed)),
            _ => {
                return Err(DecodeError::Truncated { needed: needed.unwrap_or(usize::MAX), available: bytes.len() });
            }
        }
        let actual_crc = crc32fast::hash(body);
        if actual_crc != expected_crc {
            return Err(DecodeError::ChecksumMismatch { expected: expected_crc, actual: actual_crc });
        }
        let malformed = |e: postcard::Error| DecodeError::Malformed(e.to_string());
        let (decoded, rest) = if version == 1 {
            let (v1, rest) = postcard::take_from_bytes::<BodyV1>(body).map_err(malformed)?;
            let BodyV1 { applied_index, brokers, topics } = v1;
            (
                Body {
                    applied_index,
                    brokers,
                    topics,
                    controllers: BTreeMap::new(),
                    drained: BTreeSet::new(),
                    reassignments: BTreeMap::new(),
                },
                rest,
            )
        } else {
            postcard::take_from_bytes::<Body>(body).map_err(malformed)?
        };
        if !rest.is_empty() {
            return Err(DecodeError::TrailingBytes(rest.len()));
        }
        State::from_body(decoded)
    }

    fn from_body(body: Body) -> Result<State, DecodeError> {
        let mut brokers: BTreeMap<BrokerId, Broker> = BTreeMap::new();
        for broker in body.brokers {
            if let Some(dup) = brokers.insert(broker.id, broker) {
                return Err(DecodeError::Invariant(format!("broker {} appears twice", dup.id)));
            }
        }
        let mut topics: BTreeMap<Arc<str>, Topic> = BTreeMap::new();
        let mut ids = BTreeMap::new();
        for topic in body.topics {
            if let Some(other) = ids.insert(topic.id, topic.name.clone()) {
                return Err(DecodeError::Invariant(format!(
                    "topics {other:?} and {:?} share id {}",
                    topic.name, topic.id
                )));
            }
            if i32::try_from(topic.partitions.len()).is_err() {
                return Err(DecodeError::Invariant(format!("topic {:?} has too many partitions", topic.name)));
            }
            if let Some(dup) = topics.insert(topic.name.clone(), topic) {
                return Err(DecodeError::Invariant(format!("topic {:?} appears twice", dup.name)));
            }
        }
        let index = DerivedIndex::rebuild(topics.values());
        if let Some(id) = body.controllers.iter().find_map(|(id, a)| (*id == 0 || a.is_empty()).then_some(id)) {
            return Err(DecodeError::Invariant(format!("controller {id} has id 0 or an empty address")));
        }
        if let Some(id) = body.drained.iter().find(|id| !brokers.contains_key(id)) {
            return Err(DecodeError::Invariant(format!("drained broker {id} is not registered")));
        }
        let state = State {
            applied_index: body.applied_index,
            brokers,
            topics,
            index,
            controllers: body.controllers,
            drained: body.drained,
            reassignments: body.reassignments,
        };
        state.check_records().map_err(DecodeError::Invariant)?;
        Ok(state)
    }
}
