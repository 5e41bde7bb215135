//! What the console believes about a channel: its own copy of the control API's `GET /status`
//! JSON, decoded leniently.
//!
//! The console deliberately does not share Rust types with the control API. A console talks to
//! boxes of other versions (an operator upgrades one box at a time), so every field defaults,
//! unknown fields are ignored, numbers may arrive as integers, floats, strings or `null`, and an
//! enum-like value (a state, a role) is kept as the server's text so a new state shows up as
//! itself instead of failing the whole snapshot.

use serde::de::{self, Deserializer};
use serde::Deserialize;

/// Upper bound of list lengths kept from one snapshot (rungs, destinations, alerts, log lines):
/// a misbehaving server cannot make the console draw or keep an unbounded list.
pub const MAX_ITEMS: usize = 64;

/// One `GET /status` answer (control API version 1; see `control::api::Status` for the
/// server's side).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct StatusSnapshot {
    /// Control API document version.
    #[serde(deserialize_with = "lenient_u64")]
    pub api_version: u64,
    /// Channel name from the profile.
    #[serde(deserialize_with = "lenient_string")]
    pub channel: String,
    /// The box's role for this channel (`active`, `standby`).
    #[serde(deserialize_with = "lenient_string")]
    pub role: String,
    /// Lifecycle state: `starting`, `running`, `stopping`, `stopped`, `failed`.
    #[serde(deserialize_with = "lenient_string")]
    pub state: String,
    /// Capture runs, fragments are produced and a probe succeeded.
    #[serde(deserialize_with = "lenient_bool_false")]
    pub ready: bool,
    /// smoothcast version of the encoder.
    #[serde(deserialize_with = "lenient_string")]
    pub version: String,
    /// Seconds since the encoder process started (its monotonic clock).
    #[serde(deserialize_with = "lenient_f64")]
    pub uptime_secs: f64,
    /// Seconds since the current run started (the box's monotonic clock; 0 = none).
    #[serde(deserialize_with = "lenient_f64")]
    pub run_secs: f64,
    /// Runs started in the encoder process.
    #[serde(deserialize_with = "lenient_u64")]
    pub runs: u64,
    /// Why the last run failed (empty if it did not).
    #[serde(deserialize_with = "lenient_string")]
    pub last_error: String,
    /// The capture inputs.
    #[serde(deserialize_with = "lenient_object")]
    pub input: InputSnapshot,
    /// The timecode source and the current timecode.
    #[serde(deserialize_with = "lenient_object")]
    pub timecode: TimecodeSnapshot,
    /// One entry per video rung of the ladder.
    #[serde(deserialize_with = "bounded_vec")]
    pub rungs: Vec<RungSnapshot>,
    /// The AAC track.
    #[serde(deserialize_with = "lenient_object")]
    pub audio: AudioTrackSnapshot,
    /// Publishing points, each with one entry per stream (push session).
    #[serde(deserialize_with = "bounded_vec")]
    pub destinations: Vec<DestinationSnapshot>,
    /// Active alerts, most severe first.
    #[serde(deserialize_with = "bounded_vec")]
    pub alerts: Vec<Alert>,
    /// Recent log lines of the channel, oldest first (optional; API version 1 sends none).
    #[serde(deserialize_with = "bounded_strings")]
    pub log: Vec<String>,
    /// N+M membership (empty `box_id`: the channel is not an N+M member).
    #[serde(deserialize_with = "lenient_object")]
    pub redundancy: RedundancySnapshot,
}

/// The box's N+M membership for the channel.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct RedundancySnapshot {
    /// This box's id in the pool.
    #[serde(deserialize_with = "lenient_string")]
    pub box_id: String,
    /// `active`, `standby` or `fenced`.
    #[serde(deserialize_with = "lenient_string")]
    pub role: String,
    /// The box that owns the channel (empty: free or unknown).
    #[serde(deserialize_with = "lenient_string")]
    pub owner: String,
    /// etcd answered the box's last request.
    #[serde(deserialize_with = "lenient_bool_false")]
    pub etcd_ok: bool,
    /// Recent ownership events, oldest first.
    #[serde(deserialize_with = "bounded_vec")]
    pub events: Vec<RedundancyEventSnapshot>,
    /// The boxes of the pool etcd knows alive.
    #[serde(deserialize_with = "bounded_vec")]
    pub pool: Vec<PoolBoxSnapshot>,
}

/// One box of the N+M pool.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct PoolBoxSnapshot {
    /// The box's id.
    #[serde(deserialize_with = "lenient_string")]
    pub box_id: String,
    /// `active`, `standby` or `fenced`.
    #[serde(deserialize_with = "lenient_string")]
    pub role: String,
    /// The channel it runs or waits for (empty: a free standby).
    #[serde(deserialize_with = "lenient_string")]
    pub channel: String,
}

