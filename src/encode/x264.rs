//! A small safe wrapper over libx264 (through `x264-sys`) for one rung of the ladder.
//!
//! The wrapper exists because the grid rules must hold exactly: closed GOPs, an IDR at every
//! frame the caller forces (fragment boundaries) and nowhere else (scene-cut off), AVCC length
//! prefixes, SPS/PPS only out of band, and `i_pts` equal to the absolute frame index.
//!
//! Input pictures are handed to x264 without copying: x264 copies the planes into its own
//! frame inside `x264_encoder_encode`, so pointing the input picture at the caller's buffer for
//! the duration of that call is sound.

use super::{AvcConfig, EncodeError, EncodedPicture};
use crate::capture::{i420_size, VideoFrame};
use crate::profile::plan::RungPlan;
use crate::time::{FrameIndex, Rate};
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::mem::MaybeUninit;
use std::ptr::{self, NonNull};
use std::sync::Mutex;
use x264_sys as sys;

extern "C" {
    // From the C library every Rust binary on Linux links; formats x264's log messages.
    fn vsnprintf(
        buf: *mut c_char,
        size: usize,
        fmt: *const c_char,
        ap: *mut sys::__va_list_tag,
    ) -> c_int;
}

// x264.h (build 164) defines its name lists as `static` arrays in the header, so they are not
// symbols of the library; these copies must follow the header.
/// x264 preset names (`x264_preset_names`).
pub const PRESETS: &[&str] = &[
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
];
/// x264 tune names (`x264_tune_names`): the six "psy" tunes first, then the others.
pub const TUNES: &[&str] = &[
    "film",
    "animation",
    "grain",
    "stillimage",
    "psnr",
    "ssim",
    "fastdecode",
    "zerolatency",
];
/// H.264 profiles x264 can apply (`x264_profile_names`).
const PROFILES: &[&str] = &["baseline", "main", "high", "high10", "high422", "high444"];

/// Consecutive empty `x264_encoder_encode` calls tolerated while flushing.
const MAX_IDLE_FLUSH_CALLS: u32 = 1000;

/// Where x264 log lines go: the track they concern and the last error, which becomes the reason
/// of a setup error (x264 explains a failed `x264_encoder_open` only through its log).
struct LogSink {
    track: String,
    last_error: Mutex<Option<String>>,
}

/// x264's `pf_log`: formats the message and forwards it to `tracing`. Called from x264's own
/// threads too, hence the mutex in [`LogSink`].
unsafe extern "C" fn x264_log(
    private: *mut c_void,
    level: c_int,
    fmt: *const c_char,
    ap: *mut sys::__va_list_tag,
) {
    if private.is_null() || fmt.is_null() {
        return;
    }
    // SAFETY: `private` is the `LogSink` boxed inside the encoder, which outlives the x264
    // handle (the handle is closed first in `Drop`).
    let sink = unsafe { &*(private as *const LogSink) };
    let mut buf = [0 as c_char; 512];
    // SAFETY: buf is writable for its full length; fmt/ap come from x264 as a matched pair.
    let n = unsafe { vsnprintf(buf.as_mut_ptr(), buf.len(), fmt, ap) };
    if n < 0 {
        return;
    }
    // SAFETY: vsnprintf always NUL-terminates within `buf.len()`.
    let msg = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy();
    let msg = msg.trim_end();
    let track = sink.track.as_str();
    match level {
        l if l <= sys::X264_LOG_ERROR as c_int => {
            tracing::error!(track, "x264: {msg}");
            if let Ok(mut last) = sink.last_error.lock() {
                *last = Some(msg.to_string());
            }
        }
        l if l == sys::X264_LOG_WARNING as c_int => tracing::warn!(track, "x264: {msg}"),
        l if l == sys::X264_LOG_INFO as c_int => tracing::info!(track, "x264: {msg}"),
        _ => tracing::debug!(track, "x264: {msg}"),
    }
}

