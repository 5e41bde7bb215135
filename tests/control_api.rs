//! The control API over real HTTP on 127.0.0.1, driving a real channel (x264, fdk-aac) that
//! pushes to an in-test publishing point: every endpoint, status consistent with what the
//! publishing point received, Prometheus output checked by our parser and by
//! `prometheus_client` (python3-prometheus-client), tokens.

mod control_common;

use control_common::{get_json, http, profile, wait_until, Ingest, Req};
use smoothcast::channel::RunOptions;
use smoothcast::control::api::{ChannelState, Severity, Status};
use smoothcast::control::{self, Supervisor};
use smoothcast::profile::{self, ControlPlan, ControlToken, Plan};
use smoothcast::time::timecode::timecode_of;
use smoothcast::time::{FrameIndex, SystemClocks};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

fn plan(text: &str) -> Plan {
    profile::from_toml(text, "test.toml").unwrap_or_else(|e| panic!("{e}"))
}

fn opts(fast: bool, duration: Option<f64>) -> RunOptions {
    RunOptions {
        fast,
        duration_secs: duration,
        archive: None,
        push: true,
        clocks: SystemClocks::new(),
        inputs: Default::default(),
        start_fragment: None,
    }
}

fn status(addr: SocketAddr) -> Status {
    let (code, _, body) = http(addr, "GET", "/status", &[]);
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

fn post(addr: SocketAddr, path: &str) -> (u16, serde_json::Value) {
    let (code, _, body) = http(addr, "POST", path, &[]);
    (
        code,
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("POST {path}: {e}: {body}")),
    )
}

/// The chunked POSTs to one stream of one publishing point.
fn posts_to(ingest: &Ingest, point: &str, stream: &str) -> Vec<Req> {
    let path = format!("/live/{point}.isml/Streams({stream})");
    ingest
        .posts()
        .into_iter()
        .filter(|r| r.path == path)
        .collect()
}

/// Parses the Prometheus text format strictly: HELP/TYPE before samples, one contiguous block
/// per family, valid names and label syntax, parseable values, no duplicate series, counters
/// ending in `_total`. Returns `series text → value`.
fn parse_prometheus(text: &str) -> BTreeMap<String, f64> {
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.chars().enumerate().all(|(i, c)| {
                c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
            })
    };
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut finished: Vec<String> = Vec::new();
    let mut current: Option<String> = None;
    let mut out = BTreeMap::new();
    for (no, line) in text.lines().enumerate() {
        let at = || format!("line {}: {line}", no + 1);
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let kw = parts.next().unwrap_or("");
            let name = parts.next().unwrap_or("").to_string();
            assert!(name_ok(&name), "bad metric name: {}", at());
            match kw {
                "HELP" => {
                    assert!(
                        !parts.next().unwrap_or("").is_empty(),
                        "empty HELP: {}",
                        at()
                    );
                    if current.as_deref() != Some(name.as_str()) {
                        if let Some(c) = current.take() {
                            finished.push(c);
                        }
                        assert!(!finished.contains(&name), "family {name} split: {}", at());
                        current = Some(name);
                    }
                }
                "TYPE" => {
                    let t = parts.next().unwrap_or("");
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&t),
                        "bad TYPE: {}",
                        at()
                    );
                    if t == "counter" {
                        assert!(name.ends_with("_total"), "counter without _total: {}", at());
                    }
                    assert!(
                        types.insert(name, t.into()).is_none(),
                        "TYPE twice: {}",
                        at()
                    );
                }
                _ => panic!("unknown comment: {}", at()),
            }
            continue;
        }
        assert!(!line.trim().is_empty(), "blank line: {}", at());
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{}", at()));
        let name = series.split('{').next().unwrap_or("");
        assert!(name_ok(name), "bad sample name: {}", at());
        assert_eq!(
            current.as_deref(),
            Some(name),
            "sample outside its family: {}",
            at()
        );
        assert!(types.contains_key(name), "no TYPE for {name}: {}", at());
        if let Some(labels) = series.strip_prefix(name).filter(|l| !l.is_empty()) {
            let inner = labels
                .strip_prefix('{')
                .and_then(|l| l.strip_suffix('}'))
                .unwrap_or_else(|| panic!("bad labels: {}", at()));
            // label="value" pairs; values may contain escaped quotes.
            let mut rest = inner;
            while !rest.is_empty() {
                let (k, after) = rest.split_once("=\"").unwrap_or_else(|| panic!("{}", at()));
                assert!(
                    name_ok(k) && !k.contains(':'),
                    "bad label name {k}: {}",
                    at()
                );
                let mut end = None;
                let mut esc = false;
                for (i, c) in after.char_indices() {
                    match (esc, c) {
                        (true, '\\' | '"' | 'n') => esc = false,
                        (true, _) => panic!("bad escape: {}", at()),
                        (false, '\\') => esc = true,
                        (false, '"') => {
                            end = Some(i);
                            break;
                        }
                        _ => {}
                    }
                }
                let end = end.unwrap_or_else(|| panic!("unterminated label: {}", at()));
                rest = &after[end + 1..];
                rest = rest.strip_prefix(',').unwrap_or(rest);
            }
        }
        let v: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v.parse().unwrap_or_else(|_| panic!("bad value: {}", at())),
        };
        assert!(
            out.insert(series.to_string(), v).is_none(),
            "duplicate series: {}",
            at()
        );
    }
    out
}

