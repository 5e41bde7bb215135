//! Input loss end to end: a video and an audio source that stop mid-GOP, stay away for 4 s and
//! come back, run through the whole channel (loss policy → x264 / AAC → PIFF → archive) on
//! simulated clocks. The archive must show continuous fragment times, the freeze → black →
//! slate fill, silence, and live pictures again on the right slots.

mod common;

use common::*;
use smoothcast::capture::loss::{
    self, AudioFactory, AudioStart, GridStart, InputOptions, LossPolicy, VideoFactory,
};
use smoothcast::capture::synthetic::{SyntheticAudio, SyntheticVideo};
use smoothcast::capture::{AudioBlock, AudioSource, CaptureError, Pacing, VideoFrame, VideoSource};
use smoothcast::channel::{self, RunOptions};
use smoothcast::piff::parse::ParsedStream;
use smoothcast::time::{AudioGrid, Clocks, FrameIndex, SimulatedClocks};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PROFILE: &str = r#"
[channel]
name = "lossy"
rate = "25"
fragment_duration = "2"      # GOP 50

[timecode]
source = "fixed"
start = "10:00:00:00"
date = "2024-03-01"

[video]
input = "synthetic"          # replaced by the scripted source below

[audio]
input = "synthetic"
channels = 1
channel_map = [1]
bitrate = 64

[[rung]]
name = "180p"
width = 320
height = 180
bitrate = 600
preset = "ultrafast"
bframes = 0
"#;

const W: u32 = 320;
const H: u32 = 180;
/// The input is lost 67 frames after the first slot: frame 17 of the second GOP.
const LOSS_AT: u64 = 67;
/// It is away for 4 s (100 frames at 25 fps).
const AWAY: u64 = 100;

/// The script, relative to the first slot the channel asks for.
#[derive(Default)]
struct Script {
    first: Option<u64>,
}

impl Script {
    fn outage(&self) -> (u64, u64) {
        let f = self.first.unwrap_or(0);
        (f + LOSS_AT, f + LOSS_AT + AWAY)
    }
}

/// Live synthetic pictures until the outage, then "signal lost".
struct ScriptedVideo {
    pattern: SyntheticVideo,
    lost_at: Option<u64>,
}

impl VideoSource for ScriptedVideo {
    fn next_frame(&mut self) -> Result<VideoFrame, CaptureError> {
        let f = self.pattern.next_frame()?;
        if self.lost_at.is_some_and(|l| f.index.0 >= l) {
            return Err(CaptureError::Read {
                input: "scripted".into(),
                reason: "signal lost".into(),
            });
        }
        Ok(f)
    }
    fn size(&self) -> (u32, u32) {
        (W, H)
    }
}

/// Live tone until the outage, then "device unplugged".
struct ScriptedAudio {
    tone: SyntheticAudio,
    next: u64,
    lost_at: Option<u64>,
}

impl AudioSource for ScriptedAudio {
    fn next_block(&mut self, max_frames: usize) -> Result<AudioBlock, CaptureError> {
        let room = match self.lost_at {
            Some(l) if self.next >= l => {
                return Err(CaptureError::Read {
                    input: "scripted".into(),
                    reason: "device unplugged".into(),
                })
            }
            Some(l) => usize::try_from(l - self.next).unwrap_or(max_frames),
            None => max_frames,
        };
        let b = self.tone.next_block(max_frames.min(room))?;
        self.next = b.first.0 + b.frames() as u64;
        Ok(b)
    }
    fn channels(&self) -> u16 {
        self.tone.channels()
    }
    fn sample_rate(&self) -> u32 {
        self.tone.sample_rate()
    }
}

fn continuous(p: &ParsedStream, what: &str) -> Vec<(u64, u64)> {
    let rows: Vec<(u32, u64, u64)> = p
        .fragments
        .iter()
        .map(|f| {
            let t = f.moof.trafs[0].tfxd.as_ref().expect("tfxd");
            (f.moof.sequence, t.absolute_time, t.duration)
        })
        .collect();
    for w in rows.windows(2) {
        assert_eq!(w[1].0, w[0].0 + 1, "{what}: sequence numbers continue");
        assert_eq!(
            w[1].1,
            w[0].1 + w[0].2,
            "{what}: fragment {} starts where {} ends (no gap, no jump)",
            w[1].0,
            w[0].0
        );
    }
    rows.iter().map(|r| (r.1, r.2)).collect()
}

fn decode(file: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(file)
        .args(args)
        .arg("-")
        .output()
        .expect("ffmpeg is installed");
    assert!(
        out.status.success(),
        "ffmpeg {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn mean(v: &[u8]) -> f64 {
    v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len().max(1) as f64
}

fn mean_abs_diff(a: &[u8], b: &[u8]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from(x.abs_diff(*y)))
        .sum::<f64>()
        / a.len().max(1) as f64
}

