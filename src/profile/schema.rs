//! The profile file as written: one struct per TOML table, `deny_unknown_fields` everywhere.
//!
//! Every field that may be omitted is an `Option` here; its default lives in
//! [`super::defaults`] (the one place defaults are defined) and is applied while resolving the
//! [`Plan`](super::Plan). Validation (ranges, cross-field rules) happens in resolution too, so
//! these types only describe the shape. `docs/profile.md` is the reference for operators and
//! must be kept in step with this file.

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

/// A whole profile file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileFile {
    /// `[channel]`: name, frame rate, fragment duration. Required.
    pub channel: ChannelSection,
    /// `[timecode]`: where the frame index comes from. Optional (default: `source = "clock"`).
    pub timecode: Option<TimecodeSection>,
    /// `[video]`: the video input. Required.
    pub video: VideoSection,
    /// `[audio]`: the audio input and the AAC-LC encoding. Required.
    pub audio: AudioSection,
    /// `[[rung]]`: the video ladder, highest bitrate first. At least one.
    pub rung: Option<Vec<RungSection>>,
    /// `[streams]`: how tracks are grouped into ingest POSTs. Optional.
    pub streams: Option<StreamsSection>,
    /// `[[destination]]`: publishing points. Zero or more (zero = archive / built-in sink only).
    pub destination: Option<Vec<DestinationSection>>,
    /// `[push]`: push session behaviour. Optional.
    pub push: Option<PushSection>,
    /// `[output]`: local outputs. Optional.
    pub output: Option<OutputSection>,
    /// `[control]`: the local HTTP control API. Optional.
    pub control: Option<ControlSection>,
}

/// `[channel]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelSection {
    /// Channel name, `[A-Za-z0-9_-]`, 1–64 characters; prefixes every stream id.
    pub name: String,
    /// Exact frame rate: `"30000/1001"`, `"25"`, `"50/1"` or a TOML integer (`25`).
    pub rate: ExactText,
    /// Fragment (= GOP) duration in seconds, exact: `"2"`, `"2.002"`, `"2002/1000"` or a TOML
    /// integer. Duration × rate must be a whole number of frames. Floats are refused because
    /// `2.002` is not exact in binary.
    pub fragment_duration: ExactText,
    /// Track timescale in ticks per second (media time domain). Default 10 000 000.
    pub timescale: Option<u32>,
}

/// `[timecode]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimecodeSection {
    /// `clock` (system UTC, NTP/PTP disciplined), `fixed` (a configured start), `ltc`
    /// (SMPTE LTC on a channel of the audio input) or `v4l2` (the capture driver's buffer
    /// timecode). `ltc` and `v4l2` fall back to the clock, with an alert, when the input gives
    /// no timecode at start.
    pub source: TimecodeSource,
    /// `ltc` only: the audio input's channel (1-based) carrying LTC — a channel of the logical
    /// input (numbered as `audio.channel_map` numbers them) or of the file.
    pub channel: Option<u16>,
    /// `fixed` only: SMPTE timecode of the first frame, `HH:MM:SS:FF`; `;` (or `.`) before FF
    /// marks drop-frame, which exists only at 30000/1001 and 60000/1001.
    pub start: Option<String>,
    /// `fixed` only: UTC date `YYYY-MM-DD` (string or TOML date) the start timecode lies on.
    /// Default: today (UTC) at load time.
    pub date: Option<DateText>,
}

/// Timecode source names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimecodeSource {
    /// System UTC.
    Clock,
    /// A configured start timecode.
    Fixed,
    /// SMPTE LTC on an audio input channel.
    Ltc,
    /// The capture driver's timecode field.
    V4l2,
}

/// `[video]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VideoSection {
    /// `"synthetic"`, `"file"`, or a logical input name of the box's hw map (`sdi1`, `webcam`).
    pub input: String,
    /// Synthetic source width in pixels (even). Default: the first rung's width.
    pub width: Option<u32>,
    /// Synthetic source height in pixels (even). Default: the first rung's height.
    pub height: Option<u32>,
    /// File input only: media file, relative to the profile's directory.
    pub path: Option<String>,
    /// Kernel scaling the input to smaller rungs: `"bicubic"` (default), `"bilinear"`, `"area"`.
    pub scaler: Option<String>,
}

