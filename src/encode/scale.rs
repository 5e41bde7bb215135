//! Picture scaling for the ladder: one [`Scaler`] per distinct rung size, I420 → I420.
//!
//! swscale works directly on the packed planes of [`VideoFrame`]s (no copy into an `AVFrame`),
//! and output buffers come from a small pool that is refilled as soon as downstream stages
//! drop their references, so steady state allocates nothing per frame.
//!
//! One exception to "no copy": when a packed output plane's rows are not 16-byte aligned
//! (854-wide rungs: strides 854 and 427), swscale's SIMD vertical filter falls back to a
//! slower MMX path for every misaligned row. Such sizes are scaled into an aligned scratch
//! picture and copied into the packed buffer, which is cheaper (benches/hot_paths.rs: about
//! 1.16 → 0.9 ms of CPU per 1280x720 → 854x480 frame, copy included). The pixels are the same.

use super::EncodeError;
use crate::capture::{i420_planes, i420_size, VideoFrame};
use crate::profile::ScaleKernel;
use ffmpeg_next::ffi;
use std::ffi::c_int;
use std::ptr::{self, NonNull};
use std::sync::Arc;

/// Output buffers kept for reuse. Enough for the frames in flight between the scaler and the
/// encoder (bounded channel + x264 lookahead holds none: x264 copies its input).
const POOL_SIZE: usize = 8;

/// Extra bytes allocated (as capacity, not length) after every output picture: SIMD code in
/// swscale may store a little past the last row of the last plane.
const PAD: usize = 64;

/// Row alignment swscale's SIMD output paths want, and what the scratch picture uses.
const ALIGN: usize = 64;

/// An output picture with `ALIGN`-aligned plane strides, for sizes whose packed rows are not.
struct Scratch {
    buf: Vec<u8>,
    /// `(offset from the aligned start, stride)` of Y, U, V.
    planes: [(usize, usize); 3],
}

impl Scratch {
    /// A scratch picture for `(w, h)` if its packed layout has misaligned rows, else `None`.
    fn for_size(w: u32, h: u32) -> Option<Scratch> {
        let packed = i420_planes(w, h);
        if packed
            .iter()
            .all(|&(off, stride, _)| off % 16 == 0 && stride % 16 == 0)
        {
            return None;
        }
        let (w, h) = (w as usize, h as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let (ys, cs) = (w.next_multiple_of(ALIGN), cw.next_multiple_of(ALIGN));
        let planes = [(0, ys), (ys * h, cs), (ys * h + cs * ch, cs)];
        let size = ys * h + 2 * cs * ch;
        Some(Scratch {
            buf: vec![0; size + ALIGN + PAD],
            planes,
        })
    }

    /// Offset in `buf` where the aligned picture starts.
    fn start(&self) -> usize {
        self.buf.as_ptr().align_offset(ALIGN).min(ALIGN)
    }
}

/// swscale's flags for a kernel: the same as FFmpeg's `scale=…:flags=<name>` (no accurate
/// rounding, no full chroma interpolation), so the pixels match FFmpeg's filter.
fn sws_flags(kernel: ScaleKernel) -> c_int {
    match kernel {
        ScaleKernel::Bicubic => ffi::SWS_BICUBIC,
        ScaleKernel::Bilinear => ffi::SWS_BILINEAR,
        ScaleKernel::Area => ffi::SWS_AREA,
    }
}

/// An I420 → I420 resizer (a [`ScaleKernel`], bicubic by default as FFmpeg's `scale` filter,
/// BT.709 limited).
pub struct Scaler {
    ctx: Option<NonNull<ffi::SwsContext>>,
    src: (u32, u32),
    dst: (u32, u32),
    pool: Vec<Arc<Vec<u8>>>,
    /// Aligned intermediate picture when the packed output rows are misaligned.
    scratch: Option<Scratch>,
    /// Area kernel at exactly half the size in both directions (chroma too): done by
    /// [`halve_plane`] instead of swscale, with the same pixels.
    halve: bool,
}

// SAFETY: the SwsContext is only used through `&mut self`; it has no thread affinity.
unsafe impl Send for Scaler {}

impl std::fmt::Debug for Scaler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scaler")
            .field("src", &self.src)
            .field("dst", &self.dst)
            .finish_non_exhaustive()
    }
}

