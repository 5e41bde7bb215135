//! smoothcast — a live encoder appliance: capture → timestamp → encode → package (PIFF) → push.
//!
//! The modules follow the data flow; see `shared/design.md` for the architecture.
pub mod bench;
pub mod capture;
pub mod channel;
pub mod console;
pub mod control;
pub mod encode;
pub mod hw;
pub mod piff;
pub mod profile;
pub mod push;
pub mod sink;
pub mod standby;
pub mod time;
