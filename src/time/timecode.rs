//! SMPTE timecode (ST 12-1) and its exact mapping to the master clock.
//!
//! A timecode labels a frame within a day; together with a UTC date it names a [`FrameIndex`]:
//! the first frame of the date (`ceil(midnight_unix_seconds × rate)`) plus the frames counted
//! since midnight. Counting is exact integer arithmetic in both directions.
//!
//! Drop-frame counting (`;` or `.` before the frames) exists only at 30000/1001 and 60000/1001:
//! frame *numbers* 00–01 (resp. 00–03) are skipped at the start of every minute except minutes
//! divisible by 10, so that the label stays within a few frames of real time. No frames are
//! dropped, only labels. A drop-frame day therefore holds 2 589 408 labels at 29.97 (5 178 816 at
//! 59.94), slightly fewer than the 2 589 410–2 589 411 frames of a real UTC day; see
//! [`timecode_of`] for the few frames before UTC midnight that have no label of their own.

use super::{FrameGrid, FrameIndex, Rate, DEFAULT_TIMESCALE};
use crate::profile::TimecodeSpec;
use crate::time::Clocks;
use std::fmt;
use std::str::FromStr;

/// A calendar date `(year, month, day)` in UTC (proleptic Gregorian).
pub type UtcDate = (i32, u32, u32);

/// The highest nominal frame rate SMPTE timecode counts (ST 12-3 goes up to 120 fps).
pub const MAX_TIMECODE_FPS: u32 = 120;

const SECONDS_PER_DAY: u64 = 86_400;
const NANOS_PER_DAY: u128 = 86_400_000_000_000;
/// Days from 0000-03-01 to 1970-01-01 in the civil-date algorithm below.
const EPOCH_SHIFT_DAYS: i64 = 719_468;

/// A SMPTE timecode label `HH:MM:SS:FF` (non-drop) or `HH:MM:SS;FF` (drop-frame).
///
/// The fields are the label as written; whether the label exists depends on the rate and is
/// checked by [`Timecode::frames_since_midnight`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Timecode {
    /// Hours, 0–23.
    pub hours: u8,
    /// Minutes, 0–59.
    pub minutes: u8,
    /// Seconds, 0–59.
    pub seconds: u8,
    /// Frame number within the second, `0..nominal_fps`.
    pub frames: u8,
    /// Drop-frame counting (only defined at 30000/1001 and 60000/1001).
    pub drop_frame: bool,
}

