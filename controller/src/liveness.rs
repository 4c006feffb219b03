//! Broker liveness and ISR tracking: soft state kept on the ACTIVE controller
//! only (as in KRaft), rebuilt from scratch whenever this node becomes leader.
//!
//! - A broker is fenced when it has not been heard from for `session_timeout`,
//!   counting from the later of its last accepted heartbeat and the instant
//!   this controller became ready to lead: a new leader does not know what its
//!   predecessor granted, so it waits one full session timeout first.
//! - With `fast_failover_on_disconnect`, a broker whose current session stream
//!   closes is fenced at once (docs/SAFETY.md says when that is safe).
//! - ISR: every heartbeat carries the log end offsets (LEO) of the broker's
//!   replicas. A follower is caught up when its LEO reaches the leader's; one
//!   not caught up for `replica_lag_max` leaves the ISR, one caught up again
//!   rejoins. Changes are proposed in one batched AlterIsr entry whose
//!   partition epochs act as compare-and-swap tokens.
//! - ISR growth depends on the LEADER's data plane. One that declares
//!   `isr_expansion_by_request` in its heartbeats (the reference broker)
//!   computes its high watermark over the ISR plus the followers it asked
//!   for, so the controller adds a follower to an ISR it leads only on its
//!   request, at the partition epoch the request names (KIP-497). For a
//!   leader that never declared it in this term, the old rule: a follower
//!   rejoins once its reported LEO reached the leader's previous report
//!   (such a data plane keeps the acks=all window docs/SAFETY.md describes).
//!   A leader not yet heard from in this term gets neither.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use baton_state_machine::{BrokerId, BrokerState, IsrChange, NO_LEADER, Partition, State};
use parking_lot::Mutex;

use crate::config::LivenessConfig;
use crate::metadata::Handoff;
use crate::raft::QuorumContact;

/// Bound on ISR changes proposed in one entry.
const MAX_ISR_CHANGES_PER_ENTRY: usize = 100_000;

struct BrokerLive {
    epoch: u64,
    last_heartbeat: Instant,
    /// Highest metadata version the broker said it applied.
    acked_version: u64,
    /// The session currently held; older sessions closing mean nothing.
    session: Option<u64>,
    /// A FenceBroker for `epoch` is in flight: grant no more leases.
    fencing: bool,
    /// When this controller received the last heartbeat it granted a lease
    /// for; the broker's lease ends before this + lease * (1 + drift).
    last_grant: Option<Instant>,
    /// When this controller first heard from this registration.
    since: Instant,
    /// How ISRs this broker leads grow; Unknown until a heartbeat says.
    isr_growth: IsrGrowth,
}

/// How the ISR of a partition grows, by its leader's data plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum IsrGrowth {
    /// No heartbeat from this registration in this term yet: grow nothing.
    Unknown,
    /// From reported log end offsets (the leader does not use the handshake).
    FromReports,
    /// Only on the leader's request (sticky for the registration and term).
    ByRequest,
}

/// A leader's pending request to add followers, checked when it arrived
/// and again when proposed.
struct ExpansionRequest {
    leader: BrokerId,
    leader_epoch: i32,
    partition_epoch: i32,
    followers: BTreeSet<BrokerId>,
}

/// One ISR-expansion request as a heartbeat carries it.
pub struct IsrExpansion {
    pub topic: Arc<str>,
    pub partition: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub followers: Vec<BrokerId>,
}

impl From<&baton_proto::v1::IsrExpansionRequest> for IsrExpansion {
    fn from(r: &baton_proto::v1::IsrExpansionRequest) -> IsrExpansion {
        IsrExpansion {
            topic: Arc::from(r.topic.as_str()),
            partition: r.partition,
            leader_epoch: r.leader_epoch,
            partition_epoch: r.partition_epoch,
            followers: r.followers.clone(),
        }
    }
}