/// An open x264 encoder for one rung. Owns the libx264 handle; dropping it closes the encoder.
pub struct X264Encoder {
    handle: NonNull<sys::x264_t>,
    /// Keeps the log context alive at a stable address for x264's `p_log_private`.
    log: Box<LogSink>,
    config: AvcConfig,
    /// Reused output picture (x264 fills it on every call).
    pic_out: sys::x264_picture_t,
}

// SAFETY: an x264_t may be used from any thread as long as calls are not concurrent; every call
// goes through `&mut self`. x264's internal threads are its own business.
unsafe impl Send for X264Encoder {}

impl std::fmt::Debug for X264Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("X264Encoder")
            .field("track", &self.log.track)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// An `x264_param_t` that frees the strings `x264_param_parse` allocated when dropped.
struct Param(sys::x264_param_t);

impl Drop for Param {
    fn drop(&mut self) {
        // SAFETY: the param was initialised by x264_param_default_preset.
        unsafe { sys::x264_param_cleanup(&mut self.0) };
    }
}

impl X264Encoder {
    /// Opens an encoder for `rung` at frame rate `rate` with GOP length `gop` frames.
    ///
    /// Settings, in order: preset/tune, then the grid rules (fps = `rate`, constant frame rate
    /// so `i_pts` counts frames, I420 at the rung size, keyint = min-keyint = `gop`, scene-cut
    /// off, closed GOP, `rung.bframes`, AVCC output, no repeated headers, no AUD, ABR bitrate
    /// with VBV from the rung, threads, BT.709 limited-range VUI), the level if set, then
    /// `rung.x264_params`, then the H.264 profile. A rejected key or value gives
    /// [`EncodeError::Setup`] naming it. `track` names the track in errors and logs. Settings
    /// that would break the fragment grid (keyint ≠ `gop`, scene-cut, open GOP, Annex-B,
    /// in-band headers, interlacing) are rejected after x264 has validated them.
    ///
    /// Output is bit-exact for the same input and settings with `threads = 1`. With frame
    /// threads and VBV, x264's rate control reads the in-progress size estimates of the other
    /// threads, so bytes (never the GOP structure or timestamps) may vary from run to run.
    pub fn new(
        track: &str,
        rung: &RungPlan,
        rate: Rate,
        gop: u64,
    ) -> Result<X264Encoder, EncodeError> {
        let setup = |reason: String| EncodeError::Setup {
            track: track.to_string(),
            reason,
        };
        let width = c_int::try_from(rung.width)
            .map_err(|_| setup(format!("width {} out of range", rung.width)))?;
        let height = c_int::try_from(rung.height)
            .map_err(|_| setup(format!("height {} out of range", rung.height)))?;
        if gop == 0 {
            return Err(setup("GOP length must be at least one frame".into()));
        }
        // Checked here first: on a bad name x264 prints to stderr before our log callback can
        // be installed.
        let (presets, tunes, profiles) = (PRESETS, TUNES, PROFILES);
        if !presets.contains(&rung.preset.as_str()) {
            return Err(setup(format!(
                "unknown x264 preset {:?} (one of {})",
                rung.preset,
                presets.join(", ")
            )));
        }
        if let Some(tune) = &rung.tune {
            // x264 accepts several tunes joined by , . / - or +.
            if let Some(bad) = tune
                .split([',', '.', '/', '-', '+'])
                .find(|t| !tunes.contains(t))
            {
                return Err(setup(format!(
                    "unknown x264 tune {bad:?} (one of {})",
                    tunes.join(", ")
                )));
            }
        }
        if !profiles.contains(&rung.profile.as_str()) {
            return Err(setup(format!(
                "unknown H.264 profile {:?} (one of {})",
                rung.profile,
                profiles.join(", ")
            )));
        }
        let preset = cstring(&rung.preset).map_err(|_| setup("preset contains NUL".into()))?;
        let tune = match &rung.tune {
            Some(t) => Some(cstring(t).map_err(|_| setup("tune contains NUL".into()))?),
            None => None,
        };

        let mut raw = MaybeUninit::<sys::x264_param_t>::zeroed();
        // SAFETY: x264_param_default_preset fully initialises the struct (it starts with
        // x264_param_default); zeroed memory is a valid starting point for the bindgen type.
        let rc = unsafe {
            sys::x264_param_default_preset(
                raw.as_mut_ptr(),
                preset.as_ptr(),
                tune.as_ref().map_or(ptr::null(), |t| t.as_ptr()),
            )
        };
        // SAFETY: initialised above whatever rc says (x264_param_default runs first).
        let mut param = Param(unsafe { raw.assume_init() });
        if rc < 0 {
            return Err(setup(format!(
                "unknown x264 preset {:?} or tune {:?}",
                rung.preset, rung.tune
            )));
        }

        let log = Box::new(LogSink {
            track: track.to_string(),
            last_error: Mutex::new(None),
        });
        let p = &mut param.0;
        p.pf_log = Some(x264_log);
        p.p_log_private = &*log as *const LogSink as *mut c_void;
        // Per-encode statistics at info level would flood the journal; warnings still show.
        p.i_log_level = sys::X264_LOG_WARNING as c_int;
        p.i_width = width;
        p.i_height = height;
        p.i_csp = sys::X264_CSP_I420 as c_int;

        let threads = if rung.threads == 0 {
            "auto".to_string()
        } else {
            rung.threads.to_string()
        };
        let mut settings: Vec<(&str, String)> = vec![
            ("fps", format!("{}/{}", rate.num(), rate.den())),
            // Constant frame rate: x264 then derives its timebase from fps (den/num), so one
            // tick of i_pts is one frame and i_pts can be the absolute frame index.
            ("force-cfr", "1".into()),
            ("keyint", gop.to_string()),
            ("min-keyint", gop.to_string()),
            ("scenecut", "0".into()),
            ("open-gop", "0".into()),
            ("bframes", rung.bframes.to_string()),
            ("annexb", "0".into()),
            ("repeat-headers", "0".into()),
            ("aud", "0".into()),
            ("bitrate", rung.bitrate_kbps.to_string()),
            ("threads", threads),
            ("colorprim", "bt709".into()),
            ("transfer", "bt709".into()),
            ("colormatrix", "bt709".into()),
            ("fullrange", "off".into()),
        ];
        if rung.max_bitrate_kbps > 0 {
            settings.push(("vbv-maxrate", rung.max_bitrate_kbps.to_string()));
        }
        if rung.buffer_kbit > 0 {
            settings.push(("vbv-bufsize", rung.buffer_kbit.to_string()));
        }
        if let Some(level) = &rung.level {
            settings.push(("level", level.clone()));
        }
        let extra = rung
            .x264_params
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()));
        for (key, value) in settings.into_iter().chain(extra) {
            param_parse(p, key, &value).map_err(setup)?;
        }
        p.i_timebase_num = rate.den();
        p.i_timebase_den = rate.num();

        let profile = cstring(&rung.profile).map_err(|_| setup("profile contains NUL".into()))?;
        // SAFETY: p is an initialised param; profile is a valid C string.
        if unsafe { sys::x264_param_apply_profile(p, profile.as_ptr()) } < 0 {
            return Err(setup(format!(
                "H.264 profile {:?} rejected by x264 (unknown, or incompatible with the other settings)",
                rung.profile
            )));
        }

        // SAFETY: p is a fully initialised param; x264 copies it (and its strings).
        let handle = NonNull::new(unsafe { sys::x264_encoder_open(p) }).ok_or_else(|| {
            let why = log
                .last_error
                .lock()
                .ok()
                .and_then(|mut e| e.take())
                .unwrap_or_else(|| "x264_encoder_open failed".into());
            setup(why)
        })?;
        drop(param);

        let mut enc = X264Encoder {
            handle,
            log,
            config: AvcConfig {
                sps: Vec::new(),
                pps: Vec::new(),
                width: rung.width,
                height: rung.height,
                reorder_frames: 0,
            },
            // SAFETY: a zeroed x264_picture_t is valid (plain integers and null pointers).
            pic_out: unsafe { MaybeUninit::zeroed().assume_init() },
        };
        enc.check_effective(gop).map_err(setup)?;
        enc.read_headers().map_err(setup)?;
        Ok(enc)
    }

    /// Decoder configuration: SPS/PPS, coded size and reorder depth.
    pub fn config(&self) -> &AvcConfig {
        &self.config
    }

    /// The parameters x264 actually runs with, after its own validation and clamping.
    fn effective(&self) -> sys::x264_param_t {
        let mut p = MaybeUninit::<sys::x264_param_t>::zeroed();
        // SAFETY: the handle is open; x264_encoder_parameters copies the whole struct (it sets
        // `opaque` to NULL, so the copy owns nothing and needs no cleanup).
        unsafe {
            sys::x264_encoder_parameters(self.handle.as_ptr(), p.as_mut_ptr());
            p.assume_init()
        }
    }

    /// Rejects settings (typically from `x264_params`) that would break the fragment grid, and
    /// derives the reorder depth from what is in effect.
    fn check_effective(&mut self, gop: u64) -> Result<(), String> {
        let p = self.effective();
        let broken = |what: &str| Err(format!("x264 settings break the fragment grid: {what}"));
        if i64::from(p.i_keyint_max) != i64::try_from(gop).unwrap_or(i64::MAX) {
            return broken(&format!("keyint is {} instead of {gop}", p.i_keyint_max));
        }
        if p.i_scenecut_threshold != 0 {
            return broken("scenecut is on");
        }
        if p.b_open_gop != 0 {
            return broken("open-gop is on");
        }
        if p.b_annexb != 0 || p.b_repeat_headers != 0 || p.b_vfr_input != 0 || p.b_aud != 0 {
            return broken("annexb, repeat-headers, aud or variable frame rate input is on");
        }
        if p.b_interlaced != 0 || p.b_fake_interlaced != 0 || p.b_pulldown != 0 {
            return broken("interlaced coding or pulldown is on");
        }
        // Same rule as x264's own SPS `num_reorder_frames`.
        self.config.reorder_frames = if p.i_bframe_pyramid != 0 {
            2
        } else if p.i_bframe > 0 {
            1
        } else {
            0
        };
        Ok(())
    }

    fn read_headers(&mut self) -> Result<(), String> {
        let mut nals: *mut sys::x264_nal_t = ptr::null_mut();
        let mut count: c_int = 0;
        // SAFETY: the handle is open; x264 returns an array of `count` NALs it owns.
        let rc = unsafe { sys::x264_encoder_headers(self.handle.as_ptr(), &mut nals, &mut count) };
        if rc < 0 || nals.is_null() {
            return Err("x264_encoder_headers failed".into());
        }
        // SAFETY: see above; valid until the next call into the encoder.
        let nals = unsafe { std::slice::from_raw_parts(nals, usize::try_from(count).unwrap_or(0)) };
        for nal in nals {
            // SAFETY: each payload is i_payload bytes owned by x264.
            let bytes = unsafe { nal_bytes(nal) };
            // AVCC mode: each NAL starts with a 4-byte length instead of a start code.
            let Some(body) = bytes.get(4..) else { continue };
            match nal.i_type {
                t if t == sys::nal_unit_type_e_NAL_SPS as c_int => self.config.sps = body.to_vec(),
                t if t == sys::nal_unit_type_e_NAL_PPS as c_int => self.config.pps = body.to_vec(),
                // The SEI (x264 version and options string) is not part of the config; it is
                // logged so the settings in effect can be compared (benches/vs-ffmpeg.sh).
                _ => {
                    if let Some(opts) = x264_options_string(body) {
                        tracing::debug!(track = %self.log.track, "x264 options: {opts}");
                    }
                }
            }
        }
        if self.config.sps.is_empty() || self.config.pps.is_empty() {
            return Err("x264 produced no SPS/PPS".into());
        }
        Ok(())
    }

    /// Encodes one picture. `frame` must have the encoder's size; its planes are read in place.
    /// `force_idr` makes it an IDR (the caller sets it at every fragment boundary). Pushes 0 or
    /// 1 coded pictures, in decode order, onto `out`.
    pub fn encode(
        &mut self,
        frame: &VideoFrame,
        force_idr: bool,
        out: &mut Vec<EncodedPicture>,
    ) -> Result<(), EncodeError> {
        let err = |reason: String| self.error(frame.index.to_string(), reason);
        if (frame.width, frame.height) != (self.config.width, self.config.height) {
            return Err(err(format!(
                "picture is {}x{}, encoder expects {}x{}",
                frame.width, frame.height, self.config.width, self.config.height
            )));
        }
        if frame.data.len() < i420_size(frame.width, frame.height) {
            return Err(err(format!(
                "picture buffer holds {} bytes, I420 {}x{} needs {}",
                frame.data.len(),
                frame.width,
                frame.height,
                i420_size(frame.width, frame.height)
            )));
        }
        let pts = i64::try_from(frame.index.0)
            .map_err(|_| err("frame index exceeds x264's 64-bit signed pts".into()))?;

        let mut pic_in = MaybeUninit::<sys::x264_picture_t>::zeroed();
        // SAFETY: x264_picture_init fully initialises the struct.
        let mut pic_in = unsafe {
            sys::x264_picture_init(pic_in.as_mut_ptr());
            pic_in.assume_init()
        };
        pic_in.i_type = if force_idr {
            sys::X264_TYPE_IDR
        } else {
            sys::X264_TYPE_AUTO
        } as c_int;
        pic_in.i_pts = pts;
        pic_in.img.i_csp = sys::X264_CSP_I420 as c_int;
        pic_in.img.i_plane = 3;
        let base = frame.data.as_ptr();
        for (i, (offset, stride, _rows)) in frame.planes().into_iter().enumerate() {
            // Strides of a picture whose size fits c_int also fit c_int.
            pic_in.img.i_stride[i] = stride as c_int;
            // x264 only reads input planes (it copies them during the call), so handing it a
            // pointer derived from shared data is sound. Offsets are in bounds (length checked).
            pic_in.img.plane[i] = base.wrapping_add(offset).cast_mut();
        }
        self.call_encode(Some(&mut pic_in), out)
            .map_err(|reason| self.error(frame.index.to_string(), reason))
    }

    /// Drains the pictures x264 still holds (lookahead, B-frames, threads) onto `out`.
    /// Call once at the end of the stream.
    pub fn flush(&mut self, out: &mut Vec<EncodedPicture>) -> Result<(), EncodeError> {
        // x264 may return nothing on some calls while frame threads finish, so only a long run
        // of empty calls (x264 stuck) ends the loop early.
        let mut idle = 0;
        // SAFETY: the handle is open.
        while unsafe { sys::x264_encoder_delayed_frames(self.handle.as_ptr()) } > 0 {
            let before = out.len();
            self.call_encode(None, out)
                .map_err(|reason| self.error("flush".into(), reason))?;
            idle = if out.len() == before { idle + 1 } else { 0 };
            if idle > MAX_IDLE_FLUSH_CALLS {
                return Err(self.error(
                    "flush".into(),
                    "x264 holds delayed frames but returns none".into(),
                ));
            }
        }
        Ok(())
    }

    fn error(&self, at: String, reason: String) -> EncodeError {
        EncodeError::Encode {
            track: self.log.track.clone(),
            at,
            reason,
        }
    }

    fn call_encode(
        &mut self,
        pic_in: Option<&mut sys::x264_picture_t>,
        out: &mut Vec<EncodedPicture>,
    ) -> Result<(), String> {
        let mut nals: *mut sys::x264_nal_t = ptr::null_mut();
        let mut count: c_int = 0;
        let pic_in = pic_in.map_or(ptr::null_mut(), |p| p as *mut _);
        // SAFETY: the handle is open; pic_in is null or a valid picture whose planes stay alive
        // (borrowed from the caller's frame) for the duration of this call; pic_out is owned.
        let size = unsafe {
            sys::x264_encoder_encode(
                self.handle.as_ptr(),
                &mut nals,
                &mut count,
                pic_in,
                &mut self.pic_out,
            )
        };
        if size < 0 {
            let why = self
                .log
                .last_error
                .lock()
                .ok()
                .and_then(|mut e| e.take())
                .unwrap_or_else(|| "x264_encoder_encode failed".into());
            return Err(why);
        }
        if size == 0 || nals.is_null() || count <= 0 {
            return Ok(());
        }
        // SAFETY: x264 guarantees the payloads of one call's NALs are contiguous in memory, in
        // order, `size` bytes in total, valid until the next call into the encoder.
        let data = unsafe {
            std::slice::from_raw_parts((*nals).p_payload, usize::try_from(size).unwrap_or(0))
        }
        .to_vec();
        let pic = &self.pic_out;
        let pts = u64::try_from(pic.i_pts)
            .map_err(|_| format!("x264 returned a negative pts {}", pic.i_pts))?;
        out.push(EncodedPicture {
            pts: FrameIndex(pts),
            keyframe: pic.b_keyframe != 0 || pic.i_type == sys::X264_TYPE_IDR as c_int,
            data,
        });
        Ok(())
    }
}

