//! Snapshot tests of the console's drawing: fixed channel states drawn with ratatui's
//! `TestBackend` at 80×24 (the smallest supported terminal) and 160×48, compared with the
//! committed `tests/snapshots/console_draw__*.snap` files.
//!
//! Review a change with `cargo insta review` (or `INSTA_UPDATE=always` + `git diff`); CI runs
//! with `INSTA_UPDATE=no`, so a missing or different snapshot fails instead of being written.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::Color;
use ratatui::Terminal;
use smoothcast::console::app::{App, ChannelView, Link, View};
use smoothcast::console::model::{
    Alert, AudioInputSnapshot, AudioTrackSnapshot, DestinationSnapshot, InputSnapshot,
    PoolBoxSnapshot, RedundancyEventSnapshot, RedundancySnapshot, RungSnapshot, StatusSnapshot,
    StreamSnapshot, TimecodeSnapshot, VideoInputSnapshot,
};
use smoothcast::console::ui;
use std::time::Duration;

const SIZES: [(u16, u16); 2] = [(80, 24), (160, 48)];

fn rung(name: &str, w: u64, h: u64, kbps: f64, frames: u64) -> RungSnapshot {
    RungSnapshot {
        name: name.into(),
        width: w,
        height: h,
        target_kbps: kbps.round(),
        fps: 29.97,
        bitrate_kbps: kbps,
        frames,
        fragments: frames / 60,
        dropped: 0,
        duplicated: 0,
    }
}

fn destination(channel: &str, name: &str, frags: u64) -> DestinationSnapshot {
    DestinationSnapshot {
        name: name.into(),
        role: name.into(),
        url: format!("http://{name}.example.net/live/{channel}.isml"),
        enabled: true,
        streams: ["1080p", "720p", "360p", "audio"]
            .iter()
            .enumerate()
            .map(|(i, track)| StreamSnapshot {
                stream_id: format!("{channel}-{track}"),
                state: "live".into(),
                state_secs: frags as f64 * 2.0,
                behind: false,
                bytes: frags * [1_250_000, 750_000, 200_000, 24_000][i],
                fragments_sent: frags,
                fragments_dropped: 0,
                last_response: 200,
                reconnects: 0,
                queue_depth: 0,
                replay_depth: 2,
                last_error: String::new(),
            })
            .collect(),
    }
}

fn on_air(channel: &str, tc: &str, frags: u64) -> StatusSnapshot {
    let frames = frags * 60;
    StatusSnapshot {
        api_version: 1,
        channel: channel.into(),
        role: "active".into(),
        state: "running".into(),
        ready: true,
        version: "0.1.0".into(),
        uptime_secs: frags as f64 * 2.0 + 3.0,
        run_secs: frags as f64 * 2.0,
        runs: 1,
        last_error: String::new(),
        input: InputSnapshot {
            video: VideoInputSnapshot {
                input: "sdi1".into(),
                kind: "device".into(),
                state: "live".into(),
                width: 1920,
                height: 1080,
                rate: "30000/1001".into(),
                frames,
                filled_frames: 0,
            },
            audio: AudioInputSnapshot {
                input: "sdi1-embedded".into(),
                state: "live".into(),
                sample_rate: 48_000,
                channels: 2,
                peak_dbfs: vec![-6.2, -7.9],
                rms_dbfs: vec![-18.4, -20.1],
            },
        },
        timecode: TimecodeSnapshot {
            source: "ltc".into(),
            state: String::new(),
            drop_frame: true,
            current: tc.into(),
            date: "2026-11-21".into(),
            frame_index: 53_065_343_880 + frames,
        },
        rungs: vec![
            rung("1080p", 1920, 1080, 5012.0, frames),
            rung("720p", 1280, 720, 2996.0, frames),
            rung("360p", 640, 360, 801.0, frames),
        ],
        audio: AudioTrackSnapshot {
            codec: "AAC-LC".into(),
            target_kbps: 96.0,
            bitrate_kbps: 96.0,
            fragments: frags,
        },
        destinations: vec![
            destination(channel, "primary", frags),
            destination(channel, "backup", frags),
        ],
        alerts: Vec::new(),
        log: Vec::new(),
        redundancy: RedundancySnapshot::default(),
    }
}

fn history(base: u64, n: usize) -> Vec<u64> {
    (0..n as u64)
        .map(|i| base + (i * 37 % 11) * 40 + if i % 15 == 0 { 600 } else { 0 })
        .collect()
}

fn view(url: &str, snap: StatusSnapshot) -> ChannelView {
    let mut v = ChannelView::new(url, &snap.channel.clone());
    v.link = Link::Fresh;
    v.bitrate_history = history(8500, 200);
    v.events = vec![
        "10:00:00 answering".into(),
        "10:00:02 state starting → running".into(),
    ];
    v.snapshot = Some(snap);
    v
}

