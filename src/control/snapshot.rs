//! Builds the API documents from the supervisor's state and the channel's counters.

use super::api::*;
use super::supervisor::{Rates, Supervisor};
use crate::capture::timecode::{TimecodeHealth, TimecodeKind, TimecodeState};
use crate::capture::FrameOrigin;
use crate::channel::{ChannelStatus, InputStatus, TrackStatus};
use crate::profile::{
    self, AudioInput, ControlToken, Plan, PushMode, Role, TimecodeSpec, VideoInput,
};
use crate::push::{SessionState, SessionStatus};
use crate::time::timecode::{check_timecode_rate, timecode_of};
use crate::time::FrameIndex;

/// Below this peak level on every channel the audio input counts as silent.
const SILENT_DBFS: f32 = -60.0;

/// Everything a document needs, copied out of the locks.
struct View {
    state: ChannelState,
    runs: u64,
    run_secs: Option<f64>,
    first_sequence: Option<u64>,
    last_error: Option<String>,
    operator_stopped: bool,
    disabled: Vec<String>,
    channel: Option<ChannelStatus>,
    ready: bool,
    /// The current run published at least one fragment.
    produced: bool,
    stalled: bool,
    last_fragment_secs: Option<f64>,
    rates: Vec<Rates>,
}

fn view(sup: &Supervisor) -> View {
    let now = sup.now();
    let (
        state,
        runs,
        run_started,
        first_sequence,
        last_error,
        operator_stopped,
        disabled,
        monitor,
        summary,
    ) = {
        let life = sup.life.lock().unwrap_or_else(|e| e.into_inner());
        let summary = (life.summary_run == life.runs)
            .then(|| life.summary.clone())
            .flatten();
        (
            life.state,
            life.runs,
            life.run_started,
            life.first_sequence,
            life.last_error.clone(),
            life.operator_stopped,
            life.disabled.iter().cloned().collect::<Vec<_>>(),
            life.monitor.clone(),
            summary,
        )
    };
    let mut channel = monitor.map(|m| m.status());
    if let (Some(st), Some(sum)) = (channel.as_mut(), summary) {
        // Once a run has ended its pusher is gone: the final session states are in the summary.
        if st.sessions.is_empty() {
            st.sessions = sum.sessions;
        }
    }
    let t = sup.tracker.lock().unwrap_or_else(|e| e.into_inner());
    let timescale = sup.plan().timescale;
    let rates = channel
        .as_ref()
        .map(|c| {
            c.tracks
                .iter()
                .enumerate()
                .map(|(i, tr)| {
                    let media = tr
                        .last_end
                        .saturating_sub(tr.first_time.unwrap_or(tr.last_end));
                    t.rates(i, timescale, tr.bytes, media)
                })
                .collect()
        })
        .unwrap_or_default();
    let produced = channel
        .as_ref()
        .is_some_and(|c| c.tracks.iter().any(|t| t.fragments > 0));
    // The tick thread latches readiness; between two ticks the counters decide.
    let ready_now = produced
        && channel
            .as_ref()
            .is_some_and(|c| super::supervisor::probe_succeeded(&c.sessions));
    View {
        state,
        runs,
        run_secs: run_started.map(|s| now.saturating_sub(s).as_secs_f64()),
        first_sequence,
        last_error,
        operator_stopped,
        disabled,
        channel,
        ready: (t.ready || ready_now) && state == ChannelState::Running,
        produced,
        stalled: state == ChannelState::Running && t.stalled(now, sup.fragment_duration()),
        last_fragment_secs: t
            .last_fragment_at
            .map(|a| now.saturating_sub(a).as_secs_f64()),
        rates,
    }
}

fn input_name(v: &VideoInput) -> (String, String) {
    match v {
        VideoInput::Synthetic { .. } => ("synthetic".into(), "synthetic".into()),
        VideoInput::File { .. } => ("file".into(), "file".into()),
        VideoInput::Device { input } => (input.clone(), "device".into()),
    }
}

fn audio_input_name(a: &AudioInput) -> (String, String) {
    match a {
        AudioInput::Synthetic => ("synthetic".into(), "synthetic".into()),
        AudioInput::File { .. } => ("file".into(), "file".into()),
        AudioInput::Device { input } => (input.clone(), "device".into()),
    }
}

