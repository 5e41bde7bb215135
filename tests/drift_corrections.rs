//! What the A/V clock discipline does to the samples: single-frame corrections land where a
//! tone is smoothest and keep every channel in step, lost samples become silence of the right
//! length, and extra samples are skipped — all while the output stays on the master grid.

use smoothcast::capture::discipline::{
    ClockDiscipline, Correction, DisciplineConfig, DisciplinedAudio, SimulatedDeviceAudio,
};
use smoothcast::capture::AudioSource;
use smoothcast::time::{Clocks, SampleIndex, SimulatedClocks};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

const START_UTC_NS: u128 = 1_717_200_000_000_000_000;

/// The simulated device's tone: one period of a sine at full scale × 0.5.
fn tone_table(period: usize) -> Vec<i16> {
    (0..period)
        .map(|i| {
            let x = 2.0 * std::f64::consts::PI * i as f64 / period as f64;
            (x.sin() * 16_384.0).round() as i16
        })
        .collect()
}

/// Master-grid frames at the device's capture time of its `frames`-th frame.
fn grid_frames_at_capture(frames: u64, ppm: i64) -> f64 {
    frames as f64 / (1.0 + ppm as f64 * 1e-6)
}

/// Runs a 1 kHz tone device `ppm` off through the discipline for `minutes` and checks every
/// output frame and step. Returns the largest step between consecutive output frames (on any
/// channel) and the tone's own largest step.
fn run_tone(channels: u16, ppm: i64, minutes: u64) -> (i32, i32) {
    const RATE: u32 = 48_000;
    let table = tone_table(48);
    // Channel c runs c quarter periods ahead of channel 0. Valid output frames are the
    // device's frames and, where a frame was inserted, the average of two neighbours.
    let ch = usize::from(channels);
    assert!(ch <= 4);
    // A frame's samples packed into one integer, for a cheap set lookup.
    let key = |f: &[i16]| f.iter().fold(0u64, |k, &x| (k << 16) | u64::from(x as u16));
    let frame = |p: usize| -> Vec<i16> { (0..ch).map(|c| table[(p + 12 * c) % 48]).collect() };
    let mut valid: HashSet<u64> = (0..48).map(|p| key(&frame(p))).collect();
    for p in 0..48 {
        let (a, b) = (frame(p), frame(p + 1));
        let avg: Vec<i16> = a
            .iter()
            .zip(&b)
            .map(|(&x, &y)| ((i32::from(x) + i32::from(y)) / 2) as i16)
            .collect();
        valid.insert(key(&avg));
    }
    let max_step = (0..48)
        .map(|p| (i32::from(table[(p + 1) % 48]) - i32::from(table[p])).abs())
        .max()
        .unwrap();

    let clocks = SimulatedClocks::new(START_UTC_NS);
    let start = SampleIndex(5_000_000);
    let device = SimulatedDeviceAudio::new(RATE, channels, start, ppm as f64, clocks.clone())
        .with_jitter(Duration::from_millis(2), 3);
    let mut audio = DisciplinedAudio::new(device, clocks.clone() as Arc<dyn Clocks>);
    let mut next = start;
    let mut prev: Option<[i16; 4]> = None;
    let mut worst_step = 0;
    while clocks.monotonic() < Duration::from_secs(60 * minutes) {
        let block = audio.next_block(480).unwrap();
        assert_eq!(block.first, next);
        assert_eq!((block.channels, block.sample_rate), (channels, RATE));
        next = SampleIndex(next.0 + block.frames() as u64);
        for f in block.samples.chunks_exact(ch) {
            assert!(
                valid.contains(&key(f)),
                "{ppm} ppm: frame {f:?} mixes channels"
            );
            if let Some(p) = &prev {
                for (&x, &y) in f.iter().zip(p) {
                    worst_step = worst_step.max((i32::from(x) - i32::from(y)).abs());
                }
            }
            let mut cur = [0; 4];
            cur[..ch].copy_from_slice(f);
            prev = Some(cur);
        }
    }
    let s = audio.status();
    let expected = (ppm.unsigned_abs() * u64::from(RATE) * 60 * minutes) as f64 / 1e6;
    let made = if ppm > 0 { s.dropped } else { s.inserted };
    assert!(
        (made as f64 - expected).abs() < 100.0,
        "{ppm} ppm: {made} corrections, expected ≈ {expected}: {s:?}"
    );
    let out = (next.0 - start.0) as f64;
    let grid = grid_frames_at_capture(audio.inner().delivered(), ppm);
    assert!(
        (out - grid).abs() < 1024.0,
        "{ppm} ppm: offset {}",
        out - grid
    );
    (worst_step, max_step)
}

#[test]
fn corrections_at_1000_ppm_keep_channels_in_step_and_avoid_steep_points() {
    for ppm in [1000, -1000] {
        // Two channels in quadrature: where one is flat the other is steepest, so the best a
        // correction can do is the 45° point, √2 × the tone's own step on both; a correction
        // at a random point can double it.
        let (worst, own) = run_tone(2, ppm, 4);
        assert!(
            f64::from(worst) <= 1.45 * f64::from(own),
            "{ppm} ppm: a correction made a step of {worst} (tone's own: {own})"
        );
    }
}

