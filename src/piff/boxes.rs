//! Generic MP4 box plumbing: size back-patching box writers, the `uuid` usertypes of Smooth
//! Streaming / PIFF, and big-endian put helpers.
//!
//! Box syntax is ISO/IEC 14496-12 §4.2 (`Box`, `FullBox`, `uuid` extended type). All multi-byte
//! integers are big-endian (protocol.md §2.1).

/// `uuid` usertype of the TrackFragmentExtendedHeaderBox (`tfxd`), MS-SSTR 2.2.4.4
/// (6D1D9B05-42D5-44E6-80E2-141DAFF757B2).
///
/// Quirk: written in field (network) order, not Microsoft GUID little-endian order — ASTool
/// converts its .NET `Guid`s before writing for that reason (protocol.md §8.1).
pub const TFXD_UUID: [u8; 16] = [
    0x6D, 0x1D, 0x9B, 0x05, 0x42, 0xD5, 0x44, 0xE6, 0x80, 0xE2, 0x14, 0x1D, 0xAF, 0xF7, 0x57, 0xB2,
];

/// `uuid` usertype of the TrackFragmentReferenceBox (`tfrf`), MS-SSTR 2.2.4.5
/// (D4807EF2-CA39-4695-8E54-26CB9E46A79F). Servers add it for clients; an encoder never sends it.
pub const TFRF_UUID: [u8; 16] = [
    0xD4, 0x80, 0x7E, 0xF2, 0xCA, 0x39, 0x46, 0x95, 0x8E, 0x54, 0x26, 0xCB, 0x9E, 0x46, 0xA7, 0x9F,
];

/// `uuid` usertype of the LiveServerManifestBox, MS-SSTR 2.2.7.3
/// (A5D40B30-E814-11DD-BA2F-0800200C9A66).
pub const LIVE_SERVER_MANIFEST_UUID: [u8; 16] = [
    0xA5, 0xD4, 0x0B, 0x30, 0xE8, 0x14, 0x11, 0xDD, 0xBA, 0x2F, 0x08, 0x00, 0x20, 0x0C, 0x9A, 0x66,
];

/// `uuid` usertype of the StreamManifestBox, MS-SSTR 2.2.7.2
/// (3C2FE51B-EFEE-40A3-AE81-5300199DC348). Not sent by default: a server honouring it waits for
/// every listed stream before broadcasting (protocol.md §2.3).
pub const STREAM_MANIFEST_UUID: [u8; 16] = [
    0x3C, 0x2F, 0xE5, 0x1B, 0xEF, 0xEE, 0x40, 0xA3, 0xAE, 0x81, 0x53, 0x00, 0x19, 0x9D, 0xC3, 0x48,
];

/// `uuid` usertype of the PIFF SampleEncryptionBox (A2394F52-5A9B-4F14-A244-6C427C648DF4),
/// PIFF 1.1 §5.3.2.
pub const PIFF_SAMPLE_ENCRYPTION_UUID: [u8; 16] = [
    0xA2, 0x39, 0x4F, 0x52, 0x5A, 0x9B, 0x4F, 0x14, 0xA2, 0x44, 0x6C, 0x42, 0x7C, 0x64, 0x8D, 0xF4,
];

/// `uuid` usertype of the PIFF TrackEncryptionBox (8974DBCE-7BE7-4C51-84F9-7148F9882554),
/// PIFF 1.1 §5.3.1.
pub const PIFF_TRACK_ENCRYPTION_UUID: [u8; 16] = [
    0x89, 0x74, 0xDB, 0xCE, 0x7B, 0xE7, 0x4C, 0x51, 0x84, 0xF9, 0x71, 0x48, 0xF9, 0x88, 0x25, 0x54,
];

/// `uuid` usertype of the PIFF ProtectionSystemSpecificHeaderBox
/// (D08A4F18-10F3-4A82-B6C8-32D8ABA183D3), PIFF 1.1 §5.3.3.
pub const PIFF_PSSH_UUID: [u8; 16] = [
    0xD0, 0x8A, 0x4F, 0x18, 0x10, 0xF3, 0x4A, 0x82, 0xB6, 0xC8, 0x32, 0xD8, 0xAB, 0xA1, 0x83, 0xD3,
];

/// PlayReady DRM SystemID (9A04F079-9840-4286-AB92-E65BE0885F95): a field value inside a
/// `pssh`, not a box type.
pub const PLAYREADY_SYSTEM_ID: [u8; 16] = [
    0x9A, 0x04, 0xF0, 0x79, 0x98, 0x40, 0x42, 0x86, 0xAB, 0x92, 0xE6, 0x5B, 0xE0, 0x88, 0x5F, 0x95,
];

/// Appends one byte.
#[inline]
pub fn put_u8(buf: &mut Vec<u8>, v: u8) {
    buf.push(v);
}

/// Appends a big-endian `u16`.
#[inline]
pub fn put_u16(buf: &mut Vec<u8>, v: u16) {
    buf.extend_from_slice(&v.to_be_bytes());
}

