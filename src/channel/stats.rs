//! Input counters and audio meters, written by the capture and audio threads for status
//! displays (the control API reads them through [`super::ChannelMonitor::status`]).
//!
//! The writers are hot paths: O(1) relaxed atomics per video frame, one O(n) pass without
//! allocation per audio block. Readers never take a lock the pipeline holds.

use crate::capture::{FrameOrigin, VideoFrame};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};

/// Audio channels metered (plans have 1 or 2; capture devices may carry more).
pub const METER_CHANNELS: usize = 8;
/// The level reported for digital silence (and before the first window), in dBFS.
pub const METER_FLOOR_DBFS: f32 = -120.0;
/// Length of one meter window in milliseconds of audio (close to a VU meter's 300 ms).
pub const METER_WINDOW_MS: u32 = 300;

/// Counters of the channel's inputs.
#[derive(Debug, Default)]
pub struct InputCounters {
    /// Picture size the video source produces (pixels).
    pub video_size: (u32, u32),
    /// Pictures delivered by the video source.
    pub video_frames: AtomicU64,
    /// Of those, fills for a missing input picture (repeat, black, slate).
    pub video_filled: AtomicU64,
    /// Frame index (master clock) of the latest picture + 1; 0 = none yet.
    video_next_index: AtomicU64,
    /// [`FrameOrigin`] of the latest picture (see `origin_code`).
    video_origin: AtomicU8,
    /// Audio sample frames (samples per channel) delivered by the audio source.
    pub audio_samples: AtomicU64,
    /// Peak and RMS level per channel of the latest complete meter window.
    pub meter: AudioMeter,
}

fn origin_code(o: FrameOrigin) -> u8 {
    match o {
        FrameOrigin::Live => 1,
        FrameOrigin::Repeat => 2,
        FrameOrigin::Black => 3,
        FrameOrigin::Slate => 4,
    }
}

impl InputCounters {
    /// A video source of `size` pixels.
    pub fn new(video_size: (u32, u32)) -> InputCounters {
        InputCounters {
            video_size,
            ..InputCounters::default()
        }
    }

    /// Counts a picture the video source delivered.
    pub(crate) fn note_video(&self, f: &VideoFrame) {
        self.video_frames.fetch_add(1, Ordering::Relaxed);
        if f.origin != FrameOrigin::Live {
            self.video_filled.fetch_add(1, Ordering::Relaxed);
        }
        self.video_origin
            .store(origin_code(f.origin), Ordering::Relaxed);
        self.video_next_index
            .store(f.index.0.saturating_add(1), Ordering::Relaxed);
    }

    /// Frame index (master clock) of the latest picture, if any.
    pub fn video_last_index(&self) -> Option<u64> {
        self.video_next_index.load(Ordering::Relaxed).checked_sub(1)
    }

    /// Where the latest picture came from (`None` before the first one).
    pub fn video_origin(&self) -> Option<FrameOrigin> {
        match self.video_origin.load(Ordering::Relaxed) {
            1 => Some(FrameOrigin::Live),
            2 => Some(FrameOrigin::Repeat),
            3 => Some(FrameOrigin::Black),
            4 => Some(FrameOrigin::Slate),
            _ => None,
        }
    }
}

/// The published audio levels: per channel, the peak and RMS of the latest complete window,
/// in dBFS (0 dBFS = sample magnitude 32768; a full-scale sine has an RMS of −3.01 dBFS).
#[derive(Debug, Default)]
pub struct AudioMeter {
    /// `f32::to_bits` of the peak level per channel.
    peak: [AtomicU32; METER_CHANNELS],
    /// `f32::to_bits` of the RMS level per channel.
    rms: [AtomicU32; METER_CHANNELS],
    /// Channels metered (0 before the first window).
    channels: AtomicU8,
    /// Windows published so far.
    pub windows: AtomicU64,
}

impl AudioMeter {
    /// `(peak_dbfs, rms_dbfs)` per channel of the latest window (empty before the first one).
    pub fn levels(&self) -> Vec<(f32, f32)> {
        let n = usize::from(self.channels.load(Ordering::Acquire)).min(METER_CHANNELS);
        (0..n)
            .map(|c| {
                (
                    f32::from_bits(self.peak[c].load(Ordering::Relaxed)),
                    f32::from_bits(self.rms[c].load(Ordering::Relaxed)),
                )
            })
            .collect()
    }
}

/// Level in dBFS of a magnitude in sample units, floored at [`METER_FLOOR_DBFS`].
pub fn dbfs(magnitude: f64) -> f32 {
    if magnitude <= 0.0 {
        return METER_FLOOR_DBFS;
    }
    ((20.0 * (magnitude / 32768.0).log10()) as f32).max(METER_FLOOR_DBFS)
}

/// One meter window being accumulated, owned by the audio thread.
#[derive(Debug)]
pub struct MeterWindow {
    channels: usize,
    /// Sample frames per window.
    len: usize,
    frames: usize,
    peak: [u32; METER_CHANNELS],
    sum_sq: [u64; METER_CHANNELS],
}

