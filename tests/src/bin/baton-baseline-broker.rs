//! `baton-baseline-broker`: a broker that takes partition leadership from
//! etcd or ZooKeeper instead of Baton, the way "just use etcd / ZooKeeper"
//! systems do. `baton-bench --system etcd|zookeeper` starts three of these
//! (separate processes) to compare failover with Baton's.
//!
//! - **etcd**: one lease per broker (the shortest TTL etcd grants, kept alive
//!   every TTL/3 like etcd's own client library). Partition `p`'s leader is
//!   the key `<prefix>/p/<p>`, value = broker id, attached to the leader's
//!   lease. Every broker watches the prefix; when a key is deleted (its
//!   holder's lease expired) every survivor campaigns with one transaction:
//!   `if create_revision(key) == 0 then put(key, me, lease) else get(key)`,
//!   so the loser learns the winner from the same round trip.
//! - **zookeeper**: one session per broker, with the shortest session timeout
//!   the ensemble allows (2 × tickTime; the bench asks for exactly that).
//!   Partition `p`'s leader is the ephemeral znode `<prefix>/p-<p>`, data =
//!   broker id, as Kafka did before KRaft. Every broker holds a data watch on
//!   every partition's znode; on NodeDeleted (the holder's session expired)
//!   every survivor tries to create it; the loser reads (and watches) it.
//!
//! At start a broker creates the keys of the partitions `p` with
//! `p % 3 == broker_id - 1` (so broker 1 leads N of 3N); it campaigns for
//! others only when a key it saw disappears.
//!
//! Every change of this broker's view of a partition's leader is appended to
//! `--events` as a JSON line `{"p":P,"l":LEADER,"t":NS,"k":"how"}`, where `t`
//! is `CLOCK_MONOTONIC` in ns read when the answer or event was received
//! (comparable with the bench's own reading: same host), `l` is -1 when the
//! key was seen deleted, and `how` is `won` (our create succeeded), `lost`
//! (the create failed and named the holder), `watch`, `deleted` or `initial`.
//! Lines `{"ev":"..."}` report milestones (`ready`, `complete`: the view
//! names a leader for all partitions). The process exits when its parent
//! dies.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use baton_tests::nemesis::clock::monotonic_ns;
use clap::{Parser, ValueEnum};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum System {
    Etcd,
    Zookeeper,
}

#[derive(Parser, Debug)]
#[command(name = "baton-baseline-broker")]
struct Flags {
    #[arg(long, value_enum)]
    system: System,
    #[arg(long)]
    broker_id: i32,
    /// Number of brokers (the initial leaders are spread p % brokers).
    #[arg(long, default_value_t = 3)]
    brokers: i32,
    /// Server addresses, comma-separated host:port (etcd client URLs or ZooKeeper client ports).
    #[arg(long)]
    endpoints: String,
    /// Total partitions (keys / znodes).
    #[arg(long)]
    partitions: i32,
    /// Key prefix (etcd) or parent znode (ZooKeeper).
    #[arg(long, default_value = "/baton-bench")]
    prefix: String,
    /// etcd lease TTL asked for, seconds (etcd raises it to its minimum).
    #[arg(long, default_value_t = 1)]
    ttl_secs: i64,
    /// ZooKeeper session timeout asked for, ms (the server clamps it to [2, 20] × tickTime;
    /// the client derives its connect and ping timeouts from it, so ask for 2 × tickTime).
    #[arg(long, default_value_t = 4000)]
    session_timeout_ms: u64,
    /// Where to append the view changes (JSON lines).
    #[arg(long)]
    events: PathBuf,
}

