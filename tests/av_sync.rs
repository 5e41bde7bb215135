//! Synthetic A/V stays in sync: after 10 minutes of `--fast` media, every beep in the decoded
//! audio and the flash on the matching frame in the decoded video are at the same media time
//! within one AAC frame.

mod common;

use common::*;
use smoothcast::capture::synthetic::flash_region;
use smoothcast::time::{FrameGrid, FrameIndex, Rate};
use std::process::Command;

const PROFILE: &str = r#"
[channel]
name = "sync"
rate = "25"
fragment_duration = "2"

[timecode]
source = "fixed"
date = "2026-11-21"
start = "09:59:58:13"

[video]
input = "synthetic"
width = 320
height = 180

[audio]
input = "synthetic"
bitrate = 64
channels = 2
sample_rate = 48000

[[rung]]
name = "180p"
width = 320
height = 180
bitrate = 200
preset = "ultrafast"
bframes = 0
"#;

const TIMESCALE: u64 = 10_000_000;
const AAC_FRAME_TICKS: u64 = 1024 * TIMESCALE / 48_000; // 213 333

fn decode(args: &[&str]) -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error"])
        .args(args)
        .output()
        .expect("ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn beep_and_flash_stay_within_one_aac_frame_after_10_minutes() {
    let dir = tempfile::tempdir().unwrap();
    let profile = write_profile(dir.path(), "sync.toml", PROFILE);
    let archive = dir.path().join("out");
    smoothcast_ok(&[
        "run",
        profile.to_str().unwrap(),
        "--fast",
        "--duration",
        "600",
        "--no-push",
        "--archive",
        archive.to_str().unwrap(),
    ]);
    let video = archive.join("sync-180p.ismv");
    let audio = archive.join("sync-audio.isma");
    let v0 = parse_file(&video).fragments[0].moof.trafs[0]
        .tfxd
        .as_ref()
        .unwrap()
        .absolute_time;
    let a0 = parse_file(&audio).fragments[0].moof.trafs[0]
        .tfxd
        .as_ref()
        .unwrap()
        .absolute_time;
    let grid = FrameGrid::new(Rate::new(25, 1).unwrap(), TIMESCALE as u32);
    let n0 = grid.nearest_frame(smoothcast::time::MediaTime(v0)).0;

    // Video: mean luma of the flash square on every decoded frame.
    let (x, y, w, h) = flash_region(320, 180);
    let crop = format!("crop={w}:{h}:{x}:{y},format=gray");
    let luma = decode(&[
        "-i",
        video.to_str().unwrap(),
        "-vf",
        &crop,
        "-f",
        "rawvideo",
        "-",
    ]);
    let px = (w * h) as usize;
    let flashes: Vec<u64> = luma
        .chunks_exact(px)
        .enumerate()
        .filter(|(_, f)| f.iter().map(|&v| u64::from(v)).sum::<u64>() / px as u64 > 128)
        .map(|(i, _)| grid.time_of(FrameIndex(n0 + i as u64)).0)
        .collect();
    assert!(
        flashes.len() >= 595,
        "a flash every second: {}",
        flashes.len()
    );

    // Audio: onsets of the loud 1 kHz beep in the decoded PCM (mono mixdown).
    let pcm = decode(&[
        "-i",
        audio.to_str().unwrap(),
        "-ac",
        "1",
        "-f",
        "s16le",
        "-",
    ]);
    let samples: Vec<i16> = pcm
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    let mut beeps = Vec::new();
    let mut quiet_run = 0usize;
    for (i, s) in samples.iter().enumerate() {
        if s.unsigned_abs() > 8000 {
            if quiet_run > 2400 {
                beeps.push(a0 + i as u64 * TIMESCALE / 48_000);
            }
            quiet_run = 0;
        } else {
            quiet_run += 1;
        }
    }
    assert!(beeps.len() >= 595, "a beep every second: {}", beeps.len());

    // Each beep starts on its whole second; each flash is on the frame of that second.
    let mut checked = 0;
    for b in &beeps {
        let second = (b + TIMESCALE / 2) / TIMESCALE * TIMESCALE;
        assert!(
            b.abs_diff(second) <= AAC_FRAME_TICKS,
            "beep at {b} vs second {second}"
        );
        let f = flashes.iter().find(|f| f.abs_diff(second) < TIMESCALE / 2);
        let f = f.unwrap_or_else(|| panic!("no flash for the beep at {b}"));
        assert!(
            f.abs_diff(*b) <= AAC_FRAME_TICKS,
            "flash {f} vs beep {b}: more than one AAC frame apart"
        );
        checked += 1;
    }
    // The last minute is there too: sync holds at the end of the run, not just the start.
    assert!(beeps.last().unwrap() - beeps[0] >= 590 * TIMESCALE);
    assert!(checked >= 595);
}
