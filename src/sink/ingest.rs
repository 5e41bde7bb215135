//! Incremental validation of one ingest POST body (protocol.md §2, §8): the body is pushed in
//! whatever pieces the network delivers, complete top-level boxes are cut out as soon as they
//! are whole, and every per-connection rule is checked on the spot.
//!
//! Pure (no I/O, no clock): the server feeds it, the store applies its events, the fuzz target
//! and the robustness test drive it directly. Rules that need state shared across connections
//! (de-duplication, header identity per stream id, track conflicts) live in the store.

use std::collections::HashMap;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::mp4;
use super::report::ViolationKind;
use crate::piff::boxes::{LIVE_SERVER_MANIFEST_UUID, STREAM_MANIFEST_UUID};
use crate::piff::parse::{
    parse_ftyp, parse_live_manifest, parse_moof, parse_moov, BoxHeader, BoxSplitter, ManifestTrack,
    ManifestTrackKind, Moof,
};

/// ISO sample flag `sample_is_non_sync_sample`.
const NON_SYNC: u32 = 0x0001_0000;
/// A tfxd time at or above this is a negative number written into the unsigned field.
const NEGATIVE_TIME: u64 = 1 << 63;

/// What kind of media a track carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum TrackKind {
    Video,
    Audio,
    Text,
}

impl TrackKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TrackKind::Video => "video",
            TrackKind::Audio => "audio",
            TrackKind::Text => "text",
        }
    }
}

/// One track as declared by a stream's header (live manifest + moov), with what the client
/// manifest needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeaderTrack {
    /// `trackID` == `tkhd.track_ID` == `trex.track_ID`.
    pub track_id: u32,
    /// `trackName` param.
    pub name: String,
    /// `systemBitrate`.
    pub bitrate: u32,
    pub kind: TrackKind,
    /// Ticks per second of this track's media time.
    pub timescale: u32,
    /// `FourCC` param, upper-cased (`H264`, `AACL`, …).
    pub fourcc: String,
    /// `CodecPrivateData` as upper-case hex.
    pub codec_private_data: String,
    /// Video: from params, else from `tkhd`.
    pub width: u32,
    pub height: u32,
    pub display_width: u32,
    pub display_height: u32,
    /// Audio params (manifest wins; the FFmpeg `mp4a` channel count is known to be wrong).
    pub sampling_rate: u32,
    pub channels: u32,
    pub bits_per_sample: u32,
    pub packet_size: u32,
    pub audio_tag: u32,
    /// `systemLanguage` param, if any.
    pub language: Option<String>,
    /// AVC NAL length field size in bytes (from avcC), for the IDR check.
    pub nal_length_size: u8,
}

impl HeaderTrack {
    /// "name@bitrate", how violations and logs name a track.
    pub fn label(&self) -> String {
        format!("{}@{}", self.name, self.bitrate)
    }

    /// The settings that must agree between two streams carrying the same track.
    pub fn same_config(&self, o: &HeaderTrack) -> bool {
        self.kind == o.kind
            && self.timescale == o.timescale
            && self.fourcc == o.fourcc
            && self.codec_private_data == o.codec_private_data
    }
}

/// The header boxes of one connection, validated.
#[derive(Debug, Clone)]
pub(crate) struct StreamHeader {
    pub ftyp: Bytes,
    /// LiveServerManifestBox (whole uuid box).
    pub manifest: Bytes,
    pub moov: Bytes,
    /// SHA-256 over every header box as received (ftyp, manifests, moov).
    pub sha256: [u8; 32],
    pub tracks: Vec<HeaderTrack>,
}

impl StreamHeader {
    pub fn track(&self, track_id: u32) -> Option<&HeaderTrack> {
        self.tracks.iter().find(|t| t.track_id == track_id)
    }
}

