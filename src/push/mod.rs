//! Push: one ingest session per (stream × destination).
//!
//! The packager hands every encoded fragment to [`Pusher::submit`] once; the pusher routes it
//! (an `Arc`, never a copy) to the bounded queue of every session whose stream carries the
//! track. Each session is an independent task on the pusher's own tokio runtime speaking
//! HTTP/1.1 to its publishing point (`session.rs` tells the life of a session). A slow or dead
//! destination never stalls the encoder or another destination: `submit` only ever `try_send`s,
//! and a session whose queue overflowed drops its backlog and rejoins at the live edge.
//!
//! Stream layouts (one track per stream, all tracks in one stream, audio sent twice) are decided
//! by the plan: a track listed in two [`StreamHeader`]s simply reaches both streams' sessions.
//!
//! Failover mode: backup sessions stay in `Standby` **without a connection** while any primary
//! session of the same stream is live; they keep their replay buffer filled, and when every
//! primary of the stream is down they connect, send the header, replay the buffer and go live.
//! They hand back (terminating chunk, no EOS) as soon as a primary is live again. A primary
//! counts as up until its first attempt fails, so backups do not flap on at every start.
//!
//! The operator can disable a destination ([`Pusher::set_enabled`]): its sessions end their
//! POST the same clean way (terminating chunk, no EOS) and hold no connection until enabled
//! again, when they reconnect, resend the header and the replay window, and go live. A disabled
//! primary counts as down, so failover backups take over.
//!
//! Credentials (URL userinfo) are only ever written to the socket: logs and status carry the
//! redacted URL (no userinfo, no query).

mod auth;
mod http;
pub mod latency;
mod mp4;
mod policy;
mod replay;
mod session;
mod target;
mod tls;

pub use target::redact_url_str;

use crate::profile::plan::{DestinationPlan, PushMode, PushOptions, Role};
use crate::time::Clocks;
use session::{Session, SessionSpec, Shared};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tracing::instrument::WithSubscriber;
use tracing::{debug, info, warn, Instrument};

/// One encoded fragment of one track, shared by every session (no copy per destination).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fragment {
    /// `tfhd.track_ID` of the fragment.
    pub track_id: u32,
    /// The fragment index `k` on the fragment grid (`mfhd.sequence_number`).
    pub sequence: u32,
    /// `tfxd` absolute time: media time in track ticks since the Unix epoch.
    pub time: u64,
    /// `tfxd` duration in track ticks.
    pub duration: u64,
    /// `moof` + `mdat`, exactly as they go on the wire.
    pub bytes: bytes::Bytes,
}

/// The header of one stream (one POST): sent first on every connection, byte-identical.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamHeader {
    /// `Streams(<id>)` identifier (URL-safe; the per-box suffix is appended by the pusher).
    pub stream_id: String,
    /// The tracks this stream carries (fragments of other tracks are not routed to it).
    pub track_ids: Vec<u32>,
    /// `ftyp` + live server manifest + `moov`.
    pub bytes: bytes::Bytes,
}

/// Where a session is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SessionState {
    /// Connecting, probing, authenticating or following redirects.
    Probing,
    /// The long POST is open and carrying fragments.
    Live,
    /// Waiting before the next reconnect.
    Backoff,
    /// Live but too slow: the queue overflowed; the backlog is dropped and the session rejoins
    /// at the live edge.
    Behind,
    /// Stopped for good (HTTP 415: the server does not accept this media); needs an operator.
    Failed,
    /// Ended by `finish` (or never started).
    Stopped,
    /// Failover backup, not connected, waiting for the primary to go down.
    Standby,
    /// The operator disabled the destination ([`Pusher::set_enabled`]): no connection; the
    /// replay buffer stays filled so that enabling it again resends the last window.
    Disabled,
}

/// A snapshot of one session for the status display / control plane.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionStatus {
    /// Destination name from the plan.
    pub destination: String,
    /// Primary or backup (in failover mode backups stand by while a primary is live).
    pub role: Role,
    /// Stream id including the per-box suffix.
    pub stream_id: String,
    /// The URL currently pushed to (after redirects), without credentials or query.
    pub url: String,
    /// Where the session is in its life.
    pub state: SessionState,
    /// The queue overflowed and fragments were dropped since the last rejoin.
    pub behind: bool,
    /// Body bytes sent (header, fragments, EOS), over all connections.
    pub bytes_sent: u64,
    /// Fragments written, replays included.
    pub fragments_sent: u64,
    /// Fragments never sent because the session was behind.
    pub fragments_dropped: u64,
    /// Failed attempts followed by a new one.
    pub reconnects: u64,
    /// HTTP 403 answers seen.
    pub forbidden: u64,
    /// The last status line received (probe, early answer or final response).
    pub last_http_status: Option<u16>,
    /// Last failure, redacted (never contains credentials).
    pub last_error: Option<String>,
    /// `(track_id, sequence)` of the last fragment written.
    pub last_fragment: Option<(u32, u32)>,
    /// Fragments waiting in the session's queue.
    pub queue_depth: usize,
    /// Fragments held for resending after a reconnect.
    pub replay_depth: usize,
    /// When the current state began, on the monotonic clock of the injected [`Clocks`].
    pub state_since: Duration,
    /// Latency probe per track: when each fragment's last byte was written to the socket,
    /// after the UTC instant its media ends (meaningful with the `clock` timecode in real time).
    pub latency: Vec<latency::TrackLatency>,
}

