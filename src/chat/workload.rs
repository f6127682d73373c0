//! What the traffic writes: streams, senders and messages that look like a real chat.
//!
//! - **Streams** (partitions) have fixed ids derived from their index, so every replica and every
//!   restart agrees on them. With `instance.count = n`, instance `i` owns the streams whose index is
//!   `i (mod n)`: replicas never write to the same stream.
//! - A message picks its stream uniformly or Zipf-skewed, a sender from a pool with display names,
//!   a `message_type` from the configured mix, a log-normal text length, and a moderation status
//!   (98 % `approved`, 1.5 % `pending`, 0.5 % `rejected`).
//!   The texts themselves are [`super::text`]'s.
//! - Everything random comes from one seeded generator: the same seed gives the same messages.

use super::text::{self, Texts};
use crate::config::{InstanceConfig, StreamDistribution, TrafficConfig};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use std::sync::Arc;
use uuid::Uuid;

/// High half of every traffic stream id: "chatload" in ASCII.
const STREAM_NAMESPACE: u64 = u64::from_be_bytes(*b"chatload");
/// High half of every sender id.
const SENDER_NAMESPACE: u64 = u64::from_be_bytes(*b"chatsndr");

/// The id of traffic stream `index` (the same in every instance and every run).
pub fn stream_id(index: u64) -> Uuid {
    Uuid::from_u64_pair(STREAM_NAMESPACE, index)
}

/// High half of every channel id of the end-to-end canary: "chate2e-" in ASCII.
const CHANNEL_NAMESPACE: u64 = u64::from_be_bytes(*b"chate2e-");

/// The id of the canary's channel `index` (the same in every instance and every run, and never a
/// traffic stream's).
pub fn channel_id(index: u64) -> Uuid {
    Uuid::from_u64_pair(CHANNEL_NAMESPACE, index)
}

/// The id of sender `index` of the pool.
pub fn sender_id(index: u64) -> Uuid {
    Uuid::from_u64_pair(SENDER_NAMESPACE, index)
}

/// The index of a traffic stream id, if it is one.
pub fn stream_index(id: &Uuid) -> Option<u64> {
    let (high, low) = id.as_u64_pair();
    (high == STREAM_NAMESPACE).then_some(low)
}

/// The stream indexes instance `index` of `count` owns among `streams`.
pub fn owned_streams(streams: u32, instance: &InstanceConfig) -> Vec<u64> {
    (0..u64::from(streams))
        .filter(|s| s % u64::from(instance.count) == u64::from(instance.index))
        .collect()
}

/// A message's `message_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// Plain text.
    Text,
    /// Text that starts with an @mention.
    Mention,
    /// A code snippet.
    Code,
    /// A shared file.
    File,
}

impl MessageType {
    /// The value stored in `message_type`.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::Text => "text",
            MessageType::Mention => "mention",
            MessageType::Code => "code",
            MessageType::File => "file",
        }
    }
}

/// One sender of the pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sender {
    /// `sender_id`.
    pub id: Uuid,
    /// `sender_display_name`.
    pub display_name: String,
}

/// One chat message, ready to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Partition key.
    pub stream_id: Uuid,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// Random (v4) id.
    pub message_id: Uuid,
    /// The sender (shared with the pool).
    pub sender: Arc<Sender>,
    /// `message_text`.
    pub text: String,
    /// `moderation_status`.
    pub moderation_status: &'static str,
    /// `message_type`.
    pub message_type: MessageType,
}

/// Seeded generator of messages for one instance.
pub struct Workload {
    rng: SmallRng,
    streams: Vec<Uuid>,
    zipf: Option<Zipf<f64>>,
    senders: Vec<Arc<Sender>>,
    /// Cumulative shares of text, mention, code, file.
    mix: [f64; 4],
    texts: Texts,
}

