//! The driver's per-buffer timecode (`v4l2_buffer.timecode`, valid when the buffer carries
//! `V4L2_BUF_FLAG_TIMECODE`), and its validation into a SMPTE [`Timecode`] at the channel rate.
//!
//! The kernel's `struct v4l2_timecode` holds binary (not BCD) fields and a type naming the
//! nominal rate (24, 25, 30, 50 or 60 fps); drop-frame is a flag. Drivers fill it from the
//! signal's embedded timecode (SDI ATC/VITC). Nothing here trusts the driver: every field is
//! checked, and a label that does not exist at the channel rate is refused, never clamped.

use crate::time::{Rate, Timecode};

/// `V4L2_BUF_FLAG_TIMECODE`: the buffer's timecode field is valid.
pub const BUF_FLAG_TIMECODE: u32 = 0x0100;
/// `V4L2_TC_TYPE_24FPS`.
pub const TC_TYPE_24FPS: u32 = 1;
/// `V4L2_TC_TYPE_25FPS`.
pub const TC_TYPE_25FPS: u32 = 2;
/// `V4L2_TC_TYPE_30FPS` (30 and 29.97).
pub const TC_TYPE_30FPS: u32 = 3;
/// `V4L2_TC_TYPE_50FPS`.
pub const TC_TYPE_50FPS: u32 = 4;
/// `V4L2_TC_TYPE_60FPS` (60 and 59.94).
pub const TC_TYPE_60FPS: u32 = 5;
/// `V4L2_TC_FLAG_DROPFRAME`.
pub const TC_FLAG_DROPFRAME: u32 = 0x0001;
/// `V4L2_TC_FLAG_COLORFRAME`.
pub const TC_FLAG_COLORFRAME: u32 = 0x0002;

/// A buffer's `struct v4l2_timecode`, as the driver filled it (unvalidated).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BufferTimecode {
    /// `type`: `V4L2_TC_TYPE_*` (the nominal rate).
    pub kind: u32,
    /// `flags`: `V4L2_TC_FLAG_*`.
    pub flags: u32,
    /// Frame number within the second (binary).
    pub frames: u8,
    /// Seconds (binary).
    pub seconds: u8,
    /// Minutes (binary).
    pub minutes: u8,
    /// Hours (binary).
    pub hours: u8,
    /// The user bits, as delivered.
    pub userbits: [u8; 4],
}

impl BufferTimecode {
    /// The nominal frames per second the type names (`None` for an unknown type).
    pub fn nominal_fps(&self) -> Option<u32> {
        match self.kind {
            TC_TYPE_24FPS => Some(24),
            TC_TYPE_25FPS => Some(25),
            TC_TYPE_30FPS => Some(30),
            TC_TYPE_50FPS => Some(50),
            TC_TYPE_60FPS => Some(60),
            _ => None,
        }
    }

    /// The label, when it exists at the channel `rate`: the type's nominal rate is the
    /// channel's (24 for 23.976 and 24, 30 for 29.97 and 30…), drop-frame only where the rate
    /// defines it, every field in range, no label that drop-frame counting skips.
    pub fn label(&self, rate: Rate) -> Option<Timecode> {
        if self.nominal_fps()? != rate.nominal_fps() {
            return None;
        }
        let tc = Timecode {
            hours: self.hours,
            minutes: self.minutes,
            seconds: self.seconds,
            frames: self.frames,
            drop_frame: self.flags & TC_FLAG_DROPFRAME != 0,
        };
        // Checks every range, drop-frame's rates and its skipped labels.
        tc.frames_since_midnight(rate).ok()?;
        Some(tc)
    }
}

