//! `smoothcast hw`: what capture hardware the kernel sees.
//!
//! V4L2: every `/dev/videoN` node is probed (driver, card, bus, inputs, formats, sizes,
//! rates); nodes that are not video capture devices (a UVC webcam's metadata node) are listed
//! as skipped. ALSA: read from `/proc/asound` without opening anything (opening a capture
//! device could disturb a running channel): the cards, their capture PCMs (`pcmNc`), and the
//! channels and rates where the kernel tells them — USB audio's `stream*` files always do, the
//! `hw_params` of a PCM only while it is open; otherwise they are "unknown".
//!
//! Both roots are parameters, so the listing is tested on recorded `/proc/asound` trees.

use crate::capture::v4l2::device;
use crate::capture::v4l2::negotiate::CapabilitySet;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Most entries read from one directory or lines from one `/proc` file (bounds memory on a
/// strange system).
const MAX_ENTRIES: usize = 4096;

/// Everything the listing found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct HwReport {
    /// Video capture devices, by node.
    pub video: Vec<VideoNode>,
    /// Video nodes that could not be probed or are not capture devices.
    pub video_skipped: Vec<SkippedNode>,
    /// ALSA capture PCMs.
    pub audio: Vec<AlsaCapture>,
}

/// One video capture device.
#[derive(Clone, Debug, Serialize)]
pub struct VideoNode {
    /// Device node (`/dev/video0`).
    pub path: String,
    /// Stable names pointing at it (`/dev/smoothcast/webcam`).
    pub aliases: Vec<String>,
    /// What it offers (the same shape as the negotiation fixtures in `tests/data/v4l2/`).
    pub capabilities: CapabilitySet,
}

/// A node that was not listed as a capture device, and why.
#[derive(Clone, Debug, Serialize)]
pub struct SkippedNode {
    /// The device node.
    pub path: String,
    /// Why it is not listed.
    pub reason: String,
}

/// One ALSA capture PCM.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AlsaCapture {
    /// Card number.
    pub card: u32,
    /// Card id (stable across boots, unlike the number).
    pub id: String,
    /// Card driver.
    pub driver: String,
    /// Card name.
    pub name: String,
    /// PCM device number.
    pub device: u32,
    /// PCM name.
    pub pcm: String,
    /// The name to put in a hw map (`hw:CARD=C920,DEV=0`).
    pub alsa: String,
    /// Channel counts offered, or "unknown".
    pub channels: String,
    /// Sample rates offered, or "unknown".
    pub rates: String,
}

/// Scans `/dev` and `/proc/asound`.
pub fn scan_system() -> HwReport {
    scan(Path::new("/dev"), Path::new("/proc/asound"))
}

/// Scans video nodes under `dev` and ALSA cards under `asound`.
pub fn scan(dev: &Path, asound: &Path) -> HwReport {
    let mut report = HwReport::default();
    let aliases = stable_names(&dev.join("smoothcast"));
    for node in video_nodes(dev) {
        let path = node.display().to_string();
        match device::probe(&node) {
            Ok(capabilities) => {
                let canon = std::fs::canonicalize(&node).unwrap_or_else(|_| node.clone());
                report.video.push(VideoNode {
                    aliases: aliases
                        .iter()
                        .filter(|(_, target)| *target == canon)
                        .map(|(a, _)| a.display().to_string())
                        .collect(),
                    path,
                    capabilities,
                });
            }
            Err(e) => report.video_skipped.push(SkippedNode {
                path,
                reason: e.to_string(),
            }),
        }
    }
    report.audio = alsa_captures(asound);
    report
}

/// `/dev/videoN` nodes in numeric order.
fn video_nodes(dev: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dev) else {
        return Vec::new();
    };
    let mut nodes: Vec<(u32, PathBuf)> = rd
        .flatten()
        .take(MAX_ENTRIES)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let n = name.strip_prefix("video")?.parse::<u32>().ok()?;
            Some((n, e.path()))
        })
        .collect();
    nodes.sort();
    nodes.into_iter().map(|(_, p)| p).collect()
}

/// Symlinks in `dir` (the udev rules' `/dev/smoothcast/`) and what they resolve to.
fn stable_names(dir: &Path) -> Vec<(PathBuf, PathBuf)> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.flatten()
        .take(MAX_ENTRIES)
        .filter_map(|e| Some((e.path(), std::fs::canonicalize(e.path()).ok()?)))
        .collect()
}

