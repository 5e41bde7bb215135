//! The header boxes sent at the start of every ingest POST: `ftyp`, the LiveServerManifestBox
//! and an "empty" `moov` (protocol.md §2.1–2.5, MS-SSTR 2.2.7).
//!
//! Everything here is a pure function of its input, with no clock or counter inside, because the
//! same header must be resent byte-identically on every reconnect (protocol.md §1.6, §7 item 6)
//! and by every ganged encoder (§3.5).

use std::fmt::Write as _;

use super::boxes::{
    put_u16, put_u32, put_u8, put_zeros, write_box, write_full_box, write_uuid_box,
    LIVE_SERVER_MANIFEST_UUID,
};
use super::{TrackCodec, TrackInfo};
use crate::encode::{AacConfig, AvcConfig};

/// Timescale used for `mvhd` when there is no track at all (MS-SSTR 2.2.7.3.1 default).
const DEFAULT_TIMESCALE: u32 = 10_000_000;

/// Unity transformation matrix (ISO/IEC 14496-12 §8.2.2.3), shared by `mvhd` and `tkhd`.
const UNITY_MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

/// Writes the 24-byte `ftyp` (ISO/IEC 14496-12 §4.3; MS-SSTR 2.2.7.1): major `isml`, minor 1,
/// compatible `piff`, `iso2`.
///
/// Quirk: FFmpeg writes minor 512 and newer versions drop `iso2`; GStreamer drops `piff`.
/// MS-SSTR requires both brands, so we follow the spec and ASTool (protocol.md §2.2, §8.2).
pub fn write_ftyp(buf: &mut Vec<u8>) {
    write_box(buf, b"ftyp", |buf| {
        buf.extend_from_slice(b"isml");
        put_u32(buf, 1);
        buf.extend_from_slice(b"piff");
        buf.extend_from_slice(b"iso2");
    });
}

/// The 8-byte empty `mfra` sent as the end-of-stream marker (MS-SSTR 3.3.4.2: an `mfra` with
/// no `tfra` and no `mfro`; FFmpeg and fmp4ingest send exactly these bytes, protocol.md §2.9).
pub fn empty_mfra() -> [u8; 8] {
    [0, 0, 0, 8, b'm', b'f', b'r', b'a']
}

/// `CodecPrivateData` for H.264 (MS-SSTR 2.2.2.5): upper-case hex of
/// `00000001 <SPS> 00000001 <PPS>` — Annex-B start codes, unlike the length-prefixed samples.
///
/// Quirk: FFmpeg's ingest writer uses upper case and its on-disk smoothstreaming muxer lower
/// case; case is not significant, we match the ingest writer (protocol.md §4.1).
pub fn avc_codec_private_data(cfg: &AvcConfig) -> String {
    let mut out = String::with_capacity(16 + 2 * (cfg.sps.len() + cfg.pps.len()));
    out.push_str("00000001");
    push_hex_upper(&mut out, &cfg.sps);
    out.push_str("00000001");
    push_hex_upper(&mut out, &cfg.pps);
    out
}

/// `CodecPrivateData` for AAC: upper-case hex of the AudioSpecificConfig (e.g. `1190`).
///
/// Quirk: MS-SSTR 2.2.2.5 says the field SHOULD be empty for `AACL`, but FFmpeg and ASTool send
/// the ASC and servers use it, so we send it (protocol.md §4.2).
pub fn aac_codec_private_data(cfg: &AacConfig) -> String {
    let mut out = String::with_capacity(2 * cfg.asc.len());
    push_hex_upper(&mut out, &cfg.asc);
    out
}

/// Smooth `FourCC` for an AAC track from the AudioSpecificConfig's audioObjectType
/// (ISO/IEC 14496-3 §1.6.2.1): 5 (SBR) → `AACH`, 29 (PS) → `AACP`, anything else → `AACL`
/// (FFmpeg's mapping; protocol.md §4.2).
fn aac_fourcc(cfg: &AacConfig) -> &'static str {
    match cfg.asc.first().map(|b| b >> 3) {
        Some(5) => "AACH",
        Some(29) => "AACP",
        _ => "AACL",
    }
}

