//! Validation and resolution: [`ProfileFile`] (as written) → [`Plan`] (defaults applied, every
//! derived value computed). The first problem found is returned with its field path; checks run
//! in file order (channel, timecode, video, audio, rungs, streams, destinations, push, output,
//! control) so the reported error is the one an operator reading top-down meets first.

use super::defaults as def;
use super::schema::*;
use super::text::{self, fmt_ratio_2dp, fmt_secs, is_url_safe_name};
use super::*;
use crate::time::{FragmentGrid, Rate};
use std::path::{Path, PathBuf};

/// A validation failure before the origin (file name) is attached.
#[derive(Debug)]
pub(crate) struct FieldError {
    pub field: String,
    pub message: String,
}

fn fail<T>(field: impl Into<String>, message: impl Into<String>) -> Result<T, FieldError> {
    Err(FieldError {
        field: field.into(),
        message: message.into(),
    })
}

/// Shortest and longest fragment duration accepted, in seconds. The lower bound keeps
/// `mfhd.sequence_number` (fragments since the epoch) within 32 bits until 2106.
const MIN_FRAGMENT_SECS: u64 = 1;
const MAX_FRAGMENT_SECS: u64 = 30;
const MAX_RUNGS: usize = 16;
const MAX_BFRAMES: u32 = 16;
const MAX_THREADS: u32 = 128;
const MIN_SIZE: u32 = 16;
const MAX_SIZE: u32 = 4096;

use crate::encode::x264::{PRESETS, TUNES};
/// x264 tunes; at most one of the first six ("psy" tunes) may be combined with the others.
const PSY_TUNES: &[&str] = TUNES.split_at(6).0;
const OTHER_TUNES: &[&str] = TUNES.split_at(6).1;
/// The H.264 profiles a ladder may use (8-bit 4:2:0, what Smooth players decode).
const PROFILES: &[&str] = &["baseline", "main", "high"];

/// x264 options a profile may not set through `x264 = {…}`, and why.
const RESERVED_X264: &[(&str, &str)] = &[
    (
        "keyint",
        "smoothcast sets it: every fragment starts with an IDR",
    ),
    (
        "min-keyint",
        "smoothcast sets it: every fragment starts with an IDR",
    ),
    (
        "keyint-min",
        "smoothcast sets it: every fragment starts with an IDR",
    ),
    (
        "scenecut",
        "scene-cut keyframes would put cuts off the fragment grid",
    ),
    ("open-gop", "fragments must be closed GOPs"),
    ("intra-refresh", "fragments must start with an IDR"),
    ("fps", "the frame rate comes from channel.rate"),
    ("force-cfr", "timestamps come from the frame grid"),
    ("timebase", "timestamps come from the frame grid"),
    (
        "input-res",
        "the size comes from the rung's width and height",
    ),
    ("bitrate", "use the rung's `bitrate` field"),
    ("vbv-maxrate", "use the rung's `max_bitrate` field"),
    ("vbv-bufsize", "use the rung's `buffer` field"),
    (
        "crf",
        "rungs are bitrate-controlled (declared bitrates must hold)",
    ),
    (
        "qp",
        "rungs are bitrate-controlled (declared bitrates must hold)",
    ),
    ("bframes", "use the rung's `bframes` field"),
    ("preset", "use the rung's `preset` field"),
    ("tune", "use the rung's `tune` field"),
    ("profile", "use the rung's `profile` field"),
    ("level", "use the rung's `level` field"),
    ("threads", "use the rung's `threads` field"),
];

