//! The built-in test publishing point (`smoothcast sink`): a Smooth Streaming live-ingest
//! receiver for tests, demos and confidence monitoring. Not a production origin.
//!
//! * Accepts probe (empty) and long chunked (or `Content-Length`) POSTs on
//!   `/<path>.isml/Streams(<id>)` (also with `/Events(<e>)` before `Streams`, and an empty probe
//!   on `/<path>.isml` itself as ASTool sends). The body is validated **as it arrives**
//!   (boxes may span chunks) against every rule of `protocol.md` §8 — box order, uuids, tfxd
//!   v1, continuity, IDR first, trun offsets, trackID consistency, header identity across
//!   reconnects. A violation is answered at once (412 fragment before header, 409 time going
//!   backwards/overlap, 415 unsupported codec, 400 anything else malformed, 503 capacity) and
//!   the connection closed; recorded-only rules (a gap inside one connection, `mfhd` not
//!   increasing) keep the body going. See [`ViolationKind`].
//! * Known third-party quirks are accepted (shared/fixtures/README.md): `ftyp` minor 512 with
//!   brands `isml piff`, `mvhd` timescale 1000, `mfhd` counting across tracks, times starting
//!   at 0, an `mp4a` channel count disagreeing with the AudioSpecificConfig.
//! * **Track identity**: a track is (publishing point, `trackName`, `systemBitrate`), because
//!   all video rungs usually share the name `video` and differ by bitrate in the client URL
//!   `QualityLevels(<bitrate>)/Fragments(<name>=<time>)`. Fragments are de-duplicated by
//!   (track, tfxd time) across streams, connections and encoders: a fragment equal in
//!   (time, duration) to one already held is dropped and counted; one that overlaps held media
//!   otherwise is a 409; one that falls into a hole fills it. The per-track timeline counts
//!   gaps and duplicates.
//! * Archives per track (`DIR/<pubpoint>/<trackName>_<bitrate>.ismv|.isma`: header of the first
//!   stream with the `moov` reduced to that track, then the accepted fragments in arrival
//!   order — FFmpeg decodes it), optionally the raw bodies too.
//! * Serves `/<path>.isml/Manifest` (MS-SSTR 2.2.2 client manifest) and
//!   `/<path>.isml/QualityLevels(<bitrate>)/Fragments(<name>=<time>)` (the fragment as ingested;
//!   while live with a `tfrf` listing the next fragments), so GStreamer's `mssdemux` plays what
//!   was ingested. **Live vs. finished**: the presentation is `IsLive="TRUE"` (with
//!   `DVRWindowLength` and `LookAheadFragmentCount`) while a body is being received or while
//!   the latest body of any stream ended without the end-of-stream `mfra` (the encoder may
//!   come back); once every stream ended with `mfra` it is presented as finished
//!   (`IsLive="FALSE"`, `Duration` set) so players play it to the end and reach EOS.
//! * Memory is bounded: box size, DVR window (older fragments only on disk), number of
//!   publishing points, streams, tracks, connections, listed violations and gaps.
//! * `GET /report` returns the [`Report`] as JSON; `POST /_sink/faults` (JSON array of
//!   [`FaultRule`]) replaces the fault rules, `GET /_sink/faults` lists them.

mod archive;
mod fault;
mod http;
mod ingest;
mod manifest;
mod mp4;
mod report;
mod server;
mod store;
mod timeline;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use fault::{FaultKind, FaultRule};
pub use http::{parse_head, BodyFraming, ChunkedDecoder, HttpError, RequestHead};
pub use report::{Arrival, Gap, Report, StreamReport, TrackReport, Violation, ViolationKind};

use server::Shared;
use store::{Store, StoreConfig};

/// Configuration of the sink. `Default` listens on an ephemeral port of 127.0.0.1.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// Address to listen on (port 0 = ephemeral; see [`SinkHandle::addr`]).
    pub listen: SocketAddr,
    /// Archive root directory; `None` = no archive.
    pub archive: Option<PathBuf>,
    /// Also write every POST body as received to `DIR/<pubpoint>/raw/`.
    pub archive_raw: bool,
    /// Where [`SinkHandle::shutdown`] writes the JSON report.
    pub report_file: Option<PathBuf>,
    /// Seconds of media kept in memory per track and listed in the client manifest
    /// (`DVRWindowLength`); older fragments stay only in the archive.
    pub dvr_window_secs: u64,
    /// Fault rules active from the start.
    pub faults: Vec<FaultRule>,
    /// Largest top-level box accepted in a POST body, bytes.
    pub max_box_size: u64,
    /// Simultaneous connections; more are closed right after accept.
    pub max_connections: usize,
    /// Publishing points.
    pub max_pubpoints: usize,
    /// Stream ids per publishing point.
    pub max_streams: usize,
    /// Tracks per publishing point.
    pub max_tracks: usize,
    /// A connection that sends nothing for this long is dropped (a POST body then counts as
    /// aborted).
    pub idle_timeout_secs: u64,
    /// Log the arrival of up to this many fragments (which encoder, when, duplicate or not)
    /// in the report's `arrivals`; 0 = no log. Redundancy tests use it to see who pushed what.
    pub max_arrivals: usize,
}

