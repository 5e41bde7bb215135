//! Capture: sources of raw video frames and audio samples, already placed on the grid.
//!
//! A video source yields one [`VideoFrame`] per grid slot (the channel's frame index), an audio
//! source yields [`AudioBlock`]s of consecutive samples on the audio sample grid. Sources have a
//! real-time mode (paced by the injected clock) and a fast mode (as fast as the consumer takes).

pub mod alsa;
pub mod discipline;
pub mod file;
pub mod loss;
pub mod synthetic;
pub mod timecode;
pub mod v4l2;
pub mod y4m;

use crate::time::{Clocks, FrameIndex, SampleIndex};
use std::sync::Arc;
use std::time::Duration;

/// One planar YUV 4:2:0 (I420, 8 bit, BT.709 limited range) picture on the frame grid.
#[derive(Clone, Debug)]
pub struct VideoFrame {
    /// The grid slot this picture is presented at.
    pub index: FrameIndex,
    pub width: u32,
    pub height: u32,
    /// Y plane (`width × height`), then U and V (`ceil(w/2) × ceil(h/2)` each), tightly packed.
    pub data: Arc<Vec<u8>>,
    /// Why this picture is what it is (live, repeated, black, slate) — for status and tests.
    pub origin: FrameOrigin,
}

impl VideoFrame {
    /// Byte offsets and strides of the three planes: `[(offset, stride, rows); 3]`.
    pub fn planes(&self) -> [(usize, usize, usize); 3] {
        i420_planes(self.width, self.height)
    }
}

/// Plane layout of a tightly packed I420 picture: `(offset, stride, rows)` for Y, U, V.
pub fn i420_planes(width: u32, height: u32) -> [(usize, usize, usize); 3] {
    let (w, h) = (width as usize, height as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    [(0, w, h), (w * h, cw, ch), (w * h + cw * ch, cw, ch)]
}

/// Size in bytes of a tightly packed I420 picture.
pub fn i420_size(width: u32, height: u32) -> usize {
    let (w, h) = (width as usize, height as usize);
    w * h + 2 * (w.div_ceil(2) * h.div_ceil(2))
}

/// Where a picture came from; fills keep the timeline running when the input is lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameOrigin {
    Live,
    Repeat,
    Black,
    Slate,
}

/// Consecutive interleaved signed 16-bit PCM samples on the audio grid.
#[derive(Clone, Debug)]
pub struct AudioBlock {
    /// Sample index (per channel) of the first sample in `samples`.
    pub first: SampleIndex,
    pub channels: u16,
    pub sample_rate: u32,
    /// Interleaved: `samples.len() == frames × channels`.
    pub samples: Vec<i16>,
}

impl AudioBlock {
    /// Number of sample frames (samples per channel) in the block.
    pub fn frames(&self) -> usize {
        self.samples.len() / usize::from(self.channels.max(1))
    }
}

/// Errors of the capture layer. Carries the input name so one log line finds the device.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("input {input}: cannot open: {reason}")]
    Open { input: String, reason: String },
    #[error("input {input}: {reason}")]
    Read { input: String, reason: String },
    #[error("input {input}: end of stream")]
    Ended { input: String },
}

/// A source of pictures, one per frame-grid slot, in increasing index order.
pub trait VideoSource: Send {
    /// The next picture. Real-time sources block until it is due.
    fn next_frame(&mut self) -> Result<VideoFrame, CaptureError>;
    /// Picture size this source produces.
    fn size(&self) -> (u32, u32);
}

/// A source of audio samples on the audio grid, contiguous from block to block.
pub trait AudioSource: Send {
    /// The next block of at most `max_frames` sample frames.
    fn next_block(&mut self, max_frames: usize) -> Result<AudioBlock, CaptureError>;
    fn channels(&self) -> u16;
    fn sample_rate(&self) -> u32;
}

/// What the capture side of a running channel reports besides pictures and samples: the
/// timecode source's health, the inputs' counters (fills, skipped and duplicated grid slots,
/// losses, xruns) and the audio clock discipline of a device input.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CaptureStatus {
    /// The timecode source (`None` only in hand-built statuses).
    pub timecode: Option<timecode::TimecodeHealth>,
    /// Counters of the video and audio inputs.
    pub inputs: loss::InputsStatus,
    /// The audio clock discipline, when the audio input is a device.
    pub discipline: Option<discipline::DisciplineStatus>,
}

/// A boxed source is a source, so wrappers generic over [`AudioSource`] (the clock
/// discipline, the LTC tap) can wrap whatever a factory built.
impl<S: AudioSource + ?Sized> AudioSource for Box<S> {
    fn next_block(&mut self, max_frames: usize) -> Result<AudioBlock, CaptureError> {
        (**self).next_block(max_frames)
    }
    fn channels(&self) -> u16 {
        (**self).channels()
    }
    fn sample_rate(&self) -> u32 {
        (**self).sample_rate()
    }
}

