//! Drawing: a pure function from [`App`] to a frame.
//!
//! Nothing here reads a clock, a socket or a file, so a `TestBackend` frame is a faithful
//! picture of what the operator sees (the snapshot tests in `tests/console_draw.rs`). Layouts
//! are planned for 80×24 first; wider and taller terminals get extra columns, per-stream rows
//! and a side column instead of stretched cells.

use super::app::{App, ChannelView, Link, Shown, View};
use super::model::{Health, StatusSnapshot, StreamSnapshot};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Row, Sparkline, Table, Wrap};
use ratatui::Frame;
use std::time::Duration;

/// Width from which the overview adds columns and the detail view gets a side column.
pub const WIDE: u16 = 120;
/// Height from which the detail view lists every stream under its destination.
pub const TALL: u16 = 36;

/// The colour of a status.
pub fn shown_color(shown: Shown) -> Color {
    match shown {
        Shown::Health(Health::OnAir) => Color::Green,
        Shown::Health(Health::Degraded) => Color::Yellow,
        Shown::Health(Health::OffAir) => Color::Red,
        Shown::Stale(_) | Shown::Connecting => Color::DarkGray,
        Shown::Unreachable => Color::Magenta,
        Shown::Standby => Color::Cyan,
    }
}

/// The status label (`ON AIR`, `DEGRADED`, `OFF AIR`, `UNREACHABLE`, `stale`, …).
pub fn shown_label(shown: Shown) -> String {
    match shown {
        Shown::Health(h) => h.label().to_string(),
        Shown::Stale(h) => format!("{}?", h.label()),
        Shown::Unreachable => "UNREACHABLE".into(),
        Shown::Connecting => "connecting".into(),
        Shown::Standby => "STANDBY".into(),
    }
}

/// Draws the whole console.
pub fn draw(frame: &mut Frame, app: &App) {
    let area = frame.area();
    let [title, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(area);
    match (app.view, app.selected_channel()) {
        (View::Detail, Some(ch)) => {
            draw_detail_title(frame, title, ch);
            draw_detail(frame, body, app, ch);
        }
        _ => {
            draw_overview_title(frame, title, app);
            draw_overview(frame, body, app);
        }
    }
    draw_footer(frame, footer, app);
    if app.help {
        draw_help(frame, area);
    }
    if let Some(c) = &app.confirm {
        draw_confirm(frame, area, &c.question);
    }
}

fn title_style() -> Style {
    Style::new().fg(Color::Black).bg(Color::Gray)
}

fn draw_overview_title(frame: &mut Frame, area: Rect, app: &App) {
    let mut counts = [0usize; 4];
    for c in &app.channels {
        let i = match c.shown() {
            Shown::Health(Health::OnAir) => 0,
            Shown::Health(Health::Degraded) => 1,
            Shown::Health(Health::OffAir) => 2,
            _ => 3,
        };
        counts[i] += 1;
    }
    let mut spans = vec![
        Span::raw(" smoothcast console ").bold(),
        Span::raw(format!(
            "│ {} channel{}: ",
            app.channels.len(),
            if app.channels.len() == 1 { "" } else { "s" }
        )),
        Span::raw(format!("{} on air", counts[0])),
    ];
    for (n, label) in [
        (counts[1], "degraded"),
        (counts[2], "off air"),
        (counts[3], "no answer"),
    ] {
        if n > 0 {
            spans.push(Span::raw(format!(", {n} {label}")));
        }
    }
    frame.render_widget(Paragraph::new(Line::from(spans)).style(title_style()), area);
}

fn draw_footer(frame: &mut Frame, area: Rect, app: &App) {
    let line = match &app.message {
        Some(m) => Line::from(vec![Span::raw(" "), Span::raw(m.clone()).bold()]),
        None => {
            let keys: &[(&str, &str)] = match app.view {
                View::Overview => &[
                    ("↑↓", "select"),
                    ("Enter", "detail"),
                    ("g", "start"),
                    ("s", "stop"),
                    ("r", "restart"),
                    ("?", "help"),
                    ("q", "quit"),
                ],
                View::Detail => &[
                    ("Esc", "back"),
                    ("Tab", "channel"),
                    ("↑↓", "destination"),
                    ("e/d", "enable/disable"),
                    ("s", "stop"),
                    ("?", "help"),
                ],
            };
            let mut spans = vec![Span::raw(" ")];
            for (k, what) in keys {
                spans.push(Span::raw(*k).bold());
                spans.push(Span::raw(format!(" {what}  ")));
            }
            Line::from(spans)
        }
    };
    frame.render_widget(
        Paragraph::new(line).style(Style::new().fg(Color::Gray)),
        area,
    );
}

// ---------------------------------------------------------------- overview

fn draw_overview(frame: &mut Frame, area: Rect, app: &App) {
    if app.channels.is_empty() {
        let text = vec![
            Line::raw(""),
            Line::raw("  No channels."),
            Line::raw(""),
            Line::raw("  Channels announce themselves in $XDG_RUNTIME_DIR/smoothcast/ or"),
            Line::raw("  /run/smoothcast/; or start the console with --connect URL."),
        ];
        frame.render_widget(Paragraph::new(text), area);
        return;
    }
    let wide = area.width >= WIDE;
    // The table gets the room it needs; the rest shows the selected channel's alerts.
    let table_height = (app.channels.len() as u16 + 2).min(area.height);
    let [table_area, info_area] =
        Layout::vertical([Constraint::Length(table_height), Constraint::Min(0)]).areas(area);

    let mut header = vec![
        "", "CHANNEL", "STATUS", "TIMECODE", "INPUT", "kbit/s", "DEST",
    ];
    let mut widths = vec![
        Constraint::Length(1),
        Constraint::Length(if wide { 16 } else { 12 }),
        Constraint::Length(11),
        Constraint::Length(11),
        Constraint::Length(7),
        Constraint::Length(6),
        Constraint::Length(5),
    ];
    if wide {
        header.extend(["ROLE", "BITRATE", "CONTROL API"]);
        widths.extend([
            Constraint::Length(8),
            Constraint::Length(16),
            Constraint::Length(24),
        ]);
    }
    header.push("ALERTS");
    widths.push(Constraint::Fill(1));

    let rows: Vec<Row> = app
        .channels
        .iter()
        .enumerate()
        .map(|(i, ch)| overview_row(ch, i == app.selected, wide))
        .collect();
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(Style::new().add_modifier(Modifier::BOLD)))
        .column_spacing(1)
        .block(Block::new().borders(Borders::BOTTOM));
    frame.render_widget(table, table_area);

    if let Some(ch) = app.selected_channel() {
        draw_channel_notes(frame, info_area, ch);
    }
}

