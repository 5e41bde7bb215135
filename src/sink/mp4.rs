//! Small byte-level box surgery on already-validated boxes: list children, filter a `moov` down
//! to one track, split a multi-`traf` `moof`, patch `tfhd.track_ID`, insert a `tfrf`.
//!
//! Every function works on untrusted bytes without panicking: a malformed layout yields `None`
//! and the caller falls back to the bytes as received.

use crate::piff::boxes::TFRF_UUID;

/// One box located inside a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawBox {
    pub fourcc: [u8; 4],
    /// Offset of the first byte of the box.
    pub start: usize,
    /// Size of the header (8, 16 for a 64-bit size; + 16 for a `uuid` usertype).
    pub header_len: usize,
    /// Offset one past the last byte of the box.
    pub end: usize,
}

impl RawBox {
    /// Usertype of a `uuid` box.
    #[cfg(test)]
    pub fn usertype<'a>(&self, buf: &'a [u8]) -> Option<&'a [u8]> {
        if &self.fourcc == b"uuid" {
            buf.get(
                self.header_len.checked_sub(16).map(|h| self.start + h)?
                    ..self.start + self.header_len,
            )
        } else {
            None
        }
    }
}

/// The boxes laid end to end in `buf[start..end]`. `None` if they do not tile the range exactly.
pub(crate) fn children(buf: &[u8], start: usize, end: usize) -> Option<Vec<RawBox>> {
    let mut out = Vec::new();
    let mut pos = start;
    if end > buf.len() {
        return None;
    }
    while pos < end {
        let b = one_box(buf, pos, end)?;
        pos = b.end;
        out.push(b);
    }
    Some(out)
}

/// Children of a container box `b` (header skipped).
pub(crate) fn children_of(buf: &[u8], b: &RawBox) -> Option<Vec<RawBox>> {
    children(buf, b.start + b.header_len, b.end)
}

fn one_box(buf: &[u8], pos: usize, limit: usize) -> Option<RawBox> {
    let hdr = buf.get(pos..pos.checked_add(8)?)?;
    let size32 = u32::from_be_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]) as u64;
    let fourcc = [hdr[4], hdr[5], hdr[6], hdr[7]];
    let (size, mut header_len) = match size32 {
        0 => ((limit - pos) as u64, 8usize),
        1 => {
            let l = buf.get(pos + 8..pos + 16)?;
            (u64::from_be_bytes(l.try_into().ok()?), 16)
        }
        s => (s, 8),
    };
    if &fourcc == b"uuid" {
        header_len += 16;
    }
    let size = usize::try_from(size).ok()?;
    let end = pos.checked_add(size)?;
    if size < header_len || end > limit {
        return None;
    }
    Some(RawBox {
        fourcc,
        start: pos,
        header_len,
        end,
    })
}

fn put_u32(buf: &mut [u8], at: usize, v: u32) -> Option<()> {
    buf.get_mut(at..at + 4)?.copy_from_slice(&v.to_be_bytes());
    Some(())
}

fn get_u32(buf: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(buf.get(at..at + 4)?.try_into().ok()?))
}

/// Rewrites the size field of a box whose header uses the 32-bit size form.
fn set_size(buf: &mut [u8], b: &RawBox, new_size: usize) -> Option<()> {
    if get_u32(buf, b.start)? == 1 {
        return None; // 64-bit sizes never occur in the boxes we patch; refuse rather than guess.
    }
    put_u32(buf, b.start, u32::try_from(new_size).ok()?)
}

/// A `moov` keeping only the `trak` and `trex` of `track_id` (plus `mvhd`, any `uuid`s such as
/// a PIFF pssh); `udta` and other tracks are dropped. Used to give each archive file a header
/// that describes exactly the track it holds.
pub(crate) fn filter_moov(moov: &[u8], track_id: u32) -> Option<Vec<u8>> {
    let top = one_box(moov, 0, moov.len())?;
    if &top.fourcc != b"moov" {
        return None;
    }
    let mut body = Vec::with_capacity(moov.len());
    let mut kept_trak = false;
    for c in children_of(moov, &top)? {
        let bytes = &moov[c.start..c.end];
        match &c.fourcc {
            b"trak" => {
                let tkhd = children_of(moov, &c)?
                    .into_iter()
                    .find(|b| &b.fourcc == b"tkhd")?;
                let version = *moov.get(tkhd.start + 8)?;
                // tkhd: version/flags, creation, modification (4 or 8 bytes each), then track_ID.
                let id_at = tkhd.start + 12 + if version == 1 { 16 } else { 8 };
                if get_u32(moov, id_at)? == track_id {
                    body.extend_from_slice(bytes);
                    kept_trak = true;
                }
            }
            b"mvex" => {
                let mut mvex = Vec::new();
                for m in children_of(moov, &c)? {
                    // trex: size, type, version/flags, track_ID.
                    if &m.fourcc == b"trex" && get_u32(moov, m.start + 12)? != track_id {
                        continue;
                    }
                    mvex.extend_from_slice(&moov[m.start..m.end]);
                }
                body.extend_from_slice(&u32::try_from(mvex.len() + 8).ok()?.to_be_bytes());
                body.extend_from_slice(b"mvex");
                body.extend_from_slice(&mvex);
            }
            b"udta" | b"meta" => {}
            _ => body.extend_from_slice(bytes),
        }
    }
    if !kept_trak {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() + 8);
    out.extend_from_slice(&u32::try_from(body.len() + 8).ok()?.to_be_bytes());
    out.extend_from_slice(b"moov");
    out.extend_from_slice(&body);
    Some(out)
}

