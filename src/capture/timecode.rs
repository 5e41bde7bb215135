//! Timecode from the inputs: where a channel's timeline starts (`ltc`, `v4l2`, with the clock
//! as the documented fallback), and the health of the timecode source while it runs.
//!
//! The channel's timeline is a frame grid counted from one start index (design.md, time model
//! §1). `clock` and `fixed` give that index without touching an input
//! ([`crate::time::resolve_start`]); the other two read it from an input at start:
//!
//! - **`ltc`**: a short probe reads the audio input until SMPTE LTC decodes on the chosen
//!   channel. For a device (live), the probe gives the index LTC names *now*; in real time the
//!   channel then waits until LTC reaches the first fragment boundary, so the first captured
//!   sample is labelled with the frame LTC is at. For a file, the file restarts from its first
//!   sample when the channel opens it, so the probe gives the index LTC names at the file's
//!   first sample: the same as `fixed` with that label as the start timecode. While the
//!   channel runs, [`LtcTap`] keeps decoding LTC from the audio source and reports lock, the
//!   last label and its offset from the channel's own grid. The timeline itself keeps counting
//!   from the start (re-jamming mid-run would be a timestamp jump; the publishing point must
//!   never see one), so a drifting generator shows up as a growing offset, not as a jump.
//! - **`v4l2`**: the capture driver's per-buffer timecode (`V4L2_BUF_FLAG_TIMECODE` and
//!   `v4l2_buffer.timecode`, read by our own mmap stream, [`super::v4l2::mmap`]). At start the
//!   device is opened and up to [`V4L2_PROBE_BUFFERS`] buffers are read until one carries a
//!   label valid at the channel rate ([`super::v4l2::timecode`]: type = the channel's nominal
//!   rate, drop-frame only at 29.97/59.94, fields in range). The label's date comes from the
//!   system clock, the nearest of yesterday/today/tomorrow, so midnight is handled as for
//!   `ltc` ([`crate::time::frame_index_near`]). That buffer's capture time anchors the start
//!   (in real time the channel waits until the input reaches the first fragment boundary),
//!   then the device is closed and reopened by the capture. While the channel runs,
//!   [`V4l2TimecodeTap`] reads every placed buffer's label: `locked`, the last label, its
//!   offset from the grid slot the buffer went to (a change counts as a discontinuity), and
//!   `lost` when labels stop. The ioctl path itself is untested on the build machines (no
//!   capture card, no v4l2loopback); the probe and the tap are tested on recorded traces.
//!
//! **Fallback**: when the source delivers no timecode at start (no LTC within
//! [`LTC_PROBE_TIMEOUT`] of audio, no driver timecode in the first [`V4L2_PROBE_BUFFERS`]
//! buffers, a device that cannot be opened, an input that cannot carry it), the
//! channel runs on the clock exactly as `source = "clock"` would, logs a warning and reports
//! state `fallback` with the reason, which the control API turns into an alert. A channel that
//! can run, runs: a box without its timecode still has pictures to send.

use super::loss::InputOptions;
use super::v4l2::timecode::BufferTimecode;
use super::v4l2::BufferSource;
use super::{AudioBlock, AudioSource, CaptureError, Pacing};
use crate::profile::{AudioInput, Plan, TimecodeSpec, VideoInput};
use crate::time::ltc::{LtcIndexedFrame, LtcTimecodeSource};
use crate::time::{
    frame_index_near, resolve_start, Clocks, FrameGrid, FrameIndex, Rate, SampleIndex, Timecode,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How much audio (file) or time (device) the `ltc` start probe reads before falling back.
pub const LTC_PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// An LTC (or `v4l2`) source with no valid label for this long (monotonic time) is `lost`.
pub const LTC_UNLOCK_AFTER: Duration = Duration::from_millis(500);

/// Buffers the `v4l2` start probe reads for a valid driver timecode before falling back.
pub const V4L2_PROBE_BUFFERS: usize = 10;

/// Which timecode source a channel uses (the profile's `timecode.source`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimecodeKind {
    /// System UTC.
    Clock,
    /// A configured start timecode.
    Fixed,
    /// SMPTE LTC on an audio channel.
    Ltc,
    /// The capture driver's buffer timecode.
    V4l2,
}

