//! Live ingest end to end: the real encoder pushes to the built-in publishing point over real
//! sockets on 127.0.0.1, and the sink's report says what arrived.

mod common;

use common::*;
use smoothcast::channel::{self, RunOptions, RunSummary};
use smoothcast::profile::{self, Plan, PushMode};
use smoothcast::push::SessionState;
use smoothcast::sink::{self, FaultKind, FaultRule, Report, SinkConfig, SinkHandle};
use smoothcast::time::SystemClocks;
use std::path::Path;
use std::time::Duration;

/// A light two-rung channel with 1 s fragments (fixed timecode: reproducible timestamps).
fn plan(name: &str) -> Plan {
    let text = common::light_profile(
        name,
        1,
        "source = \"fixed\"\ndate = \"2026-11-21\"\nstart = \"10:00:00:00\"",
        &format!(
            "{}\n[push]\nqueue_fragments = 64\nmax_backoff = 1\n",
            common::light_rungs(&["180p", "144p"])
        ),
    );
    profile::from_toml(&text, name).expect("test profile is valid")
}

fn start_sink(dir: &Path) -> SinkHandle {
    sink::start(SinkConfig {
        archive: Some(dir.join("sink")),
        ..SinkConfig::default()
    })
    .expect("sink starts on an ephemeral port")
}

/// Runs `plan` for `secs` of media, fast, pushing to its destinations.
fn run(plan: &Plan, secs: f64) -> RunSummary {
    let handle = channel::start(
        plan,
        RunOptions {
            fast: true,
            duration_secs: Some(secs),
            archive: None,
            push: true,
            clocks: SystemClocks::new(),
            inputs: Default::default(),
            start_fragment: None,
        },
    )
    .expect("channel starts");
    handle.wait(Duration::from_secs(4)).expect("channel runs")
}

fn tracks_of<'a>(r: &'a Report, pubpoint: &str) -> Vec<&'a smoothcast::sink::TrackReport> {
    r.tracks
        .iter()
        .filter(|t| t.pubpoint.contains(pubpoint))
        .collect()
}

/// Every track of `pubpoint` holds `fragments` fragments with no gap.
fn assert_complete(r: &Report, pubpoint: &str, tracks: usize, fragments: u64) {
    let t = tracks_of(r, pubpoint);
    assert_eq!(t.len(), tracks, "{pubpoint}: tracks in the sink: {r:#?}");
    for tr in t {
        assert!(
            tr.gaps.is_empty(),
            "{pubpoint}/{}: gaps {:?}",
            tr.name,
            tr.gaps
        );
        assert_eq!(
            tr.fragments, fragments,
            "{pubpoint}/{} {}: fragments",
            tr.name, tr.bitrate
        );
    }
}

#[test]
fn probe_then_chunked_post_per_stream() {
    let dir = tempfile::tempdir().unwrap();
    let sink = start_sink(dir.path());
    let mut p = plan("probe");
    p.destinations = smoothcast::push::destinations_from_urls(&[sink.url("/live/probe.isml")]);
    let summary = run(&p, 6.0);
    let report = sink.shutdown();
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
    assert_complete(&report, "probe", 3, 6);
    assert_eq!(
        report.streams.len(),
        3,
        "one POST per track: {:#?}",
        report.streams
    );
    for s in &report.streams {
        assert!(
            s.probes >= 1,
            "{}: an empty probe POST came first",
            s.stream
        );
        assert_eq!(
            s.clean_ends, 1,
            "{}: the chunked POST ended with 0\\r\\n\\r\\n",
            s.stream
        );
        assert_eq!(s.aborted, 0);
    }
    for s in &summary.sessions {
        assert_eq!(s.reconnects, 0, "{s:?}");
    }
    // The sink archived what it ingested; FFmpeg decodes it cleanly.
    let archived: Vec<_> = report
        .tracks
        .iter()
        .filter_map(|t| t.archive.clone())
        .collect();
    assert_eq!(archived.len(), 3);
    for a in archived {
        assert_ffmpeg_decodes_cleanly(Path::new(&a));
    }
}

#[test]
fn primary_reset_mid_fragment_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let sink = start_sink(dir.path());
    // Reset the primary's 180p POST part-way into a fragment.
    sink.set_faults(vec![FaultRule::new(
        "primary.isml/Streams(reset-180p)",
        FaultKind::ResetAfterBytes(60_000),
    )
    // The empty probe matches the rule too and uses up one firing.
    .times(2)]);
    let mut p = plan("reset");
    p.destinations = smoothcast::push::destinations_from_urls(&[
        sink.url("/live/primary.isml"),
        sink.url("/live/backup.isml"),
    ]);
    let summary = run(&p, 8.0);
    let report = sink.shutdown();
    assert!(report.faults_fired >= 1, "the reset happened");
    assert_complete(&report, "primary", 3, 8);
    assert_complete(&report, "backup", 3, 8);
    let reset_stream = report
        .streams
        .iter()
        .find(|s| s.pubpoint.contains("primary") && s.stream == "reset-180p")
        .expect("primary 180p stream");
    assert!(reset_stream.connections >= 2, "{reset_stream:?}");
    assert_eq!(reset_stream.aborted, 1, "{reset_stream:?}");
    assert_eq!(reset_stream.clean_ends, 1, "{reset_stream:?}");
    let session = summary
        .sessions
        .iter()
        .find(|s| s.destination == "primary" && s.stream_id == "reset-180p")
        .expect("session status");
    assert!(session.reconnects >= 1, "{session:?}");
    assert!(
        report.violations.is_empty(),
        "headers were byte-identical on every reconnect: {:#?}",
        report.violations
    );
}

