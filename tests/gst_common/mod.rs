//! Counting what a GStreamer player decoded, for the tests that play our output with
//! `gst-launch-1.0`: decoded video and audio go to raw files at a fixed format, and the counts
//! come from their sizes. (Counting `fakesink silent=false` lines of `-v` output is not
//! reliable: on a loaded box gst-launch prints fewer `last-message` notifications than buffers.)
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// Decoded frames are scaled to this size before they are written, so one frame is
/// `W * H * 3 / 2` bytes of I420 whatever rung the player chose.
const W: u64 = 64;
const H: u64 = 36;

/// Where a player's decoded output goes.
pub struct RawOut {
    pub video: PathBuf,
    pub audio: PathBuf,
}

impl RawOut {
    pub fn in_dir(dir: &Path) -> RawOut {
        RawOut {
            video: dir.join("video.i420"),
            audio: dir.join("audio.s16"),
        }
    }

    /// A bin description for `playbin`'s `video-sink` property (or, split on spaces, the tail
    /// of a `gst-launch` pipeline after a decoder).
    pub fn video_sink(&self) -> String {
        format!(
            "videoconvert ! videoscale ! video/x-raw,format=I420,width={W},height={H} ! filesink location={}",
            self.video.display()
        )
    }

    /// Mono S16 for `audio-sink`: one sample per 2 bytes.
    pub fn audio_sink(&self) -> String {
        format!(
            "audioconvert ! audio/x-raw,format=S16LE,channels=1 ! filesink location={}",
            self.audio.display()
        )
    }

    /// Decoded video frames written so far.
    pub fn video_frames(&self) -> u64 {
        size(&self.video) / (W * H * 3 / 2)
    }

    /// Decoded audio samples (per channel) written so far.
    pub fn audio_samples(&self) -> u64 {
        size(&self.audio) / 2
    }
}

fn size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}
