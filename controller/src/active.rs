//! Work only the active controller does, on a timer: fence brokers whose
//! session timed out, propose ISR changes from reported progress, and give
//! partitions back to their preferred replicas (leader rebalance). Each
//! decision becomes one log entry; the state machine (the elector) does the
//! rest deterministically on every controller.

use std::sync::Arc;
use std::time::{Duration, Instant};

use baton_state_machine::{BrokerId, Command, FenceReason, Outcome};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::Shared;
use crate::raft::ProposeError;

/// ISR evaluation runs this many liveness checks apart.
const ISR_EVERY_CHECKS: u32 = 5;

/// Runs until `shutdown` flips.
pub async fn run(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut status = shared.raft.subscribe_status();
    let mut ticker = tokio::time::interval(Duration::from_millis(shared.config.liveness.check_interval_ms.max(1)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut checks: u32 = 0;
    let rebalance_every = Duration::from_millis(shared.config.balance.leader_rebalance_interval_ms);
    // interval() panics on zero; a disabled rebalance never ticks.
    let mut rebalance = tokio::time::interval(rebalance_every.max(Duration::from_millis(1)));
    rebalance.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    rebalance.reset();
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = rebalance.tick(), if !rebalance_every.is_zero() => {
                if shared.liveness.is_leader() {
                    rebalance_leaders(&shared).await;
                }
            }
            changed = status.changed() => {
                if changed.is_err() { return }
                let ready = status.borrow_and_update().leader_ready;
                if ready != shared.liveness.is_leader() {
                    info!(ready, "active controller role changed; liveness state reset");
                }
                let term = status.borrow().term;
                shared.liveness.set_leader(ready, term, Instant::now(), shared.raft.metadata().version());
            }
            _ = ticker.tick() => {
                if !shared.liveness.is_leader() {
                    continue;
                }
                let now = Instant::now();
                let due = shared.raft.metadata().read(|s| shared.liveness.due_for_fencing(s, now));
                for (broker, epoch) in due {
                    info!(broker, epoch, "broker session timed out: fencing it");
                    let shared = shared.clone();
                    tokio::spawn(async move { fence(&shared, broker, epoch, FenceReason::SessionTimeout).await });
                }
                checks = checks.wrapping_add(1);
                if checks.is_multiple_of(ISR_EVERY_CHECKS) {
                    alter_isr(&shared, now).await;
                }
            }
        }
    }
}

/// Proposes one FenceBroker entry; on failure the broker may be fenced again later.
pub async fn fence(shared: &Shared, broker: BrokerId, epoch: u64, reason: FenceReason) {
    let started = Instant::now();
    match shared.propose(&Command::FenceBroker { broker_id: broker, broker_epoch: epoch, reason }).await {
        Ok(p) => match p.outcome {
            Ok(Outcome::BrokerFenced { partitions_moved }) => {
                shared.metrics.observe_fence(reason, started.elapsed());
                info!(
                    broker,
                    epoch,
                    ?reason,
                    partitions_moved,
                    index = p.index,
                    took_ms = started.elapsed().as_millis() as u64,
                    "broker fenced"
                )
            }
            Ok(other) => debug!(broker, ?other, "fence applied"),
            Err(e) => debug!(broker, error = %e, "fence not needed"),
        },
        Err(e @ (ProposeError::NotLeader { .. } | ProposeError::Dropped(_))) => {
            // Definitely not in the log: another attempt may follow.
            warn!(broker, epoch, error = %e, "fencing failed; will retry");
            shared.liveness.fence_failed(broker, epoch);
        }
        Err(e) => {
            // Timeout or lost leadership: the entry may still commit, so the
            // broker must not be granted a lease meanwhile. Its fencing mark
            // stays until leadership changes hands (which resets liveness).
            warn!(broker, epoch, error = %e, "fence outcome unknown; no more leases for this broker epoch");
        }
    }
}

async fn alter_isr(shared: &Shared, now: Instant) {
    let changes = shared.raft.metadata().read(|s| shared.liveness.isr_changes(s, now));
    if changes.is_empty() {
        return;
    }
    let count = changes.len();
    match shared.propose(&Command::AlterIsr { changes }).await {
        Ok(p) => debug!(count, index = p.index, "ISR changes applied"),
        Err(e) => debug!(count, error = %e, "ISR changes not applied; will retry"),
    }
}

/// Partitions whose preferred (first) replica may lead again: not leading
/// now, in the ISR (caught up), Alive (not drained) and settled (see
/// `Liveness::settled_brokers`). At most `max`, in (topic, partition) order.
pub fn rebalance_candidates(
    state: &baton_state_machine::State,
    settled: &std::collections::HashSet<BrokerId>,
    max: usize,
) -> Vec<(String, i32)> {
    let mut out = Vec::new();
    for topic in state.topics() {
        for (p, partition) in (0_i32..).zip(&topic.partitions) {
            let preferred = partition.preferred_leader();
            let eligible = state.broker(preferred).is_some_and(|b| b.state == baton_state_machine::BrokerState::Alive);
            if partition.leader != preferred
                && eligible
                && partition.isr.contains(&preferred)
                && settled.contains(&preferred)
            {
                out.push((topic.name.to_string(), p));
                if out.len() >= max {
                    return out;
                }
            }
        }
    }
    out
}

/// One throttled round of preferred-leader elections.
async fn rebalance_leaders(shared: &Shared) {
    let balance = &shared.config.balance;
    let settled = shared.liveness.settled_brokers(Instant::now(), Duration::from_millis(balance.min_broker_uptime_ms));
    let partitions =
        shared.raft.metadata().read(|s| rebalance_candidates(s, &settled, balance.leader_rebalance_max_partitions));
    if partitions.is_empty() {
        return;
    }
    let count = partitions.len();
    let command =
        Command::ElectLeaders { election: baton_state_machine::ElectionType::Preferred, partitions: Some(partitions) };
    match shared.propose(&command).await {
        Ok(p) => {
            let moved = match p.outcome {
                Ok(Outcome::LeadersElected(results)) => results.iter().filter(|r| r.result.is_ok()).count(),
                _ => 0,
            };
            info!(candidates = count, moved, index = p.index, "leader rebalance: preferred replicas lead again");
        }
        Err(e) => debug!(count, error = %e, "leader rebalance not applied; next round retries"),
    }
}