/// Resolves a parsed profile. `base` is the profile's directory (relative paths resolve
/// against it); `today` gives the UTC date used when a fixed timecode has no date.
pub(crate) fn resolve(
    file: ProfileFile,
    base: Option<&Path>,
    today: &dyn Fn() -> String,
) -> Result<Plan, FieldError> {
    let ProfileFile {
        channel,
        timecode,
        video,
        audio,
        rung,
        streams,
        destination,
        push,
        output,
        control,
    } = file;

    // [channel]
    if !is_url_safe_name(&channel.name, 64) {
        return fail(
            "channel.name",
            format!(
                "\"{}\" is not a channel name; use 1–64 characters from A-Z a-z 0-9 _ - \
                 (it becomes part of every stream id and URL)",
                channel.name
            ),
        );
    }
    let name = channel.name;
    let rate = text::parse_rate(&channel.rate.0).or_else(|m| fail("channel.rate", m))?;
    let fragment_secs = text::parse_seconds(&channel.fragment_duration.0)
        .or_else(|m| fail("channel.fragment_duration", m))?;
    let gop = gop_frames(rate, fragment_secs)?;
    let timescale = channel.timescale.unwrap_or(def::TIMESCALE);
    if timescale < 1000 {
        return fail(
            "channel.timescale",
            format!("timescale {timescale} is below 1000 ticks per second"),
        );
    }

    // [timecode]
    let timecode = resolve_timecode(timecode, rate, today)?;

    // [video]; a synthetic source without a size takes the first rung's.
    let first_rung = rung
        .as_ref()
        .and_then(|r| r.first())
        .map(|r| (r.width, r.height));
    let video_input = resolve_video(&video, first_rung, base)?;
    let scaler = match video.scaler.as_deref() {
        None => ScaleKernel::default(),
        Some(name) => match ScaleKernel::from_name(name) {
            Some(k) => k,
            None => {
                let names: Vec<&str> = ScaleKernel::ALL.iter().map(|k| k.name()).collect();
                return fail(
                    "video.scaler",
                    format!("unknown scaler {name:?} (one of {})", names.join(", ")),
                );
            }
        },
    };

    // [audio]
    let (audio_input, audio_plan_partial) = resolve_audio(&audio, &video_input, base)?;
    check_timecode_inputs(&timecode, &video_input, &audio_input)?;

    // [[rung]]
    let rungs_in = match rung {
        Some(r) if !r.is_empty() => r,
        _ => return fail("rung", EMPTY_LADDER),
    };
    if rungs_in.len() > MAX_RUNGS {
        return fail(
            "rung",
            format!(
                "{} rungs; at most {MAX_RUNGS} are supported",
                rungs_in.len()
            ),
        );
    }
    let mut rungs: Vec<RungPlan> = Vec::with_capacity(rungs_in.len());
    for (i, r) in rungs_in.into_iter().enumerate() {
        let rp = resolve_rung(i, r, &rungs, rate, gop)?;
        rungs.push(rp);
    }
    let audio = AudioPlan {
        track_id: rungs.len() as u32 + 1,
        ..audio_plan_partial
    };

    // [streams]
    let (layout, redundant_audio) = match streams {
        Some(s) => (
            s.layout.unwrap_or(StreamLayout::PerTrack),
            s.redundant_audio.unwrap_or(def::REDUNDANT_AUDIO),
        ),
        None => (StreamLayout::PerTrack, def::REDUNDANT_AUDIO),
    };
    let streams = match layout {
        StreamLayout::PerTrack => {
            let mut v: Vec<StreamPlan> = rungs
                .iter()
                .map(|r| StreamPlan {
                    id: format!("{name}-{}", r.name),
                    track_ids: vec![r.track_id],
                })
                .collect();
            v.push(StreamPlan {
                id: format!("{name}-audio"),
                track_ids: vec![audio.track_id],
            });
            if redundant_audio {
                v.push(StreamPlan {
                    id: format!("{name}-audio2"),
                    track_ids: vec![audio.track_id],
                });
            }
            v
        }
        StreamLayout::Single => {
            if redundant_audio {
                return fail(
                    "streams.redundant_audio",
                    "redundant audio needs layout = \"per-track\" (with \"single\" the audio \
                     travels in the one stream with the video)",
                );
            }
            let mut ids: Vec<u32> = rungs.iter().map(|r| r.track_id).collect();
            ids.push(audio.track_id);
            vec![StreamPlan {
                id: name.clone(),
                track_ids: ids,
            }]
        }
    };

    // [[destination]]
    let destinations = resolve_destinations(destination.unwrap_or_default())?;

    // [push]
    let push = resolve_push(push, fragment_secs, &destinations, base)?;

    // [output]
    let archive = match output.and_then(|o| o.archive) {
        Some(a) => Some(resolve_path(base, &a.dir, "output.archive.dir")?),
        None => None,
    };

    // [control]
    let control = match control {
        Some(c) => Some(resolve_control(c, base)?),
        None => None,
    };

    Ok(Plan {
        channel: name,
        rate,
        timescale,
        fragment_secs,
        fragments: FragmentGrid { gop },
        timecode,
        video_input,
        scaler,
        audio_input,
        rungs,
        audio,
        streams,
        destinations,
        push,
        archive,
        control,
    })
}

/// `[control]`: the listen address, and a token wherever the API is reachable off the box.
fn resolve_control(c: ControlSection, base: Option<&Path>) -> Result<ControlPlan, FieldError> {
    let listen_text = c.listen.as_deref().unwrap_or(def::CONTROL_LISTEN);
    let listen: std::net::SocketAddr = listen_text.trim().parse().or_else(|_| {
        fail(
            "control.listen",
            format!(
                "\"{listen_text}\" is not ADDR:PORT; write an IP address and a port, e.g. \
                 \"127.0.0.1:8701\", \"[::1]:8701\" or \"0.0.0.0:8701\""
            ),
        )
    })?;
    let token = match (c.token, c.token_file) {
        (Some(_), Some(_)) => {
            return fail(
                "control.token_file",
                "give either token or token_file, not both",
            )
        }
        (Some(t), None) => {
            check_control_token(&t).or_else(|m| fail("control.token", m))?;
            Some(ControlToken::Inline(t))
        }
        (None, Some(f)) => Some(ControlToken::File(resolve_path(
            base,
            &f,
            "control.token_file",
        )?)),
        (None, None) => None,
    };
    if !listen.ip().is_loopback() && token.is_none() {
        return fail(
            "control.listen",
            format!(
                "{listen} is reachable from other machines; set control.token or \
                 control.token_file (or listen on 127.0.0.1)"
            ),
        );
    }
    Ok(ControlPlan { listen, token })
}

