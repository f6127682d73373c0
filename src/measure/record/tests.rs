//! Tests of the recorders: every due operation is counted once under one outcome and observed,
//! failures at no less than their deadline.

use super::*;
use crate::measure::metrics::Metrics;

const DEADLINE: Duration = Duration::from_secs(2);

#[test]
fn every_outcome_exists_from_the_start() {
    let metrics = Metrics::new("t");
    let _r = OpRecorder::new(&metrics.traffic_shard(), "scylla", "write", DEADLINE);
    let text = String::from_utf8(metrics.encode()).unwrap();
    for o in Outcome::ALL {
        let series = format!(
            "chatload_operations_total{{backend=\"scylla\",op=\"write\",outcome=\"{}\"}} 0",
            o.label()
        );
        assert!(text.contains(&series), "{series}");
    }
    assert!(text.contains("chatload_operations_due_total{backend=\"scylla\",op=\"write\"} 0"));
}

#[test]
fn completed_counts_and_observes_both_latencies_per_operation() {
    let m = Metrics::new("t").traffic_shard();
    let r = OpRecorder::new(&m, "redis", "write", DEADLINE);
    let t0 = Instant::now();
    r.due(12);
    r.completed(
        Outcome::Ok,
        10,
        t0,
        t0 + Duration::from_millis(3),
        t0 + Duration::from_millis(4),
    );
    r.not_sent(Outcome::Dropped, 2);
    assert_eq!(r.total(Outcome::Ok), 10);
    assert_eq!(r.total(Outcome::Dropped), 2);
    // One observation per operation: a batch of 10 is 10 observations.
    assert_eq!(r.duration.get_sample_count(), 12);
    assert!((r.duration.get_sample_sum() - (10.0 * 0.004 + 2.0 * 2.0)).abs() < 1e-9);
    assert_eq!(r.service.get_sample_count(), 10, "only sent operations");
    assert!((r.service.get_sample_sum() - 10.0 * 0.001).abs() < 1e-9);
    let snap = r.snapshot();
    assert_eq!((snap.due, snap.total()), (12, 12));
    assert_eq!(snap.buckets.count, 12);
    assert_eq!(snap.duration.count, 12);
    assert!(
        (snap.duration.p50 - 0.004).abs() < 0.00001,
        "{:?}",
        snap.duration
    );
    assert!(
        (snap.duration.max - 2.0).abs() < 0.002,
        "{:?}",
        snap.duration
    );
    assert_eq!(r.begin_window().total(), 12);
    assert_eq!(r.snapshot().duration.count, 0);
    assert_eq!(
        r.snapshot().get(Outcome::Ok),
        10,
        "counters are never reset"
    );
}

/// A failure that came back in 500 µs is observed at its deadline: an error storm never makes
/// the latency look better. A slow failure keeps its own, longer latency.
#[test]
fn failures_are_observed_at_no_less_than_their_deadline() {
    let m = Metrics::new("t").traffic_shard();
    let r = OpRecorder::new(&m, "scylla", "write", DEADLINE);
    let t0 = Instant::now();
    let fast = t0 + Duration::from_micros(500);
    for outcome in [Outcome::Error, Outcome::Unavailable, Outcome::Overloaded] {
        r.completed(outcome, 1, t0, t0, fast);
    }
    r.completed(Outcome::Timeout, 1, t0, t0, t0 + Duration::from_secs(3));
    r.not_sent(Outcome::Unavailable, 1);
    let d = r.snapshot().duration;
    assert_eq!(d.count, 5);
    assert!(d.p50 >= 2.0 && d.p50 < 2.01, "{d:?}");
    assert!(d.max >= 3.0 && d.max < 3.01, "{d:?}");
    // The histogram Prometheus scrapes agrees: nothing at or below 1 s.
    let b = r.snapshot().buckets;
    assert_eq!(b.above(1.0), Some(5));
    // Service time keeps what the server really took, for the ones sent.
    assert_eq!(r.service.get_sample_count(), 4);
    assert!(r.service.get_sample_sum() < 3.01);
}

#[test]
fn a_window_counts_only_what_happened_in_it() {
    let m = Metrics::new("t").traffic_shard();
    let r = OpRecorder::new(&m, "scylla", "write", DEADLINE);
    let t0 = Instant::now();
    r.due(3);
    r.completed(Outcome::Ok, 3, t0, t0, t0 + Duration::from_millis(1));
    let start = r.begin_window();
    r.due(5);
    r.completed(Outcome::Ok, 4, t0, t0, t0 + Duration::from_millis(2));
    r.not_sent(Outcome::Dropped, 1);
    let w = r.snapshot().minus_counts(&start);
    assert_eq!((w.due, w.total()), (5, 5));
    assert_eq!((w.get(Outcome::Ok), w.get(Outcome::Dropped)), (4, 1));
    assert_eq!(w.buckets.count, 5);
    // The HDR histograms were emptied at the window's start: 4 at 2 ms and 1 at 2 s.
    assert_eq!(w.duration.count, 5);
    let mean = (4.0 * 0.002 + 2.0) / 5.0;
    assert!((w.duration.mean - mean).abs() < 0.001, "{:?}", w.duration);
}

