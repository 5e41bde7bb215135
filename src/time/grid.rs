//! The frame grid, the fragment grid and the audio grid (design.md, "Time model").

use super::{mul_div_ceil, mul_div_floor, FrameIndex, MediaTime, Rate, SampleIndex};

/// Maps frame indices to media time: `t(n) = floor(n × timescale × den / num)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameGrid {
    pub rate: Rate,
    /// Ticks per second of the track timescale.
    pub timescale: u32,
}

impl FrameGrid {
    pub fn new(rate: Rate, timescale: u32) -> FrameGrid {
        FrameGrid { rate, timescale }
    }

    /// Media time of frame `n` (its presentation time).
    pub fn time_of(&self, n: FrameIndex) -> MediaTime {
        let per = u64::from(self.timescale) * u64::from(self.rate.den());
        MediaTime(mul_div_floor(n.0, per, u64::from(self.rate.num())))
    }

    /// Duration of frame `n`: `t(n+1) − t(n)`, never an accumulated rounded value.
    pub fn duration_of(&self, n: FrameIndex) -> u64 {
        self.time_of(FrameIndex(n.0 + 1)).0 - self.time_of(n).0
    }

    /// The frame whose grid slot is nearest to `ticks` (media time in this timescale).
    pub fn nearest_frame(&self, t: MediaTime) -> FrameIndex {
        // n = round(t × num / (timescale × den))
        let num = u128::from(t.0) * u128::from(self.rate.num());
        let den = u128::from(self.timescale) * u128::from(self.rate.den());
        FrameIndex(u64::try_from((2 * num + den) / (2 * den)).unwrap_or(u64::MAX))
    }

    /// Frame index nearest to a UTC instant given in nanoseconds since the epoch.
    pub fn frame_at_unix_nanos(&self, nanos: u128) -> FrameIndex {
        let num = nanos * u128::from(self.rate.num());
        let den = 1_000_000_000u128 * u128::from(self.rate.den());
        FrameIndex(u64::try_from((2 * num + den) / (2 * den)).unwrap_or(u64::MAX))
    }

    /// Upper bound, in ticks, of the span of `frames` frames anywhere on the grid.
    pub fn span_ceil(&self, frames: u64) -> u64 {
        let per = u64::from(self.timescale) * u64::from(self.rate.den());
        mul_div_ceil(frames, per, u64::from(self.rate.num()))
    }
}

/// The fragment grid: fragment `k` holds frames `[kG, (k+1)G)`; an IDR starts every fragment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragmentGrid {
    /// GOP length `G` in frames (fragment duration × rate, a whole number by validation).
    pub gop: u64,
}

impl FragmentGrid {
    /// Fragment index `k` that frame `n` belongs to (`mfhd.sequence_number`).
    pub fn fragment_of(&self, n: FrameIndex) -> u64 {
        n.0 / self.gop
    }

    /// First frame of fragment `k`.
    pub fn first_frame(&self, k: u64) -> FrameIndex {
        FrameIndex(k * self.gop)
    }

    /// True when frame `n` starts a fragment (and so must be an IDR).
    pub fn is_boundary(&self, n: FrameIndex) -> bool {
        n.0.is_multiple_of(self.gop)
    }

    /// The first fragment boundary at or after frame `n`.
    pub fn next_boundary(&self, n: FrameIndex) -> FrameIndex {
        FrameIndex(n.0.div_ceil(self.gop) * self.gop)
    }
}

/// The audio grid: AAC frame `j` holds samples `[1024j, 1024j+1024)`; its media time is
/// `floor(1024j × timescale / rate)`. Audio fragment `k` starts at the first AAC frame whose
/// start is at or after the video fragment boundary `t(kG)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AudioGrid {
    /// Audio samples per second.
    pub sample_rate: u32,
    /// Ticks per second of the track timescale.
    pub timescale: u32,
    /// Samples per coded audio frame (1024 for AAC-LC).
    pub frame_len: u32,
}

