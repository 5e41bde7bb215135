//! Randomized robustness of the sink's untrusted-input parsers, complementing the cargo-fuzz
//! targets in `fuzz/` (which need a nightly toolchain): mutated real and synthetic ingest bodies
//! fed in random pieces to the incremental body validator, and mutated HTTP requests fed to
//! the head parser and the chunked decoder. Asserts no panic, bounded buffering, and progress.
//! Runs under a fixed time budget with a fixed seed (reproducible up to the budget).

mod sink_common;

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sink_common::*;
use smoothcast::encode::{AacConfig, AvcConfig};
use smoothcast::piff::fragment::write_fragment;
use smoothcast::piff::header::{empty_mfra, stream_header};
use smoothcast::piff::{
    FragmentSpec, SampleEntry, TrackCodec, TrackInfo, SAMPLE_FLAGS_NON_SYNC, SAMPLE_FLAGS_SYNC,
};
use smoothcast::sink::{parse_head, BodyEvent, BodyValidator, ChunkedDecoder};

const MAX_BOX: u64 = 1 << 20;
const BUDGET: Duration = Duration::from_secs(8);

/// A small valid two-track body written by our own PIFF writer (fast to mutate).
fn synthetic_body() -> Vec<u8> {
    let sps = hex::decode("6764001EACD940A02FF970110000030001000003003C0F162D96").unwrap();
    let pps = hex::decode("68EFBCB0").unwrap();
    let tracks = vec![
        TrackInfo {
            track_id: 1,
            track_name: "video".into(),
            bitrate: 300_000,
            timescale: 10_000_000,
            codec: TrackCodec::Avc(AvcConfig {
                sps,
                pps,
                width: 640,
                height: 360,
                reorder_frames: 0,
            }),
        },
        TrackInfo {
            track_id: 2,
            track_name: "audio".into(),
            bitrate: 64_000,
            timescale: 10_000_000,
            codec: TrackCodec::Aac(AacConfig {
                asc: vec![0x11, 0x90],
                channels: 2,
                sample_rate: 48_000,
                delay: 0,
            }),
        },
    ];
    let mut body = stream_header(&tracks, "robustness");
    let base = 17_000_000_000_000_000u64;
    for k in 0..4u64 {
        // Video: an IDR then three P samples (AVCC, 4-byte lengths).
        let mut payload = vec![0, 0, 0, 3, 0x65, 0x88, 0x80];
        let mut samples = vec![SampleEntry {
            duration: 333_333,
            size: 7,
            flags: SAMPLE_FLAGS_SYNC,
            composition_offset: 0,
        }];
        for _ in 0..3 {
            payload.extend_from_slice(&[0, 0, 0, 2, 0x41, 0x9a]);
            samples.push(SampleEntry {
                duration: 333_333,
                size: 6,
                flags: SAMPLE_FLAGS_NON_SYNC,
                composition_offset: 0,
            });
        }
        let spec = FragmentSpec {
            track_id: 1,
            sequence: k as u32,
            absolute_time: base + k * 1_333_332,
            duration: 1_333_332,
            samples,
        };
        body.extend_from_slice(&write_fragment(&spec, &payload).unwrap());
        let asamples = vec![
            SampleEntry {
                duration: 213_333,
                size: 5,
                flags: SAMPLE_FLAGS_SYNC,
                composition_offset: 0
            };
            2
        ];
        let aspec = FragmentSpec {
            track_id: 2,
            sequence: k as u32,
            absolute_time: base + k * 426_666,
            duration: 426_666,
            samples: asamples,
        };
        body.extend_from_slice(&write_fragment(&aspec, &[7u8; 10]).unwrap());
    }
    body.extend_from_slice(&empty_mfra());
    body
}

/// Runs one body through the validator in random pieces. Returns (fragments, violated).
fn run(body: &[u8], rng: &mut StdRng) -> (usize, bool) {
    let mut v = BodyValidator::new(MAX_BOX);
    let mut frags = 0;
    let mut pos = 0;
    let mut max_piece = 0;
    while pos < body.len() {
        let n = match rng.gen_range(0..4) {
            0 => 1,
            1 => rng.gen_range(1..64),
            2 => rng.gen_range(1..4096),
            _ => rng.gen_range(1..65536),
        }
        .min(body.len() - pos);
        max_piece = max_piece.max(n);
        v.push(&body[pos..pos + n]);
        pos += n;
        loop {
            match v.next_event() {
                Ok(Some(BodyEvent::Fragment { .. })) => frags += 1,
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => return (frags, true),
            }
        }
        // One box being assembled plus one pending moof, plus the piece just pushed.
        assert!(
            v.buffered() as u64 <= 2 * MAX_BOX + max_piece as u64,
            "buffered {}",
            v.buffered()
        );
    }
    (frags, v.finish().is_err())
}