/// One ownership event (takeover, fenced, handover…).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct RedundancyEventSnapshot {
    /// Wall-clock time, ms since the Unix epoch.
    #[serde(deserialize_with = "lenient_u64")]
    pub unix_ms: u64,
    /// The box it happened on.
    #[serde(deserialize_with = "lenient_string")]
    pub box_id: String,
    /// `acquired`, `takeover`, `fenced`, `handover`, `failback`, `refused`…
    #[serde(deserialize_with = "lenient_string")]
    pub kind: String,
    /// Detail for the operator.
    #[serde(deserialize_with = "lenient_string")]
    pub detail: String,
}

impl RedundancySnapshot {
    /// True when the channel is an N+M member.
    pub fn is_member(&self) -> bool {
        !self.box_id.is_empty()
    }
}

/// The channel's inputs.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct InputSnapshot {
    /// The video input.
    #[serde(deserialize_with = "lenient_object")]
    pub video: VideoInputSnapshot,
    /// The audio input and its meters.
    #[serde(deserialize_with = "lenient_object")]
    pub audio: AudioInputSnapshot,
}

/// The video input.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct VideoInputSnapshot {
    /// Logical input name (`sdi1`), or `synthetic` / `file`.
    #[serde(deserialize_with = "lenient_string")]
    pub input: String,
    /// `synthetic`, `file` or `device`.
    #[serde(deserialize_with = "lenient_string")]
    pub kind: String,
    /// Where the current pictures come from: `live`, a fill while the signal is lost
    /// (`repeat`, `black`, `slate`), or `waiting`.
    #[serde(deserialize_with = "lenient_string")]
    pub state: String,
    /// Source picture width in pixels.
    #[serde(deserialize_with = "lenient_u64")]
    pub width: u64,
    /// Source picture height in pixels.
    #[serde(deserialize_with = "lenient_u64")]
    pub height: u64,
    /// Exact frame rate `num/den`.
    #[serde(deserialize_with = "lenient_string")]
    pub rate: String,
    /// Pictures delivered in the current run.
    #[serde(deserialize_with = "lenient_u64")]
    pub frames: u64,
    /// Of those, fills for a missing picture.
    #[serde(deserialize_with = "lenient_u64")]
    pub filled_frames: u64,
}

impl VideoInputSnapshot {
    /// True when the current pictures are real input (or the server did not say).
    pub fn is_live(&self) -> bool {
        self.state.is_empty() || self.state.eq_ignore_ascii_case("live")
    }

    /// `1920x1080 29.97` (what is known of it).
    pub fn format(&self) -> String {
        let fps = fps_text(&self.rate);
        match (self.width, fps.is_empty()) {
            (0, _) => fps,
            (_, true) => format!("{}x{}", self.width, self.height),
            _ => format!("{}x{} {fps}", self.width, self.height),
        }
    }
}

/// `30000/1001` → `29.97`, `25/1` → `25`; empty when not a rate.
pub fn fps_text(rate: &str) -> String {
    let (num, den) = rate.split_once('/').unwrap_or((rate, "1"));
    match (num.trim().parse::<f64>(), den.trim().parse::<f64>()) {
        (Ok(n), Ok(d)) if d > 0.0 && n > 0.0 => {
            let fps = n / d;
            if (fps - fps.round()).abs() < 1e-9 {
                format!("{fps:.0}")
            } else {
                format!("{fps:.2}")
            }
        }
        _ => String::new(),
    }
}

/// The audio input with its meters.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct AudioInputSnapshot {
    /// Logical input name (`line-in`), or `synthetic` / `file`.
    #[serde(deserialize_with = "lenient_string")]
    pub input: String,
    /// `live`, `silent` or `waiting`.
    #[serde(deserialize_with = "lenient_string")]
    pub state: String,
    /// Samples per second.
    #[serde(deserialize_with = "lenient_u64")]
    pub sample_rate: u64,
    /// Channels.
    #[serde(deserialize_with = "lenient_u64")]
    pub channels: u64,
    /// Peak level per channel over the latest meter window, dBFS.
    #[serde(deserialize_with = "bounded_f64s")]
    pub peak_dbfs: Vec<f64>,
    /// RMS level per channel over the latest meter window, dBFS.
    #[serde(deserialize_with = "bounded_f64s")]
    pub rms_dbfs: Vec<f64>,
}

