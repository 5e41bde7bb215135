//! PIFF against third parties: FFmpeg-produced ingest bodies go through our parser, and our
//! writers' output goes through ffprobe/ffmpeg.

use std::path::Path;
use std::process::Command;

use smoothcast::encode::{AacConfig, AvcConfig};
use smoothcast::piff::fragment::write_fragment;
use smoothcast::piff::header::{empty_mfra, stream_header};
use smoothcast::piff::parse::{parse_stream, BoxSplitter, ManifestTrackKind, ParsedStream};
use smoothcast::piff::{
    FragmentSpec, SampleEntry, TrackCodec, TrackInfo, SAMPLE_FLAGS_NON_SYNC, SAMPLE_FLAGS_SYNC,
};

const FIXTURES: &str = "/work/shared/fixtures";

fn fixture(name: &str) -> Vec<u8> {
    let p = Path::new(FIXTURES).join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Checks shared by both FFmpeg fixtures (README: 640x360 video + 48 kHz mono AAC in one POST,
/// one track per moof, 2 s fragments, 10 s).
fn check_ffmpeg_fixture(b: &[u8]) -> ParsedStream {
    let s = parse_stream(b).unwrap();
    // FFmpeg quirks a receiver must accept: minor 512, compatible `isml piff`.
    assert_eq!(&s.ftyp.major, b"isml");
    assert_eq!(s.ftyp.minor, 512);
    assert_eq!(s.top_level[..3], ["ftyp", "uuid:live-manifest", "moov"]);

    let m = s.manifest.as_ref().unwrap();
    assert_eq!(m.tracks.len(), 2);
    let (v, a) = (&m.tracks[0], &m.tracks[1]);
    assert_eq!(
        (v.kind, v.track_id(), v.fourcc()),
        (ManifestTrackKind::Video, Some(1), Some("H264"))
    );
    assert_eq!(
        (a.kind, a.track_id(), a.fourcc()),
        (ManifestTrackKind::Audio, Some(2), Some("AACL"))
    );
    assert_eq!((v.system_bitrate, a.system_bitrate), (600_000, 128_000));
    assert_eq!(v.param("MaxWidth"), Some("640"));
    assert_eq!(a.param("SamplingRate"), Some("48000"));

    // moov agrees with the manifest; CodecPrivateData is the Annex-B form of avcC.
    assert_eq!(s.moov.timescale, 1000); // FFmpeg quirk
    assert_eq!(s.moov.trex_track_ids, [1, 2]);
    let mv = &s.moov.tracks[0];
    assert_eq!(
        (mv.track_id, &mv.handler, mv.timescale),
        (1, b"vide", 10_000_000)
    );
    assert_eq!((mv.width, mv.height), (640, 360));
    let (sps, pps, len) = mv.avc.clone().unwrap();
    assert_eq!(len, 4);
    let mut cpd = vec![0, 0, 0, 1];
    cpd.extend(&sps);
    cpd.extend([0, 0, 0, 1]);
    cpd.extend(&pps);
    assert_eq!(v.codec_private_data(), Some(cpd));
    let ma = &s.moov.tracks[1];
    assert_eq!(
        (ma.track_id, &ma.handler, ma.sample_rate),
        (2, b"soun", 48_000)
    );
    assert_eq!(ma.aac_asc, a.codec_private_data());
    assert_eq!(ma.channels, 2); // FFmpeg quirk: the ASC and the manifest say mono

    // 5 video + 5 audio fragments, each: one traf, tfhd 0x20, tfxd v1 after the trun,
    // data_offset == size(moof) + 8, sample sizes fill the mdat, tfxd duration == Σ durations
    // for audio (FFmpeg's video tfxd is in presentation time, see protocol.md §2.6).
    assert_eq!(s.fragments.len(), 10);
    for (i, f) in s.fragments.iter().enumerate() {
        assert_eq!(f.moof.trafs.len(), 1);
        let t = &f.moof.trafs[0];
        assert_eq!(t.track_id, 1 + (i % 2) as u32, "tracks alternate");
        assert_eq!(t.tfhd_flags, 0x20);
        assert_eq!(t.children, ["tfhd", "trun", "uuid:tfxd"]);
        assert_eq!(t.data_offset, Some(f.moof_size as i32 + 8));
        assert_eq!(
            t.samples.iter().map(|x| x.size as usize).sum::<usize>(),
            f.mdat.len()
        );
        let tfxd = t.tfxd.unwrap();
        assert_eq!(tfxd.version, 1);
        if t.track_id == 1 {
            assert_eq!(
                t.samples[0].flags, SAMPLE_FLAGS_SYNC,
                "fragment starts with an IDR"
            );
        } else {
            let sum: u64 = t.samples.iter().map(|x| u64::from(x.duration)).sum();
            assert_eq!(tfxd.duration, sum);
        }
    }
    s
}

#[test]
fn ffmpeg_valid_fixture_parses_with_continuous_tfxd_and_mfra() {
    let b = fixture("ffmpeg-ismv-push-valid.mp4");
    let s = check_ffmpeg_fixture(&b);
    assert!(s.ends_with_mfra);
    assert_eq!(s.top_level.last().map(String::as_str), Some("mfra"));
    for track in [1, 2] {
        let times: Vec<(u64, u64)> = s
            .fragments
            .iter()
            .map(|f| &f.moof.trafs[0])
            .filter(|t| t.track_id == track)
            .map(|t| t.tfxd.map(|x| (x.absolute_time, x.duration)).unwrap())
            .collect();
        assert_eq!(times.len(), 5);
        for w in times.windows(2) {
            assert_eq!(w[1].0, w[0].0 + w[0].1, "track {track}: tfxd gap/overlap");
        }
    }
}

#[test]
fn ffmpeg_negative_fixture_parses_and_shows_wrapped_audio_tfxd() {
    let b = fixture("ffmpeg-ismv-push-negative-audio-tfxd.mp4");
    let s = check_ffmpeg_fixture(&b);
    assert!(!s.ends_with_mfra);
    let first_audio = s
        .fragments
        .iter()
        .map(|f| &f.moof.trafs[0])
        .find(|t| t.track_id == 2)
        .unwrap();
    // FFmpeg wrote -213333 (AAC priming) into the unsigned 64-bit field.
    assert_eq!(
        first_audio.tfxd.unwrap().absolute_time,
        0u64.wrapping_sub(213_333)
    );
}

#[test]
fn splitter_cuts_the_ffmpeg_fixture_into_the_same_boxes_as_parse_stream() {
    let b = fixture("ffmpeg-ismv-push-valid.mp4");
    let top = parse_stream(&b).unwrap().top_level;
    let mut s = BoxSplitter::new(1 << 20);
    let mut names = Vec::new();
    let mut total = 0;
    // Chunk sizes from a fixed pseudo-random sequence, 1 byte to ~16 KiB.
    let mut x = 0x2545_f491_u32;
    let mut pos = 0;
    while pos < b.len() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let n = (1 + (x as usize % 16_384)).min(b.len() - pos);
        s.push(&b[pos..pos + n]);
        pos += n;
        while let Some((h, bytes)) = s.next_box().unwrap() {
            assert_eq!(&bytes[..], &b[total..total + bytes.len()]);
            total += bytes.len();
            names.push(h.name());
        }
    }
    assert_eq!(names, top);
    assert_eq!(total, b.len());
}

fn have_ffmpeg_tools() -> bool {
    let ok = |tool: &str| {
        Command::new(tool)
            .arg("-version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let have = ok("ffprobe") && ok("ffmpeg");
    if !have {
        eprintln!("ffprobe/ffmpeg not installed: skipping the third-party check");
    }
    have
}

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// ffprobe + a full ffmpeg decode of `stream` must report no error; returns the per-stream
/// (codec_name, packet count) ffprobe reads.
fn ffprobe_check(stream: &[u8]) -> Vec<(String, u64, serde_json::Value)> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stream.ismv");
    std::fs::write(&path, stream).unwrap();
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&path)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "",
        "ffmpeg decode errors"
    );
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_packets",
            "-of",
            "json",
            "-show_entries",
        ])
        .arg("stream=codec_name,width,height,channels,sample_rate,nb_read_packets")
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "ffprobe errors");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    json["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["codec_name"].as_str().unwrap().to_owned(),
                s["nb_read_packets"].as_str().unwrap().parse().unwrap(),
                s.clone(),
            )
        })
        .collect()
}

