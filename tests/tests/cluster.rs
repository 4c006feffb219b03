//! Multi-process cluster tests: 3 real controllers and 3 real agents on
//! loopback, faults injected by pid. Each test names the property it proves.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use baton_tests::{Cluster, ClusterOptions, LONG, agents_agree, create_topic, leaders};

/// A topic with replication factor 3 gets a leader for every partition,
/// spread evenly across the brokers, and every agent enforces it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_gets_one_leader_per_partition_spread_across_brokers() {
    let cluster = Cluster::start(ClusterOptions::default()).await;
    let d = create_topic(&cluster, "orders", 6, 3);
    let mut per_broker: BTreeMap<i64, usize> = BTreeMap::new();
    for p in d["partitions"].as_array().expect("partitions") {
        let leader = p["leader"].as_i64().expect("leader");
        assert!(leader >= 1, "partition without leader: {p}");
        assert_eq!(p["replicas"].as_array().map(Vec::len), Some(3));
        assert_eq!(p["isr"], p["replicas"], "a new partition's ISR is its replica set");
        *per_broker.entry(leader).or_default() += 1;
    }
    assert_eq!(per_broker.values().copied().collect::<Vec<_>>(), vec![2, 2, 2], "leaders not spread: {per_broker:?}");
    agents_agree(&cluster, "orders", &[0, 1, 2]).await;
}

/// kill -9 of the broker leading partitions: each of them gets a new leader
/// from its ISR with a higher leader epoch, and every surviving agent agrees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_leader_broker_fails_over_to_isr_members_with_higher_epochs() {
    let mut cluster = Cluster::start(ClusterOptions::default()).await;
    let before_doc = create_topic(&cluster, "payments", 6, 3);
    let before = leaders(&before_doc);
    agents_agree(&cluster, "payments", &[0, 1, 2]).await;

    cluster.kill_agent(0);
    let after = cluster
        .wait_until("broker 1's partitions to move", LONG, || {
            let d = cluster.describe("payments").ok()?;
            let l = leaders(&d);
            l.values().all(|(leader, _)| *leader != 1).then_some(d)
        })
        .await;
    for p in after["partitions"].as_array().expect("partitions") {
        let id = p["partition"].as_i64().expect("id");
        let (old_leader, old_epoch) = before[&id];
        let (leader, epoch) = (p["leader"].as_i64().expect("leader"), p["leader_epoch"].as_i64().expect("epoch"));
        if old_leader == 1 {
            assert!(epoch > old_epoch, "partition {id}: epoch {epoch} not above {old_epoch}");
            let old_isr = &before_doc["partitions"][id as usize]["isr"];
            assert!(
                old_isr.as_array().expect("isr").iter().any(|b| b.as_i64() == Some(leader)),
                "new leader {leader} outside ISR {old_isr}"
            );
        } else {
            assert_eq!((leader, epoch), (old_leader, old_epoch), "partition {id} moved needlessly");
        }
        assert!(
            !p["isr"].as_array().expect("isr").iter().any(|b| b.as_i64() == Some(1)),
            "fenced broker still in ISR: {p}"
        );
    }
    agents_agree(&cluster, "payments", &[1, 2]).await;
    let brokers = cluster.brokers().expect("brokers");
    assert_eq!(brokers[0]["state"], "FENCED", "{brokers}");
}

