//! Channel: wires one channel's stages, each on its own thread(s) joined by bounded channels:
//!
//! ```text
//! video source ─► size groups (scale once per size) ─► rung encoders (x264) ─► packagers ─┐
//! audio source ─► AAC encoder ─► packager ─────────────────────────────────────────────────┴► bus ─► archive + pusher
//! ```
//!
//! The encoder never waits on the network: the bus consumer hands fragments to the pusher,
//! whose `submit` never blocks.

pub mod archive;
pub mod package;
pub mod stats;

use crate::capture::discipline::DisciplineMonitor;
use crate::capture::file::{self, FileAudio};
use crate::capture::loss::{self, ChannelInputCounters, InputOptions, InputsStatus};
use crate::capture::synthetic::{SyntheticAudio, SyntheticVideo};
use crate::capture::timecode::{LtcShared, TimecodeMonitor, V4l2TimecodeTap};
use crate::capture::{self, CaptureStatus};
use crate::capture::{AudioSource, CaptureError, FrameOrigin, Pacing, VideoFrame, VideoSource};
use crate::encode::aac::AacEncoder;
use crate::encode::scale::Scaler;
use crate::encode::x264::X264Encoder;
use crate::encode::EncodeError;
use crate::piff::{header::stream_header, TrackCodec, TrackInfo};
use crate::profile::{AudioInput, Plan, RungPlan, TimecodeSpec, VideoInput};
use crate::push::latency::{LatencyLog, TrackLatency};
use crate::push::{Fragment, PushError, Pusher, SessionStatus, StreamHeader};
use crate::time::{AudioGrid, Clocks, FrameGrid, FrameIndex, SampleIndex};
use archive::Archive;
use crossbeam_channel::{bounded, Receiver, Sender};
use package::{AudioPackager, PackageError, VideoPackager};
use stats::{InputCounters, MeterWindow};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The `creator` written into every live server manifest (identical on every box).
pub const CREATOR: &str = concat!("smoothcast ", env!("CARGO_PKG_VERSION"));

/// Errors of the channel layer, naming the channel.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("channel {channel}: {source}")]
    Capture {
        channel: String,
        source: CaptureError,
    },
    #[error("channel {channel}: {source}")]
    Encode {
        channel: String,
        source: EncodeError,
    },
    #[error("channel {channel}: {source}")]
    Package {
        channel: String,
        source: PackageError,
    },
    #[error("channel {channel}: {source}")]
    Push { channel: String, source: PushError },
    #[error("channel {channel}: archive {path}: {source}")]
    Archive {
        channel: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("channel {channel}: timecode: {reason}")]
    Timecode { channel: String, reason: String },
    /// A configuration this build cannot run (e.g. a device input before V4L2 support).
    #[error("channel {channel}: {reason}")]
    Unsupported { channel: String, reason: String },
    #[error("channel {channel}: a pipeline thread stopped unexpectedly: {reason}")]
    Thread { channel: String, reason: String },
    /// A device input that cannot be resolved or opened (hw map, missing input).
    #[error("channel {channel}: {source}")]
    Input {
        channel: String,
        source: Box<loss::InputError>,
    },
}

impl ChannelError {
    /// True for errors caused by the profile or the command line rather than at run time.
    pub fn is_bad_input(&self) -> bool {
        match self {
            ChannelError::Unsupported { .. } | ChannelError::Timecode { .. } => true,
            ChannelError::Input { source, .. } => source.is_bad_input(),
            _ => false,
        }
    }
}

/// How to run a channel.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// As fast as the encoders take (no real-time pacing, no waiting for the clock).
    pub fast: bool,
    /// Stop cleanly after this much media (rounded up to whole fragments).
    pub duration_secs: Option<f64>,
    /// Write every stream's POST body to `DIR/<stream-id>.ismv|.isma`.
    pub archive: Option<PathBuf>,
    /// Push to the plan's destinations.
    pub push: bool,
    pub clocks: Arc<dyn Clocks>,
    /// How device inputs are built: the box's hw map, the input-loss policy, and (a test and
    /// integration seam) caller-supplied source factories that replace the plan's inputs.
    pub inputs: InputOptions,
    /// Start no earlier than this fragment (an N+M handover begins exactly where the handing
    /// box stops); `None`: the first boundary at or after the start timecode.
    pub start_fragment: Option<u64>,
}

impl RunOptions {
    /// Real time, no duration limit, no archive, pushing, default inputs, on `clocks`.
    pub fn new(clocks: Arc<dyn Clocks>) -> RunOptions {
        RunOptions {
            fast: false,
            duration_secs: None,
            archive: None,
            push: true,
            clocks,
            inputs: InputOptions::default(),
            start_fragment: None,
        }
    }
}