impl TimecodeKind {
    /// The profile's name of the source.
    pub fn name(self) -> &'static str {
        match self {
            TimecodeKind::Clock => "clock",
            TimecodeKind::Fixed => "fixed",
            TimecodeKind::Ltc => "ltc",
            TimecodeKind::V4l2 => "v4l2",
        }
    }

    /// The kind of a plan's timecode spec.
    pub fn of(spec: &TimecodeSpec) -> TimecodeKind {
        match spec {
            TimecodeSpec::Clock => TimecodeKind::Clock,
            TimecodeSpec::Fixed { .. } => TimecodeKind::Fixed,
            TimecodeSpec::Ltc { .. } => TimecodeKind::Ltc,
            TimecodeSpec::V4l2 => TimecodeKind::V4l2,
        }
    }
}

/// Health of the timecode source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimecodeState {
    /// `clock` / `fixed`: the timeline counts from its start; nothing to lose.
    Running,
    /// `ltc`/`v4l2`: no valid label read yet.
    Searching,
    /// `ltc`/`v4l2`: valid labels arrive.
    Locked,
    /// `ltc`/`v4l2`: labels arrived, but none within [`LTC_UNLOCK_AFTER`].
    Lost,
    /// The source gave no timecode at start: the timeline runs on the clock.
    Fallback,
}

impl TimecodeState {
    /// The status name (`running`, `searching`, `locked`, `lost`, `fallback`).
    pub fn name(self) -> &'static str {
        match self {
            TimecodeState::Running => "running",
            TimecodeState::Searching => "searching",
            TimecodeState::Locked => "locked",
            TimecodeState::Lost => "lost",
            TimecodeState::Fallback => "fallback",
        }
    }
}

/// A snapshot of the timecode source, for status displays.
#[derive(Clone, Debug, PartialEq)]
pub struct TimecodeHealth {
    /// The configured source.
    pub source: TimecodeKind,
    /// Its health now.
    pub state: TimecodeState,
    /// Why the channel fell back to the clock (state `fallback`).
    pub fallback_reason: Option<String>,
    /// Frame index (master clock) the timeline was started from, as the source gave it
    /// (before rounding up to the first fragment boundary).
    pub start_index: Option<FrameIndex>,
    /// The last label read from the source (LTC, driver timecode).
    pub last_timecode: Option<Timecode>,
    /// The frame index that label names.
    pub last_index: Option<FrameIndex>,
    /// That index minus the channel's own frame index at the same audio sample (LTC) or the
    /// grid slot the buffer went to (`v4l2`) (frames; 0 = the source and the timeline agree;
    /// grows if the generator drifts from the box).
    pub offset_frames: Option<i64>,
    /// That index minus the system clock's frame index when it was decoded (frames; large
    /// values usually mean LTC in local time).
    pub clock_offset_frames: Option<i64>,
    /// Valid labels read while the channel ran.
    pub frames: u64,
    /// Labels that do not exist at the channel rate.
    pub rejected: u64,
    /// Labels that did not follow the previous one (re-jammed generator, edit, reverse play;
    /// for `v4l2`, a change of the offset from the grid).
    pub discontinuities: u64,
}

#[derive(Debug)]
struct HealthCell {
    health: TimecodeHealth,
    /// Monotonic time (injected clocks) of the last valid label.
    last_at: Option<Duration>,
}

/// The shared, live view of a channel's timecode source: the channel writes it, status
/// displays read it ([`TimecodeMonitor::snapshot`]).
#[derive(Clone, Debug)]
pub struct TimecodeMonitor {
    cell: Arc<Mutex<HealthCell>>,
    clocks: Arc<dyn Clocks>,
}

