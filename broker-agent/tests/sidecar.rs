//! Sidecar API tests on port 0 over an agent fed by hand: Check answers from
//! the lease at the instant of the call, Watch starts with the whole view,
//! Status reports the table.

use std::time::Duration;

use baton_agent::SidecarListener;
use baton_agent::sidecar::serve;
use baton_agent::testing::{apply, grant_lease, idle_agent, partition, suspend, update};
use baton_proto::v1::agent_client::AgentClient;
use baton_proto::v1::{AgentStatusRequest, CheckKind, CheckRequest, RefusalReason, WatchRequest};

#[tokio::test]
async fn check_watch_and_status() {
    let agent = idle_agent(1);
    apply(&agent, &update(3, true, vec![partition("t", 0, 1, 5, &[1, 2]), partition("t", 1, 2, 6, &[1, 2])], &[]));
    grant_lease(&agent, Duration::from_secs(30));
    let listener = SidecarListener::bind("127.0.0.1:0").await.expect("bind");
    let address = format!("http://{}", listener.local_addr());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(agent.clone(), listener, async {
        let _ = stop_rx.await;
    }));
    let mut client = {
        let start = tokio::time::Instant::now();
        loop {
            match AgentClient::connect(address.clone()).await {
                Ok(c) => break c,
                Err(e) if start.elapsed() > Duration::from_secs(20) => panic!("connect: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    };
    let check = |topic: &str, partition: i32, kind: CheckKind, leader_epoch: i32| CheckRequest {
        topic: topic.into(),
        partition,
        kind: kind as i32,
        leader_epoch,
    };
    let ok = client.check(check("t", 0, CheckKind::Produce, -1)).await.expect("check").into_inner();
    assert!(ok.allowed);
    assert_eq!((ok.leader_epoch, ok.error_code, ok.leader_id), (5, 0, 1));
    let other = client.check(check("t", 1, CheckKind::Produce, -1)).await.expect("check").into_inner();
    assert_eq!((other.allowed, other.error_code, other.leader_id), (false, 6, 2));
    assert_eq!(other.leader_endpoint, "broker-2:9092");
    let fenced = client.check(check("t", 0, CheckKind::Fetch, 4)).await.expect("check").into_inner();
    assert_eq!((fenced.error_code, fenced.reason), (74, RefusalReason::FencedLeaderEpoch as i32));
    let unknown = client.check(check("x", 0, CheckKind::Produce, -1)).await.expect("check").into_inner();
    assert_eq!(unknown.error_code, 3);

    let mut watch = client.watch(WatchRequest {}).await.expect("watch").into_inner();
    let first = watch.message().await.expect("watch event").expect("first event");
    assert_eq!(first.metadata_version, 3);
    assert_eq!(first.changes.len(), 2);
    assert!(first.lease_remaining_ms > 0);
    apply(&agent, &update(4, false, vec![partition("t", 1, 1, 7, &[1, 2])], &[]));
    let next = loop {
        let event = watch.message().await.expect("watch event").expect("event");
        if !event.changes.is_empty() {
            break event;
        }
    };
    assert_eq!(next.metadata_version, 4);
    assert!(next.changes[0].is_leader);

    let status = client.status(AgentStatusRequest {}).await.expect("status").into_inner();
    assert_eq!((status.broker_id, status.metadata_version, status.partitions_led), (1, 4, 2));

    // Suspension shows in the very next Check.
    suspend(&agent);
    let refused = client.check(check("t", 0, CheckKind::Produce, -1)).await.expect("check").into_inner();
    assert_eq!((refused.allowed, refused.reason), (false, RefusalReason::LeaseExpired as i32));

    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(20), server).await.expect("server stops").expect("join").expect("serve");
}
