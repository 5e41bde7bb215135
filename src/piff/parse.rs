//! Parser of live PIFF streams: box headers, an incremental top-level splitter, and the boxes we
//! write (ftyp, live server manifest, moov, moof) — also as written by third parties (FFmpeg).
//!
//! Input is untrusted (it arrives from the network in the sink): nothing here panics, every
//! count is checked against the bytes that carry it before anything is allocated, and the
//! incremental splitter refuses boxes above a caller-chosen size before buffering them.
//! Offsets in errors are relative to the start of the buffer handed in (stream offsets for
//! [`BoxSplitter`]).

use std::collections::BTreeMap;
use std::ops::Range;

use bytes::{Bytes, BytesMut};

use super::boxes::{LIVE_SERVER_MANIFEST_UUID, STREAM_MANIFEST_UUID, TFRF_UUID, TFXD_UUID};
use super::{PiffError, SampleEntry};

/// Upper bound on samples per `traf` (all `trun`s together). A 2 s fragment holds a few hundred
/// samples; the bound only stops a `trun` without per-sample fields from claiming billions.
pub const MAX_SAMPLES_PER_TRAF: u32 = 1 << 20;

/// Upper bound on XML nodes in a live server manifest (a manifest has ~15 per track).
const MAX_MANIFEST_NODES: u32 = 100_000;

/// Default track timescale when a manifest track has no `timescale` param (MS-SSTR 2.2.7.3.1).
pub const DEFAULT_MANIFEST_TIMESCALE: u32 = 10_000_000;

fn malformed(offset: u64, what: impl Into<String>) -> PiffError {
    PiffError::Malformed {
        offset,
        what: what.into(),
    }
}

/// A fourcc as printable text: ASCII graphic characters and space as-is, other bytes as `\xNN`.
pub fn fourcc_str(f: &[u8; 4]) -> String {
    let mut s = String::with_capacity(4);
    for &b in f {
        if b.is_ascii_graphic() || b == b' ' {
            s.push(b as char);
        } else {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    s
}

/// Name of a `uuid` box as used in [`Traf::children`] and [`ParsedStream::top_level`]:
/// `uuid:tfxd`, `uuid:tfrf`, `uuid:live-manifest`, `uuid:stream-manifest`, else `uuid:<hex>`.
pub fn uuid_name(usertype: &[u8; 16]) -> String {
    match *usertype {
        TFXD_UUID => "uuid:tfxd".into(),
        TFRF_UUID => "uuid:tfrf".into(),
        LIVE_SERVER_MANIFEST_UUID => "uuid:live-manifest".into(),
        STREAM_MANIFEST_UUID => "uuid:stream-manifest".into(),
        u => format!("uuid:{}", hex::encode(u)),
    }
}

/// The header of one box (ISO/IEC 14496-12 §4.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BoxHeader {
    /// Box type.
    pub fourcc: [u8; 4],
    /// Size of the whole box including this header, in bytes.
    pub size: u64,
    /// Header length: 8, 16 with a 64-bit largesize, plus 16 for a `uuid` usertype.
    pub header_len: u8,
    /// The extended type of a `uuid` box.
    pub usertype: Option<[u8; 16]>,
}

impl BoxHeader {
    /// Printable name: the fourcc, or [`uuid_name`] for `uuid` boxes.
    pub fn name(&self) -> String {
        match &self.usertype {
            Some(u) => uuid_name(u),
            None => fourcc_str(&self.fourcc),
        }
    }
}

/// Reads a box header from the start of `b`. `Ok(None)`: more bytes are needed.
///
/// # Errors
/// Sizes smaller than the header, and size 0 ("box extends to end of file", ISO/IEC 14496-12
/// §4.2): meaningless in a stream that has no end.
pub fn read_box_header(b: &[u8]) -> Result<Option<BoxHeader>, PiffError> {
    header_at(b, 0)
}

fn header_at(b: &[u8], offset: u64) -> Result<Option<BoxHeader>, PiffError> {
    let Some(head) = b.get(..8) else {
        return Ok(None);
    };
    let size32 = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    let fourcc = [head[4], head[5], head[6], head[7]];
    let (size, mut header_len) = match size32 {
        0 => {
            return Err(malformed(
                offset,
                format!(
                    "box '{}' has size 0 (to end of file), not allowed in a stream",
                    fourcc_str(&fourcc)
                ),
            ))
        }
        1 => {
            let Some(large) = b.get(8..16) else {
                return Ok(None);
            };
            let mut l = [0u8; 8];
            l.copy_from_slice(large);
            (u64::from_be_bytes(l), 16u8)
        }
        s => (u64::from(s), 8u8),
    };
    let mut usertype = None;
    if &fourcc == b"uuid" {
        let at = usize::from(header_len);
        let Some(u) = b.get(at..at + 16) else {
            if size < u64::from(header_len) + 16 {
                return Err(malformed(offset, format!("uuid box of {size} bytes")));
            }
            return Ok(None);
        };
        let mut t = [0u8; 16];
        t.copy_from_slice(u);
        usertype = Some(t);
        header_len += 16;
    }
    if size < u64::from(header_len) {
        return Err(malformed(
            offset,
            format!(
                "box '{}' claims {size} bytes, less than its {header_len}-byte header",
                fourcc_str(&fourcc)
            ),
        ));
    }
    Ok(Some(BoxHeader {
        fourcc,
        size,
        header_len,
        usertype,
    }))
}

/// Splits a byte stream arriving in arbitrary chunks into complete top-level boxes.
///
/// Memory is bounded by `max_box_size` plus the largest chunk pushed: a box announcing more is
/// refused as soon as its header is readable. After an error the splitter stays failed.
#[derive(Debug)]
pub struct BoxSplitter {
    buf: BytesMut,
    max_box_size: u64,
    offset: u64,
    failed: Option<PiffError>,
}

impl BoxSplitter {
    /// A splitter refusing boxes larger than `max_box_size` bytes (header included).
    pub fn new(max_box_size: u64) -> Self {
        Self {
            buf: BytesMut::new(),
            max_box_size,
            offset: 0,
            failed: None,
        }
    }

    /// Appends received bytes. Ignored once the splitter has failed.
    pub fn push(&mut self, data: &[u8]) {
        if self.failed.is_none() {
            self.buf.extend_from_slice(data);
        }
    }

    /// The next complete top-level box (header, whole box bytes), `Ok(None)` if more data is
    /// needed.
    ///
    /// # Errors
    /// [`PiffError::TooLarge`] for a box above the limit, [`PiffError::Malformed`] for an
    /// invalid header; the same error is returned on every later call.
    pub fn next_box(&mut self) -> Result<Option<(BoxHeader, Bytes)>, PiffError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let h = match header_at(&self.buf, self.offset) {
            Ok(Some(h)) => h,
            Ok(None) => return Ok(None),
            Err(e) => return Err(self.fail(e)),
        };
        if h.size > self.max_box_size {
            let e = PiffError::TooLarge {
                offset: self.offset,
                fourcc: h.name(),
                size: h.size,
                limit: self.max_box_size,
            };
            return Err(self.fail(e));
        }
        // size <= max_box_size, which the caller chose to be addressable.
        let size = usize::try_from(h.size).unwrap_or(usize::MAX);
        if self.buf.len() < size {
            self.buf.reserve(size - self.buf.len());
            return Ok(None);
        }
        let whole = self.buf.split_to(size).freeze();
        self.offset += h.size;
        Ok(Some((h, whole)))
    }

    fn fail(&mut self, e: PiffError) -> PiffError {
        self.buf = BytesMut::new();
        self.failed = Some(e.clone());
        e
    }

    /// Bytes received but not yet returned as a box.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Stream offset of the next box to be returned.
    pub fn offset(&self) -> u64 {
        self.offset
    }
}

