//! Criterion benches of the per-frame / per-fragment paths outside x264 and the AAC encoder:
//! capture (synthetic rendering), ladder scaling, packaging, and push fan-out.
//!
//!     cargo bench --bench hot_paths [-- FILTER]
//!
//! The figures are CPU time, not wall time: the single-threaded benches read the calling
//! thread's CPU clock, the push fan-out bench the process's CPU clock minus what the in-process
//! receiver's threads spent. So they stay meaningful on a box shared with other work (which
//! mostly slows the wall clock).
//!
//! The budget these must fit (docs/performance.md): at 30 fps with the 3-rung benchmark ladder,
//! everything here together should stay a small part of the CPU the encoders use.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use smoothcast::capture::synthetic::SyntheticVideo;
use smoothcast::capture::{i420_size, FrameOrigin, Pacing, VideoFrame, VideoSource};
use smoothcast::channel::package::{AudioPackager, VideoPackager};
use smoothcast::encode::scale::Scaler;
use smoothcast::encode::{AvcConfig, EncodedAudio, EncodedPicture};
use smoothcast::piff::{header::stream_header, TrackCodec, TrackInfo};
use smoothcast::profile::ScaleKernel;
use smoothcast::push::{Fragment, Pusher, StreamHeader};
use smoothcast::time::{
    AudioGrid, FragmentGrid, FrameGrid, FrameIndex, Rate, SystemClocks, DEFAULT_TIMESCALE,
};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[repr(C)]
struct Timespec {
    tv_sec: i64,
    tv_nsec: i64,
}

extern "C" {
    // From the C library (Linux x86_64/aarch64: time_t and long are 64-bit).
    fn clock_gettime(clock: i32, tp: *mut Timespec) -> i32;
}

/// `CLOCK_THREAD_CPUTIME_ID` (Linux).
const CLOCK_THREAD_CPUTIME_ID: i32 = 3;