/// Appends the low 24 bits of `v`, big-endian (FullBox flags, descriptor sizes).
#[inline]
pub fn put_u24(buf: &mut Vec<u8>, v: u32) {
    buf.extend_from_slice(&v.to_be_bytes()[1..]);
}

/// Appends a big-endian `u32`.
#[inline]
pub fn put_u32(buf: &mut Vec<u8>, v: u32) {
    buf.extend_from_slice(&v.to_be_bytes());
}

/// Appends a big-endian `i32` (two's complement, e.g. signed composition offsets).
#[inline]
pub fn put_i32(buf: &mut Vec<u8>, v: i32) {
    buf.extend_from_slice(&v.to_be_bytes());
}

/// Appends a big-endian `u64`.
#[inline]
pub fn put_u64(buf: &mut Vec<u8>, v: u64) {
    buf.extend_from_slice(&v.to_be_bytes());
}

/// Appends `n` zero bytes (reserved fields).
#[inline]
pub fn put_zeros(buf: &mut Vec<u8>, n: usize) {
    buf.resize(buf.len() + n, 0);
}

/// Writes a `Box` (ISO/IEC 14496-12 §4.2): 32-bit size, `fourcc`, then whatever `body` appends.
///
/// The size is back-patched once `body` returns, so writers never pre-compute nested sizes.
/// A box that ends up larger than 4 GiB − 1 is rewritten in the 64-bit `largesize` form
/// (size field 1); nothing we send comes close, but the bytes must never be wrong.
pub fn write_box(buf: &mut Vec<u8>, fourcc: &[u8; 4], body: impl FnOnce(&mut Vec<u8>)) {
    let start = buf.len();
    put_u32(buf, 0);
    buf.extend_from_slice(fourcc);
    body(buf);
    patch_size(buf, start);
}

/// Writes a `FullBox` (ISO/IEC 14496-12 §4.2): a box whose body starts with an 8-bit version
/// and 24-bit flags.
pub fn write_full_box(
    buf: &mut Vec<u8>,
    fourcc: &[u8; 4],
    version: u8,
    flags: u32,
    body: impl FnOnce(&mut Vec<u8>),
) {
    write_box(buf, fourcc, |buf| {
        put_u8(buf, version);
        put_u24(buf, flags);
        body(buf);
    });
}

/// Writes a `uuid` box with a 16-byte usertype (ISO/IEC 14496-12 §4.2 "extended type"),
/// followed by version and flags.
///
/// Quirk: every Smooth Streaming uuid box (tfxd, tfrf, live/stream manifest, PIFF boxes) is a
/// "full box" with version + flags right after the usertype (MS-SSTR 2.2.4.4, 2.2.7.3), which
/// ISO does not require of uuid boxes in general — hence version/flags are mandatory here.
pub fn write_uuid_box(
    buf: &mut Vec<u8>,
    usertype: &[u8; 16],
    version: u8,
    flags: u32,
    body: impl FnOnce(&mut Vec<u8>),
) {
    write_box(buf, b"uuid", |buf| {
        buf.extend_from_slice(usertype);
        put_u8(buf, version);
        put_u24(buf, flags);
        body(buf);
    });
}

/// Back-patches the size of the box that starts at `start` and runs to the end of `buf`.
fn patch_size(buf: &mut Vec<u8>, start: usize) {
    let size = buf.len() - start;
    match u32::try_from(size) {
        Ok(size) => buf[start..start + 4].copy_from_slice(&size.to_be_bytes()),
        Err(_) => {
            // 64-bit form: size = 1, fourcc, largesize (ISO/IEC 14496-12 §4.2).
            let large = (size + 8) as u64;
            buf[start..start + 4].copy_from_slice(&1u32.to_be_bytes());
            let at = start + 8;
            buf.splice(at..at, large.to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_boxes_get_back_patched_sizes() {
        let mut buf = Vec::new();
        write_box(&mut buf, b"moov", |buf| {
            write_full_box(buf, b"mvhd", 0, 0x000007, |buf| put_u32(buf, 0xdead_beef));
            write_uuid_box(buf, &TFXD_UUID, 1, 0, |buf| put_u16(buf, 7));
        });
        assert_eq!(&buf[0..8], &[0, 0, 0, 8 + 16 + 30, b'm', b'o', b'o', b'v']);
        assert_eq!(
            &buf[8..20],
            &[0, 0, 0, 16, b'm', b'v', b'h', b'd', 0, 0, 0, 7]
        );
        assert_eq!(&buf[24..32], &[0, 0, 0, 30, b'u', b'u', b'i', b'd']);
        assert_eq!(&buf[32..48], &TFXD_UUID);
        assert_eq!(&buf[48..54], &[1, 0, 0, 0, 0, 7]);
        assert_eq!(buf.len(), 54);
    }

    #[test]
    fn put_u24_keeps_low_bits() {
        let mut buf = Vec::new();
        put_u24(&mut buf, 0x0102_0304);
        assert_eq!(buf, [2, 3, 4]);
    }
}