fn push_hex_upper(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
}

/// Escapes the five XML special characters for use in attribute values.
fn xml_escape(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains(['&', '<', '>', '"', '\'']) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// The SMIL document of the live server manifest (protocol.md §8.5 shape).
fn live_manifest_xml(tracks: &[TrackInfo], creator: &str) -> String {
    let mut x = String::with_capacity(512 + 1024 * tracks.len());
    x.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    x.push_str("<smil xmlns=\"http://www.w3.org/2001/SMIL20/Language\">\n");
    x.push_str("  <head>\n");
    // Writing into a String cannot fail; `let _` keeps the writer infallible without unwrap.
    let _ = writeln!(
        x,
        "    <meta name=\"creator\" content=\"{}\" />",
        xml_escape(creator)
    );
    x.push_str("  </head>\n  <body>\n    <switch>\n");
    for t in tracks {
        let element = match t.codec {
            TrackCodec::Avc(_) => "video",
            TrackCodec::Aac(_) => "audio",
        };
        let _ = writeln!(
            x,
            "      <{element} src=\"Streams\" systemBitrate=\"{}\">",
            t.bitrate
        );
        let mut param = |name: &str, value: &str| {
            let _ = writeln!(
                x,
                "        <param name=\"{name}\" value=\"{}\" valuetype=\"data\" />",
                xml_escape(value)
            );
        };
        param("trackID", &t.track_id.to_string());
        param("trackName", &t.track_name);
        param("timescale", &t.timescale.to_string());
        match &t.codec {
            TrackCodec::Avc(c) => {
                param("FourCC", "H264");
                param("CodecPrivateData", &avc_codec_private_data(c));
                let (w, h) = (c.width.to_string(), c.height.to_string());
                param("MaxWidth", &w);
                param("MaxHeight", &h);
                param("DisplayWidth", &w);
                param("DisplayHeight", &h);
            }
            TrackCodec::Aac(c) => {
                param("FourCC", aac_fourcc(c));
                param("CodecPrivateData", &aac_codec_private_data(c));
                param("AudioTag", "255");
                param("Channels", &c.channels.to_string());
                param("SamplingRate", &c.sample_rate.to_string());
                param("BitsPerSample", "16");
                param("PacketSize", "4");
            }
        }
        let _ = writeln!(x, "      </{element}>");
    }
    x.push_str("    </switch>\n  </body>\n</smil>\n");
    x
}

/// The LiveServerManifestBox (MS-SSTR 2.2.7.3): `uuid` A5D40B30-…, version 0, flags 0, then a
/// UTF-8 SMIL document with one `<video>`/`<audio>` element per track carried in this POST.
///
/// Quirks: version 0 as FFmpeg (ASTool writes 1; MS-SSTR leaves it free). UTF-8 with an
/// `encoding="utf-8"` declaration as FFmpeg/ASTool, although the MS-SSTR examples are UTF-16.
/// `src="Streams"` as MS-SSTR recommends (FFmpeg omits it, ASTool puts a file name). Audio gets
/// `AudioTag` 255 (WAVE tag of raw AAC), `BitsPerSample` 16 and `PacketSize` 4 like FFmpeg.
/// `creator` and track names are XML-escaped (protocol.md §2.4, §8.5).
pub fn live_server_manifest(tracks: &[TrackInfo], creator: &str) -> Vec<u8> {
    let xml = live_manifest_xml(tracks, creator);
    let mut buf = Vec::with_capacity(28 + xml.len());
    write_uuid_box(&mut buf, &LIVE_SERVER_MANIFEST_UUID, 0, 0, |buf| {
        buf.extend_from_slice(xml.as_bytes());
    });
    buf
}

/// The bytes sent at the start of every POST: `ftyp` + live server manifest + `moov`
/// (MS-SSTR 2.2.7: `FileType [StreamManifest] LiveServerManifest MoovBox`; no StreamManifestBox,
/// protocol.md §2.3). Byte-identical for identical input, so reconnects and ganged encoders
/// send the same header.
pub fn stream_header(tracks: &[TrackInfo], creator: &str) -> Vec<u8> {
    let manifest = live_server_manifest(tracks, creator);
    let mut buf = Vec::with_capacity(24 + manifest.len() + 256 + 512 * tracks.len());
    write_ftyp(&mut buf);
    buf.extend_from_slice(&manifest);
    write_moov(&mut buf, tracks);
    buf
}

/// Writes the "empty" `moov` of a live fragmented stream (ISO/IEC 14496-12 §8.2.1, §8.8.1;
/// MS-SSTR 2.2.7.4 only says "as ISO/IEC 14496-12"; layout after ASTool and FFmpeg,
/// protocol.md §2.5): `mvhd`, one `trak` per track with complete codec configuration and empty
/// sample tables, and `mvex` with one `trex` per track.
///
/// Quirk: the codec configuration (avcC with SPS/PPS, esds with the ASC) must be complete here,
/// because nothing later in the stream can carry it (protocol.md §7 item 14).
pub fn write_moov(buf: &mut Vec<u8>, tracks: &[TrackInfo]) {
    write_box(buf, b"moov", |buf| {
        write_mvhd(buf, tracks);
        for t in tracks {
            write_trak(buf, t);
        }
        write_box(buf, b"mvex", |buf| {
            for t in tracks {
                write_trex(buf, t.track_id);
            }
        });
    });
}

/// `mvhd` (ISO/IEC 14496-12 §8.2.2), version 0: times 0 (the header must not depend on when it
/// is written), timescale = the first track's timescale (as ASTool; FFmpeg uses 1000 — any value
/// works since the duration is 0), duration 0 (live: unknown), rate 1.0, volume 1.0,
/// next_track_ID = largest track_ID + 1.
fn write_mvhd(buf: &mut Vec<u8>, tracks: &[TrackInfo]) {
    let timescale = tracks.first().map_or(DEFAULT_TIMESCALE, |t| t.timescale);
    let next_track_id = tracks
        .iter()
        .map(|t| t.track_id)
        .max()
        .unwrap_or(0)
        .saturating_add(1);
    write_full_box(buf, b"mvhd", 0, 0, |buf| {
        put_u32(buf, 0); // creation_time
        put_u32(buf, 0); // modification_time
        put_u32(buf, timescale);
        put_u32(buf, 0); // duration
        put_u32(buf, 0x0001_0000); // rate 1.0
        put_u16(buf, 0x0100); // volume 1.0
        put_zeros(buf, 2 + 8); // reserved
        for m in UNITY_MATRIX {
            put_u32(buf, m);
        }
        put_zeros(buf, 6 * 4); // pre_defined
        put_u32(buf, next_track_id);
    });
}

fn write_trak(buf: &mut Vec<u8>, t: &TrackInfo) {
    write_box(buf, b"trak", |buf| {
        write_tkhd(buf, t);
        write_box(buf, b"mdia", |buf| {
            write_mdhd(buf, t.timescale);
            write_hdlr(buf, &t.codec);
            write_box(buf, b"minf", |buf| {
                match t.codec {
                    // vmhd (ISO/IEC 14496-12 §12.1.2): flags 1 is mandated by the spec.
                    TrackCodec::Avc(_) => write_full_box(buf, b"vmhd", 0, 1, |buf| {
                        put_zeros(buf, 2 + 3 * 2); // graphicsmode copy, opcolor 0
                    }),
                    // smhd (ISO/IEC 14496-12 §12.2.2): balance 0 (centre).
                    TrackCodec::Aac(_) => write_full_box(buf, b"smhd", 0, 0, |buf| {
                        put_zeros(buf, 4);
                    }),
                }
                write_dinf(buf);
                write_stbl(buf, &t.codec, t.bitrate);
            });
        });
    });
}

/// `tkhd` (ISO/IEC 14496-12 §8.3.2), version 0, flags 7 (enabled | in_movie | in_preview, as
/// ASTool): track_ID == the manifest's `trackID` param (MS-SSTR 2.2.7.3.1), duration 0,
/// volume 1.0 for audio and 0 for video, width/height in 16.16 fixed point for video.
fn write_tkhd(buf: &mut Vec<u8>, t: &TrackInfo) {
    let (volume, width, height) = match &t.codec {
        TrackCodec::Avc(c) => (0u16, c.width, c.height),
        TrackCodec::Aac(_) => (0x0100, 0, 0),
    };
    write_full_box(buf, b"tkhd", 0, 0x000007, |buf| {
        put_u32(buf, 0); // creation_time
        put_u32(buf, 0); // modification_time
        put_u32(buf, t.track_id);
        put_u32(buf, 0); // reserved
        put_u32(buf, 0); // duration
        put_zeros(buf, 8); // reserved
        put_u16(buf, 0); // layer
        put_u16(buf, 0); // alternate_group
        put_u16(buf, volume);
        put_u16(buf, 0); // reserved
        for m in UNITY_MATRIX {
            put_u32(buf, m);
        }
        put_u32(buf, fixed_16_16(width));
        put_u32(buf, fixed_16_16(height));
    });
}

/// Integer → 16.16 fixed point, saturating (sizes above 65535 cannot be expressed).
fn fixed_16_16(v: u32) -> u32 {
    v.min(0xFFFF) << 16
}

/// `mdhd` (ISO/IEC 14496-12 §8.4.2), version 0: timescale == the `timescale` param (MS-SSTR
/// 2.2.7.3.1; tfxd values are in this timescale), duration 0, language `und`
/// (ISO 639-2/T packed as three 5-bit letters − 0x60 = 0x55C4).
fn write_mdhd(buf: &mut Vec<u8>, timescale: u32) {
    write_full_box(buf, b"mdhd", 0, 0, |buf| {
        put_u32(buf, 0); // creation_time
        put_u32(buf, 0); // modification_time
        put_u32(buf, timescale);
        put_u32(buf, 0); // duration
        put_u16(buf, 0x55C4); // pad + "und"
        put_u16(buf, 0); // pre_defined
    });
}

/// `hdlr` (ISO/IEC 14496-12 §8.4.3): `vide`/`soun` with a NUL-terminated name (FFmpeg's
/// "VideoHandler"/"SoundHandler").
fn write_hdlr(buf: &mut Vec<u8>, codec: &TrackCodec) {
    let (handler, name): (&[u8; 4], &[u8]) = match codec {
        TrackCodec::Avc(_) => (b"vide", b"VideoHandler\0"),
        TrackCodec::Aac(_) => (b"soun", b"SoundHandler\0"),
    };
    write_full_box(buf, b"hdlr", 0, 0, |buf| {
        put_u32(buf, 0); // pre_defined
        buf.extend_from_slice(handler);
        put_zeros(buf, 12); // reserved
        buf.extend_from_slice(name);
    });
}

/// `dinf` > `dref` > `url ` with flags 1 = media data in this same file (ISO/IEC 14496-12
/// §8.7.2); there is no URL string in the self-contained form.
fn write_dinf(buf: &mut Vec<u8>) {
    write_box(buf, b"dinf", |buf| {
        write_full_box(buf, b"dref", 0, 0, |buf| {
            put_u32(buf, 1); // entry_count
            write_full_box(buf, b"url ", 0, 1, |_| {});
        });
    });
}

/// `stbl` (ISO/IEC 14496-12 §8.5.1) with one sample entry and EMPTY `stts`, `stsc`, `stsz`,
/// `stco`: in a fragmented stream all samples live in `moof`s, yet these four boxes are
/// mandatory, so they are present with zero entries (protocol.md §2.5).
fn write_stbl(buf: &mut Vec<u8>, codec: &TrackCodec, bitrate: u32) {
    write_box(buf, b"stbl", |buf| {
        write_full_box(buf, b"stsd", 0, 0, |buf| {
            put_u32(buf, 1); // entry_count
            match codec {
                TrackCodec::Avc(c) => write_avc1(buf, c),
                TrackCodec::Aac(c) => write_mp4a(buf, c, bitrate),
            }
        });
        write_full_box(buf, b"stts", 0, 0, |buf| put_u32(buf, 0));
        write_full_box(buf, b"stsc", 0, 0, |buf| put_u32(buf, 0));
        write_full_box(buf, b"stsz", 0, 0, |buf| {
            put_u32(buf, 0); // sample_size
            put_u32(buf, 0); // sample_count
        });
        write_full_box(buf, b"stco", 0, 0, |buf| put_u32(buf, 0));
    });
}

/// `avc1` VisualSampleEntry (ISO/IEC 14496-12 §12.1.3, ISO/IEC 14496-15 §5.4.2.1): width and
/// height of the coded picture, 72 dpi, one frame per sample, depth 0x0018, then `avcC`.
fn write_avc1(buf: &mut Vec<u8>, c: &AvcConfig) {
    write_box(buf, b"avc1", |buf| {
        put_zeros(buf, 6); // reserved
        put_u16(buf, 1); // data_reference_index
        put_zeros(buf, 2 + 2 + 12); // pre_defined, reserved, pre_defined
        put_u16(buf, c.width.min(0xFFFF) as u16);
        put_u16(buf, c.height.min(0xFFFF) as u16);
        put_u32(buf, 0x0048_0000); // horizresolution 72 dpi
        put_u32(buf, 0x0048_0000); // vertresolution 72 dpi
        put_u32(buf, 0); // reserved
        put_u16(buf, 1); // frame_count
        put_zeros(buf, 32); // compressorname: empty Pascal string
        put_u16(buf, 0x0018); // depth
        put_u16(buf, 0xFFFF); // pre_defined = -1
        write_avcc(buf, c);
    });
}

/// `avcC` AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.3.3.1): profile, compatibility
/// and level copied from SPS bytes 1..3, lengthSizeMinusOne = 3 (4-byte NAL lengths, the
/// MS-SSTR `NALUnitLengthField` default), one SPS and one PPS — the same ones as in
/// CodecPrivateData (protocol.md §4.1, §7 item 14).
///
/// Quirk: for profiles other than Baseline/Main/Extended the record carries chroma format and
/// bit depths (14496-15 §5.3.3.1.2; FFmpeg writes them too), taken from the SPS itself.
fn write_avcc(buf: &mut Vec<u8>, c: &AvcConfig) {
    let byte = |i: usize| c.sps.get(i).copied().unwrap_or(0);
    let (profile, compat, level) = (byte(1), byte(2), byte(3));
    write_box(buf, b"avcC", |buf| {
        put_u8(buf, 1); // configurationVersion
        put_u8(buf, profile);
        put_u8(buf, compat);
        put_u8(buf, level);
        put_u8(buf, 0xFC | 3); // reserved 6 bits + lengthSizeMinusOne
        put_u8(buf, 0xE0 | 1); // reserved 3 bits + numOfSequenceParameterSets
        put_param_set(buf, &c.sps);
        put_u8(buf, 1); // numOfPictureParameterSets
        put_param_set(buf, &c.pps);
        if !matches!(profile, 66 | 77 | 88) {
            let ext = sps_chroma_and_depth(&c.sps).unwrap_or((1, 0, 0));
            put_u8(buf, 0xFC | (ext.0 & 3)); // chroma_format
            put_u8(buf, 0xF8 | (ext.1 & 7)); // bit_depth_luma_minus8
            put_u8(buf, 0xF8 | (ext.2 & 7)); // bit_depth_chroma_minus8
            put_u8(buf, 0); // numOfSequenceParameterSetExt
        }
    });
}

/// A 16-bit length then the NAL unit. A parameter set cannot exceed 64 KiB in practice; if one
/// did, it is truncated so that the record stays self-consistent.
fn put_param_set(buf: &mut Vec<u8>, nal: &[u8]) {
    let len = nal.len().min(usize::from(u16::MAX));
    put_u16(buf, len as u16);
    buf.extend_from_slice(&nal[..len]);
}

/// `(chroma_format_idc, bit_depth_luma_minus8, bit_depth_chroma_minus8)` from an SPS NAL unit
/// (ITU-T H.264 §7.3.2.1.1). `None` if the SPS is too short or malformed.
fn sps_chroma_and_depth(sps: &[u8]) -> Option<(u8, u8, u8)> {
    let profile = *sps.get(1)?;
    let mut r = RbspBits::new(sps.get(4..)?);
    r.ue()?; // seq_parameter_set_id
    if matches!(
        profile,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        let chroma = r.ue()?;
        if chroma == 3 {
            r.bit()?; // separate_colour_plane_flag
        }
        let luma = r.ue()?;
        let chroma_depth = r.ue()?;
        Some((
            chroma.min(3) as u8,
            luma.min(7) as u8,
            chroma_depth.min(7) as u8,
        ))
    } else {
        Some((1, 0, 0))
    }
}

/// Bit reader over an RBSP that drops emulation-prevention bytes (`00 00 03`) on the fly.
struct RbspBits<'a> {
    b: &'a [u8],
    byte: usize,
    bit: u8,
    zeros: u8,
}

