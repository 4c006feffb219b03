//! For each check: a hand-built history that passes and one that fails (the
//! failing one must be caught, with the right check and the right event).

use std::time::Duration;

use super::*;
use crate::nemesis::history::{PartitionState, Recorder, TopicState};

/// Liveness bound for these histories, whose instants are small integers.
const BOUND: Duration = Duration::from_nanos(1_000);

fn run(events: Vec<Event>) -> Report {
    let report = check(events, &CheckerConfig { liveness_bound: BOUND });
    eprintln!("{report}");
    report
}

/// Asserts the report holds `n` violations, all of `check`.
fn caught(report: &Report, check: Check, n: usize) {
    assert_eq!(report.violations.len(), n, "expected {n} × {check:?}:\n{report}");
    assert_eq!(report.count(check), n, "expected {n} × {check:?}:\n{report}");
}

fn clean(report: &Report) {
    assert!(report.is_ok(), "expected no violation:\n{report}");
}

fn w(t: u64, broker: i32, epoch: i32) -> Event {
    Event::WriteAccepted { t_ns: t, broker, topic: "t".into(), partition: 0, leader_epoch: epoch }
}

fn refused(t: u64, broker: i32) -> Event {
    Event::WriteRefused { t_ns: t, broker, topic: "t".into(), partition: 0, error_code: 6, leader_hint: None }
}

fn obs(t: u64, watcher: u32, leader: i32, epoch: i32, isr_before: Option<&[i32]>) -> Event {
    let isr_before = isr_before.map(<[i32]>::to_vec);
    Event::LeaderObserved { t_ns: t, topic: "t".into(), partition: 0, leader, leader_epoch: epoch, isr_before, watcher }
}

fn ack(t: u64, op: MetadataOp, topic: &str, version: u64, partitions: Option<i32>) -> Event {
    let topic = topic.into();
    Event::MetadataAck { t_ns: t, op, topic, metadata_version: version, partitions, unclean_leader_election: false }
}

fn ps(partition: i32, leader: i32, leader_epoch: i32, isr: &[i32]) -> PartitionState {
    PartitionState { partition, leader, leader_epoch, isr: isr.to_vec(), replicas: vec![1, 2, 3] }
}

fn fin(t: u64, version: Option<u64>, topics: Vec<(&str, Vec<PartitionState>)>) -> Event {
    let topics = topics
        .into_iter()
        .map(|(name, partitions)| (name.to_string(), TopicState { unclean_leader_election: false, partitions }))
        .collect();
    Event::FinalState { t_ns: t, metadata_version: version, topics }
}

fn present(t: u64, partition: i32, leader: Option<i32>) -> Event {
    Event::LeaderPresent { t_ns: t, topic: "t".into(), partition, leader }
}

/// Broker 1 leads at epoch 1, hands over to broker 2 at epoch 2, gets it back at 3.
fn succession() -> Vec<Event> {
    vec![
        ack(1, MetadataOp::CreateTopic, "t", 10, Some(1)),
        w(10, 1, 1),
        w(11, 1, 1),
        refused(15, 2),
        w(20, 2, 2),
        w(21, 2, 2),
        refused(22, 1),
        w(30, 1, 3),
        obs(31, 0, 1, 3, Some(&[1, 2])),
        fin(100, Some(10), vec![("t", vec![ps(0, 1, 3, &[1, 2])])]),
    ]
}

// (a) overlapping leaders

#[test]
fn a_clean_succession_passes() {
    clean(&run(succession()));
}

#[test]
fn a_write_by_the_old_leader_after_its_successor_started_is_caught() {
    let mut h = succession();
    h.push(w(25, 1, 1)); // broker 1 still writes at epoch 1 after broker 2 wrote at 2
    let r = run(h);
    caught(&r, Check::OverlappingLeaders, 1);
    let v = &r.violations[0];
    assert_eq!(r.history[v.at].event, w(25, 1, 1));
    assert_eq!(r.history[v.related[0]].event, w(20, 2, 2), "points at the successor's first write");
}

#[test]
fn a_leader_ignoring_its_lease_is_one_violation_not_hundreds() {
    let mut h = succession();
    // Broker 1 ignores its lapsed lease: it writes on at epoch 1 all through
    // broker 2's epoch (t = 20..29), ten writes per instant.
    h.extend((0..100).map(|i| w(20 + i / 10, 1, 1)));
    let r = run(h);
    caught(&r, Check::OverlappingLeaders, 1);
}

#[test]
fn a_two_brokers_accepting_at_the_same_instant_is_caught() {
    let r = run(vec![w(10, 1, 1), w(10, 2, 2)]);
    caught(&r, Check::OverlappingLeaders, 1);
}

