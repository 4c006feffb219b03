//! Real Kafka clients across a failover (issue 4): three reference brokers
//! (`baton-refbroker`, each embedding the agent) and three controllers; a
//! librdkafka producer (confluent-kafka, acks=all, no idempotence) sends
//! numbered messages throughout; a drain moves leadership off a live broker,
//! the leader of partition 0 is kill -9'd, later another leader is
//! SIGSTOPped and SIGCONTed, and the killed broker restarts with empty logs.
//! Then kcat reads every partition from the start.
//!
//! Property: every acknowledged message is read back at its acknowledged
//! offset, in ack order within its partition (duplicates allowed, counted);
//! the producer carried on against the new leaders without a restart and
//! was told NOT_LEADER_OR_FOLLOWER along the way.
//!
//! Needs `cargo build --workspace --bins` first (like every multi-process
//! test) and installs confluent-kafka and kcat if they are missing.

use std::collections::BTreeMap;
use std::time::Duration;

use baton_tests::refbroker::{
    KafkaCluster, ProducerEvent, ProducerRun, Verdict, ack_targets, ensure_kafka_clients, longest_ack_gap, unix_now,
    verdict,
};
use baton_tests::{LONG, create_topic, leaders};

const TOPIC: &str = "e2e";
const PARTITIONS: u32 = 3;
/// Acks every partition must gain after each fault before the next one.
const PROGRESS: u64 = 300;

