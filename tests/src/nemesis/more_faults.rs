//! Injecting the [`FaultKind::MORE`] and [`FaultKind::NETNS`] kinds: proxy
//! loss, fsync failures and stalls (the faultfs shim on the real controller
//! binary), a founding controller removed, wiped and rejoined, and kernel
//! link faults on brokers in network namespaces. Each one records a
//! `nemesis` event when it starts and one saying what it did when healed, so
//! a history shows whether the fault really hit (a controller stopped on its
//! failed fsync, packets the kernel dropped, chunks the proxy held).

use std::time::Duration;

use super::client::Api;
use super::cluster::NemesisCluster;
use super::history::Recorder;
use super::membership::{add_controller, remove_controller};
use super::netns::netem_supported;
use super::runner::nemesis;
use super::schedule::{Fault, FaultKind};
use crate::faults::DiskMode;

/// Longest a failing disk waits for the controller's next fsync beyond the
/// fault's duration.
const FSYNC_WAIT: Duration = Duration::from_secs(10);

/// Founding controllers a rejoin fault removed and could not add back yet.
#[derive(Debug, Default)]
pub struct RejoinState {
    pending: Vec<usize>,
}

impl RejoinState {
    /// Adds back every controller still pending (after the heal, so no
    /// fault stands in the way); records what happened.
    pub async fn finish(&mut self, cluster: &mut NemesisCluster, rec: &Recorder) {
        for target in std::mem::take(&mut self.pending) {
            let id = target as u64 + 1;
            let addr = cluster.controller_addrs[target].clone();
            cluster.restart_controller(target);
            let ok = add_controller(&cluster.controller_addrs, id, &addr).await;
            nemesis(rec, format!("remove-rejoin: controller-{id} added back after the heal: {ok}")).await;
        }
    }
}

/// The controller a by-role fault targets: `a == 0` the active one,
/// otherwise a follower (among the first `n`).
async fn by_role(api: &Api, n: usize, a: usize) -> usize {
    let leader = api.leader().await.map(|id| id as usize - 1).filter(|l| *l < n);
    match (a, leader) {
        (0, Some(l)) => l,
        (_, Some(l)) => (l + 1 + (a - 1) % (n - 1)) % n,
        (_, None) => a % n,
    }
}

