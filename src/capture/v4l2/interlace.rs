//! Interlaced inputs (1080i50, 1080i59.94, 576i, 480i): always deinterlaced before encoding.
//!
//! **Decision.** smoothcast never encodes interlaced H.264 (PAFF/MBAFF). Smooth Streaming is
//! played on PCs, phones, smart TVs and browsers (MSE), which decode and display progressive
//! pictures only — interlaced streams show combing or are refused — and every lower rung of
//! the ladder is scaled, which would mix the two fields of a woven frame anyway. This is what
//! broadcasters' OTT encoders do by default too: deinterlace at the contribution edge, ship
//! progressive. Which deinterlacer depends on the channel's rate, chosen by negotiation:
//!
//! * Channel rate = the frame rate (1080i25 → 1080p25): [`Deinterlace::Blend`], a vertical
//!   `[1 2 1] / 4` low-pass on luma across the woven lines (the classic "linear blend"). It
//!   cannot comb or flicker, costs one pass, and halves vertical detail only on moving
//!   content… and on still content too, slightly: the price of not doing motion detection.
//! * Channel rate = the field rate (1080i25 → 1080p50, the EBU-recommended OTT format for sport):
//!   [`Deinterlace::Bob`], each field becomes a picture of its own, the missing lines
//!   interpolated from the lines above and below in the same field. Full temporal resolution,
//!   some vertical aliasing on fine static detail.
//!
//! Chroma: the 4:2:2 → 4:2:0 conversion already averages each chroma sample over a line pair,
//! i.e. over both fields, so chroma is blended in both modes (invisible at these resolutions).
//!
//! A motion-adaptive deinterlacer (yadif/bwdif) would be better on mixed content but needs
//! FFmpeg's libavfilter, not built into this binary; these two cost less than the conversion
//! itself and never produce artefacts worse than softness.

use std::fmt;

/// How an interlaced input is made progressive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Deinterlace {
    /// One picture per frame: `[1 2 1]/4` vertical blend of the woven fields.
    Blend,
    /// One picture per field, missing lines interpolated; doubles the picture rate.
    Bob,
}

impl fmt::Display for Deinterlace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Deinterlace::Blend => "blend deinterlace to the frame rate",
            Deinterlace::Bob => "bob deinterlace to the field rate",
        })
    }
}

/// Blends the luma plane (the first `width × height` bytes of an I420 picture) in place with
/// a vertical `[1 2 1]/4` filter. `row` is scratch space reused across calls.
pub fn blend_luma(picture: &mut [u8], width: u32, height: u32, row: &mut Vec<u8>) {
    let (w, h) = (width as usize, height as usize);
    if h < 3 || picture.len() < w * h {
        return;
    }
    // `row` keeps the original of the line above the one being filtered (line 0 is its own
    // neighbour above, the last line its own neighbour below).
    row.clear();
    row.extend_from_slice(&picture[..w]);
    for y in 0..h {
        let (head, tail) = picture.split_at_mut((y + 1) * w);
        let cur = &mut head[y * w..];
        let blend =
            |a: u8, c: u8, b: u8| ((u16::from(a) + 2 * u16::from(c) + u16::from(b) + 2) >> 2) as u8;
        if y + 1 < h {
            for ((c, a), b) in cur.iter_mut().zip(row.iter_mut()).zip(&tail[..w]) {
                let original = *c;
                *c = blend(*a, original, *b);
                *a = original;
            }
        } else {
            for (c, a) in cur.iter_mut().zip(row.iter_mut()) {
                *c = blend(*a, *c, *c);
            }
        }
    }
}

/// Builds the picture of one field of the woven I420 picture `src` into `dst` (same size):
/// the field's own luma lines are copied, the others interpolated from their neighbours in the
/// same field; chroma is copied. `bottom` selects the bottom (odd-line) field.
pub fn bob_field(src: &[u8], dst: &mut [u8], width: u32, height: u32, bottom: bool) {
    let (w, h) = (width as usize, height as usize);
    let n = dst.len().min(src.len());
    if h < 2 || n < w * h {
        return;
    }
    let parity = usize::from(bottom);
    for y in 0..h {
        let out = y * w..(y + 1) * w;
        if y % 2 == parity {
            dst[out.clone()].copy_from_slice(&src[out]);
            continue;
        }
        // Nearest field lines above and below (clamped at the picture edges).
        let above = if y >= 1 { y - 1 } else { y + 1 };
        let below = if y + 1 < h { y + 1 } else { y - 1 };
        let (a, b) = (
            &src[above * w..above * w + w],
            &src[below * w..below * w + w],
        );
        for ((d, x), z) in dst[out].iter_mut().zip(a).zip(b) {
            *d = ((u16::from(*x) + u16::from(*z) + 1) >> 1) as u8;
        }
    }
    dst[w * h..n].copy_from_slice(&src[w * h..n]);
}

/// Mean absolute "comb" energy of a luma plane: how much each line differs from the mean of
/// its neighbours. High on woven moving content, low on progressive pictures. Used by tests and
/// by the capture status to show that deinterlacing works.
pub fn comb_energy(luma: &[u8], width: u32, height: u32) -> f64 {
    let (w, h) = (width as usize, height as usize);
    if h < 3 || luma.len() < w * h {
        return 0.0;
    }
    let mut sum = 0u64;
    for y in 1..h - 1 {
        for x in 0..w {
            let a = i32::from(luma[(y - 1) * w + x]);
            let c = i32::from(luma[y * w + x]);
            let b = i32::from(luma[(y + 1) * w + x]);
            sum += u64::from((2 * c - a - b).unsigned_abs());
        }
    }
    sum as f64 / ((h - 2) * w) as f64 / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blend_of_a_flat_picture_is_unchanged_and_of_a_comb_is_flat() {
        let (w, h) = (4u32, 6u32);
        let mut flat = vec![100u8; 4 * 6];
        let mut row = Vec::new();
        blend_luma(&mut flat, w, h, &mut row);
        assert!(flat.iter().all(|&v| v == 100));
        // Alternate lines 0 / 200: a pure comb.
        let mut comb: Vec<u8> = (0..h)
            .flat_map(|y| std::iter::repeat_n(if y % 2 == 0 { 0 } else { 200 }, w as usize))
            .collect();
        assert!(comb_energy(&comb, w, h) > 150.0);
        blend_luma(&mut comb, w, h, &mut row);
        // Interior lines become 100 (±1 rounding).
        for y in 1..h as usize - 1 {
            for x in 0..w as usize {
                assert!((99..=101).contains(&comb[y * w as usize + x]), "{comb:?}");
            }
        }
    }

    #[test]
    fn bob_keeps_its_field_lines_and_interpolates_the_others() {
        let (w, h) = (2u32, 4u32);
        let src: Vec<u8> = vec![10, 10, 50, 50, 30, 30, 70, 70, 1, 2];
        let mut dst = vec![0u8; src.len()];
        bob_field(&src, &mut dst, w, h, false);
        assert_eq!(&dst[..8], &[10, 10, 20, 20, 30, 30, 30, 30]);
        bob_field(&src, &mut dst, w, h, true);
        assert_eq!(&dst[..8], &[50, 50, 50, 50, 60, 60, 70, 70]);
        assert_eq!(&dst[8..], &[1, 2]);
    }
}