impl Default for SinkConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            archive: None,
            archive_raw: false,
            report_file: None,
            dvr_window_secs: 120,
            faults: Vec::new(),
            max_box_size: 64 * 1024 * 1024,
            max_connections: 256,
            max_pubpoints: 16,
            max_streams: 64,
            max_tracks: 64,
            idle_timeout_secs: 60,
            max_arrivals: 0,
        }
    }
}

/// Errors of the sink layer.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The listen address could not be bound.
    #[error("sink: cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The tokio runtime or its thread could not be started.
    #[error("sink: cannot start runtime: {0}")]
    Runtime(std::io::Error),
    /// The report file could not be written.
    #[error("sink: cannot write report {path}: {source}")]
    ReportFile {
        /// The report path.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// A running sink. Dropping it stops the sink (without writing the report file).
pub struct SinkHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown_tx: tokio::sync::watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Starts a sink on its own tokio runtime (2 worker threads) in a background thread.
/// Returns once the listening socket is bound.
pub fn start(config: SinkConfig) -> Result<SinkHandle, SinkError> {
    let std_listener =
        std::net::TcpListener::bind(config.listen).map_err(|source| SinkError::Bind {
            addr: config.listen,
            source,
        })?;
    std_listener
        .set_nonblocking(true)
        .map_err(SinkError::Runtime)?;
    let addr = std_listener.local_addr().map_err(SinkError::Runtime)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("sink")
        .enable_all()
        .build()
        .map_err(SinkError::Runtime)?;
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let store = Store::new(StoreConfig {
        archive: config.archive.clone(),
        dvr_window_secs: config.dvr_window_secs,
        max_pubpoints: config.max_pubpoints,
        max_streams: config.max_streams,
        max_tracks: config.max_tracks,
        max_violations: 1000,
        max_gaps: 1000,
        max_arrivals: config.max_arrivals,
    });
    let shared = Arc::new(Shared {
        store: Mutex::new(store),
        faults: Mutex::new(fault::FaultSet::new(config.faults.clone(), Instant::now())),
        cfg: config,
        connections: AtomicUsize::new(0),
        shutdown: shutdown_rx,
    });
    let sh = shared.clone();
    let thread = std::thread::Builder::new()
        .name("sink-main".into())
        .spawn(move || {
            rt.block_on(async move {
                match tokio::net::TcpListener::from_std(std_listener) {
                    Ok(l) => server::serve(l, sh).await,
                    Err(e) => tracing::error!(error = %e, "sink: cannot register listener"),
                }
            });
            rt.shutdown_timeout(Duration::from_millis(500));
        })
        .map_err(SinkError::Runtime)?;
    tracing::info!(%addr, "sink listening");
    Ok(SinkHandle {
        addr,
        shared,
        shutdown_tx,
        thread: Some(thread),
    })
}

impl SinkHandle {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr><path>`, e.g. `handle.url("/live.isml/Manifest")`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A snapshot of the report.
    pub fn report(&self) -> Report {
        self.shared.report()
    }

    /// Replaces the fault rules (counters restart; `RefuseFor` windows start now).
    pub fn set_faults(&self, rules: Vec<FaultRule>) {
        self.shared.faults().replace(rules, Instant::now());
    }

    /// The client manifest currently served for `pubpoint` (path without `.isml`).
    pub fn client_manifest(&self, pubpoint: &str) -> Option<String> {
        self.shared.store().client_manifest(pubpoint)
    }

    /// Whether `pubpoint` is currently presented as live (`None`: unknown publishing point).
    pub fn is_live(&self, pubpoint: &str) -> Option<bool> {
        self.shared.store().is_live(pubpoint)
    }

    /// Stops the sink, writes the report file if configured (failures are logged), and returns
    /// the final report.
    pub fn shutdown(mut self) -> Report {
        self.stop();
        let report = self.shared.report();
        if let Some(path) = &self.shared.cfg.report_file {
            if let Err(e) = write_report(&report, path) {
                tracing::error!(error = %e, "sink report not written");
            }
        }
        report
    }

    fn stop(&mut self) {
        let _ = self.shutdown_tx.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for SinkHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Writes `report` as pretty JSON to `path`.
pub fn write_report(report: &Report, path: &Path) -> Result<(), SinkError> {
    let json = serde_json::to_vec_pretty(report).map_err(|e| SinkError::ReportFile {
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    })?;
    std::fs::write(path, json).map_err(|source| SinkError::ReportFile {
        path: path.to_path_buf(),
        source,
    })
}

/// Offline validation of one ingest POST body (the same per-connection checks the server runs,
/// without HTTP and without the cross-connection rules: header identity per stream id,
/// de-duplication, track conflicts). Feed the body in any pieces; never panics, and holds at
/// most one box (bounded by `max_box_size`) plus one pending `moof`.
pub struct BodyValidator {
    inner: ingest::IngestValidator,
    pending: std::collections::VecDeque<BodyEvent>,
}

/// Something the [`BodyValidator`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyEvent {
    /// Header boxes complete and valid: (trackName, systemBitrate, trackID) per track, and the
    /// SHA-256 of the header boxes (what must stay identical across reconnects).
    Header {
        /// (trackName, systemBitrate, trackID) per track, in manifest order.
        tracks: Vec<(String, u32, u32)>,
        /// SHA-256 over ftyp, manifest box(es) and moov as received.
        sha256: [u8; 32],
    },
    /// A valid fragment of one track.
    Fragment {
        /// `tfhd.track_ID`.
        track_id: u32,
        /// tfxd absolute time, track ticks.
        time: u64,
        /// tfxd duration, track ticks.
        duration: u64,
    },
    /// The empty `mfra` end-of-stream box.
    EndOfStream,
    /// A recorded-only violation (gap inside the body, `mfhd` not increasing).
    Warning {
        /// Which rule.
        kind: ViolationKind,
        /// What was seen.
        detail: String,
    },
}

/// A fatal violation found by the [`BodyValidator`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind:?} at body byte {offset} (HTTP {status}){}: {detail}", track.as_deref().map(|t| format!(" track {t}")).unwrap_or_default())]
pub struct BodyViolation {
    /// Which rule.
    pub kind: ViolationKind,
    /// The status the sink answers for it.
    pub status: u16,
    /// The track concerned ("name@bitrate"), if any.
    pub track: Option<String>,
    /// Body offset of the box where it was detected.
    pub offset: u64,
    /// What was seen.
    pub detail: String,
}

impl BodyValidator {
    /// A validator refusing top-level boxes larger than `max_box_size` bytes.
    pub fn new(max_box_size: u64) -> Self {
        Self {
            inner: ingest::IngestValidator::new(max_box_size),
            pending: Default::default(),
        }
    }

    /// Appends body bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.inner.push(data);
    }

    /// The next finding; `Ok(None)` when more bytes are needed (or after a violation).
    pub fn next_event(&mut self) -> Result<Option<BodyEvent>, BodyViolation> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Ok(Some(e));
            }
            let e = self.inner.poll().map_err(to_body_violation)?;
            return Ok(Some(match e {
                None => return Ok(None),
                Some(ingest::IngestEvent::Header(h)) => BodyEvent::Header {
                    tracks: h
                        .tracks
                        .iter()
                        .map(|t| (t.name.clone(), t.bitrate, t.track_id))
                        .collect(),
                    sha256: h.sha256,
                },
                Some(ingest::IngestEvent::Fragments(f)) => {
                    // One event per traf (a multi-traf moof yields several).
                    let mut it = f.into_iter();
                    let Some(first) = it.next() else { continue };
                    self.pending.extend(it.map(|x| BodyEvent::Fragment {
                        track_id: x.track_id,
                        time: x.time,
                        duration: x.duration,
                    }));
                    BodyEvent::Fragment {
                        track_id: first.track_id,
                        time: first.time,
                        duration: first.duration,
                    }
                }
                Some(ingest::IngestEvent::Eos) => BodyEvent::EndOfStream,
                Some(ingest::IngestEvent::Warning(p)) => BodyEvent::Warning {
                    kind: p.kind,
                    detail: p.detail,
                },
            }));
        }
    }

    /// The body ended (terminating chunk received): a partial box left over is a violation.
    pub fn finish(&mut self) -> Result<(), BodyViolation> {
        self.inner.finish().map_err(to_body_violation)
    }

    /// Bytes held waiting for the rest of a box.
    pub fn buffered(&self) -> usize {
        self.inner.buffered()
    }
}

fn to_body_violation(p: ingest::Problem) -> BodyViolation {
    BodyViolation {
        kind: p.kind,
        status: p.status.unwrap_or(400),
        track: p.track,
        offset: p.offset,
        detail: p.detail,
    }
}