fn mutate(base: &[u8], rng: &mut StdRng) -> Vec<u8> {
    let mut b = base.to_vec();
    for _ in 0..rng.gen_range(1..=4) {
        if b.is_empty() {
            b.push(rng.gen());
            continue;
        }
        let at = rng.gen_range(0..b.len());
        match rng.gen_range(0..8) {
            0 => b[at] ^= 1 << rng.gen_range(0..8),
            1 => b[at] = rng.gen(),
            2 => {
                // An interesting 32-bit value, often over a size or count field.
                let v: u32 = *[
                    0,
                    1,
                    7,
                    8,
                    16,
                    0x7fff_ffff,
                    0x8000_0000,
                    0xffff_ffff,
                    rng.gen(),
                ]
                .get(rng.gen_range(0..9))
                .unwrap_or(&0);
                let end = (at + 4).min(b.len());
                b[at..end].copy_from_slice(&v.to_be_bytes()[..end - at]);
            }
            3 => b.truncate(at),
            4 => {
                let n = rng.gen_range(1..64);
                let junk: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
                b.splice(at..at, junk);
            }
            5 => {
                let end = rng.gen_range(at..=b.len().min(at + 4096));
                b.drain(at..end);
            }
            6 => {
                // Duplicate a range (replayed boxes, repeated headers).
                let end = rng.gen_range(at..=b.len().min(at + 8192));
                let dup = b[at..end].to_vec();
                let to = rng.gen_range(0..=b.len());
                b.splice(to..to, dup);
            }
            _ => {
                // A 64-bit largesize header at a random place.
                let end = (at + 16).min(b.len());
                let hdr = [
                    0, 0, 0, 1, b'm', b'd', b'a', b't', 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0,
                ];
                b[at..end].copy_from_slice(&hdr[..end - at]);
            }
        }
    }
    b
}

#[test]
fn mutated_ingest_bodies_never_panic_and_buffering_stays_bounded() {
    let fixture_body = fixture(VALID);
    let sp = split(&fixture_body);
    // Real producer bytes, small enough to mutate quickly: header + first audio fragment.
    let real_small = [&sp.header[..], &sp.fragments[1]].concat();
    let synthetic = synthetic_body();
    let mut rng = StdRng::seed_from_u64(0x5eed);
    // The unmutated bases are valid.
    assert_eq!(run(&fixture_body, &mut rng), (10, false));
    assert_eq!(run(&real_small, &mut rng), (1, false));
    assert_eq!(run(&synthetic, &mut rng), (8, false));

    let t0 = Instant::now();
    let (mut iterations, mut violated, mut bytes) = (0u64, 0u64, 0u64);
    while t0.elapsed() < BUDGET {
        let body = match rng.gen_range(0..100) {
            0 => mutate(&fixture_body, &mut rng),
            1..=30 => mutate(&real_small, &mut rng),
            31..=90 => mutate(&synthetic, &mut rng),
            _ => (0..rng.gen_range(0..2048)).map(|_| rng.gen()).collect(),
        };
        bytes += body.len() as u64;
        if run(&body, &mut rng).1 {
            violated += 1;
        }
        iterations += 1;
    }
    eprintln!(
        "{iterations} mutated bodies ({} MB), {violated} rejected",
        bytes / 1_000_000
    );
    assert!(
        iterations > 1000,
        "too few iterations in the budget: {iterations}"
    );
    assert!(
        violated > iterations / 2,
        "mutations should mostly be caught: {violated}/{iterations}"
    );
}

#[test]
fn mutated_http_requests_never_panic_and_the_chunked_decoder_always_progresses() {
    let mut rng = StdRng::seed_from_u64(0xbeef);
    let base = b"POST /live.isml/Streams(a) HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1A;x=1\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nT: 1\r\n\r\n".to_vec();
    let t0 = Instant::now();
    let mut iterations = 0u64;
    while t0.elapsed() < Duration::from_secs(2) {
        let input = if rng.gen_bool(0.9) {
            mutate(&base, &mut rng)
        } else {
            (0..rng.gen_range(0..512)).map(|_| rng.gen()).collect()
        };
        if let Ok(Some((_, n))) = parse_head(&input) {
            assert!(n <= input.len());
            let mut d = ChunkedDecoder::new();
            let mut rest = &input[n..];
            while !rest.is_empty() && !d.is_done() {
                let piece = rng.gen_range(1..=rest.len());
                match d.step(&rest[..piece]) {
                    Ok((used, payload)) => {
                        assert!(used <= piece);
                        assert!(used > 0 || d.is_done(), "no progress");
                        if let Some(p) = payload {
                            assert!(p.len() <= used);
                        }
                        rest = &rest[used..];
                    }
                    Err(_) => break,
                }
            }
        }
        iterations += 1;
    }
    assert!(iterations > 10_000, "{iterations}");
}
