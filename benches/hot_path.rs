//! The traffic's own work per message, without the network: generate the message, keep the
//! timetable (one pacer step dispatching it), and record its outcome, latencies and schedule lag.
//! Also the render of `/metrics` with two traffic threads' series and every probe's.
//! `cargo bench --bench hot_path`; the figures are in bench/RESULTS.md.

use chatload::chat::workload::{Message, Workload};
use chatload::config::{InstanceConfig, TrafficConfig};
use chatload::measure::metrics::Metrics;
use chatload::measure::record::{LagRecorder, OpRecorder, Outcome};
use chatload::traffic::pacer::{Dispatch, Op, Pacer, TargetRates};
use criterion::{Criterion, black_box, criterion_group, criterion_main};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Generates each due write and records it as done 300 µs after its schedule.
struct Generate {
    workload: Workload,
    recorder: OpRecorder,
    lag: LagRecorder,
    last: Option<Arc<Vec<Message>>>,
}

impl Dispatch for Generate {
    fn dispatch(&mut self, _op: Op, scheduled: Instant, now: Instant) {
        let messages = Arc::new(self.workload.messages(1, 1_700_000_000_000));
        self.recorder.due(1);
        self.lag.sent(scheduled, now);
        self.recorder.completed(
            Outcome::Ok,
            1,
            scheduled,
            now,
            now + Duration::from_micros(300),
        );
        self.last = Some(black_box(messages));
    }
}

fn per_message(c: &mut Criterion) {
    let metrics = Metrics::new("bench");
    let shard = metrics.traffic_shard();
    let epoch = Instant::now();
    let rates = Arc::new(TargetRates::started(100_000.0, 0.0, epoch));
    let dispatch = Generate {
        workload: Workload::new(&TrafficConfig::default(), &InstanceConfig::default(), 1),
        recorder: OpRecorder::new(&shard, "scylla", "write", Duration::from_secs(2)),
        lag: LagRecorder::new(shard.schedule_lag.clone()),
        last: None,
    };
    let mut pacer = Pacer::new(rates, epoch, dispatch);
    let mut now = epoch;
    c.bench_function("generate + schedule + record, per message", |b| {
        b.iter(|| {
            // 100,000/s: one write falls due every 10 µs.
            now += Duration::from_micros(10);
            black_box(pacer.step(now))
        })
    });
}

/// `/metrics` as a daemon renders it: two traffic threads' series summed, every probe's series.
fn render_metrics(c: &mut Criterion) {
    let metrics = Metrics::new("bench");
    let t0 = Instant::now();
    for _ in 0..2 {
        let shard = metrics.traffic_shard();
        for (backend, op) in [("scylla", "write"), ("scylla", "read"), ("redis", "write")] {
            let r = OpRecorder::new(&shard, backend, op, Duration::from_secs(2));
            r.due(1000);
            r.completed(Outcome::Ok, 1000, t0, t0, t0 + Duration::from_millis(1));
        }
        shard.in_flight.with_label_values(&["scylla"]).set(3);
        shard.schedule_lag.observe(0.0001);
    }
    for probe in chatload::probes::registry::catalog().specs() {
        let name = probe.name;
        metrics.probe_success.with_label_values(&[name]).set(1);
        metrics.probe_runs.with_label_values(&[name, "ok"]).inc();
        metrics
            .probe_duration
            .with_label_values(&[name])
            .observe(0.002);
    }
    c.bench_function("render /metrics", |b| {
        b.iter(|| black_box(metrics.encode()))
    });
}

criterion_group!(benches, per_message, render_metrics);
criterion_main!(benches);
