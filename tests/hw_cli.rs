//! `smoothcast hw` and device inputs through the real binary on this machine (which has no
//! capture card and no sound card: the build machines are servers).

mod common;

use common::*;
use std::process::Command;

fn has_video_nodes() -> bool {
    std::fs::read_dir("/dev")
        .map(|rd| {
            rd.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("video"))
        })
        .unwrap_or(false)
}

#[test]
fn hw_listing_says_plainly_when_there_are_no_devices_and_exits_0() {
    let out = smoothcast_ok(&["hw"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("V4L2 video capture devices"), "{text}");
    assert!(text.contains("ALSA capture devices"), "{text}");
    if !has_video_nodes() {
        assert!(text.contains("no V4L2 devices found"), "{text}");
    }
    if !std::path::Path::new("/proc/asound/cards").exists() {
        assert!(text.contains("no ALSA capture devices found"), "{text}");
    }
}

#[test]
fn hw_json_has_the_same_content_machine_readably() {
    let out = smoothcast_ok(&["hw", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert!(v["video"].is_array() && v["audio"].is_array() && v["video_skipped"].is_array());
    if !has_video_nodes() {
        assert_eq!(v["video"].as_array().map(Vec::len), Some(0));
    }
}

#[test]
fn profile_for_another_box_is_refused_with_exit_2_naming_the_input() {
    let out = Command::new(bin())
        .args([
            "run",
            "profiles/studio-1080p.toml",
            "--fast",
            "--duration",
            "2",
            "--no-push",
        ])
        .env("SMOOTHCAST_HW_MAP", repo().join("hw/webcam-box.toml"))
        .current_dir(repo())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("no input \"sdi1\" for the video") && err.contains("webcam-box.toml"),
        "{err}"
    );
}

#[test]
fn webcam_channel_without_its_camera_runs_on_black_then_slate() {
    let dir = tempfile::tempdir().unwrap();
    // The webcam box's camera is not plugged in here: the channel must still start, keep
    // its timeline and show the loss fills, retrying the device in the background.
    let text = std::fs::read_to_string(repo().join("profiles/webcam-720p.toml"))
        .unwrap()
        .replace("input = \"usb-mic\"", "input = \"synthetic\"");
    let profile = write_profile(dir.path(), "webcam.toml", &text);
    let archive = dir.path().join("out");
    let out = Command::new(bin())
        .args(["run"])
        .arg(&profile)
        .args(["--fast", "--duration", "4", "--no-push", "--archive"])
        .arg(&archive)
        .env("SMOOTHCAST_HW_MAP", repo().join("hw/webcam-box.toml"))
        .current_dir(repo())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("/dev/smoothcast/webcam"),
        "the missing device is named: {err}"
    );
    let files = archive_files(&archive);
    let video = files
        .iter()
        .find(|f| f.to_string_lossy().ends_with("webcam-720p.ismv"))
        .expect("top rung archived");
    let parsed = parse_file(video);
    assert_eq!(parsed.fragments.len(), 2, "4 s = two 2.002 s fragments");
    assert_ffmpeg_decodes_cleanly(video);

    // The smallest rung, decoded: 1.5 s of black (the box's repeat_for + black_for; there is no
    // last picture to repeat), then the built-in slate.
    let small = files
        .iter()
        .find(|f| f.to_string_lossy().ends_with("webcam-270p.ismv"))
        .expect("bottom rung archived");
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(small)
        .args(["-f", "rawvideo", "-pix_fmt", "yuv420p", "-"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let (w, h) = (480usize, 270usize);
    let frame = w * h * 3 / 2;
    assert_eq!(
        out.stdout.len(),
        120 * frame,
        "two fragments of 60 pictures"
    );
    let mean = |i: usize| {
        let y = &out.stdout[i * frame..i * frame + w * h];
        y.iter().map(|&v| f64::from(v)).sum::<f64>() / y.len() as f64
    };
    let slate = smoothcast::capture::loss::builtin_slate(1280, 720);
    let slate_mean = slate[..1280 * 720]
        .iter()
        .map(|&v| f64::from(v))
        .sum::<f64>()
        / (1280.0 * 720.0);
    for i in 0..44 {
        assert!(
            (mean(i) - 16.0).abs() < 2.0,
            "picture {i} is black: {}",
            mean(i)
        );
    }
    for i in 46..120 {
        assert!(
            (mean(i) - slate_mean).abs() < 3.0,
            "picture {i} is the slate: {} vs {slate_mean}",
            mean(i)
        );
    }
}
