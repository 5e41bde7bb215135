//! V4L2 capture: SDI/HDMI capture cards and USB webcams through the kernel's video4linux API.
//!
//! The device is kept apart from the logic so the logic is tested without hardware:
//!
//! ```text
//! BufferSource ──► GridSource ───────────────────────────────────────────► VideoSource
//!  device.rs       grid.rs: buffer time → frame slot (duplicates dropped, skips repeated)
//!  (mmap stream)   convert.rs: UYVY/YUYV/NV12/YU12/MJPEG → I420, into a pooled buffer
//!  replay.rs       interlace.rs: blend or bob for interlaced modes
//!  (recorded       negotiate.rs (at open): format, size, interval from the capability set
//!   traces)
//! ```
//!
//! A [`BufferSource`] hands out filled driver buffers with their capture time in the injected
//! clocks' monotonic domain; [`GridSource`] places each on the frame grid, converts it once
//! into a pooled I420 picture and yields one [`VideoFrame`] per slot. The real device
//! ([`device`]) is our own mmap stream ([`mmap`]; the `v4l` crate's drops the buffer
//! timecode); the trace replay ([`replay`]) plays a recorded `v4l2-ctl --stream-mmap -v`
//! timestamp trace with recorded buffers — what the tests use, since the build machines have no
//! capture card. Buffers may carry the driver's timecode ([`timecode`]); with a
//! [`crate::capture::timecode::V4l2TimecodeTap`] the grid source reports it for the `v4l2`
//! timecode source's status.
//!
//! Input loss (no buffer within the no-signal timeout, device unplugged) is an error here; the
//! channel wraps every device source in [`crate::capture::loss::ResilientVideo`], which keeps
//! the grid running and reopens the device.

pub mod convert;
pub mod device;
pub mod grid;
pub mod interlace;
pub mod mmap;
pub mod negotiate;
pub mod replay;
pub mod timecode;

use super::loss::InputCounters;
use super::timecode::V4l2TimecodeTap;
use super::{CaptureError, FrameOrigin, VideoFrame, VideoSource};
use crate::time::{FrameIndex, Rate};
use convert::{Converter, PAD};
use grid::{GridMapper, Placement};
use interlace::Deinterlace;
use negotiate::NegotiateError;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Errors of the V4L2 layer; converted to [`CaptureError`] with the input's name at the
/// capture boundary.
#[derive(Debug, thiserror::Error)]
pub enum V4l2Error {
    /// A pixel format, size or stride that cannot be converted.
    #[error("{0}")]
    Format(String),
    /// The driver filled fewer bytes than the negotiated format needs.
    #[error("buffer holds {got} bytes, the negotiated format needs {need}")]
    ShortBuffer {
        /// Bytes the driver filled.
        got: usize,
        /// Bytes the layout needs.
        need: usize,
    },
    /// MJPEG decoding failed (a corrupt picture; the buffer is dropped and counted).
    #[error("{0}")]
    Decode(String),
    /// No mode of the device fits the channel.
    #[error(transparent)]
    Negotiate(#[from] NegotiateError),
    /// An ioctl, open or mmap on the device failed.
    #[error("{path}: {op}: {source}")]
    Device {
        /// The device node.
        path: String,
        /// What was being done, in words (`set format (VIDIOC_S_FMT)`).
        op: &'static str,
        /// The kernel's answer.
        source: std::io::Error,
    },
    /// A recorded trace could not be read.
    #[error("trace {path} line {line}: {reason}")]
    Trace {
        /// The trace file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong with the line.
        reason: String,
    },
    /// No buffer arrived within the no-signal timeout.
    #[error("no picture for {} ms: signal lost or device stalled", .0.as_millis())]
    NoSignal(Duration),
}

impl V4l2Error {
    /// This error as the capture layer's, naming the logical input.
    pub fn at_open(self, input: &str) -> CaptureError {
        CaptureError::Open {
            input: input.to_owned(),
            reason: self.to_string(),
        }
    }

    /// This error as a read failure of the capture layer, naming the logical input.
    pub fn at_read(self, input: &str) -> CaptureError {
        CaptureError::Read {
            input: input.to_owned(),
            reason: self.to_string(),
        }
    }
}

/// One filled buffer, borrowed from the source until the next call.
#[derive(Debug)]
pub struct Captured<'a> {
    /// The bytes the driver filled (`bytesused`).
    pub data: &'a [u8],
    /// Capture time (start or end of frame, as the driver stamps it) in the injected clocks'
    /// monotonic domain.
    pub at: Duration,
    /// The driver's sequence number (gaps = frames the driver dropped).
    pub sequence: u32,
    /// The driver flagged the buffer as damaged (`V4L2_BUF_FLAG_ERROR`).
    pub damaged: bool,
    /// The driver's timecode field, when it set `V4L2_BUF_FLAG_TIMECODE` (unvalidated).
    pub timecode: Option<timecode::BufferTimecode>,
}

