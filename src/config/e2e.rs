//! `[e2e]`: the end-to-end canary of a chat service: posts over HTTP, reads over HTTP, a population
//! of WebSocket subscribers, the database read back and the ingest queue watched. Off by default.

use super::backends::Secret;
use super::duration::HumanDuration;
use super::rules::Rules;
use super::template::{Placeholder, Template};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Most subscribers on one channel: the ledger keeps a channel's expected recipients in a 64-bit
/// mask.
pub const MAX_SUBSCRIBERS_PER_CHANNEL: u32 = 64;

/// `[e2e]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct E2eConfig {
    /// Run the canary.
    pub enabled: bool,
    /// The chat service's API, `http://host:port` or `https://…` (`{base}` in the templates).
    pub base_url: String,
    /// The header that carries the credential on every request and on the WebSocket upgrade;
    /// empty: none.
    pub auth_header: String,
    /// The header's value (or `CHATLOAD_E2E__AUTH_VALUE`); set this or `auth_value_file`.
    pub auth_value: Secret,
    /// A file whose first line is the header's value.
    pub auth_value_file: String,
    /// Channels the canary posts to and listens on; subscriber i listens on channel i mod channels.
    pub channels: u32,
    /// How long an HTTP request may take (connect included) before it counts as `timeout`.
    pub request_timeout: HumanDuration,
    /// How long after its scheduled start a message must reach every expected recipient; one
    /// not received by then is `lost` and observed at this latency.
    pub delivery_timeout: HumanDuration,
    /// TLS for `https://` and `wss://` URLs.
    pub tls: E2eTlsConfig,
    /// Posting messages.
    pub post: PostConfig,
    /// Reading the newest messages back over HTTP.
    pub read: ReadConfig,
    /// The WebSocket subscribers.
    pub subscribers: SubscribersConfig,
    /// Reading posted messages back from the database by primary key.
    pub visibility: VisibilityConfig,
    /// Watching the service's ingest queue in Redis.
    pub queue: QueueConfig,
}

impl Default for E2eConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            base_url: "http://127.0.0.1:8088".into(),
            auth_header: String::new(),
            auth_value: Secret::default(),
            auth_value_file: String::new(),
            channels: 16,
            request_timeout: HumanDuration::from_secs(2),
            delivery_timeout: HumanDuration::from_secs(5),
            tls: E2eTlsConfig::default(),
            post: PostConfig::default(),
            read: ReadConfig::default(),
            subscribers: SubscribersConfig::default(),
            visibility: VisibilityConfig::default(),
            queue: QueueConfig::default(),
        }
    }
}

/// `[e2e.tls]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct E2eTlsConfig {
    /// PEM CA bundle to verify the service with; empty: the system's roots.
    pub ca_file: String,
    /// PEM client certificate for mutual TLS; empty: none.
    pub cert_file: String,
    /// PEM private key of `cert_file`.
    pub key_file: String,
}

/// `[e2e.post]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PostConfig {
    /// Posts per second, summed over all instances; open loop (each starts on its timetable).
    pub rate: f64,
    /// HTTP/1.1 keep-alive connections at most, one request each at a time: the in-flight cap. A
    /// post due when all are busy is `dropped` (never queued inside chatload).
    pub connections: u32,
    /// URL template; placeholders `{base} {channel} {message_id} {sender_id} {seq} {ts_ms} {instance}`.
    pub url: String,
    /// Body template (JSON); `{text}` is JSON-escaped.
    pub body: String,
    /// JSON pointer to the stored timestamp (ms since the epoch) in a 2xx reply; empty: none (the
    /// database read-back then matches by id in the channel's newest rows).
    pub timestamp_pointer: String,
}

impl Default for PostConfig {
    fn default() -> Self {
        Self {
            rate: 100.0,
            connections: 64,
            url: "{base}/api/v1/channels/{channel}/messages".into(),
            body: r#"{"client_msg_id":"{message_id}","sender_id":"{sender_id}","text":"{text}"}"#
                .into(),
            timestamp_pointer: "/timestamp".into(),
        }
    }
}

