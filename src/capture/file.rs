//! File sources: a media file decoded with FFmpeg, looped forever, and placed on the grid.
//!
//! [`FileVideo`] re-times the file's pictures onto the channel's frame grid: output slot
//! `start + i` (media time `i × den/num` s after the first slot) shows the decoded picture whose
//! time — relative to the file's first picture, plus the length of every completed loop — is
//! the latest at or before the slot. A 25 fps file on a 30 fps grid thus repeats every fifth
//! picture, a 60 fps file shows every other one. [`FileAudio`] emits the file's first audio
//! stream resampled to the requested rate and channel count as one contiguous sample stream,
//! loop after loop. Video and audio loop independently (each at its own stream's length), so a
//! file whose streams differ in length drifts apart across loops: fine for test material,
//! which is what file inputs are for.
//!
//! At the end of the file the input is reopened rather than seeked, so every loop starts from
//! the same pristine demuxer and decoder state and decodes to the same pictures.

use super::{
    i420_planes, i420_size, AudioBlock, AudioSource, CaptureError, FrameOrigin, FramePool, Pacer,
    Pacing, VideoFrame, VideoSource,
};
use crate::time::{FrameIndex, Rate, SampleIndex};
use ff::format::{sample, Pixel, Sample};
use ff::software::{resampling, scaling};
use ff::{codec, frame, media, ChannelLayout, Rational, Rescale};
use ffmpeg_next as ff;
use std::ffi::c_int;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// Consecutive demuxer or decoder errors after which the rest of a pass is given up: a
/// truncated or damaged file then ends its loop early instead of spinning.
const MAX_CONSECUTIVE_ERRORS: u32 = 64;

/// Initialises FFmpeg once per process.
fn init() -> Result<(), String> {
    static INIT: OnceLock<Result<(), String>> = OnceLock::new();
    INIT.get_or_init(|| ff::init().map_err(|e| format!("FFmpeg initialisation failed: {e}")))
        .clone()
}

fn is_again(e: &ff::Error) -> bool {
    matches!(e, ff::Error::Other { errno } if *errno == ff::error::EAGAIN)
}

/// What [`Demuxer::open`] learnt about the selected stream.
struct StreamInfo {
    params: codec::Parameters,
    /// Average frame rate (video), possibly 0/0 when unknown.
    avg_frame_rate: Rational,
    /// Base frame rate guessed by the demuxer (video), possibly 0/0.
    r_frame_rate: Rational,
}

/// One open input file, reading the packets of its first stream of one medium.
struct Demuxer {
    /// The file, for log lines.
    name: String,
    input: ff::format::context::Input,
    stream: usize,
    /// Time base of the stream's timestamps (seconds per tick).
    time_base: Rational,
    eof_sent: bool,
    errors: u32,
}

impl Demuxer {
    fn open(path: &Path, kind: media::Type) -> Result<(Demuxer, StreamInfo), String> {
        let input =
            ff::format::input(&path).map_err(|e| format!("not a readable media file ({e})"))?;
        let stream = input
            .streams()
            .find(|s| s.parameters().medium() == kind)
            .ok_or_else(|| {
                let what = if kind == media::Type::Video {
                    "video"
                } else {
                    "audio"
                };
                format!("the file has no {what} stream")
            })?;
        let info = StreamInfo {
            params: stream.parameters(),
            avg_frame_rate: stream.avg_frame_rate(),
            r_frame_rate: stream.rate(),
        };
        let (index, time_base) = (stream.index(), stream.time_base());
        let demuxer = Demuxer {
            name: path.display().to_string(),
            input,
            stream: index,
            time_base,
            eof_sent: false,
            errors: 0,
        };
        Ok((demuxer, info))
    }