impl TimecodeMonitor {
    /// A monitor for `spec`, in state `running` (clock, fixed) or `searching` (ltc, v4l2)
    /// until the start is resolved.
    pub fn new(spec: &TimecodeSpec, clocks: Arc<dyn Clocks>) -> TimecodeMonitor {
        let source = TimecodeKind::of(spec);
        let state = match source {
            TimecodeKind::Clock | TimecodeKind::Fixed => TimecodeState::Running,
            TimecodeKind::Ltc | TimecodeKind::V4l2 => TimecodeState::Searching,
        };
        TimecodeMonitor {
            cell: Arc::new(Mutex::new(HealthCell {
                health: TimecodeHealth {
                    source,
                    state,
                    fallback_reason: None,
                    start_index: None,
                    last_timecode: None,
                    last_index: None,
                    offset_frames: None,
                    clock_offset_frames: None,
                    frames: 0,
                    rejected: 0,
                    discontinuities: 0,
                },
                last_at: None,
            })),
            clocks,
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut HealthCell) -> T) -> T {
        let mut g = self.cell.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut g)
    }

    /// The current health; an LTC source's `locked`/`lost` is judged by the age of its last
    /// valid label on the injected clocks.
    pub fn snapshot(&self) -> TimecodeHealth {
        let now = self.clocks.monotonic();
        self.with(|c| {
            let mut h = c.health.clone();
            if h.state == TimecodeState::Locked || h.state == TimecodeState::Lost {
                h.state = match c.last_at {
                    Some(at) if now.saturating_sub(at) <= LTC_UNLOCK_AFTER => TimecodeState::Locked,
                    _ => TimecodeState::Lost,
                };
            }
            h
        })
    }

    fn started(&self, index: FrameIndex) {
        self.with(|c| c.health.start_index = Some(index));
    }

    fn fall_back(&self, reason: String) {
        self.with(|c| {
            c.health.state = TimecodeState::Fallback;
            c.health.fallback_reason = Some(reason);
        });
    }

    /// Records labels decoded while the channel runs. `offset` is the last label's offset from
    /// the channel's grid.
    fn decoded(&self, last: &LtcIndexedFrame, offset: i64, source: &LtcTimecodeSource) {
        let s = source.status();
        self.read(
            Label {
                timecode: last.frame.timecode,
                index: last.index,
                offset: Some(offset),
                clock_offset: s.clock_offset_frames,
            },
            Counts {
                frames: s.frames,
                rejected: s.rejected,
                discontinuities: s.discontinuities,
            },
        );
    }

    /// Records a valid label read now (state `locked` unless the channel fell back).
    fn read(&self, label: Label, counts: Counts) {
        let at = self.clocks.monotonic();
        self.with(|c| {
            let h = &mut c.health;
            if h.state != TimecodeState::Fallback {
                h.state = TimecodeState::Locked;
            }
            h.last_timecode = Some(label.timecode);
            h.last_index = Some(label.index);
            h.offset_frames = label.offset;
            h.clock_offset_frames = label.clock_offset;
            c.last_at = Some(at);
        });
        self.counted(counts);
    }

    fn counted(&self, counts: Counts) {
        self.with(|c| {
            let h = &mut c.health;
            h.frames = counts.frames;
            h.rejected = counts.rejected;
            h.discontinuities = counts.discontinuities;
        });
    }
}

/// A valid label and where it puts the timeline (see [`TimecodeHealth`]).
#[derive(Clone, Copy, Debug)]
struct Label {
    timecode: Timecode,
    index: FrameIndex,
    offset: Option<i64>,
    clock_offset: Option<i64>,
}

/// Label counters of a running source (see [`TimecodeHealth`]).
#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    frames: u64,
    rejected: u64,
    discontinuities: u64,
}

// ---------------------------------------------------------------------------------------------
// V4L2 buffer timecode tap
// ---------------------------------------------------------------------------------------------

/// The `v4l2` timecode source while the channel runs: every placed capture buffer's driver
/// timecode goes through [`V4l2TimecodeTap::observe`] and into the [`TimecodeMonitor`]. Shared
/// by every (re)opened capture of the channel (clones share state), so counts and continuity
/// survive a device reopen.
#[derive(Clone, Debug)]
pub struct V4l2TimecodeTap(Arc<Mutex<V4l2TapState>>);

#[derive(Debug)]
struct V4l2TapState {
    rate: Rate,
    clocks: Arc<dyn Clocks>,
    monitor: TimecodeMonitor,
    counts: Counts,
    /// The previous label's offset from its grid slot.
    last_offset: Option<i64>,
}

impl V4l2TimecodeTap {
    /// A tap for a channel at `rate` reporting to `monitor`; dates come from `clocks`' UTC.
    pub fn new(rate: Rate, clocks: Arc<dyn Clocks>, monitor: TimecodeMonitor) -> V4l2TimecodeTap {
        V4l2TimecodeTap(Arc::new(Mutex::new(V4l2TapState {
            rate,
            clocks,
            monitor,
            counts: Counts::default(),
            last_offset: None,
        })))
    }

