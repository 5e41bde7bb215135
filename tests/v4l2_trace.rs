//! The V4L2 capture path on recorded-style timestamp traces: buffer times → grid slots,
//! duplicates and skips counted, input loss filled and recovered without a timestamp jump.
//!
//! The traces in `tests/data/v4l2/*.trace` use `v4l2-ctl --stream-mmap -v` lines. They are
//! modelled on real devices (no capture card here; `gen_traces.py` makes them), replayed with
//! the 128x72 fixture pictures.

use smoothcast::capture::loss::{
    GridStart, InputCounters, InputStatus, LossPolicy, ResilientVideo, VideoFactory,
};
use smoothcast::capture::v4l2::convert::{BufferLayout, PixelFormat};
use smoothcast::capture::v4l2::interlace::Deinterlace;
use smoothcast::capture::v4l2::replay::{parse_trace, TraceEntry, TraceReplay};
use smoothcast::capture::v4l2::{GridSource, PictureFormat};
use smoothcast::capture::{CaptureError, FrameOrigin, Pacing, VideoSource};
use smoothcast::time::{Clocks, FrameIndex, Rate, SimulatedClocks};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

fn data(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/v4l2")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn trace(name: &str) -> Arc<[TraceEntry]> {
    let text = String::from_utf8(data(name)).unwrap();
    parse_trace(&text, name).unwrap().into()
}

fn uyvy_format(frame_nanos: u64) -> PictureFormat {
    PictureFormat {
        layout: BufferLayout::packed(PixelFormat::Uyvy, 128, 72),
        deinterlace: None,
        frame_nanos,
    }
}

/// Pulls frames until the source fails; returns (index, origin) of each.
fn drain(src: &mut dyn VideoSource, max: usize) -> (Vec<(u64, FrameOrigin)>, Option<CaptureError>) {
    let mut out = Vec::new();
    while out.len() < max {
        match src.next_frame() {
            Ok(f) => out.push((f.index.0, f.origin)),
            Err(e) => return (out, Some(e)),
        }
    }
    (out, None)
}

fn assert_contiguous(frames: &[(u64, FrameOrigin)], from: u64) {
    for (i, (n, _)) in frames.iter().enumerate() {
        assert_eq!(*n, from + i as u64, "slot {i} of the output");
    }
}

#[test]
fn sdi_2997_with_jitter_places_every_buffer_and_repeats_dropped_slots() {
    let entries = trace("sdi-2997-jitter.trace");
    assert_eq!(entries.len(), 600);
    let rate = Rate::new(30000, 1001).unwrap();
    let counters = Arc::new(InputCounters::default());
    let replay = TraceReplay::new(
        entries,
        Arc::new(vec![data("testsrc-128x72.uyvy")]),
        Duration::from_millis(5),
        Duration::ZERO,
        Duration::from_millis(500),
        &Pacing::Fast,
    );
    let mut src = GridSource::new(
        "sdi1",
        replay,
        uyvy_format(33_366_667),
        rate,
        FrameIndex(1000),
        Duration::ZERO,
        counters.clone(),
    )
    .unwrap();
    let first = src.next_frame().unwrap();
    assert_eq!(first.index, FrameIndex(1000));
    assert_eq!(first.data.as_slice(), data("ref-uyvy.yuv420p").as_slice());
    let (mut frames, end) = drain(&mut src, 10_000);
    frames.insert(0, (first.index.0, first.origin));
    assert!(
        matches!(end, Some(CaptureError::Read { .. })),
        "trace end = no signal"
    );
    // seq 0..=601: every slot present, the two driver drops and the damaged buffer repeated.
    assert_eq!(frames.len(), 602);
    assert_contiguous(&frames, 1000);
    let repeats: Vec<u64> = frames
        .iter()
        .filter(|(_, o)| *o == FrameOrigin::Repeat)
        .map(|(n, _)| n - 1000)
        .collect();
    assert_eq!(repeats, vec![200, 300, 401]);
    let c = counters.snapshot();
    assert_eq!((c.skipped, c.duplicates, c.damaged), (3, 0, 1));
    let g = src.grid_stats();
    assert_eq!((g.placed, g.skipped, g.duplicates), (599, 3, 0));
}

