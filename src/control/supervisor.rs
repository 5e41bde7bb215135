//! The channel's lifecycle inside its process: start, operator stop/start/restart, shutdown on
//! SIGTERM, and a small tick thread that samples the pipeline's counters (rates, readiness,
//! stall detection) and talks to systemd.
//!
//! Locks: `lifecycle` serialises start/stop/restart (it is held while `channel::start` opens
//! encoders and waits for the first boundary); `life` and `tracker` are only ever held for a
//! few field copies, never together, so status requests never wait for a start.

use super::api::ChannelState;
use super::notify::Notifier;
use super::ControlError;
use crate::channel::{self, ChannelHandle, ChannelMonitor, ChannelStatus, RunOptions, RunSummary};
use crate::profile::{Plan, TimecodeSpec};
use crate::push::{SessionState, SessionStatus};
use crate::time::timecode::timecode_of;
use crate::time::FrameIndex;
use std::collections::{BTreeSet, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

/// How long the push sessions get to end their POSTs when a run ends without a deadline.
const PUSH_FINISH_TIMEOUT: Duration = Duration::from_secs(5);
/// Counter sampling period of the tick thread.
const TICK: Duration = Duration::from_millis(100);
/// Spacing of the samples kept for rates.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);
/// Shortest span of wall time rates are computed over.
const RATE_WINDOW_MIN: Duration = Duration::from_secs(5);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means a panic elsewhere; the data is plain counters and states.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// How the process should end (see [`Supervisor::wait_exit`]).
#[derive(Debug)]
pub struct RunExit {
    /// The last run failed (`error` says why).
    pub failed: bool,
    /// The failure, if any.
    pub error: Option<String>,
    /// What the last run produced (absent when it failed).
    pub summary: Option<RunSummary>,
}

/// Shared state of the lifecycle.
pub(crate) struct Life {
    pub(crate) state: ChannelState,
    pub(crate) monitor: Option<Arc<ChannelMonitor>>,
    /// Runs started (the current one is number `runs`).
    pub(crate) runs: u64,
    /// Monotonic time the current/last run started.
    pub(crate) run_started: Option<Duration>,
    /// First fragment index of the current/last run.
    pub(crate) first_sequence: Option<u64>,
    /// The summary of run number `summary_run`.
    pub(crate) summary: Option<RunSummary>,
    pub(crate) summary_run: u64,
    pub(crate) last_error: Option<String>,
    /// The operator stopped the channel (`/stop`): the process stays up, idle.
    pub(crate) operator_stopped: bool,
    /// SIGTERM: the process exits once the run has ended.
    pub(crate) shutdown: Option<Instant>,
    /// Runs are started and ended by something else (an N+M member): the process outlives
    /// every run, a failed one included, and exits only on shutdown.
    pub(crate) member_driven: bool,
    /// First frame after the last run, so a restart continues the timeline.
    next_frame: Option<FrameIndex>,
    /// Destinations the operator disabled (kept across restarts).
    pub(crate) disabled: BTreeSet<String>,
}

/// Counter samples of the current run, for rates, readiness and stall detection.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    run: u64,
    /// Monotonic time the run started.
    run_started: Duration,
    samples: VecDeque<Sample>,
    fragments_total: u64,
    /// Monotonic time a fragment was last published in this run.
    pub(crate) last_fragment_at: Option<Duration>,
    /// The current run produced a fragment and (with destinations) a probe succeeded.
    pub(crate) ready: bool,
}

#[derive(Debug, Clone)]
struct Sample {
    at: Duration,
    /// Per track (monitor order): frames/units encoded, bytes, media time of the last end.
    tracks: Vec<(u64, u64, u64)>,
}

/// Measured rates of one track.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Rates {
    /// Frames (or AAC frames) per second of wall time.
    pub(crate) per_sec: Option<f64>,
    /// Bits per second of media time.
    pub(crate) bits_per_sec: Option<f64>,
}

impl Tracker {
    fn reset(&mut self, run: u64, now: Duration) {
        *self = Tracker {
            run,
            run_started: now,
            ..Tracker::default()
        };
    }

