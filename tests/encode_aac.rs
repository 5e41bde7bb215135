//! AAC-LC encoder: AudioSpecificConfig, unit labelling on the audio grid, flushing by padding,
//! and — decoded by FFmpeg — level preservation and the exact encoder delay that the
//! `input_start` alignment rule relies on.

use smoothcast::encode::aac::AacEncoder;
use smoothcast::encode::{EncodeError, EncodedAudio};
use std::process::Command;

/// A realistic first AAC frame: 2023 at 48 kHz.
const FIRST_FRAME: u64 = 1_700_000_000 * 48_000 / 1024;

/// Deterministic pseudo-random noise, low-passed a little so AAC keeps its waveform.
fn noise(len: usize, seed: u32) -> Vec<f64> {
    let mut state = seed;
    let raw: Vec<f64> = (0..len + 7)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            f64::from(state >> 8) / f64::from(1u32 << 24) * 2.0 - 1.0
        })
        .collect();
    raw.windows(8)
        .map(|w| w.iter().sum::<f64>() / 8.0)
        .collect()
}

/// Feeds `pcm` (interleaved) in blocks of awkward, varying sizes.
fn feed(enc: &mut AacEncoder, pcm: &[i16], channels: usize, out: &mut Vec<EncodedAudio>) {
    let sizes = [77usize, 1000, 4096, 1, 1023, 2500];
    let mut rest = pcm;
    let mut i = 0;
    while !rest.is_empty() {
        let n = (sizes[i % sizes.len()] * channels).min(rest.len());
        enc.encode(&rest[..n], out).expect("encode");
        rest = &rest[n..];
        i += 1;
    }
}

/// A 7-byte ADTS header (no CRC) for one AAC-LC unit of `payload` bytes.
fn adts_header(sample_rate: u32, channels: u16, payload: usize) -> [u8; 7] {
    const RATES: [u32; 13] = [
        96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
    ];
    let sr = RATES.iter().position(|&r| r == sample_rate).expect("rate") as u8;
    let profile = 1u8; // AAC LC (audio object type 2) minus one
    let ch = channels as u8;
    let len = payload + 7;
    [
        0xff,
        0xf1, // sync, MPEG-4, layer 0, no CRC
        (profile << 6) | (sr << 2) | (ch >> 2),
        ((ch & 3) << 6) | ((len >> 11) as u8 & 0x03),
        (len >> 3) as u8,
        ((len as u8 & 0x07) << 5) | 0x1f, // buffer fullness 0x7ff (VBR marker)
        0xfc,
    ]
}

/// Writes the units as ADTS and decodes them with FFmpeg to interleaved s16, requiring a
/// silent (error-free) decode.
fn ffmpeg_decode(units: &[EncodedAudio], sample_rate: u32, channels: u16) -> Vec<i16> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("track.aac");
    let mut adts = Vec::new();
    for u in units {
        adts.extend_from_slice(&adts_header(sample_rate, channels, u.data.len()));
        adts.extend_from_slice(&u.data);
    }
    std::fs::write(&path, adts).expect("write");
    let dec = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(&path)
        .args(["-f", "s16le", "-acodec", "pcm_s16le", "-"])
        .output()
        .expect("run ffmpeg");
    assert!(dec.status.success(), "ffmpeg failed");
    assert_eq!(String::from_utf8_lossy(&dec.stderr), "", "decode errors");
    dec.stdout
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

fn rms(x: &[f64]) -> f64 {
    (x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64).sqrt()
}

#[test]
fn asc_for_48k_stereo_lc_is_11_90() {
    let enc = AacEncoder::new("audio", 128, 2, 48_000, FIRST_FRAME).expect("open");
    let cfg = enc.config();
    assert_eq!(cfg.asc, vec![0x11, 0x90]);
    assert_eq!((cfg.channels, cfg.sample_rate), (2, 48_000));
    assert!(cfg.delay > 0 && cfg.delay < 4096, "delay {}", cfg.delay);
    assert_eq!(
        enc.input_start().0,
        1024 * FIRST_FRAME + u64::from(cfg.delay)
    );
}

