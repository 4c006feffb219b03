//! Property test over random command sequences, with a small deterministic
//! generator (splitmix64) instead of proptest: no new dependency, and a
//! failing seed is reproduced by its number alone.

use std::collections::BTreeMap;

use super::*;
use crate::{ElectionType, IsrChange, NO_LEADER, Outcome};

/// splitmix64: tiny, deterministic, good enough to drive command choice.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform-ish in 0..n (n > 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

const TOPICS: [&str; 4] = ["t0", "t1", "t2", "bad name"];

/// A random command, biased towards ones that are valid in `state` so the
/// sequence goes deep instead of bouncing off validation.
fn random_command(rng: &mut Rng, state: &State) -> Command {
    let broker_ids: Vec<BrokerId> = (-1..7).collect();
    match rng.below(25) {
        0 => Command::Noop,
        23 | 24 => {
            let target = rng.chance(80).then(|| {
                let mut t: Vec<BrokerId> = Vec::new();
                for _ in 0..1 + rng.below(3) {
                    let b = *rng.pick(&broker_ids);
                    if !t.contains(&b) || rng.chance(5) {
                        t.push(b);
                    }
                }
                t
            });
            let change = crate::ReassignmentChange {
                topic: (*rng.pick(&TOPICS)).to_owned(),
                partition: rng.below(4) as i32,
                target,
            };
            Command::AlterReassignments { changes: vec![change] }
        }
        20 => Command::DrainBroker { broker_id: *rng.pick(&broker_ids), force: rng.chance(50) },
        21 => Command::UndrainBroker { broker_id: *rng.pick(&broker_ids) },
        22 => {
            let broker_id = *rng.pick(&broker_ids);
            let current = state.broker(broker_id).map(|b| b.epoch).unwrap_or_default();
            Command::ControlledShutdown {
                broker_id,
                broker_epoch: if rng.chance(85) { current } else { rng.below(50) },
            }
        }
        1..=4 => Command::RegisterBroker {
            broker_id: if rng.chance(95) { rng.below(6) as BrokerId } else { *rng.pick(&broker_ids) },
            incarnation_id: (*rng.pick(&["i0", "i1"])).to_owned(),
            endpoint: if rng.chance(97) { "host:9092".to_owned() } else { String::new() },
            rack: (*rng.pick(&["a", "b", ""])).to_owned(),
        },
        5..=7 => {
            let broker_id = *rng.pick(&broker_ids);
            let current = state.broker(broker_id).map(|b| b.epoch).unwrap_or_default();
            let broker_epoch = if rng.chance(85) { current } else { rng.below(50) };
            Command::FenceBroker { broker_id, broker_epoch, reason: FenceReason::SessionTimeout }
        }
        8..=10 => create(
            TOPICS[rng.below(TOPICS.len() as u64) as usize],
            rng.below(6) as i32 - i32::from(rng.chance(5)),
            rng.below(5) as i32,
            rng.chance(40),
        ),
        11 => Command::DeleteTopic { name: (*rng.pick(&TOPICS)).to_owned() },
        12..=16 => {
            let changes = (0..1 + rng.below(3)).map(|_| random_isr_change(rng, state)).collect();
            Command::AlterIsr { changes }
        }
        _ => {
            let election = if rng.chance(50) { ElectionType::Preferred } else { ElectionType::Unclean };
            let partitions = rng.chance(50).then(|| {
                (0..1 + rng.below(3)).map(|_| ((*rng.pick(&TOPICS)).to_owned(), rng.below(5) as i32 - 1)).collect()
            });
            Command::ElectLeaders { election, partitions }
        }
    }
}