    /// Takes one sample of the run's counters.
    fn observe(&mut self, now: Duration, status: &ChannelStatus, window: Duration) {
        let total: u64 = status.tracks.iter().map(|t| t.fragments).sum();
        if total > self.fragments_total {
            self.fragments_total = total;
            self.last_fragment_at = Some(now);
        }
        if total > 0 && probe_succeeded(&status.sessions) {
            self.ready = true;
        }
        let due = self
            .samples
            .back()
            .is_none_or(|s| now.saturating_sub(s.at) >= SAMPLE_EVERY);
        if due {
            self.samples.push_back(Sample {
                at: now,
                tracks: status
                    .tracks
                    .iter()
                    .map(|t| (t.samples, t.bytes, t.last_end))
                    .collect(),
            });
        }
        while self
            .samples
            .front()
            .is_some_and(|s| now.saturating_sub(s.at) > window)
        {
            self.samples.pop_front();
        }
    }

    /// Rates of track `i` over the sampled window; the bitrate falls back to the run's average
    /// when no fragment completed inside the window.
    pub(crate) fn rates(
        &self,
        i: usize,
        timescale: u32,
        run_bytes: u64,
        run_media_ticks: u64,
    ) -> Rates {
        let ends = self
            .samples
            .front()
            .zip(self.samples.back())
            .and_then(|(a, b)| Some((a.at, *a.tracks.get(i)?, b.at, *b.tracks.get(i)?)));
        let mut r = Rates::default();
        if let Some((t0, (n0, b0, e0), t1, (n1, b1, e1))) = ends {
            let secs = t1.saturating_sub(t0).as_secs_f64();
            if secs >= 0.5 {
                r.per_sec = Some(n1.saturating_sub(n0) as f64 / secs);
            }
            let media = e1.saturating_sub(e0);
            if media > 0 && e0 > 0 {
                r.bits_per_sec =
                    Some(b1.saturating_sub(b0) as f64 * 8.0 * f64::from(timescale) / media as f64);
            }
        }
        if r.bits_per_sec.is_none() && run_media_ticks > 0 {
            r.bits_per_sec =
                Some(run_bytes as f64 * 8.0 * f64::from(timescale) / run_media_ticks as f64);
        }
        r
    }

    /// No fragment for too long while running: the pipeline is stuck.
    pub(crate) fn stalled(&self, now: Duration, fragment: Duration) -> bool {
        let (since, limit) = match self.last_fragment_at {
            Some(t) => (t, fragment * 2 + Duration::from_secs(3)),
            // The first fragment needs the wait for the boundary, a whole fragment and the
            // encoders' lookahead.
            None => (self.run_started, fragment * 3 + Duration::from_secs(5)),
        };
        now.saturating_sub(since) > limit
    }
}

/// Any session has a working connection: it went live or its probe was answered 2xx. With no
/// sessions (no destinations, `--no-push`) there is nothing to wait for.
pub(crate) fn probe_succeeded(sessions: &[SessionStatus]) -> bool {
    sessions.is_empty()
        || sessions.iter().any(|s| {
            s.state == SessionState::Live
                || s.last_http_status.is_some_and(|c| (200..300).contains(&c))
        })
}

/// Runs one channel in this process and keeps it observable and controllable.
pub struct Supervisor {
    plan: Plan,
    opts: RunOptions,
    profile_path: Option<PathBuf>,
    /// Monotonic time (of `opts.clocks`) the supervisor was created.
    born: Duration,
    pub(crate) life: Mutex<Life>,
    changed: Condvar,
    lifecycle: Mutex<()>,
    pub(crate) tracker: Mutex<Tracker>,
    notifier: Option<Notifier>,
    /// The N+M membership of this channel (`run --etcd`, or a standby that took it).
    redundancy: Mutex<Option<Arc<dyn RedundancyControl>>>,
}

/// What the control API needs from an N+M membership (implemented by `standby::Member`).
pub trait RedundancyControl: Send + Sync {
    /// Role, ownership, lease health and recent takeover events.
    fn status(&self) -> super::api::Redundancy;
    /// The operator asks for the channel back on this box (fail-back), at a fragment boundary.
    fn failback(&self) -> Result<String, ControlError>;
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("channel", &self.plan.channel)
            .finish_non_exhaustive()
    }
}