fn origin_name(o: Option<FrameOrigin>) -> &'static str {
    match o {
        Some(FrameOrigin::Live) => "live",
        Some(FrameOrigin::Repeat) => "repeat",
        Some(FrameOrigin::Black) => "black",
        Some(FrameOrigin::Slate) => "slate",
        None => "waiting",
    }
}

/// Lower-case wire name of a session state.
pub fn session_state_name(s: SessionState) -> &'static str {
    match s {
        SessionState::Probing => "probing",
        SessionState::Live => "live",
        SessionState::Backoff => "backoff",
        SessionState::Behind => "behind",
        SessionState::Failed => "failed",
        SessionState::Stopped => "stopped",
        SessionState::Standby => "standby",
        SessionState::Disabled => "disabled",
    }
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::Primary => "primary",
        Role::Backup => "backup",
    }
}

/// The timecode labels of the channel: drop-frame when the fixed start says so, and by
/// convention on the clock at 29.97/59.94.
fn drop_frame(plan: &Plan) -> bool {
    match &plan.timecode {
        TimecodeSpec::Fixed { timecode, .. } => timecode.contains([';', '.']),
        TimecodeSpec::Clock | TimecodeSpec::Ltc { .. } | TimecodeSpec::V4l2 => {
            check_timecode_rate(plan.rate, true).is_ok()
        }
    }
}

