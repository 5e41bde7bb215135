//! The `v4l2` timecode source on recorded-style traces: buffers carrying driver timecode
//! (`tc:` lines, see `capture::v4l2::replay`) drive the channel's start index and the status
//! (`locked`, last label, offset from the grid, discontinuities, `lost`); buffers without it, or
//! with a label the channel rate cannot have, fall back to the clock and say why.
//!
//! This is the same probe and tap the channel runs on a device; the device's ioctl path itself
//! (our mmap stream) is untested here: no capture card, no v4l2loopback.

use smoothcast::capture::loss::InputCounters;
use smoothcast::capture::timecode::{
    start_from_buffers, TimecodeKind, TimecodeMonitor, TimecodeState, V4l2TimecodeTap,
    V4L2_PROBE_BUFFERS,
};
use smoothcast::capture::v4l2::convert::{BufferLayout, PixelFormat};
use smoothcast::capture::v4l2::replay::{parse_trace, TraceEntry, TraceReplay};
use smoothcast::capture::v4l2::{GridSource, PictureFormat};
use smoothcast::capture::{Pacing, VideoSource};
use smoothcast::profile::TimecodeSpec;
use smoothcast::time::{
    frame_index, parse_date, Clocks, FrameGrid, FrameIndex, Rate, SimulatedClocks, Timecode,
};
use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

/// 2024-03-01T09:59:50Z.
const UTC_NANOS: u128 = 1_709_287_190_000_000_000;

fn rate25() -> Rate {
    Rate::new(25, 1).unwrap()
}

/// A 25 fps trace of `n` buffers from 1.000000 s; buffer `i` carries `label(i)` as
/// `tc: TYPE FLAGS HH:MM:SS:FF` when it returns `Some`.
fn trace(n: u64, label: impl Fn(u64) -> Option<(u32, u32, Timecode)>) -> Arc<[TraceEntry]> {
    let mut text = String::new();
    for i in 0..n {
        let us = 1_000_000 + 40_000 * i;
        write!(
            text,
            "cap dqbuf: {} seq: {i} bytesused: 18432 ts: {}.{:06}",
            i % 8,
            us / 1_000_000,
            us % 1_000_000
        )
        .unwrap();
        if let Some((kind, flags, t)) = label(i) {
            write!(
                text,
                " tc: {kind} 0x{flags:x} {:02}:{:02}:{:02}:{:02}",
                t.hours, t.minutes, t.seconds, t.frames
            )
            .unwrap();
        }
        text.push_str(" (ts-monotonic, ts-src-eof)\n");
    }
    parse_trace(&text, "generated").unwrap().into()
}

fn picture() -> Arc<Vec<Vec<u8>>> {
    // A mid-grey UYVY 128x72 picture (what is shown does not matter here).
    Arc::new(vec![vec![128u8; 128 * 72 * 2]])
}

fn format() -> PictureFormat {
    PictureFormat {
        layout: BufferLayout::packed(PixelFormat::Uyvy, 128, 72),
        deinterlace: None,
        frame_nanos: 40_000_000,
    }
}

/// The 25 fps label `frames` after 09:59:50:00.
fn label_after(frames: u64) -> Timecode {
    let rate = rate25();
    let f0 = Timecode::parse("09:59:50:00")
        .unwrap()
        .frames_since_midnight(rate)
        .unwrap();
    Timecode::from_frames_since_midnight(f0 + frames, rate, false)
}