/// Errors of the push layer (starting a pusher; session failures are retried and reported in
/// [`SessionStatus`] and the logs instead).
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// A destination URL (or the session URL built from it) is unusable.
    #[error("channel {channel}: destination '{destination}' ({url}): {what}")]
    Destination {
        channel: String,
        destination: String,
        /// Redacted URL.
        url: String,
        what: String,
    },
    /// A push option is out of range.
    #[error("channel {channel}: push option {what}")]
    Options { channel: String, what: String },
    /// The CA file, client certificate or key cannot be used.
    #[error("TLS configuration: {what}")]
    Tls { what: String },
    /// The pusher's tokio runtime could not be created.
    #[error("channel {channel}: cannot start the push runtime: {source}")]
    Runtime {
        channel: String,
        source: std::io::Error,
    },
}

/// The `User-Agent` of every request: `smoothcast/<version>`, plus ` (box <id>)` when the box
/// has an id (characters outside visible ASCII are dropped: it is a header value).
pub fn user_agent(box_id: Option<&str>) -> String {
    let base = concat!("smoothcast/", env!("CARGO_PKG_VERSION"));
    match box_id {
        Some(id) => {
            let id: String = id.chars().filter(|c| c.is_ascii_graphic()).collect();
            format!("{base} (box {id})")
        }
        None => base.to_string(),
    }
}

/// `--push URL` (repeatable): the first URL is the primary, the others are backups.
pub fn destinations_from_urls(urls: &[String]) -> Vec<DestinationPlan> {
    urls.iter()
        .enumerate()
        .map(|(i, url)| DestinationPlan {
            name: match i {
                0 => "primary".to_string(),
                1 => "backup".to_string(),
                n => format!("backup{n}"),
            },
            url: url.clone(),
            role: if i == 0 { Role::Primary } else { Role::Backup },
        })
        .collect()
}

struct SessionHandle {
    tx: mpsc::Sender<Arc<Fragment>>,
    shared: Arc<Shared>,
}

struct Route {
    stream_id: String,
    track_ids: Vec<u32>,
    /// Indices into `Pusher::sessions`.
    sessions: Vec<usize>,
}

/// All push sessions of one channel, on a private tokio runtime.
pub struct Pusher {
    channel: String,
    runtime: Option<tokio::runtime::Runtime>,
    sessions: Vec<SessionHandle>,
    routes: Vec<Route>,
    stop: watch::Sender<Option<Instant>>,
    done: std::sync::mpsc::Receiver<()>,
    clocks: Arc<dyn Clocks>,
    /// The operator's switch per destination name, shared by that destination's sessions.
    switches: Vec<(String, watch::Sender<bool>)>,
}

/// Signals the end of a session task however it ends (return, abort, panic).
struct DoneGuard(std::sync::mpsc::Sender<()>);

