//! PIFF writers and parser against the facts of protocol.md §8, write→parse round trips,
//! and parser robustness on hostile input.

use proptest::prelude::*;
use sha2::{Digest, Sha256};
use smoothcast::encode::{AacConfig, AvcConfig};
use smoothcast::piff::boxes::{
    LIVE_SERVER_MANIFEST_UUID, PIFF_PSSH_UUID, PIFF_SAMPLE_ENCRYPTION_UUID,
    PIFF_TRACK_ENCRYPTION_UUID, PLAYREADY_SYSTEM_ID, STREAM_MANIFEST_UUID, TFRF_UUID, TFXD_UUID,
};
use smoothcast::piff::fragment::{moof_size, write_fragment, write_moof, write_tfxd};
use smoothcast::piff::header::{
    avc_codec_private_data, empty_mfra, live_server_manifest, stream_header, write_ftyp, write_moov,
};
use smoothcast::piff::parse::{
    parse_ftyp, parse_live_manifest, parse_moof, parse_moov, parse_stream, read_box_header,
    BoxSplitter, ManifestTrackKind,
};
use smoothcast::piff::{
    FragmentSpec, PiffError, SampleEntry, TrackCodec, TrackInfo, FORMAT_VERSION,
    SAMPLE_FLAGS_NON_SYNC, SAMPLE_FLAGS_SYNC,
};

/// SPS and PPS of a real x264 stream, generated once with
/// `ffmpeg -f lavfi -i testsrc=size=320x240:rate=25 -frames:v 1 -c:v libx264
///  -bsf:v h264_mp4toannexb -f h264 -` (FFmpeg 5.1 / x264 core 164) and copied here.
/// testsrc is RGB, so x264 picked High 4:4:4 Predictive (profile_idc 244, level 1.3).
const TEST_SPS: &str = "67f4000d919b28283f6022000003000200000300641e28532c";
const TEST_PPS: &str = "68ebe3c44844";

fn avc_config() -> AvcConfig {
    AvcConfig {
        sps: hex::decode(TEST_SPS).unwrap(),
        pps: hex::decode(TEST_PPS).unwrap(),
        width: 320,
        height: 240,
        reorder_frames: 0,
    }
}

fn aac_config() -> AacConfig {
    AacConfig {
        asc: vec![0x11, 0x90],
        channels: 2,
        sample_rate: 48_000,
        delay: 1024,
    }
}

fn tracks() -> Vec<TrackInfo> {
    vec![
        TrackInfo {
            track_id: 1,
            track_name: "video".into(),
            bitrate: 2_000_000,
            timescale: 10_000_000,
            codec: TrackCodec::Avc(avc_config()),
        },
        TrackInfo {
            track_id: 2,
            track_name: "audio".into(),
            bitrate: 128_000,
            timescale: 10_000_000,
            codec: TrackCodec::Aac(aac_config()),
        },
    ]
}

/// A 2 s video GOP at 25 fps on the epoch timeline: IDR then non-sync samples.
fn video_fragment(k: u32) -> (FragmentSpec, Vec<u8>) {
    let samples: Vec<SampleEntry> = (0..50)
        .map(|i| SampleEntry {
            duration: 400_000,
            size: 100 + i,
            flags: if i == 0 {
                SAMPLE_FLAGS_SYNC
            } else {
                SAMPLE_FLAGS_NON_SYNC
            },
            composition_offset: 0,
        })
        .collect();
    let payload: Vec<u8> = (0..samples.iter().map(|s| s.size).sum::<u32>())
        .map(|i| (i * 7 + k) as u8)
        .collect();
    let start = 17_000_000_000_000_000u64 + u64::from(k) * 20_000_000;
    (
        FragmentSpec {
            track_id: 1,
            sequence: 850_000_000 + k,
            absolute_time: start,
            duration: 20_000_000,
            samples,
        },
        payload,
    )
}

