//! A cluster wired for fault injection: real `baton-controller` processes,
//! `baton-nemesis-broker` processes (the agent library plus a broker loop
//! that records its writes) instead of sidecars, and a fault [`Proxy`] on
//! every link.
//!
//! ```text
//!  broker k ──A(k→j)──▶ controller j          (one proxy per broker and controller)
//!  controller i ──P(i→j)──▶ controller j      (one proxy per ordered pair)
//!  runner / workload ────▶ controller j       (real address: client traffic is not faulted)
//! ```
//!
//! Controller `i` listens on its real port and is started with a `--peers`
//! list naming *itself* at its real address and every other controller `j`
//! at `P(i→j)`. The controller only requires its own id in `--peers` (its
//! own entry is never dialled); raft messages `i→j` travel on `i`'s stream
//! through `P(i→j)`, so cutting `P(i→j)` silences `i→j` and leaves `j→i`
//! alone. Forwarded writes follow the same path. A `baton-leader` hint from
//! `i` names `P(i→j)`.
//!
//! Brokers get their controllers as `id=address` pairs naming their own
//! proxies A(k→j), so an agent that follows a leader hint maps the hinted
//! id to its own link: cutting broker k's agent links reaches every session
//! it holds, and cutting a controller link `i→j` reaches none of them.
//!
//! **Options.** With `faulty_disks` every controller runs with the faultfs
//! shim (`crate::faults`) and [`NemesisCluster::disk`] fails or stalls its
//! fsyncs. With `netns` (root) broker k runs in its own network namespace
//! (`ip netns exec`, same pid), its proxies A(k→j) listen on the host end of
//! its veth pair, and [`NemesisCluster::netns`] puts kernel faults on that
//! pair: the broker's whole path to the controllers crosses it. A leader
//! hint naming an address only the host can reach (127.0.0.1, e.g. the
//! membership churn's 4th controller) cannot be followed from a namespace:
//! while that controller leads, namespaced brokers talk to the others only.
//!
//! **Rejoin.** [`NemesisCluster::wipe_for_rejoin`] turns a removed founding
//! controller into a joiner (`--join`, empty data dir). It is added back at
//! its real address, which the quorum replicates and which wins over the
//! `--peers` entries: from then on messages *to* it bypass the P(i→j)
//! proxies (cuts towards it are weaker than named; its own messages still
//! cross its proxies).

use std::path::PathBuf;
use std::sync::MutexGuard;
use std::time::Duration;

use crate::faults::{DiskControl, DiskMode, FaultFs};
use crate::nemesis::client::Api;
use crate::nemesis::netns::NetNs;
use crate::nemesis::proxy::{Direction, Proxy};
use crate::{Proc, cluster_lock, free_port};

pub struct NemesisOptions {
    pub controllers: usize,
    pub brokers: usize,
    /// Extra environment for controllers.
    pub controller_env: Vec<(String, String)>,
    /// Broker ids (1-based) started with `--ignore-lease` (broken on purpose).
    pub broken_brokers: Vec<i32>,
    /// The broker loop's interval.
    pub interval_ms: u64,
    /// Seeds the proxies' jitter.
    pub seed: u64,
    /// Start every controller with the faultfs shim (`crate::faults`), so
    /// `disk` can fail or stall its fsyncs.
    pub faulty_disks: bool,
    /// Run every broker in its own network namespace (`nemesis::netns`,
    /// root only): its controller links' proxies listen on the host end of
    /// its veth pair, and kernel faults (loss, delay, one-way drops) can be
    /// put on that pair.
    pub netns: bool,
}

impl Default for NemesisOptions {
    fn default() -> Self {
        NemesisOptions {
            controllers: 3,
            brokers: 3,
            controller_env: Vec::new(),
            broken_brokers: Vec::new(),
            interval_ms: 3,
            seed: 0,
            faulty_disks: false,
            netns: false,
        }
    }
}

pub struct NemesisCluster {
    _guard: MutexGuard<'static, ()>,
    pub dir: tempfile::TempDir,
    controllers: Vec<Proc>,
    brokers: Vec<Proc>,
    paused_brokers: Vec<bool>,
    /// Real controller addresses (index = raft id - 1).
    pub controller_addrs: Vec<String>,
    /// `ctl_links[i][j]`: P(i→j) (None on the diagonal).
    ctl_links: Vec<Vec<Option<Proxy>>>,
    /// `agent_links[k][j]`: A(broker k+1 → controller j+1).
    agent_links: Vec<Vec<Proxy>>,
    /// Per controller, its faultfs control file (with `faulty_disks`).
    disks: Vec<Option<DiskControl>>,
    /// Per broker, its network namespace (with `netns`). Dropped after the
    /// processes (see `Drop`).
    namespaces: Vec<NetNs>,
    /// A kernel fault is set on some namespace (`heal_links` clears them).
    netns_faulted: std::sync::atomic::AtomicBool,
    keep: bool,
}