impl BrokerLive {
    /// A broker epoch first seen at `heard` (nothing acknowledged or granted).
    fn fresh(epoch: u64, heard: Instant) -> BrokerLive {
        BrokerLive {
            epoch,
            last_heartbeat: heard,
            acked_version: 0,
            session: None,
            fencing: false,
            last_grant: None,
            since: heard,
            isr_growth: IsrGrowth::Unknown,
        }
    }
}

impl ReplicaProgress {
    /// What a follower must have reached to count as caught up with this
    /// (leader) replica: where the leader was at its previous report. Each
    /// broker reports at its own heartbeat, so under a steady produce load
    /// a follower sampled just before its leader always looks a little
    /// behind the leader's latest report; against the previous one it is
    /// caught up if it lags by less than a heartbeat (Kafka's rule compares
    /// with the high watermark, which also trails the leader's log end).
    fn leader_mark(&self) -> i64 {
        self.leo.min(self.prev_leo)
    }
}

#[derive(Default)]
struct ReplicaProgress {
    /// The latest reported log end offset (not a running maximum: a replica
    /// that truncated reports less).
    leo: i64,
    /// The report before `leo` (equal to it after the first report).
    prev_leo: i64,
    /// Whether `leo` came from a report in this term.
    reported: bool,
    caught_up_at: Option<Instant>,
}

/// Reported progress of one partition, for one incarnation of its topic.
struct PartitionProgress {
    topic_id: u64,
    replicas: HashMap<BrokerId, ReplicaProgress>,
}

#[derive(Default)]
struct Inner {
    /// When this node became a ready leader; None while it is not one.
    leader_since: Option<Instant>,
    /// The raft term of that leadership.
    term: u64,
    /// The metadata version at that instant: a broker epoch above it is a
    /// registration this leader committed, whose clock starts when first seen.
    leader_version: u64,
    brokers: HashMap<BrokerId, BrokerLive>,
    next_session: u64,
    /// Reported LEOs: (topic, partition) → broker → progress.
    progress: HashMap<(Arc<str>, i32), PartitionProgress>,
    /// Partitions reported on since the last ISR scan: only a report moves
    /// an offset, so only these can have started lagging.
    reported: HashSet<(Arc<str>, i32)>,
    /// Partitions an in-sync follower was behind at in the last scan: their
    /// lag windows run, so every scan looks at them again.
    lagging: HashSet<(Arc<str>, i32)>,
    /// The rest of `progress`, looked at [`SWEEP_PER_SCAN`] a scan (a
    /// leadership change can leave a follower behind with no new report;
    /// deleted topics' offsets are dropped here). Refilled when empty.
    sweep: Vec<(Arc<str>, i32)>,
    /// Brokers that may have a replica ready to rejoin an ISR.
    rejoin_candidates: HashSet<BrokerId>,
    /// Leaders' ISR-expansion requests: (topic, partition) → request.
    expansions: HashMap<(Arc<str>, i32), ExpansionRequest>,
}

/// Partitions with progress that an ISR scan looks at besides the ones
/// reported on or lagging (see `Inner::sweep`): with a million partitions
/// every one is looked at about once a minute at the default scan period.
const SWEEP_PER_SCAN: usize = 4096;

pub struct Liveness {
    config: LivenessConfig,
    inner: Mutex<Inner>,
    /// The driver's proof of recent quorum contact, and how old it may be
    /// for a grant. None (unit tests): no such check.
    quorum: Option<(Arc<QuorumContact>, Duration)>,
}

impl Liveness {
    pub fn new(config: LivenessConfig) -> Liveness {
        Liveness { config, inner: Mutex::new(Inner::default()), quorum: None }
    }

    /// Grants leases only while the quorum confirmed this leader within
    /// `max_age`: a leader whose driver stalls or that is cut off from its
    /// followers stops granting before any other controller can lead.
    pub fn with_quorum_contact(mut self, contact: Arc<QuorumContact>, max_age: Duration) -> Liveness {
        self.quorum = Some((contact, max_age));
        self
    }

    fn quorum_confirmed(&self) -> bool {
        self.quorum.as_ref().is_none_or(|(contact, max_age)| contact.age().is_some_and(|age| age <= *max_age))
    }

