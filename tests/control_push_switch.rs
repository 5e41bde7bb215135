//! `Pusher::set_enabled`: the operator's destination switch behind
//! `POST /destinations/<name>/enable|disable`, against a real HTTP server on 127.0.0.1.

mod control_common;

use bytes::Bytes;
use control_common::{wait_until, Ingest, Req};
use smoothcast::profile::plan::{DestinationPlan, PushMode, PushOptions, Role};
use smoothcast::push::{Fragment, Pusher, SessionState, StreamHeader};
use smoothcast::time::SystemClocks;
use std::sync::Arc;
use std::time::Duration;

const TICKS: u64 = 20_000_000;

fn opts(mode: PushMode) -> PushOptions {
    PushOptions {
        mode,
        // The last two fragments per track: what a reconnect resends.
        replay_window_secs: 0.0,
        send_eos: false,
        connect_timeout_secs: 1.0,
        send_timeout_secs: 1.0,
        max_backoff_secs: 0.05,
        ca_file: None,
        client_cert: None,
        client_key: None,
        stream_suffix: None,
        box_id: None,
        queue_fragments: 16,
    }
}

fn bx(fourcc: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut v = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
    v.extend_from_slice(fourcc);
    v.extend_from_slice(payload);
    v
}

fn header() -> StreamHeader {
    let bytes = [bx(b"ftyp", b"isml\0\0\0\x01piff"), bx(b"moov", &[0u8; 8])].concat();
    StreamHeader {
        stream_id: "sw-video".into(),
        track_ids: vec![1],
        bytes: Bytes::from(bytes),
    }
}

/// A fake fragment whose moof payload is (track, sequence).
fn frag(seq: u32) -> Arc<Fragment> {
    let mut moof = 1u32.to_be_bytes().to_vec();
    moof.extend_from_slice(&seq.to_be_bytes());
    Arc::new(Fragment {
        track_id: 1,
        sequence: seq,
        time: 1_700_000_000 * 10_000_000 + u64::from(seq) * TICKS,
        duration: TICKS,
        bytes: Bytes::from([bx(b"moof", &moof), bx(b"mdat", &[seq as u8; 64])].concat()),
    })
}

/// Top-level box names and the sequences of the fake moofs in a body.
fn body(r: &Req) -> (Vec<String>, Vec<u32>) {
    let (mut names, mut seqs, mut pos) = (Vec::new(), Vec::new(), 0usize);
    let b = &r.body;
    while pos + 8 <= b.len() {
        let size = u32::from_be_bytes(b[pos..pos + 4].try_into().unwrap()) as usize;
        if size < 8 || pos + size > b.len() {
            break;
        }
        let name = String::from_utf8_lossy(&b[pos + 4..pos + 8]).to_string();
        if name == "moof" {
            seqs.push(u32::from_be_bytes(
                b[pos + 12..pos + 16].try_into().unwrap(),
            ));
        }
        names.push(name);
        pos += size;
    }
    (names, seqs)
}

fn posts_to(ingest: &Ingest, point: &str) -> Vec<Req> {
    let prefix = format!("/live/{point}.isml/");
    ingest
        .posts()
        .into_iter()
        .filter(|r| r.path.starts_with(&prefix))
        .collect()
}

fn dests(ingest: &Ingest) -> Vec<DestinationPlan> {
    vec![
        DestinationPlan {
            name: "primary".into(),
            url: ingest.url("a"),
            role: Role::Primary,
        },
        DestinationPlan {
            name: "backup".into(),
            url: ingest.url("b"),
            role: Role::Backup,
        },
    ]
}

fn state(p: &Pusher, dest: &str) -> SessionState {
    p.status()
        .into_iter()
        .find(|s| s.destination == dest)
        .map(|s| s.state)
        .unwrap()
}