/// Two channels on air.
fn normal() -> App {
    let mut app = App::new();
    app.set_channels(vec![
        view("http://127.0.0.1:7070", on_air("news", "10:29:59;28", 900)),
        view(
            "http://127.0.0.1:7071",
            on_air("sports", "10:29:59;29", 899),
        ),
    ]);
    app
}

/// sports: input lost (slate), its backup destination down.
fn degraded() -> App {
    let mut app = normal();
    let sports = &mut app.channels[1];
    if let Some(s) = sports.snapshot.as_mut() {
        s.input.video.state = "slate".into();
        s.input.video.filled_frames = 412;
        for r in &mut s.rungs {
            r.duplicated = 412;
        }
        s.input.audio.state = "silent".into();
        s.input.audio.peak_dbfs = vec![-120.0, -120.0];
        s.input.audio.rms_dbfs = vec![-120.0, -120.0];
        for x in &mut s.destinations[1].streams {
            x.state = "backoff".into();
            x.last_response = 503;
            x.reconnects = 7;
            x.queue_depth = 12;
            x.last_error = "HTTP 503 Service Unavailable".into();
        }
        s.alerts = vec![
            Alert {
                severity: "critical".into(),
                code: "video_input_lost".into(),
                message: "video input sdi1: no signal, sending slate frames".into(),
            },
            Alert {
                severity: "warning".into(),
                code: "destination_down".into(),
                message: "backup Streams(sports-1080p): down, reconnecting (HTTP 503)".into(),
            },
        ];
    }
    sports.events.extend([
        "10:29:46 video input sdi1: live → slate".to_string(),
        "10:29:46 CRITICAL: video input sdi1: no signal, sending slate frames".to_string(),
        "10:29:47 backup: live → backoff (all 4 streams) (HTTP 503 Service Unavailable)"
            .to_string(),
    ]);
    app.selected = 1;
    app
}

/// sports does not answer (last snapshot kept), weather is slow (stale).
fn unreachable() -> App {
    let mut app = normal();
    app.channels[1].link = Link::Unreachable {
        error: "cannot connect: 127.0.0.1:7071: Connection refused (os error 111)".into(),
    };
    app.channels[1]
        .events
        .push("10:29:50 not answering: cannot connect: Connection refused".into());
    let mut weather = view(
        "http://10.0.0.12:7070",
        on_air("weather", "10:29:52;04", 896),
    );
    weather.link = Link::Stale {
        age: Duration::from_secs(7),
    };
    app.channels.push(weather);
    let mut never = ChannelView::new("http://10.0.0.13:7070", "10.0.0.13:7070");
    never.link = Link::Unreachable {
        error: "no answer within 1.5s".into(),
    };
    app.channels.push(never);
    app.selected = 1;
    app
}

/// N+M: news was taken over by standby box sb-1 after its box act-a was cut off from etcd;
/// the console watches act-a (fenced, now standby) and sb-1 (active).
fn nm_takeover() -> App {
    let mut app = normal();
    let event = |ms: u64, b: &str, kind: &str, detail: &str| RedundancyEventSnapshot {
        unix_ms: 1_795_260_000_000 + ms,
        box_id: b.into(),
        kind: kind.into(),
        detail: detail.into(),
    };
    let events = vec![
        event(0, "act-a", "acquired", "took the free channel"),
        event(
            600_000,
            "act-a",
            "fenced",
            "stopped pushing: no lease renewal for 3000 ms minus the margin",
        ),
        event(
            601_300,
            "sb-1",
            "takeover",
            "took over from act-a: its lease is gone",
        ),
    ];
    let pool_box = |b: &str, role: &str, ch: &str| PoolBoxSnapshot {
        box_id: b.into(),
        role: role.into(),
        channel: ch.into(),
    };
    let pool = vec![
        pool_box("act-a", "standby", "news"),
        pool_box("sb-1", "active", "news"),
        pool_box("sb-2", "standby", ""),
    ];
    let mut fenced = on_air("news", "10:29:59;28", 900);
    fenced.role = "standby".into();
    fenced.state = "stopped".into();
    fenced.redundancy = RedundancySnapshot {
        box_id: "act-a".into(),
        role: "standby".into(),
        owner: "sb-1".into(),
        etcd_ok: true,
        events: events.clone(),
        pool: pool.clone(),
    };
    let mut active = on_air("news", "10:30:01;02", 12);
    active.redundancy = RedundancySnapshot {
        box_id: "sb-1".into(),
        role: "active".into(),
        owner: "sb-1".into(),
        etcd_ok: true,
        events,
        pool,
    };
    app.set_channels(vec![
        view("http://10.0.0.11:7070", fenced),
        view("http://10.0.0.21:7070", active),
    ]);
    app
}

fn render(app: &App, (w, h): (u16, u16)) -> Terminal<TestBackend> {
    let mut t = match Terminal::new(TestBackend::new(w, h)) {
        Ok(t) => t,
        Err(e) => panic!("terminal: {e}"),
    };
    if let Err(e) = t.draw(|f| ui::draw(f, app)) {
        panic!("draw: {e}");
    }
    t
}