/// One line of the events file.
enum Line {
    View { p: i32, leader: i32, t: u64, how: &'static str },
    Milestone { ev: &'static str, t: u64, detail: String },
}

#[derive(Clone)]
struct Events {
    tx: mpsc::UnboundedSender<Line>,
}

impl Events {
    fn view(&self, p: i32, leader: i32, t: u64, how: &'static str) {
        let _ = self.tx.send(Line::View { p, leader, t, how });
    }

    fn milestone(&self, ev: &'static str, detail: String) {
        let _ = self.tx.send(Line::Milestone { ev, t: monotonic_ns(), detail });
    }
}

/// This broker's view: leader per partition, and when it first covered all.
struct View {
    leaders: Vec<i32>,
    known: usize,
    complete: bool,
    events: Events,
}

impl View {
    fn new(partitions: i32, events: Events) -> View {
        View { leaders: vec![-1; partitions as usize], known: 0, complete: false, events }
    }

    /// Records a new leader (or -1: deleted) for `p` if it differs from the view.
    fn set(&mut self, p: i32, leader: i32, t: u64, how: &'static str) {
        let Some(slot) = self.leaders.get_mut(p as usize) else { return };
        if *slot == leader {
            return;
        }
        match (*slot >= 0, leader >= 0) {
            (false, true) => self.known += 1,
            (true, false) => self.known -= 1,
            _ => {}
        }
        *slot = leader;
        self.events.view(p, leader, t, how);
        if !self.complete && self.known == self.leaders.len() {
            self.complete = true;
            self.events.milestone("complete", String::new());
        }
    }
}

async fn write_events(path: PathBuf, mut rx: mpsc::UnboundedReceiver<Line>) -> anyhow::Result<()> {
    let mut file = tokio::fs::OpenOptions::new().create(true).append(true).open(&path).await?;
    let mut buf = String::new();
    while let Some(first) = rx.recv().await {
        buf.clear();
        let mut line = Some(first);
        while let Some(l) = line {
            match l {
                Line::View { p, leader, t, how } => {
                    buf.push_str(&format!("{{\"p\":{p},\"l\":{leader},\"t\":{t},\"k\":\"{how}\"}}\n"));
                }
                Line::Milestone { ev, t, detail } => {
                    buf.push_str(&serde_json::json!({ "ev": ev, "t": t, "detail": detail }).to_string());
                    buf.push('\n');
                }
            }
            line = rx.try_recv().ok();
        }
        file.write_all(buf.as_bytes()).await?;
        file.flush().await?;
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    anyhow::ensure!(flags.partitions >= 1 && flags.broker_id >= 1 && flags.brokers >= 1, "bad arguments");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async {
        let (tx, rx) = mpsc::unbounded_channel();
        let events = Events { tx };
        let writer = tokio::spawn(write_events(flags.events.clone(), rx));
        let parent = std::os::unix::process::parent_id();
        let work = async {
            match flags.system {
                System::Etcd => run_etcd(&flags, events.clone()).await,
                System::Zookeeper => run_zookeeper(&flags, events.clone()).await,
            }
        };
        let orphaned = async {
            while std::os::unix::process::parent_id() == parent {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        };
        let result = tokio::select! {
            r = work => r,
            _ = orphaned => Ok(()),
        };
        if let Err(e) = &result {
            events.milestone("error", format!("{e:#}"));
        }
        drop(events);
        let _ = tokio::time::timeout(Duration::from_secs(1), writer).await;
        result
    })
}

/// etcd transactions one broker keeps in flight (a worker pool, as a real
/// broker would use; the client multiplexes them over one HTTP/2 connection).
const CAMPAIGNS_IN_FLIGHT: usize = 128;

fn mine(flags: &Flags, p: i32) -> bool {
    p % flags.brokers == flags.broker_id - 1
}

// ----------------------------------------------------------------------- etcd

async fn run_etcd(flags: &Flags, events: Events) -> anyhow::Result<()> {
    use etcd_client::{Client, Compare, CompareOp, EventType, GetOptions, PutOptions, Txn, TxnOp, WatchOptions};

    let endpoints: Vec<String> = flags.endpoints.split(',').map(|e| format!("http://{e}")).collect();
    let mut client = Client::connect(&endpoints, None).await.context("connecting to etcd")?;
    let lease = client.lease_grant(flags.ttl_secs, None).await.context("LeaseGrant")?;
    let (lease_id, ttl) = (lease.id(), lease.ttl());
    events.milestone("lease", format!("asked ttl {} s, granted {ttl} s, id {lease_id:x}", flags.ttl_secs));

    // Keep-alive every TTL/3, as etcd's Go client does.
    let (mut keeper, mut acks) = client.lease_keep_alive(lease_id).await.context("LeaseKeepAlive")?;
    let lease_events = events.clone();
    tokio::spawn(async move {
        let every = Duration::from_millis((ttl.max(1) as u64 * 1000) / 3);
        let lost = loop {
            if let Err(e) = keeper.keep_alive().await {
                break format!("keepalive failed: {e}");
            }
            match acks.message().await {
                Ok(Some(r)) if r.ttl() <= 0 => break "keepalive answered TTL 0 (the lease expired)".to_owned(),
                Ok(Some(_)) => {}
                other => break format!("keepalive stream ended: {other:?}"),
            }
            tokio::time::sleep(every).await;
        };
        // Our own lease is gone: every key we held was deleted with it.
        lease_events.milestone("lease-lost", lost);
    });

    let prefix = format!("{}/p/", flags.prefix);
    let key = |p: i32| format!("{prefix}{p}");
    let me = flags.broker_id;
    let view = Arc::new(std::sync::Mutex::new(View::new(flags.partitions, events.clone())));

    // One transaction: create the key under our lease if absent, else read
    // the holder. At most CAMPAIGNS_IN_FLIGHT at once per broker (unbounded,
    // 10k concurrent transactions make etcd time requests out), retried on
    // errors such as "request timed out".
    let in_flight = Arc::new(tokio::sync::Semaphore::new(CAMPAIGNS_IN_FLIGHT));
    let campaign = {
        let client = client.clone();
        let view = view.clone();
        let prefix = prefix.clone();
        move |p: i32| {
            let mut client = client.clone();
            let view = view.clone();
            let in_flight = in_flight.clone();
            let k = format!("{prefix}{p}");
            async move {
                let Ok(_permit) = in_flight.acquire().await else { return };
                for attempt in 0..20 {
                    let txn = Txn::new()
                        .when([Compare::create_revision(k.clone(), CompareOp::Equal, 0)])
                        .and_then([TxnOp::put(k.clone(), me.to_string(), Some(PutOptions::new().with_lease(lease_id)))])
                        .or_else([TxnOp::get(k.clone(), None)]);
                    match client.txn(txn).await {
                        Ok(r) => {
                            let t = monotonic_ns();
                            if r.succeeded() {
                                lock(&view).set(p, me, t, "won");
                            } else {
                                for op in r.op_responses() {
                                    if let etcd_client::TxnOpResponse::Get(g) = op
                                        && let Some(kv) = g.kvs().first()
                                    {
                                        lock(&view).set(p, parse_id(kv.value()), t, "lost");
                                    }
                                }
                            }
                            return;
                        }
                        Err(e) => {
                            eprintln!("campaign {p} (attempt {attempt}): {e}");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            }
        }
    };

    // Initial leadership: our share, concurrently.
    let mut initial = tokio::task::JoinSet::new();
    for p in (0..flags.partitions).filter(|&p| mine(flags, p)) {
        initial.spawn(campaign(p));
    }
    while initial.join_next().await.is_some() {}

    // The whole view, then a watch from just after it.
    let got = client.get(prefix.clone(), Some(GetOptions::new().with_prefix())).await.context("Get prefix")?;
    let revision = got.header().map_or(0, |h| h.revision());
    let t = monotonic_ns();
    for kv in got.kvs() {
        if let Some(p) = partition_of(kv.key(), prefix.as_bytes()) {
            lock(&view).set(p, parse_id(kv.value()), t, "initial");
        }
    }
    let mut watch = client
        .watch(prefix.clone(), Some(WatchOptions::new().with_prefix().with_start_revision(revision + 1)))
        .await
        .context("Watch")?;
    events.milestone("ready", format!("revision {revision}, first key {}", key(0)));
    while let Some(resp) = watch.message().await.context("watch stream")? {
        let t = monotonic_ns();
        for ev in resp.events() {
            let Some(kv) = ev.kv() else { continue };
            let Some(p) = partition_of(kv.key(), prefix.as_bytes()) else { continue };
            match ev.event_type() {
                EventType::Put => lock(&view).set(p, parse_id(kv.value()), t, "watch"),
                EventType::Delete => {
                    lock(&view).set(p, -1, t, "deleted");
                    tokio::spawn(campaign(p));
                }
            }
        }
    }
    bail!("etcd watch stream ended")
}

fn lock(view: &std::sync::Mutex<View>) -> std::sync::MutexGuard<'_, View> {
    view.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn parse_id(value: &[u8]) -> i32 {
    std::str::from_utf8(value).ok().and_then(|s| s.parse().ok()).unwrap_or(-2)
}

fn partition_of(key: &[u8], prefix: &[u8]) -> Option<i32> {
    std::str::from_utf8(key.strip_prefix(prefix)?).ok()?.parse().ok()
}

// ------------------------------------------------------------------ zookeeper

async fn run_zookeeper(flags: &Flags, events: Events) -> anyhow::Result<()> {
    use zookeeper_client::{Acls, Client, CreateMode, Error as ZkError, EventType};

    let client = Client::connector()
        .with_session_timeout(Duration::from_millis(flags.session_timeout_ms.max(1)))
        .connect(&flags.endpoints)
        .await
        .context("connecting to ZooKeeper")?;
    events.milestone(
        "session",
        format!(
            "asked {} ms, negotiated {} ms, session {:?}",
            flags.session_timeout_ms,
            client.session_timeout().as_millis(),
            client.session_id()
        ),
    );
    let parent = flags.prefix.clone();
    match client.create(&parent, b"", &CreateMode::Persistent.with_acls(Acls::anyone_all())).await {
        Ok(_) | Err(ZkError::NodeExists) => {}
        Err(e) => return Err(e).context("creating the parent znode"),
    }
    let me = flags.broker_id;
    let ephemeral = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
    let view = Arc::new(std::sync::Mutex::new(View::new(flags.partitions, events.clone())));

    // Initial leadership: our share, pipelined on the session's connection.
    let mut initial = tokio::task::JoinSet::new();
    for p in (0..flags.partitions).filter(|&p| mine(flags, p)) {
        let (client, view) = (client.clone(), view.clone());
        let path = format!("{parent}/p-{p}");
        let ephemeral = ephemeral.clone();
        initial.spawn(async move {
            match client.create(&path, me.to_string().as_bytes(), &ephemeral).await {
                Ok(_) => lock(&view).set(p, me, monotonic_ns(), "won"),
                Err(e) => eprintln!("create {path}: {e}"),
            }
        });
    }
    while initial.join_next().await.is_some() {}

    // One task per partition: read and watch its znode; when it is deleted,
    // try to create it; when it does not exist yet, wait for its creation.
    let mut tasks = tokio::task::JoinSet::new();
    for p in 0..flags.partitions {
        let (client, view) = (client.clone(), view.clone());
        let path = format!("{parent}/p-{p}");
        let ephemeral = ephemeral.clone();
        tasks.spawn(async move {
            let mut first = true;
            loop {
                match client.get_and_watch_data(&path).await {
                    Ok((data, _, watcher)) => {
                        lock(&view).set(p, parse_id(&data), monotonic_ns(), if first { "initial" } else { "lost" });
                        first = false;
                        let ev = watcher.changed().await;
                        match ev.event_type {
                            EventType::NodeDeleted => {
                                lock(&view).set(p, -1, monotonic_ns(), "deleted");
                                match client.create(&path, me.to_string().as_bytes(), &ephemeral).await {
                                    Ok(_) => lock(&view).set(p, me, monotonic_ns(), "won"),
                                    Err(ZkError::NodeExists) => {} // read the winner next
                                    Err(e) => eprintln!("create {path}: {e}"),
                                }
                            }
                            EventType::Session => return,
                            _ => {}
                        }
                    }
                    Err(ZkError::NoNode) => match client.check_and_watch_stat(&path).await {
                        Ok((None, watcher)) => {
                            if watcher.changed().await.event_type == EventType::Session {
                                return;
                            }
                        }
                        Ok((Some(_), _)) => {}
                        Err(e) => {
                            eprintln!("exists {path}: {e}");
                            return;
                        }
                    },
                    Err(e) => {
                        eprintln!("get {path}: {e}");
                        return;
                    }
                }
            }
        });
    }
    let mut state = client.state_watcher();
    let session_events = events.clone();
    tokio::spawn(async move {
        loop {
            let s = state.changed().await;
            if s.is_terminated() {
                session_events.milestone("lease-lost", format!("ZooKeeper session {s:?}"));
                return;
            }
        }
    });
    events.milestone("ready", String::new());
    while tasks.join_next().await.is_some() {}
    bail!("ZooKeeper session ended ({:?})", client.state())
}