/// 1.92 s of AAC at 48 kHz: 90 frames, all sync, exact 10 MHz times from the frame index.
fn audio_fragment(k: u32) -> (FragmentSpec, Vec<u8>) {
    let first = u64::from(k) * 90;
    let t = |j: u64| j * 1024 * 10_000_000 / 48_000;
    let samples: Vec<SampleEntry> = (first..first + 90)
        .map(|j| SampleEntry {
            duration: (t(j + 1) - t(j)) as u32,
            size: 300,
            flags: SAMPLE_FLAGS_SYNC,
            composition_offset: 0,
        })
        .collect();
    let payload = vec![0x21; 90 * 300];
    (
        FragmentSpec {
            track_id: 2,
            sequence: k,
            absolute_time: t(first),
            duration: t(first + 90) - t(first),
            samples,
        },
        payload,
    )
}

fn box_at(b: &[u8], at: usize) -> &[u8] {
    let h = read_box_header(&b[at..]).unwrap().unwrap();
    &b[at..at + h.size as usize]
}

#[test]
fn ftyp_is_the_24_bytes_of_protocol_8_2() {
    let mut b = Vec::new();
    write_ftyp(&mut b);
    assert_eq!(
        b,
        hex::decode("000000186674797069736d6c000000017069666669736f32").unwrap()
    );
    let f = parse_ftyp(&b).unwrap();
    assert_eq!(&f.major, b"isml");
    assert_eq!(f.minor, 1);
    assert_eq!(f.compatible, vec![*b"piff", *b"iso2"]);
}

#[test]
fn tfxd_v1_matches_protocol_8_2_example() {
    let mut b = Vec::new();
    write_tfxd(&mut b, 15_336_831_655_032_322, 20_000_000);
    assert_eq!(
        hex::encode(&b),
        "0000002c757569646d1d9b0542d544e680e2141daff757b20100000000367cc462c736020000000001312d00"
    );
}

#[test]
fn empty_mfra_is_8_bytes() {
    assert_eq!(empty_mfra(), [0, 0, 0, 8, b'm', b'f', b'r', b'a']);
}

#[test]
fn uuids_are_in_network_byte_order() {
    let cases: [(&[u8; 16], &str); 8] = [
        (&TFXD_UUID, "6D1D9B05-42D5-44E6-80E2-141DAFF757B2"),
        (&TFRF_UUID, "D4807EF2-CA39-4695-8E54-26CB9E46A79F"),
        (
            &LIVE_SERVER_MANIFEST_UUID,
            "A5D40B30-E814-11DD-BA2F-0800200C9A66",
        ),
        (
            &STREAM_MANIFEST_UUID,
            "3C2FE51B-EFEE-40A3-AE81-5300199DC348",
        ),
        (
            &PIFF_SAMPLE_ENCRYPTION_UUID,
            "A2394F52-5A9B-4F14-A244-6C427C648DF4",
        ),
        (
            &PIFF_TRACK_ENCRYPTION_UUID,
            "8974DBCE-7BE7-4C51-84F9-7148F9882554",
        ),
        (&PIFF_PSSH_UUID, "D08A4F18-10F3-4A82-B6C8-32D8ABA183D3"),
        (&PLAYREADY_SYSTEM_ID, "9A04F079-9840-4286-AB92-E65BE0885F95"),
    ];
    for (bytes, text) in cases {
        assert_eq!(hex::encode_upper(bytes), text.replace('-', ""), "{text}");
    }
}

