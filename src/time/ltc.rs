//! SMPTE linear timecode (LTC, SMPTE ST 12-1 §9): an encoder for test signals, a robust
//! incremental decoder for a live audio channel, and the `ltc` timecode source that turns
//! decoded labels plus the system date into [`FrameIndex`] values.
//!
//! # The signal
//! One LTC frame is 80 bits sent least significant bit first, starting at the start of the video
//! frame it labels. Bits are biphase-mark coded: the level changes at every bit boundary and a
//! `1` has a second change in the middle of its bit cell. The last 16 bits are the sync word
//! `0011 1111 1111 1101`, which cannot occur in the data and tells the direction of play.
//! Because only level *changes* carry information, the code does not care about polarity,
//! and the decoder only needs the time between transitions relative to the bit period.
//!
//! # Decoder pipeline (per sample, O(1), no allocation)
//! 1. Sanitise (non-finite → 0, clamp), short boxcar low-pass (about 0.08 ms) that removes most
//!    of the white noise above the LTC band (LTC's fundamental is at most ~2.6 kHz).
//! 2. Slow DC tracker and mean-absolute-level tracker: the slicer threshold adapts to any level
//!    from −40 dBFS to 0 dBFS; below an absolute floor (≈ −66 dBFS) nothing is sliced, so
//!    silence never produces transitions.
//! 3. Slicer with hysteresis (30 % of the level): noise cannot toggle it between real edges.
//!    The transition time is the last interpolated mid-level crossing before the hysteresis
//!    confirmed it, so the hysteresis adds no delay.
//! 4. Bit clock: the interval between transitions is classified as a whole bit (`0`) or a half
//!    bit (two make a `1`) relative to a tracked bit period, which follows ±10 % speed and
//!    gradual speed changes and re-seeds itself when it is off by a factor of two.
//! 5. Framing: an 80-bit shift register; the sync word at the end (forward play) or reversed at
//!    the start (reverse play) closes a frame; BCD fields are range-checked before a frame is
//!    reported. Any implausible interval breaks the run of valid bits, so noise has to produce
//!    80 consecutive well-timed bits *and* a sync word *and* valid BCD to fake a frame.

use super::timecode::check_timecode_rate;
use super::{Clocks, FrameIndex, Rate, TimeError, Timecode};
use std::sync::Arc;
use std::time::Duration;

/// Bits in one LTC frame.
pub const LTC_FRAME_BITS: usize = 80;

/// The sync word as it sits in bits 64–79 of a forward frame (bit 64 = least significant).
const SYNC_FORWARD: u16 = 0xBFFC;
/// The sync word as it arrives first when the tape plays backwards: bits 79, 78, … 64 in the
/// order received, read into the low 16 bits of the shift register.
const SYNC_REVERSE: u16 = 0x3FFD;

/// Lowest and highest plausible LTC bit rates (bits per second): 24 fps slowed by a third to
/// 30 fps sped up by a half. Transitions further apart or closer than that are not LTC.
const MIN_BIT_RATE: f64 = 1_200.0;
const MAX_BIT_RATE: f64 = 3_600.0;
/// Slicer hysteresis as a fraction of the tracked mean absolute level.
const HYSTERESIS: f64 = 0.3;
/// Absolute level (full scale = 1.0) below which the slicer does not switch: ≈ −66 dBFS, well
/// under the −40 dBFS the decoder must handle, well above 16-bit dither.
const LEVEL_FLOOR: f64 = 0.0005;
/// Time constants of the DC and level trackers.
const DC_TIME_CONSTANT_S: f64 = 0.02;
const LEVEL_TIME_CONSTANT_S: f64 = 0.01;
/// Bit-period tracking gain per bit: follows a ±10 % ramp over a second with negligible lag,
/// averages transition jitter over ~16 bits.
const PERIOD_GAIN: f64 = 1.0 / 16.0;
/// Longest boxcar the decoder uses (192 kHz input).
const MAX_TAPS: usize = 16;

// ---------------------------------------------------------------------------------------------
// Frame layout
// ---------------------------------------------------------------------------------------------

/// One decoded LTC frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LtcFrame {
    /// The label carried (`drop_frame` is the drop-frame flag, bit 10). Its ranges are checked
    /// (frames ≤ 29, seconds and minutes ≤ 59, hours ≤ 23); whether the label exists at a given
    /// rate is checked by [`LtcTimecodeSource`].
    pub timecode: Timecode,
    /// The eight user-bit groups: group 1 (bits 4–7) in the least significant nibble, group 8
    /// (bits 60–63) in the most significant.
    pub user_bits: u32,
    /// The colour frame flag (bit 11).
    pub colour_frame: bool,
    /// Input sample position (samples pushed into the decoder since it was created, counting
    /// from 0) where this frame starts: the start of bit 0 for forward play — which SMPTE ties
    /// to the start of the labelled video frame — or the start of the first bit received
    /// (bit 79) for reverse play. Corrected for the decoder's filter delay.
    pub sample_position_of_frame_start: u64,
    /// The frame was played backwards (sync word received first).
    pub reversed: bool,
    /// Measured duration of this frame in input samples (80 × tracked bit period): the sample
    /// rate divided by this is the LTC frame rate actually received (speed × nominal rate).
    pub samples_per_frame: f64,
}

