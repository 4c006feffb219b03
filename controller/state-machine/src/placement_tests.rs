use std::collections::{BTreeMap, BTreeSet};

use super::*;

fn cands<'a>(brokers: &[(BrokerId, &'a str)]) -> Vec<Candidate<'a>> {
    brokers.iter().map(|&(id, rack)| Candidate { id, rack, leader_count: 0 }).collect()
}

fn ids(list: &[Candidate<'_>]) -> Vec<BrokerId> {
    list.iter().map(|c| c.id).collect()
}

/// Property: the rack-alternated list and the assignment match Kafka's own
/// test vector (AdminRackAwareTest), so operators get Kafka's layout.
#[test]
fn matches_kafka_rack_aware_reference_vector() {
    let brokers = cands(&[(0, "rack1"), (1, "rack3"), (2, "rack3"), (3, "rack2"), (4, "rack2"), (5, "rack1")]);
    let list = rack_alternated(&brokers);
    assert_eq!(ids(&list), vec![0, 3, 1, 5, 4, 2]);
    let got = assign_from_list(&list, 7, 3, 0, 0);
    let want: Vec<Vec<BrokerId>> =
        vec![vec![0, 3, 1], vec![3, 1, 5], vec![1, 5, 4], vec![5, 4, 2], vec![4, 2, 0], vec![2, 0, 3], vec![0, 4, 2]];
    assert_eq!(got, want);
}

/// Property: every partition uses as many racks as it can before repeating
/// one, replicas are distinct, and the replication factor is exact.
#[test]
fn replicas_spread_over_racks_before_repeating_one() {
    let brokers = cands(&[(1, "a"), (2, "a"), (3, "a"), (4, "a"), (5, "b"), (6, "c"), (7, "c")]);
    let rack: BTreeMap<BrokerId, &str> = brokers.iter().map(|c| (c.id, c.rack)).collect();
    for rf in 1..=brokers.len() {
        for seed in 0..10 {
            let got = assign_replicas(&brokers, 50, rf, seed).expect("valid replication factor");
            assert_eq!(got.len(), 50);
            for replicas in &got {
                assert_eq!(replicas.len(), rf);
                let distinct: BTreeSet<_> = replicas.iter().collect();
                assert_eq!(distinct.len(), rf, "replicas distinct: {replicas:?}");
                let racks: BTreeSet<_> = replicas.iter().map(|b| rack[b]).collect();
                assert_eq!(racks.len(), rf.min(3), "rack spread of {replicas:?}");
            }
        }
    }
}

/// Property: within one topic, leaders are spread evenly (counts differ by at
/// most one), and the first leader goes to the least loaded broker.
#[test]
fn leaders_spread_evenly_starting_at_the_least_loaded_broker() {
    let mut brokers = cands(&[(1, ""), (2, ""), (3, ""), (4, ""), (5, "")]);
    for (c, load) in brokers.iter_mut().zip([7, 3, 9, 3, 8]) {
        c.leader_count = load;
    }
    let got = assign_replicas(&brokers, 12, 2, 42).expect("valid");
    // Brokers 2 and 4 tie at 3 leaders; 2 comes first in the list.
    assert_eq!(got[0][0], 2);
    let mut counts: BTreeMap<BrokerId, usize> = BTreeMap::new();
    for replicas in &got {
        *counts.entry(replicas[0]).or_default() += 1;
    }
    let (min, max) = (counts.values().min(), counts.values().max());
    assert_eq!(counts.len(), 5);
    assert!(max.zip(min).is_some_and(|(max, min)| max - min <= 1), "{counts:?}");
}

/// Property: with one partition per topic, successive topics rotate leaders
/// over the brokers once the counts are fed back (the controller's case).
#[test]
fn successive_single_partition_topics_rotate_leaders() {
    let mut brokers = cands(&[(10, "x"), (11, "y"), (12, "x"), (13, "y")]);
    let mut leaders = Vec::new();
    for seed in 0..8 {
        let got = assign_replicas(&brokers, 1, 2, seed).expect("valid");
        let leader = got[0][0];
        leaders.push(leader);
        if let Some(c) = brokers.iter_mut().find(|c| c.id == leader) {
            c.leader_count += 1;
        }
    }
    let counts: BTreeMap<BrokerId, usize> = leaders.iter().fold(BTreeMap::new(), |mut m, l| {
        *m.entry(*l).or_default() += 1;
        m
    });
    assert!(counts.values().all(|&c| c == 2), "{leaders:?}");
}

/// Property: an impossible replication factor is an error, never a panic or a
/// repeated broker.
#[test]
fn replication_factor_out_of_range_is_refused() {
    let brokers = cands(&[(1, "a"), (2, "b")]);
    assert!(assign_replicas(&brokers, 3, 0, 0).is_err());
    assert!(assign_replicas(&brokers, 3, 3, 0).is_err());
    assert!(assign_replicas(&[], 3, 1, 0).is_err());
    // Duplicate candidates count once.
    let dup = cands(&[(1, "a"), (1, "a")]);
    assert!(assign_replicas(&dup, 1, 2, 0).is_err());
}

/// Property: placement is a pure function of its inputs (order of the
/// candidate slice does not matter).
#[test]
fn placement_is_deterministic_and_order_independent() {
    let a = cands(&[(3, "r2"), (1, "r1"), (2, "r2"), (4, "")]);
    let mut b = a.clone();
    b.reverse();
    assert_eq!(assign_replicas(&a, 20, 3, 9), assign_replicas(&b, 20, 3, 9));
}

/// Property: a single broker gets every partition with replication factor 1.
#[test]
fn single_broker_cluster() {
    let got = assign_replicas(&cands(&[(0, "")]), 4, 1, 123).expect("valid");
    assert_eq!(got, vec![vec![0]; 4]);
}