/// Live counters of one track, written by its pipeline thread.
#[derive(Debug, Default)]
pub struct TrackCounters {
    pub fragments: AtomicU64,
    pub bytes: AtomicU64,
    /// Frames (video) or AAC units (audio) packaged.
    pub samples: AtomicU64,
    /// Media time (track ticks since the epoch) of the end of the last fragment.
    pub last_end: AtomicU64,
    /// Video: frames of the grid this rung never received (gaps in the frame index).
    pub dropped: AtomicU64,
    /// Video: frames encoded from a fill instead of a live picture (repeat, black, slate).
    pub duplicated: AtomicU64,
    /// Latency probe: when each fragment left its packager, after the UTC end of its media.
    pub packaged: LatencyLog,
}

/// A read-only snapshot for status displays.
#[derive(Clone, Debug)]
pub struct ChannelStatus {
    pub channel: String,
    pub tracks: Vec<TrackStatus>,
    pub sessions: Vec<SessionStatus>,
    pub finished: bool,
    /// The inputs: video pictures and fills, audio samples and levels.
    pub input: InputStatus,
    /// Timecode source health, input device counters, audio clock discipline.
    pub capture: CaptureStatus,
}

/// A snapshot of the channel's inputs.
#[derive(Clone, Debug, PartialEq)]
pub struct InputStatus {
    /// Picture size of the video source (pixels).
    pub video_size: (u32, u32),
    /// Pictures delivered by the video source.
    pub video_frames: u64,
    /// Of those, fills for a missing picture (repeat, black, slate).
    pub video_filled: u64,
    /// Frame index (master clock) of the latest picture.
    pub video_last_index: Option<FrameIndex>,
    /// Where the latest picture came from (`None` before the first).
    pub video_origin: Option<FrameOrigin>,
    /// Audio sample frames delivered by the audio source.
    pub audio_samples: u64,
    /// `(peak, rms)` in dBFS per audio channel over the latest meter window
    /// ([`stats::METER_WINDOW_MS`]); empty before the first window.
    pub audio_levels: Vec<(f32, f32)>,
}

#[derive(Clone, Debug)]
pub struct TrackStatus {
    pub track_id: u32,
    pub track_name: String,
    pub label: String,
    pub fragments: u64,
    pub bytes: u64,
    pub samples: u64,
    pub first_time: Option<u64>,
    pub last_end: u64,
    /// Video: frames of the grid the rung never received.
    pub dropped: u64,
    /// Video: frames encoded from a fill (repeat, black, slate).
    pub duplicated: u64,
    /// Packaging latency (fragment emitted − UTC end of its media); see [`LatencyLog`].
    pub packaged: Option<TrackLatency>,
}

/// What a finished run produced, per track.
#[derive(Clone, Debug)]
pub struct RunSummary {
    pub channel: String,
    pub first_fragment: u64,
    pub tracks: Vec<TrackStatus>,
    pub sessions: Vec<SessionStatus>,
    pub archive_files: Vec<PathBuf>,
}

struct TrackMeta {
    info: TrackInfo,
    label: String,
    counters: Arc<TrackCounters>,
    first_time: Arc<Mutex<Option<u64>>>,
}

/// A running channel: join it with [`ChannelHandle::wait`].
pub struct ChannelHandle {
    monitor: Arc<ChannelMonitor>,
    threads: Vec<(String, JoinHandle<Result<(), ChannelError>>)>,
    output: Option<JoinHandle<Result<Vec<PathBuf>, ChannelError>>>,
    first_fragment: u64,
}

/// Status and control of a running channel, shareable with status displays and signal handlers.
pub struct ChannelMonitor {
    channel: String,
    stop: Arc<StopState>,
    tracks: Vec<TrackEntry>,
    pusher: Mutex<Option<Pusher>>,
    finished: AtomicBool,
    input: Arc<InputCounters>,
    /// Set by [`ChannelMonitor::request_stop_by`]: the push sessions must be finished by then.
    finish_by: Mutex<Option<Instant>>,
    inputs: ChannelInputCounters,
    // capture status (issue 4): timecode source health and the audio discipline.
    timecode: TimecodeMonitor,
    discipline: Option<DisciplineMonitor>,
}

struct TrackEntry {
    track_id: u32,
    track_name: String,
    label: String,
    counters: Arc<TrackCounters>,
    first_time: Arc<Mutex<Option<u64>>>,
}

/// Where the pipeline should end, shared by every thread.
#[derive(Debug)]
struct StopState {
    /// Fragments `>= end` are not produced. `u64::MAX` = run until asked to stop.
    end_fragment: AtomicU64,
    /// Highest fragment any source has started.
    reached: AtomicU64,
}

impl StopState {
    fn end(&self) -> u64 {
        self.end_fragment.load(Ordering::SeqCst)
    }
    fn note(&self, k: u64) {
        self.reached.fetch_max(k, Ordering::SeqCst);
    }
    /// Fragments `>= k` are not produced (fragments before `k` still are).
    fn request_before(&self, k: u64) {
        self.end_fragment.fetch_min(k, Ordering::SeqCst);
    }
    /// Ends the run after the fragment currently being produced.
    fn request(&self) {
        let after = self.reached.load(Ordering::SeqCst).saturating_add(1);
        self.end_fragment.fetch_min(after, Ordering::SeqCst);
    }
}