impl NemesisCluster {
    /// Starts the proxies and processes and waits until a controller leads and
    /// every broker is registered and alive.
    // The std lock is held on purpose for the cluster's whole life: clusters
    // of one test binary run one at a time (see `crate::cluster_lock`).
    #[allow(clippy::await_holding_lock)]
    pub async fn start(options: NemesisOptions) -> anyhow::Result<NemesisCluster> {
        let guard = cluster_lock();
        let dir = tempfile::Builder::new().prefix("baton-nemesis-").tempdir()?;
        let n = options.controllers;
        let controller_addrs: Vec<String> = (0..n).map(|_| format!("127.0.0.1:{}", free_port())).collect();
        let mut ctl_links: Vec<Vec<Option<Proxy>>> = Vec::new();
        for i in 0..n {
            let mut row = Vec::new();
            for (j, target) in controller_addrs.iter().enumerate() {
                row.push(if i == j {
                    None
                } else {
                    let seed = options.seed ^ ((i * 16 + j) as u64);
                    Some(proxy_avoiding(std::net::Ipv4Addr::LOCALHOST, target, seed, &controller_addrs).await?)
                });
            }
            ctl_links.push(row);
        }
        // Every proxy is bound before any controller starts, and none on a
        // controller's port (`proxy_avoiding`): a proxy that took a
        // controller's port would forward to itself, and that controller
        // could not start.
        let mut namespaces = Vec::new();
        if options.netns {
            for _ in 0..options.brokers {
                namespaces.push(NetNs::create().map_err(|e| anyhow::anyhow!("broker network namespace: {e}"))?);
            }
        }
        let mut agent_links = Vec::new();
        for k in 0..options.brokers {
            let bind = namespaces.get(k).map_or(std::net::Ipv4Addr::LOCALHOST, |ns: &NetNs| ns.host_ip);
            let mut links = Vec::new();
            for (j, target) in controller_addrs.iter().enumerate() {
                let seed = options.seed ^ (0x1000 + (k * 16 + j) as u64);
                links.push(proxy_avoiding(bind, target, seed, &controller_addrs).await?);
            }
            agent_links.push(links);
        }
        let shim = options.faulty_disks.then(|| FaultFs::build(&dir.path().join("faultfs")));
        let mut disks = Vec::new();
        let mut controllers = Vec::new();
        for (i, addr) in controller_addrs.iter().enumerate() {
            let peers: Vec<String> = (0..n)
                .map(|j| match &ctl_links[i][j] {
                    None => format!("{}={addr}", j + 1),
                    Some(p) => format!("{}={}", j + 1, p.addr()),
                })
                .collect();
            let id = i + 1;
            let data = dir.path().join(format!("controller-{id}"));
            let args = vec![
                "--id".into(),
                id.to_string(),
                "--data-dir".into(),
                data.to_string_lossy().into_owned(),
                "--listen".into(),
                addr.clone(),
                "--peers".into(),
                peers.join(","),
            ];
            let log = dir.path().join(format!("controller-{id}.log"));
            let mut env = options.controller_env.clone();
            disks.push(shim.as_ref().map(|shim| {
                let control = DiskControl::create(dir.path().join(format!("controller-{id}.faultfs")));
                env.extend(shim.env(&control, &data));
                control
            }));
            controllers.push(Proc::spawn("baton-controller", args, env, log));
        }
        let mut brokers = Vec::new();
        for (k, links) in agent_links.iter().enumerate() {
            let ns = namespaces.get(k);
            let id = (k + 1) as i32;
            // `id=address`: a leader hint naming controller j+1 then goes
            // through this broker's own link to it, never around it.
            let list: Vec<String> = links.iter().enumerate().map(|(j, p)| format!("{}={}", j + 1, p.addr())).collect();
            let mut args = vec![
                "--broker-id".to_string(),
                id.to_string(),
                "--controllers".into(),
                list.join(","),
                "--advertised".into(),
                format!("127.0.0.1:{}", 29092 + k),
                "--rack".into(),
                format!("rack-{}", k % 3),
                "--history".into(),
                dir.path().join(format!("broker-{id}.jsonl")).to_string_lossy().into_owned(),
                "--interval-ms".into(),
                options.interval_ms.to_string(),
            ];
            if options.broken_brokers.contains(&id) {
                args.push("--ignore-lease".into());
            }
            let log = dir.path().join(format!("broker-{id}.log"));
            let prefix = ns.map(NetNs::exec_prefix).unwrap_or_default();
            brokers.push(Proc::spawn_with(prefix, "baton-nemesis-broker", args, Vec::new(), log));
        }
        let cluster = NemesisCluster {
            _guard: guard,
            dir,
            controllers,
            paused_brokers: vec![false; options.brokers],
            brokers,
            controller_addrs,
            ctl_links,
            agent_links,
            disks,
            namespaces,
            netns_faulted: Default::default(),
            keep: std::env::var_os("BATON_KEEP_LOGS").is_some(),
        };
        cluster.wait_brokers_alive(Duration::from_secs(30)).await?;
        Ok(cluster)
    }