/// The channel's timecode.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct TimecodeSnapshot {
    /// Timecode source kind: `clock`, `ltc`, `v4l2`, `fixed`.
    #[serde(deserialize_with = "lenient_string")]
    pub source: String,
    /// Health of the source: `running`, `searching`, `locked`, `lost`, `fallback` (empty
    /// from servers that predate it).
    #[serde(deserialize_with = "lenient_string")]
    pub state: String,
    /// Drop-frame labels.
    #[serde(deserialize_with = "lenient_bool_false")]
    pub drop_frame: bool,
    /// SMPTE timecode of the latest picture (`HH:MM:SS:FF`, `;` before frames for drop-frame);
    /// empty before the first picture.
    #[serde(deserialize_with = "lenient_string")]
    pub current: String,
    /// UTC date of `current`, `YYYY-MM-DD`.
    #[serde(deserialize_with = "lenient_string")]
    pub date: String,
    /// Frame index of the latest picture (frames since the Unix epoch at the profile's rate;
    /// 0 before the first picture).
    #[serde(deserialize_with = "lenient_u64")]
    pub frame_index: u64,
}

/// One video rung.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct RungSnapshot {
    /// Rung name (`720p`).
    #[serde(deserialize_with = "lenient_string")]
    pub name: String,
    /// Encoded picture width in pixels.
    #[serde(deserialize_with = "lenient_u64")]
    pub width: u64,
    /// Encoded picture height in pixels.
    #[serde(deserialize_with = "lenient_u64")]
    pub height: u64,
    /// Target bitrate from the profile, kbit/s.
    #[serde(deserialize_with = "lenient_f64")]
    pub target_kbps: f64,
    /// Frames encoded per wall-clock second lately (0 when unknown or stopped).
    #[serde(deserialize_with = "lenient_f64")]
    pub fps: f64,
    /// Measured bitrate lately, kbit/s (0 when unknown).
    #[serde(deserialize_with = "lenient_f64")]
    pub bitrate_kbps: f64,
    /// Frames encoded in the current run.
    #[serde(deserialize_with = "lenient_u64")]
    pub frames: u64,
    /// Fragments published in the current run.
    #[serde(deserialize_with = "lenient_u64")]
    pub fragments: u64,
    /// Frames of the grid the rung never received.
    #[serde(deserialize_with = "lenient_u64")]
    pub dropped: u64,
    /// Frames encoded from a fill instead of a live picture.
    #[serde(deserialize_with = "lenient_u64")]
    pub duplicated: u64,
}

/// The AAC track.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct AudioTrackSnapshot {
    /// `AAC-LC`.
    #[serde(deserialize_with = "lenient_string")]
    pub codec: String,
    /// Target bitrate, kbit/s.
    #[serde(deserialize_with = "lenient_f64")]
    pub target_kbps: f64,
    /// Measured bitrate lately, kbit/s (0 when unknown).
    #[serde(deserialize_with = "lenient_f64")]
    pub bitrate_kbps: f64,
    /// Fragments published in the current run.
    #[serde(deserialize_with = "lenient_u64")]
    pub fragments: u64,
}

/// One publishing point and its push sessions.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default)]
pub struct DestinationSnapshot {
    /// Destination name (the id of `/destinations/<name>/enable|disable`).
    #[serde(deserialize_with = "lenient_string")]
    pub name: String,
    /// `primary` or `backup`.
    #[serde(deserialize_with = "lenient_string")]
    pub role: String,
    /// Publishing point URL (credentials removed by the server).
    #[serde(deserialize_with = "lenient_string")]
    pub url: String,
    /// False while the operator has it disabled.
    #[serde(deserialize_with = "lenient_bool_true")]
    pub enabled: bool,
    /// One entry per stream (POST).
    #[serde(deserialize_with = "bounded_vec")]
    pub streams: Vec<StreamSnapshot>,
}

impl Default for DestinationSnapshot {
    /// A destination the server said nothing about counts as enabled.
    fn default() -> DestinationSnapshot {
        DestinationSnapshot {
            name: String::new(),
            role: String::new(),
            url: String::new(),
            enabled: true,
            streams: Vec::new(),
        }
    }
}

impl DestinationSnapshot {
    /// Sessions carrying fragments.
    pub fn live(&self) -> usize {
        self.streams.iter().filter(|s| s.is_live()).count()
    }

    /// True when the destination is deliberately idle: disabled, or a failover backup whose
    /// sessions all stand by.
    pub fn idle_by_design(&self) -> bool {
        !self.enabled || (!self.streams.is_empty() && self.streams.iter().all(|s| s.is_standby()))
    }

    /// The one-word state of the destination: `disabled`, `idle` (no sessions: not pushing),
    /// `live` when every session is, otherwise the state of the first session that is not
    /// (`behind` included).
    pub fn state(&self) -> &str {
        if !self.enabled {
            return "disabled";
        }
        if self.streams.is_empty() {
            return "idle";
        }
        // `behind` carries fragments but is worth showing, so compare the words.
        self.streams
            .iter()
            .find(|s| !s.state.eq_ignore_ascii_case("live"))
            .map_or("live", |s| s.state.as_str())
    }

    /// Sum of a per-stream counter.
    pub fn sum(&self, f: impl Fn(&StreamSnapshot) -> u64) -> u64 {
        self.streams.iter().map(f).fold(0, u64::saturating_add)
    }
}