impl Supervisor {
    /// A supervisor for `plan` run with `opts` (nothing runs until [`start`](Self::start)).
    /// `notifier` talks to systemd (`Notifier::from_env()` in the binary). Starts the tick
    /// thread, which ends when the supervisor is dropped.
    pub fn new(
        plan: Plan,
        opts: RunOptions,
        profile_path: Option<PathBuf>,
        notifier: Option<Notifier>,
    ) -> Result<Arc<Supervisor>, ControlError> {
        let born = opts.clocks.monotonic();
        let sup = Arc::new(Supervisor {
            plan,
            opts,
            profile_path,
            born,
            life: Mutex::new(Life {
                state: ChannelState::Stopped,
                monitor: None,
                runs: 0,
                run_started: None,
                first_sequence: None,
                summary: None,
                summary_run: 0,
                last_error: None,
                operator_stopped: false,
                shutdown: None,
                member_driven: false,
                next_frame: None,
                disabled: BTreeSet::new(),
            }),
            changed: Condvar::new(),
            lifecycle: Mutex::new(()),
            tracker: Mutex::new(Tracker::default()),
            notifier,
            redundancy: Mutex::new(None),
        });
        let weak = Arc::downgrade(&sup);
        std::thread::Builder::new()
            .name("control-tick".into())
            .spawn(move || tick_loop(weak))
            .map_err(|e| ControlError::Thread(e.to_string()))?;
        Ok(sup)
    }

    /// The plan as loaded (restarts may move a fixed start timecode; this stays as loaded).
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The profile file the plan came from (`None`: the built-in demo).
    pub fn profile_path(&self) -> Option<&std::path::Path> {
        self.profile_path.as_deref()
    }

    /// Monotonic time of the injected clocks.
    pub(crate) fn now(&self) -> Duration {
        self.opts.clocks.monotonic()
    }

    /// Seconds since the supervisor was created.
    pub(crate) fn uptime(&self) -> Duration {
        self.now().saturating_sub(self.born)
    }

    /// The fragment duration.
    pub fn fragment_duration(&self) -> Duration {
        let (num, den) = self.plan.fragment_secs;
        Duration::from_secs_f64(num as f64 / den.max(1) as f64)
    }

    /// The monitor of the current (or last) run.
    pub fn monitor(&self) -> Option<Arc<ChannelMonitor>> {
        lock(&self.life).monitor.clone()
    }

    /// The channel's lifecycle state.
    pub fn state(&self) -> ChannelState {
        lock(&self.life).state
    }

    /// The current run is running but produced no fragment for longer than the stall limit
    /// (the `pipeline_stalled` alert; systemd's watchdog stops being fed).
    pub fn is_stalled(&self) -> bool {
        self.state() == ChannelState::Running
            && lock(&self.tracker).stalled(self.now(), self.fragment_duration())
    }

    /// Starts a run (idempotent while running; waits for a stopping run to end first).
    /// Blocks while encoders open and, in real time on the clock, until the first fragment
    /// boundary.
    pub fn start(self: &Arc<Self>) -> Result<String, ControlError> {
        let _serial = lock(&self.lifecycle);
        self.start_locked(None)
    }

    /// Like [`start`](Self::start), but the run's first fragment is no earlier than `k` (an
    /// N+M handover starts exactly where the handing box stops).
    pub fn start_at_fragment(self: &Arc<Self>, k: u64) -> Result<String, ControlError> {
        let _serial = lock(&self.lifecycle);
        self.start_locked(Some(k))
    }

    /// Marks the channel as driven by an N+M member: idle until the member starts it, and
    /// [`wait_exit`](Self::wait_exit) returns only on a shutdown — not when a run ends or
    /// fails (the member then gives the channel up to a standby and stays in the pool).
    pub fn hold_idle(&self) {
        let mut life = lock(&self.life);
        life.operator_stopped = true;
        life.member_driven = true;
    }

    /// Installs the N+M membership reported in `/status` and driven by `POST /failback`.
    pub fn set_redundancy(&self, r: Arc<dyn RedundancyControl>) {
        *lock(&self.redundancy) = Some(r);
    }

    /// The N+M membership, if this channel has one.
    pub fn redundancy(&self) -> Option<Arc<dyn RedundancyControl>> {
        lock(&self.redundancy).clone()
    }

