//! ALSA capture for real: `AlsaAudio` → cpal → alsa-lib → ALSA's `file` PCM plugin, reading an
//! 8-channel 48 kHz S16_LE stream whose every channel carries its own identifiable pattern, as
//! an SDI card with embedded audio would deliver it. The ALSA configuration is the test's own
//! (`tests/data/alsa/smoothcast_test.conf`, which also records what it takes to make cpal see
//! and read such a PCM).
//!
//! alsa-lib reads `ALSA_CONFIG_PATH` once, at its first use in a process, so this binary holds
//! exactly one test, which sets the variable before anything touches ALSA.

mod common;

use common::alsa::{feed_fifo, write_config, RATE};
use smoothcast::capture::alsa::{input_devices, AlsaAudio, AlsaOptions};
use smoothcast::capture::{AudioSource, CaptureError};
use smoothcast::time::{SampleIndex, SystemClocks};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const CHANNELS: usize = 8;
/// The pattern repeats every this many frames.
const PERIOD: i32 = 8192;

/// Sample of 1-based channel `c` at frame `i`: channel c owns the value band
/// `[(c−1)·8192 − 32768, c·8192 − 32768)` and the position in the band is `i mod 8192`, so any
/// sample says which channel it came from and where in the stream it sits.
fn pattern(c: usize, i: u64) -> i16 {
    ((c as i32 - 1) * PERIOD - 32768 + (i % PERIOD as u64) as i32) as i16
}

/// Inverse of [`pattern`]: `(channel, frame mod 8192)`.
fn decode(v: i16) -> (usize, i32) {
    let u = i32::from(v) + 32768;
    ((u / PERIOD) as usize + 1, u % PERIOD)
}