// (b) epochs

#[test]
fn b_one_epoch_on_two_brokers_is_caught() {
    let r = run(vec![w(10, 1, 2), w(20, 2, 2)]);
    caught(&r, Check::EpochOnTwoBrokers, 1);
}

#[test]
fn b_an_observed_leader_contradicting_the_writes_is_caught() {
    let r = run(vec![obs(5, 0, 2, 4, None), w(10, 1, 4)]);
    caught(&r, Check::EpochOnTwoBrokers, 1);
    // "No leader" at an epoch is a claim too.
    let r = run(vec![obs(5, 0, -1, 4, None), w(10, 1, 4)]);
    caught(&r, Check::EpochOnTwoBrokers, 1);
}

#[test]
fn b_a_broker_going_back_an_epoch_is_caught() {
    let r = run(vec![w(10, 1, 3), w(20, 1, 2)]);
    caught(&r, Check::EpochWentBackwards, 1);
}

#[test]
fn b_watchers_epochs_go_up_per_watcher() {
    // Two watchers at different points of the stream: fine.
    clean(&run(vec![obs(10, 0, 1, 4, None), obs(20, 1, 2, 3, None), obs(30, 1, 1, 4, None)]));
    let r = run(vec![obs(10, 0, 1, 4, None), obs(20, 0, 2, 3, None)]);
    caught(&r, Check::EpochWentBackwards, 1);
}

#[test]
fn b_a_final_epoch_below_a_granted_one_is_caught() {
    let r = run(vec![w(10, 1, 5), fin(100, None, vec![("t", vec![ps(0, 2, 4, &[2])])])]);
    caught(&r, Check::EpochWentBackwards, 1);
}

// (c) acknowledged metadata

fn metadata() -> Vec<Event> {
    vec![
        ack(10, MetadataOp::CreateTopic, "t", 10, Some(2)),
        ack(20, MetadataOp::CreateTopic, "gone", 11, None),
        ack(30, MetadataOp::DeleteTopic, "gone", 12, None),
        ack(40, MetadataOp::Other, "t", 13, None),
    ]
}

#[test]
fn c_acknowledged_creates_and_deletes_in_the_final_state_pass() {
    let mut h = metadata();
    h.push(fin(100, Some(13), vec![("t", vec![ps(0, 1, 1, &[1]), ps(1, 2, 1, &[2])])]));
    clean(&run(h));
}

#[test]
fn c_a_lost_create_is_caught() {
    let mut h = metadata();
    h.push(fin(100, Some(13), vec![]));
    let r = run(h);
    caught(&r, Check::LostMetadata, 1);
    assert!(matches!(&r.history[r.violations[0].at].event, Event::MetadataAck { topic, .. } if topic == "t"));
}

#[test]
fn c_a_lost_delete_and_a_wrong_partition_count_are_caught() {
    let mut h = metadata();
    h.push(fin(100, Some(13), vec![("t", vec![ps(0, 1, 1, &[1])]), ("gone", vec![ps(0, 1, 1, &[1])])]));
    caught(&run(h), Check::LostMetadata, 2);
}

#[test]
fn c_a_final_state_older_than_an_ack_is_caught() {
    let mut h = metadata();
    h.push(fin(100, Some(12), vec![("t", vec![ps(0, 1, 1, &[1]), ps(1, 2, 1, &[2])])]));
    caught(&run(h), Check::LostMetadata, 1);
}

#[test]
fn c_the_highest_version_decides_whatever_the_ack_order() {
    // The delete's answer arrived first, but the create is older in the log.
    let h = vec![
        ack(20, MetadataOp::DeleteTopic, "x", 12, None),
        ack(30, MetadataOp::CreateTopic, "x", 11, None),
        fin(100, None, vec![]),
    ];
    clean(&run(h));
}

#[test]
fn c_without_a_final_state_nothing_is_claimed_and_a_note_says_so() {
    let r = run(metadata());
    clean(&r);
    assert!(r.notes.iter().any(|n| n.contains("no final_state")), "{r}");
}

// (d) leader from the ISR

#[test]
fn d_leaders_from_the_isr_pass() {
    let h = vec![
        obs(10, 0, 1, 1, None), // first view: nothing to compare with
        obs(20, 0, 2, 2, Some(&[1, 2])),
        obs(30, 0, -1, 3, Some(&[2])), // no leader: never a violation
        obs(40, 0, 2, 4, Some(&[2])),
    ];
    clean(&run(h));
}

#[test]
fn d_a_leader_from_outside_the_isr_is_caught() {
    let r = run(vec![obs(10, 0, 1, 1, None), obs(20, 0, 3, 2, Some(&[1, 2]))]);
    caught(&r, Check::LeaderOutsideIsr, 1);
    assert_eq!(r.history[r.violations[0].at].line, 2);
}

