//! A real Smooth Streaming client plays what the built-in publishing point serves during a live
//! run: GStreamer's `mssdemux` fetches the client manifest and fragments, and H.264 and AAC
//! decode for more than 10 s with no error.

mod common;
mod gst_common;

use gst_common::RawOut;
use smoothcast::channel::{self, RunOptions};
use smoothcast::profile;
use smoothcast::sink::{self, SinkConfig};
use smoothcast::time::SystemClocks;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn gstreamer_mssdemux_plays_a_live_ingest_for_10_seconds() {
    let sink = sink::start(SinkConfig::default()).expect("sink");
    let text = common::light_profile(
        "play",
        2,
        r#"source = "clock""#,
        &common::light_rungs(&["180p"]),
    );
    let mut plan = profile::from_toml(&text, "play.toml").expect("profile");
    let pubpoint = sink.url("/live/play.isml");
    plan.destinations = smoothcast::push::destinations_from_urls(std::slice::from_ref(&pubpoint));
    // Real time: the player follows a live edge that moves at the speed of the clock.
    let handle = channel::start(
        &plan,
        RunOptions {
            fast: false,
            duration_secs: Some(26.0),
            archive: None,
            push: true,
            clocks: SystemClocks::new(),
            inputs: Default::default(),
            start_fragment: None,
        },
    )
    .expect("channel starts");

    // Wait until the publishing point holds a few fragments of both tracks.
    let started = Instant::now();
    loop {
        let r = sink.report();
        if r.tracks.len() == 2 && r.tracks.iter().all(|t| t.fragments >= 2) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no fragments ingested: {r:#?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let manifest = format!("{pubpoint}/Manifest");
    let dir = tempfile::tempdir().expect("temp dir");
    let raw = RawOut::in_dir(dir.path());
    let (vs, aus) = (
        format!("{} sync=true", raw.video_sink()),
        format!("{} sync=true", raw.audio_sink()),
    );
    let location = format!("location={manifest}");
    // mssdemux hands out fragmented MP4: decodebin brings qtdemux + the decoder.
    let mut pipeline = vec!["souphttpsrc", &location, "!", "mssdemux", "name=d"];
    pipeline.extend(["d.video_00", "!", "queue", "!", "decodebin", "!"]);
    pipeline.extend(vs.split(' '));
    pipeline.extend(["d.audio_00", "!", "queue", "!", "decodebin", "!"]);
    pipeline.extend(aus.split(' '));
    let out = Command::new("timeout")
        .args(["-k", "5", "-s", "INT", "13", "gst-launch-1.0"])
        .args(&pipeline)
        .env("GST_DEBUG", "*:1")
        .output()
        .expect("gst-launch-1.0 is installed (scripts/install-deps)");
    let summary = handle.wait(Duration::from_secs(3));
    let report = sink.shutdown();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let (video, audio) = (raw.video_frames(), raw.audio_samples());
    let errors: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("ERROR") || l.contains("error:"))
        .collect();
    assert!(
        errors.is_empty(),
        "GStreamer reported errors:\n{}",
        errors.join("\n")
    );
    // More than 10 s of media decoded in real time: 25 fps video, 48 kHz audio.
    assert!(
        video >= 250,
        "decoded video frames: {video}\n{}",
        tail(&text)
    );
    assert!(
        audio >= 10 * 48_000,
        "decoded audio samples: {audio}\n{}",
        tail(&text)
    );
    assert!(summary.is_ok(), "{summary:?}");
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
