//! Pixel-format conversion of captured buffers to the encoder's I420.
//!
//! Every conversion reads the driver's buffer once and writes the tightly packed I420 picture
//! once, straight into a pooled output buffer: no intermediate picture, no per-frame
//! allocation. Packed 4:2:2 (UYVY, YUYV) loses half its chroma rows: each I420 chroma sample is
//! the rounded mean of the two 4:2:2 samples above each other, which is exactly what FFmpeg's
//! swscale does for `uyvy422 → yuv420p` (the tests compare byte for byte). MJPEG is decoded by
//! FFmpeg's `mjpeg` decoder and converted (full → limited range, 4:2:2 → 4:2:0) by swscale
//! with the flags of FFmpeg's own command line (bicubic), so it matches `ffmpeg -pix_fmt
//! yuv420p` byte for byte too.
//!
//! Strides: V4L2 drivers may pad every line (`bytesperline` > the minimum); single-buffer
//! NV12 keeps the luma stride for its interleaved chroma plane, YUV420 (`YU12`) halves it for
//! each chroma plane — as the V4L2 specification lays those formats out.

use super::V4l2Error;
use crate::capture::{i420_planes, i420_size};
use ff::ffi;
use ffmpeg_next as ff;
use serde::{Deserialize, Serialize};
use std::ffi::c_int;
use std::ptr::{self, NonNull};

/// Spare bytes kept after every output picture: swscale's SIMD code may store a little past
/// the last row of the last plane.
pub(crate) const PAD: usize = 64;

/// The capture pixel formats smoothcast converts, in V4L2 terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PixelFormat {
    /// `V4L2_PIX_FMT_UYVY`: packed 4:2:2, bytes U0 Y0 V0 Y1 (SDI cards' native order).
    Uyvy,
    /// `V4L2_PIX_FMT_YUYV`: packed 4:2:2, bytes Y0 U0 Y1 V0 (UVC webcams, HDMI grabbers).
    Yuyv,
    /// `V4L2_PIX_FMT_NV12`: luma plane, then one interleaved U/V plane at half height.
    Nv12,
    /// `V4L2_PIX_FMT_YUV420` (`YU12`): planar 4:2:0, the encoder's own layout.
    Yuv420,
    /// `V4L2_PIX_FMT_MJPEG`: one JPEG picture per buffer (USB webcams at HD rates).
    Mjpeg,
}

impl PixelFormat {
    /// Every supported format.
    pub const ALL: [PixelFormat; 5] = [
        PixelFormat::Uyvy,
        PixelFormat::Yuyv,
        PixelFormat::Nv12,
        PixelFormat::Yuv420,
        PixelFormat::Mjpeg,
    ];

    /// The V4L2 four-character code.
    pub fn fourcc(self) -> [u8; 4] {
        match self {
            PixelFormat::Uyvy => *b"UYVY",
            PixelFormat::Yuyv => *b"YUYV",
            PixelFormat::Nv12 => *b"NV12",
            PixelFormat::Yuv420 => *b"YU12",
            PixelFormat::Mjpeg => *b"MJPG",
        }
    }

    /// The format of a V4L2 four-character code (`JPEG` is treated as `MJPG`, as drivers use
    /// both for the same baseline JPEG stream).
    pub fn from_fourcc(code: &[u8]) -> Option<PixelFormat> {
        match code {
            b"UYVY" => Some(PixelFormat::Uyvy),
            b"YUYV" => Some(PixelFormat::Yuyv),
            b"NV12" => Some(PixelFormat::Nv12),
            b"YU12" => Some(PixelFormat::Yuv420),
            b"MJPG" | b"JPEG" => Some(PixelFormat::Mjpeg),
            _ => None,
        }
    }

