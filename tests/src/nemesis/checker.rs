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
use std::path::Path;
use std::time::Duration;

use super::history::{Event, MetadataOp, Recorded, read_jsonl};
pub use super::report::{CONTEXT, Check, Report, Violation};

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
        // partition → broker → the first accept (index) at each of its epochs, in time order.
        let mut firsts: HashMap<Part<'a>, BTreeMap<i32, Vec<(i32, usize)>>> = HashMap::new();
        // (partition, broker) → its latest accept.
        let mut latest: HashMap<(Part<'a>, i32), usize> = HashMap::new();
        for i in 0..self.h.len() {
            let Event::WriteAccepted { t_ns: t, broker: x, topic, partition, leader_epoch: e } = self.ev(i) else {
                continue;
            };
            let (part, x, e) = ((topic.as_str(), *partition), *x, *e);
            let brokers = firsts.entry(part).or_default();
            let mut found = Vec::new();
            for (&y, epochs) in brokers.iter() {
                if y == x {
                    if let Some(&(high, j)) = epochs.iter().rev().find(|(ep, _)| *ep > e) {
                        let msg = format!("broker {x} accepted at epoch {e} after accepting at epoch {high}");
                        found.push((Check::EpochWentBackwards, format!("{x}/{high}/{e}"), j, msg));
                    }
                } else if let Some(&(high, j)) = epochs.iter().find(|(ep, _)| *ep > e) {
                    let msg = format!(
                        "broker {x} accepted at epoch {e} (t={t}) after broker {y} began accepting at epoch {high} \
                         (line {}, t={})",
                        self.h[j].line,
                        self.ev(j).t_ns()
                    );
                    found.push((Check::OverlappingLeaders, format!("{x}/{e}/{y}/{high}"), j, msg));
                } else if let Some(&j) = latest.get(&(part, y)).filter(|&&j| self.ev(j).t_ns() == *t) {
                    let msg = format!("brokers {y} and {x} accepted at the same instant t={t}");
                    found.push((Check::OverlappingLeaders, format!("{x}/{y}/t{t}"), j, msg));
                }
            }
            for (check, key, j, msg) in found {
                self.report(check, format!("{part:?}/{key}"), i, vec![j], format!("{topic}/{partition}: {msg}"));
            }
            let mine = brokers.entry(x).or_default();
            if !mine.iter().any(|(ep, _)| *ep == e) {
                mine.push((e, i));
            }
            latest.insert((part, x), i);
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
                        self.report(
                            Check::EpochWentBackwards,
                            format!("w{watcher}/{part:?}/{prev}/{leader_epoch}"),
                            i,
                            vec![j],
                            format!(
                                "{topic}/{partition}: watcher {watcher} saw epoch {leader_epoch} after epoch {prev}"
                            ),
                        );
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
                        self.report(
                            Check::EpochOnTwoBrokers,
                            format!("{part:?}/{epoch}/{lo}/{hi}"),
                            i,
                            vec![j],
                            format!(
                                "{}/{}: epoch {epoch} names leader {leader} here and leader {other} at line {}",
                                part.0, part.1, self.h[j].line
                            ),
                        );
                    }
                    Some(_) => {}
                    None => {
                        owner.insert((part, epoch), (leader, i));
                    }
                }
                if Some(i) == final_state {
                    if let Some(&(high, j)) = highest.get(&part).filter(|(h, _)| *h > epoch) {
                        self.report(
                            Check::EpochWentBackwards,
                            format!("final/{part:?}"),
                            i,
                            vec![j],
                            format!(
                                "{}/{}: the final state has epoch {epoch}, below epoch {high} seen at line {}",
                                part.0, part.1, self.h[j].line
                            ),
                        );
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
        if let (Some(fv), Some((v, i))) = (metadata_version, newest)
            && *fv < v
        {
            self.report(
                Check::LostMetadata,
                "final-version".into(),
                f,
                vec![i],
                format!(
                    "the final state is at metadata version {fv}, older than version {v} acknowledged at line {}",
                    self.h[i].line
                ),
            );
        }
        for (topic, (v, i)) in latest {
            let Event::MetadataAck { op, partitions, .. } = self.ev(i) else { continue };
            let present = topics.get(topic);
            let line = self.h[i].line;
            match (op, present) {
                (MetadataOp::CreateTopic, None) => {
                    let msg =
                        format!("topic {topic}, created at version {v} (line {line}), is missing from the final state");
                    self.report(Check::LostMetadata, format!("create/{topic}"), i, vec![f], msg);
                }
                (MetadataOp::CreateTopic, Some(ts))
                    if partitions.is_some_and(|n| n as usize != ts.partitions.len()) =>
                {
                    let (asked, has) = (partitions.unwrap_or_default(), ts.partitions.len());
                    let msg = format!("topic {topic} was created with {asked} partitions (line {line}) but has {has}");
                    self.report(Check::LostMetadata, format!("count/{topic}"), i, vec![f], msg);
                }
                (MetadataOp::DeleteTopic, Some(_)) => {
                    let msg = format!("topic {topic}, deleted at version {v} (line {line}), is in the final state");
                    self.report(Check::LostMetadata, format!("delete/{topic}"), i, vec![f], msg);
                }
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
            let Event::LeaderObserved { topic, partition, leader, leader_epoch, isr_before: Some(isr), .. } =
                self.ev(i)
            else {
                continue;
            };
            if *leader >= 0 && !isr.contains(leader) && !unclean.contains(topic.as_str()) {
                let msg = format!(
                    "{topic}/{partition}: leader {leader} at epoch {leader_epoch} is not in the ISR {isr:?} it \
                     replaced, and the topic does not allow unclean election"
                );
                self.report(Check::LeaderOutsideIsr, format!("{topic}/{partition}/{leader_epoch}"), i, vec![], msg);
            }
        }
    }

    /// (e): after each heal, every partition with a live ISR member has a leader within the bound.
    fn liveness(&mut self, final_state: Option<usize>, bound: Duration) {
        let Some(f) = final_state else { return };
        let Event::FinalState { topics, .. } = self.ev(f) else { return };
        let bound_ns = u64::try_from(bound.as_nanos()).unwrap_or(u64::MAX);
        let end = self.h.last().map_or(0, |r| r.event.t_ns());
        let created: HashMap<&str, u64> = self
            .h
            .iter()
            .filter_map(|r| match &r.event {
                Event::MetadataAck { op: MetadataOp::CreateTopic, topic, t_ns, .. } => Some((topic.as_str(), *t_ns)),
                _ => None,
            })
            .collect();
        for h in 0..self.h.len() {
            let Event::Healed { t_ns: t, live_brokers } = self.ev(h) else { continue };
            let deadline = t.saturating_add(bound_ns);
            let line = self.h[h].line;
            if let Some(n) =
                self.h[h..].iter().find(|r| matches!(r.event, Event::Nemesis { .. }) && r.event.t_ns() <= deadline)
            {
                self.notes.push(format!(
                    "healed at line {line}: a fault (line {}) came within {bound:?}; liveness not judged",
                    n.line
                ));
                continue;
            }
            if end < deadline {
                self.notes.push(format!(
                    "healed at line {line}: the history ends before {bound:?} passed; liveness not judged"
                ));
                continue;
            }
            let present: BTreeSet<Part<'a>> = self.h[h..]
                .iter()
                .filter_map(|r| match &r.event {
                    Event::LeaderPresent { t_ns, topic, partition, leader }
                        if *t_ns <= deadline && leader.is_none_or(|l| l >= 0) =>
                    {
                        Some((topic.as_str(), *partition))
                    }
                    _ => None,
                })
                .collect();
            for (topic, ts) in topics {
                if created.get(topic.as_str()).is_some_and(|c| c > t) {
                    continue;
                }
                for p in &ts.partitions {
                    let live = p.isr.iter().any(|b| live_brokers.as_ref().is_none_or(|l| l.contains(b)));
                    if live && !present.contains(&(topic.as_str(), p.partition)) {
                        let (n, isr) = (p.partition, &p.isr);
                        let msg = format!(
                            "{topic}/{n}: no leader seen within {bound:?} of the heal, ISR {isr:?} has a live member"
                        );
                        self.report(Check::NoLeaderAfterHeal, format!("{h}/{topic}/{n}"), h, vec![f], msg);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "checker_tests.rs"]
mod tests;
