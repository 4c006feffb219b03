//! Partition reassignment with real processes: the leader's replica is moved
//! to a broker that held none, the new replica catches up, the old one is
//! dropped, leadership moves at a higher epoch and every agent enforces it;
//! a reassignment that cannot complete (its new broker is down) is listed
//! with its progress and cancelled back to the original replicas.

use baton_tests::{Cluster, ClusterOptions, LONG, agents_agree, create_topic};
use serde_json::Value;

fn ints(v: &Value) -> Vec<i64> {
    v.as_array().map(|a| a.iter().filter_map(Value::as_i64).collect()).unwrap_or_default()
}

fn partition(cluster: &Cluster, topic: &str, p: usize) -> Value {
    cluster.describe(topic).expect("describe")["partitions"][p].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reassignment_moves_the_leaders_replica_and_cancel_restores() {
    let mut cluster = Cluster::start(ClusterOptions { agents: 4, ..ClusterOptions::default() }).await;
    create_topic(&cluster, "m", 2, 3);
    agents_agree(&cluster, "m", &[0, 1, 2, 3]).await;

    // Replace the leader's replica of partition 0 with the broker outside it.
    let before = partition(&cluster, "m", 0);
    let replicas = ints(&before["replicas"]);
    let leader = before["leader"].as_i64().expect("leader");
    let outsider = (1..=4).find(|b| !replicas.contains(b)).expect("a broker without a replica");
    let target: Vec<i64> = replicas.iter().map(|b| if *b == leader { outsider } else { *b }).collect();
    let target_arg = target.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    let done = cluster
        .batonctl_json(&["reassign", "start", "m", "0", "--replicas", &target_arg, "--wait"])
        .expect("reassign start --wait");
    assert_eq!(done["state"], "COMPLETED", "{done}");
    let after = partition(&cluster, "m", 0);
    assert_eq!(ints(&after["replicas"]), target, "{after}");
    assert_eq!(ints(&after["isr"]), target, "{after}");
    assert_ne!(after["leader"].as_i64(), Some(leader), "the dropped replica still leads: {after}");
    assert!(after["leader_epoch"].as_i64() > before["leader_epoch"].as_i64(), "{after}");
    let listed = cluster.batonctl_json(&["reassign", "list"]).expect("list");
    assert_eq!(listed, serde_json::json!([]));
    agents_agree(&cluster, "m", &[0, 1, 2, 3]).await;

    // A reassignment onto a broker that is down cannot complete: it is listed
    // with the replica still to add, and cancelled back.
    let before = partition(&cluster, "m", 1);
    let original = ints(&before["replicas"]);
    let down = (1..=4).find(|b| !original.contains(b)).expect("a broker without a replica");
    cluster.kill_agent(down as usize - 1);
    cluster
        .wait_until("the killed broker is fenced", LONG, || {
            let brokers = cluster.brokers().ok()?;
            brokers.as_array()?.iter().any(|b| b["id"] == down && b["state"] == "FENCED").then_some(())
        })
        .await;
    let target = format!("{down},{}", original[0]);
    let started = cluster.batonctl_json(&["reassign", "start", "m", "1", "--replicas", &target]).expect("start");
    assert_eq!(started["state"], "STARTED", "{started}");
    let listed = cluster.batonctl_json(&["reassign", "list"]).expect("list");
    assert_eq!(ints(&listed[0]["adding"]), vec![down], "{listed}");
    let removing: Vec<i64> = original[1..].to_vec();
    assert_eq!(ints(&listed[0]["removing"]), removing, "{listed}");
    let cancelled = cluster.batonctl_json(&["reassign", "cancel", "m", "1"]).expect("cancel");
    assert_eq!(cancelled["state"], "CANCELLED");
    assert_eq!(ints(&partition(&cluster, "m", 1)["replicas"]), original);

    // Refusals are typed and change nothing.
    for (args, code) in [
        (vec!["reassign", "cancel", "m", "1"], "INVALID_REQUEST"),
        (vec!["reassign", "start", "m", "1", "--replicas", "1,1"], "INVALID_REQUEST"),
        (vec!["reassign", "start", "m", "1", "--replicas", "9"], "BROKER_NOT_FOUND"),
        (vec!["reassign", "start", "nope", "0", "--replicas", "1"], "TOPIC_NOT_FOUND"),
    ] {
        let out = cluster.batonctl(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(code), "{args:?}: want {code}, got {stderr}");
    }
    assert_eq!(ints(&partition(&cluster, "m", 1)["replicas"]), original);
}

fn replica_counts(cluster: &Cluster, topic: &str) -> std::collections::BTreeMap<i64, usize> {
    let mut counts = std::collections::BTreeMap::new();
    let d = cluster.describe(topic).expect("describe");
    for p in d["partitions"].as_array().expect("partitions") {
        for r in ints(&p["replicas"]) {
            *counts.entry(r).or_insert(0) += 1;
        }
        assert_eq!(ints(&p["isr"]).len(), ints(&p["replicas"]).len(), "not every replica in sync: {p}");
    }
    counts
}

/// Scaling brokers out and in, one command each: a 4th broker joins and
/// `rebalance` spreads replicas onto it (counts within one); then
/// `broker decommission 2` moves every replica off broker 2, and leadership
/// is enforced by the remaining agents throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brokers_scale_out_with_rebalance_and_in_with_decommission() {
    let mut cluster = Cluster::start(ClusterOptions::default()).await;
    create_topic(&cluster, "s", 6, 2);
    let new = cluster.add_agent(4);
    cluster
        .wait_until("broker 4 alive", LONG, || {
            let brokers = cluster.brokers().ok()?;
            brokers.as_array()?.iter().any(|b| b["id"] == 4 && b["state"] == "ALIVE").then_some(())
        })
        .await;
    assert_eq!(replica_counts(&cluster, "s").get(&4), None);

    let out = cluster.batonctl_json(&["rebalance", "--max-in-flight", "2"]).expect("rebalance");
    assert!(out["moved"].as_u64() >= Some(2), "{out}");
    let counts = replica_counts(&cluster, "s");
    let (min, max) = (counts.values().min().copied(), counts.values().max().copied());
    assert_eq!((min, max), (Some(3), Some(3)), "12 replicas over 4 brokers: {counts:?}");
    agents_agree(&cluster, "s", &[0, 1, 2, new]).await;

    let out = cluster.batonctl_json(&["broker", "decommission", "2"]).expect("decommission");
    assert_eq!(out["stuck"], serde_json::json!([]), "{out}");
    let counts = replica_counts(&cluster, "s");
    assert_eq!(counts.get(&2), None, "broker 2 still holds replicas: {counts:?}");
    assert_eq!(counts.values().sum::<usize>(), 12);
    agents_agree(&cluster, "s", &[0, 1, 2, new]).await;
    let d = cluster.describe("s").expect("describe");
    assert!(d["partitions"].as_array().expect("partitions").iter().all(|p| p["leader"] != 2), "{d}");
}