#[test]
fn disabling_ends_the_post_cleanly_and_enabling_resends_header_and_replay_window() {
    let ingest = Ingest::start();
    let p = Pusher::start(
        "sw",
        vec![header()],
        &dests(&ingest),
        &opts(PushMode::Hot),
        SystemClocks::new(),
    )
    .unwrap();
    p.submit(frag(1));
    p.submit(frag(2));
    wait_until("both got 1 and 2", Duration::from_secs(5), || {
        ["a", "b"].iter().all(|d| {
            posts_to(&ingest, d)
                .first()
                .is_some_and(|r| body(r).1 == [1, 2])
        })
    });

    assert!(p.set_enabled("backup", false));
    assert_eq!(p.is_enabled("backup"), Some(false));
    assert_eq!(p.is_enabled("primary"), Some(true));
    assert!(!p.set_enabled("nope", false));
    assert_eq!(p.is_enabled("nope"), None);
    wait_until(
        "backup disabled, POST ended",
        Duration::from_secs(5),
        || {
            state(&p, "backup") == SessionState::Disabled
                && posts_to(&ingest, "b").iter().all(|r| r.complete)
        },
    );
    assert_eq!(posts_to(&ingest, "b")[0].answered, Some(200));
    assert!(!posts_to(&ingest, "b")[0]
        .body
        .ends_with(&bx(b"mfra", &[0; 8])));

    p.submit(frag(3));
    p.submit(frag(4));
    wait_until("primary got 3 and 4", Duration::from_secs(5), || {
        body(&posts_to(&ingest, "a")[0]).1 == [1, 2, 3, 4]
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        ingest
            .requests()
            .iter()
            .filter(|r| r.path.starts_with("/live/b.isml/"))
            .count(),
        2,
        "a disabled destination is not even probed"
    );

    assert!(p.set_enabled("backup", true));
    wait_until("backup live again", Duration::from_secs(5), || {
        state(&p, "backup") == SessionState::Live && posts_to(&ingest, "b").len() == 2
    });
    p.submit(frag(5));
    wait_until(
        "backup got the replay window and 5",
        Duration::from_secs(5),
        || body(&posts_to(&ingest, "b")[1]).1 == [3, 4, 5],
    );
    let (names, _) = body(&posts_to(&ingest, "b")[1]);
    assert_eq!(
        &names[..2],
        ["ftyp", "moov"],
        "the header comes first again"
    );

    let end = p.finish(Duration::from_secs(3));
    assert!(end.iter().all(|s| s.state == SessionState::Stopped));
    assert!(ingest.posts().iter().all(|r| r.complete));
    assert_eq!(body(&posts_to(&ingest, "a")[0]).1, [1, 2, 3, 4, 5]);
}

#[test]
fn disabling_the_primary_in_failover_mode_puts_the_backup_on_air() {
    let ingest = Ingest::start();
    let p = Pusher::start(
        "sw",
        vec![header()],
        &dests(&ingest),
        &opts(PushMode::Failover),
        SystemClocks::new(),
    )
    .unwrap();
    p.submit(frag(1));
    wait_until(
        "primary live, backup standing by",
        Duration::from_secs(5),
        || {
            state(&p, "primary") == SessionState::Live
                && state(&p, "backup") == SessionState::Standby
                && posts_to(&ingest, "a")
                    .first()
                    .is_some_and(|r| body(r).1 == [1])
        },
    );

    p.set_enabled("primary", false);
    wait_until(
        "backup takes over with the replay window",
        Duration::from_secs(5),
        || {
            state(&p, "primary") == SessionState::Disabled
                && posts_to(&ingest, "b")
                    .first()
                    .is_some_and(|r| body(r).1 == [1])
        },
    );
    assert!(
        posts_to(&ingest, "a")[0].complete,
        "primary POST ended cleanly"
    );
    p.submit(frag(2));
    wait_until("backup carries 2", Duration::from_secs(5), || {
        body(&posts_to(&ingest, "b")[0]).1 == [1, 2]
    });

    p.set_enabled("primary", true);
    wait_until(
        "primary back, backup hands back",
        Duration::from_secs(5),
        || {
            state(&p, "primary") == SessionState::Live
                && state(&p, "backup") == SessionState::Standby
                && posts_to(&ingest, "b").iter().all(|r| r.complete)
        },
    );
    let end = p.finish(Duration::from_secs(3));
    assert!(end.iter().all(|s| s.state == SessionState::Stopped));
    assert!(ingest.posts().iter().all(|r| r.complete));
}
