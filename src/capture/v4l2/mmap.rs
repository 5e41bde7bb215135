//! Our own V4L2 mmap capture stream (`VIDIOC_REQBUFS` / `QUERYBUF` / `mmap` / `QBUF` /
//! `STREAMON` / `poll` / `DQBUF` / `STREAMOFF` / `munmap`).
//!
//! The `v4l` crate's `io::mmap::Stream` drops `v4l2_buffer.timecode` when it dequeues, so the
//! `v4l2` timecode source could never see the driver's timecode; this stream hands out every
//! field the capture path uses, timecode included. It uses the `v4l` crate only for the
//! kernel's struct layouts (`v4l_sys`), the ioctl numbers and its raw `ioctl`/`mmap` wrappers.
//!
//! **Untested here**: the build machines have no capture card and no v4l2loopback, so the ioctl
//! path itself only runs on a box with a device. Everything it feeds (timecode validation,
//! grid placement, conversion) is tested on recorded traces and buffers.

use super::timecode::{BufferTimecode, BUF_FLAG_TIMECODE};
use std::io;
use std::os::raw::c_void;
use std::sync::Arc;
use std::time::Duration;
use v4l::device::Handle;
use v4l::v4l2::vidioc;
use v4l::v4l_sys;

/// What the driver said about one dequeued buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferMeta {
    /// Bytes the driver filled (already clamped to the mapping's length).
    pub bytesused: u32,
    /// `v4l2_buffer.flags` (`V4L2_BUF_FLAG_*`).
    pub flags: u32,
    /// The driver's sequence number.
    pub sequence: u32,
    /// `v4l2_buffer.timestamp` (the clock the flags name, usually the kernel's
    /// `CLOCK_MONOTONIC`; negative stamps read as zero).
    pub timestamp: Duration,
    /// The timecode field, when the driver set `V4L2_BUF_FLAG_TIMECODE` (unvalidated).
    pub timecode: Option<BufferTimecode>,
}

/// One mapped driver buffer.
#[derive(Debug)]
struct Mapping {
    ptr: *mut u8,
    len: usize,
}

/// An mmap streaming capture on one open device (see the module docs). The first
/// [`MmapStream::next_buffer`] queues every buffer and starts streaming; each later call gives the
/// previous buffer back to the driver before waiting for the next one. Dropping the stream
/// stops streaming, unmaps the buffers and frees them in the driver.
pub struct MmapStream {
    handle: Arc<Handle>,
    buffers: Vec<Mapping>,
    /// The buffer lent out by the last `next` (requeued by the following one).
    lent: Option<u32>,
    streaming: bool,
    /// Poll timeout in milliseconds.
    timeout_ms: i32,
}

impl std::fmt::Debug for MmapStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MmapStream")
            .field("fd", &self.handle.fd())
            .field("buffers", &self.buffers.len())
            .field("streaming", &self.streaming)
            .finish_non_exhaustive()
    }
}

// SAFETY: the mappings are owned by this value alone (nothing else holds their pointers; the
// slices lent out borrow `self`), so moving the stream to another thread moves sole ownership.
unsafe impl Send for MmapStream {}

const CAPTURE: u32 = v4l_sys::v4l2_buf_type_V4L2_BUF_TYPE_VIDEO_CAPTURE;
const MMAP: u32 = v4l_sys::v4l2_memory_V4L2_MEMORY_MMAP;

/// `ioctl(fd, request, arg)` on a plain-old-data argument.
///
/// # Safety
/// `request` must be an ioctl whose argument is exactly one `T`.
unsafe fn ioctl<T>(handle: &Handle, request: vidioc::_IOC_TYPE, arg: &mut T) -> io::Result<()> {
    // SAFETY: the caller guarantees the kernel reads/writes exactly one `T` through the
    // pointer, which is valid and exclusive for the call.
    unsafe { v4l::v4l2::ioctl(handle.fd(), request, arg as *mut T as *mut c_void) }
}

fn buffer_desc(index: u32) -> v4l_sys::v4l2_buffer {
    // SAFETY: v4l2_buffer is plain old data (integers, a timeval, a union of an integer and
    // pointers); all-zero is a valid value and what the kernel expects in unused fields.
    let mut b: v4l_sys::v4l2_buffer = unsafe { std::mem::zeroed() };
    b.index = index;
    b.type_ = CAPTURE;
    b.memory = MMAP;
    b
}