fn overview_row(ch: &ChannelView, selected: bool, wide: bool) -> Row<'static> {
    let shown = ch.shown();
    let color = shown_color(shown);
    let snap = ch.snapshot.as_ref();
    let dim = !matches!(ch.link, Link::Fresh);
    let val = |s: String| {
        if dim {
            Span::raw(s).fg(Color::DarkGray)
        } else {
            Span::raw(s)
        }
    };
    let mut cells: Vec<Line> = vec![
        Line::raw(if selected { "▶" } else { " " }),
        Line::from(Span::raw(ch.name.clone()).bold()),
        Line::from(Span::raw(shown_label(shown)).fg(color).bold()),
    ];
    match snap {
        Some(s) => {
            cells.push(Line::from(val(timecode_text(s))));
            let input = non_empty(&s.input.video.state, "-");
            let input_color = if dim {
                Color::DarkGray
            } else if s.input.video.is_live() {
                Color::Reset
            } else {
                Color::Yellow
            };
            cells.push(Line::from(Span::raw(input).fg(input_color)));
            cells.push(Line::from(val(format!("{:.0}", s.total_kbps()))));
            cells.push(dest_summary(s, dim));
        }
        None => {
            for _ in 0..4 {
                cells.push(Line::raw("-"));
            }
        }
    }
    if wide {
        cells.push(Line::from(val(snap
            .map(|s| s.role.clone())
            .unwrap_or_default())));
        cells.push(Line::from(val(mini_sparkline(&ch.bitrate_history, 16))));
        cells.push(Line::from(val(ch.url.clone())));
    }
    cells.push(channel_note(ch));
    let row = Row::new(cells);
    if selected {
        row.style(Style::new().add_modifier(Modifier::REVERSED))
    } else {
        row
    }
}

/// `live/enabled` destinations, coloured.
fn dest_summary(s: &StatusSnapshot, dim: bool) -> Line<'static> {
    let dests = &s.destinations;
    if dests.is_empty() {
        return Line::raw("none");
    }
    let enabled = dests.iter().filter(|d| d.enabled).count();
    let live = dests
        .iter()
        .filter(|d| d.enabled && !d.streams.is_empty() && d.live() == d.streams.len())
        .count();
    let color = if dim {
        Color::DarkGray
    } else if live == enabled && enabled > 0 {
        Color::Green
    } else if dests.iter().any(|d| d.live() > 0) {
        Color::Yellow
    } else {
        Color::Red
    };
    Line::from(Span::raw(format!("{live}/{enabled}")).fg(color))
}

/// The one-line note of the overview: why the console cannot tell, or the worst alert.
fn channel_note(ch: &ChannelView) -> Line<'static> {
    match &ch.link {
        Link::Unreachable { error } => {
            return Line::from(Span::raw(error.clone()).fg(Color::Magenta));
        }
        Link::Stale { age } => {
            return Line::from(
                Span::raw(format!("no answer for {}", fmt_age(*age))).fg(Color::DarkGray),
            );
        }
        Link::Connecting => return Line::raw(""),
        Link::Fresh => {}
    }
    let Some(s) = &ch.snapshot else {
        return Line::raw("");
    };
    let serious: Vec<_> = s.alerts.iter().filter(|a| a.is_serious()).collect();
    match serious.as_slice() {
        [] => Line::raw(""),
        [a] => Line::from(Span::raw(a.message.clone()).fg(Color::Yellow)),
        [a, rest @ ..] => Line::from(vec![
            Span::raw(format!("({}) ", rest.len() + 1)).fg(Color::Yellow),
            Span::raw(a.message.clone()).fg(Color::Yellow),
        ]),
    }
}