#[test]
fn live_manifest_box_header_and_smil_shape_follow_protocol_8_5() {
    let b = live_server_manifest(&tracks(), "our-encoder");
    assert_eq!(&b[0..4], &(b.len() as u32).to_be_bytes());
    assert_eq!(
        hex::encode(&b[4..28]),
        "75756964a5d40b30e81411ddba2f0800200c9a6600000000"
    );
    let xml = std::str::from_utf8(&b[28..]).unwrap();
    let cpd = format!("00000001{}00000001{}", TEST_SPS, TEST_PPS).to_uppercase();
    let expected = format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<smil xmlns="http://www.w3.org/2001/SMIL20/Language">
  <head>
    <meta name="creator" content="our-encoder" />
  </head>
  <body>
    <switch>
      <video src="Streams" systemBitrate="2000000">
        <param name="trackID" value="1" valuetype="data" />
        <param name="trackName" value="video" valuetype="data" />
        <param name="timescale" value="10000000" valuetype="data" />
        <param name="FourCC" value="H264" valuetype="data" />
        <param name="CodecPrivateData" value="{cpd}" valuetype="data" />
        <param name="MaxWidth" value="320" valuetype="data" />
        <param name="MaxHeight" value="240" valuetype="data" />
        <param name="DisplayWidth" value="320" valuetype="data" />
        <param name="DisplayHeight" value="240" valuetype="data" />
      </video>
      <audio src="Streams" systemBitrate="128000">
        <param name="trackID" value="2" valuetype="data" />
        <param name="trackName" value="audio" valuetype="data" />
        <param name="timescale" value="10000000" valuetype="data" />
        <param name="FourCC" value="AACL" valuetype="data" />
        <param name="CodecPrivateData" value="1190" valuetype="data" />
        <param name="AudioTag" value="255" valuetype="data" />
        <param name="Channels" value="2" valuetype="data" />
        <param name="SamplingRate" value="48000" valuetype="data" />
        <param name="BitsPerSample" value="16" valuetype="data" />
        <param name="PacketSize" value="4" valuetype="data" />
      </audio>
    </switch>
  </body>
</smil>
"#
    );
    assert_eq!(xml, expected);

    let m = parse_live_manifest(&b).unwrap();
    assert_eq!(m.version, 0);
    assert_eq!(m.tracks.len(), 2);
    let (v, a) = (&m.tracks[0], &m.tracks[1]);
    assert_eq!(v.kind, ManifestTrackKind::Video);
    assert_eq!(v.system_bitrate, 2_000_000);
    assert_eq!(v.track_id(), Some(1));
    assert_eq!(v.fourcc(), Some("H264"));
    let mut annex_b = vec![0, 0, 0, 1];
    annex_b.extend(hex::decode(TEST_SPS).unwrap());
    annex_b.extend([0, 0, 0, 1]);
    annex_b.extend(hex::decode(TEST_PPS).unwrap());
    assert_eq!(v.codec_private_data(), Some(annex_b));
    assert_eq!(avc_codec_private_data(&avc_config()), cpd);
    assert_eq!(a.kind, ManifestTrackKind::Audio);
    assert_eq!(a.track_name(), "audio");
    assert_eq!(a.timescale(), 10_000_000);
    assert_eq!(a.codec_private_data(), Some(vec![0x11, 0x90]));
    assert_eq!(a.param("AudioTag"), Some("255"));
}

