//! Capture: sources of raw video frames and audio samples, already placed on the grid.
//!
//! A video source yields one [`VideoFrame`] per grid slot (the channel's frame index), an audio
//! source yields [`AudioBlock`]s of consecutive samples on the audio sample grid. Sources have a
//! real-time mode (paced by the injected clock) and a fast mode (as fast as the consumer takes).

pub mod file;
pub mod synthetic;

use crate::time::{FrameIndex, SampleIndex};
use std::sync::Arc;

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
