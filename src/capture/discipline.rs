//! A/V clock discipline: keeps an audio device's samples on the master audio grid for ever
//! (design.md, "Time model" 4).
//!
//! An audio device runs on its own crystal: a "48 kHz" card may deliver 48 004.8 samples per
//! second of the master clock (+100 ppm), which is 8.6 s a day. The encoder labels output sample
//! `s` with the master time `s / rate`, so without correction audio would drift away from video
//! by that much. [`DisciplinedAudio`] wraps any [`AudioSource`]:
//!
//! 1. **Measure.** Each block's arrival is timed on the injected master clock (monotonic). The
//!    device's lead over the grid, `δ(t) = device frames − rate × (t − t₀)`, is noisy (blocks
//!    arrive with scheduling jitter of milliseconds) but drifts slowly and linearly. A type-2
//!    tracking loop ([`ClockDiscipline`]: a PI loop on `δ` whose integrator is the device's rate
//!    error) follows that line with zero lag at constant drift and averages the jitter out
//!    over tens of seconds.
//! 2. **Correct.** Output frames = device frames − net corrections. Whenever the estimated lead
//!    differs from the corrections made so far by more than a small dead band (16 frames), one
//!    sample frame is dropped (device fast) or inserted (device slow). Corrections are spread out (at most one per 10 ms of
//!    audio, i.e. up to 10 000 ppm at 48 kHz… far above real devices) and placed where the
//!    signal is smoothest in a small window, so they are inaudible on programme audio.
//! 3. **Recover.** Samples lost in an overrun (or a burst of extra ones) show up as a lead error
//!    larger than half an AAC frame that persists; after a hold time (so that one late block is
//!    not mistaken for it) the loop re-anchors and the gap is filled with silence (or the excess
//!    skipped) at once.
//!
//! The property kept: the output's sample index `s` and master time `s / rate` differ by less
//! than one AAC frame (1024 samples) at all times, for as long as the channel runs.
//!
//! [`SimulatedDeviceAudio`] is a device for tests: a tone whose blocks become due on the
//! simulated master clock as if the device ran `ppm` fast or slow, with arrival jitter and
//! optional overruns, so a 24-hour run takes seconds.

use super::{AudioBlock, AudioSource, CaptureError};
use crate::time::{Clocks, SampleIndex};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Tuning of [`ClockDiscipline`]. The defaults suit every real device; tests change them only
/// to provoke edge cases.
#[derive(Clone, Debug, PartialEq)]
pub struct DisciplineConfig {
    /// Natural frequency of the tracking loop in Hz once locked. Lower averages more jitter
    /// away but follows changes (temperature drift of the crystal) more slowly.
    pub loop_hz: f64,
    /// Natural frequency in Hz during acquisition, so that the device's rate error is learnt
    /// in seconds rather than minutes.
    pub acquire_hz: f64,
    /// How long (master time from the first block) the loop runs at `acquire_hz`.
    pub acquire_for: Duration,
    /// No corrections are made for this long after the first block: the loop first learns the
    /// device's constant latency and jitter, so that the arbitrary lateness of the very first
    /// block is not "corrected" into a permanent offset. The drift it lets through (100 ppm × 10 s = 48 frames at 48 kHz) is
    /// corrected right after.
    pub settle_for: Duration,
    /// Damping ratio of the loop (0.7–1.0: little or no overshoot).
    pub damping: f64,
    /// Corrections start when the estimated offset reaches this many frames, and bring it back
    /// just inside. Jitter moves the estimate by a few frames; without a dead band every such
    /// wobble would cost a pair of opposite corrections. The offset it allows (0.33 ms at
    /// 48 kHz) is far below the one-AAC-frame bound. Widened to 0.3 × the measured mean
    /// jitter when blocks arrive very irregularly.
    pub deadband: u32,
    /// The most a device may be off, in ppm: caps the rate estimate, and sets the minimum
    /// spacing of single-sample corrections to `1e6 / (2 × max_ppm)` frames so that there is
    /// twice the correction capacity needed.
    pub max_ppm: f64,
    /// A measured lead this far (in frames) from the loop's prediction is not jitter-free
    /// drift: a late block, or lost/extra samples. Half an AAC frame by default; raised to six
    /// times the measured mean jitter when blocks arrive more irregularly than that.
    pub step_threshold: u32,
    /// How long (master time) such an error must persist before the loop re-anchors and the
    /// gap is filled with silence or the excess skipped.
    pub step_hold: Duration,
    /// Frames searched around each correction point for the smoothest place.
    pub search_window: usize,
}

