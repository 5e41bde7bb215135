//! Pixel-format conversion against buffers in the layouts V4L2 drivers deliver.
//!
//! The buffers in `tests/data/v4l2/` are FFmpeg renderings (no capture card on the build
//! machines; `generate.sh` there makes them): one `testsrc` picture as UYVY, YUYV, NV12, YU12
//! and MJPEG, plus FFmpeg's own conversion of each to yuv420p, which the converter must match.

use smoothcast::capture::i420_size;
use smoothcast::capture::v4l2::convert::{BufferLayout, Converter, PixelFormat};
use smoothcast::capture::v4l2::interlace::{self, comb_energy};
use smoothcast::capture::v4l2::V4l2Error;
use std::path::PathBuf;

const W: u32 = 128;
const H: u32 = 72;

fn data(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/v4l2")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn convert(layout: BufferLayout, src: &[u8]) -> Vec<u8> {
    let mut c = Converter::new(layout).unwrap();
    let mut out = Vec::new();
    c.convert(src, &mut out).unwrap();
    assert_eq!(out.len(), i420_size(layout.width, layout.height));
    out
}

/// Re-lays a tightly packed buffer with `pad` extra bytes after every line of every plane
/// (`rows` = (row length, row count) per plane).
fn pad_rows(src: &[u8], rows: &[(usize, usize)], pad: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at = 0;
    for (&(len, count), &p) in rows.iter().zip(pad) {
        for _ in 0..count {
            out.extend_from_slice(&src[at..at + len]);
            out.extend(std::iter::repeat_n(0xEE, p));
            at += len;
        }
    }
    out
}

fn assert_same(got: &[u8], want: &[u8], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: size");
    let diffs = got.iter().zip(want).filter(|(a, b)| a != b).count();
    assert_eq!(
        diffs, 0,
        "{what}: {diffs} bytes differ from FFmpeg's conversion"
    );
}

#[test]
fn uyvy_converts_exactly_like_ffmpeg() {
    let out = convert(
        BufferLayout::packed(PixelFormat::Uyvy, W, H),
        &data("testsrc-128x72.uyvy"),
    );
    assert_same(&out, &data("ref-uyvy.yuv420p"), "UYVY");
}

#[test]
fn yuyv_converts_exactly_like_ffmpeg() {
    let out = convert(
        BufferLayout::packed(PixelFormat::Yuyv, W, H),
        &data("testsrc-128x72.yuyv"),
    );
    assert_same(&out, &data("ref-yuyv.yuv420p"), "YUYV");
}

#[test]
fn nv12_converts_exactly_like_ffmpeg() {
    let out = convert(
        BufferLayout::packed(PixelFormat::Nv12, W, H),
        &data("testsrc-128x72.nv12"),
    );
    assert_same(&out, &data("ref-nv12.yuv420p"), "NV12");
}

#[test]
fn yuv420_is_copied_unchanged() {
    let src = data("testsrc-128x72.yuv420");
    let out = convert(BufferLayout::packed(PixelFormat::Yuv420, W, H), &src);
    assert_same(&out, &src, "YU12");
}

/// Format, fixture, (row length, rows) per plane, padding per plane, resulting bytesperline.
type PaddedCase = (
    PixelFormat,
    &'static str,
    Vec<(usize, usize)>,
    Vec<usize>,
    u32,
);

#[test]
fn padded_lines_give_the_same_picture_in_every_raw_format() {
    let (w, h) = (W as usize, H as usize);
    let cases: [PaddedCase; 4] = [
        (
            PixelFormat::Uyvy,
            "testsrc-128x72.uyvy",
            vec![(2 * w, h)],
            vec![64],
            2 * W + 64,
        ),
        (
            PixelFormat::Yuyv,
            "testsrc-128x72.yuyv",
            vec![(2 * w, h)],
            vec![32],
            2 * W + 32,
        ),
        // NV12 keeps the luma stride for its chroma plane.
        (
            PixelFormat::Nv12,
            "testsrc-128x72.nv12",
            vec![(w, h), (w, h / 2)],
            vec![64, 64],
            W + 64,
        ),
        // YU12 halves it for each chroma plane.
        (
            PixelFormat::Yuv420,
            "testsrc-128x72.yuv420",
            vec![(w, h), (w / 2, h / 2), (w / 2, h / 2)],
            vec![64, 32, 32],
            W + 64,
        ),
    ];
    for (format, file, rows, pad, stride) in cases {
        let packed = data(file);
        let want = convert(BufferLayout::packed(format, W, H), &packed);
        let padded = pad_rows(&packed, &rows, &pad);
        let layout = BufferLayout {
            format,
            width: W,
            height: H,
            stride,
        };
        assert!(padded.len() >= layout.min_bytes());
        let got = convert(layout, &padded);
        assert_same(
            &got,
            &want,
            &format!("{format:?} with bytesperline {stride}"),
        );
    }
}

