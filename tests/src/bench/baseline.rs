//! Baselines for `baton-bench --system etcd|zookeeper`: the same scenarios
//! run against etcd 3.4 and ZooKeeper 3.8 on the same machine, with brokers
//! that take partition leadership from them (`baton-baseline-broker`, three
//! separate processes). The servers are started by the bench in a temporary
//! folder on free loopback ports and killed when it exits; install them with
//! `scripts/install-baselines.sh`.
//!
//! Failover is timed as for Baton: t0 is `CLOCK_MONOTONIC` read just before
//! the SIGKILL / SIGSTOP of broker 1; every broker stamps each change of its
//! view with the same clock (one host), and a partition's failover time is
//! the later of the two surviving brokers' first instants that name a leader
//! other than broker 1 (the winner: its create succeeded; the loser: it read
//! or was told the winner).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};

use super::{Fault, Options, Proc, Row, System, closed_loop, free_port, ms, stats, stats_json};
use baton_tests::nemesis::clock::monotonic_ns;

const INSTALL_HINT: &str = "install the baselines with scripts/install-baselines.sh (as root)";
const ZK_JARS: &str = "/usr/share/java/zookeeper.jar";

/// Settings of the baseline systems (flags of baton-bench).
#[derive(Clone, Debug)]
pub struct BaselineOptions {
    pub etcd_bin: String,
    /// TTL the brokers ask etcd for (etcd raises it to its minimum, see docs/BENCHMARKS.md).
    pub etcd_ttl_secs: i64,
    pub zk_tick_ms: u64,
    pub zk_nodes: usize,
}

fn which(bin: &str) -> Option<PathBuf> {
    if bin.contains('/') {
        return Path::new(bin).exists().then(|| PathBuf::from(bin));
    }
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join(bin)).find(|p| p.exists())
}

/// Fails with a message naming the install script when a server is missing.
pub fn check_installed(system: System, options: &Options) -> anyhow::Result<()> {
    match system {
        System::Baton => return Ok(()),
        System::Etcd => {
            let bin = &options.base.etcd_bin;
            ensure!(which(bin).is_some(), "etcd not found ({bin}): {INSTALL_HINT}");
        }
        System::Zookeeper => {
            ensure!(which("java").is_some(), "java not found: {INSTALL_HINT}");
            ensure!(Path::new(ZK_JARS).exists(), "{ZK_JARS} not found (ZooKeeper): {INSTALL_HINT}");
        }
    }
    let broker = options.bin_dir.join("baton-baseline-broker");
    ensure!(
        broker.exists(),
        "{} is missing: cargo build --release -p baton-tests --bins (or pass --bin-dir)",
        broker.display()
    );
    Ok(())
}

/// A running etcd cluster or ZooKeeper ensemble, killed on drop.
pub struct Servers {
    system: System,
    dir: Option<tempfile::TempDir>,
    pub keep_logs: bool,
    procs: Vec<Proc>,
    /// host:port of each member's client listener.
    pub endpoints: Vec<String>,
    /// Index of the raft leader (etcd) or ZooKeeper leader, when known.
    pub leader: usize,
    pub detail: String,
}

fn temp_dir(options: &Options, prefix: &str) -> anyhow::Result<tempfile::TempDir> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(prefix);
    Ok(match &options.data_root {
        Some(root) => {
            std::fs::create_dir_all(root)?;
            builder.tempdir_in(root)?
        }
        None => builder.tempdir()?,
    })
}

