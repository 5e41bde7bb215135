//! The JSON documents of the control API, shared by the server and its clients (the console).
//!
//! Every type is `Serialize + Deserialize`, so a client decodes exactly what the server encodes.
//! Field names are the wire names; [`API_VERSION`] changes when a field is removed or changes
//! meaning (adding fields does not change it: clients ignore unknown fields).
//!
//! Units are in the names: `_secs` seconds, `_kbps` kilobits per second (1000 bit/s), `_dbfs`
//! decibels relative to full scale, `bytes` bytes. Wall-clock durations (`uptime_secs`,
//! `state_secs`) are on the box's monotonic clock; media positions are frame indices (frames
//! since the Unix epoch at the channel's exact rate) or SMPTE timecode.

use serde::{Deserialize, Serialize};

/// Version of these documents; see the module doc.
pub const API_VERSION: u32 = 1;

/// Lifecycle of the channel inside its process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelState {
    /// Opening encoders, connecting, waiting for the first fragment boundary.
    Starting,
    /// Producing fragments.
    Running,
    /// Finishing the current fragments and ending every POST.
    Stopping,
    /// Not running: stopped by the operator (`POST /stop`) or the run ended (`--duration`).
    Stopped,
    /// The last run ended with an error (`last_error`).
    Failed,
}

/// `GET /status`: one consistent snapshot of the channel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// [`API_VERSION`].
    pub api_version: u32,
    /// Channel name from the profile.
    pub channel: String,
    /// This box's role for the channel: `active` for `smoothcast run` (a standby agent
    /// reports `standby`).
    pub role: String,
    /// Lifecycle state.
    pub state: ChannelState,
    /// Capture runs, a fragment was produced and (with destinations) a probe POST succeeded:
    /// what systemd's `READY=1` means.
    pub ready: bool,
    /// Operating-system process id of the encoder.
    pub pid: u32,
    /// smoothcast version.
    pub version: String,
    /// Seconds since the process started (monotonic).
    pub uptime_secs: f64,
    /// Runs started in this process (1 for the first; `/start` and `/restart` add one).
    pub runs: u64,
    /// Seconds since the current (or last) run started (monotonic), if any run started.
    pub run_secs: Option<f64>,
    /// Why the last run failed, if it did.
    pub last_error: Option<String>,
    /// Video and audio inputs.
    pub input: Inputs,
    /// Where the frame index comes from and where it is now.
    pub timecode: TimecodeStatus,
    /// Fragment grid.
    pub fragment: FragmentStatus,
    /// Video ladder, in profile order (highest bitrate first).
    pub rungs: Vec<RungStatus>,
    /// The AAC-LC track.
    pub audio: AudioTrackStatus,
    /// Publishing points in profile order, each with one entry per stream (POST).
    pub destinations: Vec<DestinationStatus>,
    /// Conditions an operator should look at, most severe first.
    pub alerts: Vec<Alert>,
    /// N+M membership (`run --etcd`, or a standby box that took the channel); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redundancy: Option<Redundancy>,
}

/// This box's N+M membership for the channel.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Redundancy {
    /// This box's id (`--box-id`, default the host name).
    pub box_id: String,
    /// `active` (holds the channel's lease and pushes), `standby` (waits; the channel is
    /// owned elsewhere or free), `fenced` (lost contact with etcd: pushing stopped).
    pub role: String,
    /// The box that owns the channel now, as etcd last said (`None`: free or unknown).
    pub owner: Option<String>,
    /// Lease TTL, seconds.
    pub lease_ttl_secs: f64,
    /// etcd answered the last request.
    pub etcd_ok: bool,
    /// Seconds since the lease was last renewed (active only).
    pub last_renewal_secs: Option<f64>,
    /// Recent ownership events of this channel (acquired, takeover, fenced, handover…),
    /// oldest first.
    pub events: Vec<RedundancyEvent>,
    /// Every box of the pool that etcd knows alive, with its role.
    #[serde(default)]
    pub pool: Vec<PoolBox>,
}

