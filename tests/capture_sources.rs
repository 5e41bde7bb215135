//! Capture sources: the synthetic pattern and tone, real-time pacing on simulated clocks, and
//! file inputs decoded with FFmpeg, checked against the `ffmpeg` CLI.

use smoothcast::capture::file::{open_video, FileAudio, FileVideo};
use smoothcast::capture::synthetic::{
    beep_len, beep_onsets, flash_region, is_flash_frame, text_region, SyntheticAudio,
    SyntheticVideo, BEEP_DBFS, TONE_DBFS,
};
use smoothcast::capture::y4m::Y4mVideo;
use smoothcast::capture::{
    i420_size, AudioSource, CaptureError, FrameOrigin, Pacing, VideoFrame, VideoSource,
};
use smoothcast::time::{Clocks, FrameIndex, Rate, SampleIndex, SimulatedClocks};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

fn rate(num: u32, den: u32) -> Rate {
    Rate::new(num, den).expect("non-zero rate")
}

/// A frame index around 2023-11-14 (epoch-scale, like a live channel's).
fn epoch_frame(r: Rate) -> FrameIndex {
    FrameIndex(1_700_000_000u64 * u64::from(r.num()) / u64::from(r.den()))
}

fn render(src: &SyntheticVideo, n: FrameIndex, w: u32, h: u32) -> Vec<u8> {
    let mut buf = vec![0; i420_size(w, h)];
    src.render(n, &mut buf);
    buf
}

/// Luma values of a rectangle of a tightly packed I420 picture.
fn luma_rect(pic: &[u8], width: u32, (x, y, w, h): (u32, u32, u32, u32)) -> Vec<u8> {
    (y..y + h)
        .flat_map(|r| {
            let start = (r * width + x) as usize;
            pic[start..start + w as usize].iter().copied()
        })
        .collect()
}

#[test]
fn synthetic_video_is_identical_across_instances_and_differs_between_neighbours() {
    let r = rate(30000, 1001);
    let (w, h) = (640, 360);
    let a = SyntheticVideo::new(w, h, r, FrameIndex(0), Pacing::Fast);
    let b = SyntheticVideo::new(w, h, r, FrameIndex(12345), Pacing::Fast);
    let n = epoch_frame(r);
    let pa = render(&a, n, w, h);
    assert_eq!(pa, render(&b, n, w, h));
    assert_ne!(pa, render(&a, FrameIndex(n.0 + 1), w, h));
    assert_ne!(pa, render(&a, FrameIndex(n.0 - 1), w, h));

    // The source yields start, start+1, … as live frames whose pixels are render(n).
    let mut src = SyntheticVideo::new(w, h, r, n, Pacing::Fast);
    assert_eq!(src.size(), (w, h));
    for k in 0..3 {
        let f = src.next_frame().expect("synthetic frames never fail");
        assert_eq!(f.index, FrameIndex(n.0 + k));
        assert_eq!((f.width, f.height, f.origin), (w, h, FrameOrigin::Live));
        assert_eq!(*f.data, render(&a, f.index, w, h));
    }
}

#[test]
fn synthetic_video_reuses_buffers_the_consumer_has_released() {
    let r = rate(25, 1);
    let mut src = SyntheticVideo::new(320, 180, r, FrameIndex(0), Pacing::Fast);
    let first = src.next_frame().unwrap();
    let first_ptr = Arc::as_ptr(&first.data);
    drop(first);
    let second = src.next_frame().unwrap();
    assert_eq!(
        Arc::as_ptr(&second.data),
        first_ptr,
        "released buffer reused"
    );
    // Held frames are never overwritten.
    let held: Vec<VideoFrame> = (0..20).map(|_| src.next_frame().unwrap()).collect();
    let check = SyntheticVideo::new(320, 180, r, FrameIndex(0), Pacing::Fast);
    for f in &held {
        assert_eq!(*f.data, render(&check, f.index, 320, 180));
    }
}

