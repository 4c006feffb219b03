//! The controller quorum as a client sees it: writes through a follower,
//! linearizable reads, resumable watches, and a controller that fell behind
//! the compacted log catching up from a streamed snapshot.

use std::time::Duration;

use baton_proto::v1::controller_client::ControllerClient;
use baton_proto::v1::{GetPartitionLeaderRequest, ReadConsistency, WatchLeadershipRequest};
use baton_tests::{Cluster, ClusterOptions, LONG, create_topic};

fn follower_of(cluster: &Cluster) -> usize {
    let q = cluster.quorum().expect("quorum");
    let leader = q["leader"].as_u64().expect("leader") as usize - 1;
    (leader + 1) % 3
}

/// A write sent only to a follower controller reaches the leader (forwarded)
/// and succeeds; reads through the follower, LOCAL and LINEARIZABLE, see it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_through_a_follower_are_forwarded_and_reads_see_them() {
    let cluster = Cluster::start(ClusterOptions::default()).await;
    let follower = follower_of(&cluster);
    let addr = cluster.controller_addr(follower).to_string();
    let out = cluster.batonctl_at(&addr, &["topic", "create", "fwd", "--partitions", "2", "--replication-factor", "2"]);
    assert!(out.status.success(), "write via follower failed: {}", String::from_utf8_lossy(&out.stderr));

    // LINEARIZABLE through the follower: ReadIndex, so the create is visible at once.
    let mut client = ControllerClient::connect(format!("http://{addr}")).await.expect("connect");
    let r = client
        .get_partition_leader(GetPartitionLeaderRequest {
            topic: "fwd".into(),
            partition: 1,
            consistency: ReadConsistency::Linearizable as i32,
        })
        .await
        .expect("linearizable read on a follower")
        .into_inner();
    assert!(r.leader >= 1, "{r:?}");
    assert!(!r.endpoint.is_empty());
    let described =
        cluster.batonctl_json_at(&addr, &["leader", "get", "fwd", "1", "--linearizable"]).expect("leader get");
    assert_eq!(described["leader"].as_i64(), Some(r.leader as i64));
    assert!(described["metadata_version"].as_u64() >= Some(r.metadata_version));
}

/// WatchLeadership starts with a full view and, resumed from a version,
/// sends only what changed after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_starts_full_and_resumes_from_a_version() {
    let cluster = Cluster::start(ClusterOptions::default()).await;
    create_topic(&cluster, "w1", 2, 3);
    let mut client =
        ControllerClient::connect(format!("http://{}", cluster.controller_addr(0))).await.expect("connect");
    let mut stream =
        client.watch_leadership(WatchLeadershipRequest { from_version: 0 }).await.expect("watch").into_inner();
    let first = stream.message().await.expect("stream").expect("first update");
    assert!(first.full, "a watch from 0 starts with a full view");
    assert_eq!(first.partitions.iter().filter(|p| p.topic == "w1").count(), 2);
    let resume_from = first.metadata_version;
    drop(stream);

    create_topic(&cluster, "w2", 1, 1);
    let mut stream = client
        .watch_leadership(WatchLeadershipRequest { from_version: resume_from })
        .await
        .expect("watch")
        .into_inner();
    let update = tokio::time::timeout(LONG, stream.message()).await.expect("in time").expect("stream").expect("update");
    assert!(!update.full, "resuming within the change log sends deltas");
    assert!(update.metadata_version > resume_from);
    assert!(update.partitions.iter().all(|p| p.topic != "w1"), "a resumed watch resent old changes: {update:?}");
    assert!(update.partitions.iter().any(|p| p.topic == "w2"), "{update:?}");
}