    /// A buffer with driver timecode `tc` (`None`: the driver set no
    /// `V4L2_BUF_FLAG_TIMECODE`) was placed on grid slot `slot`. Invalid labels are counted as
    /// rejected; a buffer without timecode changes nothing (the state turns `lost` once
    /// [`LTC_UNLOCK_AFTER`] passes without a label).
    pub fn observe(&self, tc: Option<&BufferTimecode>, slot: FrameIndex) {
        let Some(raw) = tc else { return };
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let st = &mut *g;
        let resolved = raw.label(st.rate).and_then(|label| {
            frame_index_near(&label, st.rate, st.clocks.utc_nanos())
                .ok()
                .map(|(index, clock_offset)| (label, index, clock_offset))
        });
        let Some((label, index, clock_offset)) = resolved else {
            st.counts.rejected += 1;
            tracing::debug!(timecode = ?raw, "v4l2: buffer timecode rejected");
            st.monitor.counted(st.counts);
            return;
        };
        let offset = i64::try_from(i128::from(index.0) - i128::from(slot.0)).unwrap_or(i64::MAX);
        match st.last_offset {
            Some(prev) if prev != offset => {
                st.counts.discontinuities += 1;
                tracing::info!(timecode = %label, from = prev, to = offset, "v4l2: timecode discontinuity");
            }
            None => tracing::info!(timecode = %label, "v4l2: buffer timecode locked"),
            _ => {}
        }
        st.last_offset = Some(offset);
        st.counts.frames += 1;
        st.monitor.read(
            Label {
                timecode: label,
                index,
                offset: Some(offset),
                clock_offset: Some(clock_offset),
            },
            st.counts,
        );
    }
}

// ---------------------------------------------------------------------------------------------
// LTC tap
// ---------------------------------------------------------------------------------------------

/// The LTC decoder of a channel, shared by every (re)opened audio source of the channel so
/// that counts and continuity survive a device reopen.
#[derive(Clone, Debug)]
pub struct LtcShared(Arc<Mutex<LtcState>>);

#[derive(Debug)]
struct LtcState {
    source: LtcTimecodeSource,
    /// Samples pushed into `source` so far (its position domain).
    pushed: u64,
    rate: Rate,
    sample_rate: u32,
    scratch: Vec<LtcIndexedFrame>,
    monitor: TimecodeMonitor,
}

impl LtcShared {
    /// A decoder for a channel at `rate` reading mono LTC at `sample_rate`, reporting to
    /// `monitor`.
    pub fn new(
        rate: Rate,
        sample_rate: u32,
        clocks: Arc<dyn Clocks>,
        monitor: TimecodeMonitor,
    ) -> Result<LtcShared, String> {
        let source = LtcTimecodeSource::new(rate, sample_rate, 0, clocks)
            .map_err(|e| e.to_string())?
            .with_unlock_after(LTC_UNLOCK_AFTER);
        Ok(LtcShared(Arc::new(Mutex::new(LtcState {
            source,
            pushed: 0,
            rate,
            sample_rate: sample_rate.max(1),
            scratch: Vec::new(),
            monitor,
        }))))
    }

    /// Decodes `ltc` (mono samples whose first one is grid sample `first`).
    fn push(&self, first: SampleIndex, ltc: &[i16]) {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let st = &mut *g;
        let base = st.pushed;
        st.scratch.clear();
        st.source.push_mono(ltc, &mut st.scratch);
        st.pushed += ltc.len() as u64;
        if let Some(last) = st.scratch.last() {
            // The grid sample where the label's frame starts, and the grid frame there.
            let grid_sample = i128::from(first.0)
                + (i128::from(last.frame.sample_position_of_frame_start) - i128::from(base));
            let grid_frame =
                round_frames(grid_sample, st.rate, st.sample_rate).unwrap_or(last.index.0 as i128);
            let offset = i128::from(last.index.0) - grid_frame;
            st.monitor
                .decoded(last, i64::try_from(offset).unwrap_or(i64::MAX), &st.source);
        }
    }
}

