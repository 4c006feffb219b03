//! `baton-nemesis-broker`: a simulated broker for fault tests. It embeds the
//! agent library (`baton_agent::Agent`) like a real broker would, and runs a
//! broker loop: every `--interval-ms` it asks `check_produce` for every
//! partition in its view, as a broker does before appending a produce, and
//! appends what happened to `--history` (JSON lines, see
//! `baton_tests::nemesis::history`).
//!
//! # Stamping an accepted write: which instant, and why it is sound
//!
//! `check_produce` reads the lease clock at some instant `c` inside the call;
//! the write "happens" at `c`. A history event carries one instant, and the
//! checker's overlap rule (check (a)) reports broker X accepting at epoch
//! `e1` at `t_X` after broker Y's first recorded accept at a higher epoch
//! `e2` at `t_Y < t_X`. For a report to prove a real overlap we need
//! `c_X > c'_Y` for some instant `c'_Y` at which Y accepted at `e2`. So:
//!
//! 1. **`t_ns` is read BEFORE `check_produce`**: `t ≤ c`. For X this is the
//!    lower bound we need: `c_X ≥ t_X`.
//! 2. **An accept is recorded only if this process already accepted the
//!    same (partition, epoch) at its previous check of that partition**; the
//!    first accept of each run is checked but not recorded. So every
//!    recorded accept at `t_Y` has an accepted check at `e2` at an instant
//!    `c'_Y < t_Y`: the upper bound we need on Y's side.
//!
//! Then `t_X > t_Y` gives `c_X ≥ t_X > t_Y > c'_Y`: X acted as leader at
//! `e1` strictly after Y acted as leader at `e2 > e1`, which is exactly a
//! violation of property 1. No preemption between the clock read and the
//! check can make a correct system look wrong. (Stamping after the check, or
//! recording first accepts, would let a thread descheduled between the two
//! reorder events of a correct hand-off.) The price: a zombie whose overlap
//! lasts for only its first check of a run is not seen; the loop checks
//! every few milliseconds, so an overlap longer than about two intervals is.
//!
//! Refusals are context only: the first after an accept and every
//! `--refusal-sample`-th one are recorded.
//!
//! `--ignore-lease` (hidden) builds a deliberately broken broker for the
//! checker's own test: it accepts whenever its view says it leads, without
//! the lease (`Agent::partition` instead of `check_produce`).
//!
//! Each sweep's events go to the file in one `write` on an `O_APPEND`
//! descriptor, so a `kill -9` leaves whole lines and a restarted incarnation
//! appends after them. The process exits when its parent dies.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use baton_agent::{Agent, AgentConfig};
use baton_tests::nemesis::clock::monotonic_ns;
use baton_tests::nemesis::history::Event;
use clap::Parser;
use tokio::time::MissedTickBehavior;

#[derive(Parser, Debug)]
#[command(name = "baton-nemesis-broker")]
struct Flags {
    #[arg(long)]
    broker_id: i32,
    /// Controller addresses, comma-separated host:port.
    #[arg(long)]
    controllers: String,
    /// host:port this broker advertises.
    #[arg(long)]
    advertised: String,
    #[arg(long, default_value = "")]
    rack: String,
    /// History file (JSON lines), appended to.
    #[arg(long)]
    history: PathBuf,
    /// Interval between two checks of the same partition.
    #[arg(long, default_value_t = 3)]
    interval_ms: u64,
    /// Record one refusal in this many (besides the first after an accept).
    #[arg(long, default_value_t = 100)]
    refusal_sample: u32,
    #[arg(long)]
    heartbeat_interval_ms: Option<u64>,
    /// BROKEN ON PURPOSE: accept whenever the view says this broker leads,
    /// ignoring the lease. Only for proving the checker catches it.
    #[arg(long, hide = true)]
    ignore_lease: bool,
}

#[derive(Default)]
struct PartLoop {
    /// Epoch of the previous check's accept (None: it refused, or first check).
    accepted_at: Option<i32>,
    refusals: u32,
}

fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().context("tokio runtime")?;
    runtime.block_on(run(flags))
}

async fn run(flags: Flags) -> anyhow::Result<()> {
    let mut out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&flags.history)
        .with_context(|| format!("open {}", flags.history.display()))?;
    let controllers = flags.controllers.split(',').map(|s| s.trim().to_string()).collect();
    let mut config = AgentConfig::new(flags.broker_id, controllers, flags.advertised.clone());
    config.rack = flags.rack.clone();
    if let Some(ms) = flags.heartbeat_interval_ms {
        config.heartbeat_interval = Duration::from_millis(ms);
    }
    let agent = Agent::start(config);
    if flags.ignore_lease {
        tracing::warn!("--ignore-lease: this broker accepts writes WITHOUT its lease (a broken build, on purpose)");
    }
    let parent = std::os::unix::process::parent_id();
    let mut tick = tokio::time::interval(Duration::from_millis(flags.interval_ms.max(1)));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut parts: HashMap<(Arc<str>, i32), PartLoop> = HashMap::new();
    let mut sweeps: u64 = 0;
    let mut batch = String::new();
    // Bounded by the parent: the loop ends when the test process is gone.
    while std::os::unix::process::parent_id() == parent {
        tick.tick().await;
        sweeps += 1;
        let view = agent.view();
        if sweeps.is_multiple_of(1000) {
            // Forget partitions that left the view (deleted topics).
            parts.retain(|(t, p), _| view.iter().any(|v| &v.topic == t && v.partition == *p));
        }
        batch.clear();
        for v in &view {
            let state = parts.entry((v.topic.clone(), v.partition)).or_default();
            // The instant is read BEFORE the check (see the module doc).
            let t_ns = monotonic_ns();
            let outcome = if flags.ignore_lease {
                match agent.partition(&v.topic, v.partition) {
                    Some(now) if now.is_leader => Ok(now.leader_epoch),
                    now => Err((6, now.map(|n| n.leader).filter(|l| *l >= 0))),
                }
            } else {
                agent
                    .check_produce(&v.topic, v.partition)
                    .map_err(|e| (i32::from(e.kafka_error_code()), e.leader.map(|(id, _)| id)))
            };
            let event = match outcome {
                Ok(epoch) => {
                    let repeat = state.accepted_at == Some(epoch);
                    state.accepted_at = Some(epoch);
                    repeat.then(|| Event::WriteAccepted {
                        t_ns,
                        broker: flags.broker_id,
                        topic: v.topic.to_string(),
                        partition: v.partition,
                        leader_epoch: epoch,
                    })
                }
                Err((error_code, leader_hint)) => {
                    let after_accept = state.accepted_at.take().is_some();
                    state.refusals = state.refusals.wrapping_add(1);
                    (after_accept || state.refusals.is_multiple_of(flags.refusal_sample.max(1))).then(|| {
                        Event::WriteRefused {
                            t_ns,
                            broker: flags.broker_id,
                            topic: v.topic.to_string(),
                            partition: v.partition,
                            error_code,
                            leader_hint,
                        }
                    })
                }
            };
            if let Some(e) = event {
                batch.push_str(&e.to_json());
                batch.push('\n');
            }
        }
        if !batch.is_empty() {
            out.write_all(batch.as_bytes()).context("append to the history")?;
        }
    }
    tracing::info!("parent process gone; exiting");
    Ok(())
}
