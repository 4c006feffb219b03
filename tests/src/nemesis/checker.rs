//! The history checker: reads a recorded history (see [`super::history`]) and
//! reports every violation of the safety properties of `DESIGN.md`, each with
//! the events around it.
//!
//! The history is sorted by `t_ns` (stably). The checks, precisely:
//!
//! - **(a) Overlapping leaders** (property 1). Per partition, writes accepted
//!   by *different* brokers must carry strictly increasing leader epochs in
//!   time order: for accepts (t1, X, e1) and (t2, Y, e2) with X ≠ Y and t1 < t2,
//!   `e1 < e2`. So X accepting at epoch e after Y's first accept at an epoch
//!   above e is a violation (X still acted as leader after its successor
//!   started), and so is any two brokers accepting at the same instant. The
//!   report points at X's accept and at Y's first accept above e. (Equal
//!   epochs on two brokers are reported once, as (b).) The checker only sees
//!   accepted writes, so an overlap in which one side did not write is
//!   invisible: the broker loops should write densely.
//! - **(b) Epochs** (property 2). A (partition, epoch) names one leader:
//!   accepted writes, `leader_observed` (including `-1`, no leader) and the
//!   final state must agree ([`Check::EpochOnTwoBrokers`]). A broker's
//!   accepted epochs for a partition never go down in time order, a watcher's
//!   observed epochs never go down, and the final state's epoch is not below
//!   any epoch accepted or observed for that partition
//!   ([`Check::EpochWentBackwards`]).
//! - **(c) Lost metadata** (property 3). For each topic, the acknowledged
//!   change with the highest metadata version decides: a create must be in
//!   the final state (with the partition count asked for), a delete must not
//!   (topic names are not reused, see the history's workload rule). The final
//!   state must not be older than any acknowledged version.
//! - **(d) Leader outside the ISR** (property 4). A `leader_observed` with a
//!   leader (≥ 0) and an `isr_before` that does not contain it, on a topic
//!   not created with `unclean_leader_election` (by its ack or the final
//!   state).
//! - **(e) No leader after heal** (property 5). For each `healed` at t: every
//!   partition of the final state whose ISR has a live member (per
//!   `live_brokers`, default all), and whose topic was not created after t,
//!   needs a `leader_present` in [t, t + bound]. A `healed` followed by a
//!   `nemesis` within the bound, or by the end of the history, is not judged
//!   (a note says so).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::path::Path;
use std::time::Duration;

use super::history::{Event, MetadataOp, Recorded, read_jsonl};

/// Events shown on each side of a violation.
pub const CONTEXT: usize = 5;
/// The liveness bound of check (e) unless configured: a session timeout
/// (3 s) plus a new controller's full session-timeout wait (3 s), an election
/// and slack for a loaded 2-core machine.
pub const DEFAULT_LIVENESS_BOUND: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug)]
pub struct CheckerConfig {
    /// How long after `healed` a leaderless partition with a live ISR member is tolerated.
    pub liveness_bound: Duration,
}

impl Default for CheckerConfig {
    fn default() -> Self {
        CheckerConfig { liveness_bound: DEFAULT_LIVENESS_BOUND }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Check {
    /// (a) two brokers acting as leader of one partition at once.
    OverlappingLeaders,
    /// (b) one (partition, epoch) naming two leaders.
    EpochOnTwoBrokers,
    /// (b) an epoch going down (a broker's, a watcher's, or the final state's).
    EpochWentBackwards,
    /// (c) an acknowledged metadata change missing after recovery.
    LostMetadata,
    /// (d) a leader from outside the ISR it replaced on a clean-election topic.
    LeaderOutsideIsr,
    /// (e) a partition with a live ISR member leaderless past the bound after a heal.
    NoLeaderAfterHeal,
}

#[derive(Clone, Debug)]
pub struct Violation {
    pub check: Check,
    pub message: String,
    /// The offending event: an index into [`Report::history`].
    pub at: usize,
    /// Other events the message refers to (indexes into the history).
    pub related: Vec<usize>,
}

/// The checker's answer. `Display` prints a summary and each violation with
/// the [`CONTEXT`] events on each side of it.
#[derive(Clone, Debug)]
pub struct Report {
    /// The history, sorted by `t_ns`.
    pub history: Vec<Recorded>,
    pub violations: Vec<Violation>,
    /// What could not be judged, and why.
    pub notes: Vec<String>,
}

impl Report {
    pub fn is_ok(&self) -> bool {
        self.violations.is_empty()
    }

    pub fn count(&self, check: Check) -> usize {
        self.violations.iter().filter(|v| v.check == check).count()
    }

    /// The events around a violation: up to CONTEXT each side of `at`.
    pub fn context(&self, v: &Violation) -> std::ops::Range<usize> {
        v.at.saturating_sub(CONTEXT)..(v.at + CONTEXT + 1).min(self.history.len())
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "history: {} events, {} violations", self.history.len(), self.violations.len())?;
        for n in &self.notes {
            writeln!(f, "note: {n}")?;
        }
        let line = |f: &mut fmt::Formatter<'_>, mark: &str, i: usize| {
            let r = &self.history[i];
            writeln!(f, "  {mark} line {:>6}  {}", r.line, r.event.to_json())
        };
        for v in &self.violations {
            writeln!(f, "\nVIOLATION {:?}: {}", v.check, v.message)?;
            let range = self.context(v);
            for i in range.clone() {
                let mark = if i == v.at { ">>" } else if v.related.contains(&i) { " *" } else { "  " };
                line(f, mark, i)?;
            }
            for &i in v.related.iter().filter(|i| !range.contains(i)) {
                writeln!(f, "  related:")?;
                line(f, " *", i)?;
            }
        }
        Ok(())
    }
}