/// Injects one MORE or NETNS fault, holds it for its duration, and heals it.
pub async fn inject_more(
    cluster: &mut NemesisCluster,
    api: &Api,
    rec: &Recorder,
    fault: &Fault,
    rejoin: &mut RejoinState,
) {
    let n = cluster.controllers();
    let k = fault.broker;
    match fault.kind {
        FaultKind::LossAgent | FaultKind::LossControllers => {
            let before = cluster.lost_chunks();
            nemesis(rec, format!("{fault}")).await;
            if fault.kind == FaultKind::LossAgent {
                cluster.loss_agent(k, fault.loss_permille);
            } else {
                cluster.loss_controllers(fault.a, fault.b, fault.loss_permille);
            }
            tokio::time::sleep(fault.duration).await;
            cluster.heal_links();
            let lost = cluster.lost_chunks() - before;
            nemesis(rec, format!("healed {}: {lost} chunks lost and retransmitted", fault.kind.name())).await;
        }
        FaultKind::DiskFailController => {
            let target = by_role(api, n, fault.a).await;
            nemesis(rec, format!("{fault}: controller-{}", target + 1)).await;
            cluster.disk(target, DiskMode::Fail);
            // Held at least `duration`, and until the controller's next fsync
            // has failed (it must stop) or FSYNC_WAIT more has passed.
            let held = tokio::time::Instant::now();
            let exit = loop {
                let exit = cluster.controller_exit(target);
                let elapsed = held.elapsed();
                if (exit.is_some() && elapsed >= fault.duration) || elapsed >= fault.duration + FSYNC_WAIT {
                    break exit;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            cluster.disk(target, DiskMode::Ok);
            let what = match exit {
                Some(status) => format!("stopped on its failed fsync ({status}); restarted on its data dir"),
                None => "had no fsync to fail; disk healthy again".to_string(),
            };
            cluster.restart_controller(target);
            nemesis(rec, format!("healed {}: controller-{} {what}", fault.kind.name(), target + 1)).await;
        }
        FaultKind::DiskStallController => {
            let target = by_role(api, n, fault.a).await;
            nemesis(rec, format!("{fault}: controller-{}", target + 1)).await;
            cluster.disk(target, DiskMode::Stall(fault.stall.as_millis() as u64));
            tokio::time::sleep(fault.duration).await;
            cluster.disk(target, DiskMode::Ok);
            // A stall must not stop a controller; if it did, say so and restart it.
            let exit = cluster.controller_exit(target);
            cluster.restart_controller(target);
            nemesis(rec, format!("healed {}: controller-{} exit {exit:?}", fault.kind.name(), target + 1)).await;
        }
        FaultKind::RejoinController => {
            let target = by_role(api, n, fault.a).await;
            let id = target as u64 + 1;
            let addrs = cluster.controller_addrs.clone();
            nemesis(rec, format!("{fault}: remove controller-{id}")).await;
            if !remove_controller(&addrs, id).await {
                nemesis(rec, format!("remove-rejoin: controller-{id} could not be removed; left as it was")).await;
                return;
            }
            nemesis(rec, format!("remove-rejoin: controller-{id} removed; stopped and its data dir wiped")).await;
            if let Err(e) = cluster.wipe_for_rejoin(target) {
                nemesis(rec, format!("remove-rejoin: wiping controller-{id} failed: {e:#}")).await;
            }
            tokio::time::sleep(fault.duration).await;
            cluster.restart_controller(target);
            nemesis(rec, format!("remove-rejoin: controller-{id} started with --join; adding it back")).await;
            if add_controller(&addrs, id, &addrs[target]).await {
                nemesis(rec, format!("remove-rejoin: controller-{id} is a voter again")).await;
            } else {
                nemesis(rec, format!("remove-rejoin: adding controller-{id} back gave up; retried after the heal"))
                    .await;
                rejoin.pending.push(target);
            }
        }
        FaultKind::NetnsLossAgent
        | FaultKind::NetnsDelayAgent
        | FaultKind::NetnsDropAgentOut
        | FaultKind::NetnsDropAgentIn => {
            let Some(ns) = cluster.netns(k) else {
                nemesis(rec, format!("{fault}: skipped, broker-{} has no network namespace", k + 1)).await;
                return;
            };
            let (set, how) = match fault.kind {
                FaultKind::NetnsLossAgent => (ns.loss(fault.loss_permille), "iptables statistic drops"),
                FaultKind::NetnsDropAgentOut => (ns.drop_one_way(true), "iptables OUTPUT drop"),
                FaultKind::NetnsDropAgentIn => (ns.drop_one_way(false), "iptables INPUT drop"),
                _ if netem_supported() => (ns.delay(fault.delay, fault.delay), "tc netem"),
                _ => {
                    cluster.delay_agent(k, fault.delay);
                    (Ok(()), "the kernel has no sch_netem: the proxy delays the links instead")
                }
            };
            let name = cluster.netns(k).map(|ns| ns.name.clone()).unwrap_or_default();
            match set {
                Ok(()) => nemesis(rec, format!("{fault} in {name} ({how})")).await,
                Err(e) => nemesis(rec, format!("{fault} in {name}: could not be set: {e}")).await,
            }
            tokio::time::sleep(fault.duration).await;
            let dropped = cluster.heal_links();
            nemesis(rec, format!("healed {}: {dropped} packets dropped by the kernel", fault.kind.name())).await;
        }
        _ => unreachable!("{fault}: not a MORE or NETNS kind"),
    }
}
