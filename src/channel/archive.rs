//! Archive output: per stream, exactly the byte stream that would be POSTed
//! (`DIR/<stream-id>.ismv`, or `.isma` for an audio-only stream).

use crate::piff::{header::empty_mfra, TrackCodec, TrackInfo};
use crate::push::{Fragment, StreamHeader};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Open archive files, one per stream.
pub struct Archive {
    files: Vec<(PathBuf, Vec<u32>, BufWriter<File>)>,
    eos: bool,
}

impl Archive {
    /// Creates `dir` and one file per stream, each starting with the stream's header boxes.
    /// With `eos`, every file ends with the empty `mfra` box, as the POST would.
    pub fn create(
        dir: &Path,
        streams: &[StreamHeader],
        tracks: &[TrackInfo],
        eos: bool,
    ) -> std::io::Result<Archive> {
        std::fs::create_dir_all(dir)?;
        let mut files = Vec::new();
        for s in streams {
            let audio_only = s.track_ids.iter().all(|id| {
                tracks
                    .iter()
                    .any(|t| t.track_id == *id && matches!(t.codec, TrackCodec::Aac(_)))
            });
            let ext = if audio_only { "isma" } else { "ismv" };
            let path = dir.join(format!("{}.{ext}", s.stream_id));
            let mut w = BufWriter::new(File::create(&path)?);
            w.write_all(&s.bytes)?;
            files.push((path, s.track_ids.clone(), w));
        }
        Ok(Archive { files, eos })
    }

    /// Appends a fragment to every stream that carries its track.
    pub fn write(&mut self, f: &Fragment) -> Result<(), (PathBuf, std::io::Error)> {
        for (path, ids, w) in &mut self.files {
            if ids.contains(&f.track_id) {
                w.write_all(&f.bytes).map_err(|e| (path.clone(), e))?;
            }
        }
        Ok(())
    }

    /// Ends every file (optional `mfra`), flushes, and returns the paths written.
    pub fn finish(self) -> Result<Vec<PathBuf>, (PathBuf, std::io::Error)> {
        let mut paths = Vec::new();
        for (path, _, mut w) in self.files {
            if self.eos {
                w.write_all(&empty_mfra()).map_err(|e| (path.clone(), e))?;
            }
            w.flush().map_err(|e| (path.clone(), e))?;
            paths.push(path);
        }
        Ok(paths)
    }
}