#[test]
fn asc_for_44k1_mono_lc_is_12_08() {
    let enc = AacEncoder::new("audio", 64, 1, 44_100, 0).expect("open");
    assert_eq!(enc.config().asc, vec![0x12, 0x08]);
}

#[test]
fn units_are_labelled_from_first_frame_and_finish_covers_all_input() {
    let mut enc = AacEncoder::new("audio", 128, 2, 48_000, FIRST_FRAME).expect("open");
    let delay = u64::from(enc.config().delay);
    let frames = 48_000 + 123;
    let pcm: Vec<i16> = noise(frames * 2, 7)
        .iter()
        .map(|v| (v * 8000.0) as i16)
        .collect();
    let mut out = Vec::new();
    feed(&mut enc, &pcm, 2, &mut out);
    // One unit per 1024 sample frames fed, minus the units the backend holds back for its
    // look-ahead (fdk-aac: none; FFmpeg's aac: one).
    let held_back = if cfg!(feature = "fdk") { 0 } else { 1 };
    assert_eq!(out.len() as u64, frames as u64 / 1024 - held_back);
    enc.finish(&mut out).expect("finish");
    // The last fed sample is grid sample input_start + frames - 1; its unit is the last one.
    let last_grid_sample = enc.input_start().0 + frames as u64 - 1;
    assert_eq!(out.last().map(|u| u.index), Some(last_grid_sample / 1024));
    assert_eq!(out.len() as u64, (delay + frames as u64).div_ceil(1024));
    for (i, u) in out.iter().enumerate() {
        assert_eq!(u.index, FIRST_FRAME + i as u64);
        assert!(!u.data.is_empty() && u.data.len() <= 768 * 2);
    }
    assert!(matches!(
        enc.encode(&pcm[..2048], &mut out),
        Err(EncodeError::Encode { .. })
    ));
    let before = out.len();
    enc.finish(&mut out).expect("second finish is a no-op");
    assert_eq!(out.len(), before);
}

#[test]
fn decoded_sine_keeps_its_level_and_lags_by_exactly_the_encoder_delay() {
    let (rate, channels) = (48_000u32, 2u16);
    let mut enc = AacEncoder::new("audio", 128, channels, rate, FIRST_FRAME).expect("open");
    let delay = enc.config().delay as usize;

    // Input, per channel: 0.25 s silence, 0.5 s noise (for the cross-correlation), 0.25 s
    // silence, 1 s of a 1 kHz sine at -6 dBFS, 0.25 s silence. Odd offsets on purpose.
    let (noise_at, noise_len) = (12_001usize, 24_000usize);
    let (sine_at, sine_len) = (48_013usize, 48_000usize);
    let total = sine_at + sine_len + 12_000;
    let mut signal = vec![0.0f64; total];
    signal[noise_at..noise_at + noise_len].copy_from_slice(&noise(noise_len, 42));
    for (i, s) in signal[sine_at..sine_at + sine_len].iter_mut().enumerate() {
        *s = 0.5 * (2.0 * std::f64::consts::PI * 1000.0 * i as f64 / f64::from(rate)).sin();
    }
    let pcm: Vec<i16> = signal
        .iter()
        .flat_map(|&v| {
            let s = (v * 32767.0).round() as i16;
            [s, s]
        })
        .collect();
    let mut units = Vec::new();
    feed(&mut enc, &pcm, 2, &mut units);
    enc.finish(&mut units).expect("finish");

    let decoded = ffmpeg_decode(&units, rate, channels);
    assert_eq!(
        decoded.len(),
        units.len() * 1024 * 2,
        "1024 samples per unit"
    );
    let left: Vec<f64> = decoded
        .chunks_exact(2)
        .map(|f| f64::from(f[0]) / 32767.0)
        .collect();
    let right: Vec<f64> = decoded
        .chunks_exact(2)
        .map(|f| f64::from(f[1]) / 32767.0)
        .collect();

    // Delay: the lag that best aligns the noise burst. The noise is aperiodic, so the peak is
    // unique; a wrong alignment rule would be off by whole or partial frames.
    let reference = &signal[noise_at..noise_at + noise_len];
    let (best_lag, best) = (0..4096usize)
        .map(|lag| {
            let d = &left[noise_at + lag..noise_at + lag + noise_len];
            let c: f64 = reference.iter().zip(d).map(|(a, b)| a * b).sum();
            (lag, c)
        })
        .fold((0, f64::MIN), |acc, x| if x.1 > acc.1 { x } else { acc });
    let energy: f64 = reference.iter().map(|v| v * v).sum();
    eprintln!(
        "encoder delay {delay}, measured lag {best_lag}, correlation {:.3}",
        best / energy
    );
    assert_eq!(
        best_lag, delay,
        "decoded output lags input by exactly config().delay"
    );
    // The same fact in grid terms: the burst was fed as grid sample input_start + noise_at and
    // must decode at that grid position when unit j is placed at sample 1024j.
    let burst_grid_sample = enc.input_start().0 + noise_at as u64;
    assert_eq!(
        burst_grid_sample - 1024 * FIRST_FRAME,
        (noise_at + best_lag) as u64
    );
    assert!(
        best / energy > 0.9,
        "normalised correlation {}",
        best / energy
    );

    // Level: steady part of the sine (skip 0.1 s at each edge), within 0.5 dB, both channels.
    let steady = sine_at + delay + 4_800..sine_at + delay + sine_len - 4_800;
    let want = 0.5 / std::f64::consts::SQRT_2;
    for (name, ch) in [("left", &left), ("right", &right)] {
        let db = 20.0 * (rms(&ch[steady.clone()]) / want).log10();
        assert!(db.abs() < 0.5, "{name}: sine level off by {db:.2} dB");
    }
    // And it is still 1 kHz: count rising zero crossings over the steady second.
    let crossings = left[steady.clone()]
        .windows(2)
        .filter(|w| w[0] < 0.0 && w[1] >= 0.0)
        .count() as f64;
    let hz = crossings * f64::from(rate) / steady.len() as f64;
    assert!((hz - 1000.0).abs() < 5.0, "tone at {hz:.1} Hz");
    // Silence stays silence well away from the bursts (priming included).
    assert!(rms(&left[..noise_at]) < 1e-3, "leading silence");
}