/// Alerts and console events of the selected channel under the overview table.
fn draw_channel_notes(frame: &mut Frame, area: Rect, ch: &ChannelView) {
    if area.height < 2 {
        return;
    }
    let mut lines: Vec<Line> = Vec::new();
    lines.push(Line::from(vec![
        Span::raw(ch.name.clone()).bold(),
        Span::raw(" ─ "),
        Span::raw(shown_label(ch.shown())).fg(shown_color(ch.shown())),
        Span::raw(format!("  {}", ch.url)).fg(Color::DarkGray),
    ]));
    lines.extend(link_banner(ch));
    if let Some(s) = &ch.snapshot {
        lines.extend(preview_lines(s));
        for a in &s.alerts {
            lines.push(alert_line(&a.severity, &a.message));
        }
    }
    let room = usize::from(area.height).saturating_sub(lines.len());
    let skip = ch.events.len().saturating_sub(room);
    for e in ch.events.iter().skip(skip) {
        lines.push(Line::from(Span::raw(e.clone()).fg(Color::DarkGray)));
    }
    frame.render_widget(Paragraph::new(lines), area);
}

/// A few lines summing up a channel under the overview table: destinations, ladder, audio.
fn preview_lines(s: &StatusSnapshot) -> Vec<Line<'static>> {
    let label = |t: &str| Span::raw(format!("{t:<13}")).fg(Color::DarkGray);
    let mut dests = vec![label("Destinations")];
    if s.destinations.is_empty() {
        dests.push(Span::raw("none"));
    }
    for (i, d) in s.destinations.iter().enumerate() {
        if i > 0 {
            dests.push(Span::raw(" · "));
        }
        let state = d.state().to_string();
        dests.push(Span::raw(format!("{} ", d.name)));
        dests.push(Span::raw(state.clone()).fg(session_state_color(&state)));
        dests.push(Span::raw(format!(" {}/{}", d.live(), d.streams.len())));
    }
    let mut ladder = vec![label("Ladder")];
    for (i, r) in s.rungs.iter().enumerate() {
        if i > 0 {
            ladder.push(Span::raw(" · "));
        }
        ladder.push(Span::raw(format!(
            "{}p {:.0}k {:.2}fps",
            r.height, r.bitrate_kbps, r.fps
        )));
    }
    let mut audio = vec![label("Audio pk/rms")];
    let levels = &s.input.audio;
    for (c, (p, r)) in levels.peak_dbfs.iter().zip(&levels.rms_dbfs).enumerate() {
        if c > 0 {
            audio.push(Span::raw(" · "));
        }
        audio.push(
            Span::raw(format!("{}/{}", fmt_db(*p).trim(), fmt_db(*r).trim())).fg(level_color(*r)),
        );
    }
    vec![Line::from(dests), Line::from(ladder), Line::from(audio)]
}

fn link_banner(ch: &ChannelView) -> Option<Line<'static>> {
    match &ch.link {
        Link::Unreachable { error } => Some(Line::from(vec![
            Span::raw("NOT ANSWERING").fg(Color::Magenta).bold(),
            Span::raw(format!(": {error}")).fg(Color::Magenta),
            Span::raw(if ch.snapshot.is_some() {
                " (last known state shown)"
            } else {
                ""
            })
            .fg(Color::DarkGray),
        ])),
        Link::Stale { age } => Some(Line::from(
            Span::raw(format!(
                "STALE: no answer for {}, showing the last one",
                fmt_age(*age)
            ))
            .fg(Color::DarkGray)
            .bold(),
        )),
        Link::Connecting => Some(Line::from(Span::raw("connecting…").fg(Color::DarkGray))),
        Link::Fresh => None,
    }
}

fn alert_line(severity: &str, message: &str) -> Line<'static> {
    let color = match severity.to_ascii_lowercase().as_str() {
        "critical" | "error" | "alarm" => Color::Red,
        "info" | "notice" | "debug" => Color::Cyan,
        _ => Color::Yellow,
    };
    Line::from(vec![
        Span::raw(format!("{:<8} ", severity.to_ascii_uppercase())).fg(color),
        Span::raw(message.to_string()),
    ])
}

// ---------------------------------------------------------------- detail

