//! ALSA capture through cpal: one named PCM device, a channel map that picks the program's
//! channels out of a multichannel input (e.g. channels 3–4 of the 8 channels embedded in an
//! SDI signal → stereo), conversion of whatever sample format the device delivers to `i16`, and
//! a sample grid that stays continuous across xruns.
//!
//! Threads: cpal runs the device on its own thread and hands every period to a data callback.
//! The callback converts and maps the period straight into a pooled `Vec<i16>` (so a period
//! costs no allocation once the pool is warm), gathers tiny periods into chunks of at least
//! 5 ms, and queues the chunks on a bounded channel; the consumer's
//! [`AudioSource::next_block`] pulls from that queue.
//!
//! Sample bookkeeping: the source emits one contiguous run of sample indices from `start`.
//! Audio lost on the way — a device xrun (reported by cpal's error callback) or a period
//! dropped because the consumer fell more than the ring's capacity behind — is replaced by the
//! same number of silent samples, so every later sample keeps its place on the grid. Periods
//! the callback drops are counted exactly; an xrun's length is measured from the capture
//! timestamps cpal attaches to each period (`InputCallbackInfo`), when the device has them.

use super::discipline::{DisciplineMonitor, DisciplinedAudio};
use super::loss::{AudioFactory, InputCounters};
use super::timecode::{LtcShared, LtcTap};
use super::{AudioBlock, AudioSource, CaptureError};
use crate::time::{Clocks, SampleIndex};
use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError, TrySendError};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Most channels a channel map may name; AES10 (MADI) carries 64.
const MAX_CHANNELS: u16 = 64;

/// How long `next_block` waits on the queue before it re-checks for a dead device.
const POLL_SLICE: Duration = Duration::from_millis(50);

/// Tuning of an [`AlsaAudio`] beyond what the hardware map says.
#[derive(Clone, Debug)]
pub struct AlsaOptions {
    /// Audio the ring between the device thread and the consumer holds before periods are
    /// dropped (and counted as overflows). Covers consumer stalls, not device latency.
    pub ring: Duration,
    /// No period from the device for this long (on the injected clocks' monotonic time) is
    /// reported as a lost input ([`CaptureError::Read`]).
    pub stall_timeout: Duration,
    /// Frames per ALSA period to ask for; `None` lets the device choose (cpal then uses two
    /// periods of the device's preferred size).
    pub period_frames: Option<u32>,
}

impl Default for AlsaOptions {
    fn default() -> AlsaOptions {
        AlsaOptions {
            ring: Duration::from_secs(2),
            stall_timeout: Duration::from_secs(2),
            period_frames: None,
        }
    }
}

/// Counters of one ALSA source, for status and alarms.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AlsaStats {
    /// Xruns the device reported (its buffer overran before the callback read it).
    pub xruns: u64,
    /// Periods the callback dropped because the ring was full (the consumer fell behind).
    pub overflows: u64,
    /// Sample frames delivered from the device.
    pub captured_frames: u64,
    /// Silent sample frames inserted in place of lost audio (xruns and overflows).
    pub silence_frames: u64,
    /// Non-fatal device errors other than xruns (logged as they happen).
    pub errors: u64,
    /// Sample frames in the device's most recent period (what cpal hands over per callback).
    pub period_frames: u64,
}

/// One ALSA PCM the host can capture from, as listed by [`input_devices`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlsaDevice {
    /// The ALSA PCM name (`hw:CARD=…,DEV=…`, `plughw:…`, or a name from the ALSA config);
    /// this is what [`AlsaAudio::open`] takes.
    pub name: String,
    /// The first line of ALSA's description, when it has one.
    pub description: Option<String>,
}

/// Lists the PCMs ALSA offers for capture: the configuration's hints plus `hw:`/`plughw:` of
/// every card. A name here is only a promise that ALSA knows it; opening may still fail (and
/// cpal's "default" device proves nothing at all, which is why it is never used implicitly).
pub fn input_devices() -> Result<Vec<AlsaDevice>, CaptureError> {
    let host = alsa_host().map_err(|reason| CaptureError::Open {
        input: "ALSA".into(),
        reason,
    })?;
    let devices = host.input_devices().map_err(|e| CaptureError::Open {
        input: "ALSA".into(),
        reason: format!("cannot list devices: {e}"),
    })?;
    Ok(devices.map(|d| describe(&d)).collect())
}

fn alsa_host() -> Result<cpal::Host, String> {
    cpal::host_from_id(cpal::HostId::Alsa).map_err(|e| format!("ALSA unavailable: {e}"))
}

fn describe(d: &cpal::Device) -> AlsaDevice {
    let name = d.id().map(|id| id.id().to_owned()).unwrap_or_default();
    let description = d
        .description()
        .ok()
        .map(|desc| desc.name().to_owned())
        .filter(|desc| *desc != name);
    AlsaDevice { name, description }
}

/// Audio captured from one ALSA PCM through cpal, mapped to the program's channels and placed
/// on the sample grid from `start`.
pub struct AlsaAudio {
    /// The device name as given (for errors and logs).
    name: String,
    sample_rate: u32,
    /// Sample index (audio grid) of the next sample frame `next_block` returns.
    next: SampleIndex,
    ring: Consumer,
    /// What was negotiated with the device (for logs and tests).
    config: AlsaConfig,
    /// Keeps the device running; dropping it stops cpal's thread.
    _stream: cpal::Stream,
}

impl std::fmt::Debug for AlsaAudio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlsaAudio")
            .field("name", &self.name)
            .field("channels", &self.ring.channels)
            .field("sample_rate", &self.sample_rate)
            .field("next", &self.next)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The stream configuration negotiated with the device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlsaConfig {
    /// Channels the device delivers per frame (the channel map picks from these).
    pub device_channels: u16,
    /// The device's sample format as cpal names it (`i16`, `i32`, `f32`, …).
    pub sample_format: String,
    /// Sample frames per second.
    pub sample_rate: u32,
}

impl AlsaAudio {
    /// Opens ALSA PCM `device` (exact PCM name, or exact description as listed by
    /// [`input_devices`]) at `sample_rate` with `input_channels` channels per frame, and emits
    /// `channel_map.len()` channels: output channel `k` carries input channel `channel_map[k]`
    /// (1-based). The first sample emitted has index `start` (audio grid). The monotonic time
    /// of `clocks` measures the stall timeout ([`AlsaOptions::stall_timeout`]).
    ///
    /// The device is looked up by name among ALSA's capture devices, never through cpal's
    /// default device (which cpal reports whether or not anything stands behind it); the error
    /// for an unknown name lists the devices that exist.
    pub fn open(
        device: &str,
        input_channels: u16,
        channel_map: &[u16],
        sample_rate: u32,
        start: SampleIndex,
        clocks: Arc<dyn Clocks>,
    ) -> Result<AlsaAudio, CaptureError> {
        AlsaAudio::open_with(
            device,
            input_channels,
            channel_map,
            sample_rate,
            start,
            clocks,
            AlsaOptions::default(),
        )
    }