/// How a source releases its output.
#[derive(Clone, Debug)]
pub enum Pacing {
    /// As fast as the consumer pulls (tests, offline runs).
    Fast,
    /// Grid item `n` (frame or sample) is due at `start + (n − n0) × period` on the monotonic
    /// time of `clocks`, where `start` is that monotonic time when the source was constructed
    /// and `n0` its first index; the source sleeps on `clocks` until then. A late consumer gets
    /// the next item at once (nothing is skipped: sources yield every index in order).
    RealTime {
        /// The clocks whose monotonic time paces the source ([`SimulatedClocks`] in tests).
        ///
        /// [`SimulatedClocks`]: crate::time::SimulatedClocks
        clocks: Arc<dyn Clocks>,
    },
}

/// Holds back grid items until they are due (see [`Pacing::RealTime`]).
#[derive(Debug)]
pub(crate) struct Pacer {
    clocks: Option<Arc<dyn Clocks>>,
    /// Monotonic time of the clocks at construction: when item `n0` is due.
    origin: Duration,
}

impl Pacer {
    pub(crate) fn new(pacing: &Pacing) -> Pacer {
        match pacing {
            Pacing::Fast => Pacer {
                clocks: None,
                origin: Duration::ZERO,
            },
            Pacing::RealTime { clocks } => Pacer {
                origin: clocks.monotonic(),
                clocks: Some(Arc::clone(clocks)),
            },
        }
    }

    /// Sleeps until `units × secs_num / secs_den` seconds after the origin (rounded up to the
    /// nanosecond, so an item is never released before its exact due time).
    /// Releases an audio block of `frames` sample frames starting at `first`, once its last
    /// sample is due (`start` is the source's first sample, due at the origin).
    pub(crate) fn audio_block(
        &self,
        start: SampleIndex,
        first: SampleIndex,
        channels: u16,
        sample_rate: u32,
        samples: Vec<i16>,
    ) -> AudioBlock {
        let frames = (samples.len() / usize::from(channels.max(1))) as u64;
        if frames > 0 {
            let last = first.0 + frames - 1;
            self.wait_until(last - start.0, 1, u64::from(sample_rate));
        }
        AudioBlock {
            first,
            channels,
            sample_rate,
            samples,
        }
    }

    pub(crate) fn wait_until(&self, units: u64, secs_num: u64, secs_den: u64) {
        let Some(clocks) = &self.clocks else { return };
        if secs_den == 0 {
            return;
        }
        let nanos =
            crate::time::mul_div_ceil(units, secs_num.saturating_mul(1_000_000_000), secs_den);
        let due = self.origin.saturating_add(Duration::from_nanos(nanos));
        let now = clocks.monotonic();
        if due > now {
            clocks.sleep(due - now);
        }
    }
}

/// A small pool of picture buffers handed out as `Arc<Vec<u8>>`: a buffer whose `Arc` the
/// consumer has dropped is written again instead of allocating a new picture every frame.
#[derive(Debug)]
pub(crate) struct FramePool {
    bufs: Vec<Arc<Vec<u8>>>,
    /// Bytes per picture.
    size: usize,
    /// Slot replaced next when every pooled buffer is still in use downstream.
    victim: usize,
}

impl FramePool {
    /// Buffers kept for reuse; more pictures in flight than this allocate (and are freed by
    /// the consumer), so a deep pipeline costs allocations, never correctness.
    const CAPACITY: usize = 8;

    pub(crate) fn new(size: usize) -> FramePool {
        FramePool {
            bufs: Vec::with_capacity(Self::CAPACITY),
            size,
            victim: 0,
        }
    }

    /// Lets `fill` write a picture of `size` bytes (previous contents unspecified) and returns
    /// it shared.
    pub(crate) fn fill<E>(
        &mut self,
        fill: impl FnOnce(&mut [u8]) -> Result<(), E>,
    ) -> Result<Arc<Vec<u8>>, E> {
        let free = (0..self.bufs.len()).find(|&i| Arc::get_mut(&mut self.bufs[i]).is_some());
        let i = match free {
            Some(i) => i,
            None if self.bufs.len() < Self::CAPACITY => {
                self.bufs.push(Arc::new(vec![0; self.size]));
                self.bufs.len() - 1
            }
            None => {
                let i = self.victim;
                self.victim = (self.victim + 1) % Self::CAPACITY;
                self.bufs[i] = Arc::new(vec![0; self.size]);
                i
            }
        };
        if let Some(buf) = Arc::get_mut(&mut self.bufs[i]) {
            buf.resize(self.size, 0);
            fill(buf)?;
            return Ok(Arc::clone(&self.bufs[i]));
        }
        // Unreachable in practice (the pool holds the only reference it found or made), but
        // a fresh buffer is always correct.
        let mut buf = vec![0; self.size];
        fill(&mut buf)?;
        Ok(Arc::new(buf))
    }
}
