//! Small exact parsers and formatters for profile values: rates, durations, timecodes, dates,
//! names and H.264 levels. Errors are messages; the caller attaches the field path.

use crate::time::timecode::{check_timecode_rate, parse_date, Timecode};
use crate::time::Rate;

/// Longest profile text accepted; profiles are hand-written and small.
pub(crate) const MAX_PROFILE_BYTES: usize = 1 << 20;

/// Parses an exact frame rate: `"30000/1001"`, `"25"`, `"50/2"`. Integers only, no decimals.
pub(crate) fn parse_rate(text: &str) -> Result<Rate, String> {
    let t = text.trim();
    let parts = match t.split_once('/') {
        Some((n, d)) => (n.trim().parse::<u32>(), d.trim().parse::<u32>()),
        None => (t.parse::<u32>(), Ok(1)),
    };
    let (num, den) = match parts {
        (Ok(n), Ok(d)) => (n, d),
        _ => {
            return Err(format!(
                "\"{text}\" is not a frame rate; write an exact rational like \"30000/1001\" or \
                 an integer like \"25\""
            ))
        }
    };
    let rate = Rate::new(num, den)
        .ok_or_else(|| format!("frame rate \"{text}\" has a zero numerator or denominator"))?;
    // 1..=120 fps covers every broadcast and webcam rate; outside it the numbers are a typo.
    if u64::from(rate.num()) < u64::from(rate.den())
        || u64::from(rate.num()) > 120 * u64::from(rate.den())
    {
        return Err(format!(
            "frame rate {rate} is outside 1–120 frames per second"
        ));
    }
    Ok(rate)
}

/// Parses an exact duration in seconds: `"2"`, `"2.002"`, `"2002/1000"`. Returns the reduced
/// fraction `(num, den)`; zero is refused.
pub(crate) fn parse_seconds(text: &str) -> Result<(u64, u64), String> {
    let t = text.trim();
    let bad = || {
        format!("\"{text}\" is not a duration; write seconds as \"2\", \"2.002\" or \"2002/1000\"")
    };
    let (num, den) = if let Some((n, d)) = t.split_once('/') {
        (
            parse_digits(n.trim()).ok_or_else(bad)?,
            parse_digits(d.trim()).ok_or_else(bad)?,
        )
    } else if let Some((int, frac)) = t.split_once('.') {
        // At most 9 decimals keeps num and den far below u64::MAX.
        if frac.is_empty() || frac.len() > 9 || int.is_empty() {
            return Err(bad());
        }
        let den = 10u64.pow(frac.len() as u32);
        let i = parse_digits(int).ok_or_else(bad)?;
        let f = parse_digits(frac).ok_or_else(bad)?;
        (
            i.checked_mul(den)
                .and_then(|v| v.checked_add(f))
                .ok_or_else(bad)?,
            den,
        )
    } else {
        (parse_digits(t).ok_or_else(bad)?, 1)
    };
    if den == 0 {
        return Err(bad());
    }
    if num == 0 {
        return Err(format!("duration \"{text}\" is zero"));
    }
    let g = gcd(num, den);
    Ok((num / g, den / g))
}

/// Parses ASCII digits only (no sign, no spaces), up to 18 of them.
fn parse_digits(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 18 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

pub(crate) fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    a
}

/// Formats seconds given as a fraction: exact decimal when it has one (`2`, `2.002`),
/// else the fraction (`1001/3000`).
pub(crate) fn fmt_secs((num, den): (u64, u64)) -> String {
    let g = gcd(num, den).max(1);
    let (num, den) = (num / g, den / g);
    let mut d = den;
    let mut decimals = 0u32;
    // den has a finite decimal expansion iff its only prime factors are 2 and 5.
    while d % 10 == 0 {
        d /= 10;
        decimals += 1;
    }
    while d % 2 == 0 {
        d /= 2;
        decimals += 1;
    }
    while d % 5 == 0 {
        d /= 5;
        decimals += 1;
    }
    if d != 1 || decimals > 12 {
        return format!("{num}/{den}");
    }
    let scale = 10u128.pow(decimals);
    let scaled = u128::from(num) * scale / u128::from(den);
    fmt_fixed(scaled, decimals)
}

