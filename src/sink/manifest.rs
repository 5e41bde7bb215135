//! The Smooth Streaming client manifest (MS-SSTR 2.2.2) served on `…/name.isml/Manifest`.
//!
//! What GStreamer's `mssdemux`/`mssdemux2` (1.22) read from it, checked in
//! `gstmssmanifest.c`: `IsLive`; for live only, `DVRWindowLength` and `LookAheadFragmentCount`
//! (when the latter is > 0 it parses a `tfrf` out of every fragment and logs an ERROR for a
//! fragment without one — so the sink inserts `tfrf` into served fragments while live);
//! `Duration` and root/stream `TimeScale`; per StreamIndex `Type`, `Name`, `Url` (with
//! `{bitrate}` and `{start time}`), `c` children with `t`/`d`/`r`; per QualityLevel `Bitrate`,
//! `FourCC`, `CodecPrivateData`, `MaxWidth`/`MaxHeight`, `Channels`, `SamplingRate`,
//! `BitsPerSample`, `PacketSize`, `AudioTag`. It never looks at `MajorVersion`/`MinorVersion`;
//! we send 2/2 as MS-SSTR 2.2.2.1 requires for manifests that may use the `r` attribute.
//! A live manifest makes it start 3 fragments before the live edge and re-fetch the manifest
//! every 2 × the shortest fragment duration.
//!
//! GStreamer 1.22 specifics found while testing: `playbin` cannot use `mssdemux2` (it needs a
//! streams-aware context, i.e. `playbin3`) and falls back to `mssdemux`; `mssdemux2` plays a
//! finished presentation but not a live one (its live fragment waiting time is a constant 1 s,
//! so it re-schedules forever without downloading); qtdemux warns "failed to find fragment
//! defaults" for every fragment (no trex in mss mode) — harmless.

use std::fmt::Write as _;

use super::ingest::{HeaderTrack, TrackKind};

/// Root `TimeScale`: the MS-SSTR default, used by every track we have seen.
pub(crate) const ROOT_TIMESCALE: u64 = 10_000_000;
/// Look-ahead fragments announced (and carried in `tfrf`) while live.
pub(crate) const LOOKAHEAD: usize = 2;

/// One StreamIndex: all bitrates of one track name.
#[derive(Debug, Clone)]
pub(crate) struct StreamIndexInput<'a> {
    /// Quality levels, any order (sorted by bitrate on output).
    pub qualities: Vec<&'a HeaderTrack>,
    /// Chunks (time, duration) in the StreamIndex's timescale, sorted by time.
    pub chunks: Vec<(u64, u64)>,
}

/// Escapes text for an XML attribute value.
pub(crate) fn xml_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "&#{};", c as u32);
            }
            c => o.push(c),
        }
    }
    o
}

/// Converts ticks between timescales without overflow (u128).
pub(crate) fn rescale(v: u64, from: u32, to: u64) -> u64 {
    if u64::from(from) == to || from == 0 {
        return v;
    }
    let r = u128::from(v) * u128::from(to) / u128::from(from);
    u64::try_from(r).unwrap_or(u64::MAX)
}