    pub fn config(&self) -> &LivenessConfig {
        &self.config
    }

    pub fn session_timeout(&self) -> Duration {
        Duration::from_millis(self.config.session_timeout_ms)
    }

    /// Called when this node becomes (or stops being) a ready leader, or its
    /// term changes. Either way, what an earlier term learned is forgotten:
    /// keyed on the term too, so a leader → follower → leader flip that the
    /// status watch coalesced still starts afresh.
    pub fn set_leader(&self, ready: bool, term: u64, now: Instant, version: u64) {
        let mut inner = self.inner.lock();
        let was = inner.leader_since.is_some();
        if ready == was && (!ready || inner.term == term) {
            return;
        }
        *inner = Inner {
            leader_since: ready.then_some(now),
            term,
            leader_version: version,
            next_session: inner.next_session,
            ..Inner::default()
        };
    }

    /// Partitions with recorded progress (tests).
    #[cfg(test)]
    fn tracked_partitions(&self) -> usize {
        self.inner.lock().progress.len()
    }

    pub fn is_leader(&self) -> bool {
        self.inner.lock().leader_since.is_some()
    }

    /// Registers a new session for `broker` at `epoch`; returns its id.
    pub fn open_session(&self, broker: BrokerId, epoch: u64, now: Instant) -> u64 {
        let mut inner = self.inner.lock();
        inner.next_session += 1;
        let session = inner.next_session;
        let live = inner.brokers.entry(broker).or_insert_with(|| BrokerLive::fresh(epoch, now));
        if live.epoch != epoch {
            *live = BrokerLive::fresh(epoch, now);
        }
        live.session = Some(session);
        inner.rejoin_candidates.insert(broker);
        session
    }

    /// Records a heartbeat. Returns whether a lease may be granted for it:
    /// not while a fence is in flight, and not before the broker reports
    /// `grant_floor()` (it has then seen every leadership taken from it, so a
    /// lease can never extend a leadership that moved on).
    ///
    /// The grant is recorded BEFORE the floor is read: a handoff recorded
    /// before the read raises the floor seen here, and a handoff check made
    /// after the record sees this grant. Either way one side waits.
    pub fn heartbeat(
        &self,
        broker: BrokerId,
        epoch: u64,
        metadata_version: u64,
        grant_floor: impl Fn() -> u64,
        now: Instant,
    ) -> bool {
        let previous_grant = {
            let mut inner = self.inner.lock();
            if inner.leader_since.is_none() {
                return false;
            }
            if !self.quorum_confirmed() {
                // Still record that we heard from it; grant nothing.
                if let Some(live) = inner.brokers.get_mut(&broker)
                    && live.epoch == epoch
                {
                    live.last_heartbeat = now;
                    live.acked_version = live.acked_version.max(metadata_version);
                }
                return false;
            }
            match inner.brokers.get_mut(&broker) {
                Some(live) if live.epoch == epoch && !live.fencing => {
                    live.last_heartbeat = now;
                    live.acked_version = live.acked_version.max(metadata_version);
                    live.last_grant.replace(now)
                }
                _ => return false,
            }
        };
        if metadata_version >= grant_floor() {
            return true;
        }
        // Not granted after all: undo the provisional record, so a broker
        // stuck behind its floor does not hold handoffs up for ever.
        if let Some(live) = self.inner.lock().brokers.get_mut(&broker)
            && live.epoch == epoch
            && live.last_grant == Some(now)
        {
            live.last_grant = previous_grant;
        }
        false
    }

    /// Whether `handoff.from` can no longer act on the leadership taken from
    /// it: it is fenced or gone, it acknowledged the version, or every lease
    /// it may hold has run out (ours, counted from our last grant; a
    /// predecessor's, bounded by one session timeout from our leadership).
    pub fn handoff_done(&self, state: &State, handoff: &Handoff, now: Instant) -> bool {
        if state.broker(handoff.from).is_none_or(|b| b.state == BrokerState::Fenced) {
            return true;
        }
        let inner = self.inner.lock();
        let Some(since) = inner.leader_since else { return false };
        let live = inner.brokers.get(&handoff.from);
        if live.is_some_and(|l| l.acked_version >= handoff.version) {
            return true;
        }
        let mut bound = since + self.session_timeout();
        if let Some(granted) = live.and_then(|l| l.last_grant) {
            bound = bound.max(granted + self.lease_bound());
        }
        now >= bound
    }

