//! The real device: open, probe, negotiate (`v4l` crate), mmap streaming ([`super::mmap`],
//! our own stream, which keeps each buffer's timecode).
//!
//! Only this file and [`super::mmap`] touch the kernel. They are compiled and smoke-tested for
//! their "no device" errors on the build machines (no capture card, no v4l2loopback); every
//! decision they make is delegated to the pure modules (negotiation, conversion, grid mapping,
//! timecode validation), which are tested on recorded capability sets, buffers and traces.
//!
//! Buffer timestamps: drivers stamp buffers with `CLOCK_MONOTONIC`
//! (`V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC`). At dequeue the buffer's age (kernel monotonic now −
//! its stamp) is subtracted from the injected clocks' monotonic now, which maps the stamp into
//! the clocks' domain without assuming both clocks share an origin. Drivers that do not stamp
//! monotonically get their dequeue time.

use super::convert::{BufferLayout, PixelFormat};
use super::interlace::Deinterlace;
use super::mmap::MmapStream;
use super::negotiate::{
    self, CapabilitySet, Choice, FormatCaps, Fraction, InputCaps, SizeCaps, Want,
};
use super::{BufferSource, Captured, GridSource, PictureFormat, V4l2Error};
use crate::capture::loss::{GridStart, InputCounters};
use crate::capture::timecode::V4l2TimecodeTap;
use crate::capture::{CaptureError, VideoSource};
use crate::time::{Clocks, Rate};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use v4l::format::FieldOrder;
use v4l::frameinterval::FrameIntervalEnum;
use v4l::framesize::FrameSizeEnum;
use v4l::v4l_sys;
use v4l::video::Capture;
use v4l::{Device, FourCC};

/// Driver buffers requested for streaming: ~130 ms at 60 fps, enough to ride out a slow
/// conversion or a scheduling hiccup without the driver dropping frames.
pub const BUFFERS: u32 = 8;

/// Which device and input a logical video input is (from the box's hw map).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VideoDevice {
    /// Logical input name (`sdi1`), for logs and errors.
    pub input: String,
    /// Device node, preferably a stable udev name (`/dev/smoothcast/sdi1`).
    pub path: PathBuf,
    /// `VIDIOC_S_INPUT` index on multi-input cards.
    pub card_input: Option<u32>,
    /// Analogue standard to select (`PAL`, `NTSC`), for cards that have standards.
    pub standard: Option<String>,
}

fn dev_err<'a>(path: &'a Path, op: &'static str) -> impl Fn(std::io::Error) -> V4l2Error + 'a {
    move |source| V4l2Error::Device {
        path: path.display().to_string(),
        op,
        source,
    }
}

/// Opens a device node, saying plainly when it does not exist or is not accessible.
fn open(path: &Path) -> Result<Device, V4l2Error> {
    Device::with_path(path).map_err(|e| {
        let op = match e.kind() {
            std::io::ErrorKind::NotFound => "no such device (unplugged, or not this box?)",
            std::io::ErrorKind::PermissionDenied => {
                "permission denied (is the user in group video?)"
            }
            _ => "open",
        };
        dev_err(path, op)(e)
    })
}

fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).trim().to_string()
}

/// `VIDIOC_ENUMINPUT` over every index.
fn inputs(dev: &Device) -> Vec<InputCaps> {
    let mut out = Vec::new();
    for index in 0..64u32 {
        // SAFETY: v4l2_input is plain old data; zero is a valid initial value.
        let mut inp: v4l_sys::v4l2_input = unsafe { std::mem::zeroed() };
        inp.index = index;
        // SAFETY: VIDIOC_ENUMINPUT reads and writes exactly one v4l2_input.
        let r = unsafe {
            v4l::v4l2::ioctl(
                dev.handle().fd(),
                v4l::v4l2::vidioc::VIDIOC_ENUMINPUT,
                &mut inp as *mut _ as *mut std::os::raw::c_void,
            )
        };
        if r.is_err() {
            break;
        }
        let mut status = Vec::new();
        for (bit, name) in [
            (v4l_sys::V4L2_IN_ST_NO_POWER, "no-power"),
            (v4l_sys::V4L2_IN_ST_NO_SIGNAL, "no-signal"),
            (v4l_sys::V4L2_IN_ST_NO_COLOR, "no-color"),
            (v4l_sys::V4L2_IN_ST_NO_H_LOCK, "no-h-lock"),
            (v4l_sys::V4L2_IN_ST_NO_SYNC, "no-sync"),
        ] {
            if inp.status & bit != 0 {
                status.push(name.to_string());
            }
        }
        let standards = if inp.capabilities & v4l_sys::V4L2_IN_CAP_STD != 0 {
            standards(dev).into_iter().map(|(name, _)| name).collect()
        } else {
            Vec::new()
        };
        out.push(InputCaps {
            index,
            name: c_string(&inp.name),
            standards,
            status,
        });
    }
    out
}