/// The same text through the reference parser of the Prometheus project
/// (python3-prometheus-client; scripts/install-deps installs it). Returns the sample count.
fn parse_with_prometheus_client(text: &str) -> usize {
    use std::io::Write;
    let mut child = std::process::Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import sys\nfrom prometheus_client.parser import text_string_to_metric_families as p\n\
             n = sum(len(f.samples) for f in p(sys.stdin.read()))\nprint(n)",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("/usr/bin/python3 (scripts/install-deps)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client rejected /metrics (install python3-prometheus-client):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn metric(m: &BTreeMap<String, f64>, series: &str) -> f64 {
    *m.get(series)
        .unwrap_or_else(|| panic!("no series {series} in {:#?}", m.keys().collect::<Vec<_>>()))
}

#[test]
fn status_and_metrics_after_a_run_match_what_the_publishing_point_received() {
    let ingest = Ingest::start();
    let plan = plan(&profile("api1", &[ingest.url("api1")], ""));
    let sup = Supervisor::new(plan.clone(), opts(true, Some(3.0)), None, None).unwrap();
    let server = control::serve(sup.clone(), &ControlPlan::default()).unwrap();
    let addr = server.addr();
    assert!(addr.ip().is_loopback());
    sup.start().unwrap();
    wait_until("the run ends", Duration::from_secs(60), || {
        sup.state() == ChannelState::Stopped
    });

    let st = status(addr);
    assert_eq!(st.api_version, 1);
    assert_eq!(st.channel, "api1");
    assert_eq!(st.role, "active");
    assert_eq!(st.state, ChannelState::Stopped);
    assert_eq!(st.runs, 1);
    assert_eq!(st.pid, std::process::id());
    assert!(st.last_error.is_none());
    assert!(st.alerts.is_empty(), "{:?}", st.alerts);

    // Inputs: 3 s at 25 fps, synthetic tone between its −30 dBFS floor and the beep.
    assert_eq!(st.input.video.kind, "synthetic");
    assert_eq!((st.input.video.width, st.input.video.height), (320, 180));
    assert_eq!(st.input.video.rate, "25/1");
    assert_eq!(st.input.video.frames, 75);
    assert_eq!(st.input.video.filled_frames, 0);
    assert_eq!(st.input.audio.channels, 2);
    let audio_secs = st.input.audio.samples as f64 / 48_000.0;
    assert!((2.9..3.1).contains(&audio_secs), "{audio_secs} s of audio");
    assert_eq!(st.input.audio.peak_dbfs.len(), 2);
    for (p, r) in st
        .input
        .audio
        .peak_dbfs
        .iter()
        .zip(&st.input.audio.rms_dbfs)
    {
        assert!((-31.0..=-5.0).contains(p), "peak {p}");
        assert!(r < p && *r > -40.0, "rms {r} vs peak {p}");
    }

    // Timecode: the latest picture is the last frame of the third fragment.
    let first = st.fragment.first_sequence.expect("first sequence");
    assert_eq!(st.fragment.gop_frames, 25);
    assert_eq!(st.fragment.duration_secs, 1.0);
    let last = FrameIndex((first + 3) * 25 - 1);
    assert_eq!(st.timecode.source, "clock");
    assert_eq!(st.timecode.frame_index, Some(last.0));
    let ((y, mo, d), tc) = timecode_of(last, plan.rate, false);
    assert_eq!(st.timecode.current, Some(tc.to_string()));
    assert_eq!(st.timecode.date, Some(format!("{y:04}-{mo:02}-{d:02}")));

    // Rungs and audio: every frame encoded, three fragments each.
    assert_eq!(st.rungs.len(), 2);
    for r in &st.rungs {
        assert_eq!(
            (r.frames, r.fragments, r.dropped, r.duplicated),
            (75, 3, 0, 0),
            "{r:?}"
        );
        assert!(r.bitrate_kbps.is_some_and(|b| b > 0.0), "{r:?}");
        assert_eq!(r.fps, None, "no rate once stopped");
    }
    assert_eq!(st.audio.fragments, 3);
    assert_eq!(st.audio.codec, "AAC-LC");
    let kbps = st.audio.bitrate_kbps.unwrap();
    assert!(
        (40.0..90.0).contains(&kbps),
        "audio {kbps} kbit/s for 64 kbit/s"
    );

    // Destinations × streams agree with what the publishing point got, byte for byte.
    assert_eq!(st.destinations.len(), 1);
    let d = &st.destinations[0];
    assert_eq!(
        (d.name.as_str(), d.role.as_str(), d.enabled),
        ("primary", "primary", true)
    );
    assert_eq!(d.url, ingest.url("api1"));
    assert_eq!(d.streams.len(), 3);
    for s in &d.streams {
        let posts = posts_to(&ingest, "api1", &s.stream_id);
        assert!(!posts.is_empty(), "no POST for {}", s.stream_id);
        assert!(
            posts.iter().all(|p| p.complete),
            "every POST ended with 0\\r\\n\\r\\n"
        );
        let bytes: usize = posts.iter().map(|p| p.body.len()).sum();
        let frags: Vec<(u32, u32)> = posts.iter().flat_map(Req::fragments).collect();
        assert_eq!(s.state, "stopped");
        assert_eq!(s.bytes, bytes as u64, "{}", s.stream_id);
        assert_eq!(s.fragments_sent, frags.len() as u64, "{}", s.stream_id);
        assert_eq!(frags.len(), 3, "{}: {frags:?}", s.stream_id);
        let lastf = *frags.last().unwrap();
        let lf = s.last_fragment.unwrap();
        assert_eq!((lf.track_id, lf.sequence), lastf);
        assert_eq!(u64::from(lastf.1), first + 2);
        assert_eq!(s.last_response, Some(200));
        assert_eq!(
            (s.reconnects, s.queue_depth, s.fragments_dropped),
            (0, 0, 0)
        );
        assert!(s.replay_depth >= 2, "{s:?}");
        assert!(s.last_error.is_none(), "{s:?}");
    }

    // /metrics: strictly valid, accepted by the Prometheus client library, equal to /status.
    let (code, headers, text) = http(addr, "GET", "/metrics", &[]);
    assert_eq!(code, 200);
    assert!(headers
        .iter()
        .any(|(n, v)| n == "content-type" && v.starts_with("text/plain; version=0.0.4")));
    let m = parse_prometheus(&text);
    assert_eq!(parse_with_prometheus_client(&text), m.len());
    assert_eq!(
        metric(
            &m,
            r#"smoothcast_channel_state{channel="api1",state="stopped"}"#
        ),
        1.0
    );
    assert_eq!(
        metric(
            &m,
            r#"smoothcast_channel_state{channel="api1",state="running"}"#
        ),
        0.0
    );
    assert_eq!(
        metric(
            &m,
            r#"smoothcast_rung_frames_total{channel="api1",rung="180p"}"#
        ),
        75.0
    );
    assert_eq!(
        metric(
            &m,
            r#"smoothcast_track_fragments_total{channel="api1",track="audio",track_id="3",kind="audio"}"#
        ),
        3.0
    );
    for s in &d.streams {
        let labels = format!(
            r#"channel="api1",destination="primary",stream="{}""#,
            s.stream_id
        );
        assert_eq!(
            metric(&m, &format!("smoothcast_push_sent_bytes_total{{{labels}}}")),
            s.bytes as f64
        );
        assert_eq!(
            metric(
                &m,
                &format!("smoothcast_push_fragments_sent_total{{{labels}}}")
            ),
            s.fragments_sent as f64
        );
        assert_eq!(
            metric(
                &m,
                &format!("smoothcast_push_last_response_status{{{labels}}}")
            ),
            200.0
        );
        assert_eq!(
            metric(
                &m,
                &format!(r#"smoothcast_push_session_state{{{labels},state="stopped"}}"#)
            ),
            1.0
        );
    }
    assert_eq!(
        metric(
            &m,
            r#"smoothcast_input_audio_peak_dbfs{channel="api1",input="synthetic",audio_channel="1"}"#
        ),
        f64::from(st.input.audio.peak_dbfs[0])
    );
    drop(server);
}

#[test]
fn operator_controls_stop_start_restart_and_switch_destinations_over_http() {
    let ingest = Ingest::start();
    let plan = plan(&profile("api2", &[ingest.url("a"), ingest.url("b")], ""));
    let sup = Supervisor::new(plan, opts(false, None), None, None).unwrap();
    let server = control::serve(sup.clone(), &ControlPlan::default()).unwrap();
    let addr = server.addr();

    // Before any run: stopped, unhealthy, and the index lists the endpoints.
    let (code, _, body) = http(addr, "GET", "/health", &[]);
    assert_eq!(code, 503, "{body}");
    assert!(get_json(addr, "/")["endpoints"]
        .as_array()
        .is_some_and(|e| e.len() == 10));
    // Fail-back is for N+M members only.
    let (code, doc) = post(addr, "/failback");
    assert_eq!(code, 409, "{doc}");
    assert!(
        doc["error"].as_str().is_some_and(|e| e.contains("--etcd")),
        "{doc}"
    );

    sup.start().unwrap();
    let both_live = |st: &Status| {
        st.destinations.iter().all(|d| {
            d.streams
                .iter()
                .all(|s| s.state == "live" && s.fragments_sent >= 2)
        })
    };
    wait_until("both destinations live", Duration::from_secs(20), || {
        let st = status(addr);
        st.ready && both_live(&st) && st.rungs.iter().all(|r| r.fps.is_some())
    });
    let st = status(addr);
    assert_eq!(st.state, ChannelState::Running);
    assert_eq!(st.input.video.state, "live");
    assert_eq!(st.input.audio.state, "live");
    assert!(st.timecode.current.is_some());
    for r in &st.rungs {
        let fps = r.fps.unwrap();
        assert!(
            (20.0..30.0).contains(&fps),
            "{} at {fps} fps in real time",
            r.name
        );
    }
    let health = get_json(addr, "/health");
    assert_eq!(health["status"], "ok");
    assert_eq!(health["ready"], true);

    // Disable the backup: its POSTs end cleanly, no new connection; the primary carries on.
    let (code, res) = post(addr, "/destinations/backup/disable");
    assert_eq!(
        (code, res["state"].as_str()),
        (200, Some("running")),
        "{res}"
    );
    wait_until("backup disabled", Duration::from_secs(10), || {
        let st = status(addr);
        st.destinations[1]
            .streams
            .iter()
            .all(|s| s.state == "disabled")
    });
    let b_posts = |ingest: &Ingest| {
        ingest
            .posts()
            .into_iter()
            .filter(|r| r.path.starts_with("/live/b.isml/"))
            .collect::<Vec<_>>()
    };
    wait_until("backup POSTs ended", Duration::from_secs(5), || {
        b_posts(&ingest).iter().all(|p| p.complete)
    });
    let closed = b_posts(&ingest).len();
    let primary_before = status(addr).destinations[0].streams[0].fragments_sent;
    std::thread::sleep(Duration::from_millis(2500));
    let st = status(addr);
    assert!(!st.destinations[1].enabled);
    assert!(st.destinations[0].streams[0].fragments_sent >= primary_before + 2);
    assert_eq!(
        b_posts(&ingest).len(),
        closed,
        "a disabled destination gets no POST"
    );
    assert!(st
        .alerts
        .iter()
        .any(|a| a.code == "destination_disabled" && a.destination.as_deref() == Some("backup")));
    assert_eq!(post(addr, "/destinations/nope/disable").0, 404);

    // Enable it again: new POSTs (header first, then the replay window), live.
    assert_eq!(post(addr, "/destinations/backup/enable").0, 200);
    wait_until("backup live again", Duration::from_secs(10), || {
        let st = status(addr);
        st.destinations[1].enabled && st.destinations[1].streams.iter().all(|s| s.state == "live")
    });
    assert!(b_posts(&ingest).len() > closed);

    // Stop: every POST ends cleanly, the process (here: the server) stays up.
    let (code, res) = post(addr, "/stop");
    assert_eq!(code, 200, "{res}");
    wait_until("stopped", Duration::from_secs(10), || {
        status(addr).state == ChannelState::Stopped
    });
    assert!(
        ingest.posts().iter().all(|p| p.complete),
        "every POST ended cleanly"
    );
    let st = status(addr);
    assert!(st.alerts.iter().any(|a| a.code == "channel_stopped"));
    let (code, _, body) = http(addr, "GET", "/health", &[]);
    assert_eq!(code, 503);
    assert!(body.contains("\"stopped\""), "{body}");
    let last_seq = |ingest: &Ingest| {
        ingest
            .posts()
            .iter()
            .filter(|p| p.complete)
            .flat_map(Req::fragments)
            .map(|f| f.1)
            .max()
            .unwrap_or(0)
    };
    let end_of_run1 = last_seq(&ingest);
    let posts_run1 = ingest.posts().len();

    // Start: a second run whose timeline continues after the first.
    let (code, res) = post(addr, "/start");
    assert_eq!(
        (code, res["state"].as_str()),
        (200, Some("running")),
        "{res}"
    );
    let st = status(addr);
    assert_eq!(st.runs, 2);
    assert!(st.fragment.first_sequence.unwrap() > u64::from(end_of_run1));

    // Restart: stop + start in one call.
    let (code, res) = post(addr, "/restart");
    assert_eq!(
        (code, res["state"].as_str()),
        (200, Some("running")),
        "{res}"
    );
    assert_eq!(status(addr).runs, 3);
    wait_until("third run pushing", Duration::from_secs(15), || {
        both_live(&status(addr))
    });
    assert!(ingest.posts().len() > posts_run1);

    // /profile: the running plan without secrets.
    let p = get_json(addr, "/profile");
    assert_eq!(p["channel"], "api2");
    assert_eq!(p["gop_frames"], 25);
    assert_eq!(p["destinations"][1]["name"], "backup");
    assert!(p["text"].as_str().unwrap().contains("Streams(api2-180p)"));

    // Method and path errors.
    let (code, headers, _) = http(addr, "GET", "/stop", &[]);
    assert_eq!(code, 405);
    assert!(headers.iter().any(|(n, v)| n == "allow" && v == "POST"));
    assert_eq!(http(addr, "GET", "/nope", &[]).0, 404);

    sup.shutdown(std::time::Instant::now() + Duration::from_secs(3));
    let exit = sup.wait_exit();
    assert!(!exit.failed, "{:?}", exit.error);
    assert!(
        ingest.posts().iter().all(|p| p.complete),
        "every POST ended cleanly"
    );
    drop(server);
}

#[test]
fn a_public_listen_address_needs_a_token_and_every_request_but_health_must_carry_it() {
    const TOKEN: &str = "0123456789abcdef-control";
    let any: SocketAddr = "0.0.0.0:0".parse().unwrap();
    let sup = Supervisor::new(
        plan(&profile("api3", &[], "")),
        opts(true, Some(1.0)),
        None,
        None,
    )
    .unwrap();

    let err = control::serve(
        sup.clone(),
        &ControlPlan {
            listen: any,
            token: None,
        },
    )
    .unwrap_err();
    assert!(err.is_bad_input());
    assert!(err.to_string().contains("token"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    let server = control::serve(
        sup.clone(),
        &ControlPlan {
            listen: any,
            token: Some(ControlToken::File(file)),
        },
    )
    .unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], server.addr().port()));
    let (code, headers, _) = http(addr, "GET", "/status", &[]);
    assert_eq!(code, 401);
    assert!(headers
        .iter()
        .any(|(n, v)| n == "www-authenticate" && v.starts_with("Bearer")));
    assert_eq!(
        http(
            addr,
            "GET",
            "/status",
            &[("Authorization", "Bearer wrong-token-0123456")]
        )
        .0,
        401
    );
    assert_eq!(
        http(addr, "POST", "/start", &[]).0,
        401,
        "actions need the token too"
    );
    let bearer = format!("Bearer {TOKEN}");
    let (code, _, body) = http(addr, "GET", "/status", &[("Authorization", &bearer)]);
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        http(addr, "GET", "/metrics", &[("Authorization", &bearer)]).0,
        200
    );
    // Health is open (load balancers, the standby agent): 503 because nothing runs.
    assert_eq!(http(addr, "GET", "/health", &[]).0, 503);
    drop(server);

    let short = dir.path().join("short");
    std::fs::write(&short, "tiny\n").unwrap();
    let err = control::serve(
        sup,
        &ControlPlan {
            listen: any,
            token: Some(ControlToken::File(short)),
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("16"), "{err}");
}

#[test]
fn a_refusing_publishing_point_keeps_the_channel_unready_and_raises_alerts() {
    let ingest = Ingest::start();
    ingest.set_probe_status(503);
    let plan = plan(&profile("api4", &[ingest.url("x")], ""));
    let sup = Supervisor::new(plan, opts(false, None), None, None).unwrap();
    let server = control::serve(sup.clone(), &ControlPlan::default()).unwrap();
    let addr = server.addr();
    sup.start().unwrap();
    wait_until(
        "fragments and a failed reconnect",
        Duration::from_secs(15),
        || {
            let st = status(addr);
            st.audio.fragments >= 1 && st.destinations[0].streams.iter().all(|s| s.reconnects >= 1)
        },
    );
    let st = status(addr);
    assert!(!st.ready, "no probe succeeded: not ready");
    assert!(st.destinations[0]
        .streams
        .iter()
        .all(|s| s.last_response == Some(503) && s.last_error.is_some()));
    assert!(
        st.alerts.iter().any(|a| a.code == "destination_down"),
        "{:?}",
        st.alerts
    );
    // Once the channel had time to connect, a stream no destination takes is lost output.
    wait_until("stream_not_delivered", Duration::from_secs(15), || {
        status(addr)
            .alerts
            .iter()
            .any(|a| a.code == "stream_not_delivered")
    });
    let alerts = status(addr).alerts;
    assert_eq!(alerts[0].severity, Severity::Critical, "{alerts:?}");
    assert_eq!(
        alerts
            .iter()
            .filter(|a| a.code == "stream_not_delivered")
            .count(),
        3,
        "one per stream: {alerts:?}"
    );
    // The encoder itself is healthy: a standby must not take over for an ingest outage.
    assert_eq!(get_json(addr, "/health")["status"], "ok");
    ingest.set_probe_status(0);
    wait_until(
        "ready once a probe succeeds",
        Duration::from_secs(10),
        || status(addr).ready,
    );
    sup.shutdown(std::time::Instant::now() + Duration::from_secs(3));
    assert!(!sup.wait_exit().failed);
    drop(server);
}

#[test]
fn a_new_run_with_a_fixed_timecode_continues_the_timeline_instead_of_resetting_it() {
    let ingest = Ingest::start();
    let text = profile(
        "api5",
        &[ingest.url("api5")],
        "\n[timecode]\nsource = \"fixed\"\nstart = \"10:00:00:00\"\ndate = \"2026-01-02\"\n",
    );
    let sup = Supervisor::new(plan(&text), opts(true, Some(2.0)), None, None).unwrap();
    let server = control::serve(sup.clone(), &ControlPlan::default()).unwrap();
    let addr = server.addr();
    let run = |expect_runs: u64| {
        let (code, res) = post(addr, "/start");
        assert_eq!(code, 200, "{res}");
        wait_until("the run ends", Duration::from_secs(60), || {
            let st = status(addr);
            st.runs == expect_runs && st.state == ChannelState::Stopped
        });
        status(addr)
    };
    let first = run(1);
    let second = run(2);
    // 10:00:00:00 at 25 fps on 2026-01-02, in 1 s fragments of 25 frames.
    let k0 = first.fragment.first_sequence.unwrap();
    assert_eq!(first.timecode.current.as_deref(), Some("10:00:01:24"));
    assert_eq!(second.fragment.first_sequence, Some(k0 + 2));
    assert_eq!(second.timecode.current.as_deref(), Some("10:00:03:24"));
    // The publishing point saw one increasing timeline, every POST ended cleanly.
    for stream in ["api5-180p", "api5-90p", "api5-audio"] {
        let seqs: Vec<u32> = posts_to(&ingest, "api5", stream)
            .iter()
            .inspect(|p| assert!(p.complete))
            .flat_map(Req::fragments)
            .map(|f| f.1)
            .collect();
        let want: Vec<u32> = (0..4).map(|i| (k0 + i) as u32).collect();
        assert_eq!(seqs, want, "{stream}");
    }
    drop(server);
}

#[test]
fn the_watchdog_is_not_fed_once_the_channel_failed() {
    use smoothcast::control::notify::Notifier;
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let rx = UnixDatagram::bind(&path).unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let notifier =
        Notifier::connect(path.to_str().unwrap(), Some(Duration::from_millis(200))).unwrap();
    // A device input this build cannot open: the run fails at start.
    let text = profile("api6", &[], "").replace(
        "input = \"synthetic\"\nwidth = 320",
        "input = \"sdi1\"\nwidth = 320",
    );
    let text = text.replace("width = 320\nheight = 180\n\n[audio]", "\n[audio]");
    let sup = Supervisor::new(plan(&text), opts(false, None), None, Some(notifier)).unwrap();
    let err = sup.start().unwrap_err();
    assert!(err.is_bad_input(), "{err}");
    assert_eq!(sup.state(), ChannelState::Failed);
    let mut got = Vec::new();
    let start = std::time::Instant::now();
    let mut buf = [0u8; 512];
    while start.elapsed() < Duration::from_millis(800) {
        if let Ok(n) = rx.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).to_string());
        }
    }
    // Pings while starting are harmless (systemd watches only after READY); none once failed.
    let failed = got
        .iter()
        .position(|m| m == "STATUS=failed")
        .unwrap_or_else(|| panic!("{got:?}"));
    assert!(
        !got[failed..].iter().any(|m| m.contains("WATCHDOG=1")),
        "{got:?}"
    );
    assert!(!got.iter().any(|m| m.contains("READY=1")), "{got:?}");
}

