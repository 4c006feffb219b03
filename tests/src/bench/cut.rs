//! Helpers for `baton-bench failover-hang --mode cut` (declared from the bin
//! with `#[path]`): where broker 1's sidecar is really connected, and what
//! its own checks answer while it is cut off.
//!
//! Isolation design (docs/BENCHMARKS.md, "failover-hang --mode cut"): broker
//! 1's sidecar is given only the three proxies' addresses, the leader's proxy
//! first, so it registers with and opens its session on the leader through a
//! proxy and never receives a `baton-leader` hint (hints name the
//! controllers' real addresses, which would bypass the proxies). That is
//! checked, not assumed: the agent's `Status.controller_id` is 0 unless it
//! followed a hint (ids are learned only from hints), and the sidecar
//! process's own TCP sockets (from `/proc/<pid>/fd` and `/proc/net/tcp*`) must
//! include none to a real controller port. The cut blackholes all three
//! proxies, so the agent cannot learn a hint during the cut either.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use baton_proto::v1::agent_client::AgentClient;
use baton_proto::v1::{AgentStatusRequest, AgentStatusResponse, CheckKind, CheckRequest};
use tokio::sync::watch;
use tonic::transport::Channel;

/// TCP states in /proc/net/tcp that are not a connection (LISTEN, TIME_WAIT, CLOSE).
const NOT_CONNECTED: [u8; 3] = [0x0A, 0x06, 0x07];

/// One TCP socket owned by a process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Socket {
    pub local_port: u16,
    pub remote_port: u16,
    /// The kernel's state number (1 ESTABLISHED, 2 SYN_SENT, 8 CLOSE_WAIT, …).
    pub state: u8,
}

impl std::fmt::Display for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, ":{}->:{} (state {:02X})", self.local_port, self.remote_port, self.state)
    }
}

/// The connected TCP sockets of process `pid` (not listeners), from /proc.
pub fn process_sockets(pid: u32) -> std::io::Result<Vec<Socket>> {
    let mut inodes = HashSet::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))? {
        let Ok(entry) = entry else { continue };
        let Ok(target) = std::fs::read_link(entry.path()) else { continue };
        let target = target.to_string_lossy();
        if let Some(inode) = target.strip_prefix("socket:[").and_then(|s| s.strip_suffix(']'))
            && let Ok(inode) = inode.parse::<u64>()
        {
            inodes.insert(inode);
        }
    }
    let port = |field: &str| field.rsplit_once(':').and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
    let mut sockets = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else { continue };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 10 {
                continue;
            }
            let Ok(inode) = fields[9].parse::<u64>() else { continue };
            if inode == 0 || !inodes.contains(&inode) {
                continue;
            }
            let (Some(local_port), Some(remote_port)) = (port(fields[1]), port(fields[2])) else { continue };
            let state = u8::from_str_radix(fields[3], 16).unwrap_or(0);
            if NOT_CONNECTED.contains(&state) {
                continue;
            }
            sockets.push(Socket { local_port, remote_port, state });
        }
    }
    Ok(sockets)
}

/// Where broker 1's sidecar is connected, at one instant.
#[derive(Clone, Debug, Default)]
pub struct Placement {
    /// Sockets to a real controller port: the proxies are bypassed.
    pub direct: Vec<Socket>,
    /// Sockets to a proxy port.
    pub via_proxy: Vec<Socket>,
    /// The sidecar's Status (None if it did not answer).
    pub connected: Option<bool>,
    /// Non-zero only when the agent followed a leader hint.
    pub controller_id: Option<u64>,
    pub broker_epoch: Option<u64>,
}

impl Placement {
    /// The session goes through a proxy and nothing reaches a controller directly.
    pub fn isolated(&self) -> bool {
        self.direct.is_empty() && self.controller_id == Some(0)
    }

    pub fn describe(&self) -> String {
        let list = |v: &[Socket]| v.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ");
        format!(
            "connected={:?} controller_id={:?} broker_epoch={:?} direct=[{}] via_proxy=[{}]",
            self.connected,
            self.controller_id,
            self.broker_epoch,
            list(&self.direct),
            list(&self.via_proxy)
        )
    }
}

/// Sockets of `pid` to `real_ports` (direct) and to `proxy_ports`.
pub fn split_sockets(pid: u32, real_ports: &[u16], proxy_ports: &[u16]) -> (Vec<Socket>, Vec<Socket>) {
    let sockets = process_sockets(pid).unwrap_or_default();
    let direct = sockets.iter().filter(|s| real_ports.contains(&s.remote_port)).cloned().collect();
    let via_proxy = sockets.iter().filter(|s| proxy_ports.contains(&s.remote_port)).cloned().collect();
    (direct, via_proxy)
}

pub async fn status(sidecar: &mut AgentClient<Channel>) -> Option<AgentStatusResponse> {
    let call = sidecar.status(AgentStatusRequest {});
    match tokio::time::timeout(Duration::from_secs(2), call).await {
        Ok(Ok(r)) => Some(r.into_inner()),
        _ => None,
    }
}