fn snapshot_all(name: &str, app: &App) {
    for size in SIZES {
        let t = render(app, size);
        insta::assert_snapshot!(format!("{name}_{}x{}", size.0, size.1), t.backend());
    }
}

fn key(app: &mut App, code: KeyCode) {
    let _ = app.on_key(KeyEvent::new(code, KeyModifiers::NONE));
}

#[test]
fn overview_two_channels_on_air() {
    snapshot_all("overview_normal", &normal());
}

#[test]
fn overview_degraded_backup_down_and_input_lost() {
    snapshot_all("overview_degraded", &degraded());
}

#[test]
fn overview_unreachable_and_stale_channels() {
    snapshot_all("overview_unreachable", &unreachable());
}

#[test]
fn detail_on_air_channel() {
    let mut app = normal();
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.view, View::Detail);
    snapshot_all("detail_normal", &app);
}

#[test]
fn detail_degraded_channel_with_backup_selected() {
    let mut app = degraded();
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Down);
    snapshot_all("detail_degraded", &app);
}

#[test]
fn detail_unreachable_channel_shows_last_known_state() {
    let mut app = unreachable();
    key(&mut app, KeyCode::Enter);
    snapshot_all("detail_unreachable", &app);
}

#[test]
fn detail_of_nm_standby_shows_owner_and_takeover_events() {
    let mut app = nm_takeover();
    key(&mut app, KeyCode::Enter);
    snapshot_all("detail_nm_standby", &app);
    // Fail-back asks first, naming both boxes.
    key(&mut app, KeyCode::Char('F'));
    let question = app.confirm.as_ref().map(|c| c.question.clone());
    assert_eq!(
        question.as_deref(),
        Some("Fail back news from box sb-1 to box act-a? Handover at a fragment boundary.")
    );
}

#[test]
fn help_overlay() {
    let mut app = normal();
    key(&mut app, KeyCode::Char('?'));
    snapshot_all("help", &app);
}

#[test]
fn stop_confirmation_dialog() {
    let mut app = normal();
    key(&mut app, KeyCode::Char('s'));
    assert!(app.confirm.is_some());
    snapshot_all("confirm_stop", &app);
}

#[test]
fn empty_console_explains_discovery() {
    let t = render(&App::new(), (80, 24));
    let text = screen(t.backend().buffer());
    assert!(text.contains("No channels"), "{text}");
    assert!(text.contains("--connect URL"), "{text}");
}

fn screen(b: &Buffer) -> String {
    let mut s = String::new();
    for y in 0..b.area.height {
        for x in 0..b.area.width {
            s.push_str(b[(x, y)].symbol());
        }
        s.push('\n');
    }
    s
}

/// Foreground colour of the first cell of `needle` on the screen.
fn color_of(b: &Buffer, needle: &str) -> Option<Color> {
    for y in 0..b.area.height {
        let line: Vec<&str> = (0..b.area.width).map(|x| b[(x, y)].symbol()).collect();
        let text = line.concat();
        if let Some(byte_at) = text.find(needle) {
            // Cells hold one char each here (the status labels are ASCII, found after the
            // leading marker column), so count chars to get the column.
            let col = text[..byte_at].chars().count() as u16;
            return Some(b[(col, y)].fg);
        }
    }
    None
}

#[test]
fn status_colours_green_yellow_red_magenta() {
    let t = render(&degraded(), (80, 24));
    let b = t.backend().buffer();
    assert_eq!(color_of(b, "ON AIR"), Some(Color::Green));
    assert_eq!(color_of(b, "DEGRADED"), Some(Color::Yellow));

    let t = render(&unreachable(), (80, 24));
    assert_eq!(
        color_of(t.backend().buffer(), "UNREACHABLE"),
        Some(Color::Magenta)
    );

    let mut app = normal();
    if let Some(s) = app.channels[0].snapshot.as_mut() {
        s.state = "stopped".into();
    }
    let t = render(&app, (80, 24));
    assert_eq!(color_of(t.backend().buffer(), "OFF AIR"), Some(Color::Red));
}

#[test]
fn every_size_from_80x24_up_draws_without_panicking() {
    for app in [normal(), degraded(), unreachable()] {
        for view in [View::Overview, View::Detail] {
            for (w, h) in [
                (80, 24),
                (100, 30),
                (119, 35),
                (120, 36),
                (200, 60),
                (20, 5),
                (1, 1),
            ] {
                let mut a = app.clone();
                a.view = view;
                a.help = w % 2 == 0;
                let t = render(&a, (w, h));
                let text = screen(t.backend().buffer());
                if w >= 80 && h >= 24 && !a.help {
                    // The selected channel's name is always on screen.
                    let name = a
                        .selected_channel()
                        .map(|c| c.name.clone())
                        .unwrap_or_default();
                    assert!(text.contains(&name), "{w}x{h} {view:?}:\n{text}");
                }
            }
        }
    }
}
