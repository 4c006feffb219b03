//! Hooks for tests and benchmarks: an agent with no session task, whose
//! table and lease are fed by hand. Not part of the supported API.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use baton_proto::v1::{IsrExpansionRequest, LeadershipUpdate, PartitionInfo, ReplicaProgress};

use crate::agent::Agent;
use crate::config::AgentConfig;
use crate::lease::now_nanos;

/// An agent that never connects anywhere.
pub fn idle_agent(broker_id: i32) -> Agent {
    Agent::new_idle(AgentConfig::new(broker_id, vec!["127.0.0.1:1".into()], "127.0.0.1:9092"))
}

/// The checks' benchmark agent (docs/BENCHMARKS.md, section 4): broker 1
/// with 1600 partitions, `topic-0` .. `topic-99` x 16, leading the even ones
/// at leader epoch 5 (broker 2 leads the odd ones), lease granted for 600 s.
pub fn bench_agent() -> Agent {
    let agent = idle_agent(1);
    let mut parts = Vec::with_capacity(1600);
    for t in 0..100 {
        for p in 0..16 {
            parts.push(partition(&format!("topic-{t}"), p, if p % 2 == 0 { 1 } else { 2 }, 5, &[1, 2, 3]));
        }
    }
    apply(&agent, &update(1, true, parts, &[]));
    grant_lease(&agent, Duration::from_secs(600));
    agent
}

/// Applies an update as the session would, publishing its event. Returns
/// whether it was applied (false: an old delta).
pub fn apply(agent: &Agent, update: &LeadershipUpdate) -> bool {
    match agent.shared().table.apply(update) {
        Some(applied) => {
            let _ = agent.shared().events.send(applied.event);
            true
        }
        None => false,
    }
}

/// Grants a lease of `lease` from now, as an ack of a heartbeat sent now would.
pub fn grant_lease(agent: &Agent, lease: Duration) {
    static SEQ: AtomicU64 = AtomicU64::new(1 << 40);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    agent.shared().lease.record_send(seq, now_nanos());
    agent.shared().lease.on_ack(seq, lease);
}

/// Suspends the lease, as the session does when it abandons a stream.
pub fn suspend(agent: &Agent) {
    agent.shared().lease.suspend();
}

/// What the next heartbeat would carry.
pub fn drain_progress(agent: &Agent, max: usize) -> Vec<ReplicaProgress> {
    agent.shared().table.drain_progress(max)
}

/// The ISR-expansion requests the next heartbeat would carry.
pub fn isr_requests(agent: &Agent, max: usize) -> Vec<IsrExpansionRequest> {
    let table = &agent.shared().table;
    agent.shared().isr_requests.for_heartbeat(max, |t, p| table.partition(t, p))
}

/// A partition entry for an update.
pub fn partition(topic: &str, partition: i32, leader: i32, leader_epoch: i32, replicas: &[i32]) -> PartitionInfo {
    PartitionInfo {
        topic_id: 0,
        topic: topic.to_owned(),
        partition,
        leader,
        leader_epoch,
        partition_epoch: leader_epoch,
        replicas: replicas.to_vec(),
        isr: replicas.to_vec(),
        leader_endpoint: if leader >= 0 { format!("broker-{leader}:9092") } else { String::new() },
    }
}

/// An update.
pub fn update(
    metadata_version: u64,
    full: bool,
    partitions: Vec<PartitionInfo>,
    deleted_topics: &[&str],
) -> LeadershipUpdate {
    LeadershipUpdate {
        metadata_version,
        full,
        partitions,
        deleted_topics: deleted_topics.iter().map(|t| (*t).to_owned()).collect(),
        brokers: Vec::new(),
        partial: false,
    }
}