/// One track's fragment out of a `moof` + `mdat`.
#[derive(Debug, Clone)]
pub(crate) struct IngestedFragment {
    pub track_id: u32,
    /// tfxd absolute time, track ticks.
    pub time: u64,
    /// tfxd duration, track ticks.
    pub duration: u64,
    /// A single-traf `moof` (as received when the moof had one traf).
    pub moof: Bytes,
    /// The matching `mdat` (whole box).
    pub mdat: Bytes,
}

impl IngestedFragment {
    pub fn len(&self) -> u64 {
        (self.moof.len() + self.mdat.len()) as u64
    }
}

/// A problem found in the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub kind: ViolationKind,
    /// Status to answer; `None` = record only and keep going.
    pub status: Option<u16>,
    /// Track concerned ("name@bitrate"), if any.
    pub track: Option<String>,
    /// Body offset where it was detected.
    pub offset: u64,
    pub detail: String,
}

/// What the validator found next.
#[derive(Debug, Clone)]
pub(crate) enum IngestEvent {
    /// Header boxes complete and valid.
    Header(std::sync::Arc<StreamHeader>),
    /// One `moof` + `mdat` complete and valid: one entry per traf.
    Fragments(Vec<IngestedFragment>),
    /// The empty `mfra` end-of-stream marker.
    Eos,
    /// A non-fatal rule violation (recorded, ingest continues).
    Warning(Problem),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    ExpectFtyp,
    ExpectManifest,
    ExpectMoov,
    Fragments,
    ExpectMdat,
    Ended,
}

#[derive(Debug, Clone, Copy, Default)]
struct ConnTrack {
    /// End (time + duration) of the previous fragment of this track on this connection.
    prev_end: Option<u64>,
    prev_sequence: Option<u32>,
}

/// Validator of one POST body.
#[derive(Debug)]
pub(crate) struct IngestValidator {
    splitter: BoxSplitter,
    state: State,
    hasher: Sha256,
    ftyp: Option<Bytes>,
    manifest: Option<(Bytes, Vec<ManifestTrack>)>,
    header: Option<std::sync::Arc<StreamHeader>>,
    pending: Option<(Bytes, Moof, u64)>,
    tracks: HashMap<u32, ConnTrack>,
    queued: std::collections::VecDeque<IngestEvent>,
    failed: bool,
    body_bytes: u64,
}

fn problem(kind: ViolationKind, status: u16, offset: u64, detail: impl Into<String>) -> Problem {
    Problem {
        kind,
        status: Some(status),
        track: None,
        offset,
        detail: detail.into(),
    }
}

impl IngestValidator {
    /// A validator refusing any top-level box larger than `max_box_size` bytes.
    pub fn new(max_box_size: u64) -> Self {
        Self {
            splitter: BoxSplitter::new(max_box_size),
            state: State::ExpectFtyp,
            hasher: Sha256::new(),
            ftyp: None,
            manifest: None,
            header: None,
            pending: None,
            tracks: HashMap::new(),
            queued: Default::default(),
            failed: false,
            body_bytes: 0,
        }
    }

    /// Appends body bytes as received.
    pub fn push(&mut self, data: &[u8]) {
        if !self.failed {
            self.body_bytes += data.len() as u64;
            self.splitter.push(data);
        }
    }

    /// Bytes held waiting for the rest of a box (plus a pending `moof`).
    pub fn buffered(&self) -> usize {
        self.splitter.buffered() + self.pending.as_ref().map_or(0, |p| p.0.len())
    }

    /// Body bytes pushed so far.
    pub fn body_bytes(&self) -> u64 {
        self.body_bytes
    }

    /// The next event, `Ok(None)` when more bytes are needed. After an `Err` (a fatal
    /// violation) the validator stays failed and returns `Ok(None)`.
    pub fn poll(&mut self) -> Result<Option<IngestEvent>, Problem> {
        loop {
            if let Some(e) = self.queued.pop_front() {
                return Ok(Some(e));
            }
            if self.failed {
                return Ok(None);
            }
            let offset = self.splitter.offset();
            let next = match self.splitter.next_box() {
                Ok(Some(b)) => b,
                Ok(None) => return Ok(None),
                Err(e) => {
                    return Err(self.fail(problem(
                        ViolationKind::Malformed,
                        400,
                        offset,
                        e.to_string(),
                    )))
                }
            };
            if let Err(p) = self.on_box(next.0, next.1, offset) {
                return Err(self.fail(p));
            }
        }
    }

