//! N+M on a real etcd: two active boxes, two standbys (separate processes), the built-in sink.
//! SIGKILL an active → exactly one standby takes its channel within TTL + one fragment, the
//! sink's timeline shows a gap of at most two fragments and no timestamp reset, the other
//! channel is untouched; then SIGKILL that standby → the second one takes over the same way.
//! And fencing: an active cut off from etcd stops pushing within its TTL, before the standby's
//! first fragment; once reconnected it stays standby.

mod common;

use common::cluster::{
    accepted, box_of, free_port, http_get, http_post, owner, unix_ms, wait_for, Etcd, Proc, Proxy,
};
use smoothcast::sink::{self, Report, SinkConfig, SinkHandle};
use std::path::Path;
use std::time::Duration;

const FRAGMENT_MS: u64 = 2000;
const TTL_MS: u64 = 1000;
/// Track ticks per fragment (timescale 10 MHz).
const FRAGMENT_TICKS: u64 = 20_000_000;

fn profile(dir: &Path, channel: &str) -> String {
    let text = common::light_profile(
        channel,
        2,
        r#"source = "clock""#,
        r#"
[[rung]]
name = "180p"
width = 320
height = 180
bitrate = 300
preset = "ultrafast"
tune = "zerolatency"
bframes = 0
"#,
    );
    common::write_profile(dir, &format!("{channel}.toml"), &text)
        .display()
        .to_string()
}

fn start_sink() -> SinkHandle {
    sink::start(SinkConfig {
        max_arrivals: 100_000,
        ..SinkConfig::default()
    })
    .expect("sink")
}

fn run_active(
    dir: &Path,
    name: &str,
    channel: &str,
    etcd: &str,
    sink: &SinkHandle,
    control: u16,
) -> Proc {
    run_active_with(dir, name, channel, etcd, sink, control, &[])
}

/// [`run_active`] with more `run` arguments.
fn run_active_with(
    dir: &Path,
    name: &str,
    channel: &str,
    etcd: &str,
    sink: &SinkHandle,
    control: u16,
    extra: &[&str],
) -> Proc {
    let prof = profile(dir, channel);
    let push = sink.url(&format!("/live/{channel}.isml"));
    let control = format!("127.0.0.1:{control}");
    let mut args = vec![
        "run",
        &prof,
        "--push",
        &push,
        "--etcd",
        etcd,
        "--box-id",
        name,
        "--lease-ttl",
        "1",
        "--control",
        &control,
    ];
    args.extend_from_slice(extra);
    Proc::spawn(name, &args, dir)
}

fn run_standby(dir: &Path, name: &str, etcd: &str) -> Proc {
    let hw = common::repo()
        .join("hw/webcam-box.toml")
        .display()
        .to_string();
    Proc::spawn(
        name,
        &[
            "standby",
            "--etcd",
            etcd,
            "--hw",
            &hw,
            "--box-id",
            name,
            "--lease-ttl",
            "1",
        ],
        dir,
    )
}

/// Waits until `count` fragments of `track` from `box_id` were accepted.
fn wait_fragments_from(sink: &SinkHandle, pubpoint: &str, box_id: &str, count: usize) {
    wait_for(
        Duration::from_secs(30),
        &format!("{count} fragments of {pubpoint} from {box_id}"),
        || {
            let r = sink.report();
            let n = accepted(&r, pubpoint, "video")
                .iter()
                .filter(|a| box_of(a) == box_id)
                .count();
            (n >= count).then_some(())
        },
    );
}

/// Fragments missing from a track's timeline, in fragments.
fn gap_fragments(r: &Report, pubpoint: &str, track: &str) -> u64 {
    let t = r
        .tracks
        .iter()
        .find(|t| t.pubpoint == pubpoint && t.name == track)
        .unwrap_or_else(|| panic!("no track {track} on {pubpoint}"));
    t.gaps
        .iter()
        .map(|g| (g.to - g.from).div_ceil(FRAGMENT_TICKS))
        .sum()
}

struct Takeover {
    winner: String,
    detect_ms: u64,
    takeover_ms: u64,
    first_fragment_ms: u64,
}

