//! Criterion benchmark of the agent's hot path (docs/BENCHMARKS.md, section 4).
//! Run: cargo bench -p baton-agent --bench checks
//!
//! An agent with no session, fed 1600 partitions (100 topics x 16, it leads
//! the even ones), lease granted for 600 s.

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use baton_agent::Agent;
use baton_agent::testing::bench_agent;
use criterion::{Criterion, criterion_group, criterion_main};

const TOPIC: &str = "topic-42";

fn setup() -> Agent {
    let agent = bench_agent();
    assert_eq!(agent.check_produce(TOPIC, 0), Ok(5));
    assert!(agent.check_produce(TOPIC, 1).is_err_and(|e| e.leader.is_some()));
    agent
}

/// `iters` calls over the even (allowed, `first` = 0) or odd (refused, 1) partitions 0..16.
fn calls(agent: &Agent, iters: u64, first: u64) -> Duration {
    let start = Instant::now();
    for i in 0..iters {
        let _ = black_box(agent.check_produce(black_box(TOPIC), black_box((i % 8 * 2 + first) as i32)));
    }
    start.elapsed()
}

/// Both threads make `iters` allowed calls at once; the time of thread `which`.
fn two_threads(agent: &Agent, iters: u64, which: usize) -> Duration {
    let barrier = Barrier::new(2);
    let times: Vec<Duration> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    calls(agent, iters, 0)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("bench thread")).collect()
    });
    times[which]
}

fn checks(c: &mut Criterion) {
    let agent = setup();
    let mut group = c.benchmark_group("check_produce");
    group.bench_function("allowed", |b| b.iter_custom(|iters| calls(&agent, iters, 0)));
    group.bench_function("refused_not_leader_hint", |b| b.iter_custom(|iters| calls(&agent, iters, 1)));
    group.bench_function("allowed_2_threads/thread_0", |b| b.iter_custom(|iters| two_threads(&agent, iters, 0)));
    group.bench_function("allowed_2_threads/thread_1", |b| b.iter_custom(|iters| two_threads(&agent, iters, 1)));
    group.finish();
    c.bench_function("check_fetch/allowed", |b| {
        b.iter(|| black_box(agent.check_fetch(black_box(TOPIC), black_box(4), black_box(5))))
    });
}

/// The floor under any check that reads the clock: one monotonic clock read.
fn clock(c: &mut Criterion) {
    c.bench_function("floor/instant_now", |b| b.iter(Instant::now));
}

criterion_group!(benches, checks, clock);
criterion_main!(benches);