    /// The four-character code as text (`"UYVY"`).
    pub fn fourcc_str(self) -> &'static str {
        match self {
            PixelFormat::Uyvy => "UYVY",
            PixelFormat::Yuyv => "YUYV",
            PixelFormat::Nv12 => "NV12",
            PixelFormat::Yuv420 => "YU12",
            PixelFormat::Mjpeg => "MJPG",
        }
    }

    /// True for compressed formats (the buffer size varies; `bytesused` counts).
    pub fn is_compressed(self) -> bool {
        self == PixelFormat::Mjpeg
    }

    /// Smallest `bytesperline` of the first plane for `width` pixels (0 for compressed).
    pub fn min_stride(self, width: u32) -> u32 {
        match self {
            PixelFormat::Uyvy | PixelFormat::Yuyv => width.saturating_mul(2),
            PixelFormat::Nv12 | PixelFormat::Yuv420 => width,
            PixelFormat::Mjpeg => 0,
        }
    }
}

/// How one captured buffer is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferLayout {
    /// The pixel format.
    pub format: PixelFormat,
    /// Picture width in pixels (even for the raw formats).
    pub width: u32,
    /// Picture height in pixels (even for the raw formats).
    pub height: u32,
    /// `bytesperline` of the first plane as the driver reports it (≥ the minimum; ignored for
    /// MJPEG).
    pub stride: u32,
}

impl BufferLayout {
    /// A layout without line padding.
    pub fn packed(format: PixelFormat, width: u32, height: u32) -> BufferLayout {
        BufferLayout {
            format,
            width,
            height,
            stride: format.min_stride(width),
        }
    }

    /// Bytes a buffer must hold at least (0 for MJPEG, whose size varies).
    pub fn min_bytes(&self) -> usize {
        let (w, h, s) = (
            self.width as usize,
            self.height as usize,
            self.stride as usize,
        );
        if w == 0 || h == 0 {
            return 0;
        }
        match self.format {
            PixelFormat::Uyvy | PixelFormat::Yuyv => s * (h - 1) + 2 * w,
            // Luma rows, then h/2 chroma rows of the same stride; the last row need not be
            // padded.
            PixelFormat::Nv12 => s * h + s * (h / 2 - 1) + w,
            PixelFormat::Yuv420 => s * h + (s / 2) * (h / 2) + (s / 2) * (h / 2 - 1) + w / 2,
            PixelFormat::Mjpeg => 0,
        }
    }

    fn check(&self) -> Result<(), V4l2Error> {
        let bad = |reason: String| Err(V4l2Error::Format(reason));
        if self.width == 0 || self.height == 0 || self.width > 16_384 || self.height > 16_384 {
            return bad(format!(
                "{}x{} is not a picture size",
                self.width, self.height
            ));
        }
        if self.format.is_compressed() {
            return Ok(());
        }
        if !self.width.is_multiple_of(2) || !self.height.is_multiple_of(2) {
            return bad(format!(
                "{} at {}x{}: 4:2:x formats need an even width and height",
                self.format.fourcc_str(),
                self.width,
                self.height
            ));
        }
        if self.stride < self.format.min_stride(self.width) {
            return bad(format!(
                "{} at {} pixels: bytesperline {} is below the minimum {}",
                self.format.fourcc_str(),
                self.width,
                self.stride,
                self.format.min_stride(self.width)
            ));
        }
        if self.format == PixelFormat::Yuv420 && !self.stride.is_multiple_of(2) {
            return bad(format!(
                "YU12 bytesperline {} is odd (chroma planes use half of it)",
                self.stride
            ));
        }
        Ok(())
    }
}

/// Converts buffers of one [`BufferLayout`] to tightly packed I420 of the same size.
pub struct Converter {
    layout: BufferLayout,
    mjpeg: Option<MjpegDecoder>,
}

impl std::fmt::Debug for Converter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Converter")
            .field("layout", &self.layout)
            .finish_non_exhaustive()
    }
}

impl Converter {
    /// A converter for `layout`; refuses impossible layouts (odd sizes, short strides).
    pub fn new(layout: BufferLayout) -> Result<Converter, V4l2Error> {
        layout.check()?;
        let mjpeg = if layout.format == PixelFormat::Mjpeg {
            Some(MjpegDecoder::new()?)
        } else {
            None
        };
        Ok(Converter { layout, mjpeg })
    }

    /// The input layout.
    pub fn layout(&self) -> BufferLayout {
        self.layout
    }

