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

/// One `GET /status` answer.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct StatusSnapshot {
    /// Channel name from the profile.
    #[serde(deserialize_with = "lenient_string")]
    pub channel: String,
    /// The box's role for this channel (`active`, `standby`, `1+1 a`, …).
    #[serde(deserialize_with = "lenient_string")]
    pub role: String,
    /// Pipeline state: `running`, `starting`, `stopping`, `stopped`, `failed`, …
    #[serde(deserialize_with = "lenient_string")]
    pub state: String,
    /// Seconds since the pipeline started (wall-clock seconds, not media time).
    #[serde(deserialize_with = "lenient_f64")]
    pub uptime_secs: f64,
    /// The capture inputs.
    #[serde(deserialize_with = "lenient_object")]
    pub input: InputSnapshot,
    /// The timecode source and the current timecode.
    #[serde(deserialize_with = "lenient_object")]
    pub timecode: TimecodeSnapshot,
    /// One entry per video rung of the ladder.
    #[serde(deserialize_with = "bounded_vec")]
    pub rungs: Vec<RungSnapshot>,
    /// Audio levels of the audio input.
    #[serde(deserialize_with = "lenient_object")]
    pub audio: AudioSnapshot,
    /// One entry per destination × stream (a push session).
    #[serde(deserialize_with = "bounded_vec")]
    pub destinations: Vec<SessionSnapshot>,
    /// Active alerts.
    #[serde(deserialize_with = "bounded_vec")]
    pub alerts: Vec<Alert>,
    /// Recent log lines of the channel, oldest first (optional; not every server sends them).
    #[serde(deserialize_with = "bounded_strings")]
    pub log: Vec<String>,
}

/// The channel's inputs.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct InputSnapshot {
    /// Logical video input name (`sdi1`, `synthetic`, a file name).
    #[serde(deserialize_with = "lenient_string")]
    pub video: String,
    /// Logical audio input name.
    #[serde(deserialize_with = "lenient_string")]
    pub audio: String,
    /// Where the current pictures come from: `live`, or a fill (`repeat`, `black`, `slate`),
    /// or `lost`.
    #[serde(deserialize_with = "lenient_string")]
    pub state: String,
    /// Human-readable format of the video input (`1920x1080 29.97`).
    #[serde(deserialize_with = "lenient_string")]
    pub format: String,
    /// Pictures delivered by the video source.
    #[serde(deserialize_with = "lenient_u64")]
    pub frames: u64,
    /// Of those, fills for a missing picture.
    #[serde(deserialize_with = "lenient_u64")]
    pub filled: u64,
}

impl InputSnapshot {
    /// True when the current pictures are real input (or the server did not say).
    pub fn is_live(&self) -> bool {
        self.state.is_empty() || self.state.eq_ignore_ascii_case("live")
    }
}

/// The channel's timecode.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct TimecodeSnapshot {
    /// Timecode source kind: `clock`, `ltc`, `v4l2`, `fixed`.
    #[serde(deserialize_with = "lenient_string")]
    pub source: String,
    /// SMPTE timecode of the latest frame (`HH:MM:SS:FF`, `;` before frames for drop-frame).
    #[serde(deserialize_with = "lenient_string")]
    pub current: String,
    /// Frame index of the latest frame (frames since the Unix epoch at the profile's rate).
    #[serde(deserialize_with = "lenient_u64")]
    pub frame_index: u64,
}

/// One video rung.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct RungSnapshot {
    /// Track name / label of the rung (`video_720p`).
    #[serde(deserialize_with = "lenient_string")]
    pub name: String,
    /// Coded picture width in pixels.
    #[serde(deserialize_with = "lenient_u64")]
    pub width: u64,
    /// Coded picture height in pixels.
    #[serde(deserialize_with = "lenient_u64")]
    pub height: u64,
    /// Measured output frame rate (frames per wall-clock second).
    #[serde(deserialize_with = "lenient_f64")]
    pub fps: f64,
    /// Measured output bitrate in kbit/s (over the last fragments).
    #[serde(deserialize_with = "lenient_f64")]
    pub bitrate_kbps: f64,
    /// Frames encoded.
    #[serde(deserialize_with = "lenient_u64")]
    pub frames: u64,
    /// Frames of the grid the rung never received.
    #[serde(deserialize_with = "lenient_u64")]
    pub dropped: u64,
    /// Frames encoded from a fill instead of a live picture.
    #[serde(deserialize_with = "lenient_u64")]
    pub duplicated: u64,
}

/// Audio levels, one entry per audio channel.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct AudioSnapshot {
    /// Peak level per channel over the latest meter window, dBFS.
    #[serde(deserialize_with = "bounded_f64s")]
    pub peak_dbfs: Vec<f64>,
    /// RMS level per channel over the latest meter window, dBFS.
    #[serde(deserialize_with = "bounded_f64s")]
    pub rms_dbfs: Vec<f64>,
    /// Measured AAC bitrate in kbit/s.
    #[serde(deserialize_with = "lenient_f64")]
    pub bitrate_kbps: f64,
}

