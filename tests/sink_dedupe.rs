//! De-duplication by (track, tfxd time) across stream ids, connections and encoders: what makes
//! 1+1 redundancy and takeover testable.

mod sink_common;

use sink_common::*;
use smoothcast::sink::{self, SinkConfig, ViolationKind};

#[test]
fn same_body_on_two_stream_ids_keeps_every_fragment_once() {
    let s = sink::start(SinkConfig::default()).unwrap();
    let body = fixture(VALID);
    assert_eq!(
        post_chunked(s.addr(), "/live.isml/Streams(enc-a)", &body, 5000, 1).status(),
        Some(200)
    );
    assert_eq!(
        post_chunked(s.addr(), "/live.isml/Streams(enc-b)", &body, 5000, 2).status(),
        Some(200)
    );
    let rep = s.report();
    assert!(rep.violations.is_empty(), "{:#?}", rep.violations);
    for name in ["video", "audio"] {
        let t = rep.track("live", name).unwrap();
        assert_eq!((t.fragments, t.duplicates_dropped), (5, 5), "{t:?}");
        assert!(t.gaps.is_empty());
        assert_eq!(t.streams, vec!["enc-a".to_string(), "enc-b".to_string()]);
    }
}

#[test]
fn two_encoders_pushing_concurrently_yield_one_gapless_timeline() {
    let s = sink::start(SinkConfig::default()).unwrap();
    let body = fixture(VALID);
    let addr = s.addr();
    let threads: Vec<_> = (0..2)
        .map(|i| {
            let body = body.clone();
            std::thread::spawn(move || {
                post_chunked(
                    addr,
                    &format!("/live.isml/Streams(box{i})"),
                    &body,
                    700,
                    100 + i,
                )
                .status()
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), Some(200));
    }
    let rep = s.report();
    assert!(rep.violations.is_empty(), "{:#?}", rep.violations);
    for name in ["video", "audio"] {
        let t = rep.track("live", name).unwrap();
        assert_eq!(
            (t.fragments, t.duplicates_dropped, t.gaps.len()),
            (5, 5, 0),
            "{t:?}"
        );
    }
}

#[test]
fn gap_left_by_one_encoder_is_counted_then_filled_by_the_backup() {
    let s = sink::start(SinkConfig::default()).unwrap();
    let sp = split(&fixture(VALID));
    let f = &sp.fragments; // v0 a0 v1 a1 v2 a2 v3 a3 v4 a4
    let primary = [
        &sp.header[..],
        &f[0],
        &f[1],
        &f[2],
        &f[3],
        &f[6],
        &f[7],
        &f[8],
        &f[9],
    ]
    .concat();
    assert_eq!(
        post_chunked(s.addr(), "/live.isml/Streams(primary)", &primary, 5000, 1).status(),
        Some(200)
    );
    let rep = s.report();
    let v = rep.track("live", "video").unwrap();
    assert_eq!(v.gaps.len(), 1);
    assert_eq!((v.gaps[0].from, v.gaps[0].to), (40_666_667, 60_666_667));
    // The gap inside one connection is recorded, but not fatal.
    let disc: Vec<_> = rep
        .violations
        .iter()
        .filter(|v| v.kind == ViolationKind::Discontinuity)
        .collect();
    assert_eq!(disc.len(), 2, "{:#?}", rep.violations);
    assert!(disc.iter().all(|v| v.status.is_none()));

    let backup = [&sp.header[..], &f[4], &f[5]].concat();
    assert_eq!(
        post_chunked(s.addr(), "/live.isml/Streams(backup)", &backup, 5000, 2).status(),
        Some(200)
    );
    let rep = s.report();
    for name in ["video", "audio"] {
        let t = rep.track("live", name).unwrap();
        assert_eq!(
            (t.fragments, t.gaps.len(), t.duplicates_dropped),
            (5, 0, 0),
            "{t:?}"
        );
    }
    // The archive-order-independent manifest shows one contiguous run.
    let m = s.client_manifest("live").unwrap();
    assert_eq!(m.matches(" t=\"").count(), 2, "one t= per StreamIndex: {m}");
}