/// `VIDIOC_ENUMSTD`: (name, id) of every standard of the current input.
fn standards(dev: &Device) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for index in 0..64u32 {
        // SAFETY: v4l2_standard is plain old data; zero is a valid initial value.
        let mut s: v4l_sys::v4l2_standard = unsafe { std::mem::zeroed() };
        s.index = index;
        // SAFETY: VIDIOC_ENUMSTD reads and writes exactly one v4l2_standard.
        let r = unsafe {
            v4l::v4l2::ioctl(
                dev.handle().fd(),
                v4l::v4l2::vidioc::VIDIOC_ENUMSTD,
                &mut s as *mut _ as *mut std::os::raw::c_void,
            )
        };
        if r.is_err() {
            break;
        }
        out.push((c_string(&s.name), s.id));
    }
    out
}

fn select_input(dev: &Device, path: &Path, index: u32) -> Result<(), V4l2Error> {
    let mut i = std::os::raw::c_int::try_from(index).unwrap_or(0);
    // SAFETY: VIDIOC_S_INPUT reads and writes one int.
    unsafe {
        v4l::v4l2::ioctl(
            dev.handle().fd(),
            v4l::v4l2::vidioc::VIDIOC_S_INPUT,
            &mut i as *mut _ as *mut std::os::raw::c_void,
        )
    }
    .map_err(dev_err(path, "select input (VIDIOC_S_INPUT)"))
}

fn select_standard(dev: &Device, path: &Path, name: &str) -> Result<(), V4l2Error> {
    let all = standards(dev);
    let Some((_, mut id)) = all
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .cloned()
    else {
        let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
        return Err(V4l2Error::Format(format!(
            "{}: no standard \"{name}\" (the input has: {})",
            path.display(),
            if names.is_empty() {
                "none".into()
            } else {
                names.join(", ")
            }
        )));
    };
    // SAFETY: VIDIOC_S_STD reads one v4l2_std_id.
    unsafe {
        v4l::v4l2::ioctl(
            dev.handle().fd(),
            v4l::v4l2::vidioc::VIDIOC_S_STD,
            &mut id as *mut _ as *mut std::os::raw::c_void,
        )
    }
    .map_err(dev_err(path, "select standard (VIDIOC_S_STD)"))
}

/// Sizes tried inside a stepwise/continuous size range (plus its minimum and maximum).
const COMMON_SIZES: [(u32, u32); 8] = [
    (3840, 2160),
    (1920, 1080),
    (1280, 720),
    (1024, 576),
    (720, 576),
    (720, 480),
    (640, 480),
    (640, 360),
];

/// Intervals tried inside a stepwise interval range (plus its minimum and maximum).
const COMMON_INTERVALS: [(u32, u32); 8] = [
    (1, 60),
    (1001, 60000),
    (1, 50),
    (1, 30),
    (1001, 30000),
    (1, 25),
    (1, 24),
    (1001, 24000),
];

