//! SMPTE LTC decoding on generated waveforms: every rate, drop-frame, polarity, level, noise,
//! speed, reverse play, midnight rollover on the master clock, garbage — and the health the
//! `ltc` timecode source reports.

use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use smoothcast::time::ltc::{
    LtcDecoder, LtcEncoder, LtcError, LtcFrame, LtcIndexedFrame, LtcLockState, LtcTimecodeSource,
};
use smoothcast::time::{
    frame_index, parse_date, Clocks, FrameIndex, Rate, SimulatedClocks, Timecode,
};
use std::sync::Arc;
use std::time::Duration;

const SR: u32 = 48_000;

fn rate(num: u32, den: u32) -> Rate {
    Rate::new(num, den).unwrap()
}

fn tc(s: &str) -> Timecode {
    Timecode::parse(s).unwrap()
}

/// One generated frame: its label, user bits and start position (output samples).
#[derive(Clone, Debug)]
struct Sent {
    timecode: Timecode,
    user_bits: u32,
    start: f64,
}

/// `count` consecutive labels from `first` at `rate`, encoded by `enc` into `out`; `speed`
/// gives the speed of frame `i`.
fn generate(
    enc: &mut LtcEncoder,
    rate: Rate,
    first: &Timecode,
    count: u64,
    speed: impl Fn(u64) -> f64,
    out: &mut Vec<f32>,
) -> Vec<Sent> {
    let f0 = first.frames_since_midnight(rate).unwrap();
    (0..count)
        .map(|i| {
            let label = Timecode::from_frames_since_midnight(f0 + i, rate, first.drop_frame);
            let user_bits = (i as u32).wrapping_mul(0x9E37_79B9);
            enc.set_speed(speed(i));
            let start = enc.encode_frame(&label, user_bits, out);
            Sent {
                timecode: label,
                user_bits,
                start,
            }
        })
        .collect()
}

/// Decodes `samples` in blocks of 1000 (as an audio callback would deliver them).
fn decode(samples: &[f32]) -> Vec<LtcFrame> {
    let mut dec = LtcDecoder::new(SR);
    let mut out = Vec::new();
    for block in samples.chunks(1000) {
        dec.push_into(block, &mut out);
    }
    out
}

/// Every sent frame was decoded, in order, with its label, user bits and start position
/// (within `tolerance` samples), and nothing else was decoded.
fn assert_all_decoded(sent: &[Sent], got: &[LtcFrame], tolerance: f64) {
    let labels = |v: &[LtcFrame]| v.iter().map(|f| f.timecode.to_string()).collect::<Vec<_>>();
    assert_eq!(
        got.len(),
        sent.len(),
        "decoded {} of {} frames: first sent {}, decoded {:?}",
        got.len(),
        sent.len(),
        sent[0].timecode,
        &labels(got)[..got.len().min(5)]
    );
    for (s, g) in sent.iter().zip(got) {
        assert_eq!(g.timecode, s.timecode);
        assert_eq!(g.user_bits, s.user_bits, "user bits of {}", s.timecode);
        assert!(!g.reversed);
        let err = g.sample_position_of_frame_start as f64 - s.start;
        assert!(
            err.abs() <= tolerance,
            "{}: frame start decoded at {} but sent at {:.2}",
            s.timecode,
            g.sample_position_of_frame_start,
            s.start
        );
    }
}

/// Gaussian noise of standard deviation `sigma`, added in place (Box–Muller, seeded).
fn add_noise(samples: &mut [f32], sigma: f64, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    for s in samples.iter_mut() {
        let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
        let u2: f64 = rng.gen();
        let g = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        *s += (g * sigma) as f32;
    }
}

#[test]
fn clean_ltc_decodes_every_frame_at_every_rate() {
    for (r, first) in [
        (rate(24, 1), "10:00:00:00"),
        (rate(25, 1), "10:00:00:00"),
        (rate(30, 1), "10:00:00:00"),
        (rate(30000, 1001), "10:00:00;00"),
        (rate(30000, 1001), "10:00:00:00"),
        (rate(24000, 1001), "01:02:03:04"),
    ] {
        let mut enc = LtcEncoder::new(SR, r);
        let mut pcm = Vec::new();
        let sent = generate(&mut enc, r, &tc(first), 4 * 30, |_| 1.0, &mut pcm);
        assert_all_decoded(&sent, &decode(&pcm), 2.0);
    }
}

