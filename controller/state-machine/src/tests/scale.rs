//! Scale: one entry that changes 100k partitions, and (ignored, run by hand)
//! a million partitions. Not timed assertions: the printed figures are for
//! benchmarks; the assertions are about results.

use super::*;
use crate::Outcome;

/// Property: fencing a broker that hosts 100k partitions moves every one of
/// its leaderships in a single entry, and the result is consistent.
#[test]
fn fence_of_a_broker_with_100k_partitions_is_one_entry() {
    let mut h = Harness::new();
    for id in 1..=3 {
        h.register(id, "");
    }
    let applied = h.state.apply(4, &create("big", 100_000, 3, false));
    h.index = 4;
    assert_eq!(applied.changes.partitions.len(), 100_000);
    let led = h.state.leader_count(1);
    assert_eq!(h.state.partitions_of_broker(1).count(), 100_000);
    let epoch = h.state.broker(1).map(|b| b.epoch).unwrap_or_default();
    let started = std::time::Instant::now();
    let applied = h
        .state
        .apply(5, &Command::FenceBroker { broker_id: 1, broker_epoch: epoch, reason: FenceReason::Disconnected });
    let took = started.elapsed();
    assert_eq!(applied.outcome, Ok(Outcome::BrokerFenced { partitions_moved: led }));
    assert_eq!(applied.changes.partitions.len(), 100_000);
    assert_eq!(h.state.leader_count(1), 0);
    h.state.check_invariants().expect("consistent after a mass fence");
    println!("fence of a broker with 100k partitions ({led} led): {took:?}");
}

/// Resident memory of this process in KiB (Linux), for the printout only.
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A million partitions on a thousand brokers: prints memory and apply times.
/// Run with `cargo test -p baton-state-machine --release -- --ignored --nocapture million`.
#[test]
#[ignore = "scale benchmark, run by hand"]
fn million_partitions_fit_and_fence_stays_local() {
    let rss_before = rss_kib();
    let mut state = State::new();
    let mut index = 0;
    for id in 0..1000 {
        index += 1;
        let rack = format!("rack-{}", id % 10);
        state.apply(index, &register(id, "inc", &rack));
    }
    let started = std::time::Instant::now();
    for t in 0..10 {
        index += 1;
        let applied = state.apply(index, &create(&format!("topic-{t}"), 100_000, 3, false));
        assert!(applied.outcome.is_ok());
    }
    let created = started.elapsed();
    let rss_after = rss_kib();
    assert_eq!(state.partition_count(), 1_000_000);
    let epoch = state.broker(7).map(|b| b.epoch).unwrap_or_default();
    let hosted = state.partitions_of_broker(7).count();
    let started = std::time::Instant::now();
    index += 1;
    let applied =
        state.apply(index, &Command::FenceBroker { broker_id: 7, broker_epoch: epoch, reason: FenceReason::Operator });
    let fenced = started.elapsed();
    assert!(applied.outcome.is_ok());
    let started = std::time::Instant::now();
    let snapshot = state.encode_snapshot();
    let encoded = started.elapsed();
    let started = std::time::Instant::now();
    let decoded = State::decode_snapshot(&snapshot).expect("decodes");
    let decoded_in = started.elapsed();
    assert_eq!(decoded, state);
    println!(
        "1M partitions: create {created:?}, rss {:?} -> {:?} KiB; fence of broker hosting {hosted}: {fenced:?}; \
         snapshot {} bytes, encode {encoded:?}, decode+check {decoded_in:?}",
        rss_before,
        rss_after,
        snapshot.len()
    );
}
