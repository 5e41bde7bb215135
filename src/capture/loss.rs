//! Input-loss policy: the timeline never stops.
//!
//! A device input can stop delivering (no picture within the no-signal timeout, signal lost,
//! cable pulled, USB device unplugged). The channel must still emit one picture per frame-grid
//! slot and contiguous audio, so that fragment times keep running and the publishing point
//! never sees a gap or a reset (design.md, time model §5). [`ResilientVideo`] wraps a
//! reopenable source and, while it is lost, fills the grid by policy:
//!
//! ```text
//! live … ✕ lost ─► repeat last picture (repeat_for) ─► black (black_for) ─► slate … ─► live
//!                  └────────── reopen with backoff: 0.25 s, 0.5 s, 1 s … reopen_max ──┘
//! ```
//!
//! Every fill carries its [`FrameOrigin`] (status and tests tell them apart). When the device
//! comes back it is reopened at the slot that is due *now*, so live pictures resume on the grid
//! exactly where time has got to: no timestamp jump, nothing replayed. [`ResilientAudio`] does
//! the same with silence.
//!
//! Time here is grid time: slot `n` is due `(n − n0)` frame periods after the wrapper started.
//! With real-time pacing the wrapper sleeps on the injected clocks until a fill is due, so
//! grid time follows the clocks; in fast mode (tests) it runs ahead of them, which keeps
//! scripted outages deterministic: a test source that is "unplugged for 3 s" is unplugged for
//! 3 s of grid time.

use super::{i420_size, Pacing};
use super::{AudioBlock, AudioSource, CaptureError, FrameOrigin, VideoFrame, VideoSource};
use crate::encode::scale::Scaler;
use crate::time::{mul_div_ceil, mul_div_floor, Clocks, FrameIndex, Rate, SampleIndex};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What to show and how to recover when an input is lost.
#[derive(Clone, Debug, PartialEq)]
pub struct LossPolicy {
    /// Repeat the last live picture for this long after it (a freeze hides a short glitch).
    pub repeat_for: Duration,
    /// Then black for this long.
    pub black_for: Duration,
    /// Then this slate image (any still FFmpeg decodes — PNG, JPEG — scaled to the picture
    /// size); `None` = the built-in "NO SIGNAL" card.
    pub slate: Option<PathBuf>,
    /// A device that delivers no picture for this long is lost (the dequeue timeout).
    pub no_signal_after: Duration,
    /// Delay before the first reopen after a loss; doubles after every failed attempt…
    pub reopen_initial: Duration,
    /// …up to this.
    pub reopen_max: Duration,
}

impl Default for LossPolicy {
    /// Freeze 1 s, black 2 s, then the slate; lost after 0.5 s without a picture; reopen
    /// after 0.25 s, backing off to 4 s.
    fn default() -> Self {
        LossPolicy {
            repeat_for: Duration::from_secs(1),
            black_for: Duration::from_secs(2),
            slate: None,
            no_signal_after: Duration::from_millis(500),
            reopen_initial: Duration::from_millis(250),
            reopen_max: Duration::from_secs(4),
        }
    }
}

/// Live counters of one input, shared between its source and status displays.
#[derive(Debug, Default)]
pub struct InputCounters {
    /// Pictures (video) or sample frames (audio) delivered live.
    pub live: AtomicU64,
    /// Pictures repeated (skipped grid slots and the freeze after a loss).
    pub repeated: AtomicU64,
    /// Black pictures.
    pub black: AtomicU64,
    /// Slate pictures.
    pub slate: AtomicU64,
    /// Audio sample frames of silence filled in.
    pub silence: AtomicU64,
    /// Grid slots the device skipped (no buffer), filled by repeating the previous picture.
    pub skipped: AtomicU64,
    /// Buffers dropped because their slot already had one (device faster than the grid, or
    /// late buffers after a fill).
    pub duplicates: AtomicU64,
    /// Buffers the driver flagged as damaged or that could not be converted.
    pub damaged: AtomicU64,
    /// Times the input was lost.
    pub losses: AtomicU64,
    /// Successful reopens after a loss.
    pub reopens: AtomicU64,
    /// Audio: times audio was lost on the way from the device (ALSA xruns, and periods the
    /// capture ring dropped because the pipeline fell behind).
    pub xruns: AtomicU64,
    /// Audio: sample frames of silence put in place of the audio those xruns lost, on the
    /// sample grid (not counted in `silence`, which is input loss).
    pub xrun_silence: AtomicU64,
    /// True while the input is lost.
    pub lost: AtomicBool,
}

/// A snapshot of [`InputCounters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InputStatus {
    /// Pictures (video) or sample frames (audio) delivered live.
    pub live: u64,
    /// Pictures repeated (skipped slots and the freeze after a loss).
    pub repeated: u64,
    /// Black pictures.
    pub black: u64,
    /// Slate pictures.
    pub slate: u64,
    /// Audio sample frames of silence filled in.
    pub silence: u64,
    /// Grid slots the device skipped.
    pub skipped: u64,
    /// Buffers dropped because their slot already had one.
    pub duplicates: u64,
    /// Damaged or unconvertible buffers.
    pub damaged: u64,
    /// Times the input was lost.
    pub losses: u64,
    /// Successful reopens after a loss.
    pub reopens: u64,
    /// Audio: xruns and capture-ring overflows.
    pub xruns: u64,
    /// Audio: sample frames of silence filled in for them.
    pub xrun_silence: u64,
    /// The input is lost right now.
    pub lost: bool,
}