    /// Fencing (N+M lease possibly lost): stops pushing at once and ends the run; the process
    /// stays up, idle, like after an operator stop. Returns false when nothing was running.
    pub fn fence(&self, reason: &str) -> bool {
        let mut life = lock(&self.life);
        life.operator_stopped = true;
        let running = matches!(
            life.state,
            ChannelState::Running | ChannelState::Starting | ChannelState::Stopping
        );
        if let Some(m) = &life.monitor {
            m.fence();
        }
        if matches!(life.state, ChannelState::Running) {
            life.state = ChannelState::Stopping;
        }
        self.changed.notify_all();
        drop(life);
        if running {
            tracing::warn!(channel = %self.plan.channel, reason, "fenced: stopped pushing");
        }
        running
    }

    /// Hands the channel over at a fragment boundary: fragments before `k` are still produced
    /// and pushed, then the run ends; the process stays up, idle.
    pub fn stop_before_fragment(&self, k: u64) {
        let mut life = lock(&self.life);
        life.operator_stopped = true;
        if let Some(m) = &life.monitor {
            m.request_stop_before(k);
        }
        if matches!(life.state, ChannelState::Running) {
            life.state = ChannelState::Stopping;
        }
        self.changed.notify_all();
    }

    /// The fragment the running channel is producing (`None` when nothing runs).
    pub fn current_fragment(&self) -> Option<u64> {
        let life = lock(&self.life);
        match life.state {
            ChannelState::Running => life.monitor.as_ref().map(|m| m.current_fragment()),
            _ => None,
        }
    }

    fn start_locked(self: &Arc<Self>, start_fragment: Option<u64>) -> Result<String, ControlError> {
        let next_frame = {
            let mut life = self.wait_not_stopping(lock(&self.life));
            match life.state {
                ChannelState::Running | ChannelState::Starting => {
                    return Ok("already running".into());
                }
                _ => {}
            }
            if life.shutdown.is_some() {
                return Err(ControlError::Conflict(
                    "the process is shutting down".into(),
                ));
            }
            life.state = ChannelState::Starting;
            life.operator_stopped = false;
            life.runs += 1;
            life.run_started = Some(self.now());
            life.last_error = None;
            life.first_sequence = None;
            self.changed.notify_all();
            life.next_frame
        };
        let plan = self.plan_continuing_after(next_frame);
        let opts = RunOptions {
            start_fragment,
            ..self.opts.clone()
        };
        match channel::start(&plan, opts) {
            Ok(handle) => {
                self.adopt(handle);
                Ok("started".into())
            }
            Err(e) => {
                let mut life = lock(&self.life);
                life.state = ChannelState::Failed;
                life.last_error = Some(e.to_string());
                self.changed.notify_all();
                tracing::error!(channel = %self.plan.channel, error = %e, "channel did not start");
                Err(ControlError::Channel(e))
            }
        }
    }

    /// Makes a started run the current one and waits for its end on a thread.
    fn adopt(self: &Arc<Self>, handle: ChannelHandle) {
        let monitor = handle.monitor();
        let first = handle.first_fragment();
        let (runs, shutdown) = {
            let mut life = lock(&self.life);
            for d in &life.disabled {
                monitor.set_destination_enabled(d, false);
            }
            life.monitor = Some(monitor.clone());
            life.first_sequence = Some(first);
            life.state = ChannelState::Running;
            if life.shutdown.is_some() || life.operator_stopped {
                life.state = ChannelState::Stopping;
            }
            self.changed.notify_all();
            (life.runs, life.shutdown)
        };
        lock(&self.tracker).reset(runs, self.now());
        if let Some(deadline) = shutdown {
            monitor.request_stop_by(deadline);
        }
        let sup = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("control-wait".into())
            .spawn(move || sup.wait_run(handle, runs));
        if let Err(e) = spawned {
            // Without a waiter nobody would finish the sessions; end the run at once.
            monitor.request_stop();
            let mut life = lock(&self.life);
            life.state = ChannelState::Failed;
            life.last_error = Some(format!("cannot start the run's waiter thread: {e}"));
            self.changed.notify_all();
        }
    }