/// CPU time consumed so far by the calling thread (exact, unlike schedstat, which a running
/// thread only updates at scheduler ticks).
fn thread_cpu() -> Duration {
    let mut ts = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid, writable timespec.
    if unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// `CLOCK_PROCESS_CPUTIME_ID` (Linux).
const CLOCK_PROCESS_CPUTIME_ID: i32 = 2;

/// CPU time consumed so far by the whole process.
fn process_cpu() -> Duration {
    let mut ts = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid, writable timespec.
    if unsafe { clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &mut ts) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// CPU nanoseconds spent by the in-process receiver's threads (they add to it as they go), so
/// the fan-out bench can leave the receiving side out.
static RECEIVER_CPU_NS: AtomicU64 = AtomicU64::new(0);

/// CPU time of the process except the receiver's threads.
fn sender_cpu() -> Duration {
    process_cpu().saturating_sub(Duration::from_nanos(
        RECEIVER_CPU_NS.load(Ordering::Relaxed),
    ))
}

/// Runs `f` `iters` times and returns the CPU time the calling thread spent.
fn cpu_iters<T>(iters: u64, mut f: impl FnMut() -> T) -> Duration {
    let start = thread_cpu();
    for _ in 0..iters {
        std::hint::black_box(f());
    }
    thread_cpu().saturating_sub(start)
}

fn rate30() -> Rate {
    Rate::new(30, 1).expect("30/1 is a valid rate")
}

/// Frame index of 2026-01-01T00:00:00Z at 30 fps (any large index on a fragment boundary).
const N0: u64 = 1_767_225_600 * 30;

fn capture(c: &mut Criterion) {
    let mut g = c.benchmark_group("capture");
    g.throughput(Throughput::Elements(1));
    g.bench_function("synthetic_1280x720_frame", |b| {
        let mut src = SyntheticVideo::new(1280, 720, rate30(), FrameIndex(N0), Pacing::Fast);
        // Frames are dropped at once, so the pool reuses one buffer: this is render + pool.
        b.iter_custom(|iters| cpu_iters(iters, || src.next_frame().map(|f| f.index)))
    });
    g.finish();
}

fn source_frame() -> VideoFrame {
    let src = SyntheticVideo::new(1280, 720, rate30(), FrameIndex(N0), Pacing::Fast);
    let mut data = vec![0; i420_size(1280, 720)];
    src.render(FrameIndex(N0 + 17), &mut data);
    VideoFrame {
        index: FrameIndex(N0 + 17),
        width: 1280,
        height: 720,
        data: Arc::new(data),
        origin: FrameOrigin::Live,
    }
}

fn scaling(c: &mut Criterion) {
    let mut g = c.benchmark_group("scale");
    g.throughput(Throughput::Elements(1));
    let frame = source_frame();
    // Every profile kernel; area at 640x360 (exactly half) is smoothcast's own halving.
    for kernel in ScaleKernel::ALL {
        for (w, h) in [(854u32, 480u32), (640, 360)] {
            g.bench_with_input(
                BenchmarkId::new(format!("1280x720_{}_to", kernel.name()), format!("{w}x{h}")),
                &(w, h),
                |b, &(w, h)| {
                    let mut s = Scaler::with_kernel((1280, 720), (w, h), kernel).expect("scaler");
                    b.iter_custom(|iters| {
                        cpu_iters(iters, || s.scale(&frame).map(|f| f.data.len()))
                    })
                },
            );
        }
    }
    // The same swscale call into planes with 64-byte aligned strides (what FFmpeg's filters
    // use): shows what tightly packed 854-wide rows cost swscale's SIMD paths.
    g.bench_function("1280x720_to/854x480_aligned_strides", |b| {
        let mut a = AlignedSws::new((1280, 720), (854, 480));
        b.iter_custom(|iters| cpu_iters(iters, || a.scale(&frame)))
    });
    g.finish();
}

/// swscale I420 → I420 bicubic into a buffer with 64-byte aligned plane strides.
struct AlignedSws {
    ctx: *mut ffmpeg_next::ffi::SwsContext,
    src_h: i32,
    strides: [i32; 3],
    buf: Vec<u8>,
    offsets: [usize; 3],
}

impl AlignedSws {
    fn new(src: (u32, u32), dst: (u32, u32)) -> AlignedSws {
        use ffmpeg_next::ffi;
        // SAFETY: plain constructor with valid sizes and formats.
        let ctx = unsafe {
            ffi::sws_getContext(
                src.0 as i32,
                src.1 as i32,
                ffi::AVPixelFormat::AV_PIX_FMT_YUV420P,
                dst.0 as i32,
                dst.1 as i32,
                ffi::AVPixelFormat::AV_PIX_FMT_YUV420P,
                ffi::SWS_BICUBIC,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null(),
            )
        };
        assert!(!ctx.is_null());
        let ys = (dst.0 as usize).next_multiple_of(64);
        let cs = (dst.0 as usize).div_ceil(2).next_multiple_of(64);
        let (h, ch) = (dst.1 as usize, (dst.1 as usize).div_ceil(2));
        let offsets = [64, 64 + ys * h, 64 + ys * h + cs * ch];
        let buf = vec![0u8; offsets[2] + cs * ch + 128];
        AlignedSws {
            ctx,
            src_h: src.1 as i32,
            strides: [ys as i32, cs as i32, cs as i32],
            buf,
            offsets,
        }
    }

    fn scale(&mut self, frame: &VideoFrame) -> i32 {
        let planes = frame.planes();
        let base = frame.data.as_ptr();
        let src: [*const u8; 4] = [
            base.wrapping_add(planes[0].0),
            base.wrapping_add(planes[1].0),
            base.wrapping_add(planes[2].0),
            std::ptr::null(),
        ];
        let src_stride = [
            planes[0].1 as i32,
            planes[1].1 as i32,
            planes[2].1 as i32,
            0,
        ];
        // Align the destination base to 64 bytes inside the buffer.
        let p = self.buf.as_mut_ptr();
        let shift = (64 - (p as usize % 64)) % 64;
        let dst: [*mut u8; 4] = [
            p.wrapping_add(self.offsets[0] - 64 + shift),
            p.wrapping_add(self.offsets[1] - 64 + shift),
            p.wrapping_add(self.offsets[2] - 64 + shift),
            std::ptr::null_mut(),
        ];
        let dst_stride = [self.strides[0], self.strides[1], self.strides[2], 0];
        // SAFETY: source planes are readable, destination planes writable for their sizes.
        unsafe {
            ffmpeg_next::ffi::sws_scale(
                self.ctx,
                src.as_ptr(),
                src_stride.as_ptr(),
                0,
                self.src_h,
                dst.as_ptr(),
                dst_stride.as_ptr(),
            )
        }
    }
}

impl Drop for AlignedSws {
    fn drop(&mut self) {
        // SAFETY: created by sws_getContext, freed once.
        unsafe { ffmpeg_next::ffi::sws_freeContext(self.ctx) };
    }
}

/// Picture sizes of a 2 s GOP at about 3 Mbit/s: a 60 kB IDR, then ~11.5 kB pictures.
fn gop_pictures(k: u64) -> Vec<EncodedPicture> {
    let first = k * 60;
    let mut out = Vec::with_capacity(60);
    // Decode order of I P B B P B B ...: pts 0, 3, 1, 2, 6, 4, 5, ...
    let mut order = vec![0u64];
    let mut p = 3;
    while p < 60 {
        order.extend([p, p - 2, p - 1]);
        p += 3;
    }
    for q in (order.iter().max().copied().unwrap_or(0) + 1)..60 {
        order.push(q);
    }
    for (i, &pts) in order.iter().enumerate() {
        let size = if i == 0 {
            60_000
        } else {
            11_500 + (i % 7) * 300
        };
        out.push(EncodedPicture {
            pts: FrameIndex(first + pts),
            keyframe: i == 0,
            data: vec![0x41; size],
        });
    }
    out
}

fn packaging(c: &mut Criterion) {
    let mut g = c.benchmark_group("package");
    let frames = FrameGrid::new(rate30(), DEFAULT_TIMESCALE);
    let frags = FragmentGrid { gop: 60 };
    let k0 = N0 / 60;
    let pics = gop_pictures(k0);
    let bytes: usize = pics.iter().map(|p| p.data.len()).sum();
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("video_fragment_60_pictures", |b| {
        let mut p = VideoPackager::new(1, frames, frags, 2);
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                // The pictures come from the encoder: their allocation is not packaging.
                let pics = pics.clone();
                let start = thread_cpu();
                let mut out = None;
                for pic in pics {
                    if let Ok(Some(f)) = p.push(pic) {
                        out = Some(f.bytes.len());
                    }
                }
                std::hint::black_box(out);
                spent += thread_cpu().saturating_sub(start);
            }
            spent
        })
    });
    let audio = AudioGrid::aac(48_000, DEFAULT_TIMESCALE);
    let j0 = audio.fragment_start(k0, &frames, &frags);
    let j1 = audio.fragment_start(k0 + 1, &frames, &frags);
    let units: Vec<EncodedAudio> = (j0..j1)
        .map(|j| EncodedAudio {
            index: j,
            data: vec![0x21; 340],
        })
        .collect();
    g.throughput(Throughput::Elements(1));
    g.bench_function("audio_fragment_94_units", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let (mut p, units) = (AudioPackager::new(4, audio, frames, frags), units.clone());
                let start = thread_cpu();
                let mut out = None;
                for u in units {
                    if let Ok(Some(f)) = p.push(u) {
                        out = Some(f.bytes.len());
                    }
                }
                std::hint::black_box(out);
                spent += thread_cpu().saturating_sub(start);
            }
            spent
        })
    });
    g.finish();
}