impl ChannelMonitor {
    /// Stops cleanly at the next fragment boundary (finishes the fragments in progress).
    pub fn request_stop(&self) {
        self.stop.request();
    }

    /// Like [`request_stop`](Self::request_stop), and bounds the time [`ChannelHandle::wait`]
    /// gives the push sessions to end their POSTs so that the run is over by `deadline`.
    pub fn request_stop_by(&self, deadline: Instant) {
        if let Ok(mut d) = self.finish_by.lock() {
            *d = Some(d.map_or(deadline, |old| old.min(deadline)));
        }
        self.stop.request();
    }

    /// Ends the run before fragment `k`: fragments `< k` are still produced and pushed (an N+M
    /// handover at a fragment boundary). Never extends a stop already requested.
    pub fn request_stop_before(&self, k: u64) {
        self.stop.request_before(k);
    }

    /// Fencing: stops pushing **now** — every push connection is dropped without finishing its
    /// POST and no further fragment is handed to a destination — and ends the run. Used when
    /// this box may have lost its N+M lease: another box may own the channel any moment.
    pub fn fence(&self) {
        let pusher = self.pusher.lock().ok().and_then(|mut p| p.take());
        // Dropping the pusher shuts its runtime down at once (no terminating chunk).
        drop(pusher);
        self.stop.request_before(0);
    }

    /// The fragment the sources are producing (the highest started).
    pub fn current_fragment(&self) -> u64 {
        self.stop.reached.load(Ordering::SeqCst)
    }

    /// Enables or disables a destination's push sessions ([`Pusher::set_enabled`]).
    /// `None` when the channel has no pusher (any more), `Some(false)` for an unknown name.
    pub fn set_destination_enabled(&self, destination: &str, enabled: bool) -> Option<bool> {
        let p = self.pusher.lock().ok()?;
        p.as_ref().map(|p| p.set_enabled(destination, enabled))
    }

    /// Whether a destination is enabled (`None`: no pusher or no such destination).
    pub fn destination_enabled(&self, destination: &str) -> Option<bool> {
        let p = self.pusher.lock().ok()?;
        p.as_ref().and_then(|p| p.is_enabled(destination))
    }

    /// The input counters (cheap to read at any rate).
    pub fn input(&self) -> &InputCounters {
        &self.input
    }

    /// Counters of the video and audio inputs: live, repeated, black and slate pictures,
    /// skipped and duplicated grid slots, losses and reopens (device and override inputs).
    pub fn inputs(&self) -> InputsStatus {
        self.inputs.snapshot()
    }

    /// True once the pipeline has ended and every push session is finished.
    pub fn is_finished(&self) -> bool {
        self.finished.load(Ordering::SeqCst)
    }

    pub fn status(&self) -> ChannelStatus {
        let sessions = self
            .pusher
            .lock()
            .ok()
            .and_then(|p| p.as_ref().map(Pusher::status))
            .unwrap_or_default();
        ChannelStatus {
            channel: self.channel.clone(),
            tracks: self.track_statuses(),
            sessions,
            finished: self.is_finished(),
            input: InputStatus {
                video_size: self.input.video_size,
                video_frames: self.input.video_frames.load(Ordering::Relaxed),
                video_filled: self.input.video_filled.load(Ordering::Relaxed),
                video_last_index: self.input.video_last_index().map(FrameIndex),
                video_origin: self.input.video_origin(),
                audio_samples: self.input.audio_samples.load(Ordering::Relaxed),
                audio_levels: self.input.meter.levels(),
            },
            capture: CaptureStatus {
                timecode: Some(self.timecode.snapshot()),
                inputs: self.inputs.snapshot(),
                discipline: self.discipline.as_ref().map(DisciplineMonitor::snapshot),
            },
        }
    }

    fn track_statuses(&self) -> Vec<TrackStatus> {
        self.tracks
            .iter()
            .map(|t| TrackStatus {
                track_id: t.track_id,
                track_name: t.track_name.clone(),
                label: t.label.clone(),
                fragments: t.counters.fragments.load(Ordering::Relaxed),
                bytes: t.counters.bytes.load(Ordering::Relaxed),
                samples: t.counters.samples.load(Ordering::Relaxed),
                first_time: t.first_time.lock().ok().and_then(|g| *g),
                last_end: t.counters.last_end.load(Ordering::Relaxed),
                dropped: t.counters.dropped.load(Ordering::Relaxed),
                duplicated: t.counters.duplicated.load(Ordering::Relaxed),
                packaged: t.counters.packaged.snapshot().into_iter().next(),
            })
            .collect()
    }
}

impl ChannelHandle {
    pub fn monitor(&self) -> Arc<ChannelMonitor> {
        self.monitor.clone()
    }

    /// Index `k` (`mfhd.sequence_number`) of the run's first fragment.
    pub fn first_fragment(&self) -> u64 {
        self.first_fragment
    }