impl InputCounters {
    /// The current values.
    pub fn snapshot(&self) -> InputStatus {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        InputStatus {
            live: g(&self.live),
            repeated: g(&self.repeated),
            black: g(&self.black),
            slate: g(&self.slate),
            silence: g(&self.silence),
            skipped: g(&self.skipped),
            duplicates: g(&self.duplicates),
            damaged: g(&self.damaged),
            losses: g(&self.losses),
            reopens: g(&self.reopens),
            xruns: g(&self.xruns),
            xrun_silence: g(&self.xrun_silence),
            lost: self.lost.load(Ordering::Relaxed),
        }
    }
}

/// Where a (re)opened video source should start: its first picture goes to `slot` or later,
/// `slot` being due at `due` on the injected clocks' monotonic time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GridStart {
    /// The first slot the source may fill.
    pub slot: FrameIndex,
    /// Monotonic time (the clocks' domain) at which `slot` is due.
    pub due: Duration,
}

/// Where a (re)opened audio source should start: its first sample is `sample` or later,
/// due at `due` on the injected clocks' monotonic time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AudioStart {
    /// The first sample (audio grid index) the source may deliver.
    pub sample: SampleIndex,
    /// Monotonic time (the clocks' domain) at which `sample` is due.
    pub due: Duration,
}

type VideoOpen = dyn Fn(GridStart) -> Result<Box<dyn VideoSource>, CaptureError> + Send + Sync;
type AudioOpen = dyn Fn(AudioStart) -> Result<Box<dyn AudioSource>, CaptureError> + Send + Sync;

/// Opens (and reopens) a video source at a grid position.
#[derive(Clone)]
pub struct VideoFactory(Arc<VideoOpen>);

impl VideoFactory {
    /// A factory calling `open`.
    pub fn new(
        open: impl Fn(GridStart) -> Result<Box<dyn VideoSource>, CaptureError> + Send + Sync + 'static,
    ) -> VideoFactory {
        VideoFactory(Arc::new(open))
    }

    /// Opens a source starting at `at`.
    pub fn open(&self, at: GridStart) -> Result<Box<dyn VideoSource>, CaptureError> {
        (self.0)(at)
    }
}

impl std::fmt::Debug for VideoFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VideoFactory")
    }
}

/// Opens (and reopens) an audio source at a sample position.
#[derive(Clone)]
pub struct AudioFactory(Arc<AudioOpen>);

impl AudioFactory {
    /// A factory calling `open`.
    pub fn new(
        open: impl Fn(AudioStart) -> Result<Box<dyn AudioSource>, CaptureError> + Send + Sync + 'static,
    ) -> AudioFactory {
        AudioFactory(Arc::new(open))
    }

    /// Opens a source starting at `at`.
    pub fn open(&self, at: AudioStart) -> Result<Box<dyn AudioSource>, CaptureError> {
        (self.0)(at)
    }
}

impl std::fmt::Debug for AudioFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AudioFactory")
    }
}

/// How the channel builds its inputs beyond what the plan says (see `channel::RunOptions`).
#[derive(Clone, Debug, Default)]
pub struct InputOptions {
    /// Test/integration seam: this video source (wrapped in [`ResilientVideo`]) instead of
    /// the plan's video input.
    pub video: Option<VideoFactory>,
    /// Test/integration seam: this audio source (wrapped in [`ResilientAudio`]) instead of
    /// the plan's audio input.
    pub audio: Option<AudioFactory>,
    /// Loss policy; default: the box's hw map `[input_loss]`, else [`LossPolicy::default`].
    pub loss: Option<LossPolicy>,
    /// The box's hw map; default [`crate::hw::default_map_path`].
    pub hw_map: Option<PathBuf>,
}

/// Grid-time bookkeeping shared by both wrappers: item `n` (frame or sample) is due
/// `(n − n0) × secs_num / secs_den` seconds after `origin`.
#[derive(Debug)]
struct GridClock {
    clocks: Arc<dyn Clocks>,
    realtime: bool,
    n0: u64,
    origin: Duration,
    secs_num: u64,
    secs_den: u64,
}

impl GridClock {
    fn new(
        pacing: &Pacing,
        clocks: Arc<dyn Clocks>,
        n0: u64,
        secs_num: u64,
        secs_den: u64,
    ) -> Self {
        let realtime = matches!(pacing, Pacing::RealTime { .. });
        let clocks = match pacing {
            Pacing::RealTime { clocks } => Arc::clone(clocks),
            Pacing::Fast => clocks,
        };
        GridClock {
            origin: clocks.monotonic(),
            clocks,
            realtime,
            n0,
            secs_num,
            secs_den: secs_den.max(1),
        }
    }

    /// When item `n` is due (the clocks' monotonic domain).
    fn due(&self, n: u64) -> Duration {
        let nanos = mul_div_floor(
            n.saturating_sub(self.n0),
            self.secs_num.saturating_mul(1_000_000_000),
            self.secs_den,
        );
        self.origin.saturating_add(Duration::from_nanos(nanos))
    }

    /// Items in `d` of grid time, rounded up.
    fn items_in(&self, d: Duration) -> u64 {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        mul_div_ceil(
            nanos,
            self.secs_den,
            self.secs_num.saturating_mul(1_000_000_000).max(1),
        )
    }

    /// With real-time pacing, sleeps until item `n` is due.
    fn wait_for(&self, n: u64) {
        if !self.realtime {
            return;
        }
        let due = self.due(n);
        let now = self.clocks.monotonic();
        if due > now {
            self.clocks.sleep(due - now);
        }
    }
}

/// Reopen bookkeeping shared by both wrappers.
#[derive(Debug)]
struct Reopen {
    /// Grid item from which the next attempt is made.
    at: u64,
    backoff: Duration,
    initial: Duration,
    max: Duration,
}

