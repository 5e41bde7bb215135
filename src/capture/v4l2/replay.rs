//! Trace replay: a recorded V4L2 timestamp trace plus recorded buffers played back as a
//! [`BufferSource`] — how the V4L2 path is tested on machines without a capture card.
//!
//! Traces use the line format `v4l2-ctl --stream-mmap --verbose` prints for every dequeued
//! buffer, so a trace recorded on a real box drops straight into `tests/data/v4l2/`:
//!
//! ```text
//! cap dqbuf: 0 seq:      0 bytesused: 614400 ts: 8412.316204 delta: 33.366 ms (ts-monotonic, ts-src-eof)
//! ```
//!
//! Only `seq:`, `bytesused:`, `ts:` and the `error` flag are read; lines starting with `#` are
//! comments. `v4l2-ctl` prints a buffer's timecode only in its multi-line dump, so traces of
//! timecode-carrying buffers use a smoothcast extension of the line: `tc: TYPE FLAGS
//! HH:MM:SS:FF` before the flags, the raw `struct v4l2_timecode` fields (type
//! `V4L2_TC_TYPE_*` number, flags in hex, binary fields), e.g. `tc: 2 0x0 10:00:00:00` (25 fps)
//! or `tc: 3 0x1 10:01:00:02` (30 fps, drop-frame). A line with `tc:` is a buffer with
//! `V4L2_BUF_FLAG_TIMECODE`; one without has no timecode. `ts` is the buffer's `CLOCK_MONOTONIC` time on the recording machine; replay
//! shifts the whole trace so that its first buffer falls at a chosen time of the injected
//! clocks. Like a device, the replay fails with [`V4l2Error::NoSignal`] when the next buffer is
//! more than the no-signal timeout away, and a replay opened at some time delivers nothing
//! recorded before it (a reopened device does not hand out old pictures).

use super::timecode::BufferTimecode;
use super::{BufferSource, Captured, V4l2Error};
use crate::capture::Pacing;
use crate::time::Clocks;
use std::sync::Arc;
use std::time::Duration;

/// Most lines a trace may have (a trace is a test fixture; this bounds memory).
pub const MAX_TRACE_LINES: usize = 1_000_000;

/// One dequeued buffer of a trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceEntry {
    /// The driver's sequence number.
    pub sequence: u32,
    /// Bytes the driver filled.
    pub bytesused: u32,
    /// Buffer timestamp in microseconds of the recording machine's monotonic clock.
    pub at_us: u64,
    /// The driver flagged the buffer `error`.
    pub damaged: bool,
    /// The buffer's driver timecode (the `tc:` extension; `None`: no
    /// `V4L2_BUF_FLAG_TIMECODE`).
    pub timecode: Option<BufferTimecode>,
}

/// Parses a `v4l2-ctl --stream-mmap -v` trace (see the module docs). `path` names the trace
/// in errors.
pub fn parse_trace(text: &str, path: &str) -> Result<Vec<TraceEntry>, V4l2Error> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let err = |reason: String| V4l2Error::Trace {
            path: path.to_owned(),
            line: i + 1,
            reason,
        };
        if out.len() >= MAX_TRACE_LINES {
            return Err(err(format!("more than {MAX_TRACE_LINES} buffers")));
        }
        if !line.contains("dqbuf:") {
            return Err(err("not a `cap dqbuf:` line".into()));
        }
        let after = |key: &str| -> Result<&str, V4l2Error> {
            let mut words = line.split_whitespace();
            words
                .by_ref()
                .find(|w| *w == key)
                .and_then(|_| words.next())
                .ok_or_else(|| err(format!("no `{key}` field")))
        };
        let sequence = after("seq:")?
            .parse::<u32>()
            .map_err(|e| err(format!("seq: {e}")))?;
        let bytesused = after("bytesused:")?
            .split('/')
            .next()
            .unwrap_or("")
            .parse::<u32>()
            .map_err(|e| err(format!("bytesused: {e}")))?;
        let at_us =
            parse_ts(after("ts:")?).ok_or_else(|| err("ts: not `seconds.micros`".into()))?;
        let flags = line
            .rfind('(')
            .map(|p| &line[p..])
            .filter(|f| f.ends_with(')'))
            .unwrap_or("");
        let damaged = flags
            .trim_matches(|c| c == '(' || c == ')')
            .split(',')
            .any(|f| f.trim() == "error");
        let timecode = match line.split_once(" tc: ") {
            None => None,
            Some((_, rest)) => {
                Some(parse_tc(rest).ok_or_else(|| err("tc: not `TYPE FLAGS HH:MM:SS:FF`".into()))?)
            }
        };
        out.push(TraceEntry {
            sequence,
            bytesused,
            at_us,
            damaged,
            timecode,
        });
    }
    Ok(out)
}

