//! Elections with real processes: a fenced broker that comes back rejoins
//! the ISR, and a preferred election moves leadership from a LIVE broker to
//! another without a moment where both may accept writes.

use std::time::{Duration, Instant};

use baton_tests::{Cluster, ClusterOptions, LONG, agents_agree, create_topic, leaders};

/// A broker killed and restarted (new incarnation, new epoch) rejoins the
/// ISR of its partitions once caught up, and then a preferred election gives
/// it back the partitions it prefers, with higher leader epochs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_broker_rejoins_isr_and_preferred_election_restores_it() {
    let mut cluster = Cluster::start(ClusterOptions::default()).await;
    create_topic(&cluster, "events", 3, 3);
    cluster.kill_agent(0);
    cluster
        .wait_until("broker 1 out of every ISR", LONG, || {
            let d = cluster.describe("events").ok()?;
            d["partitions"]
                .as_array()?
                .iter()
                .all(|p| !p["isr"].as_array().is_some_and(|i| i.iter().any(|b| b == 1)))
                .then_some(())
        })
        .await;
    cluster.restart_agent(0);
    let rejoined = cluster
        .wait_until("broker 1 back in every ISR", LONG, || {
            let d = cluster.describe("events").ok()?;
            d["partitions"]
                .as_array()?
                .iter()
                .all(|p| p["isr"].as_array().is_some_and(|i| i.iter().any(|b| b == 1)))
                .then_some(d)
        })
        .await;
    let before = leaders(&rejoined);
    let out = cluster.batonctl(&["leader", "elect", "--type", "preferred"]);
    assert!(out.status.success(), "elect failed: {}", String::from_utf8_lossy(&out.stderr));
    let after = cluster.describe("events").expect("describe");
    for p in after["partitions"].as_array().expect("partitions") {
        let id = p["partition"].as_i64().expect("id");
        let preferred = p["replicas"][0].as_i64().expect("replica");
        assert_eq!(p["leader"].as_i64(), Some(preferred), "partition {id} not led by its preferred replica: {p}");
        if before[&id].0 != preferred {
            assert!(p["leader_epoch"].as_i64().expect("epoch") > before[&id].1, "epoch did not rise: {p}");
        }
    }
    agents_agree(&cluster, "events", &[0, 1, 2]).await;
}

/// Safety property 1 under a live leadership change: a preferred election
/// moves a partition from broker A, which is alive and holds a lease, to B.
/// A is SIGSTOPped just before, so it can neither hear nor acknowledge the
/// change: B must not be allowed to accept writes while A's lease may still
/// be valid (B's first "allowed" comes after the lease deadline A reported
/// just before the freeze), and A refuses once it wakes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preferred_election_waits_for_the_live_leaders_lease() {
    let mut cluster = Cluster::start(ClusterOptions::default()).await;
    create_topic(&cluster, "moves", 3, 3);
    let view = agents_agree(&cluster, "moves", &[0, 1, 2]).await;
    let (&partition, _) = view.iter().find(|(_, (leader, _))| *leader == 1).expect("broker 1 leads one");
    // Move the partition away from its preferred broker 1, then bring 1 back.
    cluster.kill_agent(0);
    let interim = cluster
        .wait_until("failover away from broker 1", LONG, || {
            let (leader, _) = leaders(&cluster.describe("moves").ok()?)[&partition];
            (leader != 1 && leader != -1).then_some(leader)
        })
        .await;
    cluster.restart_agent(0);
    cluster
        .wait_until("broker 1 back in the ISR", LONG, || {
            let d = cluster.describe("moves").ok()?;
            d["partitions"][partition as usize]["isr"].as_array()?.iter().any(|b| b == 1).then_some(())
        })
        .await;
    let old = interim as usize - 1;
    agents_agree(&cluster, "moves", &[0, 1, 2]).await;
    assert!(cluster.check(old, "moves", partition as i32).await.expect("check").allowed);

    // The interim leader freezes holding its lease; the election goes ahead.
    // Its lease deadline only moves forward, so the deadline it reports just
    // before the freeze is a lower bound on when its lease ends: another
    // broker allowed before that would prove two valid leaderships at once.
    let asked_at = Instant::now();
    let status = cluster.agent_status(old).await.expect("status of the interim leader");
    // Measured from before the question: the agent's answer came later.
    let lease_known_until = asked_at + Duration::from_millis(status.lease_remaining_ms);
    assert!(status.lease_remaining_ms > 0, "the interim leader holds no lease: {status:?}");
    cluster.pause_agent(old);
    let p = partition.to_string();
    let elect = cluster.batonctl(&["leader", "elect", "--type", "preferred", "--topic", "moves", "--partition", &p]);
    assert!(elect.status.success(), "elect failed: {}", String::from_utf8_lossy(&elect.stderr));
    let granted_at = baton_tests::wait_for("broker 1 to be allowed", LONG, async || {
        let r = cluster.check(0, "moves", partition as i32).await.ok()?;
        r.allowed.then(Instant::now)
    })
    .await;
    assert!(
        granted_at > lease_known_until,
        "broker 1 was allowed {:?} before broker {interim}'s lease ran out",
        lease_known_until - granted_at
    );
    cluster.resume_agent(old);
    let r = cluster.check(old, "moves", partition as i32).await.expect("check on the woken broker");
    assert!(!r.allowed, "the old leader accepted a write after waking: {r:?}");
}

