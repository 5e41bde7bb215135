//! The encoding spine end to end: profile → synthetic source → timecode-locked x264 ladder +
//! AAC-LC → live PIFF archive, checked with the project's parser and with FFmpeg.

mod common;

use common::*;
use smoothcast::piff::parse::ParsedStream;
use smoothcast::piff::SAMPLE_FLAGS_SYNC;
use smoothcast::time::{AudioGrid, FragmentGrid, FrameGrid, Rate};
use std::collections::BTreeMap;
use std::path::Path;

/// 2001-09-09 in 10 MHz ticks: any epoch-based time is far above it, any zero-based far below.
const EPOCH_BASED_FLOOR: u64 = 1_000_000_000 * 10_000_000;

/// (mfhd sequence, tfxd time, tfxd duration, per-sample (duration, flags)).
type FragmentRow = (u32, u64, u64, Vec<(u32, u32)>);
/// Archive file name and its (sequence, time, duration) rows.
type Timeline = (String, Vec<(u32, u64, u64)>);

fn fragments(p: &ParsedStream) -> Vec<FragmentRow> {
    p.fragments
        .iter()
        .map(|f| {
            let traf = &f.moof.trafs[0];
            let tfxd = traf.tfxd.as_ref().expect("every fragment carries tfxd");
            (
                f.moof.sequence,
                tfxd.absolute_time,
                tfxd.duration,
                traf.samples.iter().map(|s| (s.duration, s.flags)).collect(),
            )
        })
        .collect()
}

#[test]
fn demo_archive_60s_is_on_the_grid_and_decodes_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("out");
    let started = std::time::Instant::now();
    smoothcast_ok(&[
        "run",
        "profiles/demo.toml",
        "--fast",
        "--duration",
        "60",
        "--no-push",
        "--archive",
        archive.to_str().unwrap(),
    ]);
    let wall = started.elapsed().as_secs_f64();
    eprintln!("60 s of demo media encoded in {wall:.1} s");

    let plan = smoothcast::profile::load(&repo().join("profiles/demo.toml")).unwrap();
    let grid = FrameGrid::new(plan.rate, plan.timescale);
    let frags = plan.fragments;
    let audio = AudioGrid::aac(plan.audio.sample_rate, plan.timescale);
    let files = archive_files(&archive);
    assert_eq!(
        files.len(),
        plan.streams.len(),
        "one archive file per stream: {files:?}"
    );

    let mut video_starts: BTreeMap<String, Vec<(u32, u64)>> = BTreeMap::new();
    let mut audio_seen = false;
    for file in &files {
        assert_ffmpeg_decodes_cleanly(file);
        let parsed = parse_file(file);
        let is_audio = file.extension().is_some_and(|e| e == "isma");
        let fr = fragments(&parsed);
        let expected_fragments = (60 * plan.rate.num() as u64 / plan.rate.den() as u64) / frags.gop;
        assert_eq!(fr.len() as u64, expected_fragments, "{}", file.display());
        for w in fr.windows(2) {
            let (a, b) = (&w[0], &w[1]);
            assert_eq!(
                b.0,
                a.0 + 1,
                "mfhd sequence numbers are consecutive fragment indices"
            );
            assert_eq!(
                b.1,
                a.1 + a.2,
                "tfxd continuity t(k+1) = t(k) + d(k) in {}",
                file.display()
            );
        }
        for (seq, time, dur, samples) in &fr {
            assert!(
                *time > EPOCH_BASED_FLOOR,
                "media time is epoch based, got {time}"
            );
            let sum: u64 = samples.iter().map(|s| u64::from(s.0)).sum();
            assert_eq!(sum, *dur, "tfxd duration equals the sum of trun durations");
            let k = u64::from(*seq);
            if is_audio {
                let j = audio.fragment_start(k, &grid, &frags);
                assert_eq!(
                    *time,
                    audio.time_of_frame(j).0,
                    "audio fragment {k} starts on the audio grid"
                );
                let next = audio.fragment_start(k + 1, &grid, &frags);
                assert_eq!(
                    samples.len() as u64,
                    next - j,
                    "audio fragment {k} holds its AAC frames"
                );
            } else {
                assert_eq!(
                    *time,
                    grid.time_of(frags.first_frame(k)).0,
                    "video fragment {k} starts at t(kG)"
                );
                assert_eq!(samples.len() as u64, frags.gop, "G frames per fragment");
                assert_eq!(
                    samples[0].1, SAMPLE_FLAGS_SYNC,
                    "fragment {k} starts with an IDR"
                );
                assert!(
                    samples[1..].iter().all(|s| s.1 != SAMPLE_FLAGS_SYNC),
                    "IDR only at every G-th frame (scenecut off) in fragment {k}"
                );
            }
        }
        if is_audio {
            audio_seen = true;
        } else {
            assert_eq!(ffprobe_frame_count(file), 60 * 30, "every frame decodes");
            video_starts.insert(
                file.display().to_string(),
                fr.iter().map(|f| (f.0, f.1)).collect(),
            );
        }
    }
    assert!(audio_seen, "an audio archive was written");
    let mut it = video_starts.values();
    let first = it.next().expect("video rungs");
    assert!(
        it.all(|v| v == first),
        "identical fragment start times across all rungs"
    );
}

