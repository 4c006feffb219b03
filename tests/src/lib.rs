//! Harness for multi-process tests: real `baton-controller` and `baton-agent`
//! processes on loopback ports, driven through `batonctl` and gRPC, with
//! real faults (kill -9 by pid, SIGSTOP / SIGCONT).
//!
//! The binaries must be built first (`scripts/test.sh` does it); the harness
//! finds them next to the test executable's `deps/` folder, or in
//! `BATON_BIN_DIR`.

pub mod faults;
pub mod nemesis;
pub mod refbroker;
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use baton_proto::v1::agent_client::AgentClient;
use baton_proto::v1::{CheckKind, CheckRequest, CheckResponse};
use serde_json::Value;

/// The generous deadline cluster tests wait on conditions with.
pub const LONG: Duration = Duration::from_secs(30);

/// Cluster tests start six processes each; on a 2-core machine they run one
/// at a time so their timing stays meaningful.
static CLUSTER_LOCK: Mutex<()> = Mutex::new(());

/// Takes the lock every multi-process cluster of this test binary holds.
pub(crate) fn cluster_lock() -> MutexGuard<'static, ()> {
    CLUSTER_LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Where the project's binaries are.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("BATON_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/<profile>; a binary of this
    // crate (baton-soak) already sits in target/<profile>.
    let beside = exe.parent().expect("executable dir");
    let dir = if beside.join("baton-controller").exists() {
        beside.to_path_buf()
    } else {
        beside.parent().expect("target dir").to_path_buf()
    };
    for bin in ["baton-controller", "baton-agent", "batonctl"] {
        assert!(
            dir.join(bin).exists(),
            "{} is missing: build the binaries first (scripts/test.sh runs `cargo build --workspace --bins`)",
            dir.join(bin).display()
        );
    }
    dir
}

/// A free loopback port (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// Polls `f` until it returns Some, or fails the test after `timeout`.
pub async fn wait_for<T>(what: &str, timeout: Duration, f: impl AsyncFnMut() -> Option<T>) -> T {
    match try_wait_for(timeout, f).await {
        Some(v) => v,
        None => panic!("timed out after {timeout:?} waiting for {what}"),
    }
}

/// Polls `f` until it returns Some, or gives up (None) after `timeout`.
pub async fn try_wait_for<T>(timeout: Duration, mut f: impl AsyncFnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A child process the harness owns: killed (after SIGCONT) on drop.
pub(crate) struct Proc {
    child: Option<Child>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    binary: &'static str,
    log: PathBuf,
    /// Runs the binary through this command (e.g. `ip netns exec NAME`); empty: directly.
    prefix: Vec<String>,
    /// How the last run ended on its own (see `exit_status`); cleared by `start`.
    exit: Option<ExitStatus>,
}

/// Test processes run without TLS (`tls.plaintext`, explicitly, as every
/// binary requires) unless their environment configures TLS: the security
/// tests (tests/tests/security.rs) run them with certificates.
pub fn plaintext_unless_tls(env: &[(String, String)]) -> Vec<(String, String)> {
    let tls = env.iter().any(|(k, _)| k.starts_with("BATON_TLS__") || k.starts_with("BATON_AGENT_TLS_"));
    if tls {
        return Vec::new();
    }
    [("BATON_TLS__PLAINTEXT", "true"), ("BATON_AGENT_TLS_PLAINTEXT", "true")]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .to_vec()
}

impl Proc {
    pub(crate) fn spawn(binary: &'static str, args: Vec<String>, env: Vec<(String, String)>, log: PathBuf) -> Proc {
        Proc::spawn_with(Vec::new(), binary, args, env, log)
    }

    /// As `spawn`, through `prefix` (e.g. `ip netns exec NAME`, which execs
    /// the binary: the pid, and so kill and pause, are the binary's).
    pub(crate) fn spawn_with(
        prefix: Vec<String>,
        binary: &'static str,
        args: Vec<String>,
        env: Vec<(String, String)>,
        log: PathBuf,
    ) -> Proc {
        let mut p = Proc { child: None, args, env, binary, log, prefix, exit: None };
        p.start();
        p
    }

    /// The arguments of the next `start`.
    pub(crate) fn args_mut(&mut self) -> &mut Vec<String> {
        &mut self.args
    }

    pub(crate) fn start(&mut self) {
        assert!(self.child.is_none(), "{} already running", self.binary);
        self.exit = None;
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("log file");
        let binary = bin_dir().join(self.binary);
        let mut command = match self.prefix.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(&binary);
                c
            }
            None => Command::new(&binary),
        };
        let child = command
            .args(&self.args)
            .envs(plaintext_unless_tls(&self.env))
            .envs(self.env.iter().cloned())
            .env("RUST_LOG", std::env::var("BATON_TEST_LOG").unwrap_or_else(|_| "info,raft=info".into()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", self.binary));
        self.child = Some(child);
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).expect("process running")
    }

    pub(crate) fn signal(&self, sig: &str) {
        let status = Command::new("kill").arg(format!("-{sig}")).arg(self.pid().to_string()).status().expect("kill");
        assert!(status.success(), "kill -{sig} {}", self.pid());
    }

    /// kill -9 by pid, then reap.
    pub(crate) fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub(crate) fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Reaps the process if it ended on its own and returns how (remembered
    /// until the next `start`, which may then run it again); None while it
    /// runs or after a kill9.
    pub(crate) fn exit_status(&mut self) -> Option<ExitStatus> {
        if let Some(child) = self.child.as_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            self.child = None;
            self.exit = Some(status);
        }
        self.exit
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            // A SIGSTOPped process ignores nothing but SIGKILL; resume first
            // anyway so nothing lingers in a stopped state.
            let _ = Command::new("kill").arg("-CONT").arg(child.id().to_string()).status();
        }
        self.kill9();
    }
}

