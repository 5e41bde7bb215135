//! Talking to channels: discovery through the runtime directory, one poller thread per
//! channel, and fire-and-forget commands.
//!
//! Nothing here ever runs on the UI thread: a poller owns its channel's slow or dead socket, and
//! the UI only copies the shared map (a few kB) when it draws. A channel whose latest good
//! snapshot is older than [`PollConfig::stale_after`] is shown stale; after
//! [`PollConfig::unreachable_after`] failures in a row it is shown unreachable.

use super::app::{Action, ChannelView, Link, EVENTS_LEN, HISTORY_LEN};
use super::http::{self, HttpError};
use super::model::StatusSnapshot;
use serde::Deserialize;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// One channel to watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Control API base URL (`http://127.0.0.1:7070`), without a trailing slash.
    pub url: String,
    /// Channel name, if known before the first answer (from discovery).
    pub name: Option<String>,
    /// Bearer token for a non-loopback control API.
    pub token: Option<String>,
}

impl Target {
    /// A target for `url` (trailing slashes dropped).
    pub fn new(url: &str, token: Option<String>) -> Target {
        Target {
            url: url.trim_end_matches('/').to_string(),
            name: None,
            token,
        }
    }

    /// The name to show before the channel has told its own: the discovery name, or the URL's
    /// `host:port`.
    pub fn display_name(&self) -> String {
        if let Some(n) = &self.name {
            return n.clone();
        }
        url::Url::parse(&self.url)
            .ok()
            .and_then(|u| {
                u.host_str()
                    .map(|h| format!("{h}:{}", u.port_or_known_default().unwrap_or(80)))
            })
            .unwrap_or_else(|| self.url.clone())
    }
}

/// Poll timing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PollConfig {
    /// Time between the starts of two polls of one channel.
    pub interval: Duration,
    /// Deadline of one request (connect, send, answer).
    pub timeout: Duration,
    /// A snapshot older than this is shown stale.
    pub stale_after: Duration,
    /// Failed polls in a row after which a channel is shown unreachable.
    pub unreachable_after: u32,
}

impl Default for PollConfig {
    fn default() -> PollConfig {
        PollConfig {
            interval: Duration::from_millis(500),
            timeout: Duration::from_millis(1500),
            stale_after: Duration::from_secs(3),
            unreachable_after: 3,
        }
    }
}

/// Why a poll failed.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    /// The request failed.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// The API answered with an error status.
    #[error("HTTP {status}: {body}")]
    Status {
        /// HTTP status code.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// The body is not a status snapshot.
    #[error("bad status JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// `GET <url>/status`, decoded.
pub fn fetch_status(target: &Target, timeout: Duration) -> Result<StatusSnapshot, PollError> {
    let r = http::request(
        "GET",
        &target.url,
        "/status",
        target.token.as_deref(),
        timeout,
    )?;
    if !(200..300).contains(&r.status) {
        return Err(PollError::Status {
            status: r.status,
            body: body_excerpt(&r.body),
        });
    }
    Ok(StatusSnapshot::from_json(&r.body)?)
}

/// `POST <url><path>`; `Ok` with a short description of the answer on 2xx.
pub fn post(target: &Target, path: &str, timeout: Duration) -> Result<String, PollError> {
    let r = http::request("POST", &target.url, path, target.token.as_deref(), timeout)?;
    if !(200..300).contains(&r.status) {
        return Err(PollError::Status {
            status: r.status,
            body: body_excerpt(&r.body),
        });
    }
    Ok(format!("HTTP {}", r.status))
}

fn body_excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    // A JSON error body usually carries {"error": "..."}; show that rather than the braces.
    let shown = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("error")
                .or_else(|| v.get("message"))
                .and_then(|e| e.as_str().map(str::to_string))
        })
        .unwrap_or_else(|| text.lines().next().unwrap_or_default().to_string());
    shown.chars().take(120).collect()
}

