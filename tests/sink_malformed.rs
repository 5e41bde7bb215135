//! Malformed ingest bodies get the status protocol.md §1.4 assigns (412 fragment before
//! header, 409 time going backwards, 415 unsupported codec, 400 anything else), are recorded as
//! violations, and never take the sink down: it keeps serving the next request.

mod sink_common;

use sink_common::*;
use smoothcast::sink::{self, SinkConfig, ViolationKind};

/// (start, end) of the first box with `fourcc` among the children of `buf[start..end]`.
fn child(buf: &[u8], start: usize, end: usize, fourcc: &[u8; 4]) -> (usize, usize) {
    let mut pos = start;
    while pos + 8 <= end {
        let size = u32::from_be_bytes(buf[pos..pos + 4].try_into().unwrap()) as usize;
        if &buf[pos + 4..pos + 8] == fourcc {
            return (pos, pos + size);
        }
        pos += size;
    }
    panic!("no {}", String::from_utf8_lossy(fourcc));
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

fn set_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

fn add_u32(b: &mut [u8], at: usize, delta: i64) {
    let v = (i64::from(u32_at(b, at)) + delta) as u32;
    set_u32(b, at, v);
}

/// Offsets inside a fragment (moof+mdat): (traf start, traf end, trun start, tfhd start).
fn layout(frag: &[u8]) -> (usize, usize, usize, usize) {
    let moof_end = u32_at(frag, 0) as usize;
    let (traf, traf_end) = child(frag, 8, moof_end, b"traf");
    let (trun, _) = child(frag, traf + 8, traf_end, b"trun");
    let (tfhd, _) = child(frag, traf + 8, traf_end, b"tfhd");
    (traf, traf_end, trun, tfhd)
}

/// The fragment without its tfxd (sizes and data_offset fixed, so only the tfxd is missing).
fn without_tfxd(frag: &[u8]) -> Vec<u8> {
    let (traf, traf_end, trun, _) = layout(frag);
    let (tfxd, tfxd_end) = child(frag, traf + 8, traf_end, b"uuid");
    let cut = tfxd_end - tfxd;
    let mut f = [&frag[..tfxd], &frag[tfxd_end..]].concat();
    let cut = -(cut as i64);
    add_u32(&mut f, 0, cut);
    add_u32(&mut f, traf, cut);
    add_u32(&mut f, trun + 16, cut);
    f
}

struct Case {
    name: &'static str,
    body: Vec<u8>,
    /// Send the terminating chunk (a clean end of body).
    terminate: bool,
    status: u16,
    kind: ViolationKind,
}

#[test]
fn malformed_bodies_get_their_status_and_the_sink_keeps_serving() {
    let s = sink::start(SinkConfig::default()).unwrap();
    let body = fixture(VALID);
    let sp = split(&body);
    let (h, f) = (&sp.header, &sp.fragments);
    let video0 = &f[0];
    let cat = |parts: &[&[u8]]| parts.concat();

    let mut not_idr = video0.clone();
    let (_, _, trun, tfhd) = layout(&not_idr);
    set_u32(&mut not_idr, trun + 20, 0x0101_0000); // first_sample_flags: non-sync
    let mut bad_offset = video0.clone();
    add_u32(&mut bad_offset, trun + 16, 1);
    let mut bad_track = video0.clone();
    set_u32(&mut bad_track, tfhd + 12, 9);
    let mut bad_duration = video0.clone();
    let n = u32_at(video0, 0) as usize; // tfxd is the last box of the moof
    bad_duration[n - 1] ^= 1;
    // Annex-B start codes instead of AVCC lengths in the IDR sample (protocol.md §7 item 14).
    let mut annexb = video0.clone();
    let first_size = u32_at(&annexb, trun + 28) as usize; // trun flags 0xb05: duration, size, cto
    let payload = u32_at(&annexb, 0) as usize + 8;
    let mut pos = payload;
    while pos < payload + first_size {
        let len = u32_at(&annexb, pos) as usize;
        set_u32(&mut annexb, pos, 1);
        pos += 4 + len;
    }
    let mut bad_brand = h.clone();
    bad_brand[8..12].copy_from_slice(b"mp42");
    let mut truncated = cat(&[h, video0]);
    truncated.truncate(truncated.len() - 1000);
    let ftyp_len = u32_at(h, 0) as usize;
    let manifest_len = u32_at(h, ftyp_len) as usize;
    let no_manifest = [&h[..ftyp_len], &h[ftyp_len + manifest_len..]].concat();
    let mut wvc1 = h.clone();
    let at = wvc1.windows(4).position(|w| w == b"H264").unwrap();
    wvc1[at..at + 4].copy_from_slice(b"WVC1");

    let cases = vec![
        Case {
            name: "garbage",
            body: b"this is not an mp4 body at all".to_vec(),
            terminate: true,
            status: 400,
            kind: ViolationKind::Malformed,
        },
        Case {
            name: "truncated box",
            body: truncated,
            terminate: true,
            status: 400,
            kind: ViolationKind::Malformed,
        },
        Case {
            name: "fragment before header",
            body: cat(&[video0, &f[1]]),
            terminate: true,
            status: 412,
            kind: ViolationKind::FragmentBeforeHeader,
        },
        Case {
            name: "moof without tfxd",
            body: cat(&[h, &without_tfxd(video0)]),
            terminate: true,
            status: 400,
            kind: ViolationKind::MissingTfxd,
        },
        Case {
            name: "time going backwards",
            body: cat(&[h, &f[2], &f[0]]),
            terminate: false,
            status: 409,
            kind: ViolationKind::TimeBackwards,
        },
        Case {
            name: "first sample not sync",
            body: cat(&[h, &not_idr]),
            terminate: true,
            status: 400,
            kind: ViolationKind::NotIdr,
        },
        Case {
            name: "Annex-B start codes in the IDR sample",
            body: cat(&[h, &annexb]),
            terminate: true,
            status: 400,
            kind: ViolationKind::NotIdr,
        },
        Case {
            name: "trun data_offset off by one",
            body: cat(&[h, &bad_offset]),
            terminate: true,
            status: 400,
            kind: ViolationKind::DataOffset,
        },
        Case {
            name: "undeclared track id",
            body: cat(&[h, &bad_track]),
            terminate: true,
            status: 400,
            kind: ViolationKind::TrackId,
        },
        Case {
            name: "tfxd duration mismatch",
            body: cat(&[h, &bad_duration]),
            terminate: true,
            status: 400,
            kind: ViolationKind::TfxdDuration,
        },
        Case {
            name: "wrong major brand",
            body: cat(&[&bad_brand, video0]),
            terminate: true,
            status: 400,
            kind: ViolationKind::Ftyp,
        },
        Case {
            name: "moov without live manifest",
            body: no_manifest,
            terminate: true,
            status: 400,
            kind: ViolationKind::BoxOrder,
        },
        Case {
            name: "unsupported FourCC",
            body: wvc1,
            terminate: true,
            status: 415,
            kind: ViolationKind::UnsupportedCodec,
        },
    ];
    for (i, c) in cases.iter().enumerate() {
        let path = format!("/bad.isml/Streams(case{i})");
        let mut conn = connect(s.addr());
        send_head(&mut conn, "POST", &path, "Transfer-Encoding: chunked\r\n").unwrap();
        let sizes = random_chunks(c.body.len(), 5000, i as u64);
        let _ = write_chunked(&mut conn, &c.body, &sizes, c.terminate);
        let r = read_response(&mut conn).response();
        assert_eq!(r.status, c.status, "{}: {}", c.name, r.text());
        let rep = s.report();
        let v = rep
            .violations
            .last()
            .unwrap_or_else(|| panic!("{}: no violation recorded", c.name));
        assert_eq!(
            (v.kind, v.status, v.stream.as_deref()),
            (c.kind, Some(c.status), Some(format!("case{i}").as_str())),
            "{}: {v:?}",
            c.name
        );
        // Still up: the next request is served.
        assert_eq!(
            get(s.addr(), "/report").status(),
            Some(200),
            "after {}",
            c.name
        );
    }
    // Bad chunked framing is an HTTP-level 400.
    let mut conn = connect(s.addr());
    send_head(
        &mut conn,
        "POST",
        "/bad.isml/Streams(framing)",
        "Transfer-Encoding: chunked\r\n",
    )
    .unwrap();
    std::io::Write::write_all(&mut conn, b"zz\r\nhello\r\n").unwrap();
    assert_eq!(read_response(&mut conn).status(), Some(400));
    assert_eq!(
        s.report().violations.last().unwrap().kind,
        ViolationKind::Http
    );
    // A malformed request head.
    let mut conn = connect(s.addr());
    std::io::Write::write_all(&mut conn, b"BLAH\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut conn).status(), Some(400));

    // And a valid body is still ingested afterwards, on a fresh publishing point.
    assert_eq!(
        post_chunked(s.addr(), "/good.isml/Streams(v)", &body, 4096, 1).status(),
        Some(200)
    );
    let rep = s.report();
    assert_eq!(rep.track("good", "video").unwrap().fragments, 5);
    assert!(rep.violations.iter().all(|v| v.pubpoint == "bad"));
}

#[test]
fn header_changed_on_reconnect_is_a_violation_and_the_original_header_still_works() {
    let s = sink::start(SinkConfig::default()).unwrap();
    let body = fixture(VALID);
    let path = "/live.isml/Streams(x)";
    assert_eq!(
        post_chunked(s.addr(), path, &body, 9000, 1).status(),
        Some(200)
    );
    let mut changed = body.clone();
    changed[12..16].copy_from_slice(&513u32.to_be_bytes()); // ftyp minor_version 512 -> 513
    let r = post_chunked(s.addr(), path, &changed, 9000, 2).response();
    assert_eq!(r.status, 400, "{}", r.text());
    let rep = s.report();
    let v = rep.violations.last().unwrap();
    assert_eq!(
        (v.kind, v.stream.as_deref()),
        (ViolationKind::HeaderChanged, Some("x"))
    );
    // Reconnecting with the original header is fine: everything is a duplicate.
    assert_eq!(
        post_chunked(s.addr(), path, &body, 9000, 3).status(),
        Some(200)
    );
    let rep = s.report();
    let st = rep.stream("live", "x").unwrap();
    assert_eq!(
        (
            st.connections,
            st.reconnects,
            st.rejected,
            st.clean_ends,
            st.violations
        ),
        (3, 2, 1, 2, 1)
    );
    let t = rep.track("live", "video").unwrap();
    assert_eq!((t.fragments, t.duplicates_dropped, t.reconnects), (5, 5, 1));
}

#[test]
fn same_track_with_other_codec_config_on_another_stream_is_a_conflict() {
    let s = sink::start(SinkConfig::default()).unwrap();
    let body = fixture(VALID);
    assert_eq!(
        post_chunked(s.addr(), "/live.isml/Streams(a)", &body, 9000, 1).status(),
        Some(200)
    );
    // Same audio track name and bitrate, but a different AudioSpecificConfig in both the
    // manifest and esds (so the header itself is consistent).
    let mut other = body.clone();
    let hdr_len = split(&body).header.len();
    let text = other.windows(10).position(|w| w == b"118856E500").unwrap();
    other[text..text + 4].copy_from_slice(b"1190");
    let esds = other[..hdr_len]
        .windows(5)
        .position(|w| w == [0x11, 0x88, 0x56, 0xE5, 0x00])
        .unwrap();
    other[esds + 1] = 0x90;
    let r = post_chunked(s.addr(), "/live.isml/Streams(b)", &other, 9000, 2).response();
    assert_eq!(r.status, 400, "{}", r.text());
    let rep = s.report();
    let v = rep.violations.last().unwrap();
    assert_eq!(
        (v.kind, v.track.as_deref()),
        (ViolationKind::TrackConflict, Some("audio@128000"))
    );
}
