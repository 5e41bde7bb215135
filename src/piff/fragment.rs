//! One fragment of one track: `moof` (mfhd, one traf: tfhd, trun, tfxd) + `mdat`
//! (protocol.md §2.6, §2.7, §8.3; MS-SSTR 2.2.4).
//!
//! Called once per fragment per track; everything is sized up front so a fragment is written
//! into one exactly-reserved buffer with no reallocation and no per-sample allocation.

use super::boxes::{
    put_i32, put_u32, put_u64, write_box, write_full_box, write_uuid_box, TFXD_UUID,
};
use super::{FragmentSpec, PiffError, SampleEntry, SAMPLE_FLAGS_NON_SYNC};

/// tfhd flag: default-sample-flags present (ISO/IEC 14496-12 §8.8.7).
pub const TFHD_DEFAULT_SAMPLE_FLAGS: u32 = 0x00_0020;
/// trun flag: data-offset present (ISO/IEC 14496-12 §8.8.8).
pub const TRUN_DATA_OFFSET: u32 = 0x00_0001;
/// trun flag: first-sample-flags present.
pub const TRUN_FIRST_SAMPLE_FLAGS: u32 = 0x00_0004;
/// trun flag: per-sample duration present.
pub const TRUN_SAMPLE_DURATION: u32 = 0x00_0100;
/// trun flag: per-sample size present.
pub const TRUN_SAMPLE_SIZE: u32 = 0x00_0200;
/// trun flag: per-sample flags present.
pub const TRUN_SAMPLE_FLAGS: u32 = 0x00_0400;
/// trun flag: per-sample composition time offset present.
pub const TRUN_SAMPLE_CTO: u32 = 0x00_0800;

/// Size of a version-1 `tfxd` box (protocol.md §2.6: 0x2C).
const TFXD_V1_SIZE: usize = 44;
/// moof header + mfhd + traf header + tfhd(flags 0x20) + tfxd v1 + trun fixed part.
const MOOF_FIXED: usize = 8 + 16 + 8 + 20 + TFXD_V1_SIZE + 20;

/// How the sample flags and composition offsets of one fragment are encoded in `trun`.
struct TrunPlan {
    flags: u32,
    version: u8,
    default_sample_flags: u32,
    first_sample_flags: Option<u32>,
}

impl TrunPlan {
    fn new(samples: &[SampleEntry]) -> Self {
        let mut flags = TRUN_DATA_OFFSET | TRUN_SAMPLE_DURATION | TRUN_SAMPLE_SIZE;
        let (default_sample_flags, first_sample_flags) = match samples {
            [] => (SAMPLE_FLAGS_NON_SYNC, None),
            [only] => (only.flags, None),
            [first, rest @ ..] => {
                let f = rest[0].flags;
                if rest.iter().all(|s| s.flags == f) {
                    // The usual video GOP (IDR then non-sync) or an all-sync audio fragment.
                    (f, (first.flags != f).then_some(first.flags))
                } else {
                    flags |= TRUN_SAMPLE_FLAGS;
                    (majority_flags(samples), None)
                }
            }
        };
        if first_sample_flags.is_some() {
            flags |= TRUN_FIRST_SAMPLE_FLAGS;
        }
        if samples.iter().any(|s| s.composition_offset != 0) {
            flags |= TRUN_SAMPLE_CTO;
        }
        let version = u8::from(samples.iter().any(|s| s.composition_offset < 0));
        Self {
            flags,
            version,
            default_sample_flags,
            first_sample_flags,
        }
    }

    fn per_sample_len(&self) -> usize {
        8 + 4 * usize::from(self.flags & TRUN_SAMPLE_FLAGS != 0)
            + 4 * usize::from(self.flags & TRUN_SAMPLE_CTO != 0)
    }

    fn moof_size(&self, samples: usize) -> usize {
        MOOF_FIXED
            + 4 * usize::from(self.first_sample_flags.is_some())
            + samples * self.per_sample_len()
    }
}

/// The flags value most samples have (Boyer–Moore majority vote: exact when a majority exists,
/// and any value is correct otherwise because every sample then carries its own flags).
fn majority_flags(samples: &[SampleEntry]) -> u32 {
    let mut candidate = SAMPLE_FLAGS_NON_SYNC;
    let mut count = 0usize;
    for s in samples {
        if count == 0 {
            candidate = s.flags;
            count = 1;
        } else if s.flags == candidate {
            count += 1;
        } else {
            count -= 1;
        }
    }
    candidate
}

