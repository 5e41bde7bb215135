//! Helpers shared by the integration tests: run the binary, decode with FFmpeg, parse archives.
#![allow(dead_code)]

pub mod alsa;
pub mod cluster;

use smoothcast::piff::parse::{parse_stream, ParsedStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_smoothcast")
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `smoothcast ARGS`, returning its output; panics with stderr when it fails.
pub fn smoothcast_ok(args: &[&str]) -> Output {
    let out = Command::new(bin())
        .args(args)
        .current_dir(repo())
        .output()
        .expect("run smoothcast");
    assert!(
        out.status.success(),
        "smoothcast {args:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `ffmpeg -v error -i FILE -f null -` must print nothing.
pub fn assert_ffmpeg_decodes_cleanly(file: &Path) {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(file)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg is installed (scripts/install-deps)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "ffmpeg reported errors decoding {}:\n{err}",
        file.display()
    );
}

/// Number of frames ffprobe decodes in the first stream of `file`.
pub fn ffprobe_frame_count(file: &Path) -> u64 {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "0",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .expect("ffprobe is installed");
    assert!(out.status.success(), "ffprobe failed on {}", file.display());
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .trim_end_matches(',')
        .parse()
        .unwrap_or_else(|e| panic!("ffprobe frame count of {}: {e}", file.display()))
}

pub fn parse_file(file: &Path) -> ParsedStream {
    let bytes = std::fs::read(file).expect("read archive");
    parse_stream(&bytes).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// Archive files of a run, sorted by name.
pub fn archive_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("archive dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    v.sort();
    v
}

/// Writes `text` as a profile file in `dir` and returns its path.
pub fn write_profile(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write profile");
    p
}

/// A light synthetic channel for tests that run several encoders at once: 25 fps bars + tone,
/// `fragment_secs` fragments, the given `[timecode]` body, then `rest` (rungs, push options…).
pub fn light_profile(name: &str, fragment_secs: u32, timecode: &str, rest: &str) -> String {
    format!(
        r#"
[channel]
name = "{name}"
rate = "25"
fragment_duration = "{fragment_secs}"

[timecode]
{timecode}

[video]
input = "synthetic"
width = 320
height = 180

[audio]
input = "synthetic"
bitrate = 64
channels = 2
sample_rate = 48000
{rest}"#
    )
}

/// Light rungs, ultrafast, no B-frames: `180p` (320x180, 300k) and `144p` (256x144, 200k),
/// each included when named in `names`.
pub fn light_rungs(names: &[&str]) -> String {
    [("180p", 320, 180, 300), ("144p", 256, 144, 200)]
        .iter()
        .filter(|r| names.contains(&r.0))
        .map(|(name, w, h, kbps)| {
            format!(
                "\n[[rung]]\nname = \"{name}\"\nwidth = {w}\nheight = {h}\nbitrate = {kbps}\n\
                 preset = \"ultrafast\"\nbframes = 0\n"
            )
        })
        .collect()
}
