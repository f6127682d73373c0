//! Fault injection: the settings behind `GET`/`POST /admin/faults` and the per-delivery decision
//! the gateway applies.
//!
//! Per (message, recipient socket): with fan-out off nothing is delivered; otherwise one uniform
//! draw `r` in `[0, 1)` decides: `r < drop_ratio` drops it, `r < drop_ratio + duplicate_ratio` sends
//! it twice, else once. Independently, with `hold_every = k > 0` and `hold_ms > 0`, the socket's
//! k-th, 2k-th, … message (counted over every message routed to it, dropped ones too) is sent
//! `hold_ms` late, unless it was dropped. The api holds every request `stall_ms` while it is > 0.

use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use std::time::Duration;

/// The current fault settings, as `GET /admin/faults` shows them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FaultSettings {
    /// Deliver published messages to sockets at all.
    pub fanout_enabled: bool,
    /// Share of deliveries left out.
    pub drop_ratio: f64,
    /// Share of deliveries sent twice (never together with a drop).
    pub duplicate_ratio: f64,
    /// Hold every k-th message of a socket; 0: none.
    pub hold_every: u64,
    /// How long a held delivery waits, milliseconds.
    pub hold_ms: u64,
    /// How long the api holds each request, milliseconds; 0: none.
    pub stall_ms: u64,
}

impl Default for FaultSettings {
    fn default() -> Self {
        Self {
            fanout_enabled: true,
            drop_ratio: 0.0,
            duplicate_ratio: 0.0,
            hold_every: 0,
            hold_ms: 0,
            stall_ms: 0,
        }
    }
}

/// A partial update (`POST /admin/faults`): the keys present replace the current values.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultUpdate {
    fanout_enabled: Option<bool>,
    drop_ratio: Option<f64>,
    duplicate_ratio: Option<f64>,
    hold_every: Option<u64>,
    hold_ms: Option<u64>,
    stall_ms: Option<u64>,
}

/// What happens to one delivery of a message to a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Fan-out is off: not delivered.
    FanoutOff,
    /// Dropped.
    Drop,
    /// Delivered `copies` times (1, or 2 for a duplicate), after `hold` if set.
    Deliver {
        /// 1 or 2.
        copies: u8,
        /// The delay of a held delivery.
        hold: Option<Duration>,
    },
}

impl FaultSettings {
    /// The fate of the `nth` (1-based) message routed to a socket, for the draw `r` in `[0, 1)`.
    pub fn fate(&self, nth: u64, r: f64) -> Fate {
        if !self.fanout_enabled {
            return Fate::FanoutOff;
        }
        if r < self.drop_ratio {
            return Fate::Drop;
        }
        let copies = if r < self.drop_ratio + self.duplicate_ratio {
            2
        } else {
            1
        };
        let held = self.hold_every > 0 && self.hold_ms > 0 && nth.is_multiple_of(self.hold_every);
        Fate::Deliver {
            copies,
            hold: held.then(|| Duration::from_millis(self.hold_ms)),
        }
    }

    /// Whether a draw is needed at all (saves the RNG on the common path).
    pub fn draws(&self) -> bool {
        self.drop_ratio > 0.0 || self.duplicate_ratio > 0.0
    }

    /// `self` with `u` applied, or why it is rejected.
    pub fn updated(&self, u: &FaultUpdate) -> Result<Self, String> {
        let next = Self {
            fanout_enabled: u.fanout_enabled.unwrap_or(self.fanout_enabled),
            drop_ratio: u.drop_ratio.unwrap_or(self.drop_ratio),
            duplicate_ratio: u.duplicate_ratio.unwrap_or(self.duplicate_ratio),
            hold_every: u.hold_every.unwrap_or(self.hold_every),
            hold_ms: u.hold_ms.unwrap_or(self.hold_ms),
            stall_ms: u.stall_ms.unwrap_or(self.stall_ms),
        };
        for (name, v) in [
            ("drop_ratio", next.drop_ratio),
            ("duplicate_ratio", next.duplicate_ratio),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("{name} must be in 0..=1, got {v}"));
            }
        }
        if next.drop_ratio + next.duplicate_ratio > 1.0 + 1e-9 {
            return Err(format!(
                "drop_ratio + duplicate_ratio must be at most 1, got {}",
                next.drop_ratio + next.duplicate_ratio
            ));
        }
        Ok(next)
    }
}

