//! One ingest session: one stream pushed to one destination, as an independent task.
//!
//! Life of a session (protocol.md §1.2–1.6):
//! probe POST (`Content-Length: 0`, expect 200) → long chunked POST carrying the stream header
//! (`ftyp` + live server manifest + `moov`, the same bytes every time), then the replay buffer,
//! then live fragments → on stop: remaining queue, optional empty `mfra`, `0\r\n\r\n`, and the
//! final response is read. The response side is read while the body is written, so an early
//! answer or a reset ends the POST at once. Any failure → new connection (DNS resolved again),
//! same URL, header again, replay buffer, live. Retries never end except on 415.
//!
//! Failover backups (`PushMode::Failover`) sit in `Standby` without a connection while any
//! primary session of their stream is live, but keep their replay buffer filled from the queue,
//! so when they go live the server gets the last window of fragments first.

use super::auth::{pick_challenge, AuthState, Challenge};
use super::http::{
    post_head, truncate, write_chunk, Framing, ReadError, ResponseHead, ResponseReader, LAST_CHUNK,
};
use super::latency::LatencyLog;
use super::mp4::EMPTY_MFRA;
use super::policy::{reaction, Backoff, Reaction, RetryKind};
use super::replay::ReplayBuffer;
use super::target::Target;
use super::{tls, Fragment, SessionState, SessionStatus};
use crate::profile::plan::Role;
use crate::time::Clocks;
use bytes::Bytes;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio_rustls::rustls::ClientConfig;
use tracing::{debug, error, info, warn};

/// Redirects plus authentication rounds allowed before one attempt counts as failed.
const MAX_HOPS: u32 = 8;
/// Immediate reconnects (412, 401, 30x on the long POST) in a row before backoff applies, so a
/// server that keeps answering 412 cannot put us in a hot loop.
const MAX_IMMEDIATE: u32 = 3;
/// How long to wait for the status line after a write error (the server usually answered just
/// before it closed).
const LATE_RESPONSE_GRACE: Duration = Duration::from_millis(200);
/// How long a backup that hands back to the primary waits for its final response.
const HANDBACK_TIMEOUT: Duration = Duration::from_secs(1);

/// Why one attempt failed. Never contains credentials: URLs in here are redacted.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Failure {
    #[error("DNS lookup failed: {0}")]
    Dns(io::Error),
    #[error("DNS lookup returned no address")]
    NoAddress,
    #[error("connect failed: {0}")]
    Connect(io::Error),
    #[error("connect timed out after {0:.1?}")]
    ConnectTimeout(Duration),
    #[error("TLS handshake failed: {0}")]
    Tls(io::Error),
    #[error("{0}")]
    BadTarget(String),
    #[error("send timed out after {0:.1?} (the server is not reading)")]
    SendTimeout(Duration),
    #[error("write failed: {0}")]
    Write(io::Error),
    #[error("no response within {0:.1?}")]
    ResponseTimeout(Duration),
    #[error("reading the response failed: {0}")]
    Read(ReadError),
    #[error("HTTP {status} {reason}{note}")]
    Status {
        status: u16,
        reason: String,
        note: &'static str,
    },
    #[error("more than {MAX_HOPS} redirects / authentication rounds")]
    TooManyHops,
    #[error("server answered HTTP {} {} while the body was being sent", .0.status, truncate(&.0.reason, 60))]
    EarlyResponse(ResponseHead),
}

impl Failure {
    fn status(head: &ResponseHead, note: &'static str) -> Failure {
        Failure::Status {
            status: head.status,
            reason: truncate(&head.reason, 60).to_string(),
            note,
        }
    }

    fn http_status(&self) -> Option<u16> {
        match self {
            Failure::Status { status, .. } => Some(*status),
            Failure::EarlyResponse(h) => Some(h.status),
            _ => None,
        }
    }
}

/// What ended one attempt.
enum Outcome {
    /// Stop requested (finish) — the POST was closed properly if it was open.
    Stopped,
    /// A failover backup whose primary is live again.
    Deactivated,
    /// 415: do not retry.
    Fatal(Failure),
    Retry {
        failure: Failure,
        immediate: bool,
    },
}

/// Status shared between the session task and `Pusher::status` / `Pusher::submit`.
/// Counters are atomics so `submit` never takes a lock.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) destination: String,
    pub(crate) role: Role,
    pub(crate) stream_id: String,
    state: AtomicU8,
    /// Set by `submit` when the queue was full; taken by the session, which then drops its
    /// backlog and rejoins at the live edge.
    overflowed: AtomicBool,
    bytes_sent: AtomicU64,
    fragments_sent: AtomicU64,
    dropped: AtomicU64,
    reconnects: AtomicU64,
    forbidden: AtomicU64,
    replay_depth: AtomicUsize,
    detail: Mutex<Detail>,
    /// When each fragment's last byte was written to the socket, after its media end.
    latency: LatencyLog,
}

#[derive(Debug)]
struct Detail {
    url: String,
    last_http_status: Option<u16>,
    last_error: Option<String>,
    last_fragment: Option<(u32, u32)>,
    state_since: Duration,
}