/// One access unit: (is IDR, AVCC sample).
type Picture = (bool, Vec<u8>);

/// Annex-B H.264 → (SPS, PPS, access units).
fn annex_b_to_avcc(b: &[u8]) -> (Vec<u8>, Vec<u8>, Vec<Picture>) {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= b.len() {
        if b[i..i + 3] == [0, 0, 1] {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut nals = Vec::new();
    for (k, &s) in starts.iter().enumerate() {
        let mut end = starts.get(k + 1).map_or(b.len(), |&n| n - 3);
        while end > s && b[end - 1] == 0 {
            end -= 1; // zero byte of a 4-byte start code / trailing_zero_8bits
        }
        nals.push(&b[s..end]);
    }
    let (mut sps, mut pps) = (None, None);
    let mut samples: Vec<Picture> = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    for nal in nals {
        let ty = nal[0] & 0x1F;
        match ty {
            7 => {
                sps.get_or_insert_with(|| nal.to_vec());
            }
            8 => {
                pps.get_or_insert_with(|| nal.to_vec());
            }
            1 | 5 if nal[1] & 0x80 != 0 => {
                // first_mb_in_slice == 0: a new picture.
                let mut data = std::mem::take(&mut pending);
                data.extend((nal.len() as u32).to_be_bytes());
                data.extend(nal);
                samples.push((ty == 5, data));
            }
            1 | 5 => {
                let last = samples.last_mut().unwrap();
                last.1.extend((nal.len() as u32).to_be_bytes());
                last.1.extend(nal);
            }
            9 => {}
            _ => {
                pending.extend((nal.len() as u32).to_be_bytes());
                pending.extend(nal);
            }
        }
    }
    (sps.unwrap(), pps.unwrap(), samples)
}

/// ADTS → (AudioSpecificConfig, channels, sample rate, raw AAC frames).
fn adts_to_raw(b: &[u8]) -> (Vec<u8>, u16, u32, Vec<Vec<u8>>) {
    const RATES: [u32; 13] = [
        96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
    ];
    let mut frames = Vec::new();
    let mut asc = None;
    let mut pos = 0;
    while pos + 7 <= b.len() {
        let h = &b[pos..];
        assert_eq!((h[0], h[1] & 0xF6), (0xFF, 0xF0), "ADTS sync at {pos}");
        let header_len = if h[1] & 1 == 1 { 7 } else { 9 };
        let profile = h[2] >> 6;
        let sfi = (h[2] >> 2) & 0xF;
        let ch = ((h[2] & 1) << 2) | (h[3] >> 6);
        let len = (usize::from(h[3] & 3) << 11) | (usize::from(h[4]) << 3) | usize::from(h[5] >> 5);
        asc.get_or_insert((profile + 1, sfi, ch));
        frames.push(h[header_len..len].to_vec());
        pos += len;
    }
    let (aot, sfi, ch) = asc.unwrap();
    let v = (u16::from(aot) << 11) | (u16::from(sfi) << 7) | (u16::from(ch) << 3);
    (
        v.to_be_bytes().to_vec(),
        u16::from(ch),
        RATES[usize::from(sfi)],
        frames,
    )
}

fn fragment(
    track_id: u32,
    sequence: u32,
    start: u64,
    samples: &[(u32, u32, Vec<u8>, i32)],
) -> Vec<u8> {
    let entries: Vec<SampleEntry> = samples
        .iter()
        .map(|(duration, flags, data, cto)| SampleEntry {
            duration: *duration,
            size: data.len() as u32,
            flags: *flags,
            composition_offset: *cto,
        })
        .collect();
    let payload: Vec<u8> = samples.iter().flat_map(|s| s.2.iter().copied()).collect();
    let spec = FragmentSpec {
        track_id,
        sequence,
        absolute_time: start,
        duration: entries.iter().map(|e| u64::from(e.duration)).sum(),
        samples: entries,
    };
    write_fragment(&spec, &payload).unwrap()
}

#[test]
fn ffprobe_decodes_our_header_and_fragments_of_fresh_x264_and_aac() {
    if !have_ffmpeg_tools() {
        return;
    }
    let h264 = run(Command::new("ffmpeg").args([
        "-v",
        "error",
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=320x240:rate=25",
        "-frames:v",
        "10",
        "-pix_fmt",
        "yuv420p",
        "-c:v",
        "libx264",
        "-g",
        "5",
        "-keyint_min",
        "5",
        "-sc_threshold",
        "0",
        "-bf",
        "0",
        "-bsf:v",
        "h264_mp4toannexb",
        "-f",
        "h264",
        "-",
    ]));
    let adts = run(Command::new("ffmpeg").args([
        "-v",
        "error",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=1000:sample_rate=48000",
        "-t",
        "0.8",
        "-c:a",
        "aac",
        "-b:a",
        "96k",
        "-f",
        "adts",
        "-",
    ]));
    let (sps, pps, pictures) = annex_b_to_avcc(&h264);
    assert_eq!(pictures.len(), 10);
    let (asc, channels, sample_rate, frames) = adts_to_raw(&adts);
    assert!(frames.len() >= 20);
    let tracks = vec![
        TrackInfo {
            track_id: 1,
            track_name: "video".into(),
            bitrate: 300_000,
            timescale: 10_000_000,
            codec: TrackCodec::Avc(AvcConfig {
                sps,
                pps,
                width: 320,
                height: 240,
                reorder_frames: 0,
            }),
        },
        TrackInfo {
            track_id: 2,
            track_name: "audio".into(),
            bitrate: 96_000,
            timescale: 10_000_000,
            codec: TrackCodec::Aac(AacConfig {
                asc,
                channels,
                sample_rate,
                delay: 1024,
            }),
        },
    ];
    let mut stream = stream_header(&tracks, "smoothcast-test");
    // Frame index since the epoch at 25 fps; sample time = n × 400 000 ticks.
    let n0 = 1_700_000_000u64 * 25;
    let half = frames.len() / 2;
    for k in 0..2usize {
        let video: Vec<_> = pictures[5 * k..5 * k + 5]
            .iter()
            .map(|(idr, d)| {
                let flags = if *idr {
                    SAMPLE_FLAGS_SYNC
                } else {
                    SAMPLE_FLAGS_NON_SYNC
                };
                (400_000, flags, d.clone(), 0)
            })
            .collect();
        assert!(pictures[5 * k].0, "fragment {k} starts with an IDR");
        stream.extend(fragment(1, k as u32, (n0 + 5 * k as u64) * 400_000, &video));
        let t = |j: u64| (u128::from(j) * 1024 * 10_000_000 / u128::from(sample_rate)) as u64;
        let j0 = n0 * 48_000 / 25 / 1024 + (half * k) as u64;
        let audio: Vec<_> = frames[half * k..half * (k + 1)]
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let j = j0 + i as u64;
                ((t(j + 1) - t(j)) as u32, SAMPLE_FLAGS_SYNC, d.clone(), 0)
            })
            .collect();
        stream.extend(fragment(2, k as u32, t(j0), &audio));
    }
    stream.extend_from_slice(&empty_mfra());

    let probed = ffprobe_check(&stream);
    assert_eq!(probed.len(), 2);
    assert_eq!((probed[0].0.as_str(), probed[0].1), ("h264", 10));
    assert_eq!(
        (
            probed[0].2["width"].as_u64(),
            probed[0].2["height"].as_u64()
        ),
        (Some(320), Some(240))
    );
    assert_eq!(
        (probed[1].0.as_str(), probed[1].1),
        ("aac", 2 * half as u64)
    );
    assert_eq!(probed[1].2["sample_rate"].as_str(), Some("48000"));
    assert_eq!(probed[1].2["channels"].as_u64(), Some(1));
    // And our own parser agrees with what we meant to write.
    let s = parse_stream(&stream).unwrap();
    assert_eq!(s.fragments.len(), 4);
    assert!(s.ends_with_mfra);
}