/// Byte cursor over a box body with absolute offsets for errors.
struct Cur<'a> {
    b: &'a [u8],
    pos: usize,
    base: u64,
}

impl<'a> Cur<'a> {
    fn new(b: &'a [u8], base: u64) -> Self {
        Self { b, pos: 0, base }
    }

    fn at(&self) -> u64 {
        self.base + self.pos as u64
    }

    fn remaining(&self) -> usize {
        self.b.len() - self.pos
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], PiffError> {
        match self.b.get(self.pos..self.pos.saturating_add(n)) {
            Some(s) if self.pos.checked_add(n).is_some() => {
                self.pos += n;
                Ok(s)
            }
            _ => Err(malformed(
                self.at(),
                format!(
                    "truncated {what}: need {n} bytes, {} left",
                    self.remaining()
                ),
            )),
        }
    }

    fn arr<const N: usize>(&mut self, what: &str) -> Result<[u8; N], PiffError> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u8(&mut self, what: &str) -> Result<u8, PiffError> {
        Ok(self.arr::<1>(what)?[0])
    }
    fn u16(&mut self, what: &str) -> Result<u16, PiffError> {
        Ok(u16::from_be_bytes(self.arr(what)?))
    }
    fn u32(&mut self, what: &str) -> Result<u32, PiffError> {
        Ok(u32::from_be_bytes(self.arr(what)?))
    }
    fn i32(&mut self, what: &str) -> Result<i32, PiffError> {
        Ok(i32::from_be_bytes(self.arr(what)?))
    }
    fn u64(&mut self, what: &str) -> Result<u64, PiffError> {
        Ok(u64::from_be_bytes(self.arr(what)?))
    }
    fn skip(&mut self, n: usize, what: &str) -> Result<(), PiffError> {
        self.take(n, what).map(|_| ())
    }
    /// FullBox version and flags.
    fn version_flags(&mut self, what: &str) -> Result<(u8, u32), PiffError> {
        let v = self.u32(what)?;
        Ok(((v >> 24) as u8, v & 0x00FF_FFFF))
    }
}

/// One box inside a buffer.
struct BoxRef<'a> {
    h: BoxHeader,
    /// The whole box.
    data: &'a [u8],
    /// Absolute offset of the box start.
    offset: u64,
}

impl<'a> BoxRef<'a> {
    fn body(&self) -> Cur<'a> {
        let hl = usize::from(self.h.header_len);
        Cur::new(&self.data[hl..], self.offset + hl as u64)
    }
    fn name(&self) -> String {
        self.h.name()
    }
}

/// Iterates over the boxes packed back to back in `b` (a box body).
struct Children<'a> {
    b: &'a [u8],
    pos: usize,
    base: u64,
    failed: bool,
}

fn children<'a>(c: &Cur<'a>) -> Children<'a> {
    Children {
        b: &c.b[c.pos..],
        pos: 0,
        base: c.at(),
        failed: false,
    }
}

fn children_of<'a>(b: &'a [u8], base: u64) -> Children<'a> {
    Children {
        b,
        pos: 0,
        base,
        failed: false,
    }
}