    /// Whether every lease a predecessor controller may have granted has run
    /// out: one session timeout after this node became a ready leader.
    pub fn predecessor_leases_expired(&self, now: Instant) -> bool {
        self.inner.lock().leader_since.is_some_and(|since| now >= since + self.session_timeout())
    }

    /// The longest a lease we granted can last on the broker's clock, as
    /// measured on ours: lease * (1 + drift) + margin.
    pub fn lease_bound(&self) -> Duration {
        let c = &self.config;
        Duration::from_millis((c.lease_ms as f64 * (1.0 + c.clock_drift)).ceil() as u64 + c.lease_margin_ms)
    }

    /// A session stream ended. Returns true when the broker should be fenced
    /// at once (fast failover): it was the broker's current session, the
    /// broker's epoch is unchanged and the fast path is on.
    pub fn session_closed(&self, broker: BrokerId, epoch: u64, session: u64) -> bool {
        let mut inner = self.inner.lock();
        let Some(live) = inner.brokers.get_mut(&broker) else { return false };
        if live.epoch != epoch || live.session != Some(session) {
            return false;
        }
        live.session = None;
        if self.config.fast_failover_on_disconnect && !live.fencing {
            live.fencing = true;
            return true;
        }
        false
    }

    /// Marks a broker as being fenced (e.g. on a clean-shutdown heartbeat).
    pub fn begin_fence(&self, broker: BrokerId, epoch: u64) -> bool {
        let mut inner = self.inner.lock();
        match inner.brokers.get_mut(&broker) {
            Some(live) if live.epoch == epoch && !live.fencing => {
                live.fencing = true;
                true
            }
            _ => false,
        }
    }

    /// A fence proposal failed (e.g. leadership lost): allow a retry.
    pub fn fence_failed(&self, broker: BrokerId, epoch: u64) {
        if let Some(live) = self.inner.lock().brokers.get_mut(&broker)
            && live.epoch == epoch
        {
            live.fencing = false;
        }
    }

    /// Brokers due for fencing by session timeout; marks them as fencing.
    pub fn due_for_fencing(&self, state: &State, now: Instant) -> Vec<(BrokerId, u64)> {
        let mut inner = self.inner.lock();
        let Some(since) = inner.leader_since else { return Vec::new() };
        let leader_version = inner.leader_version;
        let timeout = self.session_timeout();
        let mut due = Vec::new();
        for broker in state.brokers().filter(|b| b.state != BrokerState::Fenced) {
            // Never heard from in this term: the clock starts at leadership,
            // or at first sight for a registration this leader committed
            // (the broker epoch is its log index).
            let first_heard = if broker.epoch > leader_version { now } else { since };
            let live = inner.brokers.entry(broker.id).or_insert_with(|| BrokerLive::fresh(broker.epoch, first_heard));
            if live.epoch != broker.epoch {
                // Registered again (through this leader) since we last saw it.
                *live = BrokerLive::fresh(broker.epoch, now);
            }
            let heard = live.last_heartbeat.max(since);
            if !live.fencing && now.saturating_duration_since(heard) > timeout {
                live.fencing = true;
                due.push((broker.id, broker.epoch));
            }
        }
        due
    }

    /// Milliseconds since the broker's last accepted heartbeat (None when not
    /// leader or never heard from in this term).
    /// Brokers that may now have a replica to bring into an ISR (e.g. the
    /// new replicas of a reassignment).
    pub fn consider_for_isr(&self, brokers: impl IntoIterator<Item = BrokerId>) {
        self.inner.lock().rejoin_candidates.extend(brokers);
    }

