//! The console's poller against real sockets on 127.0.0.1: a healthy control API (serving the
//! captured `/status` of a real channel), one that accepts connections and never answers, and
//! one that refuses them. The UI side (`Poller::views`) must never wait on any of them.

use smoothcast::console::app::{Action, Link};
use smoothcast::console::client::{PollConfig, Poller, Target};
use smoothcast::console::model::Health;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const STATUS: &[u8] = include_bytes!("data/console/status_v1.json");

/// Request lines (`POST /stop`) and `Authorization` headers the server saw.
type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// Serves `GET /status` with the fixture and answers any POST with 200 `{"message":"ok"}`.
fn control_api() -> (String, Seen) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let url = format!(
        "http://{}",
        l.local_addr().map(|a| a.to_string()).unwrap_or_default()
    );
    let seen: Seen = Arc::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let mut req = Vec::new();
            let mut b = [0u8; 4096];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut b) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&b[..n]),
                }
            }
            let text = String::from_utf8_lossy(&req).into_owned();
            let line = text.lines().next().unwrap_or("").to_string();
            let auth = text
                .lines()
                .find_map(|l| l.strip_prefix("Authorization: "))
                .map(str::to_string);
            let body: &[u8] = if line.starts_with("GET /status ") {
                STATUS
            } else {
                br#"{"message":"ok","state":"running"}"#
            };
            if let Ok(mut g) = log.lock() {
                g.push((line, auth));
            }
            let _ = s.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                )
                .as_bytes(),
            );
            let _ = s.write_all(body);
        }
    });
    (url, seen)
}

/// Accepts connections and never answers (a hung encoder).
fn silent_api() -> (String, TcpListener) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let url = format!(
        "http://{}",
        l.local_addr().map(|a| a.to_string()).unwrap_or_default()
    );
    (url, l)
}

fn refused_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    format!(
        "http://{}",
        l.local_addr().map(|a| a.to_string()).unwrap_or_default()
    )
}

fn config() -> PollConfig {
    PollConfig {
        interval: Duration::from_millis(50),
        timeout: Duration::from_millis(300),
        stale_after: Duration::from_millis(500),
        unreachable_after: 2,
    }
}

