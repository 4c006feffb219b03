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
    /// Broker k's links to every controller lose chunks (proxy: each loss
    /// holds the stream for a retransmission timeout), both directions.
    LossAgent,
    /// Controller a's and b's links to each other lose chunks, both directions.
    LossControllers,
    /// A controller's fsyncs fail with EIO (faultfs shim): it must stop;
    /// healed, it restarts on its data dir. `a == 0`: the active one, else a follower.
    DiskFailController,
    /// A controller's fsyncs stall (`stall` each). `a` as for DiskFailController.
    DiskStallController,
    /// A founding controller is removed from the quorum, stopped, its data
    /// dir wiped, and after `duration` it rejoins (`--join`) and is added back.
    /// `a` as for DiskFailController.
    RejoinController,
    /// Real packet loss (iptables `statistic` drops, both ways) on broker k's
    /// network namespace link (root only, `nemesis::netns`).
    NetnsLossAgent,
    /// Real delay (tc netem, both ways) on broker k's namespace link; on a
    /// kernel without sch_netem the proxy delays its links instead (said so
    /// in the nemesis event).
    NetnsDelayAgent,
    /// iptables drops everything broker k's namespace sends (a real one-way
    /// cut: its heartbeats and its ACKs are lost, answers still arrive).
    NetnsDropAgentOut,
    /// iptables drops everything broker k's namespace receives.
    NetnsDropAgentIn,
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

    /// Further kinds (proxy loss, disk faults, a founding controller removed
    /// and rejoined), drawn only when asked for: schedules over
    /// `ALL` + `EXTENDED` stay as they were.
    pub const MORE: [FaultKind; 5] = [
        FaultKind::LossAgent,
        FaultKind::LossControllers,
        FaultKind::DiskFailController,
        FaultKind::DiskStallController,
        FaultKind::RejoinController,
    ];

    /// Kinds that need root, `ip` and `iptables` (brokers in network namespaces).
    pub const NETNS: [FaultKind; 4] = [
        FaultKind::NetnsLossAgent,
        FaultKind::NetnsDelayAgent,
        FaultKind::NetnsDropAgentOut,
        FaultKind::NetnsDropAgentIn,
    ];

    /// Every kind, in summary order.
    pub fn every() -> impl Iterator<Item = FaultKind> {
        FaultKind::ALL.into_iter().chain(FaultKind::EXTENDED).chain(FaultKind::MORE).chain(FaultKind::NETNS)
    }

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
            FaultKind::LossAgent => "loss-agent",
            FaultKind::LossControllers => "loss-controllers",
            FaultKind::DiskFailController => "disk-fail-controller",
            FaultKind::DiskStallController => "disk-stall-controller",
            FaultKind::RejoinController => "remove-rejoin-controller",
            FaultKind::NetnsLossAgent => "netns-loss-agent",
            FaultKind::NetnsDelayAgent => "netns-delay-agent",
            FaultKind::NetnsDropAgentOut => "netns-drop-agent-out",
            FaultKind::NetnsDropAgentIn => "netns-drop-agent-in",
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
            FaultKind::LossAgent | FaultKind::LossControllers | FaultKind::NetnsLossAgent => (2_000, 6_000),
            FaultKind::NetnsDelayAgent => (2_000, 6_000),
            FaultKind::DiskFailController => (500, 3_000),
            FaultKind::DiskStallController => (2_000, 5_000),
            FaultKind::RejoinController => (500, 3_000),
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
    /// Loss kinds: the probability of a loss, in thousandths.
    pub loss_permille: u32,
    /// DiskStallController: how long each fsync stalls.
    pub stall: Duration,
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
            FaultKind::DelayAgent | FaultKind::NetnsDelayAgent => {
                write!(f, "{} broker-{} by {} ms for {d} ms", self.kind.name(), self.broker + 1, self.delay.as_millis())
            }
            FaultKind::LossAgent | FaultKind::NetnsLossAgent => {
                let p = self.loss_permille as f64 / 10.0;
                write!(f, "{} broker-{} {p}% for {d} ms", self.kind.name(), self.broker + 1)
            }
            FaultKind::LossControllers => write!(
                f,
                "{} controller-{} <-> controller-{} {}% for {d} ms",
                self.kind.name(),
                self.a + 1,
                self.b + 1,
                self.loss_permille as f64 / 10.0
            ),
            FaultKind::DiskStallController => {
                write!(f, "{} ({}) {} ms per fsync for {d} ms", self.kind.name(), role(self.a), self.stall.as_millis())
            }
            FaultKind::DiskFailController | FaultKind::RejoinController => {
                write!(f, "{} ({}) for {d} ms", self.kind.name(), role(self.a))
            }
            _ => write!(f, "{} broker-{} for {d} ms", self.kind.name(), self.broker + 1),
        }
    }
}

