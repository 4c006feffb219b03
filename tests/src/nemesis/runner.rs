//! Runs one seeded schedule against a [`NemesisCluster`] and checks the
//! history.
//!
//! 1. Start the cluster (3 controllers, 3 nemesis brokers, proxies on every
//!    link) and create two topics, so brokers write from the start.
//! 2. While a metadata workload creates and deletes topics and a watcher
//!    follows `WatchLeadership`, apply the schedule's faults one after the
//!    other: inject (a `nemesis` event), hold for the fault's duration, heal
//!    it, stay quiet for the gap.
//! 3. Stop the workload, heal everything (`healed`), poll linearizable
//!    describes and record `leader_present` for each partition once it has
//!    a leader; keep the history running until the liveness bound has
//!    passed, settle ambiguous metadata writes, and record `final_state`.
//! 4. Stop the brokers, merge every history file and run the checker.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::checker::{CheckerConfig, Report, check};
use super::client::Api;
use super::clock::monotonic_ns;
use super::cluster::{NemesisCluster, NemesisOptions};
use super::history::{Event, PartitionState, Recorder, TopicState, parse_jsonl};
use super::membership::{ChurnStats, churn};
use super::more_faults::{RejoinState, inject_more};
use super::proxy::Direction;
use super::schedule::{Fault, FaultKind, schedule_with};
use super::workload::{MetadataStats, MetadataWorkload, watch_leadership};

#[derive(Clone, Debug)]
pub struct RunConfig {
    pub seed: u64,
    /// Faults in the schedule.
    pub faults: usize,
    pub checker: CheckerConfig,
    /// Keep the cluster folder even when the run is clean.
    pub keep_dir: bool,
    /// Add and remove a 4th controller in rounds while the faults run.
    pub membership: bool,
    /// Also draw the extended fault kinds (link delays).
    pub extended: bool,
    /// Also draw `FaultKind::MORE` (proxy loss, fsync failures and stalls,
    /// a founding controller removed and rejoined); the controllers then
    /// run with the faultfs shim.
    pub more: bool,
    /// Also draw `FaultKind::NETNS` (kernel loss, delay and one-way drops);
    /// the brokers then run in network namespaces. Root only: check
    /// `netns::unavailable()` first.
    pub netns: bool,
}

impl RunConfig {
    pub fn new(seed: u64, faults: usize) -> RunConfig {
        RunConfig {
            seed,
            faults,
            checker: CheckerConfig::default(),
            keep_dir: false,
            membership: false,
            extended: false,
            more: false,
            netns: false,
        }
    }

    /// The kinds this run's schedule is drawn from. ALL alone, and ALL +
    /// EXTENDED, give the schedules those seeds always had.
    pub fn kinds(&self) -> Vec<FaultKind> {
        let mut kinds = FaultKind::ALL.to_vec();
        if self.extended {
            kinds.extend(FaultKind::EXTENDED);
        }
        if self.more {
            kinds.extend(FaultKind::MORE);
        }
        if self.netns {
            kinds.extend(FaultKind::NETNS);
        }
        kinds
    }
}

/// What one run did and what the checker said.
pub struct RunOutcome {
    pub seed: u64,
    pub schedule: Vec<Fault>,
    pub report: Report,
    pub writes_accepted: u64,
    pub writes_refused: u64,
    pub observed: u64,
    pub metadata: MetadataStats,
    /// History lines that did not parse (torn by a kill; expected 0).
    pub bad_lines: usize,
    /// Membership rounds, when the run had them.
    pub membership: Option<ChurnStats>,
    /// The cluster folder, when kept (violations, or asked for).
    pub kept: Option<PathBuf>,
    pub elapsed: Duration,
    /// What the MORE and NETNS faults did (from their `nemesis` events).
    pub hits: FaultHits,
}

/// Evidence that the MORE and NETNS faults hit, read from the `healed …`
/// and `remove-rejoin` events they record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultHits {
    /// Controllers that stopped on a failed fsync (and were restarted).
    pub fsync_stops: u64,
    /// Disk failures during which the controller had nothing to sync.
    pub fsync_idle: u64,
    /// Founding controllers removed, wiped and voters again.
    pub rejoined: u64,
    /// Rejoin steps that gave up (removal refused, add-back retried).
    pub rejoin_gave_up: u64,
    /// Chunks the proxies held for a retransmission timeout.
    pub chunks_lost: u64,
    /// Packets the kernel rules dropped.
    pub packets_dropped: u64,
}

