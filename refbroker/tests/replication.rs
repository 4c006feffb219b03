//! Replication between two reference brokers in process, with agents fed by
//! hand: a follower copies the leader's batches and reports its offset; a
//! follower holding data from an epoch the new leader never saw truncates to
//! the new leader's epoch boundary (OffsetForLeaderEpoch) and then matches
//! the new leader's log exactly.

mod common;

use std::time::{Duration, Instant};

use baton_agent::Agent;
use baton_agent::testing::{apply, drain_progress, grant_lease, idle_agent, update};
use baton_proto::v1::PartitionInfo;
use baton_refbroker::batch::parse_batches;
use common::{T, connect, fetch, listener, produce, start};

/// t/0 led by `leader` at `epoch`, whose endpoint is `endpoint`.
fn info(leader: i32, epoch: i32, endpoint: &str, isr: &[i32]) -> PartitionInfo {
    PartitionInfo {
        topic_id: 1,
        topic: "t".into(),
        partition: 0,
        leader,
        leader_epoch: epoch,
        partition_epoch: epoch,
        replicas: vec![1, 2],
        isr: isr.to_vec(),
        leader_endpoint: endpoint.into(),
    }
}

fn tell(agent: &Agent, version: u64, info: PartitionInfo) {
    assert!(apply(agent, &update(version, true, vec![info], &[])));
    grant_lease(agent, Duration::from_secs(60));
}

/// Waits until `agent` has reported log end offset `leo` for t/0.
async fn wait_reported(agent: &Agent, leo: i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if drain_progress(agent, 16).iter().any(|p| p.log_end_offset == leo) {
            return;
        }
        assert!(Instant::now() < deadline, "no progress report of offset {leo}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// (base offset, leader epoch) of every batch a consumer reads from `addr`.
async fn batches(addr: &str, epoch: i32) -> Vec<(i64, i32)> {
    let mut c = connect(addr).await;
    let response = fetch(&mut c, 0, epoch, 0).await;
    let data = &response.responses[0].partitions[0];
    assert_eq!(data.error_code, 0);
    let records = data.records.clone().unwrap_or_default();
    parse_batches(&records, false).expect("valid").iter().map(|b| (b.base_offset, b.leader_epoch)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_diverged_follower_truncates_to_the_new_leaders_epoch_boundary() {
    let (a_listener, a) = listener().await;
    let (b_listener, b) = listener().await;
    let (agent_a, agent_b) = (idle_agent(1), idle_agent(2));
    let _stop_a = start(1, &agent_a, a_listener, &a);
    let _stop_b = start(2, &agent_b, b_listener, &b);

    // Epoch 1: A leads, B follows and copies 3 records.
    tell(&agent_a, 1, info(1, 1, &a, &[1, 2]));
    tell(&agent_b, 1, info(1, 1, &a, &[1, 2]));
    let mut to_a = connect(&a).await;
    let acked = produce(&mut to_a, 0, -1, 3).await;
    assert_eq!(acked.responses[0].partition_responses[0].error_code, 0, "acks=all with B in the ISR");
    wait_reported(&agent_b, 3).await;

    // Epoch 2, seen by B only: B leads alone and appends 2 records nobody copies.
    tell(&agent_b, 2, info(2, 2, &b, &[2]));
    let mut to_b = connect(&b).await;
    let written = produce(&mut to_b, 0, 1, 2).await;
    assert_eq!(written.responses[0].partition_responses[0].base_offset, 3);

    // Epoch 3: A leads again (it never saw epoch 2) and appends 1 record; B
    // must drop its epoch-2 records and copy A's.
    tell(&agent_a, 3, info(1, 3, &a, &[1, 2]));
    tell(&agent_b, 3, info(1, 3, &a, &[1, 2]));
    let written = produce(&mut to_a, 0, 1, 1).await;
    assert_eq!(written.responses[0].partition_responses[0].base_offset, 3);
    wait_reported(&agent_b, 4).await;

    // Epoch 4: B leads; a consumer reads A's history from it, nothing of epoch 2.
    tell(&agent_a, 4, info(2, 4, &b, &[2]));
    tell(&agent_b, 4, info(2, 4, &b, &[2]));
    let deadline = Instant::now() + T;
    loop {
        let read = batches(&b, 4).await;
        if read == vec![(0, 1), (3, 3)] {
            break;
        }
        assert!(Instant::now() < deadline, "B's log is {read:?}, not A's");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