    /// Gives `decoder` the next packet of the stream, or end of stream at the end of the file.
    /// Packets the decoder rejects are skipped (a damaged file plays what it can); a long run
    /// of failures ends the pass early.
    fn feed(&mut self, decoder: &mut ff::decoder::Opened) -> Result<(), String> {
        loop {
            let mut packet = ff::Packet::empty();
            match packet.read(&mut self.input) {
                Ok(()) => {
                    if packet.stream() != self.stream {
                        continue;
                    }
                    match decoder.send_packet(&packet) {
                        Ok(()) => {
                            self.errors = 0;
                            return Ok(());
                        }
                        Err(e) => {
                            tracing::debug!(input = %self.name, error = %e, "skipping undecodable packet");
                            if self.give_up_after_error() {
                                return self.finish(decoder);
                            }
                        }
                    }
                }
                Err(ff::Error::Eof) => return self.finish(decoder),
                Err(e) => {
                    tracing::debug!(input = %self.name, error = %e, "demuxer read error");
                    if self.give_up_after_error() {
                        return self.finish(decoder);
                    }
                }
            }
        }
    }

    fn finish(&mut self, decoder: &mut ff::decoder::Opened) -> Result<(), String> {
        self.eof_sent = true;
        decoder
            .send_eof()
            .map_err(|e| format!("decoder drain failed: {e}"))
    }

    /// Counts one read/decode error; true when the run of errors is long enough to give up
    /// the rest of this pass.
    fn give_up_after_error(&mut self) -> bool {
        self.errors += 1;
        if self.errors == MAX_CONSECUTIVE_ERRORS {
            tracing::warn!(input = %self.name, errors = self.errors, "damaged input: ending this loop early");
        }
        self.errors >= MAX_CONSECUTIVE_ERRORS
    }