    /// Waits for the pipeline to end, finishes every push session, returns the summary.
    pub fn wait(mut self, push_finish_timeout: Duration) -> Result<RunSummary, ChannelError> {
        let channel = self.monitor.channel.clone();
        let mut first_err = None;
        for (name, t) in self.threads.drain(..) {
            let r = t.join().unwrap_or_else(|_| {
                Err(ChannelError::Thread {
                    channel: channel.clone(),
                    reason: format!("{name} panicked"),
                })
            });
            if let Err(e) = r {
                tracing::error!(channel = %channel, thread = %name, error = %e, "pipeline stage failed");
                first_err.get_or_insert(e);
            }
        }
        let files = match self.output.take().map(|t| t.join()) {
            Some(Ok(Ok(files))) => files,
            Some(Ok(Err(e))) => {
                first_err.get_or_insert(e);
                Vec::new()
            }
            Some(Err(_)) => {
                first_err.get_or_insert(ChannelError::Thread {
                    channel: channel.clone(),
                    reason: "output panicked".into(),
                });
                Vec::new()
            }
            None => Vec::new(),
        };
        let pusher = self.monitor.pusher.lock().ok().and_then(|mut p| p.take());
        let finish_by = self.monitor.finish_by.lock().ok().and_then(|d| *d);
        let timeout = match finish_by {
            Some(d) => d
                .saturating_duration_since(Instant::now())
                .min(push_finish_timeout),
            None => push_finish_timeout,
        };
        let sessions = pusher.map(|p| p.finish(timeout)).unwrap_or_default();
        self.monitor.finished.store(true, Ordering::SeqCst);
        if let Some(e) = first_err {
            return Err(e);
        }
        Ok(RunSummary {
            channel,
            first_fragment: self.first_fragment,
            tracks: self.monitor.track_statuses(),
            sessions,
            archive_files: files,
        })
    }
}