fn payload_len(spec: &FragmentSpec) -> u64 {
    spec.samples.iter().map(|s| u64::from(s.size)).sum()
}

/// Length of the `mdat` header for a payload: 8, or 16 in the 64-bit largesize form.
fn mdat_header_len(payload: u64) -> usize {
    if payload + 8 > u64::from(u32::MAX) {
        16
    } else {
        8
    }
}

/// Size in bytes of the `moof` that [`write_moof`] writes for `spec`.
pub fn moof_size(spec: &FragmentSpec) -> usize {
    TrunPlan::new(&spec.samples).moof_size(spec.samples.len())
}

/// Writes the `moof` of one fragment (ISO/IEC 14496-12 §8.8.4; MS-SSTR 2.2.4.1):
/// `mfhd` → one `traf` (`tfhd` → `trun` → `uuid` tfxd).
///
/// Quirks that shaped it (protocol.md §2.6, §7, §8.3):
/// * exactly one `traf`, so `trun.data_offset` (relative to the moof start, since tfhd has no
///   base_data_offset) is `size(moof) + 8`, the first payload byte after the mdat header;
/// * `tfhd` carries no base_data_offset (PIFF forbids it; an absolute offset is meaningless in
///   a POST that restarts on reconnect) and no default duration/size (WMP/Silverlight issues
///   noted in FFmpeg), only default_sample_flags: flags 0x000020;
/// * `tfxd` comes LAST in the traf: a client (rx-player #456) broke when it preceded `trun`;
/// * no `tfdt`, `tfrf`, `sdtp`: not part of MS-SSTR encoder output.
pub fn write_moof(buf: &mut Vec<u8>, spec: &FragmentSpec) {
    let plan = TrunPlan::new(&spec.samples);
    let moof_size = plan.moof_size(spec.samples.len());
    let data_offset = moof_size + mdat_header_len(payload_len(spec));
    // A moof never approaches 2 GiB (that would be > 100 M samples); saturate rather than wrap.
    let data_offset = i32::try_from(data_offset).unwrap_or(i32::MAX);
    let start = buf.len();
    write_box(buf, b"moof", |buf| {
        write_mfhd(buf, spec.sequence);
        write_box(buf, b"traf", |buf| {
            write_tfhd(buf, spec.track_id, plan.default_sample_flags);
            write_trun(buf, &plan, &spec.samples, data_offset);
            write_tfxd(buf, spec.absolute_time, spec.duration);
        });
    });
    debug_assert_eq!(buf.len() - start, moof_size);
}

/// `mfhd` (ISO/IEC 14496-12 §8.8.5; MS-SSTR 2.2.4.2): sequence numbers must increase; gaps are
/// allowed, so the fragment-grid index `k` is used to make ganged encoders byte-identical.
fn write_mfhd(buf: &mut Vec<u8>, sequence: u32) {
    write_full_box(buf, b"mfhd", 0, 0, |buf| put_u32(buf, sequence));
}

/// `tfhd` (ISO/IEC 14496-12 §8.8.7; MS-SSTR 2.2.4.6), version 0, flags 0x000020: track_ID and
/// default_sample_flags only (see [`write_moof`] for why nothing else).
fn write_tfhd(buf: &mut Vec<u8>, track_id: u32, default_sample_flags: u32) {
    write_full_box(buf, b"tfhd", 0, TFHD_DEFAULT_SAMPLE_FLAGS, |buf| {
        put_u32(buf, track_id);
        put_u32(buf, default_sample_flags);
    });
}

/// `trun` (ISO/IEC 14496-12 §8.8.8; MS-SSTR 2.2.4.7): data_offset always (MS-SSTR: MUST),
/// per-sample duration and size (tfhd has no defaults), first_sample_flags when only the first
/// sample (the IDR) differs from the default, per-sample flags when several differ, and
/// composition offsets only if one is non-zero. Version 1 (signed offsets, the HEVC amendment's
/// convention) only when an offset is negative; MS-SSTR itself defines them unsigned.
fn write_trun(buf: &mut Vec<u8>, plan: &TrunPlan, samples: &[SampleEntry], data_offset: i32) {
    write_full_box(buf, b"trun", plan.version, plan.flags, |buf| {
        put_u32(buf, u32::try_from(samples.len()).unwrap_or(u32::MAX));
        put_i32(buf, data_offset);
        if let Some(f) = plan.first_sample_flags {
            put_u32(buf, f);
        }
        let per_sample_flags = plan.flags & TRUN_SAMPLE_FLAGS != 0;
        let cto = plan.flags & TRUN_SAMPLE_CTO != 0;
        for s in samples {
            put_u32(buf, s.duration);
            put_u32(buf, s.size);
            if per_sample_flags {
                put_u32(buf, s.flags);
            }
            if cto {
                // Version 0 is only chosen when every offset is >= 0, so the bit pattern is
                // the same whether read as signed or unsigned.
                put_i32(buf, s.composition_offset);
            }
        }
    });
}