    /// The body ended cleanly (terminating chunk or full Content-Length): anything still
    /// buffered is a truncated box.
    pub fn finish(&mut self) -> Result<(), Problem> {
        if self.failed {
            return Ok(());
        }
        let offset = self.splitter.offset();
        if self.splitter.buffered() > 0 {
            let detail = format!(
                "body ends inside a box ({} bytes left over)",
                self.splitter.buffered()
            );
            return Err(self.fail(problem(ViolationKind::Malformed, 400, offset, detail)));
        }
        if self.state == State::ExpectMdat {
            return Err(self.fail(problem(
                ViolationKind::BoxOrder,
                400,
                offset,
                "body ends after a moof without its mdat",
            )));
        }
        if matches!(self.state, State::ExpectManifest | State::ExpectMoov) {
            return Err(self.fail(problem(
                ViolationKind::BoxOrder,
                400,
                offset,
                "body ends inside the header boxes",
            )));
        }
        Ok(())
    }

    fn fail(&mut self, p: Problem) -> Problem {
        self.failed = true;
        self.pending = None;
        self.queued.clear();
        p
    }

    fn on_box(&mut self, h: BoxHeader, b: Bytes, offset: u64) -> Result<(), Problem> {
        let name = h.name();
        let is_fragment_box = &h.fourcc == b"moof" || &h.fourcc == b"mdat";
        match self.state {
            State::ExpectFtyp | State::ExpectManifest | State::ExpectMoov if is_fragment_box => {
                Err(problem(
                    ViolationKind::FragmentBeforeHeader,
                    412,
                    offset,
                    format!("'{name}' before the header boxes (ftyp, live manifest, moov) of this connection"),
                ))
            }
            _ if matches!(&h.fourcc, b"free" | b"skip") && self.state != State::ExpectMdat => Ok(()),
            State::ExpectFtyp => {
                if &h.fourcc != b"ftyp" {
                    return Err(problem(ViolationKind::BoxOrder, 400, offset, format!("body starts with '{name}', not 'ftyp'")));
                }
                let f = parse_ftyp(&b).map_err(|e| problem(ViolationKind::Malformed, 400, offset, e.to_string()))?;
                // Accept FFmpeg's minor 512 and its brand list "isml piff" (fixtures README);
                // MS-SSTR 2.2.7.1 requires major isml and piff among the compatible brands.
                if &f.major != b"isml" {
                    return Err(problem(ViolationKind::Ftyp, 400, offset, format!("major brand '{}', expected 'isml'", String::from_utf8_lossy(&f.major))));
                }
                if !f.compatible.iter().any(|c| c == b"piff") {
                    return Err(problem(ViolationKind::Ftyp, 400, offset, "compatible brands lack 'piff'"));
                }
                self.hasher.update(&b);
                self.ftyp = Some(b);
                self.state = State::ExpectManifest;
                Ok(())
            }
            State::ExpectManifest => {
                match h.usertype {
                    Some(STREAM_MANIFEST_UUID) => {
                        // Optional StreamManifestBox (protocol.md §2.3): part of the header identity.
                        self.hasher.update(&b);
                        Ok(())
                    }
                    Some(LIVE_SERVER_MANIFEST_UUID) => {
                        let m = parse_live_manifest(&b)
                            .map_err(|e| problem(ViolationKind::Manifest, 400, offset, e.to_string()))?;
                        if m.tracks.is_empty() {
                            return Err(problem(ViolationKind::Manifest, 400, offset, "live manifest declares no track"));
                        }
                        self.hasher.update(&b);
                        self.manifest = Some((b, m.tracks));
                        self.state = State::ExpectMoov;
                        Ok(())
                    }
                    _ => Err(problem(ViolationKind::BoxOrder, 400, offset, format!("'{name}' where the live server manifest uuid box was expected"))),
                }
            }
            State::ExpectMoov => {
                if &h.fourcc != b"moov" {
                    return Err(problem(ViolationKind::BoxOrder, 400, offset, format!("'{name}' where 'moov' was expected")));
                }
                self.hasher.update(&b);
                let header = self.build_header(b, offset)?;
                let header = std::sync::Arc::new(header);
                self.header = Some(header.clone());
                self.queued.push_back(IngestEvent::Header(header));
                self.state = State::Fragments;
                Ok(())
            }
            State::Fragments => match &h.fourcc {
                b"moof" => {
                    let moof = parse_moof(&b).map_err(|e| problem(ViolationKind::Malformed, 400, offset, e.to_string()))?;
                    self.pending = Some((b, moof, offset));
                    self.state = State::ExpectMdat;
                    Ok(())
                }
                b"mfra" => {
                    self.queued.push_back(IngestEvent::Eos);
                    self.state = State::Ended;
                    Ok(())
                }
                _ => Err(problem(ViolationKind::BoxOrder, 400, offset, format!("'{name}' where 'moof' or 'mfra' was expected"))),
            },
            State::ExpectMdat => {
                if &h.fourcc != b"mdat" {
                    return Err(problem(ViolationKind::BoxOrder, 400, offset, format!("'{name}' after a moof, expected 'mdat'")));
                }
                let Some((moof_bytes, moof, moof_offset)) = self.pending.take() else {
                    return Err(problem(ViolationKind::BoxOrder, 400, offset, "mdat without moof"));
                };
                self.state = State::Fragments;
                self.on_fragment(moof_bytes, moof, moof_offset, b, usize::from(h.header_len))
            }
            State::Ended => Err(problem(ViolationKind::BoxOrder, 400, offset, format!("'{name}' after the end-of-stream mfra"))),
        }
    }