    /// Output picture size in bytes (I420).
    pub fn output_size(&self) -> usize {
        i420_size(self.layout.width, self.layout.height)
    }

    /// Converts one buffer (`src` = the `bytesused` bytes the driver filled) into `dst`, which
    /// is resized to [`Converter::output_size`] bytes (a reused buffer keeps its allocation;
    /// a little spare capacity is reserved for FFmpeg's SIMD stores).
    pub fn convert(&mut self, src: &[u8], dst: &mut Vec<u8>) -> Result<(), V4l2Error> {
        let l = self.layout;
        let size = self.output_size();
        dst.resize(size, 0);
        dst.reserve(PAD);
        let need = l.min_bytes();
        if src.len() < need {
            return Err(V4l2Error::ShortBuffer {
                got: src.len(),
                need,
            });
        }
        match l.format {
            PixelFormat::Uyvy => packed422(src, dst, l, [1, 0, 2]),
            PixelFormat::Yuyv => packed422(src, dst, l, [0, 1, 3]),
            PixelFormat::Nv12 => nv12(src, dst, l),
            PixelFormat::Yuv420 => yuv420(src, dst, l),
            PixelFormat::Mjpeg => match self.mjpeg.as_mut() {
                Some(d) => d.decode(src, dst, l.width, l.height)?,
                None => return Err(V4l2Error::Decode("MJPEG decoder missing".into())),
            },
        }
        Ok(())
    }
}

/// Packed 4:2:2 → I420. `pos` = byte offsets of Y0, U, V inside each 4-byte macropixel (Y1 is
/// at Y0 + 2).
fn packed422(src: &[u8], dst: &mut [u8], l: BufferLayout, pos: [usize; 3]) {
    let (w, h, s) = (l.width as usize, l.height as usize, l.stride as usize);
    let [(_, _, _), (uoff, cw, _), (voff, _, _)] = i420_planes(l.width, l.height);
    let (ydst, chroma) = dst.split_at_mut(uoff);
    let (udst, vdst) = chroma.split_at_mut(voff - uoff);
    let [py, pu, pv] = pos;
    for cy in 0..h / 2 {
        let r0 = &src[2 * cy * s..2 * cy * s + 2 * w];
        let r1 = &src[(2 * cy + 1) * s..(2 * cy + 1) * s + 2 * w];
        let (y0, y1) = ydst[2 * cy * w..(2 * cy + 2) * w].split_at_mut(w);
        let urow = &mut udst[cy * cw..cy * cw + cw];
        let vrow = &mut vdst[cy * cw..cy * cw + cw];
        let rows = r0.chunks_exact(4).zip(r1.chunks_exact(4));
        let outs = y0
            .chunks_exact_mut(2)
            .zip(y1.chunks_exact_mut(2))
            .zip(urow.iter_mut().zip(vrow.iter_mut()));
        for ((a, b), ((ya, yb), (u, v))) in rows.zip(outs) {
            ya[0] = a[py];
            ya[1] = a[py + 2];
            yb[0] = b[py];
            yb[1] = b[py + 2];
            // Rounded mean of the two rows (swscale's 4:2:2 → 4:2:0 vertical decimation).
            *u = ((u16::from(a[pu]) + u16::from(b[pu]) + 1) >> 1) as u8;
            *v = ((u16::from(a[pv]) + u16::from(b[pv]) + 1) >> 1) as u8;
        }
    }
}

/// NV12 → I420: copy luma rows, de-interleave the chroma plane.
fn nv12(src: &[u8], dst: &mut [u8], l: BufferLayout) {
    let (w, h, s) = (l.width as usize, l.height as usize, l.stride as usize);
    let [(_, _, _), (uoff, cw, ch), (voff, _, _)] = i420_planes(l.width, l.height);
    for y in 0..h {
        dst[y * w..(y + 1) * w].copy_from_slice(&src[y * s..y * s + w]);
    }
    let (_, chroma) = dst.split_at_mut(uoff);
    let (udst, vdst) = chroma.split_at_mut(voff - uoff);
    let base = s * h;
    for cy in 0..ch {
        let row = &src[base + cy * s..base + cy * s + 2 * cw];
        let urow = &mut udst[cy * cw..(cy + 1) * cw];
        let vrow = &mut vdst[cy * cw..(cy + 1) * cw];
        for ((uv, u), v) in row
            .chunks_exact(2)
            .zip(urow.iter_mut())
            .zip(vrow.iter_mut())
        {
            *u = uv[0];
            *v = uv[1];
        }
    }
}