impl Scaler {
    /// A bicubic scaler from `src` to `dst` (width, height); see [`Scaler::with_kernel`].
    pub fn new(src: (u32, u32), dst: (u32, u32)) -> Result<Scaler, EncodeError> {
        Scaler::with_kernel(src, dst, ScaleKernel::Bicubic)
    }

    /// A scaler from `src` to `dst` (width, height) with `kernel`. Equal sizes make a
    /// pass-through that returns the input frame itself (shared buffer, no copy).
    pub fn with_kernel(
        src: (u32, u32),
        dst: (u32, u32),
        kernel: ScaleKernel,
    ) -> Result<Scaler, EncodeError> {
        let setup = |reason: String| EncodeError::Setup {
            track: format!("scaler {}x{}->{}x{}", src.0, src.1, dst.0, dst.1),
            reason,
        };
        let dim = |v: u32| c_int::try_from(v).ok().filter(|&v| v > 0);
        let (Some(sw), Some(sh), Some(dw), Some(dh)) =
            (dim(src.0), dim(src.1), dim(dst.0), dim(dst.1))
        else {
            return Err(setup("sizes must be non-zero and fit a C int".into()));
        };
        if src == dst {
            return Ok(Scaler {
                ctx: None,
                src,
                dst,
                pool: Vec::new(),
                scratch: None,
                halve: false,
            });
        }
        // SAFETY: plain constructor call with valid sizes and formats; null filters/params
        // select swscale's defaults.
        let ctx = unsafe {
            ffi::sws_getContext(
                sw,
                sh,
                ffi::AVPixelFormat::AV_PIX_FMT_YUV420P,
                dw,
                dh,
                ffi::AVPixelFormat::AV_PIX_FMT_YUV420P,
                sws_flags(kernel),
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null(),
            )
        };
        let ctx = NonNull::new(ctx).ok_or_else(|| setup("sws_getContext failed".into()))?;
        // Record BT.709 limited range on both sides so swscale never assumes BT.601 or full
        // range if it ever has to convert internally.
        // SAFETY: ctx is valid; the coefficient tables are static inside swscale.
        unsafe {
            let table = ffi::sws_getCoefficients(ffi::SWS_CS_ITU709);
            ffi::sws_setColorspaceDetails(ctx.as_ptr(), table, 0, table, 0, 0, 1 << 16, 1 << 16);
        }
        Ok(Scaler {
            ctx: Some(ctx),
            src,
            dst,
            pool: Vec::with_capacity(POOL_SIZE),
            scratch: Scratch::for_size(dst.0, dst.1),
            halve: kernel == ScaleKernel::Area
                && src == (2 * dst.0, 2 * dst.1)
                && dst.0.is_multiple_of(2)
                && dst.1.is_multiple_of(2),
        })
    }

    /// Output size (width, height).
    pub fn output_size(&self) -> (u32, u32) {
        self.dst
    }