impl Default for DisciplineConfig {
    fn default() -> Self {
        DisciplineConfig {
            loop_hz: 0.003,
            acquire_hz: 0.05,
            acquire_for: Duration::from_secs(120),
            settle_for: Duration::from_secs(10),
            damping: 0.8,
            deadband: 16,
            max_ppm: 5_000.0,
            step_threshold: 512,
            step_hold: Duration::from_secs(1),
            search_window: 256,
        }
    }
}

/// What to do to the block just measured, in sample frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Correction {
    /// Pass the block through.
    None,
    /// Remove this many single frames, spread over the block (device fast).
    Drop(u32),
    /// Insert this many single frames, spread over the block (device slow).
    Insert(u32),
    /// Insert this many frames of silence before the block (samples were lost).
    Fill(u64),
    /// Remove this many frames from the start of the block (extra samples arrived).
    Skip(u64),
}

/// A snapshot of the discipline of one audio input, for status displays.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DisciplineStatus {
    /// Estimated device rate error in ppm (positive: the device runs fast).
    pub device_ppm: f64,
    /// Estimated lead of the device over the master grid since the first block, in frames
    /// (after its constant latency and jitter are taken out).
    pub drift_frames: f64,
    /// Net frames removed so far: dropped + skipped − inserted − filled.
    pub corrected_frames: i64,
    /// `drift_frames − corrected_frames`: the estimated offset of the output from the master
    /// grid, in frames (positive: output ahead). Stays well within ±1024.
    pub residual_frames: f64,
    /// Single frames inserted.
    pub inserted: u64,
    /// Single frames dropped.
    pub dropped: u64,
    /// Frames of silence filled in for lost samples.
    pub filled: u64,
    /// Frames skipped as excess.
    pub skipped: u64,
    /// Times the loop re-anchored after lost or extra samples.
    pub steps: u64,
    /// Blocks measured.
    pub blocks: u64,
}

/// The measuring and deciding half of the discipline, free of sample data: feed it each
/// block's size and arrival time on the master clock, apply the [`Correction`] it returns.
#[derive(Clone, Debug)]
pub struct ClockDiscipline {
    rate: f64,
    config: DisciplineConfig,
    /// Master time (ns) of the first block and device frames delivered by then.
    origin: Option<(u128, u64)>,
    device_frames: u64,
    /// Loop state: estimated lead (frames) at `last_t`, and its slope (frames per second).
    est: f64,
    slope: f64,
    last_t: u128,
    /// Master time (ns) since which measurements disagree with the loop by more than the
    /// step threshold.
    outlier_since: Option<u128>,
    /// Mean absolute disagreement of the non-outlier measurements (frames): the jitter.
    jitter: f64,
    /// The lead at the first block as the settled loop sees it (frames): the constant part of
    /// the measurements, which corrections must leave alone. `None` while settling.
    anchor: Option<f64>,
    /// Frames of correction capacity accumulated (one correction costs `min_spacing`).
    credit: u64,
    /// A step is being corrected: fill or skip until the lead is matched, not frame by frame.
    bulk: bool,
    min_spacing: u64,
    status: DisciplineStatus,
}

impl ClockDiscipline {
    /// A discipline for a device at nominal `sample_rate` frames per second.
    pub fn new(sample_rate: u32, config: DisciplineConfig) -> ClockDiscipline {
        let max_ppm = config.max_ppm.clamp(1.0, 100_000.0);
        ClockDiscipline {
            rate: f64::from(sample_rate.max(1)),
            min_spacing: (1e6 / (2.0 * max_ppm)).max(1.0) as u64,
            config,
            origin: None,
            device_frames: 0,
            est: 0.0,
            slope: 0.0,
            last_t: 0,
            outlier_since: None,
            jitter: 0.0,
            anchor: None,
            credit: 0,
            bulk: false,
            status: DisciplineStatus::default(),
        }
    }

