//! `baton-bench scale`: a 3-controller quorum holding a million partitions,
//! with a thousand brokers heartbeating against it.
//!
//! Broker 1 is a real `baton-agent` sidecar process; brokers 2..=B are
//! simulated in this process (`simbroker.rs`): each speaks the session
//! protocol as an agent does (its own connection, a heartbeat every 500 ms
//! with its applied version and progress deltas, updates applied by
//! version), but keeps only the leader of each partition it hosts. Every
//! broker asks for a hosted view unless `--full-view` is given.
//!
//! Phases, each timed:
//! 1. start the controllers and register the brokers;
//! 2. create T topics of P partitions at replication factor R (C at a time):
//!    one raft entry per topic, so `partition changes/s` is the batched
//!    commit rate;
//! 3. wait until every simulated broker has applied the last creation;
//! 4. steady state: each broker reports about K progress deltas per
//!    heartbeat (every replica of a partition in the same tick, at the same
//!    offset, so ISRs stay whole); controller CPU and RSS from /proc,
//!    heartbeats/s from the active controller's /metrics, leases and session
//!    restarts from the simulated brokers;
//! 5. snapshot: tiny padding topics until every controller logged a snapshot
//!    covering the last creation; its size and the time it took;
//! 6. restart: kill -9 a follower controller and start it again; time until
//!    it restored its state (log) and until it answers a LOCAL read at the
//!    version the leader had when it was killed (serving, caught up);
//! 7. mass election: kill -9 broker 1 (it leads about 1/B of the partitions);
//!    the fence entry's propose-to-applied time and partitions moved (from the
//!    active controller's log), and when every surviving replica saw a new
//!    leader for each of them.

use std::io::{Read, Write};

use baton_proto::v1::{GetPartitionLeaderRequest, ReadConsistency};

use super::*;

/// What `baton-bench scale` runs.
#[derive(clap::Args, Debug)]
pub(crate) struct ScalePlan {
    /// Brokers B (broker 1 a sidecar, the rest in this process).
    #[arg(long, default_value_t = 1000)]
    brokers: u32,
    /// Topics T.
    #[arg(long, default_value_t = 100)]
    topics: u32,
    /// Partitions per topic P (one CreateTopic entry each).
    #[arg(long, default_value_t = 10_000)]
    partitions_per_topic: u32,
    #[arg(long, default_value_t = 3)]
    replication_factor: u32,
    /// Progress deltas per heartbeat and broker (about: partitions are
    /// spread over slots by hash).
    #[arg(long, default_value_t = 5)]
    progress_per_tick: u32,
    /// Length of the steady-state measurement window, seconds.
    #[arg(long, default_value_t = 20.0)]
    steady_secs: f64,
    /// CreateTopic calls in flight.
    #[arg(long, default_value_t = 8)]
    create_concurrency: u32,
    /// Brokers ask for every partition of the cluster instead of the ones they host.
    #[arg(long)]
    full_view: bool,
    /// Give up on a phase after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
}

/// Who leads the first topic's partition 0.
fn first_partition(consistency: ReadConsistency) -> GetPartitionLeaderRequest {
    GetPartitionLeaderRequest { topic: "scale-00000".into(), partition: 0, consistency: consistency as i32 }
}

/// CPU seconds (user + system) and memory of one process, from /proc.
#[derive(Clone, Copy, Debug, Default)]
struct ProcSample {
    cpu_secs: f64,
    rss_mib: f64,
    hwm_mib: f64,
}

fn proc_sample(pid: u32) -> anyhow::Result<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces), 1-based from
    // field 3: utime is field 14, stime 15.
    let rest = stat.rsplit_once(')').context("malformed /proc/pid/stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i - 3).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let hz = rustix::param::clock_ticks_per_second() as f64;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    Ok(ProcSample {
        cpu_secs: (ticks(14) + ticks(15)) / hz.max(1.0),
        rss_mib: kib("VmRSS:") / 1024.0,
        hwm_mib: kib("VmHWM:") / 1024.0,
    })
}

