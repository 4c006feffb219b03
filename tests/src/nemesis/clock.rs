//! `CLOCK_MONOTONIC` in nanoseconds: the one clock every process of a fault
//! test stamps its history events with. All processes run on one host, so
//! their readings compare. (`std::time::Instant` reads the same clock on
//! Linux but does not expose its value; `rustix` does, without `unsafe`.)

/// Nanoseconds of `CLOCK_MONOTONIC` now.
pub fn monotonic_ns() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

#[cfg(test)]
mod tests {
    #[test]
    fn monotonic_ns_moves_forward_and_matches_instant() {
        let a = super::monotonic_ns();
        let start = std::time::Instant::now();
        std::thread::sleep(std::time::Duration::from_millis(5));
        let b = super::monotonic_ns();
        let elapsed = start.elapsed().as_nanos() as u64;
        assert!(b > a);
        // Same clock: the two measures of the sleep agree to within a few ms.
        assert!((b - a).abs_diff(elapsed) < 3_000_000, "{} vs {elapsed}", b - a);
    }
}