fn fixed_profile(start: &str) -> String {
    format!(
        r#"
[channel]
name = "fixed"
rate = "30000/1001"
fragment_duration = "2.002"

[timecode]
source = "fixed"
date = "2026-11-21"
start = "{start}"

[video]
input = "synthetic"
width = 320
height = 180

[audio]
input = "synthetic"
bitrate = 96
channels = 2
sample_rate = 48000

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

fn run_fixed(dir: &Path, name: &str, start: &str, secs: &str) -> Vec<Timeline> {
    let profile = write_profile(dir, &format!("{name}.toml"), &fixed_profile(start));
    let archive = dir.join(name);
    smoothcast_ok(&[
        "run",
        profile.to_str().unwrap(),
        "--fast",
        "--duration",
        secs,
        "--no-push",
        "--archive",
        archive.to_str().unwrap(),
    ]);
    archive_files(&archive)
        .iter()
        .map(|f| {
            let p = parse_file(f);
            (
                f.file_name().unwrap().to_string_lossy().into_owned(),
                fragments(&p)
                    .into_iter()
                    .map(|(s, t, d, _)| (s, t, d))
                    .collect(),
            )
        })
        .collect()
}

#[test]
fn fixed_timecode_runs_started_at_different_frames_share_identical_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    // Drop-frame timecode; the second run starts 3 s 12 frames later, mid-fragment.
    let a = run_fixed(dir.path(), "a", "10:00:00;00", "12");
    let b = run_fixed(dir.path(), "b", "10:00:03;12", "8");
    assert_eq!(a.len(), b.len());
    let mut shared_total = 0;
    for ((fa, ta), (fb, tb)) in a.iter().zip(&b) {
        assert_eq!(fa, fb);
        let shared: Vec<_> = tb
            .iter()
            .filter(|f| ta.iter().any(|g| g.0 == f.0))
            .collect();
        assert!(
            shared.len() >= 3,
            "{fa}: runs share fragments: {ta:?} / {tb:?}"
        );
        for f in shared {
            let g = ta.iter().find(|g| g.0 == f.0).unwrap();
            assert_eq!(
                f, g,
                "{fa}: fragment {} identical (mfhd, tfxd time, duration)",
                f.0
            );
            shared_total += 1;
        }
        // The later run starts at a fragment boundary, never mid-GOP.
        let rate = Rate::new(30000, 1001).unwrap();
        let grid = FrameGrid::new(rate, 10_000_000);
        let frags = FragmentGrid { gop: 60 };
        if fa.ends_with(".ismv") {
            assert_eq!(
                tb[0].1,
                grid.time_of(frags.first_frame(u64::from(tb[0].0))).0
            );
        }
    }
    assert!(shared_total >= 6);
}