/// GOP length in frames = fragment duration × rate, which must be a whole number.
fn gop_frames(rate: Rate, secs: (u64, u64)) -> Result<u64, FieldError> {
    let field = "channel.fragment_duration";
    if secs.0 < MIN_FRAGMENT_SECS * secs.1 || secs.0 > MAX_FRAGMENT_SECS * secs.1 {
        return fail(
            field,
            format!(
                "fragment duration {} s is outside {MIN_FRAGMENT_SECS}–{MAX_FRAGMENT_SECS} s \
                 (shorter fragments overflow the 32-bit fragment sequence number before 2106)",
                fmt_secs(secs)
            ),
        );
    }
    match rate.whole_frames_in(secs.0, secs.1) {
        Some(g) => Ok(g),
        None => {
            let n = u128::from(secs.0) * u128::from(rate.num());
            let d = u128::from(secs.1) * u128::from(rate.den());
            // Suggest the nearest duration that is a whole number of frames.
            let g = ((2 * n + d) / (2 * d)).max(1) as u64;
            let hint = (g * u64::from(rate.den()), u64::from(rate.num()));
            fail(
                field,
                format!(
                    "fragment duration {} s at {rate} is {} frames; GOP must be a whole number \
                     of frames ({} s would be {g} frames)",
                    fmt_secs(secs),
                    fmt_ratio_2dp(n, d),
                    fmt_secs(hint)
                ),
            )
        }
    }
}

fn resolve_timecode(
    tc: Option<TimecodeSection>,
    rate: Rate,
    today: &dyn Fn() -> String,
) -> Result<TimecodeSpec, FieldError> {
    let Some(tc) = tc else {
        return Ok(TimecodeSpec::Clock);
    };
    match tc.source {
        TimecodeSource::Ltc => {
            if tc.start.is_some() || tc.date.is_some() {
                let field = if tc.start.is_some() {
                    "timecode.start"
                } else {
                    "timecode.date"
                };
                return fail(
                    field,
                    "start and date are only used with source = \"fixed\"",
                );
            }
            let Some(channel) = tc.channel else {
                return fail(
                    "timecode.channel",
                    "source = \"ltc\" needs the audio input channel carrying LTC, e.g. channel = 8",
                );
            };
            if !(1..=64).contains(&channel) {
                return fail(
                    "timecode.channel",
                    format!("audio channel {channel} is outside 1–64"),
                );
            }
            if let Err(e) = crate::time::ltc::LtcTimecodeSource::new(
                rate,
                48_000,
                0,
                crate::time::SimulatedClocks::new(0),
            ) {
                return fail("timecode.source", e.to_string());
            }
            Ok(TimecodeSpec::Ltc { channel })
        }
        TimecodeSource::V4l2 => {
            if tc.start.is_some() || tc.date.is_some() || tc.channel.is_some() {
                let field = if tc.channel.is_some() {
                    "timecode.channel"
                } else if tc.start.is_some() {
                    "timecode.start"
                } else {
                    "timecode.date"
                };
                return fail(field, "this field is not used with source = \"v4l2\"");
            }
            Ok(TimecodeSpec::V4l2)
        }
        TimecodeSource::Clock => {
            if tc.channel.is_some() {
                return fail(
                    "timecode.channel",
                    "channel is only used with source = \"ltc\"",
                );
            }
            if tc.start.is_some() {
                return fail(
                    "timecode.start",
                    "start is only used with source = \"fixed\"",
                );
            }
            if tc.date.is_some() {
                return fail("timecode.date", "date is only used with source = \"fixed\"");
            }
            Ok(TimecodeSpec::Clock)
        }
        TimecodeSource::Fixed => {
            if tc.channel.is_some() {
                return fail(
                    "timecode.channel",
                    "channel is only used with source = \"ltc\"",
                );
            }
            let Some(start) = tc.start else {
                return fail(
                    "timecode.start",
                    "source = \"fixed\" needs a start timecode, e.g. start = \"10:00:00:00\"",
                );
            };
            text::check_timecode(&start, rate).or_else(|m| fail("timecode.start", m))?;
            let date = match tc.date.map(|d| d.0) {
                Some(d) => {
                    text::check_date(&d).or_else(|m| fail("timecode.date", m))?;
                    d
                }
                None => today(),
            };
            Ok(TimecodeSpec::Fixed {
                date,
                timecode: start,
            })
        }
    }
}