#[test]
fn output_is_deterministic() {
    let pcm: Vec<i16> = noise(20_000 * 2, 3)
        .iter()
        .map(|v| (v * 9000.0) as i16)
        .collect();
    let run = || {
        let mut enc = AacEncoder::new("audio", 128, 2, 48_000, FIRST_FRAME).expect("open");
        let mut out = Vec::new();
        feed(&mut enc, &pcm, 2, &mut out);
        enc.finish(&mut out).expect("finish");
        out.into_iter()
            .map(|u| (u.index, u.data))
            .collect::<Vec<_>>()
    };
    assert!(run() == run());
}

#[test]
fn unsupported_setups_are_setup_errors() {
    for (ch, rate, kbps) in [(6u16, 48_000u32, 128u32), (2, 12_345, 128), (2, 48_000, 0)] {
        match AacEncoder::new("audio", kbps, ch, rate, 0) {
            Err(EncodeError::Setup { track, reason }) => {
                assert_eq!(track, "audio");
                assert!(!reason.is_empty());
            }
            other => panic!("{ch} ch {rate} Hz {kbps} kbit/s: expected setup error, got {other:?}"),
        }
    }
}

#[test]
fn partial_sample_frame_is_an_error() {
    let mut enc = AacEncoder::new("audio", 128, 2, 48_000, 0).expect("open");
    let mut out = Vec::new();
    assert!(enc.encode(&[0i16; 3], &mut out).is_err());
    assert!(out.is_empty());
}

#[test]
fn encoder_moves_to_another_thread() {
    fn assert_send<T: Send>(_: &T) {}
    let mut enc = AacEncoder::new("audio", 128, 2, 48_000, 0).expect("open");
    assert_send(&enc);
    let units = std::thread::spawn(move || {
        let mut out = Vec::new();
        enc.encode(&[0i16; 4096], &mut out).expect("encode");
        enc.finish(&mut out).expect("finish");
        out
    })
    .join()
    .expect("thread");
    assert!(!units.is_empty());
}