#[test]
fn corrections_on_a_mono_tone_are_invisible() {
    for ppm in [1000, -1000] {
        // At a peak, dropping or averaging in a frame adds no step at all.
        let (worst, own) = run_tone(1, ppm, 3);
        assert!(
            worst <= own + 1,
            "{ppm} ppm: step {worst} (tone's own: {own})"
        );
    }
}

#[test]
fn lost_samples_are_filled_with_silence_and_the_lock_recovers() {
    const RATE: u32 = 8_000;
    let clocks = SimulatedClocks::new(START_UTC_NS);
    let start = SampleIndex(0);
    // One hour in, an overrun loses half a second of audio.
    let lost = 4_000;
    let device = SimulatedDeviceAudio::new(RATE, 1, start, 50.0, clocks.clone())
        .with_jitter(Duration::from_millis(3), 9)
        .with_overrun(3600 * u64::from(RATE), lost);
    let mut audio = DisciplinedAudio::new(device, clocks.clone() as Arc<dyn Clocks>);
    let mut next = start;
    let mut zero_run = 0usize;
    let mut longest_zero_run = 0usize;
    let mut worst_after_recovery: f64 = 0.0;
    while clocks.monotonic() < Duration::from_secs(2 * 3600) {
        let block = audio.next_block(800).unwrap();
        assert_eq!(block.first, next);
        next = SampleIndex(next.0 + block.frames() as u64);
        for &x in &block.samples {
            if x == 0 {
                zero_run += 1;
                longest_zero_run = longest_zero_run.max(zero_run);
            } else {
                zero_run = 0;
            }
        }
        if clocks.monotonic() > Duration::from_secs(3600 + 5) {
            // The samples lost still count on the device clock: they are part of "captured".
            let captured = audio.inner().delivered() + lost;
            let off = (next.0 - start.0) as f64 - grid_frames_at_capture(captured, 50);
            worst_after_recovery = worst_after_recovery.max(off.abs());
        }
    }
    let s = audio.status();
    assert_eq!(s.steps, 1, "{s:?}");
    assert!(
        (s.filled as i64 - lost as i64).abs() <= 64,
        "filled {} for {lost} lost: {s:?}",
        s.filled
    );
    assert!(
        longest_zero_run as i64 >= s.filled as i64 && longest_zero_run as u64 <= s.filled + 2,
        "silence of {longest_zero_run} frames for {} filled",
        s.filled
    );
    // Back within the 48 kHz AAC-frame bound expressed at 8 kHz (21.3 ms).
    assert!(worst_after_recovery <= 170.0, "{worst_after_recovery}");
}

#[test]
fn extra_samples_are_skipped_once_they_persist() {
    let mut d = ClockDiscipline::new(48_000, DisciplineConfig::default());
    let mut t = Duration::ZERO;
    let mut skipped = 0;
    let mut late_burst = false;
    for i in 0..10_000u32 {
        t += Duration::from_millis(10);
        // At 30 s a burst of 2400 frames that the master clock has no time for arrives (a
        // driver replaying a buffer); at 60 s one block is 30 ms late and the next two
        // catch up — jitter, not a step.
        let frames = match i {
            3_000 => 480 + 2_400,
            6_000 => {
                late_burst = true;
                0
            }
            6_001 => 960,
            _ => 480,
        };
        let at = if i == 6_000 {
            t + Duration::from_millis(30)
        } else {
            t
        };
        match d.on_block(frames, at) {
            Correction::Skip(n) => skipped += n,
            Correction::Fill(n) => panic!("filled {n} at block {i}"),
            _ => {}
        }
    }
    assert!(late_burst);
    let s = d.status();
    assert_eq!(s.steps, 1, "{s:?}");
    assert!(
        (skipped as i64 - 2_400).abs() <= 32,
        "skipped {skipped}: {s:?}"
    );
    assert_eq!(s.skipped, skipped);
    assert!(s.residual_frames.abs() <= 16.0, "{s:?}");
}

#[test]
fn zero_frame_requests_return_empty_blocks_at_the_right_index() {
    let clocks = SimulatedClocks::new(START_UTC_NS);
    let device = SimulatedDeviceAudio::new(48_000, 2, SampleIndex(42), 0.0, clocks.clone());
    let mut audio = DisciplinedAudio::new(device, clocks.clone() as Arc<dyn Clocks>);
    let b = audio.next_block(0).unwrap();
    assert_eq!((b.first, b.frames()), (SampleIndex(42), 0));
    let b = audio.next_block(100).unwrap();
    assert_eq!((b.first, b.frames()), (SampleIndex(42), 100));
    let b = audio.next_block(100).unwrap();
    assert_eq!(b.first, SampleIndex(142));
    assert_eq!(audio.channels(), 2);
    assert_eq!(audio.sample_rate(), 48_000);
}