/// A broker with a hosted view (`AgentConfig::hosted_view`, an in-process
/// agent as broker 4 beside three sidecars with full views) holds exactly the
/// partitions it is a replica of, and still hears of a partition reassigned
/// away from it (the change names it in no replica set any more).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosted_view_holds_only_the_brokers_partitions_and_hears_when_one_leaves() {
    let cluster = Cluster::start(ClusterOptions::default()).await;
    let controllers: Vec<String> = cluster.controllers_flag().split(',').map(str::to_owned).collect();
    let mut config = baton_agent::AgentConfig::new(4, controllers, "127.0.0.1:19094");
    config.tls = baton_security::TlsConfig { plaintext: true, ..Default::default() };
    config.hosted_view = true;
    let agent = baton_agent::Agent::start(config);
    agent.wait_registered(LONG).await.expect("broker 4 registers");
    cluster
        .wait_until("broker 4 alive", LONG, || {
            let brokers = cluster.brokers().ok()?;
            brokers.as_array()?.iter().any(|b| b["id"] == 4 && b["state"] == "ALIVE").then_some(())
        })
        .await;
    let described = create_topic(&cluster, "h", 12, 2);
    let hosted: Vec<i64> = described["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .filter(|p| ints(&p["replicas"]).contains(&4))
        .map(|p| p["partition"].as_i64().expect("partition"))
        .collect();
    assert!(!hosted.is_empty() && hosted.len() < 12, "broker 4 should host some but not all: {hosted:?}");
    let held = |agent: &baton_agent::Agent| {
        let mut v: Vec<i64> = agent.view().iter().map(|p| i64::from(p.partition)).collect();
        v.sort_unstable();
        v
    };
    cluster.wait_until("broker 4 holds exactly its partitions", LONG, || (held(&agent) == hosted).then_some(())).await;
    let never = (0..12).find(|p| !hosted.contains(p)).expect("a partition broker 4 does not host") as i32;
    let refused = agent.check_produce("h", never).expect_err("not hosted");
    assert_eq!(refused.kafka_error_code(), baton_agent::kafka_error::UNKNOWN_TOPIC_OR_PARTITION);
    // The sidecars hold all 12 (full view).
    agents_agree(&cluster, "h", &[0, 1, 2]).await;

    // Move one of broker 4's partitions onto the two other brokers.
    let moved = hosted[0] as usize;
    let before = partition(&cluster, "h", moved);
    let others: Vec<i64> = (1..=3).filter(|b| !ints(&before["replicas"]).contains(b)).collect();
    let keep = ints(&before["replicas"]).into_iter().find(|b| *b != 4).expect("the other replica");
    let target = format!("{keep},{}", others[0]);
    let done = cluster.batonctl_json(&["reassign", "start", "h", &moved.to_string(), "--replicas", &target, "--wait"]);
    assert_eq!(done.expect("reassign")["state"], "COMPLETED");
    cluster
        .wait_until("broker 4 hears its replica was removed", LONG, || {
            let view = agent.partition("h", moved as i32)?;
            (!view.replicas.contains(&4) && !view.is_replica).then_some(())
        })
        .await;
    let refused = agent.check_produce("h", moved as i32).expect_err("no longer hosted");
    assert_eq!(refused.kafka_error_code(), baton_agent::kafka_error::NOT_LEADER_OR_FOLLOWER);
    agent.shutdown().await;
}