fn state_code(s: SessionState) -> u8 {
    match s {
        SessionState::Probing => 0,
        SessionState::Live => 1,
        SessionState::Backoff => 2,
        SessionState::Behind => 3,
        SessionState::Failed => 4,
        SessionState::Stopped => 5,
        SessionState::Standby => 6,
        SessionState::Disabled => 7,
    }
}

fn state_from(c: u8) -> SessionState {
    match c {
        0 => SessionState::Probing,
        1 => SessionState::Live,
        2 => SessionState::Backoff,
        3 => SessionState::Behind,
        4 => SessionState::Failed,
        6 => SessionState::Standby,
        7 => SessionState::Disabled,
        _ => SessionState::Stopped,
    }
}

impl Shared {
    pub(crate) fn new(
        destination: String,
        role: Role,
        stream_id: String,
        url: String,
        initial: SessionState,
        now: Duration,
    ) -> Shared {
        Shared {
            destination,
            role,
            stream_id,
            state: AtomicU8::new(state_code(initial)),
            overflowed: AtomicBool::new(false),
            bytes_sent: AtomicU64::new(0),
            fragments_sent: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            forbidden: AtomicU64::new(0),
            replay_depth: AtomicUsize::new(0),
            detail: Mutex::new(Detail {
                url,
                last_http_status: None,
                last_error: None,
                last_fragment: None,
                state_since: now,
            }),
            latency: LatencyLog::default(),
        }
    }

    fn detail(&self) -> std::sync::MutexGuard<'_, Detail> {
        // A poisoned lock only means a panic elsewhere; the counters are still meaningful.
        self.detail.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn state(&self) -> SessionState {
        state_from(self.state.load(Ordering::Relaxed))
    }

    fn set_state(&self, s: SessionState, now: Duration) {
        let old = self.state.swap(state_code(s), Ordering::Relaxed);
        if old != state_code(s) {
            self.detail().state_since = now;
        }
    }

    /// Called by `submit` when the queue is full. Returns true on the transition to behind.
    pub(crate) fn overflow(&self) -> bool {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        !self.overflowed.swap(true, Ordering::Relaxed)
    }

    /// Marks a session that did not end in time.
    pub(crate) fn abandon(&self, why: &str, now: Duration) {
        if self.state() != SessionState::Failed {
            self.set_state(SessionState::Stopped, now);
        }
        self.detail().last_error = Some(why.to_string());
    }

    pub(crate) fn snapshot(&self, queue_depth: usize) -> SessionStatus {
        let d = self.detail();
        let state = self.state();
        let overflowed = self.overflowed.load(Ordering::Relaxed);
        let state = if overflowed && state == SessionState::Live {
            SessionState::Behind
        } else {
            state
        };
        SessionStatus {
            destination: self.destination.clone(),
            role: self.role,
            stream_id: self.stream_id.clone(),
            url: d.url.clone(),
            state,
            behind: overflowed || state == SessionState::Behind,
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
            fragments_sent: self.fragments_sent.load(Ordering::Relaxed),
            fragments_dropped: self.dropped.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            forbidden: self.forbidden.load(Ordering::Relaxed),
            last_http_status: d.last_http_status,
            last_error: d.last_error.clone(),
            last_fragment: d.last_fragment,
            queue_depth,
            replay_depth: self.replay_depth.load(Ordering::Relaxed),
            state_since: d.state_since,
            latency: self.latency.snapshot(),
        }
    }
}

/// Everything a session needs, built by `Pusher::start`.
pub(crate) struct SessionSpec {
    pub(crate) shared: Arc<Shared>,
    pub(crate) target: Target,
    /// The stream header split into its top-level boxes (one chunk each).
    pub(crate) header_chunks: Vec<Bytes>,
    pub(crate) timescales: Vec<(u32, u32)>,
    pub(crate) replay_window_secs: f64,
    pub(crate) connect_timeout: Duration,
    pub(crate) send_timeout: Duration,
    pub(crate) max_backoff: Duration,
    pub(crate) send_eos: bool,
    /// `User-Agent` header value.
    pub(crate) user_agent: Arc<str>,
    pub(crate) tls: Option<Arc<ClientConfig>>,
    pub(crate) clocks: Arc<dyn Clocks>,
    pub(crate) rx: mpsc::Receiver<Arc<Fragment>>,
    /// `Some(deadline)` once `finish` was called.
    pub(crate) stop: watch::Receiver<Option<Instant>>,
    /// Failover backups: number of live primaries of this stream (standby while > 0).
    pub(crate) gate: Option<watch::Receiver<usize>>,
    /// The operator's switch for this session's destination (`Pusher::set_enabled`).
    pub(crate) enabled: watch::Receiver<bool>,
    /// Failover primaries: the counter above, to report up/down.
    pub(crate) health: Option<Arc<watch::Sender<usize>>>,
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

type Reader = ResponseReader<ReadHalf<Box<dyn Io>>>;
type Writer = WriteHalf<Box<dyn Io>>;
type ResponseFuture = Pin<Box<dyn Future<Output = Result<ResponseHead, ReadError>> + Send>>;

struct Conn {
    reader: Reader,
    writer: Writer,
}

struct Ctx {
    shared: Arc<Shared>,
    header_chunks: Vec<Bytes>,
    /// `(track_id, timescale)` of the stream's tracks, for the latency probe.
    timescales: Vec<(u32, u32)>,
    connect_timeout: Duration,
    send_timeout: Duration,
    send_eos: bool,
    user_agent: Arc<str>,
    tls: Option<Arc<ClientConfig>>,
    clocks: Arc<dyn Clocks>,
}

impl Ctx {
    fn set_state(&self, s: SessionState) {
        self.shared.set_state(s, self.clocks.monotonic());
    }
}

/// Where the session currently sends (after redirects) and how it authenticates.
struct Link {
    configured: Target,
    current: Target,
    auth: Option<AuthState>,
}

impl Link {
    fn authorization(&mut self) -> Option<String> {
        let creds = self.current.credentials.as_ref()?;
        let auth = self.auth.as_mut()?;
        Some(auth.authorization(creds, "POST", &self.current.request_target()))
    }