/// One push session: one stream to one destination.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct StreamSnapshot {
    /// Stream id (`Streams(<id>)`).
    #[serde(deserialize_with = "lenient_string")]
    pub stream_id: String,
    /// `probing`, `live`, `backoff`, `behind`, `failed`, `stopped`, `standby`, `disabled`.
    #[serde(deserialize_with = "lenient_string")]
    pub state: String,
    /// Seconds in the current state (the box's monotonic clock).
    #[serde(deserialize_with = "lenient_f64")]
    pub state_secs: f64,
    /// Fragments were dropped for this session since it last rejoined the live edge.
    #[serde(deserialize_with = "lenient_bool_false")]
    pub behind: bool,
    /// Body bytes sent over all connections.
    #[serde(deserialize_with = "lenient_u64")]
    pub bytes: u64,
    /// Fragments written, replays included.
    #[serde(deserialize_with = "lenient_u64")]
    pub fragments_sent: u64,
    /// Fragments never sent because the session was behind.
    #[serde(deserialize_with = "lenient_u64")]
    pub fragments_dropped: u64,
    /// Last HTTP status received (0: none yet).
    #[serde(deserialize_with = "lenient_u64")]
    pub last_response: u64,
    /// Reconnects so far.
    #[serde(deserialize_with = "lenient_u64")]
    pub reconnects: u64,
    /// Fragments waiting in the session's queue.
    #[serde(deserialize_with = "lenient_u64")]
    pub queue_depth: u64,
    /// Fragments held for resending after a reconnect.
    #[serde(deserialize_with = "lenient_u64")]
    pub replay_depth: u64,
    /// Last failure, redacted (empty: none).
    #[serde(deserialize_with = "lenient_string")]
    pub last_error: String,
}

impl StreamSnapshot {
    /// True when the session is carrying fragments (a session that is behind still is).
    pub fn is_live(&self) -> bool {
        self.state.eq_ignore_ascii_case("live") || self.state.eq_ignore_ascii_case("behind")
    }

    /// True for a failover backup waiting for the primary to fail.
    pub fn is_standby(&self) -> bool {
        self.state.eq_ignore_ascii_case("standby")
    }
}

/// One active alert.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Alert {
    /// `info`, `warning` or `critical` (anything else is shown as is).
    pub severity: String,
    /// Stable identifier (`video_input_lost`, `destination_down`, …); may be empty.
    pub code: String,
    /// What is wrong, for the operator.
    pub message: String,
}

impl Alert {
    /// True for warnings and worse.
    pub fn is_serious(&self) -> bool {
        !matches!(
            self.severity.to_ascii_lowercase().as_str(),
            "info" | "notice" | "debug"
        )
    }
}

impl<'de> Deserialize<'de> for Alert {
    /// An alert is either a bare string (a warning) or an object with `severity`/`level`,
    /// `code` and `message`/`text`.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Alert, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        Ok(match v {
            serde_json::Value::String(s) => Alert {
                severity: "warning".into(),
                code: String::new(),
                message: clip(s),
            },
            serde_json::Value::Object(m) => {
                let pick = |keys: &[&str]| {
                    keys.iter()
                        .find_map(|k| m.get(*k).map(value_text))
                        .unwrap_or_default()
                };
                Alert {
                    severity: clip(pick(&["severity", "level"])),
                    code: clip(pick(&["code"])),
                    message: clip(pick(&["message", "text"])),
                }
            }
            other => Alert {
                severity: "warning".into(),
                code: String::new(),
                message: clip(value_text(&other)),
            },
        })
    }
}

/// How the channel is doing, from the operator's point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// Running, input live, every enabled destination live, no serious alert.
    OnAir,
    /// Running and reaching at least one destination, but something needs attention.
    Degraded,
    /// Not running, or no destination receives fragments.
    OffAir,
}

impl Health {
    /// The label the console shows.
    pub fn label(self) -> &'static str {
        match self {
            Health::OnAir => "ON AIR",
            Health::Degraded => "DEGRADED",
            Health::OffAir => "OFF AIR",
        }
    }
}

impl StatusSnapshot {
    /// Decodes a `GET /status` body. Unknown fields are ignored and missing ones default; only
    /// a body that is not JSON or has the wrong shape (a list where an object belongs) fails.
    pub fn from_json(body: &[u8]) -> Result<StatusSnapshot, serde_json::Error> {
        let v: serde_json::Value = serde_json::from_slice(body)?;
        if !v.is_object() {
            // serde would otherwise accept a list as the struct's fields in order.
            return Err(de::Error::custom(format!(
                "expected a status object, found {}",
                kind(&v)
            )));
        }
        serde_json::from_value(v)
    }