#[test]
fn flash_is_on_the_first_frame_of_every_whole_second() {
    for r in [rate(25, 1), rate(30, 1), rate(30000, 1001)] {
        let n0 = epoch_frame(r);
        // Over 1001 s (a whole number of frames at every rate here) exactly one flash per second,
        // and each flash frame is the first whose time reaches the next whole second.
        let frames = r.whole_frames_in(1001, 1).unwrap();
        let mut flashes = 0;
        for n in n0.0..n0.0 + frames {
            let sec = |i: u64| u128::from(i) * u128::from(r.den()) / u128::from(r.num());
            let expected = sec(n) != sec(n - 1);
            assert_eq!(
                is_flash_frame(FrameIndex(n), r),
                expected,
                "rate {r} frame {n}"
            );
            flashes += u64::from(expected);
        }
        assert_eq!(flashes, 1001, "rate {r}");

        // The picture carries it: Y=235 in the square on flash frames, 16 otherwise.
        let (w, h) = (320, 180);
        let src = SyntheticVideo::new(w, h, r, n0, Pacing::Fast);
        let region = flash_region(w, h);
        assert_eq!((region.0 + region.2, region.1), (w, 0), "top-right corner");
        assert!(region.2 >= h / 8 - 1 && region.2 <= h / 8);
        let flash = (n0.0..)
            .find(|&n| is_flash_frame(FrameIndex(n), r))
            .unwrap();
        for (n, y) in [(flash, 235), (flash + 1, 16), (flash - 1, 16)] {
            let pic = render(&src, FrameIndex(n), w, h);
            assert!(
                luma_rect(&pic, w, region).iter().all(|&v| v == y),
                "rate {r} frame {n}"
            );
        }
    }
}

#[test]
fn every_supported_size_renders() {
    let r = rate(30000, 1001);
    let n = epoch_frame(r);
    for (w, h) in [
        (320, 180),
        (640, 360),
        (1280, 720),
        (1920, 1080),
        (321, 181),
        (16, 16),
        (2, 2),
        (1, 1),
        (0, 0),
    ] {
        let src = SyntheticVideo::new(w, h, r, n, Pacing::Fast);
        let pic = render(&src, n, w, h);
        assert_eq!(pic.len(), i420_size(w, h));
        if w >= 320 {
            // Limited range throughout (PLUGE's −4% bar is the only value below 16).
            assert!(pic.iter().all(|&v| (7..=240).contains(&v)), "{w}x{h}");
            let (tx, ty, tw, th) = text_region(w, h);
            assert!(tx + tw <= w && ty + th <= h, "text box inside {w}x{h}");
        }
    }
}

#[test]
fn burnt_in_text_changes_with_the_frame_index() {
    let r = rate(25, 1);
    for (w, h) in [(320, 180), (1920, 1080)] {
        let src = SyntheticVideo::new(w, h, r, FrameIndex(0), Pacing::Fast);
        let region = text_region(w, h);
        let n = epoch_frame(r);
        let text = |n: u64| luma_rect(&render(&src, FrameIndex(n), w, h), w, region);
        let t0 = text(n.0);
        assert_ne!(t0, text(n.0 + 1), "{w}x{h}");
        assert_ne!(t0, text(n.0 + 25), "{w}x{h}");
        // White glyph pixels on a black box.
        assert!(t0.contains(&235) && t0.contains(&16));
        assert!(t0.iter().all(|&v| v == 235 || v == 16));
        // One day later the time of day is the same, only the index digits differ.
        let day = text(n.0 + 86_400 * 25);
        let (_, _, tw, th) = region;
        let half = (tw * th / 2) as usize;
        assert_eq!(t0[..half], day[..half], "same HH:MM:SS:FF line, {w}x{h}");
        assert_ne!(t0[half..], day[half..], "different index line, {w}x{h}");
    }
}

fn ffmpeg(args: &[&str]) -> std::process::Output {
    Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg CLI runs")
}

fn check_ok(out: &std::process::Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Decodes a file's video to raw I420 pictures with the ffmpeg CLI.
fn decode_raw(path: &Path, w: u32, h: u32) -> Vec<Vec<u8>> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-f", "rawvideo", "-pix_fmt", "yuv420p", "-"])
        .output()
        .expect("ffmpeg CLI runs");
    check_ok(&out, "decode to raw");
    out.stdout
        .chunks(i420_size(w, h))
        .map(<[u8]>::to_vec)
        .collect()
}

