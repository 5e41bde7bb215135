//! Placing captured buffers on the frame grid.
//!
//! A capture card runs on its own clock and stamps every buffer with the kernel's monotonic
//! time; the channel's grid runs on the master clock. The mapper turns buffer times (already in
//! the injected clocks' monotonic domain) into frame indices:
//!
//! * The first buffer lands on the slot nearest to its time, counted from the slot the source
//!   was asked to start at and that slot's due time (never before that slot). That buffer
//!   **anchors** the mapping: slot `s` is due at `anchor time + (s − anchor slot) × period`, so
//!   the grid follows the card's phase instead of an arbitrary one.
//! * The anchor time is refined as the mean phase of the first [`PHASE_BUFFERS`] buffers, so
//!   one jittery first buffer does not eat the margins; after that it is fixed, so a card whose
//!   clock drifts against the master clock shows up as an occasional duplicate or skipped slot
//!   — counted, not hidden (following the card's drift would shift the pictures against the
//!   audio and against the other box of a 1+1 pair).
//! * Each buffer goes to the **next free slot** unless it is clearly off it: more than
//!   [`TOLERANCE_TENTHS`]/10 of a period early (its slot is already filled: a duplicate, the
//!   later buffer is dropped) or late (slots were missed: they are skipped, the source repeats
//!   the previous picture there). Plain nearest-slot rounding would flip between slot pairs for
//!   as long as a drifting card's phase sits on the rounding edge (a 30 fps webcam on a 29.97
//!   grid: dozens of duplicate/skip pairs instead of one clean drop every 33 s); the ±0.8
//!   period window is hysteresis wider than any jitter seen in practice, and bounds a picture's
//!   offset from its true capture time to 0.8 of a period.
//! * Timestamps that run backwards for [`RESYNC_AFTER_SECS`] of consecutive buffers (a driver
//!   restarting its clock) re-anchor the mapping at the next free slot.

use crate::time::{FrameIndex, Rate};
use std::time::Duration;

/// Buffers whose phase is averaged into the anchor.
pub const PHASE_BUFFERS: u32 = 16;

/// How far (tenths of a frame period) a buffer may be off the next free slot and still go
/// there.
pub const TOLERANCE_TENTHS: i128 = 8;

/// Seconds of consecutive duplicates after which the mapping is re-anchored.
pub const RESYNC_AFTER_SECS: u64 = 1;

/// Where one buffer goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Show the buffer at `index`.
    Slot {
        /// The slot.
        index: FrameIndex,
        /// Slots between the previous placed buffer and this one that got no buffer.
        skipped: u64,
    },
    /// The buffer falls into `index`, already filled (or passed): drop it.
    Duplicate {
        /// The slot the buffer would have gone to.
        index: FrameIndex,
    },
}

/// Counters of the mapping since the source started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GridStats {
    /// Buffers placed on a slot.
    pub placed: u64,
    /// Buffers dropped because their slot was taken.
    pub duplicates: u64,
    /// Slots that got no buffer (filled by repeating the previous picture).
    pub skipped: u64,
    /// Times the mapping was re-anchored after timestamps ran backwards.
    pub resyncs: u64,
}

/// Maps buffer times to frame-grid slots (see the module docs).
#[derive(Clone, Debug)]
pub struct GridMapper {
    rate: Rate,
    /// The slot the first buffer should land at or after…
    start: FrameIndex,
    /// …and when it is due, in nanoseconds of the clocks' monotonic time.
    start_due: i128,
    anchor: Option<Anchor>,
    /// Next slot without a buffer.
    next: FrameIndex,
    /// Consecutive duplicates (for the re-anchoring rule).
    duplicate_run: u64,
    stats: GridStats,
}

#[derive(Clone, Copy, Debug)]
struct Anchor {
    slot: FrameIndex,
    /// Time of `slot` in nanoseconds of the clocks' monotonic time (refined for the first
    /// buffers).
    time: i128,
    /// Sum of the phase estimates and their number while refining.
    phase_sum: i128,
    phase_count: u32,
}