/// A stream of captured buffers in one fixed layout.
pub trait BufferSource: Send {
    /// The next buffer. Blocks at most the source's no-signal timeout, then fails with
    /// [`V4l2Error::NoSignal`].
    fn next_buffer(&mut self) -> Result<Captured<'_>, V4l2Error>;
}

/// How a [`GridSource`] turns buffers into pictures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PictureFormat {
    /// The buffers' layout.
    pub layout: convert::BufferLayout,
    /// Deinterlacing of woven interlaced buffers, and whether the bottom field is the earlier.
    pub deinterlace: Option<(Deinterlace, bool)>,
    /// Frame interval of the device in nanoseconds (bob places the second field half of it
    /// after the first).
    pub frame_nanos: u64,
}

/// Output pictures kept for reuse; pictures held downstream beyond this allocate.
const POOL: usize = 8;

/// A V4L2-style buffer stream placed on the frame grid (see the module docs): one
/// [`VideoFrame`] per slot from the first buffer on, skipped slots repeating the previous
/// picture. The first picture may start after the requested slot (the device took time to
/// start); the consumer fills the slots before it.
pub struct GridSource<B: BufferSource> {
    input: String,
    buffers: B,
    mapper: GridMapper,
    converter: Converter,
    format: PictureFormat,
    pool: Vec<Arc<Vec<u8>>>,
    /// Woven picture before bob splits it (reused).
    woven: Vec<u8>,
    /// Line scratch of the blend filter (reused).
    row: Vec<u8>,
    last: Option<Arc<Vec<u8>>>,
    out: VecDeque<VideoFrame>,
    counters: Arc<InputCounters>,
    /// Where placed buffers' timecode goes (the `v4l2` timecode source).
    timecode: Option<V4l2TimecodeTap>,
}

impl<B: BufferSource> std::fmt::Debug for GridSource<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GridSource")
            .field("input", &self.input)
            .field("format", &self.format)
            .field("next", &self.mapper.next_slot())
            .finish_non_exhaustive()
    }
}

impl<B: BufferSource> GridSource<B> {
    /// Pictures from `buffers` in `format`, on the grid of `rate` from slot `start` on, that
    /// slot being due at `start_due` (the clocks' monotonic time). `input` names the logical
    /// input in errors; `counters` receives duplicates, skips and damaged buffers.
    pub fn new(
        input: &str,
        buffers: B,
        format: PictureFormat,
        rate: Rate,
        start: FrameIndex,
        start_due: Duration,
        counters: Arc<InputCounters>,
    ) -> Result<GridSource<B>, CaptureError> {
        let converter = Converter::new(format.layout).map_err(|e| e.at_open(input))?;
        Ok(GridSource {
            input: input.to_owned(),
            buffers,
            mapper: GridMapper::new(rate, start, start_due),
            converter,
            format,
            pool: Vec::with_capacity(POOL),
            woven: Vec::new(),
            row: Vec::new(),
            last: None,
            out: VecDeque::with_capacity(4),
            counters,
            timecode: None,
        })
    }

    /// Reports the driver timecode of every placed buffer (and its absence) to `tap`, with
    /// the slot the buffer went to (the first field's, for bob).
    pub fn with_timecode(mut self, tap: V4l2TimecodeTap) -> GridSource<B> {
        self.timecode = Some(tap);
        self
    }

    /// The grid mapping's counters.
    pub fn grid_stats(&self) -> grid::GridStats {
        self.mapper.stats()
    }

    /// A picture buffer nobody else references (from the pool when one is free).
    fn take(&mut self) -> Arc<Vec<u8>> {
        if let Some(i) = self.pool.iter_mut().position(|b| Arc::get_mut(b).is_some()) {
            return self.pool.swap_remove(i);
        }
        Arc::new(Vec::with_capacity(self.converter.output_size() + PAD))
    }

    fn give_back(&mut self, buf: &Arc<Vec<u8>>) {
        keep(&mut self.pool, buf);
    }