impl Reopen {
    fn new(policy: &LossPolicy) -> Reopen {
        Reopen {
            at: 0,
            backoff: policy.reopen_initial,
            initial: policy.reopen_initial,
            max: policy.reopen_max.max(policy.reopen_initial),
        }
    }

    /// Schedules the next attempt one backoff after item `now`, and doubles the backoff.
    fn schedule(&mut self, now: u64, clock: &GridClock) {
        self.at = now.saturating_add(clock.items_in(self.backoff).max(1));
        self.backoff = (self.backoff * 2).min(self.max);
    }

    fn succeeded(&mut self) {
        self.backoff = self.initial;
    }
}

/// Drops a failed source. The `v4l` crate panics in `Drop` when stopping a stream fails for
/// any reason but an unplugged device; a driver that misbehaves while being closed must cost
/// a reopen, not the channel.
fn drop_quietly<T>(source: Option<T>) {
    if let Some(s) = source {
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(s))).is_err() {
            tracing::warn!("closing a failed input panicked; continuing");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Video
// ---------------------------------------------------------------------------------------------

/// A video source that never fails: it keeps the grid running through input loss by the
/// [`LossPolicy`] and reopens the input (see the module docs).
pub struct ResilientVideo {
    input: String,
    factory: VideoFactory,
    policy: LossPolicy,
    rate: Rate,
    width: u32,
    height: u32,
    clock: GridClock,
    next: FrameIndex,
    inner: Option<Box<dyn VideoSource>>,
    pending: Option<VideoFrame>,
    /// Converts pictures of a source whose size differs from ours (a card reopened on a
    /// different signal).
    scaler: Option<((u32, u32), Scaler)>,
    last_live: Option<(FrameIndex, Arc<Vec<u8>>)>,
    /// First slot without a live picture since the input was lost (or since the start).
    lost_since: Option<FrameIndex>,
    reopen: Reopen,
    black: Arc<Vec<u8>>,
    slate: Arc<Vec<u8>>,
    counters: Arc<InputCounters>,
}

impl std::fmt::Debug for ResilientVideo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResilientVideo")
            .field("input", &self.input)
            .field("size", &(self.width, self.height))
            .field("next", &self.next)
            .field("open", &self.inner.is_some())
            .finish_non_exhaustive()
    }
}

impl ResilientVideo {
    /// Opens `factory` at slot `first` (due now) and yields pictures from it on the grid of
    /// `rate`. The picture size is the source's; when it cannot be opened now, `fallback_size`
    /// (the channel runs on fills until it can). Every later picture is scaled to that size.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        input: &str,
        factory: VideoFactory,
        policy: LossPolicy,
        rate: Rate,
        first: FrameIndex,
        fallback_size: (u32, u32),
        pacing: Pacing,
        clocks: Arc<dyn Clocks>,
        counters: Arc<InputCounters>,
    ) -> ResilientVideo {
        let clock = GridClock::new(
            &pacing,
            clocks,
            first.0,
            u64::from(rate.den()),
            u64::from(rate.num()),
        );
        let start = GridStart {
            slot: first,
            due: clock.due(first.0),
        };
        let mut reopen = Reopen::new(&policy);
        let (inner, lost_since) = match factory.open(start) {
            Ok(s) => (Some(s), None),
            Err(e) => {
                tracing::warn!(input = %input, error = %e, "input not available at start: running on fills until it is");
                counters.losses.fetch_add(1, Ordering::Relaxed);
                counters.lost.store(true, Ordering::Relaxed);
                reopen.schedule(first.0, &clock);
                (None, Some(first))
            }
        };
        let (width, height) = inner.as_ref().map_or(fallback_size, |s| s.size());
        let (width, height) = (width.max(2), height.max(2));
        let black = Arc::new(black_picture(width, height));
        let slate = Arc::new(load_slate(
            policy.slate.as_deref(),
            width,
            height,
            rate,
            input,
        ));
        ResilientVideo {
            input: input.to_owned(),
            factory,
            policy,
            rate,
            width,
            height,
            clock,
            next: first,
            inner,
            pending: None,
            scaler: None,
            last_live: None,
            lost_since,
            reopen,
            black,
            slate,
            counters,
        }
    }

    /// The input's counters.
    pub fn counters(&self) -> Arc<InputCounters> {
        Arc::clone(&self.counters)
    }

    /// Grid time elapsed over `slots` frames.
    fn slots_time(&self, slots: u64) -> Duration {
        let nanos = mul_div_floor(
            slots,
            u64::from(self.rate.den()).saturating_mul(1_000_000_000),
            u64::from(self.rate.num()),
        );
        Duration::from_nanos(nanos)
    }

    /// The fill for slot `next` while no live picture is available.
    fn fill(&mut self) -> VideoFrame {
        let index = self.next;
        let since = self
            .last_live
            .as_ref()
            .map(|(i, _)| FrameIndex(i.0 + 1))
            .or(self.lost_since)
            .unwrap_or(index);
        let elapsed = self.slots_time(index.0.saturating_sub(since.0));
        let (data, origin) = match &self.last_live {
            Some((_, pic)) if elapsed < self.policy.repeat_for => {
                (Arc::clone(pic), FrameOrigin::Repeat)
            }
            _ if elapsed < self.policy.repeat_for + self.policy.black_for => {
                (Arc::clone(&self.black), FrameOrigin::Black)
            }
            _ => (Arc::clone(&self.slate), FrameOrigin::Slate),
        };
        self.emit(VideoFrame {
            index,
            width: self.width,
            height: self.height,
            data,
            origin,
        })
    }

    fn emit(&mut self, frame: VideoFrame) -> VideoFrame {
        let c = &self.counters;
        let counter = match frame.origin {
            FrameOrigin::Live => &c.live,
            FrameOrigin::Repeat => &c.repeated,
            FrameOrigin::Black => &c.black,
            FrameOrigin::Slate => &c.slate,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if frame.origin == FrameOrigin::Live {
            if let Some(since) = self.lost_since.take() {
                tracing::info!(
                    input = %self.input,
                    slot = frame.index.0,
                    filled = frame.index.0.saturating_sub(since.0),
                    "input back: live pictures resume on the grid"
                );
                c.lost.store(false, Ordering::Relaxed);
            }
            self.last_live = Some((frame.index, Arc::clone(&frame.data)));
        }
        self.next = FrameIndex(frame.index.0 + 1);
        frame
    }

    fn lose(&mut self, error: &CaptureError) {
        drop_quietly(self.inner.take());
        self.pending = None;
        if self.lost_since.is_none() {
            tracing::warn!(
                input = %self.input,
                slot = self.next.0,
                error = %error,
                "input lost: filling the grid (repeat, black, slate) and reopening"
            );
            self.lost_since = Some(self.next);
            self.counters.losses.fetch_add(1, Ordering::Relaxed);
            self.counters.lost.store(true, Ordering::Relaxed);
        } else {
            tracing::debug!(input = %self.input, error = %error, "reopened input failed again");
        }
        self.reopen.schedule(self.next.0, &self.clock);
    }

    /// Brings a source's picture to our size.
    fn fit(&mut self, frame: VideoFrame) -> Result<VideoFrame, CaptureError> {
        if (frame.width, frame.height) == (self.width, self.height) {
            return Ok(frame);
        }
        let src = (frame.width, frame.height);
        if self.scaler.as_ref().map(|(size, _)| *size) != Some(src) {
            let s =
                Scaler::new(src, (self.width, self.height)).map_err(|e| CaptureError::Read {
                    input: self.input.clone(),
                    reason: e.to_string(),
                })?;
            self.scaler = Some((src, s));
        }
        match self.scaler.as_mut() {
            Some((_, s)) => s.scale(&frame).map_err(|e| CaptureError::Read {
                input: self.input.clone(),
                reason: e.to_string(),
            }),
            None => Ok(frame),
        }
    }
}

