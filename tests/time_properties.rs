//! Properties of the master clock: SMPTE timecode ↔ frame index, and the frame, fragment and
//! audio grids, checked at every supported rate against independent exact arithmetic
//! (u128 rationals here, chrono for the calendar).

use chrono::{Datelike, NaiveDate};
use proptest::prelude::*;
use smoothcast::time::{
    first_frame_of_date, frame_index, parse_date, timecode_of, AudioGrid, FragmentGrid, FrameGrid,
    FrameIndex, MediaTime, Rate, TimeError, Timecode, DEFAULT_TIMESCALE,
};

/// Every supported rate, with drop-frame (`true`) or non-drop counting.
const CASES: [(u32, u32, bool); 10] = [
    (24000, 1001, false),
    (24, 1, false),
    (25, 1, false),
    (30000, 1001, true),
    (30000, 1001, false),
    (30, 1, false),
    (50, 1, false),
    (60000, 1001, true),
    (60000, 1001, false),
    (60, 1, false),
];

/// Days from 1970-01-01 to 2100-01-01.
const DAYS_1970_TO_2100: u64 = 47_482;
/// Seconds in 100 Julian years.
const SECS_100_YEARS: u64 = 3_155_760_000;

fn case() -> impl Strategy<Value = (Rate, bool)> {
    prop::sample::select(CASES.to_vec()).prop_map(|(n, d, df)| (rate(n, d), df))
}

fn rate(num: u32, den: u32) -> Rate {
    Rate::new(num, den).unwrap()
}

fn tc(s: &str) -> Timecode {
    Timecode::parse(s).unwrap()
}

fn per_day(rate: Rate, df: bool) -> u64 {
    Timecode::frames_per_day(rate, df).unwrap()
}

/// `ceil(days × 86400 × rate)`, computed independently of the library.
fn first_frame_of_day(days: u64, rate: Rate) -> u64 {
    let x = u128::from(days) * 86_400 * u128::from(rate.num());
    x.div_ceil(u128::from(rate.den())) as u64
}

fn epoch_plus(days: u64) -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1)
        .unwrap()
        .checked_add_days(chrono::Days::new(days))
        .unwrap()
}

fn ymd(d: NaiveDate) -> (i32, u32, u32) {
    (d.year(), d.month(), d.day())
}

/// The label after `t`, by the SMPTE counting rules written out longhand.
fn successor(t: Timecode, fps: u8, drop: u8) -> Timecode {
    let mut n = t;
    n.frames += 1;
    if n.frames == fps {
        n.frames = 0;
        n.seconds += 1;
        if n.seconds == 60 {
            n.seconds = 0;
            n.minutes += 1;
            if n.minutes == 60 {
                n.minutes = 0;
                n.hours = (n.hours + 1) % 24;
            }
            if t.drop_frame && !n.minutes.is_multiple_of(10) {
                n.frames = drop;
            }
        }
    }
    n
}

