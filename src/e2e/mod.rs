//! The end-to-end canary of a chat service (`[e2e]`): open-loop posts and reads over HTTP, a steady
//! population of WebSocket subscribers, each message correlated by an id registered before its post
//! is sent ([`ledger`]); the database read back by primary key and the ingest queue watched
//! ([`readback`]).
//!
//! Two threads: `chatload-e2e` runs the posting and reading timetables, the ledger's deadlines, the
//! read-backs and the queue watch; `chatload-e2e-rx` owns every subscriber socket and only reads
//! frames, so frame handling and scheduled starts never delay each other. All times are monotonic
//! instants of this one process: no clocks are compared across hosts.
//!
//! Post *k* is due at `start + k / rate`, round-robin over this instance's channels, whatever the
//! replies do; its latency counts from that instant. Instance *i* of *n* owns the channels
//! ≡ *i* (mod *n*), 1/*n* of the rates and of the subscribers.

pub mod http;
pub mod ledger;
pub mod net;
pub mod readback;
pub mod subscribers;

use self::http::{Failure, Pool, Reply};
use self::ledger::{Ledger, Population};
use self::net::Dialer;
use self::readback::ReadBack;
use self::subscribers::Shared;
use crate::chat::text::Texts;
use crate::chat::workload::{channel_id, sender_id};
use crate::config::template::{Placeholder, push_json_escaped};
use crate::config::{Config, E2eConfig, E2eTemplates, instance_rate};
use crate::measure::e2e::{CHAT_API, E2eMetrics, E2eSnapshot, E2eView};
use crate::measure::metrics::Metrics;
use crate::measure::record::{OpRecorder, Outcome, merged_snapshot};
use crate::store::{RedisBackend, ScyllaBackend};
use bytes::Bytes;
use hyper::Method;
use hyper::header::{HeaderName, HeaderValue};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uuid::Uuid;

/// A post that was not acknowledged this long before a read makes that read `stale` if missing.
pub const FRESHNESS: Duration = Duration::from_secs(1);
/// How often the ledger's deadlines are checked.
const EXPIRE_EVERY: Duration = Duration::from_millis(20);
/// How often the subscriber gauges are set and ready time accrued.
const POPULATION_EVERY: Duration = Duration::from_millis(250);
/// Senders the posts rotate through.
const SENDERS: u64 = 1000;

/// Why the canary could not start.
#[derive(Debug, thiserror::Error)]
pub enum CanaryError {
    /// A URL, template, header or TLS file is unusable (validation catches these first).
    #[error("e2e: {0}")]
    Setup(String),
    /// A thread could not be started.
    #[error("failed to start the e2e threads: {0}")]
    Thread(std::io::Error),
}

struct Ctx {
    cfg: E2eConfig,
    instance: u32,
    channels: Vec<Uuid>,
    templates: E2eTemplates,
    headers: Vec<(HeaderName, HeaderValue)>,
    ledger: Arc<Ledger>,
    metrics: Arc<E2eMetrics>,
    post_pool: Pool,
    read_pool: Pool,
    post: OpRecorder,
    read: OpRecorder,
    in_flight: prometheus::IntGauge,
    requests: AtomicUsize,
    answered: AtomicBool,
    texts: Mutex<(Texts, SmallRng)>,
    acks: Vec<Mutex<VecDeque<(Instant, Uuid)>>>,
    readback: tokio::sync::OnceCell<ReadBack>,
    scylla: Arc<ScyllaBackend>,
}

/// The running canary.
pub struct Canary {
    ctx: Arc<Ctx>,
    population: Arc<Population>,
    stop_pacing: CancellationToken,
    stop_all: CancellationToken,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    post_rate: f64,
    read_rate: f64,
}

