//! Fault injection, observed from a plain TCP client: reset after N bytes, status on the Nth
//! request, refusal for T seconds, stall, slow read, and the JSON control endpoint.

mod sink_common;

use std::io::Write;
use std::time::{Duration, Instant};

use sink_common::*;
use smoothcast::sink::{self, FaultKind, FaultRule, SinkConfig};

#[test]
fn reset_after_n_bytes_resets_the_post_once_then_the_retry_succeeds() {
    let s = sink::start(SinkConfig {
        faults: vec![FaultRule::new("Streams(r)", FaultKind::ResetAfterBytes(10_000)).times(1)],
        ..Default::default()
    })
    .unwrap();
    let body = fixture(VALID);
    let path = "/live.isml/Streams(r)";
    let first = post_chunked(s.addr(), path, &body, 4000, 1);
    assert!(
        matches!(first, Outcome::Reset | Outcome::Closed),
        "{first:?}"
    );
    let second = post_chunked(s.addr(), path, &body, 4000, 2);
    assert_eq!(second.status(), Some(200));
    let rep = s.report();
    let st = rep.stream("live", "r").unwrap();
    assert_eq!((st.connections, st.aborted, st.clean_ends), (2, 1, 1));
    assert!(
        st.bytes >= body.len() as u64 && st.bytes < body.len() as u64 + 10_000,
        "{}",
        st.bytes
    );
    assert_eq!(rep.faults_fired, 1);
    assert!(rep.violations.is_empty());
}

#[test]
fn status_is_answered_on_the_nth_matching_request_only() {
    let s = sink::start(SinkConfig::default()).unwrap();
    s.set_faults(vec![FaultRule::new(
        "Streams(v)",
        FaultKind::Status {
            code: 503,
            nth_request: 2,
        },
    )]);
    let path = "/live.isml/Streams(v)";
    assert_eq!(probe(s.addr(), path).status(), Some(200));
    assert_eq!(
        probe(s.addr(), "/live.isml/Streams(other)").status(),
        Some(200)
    );
    assert_eq!(probe(s.addr(), path).status(), Some(503));
    assert_eq!(probe(s.addr(), path).status(), Some(200));
    // A long POST hit by a status fault is answered before its body is read.
    s.set_faults(vec![FaultRule::new(
        "",
        FaultKind::Status {
            code: 403,
            nth_request: 1,
        },
    )]);
    let r = post_chunked(s.addr(), path, &fixture(VALID), 8000, 3);
    assert_eq!(r.status(), Some(403));
    assert_eq!(s.report().stream("live", "v").unwrap().probes, 3);
}

#[test]
fn refuse_for_t_seconds_resets_requests_until_the_window_ends_but_not_control_paths() {
    let s = sink::start(SinkConfig::default()).unwrap();
    s.set_faults(vec![FaultRule::new("", FaultKind::RefuseFor { secs: 1 })]);
    let start = Instant::now();
    let o = probe(s.addr(), "/live.isml/Streams(a)");
    assert!(matches!(o, Outcome::Reset | Outcome::Closed), "{o:?}");
    assert_eq!(
        get(s.addr(), "/report").status(),
        Some(200),
        "control paths are exempt"
    );
    while start.elapsed() < Duration::from_millis(1100) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(probe(s.addr(), "/live.isml/Streams(a)").status(), Some(200));
}

#[test]
fn stall_stops_reading_and_never_answers() {
    let s = sink::start(SinkConfig::default()).unwrap();
    s.set_faults(vec![FaultRule::new(
        "Streams(st)",
        FaultKind::Stall { after_bytes: 5000 },
    )]);
    let body = fixture(VALID);
    let mut c = connect(s.addr());
    c.set_read_timeout(Some(Duration::from_millis(800)))
        .unwrap();
    send_head(
        &mut c,
        "POST",
        "/live.isml/Streams(st)",
        "Transfer-Encoding: chunked\r\n",
    )
    .unwrap();
    // Only part of the body: socket buffers would absorb all of it anyway.
    let part = &body[..100_000];
    let _ = write_chunked(&mut c, part, &random_chunks(part.len(), 3000, 1), false);
    assert!(matches!(read_response(&mut c), Outcome::Timeout));
    let st = s.report().stream("live", "st").map(|x| x.bytes).unwrap();
    assert!(
        st < 5000,
        "no more than 5000 wire bytes consumed, got {st} payload bytes"
    );
}

#[test]
fn slow_read_throttles_the_upload() {
    let s = sink::start(SinkConfig::default()).unwrap();
    let sp = split(&fixture(VALID));
    // Header + the first audio fragment: ~35 KB.
    let body = [&sp.header[..], &sp.fragments[1]].concat();
    // Fragment 1 is audio and starts the audio track; video has none, which is fine.
    s.set_faults(vec![FaultRule::new(
        "Streams(slow)",
        FaultKind::SlowRead {
            bytes_per_sec: 40_000,
        },
    )]);
    let t0 = Instant::now();
    assert_eq!(
        post_chunked(s.addr(), "/live.isml/Streams(slow)", &body, 4000, 1).status(),
        Some(200)
    );
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(600),
        "{} bytes at 40 kB/s took only {took:?}",
        body.len()
    );
    let t0 = Instant::now();
    assert_eq!(
        post_chunked(s.addr(), "/live.isml/Streams(fast)", &body, 4000, 1).status(),
        Some(200)
    );
    assert!(t0.elapsed() < Duration::from_millis(500));
}

#[test]
fn control_endpoint_installs_rules_from_json() {
    let s = sink::start(SinkConfig::default()).unwrap();
    let rules =
        r#"[{"path":"Streams(c)","kind":{"status":{"code":409,"nth_request":0}},"times":2}]"#;
    let mut c = connect(s.addr());
    send_head(
        &mut c,
        "POST",
        "/_sink/faults",
        &format!("Content-Length: {}\r\n", rules.len()),
    )
    .unwrap();
    c.write_all(rules.as_bytes()).unwrap();
    assert_eq!(read_response(&mut c).status(), Some(200));
    let listed = get(s.addr(), "/_sink/faults").response();
    let back: Vec<FaultRule> = serde_json::from_slice(&listed.body).unwrap();
    assert_eq!(
        back,
        vec![FaultRule::new(
            "Streams(c)",
            FaultKind::Status {
                code: 409,
                nth_request: 0
            }
        )
        .times(2)]
    );
    assert_eq!(probe(s.addr(), "/x.isml/Streams(c)").status(), Some(409));
    assert_eq!(probe(s.addr(), "/x.isml/Streams(c)").status(), Some(409));
    assert_eq!(probe(s.addr(), "/x.isml/Streams(c)").status(), Some(200));
    // Bad JSON is refused without changing anything.
    let mut c = connect(s.addr());
    send_head(&mut c, "POST", "/_sink/faults", "Content-Length: 5\r\n").unwrap();
    c.write_all(b"[{]}x").unwrap();
    assert_eq!(read_response(&mut c).status(), Some(400));
    let report = get(s.addr(), "/report").response();
    let rep: sink::Report = serde_json::from_slice(&report.body).unwrap();
    assert_eq!(rep.faults_fired, 2);
}
