//! YUV4MPEG2 (`.y4m`) video read natively: 8-bit 4:2:0 pictures go from the file straight into
//! pooled picture buffers — one `read` per picture, no demuxer, no decoder, no second copy.
//!
//! Format (the `yuv4mpeg(5)` manual page of mjpegtools; FFmpeg's `libavformat/yuv4mpegdec.c`
//! reads the same): a stream header line `YUV4MPEG2` followed by space-separated parameters —
//! `W<width>`, `H<height>`, `F<num>:<den>` (frame rate), `I<p|t|b|m>` (interlacing), `A<n>:<d>`
//! (pixel aspect), `C<colour space>`, `X<extension>` — and `\n`; then, per picture, a line
//! `FRAME` (optionally with parameters) and the planes Y, Cb, Cr, tightly packed, chroma
//! `ceil(W/2) × ceil(H/2)` for 4:2:0 — exactly the crate's I420 layout ([`super::i420_planes`]).
//! Colour spaces read here: `420jpeg` (the default when `C` is absent), `420paldv`, `420mpeg2`,
//! `420` (chroma siting differs, the samples do not). Any other (4:2:2, 4:4:4, mono, high bit
//! depth) is left to the FFmpeg path of [`super::file`], which converts to I420.
//!
//! Timing is the one [`super::file::FileVideo`] applies to every file: picture `k` is at
//! `k × den/num` s (`F`; 25 fps when absent or `F0:0`, as FFmpeg), loops follow each other
//! without a gap, and grid slot `i` after the first shows the latest picture at or before its
//! time, `k = ⌊i × grid_den × num / (grid_num × den)⌋`. Skipped pictures are seeked over, a
//! repeated slot shares the buffer of the one before. A truncated last picture ends the pass
//! (the loop restarts from the first picture), as FFmpeg drops it.

use super::{
    i420_size, CaptureError, FrameOrigin, FramePool, Pacer, Pacing, VideoFrame, VideoSource,
};
use crate::time::{FrameIndex, Rate};
use std::fs::File;
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

/// The stream header's first bytes.
const MAGIC: &[u8] = b"YUV4MPEG2";
/// Longest stream or picture header line accepted (FFmpeg's limit is 256 for the stream one;
/// extensions (`X`) can make it longer).
const MAX_LINE: usize = 4096;
/// Largest picture side accepted: far above any broadcast format, small enough that a damaged
/// header cannot ask for gigabytes.
const MAX_SIDE: u32 = 16_384;

/// What a stream header says about the pictures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Y4mHeader {
    pub width: u32,
    pub height: u32,
    /// Pictures per second (`F`).
    pub rate: Rate,
    /// True for the 8-bit 4:2:0 colour spaces read natively.
    pub is_i420: bool,
}

/// Parses a stream header line (without its `\n`). Unknown parameters are ignored, as the
/// format asks; missing or invalid `W`/`H` is an error.
pub fn parse_header(line: &[u8]) -> Result<Y4mHeader, String> {
    let text =
        std::str::from_utf8(line).map_err(|_| "the stream header is not text".to_string())?;
    let mut words = text.split(' ');
    if words.next() != Some("YUV4MPEG2") {
        return Err("not a YUV4MPEG2 stream header".into());
    }
    let (mut width, mut height, mut rate, mut is_i420) = (None, None, None, true);
    for word in words.filter(|w| !w.is_empty()) {
        let (tag, value) = word.split_at(1);
        match tag {
            "W" => width = Some(parse_side(value, "width")?),
            "H" => height = Some(parse_side(value, "height")?),
            "F" => {
                let (n, d) = value
                    .split_once(':')
                    .ok_or_else(|| format!("frame rate 'F{value}' is not num:den"))?;
                let (n, d) = (n.parse::<u32>(), d.parse::<u32>());
                match (n, d) {
                    (Ok(n), Ok(d)) => rate = Rate::new(n, d),
                    _ => return Err(format!("frame rate 'F{value}' is not num:den")),
                }
            }
            "C" => is_i420 = matches!(value, "420jpeg" | "420paldv" | "420mpeg2" | "420"),
            _ => {}
        }
    }
    let width = width.ok_or("the stream header has no width (W)")?;
    let height = height.ok_or("the stream header has no height (H)")?;
    Ok(Y4mHeader {
        width,
        height,
        rate: rate.or_else(|| Rate::new(25, 1)).ok_or("no frame rate")?,
        is_i420,
    })
}

fn parse_side(value: &str, what: &str) -> Result<u32, String> {
    match value.parse::<u32>() {
        Ok(v) if (1..=MAX_SIDE).contains(&v) => Ok(v),
        _ => Err(format!("picture {what} '{value}' is not 1..={MAX_SIDE}")),
    }
}