/// Formats `num/den` rounded to two decimals with trailing zeros removed (`59.94`, `50`).
pub(crate) fn fmt_ratio_2dp(num: u128, den: u128) -> String {
    if den == 0 {
        return "?".to_owned();
    }
    let hundredths = (num * 200 + den) / (2 * den);
    fmt_fixed(hundredths, 2)
}

/// `scaled / 10^decimals` as a decimal string without trailing zeros.
fn fmt_fixed(scaled: u128, decimals: u32) -> String {
    let scale = 10u128.pow(decimals);
    let int = scaled / scale;
    let frac = scaled % scale;
    if frac == 0 {
        return int.to_string();
    }
    let digits = format!("{frac:0width$}", width = decimals as usize);
    format!("{int}.{}", digits.trim_end_matches('0'))
}

/// True when `s` is 1..=`max` characters of `[A-Za-z0-9_-]` (safe in URLs, ids and file names).
pub(crate) fn is_url_safe_name(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Checks a start timecode against the channel rate with the shared SMPTE rules
/// (`time::timecode`): syntax, ranges, drop-frame only at x000/1001, dropped frame numbers.
pub(crate) fn check_timecode(text: &str, rate: Rate) -> Result<(), String> {
    let tc = Timecode::parse(text).map_err(|e| e.to_string())?;
    check_timecode_rate(rate, tc.drop_frame).map_err(|e| e.to_string())?;
    tc.frames_since_midnight(rate)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Checks a UTC date `YYYY-MM-DD` on or after 1970-01-01 (the frame index epoch).
pub(crate) fn check_date(text: &str) -> Result<(), String> {
    let date = parse_date(text).map_err(|e| e.to_string())?;
    if date < (1970, 1, 1) {
        return Err(format!(
            "date {text} is before 1970-01-01, the frame index epoch"
        ));
    }
    Ok(())
}

/// H.264 level limits (ITU-T H.264 Table A-1).
#[derive(Clone, Copy, Debug)]
pub(crate) struct LevelLimits {
    /// Canonical level name (`4.1`).
    pub name: &'static str,
    /// Max macroblocks per second.
    pub max_mbps: u64,
    /// Max frame size in macroblocks.
    pub max_fs: u64,
    /// Max video bitrate in units of 1000 bit/s (Baseline/Main; High × 1.25).
    pub max_br: u64,
    /// Max CPB size in units of 1000 bit (Baseline/Main; High × 1.25).
    pub max_cpb: u64,
}

const LEVELS: &[LevelLimits] = &[
    lvl("1", 1_485, 99, 64, 175),
    lvl("1b", 1_485, 99, 128, 350),
    lvl("1.1", 3_000, 396, 192, 500),
    lvl("1.2", 6_000, 396, 384, 1_000),
    lvl("1.3", 11_880, 396, 768, 2_000),
    lvl("2", 11_880, 396, 2_000, 2_000),
    lvl("2.1", 19_800, 792, 4_000, 4_000),
    lvl("2.2", 20_250, 1_620, 4_000, 4_000),
    lvl("3", 40_500, 1_620, 10_000, 10_000),
    lvl("3.1", 108_000, 3_600, 14_000, 14_000),
    lvl("3.2", 216_000, 5_120, 20_000, 20_000),
    lvl("4", 245_760, 8_192, 20_000, 25_000),
    lvl("4.1", 245_760, 8_192, 50_000, 62_500),
    lvl("4.2", 522_240, 8_704, 50_000, 62_500),
    lvl("5", 589_824, 22_080, 135_000, 135_000),
    lvl("5.1", 983_040, 36_864, 240_000, 240_000),
    lvl("5.2", 2_073_600, 36_864, 240_000, 240_000),
    lvl("6", 4_177_920, 139_264, 240_000, 240_000),
    lvl("6.1", 8_355_840, 139_264, 480_000, 480_000),
    lvl("6.2", 16_711_680, 139_264, 800_000, 800_000),
];

const fn lvl(
    name: &'static str,
    max_mbps: u64,
    max_fs: u64,
    max_br: u64,
    max_cpb: u64,
) -> LevelLimits {
    LevelLimits {
        name,
        max_mbps,
        max_fs,
        max_br,
        max_cpb,
    }
}

/// Looks up a level by its name; `"4.0"` is accepted for `"4"`.
pub(crate) fn level(text: &str) -> Option<LevelLimits> {
    let t = text.trim();
    let t = t.strip_suffix(".0").unwrap_or(t);
    LEVELS.iter().copied().find(|l| l.name == t)
}

/// The level names, for error messages.
pub(crate) fn level_names() -> String {
    LEVELS.iter().map(|l| l.name).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(s: &str) -> Rate {
        parse_rate(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn seconds_parse_exactly_and_reduce() {
        assert_eq!(parse_seconds("2"), Ok((2, 1)));
        assert_eq!(parse_seconds("2.002"), Ok((1001, 500)));
        assert_eq!(parse_seconds("2002/1000"), Ok((1001, 500)));
        assert_eq!(parse_seconds(" 1.5 "), Ok((3, 2)));
        assert!(parse_seconds("0").is_err());
        assert!(parse_seconds("-2").is_err());
        assert!(parse_seconds("2.").is_err());
        assert!(parse_seconds(".5").is_err());
        assert!(parse_seconds("2/0").is_err());
        assert!(parse_seconds("1e3").is_err());
        assert!(parse_seconds("99999999999999999999").is_err());
    }

    #[test]
    fn seconds_format_as_exact_decimal_or_fraction() {
        assert_eq!(fmt_secs((2, 1)), "2");
        assert_eq!(fmt_secs((1001, 500)), "2.002");
        assert_eq!(fmt_secs((3, 2)), "1.5");
        assert_eq!(fmt_secs((1, 3)), "1/3");
        assert_eq!(fmt_ratio_2dp(60000, 1001), "59.94");
        assert_eq!(fmt_ratio_2dp(50, 1), "50");
        assert_eq!(fmt_ratio_2dp(201, 4), "50.25");
    }

    #[test]
    fn rates_outside_broadcast_range_are_refused() {
        assert_eq!(rate("30000/1001").to_string(), "30000/1001");
        assert_eq!(rate("25").to_string(), "25");
        assert!(parse_rate("0/1").is_err());
        assert!(parse_rate("29.97").is_err());
        assert!(parse_rate("1/2").is_err());
        assert!(parse_rate("121").is_err());
        assert!(parse_rate("-25").is_err());
    }

    #[test]
    fn drop_frame_timecodes_follow_smpte_12m() {
        let ntsc = rate("30000/1001");
        let ntsc60 = rate("60000/1001");
        assert!(check_timecode("10:00:00;00", ntsc).is_ok());
        assert!(check_timecode("00:10:00;00", ntsc).is_ok());
        assert!(check_timecode("00:01:00;02", ntsc).is_ok());
        assert!(check_timecode("00:01:00;01", ntsc).is_err());
        assert!(check_timecode("00:01:00;00", ntsc).is_err());
        assert!(check_timecode("00:01:00;03", ntsc60).is_err());
        assert!(check_timecode("00:01:00;04", ntsc60).is_ok());
        assert!(check_timecode("00:01:00.02", ntsc).is_ok());
        assert!(check_timecode("00:00:00;00", rate("25")).is_err());
        assert!(check_timecode("00:00:00;00", rate("24000/1001")).is_err());
        assert!(check_timecode("00:00:00:24", rate("25")).is_ok());
        assert!(check_timecode("00:00:00:25", rate("25")).is_err());
        assert!(check_timecode("24:00:00:00", rate("25")).is_err());
        assert!(check_timecode("1:00:00:00", rate("25")).is_err());
        assert!(check_timecode("01:00:00:0x", rate("25")).is_err());
        // Non-ASCII input of the right byte length must not panic.
        assert!(check_timecode("0é:00:00:0", rate("25")).is_err());
    }

    #[test]
    fn dates_are_checked_against_the_calendar_and_epoch() {
        assert!(check_date("2026-11-21").is_ok());
        assert!(check_date("2024-02-29").is_ok());
        assert!(check_date("2025-02-29").is_err());
        assert!(check_date("1969-12-31").is_err());
        assert!(check_date("2026-1-21").is_err());
        assert!(check_date("+2026-11-21").is_err());
    }

    #[test]
    fn levels_are_found_by_name() {
        assert_eq!(level("4.1").map(|l| l.max_fs), Some(8192));
        assert_eq!(level("4.0").map(|l| l.name), Some("4"));
        assert_eq!(level("1b").map(|l| l.max_br), Some(128));
        assert!(level("4.3").is_none());
    }
}
