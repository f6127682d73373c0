//! Message texts that read like chat: sender display names, slices of a corpus of chat words of
//! log-normal length, code snippets and file shares, all drawn from the workload's seeded generator.

use crate::config::TrafficConfig;
use rand::Rng;
use rand_distr::{Distribution, LogNormal};

const ADJECTIVES: &[&str] = &[
    "Brave", "Quiet", "Swift", "Clever", "Sunny", "Lucky", "Mellow", "Bold", "Calm", "Witty",
    "Eager", "Gentle", "Happy", "Jolly", "Kind", "Nimble",
];
const ANIMALS: &[&str] = &[
    "Otter", "Falcon", "Badger", "Lynx", "Heron", "Panda", "Koala", "Raven", "Fox", "Moose",
    "Gecko", "Bison", "Crane", "Mole", "Newt", "Wren",
];
const WORDS: &[&str] = &[
    "hey",
    "the",
    "deploy",
    "is",
    "green",
    "again",
    "lol",
    "can",
    "you",
    "check",
    "staging",
    "please",
    "looks",
    "good",
    "to",
    "me",
    "ship",
    "it",
    "latency",
    "spiked",
    "around",
    "noon",
    "who",
    "owns",
    "this",
    "alert",
    "thanks",
    "for",
    "the",
    "fix",
    "meeting",
    "in",
    "five",
    "minutes",
    "coffee",
    "first",
    "merged",
    "rolling",
    "back",
    "now",
    "dashboard",
    "shows",
    "p99",
    "under",
    "target",
    "nice",
    "work",
    "team",
    "on",
    "call",
    "tonight",
    "see",
    "ticket",
    "queue",
    "is",
    "empty",
    "great",
];
const CODE_LINES: &[&str] = &[
    "fn main() { println!(\"hello\"); }",
    "SELECT * FROM chat_messages WHERE stream_id = ? LIMIT 50;",
    "kubectl rollout status deploy/chat-api -n staging",
    "let p99 = histogram.value_at_quantile(0.99);",
    "if err != nil { return fmt.Errorf(\"write: %w\", err) }",
];
const FILE_KINDS: &[&str] = &["pdf", "png", "txt", "log", "csv", "zip"];

/// The display name of sender `i` of the pool (`Brave Otter 1`).
pub fn display_name(i: u64) -> String {
    let a = ADJECTIVES[(i as usize) % ADJECTIVES.len()];
    let b = ANIMALS[(i as usize / ADJECTIVES.len()) % ANIMALS.len()];
    format!("{a} {b} {}", i / 256 + 1)
}

/// Texts of the configured length: a corpus of chat words and the log-normal length of a slice.
pub struct Texts {
    text_length: LogNormal<f64>,
    text_length_max: usize,
    corpus: String,
}

impl Texts {
    /// The lengths of `cfg`, and a corpus of chat words drawn from `rng`.
    pub fn new(cfg: &TrafficConfig, rng: &mut impl Rng) -> Self {
        // Log-normal with the configured mean: mu = ln(mean) - sigma^2 / 2.
        let sigma = 0.6_f64;
        let mu = f64::from(cfg.text_length_mean.max(1)).ln() - sigma * sigma / 2.0;
        let text_length = LogNormal::new(mu, sigma).expect("valid log-normal parameters");
        let text_length_max = cfg.text_length_max.max(1) as usize;
        // A corpus of chat words; message texts are slices of it (cheap, and they read like chat).
        let mut corpus = String::with_capacity(text_length_max * 4 + 64);
        while corpus.len() < text_length_max * 4 + 64 {
            corpus.push_str(WORDS[rng.random_range(0..WORDS.len())]);
            corpus.push(' ');
        }
        Self {
            text_length,
            text_length_max,
            corpus,
        }
    }

    /// A slice of the corpus of log-normal length (times `scale`), cut at word boundaries.
    pub fn words(&self, rng: &mut impl Rng, scale: f64) -> String {
        self.words_after(&[], rng, scale)
    }

    /// The pieces of `prefix` and then [`Texts::words`], in one allocation.
    pub fn words_after(&self, prefix: &[&str], rng: &mut impl Rng, scale: f64) -> String {
        let len = ((self.text_length.sample(rng) * scale) as usize).clamp(1, self.text_length_max);
        let start = rng.random_range(0..self.corpus.len() - len);
        // Start after a space, so the text begins with a whole word (the corpus is ASCII).
        let start = self.corpus[start..]
            .find(' ')
            .map_or(start, |i| start + i + 1);
        let end = (start + len).min(self.corpus.len());
        let words = self.corpus[start..end].trim_end();
        let mut text =
            String::with_capacity(prefix.iter().map(|p| p.len()).sum::<usize>() + words.len());
        for p in prefix {
            text.push_str(p);
        }
        text.push_str(words);
        text
    }

    /// One to three lines of code in a fence, cut at the maximum length.
    pub fn code(&self, rng: &mut impl Rng) -> String {
        let n = rng.random_range(1..=3);
        let mut t = String::with_capacity(self.text_length_max.min(CODE_CAPACITY));
        t.push_str("```\n");
        for _ in 0..n {
            t.push_str(CODE_LINES[rng.random_range(0..CODE_LINES.len())]);
            t.push('\n');
        }
        t.push_str("```");
        t.truncate(self.text_length_max);
        t
    }
}

/// Room for three of the longest code lines and the fences.
const CODE_CAPACITY: usize = 256;

/// A file shared in the chat.
pub fn file(rng: &mut impl Rng) -> String {
    use std::fmt::Write;
    let kind = FILE_KINDS[rng.random_range(0..FILE_KINDS.len())];
    let kb = rng.random_range(1..20_000);
    let mut t = String::with_capacity(64);
    let _ = write!(
        t,
        "shared a file: report-{}.{kind} ({kb} KB)",
        rng.random_range(1..10_000)
    );
    t
}