impl Drop for X264Encoder {
    fn drop(&mut self) {
        // SAFETY: the handle is open and closed exactly once; x264 joins its threads here, so
        // no log callback can run after this (the LogSink is dropped afterwards).
        unsafe { sys::x264_encoder_close(self.handle.as_ptr()) };
    }
}

/// x264 threads for every rung of a ladder on a box with `cores` CPUs: a rung's own `threads`
/// when set, otherwise (0 = automatic) a share of the cores proportional to its pixel count,
/// at least one. A single automatic rung keeps x264's own choice (1.5 × cores frame threads).
///
/// Why not x264's automatic choice for every rung: each rung already runs in its own thread, so
/// a ladder is parallel across rungs; x264's `1.5 × cores` frame threads *per rung* multiply
/// the threads (9 for three rungs on 2 cores), and every frame thread costs frames of memory,
/// a frame of latency and synchronisation CPU without adding parallelism the cores can use.
pub fn ladder_threads(rungs: &[RungPlan], cores: usize) -> Vec<u32> {
    let auto = rungs.iter().filter(|r| r.threads == 0).count();
    let pixels = |r: &RungPlan| u64::from(r.width) * u64::from(r.height);
    let total: u64 = rungs.iter().map(pixels).sum::<u64>().max(1);
    let cores = cores.max(1) as u64;
    rungs
        .iter()
        .map(|r| match r.threads {
            0 if auto == 1 && rungs.len() == 1 => 0,
            // round(cores × share), at least 1.
            0 => u32::try_from(((2 * cores * pixels(r) + total) / (2 * total)).max(1)).unwrap_or(1),
            t => t,
        })
        .collect()
}

