//! Injected clocks: UTC, monotonic time and sleeping, with a simulated implementation so tests
//! can run hours of media, NTP steps and backoff in milliseconds.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Every clock a stage reads. Pass `Arc<dyn Clocks>`; never call `SystemTime::now()` directly.
pub trait Clocks: Send + Sync + std::fmt::Debug {
    /// Nanoseconds since 1970-01-01T00:00:00 UTC (may step, e.g. on NTP corrections).
    fn utc_nanos(&self) -> u128;
    /// Monotonic time since an arbitrary origin fixed for the life of this clock.
    fn monotonic(&self) -> Duration;
    /// Blocks the calling thread for `d` of this clock's time.
    fn sleep(&self, d: Duration);
}

/// The real clocks of the machine.
#[derive(Debug)]
pub struct SystemClocks {
    origin: Instant,
}

impl SystemClocks {
    pub fn new() -> Arc<SystemClocks> {
        Arc::new(SystemClocks {
            origin: Instant::now(),
        })
    }
}

impl Clocks for SystemClocks {
    fn utc_nanos(&self) -> u128 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    }

    fn monotonic(&self) -> Duration {
        self.origin.elapsed()
    }

    fn sleep(&self, d: Duration) {
        std::thread::sleep(d);
    }
}

/// Simulated clocks: time moves only when a thread sleeps or a test calls [`advance`].
/// `sleep` advances the simulated time at once (it never blocks on real time), which makes a
/// 24-hour run take as long as the work in it.
///
/// [`advance`]: SimulatedClocks::advance
#[derive(Debug)]
pub struct SimulatedClocks {
    state: Mutex<SimState>,
    changed: Condvar,
}

#[derive(Debug)]
struct SimState {
    utc_nanos: u128,
    monotonic: Duration,
}

impl SimulatedClocks {
    /// Simulated clocks starting at `utc_nanos` since the epoch, monotonic zero.
    pub fn new(utc_nanos: u128) -> Arc<SimulatedClocks> {
        Arc::new(SimulatedClocks {
            state: Mutex::new(SimState {
                utc_nanos,
                monotonic: Duration::ZERO,
            }),
            changed: Condvar::new(),
        })
    }

    /// Moves both UTC and monotonic time forward by `d`.
    pub fn advance(&self, d: Duration) {
        let mut s = self.lock();
        s.utc_nanos += d.as_nanos();
        s.monotonic += d;
        self.changed.notify_all();
    }

    /// Steps UTC only (an NTP correction); monotonic time is unaffected.
    pub fn step_utc(&self, delta_nanos: i128) {
        let mut s = self.lock();
        s.utc_nanos = s.utc_nanos.saturating_add_signed(delta_nanos);
        self.changed.notify_all();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SimState> {
        // A poisoned lock only means another test thread panicked; the state is still valid.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Clocks for SimulatedClocks {
    fn utc_nanos(&self) -> u128 {
        self.lock().utc_nanos
    }

    fn monotonic(&self) -> Duration {
        self.lock().monotonic
    }

    fn sleep(&self, d: Duration) {
        self.advance(d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulated_sleep_advances_both_clocks_and_step_moves_utc_only() {
        let c = SimulatedClocks::new(1_000);
        c.sleep(Duration::from_secs(3600));
        assert_eq!(c.monotonic(), Duration::from_secs(3600));
        assert_eq!(c.utc_nanos(), 1_000 + 3_600_000_000_000);
        c.step_utc(-500);
        assert_eq!(c.utc_nanos(), 500 + 3_600_000_000_000);
        assert_eq!(c.monotonic(), Duration::from_secs(3600));
    }
}
