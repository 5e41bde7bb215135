//! The sink's report: what was ingested, per track and per stream, and every rule violation.
//! Served as JSON on `GET /report` and written to `--report FILE` on exit.

use serde::{Deserialize, Serialize};

/// Which rule of `protocol.md` §8 (or HTTP framing) a request broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ViolationKind {
    /// Bad HTTP request head or body framing (chunked encoding, mixed framing).
    Http,
    /// A box that cannot be parsed, is too large, or a body that ends inside a box.
    Malformed,
    /// Boxes out of the §8.3 order (ftyp → live manifest → moov → (moof mdat)* → mfra).
    BoxOrder,
    /// A `moof`/`mdat` before the header boxes of this connection (answered 412).
    FragmentBeforeHeader,
    /// `ftyp` without the `isml` major brand or without `piff` among the compatible brands.
    Ftyp,
    /// Live server manifest unparsable or inconsistent (missing params, timescale mismatch).
    Manifest,
    /// A FourCC / sample entry the sink does not support (answered 415).
    UnsupportedCodec,
    /// `CodecPrivateData` disagrees with `avcC` / `esds`.
    CodecConfig,
    /// `trackID` param, `tkhd`, `trex` and `tfhd` track IDs disagree.
    TrackId,
    /// A `traf` without a `tfxd`.
    MissingTfxd,
    /// `tfxd` version 0.
    TfxdVersion,
    /// `tfxd` duration ≠ sum of the `trun` sample durations.
    TfxdDuration,
    /// `tfxd` absolute time ≥ 2^63 (a negative value written into the unsigned field).
    NegativeTime,
    /// The first sample of a video fragment is not a sync sample / contains no IDR.
    NotIdr,
    /// `trun.data_offset` does not point at the `mdat` payload, sample sizes do not fill the
    /// `mdat`, or `tfhd` carries a `base_data_offset`.
    DataOffset,
    /// A fragment starts before the end of the previous fragment of its track on the same
    /// connection, or overlaps what the track already holds (answered 409).
    TimeBackwards,
    /// A gap inside one connection's timeline of a track (recorded, not fatal).
    Discontinuity,
    /// `mfhd.sequence_number` not increasing per track on one connection (recorded, not fatal).
    Sequence,
    /// Header boxes differ from the first connection of the same stream id.
    HeaderChanged,
    /// Two streams declare the same track (name, bitrate) with different codec settings.
    TrackConflict,
    /// Too many streams/tracks (answered 503).
    Capacity,
}

/// One recorded violation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// Which rule.
    pub kind: ViolationKind,
    /// HTTP status answered (the connection was then closed); `None` for recorded-only
    /// (non-fatal) violations.
    pub status: Option<u16>,
    /// Publishing point path without `.isml`, e.g. `live`.
    pub pubpoint: String,
    /// `Streams(<id>)` identifier, when known.
    pub stream: Option<String>,
    /// Track name (and bitrate) concerned, when known, e.g. `audio@128000`.
    pub track: Option<String>,
    /// Byte offset in the request body where it was detected.
    pub offset: u64,
    /// Human-readable detail naming the values involved.
    pub detail: String,
}

/// A hole in a track's timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    /// End of the fragment before the gap, in track ticks.
    pub from: u64,
    /// Start of the fragment after the gap, in track ticks.
    pub to: u64,
}