#[test]
fn drop_frame_minute_boundary_skips_two_labels_and_keeps_the_flag() {
    let ntsc = rate(30000, 1001);
    let mut enc = LtcEncoder::new(SR, ntsc);
    let mut pcm = Vec::new();
    let sent = generate(&mut enc, ntsc, &tc("00:00:59;20"), 20, |_| 1.0, &mut pcm);
    let got = decode(&pcm);
    assert_all_decoded(&sent, &got, 2.0);
    let labels: Vec<String> = got.iter().map(|f| f.timecode.to_string()).collect();
    let i = labels.iter().position(|l| l == "00:00:59;29").unwrap();
    assert_eq!(labels[i + 1], "00:01:00;02");
    assert!(got.iter().all(|f| f.timecode.drop_frame));
    // And at a tenth minute nothing is skipped.
    let mut enc = LtcEncoder::new(SR, ntsc);
    let mut pcm = Vec::new();
    let sent = generate(&mut enc, ntsc, &tc("00:09:59;28"), 4, |_| 1.0, &mut pcm);
    let got = decode(&pcm);
    assert_all_decoded(&sent, &got, 2.0);
    assert_eq!(got[2].timecode.to_string(), "00:10:00;00");
}

#[test]
fn inverted_polarity_decodes_the_same_frames() {
    let pal = rate(25, 1);
    let mut enc = LtcEncoder::new(SR, pal);
    enc.set_amplitude(-0.5);
    let mut pcm = Vec::new();
    let sent = generate(&mut enc, pal, &tc("12:00:00:00"), 75, |_| 1.0, &mut pcm);
    assert_all_decoded(&sent, &decode(&pcm), 2.0);
}

#[test]
fn levels_from_minus_40_to_0_dbfs_decode_from_16_bit_samples() {
    let pal = rate(25, 1);
    for dbfs in [-40.0, -20.0, 0.0] {
        let mut enc = LtcEncoder::new(SR, pal);
        enc.set_level_dbfs(dbfs);
        let f0 = tc("05:00:00:00").frames_since_midnight(pal).unwrap();
        let mut pcm = Vec::new();
        let mut starts = Vec::new();
        for i in 0..75 {
            let label = Timecode::from_frames_since_midnight(f0 + i, pal, false);
            starts.push((label, enc.encode_frame_i16(&label, 0, &mut pcm)));
        }
        let mut dec = LtcDecoder::new(SR);
        let mut got = Vec::new();
        for block in pcm.chunks(480) {
            dec.push_into(block, &mut got);
        }
        let labels: Vec<Timecode> = got.iter().map(|f| f.timecode).collect();
        let want: Vec<Timecode> = starts.iter().map(|s| s.0).collect();
        assert_eq!(labels, want, "at {dbfs} dBFS");
    }
}

#[test]
fn white_noise_at_12_and_10_db_snr_loses_almost_nothing_and_never_lies() {
    // (rate, first label, SNR in dB, frames that must be decoded in 1000).
    for (r, first, snr_db, need) in [
        (rate(25, 1), "08:00:00:00", 12.0, 250),
        (rate(30000, 1001), "08:00:00;00", 12.0, 250),
        (rate(25, 1), "08:00:00:00", 10.0, 248),
        (rate(30000, 1001), "08:00:00;00", 10.0, 248),
    ] {
        let mut enc = LtcEncoder::new(SR, r);
        enc.set_amplitude(0.25);
        let mut pcm = Vec::new();
        let sent = generate(&mut enc, r, &tc(first), 250, |_| 1.0, &mut pcm);
        // SNR = signal power / noise power = A² / σ² for a square wave of amplitude A.
        let snr: f64 = snr_db;
        add_noise(&mut pcm, 0.25 / 10f64.powf(snr / 20.0), 7);
        let got = decode(&pcm);
        let sent_labels: Vec<Timecode> = sent.iter().map(|s| s.timecode).collect();
        for g in &got {
            let i = sent_labels
                .iter()
                .position(|t| *t == g.timecode)
                .unwrap_or_else(|| panic!("decoded {} which was never sent", g.timecode));
            assert_eq!(g.user_bits, sent[i].user_bits);
            let err = g.sample_position_of_frame_start as f64 - sent[i].start;
            assert!(err.abs() <= 3.0, "{}: position off by {err}", g.timecode);
        }
        assert!(
            got.len() >= need,
            "{r} at {snr_db} dB SNR: decoded only {} of {} frames",
            got.len(),
            sent.len()
        );
    }
}