fn drop_of(rate: Rate, df: bool) -> u8 {
    if df {
        (rate.nominal_fps() / 15) as u8
    } else {
        0
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn timecode_round_trips_through_frames_since_midnight_at_every_rate(
        (rate, df) in case(), seed in any::<u64>(), days_later in 0u64..1000,
    ) {
        let day = per_day(rate, df);
        let fsm = seed % day;
        let label = Timecode::from_frames_since_midnight(fsm, rate, df);
        prop_assert_eq!(label.drop_frame, df);
        prop_assert_eq!(label.frames_since_midnight(rate).unwrap(), fsm);
        prop_assert_eq!(Timecode::parse(&label.to_string()).unwrap(), label);
        // Counting is modulo one timecode day.
        prop_assert_eq!(Timecode::from_frames_since_midnight(fsm + days_later * day, rate, df), label);
    }

    #[test]
    fn every_label_either_exists_and_round_trips_or_is_a_dropped_number(
        (rate, df) in case(), h in 0u8..24, m in 0u8..60, s in 0u8..60, f in 0u8..60,
    ) {
        let fps = rate.nominal_fps() as u8;
        let label = Timecode { hours: h, minutes: m, seconds: s, frames: f % fps, drop_frame: df };
        let dropped = df && s == 0 && m % 10 != 0 && label.frames < drop_of(rate, df);
        match label.frames_since_midnight(rate) {
            Ok(fsm) => {
                prop_assert!(!dropped, "{} should not exist", label);
                prop_assert!(fsm < per_day(rate, df));
                prop_assert_eq!(Timecode::from_frames_since_midnight(fsm, rate, df), label);
            }
            Err(TimeError::DroppedFrameNumber { minute, .. }) => {
                prop_assert!(dropped, "{} should exist", label);
                prop_assert_eq!(minute, m);
            }
            Err(e) => prop_assert!(false, "unexpected error {}", e),
        }
    }

    #[test]
    fn consecutive_frames_carry_consecutive_smpte_labels(
        (rate, df) in case(), seed in any::<u64>(), minute in 0u8..60, hour in 0u8..24,
        delta in 0u64..8, near_minute in any::<bool>(),
    ) {
        let day = per_day(rate, df);
        let fsm = if near_minute {
            // Around the start of a minute, where drop-frame skips labels.
            let first = if df && minute % 10 != 0 { drop_of(rate, df) } else { 0 };
            let start = Timecode { hours: hour, minutes: minute, seconds: 0, frames: first, drop_frame: df };
            (start.frames_since_midnight(rate).unwrap() + day + delta - 4) % day
        } else {
            seed % day
        };
        let here = Timecode::from_frames_since_midnight(fsm, rate, df);
        let next = Timecode::from_frames_since_midnight(fsm + 1, rate, df);
        prop_assert_eq!(next, successor(here, rate.nominal_fps() as u8, drop_of(rate, df)));
    }

    #[test]
    fn timecode_of_names_the_utc_date_and_frame_index_inverts_it_1970_to_2100(
        (rate, df) in case(), days in 0..DAYS_1970_TO_2100, seed in any::<u64>(),
    ) {
        let first = first_frame_of_day(days, rate);
        let in_day = first_frame_of_day(days + 1, rate) - first;
        let offset = seed % in_day;
        let n = FrameIndex(first + offset);
        let (date, label) = timecode_of(n, rate, df);
        prop_assert_eq!(date, ymd(epoch_plus(days)));
        prop_assert_eq!(label.drop_frame, df);
        let day = per_day(rate, df);
        if offset < day {
            prop_assert_eq!(frame_index(date, &label, rate).unwrap(), n);
        } else {
            // Only a drop-frame day is shorter than the UTC day: its last few frames wrap.
            prop_assert!(df, "non-drop frame {} of {:?} has no label", offset, date);
            prop_assert!(offset - day < 6);
            prop_assert_eq!(label.frames_since_midnight(rate).unwrap(), offset - day);
        }
    }

    #[test]
    fn a_label_on_a_date_names_a_frame_that_maps_back_to_it_1970_to_2100(
        (rate, df) in case(), days in 0..DAYS_1970_TO_2100, seed in any::<u64>(),
    ) {
        let date = ymd(epoch_plus(days));
        let label = Timecode::from_frames_since_midnight(seed, rate, df);
        let n = frame_index(date, &label, rate).unwrap();
        let next_midnight = first_frame_of_day(days + 1, rate);
        prop_assert_eq!(n.0, first_frame_of_day(days, rate) + label.frames_since_midnight(rate).unwrap());
        if n.0 < next_midnight {
            prop_assert_eq!(timecode_of(n, rate, df), (date, label));
        } else {
            // Only NTSC non-drop timecode runs slower than UTC (86.4 s a day), so its last
            // labels fall on the next date.
            prop_assert!(rate.is_ntsc() && !df, "{} on {:?} left its date", label, date);
        }
    }

    #[test]
    fn dates_agree_with_chrono_and_start_at_the_first_frame_after_midnight(
        (rate, _df) in case(), days in 0..DAYS_1970_TO_2100,
    ) {
        let d = epoch_plus(days);
        let text = d.format("%Y-%m-%d").to_string();
        prop_assert_eq!(parse_date(&text).unwrap(), ymd(d));
        let secs = d.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp() as u128;
        let expected = (secs * u128::from(rate.num())).div_ceil(u128::from(rate.den()));
        prop_assert_eq!(u128::from(first_frame_of_date(ymd(d), rate).unwrap().0), expected);
    }

    #[test]
    fn drop_frame_labels_stay_within_150_ms_of_real_time_all_day(
        fps in prop::sample::select(vec![30000u32, 60000]), seed in any::<u64>(),
    ) {
        let rate = rate(fps, 1001);
        let fsm = seed % per_day(rate, true);
        let label = Timecode::from_frames_since_midnight(fsm, rate, true);
        let nominal = u128::from(rate.nominal_fps());
        // In units of 1 / (nominal × 1000) s: real = fsm × 1001, label = labels × 1000.
        let label_units = ((u128::from(label.hours) * 3600 + u128::from(label.minutes) * 60
            + u128::from(label.seconds)) * nominal + u128::from(label.frames)) * 1000;
        let real_units = u128::from(fsm) * 1001;
        let limit = nominal * 1000 * 15 / 100;
        prop_assert!(real_units.abs_diff(label_units) < limit, "{} is {} units off", label, real_units.abs_diff(label_units));
    }
}

#[test]
fn drop_frame_minute_boundaries_skip_exactly_the_dropped_numbers() {
    let ntsc = rate(30000, 1001);
    let ntsc60 = rate(60000, 1001);
    for (rate, before, after) in [
        (ntsc, "00:00:59;29", "00:01:00;02"),
        (ntsc, "00:09:59;29", "00:10:00;00"),
        (ntsc, "00:10:59;29", "00:11:00;02"),
        (ntsc, "00:59:59;29", "01:00:00;00"),
        (ntsc, "23:59:59;29", "00:00:00;00"),
        (ntsc, "00:01:00;02", "00:01:00;03"),
        (ntsc60, "00:00:59;59", "00:01:00;04"),
        (ntsc60, "00:09:59;59", "00:10:00;00"),
        (ntsc, "00:00:59:29", "00:01:00:00"),
    ] {
        let fsm = tc(before).frames_since_midnight(rate).unwrap();
        let next = Timecode::from_frames_since_midnight(fsm + 1, rate, tc(before).drop_frame);
        assert_eq!(next.to_string(), after, "{before} + 1 frame at {rate}");
    }
    assert_eq!(
        tc("00:01:00;02").frames_since_midnight(ntsc).unwrap(),
        1_800
    );
    assert_eq!(
        tc("00:10:00;00").frames_since_midnight(ntsc).unwrap(),
        17_982
    );
    assert_eq!(
        tc("00:01:00;04").frames_since_midnight(ntsc60).unwrap(),
        3_600
    );
    for dropped in ["00:01:00;00", "00:01:00;01", "12:59:00;01"] {
        assert!(matches!(
            tc(dropped).frames_since_midnight(ntsc),
            Err(TimeError::DroppedFrameNumber { dropped: 2, .. })
        ));
    }
    assert!(matches!(
        tc("00:01:00;03").frames_since_midnight(ntsc60),
        Err(TimeError::DroppedFrameNumber { dropped: 4, .. })
    ));
    assert!(tc("00:10:00;00").frames_since_midnight(ntsc).is_ok());
    assert!(tc("00:01:01;00").frames_since_midnight(ntsc).is_ok());
}

#[test]
fn a_drop_frame_day_holds_2_589_408_frames_at_29_97_and_5_178_816_at_59_94() {
    let ntsc = rate(30000, 1001);
    let ntsc60 = rate(60000, 1001);
    assert_eq!(per_day(ntsc, true), 2_589_408);
    assert_eq!(per_day(ntsc60, true), 5_178_816);
    assert_eq!(
        tc("23:59:59;29").frames_since_midnight(ntsc).unwrap(),
        2_589_407
    );
    assert_eq!(
        tc("23:59:59;59").frames_since_midnight(ntsc60).unwrap(),
        5_178_815
    );
    assert_eq!(per_day(ntsc, false), 2_592_000);
    assert_eq!(per_day(rate(25, 1), false), 2_160_000);
    // Counting every frame of a day one by one lands on the same total.
    let mut label = tc("00:00:00;00");
    let mut count = 0u64;
    loop {
        label = successor(label, 30, 2);
        count += 1;
        if label == tc("00:00:00;00") {
            break;
        }
    }
    assert_eq!(count, 2_589_408);
}

#[test]
fn the_last_frames_before_utc_midnight_belong_to_their_date_at_every_rate() {
    for (num, den, df) in CASES {
        let rate = rate(num, den);
        let day = per_day(rate, df);
        for days in [0u64, 1, 2, 19_723, 47_481] {
            let (first, next) = (
                first_frame_of_day(days, rate),
                first_frame_of_day(days + 1, rate),
            );
            for n in next - 8..next + 2 {
                let (date, label) = timecode_of(FrameIndex(n), rate, df);
                let (d, offset) = if n < next {
                    (days, n - first)
                } else {
                    (days + 1, n - next)
                };
                assert_eq!(date, ymd(epoch_plus(d)), "frame {n} at {rate}");
                if offset < day {
                    assert_eq!(frame_index(date, &label, rate).unwrap(), FrameIndex(n));
                } else {
                    // Drop-frame only: the label wraps to the start of the same date.
                    assert!(df && offset - day < 6, "frame {n} at {rate} has no label");
                    assert_eq!(label.frames_since_midnight(rate).unwrap(), offset - day);
                }
            }
        }
    }
}

#[test]
fn non_drop_ntsc_timecode_falls_86_seconds_behind_utc_in_a_day() {
    // Why drop-frame exists: 23:58:33:21 non-drop is already the first frame of the next day.
    let ntsc = rate(30000, 1001);
    let day_frames = first_frame_of_day(1, ntsc);
    let label = Timecode::from_frames_since_midnight(day_frames, ntsc, false);
    assert_eq!(label.to_string(), "23:58:33:21");
    let (date, next) = timecode_of(
        frame_index((1970, 1, 1), &tc("23:59:59:29"), ntsc).unwrap(),
        ntsc,
        false,
    );
    assert_eq!(
        (date, next.to_string()),
        ((1970, 1, 2), "00:01:26:08".to_string())
    );
}

/// Exact `floor(n × timescale × den / num)`.
fn exact_time(n: u64, ts: u32, rate: Rate) -> u128 {
    u128::from(n) * u128::from(ts) * u128::from(rate.den()) / u128::from(rate.num())
}

fn gop_of(rate: Rate, secs: u64) -> u64 {
    u64::from(rate.nominal_fps()) * secs
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn frame_grid_sample_times_never_drift_over_100_years(
        (rate, _df) in case(),
        ts in prop::sample::select(vec![DEFAULT_TIMESCALE, 90_000, 1_000]),
        seed in any::<u64>(),
        len in 1u64..2_000,
    ) {
        let grid = FrameGrid::new(rate, ts);
        let horizon = SECS_100_YEARS * u64::from(rate.num()) / u64::from(rate.den());
        let n0 = seed % horizon;
        let per_num = u128::from(ts) * u128::from(rate.den());
        let (lo, hi) = (per_num / u128::from(rate.num()), per_num.div_ceil(u128::from(rate.num())));
        let mut sum = 0u128;
        let mut prev = grid.time_of(FrameIndex(n0));
        for n in n0..n0 + len {
            let d = u128::from(grid.duration_of(FrameIndex(n)));
            prop_assert!(d == lo || d == hi, "duration {} of frame {} not in {}..={}", d, n, lo, hi);
            sum += d;
            prop_assert_eq!(grid.nearest_frame(grid.time_of(FrameIndex(n))), FrameIndex(n));
            let next = grid.time_of(FrameIndex(n + 1));
            prop_assert!(next > prev);
            prev = next;
        }
        let start = grid.time_of(FrameIndex(n0));
        let end = grid.time_of(FrameIndex(n0 + len));
        prop_assert_eq!(u128::from(start.0), exact_time(n0, ts, rate));
        prop_assert_eq!(u128::from(end.0), exact_time(n0 + len, ts, rate));
        prop_assert_eq!(sum, u128::from(end.0 - start.0));
        // No drift: the window spans its exact rational length to within one tick.
        let exact_num = u128::from(len) * per_num;
        let span_num = sum * u128::from(rate.num());
        prop_assert!(span_num.abs_diff(exact_num) < u128::from(rate.num()));
        prop_assert!(u128::from(grid.span_ceil(len)) >= sum);
    }

    #[test]
    fn frame_at_unix_nanos_snaps_capture_times_to_the_nearest_slot(
        (rate, _df) in case(), seed in any::<u64>(), jitter_permille in 0u64..500,
    ) {
        let grid = FrameGrid::new(rate, DEFAULT_TIMESCALE);
        let horizon = SECS_100_YEARS * u64::from(rate.num()) / u64::from(rate.den());
        let n = seed % horizon;
        let frame_ns = 1_000_000_000u128 * u128::from(rate.den()) / u128::from(rate.num());
        let at = exact_time(n, 1_000_000_000, rate);
        let jitter = frame_ns * u128::from(jitter_permille) / 1000;
        prop_assert_eq!(grid.frame_at_unix_nanos(at + jitter), FrameIndex(n));
        if at > jitter + 1 {
            prop_assert_eq!(grid.frame_at_unix_nanos(at + 1 - jitter), FrameIndex(n));
        }
    }

    #[test]
    fn fragment_boundaries_are_identical_whatever_frame_a_run_starts_at(
        (rate, _df) in case(),
        secs in 1u64..=4,
        seed in any::<u64>(),
        shift in 0u64..1_000,
    ) {
        let frags = FragmentGrid { gop: gop_of(rate, secs) };
        let horizon = SECS_100_YEARS * u64::from(rate.num()) / u64::from(rate.den());
        let a = seed % horizon;
        let b = a + shift;
        let len = 3 * frags.gop + 7;
        let run_a = run(&frags, a, len);
        let run_b = run(&frags, b, len);
        for (n, rec) in run_b.iter().filter(|(n, _)| *n < a + len) {
            let (_, other) = &run_a[(n - a) as usize];
            prop_assert_eq!(rec, other, "frame {}", n);
        }
    }

    #[test]
    fn audio_fragments_start_at_the_first_aac_frame_after_each_video_boundary(
        (rate, _df) in case(),
        sample_rate in prop::sample::select(vec![48_000u32, 44_100]),
        ts in prop::sample::select(vec![DEFAULT_TIMESCALE, 90_000]),
        secs in 1u64..=4,
        seed in any::<u64>(),
        pick in any::<u64>(),
    ) {
        let video = FrameGrid::new(rate, ts);
        let frags = FragmentGrid { gop: gop_of(rate, secs) };
        let audio = AudioGrid::aac(sample_rate, ts);
        let horizon = SECS_100_YEARS * u64::from(rate.num()) / u64::from(rate.den()) / frags.gop;
        let k = seed % horizon + 1;
        let j = audio.fragment_start(k, &video, &frags);
        let j_next = audio.fragment_start(k + 1, &video, &frags);
        let boundary = video.time_of(frags.first_frame(k));
        let aac_exact = |j: u64| u128::from(j) * 1024 * u128::from(ts) / u128::from(sample_rate);
        let aac_max = (1024 * u128::from(ts)).div_ceil(u128::from(sample_rate));
        let aac_min = 1024 * u128::from(ts) / u128::from(sample_rate);

        // First AAC frame at or after the video boundary, in exact arithmetic.
        prop_assert_eq!(u128::from(audio.time_of_frame(j).0), aac_exact(j));
        prop_assert!(audio.time_of_frame(j) >= boundary);
        prop_assert!(audio.time_of_frame(j - 1) < boundary);
        prop_assert!(u128::from(audio.time_of_frame(j).0 - boundary.0) < aac_max);
        prop_assert_eq!(audio.first_frame_at_or_after(boundary), j);
        prop_assert_eq!(audio.first_frame_at_or_after(MediaTime(boundary.0 + 1)), j + u64::from(audio.time_of_frame(j) == boundary));

        // fragment_of_frame agrees with fragment_start on both edges and inside.
        prop_assert_eq!(audio.fragment_of_frame(j, &video, &frags), k);
        prop_assert_eq!(audio.fragment_of_frame(j - 1, &video, &frags), k - 1);
        prop_assert_eq!(audio.fragment_of_frame(j_next - 1, &video, &frags), k);
        prop_assert_eq!(audio.fragment_of_frame(j_next, &video, &frags), k + 1);
        let inside = j + pick % (j_next - j);
        prop_assert_eq!(audio.fragment_of_frame(inside, &video, &frags), k);

        // AAC frame durations sum exactly to the fragment's span, which tracks the video's.
        let mut sum = 0u128;
        for i in j..j_next {
            let d = u128::from(audio.duration_of_frame(i));
            prop_assert!(d == aac_min || d == aac_max, "AAC frame {} lasts {}", i, d);
            sum += d;
        }
        prop_assert_eq!(sum, aac_exact(j_next) - aac_exact(j));
        let video_span = u128::from(video.time_of(frags.first_frame(k + 1)).0 - boundary.0);
        prop_assert!(sum.abs_diff(video_span) < aac_max);
    }
}

/// What a packager run that starts at `start` records for each of its `len` frames:
/// (fragment index, first frame of that fragment, next boundary), from its own cut decisions.
type Record = (u64, FrameIndex, FrameIndex);

fn run(frags: &FragmentGrid, start: u64, len: u64) -> Vec<(u64, Record)> {
    let mut out = Vec::with_capacity(len as usize);
    let mut open: Option<(u64, u64)> = None; // (fragment, first frame) of the open fragment
    let mut last_cut: Option<u64> = None;
    for n in start..start + len {
        let f = FrameIndex(n);
        if frags.is_boundary(f) {
            let k = frags.fragment_of(f);
            assert_eq!(frags.first_frame(k), f);
            assert_eq!(frags.next_boundary(f), f);
            if let Some(prev) = last_cut {
                assert_eq!(n - prev, frags.gop, "fragments are exactly one GOP long");
                assert_eq!(
                    open.map(|o| o.0 + 1),
                    Some(k),
                    "fragment indices are contiguous"
                );
            }
            last_cut = Some(n);
            open = Some((k, n));
        }
        let k = frags.fragment_of(f);
        if let Some((open_k, first)) = open {
            assert_eq!((open_k, FrameIndex(first)), (k, frags.first_frame(k)));
        }
        let next = frags.next_boundary(f);
        assert!(next.0 >= n && next.0 - n < frags.gop);
        assert!(frags.first_frame(k).0 <= n && n < frags.first_frame(k + 1).0);
        out.push((n, (k, frags.first_frame(k), next)));
    }
    out
}