fn draw_detail_title(frame: &mut Frame, area: Rect, ch: &ChannelView) {
    let shown = ch.shown();
    let mut spans = vec![
        Span::raw(format!(" {} ", ch.name)).bold(),
        Span::raw(format!(" {} ", shown_label(shown)))
            .fg(Color::Black)
            .bg(shown_color(shown))
            .bold(),
    ];
    if let Some(s) = &ch.snapshot {
        if !s.role.is_empty() {
            let color = match s.role.as_str() {
                "fenced" => Color::Red,
                "standby" => Color::Cyan,
                _ => Color::Reset,
            };
            spans.push(Span::raw(format!(" {}", s.role)).fg(color));
        }
        let r = &s.redundancy;
        if r.is_member() {
            let owner = if r.owner.is_empty() { "none" } else { &r.owner };
            spans.push(Span::raw(format!(" (box {}, owner {owner})", r.box_id)));
        }
        if !s.state.is_empty() {
            spans.push(Span::raw(format!(" · {}", s.state)));
        }
    }
    spans.push(Span::raw(format!(" · {}", ch.url)));
    frame.render_widget(Paragraph::new(Line::from(spans)).style(title_style()), area);
}

fn draw_detail(frame: &mut Frame, area: Rect, app: &App, ch: &ChannelView) {
    let banner = link_banner(ch);
    let [banner_area, area] = Layout::vertical([
        Constraint::Length(u16::from(banner.is_some())),
        Constraint::Min(0),
    ])
    .areas(area);
    if let Some(b) = banner {
        frame.render_widget(Paragraph::new(b), banner_area);
    }
    let Some(s) = &ch.snapshot else {
        frame.render_widget(
            Paragraph::new("  No status received from this channel yet."),
            area,
        );
        return;
    };
    let wide = area.width >= WIDE;
    let tall = area.height + 2 >= TALL;
    let streams: usize = s.destinations.iter().map(|d| d.streams.len()).sum();
    let dest_rows = if tall {
        s.destinations.len() + streams
    } else {
        s.destinations.len()
    }
    .max(1);
    let levels = &s.input.audio;
    let audio_rows = levels.peak_dbfs.len().max(levels.rms_dbfs.len()).max(1);

    if wide {
        let [left, right] =
            Layout::horizontal([Constraint::Percentage(58), Constraint::Percentage(42)])
                .spacing(1)
                .areas(area);
        let [info, rungs, dests, rest] = Layout::vertical([
            Constraint::Length(2),
            Constraint::Length(s.rungs.len().max(1) as u16 + 2),
            Constraint::Length(dest_rows as u16 + 2),
            Constraint::Min(0),
        ])
        .areas(left);
        draw_info(frame, info, s, true);
        draw_rungs(frame, rungs, s, true);
        draw_destinations(frame, dests, app, s, true, tall);
        draw_log(frame, rest, ch, s);
        let [meters, spark, alerts] = Layout::vertical([
            Constraint::Length(audio_rows as u16 + 1),
            Constraint::Length(if tall { 8 } else { 4 }),
            Constraint::Min(0),
        ])
        .areas(right);
        draw_meters(frame, meters, s);
        draw_sparkline(frame, spark, ch, s);
        draw_alerts(frame, alerts, s);
    } else {
        let [info, rungs, dests, mid, bottom] = Layout::vertical([
            Constraint::Length(2),
            Constraint::Length(s.rungs.len().max(1) as u16 + 2),
            Constraint::Length(dest_rows as u16 + 2),
            Constraint::Length(audio_rows.max(2) as u16 + 1),
            Constraint::Min(0),
        ])
        .areas(area);
        draw_info(frame, info, s, false);
        draw_rungs(frame, rungs, s, false);
        draw_destinations(frame, dests, app, s, false, tall);
        let [meters, spark] =
            Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
                .spacing(1)
                .areas(mid);
        draw_meters(frame, meters, s);
        draw_sparkline(frame, spark, ch, s);
        let [alerts, log] =
            Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
                .spacing(1)
                .areas(bottom);
        draw_alerts(frame, alerts, s);
        draw_log(frame, log, ch, s);
    }
}

fn section(title: &str) -> Block<'static> {
    Block::new()
        .borders(Borders::TOP)
        .title(Span::raw(format!(" {title} ")).bold())
        .border_style(Style::new().fg(Color::DarkGray))
}

