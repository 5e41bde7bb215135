//! Synthetic sources: colour bars with burnt-in time of day and a moving box, and a tone with
//! a beep every second.
//!
//! Both are pure functions of the grid index, so two boxes (or two processes) produce identical
//! pictures and samples for the same frame/sample index: the 1+1 and takeover tests compare
//! their outputs byte for byte. They also carry an A/V sync marker that is easy to find in
//! decoded output: a white square in the top-right corner on the first frame of every second of
//! media time, and a 1 kHz beep starting exactly at every whole second of the sample grid.

use super::{
    i420_planes, i420_size, AudioBlock, AudioSource, CaptureError, FrameOrigin, FramePool, Pacer,
    Pacing, VideoFrame, VideoSource,
};
use crate::time::timecode::{check_timecode_rate, timecode_of};
use crate::time::{FrameIndex, Rate, SampleIndex};
use std::convert::Infallible;

// ---------------------------------------------------------------------------------------------
// Video
// ---------------------------------------------------------------------------------------------

/// A Y′CbCr triple, 8 bit, BT.709 limited range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Yuv(u8, u8, u8);

const BLACK: Yuv = Yuv(16, 128, 128);
const WHITE: Yuv = Yuv(235, 128, 128);

/// BT.709 limited-range Y′CbCr of a gamma-encoded R′G′B′ colour given in `0.0..=1.0`.
fn rgb709(r: f64, g: f64, b: f64) -> Yuv {
    let y = 0.2126 * r + 0.7152 * g + 0.0722 * b;
    let cb = (b - y) / 1.8556;
    let cr = (r - y) / 1.5748;
    // Values stay inside 16..=240 for inputs in 0..=1, so the casts cannot wrap.
    Yuv(
        (16.0 + 219.0 * y).round() as u8,
        (128.0 + 224.0 * cb).round() as u8,
        (128.0 + 224.0 * cr).round() as u8,
    )
}

/// Characters per text line the burnt-in text box is sized for; longer frame indices show
/// their last `TEXT_CELLS` digits.
const TEXT_CELLS: u32 = 14;
/// Font cell in font pixels: 5×7 glyphs plus one column and one row of spacing.
const CELL_W: u32 = 6;
const CELL_H: u32 = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Rect {
    x: u32,
    y: u32,
    w: u32,
    h: u32,
}

/// Where the static and dynamic parts of the pattern sit for one picture size.
#[derive(Clone, Copy, Debug)]
struct Layout {
    width: u32,
    height: u32,
    /// First row of the castellation band (the moving box runs in it) and of the bottom band.
    band_top: u32,
    bottom_top: u32,
    flash: Rect,
    text: Rect,
    /// Size in picture pixels of one font pixel.
    scale: u32,
    /// Left edges of the seven vertical bars (even columns), then the picture width.
    edges: [u32; 8],
}

impl Layout {
    fn new(width: u32, height: u32) -> Layout {
        let even = |v: u32| v & !1;
        let band_top = even(height * 2 / 3);
        let bottom_top = even(height * 3 / 4).max(band_top);

        // Side height/8, rounded down to even so the square covers whole chroma samples.
        let side = even(height / 8).max(2).min(width).min(height);
        let flash = Rect {
            x: width - side,
            y: 0,
            w: side,
            h: side,
        };

        let scale = (height / 90)
            .min(width * 3 / 4 / (TEXT_CELLS * CELL_W))
            .max(1);
        let tw = (TEXT_CELLS * CELL_W * scale + 2 * scale).next_multiple_of(2);
        let th = (2 * CELL_H * scale + 2 * scale).next_multiple_of(2);
        let text = Rect {
            x: even(width.saturating_sub(tw) / 2),
            y: even((height / 3).saturating_sub(th / 2)),
            w: tw.min(width),
            h: th.min(height),
        };
        let edges = std::array::from_fn(|k| {
            if k >= 7 {
                width
            } else {
                (k as u32 * width / 7) & !1
            }
        });
        Layout {
            width,
            height,
            edges,
            band_top,
            bottom_top,
            flash,
            text,
            scale,
        }
    }