/// Starts agent process number `index` (0-based) for `broker_id`; returns
/// its sidecar address, its advertised endpoint and the process.
fn spawn_agent(
    dir: &Path,
    controllers: &str,
    broker_id: usize,
    index: usize,
    env: Vec<(String, String)>,
) -> (String, String, Proc) {
    let listen = format!("127.0.0.1:{}", free_port());
    let advertised = format!("127.0.0.1:{}", 19092 + index);
    let args = vec![
        "--broker-id".into(),
        broker_id.to_string(),
        "--controllers".into(),
        controllers.to_string(),
        "--advertised".into(),
        advertised.clone(),
        "--listen".into(),
        listen.clone(),
        "--rack".into(),
        format!("rack-{}", index % 3),
    ];
    let log = dir.join(format!("agent-{}.log", index + 1));
    (listen, advertised, Proc::spawn("baton-agent", args, env, log))
}

/// A development PKI made by `batonctl certs init` for a test cluster:
/// `ca.pem`, `controller-<id>`, `broker-<id>`, `admin-admin` and
/// `client-reader` (`.pem` + `.key`).
#[derive(Clone, Debug)]
pub struct Pki {
    pub dir: PathBuf,
}

impl Pki {
    /// Makes the files with `batonctl certs init`.
    pub fn init(dir: &Path, controllers: usize, brokers: usize) -> Pki {
        let ids = |n: usize| (1..=n).map(|i| i.to_string()).collect::<Vec<_>>().join(",");
        let out = Command::new(bin_dir().join("batonctl"))
            .args(["certs", "init", "--dir"])
            .arg(dir)
            .args(["--controller-ids", &ids(controllers.max(5)), "--broker-ids", &ids(brokers.max(3))])
            .args(["--admins", "admin", "--clients", "reader"])
            .output()
            .expect("running batonctl certs init");
        assert!(out.status.success(), "batonctl certs init: {}", String::from_utf8_lossy(&out.stderr));
        Pki { dir: dir.to_path_buf() }
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// `<stem>.pem` and `<stem>.key`, e.g. stem `broker-2`.
    pub fn pair(&self, stem: &str) -> (PathBuf, PathBuf) {
        (self.dir.join(format!("{stem}.pem")), self.dir.join(format!("{stem}.key")))
    }

    fn env(&self, prefix: &str, stem: &str) -> Vec<(String, String)> {
        let (cert, key) = self.pair(stem);
        [("CA_FILE", self.ca()), ("CERT_FILE", cert), ("KEY_FILE", key)]
            .into_iter()
            .map(|(k, v)| (format!("{prefix}{k}"), v.to_string_lossy().into_owned()))
            .collect()
    }

    /// Environment of controller `id`.
    pub fn controller_env(&self, id: usize) -> Vec<(String, String)> {
        self.env("BATON_TLS__", &format!("controller-{id}"))
    }

    /// Environment of the agent of broker `id`.
    pub fn agent_env(&self, id: usize) -> Vec<(String, String)> {
        self.env("BATON_AGENT_TLS_", &format!("broker-{id}"))
    }

    /// Environment of batonctl as `stem` (e.g. `admin-admin`, `client-reader`).
    pub fn batonctl_env(&self, stem: &str) -> Vec<(String, String)> {
        self.env("BATON_TLS__", stem)
    }

    /// A [`baton_security::Tls`] presenting `stem`'s certificate (for raw
    /// gRPC clients in tests).
    pub fn tls(&self, stem: &str) -> std::sync::Arc<baton_security::Tls> {
        let (cert, key) = self.pair(stem);
        let config = baton_security::TlsConfig {
            ca_file: Some(self.ca()),
            cert_file: Some(cert),
            key_file: Some(key),
            reload_interval_ms: 0,
            ..Default::default()
        };
        baton_security::Tls::from_config(&config, "test").expect("test TLS").expect("not plaintext")
    }
}

pub struct ClusterOptions {
    pub controllers: usize,
    pub agents: usize,
    /// Extra environment for controllers, e.g. BATON_LIVENESS__FAST_FAILOVER_ON_DISCONNECT=false.
    pub controller_env: Vec<(String, String)>,
    /// Controllers (0-based) started with the faultfs disk-fault shim
    /// (`faults.rs`): `Cluster::disk_fail` / `disk_stall` / `disk_ok` drive
    /// their syncs. Empty (the default): no shim is built or loaded.
    pub faulty_disks: Vec<usize>,
    /// Serve Prometheus metrics from every controller (see `metrics_addr`).
    pub metrics: bool,
    /// mTLS on every link: a PKI from `batonctl certs init` in the cluster's
    /// folder ([`Cluster::pki`]); batonctl calls present the admin certificate.
    pub tls: bool,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            controllers: 3,
            agents: 3,
            controller_env: Vec::new(),
            faulty_disks: Vec::new(),
            metrics: false,
            tls: false,
        }
    }
}