#[test]
fn webcam_at_30_on_a_2997_grid_drops_one_buffer_in_1001() {
    let entries = trace("webcam-30-on-2997.trace");
    assert_eq!(entries.len(), 1200);
    let rate = Rate::new(30000, 1001).unwrap();
    let counters = Arc::new(InputCounters::default());
    let replay = TraceReplay::new(
        entries,
        Arc::new(vec![data("testsrc-128x72.mjpeg")]),
        Duration::from_millis(3),
        Duration::ZERO,
        Duration::from_millis(500),
        &Pacing::Fast,
    );
    let format = PictureFormat {
        layout: BufferLayout::packed(PixelFormat::Mjpeg, 128, 72),
        deinterlace: None,
        frame_nanos: 33_333_333,
    };
    let mut src = GridSource::new(
        "webcam",
        replay,
        format,
        rate,
        FrameIndex(0),
        Duration::ZERO,
        counters.clone(),
    )
    .unwrap();
    let (frames, _) = drain(&mut src, 10_000);
    assert_contiguous(&frames, 0);
    // 40 s of 30.000 fps buffers against 29.97 fps slots: 1200 buffers, 1199 slots. The
    // anchor phase drifts by a slot every 1001 frames (33.4 s), crossing the rounding edge
    // once; USB jitter (including the 10 ms late completions) costs nothing.
    assert_eq!(frames.len(), 1199);
    let c = counters.snapshot();
    assert_eq!((c.duplicates, c.skipped, c.damaged), (1, 0, 0));
    assert!(frames.iter().all(|(_, o)| *o == FrameOrigin::Live));
}

#[test]
fn interlaced_buffers_bob_to_twice_the_rate_on_the_grid() {
    // The 25 fps SDI trace carrying woven 1080i-style frames, on a 50p channel.
    let entries: Arc<[TraceEntry]> = trace("sdi-25-gap3s.trace")[..100].to_vec().into();
    let counters = Arc::new(InputCounters::default());
    let replay = TraceReplay::new(
        entries,
        Arc::new(vec![data("testsrc-128x144-interlaced-tff.uyvy")]),
        Duration::from_millis(2),
        Duration::ZERO,
        Duration::from_millis(500),
        &Pacing::Fast,
    );
    let format = PictureFormat {
        layout: BufferLayout::packed(PixelFormat::Uyvy, 128, 144),
        deinterlace: Some((Deinterlace::Bob, false)),
        frame_nanos: 40_000_000,
    };
    let mut src = GridSource::new(
        "sdi1",
        replay,
        format,
        Rate::new(50, 1).unwrap(),
        FrameIndex(0),
        Duration::ZERO,
        counters.clone(),
    )
    .unwrap();
    let mut pics = Vec::new();
    while let Ok(f) = src.next_frame() {
        pics.push(f);
    }
    assert_eq!(pics.len(), 200, "two fields per buffer");
    for (i, f) in pics.iter().enumerate() {
        assert_eq!(f.index, FrameIndex(i as u64));
        assert_eq!(f.origin, FrameOrigin::Live);
    }
    // Alternate pictures are the top and the bottom field: they differ.
    assert_ne!(pics[0].data, pics[1].data);
    assert_eq!(pics[0].data, pics[2].data, "same woven buffer each time");
    let c = counters.snapshot();
    assert_eq!((c.duplicates, c.skipped), (0, 0));
}