impl<'a> Iterator for Children<'a> {
    type Item = Result<BoxRef<'a>, PiffError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.b.len() {
            return None;
        }
        let rest = &self.b[self.pos..];
        let offset = self.base + self.pos as u64;
        let r = match header_at(rest, offset) {
            Ok(Some(h)) if h.size <= rest.len() as u64 => {
                let size = h.size as usize;
                self.pos += size;
                Ok(BoxRef {
                    data: &rest[..size],
                    h,
                    offset,
                })
            }
            Ok(Some(h)) => Err(malformed(
                offset,
                format!(
                    "box '{}' of {} bytes overruns its container ({} bytes left)",
                    h.name(),
                    h.size,
                    rest.len()
                ),
            )),
            Ok(None) => Err(malformed(
                offset,
                format!("truncated box header ({} bytes left)", rest.len()),
            )),
            Err(e) => Err(e),
        };
        if r.is_err() {
            self.failed = true;
        }
        Some(r)
    }
}

/// Checks that `b` is exactly one box of type `fourcc` and returns it.
fn whole_box<'a>(b: &'a [u8], fourcc: &[u8; 4]) -> Result<BoxRef<'a>, PiffError> {
    let h = header_at(b, 0)?.ok_or_else(|| malformed(0, "truncated box header"))?;
    if &h.fourcc != fourcc {
        return Err(malformed(
            0,
            format!(
                "expected '{}', found '{}'",
                fourcc_str(fourcc),
                fourcc_str(&h.fourcc)
            ),
        ));
    }
    if h.size != b.len() as u64 {
        return Err(malformed(
            0,
            format!(
                "box '{}' claims {} bytes but {} were given",
                h.name(),
                h.size,
                b.len()
            ),
        ));
    }
    Ok(BoxRef {
        h,
        data: b,
        offset: 0,
    })
}

/// Contents of an `ftyp` (ISO/IEC 14496-12 §4.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ftyp {
    /// major_brand, e.g. `isml`.
    pub major: [u8; 4],
    /// minor_version (MS-SSTR: 1; FFmpeg writes 512).
    pub minor: u32,
    /// compatible_brands in order.
    pub compatible: Vec<[u8; 4]>,
}

/// Parses one whole `ftyp` box.
pub fn parse_ftyp(b: &[u8]) -> Result<Ftyp, PiffError> {
    let bx = whole_box(b, b"ftyp")?;
    let mut c = bx.body();
    let major = c.arr("ftyp major_brand")?;
    let minor = c.u32("ftyp minor_version")?;
    if c.remaining() % 4 != 0 {
        return Err(malformed(
            c.at(),
            "ftyp compatible_brands not a multiple of 4 bytes",
        ));
    }
    let mut compatible = Vec::with_capacity(c.remaining() / 4);
    while c.remaining() > 0 {
        compatible.push(c.arr("ftyp compatible brand")?);
    }
    Ok(Ftyp {
        major,
        minor,
        compatible,
    })
}

/// Which element a manifest track came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ManifestTrackKind {
    /// `<video>`
    Video,
    /// `<audio>`
    Audio,
    /// `<textstream>` (sparse tracks)
    Text,
}

/// One track element of a live server manifest (MS-SSTR 2.2.7.3.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestTrack {
    /// Element name.
    pub kind: ManifestTrackKind,
    /// `systemBitrate` attribute, bits/s.
    pub system_bitrate: u32,
    /// `<param name=… value=…>` children (last one wins for repeated names).
    pub params: BTreeMap<String, String>,
}

impl ManifestTrack {
    /// Value of the param `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    /// The `trackID` param, `None` if absent or not a number.
    pub fn track_id(&self) -> Option<u32> {
        self.param("trackID")?.trim().parse().ok()
    }

    /// The `trackName` param, defaulting to `video`/`audio`/`textstream` (MS-SSTR 2.2.7.3.1).
    pub fn track_name(&self) -> String {
        match self.param("trackName") {
            Some(n) => n.to_owned(),
            None => match self.kind {
                ManifestTrackKind::Video => "video".into(),
                ManifestTrackKind::Audio => "audio".into(),
                ManifestTrackKind::Text => "textstream".into(),
            },
        }
    }

    /// The `timescale` param (ticks/s of this track's media time), default 10 000 000; an
    /// unparsable value also yields the default.
    pub fn timescale(&self) -> u32 {
        self.param("timescale")
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(DEFAULT_MANIFEST_TIMESCALE)
    }

    /// The `FourCC` param (`H264`, `AACL`, …).
    pub fn fourcc(&self) -> Option<&str> {
        self.param("FourCC")
    }

    /// The `CodecPrivateData` param as text (hex).
    pub fn codec_private_data_hex(&self) -> Option<&str> {
        self.param("CodecPrivateData")
    }

    /// The `CodecPrivateData` param decoded from hex (either case); `None` if absent or not hex.
    pub fn codec_private_data(&self) -> Option<Vec<u8>> {
        hex::decode(self.param("CodecPrivateData")?.trim()).ok()
    }
}

/// A parsed LiveServerManifestBox (MS-SSTR 2.2.7.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveManifest {
    /// Box version (FFmpeg 0, ASTool 1).
    pub version: u8,
    /// The SMIL document, decoded to UTF-8 text.
    pub xml: String,
    /// Track elements in document order.
    pub tracks: Vec<ManifestTrack>,
}

