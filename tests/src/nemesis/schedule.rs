//! Seeded fault schedules: a pure function of (seed, length), so a seed
//! names one schedule forever. Which controller is *active* is only known
//! when the fault runs; the schedule names the role, the runner resolves it.
//!
//! Durations are chosen against the defaults (lease 1.5 s, session timeout
//! 3 s): a short pause ends inside the lease, a medium one after the lease
//! but before the session timeout, a long one after the session timeout
//! (the "zombie leader" case).

use std::fmt;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What a fault does; the summary counts faults by [`FaultKind::name`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultKind {
    KillBroker,
    KillActiveController,
    KillFollowerController,
    PauseBrokerShort,
    PauseBrokerMedium,
    PauseBrokerLong,
    CutAgentBoth,
    /// Heartbeats lost, answers flow.
    CutAgentToController,
    /// Heartbeats arrive, grants and updates lost.
    CutAgentFromController,
    CutControllersBoth,
    CutControllersOneWay,
    /// Broker k's links to every controller slowed (both directions).
    DelayAgent,
    /// Controller a's messages to b (and back) slowed.
    DelayControllers,
}

impl FaultKind {
    pub const ALL: [FaultKind; 11] = [
        FaultKind::KillBroker,
        FaultKind::KillActiveController,
        FaultKind::KillFollowerController,
        FaultKind::PauseBrokerShort,
        FaultKind::PauseBrokerMedium,
        FaultKind::PauseBrokerLong,
        FaultKind::CutAgentBoth,
        FaultKind::CutAgentToController,
        FaultKind::CutAgentFromController,
        FaultKind::CutControllersBoth,
        FaultKind::CutControllersOneWay,
    ];

    /// Kinds drawn only by [`schedule_with`] with extended faults, so the
    /// schedules of existing seeds (over [`FaultKind::ALL`]) never change.
    pub const EXTENDED: [FaultKind; 2] = [FaultKind::DelayAgent, FaultKind::DelayControllers];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::KillBroker => "kill-broker",
            FaultKind::KillActiveController => "kill-active-controller",
            FaultKind::KillFollowerController => "kill-follower-controller",
            FaultKind::PauseBrokerShort => "pause-broker<lease",
            FaultKind::PauseBrokerMedium => "pause-broker<session",
            FaultKind::PauseBrokerLong => "pause-broker>session",
            FaultKind::CutAgentBoth => "cut-agent-both",
            FaultKind::CutAgentToController => "cut-agent-to-controller",
            FaultKind::CutAgentFromController => "cut-agent-from-controller",
            FaultKind::CutControllersBoth => "cut-controllers-both",
            FaultKind::CutControllersOneWay => "cut-controllers-one-way",
            FaultKind::DelayAgent => "delay-agent",
            FaultKind::DelayControllers => "delay-controllers",
        }
    }

    /// The range the fault's duration is drawn from, in milliseconds.
    fn millis(self) -> (u64, u64) {
        match self {
            FaultKind::PauseBrokerShort => (300, 1_100),
            FaultKind::PauseBrokerMedium => (1_900, 2_600),
            FaultKind::PauseBrokerLong => (3_800, 5_500),
            FaultKind::KillBroker | FaultKind::KillActiveController | FaultKind::KillFollowerController => (500, 3_000),
            FaultKind::DelayAgent | FaultKind::DelayControllers => (2_000, 6_000),
            _ => (1_000, 5_000),
        }
    }
}

/// One fault: what, on whom, for how long, and the quiet time after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    pub kind: FaultKind,
    /// Broker index (0-based) for broker and agent-link faults.
    pub broker: usize,
    /// Controller indexes (0-based) for controller-link faults: `a`'s
    /// messages to `b` are cut (and back, for `CutControllersBoth`). For
    /// `KillFollowerController`, `a` picks among the followers.
    pub a: usize,
    pub b: usize,
    pub duration: Duration,
    /// Healthy time after the fault is healed, before the next one.
    pub gap: Duration,
    /// Added one-way latency of a delay fault (a jitter of up to as much again).
    pub delay: Duration,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.duration.as_millis();
        match self.kind {
            FaultKind::KillActiveController => write!(f, "{} for {d} ms", self.kind.name()),
            FaultKind::KillFollowerController => write!(f, "{} (choice {}) for {d} ms", self.kind.name(), self.a),
            FaultKind::CutControllersBoth => {
                write!(f, "{} controller-{} <-> controller-{} for {d} ms", self.kind.name(), self.a + 1, self.b + 1)
            }
            FaultKind::CutControllersOneWay => {
                write!(f, "{} controller-{} -> controller-{} for {d} ms", self.kind.name(), self.a + 1, self.b + 1)
            }
            FaultKind::DelayControllers => write!(
                f,
                "{} controller-{} <-> controller-{} by {} ms for {d} ms",
                self.kind.name(),
                self.a + 1,
                self.b + 1,
                self.delay.as_millis()
            ),
            FaultKind::DelayAgent => {
                write!(f, "{} broker-{} by {} ms for {d} ms", self.kind.name(), self.broker + 1, self.delay.as_millis())
            }
            _ => write!(f, "{} broker-{} for {d} ms", self.kind.name(), self.broker + 1),
        }
    }
}