    /// Left edge of vertical bar `k` (0..=7) of the seven-bar pattern, on an even column.
    fn bar_edge(&self, k: usize) -> u32 {
        self.edges[k.min(7)]
    }

    /// Colour of the static background at pixel `(x, y)`: SMPTE-style 75% bars on top,
    /// reversed-order castellations below, then a luma ramp, 100% white, black and a PLUGE.
    fn background(&self, x: u32, y: u32) -> Yuv {
        let bar = (0..7).rev().find(|&k| x >= self.edges[k]).unwrap_or(0);
        if y < self.band_top {
            BARS_75[bar]
        } else if y < self.bottom_top {
            CASTELLATIONS[bar]
        } else {
            let w = self.width;
            let quarter = (w / 4) & !1;
            let half = (w / 2) & !1;
            let pluge = self.bar_edge(5);
            let pluge_end = self.bar_edge(6);
            if x < quarter {
                // Limited-range luma ramp 16→235: shows scaler and encoder banding.
                let span = u64::from(quarter.max(2) - 1);
                let y = 16 + u64::from(x) * 219 / span;
                Yuv(y.min(235) as u8, 128, 128)
            } else if x < half {
                WHITE
            } else if x >= pluge && x < pluge_end {
                // −4%, 0%, +4% of nominal range around black.
                let third = ((pluge_end - pluge) / 3).max(1);
                match (x - pluge) / third {
                    0 => Yuv(7, 128, 128),
                    1 => BLACK,
                    _ => Yuv(25, 128, 128),
                }
            } else {
                BLACK
            }
        }
    }
}

/// 75% bars, left to right: grey, yellow, cyan, green, magenta, red, blue.
static BARS_75: std::sync::LazyLock<[Yuv; 7]> = std::sync::LazyLock::new(|| {
    let a = 0.75;
    [
        rgb709(a, a, a),
        rgb709(a, a, 0.0),
        rgb709(0.0, a, a),
        rgb709(0.0, a, 0.0),
        rgb709(a, 0.0, a),
        rgb709(a, 0.0, 0.0),
        rgb709(0.0, 0.0, a),
    ]
});

/// The castellation row under the bars: blue, black, magenta, black, cyan, black, grey.
static CASTELLATIONS: std::sync::LazyLock<[Yuv; 7]> = std::sync::LazyLock::new(|| {
    let a = 0.75;
    [
        rgb709(0.0, 0.0, a),
        BLACK,
        rgb709(a, 0.0, a),
        BLACK,
        rgb709(0.0, a, a),
        BLACK,
        rgb709(a, a, a),
    ]
});

/// Mutable views of the three planes of one tightly packed I420 picture.
struct Canvas<'a> {
    y: &'a mut [u8],
    u: &'a mut [u8],
    v: &'a mut [u8],
    w: u32,
    h: u32,
    cw: u32,
    ch: u32,
}