    /// True when the pipeline runs or is starting (an empty state from an unknown server
    /// counts as running).
    pub fn is_running(&self) -> bool {
        matches!(
            self.state.to_ascii_lowercase().as_str(),
            "" | "running" | "starting"
        )
    }

    /// The channel's health.
    ///
    /// Off air: not running, or it has push sessions and none of the enabled destinations
    /// carries fragments. Degraded: on air but the video input is not live, an enabled
    /// destination is not fully live, a warning or critical alert is up, or it is still
    /// starting. A channel without push sessions (archive only, `--no-push`) is on air while
    /// it runs with live input.
    pub fn health(&self) -> Health {
        if !self.is_running() {
            return Health::OffAir;
        }
        let active: Vec<&DestinationSnapshot> = self
            .destinations
            .iter()
            .filter(|d| !d.idle_by_design() && !d.streams.is_empty())
            .collect();
        let pushing = self.destinations.iter().any(|d| !d.streams.is_empty());
        if pushing && !active.iter().any(|d| d.live() > 0) {
            return Health::OffAir;
        }
        let degraded = !self.input.video.is_live()
            || active.iter().any(|d| d.live() < d.streams.len())
            || self.alerts.iter().any(Alert::is_serious)
            || self.state.eq_ignore_ascii_case("starting");
        if degraded {
            Health::Degraded
        } else {
            Health::OnAir
        }
    }

    /// Total output bitrate in kbit/s: the rungs plus the audio.
    pub fn total_kbps(&self) -> f64 {
        self.rungs.iter().map(|r| r.bitrate_kbps).sum::<f64>() + self.audio.bitrate_kbps
    }
}

/// Most change lines reported for one pair of snapshots.
pub const MAX_CHANGES: usize = 16;

/// What changed between two snapshots of one channel, as log lines for the operator (the
/// console's log tail): lifecycle, inputs, destinations and their streams, alerts.
pub fn changes(old: &StatusSnapshot, new: &StatusSnapshot) -> Vec<String> {
    let mut out = Vec::new();
    if new.runs > old.runs && old.runs > 0 {
        out.push(format!("run {} started", new.runs));
    }
    if old.state != new.state {
        let why = if new.last_error.is_empty() || new.state != "failed" {
            String::new()
        } else {
            format!(": {}", new.last_error)
        };
        out.push(format!("state {} → {}{why}", old.state, new.state));
    }
    let (ov, nv) = (&old.input.video, &new.input.video);
    if ov.state != nv.state && !ov.state.is_empty() {
        out.push(format!(
            "video input {}: {} → {}",
            nv.input, ov.state, nv.state
        ));
    }
    let (oa, na) = (&old.input.audio, &new.input.audio);
    if oa.state != na.state && !oa.state.is_empty() {
        out.push(format!(
            "audio input {}: {} → {}",
            na.input, oa.state, na.state
        ));
    }
    for d in &new.destinations {
        let Some(od) = old.destinations.iter().find(|o| o.name == d.name) else {
            continue;
        };
        if od.enabled != d.enabled {
            let what = if d.enabled { "enabled" } else { "disabled" };
            out.push(format!("destination {} {what}", d.name));
        }
        // (stream, old state) of every stream whose state changed.
        let moved: Vec<(&StreamSnapshot, &str)> = d
            .streams
            .iter()
            .filter_map(|st| {
                let os = od.streams.iter().find(|o| o.stream_id == st.stream_id)?;
                (os.state != st.state).then_some((st, os.state.as_str()))
            })
            .collect();
        let why = |st: &StreamSnapshot| {
            if !st.is_live() && !st.last_error.is_empty() {
                format!(" ({})", st.last_error)
            } else {
                String::new()
            }
        };
        match moved.first() {
            // Every stream of the destination made the same move: one line, not one per track.
            Some((first, from))
                if moved.len() > 1
                    && moved.len() == d.streams.len()
                    && moved
                        .iter()
                        .all(|(st, f)| f == from && st.state == first.state) =>
            {
                out.push(format!(
                    "{}: {from} → {} (all {} streams){}",
                    d.name,
                    first.state,
                    moved.len(),
                    why(first)
                ));
            }
            _ => {
                for (st, from) in &moved {
                    out.push(format!(
                        "{} Streams({}): {from} → {}{}",
                        d.name,
                        st.stream_id,
                        st.state,
                        why(st)
                    ));
                }
            }
        }
    }
    let same = |a: &Alert, b: &Alert| a.code == b.code && a.message == b.message;
    for a in &new.alerts {
        if !old.alerts.iter().any(|o| same(o, a)) {
            out.push(format!("{}: {}", a.severity.to_uppercase(), a.message));
        }
    }
    for a in &old.alerts {
        if !new.alerts.iter().any(|n| same(n, a)) {
            out.push(format!("cleared: {}", a.message));
        }
    }
    if out.len() > MAX_CHANGES {
        let more = out.len() - MAX_CHANGES + 1;
        out.truncate(MAX_CHANGES - 1);
        out.push(format!("… and {more} more changes"));
    }
    out
}