/// `len` faults drawn from `seed`, for a cluster of `controllers` and `brokers`.
pub fn schedule(seed: u64, len: usize, controllers: usize, brokers: usize) -> Vec<Fault> {
    schedule_with(seed, len, controllers, brokers, &FaultKind::ALL)
}

/// As [`schedule`], drawing kinds from `kinds` (e.g. ALL and EXTENDED).
pub fn schedule_with(seed: u64, len: usize, controllers: usize, brokers: usize, kinds: &[FaultKind]) -> Vec<Fault> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..len)
        .map(|_| {
            let kind = kinds[rng.random_range(0..kinds.len())];
            let (lo, hi) = kind.millis();
            let a = rng.random_range(0..controllers.max(1));
            let mut b = rng.random_range(0..controllers.max(1));
            if b == a && controllers > 1 {
                b = (a + 1) % controllers;
            }
            Fault {
                kind,
                broker: rng.random_range(0..brokers.max(1)),
                a,
                b,
                duration: Duration::from_millis(rng.random_range(lo..=hi)),
                gap: Duration::from_millis(rng.random_range(500..=2_000)),
                // Drawn last, and only for delays: other kinds' draws (and so
                // every existing seed's schedule) stay as they were.
                delay: if FaultKind::EXTENDED.contains(&kind) {
                    Duration::from_millis(rng.random_range(20..=400))
                } else {
                    Duration::ZERO
                },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_names_one_schedule() {
        assert_eq!(schedule(7, 20, 3, 3), schedule(7, 20, 3, 3));
        assert_ne!(schedule(7, 20, 3, 3), schedule(8, 20, 3, 3));
        for f in schedule(7, 200, 3, 3) {
            assert_ne!(f.a, f.b);
            assert!(f.a < 3 && f.b < 3 && f.broker < 3);
            let (lo, hi) = f.kind.millis();
            assert!((lo..=hi).contains(&(f.duration.as_millis() as u64)));
        }
    }

    #[test]
    fn pauses_straddle_the_lease_and_the_session_timeout() {
        // Defaults: lease 1.5 s, session timeout 3 s.
        assert!(FaultKind::PauseBrokerShort.millis().1 < 1_500);
        let (lo, hi) = FaultKind::PauseBrokerMedium.millis();
        assert!(lo > 1_500 && hi < 3_000);
        assert!(FaultKind::PauseBrokerLong.millis().0 > 3_000);
    }
}

#[cfg(test)]
mod extended_tests {
    use super::*;

    /// Extended kinds never change a schedule drawn over `ALL`, and seed 12
    /// (the suite's membership seed) draws both delays and an active
    /// controller kill.
    #[test]
    fn extended_schedules_add_delays_without_changing_old_seeds() {
        for seed in 0..50 {
            assert_eq!(schedule(seed, 8, 3, 3), schedule_with(seed, 8, 3, 3, &FaultKind::ALL));
        }
        let kinds: Vec<FaultKind> = FaultKind::ALL.iter().chain(&FaultKind::EXTENDED).copied().collect();
        let twelve: Vec<FaultKind> = schedule_with(12, 4, 3, 3, &kinds).iter().map(|f| f.kind).collect();
        assert_eq!(
            twelve,
            vec![
                FaultKind::PauseBrokerLong,
                FaultKind::DelayAgent,
                FaultKind::DelayControllers,
                FaultKind::KillActiveController
            ]
        );
        for f in schedule_with(12, 200, 3, 3, &kinds) {
            let is_delay = FaultKind::EXTENDED.contains(&f.kind);
            assert_eq!(is_delay, !f.delay.is_zero(), "{f}");
        }
    }
}