/// Parses one whole LiveServerManifestBox (`uuid` A5D40B30-…): version 0 or 1, XML in UTF-8
/// (optionally with BOM) or UTF-16 with BOM, root `smil`, tracks under `body/switch`.
pub fn parse_live_manifest(b: &[u8]) -> Result<LiveManifest, PiffError> {
    let bx = whole_box(b, b"uuid")?;
    if bx.h.usertype != Some(LIVE_SERVER_MANIFEST_UUID) {
        return Err(malformed(
            8,
            format!("not a live server manifest: {}", bx.name()),
        ));
    }
    let mut c = bx.body();
    let (version, _flags) = c.version_flags("live manifest version/flags")?;
    if version > 1 {
        return Err(malformed(
            c.at() - 4,
            format!("live manifest version {version}"),
        ));
    }
    let xml_at = c.at();
    let xml = decode_xml_text(&c.b[c.pos..], xml_at)?;
    let opts = roxmltree::ParsingOptions {
        allow_dtd: false,
        nodes_limit: MAX_MANIFEST_NODES,
    };
    let doc = roxmltree::Document::parse_with_options(&xml, opts)
        .map_err(|e| malformed(xml_at, format!("live manifest XML: {e}")))?;
    let root = doc.root_element();
    if root.tag_name().name() != "smil" {
        return Err(malformed(
            xml_at,
            format!(
                "live manifest root is <{}>, not <smil>",
                root.tag_name().name()
            ),
        ));
    }
    let mut tracks = Vec::new();
    let body = root.children().find(|n| n.has_tag_name("body"));
    for switch in body
        .iter()
        .flat_map(|b| b.children())
        .filter(|n| n.has_tag_name("switch"))
    {
        for el in switch.children().filter(|n| n.is_element()) {
            let kind = match el.tag_name().name() {
                "video" => ManifestTrackKind::Video,
                "audio" => ManifestTrackKind::Audio,
                "textstream" => ManifestTrackKind::Text,
                _ => continue,
            };
            let system_bitrate = el
                .attribute("systemBitrate")
                .ok_or_else(|| {
                    malformed(
                        xml_at,
                        format!("<{}> without systemBitrate", el.tag_name().name()),
                    )
                })?
                .trim()
                .parse()
                .map_err(|_| malformed(xml_at, "systemBitrate is not a 32-bit number"))?;
            let params = el
                .children()
                .filter(|n| n.has_tag_name("param"))
                .filter_map(|p| {
                    Some((
                        p.attribute("name")?.to_owned(),
                        p.attribute("value")?.to_owned(),
                    ))
                })
                .collect();
            tracks.push(ManifestTrack {
                kind,
                system_bitrate,
                params,
            });
        }
    }
    Ok(LiveManifest {
        version,
        xml,
        tracks,
    })
}

/// XML bytes → text: UTF-16 LE/BE with BOM, else UTF-8 (BOM optional). Trailing NULs (some
/// writers terminate the document) are dropped.
fn decode_xml_text(b: &[u8], at: u64) -> Result<String, PiffError> {
    let utf16 = |b: &[u8], le: bool| -> Result<String, PiffError> {
        if !b.len().is_multiple_of(2) {
            return Err(malformed(at, "UTF-16 manifest with an odd byte count"));
        }
        let units = b.chunks_exact(2).map(|p| {
            if le {
                u16::from_le_bytes([p[0], p[1]])
            } else {
                u16::from_be_bytes([p[0], p[1]])
            }
        });
        char::decode_utf16(units)
            .collect::<Result<String, _>>()
            .map_err(|_| malformed(at, "invalid UTF-16 in live manifest"))
    };
    let mut s = match b {
        [0xFF, 0xFE, rest @ ..] => utf16(rest, true)?,
        [0xFE, 0xFF, rest @ ..] => utf16(rest, false)?,
        _ => {
            let rest = b.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(b);
            String::from_utf8(rest.to_vec())
                .map_err(|e| malformed(at, format!("live manifest is not UTF-8: {e}")))?
        }
    };
    while s.ends_with('\0') {
        s.pop();
    }
    Ok(s)
}

/// The parts of a `moov` an ingest receiver needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Moov {
    /// `mvhd.timescale`.
    pub timescale: u32,
    /// One entry per `trak`, in order.
    pub tracks: Vec<MoovTrack>,
    /// `track_ID` of each `mvex/trex`, in order.
    pub trex_track_ids: Vec<u32>,
}

/// One `trak` of a `moov`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MoovTrack {
    /// `tkhd.track_ID`.
    pub track_id: u32,
    /// `hdlr.handler_type` (`vide`, `soun`, …).
    pub handler: [u8; 4],
    /// `mdhd.timescale`: ticks/s of this track's media time.
    pub timescale: u32,
    /// `tkhd` width (integer part of 16.16), 0 for audio.
    pub width: u32,
    /// `tkhd` height (integer part of 16.16), 0 for audio.
    pub height: u32,
    /// Type of the first sample entry in `stsd` (`avc1`, `mp4a`, …).
    pub sample_entry: [u8; 4],
    /// From `avcC`: first SPS, first PPS, NAL length size in bytes.
    pub avc: Option<(Vec<u8>, Vec<u8>, u8)>,
    /// From `esds`: the AudioSpecificConfig (DecoderSpecificInfo).
    pub aac_asc: Option<Vec<u8>>,
    /// Audio sample entry channelcount (0 for video).
    pub channels: u16,
    /// Audio sample entry samplerate (integer part of 16.16; 0 for video).
    pub sample_rate: u32,
}