/// Overrides the runtime directory (the control API writes there too).
pub const RUNTIME_DIR_ENV: &str = "SMOOTHCAST_RUNTIME_DIR";

/// The runtime directories where channels announce themselves: `$SMOOTHCAST_RUNTIME_DIR` alone
/// when set, else `/run/smoothcast` (systemd units) and `$XDG_RUNTIME_DIR/smoothcast` (a
/// user's own runs) — the places `smoothcast run` publishes to.
pub fn runtime_dirs() -> Vec<PathBuf> {
    let env = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(d) = env(RUNTIME_DIR_ENV) {
        return vec![d];
    }
    let mut dirs = vec![PathBuf::from("/run/smoothcast")];
    if let Some(x) = env("XDG_RUNTIME_DIR") {
        dirs.push(x.join("smoothcast"));
    }
    dirs
}

#[derive(Deserialize)]
struct Announcement {
    #[serde(default)]
    channel: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    pid: Option<u32>,
}

/// Largest announcement file read.
const MAX_ANNOUNCEMENT: u64 = 64 * 1024;

/// Channels announced in `dirs` (`*.json` files holding `{channel, url, pid}`), sorted by
/// channel name; the first announcement of a URL wins. A file whose `pid` is not a running
/// process is left over from a crash and skipped. Unreadable files are skipped with a debug log.
pub fn discover(dirs: &[PathBuf], token: Option<&str>) -> Vec<Target> {
    let mut found: Vec<Target> = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            // Dot files are the announcer's half-written temporaries.
            .filter(|p| {
                p.extension().is_some_and(|x| x == "json")
                    && !p
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        paths.sort();
        for path in paths {
            match read_announcement(&path) {
                Ok(Some(a)) => {
                    let mut t = Target::new(&a.url, token.map(str::to_string));
                    if !a.channel.is_empty() {
                        t.name = Some(a.channel);
                    }
                    if !found.iter().any(|f| f.url == t.url) {
                        found.push(t);
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!(path = %path.display(), error = %e, "skipping announcement")
                }
            }
        }
    }
    found.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.url.cmp(&b.url)));
    found
}

fn read_announcement(path: &Path) -> Result<Option<Announcement>, String> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut text = Vec::new();
    f.take(MAX_ANNOUNCEMENT)
        .read_to_end(&mut text)
        .map_err(|e| e.to_string())?;
    let a: Announcement = serde_json::from_slice(&text).map_err(|e| e.to_string())?;
    if a.url.is_empty() {
        return Err("no url".into());
    }
    if let Some(pid) = a.pid {
        if !Path::new("/proc").join(pid.to_string()).exists() {
            return Ok(None);
        }
    }
    Ok(Some(a))
}

/// What the poller knows about one channel.
#[derive(Debug)]
struct Entry {
    target: Target,
    snapshot: Option<StatusSnapshot>,
    /// When the latest good snapshot arrived (console monotonic clock).
    last_success: Option<Instant>,
    failures: u32,
    last_error: String,
    history: VecDeque<u64>,
    events: VecDeque<String>,
    /// Whether the channel was counted reachable at the previous poll (for link events).
    was_up: Option<bool>,
    /// Total session bytes and when, for a bitrate when the server reports none.
    last_bytes: Option<(u64, Instant)>,
}

impl Entry {
    fn new(target: Target) -> Entry {
        Entry {
            target,
            snapshot: None,
            last_success: None,
            failures: 0,
            last_error: String::new(),
            history: VecDeque::with_capacity(HISTORY_LEN),
            events: VecDeque::with_capacity(EVENTS_LEN),
            was_up: None,
            last_bytes: None,
        }
    }

    fn event(&mut self, text: String) {
        if self.events.len() >= EVENTS_LEN {
            self.events.pop_front();
        }
        let at = chrono::Local::now().format("%H:%M:%S");
        self.events.push_back(format!("{at} {text}"));
    }