#[test]
fn driver_timecode_starts_the_timeline_and_reports_locked_offsets_and_a_rejam() {
    let rate = rate25();
    let sim = SimulatedClocks::new(UTC_NANOS);
    let clocks: Arc<dyn Clocks> = sim.clone();
    // 09:59:50:00 on buffer 0; from buffer 60 on the generator was re-jammed 100 frames ahead.
    let entries = trace(100, |i| {
        Some((2, 0, label_after(if i < 60 { i } else { i + 100 })))
    });
    let origin = clocks.monotonic() + Duration::from_millis(5);
    let monitor = TimecodeMonitor::new(&TimecodeSpec::V4l2, clocks.clone());

    // Start: the probe reads the first buffer's label.
    let mut probe = TraceReplay::new(
        entries.clone(),
        picture(),
        origin,
        clocks.monotonic(),
        Duration::from_millis(500),
        &Pacing::Fast,
    );
    let start =
        start_from_buffers("tc", "sdi1", rate, &mut probe, clocks.clone(), &monitor).unwrap();
    let n0 = frame_index(parse_date("2024-03-01").unwrap(), &label_after(0), rate).unwrap();
    assert_eq!(start.index, n0);
    assert!(!start.on_clock);
    let h = monitor.snapshot();
    assert_eq!(
        (h.source, h.state),
        (TimecodeKind::V4l2, TimecodeState::Locked)
    );
    assert_eq!(h.start_index, Some(n0));
    assert_eq!(h.last_timecode, Some(label_after(0)));
    assert_eq!(h.clock_offset_frames, Some(0));
    drop(probe);

    // Capture: the device reopens; slot n0 + 10 is due when buffer 10 was captured.
    let tap = V4l2TimecodeTap::new(rate, clocks.clone(), monitor.clone());
    let due = origin + Duration::from_millis(400);
    let replay = TraceReplay::new(
        entries,
        picture(),
        origin,
        due,
        Duration::from_millis(500),
        &Pacing::Fast,
    );
    let mut src = GridSource::new(
        "sdi1",
        replay,
        format(),
        rate,
        FrameIndex(n0.0 + 10),
        due,
        Arc::new(InputCounters::default()),
    )
    .unwrap()
    .with_timecode(tap);
    let mut frames = Vec::new();
    while let Ok(f) = src.next_frame() {
        frames.push(f.index);
    }
    assert_eq!(frames.len(), 90);
    assert_eq!(frames[0], FrameIndex(n0.0 + 10));
    let h = monitor.snapshot();
    assert_eq!(h.state, TimecodeState::Locked, "{h:?}");
    assert_eq!(h.frames, 90);
    assert_eq!(h.rejected, 0);
    // Buffers 10..60 agree with their slots; the re-jam is one discontinuity and shows as a
    // 100-frame offset (the timeline itself keeps counting: no timestamp jump).
    assert_eq!(h.discontinuities, 1);
    assert_eq!(h.offset_frames, Some(100));
    assert_eq!(h.last_timecode, Some(label_after(199)));
    assert_eq!(h.last_index, Some(FrameIndex(n0.0 + 199)));
    assert_eq!(h.start_index, Some(n0));

    // No label for longer than the unlock time: lost, last label kept.
    sim.advance(Duration::from_secs(1));
    let h = monitor.snapshot();
    assert_eq!(h.state, TimecodeState::Lost);
    assert_eq!(h.last_timecode, Some(label_after(199)));
}

#[test]
fn buffers_without_driver_timecode_fall_back_to_the_clock_and_say_why() {
    let rate = rate25();
    let clocks: Arc<dyn Clocks> = SimulatedClocks::new(UTC_NANOS);
    let monitor = TimecodeMonitor::new(&TimecodeSpec::V4l2, clocks.clone());
    let mut replay = TraceReplay::new(
        trace(50, |_| None),
        picture(),
        clocks.monotonic(),
        clocks.monotonic(),
        Duration::from_millis(500),
        &Pacing::Fast,
    );
    let start =
        start_from_buffers("tc", "sdi1", rate, &mut replay, clocks.clone(), &monitor).unwrap();
    let now = FrameGrid::new(rate, 10_000_000).frame_at_unix_nanos(UTC_NANOS);
    assert!(start.on_clock);
    assert_eq!(start.index, now);
    let h = monitor.snapshot();
    assert_eq!(
        (h.source, h.state),
        (TimecodeKind::V4l2, TimecodeState::Fallback)
    );
    let reason = h.fallback_reason.unwrap_or_default();
    assert!(reason.contains("video input sdi1"), "{reason}");
    assert!(reason.contains("no driver timecode"), "{reason}");
    assert!(
        reason.contains(&format!("first {V4L2_PROBE_BUFFERS} buffers")),
        "{reason}"
    );
    assert!(reason.contains("V4L2_BUF_FLAG_TIMECODE"), "{reason}");
    assert_eq!(h.start_index, Some(now));
    assert_eq!(h.last_timecode, None);

    // A device that delivers nothing at all falls back too.
    let monitor = TimecodeMonitor::new(&TimecodeSpec::V4l2, clocks.clone());
    let mut silent = TraceReplay::new(
        trace(0, |_| None),
        picture(),
        clocks.monotonic(),
        clocks.monotonic(),
        Duration::from_millis(500),
        &Pacing::Fast,
    );
    let start =
        start_from_buffers("tc", "sdi1", rate, &mut silent, clocks.clone(), &monitor).unwrap();
    assert!(start.on_clock);
    let reason = monitor.snapshot().fallback_reason.unwrap_or_default();
    assert!(reason.contains("no picture"), "{reason}");
}