#[test]
fn synthetic_video_encodes_cleanly_through_the_ffmpeg_cli() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bars.mp4");
    let (w, h, r) = (640u32, 360u32, rate(25, 1));
    let size = format!("{w}x{h}");
    let mut child = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-y", "-v", "error"])
        .args([
            "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", &size, "-r", "25",
        ])
        .args([
            "-i",
            "-",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-qp",
            "10",
        ])
        .arg(&file)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ffmpeg CLI runs");
    let n0 = (0..)
        .map(|k| FrameIndex(epoch_frame(r).0 + k))
        .find(|&n| is_flash_frame(n, r));
    let n0 = n0.unwrap();
    let mut src = SyntheticVideo::new(w, h, r, n0, Pacing::Fast);
    {
        let mut stdin = child.stdin.take().unwrap();
        for _ in 0..75 {
            stdin.write_all(&src.next_frame().unwrap().data).unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    check_ok(&out, "encode raw I420");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let check = ffmpeg(&[
        "-v",
        "error",
        "-i",
        file.to_str().unwrap(),
        "-f",
        "null",
        "-",
    ]);
    check_ok(&check, "decode check");
    assert!(
        check.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    // Decoded back, the layout is where we put it: the flash on frames 0, 25, 50, black on
    // the others, and the 75% yellow bar's chroma.
    let pics = decode_raw(&file, w, h);
    assert_eq!(pics.len(), 75);
    let (fx, fy, fw, fh) = flash_region(w, h);
    let centre = (fx + fw / 2, fy + fh / 2);
    for (i, pic) in pics.iter().enumerate() {
        let y = pic[(centre.1 * w + centre.0) as usize];
        let expected = if i % 25 == 0 { 235 } else { 16 };
        assert!(y.abs_diff(expected) <= 4, "frame {i}: Y {y}");
    }
    let (cw, u_off) = ((w / 2) as usize, (w * h) as usize);
    let v_off = u_off + cw * (h / 2) as usize;
    let yellow = (w as usize * 3 / 14 / 2, h as usize / 8 / 2); // middle of bar 1, chroma coords
    let u = pics[3][u_off + yellow.1 * cw + yellow.0];
    let v = pics[3][v_off + yellow.1 * cw + yellow.0];
    assert!(
        u.abs_diff(44) <= 3 && v.abs_diff(136) <= 3,
        "yellow U {u} V {v}"
    );
}

#[test]
fn synthetic_audio_beeps_start_exactly_on_whole_seconds() {
    let sr = 48_000u32;
    let second = 1_700_000_000u64 * u64::from(sr);
    let a = SyntheticAudio::new(sr, 2, SampleIndex(0), Pacing::Fast);
    let b = SyntheticAudio::new(sr, 2, SampleIndex(7), Pacing::Fast);
    let from = second - 2_400;
    let len = 2 * sr as usize;
    let mut pcm = vec![0i16; len * 2];
    a.render(SampleIndex(from), &mut pcm);
    let mut again = vec![0i16; len * 2];
    b.render(SampleIndex(from), &mut again);
    assert_eq!(pcm, again, "deterministic per sample index");
    let left: Vec<i16> = pcm.chunks(2).map(|f| f[0]).collect();
    assert!(
        pcm.chunks(2).all(|f| f[0] == f[1]),
        "same signal on every channel"
    );

    let tone_peak = (32767.0 * 10f64.powf(TONE_DBFS / 20.0)).round() as i16;
    let beep_peak = 32767.0 * 10f64.powf(BEEP_DBFS / 20.0);
    let onsets: Vec<u64> = beep_onsets(sr, SampleIndex(from), SampleIndex(from + len as u64))
        .map(|s| s.0)
        .collect();
    assert_eq!(onsets, vec![second, second + u64::from(sr)]);
    let blen = beep_len(sr);
    assert_eq!(blen, 4_800);
    let at = |s: u64| left[(s - from) as usize];
    for &onset in &onsets {
        // Silence of the beep right up to the onset; the onset sample itself is a zero crossing
        // and the very next one is already louder than the tone can be.
        assert!((onset - 2_000..onset).all(|s| at(s).abs() <= tone_peak));
        assert_eq!(at(onset), 0);
        assert!(at(onset + 1).abs() > tone_peak);
        let loud = (onset..onset + blen)
            .map(|s| f64::from(at(s).abs()))
            .fold(0.0, f64::max);
        // Beep on top of the tone.
        let most = beep_peak + f64::from(tone_peak);
        assert!(loud > beep_peak && loud <= most + 1.0, "beep peak {loud}");
        let after = onset + blen..(onset + u64::from(sr)).min(from + len as u64);
        assert!(after.clone().all(|s| at(s).abs() <= tone_peak));
        // The tone alone: −30 dBFS peak, so RMS = peak/√2.
        let n = (after.end - after.start) as f64;
        let rms = (after.map(|s| f64::from(at(s)).powi(2)).sum::<f64>() / n).sqrt();
        let expected = f64::from(tone_peak) / 2f64.sqrt();
        assert!((rms - expected).abs() < 0.01 * expected, "tone RMS {rms}");
    }

    // Blocks from the source are contiguous and equal to render().
    let mut src = SyntheticAudio::new(sr, 2, SampleIndex(from), Pacing::Fast);
    let mut next = from;
    for size in [1024, 1, 480, 1024] {
        let block = src.next_block(size).unwrap();
        assert_eq!((block.first.0, block.frames()), (next, size));
        assert_eq!((block.channels, block.sample_rate), (2, sr));
        let i = ((next - from) * 2) as usize;
        assert_eq!(block.samples, pcm[i..i + size * 2]);
        next += size as u64;
    }
}

#[test]
fn real_time_pacing_waits_on_the_injected_clock() {
    let clocks = SimulatedClocks::new(1_700_000_000_000_000_000);
    clocks.advance(Duration::from_secs(5));
    let dyn_clocks: Arc<dyn Clocks> = clocks.clone();
    let r = rate(30000, 1001);
    let pacing = Pacing::RealTime {
        clocks: dyn_clocks.clone(),
    };
    let mut video = SyntheticVideo::new(320, 180, r, epoch_frame(r), pacing.clone());
    // Frame 0 is due at construction, frame k at k × 1001/30000 s after it.
    video.next_frame().unwrap();
    assert_eq!(clocks.monotonic(), Duration::from_secs(5));
    for _ in 1..=30 {
        video.next_frame().unwrap();
    }
    assert_eq!(clocks.monotonic(), Duration::from_millis(6001));
    // A late consumer gets the next frame at once.
    clocks.advance(Duration::from_secs(10));
    video.next_frame().unwrap();
    assert_eq!(clocks.monotonic(), Duration::from_millis(16001));

    // Audio blocks are due when their last sample is.
    let mut audio = SyntheticAudio::new(48_000, 2, SampleIndex(123_456_789), pacing);
    let t0 = clocks.monotonic();
    for _ in 0..47 {
        audio.next_block(1024).unwrap();
    }
    // Last sample 47×1024−1 = 48127 → due at ceil(48127/48000 s) in nanoseconds.
    assert_eq!(clocks.monotonic() - t0, Duration::from_nanos(1_002_645_834));

    // Fast pacing never touches the clock.
    let mut fast = SyntheticVideo::new(320, 180, r, FrameIndex(0), Pacing::Fast);
    let before = clocks.monotonic();
    for _ in 0..10 {
        fast.next_frame().unwrap();
    }
    assert_eq!(clocks.monotonic(), before);
}

/// A 2 s 320x240 25 fps H.264 + 44.1 kHz AAC test file made by the ffmpeg CLI.
fn make_testsrc(dir: &Path) -> PathBuf {
    let file = dir.join("F.mp4");
    let out = ffmpeg(&[
        "-v",
        "error",
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=320x240:rate=25",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=1000:sample_rate=44100",
        "-t",
        "2",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-c:a",
        "aac",
        file.to_str().unwrap(),
    ]);
    check_ok(&out, "make test file");
    file
}

#[test]
fn file_source_loops_a_25fps_file_on_a_30fps_grid_with_48k_stereo_audio() {
    let dir = tempfile::tempdir().unwrap();
    let file = make_testsrc(dir.path());
    let r = rate(30, 1);
    let start = epoch_frame(r);
    let mut video = FileVideo::open(&file, r, start, Pacing::Fast).expect("open video");
    assert_eq!(video.size(), (320, 240));
    let frames: Vec<VideoFrame> = (0..150).map(|_| video.next_frame().unwrap()).collect();
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(f.index, FrameIndex(start.0 + i as u64));
        assert_eq!((f.width, f.height), (320, 240));
        assert_eq!(f.data.len(), i420_size(320, 240));
        assert_eq!(f.origin, FrameOrigin::Live);
    }
    // Slot i shows picture floor(i × 25/30): in 2 s (60 slots) 50 distinct pictures, so 49
    // changes and 10 repeats, each repeat sharing the buffer.
    let changes = (1..60)
        .filter(|&i| frames[i].data != frames[i - 1].data)
        .count();
    assert_eq!(changes, 49);
    for i in 1..60 {
        let repeat = (i * 25 / 30) == ((i - 1) * 25 / 30);
        assert_eq!(
            Arc::ptr_eq(&frames[i].data, &frames[i - 1].data),
            repeat,
            "slot {i}"
        );
    }
    // The file is 2 s long: it loops every 60 slots and decodes identically each time.
    for i in 0..90 {
        assert_eq!(
            frames[i].data,
            frames[i + 60].data,
            "slot {i} vs {}",
            i + 60
        );
    }

    let mut audio =
        FileAudio::open(&file, 48_000, 2, SampleIndex(0), Pacing::Fast).expect("open audio");
    assert_eq!((audio.sample_rate(), audio.channels()), (48_000, 2));
    let mut pcm = Vec::new();
    let mut next = 0;
    while next < 5 * 48_000 {
        let block = audio.next_block(1024).unwrap();
        assert_eq!((block.first.0, block.frames()), (next, 1024));
        assert_eq!(block.samples.len(), 2048);
        next += 1024;
        pcm.extend_from_slice(&block.samples);
    }
    assert!(
        pcm.chunks(2).all(|f| f[0] == f[1]),
        "mono upmixed to both channels"
    );
    // lavfi sine has amplitude 1/8 (RMS 32767/8/√2 ≈ 2896); FFmpeg spreads mono (front centre)
    // over stereo at −3 dB, so ≈ 2048 on each channel — in every second of the 5 (the loop seams
    // leave no silent gaps).
    for chunk in pcm.chunks(48_000) {
        let rms =
            (chunk.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / chunk.len() as f64).sqrt();
        assert!((1_900.0..2_200.0).contains(&rms), "RMS {rms}");
    }
}

#[test]
fn file_source_skips_pictures_of_a_60fps_file_on_a_30fps_grid() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f60.mp4");
    let out = ffmpeg(&[
        "-v",
        "error",
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=160x120:rate=60",
        "-t",
        "1",
        "-pix_fmt",
        "yuv420p",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        file.to_str().unwrap(),
    ]);
    check_ok(&out, "make 60 fps file");
    let reference = decode_raw(&file, 160, 120);
    assert_eq!(reference.len(), 60);
    let mut video = FileVideo::open(&file, rate(30, 1), FrameIndex(0), Pacing::Fast).unwrap();
    for i in 0..90 {
        let f = video.next_frame().unwrap();
        assert!(
            *f.data == reference[(2 * i) % 60],
            "slot {i} shows picture {}",
            2 * i % 60
        );
    }
}