fn draw_info(frame: &mut Frame, area: Rect, s: &StatusSnapshot, wide: bool) {
    let video = &s.input.video;
    let input_color = if video.is_live() {
        Color::Green
    } else {
        Color::Yellow
    };
    let input_state = non_empty(&video.state, "?").to_uppercase();
    let mut first = vec![
        Span::raw(" TC ").fg(Color::DarkGray),
        Span::raw(timecode_text(s)).bold(),
    ];
    if !s.timecode.source.is_empty() {
        // The source's health when it has one worth showing (ltc locked/lost, fallback).
        let state = s.timecode.state.as_str();
        let (health, color) = match state {
            "" | "running" => (String::new(), Color::DarkGray),
            "lost" | "fallback" | "searching" => (format!(" {state}"), Color::Yellow),
            _ => (format!(" {state}"), Color::DarkGray),
        };
        first.push(Span::raw(format!(" ({}{health})", s.timecode.source)).fg(color));
    }
    first.push(Span::raw("  Input ").fg(Color::DarkGray));
    first.push(Span::raw(non_empty(&video.input, "?")));
    first.push(Span::raw(" "));
    first.push(Span::raw(input_state).fg(input_color).bold());
    let format = video.format();
    if !format.is_empty() {
        first.push(Span::raw(format!(" {format}")));
    }
    let mut second = vec![
        Span::raw(" Audio ").fg(Color::DarkGray),
        Span::raw(non_empty(&s.input.audio.input, "?")),
        Span::raw(audio_state_text(&s.input.audio.state))
            .fg(audio_state_color(&s.input.audio.state)),
        Span::raw("  Up ").fg(Color::DarkGray),
        Span::raw(fmt_age(Duration::from_secs_f64(s.uptime_secs.max(0.0)))),
        Span::raw("  Out ").fg(Color::DarkGray),
        Span::raw(fmt_kbps(s.total_kbps())),
    ];
    if wide {
        second.push(Span::raw("  Frame index ").fg(Color::DarkGray));
        second.push(Span::raw(s.timecode.frame_index.to_string()));
        if video.filled_frames > 0 {
            second.push(Span::raw("  Filled ").fg(Color::DarkGray));
            second.push(Span::raw(format!(
                "{}/{}",
                video.filled_frames, video.frames
            )));
        }
    }
    frame.render_widget(
        Paragraph::new(vec![Line::from(first), Line::from(second)]),
        area,
    );
}

fn draw_rungs(frame: &mut Frame, area: Rect, s: &StatusSnapshot, wide: bool) {
    let header = vec!["rung", "size", "fps", "kbit/s", "frames", "dropped", "dup"];
    let widths = vec![
        Constraint::Length(if wide { 20 } else { 16 }),
        Constraint::Length(9),
        Constraint::Length(6),
        Constraint::Length(7),
        Constraint::Length(9),
        Constraint::Length(7),
        Constraint::Length(6),
    ];
    let rows: Vec<Row> = s
        .rungs
        .iter()
        .map(|r| {
            let warn = |n: u64| {
                let t = Span::raw(n.to_string());
                if n > 0 {
                    t.fg(Color::Yellow)
                } else {
                    t
                }
            };
            Row::new(vec![
                Line::raw(r.name.clone()),
                Line::raw(if r.width > 0 {
                    format!("{}x{}", r.width, r.height)
                } else {
                    "-".into()
                }),
                Line::raw(format!("{:.2}", r.fps)),
                Line::raw(format!("{:.0}", r.bitrate_kbps)),
                Line::raw(r.frames.to_string()),
                Line::from(warn(r.dropped)),
                Line::from(warn(r.duplicated)),
            ])
        })
        .collect();
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(Style::new().fg(Color::DarkGray)))
        .column_spacing(1)
        .block(section("Ladder"));
    frame.render_widget(table, area);
}

fn audio_state_text(state: &str) -> String {
    if state.is_empty() {
        String::new()
    } else {
        format!(" {}", state.to_uppercase())
    }
}

fn audio_state_color(state: &str) -> Color {
    match state.to_ascii_lowercase().as_str() {
        "live" => Color::Green,
        "silent" => Color::Yellow,
        _ => Color::DarkGray,
    }
}

fn session_state_color(state: &str) -> Color {
    match state.to_ascii_lowercase().as_str() {
        "live" => Color::Green,
        "standby" | "disabled" | "stopped" | "idle" => Color::DarkGray,
        "probing" | "behind" => Color::Yellow,
        _ => Color::Red,
    }
}

