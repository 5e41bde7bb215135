//! State shared by all connections: publishing points, their streams and tracks, the
//! de-duplicated timelines, archives and the violation log.
//!
//! Track identity: in Smooth all video rungs usually share the trackName `video` and differ by
//! bitrate (`QualityLevels(<bitrate>)` in client URLs), so a track is keyed by
//! (publishing point, trackName, systemBitrate). Fragments are de-duplicated by
//! (that track, tfxd absolute time) across streams, connections and encoders — which is what
//! makes 1+1 redundancy and takeover testable.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;

use super::archive::{pubpoint_dir, ArchiveFile};
use super::ingest::{HeaderTrack, IngestedFragment, Problem, StreamHeader};
use super::manifest::{self, StreamIndexInput};
use super::mp4;
use super::report::{Arrival, Gap, Report, StreamReport, TrackReport, Violation, ViolationKind};
use super::timeline::{HeldFragment, Timeline, Verdict};

/// Limits and options of the store.
#[derive(Debug, Clone)]
pub(crate) struct StoreConfig {
    pub archive: Option<PathBuf>,
    pub dvr_window_secs: u64,
    pub max_pubpoints: usize,
    pub max_streams: usize,
    pub max_tracks: usize,
    pub max_violations: usize,
    pub max_gaps: usize,
    /// Keep an arrival log of this many fragments (0 = none); see [`Arrival`].
    pub max_arrivals: usize,
}

/// Stream state before a body began, to undo it if the body is empty.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyToken {
    ended: bool,
    had_media: bool,
}

/// How a request body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyEnd {
    /// Terminating chunk / full Content-Length received.
    Clean,
    /// Connection lost, timed out or reset by a fault.
    Aborted,
    /// Answered with an error status.
    Rejected,
}

#[derive(Debug, Default)]
struct StreamState {
    probes: u64,
    connections: u64,
    clean_ends: u64,
    aborted: u64,
    rejected: u64,
    mfra_seen: u64,
    fragments: u64,
    bytes: u64,
    violations: u64,
    user_agent: Option<String>,
    first_header: Option<[u8; 32]>,
    /// Bodies currently being received.
    active: u32,
    /// The latest body carried the end-of-stream mfra.
    ended: bool,
    /// A body with media (not just a probe) was seen.
    had_media: bool,
}

#[derive(Debug)]
struct Track {
    info: HeaderTrack,
    timeline: Timeline,
    archive: Option<ArchiveFile>,
    duplicates: u64,
    violations: u64,
    /// Connections (per stream id) whose header declared this track.
    connections: BTreeMap<String, u64>,
    bytes: u64,
}

#[derive(Debug, Default)]
struct PubPoint {
    streams: BTreeMap<String, StreamState>,
    tracks: BTreeMap<(String, u32), Track>,
}

impl PubPoint {
    /// The presentation may still grow: a body is being received, or the latest body of some
    /// stream ended without the end-of-stream `mfra` (the encoder may reconnect).
    fn is_live(&self) -> bool {
        self.streams
            .values()
            .any(|s| s.active > 0 || (s.had_media && !s.ended))
    }
}

/// The shared state.
#[derive(Debug)]
pub(crate) struct Store {
    cfg: StoreConfig,
    pubpoints: BTreeMap<String, PubPoint>,
    violations: Vec<Violation>,
    violations_truncated: u64,
    pub requests: u64,
    arrivals: Vec<Arrival>,
}

fn capacity(what: &str, limit: usize) -> Problem {
    Problem {
        kind: ViolationKind::Capacity,
        status: Some(503),
        track: None,
        offset: 0,
        detail: format!("too many {what} (limit {limit})"),
    }
}

impl Store {
    pub fn new(cfg: StoreConfig) -> Self {
        Self {
            cfg,
            pubpoints: BTreeMap::new(),
            violations: Vec::new(),
            violations_truncated: 0,
            requests: 0,
            arrivals: Vec::new(),
        }
    }

    fn pubpoint(&mut self, pp: &str) -> Result<&mut PubPoint, Problem> {
        if !self.pubpoints.contains_key(pp) && self.pubpoints.len() >= self.cfg.max_pubpoints {
            return Err(capacity("publishing points", self.cfg.max_pubpoints));
        }
        Ok(self.pubpoints.entry(pp.to_string()).or_default())
    }

    fn stream(&mut self, pp: &str, stream: &str) -> Result<&mut StreamState, Problem> {
        let max = self.cfg.max_streams;
        let p = self.pubpoint(pp)?;
        if !p.streams.contains_key(stream) && p.streams.len() >= max {
            return Err(capacity("streams", max));
        }
        Ok(p.streams.entry(stream.to_string()).or_default())
    }

