//! PIFF: pure MP4 box writers for live Smooth Streaming ingest (MS-SSTR 2.2.7, ISO/IEC
//! 14496-12) and a parser of the same. No I/O here: plain structs in, bytes out.
//!
//! Byte layouts and values follow `shared/protocol.md` §2 and §8.

pub mod boxes;
pub mod fragment;
pub mod header;
pub mod parse;

use crate::encode::{AacConfig, AvcConfig};

/// Bumped whenever the bytes we emit change on purpose (guarded by the golden-digest test).
pub const FORMAT_VERSION: u32 = 1;

/// What a track carries, for `moov` and the live server manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrackCodec {
    /// H.264: `avc1`/`avcC` in `moov`, `FourCC` `H264` in the manifest.
    Avc(AvcConfig),
    /// AAC: `mp4a`/`esds` in `moov`, `FourCC` `AACL` in the manifest.
    Aac(AacConfig),
}

/// One track as described in the header boxes of a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackInfo {
    /// `trackID` param == `tkhd.track_ID` == `tfhd.track_ID` == `trex.track_ID`.
    pub track_id: u32,
    /// Client-facing name used in `Fragments(<name>=t)` URLs.
    pub track_name: String,
    /// Declared bitrate in bits/s (`systemBitrate`).
    pub bitrate: u32,
    /// Ticks per second of this track's media time (`timescale` param, `mdhd.timescale`).
    pub timescale: u32,
    /// Codec and its decoder configuration.
    pub codec: TrackCodec,
}

/// One sample of a fragment, in decode order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SampleEntry {
    /// Decode duration in track ticks.
    pub duration: u32,
    /// Size in bytes of the sample in `mdat`.
    pub size: u32,
    /// ISO sample flags: sync `0x0200_0000`, non-sync `0x0101_0000`.
    pub flags: u32,
    /// Composition time offset (presentation − decode) in track ticks.
    pub composition_offset: i32,
}

/// Sample flags of a sync sample (IDR, every AAC frame): sample_depends_on = 2 (ISO/IEC
/// 14496-12 §8.8.3.1; the value FFmpeg writes).
pub const SAMPLE_FLAGS_SYNC: u32 = 0x0200_0000;
/// Sample flags of a non-sync video sample: sample_depends_on = 1, sample_is_non_sync_sample.
pub const SAMPLE_FLAGS_NON_SYNC: u32 = 0x0101_0000;

/// A fragment of one track ready to be written as `moof` + `mdat`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FragmentSpec {
    /// `tfhd.track_ID`, equal to the header's `trackID`.
    pub track_id: u32,
    /// `mfhd.sequence_number`: the fragment index `k` on the fragment grid.
    pub sequence: u32,
    /// `tfxd.fragment_absolute_time` in track ticks since the epoch (presentation time of the
    /// first sample).
    pub absolute_time: u64,
    /// `tfxd.fragment_duration` == sum of the sample durations.
    pub duration: u64,
    /// The samples in decode order; their sizes sum to the `mdat` payload length.
    pub samples: Vec<SampleEntry>,
}

/// Errors from parsing PIFF bytes (untrusted input: never panics), and the one writer-side
/// consistency check of [`fragment::write_fragment`].
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum PiffError {
    /// Input bytes that do not form the expected boxes; `offset` is relative to the start of
    /// the buffer handed to the parser (or the stream offset for [`parse::BoxSplitter`]).
    #[error("at byte {offset}: {what}")]
    Malformed {
        /// Byte offset of the offending field or box.
        offset: u64,
        /// What is wrong, naming the box/field.
        what: String,
    },
    /// A box claims more bytes than the caller allows to buffer.
    #[error("at byte {offset}: box '{fourcc}' of {size} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// Stream offset of the box.
        offset: u64,
        /// Box name (fourcc or `uuid:…`).
        fourcc: String,
        /// Size the box claims.
        size: u64,
        /// The caller's limit.
        limit: u64,
    },
    /// Writer-side: a fragment's sample sizes do not add up to the payload handed to
    /// [`fragment::write_fragment`].
    #[error(
        "track {track_id} fragment {sequence}: sample sizes sum to {declared} bytes \
         but the payload has {payload}"
    )]
    PayloadMismatch {
        /// Track of the fragment.
        track_id: u32,
        /// `mfhd` sequence number (fragment index) of the fragment.
        sequence: u32,
        /// Sum of the sample sizes.
        declared: u64,
        /// Length of the payload handed in.
        payload: u64,
    },
}

impl PiffError {
    /// The same error with its byte offset moved by `by` — for errors from parsing one box
    /// (e.g. a [`parse::BoxSplitter`] output) to be reported at their stream offset.
    pub fn shifted(self, by: u64) -> PiffError {
        match self {
            PiffError::Malformed { offset, what } => PiffError::Malformed {
                offset: offset.saturating_add(by),
                what,
            },
            PiffError::TooLarge {
                offset,
                fourcc,
                size,
                limit,
            } => PiffError::TooLarge {
                offset: offset.saturating_add(by),
                fourcc,
                size,
                limit,
            },
            other => other,
        }
    }
}