/// After `killed` died at `kill_ms`: who took the channel, how fast, and the sink's view.
fn observe_takeover(
    etcd: &Etcd,
    sink: &SinkHandle,
    channel: &str,
    killed: &str,
    kill_ms: u64,
    candidates: &[&str],
) -> Takeover {
    let pubpoint = format!("live/{channel}");
    // Detection: the owner key disappears (lease expired); takeover: a standby owns it.
    let mut free_at = None;
    let winner = wait_for(Duration::from_secs(15), "a standby to win", || match owner(
        etcd.port(),
        channel,
    ) {
        None => {
            free_at.get_or_insert(unix_ms());
            None
        }
        Some(o) if o == killed => None,
        Some(o) => Some(o),
    });
    let takeover_ms = unix_ms() - kill_ms;
    let detect_ms = free_at.map_or(takeover_ms, |t| t - kill_ms);
    assert!(
        candidates.contains(&winner.as_str()),
        "{winner} is not a standby"
    );
    wait_fragments_from(sink, &pubpoint, &winner, 2);
    let r = sink.report();
    let first = accepted(&r, &pubpoint, "video")
        .into_iter()
        .find(|a| box_of(a) == winner)
        .expect("winner's first fragment");
    Takeover {
        winner,
        detect_ms,
        takeover_ms,
        first_fragment_ms: first.unix_ms - kill_ms,
    }
}

/// Every accepted fragment of the channel after the takeover comes from `winner`, with times
/// strictly after everything `killed` delivered (no reset), and nobody else pushed it.
fn assert_handover_clean(r: &Report, channel: &str, killed: &str, winner: &str, since_ms: u64) {
    let pubpoint = format!("live/{channel}");
    // Exactly one box took the channel: nobody but the winner delivered anything since.
    let others: Vec<String> = r
        .arrivals
        .iter()
        .filter(|a| a.pubpoint == pubpoint && a.unix_ms > since_ms + TTL_MS)
        .map(box_of)
        .filter(|b| b != winner)
        .collect();
    assert!(others.is_empty(), "{channel}: also pushed by {others:?}");
    for track in ["video", "audio"] {
        let arr = accepted(r, &pubpoint, track);
        let last_killed = arr
            .iter()
            .filter(|a| box_of(a) == killed)
            .map(|a| a.time)
            .max()
            .expect("killed box delivered");
        let winner_times: Vec<u64> = arr
            .iter()
            .filter(|a| box_of(a) == winner)
            .map(|a| a.time)
            .collect();
        assert!(
            winner_times.iter().all(|&t| t > last_killed),
            "{track}: {winner} sent a time at or before {killed}'s last ({last_killed}): {winner_times:?}"
        );
        assert!(
            winner_times.windows(2).all(|w| w[0] < w[1]),
            "{track}: times go backwards"
        );
    }
    assert!(
        r.fatal_violations().next().is_none(),
        "violations: {:?}",
        r.violations
    );
}

/// Takeover `n` of ch-a after `killed` died at `kill_ms`: within TTL + one fragment, a gap of
/// at most two more fragments than `gaps_before`, clean handover. Returns it and the gaps now.
fn checked_takeover(
    n: u32,
    etcd: &Etcd,
    sink: &SinkHandle,
    killed: &str,
    kill_ms: u64,
    candidates: &[&str],
    gaps_before: u64,
) -> (Takeover, u64) {
    let t = observe_takeover(etcd, sink, "ch-a", killed, kill_ms, candidates);
    let r = sink.report();
    let gaps = gap_fragments(&r, "live/ch-a", "video");
    let gap = gaps - gaps_before;
    eprintln!(
        "takeover {n}: {} detected after {} ms, owner after {} ms, first fragment at the sink after {} ms, gap {gap} fragment(s)",
        t.winner, t.detect_ms, t.takeover_ms, t.first_fragment_ms
    );
    assert!(
        t.takeover_ms <= TTL_MS + FRAGMENT_MS,
        "takeover took {} ms",
        t.takeover_ms
    );
    assert!(gap <= 2, "gap of {gap} fragments");
    assert_handover_clean(&r, "ch-a", killed, &t.winner, kill_ms);
    (t, gaps)
}