    pub fn api(&self) -> Api {
        Api::new(self.controller_addrs.clone())
    }

    pub fn controllers(&self) -> usize {
        self.controllers.len()
    }

    pub fn brokers(&self) -> usize {
        self.brokers.len()
    }

    /// Waits until every broker is registered and ALIVE.
    pub async fn wait_brokers_alive(&self, within: Duration) -> anyhow::Result<()> {
        let api = self.api();
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Ok(r) = api.list_brokers(Duration::from_secs(1)).await {
                let alive = r.brokers.iter().filter(|b| b.state == 1).count();
                if alive == self.brokers.len() {
                    return Ok(());
                }
            }
            anyhow::ensure!(tokio::time::Instant::now() < deadline, "brokers not all alive within {within:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Broker history files (one per broker id; restarts append).
    pub fn history_files(&self) -> Vec<PathBuf> {
        (1..=self.brokers.len()).map(|id| self.dir.path().join(format!("broker-{id}.jsonl"))).collect()
    }

    pub fn kill_controller(&mut self, index: usize) {
        self.controllers[index].kill9();
    }

    pub fn restart_controller(&mut self, index: usize) {
        if !self.controllers[index].is_running() {
            self.controllers[index].start();
        }
    }

    pub fn kill_broker(&mut self, index: usize) {
        if self.paused_brokers[index] {
            self.resume_broker(index);
        }
        self.brokers[index].kill9();
    }

    pub fn restart_broker(&mut self, index: usize) {
        if !self.brokers[index].is_running() {
            self.brokers[index].start();
        }
    }

    pub fn pause_broker(&mut self, index: usize) {
        self.brokers[index].signal("STOP");
        self.paused_brokers[index] = true;
    }

    pub fn resume_broker(&mut self, index: usize) {
        if self.paused_brokers[index] {
            self.brokers[index].signal("CONT");
            self.paused_brokers[index] = false;
        }
    }

    /// Cuts broker `k`'s links to every controller (`dir` None: both ways).
    /// Returns the connections the cut holds.
    pub fn cut_agent(&self, k: usize, dir: Option<Direction>) -> u64 {
        let mut open = 0;
        for link in &self.agent_links[k] {
            match dir {
                None => link.cut(),
                Some(d) => link.cut_one_way(d),
            }
            open += link.stats().open;
        }
        open
    }

    /// Cuts controller `i`'s messages to `j` (and `j`'s to `i` when `both`).
    /// Returns the connections the cut holds.
    pub fn cut_controllers(&self, i: usize, j: usize, both: bool) -> u64 {
        let mut open = 0;
        let pairs: &[(usize, usize)] = if both { &[(i, j), (j, i)] } else { &[(i, j)] };
        for &(a, b) in pairs {
            if let Some(link) = &self.ctl_links[a][b] {
                link.cut();
                open += link.stats().open;
            }
        }
        open
    }

    /// Slows broker `k`'s links to every controller, both directions.
    pub fn delay_agent(&self, k: usize, fixed: Duration) {
        for link in &self.agent_links[k] {
            for dir in [Direction::ClientToTarget, Direction::TargetToClient] {
                link.delay(dir, fixed, fixed);
            }
        }
    }

    /// Slows controller `i`'s messages to `j` and `j`'s to `i`.
    pub fn delay_controllers(&self, i: usize, j: usize, fixed: Duration) {
        for (a, b) in [(i, j), (j, i)] {
            if let Some(link) = &self.ctl_links[a][b] {
                for dir in [Direction::ClientToTarget, Direction::TargetToClient] {
                    link.delay(dir, fixed, fixed);
                }
            }
        }
    }

    /// Broker `k`'s links to every controller lose chunks, both directions.
    pub fn loss_agent(&self, k: usize, permille: u32) {
        for link in &self.agent_links[k] {
            for dir in Direction::BOTH {
                link.loss(dir, permille);
            }
        }
    }

    /// Controller `i`'s and `j`'s links to each other lose chunks, both directions.
    pub fn loss_controllers(&self, i: usize, j: usize, permille: u32) {
        for (a, b) in [(i, j), (j, i)] {
            if let Some(link) = &self.ctl_links[a][b] {
                for dir in Direction::BOTH {
                    link.loss(dir, permille);
                }
            }
        }
    }

    /// Chunks the proxies held for a retransmission timeout so far.
    pub fn lost_chunks(&self) -> u64 {
        let ctl = self.ctl_links.iter().flatten().flatten().map(|l| l.stats().lost);
        ctl.chain(self.agent_links.iter().flatten().map(|l| l.stats().lost)).sum()
    }

    /// Sets controller `index`'s disk (needs `NemesisOptions::faulty_disks`).
    pub fn disk(&self, index: usize, mode: DiskMode) {
        match &self.disks[index] {
            Some(control) => control.set(mode),
            None => panic!("controller-{} runs without the faultfs shim (NemesisOptions::faulty_disks)", index + 1),
        }
    }

    /// True when the cluster was started with the faultfs shim.
    pub fn has_faulty_disks(&self) -> bool {
        self.disks.iter().any(Option::is_some)
    }

    /// How controller `index` ended on its own (e.g. on a failed fsync), if it did.
    pub fn controller_exit(&mut self, index: usize) -> Option<std::process::ExitStatus> {
        self.controllers[index].exit_status()
    }

    /// Controller `index`'s data directory.
    pub fn controller_data_dir(&self, index: usize) -> PathBuf {
        self.dir.path().join(format!("controller-{}", index + 1))
    }

    /// Stops controller `index`, deletes its data directory and makes its
    /// next start join the running quorum (`--join`, fresh log: it waits
    /// for a snapshot from the leader). For a controller already removed
    /// from the quorum.
    pub fn wipe_for_rejoin(&mut self, index: usize) -> anyhow::Result<()> {
        self.controllers[index].kill9();
        let data = self.controller_data_dir(index);
        match std::fs::remove_dir_all(&data) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        let args = self.controllers[index].args_mut();
        if !args.iter().any(|a| a == "--join") {
            args.push("--join".into());
        }
        Ok(())
    }

    /// Broker `k`'s network namespace (with `NemesisOptions::netns`).
    pub fn netns(&self, k: usize) -> Option<&NetNs> {
        let ns = self.namespaces.get(k);
        if ns.is_some() {
            self.netns_faulted.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        ns
    }

    /// Every link passes again, with no delay or loss; kernel faults on the
    /// brokers' namespaces are cleared too. Returns the packets the kernel
    /// rules dropped since the last clear.
    pub fn heal_links(&self) -> u64 {
        self.ctl_links.iter().flatten().flatten().for_each(|l| l.heal());
        self.agent_links.iter().flatten().for_each(|l| l.heal());
        if self.netns_faulted.swap(false, std::sync::atomic::Ordering::Relaxed) {
            self.namespaces.iter().map(NetNs::clear).sum()
        } else {
            0
        }
    }

    /// Heals every link and makes every process run again.
    pub fn heal_all(&mut self) {
        self.heal_links();
        for i in 0..self.disks.len() {
            if self.disks[i].is_some() {
                self.disk(i, DiskMode::Ok);
            }
        }
        for i in 0..self.controllers.len() {
            self.restart_controller(i);
        }
        for k in 0..self.brokers.len() {
            self.resume_broker(k);
            self.restart_broker(k);
        }
    }

    /// Kills every broker (so their history files are complete).
    pub fn stop_brokers(&mut self) {
        for k in 0..self.brokers.len() {
            self.kill_broker(k);
        }
    }

    /// Keep the folder (logs, histories) when the cluster is dropped.
    pub fn keep_dir(&mut self) {
        self.keep = true;
    }
}

/// A proxy to `target` on `bind`, on a port that is none of `controllers`'
/// (their ports were picked by `free_port` and released: an ephemeral bind
/// may get one back before the controller binds it).
async fn proxy_avoiding(
    bind: std::net::Ipv4Addr,
    target: &str,
    seed: u64,
    controllers: &[String],
) -> anyhow::Result<Proxy> {
    let mut taken = Vec::new();
    loop {
        let proxy = Proxy::start_on(bind.into(), target.parse()?, seed).await?;
        if !controllers.iter().any(|c| c.parse().ok() == Some(proxy.addr())) {
            return Ok(proxy);
        }
        // Keep it bound while retrying, so the next bind gets another port.
        taken.push(proxy);
    }
}

impl Drop for NemesisCluster {
    fn drop(&mut self) {
        self.brokers.clear();
        self.controllers.clear();
        // After the processes: a namespace goes when its last process does.
        self.namespaces.clear();
        if std::thread::panicking() || self.keep {
            let path = self.dir.path().to_path_buf();
            if let Ok(fresh) = tempfile::tempdir() {
                let kept = std::mem::replace(&mut self.dir, fresh);
                let _ = kept.keep();
                eprintln!("nemesis cluster logs and histories kept in {}", path.display());
            }
        }
    }
}