fn role(a: usize) -> String {
    if a == 0 { "active".to_string() } else { format!("follower choice {a}") }
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
                delay: if FaultKind::EXTENDED.contains(&kind) || kind == FaultKind::NetnsDelayAgent {
                    Duration::from_millis(rng.random_range(20..=400))
                } else {
                    Duration::ZERO
                },
                // Likewise: only the MORE and NETNS kinds draw these.
                loss_permille: match kind {
                    FaultKind::LossAgent | FaultKind::LossControllers => rng.random_range(20..=250),
                    FaultKind::NetnsLossAgent => rng.random_range(20..=300),
                    _ => 0,
                },
                stall: if kind == FaultKind::DiskStallController {
                    Duration::from_millis(rng.random_range(100..=1_500))
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

    /// The suite's seeds for the new kinds (`tests/tests/nemesis.rs`): 2117
    /// over ALL + EXTENDED + MORE, 9650 and 3007 over every kind.
    #[test]
    fn the_suites_more_and_netns_seeds() {
        use FaultKind::*;
        let more: Vec<FaultKind> =
            FaultKind::ALL.iter().chain(&FaultKind::EXTENDED).chain(&FaultKind::MORE).copied().collect();
        let s = schedule_with(2117, 5, 3, 3, &more);
        let kinds: Vec<FaultKind> = s.iter().map(|f| f.kind).collect();
        assert_eq!(
            kinds,
            vec![DiskStallController, DiskFailController, PauseBrokerMedium, RejoinController, LossControllers]
        );
        assert_eq!((s[1].a, s[3].a), (0, 0), "disk failure and rejoin hit the active controller");
        let all: Vec<FaultKind> = FaultKind::every().collect();
        let kinds: Vec<FaultKind> = schedule_with(9650, 5, 3, 3, &all).iter().map(|f| f.kind).collect();
        assert_eq!(kinds, vec![NetnsDropAgentOut, NetnsDelayAgent, RejoinController, NetnsLossAgent, NetnsDropAgentIn]);
        // Soak seed 3007 (`nemesis_all_kinds_seed_3007`), over every kind.
        let kinds: Vec<FaultKind> = schedule_with(3007, 8, 3, 3, &all).iter().map(|f| f.kind).collect();
        let want = [
            NetnsLossAgent,
            PauseBrokerMedium,
            PauseBrokerLong,
            CutAgentBoth,
            CutControllersBoth,
            KillActiveController,
            DiskFailController,
            DiskStallController,
        ];
        assert_eq!(kinds, want);
    }

    /// The MORE and NETNS kinds leave schedules over ALL + EXTENDED alone
    /// and draw their own parameters only for themselves.
    #[test]
    fn more_and_netns_kinds_draw_their_parameters() {
        let old: Vec<FaultKind> = FaultKind::ALL.iter().chain(&FaultKind::EXTENDED).copied().collect();
        let all: Vec<FaultKind> = FaultKind::every().collect();
        assert_eq!(all.len(), 11 + 2 + 5 + 4);
        for seed in 0..20 {
            for f in schedule_with(seed, 8, 3, 3, &old) {
                assert_eq!((f.loss_permille, f.stall), (0, Duration::ZERO), "{f}");
            }
        }
        let many = schedule_with(5, 400, 3, 3, &all);
        for kind in &all {
            assert!(many.iter().any(|f| f.kind == *kind), "{kind:?} never drawn");
        }
        for f in many {
            let loss = matches!(f.kind, FaultKind::LossAgent | FaultKind::LossControllers | FaultKind::NetnsLossAgent);
            assert_eq!(loss, f.loss_permille > 0, "{f}");
            assert_eq!(f.kind == FaultKind::DiskStallController, !f.stall.is_zero(), "{f}");
            let (lo, hi) = f.kind.millis();
            assert!((lo..=hi).contains(&(f.duration.as_millis() as u64)), "{f}");
        }
    }
}