/// The `GET /status` document.
pub fn status(sup: &Supervisor) -> Status {
    let plan = sup.plan();
    let v = view(sup);
    let empty_input = InputStatus {
        video_size: match plan.video_input {
            VideoInput::Synthetic { width, height } => (width, height),
            _ => (0, 0),
        },
        video_frames: 0,
        video_filled: 0,
        video_last_index: None,
        video_origin: None,
        audio_samples: 0,
        audio_levels: Vec::new(),
    };
    let running = matches!(v.state, ChannelState::Running | ChannelState::Stopping);
    let input = v.channel.as_ref().map_or(&empty_input, |c| &c.input);
    let (vname, vkind) = input_name(&plan.video_input);
    let (aname, akind) = audio_input_name(&plan.audio_input);
    let peak: Vec<f32> = input.audio_levels.iter().map(|l| l.0).collect();
    let rms: Vec<f32> = input.audio_levels.iter().map(|l| l.1).collect();
    let audio_state = if !running || peak.is_empty() {
        "waiting"
    } else if peak.iter().all(|&p| p < SILENT_DBFS) {
        "silent"
    } else {
        "live"
    };
    let capture = v
        .channel
        .as_ref()
        .map(|c| c.capture.clone())
        .unwrap_or_default();
    let df = drop_frame(plan);
    let (current, date) = match input.video_last_index {
        Some(n) => {
            let ((y, m, d), tc) = timecode_of(n, plan.rate, df);
            (Some(tc.to_string()), Some(format!("{y:04}-{m:02}-{d:02}")))
        }
        None => (None, None),
    };
    let tracks: &[TrackStatus] = v.channel.as_ref().map_or(&[], |c| &c.tracks);
    let track = |id: u32| {
        tracks
            .iter()
            .position(|t| t.track_id == id)
            .map(|i| (&tracks[i], v.rates.get(i).copied().unwrap_or_default()))
    };
    let rungs = plan
        .rungs
        .iter()
        .map(|r| {
            let (t, rates) = match track(r.track_id) {
                Some((t, rates)) => (Some(t), rates),
                None => (None, Rates::default()),
            };
            RungStatus {
                name: r.name.clone(),
                track_id: r.track_id,
                width: r.width,
                height: r.height,
                target_kbps: r.bitrate_kbps,
                fps: rates.per_sec.filter(|_| running),
                bitrate_kbps: rates.bits_per_sec.map(|b| b / 1000.0),
                frames: t.map_or(0, |t| t.samples),
                fragments: t.map_or(0, |t| t.fragments),
                bytes: t.map_or(0, |t| t.bytes),
                dropped: t.map_or(0, |t| t.dropped),
                duplicated: t.map_or(0, |t| t.duplicated),
            }
        })
        .collect();
    let (at, arates) = match track(plan.audio.track_id) {
        Some((t, r)) => (Some(t), r),
        None => (None, Rates::default()),
    };
    let audio = AudioTrackStatus {
        track_id: plan.audio.track_id,
        codec: "AAC-LC".into(),
        target_kbps: plan.audio.bitrate_kbps,
        bitrate_kbps: arates.bits_per_sec.map(|b| b / 1000.0),
        frames: at.map_or(0, |t| t.samples),
        fragments: at.map_or(0, |t| t.fragments),
        bytes: at.map_or(0, |t| t.bytes),
    };
    let now = sup.now();
    let sessions: &[SessionStatus] = v.channel.as_ref().map_or(&[], |c| &c.sessions);
    let destinations = plan
        .destinations
        .iter()
        .map(|d| DestinationStatus {
            name: d.name.clone(),
            role: role_name(d.role).into(),
            url: crate::push::redact_url_str(&d.url),
            enabled: !v.disabled.contains(&d.name),
            streams: sessions
                .iter()
                .filter(|s| s.destination == d.name)
                .map(|s| StreamStatus {
                    stream_id: s.stream_id.clone(),
                    url: s.url.clone(),
                    state: session_state_name(s.state).into(),
                    state_secs: now.saturating_sub(s.state_since).as_secs_f64(),
                    behind: s.behind,
                    bytes: s.bytes_sent,
                    fragments_sent: s.fragments_sent,
                    fragments_dropped: s.fragments_dropped,
                    last_fragment: s
                        .last_fragment
                        .map(|(track_id, sequence)| FragmentRef { track_id, sequence }),
                    last_response: s.last_http_status,
                    reconnects: s.reconnects,
                    forbidden: s.forbidden,
                    queue_depth: s.queue_depth as u64,
                    replay_depth: s.replay_depth as u64,
                    last_error: s.last_error.clone(),
                })
                .collect(),
        })
        .collect();
    let (num, den) = plan.fragment_secs;
    let redundancy = sup.redundancy().map(|r| r.status());
    let mut doc = Status {
        api_version: API_VERSION,
        channel: plan.channel.clone(),
        role: redundancy
            .as_ref()
            .map_or_else(|| "active".into(), |r| r.role.clone()),
        state: v.state,
        ready: v.ready,
        pid: std::process::id(),
        version: env!("CARGO_PKG_VERSION").into(),
        uptime_secs: sup.uptime().as_secs_f64(),
        runs: v.runs,
        run_secs: v.run_secs,
        last_error: v.last_error.clone(),
        input: Inputs {
            video: VideoInputStatus {
                input: vname,
                kind: vkind,
                state: if running {
                    origin_name(input.video_origin).into()
                } else {
                    "waiting".into()
                },
                width: input.video_size.0,
                height: input.video_size.1,
                rate: format!("{}/{}", plan.rate.num(), plan.rate.den()),
                frames: input.video_frames,
                filled_frames: input.video_filled,
                counters: counters_doc(&capture.inputs.video),
            },
            audio: AudioInputStatus {
                input: aname,
                kind: akind,
                state: audio_state.into(),
                sample_rate: plan.audio.sample_rate,
                channels: plan.audio.channels,
                samples: input.audio_samples,
                peak_dbfs: peak,
                rms_dbfs: rms,
                counters: counters_doc(&capture.inputs.audio),
                discipline: capture.discipline.as_ref().map(discipline_doc),
            },
        },
        timecode: timecode_doc(plan, capture.timecode.as_ref(), df, current, date, input),
        fragment: FragmentStatus {
            duration_secs: num as f64 / den.max(1) as f64,
            gop_frames: plan.fragments.gop,
            first_sequence: v.first_sequence,
            last_fragment_secs: v.last_fragment_secs,
        },
        rungs,
        audio,
        destinations,
        alerts: Vec::new(),
        redundancy,
    };
    doc.alerts = alerts(plan, &doc, &v);
    doc
}

// ----- capture status (issue 4): timecode health, input counters, audio discipline -----