    /// An empty-body POST to a stream URL.
    pub fn probe(&mut self, pp: &str, stream: &str) -> Result<(), Problem> {
        self.stream(pp, stream)?.probes += 1;
        Ok(())
    }

    /// A POST with a body starts. Returns the connection number of this stream (1-based) and
    /// what [`empty_body`](Self::empty_body) needs to undo it.
    pub fn begin_body(
        &mut self,
        pp: &str,
        stream: &str,
        user_agent: Option<&str>,
    ) -> Result<(u64, BodyToken), Problem> {
        let s = self.stream(pp, stream)?;
        let token = BodyToken {
            ended: s.ended,
            had_media: s.had_media,
        };
        s.connections += 1;
        s.active += 1;
        s.ended = false;
        s.had_media = true;
        if let Some(ua) = user_agent {
            s.user_agent = Some(ua.to_string());
        }
        Ok((s.connections, token))
    }

    /// A body that turned out empty (e.g. a chunked probe: just the terminating chunk) counts
    /// as a probe, not a connection.
    pub fn empty_body(&mut self, pp: &str, stream: &str, token: BodyToken) {
        if let Some(s) = self
            .pubpoints
            .get_mut(pp)
            .and_then(|p| p.streams.get_mut(stream))
        {
            s.connections = s.connections.saturating_sub(1);
            s.active = s.active.saturating_sub(1);
            s.probes += 1;
            s.ended = token.ended;
            s.had_media = token.had_media;
        }
    }

    /// Body bytes received on a stream.
    pub fn body_bytes(&mut self, pp: &str, stream: &str, n: u64) {
        if let Some(s) = self
            .pubpoints
            .get_mut(pp)
            .and_then(|p| p.streams.get_mut(stream))
        {
            s.bytes += n;
        }
    }

    /// A POST body ended.
    pub fn end_body(&mut self, pp: &str, stream: &str, how: BodyEnd) {
        if let Some(s) = self
            .pubpoints
            .get_mut(pp)
            .and_then(|p| p.streams.get_mut(stream))
        {
            s.active = s.active.saturating_sub(1);
            match how {
                BodyEnd::Clean => s.clean_ends += 1,
                BodyEnd::Aborted => s.aborted += 1,
                BodyEnd::Rejected => s.rejected += 1,
            }
        }
    }

    /// The end-of-stream `mfra` arrived on a stream.
    pub fn eos(&mut self, pp: &str, stream: &str) {
        if let Some(s) = self
            .pubpoints
            .get_mut(pp)
            .and_then(|p| p.streams.get_mut(stream))
        {
            s.mfra_seen += 1;
            s.ended = true;
        }
    }

    /// Records a violation (fatal or not) against its stream and track.
    pub fn record(&mut self, pp: &str, stream: Option<&str>, p: &Problem) {
        tracing::warn!(pubpoint = pp, stream, track = p.track.as_deref(), status = p.status, kind = ?p.kind, offset = p.offset, "ingest violation: {}", p.detail);
        if let Some(pubp) = self.pubpoints.get_mut(pp) {
            if let Some(s) = stream.and_then(|s| pubp.streams.get_mut(s)) {
                s.violations += 1;
            }
            if let Some(label) = &p.track {
                if let Some(t) = pubp.tracks.values_mut().find(|t| &t.info.label() == label) {
                    t.violations += 1;
                }
            }
        }
        if self.violations.len() >= self.cfg.max_violations {
            self.violations_truncated += 1;
            return;
        }
        self.violations.push(Violation {
            kind: p.kind,
            status: p.status,
            pubpoint: pp.to_string(),
            stream: stream.map(str::to_string),
            track: p.track.clone(),
            offset: p.offset,
            detail: p.detail.clone(),
        });
    }