#[test]
fn backup_403_does_not_stall_primary() {
    let dir = tempfile::tempdir().unwrap();
    let sink = start_sink(dir.path());
    sink.set_faults(vec![FaultRule::new(
        "backup.isml",
        FaultKind::Status {
            code: 403,
            nth_request: 0,
        },
    )]);
    let mut p = plan("forbid");
    p.destinations = smoothcast::push::destinations_from_urls(&[
        sink.url("/live/primary.isml"),
        sink.url("/live/backup.isml"),
    ]);
    let summary = run(&p, 6.0);
    let report = sink.shutdown();
    assert_complete(&report, "primary", 3, 6);
    assert!(tracks_of(&report, "backup")
        .iter()
        .all(|t| t.fragments == 0));
    for s in summary
        .sessions
        .iter()
        .filter(|s| s.destination != "primary")
    {
        assert!(s.forbidden >= 1, "403 counted: {s:?}");
        assert_eq!(s.last_http_status, Some(403));
    }
}

#[test]
fn status_412_makes_encoder_resend_headers() {
    let dir = tempfile::tempdir().unwrap();
    let sink = start_sink(dir.path());
    // The 2nd request to the audio stream is its long POST (the 1st is the probe).
    sink.set_faults(vec![FaultRule::new(
        "Streams(h412-audio)",
        FaultKind::Status {
            code: 412,
            nth_request: 2,
        },
    )]);
    let mut p = plan("h412");
    p.destinations = smoothcast::push::destinations_from_urls(&[sink.url("/live/h412.isml")]);
    let summary = run(&p, 5.0);
    let report = sink.shutdown();
    assert_complete(&report, "h412", 3, 5);
    let session = summary
        .sessions
        .iter()
        .find(|s| s.stream_id == "h412-audio")
        .expect("session status");
    assert!(session.reconnects >= 1, "{session:?}");
    let audio = report
        .streams
        .iter()
        .find(|s| s.stream == "h412-audio")
        .expect("audio stream");
    // The 412 answered the first long POST; a fresh probe and POST (headers again) followed.
    assert!(audio.probes >= 2, "{audio:?}");
    assert_eq!(audio.clean_ends, 1);
}

#[test]
fn failover_mode_uses_backup_only_while_primary_down() {
    let dir = tempfile::tempdir().unwrap();
    let sink = start_sink(dir.path());
    let mut p = plan("failover");
    p.push.mode = PushMode::Failover;
    p.destinations = smoothcast::push::destinations_from_urls(&[
        sink.url("/live/primary.isml"),
        sink.url("/live/backup.isml"),
    ]);
    let summary = run(&p, 5.0);
    let report = sink.shutdown();
    assert_complete(&report, "primary", 3, 5);
    assert!(
        tracks_of(&report, "backup")
            .iter()
            .all(|t| t.fragments == 0),
        "backup unused while the primary is up"
    );
    assert!(summary
        .sessions
        .iter()
        .filter(|s| s.destination != "primary")
        .all(|s| s.fragments_sent == 0 && s.state != SessionState::Failed));
}

/// The primary publishing point is unreachable for a whole minute (every connection reset
/// right after its request head), then comes back. The encoder never waits on it: the backup
/// gets every fragment on time, and when the primary returns the session reconnects, sends the
/// header again and resends its replay window (configured to cover the outage), so the
/// primary's timeline is complete too.
#[test]
fn primary_down_60s_then_back() {
    let dir = tempfile::tempdir().unwrap();
    let sink = start_sink(dir.path());
    sink.set_faults(vec![FaultRule::new(
        "/live/primary.isml",
        FaultKind::RefuseFor { secs: 60 },
    )]);
    let mut p = plan("outage");
    p.timecode = smoothcast::profile::TimecodeSpec::Clock;
    // The replay window covers the whole outage: everything the primary missed is resent.
    p.push.replay_window_secs = 90.0;
    p.destinations = smoothcast::push::destinations_from_urls(&[
        sink.url("/live/primary.isml"),
        sink.url("/live/backup.isml"),
    ]);
    let handle = channel::start(
        &p,
        RunOptions {
            fast: false,
            duration_secs: Some(66.0),
            ..RunOptions::new(SystemClocks::new())
        },
    )
    .expect("channel starts");
    let monitor = handle.monitor();
    // Half-way through the outage: the backup is live, the primary is reconnecting.
    std::thread::sleep(Duration::from_secs(30));
    let mid = monitor.status();
    assert!(mid
        .sessions
        .iter()
        .any(|s| s.destination == "backup" && s.state == SessionState::Live));
    assert!(mid
        .sessions
        .iter()
        .filter(|s| s.destination == "primary")
        .all(|s| s.state != SessionState::Live && s.reconnects > 0 && s.replay_depth >= 25));
    let summary = handle.wait(Duration::from_secs(10)).expect("channel runs");
    let report = sink.shutdown();
    assert_complete(&report, "backup", 3, 66);
    assert_complete(&report, "primary", 3, 66);
    for s in summary
        .sessions
        .iter()
        .filter(|s| s.destination == "primary")
    {
        assert_eq!(s.fragments_dropped, 0, "{}: nothing dropped", s.stream_id);
        assert!(s.reconnects > 5, "{}: kept retrying", s.stream_id);
    }
    assert!(
        report.fatal_violations().next().is_none(),
        "{:?}",
        report.violations
    );
}
