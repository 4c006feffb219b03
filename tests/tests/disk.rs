//! Disk faults on the real controller binary: the faultfs LD_PRELOAD shim
//! (`tests/faultfs/faultfs.c`, driven through `Cluster::disk_fail` /
//! `disk_stall` / `disk_ok`) makes a controller's fsyncs fail with EIO or
//! stall, and a byte of a stopped controller's `raft.redb` is flipped. Each
//! test names the property it proves (docs/SAFETY.md, durability; issue 3:
//! "an fsync that fails or stalls must never lead to an acknowledged change
//! being lost or a corrupt node leading").

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use baton_tests::nemesis::client::{Api, WriteOutcome};
use baton_tests::{Cluster, ClusterOptions, LONG, agents_agree, create_topic};
use serde_json::Value;

const ALL_DISKS: [usize; 3] = [0, 1, 2];

/// What the writers saw: names whose create was acknowledged, and names
/// whose create ended without a definite answer (may or may not exist).
#[derive(Debug, Default)]
struct Writes {
    acked: Vec<String>,
    ambiguous: Vec<String>,
    refused: Vec<String>,
}

impl Writes {
    fn merge(&mut self, other: Writes) {
        self.acked.extend(other.acked);
        self.ambiguous.extend(other.ambiguous);
        self.refused.extend(other.refused);
    }
}

/// `n` concurrent writers creating topics `{prefix}-{w}-{i}` (1 partition,
/// replication factor 1) one after the other, 10 ms apart, until stopped
/// (bounded: at most 2000 creates each, i.e. 20 s and more). The count of
/// acknowledged creates is shared.
struct Writers {
    stop: Arc<AtomicBool>,
    acked: Arc<std::sync::atomic::AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<Writes>>,
}