    /// Brokers that may take leadership back in a rebalance: a session is
    /// open, no fence is in flight, heard from within a lease, and heard
    /// from in this registration for at least `min_uptime`.
    pub fn settled_brokers(&self, now: Instant, min_uptime: Duration) -> HashSet<BrokerId> {
        let inner = self.inner.lock();
        if inner.leader_since.is_none() {
            return HashSet::new();
        }
        let lease = Duration::from_millis(self.config.lease_ms);
        inner
            .brokers
            .iter()
            .filter(|(_, l)| {
                l.session.is_some()
                    && !l.fencing
                    && now.saturating_duration_since(l.last_heartbeat) < lease
                    && now.saturating_duration_since(l.since) >= min_uptime
            })
            .map(|(id, _)| *id)
            .collect()
    }

    pub fn heartbeat_age(&self, broker: BrokerId, now: Instant) -> Option<Duration> {
        let inner = self.inner.lock();
        inner.leader_since?;
        inner.brokers.get(&broker).map(|b| now.saturating_duration_since(b.last_heartbeat))
    }

    /// Records the LEOs a broker reported for its replicas.
    pub fn record_progress(
        &self,
        state: &State,
        broker: BrokerId,
        reports: impl Iterator<Item = (Arc<str>, i32, i64)>,
    ) {
        let mut inner = self.inner.lock();
        if inner.leader_since.is_none() {
            return;
        }
        let mut candidate = false;
        for (topic, partition, leo) in reports {
            let Some(topic_id) = state.topic(&topic).map(|t| t.id) else { continue };
            let Ok(record) = state.partition(&topic, partition) else { continue };
            if !record.replicas.contains(&broker) {
                continue;
            }
            let key = (topic, partition);
            inner.reported.insert(key.clone());
            let entry =
                inner.progress.entry(key).or_insert_with(|| PartitionProgress { topic_id, replicas: HashMap::new() });
            if entry.topic_id != topic_id {
                // The topic was deleted and re-created: old offsets mean nothing.
                *entry = PartitionProgress { topic_id, replicas: HashMap::new() };
            }
            let p = entry.replicas.entry(broker).or_default();
            p.prev_leo = if p.reported { p.leo } else { leo };
            p.leo = leo;
            p.reported = true;
            if !record.isr.contains(&broker) {
                candidate = true;
            }
        }
        if candidate {
            inner.rejoin_candidates.insert(broker);
        }
    }

    /// Records what a heartbeat of `broker` at `epoch` says about ISR growth:
    /// whether its data plane grows the ISRs it leads by request (sticky for
    /// the registration in this term: once declared, reports alone never
    /// grow them again), and its requests. A request is kept only when its
    /// sender leads the partition at `leader_epoch` and `partition_epoch` is
    /// the partition's current one; a stale one is ignored (the agent drops
    /// it once its view moves past, and the data plane asks again).
    pub fn record_isr_requests(
        &self,
        state: &State,
        broker: BrokerId,
        epoch: u64,
        by_request: bool,
        requests: impl Iterator<Item = IsrExpansion>,
    ) {
        let mut inner = self.inner.lock();
        if inner.leader_since.is_none() {
            return;
        }
        let Some(live) = inner.brokers.get_mut(&broker).filter(|l| l.epoch == epoch) else { return };
        let mut requests = requests.peekable();
        if by_request || requests.peek().is_some() {
            live.isr_growth = IsrGrowth::ByRequest;
        } else if live.isr_growth == IsrGrowth::Unknown {
            live.isr_growth = IsrGrowth::FromReports;
        }
        for r in requests {
            let Ok(record) = state.partition(&r.topic, r.partition) else { continue };
            if !names_current(record, broker, r.leader_epoch, r.partition_epoch) {
                continue;
            }
            let followers: BTreeSet<BrokerId> = r
                .followers
                .iter()
                .copied()
                .filter(|f| *f != broker && record.replicas.contains(f) && !record.isr.contains(f))
                .collect();
            if followers.is_empty() {
                continue;
            }
            let request = ExpansionRequest {
                leader: broker,
                leader_epoch: r.leader_epoch,
                partition_epoch: r.partition_epoch,
                followers,
            };
            inner.expansions.insert((r.topic, r.partition), request);
        }
    }