/// `[e2e.read]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReadConfig {
    /// Reads per second, summed over all instances; 0 turns reads off.
    pub rate: f64,
    /// Keep-alive connections at most (the in-flight cap).
    pub connections: u32,
    /// URL template; placeholders `{base} {channel} {instance}`.
    pub url: String,
}

impl Default for ReadConfig {
    fn default() -> Self {
        Self {
            rate: 200.0,
            connections: 64,
            url: "{base}/api/v1/channels/{channel}/messages?limit=50".into(),
        }
    }
}

/// `[e2e.subscribers]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SubscribersConfig {
    /// WebSocket subscribers held open, summed over all instances.
    pub count: u32,
    /// Connection attempts per second at most (first connects and reconnects share it).
    pub connect_rate: f64,
    /// How often each subscriber pings; two unanswered pings force a reconnect.
    pub ping_interval: HumanDuration,
    /// Without a subscribe acknowledgement (`ready_pointer` empty), a socket counts as ready this
    /// long after it opened.
    pub settle: HumanDuration,
    /// WebSocket URL template (`ws://` or `wss://`); placeholders `{channel} {subscriber} {instance}`.
    pub url: String,
    /// A text frame sent after the socket opened; empty: none.
    pub subscribe_message: String,
    /// JSON pointer of the subscribe acknowledgement's marker; empty: no acknowledgement.
    pub ready_pointer: String,
    /// The marker's value that says "subscribed".
    pub ready_value: String,
    /// JSON pointer to the correlation id (the posted `{message_id}`) in a delivered frame.
    pub id_pointer: String,
}

impl Default for SubscribersConfig {
    fn default() -> Self {
        Self {
            count: 64,
            connect_rate: 50.0,
            ping_interval: HumanDuration::from_secs(15),
            settle: HumanDuration::from_millis(200),
            url: "ws://127.0.0.1:8089/ws?channel={channel}&user={subscriber}".into(),
            subscribe_message: String::new(),
            ready_pointer: "/op".into(),
            ready_value: "subscribed".into(),
            id_pointer: "/client_msg_id".into(),
        }
    }
}

/// `[e2e.visibility]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VisibilityConfig {
    /// Read a sample of acknowledged posts back from the database.
    pub enabled: bool,
    /// The service's keyspace (its `chat_messages` table); read only. Hosts and credentials are
    /// those of `[scylla]`.
    pub keyspace: String,
    /// Share of acknowledged posts read back (0–1).
    pub sample: f64,
    /// How long after its scheduled start a post may take to become readable; later is
    /// `not_visible`, observed at this latency.
    pub deadline: HumanDuration,
}

impl Default for VisibilityConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            keyspace: "chatsvc".into(),
            sample: 0.1,
            deadline: HumanDuration::from_secs(5),
        }
    }
}

/// `[e2e.queue]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Watch the depth of the service's ingest queue (the Redis of `[redis]`).
    pub enabled: bool,
    /// The queue's key.
    pub key: String,
    /// `list` (depth: LLEN) or `stream` (depth: lag + pending of `group`, or XLEN without one).
    pub kind: QueueKind,
    /// The consumer group of a stream; empty: XLEN.
    pub group: String,
    /// How often the depth is read.
    pub interval: HumanDuration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            key: "chatsvc:ingest".into(),
            kind: QueueKind::List,
            group: String::new(),
            interval: HumanDuration::from_secs(1),
        }
    }
}

/// What kind of Redis queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueKind {
    /// A list (LPUSH/BRPOP).
    List,
    /// A stream (XADD/XREADGROUP).
    Stream,
}