fn counters_doc(c: &crate::capture::loss::InputStatus) -> InputCountersStatus {
    InputCountersStatus {
        live: c.live,
        repeated: c.repeated,
        black: c.black,
        slate: c.slate,
        silence_samples: c.silence,
        skipped_slots: c.skipped,
        duplicate_buffers: c.duplicates,
        damaged: c.damaged,
        losses: c.losses,
        reopens: c.reopens,
        xruns: c.xruns,
        xrun_silence_samples: c.xrun_silence,
        lost: c.lost,
    }
}

fn discipline_doc(d: &crate::capture::discipline::DisciplineStatus) -> DisciplineDoc {
    DisciplineDoc {
        device_ppm: d.device_ppm,
        drift_samples: d.drift_frames,
        residual_samples: d.residual_frames,
        inserted: d.inserted,
        dropped: d.dropped,
        filled: d.filled,
        skipped: d.skipped,
    }
}

/// The timecode document: the configured source, its health (from the running channel, else
/// what it will be), and the position of the latest picture.
fn timecode_doc(
    plan: &Plan,
    health: Option<&TimecodeHealth>,
    drop_frame: bool,
    current: Option<String>,
    date: Option<String>,
    input: &InputStatus,
) -> TimecodeStatus {
    let kind = TimecodeKind::of(&plan.timecode);
    let state = health.map_or(
        match kind {
            TimecodeKind::Clock | TimecodeKind::Fixed => TimecodeState::Running,
            TimecodeKind::Ltc | TimecodeKind::V4l2 => TimecodeState::Searching,
        },
        |h| h.state,
    );
    TimecodeStatus {
        source: kind.name().into(),
        state: state.name().into(),
        fallback_reason: health.and_then(|h| h.fallback_reason.clone()),
        source_timecode: health.and_then(|h| h.last_timecode.map(|t| t.to_string())),
        source_frame_index: health.and_then(|h| h.last_index.map(|FrameIndex(n)| n)),
        offset_frames: health.and_then(|h| h.offset_frames),
        clock_offset_frames: health.and_then(|h| h.clock_offset_frames),
        source_frames: health.map_or(0, |h| h.frames),
        drop_frame,
        current,
        date,
        frame_index: input.video_last_index.map(|FrameIndex(n)| n),
    }
}

/// Alerts about the timecode source: running on the clock instead of it, or LTC gone.
fn timecode_alerts(doc: &Status, out: &mut Vec<Alert>) {
    let tc = &doc.timecode;
    match tc.state.as_str() {
        "fallback" => out.push(alert(
            Severity::Warning,
            "timecode_fallback",
            format!(
                "timecode source {} gives no timecode: running on the clock ({})",
                tc.source,
                tc.fallback_reason.as_deref().unwrap_or("no reason given")
            ),
        )),
        "lost" => out.push(alert(
            Severity::Warning,
            "timecode_lost",
            format!(
                "timecode source {}: no valid label for 0.5 s (the timeline keeps counting)",
                tc.source
            ),
        )),
        _ => {}
    }
}

fn alert(severity: Severity, code: &str, message: String) -> Alert {
    Alert {
        severity,
        code: code.into(),
        message,
        destination: None,
        stream: None,
    }
}