#[test]
fn mjpeg_decodes_exactly_like_ffmpeg_into_limited_range() {
    let out = convert(
        BufferLayout::packed(PixelFormat::Mjpeg, W, H),
        &data("testsrc-128x72.mjpeg"),
    );
    assert_same(&out, &data("ref-mjpeg.yuv420p"), "MJPEG");
    // Full-range JPEG became limited range: no luma below 16 or above 235.
    let luma = &out[..(W * H) as usize];
    assert!(luma.iter().all(|&y| (16..=235).contains(&y)));
}

#[test]
fn short_and_corrupt_buffers_are_errors_not_panics() {
    let layout = BufferLayout::packed(PixelFormat::Uyvy, W, H);
    let mut c = Converter::new(layout).unwrap();
    let mut out = Vec::new();
    let src = data("testsrc-128x72.uyvy");
    assert!(matches!(
        c.convert(&src[..src.len() - 1], &mut out),
        Err(V4l2Error::ShortBuffer { .. })
    ));
    let mut m = Converter::new(BufferLayout::packed(PixelFormat::Mjpeg, W, H)).unwrap();
    let jpeg = data("testsrc-128x72.mjpeg");
    // A truncated JPEG is either refused or decoded partially (FFmpeg emulates the missing
    // end); what matters is that it neither panics nor wedges the decoder.
    let _ = m.convert(&jpeg[..jpeg.len() / 3], &mut out);
    assert!(m.convert(b"definitely not a jpeg", &mut out).is_err());
    // The decoder recovers on the next good picture.
    m.convert(&jpeg, &mut out).unwrap();
}

#[test]
fn impossible_layouts_are_refused() {
    for layout in [
        BufferLayout::packed(PixelFormat::Uyvy, 127, 72),
        BufferLayout::packed(PixelFormat::Nv12, 128, 71),
        BufferLayout {
            format: PixelFormat::Yuyv,
            width: 128,
            height: 72,
            stride: 200,
        },
        BufferLayout::packed(PixelFormat::Yuv420, 0, 72),
    ] {
        assert!(Converter::new(layout).is_err(), "{layout:?}");
    }
}

#[test]
fn interlaced_buffer_is_deinterlaced_by_blend_and_by_bob() {
    let (w, h) = (128u32, 144u32);
    let woven = convert(
        BufferLayout::packed(PixelFormat::Uyvy, w, h),
        &data("testsrc-128x144-interlaced-tff.uyvy"),
    );
    let luma = (w * h) as usize;
    let combed = comb_energy(&woven[..luma], w, h);

    let mut blended = woven.clone();
    interlace::blend_luma(&mut blended, w, h, &mut Vec::new());
    let blend_comb = comb_energy(&blended[..luma], w, h);
    assert!(
        blend_comb < combed * 0.6,
        "blend: comb energy {blend_comb:.2} vs woven {combed:.2}"
    );

    let mut top = vec![0; woven.len()];
    let mut bottom = vec![0; woven.len()];
    interlace::bob_field(&woven, &mut top, w, h, false);
    interlace::bob_field(&woven, &mut bottom, w, h, true);
    for y in (0..h as usize).step_by(2) {
        let row = y * w as usize..(y + 1) * w as usize;
        assert_eq!(
            top[row.clone()],
            woven[row],
            "top field keeps its own lines"
        );
    }
    for pic in [&top, &bottom] {
        let c = comb_energy(&pic[..luma], w, h);
        assert!(
            c < combed * 0.6,
            "bob field comb energy {c:.2} vs woven {combed:.2}"
        );
    }
    // The fields are two different moments: the pictures differ.
    assert_ne!(top[..luma], bottom[..luma]);
}
