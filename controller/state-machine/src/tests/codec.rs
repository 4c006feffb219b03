//! Snapshot and command encodings: round trips, and every corruption is an
//! error, never a panic.

use super::property::Rng;
use super::*;
use crate::{
    DecodeError, ElectionType, IsrChange, NO_LEADER, SNAPSHOT_FORMAT_VERSION, SNAPSHOT_HEADER_LEN, SNAPSHOT_MAGIC,
};

fn sample_state() -> State {
    let mut h = Harness::new();
    for (id, rack) in [(1, "a"), (2, "b"), (3, "")] {
        h.register(id, rack);
    }
    h.create("t", 3, 2);
    h.apply(create("u", 2, 3, true));
    h.fence(2);
    h.apply(Command::ControllerAddresses { set: vec![(4, "10.0.0.4:7100".into())], removed: vec![] });
    h.apply(Command::DrainBroker { broker_id: 3, force: false });
    h.apply(Command::AlterReassignments {
        changes: vec![crate::ReassignmentChange { topic: "t".into(), partition: 0, target: Some(vec![3, 1]) }],
    });
    h.state
}

/// Header with a correct crc around an arbitrary body.
fn framed(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&SNAPSHOT_MAGIC);
    out.extend_from_slice(&SNAPSHOT_FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// Property: decode(encode(s)) == s, derived indexes included, and encoding
/// is deterministic.
#[test]
fn snapshot_round_trip_is_exact() {
    for state in [State::new(), sample_state()] {
        let bytes = state.encode_snapshot();
        let decoded = State::decode_snapshot(&bytes).expect("round trip");
        assert_eq!(decoded, state);
        assert_eq!(decoded.encode_snapshot(), bytes);
        assert_eq!(decoded.partitions_of_broker(1).count(), state.partitions_of_broker(1).count());
    }
}

/// Property: flipping any bit of a snapshot, or cutting it anywhere, is an
/// error (the crc or the framing catches it), never a panic.
#[test]
fn corrupted_or_truncated_snapshots_are_errors() {
    let bytes = sample_state().encode_snapshot();
    for i in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[i] ^= 1 << (i % 8);
        assert!(State::decode_snapshot(&bad).is_err(), "flipped byte {i}");
        assert!(State::decode_snapshot(&bytes[..i]).is_err(), "cut at {i}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(State::decode_snapshot(&longer), Err(DecodeError::TrailingBytes(1)));
    assert_eq!(State::decode_snapshot(&[]), Err(DecodeError::Empty));
    let mut magic = bytes.clone();
    magic[0] = b'X';
    assert_eq!(State::decode_snapshot(&magic), Err(DecodeError::BadMagic));
    let mut version = bytes.clone();
    version[4] = 9;
    assert_eq!(State::decode_snapshot(&version), Err(DecodeError::UnsupportedVersion(9)));
    let mut huge = bytes[..SNAPSHOT_HEADER_LEN].to_vec();
    huge[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(State::decode_snapshot(&huge), Err(DecodeError::Truncated { .. })));
}

/// Property: a body with a valid checksum but garbage content is an error,
/// never a panic or a huge allocation.
#[test]
fn garbage_bodies_with_valid_checksums_are_errors() {
    let mut rng = Rng::new(7);
    let good = sample_state().encode_snapshot();
    let body = &good[SNAPSHOT_HEADER_LEN..];
    for round in 0..2000 {
        let garbage: Vec<u8> = if round % 2 == 0 {
            (0..rng.below(64)).map(|_| rng.below(256) as u8).collect()
        } else {
            // Mostly valid: a real body with a few bytes changed.
            let mut b = body.to_vec();
            for _ in 0..1 + rng.below(3) {
                let i = rng.below(b.len() as u64) as usize;
                b[i] = rng.below(256) as u8;
            }
            b
        };
        if let Ok(state) = State::decode_snapshot(&framed(&garbage)) {
            // Whatever decodes must be a consistent state.
            assert_eq!(state.check_invariants(), Ok(()));
        }
    }
}

/// Property: a well-framed snapshot of an inconsistent state is refused.
#[test]
fn snapshot_violating_invariants_is_refused() {
    let mut state = sample_state();
    if let Some(topic) = state.topics.get_mut("t") {
        topic.partitions[0].leader = 99;
    }
    assert!(matches!(State::decode_snapshot(&state.encode_snapshot()), Err(DecodeError::Invariant(_))));
    let mut state = sample_state();
    if let Some(topic) = state.topics.get_mut("t") {
        topic.partitions[0].isr.clear();
        topic.partitions[0].leader = NO_LEADER;
    }
    assert!(matches!(State::decode_snapshot(&state.encode_snapshot()), Err(DecodeError::Invariant(_))));
}

/// Property: snapshots of format version 1 (before controllers' addresses
/// were kept) still decode, with no addresses.
#[test]
fn version_1_snapshots_still_decode() {
    #[derive(serde::Serialize)]
    struct BodyV1<'a> {
        applied_index: u64,
        brokers: Vec<&'a crate::Broker>,
        topics: Vec<&'a crate::Topic>,
    }
    let mut state = sample_state();
    assert!(!state.controller_addresses().is_empty());
    let body = BodyV1 {
        applied_index: state.applied_index,
        brokers: state.brokers.values().collect(),
        topics: state.topics.values().collect(),
    };
    let mut bytes = framed(&postcard::to_allocvec(&body).expect("encodes"));
    bytes[4..8].copy_from_slice(&1u32.to_le_bytes());
    state.controllers.clear();
    state.drained.clear();
    state.reassignments.clear();
    assert_eq!(State::decode_snapshot(&bytes), Ok(state));
}

/// Rule: controller addresses are set and forgotten by membership entries;
/// id 0 and empty addresses are refused without changing anything.
#[test]
fn controller_addresses_follow_membership_entries() {
    let mut h = Harness::new();
    let set = |set: Vec<(u64, &str)>, removed: Vec<u64>| Command::ControllerAddresses {
        set: set.into_iter().map(|(id, a)| (id, a.to_owned())).collect(),
        removed,
    };
    h.apply(set(vec![(4, "h4:1"), (5, "h5:1")], vec![]));
    h.apply(set(vec![(4, "h4:2")], vec![5]));
    assert_eq!(h.state.controller_addresses().iter().collect::<Vec<_>>(), vec![(&4, &"h4:2".to_owned())]);
    let before = h.state.controller_addresses().clone();
    assert!(h.state.apply(100, &set(vec![(0, "h0:1")], vec![])).outcome.is_err());
    assert!(h.state.apply(101, &set(vec![(6, "")], vec![4])).outcome.is_err());
    assert_eq!(h.state.controller_addresses(), &before);
}

fn every_command() -> Vec<Command> {
    vec![
        Command::Noop,
        register(4, "inc", "rack-a"),
        Command::FenceBroker { broker_id: 4, broker_epoch: 17, reason: FenceReason::CleanShutdown },
        create("orders", 12, 3, true),
        Command::DeleteTopic { name: "orders".into() },
        Command::AlterIsr {
            changes: vec![IsrChange { topic: "t".into(), partition: 3, partition_epoch: 9, new_isr: vec![1, 2] }],
        },
        Command::ElectLeaders { election: ElectionType::Preferred, partitions: None },
        Command::ElectLeaders { election: ElectionType::Unclean, partitions: Some(vec![("t".into(), 0)]) },
        Command::ControllerAddresses { set: vec![(4, "h:7100".into())], removed: vec![2] },
        Command::DrainBroker { broker_id: 3, force: true },
        Command::UndrainBroker { broker_id: 3 },
        Command::ControlledShutdown { broker_id: 2, broker_epoch: 9 },
        Command::AlterReassignments {
            changes: vec![
                crate::ReassignmentChange { topic: "t".into(), partition: 1, target: Some(vec![3, 1]) },
                crate::ReassignmentChange { topic: "t".into(), partition: 2, target: None },
            ],
        },
    ]
}

/// Property: every command round-trips through encode/decode.
#[test]
fn command_round_trip() {
    for command in every_command() {
        assert_eq!(Command::decode(&command.encode()), Ok(command));
    }
}

/// Property: bad command bytes (empty, unknown version, truncated, trailing,
/// random) are errors, never panics.
#[test]
fn bad_command_bytes_are_errors() {
    assert_eq!(Command::decode(&[]), Err(DecodeError::Empty));
    assert_eq!(Command::decode(&[2, 0]), Err(DecodeError::UnsupportedVersion(2)));
    for command in every_command() {
        let bytes = command.encode();
        for cut in 1..bytes.len() {
            assert!(Command::decode(&bytes[..cut]).is_err(), "{command:?} cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(Command::decode(&longer), Err(DecodeError::TrailingBytes(1)));
    }
    let mut rng = Rng::new(11);
    for _ in 0..5000 {
        let mut bytes: Vec<u8> = (0..rng.below(40)).map(|_| rng.below(256) as u8).collect();
        if let Some(first) = bytes.first_mut() {
            *first = 1;
        }
        let _ = Command::decode(&bytes);
    }
}