#[test]
fn files_without_the_needed_stream_or_media_give_open_errors() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("tone.wav");
    let out = ffmpeg(&[
        "-v",
        "error",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=44100",
        "-t",
        "0.5",
        wav.to_str().unwrap(),
    ]);
    check_ok(&out, "make wav");
    let r = rate(25, 1);
    match FileVideo::open(&wav, r, FrameIndex(0), Pacing::Fast) {
        Err(CaptureError::Open { input, reason }) => {
            assert!(input.contains("tone.wav"), "{input}");
            assert!(reason.contains("no video stream"), "{reason}");
        }
        other => panic!("expected an open error, got {other:?}"),
    }
    // The same file is a fine audio input; 0.5 s loops seamlessly to fill 1 s at 48 kHz.
    let mut audio = FileAudio::open(&wav, 48_000, 1, SampleIndex(0), Pacing::Fast).unwrap();
    let block = audio.next_block(48_000).unwrap();
    assert_eq!(block.samples.len(), 48_000);
    assert!(block.samples[23_000..25_000]
        .iter()
        .any(|&s| s.abs() > 2_000));

    let junk = dir.path().join("junk.mp4");
    std::fs::write(
        &junk,
        b"this is not a media file, just some text".repeat(100),
    )
    .unwrap();
    let video_err = FileVideo::open(&junk, r, FrameIndex(0), Pacing::Fast).unwrap_err();
    let audio_err = FileAudio::open(&junk, 48_000, 2, SampleIndex(0), Pacing::Fast).unwrap_err();
    for e in [video_err, audio_err] {
        assert!(matches!(&e, CaptureError::Open { input, .. } if input.contains("junk.mp4")));
    }
    let missing = dir.path().join("missing.mp4");
    assert!(matches!(
        FileVideo::open(&missing, r, FrameIndex(0), Pacing::Fast),
        Err(CaptureError::Open { .. })
    ));
}

