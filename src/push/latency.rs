//! Latency probe: how long after the end of its media a fragment reached a given point (packaged,
//! or its last byte written to a destination's socket).
//!
//! Media time is ticks since the Unix epoch, so with the `clock` timecode source the media of a
//! fragment ends at the UTC instant `(tfxd time + duration) / timescale`; the probe subtracts
//! that from the UTC time of the event. With a `fixed` timecode or in fast mode media time is
//! not wall-clock time and the figures are meaningless (callers only show them for real-time
//! clock-locked runs). Recording costs one clock read and one uncontended lock per fragment.

use std::collections::VecDeque;
use std::sync::Mutex;

/// Samples kept per track; percentiles describe the most recent ones (about 34 minutes of
/// 2-second fragments), so a long run reports its current behaviour, not its start-up.
const WINDOW: usize = 1024;

/// Latency figures of one track, in milliseconds of wall-clock time after the end of the
/// fragment's media (UTC). Negative when the event came before the media's end instant.
#[derive(Clone, Debug, PartialEq)]
pub struct TrackLatency {
    /// `trackID` of the fragments.
    pub track_id: u32,
    /// Fragments measured since the start (the percentiles cover the last 1024).
    pub count: u64,
    /// Median, ms.
    pub p50_ms: f64,
    /// 99th percentile (nearest rank), ms.
    pub p99_ms: f64,
    /// Largest in the window, ms.
    pub max_ms: f64,
    /// The most recent fragment, ms.
    pub last_ms: f64,
}

#[derive(Debug, Default)]
struct Track {
    track_id: u32,
    count: u64,
    /// Nanoseconds after the media end (UTC), most recent last.
    recent: VecDeque<i64>,
}

/// A thread-safe per-track record of latencies.
#[derive(Debug, Default)]
pub struct LatencyLog {
    tracks: Mutex<Vec<Track>>,
}

impl LatencyLog {
    /// Records that a fragment of `track_id` whose media ends at `media_end` ticks since the
    /// epoch (at `timescale` ticks per second) reached the measured point at `now_utc_nanos`.
    pub fn record(&self, track_id: u32, media_end: u64, timescale: u32, now_utc_nanos: u128) {
        if timescale == 0 {
            return;
        }
        let end_nanos = u128::from(media_end) * 1_000_000_000 / u128::from(timescale);
        let lat = i128::try_from(now_utc_nanos).unwrap_or(i128::MAX)
            - i128::try_from(end_nanos).unwrap_or(i128::MAX);
        let lat = i64::try_from(lat).unwrap_or(if lat < 0 { i64::MIN } else { i64::MAX });
        let mut tracks = self.tracks.lock().unwrap_or_else(|e| e.into_inner());
        let i = match tracks.iter().position(|t| t.track_id == track_id) {
            Some(i) => i,
            None => {
                tracks.push(Track {
                    track_id,
                    count: 0,
                    recent: VecDeque::with_capacity(WINDOW),
                });
                tracks.len() - 1
            }
        };
        let t = &mut tracks[i];
        if t.recent.len() == WINDOW {
            t.recent.pop_front();
        }
        t.recent.push_back(lat);
        t.count += 1;
    }

    /// Percentiles per track, in the order tracks were first seen.
    pub fn snapshot(&self) -> Vec<TrackLatency> {
        let tracks = self.tracks.lock().unwrap_or_else(|e| e.into_inner());
        tracks
            .iter()
            .filter(|t| !t.recent.is_empty())
            .map(|t| {
                let mut v: Vec<i64> = t.recent.iter().copied().collect();
                v.sort_unstable();
                let ms = |ns: i64| ns as f64 / 1e6;
                TrackLatency {
                    track_id: t.track_id,
                    count: t.count,
                    p50_ms: ms(nearest_rank(&v, 50)),
                    p99_ms: ms(nearest_rank(&v, 99)),
                    max_ms: ms(v.last().copied().unwrap_or(0)),
                    last_ms: ms(t.recent.back().copied().unwrap_or(0)),
                }
            })
            .collect()
    }
}

/// The `pct`-th percentile of sorted `v` by the nearest-rank method (`v` non-empty).
fn nearest_rank(v: &[i64], pct: usize) -> i64 {
    let rank = (pct * v.len()).div_ceil(100).max(1);
    v.get(rank - 1).copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_is_event_time_minus_media_end_per_track() {
        let log = LatencyLog::default();
        // Media ends at 100 s (10 MHz ticks); events 250 ms and 50 ms later / 10 ms early.
        for (track, ms) in [(1, 250i64), (2, 50), (2, -10)] {
            let now = (100_000 + ms) as u128 * 1_000_000;
            log.record(track, 1_000_000_000, 10_000_000, now);
        }
        let s = log.snapshot();
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].track_id, s[0].count, s[0].p50_ms), (1, 1, 250.0));
        assert_eq!((s[1].track_id, s[1].count), (2, 2));
        assert_eq!(
            (s[1].p50_ms, s[1].p99_ms, s[1].last_ms),
            (-10.0, 50.0, -10.0)
        );
    }

    #[test]
    fn percentiles_use_nearest_rank_over_the_recent_window() {
        let log = LatencyLog::default();
        for ms in 1..=(WINDOW as u128 + 100) {
            log.record(7, 0, 1000, ms * 1_000_000);
        }
        let s = &log.snapshot()[0];
        assert_eq!(s.count, WINDOW as u64 + 100);
        // The window holds 101..=1124 ms.
        assert_eq!(s.p50_ms, 101.0 + 511.0);
        assert_eq!(s.p99_ms, 101.0 + 1013.0);
        assert_eq!(s.max_ms, 1124.0);
    }
}