    /// A connection's header boxes were validated: check identity with the stream's first
    /// header, register (or match) its tracks, open archives.
    pub fn on_header(
        &mut self,
        pp: &str,
        stream: &str,
        h: &Arc<StreamHeader>,
    ) -> Result<(), Problem> {
        let max_tracks = self.cfg.max_tracks;
        let archive_dir = self.cfg.archive.as_ref().map(|root| pubpoint_dir(root, pp));
        let s = self.stream(pp, stream)?;
        match s.first_header {
            None => s.first_header = Some(h.sha256),
            Some(first) if first != h.sha256 => {
                return Err(Problem {
                    kind: ViolationKind::HeaderChanged,
                    status: Some(400),
                    track: None,
                    offset: 0,
                    detail: format!(
                        "header boxes differ from the first connection of Streams({stream}): sha256 {} vs {}",
                        hex::encode(h.sha256),
                        hex::encode(first)
                    ),
                });
            }
            Some(_) => {}
        }
        let p = self.pubpoint(pp)?;
        // Check every track first so a rejected header registers nothing.
        let mut new = 0;
        for t in &h.tracks {
            match p.tracks.get(&(t.name.clone(), t.bitrate)) {
                Some(existing) if !existing.info.same_config(t) => {
                    return Err(Problem {
                        kind: ViolationKind::TrackConflict,
                        status: Some(400),
                        track: Some(t.label()),
                        offset: 0,
                        detail: format!(
                            "track {} already ingested with {} {} timescale {} CodecPrivateData {}; this stream declares {} {} timescale {} CodecPrivateData {}",
                            t.label(),
                            existing.info.kind.as_str(),
                            existing.info.fourcc,
                            existing.info.timescale,
                            existing.info.codec_private_data,
                            t.kind.as_str(),
                            t.fourcc,
                            t.timescale,
                            t.codec_private_data
                        ),
                    });
                }
                Some(_) => {}
                None => new += 1,
            }
        }
        if p.tracks.len() + new > max_tracks {
            return Err(capacity("tracks", max_tracks));
        }
        for t in &h.tracks {
            let track = p
                .tracks
                .entry((t.name.clone(), t.bitrate))
                .or_insert_with(|| Track {
                    info: t.clone(),
                    timeline: Timeline::default(),
                    archive: archive_dir.as_ref().map(|d| ArchiveFile::create(d, t, h)),
                    duplicates: 0,
                    violations: 0,
                    connections: BTreeMap::new(),
                    bytes: 0,
                });
            *track.connections.entry(stream.to_string()).or_default() += 1;
        }
        Ok(())
    }

    /// Applies the fragments of one `moof`+`mdat`: de-duplicate, extend timelines, archive.
    pub fn on_fragments(
        &mut self,
        pp: &str,
        stream: &str,
        h: &StreamHeader,
        frags: Vec<IngestedFragment>,
        user_agent: Option<&str>,
    ) -> Result<(), Problem> {
        let max_arrivals = self.cfg.max_arrivals;
        let window_secs = self.cfg.dvr_window_secs;
        let max_gaps = self.cfg.max_gaps;
        let Some(p) = self.pubpoints.get_mut(pp) else {
            return Ok(());
        };
        if let Some(s) = p.streams.get_mut(stream) {
            s.fragments += frags.len() as u64;
        }
        for f in frags {
            let Some(info) = h.track(f.track_id) else {
                continue;
            };
            let Some(track) = p.tracks.get_mut(&(info.name.clone(), info.bitrate)) else {
                continue;
            };
            let verdict = track.timeline.judge(f.time, f.duration);
            if self.arrivals.len() < max_arrivals {
                self.arrivals.push(Arrival {
                    pubpoint: pp.to_string(),
                    stream: stream.to_string(),
                    track: info.name.clone(),
                    time: f.time,
                    unix_ms: unix_ms_now(),
                    user_agent: user_agent.map(str::to_string),
                    duplicate: matches!(verdict, Verdict::Duplicate),
                });
            }
            match verdict {
                Verdict::Duplicate => track.duplicates += 1,
                Verdict::Overlap { held_end } => {
                    return Err(Problem {
                        kind: ViolationKind::TimeBackwards,
                        status: Some(409),
                        track: Some(info.label()),
                        offset: 0,
                        detail: format!(
                            "fragment [{}, {}) overlaps media the track already holds (up to {held_end}) without matching a held fragment",
                            f.time,
                            f.time.saturating_add(f.duration)
                        ),
                    });
                }
                Verdict::Accept => {
                    if let Some(a) = track.archive.as_mut() {
                        a.append(&f.moof, &f.mdat, f.track_id);
                    }
                    track.bytes += f.len();
                    track.timeline.insert(
                        f.time,
                        HeldFragment {
                            duration: f.duration,
                            moof: f.moof,
                            mdat: f.mdat,
                        },
                        max_gaps + 1,
                    );
                    let window = window_secs.saturating_mul(u64::from(track.info.timescale));
                    track.timeline.evict(window);
                }
            }
        }
        Ok(())
    }