impl FaultHits {
    pub fn add(&mut self, o: &FaultHits) {
        self.fsync_stops += o.fsync_stops;
        self.fsync_idle += o.fsync_idle;
        self.rejoined += o.rejoined;
        self.rejoin_gave_up += o.rejoin_gave_up;
        self.chunks_lost += o.chunks_lost;
        self.packets_dropped += o.packets_dropped;
    }

    /// Reads the runner's `nemesis` events.
    pub fn from_events(events: &[Event]) -> FaultHits {
        let mut h = FaultHits::default();
        let number_before = |what: &str, marker: &str| -> u64 {
            what.split(marker).next().and_then(|s| s.rsplit(' ').next()).and_then(|n| n.parse().ok()).unwrap_or(0)
        };
        for e in events {
            let Event::Nemesis { what, .. } = e else { continue };
            if what.contains("stopped on its failed fsync") {
                h.fsync_stops += 1;
            } else if what.contains("had no fsync to fail") {
                h.fsync_idle += 1;
            } else if what.contains("is a voter again") || what.ends_with("added back after the heal: true") {
                h.rejoined += 1;
            } else if (what.starts_with("remove-rejoin") && what.contains("gave up"))
                || what.contains("could not be removed")
            {
                h.rejoin_gave_up += 1;
            } else if what.starts_with("healed ") && what.contains(" chunks lost") {
                h.chunks_lost += number_before(what, " chunks lost");
            } else if what.starts_with("healed ") && what.contains(" packets dropped") {
                h.packets_dropped += number_before(what, " packets dropped");
            }
        }
        h
    }
}

impl RunOutcome {
    pub fn faults_by_kind(&self) -> BTreeMap<FaultKind, u64> {
        let mut m = BTreeMap::new();
        for f in &self.schedule {
            *m.entry(f.kind).or_default() += 1;
        }
        m
    }
}

