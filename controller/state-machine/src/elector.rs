//! Leader choice rules over one partition record.
//!
//! Pure functions: the caller says which brokers may lead (`eligible`, true
//! only for Alive brokers) and records the change. Every function keeps the
//! partition invariants: leader ∈ isr ⊆ replicas (or no leader), ISR non-empty
//! and in replica order, leader_epoch bumped on every leader change and
//! partition_epoch on every change, so `(partition, leader_epoch)` names one
//! broker at most.

use crate::types::{BrokerId, NO_LEADER, Partition};

/// Why an election produced no new leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NoElection {
    /// The partition already has the leader asked for (or any leader, for unclean).
    NotNeeded,
    /// No broker satisfies the rule.
    NotAvailable,
}

/// First ISR member that may lead, in replica order (the preferred order).
pub(crate) fn first_eligible_in_isr(p: &Partition, eligible: impl Fn(BrokerId) -> bool) -> Option<BrokerId> {
    p.replicas.iter().copied().find(|r| p.isr.contains(r) && eligible(*r))
}

/// First replica that may lead, in sync or not (unclean election).
pub(crate) fn first_eligible_replica(p: &Partition, eligible: impl Fn(BrokerId) -> bool) -> Option<BrokerId> {
    p.replicas.iter().copied().find(|r| eligible(*r))
}

/// Epochs are i32 on the wire (Kafka). Saturating keeps `apply` panic-free;
/// reaching i32::MAX would take 2^31 changes of one partition.
pub(crate) fn bump(epoch: i32) -> i32 {
    epoch.saturating_add(1)
}

fn set_leader(p: &mut Partition, leader: BrokerId) {
    p.leader = leader;
    p.leader_epoch = bump(p.leader_epoch);
}

/// Gives a leaderless partition the first eligible ISR member. Returns whether
/// the partition changed.
pub(crate) fn elect_leaderless_from_isr(p: &mut Partition, eligible: impl Fn(BrokerId) -> bool) -> bool {
    if p.has_leader() {
        return false;
    }
    match first_eligible_in_isr(p, eligible) {
        Some(leader) => {
            set_leader(p, leader);
            p.partition_epoch = bump(p.partition_epoch);
            true
        }
        None => false,
    }
}

/// Takes a just-fenced broker out of a partition: out of the ISR unless it is
/// the last member (the ISR never empties: it remembers who has the data),
/// and out of leadership, electing the next eligible ISR member, else (when
/// the topic allows it) the first eligible replica with a fresh ISR of one,
/// else nobody. Returns whether the partition changed.
pub(crate) fn remove_fenced(
    p: &mut Partition,
    fenced: BrokerId,
    unclean_allowed: bool,
    eligible: impl Fn(BrokerId) -> bool,
) -> bool {
    let mut changed = false;
    if p.isr.len() > 1
        && let Some(pos) = p.isr.iter().position(|&b| b == fenced)
    {
        p.isr.remove(pos);
        changed = true;
    }
    if p.leader == fenced {
        let next = first_eligible_in_isr(p, &eligible);
        match next {
            Some(leader) => set_leader(p, leader),
            None => match first_eligible_replica(p, &eligible).filter(|_| unclean_allowed) {
                Some(leader) => {
                    set_leader(p, leader);
                    p.isr = vec![leader];
                }
                None => set_leader(p, NO_LEADER),
            },
        }
        changed = true;
    }
    if changed {
        p.partition_epoch = bump(p.partition_epoch);
    }
    changed
}

/// Moves leadership away from `from` (being drained) to the first eligible
/// ISR member, if there is one; otherwise `from` keeps leading (better than
/// no leader at all). Returns whether the partition changed.
pub(crate) fn move_leader_away(p: &mut Partition, from: BrokerId, eligible: impl Fn(BrokerId) -> bool) -> bool {
    if p.leader != from {
        return false;
    }
    match first_eligible_in_isr(p, |b| b != from && eligible(b)) {
        Some(leader) => {
            set_leader(p, leader);
            p.partition_epoch = bump(p.partition_epoch);
            true
        }
        None => false,
    }
}

/// Moves leadership to the preferred replica if it is eligible and in sync.
pub(crate) fn elect_preferred(p: &mut Partition, eligible: impl Fn(BrokerId) -> bool) -> Result<(), NoElection> {
    let preferred = p.preferred_leader();
    if preferred == NO_LEADER {
        return Err(NoElection::NotAvailable);
    }
    if p.leader == preferred {
        return Err(NoElection::NotNeeded);
    }
    if !(eligible(preferred) && p.isr.contains(&preferred)) {
        return Err(NoElection::NotAvailable);
    }
    set_leader(p, preferred);
    p.partition_epoch = bump(p.partition_epoch);
    Ok(())
}

/// Gives a leaderless partition a leader: from the ISR if possible, else the
/// first eligible replica with an ISR of just itself (data may be lost: that
/// is what the operator asked for).
pub(crate) fn elect_unclean(p: &mut Partition, eligible: impl Fn(BrokerId) -> bool) -> Result<(), NoElection> {
    if p.has_leader() {
        return Err(NoElection::NotNeeded);
    }
    if let Some(leader) = first_eligible_in_isr(p, &eligible) {
        set_leader(p, leader);
    } else if let Some(leader) = first_eligible_replica(p, &eligible) {
        set_leader(p, leader);
        p.isr = vec![leader];
    } else {
        return Err(NoElection::NotAvailable);
    }
    p.partition_epoch = bump(p.partition_epoch);
    Ok(())
}