#[test]
fn manifest_escapes_names_and_creator() {
    let mut t = tracks();
    t[0].track_name = "v<1>&\"q\"".into();
    let b = live_server_manifest(&t, "a&b <c>");
    let m = parse_live_manifest(&b).unwrap();
    assert_eq!(m.tracks[0].track_name(), "v<1>&\"q\"");
    assert!(m.xml.contains(r#"content="a&amp;b &lt;c&gt;""#));
}

#[test]
fn manifest_parser_accepts_version_1_and_utf16_with_bom() {
    let xml = "<?xml version=\"1.0\" encoding=\"utf-16\"?><smil xmlns=\"http://www.w3.org/2001/SMIL20/Language\"><body><switch>\
        <audio systemBitrate=\"64000\"><param name=\"trackID\" value=\"7\" valuetype=\"data\"/></audio>\
        <textstream systemBitrate=\"0\"><param name=\"trackID\" value=\"8\" valuetype=\"data\"/></textstream>\
        </switch></body></smil>";
    for le in [true, false] {
        let mut body: Vec<u8> = if le {
            vec![0xFF, 0xFE]
        } else {
            vec![0xFE, 0xFF]
        };
        for u in xml.encode_utf16() {
            body.extend(if le { u.to_le_bytes() } else { u.to_be_bytes() });
        }
        let mut b = Vec::new();
        smoothcast::piff::boxes::write_uuid_box(&mut b, &LIVE_SERVER_MANIFEST_UUID, 1, 0, |b| {
            b.extend_from_slice(&body)
        });
        let m = parse_live_manifest(&b).unwrap();
        assert_eq!(m.version, 1);
        assert_eq!(m.tracks.len(), 2);
        assert_eq!(m.tracks[0].track_id(), Some(7));
        assert_eq!(m.tracks[1].kind, ManifestTrackKind::Text);
        assert_eq!(m.tracks[1].track_name(), "textstream");
        assert_eq!(m.tracks[1].timescale(), 10_000_000);
    }
    // Version 2 is not a live server manifest we know.
    let mut b = Vec::new();
    smoothcast::piff::boxes::write_uuid_box(&mut b, &LIVE_SERVER_MANIFEST_UUID, 2, 0, |b| {
        b.extend_from_slice(xml.as_bytes())
    });
    assert!(parse_live_manifest(&b).is_err());
}

#[test]
fn moov_round_trips_codec_configuration() {
    let mut b = Vec::new();
    write_moov(&mut b, &tracks());
    let m = parse_moov(&b).unwrap();
    assert_eq!(m.timescale, 10_000_000);
    assert_eq!(m.trex_track_ids, vec![1, 2]);
    let v = &m.tracks[0];
    assert_eq!(
        (v.track_id, &v.handler, v.timescale),
        (1, b"vide", 10_000_000)
    );
    assert_eq!((v.width, v.height, &v.sample_entry), (320, 240, b"avc1"));
    let (sps, pps, len) = v.avc.clone().unwrap();
    assert_eq!((sps, pps, len), (avc_config().sps, avc_config().pps, 4));
    let a = &m.tracks[1];
    assert_eq!(
        (a.track_id, &a.handler, &a.sample_entry),
        (2, b"soun", b"mp4a")
    );
    assert_eq!((a.channels, a.sample_rate), (2, 48_000));
    assert_eq!(a.aac_asc.as_deref(), Some(&[0x11, 0x90][..]));

    // avcC: profile/compat/level from SPS bytes 1..3, lengthSizeMinusOne 3, and the
    // high-profile extension (chroma_format 3 for this 4:4:4 SPS, 8-bit).
    let at = find(&b, b"avcC") - 4;
    let avcc = box_at(&b, at);
    assert_eq!(&avcc[8..14], &[1, 0xF4, 0x00, 0x0D, 0xFF, 0xE1]);
    assert_eq!(&avcc[avcc.len() - 4..], &[0xFF, 0xF8, 0xF8, 0x00]);
    // esds: ES_Descriptor > DecoderConfigDescriptor(0x40, audio) > DSI(ASC) + SLConfig(2).
    let at = find(&b, b"esds") - 4;
    let esds = box_at(&b, at);
    assert_eq!(
        hex::encode(&esds[12..]),
        [
            "0319", "0000", "00", // ES_Descriptor: 25 bytes, ES_ID 0, no flags
            "0411", "40", "15", "000600", // DecoderConfig: 17 bytes, 0x40, audio, 1536 B
            "0001f400", "0001f400", // max/avg bitrate
            "05021190", // DecoderSpecificInfo = ASC
            "060102",   // SLConfigDescriptor predefined 2
        ]
        .concat()
    );
    // tkhd flags 7; empty sample tables.
    let at = find(&b, b"tkhd") - 4;
    assert_eq!(&box_at(&b, at)[8..12], &[0, 0, 0, 7]);
    for (fourcc, len) in [(b"stts", 16), (b"stsc", 16), (b"stsz", 20), (b"stco", 16)] {
        let at = find(&b, fourcc) - 4;
        let bx = box_at(&b, at);
        assert_eq!(bx.len(), len);
        assert!(bx[8..].iter().all(|&x| x == 0));
    }
}

fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).position(|w| w == needle).unwrap()
}

#[test]
fn stream_header_is_identical_for_identical_input() {
    let a = stream_header(&tracks(), "smoothcast");
    let b = stream_header(&tracks(), "smoothcast");
    assert_eq!(a, b);
    let mut t = tracks();
    t[1].bitrate += 1;
    assert_ne!(a, stream_header(&t, "smoothcast"));
    // ftyp + live manifest + moov, nothing else.
    let s = parse_stream(&a).unwrap();
    assert_eq!(s.top_level, ["ftyp", "uuid:live-manifest", "moov"]);
    assert!(s.fragments.is_empty() && !s.ends_with_mfra);
}

