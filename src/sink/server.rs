//! The accept loop and per-connection request handling (HTTP/1.1, keep-alive).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::archive::RawCapture;
use super::fault::{BodyFault, Decision, FaultRule, FaultSet};
use super::http::{self, BodyFraming, ChunkedDecoder, HttpError, RequestHead};
use super::ingest::{IngestEvent, IngestValidator, Problem, StreamHeader};
use super::report::ViolationKind;
use super::store::{BodyEnd, Store};
use super::SinkConfig;

/// Read buffer growth step.
const READ_CHUNK: usize = 64 * 1024;
/// Control-request bodies (fault rules) are small.
const MAX_CONTROL_BODY: u64 = 64 * 1024;
/// How long to keep draining a rejected upload after answering, so the client reads the
/// answer instead of a reset.
const LINGER: Duration = Duration::from_secs(2);
/// Longest a stalled (fault-injected) request is held.
const MAX_STALL: Duration = Duration::from_secs(600);

/// State shared by the accept loop and every connection.
pub(crate) struct Shared {
    pub store: Mutex<Store>,
    pub faults: Mutex<FaultSet>,
    pub cfg: SinkConfig,
    pub connections: AtomicUsize,
    pub shutdown: watch::Receiver<bool>,
}

impl Shared {
    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn faults(&self) -> MutexGuard<'_, FaultSet> {
        self.faults.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn report(&self) -> super::Report {
        let fired = self.faults().fired_total();
        self.store().report(fired)
    }
}

