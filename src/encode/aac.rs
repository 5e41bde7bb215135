//! AAC-LC encoding of the audio track.
//!
//! Two backends share one API: fdk-aac (cargo feature `fdk`, the default) and FFmpeg's native
//! `aac` encoder (feature `ffmpeg-aac`, used only when `fdk` is off — fdk-aac is not
//! GPL-compatible for redistribution with x264). Both are raw AAC-LC at a constant target
//! bitrate with 1024-sample frames; they differ in encoder delay, which [`AacConfig::delay`]
//! reports and the alignment rule below absorbs.
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
//!
//! Measured (tests/encode_aac.rs, by cross-correlating FFmpeg's decode with the input): fdk-aac
//! AAC-LC has `delay` = 2048 and emits one unit per 1024 input samples from the first call;
//! FFmpeg's `aac` has `delay` = 1024 and returns its first unit one call late. Labels count
//! units produced, so both follow the same rule.

use super::{AacConfig, EncodeError, EncodedAudio};
use crate::time::SampleIndex;

/// Samples per channel in one AAC-LC access unit.
pub const AAC_FRAME_LEN: usize = 1024;

/// An AAC-LC encoder producing raw access units labelled with their AAC frame index.
pub struct AacEncoder {
    track: String,
    backend: backend::Backend,
    config: AacConfig,
    /// Interleaved samples in one access unit (1024 × channels).
    unit_samples: usize,
    /// AAC frame index (audio grid) of the next unit produced.
    next_index: u64,
    first_frame: u64,
    /// Input not yet making up a whole unit, interleaved; fewer than `unit_samples`.
    pending: Vec<i16>,
    /// Sample frames (per channel) fed so far.
    fed: u64,
    /// Reused scratch list of the units one backend call produced.
    produced: Vec<Vec<u8>>,
    finished: bool,
}

impl std::fmt::Debug for AacEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AacEncoder")
            .field("track", &self.track)
            .field("backend", &backend::NAME)
            .field("config", &self.config)
            .field("next_index", &self.next_index)
            .finish_non_exhaustive()
    }
}