/// Playback speed of frame `i`.
type SpeedOf = Box<dyn Fn(u64) -> f64>;

#[test]
fn speed_ten_percent_fast_slow_and_a_gradual_ramp_decode() {
    let pal = rate(25, 1);
    let ntsc = rate(30000, 1001);
    // (rate, speed of frame i): the extremes at both rates, and a ramp through the range.
    let cases: [(Rate, SpeedOf); 5] = [
        (pal, Box::new(|_| 1.1)),
        (pal, Box::new(|_| 0.9)),
        (ntsc, Box::new(|_| 1.1)),
        (rate(24, 1), Box::new(|_| 0.9)),
        // 0.9 → 1.1 over 150 frames (6 s), then back down.
        (
            pal,
            Box::new(|i| 0.9 + 0.2 * (1.0 - (i as f64 / 150.0 - 1.0).abs())),
        ),
    ];
    for (k, (r, speed)) in cases.into_iter().enumerate() {
        let mut enc = LtcEncoder::new(SR, r);
        let mut pcm = Vec::new();
        let first = if r.is_ntsc() {
            "00:00:00;00"
        } else {
            "00:00:00:00"
        };
        let n = if k == 4 { 300 } else { 100 };
        let sent = generate(&mut enc, r, &tc(first), n, speed, &mut pcm);
        let got = decode(&pcm);
        assert_all_decoded(&sent, &got, 2.0);
        if k == 0 {
            // The measured frame length reports the speed.
            let nominal = f64::from(SR) / 25.0;
            let measured = got[50].samples_per_frame;
            assert!(
                (nominal / measured - 1.1).abs() < 0.005,
                "speed measured as {}",
                nominal / measured
            );
        }
    }
}

#[test]
fn reverse_play_decodes_labels_in_descending_order() {
    let pal = rate(25, 1);
    let mut enc = LtcEncoder::new(SR, pal);
    let mut pcm = Vec::new();
    let sent = generate(&mut enc, pal, &tc("01:00:00:00"), 50, |_| 1.0, &mut pcm);
    pcm.reverse();
    let got = decode(&pcm);
    assert!(got.iter().all(|f| f.reversed));
    let labels: Vec<Timecode> = got.iter().map(|f| f.timecode).collect();
    // A frame completes at the edge after its last bit, and the first edge of a signal only
    // starts the clock: the first and last frames sent (last and first played) have no such
    // edge here; every frame in between is decoded.
    let want: Vec<Timecode> = sent[1..49].iter().rev().map(|s| s.timecode).collect();
    assert_eq!(labels, want);
}

#[test]
fn block_size_does_not_change_what_is_decoded() {
    let ntsc = rate(30000, 1001);
    let mut enc = LtcEncoder::new(SR, ntsc);
    let mut pcm = Vec::new();
    generate(&mut enc, ntsc, &tc("03:00:00;00"), 60, |_| 1.0, &mut pcm);
    let whole = LtcDecoder::new(SR).push(&pcm);
    for block in [1, 7, 64, 1601, 100_000] {
        let mut dec = LtcDecoder::new(SR);
        let mut got = Vec::new();
        for b in pcm.chunks(block) {
            dec.push_into(b, &mut got);
        }
        assert_eq!(got, whole, "block size {block}");
    }
    assert_eq!(whole.len(), 60);
}