#[test]
fn status_says_the_timecode_fell_back_to_the_clock_why_and_raises_its_alert() {
    // A `v4l2` timecode whose capture device is missing on this box: no driver timecode, so
    // the timeline runs on the clock, and /status must say so rather than claim a lock.
    let dir = tempfile::tempdir().unwrap();
    let map = dir.path().join("hw.toml");
    std::fs::write(
        &map,
        "[box]\nmodel = \"test\"\n\n[input.cam.video]\ndevice = \"/dev/smoothcast-test-no-such-video\"\n",
    )
    .unwrap();
    let text = profile("api7", &[], "\n[timecode]\nsource = \"v4l2\"\n").replace(
        "input = \"synthetic\"\nwidth = 320\nheight = 180\n\n[audio]",
        "input = \"cam\"\n\n[audio]",
    );
    let mut o = opts(false, None);
    o.inputs.hw_map = Some(map);
    let sup = Supervisor::new(plan(&text), o, None, None).unwrap();
    let server = control::serve(sup.clone(), &ControlPlan::default()).unwrap();
    let addr = server.addr();
    sup.start().unwrap();
    wait_until(
        "the timecode fallback in /status",
        Duration::from_secs(20),
        || status(addr).timecode.state == "fallback",
    );
    let st = status(addr);
    assert_eq!(st.timecode.source, "v4l2");
    let reason = st.timecode.fallback_reason.clone().unwrap_or_default();
    assert!(reason.contains("no driver timecode"), "{reason}");
    let alert = st
        .alerts
        .iter()
        .find(|a| a.code == "timecode_fallback")
        .unwrap_or_else(|| panic!("no timecode_fallback alert: {:?}", st.alerts));
    assert_eq!(alert.severity, Severity::Warning);
    assert!(
        alert.message.contains("v4l2") && alert.message.contains("running on the clock"),
        "{}",
        alert.message
    );
    // The raw JSON a monitoring system reads carries the same names.
    let raw = get_json(addr, "/status");
    assert_eq!(raw["timecode"]["state"], "fallback", "{raw}");
    sup.shutdown(std::time::Instant::now() + Duration::from_secs(3));
    assert!(!sup.wait_exit().failed);
    drop(server);
}