fn draw_destinations(
    frame: &mut Frame,
    area: Rect,
    app: &App,
    s: &StatusSnapshot,
    wide: bool,
    per_stream: bool,
) {
    let mut header = vec![
        "", "dest", "role", "state", "live", "frags", "sent", "HTTP", "recon", "q/rp",
    ];
    let mut widths = vec![
        Constraint::Length(1),
        Constraint::Length(if wide { 14 } else { 9 }),
        Constraint::Length(7),
        Constraint::Length(8),
        Constraint::Length(4),
        Constraint::Length(6),
        Constraint::Length(7),
        Constraint::Length(4),
        Constraint::Length(5),
        Constraint::Length(5),
    ];
    if wide {
        header.push("last error");
        widths.push(Constraint::Fill(1));
    }
    let mut rows: Vec<Row> = Vec::new();
    if s.destinations.is_empty() {
        rows.push(Row::new(vec!["", "(no destinations)"]));
    }
    for (i, d) in s.destinations.iter().enumerate() {
        let selected = i == app.dest_selected;
        let state = d.state().to_string();
        let max = |f: fn(&StreamSnapshot) -> u64| d.streams.iter().map(f).max().unwrap_or(0);
        // The most telling answer: an error status if any session has one.
        let last = d
            .streams
            .iter()
            .map(|x| x.last_response)
            .find(|&c| c >= 300)
            .or_else(|| d.streams.iter().map(|x| x.last_response).find(|&c| c > 0));
        let mut cells = vec![
            Line::raw(if selected { "▶" } else { " " }),
            Line::from(Span::raw(d.name.clone()).bold()),
            Line::raw(d.role.clone()),
            Line::from(Span::raw(state.clone()).fg(session_state_color(&state))),
            Line::raw(format!("{}/{}", d.live(), d.streams.len())),
            Line::raw(d.sum(|x| x.fragments_sent).to_string()),
            Line::raw(fmt_bytes(d.sum(|x| x.bytes))),
            Line::raw(last.map_or("-".to_string(), |c| c.to_string())),
            Line::raw(d.sum(|x| x.reconnects).to_string()),
            Line::raw(format!(
                "{}/{}",
                max(|x| x.queue_depth),
                max(|x| x.replay_depth)
            )),
        ];
        if wide {
            let err = d
                .streams
                .iter()
                .map(|x| x.last_error.as_str())
                .find(|e| !e.is_empty())
                .unwrap_or("");
            cells.push(Line::from(Span::raw(err.to_string()).fg(Color::Red)));
        }
        let mut row = Row::new(cells);
        if selected && app.view == View::Detail {
            row = row.style(Style::new().add_modifier(Modifier::REVERSED));
        }
        rows.push(row);
        if per_stream {
            for x in &d.streams {
                let mut cells = vec![
                    Line::raw(""),
                    Line::from(
                        Span::raw(format!(" └ {}", short_stream(&s.channel, &x.stream_id)))
                            .fg(Color::DarkGray),
                    ),
                    Line::raw(""),
                    Line::from(Span::raw(x.state.clone()).fg(session_state_color(&x.state))),
                    Line::raw(""),
                    Line::raw(x.fragments_sent.to_string()),
                    Line::raw(fmt_bytes(x.bytes)),
                    Line::raw(if x.last_response > 0 {
                        x.last_response.to_string()
                    } else {
                        "-".into()
                    }),
                    Line::raw(x.reconnects.to_string()),
                    Line::raw(format!("{}/{}", x.queue_depth, x.replay_depth)),
                ];
                if wide {
                    cells.push(Line::from(Span::raw(x.last_error.clone()).fg(Color::Red)));
                }
                rows.push(Row::new(cells));
            }
        }
    }
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(Style::new().fg(Color::DarkGray)))
        .column_spacing(1)
        .block(section("Destinations"));
    frame.render_widget(table, area);
}

/// Meter scale: the bar spans −60…0 dBFS.
const METER_FLOOR: f64 = -60.0;

fn level_color(dbfs: f64) -> Color {
    if dbfs > -6.0 {
        Color::Red
    } else if dbfs > -18.0 {
        Color::Yellow
    } else {
        Color::Green
    }
}

/// One meter line: label, a bar filled to the RMS with a mark at the peak, and the numbers.
fn meter_line(label: &str, peak: f64, rms: f64, width: usize) -> Line<'static> {
    let numbers = format!(" {} {}", fmt_db(peak), fmt_db(rms));
    let bar_w = width.saturating_sub(label.len() + 1 + numbers.len()).max(1);
    let cells = |db: f64| -> usize {
        let frac = ((db - METER_FLOOR) / -METER_FLOOR).clamp(0.0, 1.0);
        (frac * bar_w as f64).round() as usize
    };
    let filled = cells(rms);
    let peak_at = cells(peak).saturating_sub(1);
    let mut bar = String::with_capacity(bar_w * 3);
    let mut rest = String::with_capacity(bar_w * 3);
    for i in 0..bar_w {
        if i < filled {
            bar.push('█');
        } else if i == peak_at && peak > METER_FLOOR {
            rest.push('▏');
        } else {
            rest.push('·');
        }
    }
    Line::from(vec![
        Span::raw(format!("{label} ")),
        Span::raw(bar).fg(level_color(rms)),
        Span::raw(rest).fg(level_color(peak)),
        Span::raw(numbers),
    ])
}

fn draw_meters(frame: &mut Frame, area: Rect, s: &StatusSnapshot) {
    let block = section("Audio dBFS pk/rms");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let levels = &s.input.audio;
    let n = levels.peak_dbfs.len().max(levels.rms_dbfs.len());
    if n == 0 {
        frame.render_widget(Paragraph::new(" no audio levels"), inner);
        return;
    }
    let lines: Vec<Line> = (0..n)
        .map(|c| {
            let label = match (n, c) {
                (2, 0) => "L".to_string(),
                (2, 1) => "R".to_string(),
                _ => (c + 1).to_string(),
            };
            let peak = levels
                .peak_dbfs
                .get(c)
                .copied()
                .unwrap_or(f64::NEG_INFINITY);
            let rms = levels.rms_dbfs.get(c).copied().unwrap_or(f64::NEG_INFINITY);
            meter_line(&label, peak, rms, usize::from(inner.width))
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), inner);
}