/// Offsets of every `trun.data_offset` field inside `traf` (only truns that carry one).
fn trun_offset_fields(buf: &[u8], traf: &RawBox) -> Option<Vec<usize>> {
    let mut out = Vec::new();
    for c in children_of(buf, traf)? {
        if &c.fourcc == b"trun" {
            let flags = get_u32(buf, c.start + 8)? & 0x00ff_ffff;
            if flags & 0x1 != 0 {
                // trun: size, type, version/flags, sample_count, data_offset.
                out.push(c.start + 16);
            }
        }
    }
    Some(out)
}

/// Sets `tfhd.track_ID` of every `traf` in `moof` to `track_id`, in place.
pub(crate) fn patch_track_id(moof: &mut [u8], track_id: u32) -> Option<()> {
    let top = one_box(moof, 0, moof.len())?;
    for traf in children_of(moof, &top)?
        .into_iter()
        .filter(|b| &b.fourcc == b"traf")
    {
        let tfhd = children_of(moof, &traf)?
            .into_iter()
            .find(|b| &b.fourcc == b"tfhd")?;
        put_u32(moof, tfhd.start + 12, track_id)?;
    }
    Some(())
}

/// Splits a `moof` with several `traf`s into one `moof` per `traf` (`mfhd` repeated), each
/// paired with its slice of the `mdat` payload. `payload_offsets[i]` is where traf `i`'s
/// samples start relative to the mdat payload, `payload_lens[i]` their total size.
pub(crate) fn split_moof(
    moof: &[u8],
    mdat_payload: &[u8],
    payload_offsets: &[usize],
    payload_lens: &[usize],
) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    let top = one_box(moof, 0, moof.len())?;
    let kids = children_of(moof, &top)?;
    let mfhd = kids.iter().find(|b| &b.fourcc == b"mfhd")?;
    let trafs: Vec<&RawBox> = kids.iter().filter(|b| &b.fourcc == b"traf").collect();
    if trafs.len() != payload_offsets.len() || trafs.len() != payload_lens.len() {
        return None;
    }
    let mut out = Vec::with_capacity(trafs.len());
    for (i, traf) in trafs.iter().enumerate() {
        let mfhd_bytes = &moof[mfhd.start..mfhd.end];
        let traf_bytes = &moof[traf.start..traf.end];
        let new_size = 8 + mfhd_bytes.len() + traf_bytes.len();
        let mut m = Vec::with_capacity(new_size);
        m.extend_from_slice(&u32::try_from(new_size).ok()?.to_be_bytes());
        m.extend_from_slice(b"moof");
        m.extend_from_slice(mfhd_bytes);
        let traf_at = m.len();
        m.extend_from_slice(traf_bytes);
        // Re-base every data_offset of this traf: old offsets pointed into the shared mdat.
        let local = RawBox {
            start: traf_at,
            end: traf_at + traf_bytes.len(),
            ..**traf
        };
        let fields = trun_offset_fields(&m, &local)?;
        let first_old = i64::from(get_u32(&m, *fields.first()?)? as i32);
        let new_first = i64::try_from(new_size + 8).ok()?;
        for f in fields {
            let old = i64::from(get_u32(&m, f)? as i32);
            let new = i32::try_from(old - first_old + new_first).ok()?;
            put_u32(&mut m, f, new as u32)?;
        }
        let start = payload_offsets[i];
        let data = mdat_payload.get(start..start.checked_add(payload_lens[i])?)?;
        let mut mdat = Vec::with_capacity(data.len() + 8);
        mdat.extend_from_slice(&u32::try_from(data.len() + 8).ok()?.to_be_bytes());
        mdat.extend_from_slice(b"mdat");
        mdat.extend_from_slice(data);
        out.push((m, mdat));
    }
    Some(out)
}