impl Writers {
    fn start(api: &Api, prefix: &str, n: usize) -> Writers {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let tasks = (0..n)
            .map(|w| {
                let (api, stop, acked, prefix) = (api.clone(), stop.clone(), acked.clone(), prefix.to_string());
                tokio::spawn(async move {
                    let mut out = Writes::default();
                    for i in 0..2000 {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let name = format!("{prefix}-{w}-{i}");
                        match api.create_topic(&name, 1, 1).await {
                            WriteOutcome::Done(_) => {
                                acked.fetch_add(1, Ordering::Relaxed);
                                out.acked.push(name);
                            }
                            // A retry (on another controller) of a create that did
                            // commit meets AlreadyExists: unknown from the client's side.
                            WriteOutcome::Refused(s) if s.code() == tonic::Code::AlreadyExists => {
                                out.ambiguous.push(name)
                            }
                            WriteOutcome::Refused(_) => out.refused.push(name),
                            WriteOutcome::Ambiguous(_) => {
                                out.ambiguous.push(name);
                                // No live leader yet: do not spin.
                                tokio::time::sleep(Duration::from_millis(50)).await;
                            }
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    out
                })
            })
            .collect();
        Writers { stop, acked, tasks }
    }

    fn acked(&self) -> usize {
        self.acked.load(Ordering::Relaxed)
    }

    /// Waits until `n` more creates than now are acknowledged (within LONG).
    async fn wait_more_acked(&self, n: usize, what: &str) {
        let target = self.acked() + n;
        baton_tests::wait_for(what, LONG, async || (self.acked() >= target).then_some(())).await;
    }

    async fn finish(self) -> Writes {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Writes::default();
        for t in self.tasks {
            all.merge(t.await.expect("writer task"));
        }
        all
    }
}

/// Topic names served by controller `index` from its own state (not linearizable).
fn local_topics(cluster: &Cluster, index: usize) -> Option<BTreeSet<String>> {
    let list = cluster.batonctl_json_at(cluster.controller_addr(index), &["topic", "list"]).ok()?;
    Some(list.as_array()?.iter().filter_map(|t| t["name"].as_str().map(str::to_string)).collect())
}

/// Waits until every controller in `controllers` serves every name of `must` from its own state.
async fn present_everywhere(cluster: &Cluster, controllers: &[usize], must: &BTreeSet<String>) {
    for &c in controllers {
        let what = format!("controller-{} to hold all {} acknowledged topics", c + 1, must.len());
        cluster
            .wait_until(&what, LONG, || {
                let have = local_topics(cluster, c)?;
                must.is_subset(&have).then_some(())
            })
            .await;
    }
}

/// Linearizable list through the quorum.
fn linearizable_topics(cluster: &Cluster) -> BTreeSet<String> {
    let list = cluster.batonctl_json(&["topic", "list", "--linearizable"]).expect("linearizable topic list");
    list.as_array().expect("array").iter().filter_map(|t| t["name"].as_str().map(str::to_string)).collect()
}

fn raft_leader_at(cluster: &Cluster, index: usize) -> Option<u64> {
    let q = cluster.batonctl_json_at(cluster.controller_addr(index), &["quorum", "status"]).ok()?;
    q["leader"].as_u64().filter(|l| *l >= 1)
}

/// Waits until a controller other than `old` leads, as seen by the others.
async fn new_leader(cluster: &Cluster, old: usize) -> usize {
    cluster
        .wait_until("another controller to lead", LONG, || {
            let others: Vec<usize> = (0..3).filter(|&i| i != old).collect();
            let l = raft_leader_at(cluster, others[0])?;
            (l as usize - 1 != old && raft_leader_at(cluster, others[1]) == Some(l)).then(|| l as usize - 1)
        })
        .await
}

fn assert_failed_on_disk(cluster: &Cluster, index: usize, status: std::process::ExitStatus) {
    let log = cluster.log_of(&format!("controller-{}", index + 1));
    assert!(!status.success(), "controller-{} exited successfully after its fsync failed", index + 1);
    assert!(
        log.contains("faultfs: ") && log.contains("injected EIO"),
        "the fault never hit controller-{}:\n{log}",
        index + 1
    );
    assert!(log.contains("raft driver failed"), "controller-{} did not stop on the storage error:\n{log}", index + 1);
    // Nothing after the failure: no role change, no vote, no leadership.
    let after = &log[log.find("injected EIO").expect("fault line")..];
    assert!(
        !after.contains("raft role changed"),
        "controller-{} changed role after its disk failed:\n{after}",
        index + 1
    );
}

fn all_alive(cluster: &Cluster) -> bool {
    cluster.brokers().ok().and_then(|b| b.as_array().map(|a| a.iter().all(|b| b["state"] == "ALIVE"))).unwrap_or(false)
}

/// fsync failing on a FOLLOWER controller: it stops (exits non-zero, and
/// takes no further part: no role change after the failure); the other two
/// keep committing; restarted with a healthy disk it catches up; every
/// acknowledged create (before, during, after) is on every controller.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_fsync_failure_stops_it_and_the_quorum_keeps_every_acknowledged_change() {
    let started = Instant::now();
    let mut cluster = Cluster::start(ClusterOptions { faulty_disks: ALL_DISKS.to_vec(), ..Default::default() }).await;
    let leader = cluster.wait_for_quorum(LONG).await;
    let follower = (leader + 1) % 3;
    let api = Api::new((0..3).map(|i| cluster.controller_addr(i).to_string()).collect());
    let mut must: BTreeSet<String> = BTreeSet::new();
    for i in 0..3 {
        create_topic(&cluster, &format!("before-{i}"), 1, 1);
        must.insert(format!("before-{i}"));
    }

    let writers = Writers::start(&api, "during", 2);
    writers.wait_more_acked(3, "creates to flow").await;
    cluster.disk_fail(follower);
    let status = cluster.wait_controller_exit(follower, LONG).await;
    eprintln!("controller-{} (follower) exited with {status} {:.1?} in", follower + 1, started.elapsed());
    assert_failed_on_disk(&cluster, follower, status);
    writers.wait_more_acked(10, "the two healthy controllers to keep committing").await;
    let leader_now = raft_leader_at(&cluster, leader).map(|l| l as usize - 1);
    eprintln!("leader before the fault: controller-{}, after: {:?}", leader + 1, leader_now.map(|l| l + 1));
    let writes = writers.finish().await;
    eprintln!(
        "writes while the follower failed: {} acknowledged, {} ambiguous, {} refused",
        writes.acked.len(),
        writes.ambiguous.len(),
        writes.refused.len()
    );
    assert!(writes.refused.is_empty(), "creates refused: {:?}", writes.refused);
    must.extend(writes.acked.iter().cloned());
    assert_eq!(cluster.controller_exit_status(follower), Some(status), "the failed controller came back by itself");

    cluster.disk_ok(follower);
    cluster.restart_controller(follower);
    for i in 0..3 {
        create_topic(&cluster, &format!("after-{i}"), 1, 1);
        must.insert(format!("after-{i}"));
    }
    present_everywhere(&cluster, &[0, 1, 2], &must).await;
    assert!(linearizable_topics(&cluster).is_superset(&must));
    assert!(cluster.controller_exit_status(follower).is_none(), "the restarted controller stopped again");
    eprintln!("follower fsync failure: {:.1?}", started.elapsed());
}

/// fsync failing on the LEADER controller: it stops (exits non-zero, no
/// role change after the failure); another controller takes over; every
/// acknowledged create is present, and a create in flight when the fault
/// hit either failed at the client or, if acknowledged, is present (never
/// acknowledged then lost); agents follow the new leader and every broker
/// keeps (or regains) its partitions; the old leader, restarted with a
/// healthy disk, catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_fsync_failure_hands_over_without_losing_an_acknowledged_change() {
    let started = Instant::now();
    let mut cluster = Cluster::start(ClusterOptions { faulty_disks: ALL_DISKS.to_vec(), ..Default::default() }).await;
    let leader = cluster.wait_for_quorum(LONG).await;
    let api = Api::new((0..3).map(|i| cluster.controller_addr(i).to_string()).collect());
    let before_doc = create_topic(&cluster, "owned", 6, 3);
    let before = agents_agree(&cluster, "owned", &[0, 1, 2]).await;
    let epochs_before = broker_epochs(&cluster);