    fn wait_run(&self, handle: ChannelHandle, run: u64) {
        let monitor = handle.monitor();
        let result = handle.wait(PUSH_FINISH_TIMEOUT);
        let next = monitor
            .input()
            .video_last_index()
            .map(|n| FrameIndex(n.saturating_add(1)));
        let mut life = lock(&self.life);
        if next.is_some() {
            life.next_frame = next;
        }
        match result {
            Ok(summary) => {
                tracing::info!(channel = %self.plan.channel, run, "run ended");
                life.summary = Some(summary);
                life.summary_run = run;
                life.state = ChannelState::Stopped;
            }
            Err(e) => {
                tracing::error!(channel = %self.plan.channel, run, error = %e, "run failed");
                life.last_error = Some(e.to_string());
                life.state = ChannelState::Failed;
            }
        }
        self.changed.notify_all();
    }

    /// Waits (bounded) while a run is stopping.
    fn wait_not_stopping<'a>(&self, mut life: MutexGuard<'a, Life>) -> MutexGuard<'a, Life> {
        let limit = self.fragment_duration() * 2 + PUSH_FINISH_TIMEOUT + Duration::from_secs(5);
        let start = Instant::now();
        while life.state == ChannelState::Stopping {
            let left = limit.saturating_sub(start.elapsed());
            if left.is_zero() {
                break;
            }
            life = match self.changed.wait_timeout(life, left) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        }
        life
    }

    /// The plan of the next run: a restart must not send the server timestamps it has seen
    /// (Unified Origin answers 409 to a timeline reset), so when the configured start (a fixed
    /// timecode, or the clock behind a run that went faster than real time) lies before the
    /// end of the last run, the next run starts where the last one ended.
    fn plan_continuing_after(&self, next: Option<FrameIndex>) -> Plan {
        let mut plan = self.plan.clone();
        let Some(next) = next else { return plan };
        let behind = match &plan.timecode {
            TimecodeSpec::Fixed { .. } => true,
            // ltc/v4l2 name about the clock's time (or fall back to it); judged like the clock.
            TimecodeSpec::Clock | TimecodeSpec::Ltc { .. } | TimecodeSpec::V4l2 => {
                channel::frame_now(&plan, self.opts.clocks.as_ref()) < next
            }
        };
        if behind {
            let ((y, m, d), tc) = timecode_of(next, plan.rate, false);
            plan.timecode = TimecodeSpec::Fixed {
                date: format!("{y:04}-{m:02}-{d:02}"),
                timecode: tc.to_string(),
            };
            tracing::info!(
                channel = %plan.channel,
                frame = next.0,
                timecode = %tc,
                "restart continues the timeline after the last run"
            );
        }
        plan
    }

    /// Operator stop: finishes the current fragments, ends every POST; the process stays up
    /// (idle) until `/start` or SIGTERM.
    pub fn stop(&self) -> Result<String, ControlError> {
        let mut life = lock(&self.life);
        let msg = match life.state {
            ChannelState::Running => {
                life.state = ChannelState::Stopping;
                if let Some(m) = &life.monitor {
                    m.request_stop();
                }
                "stopping at the end of the current fragment"
            }
            ChannelState::Starting => {
                return Err(ControlError::Conflict(
                    "the channel is starting; stop it once it runs".into(),
                ))
            }
            ChannelState::Stopping => "already stopping",
            ChannelState::Stopped | ChannelState::Failed => "not running",
        };
        life.operator_stopped = true;
        self.changed.notify_all();
        tracing::info!(channel = %self.plan.channel, "stop requested by the operator");
        Ok(msg.into())
    }

    /// Stop, wait for the run to end, start again (continuing the timeline).
    pub fn restart(self: &Arc<Self>) -> Result<String, ControlError> {
        let _serial = lock(&self.lifecycle);
        {
            let mut life = lock(&self.life);
            if life.state == ChannelState::Running {
                life.state = ChannelState::Stopping;
                if let Some(m) = &life.monitor {
                    m.request_stop();
                }
            }
            life.operator_stopped = true;
            self.changed.notify_all();
        }
        tracing::info!(channel = %self.plan.channel, "restart requested by the operator");
        self.start_locked(None).map(|_| "restarted".into())
    }

    /// SIGTERM: the run finishes its current fragments and every POST ends by `deadline`;
    /// then [`wait_exit`](Self::wait_exit) returns.
    pub fn shutdown(&self, deadline: Instant) {
        let mut life = lock(&self.life);
        life.shutdown = Some(deadline);
        if matches!(life.state, ChannelState::Running | ChannelState::Stopping) {
            life.state = ChannelState::Stopping;
            if let Some(m) = &life.monitor {
                m.request_stop_by(deadline);
            }
        }
        self.changed.notify_all();
        drop(life);
        if let Some(n) = &self.notifier {
            n.send("STOPPING=1\nSTATUS=stopping: finishing the current fragments");
        }
    }

    /// True once [`shutdown`](Self::shutdown) was called.
    pub fn is_shutting_down(&self) -> bool {
        lock(&self.life).shutdown.is_some()
    }

    /// Blocks until the process should exit: the run ended on its own (`--duration` or an
    /// error), or after [`shutdown`](Self::shutdown). A run stopped by the operator keeps the
    /// process waiting for `/start`; an N+M member ([`hold_idle`](Self::hold_idle)) waits
    /// for a shutdown whatever its runs do.
    pub fn wait_exit(&self) -> RunExit {
        let mut life = lock(&self.life);
        loop {
            let ended = matches!(life.state, ChannelState::Stopped | ChannelState::Failed);
            let stays_up = life.operator_stopped || life.member_driven;
            if ended && (life.shutdown.is_some() || !stays_up) {
                let failed = life.state == ChannelState::Failed;
                return RunExit {
                    failed,
                    error: life.last_error.clone(),
                    summary: if failed { None } else { life.summary.clone() },
                };
            }
            life = match self.changed.wait(life) {
                Ok(g) => g,
                Err(e) => e.into_inner(),
            };
        }
    }

    /// Enables or disables a destination by name (remembered across restarts).
    pub fn set_destination_enabled(
        &self,
        name: &str,
        enabled: bool,
    ) -> Result<String, ControlError> {
        if !self.plan.destinations.iter().any(|d| d.name == name) {
            return Err(ControlError::NotFound(format!(
                "no destination named '{name}'"
            )));
        }
        let mut life = lock(&self.life);
        if enabled {
            life.disabled.remove(name);
        } else {
            life.disabled.insert(name.to_owned());
        }
        if let Some(m) = &life.monitor {
            m.set_destination_enabled(name, enabled);
        }
        Ok(format!(
            "destination '{name}' {}",
            if enabled { "enabled" } else { "disabled" }
        ))
    }

    /// One tick: sample the counters, then tell systemd what changed.
    fn tick(&self, notify: &mut NotifyState) {
        let (monitor, runs, state, operator_stopped, member_driven) = {
            let life = lock(&self.life);
            (
                life.monitor.clone(),
                life.runs,
                life.state,
                life.operator_stopped,
                life.member_driven,
            )
        };
        let now = self.now();
        let window = RATE_WINDOW_MIN.max(self.fragment_duration() * 2 + Duration::from_secs(1));
        let (ready, stalled) = {
            let status = monitor.as_ref().map(|m| m.status());
            let mut t = lock(&self.tracker);
            if let Some(st) = &status {
                if t.run == runs {
                    t.observe(now, st, window);
                }
            }
            (t.ready, t.stalled(now, self.fragment_duration()))
        };
        let Some(n) = &self.notifier else { return };
        if ready && !notify.ready_sent {
            notify.ready_sent = true;
            n.send("READY=1\nSTATUS=running: capture runs, first fragment produced");
        }
        let healthy = match state {
            ChannelState::Running => !stalled,
            ChannelState::Starting | ChannelState::Stopping => true,
            // Idle by the operator's request is healthy; a failed run ends the process, except
            // for an N+M member, which has given the channel to a standby and waits in the pool.
            ChannelState::Stopped => operator_stopped,
            ChannelState::Failed => member_driven,
        };
        if let Some(every) = n.watchdog_interval() {
            let due = notify
                .last_ping
                .is_none_or(|t| now.saturating_sub(t) >= every);
            if due && healthy {
                n.send("WATCHDOG=1");
                notify.last_ping = Some(now);
            }
        }
        let line = match (state, stalled) {
            (ChannelState::Running, true) => "stalled: no fragments".to_owned(),
            (ChannelState::Stopped, _) if operator_stopped => "stopped by the operator".into(),
            (s, _) => format!("{s:?}").to_lowercase(),
        };
        if notify.status_line.as_deref() != Some(line.as_str()) {
            n.send(&format!("STATUS={line}"));
            notify.status_line = Some(line);
        }
    }
}