    /// ISR changes due now: followers lagging past `replica_lag_max` leave,
    /// requested followers join, and caught-up replicas of rejoin candidates
    /// come back where their leader grows ISRs from reports.
    pub fn isr_changes(&self, state: &State, now: Instant) -> Vec<IsrChange> {
        let mut inner = self.inner.lock();
        if inner.leader_since.is_none() {
            return Vec::new();
        }
        let lag_max = Duration::from_millis(self.config.replica_lag_max_ms);
        let mut changes: HashMap<(Arc<str>, i32), (i32, BTreeSet<BrokerId>)> = HashMap::new();

        // Shrink: only partitions with reported progress can show lag, and
        // of those only the ones reported on since the last scan, the ones
        // already lagging, and a bounded slice of the rest: the cost of a
        // scan (and how long it holds this lock and the metadata's) follows
        // what changed, not how many partitions there are.
        let Inner { progress, reported, lagging, sweep, .. } = &mut *inner;
        if sweep.is_empty() {
            sweep.extend(progress.keys().cloned());
        }
        let from_sweep = sweep.len().min(SWEEP_PER_SCAN);
        let mut keys: Vec<(Arc<str>, i32)> =
            reported.drain().chain(sweep.drain(sweep.len() - from_sweep..)).chain(lagging.iter().cloned()).collect();
        keys.sort_unstable();
        keys.dedup();
        let was_lagging = std::mem::take(lagging);
        for key in keys {
            let Some(entry) = progress.get_mut(&key) else { continue };
            let record = state
                .topic(&key.0)
                .filter(|t| t.id == entry.topic_id)
                .and_then(|t| usize::try_from(key.1).ok().and_then(|i| t.partitions.get(i)));
            let Some(record) = record else {
                // The topic was deleted (or re-created): its offsets mean nothing.
                progress.remove(&key);
                continue;
            };
            if record.leader == NO_LEADER {
                continue;
            }
            let replicas = &mut entry.replicas;
            let leader_leo = replicas.get(&record.leader).map_or(0, ReplicaProgress::leader_mark);
            let mut behind = false;
            for &follower in record.isr.iter().filter(|b| **b != record.leader) {
                let p = replicas.entry(follower).or_default();
                if p.leo >= leader_leo {
                    p.caught_up_at = Some(now);
                    continue;
                }
                behind = true;
                // First seen behind: the lag window starts now, not earlier
                // (a partition not lagging at the last scan was caught up
                // until a report arrived since).
                if !was_lagging.contains(&key) {
                    p.caught_up_at = Some(now);
                }
                let caught_up_at = *p.caught_up_at.get_or_insert(now);
                if now.saturating_duration_since(caught_up_at) > lag_max {
                    let entry = changes
                        .entry(key.clone())
                        .or_insert_with(|| (record.partition_epoch, record.isr.iter().copied().collect()));
                    entry.1.remove(&follower);
                }
            }
            if behind {
                lagging.insert(key);
            }
        }

        // Expand on request: only while the requester still leads at the
        // request's epochs, with the request's partition epoch as the token.
        // A request none of whose followers may join (fenced, or gone) is
        // answered with the ISR unchanged: the leader counts those followers
        // in its high watermark until a newer partition epoch reaches it, so
        // silence would stall its acks=all writes for good.
        let mut answers: HashSet<(Arc<str>, i32)> = HashSet::new();
        let expansions: Vec<((Arc<str>, i32), ExpansionRequest)> = inner.expansions.drain().collect();
        for (key, request) in expansions {
            let Ok(record) = state.partition(&key.0, key.1) else { continue };
            if !names_current(record, request.leader, request.leader_epoch, request.partition_epoch) {
                continue;
            }
            let joining: Vec<BrokerId> = request
                .followers
                .iter()
                .copied()
                .filter(|f| {
                    !record.isr.contains(f)
                        && state
                            .broker(*f)
                            .is_some_and(|b| matches!(b.state, BrokerState::Alive | BrokerState::Drained))
                })
                .collect();
            if joining.is_empty() {
                answers.insert(key.clone());
            }
            let entry =
                changes.entry(key).or_insert_with(|| (record.partition_epoch, record.isr.iter().copied().collect()));
            entry.1.extend(joining);
        }

        // Expand from reports: replicas of candidate brokers that caught up
        // with their leader, judged on offsets reported in this term, where
        // the leader is known (in this term) not to grow ISRs by request. A partition with
        // no report at all (a data plane that reports no progress) rejoins
        // once this leader has led for a lease, by which time every agent
        // that reports has re-sent its offsets to it.
        let quiet_for_long_enough = inner
            .leader_since
            .is_some_and(|since| now.saturating_duration_since(since) >= Duration::from_millis(self.config.lease_ms));
        let candidates: Vec<BrokerId> = inner.rejoin_candidates.drain().collect();
        for broker in candidates {
            // Drained brokers replicate and rejoin too; they only never lead.
            if state.broker(broker).is_none_or(|b| !matches!(b.state, BrokerState::Alive | BrokerState::Drained)) {
                continue;
            }
            let mut still_behind = false;
            for (topic, partition) in state.partitions_of_broker(broker) {
                let Ok(record) = state.partition(topic, partition) else { continue };
                if record.isr.contains(&broker) || record.leader == NO_LEADER {
                    continue;
                }
                let leader_epoch_now = state.broker(record.leader).map(|b| b.epoch);
                let growth = inner
                    .brokers
                    .get(&record.leader)
                    .filter(|l| Some(l.epoch) == leader_epoch_now)
                    .map_or(IsrGrowth::Unknown, |l| l.isr_growth);
                match growth {
                    IsrGrowth::FromReports => {}
                    // Its leader asks when the replica is caught up.
                    IsrGrowth::ByRequest => continue,
                    IsrGrowth::Unknown => {
                        still_behind = true;
                        continue;
                    }
                }
                let key: (Arc<str>, i32) = (Arc::from(topic), partition);
                let replicas = inner.progress.get(&key).map(|p| &p.replicas);
                let known = |b: BrokerId| replicas.and_then(|r| r.get(&b)).filter(|p| p.reported);
                let caught_up =
                    match (known(broker).map(|p| p.leo), known(record.leader).map(ReplicaProgress::leader_mark)) {
                        (Some(mine), Some(leader)) => mine >= leader,
                        (None, None) => {
                            replicas.is_none_or(|r| r.values().all(|p| !p.reported)) && quiet_for_long_enough
                        }
                        // One side unknown: wait for its report.
                        _ => false,
                    };
                if caught_up {
                    let entry = changes
                        .entry(key)
                        .or_insert_with(|| (record.partition_epoch, record.isr.iter().copied().collect()));
                    entry.1.insert(broker);
                } else {
                    still_behind = true;
                }
            }
            if still_behind {
                inner.rejoin_candidates.insert(broker);
            }
        }

        let mut out: Vec<IsrChange> = changes
            .into_iter()
            .filter_map(|((topic, partition), (partition_epoch, isr))| {
                let record = state.partition(&topic, partition).ok()?;
                // Keep replica order; skip no-op changes but answers.
                let new_isr: Vec<BrokerId> = record.replicas.iter().copied().filter(|b| isr.contains(b)).collect();
                let answer = answers.contains(&(topic.clone(), partition));
                ((new_isr != record.isr || answer) && !new_isr.is_empty()).then(|| IsrChange {
                    topic: topic.to_string(),
                    partition,
                    partition_epoch,
                    new_isr,
                })
            })
            .collect();
        out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        out.truncate(MAX_ISR_CHANGES_PER_ENTRY);
        out
    }
}

/// Whether a request from `leader` at these epochs matches the partition now.
fn names_current(record: &Partition, leader: BrokerId, leader_epoch: i32, partition_epoch: i32) -> bool {
    record.leader == leader && record.leader_epoch == leader_epoch && record.partition_epoch == partition_epoch
}

#[cfg(test)]
mod tests;