/// Errors of the time layer: timecode and date parsing, validation against a rate, and
/// conversion to frame indices. Every message quotes the offending input.
#[derive(Debug, thiserror::Error)]
pub enum TimeError {
    /// The text is not shaped like a timecode.
    #[error(
        "invalid timecode \"{input}\": expected HH:MM:SS:FF (non-drop) or HH:MM:SS;FF / \
         HH:MM:SS.FF (drop-frame)"
    )]
    TimecodeSyntax {
        /// The input as given (truncated to 40 characters).
        input: String,
    },
    /// A timecode field is out of its range whatever the rate.
    #[error("invalid timecode \"{input}\": {field} {value} out of range 0..={max}")]
    FieldOutOfRange {
        /// The input as given (truncated to 40 characters).
        input: String,
        /// `hours`, `minutes`, `seconds` or `frames`.
        field: &'static str,
        /// The value written.
        value: u32,
        /// The largest value the field can hold.
        max: u32,
    },
    /// The frame number is not below the nominal frame rate.
    #[error(
        "timecode {timecode} does not exist at {rate} fps: frame numbers run 00 to {last:02}",
        last = .nominal_fps - 1
    )]
    FrameOutOfRange {
        /// The label as given.
        timecode: Timecode,
        /// The channel rate it was checked against.
        rate: Rate,
        /// Nominal (integer) frames per second of `rate`.
        nominal_fps: u32,
    },
    /// Drop-frame counting was asked for at a rate that does not define it.
    #[error(
        "drop-frame timecode is not defined at {rate} fps, only at 30000/1001 and 60000/1001 \
         (write ':' before the frames for non-drop counting)"
    )]
    DropFrameUnsupported {
        /// The channel rate.
        rate: Rate,
    },
    /// The rate is too fast for SMPTE timecode.
    #[error(
        "{rate} fps (nominal {nominal_fps}) is above the {MAX_TIMECODE_FPS} fps that SMPTE \
         timecode can count"
    )]
    RateUnsupported {
        /// The channel rate.
        rate: Rate,
        /// Its nominal (integer) frames per second.
        nominal_fps: u32,
    },
    /// A drop-frame label that is skipped by the counting.
    #[error(
        "timecode {timecode} does not exist in drop-frame counting (frames {} are dropped at \
         minute {minute})",
        dropped_numbers(*.dropped)
    )]
    DroppedFrameNumber {
        /// The label as given.
        timecode: Timecode,
        /// Minute of the hour (never divisible by 10).
        minute: u8,
        /// How many frame numbers are skipped at each such minute (2 or 4).
        dropped: u8,
    },
    /// The text is not a valid `YYYY-MM-DD` date.
    #[error("invalid date \"{input}\": {reason}")]
    Date {
        /// The input as given (truncated to 40 characters).
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Frame indices count from the Unix epoch and cannot name earlier dates.
    #[error(
        "date {:04}-{:02}-{:02} is before 1970-01-01, where frame indices start",
        .date.0, .date.1, .date.2
    )]
    BeforeEpoch {
        /// The date asked for.
        date: UtcDate,
    },
    /// The frame index of the date does not fit 64 bits.
    #[error(
        "date {:04}-{:02}-{:02} is too far in the future for a frame index at {rate} fps",
        .date.0, .date.1, .date.2
    )]
    FrameIndexOverflow {
        /// The date asked for.
        date: UtcDate,
        /// The channel rate.
        rate: Rate,
    },
}

/// "00 and 01" / "00 to 03": the frame numbers skipped at a drop-frame minute.
fn dropped_numbers(dropped: u8) -> String {
    match dropped {
        0 | 1 => "00".to_string(),
        2 => "00 and 01".to_string(),
        n => format!("00 to {:02}", n - 1),
    }
}