    fn record(
        &mut self,
        result: Result<StatusSnapshot, PollError>,
        now: Instant,
        config: &PollConfig,
    ) {
        match result {
            Ok(s) => {
                if let Some(previous) = &self.snapshot {
                    for line in super::model::changes(previous, &s) {
                        self.event(line);
                    }
                }
                let kbps = self.bitrate(&s, now);
                if self.history.len() >= HISTORY_LEN {
                    self.history.pop_front();
                }
                self.history.push_back(kbps);
                self.snapshot = Some(s);
                self.last_success = Some(now);
                self.failures = 0;
                if self.was_up != Some(true) {
                    self.event("answering".into());
                }
                self.was_up = Some(true);
            }
            Err(e) => {
                self.failures = self.failures.saturating_add(1);
                self.last_error = e.to_string();
                if self.failures >= config.unreachable_after && self.was_up != Some(false) {
                    let msg = format!("not answering: {}", self.last_error);
                    self.event(msg);
                    self.was_up = Some(false);
                }
            }
        }
    }

    /// kbit/s for the sparkline: the server's own figure, or the growth of the session byte
    /// counters of one destination's worth of sessions since the previous poll.
    fn bitrate(&mut self, s: &StatusSnapshot, now: Instant) -> u64 {
        let bytes: u64 = s
            .destinations
            .iter()
            .map(|d| d.sum(|x| x.bytes))
            .max()
            .unwrap_or(0);
        let previous = self.last_bytes.replace((bytes, now));
        if !s.is_running() {
            // The server keeps its last measurement after a stop; nothing is sent now.
            return 0;
        }
        let reported = s.total_kbps();
        if reported > 0.0 {
            return reported.round() as u64;
        }
        match previous {
            Some((b, t)) if bytes >= b && now > t => {
                let secs = now.duration_since(t).as_secs_f64();
                ((bytes - b) as f64 * 8.0 / 1000.0 / secs).round() as u64
            }
            _ => 0,
        }
    }

    fn view(&self, now: Instant, config: &PollConfig) -> ChannelView {
        let link = if self.failures >= config.unreachable_after
            || (self.snapshot.is_none() && self.failures > 0)
        {
            Link::Unreachable {
                error: self.last_error.clone(),
            }
        } else {
            match self.last_success {
                None => Link::Connecting,
                Some(t) => {
                    let age = now.saturating_duration_since(t);
                    if age >= config.stale_after {
                        Link::Stale { age }
                    } else {
                        Link::Fresh
                    }
                }
            }
        };
        let name = self
            .snapshot
            .as_ref()
            .map(|s| s.channel.clone())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| self.target.display_name());
        ChannelView {
            url: self.target.url.clone(),
            name,
            link,
            snapshot: self.snapshot.clone(),
            bitrate_history: self.history.iter().copied().collect(),
            events: self.events.iter().cloned().collect(),
        }
    }
}

/// The pollers of every watched channel and the results of commands.
pub struct Poller {
    entries: Arc<Mutex<Vec<Entry>>>,
    messages: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    config: PollConfig,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poller thread that panicked leaves consistent data behind (every update is a plain
    // assignment), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Poller {
    /// No channels yet.
    pub fn new(config: PollConfig) -> Poller {
        Poller {
            entries: Arc::new(Mutex::new(Vec::new())),
            messages: Arc::new(Mutex::new(Vec::new())),
            stop: Arc::new(AtomicBool::new(false)),
            config,
        }
    }

    /// Starts polling `target` unless its URL is already watched; true when added.
    pub fn watch(&self, target: Target) -> bool {
        {
            let mut entries = lock(&self.entries);
            if entries.iter().any(|e| e.target.url == target.url) {
                return false;
            }
            entries.push(Entry::new(target.clone()));
        }
        let entries = self.entries.clone();
        let stop = self.stop.clone();
        let config = self.config;
        let spawned = std::thread::Builder::new()
            .name(format!("console-poll {}", target.url))
            .spawn(move || poll_loop(&target, &entries, &stop, &config));
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start a poller thread");
            return false;
        }
        true
    }

