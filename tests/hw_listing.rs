//! `smoothcast hw` listing logic on recorded-style `/proc/asound` and `/dev` trees (this machine
//! has neither capture nor sound cards).

use smoothcast::hw::list::{alsa_captures, render, scan};
use std::fs;
use std::path::Path;

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, text).unwrap();
}

/// An HDA codec (line in, not open) and a C920's USB microphone, as /proc/asound shows them.
fn asound_tree(root: &Path) {
    write(
        root,
        "cards",
        " 0 [PCH            ]: HDA-Intel - HDA Intel PCH\n                      HDA Intel PCH at 0xf7f10000 irq 32\n 1 [C920           ]: USB-Audio - HD Pro Webcam C920\n                      HD Pro Webcam C920 at usb-0000:00:14.0-2, high speed\n",
    );
    write(root, "card0/pcm0c/info", "card: 0\ndevice: 0\nsubdevice: 0\nstream: CAPTURE\nid: ALC892 Analog\nname: ALC892 Analog\nsubname: subdevice #0\n");
    write(root, "card0/pcm0c/sub0/hw_params", "closed\n");
    write(
        root,
        "card0/pcm0p/info",
        "stream: PLAYBACK\nname: ALC892 Analog\n",
    );
    write(
        root,
        "card0/pcm2c/info",
        "stream: CAPTURE\nname: ALC892 Alt Analog\n",
    );
    write(root, "card0/pcm2c/sub0/hw_params", "access: RW_INTERLEAVED\nformat: S32_LE\nsubformat: STD\nchannels: 2\nrate: 48000 (48000/1)\n");
    write(
        root,
        "card1/pcm0c/info",
        "stream: CAPTURE\nname: USB Audio\n",
    );
    write(root, "card1/pcm0c/sub0/hw_params", "closed\n");
    write(
        root,
        "card1/stream0",
        "Logitech HD Pro Webcam C920 at usb-0000:00:14.0-2, high speed : USB Audio\n\nCapture:\n  Status: Stop\n  Interface 3\n    Altset 1\n    Format: S16_LE\n    Channels: 2\n    Endpoint: 0x83 (3 IN) (ASYNC)\n    Rates: 16000, 24000, 32000\n    Data packet interval: 1000 us\n",
    );
}

#[test]
fn alsa_capture_devices_from_proc_asound() {
    let dir = tempfile::tempdir().unwrap();
    asound_tree(dir.path());
    let caps = alsa_captures(dir.path());
    let names: Vec<&str> = caps.iter().map(|c| c.alsa.as_str()).collect();
    assert_eq!(
        names,
        [
            "hw:CARD=PCH,DEV=0",
            "hw:CARD=PCH,DEV=2",
            "hw:CARD=C920,DEV=0"
        ],
        "capture PCMs only, playback skipped"
    );
    assert_eq!(
        (caps[0].channels.as_str(), caps[0].rates.as_str()),
        ("unknown", "unknown")
    );
    assert_eq!(caps[1].channels, "2 (in use)");
    assert_eq!(
        (caps[2].channels.as_str(), caps[2].rates.as_str()),
        ("2", "16000, 24000, 32000")
    );
    assert_eq!(caps[2].pcm, "USB Audio");
    assert_eq!(caps[2].name, "HD Pro Webcam C920");
}

#[test]
fn listing_without_video_devices_says_so_and_lists_audio() {
    let dev = tempfile::tempdir().unwrap();
    let asound = tempfile::tempdir().unwrap();
    asound_tree(asound.path());
    let report = scan(dev.path(), asound.path());
    let text = render(&report);
    assert!(text.contains("no V4L2 devices found"), "{text}");
    assert!(!text.contains("no ALSA capture devices found"), "{text}");
    assert!(text.contains("hw:CARD=C920,DEV=0"), "{text}");
}

#[test]
fn nodes_that_are_not_capture_devices_are_listed_as_skipped() {
    let dev = tempfile::tempdir().unwrap();
    fs::write(dev.path().join("video0"), b"").unwrap();
    fs::write(dev.path().join("videocodec"), b"").unwrap();
    let report = scan(dev.path(), Path::new("/nonexistent/asound"));
    assert!(report.video.is_empty());
    assert_eq!(
        report.video_skipped.len(),
        1,
        "only /dev/videoN nodes are probed"
    );
    let text = render(&report);
    assert!(text.contains("video0  skipped:"), "{text}");
    assert!(text.contains("no ALSA capture devices found"), "{text}");
}