    /// Follows a `Location` (absolute or relative). Credentials survive only within the origin
    /// they were configured for.
    fn follow(&mut self, location: &str) -> Result<(), String> {
        let url = self
            .current
            .url
            .join(location)
            .map_err(|e| format!("bad redirect Location ({e})"))?;
        let mut next = Target::from_url(url)?;
        if next.credentials.is_none() && next.same_origin(&self.configured) {
            next.credentials = self.configured.credentials.clone();
        }
        if !next.same_origin(&self.current) {
            self.auth = None;
        }
        self.current = next;
        Ok(())
    }
}

/// The fragment side of a session: queue, replay buffer, stop and failover signals.
struct Feed {
    rx: mpsc::Receiver<Arc<Fragment>>,
    replay: ReplayBuffer,
    stop: watch::Receiver<Option<Instant>>,
    gate: Option<watch::Receiver<usize>>,
    /// The operator's switch: a disabled destination holds no connection.
    enabled: watch::Receiver<bool>,
    /// Highest sequence written per track, for gap logging.
    last_seq: Vec<(u32, u32)>,
    shared: Arc<Shared>,
    /// The last attempt failed, so the server may lack fragments we hold: on stop, keep
    /// reconnecting and delivering until the finish deadline instead of giving up at once.
    draining: bool,
}

enum Absorbed<T> {
    Done(T),
    Stop,
    /// Step aside: a failover backup whose primary came back, or a disabled destination.
    Yield,
}

enum StandbyEnd {
    Stop,
    Activate,
}

impl Feed {
    fn stop_requested(&self) -> bool {
        self.stop.borrow().is_some() || self.stop.has_changed().is_err()
    }

    /// Stop requested and nothing left to deliver (or the finish deadline has passed).
    fn should_stop(&self) -> bool {
        self.stop_requested() && (!self.draining || tokio::time::Instant::now() >= self.deadline())
    }

    fn deadline(&self) -> tokio::time::Instant {
        let d = *self.stop.borrow();
        match d {
            Some(d) => tokio::time::Instant::from_std(d),
            None => tokio::time::Instant::now(),
        }
    }

    /// A failover backup while at least one primary of its stream is live.
    fn standby_required(&self) -> bool {
        self.gate.as_ref().is_some_and(|g| *g.borrow() > 0)
    }

    /// The operator disabled this destination.
    fn disabled(&self) -> bool {
        !*self.enabled.borrow()
    }

    /// The session must not hold a connection now.
    fn must_yield(&self) -> bool {
        self.standby_required() || self.disabled()
    }

    fn push_replay(&mut self, f: Arc<Fragment>) {
        self.replay.push(f);
        self.shared
            .replay_depth
            .store(self.replay.len(), Ordering::Relaxed);
    }

    /// Runs `fut` while moving arriving fragments into the replay buffer, so a session that is
    /// connecting or waiting never lets its queue overflow; stops early on stop (and, if asked,
    /// when a primary comes back or the destination is disabled).
    async fn absorb<F: Future>(&mut self, fut: F, watch_gate: bool) -> Absorbed<F::Output> {
        tokio::pin!(fut);
        loop {
            if self.should_stop() {
                return Absorbed::Stop;
            }
            if watch_gate && self.must_yield() {
                return Absorbed::Yield;
            }
            let stopping = self.stop_requested();
            let deadline = self.deadline();
            tokio::select! {
                biased;
                _ = self.stop.changed(), if !stopping => {}
                _ = tokio::time::sleep_until(deadline), if stopping => {}
                _ = gate_changed(&mut self.gate), if watch_gate => {}
                _ = switch_changed(&mut self.enabled), if watch_gate => {}
                out = &mut fut => return Absorbed::Done(out),
                f = self.rx.recv() => match f {
                    Some(f) => self.push_replay(f),
                    // Every sender is gone: the pusher was dropped.
                    None => return Absorbed::Stop,
                },
            }
        }
    }

    /// Standby of a failover backup: keep the replay buffer filled, wait for every primary to
    /// be down.
    async fn standby(&mut self) -> StandbyEnd {
        loop {
            if self.stop_requested() {
                return StandbyEnd::Stop;
            }
            if !self.standby_required() || self.disabled() {
                return StandbyEnd::Activate;
            }
            tokio::select! {
                biased;
                _ = self.stop.changed() => {}
                _ = gate_changed(&mut self.gate) => {}
                _ = switch_changed(&mut self.enabled) => {}
                f = self.rx.recv() => match f {
                    Some(f) => self.push_replay(f),
                    None => return StandbyEnd::Stop,
                },
            }
        }
    }