#[test]
fn video_fragment_has_tfhd_0x20_first_sample_flags_and_tfxd_last() {
    let (spec, payload) = video_fragment(3);
    let frag = write_fragment(&spec, &payload).unwrap();
    let moof_len = moof_size(&spec);
    let moof = parse_moof(&frag[..moof_len]).unwrap();
    assert_eq!(moof.sequence, spec.sequence);
    assert_eq!(moof.trafs.len(), 1);
    let t = &moof.trafs[0];
    assert_eq!(t.children, ["tfhd", "trun", "uuid:tfxd"]);
    assert_eq!(t.tfhd_flags, 0x000020);
    assert_eq!(t.default_sample_flags, Some(SAMPLE_FLAGS_NON_SYNC));
    assert_eq!(t.base_data_offset, None);
    assert_eq!(t.tfdt, None);
    assert_eq!(t.data_offset, Some(moof_len as i32 + 8));
    assert_eq!(t.trun_version, 0);
    assert_eq!(t.samples, spec.samples);
    let tfxd = t.tfxd.unwrap();
    assert_eq!(
        (tfxd.version, tfxd.absolute_time, tfxd.duration),
        (1, spec.absolute_time, 20_000_000)
    );
    // trun flags on the wire: data offset, first-sample flags, duration, size.
    let trun_at = find(&frag, b"trun") - 4;
    assert_eq!(&frag[trun_at + 8..trun_at + 12], &[0, 0, 0x03, 0x05]);
    assert_eq!(
        &frag[trun_at + 20..trun_at + 24],
        &SAMPLE_FLAGS_SYNC.to_be_bytes()
    );
    // mdat follows the moof and holds exactly the payload.
    assert_eq!(&frag[moof_len + 4..moof_len + 8], b"mdat");
    assert_eq!(&frag[moof_len + 8..], &payload[..]);
    assert_eq!(frag.capacity(), frag.len());
}

#[test]
fn audio_fragment_defaults_to_sync_flags_without_per_sample_flags() {
    let (spec, payload) = audio_fragment(1);
    let frag = write_fragment(&spec, &payload).unwrap();
    let moof = parse_moof(&frag[..moof_size(&spec)]).unwrap();
    let t = &moof.trafs[0];
    assert_eq!(t.default_sample_flags, Some(SAMPLE_FLAGS_SYNC));
    let trun_at = find(&frag, b"trun") - 4;
    assert_eq!(&frag[trun_at + 8..trun_at + 12], &[0, 0, 0x03, 0x01]);
    assert_eq!(t.samples, spec.samples);
}

#[test]
fn write_moof_appends_to_an_existing_buffer() {
    let (spec, _) = video_fragment(0);
    let mut buf = b"prefix".to_vec();
    write_moof(&mut buf, &spec);
    assert_eq!(buf.len(), 6 + moof_size(&spec));
    assert!(parse_moof(&buf[6..]).is_ok());
}

#[test]
fn payload_not_matching_sample_sizes_is_an_error() {
    let (spec, payload) = video_fragment(0);
    let err = write_fragment(&spec, &payload[1..]).unwrap_err();
    assert!(
        matches!(err, PiffError::PayloadMismatch { track_id: 1, .. }),
        "{err}"
    );
}

/// The bytes of a fixed synthetic stream: header + 2 fragments per track + mfra.
fn golden_stream() -> Vec<u8> {
    let mut s = stream_header(&tracks(), "smoothcast-golden");
    for k in 0..2 {
        let (v, vp) = video_fragment(k);
        s.extend(write_fragment(&v, &vp).unwrap());
        let (a, ap) = audio_fragment(k);
        s.extend(write_fragment(&a, &ap).unwrap());
    }
    s.extend_from_slice(&empty_mfra());
    s
}

#[test]
fn golden_digest_changes_only_with_format_version() {
    // If this digest changes on purpose, bump piff::FORMAT_VERSION and update both here.
    let digest = hex::encode(Sha256::digest(golden_stream()));
    assert_eq!(
        (FORMAT_VERSION, digest.as_str()),
        (
            1,
            "442eca46a1bc372df2a23463c504e89127f60f97a99f3b062f2c6cc2aa2d8c3e"
        )
    );
}

