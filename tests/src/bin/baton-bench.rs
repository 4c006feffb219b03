//! `baton-bench`: benchmarks against real `baton-controller` processes on
//! loopback (see docs/BENCHMARKS.md for the figures and how they were taken).
//!
//! Scenarios (one subcommand each; `--help` on each explains it):
//! - `failover-crash`: kill -9 a broker (a real `baton-agent` sidecar process)
//!   and time, per partition it led, when both surviving brokers (in-process
//!   `baton_agent::Agent` instances) enforce the new leader.
//! - `failover-hang`: the same with SIGSTOP (fenced only by session timeout),
//!   plus a check that no new leader was allowed before the paused broker's
//!   lease had surely lapsed.
//!   `--mode cut` isolates broker 1 instead: its sidecar reaches the
//!   controllers only through three TCP fault proxies, all cut at once
//!   (blackholed, sockets left open); its own Check must refuse once its lease
//!   lapsed, and after the heal it must register again.
//! - `commit`: client-visible propose-to-applied latency of small writes.
//! - `query`: GetPartitionLeader (LOCAL and LINEARIZABLE) throughput and
//!   latency with k concurrent clients.
//! - `check`: ns per `Agent::check_produce`.
//! - `scale`: a million partitions, a thousand brokers: controller CPU and
//!   RSS, heartbeats/s, snapshot size, restart, mass election (`bench/scale.rs`).
//! - `compare`: the scenarios above side by side for Baton, etcd and
//!   ZooKeeper, with ratios (and `--png` latency charts).
//!
//! `--system etcd|zookeeper` runs failover-crash, failover-hang (sigstop),
//! commit and query against a baseline instead of Baton: see
//! `bench/baseline.rs`. That needs the `baselines` feature
//! (`cargo build --release -p baton-tests --features baselines`) and the
//! servers from `scripts/install-baselines.sh`.
//!
//! Every process started is killed when the bench exits, also on panic,
//! Ctrl-C or SIGTERM (Drop guards); all traffic stays on 127.0.0.1.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hint::black_box;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use baton_agent::{Agent, AgentConfig};
use baton_proto::v1::agent_client::AgentClient;
use baton_proto::v1::controller_client::ControllerClient;
use baton_proto::v1::{
    BrokerState, CheckKind, CheckRequest, CreateTopicRequest, DescribeQuorumRequest, DescribeTopicRequest,
    ListBrokersRequest, WatchLeadershipRequest,
};
use baton_tests::nemesis::proxy::Proxy;
use clap::{Parser, Subcommand, ValueEnum};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use tonic::transport::Channel;

/// The allocator the shipped binaries use (baton-controller, baton-agent),
/// so the in-process agents standing in for brokers 2 and 3 apply updates
/// as the sidecar does (docs/BENCHMARKS.md, "Bottlenecks found" 5).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[cfg(feature = "baselines")]
#[path = "../bench/baseline.rs"]
mod baseline;
#[cfg(feature = "baselines")]
#[path = "../bench/chart.rs"]
mod chart;
#[path = "../bench/cut.rs"]
mod cut;
#[path = "../bench/scale.rs"]
mod scale;
#[path = "../bench/simbroker.rs"]
mod simbroker;

const TOPIC: &str = "bench";
/// Largest gRPC message the bench accepts (a 30k-partition DescribeTopic is ~2 MB).
const MAX_MESSAGE: usize = 64 << 20;