/// One push session: one stream to one destination.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct SessionSnapshot {
    /// Destination name from the profile (the id used by `/destinations/<id>/…`).
    #[serde(deserialize_with = "lenient_string")]
    pub destination: String,
    /// `primary` or `backup`.
    #[serde(deserialize_with = "lenient_string")]
    pub role: String,
    /// Stream id (`Streams(<id>)`).
    #[serde(deserialize_with = "lenient_string")]
    pub stream: String,
    /// Publishing point URL (redacted by the server).
    #[serde(deserialize_with = "lenient_string")]
    pub url: String,
    /// Session state: `live`, `probing`, `backoff`, `behind`, `failed`, `stopped`, `standby`,
    /// `disabled`.
    #[serde(deserialize_with = "lenient_string")]
    pub state: String,
    /// Whether the operator has the destination enabled.
    #[serde(deserialize_with = "lenient_bool_true")]
    pub enabled: bool,
    /// Body bytes sent over all connections.
    #[serde(deserialize_with = "lenient_u64")]
    pub bytes: u64,
    /// Fragments written, replays included.
    #[serde(deserialize_with = "lenient_u64")]
    pub fragments: u64,
    /// Last HTTP status received (0: none yet).
    #[serde(deserialize_with = "lenient_u64")]
    pub last_status: u64,
    /// Reconnects so far.
    #[serde(deserialize_with = "lenient_u64")]
    pub reconnects: u64,
    /// Fragments waiting in the session's queue.
    #[serde(deserialize_with = "lenient_u64")]
    pub queue: u64,
    /// Fragments held for resending after a reconnect.
    #[serde(deserialize_with = "lenient_u64")]
    pub replay: u64,
    /// Last failure, redacted.
    #[serde(deserialize_with = "lenient_string")]
    pub last_error: String,
}

impl SessionSnapshot {
    /// True when the session is carrying fragments.
    pub fn is_live(&self) -> bool {
        self.state.eq_ignore_ascii_case("live")
    }

    /// True when the session is deliberately idle: a failover backup waiting, or disabled.
    pub fn is_idle_by_design(&self) -> bool {
        !self.enabled
            || self.state.eq_ignore_ascii_case("standby")
            || self.state.eq_ignore_ascii_case("disabled")
    }
}

/// One active alert.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Alert {
    /// `info`, `warning` or `critical` (anything else is shown as is).
    pub severity: String,
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
    /// An alert is either a bare string (a warning) or an object with `severity`/`level` and
    /// `message`/`text`.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Alert, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        Ok(match v {
            serde_json::Value::String(s) => Alert {
                severity: "warning".into(),
                message: clip(s),
            },
            serde_json::Value::Object(m) => {
                let pick = |keys: &[&str]| {
                    keys.iter()
                        .find_map(|k| m.get(*k).map(value_text))
                        .unwrap_or_default()
                };
                Alert {
                    severity: pick(&["severity", "level"]),
                    message: clip(pick(&["message", "text", "alert", "what"])),
                }
            }
            other => Alert {
                severity: "warning".into(),
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

    /// True when the pipeline runs (an empty state from an old server counts as running).
    pub fn is_running(&self) -> bool {
        matches!(
            self.state.to_ascii_lowercase().as_str(),
            "" | "running" | "live" | "on-air" | "starting"
        )
    }

    /// The channel's health. A channel without destinations (encoding for an archive, or
    /// `--no-push`) is on air as long as it runs with live input.
    pub fn health(&self) -> Health {
        if !self.is_running() {
            return Health::OffAir;
        }
        let active: Vec<&SessionSnapshot> = self
            .destinations
            .iter()
            .filter(|s| !s.is_idle_by_design())
            .collect();
        if !self.destinations.is_empty() && !active.iter().any(|s| s.is_live()) {
            return Health::OffAir;
        }
        let degraded = !self.input.is_live()
            || active.iter().any(|s| !s.is_live())
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

    /// The destinations in first-seen order, each with its sessions.
    pub fn destination_groups(&self) -> Vec<DestinationGroup<'_>> {
        let mut groups: Vec<DestinationGroup<'_>> = Vec::new();
        for s in &self.destinations {
            match groups.iter_mut().find(|g| g.name == s.destination) {
                Some(g) => g.sessions.push(s),
                None => groups.push(DestinationGroup {
                    name: &s.destination,
                    sessions: vec![s],
                }),
            }
        }
        groups
    }
}

/// The sessions of one destination.
#[derive(Clone, Debug)]
pub struct DestinationGroup<'a> {
    /// Destination name.
    pub name: &'a str,
    /// Its sessions (one per stream), in server order.
    pub sessions: Vec<&'a SessionSnapshot>,
}

impl DestinationGroup<'_> {
    /// Role of the destination (from its first session).
    pub fn role(&self) -> &str {
        self.sessions.first().map_or("", |s| s.role.as_str())
    }

    /// True unless the operator disabled it.
    pub fn enabled(&self) -> bool {
        self.sessions.iter().all(|s| s.enabled)
    }

    /// Sessions carrying fragments.
    pub fn live(&self) -> usize {
        self.sessions.iter().filter(|s| s.is_live()).count()
    }

    /// The one-word state of the destination: `live` when every session is, `disabled`,
    /// `standby`, otherwise the state of the first session that is not live.
    pub fn state(&self) -> &str {
        if !self.enabled() {
            return "disabled";
        }
        self.sessions
            .iter()
            .find(|s| !s.is_live())
            .map_or("live", |s| s.state.as_str())
    }
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