impl VideoSource for ResilientVideo {
    fn next_frame(&mut self) -> Result<VideoFrame, CaptureError> {
        loop {
            if let Some(p) = self.pending.take() {
                if p.index == self.next {
                    return Ok(self.emit(p));
                }
                // The source skipped ahead (it started late, or stalled briefly): fill up
                // to its picture; these slots are already past.
                self.pending = Some(p);
                return Ok(self.fill());
            }
            if let Some(inner) = self.inner.as_mut() {
                match inner.next_frame() {
                    Ok(f) if f.index < self.next => {
                        // Slots already filled while the source was catching up.
                        self.counters.duplicates.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(f) => match self.fit(f) {
                        Ok(f) => self.pending = Some(f),
                        Err(e) => self.lose(&e),
                    },
                    Err(e) => self.lose(&e),
                }
                continue;
            }
            if self.next.0 >= self.reopen.at {
                let at = GridStart {
                    slot: self.next,
                    due: self.clock.due(self.next.0),
                };
                match self.factory.open(at) {
                    Ok(s) => {
                        tracing::info!(input = %self.input, slot = self.next.0, "input reopened");
                        self.counters.reopens.fetch_add(1, Ordering::Relaxed);
                        self.reopen.succeeded();
                        self.inner = Some(s);
                        continue;
                    }
                    Err(e) => self.lose(&e),
                }
            }
            self.clock.wait_for(self.next.0);
            return Ok(self.fill());
        }
    }

    fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }
}

/// A black I420 picture (BT.709 limited range: Y 16, Cb = Cr = 128).
pub fn black_picture(width: u32, height: u32) -> Vec<u8> {
    let y = width as usize * height as usize;
    let mut v = vec![128u8; i420_size(width, height)];
    v[..y].fill(16);
    v
}

/// The slate for `width × height`: the image at `path` decoded and scaled, or the built-in
/// card when there is none or it cannot be decoded (logged: a missing slate must not take the
/// channel down).
fn load_slate(
    path: Option<&std::path::Path>,
    width: u32,
    height: u32,
    rate: Rate,
    input: &str,
) -> Vec<u8> {
    let Some(path) = path else {
        return builtin_slate(width, height);
    };
    match decode_still(path, width, height, rate) {
        Ok(pic) => pic,
        Err(e) => {
            tracing::warn!(input = %input, slate = %path.display(), error = %e, "cannot use the slate image; using the built-in card");
            builtin_slate(width, height)
        }
    }
}

/// Decodes the first picture of `path` (FFmpeg) and scales it to `width × height` I420.
pub fn decode_still(
    path: &std::path::Path,
    width: u32,
    height: u32,
    rate: Rate,
) -> Result<Vec<u8>, CaptureError> {
    let mut file = super::file::FileVideo::open(path, rate, FrameIndex(0), Pacing::Fast)?;
    let frame = file.next_frame()?;
    let frame = if (frame.width, frame.height) == (width, height) {
        frame
    } else {
        let mut s = Scaler::new((frame.width, frame.height), (width, height)).map_err(|e| {
            CaptureError::Open {
                input: path.display().to_string(),
                reason: e.to_string(),
            }
        })?;
        s.scale(&frame).map_err(|e| CaptureError::Open {
            input: path.display().to_string(),
            reason: e.to_string(),
        })?
    };
    Ok(frame.data.as_ref().clone())
}

