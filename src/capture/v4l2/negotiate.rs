//! Format negotiation: from what a device offers and what the profile wants, pick one pixel
//! format, size and frame interval — a pure function, tested against the capability sets of
//! real cards (`tests/data/v4l2/caps-*.json`; `smoothcast hw --json` prints the same shape, so a
//! new card's set can be recorded on its box and dropped into the tests).
//!
//! Preference order, most important first:
//! 1. **Rate, acceptable or not.** The device must deliver at least the channel's rate:
//!    exactly; or an exact multiple (60 for 30: the grid keeps every other frame); or within
//!    0.1 % (30 for 29.97: one grid slot in a thousand is repeated or dropped, counted). A
//!    faster rate that is none of these (uneven drops) is a last resort. Slower rates are
//!    refused: a 15 fps webcam mode on a 30 fps channel would repeat every other frame for
//!    ever. Interlaced modes count at their frame rate (blend-deinterlaced) or at their field
//!    rate (bob-deinterlaced), whichever matches better — see [`super::interlace`].
//! 2. **Size.** Exactly the top rung's size; else the smallest size at least as large in both
//!    directions (downscaling keeps quality); else the largest smaller one. Size ranks above
//!    the kind of rate match: a 1080p mode at 30 fps beats a 720p mode at exactly 29.97 for a
//!    1080p29.97 channel — an occasional repeated slot costs less than upscaling for ever.
//! 3. **Rate match:** exact, then multiple, then near.
//! 4. **Pixel format.** Cheapest to convert: YUV420, NV12, then UYVY/YUYV, then MJPEG (decode
//!    cost and compression artefacts; but it wins whenever only MJPEG reaches the rate, as on
//!    USB 2 webcams at HD sizes).
//! 5. Progressive before interlaced, then the rate closest to the channel's.

use super::convert::PixelFormat;
use super::interlace::Deinterlace;
use crate::time::Rate;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::fmt;

/// A V4L2 fraction (`numerator/denominator`), serialised as `"1001/30000"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Fraction {
    /// Numerator (non-zero).
    pub num: u32,
    /// Denominator (non-zero).
    pub den: u32,
}

impl Fraction {
    /// `num/den`; `None` when either is zero.
    pub fn new(num: u32, den: u32) -> Option<Fraction> {
        (num > 0 && den > 0).then_some(Fraction { num, den })
    }

    /// Frames per second of a frame interval given in seconds.
    pub fn fps(self) -> f64 {
        f64::from(self.den) / f64::from(self.num.max(1))
    }
}

impl TryFrom<String> for Fraction {
    type Error = String;
    fn try_from(s: String) -> Result<Fraction, String> {
        let (n, d) = s
            .split_once('/')
            .ok_or_else(|| format!("\"{s}\" is not a fraction n/d"))?;
        let parse = |v: &str| v.trim().parse::<u32>().map_err(|e| format!("\"{s}\": {e}"));
        Fraction::new(parse(n)?, parse(d)?).ok_or_else(|| format!("\"{s}\" has a zero term"))
    }
}

impl From<Fraction> for String {
    fn from(f: Fraction) -> String {
        format!("{}/{}", f.num, f.den)
    }
}

impl fmt::Display for Fraction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.num, self.den)
    }
}

/// What a video capture device offers (`VIDIOC_QUERYCAP`, `VIDIOC_ENUMINPUT`,
/// `VIDIOC_ENUM_FMT` → `VIDIOC_ENUM_FRAMESIZES` → `VIDIOC_ENUM_FRAMEINTERVALS`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapabilitySet {
    /// Provenance of a fixture ("modelled on …" or "recorded on …"); absent for live devices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Kernel driver name (`uvcvideo`, `ProCapture`).
    pub driver: String,
    /// Card name as the driver reports it.
    pub card: String,
    /// Bus location (`usb-0000:00:14.0-2`, `PCIe:0000:03:00.0`).
    pub bus: String,
    /// The card's inputs (connectors); empty when the driver has none to choose.
    #[serde(default)]
    pub inputs: Vec<InputCaps>,
    /// Capture formats in the driver's order.
    pub formats: Vec<FormatCaps>,
}

/// One input (connector) of a card.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputCaps {
    /// `VIDIOC_S_INPUT` index.
    pub index: u32,
    /// The driver's name for the connector (`SDI`, `Composite0`).
    pub name: String,
    /// Analogue TV standards the input supports (`PAL`, `NTSC`); empty for digital inputs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub standards: Vec<String>,
    /// Status flags the driver reported (`no-signal`, `no-sync`), if any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub status: Vec<String>,
}