/// The 25 fps trace with a 3 s hole, behind the loss policy, as the channel runs it.
fn run_gap_trace(pacing_realtime: bool) -> (Vec<(u64, FrameOrigin)>, InputStatus, Duration) {
    let entries = trace("sdi-25-gap3s.trace");
    let rate = Rate::new(25, 1).unwrap();
    let clocks = SimulatedClocks::new(1_700_000_000_000_000_000);
    let clocks_dyn: Arc<dyn Clocks> = clocks.clone();
    let pacing = if pacing_realtime {
        Pacing::RealTime {
            clocks: clocks_dyn.clone(),
        }
    } else {
        Pacing::Fast
    };
    let counters = Arc::new(InputCounters::default());
    let policy = LossPolicy {
        repeat_for: Duration::from_secs(1),
        black_for: Duration::from_secs(1),
        slate: None,
        no_signal_after: Duration::from_millis(500),
        reopen_initial: Duration::from_millis(250),
        reopen_max: Duration::from_secs(1),
    };
    let pictures = Arc::new(vec![data("testsrc-128x72.uyvy")]);
    let n0 = FrameIndex(5000);
    // The trace's first buffer is captured 3 ms after the first slot is due.
    let origin = clocks.monotonic() + Duration::from_millis(3);
    let factory = {
        let (counters, pacing, no_signal) =
            (counters.clone(), pacing.clone(), policy.no_signal_after);
        VideoFactory::new(move |at: GridStart| {
            // A reopened device delivers nothing captured before it was opened (half a
            // frame of tolerance: that buffer still belongs to the start slot).
            let opened = at.due.saturating_sub(Duration::from_millis(20));
            let replay = TraceReplay::new(
                entries.clone(),
                pictures.clone(),
                origin,
                opened,
                no_signal,
                &pacing,
            );
            let src = GridSource::new(
                "sdi1",
                replay,
                uyvy_format(40_000_000),
                rate,
                at.slot,
                at.due,
                counters.clone(),
            )?;
            Ok(Box::new(src) as Box<dyn VideoSource>)
        })
    };
    let mut v = ResilientVideo::new(
        "sdi1",
        factory,
        policy,
        rate,
        n0,
        (128, 72),
        pacing,
        clocks_dyn,
        counters.clone(),
    );
    assert_eq!(v.size(), (128, 72));
    let (frames, err) = drain(&mut v, 450);
    assert!(err.is_none(), "the loss policy never fails: {err:?}");
    (frames, counters.snapshot(), clocks.monotonic())
}

#[test]
fn sdi_signal_lost_for_3s_fills_repeat_black_slate_and_resumes_on_the_grid() {
    let (frames, c, _) = run_gap_trace(false);
    assert_contiguous(&frames, 5000);
    let origin_of = |slot: u64| frames[(slot - 5000) as usize].1;
    // Live for the first 10 s (slots 0..250 after the start).
    assert!((5000..5250).all(|s| origin_of(s) == FrameOrigin::Live));
    // Lost at 10.0 s: 1 s freeze, 1 s black, then the slate…
    assert!((5250..5275).all(|s| origin_of(s) == FrameOrigin::Repeat));
    assert!((5275..5300).all(|s| origin_of(s) == FrameOrigin::Black));
    assert!((5300..5325).all(|s| origin_of(s) == FrameOrigin::Slate));
    // …and live again exactly where the signal came back (13.0 s = slot 325): no jump.
    assert!((5325..5450).all(|s| origin_of(s) == FrameOrigin::Live));
    assert_eq!(c.losses, 1);
    assert!(c.reopens >= 1);
    assert_eq!(c.live, 375);
    assert_eq!((c.repeated, c.black, c.slate), (25, 25, 25));
    assert!(!c.lost);
}

#[test]
fn real_time_pacing_on_simulated_clocks_gives_the_same_timeline() {
    let (fast, _, _) = run_gap_trace(false);
    let (paced, c, elapsed) = run_gap_trace(true);
    assert_eq!(fast, paced);
    assert_eq!(c.live, 375);
    // 450 slots at 25 fps = 18 s of simulated time (the last slot is due at 17.96 s).
    assert!(
        elapsed >= Duration::from_millis(17_960) && elapsed < Duration::from_millis(18_100),
        "{elapsed:?}"
    );
}