impl Servers {
    pub async fn start(system: System, options: &Options, base: &BaselineOptions) -> anyhow::Result<Servers> {
        match system {
            System::Etcd => Servers::start_etcd(options, base).await,
            System::Zookeeper => Servers::start_zookeeper(options, base).await,
            System::Baton => bail!("Servers is for the baselines only"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.as_ref().map(|d| d.path()).expect("servers dir")
    }

    pub fn endpoints_flag(&self) -> String {
        self.endpoints.join(",")
    }

    /// Three etcd members on loopback, default election settings
    /// (heartbeat 100 ms, election timeout 1000 ms).
    async fn start_etcd(options: &Options, base: &BaselineOptions) -> anyhow::Result<Servers> {
        let dir = temp_dir(options, "baton-bench-etcd-")?;
        let root = dir.path().to_path_buf();
        let mut servers = Servers {
            system: System::Etcd,
            dir: Some(dir),
            keep_logs: options.keep_logs,
            procs: Vec::new(),
            endpoints: Vec::new(),
            leader: 0,
            detail: String::new(),
        };
        let ports: Vec<(u16, u16)> = (0..3).map(|_| Ok((free_port()?, free_port()?))).collect::<anyhow::Result<_>>()?;
        let cluster = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("m{}=http://127.0.0.1:{peer}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let bin = which(&base.etcd_bin).with_context(|| format!("etcd not found: {INSTALL_HINT}"))?;
        for (i, (client, peer)) in ports.iter().enumerate() {
            let name = format!("m{}", i + 1);
            let args: Vec<String> = vec![
                format!("--name={name}"),
                format!("--data-dir={}", root.join(&name).display()),
                format!("--listen-client-urls=http://127.0.0.1:{client}"),
                format!("--advertise-client-urls=http://127.0.0.1:{client}"),
                format!("--listen-peer-urls=http://127.0.0.1:{peer}"),
                format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer}"),
                format!("--initial-cluster={cluster}"),
                "--initial-cluster-state=new".into(),
                "--initial-cluster-token=baton-bench".into(),
                "--logger=zap".into(),
                "--log-outputs=stderr".into(),
            ];
            servers.procs.push(Proc::spawn(
                &bin,
                &format!("etcd-{name}"),
                &args,
                &[],
                &root.join(format!("etcd-{name}.log")),
            )?);
            servers.endpoints.push(format!("127.0.0.1:{client}"));
        }
        // Wait for a leader every member agrees on.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok((leader, version)) = servers.etcd_leader().await {
                servers.leader = leader;
                servers.detail = format!("etcd {version}, 3 members, leader m{}", leader + 1);
                return Ok(servers);
            }
            ensure!(Instant::now() < deadline, "etcd did not elect a leader in 30 s (logs in {})", root.display());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn etcd_leader(&self) -> anyhow::Result<(usize, String)> {
        let mut leader = None;
        let mut version = String::new();
        for (i, ep) in self.endpoints.iter().enumerate() {
            let mut client = etcd_connect(ep).await?;
            let status = client.status().await?;
            let member = status.header().map_or(0, |h| h.member_id());
            version = status.version().to_owned();
            ensure!(status.leader() != 0, "no leader yet");
            if status.leader() == member {
                leader = Some(i);
            }
        }
        Ok((leader.context("no member is leader")?, version))
    }

    /// A ZooKeeper ensemble of `zk_nodes` (3, or 1 = standalone) servers on loopback.
    async fn start_zookeeper(options: &Options, base: &BaselineOptions) -> anyhow::Result<Servers> {
        ensure!(base.zk_nodes == 1 || base.zk_nodes == 3, "--zk-nodes must be 1 or 3");
        let dir = temp_dir(options, "baton-bench-zk-")?;
        let root = dir.path().to_path_buf();
        let mut servers = Servers {
            system: System::Zookeeper,
            dir: Some(dir),
            keep_logs: options.keep_logs,
            procs: Vec::new(),
            endpoints: Vec::new(),
            leader: 0,
            detail: String::new(),
        };
        let n = base.zk_nodes;
        let ports: Vec<(u16, u16, u16)> =
            (0..n).map(|_| Ok((free_port()?, free_port()?, free_port()?))).collect::<anyhow::Result<_>>()?;
        let java = which("java").with_context(|| format!("java not found: {INSTALL_HINT}"))?;
        let mut classpath = vec![ZK_JARS.to_owned()];
        // A logging backend, when there is one (ZooKeeper logs through slf4j).
        if Path::new("/usr/share/java/slf4j-simple.jar").exists() {
            classpath.push("/usr/share/java/slf4j-simple.jar".into());
        }
        for (i, (client, quorum, election)) in ports.iter().enumerate() {
            let id = i + 1;
            let data = root.join(format!("zk{id}"));
            std::fs::create_dir_all(&data)?;
            std::fs::write(data.join("myid"), format!("{id}\n"))?;
            let mut cfg = format!(
                "tickTime={}\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={client}\nclientPortAddress=127.0.0.1\n\
                 admin.enableServer=false\n4lw.commands.whitelist=*\nmaxClientCnxns=0\n",
                base.zk_tick_ms,
                data.display()
            );
            if n > 1 {
                for (j, (_, q, e)) in ports.iter().enumerate() {
                    cfg.push_str(&format!("server.{}=127.0.0.1:{q}:{e}\n", j + 1));
                }
            }
            let _ = (quorum, election);
            let cfg_path = root.join(format!("zk{id}.cfg"));
            std::fs::write(&cfg_path, cfg)?;
            let args: Vec<String> = vec![
                "-Xmx512m".into(),
                "-Dorg.slf4j.simpleLogger.showDateTime=true".into(),
                "-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS".into(),
                "-cp".into(),
                classpath.join(":"),
                "org.apache.zookeeper.server.quorum.QuorumPeerMain".into(),
                cfg_path.display().to_string(),
            ];
            servers.procs.push(Proc::spawn(&java, &format!("zk{id}"), &args, &[], &root.join(format!("zk{id}.log")))?);
            servers.endpoints.push(format!("127.0.0.1:{client}"));
        }
        // Wait until every server serves a session.
        let deadline = Instant::now() + Duration::from_secs(60);
        for ep in servers.endpoints.clone() {
            loop {
                let ok = tokio::time::timeout(Duration::from_secs(3), async {
                    let c = zookeeper_client::Client::connector()
                        .with_session_timeout(Duration::from_secs(10))
                        .connect(&ep)
                        .await?;
                    c.check_stat("/").await?;
                    anyhow::Ok(())
                })
                .await;
                if matches!(ok, Ok(Ok(()))) {
                    break;
                }
                ensure!(
                    Instant::now() < deadline,
                    "ZooKeeper at {ep} not serving after 60 s (logs in {})",
                    root.display()
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        // The leader, from the `srvr` four-letter command ("Mode: leader").
        for (i, ep) in servers.endpoints.iter().enumerate() {
            if zk_mode(ep).await.is_some_and(|m| m == "leader" || m == "standalone") {
                servers.leader = i;
            }
        }
        servers.detail = format!(
            "ZooKeeper 3.8, {n} server{}, tickTime {} ms (minimum session timeout {} ms), leader zk{}",
            if n > 1 { "s" } else { "" },
            base.zk_tick_ms,
            2 * base.zk_tick_ms,
            servers.leader + 1
        );
        Ok(servers)
    }

    fn spawn_broker(
        &self,
        options: &Options,
        base: &BaselineOptions,
        id: i32,
        partitions: u32,
    ) -> anyhow::Result<(Proc, PathBuf)> {
        let events = self.path().join(format!("broker-{id}.events"));
        let system = match self.system {
            System::Etcd => "etcd",
            System::Zookeeper => "zookeeper",
            System::Baton => bail!("not a baseline"),
        };
        let args: Vec<String> = vec![
            "--system".into(),
            system.into(),
            "--broker-id".into(),
            id.to_string(),
            "--endpoints".into(),
            self.endpoints_flag(),
            "--partitions".into(),
            partitions.to_string(),
            "--ttl-secs".into(),
            base.etcd_ttl_secs.to_string(),
            // ZooKeeper's shortest session timeout: the server clamps to [2, 20] × tickTime.
            "--session-timeout-ms".into(),
            (2 * base.zk_tick_ms).to_string(),
            "--events".into(),
            events.display().to_string(),
        ];
        let proc = Proc::spawn(
            &options.bin_dir.join("baton-baseline-broker"),
            &format!("broker-{id}"),
            &args,
            &[],
            &self.path().join(format!("broker-{id}.log")),
        )?;
        Ok((proc, events))
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        self.procs.clear();
        if (self.keep_logs || std::thread::panicking())
            && let Some(dir) = self.dir.take()
        {
            eprintln!("baseline data and logs kept in {}", dir.keep().display());
        }
    }
}

/// A ZooKeeper server's mode (leader, follower, standalone) from `srvr`.
async fn zk_mode(endpoint: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let work = async {
        let mut stream = tokio::net::TcpStream::connect(endpoint).await.ok()?;
        stream.write_all(b"srvr").await.ok()?;
        let mut out = String::new();
        stream.read_to_string(&mut out).await.ok()?;
        out.lines().find_map(|l| l.strip_prefix("Mode: ")).map(|m| m.trim().to_owned())
    };
    tokio::time::timeout(Duration::from_secs(3), work).await.ok().flatten()
}

pub async fn etcd_connect(endpoint: &str) -> anyhow::Result<etcd_client::Client> {
    let options = etcd_client::ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        .with_timeout(Duration::from_secs(10));
    Ok(etcd_client::Client::connect([format!("http://{endpoint}")], Some(options)).await?)
}

// ------------------------------------------------------------- event files

/// One line of a broker's events file.
#[derive(Clone, Debug, PartialEq)]
pub enum BrokerEvent {
    View { p: i32, leader: i32, t: u64, how: String },
    Milestone { ev: String, t: u64, detail: String },
}

pub fn parse_event(line: &str) -> Option<BrokerEvent> {
    let v: Value = serde_json::from_str(line).ok()?;
    let t = v.get("t")?.as_u64()?;
    if let Some(ev) = v.get("ev").and_then(Value::as_str) {
        let detail = v.get("detail").and_then(Value::as_str).unwrap_or("").to_owned();
        return Some(BrokerEvent::Milestone { ev: ev.to_owned(), t, detail });
    }
    Some(BrokerEvent::View {
        p: i32::try_from(v.get("p")?.as_i64()?).ok()?,
        leader: i32::try_from(v.get("l")?.as_i64()?).ok()?,
        t,
        how: v.get("k").and_then(Value::as_str).unwrap_or("").to_owned(),
    })
}

/// Reads a broker's events file as it grows.
struct Tail {
    path: PathBuf,
    offset: usize,
    events: Vec<BrokerEvent>,
}

impl Tail {
    fn new(path: PathBuf) -> Tail {
        Tail { path, offset: 0, events: Vec::new() }
    }

    /// Appends the whole lines written since the last call.
    fn poll(&mut self) {
        let Ok(bytes) = std::fs::read(&self.path) else { return };
        let Some(new) = bytes.get(self.offset..) else { return };
        let Some(end) = new.iter().rposition(|&b| b == b'\n') else { return };
        let text = String::from_utf8_lossy(&new[..=end]);
        self.events.extend(text.lines().filter_map(parse_event));
        self.offset += end + 1;
    }

    fn milestone(&self, name: &str) -> Option<&BrokerEvent> {
        self.events.iter().find(|e| matches!(e, BrokerEvent::Milestone { ev, .. } if ev == name))
    }

    fn milestone_detail(&self, name: &str) -> Option<String> {
        match self.milestone(name)? {
            BrokerEvent::Milestone { detail, .. } => Some(detail.clone()),
            BrokerEvent::View { .. } => None,
        }
    }

    /// The latest leader of every partition in this broker's view.
    fn view(&self, partitions: usize) -> Vec<i32> {
        let mut view = vec![-1; partitions];
        for e in &self.events {
            if let BrokerEvent::View { p, leader, .. } = e
                && let Some(slot) = view.get_mut(*p as usize)
            {
                *slot = *leader;
            }
        }
        view
    }
}

/// Per partition of `tracked`, the first instant (ns) at or after `t0` at
/// which this broker's view names a leader other than `old`, with that leader.
pub fn first_moves(events: &[BrokerEvent], t0: u64, old: i32, tracked: &[i32]) -> BTreeMap<i32, (u64, i32)> {
    let mut out = BTreeMap::new();
    for e in events {
        if let BrokerEvent::View { p, leader, t, .. } = e
            && *t >= t0
            && *leader >= 0
            && *leader != old
            && tracked.binary_search(p).is_ok()
        {
            out.entry(*p).or_insert((*t, *leader));
        }
    }
    out
}

/// First instant (ns) at or after `t0` at which this broker saw a tracked key deleted.
fn first_deleted(events: &[BrokerEvent], t0: u64) -> Option<u64> {
    events.iter().find_map(|e| match e {
        BrokerEvent::View { leader: -1, t, how, .. } if *t >= t0 && how == "deleted" => Some(*t),
        _ => None,
    })
}

/// Failover times (ms after t0), per partition the later of the survivors'
/// first moves; partitions some survivor never saw move count as missing.
pub fn failover_times(
    survivors: &[BTreeMap<i32, (u64, i32)>],
    tracked: &[i32],
    t0: u64,
) -> (Vec<f64>, usize, BTreeMap<i32, usize>) {
    let mut times = Vec::with_capacity(tracked.len());
    let mut missing = 0;
    let mut winners = BTreeMap::new();
    for p in tracked {
        let seen: Vec<Option<&(u64, i32)>> = survivors.iter().map(|s| s.get(p)).collect();
        if seen.iter().any(Option::is_none) {
            missing += 1;
            continue;
        }
        let latest = seen.iter().flatten().map(|(t, _)| *t).max().unwrap_or(t0);
        times.push((latest - t0) as f64 / 1e6);
        if let Some(Some((_, leader))) = seen.first() {
            *winners.entry(*leader).or_insert(0usize) += 1;
        }
    }
    (times, missing, winners)
}

// ---------------------------------------------------------------- failover

pub struct BaselineRun {
    failover_ms: Vec<f64>,
    missing: usize,
    winners: BTreeMap<i32, usize>,
    detected_first_ms: Option<f64>,
    detected_last_ms: Option<f64>,
    lease: String,
    servers: String,
    /// Surviving brokers that lost their own lease / session during the run.
    survivors_lost: Vec<String>,
}

pub async fn failover(
    options: &Options,
    base: &BaselineOptions,
    system: System,
    fault: Fault,
    partitions: u32,
    runs: u32,
    timeout: Duration,
) -> anyhow::Result<(Value, Vec<Row>)> {
    ensure!(fault != Fault::Cut, "--mode cut is for Baton only (baselines: crash and sigstop)");
    ensure!((1..=50).contains(&runs) && (1..=100_000).contains(&partitions), "bad --partitions / --runs");
    let name = match fault {
        Fault::Crash => "failover-crash",
        _ => "failover-hang (sigstop)",
    };
    let sys = system.name();
    let mut results = Vec::new();
    for run in 1..=runs {
        eprintln!("[{sys} {name}] run {run}/{runs}: starting the servers and 3 brokers, {} partitions", 3 * partitions);
        let mut servers = Servers::start(system, options, base).await?;
        let result = baseline_run(&mut servers, options, base, fault, partitions, timeout).await;
        if result.as_ref().map_or(true, |r| r.missing > 0 || !r.survivors_lost.is_empty()) {
            servers.keep_logs = true;
        }
        let r = result?;
        let s = stats(&r.failover_ms);
        eprintln!(
            "[{sys} {name}] run {run}: median {:.1} ms, p99 {:.1} ms, max {:.1} ms, missing {}, first delete seen {:?} ms",
            s.map_or(f64::NAN, |s| s.median),
            s.map_or(f64::NAN, |s| s.p99),
            s.map_or(f64::NAN, |s| s.max),
            r.missing,
            r.detected_first_ms
        );
        for lost in &r.survivors_lost {
            eprintln!("[{sys} {name}] run {run}: a SURVIVING broker lost its own lease or session: {lost}");
        }
        results.push(r);
    }
    println!();
    let first = results.first().context("no runs")?;
    println!(
        "{sys} {name}: broker 1 led N = {partitions} of {} partitions; times in ms after the signal",
        3 * partitions
    );
    println!("{}; {}", first.servers, first.lease);
    println!("failover = max over the 2 surviving brokers of (instant its view names the new leader - t0);");
    println!("deleted: first / last instant a survivor saw one of broker 1's keys deleted (lease or session expired)");
    println!(
        "{:>4} {:>7} {:>9} {:>9} {:>9} {:>9} {:>10} {:>10} {:>8}",
        "run", "parts", "min", "median", "p99", "max", "deleted-1st", "deleted-last", "missing"
    );
    let fmt = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1}"));
    for (i, r) in results.iter().enumerate() {
        let s = stats(&r.failover_ms);
        println!(
            "{:>4} {:>7} {:>9} {:>9} {:>9} {:>9} {:>10} {:>10} {:>8}",
            i + 1,
            r.failover_ms.len(),
            fmt(s.map(|s| s.min)),
            fmt(s.map(|s| s.median)),
            fmt(s.map(|s| s.p99)),
            fmt(s.map(|s| s.max)),
            fmt(r.detected_first_ms),
            fmt(r.detected_last_ms),
            r.missing
        );
    }
    let pooled: Vec<f64> = results.iter().flat_map(|r| r.failover_ms.iter().copied()).collect();
    let s = stats(&pooled);
    let lost: usize = results.iter().map(|r| r.survivors_lost.len()).sum();
    if lost > 0 {
        println!("{lost} surviving broker(s) lost their own lease or session during a run (see the log above)");
    }
    println!(
        "{:>4} {:>7} {:>9} {:>9} {:>9} {:>9}",
        "all",
        pooled.len(),
        fmt(s.map(|s| s.min)),
        fmt(s.map(|s| s.median)),
        fmt(s.map(|s| s.p99)),
        fmt(s.map(|s| s.max))
    );
    let runs_json: Vec<Value> = results
        .iter()
        .map(|r| {
            json!({
                "failover_ms": stats_json(stats(&r.failover_ms)),
                "missing": r.missing,
                "new_leaders": r.winners,
                "deleted_first_seen_ms": r.detected_first_ms,
                "deleted_last_seen_ms": r.detected_last_ms,
                "lease_or_session": r.lease,
                "servers": r.servers,
                "survivors_lost_own_lease": r.survivors_lost,
            })
        })
        .collect();
    let value = json!({
        "scenario": name,
        "system": sys,
        "partitions_per_broker": partitions,
        "topic_partitions": 3 * partitions,
        "servers": first.servers,
        "lease_or_session": first.lease,
        "runs": runs_json,
        "pooled_failover_ms": stats_json(s),
        "missing": results.iter().map(|r| r.missing).sum::<usize>(),
    });
    let row = Row::new(name, &format!("N={partitions}"), system, pooled, None);
    Ok((value, vec![row]))
}

async fn baseline_run(
    servers: &mut Servers,
    options: &Options,
    base: &BaselineOptions,
    fault: Fault,
    partitions: u32,
    timeout: Duration,
) -> anyhow::Result<BaselineRun> {
    let total = 3 * partitions;
    let mut brokers = Vec::new();
    let mut tails = Vec::new();
    for id in 1..=3 {
        let (proc, events) = servers.spawn_broker(options, base, id, total)?;
        brokers.push(proc);
        tails.push(Tail::new(events));
    }
    // Every broker's view must name a leader for every partition.
    let deadline = Instant::now() + Duration::from_secs(60 + u64::from(total) / 100);
    loop {
        for t in &mut tails {
            t.poll();
            if let Some(e) = t.milestone_detail("error") {
                bail!("a baseline broker failed: {e} (logs in {})", servers.path().display());
            }
            if let Some(e) = t.milestone_detail("lease-lost") {
                bail!(
                    "a baseline broker lost its lease or session during set-up: {e} (logs in {})",
                    servers.path().display()
                );
            }
        }
        if tails.iter().all(|t| t.milestone("complete").is_some()) {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "baseline brokers never saw all {total} leaders (logs in {})",
            servers.path().display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let view = tails[1].view(total as usize);
    let tracked: Vec<i32> = (0..total as i32).filter(|&p| view[p as usize] == 1).collect();
    ensure!(
        tracked.len() == partitions as usize,
        "broker 1 leads {} partitions in broker 2's view, expected {partitions}",
        tracked.len()
    );
    let lease = tails[0]
        .milestone_detail("lease")
        .map(|d| format!("lease: {d}"))
        .or_else(|| tails[0].milestone_detail("session").map(|d| format!("session timeout: {d}")))
        .unwrap_or_default();
    // Let keep-alives / pings settle into their rhythm.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let t0 = monotonic_ns();
    match fault {
        Fault::Crash => brokers[0].kill9(),
        _ => brokers[0].signal("STOP")?,
    }
    let deadline = Instant::now() + timeout;
    let moves = loop {
        for t in &mut tails[1..] {
            t.poll();
        }
        let moves: Vec<BTreeMap<i32, (u64, i32)>> =
            tails[1..].iter().map(|t| first_moves(&t.events, t0, 1, &tracked)).collect();
        if moves.iter().all(|m| m.len() == tracked.len()) || Instant::now() >= deadline {
            break moves;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    if fault == Fault::Sigstop {
        brokers[0].signal("CONT")?;
    }
    brokers[0].kill9();
    let (failover_ms, missing, winners) = failover_times(&moves, &tracked, t0);
    let survivors_lost: Vec<String> = tails[1..]
        .iter()
        .enumerate()
        .filter_map(|(i, t)| t.milestone_detail("lease-lost").map(|d| format!("broker {}: {d}", i + 2)))
        .collect();
    let deleted: Vec<f64> =
        tails[1..].iter().filter_map(|t| first_deleted(&t.events, t0)).map(|t| (t - t0) as f64 / 1e6).collect();
    Ok(BaselineRun {
        failover_ms,
        missing,
        winners,
        detected_first_ms: deleted.iter().copied().min_by(f64::total_cmp),
        detected_last_ms: deleted.iter().copied().max_by(f64::total_cmp),
        lease,
        servers: servers.detail.clone(),
        survivors_lost,
    })
}

// --------------------------------------------------------- query and commit

/// GetPartitionLeader's etcd equivalent: Get of a partition's key,
/// serializable (the member's local state) or linearizable (ReadIndex).
pub async fn etcd_query(
    options: &Options,
    base: &BaselineOptions,
    levels: &[u32],
    duration: Duration,
    keys: u32,
) -> anyhow::Result<(Value, Vec<Row>)> {
    let servers = Servers::start(System::Etcd, options, base).await?;
    let leader_ep = servers.endpoints[servers.leader].clone();
    let mut client = etcd_connect(&leader_ep).await?;
    for p in 0..keys {
        client.put(format!("/baton-bench/p/{p}"), ((p % 3) + 1).to_string(), None).await?;
    }
    let mut rows = Vec::new();
    for (label, serializable) in [("LOCAL", true), ("LINEARIZABLE", false)] {
        for &k in levels {
            let mut clients = Vec::new();
            for _ in 0..k {
                clients.push(etcd_connect(&leader_ep).await?);
            }
            let (lat, wall) = closed_loop(clients, duration, move |mut c: etcd_client::Client, i| async move {
                let opts = serializable.then(|| etcd_client::GetOptions::new().with_serializable());
                let r = c.get(format!("/baton-bench/p/{}", i % u64::from(keys)), opts).await;
                let r = r.map_err(anyhow::Error::from).and_then(|r| {
                    ensure!(r.kvs().len() == 1, "key missing");
                    Ok(())
                });
                (c, r)
            })
            .await?;
            eprintln!("[etcd query] {label} k={k}: {} reads", lat.len());
            let rate = lat.len() as f64 / wall.as_secs_f64();
            rows.push(Row::new("query", &format!("{label} k={k}"), System::Etcd, lat, Some(rate)));
        }
    }
    let detail = servers.detail.clone();
    drop(servers);
    Ok((super::rows_json("query", System::Etcd, &detail, &rows), rows))
}

/// GetPartitionLeader's ZooKeeper equivalent: getData of a partition's
/// znode (LOCAL: the connected server's state), or `sync` then getData
/// (LINEARIZABLE: ZooKeeper's recipe for a read that sees every write
/// committed before the sync). Each client has its own session on the leader.
pub async fn zk_query(
    options: &Options,
    base: &BaselineOptions,
    levels: &[u32],
    duration: Duration,
    keys: u32,
) -> anyhow::Result<(Value, Vec<Row>)> {
    use zookeeper_client::{Acls, Client, CreateMode};
    let servers = Servers::start(System::Zookeeper, options, base).await?;
    let leader_ep = servers.endpoints[servers.leader].clone();
    let connect = |ep: String| async move {
        anyhow::Ok(Client::connector().with_session_timeout(Duration::from_secs(10)).connect(&ep).await?)
    };
    let setup = connect(leader_ep.clone()).await?;
    let persistent = CreateMode::Persistent.with_acls(Acls::anyone_all());
    setup.create("/q", b"", &persistent).await?;
    for p in 0..keys {
        setup.create(&format!("/q/p-{p}"), ((p % 3) + 1).to_string().as_bytes(), &persistent).await?;
    }
    // The JVM compiles its hot paths during the first few thousand requests.
    for i in 0..2 * WARMUP * 10 {
        let path = format!("/q/p-{}", i % keys);
        setup.sync(&path).await?;
        setup.get_data(&path).await?;
    }
    let mut rows = Vec::new();
    for (label, sync) in [("LOCAL", false), ("LINEARIZABLE", true)] {
        for &k in levels {
            let mut clients = Vec::new();
            for _ in 0..k {
                clients.push(connect(leader_ep.clone()).await?);
            }
            let (lat, wall) = closed_loop(clients, duration, move |c: Client, i| async move {
                let path = format!("/q/p-{}", i % u64::from(keys));
                let r = async {
                    if sync {
                        c.sync(&path).await?;
                    }
                    let (data, _) = c.get_data(&path).await?;
                    ensure!(!data.is_empty(), "empty znode");
                    anyhow::Ok(())
                }
                .await;
                (c, r)
            })
            .await?;
            eprintln!("[zookeeper query] {label} k={k}: {} reads", lat.len());
            let rate = lat.len() as f64 / wall.as_secs_f64();
            rows.push(Row::new("query", &format!("{label} k={k}"), System::Zookeeper, lat, Some(rate)));
        }
    }
    let detail = servers.detail.clone();
    drop(servers);
    Ok((super::rows_json("query", System::Zookeeper, &detail, &rows), rows))
}

/// Put latency (etcd: fsynced WAL on a quorum) or persistent znode create
/// (ZooKeeper: fsynced txn log on a quorum), through one client connection
/// to the leader, `count` writes per concurrency level.
pub async fn baseline_commit(
    options: &Options,
    base: &BaselineOptions,
    system: System,
    count: u32,
    levels: &[u32],
) -> anyhow::Result<(Value, Vec<Row>)> {
    let servers = Servers::start(system, options, base).await?;
    let mut rows = Vec::new();
    match system {
        System::Etcd => {
            let client = etcd_connect(&servers.endpoints[servers.leader]).await?;
            for i in 0..WARMUP {
                client.clone().put(format!("/warmup/{i}"), "x", None).await?;
            }
            for &c in levels {
                let (lat, wall) =
                    fixed_count(count, c, client.clone(), |mut cl: etcd_client::Client, name| async move {
                        let r = cl.put(name, "0123456789abcdef", None).await.map(|_| ()).map_err(anyhow::Error::from);
                        (cl, r)
                    })
                    .await?;
                let rate = lat.len() as f64 / wall.as_secs_f64();
                rows.push(Row::new("commit", &format!("C={c}"), system, lat, Some(rate)));
            }
        }
        System::Zookeeper => {
            let client = std::sync::Arc::new(
                zookeeper_client::Client::connector()
                    .with_session_timeout(Duration::from_secs(10))
                    .connect(&servers.endpoints_flag())
                    .await?,
            );
            let persistent = zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all());
            client.create("/c", b"", &persistent).await?;
            // The JVM compiles its hot paths during the first few hundred requests.
            client.create("/w", b"", &persistent).await?;
            for i in 0..WARMUP {
                client.create(&format!("/w/{i}"), b"x", &persistent).await?;
            }
            for &c in levels {
                let (lat, wall) = fixed_count(
                    count,
                    c,
                    client.clone(),
                    |cl: std::sync::Arc<zookeeper_client::Client>, name| async move {
                        let mode =
                            zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all());
                        let r = cl.create(&format!("/c/{}", name.replace('/', "-")), b"0123456789abcdef", &mode).await;
                        (cl, r.map(|_| ()).map_err(anyhow::Error::from))
                    },
                )
                .await?;
                let rate = lat.len() as f64 / wall.as_secs_f64();
                rows.push(Row::new("commit", &format!("C={c}"), system, lat, Some(rate)));
            }
        }
        System::Baton => bail!("not a baseline"),
    }
    let detail = servers.detail.clone();
    drop(servers);
    Ok((super::rows_json("commit", system, &detail, &rows), rows))
}

/// Writes before the measured ones (Baton's commit bench does 20; the
/// baselines get more because ZooKeeper runs on a JIT-compiling JVM).
const WARMUP: u32 = 200;

/// `count` writes split over `c` concurrent callers sharing `client`.
async fn fixed_count<C, F, Fut>(count: u32, c: u32, client: C, op: F) -> anyhow::Result<(Vec<f64>, Duration)>
where
    C: Clone + Send + 'static,
    F: Fn(C, String) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = (C, anyhow::Result<()>)> + Send,
{
    eprintln!("[commit] concurrency {c}: {count} writes");
    let started = Instant::now();
    let tasks: Vec<_> = (0..c)
        .map(|w| {
            let (op, client) = (op.clone(), client.clone());
            tokio::spawn(async move {
                let mut client = client;
                let mut lat = Vec::new();
                for i in (0..count).filter(|i| i % c == w) {
                    let t = Instant::now();
                    let (cl, r) = op(client, format!("/c{c}/w{w}/{i}")).await;
                    client = cl;
                    r?;
                    lat.push(ms(t.elapsed()));
                }
                anyhow::Ok(lat)
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    Ok((all, started.elapsed()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_view_and_milestone_lines() {
        assert_eq!(
            parse_event(r#"{"p":7,"l":2,"t":123,"k":"won"}"#),
            Some(BrokerEvent::View { p: 7, leader: 2, t: 123, how: "won".into() })
        );
        assert_eq!(
            parse_event(r#"{"ev":"lease","t":5,"detail":"granted 2 s"}"#),
            Some(BrokerEvent::Milestone { ev: "lease".into(), t: 5, detail: "granted 2 s".into() })
        );
        assert_eq!(parse_event("{\"p\":1"), None);
    }

    #[test]
    fn failover_is_the_later_survivor_and_ignores_events_before_t0() {
        let view = |p, leader, t| BrokerEvent::View { p, leader, t, how: String::new() };
        let t0 = 1_000_000;
        // Broker 2: saw partition 0 move to 2 before t0 (ignored), then to 3 at +2 ms.
        let b2 =
            vec![view(0, 2, 10), view(0, -1, t0 + 500_000), view(0, 3, t0 + 2_000_000), view(1, 2, t0 + 1_000_000)];
        // Broker 3: partition 0 at +1 ms, partition 1 never.
        let b3 = vec![view(0, 3, t0 + 1_000_000)];
        let tracked = [0, 1];
        let moves = [first_moves(&b2, t0, 1, &tracked), first_moves(&b3, t0, 1, &tracked)];
        let (times, missing, winners) = failover_times(&moves, &tracked, t0);
        assert_eq!(times, vec![2.0]);
        assert_eq!(missing, 1);
        assert_eq!(winners.get(&3), Some(&1));
        assert_eq!(
            first_deleted(&[BrokerEvent::View { p: 0, leader: -1, t: t0 + 5, how: "deleted".into() }], t0),
            Some(t0 + 5)
        );
    }
}