    // Three writers, so several creates are in flight when the disk fails.
    let writers = Writers::start(&api, "inflight", 3);
    writers.wait_more_acked(6, "creates to flow").await;
    cluster.disk_fail(leader);
    let status = cluster.wait_controller_exit(leader, LONG).await;
    let exited_at = Instant::now();
    eprintln!("controller-{} (leader) exited with {status} {:.1?} in", leader + 1, started.elapsed());
    assert_failed_on_disk(&cluster, leader, status);
    let successor = new_leader(&cluster, leader).await;
    eprintln!("controller-{} took over at {:.1?}", successor + 1, started.elapsed());
    writers.wait_more_acked(10, "creates to commit under the new leader").await;
    let writes = writers.finish().await;
    eprintln!(
        "writes around the leader's failure: {} acknowledged, {} ambiguous, {} refused",
        writes.acked.len(),
        writes.ambiguous.len(),
        writes.refused.len()
    );
    assert!(writes.refused.is_empty(), "creates refused: {:?}", writes.refused);

    let present = linearizable_topics(&cluster);
    let lost: Vec<&String> = writes.acked.iter().filter(|n| !present.contains(*n)).collect();
    assert!(lost.is_empty(), "acknowledged creates lost after the leader's disk failed: {lost:?}");
    let ambiguous_present = writes.ambiguous.iter().filter(|n| present.contains(*n)).count();
    eprintln!(
        "ambiguous creates: {} committed anyway, {} not",
        ambiguous_present,
        writes.ambiguous.len() - ambiguous_present
    );
    let after = cluster.describe("owned").expect("describe");
    assert_eq!(after["topic_id"], before_doc["topic_id"]);