/// The ISR follows reported progress end to end (sidecar RecordProgress →
/// heartbeat → controller → AlterIsr): a follower that stops keeping up
/// leaves the ISR after replica_lag_max, and rejoins once it catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_follower_leaves_the_isr_and_rejoins_after_catching_up() {
    let env = vec![("BATON_LIVENESS__REPLICA_LAG_MAX_MS".to_string(), "1000".to_string())];
    let cluster = Cluster::start(ClusterOptions { controller_env: env, ..ClusterOptions::default() }).await;
    let created = create_topic(&cluster, "lag", 1, 3);
    let p = &created["partitions"][0];
    let leader = p["leader"].as_i64().expect("leader") as usize - 1;
    let replicas: Vec<usize> =
        p["replicas"].as_array().expect("replicas").iter().map(|b| b.as_i64().expect("id") as usize - 1).collect();
    let (keeps_up, lags) = {
        let followers: Vec<usize> = replicas.iter().copied().filter(|r| *r != leader).collect();
        (followers[0], followers[1])
    };
    agents_agree(&cluster, "lag", &[0, 1, 2]).await;
    // The leader writes up to 100; one follower follows, the other stays at 10.
    cluster.record_progress(leader, "lag", 0, 100).await;
    cluster.record_progress(keeps_up, "lag", 0, 100).await;
    cluster.record_progress(lags, "lag", 0, 10).await;
    let isr = |d: &serde_json::Value| -> Vec<usize> {
        d["partitions"][0]["isr"]
            .as_array()
            .map(|a| a.iter().filter_map(|b| b.as_i64()).map(|b| b as usize - 1).collect())
            .unwrap_or_default()
    };
    let shrunk = cluster
        .wait_until("the lagging follower to leave the ISR", LONG, || {
            let d = cluster.describe("lag").ok()?;
            (!isr(&d).contains(&lags)).then_some(d)
        })
        .await;
    assert!(isr(&shrunk).contains(&leader) && isr(&shrunk).contains(&keeps_up), "{shrunk}");
    assert_eq!(shrunk["partitions"][0]["leader"].as_i64(), Some(leader as i64 + 1), "leadership must not move");

    cluster.record_progress(lags, "lag", 0, 100).await;
    cluster
        .wait_until("the caught-up follower to rejoin", LONG, || {
            let d = cluster.describe("lag").ok()?;
            isr(&d).contains(&lags).then_some(())
        })
        .await;
}

/// Automatic leader rebalance: a broker killed and restarted gets its
/// preferred partitions back without anyone asking, but only once it is back
/// in their ISRs and has been up for `min_broker_uptime_ms` (never onto a
/// broker that just came back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_rebalance_returns_leadership_to_settled_preferred_replicas() {
    let env = vec![
        ("BATON_BALANCE__LEADER_REBALANCE_INTERVAL_MS".to_owned(), "300".to_owned()),
        ("BATON_BALANCE__MIN_BROKER_UPTIME_MS".to_owned(), "3000".to_owned()),
    ];
    let mut cluster = Cluster::start(ClusterOptions { controller_env: env, ..ClusterOptions::default() }).await;
    create_topic(&cluster, "rb", 6, 3);
    let preferred_by_1 = |d: &serde_json::Value| -> Vec<i64> {
        d["partitions"]
            .as_array()
            .map(|ps| ps.iter().filter(|p| p["replicas"][0] == 1).filter_map(|p| p["partition"].as_i64()).collect())
            .unwrap_or_default()
    };
    let mine = preferred_by_1(&cluster.describe("rb").expect("describe"));
    assert!(!mine.is_empty(), "broker 1 is preferred for nothing");
    cluster.kill_agent(0);
    cluster
        .wait_until("failover away from broker 1", LONG, || {
            let view = leaders(&cluster.describe("rb").ok()?);
            mine.iter().all(|p| view[p].0 > 1).then_some(())
        })
        .await;
    cluster.restart_agent(0);
    let restarted = Instant::now();
    let back = cluster
        .wait_until("broker 1 leads its preferred partitions again", LONG, || {
            let view = leaders(&cluster.describe("rb").ok()?);
            mine.iter().all(|p| view[p].0 == 1).then(Instant::now)
        })
        .await;
    assert!(
        back - restarted >= Duration::from_millis(3000),
        "leadership came back {:?} after the restart, before the broker was up for min_broker_uptime_ms",
        back - restarted
    );
    agents_agree(&cluster, "rb", &[0, 1, 2]).await;
}