/// `ltc` needs an audio input that can carry LTC, `v4l2` a capture device for video.
fn check_timecode_inputs(
    tc: &TimecodeSpec,
    video: &VideoInput,
    audio: &AudioInput,
) -> Result<(), FieldError> {
    match (tc, video, audio) {
        (TimecodeSpec::Ltc { .. }, _, AudioInput::Synthetic) => fail(
            "timecode.source",
            "source = \"ltc\" reads LTC from the audio input, and the synthetic audio carries \
             none; use a device or file audio input",
        ),
        (TimecodeSpec::V4l2, VideoInput::Synthetic { .. } | VideoInput::File { .. }, _) => fail(
            "timecode.source",
            "source = \"v4l2\" reads the capture driver's timecode; the video input must be a \
             capture device",
        ),
        _ => Ok(()),
    }
}

const EMPTY_LADDER: &str =
    "the ladder is empty; add at least one [[rung]] with name, width, height and bitrate";

/// The video input; a synthetic source without a configured size takes `first_rung`'s
/// (the top of the ladder), so the source is never upscaled.
fn resolve_video(
    v: &VideoSection,
    first_rung: Option<(u32, u32)>,
    base: Option<&Path>,
) -> Result<VideoInput, FieldError> {
    match v.input.as_str() {
        "synthetic" => {
            if v.path.is_some() {
                return fail("video.path", "path is only used with input = \"file\"");
            }
            for (field, value) in [("video.width", v.width), ("video.height", v.height)] {
                if let Some(x) = value {
                    check_dimension(field, x)?;
                }
            }
            let (width, height) = match (v.width, v.height, first_rung) {
                (Some(w), Some(h), _) => (w, h),
                (w, h, Some((rw, rh))) => (w.unwrap_or(rw), h.unwrap_or(rh)),
                (_, _, None) => return fail("rung", EMPTY_LADDER),
            };
            Ok(VideoInput::Synthetic { width, height })
        }
        "file" => {
            size_only_for_synthetic(v)?;
            let Some(p) = &v.path else {
                return fail("video.path", "input = \"file\" needs a path");
            };
            Ok(VideoInput::File {
                path: resolve_path(base, p, "video.path")?,
            })
        }
        name => {
            check_input_name("video.input", name)?;
            size_only_for_synthetic(v)?;
            if v.path.is_some() {
                return fail("video.path", "path is only used with input = \"file\"");
            }
            Ok(VideoInput::Device {
                input: name.to_owned(),
            })
        }
    }
}

fn size_only_for_synthetic(v: &VideoSection) -> Result<(), FieldError> {
    if v.width.is_some() {
        return fail(
            "video.width",
            "width is only used with input = \"synthetic\" (real inputs have their own size)",
        );
    }
    if v.height.is_some() {
        return fail(
            "video.height",
            "height is only used with input = \"synthetic\" (real inputs have their own size)",
        );
    }
    Ok(())
}

fn check_input_name(field: &str, name: &str) -> Result<(), FieldError> {
    if is_url_safe_name(name, 32) {
        Ok(())
    } else {
        fail(
            field,
            format!(
                "\"{name}\" is not an input; use \"synthetic\", \"file\" or a logical input name \
                 of the box's hw map (1–32 characters from A-Z a-z 0-9 _ -, e.g. \"sdi1\")"
            ),
        )
    }
}

fn check_dimension(field: &str, x: u32) -> Result<(), FieldError> {
    if !(MIN_SIZE..=MAX_SIZE).contains(&x) {
        return fail(
            field,
            format!("{x} is outside {MIN_SIZE}–{MAX_SIZE} pixels"),
        );
    }
    if !x.is_multiple_of(2) {
        return fail(field, format!("{x} is odd; 4:2:0 video needs even sizes"));
    }
    Ok(())
}

