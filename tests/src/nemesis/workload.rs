//! The runner's workloads: topic creates and deletes through the public API
//! (`metadata_ack` on every acknowledged change), and a `WatchLeadership`
//! reader (`leader_observed` on every leadership change it sees).
//!
//! **Ambiguous writes.** A create or delete that times out may still commit.
//! Nothing is recorded for it until it is resolved: a later linearizable
//! describe that finds the topic records the create, and an ambiguous delete
//! is retried until it answers Ok (recorded) or TOPIC_NOT_FOUND (the earlier
//! attempt committed: recorded at the version of a linearizable read, which
//! is at or after the delete). A delete left unresolved would make the
//! checker expect the topic, so [`MetadataWorkload::resolve`] runs again
//! after the heal. Topic names are never reused (history workload rule).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use baton_proto::v1::controller_client::ControllerClient;
use baton_proto::v1::{LeadershipUpdate, WatchLeadershipRequest};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tonic::Code;

use super::client::{Api, WriteOutcome};
use super::clock::monotonic_ns;
use super::history::{Event, MetadataOp, Recorder};

#[derive(Clone, Copy, Debug, Default)]
pub struct MetadataStats {
    pub acked: u64,
    pub ambiguous: u64,
    pub refused: u64,
}

pub struct MetadataWorkload {
    api: Api,
    rec: Arc<Recorder>,
    rng: StdRng,
    prefix: String,
    next: u32,
    /// Topics whose create is recorded and no delete was sent: (name, partitions).
    live: Vec<(String, i32)>,
    uncertain_creates: Vec<(String, i32)>,
    uncertain_deletes: Vec<String>,
    pub stats: MetadataStats,
}

impl MetadataWorkload {
    pub fn new(api: Api, rec: Arc<Recorder>, seed: u64) -> MetadataWorkload {
        MetadataWorkload {
            api,
            rec,
            rng: StdRng::seed_from_u64(seed ^ 0x6d65_7461),
            prefix: format!("s{seed}-"),
            next: 0,
            live: Vec::new(),
            uncertain_creates: Vec::new(),
            uncertain_deletes: Vec::new(),
            stats: MetadataStats::default(),
        }
    }

    fn ack(&mut self, op: MetadataOp, topic: &str, version: u64, partitions: Option<i32>) {
        self.stats.acked += 1;
        let event = Event::MetadataAck {
            t_ns: monotonic_ns(),
            op,
            topic: topic.into(),
            metadata_version: version,
            partitions,
            unclean_leader_election: false,
        };
        let _ = self.rec.record(&event);
    }

    /// Creates a topic with a fresh name.
    pub async fn create(&mut self) {
        self.next += 1;
        let name = format!("{}{}", self.prefix, self.next);
        let partitions = self.rng.random_range(1..=4);
        let rf = self.rng.random_range(2..=3);
        match self.api.create_topic(&name, partitions, rf).await {
            WriteOutcome::Done(r) => {
                self.ack(MetadataOp::CreateTopic, &name, r.metadata_version, Some(partitions));
                self.live.push((name, partitions));
            }
            WriteOutcome::Refused(_) => self.stats.refused += 1,
            WriteOutcome::Ambiguous(_) => {
                self.stats.ambiguous += 1;
                self.uncertain_creates.push((name, partitions));
            }
        }
    }

    /// Deletes one live topic (chosen by the seed).
    pub async fn delete(&mut self) {
        if self.live.is_empty() {
            return;
        }
        let (name, _) = self.live.remove(self.rng.random_range(0..self.live.len()));
        match self.api.delete_topic(&name).await {
            WriteOutcome::Done(version) => self.ack(MetadataOp::DeleteTopic, &name, version, None),
            WriteOutcome::Refused(_) => self.stats.refused += 1,
            WriteOutcome::Ambiguous(_) => {
                self.stats.ambiguous += 1;
                self.uncertain_deletes.push(name);
            }
        }
    }

    /// One operation: mostly creates, a delete now and then.
    pub async fn step(&mut self) {
        self.resolve(Duration::from_secs(1)).await;
        if self.live.len() >= 4 && self.rng.random_bool(0.5) {
            self.delete().await;
        } else {
            self.create().await;
        }
    }

