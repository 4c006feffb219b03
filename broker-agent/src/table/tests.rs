//! Table and check tests: no network, no session.

use std::sync::Arc;
use std::time::{Duration, Instant};

use baton_proto::v1::{BrokerInfo, LeadershipUpdate, PartitionInfo};

use super::*;
use crate::checks::kafka_error;
use crate::lease::{Lease, now_nanos};

const ME: i32 = 1;

fn info(topic: &str, partition: i32, leader: i32, epoch: i32) -> PartitionInfo {
    PartitionInfo {
        topic_id: 0,
        topic: topic.into(),
        partition,
        leader,
        leader_epoch: epoch,
        partition_epoch: epoch,
        replicas: vec![1, 2, 3],
        isr: vec![1, 2, 3],
        leader_endpoint: if leader >= 0 { format!("b{leader}:9092") } else { String::new() },
    }
}

fn update(version: u64, full: bool, partitions: Vec<PartitionInfo>, deleted: &[&str]) -> LeadershipUpdate {
    LeadershipUpdate {
        metadata_version: version,
        full,
        partitions,
        deleted_topics: deleted.iter().map(|s| (*s).to_owned()).collect(),
        brokers: Vec::new(),
        partial: false,
    }
}

fn leased(lease_len: Duration) -> Lease {
    let lease = Lease::new();
    lease.record_send(1, now_nanos());
    lease.on_ack(1, lease_len);
    lease
}

fn kinds(applied: &Applied) -> Vec<(String, i32, ChangeKind)> {
    let mut v: Vec<_> =
        applied.event.changes.iter().map(|c| (c.view.topic.to_string(), c.view.partition, c.kind)).collect();
    v.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    v
}

#[test]
fn produce_allowed_only_for_led_partition_with_valid_lease() {
    let table = Table::new(ME);
    let lease = leased(Duration::from_secs(30));
    table.apply(&update(5, true, vec![info("t", 0, ME, 7), info("t", 1, 2, 4)], &[])).expect("applied");
    assert_eq!(table.check_produce(&lease, "t", 0), Ok(7));
    assert_eq!(table.check_fetch(&lease, "t", 0, 7), Ok(7));
    assert_eq!(table.check_fetch(&lease, "t", 0, -1), Ok(7));
}

#[test]
fn not_leader_is_code_6_with_leader_hint() {
    let table = Table::new(ME);
    let lease = leased(Duration::from_secs(30));
    table.apply(&update(5, true, vec![info("t", 1, 2, 4), info("t", 2, -1, 9)], &[])).expect("applied");
    let refusal = table.check_produce(&lease, "t", 1).expect_err("refused");
    assert_eq!(refusal.reason, RefusalReason::NotLeader);
    assert_eq!(refusal.kafka_error_code(), kafka_error::NOT_LEADER_OR_FOLLOWER);
    assert_eq!(refusal.leader, Some((2, Arc::from("b2:9092"))));
    assert_eq!(refusal.leader_epoch, 4);
    // No leader at all: still 6, no hint.
    let leaderless = table.check_produce(&lease, "t", 2).expect_err("refused");
    assert_eq!((leaderless.reason, leaderless.leader, leaderless.leader_epoch), (RefusalReason::NotLeader, None, 9));
}

#[test]
fn unknown_topic_or_partition_is_code_3() {
    let table = Table::new(ME);
    let lease = leased(Duration::from_secs(30));
    table.apply(&update(5, true, vec![info("t", 0, ME, 1)], &[])).expect("applied");
    for (topic, partition) in [("nope", 0), ("t", 1), ("t", -1), ("t", i32::MAX)] {
        let refusal = table.check_produce(&lease, topic, partition).expect_err("refused");
        assert_eq!(refusal.kafka_error_code(), kafka_error::UNKNOWN_TOPIC_OR_PARTITION, "{topic}-{partition}");
        let refusal = table.check_fetch(&lease, topic, partition, 1).expect_err("refused");
        assert_eq!(refusal.reason, RefusalReason::UnknownTopicOrPartition);
    }
}

