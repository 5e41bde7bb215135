//! AAC-LC encoding of the audio track (fdk-aac, cargo feature `fdk`).
//!
//! # Alignment with the audio grid
//!
//! AAC frame `j` of the track holds samples `[1024j, 1024j+1024)` of the epoch-based sample
//! grid, so the packager can time-stamp unit `j` as `time_of_frame(j)` with no edit list. The
//! encoder, however, delays its output: decoding the units it produces yields the input shifted
//! later by `delay` samples (MDCT overlap plus look-ahead, fdk's `nDelay`). The i-th unit
//! produced decodes to output samples `[1024i, 1024i+1024)` of the encoder, which are input
//! samples `[1024i − delay, 1024i + 1024 − delay)`. For unit `i` to be grid frame
//! `first_frame + i`, input sample 0 must therefore be grid sample
//! `1024·first_frame + delay` — that is [`AacEncoder::input_start`]. The first `delay` decoded
//! samples of unit `first_frame` are encoder priming (silence), which is harmless at a start
//! and keeps every later unit exactly on the grid, identically on every box.

use super::{AacConfig, EncodeError, EncodedAudio};
use crate::time::SampleIndex;

/// Samples per channel in one AAC-LC access unit.
pub const AAC_FRAME_LEN: usize = 1024;

#[cfg(feature = "fdk")]
use fdk_aac::enc::{AudioObjectType, BitRate, ChannelMode, Encoder, EncoderParams, Transport};

/// An AAC-LC encoder producing raw access units labelled with their AAC frame index.
#[cfg(feature = "fdk")]
pub struct AacEncoder {
    track: String,
    enc: Encoder,
    config: AacConfig,
    /// Interleaved samples in one access unit (1024 × channels).
    unit_samples: usize,
    /// AAC frame index (audio grid) of the next unit produced.
    next_index: u64,
    first_frame: u64,
    /// Input not yet making up a whole unit, interleaved; at most `unit_samples`.
    pending: Vec<i16>,
    /// Sample frames (per channel) fed so far.
    fed: u64,
    /// fdk writes each unit here before it is copied out at its exact size.
    out_buf: Vec<u8>,
    finished: bool,
}

#[cfg(feature = "fdk")]
impl std::fmt::Debug for AacEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AacEncoder")
            .field("track", &self.track)
            .field("config", &self.config)
            .field("next_index", &self.next_index)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "fdk")]
impl AacEncoder {
    /// Opens an AAC-LC encoder: raw access units (no ADTS), CBR at `bitrate_kbps`, mono or
    /// stereo at `sample_rate`. The first unit produced is AAC frame `first_frame` of the audio
    /// grid; feed input starting at [`AacEncoder::input_start`].
    pub fn new(
        track: &str,
        bitrate_kbps: u32,
        channels: u16,
        sample_rate: u32,
        first_frame: u64,
    ) -> Result<AacEncoder, EncodeError> {
        let setup = |reason: String| EncodeError::Setup {
            track: track.to_string(),
            reason,
        };
        let mode = match channels {
            1 => ChannelMode::Mono,
            2 => ChannelMode::Stereo,
            n => {
                return Err(setup(format!(
                    "{n} audio channels; fdk-aac here supports 1 or 2"
                )))
            }
        };
        let bits = bitrate_kbps
            .checked_mul(1000)
            .filter(|&b| b > 0)
            .ok_or_else(|| setup(format!("bad AAC bitrate {bitrate_kbps} kbit/s")))?;
        let enc = Encoder::new(EncoderParams {
            bit_rate: BitRate::Cbr(bits),
            sample_rate,
            transport: Transport::Raw,
            channels: mode,
            audio_object_type: AudioObjectType::Mpeg4LowComplexity,
        })
        .map_err(|e| {
            setup(format!(
                "fdk-aac rejects AAC-LC {channels} ch {sample_rate} Hz {bitrate_kbps} kbit/s: {e}"
            ))
        })?;
        let info = enc
            .info()
            .map_err(|e| setup(format!("fdk-aac info: {e}")))?;
        if info.frameLength as usize != AAC_FRAME_LEN {
            return Err(setup(format!(
                "fdk-aac frame length {} instead of {AAC_FRAME_LEN}",
                info.frameLength
            )));
        }
        let asc_len = (info.confSize as usize).min(info.confBuf.len());
        let config = AacConfig {
            asc: info.confBuf[..asc_len].to_vec(),
            channels,
            sample_rate,
            delay: info.nDelay,
        };
        let unit_samples = AAC_FRAME_LEN * usize::from(channels);
        // 6144 bits per channel is the AAC maximum for one unit; fdk reports its own bound.
        let out_len = (info.maxOutBufBytes as usize).max(768 * usize::from(channels));
        Ok(AacEncoder {
            track: track.to_string(),
            enc,
            config,
            unit_samples,
            next_index: first_frame,
            first_frame,
            pending: Vec::with_capacity(unit_samples),
            fed: 0,
            out_buf: vec![0; out_len],
            finished: false,
        })
    }