    /// Queues the repeats of the previous picture for `skipped` slots before `index`, then
    /// the picture itself.
    fn emit(&mut self, index: FrameIndex, skipped: u64, data: Arc<Vec<u8>>) {
        if let Some(last) = &self.last {
            for i in (1..=skipped).rev() {
                self.out.push_back(VideoFrame {
                    index: FrameIndex(index.0 - i),
                    width: self.format.layout.width,
                    height: self.format.layout.height,
                    data: Arc::clone(last),
                    origin: FrameOrigin::Repeat,
                });
            }
            self.counters.skipped.fetch_add(skipped, Ordering::Relaxed);
        }
        self.last = Some(Arc::clone(&data));
        self.out.push_back(VideoFrame {
            index,
            width: self.format.layout.width,
            height: self.format.layout.height,
            data,
            origin: FrameOrigin::Live,
        });
    }

    /// Reads one buffer and queues the pictures it yields (none for a duplicate or a damaged
    /// buffer).
    fn capture_one(&mut self) -> Result<(), CaptureError> {
        let input = self.input.clone();
        let (w, h) = (self.format.layout.width, self.format.layout.height);
        let mut buf = self.take();
        let Some(pic) = Arc::get_mut(&mut buf) else {
            return Err(V4l2Error::Format("pool buffer shared".into()).at_read(&input));
        };
        let (at, tc) = {
            let cap = self.buffers.next_buffer().map_err(|e| e.at_read(&input))?;
            if cap.damaged {
                self.counters.damaged.fetch_add(1, Ordering::Relaxed);
                keep(&mut self.pool, &buf);
                return Ok(());
            }
            let at = cap.at;
            let target: &mut Vec<u8> = match self.format.deinterlace {
                Some((Deinterlace::Bob, _)) => &mut self.woven,
                _ => pic,
            };
            if let Err(e) = self.converter.convert(cap.data, target) {
                // A corrupt buffer (truncated, undecodable MJPEG) costs one slot, not the input.
                tracing::debug!(input = %input, error = %e, "dropping an unconvertible buffer");
                self.counters.damaged.fetch_add(1, Ordering::Relaxed);
                keep(&mut self.pool, &buf);
                return Ok(());
            }
            (at, cap.timecode)
        };
        match self.format.deinterlace {
            None | Some((Deinterlace::Blend, _)) => match self.mapper.place(at) {
                Placement::Duplicate { .. } => {
                    self.counters.duplicates.fetch_add(1, Ordering::Relaxed);
                    self.give_back(&buf);
                }
                Placement::Slot { index, skipped } => {
                    if let Some(tap) = &self.timecode {
                        tap.observe(tc.as_ref(), index);
                    }
                    if let (Some((Deinterlace::Blend, _)), Some(pic)) =
                        (self.format.deinterlace, Arc::get_mut(&mut buf))
                    {
                        interlace::blend_luma(pic, w, h, &mut self.row);
                    }
                    self.give_back(&buf);
                    self.emit(index, skipped, buf);
                }
            },
            Some((Deinterlace::Bob, bottom_first)) => {
                let half = Duration::from_nanos(self.format.frame_nanos / 2);
                let mut spare = Some(buf);
                for (i, bottom) in [(0u32, bottom_first), (1, !bottom_first)] {
                    match self.mapper.place(at + half * i) {
                        Placement::Duplicate { .. } => {
                            self.counters.duplicates.fetch_add(1, Ordering::Relaxed);
                        }
                        Placement::Slot { index, skipped } => {
                            if let (0, Some(tap)) = (i, &self.timecode) {
                                tap.observe(tc.as_ref(), index);
                            }
                            let mut field = match spare.take() {
                                Some(b) => b,
                                None => self.take(),
                            };
                            let Some(pic) = Arc::get_mut(&mut field) else {
                                return Err(
                                    V4l2Error::Format("pool buffer shared".into()).at_read(&input)
                                );
                            };
                            pic.resize(self.converter.output_size(), 0);
                            interlace::bob_field(&self.woven, pic, w, h, bottom);
                            self.give_back(&field);
                            self.emit(index, skipped, field);
                        }
                    }
                }
                if let Some(unused) = spare {
                    self.give_back(&unused);
                }
            }
        }
        Ok(())
    }
}

/// Returns a picture buffer to the pool (which keeps at most [`POOL`]).
fn keep(pool: &mut Vec<Arc<Vec<u8>>>, buf: &Arc<Vec<u8>>) {
    if pool.len() < POOL {
        pool.push(Arc::clone(buf));
    }
}

impl<B: BufferSource> VideoSource for GridSource<B> {
    fn next_frame(&mut self) -> Result<VideoFrame, CaptureError> {
        loop {
            if let Some(f) = self.out.pop_front() {
                return Ok(f);
            }
            self.capture_one()?;
        }
    }

    fn size(&self) -> (u32, u32) {
        (self.format.layout.width, self.format.layout.height)
    }
}
