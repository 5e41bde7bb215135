//! Timecode sources end to end, through the whole channel (timecode → frame index → x264 /
//! AAC → PIFF → archive) on simulated clocks:
//!
//! - `ltc`: a file whose second audio channel carries SMPTE LTC (made with `LtcEncoder`)
//!   starts the timeline exactly where `fixed` with the same label starts it, the archive's
//!   fragment times are that label's, and the status says `ltc`, `locked`, with the label
//!   read and its offset from the channel's grid.
//! - `v4l2`: a capture device without buffer timecode (here: one that is not even there) falls
//!   back to the clock, and the status says so and why. Buffers that do carry driver timecode
//!   are tested on traces in `v4l2_timecode.rs` (no capture card here).

mod common;

use common::*;
use smoothcast::capture::loss::InputOptions;
use smoothcast::capture::timecode::{TimecodeKind, TimecodeState};
use smoothcast::channel::{self, RunOptions, RunSummary};
use smoothcast::time::ltc::LtcEncoder;
use smoothcast::time::{
    frame_index, parse_date, Clocks, FragmentGrid, FrameGrid, Rate, SimulatedClocks, Timecode,
};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const SR: u32 = 48_000;
/// 2024-03-01T09:59:50Z: the simulated UTC the runs start at (the date LTC labels are on).
const UTC_NANOS: u128 = 1_709_287_190_000_000_000;

fn rate25() -> Rate {
    Rate::new(25, 1).unwrap()
}

/// A stereo 48 kHz s16 WAV: channel 1 a 1 kHz tone, channel 2 LTC at 25 fps from `start`.
fn write_ltc_wav(path: &Path, start: &Timecode, secs: u64) {
    let rate = rate25();
    let mut enc = LtcEncoder::new(SR, rate);
    let mut ltc = Vec::new();
    let f0 = start.frames_since_midnight(rate).unwrap();
    for i in 0..secs * 25 {
        let label = Timecode::from_frames_since_midnight(f0 + i, rate, false);
        enc.encode_frame_i16(&label, 0, &mut ltc);
    }
    let mut pcm = Vec::with_capacity(ltc.len() * 4);
    for (i, &l) in ltc.iter().enumerate() {
        let tone = (8000.0 * (2.0 * std::f64::consts::PI * 1000.0 * i as f64 / f64::from(SR)).sin())
            as i16;
        pcm.extend_from_slice(&tone.to_le_bytes());
        pcm.extend_from_slice(&l.to_le_bytes());
    }
    let mut wav = Vec::new();
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + pcm.len() as u32).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&2u16.to_le_bytes()); // channels
    wav.extend_from_slice(&SR.to_le_bytes());
    wav.extend_from_slice(&(SR * 4).to_le_bytes());
    wav.extend_from_slice(&4u16.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&(pcm.len() as u32).to_le_bytes());
    wav.extend_from_slice(&pcm);
    std::fs::write(path, wav).unwrap();
}

fn profile(timecode: &str, video: &str, audio: &str) -> String {
    format!(
        r#"
[channel]
name = "tc"
rate = "25"
fragment_duration = "1"

[timecode]
{timecode}

[video]
{video}

[audio]
{audio}
bitrate = 64

[[rung]]
name = "180p"
width = 320
height = 180
bitrate = 300
preset = "ultrafast"
bframes = 0
threads = 1
"#
    )
}

fn run(
    text: &str,
    archive: &Path,
    inputs: InputOptions,
) -> (RunSummary, smoothcast::channel::ChannelStatus) {
    let plan = smoothcast::profile::from_toml(text, "timecode_sources.toml").unwrap();
    let clocks: Arc<dyn Clocks> = SimulatedClocks::new(UTC_NANOS);
    let handle = channel::start(
        &plan,
        RunOptions {
            fast: true,
            duration_secs: Some(2.0),
            archive: Some(archive.to_path_buf()),
            push: false,
            clocks,
            inputs,
            start_fragment: None,
        },
    )
    .unwrap();
    let monitor = handle.monitor();
    let summary = handle.wait(Duration::from_secs(5)).unwrap();
    (summary, monitor.status())
}