fn random_isr_change(rng: &mut Rng, state: &State) -> IsrChange {
    let topic = (*rng.pick(&TOPICS)).to_owned();
    let partition = rng.below(4) as i32;
    let current = state.partition(&topic, partition).ok();
    let partition_epoch = match current {
        Some(p) if rng.chance(85) => p.partition_epoch,
        _ => rng.below(6) as i32,
    };
    let mut new_isr: Vec<BrokerId> = Vec::new();
    if let Some(p) = current {
        if p.leader != NO_LEADER && rng.chance(90) {
            new_isr.push(p.leader);
        }
        for &r in &p.replicas {
            if !new_isr.contains(&r) && rng.chance(50) {
                new_isr.push(r);
            }
        }
    }
    if new_isr.is_empty() || rng.chance(10) {
        new_isr.push(rng.below(6) as BrokerId);
    }
    if rng.chance(30) {
        new_isr.reverse();
    }
    IsrChange { topic, partition, partition_epoch, new_isr }
}

/// Per-partition history, keyed by topic id, for the epoch properties.
#[derive(Default)]
struct History {
    /// (topic id, partition, leader epoch) -> the one broker that held it.
    leaders: BTreeMap<(u64, i32, i32), BrokerId>,
    broker_epochs: BTreeMap<BrokerId, u64>,
}

fn partitions_by_id(state: &State) -> BTreeMap<(u64, i32), Partition> {
    state.topics().flat_map(|t| (0_i32..).zip(&t.partitions).map(move |(p, part)| ((t.id, p), part.clone()))).collect()
}

/// Checks one step: the failed-means-unchanged rule, that Changes describe
/// the difference exactly, and the epoch rules.
fn check_step(before: &State, after: &State, command: &Command, applied: &Applied, history: &mut History) {
    after.check_invariants().unwrap_or_else(|e| panic!("after {command:?}: {e}"));
    if applied.outcome.is_err() {
        assert!(applied.changes.is_empty(), "{command:?}");
        assert_eq!(content(before), content(after), "refused {command:?} changed the state");
    }
    let old = partitions_by_id(before);
    let new = partitions_by_id(after);
    let id_of = |name: &str| after.topic(name).map(|t| t.id);
    let mut reported: BTreeMap<(u64, i32), &Partition> = BTreeMap::new();
    let mut first_previous: BTreeMap<(u64, i32), BrokerId> = BTreeMap::new();
    for change in &applied.changes.partitions {
        let key =
            (id_of(&change.topic).unwrap_or_else(|| panic!("changed topic {} exists", change.topic)), change.partition);
        reported.insert(key, &change.record);
        first_previous.entry(key).or_insert(change.previous_leader);
    }
    for (key, part) in &new {
        match (reported.get(key), old.get(key)) {
            (Some(record), previous) => {
                assert_eq!(*record, part, "{command:?}: reported record is the final one");
                let was = previous.map_or(NO_LEADER, |p| p.leader);
                assert_eq!(first_previous.get(key), Some(&was), "{command:?}: previous_leader");
            }
            (None, Some(previous)) => assert_eq!(previous, part, "{command:?}: unreported change of {key:?}"),
            (None, None) => panic!("{command:?}: new partition {key:?} not reported"),
        }
        if let Some(previous) = old.get(key) {
            assert!(part.leader_epoch >= previous.leader_epoch && part.partition_epoch >= previous.partition_epoch);
            if part != previous {
                assert!(part.partition_epoch > previous.partition_epoch, "{command:?}: change without epoch bump");
            }
            if part.leader != previous.leader {
                assert!(part.leader_epoch > previous.leader_epoch, "{command:?}: leader change without epoch bump");
            }
        }
        if part.leader != NO_LEADER {
            let holder = history.leaders.entry((key.0, key.1, part.leader_epoch)).or_insert(part.leader);
            assert_eq!(*holder, part.leader, "{command:?}: leader epoch {key:?} given to two brokers");
        }
    }
    let deleted: Vec<String> = before
        .topics()
        .filter(|t| after.topic(&t.name).is_none_or(|n| n.id != t.id))
        .map(|t| t.name.to_string())
        .collect();
    assert_eq!(applied.changes.deleted_topics, deleted, "{command:?}");
    let changed_brokers: Vec<Broker> = after.brokers().filter(|b| before.broker(b.id) != Some(*b)).cloned().collect();
    assert_eq!(applied.changes.brokers, changed_brokers, "{command:?}");
    for broker in after.brokers() {
        let last = history.broker_epochs.insert(broker.id, broker.epoch).unwrap_or(0);
        assert!(broker.epoch >= last, "broker epochs never decrease");
    }
}