/// At most 40 characters of untrusted input for an error message.
fn shown(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Frame numbers skipped at each drop minute, or an error when the counting is undefined.
fn drop_count(rate: Rate, drop_frame: bool) -> Result<u64, TimeError> {
    let nominal_fps = rate.nominal_fps();
    if nominal_fps > MAX_TIMECODE_FPS {
        return Err(TimeError::RateUnsupported { rate, nominal_fps });
    }
    if !drop_frame {
        return Ok(0);
    }
    match (rate.num(), rate.den()) {
        (30000, 1001) => Ok(2),
        (60000, 1001) => Ok(4),
        _ => Err(TimeError::DropFrameUnsupported { rate }),
    }
}

/// Checks that timecode can be counted at `rate` with (or without) drop-frame, e.g. when a
/// profile is validated, before any timecode is converted.
pub fn check_timecode_rate(rate: Rate, drop_frame: bool) -> Result<(), TimeError> {
    drop_count(rate, drop_frame).map(|_| ())
}

impl Timecode {
    /// Parses `HH:MM:SS:FF` (non-drop) or `HH:MM:SS;FF` / `HH:MM:SS.FF` (drop-frame).
    /// The frames field may have three digits for rates above 99 fps. Surrounding whitespace
    /// is ignored. Only rate-independent ranges are checked here.
    pub fn parse(s: &str) -> Result<Timecode, TimeError> {
        let t = s.trim();
        let b = t.as_bytes();
        let syntax = || TimeError::TimecodeSyntax { input: shown(s) };
        if !(11..=12).contains(&b.len()) || b[2] != b':' || b[5] != b':' {
            return Err(syntax());
        }
        let drop_frame = match b[8] {
            b':' => false,
            b';' | b'.' => true,
            _ => return Err(syntax()),
        };
        let number = |digits: &[u8]| -> Result<u32, TimeError> {
            digits.iter().try_fold(0u32, |acc, &c| {
                if c.is_ascii_digit() {
                    Ok(acc * 10 + u32::from(c - b'0'))
                } else {
                    Err(syntax())
                }
            })
        };
        let field = |name: &'static str, value: u32, max: u32| -> Result<u8, TimeError> {
            if value > max {
                return Err(TimeError::FieldOutOfRange {
                    input: shown(t),
                    field: name,
                    value,
                    max,
                });
            }
            u8::try_from(value).map_err(|_| syntax())
        };
        let (h, m, sec, f) = (
            number(&b[0..2])?,
            number(&b[3..5])?,
            number(&b[6..8])?,
            number(&b[9..])?,
        );
        Ok(Timecode {
            hours: field("hours", h, 23)?,
            minutes: field("minutes", m, 59)?,
            seconds: field("seconds", sec, 59)?,
            frames: field("frames", f, u32::from(u8::MAX))?,
            drop_frame,
        })
    }

    /// Number of distinct labels in one timecode day at `rate`: `86400 × nominal_fps` for
    /// non-drop, 2 589 408 for 29.97 drop-frame, 5 178 816 for 59.94 drop-frame.
    pub fn frames_per_day(rate: Rate, drop_frame: bool) -> Result<u64, TimeError> {
        let drop = drop_count(rate, drop_frame)?;
        let fps = u64::from(rate.nominal_fps());
        // 24 h = 144 ten-minute blocks; each block drops labels in 9 of its 10 minutes.
        Ok(144 * (600 * fps - 9 * drop))
    }

    /// Frames counted from 00:00:00:00 to this label at `rate` (in frames of the timecode
    /// day, not UTC time). Fails when the label does not exist at `rate`.
    pub fn frames_since_midnight(&self, rate: Rate) -> Result<u64, TimeError> {
        let drop = drop_count(rate, self.drop_frame)?;
        let nominal_fps = rate.nominal_fps();
        let range = |field: &'static str, value: u8, max: u32| {
            if u32::from(value) > max {
                Err(TimeError::FieldOutOfRange {
                    input: self.to_string(),
                    field,
                    value: u32::from(value),
                    max,
                })
            } else {
                Ok(())
            }
        };
        range("hours", self.hours, 23)?;
        range("minutes", self.minutes, 59)?;
        range("seconds", self.seconds, 59)?;
        if u32::from(self.frames) >= nominal_fps {
            return Err(TimeError::FrameOutOfRange {
                timecode: *self,
                rate,
                nominal_fps,
            });
        }
        if drop > 0
            && self.seconds == 0
            && !self.minutes.is_multiple_of(10)
            && u64::from(self.frames) < drop
        {
            return Err(TimeError::DroppedFrameNumber {
                timecode: *self,
                minute: self.minutes,
                dropped: drop as u8,
            });
        }
        let fps = u64::from(nominal_fps);
        let total_minutes = 60 * u64::from(self.hours) + u64::from(self.minutes);
        let labels = (total_minutes * 60 + u64::from(self.seconds)) * fps + u64::from(self.frames);
        Ok(labels - drop * (total_minutes - total_minutes / 10))
    }

    /// The label of the frame `frames` after midnight, counted modulo one timecode day.
    ///
    /// This cannot fail, so counting the rate does not define falls back: `drop_frame` at a
    /// rate without drop-frame gives a non-drop label (`drop_frame: false`), and a rate above
    /// [`MAX_TIMECODE_FPS`] saturates the frames field. [`check_timecode_rate`] rules both out.
    pub fn from_frames_since_midnight(frames: u64, rate: Rate, drop_frame: bool) -> Timecode {
        let (drop, drop_frame) = match drop_count(rate, drop_frame) {
            Ok(d) => (d, drop_frame),
            Err(_) => (0, false),
        };
        let fps = u64::from(rate.nominal_fps());
        let per_day = 144 * (600 * fps - 9 * drop);
        let mut n = frames % per_day;
        if drop > 0 {
            // Re-insert the skipped labels: 9 × drop per full ten-minute block, and `drop`
            // per minute started after the first (undropped) minute of the current block.
            let per_ten = 600 * fps - 9 * drop;
            let per_minute = 60 * fps - drop;
            let (blocks, rest) = (n / per_ten, n % per_ten);
            n += 9 * drop * blocks;
            if rest >= drop {
                n += drop * ((rest - drop) / per_minute);
            }
        }
        let second = n / fps;
        Timecode {
            hours: (second / 3600) as u8,
            minutes: (second / 60 % 60) as u8,
            seconds: (second % 60) as u8,
            frames: u8::try_from(n % fps).unwrap_or(u8::MAX),
            drop_frame,
        }
    }
}

