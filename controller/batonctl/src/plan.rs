//! Replica movement plans for `broker decommission` and `rebalance`: pure
//! functions from the cluster's layout to reassignments, so the policy is
//! tested without a network.
//!
//! Each move replaces one replica in place (same position in the replica
//! list, so a preferred leader is replaced by a preferred leader), choosing
//! the broker that (1) is eligible (alive, not excluded), (2) holds no
//! replica of the partition, (3) adds a rack the partition lacks, if any can,
//! (4) holds the fewest replicas, then (5) the lowest id. Counts are updated
//! as the plan grows, so a plan spreads load instead of piling it on one
//! broker.

use std::collections::{BTreeMap, BTreeSet};

/// One partition as the planner sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionLayout {
    pub topic: String,
    pub partition: i32,
    pub replicas: Vec<i32>,
}

/// One planned reassignment: the partition's replicas after the move.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Move {
    pub topic: String,
    pub partition: i32,
    pub from: i32,
    pub to: i32,
    pub target: Vec<i32>,
}

pub struct Cluster<'a> {
    /// Brokers that may receive replicas, with their racks.
    pub eligible: &'a BTreeMap<i32, String>,
    /// Every broker's rack (also ineligible ones, for rack diversity).
    pub racks: &'a BTreeMap<i32, String>,
    pub partitions: &'a [PartitionLayout],
}

fn replica_counts(c: &Cluster<'_>) -> BTreeMap<i32, usize> {
    let mut counts: BTreeMap<i32, usize> = c.eligible.keys().map(|b| (*b, 0)).collect();
    for p in c.partitions {
        for r in &p.replicas {
            *counts.entry(*r).or_default() += 1;
        }
    }
    counts
}

/// The best new home for the replica of `p` at `position` (see module docs).
fn choose(c: &Cluster<'_>, counts: &BTreeMap<i32, usize>, replicas: &[i32], position: usize) -> Option<i32> {
    let racks_kept: BTreeSet<&str> = replicas
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != position)
        .filter_map(|(_, b)| c.racks.get(b).map(String::as_str))
        .collect();
    c.eligible
        .iter()
        .filter(|(b, _)| !replicas.contains(b))
        .min_by_key(|(b, rack)| (racks_kept.contains(rack.as_str()), counts.get(b).copied().unwrap_or(0), **b))
        .map(|(b, _)| *b)
}

/// Moves every replica off `broker`. Partitions for which no eligible broker
/// is free are left out (the caller reports them).
pub fn decommission(c: &Cluster<'_>, broker: i32) -> (Vec<Move>, Vec<PartitionLayout>) {
    let mut counts = replica_counts(c);
    let (mut moves, mut stuck) = (Vec::new(), Vec::new());
    for p in c.partitions {
        let Some(position) = p.replicas.iter().position(|r| *r == broker) else { continue };
        match choose(c, &counts, &p.replicas, position) {
            Some(to) => {
                let mut target = p.replicas.clone();
                target[position] = to;
                *counts.entry(to).or_default() += 1;
                moves.push(Move { topic: p.topic.clone(), partition: p.partition, from: broker, to, target });
            }
            None => stuck.push(p.clone()),
        }
    }
    (moves, stuck)
}