/// `samples × rate / sample_rate` rounded to the nearest frame.
fn round_frames(samples: i128, rate: Rate, sample_rate: u32) -> Option<i128> {
    let num = samples.checked_mul(i128::from(rate.num()))?;
    let den = i128::from(rate.den()) * i128::from(sample_rate.max(1));
    Some((2 * num + den).div_euclid(2 * den))
}

/// An audio source wrapper that decodes LTC from one channel of its input and passes the
/// programme channels on: input channel `ltc` (0-based) feeds the decoder, output channel `k`
/// is input channel `map[k]` (0-based). Reuses its buffers: no allocation per block once warm
/// beyond the output block itself.
pub struct LtcTap<S: AudioSource> {
    inner: S,
    map: Vec<usize>,
    ltc: usize,
    decoder: LtcShared,
    mono: Vec<i16>,
}

impl<S: AudioSource> std::fmt::Debug for LtcTap<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LtcTap")
            .field("map", &self.map)
            .field("ltc", &self.ltc)
            .finish_non_exhaustive()
    }
}

impl<S: AudioSource> LtcTap<S> {
    /// Taps channel `ltc` of `inner` and outputs channels `map` (all 0-based; entries beyond
    /// the input's channels read as silence).
    pub fn new(inner: S, map: Vec<usize>, ltc: usize, decoder: LtcShared) -> LtcTap<S> {
        LtcTap {
            inner,
            map,
            ltc,
            decoder,
            mono: Vec::new(),
        }
    }
}

impl<S: AudioSource> AudioSource for LtcTap<S> {
    fn next_block(&mut self, max_frames: usize) -> Result<AudioBlock, CaptureError> {
        let block = self.inner.next_block(max_frames)?;
        let ch = usize::from(block.channels.max(1));
        let frames = block.frames();
        self.mono.clear();
        self.mono.extend(
            block.samples[..frames * ch]
                .chunks_exact(ch)
                .map(|f| f.get(self.ltc).copied().unwrap_or(0)),
        );
        self.decoder.push(block.first, &self.mono);
        let mut samples = Vec::with_capacity(frames * self.map.len());
        for f in block.samples[..frames * ch].chunks_exact(ch) {
            samples.extend(self.map.iter().map(|&c| f.get(c).copied().unwrap_or(0)));
        }
        Ok(AudioBlock {
            first: block.first,
            channels: self.channels(),
            sample_rate: block.sample_rate,
            samples,
        })
    }

    fn channels(&self) -> u16 {
        u16::try_from(self.map.len()).unwrap_or(u16::MAX).max(1)
    }

    fn sample_rate(&self) -> u32 {
        self.inner.sample_rate()
    }
}

// ---------------------------------------------------------------------------------------------
// Start
// ---------------------------------------------------------------------------------------------

/// Where a channel's timeline starts, from its timecode source.
#[derive(Clone, Debug)]
pub struct TimecodeStart {
    /// The frame index the source names for the start (the channel rounds it up to the next
    /// fragment boundary).
    pub index: FrameIndex,
    /// The timeline runs on the system clock (`clock`, or a fallback): in real time the
    /// channel waits for the first boundary on UTC.
    pub on_clock: bool,
    /// A live source's reading: frame `.0` was current at monotonic time `.1`; in real time
    /// the channel waits until the first boundary is current.
    anchor: Option<(FrameIndex, Duration)>,
    rate: Rate,
}

impl TimecodeStart {
    /// Sleeps (on `clocks`) until frame `first` is current on a live source's timecode; returns
    /// at once when there is no live anchor.
    pub fn wait_for(&self, first: FrameIndex, clocks: &dyn Clocks) {
        let Some((n, at)) = self.anchor else { return };
        let frames = first.0.saturating_sub(n.0);
        let nanos = crate::time::mul_div_ceil(
            frames,
            u64::from(self.rate.den()).saturating_mul(1_000_000_000),
            u64::from(self.rate.num()),
        );
        let due = at.saturating_add(Duration::from_nanos(nanos));
        let now = clocks.monotonic();
        if due > now {
            tracing::info!(
                wait_ms = (due - now).as_millis() as u64,
                "waiting for the first fragment boundary on the input's timecode"
            );
            clocks.sleep(due - now);
        }
    }
}