/// `"2 0x1 10:01:00:02 …"` → the raw timecode fields (see the module docs).
fn parse_tc(s: &str) -> Option<BufferTimecode> {
    let mut words = s.split_whitespace();
    let kind = words.next()?.parse::<u32>().ok()?;
    let flags = u32::from_str_radix(words.next()?.strip_prefix("0x")?, 16).ok()?;
    let mut f = words.next()?.split(':').map(|x| x.parse::<u8>().ok());
    let (hours, minutes, seconds, frames) = (f.next()??, f.next()??, f.next()??, f.next()??);
    if f.next().is_some() {
        return None;
    }
    Some(BufferTimecode {
        kind,
        flags,
        frames,
        seconds,
        minutes,
        hours,
        userbits: [0; 4],
    })
}

/// `"8412.316204"` → microseconds.
fn parse_ts(s: &str) -> Option<u64> {
    let (sec, frac) = s.split_once('.').unwrap_or((s, "0"));
    if frac.is_empty() || frac.len() > 6 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let sec: u64 = sec.parse().ok()?;
    let micros: u64 = format!("{frac:0<6}").parse().ok()?;
    sec.checked_mul(1_000_000)?.checked_add(micros)
}

/// Plays a trace as a [`BufferSource`] (see the module docs).
#[derive(Debug)]
pub struct TraceReplay {
    entries: Arc<[TraceEntry]>,
    /// Recorded pictures, used in turn (entry `i` shows `buffers[i % len]`).
    buffers: Arc<Vec<Vec<u8>>>,
    /// Clocks time of the trace's first entry.
    origin: Duration,
    /// The trace's first timestamp (µs).
    t0_us: u64,
    cursor: usize,
    /// Time of the last delivered buffer (or the open time): the no-signal timeout runs from
    /// here.
    last_at: Duration,
    skip_before: Option<Duration>,
    no_signal_after: Duration,
    clocks: Option<Arc<dyn Clocks>>,
}

impl TraceReplay {
    /// A replay of `entries` whose first entry happens at `origin` (the clocks' monotonic
    /// time), opened at `opened_at`: entries before it are never delivered. With real-time
    /// `pacing` every buffer is released when its time comes on the clocks.
    pub fn new(
        entries: Arc<[TraceEntry]>,
        buffers: Arc<Vec<Vec<u8>>>,
        origin: Duration,
        opened_at: Duration,
        no_signal_after: Duration,
        pacing: &Pacing,
    ) -> TraceReplay {
        TraceReplay {
            t0_us: entries.first().map_or(0, |e| e.at_us),
            entries,
            buffers,
            origin,
            cursor: 0,
            last_at: opened_at,
            skip_before: Some(opened_at),
            no_signal_after,
            clocks: match pacing {
                Pacing::RealTime { clocks } => Some(Arc::clone(clocks)),
                Pacing::Fast => None,
            },
        }
    }

    /// Clocks time of entry `e`.
    fn time_of(&self, e: &TraceEntry) -> Duration {
        self.origin + Duration::from_micros(e.at_us.saturating_sub(self.t0_us))
    }