    /// Settles ambiguous writes where the cluster answers within `within`.
    /// Returns true when nothing is left unresolved.
    pub async fn resolve(&mut self, within: Duration) -> bool {
        for (name, partitions) in std::mem::take(&mut self.uncertain_creates) {
            match self.api.describe(&name, within).await {
                Ok(d) => {
                    let count = d.topic.as_ref().map_or(0, |t| t.partitions.len() as i32);
                    self.ack(MetadataOp::CreateTopic, &name, d.metadata_version, Some(count.max(partitions)));
                    self.live.push((name, partitions));
                }
                Err(s) if s.code() == Code::NotFound => {} // never committed (so far): nothing acknowledged
                Err(_) => self.uncertain_creates.push((name, partitions)),
            }
        }
        for name in std::mem::take(&mut self.uncertain_deletes) {
            match self.api.delete_topic(&name).await {
                WriteOutcome::Done(version) => self.ack(MetadataOp::DeleteTopic, &name, version, None),
                WriteOutcome::Refused(s) if s.code() == Code::NotFound => match self.api.list_topics(within).await {
                    Ok(list) => self.ack(MetadataOp::DeleteTopic, &name, list.metadata_version, None),
                    Err(_) => self.uncertain_deletes.push(name),
                },
                _ => self.uncertain_deletes.push(name),
            }
        }
        self.uncertain_creates.is_empty() && self.uncertain_deletes.is_empty()
    }

    pub fn unresolved(&self) -> usize {
        self.uncertain_creates.len() + self.uncertain_deletes.len()
    }
}

/// The watcher's view of one partition.
#[derive(Clone, Debug, PartialEq)]
struct Seen {
    leader: i32,
    epoch: i32,
    isr: Vec<i32>,
}

/// Follows `WatchLeadership` (resuming from its last version across
/// controllers) until `stop`; records every leadership change. Returns the
/// number of `leader_observed` events.
pub async fn watch_leadership(api: Api, rec: Arc<Recorder>, stop: Arc<AtomicBool>) -> u64 {
    let mut view: HashMap<(String, i32), Seen> = HashMap::new();
    let mut version = 0u64;
    let mut observed = 0u64;
    let mut attempt = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let addr = api.addrs()[attempt % api.addrs().len()].clone();
        attempt += 1;
        let Ok(mut client) = ControllerClient::connect(format!("http://{addr}")).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let Ok(response) = client.watch_leadership(WatchLeadershipRequest { from_version: version }).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let mut stream = response.into_inner();
        let mut pending: Vec<LeadershipUpdate> = Vec::new();
        loop {
            // Wake up now and then to notice `stop`, and to leave a silent stream.
            let next = tokio::time::timeout(Duration::from_millis(500), stream.message()).await;
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let update = match next {
                Err(_) => continue,
                Ok(Ok(Some(u))) => u,
                Ok(_) => break,
            };
            let partial = update.partial;
            pending.push(update);
            if partial {
                continue;
            }
            let parts = std::mem::take(&mut pending);
            let v = parts.last().map_or(0, |u| u.metadata_version);
            if v < version {
                continue; // an older view (a lagging controller): never go back
            }
            version = v;
            observed += apply(&mut view, parts, &rec);
        }
    }
    observed
}

/// Applies one (possibly multi-message) update to the watcher's view and
/// records the leadership changes. After a full update the previous ISR is
/// not known to be the one the election saw (versions may have been
/// skipped), so `isr_before` is left out.
fn apply(view: &mut HashMap<(String, i32), Seen>, parts: Vec<LeadershipUpdate>, rec: &Recorder) -> u64 {
    let full = parts.first().is_some_and(|u| u.full);
    let t_ns = monotonic_ns();
    let mut next = if full { HashMap::new() } else { std::mem::take(view) };
    let mut observed = 0;
    for u in &parts {
        for topic in &u.deleted_topics {
            next.retain(|(t, _), _| t != topic);
        }
    }
    for p in parts.into_iter().flat_map(|u| u.partitions) {
        let key = (p.topic.clone(), p.partition);
        let before = if full { view.get(&key) } else { next.get(&key) }.cloned();
        let seen = Seen { leader: p.leader, epoch: p.leader_epoch, isr: p.isr.clone() };
        if before.as_ref().is_none_or(|b| b.leader != seen.leader || b.epoch != seen.epoch) {
            let isr_before = if full { None } else { before.map(|b| b.isr) };
            let event = Event::LeaderObserved {
                t_ns,
                topic: p.topic,
                partition: p.partition,
                leader: seen.leader,
                leader_epoch: seen.epoch,
                isr_before,
                watcher: 0,
            };
            let _ = rec.record(&event);
            observed += 1;
        }
        next.insert(key, seen);
    }
    *view = next;
    observed
}
