//! Controller quorum membership with real processes: growing a running
//! 3-node quorum to 5 and shrinking it to 3 (the leader among the removed)
//! while brokers fail over, replacing a dead controller, and the typed
//! refusals of changes that would hurt the quorum.

use std::time::Duration;

use baton_tests::{Cluster, ClusterOptions, LONG, agents_agree, create_topic, leaders};
use serde_json::Value;

fn ids(v: &Value) -> Vec<u64> {
    v.as_array().map(|a| a.iter().filter_map(Value::as_u64).collect()).unwrap_or_default()
}

/// `batonctl quorum ARGS` as JSON; panics with batonctl's error otherwise.
fn quorum_cmd(cluster: &Cluster, args: &[&str]) -> Value {
    let mut all = vec!["quorum"];
    all.extend_from_slice(args);
    cluster.batonctl_json(&all).unwrap_or_else(|e| panic!("batonctl quorum {args:?}: {e:#}"))
}

/// `batonctl quorum ARGS` must fail with this typed error code.
fn quorum_refused(cluster: &Cluster, args: &[&str], code: &str) {
    let mut all = vec!["quorum"];
    all.extend_from_slice(args);
    let out = cluster.batonctl(&all);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "quorum {args:?} succeeded");
    assert!(stderr.contains(code), "quorum {args:?}: want {code}, got {stderr}");
}

/// Waits until the quorum, as seen through `controllers`, has exactly these
/// voters, no learners and a leader among them.
async fn wait_for_voters_at(cluster: &Cluster, controllers: &str, voters: &[u64]) -> Value {
    cluster
        .wait_until(&format!("voters {voters:?} through {controllers}"), LONG, || {
            let q = cluster.batonctl_json_at(controllers, &["quorum", "status"]).ok()?;
            let leader = q["leader"].as_u64()?;
            (ids(&q["voters"]) == voters && ids(&q["learners"]).is_empty() && voters.contains(&leader)).then_some(q)
        })
        .await
}

/// Leaders of `topic` must avoid `dead` brokers, and live agents must agree.
async fn failover_away_from(cluster: &Cluster, topic: &str, dead: i64, live: &[usize]) {
    cluster
        .wait_until(&format!("no partition of {topic} led by broker {dead}"), LONG, || {
            let view = leaders(&cluster.describe(topic).ok()?);
            view.values().all(|(leader, _)| *leader != dead && *leader >= 1).then_some(())
        })
        .await;
    agents_agree(cluster, topic, live).await;
}

/// The scenario: add a 4th and a 5th controller to a running
/// 3-node quorum, then remove two (the leader among them), with a broker
/// failing over between each step and leadership staying enforced. Then
/// every remaining controller is killed at once and restarted: membership
/// (including addresses that only the replicated state knows) survives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_grows_to_five_and_shrinks_to_three_while_brokers_fail_over() {
    let mut cluster = Cluster::start(ClusterOptions::default()).await;
    create_topic(&cluster, "orders", 6, 3);
    agents_agree(&cluster, "orders", &[0, 1, 2]).await;

    // 4th controller: joins as a learner, catches up, becomes a voter.
    let c4 = cluster.spawn_joining_controller();
    let addr4 = cluster.controller_addr(c4).to_string();
    let q = quorum_cmd(&cluster, &["add", "4", &addr4]);
    assert_eq!(ids(&q["voters"]), vec![1, 2, 3, 4], "{q}");
    // It holds the state: a LOCAL read through it alone sees the topic.
    cluster
        .wait_until("controller 4 serves the topic", LONG, || {
            cluster.batonctl_json_at(&addr4, &["topic", "describe", "orders"]).ok()
        })
        .await;

    // A broker dies while the quorum has 4 voters.
    cluster.kill_agent(0);
    failover_away_from(&cluster, "orders", 1, &[1, 2]).await;

    // 5th controller.
    let c5 = cluster.spawn_joining_controller();
    let addr5 = cluster.controller_addr(c5).to_string();
    let q = quorum_cmd(&cluster, &["add", "5", &addr5]);
    assert_eq!(ids(&q["voters"]), vec![1, 2, 3, 4, 5], "{q}");
    cluster.restart_agent(0);

    // Remove the leader: it hands leadership over first.
    let leader = cluster.quorum().expect("quorum")["leader"].as_u64().expect("leader");
    let q = quorum_cmd(&cluster, &["remove", &leader.to_string()]);
    assert!(!ids(&q["voters"]).contains(&leader), "{q}");
    cluster.kill_controller(leader as usize - 1);
    // Then one more (a follower that is not the new leader, not 4 or 5).
    let new_leader = cluster.wait_for_quorum(LONG).await as u64 + 1;
    let other = [1u64, 2, 3].into_iter().find(|id| *id != leader && *id != new_leader).expect("a third one");
    let q = quorum_cmd(&cluster, &["remove", &other.to_string()]);
    assert!(!ids(&q["voters"]).contains(&other), "{q}");
    let remaining: Vec<u64> = [1u64, 2, 3, 4, 5].into_iter().filter(|id| *id != leader && *id != other).collect();
    // The removed controller itself learns that its removal committed (its
    // own status, not the leader's), on a cluster with nothing else to say.
    let removed_addr = cluster.controller_addr(other as usize - 1).to_string();
    wait_for_voters_at(&cluster, &removed_addr, &remaining).await;
    cluster.kill_controller(other as usize - 1);
    let survivor = cluster.controller_addr(remaining[0] as usize - 1).to_string();
    wait_for_voters_at(&cluster, &survivor, &remaining).await;

    // Brokers still fail over under the new quorum: broker 2 dies, broker 1
    // (restarted above) and 3 take over.
    cluster
        .wait_until("broker 1 registered again", LONG, || {
            let b = cluster.brokers().ok()?;
            b.as_array()?.iter().any(|b| b["id"] == 1 && b["state"] == "ALIVE").then_some(())
        })
        .await;
    cluster.kill_agent(1);
    failover_away_from(&cluster, "orders", 2, &[0, 2]).await;

    // Kill every remaining controller at once and restart them: the
    // configuration and the addresses of 4 and 5 (absent from the first
    // three's --peers) come back from disk.
    for id in &remaining {
        cluster.kill_controller(*id as usize - 1);
    }
    for id in &remaining {
        cluster.restart_controller(*id as usize - 1);
    }
    for id in &remaining {
        let addr = cluster.controller_addr(*id as usize - 1).to_string();
        wait_for_voters_at(&cluster, &addr, &remaining).await;
    }
    create_topic(&cluster, "after-restart", 2, 2);
    agents_agree(&cluster, "orders", &[0, 2]).await;
    // Every live agent holds its session with the current leader (which may
    // be 4 or 5, absent from the agents' --controllers) and knows its id.
    let leader = cluster.wait_for_quorum(LONG).await as u64 + 1;
    for a in [0, 2] {
        baton_tests::wait_for(&format!("agent {a} in session with controller {leader}"), LONG, async || {
            let s = cluster.agent_status(a).await.ok()?;
            (s.connected && s.controller_id == leader).then_some(())
        })
        .await;
    }
}

