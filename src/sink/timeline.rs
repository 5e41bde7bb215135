//! One track's timeline: which media time ranges were accepted, the fragments still held in
//! memory for the DVR window, and the de-duplication decision for a new fragment.
//!
//! All times are in the track's timescale (tfxd ticks).

use std::collections::BTreeMap;

use bytes::Bytes;

/// A fragment held in memory (inside the DVR window).
#[derive(Debug, Clone)]
pub(crate) struct HeldFragment {
    /// tfxd duration, track ticks.
    pub duration: u64,
    /// Single-traf `moof` as received.
    pub moof: Bytes,
    /// Its `mdat`.
    pub mdat: Bytes,
}

/// What to do with an incoming fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// New media: keep it.
    Accept,
    /// The same (time, duration) is already held: drop and count.
    Duplicate,
    /// Overlaps held media without matching a held fragment: reject (time going backwards /
    /// misaligned fragment boundaries). Carries the end of the track's timeline.
    Overlap { held_end: u64 },
}

/// Accepted time ranges plus the fragments inside the DVR window.
#[derive(Debug, Default)]
pub(crate) struct Timeline {
    /// Disjoint, sorted, merged `[start, end)` ranges of accepted media.
    covered: Vec<(u64, u64)>,
    /// Fragments in memory, by tfxd time.
    held: BTreeMap<u64, HeldFragment>,
    /// Accepted fragment count.
    pub fragments: u64,
    /// Gaps forgotten because `covered` hit its bound (their holes were merged away).
    pub gaps_truncated: u64,
}

impl Timeline {
    /// Start of the earliest accepted fragment.
    pub fn first_time(&self) -> Option<u64> {
        self.covered.first().map(|c| c.0)
    }

    /// End of the latest accepted fragment.
    pub fn last_end(&self) -> Option<u64> {
        self.covered.last().map(|c| c.1)
    }

    /// Holes between accepted ranges, as (from, to).
    pub fn gaps(&self) -> Vec<(u64, u64)> {
        self.covered.windows(2).map(|w| (w[0].1, w[1].0)).collect()
    }

    /// Fragments currently held, in time order.
    pub fn held(&self) -> impl DoubleEndedIterator<Item = (&u64, &HeldFragment)> {
        self.held.iter()
    }

    /// The held fragment starting at `time`.
    pub fn get(&self, time: u64) -> Option<&HeldFragment> {
        self.held.get(&time)
    }

    /// Up to `n` held fragments after `time`, as (time, duration).
    pub fn following(&self, time: u64, n: usize) -> Vec<(u64, u64)> {
        self.held
            .range(time.saturating_add(1)..)
            .take(n)
            .map(|(t, f)| (*t, f.duration))
            .collect()
    }

    /// Decides the fate of a fragment `[time, time + duration)`.
    pub fn judge(&self, time: u64, duration: u64) -> Verdict {
        let end = time.saturating_add(duration);
        let Some(held_end) = self.last_end() else {
            return Verdict::Accept;
        };
        if time >= held_end {
            return Verdict::Accept;
        }
        if let Some(h) = self.held.get(&time) {
            return if h.duration == duration {
                Verdict::Duplicate
            } else {
                Verdict::Overlap { held_end }
            };
        }
        // Index of the first range ending after `time`.
        let i = self.covered.partition_point(|c| c.1 <= time);
        match self.covered.get(i) {
            // Entirely inside a hole: a late fragment (e.g. from a backup encoder) fills it.
            Some(&(s, _)) if end <= s => Verdict::Accept,
            // Entirely inside accepted media that already left memory: a resend we can no longer
            // compare byte for byte; treat as duplicate.
            Some(&(s, e))
                if s <= time
                    && end <= e
                    && self.held.keys().next().is_none_or(|first| time < *first) =>
            {
                Verdict::Duplicate
            }
            _ => Verdict::Overlap { held_end },
        }
    }

    /// Records an accepted fragment (after [`judge`](Self::judge) said `Accept`).
    pub fn insert(&mut self, time: u64, frag: HeldFragment, max_ranges: usize) {
        let end = time.saturating_add(frag.duration);
        self.fragments += 1;
        self.held.insert(time, frag);
        // Merge [time, end) into the covered ranges.
        let i = self.covered.partition_point(|c| c.1 < time);
        let mut start = time;
        let mut stop = end;
        let mut j = i;
        while j < self.covered.len() && self.covered[j].0 <= stop {
            start = start.min(self.covered[j].0);
            stop = stop.max(self.covered[j].1);
            j += 1;
        }
        self.covered.splice(i..j, [(start, stop)]);
        // Bound memory: forget the oldest holes first.
        while self.covered.len() > max_ranges.max(1) {
            self.covered[1].0 = self.covered[0].0;
            self.covered.remove(0);
            self.gaps_truncated += 1;
        }
    }

    /// Drops held fragments that ended more than `window` ticks before the end of the timeline.
    pub fn evict(&mut self, window: u64) {
        let Some(end) = self.last_end() else { return };
        let horizon = end.saturating_sub(window);
        while let Some((&t, f)) = self.held.iter().next() {
            if t.saturating_add(f.duration) <= horizon && self.held.len() > 1 {
                self.held.remove(&t);
            } else {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frag(d: u64) -> HeldFragment {
        HeldFragment {
            duration: d,
            moof: Bytes::new(),
            mdat: Bytes::new(),
        }
    }

    #[test]
    fn duplicates_gaps_and_late_fill() {
        let mut t = Timeline::default();
        assert_eq!(t.judge(100, 10), Verdict::Accept);
        t.insert(100, frag(10), 100);
        t.insert(110, frag(10), 100);
        assert_eq!(t.judge(110, 10), Verdict::Duplicate);
        assert_eq!(t.judge(110, 11), Verdict::Overlap { held_end: 120 });
        assert_eq!(t.judge(105, 10), Verdict::Overlap { held_end: 120 });
        assert_eq!(t.judge(140, 10), Verdict::Accept);
        t.insert(140, frag(10), 100);
        assert_eq!(t.gaps(), vec![(120, 140)]);
        // A late fragment inside the hole is accepted and shrinks it.
        assert_eq!(t.judge(120, 10), Verdict::Accept);
        t.insert(120, frag(10), 100);
        assert_eq!(t.gaps(), vec![(130, 140)]);
        assert_eq!(t.judge(125, 10), Verdict::Overlap { held_end: 150 });
        t.insert(130, frag(10), 100);
        assert!(t.gaps().is_empty());
        assert_eq!(
            (t.first_time(), t.last_end(), t.fragments),
            (Some(100), Some(150), 5)
        );
    }

    #[test]
    fn eviction_keeps_window_and_old_resends_count_as_duplicates() {
        let mut t = Timeline::default();
        for i in 0..10 {
            t.insert(i * 10, frag(10), 100);
        }
        t.evict(30);
        assert_eq!(t.held().next().map(|(k, _)| *k), Some(70));
        assert_eq!(t.judge(20, 10), Verdict::Duplicate);
        assert_eq!(t.following(70, 2), vec![(80, 10), (90, 10)]);
    }

    #[test]
    fn range_list_is_bounded() {
        let mut t = Timeline::default();
        for i in 0..10 {
            t.insert(i * 20, frag(10), 4);
        }
        assert_eq!(t.gaps().len(), 3);
        assert_eq!(t.gaps_truncated, 6);
        assert_eq!(t.first_time(), Some(0));
    }
}