    fn build_header(&mut self, moov_bytes: Bytes, offset: u64) -> Result<StreamHeader, Problem> {
        let bad = |kind, status, detail: String| problem(kind, status, offset, detail);
        let moov = parse_moov(&moov_bytes)
            .map_err(|e| bad(ViolationKind::Malformed, 400, e.to_string()))?;
        let (manifest_bytes, mtracks) = self.manifest.take().ok_or_else(|| {
            bad(
                ViolationKind::BoxOrder,
                400,
                "moov without live manifest".into(),
            )
        })?;
        let ftyp = self.ftyp.take().unwrap_or_default();
        let mut tracks: Vec<HeaderTrack> = Vec::with_capacity(mtracks.len());
        for mt in &mtracks {
            let name = mt.track_name();
            let label = format!("{name}@{}", mt.system_bitrate);
            let with_track = |mut p: Problem| {
                p.track = Some(label.clone());
                p
            };
            let track_id = mt.track_id().ok_or_else(|| {
                with_track(bad(
                    ViolationKind::Manifest,
                    400,
                    format!("track '{label}' has no numeric trackID param"),
                ))
            })?;
            if tracks.iter().any(|t| t.track_id == track_id) {
                return Err(with_track(bad(
                    ViolationKind::TrackId,
                    400,
                    format!("trackID {track_id} declared twice in the live manifest"),
                )));
            }
            if tracks
                .iter()
                .any(|t| t.name == name && t.bitrate == mt.system_bitrate)
            {
                return Err(with_track(bad(
                    ViolationKind::Manifest,
                    400,
                    format!(
                        "two tracks named '{name}' with bitrate {}",
                        mt.system_bitrate
                    ),
                )));
            }
            let Some(trak) = moov.tracks.iter().find(|t| t.track_id == track_id) else {
                return Err(with_track(bad(
                    ViolationKind::TrackId,
                    400,
                    format!(
                        "trackID {track_id} of the live manifest has no trak (tkhd IDs {:?})",
                        moov.tracks.iter().map(|t| t.track_id).collect::<Vec<_>>()
                    ),
                )));
            };
            if !moov.trex_track_ids.contains(&track_id) {
                return Err(with_track(bad(
                    ViolationKind::TrackId,
                    400,
                    format!(
                        "trackID {track_id} has no trex (trex IDs {:?})",
                        moov.trex_track_ids
                    ),
                )));
            }
            let timescale = mt.timescale();
            if timescale == 0 || trak.timescale != timescale {
                return Err(with_track(bad(
                    ViolationKind::Manifest,
                    400,
                    format!(
                        "timescale param {timescale} but mdhd timescale {}",
                        trak.timescale
                    ),
                )));
            }
            let kind = match mt.kind {
                ManifestTrackKind::Video => TrackKind::Video,
                ManifestTrackKind::Audio => TrackKind::Audio,
                ManifestTrackKind::Text => TrackKind::Text,
            };
            let fourcc = mt.fourcc().unwrap_or("").trim().to_ascii_uppercase();
            let cpd_hex = mt
                .codec_private_data_hex()
                .unwrap_or("")
                .trim()
                .to_ascii_uppercase();
            let cpd = mt.codec_private_data();
            let num = |k: &str| mt.param(k).and_then(|v| v.trim().parse::<u32>().ok());
            let mut nal_length_size = 4;
            match kind {
                TrackKind::Video => {
                    if !matches!(fourcc.as_str(), "H264" | "AVC1")
                        || &trak.sample_entry != b"avc1" && &trak.sample_entry != b"avc3"
                    {
                        return Err(with_track(bad(ViolationKind::UnsupportedCodec, 415, format!("video FourCC '{fourcc}' / sample entry '{}' (supported: H264 in avc1)", String::from_utf8_lossy(&trak.sample_entry)))));
                    }
                    let Some((sps, pps, len_size)) = &trak.avc else {
                        return Err(with_track(bad(
                            ViolationKind::CodecConfig,
                            400,
                            "avc1 sample entry without avcC".into(),
                        )));
                    };
                    nal_length_size = *len_size;
                    let mut expect = vec![0, 0, 0, 1];
                    expect.extend_from_slice(sps);
                    expect.extend_from_slice(&[0, 0, 0, 1]);
                    expect.extend_from_slice(pps);
                    if cpd.as_deref() != Some(&expect[..]) {
                        return Err(with_track(bad(
                            ViolationKind::CodecConfig,
                            400,
                            format!(
                                "CodecPrivateData {cpd_hex} differs from avcC SPS/PPS {}",
                                hex::encode_upper(&expect)
                            ),
                        )));
                    }
                }
                TrackKind::Audio => {
                    if !matches!(fourcc.as_str(), "AACL" | "AACH" | "AACP")
                        || &trak.sample_entry != b"mp4a"
                    {
                        return Err(with_track(bad(ViolationKind::UnsupportedCodec, 415, format!("audio FourCC '{fourcc}' / sample entry '{}' (supported: AACL/AACH/AACP in mp4a)", String::from_utf8_lossy(&trak.sample_entry)))));
                    }
                    let Some(asc) = &trak.aac_asc else {
                        return Err(with_track(bad(
                            ViolationKind::CodecConfig,
                            400,
                            "mp4a sample entry without AudioSpecificConfig".into(),
                        )));
                    };
                    if cpd.as_deref() != Some(&asc[..]) {
                        return Err(with_track(bad(ViolationKind::CodecConfig, 400, format!("CodecPrivateData {cpd_hex} differs from esds AudioSpecificConfig {}", hex::encode_upper(asc)))));
                    }
                }
                TrackKind::Text => {}
            }
            tracks.push(HeaderTrack {
                track_id,
                name,
                bitrate: mt.system_bitrate,
                kind,
                timescale,
                fourcc,
                codec_private_data: cpd_hex,
                width: num("MaxWidth").unwrap_or(trak.width),
                height: num("MaxHeight").unwrap_or(trak.height),
                display_width: num("DisplayWidth")
                    .or(num("MaxWidth"))
                    .unwrap_or(trak.width),
                display_height: num("DisplayHeight")
                    .or(num("MaxHeight"))
                    .unwrap_or(trak.height),
                sampling_rate: num("SamplingRate").unwrap_or(trak.sample_rate),
                channels: num("Channels").unwrap_or(u32::from(trak.channels)),
                bits_per_sample: num("BitsPerSample").unwrap_or(16),
                packet_size: num("PacketSize").unwrap_or(4),
                audio_tag: num("AudioTag").unwrap_or(255),
                language: mt.param("systemLanguage").map(str::to_owned),
                nal_length_size,
            });
        }
        for t in &moov.tracks {
            if !tracks.iter().any(|h| h.track_id == t.track_id) {
                return Err(bad(
                    ViolationKind::TrackId,
                    400,
                    format!(
                        "trak with track_ID {} not declared in the live manifest",
                        t.track_id
                    ),
                ));
            }
        }
        let sha256: [u8; 32] = std::mem::take(&mut self.hasher).finalize().into();
        Ok(StreamHeader {
            ftyp,
            manifest: manifest_bytes,
            moov: moov_bytes,
            sha256,
            tracks,
        })
    }