fn nanos(d: Duration) -> i128 {
    i128::try_from(d.as_nanos()).unwrap_or(i128::MAX)
}

impl GridMapper {
    /// A mapper whose first buffer goes to `start` or later, `start` being due at `start_due`
    /// (the clocks' monotonic time).
    pub fn new(rate: Rate, start: FrameIndex, start_due: Duration) -> GridMapper {
        GridMapper {
            rate,
            start,
            start_due: nanos(start_due),
            anchor: None,
            next: start,
            duplicate_run: 0,
            stats: GridStats::default(),
        }
    }

    /// The next slot no buffer has been placed on yet.
    pub fn next_slot(&self) -> FrameIndex {
        self.next
    }

    /// Counters so far.
    pub fn stats(&self) -> GridStats {
        self.stats
    }

    /// Frame period numerator/denominator in nanoseconds: `den × 10⁹ / num`.
    fn period(&self) -> (i128, i128) {
        (
            i128::from(self.rate.den()) * 1_000_000_000,
            i128::from(self.rate.num()),
        )
    }

    /// Nearest whole number of frame periods in `dt` nanoseconds (rounding half away from 0).
    fn periods_in(&self, dt: i128) -> i128 {
        let (pn, pd) = self.period();
        let x = dt * pd;
        if x >= 0 {
            (2 * x + pn) / (2 * pn)
        } else {
            -((-2 * x + pn) / (2 * pn))
        }
    }

    /// `k` frame periods in nanoseconds (floor).
    fn span(&self, k: i128) -> i128 {
        let (pn, pd) = self.period();
        (k * pn).div_euclid(pd)
    }

    /// Places a buffer captured at `at` (the clocks' monotonic time).
    pub fn place(&mut self, at: Duration) -> Placement {
        let t = nanos(at);
        let anchor = match self.anchor {
            Some(a) => a,
            None => {
                let k = self.periods_in(t - self.start_due).max(0);
                let slot = FrameIndex(self.start.0.saturating_add(k as u64));
                let a = Anchor {
                    slot,
                    time: t,
                    phase_sum: t,
                    phase_count: 1,
                };
                self.anchor = Some(a);
                return self.fill(slot);
            }
        };
        // Offset of this buffer from the next free slot's due time, in ns.
        let (pn, pd) = self.period();
        let next_due = anchor.time + self.span(i128::from(self.next.0) - i128::from(anchor.slot.0));
        let dt = t - next_due;
        // dt / period < −0.8  ⇔  10·dt·pd < −8·pn
        if 10 * dt * pd < -TOLERANCE_TENTHS * pn {
            self.stats.duplicates += 1;
            self.duplicate_run += 1;
            let back = (-self.periods_in(dt)).max(1);
            let index = FrameIndex(u64::try_from(i128::from(self.next.0) - back).unwrap_or(0));
            if self.duplicate_run >= self.resync_after() {
                // The driver's clock went backwards: start over at the next free slot.
                self.stats.resyncs += 1;
                self.duplicate_run = 0;
                self.anchor = None;
                self.start = self.next;
                self.start_due = t + self.span(1);
            }
            return Placement::Duplicate { index };
        }
        let slot_i = if 10 * dt * pd >= TOLERANCE_TENTHS * pn {
            i128::from(self.next.0) + self.periods_in(dt).max(1)
        } else {
            i128::from(self.next.0)
        };
        let slot = FrameIndex(u64::try_from(slot_i).unwrap_or(u64::MAX));
        if let Some(a) = self.anchor.as_mut() {
            if a.phase_count < PHASE_BUFFERS {
                // This buffer's estimate of the anchor slot's time, averaged in.
                let k_from_anchor = i128::from(slot.0) - i128::from(a.slot.0);
                let estimate = t - (k_from_anchor * pn).div_euclid(pd);
                a.phase_sum += estimate;
                a.phase_count += 1;
                a.time = a.phase_sum / i128::from(a.phase_count);
            }
        }
        self.fill(slot)
    }