#[test]
fn fetch_epoch_older_is_74_newer_is_75() {
    let table = Table::new(ME);
    let lease = leased(Duration::from_secs(30));
    table.apply(&update(5, true, vec![info("t", 0, ME, 7), info("t", 1, 2, 7)], &[])).expect("applied");
    let fenced = table.check_fetch(&lease, "t", 0, 6).expect_err("refused");
    assert_eq!(
        (fenced.reason, fenced.kafka_error_code(), fenced.leader_epoch),
        (RefusalReason::FencedLeaderEpoch, 74, 7)
    );
    let unknown = table.check_fetch(&lease, "t", 0, 8).expect_err("refused");
    assert_eq!((unknown.reason, unknown.kafka_error_code()), (RefusalReason::UnknownLeaderEpoch, 75));
    // The epoch is compared before leadership: a follower still says 74/75.
    assert_eq!(table.check_fetch(&lease, "t", 1, 3).expect_err("refused").kafka_error_code(), 74);
    // A matching epoch on a partition led elsewhere is a plain 6.
    assert_eq!(table.check_fetch(&lease, "t", 1, 7).expect_err("refused").kafka_error_code(), 6);
}

#[test]
fn lapsed_lease_refuses_with_lease_expired() {
    let table = Table::new(ME);
    let lease = leased(Duration::from_millis(50));
    table.apply(&update(5, true, vec![info("t", 0, ME, 3)], &[])).expect("applied");
    // Wait on the condition, with a generous limit, rather than sleeping a fixed time.
    let start = Instant::now();
    let refusal = loop {
        match table.check_produce(&lease, "t", 0) {
            Err(refusal) => break refusal,
            Ok(_) if start.elapsed() < Duration::from_secs(10) => std::thread::sleep(Duration::from_millis(2)),
            Ok(_) => panic!("lease never lapsed"),
        }
    };
    assert_eq!(refusal, NotLeader { leader: None, leader_epoch: 3, reason: RefusalReason::LeaseExpired });
    assert_eq!(refusal.kafka_error_code(), 6);
    assert_eq!(table.check_fetch(&lease, "t", 0, 3).expect_err("refused").reason, RefusalReason::LeaseExpired);
    // A fresh grant restores it.
    lease.record_send(2, now_nanos());
    lease.on_ack(2, Duration::from_secs(30));
    assert_eq!(table.check_produce(&lease, "t", 0), Ok(3));
}

#[test]
fn suspended_lease_refuses_at_once() {
    let table = Table::new(ME);
    let lease = leased(Duration::from_secs(30));
    table.apply(&update(5, true, vec![info("t", 0, ME, 3)], &[])).expect("applied");
    assert!(table.check_produce(&lease, "t", 0).is_ok());
    lease.suspend();
    assert_eq!(table.check_produce(&lease, "t", 0).expect_err("refused").reason, RefusalReason::LeaseExpired);
}