#[test]
fn ltc_on_the_second_channel_of_interleaved_audio_decodes() {
    let pal = rate(25, 1);
    let mut enc = LtcEncoder::new(SR, pal);
    let mut ltc = Vec::new();
    let sent = generate(&mut enc, pal, &tc("09:30:00:00"), 50, |_| 1.0, &mut ltc);
    // Channel 0: programme audio (a loud 1 kHz tone); channel 1: LTC.
    let mut stereo = Vec::with_capacity(2 * ltc.len());
    for (i, s) in ltc.iter().enumerate() {
        let tone = 0.9 * (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / SR as f32).sin();
        stereo.extend([(tone * 32767.0) as i16, (s * 32767.0) as i16]);
    }
    let mut dec = LtcDecoder::new(SR);
    let mut got = Vec::new();
    dec.push_channel_into(&stereo, 2, 1, &mut got);
    assert_eq!(got.len(), sent.len());
    let mut tone_dec = LtcDecoder::new(SR);
    let mut none = Vec::new();
    tone_dec.push_channel_into(&stereo, 2, 0, &mut none);
    tone_dec.push_channel_into(&stereo, 2, 5, &mut none);
    assert!(none.is_empty());
}

#[test]
fn silence_noise_tones_and_square_waves_decode_nothing() {
    let n = 10 * SR as usize;
    let silence = vec![0f32; n];
    let mut noise = vec![0f32; n];
    add_noise(&mut noise, 0.3, 11);
    let mut quiet_noise = vec![0f32; n];
    add_noise(&mut quiet_noise, 0.001, 12);
    let sine: Vec<f32> = (0..n)
        .map(|i| (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / SR as f32).sin())
        .collect();
    // A square wave with transitions every 24 samples looks like an endless run of zeros
    // at 25 fps; every 10 samples like an endless run of ones at 24 fps.
    let square = |half: usize| -> Vec<f32> {
        (0..n)
            .map(|i| {
                if (i / half).is_multiple_of(2) {
                    0.5
                } else {
                    -0.5
                }
            })
            .collect()
    };
    for (name, pcm) in [
        ("silence", silence),
        ("noise", noise),
        ("quiet noise", quiet_noise),
        ("sine", sine),
        ("square 24", square(24)),
        ("square 10", square(10)),
    ] {
        assert_eq!(decode(&pcm), vec![], "{name}");
    }
    // Non-finite and out-of-range input is survived, and LTC after it still decodes.
    let pal = rate(25, 1);
    let mut pcm = vec![f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1e30, -1e30, 5.0];
    pcm.extend(std::iter::repeat_n(f32::NAN, 1000));
    let mut enc = LtcEncoder::new(SR, pal);
    let mut ltc = Vec::new();
    generate(&mut enc, pal, &tc("00:00:10:00"), 25, |_| 1.0, &mut ltc);
    pcm.extend(ltc);
    assert!(decode(&pcm).len() >= 24);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_float_input_never_panics_and_yields_nothing(
        raw in prop::collection::vec(any::<u32>(), 0..20_000),
    ) {
        let pcm: Vec<f32> = raw.iter().map(|&b| f32::from_bits(b)).collect();
        prop_assert!(decode(&pcm).is_empty());
    }

    #[test]
    fn random_i16_input_never_panics_and_yields_nothing(
        pcm in prop::collection::vec(any::<i16>(), 0..20_000),
        channels in 0usize..4,
        channel in 0usize..4,
    ) {
        let mut dec = LtcDecoder::new(SR);
        let mut out = Vec::new();
        dec.push_into(&pcm, &mut out);
        dec.push_channel_into(&pcm, channels, channel, &mut out);
        prop_assert!(out.is_empty());
    }

    #[test]
    fn any_sample_rate_and_garbage_never_panics(
        sr in 0u32..400_000,
        pcm in prop::collection::vec(-2.0f32..2.0, 0..5_000),
    ) {
        let mut dec = LtcDecoder::new(sr);
        let _ = dec.push(&pcm);
    }
}

// ---------------------------------------------------------------------------------------------
// The `ltc` timecode source: LTC + system date → frame index, and its health.
// ---------------------------------------------------------------------------------------------

/// UTC nanoseconds of `date` at `secs` seconds after midnight.
fn utc(date: &str, secs: f64) -> u128 {
    let (y, m, d) = parse_date(date).unwrap();
    let days = chrono::NaiveDate::from_ymd_opt(y, m, d)
        .unwrap()
        .signed_duration_since(chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap())
        .num_days() as u128;
    days * 86_400_000_000_000 + (secs * 1e9) as u128
}