/// Accepts connections until shutdown.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.clone();
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((sock, peer)) => {
                    if shared.connections.load(Ordering::Relaxed) >= shared.cfg.max_connections {
                        tracing::warn!(%peer, "sink connection limit reached; closing");
                        drop(sock);
                        continue;
                    }
                    shared.connections.fetch_add(1, Ordering::Relaxed);
                    let sh = shared.clone();
                    tokio::spawn(async move {
                        let mut conn = Conn { sock, buf: BytesMut::with_capacity(READ_CHUNK), peer, shared: sh.clone() };
                        conn.run().await;
                        sh.connections.fetch_sub(1, Ordering::Relaxed);
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "sink accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            _ = shutdown.changed() => break,
        }
    }
}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    Report,
    Faults,
    /// `…/name.isml/Streams(id)` (optionally with `/Events(e)` before it).
    Ingest {
        pubpoint: String,
        stream: String,
    },
    /// `…/name.isml` itself (ASTool probes it).
    PubPoint {
        pubpoint: String,
    },
    Manifest {
        pubpoint: String,
    },
    Fragment {
        pubpoint: String,
        bitrate: u32,
        name: String,
        time: u64,
    },
    NotFound,
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    if s.len() >= prefix.len()
        && s.is_char_boundary(prefix.len())
        && s[..prefix.len()].eq_ignore_ascii_case(prefix)
    {
        Some(&s[prefix.len()..])
    } else {
        None
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hexval = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hexval(b[i + 1]), hexval(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses a request path into a route.
pub(crate) fn route(path: &str) -> Route {
    match path {
        "/report" => return Route::Report,
        "/_sink/faults" => return Route::Faults,
        _ => {}
    }
    let lower = path.to_ascii_lowercase();
    let Some(idx) = lower.find(".isml") else {
        return Route::NotFound;
    };
    let after = idx + ".isml".len();
    if lower.len() > after && !lower[after..].starts_with('/') {
        return Route::NotFound;
    }
    let pubpoint = path.get(1..idx).unwrap_or("").trim_matches('/').to_string();
    if pubpoint.is_empty() {
        return Route::NotFound;
    }
    let mut rest = path.get(after..).unwrap_or("").trim_start_matches('/');
    if rest.is_empty() {
        return Route::PubPoint { pubpoint };
    }
    if let Some(r) = strip_prefix_ci(rest, "Events(") {
        match r.find(")/") {
            Some(i) => rest = &r[i + 2..],
            None => return Route::NotFound,
        }
    }
    if let Some(r) = strip_prefix_ci(rest, "Streams(") {
        return match r.strip_suffix(')') {
            Some(id) if !id.is_empty() && id.len() <= 200 && !id.contains('/') => Route::Ingest {
                pubpoint,
                stream: percent_decode(id),
            },
            _ => Route::NotFound,
        };
    }
    if rest.eq_ignore_ascii_case("Manifest") {
        return Route::Manifest { pubpoint };
    }
    if let Some(r) = strip_prefix_ci(rest, "QualityLevels(") {
        let Some((bitrate, r)) = r.split_once(')') else {
            return Route::NotFound;
        };
        let Some(r) = strip_prefix_ci(r, "/Fragments(") else {
            return Route::NotFound;
        };
        let Some(r) = r.strip_suffix(')') else {
            return Route::NotFound;
        };
        let Some((name, time)) = r.rsplit_once('=') else {
            return Route::NotFound;
        };
        let (Ok(bitrate), Ok(time)) = (bitrate.parse::<u32>(), time.parse::<u64>()) else {
            return Route::NotFound;
        };
        return Route::Fragment {
            pubpoint,
            bitrate,
            name: percent_decode(name),
            time,
        };
    }
    Route::NotFound
}

/// What the request handler wants done with the connection afterwards.
enum After {
    KeepAlive,
    Close,
    /// Already closed or reset.
    Gone,
}

struct Conn {
    sock: TcpStream,
    buf: BytesMut,
    peer: SocketAddr,
    shared: Arc<Shared>,
}

enum ReadOutcome {
    Data,
    Eof,
    Error,
    Timeout,
    Shutdown,
}

impl Conn {
    async fn run(&mut self) {
        let _ = self.sock.set_nodelay(true);
        loop {
            let head = match self.read_head().await {
                Some(h) => h,
                None => return,
            };
            let after = self.handle(head).await;
            match after {
                After::KeepAlive => continue,
                After::Close => {
                    let _ = self.sock.shutdown().await;
                    return;
                }
                After::Gone => return,
            }
        }
    }

    fn idle(&self) -> Duration {
        Duration::from_secs(self.shared.cfg.idle_timeout_secs.max(1))
    }

    async fn read_more(&mut self, max: usize) -> ReadOutcome {
        self.buf.reserve(READ_CHUNK);
        let idle = self.idle();
        let mut shutdown = self.shared.shutdown.clone();
        let mut limited = (&mut self.buf).limit(max.max(1));
        tokio::select! {
            r = tokio::time::timeout(idle, self.sock.read_buf(&mut limited)) => match r {
                Ok(Ok(0)) => ReadOutcome::Eof,
                Ok(Ok(_)) => ReadOutcome::Data,
                Ok(Err(_)) => ReadOutcome::Error,
                Err(_) => ReadOutcome::Timeout,
            },
            _ = shutdown.changed() => ReadOutcome::Shutdown,
        }
    }

    async fn read_head(&mut self) -> Option<RequestHead> {
        loop {
            match http::parse_head(&self.buf) {
                Ok(Some((h, n))) => {
                    self.buf.advance(n);
                    return Some(h);
                }
                Ok(None) => {}
                Err(e) => {
                    let code = if e == HttpError::HeadTooLarge {
                        431
                    } else {
                        400
                    };
                    tracing::debug!(peer = %self.peer, error = %e, "bad request head");
                    self.shared.store().requests += 1;
                    self.respond(code, "text/plain", e.to_string().as_bytes(), true)
                        .await;
                    self.linger_close().await;
                    return None;
                }
            }
            match self.read_more(READ_CHUNK).await {
                ReadOutcome::Data => {}
                _ => return None,
            }
        }
    }

    async fn respond(&mut self, code: u16, ctype: &str, body: &[u8], close: bool) {
        let mut out = http::response_head(code, ctype, body.len(), close);
        out.extend_from_slice(body);
        let _ = self.sock.write_all(&out).await;
    }

    /// After an early answer: stop sending, drain what the client still sends for a moment so
    /// it can read the answer, then close.
    async fn linger_close(&mut self) {
        let _ = self.sock.shutdown().await;
        let deadline = Instant::now() + LINGER;
        let mut scratch = vec![0u8; READ_CHUNK];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match tokio::time::timeout(left, self.sock.read(&mut scratch)).await {
                Ok(Ok(n)) if n > 0 => continue,
                _ => break,
            }
        }
    }

    fn reset(&self) {
        // SO_LINGER 0: close() sends RST instead of FIN.
        let _ = socket2::SockRef::from(&self.sock).set_linger(Some(Duration::ZERO));
    }

    async fn handle(&mut self, head: RequestHead) -> After {
        self.shared.store().requests += 1;
        let route = route(&head.path);
        let decision = self.shared.faults().decide(&head.path, Instant::now());
        let mut body_fault = BodyFault::default();
        match decision {
            Some(Decision::Refuse) => {
                tracing::debug!(path = %head.path, "fault: refusing connection");
                self.reset();
                return After::Gone;
            }
            Some(Decision::Status(code)) => {
                tracing::debug!(path = %head.path, code, "fault: answering status");
                if let Route::Ingest { pubpoint, stream } = &route {
                    let mut st = self.shared.store();
                    if head.framing == BodyFraming::Empty {
                        let _ = st.probe(pubpoint, stream);
                    }
                }
                let msg = format!("injected fault: status {code}");
                self.respond(code, "text/plain", msg.as_bytes(), true).await;
                if head.framing == BodyFraming::Empty {
                    return After::Close;
                }
                self.linger_close().await;
                return After::Gone;
            }
            Some(Decision::Body(b)) => body_fault = b,
            None => {}
        }
        let has_body = head.framing != BodyFraming::Empty;
        match (head.method.as_str(), route) {
            ("POST", Route::Ingest { pubpoint, stream }) => {
                if has_body {
                    self.ingest(&head, &pubpoint, &stream, body_fault).await
                } else {
                    let res = self.shared.store().probe(&pubpoint, &stream);
                    match res {
                        Ok(()) => {
                            self.respond(200, "text/plain", b"", !head.keep_alive).await;
                            keep(&head)
                        }
                        Err(p) => {
                            self.shared.store().record(&pubpoint, Some(&stream), &p);
                            self.respond(
                                p.status.unwrap_or(503),
                                "text/plain",
                                p.detail.as_bytes(),
                                true,
                            )
                            .await;
                            After::Close
                        }
                    }
                }
            }
            ("POST", Route::PubPoint { .. }) if !has_body => {
                self.respond(200, "text/plain", b"", !head.keep_alive).await;
                keep(&head)
            }
            ("GET", Route::Report) => {
                let r = self.shared.report();
                let body = serde_json::to_vec_pretty(&r).unwrap_or_default();
                self.respond(200, "application/json", &body, !head.keep_alive)
                    .await;
                self.after_unread_body(&head)
            }
            ("GET", Route::Faults) => {
                let rules = self.shared.faults().rules();
                let body = serde_json::to_vec_pretty(&rules).unwrap_or_default();
                self.respond(200, "application/json", &body, !head.keep_alive)
                    .await;
                self.after_unread_body(&head)
            }
            ("POST" | "PUT", Route::Faults) => {
                let Some(body) = self.read_small_body(&head).await else {
                    self.respond(400, "text/plain", b"bad or too large control body", true)
                        .await;
                    return After::Close;
                };
                match serde_json::from_slice::<Vec<FaultRule>>(&body) {
                    Ok(rules) => {
                        tracing::info!(rules = rules.len(), "sink fault rules replaced");
                        self.shared.faults().replace(rules, Instant::now());
                        self.respond(200, "text/plain", b"ok", !head.keep_alive)
                            .await;
                        keep(&head)
                    }
                    Err(e) => {
                        self.respond(
                            400,
                            "text/plain",
                            format!("bad fault rules: {e}").as_bytes(),
                            !head.keep_alive,
                        )
                        .await;
                        keep(&head)
                    }
                }
            }
            ("GET", Route::Manifest { pubpoint }) => {
                let m = self.shared.store().client_manifest(&pubpoint);
                match m {
                    Some(xml) => {
                        self.respond(
                            200,
                            "text/xml; charset=utf-8",
                            xml.as_bytes(),
                            !head.keep_alive,
                        )
                        .await
                    }
                    None => {
                        self.respond(
                            404,
                            "text/plain",
                            b"no such publishing point",
                            !head.keep_alive,
                        )
                        .await
                    }
                }
                self.after_unread_body(&head)
            }
            (
                "GET",
                Route::Fragment {
                    pubpoint,
                    bitrate,
                    name,
                    time,
                },
            ) => {
                let f = self
                    .shared
                    .store()
                    .fragment(&pubpoint, bitrate, &name, time);
                match f {
                    Some((moof, mdat)) => {
                        let mut out = http::response_head(
                            200,
                            "video/mp4",
                            moof.len() + mdat.len(),
                            !head.keep_alive,
                        );
                        out.extend_from_slice(&moof);
                        if self.sock.write_all(&out).await.is_err()
                            || self.sock.write_all(&mdat).await.is_err()
                        {
                            return After::Gone;
                        }
                    }
                    None => {
                        self.respond(404, "text/plain", b"no such fragment", !head.keep_alive)
                            .await
                    }
                }
                self.after_unread_body(&head)
            }
            (_, Route::NotFound) => {
                self.respond(404, "text/plain", b"not found", true).await;
                After::Close
            }
            _ => {
                self.respond(405, "text/plain", b"method not allowed here", true)
                    .await;
                After::Close
            }
        }
    }

    fn after_unread_body(&self, head: &RequestHead) -> After {
        if head.framing == BodyFraming::Empty {
            keep(head)
        } else {
            After::Close
        }
    }

    async fn read_small_body(&mut self, head: &RequestHead) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        match head.framing {
            BodyFraming::Empty => Some(out),
            BodyFraming::Length(n) if n <= MAX_CONTROL_BODY => {
                let n = n as usize;
                while self.buf.len() < n {
                    if !matches!(self.read_more(READ_CHUNK).await, ReadOutcome::Data) {
                        return None;
                    }
                }
                out.extend_from_slice(&self.buf[..n]);
                self.buf.advance(n);
                Some(out)
            }
            BodyFraming::Length(_) => None,
            BodyFraming::Chunked => {
                let mut dec = ChunkedDecoder::new();
                loop {
                    let mut pos = 0;
                    while pos < self.buf.len() && !dec.is_done() {
                        let (n, payload) = dec.step(&self.buf[pos..]).ok()?;
                        if let Some(p) = payload {
                            out.extend_from_slice(p);
                        }
                        pos += n;
                    }
                    self.buf.advance(pos);
                    if out.len() as u64 > MAX_CONTROL_BODY {
                        return None;
                    }
                    if dec.is_done() {
                        return Some(out);
                    }
                    if !matches!(self.read_more(READ_CHUNK).await, ReadOutcome::Data) {
                        return None;
                    }
                }
            }
        }
    }

    /// Receives, validates and stores one ingest body.
    async fn ingest(
        &mut self,
        head: &RequestHead,
        pp: &str,
        stream: &str,
        fault: BodyFault,
    ) -> After {
        let begun = self
            .shared
            .store()
            .begin_body(pp, stream, head.user_agent.as_deref());
        let (conn_no, token) = match begun {
            Ok(n) => n,
            Err(p) => {
                self.shared.store().record(pp, Some(stream), &p);
                self.respond(
                    p.status.unwrap_or(503),
                    "text/plain",
                    p.detail.as_bytes(),
                    true,
                )
                .await;
                self.linger_close().await;
                return After::Gone;
            }
        };
        tracing::debug!(peer = %self.peer, pubpoint = pp, stream, conn_no, "ingest body starts");
        if head.expect_continue
            && self
                .sock
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await
                .is_err()
        {
            self.shared.store().end_body(pp, stream, BodyEnd::Aborted);
            return After::Gone;
        }
        let mut raw = match (&self.shared.cfg.archive, self.shared.cfg.archive_raw) {
            (Some(root), true) => Some(RawCapture::create(root, pp, stream, conn_no)),
            _ => None,
        };
        let mut v = IngestValidator::new(self.shared.cfg.max_box_size);
        let mut chunked = match head.framing {
            BodyFraming::Chunked => Some(ChunkedDecoder::new()),
            _ => None,
        };
        let mut remaining = match head.framing {
            BodyFraming::Length(n) => n,
            _ => 0,
        };
        let mut wire: u64 = 0;
        let mut header: Option<Arc<StreamHeader>> = None;
        loop {
            // Consume what is buffered, but never past a fault's byte limit.
            let limit_at = [fault.reset_after, fault.stall_after]
                .into_iter()
                .flatten()
                .min();
            let allowed = limit_at.map_or(usize::MAX, |l| {
                usize::try_from(l.saturating_sub(wire)).unwrap_or(usize::MAX)
            });
            // Slow read: consume at most a tenth of a second's worth per round, including bytes
            // that arrived together with the request head.
            let slow_quota = fault.bytes_per_sec.map_or(usize::MAX, |bps| {
                usize::try_from((bps / 10).max(1)).unwrap_or(usize::MAX)
            });
            let avail = self.buf.len().min(allowed).min(slow_quota);
            let payload_before = v.body_bytes();
            let mut pos = 0;
            let done;
            let mut framing_error = None;
            if let Some(dec) = chunked.as_mut() {
                while pos < avail && !dec.is_done() {
                    match dec.step(&self.buf[pos..avail]) {
                        Ok((n, payload)) => {
                            if let Some(p) = payload {
                                v.push(p);
                                if let Some(r) = raw.as_mut() {
                                    r.write(p);
                                }
                            }
                            pos += n;
                            if n == 0 {
                                break;
                            }
                        }
                        Err(e) => {
                            framing_error = Some(e);
                            break;
                        }
                    }
                }
                done = dec.is_done();
            } else {
                let take = (remaining.min(avail as u64)) as usize;
                if take > 0 {
                    v.push(&self.buf[..take]);
                    if let Some(r) = raw.as_mut() {
                        r.write(&self.buf[..take]);
                    }
                }
                pos = take;
                remaining -= take as u64;
                done = remaining == 0;
            }
            self.buf.advance(pos);
            wire += pos as u64;
            self.shared
                .store()
                .body_bytes(pp, stream, v.body_bytes() - payload_before);
            if let Some(e) = framing_error {
                let p = Problem {
                    kind: ViolationKind::Http,
                    status: Some(400),
                    track: None,
                    offset: v.body_bytes(),
                    detail: e.to_string(),
                };
                return self.reject(pp, stream, p).await;
            }
            if let Err(p) = self.drain(&mut v, pp, stream, &mut header, head.user_agent.as_deref())
            {
                return self.reject(pp, stream, p).await;
            }
            if done {
                break;
            }
            if fault.reset_after.is_some_and(|n| wire >= n) {
                tracing::debug!(pubpoint = pp, stream, wire, "fault: reset after bytes");
                self.shared.store().end_body(pp, stream, BodyEnd::Aborted);
                self.reset();
                return After::Gone;
            }
            if fault.stall_after.is_some_and(|n| wire >= n) {
                tracing::debug!(pubpoint = pp, stream, wire, "fault: stalling");
                let mut shutdown = self.shared.shutdown.clone();
                tokio::select! {
                    _ = tokio::time::sleep(MAX_STALL) => {},
                    _ = shutdown.changed() => {},
                }
                self.shared.store().end_body(pp, stream, BodyEnd::Aborted);
                self.reset();
                return After::Gone;
            }
            if let Some(bps) = fault.bytes_per_sec {
                let secs = pos as f64 / bps.max(1) as f64;
                tokio::time::sleep(Duration::from_secs_f64(secs.min(10.0))).await;
            }
            if pos > 0 && !self.buf.is_empty() {
                // Throttled: more is buffered already.
                continue;
            }
            let max = slow_quota.min(READ_CHUNK);
            match self.read_more(max).await {
                ReadOutcome::Data => {}
                outcome => {
                    let why = match outcome {
                        ReadOutcome::Eof => "connection closed",
                        ReadOutcome::Timeout => "idle timeout",
                        ReadOutcome::Shutdown => "sink shutting down",
                        _ => "read error",
                    };
                    tracing::debug!(pubpoint = pp, stream, wire, why, "ingest body aborted");
                    self.shared.store().end_body(pp, stream, BodyEnd::Aborted);
                    return After::Gone;
                }
            }
        }
        if let Err(p) = v.finish() {
            return self.reject(pp, stream, p).await;
        }
        if v.body_bytes() == 0 {
            self.shared.store().empty_body(pp, stream, token);
        } else {
            self.shared.store().end_body(pp, stream, BodyEnd::Clean);
        }
        tracing::debug!(pubpoint = pp, stream, wire, "ingest body complete");
        self.respond(200, "text/plain", b"", !head.keep_alive).await;
        keep(head)
    }

    /// Applies every event the validator has ready. The store lock is held across them (and
    /// across archive writes): a test tool's simplicity over a production origin's throughput.
    fn drain(
        &self,
        v: &mut IngestValidator,
        pp: &str,
        stream: &str,
        header: &mut Option<Arc<StreamHeader>>,
        user_agent: Option<&str>,
    ) -> Result<(), Problem> {
        let mut st = self.shared.store();
        // Store-level problems (dedupe, header identity) carry the body position too.
        let at = |mut p: Problem, offset: u64| {
            if p.offset == 0 {
                p.offset = offset;
            }
            p
        };
        loop {
            match v.poll()? {
                None => return Ok(()),
                Some(IngestEvent::Header(h)) => {
                    st.on_header(pp, stream, &h)
                        .map_err(|p| at(p, v.body_bytes()))?;
                    *header = Some(h);
                }
                Some(IngestEvent::Fragments(f)) => {
                    if let Some(h) = header.as_ref() {
                        st.on_fragments(pp, stream, h, f, user_agent)
                            .map_err(|p| at(p, v.body_bytes()))?;
                    }
                }
                Some(IngestEvent::Eos) => st.eos(pp, stream),
                Some(IngestEvent::Warning(p)) => st.record(pp, Some(stream), &p),
            }
        }
    }

    async fn reject(&mut self, pp: &str, stream: &str, p: Problem) -> After {
        let code = p.status.unwrap_or(400);
        {
            let mut st = self.shared.store();
            st.record(pp, Some(stream), &p);
            st.end_body(pp, stream, BodyEnd::Rejected);
        }
        let body = format!("{:?}: {}\n", p.kind, p.detail);
        self.respond(code, "text/plain", body.as_bytes(), true)
            .await;
        self.linger_close().await;
        After::Gone
    }
}