/// The conditions worth an operator's attention, most severe first.
fn alerts(plan: &Plan, doc: &Status, v: &View) -> Vec<Alert> {
    let mut out = Vec::new();
    if let Some(r) = &doc.redundancy {
        match r.role.as_str() {
            "fenced" => out.push(alert(
                Severity::Critical,
                "nm_fenced",
                format!(
                    "box {} lost its lease (etcd unreachable?): it stopped pushing; a standby \
                     should take the channel",
                    r.box_id
                ),
            )),
            "standby" => out.push(alert(
                Severity::Info,
                "nm_standby",
                match &r.owner {
                    Some(o) => format!("standby: box {o} owns the channel (POST /failback)"),
                    None => "standby: the channel is free; this box takes it".into(),
                },
            )),
            _ if !r.etcd_ok => out.push(alert(
                Severity::Warning,
                "nm_etcd_unreachable",
                format!(
                    "etcd does not answer: pushing is fenced {:.1} s after the last renewal",
                    r.lease_ttl_secs
                ),
            )),
            _ => {}
        }
        if r.role != "active" {
            return out;
        }
    }
    match doc.state {
        ChannelState::Failed => out.push(alert(
            Severity::Critical,
            "channel_failed",
            format!(
                "the channel failed: {}",
                v.last_error.as_deref().unwrap_or("unknown error")
            ),
        )),
        ChannelState::Stopped if v.operator_stopped => out.push(alert(
            Severity::Info,
            "channel_stopped",
            "stopped by the operator (POST /start to run again)".into(),
        )),
        _ => {}
    }
    if v.stalled {
        out.push(alert(
            Severity::Critical,
            "pipeline_stalled",
            format!(
                "no fragment for {:.0} s",
                v.last_fragment_secs.or(v.run_secs).unwrap_or(0.0)
            ),
        ));
    }
    let running = doc.state == ChannelState::Running;
    let video = &doc.input.video.state;
    if running && matches!(video.as_str(), "repeat" | "black" | "slate") {
        out.push(alert(
            Severity::Critical,
            "video_input_lost",
            format!(
                "video input {}: no signal, sending {video} frames",
                doc.input.video.input
            ),
        ));
    }
    if running {
        timecode_alerts(doc, &mut out);
    }
    if running && doc.input.audio.state == "silent" {
        out.push(alert(
            Severity::Warning,
            "audio_silent",
            format!(
                "audio input {}: every channel below {SILENT_DBFS} dBFS",
                doc.input.audio.input
            ),
        ));
    }
    for d in &doc.destinations {
        if !d.enabled {
            let mut a = alert(
                Severity::Info,
                "destination_disabled",
                format!("destination {} disabled by the operator", d.name),
            );
            a.destination = Some(d.name.clone());
            out.push(a);
            continue;
        }
        for s in &d.streams {
            let (sev, code, what) = match s.state.as_str() {
                "failed" => (
                    Severity::Critical,
                    "destination_failed",
                    "rejected the stream for good; fix the profile",
                ),
                "backoff" | "probing" if s.reconnects > 0 && running => {
                    (Severity::Warning, "destination_down", "down, reconnecting")
                }
                _ if s.behind && running => (
                    Severity::Warning,
                    "destination_behind",
                    "too slow: fragments were dropped for it",
                ),
                _ => continue,
            };
            let mut a = alert(
                sev,
                code,
                format!(
                    "{} Streams({}): {what}{}",
                    d.name,
                    s.stream_id,
                    s.last_error
                        .as_deref()
                        .map(|e| format!(" ({e})"))
                        .unwrap_or_default()
                ),
            );
            a.destination = Some(d.name.clone());
            a.stream = Some(s.stream_id.clone());
            out.push(a);
        }
    }
    // A stream no destination delivers is lost output (failover backups in standby count as
    // waiting, not delivering).
    if running && !doc.destinations.is_empty() {
        let suffix = plan.push.stream_suffix.as_deref().unwrap_or("");
        for st in &plan.streams {
            let id = format!("{}{suffix}", st.id);
            let mut any = false;
            let mut live = false;
            for d in &doc.destinations {
                for s in d.streams.iter().filter(|s| s.stream_id == id) {
                    any = true;
                    live |= s.state == "live" || s.state == "behind";
                }
            }
            let settled = doc.run_secs.unwrap_or(0.0) > 2.0 * doc.fragment.duration_secs + 5.0;
            if any && !live && settled {
                let mut a = alert(
                    Severity::Critical,
                    "stream_not_delivered",
                    format!("Streams({}) reaches no destination", st.id),
                );
                a.stream = Some(st.id.clone());
                out.push(a);
            }
        }
    }
    out.sort_by_key(|a| a.severity);
    out
}

/// The `GET /health` document and whether it is healthy (HTTP 200 vs 503).
pub fn health(sup: &Supervisor) -> (Health, bool) {
    let v = view(sup);
    let status = match v.state {
        ChannelState::Running if v.stalled => "stalled",
        ChannelState::Running if v.produced => "ok",
        ChannelState::Running | ChannelState::Starting => "starting",
        ChannelState::Stopping | ChannelState::Stopped => "stopped",
        ChannelState::Failed => "failed",
    };
    (
        Health {
            status: status.into(),
            channel: sup.plan().channel.clone(),
            state: v.state,
            ready: v.ready,
        },
        status == "ok",
    )
}

