//! Profiles: every shipped profile loads with the right derived values, every broken profile in
//! tests/invalid_profiles/ fails with exactly the error in its `.err` file, and credentials never
//! reach the printed plan.
//!
//! To regenerate the `.err` files after an intended message change, run with
//! `SMOOTHCAST_BLESS=1` and review the diff.

use proptest::prelude::*;
use smoothcast::profile::{self, AudioInput, Plan, PushMode, Role, TimecodeSpec, VideoInput};
use std::path::{Path, PathBuf};

fn load(rel: &str) -> Plan {
    match profile::load(Path::new(rel)) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

fn files_in(dir: &str, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    v
}

#[test]
fn every_invalid_profile_fails_with_its_exact_error() {
    // Cargo runs integration tests from the package root, so these relative paths are also
    // the origins the errors print.
    let cases = files_in("tests/invalid_profiles", "toml");
    assert!(cases.len() >= 20, "only {} invalid profiles", cases.len());
    let bless = std::env::var_os("SMOOTHCAST_BLESS").is_some();
    let mut failures = Vec::new();
    for case in &cases {
        let err_path = case.with_extension("err");
        let got = match profile::load(case) {
            Ok(_) => "<loaded without error>".to_owned(),
            Err(e) => e.to_string(),
        };
        if bless {
            std::fs::write(&err_path, format!("{got}\n")).unwrap_or_else(|e| panic!("{e}"));
            continue;
        }
        let want = std::fs::read_to_string(&err_path)
            .unwrap_or_else(|e| panic!("{}: {e}", err_path.display()));
        if got != want.trim_end() {
            failures.push(format!(
                "{}\n  want: {}\n  got:  {got}",
                case.display(),
                want.trim_end()
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn every_expected_error_has_its_profile_and_names_it() {
    for err in files_in("tests/invalid_profiles", "err") {
        let toml = err.with_extension("toml");
        assert!(toml.exists(), "{} has no profile", err.display());
        let text = std::fs::read_to_string(&err).unwrap_or_else(|e| panic!("{e}"));
        let origin = format!("{}: ", toml.display());
        assert!(
            text.starts_with(&origin),
            "{} must start with {origin}",
            err.display()
        );
        assert_eq!(text.trim_end().lines().count(), 1, "{}", err.display());
    }
}

#[test]
fn errors_expose_the_field_path() {
    let e = profile::load(Path::new("tests/invalid_profiles/01-fractional-gop.toml"))
        .err()
        .unwrap_or_else(|| panic!("fractional GOP accepted"));
    assert_eq!(e.field(), "channel.fragment_duration");
    assert_eq!(e.origin(), "tests/invalid_profiles/01-fractional-gop.toml");
    let e = profile::from_toml("[channel]\nname = 3\n", "inline")
        .err()
        .unwrap_or_else(|| panic!("accepted"));
    assert_eq!(e.field(), "channel.name");
    assert!(e.to_string().starts_with("inline: channel.name: "), "{e}");
}

#[test]
fn missing_file_error_names_the_file() {
    let e = profile::load(Path::new("profiles/does-not-exist.toml"))
        .err()
        .unwrap_or_else(|| panic!("loaded a missing file"));
    assert_eq!(e.field(), "");
    assert!(
        e.to_string().starts_with("profiles/does-not-exist.toml: "),
        "{e}"
    );
}

#[test]
fn every_shipped_profile_loads_and_describes() {
    let shipped = files_in("profiles", "toml");
    let names: Vec<String> = shipped
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    for want in [
        "demo.toml",
        "studio-1080p.toml",
        "webcam-720p.toml",
        "file-rehearsal.toml",
        "bench-ladder3.toml",
    ] {
        assert!(names.iter().any(|n| n == want), "profiles/{want} missing");
    }
    for p in &shipped {
        let plan = profile::load(p).unwrap_or_else(|e| panic!("{e}"));
        let text = profile::describe(&plan);
        assert!(
            text.contains(&format!("GOP of {} frames", plan.fragments.gop)),
            "{text}"
        );
    }
}

#[test]
fn gop_length_is_fragment_duration_times_rate() {
    for (file, gop, rate) in [
        ("profiles/demo.toml", 60, "30"),
        ("profiles/studio-1080p.toml", 50, "25"),
        ("profiles/webcam-720p.toml", 60, "30000/1001"),
        ("profiles/file-rehearsal.toml", 60, "30000/1001"),
        ("profiles/bench-ladder3.toml", 60, "30"),
    ] {
        let plan = load(file);
        assert_eq!(plan.fragments.gop, gop, "{file}");
        assert_eq!(plan.rate.to_string(), rate, "{file}");
        let frames = plan
            .rate
            .whole_frames_in(plan.fragment_secs.0, plan.fragment_secs.1);
        assert_eq!(frames, Some(gop), "{file}");
    }
    assert_eq!(load("profiles/webcam-720p.toml").fragment_secs, (1001, 500));
}

#[test]
fn demo_is_the_shipped_demo_profile_with_no_destinations() {
    let plan = profile::demo();
    assert_eq!(plan, load("profiles/demo.toml"));
    assert_eq!(plan.destinations, vec![]);
    assert_eq!(
        plan.video_input,
        VideoInput::Synthetic {
            width: 640,
            height: 360
        }
    );
    let ladder: Vec<(u32, u32, u32)> = plan
        .rungs
        .iter()
        .map(|r| (r.width, r.height, r.bitrate_kbps))
        .collect();
    assert_eq!(
        ladder,
        vec![(640, 360, 1200), (480, 270, 700), (320, 180, 400)]
    );
    assert_eq!(plan.timecode, TimecodeSpec::Clock);
}

#[test]
fn bench_ladder3_matches_the_benchmark_definition() {
    let plan = load("profiles/bench-ladder3.toml");
    assert_eq!(
        plan.video_input,
        VideoInput::Synthetic {
            width: 1280,
            height: 720
        }
    );
    assert_eq!(plan.rate.to_string(), "30");
    assert_eq!(plan.fragment_secs, (2, 1));
    let ladder: Vec<(u32, u32, u32, &str)> = plan
        .rungs
        .iter()
        .map(|r| (r.width, r.height, r.bitrate_kbps, r.preset.as_str()))
        .collect();
    assert_eq!(
        ladder,
        vec![
            (1280, 720, 3000, "veryfast"),
            (854, 480, 1500, "veryfast"),
            (640, 360, 800, "veryfast")
        ]
    );
    assert_eq!(plan.audio.bitrate_kbps, 128);
    assert_eq!(plan.audio_input, AudioInput::Synthetic);
}

#[test]
fn studio_tracks_streams_and_destinations_follow_the_resolution_rules() {
    let plan = load("profiles/studio-1080p.toml");
    let tracks: Vec<(u32, &str, &str)> = plan
        .rungs
        .iter()
        .map(|r| (r.track_id, r.track_name.as_str(), r.name.as_str()))
        .collect();
    assert_eq!(
        tracks,
        vec![
            (1, "video", "1080p"),
            (2, "video", "720p"),
            (3, "video", "540p"),
            (4, "video", "360p"),
            (5, "video", "234p")
        ]
    );
    assert_eq!(
        (plan.audio.track_id, plan.audio.track_name.as_str()),
        (6, "audio")
    );
    let streams: Vec<(&str, Vec<u32>)> = plan
        .streams
        .iter()
        .map(|s| (s.id.as_str(), s.track_ids.clone()))
        .collect();
    assert_eq!(
        streams,
        vec![
            ("studio1-1080p", vec![1]),
            ("studio1-720p", vec![2]),
            ("studio1-540p", vec![3]),
            ("studio1-360p", vec![4]),
            ("studio1-234p", vec![5]),
            ("studio1-audio", vec![6]),
            ("studio1-audio2", vec![6])
        ]
    );
    let roles: Vec<(&str, Role)> = plan
        .destinations
        .iter()
        .map(|d| (d.name.as_str(), d.role))
        .collect();
    assert_eq!(
        roles,
        vec![("origin-a", Role::Primary), ("origin-b", Role::Backup)]
    );
    assert_eq!(
        plan.video_input,
        VideoInput::Device {
            input: "sdi1".into()
        }
    );
    assert_eq!(plan.push.mode, PushMode::Hot);
    // Defaults: VBV buffer is two seconds of max_bitrate; send timeout 1.5 fragments.
    assert_eq!(plan.rungs[0].buffer_kbit, 13_200);
    assert_eq!(plan.push.send_timeout_secs, 3.0);
    assert_eq!(plan.rungs[4].bframes, 0, "baseline defaults to no B-frames");
    assert_eq!(plan.rungs[0].level.as_deref(), Some("4.1"));
}

#[test]
fn describe_shows_credentials_redacted_and_the_plan() {
    let plan = load("profiles/studio-1080p.toml");
    let text = profile::describe(&plan);
    assert!(!text.contains("change-me"), "password leaked:\n{text}");
    assert!(
        text.contains("https://encoder:***@origin-a.example.net/live/studio1.isml"),
        "{text}"
    );
    for needle in [
        "studio1",
        "25 fps",
        "GOP of 50 frames",
        "1920x1080",
        "6000k",
        "Streams(studio1-audio2)",
        "origin-b  backup",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    let row = text
        .lines()
        .find(|l| l.contains("1080p"))
        .unwrap_or_else(|| panic!("no 1080p row in:\n{text}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cells[..4], ["1", "video", "1080p", "1920x1080"], "{row}");
}

#[test]
fn rehearsal_paths_resolve_against_the_profile_directory() {
    let plan = load("profiles/file-rehearsal.toml");
    let media = Path::new("profiles").join("media/rehearsal.mp4");
    assert_eq!(
        plan.video_input,
        VideoInput::File {
            path: media.clone()
        }
    );
    assert_eq!(plan.audio_input, AudioInput::File { path: media });
    assert_eq!(
        plan.archive,
        Some(Path::new("profiles").join("archive/rehearsal"))
    );
    assert_eq!(
        plan.timecode,
        TimecodeSpec::Fixed {
            date: "2026-11-21".into(),
            timecode: "09:59:30;00".into()
        }
    );
}

const MINIMAL: &str = r#"
[channel]
name = "m"
rate = 25
fragment_duration = 2
[video]
input = "synthetic"
[audio]
input = "synthetic"
[[rung]]
name = "a"
width = 320
height = 180
bitrate = 300
"#;

#[test]
fn minimal_profile_gets_documented_defaults() {
    let plan = profile::from_toml(MINIMAL, "minimal").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(plan.timescale, 10_000_000);
    assert_eq!(plan.timecode, TimecodeSpec::Clock);
    assert_eq!(
        plan.video_input,
        VideoInput::Synthetic {
            width: 320,
            height: 180
        }
    );
    let r = &plan.rungs[0];
    assert_eq!((r.max_bitrate_kbps, r.buffer_kbit), (300, 600));
    assert_eq!(
        (r.preset.as_str(), r.profile.as_str(), r.bframes),
        ("veryfast", "high", 2)
    );
    assert_eq!(
        (r.tune.clone(), r.level.clone(), r.threads),
        (None, None, 0)
    );
    let a = &plan.audio;
    assert_eq!(
        (a.bitrate_kbps, a.channels, a.sample_rate),
        (128, 2, 48_000)
    );
    assert_eq!(a.channel_map, vec![1, 2]);
    let p = &plan.push;
    assert_eq!(p.mode, PushMode::Hot);
    assert_eq!((p.replay_window_secs, p.connect_timeout_secs), (10.0, 10.0));
    assert_eq!((p.send_timeout_secs, p.max_backoff_secs), (3.0, 30.0));
    assert_eq!((p.queue_fragments, p.send_eos), (8, false));
    assert_eq!(plan.archive, None);
    let ids: Vec<&str> = plan.streams.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["m-a", "m-audio"]);
}

#[test]
fn single_layout_carries_every_track_in_one_stream() {
    let text = format!("{MINIMAL}\n[streams]\nlayout = \"single\"\n");
    let plan = profile::from_toml(&text, "single").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(plan.streams.len(), 1);
    assert_eq!(plan.streams[0].id, "m");
    assert_eq!(plan.streams[0].track_ids, vec![1, 2]);
}

#[test]
fn long_fragments_get_a_replay_window_of_two_fragments() {
    let text = MINIMAL.replace("fragment_duration = 2", "fragment_duration = 6");
    let plan = profile::from_toml(&text, "six").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(plan.push.replay_window_secs, 12.0);
    assert_eq!(plan.push.send_timeout_secs, 9.0);
}

#[test]
fn fixed_timecode_without_date_uses_todays_utc_date() {
    let text = format!("{MINIMAL}\n[timecode]\nsource = \"fixed\"\nstart = \"10:00:00:00\"\n");
    let plan = profile::from_toml(&text, "fixed").unwrap_or_else(|e| panic!("{e}"));
    let TimecodeSpec::Fixed { date, timecode } = plan.timecode else {
        panic!("not fixed")
    };
    assert_eq!(timecode, "10:00:00:00");
    let today = chrono::Utc::now()
        .date_naive()
        .format("%Y-%m-%d")
        .to_string();
    assert_eq!(date, today);
}

#[test]
fn destinations_without_names_are_named_by_role() {
    let text = format!(
        "{MINIMAL}\n[[destination]]\nrole = \"primary\"\nurl = \"http://a/x.isml\"\n\
         [[destination]]\nrole = \"backup\"\nurl = \"http://b/x.isml\"\n\
         [[destination]]\nrole = \"backup\"\nurl = \"http://c/x.isml\"\n"
    );
    let plan = profile::from_toml(&text, "dests").unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = plan.destinations.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["primary", "backup", "backup2"]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// The loader sees hand-edited files: any edit of a valid profile either loads or yields a
    /// one-line error naming the origin — never a panic.
    #[test]
    fn edited_profiles_never_panic(
        cut in 0usize..2000,
        len in 0usize..40,
        insert in "[ -~\n]{0,12}",
    ) {
        let src = profile::DEMO_PROFILE;
        let start = cut.min(src.len());
        let end = (start + len).min(src.len());
        if src.is_char_boundary(start) && src.is_char_boundary(end) {
            let text = format!("{}{}{}", &src[..start], insert, &src[end..]);
            if let Err(e) = profile::from_toml(&text, "edited.toml") {
                let shown = e.to_string();
                prop_assert!(shown.starts_with("edited.toml: "), "{}", shown);
                prop_assert!(!shown.contains('\n'), "{}", shown);
            }
        }
    }
}