#[test]
fn damaged_files_fail_cleanly_or_keep_producing_pictures() {
    let dir = tempfile::tempdir().unwrap();
    let file = make_testsrc(dir.path());
    let bytes = std::fs::read(&file).unwrap();
    let r = rate(25, 1);

    // Truncated: the index (moov, written last) is gone.
    let cut = dir.path().join("cut.mp4");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    assert!(matches!(
        FileVideo::open(&cut, r, FrameIndex(0), Pacing::Fast),
        Err(CaptureError::Open { .. })
    ));

    // Garbage over part of the media data: the decoder conceals, the source carries on.
    let mut damaged = bytes.clone();
    let mid = damaged.len() / 3;
    for (i, b) in damaged[mid..mid + 4000].iter_mut().enumerate() {
        *b = (i * 131 % 251) as u8;
    }
    let bad = dir.path().join("bad.mp4");
    std::fs::write(&bad, &damaged).unwrap();
    let mut video = FileVideo::open(&bad, r, FrameIndex(0), Pacing::Fast).unwrap();
    for _ in 0..120 {
        let f = video.next_frame().expect("pictures keep coming");
        assert_eq!(f.data.len(), i420_size(320, 240));
    }
    let mut audio = FileAudio::open(&bad, 48_000, 2, SampleIndex(0), Pacing::Fast).unwrap();
    for _ in 0..300 {
        assert_eq!(audio.next_block(1024).unwrap().frames(), 1024);
    }
}

