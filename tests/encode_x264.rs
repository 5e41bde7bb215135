//! x264 rung encoder: the grid rules (IDR at every fragment boundary and nowhere else, closed
//! GOPs, bounded reordering), determinism, and a clean decode by FFmpeg.

use smoothcast::capture::{i420_size, FrameOrigin, VideoFrame};
use smoothcast::encode::x264::X264Encoder;
use smoothcast::encode::{EncodeError, EncodedPicture};
use smoothcast::profile::RungPlan;
use smoothcast::time::{FrameIndex, Rate};
use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Arc;

const W: u32 = 320;
const H: u32 = 180;
const GOP: u64 = 25;
/// A realistic absolute frame index (2023 at 25 fps), on a GOP boundary.
const FIRST: u64 = 1_700_000_000 * 25;

fn rate() -> Rate {
    Rate::new(25, 1).expect("25 fps")
}

fn rung(bframes: u32, extra: &[(&str, &str)]) -> RungPlan {
    RungPlan {
        name: "180p".into(),
        track_id: 2,
        track_name: "video_180p".into(),
        width: W,
        height: H,
        bitrate_kbps: 400,
        max_bitrate_kbps: 500,
        buffer_kbit: 800,
        preset: "veryfast".into(),
        tune: None,
        profile: "high".into(),
        level: None,
        bframes,
        threads: 2,
        x264_params: extra
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

/// A deterministic test picture: a diagonal luma gradient and a bright square that both move
/// with the frame index, plus slowly drifting chroma, all in limited range.
fn frame(n: u64, w: u32, h: u32) -> VideoFrame {
    let (wu, hu) = (w as usize, h as usize);
    let mut data = vec![0u8; i420_size(w, h)];
    let t = n as usize;
    for y in 0..hu {
        for x in 0..wu {
            data[y * wu + x] = 16 + ((x + 2 * y + 3 * t) % 200) as u8;
        }
    }
    let (sx, sy) = ((t * 4) % (wu - 40), (t * 2) % (hu - 40));
    for y in sy..sy + 32 {
        for x in sx..sx + 32 {
            data[y * wu + x] = 230;
        }
    }
    let (cw, ch) = (wu.div_ceil(2), hu.div_ceil(2));
    for y in 0..ch {
        for x in 0..cw {
            data[wu * hu + y * cw + x] = 16 + ((x + t) % 224) as u8;
            data[wu * hu + cw * ch + y * cw + x] = 16 + ((y + 2 * t) % 224) as u8;
        }
    }
    VideoFrame {
        index: FrameIndex(n),
        width: w,
        height: h,
        data: Arc::new(data),
        origin: FrameOrigin::Live,
    }
}

/// Encodes frames `[first, first+count)`, forcing an IDR at every `n % GOP == 0`, then flushes.
fn encode_run(enc: &mut X264Encoder, first: u64, count: u64) -> Vec<EncodedPicture> {
    let mut out = Vec::new();
    for n in first..first + count {
        enc.encode(&frame(n, W, H), n % GOP == 0, &mut out)
            .expect("encode");
    }
    enc.flush(&mut out).expect("flush");
    out
}

/// NAL unit types of one AVCC sample (4-byte big-endian length prefixes).
fn nal_types(sample: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    let mut rest = sample;
    while !rest.is_empty() {
        assert!(rest.len() >= 5, "truncated NAL length prefix");
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        assert!(
            len >= 1 && 4 + len <= rest.len(),
            "NAL length {len} overruns sample"
        );
        types.push(rest[4] & 0x1f);
        rest = &rest[4 + len..];
    }
    types
}

/// Largest number of pictures that precede a picture in decode order but follow it in output
/// order — the H.264 `max_num_reorder_frames` definition.
fn reorder_depth(pics: &[EncodedPicture]) -> u32 {
    (0..pics.len())
        .map(|i| pics[..i].iter().filter(|p| p.pts > pics[i].pts).count() as u32)
        .max()
        .unwrap_or(0)
}

#[test]
fn idr_exactly_at_every_forced_fragment_boundary() {
    let mut enc = X264Encoder::new("video_180p", &rung(3, &[]), rate(), GOP).expect("open");
    let pics = encode_run(&mut enc, FIRST, 3 * GOP);
    assert_eq!(
        pics.len() as u64,
        3 * GOP,
        "one output picture per input frame"
    );
    let pts: BTreeSet<u64> = pics.iter().map(|p| p.pts.0).collect();
    assert_eq!(
        pts,
        (FIRST..FIRST + 3 * GOP).collect(),
        "pts are the frame indices"
    );

    let idrs: BTreeSet<u64> = pics
        .iter()
        .filter(|p| p.keyframe)
        .map(|p| p.pts.0)
        .collect();
    let boundaries: BTreeSet<u64> = (0..3).map(|k| FIRST + k * GOP).collect();
    assert_eq!(idrs, boundaries);
    for p in &pics {
        let types = nal_types(&p.data);
        assert_eq!(
            types.contains(&5),
            p.keyframe,
            "IDR slice NALs exactly in keyframes ({}: {types:?})",
            p.pts
        );
        assert!(
            !types.contains(&7) && !types.contains(&8) && !types.contains(&9),
            "no in-band SPS/PPS/AUD ({}: {types:?})",
            p.pts
        );
    }
}

#[test]
fn encoder_started_mid_gop_keys_only_its_first_frame_and_boundaries() {
    let first = FIRST + 7;
    let mut enc = X264Encoder::new("video_180p", &rung(3, &[]), rate(), GOP).expect("open");
    let pics = encode_run(&mut enc, first, 2 * GOP);
    let idrs: BTreeSet<u64> = pics
        .iter()
        .filter(|p| p.keyframe)
        .map(|p| p.pts.0)
        .collect();
    assert_eq!(idrs, BTreeSet::from([first, FIRST + GOP, FIRST + 2 * GOP]));
}

#[test]
fn gops_are_closed_in_decode_order() {
    let mut enc = X264Encoder::new("video_180p", &rung(3, &[]), rate(), GOP).expect("open");
    let pics = encode_run(&mut enc, FIRST, 3 * GOP);
    let gops: Vec<u64> = pics.iter().map(|p| p.pts.0 / GOP).collect();
    assert!(
        gops.windows(2).all(|w| w[0] <= w[1]),
        "a picture of GOP k+1 came out before the end of GOP k: {gops:?}"
    );
    // Each GOP starts (in decode order) with its IDR, and no picture refers across: the IDR
    // is also the earliest picture of its GOP in presentation order.
    for (i, p) in pics.iter().enumerate() {
        let starts_gop = i == 0 || gops[i - 1] != gops[i];
        assert_eq!(starts_gop, p.keyframe, "decode slot {i} pts {}", p.pts.0);
        if p.keyframe {
            assert_eq!(p.pts.0 % GOP, 0);
        }
    }
}

#[test]
fn reorder_depth_matches_config_for_each_bframe_setting() {
    // b-adapt 0 makes x264 use every allowed B-frame, so the depth is actually reached.
    for (bframes, pyramid, want) in [
        (0, "normal", 0),
        (1, "none", 1),
        (3, "none", 1),
        (3, "normal", 2),
    ] {
        let r = rung(bframes, &[("b-adapt", "0"), ("b-pyramid", pyramid)]);
        let mut enc = X264Encoder::new("video_180p", &r, rate(), GOP).expect("open");
        assert_eq!(
            enc.config().reorder_frames,
            want,
            "bframes {bframes} pyramid {pyramid}"
        );
        let pics = encode_run(&mut enc, FIRST, 2 * GOP);
        assert_eq!(
            reorder_depth(&pics),
            want,
            "measured reorder depth, bframes {bframes} pyramid {pyramid}"
        );
        // The bound the packager relies on: a picture never presents earlier than its decode
        // slot minus the reorder depth, so composition offsets are >= 0 with dts = slot - depth.
        for (i, p) in pics.iter().enumerate() {
            assert!(
                FIRST + i as u64 <= p.pts.0 + u64::from(want),
                "slot {i} pts {}",
                p.pts.0
            );
        }
    }
}

#[test]
fn default_bframes_reorder_depth_is_respected() {
    let mut enc = X264Encoder::new("video_180p", &rung(3, &[]), rate(), GOP).expect("open");
    let depth = enc.config().reorder_frames;
    let pics = encode_run(&mut enc, FIRST, 3 * GOP);
    assert!(reorder_depth(&pics) <= depth);
}

/// Set in the child processes of `identical_input_gives_identical_bytes_with_one_thread`: the
/// file its one encode is written to.
const REPEAT_OUT: &str = "SMOOTHCAST_TEST_X264_REPEAT_OUT";

#[test]
fn identical_input_gives_identical_bytes_with_one_thread() {
    // Bit-exact repeatability needs threads = 1 when VBV is on: x264's VBV planning reads the
    // in-progress size estimates of the other frame threads (see X264Encoder::new).
    // Each encode runs in a fresh process, as two boxes of a 1+1 pair do: within one process,
    // after an encoder with frame threads has run (other tests here), consecutive threads = 1
    // encodes were seen to differ (20 of 20 runs with `--test-threads 1`), so x264 carries
    // some process state across encoders; the property that matters is fresh-process output.
    let mut r = rung(3, &[]);
    r.threads = 1;
    if let Some(out) = std::env::var_os(REPEAT_OUT) {
        let mut enc = X264Encoder::new("video_180p", &r, rate(), GOP).expect("open");
        let cfg = enc.config().clone();
        let mut bytes = format!("{cfg:?}\n").into_bytes();
        for p in encode_run(&mut enc, FIRST, 2 * GOP) {
            bytes.extend(format!("{} {} {}\n", p.pts, p.keyframe, p.data.len()).bytes());
            bytes.extend_from_slice(&p.data);
        }
        std::fs::write(out, bytes).expect("write");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |name: &str| {
        let path = dir.path().join(name);
        let status = Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "identical_input_gives_identical_bytes_with_one_thread",
            ])
            .env(REPEAT_OUT, &path)
            .stdout(std::process::Stdio::null())
            .status()
            .expect("run the encode in a child process");
        assert!(status.success(), "child encode failed: {status}");
        std::fs::read(&path).expect("child output")
    };
    let (a, b) = (run("a"), run("b"));
    assert!(a.len() > 10_000, "an encode of {} bytes", a.len());
    assert!(a == b, "two fresh encodes of the same input differ");
}

/// Annex-B elementary stream: SPS/PPS before every IDR, start codes instead of lengths.
fn annex_b(sps: &[u8], pps: &[u8], pics: &[EncodedPicture]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in pics {
        if p.keyframe {
            for ps in [sps, pps] {
                out.extend_from_slice(&[0, 0, 0, 1]);
                out.extend_from_slice(ps);
            }
        }
        let mut rest = &p.data[..];
        while rest.len() >= 4 {
            let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(&rest[4..4 + len]);
            rest = &rest[4 + len..];
        }
    }
    out
}

#[test]
fn stream_decodes_cleanly_with_ffmpeg() {
    let mut enc = X264Encoder::new("video_180p", &rung(3, &[]), rate(), GOP).expect("open");
    let cfg = enc.config().clone();
    assert_eq!((cfg.width, cfg.height), (W, H));
    assert_eq!(cfg.sps[0] & 0x1f, 7, "SPS NAL header");
    assert_eq!(cfg.pps[0] & 0x1f, 8, "PPS NAL header");
    assert_eq!(cfg.sps[1], 100, "High profile");
    let pics = encode_run(&mut enc, FIRST, 3 * GOP);

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rung.h264");
    std::fs::write(&path, annex_b(&cfg.sps, &cfg.pps, &pics)).expect("write");

    let dec = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(&path)
        .args(["-f", "null", "-"])
        .output()
        .expect("run ffmpeg");
    assert!(dec.status.success(), "ffmpeg failed");
    assert_eq!(String::from_utf8_lossy(&dec.stderr), "", "decode errors");

    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=width,height,nb_read_frames,has_b_frames,profile",
            "-of",
            "csv=p=0",
        ])
        .arg(&path)
        .output()
        .expect("run ffprobe");
    assert!(probe.status.success());
    assert_eq!(
        String::from_utf8_lossy(&probe.stdout).trim(),
        format!("High,{W},{H},{},{}", cfg.reorder_frames, 3 * GOP)
    );
}