/// The templates of a valid `[e2e]`, compiled.
#[derive(Debug, Clone)]
pub struct E2eTemplates {
    /// `post.url`.
    pub post_url: Template,
    /// `post.body`.
    pub post_body: Template,
    /// `read.url`.
    pub read_url: Template,
    /// `subscribers.url`.
    pub ws_url: Template,
    /// `subscribers.subscribe_message` (`None`: empty).
    pub subscribe: Option<Template>,
}

const POST: &[Placeholder] = &[
    Placeholder::Base,
    Placeholder::Channel,
    Placeholder::MessageId,
    Placeholder::SenderId,
    Placeholder::Text,
    Placeholder::Seq,
    Placeholder::TsMs,
    Placeholder::Instance,
];
const READ: &[Placeholder] = &[
    Placeholder::Base,
    Placeholder::Channel,
    Placeholder::Instance,
];
const WS: &[Placeholder] = &[
    Placeholder::Channel,
    Placeholder::Subscriber,
    Placeholder::Instance,
];

impl E2eConfig {
    /// The compiled templates, or the first key whose template is wrong.
    pub fn templates(&self) -> Result<E2eTemplates, (String, String)> {
        let c = |key: &str, text: &str, allowed| {
            Template::compile(text, allowed).map_err(|e| (format!("e2e.{key}"), e.0))
        };
        Ok(E2eTemplates {
            post_url: c("post.url", &self.post.url, POST)?,
            post_body: c("post.body", &self.post.body, POST)?,
            read_url: c("read.url", &self.read.url, READ)?,
            ws_url: c("subscribers.url", &self.subscribers.url, WS)?,
            subscribe: if self.subscribers.subscribe_message.is_empty() {
                None
            } else {
                Some(c(
                    "subscribers.subscribe_message",
                    &self.subscribers.subscribe_message,
                    WS,
                )?)
            },
        })
    }

    /// The auth header's value, if any (`auth_value` or the first line of `auth_value_file`).
    pub fn auth_value(&self) -> std::io::Result<Option<String>> {
        super::backends::secret(self.auth_value.expose(), &self.auth_value_file)
    }

    /// Subscribers on the busiest channel.
    pub fn subscribers_per_channel(&self) -> u32 {
        self.subscribers.count.div_ceil(self.channels.max(1))
    }