#[test]
fn d_unclean_topics_may_elect_outside_the_isr() {
    let mut create = ack(1, MetadataOp::CreateTopic, "t", 5, None);
    if let Event::MetadataAck { unclean_leader_election, .. } = &mut create {
        *unclean_leader_election = true;
    }
    clean(&run(vec![create, obs(20, 0, 3, 2, Some(&[1, 2]))]));
    // Known from the final state only.
    let mut f = fin(100, None, vec![("t", vec![ps(0, 3, 2, &[3])])]);
    if let Event::FinalState { topics, .. } = &mut f {
        topics.values_mut().for_each(|t| t.unclean_leader_election = true);
    }
    clean(&run(vec![obs(20, 0, 3, 2, Some(&[1, 2])), f]));
}

// (e) liveness after heal

fn heal_then(live: Option<Vec<i32>>, after: Vec<Event>) -> Vec<Event> {
    let mut h = vec![
        ack(1, MetadataOp::CreateTopic, "t", 5, Some(2)),
        Event::Nemesis { t_ns: 500, what: "cut".into() },
        Event::Healed { t_ns: 1_000, live_brokers: live },
    ];
    h.extend(after);
    h.push(fin(5_000, None, vec![("t", vec![ps(0, 1, 7, &[1, 2]), ps(1, -1, 9, &[3])])]));
    h
}

#[test]
fn e_leaders_within_the_bound_pass() {
    // Partition 1's only ISR member (3) is not live: it is not expected to get a leader.
    clean(&run(heal_then(Some(vec![1, 2]), vec![present(1_500, 0, Some(1))])));
    // Every broker live (the default): both partitions need a leader.
    clean(&run(heal_then(None, vec![present(1_200, 0, None), present(2_000, 1, Some(3))])));
}

#[test]
fn e_a_partition_leaderless_past_the_bound_is_caught() {
    let r = run(heal_then(None, vec![present(1_200, 0, None)]));
    caught(&r, Check::NoLeaderAfterHeal, 1);
    assert!(r.violations[0].message.contains("t/1"), "{r}");
    // Too late, or "present" with no leader, does not count.
    caught(
        &run(heal_then(None, vec![present(1_200, 0, None), present(2_001, 1, Some(3))])),
        Check::NoLeaderAfterHeal,
        1,
    );
    caught(
        &run(heal_then(None, vec![present(1_200, 0, None), present(1_300, 1, Some(-1))])),
        Check::NoLeaderAfterHeal,
        1,
    );
}

#[test]
fn e_a_heal_cut_short_by_a_fault_or_the_end_is_not_judged() {
    let r = run(heal_then(None, vec![Event::Nemesis { t_ns: 1_900, what: "kill -9".into() }]));
    clean(&r);
    assert!(r.notes.iter().any(|n| n.contains("liveness not judged")), "{r}");
    let h = vec![
        Event::Healed { t_ns: 1_000, live_brokers: None },
        fin(1_500, None, vec![("t", vec![ps(0, -1, 1, &[1])])]),
    ];
    let r = run(h);
    clean(&r);
    assert!(r.notes.iter().any(|n| n.contains("history ends")), "{r}");
}

// Output and files

#[test]
fn a_violation_is_printed_with_five_events_each_side() {
    let mut h: Vec<Event> = (0..20).map(|i| refused(100 + i, 3)).collect();
    h.push(w(109, 1, 2));
    h.push(w(110, 2, 1)); // sorted after refused(110), to index 12: overlapping
    let r = run(h);
    caught(&r, Check::OverlappingLeaders, 1);
    let v = &r.violations[0];
    assert_eq!(v.at, 12);
    assert_eq!(r.context(v), 7..18);
    let text = r.to_string();
    assert_eq!(text.matches(">>").count(), 1);
    for i in 0..r.history.len() {
        let shown = text.contains(&r.history[i].event.to_json());
        assert_eq!(shown, (7..18).contains(&i), "event {i} shown={shown}:\n{text}");
    }
}

#[test]
fn a_history_file_is_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("h.jsonl");
    let rec = Recorder::create(&path).expect("create");
    let mut h = succession();
    h.push(w(25, 1, 1));
    // Written out of order, as merged per-process files would be.
    h.reverse();
    for e in &h {
        rec.record(e).expect("record");
    }
    rec.flush().expect("flush");
    let r = check_file(&path, &CheckerConfig::default()).expect("check");
    caught(&r, Check::OverlappingLeaders, 1);
    assert_eq!(r.history[r.violations[0].at].line, 1, "line numbers are the file's");
}