/// `[audio]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioSection {
    /// `"synthetic"`, `"file"`, or a logical input name of the box's hw map (`line-in`, `sdi1`).
    pub input: String,
    /// File input only: media file, relative to the profile's directory. Default: the video
    /// file when the video input is a file too.
    pub path: Option<String>,
    /// AAC-LC bitrate in kbit/s. Default 128.
    pub bitrate: Option<u32>,
    /// Output channels, 1 or 2. Default 2.
    pub channels: Option<u16>,
    /// Sample rate in Hz, 44100 or 48000. Default 48000.
    pub sample_rate: Option<u32>,
    /// Input channel (1-based, 1–16) feeding each output channel. Default `[1, 2]` (`[1]` mono).
    pub channel_map: Option<Vec<u16>>,
}

/// `[[rung]]`: one video rendition.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RungSection {
    /// Rung name, `[A-Za-z0-9_-]`, 1–32 characters, unique; used in stream ids (`demo-720p`).
    pub name: String,
    /// Encoded width in pixels: even, 16–4096.
    pub width: u32,
    /// Encoded height in pixels: even, 16–4096.
    pub height: u32,
    /// Target bitrate in kbit/s; unique across rungs, rungs listed highest first.
    pub bitrate: u32,
    /// VBV maximum rate in kbit/s, ≥ `bitrate`. Default: `bitrate`.
    pub max_bitrate: Option<u32>,
    /// VBV buffer size in kbit. Default: 2 × `max_bitrate` (two seconds at peak rate).
    pub buffer: Option<u32>,
    /// x264 preset: ultrafast … placebo. Default `veryfast`.
    pub preset: Option<String>,
    /// x264 tune, or several joined by commas (`"zerolatency,fastdecode"`). Default none.
    pub tune: Option<String>,
    /// H.264 profile: `baseline`, `main` or `high`. Default `high`.
    pub profile: Option<String>,
    /// H.264 level (`"4.1"`, `"3"`, `"1b"`); checked against size, rate and VBV. Default: x264
    /// picks one.
    pub level: Option<LevelText>,
    /// Consecutive B-frames, 0–16. Default 2 (0 with `profile = "baseline"`).
    pub bframes: Option<u32>,
    /// x264 worker threads, 0 = automatic. Default 0.
    pub threads: Option<u32>,
    /// Extra `x264_param_parse` options applied last (`{ "rc-lookahead" = 20 }`). Options that
    /// would break the fragment grid or duplicate a field above are refused.
    pub x264: Option<BTreeMap<String, ParamValue>>,
}

/// `[streams]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamsSection {
    /// `per-track` (one POST per track, the default) or `single` (all tracks in one POST).
    pub layout: Option<StreamLayout>,
    /// Send the audio track in a second stream too (`<channel>-audio2`). per-track only.
    /// Default false.
    pub redundant_audio: Option<bool>,
}

/// Stream layouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StreamLayout {
    /// One stream per track: `<channel>-<rung>` and `<channel>-audio`.
    PerTrack,
    /// One stream `<channel>` carrying every track.
    Single,
}

/// `[[destination]]`: one publishing point.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationSection {
    /// `http(s)://[user:password@]host[:port]/path/name.isml` — no `/Streams(...)`, no query.
    pub url: String,
    /// `primary` or `backup`.
    pub role: DestinationRole,
    /// Short name for status and logs, `[A-Za-z0-9_-]`. Default: the role (`backup2`, … when
    /// repeated).
    pub name: Option<String>,
}

/// Destination roles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DestinationRole {
    /// The main publishing point (at most one).
    Primary,
    /// A backup publishing point (needs a primary).
    Backup,
}

/// `[push]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushSection {
    /// `hot` (every destination at once, default) or `failover` (backups only while the
    /// primary is down).
    pub mode: Option<PushModeName>,
    /// Seconds of fragments kept per track for resending after a reconnect, ≥ 2 fragments.
    /// Default: 10 s or two fragments, whichever is longer.
    pub replay_window: Option<f64>,
    /// Send the empty `mfra` end-of-stream box on stop. Default false (an EOS stops the
    /// publishing point on IIS).
    pub send_eos: Option<bool>,
    /// TCP+TLS connect timeout in seconds, 0 < t ≤ 300. Default 10.
    pub connect_timeout: Option<f64>,
    /// Send timeout in seconds, at least one fragment duration. Default 1.5 × fragment duration.
    pub send_timeout: Option<f64>,
    /// Cap of the exponential reconnect backoff in seconds, 0 < t ≤ 3600. Default 30.
    pub max_backoff: Option<f64>,
    /// Extra CA certificates (PEM) trusted for https destinations, relative to the profile.
    pub ca_file: Option<String>,
    /// Client certificate (PEM) for TLS client authentication; needs `client_key`.
    pub client_cert: Option<String>,
    /// Client private key (PEM); needs `client_cert`.
    pub client_key: Option<String>,
    /// Per-box suffix appended to every stream id (`"-a"`), `[A-Za-z0-9_-]`, 1–16 characters.
    pub stream_suffix: Option<String>,
    /// Fragments queued per destination session before it is marked behind, 2–1024. Default 8.
    pub queue_fragments: Option<usize>,
}

