//! Format negotiation against the capability sets of real cards.
//!
//! The sets in `tests/data/v4l2/caps-*.json` are modelled on a Magewell Pro Capture, a
//! DeckLink SDI input behind a V4L2 bridge, a Logitech C920 and an stk1160 composite grabber
//! (there is no card on the build machines; each file says so in its `note`). They have the
//! shape `smoothcast hw --json` prints, so recordings from real boxes can replace them.

use smoothcast::capture::v4l2::convert::PixelFormat;
use smoothcast::capture::v4l2::interlace::Deinterlace;
use smoothcast::capture::v4l2::negotiate::{
    negotiate, CapabilitySet, Fraction, NegotiateError, RateMatch, Want,
};
use smoothcast::time::Rate;
use std::path::PathBuf;

fn caps(name: &str) -> CapabilitySet {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/v4l2")
        .join(name);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let set: CapabilitySet =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    assert!(
        set.note
            .as_deref()
            .is_some_and(|n| n.starts_with("Modelled")),
        "fixtures say where they come from"
    );
    set
}

fn want(width: u32, height: u32, num: u32, den: u32) -> Want {
    Want {
        width,
        height,
        rate: Rate::new(num, den).unwrap(),
    }
}

fn frac(num: u32, den: u32) -> Fraction {
    Fraction::new(num, den).unwrap()
}

#[test]
fn webcam_at_hd_takes_mjpeg_because_yuyv_cannot_reach_the_rate() {
    let c = negotiate(
        &caps("caps-logitech-c920.json"),
        &want(1280, 720, 30000, 1001),
    )
    .unwrap();
    assert_eq!(c.format, PixelFormat::Mjpeg);
    assert_eq!((c.width, c.height), (1280, 720));
    // 30 fps on a 29.97 channel: within 0.1 %, one slot in 1001 dropped.
    assert_eq!(c.interval, frac(1, 30));
    assert_eq!(c.rate_match, RateMatch::Near);
    assert_eq!(c.deinterlace, None);
}

#[test]
fn webcam_at_small_size_prefers_uncompressed_yuyv() {
    let c = negotiate(&caps("caps-logitech-c920.json"), &want(640, 360, 30, 1)).unwrap();
    assert_eq!(c.format, PixelFormat::Yuyv);
    assert_eq!((c.width, c.height, c.interval), (640, 360, frac(1, 30)));
    assert_eq!(c.rate_match, RateMatch::Exact);
}

#[test]
fn webcam_cannot_do_60_and_says_what_it_can() {
    let e = negotiate(&caps("caps-logitech-c920.json"), &want(1280, 720, 60, 1)).unwrap_err();
    assert!(matches!(e, NegotiateError::TooSlow { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("60 fps") && msg.contains("30.000 fps"),
        "{msg}"
    );
}

#[test]
fn webcam_on_a_25_channel_falls_back_to_30_as_a_last_resort() {
    let c = negotiate(&caps("caps-logitech-c920.json"), &want(1920, 1080, 25, 1)).unwrap();
    assert_eq!(
        (c.format, c.width, c.height),
        (PixelFormat::Mjpeg, 1920, 1080)
    );
    assert_eq!(c.rate_match, RateMatch::Faster);
}

#[test]
fn magewell_exact_mode_in_the_cheapest_format() {
    let set = caps("caps-magewell-pro-capture-hdmi4k.json");
    let c = negotiate(&set, &want(1920, 1080, 30000, 1001)).unwrap();
    assert_eq!(c.format, PixelFormat::Yuv420, "YU12 needs no conversion");
    assert_eq!(
        (c.width, c.height, c.interval),
        (1920, 1080, frac(1001, 30000))
    );
    assert_eq!(c.rate_match, RateMatch::Exact);

    let c = negotiate(&set, &want(1920, 1080, 60000, 1001)).unwrap();
    assert_eq!(c.interval, frac(1001, 60000));
}

#[test]
fn magewell_odd_size_takes_the_next_larger_size() {
    let c = negotiate(
        &caps("caps-magewell-pro-capture-hdmi4k.json"),
        &want(1024, 576, 25, 1),
    )
    .unwrap();
    assert_eq!((c.width, c.height), (1280, 720));
    assert_eq!(c.interval, frac(1, 25));
}

#[test]
fn magewell_uhd_at_50_keeps_the_rate_and_gives_up_size() {
    // 2160p only goes to 30 fps: 1080p at exactly 50 beats UHD at a wrong rate.
    let c = negotiate(
        &caps("caps-magewell-pro-capture-hdmi4k.json"),
        &want(3840, 2160, 50, 1),
    )
    .unwrap();
    assert_eq!((c.width, c.height, c.interval), (1920, 1080, frac(1, 50)));
}

#[test]
fn sdi_1080i50_on_a_25p_channel_is_blend_deinterlaced() {
    let c = negotiate(
        &caps("caps-decklink-sdi-1080i50.json"),
        &want(1920, 1080, 25, 1),
    )
    .unwrap();
    assert_eq!(c.format, PixelFormat::Uyvy);
    assert_eq!(c.deinterlace, Some(Deinterlace::Blend));
    assert_eq!(c.rate_match, RateMatch::Exact);
}

#[test]
fn sdi_1080i50_on_a_50p_channel_is_bob_deinterlaced() {
    let c = negotiate(
        &caps("caps-decklink-sdi-1080i50.json"),
        &want(1280, 720, 50, 1),
    )
    .unwrap();
    assert_eq!((c.width, c.height), (1920, 1080));
    assert_eq!(c.deinterlace, Some(Deinterlace::Bob));
    assert_eq!(c.rate_match, RateMatch::Exact);
}

#[test]
fn sdi_1080i50_cannot_feed_a_60_channel() {
    let e = negotiate(
        &caps("caps-decklink-sdi-1080i50.json"),
        &want(1920, 1080, 60, 1),
    )
    .unwrap_err();
    assert!(e.to_string().contains("50.000 fps"), "{e}");
}

#[test]
fn composite_grabber_576i_with_standards() {
    let set = caps("caps-stk1160-pal.json");
    assert_eq!(set.inputs.len(), 3);
    assert!(set.inputs[0].standards.iter().any(|s| s == "PAL"));
    let c = negotiate(&set, &want(1280, 720, 25, 1)).unwrap();
    assert_eq!((c.format, c.width, c.height), (PixelFormat::Yuyv, 720, 576));
    assert_eq!(c.deinterlace, Some(Deinterlace::Blend));
}

#[test]
fn a_device_with_only_unsupported_formats_is_refused_by_name() {
    let mut set = caps("caps-logitech-c920.json");
    set.formats.retain(|f| f.fourcc == "H264");
    let e = negotiate(&set, &want(1280, 720, 30, 1)).unwrap_err();
    assert_eq!(
        e,
        NegotiateError::NoSupportedFormat {
            offered: "H264".into()
        }
    );
}

#[test]
fn capability_sets_round_trip_through_json() {
    for name in [
        "caps-logitech-c920.json",
        "caps-magewell-pro-capture-hdmi4k.json",
        "caps-decklink-sdi-1080i50.json",
        "caps-stk1160-pal.json",
    ] {
        let set = caps(name);
        let again: CapabilitySet =
            serde_json::from_str(&serde_json::to_string(&set).unwrap()).unwrap();
        assert_eq!(set, again, "{name}");
    }
}