/// One box of the N+M pool (value of `<prefix>/boxes/<box>`, under the box's lease).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolBox {
    /// The box's id.
    pub box_id: String,
    /// `active`, `standby` or `fenced`.
    pub role: String,
    /// The channel it runs or waits for (`None`: a standby agent free to take any).
    pub channel: Option<String>,
}

/// One ownership event, as recorded in etcd by the box it happened on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedundancyEvent {
    /// Wall-clock time, milliseconds since the Unix epoch.
    pub unix_ms: u64,
    /// The box it happened on.
    pub box_id: String,
    /// `acquired`, `takeover`, `fenced`, `released`, `handover`, `refused`.
    pub kind: String,
    /// Human-readable detail (figures: detection and takeover times, first fragment).
    pub detail: String,
}

/// The channel's inputs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Inputs {
    /// The video input.
    pub video: VideoInputStatus,
    /// The audio input.
    pub audio: AudioInputStatus,
}

/// The video input.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VideoInputStatus {
    /// `synthetic`, `file`, or the logical input name (`sdi1`).
    pub input: String,
    /// `synthetic`, `file` or `device`.
    pub kind: String,
    /// `live`, `repeat`, `black`, `slate` (fills while the signal is lost) or `waiting` (no
    /// picture yet / not running).
    pub state: String,
    /// Picture width of the source in pixels.
    pub width: u32,
    /// Picture height of the source in pixels.
    pub height: u32,
    /// Exact frame rate of the channel, `num/den`.
    pub rate: String,
    /// Pictures delivered in the current run.
    pub frames: u64,
    /// Of those, fills for a missing picture.
    pub filled_frames: u64,
    /// Device counters: fills by kind, skipped and duplicated grid slots, losses.
    #[serde(default)]
    pub counters: InputCountersStatus,
}

/// Counters of a capture input (device inputs and injected sources; zero for synthetic and
/// file inputs, which never lose signal), since the channel started.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct InputCountersStatus {
    /// Pictures (video) or sample frames (audio) delivered live.
    pub live: u64,
    /// Pictures repeated (skipped grid slots and the freeze after a loss).
    pub repeated: u64,
    /// Black pictures.
    pub black: u64,
    /// Slate pictures.
    pub slate: u64,
    /// Audio sample frames of silence for a lost input.
    pub silence_samples: u64,
    /// Grid slots the device gave no picture for (filled by repeating).
    pub skipped_slots: u64,
    /// Buffers dropped because their grid slot already had one.
    pub duplicate_buffers: u64,
    /// Buffers flagged damaged or that could not be converted.
    pub damaged: u64,
    /// Times the input was lost.
    pub losses: u64,
    /// Successful reopens after a loss.
    pub reopens: u64,
    /// Audio: ALSA xruns and capture-ring overflows.
    pub xruns: u64,
    /// Audio: sample frames of silence put in place of the audio xruns lost.
    pub xrun_silence_samples: u64,
    /// The input is lost right now.
    pub lost: bool,
}

/// The A/V clock discipline of a device audio input (since the device was last opened).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DisciplineDoc {
    /// Estimated rate error of the audio device against the master clock, ppm (positive: the
    /// device runs fast).
    pub device_ppm: f64,
    /// Estimated drift of the device from the master grid, sample frames.
    pub drift_samples: f64,
    /// Remaining offset of the output from the master grid after corrections, sample frames
    /// (kept well within one AAC frame, 1024).
    pub residual_samples: f64,
    /// Single sample frames inserted (device slow).
    pub inserted: u64,
    /// Single sample frames dropped (device fast).
    pub dropped: u64,
    /// Sample frames of silence filled in for samples the device lost.
    pub filled: u64,
    /// Sample frames skipped as excess.
    pub skipped: u64,
}