    /// A view of every channel as of `now` (console monotonic clock), in watch order.
    pub fn views(&self, now: Instant) -> Vec<ChannelView> {
        lock(&self.entries)
            .iter()
            .map(|e| e.view(now, &self.config))
            .collect()
    }

    /// Sends `action` from a background thread; its outcome arrives in
    /// [`take_messages`](Self::take_messages) and in the channel's events.
    pub fn execute(&self, action: &Action, channel_name: &str) {
        let Some(url) = action.url() else { return };
        let path = match action {
            Action::Start { .. } => "/start".to_string(),
            Action::Stop { .. } => "/stop".to_string(),
            Action::Restart { .. } => "/restart".to_string(),
            Action::Failback { .. } => "/failback".to_string(),
            Action::SetDestination {
                destination,
                enabled,
                ..
            } => format!(
                "/destinations/{}/{}",
                percent_encode(destination),
                if *enabled { "enable" } else { "disable" }
            ),
            Action::Quit => return,
        };
        let target = lock(&self.entries)
            .iter()
            .find(|e| e.target.url == url)
            .map(|e| e.target.clone())
            .unwrap_or_else(|| Target::new(url, None));
        let what = action.describe(channel_name);
        let what_failed = what.clone();
        let entries = self.entries.clone();
        let messages = self.messages.clone();
        // Commands may take a moment on the server (a stop finishes the current fragments).
        let timeout = self.config.timeout.max(Duration::from_secs(5));
        let spawned = std::thread::Builder::new()
            .name("console-command".into())
            .spawn(move || {
                let text = match post(&target, &path, timeout) {
                    Ok(answer) => format!("{what}: ok ({answer})"),
                    Err(e) => format!("{what}: FAILED: {e}"),
                };
                tracing::debug!(%text, "command finished");
                if let Some(e) = lock(&entries)
                    .iter_mut()
                    .find(|e| e.target.url == target.url)
                {
                    e.event(text.clone());
                }
                lock(&messages).push(text);
            });
        if let Err(e) = spawned {
            lock(&self.messages).push(format!("{what_failed}: cannot start: {e}"));
        }
    }