#[test]
fn hung_and_dead_channels_never_hold_up_the_healthy_one() {
    let (good, _) = control_api();
    let (hung, _keep) = silent_api();
    let dead = refused_url();
    let poller = Poller::new(config());
    for u in [&good, &hung, &dead] {
        assert!(poller.watch(Target::new(u, None)));
    }
    assert!(
        !poller.watch(Target::new(&format!("{good}/"), None)),
        "same URL twice"
    );

    let t0 = Instant::now();
    let mut worst = Duration::ZERO;
    let views = loop {
        let before = Instant::now();
        let views = poller.views(Instant::now());
        worst = worst.max(before.elapsed());
        let settled = matches!(views[0].link, Link::Fresh)
            && matches!(views[1].link, Link::Unreachable { .. })
            && matches!(views[2].link, Link::Unreachable { .. });
        if settled {
            break views;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "{views:#?}");
        std::thread::sleep(Duration::from_millis(10));
    };
    // Reading the views only copies the shared map: far below one request timeout.
    assert!(worst < Duration::from_millis(50), "views() took {worst:?}");

    assert_eq!(views[0].name, "news", "named by its own /status");
    assert_eq!(
        views[0].snapshot.as_ref().map(|s| s.health()),
        Some(Health::Degraded)
    );
    assert!(!views[0].bitrate_history.is_empty());
    assert!(views[0].events.iter().any(|e| e.ends_with("answering")));
    match &views[1].link {
        Link::Unreachable { error } => assert!(error.contains("no answer"), "{error}"),
        other => panic!("{other:?}"),
    }
    match &views[2].link {
        Link::Unreachable { error } => assert!(error.contains("cannot connect"), "{error}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_channel_that_stops_answering_goes_stale_then_unreachable() {
    // A server that answers once, then hangs every later connection.
    let l = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let url = format!(
        "http://{}",
        l.local_addr().map(|a| a.to_string()).unwrap_or_default()
    );
    std::thread::spawn(move || {
        let mut held: Vec<TcpStream> = Vec::new();
        for (i, mut s) in l.incoming().flatten().enumerate() {
            if i == 0 {
                let mut b = [0u8; 4096];
                let _ = s.read(&mut b);
                let _ = s.write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                        STATUS.len()
                    )
                    .as_bytes(),
                );
                let _ = s.write_all(STATUS);
            } else {
                held.push(s);
            }
        }
    });
    let cfg = PollConfig {
        timeout: Duration::from_millis(400),
        unreachable_after: 3,
        ..config()
    };
    let poller = Poller::new(cfg);
    poller.watch(Target::new(&url, None));
    let t0 = Instant::now();
    let mut seen = Vec::new();
    loop {
        let v = poller.views(Instant::now()).remove(0);
        let kind = match v.link {
            Link::Connecting => "connecting",
            Link::Fresh => "fresh",
            Link::Stale { .. } => "stale",
            Link::Unreachable { .. } => "unreachable",
        };
        if seen.last() != Some(&kind) {
            seen.push(kind);
        }
        if kind == "unreachable" {
            assert!(v.snapshot.is_some(), "the last good snapshot is kept");
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "{seen:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    let seen: Vec<_> = seen.into_iter().filter(|k| *k != "connecting").collect();
    assert_eq!(seen, vec!["fresh", "stale", "unreachable"]);
}

#[test]
fn commands_post_to_the_right_path_with_the_token() {
    let (url, seen) = control_api();
    let poller = Poller::new(config());
    poller.watch(Target::new(&url, Some("0123456789abcdef".into())));
    let actions = [
        Action::Stop { url: url.clone() },
        Action::Start { url: url.clone() },
        Action::Restart { url: url.clone() },
        Action::SetDestination {
            url: url.clone(),
            destination: "back up".into(),
            enabled: false,
        },
    ];
    for a in &actions {
        poller.execute(a, "news");
    }
    let t0 = Instant::now();
    let mut messages = Vec::new();
    while messages.len() < actions.len() {
        messages.extend(poller.take_messages());
        assert!(t0.elapsed() < Duration::from_secs(10), "{messages:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    messages.sort();
    assert_eq!(
        messages,
        vec![
            "disable news/back up: ok (HTTP 200)",
            "restart news: ok (HTTP 200)",
            "start news: ok (HTTP 200)",
            "stop news: ok (HTTP 200)",
        ]
    );
    let seen = seen.lock().map(|g| g.clone()).unwrap_or_default();
    let mut posts: Vec<_> = seen
        .iter()
        .filter(|(l, _)| l.starts_with("POST"))
        .cloned()
        .collect();
    posts.sort();
    assert_eq!(
        posts.iter().map(|(l, _)| l.as_str()).collect::<Vec<_>>(),
        vec![
            "POST /destinations/back%20up/disable HTTP/1.1",
            "POST /restart HTTP/1.1",
            "POST /start HTTP/1.1",
            "POST /stop HTTP/1.1",
        ]
    );
    assert!(posts
        .iter()
        .all(|(_, auth)| auth.as_deref() == Some("Bearer 0123456789abcdef")));
    let events = poller.views(Instant::now()).remove(0).events;
    assert!(
        events
            .iter()
            .any(|e| e.ends_with("stop news: ok (HTTP 200)")),
        "{events:?}"
    );
}

#[test]
fn a_refused_command_reports_the_servers_error() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let url = format!(
        "http://{}",
        l.local_addr().map(|a| a.to_string()).unwrap_or_default()
    );
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let mut b = [0u8; 4096];
            let _ = s.read(&mut b);
            let body = br#"{"error":"the channel is already stopped"}"#;
            let _ = s.write_all(
                format!(
                    "HTTP/1.1 409 Conflict\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                )
                .as_bytes(),
            );
            let _ = s.write_all(body);
        }
    });
    let poller = Poller::new(config());
    poller.execute(&Action::Stop { url }, "news");
    let t0 = Instant::now();
    loop {
        if let Some(m) = poller.take_messages().pop() {
            assert_eq!(
                m,
                "stop news: FAILED: HTTP 409: the channel is already stopped"
            );
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(10));
    }
}