/// Checks a history file.
pub fn check_file(path: &Path, config: &CheckerConfig) -> anyhow::Result<Report> {
    Ok(check_recorded(read_jsonl(path)?, config))
}

/// Checks events given in file order (line numbers are their positions, from 1).
pub fn check(events: Vec<Event>, config: &CheckerConfig) -> Report {
    let recs = events.into_iter().enumerate().map(|(i, event)| Recorded { line: i + 1, event }).collect();
    check_recorded(recs, config)
}

pub fn check_recorded(mut history: Vec<Recorded>, config: &CheckerConfig) -> Report {
    history.sort_by_key(|r| r.event.t_ns());
    let mut c = Checker { h: &history, out: Vec::new(), notes: Vec::new(), seen: HashSet::new() };
    let final_state = history.iter().rposition(|r| matches!(r.event, Event::FinalState { .. }));
    if final_state.is_none() {
        c.notes.push("no final_state: (c), (e) and the final-epoch part of (b) were not checked".into());
    }
    c.writes();
    c.epochs(final_state);
    c.metadata(final_state);
    c.isr();
    c.liveness(final_state, config.liveness_bound);
    let (mut violations, notes) = (c.out, c.notes);
    violations.sort_by_key(|v| (v.at, v.check));
    Report { history, violations, notes }
}

type Part<'a> = (&'a str, i32);

struct Checker<'a> {
    h: &'a [Recorded],
    out: Vec<Violation>,
    notes: Vec<String>,
    /// Dedup keys: a zombie writing a thousand times is one violation.
    seen: HashSet<String>,
}

impl<'a> Checker<'a> {
    fn report(&mut self, check: Check, key: String, at: usize, related: Vec<usize>, message: String) {
        if self.seen.insert(format!("{check:?}/{key}")) {
            self.out.push(Violation { check, message, at, related });
        }
    }