/// Packs a label, user bits and flags into the 80 bits of an LTC frame (bit `i` of the result
/// is transmitted `i`-th). `twenty_five` selects the 25 fps flag layout, where the polarity
/// correction bit is bit 59 instead of bit 27. Fields are taken modulo their BCD width; the
/// caller passes valid labels.
pub fn pack_frame(tc: &Timecode, user_bits: u32, colour_frame: bool, twenty_five: bool) -> u128 {
    let mut bits = 0u128;
    let mut put = |start: u32, len: u32, value: u32| {
        let mask = (1u128 << len) - 1;
        bits |= (u128::from(value) & mask) << start;
    };
    let ub = |k: u32| (user_bits >> (4 * k)) & 0xF;
    put(0, 4, u32::from(tc.frames % 10));
    put(4, 4, ub(0));
    put(8, 2, u32::from(tc.frames / 10));
    put(10, 1, u32::from(tc.drop_frame));
    put(11, 1, u32::from(colour_frame));
    put(12, 4, ub(1));
    put(16, 4, u32::from(tc.seconds % 10));
    put(20, 4, ub(2));
    put(24, 3, u32::from(tc.seconds / 10));
    put(28, 4, ub(3));
    put(32, 4, u32::from(tc.minutes % 10));
    put(36, 4, ub(4));
    put(40, 3, u32::from(tc.minutes / 10));
    put(44, 4, ub(5));
    put(48, 4, u32::from(tc.hours % 10));
    put(52, 4, ub(6));
    put(56, 2, u32::from(tc.hours / 10));
    put(60, 4, ub(7));
    put(64, 16, u32::from(SYNC_FORWARD));
    // Polarity correction: an even number of zeros makes the frame an even number of level
    // changes long, so every frame starts with a change in the same direction.
    let zeros = LTC_FRAME_BITS as u32 - bits.count_ones();
    if zeros % 2 == 1 {
        bits |= 1u128 << if twenty_five { 59 } else { 27 };
    }
    bits
}

/// Unpacks and range-checks the data bits of a forward-ordered frame; `None` when a BCD field
/// is out of range (which is how most false syncs in noise are rejected).
fn unpack_frame(bits: u128) -> Option<(Timecode, u32, bool)> {
    let field = |start: u32, len: u32| ((bits >> start) & ((1u128 << len) - 1)) as u8;
    let (fu, ft) = (field(0, 4), field(8, 2));
    let (su, st) = (field(16, 4), field(24, 3));
    let (mu, mt) = (field(32, 4), field(40, 3));
    let (hu, ht) = (field(48, 4), field(56, 2));
    if fu > 9 || su > 9 || mu > 9 || hu > 9 || st > 5 || mt > 5 {
        return None;
    }
    let (frames, hours) = (ft * 10 + fu, ht * 10 + hu);
    if frames > 29 || hours > 23 {
        return None;
    }
    let user_bits = [4u32, 12, 20, 28, 36, 44, 52, 60]
        .iter()
        .enumerate()
        .fold(0u32, |acc, (k, &start)| {
            acc | (u32::from(field(start, 4)) << (4 * k))
        });
    let tc = Timecode {
        hours,
        minutes: mt * 10 + mu,
        seconds: st * 10 + su,
        frames,
        drop_frame: field(10, 1) == 1,
    };
    Some((tc, user_bits, field(11, 1) == 1))
}

/// The frame rate LTC runs at for a channel `rate`, and how many channel frames one LTC frame
/// spans: LTC counts at most 30 frames a second, so 50 and 59.94/60 fps channels carry the
/// LTC of 25 and 29.97/30 fps (ST 12-1 frame pairs).
fn ltc_rate_for(rate: Rate) -> Option<(Rate, u8)> {
    let fps = rate.nominal_fps();
    if fps <= 30 {
        Some((rate, 1))
    } else if fps <= 60 && rate.num().is_multiple_of(2) {
        Rate::new(rate.num() / 2, rate.den()).map(|r| (r, 2))
    } else {
        None
    }
}

// ---------------------------------------------------------------------------------------------
// Encoder
// ---------------------------------------------------------------------------------------------

/// Generates an LTC audio signal: biphase-mark frames at `rate` with a given amplitude, rise
/// time and playback speed, as `f32` (full scale ±1.0) or `i16` samples.
///
/// Timing is kept in continuous time (fractional samples), so a 29.97 fps frame of
/// 48000 / 29.97 = 1601.6 samples is exact on average, and edges fall between samples as they
/// do on a real converter.
#[derive(Clone, Debug)]
pub struct LtcEncoder {
    sample_rate: f64,
    rate: Rate,
    amplitude: f64,
    /// Length of the linear edge ramp in samples (0 = ideal square wave).
    ramp: f64,
    speed: f64,
    colour_frame: bool,
    /// Position (output samples, fractional) of the next bit boundary.
    clock: f64,
    /// Index of the next output sample.
    next_sample: u64,
    /// Level the signal is heading to (+1/−1) and the last edge: time, starting value.
    target: f64,
    edge_time: f64,
    edge_from: f64,
}