#[test]
fn full_then_delta_semantics() {
    let table = Table::new(ME);
    let applied = table
        .apply(&update(10, true, vec![info("a", 0, ME, 1), info("a", 1, 2, 1), info("b", 0, 3, 1)], &[]))
        .expect("applied");
    assert_eq!(
        kinds(&applied),
        vec![
            ("a".into(), 0, ChangeKind::BecameLeader),
            ("a".into(), 1, ChangeKind::LeaderChanged),
            ("b".into(), 0, ChangeKind::LeaderChanged)
        ]
    );
    assert_eq!(table.partitions_led(), 1);
    assert_eq!(table.metadata_version(), 10);

    // A delta upserts: a.1 moves to us, a new partition a.2 appears; the rest stays.
    let applied = table.apply(&update(11, false, vec![info("a", 1, ME, 2), info("a", 2, 3, 1)], &[])).expect("applied");
    assert_eq!(
        kinds(&applied),
        vec![("a".into(), 1, ChangeKind::BecameLeader), ("a".into(), 2, ChangeKind::LeaderChanged)]
    );
    assert!(!applied.lost_leadership);
    assert_eq!(table.view().len(), 4);
    assert_eq!(table.partitions_led(), 2);

    // Old or equal deltas are ignored.
    assert!(table.apply(&update(11, false, vec![info("a", 0, 2, 9)], &[])).is_none());
    assert!(table.apply(&update(3, false, vec![info("a", 0, 2, 9)], &[])).is_none());
    assert_eq!(table.partition("a", 0).map(|v| v.leader), Some(ME));

    // Leadership taken away: BecameFollower, and the session must ack at once.
    let applied = table.apply(&update(12, false, vec![info("a", 0, 2, 2)], &[])).expect("applied");
    assert_eq!(kinds(&applied), vec![("a".into(), 0, ChangeKind::BecameFollower)]);
    assert!(applied.lost_leadership);
    assert_eq!(table.partitions_led(), 1);

    // An ISR-only change is Updated; an unchanged partition produces nothing.
    let mut shrunk = info("a", 1, ME, 2);
    shrunk.isr = vec![1];
    let applied = table.apply(&update(13, false, vec![shrunk, info("a", 2, 3, 1)], &[])).expect("applied");
    assert_eq!(kinds(&applied), vec![("a".into(), 1, ChangeKind::Updated)]);

    // A full update replaces everything: absent partitions and topics are removed.
    let applied = table.apply(&update(14, true, vec![info("a", 0, 2, 2)], &[])).expect("applied");
    assert_eq!(
        kinds(&applied),
        vec![
            ("a".into(), 1, ChangeKind::Removed),
            ("a".into(), 2, ChangeKind::Removed),
            ("b".into(), 0, ChangeKind::Removed)
        ]
    );
    assert_eq!(&*applied.event.deleted_topics, &[Arc::<str>::from("b")]);
    assert!(applied.lost_leadership, "a.1 was led here");
    assert_eq!(table.partitions_led(), 0);
    assert_eq!(table.view().len(), 1);
    let lease = leased(Duration::from_secs(30));
    assert_eq!(table.check_produce(&lease, "a", 1).expect_err("refused").kafka_error_code(), 3);
    // A full update is applied even when its version is not newer.
    assert!(table.apply(&update(14, true, vec![info("a", 0, ME, 3)], &[])).is_some());
    assert_eq!(table.check_produce(&lease, "a", 0), Ok(3));
}

#[test]
fn deleted_topics_are_removed_and_can_be_recreated() {
    let table = Table::new(ME);
    let lease = leased(Duration::from_secs(30));
    table.apply(&update(1, true, vec![info("gone", 0, ME, 1), info("gone", 1, 2, 1), info("kept", 0, ME, 1)], &[]));
    let applied = table.apply(&update(2, false, vec![], &["gone", "never-existed"])).expect("applied");
    assert_eq!(kinds(&applied), vec![("gone".into(), 0, ChangeKind::Removed), ("gone".into(), 1, ChangeKind::Removed)]);
    assert_eq!(&*applied.event.deleted_topics, &[Arc::<str>::from("gone")]);
    assert!(applied.lost_leadership);
    assert_eq!(table.check_produce(&lease, "gone", 0).expect_err("refused").kafka_error_code(), 3);
    assert_eq!(table.check_produce(&lease, "kept", 0), Ok(1));
    // Deleted and re-created in one delta: the new partitions are fresh.
    table.apply(&update(3, false, vec![info("kept", 0, 2, 5)], &["kept"])).expect("applied");
    assert_eq!(table.partition("kept", 0).map(|v| (v.leader, v.leader_epoch)), Some((2, 5)));
}