/// One pixel format and the sizes it comes in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormatCaps {
    /// V4L2 four-character code (`UYVY`, `MJPG`, `H264`…).
    pub fourcc: String,
    /// The driver's description.
    #[serde(default)]
    pub description: String,
    /// Frame sizes (stepwise ranges sampled at common sizes when probed).
    pub sizes: Vec<SizeCaps>,
}

/// One frame size and its frame intervals.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SizeCaps {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels (of the whole frame; both fields for interlaced modes).
    pub height: u32,
    /// Discrete frame intervals in seconds (`1001/30000` = 29.97 fps).
    pub intervals: Vec<Fraction>,
    /// The mode is interlaced (two fields per buffer, woven): the field order the card
    /// reports once the format is set. Fixtures mark SDI modes such as 1080i50 this way.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub interlaced: bool,
}

/// What the channel needs from its video input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Want {
    /// The top rung's width in pixels.
    pub width: u32,
    /// The top rung's height in pixels.
    pub height: u32,
    /// The channel's frame rate.
    pub rate: Rate,
}

/// How the delivered rate relates to the channel's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RateMatch {
    /// Exactly the channel's rate.
    Exact,
    /// An exact multiple `k` of it; the grid keeps one buffer in `k`.
    Multiple(u32),
    /// Within 0.1 % of it; the grid repeats or drops a slot now and then (counted).
    Near,
    /// Faster but not a multiple: uneven drops.
    Faster,
}

/// The negotiated mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Choice {
    /// Pixel format to set.
    pub format: PixelFormat,
    /// Frame width in pixels.
    pub width: u32,
    /// Frame height in pixels.
    pub height: u32,
    /// Frame interval in seconds.
    pub interval: Fraction,
    /// Deinterlacing applied (`None` for progressive modes).
    pub deinterlace: Option<Deinterlace>,
    /// How the output picture rate relates to the channel rate.
    pub rate_match: RateMatch,
}

impl fmt::Display for Choice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}x{} @ {:.3} fps",
            self.format.fourcc_str(),
            self.width,
            self.height,
            self.interval.fps()
        )?;
        match self.deinterlace {
            Some(d) => write!(f, " interlaced ({d})"),
            None => Ok(()),
        }
    }
}

/// Why no mode fits.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NegotiateError {
    /// None of the offered pixel formats is one smoothcast converts.
    #[error("the device offers no pixel format smoothcast converts (offers {offered}; supported: UYVY, YUYV, NV12, YU12, MJPG)")]
    NoSupportedFormat {
        /// The offered four-character codes, comma-separated.
        offered: String,
    },
    /// No supported mode reaches the channel's rate.
    #[error("the device cannot deliver {want} fps at any size in a supported format; the fastest mode is {fastest}")]
    TooSlow {
        /// The channel rate, as text (`29.97`).
        want: String,
        /// The fastest supported mode, described.
        fastest: String,
    },
}

fn format_rank(f: PixelFormat) -> u8 {
    match f {
        PixelFormat::Yuv420 => 0,
        PixelFormat::Nv12 => 1,
        PixelFormat::Uyvy | PixelFormat::Yuyv => 2,
        PixelFormat::Mjpeg => 3,
    }
}

/// Rate class of an output picture rate `out_num/out_den` (pictures per second) against the
/// channel rate; `None` when slower.
fn rate_match(out_num: u64, out_den: u64, want: Rate) -> Option<RateMatch> {
    let (wn, wd) = (u64::from(want.num()), u64::from(want.den()));
    // Compare out/want = (out_num·wd) / (out_den·wn).
    let a = u128::from(out_num) * u128::from(wd);
    let b = u128::from(out_den) * u128::from(wn);
    if a == b {
        return Some(RateMatch::Exact);
    }
    if a > b && a % b == 0 {
        return Some(RateMatch::Multiple(
            u32::try_from(a / b).unwrap_or(u32::MAX),
        ));
    }
    // |a/b − 1| ≤ 1/1000  ⇔  1000·|a − b| ≤ b
    if 1000 * a.abs_diff(b) <= b {
        return Some(RateMatch::Near);
    }
    (a > b).then_some(RateMatch::Faster)
}

/// Sort key of a candidate (lower is better), see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    last_resort: bool,
    size_class: u8,
    size_distance: u64,
    rate: RateMatch,
    format: u8,
    interlaced: bool,
    /// |out − want| in millionths of a frame per second.
    rate_distance: u64,
}

