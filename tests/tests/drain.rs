//! Drain and controlled shutdown with real processes: an operator drain
//! moves leadership off a live broker and outlives its restart; a SIGTERMed
//! agent hands its leadership over before it exits, so a rolling restart of
//! every broker moves each partition by handoff, never by failover.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use baton_proto::v1::agent_client::AgentClient;
use baton_proto::v1::{CheckKind, CheckRequest};
use baton_tests::{Cluster, ClusterOptions, LONG, agents_agree, create_topic, leaders};
use serde_json::Value;

fn refused_with(cluster: &Cluster, args: &[&str], code: &str) {
    let out = cluster.batonctl(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(stderr.contains(code), "{args:?}: want {code}, got {stderr}");
}

fn broker_state(cluster: &Cluster, id: i64) -> Option<String> {
    let brokers = cluster.brokers().ok()?;
    let b = brokers.as_array()?.iter().find(|b| b["id"] == id)?;
    b["state"].as_str().map(str::to_owned)
}

fn led_by(describe: &Value, id: i64) -> usize {
    leaders(describe).values().filter(|(leader, _)| *leader == id).count()
}

/// `broker drain` moves every partition a live broker leads to another
/// in-sync broker, at higher epochs, and the agents enforce it; the broker
/// stays drained across a restart; a second drain is refused; undrain and a
/// preferred election give it its partitions back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_moves_leadership_and_outlives_a_restart() {
    let mut cluster = Cluster::start(ClusterOptions::default()).await;
    create_topic(&cluster, "d", 6, 3);
    let before = agents_agree(&cluster, "d", &[0, 1, 2]).await;
    let led = before.values().filter(|(l, _)| *l == 1).count();
    assert!(led > 0, "broker 1 leads nothing: {before:?}");

    let drained = cluster.batonctl_json(&["broker", "drain", "1"]).expect("drain");
    assert_eq!((drained["moved"].as_u64(), drained["remaining"].as_u64()), (Some(led as u64), Some(0)), "{drained}");
    let after = agents_agree(&cluster, "d", &[0, 1, 2]).await;
    for (p, (leader, epoch)) in &after {
        assert_ne!(*leader, 1, "partition {p} still led by the drained broker");
        if before[p].0 == 1 {
            assert!(*epoch > before[p].1, "partition {p}: epoch did not rise");
        }
    }
    assert_eq!(broker_state(&cluster, 1).as_deref(), Some("DRAINED"));
    refused_with(&cluster, &["broker", "drain", "2"], "DRAIN_IN_PROGRESS");
    refused_with(&cluster, &["broker", "drain", "99"], "BROKER_NOT_FOUND");
    refused_with(&cluster, &["broker", "undrain", "2"], "BROKER_NOT_DRAINED");

    // A restart (new registration) keeps the drain.
    cluster.kill_agent(0);
    cluster.wait_until("broker 1 fenced", LONG, || (broker_state(&cluster, 1)? == "FENCED").then_some(())).await;
    cluster.restart_agent(0);
    cluster
        .wait_until("broker 1 back, still drained", LONG, || (broker_state(&cluster, 1)? == "DRAINED").then_some(()))
        .await;
    assert_eq!(led_by(&cluster.describe("d").expect("describe"), 1), 0);
    // It still replicates: it rejoins every ISR while drained.
    cluster
        .wait_until("broker 1 back in every ISR while drained", LONG, || {
            let d = cluster.describe("d").ok()?;
            d["partitions"]
                .as_array()?
                .iter()
                .all(|p| p["isr"].as_array().is_some_and(|i| i.iter().any(|b| b == 1)))
                .then_some(())
        })
        .await;
    assert_eq!(led_by(&cluster.describe("d").expect("describe"), 1), 0);

    let undrained = cluster.batonctl_json(&["broker", "undrain", "1"]).expect("undrain");
    assert_eq!(undrained["broker"], 1);
    assert_eq!(broker_state(&cluster, 1).as_deref(), Some("ALIVE"));
    let out = cluster.batonctl(&["leader", "elect", "--type", "preferred"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        led_by(&cluster.describe("d").expect("describe"), 1) > 0,
        "broker 1 leads again after a preferred election"
    );
    agents_agree(&cluster, "d", &[0, 1, 2]).await;
}

/// Per partition, the longest stretch in which no sidecar allowed a produce,
/// as seen by polling every sidecar's Check.
struct Gaps {
    last_allowed: BTreeMap<i32, Instant>,
    worst: BTreeMap<i32, Duration>,
}

async fn poll_checks(addrs: Vec<String>, partitions: i32, stop: Arc<AtomicBool>) -> Gaps {
    let mut gaps = Gaps { last_allowed: BTreeMap::new(), worst: BTreeMap::new() };
    let mut clients: Vec<Option<AgentClient<tonic::transport::Channel>>> = vec![None; addrs.len()];
    while !stop.load(Ordering::Acquire) {
        for p in 0..partitions {
            let mut allowed = false;
            for (i, addr) in addrs.iter().enumerate() {
                if clients[i].is_none() {
                    clients[i] = AgentClient::connect(format!("http://{addr}")).await.ok();
                }
                let Some(client) = clients[i].as_mut() else { continue };
                let req =
                    CheckRequest { topic: "r".into(), partition: p, kind: CheckKind::Produce as i32, leader_epoch: -1 };
                match tokio::time::timeout(Duration::from_millis(200), client.check(req)).await {
                    Ok(Ok(r)) => allowed |= r.into_inner().allowed,
                    _ => clients[i] = None,
                }
            }
            let now = Instant::now();
            if allowed && let Some(last) = gaps.last_allowed.insert(p, now) {
                let worst = gaps.worst.entry(p).or_default();
                *worst = (*worst).max(now - last);
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    gaps
}

/// A rolling restart by SIGTERM: each agent asks for a controlled shutdown,
/// waits until its leadership moved (the controller logs the commit, the
/// agent logs that it is done, not that it timed out), and only then
/// exits; it comes back, rejoins every ISR, and the next one goes. Prints
/// the longest time any partition had no broker allowed to produce, as
/// polled (figure in docs/BENCHMARKS.md; not asserted: timing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart_by_sigterm_hands_leadership_over() {
    let mut cluster = Cluster::start(ClusterOptions::default()).await;
    let partitions = 6;
    create_topic(&cluster, "r", partitions as u32, 3);
    agents_agree(&cluster, "r", &[0, 1, 2]).await;
    let stop = Arc::new(AtomicBool::new(false));
    let addrs: Vec<String> = (0..3).map(|i| cluster.agent_addr(i).to_owned()).collect();
    let poller = tokio::spawn(poll_checks(addrs, partitions, stop.clone()));

    for i in 0..3 {
        let id = i as i64 + 1;
        let led = led_by(&cluster.describe("r").expect("describe"), id);
        cluster.terminate_agent(i);
        let deadline = Instant::now() + LONG;
        while cluster.agent_running(i) {
            assert!(Instant::now() < deadline, "agent {id} did not exit after SIGTERM");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let log = cluster.log_of(&format!("agent-{id}"));
        assert!(log.contains("controlled shutdown done"), "agent {id} did not finish its controlled shutdown:\n{log}");
        if led > 0 {
            let controllers: String = (1..=3).map(|c| cluster.log_of(&format!("controller-{c}"))).collect();
            assert!(
                controllers
                    .lines()
                    .any(|l| l.contains("controlled shutdown committed") && l.contains(&format!("broker={id}"))),
                "no controller committed broker {id}'s controlled shutdown"
            );
        }
        cluster.restart_agent(i);
        cluster
            .wait_until(&format!("broker {id} back in every ISR"), LONG, || {
                let d = cluster.describe("r").ok()?;
                d["partitions"]
                    .as_array()?
                    .iter()
                    .all(|p| p["isr"].as_array().is_some_and(|isr| isr.iter().any(|b| b == id)))
                    .then_some(())
            })
            .await;
        agents_agree(&cluster, "r", &[0, 1, 2]).await;
    }
    stop.store(true, Ordering::Release);
    let gaps = poller.await.expect("poller");
    assert_eq!(gaps.last_allowed.len(), partitions as usize, "some partition was never allowed anywhere");
    let worst = gaps.worst.values().max().copied().unwrap_or_default();
    println!(
        "rolling restart of 3 brokers, {partitions} partitions: longest leaderless gap (polled) {worst:?}; per partition {:?}",
        gaps.worst
    );
}