/// The audio input and the audio plan with a placeholder trackID (set once the ladder is known).
fn resolve_audio(
    a: &AudioSection,
    video: &VideoInput,
    base: Option<&Path>,
) -> Result<(AudioInput, AudioPlan), FieldError> {
    if a.input != "file" && a.path.is_some() {
        return fail("audio.path", "path is only used with input = \"file\"");
    }
    let input = match a.input.as_str() {
        "synthetic" => AudioInput::Synthetic,
        "file" => {
            let path =
                match (&a.path, video) {
                    (Some(p), _) => resolve_path(base, p, "audio.path")?,
                    (None, VideoInput::File { path }) => path.clone(),
                    (None, _) => return fail(
                        "audio.path",
                        "input = \"file\" needs a path (it defaults to the video file only when \
                         the video input is a file too)",
                    ),
                };
            AudioInput::File { path }
        }
        name => {
            check_input_name("audio.input", name)?;
            AudioInput::Device {
                input: name.to_owned(),
            }
        }
    };
    let channels = a.channels.unwrap_or(def::AUDIO_CHANNELS);
    if !(1..=2).contains(&channels) {
        return fail(
            "audio.channels",
            format!("{channels} channels; AAC-LC output here is mono (1) or stereo (2)"),
        );
    }
    let bitrate = a.bitrate.unwrap_or(def::AUDIO_BITRATE_KBPS);
    // fdk-aac's useful AAC-LC range at 44.1/48 kHz: 16 kbit/s up to ~160 kbit/s per channel.
    let (lo, hi) = (16, 160 * u32::from(channels));
    if !(lo..=hi).contains(&bitrate) {
        return fail(
            "audio.bitrate",
            format!(
                "AAC-LC bitrate {bitrate} kbit/s is outside {lo}–{hi} kbit/s for {}",
                if channels == 1 { "mono" } else { "stereo" }
            ),
        );
    }
    let sample_rate = a.sample_rate.unwrap_or(def::AUDIO_SAMPLE_RATE);
    if sample_rate != 44_100 && sample_rate != 48_000 {
        return fail(
            "audio.sample_rate",
            format!("sample rate {sample_rate} Hz is not supported; use 48000 or 44100"),
        );
    }
    let channel_map = match &a.channel_map {
        Some(m) => {
            if m.len() != usize::from(channels) {
                return fail(
                    "audio.channel_map",
                    format!(
                        "{} input channel(s) listed for {channels} output channel(s); list one \
                         input channel per output channel",
                        m.len()
                    ),
                );
            }
            if let Some(bad) = m.iter().find(|c| !(1..=16).contains(*c)) {
                return fail(
                    "audio.channel_map",
                    format!("input channel {bad} is outside 1–16"),
                );
            }
            m.clone()
        }
        None => (1..=channels).collect(),
    };
    Ok((
        input,
        AudioPlan {
            track_id: 0,
            track_name: "audio".to_owned(),
            bitrate_kbps: bitrate,
            channels,
            sample_rate,
            channel_map,
        },
    ))
}

