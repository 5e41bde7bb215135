//! Golden bytes: a fixed synthetic input (FORMAT_VERSION 2: drop-frame burnt-in timecode) produces a header and fragments whose digest is pinned.
//! When the output changes on purpose, bump `piff::FORMAT_VERSION` and update the digest here.

mod common;

use common::*;
use sha2::{Digest, Sha256};

const PROFILE: &str = r#"
[channel]
name = "golden"
rate = "30000/1001"
fragment_duration = "1.001"

[timecode]
source = "fixed"
date = "2026-11-21"
start = "12:00:00;00"

[video]
input = "synthetic"
width = 320
height = 180

[audio]
input = "synthetic"
bitrate = 64
channels = 2
sample_rate = 48000

[[rung]]
name = "180p"
width = 320
height = 180
bitrate = 250
preset = "veryfast"
bframes = 2
threads = 1
# x264's output depends on the instruction sets it uses: on an AVX-512 Xeon its default
# (AVX-512) code gave other bytes than on the AVX2 box the digest was pinned on; capped with
# "asm" at SSE4.2 (every x86-64-v2 CPU) or AVX/AVX2 it gives the pinned bytes again (SSE2
# alone gives yet others). So the cap makes the digest the same on every such box.
x264 = { "lookahead-threads" = "1", "asm" = "SSE4.2" }
"#;

/// (FORMAT_VERSION, sha256 of every archive file in name order).
const GOLDEN: (u32, &str) = (
    2,
    "b8ae0c84e69d5ae8024c71bd44c59f4acbbea8a4250c311c52fb0de1421cec9a",
);

#[test]
fn fixed_synthetic_input_produces_the_golden_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let profile = write_profile(dir.path(), "golden.toml", PROFILE);
    let archive = dir.path().join("out");
    let run = |out: &std::path::Path| {
        smoothcast_ok(&[
            "run",
            profile.to_str().unwrap(),
            "--fast",
            "--duration",
            "3",
            "--no-push",
            "--archive",
            out.to_str().unwrap(),
        ]);
        let mut h = Sha256::new();
        for f in archive_files(out) {
            h.update(f.file_name().unwrap().to_string_lossy().as_bytes());
            h.update(std::fs::read(&f).unwrap());
        }
        hex::encode(h.finalize())
    };
    let digest = run(&archive);
    assert_eq!(
        digest,
        run(&dir.path().join("again")),
        "output is deterministic"
    );
    assert_eq!(
        (smoothcast::piff::FORMAT_VERSION, digest.as_str()),
        GOLDEN,
        "the emitted bytes changed: if on purpose, bump piff::FORMAT_VERSION and pin the new digest"
    );
}