/// The start of `plan`'s timeline (see the module docs), recorded in `monitor`. `fast`: the
/// run is not real time (no waiting for a live timecode). Errors only for a `fixed` start that
/// cannot be counted; every input problem falls back to the clock.
pub fn start(
    plan: &Plan,
    inputs: &InputOptions,
    clocks: Arc<dyn Clocks>,
    monitor: &TimecodeMonitor,
) -> Result<TimecodeStart, crate::time::TimeError> {
    let kind = TimecodeKind::of(&plan.timecode);
    let fall_back =
        |reason: String| fallback_start(&plan.channel, kind, reason, plan.rate, &clocks, monitor);
    match &plan.timecode {
        TimecodeSpec::Clock => clock_start(plan.rate, &clocks, monitor),
        TimecodeSpec::Fixed { .. } => {
            let index = resolve_start(&plan.timecode, plan.rate, clocks.as_ref())?;
            monitor.started(index);
            Ok(TimecodeStart {
                index,
                on_clock: false,
                anchor: None,
                rate: plan.rate,
            })
        }
        TimecodeSpec::V4l2 => match &plan.video_input {
            VideoInput::Device { input } => match open_v4l2(plan, inputs, clocks.clone()) {
                Ok(mut buffers) => start_from_buffers(
                    &plan.channel,
                    input,
                    plan.rate,
                    &mut buffers,
                    clocks,
                    monitor,
                ),
                Err(e) => fall_back(format!("video input {input}: no driver timecode ({e})")),
            },
            _ => fall_back("the video input is not a capture device".into()),
        },
        TimecodeSpec::Ltc { channel } => match probe_ltc(plan, inputs, *channel, clocks.clone()) {
            Ok((index, anchor)) => {
                tracing::info!(channel = %plan.channel, start = index.0, "timeline starts from LTC");
                monitor.started(index);
                Ok(TimecodeStart {
                    index,
                    on_clock: false,
                    anchor,
                    rate: plan.rate,
                })
            }
            Err(reason) => fall_back(reason),
        },
    }
}

/// The clock start (`clock`, and every fallback).
fn clock_start(
    rate: Rate,
    clocks: &Arc<dyn Clocks>,
    monitor: &TimecodeMonitor,
) -> Result<TimecodeStart, crate::time::TimeError> {
    let index = resolve_start(&TimecodeSpec::Clock, rate, clocks.as_ref())?;
    monitor.started(index);
    Ok(TimecodeStart {
        index,
        on_clock: true,
        anchor: None,
        rate,
    })
}

/// Falls back to the clock: warns, records state `fallback` with `reason`.
fn fallback_start(
    channel: &str,
    kind: TimecodeKind,
    reason: String,
    rate: Rate,
    clocks: &Arc<dyn Clocks>,
    monitor: &TimecodeMonitor,
) -> Result<TimecodeStart, crate::time::TimeError> {
    tracing::warn!(channel = %channel, source = kind.name(), reason = %reason, "timecode source gives no timecode: running on the clock");
    monitor.fall_back(reason);
    clock_start(rate, clocks, monitor)
}

/// The `v4l2` start from an opened capture's buffers (see the module docs): reads up to
/// [`V4L2_PROBE_BUFFERS`] buffers for a driver timecode valid at `rate`; the first one names
/// the start, and its capture time anchors the wait for the first boundary. Without one the
/// channel falls back to the clock (state `fallback`, the reason naming video input
/// `input`). Errors only when the clock start cannot be counted.
pub fn start_from_buffers<B: BufferSource>(
    channel: &str,
    input: &str,
    rate: Rate,
    buffers: &mut B,
    clocks: Arc<dyn Clocks>,
    monitor: &TimecodeMonitor,
) -> Result<TimecodeStart, crate::time::TimeError> {
    match probe_v4l2(rate, buffers, clocks.as_ref()) {
        Ok((label, at)) => {
            tracing::info!(channel = %channel, input = %input, timecode = %label.timecode, start = label.index.0, "timeline starts from the driver's buffer timecode");
            monitor.started(label.index);
            // Locked on the probe's label; the counts are those of the running capture.
            monitor.read(label, Counts::default());
            Ok(TimecodeStart {
                index: label.index,
                on_clock: false,
                anchor: Some((label.index, at)),
                rate,
            })
        }
        Err(reason) => fallback_start(
            channel,
            TimecodeKind::V4l2,
            format!("video input {input}: {reason}"),
            rate,
            &clocks,
            monitor,
        ),
    }
}