/// Parses one whole `moov` box.
pub fn parse_moov(b: &[u8]) -> Result<Moov, PiffError> {
    let bx = whole_box(b, b"moov")?;
    let mut timescale = None;
    let mut tracks = Vec::new();
    let mut trex_track_ids = Vec::new();
    for child in children(&bx.body()) {
        let child = child?;
        match &child.h.fourcc {
            b"mvhd" => {
                let mut c = child.body();
                let (v, _) = c.version_flags("mvhd")?;
                c.skip(if v == 1 { 16 } else { 8 }, "mvhd times")?;
                timescale = Some(c.u32("mvhd timescale")?);
            }
            b"trak" => tracks.push(parse_trak(&child)?),
            b"mvex" => {
                for t in children(&child.body()) {
                    let t = t?;
                    if &t.h.fourcc == b"trex" {
                        let mut c = t.body();
                        c.version_flags("trex")?;
                        trex_track_ids.push(c.u32("trex track_ID")?);
                    }
                }
            }
            _ => {}
        }
    }
    Ok(Moov {
        timescale: timescale.ok_or_else(|| malformed(0, "moov without mvhd"))?,
        tracks,
        trex_track_ids,
    })
}

fn find_child<'a>(parent: &BoxRef<'a>, fourcc: &[u8; 4]) -> Result<BoxRef<'a>, PiffError> {
    for c in children(&parent.body()) {
        let c = c?;
        if &c.h.fourcc == fourcc {
            return Ok(c);
        }
    }
    Err(malformed(
        parent.offset,
        format!("'{}' without '{}'", parent.name(), fourcc_str(fourcc)),
    ))
}

fn parse_trak(trak: &BoxRef<'_>) -> Result<MoovTrack, PiffError> {
    let tkhd = find_child(trak, b"tkhd")?;
    let mut c = tkhd.body();
    let (v, _) = c.version_flags("tkhd")?;
    c.skip(if v == 1 { 16 } else { 8 }, "tkhd times")?;
    let track_id = c.u32("tkhd track_ID")?;
    // reserved, duration (32/64-bit), reserved[2], layer, alternate_group, volume, reserved,
    // matrix.
    let duration_len = if v == 1 { 8 } else { 4 };
    c.skip(4 + duration_len + 8 + 8 + 36, "tkhd fields")?;
    let width = c.u32("tkhd width")? >> 16;
    let height = c.u32("tkhd height")? >> 16;

    let mdia = find_child(trak, b"mdia")?;
    let mdhd = find_child(&mdia, b"mdhd")?;
    let mut c = mdhd.body();
    let (v, _) = c.version_flags("mdhd")?;
    c.skip(if v == 1 { 16 } else { 8 }, "mdhd times")?;
    let timescale = c.u32("mdhd timescale")?;

    let hdlr = find_child(&mdia, b"hdlr")?;
    let mut c = hdlr.body();
    c.version_flags("hdlr")?;
    c.skip(4, "hdlr pre_defined")?;
    let handler = c.arr("hdlr handler_type")?;

    let stbl = find_child(&find_child(&mdia, b"minf")?, b"stbl")?;
    let stsd = find_child(&stbl, b"stsd")?;
    let mut c = stsd.body();
    c.version_flags("stsd")?;
    let count = c.u32("stsd entry_count")?;
    let entry = children(&c)
        .next()
        .filter(|_| count > 0)
        .ok_or_else(|| malformed(stsd.offset, "stsd without a sample entry"))??;

    let mut t = MoovTrack {
        track_id,
        handler,
        timescale,
        width,
        height,
        sample_entry: entry.h.fourcc,
        avc: None,
        aac_asc: None,
        channels: 0,
        sample_rate: 0,
    };
    let mut c = entry.body();
    match &entry.h.fourcc {
        b"avc1" | b"avc3" | b"encv" => {
            c.skip(78, "visual sample entry")?;
            for ch in children(&c) {
                let ch = ch?;
                if &ch.h.fourcc == b"avcC" {
                    t.avc = Some(parse_avcc(ch.body())?);
                }
            }
        }
        b"mp4a" | b"enca" => {
            c.skip(8, "audio sample entry")?;
            // QuickTime-style sound description versions 1 and 2 carry extra fields.
            let qt_version = c.u16("audio sample entry version")?;
            c.skip(6, "audio sample entry")?;
            t.channels = c.u16("channelcount")?;
            c.skip(6, "audio sample entry")?;
            t.sample_rate = c.u32("samplerate")? >> 16;
            c.skip(
                match qt_version {
                    1 => 16,
                    2 => 36,
                    _ => 0,
                },
                "sound description extension",
            )?;
            for ch in children(&c) {
                let ch = ch?;
                if &ch.h.fourcc == b"esds" {
                    t.aac_asc = parse_esds(ch.body())?;
                }
            }
        }
        _ => {}
    }
    Ok(t)
}

/// avcC (ISO/IEC 14496-15 §5.3.3.1) → (first SPS, first PPS, NAL length size).
fn parse_avcc(mut c: Cur<'_>) -> Result<(Vec<u8>, Vec<u8>, u8), PiffError> {
    let version = c.u8("avcC configurationVersion")?;
    if version != 1 {
        return Err(malformed(c.at() - 1, format!("avcC version {version}")));
    }
    c.skip(3, "avcC profile/level")?;
    let length_size = (c.u8("avcC lengthSizeMinusOne")? & 3) + 1;
    let first = |c: &mut Cur<'_>, count: usize, what: &str| -> Result<Vec<u8>, PiffError> {
        let mut out = None;
        for _ in 0..count {
            let len = usize::from(c.u16(what)?);
            let nal = c.take(len, what)?;
            out.get_or_insert_with(|| nal.to_vec());
        }
        out.ok_or_else(|| malformed(c.at(), format!("avcC without {what}")))
    };
    let n_sps = usize::from(c.u8("avcC numOfSequenceParameterSets")? & 0x1F);
    let sps = first(&mut c, n_sps, "SPS")?;
    let n_pps = usize::from(c.u8("avcC numOfPictureParameterSets")?);
    let pps = first(&mut c, n_pps, "PPS")?;
    Ok((sps, pps, length_size))
}