pub struct Cluster {
    _guard: MutexGuard<'static, ()>,
    pub dir: tempfile::TempDir,
    controllers: Vec<Proc>,
    agents: Vec<Proc>,
    controller_addrs: Vec<String>,
    metrics_addrs: Vec<String>,
    agent_addrs: Vec<String>,
    pub broker_endpoints: Vec<String>,
    keep_logs: bool,
    /// Per controller, the faultfs control file when it runs with the shim.
    disks: Vec<Option<faults::DiskControl>>,
    /// Extra environment every controller gets (also those added later).
    controller_env: Vec<(String, String)>,
    /// With `ClusterOptions::tls`.
    pub pki: Option<Pki>,
}

impl Cluster {
    /// Starts the processes and waits until a controller leads and every
    /// agent is registered and alive.
    pub async fn start(options: ClusterOptions) -> Cluster {
        let guard = CLUSTER_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::Builder::new().prefix("baton-test-").tempdir().expect("tempdir");
        let controller_addrs: Vec<String> =
            (0..options.controllers).map(|_| format!("127.0.0.1:{}", free_port())).collect();
        let peers =
            controller_addrs.iter().enumerate().map(|(i, a)| format!("{}={a}", i + 1)).collect::<Vec<_>>().join(",");
        let pki = options.tls.then(|| Pki::init(&dir.path().join("pki"), options.controllers, options.agents));
        let shim = (!options.faulty_disks.is_empty()).then(|| faults::FaultFs::build(&dir.path().join("faultfs")));
        let mut disks = Vec::new();
        let mut controllers = Vec::new();
        let mut metrics_addrs = Vec::new();
        for (i, addr) in controller_addrs.iter().enumerate() {
            let id = i + 1;
            let data = dir.path().join(format!("controller-{id}"));
            let mut env = options.controller_env.clone();
            if let Some(pki) = &pki {
                env.extend(pki.controller_env(id));
            }
            let disk = shim.as_ref().filter(|_| options.faulty_disks.contains(&i)).map(|shim| {
                let control = faults::DiskControl::create(dir.path().join(format!("controller-{id}.faultfs")));
                env.extend(shim.env(&control, &data));
                control
            });
            disks.push(disk);
            let mut args = vec![
                "--id".into(),
                id.to_string(),
                "--data-dir".into(),
                data.to_string_lossy().into_owned(),
                "--listen".into(),
                addr.clone(),
                "--peers".into(),
                peers.clone(),
            ];
            if options.metrics {
                let metrics = format!("127.0.0.1:{}", free_port());
                args.extend(["--metrics-listen".into(), metrics.clone()]);
                metrics_addrs.push(metrics);
            }
            let log = dir.path().join(format!("controller-{id}.log"));
            controllers.push(Proc::spawn("baton-controller", args, env, log));
        }
        let controllers_flag = controller_addrs.join(",");
        let mut agents = Vec::new();
        let mut agent_addrs = Vec::new();
        let mut broker_endpoints = Vec::new();
        for i in 0..options.agents {
            let env = pki.as_ref().map(|p| p.agent_env(i + 1)).unwrap_or_default();
            let (listen, advertised, proc) = spawn_agent(dir.path(), &controllers_flag, i + 1, i, env);
            agents.push(proc);
            agent_addrs.push(listen);
            broker_endpoints.push(advertised);
        }
        let cluster = Cluster {
            _guard: guard,
            dir,
            controllers,
            agents,
            controller_addrs,
            metrics_addrs,
            agent_addrs,
            broker_endpoints,
            keep_logs: std::env::var_os("BATON_KEEP_LOGS").is_some(),
            disks,
            controller_env: options.controller_env.clone(),
            pki,
        };
        cluster.wait_for_quorum(Duration::from_secs(30)).await;
        let n = options.agents;
        cluster
            .wait_until("every agent registered and alive", Duration::from_secs(30), || {
                let brokers = cluster.brokers().ok()?;
                let alive = brokers.as_array()?.iter().filter(|b| b["state"] == "ALIVE").count();
                (alive == n).then_some(())
            })
            .await;
        cluster
    }

