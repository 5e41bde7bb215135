//! Benchmark support (`smoothcast bench-source`, hidden): writes the raw synthetic source a
//! profile's channel would capture, so another encoder (FFmpeg in `benches/vs-ffmpeg.sh`) can be
//! fed exactly the same pictures and samples.
//!
//! The channel starts at the first fragment boundary at or after its timecode, so with a
//! `fixed` timecode the dumped frames are, index for index, the frames a `--fast` run encodes.

use crate::capture::synthetic::{SyntheticAudio, SyntheticVideo};
use crate::capture::{i420_size, Pacing};
use crate::profile::{AudioInput, Plan, TimecodeSpec, VideoInput};
use crate::time::{AudioGrid, Clocks, FragmentGrid, FrameIndex, SampleIndex};
use std::io::Write;

/// Errors of `bench-source`.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The profile cannot be dumped (not synthetic, bad timecode).
    #[error("profile: {0}")]
    Profile(String),
    /// Writing an output failed.
    #[error("writing {what}: {source}")]
    Write {
        what: &'static str,
        source: std::io::Error,
    },
}

/// What [`dump_source`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceDump {
    /// Frame index (frames since the epoch at the channel rate) of the first picture.
    pub first_frame: FrameIndex,
    /// Pictures written (I420, tightly packed, `width × height`).
    pub frames: u64,
    /// Picture size.
    pub width: u32,
    pub height: u32,
    /// Sample index (since the epoch at the audio rate) of the first audio sample written.
    pub first_sample: SampleIndex,
    /// Sample frames written (interleaved s16le, `channels` per frame); 0 without audio.
    pub samples: u64,
}

/// Writes `frames` pictures of the plan's synthetic video, from the frame its channel would
/// start at, to `video` as raw I420; and, if `audio` is given, the synthetic tone covering the
/// same span of media time as raw interleaved s16le at the plan's audio rate and channels.
pub fn dump_source(
    plan: &Plan,
    clocks: &dyn Clocks,
    frames: u64,
    video: &mut dyn Write,
    audio: Option<&mut dyn Write>,
) -> Result<SourceDump, BenchError> {
    let VideoInput::Synthetic { width, height } = plan.video_input else {
        return Err(BenchError::Profile(
            "bench-source needs a synthetic video input".into(),
        ));
    };
    if plan.timecode == TimecodeSpec::Clock {
        tracing::warn!(
            "the profile's timecode is the clock: a later run starts at other frame indices \
             (burnt-in time differs); use a fixed timecode for identical pictures"
        );
    }
    let n0 = crate::time::timecode::resolve_start(&plan.timecode, plan.rate, clocks)
        .map_err(|e| BenchError::Profile(e.to_string()))?;
    let frags: FragmentGrid = plan.fragments;
    let first = frags.next_boundary(n0);
    let src = SyntheticVideo::new(width, height, plan.rate, first, Pacing::Fast);
    let mut buf = vec![0u8; i420_size(width, height)];
    for i in 0..frames {
        src.render(FrameIndex(first.0 + i), &mut buf);
        video.write_all(&buf).map_err(|source| BenchError::Write {
            what: "video",
            source,
        })?;
    }
    video.flush().map_err(|source| BenchError::Write {
        what: "video",
        source,
    })?;

    let grid = AudioGrid::aac(plan.audio.sample_rate, plan.timescale);
    let first_sample = grid.sample_at_frame(first, plan.rate);
    let end_sample = grid.sample_at_frame(FrameIndex(first.0 + frames), plan.rate);
    let mut samples = 0;
    if let Some(out) = audio {
        if plan.audio_input != AudioInput::Synthetic {
            return Err(BenchError::Profile(
                "bench-source --audio needs a synthetic audio input".into(),
            ));
        }
        let channels = plan.audio.channels.max(1);
        let tone =
            SyntheticAudio::new(plan.audio.sample_rate, channels, first_sample, Pacing::Fast);
        const BLOCK: u64 = 4800;
        let mut block = vec![0i16; BLOCK as usize * usize::from(channels)];
        let mut bytes = Vec::with_capacity(block.len() * 2);
        let mut s = first_sample.0;
        while s < end_sample.0 {
            let n = (end_sample.0 - s).min(BLOCK) as usize;
            let pcm = &mut block[..n * usize::from(channels)];
            tone.render(SampleIndex(s), pcm);
            bytes.clear();
            bytes.extend(pcm.iter().flat_map(|v| v.to_le_bytes()));
            out.write_all(&bytes).map_err(|source| BenchError::Write {
                what: "audio",
                source,
            })?;
            s += n as u64;
        }
        out.flush().map_err(|source| BenchError::Write {
            what: "audio",
            source,
        })?;
        samples = end_sample.0 - first_sample.0;
    }
    Ok(SourceDump {
        first_frame: first,
        frames,
        width,
        height,
        first_sample,
        samples,
    })
}