impl Drop for DoneGuard {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

fn secs(channel: &str, name: &str, v: f64, allow_zero: bool) -> Result<Duration, PushError> {
    let ok = v.is_finite() && (v > 0.0 || (allow_zero && v == 0.0));
    let d = if ok {
        Duration::try_from_secs_f64(v).ok()
    } else {
        None
    };
    d.ok_or_else(|| PushError::Options {
        channel: channel.to_string(),
        what: format!("{name} = {v} is not a valid number of seconds"),
    })
}

impl Pusher {
    /// Starts one session per (stream × destination). Every session starts probing at once
    /// (failover backups start in standby). The caller's tracing subscriber is used for the
    /// sessions' logs.
    pub fn start(
        channel: &str,
        streams: Vec<StreamHeader>,
        destinations: &[DestinationPlan],
        opts: &PushOptions,
        clocks: Arc<dyn Clocks>,
    ) -> Result<Pusher, PushError> {
        let connect_timeout = secs(
            channel,
            "connect_timeout_secs",
            opts.connect_timeout_secs,
            false,
        )?;
        let send_timeout = secs(channel, "send_timeout_secs", opts.send_timeout_secs, false)?;
        let max_backoff = secs(channel, "max_backoff_secs", opts.max_backoff_secs, true)?;
        secs(channel, "replay_window_secs", opts.replay_window_secs, true)?;
        let suffix = opts.stream_suffix.as_deref();
        let user_agent: Arc<str> = user_agent(opts.box_id.as_deref()).into();

        // Validate every URL before anything starts.
        let mut targets = Vec::new();
        for d in destinations {
            let mut per_stream = Vec::new();
            for s in &streams {
                let bad = |what: String| PushError::Destination {
                    channel: channel.to_string(),
                    destination: d.name.clone(),
                    url: redact_url_str(&d.url),
                    what,
                };
                let url = target::session_url(&d.url, &s.stream_id, suffix).map_err(bad)?;
                let t = target::Target::from_url(url).map_err(bad)?;
                per_stream.push(t);
            }
            if !url::Url::parse(&d.url)
                .map(|u| u.path().trim_end_matches('/').ends_with(".isml"))
                .unwrap_or(false)
            {
                warn!(
                    channel,
                    destination = %d.name,
                    url = %redact_url_str(&d.url),
                    "publishing point URL does not end in .isml"
                );
            }
            targets.push(per_stream);
        }
        let needs_tls = targets.iter().flatten().any(|t| t.tls)
            || opts.ca_file.is_some()
            || opts.client_cert.is_some();
        let tls = if needs_tls {
            Some(tls::client_config(
                opts.ca_file.as_deref(),
                opts.client_cert.as_deref(),
                opts.client_key.as_deref(),
            )?)
        } else {
            None
        };

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(format!("push-{channel}"))
            .enable_all()
            .build()
            .map_err(|source| PushError::Runtime {
                channel: channel.to_string(),
                source,
            })?;
        let (stop_tx, stop_rx) = watch::channel(None);
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let queue = opts.queue_fragments.max(1);
        let switches: Vec<(String, watch::Sender<bool>)> = destinations
            .iter()
            .map(|d| (d.name.clone(), watch::channel(true).0))
            .collect();
        let mut sessions = Vec::new();
        let mut routes = Vec::new();
        for (si, s) in streams.iter().enumerate() {
            let header_chunks = mp4::split_boxes(&s.bytes).unwrap_or_else(|| vec![s.bytes.clone()]);
            let timescales = mp4::track_timescales(&s.bytes);
            let primaries = destinations
                .iter()
                .filter(|d| d.role == Role::Primary)
                .count();
            // Failover: the number of live primaries of this stream (presumed up at start).
            let (health_tx, health_rx) = watch::channel(primaries);
            let health_tx = Arc::new(health_tx);
            let mut route = Route {
                stream_id: s.stream_id.clone(),
                track_ids: s.track_ids.clone(),
                sessions: Vec::new(),
            };
            for (di, d) in destinations.iter().enumerate() {
                let target = targets[di][si].clone();
                let failover = opts.mode == PushMode::Failover;
                let gate = (failover && d.role == Role::Backup).then(|| health_rx.clone());
                let health = (failover && d.role == Role::Primary).then(|| health_tx.clone());
                let stream_id = format!("{}{}", s.stream_id, suffix.unwrap_or(""));
                let initial = if gate.is_some() && primaries > 0 {
                    SessionState::Standby
                } else {
                    SessionState::Probing
                };
                let shared = Arc::new(Shared::new(
                    d.name.clone(),
                    d.role,
                    stream_id.clone(),
                    target.redacted(),
                    initial,
                    clocks.monotonic(),
                ));
                let (tx, rx) = mpsc::channel(queue);
                let span = tracing::info_span!(
                    "push",
                    channel = %channel,
                    stream = %stream_id,
                    destination = %d.name,
                    role = ?d.role,
                    url = %target.redacted(),
                );
                let session = Session::new(SessionSpec {
                    shared: shared.clone(),
                    target,
                    header_chunks: header_chunks.clone(),
                    timescales: timescales.clone(),
                    replay_window_secs: opts.replay_window_secs,
                    connect_timeout,
                    send_timeout,
                    max_backoff,
                    send_eos: opts.send_eos,
                    user_agent: user_agent.clone(),
                    tls: tls.clone(),
                    clocks: clocks.clone(),
                    rx,
                    stop: stop_rx.clone(),
                    gate,
                    health,
                    enabled: switches[di].1.subscribe(),
                });
                let guard = DoneGuard(done_tx.clone());
                let task = async move {
                    let _guard = guard;
                    session.run().await;
                }
                .instrument(span);
                // Sessions log to the caller's subscriber (a scoped one included); with none
                // set yet they fall back to whatever global subscriber exists when they log.
                let dispatch = tracing::dispatcher::get_default(|d| d.clone());
                if dispatch.is::<tracing::subscriber::NoSubscriber>() {
                    runtime.spawn(task);
                } else {
                    runtime.spawn(task.with_subscriber(dispatch));
                }
                route.sessions.push(sessions.len());
                sessions.push(SessionHandle { tx, shared });
            }
            routes.push(route);
        }
        info!(
            channel,
            streams = streams.len(),
            destinations = destinations.len(),
            sessions = sessions.len(),
            mode = ?opts.mode,
            "push started"
        );
        Ok(Pusher {
            channel: channel.to_string(),
            runtime: Some(runtime),
            sessions,
            routes,
            stop: stop_tx,
            done: done_rx,
            clocks,
            switches,
        })
    }

