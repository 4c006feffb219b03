use super::*;
use baton_proto::v1::TopicConfig;
use serde_json::{Value, json};

fn parsed<T: Serialize>(view: &T) -> Value {
    let line = to_json_line(view);
    assert!(!line.contains('\n'), "one line: {line}");
    match serde_json::from_str(&line) {
        Ok(v) => v,
        Err(e) => panic!("not JSON ({e}): {line}"),
    }
}

fn partition(topic: &str, p: i32, leader: i32, replicas: Vec<i32>, isr: Vec<i32>) -> PartitionInfo {
    PartitionInfo {
        topic_id: 0,
        topic: topic.to_owned(),
        partition: p,
        leader,
        leader_epoch: 4,
        partition_epoch: 9,
        replicas,
        isr,
        leader_endpoint: if leader < 0 { String::new() } else { format!("10.0.0.{leader}:9092") },
    }
}

fn description() -> TopicDescription {
    TopicDescription {
        name: "orders".to_owned(),
        topic_id: 77,
        config: Some(TopicConfig { unclean_leader_election: true }),
        // Deliberately out of order: output is by partition index.
        partitions: vec![
            partition("orders", 1, -1, vec![2, 3, 1], vec![]),
            partition("orders", 0, 1, vec![1, 2, 3], vec![1, 2, 3]),
        ],
    }
}

fn broker(id: i32, state: BrokerState) -> BrokerInfo {
    BrokerInfo {
        id,
        state: state as i32,
        epoch: 100 + id as u64,
        endpoint: format!("10.0.0.{id}:9092"),
        rack: "rack-a".to_owned(),
        incarnation_id: "inc".to_owned(),
        last_heartbeat_age_ms: 12,
    }
}

#[test]
fn describe_json_shape() {
    let v = parsed(&topic_json(&description(), 55));
    assert_eq!(v["name"], "orders");
    assert_eq!(v["topic_id"], 77);
    assert_eq!(v["metadata_version"], 55);
    assert_eq!(v["unclean_leader_election"], true);
    let partitions = v["partitions"].as_array().map(Vec::len);
    assert_eq!(partitions, Some(2));
    let p0 = &v["partitions"][0];
    for (key, want) in [
        ("partition", json!(0)),
        ("leader", json!(1)),
        ("leader_epoch", json!(4)),
        ("partition_epoch", json!(9)),
        ("replicas", json!([1, 2, 3])),
        ("isr", json!([1, 2, 3])),
    ] {
        assert_eq!(p0[key], want, "{key}");
    }
    let p1 = &v["partitions"][1];
    assert_eq!(p1["partition"], 1);
    assert_eq!(p1["leader"], -1, "no leader is -1");
    assert_eq!(p1["isr"], json!([]));
    assert_eq!(p1["replicas"], json!([2, 3, 1]), "replica order is preserved");
}

#[test]
fn describe_json_fills_missing_topic_names() {
    let mut d = description();
    d.partitions[0].topic.clear();
    let v = parsed(&topic_json(&d, 1));
    assert_eq!(v["partitions"][1]["topic"], "orders");
}

#[test]
fn leader_json_shape() {
    let r = GetPartitionLeaderResponse {
        topic: "orders".to_owned(),
        partition: 3,
        leader: 2,
        leader_epoch: 7,
        endpoint: "10.0.0.2:9092".to_owned(),
        metadata_version: 120,
    };
    let v = parsed(&leader_json(&r));
    assert_eq!(
        v,
        json!({
            "topic": "orders", "partition": 3, "leader": 2, "leader_epoch": 7,
            "endpoint": "10.0.0.2:9092", "metadata_version": 120
        })
    );
}

#[test]
fn broker_state_names() {
    assert_eq!(broker_state_name(BrokerState::Alive as i32), "ALIVE");
    assert_eq!(broker_state_name(BrokerState::Fenced as i32), "FENCED");
    assert_eq!(broker_state_name(BrokerState::ControlledShutdown as i32), "CONTROLLED_SHUTDOWN");
    assert_eq!(broker_state_name(BrokerState::Drained as i32), "DRAINED");
    assert_eq!(broker_state_name(BrokerState::Unspecified as i32), "UNSPECIFIED");
    assert_eq!(broker_state_name(42), "UNKNOWN(42)");
}

#[test]
fn broker_list_json_shape() {
    let brokers = vec![broker(3, BrokerState::Fenced), broker(1, BrokerState::Alive)];
    let v = parsed(&broker_list_json(&brokers));
    let list = v.as_array().cloned().unwrap_or_default();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["id"], 1, "sorted by id");
    assert_eq!(list[0]["state"], "ALIVE");
    assert_eq!(list[0]["epoch"], 101);
    assert_eq!(list[0]["endpoint"], "10.0.0.1:9092");
    assert_eq!(list[0]["rack"], "rack-a");
    assert_eq!(list[0]["last_heartbeat_age_ms"], 12);
    assert_eq!(list[1]["id"], 3);
    assert_eq!(list[1]["state"], "FENCED");
}

fn quorum() -> DescribeQuorumResponse {
    let member = |id: u64, is_learner: bool| QuorumMember {
        id,
        address: format!("127.0.0.1:710{id}"),
        match_index: 40 + id,
        is_learner,
        last_contact_ms: if id == 1 { 0 } else { -1 },
    };
    DescribeQuorumResponse {
        leader: 2,
        term: 5,
        commit_index: 44,
        applied_index: 43,
        voters: vec![member(3, false), member(1, false), member(2, false)],
        learners: vec![member(4, true)],
        node_id: 1,
    }
}