/// A controller that was down while the others compacted their logs past
/// its position catches up from a snapshot streamed in chunks, and then
/// serves every topic from its own state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_controller_catches_up_from_a_snapshot() {
    let env = vec![
        ("BATON_RAFT__SNAPSHOT_INTERVAL_ENTRIES".to_string(), "10".to_string()),
        ("BATON_RAFT__SNAPSHOT_KEEP_ENTRIES".to_string(), "2".to_string()),
    ];
    let mut cluster = Cluster::start(ClusterOptions { controller_env: env, ..ClusterOptions::default() }).await;
    let follower = follower_of(&cluster);
    cluster.kill_controller(follower);
    for i in 0..15 {
        create_topic(&cluster, &format!("snap-{i}"), 1, 1);
    }
    cluster.restart_controller(follower);
    let addr = cluster.controller_addr(follower).to_string();
    cluster
        .wait_until("the restarted controller to serve every topic locally", LONG, || {
            let topics = cluster.batonctl_json_at(&addr, &["topic", "list"]).ok()?;
            (topics.as_array()?.len() == 15).then_some(())
        })
        .await;
    let log = cluster.log_of(&format!("controller-{}", follower + 1));
    assert!(log.contains("installed snapshot from the leader"), "caught up without a snapshot; log:\n{log}");
    // It takes part in the quorum again: with another controller down, writes still commit.
    let other = (follower + 1) % 3;
    let leader = cluster.quorum().expect("quorum")["leader"].as_u64().expect("leader") as usize - 1;
    let victim = if other == leader { (follower + 2) % 3 } else { other };
    cluster.kill_controller(victim);
    cluster.wait_for_quorum(LONG).await;
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let out =
                cluster.batonctl(&["topic", "create", "after-snap", "--partitions", "1", "--replication-factor", "1"]);
            // A retry of a create that did commit meets TOPIC_ALREADY_EXISTS.
            if out.status.success() || String::from_utf8_lossy(&out.stderr).contains("TOPIC_ALREADY_EXISTS") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("a write commits with the caught-up controller in the quorum");
}

/// gRPC health and server reflection answer on the controller's port, so
/// Kubernetes probes and grpcurl work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_reflection_are_served() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let cluster = Cluster::start(ClusterOptions { agents: 0, ..ClusterOptions::default() }).await;
    let url = format!("http://{}", cluster.controller_addr(1));
    let channel = tonic::transport::Channel::from_shared(url).expect("url").connect().await.expect("connect");
    let mut health = HealthClient::new(channel.clone());
    let status = health.check(HealthCheckRequest { service: String::new() }).await.expect("health check").into_inner();
    assert_eq!(status.status, tonic_health::pb::health_check_response::ServingStatus::Serving as i32);

    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers =
        reflection.server_reflection_info(futures::stream::iter(vec![request])).await.expect("reflection").into_inner();
    let answer = answers.message().await.expect("stream").expect("answer");
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("unexpected reflection answer: {answer:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for want in ["baton.v1.Controller", "baton.v1.BrokerSession", "grpc.health.v1.Health"] {
        assert!(names.iter().any(|n| n == want), "{want} missing from {names:?}");
    }
}

/// Prometheus metrics on the active controller show live figures during a
/// failover: heartbeats and leases counting, the fence by reason, no
/// leaderless partition once it moved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_a_failover_as_it_happens() {
    let mut cluster = Cluster::start(ClusterOptions { metrics: true, ..ClusterOptions::default() }).await;
    create_topic(&cluster, "m", 3, 3);
    let leader = cluster.wait_for_quorum(LONG).await;
    let value = |text: &str, name: &str| -> Option<f64> {
        text.lines().find(|l| l.starts_with(name)).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok())
    };
    let before = cluster.metrics(leader).await.expect("metrics");
    assert!(value(&before, "baton_controller_heartbeats_total").is_some_and(|v| v > 0.0), "{before}");
    assert!(value(&before, "baton_controller_leases_granted_total").is_some_and(|v| v > 0.0), "{before}");
    assert_eq!(value(&before, "baton_controller_raft_is_leader"), Some(1.0));
    assert_eq!(value(&before, "baton_controller_partitions"), Some(3.0));
    cluster.kill_agent(0);
    let text = baton_tests::wait_for("a fence counted by reason", LONG, async || {
        let text = cluster.metrics(leader).await.ok()?;
        text.contains("baton_controller_fenced_brokers_total{reason=\"Disconnected\"} 1").then_some(text)
    })
    .await;
    assert_eq!(value(&text, "baton_controller_leaderless_partitions"), Some(0.0), "{text}");
    assert!(text.contains("baton_controller_brokers{state=\"Fenced\"} 1"), "{text}");
    assert!(value(&text, "baton_controller_failover_seconds_count").is_some_and(|v| v >= 1.0), "{text}");
}