    /// Command outcomes since the previous call, oldest first.
    pub fn take_messages(&self) -> Vec<String> {
        std::mem::take(&mut *lock(&self.messages))
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn percent_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

fn poll_loop(target: &Target, entries: &Mutex<Vec<Entry>>, stop: &AtomicBool, config: &PollConfig) {
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let result = fetch_status(target, config.timeout);
        if let Err(e) = &result {
            tracing::debug!(url = %target.url, error = %e, "status poll failed");
        }
        let now = Instant::now();
        if let Some(e) = lock(entries)
            .iter_mut()
            .find(|e| e.target.url == target.url)
        {
            e.record(result, now, config);
        }
        let next = started + config.interval;
        while !stop.load(Ordering::Relaxed) {
            let left = next.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> Result<StatusSnapshot, PollError> {
        Ok(StatusSnapshot {
            channel: "news".into(),
            ..StatusSnapshot::default()
        })
    }

    fn fail() -> Result<StatusSnapshot, PollError> {
        Err(PollError::Status {
            status: 500,
            body: "boom".into(),
        })
    }

    #[test]
    fn link_goes_fresh_then_stale_then_unreachable() {
        let c = PollConfig::default();
        let t0 = Instant::now();
        let mut e = Entry::new(Target::new("http://127.0.0.1:9/", None));
        assert_eq!(e.view(t0, &c).link, Link::Connecting);
        assert_eq!(e.view(t0, &c).name, "127.0.0.1:9");
        e.record(ok(), t0, &c);
        let v = e.view(t0 + Duration::from_secs(1), &c);
        assert_eq!(v.link, Link::Fresh);
        assert_eq!(v.name, "news");
        // A slow channel: no answer, no failure yet, but the snapshot ages.
        assert_eq!(
            e.view(t0 + Duration::from_secs(4), &c).link,
            Link::Stale {
                age: Duration::from_secs(4)
            }
        );
        e.record(fail(), t0, &c);
        e.record(fail(), t0, &c);
        assert!(matches!(
            e.view(t0 + Duration::from_secs(1), &c).link,
            Link::Fresh
        ));
        e.record(fail(), t0, &c);
        let v = e.view(t0 + Duration::from_secs(5), &c);
        assert!(matches!(v.link, Link::Unreachable { ref error } if error.contains("500")));
        assert!(v.snapshot.is_some(), "the last good snapshot is kept");
        assert!(v.events.iter().any(|x| x.contains("not answering")));
        e.record(ok(), t0, &c);
        assert_eq!(e.view(t0, &c).link, Link::Fresh);
        assert_eq!(e.events.len(), 3);
    }

    #[test]
    fn first_poll_failing_shows_unreachable_at_once() {
        let c = PollConfig::default();
        let mut e = Entry::new(Target::new("http://127.0.0.1:9", None));
        e.record(fail(), Instant::now(), &c);
        assert!(matches!(
            e.view(Instant::now(), &c).link,
            Link::Unreachable { .. }
        ));
    }

    #[test]
    fn discovery_reads_announcements_and_skips_dead_pids_and_junk() {
        let dir = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => panic!("tempdir: {e}"),
        };
        let me = std::process::id();
        let files = [
            (
                "b.json",
                format!(r#"{{"channel":"sports","url":"http://127.0.0.1:7002/","pid":{me}}}"#),
            ),
            (
                "a.json",
                r#"{"channel":"news","url":"http://127.0.0.1:7001"}"#.to_string(),
            ),
            (
                "dead.json",
                r#"{"channel":"old","url":"http://127.0.0.1:7003","pid":4294967295}"#.to_string(),
            ),
            ("junk.json", "not json".to_string()),
            ("notes.txt", "{}".to_string()),
            (
                ".c.json",
                r#"{"channel":"half","url":"http://127.0.0.1:7004"}"#.to_string(),
            ),
        ];
        for (name, text) in files {
            if let Err(e) = std::fs::write(dir.path().join(name), text) {
                panic!("write: {e}");
            }
        }
        let found = discover(
            &[dir.path().to_path_buf(), dir.path().join("missing")],
            Some("t"),
        );
        let names: Vec<_> = found
            .iter()
            .map(|t| (t.name.clone().unwrap_or_default(), t.url.clone()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("news".to_string(), "http://127.0.0.1:7001".to_string()),
                ("sports".to_string(), "http://127.0.0.1:7002".to_string())
            ]
        );
        assert_eq!(found[0].token.as_deref(), Some("t"));
    }

    #[test]
    fn bitrate_falls_back_to_byte_counter_growth() {
        use crate::console::model::{DestinationSnapshot, StreamSnapshot};
        let mut e = Entry::new(Target::new("http://x:1", None));
        let t0 = Instant::now();
        let dest = |bytes: u64| DestinationSnapshot {
            streams: vec![
                StreamSnapshot {
                    bytes: bytes / 2,
                    ..StreamSnapshot::default()
                };
                2
            ],
            ..DestinationSnapshot::default()
        };
        let snap = |bytes: u64| StatusSnapshot {
            destinations: vec![dest(bytes), dest(bytes / 2)],
            ..StatusSnapshot::default()
        };
        assert_eq!(e.bitrate(&snap(1_000_000), t0), 0);
        assert_eq!(
            e.bitrate(&snap(1_250_000), t0 + Duration::from_millis(500)),
            4000
        );
    }

    #[test]
    fn destination_names_are_percent_encoded() {
        assert_eq!(percent_encode("back up/2"), "back%20up%2F2");
    }
}
