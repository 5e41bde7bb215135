//! The box hardware maps in `hw/` and profile resolution against them: a profile names logical
//! inputs, so the same profile resolves on any box whose map has them — and is refused, by
//! name, on a box that has not.

use smoothcast::hw::{resolve, HwError, HwMap};
use smoothcast::profile::{self, Plan};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn repo(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(p)
}

fn map(name: &str) -> HwMap {
    HwMap::load(&repo(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn plan(name: &str) -> Plan {
    profile::load(&repo(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn shipped_maps_describe_the_sdi4_and_the_webcam_box() {
    let sdi = map("hw/sdi4-box.toml");
    assert_eq!(sdi.model, "sdi4");
    let names: Vec<&str> = sdi.inputs.keys().map(String::as_str).collect();
    assert_eq!(names, ["line-in", "sdi1", "sdi2", "sdi3", "sdi4"]);
    assert!(sdi.inputs["line-in"].video.is_none());
    assert_eq!(
        sdi.inputs["sdi3"].video.as_ref().unwrap().path,
        Path::new("/dev/smoothcast/sdi3")
    );
    assert_eq!(sdi.loss.black_for, Duration::from_secs(2));
    assert_eq!(
        sdi.loss.slate.as_deref(),
        Some(Path::new("/etc/smoothcast/slate.png"))
    );

    let cam = map("hw/webcam-box.toml");
    assert_eq!(cam.model, "webcam");
    assert!(cam.inputs["usb-mic"].video.is_none());
    assert_eq!(cam.inputs["usb-mic"].audio.as_ref().unwrap().channels, [1]);
    assert_eq!(cam.loss.slate, None, "built-in slate");
}

#[test]
fn studio_profile_resolves_on_the_sdi4_box() {
    let r = resolve(
        &plan("profiles/studio-1080p.toml"),
        &map("hw/sdi4-box.toml"),
    )
    .unwrap();
    let v = r.video.unwrap();
    assert_eq!(v.input, "sdi1");
    assert_eq!(v.path, Path::new("/dev/smoothcast/sdi1"));
    let a = r.audio.unwrap();
    assert_eq!(a.alsa, "hw:CARD=sdi1,DEV=0");
    assert_eq!(a.channels, [1, 2], "embedded channels 1 and 2");
}

#[test]
fn webcam_profile_resolves_on_the_webcam_box() {
    let r = resolve(
        &plan("profiles/webcam-720p.toml"),
        &map("hw/webcam-box.toml"),
    )
    .unwrap();
    assert_eq!(r.video.unwrap().path, Path::new("/dev/smoothcast/webcam"));
    let a = r.audio.unwrap();
    assert_eq!(
        (a.alsa.as_str(), a.channels.as_slice()),
        ("hw:CARD=usbmic,DEV=0", &[1u16][..])
    );
}

#[test]
fn studio_profile_copied_to_the_webcam_box_is_refused_by_input_name() {
    let e = resolve(
        &plan("profiles/studio-1080p.toml"),
        &map("hw/webcam-box.toml"),
    )
    .unwrap_err();
    assert!(
        matches!(e, HwError::MissingInput { kind: "video", .. }),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("no input \"sdi1\" for the video") && msg.contains("it has: webcam"),
        "{msg}"
    );
    assert!(e.is_bad_input());
}

#[test]
fn audio_only_input_cannot_be_the_video() {
    let p = profile::from_toml(
        &std::fs::read_to_string(repo("profiles/studio-1080p.toml"))
            .unwrap()
            .replace(
                "input = \"sdi1\"               # logical",
                "input = \"line-in\"            # logical",
            ),
        "t.toml",
    )
    .unwrap();
    let e = resolve(&p, &map("hw/sdi4-box.toml")).unwrap_err();
    assert!(
        e.to_string().contains("no input \"line-in\" for the video"),
        "{e}"
    );
    assert!(e.to_string().contains("sdi1, sdi2, sdi3, sdi4"), "{e}");
}

#[test]
fn channel_map_beyond_the_input_channels_is_refused() {
    let text = std::fs::read_to_string(repo("profiles/studio-1080p.toml"))
        .unwrap()
        .replace("channel_map = [1, 2]", "channel_map = [9, 10]");
    let e = resolve(
        &profile::from_toml(&text, "t.toml").unwrap(),
        &map("hw/sdi4-box.toml"),
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            HwError::Channel {
                wanted: 9,
                channels: 8,
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn udev_rules_create_every_device_name_the_maps_use() {
    let rules = std::fs::read_to_string(repo("hw/99-smoothcast.rules")).unwrap();
    for name in ["hw/sdi4-box.toml", "hw/webcam-box.toml"] {
        let m = map(name);
        for (input, i) in &m.inputs {
            if let Some(v) = &i.video {
                let link = v
                    .path
                    .strip_prefix("/dev")
                    .unwrap_or_else(|_| panic!("{name}: {input} is not under /dev"));
                assert!(
                    rules.contains(&format!("SYMLINK+=\"{}\"", link.display())),
                    "{name}: no udev rule creates {}",
                    v.path.display()
                );
            }
            if let Some(a) = &i.audio {
                let id = a
                    .alsa
                    .strip_prefix("hw:CARD=")
                    .and_then(|r| r.split(',').next())
                    .unwrap_or_else(|| panic!("{name}: {} is not hw:CARD=…", a.alsa));
                // Motherboard codecs have stable ids of their own.
                if id != "PCH" {
                    assert!(
                        rules.contains(&format!("ATTR{{id}}=\"{id}\"")),
                        "{name}: no udev rule names ALSA card {id}"
                    );
                }
            }
        }
    }
}

#[test]
fn invalid_maps_are_refused_with_the_field() {
    let p = Path::new("/etc/smoothcast/hw.toml");
    let cases = [
        ("[box]\nmodel = \"x\"\nfoo = 1\n", "unknown field `foo`"),
        (
            "[box]\nmodel = \"x\"\n[input.a.video]\ndevice = \"video0\"\n",
            "input.a.video.device",
        ),
        (
            "[box]\nmodel = \"x\"\n[input.a.audio]\nalsa = \"hw:0\"\nchannels = []\n",
            "input.a.audio.channels",
        ),
        (
            "[box]\nmodel = \"x\"\n[input.a]\n",
            "neither video nor audio",
        ),
        (
            "[box]\nmodel = \"x\"\n[input_loss]\nblack_for = -1.0\n",
            "input_loss.black_for",
        ),
        (
            "[box]\nmodel = \"x\"\n[input.\"bad name\".audio]\nalsa = \"hw:0\"\nchannels = [1]\n",
            "bad name",
        ),
    ];
    for (text, want) in cases {
        let e = HwMap::parse(text, p).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains(want) && msg.contains("/etc/smoothcast/hw.toml"),
            "{text}: {msg}"
        );
    }
    // A missing map is a configuration error with the path in it.
    let e = HwMap::load(Path::new("/nonexistent/hw.toml")).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/hw.toml"));
}
