//! Time: the master clock of a channel.
//!
//! Everything that must match between two boxes is a pure function of the **frame index**
//! (frames since 1970-01-01T00:00:00 UTC at the profile's exact rational rate). Sample times are
//! computed from indices in exact integer arithmetic, never by accumulating rounded durations.
//!
//! Time domains used across the crate:
//! - [`FrameIndex`]: video frames since the Unix epoch at the channel [`Rate`].
//! - [`SampleIndex`]: audio samples since the Unix epoch at the audio sample rate.
//! - [`MediaTime`]: ticks since the Unix epoch in a track timescale (default 10 MHz).

pub mod clock;
mod grid;
pub mod ltc;
pub mod timecode;
pub use clock::{Clocks, SimulatedClocks, SystemClocks};
pub use grid::{AudioGrid, FragmentGrid, FrameGrid};
pub use timecode::{
    check_timecode_rate, first_frame_of_date, frame_index, frame_index_near, parse_date,
    resolve_start, timecode_of, today_utc, TimeError, Timecode, UtcDate, MAX_TIMECODE_FPS,
};

use std::fmt;

/// The default track timescale of Smooth Streaming: 100 ns ticks (MS-SSTR 2.2.7.3.1).
pub const DEFAULT_TIMESCALE: u32 = 10_000_000;

/// An exact, non-zero rational frame rate `num/den` frames per second (e.g. 30000/1001).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rate {
    num: u32,
    den: u32,
}

impl Rate {
    /// A rate of `num/den` frames per second; `None` when either part is zero.
    /// The fraction is reduced so that equal rates compare equal.
    pub fn new(num: u32, den: u32) -> Option<Rate> {
        if num == 0 || den == 0 {
            return None;
        }
        let g = gcd(u64::from(num), u64::from(den)) as u32;
        Some(Rate {
            num: num / g,
            den: den / g,
        })
    }

    /// Parses "30000/1001", "25" or "25/1".
    pub fn parse(s: &str) -> Option<Rate> {
        let s = s.trim();
        match s.split_once('/') {
            Some((n, d)) => Rate::new(n.trim().parse().ok()?, d.trim().parse().ok()?),
            None => Rate::new(s.parse().ok()?, 1),
        }
    }

    pub fn num(self) -> u32 {
        self.num
    }

    pub fn den(self) -> u32 {
        self.den
    }

    /// Frames per second as a float, for display only.
    pub fn as_f64(self) -> f64 {
        f64::from(self.num) / f64::from(self.den)
    }

    /// The number of frames in `seconds` given as an exact fraction `secs_num/secs_den`,
    /// or `None` when that is not a whole number of frames.
    pub fn whole_frames_in(self, secs_num: u64, secs_den: u64) -> Option<u64> {
        let n = u128::from(secs_num) * u128::from(self.num);
        let d = u128::from(secs_den) * u128::from(self.den);
        if d == 0 || n % d != 0 {
            None
        } else {
            u64::try_from(n / d).ok()
        }
    }

    /// The nominal integer frame rate used by SMPTE timecode (30 for 30000/1001, 25 for 25).
    pub fn nominal_fps(self) -> u32 {
        self.num.div_ceil(self.den)
    }

    /// True for the NTSC-family rates (x000/1001) that use drop-frame timecode.
    pub fn is_ntsc(self) -> bool {
        self.den == 1001
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.den == 1 {
            write!(f, "{}", self.num)
        } else {
            write!(f, "{}/{}", self.num, self.den)
        }
    }
}

/// Video frames since 1970-01-01T00:00:00 UTC at the channel's exact [`Rate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct FrameIndex(pub u64);

impl fmt::Display for FrameIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "frame {}", self.0)
    }
}

/// Audio samples (per channel) since 1970-01-01T00:00:00 UTC at the audio sample rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SampleIndex(pub u64);

/// Ticks since 1970-01-01T00:00:00 UTC in a track timescale (10 MHz unless stated).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MediaTime(pub u64);

impl fmt::Display for MediaTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t={}", self.0)
    }
}

/// `floor(a * b / c)` in exact 128-bit arithmetic. Panics only if `c == 0`, which callers
/// rule out through [`Rate`] (non-zero by construction) and validated timescales.
pub(crate) fn mul_div_floor(a: u64, b: u64, c: u64) -> u64 {
    let r = u128::from(a) * u128::from(b) / u128::from(c);
    u64::try_from(r).unwrap_or(u64::MAX)
}

/// `ceil(a * b / c)` in exact 128-bit arithmetic.
pub(crate) fn mul_div_ceil(a: u64, b: u64, c: u64) -> u64 {
    let r = (u128::from(a) * u128::from(b)).div_ceil(u128::from(c));
    u64::try_from(r).unwrap_or(u64::MAX)
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_parse_reduces_and_rejects_zero() {
        assert_eq!(Rate::parse("30000/1001"), Rate::new(30000, 1001));
        assert_eq!(Rate::parse("50/2"), Rate::new(25, 1));
        assert_eq!(Rate::parse("25").map(|r| r.to_string()), Some("25".into()));
        assert_eq!(Rate::parse("0"), None);
        assert_eq!(Rate::parse("30/0"), None);
        assert_eq!(Rate::parse("abc"), None);
    }

    #[test]
    fn whole_frames_detects_fractional_gop() {
        let ntsc = Rate::new(30000, 1001).unwrap();
        assert_eq!(ntsc.whole_frames_in(2, 1), None);
        assert_eq!(ntsc.whole_frames_in(2002, 1000), Some(60));
        assert_eq!(Rate::new(25, 1).unwrap().whole_frames_in(2, 1), Some(50));
        assert_eq!(ntsc.nominal_fps(), 30);
        assert_eq!(Rate::new(60000, 1001).unwrap().nominal_fps(), 60);
    }
}