/// Push modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PushModeName {
    /// Push to every destination at once.
    Hot,
    /// Push to backups only while the primary is down.
    Failover,
}

/// `[output]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSection {
    /// `[output.archive]`: keep a local copy of every track.
    pub archive: Option<ArchiveSection>,
}

/// `[output.archive]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveSection {
    /// Directory for the `.ismv`/`.isma` archive, relative to the profile's directory.
    pub dir: String,
}

/// `[control]`: the channel's local HTTP control API (status, profile, start/stop, metrics).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlSection {
    /// `ADDR:PORT` to listen on (`127.0.0.1:8701`, `[::1]:8701`, `0.0.0.0:8701`); port 0 picks
    /// a free port (published in the runtime file). Default `127.0.0.1:0`. A non-loopback
    /// address needs `token` or `token_file`. `--control ADDR:PORT` overrides it.
    pub listen: Option<String>,
    /// Bearer token every request but `GET /health` must carry
    /// (`Authorization: Bearer <token>`): 16–256 visible ASCII characters.
    pub token: Option<String>,
    /// File whose first line is the token (same rules), relative to the profile; read when the
    /// channel starts, so the profile can be copied without the secret. Not with `token`.
    pub token_file: Option<String>,
}

/// A value that must be exact: a TOML string or integer, kept as text and parsed during
/// resolution. A TOML float is refused because it cannot hold `2.002` or `29.97` exactly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExactText(pub String);

impl<'de> Deserialize<'de> for ExactText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ExactText;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string like \"30000/1001\" or \"2.002\", or an integer")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ExactText, E> {
                Ok(ExactText(v.to_owned()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ExactText, E> {
                Ok(ExactText(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ExactText, E> {
                Ok(ExactText(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<ExactText, E> {
                Err(E::custom(format!(
                    "{v:?} is a floating-point number, which is not exact; write it as a string \
                     (\"{v:?}\") or a fraction (\"30000/1001\")"
                )))
            }
        }
        d.deserialize_any(V)
    }
}

/// An H.264 level as text: a TOML string (`"4.1"`, `"1b"`), integer (`4`) or float (`4.1`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LevelText(pub String);

impl<'de> Deserialize<'de> for LevelText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = LevelText;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an H.264 level like \"4.1\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<LevelText, E> {
                Ok(LevelText(v.to_owned()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<LevelText, E> {
                Ok(LevelText(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<LevelText, E> {
                Ok(LevelText(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<LevelText, E> {
                // Levels have one decimal digit, so the float's shortest text is the level.
                Ok(LevelText(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// An x264 option value: string, integer, float or boolean, passed to `x264_param_parse` as
/// text (booleans as `1`/`0`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamValue(pub String);

impl<'de> Deserialize<'de> for ParamValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ParamValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ParamValue, E> {
                Ok(ParamValue(v.to_owned()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ParamValue, E> {
                Ok(ParamValue(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ParamValue, E> {
                Ok(ParamValue(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<ParamValue, E> {
                Ok(ParamValue(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<ParamValue, E> {
                Ok(ParamValue(if v { "1" } else { "0" }.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A date as text: a TOML string (`"2026-11-21"`) or a bare TOML local date (`2026-11-21`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DateText(pub String);

impl<'de> Deserialize<'de> for DateText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match toml::Value::deserialize(d)? {
            toml::Value::String(s) => Ok(DateText(s)),
            toml::Value::Datetime(dt) if dt.time.is_none() && dt.offset.is_none() => {
                Ok(DateText(dt.to_string()))
            }
            other => Err(de::Error::custom(format!(
                "{other} is not a date; write YYYY-MM-DD (UTC), e.g. \"2026-11-21\""
            ))),
        }
    }
}
