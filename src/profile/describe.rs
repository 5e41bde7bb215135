//! The human-readable resolved plan that `smoothcast check` prints. Passwords never appear.

use super::text::fmt_secs;
use super::*;
use std::fmt::Write as _;

/// Renders the resolved plan: channel, rate, fragment duration and GOP length, timecode,
/// inputs, the track table (trackID, trackName, size, bitrates, encoder settings), streams with
/// their tracks, destinations (role, URL with the password as `***`), push options, archive.
pub fn describe(plan: &Plan) -> String {
    let mut s = String::new();
    // Writing to a String cannot fail; the results are ignored on purpose.
    let _ = write_plan(&mut s, plan);
    s
}

fn write_plan(s: &mut String, p: &Plan) -> std::fmt::Result {
    let frag = fmt_secs(p.fragment_secs);
    writeln!(s, "channel   {}", p.channel)?;
    writeln!(s, "rate      {} fps", p.rate)?;
    writeln!(
        s,
        "fragment  {frag} s = GOP of {} frames (timescale {} ticks/s)",
        p.fragments.gop, p.timescale
    )?;
    match &p.timecode {
        TimecodeSpec::Clock => writeln!(s, "timecode  clock (system UTC)")?,
        TimecodeSpec::Fixed { date, timecode } => writeln!(
            s,
            "timecode  fixed, first frame at {timecode} on {date} (UTC)"
        )?,
        TimecodeSpec::Ltc { channel } => writeln!(
            s,
            "timecode  ltc on audio input channel {channel} (falls back to the clock)"
        )?,
        TimecodeSpec::V4l2 => writeln!(
            s,
            "timecode  v4l2 buffer timecode (falls back to the clock)"
        )?,
    }
    match &p.video_input {
        VideoInput::Synthetic { width, height } => {
            writeln!(s, "video in  synthetic bars {width}x{height}")?
        }
        VideoInput::File { path } => writeln!(s, "video in  file {}", path.display())?,
        VideoInput::Device { input } => writeln!(s, "video in  input {input}")?,
    }
    writeln!(s, "scaler    {}", p.scaler.name())?;
    match &p.audio_input {
        AudioInput::Synthetic => writeln!(s, "audio in  synthetic tone")?,
        AudioInput::File { path } => writeln!(s, "audio in  file {}", path.display())?,
        AudioInput::Device { input } => writeln!(s, "audio in  input {input}")?,
    }

    writeln!(s)?;
    writeln!(s, "tracks")?;
    let mut rows = vec![[
        "trackID",
        "trackName",
        "rung",
        "size",
        "bitrate",
        "max",
        "buffer",
        "preset",
        "tune",
        "profile",
        "level",
        "bframes",
        "threads",
    ]
    .map(str::to_owned)
    .to_vec()];
    for r in &p.rungs {
        rows.push(vec![
            r.track_id.to_string(),
            r.track_name.clone(),
            r.name.clone(),
            format!("{}x{}", r.width, r.height),
            format!("{}k", r.bitrate_kbps),
            format!("{}k", r.max_bitrate_kbps),
            format!("{}k", r.buffer_kbit),
            r.preset.clone(),
            r.tune.clone().unwrap_or_else(|| "-".into()),
            r.profile.clone(),
            r.level.clone().unwrap_or_else(|| "auto".into()),
            r.bframes.to_string(),
            if r.threads == 0 {
                "auto".into()
            } else {
                r.threads.to_string()
            },
        ]);
    }
    let a = &p.audio;
    rows.push(vec![
        a.track_id.to_string(),
        a.track_name.clone(),
        "-".into(),
        format!("{}ch {}Hz", a.channels, a.sample_rate),
        format!("{}k", a.bitrate_kbps),
        "-".into(),
        "-".into(),
        "AAC-LC".into(),
        "-".into(),
        "-".into(),
        "-".into(),
        "-".into(),
        "-".into(),
    ]);
    write_table(s, &rows)?;
    let map: Vec<String> = a.channel_map.iter().map(u16::to_string).collect();
    writeln!(s, "  audio from input channels [{}]", map.join(", "))?;
    for r in p.rungs.iter().filter(|r| !r.x264_params.is_empty()) {
        let params: Vec<String> = r
            .x264_params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        writeln!(s, "  x264 options of {}: {}", r.name, params.join(":"))?;
    }

    writeln!(s)?;
    let suffix = p.push.stream_suffix.as_deref().unwrap_or("");
    writeln!(s, "streams (one POST each)")?;
    let mut rows = Vec::with_capacity(p.streams.len());
    for st in &p.streams {
        let tracks: Vec<String> = st.track_ids.iter().map(u32::to_string).collect();
        rows.push(vec![
            format!("Streams({}{suffix})", st.id),
            format!("trackIDs {}", tracks.join(", ")),
        ]);
    }
    write_table(s, &rows)?;

    writeln!(s)?;
    if p.destinations.is_empty() {
        writeln!(
            s,
            "destinations  none (archive only, or the built-in sink added at run time)"
        )?;
    } else {
        writeln!(s, "destinations")?;
        let rows: Vec<Vec<String>> = p
            .destinations
            .iter()
            .map(|d| {
                let role = match d.role {
                    Role::Primary => "primary",
                    Role::Backup => "backup",
                };
                vec![d.name.clone(), role.to_owned(), redact_url(&d.url)]
            })
            .collect();
        write_table(s, &rows)?;
    }

    let o = &p.push;
    writeln!(s)?;
    writeln!(
        s,
        "push      {} mode, end-of-stream {}",
        match o.mode {
            PushMode::Hot => "hot",
            PushMode::Failover => "failover",
        },
        if o.send_eos {
            "sent on stop"
        } else {
            "not sent"
        }
    )?;
    writeln!(
        s,
        "          replay window {} s, queue {} fragments per destination",
        fmt_f64(o.replay_window_secs),
        o.queue_fragments
    )?;
    writeln!(
        s,
        "          connect timeout {} s, send timeout {} s, max backoff {} s",
        fmt_f64(o.connect_timeout_secs),
        fmt_f64(o.send_timeout_secs),
        fmt_f64(o.max_backoff_secs)
    )?;
    if let Some(sfx) = &o.stream_suffix {
        writeln!(s, "          stream id suffix {sfx}")?;
    }
    if let Some(ca) = &o.ca_file {
        writeln!(s, "          extra CA {}", ca.display())?;
    }
    if let (Some(c), Some(k)) = (&o.client_cert, &o.client_key) {
        writeln!(
            s,
            "          client cert {} key {}",
            c.display(),
            k.display()
        )?;
    }
    match &p.archive {
        Some(dir) => writeln!(s, "archive   {}", dir.display())?,
        None => writeln!(s, "archive   none")?,
    }
    if let Some(c) = &p.control {
        let token = match &c.token {
            None => "no token".to_owned(),
            Some(ControlToken::Inline(_)) => "token in the profile".to_owned(),
            Some(ControlToken::File(f)) => format!("token from {}", f.display()),
        };
        writeln!(s, "control   http://{}, {token}", c.listen)?;
    }
    Ok(())
}

/// Left-aligned columns separated by two spaces, indented by two.
fn write_table(s: &mut String, rows: &[Vec<String>]) -> std::fmt::Result {
    let cols = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map_or(0, |x| x.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    for r in rows {
        let mut line = String::from(" ");
        for (c, cell) in r.iter().enumerate() {
            let w = widths.get(c).copied().unwrap_or(0);
            write!(line, " {cell:<w$} ")?;
        }
        writeln!(s, "{}", line.trim_end())?;
    }
    Ok(())
}

/// Seconds for display: at most three decimals, no trailing zeros.
fn fmt_f64(v: f64) -> String {
    let t = format!("{v:.3}");
    let t = t.trim_end_matches('0').trim_end_matches('.');
    t.to_owned()
}
