//! ALSA through a test-local configuration: the `file` PCM plugin reading a FIFO that a test
//! thread feeds at the real sample rate, so cpal → alsa-lib capture runs for real without a
//! sound card (see `tests/data/alsa/smoothcast_test.conf` for what it takes).

use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Sample rate of every FIFO stream.
pub const RATE: u64 = 48_000;

/// `O_NONBLOCK` on Linux: opening a FIFO for writing then fails (ENXIO) instead of blocking
/// while no reader has it open, so the writer can notice it should stop.
const O_NONBLOCK: i32 = 0o4000;

/// Feeds the FIFO with `channels` interleaved s16le channels, sample of 1-based channel `c` at
/// frame `i` = `sample(c, i)`: the first `burst` frames as fast as the reader takes them, then
/// at the real rate (holding back while `pause` is set), until `stop`. Frames are never
/// rewound: the reader sees one continuous stream from wherever it starts (cpal opens the PCM
/// once to probe its formats and closes it before opening it for good; what went into the
/// probe's pipe is lost). With `live`, the stream runs on while no reader has the FIFO open,
/// as a capture card's signal does: a reader that (re)opens it gets the frame due now, not
/// what it missed.
#[allow(clippy::too_many_arguments)]
pub fn feed_fifo(
    path: PathBuf,
    channels: usize,
    burst: u64,
    live: bool,
    pause: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    sample: impl Fn(usize, u64) -> i16,
) {
    // One write of at most PIPE_BUF (4096) bytes is atomic.
    let chunk_frames = (4096 / (channels * 2)) as u64;
    let mut frame = 0u64;
    let mut chunk = Vec::with_capacity(chunk_frames as usize * channels * 2);
    // When and at which frame real-time pacing (re)started.
    let mut paced_from: Option<(Instant, u64)> = None;
    'open: while !stop.load(Ordering::Acquire) {
        let mut fifo = match std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(O_NONBLOCK)
            .open(&path)
        {
            Ok(f) => f,
            Err(_) => {
                std::thread::sleep(Duration::from_millis(2));
                continue;
            }
        };
        if let (true, Some((since, from))) = (live, paced_from) {
            let now = from + since.elapsed().as_nanos() as u64 * RATE / 1_000_000_000;
            frame = frame.max(now - now % chunk_frames);
        }
        while !stop.load(Ordering::Acquire) {
            if pause.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(1));
                paced_from = None;
                continue;
            }
            if frame >= burst {
                let (since, from) = *paced_from.get_or_insert_with(|| (Instant::now(), frame));
                let due = Duration::from_nanos((frame - from) * 1_000_000_000 / RATE);
                if let Some(wait) = due.checked_sub(since.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
            chunk.clear();
            for i in frame..frame + chunk_frames {
                for c in 1..=channels {
                    chunk.extend_from_slice(&sample(c, i).to_le_bytes());
                }
            }
            loop {
                match fifo.write(&chunk) {
                    Ok(n) if n == chunk.len() => break,
                    Ok(n) => panic!("a {}-byte FIFO write was split at {n}", chunk.len()),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        if stop.load(Ordering::Acquire) {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    // The reader closed its end (cpal's probe open): wait for the next one.
                    Err(e) if e.kind() == ErrorKind::BrokenPipe => continue 'open,
                    Err(e) => panic!("writing the FIFO: {e}"),
                }
            }
            frame += chunk_frames;
        }
    }
}

/// Makes the FIFO `dir/in.raw` and writes the test ALSA configuration (PCM `smoothcast_test`
/// reading it) into `dir`; returns the configuration's path, for `ALSA_CONFIG_PATH`.
pub fn write_config(dir: &Path) -> PathBuf {
    let fifo = dir.join("in.raw");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("run mkfifo");
    assert!(made.success(), "mkfifo failed");
    let template = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/alsa/smoothcast_test.conf"
    ))
    .expect("read the ALSA config template");
    let dir_str = dir.to_str().expect("temp dir path is UTF-8");
    let conf = dir.join("asound.conf");
    std::fs::write(&conf, template.replace("@DIR@", dir_str)).expect("write ALSA config");
    conf
}