impl fmt::Display for Timecode {
    /// `HH:MM:SS:FF`, or `HH:MM:SS;FF` for drop-frame.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sep = if self.drop_frame { ';' } else { ':' };
        write!(
            f,
            "{:02}:{:02}:{:02}{sep}{:02}",
            self.hours, self.minutes, self.seconds, self.frames
        )
    }
}

impl FromStr for Timecode {
    type Err = TimeError;

    fn from_str(s: &str) -> Result<Timecode, TimeError> {
        Timecode::parse(s)
    }
}

/// Parses a UTC date written `YYYY-MM-DD` (surrounding whitespace ignored).
pub fn parse_date(s: &str) -> Result<UtcDate, TimeError> {
    let t = s.trim();
    let b = t.as_bytes();
    let bad = |reason: String| TimeError::Date {
        input: shown(s),
        reason,
    };
    let shaped = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shaped {
        return Err(bad("expected YYYY-MM-DD".to_string()));
    }
    let number = |digits: &[u8]| {
        digits
            .iter()
            .fold(0u32, |acc, &c| acc * 10 + u32::from(c - b'0'))
    };
    let date = (number(&b[0..4]) as i32, number(&b[5..7]), number(&b[8..10]));
    check_date(date).map_err(bad)?;
    Ok(date)
}

/// `Err(reason)` unless `date` is a real calendar date.
fn check_date((y, m, d): UtcDate) -> Result<(), String> {
    if !(1..=12).contains(&m) {
        return Err(format!("month {m} out of range 01..=12"));
    }
    if d == 0 || d > days_in_month(y, m) {
        return Err(format!("day {d} does not exist in {y:04}-{m:02}"));
    }
    Ok(())
}

