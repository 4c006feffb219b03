//! The recorded history of a fault test: JSON lines, one [`Event`] a line.
//!
//! Every event carries `t_ns`, an instant of `CLOCK_MONOTONIC` in
//! nanoseconds. All processes of a test run on one host, so instants taken in
//! different processes compare. A history may be the concatenation of
//! several processes' files in any order: the checker sorts it by `t_ns`
//! (stably, so events with equal instants keep their file order).
//!
//! ```text
//! {"kind":"write_accepted","t_ns":1000,"broker":1,"topic":"t","partition":0,"leader_epoch":3}
//! {"kind":"write_refused","t_ns":1100,"broker":2,"topic":"t","partition":0,"error_code":6,"leader_hint":1}
//! {"kind":"metadata_ack","t_ns":900,"op":"create_topic","topic":"t","metadata_version":17,"partitions":3}
//! {"kind":"leader_observed","t_ns":2000,"topic":"t","partition":0,"leader":2,"leader_epoch":4,"isr_before":[1,2]}
//! {"kind":"nemesis","t_ns":1500,"what":"cut agent-1 <-> controller-0"}
//! {"kind":"healed","t_ns":3000}
//! {"kind":"leader_present","t_ns":3100,"topic":"t","partition":0,"leader":2}
//! {"kind":"final_state","t_ns":9000,"metadata_version":40,"topics":{"t":{"partitions":[
//!     {"partition":0,"leader":2,"leader_epoch":4,"isr":[1,2],"replicas":[1,2]}]}}}
//! ```
//! (the last event is one line in a file). Ids are the protocol's `int32`s;
//! `-1` is "no leader". **Workload rule:** a topic name is created at most
//! once per history (deleted names are not reused), because writes and
//! observations name partitions by topic name and epochs restart with a new
//! topic.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Mutex;

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// One thing that happened, at monotonic instant `t_ns`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// A broker loop called `check_produce` and it answered Ok(`leader_epoch`)
    /// at `t_ns` (read right after the check returned).
    WriteAccepted { t_ns: u64, broker: i32, topic: String, partition: i32, leader_epoch: i32 },
    /// `check_produce` refused (context only; no check relies on refusals).
    WriteRefused {
        t_ns: u64,
        broker: i32,
        topic: String,
        partition: i32,
        #[serde(default)]
        error_code: i32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        leader_hint: Option<i32>,
    },
    /// A metadata change the public API acknowledged (answered Ok) at `t_ns`.
    MetadataAck {
        t_ns: u64,
        op: MetadataOp,
        topic: String,
        metadata_version: u64,
        /// For `create_topic`: the partition count asked for.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        partitions: Option<i32>,
        /// For `create_topic`: the topic allows unclean leader election.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        unclean_leader_election: bool,
    },
    /// What a linearizable describe returned after every fault healed and
    /// every process recovered. The checker uses the last one.
    FinalState {
        t_ns: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        metadata_version: Option<u64>,
        topics: BTreeMap<String, TopicState>,
    },
    /// A leadership change seen on a `WatchLeadership` stream. `isr_before`
    /// is the ISR of the watcher's previous view of the partition (absent on
    /// the first view). `watcher` tells apart several streams (default 0).
    LeaderObserved {
        t_ns: u64,
        topic: String,
        partition: i32,
        leader: i32,
        leader_epoch: i32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        isr_before: Option<Vec<i32>>,
        #[serde(default)]
        watcher: u32,
    },
    /// A fault was injected (context, and it ends a liveness window).
    Nemesis { t_ns: u64, what: String },
    /// Every fault is healed and every process runs again. `live_brokers`
    /// (default: every broker) are those alive from here on.
    Healed {
        t_ns: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        live_brokers: Option<Vec<i32>>,
    },
    /// A poll after a heal saw the partition with a leader at `t_ns`.
    LeaderPresent {
        t_ns: u64,
        topic: String,
        partition: i32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        leader: Option<i32>,
    },
}

/// The kinds of acknowledged metadata change the checker knows; anything
/// else parses as `other` and is kept for context.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetadataOp {
    CreateTopic,
    DeleteTopic,
    #[serde(other)]
    Other,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TopicState {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unclean_leader_election: bool,
    pub partitions: Vec<PartitionState>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PartitionState {
    pub partition: i32,
    pub leader: i32,
    pub leader_epoch: i32,
    pub isr: Vec<i32>,
    #[serde(default)]
    pub replicas: Vec<i32>,
}

impl Event {
    pub fn t_ns(&self) -> u64 {
        match self {
            Event::WriteAccepted { t_ns, .. }
            | Event::WriteRefused { t_ns, .. }
            | Event::MetadataAck { t_ns, .. }
            | Event::FinalState { t_ns, .. }
            | Event::LeaderObserved { t_ns, .. }
            | Event::Nemesis { t_ns, .. }
            | Event::Healed { t_ns, .. }
            | Event::LeaderPresent { t_ns, .. } => *t_ns,
        }
    }

    /// The event as one JSON line (no newline).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"unprintable\":\"{e}\"}}"))
    }
}