/// Reads a descriptor header (ISO/IEC 14496-1 §8.3.3): tag and expandable size.
fn descriptor(c: &mut Cur<'_>) -> Result<(u8, usize), PiffError> {
    let tag = c.u8("descriptor tag")?;
    let mut size = 0usize;
    for _ in 0..4 {
        let b = c.u8("descriptor size")?;
        size = (size << 7) | usize::from(b & 0x7F);
        if b & 0x80 == 0 {
            return Ok((tag, size));
        }
    }
    Err(malformed(c.at(), "descriptor size longer than 4 bytes"))
}

/// esds → the DecoderSpecificInfo (AudioSpecificConfig), if any.
fn parse_esds(mut c: Cur<'_>) -> Result<Option<Vec<u8>>, PiffError> {
    c.version_flags("esds")?;
    let (tag, len) = descriptor(&mut c)?;
    if tag != 0x03 {
        return Err(malformed(
            c.at(),
            format!("esds starts with descriptor tag {tag}, not 3"),
        ));
    }
    let base = c.at();
    let mut es = Cur::new(c.take(len, "ES_Descriptor")?, base);
    es.skip(2, "ES_ID")?;
    let flags = es.u8("ES_Descriptor flags")?;
    if flags & 0x80 != 0 {
        es.skip(2, "dependsOn_ES_ID")?;
    }
    if flags & 0x40 != 0 {
        let n = usize::from(es.u8("URLlength")?);
        es.skip(n, "URLstring")?;
    }
    if flags & 0x20 != 0 {
        es.skip(2, "OCR_ES_Id")?;
    }
    while es.remaining() > 0 {
        let (tag, len) = descriptor(&mut es)?;
        let base = es.at();
        let body = es.take(len, "descriptor")?;
        if tag != 0x04 {
            continue;
        }
        let mut dcd = Cur::new(body, base);
        dcd.skip(13, "DecoderConfigDescriptor")?;
        while dcd.remaining() > 0 {
            let (tag, len) = descriptor(&mut dcd)?;
            let dsi = dcd.take(len, "DecoderSpecificInfo")?;
            if tag == 0x05 {
                return Ok(Some(dsi.to_vec()));
            }
        }
    }
    Ok(None)
}

/// The fragment extended header (MS-SSTR 2.2.4.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tfxd {
    /// Box version: 1 = 64-bit fields, 0 = 32-bit.
    pub version: u8,
    /// fragment_absolute_time in the track timescale (media time of the first sample).
    pub absolute_time: u64,
    /// fragment_duration in the track timescale.
    pub duration: u64,
}

/// One `traf` with defaults resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Traf {
    /// `tfhd.track_ID`.
    pub track_id: u32,
    /// `tfhd` flags as sent (0x000020 for ours).
    pub tfhd_flags: u32,
    /// `tfhd.base_data_offset` if present (it must not be in ingest).
    pub base_data_offset: Option<u64>,
    /// `tfhd.default_sample_duration` (track ticks) if present.
    pub default_sample_duration: Option<u32>,
    /// `tfhd.default_sample_size` if present.
    pub default_sample_size: Option<u32>,
    /// `tfhd.default_sample_flags` if present.
    pub default_sample_flags: Option<u32>,
    /// `data_offset` of the first `trun`, relative to the moof start when there is no base
    /// offset.
    pub data_offset: Option<i32>,
    /// Version of the first `trun` (1 = signed composition offsets).
    pub trun_version: u8,
    /// Samples of all `trun`s with effective values (per-sample, first-sample or tfhd default;
    /// 0 where nothing applies); durations and offsets in track ticks.
    pub samples: Vec<SampleEntry>,
    /// The `tfxd` if present.
    pub tfxd: Option<Tfxd>,
    /// `tfdt.baseMediaDecodeTime` (track ticks) if present.
    pub tfdt: Option<u64>,
    /// Child box names in order: fourcc, or `uuid:tfxd` / `uuid:tfrf` / `uuid:<hex>`.
    pub children: Vec<String>,
}

/// A parsed `moof`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Moof {
    /// `mfhd.sequence_number`.
    pub sequence: u32,
    /// The `traf`s in order (exactly one in ingest streams).
    pub trafs: Vec<Traf>,
}

/// Parses one whole `moof` box.
pub fn parse_moof(b: &[u8]) -> Result<Moof, PiffError> {
    let bx = whole_box(b, b"moof")?;
    parse_moof_at(&bx)
}

fn parse_moof_at(bx: &BoxRef<'_>) -> Result<Moof, PiffError> {
    let mut sequence = None;
    let mut trafs = Vec::new();
    for child in children(&bx.body()) {
        let child = child?;
        match &child.h.fourcc {
            b"mfhd" => {
                let mut c = child.body();
                c.version_flags("mfhd")?;
                sequence = Some(c.u32("mfhd sequence_number")?);
            }
            b"traf" => trafs.push(parse_traf(&child)?),
            _ => {}
        }
    }
    Ok(Moof {
        sequence: sequence.ok_or_else(|| malformed(bx.offset, "moof without mfhd"))?,
        trafs,
    })
}