impl AacEncoder {
    /// Opens an AAC-LC encoder: raw access units (no ADTS), constant bitrate `bitrate_kbps`,
    /// mono or stereo at `sample_rate`. The first unit produced is AAC frame `first_frame` of
    /// the audio grid; feed input starting at [`AacEncoder::input_start`].
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
        if !(1..=2).contains(&channels) {
            return Err(setup(format!(
                "{channels} audio channels; AAC-LC here is mono or stereo"
            )));
        }
        let bits = bitrate_kbps
            .checked_mul(1000)
            .filter(|&b| b > 0)
            .ok_or_else(|| setup(format!("bad AAC bitrate {bitrate_kbps} kbit/s")))?;
        let (backend, asc, delay) =
            backend::Backend::open(channels, sample_rate, bits).map_err(|e| {
                setup(format!(
                    "{} rejects AAC-LC {channels} ch {sample_rate} Hz {bitrate_kbps} kbit/s: {e}",
                    backend::NAME
                ))
            })?;
        let unit_samples = AAC_FRAME_LEN * usize::from(channels);
        Ok(AacEncoder {
            track: track.to_string(),
            backend,
            config: AacConfig {
                asc,
                channels,
                sample_rate,
                delay,
            },
            unit_samples,
            next_index: first_frame,
            first_frame,
            pending: Vec::with_capacity(unit_samples),
            fed: 0,
            produced: Vec::with_capacity(2),
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
        if !pcm.len().is_multiple_of(channels) {
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
    /// (fdk-aac has no flush; the same padding keeps both backends alike), i.e. emits units up
    /// to the one holding grid sample `input_start + fed − 1`, which includes the `delay`
    /// samples still inside the encoder. Further `encode` calls are errors.
    pub fn finish(&mut self, out: &mut Vec<EncodedAudio>) -> Result<(), EncodeError> {
        if self.finished {
            return Ok(());
        }
        self.finished = true;
        let decoded_needed = u64::from(self.config.delay) + self.fed;
        let units_needed = decoded_needed.div_ceil(AAC_FRAME_LEN as u64);
        let mut unit = std::mem::take(&mut self.pending);
        // Bounded: each silent unit fed yields a unit once the encoder's look-ahead is full.
        let max_feeds = units_needed + 4;
        let mut feeds = 0;
        while self.next_index - self.first_frame < units_needed {
            if feeds > max_feeds {
                return Err(self.error("encoder stopped producing units while padding".into()));
            }
            unit.resize(self.unit_samples, 0);
            self.encode_unit(&unit, out)?;
            unit.clear();
            feeds += 1;
        }
        Ok(())
    }

    /// Feeds exactly one unit's worth of interleaved samples and labels what comes out.
    fn encode_unit(
        &mut self,
        unit: &[i16],
        out: &mut Vec<EncodedAudio>,
    ) -> Result<(), EncodeError> {
        debug_assert_eq!(unit.len(), self.unit_samples);
        let mut produced = std::mem::take(&mut self.produced);
        let r = self.backend.encode_unit(unit, &mut produced);
        for data in produced.drain(..) {
            out.push(EncodedAudio {
                index: self.next_index,
                data,
            });
            self.next_index += 1;
        }
        self.produced = produced;
        r.map_err(|e| self.error(format!("{}: {e}", backend::NAME)))
    }

    fn error(&self, reason: String) -> EncodeError {
        EncodeError::Encode {
            track: self.track.clone(),
            at: format!("AAC frame {}", self.next_index),
            reason,
        }
    }
}

/// fdk-aac: one unit out per 1024 samples in, from the first call.
#[cfg(feature = "fdk")]
mod backend {
    use super::AAC_FRAME_LEN;
    use fdk_aac::enc::{AudioObjectType, BitRate, ChannelMode, Encoder, EncoderParams, Transport};

    pub(super) const NAME: &str = "fdk-aac";

    pub(super) struct Backend {
        enc: Encoder,
        /// fdk writes each unit here before it is copied out at its exact size.
        out_buf: Vec<u8>,
    }

    impl Backend {
        /// Returns the backend, the AudioSpecificConfig and the encoder delay in samples.
        pub(super) fn open(
            channels: u16,
            sample_rate: u32,
            bits: u32,
        ) -> Result<(Backend, Vec<u8>, u32), String> {
            let enc = Encoder::new(EncoderParams {
                bit_rate: BitRate::Cbr(bits),
                sample_rate,
                transport: Transport::Raw,
                channels: if channels == 1 {
                    ChannelMode::Mono
                } else {
                    ChannelMode::Stereo
                },
                audio_object_type: AudioObjectType::Mpeg4LowComplexity,
            })
            .map_err(|e| e.to_string())?;
            let info = enc.info().map_err(|e| format!("info: {e}"))?;
            if info.frameLength as usize != AAC_FRAME_LEN {
                return Err(format!("frame length {}", info.frameLength));
            }
            let asc_len = (info.confSize as usize).min(info.confBuf.len());
            let asc = info.confBuf[..asc_len].to_vec();
            // 6144 bits per channel is the AAC maximum for one unit; fdk reports its own bound.
            let out_len = (info.maxOutBufBytes as usize).max(768 * usize::from(channels));
            let backend = Backend {
                enc,
                out_buf: vec![0; out_len],
            };
            Ok((backend, asc, info.nDelay))
        }

        pub(super) fn encode_unit(
            &mut self,
            unit: &[i16],
            produced: &mut Vec<Vec<u8>>,
        ) -> Result<(), String> {
            let mut input = unit;
            loop {
                let info = self
                    .enc
                    .encode(input, &mut self.out_buf)
                    .map_err(|e| e.to_string())?;
                input = input.get(info.input_consumed..).unwrap_or(&[]);
                if info.output_size > 0 {
                    let data = self
                        .out_buf
                        .get(..info.output_size)
                        .ok_or("output buffer overrun")?;
                    produced.push(data.to_vec());
                }
                if input.is_empty() {
                    return Ok(());
                }
                if info.input_consumed == 0 && info.output_size == 0 {
                    return Err("no progress".into());
                }
            }
        }
    }
}

/// FFmpeg's native `aac` encoder. It holds one frame of look-ahead before its first packet and
/// reports its delay as `initial_padding`.
#[cfg(all(feature = "ffmpeg-aac", not(feature = "fdk")))]
mod backend {
    use super::AAC_FRAME_LEN;
    use ff::format::{sample::Type as SampleType, Sample};
    use ffmpeg_next as ff;

    pub(super) const NAME: &str = "ffmpeg aac";

    pub(super) struct Backend {
        enc: ff::encoder::Audio,
        frame: ff::frame::Audio,
        packet: ff::Packet,
        /// Presentation index of the next frame, in samples since the encoder started.
        pts: i64,
    }

    impl Backend {
        /// Returns the backend, the AudioSpecificConfig and the encoder delay in samples.
        pub(super) fn open(
            channels: u16,
            sample_rate: u32,
            bits: u32,
        ) -> Result<(Backend, Vec<u8>, u32), String> {
            let codec = ff::encoder::find_by_name("aac").ok_or("FFmpeg has no aac encoder")?;
            let rate = i32::try_from(sample_rate).map_err(|_| "sample rate out of range")?;
            let mut enc = ff::codec::context::Context::new_with_codec(codec)
                .encoder()
                .audio()
                .map_err(|e| e.to_string())?;
            let layout = ff::ChannelLayout::default(i32::from(channels));
            let format = Sample::F32(SampleType::Planar);
            enc.set_rate(rate);
            enc.set_channel_layout(layout);
            enc.set_format(format);
            enc.set_bit_rate(bits as usize);
            enc.set_time_base((1, rate));
            let enc = enc.open_as(codec).map_err(|e| e.to_string())?;
            if enc.frame_size() as usize != AAC_FRAME_LEN {
                return Err(format!("frame size {}", enc.frame_size()));
            }
            // SAFETY: the context is open; extradata is `extradata_size` bytes it owns.
            let (asc, delay) = unsafe {
                let ctx = &*enc.as_ptr();
                let asc = if ctx.extradata.is_null() || ctx.extradata_size <= 0 {
                    Vec::new()
                } else {
                    std::slice::from_raw_parts(ctx.extradata, ctx.extradata_size as usize).to_vec()
                };
                (asc, ctx.initial_padding)
            };
            if asc.len() < 2 {
                return Err("no AudioSpecificConfig".into());
            }
            let asc = super::strip_no_sbr_extension(asc);
            let delay = u32::try_from(delay).map_err(|_| "negative encoder delay")?;
            let frame = ff::frame::Audio::new(format, AAC_FRAME_LEN, layout);
            let backend = Backend {
                enc,
                frame,
                packet: ff::Packet::empty(),
                pts: 0,
            };
            Ok((backend, asc, delay))
        }

        pub(super) fn encode_unit(
            &mut self,
            unit: &[i16],
            produced: &mut Vec<Vec<u8>>,
        ) -> Result<(), String> {
            // SAFETY: the frame was allocated by us; make_writable copies it if the encoder
            // still holds a reference to its buffer.
            if unsafe { ff::ffi::av_frame_make_writable(self.frame.as_mut_ptr()) } < 0 {
                return Err("cannot make the input frame writable".into());
            }
            let channels = self.frame.planes();
            for ch in 0..channels {
                let plane = self.frame.plane_mut::<f32>(ch);
                for (dst, src) in plane.iter_mut().zip(unit.iter().skip(ch).step_by(channels)) {
                    *dst = f32::from(*src) / 32768.0;
                }
            }
            self.frame.set_pts(Some(self.pts));
            self.pts += AAC_FRAME_LEN as i64;
            self.enc
                .send_frame(&self.frame)
                .map_err(|e| e.to_string())?;
            self.drain(Some(produced))
        }

        /// Collects the packets the encoder has ready (discarding them when `produced` is
        /// `None`).
        fn drain(&mut self, mut produced: Option<&mut Vec<Vec<u8>>>) -> Result<(), String> {
            loop {
                match self.enc.receive_packet(&mut self.packet) {
                    Ok(()) => {
                        if let Some(p) = produced.as_deref_mut() {
                            p.push(self.packet.data().unwrap_or(&[]).to_vec());
                        }
                    }
                    Err(ff::Error::Other {
                        errno: ff::util::error::EAGAIN,
                    })
                    | Err(ff::Error::Eof) => return Ok(()),
                    Err(e) => return Err(e.to_string()),
                }
            }
        }
    }

    impl Drop for Backend {
        fn drop(&mut self) {
            // End the stream so FFmpeg does not warn about frames left in its queue; the
            // trailing packets are not needed (finish() already padded what the caller wants).
            if self.enc.send_eof().is_ok() {
                let _ = self.drain(None);
            }
        }
    }
}

/// FFmpeg appends an explicit "no SBR" sync extension (0x2b7, AOT 5, sbrPresent 0) to the
/// plain 2-byte AAC-LC AudioSpecificConfig. It only confirms what AAC-LC implies, and ingest
/// servers and Smooth clients expect the plain form (`1190` for 48 kHz stereo), which is also
/// what fdk-aac produces — so both backends declare the same CodecPrivateData.
#[cfg(all(feature = "ffmpeg-aac", not(feature = "fdk")))]
fn strip_no_sbr_extension(mut asc: Vec<u8>) -> Vec<u8> {
    // AOT 2 (5 bits) with a sampling-frequency index other than the escape 15: 2-byte base.
    let plain_lc = asc.len() == 5 && asc[0] >> 3 == 2 && ((asc[0] & 0x07) << 1 | asc[1] >> 7) != 15;
    // Bits 16..: 0x2b7 (11) | 00101 (AOT SBR) | 0 (no SBR) | padding.
    if plain_lc && asc[2..] == [0x56, 0xe5, 0x00] {
        asc.truncate(2);
    }
    asc
}

/// Built without any AAC encoder: opening fails with a clear reason.
#[cfg(not(any(feature = "fdk", feature = "ffmpeg-aac")))]
mod backend {
    pub(super) const NAME: &str = "no AAC encoder";

    pub(super) enum Backend {}

    impl Backend {
        pub(super) fn open(_: u16, _: u32, _: u32) -> Result<(Backend, Vec<u8>, u32), String> {
            Err("built without the `fdk` or `ffmpeg-aac` feature".into())
        }

        pub(super) fn encode_unit(
            &mut self,
            _: &[i16],
            _: &mut Vec<Vec<u8>>,
        ) -> Result<(), String> {
            match *self {}
        }
    }
}
