//! Work only the active controller does, on a timer: fence brokers whose
//! session timed out, and propose ISR changes from reported progress. Each
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
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
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
