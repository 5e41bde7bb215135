//! Profiles: the TOML file that fully describes a channel, its validation, and the resolved plan.
pub mod plan;
pub use plan::*;