    /// A block of `frames` device frames arrived at master monotonic time `at`. Returns what to
    /// do to it; the corrections returned are counted as done.
    pub fn on_block(&mut self, frames: usize, at: Duration) -> Correction {
        let t = at.as_nanos();
        self.device_frames += frames as u64;
        self.status.blocks += 1;
        let Some((t0, d0)) = self.origin else {
            // The first block defines the grid position: its end is "now".
            self.origin = Some((t, self.device_frames));
            self.last_t = t;
            return Correction::None;
        };
        // Lead of the device over the master grid since the first block (frames).
        let elapsed = t.saturating_sub(t0);
        let expected = (elapsed as f64) * self.rate / 1e9;
        let delta = (self.device_frames - d0) as f64 - expected;
        let dt = (t.saturating_sub(self.last_t) as f64 / 1e9).min(1.0);
        self.last_t = t;
        let predicted = self.est + self.slope * dt;
        let err = delta - predicted;
        let threshold = f64::from(self.config.step_threshold).max(6.0 * self.jitter);
        if err.abs() > threshold {
            let since = *self.outlier_since.get_or_insert(t);
            if t - since >= self.config.step_hold.as_nanos() {
                // Persistent: samples were lost or gained. Re-anchor; the correction below
                // fills or skips the difference at once.
                self.est = delta;
                self.outlier_since = None;
                self.bulk = true;
                self.status.steps += 1;
                tracing::warn!(
                    frames = err,
                    "audio discipline: device lost or gained samples"
                );
            } else {
                // Probably a late block: coast on the prediction.
                self.est = predicted;
            }
        } else {
            self.outlier_since = None;
            // Mean absolute jitter over ~10 s.
            self.jitter += (dt / 10.0).min(1.0) * (err.abs() - self.jitter);
            let hz = if elapsed < self.config.acquire_for.as_nanos() {
                self.config.acquire_hz
            } else {
                self.config.loop_hz
            };
            let w = 2.0 * std::f64::consts::PI * hz;
            self.est = predicted + (2.0 * self.config.damping * w * dt).min(1.0) * err;
            let max_slope = self.config.max_ppm * 1e-6 * self.rate;
            self.slope = (self.slope + w * w * dt * err).clamp(-max_slope, max_slope);
        }
        if self.anchor.is_none() && elapsed >= self.config.settle_for.as_nanos() {
            // The loop's line extrapolated back to the first block: the constant part of the
            // lead. Its error (rate error × settling time) is a small constant offset.
            self.anchor = Some(self.est - self.slope * elapsed as f64 / 1e9);
        }
        let c = match self.anchor {
            Some(_) => self.correct(frames),
            None => Correction::None,
        };
        self.status.device_ppm = self.slope / self.rate * 1e6;
        self.status.drift_frames = self.est - self.anchor.unwrap_or(0.0);
        self.status.residual_frames =
            self.status.drift_frames - self.status.corrected_frames as f64;
        c
    }

    /// The correction for a block of `frames`: bulk beyond the step threshold, else single
    /// frames at no more than one per `min_spacing` frames.
    fn correct(&mut self, frames: usize) -> Correction {
        let want = self.est - self.anchor.unwrap_or(0.0) - self.status.corrected_frames as f64;
        let frames = frames as u64;
        let s = &mut self.status;
        if want.abs() < 1.0 {
            self.bulk = false;
        }
        if self.bulk || want.abs() >= f64::from(self.config.step_threshold) {
            self.bulk = true;
            // At most ten seconds of silence at once: a bound on what a bug could ask for.
            let n = (want.abs().round() as u64).min(10 * self.rate as u64);
            return if want > 0.0 {
                let n = n.min(frames);
                s.skipped += n;
                s.corrected_frames += n as i64;
                if n == 0 {
                    Correction::None
                } else {
                    Correction::Skip(n)
                }
            } else {
                s.filled += n;
                s.corrected_frames -= n as i64;
                Correction::Fill(n)
            };
        }
        self.credit = (self.credit + frames).min(frames + self.min_spacing);
        // The estimate wobbles in proportion to the jitter: widen the band with it.
        let deadband = f64::from(self.config.deadband.max(1)).max(0.3 * self.jitter);
        if want.abs() < deadband {
            return Correction::None;
        }
        // Back to just inside the dead band.
        let n = ((want.abs() - deadband).floor() as u64 + 1)
            .min(self.credit / self.min_spacing)
            .min(frames)
            .min(u64::from(u32::MAX));
        if n == 0 {
            return Correction::None;
        }
        self.credit -= n * self.min_spacing;
        if want > 0.0 {
            s.dropped += n;
            s.corrected_frames += n as i64;
            Correction::Drop(n as u32)
        } else {
            s.inserted += n;
            s.corrected_frames -= n as i64;
            Correction::Insert(n as u32)
        }
    }