/// Figures of one run, printed for docs/BENCHMARKS.md.
struct Figures {
    verdict: Verdict,
    /// (fault, longest per-partition gap between acks in seconds)
    blocked: Vec<(&'static str, f64)>,
    /// NOT_LEADER_OR_FOLLOWER log lines of the producer after the first fault.
    not_leader_after_faults: usize,
    /// The producer moved a partition to the leader a NOT_LEADER hint named
    /// (librdkafka logs "migrating from broker X to Y") during the drain.
    migrated_after_drain: bool,
}

fn leader_of(cluster: &KafkaCluster, partition: i64) -> i64 {
    let d = cluster.cluster.describe(TOPIC).expect("describe");
    leaders(&d)[&partition].0
}

/// Waits until kcat's Metadata (from `bootstrap`) agrees with the controller
/// on every partition's leader, and no partition led by `gone` is left.
async fn wait_metadata_agrees(cluster: &KafkaCluster, bootstrap: &str, gone: Option<i64>) -> BTreeMap<i64, (i64, i64)> {
    cluster
        .cluster
        .wait_until("kcat's Metadata to agree with the controllers", LONG, || {
            let view = leaders(&cluster.cluster.describe(TOPIC).ok()?);
            if view.values().any(|(l, _)| *l < 1 || Some(*l) == gone) {
                return None;
            }
            let md = cluster.kcat_metadata(bootstrap, TOPIC).ok()?;
            let topic = md["topics"].as_array()?.iter().find(|t| t["topic"] == TOPIC)?;
            let parts = topic["partitions"].as_array()?;
            let agree = parts.len() == view.len()
                && parts.iter().all(|p| {
                    let id = p["partition"].as_i64().unwrap_or(-1);
                    view.get(&id).is_some_and(|(l, _)| p["leader"].as_i64() == Some(*l))
                });
            agree.then_some(view)
        })
        .await
}

/// The clients, a cluster with topic `e2e`, kcat's view of it (three
/// brokers, leaders agreeing with the controllers) and a running producer
/// that has its first acks.
async fn setup(acks: &str) -> (KafkaCluster, ProducerRun) {
    ensure_kafka_clients().expect("installing confluent-kafka and kcat");
    let cluster = KafkaCluster::start(3).await;
    create_topic(&cluster.cluster, TOPIC, PARTITIONS, 3);
    let first = cluster.kafka_addrs[0].clone();
    wait_metadata_agrees(&cluster, &first, None).await;
    let md = cluster.kcat_metadata(&first, TOPIC).expect("kcat -L");
    assert_eq!(md["brokers"].as_array().map(Vec::len), Some(3), "kcat lists three brokers: {md}");
    let producer = ProducerRun::start(cluster.cluster.dir.path(), &cluster.bootstrap(), TOPIC, PARTITIONS, acks)
        .expect("starting the producer");
    cluster.wait_acks(&producer, "the producer's first acks", PARTITIONS, &BTreeMap::new(), PROGRESS, LONG).await;
    (cluster, producer)
}

/// Stops the producer (which must still be the one started: no restart),
/// reads every partition back with kcat and checks it.
async fn finish(cluster: &KafkaCluster, mut producer: ProducerRun) -> (Vec<ProducerEvent>, Verdict) {
    assert!(producer.is_running(), "the producer carried on without a restart");
    let events = producer.stop(Duration::from_secs(90)).await.expect("producer summary");
    let mut read = BTreeMap::new();
    for (p, target) in ack_targets(&events) {
        read.insert(p, cluster.consume(TOPIC, p, target, LONG).await);
    }
    let verdict = verdict(&events, &read);
    (events, verdict)
}

async fn run(acks: &str) -> Figures {
    let (mut cluster, producer) = setup(acks).await;

    // Fault 1: a drain moves leadership off a live broker (the leader of
    // partition 1): its agent refuses the producer with
    // NOT_LEADER_OR_FOLLOWER and the KIP-951 hint, which the producer follows.
    let drained = leader_of(&cluster, 1);
    let base = producer.acks_per_partition();
    let t_drain = unix_now();
    let out = cluster.cluster.batonctl(&["broker", "drain", &drained.to_string()]);
    assert!(out.status.success(), "drain failed: {}", String::from_utf8_lossy(&out.stderr));
    cluster
        .cluster
        .wait_until("the drained broker to lead nothing", LONG, || {
            let view = leaders(&cluster.cluster.describe(TOPIC).ok()?);
            view.values().all(|(l, _)| *l >= 1 && *l != drained).then_some(())
        })
        .await;
    cluster.wait_acks(&producer, "acks on every partition after the drain", PARTITIONS, &base, PROGRESS, LONG).await;
    let t_drain_done = unix_now();
    let out = cluster.cluster.batonctl(&["broker", "undrain", &drained.to_string()]);
    assert!(out.status.success(), "undrain failed: {}", String::from_utf8_lossy(&out.stderr));

    // Fault 2: kill -9 the leader of partition 0.
    let victim = leader_of(&cluster, 0);
    let base = producer.acks_per_partition();
    let t_kill = unix_now();
    cluster.kill_broker(victim);
    cluster.wait_acks(&producer, "acks on every partition after the kill", PARTITIONS, &base, PROGRESS, LONG).await;
    let t_kill_done = unix_now();
    let survivors: Vec<String> =
        (1..=3).filter(|b| *b != victim).map(|b| cluster.kafka_addrs[(b - 1) as usize].clone()).collect();
    let view = wait_metadata_agrees(&cluster, &survivors[0], Some(victim)).await;

    // Fault 3: SIGSTOP a surviving broker that leads something, then SIGCONT.
    let paused = view.values().map(|(l, _)| *l).find(|l| *l != victim).expect("a surviving leader");
    let base = producer.acks_per_partition();
    let t_pause = unix_now();
    cluster.pause_broker(paused);
    cluster
        .wait_acks(&producer, "acks on every partition while a broker is paused", PARTITIONS, &base, PROGRESS, LONG)
        .await;
    let t_pause_done = unix_now();
    cluster.resume_broker(paused);

    // The killed broker restarts with empty logs; both re-register and
    // replicate in the background. (Their return to the ISR is not waited
    // for: under a continuous produce load the controller's rejoin rule,
    // which compares heartbeat-sampled offsets, may not let them back in
    // until the load pauses.)
    cluster.restart_broker(victim);
    wait_all_alive(&cluster).await;
    let base = producer.acks_per_partition();
    cluster.wait_acks(&producer, "acks on every partition at the end", PARTITIONS, &base, PROGRESS, LONG).await;

    let (events, verdict) = finish(&cluster, producer).await;
    let gap = |from, to| longest_ack_gap(&events, from, to).values().copied().fold(0.0, f64::max);
    let blocked = vec![
        ("drain (leadership moved off a live broker)", gap(t_drain, t_drain_done)),
        ("kill -9 of a leader", gap(t_kill, t_kill_done)),
        ("SIGSTOP of a leader", gap(t_pause, t_pause_done)),
    ];
    let not_leader_after_faults = verdict.not_leader_lines.iter().filter(|(t, _)| *t >= t_drain).count();
    let migrated_after_drain = events.iter().any(|e| {
        matches!(e, ProducerEvent::Log { message, t }
            if *t >= t_drain && *t <= t_drain_done && message.contains("migrating from broker"))
    });
    let figures = Figures { verdict, blocked, not_leader_after_faults, migrated_after_drain };
    print_figures(acks, &figures, &events);
    figures
}

/// Waits until all three brokers are registered and ALIVE.
async fn wait_all_alive(cluster: &KafkaCluster) {
    cluster
        .cluster
        .wait_until("every broker registered and alive again", LONG, || {
            let list = cluster.cluster.brokers().ok()?;
            (list.as_array()?.iter().filter(|b| b["state"] == "ALIVE").count() == 3).then_some(())
        })
        .await;
}

fn print_figures(acks: &str, f: &Figures, events: &[ProducerEvent]) {
    let v = &f.verdict;
    println!("=== kafka e2e (acks={acks}) ===");
    println!(
        "sent {} acked {} failed {} read {} lost {} duplicates {} out_of_order {} not_leader_log_lines {} (after the first fault {})",
        v.sent,
        v.acked,
        v.failed,
        v.read,
        v.lost.len(),
        v.duplicates,
        v.out_of_order.len(),
        v.not_leader_lines.len(),
        f.not_leader_after_faults,
    );
    println!("producer followed the drain's leader hint: {}", f.migrated_after_drain);
    for (fault, seconds) in &f.blocked {
        println!("producer blocked (longest gap between acks of one partition) after {fault}: {seconds:.3} s");
    }
    if let Some((_, line)) = v.not_leader_lines.last() {
        println!("last NOT_LEADER line: {line}");
    }
    let failures: Vec<&ProducerEvent> =
        events.iter().filter(|e| matches!(e, ProducerEvent::Failed { .. })).take(5).collect();
    if !failures.is_empty() {
        println!("first failed deliveries: {failures:?}");
    }
}

/// acks=all: no acknowledged message is lost across a leadership move, a
/// kill -9 and a pause, and the producer follows NOT_LEADER_OR_FOLLOWER.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_all_producer_loses_nothing_across_broker_failover() {
    let f = run("all").await;
    let v = &f.verdict;
    assert!(v.acked > 0 && v.sent >= v.acked, "nothing acknowledged");
    assert!(
        v.lost.is_empty(),
        "{} acknowledged messages lost, first: {:?}",
        v.lost.len(),
        &v.lost[..v.lost.len().min(10)]
    );
    assert!(
        v.out_of_order.is_empty(),
        "read back out of ack order: {:?}",
        &v.out_of_order[..v.out_of_order.len().min(10)]
    );
    assert_eq!(v.failed, 0, "the producer gave up on messages");
    assert!(f.not_leader_after_faults > 0, "the producer never saw NOT_LEADER_OR_FOLLOWER after a fault");
    assert!(f.migrated_after_drain, "the producer did not move to the leader the drain chose");
}