    fn ev(&self, i: usize) -> &'a Event {
        &self.h[i].event
    }

    /// (a), and (b)'s per-broker monotonicity.
    fn writes(&mut self) {
        // partition → broker → first accept (index) of each epoch, in time order.
        let mut firsts: HashMap<Part<'a>, BTreeMap<i32, Vec<(i32, usize)>>> = HashMap::new();
        let mut last_t: HashMap<(Part<'a>, i32), u64> = HashMap::new();
        for i in 0..self.h.len() {
            let Event::WriteAccepted { t_ns, broker, topic, partition, leader_epoch: e } = self.ev(i) else { continue };
            let (t, x, e, part) = (*t_ns, *broker, *e, (topic.as_str(), *partition));
            let brokers = firsts.entry(part).or_default();
            let mut found = Vec::new();
            for (&y, epochs) in brokers.iter() {
                if y == x {
                    if let Some(&(high, j)) = epochs.iter().filter(|(ep, _)| *ep > e).last() {
                        found.push((Check::EpochWentBackwards, format!("{part:?}/{x}/{high}/{e}"), j,
                            format!("{topic}/{partition}: broker {x} accepted at epoch {e} after it had accepted at epoch {high} (line {})", self.h[j].line)));
                    }
                } else if let Some(&(high, j)) = epochs.iter().find(|(ep, _)| *ep > e) {
                    found.push((Check::OverlappingLeaders, format!("{part:?}/{x}/{e}/{y}/{high}"), j,
                        format!("{topic}/{partition}: broker {x} accepted a write at epoch {e} at t={t} after broker {y} had started accepting at epoch {high} (line {}, t={})", self.h[j].line, self.ev(j).t_ns())));
                } else if last_t.get(&(part, y)) == Some(&t) {
                    found.push((Check::OverlappingLeaders, format!("{part:?}/{x}/{y}/t{t}"), i,
                        format!("{topic}/{partition}: brokers {x} and {y} accepted writes at the same instant t={t}")));
                }
            }
            for (check, key, j, msg) in found {
                self.report(check, key, i, vec![j], msg);
            }
            let mine = brokers.entry(x).or_default();
            if !mine.iter().any(|(ep, _)| *ep == e) {
                mine.push((e, i));
            }
            last_t.insert((part, x), t);
        }
    }

    /// (b): one leader per (partition, epoch); watchers' and the final state's epochs.
    fn epochs(&mut self, final_state: Option<usize>) {
        let mut owner: HashMap<(Part<'a>, i32), (i32, usize)> = HashMap::new();
        let mut highest: HashMap<Part<'a>, (i32, usize)> = HashMap::new();
        let mut watched: HashMap<(u32, Part<'a>), (i32, usize)> = HashMap::new();
        for i in 0..self.h.len() {
            let mut claims: Vec<(Part<'a>, i32, i32)> = Vec::new();
            match self.ev(i) {
                Event::WriteAccepted { broker, topic, partition, leader_epoch, .. } => {
                    claims.push(((topic, *partition), *leader_epoch, *broker));
                }
                Event::LeaderObserved { topic, partition, leader, leader_epoch, watcher, .. } => {
                    let part = (topic.as_str(), *partition);
                    claims.push((part, *leader_epoch, *leader));
                    if let Some(&(prev, j)) = watched.get(&(*watcher, part)).filter(|(p, _)| *p > *leader_epoch) {
                        self.report(Check::EpochWentBackwards, format!("w{watcher}/{part:?}/{prev}/{leader_epoch}"), i, vec![j],
                            format!("{topic}/{partition}: watcher {watcher} saw epoch {leader_epoch} after epoch {prev}"));
                    } else {
                        watched.insert((*watcher, part), (*leader_epoch, i));
                    }
                }
                Event::FinalState { topics, .. } if Some(i) == final_state => {
                    for (topic, ts) in topics {
                        for p in &ts.partitions {
                            claims.push(((topic, p.partition), p.leader_epoch, p.leader));
                        }
                    }
                }
                _ => {}
            }
            for (part, epoch, leader) in claims {
                match owner.get(&(part, epoch)) {
                    Some(&(other, j)) if other != leader => {
                        let (lo, hi) = (leader.min(other), leader.max(other));
                        self.report(Check::EpochOnTwoBrokers, format!("{part:?}/{epoch}/{lo}/{hi}"), i, vec![j],
                            format!("{}/{}: epoch {epoch} names leader {leader} here and leader {other} at line {}", part.0, part.1, self.h[j].line));
                    }
                    Some(_) => {}
                    None => {
                        owner.insert((part, epoch), (leader, i));
                    }
                }
                if Some(i) == final_state {
                    if let Some(&(high, j)) = highest.get(&part).filter(|(h, _)| *h > epoch) {
                        self.report(Check::EpochWentBackwards, format!("final/{part:?}"), i, vec![j],
                            format!("{}/{}: the final state has epoch {epoch}, below epoch {high} seen at line {}", part.0, part.1, self.h[j].line));
                    }
                } else if highest.get(&part).is_none_or(|(h, _)| *h < epoch) {
                    highest.insert(part, (epoch, i));
                }
            }
        }
    }

    /// (c): acknowledged creates and deletes against the final state.
    fn metadata(&mut self, final_state: Option<usize>) {
        let Some(f) = final_state else { return };
        let Event::FinalState { topics, metadata_version, .. } = self.ev(f) else { return };
        let mut latest: BTreeMap<&str, (u64, usize)> = BTreeMap::new();
        let mut newest: Option<(u64, usize)> = None;
        for i in 0..self.h.len() {
            let Event::MetadataAck { op, topic, metadata_version: v, .. } = self.ev(i) else { continue };
            if newest.is_none_or(|(n, _)| *v > n) {
                newest = Some((*v, i));
            }
            if *op != MetadataOp::Other && latest.get(topic.as_str()).is_none_or(|(lv, _)| *v >= *lv) {
                latest.insert(topic, (*v, i));
            }
        }
        if let (Some(fv), Some((v, i))) = (metadata_version, newest) {
            if *fv < v {
                self.report(Check::LostMetadata, "final-version".into(), f, vec![i],
                    format!("the final state is at metadata version {fv}, older than version {v} acknowledged at line {}", self.h[i].line));
            }
        }
        for (topic, (v, i)) in latest {
            let Event::MetadataAck { op, partitions, .. } = self.ev(i) else { continue };
            let present = topics.get(topic);
            let line = self.h[i].line;
            match (op, present) {
                (MetadataOp::CreateTopic, None) => self.report(Check::LostMetadata, format!("create/{topic}"), i, vec![f],
                    format!("topic {topic} created (acknowledged at version {v}, line {line}) is missing from the final state")),
                (MetadataOp::CreateTopic, Some(ts)) if partitions.is_some_and(|n| n as usize != ts.partitions.len()) => {
                    self.report(Check::LostMetadata, format!("count/{topic}"), i, vec![f],
                        format!("topic {topic} was created with {partitions:?} partitions (line {line}) but has {} in the final state", ts.partitions.len()))
                }
                (MetadataOp::DeleteTopic, Some(_)) => self.report(Check::LostMetadata, format!("delete/{topic}"), i, vec![f],
                    format!("topic {topic} deleted (acknowledged at version {v}, line {line}) is still in the final state")),
                _ => {}
            }
        }
    }

    fn unclean_topics(&self) -> HashSet<&'a str> {
        let mut set = HashSet::new();
        for r in self.h {
            match &r.event {
                Event::MetadataAck { op: MetadataOp::CreateTopic, topic, unclean_leader_election: true, .. } => {
                    set.insert(topic.as_str());
                }
                Event::FinalState { topics, .. } => {
                    set.extend(topics.iter().filter(|(_, t)| t.unclean_leader_election).map(|(n, _)| n.as_str()));
                }
                _ => {}
            }
        }
        set
    }

    /// (d): observed leaders come from the ISR they replaced.
    fn isr(&mut self) {
        let unclean = self.unclean_topics();
        for i in 0..self.h.len() {
            let Event::LeaderObserved { topic, partition, leader, leader_epoch, isr_before: Some(isr), .. } = self.ev(i) else { continue };
            if *leader >= 0 && !isr.contains(leader) && !unclean.contains(topic.as_str()) {
                self.report(Check::LeaderOutsideIsr, format!("{topic}/{partition}/{leader_epoch}"), i, vec![],
                    format!("{topic}/{partition}: leader {leader} at epoch {leader_epoch} is not in the ISR {isr:?} it replaced (clean-election topic)"));
            }
        }
    }

    /// (e): after each heal, every partition with a live ISR member has a leader within the bound.
    fn liveness(&mut self, final_state: Option<usize>, bound: Duration) {
        let Some(f) = final_state else { return };
        let Event::FinalState { topics, .. } = self.ev(f) else { return };
        let bound_ns = u64::try_from(bound.as_nanos()).unwrap_or(u64::MAX);
        let end = self.h.last().map_or(0, |r| r.event.t_ns());
        let created: HashMap<&str, u64> = self.h.iter().filter_map(|r| match &r.event {
            Event::MetadataAck { op: MetadataOp::CreateTopic, topic, t_ns, .. } => Some((topic.as_str(), *t_ns)),
            _ => None,
        }).collect();
        for h in 0..self.h.len() {
            let Event::Healed { t_ns: t, live_brokers } = self.ev(h) else { continue };
            let deadline = t.saturating_add(bound_ns);
            let line = self.h[h].line;
            if let Some(n) = self.h[h..].iter().find(|r| matches!(r.event, Event::Nemesis { .. }) && r.event.t_ns() <= deadline) {
                self.notes.push(format!("healed at line {line}: a fault (line {}) came within {bound:?}; liveness not judged", n.line));
                continue;
            }
            if end < deadline {
                self.notes.push(format!("healed at line {line}: the history ends before {bound:?} passed; liveness not judged"));
                continue;
            }
            let present: BTreeSet<Part<'a>> = self.h[h..].iter().filter_map(|r| match &r.event {
                Event::LeaderPresent { t_ns, topic, partition, leader } if *t_ns <= deadline && leader.is_none_or(|l| l >= 0) => {
                    Some((topic.as_str(), *partition))
                }
                _ => None,
            }).collect();
            for (topic, ts) in topics {
                if created.get(topic.as_str()).is_some_and(|c| c > t) {
                    continue;
                }
                for p in &ts.partitions {
                    let live = p.isr.iter().any(|b| live_brokers.as_ref().is_none_or(|l| l.contains(b)));
                    if live && !present.contains(&(topic.as_str(), p.partition)) {
                        self.report(Check::NoLeaderAfterHeal, format!("{h}/{topic}/{}", p.partition), h, vec![f],
                            format!("{topic}/{}: ISR {:?} has a live member but no leader was seen within {bound:?} of the heal at t={t}", p.partition, p.isr));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "checker_tests.rs"]
mod tests;