#[test]
fn each_table_answers_from_its_own_current_map_in_every_thread() {
    let lease = leased(Duration::from_secs(30));
    // More tables than a thread keeps maps of, the same topic led differently in each.
    let tables: Vec<Table> = (0..MAP_CACHE_SLOTS as i32 + 2)
        .map(|i| {
            let table = Table::new(ME);
            table.apply(&update(1, true, vec![info("t", 0, if i % 2 == 0 { ME } else { 2 }, i)], &[]));
            table
        })
        .collect();
    for _ in 0..3 {
        for (i, table) in (0..).zip(&tables) {
            let expected = if i % 2 == 0 { Ok(i) } else { Err(RefusalReason::NotLeader) };
            assert_eq!(table.check_produce(&lease, "t", 0).map_err(|e| e.reason), expected);
        }
    }
    // A thread that holds a copy of the map sees the update once it is applied.
    let table = &tables[0];
    let (checked, checked_rx) = std::sync::mpsc::channel();
    let (applied, applied_rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        let lease = &lease;
        s.spawn(move || {
            assert_eq!(table.check_produce(lease, "t", 0), Ok(0));
            checked.send(()).expect("send");
            applied_rx.recv().expect("recv");
            let refusal = table.check_produce(lease, "t", 0).expect_err("deleted");
            assert_eq!(refusal.reason, RefusalReason::UnknownTopicOrPartition);
        });
        checked_rx.recv().expect("recv");
        table.apply(&update(2, false, vec![], &["t"])).expect("applied");
        applied.send(()).expect("send");
    });
    assert_eq!(table.check_produce(&lease, "t", 0).expect_err("deleted").kafka_error_code(), 3);
}

#[test]
fn leader_endpoint_falls_back_to_broker_map() {
    let table = Table::new(ME);
    let lease = leased(Duration::from_secs(30));
    let mut p = info("t", 0, 4, 2);
    p.leader_endpoint.clear();
    let mut u = update(1, true, vec![p], &[]);
    u.brokers.push(BrokerInfo { id: 4, endpoint: "b4:9092".into(), ..Default::default() });
    table.apply(&u).expect("applied");
    assert_eq!(table.check_produce(&lease, "t", 0).expect_err("refused").leader, Some((4, Arc::from("b4:9092"))));
}

#[test]
fn malformed_partitions_are_skipped() {
    let table = Table::new(ME);
    let applied = table
        .apply(&update(
            1,
            true,
            vec![
                info("t", -1, ME, 1),
                info("t", MAX_PARTITION_INDEX + 1, ME, 1),
                info("", 0, ME, 1),
                info("t", 0, ME, 1),
            ],
            &[],
        ))
        .expect("applied");
    assert_eq!(applied.rejected, 3);
    assert_eq!(table.view().len(), 1);
}

#[test]
fn progress_dirty_set_is_bounded_and_drained() {
    let table = Table::new(ME);
    let parts: Vec<_> = (0..5).map(|p| info("t", p, ME, 1)).collect();
    table.apply(&update(1, true, parts, &[])).expect("applied");
    // Many records of one partition queue it once, with the latest offset.
    for offset in 0..100 {
        table.record_progress("t", 0, offset);
    }
    assert_eq!(table.dirty_len(), 1);
    for p in 1..5 {
        table.record_progress("t", p, 10 + i64::from(p));
    }
    assert_eq!(table.dirty_len(), 5);
    // At most `max` per heartbeat, the rest next time, oldest first.
    let first = table.drain_progress(2);
    assert_eq!(first.iter().map(|p| (p.partition, p.log_end_offset)).collect::<Vec<_>>(), vec![(0, 99), (1, 11)]);
    let second = table.drain_progress(10);
    assert_eq!(second.len(), 3);
    assert!(table.drain_progress(10).is_empty());
    // Clean again: the next record re-queues.
    table.record_progress("t", 0, 200);
    assert_eq!(table.drain_progress(10).iter().map(|p| p.log_end_offset).collect::<Vec<_>>(), vec![200]);
    // A new controller gets everything again.
    table.remark_all_progress();
    assert_eq!(table.drain_progress(10).len(), 5);
}

