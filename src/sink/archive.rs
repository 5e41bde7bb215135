//! Per-track archive files: `DIR/<pubpoint>/<trackName>_<bitrate>.ismv` (video) / `.isma`
//! (audio) / `.ismt` (text), each a self-contained fragmented MP4 decodable by FFmpeg:
//! the `ftyp` and live manifest of the first stream that declared the track, its `moov`
//! reduced to that one track, then every accepted (de-duplicated) fragment in arrival order.
//!
//! Optionally the raw bodies too: `DIR/<pubpoint>/raw/<streamId>-<n>.mp4`, byte for byte as
//! received (after de-chunking), one file per connection.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::ingest::{HeaderTrack, StreamHeader, TrackKind};
use super::mp4;

/// Replaces characters that are unsafe in a file name.
pub(crate) fn sanitize(s: &str) -> String {
    let o: String = s
        .chars()
        .take(100)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if o.is_empty() || o.starts_with('.') {
        format!("_{o}")
    } else {
        o
    }
}

/// Directory of a publishing point inside the archive root.
pub(crate) fn pubpoint_dir(root: &Path, pubpoint: &str) -> PathBuf {
    root.join(sanitize(&pubpoint.replace('/', "_")))
}

/// One track's archive file.
#[derive(Debug)]
pub(crate) struct ArchiveFile {
    pub path: PathBuf,
    file: Option<File>,
    /// track_ID used in this file's `moov`; fragments with another ID are patched.
    track_id: u32,
    pub error: Option<String>,
    pub bytes: u64,
}

impl ArchiveFile {
    /// Creates (truncates) the file and writes the header for `track`.
    pub fn create(dir: &Path, track: &HeaderTrack, header: &StreamHeader) -> Self {
        let ext = match track.kind {
            TrackKind::Video => "ismv",
            TrackKind::Audio => "isma",
            TrackKind::Text => "ismt",
        };
        let path = dir.join(format!("{}_{}.{ext}", sanitize(&track.name), track.bitrate));
        let mut a = ArchiveFile {
            path,
            file: None,
            track_id: track.track_id,
            error: None,
            bytes: 0,
        };
        let moov =
            mp4::filter_moov(&header.moov, track.track_id).unwrap_or_else(|| header.moov.to_vec());
        let res = std::fs::create_dir_all(dir).and_then(|_| {
            let mut f = File::create(&a.path)?;
            f.write_all(&header.ftyp)?;
            f.write_all(&header.manifest)?;
            f.write_all(&moov)?;
            Ok(f)
        });
        match res {
            Ok(f) => {
                a.bytes = (header.ftyp.len() + header.manifest.len() + moov.len()) as u64;
                a.file = Some(f);
            }
            Err(e) => a.fail(e),
        }
        a
    }

    fn fail(&mut self, e: std::io::Error) {
        tracing::warn!(path = %self.path.display(), error = %e, "sink archive write failed; archiving stopped for this track");
        self.error = Some(e.to_string());
        self.file = None;
    }

    /// Appends one fragment; `track_id` is the fragment's tfhd track_ID.
    pub fn append(&mut self, moof: &[u8], mdat: &[u8], track_id: u32) {
        let Some(f) = self.file.as_mut() else { return };
        let res = if track_id == self.track_id {
            f.write_all(moof)
        } else {
            let mut m = moof.to_vec();
            if mp4::patch_track_id(&mut m, self.track_id).is_none() {
                tracing::warn!(path = %self.path.display(), "could not patch tfhd track_ID in archived fragment");
            }
            f.write_all(&m)
        }
        .and_then(|_| f.write_all(mdat));
        match res {
            Ok(()) => self.bytes += (moof.len() + mdat.len()) as u64,
            Err(e) => self.fail(e),
        }
    }
}

/// A raw body capture of one connection.
#[derive(Debug)]
pub(crate) struct RawCapture {
    file: Option<File>,
}

impl RawCapture {
    pub fn create(root: &Path, pubpoint: &str, stream: &str, n: u64) -> Self {
        let dir = pubpoint_dir(root, pubpoint).join("raw");
        let path = dir.join(format!("{}-{n}.mp4", sanitize(stream)));
        let file = std::fs::create_dir_all(&dir).and_then(|_| File::create(&path));
        match file {
            Ok(f) => RawCapture { file: Some(f) },
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot create raw body capture");
                RawCapture { file: None }
            }
        }
    }

    pub fn write(&mut self, data: &[u8]) {
        if let Some(f) = self.file.as_mut() {
            if let Err(e) = f.write_all(data) {
                tracing::warn!(error = %e, "raw body capture write failed");
                self.file = None;
            }
        }
    }
}