    // Agents follow the new leader and hold a lease it granted (any lease
    // the dead leader granted has run out 1.5 s after it died); brokers keep
    // their partitions (a move would need a fence: a broker not ALIVE).
    let lease = Duration::from_millis(1_600);
    for a in 0..3 {
        let what = format!("agent {a} to hold a lease from the new leader, controller-{}", successor + 1);
        baton_tests::wait_for(&what, LONG, async || {
            let s = cluster.agent_status(a).await.ok()?;
            // controller_id is 0 when the agent reached the controller from
            // its list rather than through a leader hint.
            (s.connected
                && s.controller_id as usize != leader + 1
                && s.lease_remaining_ms > 0
                && exited_at.elapsed() > lease)
                .then_some(())
        })
        .await;
    }
    eprintln!("every agent holds a lease from the new leader {:.1?} after the old one died", exited_at.elapsed());
    let view = agents_agree(&cluster, "owned", &[0, 1, 2]).await;
    cluster.wait_until("every broker ALIVE under the new leader", LONG, || all_alive(&cluster).then_some(())).await;
    let moved: Vec<_> = view.iter().filter(|(p, v)| before.get(p) != Some(v)).collect();
    let epochs_after = broker_epochs(&cluster);
    eprintln!("partition leadership moved: {moved:?}; broker epochs {epochs_before:?} -> {epochs_after:?}");
    assert!(
        moved.is_empty() || epochs_before != epochs_after,
        "partitions moved without a fence (broker epochs unchanged): {moved:?}"
    );

    // The old leader, back on a healthy disk, catches up with everything.
    cluster.disk_ok(leader);
    cluster.restart_controller(leader);
    let mut must: BTreeSet<String> = writes.acked.iter().cloned().collect();
    must.insert("owned".into());
    create_topic(&cluster, "after-restart", 1, 1);
    must.insert("after-restart".into());
    present_everywhere(&cluster, &[0, 1, 2], &must).await;
    eprintln!("leader fsync failure: {:.1?}", started.elapsed());
}

/// (leader broker, leader epoch) of a partition.
type LeaderAndEpoch = (i64, i64);

/// What a stall looked like from outside.
#[derive(Debug, Default)]
struct StallObservations {
    /// (controller, the raft leader it reports), each time that changes.
    leaders: Vec<(usize, Option<u64>)>,
    /// Per agent: the least lease remaining seen, and about how long (ms) it was 0.
    min_lease_ms: BTreeMap<usize, u64>,
    zero_lease_ms: BTreeMap<usize, u64>,
    /// Per agent: the controllers it held its session with.
    sessions: BTreeMap<usize, BTreeSet<u64>>,
    /// Brokers seen in a state other than ALIVE, with the instant (ms after the fault began).
    not_alive: BTreeMap<i32, (i32, u128)>,
    /// Partitions of the watched topic that moved: (partition, before, after).
    moved: Vec<(i64, LeaderAndEpoch, LeaderAndEpoch)>,
    epochs_before: Vec<Value>,
    epochs_after: Vec<Value>,
    acked: usize,
    ambiguous: usize,
    refused: usize,
    stalled_syncs: usize,
}

impl StallObservations {
    fn fenced(&self) -> bool {
        !self.not_alive.is_empty() || self.epochs_before != self.epochs_after
    }
}

fn broker_epochs(cluster: &Cluster) -> Vec<Value> {
    cluster.brokers().expect("brokers").as_array().expect("brokers").iter().map(|b| b["epoch"].clone()).collect()
}