    fn on_fragment(
        &mut self,
        moof_bytes: Bytes,
        moof: Moof,
        moof_offset: u64,
        mdat: Bytes,
        mdat_header_len: usize,
    ) -> Result<(), Problem> {
        let Some(header) = self.header.clone() else {
            return Err(problem(
                ViolationKind::FragmentBeforeHeader,
                412,
                moof_offset,
                "fragment before header",
            ));
        };
        if moof.trafs.is_empty() {
            return Err(problem(
                ViolationKind::Malformed,
                400,
                moof_offset,
                "moof without traf",
            ));
        }
        let payload_len = mdat.len() - mdat_header_len;
        let mut expected_offset = moof_bytes.len() as u64 + mdat_header_len as u64;
        let mut payload_offsets = Vec::with_capacity(moof.trafs.len());
        let mut payload_lens = Vec::with_capacity(moof.trafs.len());
        let mut out = Vec::with_capacity(moof.trafs.len());
        for traf in &moof.trafs {
            let Some(track) = header.track(traf.track_id) else {
                return Err(problem(
                    ViolationKind::TrackId,
                    400,
                    moof_offset,
                    format!(
                        "tfhd track_ID {} not declared in the header (trackIDs {:?})",
                        traf.track_id,
                        header.tracks.iter().map(|t| t.track_id).collect::<Vec<_>>()
                    ),
                ));
            };
            let label = track.label();
            let bad = |kind, status, detail: String| Problem {
                kind,
                status: Some(status),
                track: Some(label.clone()),
                offset: moof_offset,
                detail,
            };
            if traf.base_data_offset.is_some() {
                return Err(bad(
                    ViolationKind::DataOffset,
                    400,
                    "tfhd carries a base_data_offset (PIFF forbids it)".into(),
                ));
            }
            let Some(tfxd) = traf.tfxd else {
                return Err(bad(
                    ViolationKind::MissingTfxd,
                    400,
                    format!("traf without tfxd (children {:?})", traf.children),
                ));
            };
            if tfxd.version != 1 {
                return Err(bad(
                    ViolationKind::TfxdVersion,
                    400,
                    format!("tfxd version {} (must be 1: 64-bit times)", tfxd.version),
                ));
            }
            if tfxd.absolute_time >= NEGATIVE_TIME {
                return Err(bad(
                    ViolationKind::NegativeTime,
                    400,
                    format!(
                        "tfxd absolute time {} is negative ({}) as a signed value",
                        tfxd.absolute_time, tfxd.absolute_time as i64
                    ),
                ));
            }
            if traf.samples.is_empty() {
                return Err(bad(
                    ViolationKind::Malformed,
                    400,
                    "traf without samples".into(),
                ));
            }
            let sum: u64 = traf.samples.iter().map(|s| u64::from(s.duration)).sum();
            if sum != tfxd.duration {
                return Err(bad(
                    ViolationKind::TfxdDuration,
                    400,
                    format!(
                        "tfxd duration {} but trun durations sum to {sum}",
                        tfxd.duration
                    ),
                ));
            }
            let end = tfxd
                .absolute_time
                .checked_add(tfxd.duration)
                .filter(|e| *e < NEGATIVE_TIME)
                .ok_or_else(|| {
                    bad(
                        ViolationKind::NegativeTime,
                        400,
                        "tfxd time + duration overflows".into(),
                    )
                })?;
            let Some(data_offset) = traf.data_offset else {
                return Err(bad(
                    ViolationKind::DataOffset,
                    400,
                    "trun without data_offset".into(),
                ));
            };
            if i64::from(data_offset) != expected_offset as i64 {
                return Err(bad(ViolationKind::DataOffset, 400, format!("trun data_offset {data_offset}, expected {expected_offset} (moof size {} + mdat header {mdat_header_len}{})", moof_bytes.len(), if out.is_empty() { "" } else { " + previous trafs' samples" })));
            }
            let traf_len: u64 = traf.samples.iter().map(|s| u64::from(s.size)).sum();
            let payload_start =
                (expected_offset - moof_bytes.len() as u64 - mdat_header_len as u64) as usize;
            payload_offsets.push(payload_start);
            payload_lens.push(traf_len as usize);
            expected_offset += traf_len;
            if expected_offset - moof_bytes.len() as u64 - mdat_header_len as u64
                > payload_len as u64
            {
                return Err(bad(
                    ViolationKind::DataOffset,
                    400,
                    format!(
                        "samples need {} bytes, mdat payload has {payload_len}",
                        expected_offset - moof_bytes.len() as u64 - mdat_header_len as u64
                    ),
                ));
            }
            if track.kind == TrackKind::Video {
                let first = traf.samples[0];
                if first.flags & NON_SYNC != 0 {
                    return Err(bad(
                        ViolationKind::NotIdr,
                        400,
                        format!(
                            "first sample flags {:#010x} mark a non-sync sample",
                            first.flags
                        ),
                    ));
                }
                let start = mdat_header_len + payload_start;
                let sample = mdat
                    .get(start..start + first.size as usize)
                    .unwrap_or_default();
                if let Err(why) = check_idr(sample, track.nal_length_size) {
                    return Err(bad(
                        ViolationKind::NotIdr,
                        400,
                        format!("first sample at time {}: {why}", tfxd.absolute_time),
                    ));
                }
            }
            // Per-connection continuity and order (protocol.md §3.2, §8.4).
            let ct = self.tracks.entry(traf.track_id).or_default();
            if let Some(prev_end) = ct.prev_end {
                if tfxd.absolute_time < prev_end {
                    return Err(Problem { kind: ViolationKind::TimeBackwards, status: Some(409), track: Some(label.clone()), offset: moof_offset, detail: format!("fragment time {} is before the end {prev_end} of the previous fragment on this connection", tfxd.absolute_time) });
                }
                if tfxd.absolute_time > prev_end {
                    self.queued.push_back(IngestEvent::Warning(Problem { kind: ViolationKind::Discontinuity, status: None, track: Some(label.clone()), offset: moof_offset, detail: format!("gap of {} ticks: previous fragment ended at {prev_end}, this one starts at {}", tfxd.absolute_time - prev_end, tfxd.absolute_time) }));
                }
            }
            if let Some(prev) = ct.prev_sequence {
                if moof.sequence <= prev {
                    self.queued.push_back(IngestEvent::Warning(Problem {
                        kind: ViolationKind::Sequence,
                        status: None,
                        track: Some(label.clone()),
                        offset: moof_offset,
                        detail: format!("mfhd sequence {} after {prev}", moof.sequence),
                    }));
                }
            }
            ct.prev_end = Some(end);
            ct.prev_sequence = Some(moof.sequence);
            out.push(IngestedFragment {
                track_id: traf.track_id,
                time: tfxd.absolute_time,
                duration: tfxd.duration,
                moof: Bytes::new(),
                mdat: Bytes::new(),
            });
        }
        let used = expected_offset - moof_bytes.len() as u64 - mdat_header_len as u64;
        if used != payload_len as u64 {
            return Err(problem(
                ViolationKind::DataOffset,
                400,
                moof_offset,
                format!("samples fill {used} bytes of a {payload_len}-byte mdat payload"),
            ));
        }
        if out.len() == 1 {
            out[0].moof = moof_bytes;
            out[0].mdat = mdat;
        } else {
            let parts = mp4::split_moof(
                &moof_bytes,
                &mdat[mdat_header_len..],
                &payload_offsets,
                &payload_lens,
            )
            .ok_or_else(|| {
                problem(
                    ViolationKind::Malformed,
                    400,
                    moof_offset,
                    "cannot split multi-traf moof",
                )
            })?;
            for (f, (m, d)) in out.iter_mut().zip(parts) {
                f.moof = Bytes::from(m);
                f.mdat = Bytes::from(d);
            }
        }
        self.queued.push_back(IngestEvent::Fragments(out));
        Ok(())
    }
}