/// Luma of the built-in slate's background and text.
pub const SLATE_BACKGROUND_Y: u8 = 60;
const SLATE_TEXT_Y: u8 = 235;

/// The built-in slate: a dark grey card with a light border and "NO SIGNAL" in large letters
/// (mean luma well above black, far below bars: tests tell the three apart by mean luma).
pub fn builtin_slate(width: u32, height: u32) -> Vec<u8> {
    let (w, h) = (width as usize, height as usize);
    let mut v = vec![128u8; i420_size(width, height)];
    let luma = &mut v[..w * h];
    luma.fill(SLATE_BACKGROUND_Y);
    // Border: 1/60 of the height, at least one line.
    let b = (h / 60).max(1);
    for y in 0..h {
        for x in 0..w {
            if y < b || y >= h - b || x < b || x >= w - b {
                luma[y * w + x] = 180;
            }
        }
    }
    const TEXT: &[u8] = b"NO SIGNAL";
    let cells = TEXT.len() * 6 - 1;
    let scale = (w * 3 / 5 / cells).min(h / 4 / 7).max(1);
    let (tw, th) = (cells * scale, 7 * scale);
    if tw > w || th > h {
        return v;
    }
    let (x0, y0) = ((w - tw) / 2, (h - th) / 2);
    for (i, &c) in TEXT.iter().enumerate() {
        for (row, bits) in letter(c).iter().enumerate() {
            for col in 0..5 {
                if bits & (0x10 >> col) == 0 {
                    continue;
                }
                let (px, py) = (x0 + (i * 6 + col) * scale, y0 + row * scale);
                for yy in py..py + scale {
                    luma[yy * w + px..yy * w + px + scale].fill(SLATE_TEXT_Y);
                }
            }
        }
    }
    v
}