/// The stall scenario: 3 controllers (all with the shim), 3 agents, a topic
/// of 6 partitions over the 3 brokers, two writers creating topics; the
/// leader's syncs stall `stall_ms` each for `window`, then heal; observed
/// for twice the window after. Asserts the safety properties: no
/// acknowledged create lost, no refused create committed, every agent
/// agrees with the controller afterwards, and a partition moves only with
/// a committed fence.
async fn leader_stall(stall_ms: u64, window: Duration) -> StallObservations {
    let started = Instant::now();
    let cluster = Cluster::start(ClusterOptions { faulty_disks: ALL_DISKS.to_vec(), ..Default::default() }).await;
    let leader = cluster.wait_for_quorum(LONG).await;
    let api = Api::new((0..3).map(|i| cluster.controller_addr(i).to_string()).collect());
    create_topic(&cluster, "stalled", 6, 3);
    let before = agents_agree(&cluster, "stalled", &[0, 1, 2]).await;
    let mut obs = StallObservations { epochs_before: broker_epochs(&cluster), ..Default::default() };

    let writers = Writers::start(&api, "stall", 2);
    writers.wait_more_acked(4, "creates to flow").await;
    cluster.disk_stall(leader, stall_ms);
    let fault_started = Instant::now();
    let per_controller: Vec<Api> = (0..3).map(|i| Api::new(vec![cluster.controller_addr(i).to_string()])).collect();
    let mut last_leader: BTreeMap<usize, Option<u64>> = BTreeMap::new();
    let mut last_sample = Instant::now();
    let mut healed = false;
    // Bounded by time: the window, then twice as long again healed.
    while fault_started.elapsed() < window * 3 {
        if !healed && fault_started.elapsed() >= window {
            cluster.disk_ok(leader);
            healed = true;
        }
        let dt = last_sample.elapsed().as_millis() as u64;
        last_sample = Instant::now();
        for a in 0..3 {
            match tokio::time::timeout(Duration::from_millis(300), cluster.agent_status(a)).await {
                Ok(Ok(s)) => {
                    let m = obs.min_lease_ms.entry(a).or_insert(u64::MAX);
                    *m = (*m).min(s.lease_remaining_ms);
                    if s.lease_remaining_ms == 0 {
                        *obs.zero_lease_ms.entry(a).or_default() += dt;
                    }
                    obs.sessions.entry(a).or_default().insert(s.controller_id);
                }
                Ok(Err(e)) => eprintln!("agent {a} status: {e:#}"),
                Err(_) => eprintln!("agent {a} status: no answer in 300 ms"),
            }
        }
        for (c, api) in per_controller.iter().enumerate() {
            let l = tokio::time::timeout(Duration::from_millis(300), api.leader()).await.ok().flatten();
            if last_leader.get(&c) != Some(&l) {
                last_leader.insert(c, l);
                obs.leaders.push((c + 1, l));
            }
        }
        let brokers =
            tokio::time::timeout(Duration::from_millis(300), api.list_brokers(Duration::from_millis(300))).await;
        if let Ok(Ok(b)) = brokers {
            for broker in b.brokers.iter().filter(|b| b.state != 1) {
                obs.not_alive.entry(broker.id).or_insert((broker.state, fault_started.elapsed().as_millis()));
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    writers.wait_more_acked(5, "creates to commit after the stall").await;
    let writes = writers.finish().await;
    obs.stalled_syncs = cluster.log_of(&format!("controller-{}", leader + 1)).matches("injected stall").count();
    (obs.acked, obs.ambiguous, obs.refused) = (writes.acked.len(), writes.ambiguous.len(), writes.refused.len());
    assert!(obs.stalled_syncs >= 1, "the stall never hit the leader's disk");

    let present = linearizable_topics(&cluster);
    let lost: Vec<&String> = writes.acked.iter().filter(|n| !present.contains(*n)).collect();
    assert!(lost.is_empty(), "acknowledged creates lost after the stall: {lost:?}");
    let committed_refusals: Vec<&String> = writes.refused.iter().filter(|n| present.contains(*n)).collect();
    assert!(committed_refusals.is_empty(), "creates refused for good yet committed: {committed_refusals:?}");
    let must: BTreeSet<String> = writes.acked.iter().cloned().collect();
    present_everywhere(&cluster, &[0, 1, 2], &must).await;

    let after = agents_agree(&cluster, "stalled", &[0, 1, 2]).await;
    cluster.wait_until("every broker ALIVE after the stall", LONG, || all_alive(&cluster).then_some(())).await;
    obs.epochs_after = broker_epochs(&cluster);
    obs.moved = after.iter().filter(|(p, v)| before.get(p) != Some(v)).map(|(p, v)| (*p, before[p], *v)).collect();
    assert!(obs.moved.is_empty() || obs.fenced(), "partitions moved without any broker being fenced: {:?}", obs.moved);
    eprintln!(
        "leader controller-{} stalled {stall_ms} ms per sync for {window:?} ({:.1?} in all): {obs:#?}",
        leader + 1,
        started.elapsed()
    );
    obs
}

/// fsync stalls (1500 ms per sync) on the LEADER for 3 s while writes
/// flow: no acknowledged create is lost, no refused create commits, and a
/// broker loses partitions only through a committed fence; afterwards every
/// agent agrees with the controller. Observed (printed, not asserted):
/// leadership stays put, the stalled leader stops granting leases (no
/// quorum contact), agents abandon their sessions, and fast failover fences
/// them (see `leader_fsync_stall_fences_no_live_broker`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_fsync_stall_loses_no_acknowledged_change() {
    leader_stall(1_500, Duration::from_secs(3)).await;
}

/// The liveness half of the stall: a disk stall on the controller leader
/// should not fence healthy brokers.
///
/// BUG (product, not fixed here): while the leader's driver is blocked in
/// fsync it has no fresh quorum contact, so `on_heartbeat` sends no ack at
/// all; after max(lease, rpc timeout) each agent abandons the session
/// ("no ack for the longer of the last lease and the rpc timeout"), and the
/// leader's session handler takes that close for a dead broker and fences
/// it at once (fast failover, reason Disconnected). Every broker is fenced
/// and every partition moves, because of a slow controller disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_fsync_stall_fences_no_live_broker() {
    let obs = leader_stall(1_500, Duration::from_secs(3)).await;
    assert!(!obs.fenced() && obs.moved.is_empty(), "healthy brokers fenced by a controller disk stall: {obs:#?}");
}

/// All offsets of `needle` in `haystack`.
fn find_all(haystack: &[u8], needle: &[u8]) -> Vec<usize> {
    haystack.windows(needle.len()).enumerate().filter(|(_, w)| *w == needle).map(|(i, _)| i).collect()
}

/// A controller restarted on a corrupted `raft.redb` (one byte flipped in
/// every copy of a committed record while it was stopped) refuses to start:
/// it exits non-zero with an error naming the corruption, so a corrupt node
/// never votes or leads; the other two keep serving every topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_raft_log_is_refused_at_start() {
    let started = Instant::now();
    let mut cluster = Cluster::start(ClusterOptions { agents: 1, ..Default::default() }).await;
    let leader = cluster.wait_for_quorum(LONG).await;
    let victim = (leader + 1) % 3;
    for i in 0..5 {
        create_topic(&cluster, &format!("precious-{i}"), 1, 1);
    }
    let all: BTreeSet<String> = (0..5).map(|i| format!("precious-{i}")).collect();
    present_everywhere(&cluster, &[victim], &all).await;
    cluster.kill_controller(victim);

    let file = cluster.controller_data_dir(victim).join("raft.redb");
    let bytes = std::fs::read(&file).expect("read raft.redb");
    let hits = find_all(&bytes, b"precious-2");
    assert!(!hits.is_empty(), "the record of precious-2 is not in {} ({} bytes)", file.display(), bytes.len());
    for &at in &hits {
        // The last character of the name: inside the record, never a length.
        baton_tests::faults::flip_byte(&file, (at + "precious-2".len() - 1) as u64);
    }
    eprintln!("flipped a byte in {} copies of the precious-2 record in {}", hits.len(), file.display());

    let log_before = cluster.log_of(&format!("controller-{}", victim + 1)).len();
    cluster.restart_controller(victim);
    let deadline = Instant::now() + LONG;
    let outcome = loop {
        if let Some(status) = cluster.controller_exit_status(victim) {
            break Ok(status);
        }
        if Instant::now() >= deadline {
            break Err(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let log = cluster.log_of(&format!("controller-{}", victim + 1));
    let since_restart = &log[log_before.min(log.len())..];
    match outcome {
        Ok(status) => {
            eprintln!("the corrupt controller refused to start: {status}");
            assert!(!status.success());
            let lower = since_restart.to_lowercase();
            assert!(
                lower.contains("corrupt") || lower.contains("checksum"),
                "exit without naming corruption:\n{since_restart}"
            );
            assert!(!since_restart.contains("raft role changed role=Leader"), "a corrupt node led:\n{since_restart}");
        }
        Err(()) => panic!("controller-{} runs on a corrupted log (no exit within {LONG:?}):\n{log}", victim + 1),
    }
    // The two healthy controllers still serve everything.
    assert!(linearizable_topics(&cluster).is_superset(&all));
    eprintln!("corrupt log at start: {:.1?}", started.elapsed());
}