#[test]
fn active_killed_standby_takes_over_then_second_standby() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = Etcd::start();
    let sink = start_sink();
    let mut act_a = run_active(dir.path(), "act-a", "ch-a", &etcd.url, &sink, free_port());
    let _act_b = run_active(dir.path(), "act-b", "ch-b", &etcd.url, &sink, free_port());
    wait_fragments_from(&sink, "live/ch-a", "act-a", 2);
    wait_fragments_from(&sink, "live/ch-b", "act-b", 2);
    let _sb1 = run_standby(dir.path(), "sb-1", &etcd.url);
    let _sb2 = run_standby(dir.path(), "sb-2", &etcd.url);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(owner(etcd.port(), "ch-a").as_deref(), Some("act-a"));
    assert_eq!(owner(etcd.port(), "ch-b").as_deref(), Some("act-b"));

    // A random moment inside a fragment.
    std::thread::sleep(Duration::from_millis(rand::random::<u64>() % FRAGMENT_MS));
    let kill1 = act_a.kill();
    let (t1, gap1) = checked_takeover(1, &etcd, &sink, "act-a", kill1, &["sb-1", "sb-2"], 0);

    // Then the standby that won dies too.
    let (mut winner1, other) = if t1.winner == "sb-1" {
        (_sb1, "sb-2")
    } else {
        (_sb2, "sb-1")
    };
    std::thread::sleep(Duration::from_millis(rand::random::<u64>() % FRAGMENT_MS));
    let kill2 = winner1.kill();
    checked_takeover(2, &etcd, &sink, &t1.winner, kill2, &[other], gap1);
    let r = sink.report();

    // The other channel never noticed: one box, no gap.
    for track in ["video", "audio"] {
        assert_eq!(gap_fragments(&r, "live/ch-b", track), 0, "ch-b {track}");
        assert!(accepted(&r, "live/ch-b", track)
            .iter()
            .all(|a| box_of(a) == "act-b"));
    }
    assert_eq!(owner(etcd.port(), "ch-b").as_deref(), Some("act-b"));
}

#[test]
fn active_cut_off_from_etcd_fences_before_standby_pushes() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = Etcd::start();
    let proxy = Proxy::start(etcd.port());
    let sink = start_sink();
    let control = free_port();
    let _act = run_active(dir.path(), "act-a", "ch-a", &proxy.url(), &sink, control);
    wait_fragments_from(&sink, "live/ch-a", "act-a", 2);
    let _sb = run_standby(dir.path(), "sb-1", &etcd.url);
    std::thread::sleep(Duration::from_millis(
        1000 + rand::random::<u64>() % FRAGMENT_MS,
    ));

    let cut = proxy.cut();
    // The standby wins once the lease has expired on the server.
    let winner = wait_for(Duration::from_secs(15), "the standby to win", || {
        owner(etcd.port(), "ch-a").filter(|o| o == "sb-1")
    });
    let takeover_ms = unix_ms() - cut;
    wait_fragments_from(&sink, "live/ch-a", &winner, 2);
    let r = sink.report();
    let pp = "live/ch-a";
    let all: Vec<_> = r.arrivals.iter().filter(|a| a.pubpoint == pp).collect();
    let last_fenced = all
        .iter()
        .filter(|a| box_of(a) == "act-a")
        .map(|a| a.unix_ms)
        .max()
        .unwrap();
    let first_standby = all
        .iter()
        .filter(|a| box_of(a) == "sb-1")
        .map(|a| a.unix_ms)
        .min()
        .unwrap();
    eprintln!(
        "fencing: act-a's last fragment {} ms after the cut, sb-1 owner after {takeover_ms} ms, its first fragment {} ms after the cut, gap {} fragment(s)",
        last_fenced as i64 - cut as i64,
        first_standby - cut,
        gap_fragments(&r, pp, "video")
    );
    assert!(
        last_fenced <= cut + TTL_MS,
        "the cut-off box pushed {} ms after the cut",
        last_fenced - cut
    );
    assert!(
        last_fenced < first_standby,
        "two boxes pushed ch-a after the fencing point"
    );
    assert_handover_clean(&r, "ch-a", "act-a", "sb-1", cut);
    let status = status_json(control).expect("fenced box's status");
    assert_eq!(status["role"], "fenced", "{status}");

    // Back in contact: it sees the channel owned and stays standby; no fight.
    proxy.restore();
    wait_for(
        Duration::from_secs(10),
        "act-a to see sb-1 as owner",
        || {
            status_json(control)
                .filter(|s| s["role"] == "standby" && s["redundancy"]["owner"] == "sb-1")
        },
    );
    std::thread::sleep(Duration::from_millis(FRAGMENT_MS + 500));
    let r = sink.report();
    let late = r
        .arrivals
        .iter()
        .filter(|a| a.pubpoint == pp && box_of(a) == "act-a" && a.unix_ms > last_fenced)
        .count();
    assert_eq!(late, 0, "the recovered box pushed again");
    assert_eq!(owner(etcd.port(), "ch-a").as_deref(), Some("sb-1"));

    // Fail-back is the operator's call, on the box that wants the channel: the owner hands
    // it over at a fragment boundary, no fragment lost, none pushed twice.
    let gaps_before = ["video", "audio"].map(|t| gap_fragments(&r, pp, t));
    let (code, body) = http_post(control, "/failback").expect("POST /failback");
    assert_eq!(code, 200, "{body}");
    let asked = unix_ms();
    wait_for(Duration::from_secs(15), "act-a to own ch-a again", || {
        owner(etcd.port(), "ch-a").filter(|o| o == "act-a")
    });
    wait_fragments_from(&sink, pp, "act-a", 3);
    let r = sink.report();
    for (track, before) in ["video", "audio"].into_iter().zip(gaps_before) {
        let arr: Vec<_> = accepted(&r, pp, track)
            .into_iter()
            .filter(|a| a.unix_ms > asked)
            .collect();
        let last_sb = arr
            .iter()
            .filter(|a| box_of(a) == "sb-1")
            .map(|a| a.time)
            .max();
        let first_back = arr
            .iter()
            .filter(|a| box_of(a) == "act-a")
            .map(|a| a.time)
            .min();
        if let (Some(l), Some(f)) = (last_sb, first_back) {
            assert!(l < f, "{track}: sb-1 pushed {l} after act-a's first {f}");
        }
        assert_eq!(
            gap_fragments(&r, pp, track),
            before,
            "{track}: the fail-back lost media"
        );
    }
    let dups = r
        .arrivals
        .iter()
        .filter(|a| a.pubpoint == pp && a.duplicate && a.unix_ms > asked)
        .count();
    assert_eq!(dups, 0, "a fragment was pushed by both boxes");
    eprintln!(
        "fail-back: act-a owns ch-a again, {} fragment(s) missing in all (as before the fail-back)",
        gap_fragments(&r, pp, "video")
    );
}