fn parse_traf(traf: &BoxRef<'_>) -> Result<Traf, PiffError> {
    let mut t = Traf {
        track_id: 0,
        tfhd_flags: 0,
        base_data_offset: None,
        default_sample_duration: None,
        default_sample_size: None,
        default_sample_flags: None,
        data_offset: None,
        trun_version: 0,
        samples: Vec::new(),
        tfxd: None,
        tfdt: None,
        children: Vec::new(),
    };
    let mut seen_tfhd = false;
    let mut seen_trun = false;
    for child in children(&traf.body()) {
        let child = child?;
        t.children.push(child.name());
        let mut c = child.body();
        match (&child.h.fourcc, child.h.usertype) {
            (b"tfhd", _) => {
                let (_, flags) = c.version_flags("tfhd")?;
                seen_tfhd = true;
                t.tfhd_flags = flags;
                t.track_id = c.u32("tfhd track_ID")?;
                if flags & 0x01 != 0 {
                    t.base_data_offset = Some(c.u64("tfhd base_data_offset")?);
                }
                if flags & 0x02 != 0 {
                    c.skip(4, "tfhd sample_description_index")?;
                }
                if flags & 0x08 != 0 {
                    t.default_sample_duration = Some(c.u32("tfhd default_sample_duration")?);
                }
                if flags & 0x10 != 0 {
                    t.default_sample_size = Some(c.u32("tfhd default_sample_size")?);
                }
                if flags & 0x20 != 0 {
                    t.default_sample_flags = Some(c.u32("tfhd default_sample_flags")?);
                }
            }
            (b"trun", _) => {
                if !seen_tfhd {
                    return Err(malformed(child.offset, "trun before tfhd"));
                }
                let first = !seen_trun;
                seen_trun = true;
                parse_trun(&mut c, &mut t, first)?;
            }
            (b"tfdt", _) => {
                let (v, _) = c.version_flags("tfdt")?;
                t.tfdt = Some(if v == 1 {
                    c.u64("tfdt baseMediaDecodeTime")?
                } else {
                    u64::from(c.u32("tfdt baseMediaDecodeTime")?)
                });
            }
            (b"uuid", Some(TFXD_UUID)) => {
                let (version, _) = c.version_flags("tfxd")?;
                t.tfxd = Some(match version {
                    1 => Tfxd {
                        version,
                        absolute_time: c.u64("tfxd fragment_absolute_time")?,
                        duration: c.u64("tfxd fragment_duration")?,
                    },
                    0 => Tfxd {
                        version,
                        absolute_time: u64::from(c.u32("tfxd fragment_absolute_time")?),
                        duration: u64::from(c.u32("tfxd fragment_duration")?),
                    },
                    v => return Err(malformed(child.offset, format!("tfxd version {v}"))),
                });
            }
            _ => {}
        }
    }
    if !seen_tfhd {
        return Err(malformed(traf.offset, "traf without tfhd"));
    }
    Ok(t)
}

fn parse_trun(c: &mut Cur<'_>, t: &mut Traf, first: bool) -> Result<(), PiffError> {
    let at = c.at();
    let (version, flags) = c.version_flags("trun")?;
    let count = c.u32("trun sample_count")?;
    let data_offset = if flags & 0x001 != 0 {
        Some(c.i32("trun data_offset")?)
    } else {
        None
    };
    let first_sample_flags = if flags & 0x004 != 0 {
        Some(c.u32("trun first_sample_flags")?)
    } else {
        None
    };
    if first {
        t.data_offset = data_offset;
        t.trun_version = version;
    }
    let has = |f: u32| flags & f != 0;
    let per_sample = 4 * [0x100, 0x200, 0x400, 0x800]
        .iter()
        .filter(|&&f| has(f))
        .count();
    let total = t.samples.len() as u64 + u64::from(count);
    if total > u64::from(MAX_SAMPLES_PER_TRAF) {
        return Err(malformed(
            at,
            format!("{total} samples in one traf (limit {MAX_SAMPLES_PER_TRAF})"),
        ));
    }
    // Check the claimed count against the bytes that must carry it before allocating.
    if (count as u64) * per_sample as u64 > c.remaining() as u64 {
        return Err(malformed(
            at,
            format!(
                "trun claims {count} samples of {per_sample} bytes but has {} bytes",
                c.remaining()
            ),
        ));
    }
    t.samples.reserve(count as usize);
    for i in 0..count {
        let duration = if has(0x100) {
            c.u32("sample_duration")?
        } else {
            t.default_sample_duration.unwrap_or(0)
        };
        let size = if has(0x200) {
            c.u32("sample_size")?
        } else {
            t.default_sample_size.unwrap_or(0)
        };
        let flags_v = if has(0x400) {
            c.u32("sample_flags")?
        } else {
            match first_sample_flags {
                Some(f) if i == 0 => f,
                _ => t.default_sample_flags.unwrap_or(0),
            }
        };
        // Version 0 offsets are unsigned; values above i32::MAX keep their bit pattern.
        let composition_offset = if has(0x800) {
            c.i32("sample_composition_time_offset")?
        } else {
            0
        };
        t.samples.push(SampleEntry {
            duration,
            size,
            flags: flags_v,
            composition_offset,
        });
    }
    Ok(())
}