    /// Scales `src` to the output size. The result keeps `src`'s frame index and origin.
    pub fn scale(&mut self, src: &VideoFrame) -> Result<VideoFrame, EncodeError> {
        let (s, d) = (self.src, self.dst);
        let err = |reason: String| EncodeError::Encode {
            track: format!("scaler {}x{}->{}x{}", s.0, s.1, d.0, d.1),
            at: src.index.to_string(),
            reason,
        };
        if (src.width, src.height) != self.src {
            return Err(err(format!(
                "picture is {}x{}, scaler expects {}x{}",
                src.width, src.height, self.src.0, self.src.1
            )));
        }
        if src.data.len() < i420_size(src.width, src.height) {
            return Err(err(format!(
                "picture buffer holds {} bytes, I420 needs {}",
                src.data.len(),
                i420_size(src.width, src.height)
            )));
        }
        let Some(ctx) = self.ctx else {
            return Ok(src.clone());
        };

        let mut buf = self.take_buffer();
        let Some(out) = Arc::get_mut(&mut buf) else {
            return Err(err("pool buffer unexpectedly shared".into()));
        };
        let dst_planes = i420_planes(self.dst.0, self.dst.1);
        let src_planes = src.planes();
        if self.halve {
            for (&(soff, sstride, _), &(doff, dstride, drows)) in src_planes.iter().zip(&dst_planes)
            {
                halve_plane(
                    &src.data[soff..],
                    sstride,
                    &mut out[doff..doff + dstride * drows],
                    dstride,
                );
            }
            return Ok(self.finish(buf, src));
        }
        let mut src_ptr = [ptr::null::<u8>(); 4];
        let mut src_stride = [0 as c_int; 4];
        let mut dst_ptr = [ptr::null_mut::<u8>(); 4];
        let mut dst_stride = [0 as c_int; 4];
        let sbase = src.data.as_ptr();
        let dst_layout: [(usize, usize); 3] = match &self.scratch {
            Some(s) => s.planes,
            None => dst_planes.map(|(off, stride, _)| (off, stride)),
        };
        let dbase = match self.scratch.as_mut() {
            Some(s) => {
                let start = s.start();
                s.buf.as_mut_ptr().wrapping_add(start)
            }
            None => out.as_mut_ptr(),
        };
        for i in 0..3 {
            // Offsets are within the buffers (lengths checked above / sized by take_buffer or
            // Scratch::for_size); strides fit c_int because the sizes do.
            src_ptr[i] = sbase.wrapping_add(src_planes[i].0);
            src_stride[i] = src_planes[i].1 as c_int;
            dst_ptr[i] = dbase.wrapping_add(dst_layout[i].0);
            dst_stride[i] = dst_layout[i].1 as c_int;
        }
        // SAFETY: ctx is valid; the source planes are readable and the destination planes
        // writable for their full size (plus PAD capacity after the end).
        let rows = unsafe {
            ffi::sws_scale(
                ctx.as_ptr(),
                src_ptr.as_ptr(),
                src_stride.as_ptr(),
                0,
                self.src.1 as c_int,
                dst_ptr.as_ptr(),
                dst_stride.as_ptr(),
            )
        };
        if rows <= 0 {
            return Err(err(format!("sws_scale failed ({rows})")));
        }
        if let Some(s) = &self.scratch {
            let start = s.start();
            for (&(off, stride, rows), &(soff, sstride)) in dst_planes.iter().zip(&s.planes) {
                let width = stride; // packed: the stride is the plane width
                let src_rows = s.buf[start + soff..].chunks(sstride);
                let dst_rows = out[off..off + stride * rows].chunks_mut(stride);
                for (d, r) in dst_rows.zip(src_rows) {
                    d.copy_from_slice(&r[..width]);
                }
            }
        }
        Ok(self.finish(buf, src))
    }

    /// Keeps `buf` for reuse and wraps it as the scaled picture of `src`.
    fn finish(&mut self, buf: Arc<Vec<u8>>, src: &VideoFrame) -> VideoFrame {
        if self.pool.len() < POOL_SIZE {
            self.pool.push(Arc::clone(&buf));
        }
        VideoFrame {
            index: src.index,
            width: self.dst.0,
            height: self.dst.1,
            data: buf,
            origin: src.origin,
        }
    }

    /// A buffer of the output size that nobody else references: a pooled one whose frames have
    /// been dropped downstream (taken out of the pool so it is unique), else a new one.
    fn take_buffer(&mut self) -> Arc<Vec<u8>> {
        if let Some(pos) = self.pool.iter_mut().position(|b| Arc::get_mut(b).is_some()) {
            return self.pool.swap_remove(pos);
        }
        let size = i420_size(self.dst.0, self.dst.1);
        let mut v = Vec::with_capacity(size + PAD);
        v.resize(size, 0);
        Arc::new(v)
    }
}