fn keep(head: &RequestHead) -> After {
    if head.keep_alive {
        After::KeepAlive
    } else {
        After::Close
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_smooth_urls() {
        assert_eq!(
            route("/live.isml/Streams(test)"),
            Route::Ingest {
                pubpoint: "live".into(),
                stream: "test".into()
            }
        );
        assert_eq!(
            route("/a/b/ch1.isml/Events(e1)/streams(v-1)"),
            Route::Ingest {
                pubpoint: "a/b/ch1".into(),
                stream: "v-1".into()
            }
        );
        assert_eq!(
            route("/live.isml"),
            Route::PubPoint {
                pubpoint: "live".into()
            }
        );
        assert_eq!(
            route("/live.isml/Manifest"),
            Route::Manifest {
                pubpoint: "live".into()
            }
        );
        assert_eq!(
            route("/live.isml/QualityLevels(600000)/Fragments(video=666667)"),
            Route::Fragment {
                pubpoint: "live".into(),
                bitrate: 600000,
                name: "video".into(),
                time: 666667
            }
        );
        assert_eq!(route("/live.ismlx/Manifest"), Route::NotFound);
        assert_eq!(route("/.isml/Manifest"), Route::NotFound);
        assert_eq!(route("/x.isml/Streams()"), Route::NotFound);
        assert_eq!(route("/report"), Route::Report);
        assert_eq!(percent_decode("a%20b%zz%2"), "a b%zz%2");
    }
}