pub async fn placement(
    sidecar: &mut AgentClient<Channel>,
    pid: u32,
    real_ports: &[u16],
    proxy_ports: &[u16],
) -> Placement {
    let status = status(sidecar).await;
    let (direct, via_proxy) = split_sockets(pid, real_ports, proxy_ports);
    Placement {
        direct,
        via_proxy,
        connected: status.as_ref().map(|s| s.connected),
        controller_id: status.as_ref().map(|s| s.controller_id),
        broker_epoch: status.as_ref().map(|s| s.broker_epoch),
    }
}

/// What broker 1 itself did while cut off, seen through its sidecar's Check
/// and Status RPCs (the sidecar's local API is on loopback, not behind a proxy).
#[derive(Clone, Debug, Default)]
pub struct CutBrokerWatch {
    pub checks: u64,
    pub check_errors: u64,
    /// Send / receive instants of the last Check that answered allowed.
    pub last_allowed_sent: Option<Instant>,
    pub last_allowed_recv: Option<Instant>,
    /// Send instant of the first Check that answered refused.
    pub first_refused_sent: Option<Instant>,
    /// Checks sent at or after `lease_end` that answered allowed: broker 1
    /// still accepting produces after its lease had surely lapsed.
    pub allowed_after_lease_end: u64,
    /// First Status that said the session is not connected.
    pub disconnected_at: Option<Instant>,
    /// First Status with lease_remaining_ms = 0.
    pub lease_zero_at: Option<Instant>,
    /// Most sockets to a real controller port seen in any sample.
    pub max_direct: usize,
    /// The first non-empty such sample, for the report.
    pub direct_example: Option<String>,
    pub status_samples: u64,
    /// Most sockets to a proxy port seen in any sample (agent reconnect attempts).
    pub max_via_proxy: usize,
}

/// Polls broker 1's sidecar from just before the cut until `stop`: every 5 ms
/// a Check (produce) for the next 4 of its partitions, round robin; every
/// 50 ms its Status and its sockets.
#[allow(clippy::too_many_arguments)]
pub async fn watch_cut_broker(
    sidecar: AgentClient<Channel>,
    topic: String,
    partitions: Arc<Vec<i32>>,
    pid: u32,
    real_ports: Vec<u16>,
    proxy_ports: Vec<u16>,
    lease_end: watch::Receiver<Option<Instant>>,
    mut stop: watch::Receiver<bool>,
) -> CutBrokerWatch {
    let mut out = CutBrokerWatch::default();
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next = 0usize;
    let mut n: u64 = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        let end = *lease_end.borrow();
        let batch: Vec<i32> = (0..4.min(partitions.len())).map(|i| partitions[(next + i) % partitions.len()]).collect();
        next = (next + batch.len()) % partitions.len().max(1);
        let calls = batch.into_iter().map(|p| {
            let mut c = sidecar.clone();
            let topic = topic.clone();
            async move {
                let sent = Instant::now();
                let req = CheckRequest { topic, partition: p, kind: CheckKind::Produce as i32, leader_epoch: -1 };
                let r = tokio::time::timeout(Duration::from_secs(1), c.check(req)).await;
                (sent, Instant::now(), r.ok().and_then(Result::ok).map(|r| r.into_inner().allowed))
            }
        });
        for (sent, recv, allowed) in futures::future::join_all(calls).await {
            out.checks += 1;
            match allowed {
                None => out.check_errors += 1,
                Some(true) => {
                    out.last_allowed_sent = Some(sent);
                    out.last_allowed_recv = Some(recv);
                    if end.is_some_and(|e| sent >= e) {
                        out.allowed_after_lease_end += 1;
                    }
                }
                Some(false) => {
                    if out.first_refused_sent.is_none() {
                        out.first_refused_sent = Some(sent);
                    }
                }
            }
        }
        n += 1;
        if n.is_multiple_of(10) {
            let mut c = sidecar.clone();
            if let Some(s) = status(&mut c).await {
                out.status_samples += 1;
                let now = Instant::now();
                if !s.connected && out.disconnected_at.is_none() && end.is_some() {
                    out.disconnected_at = Some(now);
                }
                if s.lease_remaining_ms == 0 && out.lease_zero_at.is_none() && end.is_some() {
                    out.lease_zero_at = Some(now);
                }
            }
            let (direct, via_proxy) = split_sockets(pid, &real_ports, &proxy_ports);
            out.max_via_proxy = out.max_via_proxy.max(via_proxy.len());
            if !direct.is_empty() {
                out.max_direct = out.max_direct.max(direct.len());
                if out.direct_example.is_none() {
                    out.direct_example = Some(direct.iter().map(ToString::to_string).collect::<Vec<_>>().join(" "));
                }
            }
        }
    }
    out
}

/// Check (produce) on every partition in `partitions` through the sidecar;
/// returns (allowed, errors).
pub async fn sweep(sidecar: &AgentClient<Channel>, topic: &str, partitions: &[i32]) -> (usize, usize) {
    use futures::StreamExt;
    let results: Vec<Option<bool>> = futures::stream::iter(partitions.iter().copied())
        .map(|p| {
            let mut c = sidecar.clone();
            let req = CheckRequest {
                topic: topic.to_owned(),
                partition: p,
                kind: CheckKind::Produce as i32,
                leader_epoch: -1,
            };
            async move { c.check(req).await.ok().map(|r| r.into_inner().allowed) }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    (results.iter().filter(|r| **r == Some(true)).count(), results.iter().filter(|r| r.is_none()).count())
}