    /// Decoder configuration (AudioSpecificConfig, channels, rate, encoder delay).
    pub fn config(&self) -> &AacConfig {
        &self.config
    }

    /// The grid sample (audio sample domain, per channel) that the first input sample must be:
    /// `1024·first_frame + delay`. See the module docs for why.
    pub fn input_start(&self) -> SampleIndex {
        SampleIndex(
            self.first_frame
                .saturating_mul(AAC_FRAME_LEN as u64)
                .saturating_add(u64::from(self.config.delay)),
        )
    }

    /// Encodes interleaved PCM of any length (a whole number of sample frames), contiguous with
    /// what was fed before. Pushes every completed access unit onto `out`, in order.
    pub fn encode(&mut self, pcm: &[i16], out: &mut Vec<EncodedAudio>) -> Result<(), EncodeError> {
        let channels = usize::from(self.config.channels);
        if self.finished {
            return Err(self.error("input after finish()".into()));
        }
        if pcm.len() % channels != 0 {
            return Err(self.error(format!(
                "{} samples is not a whole number of {channels}-channel sample frames",
                pcm.len()
            )));
        }
        self.fed += (pcm.len() / channels) as u64;
        let mut rest = pcm;
        if !self.pending.is_empty() {
            let take = (self.unit_samples - self.pending.len()).min(rest.len());
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.pending.len() < self.unit_samples {
                return Ok(());
            }
            let unit = std::mem::take(&mut self.pending);
            let r = self.encode_unit(&unit, out);
            self.pending = unit;
            self.pending.clear();
            r?;
        }
        let mut units = rest.chunks_exact(self.unit_samples);
        for unit in &mut units {
            self.encode_unit(unit, out)?;
        }
        self.pending.extend_from_slice(units.remainder());
        Ok(())
    }

    /// Ends the stream: pads with silence until every fed sample is inside an emitted unit
    /// (fdk-aac has no flush), i.e. emits units up to the one holding grid sample
    /// `input_start + fed − 1` (that includes the `delay` samples still inside the encoder).
    pub fn finish(&mut self, out: &mut Vec<EncodedAudio>) -> Result<(), EncodeError> {
        if self.finished {
            return Ok(());
        }
        self.finished = true;
        let decoded_needed = u64::from(self.config.delay) + self.fed;
        let units_needed = decoded_needed.div_ceil(AAC_FRAME_LEN as u64);
        let silence = vec![0i16; self.unit_samples];
        while self.next_index - self.first_frame < units_needed {
            if self.pending.is_empty() {
                self.encode_unit(&silence, out)?;
            } else {
                let mut unit = std::mem::take(&mut self.pending);
                unit.resize(self.unit_samples, 0);
                self.encode_unit(&unit, out)?;
            }
        }
        self.pending.clear();
        Ok(())
    }

    /// Feeds exactly one unit's worth of interleaved samples; fdk then emits one unit.
    fn encode_unit(
        &mut self,
        unit: &[i16],
        out: &mut Vec<EncodedAudio>,
    ) -> Result<(), EncodeError> {
        debug_assert_eq!(unit.len(), self.unit_samples);
        let mut input = unit;
        loop {
            let info = self
                .enc
                .encode(input, &mut self.out_buf)
                .map_err(|e| self.error(format!("fdk-aac: {e}")))?;
            input = input.get(info.input_consumed..).unwrap_or(&[]);
            if info.output_size > 0 {
                let data = self
                    .out_buf
                    .get(..info.output_size)
                    .ok_or_else(|| self.error("fdk-aac overran its output buffer".into()))?
                    .to_vec();
                out.push(EncodedAudio {
                    index: self.next_index,
                    data,
                });
                self.next_index += 1;
            }
            if input.is_empty() {
                return Ok(());
            }
            if info.input_consumed == 0 && info.output_size == 0 {
                return Err(self.error("fdk-aac made no progress".into()));
            }
        }
    }

    fn error(&self, reason: String) -> EncodeError {
        EncodeError::Encode {
            track: self.track.clone(),
            at: format!("AAC frame {}", self.next_index),
            reason,
        }
    }
}