fn read_small(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    Some(
        text.lines()
            .take(MAX_ENTRIES)
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

/// A line of `/proc/asound/cards`: ` 1 [C920           ]: USB-Audio - HD Pro Webcam C920`.
fn parse_card_line(line: &str) -> Option<(u32, String, String, String)> {
    let (num, rest) = line.trim_start().split_once(' ')?;
    let num = num.parse().ok()?;
    let rest = rest.trim_start().strip_prefix('[')?;
    let (id, rest) = rest.split_once(']')?;
    let rest = rest.trim_start().strip_prefix(':')?;
    let (driver, name) = rest.split_once(" - ").unwrap_or((rest, ""));
    Some((
        num,
        id.trim().to_string(),
        driver.trim().to_string(),
        name.trim().to_string(),
    ))
}

/// `/proc/asound/cards` → (number, id, driver, name).
pub fn parse_cards(text: &str) -> Vec<(u32, String, String, String)> {
    text.lines().filter_map(parse_card_line).collect()
}

/// A `pcmNc/info` file's `name:` field.
fn info_name(text: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix("name:"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Channels and rates of an open PCM from `sub0/hw_params` (`closed` when not open).
pub fn parse_hw_params(text: &str) -> Option<(String, String)> {
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k))
            .map(|v| v.split_whitespace().next().unwrap_or("").to_string())
    };
    let ch = field("channels:")?;
    let rate = field("rate:")?;
    Some((format!("{ch} (in use)"), format!("{rate} (in use)")))
}

/// Channels and rates of the `Capture:` sections of a USB audio `stream*` file.
pub fn parse_usb_stream(text: &str) -> Option<(String, String)> {
    let mut in_capture = false;
    let mut channels: Vec<String> = Vec::new();
    let mut rates: Vec<String> = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if !line.starts_with(' ') && !t.is_empty() {
            in_capture = t.starts_with("Capture:");
            continue;
        }
        if !in_capture {
            continue;
        }
        if let Some(v) = t.strip_prefix("Channels:") {
            let v = v.trim().to_string();
            if !channels.contains(&v) {
                channels.push(v);
            }
        } else if let Some(v) = t.strip_prefix("Rates:") {
            for r in v.split(',') {
                let r = r.trim().to_string();
                if !r.is_empty() && !rates.contains(&r) {
                    rates.push(r);
                }
            }
        }
    }
    (!channels.is_empty()).then(|| (channels.join(", "), rates.join(", ")))
}

/// Every capture PCM of every card under `asound`.
pub fn alsa_captures(asound: &Path) -> Vec<AlsaCapture> {
    let Some(cards) = read_small(&asound.join("cards")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (card, id, driver, name) in parse_cards(&cards) {
        let dir = asound.join(format!("card{card}"));
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut pcms: Vec<u32> = rd
            .flatten()
            .take(MAX_ENTRIES)
            .filter_map(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.strip_prefix("pcm")?.strip_suffix('c')?.parse().ok()
            })
            .collect();
        pcms.sort_unstable();
        // USB audio describes its capture formats in stream0 (one per USB interface).
        let usb = read_small(&dir.join("stream0")).and_then(|t| parse_usb_stream(&t));
        for device in pcms {
            let pdir = dir.join(format!("pcm{device}c"));
            let pcm = read_small(&pdir.join("info"))
                .map(|t| info_name(&t))
                .unwrap_or_default();
            let open =
                read_small(&pdir.join("sub0").join("hw_params")).and_then(|t| parse_hw_params(&t));
            let (channels, rates) = open
                .or_else(|| usb.clone())
                .unwrap_or_else(|| ("unknown".into(), "unknown".into()));
            out.push(AlsaCapture {
                card,
                alsa: format!("hw:CARD={id},DEV={device}"),
                id: id.clone(),
                driver: driver.clone(),
                name: name.clone(),
                device,
                pcm,
                channels,
                rates,
            });
        }
    }
    out
}

