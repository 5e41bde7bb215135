//! The resolved plan: a validated profile with every default applied and every derived value
//! (GOP length, trackIDs, stream ids, URLs) computed. The channel consumes only this.

use crate::time::{FragmentGrid, Rate};
use std::net::SocketAddr;
use std::path::PathBuf;

/// A fully resolved channel.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Channel name (URL-safe), used in stream ids and logs.
    pub channel: String,
    /// Exact frame rate of the channel's master clock.
    pub rate: Rate,
    /// Ticks per second of every track's media time (10 MHz default).
    pub timescale: u32,
    /// Fragment duration as an exact, reduced fraction of seconds `(num, den)`, e.g. `(2, 1)`,
    /// `(1001, 500)` for 2.002 s.
    pub fragment_secs: (u64, u64),
    /// GOP length G in frames = fragment duration × rate.
    pub fragments: FragmentGrid,
    /// Where the frame index comes from.
    pub timecode: TimecodeSpec,
    /// The video input.
    pub video_input: VideoInput,
    /// The kernel that scales the input to the smaller rungs' sizes (`[video] scaler`).
    /// (Contract addition for performance, #7.)
    pub scaler: ScaleKernel,
    /// The audio input.
    pub audio_input: AudioInput,
    /// Video ladder, highest first as written in the profile.
    pub rungs: Vec<RungPlan>,
    /// The audio track (trackID = number of rungs + 1).
    pub audio: AudioPlan,
    /// One POST each.
    pub streams: Vec<StreamPlan>,
    /// Publishing points in profile order; may be empty (archive only / built-in sink added
    /// at run time).
    pub destinations: Vec<DestinationPlan>,
    /// Push session behaviour.
    pub push: PushOptions,
    /// `[output.archive]` directory, if any (the `--archive` flag overrides it).
    pub archive: Option<PathBuf>,
    /// `[control]`: the local control API. `None` when the profile has no `[control]` table;
    /// the API then listens on [`ControlPlan::default`] (loopback, a free port, no token).
    /// (Contract addition for the control plane.)
    pub control: Option<ControlPlan>,
}

/// The local HTTP control API of a channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControlPlan {
    /// Where the API listens; port 0 = any free port. Non-loopback only with a token.
    pub listen: SocketAddr,
    /// Bearer token required on every request except `GET /health`.
    pub token: Option<ControlToken>,
}

impl Default for ControlPlan {
    /// `127.0.0.1:0`, no token.
    fn default() -> ControlPlan {
        ControlPlan {
            listen: super::defaults::CONTROL_LISTEN
                .parse()
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0))),
            token: None,
        }
    }
}

/// Where the control API's bearer token comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum ControlToken {
    /// Written in the profile (`control.token`).
    Inline(String),
    /// Read from this file's first line when the channel starts (`control.token_file`,
    /// resolved against the profile's directory).
    File(PathBuf),
}

impl std::fmt::Debug for ControlToken {
    /// Never shows the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ControlToken::Inline(_) => f.write_str("Inline(***)"),
            ControlToken::File(p) => f.debug_tuple("File").field(p).finish(),
        }
    }
}

/// Checks a control API token: 16–256 visible ASCII characters (no spaces), so it travels
/// unchanged in an `Authorization: Bearer` header.
pub fn check_control_token(token: &str) -> Result<(), String> {
    use super::defaults::{CONTROL_TOKEN_MAX, CONTROL_TOKEN_MIN};
    let n = token.chars().count();
    if !(CONTROL_TOKEN_MIN..=CONTROL_TOKEN_MAX).contains(&n) {
        return Err(format!(
            "the token has {n} characters; use {CONTROL_TOKEN_MIN}–{CONTROL_TOKEN_MAX}"
        ));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("the token must be visible ASCII characters without spaces".into());
    }
    Ok(())
}