impl<'a> Canvas<'a> {
    /// `buf` must be exactly `i420_size(w, h)` bytes.
    fn new(buf: &'a mut [u8], w: u32, h: u32) -> Canvas<'a> {
        let [(_, _, _), (u_off, cw, ch), (v_off, _, _)] = i420_planes(w, h);
        let (y, rest) = buf.split_at_mut(u_off);
        let (u, v) = rest.split_at_mut(v_off - u_off);
        Canvas {
            y,
            u,
            v,
            w,
            h,
            cw: cw as u32,
            ch: ch as u32,
        }
    }

    /// Fills the luma of a rectangle, clipped to the picture.
    fn fill_luma(&mut self, x: u32, y: u32, w: u32, h: u32, value: u8) {
        fill_plane(self.y, self.w, self.h, x, y, w, h, value);
    }

    /// Fills a rectangle in all three planes; chroma covers every sample the rectangle touches.
    fn fill(&mut self, r: Rect, c: Yuv) {
        self.fill_luma(r.x, r.y, r.w, r.h, c.0);
        let (cx, cy) = (r.x / 2, r.y / 2);
        let cw = (r.x + r.w).div_ceil(2).saturating_sub(cx);
        let chh = (r.y + r.h).div_ceil(2).saturating_sub(cy);
        fill_plane(self.u, self.cw, self.ch, cx, cy, cw, chh, c.1);
        fill_plane(self.v, self.cw, self.ch, cx, cy, cw, chh, c.2);
    }

    /// Draws `text` (digits, ':' and ' ') in luma at `(x, y)` with font pixels of `s × s`.
    fn text(&mut self, x: u32, y: u32, s: u32, text: &[u8], value: u8) {
        for (i, &c) in text.iter().enumerate() {
            let gx = x + i as u32 * CELL_W * s;
            for (row, bits) in glyph(c).iter().enumerate() {
                let gy = y + row as u32 * s;
                // Fill runs of set bits as one rectangle each.
                let mut col = 0;
                while col < 5 {
                    if bits & (0x10 >> col) == 0 {
                        col += 1;
                        continue;
                    }
                    let start = col;
                    while col < 5 && bits & (0x10 >> col) != 0 {
                        col += 1;
                    }
                    self.fill_luma(gx + start * s, gy, (col - start) * s, s, value);
                }
            }
        }
    }
}

/// Fills `[x, x+w) × [y, y+h)` of a `pw × ph` plane (stride `pw`), clipped.
#[allow(clippy::too_many_arguments)]
fn fill_plane(plane: &mut [u8], pw: u32, ph: u32, x: u32, y: u32, w: u32, h: u32, value: u8) {
    let x0 = x.min(pw) as usize;
    let x1 = x.saturating_add(w).min(pw) as usize;
    let y1 = y.saturating_add(h).min(ph);
    if x0 >= x1 {
        return;
    }
    for row in y.min(ph)..y1 {
        let start = row as usize * pw as usize;
        if let Some(line) = plane.get_mut(start + x0..start + x1) {
            line.fill(value);
        }
    }
}

/// 5×7 bitmap glyphs, one byte per row, bit 4 = leftmost column.
fn glyph(c: u8) -> [u8; 7] {
    match c {
        b'0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        b'1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        b'2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        b'3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        b'4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        b'5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        b'6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        b'7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        b'8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        b'9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        b':' => [0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00],
        b';' => [0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x04, 0x08],
        _ => [0; 7],
    }
}

/// The SMPTE timecode of frame `n` (time of day, UTC), drop-frame at 30000/1001 and 60000/1001
/// (`;` before the frames), from the shared `time::timecode` rules.
fn time_of_day(n: FrameIndex, rate: Rate) -> [u8; 11] {
    // Drop-frame labels at the NTSC rates that have them, as a broadcast clock would show.
    let drop_frame = check_timecode_rate(rate, true).is_ok();
    let (_, tc) = timecode_of(n, rate, drop_frame);
    let parts = [tc.hours, tc.minutes, tc.seconds, tc.frames];
    let mut out = *b"00:00:00:00";
    if tc.drop_frame {
        out[8] = b';';
    }
    for (i, p) in parts.iter().enumerate() {
        out[3 * i] = b'0' + (p / 10) % 10;
        out[3 * i + 1] = b'0' + p % 10;
    }
    out
}

/// Decimal digits of `v`, right-aligned in a fixed buffer; returns the used tail.
fn digits(v: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    let mut v = v;
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 || i == 0 {
            break;
        }
    }
    &buf[i..]
}

/// True when frame `n` is the first frame of a new second of media time:
/// `floor(n·den/num) > floor((n−1)·den/num)` (frame 0 counts as such). Those frames carry the
/// white flash square.
pub fn is_flash_frame(n: FrameIndex, rate: Rate) -> bool {
    if n.0 == 0 {
        return true;
    }
    let (num, den) = (u128::from(rate.num()), u128::from(rate.den()));
    let sec = |i: u64| u128::from(i) * den / num;
    sec(n.0) > sec(n.0 - 1)
}