/// Turns transparent huge pages off for the whole process (`prctl(PR_SET_THP_DISABLE)`);
/// returns whether the kernel accepted it. Call it before opening encoders.
///
/// Why: x264 asks for huge pages (`madvise(MADV_HUGEPAGE)`) on each of its buffers of 1.75 MB
/// or more, among them its worst-case bitstream and NAL buffers (4 × the picture size and
/// 1.5 × that) of which a live encode touches a few kilobytes: with huge pages the first
/// touched byte makes 2 MB resident. On the benchmark ladder that is ~6.5 MB of peak RSS for
/// nothing (docs/performance.md). Output is unchanged; x264's frames are touched whole anyway.
pub fn disable_transparent_huge_pages() -> bool {
    extern "C" {
        fn prctl(option: c_int, ...) -> c_int;
    }
    const PR_SET_THP_DISABLE: c_int = 41;
    // SAFETY: prctl with PR_SET_THP_DISABLE takes four unsigned long arguments and only sets
    // a flag of the calling process.
    let rc = unsafe {
        prctl(
            PR_SET_THP_DISABLE,
            1 as std::ffi::c_ulong,
            0 as std::ffi::c_ulong,
            0 as std::ffi::c_ulong,
            0 as std::ffi::c_ulong,
        )
    };
    if rc != 0 {
        tracing::debug!("prctl(PR_SET_THP_DISABLE) refused; x264 may use transparent huge pages");
    }
    rc == 0
}