/// Failures are logged once per interval; the others are counted to be reported with the next.
#[test]
fn failure_logs_are_rate_limited() {
    let m = Metrics::new("t").traffic_shard();
    let r = OpRecorder::new(&m, "redis", "write", DEADLINE);
    for _ in 0..5 {
        assert_eq!(r.failed(Outcome::Error, &"refused"), Outcome::Error);
    }
    assert!(
        r.last_log_ms.load(Ordering::Relaxed) > 0,
        "the first was logged"
    );
    assert_eq!(
        r.suppressed.load(Ordering::Relaxed),
        4,
        "the next four were not"
    );
    // An interval later the next one is logged again, and reports the four.
    let interval = ERROR_LOG_INTERVAL.as_millis() as u64;
    let mut later = OpRecorder::new(&m, "redis", "write", DEADLINE);
    later.start = Instant::now()
        .checked_sub(Duration::from_secs(100))
        .expect("the clock is past 100 s");
    later.log_failure(Outcome::Error, &"refused");
    let first = later.last_log_ms.load(Ordering::Relaxed);
    assert!(first > 100_000, "{first}");
    later.log_failure(Outcome::Error, &"refused");
    assert_eq!(later.suppressed.load(Ordering::Relaxed), 1);
    later
        .last_log_ms
        .store(first - interval - 1, Ordering::Relaxed);
    later.log_failure(Outcome::Error, &"refused");
    assert_eq!(
        later.suppressed.load(Ordering::Relaxed),
        0,
        "logged again after the interval, with the suppressed count"
    );
}

#[test]
fn lag_is_taken_from_the_schedule_to_the_send() {
    let m = Metrics::new("t").traffic_shard();
    let lag = LagRecorder::new(m.schedule_lag.clone());
    let t0 = Instant::now();
    lag.sent(t0, t0 + Duration::from_micros(150));
    lag.sent(t0 + Duration::from_secs(1), t0); // never negative
    assert_eq!(m.schedule_lag.get_sample_count(), 2);
    let p = LagRecorder::merged_percentiles(&[&lag]);
    assert!((p.max - 0.00015).abs() < 0.000001, "{p:?}");
    lag.reset();
    assert_eq!(LagRecorder::merged_percentiles(&[&lag]).count, 0);
}

#[test]
fn exact_percentiles_are_not_bucket_interpolated() {
    let m = Metrics::new("t").traffic_shard();
    let r = OpRecorder::new(&m, "scylla", "write", DEADLINE);
    let t0 = Instant::now();
    // 990 requests of 1.2 ms and 10 of 3.3 ms: p99 is 1.2 ms, p99.9 is 3.3 ms.
    for i in 0..1000 {
        let d = if i < 990 { 1200 } else { 3300 };
        r.completed(Outcome::Ok, 1, t0, t0, t0 + Duration::from_micros(d));
    }
    let p = r.snapshot().duration;
    assert!((p.p99 - 0.0012).abs() < 0.000002, "{p:?}");
    assert!((p.p999 - 0.0033).abs() < 0.000004, "{p:?}");
    assert_eq!(p.count, 1000);
}

/// Two shards' recorders of one (backend, op) add up: counts, buckets and the HDR percentiles of
/// all their operations together; a window begins on both at once.
#[test]
fn shards_merge_into_one_snapshot() {
    let metrics = Metrics::new("t");
    let (a, b) = (metrics.traffic_shard(), metrics.traffic_shard());
    let ra = OpRecorder::new(&a, "scylla", "write", DEADLINE);
    let rb = OpRecorder::new(&b, "scylla", "write", DEADLINE);
    let t0 = Instant::now();
    let ms = Duration::from_millis;
    ra.due(90);
    ra.completed(Outcome::Ok, 90, t0, t0, t0 + ms(1));
    rb.due(11);
    rb.completed(Outcome::Ok, 10, t0, t0, t0 + ms(100));
    rb.not_sent(Outcome::Dropped, 1);
    let s = merged_snapshot(&[&ra, &rb]);
    assert_eq!(
        (s.due, s.get(Outcome::Ok), s.get(Outcome::Dropped)),
        (101, 100, 1)
    );
    assert_eq!(s.buckets.count, 101);
    assert_eq!(
        s.buckets.above(0.005),
        Some(11),
        "b's 10 slow ones and its drop"
    );
    // p90 lies in a's fast operations, p95 in b's slow ones: only a merged histogram knows.
    assert!(s.duration.p50 < 0.002, "{:?}", s.duration);
    assert!(s.duration.p99 > 0.09, "{:?}", s.duration);
    assert_eq!(s.duration.count, 101);
    let w = merged_begin_window(&[&ra, &rb]);
    assert_eq!(w.total(), 101);
    let after = merged_snapshot(&[&ra, &rb]);
    assert_eq!(after.duration.count, 0, "both shards' windows began");
    assert_eq!(after.total(), 101, "counts are cumulative");
    let text = String::from_utf8(metrics.encode()).unwrap();
    assert!(
        text.contains(r#"chatload_operations_total{backend="scylla",op="write",outcome="ok"} 100"#),
        "{text}"
    );
}