impl<'a> RbspBits<'a> {
    fn new(b: &'a [u8]) -> Self {
        Self {
            b,
            byte: 0,
            bit: 0,
            zeros: 0,
        }
    }

    fn bit(&mut self) -> Option<u32> {
        if self.bit == 0 {
            // Entering a new byte: skip an emulation-prevention byte.
            let cur = *self.b.get(self.byte)?;
            if self.zeros >= 2 && cur == 3 {
                self.byte += 1;
                self.zeros = 0;
            }
            let cur = *self.b.get(self.byte)?;
            self.zeros = if cur == 0 { self.zeros + 1 } else { 0 };
        }
        let cur = *self.b.get(self.byte)?;
        let v = (cur >> (7 - self.bit)) & 1;
        self.bit += 1;
        if self.bit == 8 {
            self.bit = 0;
            self.byte += 1;
        }
        Some(u32::from(v))
    }

    /// Unsigned Exp-Golomb (H.264 §9.1).
    fn ue(&mut self) -> Option<u32> {
        let mut leading = 0u32;
        while self.bit()? == 0 {
            leading += 1;
            if leading > 31 {
                return None;
            }
        }
        let mut v = 0u32;
        for _ in 0..leading {
            v = (v << 1) | self.bit()?;
        }
        Some((1u32 << leading) - 1 + v)
    }
}