/// Property: over random command sequences, every apply keeps every
/// invariant, a refused command changes nothing, Changes describe each step
/// exactly, epochs never decrease and every change bumps them, no
/// (partition, leader epoch) is given to two brokers, and two states fed the
/// same sequence (one of them restored from a snapshot midway) encode
/// identically.
#[test]
fn random_command_sequences_keep_every_property() {
    let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
    for seed in 0..300 {
        let mut rng = Rng::new(seed);
        let mut state = State::new();
        let mut twin = State::new();
        let mut history = History::default();
        for step in 1..=120_u64 {
            let command = random_command(&mut rng, &state);
            let before = state.clone();
            let applied = state.apply(step, &command);
            let twin_applied = twin.apply(step, &command);
            assert_eq!(applied, twin_applied, "seed {seed} step {step}: same input, same output");
            check_step(&before, &state, &command, &applied, &mut history);
            if step == 60 {
                twin = State::decode_snapshot(&twin.encode_snapshot()).expect("snapshot round trip");
            }
            let kind = match (&applied.outcome, &command) {
                (Err(_), _) => "refused",
                (Ok(Outcome::BrokerFenced { .. }), _) => "fenced",
                (Ok(Outcome::TopicCreated { .. }), _) => "created",
                (Ok(Outcome::LeadersElected(o)), _) if o.iter().any(|e| e.result.is_ok()) => "elected",
                (Ok(Outcome::IsrAltered(o)), _) if o.iter().any(|e| e.result.is_ok()) => "isr altered",
                (Ok(Outcome::LeadershipDrained { moved, .. }), _) if *moved > 0 => "drained",
                (Ok(Outcome::ReassignmentsAltered(o)), _) if o.iter().any(|r| r.result.is_ok()) => "reassigned",
                _ => "other",
            };
            *counts.entry(kind).or_default() += 1;
        }
        assert_eq!(state.encode_snapshot(), twin.encode_snapshot(), "seed {seed}: determinism");
        assert_eq!(State::decode_snapshot(&state.encode_snapshot()).as_ref(), Ok(&state));
    }
    // The generator must reach deep states, not only bounce off validation.
    for (kind, at_least) in [
        ("fenced", 500),
        ("created", 500),
        ("elected", 40),
        ("isr altered", 500),
        ("refused", 500),
        ("drained", 20),
        ("reassigned", 50),
    ] {
        assert!(counts.get(kind).copied().unwrap_or(0) >= at_least, "too few {kind}: {counts:?}");
    }
}

/// The same properties under proptest: each step's command comes from one
/// generated seed, so a failure shrinks to the shortest sequence of steps
/// that still breaks a property, and proptest persists it for replay.
mod shrinking {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]
        #[test]
        fn command_sequences_keep_every_property(seeds in prop::collection::vec(any::<u64>(), 1..120)) {
            let mut state = State::new();
            let mut twin = State::new();
            let mut history = History::default();
            for (step, seed) in (1_u64..).zip(&seeds) {
                let command = random_command(&mut super::Rng::new(*seed), &state);
                let before = state.clone();
                let applied = state.apply(step, &command);
                prop_assert_eq!(&applied, &twin.apply(step, &command));
                check_step(&before, &state, &command, &applied, &mut history);
            }
            prop_assert_eq!(state.encode_snapshot(), twin.encode_snapshot());
            let restored = State::decode_snapshot(&state.encode_snapshot());
            prop_assert_eq!(restored.as_ref(), Ok(&state));
        }
    }
}