/// Where the frame index comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TimecodeSpec {
    /// System UTC (NTP/PTP disciplined); each frame snapped to the nearest grid slot.
    Clock,
    /// A configured start: SMPTE timecode `HH:MM:SS:FF` (`;` before FF = drop-frame) on a date
    /// `YYYY-MM-DD` (UTC), giving the first frame's index.
    Fixed {
        /// UTC date `YYYY-MM-DD` of the start timecode (today's when the profile gave none).
        date: String,
        /// SMPTE timecode of the first frame, as written (`10:00:00;00`).
        timecode: String,
    },
    /// SMPTE LTC decoded from one channel of the audio input, on today's UTC date (from the
    /// system clock). Falls back to the clock, with an alert, when no LTC is found at start.
    Ltc {
        /// 1-based channel of the audio input carrying LTC: a channel of the logical input
        /// (as `audio.channel_map` counts them) for a device, of the file for a file input.
        channel: u16,
    },
    /// The capture driver's per-buffer timecode (`V4L2_BUF_FLAG_TIMECODE`). Falls back to the
    /// clock, with an alert, when the driver's buffers carry none.
    V4l2,
}

/// The swscale kernel that makes a rung's pictures from the input's (named as FFmpeg's `scale`
/// filter names its `flags`, and bit-exact with it). (Contract addition for performance, #7.)
///
/// Downscaling costs CPU outside x264: bicubic (8 taps per output pixel and direction when
/// halving) is FFmpeg's default; bilinear and area use half the taps for 15–30 % less CPU in
/// swscale, a little softer; area at exactly half the size is a 2×2 mean that smoothcast
/// computes itself at ~1/10 of the cost. fast-bilinear uses 2 taps whatever the ratio, so it
/// aliases when it downscales by 2 or more, and is not offered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ScaleKernel {
    /// `bicubic` (default, FFmpeg's default).
    #[default]
    Bicubic,
    /// `bilinear`: a triangle filter widened by the scale ratio (anti-aliased).
    Bilinear,
    /// `area`: averages the source area each output pixel covers.
    Area,
}

impl ScaleKernel {
    /// Every kernel, in the order profiles document them.
    pub const ALL: [ScaleKernel; 3] = [
        ScaleKernel::Bicubic,
        ScaleKernel::Bilinear,
        ScaleKernel::Area,
    ];

    /// The profile value, which is also FFmpeg's `scale=…:flags=` name.
    pub fn name(self) -> &'static str {
        match self {
            ScaleKernel::Bicubic => "bicubic",
            ScaleKernel::Bilinear => "bilinear",
            ScaleKernel::Area => "area",
        }
    }

    /// The kernel a profile names, if any.
    pub fn from_name(name: &str) -> Option<ScaleKernel> {
        ScaleKernel::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// A video input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VideoInput {
    /// Colour bars, moving element, burnt-in timecode at this size.
    Synthetic {
        /// Picture width in pixels (even).
        width: u32,
        /// Picture height in pixels (even).
        height: u32,
    },
    /// A media file decoded, looped and re-timed onto the grid.
    File {
        /// The file (relative paths already resolved against the profile's directory).
        path: PathBuf,
    },
    /// A logical input of the box (`sdi1`), resolved through the box's hw map.
    Device {
        /// Logical input name.
        input: String,
    },
}

/// An audio input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AudioInput {
    /// Tone with a beep at every whole second of media time.
    Synthetic,
    /// The audio of a media file (the video file by default when the video is a file too).
    File {
        /// The file (relative paths already resolved against the profile's directory).
        path: PathBuf,
    },
    /// A logical input of the box (`line-in`, `sdi1` embedded audio).
    Device {
        /// Logical input name.
        input: String,
    },
}