/// The audio input with its meters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AudioInputStatus {
    /// `synthetic`, `file`, or the logical input name (`line-in`).
    pub input: String,
    /// `synthetic`, `file` or `device`.
    pub kind: String,
    /// `live`, `silent` (every channel below −60 dBFS peak) or `waiting`.
    pub state: String,
    /// Samples per second.
    pub sample_rate: u32,
    /// Channels.
    pub channels: u16,
    /// Sample frames (samples per channel) delivered in the current run.
    pub samples: u64,
    /// Peak level per channel over the latest 300 ms window, dBFS (0 = full scale, floor −120).
    pub peak_dbfs: Vec<f32>,
    /// RMS level per channel over the same window, dBFS (a full-scale sine reads −3.01).
    pub rms_dbfs: Vec<f32>,
    /// Device counters: silence for losses, xruns, losses and reopens.
    #[serde(default)]
    pub counters: InputCountersStatus,
    /// The clock discipline, when the input is a device.
    #[serde(default)]
    pub discipline: Option<DisciplineDoc>,
}

/// The timecode source, its health, and the current position.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimecodeStatus {
    /// `clock` (system UTC), `fixed` (configured start), `ltc` (SMPTE LTC on an audio
    /// channel) or `v4l2` (the capture driver's buffer timecode).
    pub source: String,
    /// Health of the source: `running` (clock, fixed), `searching` (ltc: nothing decoded
    /// yet), `locked` (ltc: labels arrive), `lost` (ltc: none for 0.5 s) or `fallback` (the
    /// source gave no timecode at start: the timeline runs on the clock).
    #[serde(default)]
    pub state: String,
    /// Why the channel fell back to the clock.
    #[serde(default)]
    pub fallback_reason: Option<String>,
    /// The last label read from the source (ltc).
    #[serde(default)]
    pub source_timecode: Option<String>,
    /// Frame index that label names.
    #[serde(default)]
    pub source_frame_index: Option<u64>,
    /// That index minus the channel's own frame index at the same audio sample, frames
    /// (0: source and timeline agree).
    #[serde(default)]
    pub offset_frames: Option<i64>,
    /// That index minus the system clock's frame index when it was read, frames.
    #[serde(default)]
    pub clock_offset_frames: Option<i64>,
    /// Valid labels read from the source in the current run.
    #[serde(default)]
    pub source_frames: u64,
    /// Drop-frame labels (29.97 / 59.94 only).
    pub drop_frame: bool,
    /// SMPTE timecode of the latest captured picture (`10:00:01:12`, `;` before the frames
    /// for drop-frame), counted from UTC midnight of `date`.
    pub current: Option<String>,
    /// UTC date `YYYY-MM-DD` of `current`.
    pub date: Option<String>,
    /// Frame index (frames since the Unix epoch) of the latest captured picture.
    pub frame_index: Option<u64>,
}

/// The fragment grid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FragmentStatus {
    /// Fragment (= GOP) duration in seconds.
    pub duration_secs: f64,
    /// GOP length in frames.
    pub gop_frames: u64,
    /// `mfhd.sequence_number` (fragment index since the epoch) of the first fragment of the
    /// current run.
    pub first_sequence: Option<u64>,
    /// Seconds since the latest fragment of any track was published (monotonic).
    pub last_fragment_secs: Option<f64>,
}

/// One video rung.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RungStatus {
    /// Rung name (`720p`).
    pub name: String,
    /// trackID.
    pub track_id: u32,
    /// Encoded width in pixels.
    pub width: u32,
    /// Encoded height in pixels.
    pub height: u32,
    /// Target bitrate from the profile, kbit/s.
    pub target_kbps: u32,
    /// Frames encoded per second of wall time over the last few seconds.
    pub fps: Option<f64>,
    /// Measured bitrate over the fragments of the last few seconds (or the run), kbit/s.
    pub bitrate_kbps: Option<f64>,
    /// Frames encoded in the current run.
    pub frames: u64,
    /// Fragments published in the current run.
    pub fragments: u64,
    /// Fragment bytes (`moof` + `mdat`) published in the current run.
    pub bytes: u64,
    /// Frames of the grid this rung never received.
    pub dropped: u64,
    /// Frames encoded from a fill (repeat, black, slate) instead of a live picture.
    pub duplicated: u64,
}

/// The audio track.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AudioTrackStatus {
    /// trackID.
    pub track_id: u32,
    /// `AAC-LC`.
    pub codec: String,
    /// Target bitrate, kbit/s.
    pub target_kbps: u32,
    /// Measured bitrate, kbit/s.
    pub bitrate_kbps: Option<f64>,
    /// AAC frames (1024 samples each) encoded in the current run.
    pub frames: u64,
    /// Fragments published in the current run.
    pub fragments: u64,
    /// Fragment bytes published in the current run.
    pub bytes: u64,
}