    /// The client manifest of a publishing point, `None` if it has no audio/video track.
    pub fn client_manifest(&self, pp: &str) -> Option<String> {
        let p = self.pubpoints.get(pp)?;
        // One StreamIndex per (kind, trackName), in the order names were first declared.
        let mut groups: BTreeMap<(u8, String), Vec<&Track>> = BTreeMap::new();
        for t in p.tracks.values() {
            let k = match t.info.kind {
                super::ingest::TrackKind::Video => 0,
                super::ingest::TrackKind::Audio => 1,
                super::ingest::TrackKind::Text => continue,
            };
            groups.entry((k, t.info.name.clone())).or_default().push(t);
        }
        if groups.is_empty() {
            return None;
        }
        let inputs: Vec<StreamIndexInput<'_>> = groups
            .values()
            .map(|tracks| {
                // Chunks: the union of the rungs' held fragments (identical when the encoder
                // cuts every rung on the same grid, as it must).
                let mut chunks: BTreeMap<u64, u64> = BTreeMap::new();
                for t in tracks {
                    for (time, f) in t.timeline.held() {
                        chunks.entry(*time).or_insert(f.duration);
                    }
                }
                StreamIndexInput {
                    qualities: tracks.iter().map(|t| &t.info).collect(),
                    chunks: chunks.into_iter().collect(),
                }
            })
            .collect();
        Some(manifest::client_manifest(
            &inputs,
            p.is_live(),
            self.cfg.dvr_window_secs,
        ))
    }

    /// A served fragment: `moof` (with a `tfrf` listing the next held fragments while live)
    /// and `mdat`.
    pub fn fragment(
        &self,
        pp: &str,
        bitrate: u32,
        name: &str,
        time: u64,
    ) -> Option<(Bytes, Bytes)> {
        let p = self.pubpoints.get(pp)?;
        let t = p.tracks.get(&(name.to_string(), bitrate))?;
        let f = t.timeline.get(time)?;
        if p.is_live() {
            let next = t.timeline.following(time, manifest::LOOKAHEAD);
            if let Some(m) = mp4::insert_tfrf(&f.moof, &next) {
                return Some((Bytes::from(m), f.mdat.clone()));
            }
        }
        Some((f.moof.clone(), f.mdat.clone()))
    }

    /// Whether `pp` is currently presented as live.
    pub fn is_live(&self, pp: &str) -> Option<bool> {
        self.pubpoints.get(pp).map(PubPoint::is_live)
    }

    /// The report of everything so far.
    pub fn report(&self, faults_fired: u64) -> Report {
        let mut r = Report {
            violations: self.violations.clone(),
            violations_truncated: self.violations_truncated,
            faults_fired,
            requests: self.requests,
            arrivals: self.arrivals.clone(),
            ..Default::default()
        };
        for (pp, p) in &self.pubpoints {
            for ((name, bitrate), t) in &p.tracks {
                let connections: u64 = t.connections.values().sum();
                r.tracks.push(TrackReport {
                    pubpoint: pp.clone(),
                    name: name.clone(),
                    bitrate: *bitrate,
                    kind: t.info.kind.as_str().to_string(),
                    timescale: t.info.timescale,
                    fragments: t.timeline.fragments,
                    first_time: t.timeline.first_time(),
                    last_end: t.timeline.last_end(),
                    gaps: t
                        .timeline
                        .gaps()
                        .into_iter()
                        .map(|(from, to)| Gap { from, to })
                        .collect(),
                    gaps_truncated: t.timeline.gaps_truncated,
                    duplicates_dropped: t.duplicates,
                    violations: t.violations,
                    connections,
                    reconnects: connections - t.connections.len() as u64,
                    streams: t
                        .connections
                        .keys()
                        .cloned()
                        .collect::<BTreeSet<_>>()
                        .into_iter()
                        .collect(),
                    bytes: t.bytes,
                    archive: t.archive.as_ref().map(|a| a.path.display().to_string()),
                    archive_error: t.archive.as_ref().and_then(|a| a.error.clone()),
                });
            }
            for (id, s) in &p.streams {
                r.streams.push(StreamReport {
                    pubpoint: pp.clone(),
                    stream: id.clone(),
                    probes: s.probes,
                    connections: s.connections,
                    reconnects: s.connections.saturating_sub(1),
                    clean_ends: s.clean_ends,
                    aborted: s.aborted,
                    rejected: s.rejected,
                    mfra_seen: s.mfra_seen,
                    fragments: s.fragments,
                    bytes: s.bytes,
                    header_sha256: s.first_header.map(hex::encode),
                    violations: s.violations,
                    user_agent: s.user_agent.clone(),
                });
            }
        }
        r
    }
}

/// Wall-clock now, milliseconds since the Unix epoch (0 if the clock is before 1970).
fn unix_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