fn days_in_month(y: i32, m: u32) -> u32 {
    match m {
        2 if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a valid civil date (H. Hinnant's `days_from_civil`).
fn days_from_civil((y, m, d): UtcDate) -> i64 {
    let y = i64::from(y) - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - EPOCH_SHIFT_DAYS
}

/// The civil date `days` after 1970-01-01 (H. Hinnant's `civil_from_days`). Years beyond the
/// `i32` range saturate.
fn civil_from_days(days: i64) -> UtcDate {
    let z = days + EPOCH_SHIFT_DAYS;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (i32::try_from(y).unwrap_or(i32::MAX), m, d)
}

/// The first frame at or after 00:00:00 UTC of `date`: `ceil(midnight_unix_seconds × rate)`.
pub fn first_frame_of_date(date: UtcDate, rate: Rate) -> Result<FrameIndex, TimeError> {
    check_date(date).map_err(|reason| TimeError::Date {
        input: format!("{:04}-{:02}-{:02}", date.0, date.1, date.2),
        reason,
    })?;
    let days = u64::try_from(days_from_civil(date)).map_err(|_| TimeError::BeforeEpoch { date })?;
    Ok(FrameIndex(
        first_frame_of_day(days, rate).ok_or(TimeError::FrameIndexOverflow { date, rate })?,
    ))
}

/// `ceil(days × 86400 × num / den)`, or `None` when it does not fit 64 bits.
fn first_frame_of_day(days: u64, rate: Rate) -> Option<u64> {
    let secs = u128::from(days) * u128::from(SECONDS_PER_DAY);
    let frames = (secs * u128::from(rate.num())).div_ceil(u128::from(rate.den()));
    u64::try_from(frames).ok()
}

/// The frame index labelled `tc` on the UTC `date`: the first frame of the date plus
/// [`Timecode::frames_since_midnight`].
///
/// At 30000/1001 or 60000/1001 non-drop, timecode runs 86.4 s a day slower than UTC, so labels
/// late in the day name frames of the next UTC date; they are still returned as counted.
pub fn frame_index(date: UtcDate, tc: &Timecode, rate: Rate) -> Result<FrameIndex, TimeError> {
    let since_midnight = tc.frames_since_midnight(rate)?;
    let first = first_frame_of_date(date, rate)?;
    first
        .0
        .checked_add(since_midnight)
        .map(FrameIndex)
        .ok_or(TimeError::FrameIndexOverflow { date, rate })
}

/// The UTC date that frame `n` falls in, and its timecode counted from that date's first frame.
///
/// Inverse of [`frame_index`]: `frame_index(timecode_of(n)) == n` for every frame that has a
/// label on its own date. The exception is drop-frame: a drop-frame day ends a little before
/// UTC midnight, and the last 2–3 frames of each UTC day at 29.97 (5–6 at 59.94) wrap to
/// `00:00:00;00`, `00:00:00;01`… of the same date, as a generator jammed at midnight shows.
/// `drop_frame` at a rate without drop-frame gives non-drop labels.
pub fn timecode_of(n: FrameIndex, rate: Rate, drop_frame: bool) -> (UtcDate, Timecode) {
    // Largest d with ceil(d × 86400 × num / den) <= n  ⇔  d × 86400 × num <= n × den.
    let days = u128::from(n.0) * u128::from(rate.den())
        / (u128::from(SECONDS_PER_DAY) * u128::from(rate.num()));
    // n × den / (86400 × num) < 2^64 × 2^32 / 86400 < 2^63, so both conversions are lossless.
    let days = u64::try_from(days).unwrap_or(u64::MAX);
    let first = first_frame_of_day(days, rate).unwrap_or(n.0);
    let date = civil_from_days(i64::try_from(days).unwrap_or(i64::MAX));
    let tc = Timecode::from_frames_since_midnight(n.0 - first.min(n.0), rate, drop_frame);
    (date, tc)
}

/// The UTC date of `clocks` now.
pub fn today_utc(clocks: &dyn Clocks) -> UtcDate {
    let days = clocks.utc_nanos() / NANOS_PER_DAY;
    civil_from_days(i64::try_from(days).unwrap_or(i64::MAX))
}

/// The frame index a time-of-day label names, with the date taken from the clock (UTC at
/// `utc_nanos`), and that index minus the clock's own frame index (frames).
///
/// Near midnight a label and the clock can be on different sides of it (23:59:59:24 read at
/// 00:00:00.02 UTC, or the reverse), so of the previous, current and next UTC dates the one
/// that puts the frame nearest to the clock is used. Labels in a local time zone within 12 h of
/// UTC therefore work too (offset by the zone). Fails when the label does not exist at `rate`.
/// Used by the `ltc` and `v4l2` timecode sources.
pub fn frame_index_near(
    tc: &Timecode,
    rate: Rate,
    utc_nanos: u128,
) -> Result<(FrameIndex, i64), TimeError> {
    // Fail early on labels that do not exist at the rate, whatever the date.
    tc.frames_since_midnight(rate)?;
    let clock_index = FrameGrid::new(rate, DEFAULT_TIMESCALE).frame_at_unix_nanos(utc_nanos);
    let today = utc_nanos / NANOS_PER_DAY;
    let date_of_day = |day: u128| -> Option<UtcDate> {
        // The civil date of `day` days after 1970-01-01, via the date of that day's first
        // frame.
        let secs = day.checked_mul(u128::from(SECONDS_PER_DAY))?;
        let first = (secs * u128::from(rate.num())).div_ceil(u128::from(rate.den()));
        let first = u64::try_from(first).ok()?;
        Some(timecode_of(FrameIndex(first), rate, false).0)
    };
    let mut best: Option<(FrameIndex, i128)> = None;
    for day in [today.saturating_sub(1), today, today + 1] {
        let Some(date) = date_of_day(day) else {
            continue;
        };
        let Ok(index) = frame_index(date, tc, rate) else {
            continue;
        };
        let dist = i128::from(index.0) - i128::from(clock_index.0);
        if best.is_none_or(|(_, b)| dist.abs() < b.abs()) {
            best = Some((index, dist));
        }
    }
    match best {
        Some((index, dist)) => Ok((index, i64::try_from(dist).unwrap_or(i64::MAX))),
        // Every candidate failed: report the error for today's date.
        None => {
            let date = date_of_day(today).unwrap_or((1970, 1, 1));
            frame_index(date, tc, rate).map(|i| (i, 0))
        }
    }
}

/// The frame index a channel starts at, from the profile's timecode source.
///
/// `Clock`: the frame nearest to UTC now. `Fixed`: the timecode on the given date, or on
/// today's UTC date (from `clocks`) when the date is empty. `Ltc` and `V4l2` are read from
/// the inputs (`capture::timecode::start`); here they give their fallback, the clock.
pub fn resolve_start(
    spec: &TimecodeSpec,
    rate: Rate,
    clocks: &dyn Clocks,
) -> Result<FrameIndex, TimeError> {
    match spec {
        TimecodeSpec::Clock | TimecodeSpec::Ltc { .. } | TimecodeSpec::V4l2 => {
            // The timescale does not enter frame_at_unix_nanos; any valid one will do.
            let grid = FrameGrid::new(rate, DEFAULT_TIMESCALE);
            Ok(grid.frame_at_unix_nanos(clocks.utc_nanos()))
        }
        TimecodeSpec::Fixed { date, timecode } => {
            let tc = Timecode::parse(timecode)?;
            let date = if date.trim().is_empty() {
                today_utc(clocks)
            } else {
                parse_date(date)?
            };
            frame_index(date, &tc, rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::SimulatedClocks;

    fn rate(num: u32, den: u32) -> Rate {
        Rate::new(num, den).unwrap()
    }

    fn tc(s: &str) -> Timecode {
        Timecode::parse(s).unwrap()
    }

    fn err(s: &str) -> String {
        Timecode::parse(s).unwrap_err().to_string()
    }

    #[test]
    fn parse_reads_all_three_separators_and_display_writes_them_back() {
        let ndf = tc("01:02:03:04");
        assert_eq!(
            ndf,
            Timecode {
                hours: 1,
                minutes: 2,
                seconds: 3,
                frames: 4,
                drop_frame: false
            }
        );
        assert_eq!(ndf.to_string(), "01:02:03:04");
        assert!(tc("01:02:03;04").drop_frame);
        assert_eq!(tc("01:02:03;04").to_string(), "01:02:03;04");
        assert_eq!(tc(" 23:59:59.29 ").to_string(), "23:59:59;29");
        assert_eq!(tc("00:00:00:119").frames, 119);
        assert_eq!(tc("00:00:00:119").to_string(), "00:00:00:119");
        assert_eq!(
            "10:00:00;00".parse::<Timecode>().unwrap(),
            tc("10:00:00.00")
        );
    }

    #[test]
    fn parse_rejects_malformed_text_with_the_expected_shape() {
        let shape = "expected HH:MM:SS:FF (non-drop) or HH:MM:SS;FF / HH:MM:SS.FF (drop-frame)";
        for bad in [
            "",
            "1:02:03:04",
            "01:02:03",
            "01-02-03-04",
            "01;02;03;04",
            "01:02:03,04",
            "01:02:03:4",
            "01:02:03:0400",
            "0a:02:03:04",
            "01:02:03:+4",
            "01:02:03:04\u{e9}",
            "\u{e9}\u{e9}:02:03:04",
        ] {
            assert_eq!(
                err(bad),
                format!("invalid timecode \"{bad}\": {shape}"),
                "{bad:?}"
            );
        }
        let long = "9".repeat(1000);
        assert!(
            err(&long).len() < 200,
            "error quotes untrusted input unbounded"
        );
    }

    #[test]
    fn parse_rejects_fields_out_of_range_naming_the_field() {
        assert_eq!(
            err("24:00:00:00"),
            "invalid timecode \"24:00:00:00\": hours 24 out of range 0..=23"
        );
        assert_eq!(
            err("00:60:00:00"),
            "invalid timecode \"00:60:00:00\": minutes 60 out of range 0..=59"
        );
        assert_eq!(
            err("00:00:60;00"),
            "invalid timecode \"00:00:60;00\": seconds 60 out of range 0..=59"
        );
        assert_eq!(
            err("00:00:00:256"),
            "invalid timecode \"00:00:00:256\": frames 256 out of range 0..=255"
        );
    }

    #[test]
    fn labels_that_do_not_exist_at_the_rate_are_rejected_precisely() {
        let ntsc = rate(30000, 1001);
        let e = tc("00:01:00;00").frames_since_midnight(ntsc).unwrap_err();
        assert_eq!(
            e.to_string(),
            "timecode 00:01:00;00 does not exist in drop-frame counting (frames 00 and 01 are \
             dropped at minute 1)"
        );
        let e = tc("13:59:00;03")
            .frames_since_midnight(rate(60000, 1001))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "timecode 13:59:00;03 does not exist in drop-frame counting (frames 00 to 03 are \
             dropped at minute 59)"
        );
        let e = tc("00:00:00;00")
            .frames_since_midnight(rate(25, 1))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "drop-frame timecode is not defined at 25 fps, only at 30000/1001 and 60000/1001 \
             (write ':' before the frames for non-drop counting)"
        );
        assert!(matches!(
            tc("00:00:00;00").frames_since_midnight(rate(24000, 1001)),
            Err(TimeError::DropFrameUnsupported { .. })
        ));
        let e = tc("00:00:00:25")
            .frames_since_midnight(rate(25, 1))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "timecode 00:00:00:25 does not exist at 25 fps: frame numbers run 00 to 24"
        );
        let e = tc("00:00:00;30").frames_since_midnight(ntsc).unwrap_err();
        assert_eq!(
            e.to_string(),
            "timecode 00:00:00;30 does not exist at 30000/1001 fps: frame numbers run 00 to 29"
        );
        let e = check_timecode_rate(rate(240, 1), false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "240 fps (nominal 240) is above the 120 fps that SMPTE timecode can count"
        );
        let wild = Timecode {
            hours: 30,
            minutes: 0,
            seconds: 0,
            frames: 0,
            drop_frame: false,
        };
        assert_eq!(
            wild.frames_since_midnight(rate(25, 1))
                .unwrap_err()
                .to_string(),
            "invalid timecode \"30:00:00:00\": hours 30 out of range 0..=23"
        );
    }

    #[test]
    fn drop_frame_keeps_labels_at_minutes_divisible_by_ten_and_after_the_drop() {
        let ntsc = rate(30000, 1001);
        assert_eq!(
            tc("00:10:00;00").frames_since_midnight(ntsc).unwrap(),
            17_982
        );
        assert_eq!(
            tc("00:01:00;02").frames_since_midnight(ntsc).unwrap(),
            1_800
        );
        assert_eq!(
            tc("01:00:00;00").frames_since_midnight(ntsc).unwrap(),
            107_892
        );
        assert_eq!(
            tc("01:00:00;00")
                .frames_since_midnight(rate(60000, 1001))
                .unwrap(),
            215_784
        );
        assert_eq!(
            tc("01:00:00:00").frames_since_midnight(ntsc).unwrap(),
            108_000
        );
        assert_eq!(
            Timecode::from_frames_since_midnight(1_800, ntsc, true).to_string(),
            "00:01:00;02"
        );
        // Fallback for a rate without drop-frame: non-drop labels, flagged as such.
        assert_eq!(
            Timecode::from_frames_since_midnight(25, rate(25, 1), true).to_string(),
            "00:00:01:00"
        );
    }

    #[test]
    fn dates_parse_strictly_and_reject_impossible_days() {
        assert_eq!(parse_date("2024-02-29").unwrap(), (2024, 2, 29));
        assert_eq!(
            parse_date("2023-02-29").unwrap_err().to_string(),
            "invalid date \"2023-02-29\": day 29 does not exist in 2023-02"
        );
        assert_eq!(
            parse_date("1900-02-29").unwrap_err().to_string(),
            "invalid date \"1900-02-29\": day 29 does not exist in 1900-02"
        );
        assert_eq!(
            parse_date("2024-13-01").unwrap_err().to_string(),
            "invalid date \"2024-13-01\": month 13 out of range 01..=12"
        );
        for bad in [
            "2024-1-01",
            "24-01-01",
            "2024/01/01",
            "2024-01-01T00",
            "",
            "2024-0a-01",
        ] {
            assert_eq!(
                parse_date(bad).unwrap_err().to_string(),
                format!("invalid date \"{bad}\": expected YYYY-MM-DD")
            );
        }
        assert_eq!(
            frame_index((1969, 12, 31), &tc("00:00:00:00"), rate(25, 1))
                .unwrap_err()
                .to_string(),
            "date 1969-12-31 is before 1970-01-01, where frame indices start"
        );
    }

    #[test]
    fn frame_index_starts_each_date_at_the_first_frame_after_midnight() {
        let ntsc = rate(30000, 1001);
        // 1970-01-02 00:00:00 UTC = 86400 s → 86400 × 30000 / 1001 = 2 589 410.58… → 2 589 411.
        assert_eq!(
            frame_index((1970, 1, 2), &tc("00:00:00;00"), ntsc).unwrap(),
            FrameIndex(2_589_411)
        );
        assert_eq!(
            frame_index((2024, 1, 1), &tc("00:00:01:00"), rate(25, 1)).unwrap(),
            FrameIndex(1_704_067_200 * 25 + 25)
        );
        let (date, label) = timecode_of(FrameIndex(2_589_411 + 1_800), ntsc, true);
        assert_eq!(
            (date, label.to_string()),
            ((1970, 1, 2), "00:01:00;02".to_string())
        );
        // The last frames of the UTC day have no drop-frame label of their own and wrap.
        let (date, label) = timecode_of(FrameIndex(2_589_410), ntsc, true);
        assert_eq!(
            (date, label.to_string()),
            ((1970, 1, 1), "00:00:00;02".to_string())
        );
    }

    #[test]
    fn resolve_start_uses_the_clock_date_when_fixed_date_is_empty() {
        // 2024-03-10T12:00:00.02 UTC.
        let clocks = SimulatedClocks::new(1_710_072_000_020_000_000);
        let pal = rate(25, 1);
        assert_eq!(
            resolve_start(&TimecodeSpec::Clock, pal, clocks.as_ref()).unwrap(),
            FrameIndex(1_710_072_000 * 25 + 1)
        );
        let fixed = |date: &str| TimecodeSpec::Fixed {
            date: date.to_string(),
            timecode: "10:00:00:00".to_string(),
        };
        let midnight = 1_710_028_800u64 * 25;
        assert_eq!(
            resolve_start(&fixed(""), pal, clocks.as_ref()).unwrap(),
            FrameIndex(midnight + 36_000 * 25)
        );
        assert_eq!(
            resolve_start(&fixed("2024-03-09"), pal, clocks.as_ref()).unwrap(),
            FrameIndex(midnight - 86_400 * 25 + 36_000 * 25)
        );
        assert!(matches!(
            resolve_start(&fixed("yesterday"), pal, clocks.as_ref()),
            Err(TimeError::Date { .. })
        ));
    }
}