/// The device's formats, sizes and intervals (stepwise ranges sampled at common values).
fn formats(dev: &Device) -> Vec<FormatCaps> {
    let mut out = Vec::new();
    let Ok(descs) = dev.enum_formats() else {
        return out;
    };
    for d in descs {
        let fourcc = d.fourcc.str().unwrap_or("????").to_string();
        let mut sizes = Vec::new();
        let push_size = |w: u32, h: u32, sizes: &mut Vec<SizeCaps>| {
            let intervals = intervals(dev, d.fourcc, w, h);
            sizes.push(SizeCaps {
                width: w,
                height: h,
                intervals,
                interlaced: false,
            });
        };
        for fs in dev.enum_framesizes(d.fourcc).unwrap_or_default() {
            match fs.size {
                FrameSizeEnum::Discrete(s) => push_size(s.width, s.height, &mut sizes),
                FrameSizeEnum::Stepwise(s) => {
                    let fits = |w: u32, h: u32| {
                        (s.min_width..=s.max_width).contains(&w)
                            && (s.min_height..=s.max_height).contains(&h)
                            && (w - s.min_width).is_multiple_of(s.step_width.max(1))
                            && (h - s.min_height).is_multiple_of(s.step_height.max(1))
                    };
                    push_size(s.max_width, s.max_height, &mut sizes);
                    for (w, h) in COMMON_SIZES {
                        if fits(w, h) && (w, h) != (s.max_width, s.max_height) {
                            push_size(w, h, &mut sizes);
                        }
                    }
                }
            }
        }
        out.push(FormatCaps {
            fourcc,
            description: d.description.clone(),
            sizes,
        });
    }
    out
}

fn intervals(dev: &Device, fourcc: FourCC, w: u32, h: u32) -> Vec<Fraction> {
    let mut out = Vec::new();
    for fi in dev.enum_frameintervals(fourcc, w, h).unwrap_or_default() {
        match fi.interval {
            FrameIntervalEnum::Discrete(f) => out.extend(Fraction::new(f.numerator, f.denominator)),
            FrameIntervalEnum::Stepwise(s) => {
                let (lo, hi) = (s.min, s.max);
                let secs = |n: u32, d: u32| f64::from(n) / f64::from(d.max(1));
                let (lo_s, hi_s) = (
                    secs(lo.numerator, lo.denominator),
                    secs(hi.numerator, hi.denominator),
                );
                out.extend(Fraction::new(lo.numerator, lo.denominator));
                for (n, d) in COMMON_INTERVALS {
                    let v = secs(n, d);
                    if v > lo_s && v < hi_s {
                        out.extend(Fraction::new(n, d));
                    }
                }
                out.extend(Fraction::new(hi.numerator, hi.denominator));
            }
        }
    }
    out.dedup();
    out
}

/// Everything `smoothcast hw` shows about one device node. Fails when the node cannot be
/// opened or is not a video capture device.
pub fn probe(path: &Path) -> Result<CapabilitySet, V4l2Error> {
    let dev = open(path)?;
    let caps = dev
        .query_caps()
        .map_err(dev_err(path, "query capabilities"))?;
    if !caps
        .capabilities
        .contains(v4l::capability::Flags::VIDEO_CAPTURE)
    {
        return Err(V4l2Error::Format(format!(
            "{}: not a video capture device ({})",
            path.display(),
            caps.card
        )));
    }
    Ok(CapabilitySet {
        note: None,
        driver: caps.driver.clone(),
        card: caps.card.clone(),
        bus: caps.bus.clone(),
        inputs: inputs(&dev),
        formats: formats(&dev),
    })
}

/// An open mmap stream: the [`BufferSource`] of a real device.
pub struct DeviceBuffers {
    path: PathBuf,
    // Field order matters: the stream (STREAMOFF, unmapped) is dropped before the device
    // (close).
    stream: MmapStream,
    _device: Device,
    clocks: Arc<dyn Clocks>,
    no_signal_after: Duration,
}

impl std::fmt::Debug for DeviceBuffers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceBuffers")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// The kernel's `CLOCK_MONOTONIC` now.
fn kernel_monotonic() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

impl BufferSource for DeviceBuffers {
    fn next_buffer(&mut self) -> Result<Captured<'_>, V4l2Error> {
        let (path, no_signal_after) = (&self.path, self.no_signal_after);
        let (data, meta) = self.stream.next_buffer().map_err(|e| {
            if e.kind() == std::io::ErrorKind::TimedOut {
                V4l2Error::NoSignal(no_signal_after)
            } else {
                dev_err(path, "dequeue (VIDIOC_QBUF/DQBUF)")(e)
            }
        })?;
        let now = self.clocks.monotonic();
        let flags = meta.flags;
        let at = if flags & v4l_sys::V4L2_BUF_FLAG_TIMESTAMP_MASK
            == v4l_sys::V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC
        {
            now.saturating_sub(kernel_monotonic().saturating_sub(meta.timestamp))
        } else {
            now
        };
        Ok(Captured {
            data,
            at,
            sequence: meta.sequence,
            damaged: flags & v4l_sys::V4L2_BUF_FLAG_ERROR != 0,
            timecode: meta.timecode,
        })
    }
}