/// Reads buffers until one carries a driver timecode valid at `rate`: that label and the
/// buffer's capture time (the clocks' monotonic domain).
fn probe_v4l2<B: BufferSource>(
    rate: Rate,
    buffers: &mut B,
    clocks: &dyn Clocks,
) -> Result<(Label, Duration), String> {
    let (mut seen, mut without, mut rejected) = (0usize, 0usize, 0usize);
    while seen < V4L2_PROBE_BUFFERS {
        let cap = buffers
            .next_buffer()
            .map_err(|e| format!("no driver timecode: {e}"))?;
        seen += 1;
        if cap.damaged {
            continue;
        }
        let Some(raw) = cap.timecode else {
            without += 1;
            continue;
        };
        let resolved = raw.label(rate).and_then(|timecode| {
            frame_index_near(&timecode, rate, clocks.utc_nanos())
                .ok()
                .map(|(index, clock_offset)| Label {
                    timecode,
                    index,
                    offset: None,
                    clock_offset: Some(clock_offset),
                })
        });
        match resolved {
            Some(label) => return Ok((label, cap.at)),
            None => rejected += 1,
        }
    }
    Err(if rejected > 0 {
        format!(
            "no driver timecode valid at {rate} fps in the first {seen} buffers ({rejected} \
             refused: type, drop-frame or range disagree with the channel)"
        )
    } else {
        format!(
            "no driver timecode in the first {seen} buffers ({without} without \
             V4L2_BUF_FLAG_TIMECODE)"
        )
    })
}

/// Opens the channel's video device (through the box's hw map, as the capture will) for the
/// `v4l2` start probe.
fn open_v4l2(
    plan: &Plan,
    inputs: &InputOptions,
    clocks: Arc<dyn Clocks>,
) -> Result<super::v4l2::device::DeviceBuffers, String> {
    if inputs.video.is_some() {
        return Err("the video input is replaced by an injected source".into());
    }
    let path = inputs
        .hw_map
        .clone()
        .unwrap_or_else(crate::hw::default_map_path);
    let map = crate::hw::HwMap::load(&path).map_err(|e| e.to_string())?;
    let dev = crate::hw::resolve(plan, &map)
        .map_err(|e| e.to_string())?
        .video
        .ok_or("the hw map has no video device for it")?;
    let no_signal_after = inputs.loss.as_ref().unwrap_or(&map.loss).no_signal_after;
    let (width, height) = plan
        .rungs
        .first()
        .map_or((1280, 720), |r| (r.width, r.height));
    let want = super::v4l2::negotiate::Want {
        width,
        height,
        rate: plan.rate,
    };
    // The v4l crate panics on a few driver answers it does not expect; a broken driver must
    // cost the timecode, not the channel.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        super::v4l2::device::open_buffers(&dev, &want, clocks, no_signal_after)
    }))
    .map_err(|_| {
        format!(
            "{}: the driver answered something unexpected",
            dev.path.display()
        )
    })?
    .map(|(buffers, _)| buffers)
    .map_err(|e| e.to_string())
}