#[derive(Parser, Debug)]
#[command(
    name = "baton-bench",
    about = "Benchmarks for Baton: failover after a broker crash or hang, controller commit latency, agent checks",
    long_about = "Benchmarks for Baton. Each subcommand starts a fresh cluster of real baton-controller \
                  processes (3, loopback, fresh temp data dirs), measures, prints a table and tears \
                  everything down. Build in release first: cargo build --release --bins; the controller \
                  and agent binaries are looked up next to this executable."
)]
struct Cli {
    /// Also write the results as JSON to this file.
    #[arg(long, global = true)]
    json: Option<PathBuf>,
    /// Folder holding baton-controller and baton-agent [default: this executable's folder].
    #[arg(long, global = true)]
    bin_dir: Option<PathBuf>,
    /// Parent folder of the temporary data dirs [default: the system temp dir].
    #[arg(long, global = true)]
    data_root: Option<PathBuf>,
    /// Keep each cluster's data dirs and logs (their path is printed).
    #[arg(long, global = true)]
    keep_logs: bool,
    /// Extra environment for the controllers, KEY=VALUE (repeatable),
    /// e.g. BATON_LIVENESS__SESSION_TIMEOUT_MS=5000.
    #[arg(long = "controller-env", global = true, value_parser = parse_env)]
    controller_env: Vec<(String, String)>,
    /// The system measured by failover-crash, failover-hang (sigstop), commit
    /// and query: Baton, or a baseline (needs the `baselines` feature and
    /// scripts/install-baselines.sh).
    #[arg(long, global = true, value_enum, default_value_t = System::Baton)]
    system: System,
    /// Also draw the latency distributions (CDFs, log time axis) as a PNG.
    /// With `compare` and several scenarios, one file per scenario:
    /// PATH with the scenario's name before the extension.
    #[arg(long, global = true)]
    png: Option<PathBuf>,
    /// etcd binary (baselines).
    #[arg(long, global = true, default_value = "etcd")]
    etcd_bin: String,
    /// Lease TTL the etcd brokers ask for, in seconds; etcd raises it to its
    /// minimum, ceil(1.5 × election timeout) = 2 s with the default settings.
    #[arg(long, global = true, default_value_t = 1)]
    etcd_ttl_secs: i64,
    /// ZooKeeper tickTime, ms; the shortest session timeout is 2 × tickTime.
    #[arg(long, global = true, default_value_t = 2000)]
    zk_tick_ms: u64,
    /// ZooKeeper servers: 3 (an ensemble) or 1 (standalone).
    #[arg(long, global = true, default_value_t = 3)]
    zk_nodes: usize,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
enum System {
    Baton,
    Etcd,
    Zookeeper,
}

impl System {
    fn name(self) -> &'static str {
        match self {
            System::Baton => "baton",
            System::Etcd => "etcd",
            System::Zookeeper => "zookeeper",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Scenario {
    FailoverCrash,
    FailoverHang,
    Query,
    Commit,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// kill -9 broker 1 (a real baton-agent sidecar process) and time, for every
    /// partition it led, the instant both surviving brokers (in-process agents 2
    /// and 3) enforce the new leader: the non-leader's view names a leader other
    /// than 1, and the new leader's check_produce returns Ok. Topic "bench" has
    /// 3N partitions, replication factor 3, so broker 1 leads N.
    FailoverCrash {
        /// N: partitions led by the crashed broker (the topic gets 3N).
        #[arg(long, default_value_t = 1000)]
        partitions: u32,
        /// Repetitions, each with a fresh cluster.
        #[arg(long, default_value_t = 3)]
        runs: u32,
        /// Give up on a run after this many seconds past the fault.
        #[arg(long, default_value_t = 30)]
        timeout_secs: u64,
    },
    /// As failover-crash, but broker 1 hangs (SIGSTOP) instead: it is fenced
    /// only after the session timeout. Also counts overlap violations: a
    /// surviving agent allowed a produce on one of broker 1's partitions before
    /// broker 1's lease had surely lapsed (signal delivered + lease_ms). SIGCONT
    /// and cleanup after each run. With --mode cut, broker 1 is cut off by TCP
    /// fault proxies instead; its own Check must refuse once its lease lapsed,
    /// and after the heal it must register again.
    FailoverHang {
        #[arg(long, default_value_t = 1000)]
        partitions: u32,
        /// How the broker hangs.
        #[arg(long, value_enum, default_value_t = HangMode::Sigstop)]
        mode: HangMode,
        #[arg(long, default_value_t = 3)]
        runs: u32,
        /// The controllers' lease (must match BATON_LIVENESS__LEASE_MS if you set it).
        #[arg(long, default_value_t = 1500)]
        lease_ms: u64,
        /// The controllers' session timeout (must match BATON_LIVENESS__SESSION_TIMEOUT_MS if set).
        #[arg(long, default_value_t = 3000)]
        session_timeout_ms: u64,
        /// Give up on a run after session timeout plus this many seconds.
        #[arg(long, default_value_t = 30)]
        timeout_secs: u64,
    },
    /// Propose-to-applied latency as a client sees it: COUNT CreateTopic calls
    /// (1 partition, replication factor 1, unique names; one raft entry each,
    /// fsynced on a quorum) sent to the controller leader, COUNT per
    /// concurrency level, each level split over C concurrent callers.
    Commit {
        /// Writes per concurrency level.
        #[arg(long, default_value_t = 500)]
        count: u32,
        /// Concurrency levels, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1,16")]
        concurrency: Vec<u32>,
        /// Include every write's start offset and latency (ms) in the JSON.
        #[arg(long)]
        samples: bool,
    },
    /// GetPartitionLeader throughput and latency: k concurrent clients (one
    /// connection each, to the controller leader) each asking back to back
    /// for a random partition's leader, LOCAL then LINEARIZABLE, for SECS
    /// seconds per level. With --system etcd: Get of the partition's key,
    /// serializable then linearizable; with --system zookeeper: getData of
    /// the partition's znode, then sync + getData.
    Query {
        /// Client counts, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
        clients: Vec<u32>,
        /// Seconds per (consistency, client count).
        #[arg(long, default_value_t = 3.0)]
        secs: f64,
        /// Partitions (keys) the reads spread over.
        #[arg(long, default_value_t = 1000)]
        partitions: u32,
    },
    /// The scenarios side by side for several systems, in one run on this
    /// machine: one table per scenario with each system's figures and its
    /// ratio to Baton's.
    Compare {
        #[arg(long, value_delimiter = ',', default_value = "baton,etcd,zookeeper")]
        systems: Vec<System>,
        #[arg(long, value_delimiter = ',', default_value = "failover-crash,failover-hang,query,commit")]
        scenarios: Vec<Scenario>,
        /// N for the failover scenarios (broker 1 leads N of 3N).
        #[arg(long, default_value_t = 1000)]
        partitions: u32,
        /// Runs of failover-crash per system.
        #[arg(long, default_value_t = 3)]
        runs: u32,
        /// Runs of failover-hang (sigstop) per system.
        #[arg(long, default_value_t = 3)]
        hang_runs: u32,
        /// query: client counts.
        #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
        clients: Vec<u32>,
        /// query: seconds per level.
        #[arg(long, default_value_t = 3.0)]
        secs: f64,
        /// commit: writes per concurrency level.
        #[arg(long, default_value_t = 500)]
        count: u32,
        /// commit: concurrency levels.
        #[arg(long, value_delimiter = ',', default_value = "1,16")]
        concurrency: Vec<u32>,
    },
    /// A quorum holding a million partitions with a thousand brokers: broker
    /// 1 is a baton-agent sidecar process, brokers 2..=B are agents in this
    /// process (one session each, heartbeating every 500 ms with progress
    /// deltas), all with a hosted view unless --full-view. Creates T topics of
    /// P partitions (batched commit rate), then measures a steady window
    /// (controller CPU and RSS, heartbeats/s), the size of a snapshot of the
    /// whole state, a follower controller's kill -9 and restart (restored,
    /// serving and caught up), and the mass election when broker 1 (leading
    /// about 1/B of the partitions) is killed. See tests/src/bench/scale.rs.
    Scale(scale::ScalePlan),
    /// ns per check_produce on 1 and 2 threads: an in-process agent (no
    /// session) fed 1600 partitions through baton_agent::testing, half led.
    Check {
        /// Calls per measurement.
        #[arg(long, default_value_t = 5_000_000)]
        calls: u64,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum HangMode {
    /// SIGSTOP the sidecar process (its connections stay open; nothing answers).
    Sigstop,
    /// Network cut: the sidecar reaches the controllers only through three TCP
    /// fault proxies (one per controller, the leader's first); all three are
    /// cut at once (blackholed both ways, sockets left open). The sidecar keeps
    /// running and answers Check on loopback. Healed after the measurement.
    Cut,
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))?;
    Ok((k.to_owned(), v.to_owned()))
}

struct Options {
    bin_dir: PathBuf,
    data_root: Option<PathBuf>,
    keep_logs: bool,
    controller_env: Vec<(String, String)>,
    #[cfg(feature = "baselines")]
    base: baseline::BaselineOptions,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let bin_dir = match &cli.bin_dir {
        Some(d) => d.clone(),
        None => std::env::current_exe()?.parent().context("executable folder")?.to_path_buf(),
    };
    let options = Options {
        bin_dir,
        data_root: cli.data_root.clone(),
        keep_logs: cli.keep_logs,
        controller_env: cli.controller_env.clone(),
        #[cfg(feature = "baselines")]
        base: baseline::BaselineOptions {
            etcd_bin: cli.etcd_bin.clone(),
            etcd_ttl_secs: cli.etcd_ttl_secs,
            zk_tick_ms: cli.zk_tick_ms,
            zk_nodes: cli.zk_nodes,
        },
    };
    #[cfg(not(feature = "baselines"))]
    let _ = (&cli.etcd_bin, cli.etcd_ttl_secs, cli.zk_tick_ms, cli.zk_nodes);
    if let Cmd::Check { calls } = cli.command {
        ensure!(cli.system == System::Baton, "check measures Baton's agent only");
        let result = check_bench(calls);
        return write_json(cli.json.as_deref(), &result);
    }
    let mut systems = vec![cli.system];
    if let Cmd::Compare { systems: s, .. } = &cli.command {
        systems.clone_from(s);
    }
    if cli.png.is_some() || systems.iter().any(|s| *s != System::Baton) {
        require_baselines(&options, &systems)?;
    }
    for bin in ["baton-controller", "baton-agent"] {
        ensure!(
            options.bin_dir.join(bin).exists(),
            "{} is missing: run `cargo build --release --bins` (or pass --bin-dir)",
            options.bin_dir.join(bin).display()
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = runtime.block_on(async {
        let work = async {
            let system = cli.system;
            let (value, rows) = match cli.command {
                Cmd::FailoverCrash { partitions, runs, timeout_secs } => {
                    let timeout = Duration::from_secs(timeout_secs);
                    if system == System::Baton {
                        failover(&options, Fault::Crash, partitions, runs, timeout, 0).await?
                    } else {
                        baseline_failover(&options, system, Fault::Crash, partitions, runs, timeout).await?
                    }
                }
                Cmd::FailoverHang { partitions, mode, runs, lease_ms, session_timeout_ms, timeout_secs } => {
                    let fault = match mode {
                        HangMode::Sigstop => Fault::Sigstop,
                        HangMode::Cut => Fault::Cut,
                    };
                    let timeout = Duration::from_millis(session_timeout_ms) + Duration::from_secs(timeout_secs);
                    if system == System::Baton {
                        failover(&options, fault, partitions, runs, timeout, lease_ms).await?
                    } else {
                        baseline_failover(&options, system, fault, partitions, runs, timeout).await?
                    }
                }
                Cmd::Commit { count, concurrency, samples } => {
                    if system == System::Baton {
                        commit_bench(&options, count, &concurrency, samples).await?
                    } else {
                        baseline_commit(&options, system, count, &concurrency).await?
                    }
                }
                Cmd::Query { clients, secs, partitions } => query(&options, system, &clients, secs, partitions).await?,
                Cmd::Compare { systems, scenarios, partitions, runs, hang_runs, clients, secs, count, concurrency } => {
                    let plan = ComparePlan { partitions, runs, hang_runs, clients, secs, count, concurrency };
                    return compare(&options, &systems, &scenarios, &plan, cli.png.as_deref()).await;
                }
                Cmd::Scale(plan) => {
                    ensure!(system == System::Baton, "scale measures Baton only");
                    let mut options = options;
                    let key = "BATON_RAFT__SNAPSHOT_INTERVAL_ENTRIES";
                    if !options.controller_env.iter().any(|(k, _)| k == key) {
                        // The default (10,000 entries) is more than a scale run
                        // writes: snapshot every 1,000 so one covers the state.
                        println!("scale: controllers run with {key}=1000");
                        options.controller_env.push((key.into(), "1000".into()));
                    }
                    scale::scale(&options, &plan).await?
                }
                Cmd::Check { .. } => unreachable!("handled above"),
            };
            if let Some(png) = &cli.png {
                draw_png(png, &rows)?;
            }
            anyhow::Ok(value)
        };
        // Dropping `work` on a signal drops the cluster, whose guards kill every process.
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = work => r,
            _ = tokio::signal::ctrl_c() => bail!("interrupted"),
            _ = term.recv() => bail!("terminated"),
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(2));
    let result = result?;
    write_json(cli.json.as_deref(), &result)
}

fn write_json(path: Option<&Path>, value: &Value) -> anyhow::Result<()> {
    if let Some(path) = path {
        let mut v = value.clone();
        v["machine"] = machine_info();
        std::fs::write(path, serde_json::to_vec_pretty(&v)?).with_context(|| format!("writing {}", path.display()))?;
        println!("JSON written to {}", path.display());
    }
    Ok(())
}

fn machine_info() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim().to_owned();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    json!({ "cpu": cpu, "cores": cores, "loadavg_at_end": load })
}

// ---------------------------------------------------------------- statistics

#[derive(Clone, Copy, Debug)]
struct Stats {
    n: usize,
    median: f64,
    p99: f64,
    max: f64,
    min: f64,
}

/// Nearest-rank percentiles over a sorted copy.
fn stats(values: &[f64]) -> Option<Stats> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    Some(Stats { n: v.len(), median: rank(0.5), p99: rank(0.99), max: v[v.len() - 1], min: v[0] })
}

fn stats_json(s: Option<Stats>) -> Value {
    match s {
        Some(s) => json!({ "n": s.n, "min": s.min, "median": s.median, "p99": s.p99, "max": s.max }),
        None => Value::Null,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

// ------------------------------------------------------------------ processes

/// A child process killed (and reaped) on drop.
struct Proc {
    name: String,
    child: Option<Child>,
    stopped: bool,
}

impl Proc {
    fn spawn(bin: &Path, name: &str, args: &[String], env: &[(String, String)], log: &Path) -> anyhow::Result<Proc> {
        let log = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let child = Command::new(bin)
            .args(args)
            .envs(baton_tests::plaintext_unless_tls(env))
            .envs(env.iter().cloned())
            .env("NO_COLOR", "1")
            .env("RUST_LOG", std::env::var("BATON_BENCH_LOG").unwrap_or_else(|_| "info,raft=warn,h2=warn".into()))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawning {}", bin.display()))?;
        Ok(Proc { name: name.to_owned(), child: Some(child), stopped: false })
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL (std sends it straight from this process: no fork in between), then reap.
    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn signal(&mut self, sig: &str) -> anyhow::Result<()> {
        let pid = self.pid().with_context(|| format!("{} is not running", self.name))?;
        let status = Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).status()?;
        ensure!(status.success(), "kill -{sig} {pid} failed");
        match sig {
            "STOP" => self.stopped = true,
            "CONT" => self.stopped = false,
            _ => {}
        }
        Ok(())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.stopped {
            let _ = self.signal("CONT");
        }
        self.kill9();
    }
}

async fn controller_client(addr: &str) -> anyhow::Result<ControllerClient<Channel>> {
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?.tcp_nodelay(true).connect().await?;
    Ok(ControllerClient::new(channel).max_decoding_message_size(MAX_MESSAGE).max_encoding_message_size(MAX_MESSAGE))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Three controllers, an optional sidecar for broker 1, and in-process agents.
struct Cluster {
    dir: Option<tempfile::TempDir>,
    keep_logs: bool,
    controllers: Vec<Proc>,
    controller_addrs: Vec<String>,
    /// Each controller's Prometheus endpoint (`--metrics-listen`).
    metrics_addrs: Vec<String>,
    sidecar: Option<Proc>,
    sidecar_addr: String,
    /// `--mode cut` only: one fault proxy per controller (index = controller
    /// index); broker 1's sidecar is given only these addresses.
    proxies: Vec<Proxy>,
    agents: Vec<Agent>,
}

impl Cluster {
    /// `proxied`: broker 1's sidecar reaches the controllers only through
    /// [`Cluster::proxies`] (see `cut.rs` for why the leader's proxy goes first
    /// and how that is verified).
    /// `hosted_view`: every broker asks for only the partitions it hosts
    /// (`AgentConfig::hosted_view`).
    async fn start(
        options: &Options,
        sidecar: bool,
        proxied: bool,
        lib_agents: &[i32],
        hosted_view: bool,
    ) -> anyhow::Result<Cluster> {
        let mut builder = tempfile::Builder::new();
        builder.prefix("baton-bench-");
        let dir = match &options.data_root {
            Some(root) => {
                std::fs::create_dir_all(root)?;
                builder.tempdir_in(root)?
            }
            None => builder.tempdir()?,
        };
        let controller_addrs: Vec<String> =
            (0..3).map(|_| free_port().map(|p| format!("127.0.0.1:{p}"))).collect::<anyhow::Result<_>>()?;
        let metrics_addrs: Vec<String> =
            (0..3).map(|_| free_port().map(|p| format!("127.0.0.1:{p}"))).collect::<anyhow::Result<_>>()?;
        let mut cluster = Cluster {
            dir: Some(dir),
            keep_logs: options.keep_logs,
            controllers: Vec::new(),
            controller_addrs: controller_addrs.clone(),
            metrics_addrs,
            sidecar: None,
            sidecar_addr: String::new(),
            proxies: Vec::new(),
            agents: Vec::new(),
        };
        for i in 0..controller_addrs.len() {
            let proc = cluster.spawn_controller(options, i, "")?;
            cluster.controllers.push(proc);
        }
        let controllers_flag = controller_addrs.join(",");
        let leader = cluster.wait_leader(Duration::from_secs(30)).await?;
        let mut expected = 0;
        if sidecar {
            cluster.sidecar_addr = format!("127.0.0.1:{}", free_port()?);
            let flag = if proxied {
                for addr in &controller_addrs {
                    cluster.proxies.push(Proxy::start(addr.parse()?).await?);
                }
                cluster.proxied_controllers_flag(leader)
            } else {
                controllers_flag.clone()
            };
            let env = if hosted_view { vec![("BATON_AGENT_HOSTED_VIEW".into(), "true".into())] } else { Vec::new() };
            cluster.spawn_sidecar(options, &flag, 0, &env)?;
            expected += 1;
        }
        for &id in lib_agents {
            let mut config = AgentConfig::new(id, controller_addrs.clone(), format!("127.0.0.1:{}", 19090 + id));
            config.rack = format!("rack-{id}");
            // The bench measures the control plane, on loopback, without TLS.
            config.tls = baton_security::TlsConfig { plaintext: true, ..Default::default() };
            config.hosted_view = hosted_view;
            cluster.agents.push(Agent::start(config));
            expected += 1;
        }
        for agent in &cluster.agents {
            agent.wait_registered(Duration::from_secs(30)).await.context("in-process agent registration")?;
        }
        let mut client = cluster.client(leader).await?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let alive = match client.list_brokers(ListBrokersRequest {}).await {
                Ok(r) => r.into_inner().brokers.iter().filter(|b| b.state == BrokerState::Alive as i32).count(),
                Err(_) => 0,
            };
            if alive == expected {
                break;
            }
            ensure!(Instant::now() < deadline, "only {alive} of {expected} brokers alive after 30 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if sidecar && proxied {
            cluster.ensure_sidecar_proxied(options).await?;
        }
        Ok(cluster)
    }

    /// The sidecar's --controllers in cut mode: the proxies' addresses, the
    /// leader's first, so it registers and opens its session on the leader
    /// through a proxy and is never sent a `baton-leader` hint (which names a
    /// real controller address and would bypass the proxies).
    fn proxied_controllers_flag(&self, leader: usize) -> String {
        let n = self.proxies.len();
        (0..n).map(|i| self.proxies[(leader + i) % n].addr().to_string()).collect::<Vec<_>>().join(",")
    }

    /// Starts controller `index` (0-based) on its data dir, address and
    /// metrics address; `suffix` names a restart's log (`controller-2.restart.log`).
    fn spawn_controller(&self, options: &Options, index: usize, suffix: &str) -> anyhow::Result<Proc> {
        let id = index + 1;
        let root = self.path();
        let peers = self
            .controller_addrs
            .iter()
            .enumerate()
            .map(|(i, a)| format!("{}={a}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let args = vec![
            "--id".into(),
            id.to_string(),
            "--data-dir".into(),
            root.join(format!("controller-{id}")).to_string_lossy().into_owned(),
            "--listen".into(),
            self.controller_addrs[index].clone(),
            "--peers".into(),
            peers,
            "--metrics-listen".into(),
            self.metrics_addrs[index].clone(),
        ];
        Proc::spawn(
            &options.bin_dir.join("baton-controller"),
            &format!("controller-{id}"),
            &args,
            &options.controller_env,
            &root.join(format!("controller-{id}{suffix}.log")),
        )
    }

    fn spawn_sidecar(
        &mut self,
        options: &Options,
        controllers: &str,
        attempt: u32,
        env: &[(String, String)],
    ) -> anyhow::Result<()> {
        let args = vec![
            "--broker-id".into(),
            "1".into(),
            "--controllers".into(),
            controllers.to_owned(),
            "--advertised".into(),
            "127.0.0.1:19091".into(),
            "--listen".into(),
            self.sidecar_addr.clone(),
            "--rack".into(),
            "rack-1".into(),
        ];
        let log = if attempt == 0 { "agent-1".to_owned() } else { format!("agent-1.attempt{attempt}") };
        let path = self.path().join(format!("{log}.log"));
        self.sidecar = Some(Proc::spawn(&options.bin_dir.join("baton-agent"), "agent-1", &args, env, &path)?);
        Ok(())
    }

    fn real_ports(&self) -> Vec<u16> {
        self.controller_addrs.iter().filter_map(|a| a.rsplit_once(':')?.1.parse().ok()).collect()
    }

    fn proxy_ports(&self) -> Vec<u16> {
        self.proxies.iter().map(|p| p.addr().port()).collect()
    }

    fn sidecar_pid(&self) -> anyhow::Result<u32> {
        self.sidecar.as_ref().and_then(Proc::pid).context("no sidecar")
    }

    async fn sidecar_client(&self) -> anyhow::Result<AgentClient<Channel>> {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", self.sidecar_addr))?
            .tcp_nodelay(true)
            .connect()
            .await?;
        Ok(AgentClient::new(channel))
    }

    /// Where the sidecar's session is now (Status + its sockets).
    async fn sidecar_placement(&self) -> anyhow::Result<cut::Placement> {
        let mut client = self.sidecar_client().await?;
        Ok(cut::placement(&mut client, self.sidecar_pid()?, &self.real_ports(), &self.proxy_ports()).await)
    }

    /// Cut mode: waits for the sidecar's session and checks it goes through a
    /// proxy. If it followed a leader hint to a real controller address (the
    /// leader changed between our look-up and its registration), the sidecar
    /// is restarted with the new leader's proxy first (it leads nothing yet,
    /// so that costs nothing); after 3 tries the run fails.
    async fn ensure_sidecar_proxied(&mut self, options: &Options) -> anyhow::Result<()> {
        for attempt in 0..3u32 {
            let deadline = Instant::now() + Duration::from_secs(15);
            let placement = loop {
                let p = self.sidecar_placement().await;
                if let Ok(p) = &p
                    && p.connected == Some(true)
                {
                    // Let a redirect that is under way show up in the sockets.
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    break self.sidecar_placement().await?;
                }
                ensure!(Instant::now() < deadline, "broker 1's sidecar never opened its session ({p:?})");
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            if placement.isolated() {
                eprintln!("[cut] broker 1's session goes through a proxy: {}", placement.describe());
                return Ok(());
            }
            eprintln!(
                "[cut] attempt {}: broker 1's sidecar bypasses the proxies (it followed a leader hint): {}",
                attempt + 1,
                placement.describe()
            );
            self.keep_logs = true;
            if attempt == 2 {
                break;
            }
            eprintln!("[cut] restarting broker 1's sidecar with the current leader's proxy first");
            if let Some(mut p) = self.sidecar.take() {
                p.kill9();
            }
            let leader = self.wait_leader(Duration::from_secs(30)).await?;
            let flag = self.proxied_controllers_flag(leader);
            // The next pass waits for the new sidecar's session (it registers first).
            self.spawn_sidecar(options, &flag, attempt + 1, &[])?;
        }
        bail!("broker 1's sidecar bypassed the proxies 3 times in a row; cannot isolate it")
    }

    fn path(&self) -> &Path {
        self.dir.as_ref().map(|d| d.path()).expect("cluster dir")
    }

    async fn client(&self, index: usize) -> anyhow::Result<ControllerClient<Channel>> {
        controller_client(&self.controller_addrs[index]).await
    }

    /// Index (0-based) of the raft leader, once one is known.
    async fn wait_leader(&self, timeout: Duration) -> anyhow::Result<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            for i in 0..self.controller_addrs.len() {
                if let Ok(mut c) = self.client(i).await
                    && let Ok(q) = c.describe_quorum(DescribeQuorumRequest {}).await
                {
                    let leader = q.into_inner().leader as usize;
                    if (1..=self.controller_addrs.len()).contains(&leader) {
                        return Ok(leader - 1);
                    }
                }
            }
            ensure!(Instant::now() < deadline, "no controller leader after {timeout:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.path().join(format!("{name}.log"))).unwrap_or_default()
    }

    /// Stops the in-process agents cleanly (while the controllers still run),
    /// then kills every process.
    async fn stop(mut self) {
        for agent in std::mem::take(&mut self.agents) {
            agent.shutdown().await;
        }
        // Drop does the rest.
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.sidecar = None;
        self.proxies.clear();
        self.controllers.clear();
        if (self.keep_logs || std::thread::panicking())
            && let Some(dir) = self.dir.take()
        {
            eprintln!("cluster data and logs kept in {}", dir.keep().display());
        }
    }
}

// ------------------------------------------------------------------- failover

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fault {
    Crash,
    Sigstop,
    Cut,
}

impl Fault {
    /// Broker 1 stays alive (fenced only by session timeout): lease overlap is checked.
    fn hang(self) -> bool {
        matches!(self, Fault::Sigstop | Fault::Cut)
    }
}

/// When one surviving agent first enforced the new leader of a partition.
#[derive(Clone, Copy, Default)]
struct Seen {
    at: Option<Instant>,
    /// The new leader as that agent saw it.
    leader: i32,
}

/// Records, per tracked partition, the first instant `agent`'s view names a
/// leader other than `old` (and, if `agent` is that leader, check_produce is Ok).
async fn record_agent(
    agent: Agent,
    mut rx: tokio::sync::broadcast::Receiver<baton_agent::LeadershipEvent>,
    tracked: Arc<HashSet<i32>>,
    old: i32,
    deadline: tokio::time::Instant,
) -> HashMap<i32, Seen> {
    let me = agent.status().broker_id;
    let mut seen: HashMap<i32, Seen> = HashMap::with_capacity(tracked.len());
    // New leader is this agent, but check_produce not yet Ok (lease): polled.
    let mut pending: HashSet<i32> = HashSet::new();
    let mut poll = tokio::time::interval(Duration::from_millis(1));
    let consider = |p: i32, leader: i32, now: Instant, seen: &mut HashMap<i32, Seen>, pending: &mut HashSet<i32>| {
        if !tracked.contains(&p) || seen.contains_key(&p) || leader == old || leader < 0 {
            return;
        }
        if leader == me {
            if agent.check_produce(TOPIC, p).is_ok() {
                seen.insert(p, Seen { at: Some(now), leader });
                pending.remove(&p);
            } else {
                pending.insert(p);
            }
        } else {
            seen.insert(p, Seen { at: Some(now), leader });
        }
    };
    while seen.len() < tracked.len() {
        tokio::select! {
            event = rx.recv() => match event {
                Ok(event) => {
                    let now = Instant::now();
                    for change in event.changes.iter() {
                        if &*change.view.topic == TOPIC {
                            consider(change.view.partition, change.view.leader, now, &mut seen, &mut pending);
                        }
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    let now = Instant::now();
                    for &p in tracked.iter() {
                        if let Some(view) = agent.partition(TOPIC, p) {
                            consider(p, view.leader, now, &mut seen, &mut pending);
                        }
                    }
                }
                Err(RecvError::Closed) => break,
            },
            _ = poll.tick(), if !pending.is_empty() => {
                let now = Instant::now();
                for p in pending.clone() {
                    consider(p, me, now, &mut seen, &mut pending);
                }
            }
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    seen
}

/// Watches the controller leader's applied state: the instant every tracked
/// partition shows a leader other than `old`.
async fn record_controller(
    mut client: ControllerClient<Channel>,
    from_version: u64,
    tracked: Arc<HashSet<i32>>,
    old: i32,
    deadline: tokio::time::Instant,
) -> Option<Instant> {
    let mut stream = client.watch_leadership(WatchLeadershipRequest { from_version }).await.ok()?.into_inner();
    let mut moved: HashSet<i32> = HashSet::new();
    loop {
        let update = tokio::select! {
            m = stream.message() => m.ok()??,
            _ = tokio::time::sleep_until(deadline) => return None,
        };
        let now = Instant::now();
        for p in update.partitions.iter().filter(|p| p.topic == TOPIC && tracked.contains(&p.partition)) {
            if p.leader != old && p.leader >= 0 {
                moved.insert(p.partition);
            }
        }
        if moved.len() == tracked.len() {
            return Some(now);
        }
    }
}

struct RunResult {
    led: usize,
    /// Per partition: failover time (ms) = max over the surviving agents.
    failover_ms: Vec<f64>,
    /// Per partition: when the new leader's check_produce first allowed (ms after t0).
    new_leader_ms: Vec<f64>,
    missing: usize,
    violations: usize,
    /// Partitions some surviving agent saw move away from broker 1 *before*
    /// the fault (the run is then invalid: something else fenced broker 1).
    early: usize,
    controller_applied_ms: Option<f64>,
    fence_took_ms: Option<f64>,
    fence_reason: Option<String>,
    /// From the leader controller's log timestamps (wall clock, µs
    /// resolution): ms after t0 at which it logged that broker 1's session
    /// closed / timed out, and that the fence entry was applied.
    detected_ms: Option<f64>,
    fenced_ms: Option<f64>,
    signal_ms: f64,
    leaders_per_broker: BTreeMap<i32, usize>,
    new_leaders: BTreeMap<i32, usize>,
    cut: Option<CutResult>,
}

async fn failover(
    options: &Options,
    fault: Fault,
    partitions: u32,
    runs: u32,
    timeout: Duration,
    lease_ms: u64,
) -> anyhow::Result<(Value, Vec<Row>)> {
    ensure!(partitions >= 1 && runs >= 1, "--partitions and --runs must be >= 1");
    ensure!(runs <= 50 && partitions <= 100_000, "--runs <= 50 and --partitions <= 100000");
    let name = match fault {
        Fault::Crash => "failover-crash",
        Fault::Sigstop => "failover-hang (sigstop)",
        Fault::Cut => "failover-hang (cut)",
    };
    let mut results = Vec::new();
    for run in 1..=runs {
        eprintln!(
            "[{name}] run {run}/{runs}: starting a cluster, topic {TOPIC} with {} partitions, RF 3",
            3 * partitions
        );
        let mut cluster = Cluster::start(options, true, fault == Fault::Cut, &[2, 3], false).await?;
        let result = failover_run(&mut cluster, fault, partitions, timeout, lease_ms).await;
        let odd = |r: &RunResult| {
            r.early > 0
                || r.missing > 0
                || r.violations > 0
                || r.cut.as_ref().is_some_and(|c| c.direct_max_during > 0 || c.rejoin_connected_ms.is_none())
        };
        if result.as_ref().map_or(true, odd) {
            eprintln!("[{name}] run {run}: anomaly (see below); keeping the logs");
            cluster.keep_logs = true;
        }
        cluster.stop().await;
        let result = result?;
        eprintln!(
            "[{name}] run {run}: {} partitions, median {:.1} ms, p99 {:.1} ms, max {:.1} ms, missing {}, violations {}, moved before the fault {}, fence reason {}",
            result.led,
            stats(&result.failover_ms).map_or(f64::NAN, |s| s.median),
            stats(&result.failover_ms).map_or(f64::NAN, |s| s.p99),
            stats(&result.failover_ms).map_or(f64::NAN, |s| s.max),
            result.missing,
            result.violations,
            result.early,
            result.fence_reason.as_deref().unwrap_or("-")
        );
        results.push(result);
    }
    print_failover(name, partitions, fault, lease_ms, &results);
    let pooled: Vec<f64> = results.iter().flat_map(|r| r.failover_ms.iter().copied()).collect();
    let runs_json: Vec<Value> = results
        .iter()
        .map(|r| {
            json!({
                "partitions_led_by_broker_1": r.led,
                "leaders_per_broker_before": r.leaders_per_broker,
                "new_leaders": r.new_leaders,
                "failover_ms": stats_json(stats(&r.failover_ms)),
                "new_leader_allowed_ms": stats_json(stats(&r.new_leader_ms)),
                "controller_applied_ms": r.controller_applied_ms,
                "fence_took_ms_controller_log": r.fence_took_ms,
                "fence_reason_controller_log": r.fence_reason,
                "controller_log_detected_ms": r.detected_ms,
                "controller_log_fenced_ms": r.fenced_ms,
                "signal_delivery_ms": r.signal_ms,
                "missing": r.missing,
                "violations": r.violations,
                "moved_before_fault": r.early,
                "cut": r.cut.as_ref().map(cut_json),
            })
        })
        .collect();
    let value = json!({
        "scenario": name,
        "system": "baton",
        "partitions_per_broker": partitions,
        "topic_partitions": 3 * partitions,
        "lease_ms": if fault.hang() { Some(lease_ms) } else { None },
        "runs": runs_json,
        "pooled_failover_ms": stats_json(stats(&pooled)),
        "violations": results.iter().map(|r| r.violations).sum::<usize>(),
        "missing": results.iter().map(|r| r.missing).sum::<usize>(),
    });
    let scenario = if fault == Fault::Crash { "failover-crash" } else { name };
    Ok((value, vec![Row::new(scenario, &format!("N={partitions}"), System::Baton, pooled, None)]))
}

async fn failover_run(
    cluster: &mut Cluster,
    fault: Fault,
    partitions: u32,
    timeout: Duration,
    lease_ms: u64,
) -> anyhow::Result<RunResult> {
    let leader = cluster.wait_leader(Duration::from_secs(30)).await?;
    let mut client = cluster.client(leader).await?;
    client
        .create_topic(CreateTopicRequest {
            name: TOPIC.into(),
            partitions: (3 * partitions) as i32,
            replication_factor: 3,
            config: None,
        })
        .await
        .context("CreateTopic")?;
    let described = client
        .describe_topic(DescribeTopicRequest { name: TOPIC.into(), consistency: 0 })
        .await
        .context("DescribeTopic")?
        .into_inner();
    let topic = described.topic.context("no topic in DescribeTopic")?;
    let view: BTreeMap<i32, (i32, i32)> =
        topic.partitions.iter().map(|p| (p.partition, (p.leader, p.leader_epoch))).collect();
    let mut leaders_per_broker = BTreeMap::new();
    for &(l, _) in view.values() {
        *leaders_per_broker.entry(l).or_insert(0usize) += 1;
    }
    let tracked: Arc<HashSet<i32>> = Arc::new(view.iter().filter(|(_, (l, _))| *l == 1).map(|(p, _)| *p).collect());
    if tracked.len() != partitions as usize {
        eprintln!(
            "warning: broker 1 leads {} partitions, not {partitions} (leaders per broker: {leaders_per_broker:?})",
            tracked.len()
        );
    }
    ensure!(!tracked.is_empty(), "broker 1 leads nothing");

    // Wait until both in-process agents hold the controller's view and their
    // own partitions are allowed, and broker 1's sidecar allows its partitions.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut agree = true;
        'check: for agent in &cluster.agents {
            let me = agent.status().broker_id;
            for (&p, &(l, epoch)) in &view {
                let ok = match agent.partition(TOPIC, p) {
                    Some(v) => v.leader == l && v.leader_epoch == epoch,
                    None => false,
                } && (l != me || agent.check_produce(TOPIC, p) == Ok(epoch));
                if !ok {
                    agree = false;
                    break 'check;
                }
            }
        }
        if agree {
            break;
        }
        ensure!(Instant::now() < deadline, "in-process agents never agreed with the controller");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sidecar = AgentClient::connect(format!("http://{}", cluster.sidecar_addr)).await?;
    loop {
        let refused = futures::stream::iter(tracked.iter().copied())
            .map(|p| {
                let mut c = sidecar.clone();
                async move {
                    let req = CheckRequest {
                        topic: TOPIC.into(),
                        partition: p,
                        kind: CheckKind::Produce as i32,
                        leader_epoch: -1,
                    };
                    c.check(req).await.map(|r| r.into_inner().allowed).unwrap_or(false)
                }
            })
            .buffer_unordered(32)
            .filter(|allowed| futures::future::ready(!allowed))
            .count()
            .await;
        if refused == 0 {
            break;
        }
        ensure!(Instant::now() < deadline, "broker 1's sidecar still refuses {refused} of its partitions");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(sidecar);
    // Let heartbeats settle into their steady rhythm.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let fault_deadline = tokio::time::Instant::now() + timeout;
    let recorders: Vec<_> = cluster
        .agents
        .iter()
        .map(|a| tokio::spawn(record_agent(a.clone(), a.subscribe(), tracked.clone(), 1, fault_deadline)))
        .collect();
    let watch_client = cluster.client(leader).await?;
    let controller =
        tokio::spawn(record_controller(watch_client, described.metadata_version, tracked.clone(), 1, fault_deadline));
    // Give the watch stream time to open before the fault.
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Cut mode: check the sidecar's session goes through a proxy (else the
    // cut would not isolate it), and watch its own checks from before the cut.
    let (lease_end_tx, lease_end_rx) = tokio::sync::watch::channel(None);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut cut_before = None;
    let mut cut_watch = None;
    let tracked_list: Vec<i32> = {
        let mut v: Vec<i32> = tracked.iter().copied().collect();
        v.sort_unstable();
        v
    };
    if fault == Fault::Cut {
        let placement = cluster.sidecar_placement().await?;
        let open: Vec<u64> = cluster.proxies.iter().map(|p| p.stats().open).collect();
        eprintln!("[cut] before the cut: {} proxies_open={open:?}", placement.describe());
        ensure!(
            placement.isolated() && placement.connected == Some(true),
            "broker 1's session does not go (only) through the proxies before the cut: {}",
            placement.describe()
        );
        cut_watch = Some(tokio::spawn(cut::watch_cut_broker(
            cluster.sidecar_client().await?,
            TOPIC.into(),
            Arc::new(tracked_list.clone()),
            cluster.sidecar_pid()?,
            cluster.real_ports(),
            cluster.proxy_ports(),
            lease_end_rx,
            stop_rx,
        )));
        cut_before = Some((placement, open));
        // Some allowed answers before the cut, so the watch has a baseline.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // t0 is taken just before the signal (or the cut); the paused or cut-off
    // broker's lease ends at the latest lease_ms after `signalled` (its last
    // acknowledged heartbeat was sent before).
    let t0_wall = std::time::SystemTime::now();
    let t0 = Instant::now();
    match fault {
        Fault::Crash => cluster.sidecar.as_mut().context("no sidecar")?.kill9(),
        Fault::Sigstop => cluster.sidecar.as_mut().context("no sidecar")?.signal("STOP")?,
        Fault::Cut => {
            for proxy in &cluster.proxies {
                proxy.cut();
            }
        }
    }
    let signalled = Instant::now();
    let lease_end = signalled + Duration::from_millis(lease_ms);
    lease_end_tx.send_replace(Some(lease_end));

    let mut per_agent = Vec::new();
    for r in recorders {
        per_agent.push(r.await?);
    }
    let controller_applied = controller.await.ok().flatten();
    let cut_result = match (cut_before, cut_watch) {
        (Some(before), Some(watch)) => {
            Some(cut_aftermath(cluster, leader, t0, lease_end, before, watch, stop_tx, &tracked_list).await?)
        }
        _ => None,
    };
    let sidecar_proc = cluster.sidecar.as_mut().context("no sidecar")?;
    if fault == Fault::Sigstop {
        sidecar_proc.signal("CONT")?;
    }
    sidecar_proc.kill9();

    let mut failover_ms = Vec::with_capacity(tracked.len());
    let mut new_leader_ms = Vec::new();
    let mut new_leaders = BTreeMap::new();
    let mut missing = 0;
    let mut violations = 0;
    let mut early = 0;
    for &p in tracked.iter() {
        let seen: Vec<Seen> = per_agent.iter().map(|m| m.get(&p).copied().unwrap_or_default()).collect();
        if seen.iter().any(|s| s.at.is_none()) {
            missing += 1;
            continue;
        }
        if seen.iter().any(|s| s.at.is_some_and(|at| at < t0)) {
            early += 1;
        }
        let latest = seen.iter().filter_map(|s| s.at).max().expect("two agents");
        failover_ms.push(ms(latest.saturating_duration_since(t0)));
        let new_leader = seen[0].leader;
        *new_leaders.entry(new_leader).or_insert(0usize) += 1;
        for (agent, s) in cluster.agents.iter().zip(&seen) {
            if agent.status().broker_id == new_leader {
                let at = s.at.expect("checked");
                new_leader_ms.push(ms(at.saturating_duration_since(t0)));
                if fault.hang() && at < lease_end {
                    violations += 1;
                }
            }
        }
    }
    let leader_log = cluster.log(&format!("controller-{}", leader + 1));
    let (fence_took_ms, fence_reason) = fence_took_ms(&leader_log);
    let detect_pattern = match fault {
        Fault::Crash => "broker session closed",
        Fault::Sigstop | Fault::Cut => "broker session timed out",
    };
    let mut cut_result = cut_result;
    if let Some(c) = cut_result.as_mut() {
        c.first_new_leader_allowed_ms = new_leader_ms.iter().copied().min_by(f64::total_cmp);
        // Broker 1 answered allowed after (or as) a surviving agent was first allowed.
        c.overlap = match (c.b1_last_allowed_recv_ms, c.first_new_leader_allowed_ms) {
            (Some(b1), Some(new)) => b1 >= new,
            _ => false,
        };
        violations += c.b1_allowed_after_lease_end as usize + usize::from(c.overlap) + c.sweep_allowed;
    }
    let detected_ms = log_line_ms(&leader_log, detect_pattern, t0_wall);
    let fenced_ms = log_line_ms(&leader_log, "broker fenced", t0_wall);
    Ok(RunResult {
        led: tracked.len(),
        failover_ms,
        new_leader_ms,
        missing,
        violations,
        early,
        controller_applied_ms: controller_applied.map(|c| ms(c.saturating_duration_since(t0))),
        fence_took_ms,
        fence_reason,
        detected_ms,
        fenced_ms,
        signal_ms: ms(signalled - t0),
        leaders_per_broker: leaders_per_broker.into_iter().collect(),
        new_leaders,
        cut: cut_result,
    })
}

/// Cut mode, after both surviving agents enforce the new leaders: broker 1's
/// side of the story, then the heal and its re-registration.
#[derive(Debug, Default)]
struct CutResult {
    before: String,
    proxies_open_before: Vec<u64>,
    /// While still cut, after the failover.
    during: String,
    proxies_open_during: Vec<u64>,
    /// Most sockets from the sidecar to a real controller port in any sample
    /// taken every 50 ms from the cut to the heal (must be 0).
    direct_max_during: usize,
    direct_example: Option<String>,
    /// Broker 1's own Check through its sidecar (ms after t0).
    b1_checks: u64,
    b1_check_errors: u64,
    b1_last_allowed_sent_ms: Option<f64>,
    b1_last_allowed_recv_ms: Option<f64>,
    b1_first_refused_ms: Option<f64>,
    b1_disconnected_ms: Option<f64>,
    b1_lease_zero_ms: Option<f64>,
    b1_allowed_after_lease_end: u64,
    /// Every one of broker 1's partitions checked once after the failover.
    sweep_allowed: usize,
    sweep_errors: usize,
    first_new_leader_allowed_ms: Option<f64>,
    overlap: bool,
    heal_ms: f64,
    /// After the heal: broker 1 Alive with a new epoch at the controller, and
    /// the sidecar connected with it (ms after the heal).
    rejoin_registered_ms: Option<f64>,
    rejoin_connected_ms: Option<f64>,
    epoch_before: u64,
    epoch_after: Option<u64>,
    after_heal: String,
    rejoin_direct: Option<bool>,
}

#[allow(clippy::too_many_arguments)]
async fn cut_aftermath(
    cluster: &Cluster,
    leader: usize,
    t0: Instant,
    lease_end: Instant,
    before: (cut::Placement, Vec<u64>),
    watch: tokio::task::JoinHandle<cut::CutBrokerWatch>,
    stop: tokio::sync::watch::Sender<bool>,
    tracked: &[i32],
) -> anyhow::Result<CutResult> {
    let after_t0 = |i: Instant| ms(i.saturating_duration_since(t0));
    // Keep watching broker 1 a little past the failover and its lease end.
    let until = lease_end.max(Instant::now()) + Duration::from_millis(300);
    tokio::time::sleep_until(tokio::time::Instant::from_std(until)).await;
    let during = cluster.sidecar_placement().await?;
    let proxies_open_during: Vec<u64> = cluster.proxies.iter().map(|p| p.stats().open).collect();
    stop.send_replace(true);
    let w = watch.await?;
    let sidecar = cluster.sidecar_client().await?;
    let (sweep_allowed, sweep_errors) = cut::sweep(&sidecar, TOPIC, tracked).await;
    let mut result = CutResult {
        before: before.0.describe(),
        proxies_open_before: before.1,
        during: during.describe(),
        proxies_open_during,
        direct_max_during: w.max_direct.max(during.direct.len()),
        direct_example: w.direct_example.clone().or_else(|| (!during.direct.is_empty()).then(|| during.describe())),
        b1_checks: w.checks,
        b1_check_errors: w.check_errors,
        b1_last_allowed_sent_ms: w.last_allowed_sent.map(after_t0),
        b1_last_allowed_recv_ms: w.last_allowed_recv.map(after_t0),
        b1_first_refused_ms: w.first_refused_sent.map(after_t0),
        b1_disconnected_ms: w.disconnected_at.map(after_t0),
        b1_lease_zero_ms: w.lease_zero_at.map(after_t0),
        b1_allowed_after_lease_end: w.allowed_after_lease_end,
        sweep_allowed,
        sweep_errors,
        epoch_before: before.0.broker_epoch.unwrap_or(0),
        ..CutResult::default()
    };
    eprintln!(
        "[cut] during the cut: {} proxies_open={:?} direct_max={}",
        result.during, result.proxies_open_during, result.direct_max_during
    );

    // Heal, then wait for broker 1 to register again (a new epoch) and reopen its session.
    let healed = Instant::now();
    for proxy in &cluster.proxies {
        proxy.heal();
    }
    result.heal_ms = after_t0(healed);
    let mut client = cluster.client(leader).await?;
    let mut status_client = cluster.sidecar_client().await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && (result.rejoin_registered_ms.is_none() || result.rejoin_connected_ms.is_none()) {
        if result.rejoin_registered_ms.is_none()
            && let Ok(r) = client.list_brokers(ListBrokersRequest {}).await
            && r.into_inner()
                .brokers
                .iter()
                .any(|b| b.id == 1 && b.state == BrokerState::Alive as i32 && b.epoch > result.epoch_before)
        {
            result.rejoin_registered_ms = Some(ms(healed.elapsed()));
        }
        if result.rejoin_connected_ms.is_none()
            && let Some(s) = cut::status(&mut status_client).await
            && s.connected
            && s.broker_epoch > result.epoch_before
        {
            result.rejoin_connected_ms = Some(ms(healed.elapsed()));
            result.epoch_after = Some(s.broker_epoch);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = cluster.sidecar_placement().await?;
    result.rejoin_direct = after.connected.map(|_| !after.isolated());
    result.after_heal = after.describe();
    eprintln!("[cut] after the heal: {}", result.after_heal);
    Ok(result)
}

/// ms after `t0` of the last line of a controller log containing `pattern`
/// and ` broker=1 `, from its RFC 3339 UTC timestamp (time of day only).
fn log_line_ms(log: &str, pattern: &str, t0: std::time::SystemTime) -> Option<f64> {
    let line = log.lines().rev().find(|l| l.contains(pattern) && l.contains(" broker=1 "))?;
    line_ms_after(line, t0)
}

/// Milliseconds from `t0` (wall clock) to a log line's UTC timestamp
/// (`2026-12-01T19:48:45.123456Z ...`; the day is ignored).
fn line_ms_after(line: &str, t0: std::time::SystemTime) -> Option<f64> {
    let stamp = line.split_whitespace().next()?;
    let time = stamp.split_once('T')?.1.trim_end_matches('Z');
    let mut parts = time.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let sec: f64 = parts.next()?.parse().ok()?;
    let logged = h * 3600.0 + m * 60.0 + sec;
    let t0 = t0.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs_f64() % 86_400.0;
    let mut diff = logged - t0;
    if diff < -43_200.0 {
        diff += 86_400.0;
    }
    Some(diff * 1e3)
}

/// `took_ms` and `reason` of the last "broker fenced" line for broker 1 in a controller log.
fn fence_took_ms(log: &str) -> (Option<f64>, Option<String>) {
    let Some(line) = log.lines().rev().find(|l| l.contains("broker fenced") && l.contains(" broker=1 ")) else {
        return (None, None);
    };
    let field = |key: &str| {
        let rest = &line[line.find(key)? + key.len()..];
        rest.split_whitespace().next().map(str::to_owned)
    };
    let took = field("took_ms=").and_then(|v| v.parse().ok());
    (took, field("reason="))
}

fn print_failover(name: &str, partitions: u32, fault: Fault, lease_ms: u64, results: &[RunResult]) {
    println!();
    let total = 3 * partitions;
    println!("{name}: broker 1 led N = {partitions} of {total} partitions (RF 3); times in ms after the signal or cut");
    println!("failover = max over the 2 surviving agents of (instant the agent enforces the new leader - t0)");
    println!(
        "detected / fenced: leader controller's log lines (session closed or timed out / fence applied), ms after t0;"
    );
    println!(
        "ctrl-watch: a WatchLeadership stream on the leader delivered the move; fence-took: propose->applied (log)"
    );
    println!(
        "{:>4} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10} {:>10} {:>8} {:>6}",
        "run",
        "parts",
        "min",
        "median",
        "p99",
        "max",
        "detected",
        "fenced",
        "ctrl-watch",
        "fence-took",
        "missing",
        "viol"
    );
    let fmt = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1}"));
    for (i, r) in results.iter().enumerate() {
        let s = stats(&r.failover_ms);
        println!(
            "{:>4} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10} {:>10} {:>8} {:>6}",
            i + 1,
            r.led,
            fmt(s.map(|s| s.min)),
            fmt(s.map(|s| s.median)),
            fmt(s.map(|s| s.p99)),
            fmt(s.map(|s| s.max)),
            fmt(r.detected_ms),
            fmt(r.fenced_ms),
            fmt(r.controller_applied_ms),
            fmt(r.fence_took_ms),
            r.missing,
            r.violations
        );
    }
    let pooled: Vec<f64> = results.iter().flat_map(|r| r.failover_ms.iter().copied()).collect();
    let s = stats(&pooled);
    println!(
        "{:>4} {:>7} {:>9} {:>9} {:>9} {:>9}",
        "all",
        pooled.len(),
        fmt(s.map(|s| s.min)),
        fmt(s.map(|s| s.median)),
        fmt(s.map(|s| s.p99)),
        fmt(s.map(|s| s.max))
    );
    let medians: Vec<f64> = results.iter().filter_map(|r| stats(&r.failover_ms)).map(|s| s.median).collect();
    let p99s: Vec<f64> = results.iter().filter_map(|r| stats(&r.failover_ms)).map(|s| s.p99).collect();
    if let (Some(m), Some(p)) = (stats(&medians), stats(&p99s)) {
        println!("run-to-run spread: median {:.1}..{:.1} ms, p99 {:.1}..{:.1} ms", m.min, m.max, p.min, p.max);
    }
    if fault == Fault::Sigstop {
        let v: usize = results.iter().map(|r| r.violations).sum();
        println!("overlap violations (new leader allowed before signal + lease {lease_ms} ms): {v}");
    }
    if fault == Fault::Cut {
        print_cut(lease_ms, results);
    }
}

fn print_cut(lease_ms: u64, results: &[RunResult]) {
    let fmt = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1}"));
    println!();
    println!("broker 1 while cut off (ms after the cut; its Check via the sidecar, 4 partitions every 5 ms):");
    println!("b1-allowed: last Check answered allowed (received); b1-refused: first Check refused (sent);");
    println!("b1-disc: its Status first said not connected; new-allowed: first surviving new leader allowed;");
    println!("direct: most sidecar sockets to a real controller port seen after the cut (must be 0);");
    println!("rejoin: after the heal, ms until broker 1 is Alive with a new epoch / the sidecar's session is open");
    let header = ["run", "b1-allowed", "b1-refused", "b1-disc", "new-allowed", "direct", "b1-late", "overlap"];
    let [a, b, c, d, e, f, g, h] = header;
    println!("{a:>4} {b:>10} {c:>10} {d:>8} {e:>11} {f:>6} {g:>7} {h:>8} {:>8} {:>13} {:>6}", "sweep", "rejoin", "via");
    for (i, r) in results.iter().enumerate() {
        let Some(c) = &r.cut else { continue };
        println!(
            "{:>4} {:>10} {:>10} {:>8} {:>11} {:>6} {:>7} {:>8} {:>8} {:>13} {:>6}",
            i + 1,
            fmt(c.b1_last_allowed_recv_ms),
            fmt(c.b1_first_refused_ms),
            fmt(c.b1_disconnected_ms),
            fmt(c.first_new_leader_allowed_ms),
            c.direct_max_during,
            c.b1_allowed_after_lease_end,
            c.overlap,
            format!("{}/{}", c.sweep_allowed, r.led),
            format!("{}/{}", fmt(c.rejoin_registered_ms), fmt(c.rejoin_connected_ms)),
            match c.rejoin_direct {
                Some(true) => "direct",
                Some(false) => "proxy",
                None => "-",
            }
        );
    }
    let v: usize = results.iter().map(|r| r.violations).sum();
    println!(
        "overlap violations (new leader allowed before cut + lease {lease_ms} ms, broker 1 allowed after it, \
         or after a new leader was, or in the final sweep): {v}"
    );
}

fn cut_json(c: &CutResult) -> Value {
    json!({
        "sidecar_before_cut": c.before,
        "proxies_open_before_cut": c.proxies_open_before,
        "sidecar_during_cut": c.during,
        "proxies_open_during_cut": c.proxies_open_during,
        "direct_sockets_max_during_cut": c.direct_max_during,
        "direct_example": c.direct_example,
        "b1_checks": c.b1_checks,
        "b1_check_errors": c.b1_check_errors,
        "b1_last_allowed_sent_ms": c.b1_last_allowed_sent_ms,
        "b1_last_allowed_recv_ms": c.b1_last_allowed_recv_ms,
        "b1_first_refused_ms": c.b1_first_refused_ms,
        "b1_status_disconnected_ms": c.b1_disconnected_ms,
        "b1_status_lease_zero_ms": c.b1_lease_zero_ms,
        "b1_allowed_after_lease_end": c.b1_allowed_after_lease_end,
        "b1_sweep_allowed": c.sweep_allowed,
        "b1_sweep_errors": c.sweep_errors,
        "first_new_leader_allowed_ms": c.first_new_leader_allowed_ms,
        "overlap": c.overlap,
        "heal_ms": c.heal_ms,
        "rejoin_registered_ms_after_heal": c.rejoin_registered_ms,
        "rejoin_connected_ms_after_heal": c.rejoin_connected_ms,
        "broker_epoch_before": c.epoch_before,
        "broker_epoch_after": c.epoch_after,
        "sidecar_after_heal": c.after_heal,
        "rejoined_bypassing_proxies": c.rejoin_direct,
    })
}

// --------------------------------------------------------------------- commit

async fn commit_bench(
    options: &Options,
    count: u32,
    levels: &[u32],
    samples: bool,
) -> anyhow::Result<(Value, Vec<Row>)> {
    ensure!((1..=100_000).contains(&count), "--count must be 1..=100000");
    ensure!(levels.iter().all(|c| (1..=1024).contains(c)), "--concurrency levels must be 1..=1024");
    let cluster = Cluster::start(options, false, false, &[1], false).await?;
    let result = commit_levels(&cluster, count, levels).await;
    cluster.stop().await;
    let rows = result?;
    println!();
    println!("commit: CreateTopic (1 partition, RF 1) to the controller leader; latency in ms as the client sees it");
    println!(
        "{:>11} {:>7} {:>8} {:>8} {:>8} {:>8} {:>10}",
        "concurrency", "writes", "min", "median", "p99", "max", "writes/s"
    );
    for (c, s, rate, _) in &rows {
        println!("{:>11} {:>7} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>10.0}", c, s.n, s.min, s.median, s.p99, s.max, rate);
    }
    let value = json!({
        "scenario": "commit",
        "system": "baton",
        "write": "CreateTopic 1 partition RF 1",
        "levels": rows.iter().map(|(c, s, rate, raw)| {
            let mut v = json!({ "concurrency": c, "latency_ms": stats_json(Some(*s)), "writes_per_sec": rate });
            if samples {
                v["samples_start_ms_latency_ms"] = json!(raw);
            }
            v
        }).collect::<Vec<_>>(),
    });
    let table = rows
        .into_iter()
        .map(|(c, _, rate, raw)| {
            Row::new("commit", &format!("C={c}"), System::Baton, raw.into_iter().map(|(_, l)| l).collect(), Some(rate))
        })
        .collect();
    Ok((value, table))
}

type Level = (u32, Stats, f64, Vec<(f64, f64)>);

async fn commit_levels(cluster: &Cluster, count: u32, levels: &[u32]) -> anyhow::Result<Vec<Level>> {
    let leader = cluster.wait_leader(Duration::from_secs(30)).await?;
    let client = cluster.client(leader).await?;
    let create = |mut c: ControllerClient<Channel>, name: String, origin: Instant| async move {
        let started = Instant::now();
        c.create_topic(CreateTopicRequest { name, partitions: 1, replication_factor: 1, config: None })
            .await
            .context("CreateTopic")?;
        anyhow::Ok((ms(started - origin), ms(started.elapsed())))
    };
    for i in 0..20 {
        create(client.clone(), format!("warmup-{i}"), Instant::now()).await?;
    }
    let mut rows = Vec::new();
    for &c in levels {
        eprintln!("[commit] concurrency {c}: {count} writes");
        let started = Instant::now();
        let tasks: Vec<_> = (0..c)
            .map(|w| {
                let client = client.clone();
                let mine: Vec<u32> = (0..count).filter(|i| i % c == w).collect();
                tokio::spawn(async move {
                    let mut lat = Vec::with_capacity(mine.len());
                    for i in mine {
                        lat.push(create(client.clone(), format!("c{c}-w{w}-{i}"), started).await?);
                    }
                    anyhow::Ok(lat)
                })
            })
            .collect();
        let mut all = Vec::with_capacity(count as usize);
        for t in tasks {
            all.extend(t.await??);
        }
        let wall = started.elapsed();
        let latencies: Vec<f64> = all.iter().map(|(_, l)| *l).collect();
        let s = stats(&latencies).context("no writes")?;
        all.sort_by(|a, b| a.0.total_cmp(&b.0));
        rows.push((c, s, all.len() as f64 / wall.as_secs_f64(), all));
    }
    Ok(rows)
}

// ---------------------------------------------------------------------- query

/// Closed loop: one task per client, each issuing `op` back to back until
/// `duration` has passed. Returns every latency (ms) and the wall time.
pub async fn closed_loop<C, F, Fut>(clients: Vec<C>, duration: Duration, op: F) -> anyhow::Result<(Vec<f64>, Duration)>
where
    C: Send + 'static,
    F: Fn(C, u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = (C, anyhow::Result<()>)> + Send,
{
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(w, client)| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut client = client;
                let mut lat = Vec::new();
                let mut i = w as u64 * 1_000_003;
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let (c, r) = op(client, i).await;
                    client = c;
                    r?;
                    lat.push(ms(t.elapsed()));
                    i += 1;
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

/// GetPartitionLeader throughput and latency (Baton), or its etcd equivalent.
async fn query(
    options: &Options,
    system: System,
    levels: &[u32],
    secs: f64,
    partitions: u32,
) -> anyhow::Result<(Value, Vec<Row>)> {
    ensure!(levels.iter().all(|k| (1..=1024).contains(k)), "--clients must be 1..=1024");
    ensure!(secs > 0.0 && secs <= 600.0 && (1..=100_000).contains(&partitions), "bad --secs / --partitions");
    let duration = Duration::from_secs_f64(secs);
    let (value, rows) = match system {
        System::Baton => baton_query(options, levels, duration, partitions).await?,
        System::Etcd | System::Zookeeper => baseline_query(options, system, levels, duration, partitions).await?,
    };
    print_rows(&format!("query ({}): reads per second and latency in ms, {secs} s per level", system.name()), &rows);
    Ok((value, rows))
}

async fn baton_query(
    options: &Options,
    levels: &[u32],
    duration: Duration,
    partitions: u32,
) -> anyhow::Result<(Value, Vec<Row>)> {
    use baton_proto::v1::{GetPartitionLeaderRequest, ReadConsistency};
    let cluster = Cluster::start(options, false, false, &[1], false).await?;
    let leader = cluster.wait_leader(Duration::from_secs(30)).await?;
    let mut client = cluster.client(leader).await?;
    client
        .create_topic(CreateTopicRequest {
            name: TOPIC.into(),
            partitions: partitions as i32,
            replication_factor: 1,
            config: None,
        })
        .await
        .context("CreateTopic")?;
    let mut rows = Vec::new();
    for (label, consistency) in [("LOCAL", ReadConsistency::Local), ("LINEARIZABLE", ReadConsistency::Linearizable)] {
        for &k in levels {
            let mut clients = Vec::new();
            for _ in 0..k {
                clients.push(cluster.client(leader).await?);
            }
            let (lat, wall) = closed_loop(clients, duration, move |mut c: ControllerClient<Channel>, i| async move {
                let req = GetPartitionLeaderRequest {
                    topic: TOPIC.into(),
                    partition: (i % u64::from(partitions)) as i32,
                    consistency: consistency as i32,
                };
                let r = c.get_partition_leader(req).await.map_err(anyhow::Error::from).and_then(|r| {
                    ensure!(r.into_inner().leader == 1, "unexpected leader");
                    Ok(())
                });
                (c, r)
            })
            .await?;
            eprintln!("[baton query] {label} k={k}: {} reads", lat.len());
            let rate = lat.len() as f64 / wall.as_secs_f64();
            rows.push(Row::new("query", &format!("{label} k={k}"), System::Baton, lat, Some(rate)));
        }
    }
    cluster.stop().await;
    Ok((rows_json("query", System::Baton, "3 baton-controller processes, reads to the raft leader", &rows), rows))
}

// ------------------------------------------------------------ rows, compare

/// One measured distribution: a (scenario, case, system) and its samples (ms).
struct Row {
    scenario: String,
    case: String,
    system: System,
    samples: Vec<f64>,
    stats: Option<Stats>,
    /// Operations per second (query, commit).
    rate: Option<f64>,
}

impl Row {
    fn new(scenario: &str, case: &str, system: System, samples: Vec<f64>, rate: Option<f64>) -> Row {
        let stats = stats(&samples);
        Row { scenario: scenario.to_owned(), case: case.to_owned(), system, samples, stats, rate }
    }
}

fn rows_json(scenario: &str, system: System, detail: &str, rows: &[Row]) -> Value {
    json!({
        "scenario": scenario,
        "system": system.name(),
        "setup": detail,
        "cases": rows.iter().map(|r| json!({
            "case": r.case,
            "latency_ms": stats_json(r.stats),
            "per_sec": r.rate,
        })).collect::<Vec<_>>(),
    })
}

fn print_rows(title: &str, rows: &[Row]) {
    println!();
    println!("{title}");
    println!("{:<26} {:>10} {:>8} {:>9} {:>9} {:>9} {:>10}", "case", "system", "n", "p50", "p99", "max", "per sec");
    for r in rows {
        let s = r.stats;
        let f = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.2}"));
        println!(
            "{:<26} {:>10} {:>8} {:>9} {:>9} {:>9} {:>10}",
            r.case,
            r.system.name(),
            r.samples.len(),
            f(s.map(|s| s.median)),
            f(s.map(|s| s.p99)),
            f(s.map(|s| s.max)),
            r.rate.map_or("-".to_owned(), |v| format!("{v:.0}"))
        );
    }
}

/// `x / baton` as "12.3x" (or "-").
fn ratio(x: Option<f64>, baton: Option<f64>) -> String {
    match (x, baton) {
        (Some(x), Some(b)) if b > 0.0 => {
            let r = x / b;
            if r >= 10.0 { format!("{r:.0}x") } else { format!("{r:.2}x") }
        }
        _ => "-".to_owned(),
    }
}

/// The side-by-side table: every row with its ratio to Baton's row of the
/// same scenario and case (p50, p99, and throughput where there is one).
fn print_comparison(rows: &[Row]) {
    let mut scenarios: Vec<&str> = Vec::new();
    for r in rows {
        if !scenarios.contains(&r.scenario.as_str()) {
            scenarios.push(&r.scenario);
        }
    }
    for scenario in scenarios {
        println!();
        println!("== {scenario}: latency in ms (failover: after the fault), ratio = system / baton ==");
        println!(
            "{:<26} {:>10} {:>8} {:>10} {:>10} {:>10} {:>10} {:>9} {:>9} {:>9}",
            "case", "system", "n", "p50", "p99", "max", "per sec", "p50 x", "p99 x", "rate x"
        );
        let mine: Vec<&Row> = rows.iter().filter(|r| r.scenario == scenario).collect();
        for r in &mine {
            let baton = mine.iter().find(|b| b.system == System::Baton && b.case == r.case);
            let s = r.stats;
            let b = baton.and_then(|b| b.stats);
            let f = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.2}"));
            println!(
                "{:<26} {:>10} {:>8} {:>10} {:>10} {:>10} {:>10} {:>9} {:>9} {:>9}",
                r.case,
                r.system.name(),
                r.samples.len(),
                f(s.map(|s| s.median)),
                f(s.map(|s| s.p99)),
                f(s.map(|s| s.max)),
                r.rate.map_or("-".to_owned(), |v| format!("{v:.0}")),
                ratio(s.map(|s| s.median), b.map(|s| s.median)),
                ratio(s.map(|s| s.p99), b.map(|s| s.p99)),
                ratio(r.rate, baton.and_then(|b| b.rate)),
            );
        }
    }
}

struct ComparePlan {
    partitions: u32,
    runs: u32,
    hang_runs: u32,
    clients: Vec<u32>,
    secs: f64,
    count: u32,
    concurrency: Vec<u32>,
}

async fn compare(
    options: &Options,
    systems: &[System],
    scenarios: &[Scenario],
    plan: &ComparePlan,
    png: Option<&Path>,
) -> anyhow::Result<Value> {
    let mut values = Vec::new();
    let mut rows: Vec<Row> = Vec::new();
    for &scenario in scenarios {
        for &system in systems {
            let timeout = Duration::from_secs(60);
            let (value, r) = match scenario {
                Scenario::FailoverCrash if system == System::Baton => {
                    failover(options, Fault::Crash, plan.partitions, plan.runs, timeout, 0).await?
                }
                Scenario::FailoverCrash => {
                    baseline_failover(options, system, Fault::Crash, plan.partitions, plan.runs, timeout).await?
                }
                Scenario::FailoverHang if system == System::Baton => {
                    failover(options, Fault::Sigstop, plan.partitions, plan.hang_runs, timeout, 1500).await?
                }
                Scenario::FailoverHang => {
                    baseline_failover(options, system, Fault::Sigstop, plan.partitions, plan.hang_runs, timeout).await?
                }
                Scenario::Query => query(options, system, &plan.clients, plan.secs, plan.partitions).await?,
                Scenario::Commit if system == System::Baton => {
                    commit_bench(options, plan.count, &plan.concurrency, false).await?
                }
                Scenario::Commit => baseline_commit(options, system, plan.count, &plan.concurrency).await?,
            };
            values.push(value);
            rows.extend(r);
        }
    }
    print_comparison(&rows);
    if let Some(png) = png {
        let mut names: Vec<String> = Vec::new();
        for r in &rows {
            if !names.contains(&r.scenario) {
                names.push(r.scenario.clone());
            }
        }
        for name in &names {
            let path = if names.len() == 1 {
                png.to_path_buf()
            } else {
                let stem = png.file_stem().and_then(|s| s.to_str()).unwrap_or("bench");
                let file = format!("{stem}-{}.png", name.replace(" (", "-").replace([' ', '(', ')'], ""));
                png.with_file_name(file)
            };
            let mine: Vec<&Row> = rows.iter().filter(|r| &r.scenario == name).collect();
            draw_png_refs(&path, &mine)?;
        }
    }
    let summary: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "scenario": r.scenario, "case": r.case, "system": r.system.name(),
                "latency_ms": stats_json(r.stats), "per_sec": r.rate,
            })
        })
        .collect();
    Ok(json!({ "scenario": "compare", "summary": summary, "results": values }))
}

fn draw_png(path: &Path, rows: &[Row]) -> anyhow::Result<()> {
    draw_png_refs(path, &rows.iter().collect::<Vec<_>>())
}

// ------------------------------------------- baselines (feature `baselines`)

#[cfg(feature = "baselines")]
fn require_baselines(options: &Options, systems: &[System]) -> anyhow::Result<()> {
    for &s in systems {
        baseline::check_installed(s, options)?;
    }
    Ok(())
}

#[cfg(not(feature = "baselines"))]
fn require_baselines(_: &Options, _: &[System]) -> anyhow::Result<()> {
    require_baselines_missing()
}

#[cfg(feature = "baselines")]
async fn baseline_failover(
    options: &Options,
    system: System,
    fault: Fault,
    partitions: u32,
    runs: u32,
    timeout: Duration,
) -> anyhow::Result<(Value, Vec<Row>)> {
    baseline::failover(options, &options.base, system, fault, partitions, runs, timeout).await
}

#[cfg(feature = "baselines")]
async fn baseline_commit(
    options: &Options,
    system: System,
    count: u32,
    levels: &[u32],
) -> anyhow::Result<(Value, Vec<Row>)> {
    ensure!((1..=100_000).contains(&count), "--count must be 1..=100000");
    ensure!(levels.iter().all(|c| (1..=1024).contains(c)), "--concurrency levels must be 1..=1024");
    let (value, rows) = baseline::baseline_commit(options, &options.base, system, count, levels).await?;
    print_rows(&format!("commit ({}): latency in ms as the client sees it", system.name()), &rows);
    Ok((value, rows))
}

#[cfg(feature = "baselines")]
async fn baseline_query(
    options: &Options,
    system: System,
    levels: &[u32],
    duration: Duration,
    keys: u32,
) -> anyhow::Result<(Value, Vec<Row>)> {
    if system == System::Etcd {
        baseline::etcd_query(options, &options.base, levels, duration, keys).await
    } else {
        baseline::zk_query(options, &options.base, levels, duration, keys).await
    }
}

#[cfg(feature = "baselines")]
fn draw_png_refs(path: &Path, rows: &[&Row]) -> anyhow::Result<()> {
    chart::cdf_png(path, rows)?;
    println!("chart written to {}", path.display());
    Ok(())
}

#[cfg(not(feature = "baselines"))]
async fn baseline_failover(
    _: &Options,
    _: System,
    _: Fault,
    _: u32,
    _: u32,
    _: Duration,
) -> anyhow::Result<(Value, Vec<Row>)> {
    require_baselines_missing()
}

#[cfg(not(feature = "baselines"))]
async fn baseline_commit(_: &Options, _: System, _: u32, _: &[u32]) -> anyhow::Result<(Value, Vec<Row>)> {
    require_baselines_missing()
}

#[cfg(not(feature = "baselines"))]
async fn baseline_query(_: &Options, _: System, _: &[u32], _: Duration, _: u32) -> anyhow::Result<(Value, Vec<Row>)> {
    require_baselines_missing()
}

#[cfg(not(feature = "baselines"))]
fn draw_png_refs(_: &Path, _: &[&Row]) -> anyhow::Result<()> {
    require_baselines_missing()
}

#[cfg(not(feature = "baselines"))]
fn require_baselines_missing<T>() -> anyhow::Result<T> {
    bail!(
        "this baton-bench was built without the `baselines` feature (etcd, ZooKeeper, --png): \
         run scripts/install-baselines.sh, then cargo build --release -p baton-tests --features baselines"
    )
}

// ---------------------------------------------------------------------- check

fn check_bench(calls: u64) -> Value {
    use baton_agent::testing::{apply, grant_lease, idle_agent, partition, update};
    let calls = calls.clamp(1000, 1_000_000_000);
    let agent = idle_agent(1);
    let mut parts = Vec::new();
    for t in 0..100 {
        for p in 0..16 {
            parts.push(partition(&format!("topic-{t}"), p, if p % 2 == 0 { 1 } else { 2 }, 5, &[1, 2, 3]));
        }
    }
    apply(&agent, &update(1, true, parts, &[]));
    grant_lease(&agent, Duration::from_secs(600));
    assert!(agent.check_produce("topic-42", 0).is_ok(), "the bench agent must lead even partitions");
    let run = |agent: &Agent, odd: i32| {
        let start = Instant::now();
        for i in 0..calls {
            let _ = black_box(agent.check_produce(black_box("topic-42"), black_box((i % 8 * 2) as i32 + odd)));
        }
        start.elapsed().as_nanos() as f64 / calls as f64
    };
    let _ = run(&agent, 0);
    let one = run(&agent, 0);
    let two: Vec<f64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2).map(|_| s.spawn(|| run(&agent, 0))).collect();
        handles.into_iter().map(|h| h.join().expect("bench thread")).collect()
    });
    let refused = run(&agent, 1);
    println!();
    println!("check: check_produce, 1600 partitions in the table, {calls} calls per measurement");
    println!("{:<44} {:>10}", "case", "ns/call");
    println!("{:<44} {:>10.1}", "allowed (leader, lease valid), 1 thread", one);
    println!("{:<44} {:>10.1}", "allowed, 2 threads concurrently (thread 1)", two[0]);
    println!("{:<44} {:>10.1}", "allowed, 2 threads concurrently (thread 2)", two[1]);
    println!("{:<44} {:>10.1}", "refused (not leader, with hint), 1 thread", refused);
    json!({
        "scenario": "check",
        "calls": calls,
        "allowed_1_thread_ns": one,
        "allowed_2_threads_ns": two,
        "refused_1_thread_ns": refused,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_and_ratios() {
        let s = stats(&[3.0, 1.0, 2.0, 4.0]).expect("stats");
        assert_eq!((s.min, s.median, s.p99, s.max), (1.0, 2.0, 4.0, 4.0));
        assert_eq!(ratio(Some(2500.0), Some(10.0)), "250x");
        assert_eq!(ratio(Some(1.0), Some(2.0)), "0.50x");
        assert_eq!(ratio(Some(1.0), None), "-");
        let row = Row::new("commit", "C=1", System::Etcd, vec![1.0, 2.0], Some(10.0));
        assert_eq!(row.stats.map(|s| s.max), Some(2.0));
    }
}