impl AudioGrid {
    pub fn aac(sample_rate: u32, timescale: u32) -> AudioGrid {
        AudioGrid {
            sample_rate,
            timescale,
            frame_len: 1024,
        }
    }

    /// Media time of sample `s`.
    pub fn time_of_sample(&self, s: SampleIndex) -> MediaTime {
        MediaTime(mul_div_floor(
            s.0,
            u64::from(self.timescale),
            u64::from(self.sample_rate),
        ))
    }

    /// Media time of the start of AAC frame `j`.
    pub fn time_of_frame(&self, j: u64) -> MediaTime {
        self.time_of_sample(SampleIndex(j * u64::from(self.frame_len)))
    }

    /// Duration of AAC frame `j` in ticks: `t(j+1) − t(j)`.
    pub fn duration_of_frame(&self, j: u64) -> u64 {
        self.time_of_frame(j + 1).0 - self.time_of_frame(j).0
    }

    /// The first AAC frame whose start time is `>= t`.
    pub fn first_frame_at_or_after(&self, t: MediaTime) -> u64 {
        // Smallest j with floor(j·L·ts/sr) >= t  ⇔  j·L·ts >= t·sr  ⇔  j >= ceil(t·sr / (L·ts)).
        let per = u64::from(self.frame_len) * u64::from(self.timescale);
        mul_div_ceil(t.0, u64::from(self.sample_rate), per)
    }

    /// First AAC frame of audio fragment `k`, given the video grids.
    pub fn fragment_start(&self, k: u64, video: &FrameGrid, frags: &FragmentGrid) -> u64 {
        self.first_frame_at_or_after(video.time_of(frags.first_frame(k)))
    }

    /// The audio fragment that AAC frame `j` belongs to.
    pub fn fragment_of_frame(&self, j: u64, video: &FrameGrid, frags: &FragmentGrid) -> u64 {
        // k = largest k with fragment_start(k) <= j. Start from the frame's own time and step.
        let t = self.time_of_frame(j);
        let mut k = frags.fragment_of(video.nearest_frame(t));
        while k > 0 && self.fragment_start(k, video, frags) > j {
            k -= 1;
        }
        while self.fragment_start(k + 1, video, frags) <= j {
            k += 1;
        }
        k
    }

    /// Audio sample index at the same instant as video frame `n` (rounded down).
    pub fn sample_at_frame(&self, n: FrameIndex, rate: Rate) -> SampleIndex {
        SampleIndex(mul_div_floor(
            n.0,
            u64::from(self.sample_rate) * u64::from(rate.den()),
            u64::from(rate.num()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::DEFAULT_TIMESCALE;

    fn ntsc() -> FrameGrid {
        FrameGrid::new(Rate::new(30000, 1001).unwrap(), DEFAULT_TIMESCALE)
    }

    #[test]
    fn ntsc_durations_alternate_without_drift() {
        let g = ntsc();
        let n0 = FrameIndex(53_000_000_000);
        let total: u64 = (0..30_000)
            .map(|i| g.duration_of(FrameIndex(n0.0 + i)))
            .sum();
        // 30000 frames at 30000/1001 are exactly 1001 s.
        assert_eq!(total, 1001 * u64::from(DEFAULT_TIMESCALE));
        assert!((333_666..=333_667).contains(&g.duration_of(n0)));
    }

    #[test]
    fn audio_fragment_starts_follow_video_boundaries() {
        let v = FrameGrid::new(Rate::new(25, 1).unwrap(), DEFAULT_TIMESCALE);
        let f = FragmentGrid { gop: 50 };
        let a = AudioGrid::aac(48_000, DEFAULT_TIMESCALE);
        for k in 1_000_000u64..1_000_050 {
            let j = a.fragment_start(k, &v, &f);
            let tv = v.time_of(f.first_frame(k));
            assert!(a.time_of_frame(j) >= tv);
            assert!(a.time_of_frame(j - 1) < tv);
            assert_eq!(a.fragment_of_frame(j, &v, &f), k);
            assert_eq!(a.fragment_of_frame(j - 1, &v, &f), k - 1);
        }
    }
}