fn setup_reason(r: Result<X264Encoder, EncodeError>) -> String {
    match r {
        Err(EncodeError::Setup { track, reason }) => {
            assert_eq!(track, "video_180p");
            reason
        }
        Err(e) => panic!("expected a setup error, got {e}"),
        Ok(_) => panic!("expected a setup error, the encoder opened"),
    }
}

#[test]
fn unknown_x264_param_is_a_setup_error_naming_the_key() {
    let reason = setup_reason(X264Encoder::new(
        "video_180p",
        &rung(0, &[("no-such-knob", "1")]),
        rate(),
        GOP,
    ));
    assert!(reason.contains("no-such-knob"), "{reason}");
    let reason = setup_reason(X264Encoder::new(
        "video_180p",
        &rung(0, &[("me", "telepathy")]),
        rate(),
        GOP,
    ));
    assert!(
        reason.contains("\"me\"") && reason.contains("telepathy"),
        "{reason}"
    );
}

#[test]
fn x264_params_that_break_the_grid_are_rejected() {
    for extra in [
        ("keyint", "50"),
        ("scenecut", "40"),
        ("open-gop", "1"),
        ("annexb", "1"),
    ] {
        // B-frames on: without them x264 silently turns open-gop off again.
        let reason = setup_reason(X264Encoder::new(
            "video_180p",
            &rung(3, &[extra]),
            rate(),
            GOP,
        ));
        assert!(reason.contains("fragment grid"), "{extra:?}: {reason}");
    }
}

