//! The sink ingests a real third-party producer's POST body (FFmpeg 5.1 `-f ismv`), replayed
//! as a probe + chunked POST with boxes spanning chunks, archives it decodably, and flags the
//! fixture with the negative audio tfxd time.

mod sink_common;

use sink_common::*;
use smoothcast::sink::{self, SinkConfig, ViolationKind};

fn sink_with_archive(dir: &std::path::Path) -> sink::SinkHandle {
    sink::start(SinkConfig {
        archive: Some(dir.to_path_buf()),
        archive_raw: true,
        ..Default::default()
    })
    .unwrap()
}

#[test]
fn valid_fixture_in_random_chunks_is_ingested_archived_and_decodable() {
    let dir = tempfile::tempdir().unwrap();
    let report_path = dir.path().join("report.json");
    let s = sink::start(SinkConfig {
        archive: Some(dir.path().to_path_buf()),
        archive_raw: true,
        report_file: Some(report_path.clone()),
        ..Default::default()
    })
    .unwrap();
    let body = fixture(VALID);
    let path = "/live.isml/Streams(test)";
    assert_eq!(probe(s.addr(), path).status(), Some(200));
    // Chunks of 1..=3000 bytes: every box of the fixture spans several chunks.
    let r = post_chunked(s.addr(), path, &body, 3000, 7).response();
    assert_eq!(r.status, 200, "{}", r.text());

    let rep = s.report();
    assert!(rep.violations.is_empty(), "{:#?}", rep.violations);
    assert_eq!(rep.tracks.len(), 2);
    let v = rep.track("live", "video").unwrap();
    assert_eq!(
        (v.bitrate, v.kind.as_str(), v.fragments),
        (600_000, "video", 5)
    );
    assert_eq!(
        (v.first_time, v.last_end),
        (Some(666_667), Some(100_666_667))
    );
    let a = rep.track("live", "audio").unwrap();
    assert_eq!(
        (a.bitrate, a.kind.as_str(), a.fragments),
        (128_000, "audio", 5)
    );
    assert_eq!(
        (a.first_time, a.last_end),
        (Some(453_334), Some(100_666_667))
    );
    for t in [v, a] {
        assert!(t.gaps.is_empty(), "{t:?}");
        assert_eq!(
            (
                t.duplicates_dropped,
                t.violations,
                t.connections,
                t.reconnects
            ),
            (0, 0, 1, 0)
        );
    }
    let st = rep.stream("live", "test").unwrap();
    assert_eq!(
        (
            st.probes,
            st.connections,
            st.clean_ends,
            st.mfra_seen,
            st.fragments
        ),
        (1, 1, 1, 1, 10)
    );
    assert_eq!(st.bytes as usize, body.len());

    // Archive: one file per track, decodable by FFmpeg without a single error line.
    for (t, ext) in [(v, "ismv"), (a, "isma")] {
        let p = dir
            .path()
            .join("live")
            .join(format!("{}_{}.{ext}", t.name, t.bitrate));
        assert_eq!(t.archive.as_deref(), Some(p.to_str().unwrap()));
        let (ok, stderr) = ffmpeg_decode(&p);
        assert!(
            ok && stderr.trim().is_empty(),
            "ffmpeg on {}: {stderr}",
            p.display()
        );
    }
    // Raw body capture is byte-identical to what was sent.
    assert_eq!(
        std::fs::read(dir.path().join("live/raw/test-1.mp4")).unwrap(),
        body
    );

    // The manifest presents the finished stream as not live; the report file is written on exit.
    assert_eq!(s.is_live("live"), Some(false));
    let fin = s.shutdown();
    let written: sink::Report =
        serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    assert_eq!(written, fin);
}

#[test]
fn probe_and_post_on_one_keep_alive_connection_and_content_length_body() {
    let dir = tempfile::tempdir().unwrap();
    let s = sink_with_archive(dir.path());
    let body = fixture(VALID);
    let (p, r) = probe_then_post(s.addr(), "/ka.isml/Streams(one)", &body, 65536, 3);
    assert_eq!(p.status(), Some(200));
    assert_eq!(r.status(), Some(200));
    // A chunked body with only the terminating chunk is a probe too.
    let empty = post_chunked(s.addr(), "/ka.isml/Streams(one)", &[], 1, 0);
    assert_eq!(empty.status(), Some(200));
    let st = s.report().stream("ka", "one").cloned().unwrap();
    assert_eq!((st.probes, st.connections, st.clean_ends), (2, 1, 1));
    assert_eq!(
        s.is_live("ka"),
        Some(false),
        "a probe does not reopen a finished stream"
    );
    let r = post_length(s.addr(), "/cl.isml/Streams(one)", &body).response();
    assert_eq!(r.status, 200, "{}", r.text());
    let rep = s.report();
    assert!(rep.violations.is_empty(), "{:#?}", rep.violations);
    assert_eq!(rep.track("ka", "video").unwrap().fragments, 5);
    assert_eq!(rep.track("cl", "audio").unwrap().fragments, 5);
}

#[test]
fn negative_audio_tfxd_fixture_is_rejected_naming_the_track_and_value() {
    let s = sink::start(SinkConfig::default()).unwrap();
    let body = fixture(NEGATIVE_AUDIO);
    let r = post_chunked(s.addr(), "/live.isml/Streams(neg)", &body, 20000, 11).response();
    assert_eq!(r.status, 400);
    assert!(r.text().contains("18446744073709338283"), "{}", r.text());
    let rep = s.report();
    let v: Vec<_> = rep
        .violations
        .iter()
        .filter(|v| v.kind == ViolationKind::NegativeTime)
        .collect();
    assert_eq!(v.len(), 1, "{:#?}", rep.violations);
    assert_eq!(v[0].track.as_deref(), Some("audio@128000"));
    assert_eq!(v[0].status, Some(400));
    assert!(
        v[0].detail.contains("18446744073709338283") && v[0].detail.contains("-213333"),
        "{}",
        v[0].detail
    );
    assert_eq!(rep.track("live", "audio").unwrap().violations, 1);
    // The video fragment before it was fine and kept.
    assert_eq!(rep.track("live", "video").unwrap().fragments, 1);
    assert_eq!(rep.stream("live", "neg").unwrap().rejected, 1);
}