impl LtcEncoder {
    /// An encoder at `sample_rate` for frames at `rate` (25, 30000/1001, 30, 24…), amplitude
    /// 0.5 (−6 dBFS), the SMPTE rise time of 40 µs, normal speed, starting at sample 0 with the
    /// level low.
    pub fn new(sample_rate: u32, rate: Rate) -> LtcEncoder {
        let mut e = LtcEncoder {
            sample_rate: f64::from(sample_rate.max(1)),
            rate,
            amplitude: 0.5,
            ramp: 0.0,
            speed: 1.0,
            colour_frame: false,
            clock: 0.0,
            next_sample: 0,
            target: -1.0,
            edge_time: f64::NEG_INFINITY,
            edge_from: -1.0,
        };
        e.set_rise_time(40e-6);
        e
    }

    /// Peak amplitude, full scale = 1.0. A negative amplitude inverts the polarity.
    pub fn set_amplitude(&mut self, amplitude: f64) {
        self.amplitude = amplitude;
    }

    /// Peak amplitude for a level in dBFS (0 dBFS = full-scale square wave).
    pub fn set_level_dbfs(&mut self, dbfs: f64) {
        self.amplitude = self.amplitude.signum() * 10f64.powf(dbfs / 20.0);
    }

    /// 10 %–90 % rise time of each edge in seconds (SMPTE: 40 µs ± 10 µs); 0 = ideal edges.
    pub fn set_rise_time(&mut self, seconds: f64) {
        // A linear ramp spends 80 % of its length between 10 % and 90 %.
        self.ramp = (seconds / 0.8 * self.sample_rate).max(0.0);
    }

    /// Playback speed: 1.1 plays 10 % fast (shorter bits). Applies from the next frame.
    pub fn set_speed(&mut self, speed: f64) {
        if speed.is_finite() && speed > 0.0 {
            self.speed = speed;
        }
    }

    /// Sets the colour frame flag (bit 11) of the following frames.
    pub fn set_colour_frame(&mut self, on: bool) {
        self.colour_frame = on;
    }

    /// Output position (samples, fractional) where the next frame will start.
    pub fn next_frame_start(&self) -> f64 {
        self.clock
    }

    /// Appends one frame labelled `tc` with `user_bits` to `out` as `f32`; returns the position
    /// (output samples since the encoder started, fractional) where the frame starts.
    pub fn encode_frame(&mut self, tc: &Timecode, user_bits: u32, out: &mut Vec<f32>) -> f64 {
        self.encode_with(tc, user_bits, |v| out.push(v as f32))
    }

    /// Appends one frame as `i16` samples (full scale 32767); see [`LtcEncoder::encode_frame`].
    pub fn encode_frame_i16(&mut self, tc: &Timecode, user_bits: u32, out: &mut Vec<i16>) -> f64 {
        self.encode_with(tc, user_bits, |v| {
            out.push((v * 32767.0).round().clamp(-32768.0, 32767.0) as i16)
        })
    }

    /// Appends `samples` samples of silence after the signal, keeping the timeline (the next
    /// frame starts after the silence).
    pub fn encode_silence(&mut self, samples: u64, out: &mut Vec<f32>) {
        for _ in 0..samples {
            out.push(0.0);
        }
        self.next_sample += samples;
        self.clock = self.clock.max(self.next_sample as f64);
        self.edge_time = f64::NEG_INFINITY;
        self.edge_from = self.target;
    }

    fn encode_with(&mut self, tc: &Timecode, user_bits: u32, mut emit: impl FnMut(f64)) -> f64 {
        let start = self.clock;
        let bits = pack_frame(
            tc,
            user_bits,
            self.colour_frame,
            self.rate.nominal_fps() == 25,
        );
        let bit_len = self.sample_rate * f64::from(self.rate.den())
            / (f64::from(self.rate.num()) * LTC_FRAME_BITS as f64 * self.speed);
        // Edge times of this frame: every boundary, plus mid-cell for ones.
        let mut edges = [0f64; 2 * LTC_FRAME_BITS];
        let mut n = 0;
        for i in 0..LTC_FRAME_BITS {
            let t = start + i as f64 * bit_len;
            edges[n] = t;
            n += 1;
            if (bits >> i) & 1 == 1 {
                edges[n] = t + bit_len / 2.0;
                n += 1;
            }
        }
        let end = start + LTC_FRAME_BITS as f64 * bit_len;
        let mut next_edge = 0;
        while (self.next_sample as f64) < end {
            let t = self.next_sample as f64;
            while next_edge < n && edges[next_edge] <= t {
                let te = edges[next_edge];
                self.edge_from = self.value_at(te);
                self.edge_time = te;
                self.target = -self.target;
                next_edge += 1;
            }
            emit(self.amplitude * self.value_at(t));
            self.next_sample += 1;
        }
        // Edges after the last sample of this frame (possible only within the final sample
        // interval) are applied lazily by the next frame; they fall before its first sample.
        while next_edge < n {
            let te = edges[next_edge];
            self.edge_from = self.value_at(te);
            self.edge_time = te;
            self.target = -self.target;
            next_edge += 1;
        }
        self.clock = end;
        start
    }