#[test]
fn ltc_on_a_file_channel_times_fragments_like_fixed_with_that_label_and_reports_locked() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("ltc.wav");
    let start = Timecode::parse("10:00:00:00").unwrap();
    write_ltc_wav(&wav, &start, 4);
    let audio = format!(
        "input = \"file\"\npath = \"{}\"\nchannels = 1\nchannel_map = [1]",
        wav.display()
    );
    let video = "input = \"synthetic\"";

    let ltc_dir = dir.path().join("ltc");
    let (ltc, status) = run(
        &profile("source = \"ltc\"\nchannel = 2", video, &audio),
        &ltc_dir,
        InputOptions::default(),
    );
    let fixed_dir = dir.path().join("fixed");
    let (fixed, _) = run(
        &profile(
            "source = \"fixed\"\nstart = \"10:00:00:00\"\ndate = \"2024-03-01\"",
            video,
            &audio,
        ),
        &fixed_dir,
        InputOptions::default(),
    );

    // The label at the file's first sample, on the simulated clock's UTC date, through the
    // same timecode → frame index mapping as `fixed`.
    let rate = rate25();
    let n = frame_index(parse_date("2024-03-01").unwrap(), &start, rate).unwrap();
    let frags = FragmentGrid { gop: 25 };
    assert_eq!(ltc.first_fragment, frags.fragment_of(n));
    assert_eq!(ltc.first_fragment, fixed.first_fragment);
    let video_time = FrameGrid::new(rate, 10_000_000).time_of(n).0;
    for (a, b) in ltc.tracks.iter().zip(&fixed.tracks) {
        assert_eq!(a.first_time, b.first_time, "track {}", a.label);
        assert_eq!(a.fragments, b.fragments, "track {}", a.label);
        assert_eq!(a.last_end, b.last_end, "track {}", a.label);
    }
    assert_eq!(ltc.tracks[0].first_time, Some(video_time));
    assert_eq!(ltc.tracks[0].fragments, 2);

    // The archive says the same, and decodes.
    for f in archive_files(&ltc_dir) {
        assert_ffmpeg_decodes_cleanly(&f);
        let parsed = parse_file(&f);
        let first = parsed.fragments.first().expect("fragments");
        let traf = first.moof.trafs.first().expect("a traf");
        let tfxd = traf.tfxd.as_ref().expect("tfxd");
        if f.extension().is_some_and(|e| e == "ismv") {
            assert_eq!(tfxd.absolute_time, video_time, "{}", f.display());
        }
        assert_eq!(u64::from(first.moof.sequence), ltc.first_fragment);
    }

    // Status: ltc, locked, the last label read, and where the timeline started.
    let tc = status.capture.timecode.expect("timecode health");
    assert_eq!(tc.source, TimecodeKind::Ltc);
    assert_eq!(tc.state, TimecodeState::Locked, "{tc:?}");
    assert_eq!(tc.start_index, Some(n));
    assert!(tc.frames >= 40, "{tc:?}");
    let last = tc.last_timecode.expect("a label was read");
    assert!(
        last.frames_since_midnight(rate).unwrap()
            >= start.frames_since_midnight(rate).unwrap() + 40,
        "{last}"
    );
    // The file's first sample sits on the audio grid at the AAC encoder's input start, a
    // frame or so after the first video frame: LTC and the grid agree to within that.
    let offset = tc.offset_frames.expect("offset");
    assert!(offset.abs() <= 2, "LTC vs grid: {offset} frames");
    assert_eq!(tc.rejected, 0);
    assert_eq!(tc.discontinuities, 0);
    assert!(tc.fallback_reason.is_none());
}

#[test]
fn v4l2_timecode_without_buffer_timecode_falls_back_to_the_clock_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let map = dir.path().join("hw.toml");
    std::fs::write(
        &map,
        "[box]\nmodel = \"test\"\n\n[input.cam.video]\ndevice = \"/dev/smoothcast-test-no-such-video\"\n",
    )
    .unwrap();
    let (summary, status) = run(
        &profile(
            "source = \"v4l2\"",
            "input = \"cam\"",
            "input = \"synthetic\"\nchannels = 1\nchannel_map = [1]",
        ),
        &dir.path().join("out"),
        InputOptions {
            hw_map: Some(map),
            ..InputOptions::default()
        },
    );
    // The clock's frame at the simulated UTC, rounded up to the next fragment boundary.
    let rate = rate25();
    let now = FrameGrid::new(rate, 10_000_000).frame_at_unix_nanos(UTC_NANOS);
    let frags = FragmentGrid { gop: 25 };
    assert_eq!(
        summary.first_fragment,
        frags.fragment_of(frags.next_boundary(now))
    );
    let tc = status.capture.timecode.expect("timecode health");
    assert_eq!(tc.source, TimecodeKind::V4l2);
    assert_eq!(tc.state, TimecodeState::Fallback);
    let reason = tc.fallback_reason.unwrap_or_default();
    assert!(reason.contains("no driver timecode"), "{reason}");
    assert_eq!(tc.start_index, Some(now));
    // The missing device ran on fills, counted as such.
    assert!(status.capture.inputs.video.losses >= 1);
    assert!(status.capture.inputs.video.slate + status.capture.inputs.video.black > 0);
}
