//! Fault-testing building blocks (issue 3): a TCP fault proxy to put on every
//! link of a cluster, the recorded history's format, and the checker that
//! reads a history and reports violations of the safety properties of
//! `DESIGN.md` / `docs/SAFETY.md`.
//!
//! - [`proxy`]: [`proxy::Proxy`] listens on a loopback port and forwards to
//!   one target; its [`proxy::LinkHandle`] cuts the link both ways or one
//!   way (blackhole: no FIN, no RST, TCP backpressure instead of buffering),
//!   delays it (fixed + jitter, per direction), resets its connections, and
//!   heals it. Resets model a middlebox closing connections, which
//!   `docs/SAFETY.md` marks as unsafe for the fast-failover path.
//! - [`history`]: [`history::Event`], one JSON object per line, every event
//!   stamped with `CLOCK_MONOTONIC` nanoseconds shared by all processes on
//!   the host; [`history::Recorder`] appends them to a file.
//! - [`checker`]: [`checker::check`] / [`checker::check_file`] return a
//!   [`checker::Report`] whose violations name the check (properties 1–5:
//!   overlapping leaders, epochs, lost metadata, leader outside the ISR,
//!   no leader after heal) and print the five events on each side.
//!
//! - [`clock`]: `CLOCK_MONOTONIC` nanoseconds, the stamp of every event.
//! - [`cluster`]: [`cluster::NemesisCluster`], real controllers and
//!   `baton-nemesis-broker` processes (the agent library plus a broker loop
//!   that records every accepted write, see that binary's doc for why its
//!   stamps make overlap reports sound) with a proxy on every link.
//! - [`schedule`]: seeded fault schedules; [`workload`]: topic creates and
//!   deletes, and a `WatchLeadership` reader; [`runner`]: one schedule from
//!   start to checked history. `tests/tests/nemesis.rs` runs a short fixed
//!   set of seeds; `baton-soak` loops schedules for any duration.
//! - [`membership`]: a 4th controller added to and removed from the quorum
//!   in rounds while the schedule runs (`RunConfig::membership`); the
//!   `remove-rejoin-controller` fault removes one of the founding three,
//!   wipes it and adds it back through the same calls.
//! - [`netns`]: kernel-level link faults (root only): brokers in network
//!   namespaces, iptables packet loss and one-way drops, tc netem delay
//!   (`RunConfig::netns`).

pub mod checker;
pub mod client;
pub mod clock;
pub mod cluster;
pub mod history;
pub mod membership;
pub mod more_faults;
pub mod netns;
pub mod proxy;
pub mod report;
pub mod runner;
pub mod schedule;
pub mod workload;
