//! A fixed number of checks, for instruction counts under callgrind
//! (docs/BENCHMARKS.md, section 4):
//! valgrind --tool=callgrind target/release/examples/check_loop allowed 1000000
//! Ir per call = (Ir at N2 - Ir at N1) / (N2 - N1), which cancels the setup.

use std::hint::black_box;

use baton_agent::testing::bench_agent;

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "allowed".into());
    let calls: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(1_000_000);
    let first = match mode.as_str() {
        "allowed" => 0,
        "refused" => 1,
        other => panic!("mode is allowed or refused, not {other}"),
    };
    let agent = bench_agent();
    let mut ok = 0u64;
    for i in 0..calls {
        ok += u64::from(
            black_box(agent.check_produce(black_box("topic-42"), black_box((i % 8 * 2 + first) as i32))).is_ok(),
        );
    }
    println!("{mode}: {calls} calls, {ok} allowed");
}
