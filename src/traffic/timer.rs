//! A precise async sleep for the pacer: a Linux timerfd, registered with tokio's epoll.
//!
//! tokio's timer wheel rounds to whole milliseconds, and a separate thread sleeping precisely would
//! have to wake the runtime for every operation (two extra context switches each). A timerfd has
//! nanosecond resolution, and it wakes the very `epoll_wait` that also delivers the replies, so the
//! thread that keeps the timetable is the thread that sends the requests. The last few microseconds
//! are spun, because a wake-up takes that long, but only within a CPU budget ([`SPIN_BUDGET`] of
//! the thread's time): past it, the timer is armed for the due time itself, and a late wake-up
//! shows as schedule lag instead of costing CPU.

use super::pacer::Sleeper;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::time::Instant;

/// Arm the timer this long before the due time, then spin.
pub const SPIN: Duration = Duration::from_micros(20);

/// Share of wall-clock time the sleeper may spend spinning (2 %: 20 ms a second).
pub const SPIN_BUDGET: f64 = 0.02;

/// The most spin time saved up while idle.
const SPIN_BURST: Duration = Duration::from_millis(5);

/// A one-shot monotonic timerfd driven by tokio.
pub struct TimerFdSleeper {
    fd: AsyncFd<OwnedFd>,
    /// Spin time left in nanoseconds, refilled at [`SPIN_BUDGET`] of the time passed since
    /// `refilled`; below zero when the last spin overran it (the overrun is paid back first).
    spin_left: i64,
    refilled: Instant,
    /// Spin time spent so far.
    spun: Duration,
}

impl TimerFdSleeper {
    /// Create the timer; call from inside a tokio runtime with I/O enabled.
    pub fn new() -> io::Result<Self> {
        // SAFETY: timerfd_create takes no pointers; a non-negative result is a new descriptor we own.
        let raw = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a valid descriptor that nothing else owns.
        let owned = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: an OwnedFd keeps its descriptor open and unchanged until it is dropped, which only
        // happens together with the AsyncFd that owns it.
        let fd = unsafe { AsyncFd::register_with_interest(owned, tokio::io::Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        Ok(Self {
            fd,
            spin_left: nanos(SPIN_BURST),
            refilled: Instant::now(),
            spun: Duration::ZERO,
        })
    }

    /// Spin time spent so far.
    pub fn spun(&self) -> Duration {
        self.spun
    }

    /// How long to spin before `deadline`: [`SPIN`], or less when the budget is short.
    fn spin_for(&mut self, now: Instant) -> Duration {
        let earned = nanos((now - self.refilled).mul_f64(SPIN_BUDGET));
        self.refilled = now;
        self.spin_left = self.spin_left.saturating_add(earned).min(nanos(SPIN_BURST));
        SPIN.min(Duration::from_nanos(
            u64::try_from(self.spin_left).unwrap_or(0),
        ))
    }

    /// Fire once, `after` from now (at least 1 ns: zero would disarm the timer).
    fn arm(&self, after: Duration) -> io::Result<()> {
        let after = after.max(Duration::from_nanos(1));
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: after.as_secs() as libc::time_t,
                tv_nsec: after.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: the descriptor is valid for the life of `self`; `spec` outlives the call; a null
        // old-value pointer is allowed.
        let rc =
            unsafe { libc::timerfd_settime(self.fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// Wait until the armed timer has fired.
    async fn fired(&self) -> io::Result<()> {
        loop {
            let mut guard = self.fd.readable().await?;
            let mut expirations = [0u8; 8];
            // SAFETY: reading 8 bytes into an 8-byte buffer from a valid descriptor.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), expirations.as_mut_ptr().cast(), 8) };
            if n == 8 {
                return Ok(());
            }
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::WouldBlock {
                guard.clear_ready();
                continue;
            }
            return Err(err);
        }
    }
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

impl Sleeper for TimerFdSleeper {
    async fn sleep_until(&mut self, deadline: Instant) {
        // Always give the runtime a turn (it polls the I/O driver before resuming us): at rates
        // whose interval is shorter than the spin, the pacer would otherwise never await and would
        // starve the replies and every other task of its single thread.
        tokio::task::yield_now().await;
        let now = Instant::now();
        let spin = self.spin_for(now);
        if deadline > now + spin {
            let slept = match self.arm(deadline - now - spin) {
                Ok(()) => self.fired().await,
                Err(e) => Err(e),
            };
            if slept.is_err() {
                // Never seen in practice; fall back to tokio's coarser timer rather than spin.
                tokio::time::sleep_until(deadline).await;
            }
        }
        let spinning = Instant::now();
        while Instant::now() < deadline {
            std::hint::spin_loop();
        }
        let spent = spinning.elapsed();
        self.spin_left = self.spin_left.saturating_sub(nanos(spent));
        self.spun += spent;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A pacer whose every due time is closer than the spin still lets the other tasks of its
    /// single-threaded runtime run (the replies, the statement preparation).
    #[test]
    fn back_to_back_deadlines_do_not_starve_the_runtime() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let ticks = Arc::new(AtomicU64::new(0));
            let other = {
                let ticks = ticks.clone();
                tokio::spawn(async move {
                    loop {
                        ticks.fetch_add(1, Ordering::Relaxed);
                        tokio::task::yield_now().await;
                    }
                })
            };
            let mut t = TimerFdSleeper::new().unwrap();
            let start = Instant::now();
            let mut deadline = start;
            while Instant::now() - start < Duration::from_millis(50) {
                deadline += Duration::from_micros(5);
                t.sleep_until(deadline).await;
            }
            assert!(
                ticks.load(Ordering::Relaxed) > 100,
                "the other task ran {:?} times",
                ticks
            );
            other.abort();
        });
    }

    /// Waiting for 8,000 due times 25 µs apart (0.2 s, each closer than the spin) spins at most
    /// the budget's share of that time plus the saved-up burst, not all of it.
    #[tokio::test]
    async fn the_spin_stays_within_its_cpu_budget() {
        let mut t = TimerFdSleeper::new().unwrap();
        let start = Instant::now();
        let mut deadline = start;
        for _ in 0..8000 {
            deadline += Duration::from_micros(25);
            t.sleep_until(deadline).await;
            assert!(Instant::now() >= deadline, "woke early");
        }
        let budget = start.elapsed().mul_f64(SPIN_BUDGET) + SPIN_BURST + SPIN;
        assert!(t.spun() <= budget, "spun {:?}, budget {budget:?}", t.spun());
        assert!(t.spun() > Duration::ZERO, "it spins while it has budget");
    }

    #[tokio::test]
    async fn never_wakes_before_the_deadline() {
        let mut t = TimerFdSleeper::new().unwrap();
        let mut lags = vec![];
        for i in 0..200u64 {
            // Deadlines off the millisecond grid, where tokio's wheel would be up to 1 ms late.
            let deadline = Instant::now() + Duration::from_micros(300 + (i * 37) % 500);
            t.sleep_until(deadline).await;
            let now = Instant::now();
            assert!(now >= deadline, "woke early");
            lags.push(now - deadline);
        }
        lags.sort();
        // Precision itself is measured by scripts/bench.sh (schedule lag), not asserted here.
        eprintln!(
            "timerfd wake-up lag: median {:?}, max {:?}",
            lags[lags.len() / 2],
            lags[lags.len() - 1]
        );
    }
}