const MAX_TEXT: usize = 512;

fn clip(mut s: String) -> String {
    if s.len() > MAX_TEXT {
        let mut end = MAX_TEXT;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

fn value_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    Ok(clip(value_text(&v)))
}

fn value_f64(v: &serde_json::Value) -> f64 {
    match v {
        serde_json::Value::Number(n) => n.as_f64().unwrap_or(0.0),
        serde_json::Value::String(s) => s.trim().parse().unwrap_or(0.0),
        serde_json::Value::Bool(b) => f64::from(u8::from(*b)),
        _ => 0.0,
    }
}

fn lenient_f64<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    let x = value_f64(&v);
    Ok(if x.is_finite() { x } else { 0.0 })
}

fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    Ok(match &v {
        serde_json::Value::Number(n) => n.as_u64().unwrap_or_else(|| {
            // Negative or fractional: clamp into range rather than reject the snapshot.
            let f = n.as_f64().unwrap_or(0.0);
            if f.is_finite() && f > 0.0 {
                f as u64
            } else {
                0
            }
        }),
        serde_json::Value::String(s) => s.trim().parse().unwrap_or(0),
        serde_json::Value::Bool(b) => u64::from(*b),
        _ => 0,
    })
}

fn value_bool(v: &serde_json::Value, missing: bool) -> bool {
    match v {
        serde_json::Value::Bool(b) => *b,
        serde_json::Value::Number(n) => n.as_f64() != Some(0.0),
        serde_json::Value::String(s) => match s.as_str() {
            "true" | "yes" | "1" | "on" => true,
            "false" | "no" | "0" | "off" => false,
            _ => missing,
        },
        _ => missing,
    }
}

fn lenient_bool_true<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(value_bool(&serde_json::Value::deserialize(d)?, true))
}

fn lenient_bool_false<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(value_bool(&serde_json::Value::deserialize(d)?, false))
}

/// An object field: decoded when it is an object, the default when it is anything else.
fn lenient_object<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned + Default,
{
    let v = serde_json::Value::deserialize(d)?;
    if v.is_object() {
        serde_json::from_value(v).map_err(de::Error::custom)
    } else {
        Ok(T::default())
    }
}

fn bounded_vec<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let v = serde_json::Value::deserialize(d)?;
    match v {
        serde_json::Value::Null => Ok(Vec::new()),
        serde_json::Value::Array(items) => items
            .into_iter()
            .take(MAX_ITEMS)
            .map(|item| serde_json::from_value(item).map_err(de::Error::custom))
            .collect(),
        other => Err(de::Error::custom(format!(
            "expected a list, found {}",
            kind(&other)
        ))),
    }
}

fn bounded_strings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    Ok(match v {
        serde_json::Value::Array(items) => {
            // Keep the newest lines: a log tail is read from the bottom.
            let skip = items.len().saturating_sub(MAX_ITEMS);
            items
                .iter()
                .skip(skip)
                .map(|i| clip(value_text(i)))
                .collect()
        }
        serde_json::Value::String(s) => s
            .lines()
            .rev()
            .take(MAX_ITEMS)
            .map(|l| clip(l.to_string()))
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect(),
        _ => Vec::new(),
    })
}

fn bounded_f64s<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    Ok(match v {
        serde_json::Value::Array(items) => items
            .iter()
            .take(MAX_ITEMS)
            .map(|i| {
                let x = value_f64(i);
                if x.is_finite() {
                    x
                } else {
                    f64::NEG_INFINITY
                }
            })
            .collect(),
        _ => Vec::new(),
    })
}

