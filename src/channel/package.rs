//! Packagers: turn coded pictures / AAC units into PIFF fragments on the fragment grid.
//!
//! Video: fragment `k` holds the pictures presented at frames `[kG, (k+1)G)`; with a closed GOP
//! they are contiguous in decode order. The i-th picture in decode order is given the decode slot
//! `kG + i`, so sample durations are `t(kG+i+1) − t(kG+i)` (exact, never accumulated) and sum to
//! `t((k+1)G) − t(kG)`. Decode times are shifted earlier by a constant `Δ` (the span of the
//! encoder's reorder depth, rounded up) so every composition offset
//! `t(pts) − t(kG+i) + Δ` is non-negative (trun version 0, as MS-SSTR defines it). The `tfxd`
//! time is the presentation time of the IDR, `t(kG)`, identical on every rung and every box.
//!
//! Audio: AAC frame `j` lasts `t(j+1) − t(j)` on the audio grid; fragment `k` holds the frames
//! from `AudioGrid::fragment_start(k)` up to the next fragment's start.

use crate::encode::{EncodedAudio, EncodedPicture};
use crate::piff::{
    fragment::write_fragment, FragmentSpec, PiffError, SampleEntry, SAMPLE_FLAGS_NON_SYNC,
    SAMPLE_FLAGS_SYNC,
};
use crate::push::Fragment;
use crate::time::{AudioGrid, FragmentGrid, FrameGrid, FrameIndex};
use bytes::Bytes;

/// Errors while packaging one track.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("track {track_id}, fragment {fragment}: {reason}")]
    Grid {
        track_id: u32,
        fragment: u64,
        reason: String,
    },
    #[error("track {track_id}, fragment {fragment}: {source}")]
    Piff {
        track_id: u32,
        fragment: u64,
        source: PiffError,
    },
}

/// Collects one rung's pictures into fragments.
#[derive(Debug)]
pub struct VideoPackager {
    track_id: u32,
    frames: FrameGrid,
    fragments: FragmentGrid,
    /// Constant decode-time shift in ticks that keeps composition offsets non-negative.
    shift: u64,
    current: Option<u64>,
    pictures: Vec<(FrameIndex, bool, usize)>,
    payload: Vec<u8>,
}

impl VideoPackager {
    pub fn new(
        track_id: u32,
        frames: FrameGrid,
        fragments: FragmentGrid,
        reorder_frames: u32,
    ) -> VideoPackager {
        let gop = usize::try_from(fragments.gop).unwrap_or(0);
        VideoPackager {
            track_id,
            frames,
            fragments,
            shift: frames.span_ceil(u64::from(reorder_frames)),
            current: None,
            pictures: Vec::with_capacity(gop),
            payload: Vec::new(),
        }
    }

    /// Adds a picture (decode order); returns the previous fragment when this picture starts a
    /// new one.
    pub fn push(&mut self, pic: EncodedPicture) -> Result<Option<Fragment>, PackageError> {
        let k = self.fragments.fragment_of(pic.pts);
        let mut done = None;
        match self.current {
            Some(c) if c == k => {}
            Some(c) if k < c => {
                return Err(PackageError::Grid {
                    track_id: self.track_id,
                    fragment: k,
                    reason: format!(
                        "picture {} arrived after fragment {c} had started (open GOP?)",
                        pic.pts
                    ),
                })
            }
            Some(_) => done = self.flush()?,
            None => {}
        }
        if self.current.is_none() {
            if !pic.keyframe {
                return Err(PackageError::Grid {
                    track_id: self.track_id,
                    fragment: k,
                    reason: format!("fragment starts with a non-IDR picture at {}", pic.pts),
                });
            }
            self.current = Some(k);
        }
        self.pictures.push((pic.pts, pic.keyframe, pic.data.len()));
        self.payload.extend_from_slice(&pic.data);
        // A closed GOP is complete once it holds G pictures: emit it now rather than when the
        // next IDR comes out of the encoder, which is one more frame (plus the encoder's delay)
        // later. Incomplete GOPs still end at the next IDR or at `flush`.
        if done.is_none() && self.pictures.len() as u64 >= self.fragments.gop {
            done = self.flush()?;
        }
        Ok(done)
    }

