//! Property: the hot path allocates nothing. check_produce / check_fetch on
//! the Ok path, and record_produce of a known partition after its first
//! record, are measured with a counting global allocator (this test binary only).
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use baton_agent::testing::{grant_lease, idle_agent, partition, update};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: defers every call to the system allocator; only counts, per thread.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn checks_and_records_do_not_allocate() {
    let agent = idle_agent(1);
    let parts = (0..64).map(|p| partition("orders", p, 1, 3, &[1, 2, 3])).collect();
    baton_agent::testing::apply(&agent, &update(1, true, parts, &[]));
    grant_lease(&agent, Duration::from_secs(60));
    // Warm up: the first record of a partition may grow the dirty queue.
    for p in 0..64 {
        agent.record_produce("orders", p, 1);
        assert_eq!(agent.check_produce("orders", p), Ok(3));
    }
    let before = allocations();
    for i in 0..10_000i64 {
        let p = (i % 64) as i32;
        assert_eq!(agent.check_produce("orders", p), Ok(3));
        assert_eq!(agent.check_fetch("orders", p, 3), Ok(3));
        agent.record_produce("orders", p, i);
    }
    assert_eq!(allocations() - before, 0, "hot path allocated");
}