/// The bitrate history of the last `width` polls. The bars span the visible range (minimum to
/// maximum, both in the title) rather than zero to maximum: a constant-bitrate ladder would
/// otherwise be a solid block, and a dropout still shows because it lowers the minimum.
fn draw_sparkline(frame: &mut Frame, area: Rect, ch: &ChannelView, s: &StatusSnapshot) {
    let block_w = usize::from(area.width);
    let skip = ch.bitrate_history.len().saturating_sub(block_w);
    let visible = &ch.bitrate_history[skip..];
    let min = visible.iter().copied().min().unwrap_or(0);
    let max = visible.iter().copied().max().unwrap_or(0);
    let range = if max >= 1000 {
        format!("{:.2}–{:.2}", min as f64 / 1000.0, max as f64 / 1000.0)
    } else {
        format!("{min}–{max}k")
    };
    let title = format!("Bitrate {} ({range})", fmt_kbps(s.total_kbps()));
    let block = section(&title);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    // One eighth of a cell above zero for the minimum, so the baseline is still drawn.
    let floor = min.saturating_sub((max - min) / 8 + 1);
    let data: Vec<u64> = visible.iter().map(|v| v - floor).collect();
    frame.render_widget(
        Sparkline::default()
            .data(data)
            .max((max - floor).max(1))
            .style(Style::new().fg(Color::Cyan)),
        inner,
    );
}

fn draw_alerts(frame: &mut Frame, area: Rect, s: &StatusSnapshot) {
    let block = section(&format!("Alerts ({})", s.alerts.len()));
    let lines: Vec<Line> = if s.alerts.is_empty() {
        vec![Line::from(Span::raw(" none").fg(Color::DarkGray))]
    } else {
        s.alerts
            .iter()
            .map(|a| alert_line(&a.severity, &a.message))
            .collect()
    };
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false }),
        area,
    );
}

/// The log tail: the channel's own log lines (if the server sends any), then what the console
/// saw change (states, alerts, commands); newest last.
fn draw_log(frame: &mut Frame, area: Rect, ch: &ChannelView, s: &StatusSnapshot) {
    let block = section("Log");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let pool = &s.redundancy.pool;
    let pool_line = (!pool.is_empty()).then(|| {
        let boxes: Vec<String> = pool
            .iter()
            .map(|b| {
                if b.channel.is_empty() {
                    format!("{} {}", b.box_id, b.role)
                } else {
                    format!("{} {} {}", b.box_id, b.role, b.channel)
                }
            })
            .collect();
        Line::raw(format!("N+M pool: {}", boxes.join(" · ")))
    });
    let all: Vec<Line> = pool_line
        .into_iter()
        .chain(s.redundancy.events.iter().map(redundancy_event_line))
        .chain(s.log.iter().map(|l| Line::raw(l.clone())))
        .chain(ch.events.iter().map(|e| Line::raw(e.clone())))
        .collect();
    let skip = all.len().saturating_sub(usize::from(inner.height));
    frame.render_widget(
        Paragraph::new(all.into_iter().skip(skip).collect::<Vec<_>>()),
        inner,
    );
}

/// `hh:mm:ss N+M sb-1 takeover: detail` (UTC), coloured by kind.
fn redundancy_event_line(e: &crate::console::model::RedundancyEventSnapshot) -> Line<'static> {
    let secs = e.unix_ms / 1000 % 86_400;
    let color = match e.kind.as_str() {
        "fenced" | "refused" => Color::Red,
        "takeover" | "handover" | "failback" => Color::Yellow,
        _ => Color::Cyan,
    };
    Line::from(vec![
        Span::raw(format!(
            "{:02}:{:02}:{:02} N+M {} ",
            secs / 3600,
            secs / 60 % 60,
            secs % 60,
            e.box_id
        )),
        Span::raw(e.kind.clone()).fg(color).bold(),
        Span::raw(format!(": {}", e.detail)),
    ])
}

// ---------------------------------------------------------------- overlays

fn popup(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

const HELP: &[(&str, &str)] = &[
    (
        "↑/↓ j/k",
        "select channel (overview) or destination (detail)",
    ),
    ("Enter", "open the selected channel"),
    ("Esc", "back to the overview"),
    ("Tab ←/→", "next / previous channel"),
    ("g", "start the channel"),
    ("s", "stop the channel (asks first if on air)"),
    ("r", "restart the channel (asks first if on air)"),
    ("e / d", "enable / disable the selected destination"),
    (
        "F",
        "fail back: take the channel back on this N+M box (asks)",
    ),
    ("?", "this help"),
    ("q Ctrl-C", "quit the console (channels keep running)"),
];

fn draw_help(frame: &mut Frame, area: Rect) {
    let mut lines = vec![Line::raw("")];
    for (k, what) in HELP {
        lines.push(Line::from(vec![
            Span::raw(format!(" {k:<9} ")).bold().fg(Color::Cyan),
            Span::raw(*what),
        ]));
    }
    lines.push(Line::raw(""));
    lines.push(Line::from(
        Span::raw(" Colours: green on air, yellow degraded, red off air,").fg(Color::DarkGray),
    ));
    lines.push(Line::from(
        Span::raw(" magenta not answering, grey stale.  Any key closes.").fg(Color::DarkGray),
    ));
    let rect = popup(area, 72, lines.len() as u16 + 2);
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::bordered()
                .title(Span::raw(" Keys ").bold())
                .border_style(Style::new().fg(Color::Cyan)),
        ),
        rect,
    );
}