    /// [`AlsaAudio::open`] with explicit [`AlsaOptions`].
    pub fn open_with(
        device: &str,
        input_channels: u16,
        channel_map: &[u16],
        sample_rate: u32,
        start: SampleIndex,
        clocks: Arc<dyn Clocks>,
        options: AlsaOptions,
    ) -> Result<AlsaAudio, CaptureError> {
        let open_err = |reason: String| CaptureError::Open {
            input: device.to_owned(),
            reason,
        };
        let map = validate_map(input_channels, channel_map, sample_rate).map_err(open_err)?;
        let host = alsa_host().map_err(open_err)?;
        let dev = find_device(&host, device).map_err(open_err)?;
        let needed = channel_map.iter().copied().max().unwrap_or(1);
        let ranges: Vec<cpal::SupportedStreamConfigRange> = dev
            .supported_input_configs()
            .map_err(|e| open_err(format!("cannot query capture formats: {e}")))?
            .collect();
        let (format, device_channels) = choose_config(&ranges, input_channels, needed, sample_rate)
            .ok_or_else(|| {
                open_err(format!(
                    "no capture format with {sample_rate} Hz and {input_channels} (or at least \
                     {needed}) channels in a supported sample format; the device offers: {}",
                    summarize(&ranges)
                ))
            })?;
        let layout = Layout {
            format,
            in_channels: usize::from(device_channels),
            map,
        };
        let (mut callback, ring) = ring(layout, sample_rate, &options, clocks);
        let errors = ErrorSink {
            shared: Arc::clone(&ring.shared),
            input: device.to_owned(),
        };
        let config = cpal::StreamConfig {
            channels: device_channels,
            sample_rate,
            buffer_size: match options.period_frames {
                Some(f) => cpal::BufferSize::Fixed(f),
                None => cpal::BufferSize::Default,
            },
        };
        let stream = dev
            .build_input_stream_raw(
                config,
                format.cpal(),
                move |data, info| callback.on_data(data, info),
                move |e| errors.on_error(e),
                None,
            )
            .map_err(|e| open_err(format!("cannot start capture: {e}")))?;
        stream
            .play()
            .map_err(|e| open_err(format!("cannot start capture: {e}")))?;
        tracing::info!(
            input = device,
            device_channels,
            format = %format.cpal(),
            sample_rate,
            ?channel_map,
            "ALSA capture started"
        );
        Ok(AlsaAudio {
            name: device.to_owned(),
            sample_rate,
            next: start,
            ring,
            config: AlsaConfig {
                device_channels,
                sample_format: format.cpal().to_string(),
                sample_rate,
            },
            _stream: stream,
        })
    }

    /// Audio lost so far, in events: device xruns plus ring overflows (see [`AlsaStats`]).
    pub fn xruns(&self) -> u64 {
        let s = self.stats();
        s.xruns + s.overflows
    }

    /// Counters of this source. `silence_frames` counts silence already emitted.
    pub fn stats(&self) -> AlsaStats {
        self.ring.stats()
    }

    /// The stream configuration negotiated with the device.
    pub fn config(&self) -> &AlsaConfig {
        &self.config
    }
}

impl AudioSource for AlsaAudio {
    /// Blocks until at least one sample frame is available, then returns up to `max_frames`
    /// of what has already arrived (silence standing in for lost audio included).
    fn next_block(&mut self, max_frames: usize) -> Result<AudioBlock, CaptureError> {
        let samples = self
            .ring
            .read(max_frames)
            .map_err(|reason| CaptureError::Read {
                input: self.name.clone(),
                reason,
            })?;
        let first = self.next;
        let frames = samples.len() / usize::from(self.ring.channels);
        self.next = SampleIndex(first.0 + frames as u64);
        Ok(AudioBlock {
            first,
            channels: self.ring.channels,
            sample_rate: self.sample_rate,
            samples,
        })
    }

    fn channels(&self) -> u16 {
        self.ring.channels
    }

    fn sample_rate(&self) -> u32 {
        self.sample_rate
    }
}

/// A channel's ALSA audio input as the hardware map resolves it.
#[derive(Clone, Debug)]
pub struct AlsaInput {
    /// The logical input name (`sdi1`), for logs.
    pub input: String,
    /// The ALSA PCM name.
    pub device: String,
    /// Channels per device frame to ask for (the logical input's highest channel).
    pub device_channels: u16,
    /// Device channels (1-based) feeding each output channel; with LTC, the LTC channel last.
    pub channel_map: Vec<u16>,
    /// Sample frames per second.
    pub sample_rate: u32,
    /// Ring and stall tuning.
    pub options: AlsaOptions,
}

/// A factory for the input-loss policy that (re)opens `input` at the requested sample and
/// builds the channel's device audio chain:
///
/// ```text
/// AlsaAudio (map, convert, xrun silence) ─► xrun counters ─► [LTC tap] ─► clock discipline
/// ```
///
/// Xruns and their silence are added to `counters`; the discipline (measured against the
/// monotonic time of `clocks`, the master clock) publishes through `discipline`. With `ltc`,
/// the last entry of the channel map is the LTC channel: the tap decodes it and passes the
/// others on.
pub fn factory(
    input: AlsaInput,
    clocks: Arc<dyn Clocks>,
    counters: Arc<InputCounters>,
    discipline: DisciplineMonitor,
    ltc: Option<LtcShared>,
) -> AudioFactory {
    AudioFactory::new(move |at| {
        let alsa = AlsaAudio::open_with(
            &input.device,
            input.device_channels,
            &input.channel_map,
            input.sample_rate,
            at.sample,
            clocks.clone(),
            input.options.clone(),
        )?;
        tracing::info!(input = %input.input, device = %input.device, config = ?alsa.config(), sample = at.sample.0, "ALSA audio input opened");
        let counted = XrunCounted {
            inner: alsa,
            counters: counters.clone(),
            seen: (0, 0),
        };
        let source: Box<dyn AudioSource> = match &ltc {
            Some(decoder) => {
                let n = input.channel_map.len().saturating_sub(1);
                Box::new(LtcTap::new(counted, (0..n).collect(), n, decoder.clone()))
            }
            None => Box::new(counted),
        };
        Ok(
            Box::new(DisciplinedAudio::new(source, clocks.clone()).with_monitor(discipline.clone()))
                as Box<dyn AudioSource>,
        )
    })
}

/// Adds an [`AlsaAudio`]'s xruns and their silence to the input's counters as they happen.
struct XrunCounted {
    inner: AlsaAudio,
    counters: Arc<InputCounters>,
    /// `(xruns + overflows, silence frames)` already added.
    seen: (u64, u64),
}

impl AudioSource for XrunCounted {
    fn next_block(&mut self, max_frames: usize) -> Result<AudioBlock, CaptureError> {
        let b = self.inner.next_block(max_frames)?;
        let s = self.inner.stats();
        let now = (s.xruns + s.overflows, s.silence_frames);
        if now != self.seen {
            let c = &self.counters;
            c.xruns
                .fetch_add(now.0.saturating_sub(self.seen.0), Ordering::Relaxed);
            c.xrun_silence
                .fetch_add(now.1.saturating_sub(self.seen.1), Ordering::Relaxed);
            tracing::warn!(input = %self.inner.name, xruns = now.0, silence_frames = now.1, "audio lost on the way from the device: filled with silence on the grid");
            self.seen = now;
        }
        Ok(b)
    }

