//! The operator console (`smoothcast console`): a terminal UI that watches and drives channels
//! through their local control APIs.
//!
//! State, drawing and the terminal are kept apart so most of the console is tested without a
//! terminal:
//! - [`model`]: the console's own, lenient copy of the `/status` JSON and the channel health;
//! - [`app`]: the console state and key handling → [`app::Action`]s (pure);
//! - [`ui`]: `draw(frame, &app)` (pure; snapshot-tested with ratatui's `TestBackend`);
//! - [`client`]: discovery, one poller thread per channel, commands — the UI never waits on a
//!   channel;
//! - [`term`]: raw mode, alternate screen, and the panic hook that restores the terminal.

pub mod app;
pub mod client;
pub mod http;
pub mod model;
pub mod term;
pub mod ui;

use app::{Action, App};
use client::{PollConfig, Poller, Target};
use crossterm::event::{self, Event};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Command-line options of `smoothcast console`.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ConsoleArgs {
    /// Control API base URL of a channel (`http://127.0.0.1:7070`), repeatable. Without it the
    /// console watches every channel announced in the runtime directory.
    #[arg(long = "connect", value_name = "URL")]
    pub connect: Vec<String>,
    /// Bearer token for non-loopback control APIs (default: $SMOOTHCAST_TOKEN).
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
    /// Directory of channel announcements, repeatable (default: $XDG_RUNTIME_DIR/smoothcast
    /// and /run/smoothcast).
    #[arg(long = "runtime-dir", value_name = "DIR")]
    pub runtime_dir: Vec<PathBuf>,
    /// Milliseconds between two status polls of a channel.
    #[arg(long, value_name = "MS", default_value_t = 500)]
    pub poll_ms: u64,
}

/// Errors of the console.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// A `--connect` URL is unusable.
    #[error("--connect {url}: {what}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        what: String,
    },
    /// The terminal could not be set up, drawn on or read from.
    #[error("terminal: {0}")]
    Terminal(#[from] std::io::Error),
}

impl ConsoleError {
    /// True when the operator's input is at fault (exit code 2).
    pub fn is_bad_input(&self) -> bool {
        matches!(self, ConsoleError::BadUrl { .. })
    }
}

/// Checks a `--connect` URL: `http://host[:port][/base]`.
pub fn parse_connect(url: &str) -> Result<String, ConsoleError> {
    let bad = |what: String| ConsoleError::BadUrl {
        url: url.to_string(),
        what,
    };
    let parsed = url::Url::parse(url).map_err(|e| bad(e.to_string()))?;
    if parsed.scheme() != "http" {
        return Err(bad("the control API is plain http://".into()));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host".into()));
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// Runs `smoothcast console` and maps the outcome to an exit code (0 ok, 2 bad input,
/// 1 runtime failure).
pub fn main(args: ConsoleArgs) -> ExitCode {
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::from(if e.is_bad_input() { 2 } else { 1 })
        }
    }
}

/// How often the runtime directory is read again for new channels.
const REDISCOVER: Duration = Duration::from_secs(2);
/// Longest time between two redraws (timecode, ages) when no key is pressed.
const TICK: Duration = Duration::from_millis(200);

/// Runs the console until the operator quits.
pub fn run(args: ConsoleArgs) -> Result<(), ConsoleError> {
    let token = args
        .token
        .clone()
        .or_else(|| std::env::var("SMOOTHCAST_TOKEN").ok())
        .filter(|t| !t.is_empty());
    let urls = args
        .connect
        .iter()
        .map(|u| parse_connect(u))
        .collect::<Result<Vec<_>, _>>()?;
    let config = PollConfig {
        interval: Duration::from_millis(args.poll_ms.clamp(100, 60_000)),
        ..PollConfig::default()
    };
    let poller = Poller::new(config);
    for u in &urls {
        poller.watch(Target::new(u, token.clone()));
    }
    let dirs = if args.runtime_dir.is_empty() {
        client::runtime_dirs()
    } else {
        args.runtime_dir.clone()
    };
    let discovering = urls.is_empty();
    let mut last_discovery: Option<Instant> = None;

    let mut guard = term::TerminalGuard::enter()?;
    let mut app = App::new();
    loop {
        if discovering && last_discovery.is_none_or(|t| t.elapsed() >= REDISCOVER) {
            for t in client::discover(&dirs, token.as_deref()) {
                poller.watch(t);
            }
            last_discovery = Some(Instant::now());
        }
        app.set_channels(poller.views(Instant::now()));
        if let Some(m) = poller.take_messages().pop() {
            app.message = Some(m);
        }
        guard.terminal.draw(|f| ui::draw(f, &app))?;
        if !event::poll(TICK)? {
            continue;
        }
        // Drain everything queued so a held key does not lag behind the screen.
        loop {
            if let Event::Key(key) = event::read()? {
                match app.on_key(key) {
                    Some(Action::Quit) => return Ok(()),
                    Some(action) => {
                        let name = app
                            .channels
                            .iter()
                            .find(|c| Some(c.url.as_str()) == action.url())
                            .map(|c| c.name.clone())
                            .unwrap_or_default();
                        poller.execute(&action, &name);
                    }
                    None => {}
                }
            }
            if !event::poll(Duration::ZERO)? {
                break;
            }
        }
    }
}
