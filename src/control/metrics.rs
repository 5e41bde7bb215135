//! `GET /metrics`: the status snapshot in the Prometheus text exposition format (0.0.4).
//!
//! Rendered from the same [`Status`] document `/status` serves, so both always agree.
//! Conventions: `smoothcast_` prefix, base units in the name (`_bytes`, `_seconds`,
//! `_bits_per_second`; audio levels in `_dbfs`), counters end in `_total`, enumerations are one
//! gauge per state with the current one at 1.

use super::api::{ChannelState, Severity, Status};
use std::fmt::Write as _;

/// Content type of the exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

const STATES: [(ChannelState, &str); 5] = [
    (ChannelState::Starting, "starting"),
    (ChannelState::Running, "running"),
    (ChannelState::Stopping, "stopping"),
    (ChannelState::Stopped, "stopped"),
    (ChannelState::Failed, "failed"),
];

const SESSION_STATES: [&str; 8] = [
    "probing", "live", "backoff", "behind", "failed", "stopped", "standby", "disabled",
];

struct Out {
    text: String,
}

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                self.text.push_str(k);
                self.text.push_str("=\"");
                escape_into(&mut self.text, v);
                self.text.push('"');
            }
            self.text.push('}');
        }
        self.text.push(' ');
        push_value(&mut self.text, value);
        self.text.push('\n');
    }
}

/// Label values escape backslash, double quote and line feed.
fn escape_into(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn push_value(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        let _ = write!(out, "{v}");
    }
}

fn b(v: bool) -> f64 {
    if v {
        1.0
    } else {
        0.0
    }
}