    /// The current state.
    pub fn status(&self) -> &DisciplineStatus {
        &self.status
    }
}

/// A shared view of a [`DisciplinedAudio`]'s status, readable from another thread while the
/// source runs in the audio pipeline thread.
#[derive(Clone, Debug, Default)]
pub struct DisciplineMonitor(Arc<Mutex<DisciplineStatus>>);

impl DisciplineMonitor {
    /// The latest status (updated once per device block).
    pub fn snapshot(&self) -> DisciplineStatus {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn publish(&self, s: &DisciplineStatus) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone_from(s);
    }
}

/// An [`AudioSource`] that keeps a device source on the master audio grid: its blocks'
/// sample indices are contiguous from the device's first index, and index `s` is within one
/// AAC frame of master time `s / rate` however far the device's clock is off. See the module
/// documentation.
///
/// Wrap only sources paced by their device's clock (capture devices, [`SimulatedDeviceAudio`]):
/// the arrival time of each block *is* the measurement. A file or synthetic source in fast
/// mode would be measured as infinitely fast.
pub struct DisciplinedAudio<S: AudioSource> {
    inner: S,
    clocks: Arc<dyn Clocks>,
    discipline: ClockDiscipline,
    channels: usize,
    search_window: usize,
    /// Sample index of the next output frame (on the master grid); set by the first block.
    next: Option<SampleIndex>,
    /// Corrected frames not yet handed out (interleaved).
    pending: Vec<i16>,
    monitor: DisciplineMonitor,
}

impl<S: AudioSource> DisciplinedAudio<S> {
    /// Disciplines `inner` against the monotonic time of `clocks` with default tuning.
    pub fn new(inner: S, clocks: Arc<dyn Clocks>) -> DisciplinedAudio<S> {
        DisciplinedAudio::with_config(inner, clocks, DisciplineConfig::default())
    }

    /// Disciplines `inner` with the given tuning.
    pub fn with_config(
        inner: S,
        clocks: Arc<dyn Clocks>,
        config: DisciplineConfig,
    ) -> DisciplinedAudio<S> {
        DisciplinedAudio {
            channels: usize::from(inner.channels().max(1)),
            search_window: config.search_window.max(1),
            discipline: ClockDiscipline::new(inner.sample_rate(), config),
            inner,
            clocks,
            next: None,
            pending: Vec::new(),
            monitor: DisciplineMonitor::default(),
        }
    }

    /// The current status.
    pub fn status(&self) -> DisciplineStatus {
        self.discipline.status().clone()
    }

    /// A handle that reads the status from another thread.
    pub fn monitor(&self) -> DisciplineMonitor {
        self.monitor.clone()
    }

    /// Publishes the status through `monitor` instead of a handle of its own: a device that is
    /// reopened after a loss gets a new discipline (a new stream, a new clock relation), and
    /// status displays keep reading the same handle.
    pub fn with_monitor(mut self, monitor: DisciplineMonitor) -> DisciplinedAudio<S> {
        self.monitor = monitor;
        self
    }