fn kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `GET /status` answer of the real control API (captured from `smoothcast run
    /// --control`, API version 1): the fixture the decoder must keep reading.
    const REAL: &[u8] = include_bytes!("../../tests/data/console/status_v1.json");

    #[test]
    fn real_control_api_answer_decodes_fully() {
        let s = match StatusSnapshot::from_json(REAL) {
            Ok(s) => s,
            Err(e) => panic!("fixture: {e}"),
        };
        assert_eq!(s.api_version, 1);
        assert!(!s.channel.is_empty());
        assert_eq!(s.state, "running");
        assert_eq!(s.rungs.len(), 2);
        assert!(s.rungs.iter().all(|r| r.frames > 0 && r.width > 0));
        assert!(s.rungs[0].bitrate_kbps > 0.0);
        assert_eq!(s.input.audio.peak_dbfs.len(), 2);
        assert!(!s.timecode.current.is_empty());
        assert!(s.timecode.frame_index > 0);
        assert_eq!(s.input.video.format(), "320x180 25");
        assert_eq!(s.destinations.len(), 2);
        assert_eq!(s.destinations[0].role, "primary");
        assert!(s.destinations[0]
            .streams
            .iter()
            .all(StreamSnapshot::is_live));
        assert!(s.destinations[0].sum(|x| x.bytes) > 0);
        assert!(!s.destinations[1].streams.is_empty());
        assert!(s.destinations[1].streams.iter().all(|x| !x.is_live()));
        assert!(!s.alerts.is_empty());
        assert_eq!(s.health(), Health::Degraded);
    }

    #[test]
    fn missing_fields_default_and_unknown_fields_are_ignored() {
        let s = StatusSnapshot::from_json(
            br#"{"channel":"news","future_field":{"x":1},"destinations":[{"name":"p"}]}"#,
        )
        .unwrap_or_default();
        assert_eq!(s.channel, "news");
        assert!(s.rungs.is_empty());
        assert!(
            s.destinations[0].enabled,
            "a missing `enabled` means enabled"
        );
        assert_eq!(s.health(), Health::OnAir);
    }

    #[test]
    fn numbers_as_strings_floats_and_nulls_do_not_fail_the_snapshot() {
        let s = StatusSnapshot::from_json(
            br#"{"rungs":[{"name":"v","frames":"12","dropped":null,"fps":"29.97","bitrate_kbps":null}],
                 "timecode":{"current":null,"frame_index":null},
                 "destinations":[{"name":"a","enabled":null,"streams":[{"bytes":1.5e3,"reconnects":-1,"last_response":null}]}]}"#,
        );
        let s = match s {
            Ok(s) => s,
            Err(e) => panic!("lenient decode failed: {e}"),
        };
        assert_eq!(s.rungs[0].frames, 12);
        assert_eq!(s.rungs[0].dropped, 0);
        assert!((s.rungs[0].fps - 29.97).abs() < 1e-9);
        assert_eq!(s.rungs[0].bitrate_kbps, 0.0);
        assert_eq!(s.timecode.current, "");
        let st = &s.destinations[0].streams[0];
        assert_eq!((st.bytes, st.reconnects, st.last_response), (1500, 0, 0));
        assert!(s.destinations[0].enabled);
    }

    #[test]
    fn alerts_may_be_strings_or_objects() {
        let s = StatusSnapshot::from_json(
            br#"{"alerts":["input lost",{"level":"info","text":"standby"},{"severity":"critical","code":"video_input_lost","message":"m"}]}"#,
        )
        .unwrap_or_default();
        assert_eq!(s.alerts.len(), 3);
        assert!(s.alerts[0].is_serious());
        assert_eq!(s.alerts[1].message, "standby");
        assert!(!s.alerts[1].is_serious());
        assert_eq!(s.alerts[2].code, "video_input_lost");
    }

    #[test]
    fn wrong_shape_is_an_error_not_a_panic() {
        assert!(StatusSnapshot::from_json(br#"{"rungs":{"a":1}}"#).is_err());
        assert!(StatusSnapshot::from_json(b"[1,2]").is_err());
        assert!(StatusSnapshot::from_json(b"\xff\x00garbage").is_err());
        let s = StatusSnapshot::from_json(br#"{"input":null,"timecode":[1],"audio":"x"}"#);
        assert_eq!(s.ok(), Some(StatusSnapshot::default()));
    }

    #[test]
    fn huge_lists_are_truncated() {
        let body = format!(
            r#"{{"log":[{}],"rungs":[{}]}}"#,
            (0..1000)
                .map(|i| format!("\"l{i}\""))
                .collect::<Vec<_>>()
                .join(","),
            (0..1000).map(|_| "{}").collect::<Vec<_>>().join(",")
        );
        let s = StatusSnapshot::from_json(body.as_bytes()).unwrap_or_default();
        assert_eq!(s.log.len(), MAX_ITEMS);
        assert_eq!(s.log.last().map(String::as_str), Some("l999"));
        assert_eq!(s.rungs.len(), MAX_ITEMS);
    }

    fn dest(name: &str, states: &[&str]) -> DestinationSnapshot {
        DestinationSnapshot {
            name: name.into(),
            role: name.into(),
            streams: states
                .iter()
                .map(|st| StreamSnapshot {
                    state: (*st).into(),
                    ..StreamSnapshot::default()
                })
                .collect(),
            ..DestinationSnapshot::default()
        }
    }

    fn running(dests: Vec<DestinationSnapshot>) -> StatusSnapshot {
        StatusSnapshot {
            state: "running".into(),
            destinations: dests,
            ..StatusSnapshot::default()
        }
    }

    #[test]
    fn backup_down_is_degraded_primary_and_backup_down_is_off_air() {
        let mut s = running(vec![
            dest("primary", &["live", "live"]),
            dest("backup", &["live", "backoff"]),
        ]);
        assert_eq!(s.health(), Health::Degraded);
        s.destinations[0].streams[0].state = "backoff".into();
        s.destinations[0].streams[1].state = "probing".into();
        s.destinations[1].streams[0].state = "failed".into();
        assert_eq!(s.health(), Health::OffAir);
        s.destinations[1].streams[0].state = "live".into();
        s.destinations[1].streams[1].state = "live".into();
        s.destinations[0].enabled = false;
        assert_eq!(s.health(), Health::OnAir);
    }

    #[test]
    fn failover_standby_backup_and_no_push_are_on_air() {
        let s = running(vec![
            dest("primary", &["live"]),
            dest("backup", &["standby"]),
        ]);
        assert_eq!(s.health(), Health::OnAir);
        // `--no-push`: destinations listed, no sessions.
        let s = running(vec![dest("primary", &[]), dest("backup", &[])]);
        assert_eq!(s.health(), Health::OnAir);
        assert_eq!(s.destinations[0].state(), "idle");
    }

    #[test]
    fn lost_input_or_serious_alert_is_degraded_and_stopped_is_off_air() {
        let mut s = running(vec![dest("primary", &["live"])]);
        assert_eq!(s.health(), Health::OnAir);
        s.input.video.state = "slate".into();
        assert_eq!(s.health(), Health::Degraded);
        s.input.video.state = "live".into();
        s.alerts.push(Alert {
            severity: "info".into(),
            code: "destination_disabled".into(),
            message: "x".into(),
        });
        assert_eq!(s.health(), Health::OnAir, "info alerts do not degrade");
        s.alerts[0].severity = "critical".into();
        assert_eq!(s.health(), Health::Degraded);
        for st in ["stopped", "stopping", "failed"] {
            s.state = st.into();
            assert_eq!(s.health(), Health::OffAir, "{st}");
        }
    }

    #[test]
    fn destination_state_summarises_its_streams() {
        let d = dest("primary", &["live", "backoff"]);
        assert_eq!((d.live(), d.state()), (1, "backoff"));
        assert_eq!(dest("p", &["live", "behind"]).state(), "behind");
        let mut d = dest("p", &["live"]);
        d.enabled = false;
        assert_eq!(d.state(), "disabled");
    }

    #[test]
    fn changes_name_state_stream_and_alert_transitions() {
        let mut old = running(vec![dest("backup", &["live"])]);
        old.input.video.input = "sdi1".into();
        old.input.video.state = "live".into();
        old.destinations[0].streams[0].stream_id = "news-audio".into();
        old.alerts.push(Alert {
            severity: "warning".into(),
            code: "audio_silent".into(),
            message: "audio silent".into(),
        });
        let mut new = old.clone();
        assert!(changes(&old, &new).is_empty());
        new.input.video.state = "slate".into();
        new.destinations[0].streams[0].state = "backoff".into();
        new.destinations[0].streams[0].last_error = "HTTP 503".into();
        new.alerts = vec![Alert {
            severity: "critical".into(),
            code: "video_input_lost".into(),
            message: "video input sdi1: no signal".into(),
        }];
        assert_eq!(
            changes(&old, &new),
            vec![
                "video input sdi1: live → slate",
                "backup Streams(news-audio): live → backoff (HTTP 503)",
                "CRITICAL: video input sdi1: no signal",
                "cleared: audio silent",
            ]
        );
        let mut stopped = new.clone();
        stopped.state = "stopped".into();
        stopped.destinations[0].enabled = false;
        assert_eq!(
            changes(&new, &stopped),
            vec!["state running → stopped", "destination backup disabled"]
        );
        // Two streams making the same move are one line.
        let mut two = old.clone();
        two.destinations[0].streams.push(StreamSnapshot {
            stream_id: "news-video".into(),
            state: "live".into(),
            ..StreamSnapshot::default()
        });
        let mut down = two.clone();
        for st in &mut down.destinations[0].streams {
            st.state = "backoff".into();
            st.last_error = "connect failed".into();
        }
        assert_eq!(
            changes(&two, &down),
            vec!["backup: live → backoff (all 2 streams) (connect failed)"]
        );
    }

    #[test]
    fn a_flood_of_changes_is_capped() {
        let old = StatusSnapshot::default();
        let mut new = old.clone();
        new.alerts = (0..100)
            .map(|i| Alert {
                severity: "warning".into(),
                code: String::new(),
                message: format!("a{i}"),
            })
            .collect();
        let c = changes(&old, &new);
        assert_eq!(c.len(), MAX_CHANGES);
        assert_eq!(c.last().map(String::as_str), Some("… and 85 more changes"));
    }

    #[test]
    fn fps_from_exact_rates() {
        assert_eq!(fps_text("30000/1001"), "29.97");
        assert_eq!(fps_text("25/1"), "25");
        assert_eq!(fps_text("50"), "50");
        assert_eq!(fps_text("x/0"), "");
        assert_eq!(fps_text(""), "");
    }
}
