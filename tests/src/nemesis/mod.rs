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
//! The nemesis schedule, the workload and the cluster wiring that produce a
//! history from real processes build on these (the next steps of issue 3).

pub mod checker;
pub mod history;
pub mod proxy;
pub mod report;