/// Builds the client manifest. `live`: the presentation may still grow (IsLive="TRUE" with a
/// DVR window of `dvr_window_secs`); otherwise it is presented as finished (IsLive="FALSE",
/// `Duration` = the end of the longest track) so players reach EOS.
pub(crate) fn client_manifest(
    streams: &[StreamIndexInput<'_>],
    live: bool,
    dvr_window_secs: u64,
) -> String {
    let mut x = String::with_capacity(4096);
    x.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    let duration = streams
        .iter()
        .filter_map(|s| {
            let ts = s.qualities.first()?.timescale;
            let (t, d) = s.chunks.last()?;
            Some(rescale(t.saturating_add(*d), ts, ROOT_TIMESCALE))
        })
        .max()
        .unwrap_or(0);
    let _ = write!(
        x,
        "<SmoothStreamingMedia MajorVersion=\"2\" MinorVersion=\"2\" TimeScale=\"{ROOT_TIMESCALE}\""
    );
    if live {
        let _ = write!(
            x,
            " IsLive=\"TRUE\" Duration=\"0\" LookAheadFragmentCount=\"{LOOKAHEAD}\" DVRWindowLength=\"{}\"",
            dvr_window_secs.saturating_mul(ROOT_TIMESCALE)
        );
    } else {
        let _ = write!(x, " IsLive=\"FALSE\" Duration=\"{duration}\"");
    }
    x.push_str(">\n");
    for s in streams {
        let mut q = s.qualities.clone();
        q.sort_by_key(|t| t.bitrate);
        let Some(first) = q.first() else { continue };
        let kind = match first.kind {
            TrackKind::Video => "video",
            TrackKind::Audio => "audio",
            TrackKind::Text => continue,
        };
        let name = xml_escape(&first.name);
        let _ = write!(
            x,
            "  <StreamIndex Type=\"{kind}\" Name=\"{name}\" Chunks=\"{}\" QualityLevels=\"{}\" Url=\"QualityLevels({{bitrate}})/Fragments({name}={{start time}})\"",
            s.chunks.len(),
            q.len()
        );
        if u64::from(first.timescale) != ROOT_TIMESCALE {
            let _ = write!(x, " TimeScale=\"{}\"", first.timescale);
        }
        if let Some(lang) = &first.language {
            let _ = write!(x, " Language=\"{}\"", xml_escape(lang));
        }
        if first.kind == TrackKind::Video {
            let mw = q.iter().map(|t| t.width).max().unwrap_or(0);
            let mh = q.iter().map(|t| t.height).max().unwrap_or(0);
            let dw = q.iter().map(|t| t.display_width).max().unwrap_or(0);
            let dh = q.iter().map(|t| t.display_height).max().unwrap_or(0);
            let _ = write!(
                x,
                " MaxWidth=\"{mw}\" MaxHeight=\"{mh}\" DisplayWidth=\"{dw}\" DisplayHeight=\"{dh}\""
            );
        }
        x.push_str(">\n");
        for (i, t) in q.iter().enumerate() {
            let _ = write!(
                x,
                "    <QualityLevel Index=\"{i}\" Bitrate=\"{}\" FourCC=\"{}\" CodecPrivateData=\"{}\"",
                t.bitrate,
                xml_escape(&t.fourcc),
                xml_escape(&t.codec_private_data)
            );
            match t.kind {
                TrackKind::Video => {
                    let _ = write!(x, " MaxWidth=\"{}\" MaxHeight=\"{}\"", t.width, t.height);
                }
                TrackKind::Audio => {
                    let _ = write!(
                        x,
                        " SamplingRate=\"{}\" Channels=\"{}\" BitsPerSample=\"{}\" PacketSize=\"{}\" AudioTag=\"{}\"",
                        t.sampling_rate, t.channels, t.bits_per_sample, t.packet_size, t.audio_tag
                    );
                }
                TrackKind::Text => {}
            }
            x.push_str(" />\n");
        }
        let mut expect: Option<u64> = None;
        for (t, d) in &s.chunks {
            if expect == Some(*t) {
                let _ = writeln!(x, "    <c d=\"{d}\" />");
            } else {
                let _ = writeln!(x, "    <c t=\"{t}\" d=\"{d}\" />");
            }
            expect = Some(t.saturating_add(*d));
        }
        x.push_str("  </StreamIndex>\n");
    }
    x.push_str("</SmoothStreamingMedia>\n");
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    fn track(kind: TrackKind, name: &str, bitrate: u32) -> HeaderTrack {
        HeaderTrack {
            track_id: 1,
            name: name.into(),
            bitrate,
            kind,
            timescale: 10_000_000,
            fourcc: if kind == TrackKind::Video {
                "H264".into()
            } else {
                "AACL".into()
            },
            codec_private_data: "1190".into(),
            width: 640,
            height: 360,
            display_width: 640,
            display_height: 360,
            sampling_rate: 48000,
            channels: 2,
            bits_per_sample: 16,
            packet_size: 4,
            audio_tag: 255,
            language: None,
            nal_length_size: 4,
        }
    }

    #[test]
    fn manifest_lists_qualities_by_bitrate_and_marks_gaps_with_t() {
        let v1 = track(TrackKind::Video, "video", 600_000);
        let v2 = track(TrackKind::Video, "video", 300_000);
        let a = track(TrackKind::Audio, "au\"dio", 128_000);
        let streams = vec![
            StreamIndexInput {
                qualities: vec![&v1, &v2],
                chunks: vec![(0, 20), (20, 20), (60, 20)],
            },
            StreamIndexInput {
                qualities: vec![&a],
                chunks: vec![(5, 10)],
            },
        ];
        let m = client_manifest(&streams, true, 120);
        let doc = roxmltree::Document::parse(&m).unwrap();
        let root = doc.root_element();
        assert_eq!(root.attribute("IsLive"), Some("TRUE"));
        assert_eq!(root.attribute("DVRWindowLength"), Some("1200000000"));
        let si: Vec<_> = root
            .children()
            .filter(|n| n.has_tag_name("StreamIndex"))
            .collect();
        assert_eq!(si.len(), 2);
        let ql: Vec<_> = si[0]
            .children()
            .filter(|n| n.has_tag_name("QualityLevel"))
            .collect();
        assert_eq!(ql[0].attribute("Bitrate"), Some("300000"));
        let cs: Vec<_> = si[0].children().filter(|n| n.has_tag_name("c")).collect();
        assert_eq!(
            cs.iter().map(|c| c.attribute("t")).collect::<Vec<_>>(),
            vec![Some("0"), None, Some("60")]
        );
        assert_eq!(si[1].attribute("Name"), Some("au\"dio"));
        assert_eq!(
            si[1].attribute("Url"),
            Some("QualityLevels({bitrate})/Fragments(au\"dio={start time})")
        );
        let ended = client_manifest(&streams, false, 120);
        assert!(ended.contains("IsLive=\"FALSE\" Duration=\"80\""));
    }
}
