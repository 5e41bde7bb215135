//! Ladder scaler: sizes, colour neutrality, pass-through without copy, buffer reuse, and the
//! same pixels as FFmpeg's own `scale` filter.

use smoothcast::capture::{i420_size, FrameOrigin, VideoFrame};
use smoothcast::encode::scale::Scaler;
use smoothcast::encode::EncodeError;
use smoothcast::profile::ScaleKernel;
use smoothcast::time::FrameIndex;
use std::process::Command;
use std::sync::Arc;

fn flat(n: u64, w: u32, h: u32, y: u8, u: u8, v: u8) -> VideoFrame {
    let luma = (w * h) as usize;
    let chroma = (i420_size(w, h) - luma) / 2;
    let mut data = vec![y; luma];
    data.extend(std::iter::repeat_n(u, chroma));
    data.extend(std::iter::repeat_n(v, chroma));
    VideoFrame {
        index: FrameIndex(n),
        width: w,
        height: h,
        data: Arc::new(data),
        origin: FrameOrigin::Repeat,
    }
}

/// Luma and chroma gradients with some sharp edges, to exercise the filter taps.
fn pattern(w: u32, h: u32) -> VideoFrame {
    let (wu, hu) = (w as usize, h as usize);
    let mut data = vec![0u8; i420_size(w, h)];
    for y in 0..hu {
        for x in 0..wu {
            let edge = if (x / 16 + y / 16) % 2 == 0 { 60 } else { 0 };
            data[y * wu + x] = 16 + ((x * 3 + y) % 150) as u8 + edge;
        }
    }
    let (cw, ch) = (wu.div_ceil(2), hu.div_ceil(2));
    for i in 0..cw * ch {
        data[wu * hu + i] = 16 + (i % 224) as u8;
        data[wu * hu + cw * ch + i] = 240 - (i % 224) as u8;
    }
    VideoFrame {
        index: FrameIndex(42_500_000_000),
        width: w,
        height: h,
        data: Arc::new(data),
        origin: FrameOrigin::Live,
    }
}

#[test]
fn downscale_gives_requested_size_and_keeps_index_and_origin() {
    let mut s = Scaler::new((640, 360), (320, 180)).expect("scaler");
    let src = flat(42_500_000_007, 640, 360, 100, 120, 140);
    let out = s.scale(&src).expect("scale");
    assert_eq!((out.width, out.height), (320, 180));
    assert_eq!(out.data.len(), i420_size(320, 180));
    assert_eq!(out.index, src.index);
    assert_eq!(out.origin, FrameOrigin::Repeat);
}

#[test]
fn flat_grey_stays_grey_up_and_down_and_at_odd_sizes() {
    for (src, dst) in [
        ((640, 360), (320, 180)),
        ((320, 180), (1280, 720)),
        ((1280, 720), (427, 241)),
    ] {
        let mut s = Scaler::new(src, dst).expect("scaler");
        let out = s
            .scale(&flat(1, src.0, src.1, 128, 128, 128))
            .expect("scale");
        assert_eq!(out.data.len(), i420_size(dst.0, dst.1));
        assert!(
            out.data.iter().all(|&b| b == 128),
            "{src:?}->{dst:?}: grey changed"
        );
        // A non-neutral flat colour keeps its exact values too.
        let out = s.scale(&flat(2, src.0, src.1, 81, 90, 240)).expect("scale");
        let luma = (dst.0 * dst.1) as usize;
        let chroma = (out.data.len() - luma) / 2;
        assert!(out.data[..luma].iter().all(|&b| b == 81));
        assert!(out.data[luma..luma + chroma].iter().all(|&b| b == 90));
        assert!(out.data[luma + chroma..].iter().all(|&b| b == 240));
    }
}

#[test]
fn same_size_passes_the_frame_through_without_copy() {
    let mut s = Scaler::new((320, 180), (320, 180)).expect("scaler");
    let src = flat(5, 320, 180, 16, 128, 128);
    let out = s.scale(&src).expect("scale");
    assert!(Arc::ptr_eq(&src.data, &out.data));
    assert_eq!(out.index, src.index);
}