/// One video rendition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RungPlan {
    /// Rung name from the profile (`720p`).
    pub name: String,
    /// `trackID` (= `tkhd`/`tfhd` track_ID): 1..=N in profile order.
    pub track_id: u32,
    /// `trackName` param: `video` for every rung. The ladder is one StreamIndex whose
    /// QualityLevels are told apart by bitrate (bitrates are unique by validation).
    pub track_name: String,
    /// Encoded width in pixels (even).
    pub width: u32,
    /// Encoded height in pixels (even).
    pub height: u32,
    /// Target bitrate in kbit/s (declared as systemBitrate × 1000).
    pub bitrate_kbps: u32,
    /// VBV max rate in kbit/s.
    pub max_bitrate_kbps: u32,
    /// VBV buffer size in kbit.
    pub buffer_kbit: u32,
    /// x264 preset name (`veryfast`).
    pub preset: String,
    /// x264 tune (`zerolatency`), if any.
    pub tune: Option<String>,
    /// H.264 profile (`high`, `main`, `baseline`).
    pub profile: String,
    /// H.264 level (`4.1`), if forced.
    pub level: Option<String>,
    /// Consecutive B-frames (0 for baseline).
    pub bframes: u32,
    /// x264 threads (0 = auto).
    pub threads: u32,
    /// Extra `x264_param_parse` key/values applied last.
    pub x264_params: Vec<(String, String)>,
}

/// The audio track.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioPlan {
    /// `trackID`: number of rungs + 1.
    pub track_id: u32,
    /// `trackName` param: `audio`.
    pub track_name: String,
    /// AAC-LC bitrate in kbit/s.
    pub bitrate_kbps: u32,
    /// Output channels (1 or 2).
    pub channels: u16,
    /// Samples per second (44100 or 48000); the audio grid's rate.
    pub sample_rate: u32,
    /// Input channel numbers (1-based) mapped to output channels, e.g. `[3, 4]`.
    pub channel_map: Vec<u16>,
}

/// One ingest POST.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamPlan {
    /// `Streams(<id>)` identifier, URL-safe.
    pub id: String,
    /// The tracks multiplexed into this POST, by trackID.
    pub track_ids: Vec<u32>,
}

/// A destination's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The main publishing point (at most one).
    Primary,
    /// A backup publishing point (only with a primary).
    Backup,
}

/// A publishing point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DestinationPlan {
    /// Short name for status and logs (`primary`, `backup`, or from the profile).
    pub name: String,
    /// Publishing point URL ending in `.isml` (credentials allowed; never logged).
    pub url: String,
    /// Primary or backup.
    pub role: Role,
}

/// Which destinations receive fragments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushMode {
    /// Push to every destination at once.
    Hot,
    /// Push to backups only while the primary is down.
    Failover,
}

/// Push behaviour (protocol.md §1).
#[derive(Clone, Debug, PartialEq)]
pub struct PushOptions {
    /// Hot (all destinations) or failover.
    pub mode: PushMode,
    /// Seconds of fragments kept per track for resending after a reconnect (≥ 2 fragments).
    pub replay_window_secs: f64,
    /// Send the empty `mfra` end-of-stream box on stop.
    pub send_eos: bool,
    /// TCP+TLS connect timeout in seconds.
    pub connect_timeout_secs: f64,
    /// Send timeout; default 1.5 × fragment duration (protocol.md §1.5: N..2N).
    pub send_timeout_secs: f64,
    /// Cap of the exponential reconnect backoff.
    pub max_backoff_secs: f64,
    /// Extra CA certificates (PEM) trusted for https destinations.
    pub ca_file: Option<PathBuf>,
    /// Client certificate + key (PEM) for TLS client authentication.
    pub client_cert: Option<PathBuf>,
    /// Private key of `client_cert` (set exactly when `client_cert` is).
    pub client_key: Option<PathBuf>,
    /// Per-box suffix appended to every stream id (`-a`) for servers that allow one
    /// connection per `Streams()` id.
    pub stream_suffix: Option<String>,
    /// This box's id, sent in the `User-Agent` (`smoothcast/<version> (box <id>)`) so a
    /// publishing point's logs tell the boxes of a 1+1 pair or an N+M pool apart. Set from
    /// `--box-id`, not from the profile (a profile is copied between boxes).
    pub box_id: Option<String>,
    /// Bounded queue of fragments per destination session before it is marked behind.
    pub queue_fragments: usize,
}
