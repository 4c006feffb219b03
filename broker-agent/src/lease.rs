//! The leadership lease, on a monotonic clock.
//!
//! The controller grants `lease_ms` in the ack of heartbeat `seq`; the lease
//! runs from the instant the agent *sent* that heartbeat (never from when the
//! ack arrived, which would stretch it by the network delay). The deadline
//! lives in one `AtomicU64` of nanoseconds since a process-wide base
//! [`Instant`], so a check is one clock read and one atomic load.
//!
//! Invariants:
//! - Grants only ever move the deadline forward (`fetch_max`).
//! - Only [`Lease::suspend`] and [`Lease::close`] move it backwards, and after
//!   either no ack of a heartbeat sent before that instant can extend it
//!   again (the send-time floor), so a late ack cannot resurrect a lease the
//!   agent gave up on purpose.
//! - Readers never lock; grants and suspensions serialize on a small mutex.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::watch;

/// How many recent heartbeats' send instants are remembered. An ack for a
/// heartbeat older than this is ignored (the next one will extend the lease).
pub const SEND_RING_SIZE: usize = 64;

/// The longest lease the agent accepts from a controller, whatever it says:
/// a bound on how long a confused controller can pin leadership here.
pub const MAX_LEASE: Duration = Duration::from_secs(60);

fn clock_base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

/// Nanoseconds from the process-wide base to `t` (0 for instants before it).
pub(crate) fn nanos_of(t: Instant) -> u64 {
    u64::try_from(t.saturating_duration_since(clock_base()).as_nanos()).unwrap_or(u64::MAX)
}

/// Nanoseconds from the process-wide base to now.
#[inline]
pub(crate) fn now_nanos() -> u64 {
    nanos_of(Instant::now())
}

/// What an ack did to the lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckOutcome {
    /// The deadline moved forward to this value (nanos since the clock base).
    Extended(u64),
    /// The grant was valid but ended no later than the current deadline.
    NotLater,
    /// No remembered heartbeat has this seq (too old, or never sent).
    UnknownSeq,
    /// The heartbeat was sent before the lease was suspended or closed.
    BeforeSuspension,
}

/// Send instants of the most recent heartbeats, indexed by `seq % SEND_RING_SIZE`.
struct SendRing {
    slots: [(u64, u64); SEND_RING_SIZE],
}

impl SendRing {
    fn new() -> Self {
        // seq 0 is never sent, so (0, _) marks an empty slot.
        Self { slots: [(0, 0); SEND_RING_SIZE] }
    }

    fn record(&mut self, seq: u64, sent_at_nanos: u64) {
        self.slots[slot_of(seq)] = (seq, sent_at_nanos);
    }

    fn sent_at(&self, seq: u64) -> Option<u64> {
        let (stored_seq, sent_at) = self.slots[slot_of(seq)];
        (seq != 0 && stored_seq == seq).then_some(sent_at)
    }
}

fn slot_of(seq: u64) -> usize {
    // The modulus is < SEND_RING_SIZE, so the cast cannot truncate.
    (seq % SEND_RING_SIZE as u64) as usize
}

struct Writer {
    ring: SendRing,
    /// Heartbeats sent before this instant can no longer extend the lease.
    floor_nanos: u64,
}

/// The lease: one atomic deadline plus the bookkeeping that moves it.
pub(crate) struct Lease {
    /// The process-wide clock base, copied here for the checks.
    base: Instant,
    deadline_nanos: AtomicU64,
    writer: Mutex<Writer>,
    changes: watch::Sender<u64>,
}

impl Lease {
    pub(crate) fn new() -> Self {
        Self {
            // Sets the base if unset, so deadlines are measured from process start.
            base: clock_base(),
            deadline_nanos: AtomicU64::new(0),
            writer: Mutex::new(Writer { ring: SendRing::new(), floor_nanos: 0 }),
            changes: watch::channel(0).0,
        }
    }

    /// True while the lease is valid at this very instant: the same answer
    /// as `is_valid_at(now_nanos())` (the base precedes every clock read),
    /// but adding the deadline to the base costs a third of the instructions
    /// of turning the instant into nanoseconds (docs/BENCHMARKS.md, section 4).
    #[inline]
    pub(crate) fn is_valid_now(&self) -> bool {
        let now = Instant::now();
        let deadline = self.deadline_nanos.load(Ordering::Acquire);
        // No instant is that far: nanos_of(now) < deadline.
        self.base.checked_add(Duration::from_nanos(deadline)).is_none_or(|end| now < end)
    }

    #[cfg(test)]
    pub(crate) fn is_valid_at(&self, now_nanos: u64) -> bool {
        now_nanos < self.deadline_nanos.load(Ordering::Acquire)
    }

    pub(crate) fn deadline_nanos(&self) -> u64 {
        self.deadline_nanos.load(Ordering::Acquire)
    }

    /// Time left on the lease now (zero once lapsed).
    pub(crate) fn remaining(&self) -> Duration {
        Duration::from_nanos(self.deadline_nanos().saturating_sub(now_nanos()))
    }

    /// Remembers that heartbeat `seq` left at `sent_at_nanos`. Call it
    /// *before* handing the heartbeat to the transport: an earlier send time
    /// only shortens the lease.
    pub(crate) fn record_send(&self, seq: u64, sent_at_nanos: u64) {
        self.writer.lock().ring.record(seq, sent_at_nanos);
    }