/// A `frames`-picture `size` `rate` fps YUV4MPEG2 clip (`pix_fmt`) made by the ffmpeg CLI.
fn make_y4m(dir: &Path, name: &str, size: &str, rate: u32, frames: u32, pix_fmt: &str) -> PathBuf {
    let file = dir.join(name);
    let src = format!("testsrc=size={size}:rate={rate}");
    let frames = frames.to_string();
    let out = ffmpeg(&[
        "-v",
        "error",
        "-f",
        "lavfi",
        "-i",
        &src,
        "-frames:v",
        &frames,
        "-pix_fmt",
        pix_fmt,
        "-f",
        "yuv4mpegpipe",
        file.to_str().unwrap(),
    ]);
    check_ok(&out, "make y4m clip");
    file
}

#[test]
fn y4m_files_are_read_natively_into_the_same_pictures_ffmpeg_decodes() {
    let dir = tempfile::tempdir().unwrap();
    // Odd sizes too: chroma is ceil(W/2) x ceil(H/2) in both readers.
    for (size, file_rate, grid) in [("320x240", 25, 30), ("161x91", 60, 30), ("160x120", 30, 30)] {
        let clip = make_y4m(
            dir.path(),
            &format!("{size}-{file_rate}.y4m"),
            size,
            file_rate,
            40,
            "yuv420p",
        );
        let g = rate(grid, 1);
        let start = epoch_frame(g);
        let native = Y4mVideo::open(&clip, g, start, &Pacing::Fast)
            .expect("open")
            .expect("a 4:2:0 y4m is read natively");
        let mut native: Box<dyn VideoSource> = Box::new(native);
        let mut chosen = open_video(&clip, g, start, Pacing::Fast).unwrap();
        let mut ffmpeg = FileVideo::open(&clip, g, start, Pacing::Fast).unwrap();
        assert_eq!(native.size(), ffmpeg.size());
        // Several loops of the 40-picture clip.
        let mut previous: Option<VideoFrame> = None;
        for slot in 0..150 {
            let (n, c, f) = (
                native.next_frame().unwrap(),
                chosen.next_frame().unwrap(),
                ffmpeg.next_frame().unwrap(),
            );
            assert_eq!(
                (n.index, n.width, n.height, n.origin),
                (f.index, f.width, f.height, f.origin)
            );
            assert!(
                n.data == f.data,
                "{size} at {file_rate} fps: slot {slot} differs from FFmpeg's"
            );
            assert!(
                c.data == f.data,
                "{size}: open_video picks a reader that differs at slot {slot}"
            );
            if let Some(p) = &previous {
                // A repeated slot shares the buffer of the one before.
                let repeat = slot * file_rate / grid == (slot - 1) * file_rate / grid;
                assert_eq!(Arc::ptr_eq(&p.data, &n.data), repeat, "{size}: slot {slot}");
            }
            previous = Some(n);
        }
    }
}

