//! Harness for the end-to-end tests with real Kafka clients
//! (`tests/kafka_e2e.rs`): three `baton-refbroker` processes (each embedding
//! the agent) beside the usual three controllers, a Python producer on
//! librdkafka (`tests/kafka/producer.py`, confluent-kafka from PyPI) and kcat
//! (Debian) for metadata listings and as the consumer.
//!
//! [`ensure_kafka_clients`] installs the two clients when they are missing
//! (`.ci/run` does the same before the test step), so the test needs no
//! preparation beyond the workspace's binaries.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail, ensure};
use serde_json::Value;

use crate::{Cluster, ClusterOptions, Proc, free_port, try_wait_for, wait_for};

/// Installs confluent-kafka (PyPI) and kcat (Debian) unless already there.
/// Idempotent; the same commands as `.ci/run`.
pub fn ensure_kafka_clients() -> anyhow::Result<()> {
    let has_python_client = Command::new("python3")
        .args(["-c", "import confluent_kafka"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_python_client {
        let status = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "confluent-kafka"])
            .status()
            .context("running pip")?;
        ensure!(status.success(), "pip install confluent-kafka failed");
    }
    if !command_exists("kcat") {
        let update = Command::new("apt-get").args(["update", "-qq"]).status().context("running apt-get update")?;
        ensure!(update.success(), "apt-get update failed");
        let install = Command::new("apt-get")
            .args(["install", "-y", "-qq", "kcat"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .context("running apt-get install kcat")?;
        ensure!(install.success(), "apt-get install kcat failed");
    }
    Ok(())
}

/// `line` cut to at most `max` bytes (on a character boundary).
fn truncate(line: &str, max: usize) -> &str {
    let mut end = line.len().min(max);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    &line[..end]
}

fn command_exists(name: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Where the Python clients live.
fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("kafka").join(name)
}

pub fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// Three controllers and three reference brokers on loopback.
pub struct KafkaCluster {
    pub cluster: Cluster,
    brokers: Vec<Proc>,
    /// Kafka listener of broker `i + 1`.
    pub kafka_addrs: Vec<String>,
}

impl KafkaCluster {
    pub async fn start(brokers: usize) -> KafkaCluster {
        let cluster = Cluster::start(ClusterOptions { agents: 0, ..ClusterOptions::default() }).await;
        let mut procs = Vec::new();
        let mut kafka_addrs = Vec::new();
        for i in 0..brokers {
            let addr = format!("127.0.0.1:{}", free_port());
            let args = vec![
                "--broker-id".into(),
                (i + 1).to_string(),
                "--controllers".into(),
                cluster.controllers_flag(),
                "--listen".into(),
                addr.clone(),
                "--rack".into(),
                format!("rack-{}", i % 3),
            ];
            let log = cluster.dir.path().join(format!("refbroker-{}.log", i + 1));
            procs.push(Proc::spawn("baton-refbroker", args, Vec::new(), log));
            kafka_addrs.push(addr);
        }
        let kc = KafkaCluster { cluster, brokers: procs, kafka_addrs };
        kc.cluster
            .wait_until("every reference broker registered and alive", Duration::from_secs(30), || {
                let list = kc.cluster.brokers().ok()?;
                let alive = list.as_array()?.iter().filter(|b| b["state"] == "ALIVE").count();
                (alive == brokers).then_some(())
            })
            .await;
        kc
    }

    pub fn bootstrap(&self) -> String {
        self.kafka_addrs.join(",")
    }

    pub fn kill_broker(&mut self, id: i64) {
        self.brokers[broker_index(id)].kill9();
    }

    /// Starts a killed broker again, same id and listener: its in-memory
    /// logs are gone, so it comes back as an empty replica.
    pub fn restart_broker(&mut self, id: i64) {
        self.brokers[broker_index(id)].start();
    }

    pub fn pause_broker(&self, id: i64) {
        self.brokers[broker_index(id)].signal("STOP");
    }

    pub fn resume_broker(&self, id: i64) {
        self.brokers[broker_index(id)].signal("CONT");
    }

    /// Waits until every one of `partitions` has `more` acks beyond `base`;
    /// on timeout prints [`KafkaCluster::diagnosis`] and fails the test.
    pub async fn wait_acks(
        &self,
        producer: &ProducerRun,
        what: &str,
        partitions: u32,
        base: &BTreeMap<i32, u64>,
        more: u64,
        within: Duration,
    ) {
        self.wait_acks_of(producer, what, 0..partitions as i32, base, more, within).await;
    }

    /// Waits until `partition` has `more` acks beyond `base` (as `wait_acks`).
    pub async fn wait_partition_acks(
        &self,
        producer: &ProducerRun,
        partition: i32,
        base: &BTreeMap<i32, u64>,
        more: u64,
        within: Duration,
    ) {
        let what = format!("{more} more acks on partition {partition}");
        self.wait_acks_of(producer, &what, partition..partition + 1, base, more, within).await;
    }

    async fn wait_acks_of(
        &self,
        producer: &ProducerRun,
        what: &str,
        partitions: std::ops::Range<i32>,
        base: &BTreeMap<i32, u64>,
        more: u64,
        within: Duration,
    ) {
        let done = try_wait_for(within, async || {
            let now = producer.acks_per_partition();
            let count = |m: &BTreeMap<i32, u64>, p: i32| m.get(&p).copied().unwrap_or(0);
            partitions.clone().all(|p| count(&now, p) >= count(base, p) + more).then_some(())
        })
        .await;
        if done.is_none() {
            println!("{}", self.diagnosis(producer, base));
            panic!("timed out after {within:?} waiting for {what}");
        }
    }

    /// What a timed-out wait prints, so a failure on a CI machine (whose
    /// logs are gone afterwards) says where it stuck: acks per partition
    /// since `base` and the age of each partition's last ack, the
    /// controllers' view of the topics and brokers, the tail of every
    /// process log, and the producer's last librdkafka lines other than
    /// per-message ones.
    pub fn diagnosis(&self, producer: &ProducerRun, base: &BTreeMap<i32, u64>) -> String {
        use std::fmt::Write as _;
        let mut out = String::from("=== diagnosis of a timed-out wait ===\n");
        let now = unix_now();
        let mut last_ack: BTreeMap<i32, f64> = BTreeMap::new();
        let mut acks: BTreeMap<i32, u64> = BTreeMap::new();
        for e in producer.events() {
            if let ProducerEvent::Ack { partition, t, .. } = e {
                *acks.entry(partition).or_default() += 1;
                last_ack.insert(partition, t);
            }
        }
        for (p, n) in &acks {
            let since = n.saturating_sub(base.get(p).copied().unwrap_or(0));
            let age = last_ack.get(p).map_or(f64::NAN, |t| now - t);
            let _ = writeln!(out, "partition {p}: {n} acks ({since} since the wait began), last {age:.3} s ago");
        }
        let shown = |r: anyhow::Result<Value>| r.map_or_else(|e| format!("{e:#}"), |v| v.to_string());
        let _ = writeln!(out, "describe {}: {}", producer.topic, shown(self.cluster.describe(&producer.topic)));
        let _ = writeln!(out, "brokers: {}", shown(self.cluster.brokers()));
        let dir = self.cluster.dir.path();
        let mut logs: Vec<PathBuf> =
            std::fs::read_dir(dir).map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect()).unwrap_or_default();
        logs.sort();
        for path in logs.iter().filter(|p| p.extension().is_some_and(|e| e == "log")) {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let text = std::fs::read_to_string(path).unwrap_or_default();
            // Leave out librdkafka's per-message lines and raft-rs's own.
            let lines: Vec<&str> = text
                .lines()
                .filter(|l| !l.contains(" PRODUCE ") && !l.contains(" MSGSET ") && !l.contains(" slog: "))
                .collect();
            let keep = if name.contains(".debug.") { 60 } else { 25 };
            let _ = writeln!(out, "--- last {keep} lines of {name} ---");
            for line in &lines[lines.len().saturating_sub(keep)..] {
                let _ = writeln!(out, "{}", truncate(line, 300));
            }
        }
        out
    }

    /// `kcat -L -J` against `bootstrap`, parsed.
    pub fn kcat_metadata(&self, bootstrap: &str, topic: &str) -> anyhow::Result<Value> {
        let out = Command::new("kcat")
            .args(["-b", bootstrap, "-L", "-J", "-t", topic, "-m", "10"])
            .output()
            .context("running kcat -L")?;
        ensure!(out.status.success(), "kcat -L failed: {}", String::from_utf8_lossy(&out.stderr).trim());
        serde_json::from_slice(&out.stdout).context("kcat -L -J printed non-JSON")
    }

    /// Reads `partition` from the start with kcat (`-e`: up to the high
    /// watermark), again until every offset below `target` has been read
    /// (the high watermark of a new leader trails until its followers
    /// fetched). Returns (offset, key) pairs in read order.
    pub async fn consume(&self, topic: &str, partition: i32, target: i64, within: Duration) -> Vec<(i64, u64)> {
        let bootstrap = self.bootstrap();
        wait_for(&format!("kcat to read {topic}/{partition} up to offset {target}"), within, async || {
            let out = Command::new("kcat")
                .args([
                    "-b",
                    &bootstrap,
                    "-C",
                    "-t",
                    topic,
                    "-p",
                    &partition.to_string(),
                    "-o",
                    "beginning",
                    "-e",
                    "-q",
                ])
                .args(["-f", "%o %k\\n", "-X", "fetch.wait.max.ms=100"])
                .stdin(Stdio::null())
                .output()
                .ok()?;
            if !out.status.success() {
                return None;
            }
            let read: Vec<(i64, u64)> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| {
                    let (o, k) = l.split_once(' ')?;
                    Some((o.parse().ok()?, k.trim().parse().ok()?))
                })
                .collect();
            (read.last().map_or(0, |(o, _)| o + 1) >= target).then_some(read)
        })
        .await
    }
}