fn cstring(s: &str) -> Result<CString, std::ffi::NulError> {
    CString::new(s)
}

/// `x264_param_parse` with an error naming the key.
fn param_parse(p: &mut sys::x264_param_t, key: &str, value: &str) -> Result<(), String> {
    let k = cstring(key).map_err(|_| format!("x264 param {key:?}: name contains NUL"))?;
    let v = cstring(value).map_err(|_| format!("x264 param {key:?}: value contains NUL"))?;
    // SAFETY: p is initialised; k and v are valid C strings.
    match unsafe { sys::x264_param_parse(p, k.as_ptr(), v.as_ptr()) } {
        0 => Ok(()),
        sys::X264_PARAM_BAD_NAME => Err(format!("unknown x264 param {key:?}")),
        _ => Err(format!("x264 param {key:?}: bad value {value:?}")),
    }
}

/// The options string x264 writes into its version SEI (`… - options: cabac=1 ref=1 …`).
fn x264_options_string(sei: &[u8]) -> Option<String> {
    const MARK: &[u8] = b"options: ";
    let at = sei.windows(MARK.len()).position(|w| w == MARK)? + MARK.len();
    let rest = &sei[at..];
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    Some(String::from_utf8_lossy(&rest[..end]).into_owned())
}

/// The bytes of one NAL as x264 returned them (length prefix included).
///
/// # Safety
/// `nal` must come from the last x264 call on a live encoder.
unsafe fn nal_bytes(nal: &sys::x264_nal_t) -> &[u8] {
    match usize::try_from(nal.i_payload) {
        Ok(len) if !nal.p_payload.is_null() => unsafe {
            std::slice::from_raw_parts(nal.p_payload, len)
        },
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rung(width: u32, height: u32, threads: u32) -> RungPlan {
        RungPlan {
            name: format!("{height}p"),
            track_id: 1,
            track_name: "video".into(),
            width,
            height,
            bitrate_kbps: 1000,
            max_bitrate_kbps: 1000,
            buffer_kbit: 2000,
            preset: "veryfast".into(),
            tune: None,
            profile: "high".into(),
            level: None,
            bframes: 2,
            threads,
            x264_params: Vec::new(),
        }
    }

    #[test]
    fn three_rung_ladder_on_two_cores_gets_one_thread_per_rung() {
        let ladder = [rung(1280, 720, 0), rung(854, 480, 0), rung(640, 360, 0)];
        assert_eq!(ladder_threads(&ladder, 2), vec![1, 1, 1]);
        // On 8 cores the shares are 59 %, 26 %, 15 % of the pixels.
        assert_eq!(ladder_threads(&ladder, 8), vec![5, 2, 1]);
    }

    #[test]
    fn explicit_threads_are_kept_and_a_single_rung_is_left_to_x264() {
        let ladder = [rung(1280, 720, 3), rung(640, 360, 0)];
        assert_eq!(ladder_threads(&ladder, 2), vec![3, 1]);
        assert_eq!(ladder_threads(&[rung(1920, 1080, 0)], 2), vec![0]);
    }
}