/// The human-readable listing.
pub fn render(report: &HwReport) -> String {
    let mut s = String::new();
    s.push_str("V4L2 video capture devices\n");
    if report.video.is_empty() {
        s.push_str("  no V4L2 devices found\n");
    }
    for v in &report.video {
        let c = &v.capabilities;
        let _ = write!(
            s,
            "  {}  {}  \"{}\"  bus {}",
            v.path, c.driver, c.card, c.bus
        );
        if !v.aliases.is_empty() {
            let _ = write!(s, "  (= {})", v.aliases.join(", "));
        }
        s.push('\n');
        for i in &c.inputs {
            let _ = write!(s, "    input {}: {}", i.index, i.name);
            if !i.standards.is_empty() {
                let _ = write!(s, "  standards {}", i.standards.join(" "));
            }
            if !i.status.is_empty() {
                let _ = write!(s, "  [{}]", i.status.join(", "));
            }
            s.push('\n');
        }
        for f in &c.formats {
            let _ = writeln!(s, "    {:<4}  {}", f.fourcc, f.description);
            for size in &f.sizes {
                let rates: Vec<String> = size
                    .intervals
                    .iter()
                    .map(|i| {
                        let fps = i.fps();
                        if (fps - fps.round()).abs() < 1e-6 {
                            format!("{fps:.0}")
                        } else {
                            format!("{fps:.3}")
                        }
                    })
                    .collect();
                let _ = writeln!(
                    s,
                    "          {:>9}  {} fps",
                    format!("{}x{}", size.width, size.height),
                    if rates.is_empty() {
                        "?".to_string()
                    } else {
                        rates.join(", ")
                    }
                );
            }
        }
    }
    for k in &report.video_skipped {
        let _ = writeln!(s, "  {}  skipped: {}", k.path, k.reason);
    }
    s.push_str("ALSA capture devices\n");
    if report.audio.is_empty() {
        s.push_str("  no ALSA capture devices found\n");
    } else {
        let _ = writeln!(
            s,
            "  {:<24} {:<28} {:<20} {:<14} rates",
            "alsa", "card", "pcm", "channels"
        );
    }
    for a in &report.audio {
        let _ = writeln!(
            s,
            "  {:<24} {:<28} {:<20} {:<14} {}",
            a.alsa,
            format!("{} {} ({})", a.card, a.name, a.driver),
            a.pcm,
            a.channels,
            a.rates
        );
    }
    s
}

/// Runs `smoothcast hw`: prints the listing (or JSON) on stdout. Never fails for missing
/// hardware: a box without devices says so and exits 0.
pub fn run(json: bool) -> Result<String, serde_json::Error> {
    let report = scan_system();
    if json {
        let mut s = serde_json::to_string_pretty(&report)?;
        s.push('\n');
        Ok(s)
    } else {
        Ok(render(&report))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_lines_parse_and_continuation_lines_do_not() {
        let text = " 0 [PCH            ]: HDA-Intel - HDA Intel PCH\n                      HDA Intel PCH at 0xf7f10000 irq 32\n 1 [C920           ]: USB-Audio - HD Pro Webcam C920\n                      HD Pro Webcam C920 at usb-0000:00:14.0-2, high speed\n";
        let cards = parse_cards(text);
        assert_eq!(cards.len(), 2);
        assert_eq!(
            cards[1],
            (
                1,
                "C920".into(),
                "USB-Audio".into(),
                "HD Pro Webcam C920".into()
            )
        );
    }

    #[test]
    fn hw_params_closed_is_unknown_and_open_gives_values() {
        assert_eq!(parse_hw_params("closed\n"), None);
        let open = "access: RW_INTERLEAVED\nformat: S16_LE\nsubformat: STD\nchannels: 2\nrate: 48000 (48000/1)\nperiod_size: 1024\n";
        assert_eq!(
            parse_hw_params(open),
            Some(("2 (in use)".into(), "48000 (in use)".into()))
        );
    }

    #[test]
    fn usb_stream_capture_section_gives_channels_and_rates() {
        let text = "Logitech HD Pro Webcam C920 at usb-0000:00:14.0-2, high speed : USB Audio\n\nCapture:\n  Status: Stop\n  Interface 3\n    Altset 1\n    Format: S16_LE\n    Channels: 2\n    Endpoint: 0x83 (3 IN) (ASYNC)\n    Rates: 16000, 24000, 32000\n    Data packet interval: 1000 us\n";
        assert_eq!(
            parse_usb_stream(text),
            Some(("2".into(), "16000, 24000, 32000".into()))
        );
        let playback_only =
            "X : USB Audio\n\nPlayback:\n  Interface 1\n    Channels: 2\n    Rates: 48000\n";
        assert_eq!(parse_usb_stream(playback_only), None);
    }
}
