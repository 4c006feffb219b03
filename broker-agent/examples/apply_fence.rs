//! The agent's side of a large failover, timed alone (docs/BENCHMARKS.md,
//! section 1): broker 2's table holds `3N` partitions of one topic at
//! replication factor 3 (broker `p % 3 + 1` leads partition `p`), then broker
//! 1 is fenced: one delta moves its `N` leaderships to the next replica and
//! takes it out of every ISR, as the controller's fence entry does.
//!
//! `apply_fence [N] [runs]` (default 100000 and 5) prints, per run, the time
//! to decode the delta from its wire chunks (as the session receives them)
//! and the time to apply it to the table (the instant the checks flip).
//! It runs under jemalloc, as the sidecar does.

use std::time::{Duration, Instant};

use baton_agent::testing::{apply, grant_lease, idle_agent, partition, update};
use baton_proto::v1::{LeadershipUpdate, PartitionInfo};
use prost::Message;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Partitions per wire message, as the controller chunks updates.
const CHUNK: usize = 10_000;

fn replicas(p: i32) -> [i32; 3] {
    let first = p % 3;
    [first + 1, (first + 1) % 3 + 1, (first + 2) % 3 + 1]
}

fn before(p: i32) -> PartitionInfo {
    let r = replicas(p);
    partition("bench", p, r[0], 1, &r)
}

/// The record after broker 1 is fenced.
fn after(p: i32) -> PartitionInfo {
    let mut info = before(p);
    info.isr.retain(|&b| b != 1);
    if info.leader == 1 {
        info.leader = info.isr[0];
        info.leader_epoch += 1;
        info.leader_endpoint = format!("broker-{}:9092", info.leader);
    }
    info.partition_epoch += 1;
    info
}

fn encoded_chunks(delta: &LeadershipUpdate) -> Vec<Vec<u8>> {
    delta
        .partitions
        .chunks(CHUNK)
        .enumerate()
        .map(|(i, part)| {
            let chunk = LeadershipUpdate {
                metadata_version: delta.metadata_version,
                full: false,
                partitions: part.to_vec(),
                partial: (i + 1) * CHUNK < delta.partitions.len(),
                ..Default::default()
            };
            chunk.encode_to_vec()
        })
        .collect()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: i32 = args.next().and_then(|n| n.parse().ok()).unwrap_or(100_000);
    let runs: usize = args.next().and_then(|r| r.parse().ok()).unwrap_or(5);
    let total = 3 * n;
    let delta = update(3, false, (0..total).map(after).collect(), &[]);
    let chunks = encoded_chunks(&delta);
    println!(
        "N = {n}: {total} partitions, delta {} bytes in {} chunks",
        chunks.iter().map(Vec::len).sum::<usize>(),
        chunks.len()
    );
    for run in 1..=runs {
        let agent = idle_agent(2);
        apply(&agent, &update(2, true, (0..total).map(before).collect(), &[]));
        grant_lease(&agent, Duration::from_secs(600));
        let mut events = agent.subscribe();

        let t0 = Instant::now();
        let mut whole = LeadershipUpdate::default();
        for bytes in &chunks {
            let chunk = LeadershipUpdate::decode(bytes.as_slice()).expect("decodes");
            whole.metadata_version = chunk.metadata_version;
            whole.partitions.extend(chunk.partitions);
        }
        let decoded = t0.elapsed();
        let t1 = Instant::now();
        assert!(apply(&agent, &whole));
        let applied = t1.elapsed();
        let event = events.try_recv().expect("an event");
        let leads = (0..total).filter(|&p| agent.check_produce("bench", p).is_ok()).count();
        assert_eq!(leads, usize::try_from(2 * n).unwrap_or(usize::MAX), "broker 2 leads its own and broker 1's");
        println!(
            "run {run}: decode {:.1} ms, apply {:.1} ms, {} changes, leads {leads}",
            decoded.as_secs_f64() * 1e3,
            applied.as_secs_f64() * 1e3,
            event.changes.len()
        );
    }
}