fn broker_index(id: i64) -> usize {
    usize::try_from(id - 1).expect("broker ids start at 1")
}

/// One line of the producer's output.
#[derive(Clone, Debug)]
pub enum ProducerEvent {
    Ack { seq: u64, partition: i32, offset: i64, t: f64 },
    Failed { seq: u64, partition: i32, code: String },
    Log { message: String, t: f64 },
    Done { sent: u64 },
}

/// The Python producer, running.
pub struct ProducerRun {
    child: Option<Child>,
    topic: String,
    out: PathBuf,
    stop: PathBuf,
}

impl ProducerRun {
    pub fn start(dir: &Path, bootstrap: &str, topic: &str, partitions: u32, acks: &str) -> anyhow::Result<ProducerRun> {
        let out = dir.join(format!("producer-{acks}.jsonl"));
        let stop = dir.join(format!("producer-{acks}.stop"));
        let log = std::fs::File::create(dir.join(format!("producer-{acks}.log")))?;
        let child = Command::new("python3")
            .arg(script("producer.py"))
            .args(["--bootstrap", bootstrap, "--topic", topic, "--partitions", &partitions.to_string(), "--acks", acks])
            .arg("--out")
            .arg(&out)
            .arg("--stop")
            .arg(&stop)
            .arg("--debug-log")
            .arg(dir.join(format!("producer-{acks}.debug.log")))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting producer.py")?;
        Ok(ProducerRun { child: Some(child), topic: topic.to_owned(), out, stop })
    }