    /// The wrapped source.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Applies `c` to the interleaved `samples` and appends the result to `pending`.
    fn apply(&mut self, c: Correction, samples: Vec<i16>) {
        let ch = self.channels;
        let frames = samples.len() / ch;
        match c {
            Correction::None => self.pending.extend_from_slice(&samples),
            Correction::Fill(n) => {
                let n = usize::try_from(n).unwrap_or(0);
                self.pending.resize(self.pending.len() + n * ch, 0);
                self.pending.extend_from_slice(&samples);
            }
            Correction::Skip(n) => {
                let n = usize::try_from(n).unwrap_or(usize::MAX).min(frames);
                self.pending.extend_from_slice(&samples[n * ch..]);
            }
            Correction::Drop(n) | Correction::Insert(n) => {
                let n = (n as usize).min(frames);
                if n == 0 || frames == 0 {
                    self.pending.extend_from_slice(&samples);
                    return;
                }
                let drop = matches!(c, Correction::Drop(_));
                let mut from = 0;
                for k in 0..n {
                    // Spread: the k-th correction lands in the k-th of n equal segments.
                    let (lo, hi) = (k * frames / n, (k + 1) * frames / n);
                    let i = smoothest(&samples, ch, lo.max(from), hi, self.search_window, drop)
                        .max(from);
                    if i >= frames {
                        break;
                    }
                    if drop {
                        // Frame i goes: its neighbours i−1 and i+1 become adjacent.
                        self.pending.extend_from_slice(&samples[from * ch..i * ch]);
                        from = i + 1;
                    } else {
                        // A frame between i and i+1: their average (or a repeat at the end).
                        self.pending
                            .extend_from_slice(&samples[from * ch..=i * ch + ch - 1]);
                        for c in 0..ch {
                            let a = i32::from(samples[i * ch + c]);
                            let b = samples.get((i + 1) * ch + c).map_or(a, |&b| i32::from(b));
                            self.pending.push(((a + b) / 2) as i16);
                        }
                        from = i + 1;
                    }
                }
                self.pending
                    .extend_from_slice(&samples[from.min(frames) * ch..]);
            }
        }
    }
}

/// The frame in `[lo, hi)` (searching at most `window` frames around the middle) where a frame
/// is best dropped (`drop`: the smallest step between its neighbours) or inserted after (the
/// smallest step to the next frame). The step of a frame is the largest over its channels:
/// the sum would prefer a point where one channel is flat and another at its steepest, which
/// is the most audible place for the latter. Always returns an index < frames.
fn smoothest(samples: &[i16], ch: usize, lo: usize, hi: usize, window: usize, drop: bool) -> usize {
    let frames = samples.len() / ch;
    let hi = hi.min(frames);
    if lo >= hi {
        return lo.min(frames.saturating_sub(1));
    }
    let mid = lo + (hi - lo) / 2;
    let a = mid.saturating_sub(window / 2).max(lo);
    let b = (a + window).min(hi);
    let step = |x: usize, y: usize| -> i64 {
        (0..ch)
            .map(|c| (i64::from(samples[x * ch + c]) - i64::from(samples[y * ch + c])).abs())
            .max()
            .unwrap_or(0)
    };
    // Only frames whose neighbours are inside the block can be judged; the block edges are
    // the fallback (the next block's first frame is unknown here).
    let cost = |i: usize| -> i64 {
        if i + 1 >= frames || (drop && i == 0) {
            i64::MAX
        } else if drop {
            step(i - 1, i + 1)
        } else {
            step(i, i + 1)
        }
    };
    (a..b).min_by_key(|&i| cost(i)).unwrap_or(mid)
}

impl<S: AudioSource> AudioSource for DisciplinedAudio<S> {
    fn next_block(&mut self, max_frames: usize) -> Result<AudioBlock, CaptureError> {
        let ch = self.channels;
        let have = self.pending.len() / ch;
        if have < max_frames.max(1) {
            let block = self.inner.next_block(max_frames.max(1) - have)?;
            let at = self.clocks.monotonic();
            let first = *self.next.get_or_insert(block.first);
            let frames = block.frames();
            let c = self.discipline.on_block(frames, at);
            self.monitor.publish(self.discipline.status());
            let mut samples = block.samples;
            samples.truncate(frames * ch);
            if c == Correction::None && self.pending.is_empty() && frames <= max_frames {
                // The common case: hand the device's buffer on untouched.
                self.next = Some(SampleIndex(first.0 + frames as u64));
                return Ok(self.block(first, samples));
            }
            self.apply(c, samples);
        }
        let first = self.next.unwrap_or_default();
        let n = (self.pending.len() / ch).min(max_frames);
        let out: Vec<i16> = self.pending.drain(..n * ch).collect();
        self.next = Some(SampleIndex(first.0 + n as u64));
        Ok(self.block(first, out))
    }

    fn channels(&self) -> u16 {
        self.inner.channels()
    }