impl Canary {
    /// Start the canary of `cfg.e2e`: its metrics are registered in `metrics`' registry now.
    pub fn start(
        cfg: &Config,
        metrics: &Metrics,
        scylla: Arc<ScyllaBackend>,
        redis: RedisBackend,
    ) -> Result<Self, CanaryError> {
        let e = &cfg.e2e;
        let limit = crate::config::raise_nofile_limit();
        let templates = e
            .templates()
            .map_err(|(k, m)| CanaryError::Setup(format!("{k}: {m}")))?;
        let e2e_metrics = Arc::new(E2eMetrics::register_with(
            metrics.registry(),
            &crate::measure::slo::e2e_latency_buckets(cfg),
            e.queue.enabled,
        ));
        let (index, count) = (cfg.instance.index, cfg.instance.count.max(1));
        let channels: Vec<Uuid> = (0..e.channels)
            .filter(|c| c % count == index)
            .map(|c| channel_id(u64::from(c)))
            .collect();
        if channels.is_empty() {
            return Err(CanaryError::Setup(format!(
                "instance {index} of {count} owns none of the {} channels (e2e.channels)",
                e.channels
            )));
        }
        let subscribers = share(e.subscribers.count, index, count) as usize;
        if subscribers as u64 + 64 > limit {
            return Err(CanaryError::Setup(format!(
                "{subscribers} subscribers do not fit the open-file limit {limit}"
            )));
        }
        let population = Arc::new(Population::new(subscribers as u32, channels.len() as u32));
        let post_rate = instance_rate(e.post.rate, cfg);
        let read_rate = instance_rate(e.read.rate, cfg);
        let timeout = e.delivery_timeout.get();
        let cap = ((4.0 * post_rate * timeout.as_secs_f64()).ceil() as usize).max(64);
        let ledger = Arc::new(Ledger::new(
            e2e_metrics.clone(),
            population.clone(),
            timeout,
            cap,
        ));
        let tls = if e.base_url.starts_with("https://") || e.subscribers.url.starts_with("wss://") {
            Some(
                crate::tls::client_config(&crate::tls::ClientTls {
                    ca_file: &e.tls.ca_file,
                    cert_file: &e.tls.cert_file,
                    key_file: &e.tls.key_file,
                    verify_hostname: true,
                })
                .map_err(|err| CanaryError::Setup(format!("e2e.tls: {err}")))?,
            )
        } else {
            None
        };
        let dialer = Dialer::new(tls);
        let auth = match e.auth_value() {
            Ok(Some(v)) if !e.auth_header.is_empty() => Some((e.auth_header.clone(), v)),
            Ok(_) => None,
            Err(err) => {
                return Err(CanaryError::Setup(format!(
                    "e2e.auth_value_file: cannot read {:?}: {err}",
                    e.auth_value_file
                )));
            }
        };
        let mut headers = Vec::new();
        if let Some((k, v)) = &auth {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|err| CanaryError::Setup(format!("e2e.auth_header: {err}")))?;
            let value = HeaderValue::from_str(v)
                .map_err(|_| CanaryError::Setup("e2e.auth_value: not a header value".into()))?;
            headers.push((name, value));
        }
        let shard = metrics.traffic_shard();
        let request_timeout = e.request_timeout.get();
        for (op, rate) in [("api_post", post_rate), ("api_read", read_rate)] {
            metrics.target_rate.with_label_values(&[op]).set(rate);
        }
        let mut rng = SmallRng::seed_from_u64(cfg.traffic.seed.unwrap_or_else(rand::random));
        let texts = Texts::new(&cfg.traffic, &mut rng);
        let pool = |op, n: u32| {
            Pool::new(
                op,
                n as usize,
                &e.base_url,
                dialer.clone(),
                e2e_metrics.clone(),
            )
            .map_err(|err| CanaryError::Setup(format!("e2e.base_url: {err}")))
        };
        let ctx = Arc::new(Ctx {
            cfg: e.clone(),
            instance: index,
            templates: templates.clone(),
            headers,
            ledger,
            metrics: e2e_metrics.clone(),
            post_pool: pool("api_post", e.post.connections)?,
            read_pool: pool("api_read", e.read.connections)?,
            post: OpRecorder::new(&shard, CHAT_API, "api_post", request_timeout),
            read: OpRecorder::new(&shard, CHAT_API, "api_read", request_timeout),
            in_flight: shard.in_flight.with_label_values(&[CHAT_API]),
            requests: AtomicUsize::new(0),
            answered: AtomicBool::new(false),
            texts: Mutex::new((texts, rng)),
            acks: channels
                .iter()
                .map(|_| Mutex::new(VecDeque::new()))
                .collect(),
            readback: tokio::sync::OnceCell::new(),
            scylla,
            channels: channels.clone(),
        });
        let (urls, frames) = Shared::render(
            &templates.ws_url,
            templates.subscribe.as_ref(),
            &channels,
            subscribers,
            index,
        );
        let shared = Arc::new(Shared {
            ledger: ctx.ledger.clone(),
            population: population.clone(),
            metrics: e2e_metrics.clone(),
            dialer,
            urls,
            subscribe: frames,
            auth,
            ready: (!e.subscribers.ready_pointer.is_empty()).then(|| {
                (
                    e.subscribers.ready_pointer.clone(),
                    e.subscribers.ready_value.clone(),
                )
            }),
            id_pointer: e.subscribers.id_pointer.clone(),
            settle: e.subscribers.settle.get(),
            timeout: request_timeout,
            ping_interval: e.subscribers.ping_interval.get(),
            connect_every: Duration::from_secs_f64(1.0 / e.subscribers.connect_rate),
            next_connect: Mutex::new(Instant::now()),
            connecting: Default::default(),
        });
        let stop_pacing = CancellationToken::new();
        let stop_all = CancellationToken::new();
        let mut threads = Vec::new();
        {
            let (shared, stop) = (shared.clone(), stop_all.clone());
            threads.push(
                std::thread::Builder::new()
                    .name("chatload-e2e-rx".into())
                    .spawn(move || current_thread(receive(shared, subscribers, stop)))
                    .map_err(CanaryError::Thread)?,
            );
        }
        {
            let (ctx, pacing, stop) = (ctx.clone(), stop_pacing.clone(), stop_all.clone());
            let queue = e.queue.enabled.then(|| (redis, e.queue.clone()));
            threads.push(
                std::thread::Builder::new()
                    .name("chatload-e2e".into())
                    .spawn(move || {
                        current_thread(drive(ctx, post_rate, read_rate, queue, pacing, stop))
                    })
                    .map_err(CanaryError::Thread)?,
            );
        }
        info!(base_url = %e.base_url, posts_per_second = post_rate, reads_per_second = read_rate,
              subscribers, channels = channels.len(), "e2e canary started");
        Ok(Self {
            ctx,
            population,
            stop_pacing,
            stop_all,
            threads: Mutex::new(threads),
            post_rate,
            read_rate,
        })
    }

    /// What the canary measured so far.
    pub fn snapshot(&self) -> E2eView {
        self.view(self.ctx.metrics.snapshot())
    }

    /// Start a measuring window (see [`E2eMetrics::begin_window`]).
    pub fn begin_window(&self) -> E2eView {
        let canary = self.ctx.metrics.begin_window();
        let (post, read) = (self.ctx.post.begin_window(), self.ctx.read.begin_window());
        E2eView { canary, post, read }
    }

    /// `canary` with the two API ops, and the API latency of both together (their exact
    /// histograms merged, since the start or the last window).
    fn view(&self, mut canary: E2eSnapshot) -> E2eView {
        let (post, read) = (&self.ctx.post, &self.ctx.read);
        canary.api = merged_snapshot(&[post, read]).duration;
        E2eView {
            canary,
            post: post.snapshot(),
            read: read.snapshot(),
        }
    }

    /// Ready subscribers, and the target.
    pub fn subscribers(&self) -> (usize, usize) {
        (self.population.ready_count(), self.population.count())
    }

    /// Whether the service has answered any request (with any status).
    pub fn answered(&self) -> bool {
        self.ctx.answered.load(Ordering::Relaxed)
    }

    /// Posts and reads per second this instance starts.
    pub fn rates(&self) -> (f64, f64) {
        (self.post_rate, self.read_rate)
    }

    /// Stop posting and reading, let the requests in flight end and every pending post reach its
    /// delivery timeout (so each is counted), then close the sockets. Returns whether everything
    /// ended in time.
    pub async fn stop(&self) -> bool {
        self.stop_pacing.cancel();
        let ctx = &self.ctx;
        let limit = Instant::now()
            + ctx.cfg.request_timeout.get()
            + ctx.cfg.delivery_timeout.get()
            + Duration::from_secs(2);
        let mut clean = true;
        while ctx.requests.load(Ordering::Acquire) > 0 || ctx.ledger.pending() > 0 {
            if Instant::now() > limit {
                clean = false;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.stop_all.cancel();
        let threads: Vec<_> =
            std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
        clean
    }
}

impl Canary {
    /// Stop at once, without waiting for pending deliveries (the daemon's shutdown).
    pub fn halt(&self) {
        self.stop_pacing.cancel();
        self.stop_all.cancel();
    }
}

impl Drop for Canary {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Instance `index` of `count`'s share of `total` (the first ones take the remainder).
fn share(total: u32, index: u32, count: u32) -> u32 {
    total / count + u32::from(index < total % count)
}

fn current_thread(f: impl std::future::Future<Output = ()>) {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(f),
        Err(e) => warn!(error = %e, "e2e: could not build a runtime"),
    }
}

/// The receiving thread: every subscriber, the population gauges, its own wake-up lag.
async fn receive(shared: Arc<Shared>, count: usize, stop: CancellationToken) {
    for s in 0..count {
        tokio::spawn(subscribers::run(s, shared.clone(), stop.clone()));
    }
    let mut tick = tokio::time::interval(POPULATION_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = Instant::now();
    loop {
        tokio::select! {
            at = tick.tick() => {
                let now = Instant::now();
                shared.metrics.rx_lag(now.saturating_duration_since(at));
                let ready = shared.population.ready_count() as i64;
                let connecting = shared.connecting.load(Ordering::Relaxed);
                shared.metrics.subscribers(count as i64, connecting, ready);
                shared.metrics.subscriber_time((now - last).as_secs_f64(), ready, count as i64);
                last = now;
            }
            _ = stop.cancelled() => break,
        }
    }
    // Let the subscribers close their sockets.
    tokio::time::sleep(Duration::from_millis(250)).await;
}

/// The posting thread.
async fn drive(
    ctx: Arc<Ctx>,
    post_rate: f64,
    read_rate: f64,
    queue: Option<(RedisBackend, crate::config::QueueConfig)>,
    pacing: CancellationToken,
    stop: CancellationToken,
) {
    if let Some((redis, q)) = queue {
        tokio::spawn(readback::watch_queue(
            redis,
            q,
            ctx.metrics.clone(),
            stop.clone(),
        ));
    }
    if ctx.cfg.visibility.enabled {
        tokio::spawn(connect_readback(ctx.clone(), stop.clone()));
    }
    {
        let (ctx, stop) = (ctx.clone(), stop.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(EXPIRE_EVERY);
            loop {
                tokio::select! {
                    _ = tick.tick() => { ctx.ledger.expire(std::time::Instant::now()); }
                    _ = stop.cancelled() => return,
                }
            }
        });
    }
    let start = Instant::now();
    let posting = timetable(post_rate, start, pacing.clone(), {
        let ctx = ctx.clone();
        move |k, at| {
            tokio::spawn(post(ctx.clone(), k, at));
        }
    });
    let reading = timetable(read_rate, start, pacing, {
        let ctx = ctx.clone();
        move |k, at| {
            tokio::spawn(read(ctx.clone(), k, at));
        }
    });
    tokio::join!(posting, reading);
    stop.cancelled().await;
}

/// Call `due(k, instant)` for operation *k* at `start + k / rate` until `stop`; every operation
/// whose instant has passed is started at once (each keeps its own instant).
async fn timetable(
    rate: f64,
    start: Instant,
    stop: CancellationToken,
    mut due: impl FnMut(u64, Instant),
) {
    if rate <= 0.0 {
        return;
    }
    let mut k: u64 = 0;
    loop {
        let at = start + Duration::from_secs_f64(k as f64 / rate);
        tokio::select! {
            _ = tokio::time::sleep_until(at) => {}
            _ = stop.cancelled() => return,
        }
        let now = Instant::now();
        loop {
            let at = start + Duration::from_secs_f64(k as f64 / rate);
            if at > now {
                break;
            }
            due(k, at);
            k += 1;
        }
    }
}

async fn connect_readback(ctx: Arc<Ctx>, stop: CancellationToken) {
    let mut pause = Duration::from_millis(200);
    loop {
        if let Some(session) = ctx.scylla.session() {
            match ReadBack::new(
                session,
                &ctx.cfg.visibility.keyspace,
                ctx.metrics.clone(),
                ctx.cfg.visibility.deadline.get(),
            )
            .await
            {
                Ok(r) => {
                    let _ = ctx.readback.set(r);
                    return;
                }
                Err(e) => warn!(error = %e, keyspace = %ctx.cfg.visibility.keyspace,
                                "e2e: cannot prepare the read-back yet"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.cancelled() => return,
        }
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

fn render_post(
    ctx: &Ctx,
    id: Uuid,
    channel: Uuid,
    seq: u64,
    k: u64,
    at: Instant,
) -> (String, Bytes) {
    let sender = sender_id(k % SENDERS);
    let ts_ms = crate::chat::now_ms()
        - i64::try_from(Instant::now().saturating_duration_since(at).as_millis()).unwrap_or(0);
    let text = {
        let mut guard = ctx.texts.lock().unwrap_or_else(|e| e.into_inner());
        let (texts, rng) = &mut *guard;
        texts.words(rng, 1.0)
    };
    let value = |p: Placeholder, out: &mut String| match p {
        Placeholder::Base => out.push_str(&ctx.cfg.base_url),
        Placeholder::Channel => out.push_str(&channel.to_string()),
        Placeholder::MessageId => out.push_str(&id.to_string()),
        Placeholder::SenderId => out.push_str(&sender.to_string()),
        Placeholder::Text => push_json_escaped(out, &text),
        Placeholder::Seq => out.push_str(&seq.to_string()),
        Placeholder::TsMs => out.push_str(&ts_ms.to_string()),
        Placeholder::Instance => out.push_str(&ctx.instance.to_string()),
        Placeholder::Subscriber => {}
    };
    let url = ctx.templates.post_url.render(value);
    let body = ctx.templates.post_body.render(value);
    (url, Bytes::from(body))
}

/// Send one request of `op` and count it, whatever became of it: observed from its schedule (a
/// failure at no less than the request timeout: the recorder's rule), a failure logged.
async fn exchange(
    ctx: &Ctx,
    (pool, rec): (&Pool, &OpRecorder),
    method: Method,
    url: &str,
    body: Option<Bytes>,
    scheduled: Instant,
) -> Result<Reply, Failure> {
    let result = pool
        .request(
            method,
            url,
            body,
            &ctx.headers,
            ctx.cfg.request_timeout.get(),
        )
        .await;
    let (outcome, sent) = match &result {
        Ok(reply) => {
            ctx.answered.store(true, Ordering::Relaxed);
            let outcome = reply.outcome();
            if outcome != Outcome::Ok {
                rec.log_failure(outcome, &format!("HTTP {}", reply.status));
            }
            (outcome, Some(reply.sent))
        }
        Err(f) => {
            rec.log_failure(f.outcome, &f.error);
            (f.outcome, f.sent)
        }
    };
    match sent {
        Some(sent) => rec.completed(outcome, 1, scheduled, sent, Instant::now()),
        None => rec.not_sent(outcome, 1),
    }
    result
}

struct InFlight<'a>(&'a Ctx);

impl<'a> InFlight<'a> {
    fn new(ctx: &'a Ctx) -> Self {
        ctx.requests.fetch_add(1, Ordering::AcqRel);
        ctx.in_flight.inc();
        Self(ctx)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.requests.fetch_sub(1, Ordering::AcqRel);
        self.0.in_flight.dec();
    }
}

async fn post(ctx: Arc<Ctx>, k: u64, scheduled: Instant) {
    let _guard = InFlight::new(&ctx);
    ctx.post.due(1);
    let index = (k % ctx.channels.len() as u64) as u32;
    let channel = ctx.channels[index as usize];
    let Some(reg) = ctx.ledger.register(index, scheduled.into_std()) else {
        ctx.post.not_sent(Outcome::Dropped, 1);
        return;
    };
    let (url, body) = render_post(&ctx, reg.id, channel, reg.seq, k, scheduled);
    ctx.ledger.sent(reg.id, std::time::Instant::now());
    let op = (&ctx.post_pool, &ctx.post);
    match exchange(&ctx, op, Method::POST, &url, Some(body), scheduled).await {
        Ok(reply) if reply.outcome() == Outcome::Ok => {
            ctx.ledger.acked(reg.id);
            {
                let mut acks = ctx.acks[index as usize]
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                acks.push_back((Instant::now(), reg.id));
                while acks.len() > 64 {
                    acks.pop_front();
                }
            }
            sample_visibility(&ctx, &reply.body, channel, reg.id, scheduled);
        }
        Ok(_) => ctx.ledger.refused(reg.id),
        Err(f) if f.sent.is_some() => ctx.ledger.unanswered(reg.id),
        Err(_) => ctx.ledger.abandon(reg.id),
    }
}

fn sample_visibility(ctx: &Arc<Ctx>, body: &[u8], channel: Uuid, id: Uuid, scheduled: Instant) {
    let v = &ctx.cfg.visibility;
    // A deterministic share of ids (they are random): no generator on this path.
    if !v.enabled || (id.as_u128() % 10_000) as f64 >= v.sample * 10_000.0 {
        return;
    }
    let timestamp = if ctx.cfg.post.timestamp_pointer.is_empty() {
        None
    } else {
        serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|j| {
                j.pointer(&ctx.cfg.post.timestamp_pointer)
                    .and_then(|t| t.as_i64())
            })
    };
    let window_start = crate::chat::now_ms() - 60_000;
    let ctx = ctx.clone();
    tokio::spawn(async move {
        if let Some(r) = ctx.readback.get() {
            r.check(channel, id, timestamp, scheduled, window_start)
                .await;
        }
    });
}

async fn read(ctx: Arc<Ctx>, k: u64, scheduled: Instant) {
    let _guard = InFlight::new(&ctx);
    ctx.read.due(1);
    let index = (k % ctx.channels.len() as u64) as usize;
    let channel = ctx.channels[index];
    let want = {
        let acks = ctx.acks[index].lock().unwrap_or_else(|e| e.into_inner());
        let before = scheduled.checked_sub(FRESHNESS);
        acks.iter()
            .rev()
            .find(|(at, _)| before.is_some_and(|b| *at <= b))
            .map(|(_, id)| *id)
    };
    let url = ctx.templates.read_url.render(|p, out| match p {
        Placeholder::Base => out.push_str(&ctx.cfg.base_url),
        Placeholder::Channel => out.push_str(&channel.to_string()),
        Placeholder::Instance => out.push_str(&ctx.instance.to_string()),
        _ => {}
    });
    let op = (&ctx.read_pool, &ctx.read);
    if let Ok(reply) = exchange(&ctx, op, Method::GET, &url, None, scheduled).await
        && reply.outcome() == Outcome::Ok
        && let Some(id) = want
    {
        let needle = id.to_string();
        let fresh = reply
            .body
            .windows(needle.len())
            .any(|w| w == needle.as_bytes());
        ctx.metrics.read_check(fresh);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_share_subscribers_without_remainder_lost() {
        let total: u32 = (0..3).map(|i| share(10, i, 3)).sum();
        assert_eq!(total, 10);
        assert_eq!(share(10, 0, 3), 4);
        assert_eq!(share(10, 2, 3), 3);
    }
}
