//! PIFF: pure MP4 box writers for live Smooth Streaming ingest (MS-SSTR 2.2.7, ISO/IEC
//! 14496-12) and a parser of the same. No I/O here: plain structs in, bytes out.
//!
//! Byte layouts and values follow `shared/protocol.md` §2 and §8.

pub mod boxes;
pub mod header;
pub mod fragment;
pub mod parse;

use crate::encode::{AacConfig, AvcConfig};

/// Bumped whenever the bytes we emit change on purpose (guarded by the golden-digest test).
pub const FORMAT_VERSION: u32 = 1;

/// What a track carries, for `moov` and the live server manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrackCodec {
    Avc(AvcConfig),
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

pub const SAMPLE_FLAGS_SYNC: u32 = 0x0200_0000;
pub const SAMPLE_FLAGS_NON_SYNC: u32 = 0x0101_0000;

/// A fragment of one track ready to be written as `moof` + `mdat`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FragmentSpec {
    pub track_id: u32,
    /// `mfhd.sequence_number`: the fragment index `k` on the fragment grid.
    pub sequence: u32,
    /// `tfxd.fragment_absolute_time` in track ticks since the epoch (presentation time of the
    /// first sample).
    pub absolute_time: u64,
    /// `tfxd.fragment_duration` == sum of the sample durations.
    pub duration: u64,
    pub samples: Vec<SampleEntry>,
}

/// Errors from parsing PIFF bytes (untrusted input: never panics).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PiffError {
    #[error("at byte {offset}: {what}")]
    Malformed { offset: u64, what: String },
    #[error("at byte {offset}: box '{fourcc}' of {size} bytes exceeds the limit of {limit}")]
    TooLarge {
        offset: u64,
        fourcc: String,
        size: u64,
        limit: u64,
    },
}