    fn sample_rate(&self) -> u32 {
        self.inner.sample_rate()
    }
}

impl<S: AudioSource> DisciplinedAudio<S> {
    fn block(&self, first: SampleIndex, samples: Vec<i16>) -> AudioBlock {
        AudioBlock {
            first,
            channels: self.inner.channels().max(1),
            sample_rate: self.inner.sample_rate(),
            samples,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Simulated device
// ---------------------------------------------------------------------------------------------

/// A simulated audio device for tests: a sine tone (a quarter period apart on successive
/// channels, so interleaving errors show) whose blocks become due on the master clock as if the
/// device's crystal ran `ppm` fast (positive) or slow, with optional late-arrival jitter and
/// overruns. `next_block` sleeps on the injected clocks until the block is due, so with
/// [`SimulatedClocks`] the run takes only the time to produce the samples.
///
/// [`SimulatedClocks`]: crate::time::SimulatedClocks
#[derive(Debug)]
pub struct SimulatedDeviceAudio {
    sample_rate: u32,
    channels: u16,
    clocks: Arc<dyn Clocks>,
    /// Master monotonic time at construction: when the device started capturing.
    origin: Duration,
    /// Device rate error in parts per billion.
    ppb: i64,
    /// Frames captured by the hardware (delivered or lost) and delivered.
    captured: u64,
    delivered: u64,
    /// Device-grid index of the next delivered frame.
    next: SampleIndex,
    /// One period of the tone, full scale × 0.5.
    table: Vec<i16>,
    phase: usize,
    jitter_max_ns: u64,
    rng: u64,
    /// Overrun: after this many delivered frames, this many frames are lost.
    overrun: Option<(u64, u64)>,
}

impl SimulatedDeviceAudio {
    /// A device at nominal `sample_rate` with `channels`, delivering indices from `start`,
    /// running `ppm` parts per million fast (negative: slow) against `clocks`' monotonic time.
    /// The tone is 1 kHz when that is a whole number of samples per period, else a tone with a
    /// period of 48 samples.
    pub fn new(
        sample_rate: u32,
        channels: u16,
        start: SampleIndex,
        ppm: f64,
        clocks: Arc<dyn Clocks>,
    ) -> SimulatedDeviceAudio {
        let sample_rate = sample_rate.max(1);
        let period = if sample_rate.is_multiple_of(1000) {
            (sample_rate / 1000) as usize
        } else {
            48
        };
        let table = (0..period)
            .map(|i| {
                let x = 2.0 * std::f64::consts::PI * i as f64 / period as f64;
                (x.sin() * 16_384.0).round() as i16
            })
            .collect();
        SimulatedDeviceAudio {
            sample_rate,
            channels: channels.max(1),
            origin: clocks.monotonic(),
            clocks,
            ppb: (ppm * 1000.0).round() as i64,
            captured: 0,
            delivered: 0,
            next: start,
            table,
            phase: 0,
            jitter_max_ns: 0,
            rng: 0x9E37_79B9_7F4A_7C15,
            overrun: None,
        }
    }

    /// Each block arrives late by a pseudo-random amount in `[0, max]` (seeded, repeatable).
    pub fn with_jitter(mut self, max: Duration, seed: u64) -> SimulatedDeviceAudio {
        self.jitter_max_ns = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
        self.rng = seed | 1;
        self
    }

    /// After `after` frames have been delivered, the device loses `lost` frames (an overrun):
    /// they take their time on the device clock but are never delivered.
    pub fn with_overrun(mut self, after: u64, lost: u64) -> SimulatedDeviceAudio {
        self.overrun = Some((after, lost));
        self
    }

    /// Frames delivered so far.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Captures `frames` frames without producing sample data: waits (on the clocks) until they
    /// are due, exactly as [`AudioSource::next_block`] does. For simulations that only count
    /// (24 h at 48 kHz is 4 billion samples).
    pub fn advance(&mut self, frames: usize) {
        if let Some((after, lost)) = self.overrun {
            if self.delivered + frames as u64 > after {
                self.captured += lost;
                self.overrun = None;
            }
        }
        self.captured += frames as u64;
        self.delivered += frames as u64;
        self.next = SampleIndex(self.next.0 + frames as u64);
        // The last frame is due once the device clock has counted `captured` frames:
        // captured / (rate × (1 + ppb·1e-9)) seconds of master time.
        let den = u128::from(self.sample_rate)
            * (1_000_000_000i128 + i128::from(self.ppb)).max(1) as u128;
        let ns = u128::from(self.captured) * 1_000_000_000 * 1_000_000_000 / den;
        let mut due = self.origin + Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX));
        if self.jitter_max_ns > 0 {
            // xorshift64: deterministic, cheap.
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            due += Duration::from_nanos(self.rng % (self.jitter_max_ns + 1));
        }
        let now = self.clocks.monotonic();
        if due > now {
            self.clocks.sleep(due - now);
        }
    }

    fn render(&mut self, frames: usize) -> Vec<i16> {
        let ch = usize::from(self.channels);
        let period = self.table.len();
        let mut out = vec![0i16; frames * ch];
        if ch == 1 {
            // Whole periods at a time: this is the hot loop of day-long simulations.
            let mut pos = 0;
            while pos < frames {
                let run = (period - self.phase).min(frames - pos);
                out[pos..pos + run].copy_from_slice(&self.table[self.phase..self.phase + run]);
                pos += run;
                self.phase = (self.phase + run) % period;
            }
        } else {
            for frame in out.chunks_exact_mut(ch) {
                for (c, s) in frame.iter_mut().enumerate() {
                    *s = self.table[(self.phase + c * period / 4) % period];
                }
                self.phase = (self.phase + 1) % period;
            }
        }
        out
    }
}

impl AudioSource for SimulatedDeviceAudio {
    fn next_block(&mut self, max_frames: usize) -> Result<AudioBlock, CaptureError> {
        let first = self.next;
        let samples = self.render(max_frames);
        self.advance(max_frames);
        Ok(AudioBlock {
            first,
            channels: self.channels,
            sample_rate: self.sample_rate,
            samples,
        })
    }