/// acks=1, as a documented run rather than an assertion: the leader answers
/// before its followers have the data, so a kill -9 of the leader may lose
/// acknowledged messages (docs/BENCHMARKS.md has the figures). Run with
/// `--ignored`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a documentation run: acks=1 may lose acknowledged writes on a leader crash"]
async fn acks_1_producer_across_broker_failover_documents_what_is_lost() {
    let f = run("1").await;
    assert!(f.verdict.acked > 0);
}

/// acks=1 made to lose on purpose, as a documentation run: both followers
/// of partition 0 are paused while its leader keeps acknowledging alone,
/// then the leader is killed and the followers resumed. The controller
/// elects a follower from the ISR (it was paused for less than a session
/// timeout, so it is still a live ISR member), whose log lacks everything
/// the leader acknowledged meanwhile. Prints how much was lost; asserts only
/// that the producer carried on. With acks=all the leader could not have
/// acknowledged those writes at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a documentation run: shows acks=1 losing acknowledged writes"]
async fn acks_1_loses_the_writes_only_a_crashed_leader_had() {
    let (mut cluster, producer) = setup("1").await;

    let leader = leader_of(&cluster, 0);
    let followers: Vec<i64> = (1..=3).filter(|b| *b != leader).collect();
    for f in &followers {
        cluster.pause_broker(*f);
    }
    let base = producer.acks_per_partition();
    let t_alone = unix_now();
    cluster.wait_partition_acks(&producer, 0, &base, 100, LONG).await;
    let alone = producer.acks_per_partition()[&0] - base[&0];
    cluster.kill_broker(leader);
    for f in &followers {
        cluster.resume_broker(*f);
    }
    let base = producer.acks_per_partition();
    cluster.wait_acks(&producer, "acks on every partition after the crash", PARTITIONS, &base, PROGRESS, LONG).await;
    let (_, v) = finish(&cluster, producer).await;
    let lost_after = v.lost.len();
    println!("=== kafka acks=1 loss demonstration ===");
    println!(
        "acked by the leader alone while its followers were paused: {alone} (from t={t_alone:.3}); \
         sent {} acked {} read {} lost {lost_after} duplicates {}",
        v.sent, v.acked, v.read, v.duplicates
    );
}