/// What [`open_video`] negotiated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Opened {
    /// The mode negotiation chose.
    pub choice: Choice,
    /// How the driver's buffers are turned into pictures (as the driver set the format).
    pub format: PictureFormat,
}

/// Whether a woven interlaced buffer's bottom field is the earlier one.
fn bottom_first(field: FieldOrder, height: u32) -> Option<bool> {
    match field {
        FieldOrder::InterlacedTB => Some(false),
        FieldOrder::InterlacedBT => Some(true),
        // Plain "interlaced": the order follows the standard — 480-line (NTSC) video is
        // bottom field first, everything else top field first.
        FieldOrder::Interlaced => Some(matches!(height, 480 | 486)),
        _ => None,
    }
}

/// Opens `dev`, negotiates a mode for `want`, starts mmap streaming and places the pictures on
/// the grid from `start` on. A device that delivers nothing for `no_signal_after` fails the
/// read (the loss policy takes over). With `timecode`, every placed buffer's driver timecode
/// is reported to it.
pub fn open_video(
    dev: &VideoDevice,
    want: &Want,
    start: GridStart,
    clocks: Arc<dyn Clocks>,
    no_signal_after: Duration,
    counters: Arc<InputCounters>,
    timecode: Option<V4l2TimecodeTap>,
) -> Result<(GridSource<DeviceBuffers>, Opened), CaptureError> {
    let (buffers, opened) = open_buffers(dev, want, clocks, no_signal_after)?;
    let mut src = GridSource::new(
        &dev.input,
        buffers,
        opened.format,
        want.rate,
        start.slot,
        start.due,
        counters,
    )?;
    if let Some(tap) = timecode {
        src = src.with_timecode(tap);
    }
    Ok((src, opened))
}

