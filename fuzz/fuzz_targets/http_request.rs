//! Fuzzes the sink's HTTP/1.1 request-head parser and chunked body decoder. The first input
//! byte sets the read size fed to the decoder. Invariants: no panic, the head length is within
//! the input, the decoder always makes progress and never yields more payload than it consumed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smoothcast::sink::{parse_head, ChunkedDecoder};

fuzz_target!(|data: &[u8]| {
    let Some((&first, input)) = data.split_first() else {
        return;
    };
    let piece = usize::from(first).max(1);
    if let Ok(Some((_, n))) = parse_head(input) {
        assert!(n <= input.len());
        let mut d = ChunkedDecoder::new();
        let mut rest = &input[n..];
        while !rest.is_empty() && !d.is_done() {
            let take = piece.min(rest.len());
            match d.step(&rest[..take]) {
                Ok((used, payload)) => {
                    assert!(used <= take);
                    assert!(used > 0 || d.is_done());
                    if let Some(p) = payload {
                        assert!(p.len() <= used);
                    }
                    rest = &rest[used..];
                }
                Err(_) => break,
            }
        }
    }
});