    fn channels(&self) -> u16 {
        self.inner.channels()
    }

    fn sample_rate(&self) -> u32 {
        self.inner.sample_rate()
    }
}

/// Builds the two ends of the ring between cpal's thread and the consumer.
fn ring(
    layout: Layout,
    sample_rate: u32,
    options: &AlsaOptions,
    clocks: Arc<dyn Clocks>,
) -> (CaptureCallback, Consumer) {
    let capacity_frames = options
        .ring
        .as_nanos()
        .saturating_mul(u128::from(sample_rate))
        .div_ceil(1_000_000_000)
        .clamp(1, u128::from(u32::MAX)) as u64;
    // 5 ms: short enough not to matter as latency, long enough that the slot count stays
    // small. The frame budget is what bounds the ring; chunks are at least `min_chunk_frames`
    // long except when flushed early at a gap, hence the margin.
    let min_chunk_frames = u64::from(sample_rate / 200).max(1);
    let slots = usize::try_from(capacity_frames / min_chunk_frames + 64).unwrap_or(1 << 16);
    let (chunk_tx, chunk_rx) = crossbeam_channel::bounded(slots);
    let (free_tx, free_rx) = crossbeam_channel::unbounded();
    let shared = Arc::new(Shared::default());
    let channels = layout.map.len() as u16;
    let callback = CaptureCallback {
        layout,
        tracker: GapTracker::new(sample_rate),
        chunks: chunk_tx,
        free: free_rx,
        spare: None,
        shared: Arc::clone(&shared),
        capacity_frames,
        min_chunk_frames,
        gathered: None,
        gathered_frames: 0,
        pending_gap: 0,
    };
    let last_data = clocks.monotonic();
    let consumer = Consumer {
        channels,
        chunks: chunk_rx,
        free: free_tx,
        current: None,
        silence: 0,
        shared,
        clocks,
        stall_timeout: options.stall_timeout,
        last_data,
        captured_frames: 0,
        silence_frames: 0,
    };
    (callback, consumer)
}

/// The consumer's end of the ring: turns queued periods and gaps into a contiguous stream.
struct Consumer {
    /// Output channels (the channel map's length).
    channels: u16,
    chunks: Receiver<Chunk>,
    /// Returns emptied period buffers to the callback's pool.
    free: Sender<Vec<i16>>,
    /// The period being handed out, and how many of its frames are already out.
    current: Option<(Vec<i16>, usize)>,
    /// Silent frames still to emit before `current`'s remaining samples.
    silence: u64,
    shared: Arc<Shared>,
    clocks: Arc<dyn Clocks>,
    stall_timeout: Duration,
    /// Monotonic time (of `clocks`) when the last period arrived.
    last_data: Duration,
    captured_frames: u64,
    silence_frames: u64,
}

impl Consumer {
    fn stats(&self) -> AlsaStats {
        AlsaStats {
            xruns: self.shared.xruns.load(Ordering::Relaxed),
            overflows: self.shared.overflows.load(Ordering::Relaxed),
            captured_frames: self.captured_frames,
            silence_frames: self.silence_frames,
            errors: self.shared.errors.load(Ordering::Relaxed),
            period_frames: self.shared.period_frames.load(Ordering::Relaxed),
        }
    }

    /// Up to `max_frames` interleaved frames: blocks until at least one is available, then
    /// takes only what has already arrived. Errors say why the device is lost.
    fn read(&mut self, max_frames: usize) -> Result<Vec<i16>, String> {
        let ch = usize::from(self.channels.max(1));
        let want = max_frames.saturating_mul(ch);
        let mut samples: Vec<i16> = Vec::with_capacity(want);
        while samples.len() < want {
            if self.silence > 0 {
                let room = (want - samples.len()) / ch;
                let n = usize::try_from(self.silence)
                    .unwrap_or(usize::MAX)
                    .min(room);
                samples.resize(samples.len() + n * ch, 0);
                self.silence -= n as u64;
                self.silence_frames += n as u64;
                continue;
            }
            if let Some((buf, pos)) = &mut self.current {
                let rest = buf.get(*pos..).unwrap_or_default();
                if !rest.is_empty() {
                    let n = rest.len().min(want - samples.len());
                    samples.extend_from_slice(&rest[..n]);
                    *pos += n;
                    self.captured_frames += (n / ch) as u64;
                    continue;
                }
            }
            let chunk = if samples.is_empty() {
                self.wait_chunk()?
            } else {
                // Hand out what is here rather than wait for more.
                match self.chunks.try_recv() {
                    Ok(chunk) => chunk,
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            };
            self.accept(chunk);
        }
        Ok(samples)
    }

    /// The next queued period; blocks until one arrives or the device is declared lost.
    /// Periods captured before a device loss are still delivered first.
    fn wait_chunk(&mut self) -> Result<Chunk, String> {
        loop {
            match self.chunks.recv_timeout(POLL_SLICE) {
                Ok(chunk) => return Ok(chunk),
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(self
                        .shared
                        .fatal_reason()
                        .unwrap_or_else(|| "capture thread ended".to_owned()));
                }
                Err(RecvTimeoutError::Timeout) => {
                    if let Some(reason) = self.shared.fatal_reason() {
                        return Err(reason);
                    }
                    let quiet = self.clocks.monotonic().saturating_sub(self.last_data);
                    if quiet >= self.stall_timeout {
                        return Err(format!(
                            "no audio from the device for {:.1} s",
                            quiet.as_secs_f64()
                        ));
                    }
                }
            }
        }
    }

    /// Makes `chunk` the current period (after its gap's silence).
    fn accept(&mut self, chunk: Chunk) {
        let frames = (chunk.samples.len() / usize::from(self.channels.max(1))) as u64;
        self.shared
            .queued_frames
            .fetch_sub(frames, Ordering::AcqRel);
        self.last_data = self.clocks.monotonic();
        self.silence += chunk.gap_before;
        if let Some((old, _)) = self.current.replace((chunk.samples, 0)) {
            // The pool outlives us only while the stream runs; a closed pool just frees it.
            let _ = self.free.send(old);
        }
    }
}

/// Checks the channel map against the input and returns it 0-based.
fn validate_map(
    input_channels: u16,
    channel_map: &[u16],
    sample_rate: u32,
) -> Result<Vec<usize>, String> {
    if sample_rate == 0 {
        return Err("sample rate 0".into());
    }
    if input_channels == 0 || input_channels > MAX_CHANNELS {
        return Err(format!(
            "input channel count {input_channels} is not in 1..={MAX_CHANNELS}"
        ));
    }
    if channel_map.is_empty() || channel_map.len() > usize::from(MAX_CHANNELS) {
        return Err(format!(
            "channel map must name 1..={MAX_CHANNELS} channels, it names {}",
            channel_map.len()
        ));
    }
    channel_map
        .iter()
        .map(|&c| {
            if c == 0 || c > input_channels {
                Err(format!(
                    "channel map entry {c} is not an input channel (1..={input_channels})"
                ))
            } else {
                Ok(usize::from(c - 1))
            }
        })
        .collect()
}

