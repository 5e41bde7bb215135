//! Encode: scale each distinct size once, x264 per rung (closed GOP, IDR at every fragment
//! boundary), AAC-LC for the audio.

pub mod scale;
pub mod x264;
pub mod aac;

use crate::time::FrameIndex;

/// One coded video picture as x264 emits it, in decode order.
#[derive(Clone, Debug)]
pub struct EncodedPicture {
    /// Presentation slot on the frame grid (x264 `i_pts`).
    pub pts: FrameIndex,
    /// True for an IDR picture (a sync sample).
    pub keyframe: bool,
    /// AVCC sample: NAL units each prefixed with a 4-byte big-endian length (no start codes,
    /// no SPS/PPS — those live in `avcC` and CodecPrivateData).
    pub data: Vec<u8>,
}

/// H.264 decoder configuration taken from x264's headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AvcConfig {
    /// Sequence parameter set NAL unit (without start code or length prefix).
    pub sps: Vec<u8>,
    /// Picture parameter set NAL unit (without start code or length prefix).
    pub pps: Vec<u8>,
    pub width: u32,
    pub height: u32,
    /// Maximum reorder depth in frames (0 without B-frames); bounds composition offsets.
    pub reorder_frames: u32,
}

/// One coded AAC access unit (raw, no ADTS header) for AAC frame `index` on the audio grid.
#[derive(Clone, Debug)]
pub struct EncodedAudio {
    /// AAC frame number `j` since the epoch: the unit holds samples `[1024j, 1024j+1024)`.
    pub index: u64,
    pub data: Vec<u8>,
}

/// AAC decoder configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AacConfig {
    /// AudioSpecificConfig bytes (e.g. `11 90` for AAC-LC 48 kHz stereo).
    pub asc: Vec<u8>,
    pub channels: u16,
    pub sample_rate: u32,
    /// Encoder delay in samples: decoded output lags the input by this many samples.
    pub delay: u32,
}

/// Errors of the encode layer, naming the track they concern.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("track {track}: encoder setup: {reason}")]
    Setup { track: String, reason: String },
    #[error("track {track}: encoding {at}: {reason}")]
    Encode { track: String, at: String, reason: String },
}