    /// Emits the fragment being collected, if any.
    pub fn flush(&mut self) -> Result<Option<Fragment>, PackageError> {
        let Some(k) = self.current.take() else {
            return Ok(None);
        };
        let first = self.fragments.first_frame(k);
        let mut samples = Vec::with_capacity(self.pictures.len());
        for (i, &(pts, key, size)) in self.pictures.iter().enumerate() {
            let slot = FrameIndex(first.0 + i as u64);
            let decode = self.frames.time_of(slot).0;
            let offset = self.frames.time_of(pts).0 + self.shift - decode;
            let grid_err = |reason: String| PackageError::Grid {
                track_id: self.track_id,
                fragment: k,
                reason,
            };
            samples.push(SampleEntry {
                duration: u32::try_from(self.frames.duration_of(slot))
                    .map_err(|_| grid_err("sample duration overflows 32 bits".into()))?,
                size: u32::try_from(size)
                    .map_err(|_| grid_err("sample larger than 4 GiB".into()))?,
                flags: if key {
                    SAMPLE_FLAGS_SYNC
                } else {
                    SAMPLE_FLAGS_NON_SYNC
                },
                composition_offset: i32::try_from(offset)
                    .map_err(|_| grid_err(format!("composition offset {offset} too large")))?,
            });
        }
        let time = self.frames.time_of(first).0;
        let duration: u64 = samples.iter().map(|s| u64::from(s.duration)).sum();
        let out = finish_fragment(self.track_id, k, time, duration, samples, &self.payload);
        self.pictures.clear();
        self.payload.clear();
        out.map(Some)
    }
}

/// Collects AAC units into audio fragments.
#[derive(Debug)]
pub struct AudioPackager {
    track_id: u32,
    audio: AudioGrid,
    frames: FrameGrid,
    fragments: FragmentGrid,
    current: Option<(u64, u64)>,
    /// First AAC frame of the fragment after the current one.
    current_end: u64,
    /// Frame index `j` the next unit must have (units are contiguous).
    next: Option<u64>,
    sizes: Vec<usize>,
    payload: Vec<u8>,
}

impl AudioPackager {
    pub fn new(
        track_id: u32,
        audio: AudioGrid,
        frames: FrameGrid,
        fragments: FragmentGrid,
    ) -> AudioPackager {
        AudioPackager {
            track_id,
            audio,
            frames,
            fragments,
            current: None,
            current_end: 0,
            next: None,
            sizes: Vec::new(),
            payload: Vec::new(),
        }
    }

    /// Adds an AAC unit; returns the previous fragment when this unit starts a new one.
    pub fn push(&mut self, unit: EncodedAudio) -> Result<Option<Fragment>, PackageError> {
        let k = self
            .audio
            .fragment_of_frame(unit.index, &self.frames, &self.fragments);
        if let Some(next) = self.next {
            if unit.index != next {
                return Err(PackageError::Grid {
                    track_id: self.track_id,
                    fragment: k,
                    reason: format!("AAC frame {} where {next} was expected", unit.index),
                });
            }
        }
        self.next = Some(unit.index + 1);
        let mut done = None;
        match self.current {
            Some((c, _)) if c == k => {}
            Some(_) => done = self.flush()?,
            None => {}
        }
        if self.current.is_none() {
            self.current = Some((k, unit.index));
            self.current_end = self
                .audio
                .fragment_start(k + 1, &self.frames, &self.fragments);
        }
        self.sizes.push(unit.data.len());
        self.payload.extend_from_slice(&unit.data);
        // The fragment is complete with its last AAC frame: emit it without waiting for the
        // next unit (one AAC frame plus the encoder's delay later).
        if done.is_none() && unit.index + 1 >= self.current_end {
            done = self.flush()?;
        }
        Ok(done)
    }

