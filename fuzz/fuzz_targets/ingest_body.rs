//! Fuzzes the sink's incremental ingest-body validator: the first two input bytes choose how
//! the rest is cut into pushes (boxes spanning pieces), the rest is the POST body.
//! Invariants: no panic; buffering bounded by two boxes plus one piece; after a violation the
//! validator stays quiet.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smoothcast::sink::{BodyEvent, BodyValidator};

const MAX_BOX: u64 = 1 << 20;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let piece = usize::from(u16::from_le_bytes([data[0], data[1]])).max(1);
    let body = &data[2..];
    let mut v = BodyValidator::new(MAX_BOX);
    let mut failed = false;
    for chunk in body.chunks(piece) {
        v.push(chunk);
        loop {
            match v.next_event() {
                Ok(Some(BodyEvent::Fragment { time, duration, .. })) => {
                    assert!(!failed);
                    assert!(time.checked_add(duration).is_some());
                }
                Ok(Some(_)) => assert!(!failed),
                Ok(None) => break,
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        assert!(v.buffered() as u64 <= 2 * MAX_BOX + piece as u64);
    }
    let _ = v.finish();
});