/// Moves replicas from the most to the least loaded eligible brokers until
/// their counts differ by at most one (or no move helps), at most
/// `max_moves`. Each partition moves at most once per plan.
pub fn rebalance(c: &Cluster<'_>, max_moves: usize) -> Vec<Move> {
    let mut counts = replica_counts(c);
    let mut layout: Vec<PartitionLayout> = c.partitions.to_vec();
    let mut moved: BTreeSet<(String, i32)> = BTreeSet::new();
    let mut moves = Vec::new();
    while moves.len() < max_moves {
        let eligible_counts = || counts.iter().filter(|(b, _)| c.eligible.contains_key(b));
        let Some((&low, &low_count)) = eligible_counts().min_by_key(|(b, n)| (**n, **b)) else { break };
        // The most loaded broker that can give a replica to `low`, checking
        // the heaviest first.
        let mut heavy: Vec<(i32, usize)> = counts.iter().map(|(b, n)| (*b, *n)).collect();
        heavy.sort_by_key(|(b, n)| (std::cmp::Reverse(*n), *b));
        let mut planned = None;
        for (high, high_count) in heavy {
            // Ineligible brokers' replicas are decommission's business.
            if high_count <= low_count + 1 || !c.eligible.contains_key(&high) {
                continue;
            }
            let candidate = layout.iter().position(|p| {
                !moved.contains(&(p.topic.clone(), p.partition))
                    && p.replicas.contains(&high)
                    && !p.replicas.contains(&low)
                    && p.replicas.iter().position(|r| *r == high).and_then(|i| choose(c, &counts, &p.replicas, i))
                        == Some(low)
            });
            if let Some(i) = candidate {
                planned = Some((i, high));
                break;
            }
        }
        let Some((i, high)) = planned else { break };
        let p = &mut layout[i];
        let position = p.replicas.iter().position(|r| *r == high).unwrap_or_default();
        let mut target = p.replicas.clone();
        target[position] = low;
        moved.insert((p.topic.clone(), p.partition));
        moves.push(Move {
            topic: p.topic.clone(),
            partition: p.partition,
            from: high,
            to: low,
            target: target.clone(),
        });
        p.replicas = target;
        *counts.entry(high).or_default() -= 1;
        *counts.entry(low).or_default() += 1;
    }
    moves
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brokers(spec: &[(i32, &str)]) -> BTreeMap<i32, String> {
        spec.iter().map(|(b, r)| (*b, (*r).to_owned())).collect()
    }

    fn layout(replicas: &[&[i32]]) -> Vec<PartitionLayout> {
        replicas
            .iter()
            .enumerate()
            .map(|(i, r)| PartitionLayout { topic: "t".into(), partition: i as i32, replicas: r.to_vec() })
            .collect()
    }

    #[test]
    fn decommission_moves_every_replica_in_place_preferring_new_racks_and_light_brokers() {
        let racks = brokers(&[(1, "a"), (2, "b"), (3, "c"), (4, "a"), (5, "c")]);
        let eligible = brokers(&[(2, "b"), (3, "c"), (4, "a"), (5, "c")]);
        let parts = layout(&[&[1, 2, 3], &[3, 1, 2], &[2, 3, 5]]);
        let c = Cluster { eligible: &eligible, racks: &racks, partitions: &parts };
        let (moves, stuck) = decommission(&c, 1);
        assert!(stuck.is_empty());
        assert_eq!(moves.len(), 2);
        // Partition 0 keeps racks b, c: rack a is missing, so broker 4 (rack a).
        assert_eq!(moves[0].target, vec![4, 2, 3]);
        // Partition 1 keeps c, b: again rack a, broker 4, in position 1.
        assert_eq!(moves[1].target, vec![3, 4, 2]);
        assert!(moves.iter().all(|m| m.from == 1 && !m.target.contains(&1)));
    }

    #[test]
    fn decommission_reports_partitions_with_no_free_broker() {
        let racks = brokers(&[(1, ""), (2, ""), (3, "")]);
        let eligible = brokers(&[(2, ""), (3, "")]);
        let parts = layout(&[&[1, 2, 3], &[1, 2]]);
        let c = Cluster { eligible: &eligible, racks: &racks, partitions: &parts };
        let (moves, stuck) = decommission(&c, 1);
        assert_eq!(moves.len(), 1);
        assert_eq!(moves[0].target, vec![3, 2]);
        assert_eq!(stuck, vec![parts[0].clone()]);
    }

    #[test]
    fn rebalance_fills_a_new_broker_until_counts_are_within_one() {
        let racks = brokers(&[(1, ""), (2, ""), (3, ""), (4, "")]);
        let parts = layout(&[&[1, 2, 3], &[2, 3, 1], &[3, 1, 2], &[1, 3, 2], &[2, 1, 3], &[3, 2, 1]]);
        let c = Cluster { eligible: &racks, racks: &racks, partitions: &parts };
        let moves = rebalance(&c, 100);
        let mut counts: BTreeMap<i32, usize> = BTreeMap::new();
        let mut after = parts.clone();
        for m in &moves {
            let p = after.iter_mut().find(|p| p.partition == m.partition).expect("partition");
            assert_eq!(p.replicas.iter().filter(|r| **r == m.from).count(), 1);
            p.replicas = m.target.clone();
        }
        for p in &after {
            let distinct: BTreeSet<_> = p.replicas.iter().collect();
            assert_eq!(distinct.len(), p.replicas.len(), "a broker holds two replicas of {p:?}");
            for r in &p.replicas {
                *counts.entry(*r).or_default() += 1;
            }
        }
        let (min, max) = (counts.values().min().copied(), counts.values().max().copied());
        assert_eq!((min, max), (Some(4), Some(5)), "{counts:?} after {moves:?}");
        assert_eq!(moves.len(), 4);
        assert!(rebalance(&c, 2).len() == 2, "max_moves bounds the plan");
    }

    #[test]
    fn rebalance_of_a_balanced_cluster_moves_nothing() {
        let racks = brokers(&[(1, ""), (2, ""), (3, "")]);
        let parts = layout(&[&[1, 2], &[2, 3], &[3, 1]]);
        let c = Cluster { eligible: &racks, racks: &racks, partitions: &parts };
        assert!(rebalance(&c, 100).is_empty());
    }
}