#[test]
fn file_plugin_capture_maps_sdi_channels_3_and_4_to_stereo_on_a_continuous_grid() {
    // A hang here (cpal spinning in a read loop) must fail the run, not stall it.
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(60));
        eprintln!("alsa_file_plugin: no result after 60 s");
        std::process::exit(1);
    });

    let dir = tempfile::tempdir().expect("temp dir");
    let conf = write_config(dir.path());
    let fifo = dir.path().join("in.raw");
    // The only test in this process, and nothing has touched ALSA yet.
    std::env::set_var("ALSA_CONFIG_PATH", &conf);

    // 1.5 s at full speed: more than the test reads, less than the 2 s ring, so neither a slow
    // consumer nor a fast feeder can make the ring overflow inside the window checked below.
    let stop = Arc::new(AtomicBool::new(false));
    let pause = Arc::new(AtomicBool::new(false));
    let writer = {
        let (fifo, pause, stop) = (fifo.clone(), Arc::clone(&pause), Arc::clone(&stop));
        std::thread::spawn(move || {
            feed_fifo(fifo, CHANNELS, RATE * 3 / 2, false, pause, stop, pattern)
        })
    };

    // The config's PCM is listed (thanks to its hint block) …
    let devices = input_devices().expect("list ALSA devices");
    let listed = devices
        .iter()
        .find(|d| d.name == "smoothcast_test")
        .unwrap_or_else(|| panic!("smoothcast_test not listed: {devices:?}"));
    assert_eq!(
        listed.description.as_deref(),
        Some("smoothcast test capture (file plugin)")
    );
    // … and names that are not there fail with the list of what is. That includes "default":
    // cpal always offers it as the default input device, but this configuration defines none.
    for missing in ["no_such_pcm", "default"] {
        match AlsaAudio::open(
            missing,
            8,
            &[3, 4],
            48_000,
            SampleIndex(0),
            SystemClocks::new(),
        ) {
            Err(CaptureError::Open { input, reason }) => {
                assert_eq!(input, missing);
                assert!(reason.contains("smoothcast_test"), "{reason}");
            }
            other => panic!("opening {missing}: {other:?}"),
        }
    }
    // A channel map naming a channel the input does not have is refused before any I/O.
    assert!(matches!(
        AlsaAudio::open(
            "smoothcast_test",
            8,
            &[3, 9],
            48_000,
            SampleIndex(0),
            SystemClocks::new()
        ),
        Err(CaptureError::Open { .. })
    ));

    // 2023-11-14T22:13:20Z on the 48 kHz grid: a realistic epoch-based start index.
    let start = SampleIndex(1_700_000_000 * RATE);
    let options = AlsaOptions {
        stall_timeout: Duration::from_millis(300),
        ..AlsaOptions::default()
    };
    let mut source = AlsaAudio::open_with(
        "smoothcast_test",
        8,
        &[3, 4],
        48_000,
        start,
        SystemClocks::new(),
        options,
    )
    .expect("open smoothcast_test");
    assert_eq!(source.config().device_channels, 8);
    assert_eq!(source.config().sample_format, "i16");
    assert_eq!((source.channels(), source.sample_rate()), (2, 48_000));

    let mut samples: Vec<i16> = Vec::new();
    let mut next = start;
    let mut blocks = 0;
    while samples.len() < RATE as usize * 2 {
        let want = (RATE as usize - samples.len() / 2).min(1024);
        let block = source.next_block(want).expect("read a block");
        assert_eq!(
            block.first, next,
            "blocks are contiguous on the sample grid"
        );
        assert_eq!((block.channels, block.sample_rate), (2, 48_000));
        assert!(block.frames() >= 1 && block.frames() <= want);
        next = SampleIndex(next.0 + block.frames() as u64);
        samples.extend_from_slice(&block.samples);
        blocks += 1;
    }
    assert_eq!(next.0 - start.0, RATE, "exactly one second of samples");
    assert_eq!(samples.len(), RATE as usize * 2);
    assert!(blocks >= 47, "1024-frame blocks at most");

    // Output channel 1 is input channel 3, output 2 is input 4, and the stream is unbroken:
    // the position in the pattern advances by one every frame from wherever capture started.
    let (_, first_pos) = decode(samples[0]);
    for (k, frame) in samples.chunks_exact(2).enumerate() {
        let expect_pos = (first_pos + k as i32) % PERIOD;
        assert_eq!(
            (decode(frame[0]), decode(frame[1])),
            ((3, expect_pos), (4, expect_pos)),
            "output frame {k}: {frame:?}; {:?}",
            source.stats()
        );
    }
    let stats = source.stats();
    eprintln!("after 1 s: {stats:?}");
    assert_eq!(stats.captured_frames, RATE);
    assert_eq!(stats.silence_frames, 0);
    assert_eq!(source.xruns(), 0, "{stats:?}");

    // The input goes quiet (the feeder stops, as a card does when its signal is pulled): what
    // was already captured still arrives, continuous, then the loss is reported as a read error
    // naming the input, for the input-loss policy to act on.
    pause.store(true, Ordering::Release);
    let mut k = samples.len() / 2;
    let err = loop {
        match source.next_block(1024) {
            Ok(block) => {
                for frame in block.samples.chunks_exact(2) {
                    let expect_pos = (first_pos + k as i32) % PERIOD;
                    assert_eq!(
                        (decode(frame[0]), decode(frame[1])),
                        ((3, expect_pos), (4, expect_pos)),
                        "output frame {k} before the loss"
                    );
                    k += 1;
                }
            }
            Err(e) => break e,
        }
    };
    match err {
        CaptureError::Read { input, reason } => {
            assert_eq!(input, "smoothcast_test");
            assert!(reason.contains("no audio from the device"), "{reason}");
        }
        other => panic!("expected a read error, got {other:?}"),
    }
    assert_eq!(source.stats().silence_frames, 0);

    // The feeder resumes until the stream is gone: cpal's thread only notices the drop between
    // reads, and a read on a FIFO waits for data.
    pause.store(false, Ordering::Release);
    drop(source);
    stop.store(true, Ordering::Release);
    writer.join().expect("FIFO writer");
}