/// The settings of this process, shared by the api and the gateway.
#[derive(Debug, Default)]
pub struct Faults(Mutex<FaultSettings>);

impl Faults {
    /// A copy of the current settings.
    pub fn get(&self) -> FaultSettings {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Apply `body` (a partial JSON object; empty means no change) and return the result.
    pub fn update(&self, body: &[u8]) -> Result<FaultSettings, String> {
        let update: FaultUpdate = if body.iter().all(u8::is_ascii_whitespace) {
            FaultUpdate::default()
        } else {
            serde_json::from_slice(body).map_err(|e| format!("invalid fault settings: {e}"))?
        };
        let mut current = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *current = current.updated(&update)?;
        Ok(*current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(json: &str) -> Result<FaultSettings, String> {
        Faults::default().update(json.as_bytes())
    }

    #[test]
    fn updates_are_partial_and_validated() {
        let f = Faults::default();
        let s = f.update(br#"{"drop_ratio":0.25,"hold_every":3}"#).unwrap();
        assert_eq!(
            (s.drop_ratio, s.hold_every, s.fanout_enabled),
            (0.25, 3, true)
        );
        let s = f.update(br#"{"stall_ms":10}"#).unwrap();
        assert_eq!((s.drop_ratio, s.stall_ms), (0.25, 10), "earlier keys kept");
        assert!(with(r#"{"drop_ratio":1.5}"#).is_err());
        assert!(with(r#"{"duplicate_ratio":-0.1}"#).is_err());
        assert!(with(r#"{"drop_ratio":0.6,"duplicate_ratio":0.5}"#).is_err());
        assert!(with(r#"{"drop_ratio":0.3,"duplicate_ratio":0.7}"#).is_ok());
        assert!(with(r#"{"drop":0.1}"#).is_err(), "unknown keys are refused");
        assert!(with(r#"{"hold_every":-1}"#).is_err());
        let f = Faults::default();
        assert!(
            f.update(br#"{"drop_ratio":0.9,"duplicate_ratio":0.9}"#)
                .is_err()
        );
        assert_eq!(
            f.get(),
            FaultSettings::default(),
            "a rejected update changes nothing"
        );
    }

    #[test]
    fn fates_follow_the_draw_and_the_counter() {
        let s = FaultSettings {
            drop_ratio: 0.2,
            duplicate_ratio: 0.3,
            hold_every: 3,
            hold_ms: 50,
            ..FaultSettings::default()
        };
        assert_eq!(s.fate(1, 0.1), Fate::Drop);
        assert_eq!(
            s.fate(3, 0.1),
            Fate::Drop,
            "a dropped k-th message is not held"
        );
        let once = Fate::Deliver {
            copies: 1,
            hold: None,
        };
        let twice = Fate::Deliver {
            copies: 2,
            hold: None,
        };
        assert_eq!(s.fate(1, 0.2), twice);
        assert_eq!(s.fate(2, 0.49), twice);
        assert_eq!(s.fate(2, 0.5), once);
        let held = Some(Duration::from_millis(50));
        assert_eq!(
            s.fate(6, 0.9),
            Fate::Deliver {
                copies: 1,
                hold: held
            }
        );
        assert_eq!(
            s.fate(9, 0.3),
            Fate::Deliver {
                copies: 2,
                hold: held
            }
        );
        let off = FaultSettings {
            fanout_enabled: false,
            ..s
        };
        assert_eq!(off.fate(1, 0.9), Fate::FanoutOff);
        let no_delay = FaultSettings { hold_ms: 0, ..s };
        assert_eq!(no_delay.fate(3, 0.9), once, "hold_ms = 0 holds nothing");
    }
}