/// Reads bytes up to and without the next `\n` into `line`. `Ok(false)` at a clean end of the
/// file before any byte; a line cut by the end of the file or longer than [`MAX_LINE`] is an
/// error (`ErrorKind::UnexpectedEof` / `InvalidData`).
fn read_line(file: &mut File, line: &mut Vec<u8>) -> std::io::Result<bool> {
    line.clear();
    let mut byte = [0u8; 1];
    loop {
        match file.read(&mut byte) {
            Ok(0) if line.is_empty() => return Ok(false),
            Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
            Ok(_) if byte[0] == b'\n' => return Ok(true),
            Ok(_) if line.len() >= MAX_LINE => {
                return Err(std::io::Error::new(
                    ErrorKind::InvalidData,
                    "header line too long",
                ))
            }
            Ok(_) => line.push(byte[0]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Video from a YUV4MPEG2 4:2:0 file, looped and re-timed onto the frame grid from `start` on
/// (see the module docs).
pub struct Y4mVideo {
    name: String,
    file: File,
    /// Offset of the first picture's `FRAME` line.
    data_start: u64,
    /// File length at open: a picture reaching past it is truncated.
    file_len: u64,
    header: Y4mHeader,
    frame_size: usize,
    /// Grid rate and the slot showing the file's first picture.
    rate: Rate,
    start: FrameIndex,
    next: FrameIndex,
    /// Index, counted over every loop, of the picture the file position is at.
    read: u64,
    /// Pictures read in the current pass (a pass without any means the file has none).
    in_pass: u64,
    /// The picture on screen and its index.
    current: Option<(u64, Arc<Vec<u8>>)>,
    line: Vec<u8>,
    pool: FramePool,
    pacer: Pacer,
}

impl std::fmt::Debug for Y4mVideo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Y4mVideo")
            .field("input", &self.name)
            .field("header", &self.header)
            .field("rate", &self.rate)
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl Y4mVideo {
    /// Opens `path` when it is a YUV4MPEG2 stream of a 4:2:0 colour space and reads its first
    /// picture (so a file without one fails here). `Ok(None)`: not such a file (another format,
    /// or a colour space this reader leaves to FFmpeg). Frame indices are frames since the Unix
    /// epoch at `rate`; slot `start` shows the first picture.
    pub fn open(
        path: &Path,
        rate: Rate,
        start: FrameIndex,
        pacing: &Pacing,
    ) -> Result<Option<Y4mVideo>, CaptureError> {
        let name = path.display().to_string();
        let open_err = |reason: String| CaptureError::Open {
            input: name.clone(),
            reason,
        };
        let mut file = File::open(path).map_err(|e| open_err(e.to_string()))?;
        let mut magic = [0u8; MAGIC.len()];
        match file.read_exact(&mut magic) {
            Ok(()) if magic == MAGIC => {}
            Ok(()) => return Ok(None),
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(open_err(e.to_string())),
        }
        let mut line = magic.to_vec();
        let mut rest = Vec::new();
        match read_line(&mut file, &mut rest) {
            Ok(true) => line.extend_from_slice(&rest),
            Ok(false) | Err(_) => {
                return Err(open_err("the YUV4MPEG2 stream header is cut short".into()))
            }
        }
        let header = parse_header(&line).map_err(|e| open_err(format!("YUV4MPEG2: {e}")))?;
        if !header.is_i420 {
            return Ok(None);
        }
        let data_start = file
            .stream_position()
            .map_err(|e| open_err(e.to_string()))?;
        let file_len = file.metadata().map_err(|e| open_err(e.to_string()))?.len();
        let frame_size = i420_size(header.width, header.height);
        let mut video = Y4mVideo {
            name: name.clone(),
            file,
            data_start,
            file_len,
            header,
            frame_size,
            rate,
            start,
            next: start,
            read: 0,
            in_pass: 0,
            current: None,
            line: Vec::new(),
            pool: FramePool::new(frame_size),
            pacer: Pacer::new(pacing),
        };
        let first = video.read_picture().map_err(open_err)?;
        video.current = Some((0, first));
        Ok(Some(video))
    }

    /// The stream header.
    pub fn header(&self) -> Y4mHeader {
        self.header
    }

    /// Moves to the payload of the picture at `self.read`, restarting the file at its end.
    fn locate(&mut self) -> Result<(), String> {
        loop {
            if self.picture_header()? {
                let at = self.file.stream_position().map_err(|e| e.to_string())?;
                if at.saturating_add(self.frame_size as u64) <= self.file_len {
                    self.read += 1;
                    self.in_pass += 1;
                    return Ok(());
                }
            }
            // The end of the file (or a truncated last picture): the next pass starts.
            if self.in_pass == 0 {
                return Err("no complete picture in the YUV4MPEG2 file".into());
            }
            self.in_pass = 0;
            self.file
                .seek(SeekFrom::Start(self.data_start))
                .map_err(|e| format!("rewinding to loop: {e}"))?;
        }
    }

    /// Reads the picture at `self.read` into a pooled buffer.
    fn read_picture(&mut self) -> Result<Arc<Vec<u8>>, String> {
        self.locate()?;
        let file = &mut self.file;
        let k = self.read - 1;
        self.pool
            .fill(|buf| file.read_exact(buf))
            .map_err(|e| format!("picture {k}: {e}"))
    }

    /// Seeks over the picture at `self.read`.
    fn skip_picture(&mut self) -> Result<(), String> {
        self.locate()?;
        self.file
            .seek(SeekFrom::Current(self.frame_size as i64))
            .map(drop)
            .map_err(|e| e.to_string())
    }

    /// Reads a picture's `FRAME` line. `Ok(false)` at the end of the file (also when the line
    /// is cut by it); a line that is not a `FRAME` line is an error.
    fn picture_header(&mut self) -> Result<bool, String> {
        match read_line(&mut self.file, &mut self.line) {
            Ok(false) => Ok(false),
            Ok(true) if self.line.starts_with(b"FRAME") => Ok(true),
            Ok(true) => Err(format!(
                "picture {}: expected a FRAME line, found {:?}",
                self.read,
                String::from_utf8_lossy(&self.line[..self.line.len().min(32)])
            )),
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => Ok(false),
            Err(e) => Err(format!("picture {}: {e}", self.read)),
        }
    }

    /// Picture `k`, seeking over those before it (`k` is at or after `self.read`).
    fn picture(&mut self, k: u64) -> Result<Arc<Vec<u8>>, String> {
        while self.read < k {
            self.skip_picture()?;
        }
        self.read_picture()
    }

    /// The picture shown in slot `i` (counted from `start`).
    fn picture_for(&self, i: u64) -> u64 {
        let (f, g) = (self.header.rate, self.rate);
        let k = u128::from(i) * u128::from(g.den()) * u128::from(f.num())
            / (u128::from(g.num()) * u128::from(f.den()));
        u64::try_from(k).unwrap_or(u64::MAX)
    }
}

impl VideoSource for Y4mVideo {
    fn next_frame(&mut self) -> Result<VideoFrame, CaptureError> {
        let n = self.next;
        let k = self.picture_for(n.0 - self.start.0);
        let data = match &self.current {
            Some((shown, data)) if *shown == k => Arc::clone(data),
            _ => {
                let data = self.picture(k).map_err(|reason| CaptureError::Read {
                    input: self.name.clone(),
                    reason,
                })?;
                self.current = Some((k, Arc::clone(&data)));
                data
            }
        };
        self.pacer.wait_until(
            n.0 - self.start.0,
            u64::from(self.rate.den()),
            u64::from(self.rate.num()),
        );
        self.next = FrameIndex(n.0 + 1);
        Ok(VideoFrame {
            index: n,
            width: self.header.width,
            height: self.header.height,
            data,
            origin: FrameOrigin::Live,
        })
    }

    fn size(&self) -> (u32, u32) {
        (self.header.width, self.header.height)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_gives_size_rate_and_whether_it_is_read_natively() {
        let h = parse_header(b"YUV4MPEG2 W1280 H720 F30000:1001 Ip A1:1 C420jpeg XYSCSS=420JPEG")
            .unwrap();
        assert_eq!((h.width, h.height), (1280, 720));
        assert_eq!(h.rate, Rate::new(30000, 1001).unwrap());
        assert!(h.is_i420);
        for c in ["420paldv", "420mpeg2", "420"] {
            let h = parse_header(format!("YUV4MPEG2 W2 H2 F25:1 C{c}").as_bytes()).unwrap();
            assert!(h.is_i420, "{c}");
        }
        for c in ["422", "444", "mono", "420p10"] {
            let h = parse_header(format!("YUV4MPEG2 W2 H2 F25:1 C{c}").as_bytes()).unwrap();
            assert!(!h.is_i420, "{c} goes to FFmpeg");
        }
        // No C: 420jpeg; no or zero F: 25 fps, as FFmpeg.
        let h = parse_header(b"YUV4MPEG2 W3 H5").unwrap();
        assert!(h.is_i420);
        assert_eq!(h.rate, Rate::new(25, 1).unwrap());
        assert_eq!(
            parse_header(b"YUV4MPEG2 W3 H5 F0:0").unwrap().rate,
            Rate::new(25, 1).unwrap()
        );
    }

    #[test]
    fn a_damaged_header_is_refused_with_what_is_wrong() {
        let cases: [(&[u8], &str); 6] = [
            (b"YUV4MPEG2 H720", "no width"),
            (b"YUV4MPEG2 W1280", "no height"),
            (b"YUV4MPEG2 W0 H720", "width '0'"),
            (b"YUV4MPEG2 W99999 H720", "width '99999'"),
            (b"YUV4MPEG2 W1280 H720 F30", "'F30' is not num:den"),
            (b"YUV4MPEG2 W1280 Hx", "height 'x'"),
        ];
        for (line, want) in cases {
            let err = parse_header(line).unwrap_err();
            assert!(err.contains(want), "{err:?} should say {want:?}");
        }
        assert!(parse_header(b"YUV4MPEG W1 H1").is_err());
        assert!(parse_header(&[0xff, 0xfe]).is_err());
    }
}