/// Starts a channel: opens the encoders, builds the stream headers, starts the pusher and every
/// pipeline thread.
pub fn start(plan: &Plan, opts: RunOptions) -> Result<ChannelHandle, ChannelError> {
    let ch = plan.channel.clone();
    let frames = FrameGrid::new(plan.rate, plan.timescale);
    let frags = plan.fragments;
    let audio_grid = AudioGrid::aac(plan.audio.sample_rate, plan.timescale);

    // 1. Where the timeline starts: the first fragment boundary at or after the timecode
    //    (`ltc`/`v4l2` read it from the input, falling back to the clock).
    let timecode = TimecodeMonitor::new(&plan.timecode, opts.clocks.clone());
    let tc_start = capture::timecode::start(plan, &opts.inputs, opts.clocks.clone(), &timecode)
        .map_err(|e| ChannelError::Timecode {
            channel: ch.clone(),
            reason: e.to_string(),
        })?;
    let n0 = tc_start.index;
    let mut first = frags.next_boundary(n0);
    if let Some(k) = opts.start_fragment {
        first = first.max(frags.first_frame(k));
    }
    let k0 = frags.fragment_of(first);
    let end_fragment = match opts.duration_secs {
        Some(s) => {
            let frag_secs = plan.fragment_secs.0 as f64 / plan.fragment_secs.1.max(1) as f64;
            k0 + ((s / frag_secs).ceil().max(1.0) as u64)
        }
        None => u64::MAX,
    };
    let stop = Arc::new(StopState {
        end_fragment: AtomicU64::new(end_fragment),
        reached: AtomicU64::new(k0),
    });
    let j0 = audio_grid.fragment_start(k0, &frames, &frags);

    // 2. Encoders (their configs are needed for the headers).
    // #7 perf: x264's huge-page buffers cost RAM they never use (see the function).
    crate::encode::x264::disable_transparent_huge_pages();
    let mut video_encoders = Vec::new();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = crate::encode::x264::ladder_threads(&plan.rungs, cores);
    for (rung, threads) in plan.rungs.iter().zip(threads) {
        let rung = &RungPlan {
            threads,
            ..rung.clone()
        };
        let label = format!("{ch}/{}", rung.name);
        tracing::debug!(track = %label, threads, cores, "x264 threads (0 = x264's choice)");
        let enc = X264Encoder::new(&label, rung, plan.rate, frags.gop).map_err(|source| {
            ChannelError::Encode {
                channel: ch.clone(),
                source,
            }
        })?;
        video_encoders.push((rung.clone(), label, enc));
    }
    let audio_label = format!("{ch}/{}", plan.audio.track_name);
    let aac = AacEncoder::new(
        &audio_label,
        plan.audio.bitrate_kbps,
        plan.audio.channels,
        plan.audio.sample_rate,
        j0,
    )
    .map_err(|source| ChannelError::Encode {
        channel: ch.clone(),
        source,
    })?;

    let mut metas: Vec<TrackMeta> = Vec::new();
    for (rung, label, enc) in &video_encoders {
        metas.push(TrackMeta {
            info: TrackInfo {
                track_id: rung.track_id,
                track_name: rung.track_name.clone(),
                bitrate: rung.bitrate_kbps.saturating_mul(1000),
                timescale: plan.timescale,
                codec: TrackCodec::Avc(enc.config().clone()),
            },
            label: label.clone(),
            counters: Arc::default(),
            first_time: Arc::default(),
        });
    }
    metas.push(TrackMeta {
        info: TrackInfo {
            track_id: plan.audio.track_id,
            track_name: plan.audio.track_name.clone(),
            bitrate: plan.audio.bitrate_kbps.saturating_mul(1000),
            timescale: plan.timescale,
            codec: TrackCodec::Aac(aac.config().clone()),
        },
        label: audio_label.clone(),
        counters: Arc::default(),
        first_time: Arc::default(),
    });

    // 3. Stream headers: ftyp + live server manifest + moov, built once per stream.
    let mut headers = Vec::new();
    for s in &plan.streams {
        let tracks: Vec<TrackInfo> = s
            .track_ids
            .iter()
            .filter_map(|id| metas.iter().find(|m| m.info.track_id == *id))
            .map(|m| m.info.clone())
            .collect();
        headers.push(StreamHeader {
            // The pusher appends the per-box suffix to the URL; archives keep the plain id.
            stream_id: s.id.clone(),
            track_ids: s.track_ids.clone(),
            bytes: bytes::Bytes::from(stream_header(&tracks, CREATOR)),
        });
    }

    // 4. Sinks of the bus: archive files and the pusher.
    let archive = match &opts.archive {
        Some(dir) => Some(
            Archive::create(
                dir,
                &headers,
                &metas.iter().map(|m| m.info.clone()).collect::<Vec<_>>(),
                plan.push.send_eos,
            )
            .map_err(|source| ChannelError::Archive {
                channel: ch.clone(),
                path: dir.clone(),
                source,
            })?,
        ),
        None => None,
    };
    let pusher = if opts.push && !plan.destinations.is_empty() {
        Some(
            Pusher::start(
                &ch,
                headers.clone(),
                &plan.destinations,
                &plan.push,
                opts.clocks.clone(),
            )
            .map_err(|source| ChannelError::Push {
                channel: ch.clone(),
                source,
            })?,
        )
    } else {
        None
    };

    // 5. Wait for the first boundary when locked to the wall clock in real time.
    if !opts.fast && !tc_start.on_clock {
        tc_start.wait_for(first, opts.clocks.as_ref());
    }
    if !opts.fast && tc_start.on_clock {
        let due_nanos =
            u128::from(frames.time_of(first).0) * 1_000_000_000 / u128::from(plan.timescale);
        let now = opts.clocks.utc_nanos();
        if due_nanos > now {
            let wait = Duration::from_nanos(u64::try_from(due_nanos - now).unwrap_or(0));
            tracing::info!(channel = %ch, wait_ms = wait.as_millis() as u64, "waiting for the first fragment boundary");
            opts.clocks.sleep(wait);
        }
    }
    let pacing = || {
        if opts.fast {
            Pacing::Fast
        } else {
            Pacing::RealTime {
                clocks: opts.clocks.clone(),
            }
        }
    };

    // 6. Sources. Device inputs (and injected ones) are wrapped in the input-loss policy.
    let input_counters = ChannelInputCounters::default();
    // `v4l2` timecode (issue 4): the capture reports the driver's buffer timecode to status.
    let v4l2_timecode = (matches!(plan.timecode, TimecodeSpec::V4l2) && !tc_start.on_clock)
        .then(|| V4l2TimecodeTap::new(plan.rate, opts.clocks.clone(), timecode.clone()));
    let resilient_video = loss::channel_video(
        plan,
        &opts.inputs,
        first,
        &pacing(),
        opts.clocks.clone(),
        input_counters.video.clone(),
        v4l2_timecode,
    )
    .map_err(|source| ChannelError::Input {
        channel: ch.clone(),
        source: Box::new(source),
    })?;
    let video_source: Box<dyn VideoSource> = match (resilient_video, &plan.video_input) {
        (Some(v), _) => Box::new(v),
        (None, VideoInput::Synthetic { width, height }) => Box::new(SyntheticVideo::new(
            *width,
            *height,
            plan.rate,
            first,
            pacing(),
        )),
        (None, VideoInput::File { path }) => file::open_video(path, plan.rate, first, pacing())
            .map_err(|source| ChannelError::Capture {
                channel: ch.clone(),
                source,
            })?,
        (None, VideoInput::Device { input }) => {
            return Err(ChannelError::Unsupported {
                channel: ch.clone(),
                reason: format!("video input '{input}' has no video device in the hw map"),
            })
        }
    };
    let audio_start = aac.input_start();
    let ltc_channel = match plan.timecode {
        TimecodeSpec::Ltc { channel } if !tc_start.on_clock => Some(channel),
        _ => None,
    };
    let monitors = loss::AudioMonitors {
        discipline: DisciplineMonitor::default(),
        ltc: match ltc_channel {
            Some(_) => Some(
                LtcShared::new(
                    plan.rate,
                    plan.audio.sample_rate,
                    opts.clocks.clone(),
                    timecode.clone(),
                )
                .map_err(|reason| ChannelError::Timecode {
                    channel: ch.clone(),
                    reason,
                })?,
            ),
            None => None,
        },
    };
    let resilient_audio = loss::channel_audio(
        plan,
        &opts.inputs,
        audio_start,
        &pacing(),
        opts.clocks.clone(),
        input_counters.audio.clone(),
        &monitors,
        ltc_channel,
    )
    .map_err(|source| ChannelError::Input {
        channel: ch.clone(),
        source: Box::new(source),
    })?;
    let discipline =
        matches!(plan.audio_input, AudioInput::Device { .. }).then(|| monitors.discipline.clone());
    let audio_source: Box<dyn AudioSource> = match (resilient_audio, &plan.audio_input) {
        (Some(a), _) => a,
        (None, AudioInput::Synthetic) => Box::new(SyntheticAudio::new(
            plan.audio.sample_rate,
            plan.audio.channels,
            audio_start,
            pacing(),
        )),
        (None, AudioInput::File { path }) => Box::new(
            FileAudio::open(
                path,
                plan.audio.sample_rate,
                plan.audio.channels,
                audio_start,
                pacing(),
            )
            .map_err(|source| ChannelError::Capture {
                channel: ch.clone(),
                source,
            })?,
        ),
        (None, AudioInput::Device { input }) => {
            return Err(ChannelError::Unsupported {
                channel: ch.clone(),
                reason: format!(
                    "audio input '{input}' is a device input; ALSA capture is not in this build yet"
                ),
            })
        }
    };

    // 7. Threads.
    let (bus_tx, bus_rx) = bounded::<(usize, Arc<Fragment>)>(64);
    let mut threads = Vec::new();
    let src_size = video_source.size();
    let mut groups: BTreeMap<(u32, u32), Vec<Sender<VideoFrame>>> = BTreeMap::new();
    for (i, (rung, label, enc)) in video_encoders.into_iter().enumerate() {
        let (tx, rx) = bounded::<VideoFrame>(RUNG_QUEUE);
        groups
            .entry((rung.width, rung.height))
            .or_default()
            .push(tx);
        let packager =
            VideoPackager::new(rung.track_id, frames, frags, enc.config().reorder_frames);
        let ctx = StageCtx {
            channel: ch.clone(),
            clocks: opts.clocks.clone(),
            timescale: plan.timescale,
            bus: bus_tx.clone(),
            meta_index: i,
            counters: metas[i].counters.clone(),
            first_time: metas[i].first_time.clone(),
        };
        let gop = frags.gop;
        threads.push((
            label.clone(),
            spawn(&label, move || rung_thread(ctx, rx, enc, packager, gop))?,
        ));
    }
    let mut group_txs = Vec::new();
    for (size, rung_txs) in groups {
        // #7 perf: rungs at the input's size are fed by the capture thread itself (no
        // pass-through hop: one queue and its pictures fewer).
        if size == src_size {
            group_txs.extend(rung_txs);
            continue;
        }
        let (tx, rx) = bounded::<VideoFrame>(SCALE_QUEUE);
        group_txs.push(tx);
        let scaler = Some(
            Scaler::with_kernel(src_size, size, plan.scaler).map_err(|source| {
                ChannelError::Encode {
                    channel: ch.clone(),
                    source,
                }
            })?,
        );
        let chn = ch.clone();
        let name = format!("{ch}/scale-{}x{}", size.0, size.1);
        threads.push((
            name.clone(),
            spawn(&name, move || scale_thread(chn, rx, scaler, rung_txs))?,
        ));
    }
    let input = Arc::new(InputCounters::new(src_size));
    {
        let stop = stop.clone();
        let chn = ch.clone();
        let input = input.clone();
        let name = format!("{ch}/video-capture");
        threads.push((
            name.clone(),
            spawn(&name, move || {
                video_capture_thread(chn, video_source, group_txs, frags, stop, &input)
            })?,
        ));
    }
    {
        let audio_index = metas.len() - 1;
        let ctx = StageCtx {
            channel: ch.clone(),
            clocks: opts.clocks.clone(),
            timescale: plan.timescale,
            bus: bus_tx.clone(),
            meta_index: audio_index,
            counters: metas[audio_index].counters.clone(),
            first_time: metas[audio_index].first_time.clone(),
        };
        let packager = AudioPackager::new(plan.audio.track_id, audio_grid, frames, frags);
        let stop = stop.clone();
        let input = input.clone();
        let name = format!("{ch}/audio");
        threads.push((
            name.clone(),
            spawn(&name, move || {
                audio_thread(
                    ctx,
                    audio_source,
                    aac,
                    packager,
                    (audio_grid, frames, frags),
                    stop,
                    &input,
                )
            })?,
        ));
    }
    drop(bus_tx);
    let monitor = Arc::new(ChannelMonitor {
        channel: ch.clone(),
        stop,
        tracks: metas
            .iter()
            .map(|m| TrackEntry {
                track_id: m.info.track_id,
                track_name: m.info.track_name.clone(),
                label: m.label.clone(),
                counters: m.counters.clone(),
                first_time: m.first_time.clone(),
            })
            .collect(),
        pusher: Mutex::new(pusher),
        finished: AtomicBool::new(false),
        input,
        finish_by: Mutex::new(None),
        inputs: input_counters,
        timecode,
        discipline,
    });
    let output = {
        let monitor = monitor.clone();
        spawn(&format!("{ch}/output"), move || {
            output_thread(bus_rx, archive, &monitor)
        })?
    };
    Ok(ChannelHandle {
        monitor,
        threads,
        output: Some(output),
        first_fragment: k0,
    })
}

