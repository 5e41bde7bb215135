//! 1+1: two boxes (two processes) run the same profile on the same timecode source (the
//! clock), started seconds apart, each with its own stream-id suffix. Every fragment they
//! share carries identical tfxd times, durations and mfhd sequence numbers, and identical
//! header boxes; SIGKILL either at a random moment and the sink's de-duplicated timeline of
//! every track has zero gaps.

mod common;

use common::cluster::{box_of, wait_for, Proc};
use smoothcast::piff::parse::parse_stream;
use smoothcast::sink::{self, SinkConfig};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// The bytes up to the last complete top-level box (a SIGKILLed box may leave half a box).
fn complete_prefix(b: &[u8]) -> &[u8] {
    let mut at = 0usize;
    let mut last_ok = 0usize;
    let mut before_moof = 0usize;
    while at + 8 <= b.len() {
        let size = u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize;
        if size < 8 || at + size > b.len() {
            break;
        }
        if &b[at + 4..at + 8] == b"moof" {
            before_moof = at;
        }
        at += size;
        last_ok = if &b[at - size + 4..at - size + 8] == b"moof" {
            before_moof
        } else {
            at
        };
    }
    &b[..last_ok]
}

/// Per stream id: (header bytes before the first moof, mfhd → (track, tfxd time, duration)).
type Archive = BTreeMap<String, (Vec<u8>, BTreeMap<u32, (u32, u64, u64)>)>;

fn read_archive(dir: &Path) -> Archive {
    let mut out = BTreeMap::new();
    for f in common::archive_files(dir) {
        let bytes = std::fs::read(&f).unwrap();
        let bytes = complete_prefix(&bytes);
        let parsed = parse_stream(bytes).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let header_end = bytes
            .windows(4)
            .position(|w| w == b"moof")
            .map_or(bytes.len(), |p| p - 4);
        let mut frags = BTreeMap::new();
        for fr in &parsed.fragments {
            let traf = &fr.moof.trafs[0];
            let tfxd = traf.tfxd.as_ref().expect("tfxd");
            frags.insert(
                fr.moof.sequence,
                (traf.track_id, tfxd.absolute_time, tfxd.duration),
            );
        }
        let stem = f.file_stem().unwrap().to_string_lossy().to_string();
        out.insert(stem, (bytes[..header_end].to_vec(), frags));
    }
    out
}

#[test]
fn pair_started_apart_shares_timestamps_and_survives_sigkill_of_either() {
    let dir = tempfile::tempdir().unwrap();
    let sink = sink::start(SinkConfig {
        max_arrivals: 100_000,
        ..SinkConfig::default()
    })
    .unwrap();
    let text = common::light_profile(
        "pair",
        1,
        r#"source = "clock""#,
        &common::light_rungs(&["180p", "144p"]),
    );
    let prof = common::write_profile(dir.path(), "pair.toml", &text);
    let prof = prof.display().to_string();
    let push = sink.url("/live/pair.isml");
    let spawn = |name: &str| {
        let archive = dir.path().join(format!("archive-{name}"));
        let archive = archive.display().to_string();
        let suffix = format!("-{name}");
        Proc::spawn(
            name,
            &[
                "run",
                &prof,
                "--push",
                &push,
                "--box-id",
                name,
                "--stream-suffix",
                &suffix,
                "--archive",
                &archive,
                "--no-control",
            ],
            dir.path(),
        )
    };
    let from = |name: &str| {
        let r = sink.report();
        r.arrivals
            .iter()
            .filter(|a| a.track == "video" && box_of(a) == name)
            .count()
    };
    let mut a = spawn("a");
    wait_for(Duration::from_secs(20), "a's first fragments", || {
        (from("a") >= 2).then_some(())
    });
    // Seconds apart, not on a fragment boundary.
    std::thread::sleep(Duration::from_millis(2000 + rand::random::<u64>() % 1000));
    let mut b = spawn("b");
    wait_for(Duration::from_secs(20), "b's fragments", || {
        (from("b") >= 2 * 3).then_some(())
    });
    // Kill either at a random moment; the other carries on alone.
    let kill_a = rand::random::<bool>();
    std::thread::sleep(Duration::from_millis(rand::random::<u64>() % 1000));
    let (killed, survivor) = if kill_a {
        (a.kill(), "b")
    } else {
        (b.kill(), "a")
    };
    let before = from(survivor);
    wait_for(Duration::from_secs(20), "the survivor's fragments", || {
        (from(survivor) >= before + 2 * 3).then_some(())
    });
    let r = sink.report();
    drop((a, b));

    // The de-duplicated timeline has no hole on any track.
    for t in r.tracks.iter().filter(|t| t.pubpoint == "live/pair") {
        assert!(
            t.gaps.is_empty(),
            "{} @{}: gaps {:?} (kill at {killed})",
            t.name,
            t.bitrate,
            t.gaps
        );
        assert!(t.duplicates_dropped > 0, "{}: both boxes delivered", t.name);
    }
    assert!(
        r.fatal_violations().next().is_none(),
        "violations: {:?}",
        r.violations
    );

    // Shared fragments: identical mfhd, tfxd time and duration; identical header boxes.
    let arch_a = read_archive(&dir.path().join("archive-a"));
    let arch_b = read_archive(&dir.path().join("archive-b"));
    assert_eq!(arch_a.len(), 3, "{:?}", arch_a.keys());
    for (stream, (head_a, frags_a)) in &arch_a {
        let mut shared = 0;
        let (head_b, frags_b) = &arch_b[stream];
        assert!(head_a == head_b, "{stream}: header boxes differ");
        for (seq, fa) in frags_a {
            if let Some(fb) = frags_b.get(seq) {
                assert_eq!(fa, fb, "{stream} fragment {seq}");
                shared += 1;
            }
        }
        // Same time ⇒ same sequence number, both ways.
        let by_time_a: BTreeMap<u64, u32> = frags_a.iter().map(|(s, f)| (f.1, *s)).collect();
        for (seq, f) in frags_b {
            if let Some(sa) = by_time_a.get(&f.1) {
                assert_eq!(sa, seq, "{stream}: time {} numbered differently", f.1);
            }
        }
        // Both pushed at least 3 video fragments per rung before the kill; the killed box's
        // archive may end one fragment short (its last write cut by SIGKILL).
        assert!(shared >= 2, "{stream}: only {shared} shared fragments");
    }
}
