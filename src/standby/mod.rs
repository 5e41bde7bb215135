//! N+M redundancy on etcd: channel ownership by lease, fencing, standby takeover, fail-back.
//!
//! The coordination store is etcd (v3 API through `etcd-client`), never a home-made protocol.
//! Keys, under a prefix (default `/smoothcast`):
//!
//! | key | value | lease |
//! |---|---|---|
//! | `<prefix>/channels/<ch>/owner` | [`OwnerRecord`] JSON: who pushes the channel | owner's |
//! | `<prefix>/channels/<ch>/profile` | [`ProfileRecord`] JSON: the profile a taker copies | none |
//! | `<prefix>/channels/<ch>/handover` | [`HandoverRecord`] JSON: a fail-back request | requester's |
//! | `<prefix>/events/<ch>/<unix_ms>-<box>` | [`Event`] JSON: ownership history | none |
//!
//! **Ownership.** A box owns a channel while the owner key exists under its lease. Winning is
//! one etcd transaction — *if the owner key has never been created (create_revision = 0), put
//! it with my lease* — so with any number of standbys exactly one wins.
//!
//! **Fencing.** The owner renews its lease every TTL/4. The lease cannot expire on the server
//! before `send time of the last successful renewal + TTL`; the owner stops pushing (drops
//! every connection, [`crate::channel::ChannelMonitor::fence`]) at that instant minus a margin,
//! so it is silent before any other box can have won the channel. A fenced box does not fight:
//! it becomes a standby for the channel and takes it again only if the owner key is free.
//!
//! **Takeover.** A standby watches for owner keys that disappear (lease expired), copies the
//! profile, resolves its logical inputs against its own hw map (refusing, before competing,
//! when an input is missing) and starts the channel. Timestamps come from timecode, so the
//! server sees later timestamps, never a reset.
//!
//! **Fail-back** is an operator action on the box that wants the channel (`POST /failback`):
//! it asks for a handover at fragment `k` (two fragments ahead); the owner moves the owner key
//! to the requester's lease in one transaction, stops after fragment `k − 1`, and the requester
//! starts at fragment `k`. No fragment is pushed by both, none is skipped.

pub mod agent;
pub mod member;
pub mod store;

use serde::{Deserialize, Serialize};
use std::time::Duration;

pub use agent::{run_agent, AgentConfig};
pub use member::{Member, MemberStart};
pub use store::Store;

/// Default key prefix.
pub const DEFAULT_PREFIX: &str = "/smoothcast";
/// Default lease TTL: 3 s (a failed box is detected within 3 s).
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(3);

/// How a box takes part in N+M.
#[derive(Clone, Debug)]
pub struct Coordination {
    /// etcd client URLs (`http://127.0.0.1:2379`).
    pub endpoints: Vec<String>,
    /// This box's id (unique in the pool): `--box-id`, default the host name.
    pub box_id: String,
    /// Lease TTL (whole seconds; etcd may grant more than asked).
    pub lease_ttl: Duration,
    /// Key prefix.
    pub prefix: String,
}

impl Coordination {
    /// Renewal period: a quarter of the TTL (at least 100 ms).
    pub fn renew_every(&self) -> Duration {
        (self.lease_ttl / 4).max(Duration::from_millis(100))
    }
}

/// Errors of the redundancy layer, naming the channel and the box.
#[derive(Debug, thiserror::Error)]
pub enum RedundancyError {
    #[error("etcd {endpoints}: {reason}")]
    Etcd { endpoints: String, reason: String },
    #[error("etcd {endpoints}: no answer within {ms} ms ({what})")]
    Timeout {
        endpoints: String,
        ms: u64,
        what: &'static str,
    },
    /// The channel's record in etcd cannot be used (bad JSON, profile that does not load).
    #[error("channel {channel}: {what} in etcd: {reason}")]
    BadRecord {
        channel: String,
        what: &'static str,
        reason: String,
    },
    /// This box cannot run the channel (missing input in its hw map, …): it does not compete.
    #[error("channel {channel}: box {box_id} cannot take it: {reason}")]
    Refused {
        channel: String,
        box_id: String,
        reason: String,
    },
    #[error("box {box_id}: {reason}")]
    Setup { box_id: String, reason: String },
}

/// Who owns a channel (value of the owner key).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerRecord {
    /// The owning box.
    pub box_id: String,
    /// When it won, ms since the Unix epoch (its clock).
    pub since_unix_ms: u64,
    /// Set by a handover: the new owner's first fragment (the old owner pushes those before).
    #[serde(default)]
    pub from_fragment: Option<u64>,
}

/// The profile a taker copies (value of the profile key), kept current by the owner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileRecord {
    /// The profile TOML, as the owner loaded it (logical input names, not devices).
    pub profile_toml: String,
    /// Where it came from (the owner's path), for error messages.
    pub origin: String,
    /// `--push` URLs that replaced the profile's destinations on the owner, if any.
    #[serde(default)]
    pub push_urls: Vec<String>,
    /// The box that published it.
    pub published_by: String,
    /// When, ms since the Unix epoch.
    pub published_unix_ms: u64,
}

/// A fail-back request (value of the handover key).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandoverRecord {
    /// The box that asks for the channel.
    pub to: String,
    /// Its lease: the owner puts the owner key under it.
    pub lease: i64,
    /// First fragment the requester pushes.
    pub at_fragment: u64,
}

/// One ownership event (value of an event key).
pub type Event = crate::control::api::RedundancyEvent;

/// Wall-clock now in ms since the Unix epoch.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The default box id: the host name (`/etc/hostname`), else `box`.
pub fn default_box_id() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "box".into())
}
