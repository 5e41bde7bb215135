//! A/V clock discipline over 24 hours of media: an audio device 100 ppm fast or slow (and
//! exact) stays within one AAC frame (1024 samples) of the master grid throughout, and ends
//! there, with corrections made at the rate the drift requires.
//!
//! # How 24 hours run in seconds
//! The simulated device's blocks become due on [`SimulatedClocks`], which jump instead of
//! waiting. What remains is the cost of the samples themselves: 24 h at 48 kHz is 4.1 billion
//! sample frames, too many to generate and copy in a test. Two runs cover it:
//!
//! * **48 kHz, counts only.** [`ClockDiscipline`] — the measuring and deciding part of
//!   [`DisciplinedAudio`], the same code — is fed the real device timing
//!   ([`SimulatedDeviceAudio::advance`]) block by block without sample data. This checks the
//!   exact numbers of the requirement: |offset| ≤ 1024 samples, 414 720 samples corrected.
//! * **8 kHz, real samples.** The whole wrapper runs on a real tone for 24 h at 8 kHz. The
//!   loop works in frames and seconds: a 100 ppm device gains 100 ppm × rate × t frames at any
//!   rate, i.e. the same 8.64 s a day, and block jitter in seconds is the same. Scaling the rate
//!   by 1/6 scales every frame count by 1/6 and leaves every time the same, so the bound is
//!   asserted in time: one AAC frame at 48 kHz (21.3 ms) is 170 frames at 8 kHz — stricter than
//!   1024 frames at 8 kHz would be.
//!
//! The offset measured is the real A/V error: output frames so far minus `rate ×` the master
//! time at which the device *captured* the last of them (known exactly from the simulated
//! device clock), not the time a jittered block happened to arrive.
//!
//! [`SimulatedClocks`]: smoothcast::time::SimulatedClocks

use smoothcast::capture::discipline::{
    ClockDiscipline, Correction, DisciplineConfig, DisciplinedAudio, SimulatedDeviceAudio,
};
use smoothcast::capture::AudioSource;
use smoothcast::time::{Clocks, SampleIndex, SimulatedClocks};
use std::sync::Arc;
use std::time::Duration;

const DAY_S: u64 = 86_400;
/// 2024-06-01T00:00:00Z: any start works, the discipline only uses monotonic time.
const START_UTC_NS: u128 = 1_717_200_000_000_000_000;

/// Master time (ns since the device started) at which a device `ppm` fast captured its
/// `frames`-th frame.
fn capture_ns(frames: u64, rate: u32, ppm: i64) -> u128 {
    let ppb = 1_000_000_000i128 + i128::from(ppm) * 1000;
    u128::from(frames) * 1_000_000_000 * 1_000_000_000 / (u128::from(rate) * ppb as u128)
}

/// Output frames minus the master-grid frames at the capture time of the last one.
fn offset(out_frames: u64, delivered: u64, rate: u32, ppm: i64) -> f64 {
    out_frames as f64 - capture_ns(delivered, rate, ppm) as f64 * f64::from(rate) / 1e9
}

/// What one simulated run measured.
#[derive(Debug)]
struct Run {
    max_abs_offset: f64,
    final_offset: f64,
    dropped: u64,
    inserted: u64,
    steps: u64,
    device_ppm: f64,
}

/// 48 kHz for `hours` with `block`-frame blocks arriving up to `jitter` late, counts only.
fn run_counts_48k(ppm: i64, hours: u64, block: usize, jitter: Duration) -> Run {
    const RATE: u32 = 48_000;
    let clocks = SimulatedClocks::new(START_UTC_NS);
    let mut device = SimulatedDeviceAudio::new(RATE, 2, SampleIndex(0), ppm as f64, clocks.clone())
        .with_jitter(jitter, 0xA5A5 ^ ppm as u64);
    let mut d = ClockDiscipline::new(RATE, DisciplineConfig::default());
    let mut out: u64 = 0;
    let mut max_abs: f64 = 0.0;
    let end = Duration::from_secs(hours * 3600);
    let mut next_checkpoint = Duration::from_secs(3600);
    while clocks.monotonic() < end {
        device.advance(block);
        let b = block as u64;
        out = match d.on_block(block, clocks.monotonic()) {
            Correction::None => out + b,
            Correction::Drop(n) => out + b - u64::from(n),
            Correction::Insert(n) => out + b + u64::from(n),
            Correction::Fill(n) => out + b + n,
            Correction::Skip(n) => out + b - n,
        };
        let off = offset(out, device.delivered(), RATE, ppm);
        max_abs = max_abs.max(off.abs());
        if clocks.monotonic() >= next_checkpoint {
            assert!(
                off.abs() <= 1024.0,
                "{ppm} ppm: offset {off:.1} samples at {:?}",
                clocks.monotonic()
            );
            next_checkpoint += Duration::from_secs(3600);
        }
    }
    let s = d.status();
    Run {
        max_abs_offset: max_abs,
        final_offset: offset(out, device.delivered(), RATE, ppm),
        dropped: s.dropped,
        inserted: s.inserted,
        steps: s.steps,
        device_ppm: s.device_ppm,
    }
}