    /// Every event written so far (a partial last line is skipped).
    pub fn events(&self) -> Vec<ProducerEvent> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        text.lines().filter_map(parse_event).collect()
    }

    /// Acks so far, per partition.
    pub fn acks_per_partition(&self) -> BTreeMap<i32, u64> {
        let mut out = BTreeMap::new();
        for e in self.events() {
            if let ProducerEvent::Ack { partition, .. } = e {
                *out.entry(partition).or_default() += 1;
            }
        }
        out
    }

    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Asks the producer to stop, waits for its flush; returns all events.
    pub async fn stop(mut self, within: Duration) -> anyhow::Result<Vec<ProducerEvent>> {
        std::fs::write(&self.stop, b"stop")?;
        let deadline = Instant::now() + within;
        let mut child = self.child.take().context("producer already stopped")?;
        loop {
            if let Some(status) = child.try_wait()? {
                ensure!(status.success(), "producer exited with {status}");
                break;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                bail!("producer did not finish within {within:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let events = self.events();
        ensure!(events.iter().any(|e| matches!(e, ProducerEvent::Done { .. })), "producer wrote no summary");
        Ok(events)
    }
}

impl Drop for ProducerRun {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn parse_event(line: &str) -> Option<ProducerEvent> {
    let v: Value = serde_json::from_str(line).ok()?;
    let partition = || v["p"].as_i64().and_then(|p| i32::try_from(p).ok());
    Some(match v["ev"].as_str()? {
        "ack" => ProducerEvent::Ack {
            seq: v["seq"].as_u64()?,
            partition: partition()?,
            offset: v["o"].as_i64()?,
            t: v["t"].as_f64()?,
        },
        "err" => ProducerEvent::Failed {
            seq: v["seq"].as_u64()?,
            partition: partition()?,
            code: v["code"].as_str()?.to_owned(),
        },
        "log" => ProducerEvent::Log { message: v["msg"].as_str()?.to_owned(), t: v["t"].as_f64()? },
        "done" => ProducerEvent::Done { sent: v["sent"].as_u64()? },
        _ => return None,
    })
}

/// The verdict of one run: what was acknowledged and what was read back.
#[derive(Clone, Debug, Default)]
pub struct Verdict {
    pub sent: u64,
    pub acked: u64,
    pub failed: u64,
    /// Records read back (duplicates included).
    pub read: u64,
    /// Acknowledged messages not read back at their acknowledged offset.
    pub lost: Vec<u64>,
    /// Messages read more than once (a retry after an unanswered produce).
    pub duplicates: u64,
    /// Acknowledged messages read back out of ack order within their partition.
    pub out_of_order: Vec<u64>,
    /// The producer's log lines about NOT_LEADER_OR_FOLLOWER, with their
    /// unix time (a refusal before the first lease grant counts too).
    pub not_leader_lines: Vec<(f64, String)>,
}

/// Acked offsets per partition, from the producer's events, for the consumer's targets.
pub fn ack_targets(events: &[ProducerEvent]) -> BTreeMap<i32, i64> {
    let mut targets = BTreeMap::new();
    for e in events {
        if let ProducerEvent::Ack { partition, offset, .. } = e {
            let t = targets.entry(*partition).or_insert(0i64);
            *t = (*t).max(offset + 1);
        }
    }
    targets
}

/// Checks every acknowledged message against what was read back.
pub fn verdict(events: &[ProducerEvent], read: &BTreeMap<i32, Vec<(i64, u64)>>) -> Verdict {
    let mut v = Verdict::default();
    let mut at: HashMap<(i32, i64), u64> = HashMap::new();
    let mut seen: HashMap<u64, u32> = HashMap::new();
    for (&p, records) in read {
        for &(offset, seq) in records {
            at.insert((p, offset), seq);
            *seen.entry(seq).or_default() += 1;
            v.read += 1;
        }
    }
    v.duplicates = seen.values().filter(|n| **n > 1).map(|n| u64::from(*n - 1)).sum();
    let mut last_offset: HashMap<i32, i64> = HashMap::new();
    for e in events {
        match e {
            ProducerEvent::Ack { seq, partition, offset, .. } => {
                v.acked += 1;
                if at.get(&(*partition, *offset)) != Some(seq) {
                    v.lost.push(*seq);
                    continue;
                }
                let last = last_offset.entry(*partition).or_insert(-1);
                if *offset <= *last {
                    v.out_of_order.push(*seq);
                }
                *last = (*last).max(*offset);
            }
            ProducerEvent::Failed { .. } => v.failed += 1,
            ProducerEvent::Log { message, t } => {
                let m = message.to_ascii_lowercase();
                if m.contains("not_leader") || m.contains("not leader") {
                    v.not_leader_lines.push((*t, message.clone()));
                }
            }
            ProducerEvent::Done { sent } => v.sent = *sent,
        }
    }
    v
}

/// Per partition, the longest gap between two consecutive acks within
/// `[from, to]` (unix seconds): how long the producer was blocked by a fault.
pub fn longest_ack_gap(events: &[ProducerEvent], from: f64, to: f64) -> BTreeMap<i32, f64> {
    let mut last: HashMap<i32, f64> = HashMap::new();
    let mut gaps: BTreeMap<i32, f64> = BTreeMap::new();
    for e in events {
        if let ProducerEvent::Ack { partition, t, .. } = e {
            if *t >= from && *t <= to {
                let prev = last.get(partition).copied().unwrap_or(from);
                let g = gaps.entry(*partition).or_insert(0.0);
                *g = g.max(t - prev);
            }
            last.insert(*partition, *t);
        }
    }
    gaps
}