fn lenient_bool_true<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    Ok(match v {
        serde_json::Value::Bool(b) => b,
        serde_json::Value::Number(n) => n.as_f64() != Some(0.0),
        serde_json::Value::String(s) => !matches!(s.as_str(), "false" | "no" | "0" | "off"),
        _ => true,
    })
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

    #[test]
    fn missing_fields_default_and_unknown_fields_are_ignored() {
        let s = StatusSnapshot::from_json(br#"{"channel":"news","future_field":{"x":1}}"#)
            .unwrap_or_default();
        assert_eq!(s.channel, "news");
        assert!(s.rungs.is_empty());
        assert_eq!(s.health(), Health::OnAir);
    }

    #[test]
    fn numbers_as_strings_floats_and_nulls_do_not_fail_the_snapshot() {
        let s = StatusSnapshot::from_json(
            br#"{"rungs":[{"name":"v","frames":"12","dropped":null,"fps":"29.97","bitrate_kbps":3000}],
                 "destinations":[{"destination":"a","bytes":1.5e3,"reconnects":-1,"enabled":null}]}"#,
        );
        let s = match s {
            Ok(s) => s,
            Err(e) => panic!("lenient decode failed: {e}"),
        };
        assert_eq!(s.rungs[0].frames, 12);
        assert_eq!(s.rungs[0].dropped, 0);
        assert!((s.rungs[0].fps - 29.97).abs() < 1e-9);
        assert_eq!(s.destinations[0].bytes, 1500);
        assert_eq!(s.destinations[0].reconnects, 0);
        assert!(s.destinations[0].enabled);
    }

    #[test]
    fn alerts_may_be_strings_or_objects() {
        let s = StatusSnapshot::from_json(
            br#"{"alerts":["input lost",{"level":"info","text":"standby"}]}"#,
        )
        .unwrap_or_default();
        assert_eq!(s.alerts.len(), 2);
        assert!(s.alerts[0].is_serious());
        assert_eq!(s.alerts[1].message, "standby");
        assert!(!s.alerts[1].is_serious());
    }

    #[test]
    fn wrong_shape_is_an_error_not_a_panic() {
        assert!(StatusSnapshot::from_json(br#"{"rungs":{"a":1}}"#).is_err());
        assert!(StatusSnapshot::from_json(b"[1,2]").is_err());
        let s = StatusSnapshot::from_json(br#"{"input":null,"timecode":[1],"audio":"x"}"#);
        assert_eq!(s.ok(), Some(StatusSnapshot::default()));
        assert!(StatusSnapshot::from_json(b"\xff\x00garbage").is_err());
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

    fn session(dest: &str, role: &str, state: &str) -> SessionSnapshot {
        SessionSnapshot {
            destination: dest.into(),
            role: role.into(),
            state: state.into(),
            enabled: true,
            ..SessionSnapshot::default()
        }
    }

    #[test]
    fn backup_down_is_degraded_primary_and_backup_down_is_off_air() {
        let mut s = StatusSnapshot {
            state: "running".into(),
            destinations: vec![
                session("primary", "primary", "live"),
                session("backup", "backup", "backoff"),
            ],
            ..StatusSnapshot::default()
        };
        assert_eq!(s.health(), Health::Degraded);
        s.destinations[0].state = "backoff".into();
        assert_eq!(s.health(), Health::OffAir);
        s.destinations[1].state = "live".into();
        s.destinations[0].enabled = false;
        assert_eq!(s.health(), Health::OnAir);
    }

    #[test]
    fn lost_input_or_serious_alert_is_degraded_and_stopped_is_off_air() {
        let mut s = StatusSnapshot {
            state: "running".into(),
            destinations: vec![session("primary", "primary", "live")],
            ..StatusSnapshot::default()
        };
        assert_eq!(s.health(), Health::OnAir);
        s.input.state = "slate".into();
        assert_eq!(s.health(), Health::Degraded);
        s.input.state = "live".into();
        s.alerts.push(Alert {
            severity: "critical".into(),
            message: "x".into(),
        });
        assert_eq!(s.health(), Health::Degraded);
        s.state = "stopped".into();
        assert_eq!(s.health(), Health::OffAir);
    }

    #[test]
    fn destination_groups_keep_order_and_summarise_state() {
        let s = StatusSnapshot {
            destinations: vec![
                session("primary", "primary", "live"),
                session("backup", "backup", "live"),
                session("primary", "primary", "backoff"),
            ],
            ..StatusSnapshot::default()
        };
        let g = s.destination_groups();
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].name, "primary");
        assert_eq!(g[0].sessions.len(), 2);
        assert_eq!(g[0].live(), 1);
        assert_eq!(g[0].state(), "backoff");
        assert_eq!(g[1].state(), "live");
    }
}