/// YUV420 (`YU12`) → I420: the same planes, only line padding removed (one memcpy when the
/// driver pads nothing).
fn yuv420(src: &[u8], dst: &mut [u8], l: BufferLayout) {
    let (w, h, s) = (l.width as usize, l.height as usize, l.stride as usize);
    if s == w {
        let n = dst.len();
        dst.copy_from_slice(&src[..n]);
        return;
    }
    let [_, (uoff, cw, ch), (voff, _, _)] = i420_planes(l.width, l.height);
    for y in 0..h {
        dst[y * w..(y + 1) * w].copy_from_slice(&src[y * s..y * s + w]);
    }
    let cs = s / 2;
    let (ubase, vbase) = (s * h, s * h + cs * ch);
    for cy in 0..ch {
        dst[uoff + cy * cw..uoff + (cy + 1) * cw]
            .copy_from_slice(&src[ubase + cy * cs..ubase + cy * cs + cw]);
        dst[voff + cy * cw..voff + (cy + 1) * cw]
            .copy_from_slice(&src[vbase + cy * cs..vbase + cy * cs + cw]);
    }
}

/// FFmpeg's MJPEG decoder plus a swscale context to I420 (BT.709, limited range).
struct MjpegDecoder {
    decoder: ff::decoder::Video,
    frame: ff::frame::Video,
    sws: Option<Sws>,
}

// SAFETY: the decoder, frame and swscale context are owned exclusively by this value and used
// from one thread at a time (the capture thread owning the converter); FFmpeg keeps no
// thread-affine state in them.
unsafe impl Send for MjpegDecoder {}

/// A swscale context for one decoded format/size, writing into caller-provided planes.
struct Sws {
    ctx: NonNull<ffi::SwsContext>,
    key: (ffi::AVPixelFormat, u32, u32),
}

impl Drop for Sws {
    fn drop(&mut self) {
        // SAFETY: created by sws_getContext, freed once.
        unsafe { ffi::sws_freeContext(self.ctx.as_ptr()) };
    }
}

impl MjpegDecoder {
    fn new() -> Result<MjpegDecoder, V4l2Error> {
        ff::init().map_err(|e| V4l2Error::Decode(format!("FFmpeg initialisation: {e}")))?;
        let codec = ff::codec::decoder::find(ff::codec::Id::MJPEG)
            .ok_or_else(|| V4l2Error::Decode("this FFmpeg has no MJPEG decoder".into()))?;
        let decoder = ff::codec::context::Context::new_with_codec(codec)
            .decoder()
            .video()
            .map_err(|e| V4l2Error::Decode(format!("cannot open the MJPEG decoder: {e}")))?;
        Ok(MjpegDecoder {
            decoder,
            frame: ff::frame::Video::empty(),
            sws: None,
        })
    }