/// An event and the line of the history it came from (1-based).
#[derive(Clone, Debug, PartialEq)]
pub struct Recorded {
    pub line: usize,
    pub event: Event,
}

/// Parses JSON lines; blank lines are skipped, a bad line is an error naming it.
pub fn parse_jsonl(text: &str) -> anyhow::Result<Vec<Recorded>> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        if raw.trim().is_empty() {
            continue;
        }
        let event = serde_json::from_str(raw).with_context(|| format!("history line {}: {raw}", i + 1))?;
        out.push(Recorded { line: i + 1, event });
    }
    Ok(out)
}

pub fn read_jsonl(path: &Path) -> anyhow::Result<Vec<Recorded>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    parse_jsonl(&text)
}

/// Events as JSON lines (each followed by a newline).
pub fn to_jsonl(events: &[Event]) -> String {
    events.iter().map(|e| e.to_json() + "\n").collect()
}

/// Appends events to a JSON-lines file; shareable between threads.
pub struct Recorder {
    out: Mutex<BufWriter<File>>,
}

impl Recorder {
    pub fn create(path: &Path) -> anyhow::Result<Recorder> {
        let file = File::create(path).with_context(|| format!("create {}", path.display()))?;
        Ok(Recorder { out: Mutex::new(BufWriter::new(file)) })
    }

    pub fn record(&self, event: &Event) -> anyhow::Result<()> {
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        writeln!(out, "{}", event.to_json())?;
        Ok(())
    }

    pub fn flush(&self) -> anyhow::Result<()> {
        self.out.lock().unwrap_or_else(|p| p.into_inner()).flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
{"kind":"metadata_ack","t_ns":900,"op":"create_topic","topic":"t","metadata_version":17,"partitions":1}
{"kind":"write_accepted","t_ns":1000,"broker":1,"topic":"t","partition":0,"leader_epoch":3}
{"kind":"write_refused","t_ns":1100,"broker":2,"topic":"t","partition":0,"error_code":6,"leader_hint":1}
{"kind":"nemesis","t_ns":1500,"what":"kill -9 agent-1"}
{"kind":"leader_observed","t_ns":2000,"topic":"t","partition":0,"leader":2,"leader_epoch":4,"isr_before":[1,2]}
{"kind":"healed","t_ns":3000}
{"kind":"leader_present","t_ns":3100,"topic":"t","partition":0,"leader":2}
{"kind":"metadata_ack","t_ns":3200,"op":"elect_leaders","topic":"t","metadata_version":41}
{"kind":"final_state","t_ns":9000,"metadata_version":40,"topics":{"t":{"partitions":[{"partition":0,"leader":2,"leader_epoch":4,"isr":[1,2],"replicas":[1,2]}]}}}
"#;

    #[test]
    fn parses_every_kind_and_round_trips() {
        let recs = parse_jsonl(EXAMPLE).expect("parse");
        assert_eq!(recs.len(), 9);
        assert_eq!(recs[0].line, 2, "lines are counted in the file, blank ones included");
        assert!(matches!(recs[7].event, Event::MetadataAck { op: MetadataOp::Other, .. }));
        match &recs[4].event {
            Event::LeaderObserved { isr_before, watcher, .. } => {
                assert_eq!(isr_before.as_deref(), Some(&[1, 2][..]));
                assert_eq!(*watcher, 0);
            }
            e => panic!("unexpected {e:?}"),
        }
        // Round trip (an unknown op is written back as "other").
        let events: Vec<Event> = recs.into_iter().map(|r| r.event).collect();
        let again: Vec<Event> =
            parse_jsonl(&to_jsonl(&events)).expect("reparse").into_iter().map(|r| r.event).collect();
        assert_eq!(events, again);
    }

    #[test]
    fn a_bad_line_is_named() {
        let err = parse_jsonl("{\"kind\":\"healed\",\"t_ns\":1}\n{\"kind\":\"healed\"}\n").expect_err("missing t_ns");
        assert!(format!("{err:#}").contains("line 2"), "{err:#}");
    }

    #[test]
    fn recorder_writes_lines_the_parser_reads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("history.jsonl");
        let rec = Recorder::create(&path).expect("create");
        let e = Event::Healed { t_ns: 5, live_brokers: Some(vec![1, 3]) };
        rec.record(&e).expect("record");
        rec.flush().expect("flush");
        let back = read_jsonl(&path).expect("read");
        assert_eq!(back, vec![Recorded { line: 1, event: e }]);
    }
}