#[test]
fn track_ids_agree_across_manifest_tkhd_trex_and_tfhd() {
    let b = golden_stream();
    let s = parse_stream(&b).unwrap();
    assert_eq!(s.top_level[..3], ["ftyp", "uuid:live-manifest", "moov"]);
    assert_eq!(s.top_level.len(), 3 + 8 + 1);
    assert!(s.ends_with_mfra);
    let manifest_ids: Vec<u32> = s
        .manifest
        .as_ref()
        .unwrap()
        .tracks
        .iter()
        .map(|t| t.track_id().unwrap())
        .collect();
    let tkhd_ids: Vec<u32> = s.moov.tracks.iter().map(|t| t.track_id).collect();
    assert_eq!(manifest_ids, [1, 2]);
    assert_eq!(tkhd_ids, manifest_ids);
    assert_eq!(s.moov.trex_track_ids, manifest_ids);
    let tfhd_ids: Vec<u32> = s
        .fragments
        .iter()
        .map(|f| f.moof.trafs[0].track_id)
        .collect();
    assert_eq!(tfhd_ids, [1, 2, 1, 2]);
    // Every fragment: data_offset == size(moof) + 8, sizes fill the mdat, tfxd continuous.
    let mut next_time = [None, None];
    for f in &s.fragments {
        let t = &f.moof.trafs[0];
        assert_eq!(t.data_offset, Some(f.moof_size as i32 + 8));
        assert_eq!(
            t.samples.iter().map(|x| x.size as usize).sum::<usize>(),
            f.mdat.len()
        );
        let tfxd = t.tfxd.unwrap();
        let durations: u64 = t.samples.iter().map(|x| u64::from(x.duration)).sum();
        assert_eq!(tfxd.duration, durations);
        let slot = &mut next_time[(t.track_id - 1) as usize];
        if let Some(expected) = *slot {
            assert_eq!(tfxd.absolute_time, expected);
        }
        *slot = Some(tfxd.absolute_time + tfxd.duration);
    }
}

#[test]
fn truncated_stream_is_an_error_at_every_cut() {
    let b = golden_stream();
    // Whole boxes parse; every cut inside a box is an error (and never a panic).
    let s = parse_stream(&b).unwrap();
    let mut boundaries = vec![b.len()];
    let mut at = 0;
    for _ in &s.top_level {
        boundaries.push(at);
        at += read_box_header(&b[at..]).unwrap().unwrap().size as usize;
    }
    for cut in (0..b.len()).step_by(7) {
        let r = parse_stream(&b[..cut]);
        if !boundaries.contains(&cut) {
            assert!(r.is_err(), "cut at {cut} parsed");
        }
    }
    let (spec, _) = video_fragment(0);
    let mut moof = Vec::new();
    write_moof(&mut moof, &spec);
    for cut in 0..moof.len() {
        assert!(parse_moof(&moof[..cut]).is_err());
    }
}

#[test]
fn splitter_refuses_oversized_box_before_buffering_it() {
    let mut s = BoxSplitter::new(1000);
    s.push(&[0, 0, 0x10, 0, b'm', b'd', b'a', b't']);
    match s.next_box() {
        Err(PiffError::TooLarge { size, limit, .. }) => assert_eq!((size, limit), (4096, 1000)),
        other => panic!("{other:?}"),
    }
    assert!(s.next_box().is_err(), "errors are sticky");
    assert_eq!(s.buffered(), 0);
}

#[test]
fn splitter_rejects_size_zero_box() {
    let mut s = BoxSplitter::new(1 << 20);
    s.push(b"\0\0\0\0mdat");
    assert!(matches!(s.next_box(), Err(PiffError::Malformed { .. })));
}