fn assert_day(ppm: i64, r: &Run, rate: u32, bound: f64) {
    eprintln!("{ppm:+} ppm at {rate} Hz: {r:?}");
    assert!(
        r.max_abs_offset <= bound,
        "{ppm} ppm: offset reached {:.1} frames",
        r.max_abs_offset
    );
    assert!(r.final_offset.abs() <= bound);
    assert_eq!(r.steps, 0, "drift alone must never look like lost samples");
    // A day of drift: ppm × rate × 86 400 frames (414 720 at 48 kHz), corrected one at a time,
    // in the right direction only.
    let expected = (ppm.unsigned_abs() * u64::from(rate) * DAY_S) as f64 / 1e6;
    let (made, wrong) = if ppm >= 0 {
        (r.dropped, r.inserted)
    } else {
        (r.inserted, r.dropped)
    };
    let net = made as f64 - wrong as f64;
    assert!(
        (net - expected).abs() <= bound,
        "{ppm} ppm: net {net} corrections, expected {expected}"
    );
    // Jitter makes the estimate wander by a few frames; the dead band keeps that from costing
    // pairs of opposite corrections. An exact device is corrected only where the estimate
    // (±0.5 ppm of noise) wanders out of the dead band: well under 0.1 % of what a 100 ppm
    // device needs (without the dead band it was tens of thousands).
    if ppm == 0 {
        let limit = 100 * u64::from(rate) * DAY_S / 1_000_000_000;
        assert!(made + wrong <= limit, "0 ppm: {made} + {wrong} corrections");
    } else {
        assert_eq!(wrong, 0, "{ppm} ppm: corrections in the wrong direction");
    }
    assert!(
        (r.device_ppm - ppm as f64).abs() < 2.0,
        "{ppm} ppm: estimated {}",
        r.device_ppm
    );
}

#[test]
fn device_100_ppm_fast_stays_within_one_aac_frame_for_24h_at_48khz() {
    let r = run_counts_48k(100, 24, 1024, Duration::from_millis(5));
    assert_day(100, &r, 48_000, 1024.0);
    // The requirement is one AAC frame; the loop does far better.
    assert!(r.max_abs_offset <= 256.0, "{r:?}");
}

#[test]
fn device_100_ppm_slow_stays_within_one_aac_frame_for_24h_at_48khz() {
    let r = run_counts_48k(-100, 24, 1024, Duration::from_millis(5));
    assert_day(-100, &r, 48_000, 1024.0);
    assert!(r.max_abs_offset <= 256.0, "{r:?}");
}

#[test]
fn exact_device_is_left_alone_for_24h_at_48khz() {
    // Larger blocks (43 ms) here, for variety and to keep the suite fast.
    let r = run_counts_48k(0, 24, 2048, Duration::from_millis(5));
    assert_day(0, &r, 48_000, 1024.0);
    assert!(r.max_abs_offset <= 256.0, "{r:?}");
}

/// Heavy scheduling jitter (blocks up to 40 ms late, far beyond the half-AAC-frame step
/// threshold) is not mistaken for lost samples and does not disturb the lock.
#[test]
fn blocks_arriving_up_to_40ms_late_are_not_taken_for_lost_samples() {
    let r = run_counts_48k(100, 2, 1024, Duration::from_millis(40));
    eprintln!("{r:?}");
    assert_eq!(r.steps, 0);
    assert!(r.max_abs_offset <= 1024.0, "{r:?}");
    // The dead band widens with the jitter, so back-and-forth corrections stay rare.
    assert!(r.inserted * 100 <= r.dropped, "{r:?}");
}

/// 24 h at 8 kHz through [`DisciplinedAudio`] with real samples; see the module doc for why
/// 8 kHz. Returns the run and checks on the way that block indices are contiguous.
fn run_samples_8k(ppm: i64) -> Run {
    const RATE: u32 = 8_000;
    let clocks = SimulatedClocks::new(START_UTC_NS);
    let start = SampleIndex(1_717_200_000 * u64::from(RATE));
    let device = SimulatedDeviceAudio::new(RATE, 1, start, ppm as f64, clocks.clone())
        .with_jitter(Duration::from_millis(5), 77);
    let mut audio = DisciplinedAudio::new(device, clocks.clone() as Arc<dyn Clocks>);
    let monitor = audio.monitor();
    let mut next = start;
    let mut max_abs: f64 = 0.0;
    let end = Duration::from_secs(DAY_S);
    while clocks.monotonic() < end {
        let block = audio.next_block(2048).unwrap();
        assert_eq!(block.first, next, "output indices must be contiguous");
        assert!(block.frames() <= 2048);
        next = SampleIndex(next.0 + block.frames() as u64);
        let out = next.0 - start.0;
        let delivered = audio.inner().delivered();
        // Frames delivered but not yet handed out (an inserted frame waits for the next block).
        let s = audio.status();
        let pending = delivered as i64 - s.corrected_frames - out as i64;
        // Several inserted frames can wait for the next block, never more than a block's worth
        // of corrections.
        assert!((0..=32).contains(&pending), "pending {pending}");
        let off = offset(out + pending as u64, delivered, RATE, ppm);
        max_abs = max_abs.max(off.abs());
    }
    let s = monitor.snapshot();
    assert_eq!(s, audio.status(), "the monitor sees the latest status");
    let out = next.0 - start.0;
    Run {
        max_abs_offset: max_abs,
        final_offset: offset(out, audio.inner().delivered(), RATE, ppm)
            - (audio.inner().delivered() as i64 - s.corrected_frames - out as i64) as f64,
        dropped: s.dropped,
        inserted: s.inserted,
        steps: s.steps,
        device_ppm: s.device_ppm,
    }
}

/// One AAC frame at 48 kHz (21.3 ms) in 8 kHz frames.
const AAC_FRAME_AT_8K: f64 = 1024.0 * 8_000.0 / 48_000.0;

#[test]
fn real_samples_device_100_ppm_fast_for_24h_at_8khz() {
    let r = run_samples_8k(100);
    assert_day(100, &r, 8_000, AAC_FRAME_AT_8K);
}

#[test]
fn real_samples_device_100_ppm_slow_for_24h_at_8khz() {
    let r = run_samples_8k(-100);
    assert_day(-100, &r, 8_000, AAC_FRAME_AT_8K);
}
