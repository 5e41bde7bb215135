//! The per-session replay buffer: the fragments the server may not have.
//!
//! Every fragment a session takes off its queue goes here first (before it is written, so a
//! fragment cut by a reset is resent), and so do fragments that arrive while the session is
//! disconnected or on standby. After a (re)connect the session sends the header and then this
//! buffer in submission order. A fragment leaves the buffer once it is older than the replay
//! window (media time, per track), but the last two fragments of every track always stay
//! (protocol.md §1.6: "resend the last two fragments of every track").

use super::Fragment;
use std::collections::VecDeque;
use std::sync::Arc;

/// Fragments always kept per track, whatever the window.
const MIN_PER_TRACK: usize = 2;
/// Hard cap per track so odd timestamps (zero durations) cannot grow memory without bound.
const MAX_PER_TRACK: usize = 512;

pub(crate) struct ReplayBuffer {
    entries: VecDeque<Arc<Fragment>>,
    window_secs: f64,
    /// `(track_id, ticks per second)`; tracks not listed use the 10 MHz default.
    timescales: Vec<(u32, u32)>,
}

impl ReplayBuffer {
    pub(crate) fn new(window_secs: f64, timescales: Vec<(u32, u32)>) -> ReplayBuffer {
        ReplayBuffer {
            entries: VecDeque::new(),
            window_secs: if window_secs.is_finite() {
                window_secs.max(0.0)
            } else {
                0.0
            },
            timescales,
        }
    }

    fn window_ticks(&self, track_id: u32) -> u64 {
        let ts = self
            .timescales
            .iter()
            .find(|(t, _)| *t == track_id)
            .map(|(_, s)| *s)
            .unwrap_or(crate::time::DEFAULT_TIMESCALE);
        // f64 → u64 saturates; a window of days is still fine.
        (self.window_secs * f64::from(ts)) as u64
    }

    /// Adds a fragment (newest) and drops what fell out of the window for its track.
    pub(crate) fn push(&mut self, fragment: Arc<Fragment>) {
        let track = fragment.track_id;
        self.entries.push_back(fragment);
        let window = self.window_ticks(track);
        let newest_end = self
            .entries
            .iter()
            .filter(|f| f.track_id == track)
            .map(|f| f.time.saturating_add(f.duration))
            .max()
            .unwrap_or(0);
        let horizon = newest_end.saturating_sub(window);
        // Walk newest → oldest, counting this track's fragments.
        let mut seen = 0usize;
        let mut keep = vec![true; self.entries.len()];
        for (i, f) in self.entries.iter().enumerate().rev() {
            if f.track_id != track {
                continue;
            }
            seen += 1;
            let in_window = f.time.saturating_add(f.duration) > horizon;
            if seen > MAX_PER_TRACK || (seen > MIN_PER_TRACK && !in_window) {
                keep[i] = false;
            }
        }
        if keep.iter().any(|k| !k) {
            let mut it = keep.into_iter();
            self.entries.retain(|_| it.next().unwrap_or(true));
        }
    }

    /// The buffered fragments in submission order (cheap `Arc` clones).
    pub(crate) fn snapshot(&self) -> Vec<Arc<Fragment>> {
        self.entries.iter().cloned().collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Forget everything (after 409: the server refuses times it already has).
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn frag(track: u32, seq: u32, dur: u64) -> Arc<Fragment> {
        Arc::new(Fragment {
            track_id: track,
            sequence: seq,
            time: u64::from(seq) * dur,
            duration: dur,
            bytes: Bytes::new(),
        })
    }

    fn seqs(b: &ReplayBuffer) -> Vec<(u32, u32)> {
        b.snapshot()
            .iter()
            .map(|f| (f.track_id, f.sequence))
            .collect()
    }

    #[test]
    fn zero_window_keeps_exactly_the_last_two_per_track_in_submission_order() {
        let mut b = ReplayBuffer::new(0.0, vec![]);
        for k in 0..5 {
            b.push(frag(1, k, 20_000_000));
            b.push(frag(2, k, 20_000_000));
        }
        assert_eq!(seqs(&b), vec![(1, 3), (2, 3), (1, 4), (2, 4)]);
    }

    #[test]
    fn window_is_media_time_in_each_tracks_timescale() {
        // Track 1 at 10 MHz, track 2 at 48 kHz; 2 s fragments; 6 s window → 3 fragments.
        let mut b = ReplayBuffer::new(6.0, vec![(2, 48_000)]);
        for k in 0..10 {
            b.push(frag(1, k, 20_000_000));
            b.push(frag(2, k, 96_000));
        }
        let s = seqs(&b);
        assert_eq!(s.iter().filter(|(t, _)| *t == 1).count(), 3);
        assert_eq!(s.iter().filter(|(t, _)| *t == 2).count(), 3);
        assert_eq!(s.first(), Some(&(1, 7)));
        b.clear();
        assert_eq!(b.len(), 0);
    }

    #[test]
    fn huge_windows_are_capped() {
        let mut b = ReplayBuffer::new(1e9, vec![]);
        for k in 0..2000 {
            b.push(frag(1, k, 1));
        }
        assert_eq!(b.len(), MAX_PER_TRACK);
    }
}