/// One publishing point.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DestinationStatus {
    /// Destination name (`primary`, `backup`, or from the profile).
    pub name: String,
    /// `primary` or `backup`.
    pub role: String,
    /// Publishing point URL without credentials.
    pub url: String,
    /// False while the operator disabled it (`POST /destinations/<name>/disable`).
    pub enabled: bool,
    /// One entry per stream (POST) to this destination.
    pub streams: Vec<StreamStatus>,
}

/// One ingest session: one stream pushed to one destination.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StreamStatus {
    /// `Streams(<id>)` identifier including the per-box suffix.
    pub stream_id: String,
    /// The URL pushed to (after redirects), without credentials or query.
    pub url: String,
    /// `probing`, `live`, `backoff`, `behind`, `failed`, `stopped`, `standby` or `disabled`.
    pub state: String,
    /// Seconds in the current state.
    pub state_secs: f64,
    /// Fragments were dropped for this session since it last rejoined the live edge.
    pub behind: bool,
    /// Body bytes sent over all connections (header, fragments, EOS).
    pub bytes: u64,
    /// Fragments written, replays included.
    pub fragments_sent: u64,
    /// Fragments never sent because the session was behind.
    pub fragments_dropped: u64,
    /// The last fragment written.
    pub last_fragment: Option<FragmentRef>,
    /// The last HTTP status the server answered (probe, early answer or final response).
    pub last_response: Option<u16>,
    /// Failed attempts followed by a new connection.
    pub reconnects: u64,
    /// HTTP 403 answers seen.
    pub forbidden: u64,
    /// Fragments waiting in the session's queue.
    pub queue_depth: u64,
    /// Fragments held for resending after a reconnect.
    pub replay_depth: u64,
    /// The last failure (never contains credentials).
    pub last_error: Option<String>,
}

/// A fragment of one track.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FragmentRef {
    /// trackID.
    pub track_id: u32,
    /// `mfhd.sequence_number` (fragment index since the epoch).
    pub sequence: u32,
}

/// How urgent an alert is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Output is lost or wrong: act now.
    Critical,
    /// Degraded: redundancy lost, a destination down, silent audio.
    Warning,
    /// An operator's decision worth showing (a destination disabled, the channel stopped).
    Info,
}

/// A condition an operator should look at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// How urgent.
    pub severity: Severity,
    /// Stable identifier: `channel_failed`, `channel_stopped`, `pipeline_stalled`,
    /// `video_input_lost`, `audio_silent`, `destination_failed`, `destination_down`,
    /// `destination_behind`, `destination_disabled`, `stream_not_delivered`.
    pub code: String,
    /// One line for humans.
    pub message: String,
    /// The destination concerned, if any.
    pub destination: Option<String>,
    /// The stream concerned, if any.
    pub stream: Option<String>,
}

/// `GET /health`: 200 when `status` is `ok`, 503 otherwise.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// `ok` (running and producing fragments), `starting`, `stalled`, `stopped` or `failed`.
    pub status: String,
    /// Channel name.
    pub channel: String,
    /// Lifecycle state.
    pub state: ChannelState,
    /// See [`Status::ready`].
    pub ready: bool,
}

/// The answer to `POST /start`, `/stop`, `/restart`, `/destinations/<name>/enable|disable`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionResult {
    /// What happened, for humans.
    pub message: String,
    /// The channel's state after the action.
    pub state: ChannelState,
}

/// The body of every 4xx/5xx answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What is wrong.
    pub error: String,
}

/// A channel's entry in the runtime directory (`<channel>.json`), for discovery by consoles.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// Channel name.
    pub channel: String,
    /// Base URL of the control API (`http://127.0.0.1:8701`).
    pub url: String,
    /// Process id of the encoder.
    pub pid: u32,
    /// Requests need `Authorization: Bearer <token>` (the token is not in this file).
    pub token_required: bool,
    /// smoothcast version.
    pub version: String,
}