/// The flash square as `(x, y, w, h)` in luma pixels: the top-right corner, side `height/8`
/// rounded down to even (so it covers whole chroma samples). Y is 235 there on flash frames
/// and 16 otherwise.
pub fn flash_region(width: u32, height: u32) -> (u32, u32, u32, u32) {
    let r = Layout::new(width, height).flash;
    (r.x, r.y, r.w, r.h)
}

/// The black box holding the burnt-in text as `(x, y, w, h)` in luma pixels: line 1 is the
/// time of day `HH:MM:SS:FF`, line 2 the frame index (its last 14 digits).
pub fn text_region(width: u32, height: u32) -> (u32, u32, u32, u32) {
    let r = Layout::new(width, height).text;
    (r.x, r.y, r.w, r.h)
}

/// The static part of the pattern for one size, and the code drawing the dynamic parts.
#[derive(Debug)]
struct Pattern {
    layout: Layout,
    rate: Rate,
    /// The background picture (bars, castellations, bottom band), I420 tightly packed.
    background: Vec<u8>,
}

impl Pattern {
    fn new(width: u32, height: u32, rate: Rate) -> Pattern {
        let layout = Layout::new(width, height);
        let mut background = vec![0; i420_size(width, height)];
        let c = Canvas::new(&mut background, width, height);
        for y in 0..height {
            let row = &mut c.y[(y * width) as usize..][..width as usize];
            for (x, px) in row.iter_mut().enumerate() {
                *px = layout.background(x as u32, y).0;
            }
        }
        for cy in 0..c.ch {
            for cx in 0..c.cw {
                let col = layout.background(2 * cx, 2 * cy);
                let i = (cy * c.cw + cx) as usize;
                c.u[i] = col.1;
                c.v[i] = col.2;
            }
        }
        Pattern {
            layout,
            rate,
            background,
        }
    }

    fn render(&self, n: FrameIndex, out: &mut [u8]) {
        let Some(out) = out.get_mut(..self.background.len()) else {
            return;
        };
        out.copy_from_slice(&self.background);
        let l = &self.layout;
        let mut c = Canvas::new(out, l.width, l.height);

        let flash = if is_flash_frame(n, self.rate) {
            WHITE
        } else {
            BLACK
        };
        c.fill(l.flash, flash);

        // A box sweeping left to right through the castellation band every 4 nominal seconds:
        // motion for the encoder, and a visual check that frames are in order.
        let side = (l.bottom_top - l.band_top).max(2);
        let period = 4 * u64::from(self.rate.nominal_fps().max(1));
        let travel = u64::from(l.width.saturating_sub(side));
        let x = ((n.0 % period) * travel / period) as u32 & !1;
        c.fill(
            Rect {
                x,
                y: l.band_top,
                w: side,
                h: side,
            },
            WHITE,
        );

        c.fill(l.text, BLACK);
        let s = l.scale;
        let line_w = |chars: usize| chars as u32 * CELL_W * s;
        let centre = |chars: usize| l.text.x + s + (TEXT_CELLS * CELL_W * s - line_w(chars)) / 2;
        let tc = time_of_day(n, self.rate);
        c.text(centre(tc.len()), l.text.y + s, s, &tc, WHITE.0);
        let mut buf = [0; 20];
        let d = digits(n.0, &mut buf);
        let d = &d[d.len().saturating_sub(TEXT_CELLS as usize)..];
        c.text(centre(d.len()), l.text.y + s + CELL_H * s, s, d, WHITE.0);
    }
}

/// Colour bars with burnt-in time of day, frame index, a moving box and a once-per-second
/// flash, one picture per frame-grid slot from `start` on.
#[derive(Debug)]
pub struct SyntheticVideo {
    pattern: Pattern,
    /// Index of the first frame; RealTime pacing counts due times from it.
    start: FrameIndex,
    /// Index of the next frame `next_frame` returns.
    next: FrameIndex,
    pacer: Pacer,
    pool: FramePool,
}