/// A receiver that answers every request 200 and discards bodies (probe: `Content-Length: 0`;
/// long POST: chunked, read until the connection closes or the last chunk).
fn discard_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let spawn = |f: Box<dyn FnOnce() + Send>| {
        std::thread::Builder::new()
            .name("discard".into())
            .spawn(f)
            .map(|_| ())
    };
    let _ = spawn(Box::new(move || {
        for conn in listener.incoming().flatten() {
            let _ = std::thread::Builder::new()
                .name("discard".into())
                .spawn(move || serve(conn));
        }
    }));
    port
}

fn serve(mut conn: TcpStream) {
    let _ = conn.set_nodelay(true);
    let mut buf = vec![0u8; 1 << 16];
    let mut head = Vec::new();
    let mut reported = thread_cpu();
    let mut report = || {
        let now = thread_cpu();
        let spent = now.saturating_sub(reported);
        reported = now;
        RECEIVER_CPU_NS.fetch_add(spent.as_nanos() as u64, Ordering::Relaxed);
    };
    loop {
        report();
        // Request head.
        let end = loop {
            if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match conn.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        };
        let text = String::from_utf8_lossy(&head[..end]).to_ascii_lowercase();
        let rest = head.split_off(end);
        head = rest;
        if text.contains("transfer-encoding: chunked") {
            // Discard until the terminating chunk ends a read (the pusher writes it alone).
            let mut tail = std::mem::take(&mut head);
            loop {
                if tail.ends_with(b"\r\n0\r\n\r\n") || tail == b"0\r\n\r\n" {
                    break;
                }
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        tail.clear();
                        tail.extend_from_slice(&buf[..n]);
                        report();
                    }
                }
            }
        }
        if conn
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            .is_err()
        {
            return;
        }
    }
}