/// kill -9 of the active controller: another takes over, nothing
/// acknowledged is lost, agents follow it, and a broker killed afterwards is
/// still failed over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_active_controller_is_replaced_without_losing_acknowledged_changes() {
    let mut cluster = Cluster::start(ClusterOptions::default()).await;
    let before = create_topic(&cluster, "audit", 3, 3);
    let old_leader = cluster.wait_for_quorum(LONG).await;
    cluster.kill_controller(old_leader);
    let new_leader = cluster
        .wait_until("a new controller leader", LONG, || {
            let q = cluster.quorum().ok()?;
            let l = q["leader"].as_u64()? as usize;
            (l >= 1 && l - 1 != old_leader).then(|| l - 1)
        })
        .await;
    assert_ne!(new_leader, old_leader);
    let after = cluster.describe("audit").expect("topic survives the controller's death");
    assert_eq!(after["topic_id"], before["topic_id"]);
    // A write through the new leader works.
    create_topic(&cluster, "audit-2", 3, 3);
    // Agents have moved their sessions: a broker killed now is still failed over.
    let view = agents_agree(&cluster, "audit", &[0, 1, 2]).await;
    let victim = *view.values().map(|(l, _)| l).next().expect("a leader") as usize - 1;
    cluster.kill_agent(victim);
    cluster
        .wait_until("the killed broker's partitions to move", LONG, || {
            let l = leaders(&cluster.describe("audit").ok()?);
            l.values().all(|(leader, _)| *leader != victim as i64 + 1 && *leader != -1).then_some(())
        })
        .await;
    let live: Vec<usize> = (0..3).filter(|a| *a != victim).collect();
    agents_agree(&cluster, "audit", &live).await;
}

/// Every controller killed at once and restarted: topics, assignments and
/// epochs are intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_controllers_killed_and_restarted_keep_topics_and_epochs() {
    let mut cluster = Cluster::start(ClusterOptions::default()).await;
    let before = create_topic(&cluster, "ledger", 4, 3);
    for i in 0..3 {
        cluster.kill_controller(i);
    }
    for i in 0..3 {
        cluster.restart_controller(i);
    }
    cluster.wait_for_quorum(LONG).await;
    let after = cluster.wait_until("the topic to be served again", LONG, || cluster.describe("ledger").ok()).await;
    assert_eq!(after["topic_id"], before["topic_id"]);
    for (b, a) in before["partitions"].as_array().expect("p").iter().zip(after["partitions"].as_array().expect("p")) {
        assert_eq!(a["replicas"], b["replicas"], "assignment changed across restart");
        assert!(a["leader_epoch"].as_i64() >= b["leader_epoch"].as_i64(), "leader epoch went backwards: {b} -> {a}");
        assert!(a["partition_epoch"].as_i64() >= b["partition_epoch"].as_i64(), "partition epoch went backwards");
    }
    agents_agree(&cluster, "ledger", &[0, 1, 2]).await;
}

/// A SIGSTOPped leader broker refuses its own produce checks once its lease
/// lapses, and the lapse comes before any other broker is granted its
/// partitions: t(other broker allowed) > t(stop) + lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_broker_lease_lapses_before_its_partitions_move() {
    let cluster = Cluster::start(ClusterOptions::default()).await;
    create_topic(&cluster, "clicks", 3, 3);
    let view = agents_agree(&cluster, "clicks", &[0, 1, 2]).await;
    let (&partition, &(leader, epoch)) = view.iter().next().expect("a partition");
    let victim = leader as usize - 1;
    let others: Vec<usize> = (0..3).filter(|a| *a != victim).collect();
    let lease = Duration::from_millis(1_500); // the default liveness.lease_ms

    cluster.pause_agent(victim);
    let stopped_at = Instant::now();
    // Any lease the paused agent holds came from a heartbeat sent before the
    // stop, so it lapses by stopped_at + lease on this host's monotonic clock.
    let (granted_at, new_leader) = baton_tests::wait_for("another broker to be allowed", LONG, async || {
        for &a in &others {
            if let Ok(r) = cluster.check(a, "clicks", partition as i32).await
                && r.allowed
            {
                return Some((Instant::now(), a));
            }
        }
        None
    })
    .await;
    assert!(
        granted_at > stopped_at + lease,
        "broker {} was allowed {:?} after the pause, inside the paused broker's lease",
        new_leader + 1,
        granted_at - stopped_at
    );
    let r = cluster.check(new_leader, "clicks", partition as i32).await.expect("check");
    assert!(r.leader_epoch as i64 > epoch, "new leadership must carry a higher epoch");

    // Woken up, the old leader refuses at once, whatever it has heard since.
    cluster.resume_agent(victim);
    let r = cluster.check(victim, "clicks", partition as i32).await.expect("check on the woken agent");
    assert!(!r.allowed, "woken zombie accepted a produce: {r:?}");
    assert_eq!(r.error_code, 6);
}

