//! What the sink serves to Smooth clients: the client manifest and the fragments as ingested
//! (plus a tfrf while live), bounded by the DVR window.

mod sink_common;

use sink_common::*;
use smoothcast::piff::boxes::TFRF_UUID;
use smoothcast::piff::parse::parse_moof;
use smoothcast::sink::{self, SinkConfig};

/// (t, d) of every `<c>` of the StreamIndex named `name`, with implicit t filled in.
fn chunks(manifest: &str, name: &str) -> Vec<(u64, u64)> {
    let doc = roxmltree::Document::parse(manifest).unwrap();
    let si = doc
        .descendants()
        .find(|n| n.has_tag_name("StreamIndex") && n.attribute("Name") == Some(name))
        .unwrap();
    let mut next = 0;
    si.children()
        .filter(|n| n.has_tag_name("c"))
        .map(|c| {
            let t = c.attribute("t").map_or(next, |t| t.parse().unwrap());
            let d: u64 = c.attribute("d").unwrap().parse().unwrap();
            next = t + d;
            (t, d)
        })
        .collect()
}

#[test]
fn served_fragments_are_the_ingested_bytes_and_the_manifest_lists_them() {
    let s = sink::start(SinkConfig::default()).unwrap();
    let body = fixture(VALID);
    let sp = split(&body);
    assert_eq!(
        post_chunked(s.addr(), "/live.isml/Streams(a)", &body, 6000, 9).status(),
        Some(200)
    );
    let m = get(s.addr(), "/live.isml/Manifest").response();
    assert_eq!(m.status, 200);
    let xml = m.text();
    let v = chunks(&xml, "video");
    let a = chunks(&xml, "audio");
    assert_eq!(v.len(), 5);
    assert_eq!(v[0], (666_667, 20_000_000));
    assert_eq!(a[0], (453_334, 19_626_666));
    // Fragments come back byte for byte (finished presentation: no tfrf added).
    for (i, (t, _)) in v.iter().enumerate() {
        let r = get(
            s.addr(),
            &format!("/live.isml/QualityLevels(600000)/Fragments(video={t})"),
        )
        .response();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, sp.fragments[2 * i], "video fragment {i}");
    }
    for (i, (t, _)) in a.iter().enumerate() {
        let r = get(
            s.addr(),
            &format!("/live.isml/QualityLevels(128000)/Fragments(audio={t})"),
        )
        .response();
        assert_eq!(r.body, sp.fragments[2 * i + 1], "audio fragment {i}");
    }
    for bad in [
        "/live.isml/QualityLevels(600000)/Fragments(video=1)",
        "/live.isml/QualityLevels(999)/Fragments(video=666667)",
        "/live.isml/QualityLevels(600000)/Fragments(nope=666667)",
        "/other.isml/Manifest",
        "/nothing",
    ] {
        assert_eq!(get(s.addr(), bad).status(), Some(404), "{bad}");
    }
}

#[test]
fn live_fragments_carry_a_tfrf_announcing_the_next_fragments() {
    let s = sink::start(SinkConfig::default()).unwrap();
    let body = fixture(VALID);
    let sp = split(&body);
    // No mfra: still live.
    assert_eq!(
        post_chunked(
            s.addr(),
            "/live.isml/Streams(a)",
            &body[..body.len() - 8],
            6000,
            9
        )
        .status(),
        Some(200)
    );
    let times = [666_667u64, 20_666_667, 40_666_667, 60_666_667, 80_666_667];
    for (i, t) in times.iter().enumerate() {
        let r = get(
            s.addr(),
            &format!("/live.isml/QualityLevels(600000)/Fragments(video={t})"),
        )
        .response();
        let ingested = &sp.fragments[2 * i];
        let moof_len = u32::from_be_bytes(r.body[..4].try_into().unwrap()) as usize;
        let moof = parse_moof(&r.body[..moof_len]).unwrap();
        let traf = &moof.trafs[0];
        assert_eq!(
            traf.children.last().map(String::as_str),
            Some("uuid:tfrf"),
            "{:?}",
            traf.children
        );
        assert_eq!(traf.tfxd.unwrap().absolute_time, *t);
        // The mdat is untouched and data_offset still points at its payload.
        assert_eq!(traf.data_offset, Some(moof_len as i32 + 8));
        let old_moof_len = u32::from_be_bytes(ingested[..4].try_into().unwrap()) as usize;
        assert_eq!(&r.body[moof_len..], &ingested[old_moof_len..]);
        // tfrf v1: count, then (time, duration) of up to two following fragments.
        let at = r.body.windows(16).position(|w| w == TFRF_UUID).unwrap() + 16;
        assert_eq!(r.body[at], 1, "tfrf version");
        let count = r.body[at + 4] as usize;
        let expect: Vec<(u64, u64)> = times[i + 1..]
            .iter()
            .take(2)
            .map(|t| (*t, 20_000_000))
            .collect();
        assert_eq!(count, expect.len());
        for (k, (et, ed)) in expect.iter().enumerate() {
            let e = at + 5 + 16 * k;
            let t = u64::from_be_bytes(r.body[e..e + 8].try_into().unwrap());
            let d = u64::from_be_bytes(r.body[e + 8..e + 16].try_into().unwrap());
            assert_eq!((t, d), (*et, *ed));
        }
    }
}

#[test]
fn dvr_window_bounds_memory_and_manifest_but_not_the_archive() {
    let dir = tempfile::tempdir().unwrap();
    let s = sink::start(SinkConfig {
        dvr_window_secs: 4,
        archive: Some(dir.path().to_path_buf()),
        ..Default::default()
    })
    .unwrap();
    let body = fixture(VALID);
    assert_eq!(
        post_chunked(s.addr(), "/live.isml/Streams(a)", &body, 6000, 9).status(),
        Some(200)
    );
    let xml = s.client_manifest("live").unwrap();
    assert_eq!(
        chunks(&xml, "video"),
        vec![(60_666_667, 20_000_000), (80_666_667, 20_000_000)]
    );
    assert_eq!(chunks(&xml, "audio").len(), 2);
    assert_eq!(
        get(
            s.addr(),
            "/live.isml/QualityLevels(600000)/Fragments(video=666667)"
        )
        .status(),
        Some(404)
    );
    assert_eq!(
        get(
            s.addr(),
            "/live.isml/QualityLevels(600000)/Fragments(video=60666667)"
        )
        .status(),
        Some(200)
    );
    let rep = s.report();
    assert_eq!(rep.track("live", "video").unwrap().fragments, 5);
    // A late resend of an evicted fragment is still recognised as a duplicate.
    assert_eq!(
        post_chunked(s.addr(), "/live.isml/Streams(b)", &body, 6000, 10).status(),
        Some(200)
    );
    let rep = s.report();
    assert!(rep.violations.is_empty(), "{:#?}", rep.violations);
    assert_eq!(rep.track("live", "video").unwrap().duplicates_dropped, 5);
    // The archive holds all 300 frames.
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(dir.path().join("live/video_600000.ismv"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "300");
}