fn draw_confirm(frame: &mut Frame, area: Rect, question: &str) {
    let lines = vec![
        Line::raw(""),
        Line::from(Span::raw(question.to_string()).bold()),
        Line::raw(""),
        Line::from(vec![
            Span::raw(" y ").fg(Color::Black).bg(Color::Red).bold(),
            Span::raw(" yes      "),
            Span::raw(" any other key ")
                .fg(Color::Black)
                .bg(Color::Gray),
            Span::raw(" no"),
        ]),
    ];
    let rect = popup(area, 60, 8);
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: true })
            .centered()
            .block(
                Block::bordered()
                    .title(Span::raw(" Confirm ").bold())
                    .border_style(Style::new().fg(Color::Red)),
            ),
        rect,
    );
}

// ---------------------------------------------------------------- formatting

/// A stream id without the `<channel>-` prefix every stream of the channel shares.
fn short_stream<'a>(channel: &str, stream: &'a str) -> &'a str {
    stream
        .strip_prefix(channel)
        .and_then(|rest| rest.strip_prefix('-'))
        .filter(|rest| !rest.is_empty())
        .unwrap_or(stream)
}

fn non_empty(s: &str, fallback: &str) -> String {
    if s.is_empty() {
        fallback.to_string()
    } else {
        s.to_string()
    }
}

fn timecode_text(s: &StatusSnapshot) -> String {
    non_empty(&s.timecode.current, "--:--:--:--")
}

/// `42s`, `3m05s`, `2h07m`, `3d04h`.
pub fn fmt_age(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// Bytes with a decimal unit (`812 B`, `12.3 MB`).
pub fn fmt_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else if v < 10.0 {
        format!("{v:.1} {}", UNITS[u])
    } else {
        format!("{v:.0} {}", UNITS[u])
    }
}

/// kbit/s as `850 kbit/s` or `3.45 Mbit/s`.
pub fn fmt_kbps(kbps: f64) -> String {
    if kbps >= 1000.0 {
        format!("{:.2} Mbit/s", kbps / 1000.0)
    } else {
        format!("{kbps:.0} kbit/s")
    }
}

fn fmt_db(db: f64) -> String {
    if db.is_finite() && db > -100.0 {
        format!("{db:>5.1}")
    } else {
        " -inf".to_string()
    }
}

/// The last `width` samples as a one-line bar chart (`▁▃▅█`), scaled to their own maximum.
pub fn mini_sparkline(history: &[u64], width: usize) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let skip = history.len().saturating_sub(width);
    let tail = &history[skip..];
    let max = tail.iter().copied().max().unwrap_or(0).max(1);
    tail.iter()
        .map(|&v| BARS[((v.min(max) * 7 + max / 2) / max) as usize])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_compact() {
        assert_eq!(fmt_age(Duration::from_secs(5)), "5s");
        assert_eq!(fmt_age(Duration::from_secs(185)), "3m05s");
        assert_eq!(fmt_age(Duration::from_secs(7620)), "2h07m");
        assert_eq!(fmt_bytes(812), "812 B");
        assert_eq!(fmt_bytes(12_345_678), "12 MB");
        assert_eq!(fmt_bytes(1_234_567), "1.2 MB");
        assert_eq!(fmt_kbps(3450.0), "3.45 Mbit/s");
        assert_eq!(fmt_kbps(96.0), "96 kbit/s");
        assert_eq!(fmt_db(-120.0), " -inf");
        assert_eq!(fmt_db(-3.04), " -3.0");
    }

    #[test]
    fn mini_sparkline_scales_to_its_maximum() {
        assert_eq!(mini_sparkline(&[0, 50, 100], 16), "▁▅█");
        assert_eq!(mini_sparkline(&[1, 2, 3, 4], 2), "▆█");
        assert_eq!(mini_sparkline(&[], 4), "");
    }

    #[test]
    fn meter_fills_to_rms_and_marks_peak() {
        let line = meter_line("L", -6.0, -30.0, 30);
        let text: String = line.spans.iter().map(|s| s.content.as_ref()).collect();
        assert_eq!(text.chars().count(), 30, "{text}");
        assert!(text.starts_with("L ████████"), "{text}");
        assert!(text.contains('▏'), "{text}");
        assert!(text.ends_with(" -6.0 -30.0"), "{text}");
    }
}