// #7 perf: depths of the video queues (capture → scaler, scaler/capture → rung). Every
// queued picture is a buffer alive (1.4 MB at 720p). x264 copies its input at once, so one
// picture ahead keeps a stage busy; a rung keeps two so that an IDR that takes several frame
// times does not stall the capture in real time. 4/2 → 2/1: −4 MB peak RSS, same throughput
// (docs/performance.md, "Memory").
const RUNG_QUEUE: usize = 2;
const SCALE_QUEUE: usize = 1;

fn spawn<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<JoinHandle<T>, ChannelError> {
    std::thread::Builder::new()
        .name(name.chars().take(15).collect())
        .spawn(f)
        .map_err(|e| ChannelError::Thread {
            channel: name.into(),
            reason: e.to_string(),
        })
}

/// What a track's last stage needs to publish fragments.
struct StageCtx {
    channel: String,
    /// For the latency probe: UTC now, and the ticks per second of media time.
    clocks: Arc<dyn Clocks>,
    timescale: u32,
    bus: Sender<(usize, Arc<Fragment>)>,
    meta_index: usize,
    counters: Arc<TrackCounters>,
    first_time: Arc<Mutex<Option<u64>>>,
}

impl StageCtx {
    /// Publishes a fragment; `false` when the bus is gone (the run is over).
    fn publish(&self, f: Fragment) -> bool {
        if let Ok(mut g) = self.first_time.lock() {
            g.get_or_insert(f.time);
        }
        self.counters.fragments.fetch_add(1, Ordering::Relaxed);
        self.counters
            .bytes
            .fetch_add(f.bytes.len() as u64, Ordering::Relaxed);
        self.counters
            .last_end
            .store(f.time + f.duration, Ordering::Relaxed);
        self.counters.packaged.record(
            f.track_id,
            f.time + f.duration,
            self.timescale,
            self.clocks.utc_nanos(),
        );
        self.bus.send((self.meta_index, Arc::new(f))).is_ok()
    }