/// A counter's value from a Prometheus text endpoint (plain HTTP/1.0 GET).
fn scrape_counter(addr: &str, name: &str) -> anyhow::Result<f64> {
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: bench\r\n\r\n")?;
    let mut body = String::new();
    stream.read_to_string(&mut body)?;
    body.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse::<f64>().ok()))
        .with_context(|| format!("{name} not found at {addr}"))
}

/// `took_ms`, `partitions_moved` of the last "broker fenced" line for broker 1.
fn fence_line(log: &str) -> (Option<f64>, Option<u64>) {
    let Some(line) = log.lines().rev().find(|l| l.contains("broker fenced") && l.contains(" broker=1 ")) else {
        return (None, None);
    };
    let field = |key: &str| line[line.find(key)? + key.len()..].split_whitespace().next().map(str::to_owned);
    (field("took_ms=").and_then(|v| v.parse().ok()), field("partitions_moved=").and_then(|v| v.parse().ok()))
}

/// `(applied index, bytes, took_ms)` of every "snapshot saved" line in a controller log.
fn snapshots_saved(log: &str) -> Vec<(u64, u64, u64)> {
    log.lines()
        .filter(|l| l.contains("snapshot saved"))
        .filter_map(|line| {
            let field = |key: &str| {
                line[line.find(key)? + key.len()..].split_whitespace().next().and_then(|v| v.parse::<u64>().ok())
            };
            Some((field("index=")?, field("bytes=")?, field("took_ms=")?))
        })
        .collect()
}