    /// Every problem of `[e2e]` (checked whether it is enabled or not, so turning it on never
    /// meets a surprise).
    pub(super) fn validate(&self, v: &mut Rules, nofile_limit: u64) {
        let scheme_ok = |url: &str, schemes: &[&str]| schemes.iter().any(|s| url.starts_with(s));
        if !scheme_ok(&self.base_url, &["http://", "https://"])
            || self.base_url.ends_with('/')
            || self.base_url.contains(char::is_whitespace)
        {
            v.fail(
                "e2e.base_url",
                format!(
                    "must be http://host:port or https://host:port without a trailing '/', got {:?}",
                    self.base_url
                ),
            );
        }
        if self.auth_header.contains([' ', ':', '\n']) {
            v.fail(
                "e2e.auth_header",
                "must be a header name, e.g. Authorization",
            );
        }
        v.secret_named(
            "e2e",
            ("auth_value", "auth_value_file"),
            self.auth_value.expose(),
            &self.auth_value_file,
        );
        if self.auth_header.is_empty()
            && (!self.auth_value.is_empty() || !self.auth_value_file.is_empty())
        {
            v.fail("e2e.auth_header", "a value is set, so name the header too");
        }
        v.nonzero("e2e.channels", self.channels);
        v.positive("e2e.request_timeout", self.request_timeout);
        v.positive("e2e.delivery_timeout", self.delivery_timeout);
        if self.delivery_timeout.get() > Duration::from_secs(60) {
            v.fail(
                "e2e.delivery_timeout",
                format!("must be at most 60s, got {}", self.delivery_timeout),
            );
        }
        if !self.tls.ca_file.is_empty()
            || !self.tls.cert_file.is_empty()
            || !self.tls.key_file.is_empty()
        {
            v.client_tls(
                "e2e.tls",
                &self.tls.ca_file,
                &self.tls.cert_file,
                &self.tls.key_file,
            );
        }
        v.rate("e2e.post.rate", self.post.rate, false);
        v.nonzero("e2e.post.connections", self.post.connections);
        v.rate("e2e.read.rate", self.read.rate, true);
        v.nonzero("e2e.read.connections", self.read.connections);
        pointer(
            v,
            "e2e.post.timestamp_pointer",
            &self.post.timestamp_pointer,
        );
        if let Err((key, e)) = self.templates() {
            v.fail(key, e);
        }
        let s = &self.subscribers;
        if !scheme_ok(&s.url, &["ws://", "wss://"]) {
            v.fail(
                "e2e.subscribers.url",
                format!("must start with ws:// or wss://, got {:?}", s.url),
            );
        }
        v.rate("e2e.subscribers.connect_rate", s.connect_rate, false);
        v.positive("e2e.subscribers.ping_interval", s.ping_interval);
        pointer(v, "e2e.subscribers.ready_pointer", &s.ready_pointer);
        pointer(v, "e2e.subscribers.id_pointer", &s.id_pointer);
        if s.id_pointer.is_empty() {
            v.fail(
                "e2e.subscribers.id_pointer",
                "must point at the correlation id in a delivered frame, e.g. /client_msg_id",
            );
        }
        if u64::from(s.count) + 64 > nofile_limit {
            v.fail(
                "e2e.subscribers.count",
                format!(
                    "{} sockets do not fit this process's open-file limit ({nofile_limit}); raise \
                     it (ulimit -n) or lower the count",
                    s.count
                ),
            );
        }
        if self.channels > 0 && self.subscribers_per_channel() > MAX_SUBSCRIBERS_PER_CHANNEL {
            v.fail(
                "e2e.subscribers.count",
                format!(
                    "at most {MAX_SUBSCRIBERS_PER_CHANNEL} subscribers per channel: {} over {} \
                     channels; raise e2e.channels",
                    s.count, self.channels
                ),
            );
        }
        let vis = &self.visibility;
        if let Err(e) = super::rules::check_identifier(&vis.keyspace) {
            v.fail("e2e.visibility.keyspace", e);
        }
        if !(0.0..=1.0).contains(&vis.sample) {
            v.fail(
                "e2e.visibility.sample",
                format!("must be between 0 and 1, got {}", vis.sample),
            );
        }
        v.positive("e2e.visibility.deadline", vis.deadline);
        let q = &self.queue;
        if q.key.is_empty() || q.key.contains(char::is_whitespace) {
            v.fail(
                "e2e.queue.key",
                format!("must be non-empty without spaces, got {:?}", q.key),
            );
        }
        if q.kind == QueueKind::List && !q.group.is_empty() {
            v.fail("e2e.queue.group", "is for kind = \"stream\" only");
        }
        if q.interval.get() < Duration::from_millis(100) {
            v.fail(
                "e2e.queue.interval",
                format!("must be >= 100ms, got {}", q.interval),
            );
        }
    }
}

fn pointer(v: &mut Rules, key: &str, p: &str) {
    if !p.is_empty() && !p.starts_with('/') {
        v.fail(
            key,
            format!("must be a JSON pointer starting with '/' (or empty), got {p:?}"),
        );
    }
}

/// The open-file limit this process can raise itself to (the hard limit).
pub fn nofile_hard_limit() -> u64 {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct passed.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) } != 0 {
        return 1024;
    }
    l.rlim_max
}

/// This process's open-file limit (soft), raised to the hard limit first.
pub fn raise_nofile_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        let mut l = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) != 0 {
            return 1024;
        }
        if l.rlim_cur < l.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: l.rlim_max,
                rlim_max: l.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return raised.rlim_cur;
            }
        }
        l.rlim_cur
    }
}