#[test]
fn output_buffers_are_reused_once_downstream_drops_them() {
    let mut s = Scaler::new((640, 360), (320, 180)).expect("scaler");
    let src = flat(1, 640, 360, 128, 128, 128);
    let a = s.scale(&src).expect("scale");
    let b = s.scale(&src).expect("scale");
    assert!(
        !Arc::ptr_eq(&a.data, &b.data),
        "a held buffer is never overwritten"
    );
    let a_ptr = Arc::as_ptr(&a.data);
    drop(a);
    let c = s.scale(&src).expect("scale");
    assert_eq!(Arc::as_ptr(&c.data), a_ptr, "the dropped buffer is reused");
    assert!(b.data.iter().all(|&x| x == 128), "held frame intact");
}

#[test]
fn wrong_input_size_or_short_buffer_is_an_error() {
    let mut s = Scaler::new((640, 360), (320, 180)).expect("scaler");
    let err = s.scale(&flat(9, 320, 180, 1, 2, 3));
    assert!(matches!(err, Err(EncodeError::Encode { .. })), "{err:?}");
    let mut short = flat(9, 640, 360, 1, 2, 3);
    short.data = Arc::new(vec![0; 1000]);
    assert!(s.scale(&short).is_err());
    assert!(Scaler::new((0, 360), (320, 180)).is_err());
}

#[test]
fn pixels_match_ffmpeg_scale_filter_for_every_kernel() {
    // 640x360 -> 426x240 (1.5x, misaligned rows as 854-wide rungs) and -> 320x180 (2x).
    // The pattern has edges and ramps; the noise has every rounding case (sums of 2×2 blocks
    // in all residues mod 4 for the exact-halving path).
    let src = (640u32, 360u32);
    for frame in [pattern(src.0, src.1), noise(src.0, src.1)] {
        scaled_pixels_match_ffmpeg(&frame, src);
    }
}

fn noise(w: u32, h: u32) -> VideoFrame {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let data = (0..i420_size(w, h))
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 56) as u8
        })
        .collect();
    VideoFrame {
        data: Arc::new(data),
        ..pattern(w, h)
    }
}

fn scaled_pixels_match_ffmpeg(frame: &VideoFrame, src: (u32, u32)) {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.yuv");
    std::fs::write(&input, &frame.data[..]).expect("write");
    for kernel in ScaleKernel::ALL {
        for dst in [(426u32, 240u32), (320, 180)] {
            let mut s = Scaler::with_kernel(src, dst, kernel).expect("scaler");
            let ours = s.scale(frame).expect("scale");
            let out = Command::new("ffmpeg")
                .args([
                    "-nostdin", "-v", "error", "-f", "rawvideo", "-pix_fmt", "yuv420p",
                ])
                .args(["-s", &format!("{}x{}", src.0, src.1), "-i"])
                .arg(&input)
                .args([
                    "-vf",
                    &format!("scale={}:{}:flags={}", dst.0, dst.1, kernel.name()),
                ])
                .args(["-f", "rawvideo", "-pix_fmt", "yuv420p", "-"])
                .output()
                .expect("run ffmpeg");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(out.stdout.len(), ours.data.len());
            let max_diff = out
                .stdout
                .iter()
                .zip(ours.data.iter())
                .map(|(a, b)| a.abs_diff(*b))
                .max()
                .unwrap_or(0);
            assert_eq!(
                max_diff, 0,
                "{kernel:?} {dst:?} differs from ffmpeg's scale filter"
            );
        }
    }
}

#[test]
fn default_scaler_is_bicubic_like_ffmpeg() {
    let frame = pattern(640, 360);
    let a = Scaler::new((640, 360), (426, 240))
        .expect("scaler")
        .scale(&frame)
        .expect("scale");
    let b = Scaler::with_kernel((640, 360), (426, 240), ScaleKernel::Bicubic)
        .expect("scaler")
        .scale(&frame)
        .expect("scale");
    assert_eq!(a.data, b.data);
    assert_eq!(ScaleKernel::default(), ScaleKernel::Bicubic);
}