fn resolve_rung(
    i: usize,
    r: RungSection,
    earlier: &[RungPlan],
    rate: Rate,
    gop: u64,
) -> Result<RungPlan, FieldError> {
    let f = |name: &str| format!("rung[{i}].{name}");
    if !is_url_safe_name(&r.name, 32) {
        return fail(
            f("name"),
            format!(
                "\"{}\" is not a rung name; use 1–32 characters from A-Z a-z 0-9 _ - (it becomes \
                 part of a stream id)",
                r.name
            ),
        );
    }
    if r.name == "audio" || r.name == "audio2" {
        return fail(
            f("name"),
            format!("\"{}\" is reserved for the audio stream ids", r.name),
        );
    }
    if let Some((j, _)) = earlier.iter().enumerate().find(|(_, e)| e.name == r.name) {
        return fail(
            f("name"),
            format!("rung name \"{}\" is already used by rung[{j}]", r.name),
        );
    }
    check_dimension(&f("width"), r.width)?;
    check_dimension(&f("height"), r.height)?;
    if r.bitrate == 0 {
        return fail(f("bitrate"), "bitrate must be greater than 0 kbit/s");
    }
    if let Some((j, e)) = earlier
        .iter()
        .enumerate()
        .find(|(_, e)| e.bitrate_kbps == r.bitrate)
    {
        return fail(
            f("bitrate"),
            format!(
                "bitrate {} kbit/s is already used by rung[{j}] (\"{}\"); every rung is a \
                 QualityLevel of the one video track named by its bitrate, so bitrates must differ",
                r.bitrate, e.name
            ),
        );
    }
    if let Some(prev) = earlier.last() {
        if r.bitrate > prev.bitrate_kbps {
            return fail(
                f("bitrate"),
                format!(
                    "bitrate {} kbit/s is above the previous rung's {} kbit/s; list rungs highest \
                     bitrate first",
                    r.bitrate, prev.bitrate_kbps
                ),
            );
        }
    }
    let max_bitrate = r.max_bitrate.unwrap_or(r.bitrate);
    if max_bitrate < r.bitrate {
        return fail(
            f("max_bitrate"),
            format!(
                "max_bitrate {max_bitrate} kbit/s is below bitrate {} kbit/s",
                r.bitrate
            ),
        );
    }
    let buffer = match r.buffer {
        Some(b) => b,
        None => max_bitrate.saturating_mul(def::BUFFER_SECONDS_OF_MAX_BITRATE),
    };
    if buffer == 0 {
        return fail(f("buffer"), "VBV buffer must be greater than 0 kbit");
    }
    let preset = r.preset.unwrap_or_else(|| def::PRESET.to_owned());
    if !PRESETS.contains(&preset.as_str()) {
        return fail(
            f("preset"),
            format!(
                "unknown x264 preset \"{preset}\"; use one of {}",
                PRESETS.join(", ")
            ),
        );
    }
    if let Some(tune) = &r.tune {
        let mut psy = 0;
        for t in tune.split(',').map(str::trim) {
            if PSY_TUNES.contains(&t) {
                psy += 1;
            } else if !OTHER_TUNES.contains(&t) {
                return fail(
                    f("tune"),
                    format!(
                        "unknown x264 tune \"{t}\"; use one of {}, {}",
                        PSY_TUNES.join(", "),
                        OTHER_TUNES.join(", ")
                    ),
                );
            }
        }
        if psy > 1 {
            return fail(
                f("tune"),
                format!(
                    "\"{tune}\" combines several of {}; x264 allows only one",
                    PSY_TUNES.join(", ")
                ),
            );
        }
    }
    let profile = r.profile.unwrap_or_else(|| def::H264_PROFILE.to_owned());
    if !PROFILES.contains(&profile.as_str()) {
        return fail(
            f("profile"),
            format!(
                "unknown H.264 profile \"{profile}\"; use one of {}",
                PROFILES.join(", ")
            ),
        );
    }
    let bframes = match r.bframes {
        Some(b) => b,
        None if profile == "baseline" => def::BFRAMES_BASELINE,
        None => def::BFRAMES,
    };
    if bframes > MAX_BFRAMES {
        return fail(
            f("bframes"),
            format!("{bframes} B-frames; x264 allows at most {MAX_BFRAMES}"),
        );
    }
    if profile == "baseline" && bframes > 0 {
        return fail(
            f("bframes"),
            format!("{bframes} B-frames, but the baseline profile has none; set bframes = 0"),
        );
    }
    if u64::from(bframes) >= gop {
        return fail(
            f("bframes"),
            format!("{bframes} B-frames do not fit in a GOP of {gop} frames"),
        );
    }
    let level = match &r.level {
        None => None,
        Some(l) => {
            let Some(limits) = text::level(&l.0) else {
                return fail(
                    f("level"),
                    format!(
                        "unknown H.264 level \"{}\"; use one of {}",
                        l.0,
                        text::level_names()
                    ),
                );
            };
            check_level(
                &f("level"),
                limits,
                &r.name,
                r.width,
                r.height,
                rate,
                max_bitrate,
                buffer,
                &profile,
            )?;
            Some(limits.name.to_owned())
        }
    };
    let threads = r.threads.unwrap_or(def::THREADS);
    if threads > MAX_THREADS {
        return fail(
            f("threads"),
            format!("{threads} threads; use 0 (automatic) up to {MAX_THREADS}"),
        );
    }
    let mut x264_params = Vec::new();
    for (key, value) in r.x264.unwrap_or_default() {
        let norm = key.replace('_', "-");
        let norm = norm.strip_prefix("no-").unwrap_or(&norm);
        if let Some((_, why)) = RESERVED_X264.iter().find(|(k, _)| *k == norm) {
            return fail(
                format!("rung[{i}].x264.{key}"),
                format!("x264 option \"{key}\" cannot be set here: {why}"),
            );
        }
        if key.is_empty() || value.0.contains('\0') || key.contains('\0') {
            return fail(
                format!("rung[{i}].x264.{key}"),
                "empty option name or NUL character",
            );
        }
        x264_params.push((key, value.0));
    }
    Ok(RungPlan {
        name: r.name,
        track_id: i as u32 + 1,
        track_name: "video".to_owned(),
        width: r.width,
        height: r.height,
        bitrate_kbps: r.bitrate,
        max_bitrate_kbps: max_bitrate,
        buffer_kbit: buffer,
        preset,
        tune: r.tune,
        profile,
        level,
        bframes,
        threads,
        x264_params,
    })
}

/// H.264 Annex A limits of a forced level: frame size, macroblock rate, VBV rate and buffer.
#[allow(clippy::too_many_arguments)]
fn check_level(
    field: &str,
    l: text::LevelLimits,
    rung: &str,
    width: u32,
    height: u32,
    rate: Rate,
    max_bitrate: u32,
    buffer: u32,
    profile: &str,
) -> Result<(), FieldError> {
    let (mbw, mbh) = (
        u64::from(width.div_ceil(16)),
        u64::from(height.div_ceil(16)),
    );
    let fs = mbw * mbh;
    // A.3.1: each dimension is also bounded by sqrt(8 × MaxFS) macroblocks.
    let dim_ok = mbw * mbw <= 8 * l.max_fs && mbh * mbh <= 8 * l.max_fs;
    if fs > l.max_fs || !dim_ok {
        return fail(
            field,
            format!(
                "level {} allows {} macroblocks per frame; {width}x{height} (rung \"{rung}\") \
                 needs {fs}",
                l.name, l.max_fs
            ),
        );
    }
    if u128::from(fs) * u128::from(rate.num()) > u128::from(l.max_mbps) * u128::from(rate.den()) {
        return fail(
            field,
            format!(
                "level {} allows {} macroblocks per second; {width}x{height} at {rate} needs {}",
                l.name,
                l.max_mbps,
                fmt_ratio_2dp(
                    u128::from(fs) * u128::from(rate.num()),
                    u128::from(rate.den())
                )
            ),
        );
    }
    // High profile limits are 1.25 × the Baseline/Main values (Table A-1, cpbBrVclFactor).
    let factor = if profile == "high" { 1250 } else { 1000 };
    let max_br_kbps = l.max_br * factor / 1000;
    if u64::from(max_bitrate) > max_br_kbps {
        return fail(
            field,
            format!(
                "level {} {profile} allows {max_br_kbps} kbit/s; max_bitrate is {max_bitrate} kbit/s",
                l.name
            ),
        );
    }
    let max_cpb_kbit = l.max_cpb * factor / 1000;
    if u64::from(buffer) > max_cpb_kbit {
        return fail(
            field,
            format!(
                "level {} {profile} allows a {max_cpb_kbit} kbit VBV buffer; buffer is {buffer} kbit",
                l.name
            ),
        );
    }
    Ok(())
}