    /// Applies `HeartbeatAck { seq, lease_ms }`.
    pub(crate) fn on_ack(&self, seq: u64, lease: Duration) -> AckOutcome {
        let lease = lease.min(MAX_LEASE);
        let writer = self.writer.lock();
        let Some(sent_at) = writer.ring.sent_at(seq) else {
            return AckOutcome::UnknownSeq;
        };
        if sent_at < writer.floor_nanos {
            return AckOutcome::BeforeSuspension;
        }
        let lease_nanos = u64::try_from(lease.as_nanos()).unwrap_or(u64::MAX);
        let deadline = sent_at.saturating_add(lease_nanos);
        let previous = self.deadline_nanos.fetch_max(deadline, Ordering::AcqRel);
        if deadline > previous {
            self.changes.send_replace(deadline);
            AckOutcome::Extended(deadline)
        } else {
            AckOutcome::NotLater
        }
    }

    /// Ends the lease now: checks refuse from this instant, and acks of
    /// heartbeats already sent are ignored. A heartbeat sent afterwards can
    /// grant a new lease.
    pub(crate) fn suspend(&self) {
        self.fence(now_nanos());
    }

    /// Ends the lease for good (clean shutdown): no ack can ever extend it.
    pub(crate) fn close(&self) {
        self.fence(u64::MAX);
    }

    fn fence(&self, floor_nanos: u64) {
        let mut writer = self.writer.lock();
        let now = now_nanos();
        writer.floor_nanos = writer.floor_nanos.max(floor_nanos);
        let previous = self.deadline_nanos.fetch_min(now, Ordering::AcqRel);
        if previous > now {
            self.changes.send_replace(now);
        }
    }

    /// Notified with the new deadline each time it moves.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Waits for `cond` with a generous deadline instead of sleeping a fixed time.
    fn wait_until(limit: Duration, cond: impl Fn() -> bool) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if cond() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        cond()
    }

    #[test]
    fn lease_starts_invalid() {
        let lease = Lease::new();
        assert!(!lease.is_valid_now());
        assert_eq!(lease.remaining(), Duration::ZERO);
    }

    #[test]
    fn ack_grants_from_send_instant_and_lapses_by_itself() {
        let lease = Lease::new();
        let sent = now_nanos();
        lease.record_send(1, sent);
        let outcome = lease.on_ack(1, Duration::from_millis(50));
        assert_eq!(outcome, AckOutcome::Extended(sent + 50_000_000));
        assert!(lease.is_valid_at(sent));
        assert!(!lease.is_valid_at(sent + 50_000_000));
        assert!(wait_until(Duration::from_secs(10), || !lease.is_valid_now()));
    }

    #[test]
    fn ack_of_unknown_or_evicted_seq_is_ignored() {
        let lease = Lease::new();
        assert_eq!(lease.on_ack(7, Duration::from_secs(5)), AckOutcome::UnknownSeq);
        assert_eq!(lease.on_ack(0, Duration::from_secs(5)), AckOutcome::UnknownSeq);
        let now = now_nanos();
        lease.record_send(1, now);
        // seq 1 + SEND_RING_SIZE overwrites seq 1's slot.
        lease.record_send(1 + SEND_RING_SIZE as u64, now);
        assert_eq!(lease.on_ack(1, Duration::from_secs(5)), AckOutcome::UnknownSeq);
        assert!(!lease.is_valid_now());
    }

    #[test]
    fn is_valid_now_agrees_with_nanos_since_base() {
        let lease = Lease::new();
        let set = |deadline: u64| lease.deadline_nanos.store(deadline, Ordering::Release);
        set(0);
        assert!(!lease.is_valid_now());
        set(now_nanos());
        assert!(!lease.is_valid_now(), "a deadline already reached");
        set(now_nanos() + 10_000_000_000);
        assert!(lease.is_valid_now());
        set(u64::MAX);
        assert!(lease.is_valid_now(), "nanos_of(now) < u64::MAX");
    }

    #[test]
    fn deadline_never_moves_backwards_on_grants() {
        let lease = Lease::new();
        let now = now_nanos();
        lease.record_send(1, now);
        lease.record_send(2, now + 1_000);
        assert!(matches!(lease.on_ack(2, Duration::from_secs(10)), AckOutcome::Extended(_)));
        let deadline = lease.deadline_nanos();
        // An ack of an earlier heartbeat, or a shorter lease, must not shorten it.
        assert_eq!(lease.on_ack(1, Duration::from_secs(10)), AckOutcome::NotLater);
        assert_eq!(lease.on_ack(2, Duration::from_secs(1)), AckOutcome::NotLater);
        assert_eq!(lease.deadline_nanos(), deadline);
    }

    #[test]
    fn suspension_is_immediate_and_late_acks_cannot_undo_it() {
        let lease = Lease::new();
        let now = now_nanos();
        lease.record_send(1, now);
        lease.record_send(2, now);
        assert!(matches!(lease.on_ack(1, Duration::from_secs(30)), AckOutcome::Extended(_)));
        assert!(lease.is_valid_now());
        lease.suspend();
        assert!(!lease.is_valid_now());
        assert_eq!(lease.on_ack(2, Duration::from_secs(30)), AckOutcome::BeforeSuspension);
        assert!(!lease.is_valid_now());
        // A heartbeat sent after the suspension may grant again.
        lease.record_send(3, now_nanos());
        assert!(matches!(lease.on_ack(3, Duration::from_secs(30)), AckOutcome::Extended(_)));
        assert!(lease.is_valid_now());
    }

    #[test]
    fn closed_lease_never_comes_back() {
        let lease = Lease::new();
        lease.close();
        lease.record_send(1, now_nanos());
        assert_eq!(lease.on_ack(1, Duration::from_secs(30)), AckOutcome::BeforeSuspension);
        assert!(!lease.is_valid_now());
    }

    #[test]
    fn grants_are_capped() {
        let lease = Lease::new();
        let now = now_nanos();
        lease.record_send(1, now);
        lease.on_ack(1, Duration::from_secs(3600));
        assert!(lease.remaining() <= MAX_LEASE);
    }
}