impl MmapStream {
    /// Asks the driver for `count` mmap buffers (it may grant more or fewer) and maps them.
    /// `timeout`: how long [`MmapStream::next_buffer`] waits for a buffer before failing with
    /// [`io::ErrorKind::TimedOut`].
    pub fn new(handle: Arc<Handle>, count: u32, timeout: Duration) -> io::Result<MmapStream> {
        let mut stream = MmapStream {
            handle,
            buffers: Vec::new(),
            lent: None,
            streaming: false,
            timeout_ms: i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX),
        };
        // SAFETY: v4l2_requestbuffers is plain old data; zero is valid.
        let mut req: v4l_sys::v4l2_requestbuffers = unsafe { std::mem::zeroed() };
        req.count = count;
        req.type_ = CAPTURE;
        req.memory = MMAP;
        // SAFETY: VIDIOC_REQBUFS reads and writes one v4l2_requestbuffers.
        unsafe { ioctl(&stream.handle, vidioc::VIDIOC_REQBUFS, &mut req) }?;
        if req.count == 0 {
            return Err(io::Error::other("the driver granted no buffers"));
        }
        // A driver answering absurdly must not make us map without bound.
        let granted = req.count.min(64);
        for index in 0..granted {
            let mut b = buffer_desc(index);
            // SAFETY: VIDIOC_QUERYBUF reads and writes one v4l2_buffer.
            unsafe { ioctl(&stream.handle, vidioc::VIDIOC_QUERYBUF, &mut b) }?;
            // SAFETY: for V4L2_MEMORY_MMAP the kernel sets the union's `offset` member.
            let offset = unsafe { b.m.offset };
            let len = b.length as usize;
            if len == 0 {
                return Err(io::Error::other(format!("buffer {index} has length 0")));
            }
            // SAFETY: maps `len` bytes of the device at the offset the driver gave for this
            // buffer; a bad offset/length fails with an error rather than mapping anything.
            // The mapping is unmapped exactly once, in Drop (pushed before anything else can
            // fail).
            let ptr = unsafe {
                v4l::v4l2::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    stream.handle.fd(),
                    libc::off_t::from(offset),
                )
            }?;
            if ptr == libc::MAP_FAILED || ptr.is_null() {
                return Err(io::Error::other(format!("mmap of buffer {index} failed")));
            }
            stream.buffers.push(Mapping {
                ptr: ptr.cast(),
                len,
            });
        }
        Ok(stream)
    }

    /// Buffers mapped.
    pub fn len(&self) -> usize {
        self.buffers.len()
    }

    /// No buffers mapped (never true for a stream [`MmapStream::new`] returned).
    pub fn is_empty(&self) -> bool {
        self.buffers.is_empty()
    }

    fn queue(&self, index: u32) -> io::Result<()> {
        let mut b = buffer_desc(index);
        // SAFETY: VIDIOC_QBUF reads and writes one v4l2_buffer.
        unsafe { ioctl(&self.handle, vidioc::VIDIOC_QBUF, &mut b) }
    }

    fn start(&mut self) -> io::Result<()> {
        for index in 0..self.buffers.len() {
            self.queue(u32::try_from(index).unwrap_or(u32::MAX))?;
        }
        let mut t = CAPTURE;
        // SAFETY: VIDIOC_STREAMON reads one int (the buffer type).
        unsafe { ioctl(&self.handle, vidioc::VIDIOC_STREAMON, &mut t) }?;
        self.streaming = true;
        Ok(())
    }

    /// Waits until a buffer is ready (or the timeout passes: `false`).
    fn wait(&self) -> io::Result<bool> {
        loop {
            let mut fds = [libc::pollfd {
                fd: self.handle.fd(),
                events: libc::POLLIN,
                revents: 0,
            }];
            // SAFETY: poll reads/writes the one pollfd in `fds`.
            let r = unsafe { libc::poll(fds.as_mut_ptr(), 1, self.timeout_ms) };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            return Ok(r > 0);
        }
    }

    /// The next filled buffer: its bytes (`bytesused` of them) and what the driver said about
    /// it. The bytes stay valid until the next call (which gives the buffer back).
    pub fn next_buffer(&mut self) -> io::Result<(&[u8], BufferMeta)> {
        if !self.streaming {
            self.start()?;
        } else if let Some(index) = self.lent.take() {
            self.queue(index)?;
        }
        if !self.wait()? {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no buffer within the timeout",
            ));
        }
        let mut b = buffer_desc(0);
        loop {
            // SAFETY: VIDIOC_DQBUF reads and writes one v4l2_buffer.
            match unsafe { ioctl(&self.handle, vidioc::VIDIOC_DQBUF, &mut b) } {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => break r,
            }
        }?;
        let Some(map) = self.buffers.get(b.index as usize) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the driver returned buffer {} of {}", b.index, self.len()),
            ));
        };
        self.lent = Some(b.index);
        let used = (b.bytesused as usize).min(map.len);
        // SAFETY: `map` is a live mapping of `map.len` bytes (unmapped only in Drop) and
        // `used <= map.len`. The driver does not write a dequeued buffer until it is queued
        // again, which only happens in the next call, after this borrow of `self` has ended.
        let data = unsafe { std::slice::from_raw_parts(map.ptr.cast_const(), used) };
        let timestamp = Duration::new(
            u64::try_from(b.timestamp.tv_sec).unwrap_or(0),
            u32::try_from(b.timestamp.tv_usec)
                .unwrap_or(0)
                .min(999_999)
                .saturating_mul(1000),
        );
        let timecode = (b.flags & BUF_FLAG_TIMECODE != 0).then_some(BufferTimecode {
            kind: b.timecode.type_,
            flags: b.timecode.flags,
            frames: b.timecode.frames,
            seconds: b.timecode.seconds,
            minutes: b.timecode.minutes,
            hours: b.timecode.hours,
            userbits: b.timecode.userbits,
        });
        Ok((
            data,
            BufferMeta {
                bytesused: u32::try_from(used).unwrap_or(u32::MAX),
                flags: b.flags,
                sequence: b.sequence,
                timestamp,
                timecode,
            },
        ))
    }
}

