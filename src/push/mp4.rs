//! The little MP4 knowledge push needs: split the stream header into top-level boxes (one
//! HTTP chunk each) and find each track's timescale (to size the replay window in seconds).
//! Input is our own packager's output, but the walker is still total: malformed bytes only
//! mean "one chunk" and "default timescale".

use bytes::Bytes;

/// Splits `data` into its top-level boxes; `None` if it is not a clean sequence of boxes.
pub(crate) fn split_boxes(data: &Bytes) -> Option<Vec<Bytes>> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < data.len() {
        let (_, _, size) = box_at(data, pos)?;
        out.push(data.slice(pos..pos + size));
        pos += size;
    }
    Some(out)
}

/// (fourcc, header length, total size) of the box at `pos`, bounds-checked.
fn box_at(data: &[u8], pos: usize) -> Option<([u8; 4], usize, usize)> {
    let rest = data.get(pos..)?;
    let size32 = u32::from_be_bytes(rest.get(0..4)?.try_into().ok()?);
    let fourcc: [u8; 4] = rest.get(4..8)?.try_into().ok()?;
    let (header, size) = match size32 {
        0 => (8usize, rest.len()),
        1 => {
            let large = u64::from_be_bytes(rest.get(8..16)?.try_into().ok()?);
            (16usize, usize::try_from(large).ok()?)
        }
        n => (8usize, n as usize),
    };
    if size < header || size > rest.len() {
        return None;
    }
    Some((fourcc, header, size))
}

/// Children of a container box payload, as (fourcc, payload) pairs.
fn children(payload: &[u8]) -> Vec<([u8; 4], &[u8])> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while let Some((fourcc, header, size)) = box_at(payload, pos) {
        out.push((fourcc, &payload[pos + header..pos + size]));
        pos += size;
    }
    out
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// `(track_ID, mdhd.timescale)` of every `trak` in the `moov` of a stream header.
pub(crate) fn track_timescales(header: &[u8]) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    for (fourcc, moov) in children(header) {
        if &fourcc != b"moov" {
            continue;
        }
        for (fourcc, trak) in children(moov) {
            if &fourcc != b"trak" {
                continue;
            }
            let mut track_id = None;
            let mut timescale = None;
            for (fourcc, payload) in children(trak) {
                match &fourcc {
                    // tkhd: version(1) flags(3) creation modification (4 or 8 each) track_ID.
                    b"tkhd" => {
                        let at = if payload.first() == Some(&1) { 20 } else { 12 };
                        track_id = u32_at(payload, at);
                    }
                    b"mdia" => {
                        for (fourcc, mdhd) in children(payload) {
                            if &fourcc == b"mdhd" {
                                let at = if mdhd.first() == Some(&1) { 20 } else { 12 };
                                timescale = u32_at(mdhd, at).filter(|t| *t > 0);
                            }
                        }
                    }
                    _ => {}
                }
            }
            if let (Some(id), Some(ts)) = (track_id, timescale) {
                out.push((id, ts));
            }
        }
    }
    out
}

/// The 8-byte empty `mfra` end-of-stream box (protocol.md §2.9).
pub(crate) const EMPTY_MFRA: [u8; 8] = [0, 0, 0, 8, b'm', b'f', b'r', b'a'];

#[cfg(test)]
mod tests {
    use super::*;

    fn bx(fourcc: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut v = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(fourcc);
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn finds_timescales_of_v0_and_v1_tracks() {
        let mut tkhd0 = vec![0u8; 20];
        tkhd0[12..16].copy_from_slice(&7u32.to_be_bytes());
        let mut mdhd0 = vec![0u8; 20];
        mdhd0[12..16].copy_from_slice(&48_000u32.to_be_bytes());
        let mut tkhd1 = vec![0u8; 28];
        tkhd1[0] = 1;
        tkhd1[20..24].copy_from_slice(&9u32.to_be_bytes());
        let mut mdhd1 = vec![0u8; 28];
        mdhd1[0] = 1;
        mdhd1[20..24].copy_from_slice(&10_000_000u32.to_be_bytes());
        let trak0 = bx(
            b"trak",
            &[bx(b"tkhd", &tkhd0), bx(b"mdia", &bx(b"mdhd", &mdhd0))].concat(),
        );
        let trak1 = bx(
            b"trak",
            &[bx(b"tkhd", &tkhd1), bx(b"mdia", &bx(b"mdhd", &mdhd1))].concat(),
        );
        let header = [
            bx(b"ftyp", b"isml"),
            bx(b"moov", &[bx(b"mvhd", &[0; 4]), trak0, trak1].concat()),
        ]
        .concat();
        assert_eq!(
            track_timescales(&header),
            vec![(7, 48_000), (9, 10_000_000)]
        );
        let b = Bytes::from(header.clone());
        let parts = split_boxes(&b).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts.concat(), header);
    }

    #[test]
    fn malformed_input_is_harmless() {
        assert!(split_boxes(&Bytes::from_static(b"\0\0\0\x09ftyp")).is_none());
        assert!(split_boxes(&Bytes::from_static(b"\0\0\0\x04ftyp")).is_none());
        assert!(split_boxes(&Bytes::from_static(
            b"\0\0\0\x01ftyp\xff\xff\xff\xff\xff\xff\xff\xff"
        ))
        .is_none());
        assert!(track_timescales(b"\0\0\0\x10moov\0\0\0\x09trak").is_empty());
        assert_eq!(track_timescales(&[]), vec![]);
    }
}