    /// Decodes the next frame of the stream into `frame`; `false` at the end of the file.
    fn decode(
        &mut self,
        decoder: &mut ff::decoder::Opened,
        frame: &mut ff::Frame,
    ) -> Result<bool, String> {
        loop {
            match decoder.receive_frame(frame) {
                Ok(()) => return Ok(true),
                Err(ff::Error::Eof) => return Ok(false),
                Err(e) if is_again(&e) => {
                    if self.eof_sent {
                        return Ok(false);
                    }
                    self.feed(decoder)?;
                }
                Err(e) => {
                    tracing::debug!(input = %self.name, error = %e, "decoder error");
                    if self.give_up_after_error() {
                        return Ok(false);
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Video
// ---------------------------------------------------------------------------------------------

/// The file's video stream as an endless sequence of decoded pictures on a looped timeline.
struct VideoInput {
    path: PathBuf,
    demux: Demuxer,
    decoder: ff::decoder::Video,
    /// Time base of the looped timeline: the stream's at the first open (seconds per tick).
    time_base: Rational,
    /// Picture duration in ticks assumed when a picture carries neither timestamp nor duration.
    nominal: i64,
    /// Start of the current pass (loop) on the looped timeline, in ticks.
    offset: i64,
    /// Timestamp of the current pass's first picture (ticks): its time 0.
    origin: Option<i64>,
    /// Pass-relative time and duration (ticks) of the last picture of the current pass.
    last: Option<(i64, i64)>,
}

impl VideoInput {
    fn open(path: &Path) -> Result<VideoInput, String> {
        let (demux, info) = Demuxer::open(path, media::Type::Video)?;
        let decoder = video_decoder(info.params)?;
        let time_base = demux.time_base;
        if time_base.numerator() <= 0 || time_base.denominator() <= 0 {
            return Err(format!("invalid video time base {time_base}"));
        }
        // Ticks per picture from the stream's frame rate; 25 fps when the file does not say.
        let per_frame = |fr: Rational| {
            let (n, d) = (i128::from(fr.numerator()), i128::from(fr.denominator()));
            let (tn, td) = (
                i128::from(time_base.numerator()),
                i128::from(time_base.denominator()),
            );
            (n > 0 && d > 0).then(|| (td * d / (tn * n)).max(1) as i64)
        };
        let nominal = per_frame(info.avg_frame_rate)
            .or_else(|| per_frame(info.r_frame_rate))
            .or_else(|| per_frame(Rational::new(25, 1)))
            .unwrap_or(1);
        Ok(VideoInput {
            path: path.to_path_buf(),
            demux,
            decoder,
            time_base,
            nominal,
            offset: 0,
            origin: None,
            last: None,
        })
    }

    /// Decodes the next picture into `frame` and returns its time on the looped timeline
    /// (ticks of `time_base` since the first picture of the first pass). Times strictly
    /// increase, even across broken or missing timestamps.
    fn next(&mut self, frame: &mut frame::Video) -> Result<i64, String> {
        let mut empty_passes = 0;
        loop {
            if self.demux.decode(&mut self.decoder, frame)? {
                let tb = self.demux.time_base;
                let pts = frame
                    .timestamp()
                    .or_else(|| frame.pts())
                    .map(|p| p.rescale(tb, self.time_base));
                let follow = self.last.map_or(0, |(r, d)| r.saturating_add(d));
                let rel = match (pts, self.origin) {
                    (Some(p), Some(o)) => p.saturating_sub(o),
                    (Some(p), None) => {
                        self.origin = Some(p);
                        0
                    }
                    (None, _) => follow,
                };
                let rel = match self.last {
                    Some((r, _)) if rel <= r => r + 1,
                    _ => rel,
                };
                let duration = frame.packet().duration;
                let duration = if duration > 0 {
                    duration.rescale(tb, self.time_base).max(1)
                } else {
                    self.nominal
                };
                self.last = Some((rel, duration));
                return Ok(self.offset.saturating_add(rel));
            }
            // End of the file: the next pass starts where this one's last picture ends.
            match self.last.take() {
                Some((r, d)) => self.offset = self.offset.saturating_add(r.saturating_add(d)),
                None => {
                    empty_passes += 1;
                    if empty_passes > 1 || self.offset == 0 {
                        return Err("no decodable video picture in the file".into());
                    }
                }
            }
            self.origin = None;
            let (demux, info) = Demuxer::open(&self.path, media::Type::Video)
                .map_err(|e| format!("reopening to loop: {e}"))?;
            self.decoder = video_decoder(info.params)?;
            self.demux = demux;
        }
    }
}

fn video_decoder(params: codec::Parameters) -> Result<ff::decoder::Video, String> {
    codec::context::Context::from_parameters(params)
        .and_then(|c| c.decoder().video())
        .map_err(|e| format!("cannot open the video decoder ({e})"))
}

/// A pixel-format/size converter to I420 for pictures not already in that form.
struct Scaler {
    /// Input format and size this context was made for.
    key: (Pixel, u32, u32),
    ctx: scaling::Context,
    out: frame::Video,
}

// SAFETY: the SwsContext and frame are owned exclusively by this value and used by one thread
// at a time (the one owning the source); libswscale keeps no thread-affine state.
unsafe impl Send for Scaler {}

/// Copies a decoded I420 picture of exactly `width × height` into a tightly packed buffer.
fn copy_i420(src: &frame::Video, dst: &mut [u8], width: u32, height: u32) -> Result<(), String> {
    for (p, (off, row_len, rows)) in i420_planes(width, height).into_iter().enumerate() {
        let stride = src.stride(p);
        let data = src.data(p);
        for r in 0..rows {
            let from = data.get(r * stride..r * stride + row_len);
            let to = dst.get_mut(off + r * row_len..off + (r + 1) * row_len);
            match (from, to) {
                (Some(f), Some(t)) => t.copy_from_slice(f),
                _ => return Err("decoded picture has an unexpected plane layout".into()),
            }
        }
    }
    Ok(())
}

/// Opens a video file input: YUV4MPEG2 4:2:0 natively ([`super::y4m::Y4mVideo`]: straight into
/// the picture buffers), anything else through FFmpeg ([`FileVideo`]). Both place pictures on
/// the grid the same way.
pub fn open_video(
    path: &Path,
    rate: Rate,
    start: FrameIndex,
    pacing: Pacing,
) -> Result<Box<dyn VideoSource>, CaptureError> {
    if let Some(native) = super::y4m::Y4mVideo::open(path, rate, start, &pacing)? {
        return Ok(Box::new(native));
    }
    Ok(Box::new(FileVideo::open(path, rate, start, pacing)?))
}

/// Video from a media file's first video stream: I420 at the file's picture size, looped and
/// re-timed onto the frame grid from `start` on (see the module docs).
pub struct FileVideo {
    name: String,
    input: VideoInput,
    rate: Rate,
    /// Index of the first slot; the file's first picture is shown there.
    start: FrameIndex,
    /// Index of the next slot `next_frame` returns.
    next: FrameIndex,
    width: u32,
    height: u32,
    /// The decoded picture after the one on screen, and its looped-timeline time (ticks).
    pending: frame::Video,
    pending_time: Option<i64>,
    /// The decoded picture chosen for the latest slot.
    chosen: frame::Video,
    /// `chosen` converted to I420; repeated slots share it.
    current: Option<Arc<Vec<u8>>>,
    scaler: Option<Scaler>,
    pool: FramePool,
    pacer: Pacer,
}

impl std::fmt::Debug for FileVideo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileVideo")
            .field("input", &self.name)
            .field("size", &(self.width, self.height))
            .field("rate", &self.rate)
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl FileVideo {
    /// Opens `path` and decodes its first picture (so an undecodable file fails here). Frame
    /// indices are frames since the Unix epoch at `rate`; slot `start` shows the first picture.
    pub fn open(
        path: &Path,
        rate: Rate,
        start: FrameIndex,
        pacing: Pacing,
    ) -> Result<FileVideo, CaptureError> {
        let name = path.display().to_string();
        let open_err = |reason: String| CaptureError::Open {
            input: name.clone(),
            reason,
        };
        init().map_err(open_err)?;
        let mut input = VideoInput::open(path).map_err(open_err)?;
        let mut pending = frame::Video::empty();
        let first = input.next(&mut pending).map_err(open_err)?;
        let (width, height) = (pending.width(), pending.height());
        if width == 0 || height == 0 {
            return Err(open_err("the video stream has no picture size".into()));
        }
        Ok(FileVideo {
            name: name.clone(),
            input,
            rate,
            start,
            next: start,
            width,
            height,
            pending,
            pending_time: Some(first),
            chosen: frame::Video::empty(),
            current: None,
            scaler: None,
            pool: FramePool::new(i420_size(width, height)),
            pacer: Pacer::new(&pacing),
        })
    }

    /// True when a picture at looped-timeline time `t` (ticks) is at or before slot `i`
    /// (counted from `start`): `t × tb ≤ i × den/num`, compared exactly.
    fn shown_by(&self, t: i64, i: u64) -> bool {
        let tb = self.input.time_base;
        let lhs = i128::from(t) * i128::from(tb.numerator()) * i128::from(self.rate.num());
        let rhs = i128::from(i) * i128::from(self.rate.den()) * i128::from(tb.denominator());
        lhs <= rhs
    }

    /// Converts `chosen` to a pooled I420 buffer at the source's size.
    fn convert_chosen(&mut self) -> Result<Arc<Vec<u8>>, String> {
        let (w, h) = (self.width, self.height);
        let src = &self.chosen;
        if src.format() == Pixel::YUV420P && src.width() == w && src.height() == h {
            return self.pool.fill(|buf| copy_i420(src, buf, w, h));
        }
        let key = (src.format(), src.width(), src.height());
        if self.scaler.as_ref().map(|s| s.key) != Some(key) {
            let ctx = scaling::Context::get(
                key.0,
                key.1,
                key.2,
                Pixel::YUV420P,
                w,
                h,
                scaling::Flags::BILINEAR,
            )
            .map_err(|e| {
                format!(
                    "cannot convert {:?} {}x{} pictures ({e})",
                    key.0, key.1, key.2
                )
            })?;
            self.scaler = Some(Scaler {
                key,
                ctx,
                out: frame::Video::empty(),
            });
        }
        let Some(scaler) = self.scaler.as_mut() else {
            return Err("scaler missing".into());
        };
        scaler
            .ctx
            .run(src, &mut scaler.out)
            .map_err(|e| format!("picture conversion failed ({e})"))?;
        let out = &scaler.out;
        self.pool.fill(|buf| copy_i420(out, buf, w, h))
    }
}

impl VideoSource for FileVideo {
    fn next_frame(&mut self) -> Result<VideoFrame, CaptureError> {
        let n = self.next;
        let i = n.0 - self.start.0;
        let read_err = |name: &str, reason: String| CaptureError::Read {
            input: name.to_string(),
            reason,
        };
        let mut advanced = false;
        loop {
            let t = match self.pending_time {
                Some(t) => t,
                None => {
                    let t = self
                        .input
                        .next(&mut self.pending)
                        .map_err(|e| read_err(&self.name, e))?;
                    self.pending_time = Some(t);
                    t
                }
            };
            if !self.shown_by(t, i) {
                break;
            }
            // Only the last picture at or before the slot is converted; skipped ones are not.
            std::mem::swap(&mut self.chosen, &mut self.pending);
            self.pending_time = None;
            advanced = true;
        }
        let data = match (&self.current, advanced) {
            (Some(data), false) => Arc::clone(data),
            _ => {
                let data = self.convert_chosen().map_err(|e| read_err(&self.name, e))?;
                self.current = Some(Arc::clone(&data));
                data
            }
        };
        self.pacer
            .wait_until(i, u64::from(self.rate.den()), u64::from(self.rate.num()));
        self.next = FrameIndex(n.0 + 1);
        Ok(VideoFrame {
            index: n,
            width: self.width,
            height: self.height,
            data,
            // Repeats from rate conversion are still the live input, not a loss fill.
            origin: FrameOrigin::Live,
        })
    }

    fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }
}

// ---------------------------------------------------------------------------------------------
// Audio
// ---------------------------------------------------------------------------------------------

/// Converts decoded audio to interleaved s16 at the output rate and layout.
struct Resampler {
    /// Input format, channel layout bits and rate this context was made for.
    key: (Sample, u64, u32),
    ctx: resampling::Context,
}

/// Audio from a media file's first audio stream, resampled to interleaved s16 at the requested
/// rate and channel count, looped, as one contiguous stream from sample `start` on.
pub struct FileAudio {
    name: String,
    path: PathBuf,
    sample_rate: u32,
    channels: u16,
    out_layout: ChannelLayout,
    /// Sample index (per channel, since the epoch) of the first sample; pacing counts from it.
    start: SampleIndex,
    /// Sample index of the next block's first sample.
    next: SampleIndex,
    demux: Demuxer,
    decoder: ff::decoder::Audio,
    frame: frame::Audio,
    resampler: Option<Resampler>,
    /// Resampled interleaved samples not yet handed out.
    buffer: Vec<i16>,
    /// Decoded frames in the current pass (a pass with none means the file has no audio).
    pass_frames: u64,
    pacer: Pacer,
}

impl std::fmt::Debug for FileAudio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileAudio")
            .field("input", &self.name)
            .field("sample_rate", &self.sample_rate)
            .field("channels", &self.channels)
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

fn audio_decoder(params: codec::Parameters) -> Result<ff::decoder::Audio, String> {
    codec::context::Context::from_parameters(params)
        .and_then(|c| c.decoder().audio())
        .map_err(|e| format!("cannot open the audio decoder ({e})"))
}

impl FileAudio {
    /// Opens `path` for its first audio stream, output at `sample_rate` Hz with `channels`
    /// interleaved channels (FFmpeg's default layout for that count). Sample indices are samples
    /// since the Unix epoch at `sample_rate`; the file's first sample lands on `start`. The
    /// first audio is decoded here, so an undecodable file fails at open.
    pub fn open(
        path: &Path,
        sample_rate: u32,
        channels: u16,
        start: SampleIndex,
        pacing: Pacing,
    ) -> Result<FileAudio, CaptureError> {
        let name = path.display().to_string();
        let open_err = |reason: String| CaptureError::Open {
            input: name.clone(),
            reason,
        };
        init().map_err(open_err)?;
        if sample_rate == 0 || channels == 0 {
            return Err(open_err(format!(
                "invalid output format {sample_rate} Hz × {channels} channels"
            )));
        }
        let out_layout = ChannelLayout::default(i32::from(channels));
        if out_layout.channels() != i32::from(channels) {
            return Err(open_err(format!(
                "no channel layout for {channels} channels"
            )));
        }
        let (demux, info) = Demuxer::open(path, media::Type::Audio).map_err(open_err)?;
        let decoder = audio_decoder(info.params).map_err(open_err)?;
        let mut source = FileAudio {
            name: name.clone(),
            path: path.to_path_buf(),
            sample_rate,
            channels,
            out_layout,
            start,
            next: start,
            demux,
            decoder,
            frame: frame::Audio::empty(),
            resampler: None,
            buffer: Vec::new(),
            pass_frames: 0,
            pacer: Pacer::new(&pacing),
        };
        source.fill(1).map_err(open_err)?;
        Ok(source)
    }

    /// Decodes and resamples until at least `frames` sample frames are buffered, looping the
    /// file at its end.
    fn fill(&mut self, frames: usize) -> Result<(), String> {
        let want = frames.saturating_mul(usize::from(self.channels));
        while self.buffer.len() < want {
            if self.demux.decode(&mut self.decoder, &mut self.frame)? {
                self.pass_frames += 1;
                self.resample()?;
                continue;
            }
            if self.pass_frames == 0 {
                return Err("no decodable audio in the file".into());
            }
            // Loop: the resampler carries on, so the stream stays contiguous across the seam.
            let (demux, info) = Demuxer::open(&self.path, media::Type::Audio)
                .map_err(|e| format!("reopening to loop: {e}"))?;
            self.decoder = audio_decoder(info.params)?;
            self.demux = demux;
            self.pass_frames = 0;
        }
        Ok(())
    }

    /// Appends the decoded `frame`, resampled, to `buffer`.
    fn resample(&mut self) -> Result<(), String> {
        let f = &self.frame;
        let in_channels = f.channels();
        let mut layout = f.channel_layout();
        if layout.channels() != i32::from(in_channels) {
            layout = ChannelLayout::default(i32::from(in_channels));
        }
        let key = (f.format(), layout.bits(), f.rate());
        if self.resampler.as_ref().map(|r| r.key) != Some(key) {
            let ctx = resampling::Context::get(
                key.0,
                layout,
                key.2,
                Sample::I16(sample::Type::Packed),
                self.out_layout,
                self.sample_rate,
            )
            .map_err(|e| {
                format!(
                    "cannot resample {:?} {} Hz × {in_channels} channels ({e})",
                    key.0, key.2
                )
            })?;
            self.resampler = Some(Resampler { key, ctx });
        }
        let Some(r) = self.resampler.as_mut() else {
            return Err("resampler missing".into());
        };
        let in_count = c_int::try_from(f.samples()).map_err(|_| "oversized audio frame")?;
        let ch = usize::from(self.channels);
        // SAFETY: the context was initialised for this frame's format, layout and rate; the
        // input pointers are the frame's planes holding `in_count` samples; the output
        // pointer addresses `out_max × ch` writable i16 values reserved just below, and
        // swr_convert writes at most `out_max` sample frames.
        unsafe {
            let swr = r.ctx.as_mut_ptr();
            let out_max = ff::ffi::swr_get_out_samples(swr, in_count);
            let out_max = usize::try_from(out_max).map_err(|_| "resampler size query failed")?;
            let old = self.buffer.len();
            self.buffer.resize(old + out_max * ch, 0);
            let mut out_ptr = self.buffer.as_mut_ptr().add(old).cast::<u8>();
            let input = (*f.as_ptr()).extended_data as *mut *const u8;
            let done = ff::ffi::swr_convert(swr, &mut out_ptr, out_max as c_int, input, in_count);
            let done = usize::try_from(done);
            self.buffer
                .truncate(old + done.as_ref().map_or(0, |d| d * ch));
            done.map_err(|_| "resampling failed")?;
        }
        Ok(())
    }
}

impl AudioSource for FileAudio {
    fn next_block(&mut self, max_frames: usize) -> Result<AudioBlock, CaptureError> {
        let first = self.next;
        self.fill(max_frames).map_err(|reason| CaptureError::Read {
            input: self.name.clone(),
            reason,
        })?;
        let take = max_frames * usize::from(self.channels);
        let samples: Vec<i16> = self.buffer.drain(..take).collect();
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