impl SyntheticVideo {
    /// A `width × height` source yielding frames `start, start+1, …` at `rate` (frame indices
    /// are frames since the Unix epoch at `rate`).
    pub fn new(
        width: u32,
        height: u32,
        rate: Rate,
        start: FrameIndex,
        pacing: Pacing,
    ) -> SyntheticVideo {
        SyntheticVideo {
            pattern: Pattern::new(width, height, rate),
            start,
            next: start,
            pacer: Pacer::new(&pacing),
            pool: FramePool::new(i420_size(width, height)),
        }
    }

    /// Renders the picture of frame `n` into `out` (I420, tightly packed, exactly
    /// [`i420_size`] bytes; a shorter buffer is left untouched). Pure: the same `n`, size and
    /// rate always give the same bytes.
    pub fn render(&self, n: FrameIndex, out: &mut [u8]) {
        self.pattern.render(n, out);
    }

    /// The frame rate of the grid this source renders for.
    pub fn rate(&self) -> Rate {
        self.pattern.rate
    }
}

impl VideoSource for SyntheticVideo {
    fn next_frame(&mut self) -> Result<VideoFrame, CaptureError> {
        let n = self.next;
        let pattern = &self.pattern;
        let Ok(data) = self.pool.fill(|buf| {
            pattern.render(n, buf);
            Ok::<(), Infallible>(())
        });
        let rate = pattern.rate;
        self.pacer.wait_until(
            n.0 - self.start.0,
            u64::from(rate.den()),
            u64::from(rate.num()),
        );
        self.next = FrameIndex(n.0 + 1);
        Ok(VideoFrame {
            index: n,
            width: pattern.layout.width,
            height: pattern.layout.height,
            data,
            origin: FrameOrigin::Live,
        })
    }

    fn size(&self) -> (u32, u32) {
        (self.pattern.layout.width, self.pattern.layout.height)
    }
}

// ---------------------------------------------------------------------------------------------
// Audio
// ---------------------------------------------------------------------------------------------

/// Frequency of the continuous tone.
pub const TONE_HZ: u32 = 440;
/// Peak level of the continuous tone in dBFS.
pub const TONE_DBFS: f64 = -30.0;
/// Frequency of the once-per-second beep.
pub const BEEP_HZ: u32 = 1000;
/// Peak level of the beep in dBFS (added to the tone).
pub const BEEP_DBFS: f64 = -6.0;
/// Length of the beep in milliseconds.
pub const BEEP_MS: u32 = 100;

/// Length of the beep in samples at `sample_rate`.
pub fn beep_len(sample_rate: u32) -> u64 {
    u64::from(sample_rate) * u64::from(BEEP_MS) / 1000
}

/// True when sample `s` starts a beep: a whole second of the epoch-based sample grid.
pub fn is_beep_onset(s: SampleIndex, sample_rate: u32) -> bool {
    s.0.is_multiple_of(u64::from(sample_rate.max(1)))
}

/// The beep onsets (sample indices) in `[from, to)`.
pub fn beep_onsets(
    sample_rate: u32,
    from: SampleIndex,
    to: SampleIndex,
) -> impl Iterator<Item = SampleIndex> {
    let sr = u64::from(sample_rate.max(1));
    let first = from.0.div_ceil(sr);
    (first..)
        .map(move |k| k.saturating_mul(sr))
        .take_while(move |&s| s < to.0)
        .map(SampleIndex)
}

/// Peak amplitude in sample units of a level in dBFS.
fn amplitude(dbfs: f64) -> f64 {
    32767.0 * 10f64.powf(dbfs / 20.0)
}

/// The synthetic signal at sample `s`. The phase comes from `s mod sample_rate` (both
/// frequencies are whole numbers of cycles per second), so precision does not degrade at
/// epoch-scale indices and the signal is exactly periodic per second.
fn sample_value(s: u64, sample_rate: u32) -> i16 {
    let sr = u64::from(sample_rate.max(1));
    let r = s % sr;
    let phase = |hz: u32| {
        let cycles = (u64::from(hz) * r) % sr;
        std::f64::consts::TAU * cycles as f64 / sr as f64
    };
    let mut v = amplitude(TONE_DBFS) * phase(TONE_HZ).sin();
    if r < beep_len(sample_rate) {
        v += amplitude(BEEP_DBFS) * phase(BEEP_HZ).sin();
    }
    v.round().clamp(-32768.0, 32767.0) as i16
}