/// Renders the exposition text of one channel.
pub fn render(s: &Status) -> String {
    let mut o = Out {
        text: String::with_capacity(8 * 1024),
    };
    let ch = s.channel.as_str();
    let c = [("channel", ch)];

    o.family(
        "smoothcast_info",
        "gauge",
        "Channel and build information (always 1).",
    );
    o.sample(
        "smoothcast_info",
        &[("channel", ch), ("version", &s.version), ("role", &s.role)],
        1.0,
    );
    o.family(
        "smoothcast_channel_state",
        "gauge",
        "Lifecycle state of the channel: 1 for the current state, 0 for the others.",
    );
    for (st, name) in STATES {
        o.sample(
            "smoothcast_channel_state",
            &[("channel", ch), ("state", name)],
            b(s.state == st),
        );
    }
    o.family(
        "smoothcast_channel_ready",
        "gauge",
        "1 once capture runs, a fragment was produced and a probe POST succeeded.",
    );
    o.sample("smoothcast_channel_ready", &c, b(s.ready));
    o.family(
        "smoothcast_channel_runs_total",
        "counter",
        "Runs started in this process (start and restart add one).",
    );
    o.sample("smoothcast_channel_runs_total", &c, s.runs as f64);
    o.family(
        "smoothcast_uptime_seconds",
        "gauge",
        "Seconds since the encoder process started.",
    );
    o.sample("smoothcast_uptime_seconds", &c, s.uptime_secs);

    // Inputs.
    let v = &s.input.video;
    let vl = [("channel", ch), ("input", v.input.as_str())];
    o.family(
        "smoothcast_input_video_frames_total",
        "counter",
        "Pictures delivered by the video input in the current run.",
    );
    o.sample("smoothcast_input_video_frames_total", &vl, v.frames as f64);
    o.family(
        "smoothcast_input_video_filled_frames_total",
        "counter",
        "Pictures filled (repeat, black, slate) for a missing input picture in the current run.",
    );
    o.sample(
        "smoothcast_input_video_filled_frames_total",
        &vl,
        v.filled_frames as f64,
    );
    o.family(
        "smoothcast_input_video_live",
        "gauge",
        "1 while the latest picture came from the live input.",
    );
    o.sample("smoothcast_input_video_live", &vl, b(v.state == "live"));
    let a = &s.input.audio;
    let al = [("channel", ch), ("input", a.input.as_str())];
    o.family(
        "smoothcast_input_audio_samples_total",
        "counter",
        "Audio sample frames (samples per channel) delivered in the current run.",
    );
    o.sample(
        "smoothcast_input_audio_samples_total",
        &al,
        a.samples as f64,
    );
    for (name, help, levels) in [
        (
            "smoothcast_input_audio_peak_dbfs",
            "Peak audio level per channel over the latest 300 ms, dBFS (floor -120).",
            &a.peak_dbfs,
        ),
        (
            "smoothcast_input_audio_rms_dbfs",
            "RMS audio level per channel over the latest 300 ms, dBFS (floor -120).",
            &a.rms_dbfs,
        ),
    ] {
        o.family(name, "gauge", help);
        for (i, l) in levels.iter().enumerate() {
            let n = (i + 1).to_string();
            o.sample(
                name,
                &[("channel", ch), ("input", &a.input), ("audio_channel", &n)],
                f64::from(*l),
            );
        }
    }

    // Timeline.
    o.family(
        "smoothcast_timecode_frame_index",
        "gauge",
        "Frame index (frames since the Unix epoch at the channel rate) of the latest picture.",
    );
    if let Some(n) = s.timecode.frame_index {
        o.sample(
            "smoothcast_timecode_frame_index",
            &[("channel", ch), ("source", &s.timecode.source)],
            n as f64,
        );
    }
    o.family(
        "smoothcast_fragment_duration_seconds",
        "gauge",
        "Fragment (GOP) duration.",
    );
    o.sample(
        "smoothcast_fragment_duration_seconds",
        &c,
        s.fragment.duration_secs,
    );
    o.family(
        "smoothcast_last_fragment_age_seconds",
        "gauge",
        "Seconds since the latest fragment of any track was published.",
    );
    if let Some(age) = s.fragment.last_fragment_secs {
        o.sample("smoothcast_last_fragment_age_seconds", &c, age);
    }

    // Tracks.
    struct T<'a> {
        name: &'a str,
        id: String,
        kind: &'static str,
        fragments: u64,
        bytes: u64,
        bitrate_kbps: Option<f64>,
        target_kbps: u32,
    }
    let mut tracks: Vec<T> = s
        .rungs
        .iter()
        .map(|r| T {
            name: &r.name,
            id: r.track_id.to_string(),
            kind: "video",
            fragments: r.fragments,
            bytes: r.bytes,
            bitrate_kbps: r.bitrate_kbps,
            target_kbps: r.target_kbps,
        })
        .collect();
    tracks.push(T {
        name: "audio",
        id: s.audio.track_id.to_string(),
        kind: "audio",
        fragments: s.audio.fragments,
        bytes: s.audio.bytes,
        bitrate_kbps: s.audio.bitrate_kbps,
        target_kbps: s.audio.target_kbps,
    });
    type Getter<'a> = fn(&T<'a>) -> Option<f64>;
    let track_families: [(&str, &str, &str, Getter); 4] = [
        (
            "smoothcast_track_fragments_total",
            "counter",
            "Fragments published in the current run.",
            |t| Some(t.fragments as f64),
        ),
        (
            "smoothcast_track_bytes_total",
            "counter",
            "Fragment bytes (moof + mdat) published in the current run.",
            |t| Some(t.bytes as f64),
        ),
        (
            "smoothcast_track_bitrate_bits_per_second",
            "gauge",
            "Measured bitrate over the last few seconds of fragments.",
            |t| t.bitrate_kbps.map(|k| k * 1000.0),
        ),
        (
            "smoothcast_track_target_bitrate_bits_per_second",
            "gauge",
            "Target bitrate from the profile.",
            |t| Some(f64::from(t.target_kbps) * 1000.0),
        ),
    ];
    for (name, kind, help, get) in track_families {
        o.family(name, kind, help);
        for t in &tracks {
            if let Some(v) = get(t) {
                let labels = [
                    ("channel", ch),
                    ("track", t.name),
                    ("track_id", t.id.as_str()),
                    ("kind", t.kind),
                ];
                o.sample(name, &labels, v);
            }
        }
    }

    // Rungs.
    type RungGetter = fn(&super::api::RungStatus) -> Option<f64>;
    let rung_families: [(&str, &str, &str, RungGetter); 4] = [
        (
            "smoothcast_rung_frames_total",
            "counter",
            "Frames encoded by the rung in the current run.",
            |r| Some(r.frames as f64),
        ),
        (
            "smoothcast_rung_frames_dropped_total",
            "counter",
            "Frames of the grid the rung never received.",
            |r| Some(r.dropped as f64),
        ),
        (
            "smoothcast_rung_frames_duplicated_total",
            "counter",
            "Frames encoded from a fill (repeat, black, slate) instead of a live picture.",
            |r| Some(r.duplicated as f64),
        ),
        (
            "smoothcast_rung_frames_per_second",
            "gauge",
            "Frames encoded per second of wall time over the last few seconds.",
            |r| r.fps,
        ),
    ];
    for (name, kind, help, get) in rung_families {
        o.family(name, kind, help);
        for r in &s.rungs {
            if let Some(v) = get(r) {
                o.sample(name, &[("channel", ch), ("rung", &r.name)], v);
            }
        }
    }

    // Push sessions.
    o.family(
        "smoothcast_destination_enabled",
        "gauge",
        "1 unless the operator disabled the destination.",
    );
    for d in &s.destinations {
        o.sample(
            "smoothcast_destination_enabled",
            &[("channel", ch), ("destination", &d.name), ("role", &d.role)],
            b(d.enabled),
        );
    }
    o.family(
        "smoothcast_push_session_state",
        "gauge",
        "State of each push session (stream x destination): 1 for the current state.",
    );
    for d in &s.destinations {
        for st in &d.streams {
            for name in SESSION_STATES {
                o.sample(
                    "smoothcast_push_session_state",
                    &[
                        ("channel", ch),
                        ("destination", &d.name),
                        ("stream", &st.stream_id),
                        ("state", name),
                    ],
                    b(st.state == name),
                );
            }
        }
    }
    type SessGetter = fn(&super::api::StreamStatus) -> Option<f64>;
    let session_families: [(&str, &str, &str, SessGetter); 9] = [
        (
            "smoothcast_push_sent_bytes_total",
            "counter",
            "Body bytes sent (header, fragments, end-of-stream) over all connections.",
            |x| Some(x.bytes as f64),
        ),
        (
            "smoothcast_push_fragments_sent_total",
            "counter",
            "Fragments written, replays included.",
            |x| Some(x.fragments_sent as f64),
        ),
        (
            "smoothcast_push_fragments_dropped_total",
            "counter",
            "Fragments never sent because the session was behind.",
            |x| Some(x.fragments_dropped as f64),
        ),
        (
            "smoothcast_push_reconnects_total",
            "counter",
            "Failed attempts followed by a new connection.",
            |x| Some(x.reconnects as f64),
        ),
        (
            "smoothcast_push_forbidden_total",
            "counter",
            "HTTP 403 answers.",
            |x| Some(x.forbidden as f64),
        ),
        (
            "smoothcast_push_queue_fragments",
            "gauge",
            "Fragments waiting in the session's queue.",
            |x| Some(x.queue_depth as f64),
        ),
        (
            "smoothcast_push_replay_fragments",
            "gauge",
            "Fragments held for resending after a reconnect.",
            |x| Some(x.replay_depth as f64),
        ),
        (
            "smoothcast_push_last_response_status",
            "gauge",
            "The last HTTP status code the server answered.",
            |x| x.last_response.map(f64::from),
        ),
        (
            "smoothcast_push_state_seconds",
            "gauge",
            "Seconds the session has been in its current state.",
            |x| Some(x.state_secs),
        ),
    ];
    for (name, kind, help, get) in session_families {
        o.family(name, kind, help);
        for d in &s.destinations {
            for st in &d.streams {
                if let Some(v) = get(st) {
                    o.sample(
                        name,
                        &[
                            ("channel", ch),
                            ("destination", &d.name),
                            ("stream", &st.stream_id),
                        ],
                        v,
                    );
                }
            }
        }
    }

    // Alerts.
    o.family(
        "smoothcast_alerts",
        "gauge",
        "Active alerts by severity (details in /status).",
    );
    for (sev, name) in [
        (Severity::Critical, "critical"),
        (Severity::Warning, "warning"),
        (Severity::Info, "info"),
    ] {
        let n = s.alerts.iter().filter(|a| a.severity == sev).count();
        o.sample(
            "smoothcast_alerts",
            &[("channel", ch), ("severity", name)],
            n as f64,
        );
    }
    o.text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped_and_infinities_spelled_the_prometheus_way() {
        let mut s = String::new();
        escape_into(&mut s, "a\\b\"c\nd");
        assert_eq!(s, "a\\\\b\\\"c\\nd");
        let mut v = String::new();
        push_value(&mut v, f64::NEG_INFINITY);
        v.push(' ');
        push_value(&mut v, 1e21);
        v.push(' ');
        push_value(&mut v, -120.0);
        assert_eq!(v, "-Inf 1000000000000000000000 -120");
    }
}