#[derive(Debug, Default)]
struct NotifyState {
    ready_sent: bool,
    last_ping: Option<Duration>,
    status_line: Option<String>,
}

fn tick_loop(sup: Weak<Supervisor>) {
    let mut notify = NotifyState::default();
    loop {
        let Some(s) = sup.upgrade() else { return };
        s.tick(&mut notify);
        drop(s);
        std::thread::sleep(TICK);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::{InputStatus, TrackStatus};

    fn track(samples: u64, fragments: u64, bytes: u64, last_end: u64) -> TrackStatus {
        TrackStatus {
            track_id: 1,
            track_name: "video".into(),
            label: "t/720p".into(),
            fragments,
            bytes,
            samples,
            first_time: Some(0),
            last_end,
            dropped: 0,
            duplicated: 0,
            packaged: None,
        }
    }

    fn status(tracks: Vec<TrackStatus>) -> ChannelStatus {
        ChannelStatus {
            channel: "t".into(),
            tracks,
            sessions: Vec::new(),
            finished: false,
            input: InputStatus {
                video_size: (16, 16),
                video_frames: 0,
                video_filled: 0,
                video_last_index: None,
                video_origin: None,
                audio_samples: 0,
                audio_levels: Vec::new(),
            },
            capture: Default::default(),
        }
    }

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn rates_come_from_the_window_and_bitrate_from_media_time() {
        let mut t = Tracker::default();
        t.reset(1, Duration::ZERO);
        // 25 fps; a 2 s fragment of 250 000 bytes (1 Mbit/s) completes every 2 s.
        for i in 0..=10u64 {
            let frags = i / 2;
            t.observe(
                S * i as u32,
                &status(vec![track(
                    25 * i,
                    frags,
                    frags * 250_000,
                    frags * 20_000_000,
                )]),
                Duration::from_secs(5),
            );
        }
        let r = t.rates(0, 10_000_000, 0, 0);
        assert_eq!(r.per_sec, Some(25.0));
        assert_eq!(r.bits_per_sec, Some(1_000_000.0));
        assert!(t.ready, "a fragment and no sessions: ready");
    }

    #[test]
    fn bitrate_falls_back_to_the_run_average_without_a_fragment_in_the_window() {
        let t = Tracker::default();
        let r = t.rates(0, 1000, 1000, 4000);
        assert_eq!(r.per_sec, None);
        assert_eq!(r.bits_per_sec, Some(2000.0));
    }

    #[test]
    fn a_run_without_fragments_for_two_fragment_durations_is_stalled() {
        let frag = Duration::from_secs(2);
        let mut t = Tracker::default();
        t.reset(1, Duration::ZERO);
        // Before the first fragment: 3 fragments + 5 s of grace.
        assert!(!t.stalled(S * 11, frag));
        assert!(t.stalled(S * 12, frag));
        t.observe(S * 12, &status(vec![track(1, 1, 1, 1)]), S * 5);
        assert!(!t.stalled(S * 19, frag));
        assert!(t.stalled(S * 20, frag));
        t.observe(S * 20, &status(vec![track(2, 2, 2, 2)]), S * 5);
        assert!(!t.stalled(S * 21, frag));
    }

    #[test]
    fn ready_waits_for_a_successful_probe_when_there_are_sessions() {
        use crate::profile::Role;
        let mut st = status(vec![track(1, 1, 1, 1)]);
        let mut session = SessionStatus {
            destination: "primary".into(),
            role: Role::Primary,
            stream_id: "t-720p".into(),
            url: "http://x/t.isml/Streams(t-720p)".into(),
            state: SessionState::Backoff,
            behind: false,
            bytes_sent: 0,
            fragments_sent: 0,
            fragments_dropped: 0,
            reconnects: 1,
            forbidden: 0,
            last_http_status: Some(503),
            last_error: None,
            last_fragment: None,
            queue_depth: 0,
            replay_depth: 0,
            state_since: Duration::ZERO,
            latency: Vec::new(),
        };
        st.sessions.push(session.clone());
        let mut t = Tracker::default();
        t.observe(S, &st, S * 5);
        assert!(!t.ready);
        session.last_http_status = Some(200);
        session.state = SessionState::Probing;
        st.sessions[0] = session;
        t.observe(S * 2, &st, S * 5);
        assert!(t.ready);
    }
}