/// Checks that an AVC sample is AVCC-framed with `len_size`-byte lengths and holds an IDR slice
/// (NAL type 5).
fn check_idr(sample: &[u8], len_size: u8) -> Result<(), String> {
    let n = usize::from(len_size);
    if !(1..=4).contains(&n) {
        return Err(format!("NAL length size {len_size}"));
    }
    // Walk the whole sample: AVCC lengths must tile it exactly (Annex-B start codes read as
    // lengths do not), and one of the NAL units must be an IDR slice.
    let mut pos = 0;
    let mut idr = false;
    let mut types = Vec::new();
    while pos < sample.len() {
        let Some(lenb) = sample.get(pos..pos + n) else {
            return Err("truncated NAL length field".into());
        };
        let len = lenb.iter().fold(0usize, |a, &b| (a << 8) | usize::from(b));
        pos += n;
        let Some(nal) = sample.get(pos..pos + len) else {
            return Err(format!(
                "NAL of {len} bytes overruns the {}-byte sample (Annex-B start codes?)",
                sample.len()
            ));
        };
        if let Some(h) = nal.first() {
            let t = h & 0x1f;
            idr |= t == 5;
            if types.len() < 8 {
                types.push(t);
            }
        }
        pos += len;
    }
    if idr {
        Ok(())
    } else {
        Err(format!("no IDR NAL unit (NAL types {types:?})"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idr_check_walks_avcc_nal_units() {
        // SEI (6) then IDR (5), 4-byte lengths.
        let s = [0, 0, 0, 2, 6, 0, 0, 0, 0, 3, 0x65, 1, 2];
        assert!(check_idr(&s, 4).is_ok());
        let p = [0, 0, 0, 2, 0x41, 0];
        assert!(check_idr(&p, 4).unwrap_err().contains("no IDR"));
        let annexb = [0, 0, 0, 1, 0x65, 0x88, 0x84];
        assert!(check_idr(&annexb, 4).is_err());
    }

    #[test]
    fn fragment_before_header_is_412() {
        let mut v = IngestValidator::new(1 << 20);
        v.push(&[0, 0, 0, 8, b'm', b'o', b'o', b'f']);
        let e = v.poll().unwrap_err();
        assert_eq!(e.status, Some(412));
        assert_eq!(e.kind, ViolationKind::FragmentBeforeHeader);
    }

    #[test]
    fn garbage_is_400_and_validator_stays_failed() {
        let mut v = IngestValidator::new(1 << 20);
        v.push(b"\x00\x00\x00\x02garbage garbage");
        let e = v.poll().unwrap_err();
        assert_eq!(e.status, Some(400));
        v.push(b"more");
        assert!(v.poll().unwrap().is_none());
    }
}