/// Halves a plane: each output sample is the rounded mean of the 2×2 source block it covers,
/// `(a + b + c + d + 2) >> 2` — exactly what swscale's area kernel computes at a 2:1 ratio
/// (horizontal coefficients ½, ½ in 14 bits give `(a + b) << 6`, vertical ½, ½ in 12 bits plus
/// its rounding constant give the sum above; `pixels_match_ffmpeg_scale_filter_for_every_kernel`
/// checks it against FFmpeg), at a fraction of swscale's cost (it runs a general 3-tap filter
/// over every source row). `dst` holds `dst.len() / dst_stride` rows of `dst_stride` samples;
/// `src` has at least twice as many rows of `src_stride ≥ 2 × dst_stride`.
fn halve_plane(src: &[u8], src_stride: usize, dst: &mut [u8], dst_stride: usize) {
    for (y, out) in dst.chunks_exact_mut(dst_stride).enumerate() {
        let top = &src[2 * y * src_stride..][..2 * dst_stride];
        let bottom = &src[(2 * y + 1) * src_stride..][..2 * dst_stride];
        halve_row(top, bottom, out);
    }
}

/// One output row of [`halve_plane`] from its two source rows (`top.len() == bottom.len() ==
/// 2 × out.len()`): 16 samples at a time with SSE2 (every x86-64 CPU has it), the rest scalar.
fn halve_row(top: &[u8], bottom: &[u8], out: &mut [u8]) {
    #[cfg(not(target_arch = "x86_64"))]
    let done = 0;
    #[cfg(target_arch = "x86_64")]
    let done = {
        use std::arch::x86_64::*;
        for ((o, t), b) in out
            .chunks_exact_mut(16)
            .zip(top.chunks_exact(32))
            .zip(bottom.chunks_exact(32))
        {
            // SAFETY: SSE2 is part of the x86-64 baseline; every load and store stays within
            // the 32-byte source and 16-byte output chunks (unaligned forms).
            unsafe {
                let low = _mm_set1_epi16(0x00ff);
                let two = _mm_set1_epi16(2);
                // Sums of horizontal pairs of 16 source bytes, as 8 u16 lanes.
                let pairs = |p: *const u8| {
                    let v = _mm_loadu_si128(p.cast());
                    _mm_add_epi16(_mm_and_si128(v, low), _mm_srli_epi16(v, 8))
                };
                let half = |off: usize| {
                    let sum = _mm_add_epi16(pairs(t.as_ptr().add(off)), pairs(b.as_ptr().add(off)));
                    _mm_srli_epi16(_mm_add_epi16(sum, two), 2)
                };
                let packed = _mm_packus_epi16(half(0), half(16));
                _mm_storeu_si128(o.as_mut_ptr().cast(), packed);
            }
        }
        out.len() / 16 * 16
    };
    for (x, o) in out.iter_mut().enumerate().skip(done) {
        let sum = u16::from(top[2 * x])
            + u16::from(top[2 * x + 1])
            + u16::from(bottom[2 * x])
            + u16::from(bottom[2 * x + 1]);
        *o = ((sum + 2) >> 2) as u8;
    }
}

impl Drop for Scaler {
    fn drop(&mut self) {
        if let Some(ctx) = self.ctx.take() {
            // SAFETY: created by sws_getContext, freed once.
            unsafe { ffi::sws_freeContext(ctx.as_ptr()) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halving_a_row_rounds_half_up_and_handles_every_tail_length() {
        // Lengths around the 16-sample SIMD step, values covering every sum residue mod 4.
        for n in [1usize, 7, 15, 16, 17, 31, 32, 33, 427] {
            let top: Vec<u8> = (0..2 * n).map(|i| (i * 37 % 256) as u8).collect();
            let bottom: Vec<u8> = (0..2 * n).map(|i| (255 - i * 11 % 256) as u8).collect();
            let mut out = vec![0u8; n];
            halve_row(&top, &bottom, &mut out);
            for x in 0..n {
                let sum: u32 = [top[2 * x], top[2 * x + 1], bottom[2 * x], bottom[2 * x + 1]]
                    .iter()
                    .map(|&v| u32::from(v))
                    .sum();
                assert_eq!(u32::from(out[x]), (sum + 2) / 4, "n {n} x {x}");
            }
        }
        let mut out = [0u8; 1];
        halve_row(&[255, 255], &[255, 255], &mut out);
        assert_eq!(out, [255]);
        halve_row(&[0, 1], &[0, 1], &mut out);
        assert_eq!(out, [1], "2/4 rounds up");
    }
}