/// Finds `name` among the host's capture devices, by exact PCM name first, then by exact
/// description. The error lists what exists, so a typo in a hardware map is a one-line fix.
fn find_device(host: &cpal::Host, name: &str) -> Result<cpal::Device, String> {
    let devices: Vec<cpal::Device> = host
        .input_devices()
        .map_err(|e| format!("cannot list ALSA devices: {e}"))?
        .collect();
    let by_id = devices
        .iter()
        .position(|d| d.id().is_ok_and(|id| id.id() == name));
    let by_desc = || {
        devices
            .iter()
            .position(|d| d.description().is_ok_and(|desc| desc.name() == name))
    };
    if let Some(i) = by_id.or_else(by_desc) {
        return Ok(devices.into_iter().nth(i).ok_or("device list changed")?);
    }
    const SHOWN: usize = 40;
    let mut listed: Vec<String> = devices
        .iter()
        .take(SHOWN)
        .map(|d| {
            let d = describe(d);
            match d.description {
                Some(desc) => format!("{} ({desc})", d.name),
                None => d.name,
            }
        })
        .collect();
    if devices.len() > SHOWN {
        listed.push(format!("… {} more", devices.len() - SHOWN));
    }
    Err(if listed.is_empty() {
        "no such ALSA capture device; ALSA lists no capture devices at all".to_owned()
    } else {
        format!(
            "no such ALSA capture device; capture devices are: {}",
            listed.join(", ")
        )
    })
}

/// Picks the sample format and channel count to open: the requested rate, exactly
/// `input_channels` channels if offered (else the fewest offered that still hold channel
/// `needed`), and the most preferred sample format among those.
fn choose_config(
    ranges: &[cpal::SupportedStreamConfigRange],
    input_channels: u16,
    needed: u16,
    sample_rate: u32,
) -> Option<(InFormat, u16)> {
    let usable = || {
        ranges.iter().filter_map(move |r| {
            let format = InFormat::from_cpal(r.sample_format())?;
            let rate_ok = r.min_sample_rate() <= sample_rate && sample_rate <= r.max_sample_rate();
            (rate_ok && r.channels() >= needed).then_some((format, r.channels()))
        })
    };
    let channels = if usable().any(|(_, c)| c == input_channels) {
        input_channels
    } else {
        usable().map(|(_, c)| c).min()?
    };
    usable()
        .filter(|&(_, c)| c == channels)
        .min_by_key(|&(f, _)| f.preference())
}

/// One line per distinct (format, channels, rates) the device offers, for error messages.
fn summarize(ranges: &[cpal::SupportedStreamConfigRange]) -> String {
    if ranges.is_empty() {
        return "nothing".into();
    }
    let mut parts: Vec<String> = ranges
        .iter()
        .map(|r| {
            format!(
                "{} {}ch {}-{} Hz",
                r.sample_format(),
                r.channels(),
                r.min_sample_rate(),
                r.max_sample_rate()
            )
        })
        .collect();
    parts.dedup();
    if parts.len() > 24 {
        let more = parts.len() - 24;
        parts.truncate(24);
        parts.push(format!("… {more} more"));
    }
    parts.join(", ")
}

// ---------------------------------------------------------------------------------------------
// Device thread side
// ---------------------------------------------------------------------------------------------

/// State shared between cpal's thread and the consumer.
#[derive(Debug, Default)]
struct Shared {
    xruns: AtomicU64,
    overflows: AtomicU64,
    errors: AtomicU64,
    /// Frames queued in the ring and not yet taken by the consumer.
    queued_frames: AtomicU64,
    /// Frames in the device's most recent period.
    period_frames: AtomicU64,
    /// Set by the error callback on an xrun; the next period measures the gap it left.
    discontinuity: AtomicBool,
    /// Why the device is gone, once it is.
    fatal: Mutex<Option<String>>,
}