    fn package_err(&self, source: PackageError) -> ChannelError {
        ChannelError::Package {
            channel: self.channel.clone(),
            source,
        }
    }
}

fn video_capture_thread(
    channel: String,
    mut source: Box<dyn VideoSource>,
    outs: Vec<Sender<VideoFrame>>,
    frags: crate::time::FragmentGrid,
    stop: Arc<StopState>,
    input: &InputCounters,
) -> Result<(), ChannelError> {
    loop {
        let frame = source
            .next_frame()
            .map_err(|source| ChannelError::Capture {
                channel: channel.clone(),
                source,
            })?;
        let k = frags.fragment_of(frame.index);
        if k >= stop.end() {
            return Ok(());
        }
        stop.note(k);
        input.note_video(&frame);
        for tx in &outs {
            if tx.send(frame.clone()).is_err() {
                // A downstream stage ended (its error is reported by its own thread).
                return Ok(());
            }
        }
    }
}

fn scale_thread(
    channel: String,
    rx: Receiver<VideoFrame>,
    mut scaler: Option<Scaler>,
    outs: Vec<Sender<VideoFrame>>,
) -> Result<(), ChannelError> {
    for frame in rx {
        let frame = match scaler.as_mut() {
            Some(s) => s.scale(&frame).map_err(|source| ChannelError::Encode {
                channel: channel.clone(),
                source,
            })?,
            None => frame,
        };
        for tx in &outs {
            if tx.send(frame.clone()).is_err() {
                return Ok(());
            }
        }
    }
    Ok(())
}

fn rung_thread(
    ctx: StageCtx,
    rx: Receiver<VideoFrame>,
    mut enc: X264Encoder,
    mut packager: VideoPackager,
    gop: u64,
) -> Result<(), ChannelError> {
    let mut out = Vec::new();
    let encode_err = |source| ChannelError::Encode {
        channel: ctx.channel.clone(),
        source,
    };
    // Frame index the rung expects next: a jump counts the skipped frames as dropped.
    let mut expected: Option<u64> = None;
    for frame in rx {
        if let Some(e) = expected {
            if frame.index.0 > e {
                ctx.counters
                    .dropped
                    .fetch_add(frame.index.0 - e, Ordering::Relaxed);
            }
        }
        expected = Some(frame.index.0.saturating_add(1));
        if frame.origin != FrameOrigin::Live {
            ctx.counters.duplicated.fetch_add(1, Ordering::Relaxed);
        }
        enc.encode(&frame, frame.index.0 % gop == 0, &mut out)
            .map_err(encode_err)?;
        for pic in out.drain(..) {
            ctx.counters.samples.fetch_add(1, Ordering::Relaxed);
            if let Some(f) = packager.push(pic).map_err(|e| ctx.package_err(e))? {
                if !ctx.publish(f) {
                    return Ok(());
                }
            }
        }
    }
    enc.flush(&mut out).map_err(encode_err)?;
    for pic in out.drain(..) {
        ctx.counters.samples.fetch_add(1, Ordering::Relaxed);
        if let Some(f) = packager.push(pic).map_err(|e| ctx.package_err(e))? {
            ctx.publish(f);
        }
    }
    if let Some(f) = packager.flush().map_err(|e| ctx.package_err(e))? {
        ctx.publish(f);
    }
    Ok(())
}