impl MeterWindow {
    /// A window of [`METER_WINDOW_MS`] at `sample_rate` for interleaved `channels`.
    pub fn new(sample_rate: u32, channels: u16) -> MeterWindow {
        let len = (u64::from(sample_rate) * u64::from(METER_WINDOW_MS) / 1000).max(1);
        MeterWindow {
            channels: usize::from(channels).clamp(1, METER_CHANNELS),
            len: usize::try_from(len).unwrap_or(usize::MAX),
            frames: 0,
            peak: [0; METER_CHANNELS],
            sum_sq: [0; METER_CHANNELS],
        }
    }

    /// Adds interleaved samples (`channels` per frame; channels beyond [`METER_CHANNELS`]
    /// are not metered) and publishes every completed window to `meter`.
    pub fn feed(&mut self, samples: &[i16], interleaved: usize, meter: &AudioMeter) {
        let stride = interleaved.max(1);
        let n = self.channels.min(stride);
        for frame in samples.chunks_exact(stride) {
            for (c, &s) in frame.iter().take(n).enumerate() {
                let m = u32::from(s.unsigned_abs());
                self.peak[c] = self.peak[c].max(m);
                self.sum_sq[c] += u64::from(m * m);
            }
            self.frames += 1;
            if self.frames >= self.len {
                self.publish(n, meter);
            }
        }
    }

    fn publish(&mut self, n: usize, meter: &AudioMeter) {
        let frames = self.frames.max(1) as f64;
        for c in 0..n {
            let rms = (self.sum_sq[c] as f64 / frames).sqrt();
            meter.peak[c].store(dbfs(f64::from(self.peak[c])).to_bits(), Ordering::Relaxed);
            meter.rms[c].store(dbfs(rms).to_bits(), Ordering::Relaxed);
        }
        meter.channels.store(n as u8, Ordering::Release);
        meter.windows.fetch_add(1, Ordering::Relaxed);
        self.frames = 0;
        self.peak = [0; METER_CHANNELS];
        self.sum_sq = [0; METER_CHANNELS];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(dbfs_peak: f64, hz: f64, rate: u32, frames: usize, channels: usize) -> Vec<i16> {
        let amp = 32768.0 * 10f64.powf(dbfs_peak / 20.0);
        let mut v = Vec::with_capacity(frames * channels);
        for i in 0..frames {
            let x = (amp * (std::f64::consts::TAU * hz * i as f64 / f64::from(rate)).sin()).round()
                as i16;
            for c in 0..channels {
                // Right channel 6 dB quieter so the channels are told apart.
                v.push(if c == 0 { x } else { x / 2 });
            }
        }
        v
    }

    #[test]
    fn sine_at_minus_20_dbfs_reads_minus_20_peak_and_minus_23_rms() {
        let meter = AudioMeter::default();
        let mut w = MeterWindow::new(48_000, 2);
        // Fed in odd-sized blocks: windows span block boundaries.
        let s = sine(-20.0, 1000.0, 48_000, 48_000, 2);
        for block in s.chunks(2 * 1000 + 2) {
            w.feed(block, 2, &meter);
        }
        let levels = meter.levels();
        assert_eq!(levels.len(), 2);
        assert_eq!(meter.windows.load(Ordering::Relaxed), 3);
        let (peak, rms) = levels[0];
        assert!((peak - -20.0).abs() < 0.05, "peak {peak}");
        assert!((rms - -23.01).abs() < 0.05, "rms {rms}");
        let (peak_r, rms_r) = levels[1];
        assert!((peak_r - -26.02).abs() < 0.1, "right peak {peak_r}");
        assert!((rms_r - -29.03).abs() < 0.1, "right rms {rms_r}");
    }

    #[test]
    fn silence_reads_the_floor_and_full_scale_reads_zero() {
        let meter = AudioMeter::default();
        assert!(meter.levels().is_empty());
        let mut w = MeterWindow::new(1000, 1);
        w.feed(&[0i16; 300], 1, &meter);
        assert_eq!(meter.levels(), vec![(METER_FLOOR_DBFS, METER_FLOOR_DBFS)]);
        w.feed(&[i16::MIN; 300], 1, &meter);
        assert_eq!(meter.levels(), vec![(0.0, 0.0)]);
    }

    #[test]
    fn video_counters_track_fills_and_the_latest_index() {
        let c = InputCounters::new((64, 36));
        assert_eq!(c.video_last_index(), None);
        assert_eq!(c.video_origin(), None);
        let mut f = VideoFrame {
            index: crate::time::FrameIndex(41),
            width: 64,
            height: 36,
            data: std::sync::Arc::new(Vec::new()),
            origin: FrameOrigin::Live,
        };
        c.note_video(&f);
        f.index = crate::time::FrameIndex(42);
        f.origin = FrameOrigin::Repeat;
        c.note_video(&f);
        assert_eq!(c.video_last_index(), Some(42));
        assert_eq!(c.video_origin(), Some(FrameOrigin::Repeat));
        assert_eq!(c.video_frames.load(Ordering::Relaxed), 2);
        assert_eq!(c.video_filled.load(Ordering::Relaxed), 1);
    }
}