pub async fn run(config: &RunConfig) -> anyhow::Result<RunOutcome> {
    let started = tokio::time::Instant::now();
    let faults = schedule_with(config.seed, config.faults, 3, 3, &config.kinds());
    let options =
        NemesisOptions { seed: config.seed, faulty_disks: config.more, netns: config.netns, ..Default::default() };
    let mut cluster = NemesisCluster::start(options).await?;
    let runner_file = cluster.dir.path().join("runner.jsonl");
    let rec = Arc::new(Recorder::create(&runner_file)?);
    let api = cluster.api();
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = tokio::spawn(watch_leadership(api.clone(), rec.clone(), stop.clone()));

    let mut workload = MetadataWorkload::new(api.clone(), rec.clone(), config.seed);
    workload.create().await;
    workload.create().await;
    let stop_workload = Arc::new(AtomicBool::new(false));
    let metadata = {
        let stop = stop_workload.clone();
        tokio::spawn(async move {
            // Bounded: at most one operation per 600 ms until stopped, and a hard cap.
            for _ in 0..10_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                workload.step().await;
                tokio::time::sleep(Duration::from_millis(600)).await;
            }
            workload
        })
    };

    let stop_churn = Arc::new(AtomicBool::new(false));
    let churn = config.membership.then(|| {
        let dir = cluster.dir.path().to_path_buf();
        let addrs = cluster.controller_addrs.clone();
        tokio::spawn(churn(dir, addrs, rec.clone(), stop_churn.clone(), config.seed))
    });

    let mut rejoin = RejoinState::default();
    for fault in &faults {
        if FaultKind::MORE.contains(&fault.kind) || FaultKind::NETNS.contains(&fault.kind) {
            inject_more(&mut cluster, &api, &rec, fault, &mut rejoin).await;
        } else {
            inject(&mut cluster, &api, &rec, fault).await;
        }
        tokio::time::sleep(fault.gap).await;
    }

    let phase = |what: &str| eprintln!("seed {}: {what} at {:.1?}", config.seed, started.elapsed());
    phase("faults done");
    stop_churn.store(true, Ordering::Release);
    let membership = match churn {
        Some(task) => Some(task.await?),
        None => None,
    };
    if let Some(stats) = membership {
        phase(&format!("membership rounds done: {stats:?}"));
    }
    stop_workload.store(true, Ordering::Relaxed);
    let mut workload = metadata.await?;
    phase("workload stopped");
    cluster.heal_all();
    // A founding controller removed by a rejoin fault whose add-back did
    // not go through is added back now (before the heal is declared).
    rejoin.finish(&mut cluster, &rec).await;
    let healed_at = monotonic_ns();
    rec.record(&Event::Healed { t_ns: healed_at, live_brokers: None })?;
    let bound = config.checker.liveness_bound;
    let deadline = tokio::time::Instant::now() + bound + Duration::from_millis(500);
    // Settle ambiguous writes first: the topics they leave decide what must have a leader.
    for _ in 0..20 {
        if workload.resolve(Duration::from_secs(3)).await {
            break;
        }
    }
    anyhow::ensure!(
        workload.unresolved() == 0,
        "{} metadata writes still ambiguous after the heal",
        workload.unresolved()
    );
    phase("ambiguous writes settled");
    poll_leaders(&api, &rec, deadline).await;
    phase("leaders present");
    tokio::time::sleep_until(deadline).await;
    record_final_state(&api, &rec).await?;
    phase("final state");
    stop.store(true, Ordering::Relaxed);
    let observed = watcher.await.unwrap_or(0);
    cluster.stop_brokers();
    rec.flush()?;

    let mut files = cluster.history_files();
    files.push(runner_file);
    let (events, bad_lines) = merge(&files)?;
    let writes_accepted = events.iter().filter(|e| matches!(e, Event::WriteAccepted { .. })).count() as u64;
    let writes_refused = events.iter().filter(|e| matches!(e, Event::WriteRefused { .. })).count() as u64;
    let hits = FaultHits::from_events(&events);
    let report = check(events, &config.checker);
    phase("checked");
    let kept = (!report.is_ok() || config.keep_dir).then(|| {
        cluster.keep_dir();
        cluster.dir.path().to_path_buf()
    });
    Ok(RunOutcome {
        seed: config.seed,
        schedule: faults,
        report,
        writes_accepted,
        writes_refused,
        observed,
        metadata: workload.stats,
        bad_lines,
        membership,
        kept,
        elapsed: started.elapsed(),
        hits,
    })
}

pub(super) async fn nemesis(rec: &Recorder, what: String) {
    eprintln!("nemesis: {what}");
    let _ = rec.record(&Event::Nemesis { t_ns: monotonic_ns(), what });
}

/// Injects one fault, holds it for its duration, and heals it.
pub async fn inject(cluster: &mut NemesisCluster, api: &Api, rec: &Recorder, fault: &Fault) {
    let n = cluster.controllers();
    let k = fault.broker;
    match fault.kind {
        FaultKind::KillBroker => {
            nemesis(rec, format!("{fault}")).await;
            cluster.kill_broker(k);
            tokio::time::sleep(fault.duration).await;
            cluster.restart_broker(k);
        }
        FaultKind::KillActiveController | FaultKind::KillFollowerController => {
            // A leader outside the first `n` (the membership churn's 4th
            // controller) is not ours to kill: pick by the schedule instead.
            let leader = api.leader().await.map(|id| id as usize - 1).filter(|l| *l < n);
            let target = match (fault.kind, leader) {
                (FaultKind::KillActiveController, Some(l)) => l,
                (_, Some(l)) => (l + 1 + fault.a % (n - 1)) % n,
                (_, None) => fault.a,
            };
            nemesis(rec, format!("{fault}: controller-{} (leader {leader:?})", target + 1)).await;
            cluster.kill_controller(target);
            tokio::time::sleep(fault.duration).await;
            cluster.restart_controller(target);
        }
        FaultKind::PauseBrokerShort | FaultKind::PauseBrokerMedium | FaultKind::PauseBrokerLong => {
            nemesis(rec, format!("{fault}")).await;
            cluster.pause_broker(k);
            tokio::time::sleep(fault.duration).await;
            cluster.resume_broker(k);
        }
        FaultKind::CutAgentBoth | FaultKind::CutAgentToController | FaultKind::CutAgentFromController => {
            let dir = match fault.kind {
                FaultKind::CutAgentToController => Some(Direction::ClientToTarget),
                FaultKind::CutAgentFromController => Some(Direction::TargetToClient),
                _ => None,
            };
            let open = cluster.cut_agent(k, dir);
            nemesis(rec, format!("{fault} ({open} connections held)")).await;
            tokio::time::sleep(fault.duration).await;
            cluster.heal_links();
        }
        FaultKind::CutControllersBoth | FaultKind::CutControllersOneWay => {
            let open = cluster.cut_controllers(fault.a, fault.b, fault.kind == FaultKind::CutControllersBoth);
            nemesis(rec, format!("{fault} ({open} connections held)")).await;
            tokio::time::sleep(fault.duration).await;
            cluster.heal_links();
        }
        FaultKind::DelayAgent => {
            nemesis(rec, format!("{fault}")).await;
            cluster.delay_agent(k, fault.delay);
            tokio::time::sleep(fault.duration).await;
            cluster.heal_links();
        }
        FaultKind::DelayControllers => {
            nemesis(rec, format!("{fault}")).await;
            cluster.delay_controllers(fault.a, fault.b, fault.delay);
            tokio::time::sleep(fault.duration).await;
            cluster.heal_links();
        }
        _ => inject_more(cluster, api, rec, fault, &mut RejoinState::default()).await,
    }
}