    /// Normalised level (−1…1) at time `t` (samples) given the last edge.
    fn value_at(&self, t: f64) -> f64 {
        let since = t - self.edge_time;
        if self.ramp <= 0.0 || since >= self.ramp {
            self.target
        } else {
            self.edge_from + (self.target - self.edge_from) * (since / self.ramp).max(0.0)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Decoder
// ---------------------------------------------------------------------------------------------

/// A sample type the decoder reads: `f32` (full scale ±1.0) or `i16`.
pub trait LtcSample: Copy {
    /// The sample as a float with full scale ±1.0.
    fn to_unit(self) -> f64;
}

impl LtcSample for f32 {
    fn to_unit(self) -> f64 {
        f64::from(self)
    }
}

impl LtcSample for i16 {
    fn to_unit(self) -> f64 {
        f64::from(self) / 32768.0
    }
}

/// Incremental LTC decoder for one audio channel: push samples in blocks of any size, get the
/// frames completed in them. Never panics; garbage, silence, NaN and out-of-range input yield
/// no frames. See the module documentation for how it works.
#[derive(Clone, Debug)]
pub struct LtcDecoder {
    // Input conditioning.
    taps: usize,
    ring: [f64; MAX_TAPS],
    ring_pos: usize,
    ring_sum: f64,
    /// Samples until the running sum is recomputed (bounds floating-point creep).
    until_resum: u32,
    dc: f64,
    dc_gain: f64,
    level: f64,
    level_gain: f64,
    // Slicer.
    high: bool,
    prev_v: f64,
    /// Position of the last mid-level crossing (input samples, fractional).
    mid_cross: f64,
    /// Input samples consumed so far.
    position: u64,
    // Bit clock.
    last_edge: Option<f64>,
    period: f64,
    min_period: f64,
    max_period: f64,
    /// First half of a `1` waiting for its second half: its length in samples.
    half_pending: Option<f64>,
    /// Position of the last bit boundary (the start of the bit being received).
    bit_start: f64,
    // Framing.
    reg: u128,
    valid_bits: u32,
    total_bits: u64,
    bit_starts: [f64; LTC_FRAME_BITS],
    /// The frame ending with the pending half bit was already reported.
    early: bool,
}

impl LtcDecoder {
    /// A decoder for a channel sampled at `sample_rate` Hz (8 kHz to 192 kHz works; the LTC
    /// rate — 24 to 30 fps, ±10 % and more — is found from the signal).
    pub fn new(sample_rate: u32) -> LtcDecoder {
        let sr = f64::from(sample_rate.max(1));
        // Boxcar of ~1/12000 s: first null at 12 kHz, −3 dB near 5 kHz, ~4 taps at 48 kHz.
        let taps = ((sr / 12_000.0).round() as usize).clamp(1, MAX_TAPS);
        let gain = |tau: f64| (1.0 / (tau * sr)).min(1.0);
        LtcDecoder {
            taps,
            ring: [0.0; MAX_TAPS],
            ring_pos: 0,
            ring_sum: 0.0,
            until_resum: 4096,
            dc: 0.0,
            dc_gain: gain(DC_TIME_CONSTANT_S),
            level: 0.0,
            level_gain: gain(LEVEL_TIME_CONSTANT_S),
            high: false,
            prev_v: 0.0,
            mid_cross: 0.0,
            position: 0,
            last_edge: None,
            // Start in the middle of the plausible range: 24 fps −10 % and 30 fps +10 % are
            // both within the ±50 % that the classifier accepts before tracking.
            period: sr / 2_200.0,
            min_period: sr / MAX_BIT_RATE,
            max_period: sr / MIN_BIT_RATE,
            half_pending: None,
            bit_start: 0.0,
            reg: 0,
            valid_bits: 0,
            total_bits: 0,
            bit_starts: [0.0; LTC_FRAME_BITS],
            early: false,
        }
    }

    /// Decodes `samples` (one channel) and returns the frames completed in them.
    pub fn push<S: LtcSample>(&mut self, samples: &[S]) -> Vec<LtcFrame> {
        let mut out = Vec::new();
        self.push_into(samples, &mut out);
        out
    }

    /// Decodes `samples` (one channel), appending completed frames to `out` (which the caller
    /// can reuse, so steady-state decoding does not allocate).
    pub fn push_into<S: LtcSample>(&mut self, samples: &[S], out: &mut Vec<LtcFrame>) {
        for &s in samples {
            if let Some(f) = self.sample(s.to_unit()) {
                out.push(f);
            }
        }
    }

    /// Decodes channel `channel` of interleaved samples with `channels` channels. A channel
    /// outside the layout decodes nothing.
    pub fn push_channel_into<S: LtcSample>(
        &mut self,
        interleaved: &[S],
        channels: usize,
        channel: usize,
        out: &mut Vec<LtcFrame>,
    ) {
        if channels == 0 || channel >= channels {
            return;
        }
        for frame in interleaved.chunks_exact(channels) {
            if let Some(f) = self.sample(frame[channel].to_unit()) {
                out.push(f);
            }
        }
    }

    /// Input samples consumed so far (the position the next sample will have).
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The tracked bit period in input samples (for status: speed = nominal / measured).
    pub fn bit_period(&self) -> f64 {
        self.period
    }

    fn sample(&mut self, x: f64) -> Option<LtcFrame> {
        let x = if x.is_finite() {
            x.clamp(-4.0, 4.0)
        } else {
            0.0
        };
        let slot = self.ring_pos;
        self.ring_sum += x - self.ring[slot];
        self.ring[slot] = x;
        self.ring_pos = if slot + 1 == self.taps { 0 } else { slot + 1 };
        self.until_resum -= 1;
        if self.until_resum == 0 {
            self.ring_sum = self.ring[..self.taps].iter().sum();
            self.until_resum = 4096;
        }
        let y = self.ring_sum / self.taps as f64;
        self.dc += self.dc_gain * (y - self.dc);
        let v = y - self.dc;
        self.level += self.level_gain * (v.abs() - self.level);
        let n = self.position;
        self.position += 1;

        if (v >= 0.0) != (self.prev_v >= 0.0) {
            let frac = self.prev_v / (self.prev_v - v);
            let frac = if frac.is_finite() {
                frac.clamp(0.0, 1.0)
            } else {
                0.0
            };
            self.mid_cross = n as f64 - 1.0 + frac;
        }
        self.prev_v = v;
        let h = (self.level * HYSTERESIS).max(LEVEL_FLOOR);
        let switched = if self.high { v < -h } else { v > h };
        if !switched {
            return None;
        }
        self.high = !self.high;
        // Report positions where the signal entered the filter, not where it left it.
        let delay = (self.taps as f64 - 1.0) / 2.0;
        self.transition(self.mid_cross - delay)
    }

    /// A level change at `p` (input samples, fractional).
    fn transition(&mut self, p: f64) -> Option<LtcFrame> {
        let Some(last) = self.last_edge.replace(p) else {
            self.bit_start = p;
            return None;
        };
        let d = p - last;
        if !(d >= 0.35 * self.min_period && d <= 1.5 * self.max_period) {
            // Not LTC timing (a gap, a glitch): start over from this edge.
            self.lose_sync(p);
            return None;
        }
        let r = d / self.period;
        if r >= 1.5 {
            // Longer than any LTC interval at the tracked period: the period was locked to
            // half bits. Re-seed from this interval, which is a whole bit or longer.
            self.period = d.clamp(self.min_period, self.max_period);
            self.lose_sync(p);
            None
        } else if r >= 0.75 {
            if self.half_pending.take().is_some() {
                // A lone half bit before a whole bit: we were pairing halves out of step.
                self.valid_bits = 0;
                self.early = false;
            }
            self.adapt(d);
            let start = self.bit_start;
            self.bit_start = p;
            self.push_bit(false, start)
        } else if r >= 0.25 {
            match self.half_pending.take() {
                None => {
                    self.half_pending = Some(d);
                    self.complete_early()
                }
                Some(first) => {
                    self.adapt(first + d);
                    let start = self.bit_start;
                    self.bit_start = p;
                    self.push_bit(true, start)
                }
            }
        } else {
            // Much shorter than half a bit: the period was locked to two bits (or this is a
            // glitch). Re-seed as if this were a half bit.
            self.period = (2.0 * d).clamp(self.min_period, self.max_period);
            self.lose_sync(p);
            None
        }
    }

    fn lose_sync(&mut self, p: f64) {
        self.valid_bits = 0;
        self.early = false;
        self.half_pending = None;
        self.bit_start = p;
    }

    fn adapt(&mut self, bit_len: f64) {
        self.period += PERIOD_GAIN * (bit_len - self.period);
        self.period = self.period.clamp(self.min_period, self.max_period);
    }

    /// In forward play the last bit of a frame is the `1` that ends the sync word; its value
    /// is known at its mid-cell transition, half a bit before the next frame's first edge
    /// arrives. Completing the frame there lowers latency and decodes the last frame before
    /// a signal stops.
    fn complete_early(&mut self) -> Option<LtcFrame> {
        if (self.valid_bits as usize) < LTC_FRAME_BITS - 1 {
            return None;
        }
        let reg = (self.reg >> 1) | (1u128 << (LTC_FRAME_BITS - 1));
        if (reg >> 64) as u16 != SYNC_FORWARD {
            return None;
        }
        // After this bit is pushed, the oldest bit of the window is in the slot after it.
        let oldest = self.bit_starts[((self.total_bits + 1) % LTC_FRAME_BITS as u64) as usize];
        let frame = self.frame_from(reg, false, oldest)?;
        self.early = true;
        Some(frame)
    }

    fn push_bit(&mut self, bit: bool, start: f64) -> Option<LtcFrame> {
        self.reg = (self.reg >> 1) | (u128::from(bit) << (LTC_FRAME_BITS - 1));
        self.bit_starts[(self.total_bits % LTC_FRAME_BITS as u64) as usize] = start;
        self.total_bits += 1;
        self.valid_bits = self.valid_bits.saturating_add(1);
        if std::mem::take(&mut self.early) || (self.valid_bits as usize) < LTC_FRAME_BITS {
            // Either too few bits, or this frame was already reported at the mid-cell edge.
            return None;
        }
        // The oldest bit of the window: the slot the next bit will overwrite.
        let oldest = self.bit_starts[(self.total_bits % LTC_FRAME_BITS as u64) as usize];
        if (self.reg >> 64) as u16 == SYNC_FORWARD {
            self.frame_from(self.reg, false, oldest)
        } else if self.reg as u16 == SYNC_REVERSE {
            let bits = self.reg.reverse_bits() >> (128 - LTC_FRAME_BITS);
            self.frame_from(bits, true, oldest)
        } else {
            None
        }
    }

    /// The frame in the forward-ordered `bits`, if its fields are in range.
    fn frame_from(&self, bits: u128, reversed: bool, start: f64) -> Option<LtcFrame> {
        let (timecode, user_bits, colour_frame) = unpack_frame(bits)?;
        Some(LtcFrame {
            timecode,
            user_bits,
            colour_frame,
            sample_position_of_frame_start: start.max(0.0).round() as u64,
            reversed,
            samples_per_frame: self.period * LTC_FRAME_BITS as f64,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Timecode source
// ---------------------------------------------------------------------------------------------

/// Why an `ltc` timecode source cannot be set up for a channel.
#[derive(Debug, thiserror::Error)]
pub enum LtcError {
    /// Timecode itself cannot be counted at the rate.
    #[error(transparent)]
    Time(#[from] TimeError),
    /// LTC counts at most 30 frames a second; faster channels need a rate that is exactly twice
    /// an LTC rate (50, 59.94, 60…).
    #[error(
        "LTC cannot carry timecode for {rate} fps: LTC runs at up to 30 fps, and only channel \
         rates of exactly twice an LTC rate (48, 50, 59.94, 60) can take their time from it"
    )]
    RateUnsupported {
        /// The channel rate.
        rate: Rate,
    },
}

/// A decoded frame placed on the master clock.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LtcIndexedFrame {
    /// The channel frame the LTC frame labels (frames since the Unix epoch at the channel rate).
    pub index: FrameIndex,
    /// The frame as decoded.
    pub frame: LtcFrame,
}

/// Whether the `ltc` source currently delivers time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LtcLockState {
    /// No valid frame has been decoded yet.
    Searching,
    /// A valid frame was decoded within the unlock timeout.
    Locked,
    /// Valid frames were decoded before, but none within the unlock timeout.
    Unlocked,
}

/// Health of the `ltc` timecode source, for status displays.
#[derive(Clone, Debug, PartialEq)]
pub struct LtcStatus {
    /// Lock state at the time of the snapshot (monotonic clock of the injected [`Clocks`]).
    pub state: LtcLockState,
    /// The last valid label decoded.
    pub last_timecode: Option<Timecode>,
    /// The channel frame the last valid label named.
    pub last_index: Option<FrameIndex>,
    /// Monotonic time since the last valid frame.
    pub last_frame_age: Option<Duration>,
    /// Valid frames decoded.
    pub frames: u64,
    /// Frames decoded but rejected: the label does not exist at the channel rate (e.g. the
    /// drop-frame flag at 25 fps, frame 27 at 25 fps, a dropped drop-frame number).
    pub rejected: u64,
    /// Valid frames whose index was not the one predicted from the previous valid frame and
    /// the audio samples between them (a re-jammed generator, an edit, reverse play…).
    pub discontinuities: u64,
    /// The last frame was played backwards.
    pub reversed: bool,
    /// Received LTC speed relative to nominal (1.0 = nominal) from the decoder's bit period.
    pub speed: Option<f64>,
    /// The last valid index minus the clock's frame index at the moment it was decoded
    /// (positive: LTC is ahead of system UTC; large values usually mean local-time LTC).
    pub clock_offset_frames: Option<i64>,
}

/// The `ltc` timecode source: decodes SMPTE LTC from one channel of an audio input and names
/// each frame's [`FrameIndex`] from its label and the date of the injected clock.
///
/// The date comes from the UTC date of [`Clocks::utc_nanos`]; near midnight the LTC label and
/// the clock can be on different sides of it (23:59:59:24 decoded at 00:00:00.02 UTC, or the
/// reverse), so of the previous, current and next dates the one that puts the frame nearest to
/// the clock's own frame index is used. LTC in a local time zone is therefore fine as long as it
/// is within 12 hours of UTC; its indices are offset by the zone (see
/// [`LtcStatus::clock_offset_frames`]), identically on every box fed the same LTC.
#[derive(Debug)]
pub struct LtcTimecodeSource {
    rate: Rate,
    /// Rate LTC runs at (rate/2 for 50/60 fps channels) and channel frames per LTC frame.
    ltc_rate: Rate,
    per_ltc_frame: u8,
    sample_rate: u32,
    channel: u16,
    clocks: Arc<dyn Clocks>,
    decoder: LtcDecoder,
    unlock_after: Duration,
    scratch: Vec<LtcFrame>,
    last: Option<LastFrame>,
    frames: u64,
    rejected: u64,
    discontinuities: u64,
}

#[derive(Clone, Copy, Debug)]
struct LastFrame {
    index: FrameIndex,
    frame: LtcFrame,
    /// Monotonic time when it was decoded.
    at: Duration,
    clock_offset: i64,
}

impl LtcTimecodeSource {
    /// A source for a channel at `rate`, decoding channel `channel` (0-based) of audio sampled
    /// at `sample_rate`. Fails when timecode cannot be counted at `rate` or LTC cannot carry it
    /// (above 60 fps, or a rate above 30 fps that is not twice an LTC rate).
    pub fn new(
        rate: Rate,
        sample_rate: u32,
        channel: u16,
        clocks: Arc<dyn Clocks>,
    ) -> Result<LtcTimecodeSource, LtcError> {
        check_timecode_rate(rate, false)?;
        let (ltc_rate, per_ltc_frame) =
            ltc_rate_for(rate).ok_or(LtcError::RateUnsupported { rate })?;
        Ok(LtcTimecodeSource {
            rate,
            ltc_rate,
            per_ltc_frame,
            sample_rate: sample_rate.max(1),
            channel,
            clocks,
            decoder: LtcDecoder::new(sample_rate),
            unlock_after: Duration::from_millis(500),
            scratch: Vec::new(),
            last: None,
            frames: 0,
            rejected: 0,
            discontinuities: 0,
        })
    }

    /// Declares the source unlocked when no valid frame arrived for `d` (default 500 ms, about
    /// 12 frames at 25 fps).
    pub fn with_unlock_after(mut self, d: Duration) -> LtcTimecodeSource {
        self.unlock_after = d;
        self
    }

    /// The channel frame rate.
    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// Decodes interleaved audio with `channels` channels (the source's channel is picked;
    /// a channel outside the layout decodes nothing) and appends the valid frames with their
    /// indices to `out`.
    pub fn push_interleaved<S: LtcSample>(
        &mut self,
        samples: &[S],
        channels: u16,
        out: &mut Vec<LtcIndexedFrame>,
    ) {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        self.decoder.push_channel_into(
            samples,
            usize::from(channels),
            usize::from(self.channel),
            &mut scratch,
        );
        self.accept_all(&scratch, out);
        self.scratch = scratch;
    }

    /// Decodes one channel's samples; see [`LtcTimecodeSource::push_interleaved`].
    pub fn push_mono<S: LtcSample>(&mut self, samples: &[S], out: &mut Vec<LtcIndexedFrame>) {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        self.decoder.push_into(samples, &mut scratch);
        self.accept_all(&scratch, out);
        self.scratch = scratch;
    }

    fn accept_all(&mut self, frames: &[LtcFrame], out: &mut Vec<LtcIndexedFrame>) {
        for f in frames {
            match self.resolve(&f.timecode) {
                Ok((index, clock_offset)) => {
                    self.note(index, *f, clock_offset);
                    out.push(LtcIndexedFrame { index, frame: *f });
                }
                Err(e) => {
                    self.rejected += 1;
                    tracing::debug!(timecode = %f.timecode, error = %e, "ltc: label rejected");
                }
            }
        }
    }

    fn note(&mut self, index: FrameIndex, frame: LtcFrame, clock_offset: i64) {
        if let Some(prev) = &self.last {
            if !self.continues(prev, &frame) {
                self.discontinuities += 1;
                tracing::info!(
                    from = %prev.frame.timecode, to = %frame.timecode,
                    "ltc: timecode discontinuity"
                );
            }
        } else {
            tracing::info!(timecode = %frame.timecode, "ltc: locked");
        }
        self.frames += 1;
        self.last = Some(LastFrame {
            index,
            frame,
            at: self.clocks.monotonic(),
            clock_offset,
        });
    }

    /// True when `next` carries the label that follows `prev` after the audio between them:
    /// as many whole LTC frames (of the measured length, so a steady ±10 % speed or a dropout
    /// is not a discontinuity) forward, or backward for reverse play, counted on the timecode
    /// day (so the rollover at midnight, and the skipped labels of drop-frame, are continuous
    /// even though a drop-frame midnight moves the frame index by 2–3 extra frames).
    fn continues(&self, prev: &LastFrame, next: &LtcFrame) -> bool {
        let (p, n) = (&prev.frame.timecode, &next.timecode);
        if p.drop_frame != n.drop_frame || prev.frame.reversed != next.reversed {
            return false;
        }
        let since = |t: &Timecode| t.frames_since_midnight(self.ltc_rate).ok();
        let (Some(a), Some(b), Ok(day)) = (
            since(p),
            since(n),
            Timecode::frames_per_day(self.ltc_rate, p.drop_frame),
        ) else {
            return false;
        };
        let samples = next.sample_position_of_frame_start as f64
            - prev.frame.sample_position_of_frame_start as f64;
        let k = (samples / prev.frame.samples_per_frame.max(1.0)).round() as i128;
        let k = if next.reversed { -k } else { k };
        (i128::from(a) + k).rem_euclid(i128::from(day)) == i128::from(b)
    }

    /// The channel frame a label names, with the date chosen from the clock, and the offset
    /// (frames) of that index from the clock's current frame index.
    pub fn resolve(&self, tc: &Timecode) -> Result<(FrameIndex, i64), TimeError> {
        let mut label = *tc;
        label.frames = label.frames.saturating_mul(self.per_ltc_frame);
        super::timecode::frame_index_near(&label, self.rate, self.clocks.utc_nanos())
    }

    /// The channel frame at input sample `position` (samples pushed since the source was
    /// created), extrapolated from the last valid frame; `None` before the first one. Only
    /// LTC-frame starts are exact; in between, the frame that has started by then is returned.
    pub fn frame_index_at(&self, position: u64) -> Option<FrameIndex> {
        let last = self.last.as_ref()?;
        let samples = i128::from(position) - i128::from(last.frame.sample_position_of_frame_start);
        let (num, den) = (i128::from(self.rate.num()), i128::from(self.rate.den()));
        // Channel frames started since the last LTC frame: floor(samples × num / (den × sr)).
        let frames = (samples * num).div_euclid(den * i128::from(self.sample_rate));
        let signed = if last.frame.reversed { -frames } else { frames };
        let idx = i128::from(last.index.0) + signed;
        u64::try_from(idx).ok().map(FrameIndex)
    }

    /// A health snapshot.
    pub fn status(&self) -> LtcStatus {
        let now = self.clocks.monotonic();
        let age = self.last.as_ref().map(|l| now.saturating_sub(l.at));
        let state = match age {
            None => LtcLockState::Searching,
            Some(a) if a <= self.unlock_after => LtcLockState::Locked,
            Some(_) => LtcLockState::Unlocked,
        };
        let nominal = f64::from(self.sample_rate) * f64::from(self.ltc_rate.den())
            / f64::from(self.ltc_rate.num());
        LtcStatus {
            state,
            last_timecode: self.last.as_ref().map(|l| l.frame.timecode),
            last_index: self.last.as_ref().map(|l| l.index),
            last_frame_age: age,
            frames: self.frames,
            rejected: self.rejected,
            discontinuities: self.discontinuities,
            reversed: self.last.as_ref().is_some_and(|l| l.frame.reversed),
            speed: self
                .last
                .as_ref()
                .map(|l| nominal / l.frame.samples_per_frame),
            clock_offset_frames: self.last.as_ref().map(|l| l.clock_offset),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tc(s: &str) -> Timecode {
        Timecode::parse(s).unwrap()
    }

    #[test]
    fn packed_frames_carry_the_sync_word_and_an_even_number_of_zeros() {
        for (label, ub, pal) in [
            ("12:34:56:23", 0xDEAD_BEEF, true),
            ("23:59:59;29", 0, false),
            ("00:00:00:00", 0xFFFF_FFFF, false),
        ] {
            let bits = pack_frame(&tc(label), ub, false, pal);
            assert_eq!((bits >> 64) as u16, SYNC_FORWARD);
            assert_eq!((80 - bits.count_ones()) % 2, 0, "{label}");
            let (t, u, c) = unpack_frame(bits).unwrap();
            assert_eq!((t, u, c), (tc(label), ub, false));
        }
        // The polarity bit sits where ST 12-1 puts it for the rate: bit 59 at 25 fps, bit 27
        // otherwise; "00:00:00:00" (only the 13 ones of the sync word) needs it.
        let pal = pack_frame(&tc("00:00:00:00"), 0, false, true);
        let ntsc = pack_frame(&tc("00:00:00:00"), 0, false, false);
        assert_eq!(((pal >> 59) & 1, (pal >> 27) & 1), (1, 0));
        assert_eq!(((ntsc >> 59) & 1, (ntsc >> 27) & 1), (0, 1));
        // Bit 10 is the drop-frame flag, bit 11 the colour frame flag.
        assert_eq!(
            (pack_frame(&tc("00:00:00;00"), 0, false, false) >> 10) & 1,
            1
        );
        assert_eq!(
            (pack_frame(&tc("00:00:00:00"), 0, true, false) >> 11) & 1,
            1
        );
    }

    #[test]
    fn reverse_sync_is_the_forward_sync_read_backwards() {
        assert_eq!(SYNC_FORWARD.reverse_bits(), SYNC_REVERSE);
    }

    #[test]
    fn unpack_rejects_out_of_range_bcd() {
        let good = pack_frame(&tc("10:20:30:10"), 0, false, true);
        assert!(unpack_frame(good).is_some());
        // Frame units = 12.
        assert!(unpack_frame((good & !0xF) | 0xC).is_none());
        // Hours = 24.
        let h24 = (good & !(0xF << 48) & !(0x3 << 56)) | (4 << 48) | (2 << 56);
        assert!(unpack_frame(h24).is_none());
    }
}