    fn channels(&self) -> u16 {
        self.channels
    }

    fn sample_rate(&self) -> u32 {
        self.sample_rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interleaved(frames: &[[i16; 2]]) -> Vec<i16> {
        frames.iter().flatten().copied().collect()
    }

    #[test]
    fn smoothest_point_is_where_the_neighbours_are_closest() {
        // A ramp with a flat spot around frame 5.
        let v: Vec<[i16; 2]> = [0, 100, 200, 300, 400, 450, 460, 560, 660, 760]
            .iter()
            .map(|&x| [x, -x])
            .collect();
        let s = interleaved(&v);
        assert_eq!(smoothest(&s, 2, 0, 10, 256, true), 5);
        assert_eq!(smoothest(&s, 2, 0, 10, 256, false), 5);
        // Degenerate ranges stay inside the block.
        assert_eq!(smoothest(&s, 2, 10, 10, 256, true), 9);
        assert_eq!(smoothest(&[], 2, 0, 0, 256, true), 0);
    }

    #[test]
    fn discipline_spreads_single_corrections_at_the_drift_rate() {
        let mut d = ClockDiscipline::new(48_000, DisciplineConfig::default());
        // 1000 ppm fast, blocks of 480 frames every 10 ms - 10 µs.
        let mut t = Duration::ZERO;
        for _ in 0..100_000 {
            t += Duration::from_nanos(9_990_010);
            let c = d.on_block(480, t);
            if t < Duration::from_secs(12) {
                // Settling, then catching up with the drift of the settling time.
                assert!(matches!(c, Correction::None | Correction::Drop(_)), "{c:?}");
            } else {
                // Then one frame at a time, about every 21 ms.
                assert!(matches!(c, Correction::None | Correction::Drop(1)), "{c:?}");
            }
        }
        let s = d.status();
        // 48 000 000 frames in 999.001 s of master time: a lead of 47 952 frames, all
        // dropped but the dead band (and the anchor's error: the rate error still left after
        // 10 s of settling, times those 10 s).
        assert!((s.drift_frames - 47_952.0).abs() < 30.0, "{s:?}");
        assert!(s.residual_frames.abs() <= 16.0, "{s:?}");
        assert!((s.device_ppm - 1000.0).abs() < 5.0, "{s:?}");
        assert_eq!(s.inserted, 0);
    }
}