#[test]
fn active_whose_run_fails_gives_the_channel_to_a_standby_and_stays_in_the_pool() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = Etcd::start();
    let sink = start_sink();
    let _sb1 = run_standby(dir.path(), "sb-1", &etcd.url);
    // A fault of this box only: its local archive cannot be created (a regular file where
    // the directory should be). The standby copies the profile and the push URLs, not
    // `--archive`, so the channel runs there.
    let blocker = dir.path().join("archive-disk");
    std::fs::write(&blocker, b"").unwrap();
    let archive = blocker.join("ch-a").display().to_string();
    let control = free_port();
    let mut act = run_active_with(
        dir.path(),
        "act-a",
        "ch-a",
        &etcd.url,
        &sink,
        control,
        &["--archive", &archive],
    );

    // The failed box gives the lease up instead of holding the channel dark until its TTL.
    wait_fragments_from(&sink, "live/ch-a", "sb-1", 2);
    assert_eq!(owner(etcd.port(), "ch-a").as_deref(), Some("sb-1"));
    let status = wait_for(
        Duration::from_secs(10),
        "act-a to report the failure as a standby",
        || status_json(control).filter(|s| s["role"] == "standby"),
    );
    assert_eq!(status["state"], "failed", "{status}");
    let error = status["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("archive") && error.contains("archive-disk"),
        "{status}"
    );
    let events = status["redundancy"]["events"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "released" && e["box_id"] == "act-a"),
        "{status}"
    );

    // It stays up, in the pool, and does not take the channel back from a healthy box.
    std::thread::sleep(Duration::from_millis(2 * TTL_MS + FRAGMENT_MS));
    assert!(act.is_running(), "the box whose run failed exited");
    assert_eq!(owner(etcd.port(), "ch-a").as_deref(), Some("sb-1"));
    let r = sink.report();
    assert!(accepted(&r, "live/ch-a", "video")
        .iter()
        .all(|a| box_of(a) == "sb-1"));
    assert_eq!(gap_fragments(&r, "live/ch-a", "video"), 0);
}

fn status_json(control: u16) -> Option<serde_json::Value> {
    serde_json::from_str(&http_get(control, "/status")?).ok()
}