/// `uuid` tfxd, TrackFragmentExtendedHeaderBox (MS-SSTR 2.2.4.4, 2.2.7.5.1), always version 1:
/// fragment_absolute_time and fragment_duration as 64-bit values in the track timescale
/// (44 bytes).
///
/// Quirk: version 0 (32-bit) wraps after ~429 s at 10 MHz and cannot hold epoch-based times at
/// all, so version 1 is mandatory for us (protocol.md §2.6, §7 item 1).
pub fn write_tfxd(buf: &mut Vec<u8>, absolute_time: u64, duration: u64) {
    write_uuid_box(buf, &TFXD_UUID, 1, 0, |buf| {
        put_u64(buf, absolute_time);
        put_u64(buf, duration);
    });
}

/// `moof` + `mdat` of one fragment in one buffer whose capacity is reserved exactly.
///
/// `payload` is the concatenation of the samples in decode order (AVCC length-prefixed NAL
/// units for video, raw AAC access units for audio — protocol.md §2.7, §4). The `mdat`
/// (ISO/IEC 14496-12 §8.1.1) uses the 64-bit form only if the payload needs it.
///
/// # Errors
/// [`PiffError::PayloadMismatch`] if the sample sizes do not sum to `payload.len()` — the
/// fragment would be undecodable.
pub fn write_fragment(spec: &FragmentSpec, payload: &[u8]) -> Result<Vec<u8>, PiffError> {
    let declared = payload_len(spec);
    if declared != payload.len() as u64 {
        return Err(PiffError::PayloadMismatch {
            track_id: spec.track_id,
            sequence: spec.sequence,
            declared,
            payload: payload.len() as u64,
        });
    }
    let header = mdat_header_len(declared);
    let total = moof_size(spec) + header + payload.len();
    let mut buf = Vec::with_capacity(total);
    write_moof(&mut buf, spec);
    let mdat_size = (header + payload.len()) as u64;
    if header == 8 {
        put_u32(&mut buf, mdat_size as u32);
        buf.extend_from_slice(b"mdat");
    } else {
        put_u32(&mut buf, 1);
        buf.extend_from_slice(b"mdat");
        put_u64(&mut buf, mdat_size);
    }
    buf.extend_from_slice(payload);
    debug_assert_eq!(buf.len(), total);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::super::SAMPLE_FLAGS_SYNC;
    use super::*;

    fn sample(flags: u32, cto: i32) -> SampleEntry {
        SampleEntry {
            duration: 400_000,
            size: 10,
            flags,
            composition_offset: cto,
        }
    }

    #[test]
    fn gop_uses_first_sample_flags() {
        let mut s = vec![sample(SAMPLE_FLAGS_NON_SYNC, 0); 5];
        s[0].flags = SAMPLE_FLAGS_SYNC;
        let p = TrunPlan::new(&s);
        assert_eq!(p.flags, 0x305);
        assert_eq!(p.default_sample_flags, SAMPLE_FLAGS_NON_SYNC);
        assert_eq!(p.first_sample_flags, Some(SAMPLE_FLAGS_SYNC));
        assert_eq!(p.version, 0);
    }

    #[test]
    fn mixed_flags_and_negative_offsets_use_per_sample_fields_and_v1() {
        let s = [
            sample(SAMPLE_FLAGS_SYNC, -1),
            sample(SAMPLE_FLAGS_NON_SYNC, 2),
            sample(SAMPLE_FLAGS_SYNC, 0),
            sample(SAMPLE_FLAGS_SYNC, 0),
        ];
        let p = TrunPlan::new(&s);
        assert_eq!(p.flags, 0xF01);
        assert_eq!(p.default_sample_flags, SAMPLE_FLAGS_SYNC);
        assert_eq!(p.version, 1);
    }
}