/// Feeds `pcm` to `src` one LTC frame of audio at a time, advancing the clocks by the audio's
/// duration, and returns the indexed frames.
fn run_source(
    src: &mut LtcTimecodeSource,
    clocks: &SimulatedClocks,
    pcm: &[f32],
    block: usize,
) -> Vec<LtcIndexedFrame> {
    let mut out = Vec::new();
    for b in pcm.chunks(block) {
        clocks.advance(Duration::from_nanos(
            b.len() as u64 * 1_000_000_000 / u64::from(SR),
        ));
        src.push_mono(b, &mut out);
    }
    out
}

/// Across midnight the label's date is the one that puts it nearest the clock, whichever side
/// of midnight the clock is on. At 25 fps the indices run on without a gap. A drop-frame day
/// has 2–3 labels fewer than a UTC day has frames, so at 29.97 DF the index steps by those
/// extra frames at 00:00:00;00 (design: the date's first frame is `ceil(midnight × rate)`) —
/// forward, so the timeline never goes back — and the source does not call it a discontinuity.
#[test]
fn midnight_rollover_picks_the_date_nearest_the_clock_on_either_side() {
    let day1 = parse_date("2024-03-10").unwrap();
    let day2 = parse_date("2024-03-11").unwrap();
    for (r, first, extra) in [
        (rate(25, 1), "23:59:58:00", 0),
        (rate(30000, 1001), "23:59:58;00", 3),
    ] {
        let fps = r.nominal_fps();
        // LTC is 0.6 s behind the clock, in step with it, or 0.6 s ahead.
        for clock_lead in [0.6, 0.0, -0.6] {
            let clocks = SimulatedClocks::new(utc("2024-03-10", 86_398.0 + clock_lead));
            let mut src = LtcTimecodeSource::new(r, SR, 0, clocks.clone()).unwrap();
            let mut enc = LtcEncoder::new(SR, r);
            let mut pcm = Vec::new();
            let sent = generate(
                &mut enc,
                r,
                &tc(first),
                u64::from(4 * fps),
                |_| 1.0,
                &mut pcm,
            );
            let got = run_source(&mut src, &clocks, &pcm, 1600);
            assert_eq!(got.len(), sent.len(), "{r} lead {clock_lead}");
            for g in &got {
                let date = if g.frame.timecode.hours == 23 {
                    day1
                } else {
                    day2
                };
                assert_eq!(
                    g.index,
                    frame_index(date, &g.frame.timecode, r).unwrap(),
                    "{r}: {} (clock lead {clock_lead} s)",
                    g.frame.timecode
                );
            }
            let steps: Vec<u64> = got
                .windows(2)
                .map(|w| w[1].index.0 - w[0].index.0)
                .collect();
            let sep = if r.is_ntsc() { ';' } else { ':' };
            let labels: Vec<String> = got.iter().map(|g| g.frame.timecode.to_string()).collect();
            let i = labels
                .iter()
                .position(|l| *l == format!("23:59:59{sep}{:02}", fps - 1))
                .unwrap();
            assert_eq!(labels[i + 1], format!("00:00:00{sep}00"));
            for (k, step) in steps.iter().enumerate() {
                let want = if k == i { 1 + extra } else { 1 };
                assert_eq!(*step, want, "{r}: step after {}", labels[k]);
            }
            assert_eq!(src.status().discontinuities, 0);
        }
    }
}