impl Workload {
    /// A workload for this instance's share of `traffic.streams`, seeded with `seed`.
    pub fn new(cfg: &TrafficConfig, instance: &InstanceConfig, seed: u64) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let streams: Vec<Uuid> = owned_streams(cfg.streams, instance)
            .into_iter()
            .map(stream_id)
            .collect();
        let zipf = match cfg.stream_distribution {
            StreamDistribution::Uniform => None,
            StreamDistribution::Zipf => Zipf::new(streams.len() as f64, cfg.zipf_exponent).ok(),
        };
        let senders = (0..u64::from(cfg.senders))
            .map(|i| {
                Arc::new(Sender {
                    id: Uuid::from_u64_pair(SENDER_NAMESPACE, i),
                    display_name: text::display_name(i),
                })
            })
            .collect();
        let m = &cfg.message_mix;
        let shares = [m.text, m.mention, m.code, m.file].map(|s| s.max(0.0));
        let total: f64 = shares.iter().sum();
        let mut mix = [0.0; 4];
        let mut acc = 0.0;
        for (i, s) in shares.iter().enumerate() {
            acc += s / total;
            mix[i] = acc;
        }
        let texts = Texts::new(cfg, &mut rng);
        Self {
            rng,
            streams,
            zipf,
            senders,
            mix,
            texts,
        }
    }

    /// The ids of the streams this instance writes to.
    pub fn streams(&self) -> &[Uuid] {
        &self.streams
    }

    /// Pick a stream (uniform or Zipf).
    pub fn pick_stream(&mut self) -> Uuid {
        let i = match &self.zipf {
            Some(z) => (z.sample(&mut self.rng) as usize).clamp(1, self.streams.len()) - 1,
            None => self.rng.random_range(0..self.streams.len()),
        };
        self.streams[i]
    }

    /// A new message in `stream_id`, stamped `timestamp_ms`.
    pub fn message(&mut self, stream_id: Uuid, timestamp_ms: i64) -> Message {
        let sender = self.senders[self.rng.random_range(0..self.senders.len())].clone();
        let roll: f64 = self.rng.random();
        let message_type = match self.mix.iter().position(|&c| roll < c).unwrap_or(3) {
            0 => MessageType::Text,
            1 => MessageType::Mention,
            2 => MessageType::Code,
            _ => MessageType::File,
        };
        let text = match message_type {
            MessageType::Text => self.texts.words(&mut self.rng, 1.0),
            MessageType::Mention => {
                let other = &self.senders[self.rng.random_range(0..self.senders.len())];
                let name = other.display_name.as_str();
                self.texts
                    .words_after(&["@", name, " "], &mut self.rng, 1.0)
            }
            MessageType::Code => self.texts.code(&mut self.rng),
            MessageType::File => text::file(&mut self.rng),
        };
        let moderation_status = match self.rng.random_range(0..1000) {
            0..980 => "approved",
            980..995 => "pending",
            _ => "rejected",
        };
        Message {
            stream_id,
            timestamp_ms,
            message_id: uuid::Builder::from_random_bytes(self.rng.random()).into_uuid(),
            sender,
            text,
            moderation_status,
            message_type,
        }
    }

    /// `n` messages of one stream (a batch), or one message when `n` is 1.
    pub fn messages(&mut self, n: usize, timestamp_ms: i64) -> Vec<Message> {
        let stream = self.pick_stream();
        (0..n).map(|_| self.message(stream, timestamp_ms)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MessageMix;
    use std::collections::{HashMap, HashSet};

    fn cfg() -> TrafficConfig {
        TrafficConfig::default()
    }

    fn one() -> InstanceConfig {
        InstanceConfig::default()
    }

    #[test]
    fn same_seed_same_messages() {
        let strip = |mut m: Message| {
            m.timestamp_ms = 0;
            m
        };
        let mut a = Workload::new(&cfg(), &one(), 7);
        let mut b = Workload::new(&cfg(), &one(), 7);
        let mut c = Workload::new(&cfg(), &one(), 8);
        let xs: Vec<_> = (0..200)
            .map(|i| strip(a.messages(1, i).remove(0)))
            .collect();
        let ys: Vec<_> = (0..200)
            .map(|i| strip(b.messages(1, i + 5).remove(0)))
            .collect();
        let zs: Vec<_> = (0..200)
            .map(|i| strip(c.messages(1, i).remove(0)))
            .collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
    }

    #[test]
    fn instances_split_streams_without_collision_and_cover_all() {
        let mut seen = HashSet::new();
        let mut total = 0;
        for index in 0..3 {
            let inst = InstanceConfig { index, count: 3 };
            let mut w = Workload::new(&cfg(), &inst, 1);
            let own: HashSet<Uuid> = w.streams().iter().copied().collect();
            total += own.len();
            for _ in 0..2000 {
                assert!(own.contains(&w.pick_stream()));
            }
            for s in &own {
                assert!(seen.insert(*s), "stream {s} owned twice");
                assert_eq!(stream_index(s).unwrap() % 3, u64::from(index));
            }
        }
        assert_eq!(total, 100);
        assert_eq!(seen.len(), 100);
    }

    #[test]
    fn message_mix_follows_the_config() {
        let mut w = Workload::new(&cfg(), &one(), 3);
        let mut counts: HashMap<MessageType, u32> = HashMap::new();
        let n = 20_000;
        for _ in 0..n {
            *counts.entry(w.messages(1, 0)[0].message_type).or_default() += 1;
        }
        for (t, share) in [
            (MessageType::Text, 0.6),
            (MessageType::Mention, 0.2),
            (MessageType::Code, 0.1),
            (MessageType::File, 0.1),
        ] {
            let got = f64::from(counts[&t]) / f64::from(n);
            assert!((got - share).abs() < 0.015, "{t:?}: {got}");
        }
        let mut only_code = cfg();
        only_code.message_mix = MessageMix {
            text: 0.0,
            mention: 0.0,
            code: 5.0,
            file: 0.0,
        };
        let mut w = Workload::new(&only_code, &one(), 3);
        assert!((0..100).all(|_| w.messages(1, 0)[0].message_type == MessageType::Code));
    }

    #[test]
    fn texts_have_the_configured_size_and_mostly_approved() {
        let mut w = Workload::new(&cfg(), &one(), 5);
        let mut plain = vec![];
        let mut approved = 0;
        for _ in 0..10_000 {
            let m = w.messages(1, 0).remove(0);
            assert!(
                !m.text.is_empty() && m.text.len() <= 1000,
                "{}",
                m.text.len()
            );
            if m.message_type == MessageType::Text {
                plain.push(m.text.len() as f64);
            }
            if m.message_type == MessageType::Mention {
                assert!(m.text.starts_with('@'));
            }
            approved += u32::from(m.moderation_status == "approved");
        }
        let mean = plain.iter().sum::<f64>() / plain.len() as f64;
        assert!((60.0..100.0).contains(&mean), "mean text length {mean}");
        assert!((9700..=9900).contains(&approved), "{approved}");
    }

    #[test]
    fn zipf_is_skewed_and_uniform_is_not() {
        let spread = |dist| {
            let mut c = cfg();
            c.stream_distribution = dist;
            let mut w = Workload::new(&c, &one(), 9);
            let mut counts: HashMap<Uuid, u32> = HashMap::new();
            for _ in 0..50_000 {
                *counts.entry(w.pick_stream()).or_default() += 1;
            }
            let max = *counts.values().max().unwrap();
            f64::from(max) / 500.0 // the mean per stream
        };
        assert!(spread(StreamDistribution::Uniform) < 1.3);
        assert!(spread(StreamDistribution::Zipf) > 10.0);
    }

    #[test]
    fn batches_share_one_stream_and_ids_are_unique() {
        let mut w = Workload::new(&cfg(), &one(), 11);
        let batch = w.messages(10, 1);
        assert!(batch.iter().all(|m| m.stream_id == batch[0].stream_id));
        let ids: HashSet<Uuid> = batch.iter().map(|m| m.message_id).collect();
        assert_eq!(ids.len(), 10);
        assert_eq!(batch[0].message_id.get_version_num(), 4);
    }
}