/// Records `leader_present` for each partition of every topic the first
/// time a linearizable describe shows it with a leader, until all have one
/// or `deadline`.
async fn poll_leaders(api: &Api, rec: &Recorder, deadline: tokio::time::Instant) {
    let mut present: BTreeSet<(String, i32)> = BTreeSet::new();
    while tokio::time::Instant::now() < deadline {
        let mut missing = 0;
        if let Ok(list) = api.list_topics(Duration::from_secs(1)).await {
            for t in list.topics {
                let Ok(d) = api.describe(&t.name, Duration::from_secs(1)).await else {
                    missing += 1;
                    continue;
                };
                let t_ns = monotonic_ns();
                for p in d.topic.map(|t| t.partitions).unwrap_or_default() {
                    let key = (p.topic.clone(), p.partition);
                    if p.leader < 0 {
                        missing += 1;
                    } else if present.insert(key) {
                        let e = Event::LeaderPresent {
                            t_ns,
                            topic: p.topic,
                            partition: p.partition,
                            leader: Some(p.leader),
                        };
                        let _ = rec.record(&e);
                    }
                }
            }
        } else {
            missing += 1;
        }
        if missing == 0 && !present.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Describes every topic (linearizable) into one `final_state` event.
async fn record_final_state(api: &Api, rec: &Recorder) -> anyhow::Result<()> {
    let within = Duration::from_secs(10);
    let list = api.list_topics(within).await.map_err(|s| anyhow::anyhow!("final list: {s}"))?;
    let mut topics = BTreeMap::new();
    for t in &list.topics {
        let d = api.describe(&t.name, within).await.map_err(|s| anyhow::anyhow!("final describe {}: {s}", t.name))?;
        let Some(desc) = d.topic else { continue };
        let partitions = desc
            .partitions
            .into_iter()
            .map(|p| PartitionState {
                partition: p.partition,
                leader: p.leader,
                leader_epoch: p.leader_epoch,
                isr: p.isr,
                replicas: p.replicas,
            })
            .collect();
        let unclean = desc.config.is_some_and(|c| c.unclean_leader_election);
        topics.insert(t.name.clone(), TopicState { unclean_leader_election: unclean, partitions });
    }
    let event = Event::FinalState { t_ns: monotonic_ns(), metadata_version: Some(list.metadata_version), topics };
    rec.record(&event)?;
    Ok(())
}

/// Reads every history file; lines that do not parse are counted and skipped.
pub fn merge(files: &[PathBuf]) -> anyhow::Result<(Vec<Event>, usize)> {
    let mut events = Vec::new();
    let mut bad = 0;
    for f in files {
        let text = read_or_empty(f)?;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            match parse_jsonl(line) {
                Ok(recs) => events.extend(recs.into_iter().map(|r| r.event)),
                Err(_) => bad += 1,
            }
        }
    }
    Ok((events, bad))
}

fn read_or_empty(path: &Path) -> anyhow::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(s),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(e.into()),
    }
}