/// 5×7 glyphs of the slate's letters, one byte per row, bit 4 = leftmost column.
fn letter(c: u8) -> [u8; 7] {
    match c {
        b'N' => [0x11, 0x19, 0x15, 0x13, 0x11, 0x11, 0x11],
        b'O' => [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        b'S' => [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E],
        b'I' => [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        b'G' => [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F],
        b'A' => [0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        b'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        _ => [0; 7],
    }
}

// ---------------------------------------------------------------------------------------------
// Channel inputs
// ---------------------------------------------------------------------------------------------

/// Counters of a channel's two inputs.
#[derive(Clone, Debug, Default)]
pub struct ChannelInputCounters {
    /// The video input's counters.
    pub video: Arc<InputCounters>,
    /// The audio input's counters.
    pub audio: Arc<InputCounters>,
}

/// A snapshot of a channel's input counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InputsStatus {
    /// The video input.
    pub video: InputStatus,
    /// The audio input.
    pub audio: InputStatus,
}

impl ChannelInputCounters {
    /// The current values.
    pub fn snapshot(&self) -> InputsStatus {
        InputsStatus {
            video: self.video.snapshot(),
            audio: self.audio.snapshot(),
        }
    }
}

/// Why a channel's device input cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The box's hw map is missing, invalid, or lacks the profile's input.
    #[error(transparent)]
    Hw(#[from] crate::hw::HwError),
    /// A file input could not be opened.
    #[error(transparent)]
    Open(Box<CaptureError>),
}

impl InputError {
    /// True when the profile or the map is wrong rather than the machine.
    pub fn is_bad_input(&self) -> bool {
        match self {
            InputError::Hw(e) => e.is_bad_input(),
            InputError::Open(_) => false,
        }
    }
}

/// The channel's video source when it is a device input (or the test override): resolved
/// through the box's hw map, opened with V4L2 and wrapped in the loss policy. `None` for
/// synthetic and file inputs, which never lose signal. `first` is the first frame slot, due
/// now. `timecode`: the `v4l2` timecode source's tap, fed by the device's buffers.
pub fn channel_video(
    plan: &crate::profile::Plan,
    opts: &InputOptions,
    first: FrameIndex,
    pacing: &Pacing,
    clocks: Arc<dyn Clocks>,
    counters: Arc<InputCounters>,
    timecode: Option<super::timecode::V4l2TimecodeTap>,
) -> Result<Option<ResilientVideo>, InputError> {
    let fallback = plan
        .rungs
        .first()
        .map_or((1280, 720), |r| (r.width, r.height));
    let wrap = |name: &str, factory: VideoFactory, policy: LossPolicy| {
        ResilientVideo::new(
            name,
            factory,
            policy,
            plan.rate,
            first,
            fallback,
            pacing.clone(),
            clocks.clone(),
            counters.clone(),
        )
    };
    if let Some(factory) = &opts.video {
        let policy = opts.loss.clone().unwrap_or_default();
        return Ok(Some(wrap("video", factory.clone(), policy)));
    }
    let crate::profile::VideoInput::Device { input } = &plan.video_input else {
        return Ok(None);
    };
    let path = opts
        .hw_map
        .clone()
        .unwrap_or_else(crate::hw::default_map_path);
    let map = crate::hw::HwMap::load(&path)?;
    let resolved = crate::hw::resolve(plan, &map)?;
    let Some(device) = resolved.video else {
        return Ok(None);
    };
    let policy = opts.loss.clone().unwrap_or_else(|| map.loss.clone());
    let want = super::v4l2::negotiate::Want {
        width: fallback.0,
        height: fallback.1,
        rate: plan.rate,
    };
    tracing::info!(input = %input, device = %device.path.display(), map = %path.display(), "video input resolved");
    let factory = super::v4l2::device::factory(
        device,
        want,
        clocks.clone(),
        policy.no_signal_after,
        counters.clone(),
        timecode,
    );
    Ok(Some(wrap(input, factory, policy)))
}

/// A device audio input resolved through the box's hw map.
#[derive(Clone, Debug)]
pub struct DeviceAudio {
    /// Logical input name.
    pub input: String,
    /// ALSA PCM name.
    pub alsa: String,
    /// Channels per device frame: the highest device channel of the logical input.
    pub device_channels: u16,
    /// Device channels (1-based) feeding each output channel (`audio.channel_map` applied).
    pub program: Vec<u16>,
    /// Device channel (1-based) carrying LTC, when one was asked for.
    pub ltc: Option<u16>,
    /// The loss policy: the caller's, else the map's `[input_loss]`.
    pub loss: LossPolicy,
}

/// Resolves the plan's device audio input (`None` for synthetic and file inputs) and, with
/// `ltc_channel` (1-based channel of the logical input), the device channel carrying LTC.
pub fn device_audio(
    plan: &crate::profile::Plan,
    opts: &InputOptions,
    ltc_channel: Option<u16>,
) -> Result<Option<DeviceAudio>, InputError> {
    let crate::profile::AudioInput::Device { input } = &plan.audio_input else {
        return Ok(None);
    };
    let path = opts
        .hw_map
        .clone()
        .unwrap_or_else(crate::hw::default_map_path);
    let map = crate::hw::HwMap::load(&path)?;
    let resolved = crate::hw::resolve(plan, &map)?;
    let Some(dev) = resolved.audio else {
        return Ok(None);
    };
    let all = map
        .inputs
        .get(input)
        .and_then(|i| i.audio.as_ref())
        .map(|a| a.channels.clone())
        .unwrap_or_default();
    let ltc = match ltc_channel {
        Some(c) => match all.get(usize::from(c).wrapping_sub(1)) {
            Some(&d) => Some(d),
            None => {
                return Err(InputError::Hw(crate::hw::HwError::Channel {
                    path: map.path.clone(),
                    input: input.clone(),
                    channels: all.len(),
                    wanted: c,
                }))
            }
        },
        None => None,
    };
    let device_channels = all
        .iter()
        .chain(dev.channels.iter())
        .copied()
        .max()
        .unwrap_or(1);
    Ok(Some(DeviceAudio {
        input: input.clone(),
        alsa: dev.alsa,
        device_channels,
        program: dev.channels,
        ltc,
        loss: opts.loss.clone().unwrap_or_else(|| map.loss.clone()),
    }))
}

/// What the channel's audio source reports besides samples.
#[derive(Clone, Debug, Default)]
pub struct AudioMonitors {
    /// The clock discipline of a device input.
    pub discipline: super::discipline::DisciplineMonitor,
    /// The LTC decoder, when the timecode source is `ltc` and the input carries it.
    pub ltc: Option<super::timecode::LtcShared>,
}

/// The channel's audio source when it is not a plain synthetic or file source: the test
/// override, or a device input (ALSA through the hw map, clock-disciplined), each wrapped in
/// the loss policy; or a file input carrying LTC (tapped). `None` otherwise. `first` is the
/// first sample, due now. With `monitors.ltc`, the timecode source is `ltc` on channel
/// `ltc_channel` of the input.
#[allow(clippy::too_many_arguments)]
pub fn channel_audio(
    plan: &crate::profile::Plan,
    opts: &InputOptions,
    first: SampleIndex,
    pacing: &Pacing,
    clocks: Arc<dyn Clocks>,
    counters: Arc<InputCounters>,
    monitors: &AudioMonitors,
    ltc_channel: Option<u16>,
) -> Result<Option<Box<dyn AudioSource>>, InputError> {
    let wrap = |name: &str, factory: AudioFactory, policy: &LossPolicy| {
        Box::new(ResilientAudio::new(
            name,
            factory,
            policy,
            plan.audio.sample_rate,
            plan.audio.channels,
            first,
            pacing.clone(),
            clocks.clone(),
            counters.clone(),
        )) as Box<dyn AudioSource>
    };
    if let Some(factory) = &opts.audio {
        let policy = opts.loss.clone().unwrap_or_default();
        return Ok(Some(wrap("audio", factory.clone(), &policy)));
    }
    let ltc = monitors.ltc.clone().zip(ltc_channel);
    match &plan.audio_input {
        crate::profile::AudioInput::Device { .. } => {
            let Some(dev) = device_audio(plan, opts, ltc.as_ref().map(|l| l.1))? else {
                return Ok(None);
            };
            let mut channel_map = dev.program.clone();
            channel_map.extend(dev.ltc.filter(|_| ltc.is_some()));
            tracing::info!(input = %dev.input, device = %dev.alsa, ?channel_map, "audio input resolved");
            let factory = super::alsa::factory(
                super::alsa::AlsaInput {
                    input: dev.input.clone(),
                    device: dev.alsa.clone(),
                    device_channels: dev.device_channels,
                    channel_map,
                    sample_rate: plan.audio.sample_rate,
                    options: super::alsa::AlsaOptions {
                        stall_timeout: dev.loss.no_signal_after.max(Duration::from_millis(100)),
                        ..super::alsa::AlsaOptions::default()
                    },
                },
                clocks.clone(),
                counters.clone(),
                monitors.discipline.clone(),
                ltc.map(|l| l.0),
            );
            Ok(Some(wrap(&dev.input, factory, &dev.loss)))
        }
        crate::profile::AudioInput::File { path } => {
            let Some((decoder, channel)) = ltc else {
                return Ok(None);
            };
            let channels = super::timecode::file_channels(plan, channel);
            let file = super::file::FileAudio::open(
                path,
                plan.audio.sample_rate,
                channels,
                first,
                pacing.clone(),
            )
            .map_err(|e| InputError::Open(Box::new(e)))?;
            let map = plan
                .audio
                .channel_map
                .iter()
                .map(|&c| usize::from(c.max(1) - 1))
                .collect();
            Ok(Some(Box::new(super::timecode::LtcTap::new(
                file,
                map,
                usize::from(channel.max(1) - 1),
                decoder,
            ))))
        }
        crate::profile::AudioInput::Synthetic => Ok(None),
    }
}

// ---------------------------------------------------------------------------------------------
// Audio
// ---------------------------------------------------------------------------------------------

/// An audio source that never fails: silence while the input is lost, reopened with backoff,
/// samples contiguous on the audio grid throughout (see the module docs).
pub struct ResilientAudio {
    input: String,
    factory: AudioFactory,
    sample_rate: u32,
    channels: u16,
    clock: GridClock,
    next: SampleIndex,
    inner: Option<Box<dyn AudioSource>>,
    /// A block from the source not yet (fully) handed out; starts at or after `next`.
    pending: Option<AudioBlock>,
    lost_since: Option<SampleIndex>,
    reopen: Reopen,
    counters: Arc<InputCounters>,
}

impl std::fmt::Debug for ResilientAudio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResilientAudio")
            .field("input", &self.input)
            .field("next", &self.next)
            .field("open", &self.inner.is_some())
            .finish_non_exhaustive()
    }
}