fn split_in_chunks(b: &[u8], chunks: &[usize]) -> Vec<(u64, Vec<u8>)> {
    let mut s = BoxSplitter::new(1 << 20);
    let mut out = Vec::new();
    let mut pos = 0;
    let mut i = 0;
    while pos < b.len() {
        let n = chunks[i % chunks.len()].min(b.len() - pos);
        i += 1;
        s.push(&b[pos..pos + n]);
        pos += n;
        loop {
            let offset = s.offset();
            match s.next_box().unwrap() {
                Some((h, bytes)) => {
                    assert_eq!(h.size as usize, bytes.len());
                    out.push((offset, bytes.to_vec()));
                }
                None => break,
            }
        }
    }
    assert_eq!(s.buffered(), 0);
    assert_eq!(s.offset(), b.len() as u64);
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn splitter_yields_the_same_boxes_for_any_chunking(
        chunks in prop::collection::vec(1usize..5000, 1..20)
    ) {
        let b = golden_stream();
        let whole = split_in_chunks(&b, &[b.len()]);
        let pieces = split_in_chunks(&b, &chunks);
        prop_assert_eq!(whole.len(), 12);
        prop_assert_eq!(whole, pieces);
    }

    #[test]
    fn fragment_round_trips_through_the_parser(
        track_id in 1u32..,
        sequence in any::<u32>(),
        absolute_time in any::<u64>(),
        raw in prop::collection::vec(
            (any::<u32>(), 0u32..64, prop_oneof![
                Just(SAMPLE_FLAGS_SYNC), Just(SAMPLE_FLAGS_NON_SYNC), any::<u32>()
            ], prop_oneof![Just(0i32), -1_000_000i32..1_000_000]),
            0..40),
    ) {
        let samples: Vec<SampleEntry> = raw
            .iter()
            .map(|&(duration, size, flags, composition_offset)| SampleEntry {
                duration, size, flags, composition_offset,
            })
            .collect();
        let duration = samples.iter().map(|s| u64::from(s.duration)).sum();
        let payload: Vec<u8> = (0..samples.iter().map(|s| s.size).sum::<u32>())
            .map(|i| i as u8)
            .collect();
        let spec = FragmentSpec { track_id, sequence, absolute_time, duration, samples };
        let frag = write_fragment(&spec, &payload).unwrap();
        let moof_len = moof_size(&spec);
        prop_assert_eq!(frag.len(), moof_len + 8 + payload.len());
        let moof = parse_moof(&frag[..moof_len]).unwrap();
        prop_assert_eq!(moof.sequence, sequence);
        prop_assert_eq!(moof.trafs.len(), 1);
        let t = &moof.trafs[0];
        prop_assert_eq!(t.track_id, track_id);
        prop_assert_eq!(t.tfhd_flags, 0x20);
        prop_assert_eq!(&t.children, &["tfhd", "trun", "uuid:tfxd"]);
        prop_assert_eq!(t.data_offset, Some(moof_len as i32 + 8));
        prop_assert_eq!(
            t.trun_version,
            u8::from(spec.samples.iter().any(|s| s.composition_offset < 0))
        );
        prop_assert_eq!(&t.samples, &spec.samples);
        let tfxd = t.tfxd.unwrap();
        prop_assert_eq!((tfxd.absolute_time, tfxd.duration), (absolute_time, duration));
        prop_assert_eq!(&frag[moof_len + 8..], &payload[..]);
    }

    #[test]
    fn parsers_never_panic_on_garbage(b in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = parse_stream(&b);
        let _ = parse_moof(&b);
        let _ = parse_moov(&b);
        let _ = parse_ftyp(&b);
        let _ = parse_live_manifest(&b);
        let _ = read_box_header(&b);
        let mut s = BoxSplitter::new(1 << 16);
        s.push(&b);
        while let Ok(Some(_)) = s.next_box() {}
    }

    #[test]
    fn parsers_never_panic_on_mutated_streams(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)
    ) {
        let mut b = golden_stream();
        // Mutate within the header and first fragment, where the structure is dense.
        let dense = b.len().min(4000);
        for (i, v) in flips {
            let at = i.index(dense);
            b[at] = v;
        }
        let _ = parse_stream(&b);
        let moof_at = find(&b, b"moof").saturating_sub(4);
        if let Ok(Some(h)) = read_box_header(&b[moof_at..]) {
            let end = (moof_at as u64 + h.size).min(b.len() as u64) as usize;
            let _ = parse_moof(&b[moof_at..end]);
        }
    }
}
