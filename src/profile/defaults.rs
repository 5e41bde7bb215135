//! Every profile default, in one place. `docs/profile.md` quotes these values; change both.

/// Track timescale: 100 ns ticks, the Smooth Streaming default (MS-SSTR 2.2.7.3.1).
pub const TIMESCALE: u32 = crate::time::DEFAULT_TIMESCALE;
/// AAC-LC bitrate in kbit/s.
pub const AUDIO_BITRATE_KBPS: u32 = 128;
/// Audio output channels.
pub const AUDIO_CHANNELS: u16 = 2;
/// Audio sample rate in Hz.
pub const AUDIO_SAMPLE_RATE: u32 = 48_000;
/// x264 preset: fast enough for a ladder in real time on modest hardware.
pub const PRESET: &str = "veryfast";
/// H.264 profile.
pub const H264_PROFILE: &str = "high";
/// B-frames for main/high.
pub const BFRAMES: u32 = 2;
/// B-frames for baseline, which has none.
pub const BFRAMES_BASELINE: u32 = 0;
/// x264 threads (0 = automatic).
pub const THREADS: u32 = 0;
/// VBV buffer = this many seconds at `max_bitrate` (kbit = kbit/s × s).
pub const BUFFER_SECONDS_OF_MAX_BITRATE: u32 = 2;
/// Minimum replay window in seconds; the effective default is the longer of this and
/// [`REPLAY_FRAGMENTS_MIN`] fragments.
pub const REPLAY_WINDOW_SECS: f64 = 10.0;
/// The replay window must hold at least this many fragments (protocol.md §1.6).
pub const REPLAY_FRAGMENTS_MIN: u64 = 2;
/// TCP+TLS connect timeout in seconds (protocol.md §1.5: ~10 s).
pub const CONNECT_TIMEOUT_SECS: f64 = 10.0;
/// Send timeout as a multiple of the fragment duration (protocol.md §1.5: between N and 2N).
pub const SEND_TIMEOUT_FRAGMENTS: f64 = 1.5;
/// Cap of the exponential reconnect backoff in seconds.
pub const MAX_BACKOFF_SECS: f64 = 30.0;
/// Fragments queued per destination session before it is marked behind.
pub const QUEUE_FRAGMENTS: usize = 8;
/// Send the end-of-stream `mfra` on stop (off: it stops IIS publishing points).
pub const SEND_EOS: bool = false;
/// The control API's address when the profile does not set one: loopback, any free port.
pub const CONTROL_LISTEN: &str = "127.0.0.1:0";
/// Shortest accepted control API token.
pub const CONTROL_TOKEN_MIN: usize = 16;
/// Longest accepted control API token.
pub const CONTROL_TOKEN_MAX: usize = 256;
/// Send audio in a second stream too.
pub const REDUNDANT_AUDIO: bool = false;