impl ResilientAudio {
    /// Opens `factory` at sample `first` (due now); `sample_rate` and `channels` are the
    /// channel's (a source delivering anything else is treated as lost).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        input: &str,
        factory: AudioFactory,
        policy: &LossPolicy,
        sample_rate: u32,
        channels: u16,
        first: SampleIndex,
        pacing: Pacing,
        clocks: Arc<dyn Clocks>,
        counters: Arc<InputCounters>,
    ) -> ResilientAudio {
        let sample_rate = sample_rate.max(1);
        let clock = GridClock::new(&pacing, clocks, first.0, 1, u64::from(sample_rate));
        let mut reopen = Reopen::new(policy);
        let start = AudioStart {
            sample: first,
            due: clock.due(first.0),
        };
        let (inner, lost_since) = match factory.open(start) {
            Ok(s) => (Some(s), None),
            Err(e) => {
                tracing::warn!(input = %input, error = %e, "audio input not available at start: silence until it is");
                counters.losses.fetch_add(1, Ordering::Relaxed);
                counters.lost.store(true, Ordering::Relaxed);
                reopen.schedule(first.0, &clock);
                (None, Some(first))
            }
        };
        ResilientAudio {
            input: input.to_owned(),
            factory,
            sample_rate,
            channels: channels.max(1),
            clock,
            next: first,
            inner,
            pending: None,
            lost_since,
            reopen,
            counters,
        }
    }

    fn lose(&mut self, error: &CaptureError) {
        drop_quietly(self.inner.take());
        self.pending = None;
        if self.lost_since.is_none() {
            tracing::warn!(input = %self.input, sample = self.next.0, error = %error, "audio input lost: silence and reopening");
            self.lost_since = Some(self.next);
            self.counters.losses.fetch_add(1, Ordering::Relaxed);
            self.counters.lost.store(true, Ordering::Relaxed);
        }
        self.reopen.schedule(self.next.0, &self.clock);
    }

    fn silence(&mut self, frames: usize) -> AudioBlock {
        let first = self.next;
        self.next = SampleIndex(first.0 + frames as u64);
        self.counters
            .silence
            .fetch_add(frames as u64, Ordering::Relaxed);
        AudioBlock {
            first,
            channels: self.channels,
            sample_rate: self.sample_rate,
            samples: vec![0; frames * usize::from(self.channels)],
        }
    }

    /// Hands out up to `max` frames of `block` (which starts at `next`); keeps the rest.
    fn deliver(&mut self, mut block: AudioBlock, max: usize) -> AudioBlock {
        let ch = usize::from(self.channels);
        let n = block.frames();
        if n > max {
            let rest = AudioBlock {
                first: SampleIndex(block.first.0 + max as u64),
                channels: block.channels,
                sample_rate: block.sample_rate,
                samples: block.samples.split_off(max * ch),
            };
            self.pending = Some(rest);
        }
        let got = block.frames();
        if let Some(since) = self.lost_since.take() {
            tracing::info!(input = %self.input, sample = block.first.0, filled = block.first.0.saturating_sub(since.0), "audio input back");
            self.counters.lost.store(false, Ordering::Relaxed);
        }
        self.counters.live.fetch_add(got as u64, Ordering::Relaxed);
        self.next = SampleIndex(block.first.0 + got as u64);
        block
    }
}