#[test]
fn progress_queue_bound_drops_and_retries() {
    let table = Table::with_dirty_bound(ME, 2);
    let parts: Vec<_> = (0..3).map(|p| info("t", p, ME, 1)).collect();
    table.apply(&update(1, true, parts, &[])).expect("applied");
    for p in 0..3 {
        table.record_progress("t", p, 1);
    }
    assert_eq!(table.dirty_len(), 2);
    assert_eq!(table.progress_dropped(), 1);
    table.drain_progress(10);
    // The dropped partition was left clean, so its next record gets in.
    table.record_progress("t", 2, 5);
    assert_eq!(
        table.drain_progress(10).iter().map(|p| (p.partition, p.log_end_offset)).collect::<Vec<_>>(),
        vec![(2, 5)]
    );
}

#[test]
fn progress_survives_updates_and_unknown_partitions_are_adopted() {
    let table = Table::new(ME);
    table.record_progress("later", 3, 42);
    table.apply(&update(1, true, vec![info("t", 0, ME, 1)], &[])).expect("applied");
    table.record_progress("t", 0, 7);
    // Leadership change on the same partition keeps its progress slot.
    table.apply(&update(2, false, vec![info("t", 0, 2, 2)], &[])).expect("applied");
    assert_eq!(table.drain_progress(10).iter().map(|p| p.log_end_offset).collect::<Vec<_>>(), vec![7]);
    table.apply(&update(3, false, vec![info("later", 3, 2, 1)], &[])).expect("applied");
    let drained = table.drain_progress(10);
    assert_eq!(
        drained.iter().map(|p| (p.topic.as_str(), p.partition, p.log_end_offset)).collect::<Vec<_>>(),
        vec![("later", 3, 42)]
    );
    // Progress of a partition removed before the heartbeat is not sent.
    table.record_progress("t", 0, 8);
    table.apply(&update(4, false, vec![], &["t"])).expect("applied");
    assert!(table.drain_progress(10).is_empty());
}

#[test]
fn same_epoch_reassertion_is_no_event_but_epoch_bump_is() {
    let table = Table::new(ME);
    table.apply(&update(1, true, vec![info("t", 0, ME, 1)], &[])).expect("applied");
    let applied = table.apply(&update(2, true, vec![info("t", 0, ME, 1)], &[])).expect("applied");
    assert!(applied.event.changes.is_empty());
    let applied = table.apply(&update(3, false, vec![info("t", 0, ME, 2)], &[])).expect("applied");
    assert_eq!(kinds(&applied), vec![("t".into(), 0, ChangeKind::BecameLeader)]);
    assert_eq!(table.partitions_led(), 1);
}

#[test]
fn broker_endpoints_follow_full_and_delta_updates() {
    let table = Table::new(1);
    let broker = |id: i32, endpoint: &str| BrokerInfo { id, endpoint: endpoint.into(), ..Default::default() };
    let mut full = update(1, true, vec![info("t", 0, 1, 1)], &[]);
    full.brokers = vec![broker(2, "b2:9092"), broker(1, "b1:9092")];
    table.apply(&full).expect("applied");
    let ids = |t: &Table| t.broker_endpoints().into_iter().map(|(id, e)| (id, e.to_string())).collect::<Vec<_>>();
    assert_eq!(ids(&table), vec![(1, "b1:9092".into()), (2, "b2:9092".into())], "sorted by id");
    let mut delta = update(2, false, Vec::new(), &[]);
    delta.brokers = vec![broker(2, ""), broker(3, "b3:9092")];
    table.apply(&delta).expect("applied");
    assert_eq!(ids(&table), vec![(1, "b1:9092".into()), (3, "b3:9092".into())], "an empty endpoint removes");
}