fn audio_thread(
    ctx: StageCtx,
    mut source: Box<dyn AudioSource>,
    mut enc: AacEncoder,
    mut packager: AudioPackager,
    (grid, frames, frags): (AudioGrid, FrameGrid, crate::time::FragmentGrid),
    stop: Arc<StopState>,
    input: &InputCounters,
) -> Result<(), ChannelError> {
    let mut units = Vec::new();
    let channels = usize::from(source.channels().max(1));
    let mut meter = MeterWindow::new(source.sample_rate(), source.channels());
    let capture_err = |source| ChannelError::Capture {
        channel: ctx.channel.clone(),
        source,
    };
    let encode_err = |source| ChannelError::Encode {
        channel: ctx.channel.clone(),
        source,
    };
    // Input sample s feeds the AAC frame that decodes it; frames are labelled by the encoder.
    let mut next = enc.input_start().0;
    let mut emit =
        |units: &mut Vec<crate::encode::EncodedAudio>, end_j: u64| -> Result<bool, ChannelError> {
            for u in units.drain(..) {
                if u.index >= end_j {
                    continue;
                }
                ctx.counters.samples.fetch_add(1, Ordering::Relaxed);
                if let Some(f) = packager.push(u).map_err(|e| ctx.package_err(e))? {
                    if !ctx.publish(f) {
                        return Ok(false);
                    }
                }
            }
            Ok(true)
        };
    loop {
        let end = stop.end();
        let end_j = if end == u64::MAX {
            u64::MAX
        } else {
            grid.fragment_start(end, &frames, &frags)
        };
        let end_sample = end_j.saturating_mul(u64::from(grid.frame_len));
        if next >= end_sample {
            break;
        }
        let want = usize::try_from((end_sample - next).min(1024)).unwrap_or(1024);
        let block = source.next_block(want).map_err(capture_err)?;
        let n = block.frames();
        if n == 0 {
            continue;
        }
        let take = n.min(want);
        let samples = &block.samples[..take * channels];
        input
            .audio_samples
            .fetch_add(take as u64, Ordering::Relaxed);
        meter.feed(samples, channels, &input.meter);
        enc.encode(samples, &mut units).map_err(encode_err)?;
        next = block.first.0 + take as u64;
        stop.note(grid.fragment_of_frame(
            SampleIndex(next).0 / u64::from(grid.frame_len),
            &frames,
            &frags,
        ));
        if !emit(&mut units, end_j)? {
            return Ok(());
        }
    }
    let end = stop.end();
    let end_j = grid.fragment_start(end, &frames, &frags);
    enc.finish(&mut units).map_err(encode_err)?;
    emit(&mut units, end_j)?;
    if let Some(f) = packager.flush().map_err(|e| ctx.package_err(e))? {
        ctx.publish(f);
    }
    Ok(())
}

fn output_thread(
    bus: Receiver<(usize, Arc<Fragment>)>,
    mut archive: Option<Archive>,
    monitor: &ChannelMonitor,
) -> Result<Vec<PathBuf>, ChannelError> {
    let channel = monitor.channel.clone();
    let mut failure = None;
    for (_, frag) in bus {
        if let Ok(p) = monitor.pusher.lock() {
            if let Some(p) = p.as_ref() {
                p.submit(frag.clone());
            }
        }
        if let Some(a) = archive.as_mut() {
            if let Err(e) = a.write(&frag) {
                // Keep draining the bus so encoders never block on a full disk.
                tracing::error!(channel = %channel, error = %e.1, path = %e.0.display(), "archive write failed");
                failure.get_or_insert(e);
                archive = None;
            }
        }
    }
    if let Some((path, source)) = failure {
        return Err(ChannelError::Archive {
            channel,
            path,
            source,
        });
    }
    match archive {
        Some(a) => a.finish().map_err(|(path, source)| ChannelError::Archive {
            channel,
            path,
            source,
        }),
        None => Ok(Vec::new()),
    }
}

/// Frame index of a UTC instant on the plan's grid (for status displays).
pub fn frame_now(plan: &Plan, clocks: &dyn Clocks) -> FrameIndex {
    FrameGrid::new(plan.rate, plan.timescale).frame_at_unix_nanos(clocks.utc_nanos())
}
