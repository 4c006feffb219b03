//! Micro benchmark (ignored by default): ns per check_produce on 1 and 2 threads.
//! Run: cargo test -p baton-agent --release --test bench_checks -- --ignored --nocapture

use std::hint::black_box;
use std::time::Instant;

use baton_agent::testing::bench_agent;

const CALLS: u64 = 5_000_000;

fn run(agent: &baton_agent::Agent, topic: &str) -> f64 {
    let start = Instant::now();
    for i in 0..CALLS {
        let _ = black_box(agent.check_produce(black_box(topic), black_box((i % 8 * 2) as i32)));
    }
    start.elapsed().as_nanos() as f64 / CALLS as f64
}

#[test]
#[ignore]
fn bench_check_produce() {
    let agent = bench_agent();
    let _ = run(&agent, "topic-42");
    let one = run(&agent, "topic-42");
    println!("check_produce, 1 thread: {one:.1} ns/call");
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let agent = agent.clone();
            std::thread::spawn(move || run(&agent, "topic-42"))
        })
        .collect();
    let per: Vec<f64> = threads.into_iter().map(|t| t.join().expect("bench thread")).collect();
    println!("check_produce, 2 threads (same partition set): {:.1} / {:.1} ns/call", per[0], per[1]);
    let refused = {
        let start = Instant::now();
        for i in 0..CALLS {
            let _ = black_box(agent.check_produce(black_box("topic-42"), black_box((i % 8 * 2 + 1) as i32)));
        }
        start.elapsed().as_nanos() as f64 / CALLS as f64
    };
    println!("check_produce refused (not leader, hint), 1 thread: {refused:.1} ns/call");
}