    pub fn controllers_flag(&self) -> String {
        self.controller_addrs.join(",")
    }

    pub fn controller_addr(&self, index: usize) -> &str {
        &self.controller_addrs[index]
    }

    /// Runs batonctl against the whole quorum.
    pub fn batonctl(&self, args: &[&str]) -> Output {
        self.batonctl_at(&self.controllers_flag(), args)
    }

    /// Runs batonctl against the given controllers only (comma-separated).
    pub fn batonctl_at(&self, controllers: &str, args: &[&str]) -> Output {
        let env = self.pki.as_ref().map(|p| p.batonctl_env("admin-admin")).unwrap_or_default();
        Command::new(bin_dir().join("batonctl"))
            .envs(plaintext_unless_tls(&env))
            .envs(env)
            .arg("--controllers")
            .arg(controllers)
            .args(args)
            .output()
            .expect("running batonctl")
    }

    /// `batonctl_at` with `--output json`, parsed.
    pub fn batonctl_json_at(&self, controllers: &str, args: &[&str]) -> anyhow::Result<Value> {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--output", "json"]);
        let out = self.batonctl_at(controllers, &all);
        if !out.status.success() {
            bail!("batonctl {args:?} at {controllers} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        serde_json::from_slice(&out.stdout).with_context(|| format!("batonctl {args:?} printed non-JSON"))
    }

    /// Runs batonctl with `--output json` and parses stdout; Err carries stderr.
    pub fn batonctl_json(&self, args: &[&str]) -> anyhow::Result<Value> {
        self.batonctl_json_at(&self.controllers_flag(), args)
    }

    pub fn brokers(&self) -> anyhow::Result<Value> {
        self.batonctl_json(&["broker", "list"])
    }

    /// A linearizable describe: it sees every write acknowledged before it.
    pub fn describe(&self, topic: &str) -> anyhow::Result<Value> {
        self.batonctl_json(&["topic", "describe", topic, "--linearizable"])
    }

    pub fn quorum(&self) -> anyhow::Result<Value> {
        self.batonctl_json(&["quorum", "status"])
    }

    /// Polls a synchronous condition (typically a batonctl call).
    pub async fn wait_until<T>(&self, what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
        wait_for(what, timeout, async || f()).await
    }

    /// Waits until some controller leads; returns its index (0-based).
    pub async fn wait_for_quorum(&self, timeout: Duration) -> usize {
        self.wait_until("a controller leader", timeout, || {
            let q = self.quorum().ok()?;
            let leader = q["leader"].as_u64()?;
            (leader >= 1).then(|| leader as usize - 1)
        })
        .await
    }

    /// Starts one more agent process claiming `broker_id` (e.g. a second
    /// incarnation of a live broker); returns its agent index.
    pub fn add_agent(&mut self, broker_id: usize) -> usize {
        let index = self.agents.len();
        let env = self.pki.as_ref().map(|p| p.agent_env(broker_id)).unwrap_or_default();
        let (listen, advertised, proc) = spawn_agent(self.dir.path(), &self.controllers_flag(), broker_id, index, env);
        self.agents.push(proc);
        self.agent_addrs.push(listen);
        self.broker_endpoints.push(advertised);
        index
    }

    /// `GET /metrics` of controller `index` (started with `metrics: true`).
    pub async fn metrics(&self, index: usize) -> anyhow::Result<String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(&self.metrics_addrs[index]).await?;
        stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: baton\r\nConnection: close\r\n\r\n").await?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await?;
        anyhow::ensure!(
            response.starts_with("HTTP/1.1 200"),
            "metrics answered: {}",
            response.lines().next().unwrap_or("")
        );
        Ok(response)
    }

    /// The sidecar's Status of agent `index`.
    pub async fn agent_status(&self, index: usize) -> anyhow::Result<baton_proto::v1::AgentStatusResponse> {
        let mut client = AgentClient::connect(format!("http://{}", self.agent_addrs[index])).await?;
        Ok(client.status(baton_proto::v1::AgentStatusRequest {}).await?.into_inner())
    }

    /// Starts one more controller process with `--join` (id = its index + 1,
    /// `--peers` naming every controller so far and itself); it takes part
    /// only once `batonctl quorum add` makes it a member. Returns its index.
    /// Agents keep their controller list: they find it through leader hints.
    pub fn spawn_joining_controller(&mut self) -> usize {
        self.spawn_controller_to_join(true)
    }

    /// As [`Cluster::spawn_joining_controller`]; with `explicit` false, no
    /// `--join`: `--peers` names only the controllers so far, and an id
    /// outside them makes the controller join by itself.
    pub fn spawn_controller_to_join(&mut self, explicit: bool) -> usize {
        let index = self.controllers.len();
        let id = index + 1;
        let addr = format!("127.0.0.1:{}", free_port());
        self.controller_addrs.push(addr.clone());
        let named = if explicit { index + 1 } else { index };
        let peers = self.controller_addrs[..named]
            .iter()
            .enumerate()
            .map(|(i, a)| format!("{}={a}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let data = self.dir.path().join(format!("controller-{id}"));
        let mut args = vec![
            "--id".into(),
            id.to_string(),
            "--data-dir".into(),
            data.to_string_lossy().into_owned(),
            "--listen".into(),
            addr,
            "--peers".into(),
            peers,
        ];
        if explicit {
            args.push("--join".into());
        }
        let log = self.dir.path().join(format!("controller-{id}.log"));
        self.controllers.push(Proc::spawn("baton-controller", args, self.controller_env.clone(), log));
        self.disks.push(None);
        index
    }

    /// Whether controller `index`'s process is running.
    pub fn controller_running(&mut self, index: usize) -> bool {
        self.controllers[index].is_running()
    }

    pub fn kill_controller(&mut self, index: usize) {
        self.controllers[index].kill9();
    }

    /// Starts controller `index` again, after a kill or after it exited on its own.
    pub fn restart_controller(&mut self, index: usize) {
        self.controllers[index].exit_status();
        self.controllers[index].start();
    }

    /// How controller `index` exited on its own; None while it runs (or after a kill).
    pub fn controller_exit_status(&mut self, index: usize) -> Option<ExitStatus> {
        self.controllers[index].exit_status()
    }

    /// Waits until controller `index` exits on its own; fails the test after `timeout`.
    pub async fn wait_controller_exit(&mut self, index: usize, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.controllers[index].exit_status() {
                return status;
            }
            assert!(Instant::now() < deadline, "controller-{} still running after {timeout:?}", index + 1);
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Controller `index`'s data directory (it holds `raft.redb`).
    pub fn controller_data_dir(&self, index: usize) -> PathBuf {
        self.dir.path().join(format!("controller-{}", index + 1))
    }

    fn disk(&self, index: usize) -> &faults::DiskControl {
        self.disks[index].as_ref().unwrap_or_else(|| {
            panic!("controller-{} was not started with the faultfs shim (ClusterOptions::faulty_disks)", index + 1)
        })
    }

    /// From now on every sync of controller `index`'s data files fails with EIO.
    pub fn disk_fail(&self, index: usize) {
        self.disk(index).set(faults::DiskMode::Fail);
    }

    /// From now on every sync of controller `index`'s data files first sleeps `ms`.
    pub fn disk_stall(&self, index: usize, ms: u64) {
        self.disk(index).set(faults::DiskMode::Stall(ms));
    }

    /// Controller `index`'s disk is healthy again.
    pub fn disk_ok(&self, index: usize) {
        self.disk(index).set(faults::DiskMode::Ok);
    }

    pub fn kill_agent(&mut self, index: usize) {
        self.agents[index].kill9();
    }

    /// Starts agent `index` again, after a kill or after it exited on its own.
    pub fn restart_agent(&mut self, index: usize) {
        self.agents[index].exit_status();
        self.agents[index].start();
    }

    /// SIGTERM: the sidecar shuts down cleanly (controlled shutdown first).
    pub fn terminate_agent(&self, index: usize) {
        self.agents[index].signal("TERM");
    }

    /// The sidecar (local gRPC API) address of agent `index`.
    pub fn agent_addr(&self, index: usize) -> &str {
        &self.agent_addrs[index]
    }

    pub fn pause_agent(&self, index: usize) {
        self.agents[index].signal("STOP");
    }

    pub fn resume_agent(&self, index: usize) {
        self.agents[index].signal("CONT");
    }

    pub fn agent_running(&mut self, index: usize) -> bool {
        self.agents[index].is_running()
    }

    /// Asks agent `index`'s sidecar whether it may accept a produce now.
    pub async fn check(&self, index: usize, topic: &str, partition: i32) -> anyhow::Result<CheckResponse> {
        let mut client = AgentClient::connect(format!("http://{}", self.agent_addrs[index])).await?;
        let request =
            CheckRequest { topic: topic.into(), partition, kind: CheckKind::Produce as i32, leader_epoch: -1 };
        Ok(client.check(request).await?.into_inner())
    }

    pub fn log_of(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.agents.clear();
        self.controllers.clear();
        if std::thread::panicking() || self.keep_logs {
            // Keep the logs of a failed test for inspection.
            let path = self.dir.path().to_path_buf();
            let kept = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir"));
            let _ = kept.keep();
            eprintln!("cluster logs kept in {}", path.display());
        }
    }
}

/// Opens a broker session with the given (deliberately wrong) epoch on the
/// controller leader and returns the status it is refused with.
pub async fn session_with_epoch(controllers: &str, broker_id: i32, broker_epoch: u64) -> tonic::Status {
    use baton_proto::v1::broker_session_client::BrokerSessionClient;
    use baton_proto::v1::{Heartbeat, SessionRequest, session_request::Kind};
    use futures::StreamExt;
    for addr in controllers.split(',') {
        let Ok(mut client) = BrokerSessionClient::connect(format!("http://{addr}")).await else { continue };
        let hb = SessionRequest {
            kind: Some(Kind::Heartbeat(Heartbeat { broker_id, broker_epoch, seq: 1, ..Default::default() })),
        };
        // Keep our side open so only the controller can end the stream.
        let outbound = futures::stream::iter(vec![hb]).chain(futures::stream::pending());
        match client.session(outbound).await {
            Err(s) if s.code() == tonic::Code::Unavailable => continue,
            Err(s) => return s,
            Ok(response) => match response.into_inner().message().await {
                Err(s) => return s,
                Ok(m) => panic!("a session with a stale epoch was accepted: {m:?}"),
            },
        }
    }
    panic!("no controller leader answered");
}

/// Partition → (leader, leader epoch) from a `topic describe` JSON object.
pub fn leaders(describe: &Value) -> BTreeMap<i64, (i64, i64)> {
    describe["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .map(|p| {
            let id = p["partition"].as_i64().expect("partition");
            (id, (p["leader"].as_i64().expect("leader"), p["leader_epoch"].as_i64().expect("epoch")))
        })
        .collect()
}

pub fn create_topic(cluster: &Cluster, name: &str, partitions: u32, rf: u32) -> Value {
    // The create's own answer is the topic as committed; a describe sent
    // right after could reach a follower that has not applied it yet.
    let p = partitions.to_string();
    let r = rf.to_string();
    cluster
        .batonctl_json(&["topic", "create", name, "--partitions", &p, "--replication-factor", &r])
        .unwrap_or_else(|e| panic!("topic create {name}: {e}"))
}

/// Waits until every agent's Check agrees with the controller's view of `topic`:
/// the leader's agent allows with the leader epoch, every other live agent
/// refuses with error 6 naming the leader.
pub async fn agents_agree(cluster: &Cluster, topic: &str, live_agents: &[usize]) -> BTreeMap<i64, (i64, i64)> {
    let deadline = Instant::now() + LONG;
    loop {
        let view = leaders(&cluster.describe(topic).expect("describe"));
        let mut ok = true;
        'outer: for (&p, &(leader, epoch)) in &view {
            for &a in live_agents {
                let Ok(r) = cluster.check(a, topic, p as i32).await else {
                    ok = false;
                    break 'outer;
                };
                let me = a as i64 + 1;
                let agrees = if me == leader {
                    r.allowed && r.leader_epoch as i64 == epoch
                } else {
                    !r.allowed && r.error_code == 6 && r.leader_id as i64 == leader
                };
                if !agrees {
                    ok = false;
                    break 'outer;
                }
            }
        }
        if ok {
            return view;
        }
        assert!(Instant::now() < deadline, "agents never agreed with the controller on {topic}: {view:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Cluster {
    /// Reports a replica's log end offset through agent `index`'s sidecar.
    pub async fn record_progress(&self, index: usize, topic: &str, partition: i32, log_end_offset: i64) {
        use baton_proto::v1::ProgressReport;
        let mut client =
            AgentClient::connect(format!("http://{}", self.agent_addrs[index])).await.expect("connect sidecar");
        let report = ProgressReport { topic: topic.into(), partition, log_end_offset };
        let ack = client.record_progress(futures::stream::iter(vec![report])).await.expect("record progress");
        assert_eq!(ack.into_inner().accepted, 1);
    }
}