/// The timecode of a dequeued buffer with `v4l2_buffer.flags` = `buf_flags` and timecode
/// field `tc`, at the channel `rate`: `None` when the driver did not set
/// `V4L2_BUF_FLAG_TIMECODE` or the label is not valid at `rate` (see
/// [`BufferTimecode::label`]).
pub fn buffer_timecode(buf_flags: u32, tc: &BufferTimecode, rate: Rate) -> Option<Timecode> {
    if buf_flags & BUF_FLAG_TIMECODE == 0 {
        return None;
    }
    tc.label(rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(kind: u32, flags: u32, h: u8, m: u8, s: u8, f: u8) -> BufferTimecode {
        BufferTimecode {
            kind,
            flags,
            frames: f,
            seconds: s,
            minutes: m,
            hours: h,
            userbits: [0; 4],
        }
    }

    fn rate(num: u32, den: u32) -> Rate {
        Rate::new(num, den).unwrap()
    }

    fn tc(h: u8, m: u8, s: u8, f: u8, drop_frame: bool) -> Timecode {
        Timecode {
            hours: h,
            minutes: m,
            seconds: s,
            frames: f,
            drop_frame,
        }
    }

    #[test]
    fn every_type_maps_at_its_rates() {
        let cases = [
            (TC_TYPE_24FPS, rate(24, 1), 23),
            (TC_TYPE_24FPS, rate(24000, 1001), 23),
            (TC_TYPE_25FPS, rate(25, 1), 24),
            (TC_TYPE_30FPS, rate(30, 1), 29),
            (TC_TYPE_30FPS, rate(30000, 1001), 29),
            (TC_TYPE_50FPS, rate(50, 1), 49),
            (TC_TYPE_60FPS, rate(60, 1), 59),
            (TC_TYPE_60FPS, rate(60000, 1001), 59),
        ];
        for (kind, r, last) in cases {
            let t = raw(kind, 0, 23, 59, 59, last);
            assert_eq!(
                buffer_timecode(BUF_FLAG_TIMECODE, &t, r),
                Some(tc(23, 59, 59, last, false)),
                "type {kind} at {r}"
            );
            // One past the last frame number of the second does not exist.
            let t = raw(kind, 0, 10, 0, 0, last + 1);
            assert_eq!(buffer_timecode(BUF_FLAG_TIMECODE, &t, r), None, "{kind}");
        }
    }

    #[test]
    fn a_type_that_disagrees_with_the_channel_rate_is_refused() {
        let t = raw(TC_TYPE_25FPS, 0, 10, 0, 0, 0);
        assert_eq!(
            buffer_timecode(BUF_FLAG_TIMECODE, &t, rate(30000, 1001)),
            None
        );
        assert_eq!(buffer_timecode(BUF_FLAG_TIMECODE, &t, rate(50, 1)), None);
        let t = raw(TC_TYPE_30FPS, 0, 10, 0, 0, 0);
        assert_eq!(buffer_timecode(BUF_FLAG_TIMECODE, &t, rate(25, 1)), None);
        assert_eq!(buffer_timecode(BUF_FLAG_TIMECODE, &t, rate(60, 1)), None);
        // Unknown and zero types.
        for kind in [0, 6, 255, u32::MAX] {
            let t = raw(kind, 0, 10, 0, 0, 0);
            assert_eq!(buffer_timecode(BUF_FLAG_TIMECODE, &t, rate(25, 1)), None);
        }
    }

    #[test]
    fn drop_frame_flag_gives_drop_frame_labels_where_defined() {
        let t = raw(TC_TYPE_30FPS, TC_FLAG_DROPFRAME, 10, 1, 0, 2);
        assert_eq!(
            buffer_timecode(BUF_FLAG_TIMECODE, &t, rate(30000, 1001)),
            Some(tc(10, 1, 0, 2, true))
        );
        // Colour-frame flag alongside is fine.
        let t = raw(
            TC_TYPE_60FPS,
            TC_FLAG_DROPFRAME | TC_FLAG_COLORFRAME,
            10,
            10,
            0,
            0,
        );
        assert_eq!(
            buffer_timecode(BUF_FLAG_TIMECODE, &t, rate(60000, 1001)),
            Some(tc(10, 10, 0, 0, true))
        );
        // Labels drop-frame skips do not exist.
        let t = raw(TC_TYPE_30FPS, TC_FLAG_DROPFRAME, 10, 1, 0, 1);
        assert_eq!(
            buffer_timecode(BUF_FLAG_TIMECODE, &t, rate(30000, 1001)),
            None
        );
        let t = raw(TC_TYPE_60FPS, TC_FLAG_DROPFRAME, 10, 1, 0, 3);
        assert_eq!(
            buffer_timecode(BUF_FLAG_TIMECODE, &t, rate(60000, 1001)),
            None
        );
        // Drop-frame at an integer rate is not defined.
        let t = raw(TC_TYPE_30FPS, TC_FLAG_DROPFRAME, 10, 0, 0, 5);
        assert_eq!(buffer_timecode(BUF_FLAG_TIMECODE, &t, rate(30, 1)), None);
        let t = raw(TC_TYPE_25FPS, TC_FLAG_DROPFRAME, 10, 0, 0, 5);
        assert_eq!(buffer_timecode(BUF_FLAG_TIMECODE, &t, rate(25, 1)), None);
    }

    #[test]
    fn out_of_range_fields_are_refused() {
        let r = rate(25, 1);
        for (h, m, s, f) in [
            (24, 0, 0, 0),
            (0, 60, 0, 0),
            (0, 0, 60, 0),
            (255, 255, 255, 255),
        ] {
            let t = raw(TC_TYPE_25FPS, 0, h, m, s, f);
            assert_eq!(buffer_timecode(BUF_FLAG_TIMECODE, &t, r), None, "{t:?}");
        }
        assert_eq!(
            buffer_timecode(BUF_FLAG_TIMECODE, &raw(TC_TYPE_25FPS, 0, 0, 0, 0, 0), r),
            Some(tc(0, 0, 0, 0, false))
        );
    }

    #[test]
    fn without_the_buffer_flag_the_field_is_ignored() {
        let t = raw(TC_TYPE_25FPS, 0, 10, 0, 0, 0);
        assert_eq!(buffer_timecode(0, &t, rate(25, 1)), None);
        // Other buffer flags (mapped, queued, done, monotonic timestamp) do not stand in.
        assert_eq!(buffer_timecode(0x0000_2007, &t, rate(25, 1)), None);
        assert!(buffer_timecode(0x0000_2007 | BUF_FLAG_TIMECODE, &t, rate(25, 1)).is_some());
    }
}