#[test]
fn input_loss_mid_gop_keeps_timeline() {
    let dir = tempfile::tempdir().unwrap();
    let plan = smoothcast::profile::from_toml(PROFILE, "input_loss.toml").unwrap();
    let rate = plan.rate;
    let agrid = AudioGrid::aac(plan.audio.sample_rate, plan.timescale);
    let script = Arc::new(Mutex::new(Script::default()));

    let video = {
        let script = script.clone();
        VideoFactory::new(move |at: GridStart| {
            let mut s = script.lock().unwrap();
            s.first.get_or_insert(at.slot.0);
            let (lost, back) = s.outage();
            if (lost..back).contains(&at.slot.0) {
                return Err(CaptureError::Open {
                    input: "scripted".into(),
                    reason: "no such device".into(),
                });
            }
            Ok(Box::new(ScriptedVideo {
                pattern: SyntheticVideo::new(W, H, rate, at.slot, Pacing::Fast),
                lost_at: (at.slot.0 < lost).then_some(lost),
            }) as Box<dyn VideoSource>)
        })
    };
    let audio = {
        let script = script.clone();
        VideoOutageToAudio::factory(script, agrid, rate)
    };
    let policy = LossPolicy {
        repeat_for: Duration::from_millis(500),
        black_for: Duration::from_secs(1),
        slate: None,
        no_signal_after: Duration::from_millis(500),
        reopen_initial: Duration::from_millis(250),
        reopen_max: Duration::from_millis(500),
    };
    let clocks: Arc<dyn Clocks> = SimulatedClocks::new(1_709_290_000_000_000_000);
    let handle = channel::start(
        &plan,
        RunOptions {
            fast: true,
            duration_secs: Some(10.0),
            archive: Some(dir.path().to_path_buf()),
            push: false,
            clocks,
            inputs: InputOptions {
                video: Some(video),
                audio: Some(audio),
                loss: Some(policy),
                hw_map: None,
            },
            start_fragment: None,
        },
    )
    .unwrap();
    let monitor = handle.monitor();
    let summary = handle.wait(Duration::from_secs(5)).unwrap();
    let first = script
        .lock()
        .unwrap()
        .first
        .expect("the channel opened the source");
    assert_eq!(first, summary.first_fragment * plan.fragments.gop);

    // Counters: one loss; 0.5 s of freeze (13 slots of 40 ms start before 0.5 s), 1 s of
    // black, then slate until the first reopen attempt after the device is back. Attempts run
    // in grid time: 0.25 s after the loss, then every 0.5 s (capped backoff): slot 7 + 13k;
    // the first at or after slot 100 of the outage is 111.
    let resume = LOSS_AT + 111;
    let inputs = monitor.inputs();
    let v = inputs.video;
    assert_eq!(v.losses, 1);
    assert_eq!((v.repeated, v.black, v.slate), (13, 25, 73));
    // Live: before the loss and after the return, plus slot 250 that the capture thread
    // pulls before it sees the run is over.
    assert_eq!(v.live, 250 - 111 + 1);
    assert!(!v.lost);
    assert_eq!(inputs.audio.losses, 1);
    assert!(inputs.audio.silence > 4 * 48_000);

    // The archive: continuous fragment times on both tracks, on the grid of the first slot.
    let video_stream = plan
        .streams
        .iter()
        .find(|s| s.track_ids == [1])
        .expect("video stream");
    let audio_stream = plan
        .streams
        .iter()
        .find(|s| s.track_ids == [2])
        .expect("audio stream");
    let vfile = dir.path().join(format!("{}.ismv", video_stream.id));
    let afile = dir.path().join(format!("{}.isma", audio_stream.id));
    let vrows = continuous(&parse_file(&vfile), "video");
    assert_eq!(vrows.len(), 5);
    let grid = smoothcast::time::FrameGrid::new(rate, plan.timescale);
    assert_eq!(vrows[0].0, grid.time_of(FrameIndex(first)).0);
    let arows = continuous(&parse_file(&afile), "audio");
    assert!(arows.len() >= 5);

    // The pictures, decoded by FFmpeg: live, frozen, black, slate, live again — the last
    // ones showing the pattern of their own slot (burnt-in timecode), not a replay.
    assert_ffmpeg_decodes_cleanly(&vfile);
    // Decoded as it was encoded (no conversion): the luma plane of each I420 picture.
    let yuv = decode(&vfile, &["-f", "rawvideo", "-pix_fmt", "yuv420p"]);
    let size = (W * H) as usize;
    let frame = smoothcast::capture::i420_size(W, H);
    assert_eq!(yuv.len(), 250 * frame, "one picture per slot");
    let pic = |i: u64| &yuv[i as usize * frame..i as usize * frame + size];
    let slate_mean = mean(&loss::builtin_slate(W, H)[..size]);
    let pattern = SyntheticVideo::new(W, H, rate, FrameIndex(first), Pacing::Fast);
    let rendered = |i: u64| {
        let mut buf = vec![0u8; frame];
        pattern.render(FrameIndex(first + i), &mut buf);
        buf.truncate(size);
        buf
    };
    // The burnt-in timecode box changes every frame: comparing there tells slots apart.
    let (tx, ty, tw, th) = smoothcast::capture::synthetic::text_region(W, H);
    let text = |p: &[u8]| -> Vec<u8> {
        (ty..ty + th)
            .flat_map(|y| p[(y * W + tx) as usize..(y * W + tx + tw) as usize].to_vec())
            .collect()
    };
    let shows_its_own_slot = |i: u64| {
        let got = text(pic(i));
        let own = mean_abs_diff(&got, &text(&rendered(i)));
        let prev = mean_abs_diff(&got, &text(&rendered(i - 1)));
        let next = mean_abs_diff(&got, &text(&rendered(i + 1)));
        own < 2.0 && own < prev && own < next
    };
    for i in 1..LOSS_AT {
        assert!(
            shows_its_own_slot(i),
            "slot {i} is the live pattern of slot {i}"
        );
    }
    let frozen = text(pic(LOSS_AT - 1));
    for i in LOSS_AT..LOSS_AT + 13 {
        assert!(
            mean_abs_diff(&text(pic(i)), &frozen) < 1.0,
            "slot {i} repeats the last live picture"
        );
    }
    for i in LOSS_AT + 13..LOSS_AT + 38 {
        assert!((mean(pic(i)) - 16.0).abs() < 2.0, "slot {i} is black");
    }
    for i in LOSS_AT + 38..resume {
        assert!(
            (mean(pic(i)) - slate_mean).abs() < 2.0,
            "slot {i} is the slate ({} vs {slate_mean})",
            mean(pic(i))
        );
    }
    for i in resume..249 {
        assert!(
            shows_its_own_slot(i),
            "slot {i} is live again with the pattern of slot {i}: no replay, no jump"
        );
    }

    // The sound: tone, silence while unplugged, tone again (0.3 s margins absorb AAC delay).
    let pcm = decode(&afile, &["-f", "s16le", "-ac", "1", "-ar", "48000"]);
    let samples: Vec<i16> = pcm
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    // Decoded sample 0 is the first AAC frame of the first audio fragment.
    let a0 = agrid.fragment_start(summary.first_fragment, &grid, &plan.fragments) * 1024;
    let at = |frame: u64, offset_ms: i64| {
        let s = agrid.sample_at_frame(FrameIndex(first + frame), rate).0 as i64 + offset_ms * 48
            - a0 as i64;
        usize::try_from(s.max(0)).unwrap_or(0)
    };
    let rms = |from: usize, to: usize| {
        let w = &samples[from.min(samples.len())..to.min(samples.len())];
        (w.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>() / w.len().max(1) as f64).sqrt()
    };
    let before = rms(at(10, 0), at(LOSS_AT, -300));
    let during = rms(at(LOSS_AT, 300), at(LOSS_AT + AWAY, -300));
    let after = rms(at(LOSS_AT + AWAY + 40, 0), at(240, 0));
    assert!(before > 300.0, "tone before the loss (rms {before:.0})");
    assert!(during < 20.0, "silence while lost (rms {during:.0})");
    assert!(after > 300.0, "tone after the return (rms {after:.0})");
}

/// The audio side of the script: the same outage, in samples.
struct VideoOutageToAudio;

impl VideoOutageToAudio {
    fn factory(
        script: Arc<Mutex<Script>>,
        grid: AudioGrid,
        rate: smoothcast::time::Rate,
    ) -> AudioFactory {
        AudioFactory::new(move |at: AudioStart| {
            let s = script.lock().unwrap();
            let (lost, back) = s.outage();
            let lost_s = grid.sample_at_frame(FrameIndex(lost), rate).0;
            let back_s = grid.sample_at_frame(FrameIndex(back), rate).0;
            if (lost_s..back_s).contains(&at.sample.0) {
                return Err(CaptureError::Open {
                    input: "scripted".into(),
                    reason: "no such device".into(),
                });
            }
            Ok(Box::new(ScriptedAudio {
                tone: SyntheticAudio::new(grid.sample_rate, 1, at.sample, Pacing::Fast),
                next: at.sample.0,
                lost_at: (at.sample.0 < lost_s).then_some(lost_s),
            }) as Box<dyn AudioSource>)
        })
    }
}