fn resolve_destinations(list: Vec<DestinationSection>) -> Result<Vec<DestinationPlan>, FieldError> {
    let mut out: Vec<DestinationPlan> = Vec::with_capacity(list.len());
    let mut primary: Option<usize> = None;
    for (i, d) in list.into_iter().enumerate() {
        let field = |n: &str| format!("destination[{i}].{n}");
        check_destination_url(&field("url"), &d.url)?;
        if let Some((j, _)) = out.iter().enumerate().find(|(_, o)| o.url == d.url) {
            return fail(
                field("url"),
                format!("{} is already destination[{j}]", redact_url(&d.url)),
            );
        }
        let role = match d.role {
            DestinationRole::Primary => Role::Primary,
            DestinationRole::Backup => Role::Backup,
        };
        if role == Role::Primary {
            if let Some(j) = primary {
                return fail(
                    field("role"),
                    format!(
                        "destination[{j}] is already the primary; there is at most one primary \
                         (make this one a backup)"
                    ),
                );
            }
            primary = Some(i);
        }
        let name = match d.name {
            Some(n) => {
                if !is_url_safe_name(&n, 32) {
                    return fail(
                        field("name"),
                        format!(
                            "\"{n}\" is not a destination name; use 1–32 characters from \
                             A-Z a-z 0-9 _ -"
                        ),
                    );
                }
                if out.iter().any(|o| o.name == n) {
                    return fail(
                        field("name"),
                        format!("destination name \"{n}\" is already used"),
                    );
                }
                n
            }
            None => {
                let stem = if role == Role::Primary {
                    "primary"
                } else {
                    "backup"
                };
                let mut n = stem.to_owned();
                let mut k = 2;
                while out.iter().any(|o| o.name == n) {
                    n = format!("{stem}{k}");
                    k += 1;
                }
                n
            }
        };
        out.push(DestinationPlan {
            name,
            url: d.url,
            role,
        });
    }
    if primary.is_none() {
        if let Some(j) = out.iter().position(|d| d.role == Role::Backup) {
            return fail(
                format!("destination[{j}].role"),
                "a backup destination needs a primary destination; make one of them role = \
                 \"primary\"",
            );
        }
    }
    Ok(out)
}