#[test]
fn forced_level_and_baseline_profile_land_in_the_sps() {
    let mut r = rung(3, &[]);
    r.level = Some("3.0".into());
    r.profile = "baseline".into();
    let enc = X264Encoder::new("video_180p", &r, rate(), GOP).expect("open");
    let cfg = enc.config();
    assert_eq!(cfg.sps[1], 66, "profile_idc baseline");
    assert_eq!(cfg.sps[3], 30, "level_idc 3.0");
    assert_eq!(cfg.reorder_frames, 0, "baseline has no B-frames");
}

#[test]
fn bad_preset_tune_level_profile_or_size_is_a_setup_error() {
    let mut r = rung(0, &[]);
    r.preset = "warp-speed".into();
    assert!(setup_reason(X264Encoder::new("video_180p", &r, rate(), GOP)).contains("warp-speed"));
    let mut r = rung(0, &[]);
    r.tune = Some("zerolatency,telepathy".into());
    assert!(setup_reason(X264Encoder::new("video_180p", &r, rate(), GOP)).contains("telepathy"));
    let mut r = rung(0, &[]);
    r.level = Some("9.9".into());
    assert!(setup_reason(X264Encoder::new("video_180p", &r, rate(), GOP)).contains("level"));
    let mut r = rung(0, &[]);
    r.profile = "ultra".into();
    assert!(setup_reason(X264Encoder::new("video_180p", &r, rate(), GOP)).contains("ultra"));
    let mut r = rung(0, &[]);
    r.width = 321; // 4:2:0 needs even sizes
    let reason = setup_reason(X264Encoder::new("video_180p", &r, rate(), GOP));
    assert!(!reason.is_empty());
}

