//! Heap allocations on the traffic's hot path, counted by a counting allocator (this test binary's
//! global allocator; it counts the calling thread's allocations only). Needs no server.
//!
//! Per message the workload needs its text (one `String`) and the operation its messages (one
//! `Vec`, shared by the database and the Redis side through one `Arc`). Keeping the timetable and
//! recording an operation's outcome and latencies need nothing from the heap.

use chatload::chat::workload::Workload;
use chatload::config::{InstanceConfig, TrafficConfig};
use chatload::measure::metrics::Metrics;
use chatload::measure::record::{LagRecorder, OpRecorder, Outcome};
use chatload::traffic::pacer::{Dispatch, Op, Pacer, TargetRates};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded to the system allocator unchanged; the counter is a
// const-initialized thread-local, which itself never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: the caller upholds `alloc`'s contract, which we pass on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Allocations (and reallocations) `f` makes on this thread.
fn allocations(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

const N: u64 = 20_000;

#[test]
fn generating_a_message_allocates_its_text_and_its_operation_only() {
    let cfg = TrafficConfig::default(); // every message type in the mix
    let mut workload = Workload::new(&cfg, &InstanceConfig::default(), 7);
    let mut kept = Vec::with_capacity(N as usize);
    let n = allocations(|| {
        for i in 0..N {
            kept.push(Arc::new(workload.messages(1, i as i64)));
        }
    });
    let per_message = n as f64 / N as f64;
    eprintln!("generate: {per_message:.3} allocations per message");
    // Text, Vec, Arc.
    assert!(
        per_message <= 3.0,
        "{per_message:.3} allocations per message"
    );
}

struct Nothing(u64);

impl Dispatch for Nothing {
    fn dispatch(&mut self, _op: Op, _scheduled: Instant, _now: Instant) {
        self.0 += 1;
    }
}

#[test]
fn keeping_the_timetable_allocates_nothing() {
    let epoch = Instant::now();
    let rates = Arc::new(TargetRates::started(100_000.0, 10_000.0, epoch));
    let mut pacer = Pacer::new(rates, epoch, Nothing(0));
    pacer.step(epoch); // takes in the timetable's segments (once per rate change)
    let n = allocations(|| {
        for i in 1..=N {
            pacer.step(epoch + Duration::from_micros(10 * i));
        }
    });
    // 0 to 0.2 s (both ends) at 100,000 writes and 10,000 reads a second.
    assert_eq!(pacer.dispatcher().0, 20_001 + 2_001);
    assert_eq!(
        n,
        0,
        "allocations while dispatching {} operations",
        pacer.dispatcher().0
    );
}

#[test]
fn recording_an_operation_allocates_nothing() {
    let metrics = Metrics::new("t");
    let shard = metrics.traffic_shard();
    let recorder = OpRecorder::new(&shard, "scylla", "write", Duration::from_secs(2));
    let lag = LagRecorder::new(shard.schedule_lag.clone());
    let t0 = Instant::now();
    // The first observations size the HDR histograms' counts.
    recorder.completed(Outcome::Ok, 1, t0, t0, t0 + Duration::from_secs(5));
    lag.sent(t0, t0 + Duration::from_millis(900));
    let n = allocations(|| {
        for i in 0..N {
            let sent = t0 + Duration::from_micros(i % 1000);
            let done = sent + Duration::from_micros(100 + i % 5000);
            recorder.due(1);
            lag.sent(t0, sent);
            recorder.completed(Outcome::Ok, 1, t0, sent, done);
        }
        recorder.not_sent(Outcome::Dropped, 3);
    });
    assert_eq!(recorder.total(Outcome::Ok), N + 1);
    assert_eq!(n, 0, "allocations while recording {N} operations");
}