    fn sleep_until(&self, t: Duration) {
        if let Some(c) = &self.clocks {
            let now = c.monotonic();
            if t > now {
                c.sleep(t - now);
            }
        }
    }
}

impl BufferSource for TraceReplay {
    fn next_buffer(&mut self) -> Result<Captured<'_>, V4l2Error> {
        if let Some(skip) = self.skip_before.take() {
            while let Some(e) = self.entries.get(self.cursor) {
                if self.time_of(e) >= skip {
                    break;
                }
                self.cursor += 1;
            }
        }
        let deadline = self.last_at + self.no_signal_after;
        let next = self.entries.get(self.cursor).map(|e| (*e, self.time_of(e)));
        let Some((entry, at)) = next.filter(|(_, at)| *at <= deadline) else {
            // The device would time out waiting for this buffer (or the trace has ended).
            self.sleep_until(deadline);
            self.last_at = deadline;
            return Err(V4l2Error::NoSignal(self.no_signal_after));
        };
        self.sleep_until(at);
        self.cursor += 1;
        self.last_at = at;
        let data: &[u8] = if self.buffers.is_empty() {
            &[]
        } else {
            &self.buffers[self.cursor.saturating_sub(1) % self.buffers.len()]
        };
        Ok(Captured {
            data,
            at,
            sequence: entry.sequence,
            damaged: entry.damaged,
            timecode: entry.timecode,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_v4l2_ctl_lines_with_and_without_extras() {
        let text = "# comment\n\
            cap dqbuf: 0 seq:      0 bytesused: 614400 ts: 8412.316204 (ts-monotonic, ts-src-eof)\n\
            cap dqbuf: 1 seq:      1 bytesused: 614400 ts: 8412.349570 delta: 33.366 ms fps: 29.97 (ts-monotonic, ts-src-eof)\n\
            cap dqbuf: 2 seq:      3 bytesused: 0 ts: 8412.416303 delta: 66.733 ms (error, ts-monotonic, ts-src-eof)\n";
        let t = parse_trace(text, "t").unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(t[0].at_us, 8_412_316_204);
        assert_eq!(t[1].sequence, 1);
        assert!(!t[1].damaged);
        assert!(t[2].damaged);
        assert_eq!(t[2].sequence, 3);
    }

    #[test]
    fn parses_the_timecode_extension() {
        let text =
            "cap dqbuf: 0 seq: 0 bytesused: 8 ts: 1.000000 tc: 3 0x1 10:01:00:02 (ts-monotonic)\n\
            cap dqbuf: 1 seq: 1 bytesused: 8 ts: 1.040000 (ts-monotonic)\n";
        let t = parse_trace(text, "t").unwrap();
        let tc = t[0].timecode.unwrap();
        assert_eq!((tc.kind, tc.flags), (3, 1));
        assert_eq!((tc.hours, tc.minutes, tc.seconds, tc.frames), (10, 1, 0, 2));
        assert_eq!(t[1].timecode, None);
        for bad in [
            "tc: 3 1 10:01:00:02",
            "tc: x 0x0 10:00:00:00",
            "tc: 2 0x0 10:00:00",
            "tc: 2 0x0 10:00:00:00:00",
            "tc: 2 0x0 300:00:00:00",
        ] {
            let line =
                format!("cap dqbuf: 0 seq: 0 bytesused: 8 ts: 1.000000 {bad} (ts-monotonic)\n");
            assert!(parse_trace(&line, "t").is_err(), "{bad}");
        }
    }

    #[test]
    fn refuses_garbage_with_the_line_number() {
        let e = parse_trace("cap dqbuf: 0 seq: x bytesused: 1 ts: 1.0\n", "t.trace").unwrap_err();
        assert!(e.to_string().contains("t.trace line 1"), "{e}");
        assert!(parse_trace("hello\n", "t").is_err());
        assert!(parse_trace("cap dqbuf: 0 seq: 0 bytesused: 1 ts: 1.1234567\n", "t").is_err());
    }
}