#[test]
fn timecode_the_channel_rate_cannot_have_falls_back_and_is_counted_as_rejected() {
    let rate = rate25();
    let clocks: Arc<dyn Clocks> = SimulatedClocks::new(UTC_NANOS);
    let monitor = TimecodeMonitor::new(&TimecodeSpec::V4l2, clocks.clone());
    // 30 fps drop-frame labels on a 25 fps channel.
    let entries = trace(20, |i| Some((3, 1, label_after(i))));
    let mut replay = TraceReplay::new(
        entries.clone(),
        picture(),
        clocks.monotonic(),
        clocks.monotonic(),
        Duration::from_millis(500),
        &Pacing::Fast,
    );
    let start =
        start_from_buffers("tc", "sdi1", rate, &mut replay, clocks.clone(), &monitor).unwrap();
    assert!(start.on_clock);
    let h = monitor.snapshot();
    assert_eq!(h.state, TimecodeState::Fallback);
    let reason = h.fallback_reason.unwrap_or_default();
    assert!(reason.contains("refused"), "{reason}");

    // Fed to a running tap, they are rejected, never read as labels.
    let tap = V4l2TimecodeTap::new(rate, clocks.clone(), monitor.clone());
    for e in entries.iter() {
        tap.observe(e.timecode.as_ref(), FrameIndex(0));
    }
    let h = monitor.snapshot();
    assert_eq!((h.frames, h.rejected), (0, 20));
    assert_eq!(h.last_timecode, None);
    assert_eq!(h.state, TimecodeState::Fallback);
}

#[test]
fn a_label_just_before_midnight_read_just_after_it_stays_on_the_previous_date() {
    let rate = rate25();
    // 2024-03-02T00:00:00.020Z; the card still shows 23:59:59:24 of 2024-03-01.
    let clocks: Arc<dyn Clocks> = SimulatedClocks::new(1_709_337_600_020_000_000);
    let monitor = TimecodeMonitor::new(&TimecodeSpec::V4l2, clocks.clone());
    let late = Timecode::parse("23:59:59:24").unwrap();
    let mut replay = TraceReplay::new(
        trace(5, |_| Some((2, 0, late))),
        picture(),
        clocks.monotonic(),
        clocks.monotonic(),
        Duration::from_millis(500),
        &Pacing::Fast,
    );
    let start =
        start_from_buffers("tc", "sdi1", rate, &mut replay, clocks.clone(), &monitor).unwrap();
    let expected = frame_index(parse_date("2024-03-01").unwrap(), &late, rate).unwrap();
    assert_eq!(start.index, expected);
    // Not a day away: a frame or two behind the clock.
    let clock = FrameGrid::new(rate, 10_000_000).frame_at_unix_nanos(clocks.utc_nanos());
    let offset = expected.0 as i64 - clock.0 as i64;
    assert!((-2..0).contains(&offset), "{offset}");
    assert_eq!(monitor.snapshot().clock_offset_frames, Some(offset));
}