/// Per-track report. A track is identified by (publishing point, trackName, systemBitrate).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackReport {
    /// Publishing point path without `.isml`.
    pub pubpoint: String,
    /// `trackName` param.
    pub name: String,
    /// `systemBitrate` in bits/s.
    pub bitrate: u32,
    /// `video`, `audio` or `text`.
    pub kind: String,
    /// Ticks per second of every time in this report entry.
    pub timescale: u32,
    /// Fragments accepted into the timeline (duplicates not counted).
    pub fragments: u64,
    /// Start of the earliest accepted fragment, in track ticks.
    pub first_time: Option<u64>,
    /// End (time + duration) of the latest accepted fragment, in track ticks.
    pub last_end: Option<u64>,
    /// Holes between accepted fragments (gaps later filled are removed).
    pub gaps: Vec<Gap>,
    /// Gaps not listed because the list hit its bound.
    pub gaps_truncated: u64,
    /// Fragments dropped because an identical (time, duration) fragment was already held.
    pub duplicates_dropped: u64,
    /// Violations that concern this track.
    pub violations: u64,
    /// Connections whose header declared this track.
    pub connections: u64,
    /// Connections beyond the first per stream that declared this track.
    pub reconnects: u64,
    /// Streams (`Streams(<id>)`) that delivered this track.
    pub streams: Vec<String>,
    /// Fragment payload bytes accepted (moof + mdat).
    pub bytes: u64,
    /// Archive file of this track, if archiving is on.
    pub archive: Option<String>,
    /// Why archiving stopped for this track, if it did.
    pub archive_error: Option<String>,
}

/// Per-stream (`Streams(<id>)`) report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamReport {
    /// Publishing point path without `.isml`.
    pub pubpoint: String,
    /// Stream identifier.
    pub stream: String,
    /// Empty-body (probe) POSTs.
    pub probes: u64,
    /// POSTs that carried a body.
    pub connections: u64,
    /// `connections - 1`, saturating.
    pub reconnects: u64,
    /// Bodies that ended properly (terminating chunk / full Content-Length).
    pub clean_ends: u64,
    /// Bodies that ended by connection loss, timeout or an injected fault.
    pub aborted: u64,
    /// Bodies rejected with an error status.
    pub rejected: u64,
    /// End-of-stream `mfra` boxes seen.
    pub mfra_seen: u64,
    /// Fragments received (including duplicates).
    pub fragments: u64,
    /// Body payload bytes received (after de-chunking).
    pub bytes: u64,
    /// SHA-256 of the first connection's header boxes, hex.
    pub header_sha256: Option<String>,
    /// Violations recorded on this stream.
    pub violations: u64,
    /// Last `User-Agent` seen.
    pub user_agent: Option<String>,
}

/// The whole report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Per track, sorted by (pubpoint, name, bitrate).
    pub tracks: Vec<TrackReport>,
    /// Per stream, sorted by (pubpoint, stream).
    pub streams: Vec<StreamReport>,
    /// Every violation, in the order seen (bounded; see `violations_truncated`).
    pub violations: Vec<Violation>,
    /// Violations not listed because the list hit its bound.
    pub violations_truncated: u64,
    /// Faults injected so far.
    pub faults_fired: u64,
    /// HTTP requests served (all paths).
    pub requests: u64,
    /// Fragment arrivals in order, when `SinkConfig::max_arrivals` > 0 (bounded by it).
    #[serde(default)]
    pub arrivals: Vec<Arrival>,
}

/// One fragment as it arrived (accepted or dropped as a duplicate).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Arrival {
    /// Publishing point path without `.isml`.
    pub pubpoint: String,
    /// `Streams(<id>)` identifier it came on.
    pub stream: String,
    /// Track name.
    pub track: String,
    /// `tfxd` absolute time, track ticks.
    pub time: u64,
    /// Wall-clock arrival of the fragment's last byte, ms since the Unix epoch.
    pub unix_ms: u64,
    /// The connection's `User-Agent` (smoothcast puts its box id there).
    pub user_agent: Option<String>,
    /// Dropped because the track already held it.
    pub duplicate: bool,
}

impl Report {
    /// The track named `name` (any bitrate, first match) on `pubpoint`.
    pub fn track(&self, pubpoint: &str, name: &str) -> Option<&TrackReport> {
        self.tracks
            .iter()
            .find(|t| t.pubpoint == pubpoint && t.name == name)
    }

    /// The stream `id` on `pubpoint`.
    pub fn stream(&self, pubpoint: &str, id: &str) -> Option<&StreamReport> {
        self.streams
            .iter()
            .find(|s| s.pubpoint == pubpoint && s.stream == id)
    }

    /// Violations that closed a connection with an error status.
    pub fn fatal_violations(&self) -> impl Iterator<Item = &Violation> {
        self.violations.iter().filter(|v| v.status.is_some())
    }
}