/// `mp4a` AudioSampleEntry (ISO/IEC 14496-12 §12.2.3, ISO/IEC 14496-14 §5.6): channelcount and
/// samplerate from the AAC config, samplesize 16, then `esds`.
///
/// Quirk: samplerate is 16.16 fixed point, so rates above 65535 Hz are written as 0 (FFmpeg does
/// the same); decoders take the real rate from the AudioSpecificConfig.
fn write_mp4a(buf: &mut Vec<u8>, c: &AacConfig, bitrate: u32) {
    write_box(buf, b"mp4a", |buf| {
        put_zeros(buf, 6); // reserved
        put_u16(buf, 1); // data_reference_index
        put_zeros(buf, 8); // reserved (version 0 entry)
        put_u16(buf, c.channels);
        put_u16(buf, 16); // samplesize
        put_u16(buf, 0); // pre_defined
        put_u16(buf, 0); // reserved
        let rate = if c.sample_rate <= 0xFFFF {
            c.sample_rate << 16
        } else {
            0
        };
        put_u32(buf, rate);
        write_esds(buf, c, bitrate);
    });
}

/// `esds` (ISO/IEC 14496-14 §5.6.1) holding an ES_Descriptor (ISO/IEC 14496-1 §7.2.6.5):
/// ES_ID 0 ("set to 0 as stored", 14496-14 §3.1.2), DecoderConfigDescriptor with
/// objectTypeIndication 0x40 (MPEG-4 Audio), streamType 5 (audio), bufferSizeDB = the AAC
/// decoder input buffer (6144 bits per channel, ISO/IEC 14496-3 §4.5.3.1), max/avg bitrate =
/// the declared bitrate, DecoderSpecificInfo = the AudioSpecificConfig, and an SLConfigDescriptor
/// with predefined = 2 (reserved for MP4 files).
///
/// Descriptor sizes use the shortest expandable form (14496-1 §8.3.3); FFmpeg pads them to four
/// bytes, both are valid.
fn write_esds(buf: &mut Vec<u8>, c: &AacConfig, bitrate: u32) {
    let buffer_size = 768 * u32::from(c.channels.max(1));
    write_full_box(buf, b"esds", 0, 0, |buf| {
        let dsi_len = c.asc.len();
        let dcd_len = 13 + descr_len(dsi_len);
        let es_len = 3 + descr_len(dcd_len) + descr_len(1);
        put_descr_header(buf, 0x03, es_len);
        put_u16(buf, 0); // ES_ID
        put_u8(buf, 0); // no dependsOn, no URL, no OCR, priority 0
        put_descr_header(buf, 0x04, dcd_len);
        put_u8(buf, 0x40); // objectTypeIndication: Audio ISO/IEC 14496-3
        put_u8(buf, (5 << 2) | 1); // streamType audio, upStream 0, reserved 1
        buf.extend_from_slice(&buffer_size.to_be_bytes()[1..]);
        put_u32(buf, bitrate); // maxBitrate
        put_u32(buf, bitrate); // avgBitrate
        put_descr_header(buf, 0x05, dsi_len);
        buf.extend_from_slice(&c.asc);
        put_descr_header(buf, 0x06, 1);
        put_u8(buf, 2); // SLConfigDescriptor predefined: MP4 file
    });
}