impl Drop for MmapStream {
    fn drop(&mut self) {
        // Errors here (an unplugged device answers ENODEV) are logged, never raised: the
        // stream is going away either way.
        if self.streaming {
            let mut t = CAPTURE;
            // SAFETY: VIDIOC_STREAMOFF reads one int (the buffer type).
            if let Err(e) = unsafe { ioctl(&self.handle, vidioc::VIDIOC_STREAMOFF, &mut t) } {
                tracing::debug!(error = %e, "VIDIOC_STREAMOFF failed");
            }
        }
        for m in self.buffers.drain(..) {
            // SAFETY: `m` was mapped with exactly this pointer and length in `new` and is
            // unmapped once (drained); no slice of it outlives `&mut self`.
            if let Err(e) = unsafe { v4l::v4l2::munmap(m.ptr.cast(), m.len) } {
                tracing::debug!(error = %e, "munmap of a capture buffer failed");
            }
        }
        // SAFETY: v4l2_requestbuffers is plain old data; zero is valid.
        let mut req: v4l_sys::v4l2_requestbuffers = unsafe { std::mem::zeroed() };
        req.type_ = CAPTURE;
        req.memory = MMAP;
        // SAFETY: VIDIOC_REQBUFS reads and writes one v4l2_requestbuffers (count 0 frees).
        if let Err(e) = unsafe { ioctl(&self.handle, vidioc::VIDIOC_REQBUFS, &mut req) } {
            tracing::debug!(error = %e, "freeing the capture buffers failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_that_is_not_a_capture_device_fails_cleanly_and_drops_without_panicking() {
        // The closest thing to a device here: /dev/null answers every V4L2 ioctl with ENOTTY.
        // This exercises the error path and Drop, not streaming (no capture card here).
        let dev = v4l::Device::with_path("/dev/null").unwrap();
        let e = MmapStream::new(dev.handle(), 4, Duration::from_millis(10)).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOTTY), "{e}");
    }
}