    fn fill(&mut self, slot: FrameIndex) -> Placement {
        let skipped = slot.0.saturating_sub(self.next.0);
        self.stats.placed += 1;
        self.stats.skipped += skipped;
        self.duplicate_run = 0;
        self.next = FrameIndex(slot.0.saturating_add(1));
        Placement::Slot {
            index: slot,
            skipped,
        }
    }

    fn resync_after(&self) -> u64 {
        u64::from(self.rate.nominal_fps().max(1)) * RESYNC_AFTER_SECS
    }

    /// Due time (clocks' monotonic domain) of `slot` under the current anchor, or under the
    /// start slot before the first buffer.
    pub fn due(&self, slot: FrameIndex) -> Duration {
        let (base_slot, base_time) = match self.anchor {
            Some(a) => (a.slot, a.time),
            None => (self.start, self.start_due),
        };
        let t = base_time + self.span(i128::from(slot.0) - i128::from(base_slot.0));
        Duration::from_nanos(u64::try_from(t.max(0)).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: f64) -> Duration {
        Duration::from_secs_f64(v / 1000.0)
    }

    #[test]
    fn first_buffer_anchors_at_the_start_slot_and_late_start_skips() {
        let r = Rate::new(25, 1).unwrap();
        let mut m = GridMapper::new(r, FrameIndex(100), ms(1000.0));
        // 10 ms after the start slot is due: the start slot.
        assert_eq!(
            m.place(ms(1010.0)),
            Placement::Slot {
                index: FrameIndex(100),
                skipped: 0
            }
        );
        let mut late = GridMapper::new(r, FrameIndex(100), ms(1000.0));
        // The device took 130 ms to start streaming: three slots passed (40 ms each).
        assert_eq!(
            late.place(ms(1130.0)),
            Placement::Slot {
                index: FrameIndex(103),
                skipped: 3
            }
        );
    }

    #[test]
    fn two_buffers_in_one_slot_drop_the_later_and_a_gap_counts_skips() {
        let r = Rate::new(25, 1).unwrap();
        let mut m = GridMapper::new(r, FrameIndex(0), ms(0.0));
        assert!(matches!(m.place(ms(5.0)), Placement::Slot { .. }));
        assert_eq!(
            m.place(ms(12.0)),
            Placement::Duplicate {
                index: FrameIndex(0)
            }
        );
        assert_eq!(
            m.place(ms(45.0)),
            Placement::Slot {
                index: FrameIndex(1),
                skipped: 0
            }
        );
        assert_eq!(
            m.place(ms(165.0)),
            Placement::Slot {
                index: FrameIndex(4),
                skipped: 2
            }
        );
        assert_eq!(
            m.stats(),
            GridStats {
                placed: 3,
                duplicates: 1,
                skipped: 2,
                resyncs: 0
            }
        );
    }

    #[test]
    fn backwards_clock_reanchors_after_a_second_of_duplicates() {
        let r = Rate::new(25, 1).unwrap();
        let mut m = GridMapper::new(r, FrameIndex(0), ms(0.0));
        for i in 0..50 {
            m.place(ms(10_000.0 + 40.0 * f64::from(i)));
        }
        let next = m.next_slot();
        // The driver restarts its clock at 0.
        for i in 0..25 {
            assert!(matches!(
                m.place(ms(40.0 * f64::from(i))),
                Placement::Duplicate { .. }
            ));
        }
        assert_eq!(m.stats().resyncs, 1);
        assert_eq!(
            m.place(ms(1000.0)),
            Placement::Slot {
                index: next,
                skipped: 0
            }
        );
    }
}