fn push_fanout(c: &mut Criterion) {
    let mut g = c.benchmark_group("push_fanout");
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(8));
    let track = TrackInfo {
        track_id: 1,
        track_name: "video".into(),
        bitrate: 3_000_000,
        timescale: DEFAULT_TIMESCALE,
        codec: TrackCodec::Avc(AvcConfig {
            sps: vec![0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50],
            pps: vec![0x68, 0xeb, 0xe3, 0xcb],
            width: 1280,
            height: 720,
            reorder_frames: 2,
        }),
    };
    let header = StreamHeader {
        stream_id: "bench-720p".into(),
        track_ids: vec![1],
        bytes: stream_header(&[track], "bench").into(),
    };
    // One 2 s fragment at 3 Mbit/s.
    let frag_len = 750_000;
    let port = discard_server();
    let opts = smoothcast::profile::demo().push;
    for n in [1usize, 8] {
        g.throughput(Throughput::Bytes((frag_len * n) as u64));
        g.bench_with_input(BenchmarkId::new("fragment_750kB_to", n), &n, |b, &n| {
            let urls: Vec<String> = (0..n)
                .map(|i| format!("http://127.0.0.1:{port}/d{i}.isml"))
                .collect();
            let dests = smoothcast::push::destinations_from_urls(&urls);
            let pusher = Pusher::start(
                "bench",
                vec![header.clone()],
                &dests,
                &opts,
                SystemClocks::new(),
            )
            .expect("pusher");
            let mut seq = 0u32;
            b.iter_custom(|iters| {
                let start = sender_cpu();
                for _ in 0..iters {
                    seq += 1;
                    let f = Arc::new(Fragment {
                        track_id: 1,
                        sequence: seq,
                        time: u64::from(seq) * 20_000_000,
                        duration: 20_000_000,
                        bytes: vec![0u8; frag_len].into(),
                    });
                    pusher.submit(f);
                    // Wait (sleeping, so the waiting costs little CPU) until every session has
                    // written it.
                    let deadline = Instant::now() + Duration::from_secs(10);
                    while pusher
                        .status()
                        .iter()
                        .any(|s| s.last_fragment.map(|(_, q)| q) != Some(seq))
                        && Instant::now() < deadline
                    {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
                // Let the receiver account for the last reads.
                std::thread::sleep(Duration::from_millis(1));
                sender_cpu().saturating_sub(start)
            });
            pusher.finish(Duration::from_secs(2));
        });
    }
    g.finish();
}

criterion_group!(benches, capture, scaling, packaging, push_fanout);
criterion_main!(benches);