    /// Enables or disables every session of `destination` (by its plan name). Disabling ends
    /// their POSTs cleanly (terminating chunk, no EOS) and keeps them unconnected; enabling
    /// reconnects them (header, replay window, live). Returns false when no destination has
    /// that name. Never blocks.
    pub fn set_enabled(&self, destination: &str, enabled: bool) -> bool {
        let Some((_, switch)) = self.switches.iter().find(|(n, _)| n == destination) else {
            return false;
        };
        if switch.send_replace(enabled) != enabled {
            info!(
                channel = %self.channel,
                destination,
                enabled,
                "destination {} by the operator",
                if enabled { "enabled" } else { "disabled" }
            );
        }
        true
    }

    /// Whether `destination` is enabled (`None`: no destination has that name).
    pub fn is_enabled(&self, destination: &str) -> Option<bool> {
        self.switches
            .iter()
            .find(|(n, _)| n == destination)
            .map(|(_, s)| *s.borrow())
    }

    /// Routes a fragment to every session whose stream carries its track. Never blocks: a full
    /// queue marks that session behind and the fragment is dropped for it alone.
    pub fn submit(&self, fragment: Arc<Fragment>) {
        let mut routed = false;
        for route in &self.routes {
            if !route.track_ids.contains(&fragment.track_id) {
                continue;
            }
            routed = true;
            for &i in &route.sessions {
                let s = &self.sessions[i];
                match s.tx.try_send(fragment.clone()) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        if s.shared.overflow() {
                            warn!(
                                channel = %self.channel,
                                stream = %route.stream_id,
                                destination = %s.shared.destination,
                                track = fragment.track_id,
                                sequence = fragment.sequence,
                                "destination behind: queue full, dropping fragments for it"
                            );
                        }
                    }
                    // Failed (415) or stopped sessions no longer take fragments.
                    Err(mpsc::error::TrySendError::Closed(_)) => {}
                }
            }
        }
        if !routed {
            debug!(
                channel = %self.channel,
                track = fragment.track_id,
                sequence = fragment.sequence,
                "no stream carries this track"
            );
        }
    }

    /// A snapshot of every session, in (stream × destination) order.
    pub fn status(&self) -> Vec<SessionStatus> {
        self.sessions
            .iter()
            .map(|s| {
                let depth = s.tx.max_capacity().saturating_sub(s.tx.capacity());
                s.shared.snapshot(depth)
            })
            .collect()
    }

    /// Stops every session: live ones send what is queued, the optional EOS, the terminating
    /// chunk and read the final response; the whole stop is bounded by `timeout`. Blocks the
    /// calling thread (call it from a plain thread, not from async code).
    pub fn finish(mut self, timeout: Duration) -> Vec<SessionStatus> {
        let start = Instant::now();
        let deadline = start.checked_add(timeout).unwrap_or(start);
        let _ = self.stop.send(Some(deadline));
        let mut remaining = self.sessions.len();
        while remaining > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            // A little grace past the deadline lets sessions record why they stopped.
            match self.done.recv_timeout(left + Duration::from_millis(50)) {
                Ok(()) => remaining -= 1,
                Err(_) => break,
            }
        }
        let now = self.clocks.monotonic();
        for s in &self.sessions {
            let st = s.shared.state();
            if st != SessionState::Stopped && st != SessionState::Failed {
                s.shared
                    .abandon("did not stop within the finish timeout", now);
            }
        }
        let status = self.status();
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
        info!(
            channel = %self.channel,
            unfinished = remaining,
            elapsed_ms = start.elapsed().as_millis() as u64,
            "push finished"
        );
        status
    }
}

impl Drop for Pusher {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            let _ = self.stop.send(Some(Instant::now()));
            // Never blocks, so dropping a pusher is safe anywhere.
            rt.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_urls_make_one_primary_then_backups() {
        let d = destinations_from_urls(&[
            "http://a/x.isml".into(),
            "http://b/x.isml".into(),
            "http://c/x.isml".into(),
        ]);
        assert_eq!(
            d.iter()
                .map(|d| (d.name.as_str(), d.role))
                .collect::<Vec<_>>(),
            vec![
                ("primary", Role::Primary),
                ("backup", Role::Backup),
                ("backup2", Role::Backup)
            ]
        );
    }
}