/// A publishing point URL: http(s), a host, a path ending in `.isml`, nothing after it.
fn check_destination_url(field: &str, raw: &str) -> Result<(), FieldError> {
    let shown = redact_url(raw);
    let url = match url::Url::parse(raw) {
        Ok(u) => u,
        Err(e) => return fail(field, format!("\"{shown}\" is not a URL ({e})")),
    };
    if url.scheme() != "http" && url.scheme() != "https" {
        return fail(
            field,
            format!(
                "scheme \"{}\" in {shown} is not supported; Smooth Streaming ingest uses http or \
                 https",
                url.scheme()
            ),
        );
    }
    if url.host_str().is_none_or(str::is_empty) {
        return fail(field, format!("{shown} has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return fail(
            field,
            format!(
                "{shown} has a query or fragment; the URL must end with the publishing point \
                 (….isml) because smoothcast appends /Streams(<id>)"
            ),
        );
    }
    let path = url.path();
    if path.to_ascii_lowercase().contains("/streams(") {
        return fail(
            field,
            format!(
                "{shown} names a stream; give the publishing point only (….isml), smoothcast \
                 appends /Streams(<id>) for each stream"
            ),
        );
    }
    if !path.ends_with(".isml") || path.len() <= ".isml".len() + 1 {
        return fail(
            field,
            format!("{shown} does not end with a publishing point (…/name.isml)"),
        );
    }
    Ok(())
}

fn resolve_push(
    p: Option<PushSection>,
    fragment_secs: (u64, u64),
    destinations: &[DestinationPlan],
    base: Option<&Path>,
) -> Result<PushOptions, FieldError> {
    // Multiples of the fragment are computed from the exact fraction, so 1.5 × 2.002 s shows
    // as 3.003 s rather than 3.0029999999999997 s.
    let frag_times = |k: f64| k * fragment_secs.0 as f64 / fragment_secs.1 as f64;
    let frag = frag_times(1.0);
    let p = p.unwrap_or(PushSection {
        mode: None,
        replay_window: None,
        send_eos: None,
        connect_timeout: None,
        send_timeout: None,
        max_backoff: None,
        ca_file: None,
        client_cert: None,
        client_key: None,
        stream_suffix: None,
        queue_fragments: None,
    });
    let mode = match p.mode.unwrap_or(PushModeName::Hot) {
        PushModeName::Hot => PushMode::Hot,
        PushModeName::Failover => PushMode::Failover,
    };
    if mode == PushMode::Failover && !destinations.iter().any(|d| d.role == Role::Backup) {
        return fail(
            "push.mode",
            "failover mode needs a backup destination to fail over to",
        );
    }
    let min_replay = frag_times(def::REPLAY_FRAGMENTS_MIN as f64);
    let replay_window_secs = p
        .replay_window
        .unwrap_or(def::REPLAY_WINDOW_SECS.max(min_replay));
    secs_in("push.replay_window", replay_window_secs, 3600.0)?;
    if replay_window_secs < min_replay {
        return fail(
            "push.replay_window",
            format!(
                "{replay_window_secs} s holds fewer than {} fragments of {} s; reconnects must \
                 resend the last {} fragments",
                def::REPLAY_FRAGMENTS_MIN,
                fmt_secs(fragment_secs),
                def::REPLAY_FRAGMENTS_MIN
            ),
        );
    }
    let connect_timeout_secs = p.connect_timeout.unwrap_or(def::CONNECT_TIMEOUT_SECS);
    secs_in("push.connect_timeout", connect_timeout_secs, 300.0)?;
    let send_timeout_secs = p
        .send_timeout
        .unwrap_or(frag_times(def::SEND_TIMEOUT_FRAGMENTS));
    secs_in("push.send_timeout", send_timeout_secs, 600.0)?;
    if send_timeout_secs < frag {
        return fail(
            "push.send_timeout",
            format!(
                "{send_timeout_secs} s is shorter than one fragment ({} s); a healthy connection \
                 would time out between fragments",
                fmt_secs(fragment_secs)
            ),
        );
    }
    let max_backoff_secs = p.max_backoff.unwrap_or(def::MAX_BACKOFF_SECS);
    secs_in("push.max_backoff", max_backoff_secs, 3600.0)?;
    let ca_file = p
        .ca_file
        .map(|s| resolve_path(base, &s, "push.ca_file"))
        .transpose()?;
    let client_cert = p
        .client_cert
        .map(|s| resolve_path(base, &s, "push.client_cert"))
        .transpose()?;
    let client_key = p
        .client_key
        .map(|s| resolve_path(base, &s, "push.client_key"))
        .transpose()?;
    match (&client_cert, &client_key) {
        (Some(_), None) => return fail(
            "push.client_key",
            "client_cert is set but client_key is missing; TLS client authentication needs both",
        ),
        (None, Some(_)) => return fail(
            "push.client_cert",
            "client_key is set but client_cert is missing; TLS client authentication needs both",
        ),
        _ => {}
    }
    if let Some(s) = &p.stream_suffix {
        if !is_url_safe_name(s, 16) {
            return fail(
                "push.stream_suffix",
                format!(
                    "\"{s}\" is not a stream id suffix; use 1–16 characters from A-Z a-z 0-9 _ -"
                ),
            );
        }
    }
    let queue_fragments = p.queue_fragments.unwrap_or(def::QUEUE_FRAGMENTS);
    if !(2..=1024).contains(&queue_fragments) {
        return fail(
            "push.queue_fragments",
            format!("{queue_fragments} is outside 2–1024 fragments"),
        );
    }
    Ok(PushOptions {
        mode,
        replay_window_secs,
        send_eos: p.send_eos.unwrap_or(def::SEND_EOS),
        connect_timeout_secs,
        send_timeout_secs,
        max_backoff_secs,
        ca_file,
        client_cert,
        client_key,
        stream_suffix: p.stream_suffix,
        box_id: None,
        queue_fragments,
    })
}

/// A positive, finite number of seconds no larger than `max`.
fn secs_in(field: &str, v: f64, max: f64) -> Result<(), FieldError> {
    if !v.is_finite() || v <= 0.0 || v > max {
        return fail(field, format!("{v} s is outside (0, {max}] seconds"));
    }
    Ok(())
}

/// A path from the profile; relative paths resolve against the profile's directory.
fn resolve_path(base: Option<&Path>, raw: &str, field: &str) -> Result<PathBuf, FieldError> {
    if raw.trim().is_empty() || raw.contains('\0') {
        return fail(field, "empty path");
    }
    let p = PathBuf::from(raw);
    Ok(match base {
        Some(b) if p.is_relative() => b.join(p),
        _ => p,
    })
}