/// The `GET /profile` document: the running plan, credentials redacted, and the text that
/// `smoothcast check` prints.
pub fn profile_doc(sup: &Supervisor) -> serde_json::Value {
    use serde_json::json;
    let p = sup.plan();
    let (num, den) = p.fragment_secs;
    let video = match &p.video_input {
        VideoInput::Synthetic { width, height } => {
            json!({"kind": "synthetic", "width": width, "height": height})
        }
        VideoInput::File { path } => json!({"kind": "file", "path": path.display().to_string()}),
        VideoInput::Device { input } => json!({"kind": "device", "input": input}),
    };
    let audio_in = match &p.audio_input {
        AudioInput::Synthetic => json!({"kind": "synthetic"}),
        AudioInput::File { path } => json!({"kind": "file", "path": path.display().to_string()}),
        AudioInput::Device { input } => json!({"kind": "device", "input": input}),
    };
    let timecode = match &p.timecode {
        TimecodeSpec::Clock => json!({"source": "clock"}),
        TimecodeSpec::Fixed { date, timecode } => {
            json!({"source": "fixed", "date": date, "start": timecode})
        }
        TimecodeSpec::Ltc { channel } => json!({"source": "ltc", "channel": channel}),
        TimecodeSpec::V4l2 => json!({"source": "v4l2"}),
    };
    let path = |o: &Option<std::path::PathBuf>| o.as_ref().map(|p| p.display().to_string());
    json!({
        "path": sup.profile_path().map(|p| p.display().to_string()),
        "channel": p.channel,
        "rate": format!("{}/{}", p.rate.num(), p.rate.den()),
        "fragment_duration_secs": num as f64 / den.max(1) as f64,
        "fragment_duration": format!("{num}/{den}"),
        "gop_frames": p.fragments.gop,
        "timescale": p.timescale,
        "timecode": timecode,
        "video_input": video,
        "audio_input": audio_in,
        "rungs": p.rungs.iter().map(|r| json!({
            "name": r.name,
            "track_id": r.track_id,
            "track_name": r.track_name,
            "width": r.width,
            "height": r.height,
            "bitrate_kbps": r.bitrate_kbps,
            "max_bitrate_kbps": r.max_bitrate_kbps,
            "buffer_kbit": r.buffer_kbit,
            "preset": r.preset,
            "tune": r.tune,
            "profile": r.profile,
            "level": r.level,
            "bframes": r.bframes,
            "threads": r.threads,
            "x264": r.x264_params.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "audio": {
            "track_id": p.audio.track_id,
            "track_name": p.audio.track_name,
            "bitrate_kbps": p.audio.bitrate_kbps,
            "channels": p.audio.channels,
            "sample_rate": p.audio.sample_rate,
            "channel_map": p.audio.channel_map,
        },
        "streams": p.streams.iter().map(|s| json!({"id": s.id, "track_ids": s.track_ids})).collect::<Vec<_>>(),
        "destinations": p.destinations.iter().map(|d| json!({
            "name": d.name,
            "role": role_name(d.role),
            "url": profile::redact_url(&d.url),
        })).collect::<Vec<_>>(),
        "push": {
            "mode": match p.push.mode { PushMode::Hot => "hot", PushMode::Failover => "failover" },
            "replay_window_secs": p.push.replay_window_secs,
            "send_eos": p.push.send_eos,
            "connect_timeout_secs": p.push.connect_timeout_secs,
            "send_timeout_secs": p.push.send_timeout_secs,
            "max_backoff_secs": p.push.max_backoff_secs,
            "ca_file": path(&p.push.ca_file),
            "client_cert": path(&p.push.client_cert),
            "client_key": path(&p.push.client_key),
            "stream_suffix": p.push.stream_suffix,
            "queue_fragments": p.push.queue_fragments,
        },
        "archive": path(&p.archive),
        "control": p.control.as_ref().map(|c| json!({
            "listen": c.listen.to_string(),
            "token": match &c.token {
                None => json!(null),
                Some(ControlToken::Inline(_)) => json!("inline"),
                Some(ControlToken::File(f)) => json!({"file": f.display().to_string()}),
            },
        })),
        "text": profile::describe(p),
    })
}