impl Shared {
    fn fatal_reason(&self) -> Option<String> {
        self.fatal.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// One period, converted and mapped.
#[derive(Debug)]
struct Chunk {
    /// Interleaved output channels.
    samples: Vec<i16>,
    /// Frames lost just before this period (to be emitted as silence first).
    gap_before: u64,
}

/// The data callback's state (lives on cpal's thread).
struct CaptureCallback {
    layout: Layout,
    tracker: GapTracker,
    chunks: Sender<Chunk>,
    free: Receiver<Vec<i16>>,
    /// A buffer kept back when a send failed, used before asking the pool.
    spare: Option<Vec<i16>>,
    shared: Arc<Shared>,
    capacity_frames: u64,
    /// Periods are gathered into chunks of at least this many frames before they are queued:
    /// some PCMs (ALSA's `null`, some plugins) run with periods of a few frames, and one
    /// queue slot per period would exhaust the ring's slots long before its frame budget.
    min_chunk_frames: u64,
    /// Converted frames gathered for the next chunk, and how many.
    gathered: Option<Vec<i16>>,
    gathered_frames: u64,
    /// Frames lost and not yet announced in a chunk's `gap_before`.
    pending_gap: u64,
}

impl CaptureCallback {
    fn on_data(&mut self, data: &cpal::Data, info: &cpal::InputCallbackInfo) {
        let capture = u64::try_from(info.timestamp().capture.as_nanos())
            .ok()
            .filter(|&t| t > 0);
        self.on_period(data.bytes(), capture);
    }

    /// One period of device frames captured at `capture` (ns on cpal's stream clock, `None`
    /// when the device has no timestamps): measure any gap before it, convert, queue.
    fn on_period(&mut self, bytes: &[u8], capture: Option<u64>) {
        let frames = self.layout.frames_in(bytes.len()) as u64;
        self.shared.period_frames.store(frames, Ordering::Relaxed);
        let xrun = self.shared.discontinuity.swap(false, Ordering::AcqRel);
        let gap = self.tracker.on_period(capture, frames, xrun);
        if gap > 0 {
            // What was gathered came before the gap.
            self.flush();
            self.pending_gap += gap;
        }
        if frames == 0 {
            return;
        }
        let queued = self.shared.queued_frames.load(Ordering::Acquire);
        if queued + self.gathered_frames + frames > self.capacity_frames {
            self.flush();
            self.overflow(frames);
            return;
        }
        let buf = match self.gathered.as_mut() {
            Some(buf) => buf,
            None => {
                let mut buf = self
                    .spare
                    .take()
                    .or_else(|| self.free.try_recv().ok())
                    .unwrap_or_default();
                buf.clear();
                self.gathered.insert(buf)
            }
        };
        self.layout.convert(bytes, buf);
        self.gathered_frames += frames;
        if self.gathered_frames >= self.min_chunk_frames {
            self.flush();
        }
    }

    /// Queues what has been gathered (behind `pending_gap` frames of silence).
    fn flush(&mut self) {
        let Some(samples) = self.gathered.take() else {
            return;
        };
        let frames = std::mem::take(&mut self.gathered_frames);
        self.shared
            .queued_frames
            .fetch_add(frames, Ordering::AcqRel);
        let chunk = Chunk {
            samples,
            gap_before: self.pending_gap,
        };
        match self.chunks.try_send(chunk) {
            Ok(()) => self.pending_gap = 0,
            Err(TrySendError::Full(chunk)) => {
                self.shared
                    .queued_frames
                    .fetch_sub(frames, Ordering::AcqRel);
                self.spare = Some(chunk.samples);
                self.overflow(frames);
            }
            // The consumer is gone; cpal stops the stream when it drops it.
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    fn overflow(&mut self, frames: u64) {
        self.pending_gap += frames;
        self.shared.overflows.fetch_add(1, Ordering::Relaxed);
    }
}

/// The error callback's state.
struct ErrorSink {
    shared: Arc<Shared>,
    input: String,
}

impl ErrorSink {
    fn on_error(&self, e: cpal::Error) {
        match e.kind() {
            cpal::ErrorKind::Xrun => {
                self.shared.xruns.fetch_add(1, Ordering::Relaxed);
                self.shared.discontinuity.store(true, Ordering::Release);
                tracing::warn!(input = %self.input, "ALSA capture xrun; lost audio becomes silence");
            }
            cpal::ErrorKind::DeviceNotAvailable
            | cpal::ErrorKind::HostUnavailable
            | cpal::ErrorKind::PermissionDenied => {
                tracing::error!(input = %self.input, error = %e, "ALSA capture device lost");
                let mut fatal = self.shared.fatal.lock().unwrap_or_else(|p| p.into_inner());
                fatal.get_or_insert_with(|| format!("device lost: {e}"));
            }
            _ => {
                self.shared.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(input = %self.input, error = %e, "ALSA capture error");
            }
        }
    }
}

/// Measures audio lost in xruns from the capture timestamps of the periods around them.
#[derive(Debug)]
struct GapTracker {
    sample_rate: u32,
    /// Capture time (ns, cpal's stream clock) the next period's first frame should have if
    /// nothing is lost.
    expected: Option<u64>,
}

impl GapTracker {
    /// Longest gap believed from timestamps; anything longer is a clock glitch, not audio.
    const MAX_GAP_SECS: u64 = 60;

    fn new(sample_rate: u32) -> GapTracker {
        GapTracker {
            sample_rate,
            expected: None,
        }
    }

    /// Notes a period of `frames` captured at `capture` (ns; `None` when the device gives no
    /// timestamps) and returns how many frames were lost just before it. Only a period after
    /// an xrun can follow a gap: timestamps jitter by a fraction of a period, so they are
    /// trusted to size a known gap, never to invent one.
    fn on_period(&mut self, capture: Option<u64>, frames: u64, after_xrun: bool) -> u64 {
        let rate = u64::from(self.sample_rate);
        let gap = match (after_xrun, self.expected, capture) {
            (true, Some(expected), Some(now)) if now > expected => {
                let lost = u128::from(now - expected) * u128::from(rate);
                let lost = (lost + 500_000_000) / 1_000_000_000;
                let max = u128::from(rate * Self::MAX_GAP_SECS);
                if lost > max {
                    tracing::warn!(
                        lost_frames = %lost,
                        "ALSA capture timestamps jumped implausibly; filling {max} frames only"
                    );
                }
                lost.min(max) as u64
            }
            _ => 0,
        };
        let duration = frames * 1_000_000_000 / rate.max(1);
        self.expected = match capture {
            Some(now) => Some(now + duration),
            None => self.expected.map(|e| e + duration),
        };
        gap
    }
}

// ---------------------------------------------------------------------------------------------
// Sample formats and channel mapping
// ---------------------------------------------------------------------------------------------

/// The device sample formats this source converts from (native endian, interleaved).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum InFormat {
    I8,
    U8,
    I16,
    U16,
    /// 24 significant bits in the low bits of a 4-byte container (ALSA `S24_LE`).
    I24,
    U24,
    I32,
    U32,
    F32,
    F64,
}

impl InFormat {
    fn from_cpal(f: cpal::SampleFormat) -> Option<InFormat> {
        Some(match f {
            cpal::SampleFormat::I8 => InFormat::I8,
            cpal::SampleFormat::U8 => InFormat::U8,
            cpal::SampleFormat::I16 => InFormat::I16,
            cpal::SampleFormat::U16 => InFormat::U16,
            cpal::SampleFormat::I24 => InFormat::I24,
            cpal::SampleFormat::U24 => InFormat::U24,
            cpal::SampleFormat::I32 => InFormat::I32,
            cpal::SampleFormat::U32 => InFormat::U32,
            cpal::SampleFormat::F32 => InFormat::F32,
            cpal::SampleFormat::F64 => InFormat::F64,
            _ => return None,
        })
    }

    fn cpal(self) -> cpal::SampleFormat {
        match self {
            InFormat::I8 => cpal::SampleFormat::I8,
            InFormat::U8 => cpal::SampleFormat::U8,
            InFormat::I16 => cpal::SampleFormat::I16,
            InFormat::U16 => cpal::SampleFormat::U16,
            InFormat::I24 => cpal::SampleFormat::I24,
            InFormat::U24 => cpal::SampleFormat::U24,
            InFormat::I32 => cpal::SampleFormat::I32,
            InFormat::U32 => cpal::SampleFormat::U32,
            InFormat::F32 => cpal::SampleFormat::F32,
            InFormat::F64 => cpal::SampleFormat::F64,
        }
    }

    /// Lower is better: `i16` needs no conversion; then the signed formats SDI and pro cards
    /// deliver natively (so ALSA's `plug` does no hidden conversion either); 8-bit last.
    fn preference(self) -> u8 {
        match self {
            InFormat::I16 => 0,
            InFormat::I32 => 1,
            InFormat::I24 => 2,
            InFormat::F32 => 3,
            InFormat::F64 => 4,
            InFormat::U16 => 5,
            InFormat::U24 => 6,
            InFormat::U32 => 7,
            InFormat::I8 => 8,
            InFormat::U8 => 9,
        }
    }

    /// Bytes per sample in the device buffer.
    fn width(self) -> usize {
        match self {
            InFormat::I8 | InFormat::U8 => 1,
            InFormat::I16 | InFormat::U16 => 2,
            InFormat::I24 | InFormat::U24 | InFormat::I32 | InFormat::U32 | InFormat::F32 => 4,
            InFormat::F64 => 8,
        }
    }
}

/// Signed value `v` of `16 + k` significant bits to 16 bits, rounded to nearest (halves up)
/// and saturated (rounding up from the top code would otherwise wrap).
fn narrow(v: i64, k: u32) -> i16 {
    let half = 1i64 << (k - 1);
    ((v + half) >> k).clamp(i64::from(i16::MIN), i64::from(i16::MAX)) as i16
}

fn from_i8(b: [u8; 1]) -> i16 {
    i16::from(i8::from_ne_bytes(b)) << 8
}
fn from_u8(b: [u8; 1]) -> i16 {
    (i16::from(b[0]) - 128) << 8
}
fn from_i16(b: [u8; 2]) -> i16 {
    i16::from_ne_bytes(b)
}
fn from_u16(b: [u8; 2]) -> i16 {
    (u16::from_ne_bytes(b) ^ 0x8000) as i16
}
fn from_i24(b: [u8; 4]) -> i16 {
    // Sign-extend bit 23: the container's top byte is not reliably a sign extension.
    let v = (i32::from_ne_bytes(b) << 8) >> 8;
    narrow(i64::from(v), 8)
}
fn from_u24(b: [u8; 4]) -> i16 {
    let v = i64::from(u32::from_ne_bytes(b) & 0x00FF_FFFF) - (1 << 23);
    narrow(v, 8)
}
fn from_i32(b: [u8; 4]) -> i16 {
    narrow(i64::from(i32::from_ne_bytes(b)), 16)
}
fn from_u32(b: [u8; 4]) -> i16 {
    narrow(i64::from(u32::from_ne_bytes(b)) - (1 << 31), 16)
}
fn from_f64_value(v: f64) -> i16 {
    // Full scale ±1.0 ↔ ±32768; +1.0 saturates to 32767. NaN becomes 0 (`as` saturates).
    (v * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}
fn from_f32(b: [u8; 4]) -> i16 {
    from_f64_value(f64::from(f32::from_ne_bytes(b)))
}
fn from_f64(b: [u8; 8]) -> i16 {
    from_f64_value(f64::from_ne_bytes(b))
}

/// How device frames become output frames.
#[derive(Debug)]
struct Layout {
    format: InFormat,
    /// Channels per device frame.
    in_channels: usize,
    /// For each output channel, the 0-based device channel it carries.
    map: Vec<usize>,
}

impl Layout {
    /// Whole device frames in `bytes` bytes.
    fn frames_in(&self, bytes: usize) -> usize {
        bytes / (self.format.width() * self.in_channels).max(1)
    }

    /// Appends the mapped, converted samples of the whole frames in `bytes` to `out`.
    /// Allocates only when `out` has never held this much.
    fn convert(&self, bytes: &[u8], out: &mut Vec<i16>) {
        match self.format {
            InFormat::I8 => self.map_frames(bytes, out, from_i8),
            InFormat::U8 => self.map_frames(bytes, out, from_u8),
            InFormat::I16 => self.map_frames(bytes, out, from_i16),
            InFormat::U16 => self.map_frames(bytes, out, from_u16),
            InFormat::I24 => self.map_frames(bytes, out, from_i24),
            InFormat::U24 => self.map_frames(bytes, out, from_u24),
            InFormat::I32 => self.map_frames(bytes, out, from_i32),
            InFormat::U32 => self.map_frames(bytes, out, from_u32),
            InFormat::F32 => self.map_frames(bytes, out, from_f32),
            InFormat::F64 => self.map_frames(bytes, out, from_f64),
        }
    }

    /// Monomorphised per format so the conversion inlines into the frame loop.
    fn map_frames<const W: usize>(
        &self,
        bytes: &[u8],
        out: &mut Vec<i16>,
        conv: impl Fn([u8; W]) -> i16,
    ) {
        let frame_bytes = W * self.in_channels;
        if frame_bytes == 0 {
            return;
        }
        out.reserve(bytes.len() / frame_bytes * self.map.len());
        for frame in bytes.chunks_exact(frame_bytes) {
            for &c in &self.map {
                let mut sample = [0u8; W];
                if let Some(src) = frame.get(c * W..c * W + W) {
                    sample.copy_from_slice(src);
                }
                out.push(conv(sample));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_formats_scale_to_full_range_i16() {
        assert_eq!(from_i8((-128i8).to_ne_bytes()), i16::MIN);
        assert_eq!(from_i8(127i8.to_ne_bytes()), 127 << 8);
        assert_eq!(from_u8([0]), i16::MIN);
        assert_eq!(from_u8([128]), 0);
        assert_eq!(from_u8([255]), 127 << 8);
        assert_eq!(from_u16(0u16.to_ne_bytes()), i16::MIN);
        assert_eq!(from_u16(0x8000u16.to_ne_bytes()), 0);
        assert_eq!(from_u16(0xFFFFu16.to_ne_bytes()), i16::MAX);
        assert_eq!(from_i16((-1234i16).to_ne_bytes()), -1234);
        assert_eq!(from_i32(i32::MIN.to_ne_bytes()), i16::MIN);
        assert_eq!(from_u32(0u32.to_ne_bytes()), i16::MIN);
        assert_eq!(from_u32(0x8000_0000u32.to_ne_bytes()), 0);
        assert_eq!(from_i24((-(1i32 << 23)).to_ne_bytes()), i16::MIN);
        assert_eq!(from_u24(0u32.to_ne_bytes()), i16::MIN);
        assert_eq!(from_u24((1u32 << 23).to_ne_bytes()), 0);
    }

    #[test]
    fn wide_formats_round_to_nearest_and_saturate_at_the_top() {
        // 0x1234_7FFF is just below half a step: rounds down; 0x1234_8000 is half: rounds up.
        assert_eq!(from_i32(0x1234_7FFF_i32.to_ne_bytes()), 0x1234);
        assert_eq!(from_i32(0x1234_8000_i32.to_ne_bytes()), 0x1235);
        assert_eq!(from_i32((-0x1234_8001_i32).to_ne_bytes()), -0x1235);
        // The top code rounds up past i16::MAX and must saturate, not wrap.
        assert_eq!(from_i32(i32::MAX.to_ne_bytes()), i16::MAX);
        assert_eq!(from_u32(u32::MAX.to_ne_bytes()), i16::MAX);
        assert_eq!(from_i24(0x12_34_80_i32.to_ne_bytes()), 0x1235);
        assert_eq!(from_i24(0x12_34_7F_i32.to_ne_bytes()), 0x1234);
        assert_eq!(from_i24(0x7F_FF_FF_i32.to_ne_bytes()), i16::MAX);
        assert_eq!(from_u24(0x00FF_FFFF_u32.to_ne_bytes()), i16::MAX);
    }

    #[test]
    fn s24_ignores_the_container_top_byte() {
        // −1 in 24 bits with a zero top byte (as some drivers leave it) is still −1 → 0 after
        // rounding, and a garbage top byte on a positive value changes nothing.
        assert_eq!(from_i24(0x00FF_FFFF_u32.to_ne_bytes()), 0);
        assert_eq!(from_i24(0x00FF_0000_u32.to_ne_bytes()), -256);
        assert_eq!(from_i24(0xAB12_3400_u32.to_ne_bytes()), 0x1234);
    }

    #[test]
    fn float_formats_scale_round_clip_and_map_nan_to_silence() {
        assert_eq!(from_f32(0.5f32.to_ne_bytes()), 16384);
        assert_eq!(from_f32((-1.0f32).to_ne_bytes()), i16::MIN);
        assert_eq!(from_f32(1.0f32.to_ne_bytes()), i16::MAX);
        assert_eq!(from_f32(4.0f32.to_ne_bytes()), i16::MAX);
        assert_eq!(from_f32((-4.0f32).to_ne_bytes()), i16::MIN);
        assert_eq!(from_f32(f32::NAN.to_ne_bytes()), 0);
        // 1.6 / 32768 rounds to 2, 1.4 / 32768 to 1.
        assert_eq!(from_f64((1.6f64 / 32768.0).to_ne_bytes()), 2);
        assert_eq!(from_f64((1.4f64 / 32768.0).to_ne_bytes()), 1);
        assert_eq!(from_f64((-1.6f64 / 32768.0).to_ne_bytes()), -2);
    }

    /// 8 channels of s16, sample value = channel × 1000 + frame.
    fn eight_channel_s16(frames: usize) -> Vec<u8> {
        let mut bytes = Vec::new();
        for i in 0..frames {
            for c in 1..=8i16 {
                bytes.extend_from_slice(&(c * 1000 + i as i16).to_ne_bytes());
            }
        }
        bytes
    }

    #[test]
    fn channel_map_picks_sdi_channels_3_and_4_as_stereo() {
        let layout = Layout {
            format: InFormat::I16,
            in_channels: 8,
            map: validate_map(8, &[3, 4], 48_000).unwrap_or_default(),
        };
        let bytes = eight_channel_s16(4);
        assert_eq!(layout.frames_in(bytes.len()), 4);
        // Appends: periods are gathered into one buffer.
        let mut out = vec![99];
        layout.convert(&bytes, &mut out);
        assert_eq!(out, [99, 3000, 4000, 3001, 4001, 3002, 4002, 3003, 4003]);
    }

    #[test]
    fn channel_map_may_swap_duplicate_and_convert() {
        let layout = Layout {
            format: InFormat::I32,
            in_channels: 2,
            map: vec![1, 0, 0],
        };
        let mut bytes = Vec::new();
        for v in [0x0001_0000i32, 0x0002_8000, -0x0003_0000, 0x7FFF_FFFF] {
            bytes.extend_from_slice(&v.to_ne_bytes());
        }
        // A trailing partial frame is ignored.
        bytes.extend_from_slice(&[1, 2, 3]);
        let mut out = Vec::new();
        layout.convert(&bytes, &mut out);
        assert_eq!(out, [3, 1, 1, i16::MAX, -3, -3]);
    }

    #[test]
    fn channel_map_validation_names_the_bad_entry() {
        assert_eq!(validate_map(8, &[3, 4], 48_000), Ok(vec![2, 3]));
        let err = validate_map(8, &[3, 9], 48_000).err().unwrap_or_default();
        assert!(err.contains("entry 9"), "{err}");
        let err = validate_map(8, &[0], 48_000).err().unwrap_or_default();
        assert!(err.contains("entry 0"), "{err}");
        assert!(validate_map(8, &[], 48_000).is_err());
        assert!(validate_map(0, &[1], 48_000).is_err());
        assert!(validate_map(2, &[1], 0).is_err());
    }

    #[test]
    fn config_choice_prefers_exact_channels_then_i16() {
        use cpal::{SampleFormat as F, SupportedBufferSize, SupportedStreamConfigRange as R};
        let r = |c, f| R::new(c, 44_100, 48_000, SupportedBufferSize::Unknown, f);
        let ranges = [
            r(2, F::I16),
            r(8, F::F32),
            r(8, F::I32),
            r(8, F::I16),
            r(16, F::I16),
        ];
        assert_eq!(
            choose_config(&ranges, 8, 4, 48_000),
            Some((InFormat::I16, 8))
        );
        assert_eq!(
            choose_config(&ranges[..3], 8, 4, 48_000),
            Some((InFormat::I32, 8))
        );
        // 6 channels not offered: the fewest that still hold channel 4.
        assert_eq!(
            choose_config(&ranges, 6, 4, 48_000),
            Some((InFormat::I16, 8))
        );
        assert_eq!(choose_config(&ranges, 8, 4, 96_000), None);
        assert_eq!(
            choose_config(&[r(8, F::DsdU8)], 8, 4, 48_000),
            None,
            "formats we cannot convert are never chosen"
        );
    }

    #[test]
    fn xrun_gap_is_measured_from_capture_timestamps() {
        let mut t = GapTracker::new(48_000);
        // 10 ms periods (480 frames) at 0, 10, 20 ms: no gaps.
        assert_eq!(t.on_period(Some(1_000_000_000), 480, false), 0);
        assert_eq!(t.on_period(Some(1_010_000_000), 480, false), 0);
        // An xrun lost 25 ms: the next period starts at 45 ms instead of 20 ms → 1200 frames.
        assert_eq!(t.on_period(Some(1_045_000_000), 480, true), 1200);
        // Rounds to the nearest frame: 20 µs is 0.96 frame, 8 µs (0.38 frame) is none.
        assert_eq!(t.on_period(Some(1_055_020_000), 480, true), 1);
        assert_eq!(t.on_period(Some(1_065_028_000), 480, true), 0);
    }

    #[test]
    fn without_an_xrun_timestamp_jitter_never_inserts_silence() {
        let mut t = GapTracker::new(48_000);
        assert_eq!(t.on_period(Some(1_000_000_000), 480, false), 0);
        // 3 ms late, but no xrun was reported: the audio is all there.
        assert_eq!(t.on_period(Some(1_013_000_000), 480, false), 0);
        // Early periods (timestamp behind the expected one) are never a gap.
        assert_eq!(t.on_period(Some(1_015_000_000), 480, true), 0);
    }

    #[test]
    fn xrun_without_timestamps_is_counted_but_not_sized() {
        let mut t = GapTracker::new(48_000);
        assert_eq!(t.on_period(None, 480, false), 0);
        assert_eq!(t.on_period(None, 480, true), 0);
        // An implausible jump is capped at a minute of silence.
        let mut t = GapTracker::new(48_000);
        t.on_period(Some(1), 480, false);
        assert_eq!(t.on_period(Some(3_600_000_000_000), 480, true), 48_000 * 60);
    }

    /// Both ends of a real ring (8-channel s16 in, channels 3–4 out), without a device.
    fn rig(ring_frames: u64, clocks: Arc<dyn Clocks>) -> (CaptureCallback, Consumer) {
        let options = AlsaOptions {
            ring: Duration::from_nanos(ring_frames * 1_000_000_000 / 48_000),
            stall_timeout: Duration::from_secs(2),
            period_frames: None,
        };
        let layout = Layout {
            format: InFormat::I16,
            in_channels: 8,
            map: vec![2, 3],
        };
        ring(layout, 48_000, &options, clocks)
    }

    fn sim() -> Arc<dyn Clocks> {
        crate::time::SimulatedClocks::new(0)
    }

    /// Sends device frames `from..from + frames` (value on channel c = c × 1000 + frame mod
    /// 1000) through the callback as one period captured at `capture_ns`, after an xrun if
    /// `xrun`.
    fn feed(cb: &mut CaptureCallback, from: usize, frames: usize, capture_ns: u64, xrun: bool) {
        if xrun {
            ErrorSink {
                shared: Arc::clone(&cb.shared),
                input: "test".into(),
            }
            .on_error(cpal::Error::new(cpal::ErrorKind::Xrun));
        }
        let mut bytes = Vec::new();
        for i in from..from + frames {
            for c in 1..=8i16 {
                bytes.extend_from_slice(&(c * 1000 + (i % 1000) as i16).to_ne_bytes());
            }
        }
        cb.on_period(&bytes, Some(capture_ns));
    }

    /// Output frame `i` of an unbroken capture.
    fn live(i: usize) -> [i16; 2] {
        [3000 + (i % 1000) as i16, 4000 + (i % 1000) as i16]
    }

    /// Reads everything queued, in blocks of `block` frames.
    fn read_all(c: &mut Consumer, block: usize) -> Vec<i16> {
        let mut out = Vec::new();
        while !c.chunks.is_empty() || c.silence > 0 {
            match c.read(block) {
                Ok(s) => out.extend(s),
                Err(e) => panic!("{e}"),
            }
        }
        // The current period may still hold samples.
        if let Some((buf, pos)) = &c.current {
            if *pos < buf.len() {
                out.extend(c.read(block).unwrap_or_default());
            }
        }
        out
    }

    #[test]
    fn xrun_fill_keeps_the_grid_continuous() {
        let (mut cb, mut c) = rig(48_000, sim());
        // 480-frame periods, 10 ms apart; after the second one the device loses 3 periods
        // (frames 960..2400, 30 ms).
        feed(&mut cb, 0, 480, 1_000_000_000, false);
        feed(&mut cb, 480, 480, 1_010_000_000, false);
        feed(&mut cb, 2400, 480, 1_050_000_000, true);
        // Odd block size: silence and samples straddle block boundaries.
        let out = read_all(&mut c, 333);
        assert_eq!(out.len(), 6 * 480 * 2, "lost periods become silence");
        for (i, frame) in out.chunks_exact(2).enumerate() {
            let expect = if (960..2400).contains(&i) {
                [0, 0]
            } else {
                live(i)
            };
            assert_eq!(frame, expect, "frame {i}");
        }
        let stats = c.stats();
        assert_eq!((stats.xruns, stats.overflows), (1, 0));
        assert_eq!(
            (stats.captured_frames, stats.silence_frames),
            (3 * 480, 3 * 480)
        );
    }

    #[test]
    fn ring_overflow_drops_whole_periods_and_accounts_for_them_exactly() {
        // Room for two 480-frame periods: the third and fourth are dropped while the consumer
        // is away; the fifth arrives after it drained the ring.
        let (mut cb, mut c) = rig(960, sim());
        for k in 0..4 {
            feed(
                &mut cb,
                k * 480,
                480,
                1_000_000_000 + k as u64 * 10_000_000,
                false,
            );
        }
        assert_eq!(cb.shared.overflows.load(Ordering::Relaxed), 2);
        let mut out = read_all(&mut c, 1024);
        feed(&mut cb, 4 * 480, 480, 1_040_000_000, false);
        out.extend(read_all(&mut c, 1024));
        assert_eq!(out.len(), 5 * 480 * 2);
        for (i, frame) in out.chunks_exact(2).enumerate() {
            let expect = if (960..1920).contains(&i) {
                [0, 0]
            } else {
                live(i)
            };
            assert_eq!(frame, expect, "frame {i}");
        }
        assert_eq!(c.stats().silence_frames, 960);
        // Emptied buffers went back to the callback's pool instead of being freed.
        assert!(!cb.free.is_empty());
    }

    #[test]
    fn tiny_periods_are_gathered_so_the_ring_holds_its_full_duration() {
        // ALSA's null PCM runs with periods of a frame or two: one second of them must fit a
        // one-second ring without a single overflow, and keep its order.
        let (mut cb, mut c) = rig(48_000, sim());
        for i in 0..48_000 {
            feed(&mut cb, i, 1, 1_000_000_000 + i as u64 * 20_833, false);
        }
        assert_eq!(cb.shared.overflows.load(Ordering::Relaxed), 0);
        assert!(c.chunks.len() <= 48_000 / 240, "{} chunks", c.chunks.len());
        let out = read_all(&mut c, 1024);
        assert_eq!(out.len(), 48_000 * 2);
        for (i, frame) in out.chunks_exact(2).enumerate() {
            assert_eq!(frame, live(i), "frame {i}");
        }
        assert_eq!(c.stats().period_frames, 1);
    }

    #[test]
    fn a_gap_while_gathering_lands_after_the_gathered_frames() {
        let (mut cb, mut c) = rig(48_000, sim());
        // 100 one-frame periods 1/48000 s apart (gathered, not yet queued), then an xrun that
        // lost 50 frames.
        for i in 0..100 {
            feed(
                &mut cb,
                i,
                1,
                1_000_000_000 + i as u64 * 1_000_000_000 / 48_000,
                false,
            );
        }
        assert!(
            c.chunks.is_empty(),
            "under 5 ms gathered: nothing queued yet"
        );
        feed(
            &mut cb,
            150,
            480,
            1_000_000_000 + 150 * 1_000_000_000 / 48_000,
            true,
        );
        let out = read_all(&mut c, 1024);
        assert_eq!(out.len(), 630 * 2);
        for (i, frame) in out.chunks_exact(2).enumerate() {
            let expect = if (100..150).contains(&i) {
                [0, 0]
            } else {
                live(i)
            };
            assert_eq!(frame, expect, "frame {i}");
        }
    }

    #[test]
    fn a_block_never_waits_for_more_than_what_has_arrived() {
        let (mut cb, mut c) = rig(48_000, sim());
        feed(&mut cb, 0, 480, 1_000_000_000, false);
        let block = c.read(1024).unwrap_or_default();
        assert_eq!(block.len(), 480 * 2);
        assert_eq!(&block[..2], live(0));
    }

    #[test]
    fn device_loss_delivers_captured_audio_then_a_read_error() {
        let (mut cb, mut c) = rig(48_000, sim());
        feed(&mut cb, 0, 480, 1_000_000_000, false);
        ErrorSink {
            shared: Arc::clone(&cb.shared),
            input: "hw:CARD=SDI,DEV=0".into(),
        }
        .on_error(cpal::Error::with_message(
            cpal::ErrorKind::DeviceNotAvailable,
            "Device disconnected",
        ));
        assert_eq!(c.read(1024).map(|s| s.len()), Ok(960));
        let err = c.read(1024).err().unwrap_or_default();
        assert!(err.contains("Device disconnected"), "{err}");
        // cpal's thread ending (the callback dropped) is a loss too.
        let (cb, mut c) = rig(48_000, sim());
        drop(cb);
        assert!(c.read(1024).is_err());
    }

    #[test]
    fn a_silent_device_is_declared_lost_after_the_stall_timeout() {
        let clocks = crate::time::SimulatedClocks::new(0);
        let (_cb, mut c) = rig(48_000, clocks.clone());
        clocks.advance(Duration::from_secs(3));
        let err = c.read(1024).err().unwrap_or_default();
        assert!(err.contains("no audio from the device for 3.0 s"), "{err}");
    }
}