#[test]
fn ltc_source_reports_lock_loss_discontinuity_and_rejected_labels() {
    let pal = rate(25, 1);
    let clocks = SimulatedClocks::new(utc("2025-06-01", 12.0 * 3600.0));
    let mut src = LtcTimecodeSource::new(pal, SR, 1, clocks.clone())
        .unwrap()
        .with_unlock_after(Duration::from_millis(200));
    assert_eq!(src.status().state, LtcLockState::Searching);
    assert_eq!(src.frame_index_at(0), None);

    let mut enc = LtcEncoder::new(SR, pal);
    let mut mono = Vec::new();
    generate(&mut enc, pal, &tc("12:00:00:00"), 50, |_| 1.0, &mut mono);
    // An LTC generator re-jammed to a different time: a discontinuity.
    generate(&mut enc, pal, &tc("12:30:00:00"), 25, |_| 1.0, &mut mono);
    let stereo: Vec<f32> = mono.iter().flat_map(|&s| [0.0, s]).collect();
    let mut out = Vec::new();
    for b in stereo.chunks(2 * 1920) {
        clocks.advance(Duration::from_millis(40));
        src.push_interleaved(b, 2, &mut out);
    }
    assert_eq!(out.len(), 75);
    let s = src.status();
    assert_eq!(s.state, LtcLockState::Locked);
    assert_eq!(s.frames, 75);
    assert_eq!(s.discontinuities, 1);
    assert_eq!(s.rejected, 0);
    assert_eq!(s.last_timecode, Some(tc("12:30:00:24")));
    assert!((s.speed.unwrap() - 1.0).abs() < 0.002);
    // The clock reads 12:00:03 when 12:30:00:24 arrives: LTC is about 30 minutes ahead.
    let ahead = s.clock_offset_frames.unwrap();
    assert!(
        (ahead - ((30 * 60 - 3) * 25 + 24)).abs() <= 2,
        "offset {ahead}"
    );
    // Extrapolation from the last frame: one LTC frame later is the next index.
    let last = out.last().unwrap();
    let next = src.frame_index_at(last.frame.sample_position_of_frame_start + 1920);
    assert_eq!(next, Some(FrameIndex(last.index.0 + 1)));

    // Silence: after 200 ms the source is unlocked, and stays so.
    let silence = vec![0f32; 2 * 48_000];
    for b in silence.chunks(2 * 4800) {
        clocks.advance(Duration::from_millis(100));
        src.push_interleaved(b, 2, &mut out);
    }
    let s = src.status();
    assert_eq!(s.state, LtcLockState::Unlocked);
    assert!(s.last_frame_age.unwrap() >= Duration::from_millis(900));

    // Drop-frame labels on a 25 fps channel do not exist: rejected, not indexed.
    let mut df = LtcEncoder::new(SR, rate(30000, 1001));
    let mut pcm = Vec::new();
    generate(
        &mut df,
        rate(30000, 1001),
        &tc("12:00:10;00"),
        10,
        |_| 1.0,
        &mut pcm,
    );
    let before = out.len();
    let stereo: Vec<f32> = pcm.iter().flat_map(|&s| [0.0, s]).collect();
    src.push_interleaved(&stereo, 2, &mut out);
    assert_eq!(out.len(), before);
    assert_eq!(src.status().rejected, 10);
}

#[test]
fn fifty_fps_channel_takes_its_time_from_25_fps_ltc() {
    let fifty = rate(50, 1);
    let pal = rate(25, 1);
    let clocks = SimulatedClocks::new(utc("2024-01-01", 3600.0));
    let mut src = LtcTimecodeSource::new(fifty, SR, 0, clocks.clone()).unwrap();
    let mut enc = LtcEncoder::new(SR, pal);
    let mut pcm = Vec::new();
    generate(&mut enc, pal, &tc("01:00:00:00"), 25, |_| 1.0, &mut pcm);
    let got = run_source(&mut src, &clocks, &pcm, 960);
    assert_eq!(got.len(), 25);
    let base = (1_704_067_200u64 + 3600) * 50;
    for (i, g) in got.iter().enumerate() {
        assert_eq!(g.index, FrameIndex(base + 2 * i as u64));
    }
    assert_eq!(src.status().discontinuities, 0);
    let e =
        LtcTimecodeSource::new(rate(120, 1), SR, 0, clocks.clone() as Arc<dyn Clocks>).unwrap_err();
    assert_eq!(
        e.to_string(),
        "LTC cannot carry timecode for 120 fps: LTC runs at up to 30 fps, and only channel rates \
         of exactly twice an LTC rate (48, 50, 59.94, 60) can take their time from it"
    );
    let e =
        LtcTimecodeSource::new(rate(240, 1), SR, 0, clocks.clone() as Arc<dyn Clocks>).unwrap_err();
    assert!(matches!(e, LtcError::Time(_)), "{e}");
}