/// A whole stream (POST body or archive file) split into its parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedStream {
    /// The leading `ftyp`.
    pub ftyp: Ftyp,
    /// The live server manifest, if the stream has one.
    pub manifest: Option<LiveManifest>,
    /// The `moov`.
    pub moov: Moov,
    /// Every `moof` + `mdat` pair in order.
    pub fragments: Vec<ParsedFragment>,
    /// True if the last top-level box is an `mfra` (end of stream).
    pub ends_with_mfra: bool,
    /// Names of all top-level boxes in order (fourcc or `uuid:…`, see [`uuid_name`]).
    pub top_level: Vec<String>,
}

/// One `moof` and the `mdat` after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedFragment {
    /// The parsed `moof`.
    pub moof: Moof,
    /// Size of the `moof` box in bytes.
    pub moof_size: u64,
    /// Byte range of the `mdat` payload (after its header) in the parsed input.
    pub mdat: Range<usize>,
}

/// Parses a whole stream: `ftyp`, optional `uuid` manifests, `moov`, (`moof` `mdat`)*,
/// optional `mfra`; other top-level boxes are listed in `top_level` and skipped.
pub fn parse_stream(b: &[u8]) -> Result<ParsedStream, PiffError> {
    let mut ftyp = None;
    let mut manifest = None;
    let mut moov = None;
    let mut fragments = Vec::new();
    let mut top_level = Vec::new();
    let mut pending_moof: Option<(Moof, u64, u64)> = None;
    for bx in children_of(b, 0) {
        let bx = bx?;
        top_level.push(bx.name());
        if ftyp.is_none() {
            if &bx.h.fourcc != b"ftyp" {
                return Err(malformed(
                    bx.offset,
                    format!("stream starts with '{}', not 'ftyp'", bx.name()),
                ));
            }
            ftyp = Some(parse_ftyp(bx.data)?);
            continue;
        }
        if let Some((moof, moof_size, at)) = pending_moof.take() {
            if &bx.h.fourcc != b"mdat" {
                return Err(malformed(
                    at,
                    format!("moof followed by '{}', not 'mdat'", bx.name()),
                ));
            }
            let start = bx.offset as usize + usize::from(bx.h.header_len);
            fragments.push(ParsedFragment {
                moof,
                moof_size,
                mdat: start..bx.offset as usize + bx.data.len(),
            });
            continue;
        }
        match (&bx.h.fourcc, bx.h.usertype) {
            (b"uuid", Some(LIVE_SERVER_MANIFEST_UUID)) => {
                let m = parse_live_manifest(bx.data).map_err(|e| e.shifted(bx.offset))?;
                manifest = Some(m);
            }
            (b"moov", _) => {
                if moov.is_some() {
                    return Err(malformed(bx.offset, "second moov"));
                }
                moov = Some(parse_moov(bx.data).map_err(|e| e.shifted(bx.offset))?);
            }
            (b"moof", _) => {
                if moov.is_none() {
                    return Err(malformed(bx.offset, "moof before moov"));
                }
                let moof = parse_moof_at(&bx)?;
                pending_moof = Some((moof, bx.h.size, bx.offset));
            }
            (b"mdat", _) => return Err(malformed(bx.offset, "mdat without a moof before it")),
            _ => {}
        }
    }
    if let Some((_, _, at)) = pending_moof {
        return Err(malformed(at, "moof at end of stream without mdat"));
    }
    let ftyp = ftyp.ok_or_else(|| malformed(0, "empty stream"))?;
    let moov = moov.ok_or_else(|| malformed(b.len() as u64, "stream without moov"))?;
    let ends_with_mfra = top_level.last().is_some_and(|n| n == "mfra");
    Ok(ParsedStream {
        ftyp,
        manifest,
        moov,
        fragments,
        ends_with_mfra,
        top_level,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_needs_more_bytes_then_reads_largesize_uuid() {
        assert_eq!(read_box_header(&[0, 0, 0]), Ok(None));
        let mut b = vec![0, 0, 0, 1, b'u', b'u', b'i', b'd', 0, 0, 0, 0, 0, 0, 0, 40];
        assert_eq!(read_box_header(&b), Ok(None));
        b.extend_from_slice(&TFXD_UUID);
        let h = read_box_header(&b).unwrap().unwrap();
        assert_eq!(h.size, 40);
        assert_eq!(h.header_len, 32);
        assert_eq!(h.usertype, Some(TFXD_UUID));
    }

    #[test]
    fn size_zero_and_undersized_boxes_are_rejected() {
        assert!(read_box_header(b"\0\0\0\0mdat").is_err());
        assert!(read_box_header(b"\0\0\0\x07free").is_err());
        assert!(read_box_header(b"\0\0\0\x10uuid").is_err());
    }

    #[test]
    fn trun_count_is_checked_before_allocating() {
        // trun with flags 0x301 claiming 2^31 samples but carrying none.
        let mut b = Vec::new();
        super::super::boxes::write_box(&mut b, b"moof", |b| {
            super::super::boxes::write_full_box(b, b"mfhd", 0, 0, |b| b.extend([0, 0, 0, 1]));
            super::super::boxes::write_box(b, b"traf", |b| {
                super::super::boxes::write_full_box(b, b"tfhd", 0, 0, |b| b.extend([0, 0, 0, 1]));
                super::super::boxes::write_full_box(b, b"trun", 0, 0x301, |b| {
                    b.extend([0x80, 0, 0, 0, 0, 0, 0, 0]);
                });
            });
        });
        assert!(matches!(parse_moof(&b), Err(PiffError::Malformed { .. })));
    }
}