/// Total length of a descriptor with a body of `body` bytes (tag + size field + body).
fn descr_len(body: usize) -> usize {
    1 + size_field_len(body) + body
}

fn size_field_len(body: usize) -> usize {
    match body {
        0..=0x7F => 1,
        0x80..=0x3FFF => 2,
        0x4000..=0x1F_FFFF => 3,
        _ => 4,
    }
}

/// Descriptor tag + expandable size (7 bits per byte, high bit = "more follows").
fn put_descr_header(buf: &mut Vec<u8>, tag: u8, body: usize) {
    put_u8(buf, tag);
    let n = size_field_len(body);
    let body = body.min(0x0FFF_FFFF);
    for i in (0..n).rev() {
        let more = if i > 0 { 0x80 } else { 0 };
        put_u8(buf, more | ((body >> (7 * i)) & 0x7F) as u8);
    }
}

/// `trex` (ISO/IEC 14496-12 §8.8.3): default_sample_description_index 1, all other defaults 0 —
/// every fragment states its own durations, sizes and flags (protocol.md §2.5).
fn write_trex(buf: &mut Vec<u8>, track_id: u32) {
    write_full_box(buf, b"trex", 0, 0, |buf| {
        put_u32(buf, track_id);
        put_u32(buf, 1); // default_sample_description_index
        put_u32(buf, 0); // default_sample_duration
        put_u32(buf, 0); // default_sample_size
        put_u32(buf, 0); // default_sample_flags
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_golomb_reads_high_profile_sps_fields() {
        // x264 High 4:4:4 Predictive SPS (profile 244, chroma_format_idc 3, 8-bit).
        let sps = hex::decode("67f4000d919b28283f6022000003000200000300641e28532c").unwrap();
        assert_eq!(sps_chroma_and_depth(&sps), Some((3, 0, 0)));
        // FFmpeg fixture SPS, High profile 4:2:0 8-bit.
        let sps = hex::decode("6764001eacd940a02ff970110000030001000003003c0f162d96").unwrap();
        assert_eq!(sps_chroma_and_depth(&sps), Some((1, 0, 0)));
        assert_eq!(sps_chroma_and_depth(&[0x67]), None);
    }

    #[test]
    fn descriptor_sizes_use_expandable_form() {
        let mut b = Vec::new();
        put_descr_header(&mut b, 5, 2);
        put_descr_header(&mut b, 5, 200);
        assert_eq!(b, [5, 2, 5, 0x81, 0x48]);
        assert_eq!(descr_len(200), 203);
    }

    #[test]
    fn xml_escape_handles_all_specials() {
        assert_eq!(xml_escape("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&apos;");
        assert!(matches!(xml_escape("video"), std::borrow::Cow::Borrowed(_)));
    }
}