/// Replacing a dead controller: a follower dies for good; removing a LIVE
/// voter now would leave no active majority and is refused; a new
/// controller is added and the dead one removed; the new quorum then
/// survives losing one more member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_controller_is_replaced() {
    let mut cluster = Cluster::start(ClusterOptions { agents: 2, ..ClusterOptions::default() }).await;
    create_topic(&cluster, "t", 4, 2);

    // Typed refusals that change nothing.
    quorum_refused(&cluster, &["remove", "9"], "CONTROLLER_NOT_FOUND");
    quorum_refused(&cluster, &["add", "2", "127.0.0.1:1"], "CONTROLLER_ALREADY_EXISTS");
    quorum_refused(&cluster, &["add", "0", "127.0.0.1:1"], "INVALID_REQUEST");

    let leader = cluster.wait_for_quorum(LONG).await as u64 + 1;
    let dead = [1u64, 2, 3].into_iter().find(|id| *id != leader).expect("a follower");
    cluster.kill_controller(dead as usize - 1);
    let alive_other = [1u64, 2, 3].into_iter().find(|id| *id != leader && *id != dead).expect("another");
    // Once the leader has not heard from the dead member for a while (its
    // window is one election timeout), removing a live voter is refused.
    let leader_addr = cluster.controller_addr(leader as usize - 1).to_string();
    cluster
        .wait_until("the leader reports the dead member silent", LONG, || {
            let q = cluster.batonctl_json_at(&leader_addr, &["quorum", "status"]).ok()?;
            let member = q["members"].as_array()?.iter().find(|m| m["id"] == dead)?.clone();
            (member["last_contact_ms"].as_i64()? > 5_000).then_some(())
        })
        .await;
    quorum_refused(&cluster, &["remove", &alive_other.to_string()], "MEMBERSHIP_CHANGE_REFUSED");
    assert_eq!(ids(&cluster.quorum().expect("quorum")["voters"]), vec![1, 2, 3]);

    // The replacement shares the others' configuration (peers = the initial
    // three): an id outside them joins without --join.
    let c4 = cluster.spawn_controller_to_join(false);
    let addr4 = cluster.controller_addr(c4).to_string();
    quorum_cmd(&cluster, &["add", "4", &addr4]);
    let q = quorum_cmd(&cluster, &["remove", &dead.to_string()]);
    let mut expected: Vec<u64> = vec![leader, alive_other, 4];
    expected.sort_unstable();
    assert_eq!(ids(&q["voters"]), expected, "{q}");

    // Lose one more member (the current leader): the other two elect a
    // leader and keep committing.
    let leader_now = cluster.wait_for_quorum(LONG).await;
    cluster.kill_controller(leader_now);
    let rest: Vec<String> = expected
        .iter()
        .filter(|id| **id as usize - 1 != leader_now)
        .map(|id| cluster.controller_addr(*id as usize - 1).to_string())
        .collect();
    let rest = rest.join(",");
    cluster
        .wait_until("the two survivors commit a write", Duration::from_secs(60), || {
            let out =
                cluster.batonctl_at(&rest, &["topic", "create", "u", "--partitions", "1", "--replication-factor", "1"]);
            (out.status.success() || String::from_utf8_lossy(&out.stderr).contains("TOPIC_ALREADY_EXISTS"))
                .then_some(())
        })
        .await;
    let described = cluster.batonctl_json_at(&rest, &["topic", "describe", "u", "--linearizable"]).expect("describe");
    assert_eq!(described["name"], "u");
}