#[test]
fn quorum_json_shape() {
    let v = parsed(&quorum_json(&quorum()));
    assert_eq!(v["leader"], 2);
    assert_eq!(v["term"], 5);
    assert_eq!(v["commit_index"], 44);
    assert_eq!(v["applied_index"], 43);
    assert_eq!(v["node_id"], 1);
    assert_eq!(v["voters"], json!([1, 2, 3]));
    assert_eq!(v["learners"], json!([4]));
    assert_eq!(
        v["members"][1],
        json!({
            "id": 2, "address": "127.0.0.1:7102", "role": "leader", "match_index": 42, "is_learner": false,
            "last_contact_ms": -1
        })
    );
    assert_eq!(v["members"][3]["role"], "learner");
}

#[test]
fn topic_list_and_delete_json_shape() {
    let topics = vec![
        TopicSummary { name: "b".to_owned(), topic_id: 2, partitions: 3, replication_factor: 2 },
        TopicSummary { name: "a".to_owned(), topic_id: 1, partitions: 1, replication_factor: 1 },
    ];
    let v = parsed(&topic_list_json(&topics));
    assert_eq!(
        v,
        json!([
            {"name": "a", "topic_id": 1, "partitions": 1, "replication_factor": 1},
            {"name": "b", "topic_id": 2, "partitions": 3, "replication_factor": 2},
        ])
    );
    let v = parsed(&DeletedJson { deleted: "a".to_owned(), metadata_version: 9 });
    assert_eq!(v, json!({"deleted": "a", "metadata_version": 9}));
}

#[test]
fn watch_json_shape() {
    let u = LeadershipUpdate {
        metadata_version: 12,
        full: false,
        partitions: vec![partition("orders", 0, 2, vec![1, 2], vec![2])],
        deleted_topics: vec!["gone".to_owned()],
        brokers: vec![broker(1, BrokerState::Fenced)],
        partial: false,
    };
    let v = parsed(&watch_json(&u));
    assert_eq!(v["metadata_version"], 12);
    assert_eq!(v["full"], false);
    assert_eq!(v["partitions"][0]["topic"], "orders");
    assert_eq!(v["partitions"][0]["leader"], 2);
    assert_eq!(v["partitions"][0]["isr"], json!([2]));
    assert_eq!(v["deleted_topics"], json!(["gone"]));
    assert_eq!(v["brokers"][0]["state"], "FENCED");
}

#[test]
fn election_json_and_failures() {
    let ok = ElectionResult {
        topic: "t".to_owned(),
        partition: 1,
        error: ErrorCode::Unspecified as i32,
        message: String::new(),
        leader: 2,
        leader_epoch: 3,
    };
    let not_needed = ElectionResult { partition: 0, error: ErrorCode::ElectionNotNeeded as i32, ..ok.clone() };
    let failed =
        ElectionResult { partition: 2, error: ErrorCode::EligibleLeadersNotAvailable as i32, leader: -1, ..ok.clone() };
    let v = parsed(&election_json("preferred", &[ok.clone(), not_needed.clone(), failed.clone()], 8));
    assert_eq!(v["metadata_version"], 8);
    assert_eq!(v["results"][0]["error"], "ELECTION_NOT_NEEDED");
    assert_eq!(v["results"][1]["error"], Value::Null);
    assert_eq!(v["results"][1]["leader"], 2);
    assert_eq!(v["results"][2]["error"], "ELIGIBLE_LEADERS_NOT_AVAILABLE");
    assert!(!election_failed(&ok));
    assert!(!election_failed(&not_needed));
    assert!(election_failed(&failed));
}

#[test]
fn describe_table_is_aligned_with_a_header() {
    let text = topic_table(&topic_json(&description(), 1));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3);
    assert!(lines[0].starts_with("TOPIC   PARTITION  LEADER  EPOCH"), "{text}");
    assert!(lines[1].starts_with("orders  0          1       4"), "{text}");
    assert!(lines[2].contains("none"), "{text}");
    // Columns line up: every ISR cell starts where the ISR header does.
    let col = lines[0].find("ISR").unwrap_or_default();
    assert_eq!(&lines[1][col..col + 5], "1,2,3");
    assert_eq!(&lines[2][col..col + 1], "-");
}

#[test]
fn other_tables_have_headers() {
    let brokers = broker_list_json(&[broker(1, BrokerState::Alive)]);
    assert!(broker_list_table(&brokers).starts_with("ID  STATE  EPOCH"));
    let q = quorum_table(&quorum_json(&quorum()));
    assert!(q.starts_with("LEADER  TERM"), "{q}");
    assert!(q.contains("127.0.0.1:7102  leader"), "{q}");
    let mut watch = WatchTable::default();
    let u = LeadershipUpdate {
        metadata_version: 3,
        full: true,
        partitions: vec![partition("t", 0, 1, vec![1], vec![1])],
        deleted_topics: vec![],
        brokers: vec![],
        partial: false,
    };
    let first = watch.lines(&u);
    assert!(first[0].starts_with("VERSION"));
    assert!(first[1].starts_with("# version 3: full snapshot"));
    assert!(first[2].starts_with("3 "));
    assert!(!watch.lines(&u)[0].starts_with("VERSION"), "header once");
}

#[test]
fn error_line_is_one_line() {
    let e = anyhow::anyhow!("topic \"x\" not found (TOPIC_NOT_FOUND)");
    assert_eq!(error_line(&e), "error: topic \"x\" not found (TOPIC_NOT_FOUND)");
    let e = anyhow::anyhow!("first\nsecond").context("doing it");
    assert_eq!(error_line(&e), "error: doing it: first second");
}