/// Picks the best mode of `caps` for `want` (see the module docs for the order).
pub fn negotiate(caps: &CapabilitySet, want: &Want) -> Result<Choice, NegotiateError> {
    let want_area = u64::from(want.width) * u64::from(want.height);
    let mut best: Option<(Key, Choice)> = None;
    let mut fastest: Option<(f64, String)> = None;
    let mut any_supported = false;
    for fmt in &caps.formats {
        let Some(pf) = PixelFormat::from_fourcc(fmt.fourcc.as_bytes()) else {
            continue;
        };
        any_supported = true;
        for size in &fmt.sizes {
            let area = u64::from(size.width) * u64::from(size.height);
            let (size_class, size_distance) =
                if (size.width, size.height) == (want.width, want.height) {
                    (0, 0)
                } else if size.width >= want.width && size.height >= want.height {
                    (1, area - want_area)
                } else {
                    (2, want_area.saturating_sub(area))
                };
            for &interval in &size.intervals {
                // Output pictures per second: den/num per frame, doubled for bob.
                let modes: &[Option<Deinterlace>] = if size.interlaced {
                    &[Some(Deinterlace::Blend), Some(Deinterlace::Bob)]
                } else {
                    &[None]
                };
                for &mode in modes {
                    let per_frame = if mode == Some(Deinterlace::Bob) { 2 } else { 1 };
                    let (on, od) = (u64::from(interval.den) * per_frame, u64::from(interval.num));
                    let fps = on as f64 / od.max(1) as f64;
                    if fastest.as_ref().is_none_or(|(f, _)| fps > *f) {
                        fastest = Some((
                            fps,
                            format!(
                                "{} {}x{} at {:.3} fps",
                                pf.fourcc_str(),
                                size.width,
                                size.height,
                                fps
                            ),
                        ));
                    }
                    let Some(rate) = rate_match(on, od, want.rate) else {
                        continue;
                    };
                    let key = Key {
                        last_resort: rate == RateMatch::Faster,
                        rate,
                        size_class,
                        size_distance,
                        format: format_rank(pf),
                        interlaced: size.interlaced,
                        rate_distance: ((fps - want.rate.as_f64()).abs() * 1e6) as u64,
                    };
                    let choice = Choice {
                        format: pf,
                        width: size.width,
                        height: size.height,
                        interval,
                        deinterlace: mode,
                        rate_match: rate,
                    };
                    let better = match &best {
                        None => true,
                        Some((k, _)) => key.cmp(k) == Ordering::Less,
                    };
                    if better {
                        best = Some((key, choice));
                    }
                }
            }
        }
    }
    if !any_supported {
        let offered: Vec<&str> = caps.formats.iter().map(|f| f.fourcc.as_str()).collect();
        return Err(NegotiateError::NoSupportedFormat {
            offered: if offered.is_empty() {
                "nothing".into()
            } else {
                offered.join(", ")
            },
        });
    }
    match best {
        Some((_, c)) => Ok(c),
        None => Err(NegotiateError::TooSlow {
            want: format!("{:.3}", want.rate.as_f64())
                .trim_end_matches('0')
                .trim_end_matches('.')
                .to_string(),
            fastest: fastest
                .map(|(_, d)| d)
                .unwrap_or_else(|| "none (no frame sizes listed)".into()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_classes_are_exact_in_integers() {
        let ntsc = Rate::new(30000, 1001).unwrap();
        assert_eq!(rate_match(30000, 1001, ntsc), Some(RateMatch::Exact));
        assert_eq!(rate_match(60000, 1001, ntsc), Some(RateMatch::Multiple(2)));
        assert_eq!(rate_match(30, 1, ntsc), Some(RateMatch::Near));
        assert_eq!(rate_match(60, 1, ntsc), Some(RateMatch::Faster));
        assert_eq!(rate_match(25, 1, ntsc), None);
        // 29.97 for a 30 channel is 0.1 % slow: still "near" (a repeat every 1001 frames).
        assert_eq!(
            rate_match(30000, 1001, Rate::new(30, 1).unwrap()),
            Some(RateMatch::Near)
        );
    }

    #[test]
    fn fraction_text_round_trips_and_refuses_zero() {
        let f: Fraction = serde_json::from_str("\"1001/30000\"").unwrap();
        assert_eq!(f, Fraction::new(1001, 30000).unwrap());
        assert_eq!(serde_json::to_string(&f).unwrap(), "\"1001/30000\"");
        assert!(serde_json::from_str::<Fraction>("\"0/25\"").is_err());
        assert!(serde_json::from_str::<Fraction>("\"25\"").is_err());
    }
}
