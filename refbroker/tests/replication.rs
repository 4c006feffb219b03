//! Replication between two reference brokers in process, with agents fed by
//! hand: a follower copies the leader's batches and reports its offset; a
//! follower holding data from an epoch the new leader never saw truncates to
//! the new leader's epoch boundary (OffsetForLeaderEpoch) and then matches
//! the new leader's log exactly.

mod common;

use std::time::{Duration, Instant};

use baton_agent::Agent;
use baton_agent::testing::{apply, drain_progress, grant_lease, idle_agent, isr_requests, update};
use baton_proto::v1::PartitionInfo;
use baton_refbroker::batch::parse_batches;
use common::{T, connect, fetch, fetch_as, listener, produce, produce_within, start};

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

/// The acks=all ISR-growth window, over the wire: broker 2 (a replica
/// outside the ISR) fetches up to the leader's high watermark; the leader
/// asks its agent to add it to the ISR and from then on acknowledges an
/// acks=all write only once broker 2 has it too, because the controller may
/// add broker 2 at any instant after the request. The leader drops the
/// request when its view answers it. Without the pending addition, the
/// second produce below was acknowledged with broker 2 lacking it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caught_up_follower_is_requested_into_the_isr_and_counted_until_the_answer() {
    let (a_listener, a) = listener().await;
    let agent_a = idle_agent(1);
    let _stop_a = start(1, &agent_a, a_listener, &a);
    tell(&agent_a, 1, info(1, 1, &a, &[1]));
    let mut producer = connect(&a).await;
    let acked = produce(&mut producer, 0, -1, 3).await;
    assert_eq!(acked.responses[0].partition_responses[0].error_code, 0, "acks=all with the leader alone in the ISR");
    assert!(isr_requests(&agent_a, 16).is_empty(), "asked before any follower caught up");

    // Broker 2 fetches from offset 3 = the high watermark: caught up.
    let mut replica = connect(&a).await;
    let fetched = fetch_as(&mut replica, 12, 2, 0, 1, 3).await;
    assert_eq!(fetched.responses[0].partitions[0].error_code, 0);
    let asked = isr_requests(&agent_a, 16);
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!((asked[0].leader_epoch, asked[0].partition_epoch, asked[0].followers.clone()), (1, 1, vec![2]));

    // Broker 2 stops fetching: an acks=all write now waits for it.
    let waited = produce_within(&mut producer, 10, 0, -1, 2, 300).await;
    assert_eq!(
        waited.responses[0].partition_responses[0].error_code, 7,
        "acknowledged a write a follower the controller may add to the ISR does not have"
    );
    let _ = fetch_as(&mut replica, 12, 2, 0, 1, 5).await;
    let deadline = Instant::now() + T;
    while fetch(&mut connect(&a).await, 0, 1, 0).await.responses[0].partitions[0].high_watermark < 5 {
        assert!(Instant::now() < deadline, "the high watermark did not reach broker 2's offset");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // The controller's answer: partition epoch 2 with broker 2 in the ISR.
    let mut grown = info(1, 1, &a, &[1, 2]);
    grown.partition_epoch = 2;
    tell(&agent_a, 2, grown);
    assert!(isr_requests(&agent_a, 16).is_empty(), "an answered request is still sent");
}