/// Reads the audio input until LTC decodes on `channel` (1-based). Returns the start index and,
/// for a live device, the anchor to wait on.
fn probe_ltc(
    plan: &Plan,
    inputs: &InputOptions,
    channel: u16,
    clocks: Arc<dyn Clocks>,
) -> Result<(FrameIndex, Option<(FrameIndex, Duration)>), String> {
    let sr = plan.audio.sample_rate;
    let mut ltc =
        LtcTimecodeSource::new(plan.rate, sr, 0, clocks.clone()).map_err(|e| e.to_string())?;
    let mut found = Vec::new();
    match &plan.audio_input {
        AudioInput::Synthetic => Err("the synthetic audio input carries no LTC".into()),
        AudioInput::File { path } => {
            let channels = file_channels(plan, channel);
            let mut src =
                super::file::FileAudio::open(path, sr, channels, SampleIndex(0), Pacing::Fast)
                    .map_err(|e| e.to_string())?;
            let limit = LTC_PROBE_TIMEOUT.as_secs() * u64::from(sr);
            let mut pushed = 0u64;
            let mut mono = Vec::new();
            while pushed < limit {
                let b = src.next_block(4096).map_err(|e| e.to_string())?;
                mono.clear();
                pick(&b, usize::from(channel - 1), &mut mono);
                ltc.push_mono(&mono, &mut found);
                pushed += mono.len() as u64;
                if let Some(f) = found.first() {
                    // The frame the file's first sample belongs to.
                    let back = round_frames(
                        i128::from(f.frame.sample_position_of_frame_start),
                        plan.rate,
                        sr,
                    )
                    .unwrap_or(0);
                    let n = i128::from(f.index.0) - back;
                    let n = u64::try_from(n).map_err(|_| "LTC names a frame before 1970")?;
                    return Ok((FrameIndex(n), None));
                }
            }
            Err(format!(
                "no LTC on channel {channel} of {} in its first {} s",
                path.display(),
                LTC_PROBE_TIMEOUT.as_secs()
            ))
        }
        AudioInput::Device { input } => {
            if inputs.audio.is_some() {
                return Err("the audio input is replaced by an injected source".into());
            }
            let dev = super::loss::device_audio(plan, inputs, Some(channel))
                .map_err(|e| e.to_string())?
                .ok_or("the audio input is not a capture device")?;
            let ltc_dev = dev.ltc.ok_or("no LTC channel resolved")?;
            let mut src = super::alsa::AlsaAudio::open(
                &dev.alsa,
                dev.device_channels,
                &[ltc_dev],
                sr,
                SampleIndex(0),
                clocks.clone(),
            )
            .map_err(|e| e.to_string())?;
            let since = clocks.monotonic();
            let mut pushed = 0u64;
            loop {
                let b = src.next_block(4096).map_err(|e| e.to_string())?;
                let at = clocks.monotonic();
                ltc.push_mono(&b.samples, &mut found);
                pushed += b.samples.len() as u64;
                if let Some(f) = found.last() {
                    // The frame current at the end of what was read.
                    let ahead = round_frames(
                        i128::from(pushed) - i128::from(f.frame.sample_position_of_frame_start),
                        plan.rate,
                        sr,
                    )
                    .unwrap_or(0);
                    let n = u64::try_from(i128::from(f.index.0) + ahead)
                        .map_err(|_| "LTC names a frame before 1970")?;
                    return Ok((FrameIndex(n), Some((FrameIndex(n), at))));
                }
                if at.saturating_sub(since) >= LTC_PROBE_TIMEOUT {
                    return Err(format!(
                        "no LTC on channel {channel} of audio input {input} within {} s",
                        LTC_PROBE_TIMEOUT.as_secs()
                    ));
                }
            }
        }
    }
}

/// Channels a file input is decoded to when LTC is tapped from it: enough for the programme
/// channels and the LTC channel (FFmpeg's default layout for the count, which leaves a file of
/// that many channels as it is).
pub(crate) fn file_channels(plan: &Plan, ltc_channel: u16) -> u16 {
    plan.audio
        .channel_map
        .iter()
        .copied()
        .chain([ltc_channel, plan.audio.channels])
        .max()
        .unwrap_or(1)
        .max(1)
}

/// Appends channel `c` (0-based) of `b` to `out` (silence when it has no such channel).
fn pick(b: &AudioBlock, c: usize, out: &mut Vec<i16>) {
    let ch = usize::from(b.channels.max(1));
    out.extend(
        b.samples
            .chunks_exact(ch)
            .map(|f| f.get(c).copied().unwrap_or(0)),
    );
}

/// The grid frame at grid sample `s` (for tests and displays): `round(s × rate / sr)`.
pub fn frame_at_sample(s: SampleIndex, rate: Rate, sample_rate: u32) -> Option<FrameIndex> {
    round_frames(i128::from(s.0), rate, sample_rate)
        .and_then(|n| u64::try_from(n).ok())
        .map(FrameIndex)
}

/// The frame index system UTC names now (for comparisons in status).
pub fn clock_frame(rate: Rate, clocks: &dyn Clocks) -> FrameIndex {
    FrameGrid::new(rate, crate::time::DEFAULT_TIMESCALE).frame_at_unix_nanos(clocks.utc_nanos())
}