pub(crate) async fn scale(options: &Options, plan: &ScalePlan) -> anyhow::Result<(Value, Vec<Row>)> {
    ensure!(plan.brokers >= plan.replication_factor.max(2), "need at least as many brokers as replicas (and 2)");
    let timeout = Duration::from_secs(plan.timeout_secs);
    let total_partitions = u64::from(plan.topics) * u64::from(plan.partitions_per_topic);
    println!(
        "scale: {} brokers, {} topics x {} partitions (= {}) at RF {}, {} view",
        plan.brokers,
        plan.topics,
        plan.partitions_per_topic,
        total_partitions,
        plan.replication_factor,
        if plan.full_view { "full" } else { "hosted" }
    );

    // 1. Controllers, broker 1 (a sidecar process) and the simulated brokers.
    let started = Instant::now();
    let mut cluster = Cluster::start(options, true, false, &[], !plan.full_view).await?;
    let first_leader = cluster.wait_leader(Duration::from_secs(30)).await?;
    let epoch = Instant::now();
    let shared = Arc::new(simbroker::Shared { full_view: plan.full_view, ..simbroker::Shared::default() });
    let interval = AgentConfig::new(0, vec![], "").heartbeat_interval;
    // Each broker hosts about T × P × R / B partitions; one progress slot per
    // `progress_per_tick` of them, so each reports about that many per tick.
    let hosted = total_partitions * u64::from(plan.replication_factor) / u64::from(plan.brokers.max(1));
    let slots = (hosted / u64::from(plan.progress_per_tick.max(1))).max(1) as usize;
    let addrs = Arc::new(cluster.controller_addrs.clone());
    let sims: Vec<Arc<simbroker::SimBroker>> =
        (2..=plan.brokers as i32).map(|id| simbroker::SimBroker::new(id, epoch)).collect();
    let mut sim_tasks = Vec::new();
    for sim in &sims {
        sim_tasks.push(tokio::spawn(sim.clone().run(addrs.clone(), first_leader, interval, slots, shared.clone())));
    }
    let mut client = cluster.client(first_leader).await?;
    loop {
        let listed = client.list_brokers(ListBrokersRequest {}).await?.into_inner().brokers;
        let alive = listed.iter().filter(|b| b.state == BrokerState::Alive as i32).count();
        if alive == plan.brokers as usize {
            break;
        }
        ensure!(started.elapsed() < timeout, "only {alive} of {} brokers alive", plan.brokers);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let brokers_up = started.elapsed();
    println!("  {} brokers registered and alive in {:.1} s", plan.brokers, brokers_up.as_secs_f64());

    // 2. Topics. A worker that loses its controller leader (this 2-core
    // machine under load can starve a leader's raft ticks) finds the new one
    // and retries; a topic its lost call did create then answers "exists".
    let created = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let retries = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let addrs = cluster.controller_addrs.clone();
    let mut workers = Vec::new();
    for _ in 0..plan.create_concurrency.max(1) {
        let (next, retries, addrs) = (next.clone(), retries.clone(), addrs.clone());
        let (topics, partitions, rf) = (plan.topics, plan.partitions_per_topic, plan.replication_factor);
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut version = 0u64;
            let mut at = first_leader;
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= topics {
                    return anyhow::Ok((latencies, version));
                }
                let request = CreateTopicRequest {
                    name: format!("scale-{i:05}"),
                    partitions: partitions as i32,
                    replication_factor: rf as i32,
                    config: None,
                };
                let t = Instant::now();
                let mut retried = false;
                loop {
                    let mut client = controller_client(&addrs[at]).await?;
                    match client.create_topic(request.clone()).await {
                        Ok(r) => {
                            version = version.max(r.into_inner().metadata_version);
                            break;
                        }
                        Err(e) if retried && e.code() == tonic::Code::AlreadyExists => break,
                        Err(e) if t.elapsed() < timeout && e.code() != tonic::Code::InvalidArgument => {
                            retries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            retried = true;
                            at = (at + 1) % addrs.len();
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        Err(e) => return Err(anyhow::Error::from(e).context(format!("creating topic {i}"))),
                    }
                }
                latencies.push(ms(t.elapsed()));
            }
        }));
    }
    let mut create_ms = Vec::new();
    let mut created_version = 0;
    for worker in workers {
        let (latencies, version) = worker.await??;
        create_ms.extend(latencies);
        created_version = created_version.max(version);
    }
    let create_took = created.elapsed();
    let create_retries = retries.load(std::sync::atomic::Ordering::Relaxed);
    let leader = cluster.wait_leader(Duration::from_secs(30)).await?;
    let changes_per_sec = total_partitions as f64 / create_took.as_secs_f64();
    println!(
        "  created {} partitions in {:.1} s: {:.0} partition changes/s ({} per entry, {} calls retried)",
        total_partitions,
        create_took.as_secs_f64(),
        changes_per_sec,
        plan.partitions_per_topic,
        create_retries
    );

    // 3. Every simulated broker applied the last creation.
    let synced = Instant::now();
    loop {
        let behind =
            sims.iter().filter(|s| s.version.load(std::sync::atomic::Ordering::Relaxed) < created_version).count();
        if behind == 0 {
            break;
        }
        ensure!(synced.elapsed() < timeout, "{behind} brokers still behind version {created_version}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let views_synced = synced.elapsed();
    let held: usize = sims.iter().map(|s| s.leaders.lock().len()).sum();
    println!(
        "  brokers applied it {:.1} s later; they hold {} partition entries (~{} each)",
        views_synced.as_secs_f64(),
        held,
        held / sims.len().max(1)
    );

    // 4. Steady state: the brokers heartbeat with progress deltas.
    let broker1_led: HashSet<simbroker::Key> = sims
        .iter()
        .flat_map(|s| s.leaders.lock().iter().filter(|(_, l)| **l == 1).map(|(k, _)| k.clone()).collect::<Vec<_>>())
        .collect();
    let progress_before = shared.progress_sent.load(std::sync::atomic::Ordering::Relaxed);
    let reconnects_before = shared.reconnects.load(std::sync::atomic::Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pids: Vec<u32> = cluster.controllers.iter().filter_map(Proc::pid).collect();
    ensure!(pids.len() == 3, "a controller is not running");
    let counter = "baton_controller_heartbeats_total";
    let before: Vec<ProcSample> = pids.iter().map(|&p| proc_sample(p)).collect::<anyhow::Result<_>>()?;
    let hb_before = scrape_counter(&cluster.metrics_addrs[leader], counter)?;
    let window_start = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(plan.steady_secs)).await;
    let window = window_start.elapsed().as_secs_f64();
    let after: Vec<ProcSample> = pids.iter().map(|&p| proc_sample(p)).collect::<anyhow::Result<_>>()?;
    let hb_after = scrape_counter(&cluster.metrics_addrs[leader], counter)?;
    let progress_recorded = shared.progress_sent.load(std::sync::atomic::Ordering::Relaxed) - progress_before;
    let reconnects = shared.reconnects.load(std::sync::atomic::Ordering::Relaxed) - reconnects_before;
    let heartbeats_per_sec = (hb_after - hb_before) / window;
    let no_lease = sims.iter().filter(|s| !s.has_lease()).count();
    let mut client = cluster.client(leader).await?;
    let listed = client.list_brokers(ListBrokersRequest {}).await?.into_inner().brokers;
    let alive = listed.iter().filter(|b| b.state == BrokerState::Alive as i32).count();
    let mut controllers = Vec::new();
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        let cores = (a.cpu_secs - b.cpu_secs) / window;
        println!(
            "  controller-{}{}: {:.2} cores, RSS {:.0} MiB (peak {:.0} MiB)",
            i + 1,
            if i == leader { " (active)" } else { "" },
            cores,
            a.rss_mib,
            a.hwm_mib
        );
        controllers.push(json!({
            "id": i + 1, "active": i == leader, "cores": cores, "rss_mib": a.rss_mib, "peak_rss_mib": a.hwm_mib,
        }));
    }
    println!(
        "  steady {:.1} s: {:.0} heartbeats/s on the active controller, {} progress entries recorded, \
         {} of {} brokers alive, {} simulated brokers without a lease, {} sessions reopened",
        window, heartbeats_per_sec, progress_recorded, alive, plan.brokers, no_lease, reconnects
    );

    // 5. A snapshot that covers the whole state.
    let snapped = Instant::now();
    let mut pad = 0u32;
    let snapshot = loop {
        let covered: Vec<Option<(u64, u64, u64)>> = (1..=3)
            .map(|id| {
                snapshots_saved(&cluster.log(&format!("controller-{id}")))
                    .into_iter()
                    .rfind(|(index, _, _)| *index >= created_version)
            })
            .collect();
        if covered.iter().all(Option::is_some) {
            break covered;
        }
        ensure!(snapped.elapsed() < timeout, "no snapshot past version {created_version} on every controller");
        for _ in 0..50 {
            client
                .create_topic(CreateTopicRequest {
                    name: format!("scale-pad-{pad:05}"),
                    partitions: 1,
                    replication_factor: 1,
                    config: None,
                })
                .await?;
            pad += 1;
        }
    };
    let leader_snapshot = snapshot[leader].unwrap_or_default();
    println!(
        "  snapshot at index {}: {:.1} MiB, saved in {} ms ({} padding topics of 1 partition written to reach it)",
        leader_snapshot.0,
        leader_snapshot.1 as f64 / (1 << 20) as f64,
        leader_snapshot.2,
        pad
    );

    // 6. Restart a follower.
    let follower = (leader + 1) % 3;
    let version_at_kill = client
        .get_partition_leader(first_partition(ReadConsistency::Linearizable))
        .await?
        .into_inner()
        .metadata_version;
    cluster.controllers[follower].kill9();
    let restart_at = Instant::now();
    let wall_at = std::time::SystemTime::now();
    cluster.controllers[follower] = cluster.spawn_controller(options, follower, ".restart")?;
    let serving = loop {
        let ready = async {
            let mut c = cluster.client(follower).await?;
            let r = c.get_partition_leader(first_partition(ReadConsistency::Local)).await?.into_inner();
            anyhow::Ok(r.metadata_version >= version_at_kill)
        };
        if matches!(ready.await, Ok(true)) {
            break restart_at.elapsed();
        }
        ensure!(restart_at.elapsed() < timeout, "restarted controller-{} never caught up", follower + 1);
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let restart_log = std::fs::read_to_string(cluster.path().join(format!("controller-{}.restart.log", follower + 1)))?;
    let restored_ms =
        restart_log.lines().find(|l| l.contains("restored state machine")).and_then(|l| line_ms_after(l, wall_at));
    let restarted = cluster.controllers[follower].pid().map(proc_sample).transpose()?.unwrap_or_default();
    println!(
        "  controller-{} restarted: state restored at {} ms, serving at version >= {} after {:.0} ms, RSS {:.0} MiB",
        follower + 1,
        restored_ms.map_or("?".into(), |v| format!("{v:.0}")),
        version_at_kill,
        ms(serving),
        restarted.rss_mib
    );

    // 7. Mass election: broker 1 dies.
    ensure!(!broker1_led.is_empty(), "broker 1 leads nothing");
    let survivors = plan.replication_factor.saturating_sub(1).max(1) as usize;
    shared.watch_from.store(1, std::sync::atomic::Ordering::Relaxed);
    *shared.watch_started.lock() = Some(Instant::now());
    shared.watching.store(true, std::sync::atomic::Ordering::Relaxed);
    let t0 = Instant::now();
    if let Some(mut sidecar) = cluster.sidecar.take() {
        sidecar.kill9();
    }
    let moved_at: Vec<Option<f64>> = loop {
        let times: Vec<Option<f64>> = {
            let seen = shared.moved.lock();
            let moved = |key| seen.get(key).filter(|t: &&Vec<f64>| t.len() >= survivors);
            broker1_led.iter().map(|key| moved(key).and_then(|t| t.iter().copied().reduce(f64::max))).collect()
        };
        let pending = times.iter().filter(|t| t.is_none()).count();
        if pending == 0 {
            break times;
        }
        ensure!(t0.elapsed() < timeout, "{pending} of broker 1's partitions never moved on every replica");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let moved: Vec<f64> = moved_at.iter().flatten().copied().collect();
    let (fence_took, partitions_moved) = fence_line(&cluster.log(&format!("controller-{}", leader + 1)));
    let moved_stats = stats(&moved);
    println!(
        "  broker 1 killed: fence entry moved {} partitions, committed and applied in {} ms; \
         every surviving replica saw the new leaders: median {:.1} ms, max {:.1} ms",
        partitions_moved.map_or("?".into(), |v| v.to_string()),
        fence_took.map_or("?".into(), |v| format!("{v:.0}")),
        moved_stats.map_or(0.0, |s| s.median),
        moved_stats.map_or(0.0, |s| s.max)
    );

    shared.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for task in sim_tasks {
        task.abort();
    }
    cluster.stop().await;

    let value = json!({
        "scenario": "scale",
        "brokers": plan.brokers,
        "topics": plan.topics,
        "partitions_per_topic": plan.partitions_per_topic,
        "partitions": total_partitions,
        "replication_factor": plan.replication_factor,
        "view": if plan.full_view { "full" } else { "hosted" },
        "brokers_registered_s": brokers_up.as_secs_f64(),
        "create": {
            "took_s": create_took.as_secs_f64(),
            "partition_changes_per_s": changes_per_sec,
            "per_topic_ms": stats_json(stats(&create_ms)),
            "concurrency": plan.create_concurrency,
            "retried_calls": create_retries,
        },
        "views_synced_s": views_synced.as_secs_f64(),
        "partition_entries_held_by_brokers": held,
        "steady": {
            "window_s": window,
            "heartbeats_per_s": heartbeats_per_sec,
            "progress_entries_recorded": progress_recorded,
            "progress_per_tick_per_broker": plan.progress_per_tick,
            "brokers_alive": alive,
            "brokers_without_lease": no_lease,
            "sessions_reopened": reconnects,
            "controllers": controllers,
        },
        "snapshot": {
            "index": leader_snapshot.0,
            "bytes": leader_snapshot.1,
            "save_ms": leader_snapshot.2,
            "padding_topics": pad,
        },
        "restart": {
            "controller": follower + 1,
            "restored_ms": restored_ms,
            "serving_ms": ms(serving),
            "caught_up_to_version": version_at_kill,
            "rss_mib": restarted.rss_mib,
        },
        "mass_election": {
            "partitions_led_by_broker_1": broker1_led.len(),
            "partitions_moved": partitions_moved,
            "fence_took_ms": fence_took,
            "replicas_saw_new_leader_ms": stats_json(moved_stats),
        },
    });
    Ok((value, Vec::new()))
}
