//! The state machine's share of a large failover, timed alone
//! (docs/BENCHMARKS.md, section 1): three brokers, one topic of `3N`
//! partitions at replication factor 3, then broker 1 is fenced, which moves
//! its `N` leaderships and takes it out of every ISR.
//!
//! `fence [N] [runs]` (default 100000 and 5) prints the time of the fence's
//! `apply` and how many partitions it changed.

use std::time::Instant;

use baton_state_machine::{Command, FenceReason, State, TopicConfig};

fn main() {
    let mut args = std::env::args().skip(1);
    let n: i32 = args.next().and_then(|n| n.parse().ok()).unwrap_or(100_000);
    let runs: usize = args.next().and_then(|r| r.parse().ok()).unwrap_or(5);
    for run in 1..=runs {
        let mut state = State::new();
        let mut index = 0;
        let mut apply = |state: &mut State, command: Command| {
            index += 1;
            state.apply(index, &command)
        };
        let mut epochs = Vec::new();
        for b in 1..=3 {
            let register = Command::RegisterBroker {
                broker_id: b,
                incarnation_id: format!("incarnation-{b}"),
                endpoint: format!("127.0.0.1:{}", 9090 + b),
                rack: String::new(),
            };
            apply(&mut state, register).outcome.expect("registered");
            epochs.push(state.broker(b).expect("registered").epoch);
        }
        let create = Command::CreateTopic {
            name: "bench".into(),
            partitions: 3 * n,
            replication_factor: 3,
            config: TopicConfig::default(),
        };
        apply(&mut state, create).outcome.expect("created");
        let fence = Command::FenceBroker { broker_id: 1, broker_epoch: epochs[0], reason: FenceReason::Disconnected };
        let t0 = Instant::now();
        let applied = apply(&mut state, fence);
        let took = t0.elapsed();
        let changed = applied.changes.partitions.len();
        let t1 = Instant::now();
        drop(applied);
        let dropped = t1.elapsed();
        println!(
            "run {run}: fence apply {:.1} ms ({changed} partitions changed), dropping the changes {:.1} ms",
            took.as_secs_f64() * 1e3,
            dropped.as_secs_f64() * 1e3
        );
    }
}