    /// Emits the fragment being collected, if any.
    pub fn flush(&mut self) -> Result<Option<Fragment>, PackageError> {
        let Some((k, first)) = self.current.take() else {
            return Ok(None);
        };
        let mut samples = Vec::with_capacity(self.sizes.len());
        for (i, &size) in self.sizes.iter().enumerate() {
            let j = first + i as u64;
            samples.push(SampleEntry {
                duration: u32::try_from(self.audio.duration_of_frame(j)).unwrap_or(u32::MAX),
                size: u32::try_from(size).unwrap_or(u32::MAX),
                flags: SAMPLE_FLAGS_SYNC,
                composition_offset: 0,
            });
        }
        let time = self.audio.time_of_frame(first).0;
        let duration = self.audio.time_of_frame(first + self.sizes.len() as u64).0 - time;
        let out = finish_fragment(self.track_id, k, time, duration, samples, &self.payload);
        self.sizes.clear();
        self.payload.clear();
        out.map(Some)
    }
}

fn finish_fragment(
    track_id: u32,
    k: u64,
    time: u64,
    duration: u64,
    samples: Vec<SampleEntry>,
    payload: &[u8],
) -> Result<Fragment, PackageError> {
    let sequence = u32::try_from(k).map_err(|_| PackageError::Grid {
        track_id,
        fragment: k,
        reason: "fragment index does not fit mfhd.sequence_number (u32)".into(),
    })?;
    let spec = FragmentSpec {
        track_id,
        sequence,
        absolute_time: time,
        duration,
        samples,
    };
    let bytes = write_fragment(&spec, payload).map_err(|source| PackageError::Piff {
        track_id,
        fragment: k,
        source,
    })?;
    Ok(Fragment {
        track_id,
        sequence,
        time,
        duration,
        bytes: Bytes::from(bytes),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{Rate, DEFAULT_TIMESCALE};

    fn pic(pts: u64, key: bool) -> EncodedPicture {
        EncodedPicture {
            pts: FrameIndex(pts),
            keyframe: key,
            data: vec![0, 0, 0, 1, 0x65],
        }
    }

    #[test]
    fn bframe_gop_gets_nonnegative_offsets_and_exact_duration() {
        let grid = FrameGrid::new(
            Rate::new(30000, 1001).unwrap_or(Rate::new(30, 1).unwrap()),
            DEFAULT_TIMESCALE,
        );
        let frags = FragmentGrid { gop: 4 };
        let mut p = VideoPackager::new(1, grid, frags, 1);
        // Decode order of a closed GOP I0 P3 B1 B2.
        let base = 4 * 1_000_000;
        for (pts, key) in [(0, true), (3, false), (1, false)] {
            assert!(p.push(pic(base + pts, key)).unwrap().is_none());
        }
        // The fourth picture completes the closed GOP: the fragment is out at once.
        let f = p.push(pic(base + 2, false)).unwrap().unwrap();
        assert_eq!(f.sequence, 1_000_000);
        assert_eq!(f.time, grid.time_of(FrameIndex(base)).0);
        assert_eq!(
            f.duration,
            grid.time_of(FrameIndex(base + 4)).0 - grid.time_of(FrameIndex(base)).0
        );
        // The next IDR starts the next fragment.
        assert!(p.push(pic(base + 4, true)).unwrap().is_none());
        assert_eq!(p.flush().unwrap().unwrap().sequence, 1_000_001);
    }

    #[test]
    fn fragment_starting_without_idr_is_an_error() {
        let grid = FrameGrid::new(Rate::new(25, 1).unwrap(), DEFAULT_TIMESCALE);
        let mut p = VideoPackager::new(1, grid, FragmentGrid { gop: 50 }, 0);
        assert!(p.push(pic(51, false)).is_err());
    }
}
