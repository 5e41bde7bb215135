//! Encode: scale each distinct size once, x264 per rung (closed GOP, IDR at every fragment
//! boundary), AAC-LC for the audio.

pub mod aac;
pub mod scale;
pub mod x264;

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
    /// Coded picture width in pixels.
    pub width: u32,
    /// Coded picture height in pixels.
    pub height: u32,
    /// Maximum reorder depth in frames (0 without B-frames); bounds composition offsets.
    pub reorder_frames: u32,
}

/// One coded AAC access unit (raw, no ADTS header) for AAC frame `index` on the audio grid.
#[derive(Clone, Debug)]
pub struct EncodedAudio {
    /// AAC frame number `j` since the epoch: the unit holds samples `[1024j, 1024j+1024)`.
    pub index: u64,
    /// One raw AAC access unit (no ADTS header).
    pub data: Vec<u8>,
}

/// AAC decoder configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AacConfig {
    /// AudioSpecificConfig bytes (e.g. `11 90` for AAC-LC 48 kHz stereo).
    pub asc: Vec<u8>,
    /// Number of audio channels.
    pub channels: u16,
    /// Sampling rate in Hz (samples per second per channel).
    pub sample_rate: u32,
    /// Encoder delay in samples: decoded output lags the input by this many samples.
    pub delay: u32,
}

/// Errors of the encode layer, naming the track they concern.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// The encoder could not be configured or opened (bad settings, unsupported format).
    #[error("track {track}: encoder setup: {reason}")]
    Setup {
        /// Track (or scaler) the error concerns.
        track: String,
        /// What was rejected, naming the setting.
        reason: String,
    },
    /// One picture or block of samples could not be encoded.
    #[error("track {track}: encoding {at}: {reason}")]
    Encode {
        /// Track (or scaler) the error concerns.
        track: String,
        /// Where on the timeline: a frame index, an AAC frame, or `flush`.
        at: String,
        /// What went wrong.
        reason: String,
    },
}
