//! A fixed number of checks, for instruction counts under callgrind
//! (docs/BENCHMARKS.md, section 4):
//! valgrind --tool=callgrind target/release/examples/check_loop allowed 1000000
//! Ir per call = (Ir at N2 - Ir at N1) / (N2 - N1), which cancels the setup.
//!
//! `check_loop allowed 1000 5000` times 5000 batches of 1000 calls and prints
//! the fastest and the median batch per call: on a shared machine the fastest
//! batches are the ones no other process interrupted.

use std::hint::black_box;
use std::time::Instant;

use baton_agent::Agent;
use baton_agent::testing::bench_agent;

fn calls(agent: &Agent, n: u64, first: u64) -> u64 {
    let mut ok = 0u64;
    for i in 0..n {
        ok += u64::from(
            black_box(agent.check_produce(black_box("topic-42"), black_box((i % 8 * 2 + first) as i32))).is_ok(),
        );
    }
    ok
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "allowed".into());
    let n: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(1_000_000);
    let batches: Option<usize> = args.next().and_then(|b| b.parse().ok());
    let first = match mode.as_str() {
        "allowed" => 0,
        "refused" => 1,
        other => panic!("mode is allowed or refused, not {other}"),
    };
    let agent = bench_agent();
    let Some(batches) = batches else {
        let ok = calls(&agent, n, first);
        println!("{mode}: {n} calls, {ok} allowed");
        return;
    };
    let mut per_call: Vec<f64> = (0..batches)
        .map(|_| {
            let start = Instant::now();
            calls(&agent, n, first);
            start.elapsed().as_nanos() as f64 / n as f64
        })
        .collect();
    per_call.sort_by(f64::total_cmp);
    println!(
        "{mode}: {batches} batches of {n} calls: fastest {:.1} ns/call, median {:.1}",
        per_call[0],
        per_call[batches / 2]
    );
}