#[test]
fn y4m_files_of_other_colour_spaces_go_to_ffmpeg_and_damaged_ones_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let g = rate(30, 1);
    // 4:4:4 is converted by the FFmpeg reader.
    let c444 = make_y4m(dir.path(), "c444.y4m", "64x48", 30, 5, "yuv444p");
    assert!(Y4mVideo::open(&c444, g, FrameIndex(0), &Pacing::Fast)
        .unwrap()
        .is_none());
    let mut v = open_video(&c444, g, FrameIndex(0), Pacing::Fast).unwrap();
    assert_eq!(v.next_frame().unwrap().data.len(), i420_size(64, 48));
    // Not a y4m at all: the FFmpeg reader's open error.
    let junk = dir.path().join("junk.y4m");
    std::fs::write(&junk, b"definitely not media").unwrap();
    assert!(Y4mVideo::open(&junk, g, FrameIndex(0), &Pacing::Fast)
        .unwrap()
        .is_none());
    assert!(matches!(
        open_video(&junk, g, FrameIndex(0), Pacing::Fast),
        Err(CaptureError::Open { .. })
    ));

    let clip = make_y4m(dir.path(), "ok.y4m", "160x120", 30, 4, "yuv420p");
    let bytes = std::fs::read(&clip).unwrap();
    let header_len = bytes.iter().position(|&b| b == b'\n').unwrap() + 1;
    let picture = 6 + i420_size(160, 120);
    assert_eq!(bytes.len(), header_len + 4 * picture);
    let write = |name: &str, b: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, b).unwrap();
        p
    };
    let open_err = |p: &Path| match Y4mVideo::open(p, g, FrameIndex(0), &Pacing::Fast) {
        Err(CaptureError::Open { reason, .. }) => reason,
        other => panic!("{}: expected an open error, got {other:?}", p.display()),
    };
    // A header without any picture, a header cut short, a bad size.
    assert!(open_err(&write("empty.y4m", &bytes[..header_len])).contains("no complete picture"));
    assert!(open_err(&write("cut-header.y4m", &bytes[..header_len - 3])).contains("cut short"));
    let mut huge = b"YUV4MPEG2 W99999 H120 F30:1\n".to_vec();
    huge.extend_from_slice(&bytes[header_len..]);
    assert!(open_err(&write("huge.y4m", &huge)).contains("width '99999'"));

    // A truncated last picture ends the pass: the loop shows pictures 0, 1, 2, then 0 again.
    let cut = write("cut.y4m", &bytes[..bytes.len() - 100]);
    let mut v = Y4mVideo::open(&cut, g, FrameIndex(0), &Pacing::Fast)
        .unwrap()
        .unwrap();
    let pics: Vec<_> = (0..7).map(|_| v.next_frame().unwrap().data).collect();
    let same: Vec<Vec<bool>> = pics
        .iter()
        .map(|a| pics.iter().map(|b| a == b).collect())
        .collect();
    assert!(
        pics[3] == pics[0] && pics[6] == pics[0] && pics[1] != pics[0] && pics[2] != pics[1],
        "{same:?}"
    );

    // A damaged FRAME marker mid-file: a read error naming the picture, no panic.
    let mut bad = bytes.clone();
    bad[header_len + 2 * picture..header_len + 2 * picture + 5].copy_from_slice(b"XXXXX");
    let bad = write("bad.y4m", &bad);
    let mut v = Y4mVideo::open(&bad, g, FrameIndex(0), &Pacing::Fast)
        .unwrap()
        .unwrap();
    v.next_frame().unwrap();
    v.next_frame().unwrap();
    match v.next_frame() {
        Err(CaptureError::Read { reason, .. }) => assert!(
            reason.contains("picture 2: expected a FRAME line"),
            "{reason}"
        ),
        other => panic!("expected a read error, got {other:?}"),
    }
}