/// Opens `dev`, negotiates a mode for `want` and maps the streaming buffers (streaming starts
/// at the first read): the raw [`BufferSource`] of the device, e.g. for reading its timecode
/// at channel start. Reads fail after `no_signal_after` without a buffer.
pub fn open_buffers(
    dev: &VideoDevice,
    want: &Want,
    clocks: Arc<dyn Clocks>,
    no_signal_after: Duration,
) -> Result<(DeviceBuffers, Opened), CaptureError> {
    let input = dev.input.as_str();
    let path = dev.path.as_path();
    let fail = |e: V4l2Error| e.at_open(input);
    let device = open(path).map_err(fail)?;
    let caps = device
        .query_caps()
        .map_err(dev_err(path, "query capabilities"))
        .map_err(fail)?;
    let flags = caps.capabilities;
    if !flags.contains(v4l::capability::Flags::VIDEO_CAPTURE)
        || !flags.contains(v4l::capability::Flags::STREAMING)
    {
        return Err(fail(V4l2Error::Format(format!(
            "{}: {} is not a streaming video capture device",
            path.display(),
            caps.card
        ))));
    }
    if let Some(i) = dev.card_input {
        select_input(&device, path, i).map_err(fail)?;
    }
    if let Some(s) = &dev.standard {
        select_standard(&device, path, s).map_err(fail)?;
    }
    let mut set = CapabilitySet {
        note: None,
        driver: caps.driver.clone(),
        card: caps.card.clone(),
        bus: caps.bus.clone(),
        inputs: Vec::new(),
        formats: formats(&device),
    };
    // Enumeration does not say which modes are interlaced; the current format does. A card
    // locked to an interlaced signal reports it woven at the signal's height: mark the sizes
    // of that height interlaced, so negotiation can count them at their field rate.
    if let Ok(current) = device.format() {
        if bottom_first(current.field_order, current.height).is_some() {
            for size in set.formats.iter_mut().flat_map(|f| f.sizes.iter_mut()) {
                size.interlaced |= size.height == current.height;
            }
        }
    }
    let choice = negotiate::negotiate(&set, want).map_err(|e| fail(e.into()))?;
    let requested = v4l::Format::new(
        choice.width,
        choice.height,
        FourCC::new(&choice.format.fourcc()),
    );
    let got = device
        .set_format(&requested)
        .map_err(dev_err(path, "set format (VIDIOC_S_FMT)"))
        .map_err(fail)?;
    if matches!(
        got.field_order,
        FieldOrder::SequentialTB | FieldOrder::SequentialBT | FieldOrder::Alternate
    ) {
        return Err(fail(V4l2Error::Format(format!(
            "{}: field order \"{}\" is not supported; set the card to deliver woven \
             (interlaced) or progressive frames",
            path.display(),
            got.field_order
        ))));
    }
    let format = PixelFormat::from_fourcc(&got.fourcc.repr).ok_or_else(|| {
        fail(V4l2Error::Format(format!(
            "{}: asked for {}, the driver set {}",
            path.display(),
            choice.format.fourcc_str(),
            got.fourcc
        )))
    })?;
    // Cards whose rate follows the input signal refuse S_PARM; that is fine, negotiation
    // already picked the mode the signal has.
    if let Err(e) = device.set_params(&v4l::video::capture::Parameters::new(v4l::Fraction::new(
        choice.interval.num,
        choice.interval.den,
    ))) {
        tracing::debug!(input, error = %e, "VIDIOC_S_PARM refused; keeping the driver's rate");
    }
    let interval = device
        .params()
        .ok()
        .and_then(|p| Fraction::new(p.interval.numerator, p.interval.denominator))
        .unwrap_or(choice.interval);
    let deinterlace = match bottom_first(got.field_order, got.height) {
        None => None,
        Some(bff) => {
            // Bob when the field rate is what the channel runs at, blend otherwise.
            let field_rate = Rate::new(interval.den.saturating_mul(2), interval.num);
            let mode = if field_rate.is_some_and(|r| r == want.rate)
                || choice.deinterlace == Some(Deinterlace::Bob)
            {
                Deinterlace::Bob
            } else {
                Deinterlace::Blend
            };
            Some((mode, bff))
        }
    };
    let layout = BufferLayout {
        format,
        width: got.width,
        height: got.height,
        stride: if format.is_compressed() {
            0
        } else {
            got.stride
        },
    };
    let frame_nanos = u64::from(interval.num) * 1_000_000_000 / u64::from(interval.den.max(1));
    let picture = PictureFormat {
        layout,
        deinterlace,
        frame_nanos,
    };
    // The first dequeue queues every buffer and starts streaming (VIDIOC_STREAMON).
    let stream = MmapStream::new(device.handle(), BUFFERS, no_signal_after)
        .map_err(dev_err(
            path,
            "allocate mmap buffers (VIDIOC_REQBUFS/QUERYBUF/mmap)",
        ))
        .map_err(fail)?;
    tracing::info!(
        input,
        device = %path.display(),
        card = %caps.card,
        mode = %choice,
        "capture started"
    );
    let buffers = DeviceBuffers {
        path: path.to_path_buf(),
        stream,
        _device: device,
        clocks,
        no_signal_after,
    };
    Ok((
        buffers,
        Opened {
            choice,
            format: picture,
        },
    ))
}

/// A factory for the loss policy that (re)opens `dev` at the requested grid position; with
/// `timecode`, every (re)opened capture reports its buffers' timecode to it.
pub fn factory(
    dev: VideoDevice,
    want: Want,
    clocks: Arc<dyn Clocks>,
    no_signal_after: Duration,
    counters: Arc<InputCounters>,
    timecode: Option<V4l2TimecodeTap>,
) -> crate::capture::loss::VideoFactory {
    crate::capture::loss::VideoFactory::new(move |at| {
        // The v4l crate panics on a few driver answers it does not expect (unknown colour
        // space codes); a broken driver must cost a reopen, not the channel.
        let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            open_video(
                &dev,
                &want,
                at,
                clocks.clone(),
                no_signal_after,
                counters.clone(),
                timecode.clone(),
            )
        }))
        .map_err(|_| CaptureError::Open {
            input: dev.input.clone(),
            reason: format!(
                "{}: the driver answered something unexpected",
                dev.path.display()
            ),
        })?;
        let (src, _) = opened?;
        Ok(Box::new(src) as Box<dyn VideoSource>)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probing_a_missing_node_says_so() {
        let e = probe(Path::new("/dev/smoothcast-test-no-such-video")).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("no such device"), "{msg}");
    }

    #[test]
    fn probing_a_non_device_file_fails_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("video0");
        std::fs::write(&f, b"not a device").unwrap();
        assert!(probe(&f).is_err());
    }
}
