//! Control plane: each running channel serves a local HTTP API, talks to systemd, and logs in
//! journald's format.
//!
//! ```text
//!                    ┌────────────── Supervisor ──────────────┐
//! SIGTERM ─────────► │ lifecycle: start / stop / restart       │──► channel::start / ChannelMonitor
//! HTTP API ────────► │ tick (100 ms): rates, ready, stall      │──► sd_notify READY / WATCHDOG / STATUS
//!   (server.rs)      └────────────────────────────────────────┘
//!        ▲ snapshots (ChannelMonitor::status: atomics + short locks, never the pipeline's)
//! ```
//!
//! Endpoints (default `127.0.0.1`, port from `[control] listen`, `--control ADDR:PORT`; with a
//! token every request but `/health` needs `Authorization: Bearer <token>`):
//!
//! | endpoint | answer |
//! |---|---|
//! | `GET /status` | [`api::Status`]: state, inputs, timecode, rungs, audio, destinations × streams, alerts |
//! | `GET /profile` | the running plan as JSON (credentials redacted) plus the `smoothcast check` text |
//! | `GET /health` | [`api::Health`], 200 while running and producing fragments, else 503 |
//! | `GET /metrics` | Prometheus text format ([`metrics`]) |
//! | `POST /start`, `/stop`, `/restart` | [`api::ActionResult`]; stop ends at the fragment boundary, the process stays up |
//! | `POST /destinations/<name>/enable`, `/disable` | [`api::ActionResult`]; 404 for an unknown name |
//!
//! Errors are `{"error": "…"}` with 401 (token), 404, 405 (with `Allow`), 409 (conflicting
//! action), 422 (the profile cannot run here) or 500.
//!
//! Consoles find the channels of a box through the runtime files of [`discovery`].

pub mod api;
pub mod discovery;
pub mod logging;
pub mod metrics;
pub mod notify;
mod server;
mod snapshot;
mod supervisor;

pub use server::{load_token, serve, ControlServer};
pub use snapshot::session_state_name;
pub use supervisor::{RedundancyControl, RunExit, Supervisor};

use crate::channel::ChannelError;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Errors of the control plane, naming the channel.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The API's address cannot be bound.
    #[error("channel {channel}: control API cannot listen on {addr}: {source}")]
    Bind {
        channel: String,
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// The control settings cannot be used (e.g. a public address without a token).
    #[error("channel {channel}: control API: {reason}")]
    Config { channel: String, reason: String },
    /// The token file cannot be read or holds no usable token.
    #[error("channel {channel}: control token file {}: {reason}", path.display())]
    TokenFile {
        channel: String,
        path: PathBuf,
        reason: String,
    },
    /// The API's runtime could not be created.
    #[error("channel {channel}: control API runtime: {source}")]
    Runtime {
        channel: String,
        source: std::io::Error,
    },
    /// A thread could not be started.
    #[error("control: cannot start a thread: {0}")]
    Thread(String),
    /// Starting the channel failed.
    #[error(transparent)]
    Channel(#[from] ChannelError),
    /// The action conflicts with the channel's state (HTTP 409).
    #[error("{0}")]
    Conflict(String),
    /// No such destination (HTTP 404).
    #[error("{0}")]
    NotFound(String),
}

impl ControlError {
    /// True for errors caused by the profile or the command line rather than at run time.
    pub fn is_bad_input(&self) -> bool {
        match self {
            ControlError::Config { .. } | ControlError::TokenFile { .. } => true,
            ControlError::Channel(c) => c.is_bad_input(),
            _ => false,
        }
    }
}