    /// A disabled destination: no connection, the replay buffer kept filled, until the
    /// operator enables it again.
    async fn while_disabled(&mut self) -> StandbyEnd {
        loop {
            if self.stop_requested() {
                return StandbyEnd::Stop;
            }
            if !self.disabled() {
                return StandbyEnd::Activate;
            }
            tokio::select! {
                biased;
                _ = self.stop.changed() => {}
                _ = switch_changed(&mut self.enabled) => {}
                f = self.rx.recv() => match f {
                    Some(f) => self.push_replay(f),
                    None => return StandbyEnd::Stop,
                },
            }
        }
    }
}

/// Resolves when the operator's switch changes; never once the pusher is gone.
async fn switch_changed(switch: &mut watch::Receiver<bool>) {
    if switch.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Resolves when the failover counter changes; never for sessions without one.
async fn gate_changed(gate: &mut Option<watch::Receiver<usize>>) {
    match gate {
        Some(g) => {
            if g.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending::<()>().await,
    }
}

/// One session task.
pub(crate) struct Session {
    ctx: Ctx,
    link: Link,
    feed: Feed,
    backoff: Backoff,
    immediate_streak: u32,
    health: Option<Arc<watch::Sender<usize>>>,
    /// This primary currently counts as up in `health` (presumed up until it first fails, so
    /// backups do not flap on at every start).
    counted_up: bool,
    /// Monotonic time of the first failure since a fragment last went through.
    down_since: Option<Duration>,
}

impl Session {
    pub(crate) fn new(spec: SessionSpec) -> Session {
        let counted_up = spec.health.is_some();
        Session {
            ctx: Ctx {
                shared: spec.shared.clone(),
                header_chunks: spec.header_chunks,
                timescales: spec.timescales.clone(),
                connect_timeout: spec.connect_timeout,
                send_timeout: spec.send_timeout,
                send_eos: spec.send_eos,
                user_agent: spec.user_agent,
                tls: spec.tls,
                clocks: spec.clocks,
            },
            link: Link {
                configured: spec.target.clone(),
                current: spec.target,
                auth: None,
            },
            feed: Feed {
                rx: spec.rx,
                replay: ReplayBuffer::new(spec.replay_window_secs, spec.timescales),
                stop: spec.stop,
                gate: spec.gate,
                enabled: spec.enabled,
                last_seq: Vec::new(),
                draining: false,
                shared: spec.shared,
            },
            backoff: Backoff::new(spec.max_backoff),
            immediate_streak: 0,
            health: spec.health,
            counted_up,
            down_since: None,
        }
    }

    fn health(&mut self, up: bool) {
        if let Some(h) = &self.health {
            if up != self.counted_up {
                self.counted_up = up;
                h.send_modify(|n| {
                    *n = if up {
                        n.saturating_add(1)
                    } else {
                        n.saturating_sub(1)
                    }
                });
            }
        }
    }

    fn last_fragment(&self) -> (Option<u32>, Option<u32>) {
        let d = self.ctx.shared.detail().last_fragment;
        (d.map(|f| f.0), d.map(|f| f.1))
    }

    /// The session task body. Runs until stop, or until a 415 ends it.
    pub(crate) async fn run(mut self) {
        loop {
            self.feed.draining = self.down_since.is_some();
            if self.feed.should_stop() {
                break;
            }
            if self.feed.disabled() {
                self.ctx.set_state(SessionState::Disabled);
                info!("destination disabled by the operator: no connection");
                match self.feed.while_disabled().await {
                    StandbyEnd::Stop => break,
                    StandbyEnd::Activate => info!("destination enabled by the operator"),
                }
                continue;
            }
            if self.feed.standby_required() {
                self.ctx.set_state(SessionState::Standby);
                info!("standby while a primary is live");
                match self.feed.standby().await {
                    StandbyEnd::Stop => break,
                    StandbyEnd::Activate if self.feed.disabled() => continue,
                    StandbyEnd::Activate => info!("every primary is down: backup going live"),
                }
            }
            let outcome = self.attempt().await;
            self.health(false);
            match outcome {
                Outcome::Stopped => break,
                Outcome::Deactivated => {
                    if !self.feed.disabled() {
                        info!("a primary is live again: backup returns to standby");
                    }
                }
                Outcome::Fatal(failure) => {
                    let (track, sequence) = self.last_fragment();
                    error!(
                        alert = true,
                        error = %failure,
                        http_status = failure.http_status(),
                        track,
                        sequence,
                        "session stopped: the server rejects this stream's media type; fix the profile"
                    );
                    self.record_failure(&failure);
                    self.ctx.set_state(SessionState::Failed);
                    // submit() now sees a closed queue and skips this session.
                    self.feed.rx.close();
                    return;
                }
                Outcome::Retry { failure, immediate } => {
                    let now = self.ctx.clocks.monotonic();
                    let since = *self.down_since.get_or_insert(now);
                    self.feed.draining = true;
                    self.record_failure(&failure);
                    self.ctx.shared.reconnects.fetch_add(1, Ordering::Relaxed);
                    let (track, sequence) = self.last_fragment();
                    if immediate && self.immediate_streak < MAX_IMMEDIATE {
                        self.immediate_streak += 1;
                        warn!(
                            error = %failure,
                            http_status = failure.http_status(),
                            track,
                            sequence,
                            "reconnecting at once"
                        );
                        continue;
                    }
                    let delay = self.backoff.next_delay(rand::random::<f64>());
                    self.ctx.set_state(SessionState::Backoff);
                    warn!(
                        error = %failure,
                        http_status = failure.http_status(),
                        track,
                        sequence,
                        retry_in_ms = delay.as_millis() as u64,
                        down_for_s = (now.saturating_sub(since)).as_secs_f64(),
                        attempt = self.backoff.attempts(),
                        "push failed; reconnecting after backoff"
                    );
                    match self.feed.absorb(tokio::time::sleep(delay), true).await {
                        Absorbed::Done(()) | Absorbed::Yield => {}
                        Absorbed::Stop => break,
                    }
                    continue;
                }
            }
        }
        self.health(false);
        if self.ctx.shared.state() != SessionState::Failed {
            self.ctx.set_state(SessionState::Stopped);
        }
        info!("session stopped");
    }

    fn record_failure(&self, failure: &Failure) {
        let mut d = self.ctx.shared.detail();
        d.last_error = Some(failure.to_string());
        if let Some(s) = failure.http_status() {
            d.last_http_status = Some(s);
        }
    }

    fn record_status(&self, status: u16) {
        self.ctx.shared.detail().last_http_status = Some(status);
    }

    /// One attempt: connect, probe (answering 401 and following 30x), long POST.
    async fn attempt(&mut self) -> Outcome {
        let conn = match self.probe_phase().await {
            Ok(c) => c,
            Err(o) => return o,
        };
        self.stream(conn).await
    }

    async fn connect_absorbing(&mut self) -> Result<Conn, Outcome> {
        let target = self.link.current.clone();
        let tls = self.ctx.tls.clone();
        let connected = match self
            .feed
            .absorb(connect(&target, tls, self.ctx.connect_timeout), true)
            .await
        {
            Absorbed::Done(r) => r,
            Absorbed::Stop => return Err(Outcome::Stopped),
            Absorbed::Yield => return Err(Outcome::Deactivated),
        };
        connected.map_err(|failure| {
            if self.link.current.url != self.link.configured.url {
                // The redirect target is unreachable: ask the configured URL again next time.
                info!(
                    from = %self.link.current.redacted(),
                    "redirect target unreachable; returning to the configured URL"
                );
                self.link.current = self.link.configured.clone();
                self.link.auth = None;
                self.ctx.shared.detail().url = self.link.current.redacted();
            }
            Outcome::Retry {
                failure,
                immediate: false,
            }
        })
    }

    async fn probe_phase(&mut self) -> Result<Conn, Outcome> {
        let mut hops = 0u32;
        loop {
            hops += 1;
            if hops > MAX_HOPS {
                return Err(Outcome::Retry {
                    failure: Failure::TooManyHops,
                    immediate: false,
                });
            }
            self.ctx.set_state(SessionState::Probing);
            let mut conn = self.connect_absorbing().await?;
            let authorization = self.link.authorization();
            let sent_auth = authorization.is_some();
            let head = post_head(
                &self.link.current.request_target(),
                &self.link.current.host_header(),
                &self.ctx.user_agent,
                authorization.as_deref(),
                Framing::Empty,
            );
            let limit = self.ctx.send_timeout.max(self.ctx.connect_timeout);
            let probed = match self.feed.absorb(probe(&mut conn, head, limit), true).await {
                Absorbed::Done(r) => r,
                Absorbed::Stop => return Err(Outcome::Stopped),
                Absorbed::Yield => return Err(Outcome::Deactivated),
            };
            let (resp, reusable) = probed.map_err(|failure| Outcome::Retry {
                failure,
                immediate: false,
            })?;
            self.record_status(resp.status);
            debug!(http_status = resp.status, "probe answered");
            match self.react(&resp, sent_auth) {
                Next::Proceed => {
                    if reusable {
                        return Ok(conn);
                    }
                    // The server closes after the probe: the long POST needs a new connection.
                    return self.connect_absorbing().await;
                }
                Next::Again => continue,
                Next::End(o) => return Err(o),
            }
        }
    }

    /// Applies protocol.md §1.4 to a response (probe or early answer to the long POST).
    fn react(&mut self, resp: &ResponseHead, sent_auth: bool) -> Next {
        match reaction(resp.status) {
            Reaction::Proceed => Next::Proceed,
            Reaction::Authenticate => {
                if self.link.current.credentials.is_none() {
                    return Next::retry(Failure::status(resp, " (no credentials in the URL)"));
                }
                let Some(challenge) = pick_challenge(resp.headers_named("www-authenticate")) else {
                    return Next::retry(Failure::status(resp, " (no supported challenge)"));
                };
                let stale = matches!(&challenge, Challenge::Digest(d) if d.stale);
                let scheme = match &challenge {
                    Challenge::Basic => "Basic",
                    Challenge::Digest(_) => "Digest",
                };
                self.link.auth = Some(AuthState::new(challenge));
                if sent_auth && !stale {
                    warn!(http_status = 401u16, scheme, "credentials rejected");
                    return Next::retry(Failure::status(resp, " (credentials rejected)"));
                }
                debug!(scheme, "answering authentication challenge");
                Next::Again
            }
            Reaction::Redirect => {
                let Some(location) = resp.header("location") else {
                    return Next::retry(Failure::status(resp, " (redirect without Location)"));
                };
                match self.link.follow(location) {
                    Ok(()) => {
                        let to = self.link.current.redacted();
                        info!(http_status = resp.status, to = %to, "following redirect");
                        self.ctx.shared.detail().url = to;
                        Next::Again
                    }
                    Err(e) => Next::retry(Failure::BadTarget(e)),
                }
            }
            Reaction::ResendHeaders => Next::End(Outcome::Retry {
                failure: Failure::status(resp, " (server lacks the stream header: resending it)"),
                immediate: true,
            }),
            Reaction::Fatal => Next::End(Outcome::Fatal(Failure::status(
                resp,
                " (media type not supported)",
            ))),
            Reaction::Retry(kind) => {
                let note = match kind {
                    RetryKind::Forbidden => {
                        self.ctx.shared.forbidden.fetch_add(1, Ordering::Relaxed);
                        " (forbidden)"
                    }
                    RetryKind::NotFound => " (publishing point not available)",
                    RetryKind::TimelineRejected => {
                        // Resending what the server refuses would be refused again: resume
                        // at the live edge.
                        warn!(http_status = resp.status, "timeline rejected by the server");
                        self.feed.replay.clear();
                        self.feed.shared.replay_depth.store(0, Ordering::Relaxed);
                        " (timeline rejected)"
                    }
                    RetryKind::BadRequest => " (bad request)",
                    RetryKind::ServerError => " (server error)",
                    RetryKind::Other => "",
                };
                Next::retry(Failure::status(resp, note))
            }
        }
    }

    /// The long POST: header, replay buffer, live fragments, until failure or stop.
    async fn stream(&mut self, conn: Conn) -> Outcome {
        let Conn { reader, mut writer } = conn;
        let authorization = self.link.authorization();
        let sent_auth = authorization.is_some();
        let head = post_head(
            &self.link.current.request_target(),
            &self.link.current.host_header(),
            &self.ctx.user_agent,
            authorization.as_deref(),
            Framing::Chunked,
        );
        // The response is read concurrently with the body from here on.
        let mut resp: ResponseFuture = Box::pin(async move {
            let mut reader = reader;
            reader.read_head().await
        });
        let sent = async {
            self.send_raw(&mut writer, Bytes::from(head), &mut resp)
                .await?;
            for chunk in self.ctx.header_chunks.clone() {
                self.send_chunk(&mut writer, &chunk, &mut resp).await?;
            }
            Ok::<(), Failure>(())
        }
        .await;
        if let Err(f) = sent {
            return self.failed(f, sent_auth);
        }
        self.ctx.set_state(SessionState::Live);
        self.health(true);
        let replay = self.feed.replay.snapshot();
        info!(
            replay = replay.len(),
            first_track = replay.first().map(|f| f.track_id),
            first_sequence = replay.first().map(|f| f.sequence),
            "live: stream header sent"
        );
        for f in replay {
            if let Err(e) = self.send_fragment(&mut writer, &f, &mut resp).await {
                return self.failed(e, sent_auth);
            }
        }
        loop {
            if self.ctx.shared.overflowed.swap(false, Ordering::Relaxed) {
                self.rejoin_live_edge();
            }
            if self.feed.stop_requested() {
                return self.close_post(&mut writer, resp).await;
            }
            let watch_gate = self.feed.gate.is_some();
            tokio::select! {
                biased;
                r = &mut resp => return self.failed(early(r), sent_auth),
                _ = self.feed.stop.changed() => {}
                _ = gate_changed(&mut self.feed.gate), if watch_gate => {
                    if self.feed.standby_required() {
                        self.hand_back(&mut writer, resp).await;
                        return Outcome::Deactivated;
                    }
                }
                _ = switch_changed(&mut self.feed.enabled) => {
                    if self.feed.disabled() {
                        // Disabled by the operator: end the POST cleanly, like a hand-back.
                        self.hand_back(&mut writer, resp).await;
                        return Outcome::Deactivated;
                    }
                }
                f = self.feed.rx.recv() => match f {
                    Some(f) => {
                        self.feed.push_replay(f.clone());
                        if let Err(e) = self.send_fragment(&mut writer, &f, &mut resp).await {
                            return self.failed(e, sent_auth);
                        }
                    }
                    None => return self.close_post(&mut writer, resp).await,
                },
            }
        }
    }

    /// Maps a failure on the long POST to an outcome (an early answer goes through the same
    /// status table as the probe).
    fn failed(&mut self, failure: Failure, sent_auth: bool) -> Outcome {
        let Failure::EarlyResponse(head) = &failure else {
            return Outcome::Retry {
                failure,
                immediate: false,
            };
        };
        let head = head.clone();
        self.record_status(head.status);
        match self.react(&head, sent_auth) {
            Next::Proceed => Outcome::Retry {
                failure: Failure::status(&head, " (server ended the POST early)"),
                immediate: false,
            },
            Next::Again => {
                let note = if head.status == 401 {
                    " (authentication required)"
                } else {
                    " (redirected)"
                };
                Outcome::Retry {
                    failure: Failure::status(&head, note),
                    immediate: true,
                }
            }
            Next::End(o) => o,
        }
    }

    /// The queue overflowed while a write was slow: drop the backlog, rejoin at the live edge.
    fn rejoin_live_edge(&mut self) {
        let mut dropped = 0u64;
        let mut first = None;
        let mut last = None;
        while let Ok(f) = self.feed.rx.try_recv() {
            dropped += 1;
            first.get_or_insert((f.track_id, f.sequence));
            last = Some((f.track_id, f.sequence));
        }
        self.ctx
            .shared
            .dropped
            .fetch_add(dropped, Ordering::Relaxed);
        self.ctx.set_state(SessionState::Behind);
        warn!(
            dropped_backlog = dropped,
            first_dropped = ?first,
            last_dropped = ?last,
            "destination too slow: queue overflowed; rejoining at the live edge"
        );
    }

    async fn send_raw(
        &mut self,
        writer: &mut Writer,
        data: Bytes,
        resp: &mut ResponseFuture,
    ) -> Result<(), Failure> {
        let limit = self.ctx.send_timeout;
        let write = async {
            writer.write_all(&data).await?;
            writer.flush().await
        };
        guarded(write, limit, resp).await
    }

    async fn send_chunk(
        &mut self,
        writer: &mut Writer,
        data: &Bytes,
        resp: &mut ResponseFuture,
    ) -> Result<(), Failure> {
        let limit = self.ctx.send_timeout;
        guarded(write_chunk(writer, data), limit, resp).await?;
        self.ctx
            .shared
            .bytes_sent
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    async fn send_fragment(
        &mut self,
        writer: &mut Writer,
        f: &Arc<Fragment>,
        resp: &mut ResponseFuture,
    ) -> Result<(), Failure> {
        let prev = self
            .feed
            .last_seq
            .iter()
            .find(|(t, _)| *t == f.track_id)
            .map(|(_, s)| *s);
        if let Some(prev) = prev {
            if f.sequence > prev.saturating_add(1) {
                warn!(
                    track = f.track_id,
                    missing_from = prev + 1,
                    missing_to = f.sequence - 1,
                    sequence = f.sequence,
                    "gap: fragments never sent to this destination"
                );
            }
        }
        self.send_chunk(writer, &f.bytes, resp).await?;
        // Latency probe: the last byte is in the socket now.
        if let Some(&(_, ts)) = self.ctx.timescales.iter().find(|(t, _)| *t == f.track_id) {
            self.ctx.shared.latency.record(
                f.track_id,
                f.time.saturating_add(f.duration),
                ts,
                self.ctx.clocks.utc_nanos(),
            );
        }
        match self
            .feed
            .last_seq
            .iter_mut()
            .find(|(t, _)| *t == f.track_id)
        {
            Some(e) => e.1 = e.1.max(f.sequence),
            None => self.feed.last_seq.push((f.track_id, f.sequence)),
        }
        self.ctx
            .shared
            .fragments_sent
            .fetch_add(1, Ordering::Relaxed);
        self.ctx.shared.detail().last_fragment = Some((f.track_id, f.sequence));
        if self.ctx.shared.state() == SessionState::Behind {
            self.ctx.set_state(SessionState::Live);
        }
        // The long POST carried a fragment: the connection works, start backoff afresh.
        self.backoff.reset();
        self.immediate_streak = 0;
        if let Some(since) = self.down_since.take() {
            let outage = self.ctx.clocks.monotonic().saturating_sub(since);
            info!(
                outage_s = outage.as_secs_f64(),
                reconnects = self.ctx.shared.reconnects.load(Ordering::Relaxed),
                track = f.track_id,
                sequence = f.sequence,
                "delivering again after an outage"
            );
        }
        debug!(
            track = f.track_id,
            sequence = f.sequence,
            time = f.time,
            bytes = f.bytes.len(),
            "fragment sent"
        );
        Ok(())
    }

    /// Stop: remaining queue, optional EOS, terminating chunk, final response — all bounded
    /// by the finish deadline.
    async fn close_post(&mut self, writer: &mut Writer, mut resp: ResponseFuture) -> Outcome {
        let deadline = self.feed.deadline();
        let closing = async {
            while let Ok(f) = self.feed.rx.try_recv() {
                self.feed.push_replay(f.clone());
                self.send_fragment(writer, &f, &mut resp).await?;
            }
            if self.ctx.send_eos {
                self.send_chunk(writer, &Bytes::from_static(&EMPTY_MFRA), &mut resp)
                    .await?;
            }
            self.send_raw(writer, Bytes::from_static(LAST_CHUNK), &mut resp)
                .await?;
            (&mut resp).await.map_err(Failure::Read)
        };
        match tokio::time::timeout_at(deadline, closing).await {
            Ok(Ok(head)) => {
                self.record_status(head.status);
                if (200..300).contains(&head.status) {
                    info!(
                        http_status = head.status,
                        eos = self.ctx.send_eos,
                        "stream closed"
                    );
                } else {
                    let f = Failure::status(&head, " (final response)");
                    warn!(http_status = head.status, error = %f, "stream closed with an error");
                    self.record_failure(&f);
                }
            }
            Ok(Err(f)) => {
                warn!(error = %f, http_status = f.http_status(), "closing the stream failed");
                self.record_failure(&f);
            }
            Err(_) => {
                warn!("stop deadline reached before the stream was closed");
                self.ctx.shared.detail().last_error =
                    Some("stop deadline reached before the final response".to_string());
            }
        }
        Outcome::Stopped
    }

    /// Ends the POST without EOS: a backup whose primary is live again, or a destination the
    /// operator disabled.
    async fn hand_back(&mut self, writer: &mut Writer, mut resp: ResponseFuture) {
        let closing = async {
            self.send_raw(writer, Bytes::from_static(LAST_CHUNK), &mut resp)
                .await?;
            (&mut resp).await.map_err(Failure::Read)
        };
        match tokio::time::timeout(HANDBACK_TIMEOUT, closing).await {
            Ok(Ok(head)) => {
                self.record_status(head.status);
                info!(http_status = head.status, "POST closed (stepping aside)");
            }
            Ok(Err(f)) => debug!(error = %f, "POST closed uncleanly while stepping aside"),
            Err(_) => debug!("stepping aside: no final response"),
        }
    }
}

enum Next {
    Proceed,
    Again,
    End(Outcome),
}

impl Next {
    fn retry(failure: Failure) -> Next {
        Next::End(Outcome::Retry {
            failure,
            immediate: false,
        })
    }
}

/// Turns the early end of the response future into a failure.
fn early(r: Result<ResponseHead, ReadError>) -> Failure {
    match r {
        Ok(head) => Failure::EarlyResponse(head),
        Err(e) => Failure::Read(e),
    }
}

/// Runs a write with the send timeout while watching the response side: an early answer or a
/// reset ends the write at once.
async fn guarded<F>(write: F, limit: Duration, resp: &mut ResponseFuture) -> Result<(), Failure>
where
    F: Future<Output = io::Result<()>>,
{
    tokio::select! {
        biased;
        r = &mut *resp => Err(early(r)),
        w = tokio::time::timeout(limit, write) => match w {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                // Broken pipe or reset: the server may have answered just before closing.
                match tokio::time::timeout(LATE_RESPONSE_GRACE, &mut *resp).await {
                    Ok(Ok(head)) => Err(Failure::EarlyResponse(head)),
                    _ => Err(Failure::Write(e)),
                }
            }
            Err(_) => Err(Failure::SendTimeout(limit)),
        },
    }
}

/// DNS (resolved again on every call), TCP connect, TLS handshake — all within the timeout.
async fn connect(
    target: &Target,
    tls_config: Option<Arc<ClientConfig>>,
    limit: Duration,
) -> Result<Conn, Failure> {
    let work = async {
        let addrs: Vec<SocketAddr> = match &target.host {
            url::Host::Domain(d) => tokio::net::lookup_host((d.as_str(), target.port))
                .await
                .map_err(Failure::Dns)?
                .collect(),
            url::Host::Ipv4(a) => vec![SocketAddr::from((*a, target.port))],
            url::Host::Ipv6(a) => vec![SocketAddr::from((*a, target.port))],
        };
        let mut last_err = None;
        let mut stream = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last_err = Some(e),
            }
        }
        let stream = match (stream, last_err) {
            (Some(s), _) => s,
            (None, Some(e)) => return Err(Failure::Connect(e)),
            (None, None) => return Err(Failure::NoAddress),
        };
        // Fragments are written as a few large writes; don't hold back the small tails.
        let _ = stream.set_nodelay(true);
        let io: Box<dyn Io> = if target.tls {
            let config = tls_config
                .ok_or_else(|| Failure::BadTarget("https URL but no TLS configuration".into()))?;
            let name = tls::server_name(&target.host).map_err(Failure::BadTarget)?;
            let s = tokio_rustls::TlsConnector::from(config)
                .connect(name, stream)
                .await
                .map_err(Failure::Tls)?;
            Box::new(s)
        } else {
            Box::new(stream)
        };
        let (r, w) = tokio::io::split(io);
        Ok(Conn {
            reader: ResponseReader::new(r),
            writer: w,
        })
    };
    tokio::time::timeout(limit, work)
        .await
        .map_err(|_| Failure::ConnectTimeout(limit))?
}

/// The empty probe POST; returns the response head and whether the connection can be reused.
async fn probe(
    conn: &mut Conn,
    head: Vec<u8>,
    limit: Duration,
) -> Result<(ResponseHead, bool), Failure> {
    let work = async {
        conn.writer.write_all(&head).await.map_err(Failure::Write)?;
        conn.writer.flush().await.map_err(Failure::Write)?;
        let h = conn.reader.read_head().await.map_err(Failure::Read)?;
        let reusable = match conn.reader.read_body(&h).await {
            Ok((_, reusable)) => reusable,
            Err(_) => false,
        };
        Ok((h, reusable))
    };
    tokio::time::timeout(limit, work)
        .await
        .map_err(|_| Failure::ResponseTimeout(limit))?
}