/// A copy of a single-`traf` `moof` with a `tfrf` (MS-SSTR 2.2.4.5, version 1) appended to the
/// `traf`, listing `entries` as (absolute time, duration) in track ticks. Fixes the `moof` and
/// `traf` sizes and every `trun.data_offset` (the `mdat` moves by the inserted size).
pub(crate) fn insert_tfrf(moof: &[u8], entries: &[(u64, u64)]) -> Option<Vec<u8>> {
    let top = one_box(moof, 0, moof.len())?;
    if &top.fourcc != b"moof" || top.header_len != 8 {
        return None;
    }
    let kids = children_of(moof, &top)?;
    let mut trafs = kids.iter().filter(|b| &b.fourcc == b"traf");
    let traf = *trafs.next()?;
    if trafs.next().is_some() || traf.header_len != 8 {
        return None;
    }
    let count = u8::try_from(entries.len()).ok()?;
    let tfrf_len = 8 + 16 + 4 + 1 + 16 * entries.len();
    let mut tfrf = Vec::with_capacity(tfrf_len);
    tfrf.extend_from_slice(&u32::try_from(tfrf_len).ok()?.to_be_bytes());
    tfrf.extend_from_slice(b"uuid");
    tfrf.extend_from_slice(&TFRF_UUID);
    tfrf.extend_from_slice(&[1, 0, 0, 0, count]);
    for (t, d) in entries {
        tfrf.extend_from_slice(&t.to_be_bytes());
        tfrf.extend_from_slice(&d.to_be_bytes());
    }
    let mut out = Vec::with_capacity(moof.len() + tfrf_len);
    out.extend_from_slice(&moof[..traf.end]);
    out.extend_from_slice(&tfrf);
    out.extend_from_slice(&moof[traf.end..]);
    set_size(&mut out, &top, top.end - top.start + tfrf_len)?;
    set_size(&mut out, &traf, traf.end - traf.start + tfrf_len)?;
    let grown = RawBox {
        end: traf.end + tfrf_len,
        ..traf
    };
    let delta = i64::try_from(tfrf_len).ok()?;
    for f in trun_offset_fields(&out, &grown)? {
        let old = i64::from(get_u32(&out, f)? as i32);
        let new = i32::try_from(old + delta).ok()?;
        put_u32(&mut out, f, new as u32)?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bx(fourcc: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut v = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(fourcc);
        v.extend_from_slice(body);
        v
    }

    fn trun(data_offset: i32) -> Vec<u8> {
        let mut b = vec![0, 0, 0x02, 0x01]; // version 0, flags data_offset | sample_size
        b.extend_from_slice(&1u32.to_be_bytes());
        b.extend_from_slice(&data_offset.to_be_bytes());
        b.extend_from_slice(&4u32.to_be_bytes());
        bx(b"trun", &b)
    }

    fn tfhd(id: u32) -> Vec<u8> {
        let mut b = vec![0, 0, 0, 0];
        b.extend_from_slice(&id.to_be_bytes());
        bx(b"tfhd", &b)
    }

    #[test]
    fn tfrf_insertion_keeps_data_offset_pointing_at_mdat_payload() {
        let traf = bx(b"traf", &[tfhd(1), trun(0)].concat());
        let mfhd = bx(b"mfhd", &[0, 0, 0, 0, 0, 0, 0, 7]);
        let mut moof = bx(b"moof", &[mfhd, traf].concat());
        let off = (moof.len() + 8) as i32;
        // patch the trun data offset to moof size + 8
        let n = moof.len();
        moof[n - 8..n - 4].copy_from_slice(&off.to_be_bytes());
        let with = insert_tfrf(&moof, &[(100, 10), (110, 10)]).unwrap();
        assert_eq!(with.len(), moof.len() + 8 + 16 + 5 + 32);
        let top = one_box(&with, 0, with.len()).unwrap();
        assert_eq!(top.end, with.len());
        let traf = children_of(&with, &top).unwrap()[1];
        let kids = children_of(&with, &traf).unwrap();
        assert_eq!(
            kids.last().unwrap().usertype(&with).unwrap(),
            &TFRF_UUID[..]
        );
        let field = trun_offset_fields(&with, &traf).unwrap()[0];
        assert_eq!(get_u32(&with, field).unwrap() as usize, with.len() + 8);
    }

    #[test]
    fn split_moof_rebases_offsets_per_traf() {
        let t1 = bx(b"traf", &[tfhd(1), trun(0)].concat());
        let t2 = bx(b"traf", &[tfhd(2), trun(0)].concat());
        let mfhd = bx(b"mfhd", &[0, 0, 0, 0, 0, 0, 0, 1]);
        let moof = bx(b"moof", &[mfhd, t1, t2].concat());
        let payload = b"AAAABBBB";
        let parts = split_moof(&moof, payload, &[0, 4], &[4, 4]).unwrap();
        assert_eq!(parts.len(), 2);
        for (i, (m, d)) in parts.iter().enumerate() {
            let top = one_box(m, 0, m.len()).unwrap();
            let traf = children_of(m, &top).unwrap()[1];
            let f = trun_offset_fields(m, &traf).unwrap()[0];
            assert_eq!(get_u32(m, f).unwrap() as usize, m.len() + 8);
            assert_eq!(&d[8..], &payload[i * 4..i * 4 + 4]);
        }
    }

    #[test]
    fn garbage_never_panics() {
        let junk = [0xffu8, 0, 0, 9, b'm', b'o', b'o', b'f', 1, 2, 3];
        assert!(insert_tfrf(&junk, &[]).is_none());
        assert!(filter_moov(&junk, 1).is_none());
        let mut j = junk.to_vec();
        assert!(patch_track_id(&mut j, 1).is_none());
        assert!(children(&junk, 0, 100).is_none());
    }
}