#[test]
fn ffprobe_decodes_fixture_samples_with_b_frames_rewritten_by_us() {
    if !have_ffmpeg_tools() {
        return;
    }
    let b = fixture("ffmpeg-ismv-push-valid.mp4");
    let src = parse_stream(&b).unwrap();
    let m = src.manifest.as_ref().unwrap();
    let mv = &src.moov.tracks[0];
    let (sps, pps, _) = mv.avc.clone().unwrap();
    let audio = &m.tracks[1];
    let tracks = vec![
        TrackInfo {
            track_id: 1,
            track_name: m.tracks[0].track_name(),
            bitrate: m.tracks[0].system_bitrate,
            timescale: mv.timescale,
            codec: TrackCodec::Avc(AvcConfig {
                sps,
                pps,
                width: mv.width,
                height: mv.height,
                reorder_frames: 2,
            }),
        },
        TrackInfo {
            track_id: 2,
            track_name: audio.track_name(),
            bitrate: audio.system_bitrate,
            timescale: audio.timescale(),
            codec: TrackCodec::Aac(AacConfig {
                asc: audio.codec_private_data().unwrap(),
                channels: audio.param("Channels").unwrap().parse().unwrap(),
                sample_rate: 48_000,
                delay: 1024,
            }),
        },
    ];
    let mut stream = stream_header(&tracks, "smoothcast-test");
    let mut counts = [0u64; 2];
    let mut any_cto = false;
    for f in &src.fragments[..4] {
        let t = &f.moof.trafs[0];
        let spec = FragmentSpec {
            track_id: t.track_id,
            sequence: f.moof.sequence,
            absolute_time: t.tfxd.unwrap().absolute_time,
            duration: t.tfxd.unwrap().duration,
            samples: t.samples.clone(),
        };
        any_cto |= t.samples.iter().any(|s| s.composition_offset != 0);
        counts[(t.track_id - 1) as usize] += t.samples.len() as u64;
        stream.extend(write_fragment(&spec, &b[f.mdat.clone()]).unwrap());
    }
    assert!(any_cto, "the fixture's video has B-frames");
    let probed = ffprobe_check(&stream);
    assert_eq!((probed[0].0.as_str(), probed[0].1), ("h264", counts[0]));
    assert_eq!(
        (
            probed[0].2["width"].as_u64(),
            probed[0].2["height"].as_u64()
        ),
        (Some(640), Some(360))
    );
    assert_eq!((probed[1].0.as_str(), probed[1].1), ("aac", counts[1]));
    assert_eq!(probed[1].2["channels"].as_u64(), Some(1));
}
