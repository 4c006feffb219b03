//! Replica placement for new topics: a pure function of the live brokers.
//!
//! It follows Kafka's rack-aware `AdminUtils.assignReplicasToBrokers` so that
//! operators get the layout they already know, with the two random choices
//! (start index and replica shift) made deterministic, because every
//! controller replays the same CreateTopic entry and must agree:
//!
//! - the start goes to the broker that currently leads the fewest partitions
//!   (ties: the earliest in the rack-alternated list), so leaders of new topics
//!   fill the least loaded brokers first;
//! - the replica shift comes from a seed (the topic id), so replica sets of
//!   different topics differ the way Kafka's random shift makes them differ.

use std::collections::BTreeMap;

use crate::error::StateError;
use crate::types::BrokerId;

/// A broker that may receive replicas (the caller passes only Alive brokers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate<'a> {
    pub id: BrokerId,
    /// Empty means "no rack"; all rack-less brokers form one rack.
    pub rack: &'a str,
    /// Partitions this broker leads now.
    pub leader_count: usize,
}

/// Replica lists for `partitions` new partitions (`result[p]`, leader first).
/// Every list has `replication_factor` distinct brokers, spread over every
/// rack before any rack gets a second replica.
pub fn assign_replicas(
    candidates: &[Candidate<'_>],
    partitions: usize,
    replication_factor: usize,
    seed: u64,
) -> Result<Vec<Vec<BrokerId>>, StateError> {
    let mut sorted: Vec<Candidate<'_>> = candidates.to_vec();
    sorted.sort_by_key(|c| c.id);
    sorted.dedup_by_key(|c| c.id);
    if replication_factor == 0 || replication_factor > sorted.len() {
        return Err(StateError::InvalidReplicationFactor {
            requested: i32::try_from(replication_factor).unwrap_or(i32::MAX),
            available: i32::try_from(sorted.len()).unwrap_or(i32::MAX),
        });
    }
    let list = rack_alternated(&sorted);
    let n = list.len();
    // Least loaded leader first; `min_by_key` keeps the first of equal keys,
    // which is the earliest position.
    let start = list.iter().enumerate().min_by_key(|(_, c)| c.leader_count).map_or(0, |(pos, _)| pos);
    // u64 -> usize: n fits in usize, so the remainder does too.
    let shift = usize::try_from(seed % n as u64).unwrap_or(0);
    Ok(assign_from_list(&list, partitions, replication_factor, start, shift))
}

/// Kafka's `getRackAlternatedBrokerList`: racks sorted by name, brokers within
/// a rack by id, then one broker from each rack in turn.
pub fn rack_alternated<'a>(candidates: &[Candidate<'a>]) -> Vec<Candidate<'a>> {
    let mut by_rack: BTreeMap<&str, Vec<Candidate<'a>>> = BTreeMap::new();
    for c in candidates {
        by_rack.entry(c.rack).or_default().push(*c);
    }
    for brokers in by_rack.values_mut() {
        brokers.sort_by_key(|c| c.id);
    }
    let longest = by_rack.values().map(Vec::len).max().unwrap_or(0);
    let mut out = Vec::with_capacity(candidates.len());
    for round in 0..longest {
        out.extend(by_rack.values().filter_map(|brokers| brokers.get(round).copied()));
    }
    out
}

/// Kafka's `assignReplicasToBrokersRackAware` with explicit start index and
/// initial replica shift. `list` is rack-alternated, ids distinct, and
/// `1 <= replication_factor <= list.len()`.
pub(crate) fn assign_from_list(
    list: &[Candidate<'_>],
    partitions: usize,
    replication_factor: usize,
    start: usize,
    initial_shift: usize,
) -> Vec<Vec<BrokerId>> {
    let n = list.len();
    if n == 0 {
        return Vec::new();
    }
    // Racks as small integers, so the per-partition bookkeeping is two
    // reusable bit vectors instead of sets allocated a million times.
    let mut rack_ids: BTreeMap<&str, usize> = BTreeMap::new();
    for c in list {
        let next = rack_ids.len();
        rack_ids.entry(c.rack).or_insert(next);
    }
    let rack_of: Vec<usize> = list.iter().map(|c| rack_ids.get(c.rack).copied().unwrap_or(0)).collect();
    let num_racks = rack_ids.len();
    let mut rack_used = vec![false; num_racks];
    let mut broker_used = vec![false; n];

    let mut shift = initial_shift;
    let mut out = Vec::with_capacity(partitions);
    for p in 0..partitions {
        if p > 0 && p % n == 0 {
            shift += 1;
        }
        let first = (p + start) % n;
        let mut chosen = Vec::with_capacity(replication_factor);
        let mut racks_with_replicas = 0;
        let mut used = Used { rack_of: &rack_of, rack_used: &mut rack_used, broker_used: &mut broker_used };
        used.take(first, &mut chosen, &mut racks_with_replicas);
        // Kafka's `nextReplicaShift * numRacks`, reduced modulo n - 1 (the
        // only way `replica_index` uses it) so it cannot overflow.
        let second_shift = if n > 1 { (shift % (n - 1)) * (num_racks % (n - 1)) % (n - 1) } else { 0 };
        let mut k = 0;
        for _ in 1..replication_factor {
            // Offsets 1..n are all visited within n - 1 steps, so a broker
            // on a new rack (or, once all racks hold one, any new broker) is
            // always found; the bound only makes that visible.
            let mut found = None;
            for _ in 0..n {
                let pos = replica_index(first, second_shift, k, n);
                k += 1;
                // Kafka's two skip rules: a rack that already has a replica
                // while some rack has none, and a broker that already has one.
                let rack_ok = !used.rack_used[rack_of[pos]] || racks_with_replicas == num_racks;
                if rack_ok && !used.broker_used[pos] {
                    found = Some(pos);
                    break;
                }
            }
            let pos = found.or_else(|| (0..n).find(|&pos| !used.broker_used[pos]));
            if let Some(pos) = pos {
                used.take(pos, &mut chosen, &mut racks_with_replicas);
            }
        }
        for &pos in &chosen {
            broker_used[pos] = false;
            rack_used[rack_of[pos]] = false;
        }
        out.push(chosen.into_iter().map(|pos| list[pos].id).collect());
    }
    out
}

/// Which brokers and racks the partition being placed already uses.
struct Used<'a> {
    rack_of: &'a [usize],
    rack_used: &'a mut [bool],
    broker_used: &'a mut [bool],
}

impl Used<'_> {
    fn take(&mut self, pos: usize, chosen: &mut Vec<usize>, racks_with_replicas: &mut usize) {
        let rack = self.rack_of[pos];
        if !self.rack_used[rack] {
            self.rack_used[rack] = true;
            *racks_with_replicas += 1;
        }
        self.broker_used[pos] = true;
        chosen.push(pos);
    }
}

/// Position of the `k`-th follower candidate: never `first` itself.
fn replica_index(first: usize, second_shift: usize, k: usize, n: usize) -> usize {
    if n <= 1 {
        return first;
    }
    let shift = 1 + (second_shift + k) % (n - 1);
    (first + shift) % n
}

#[cfg(test)]
#[path = "placement_tests.rs"]
mod tests;