#[test]
fn wrong_frame_size_is_an_error_not_ub() {
    let mut enc = X264Encoder::new("video_180p", &rung(0, &[]), rate(), GOP).expect("open");
    let mut out = Vec::new();
    let big = frame(FIRST, 640, 360);
    match enc.encode(&big, true, &mut out) {
        Err(EncodeError::Encode { track, at, reason }) => {
            assert_eq!(track, "video_180p");
            assert!(at.contains(&FIRST.to_string()), "{at}");
            assert!(reason.contains("640x360"), "{reason}");
        }
        other => panic!("expected an encode error, got {other:?}"),
    }
    let mut short = frame(FIRST, W, H);
    short.data = Arc::new(vec![0; 100]);
    assert!(enc.encode(&short, true, &mut out).is_err());
    assert!(out.is_empty());
    // The encoder is still usable afterwards.
    enc.encode(&frame(FIRST, W, H), true, &mut out)
        .expect("encode");
    enc.flush(&mut out).expect("flush");
    assert_eq!(out.len(), 1);
    assert!(out[0].keyframe);
}

#[test]
fn encoder_moves_to_another_thread() {
    fn assert_send<T: Send>(_: &T) {}
    let mut enc = X264Encoder::new("video_180p", &rung(0, &[]), rate(), GOP).expect("open");
    assert_send(&enc);
    let pics = std::thread::spawn(move || encode_run(&mut enc, FIRST, 5))
        .join()
        .expect("thread");
    assert_eq!(pics.len(), 5);
}