/// Bad input gets a typed error and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_typed_errors_and_changes_nothing() {
    let cluster = Cluster::start(ClusterOptions::default()).await;
    create_topic(&cluster, "good", 2, 3);
    let topics_before = cluster.batonctl_json(&["topic", "list"]).expect("list");
    let brokers_before = cluster.brokers().expect("brokers");

    let long_name = "x".repeat(250);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["topic", "create", "bad name!", "--partitions", "1", "--replication-factor", "1"], "INVALID_TOPIC_NAME"),
        (vec!["topic", "create", "..", "--partitions", "1", "--replication-factor", "1"], "INVALID_TOPIC_NAME"),
        (vec!["topic", "create", &long_name, "--partitions", "1", "--replication-factor", "1"], "INVALID_TOPIC_NAME"),
        (vec!["topic", "create", "t", "--partitions", "0", "--replication-factor", "1"], "INVALID_PARTITIONS"),
        (vec!["topic", "create", "t", "--partitions", "-3", "--replication-factor", "1"], "INVALID_PARTITIONS"),
        (vec!["topic", "create", "t", "--partitions", "1", "--replication-factor", "4"], "INVALID_REPLICATION_FACTOR"),
        (vec!["topic", "create", "t", "--partitions", "1", "--replication-factor", "0"], "INVALID_REPLICATION_FACTOR"),
        (vec!["topic", "create", "good", "--partitions", "1", "--replication-factor", "1"], "TOPIC_ALREADY_EXISTS"),
        (vec!["topic", "describe", "nope"], "TOPIC_NOT_FOUND"),
        (vec!["topic", "delete", "nope"], "TOPIC_NOT_FOUND"),
        (vec!["leader", "get", "nope", "0"], "TOPIC_NOT_FOUND"),
        (vec!["leader", "get", "good", "7"], "PARTITION_NOT_FOUND"),
    ];
    for (args, code) in cases {
        let out = cluster.batonctl(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: want one error line, got {stderr}");
        assert!(stderr.contains(code), "{args:?}: want {code}, got {stderr}");
    }

    // A heartbeat with a stale broker epoch is refused with a typed status.
    let status = baton_tests::session_with_epoch(&cluster.controllers_flag(), 2, 1).await;
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    assert_eq!(status.metadata().get("baton-error").and_then(|v| v.to_str().ok()), Some("STALE_BROKER_EPOCH"));

    assert_eq!(cluster.batonctl_json(&["topic", "list"]).expect("list"), topics_before, "bad input changed topics");
    let brokers_after = cluster.brokers().expect("brokers");
    for (a, b) in brokers_after.as_array().expect("b").iter().zip(brokers_before.as_array().expect("b")) {
        assert_eq!(
            (&a["id"], &a["epoch"], &a["state"]),
            (&b["id"], &b["epoch"], &b["state"]),
            "bad input changed brokers"
        );
    }
}

/// A second live incarnation of a broker id is refused: the original keeps
/// its registration (incarnation and epoch) and its leadership, the intruder
/// never gets an epoch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_live_incarnation_of_a_broker_is_refused() {
    let mut cluster = Cluster::start(ClusterOptions::default()).await;
    create_topic(&cluster, "dup", 3, 3);
    let before = cluster.brokers().expect("brokers");
    let intruder = cluster.add_agent(2);
    // Give it time to try: its own status says it has no epoch while the
    // registration is refused (DUPLICATE_BROKER_REGISTRATION, retried).
    cluster
        .wait_until("the intruder's registration to be refused", LONG, || {
            let log = cluster.log_of(&format!("agent-{}", intruder + 1));
            log.contains("DUPLICATE_BROKER_REGISTRATION").then_some(())
        })
        .await;
    let status = cluster.agent_status(intruder).await.expect("intruder status");
    assert_eq!(status.broker_epoch, 0, "the intruder holds an epoch: {status:?}");
    let after = cluster.brokers().expect("brokers");
    assert_eq!(after[1]["epoch"], before[1]["epoch"], "broker 2 was re-registered");
    assert_eq!(after[1]["incarnation_id"], before[1]["incarnation_id"]);
    assert_eq!(after[1]["state"], "ALIVE");
    agents_agree(&cluster, "dup", &[0, 1, 2]).await;
}