/// A quiet 440 Hz tone with a 1 kHz beep of [`BEEP_MS`] at every whole second, contiguous
/// from sample `start` on. Every channel carries the same signal.
#[derive(Debug)]
pub struct SyntheticAudio {
    sample_rate: u32,
    channels: u16,
    /// Index of the first sample; RealTime pacing counts due times from it.
    start: SampleIndex,
    /// Sample index (per channel, since the epoch) of the next block's first sample.
    next: SampleIndex,
    pacer: Pacer,
}

impl SyntheticAudio {
    /// A source at `sample_rate` with `channels` interleaved channels (a zero rate or channel
    /// count is taken as 1, which profile validation rules out anyway).
    pub fn new(sample_rate: u32, channels: u16, start: SampleIndex, pacing: Pacing) -> Self {
        SyntheticAudio {
            sample_rate: sample_rate.max(1),
            channels: channels.max(1),
            start,
            next: start,
            pacer: Pacer::new(&pacing),
        }
    }

    /// Renders interleaved samples from sample index `first` into `out`
    /// (`out.len() / channels` sample frames; a trailing partial frame is left untouched).
    /// Pure: the same indices always give the same samples, on every channel.
    pub fn render(&self, first: SampleIndex, out: &mut [i16]) {
        let ch = usize::from(self.channels);
        for (i, frame) in out.chunks_exact_mut(ch).enumerate() {
            frame.fill(sample_value(first.0 + i as u64, self.sample_rate));
        }
    }
}

impl AudioSource for SyntheticAudio {
    fn next_block(&mut self, max_frames: usize) -> Result<AudioBlock, CaptureError> {
        let first = self.next;
        let mut samples = vec![0; max_frames * usize::from(self.channels)];
        self.render(first, &mut samples);
        self.next = SampleIndex(first.0 + max_frames as u64);
        Ok(self
            .pacer
            .audio_block(self.start, first, self.channels, self.sample_rate, samples))
    }

    fn channels(&self) -> u16 {
        self.channels
    }

    fn sample_rate(&self) -> u32 {
        self.sample_rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_of_day_counts_frames_since_utc_midnight() {
        let r25 = Rate::new(25, 1).unwrap();
        // 2024-01-01T00:00:00Z = 1704067200 s; plus 13:45:10 and 7 frames.
        let n = (1_704_067_200u64 + 13 * 3600 + 45 * 60 + 10) * 25 + 7;
        assert_eq!(&time_of_day(FrameIndex(n), r25), b"13:45:10:07");
        let ntsc = Rate::new(30000, 1001).unwrap();
        // The first frame of a day at 29.97 shows 00:00:00:00.
        let day = 19_723u64; // 2024-01-01
        let first = (u128::from(day) * 86_400 * 30_000).div_ceil(1001) as u64;
        assert_eq!(&time_of_day(FrameIndex(first), ntsc), b"00:00:00;00");
        // Drop-frame labels a day 2 589 408 frames; the last 2–3 frames of a UTC day wrap
        // (time::timecode documents it), so look a little before midnight.
        assert_eq!(&time_of_day(FrameIndex(first - 10), ntsc), b"23:59:59;22");
    }

    #[test]
    fn bars_use_bt709_limited_range_values() {
        assert_eq!(BARS_75[1], Yuv(168, 44, 136)); // 75% yellow
        assert_eq!(BARS_75[6], Yuv(28, 212, 120)); // 75% blue
        assert_eq!(BARS_75[0], Yuv(180, 128, 128)); // 75% grey
    }

    #[test]
    fn digits_handles_zero_and_max() {
        let mut b = [0; 20];
        assert_eq!(digits(0, &mut b), b"0");
        assert_eq!(digits(u64::MAX, &mut b), b"18446744073709551615");
    }
}