impl AudioSource for ResilientAudio {
    fn next_block(&mut self, max_frames: usize) -> Result<AudioBlock, CaptureError> {
        let max = max_frames.max(1);
        loop {
            if let Some(b) = self.pending.take() {
                if b.first.0 > self.next.0 {
                    let gap = usize::try_from(b.first.0 - self.next.0).unwrap_or(usize::MAX);
                    self.pending = Some(b);
                    return Ok(self.silence(gap.min(max)));
                }
                return Ok(self.deliver(b, max));
            }
            if let Some(inner) = self.inner.as_mut() {
                match inner.next_block(max) {
                    Ok(b) if b.channels != self.channels || b.sample_rate != self.sample_rate => {
                        let e = CaptureError::Read {
                            input: self.input.clone(),
                            reason: format!(
                                "source delivers {} ch at {} Hz, the channel needs {} ch at {} Hz",
                                b.channels, b.sample_rate, self.channels, self.sample_rate
                            ),
                        };
                        self.lose(&e);
                    }
                    Ok(mut b) => {
                        let end = b.first.0 + b.frames() as u64;
                        if end <= self.next.0 {
                            // Entirely before what was already filled with silence.
                            continue;
                        }
                        if b.first.0 < self.next.0 {
                            let skip = usize::try_from(self.next.0 - b.first.0).unwrap_or(0);
                            b.samples.drain(..skip * usize::from(self.channels));
                            b.first = self.next;
                        }
                        self.pending = Some(b);
                    }
                    Err(e) => self.lose(&e),
                }
                continue;
            }
            if self.next.0 >= self.reopen.at {
                let at = AudioStart {
                    sample: self.next,
                    due: self.clock.due(self.next.0),
                };
                match self.factory.open(at) {
                    Ok(s) => {
                        tracing::info!(input = %self.input, sample = self.next.0, "audio input reopened");
                        self.counters.reopens.fetch_add(1, Ordering::Relaxed);
                        self.reopen.succeeded();
                        self.inner = Some(s);
                        continue;
                    }
                    Err(e) => self.lose(&e),
                }
            }
            // Silence up to the next reopen attempt at most, released when its last sample
            // is due.
            let until_retry = self.reopen.at.saturating_sub(self.next.0).max(1);
            let frames = max.min(usize::try_from(until_retry).unwrap_or(max));
            self.clock.wait_for(self.next.0 + frames as u64 - 1);
            return Ok(self.silence(frames));
        }
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
    use crate::time::SimulatedClocks;

    /// A ramp (sample value = index mod 1000 + 1, never 0) that fails at `lost_at`.
    struct Ramp {
        next: u64,
        lost_at: Option<u64>,
    }

    impl AudioSource for Ramp {
        fn next_block(&mut self, max: usize) -> Result<AudioBlock, CaptureError> {
            let room = match self.lost_at {
                Some(l) if self.next >= l => {
                    return Err(CaptureError::Read {
                        input: "ramp".into(),
                        reason: "unplugged".into(),
                    })
                }
                Some(l) => (l - self.next).min(max as u64) as usize,
                None => max,
            };
            // Deliver blocks that do not line up with the consumer's (odd sizes).
            let n = room.min(700);
            let first = SampleIndex(self.next);
            let samples = (0..n as u64)
                .map(|i| ((self.next + i) % 1000 + 1) as i16)
                .collect();
            self.next += n as u64;
            Ok(AudioBlock {
                first,
                channels: 1,
                sample_rate: 48_000,
                samples,
            })
        }
        fn channels(&self) -> u16 {
            1
        }
        fn sample_rate(&self) -> u32 {
            48_000
        }
    }

    #[test]
    fn audio_loss_fills_silence_contiguously_and_resumes_on_the_sample_grid() {
        let (lost, back) = (10_000u64, 10_000 + 48_000);
        let factory = AudioFactory::new(move |at: AudioStart| {
            if (lost..back).contains(&at.sample.0) {
                return Err(CaptureError::Open {
                    input: "ramp".into(),
                    reason: "no such device".into(),
                });
            }
            Ok(Box::new(Ramp {
                next: at.sample.0,
                lost_at: (at.sample.0 < lost).then_some(lost),
            }) as Box<dyn AudioSource>)
        });
        let counters = Arc::new(InputCounters::default());
        let mut a = ResilientAudio::new(
            "ramp",
            factory,
            &LossPolicy::default(),
            48_000,
            1,
            SampleIndex(0),
            Pacing::Fast,
            SimulatedClocks::new(0),
            counters.clone(),
        );
        let mut next = 0u64;
        let mut all = Vec::new();
        while next < 120_000 {
            let b = a.next_block(1024).unwrap();
            assert_eq!(b.first.0, next, "blocks are contiguous");
            assert!(b.frames() > 0 && b.frames() <= 1024);
            next += b.frames() as u64;
            all.extend_from_slice(&b.samples);
        }
        // Live up to the loss, silence while unplugged, the ramp again on its own samples.
        assert!(all[..lost as usize].iter().all(|&v| v != 0));
        assert!(all[lost as usize..back as usize].iter().all(|&v| v == 0));
        let resumed = all[back as usize..]
            .iter()
            .position(|&v| v != 0)
            .map(|p| back as usize + p)
            .unwrap();
        assert!(
            resumed - (back as usize) < 48_000,
            "reopened within a second"
        );
        for (i, &v) in all.iter().enumerate().skip(resumed) {
            assert_eq!(v, (i as u64 % 1000 + 1) as i16, "sample {i}");
        }
        let c = counters.snapshot();
        assert_eq!(c.losses, 1);
        assert_eq!(c.silence, resumed as u64 - lost);
    }

    #[test]
    fn builtin_slate_is_grey_with_bright_text_and_black_is_black() {
        let s = builtin_slate(320, 180);
        let y = &s[..320 * 180];
        let mean = y.iter().map(|&v| f64::from(v)).sum::<f64>() / y.len() as f64;
        assert!(mean > 65.0 && mean < 110.0, "slate mean luma {mean}");
        assert!(y.iter().filter(|&&v| v == SLATE_TEXT_Y).count() > 500);
        let b = black_picture(320, 180);
        assert!(b[..320 * 180].iter().all(|&v| v == 16));
        assert!(b[320 * 180..].iter().all(|&v| v == 128));
    }
}