    fn decode(&mut self, src: &[u8], dst: &mut Vec<u8>, w: u32, h: u32) -> Result<(), V4l2Error> {
        let dec = |e: ff::Error| V4l2Error::Decode(format!("MJPEG: {e}"));
        // The borrowed packet is copied into a padded buffer by FFmpeg before decoding, so
        // the driver's buffer may be re-queued as soon as this returns.
        self.decoder
            .send_packet(&ff::packet::Borrow::new(src))
            .map_err(dec)?;
        self.decoder.receive_frame(&mut self.frame).map_err(dec)?;
        if (self.frame.width(), self.frame.height()) != (w, h) {
            return Err(V4l2Error::Decode(format!(
                "MJPEG picture is {}x{}, the negotiated format {w}x{h}",
                self.frame.width(),
                self.frame.height()
            )));
        }
        let src_fmt = ffi::AVPixelFormat::from(self.frame.format());
        let (src_fmt, full_range) = match src_fmt {
            // The deprecated "J" formats mean full range; name the plain format and say so
            // instead (swscale warns about the J formats).
            ffi::AVPixelFormat::AV_PIX_FMT_YUVJ420P => (ffi::AVPixelFormat::AV_PIX_FMT_YUV420P, 1),
            ffi::AVPixelFormat::AV_PIX_FMT_YUVJ422P => (ffi::AVPixelFormat::AV_PIX_FMT_YUV422P, 1),
            ffi::AVPixelFormat::AV_PIX_FMT_YUVJ444P => (ffi::AVPixelFormat::AV_PIX_FMT_YUV444P, 1),
            ffi::AVPixelFormat::AV_PIX_FMT_YUVJ440P => (ffi::AVPixelFormat::AV_PIX_FMT_YUV440P, 1),
            f => (f, 0),
        };
        let key = (src_fmt, w, h);
        if self.sws.as_ref().map(|s| s.key) != Some(key) {
            self.sws = None;
            let (cw, ch) = (
                c_int::try_from(w).unwrap_or(0),
                c_int::try_from(h).unwrap_or(0),
            );
            // SAFETY: plain constructor call with valid sizes and formats.
            let ctx = unsafe {
                ffi::sws_getContext(
                    cw,
                    ch,
                    src_fmt,
                    cw,
                    ch,
                    ffi::AVPixelFormat::AV_PIX_FMT_YUV420P,
                    ffi::SWS_BICUBIC,
                    ptr::null_mut(),
                    ptr::null_mut(),
                    ptr::null(),
                )
            };
            let ctx = NonNull::new(ctx).ok_or_else(|| {
                V4l2Error::Decode(format!("swscale cannot convert {src_fmt:?} to yuv420p"))
            })?;
            // JPEG's Y'CbCr is BT.601 full range; the encoder wants limited range. Keep the
            // matrix (webcams do not signal one) and convert the range only.
            // SAFETY: ctx is valid; the coefficient table is static inside swscale.
            unsafe {
                let table = ffi::sws_getCoefficients(ffi::SWS_CS_ITU601);
                ffi::sws_setColorspaceDetails(
                    ctx.as_ptr(),
                    table,
                    full_range,
                    table,
                    0,
                    0,
                    1 << 16,
                    1 << 16,
                );
            }
            self.sws = Some(Sws { ctx, key });
        }
        let Some(sws) = &self.sws else {
            return Err(V4l2Error::Decode("no swscale context".into()));
        };
        let planes = i420_planes(w, h);
        let mut src_ptr = [ptr::null::<u8>(); 4];
        let mut src_stride = [0 as c_int; 4];
        let mut dst_ptr = [ptr::null_mut::<u8>(); 4];
        let mut dst_stride = [0 as c_int; 4];
        // SAFETY: reading the plane pointers and strides of a decoded frame.
        unsafe {
            let f = &*self.frame.as_ptr();
            for (dst, src) in src_ptr.iter_mut().zip(&f.data[..3]) {
                *dst = src.cast_const();
            }
            src_stride[..3].copy_from_slice(&f.linesize[..3]);
        }
        let base = dst.as_mut_ptr();
        for i in 0..3 {
            dst_ptr[i] = base.wrapping_add(planes[i].0);
            dst_stride[i] = planes[i].1 as c_int;
        }
        // SAFETY: the source planes belong to the decoded frame; the destination planes lie
        // inside `dst`, whose allocation has PAD spare bytes after the last plane for
        // swscale's SIMD stores (ensured by `Converter::convert`).
        let rows = unsafe {
            ffi::sws_scale(
                sws.ctx.as_ptr(),
                src_ptr.as_ptr(),
                src_stride.as_ptr(),
                0,
                c_int::try_from(h).unwrap_or(0),
                dst_ptr.as_ptr(),
                dst_stride.as_ptr(),
            )
        };
        if rows <= 0 {
            return Err(V4l2Error::Decode(format!("sws_scale failed ({rows})")));
        }
        Ok(())
    }
}
