//! Push scenarios against a real HTTP/1.1 server on 127.0.0.1 (written here, in tokio) that
//! records every request, decodes chunked bodies as they arrive, and can misbehave on demand.

use bytes::Bytes;
use smoothcast::profile::plan::{DestinationPlan, PushMode, PushOptions, Role};
use smoothcast::push::{Fragment, Pusher, SessionState, SessionStatus, StreamHeader};
use smoothcast::time::SystemClocks;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use server::{Action, Req, TestServer};

mod server {
    //! The in-test publishing point.

    use std::net::SocketAddr;
    use std::pin::Pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll};
    use std::time::Duration;
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
    use tokio::net::TcpStream;

    /// One request as the server saw it (the body grows while it arrives).
    #[derive(Clone, Debug, Default)]
    pub struct Req {
        pub index: usize,
        pub conn: usize,
        pub method: String,
        pub path: String,
        pub headers: Vec<(String, String)>,
        /// Decoded body bytes.
        pub body: Vec<u8>,
        /// Size of every chunk, in order (chunked requests).
        pub chunk_sizes: Vec<usize>,
        pub chunked: bool,
        /// The terminating chunk (or the whole Content-Length body) arrived.
        pub complete: bool,
        /// What the server answered, if it did.
        pub answered: Option<u16>,
    }

    impl Req {
        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }

        pub fn is_probe(&self) -> bool {
            !self.chunked && self.header("content-length") == Some("0")
        }
    }

    /// What to do with a request once its head has arrived.
    #[derive(Clone, Debug)]
    pub enum Action {
        /// Read the whole body, then answer (keep-alive).
        Respond(u16, Vec<(String, String)>),
        /// Answer right after the head, then close.
        Early(u16, Vec<(String, String)>),
        /// Read this many body bytes, then reset the connection (RST).
        ResetAfter(usize),
        /// Stop reading after the head; keep the connection open.
        Stall,
        /// Read the body `bytes` at a time with a pause between reads.
        SlowRead { bytes: usize, pause: Duration },
    }

    pub type Behavior = Arc<dyn Fn(&Req) -> Action + Send + Sync>;

    pub fn ok() -> Behavior {
        Arc::new(|_| Action::Respond(200, vec![]))
    }

    struct Inner {
        reqs: Mutex<Vec<Req>>,
        behavior: Mutex<Behavior>,
        conns: Mutex<Vec<tokio::task::AbortHandle>>,
        next_conn: AtomicUsize,
        tls_failures: AtomicUsize,
    }

    pub struct TestServer {
        pub addr: SocketAddr,
        inner: Arc<Inner>,
        rt: Option<tokio::runtime::Runtime>,
        scheme: &'static str,
    }

    impl TestServer {
        pub fn start(behavior: Behavior) -> TestServer {
            TestServer::start_inner(behavior, None)
        }

        pub fn start_tls(behavior: Behavior, acceptor: tokio_rustls::TlsAcceptor) -> TestServer {
            TestServer::start_inner(behavior, Some(acceptor))
        }

        fn start_inner(
            behavior: Behavior,
            acceptor: Option<tokio_rustls::TlsAcceptor>,
        ) -> TestServer {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            let listener = rt
                .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
                .unwrap();
            let addr = listener.local_addr().unwrap();
            let inner = Arc::new(Inner {
                reqs: Mutex::new(Vec::new()),
                behavior: Mutex::new(behavior),
                conns: Mutex::new(Vec::new()),
                next_conn: AtomicUsize::new(0),
                tls_failures: AtomicUsize::new(0),
            });
            let scheme = if acceptor.is_some() { "https" } else { "http" };
            let inner2 = inner.clone();
            rt.spawn(async move {
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        continue;
                    };
                    let inner = inner2.clone();
                    let conn = inner.next_conn.fetch_add(1, Ordering::SeqCst);
                    let acceptor = acceptor.clone();
                    let task = tokio::spawn(async move {
                        let stream = match acceptor {
                            None => Stream::Plain(tcp),
                            Some(a) => match a.accept(tcp).await {
                                Ok(s) => Stream::Tls(Box::new(s)),
                                Err(_) => {
                                    inner.tls_failures.fetch_add(1, Ordering::SeqCst);
                                    return;
                                }
                            },
                        };
                        handle(inner, stream, conn).await;
                    });
                    inner2.conns.lock().unwrap().push(task.abort_handle());
                }
            });
            TestServer {
                addr,
                inner,
                rt: Some(rt),
                scheme,
            }
        }

        /// `scheme://127.0.0.1:port` + path.
        pub fn url(&self, path: &str) -> String {
            format!("{}://{}{}", self.scheme, self.addr, path)
        }

        pub fn url_with_userinfo(&self, userinfo: &str, path: &str) -> String {
            format!("{}://{}@{}{}", self.scheme, userinfo, self.addr, path)
        }

        pub fn set_behavior(&self, b: Behavior) {
            *self.inner.behavior.lock().unwrap() = b;
        }

        pub fn requests(&self) -> Vec<Req> {
            self.inner.reqs.lock().unwrap().clone()
        }

        pub fn tls_failures(&self) -> usize {
            self.inner.tls_failures.load(Ordering::SeqCst)
        }

        /// Closes every open connection (the server "crashes").
        pub fn kill_connections(&self) {
            for c in self.inner.conns.lock().unwrap().drain(..) {
                c.abort();
            }
        }
    }

    impl Drop for TestServer {
        fn drop(&mut self) {
            if let Some(rt) = self.rt.take() {
                rt.shutdown_background();
            }
        }
    }

    enum Stream {
        Plain(TcpStream),
        Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    }

    impl Stream {
        fn reset(self) {
            match self {
                Stream::Plain(s) => {
                    let _ = s.set_zero_linger();
                }
                Stream::Tls(s) => {
                    let _ = s.get_ref().0.set_zero_linger();
                }
            }
        }
    }

    impl AsyncRead for Stream {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            match self.get_mut() {
                Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
                Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            }
        }
    }

    impl AsyncWrite for Stream {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            match self.get_mut() {
                Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
                Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            }
        }
        fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            match self.get_mut() {
                Stream::Plain(s) => Pin::new(s).poll_flush(cx),
                Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            }
        }
        fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            match self.get_mut() {
                Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
                Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            }
        }
    }

    fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
        hay.windows(needle.len()).position(|w| w == needle)
    }

    struct Conn {
        s: Stream,
        buf: Vec<u8>,
        slow: Option<(usize, Duration)>,
    }

    impl Conn {
        /// Reads more bytes; 0 at EOF or error.
        async fn fill(&mut self) -> usize {
            let cap = self.slow.map(|(b, _)| b).unwrap_or(64 * 1024);
            let mut tmp = vec![0u8; cap];
            let n = self.s.read(&mut tmp).await.unwrap_or(0);
            self.buf.extend_from_slice(&tmp[..n]);
            if let Some((_, pause)) = self.slow {
                tokio::time::sleep(pause).await;
            }
            n
        }

        async fn line(&mut self) -> Option<String> {
            loop {
                if let Some(p) = find(&self.buf, b"\r\n") {
                    let l = String::from_utf8_lossy(&self.buf[..p]).to_string();
                    self.buf.drain(..p + 2);
                    return Some(l);
                }
                if self.fill().await == 0 {
                    return None;
                }
            }
        }
    }

    fn reason(status: u16) -> &'static str {
        match status {
            200 => "OK",
            307 => "Temporary Redirect",
            401 => "Unauthorized",
            412 => "Precondition Failed",
            415 => "Unsupported Media Type",
            503 => "Service Unavailable",
            _ => "Whatever",
        }
    }

    async fn respond(s: &mut Stream, status: u16, headers: &[(String, String)], close: bool) {
        let mut r = format!(
            "HTTP/1.1 {status} {}\r\nContent-Length: 0\r\n",
            reason(status)
        );
        for (n, v) in headers {
            r.push_str(&format!("{n}: {v}\r\n"));
        }
        if close {
            r.push_str("Connection: close\r\n");
        }
        r.push_str("\r\n");
        let _ = s.write_all(r.as_bytes()).await;
        let _ = s.flush().await;
    }

    async fn handle(inner: Arc<Inner>, s: Stream, conn_id: usize) {
        let mut c = Conn {
            s,
            buf: Vec::new(),
            slow: None,
        };
        loop {
            let head_end = loop {
                if let Some(p) = find(&c.buf, b"\r\n\r\n") {
                    break p + 4;
                }
                if c.fill().await == 0 {
                    return;
                }
            };
            let head = String::from_utf8_lossy(&c.buf[..head_end]).to_string();
            c.buf.drain(..head_end);
            let mut lines = head.split("\r\n");
            let mut rl = lines.next().unwrap_or("").split(' ');
            let method = rl.next().unwrap_or("").to_string();
            let path = rl.next().unwrap_or("").to_string();
            let headers: Vec<(String, String)> = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
                .collect();
            let chunked = headers.iter().any(|(n, v)| {
                n.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
            });
            let index = {
                let mut reqs = inner.reqs.lock().unwrap();
                let index = reqs.len();
                reqs.push(Req {
                    index,
                    conn: conn_id,
                    method,
                    path,
                    headers: headers.clone(),
                    chunked,
                    ..Req::default()
                });
                index
            };
            let snapshot = inner.reqs.lock().unwrap()[index].clone();
            let behavior = inner.behavior.lock().unwrap().clone();
            let action = behavior(&snapshot);
            let set_answer = |st: u16| inner.reqs.lock().unwrap()[index].answered = Some(st);
            let (status, extra, reset_after) = match action {
                Action::Early(st, h) => {
                    set_answer(st);
                    respond(&mut c.s, st, &h, true).await;
                    let _ = c.s.shutdown().await;
                    // Drain until the client closes so no RST destroys the answer.
                    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
                    let mut tmp = vec![0u8; 64 * 1024];
                    while let Ok(Ok(n)) =
                        tokio::time::timeout_at(deadline, c.s.read(&mut tmp)).await
                    {
                        if n == 0 {
                            break;
                        }
                    }
                    return;
                }
                Action::Stall => {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    return;
                }
                Action::SlowRead { bytes, pause } => {
                    c.slow = Some((bytes, pause));
                    (200, vec![], None)
                }
                Action::Respond(st, h) => (st, h, None),
                Action::ResetAfter(n) => (200, vec![], Some(n)),
            };
            let append = |data: &[u8]| {
                inner.reqs.lock().unwrap()[index]
                    .body
                    .extend_from_slice(data)
            };
            let mut body_len = 0usize;
            if chunked {
                loop {
                    let Some(line) = c.line().await else { return };
                    let Ok(size) =
                        usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                    else {
                        return;
                    };
                    if size == 0 {
                        let Some(_trailer_end) = c.line().await else {
                            return;
                        };
                        break;
                    }
                    inner.reqs.lock().unwrap()[index].chunk_sizes.push(size);
                    let mut remaining = size;
                    while remaining > 0 {
                        if c.buf.is_empty() && c.fill().await == 0 {
                            return;
                        }
                        let mut take = remaining.min(c.buf.len());
                        if let Some(n) = reset_after {
                            take = take.min(n - body_len);
                        }
                        append(&c.buf[..take]);
                        c.buf.drain(..take);
                        remaining -= take;
                        body_len += take;
                        if reset_after == Some(body_len) {
                            c.s.reset();
                            return;
                        }
                    }
                    while c.buf.len() < 2 {
                        if c.fill().await == 0 {
                            return;
                        }
                    }
                    c.buf.drain(..2);
                }
            } else {
                let len: usize = headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0);
                while c.buf.len() < len {
                    if c.fill().await == 0 {
                        return;
                    }
                }
                append(&c.buf[..len]);
                c.buf.drain(..len);
            }
            inner.reqs.lock().unwrap()[index].complete = true;
            c.slow = None;
            set_answer(status);
            respond(&mut c.s, status, &extra, false).await;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Fixtures

const TICKS: u64 = 20_000_000; // 2 s fragments at 10 MHz

fn opts() -> PushOptions {
    logs();
    PushOptions {
        mode: PushMode::Hot,
        replay_window_secs: 0.0,
        send_eos: false,
        connect_timeout_secs: 1.0,
        send_timeout_secs: 1.0,
        max_backoff_secs: 0.05,
        ca_file: None,
        client_cert: None,
        client_key: None,
        stream_suffix: None,
        box_id: None,
        queue_fragments: 64,
    }
}

fn bx(fourcc: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut v = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
    v.extend_from_slice(fourcc);
    v.extend_from_slice(payload);
    v
}

/// ftyp (protocol.md §8.2) + live-manifest uuid box + a moov.
fn header(stream_id: &str, track_ids: &[u32]) -> StreamHeader {
    let ftyp = hex::decode("000000186674797069736d6c000000017069666669736f32").unwrap();
    let mut uuid = hex::decode("a5d40b30e81411ddba2f0800200c9a6600000000").unwrap();
    uuid.extend_from_slice(format!("<smil><!-- {stream_id} --></smil>").as_bytes());
    let bytes = [
        ftyp,
        bx(b"uuid", &uuid),
        bx(b"moov", &bx(b"mvhd", &[0u8; 8])),
    ]
    .concat();
    StreamHeader {
        stream_id: stream_id.to_string(),
        track_ids: track_ids.to_vec(),
        bytes: Bytes::from(bytes),
    }
}

/// A fake fragment: moof (track, sequence) + mdat of `payload` bytes.
fn frag(track: u32, seq: u32, payload: usize) -> Arc<Fragment> {
    let mut moof = Vec::new();
    moof.extend_from_slice(&track.to_be_bytes());
    moof.extend_from_slice(&seq.to_be_bytes());
    let bytes = [bx(b"moof", &moof), bx(b"mdat", &vec![seq as u8; payload])].concat();
    Arc::new(Fragment {
        track_id: track,
        sequence: seq,
        time: 1_700_000_000 * 10_000_000 + u64::from(seq) * TICKS,
        duration: TICKS,
        bytes: Bytes::from(bytes),
    })
}

/// Top-level boxes of a body: (fourcc, bytes).
fn boxes(body: &[u8]) -> Vec<(String, &[u8])> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 8 <= body.len() {
        let size = u32::from_be_bytes(body[pos..pos + 4].try_into().unwrap()) as usize;
        if size < 8 || pos + size > body.len() {
            break;
        }
        let fourcc = String::from_utf8_lossy(&body[pos + 4..pos + 8]).to_string();
        out.push((fourcc, &body[pos..pos + size]));
        pos += size;
    }
    out
}

/// (track, sequence) of every moof in a body.
fn frags_in(body: &[u8]) -> Vec<(u32, u32)> {
    boxes(body)
        .into_iter()
        .filter(|(f, _)| f == "moof")
        .map(|(_, b)| {
            (
                u32::from_be_bytes(b[8..12].try_into().unwrap()),
                u32::from_be_bytes(b[12..16].try_into().unwrap()),
            )
        })
        .collect()
}

fn dest(name: &str, url: String, role: Role) -> DestinationPlan {
    DestinationPlan {
        name: name.to_string(),
        url,
        role,
    }
}

fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        if start.elapsed() > timeout {
            panic!("timed out waiting for: {what}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until every session is live (fragments submitted earlier would sit in the replay
/// buffer, whose window the tests keep at zero: only the last two per track survive).
fn wait_live(pusher: &Pusher, dest: &str) {
    wait_until("sessions live", Duration::from_secs(5), || {
        pusher
            .status()
            .iter()
            .filter(|s| s.destination == dest)
            .all(|s| s.state == SessionState::Live)
    });
}

fn posts<'a>(reqs: &'a [Req], path_part: &str) -> Vec<&'a Req> {
    reqs.iter()
        .filter(|r| r.chunked && r.path.contains(path_part))
        .collect()
}

fn status_of<'a>(st: &'a [SessionStatus], dest: &str, stream: &str) -> &'a SessionStatus {
    st.iter()
        .find(|s| s.destination == dest && s.stream_id == stream)
        .unwrap_or_else(|| panic!("no session {dest}/{stream}"))
}

#[derive(Clone, Default)]
struct LogBuf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuf {
    type Writer = LogBuf;
    fn make_writer(&'a self) -> LogBuf {
        self.clone()
    }
}

static LOGS: std::sync::OnceLock<LogBuf> = std::sync::OnceLock::new();

/// Every log line of this test binary (TRACE and up, the pushers' tasks included). One global
/// subscriber for all tests: scoped per-test subscribers race on tracing's callsite interest
/// cache when tests run in parallel. Tests tell their lines apart by a unique channel name.
fn logs() -> &'static LogBuf {
    LOGS.get_or_init(|| {
        let buf = LogBuf::default();
        let sub = tracing_subscriber::fmt()
            .with_writer(buf.clone())
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(sub).expect("no other global subscriber");
        buf
    })
}

fn all_logs() -> String {
    String::from_utf8_lossy(&logs().0.lock().unwrap()).into_owned()
}

/// The log lines that mention `marker` (a channel name unique to one test).
fn logs_of(marker: &str) -> String {
    all_logs()
        .lines()
        .filter(|l| l.contains(marker))
        .collect::<Vec<_>>()
        .join("\n")
}

// ---------------------------------------------------------------------------------------------
// Scenarios

#[test]
fn probe_then_chunked_post_per_stream() {
    for send_eos in [false, true] {
        let server = TestServer::start(server::ok());
        let streams = vec![
            header("ch-v1", &[1]),
            header("ch-a", &[2]),
            // Redundant audio: the same track in a second stream.
            header("ch-a2", &[2]),
        ];
        let headers: Vec<Bytes> = streams.iter().map(|s| s.bytes.clone()).collect();
        let pusher = Pusher::start(
            "ch",
            streams,
            &[dest("primary", server.url("/live/ch.isml"), Role::Primary)],
            &PushOptions { send_eos, ..opts() },
            SystemClocks::new(),
        )
        .unwrap();
        // (Fragments submitted while connecting would go to the replay buffer, whose window
        // is zero here — wait for the POSTs so every fragment is expected on the wire.)
        wait_until("all sessions live", Duration::from_secs(5), || {
            pusher
                .status()
                .iter()
                .all(|s| s.state == SessionState::Live)
        });
        let mut sent = Vec::new();
        for k in 0..4 {
            for track in [1, 2] {
                let f = frag(track, k, 500 + 100 * k as usize);
                sent.push(f.clone());
                pusher.submit(f);
            }
        }
        wait_until(
            "every stream got 4 fragments",
            Duration::from_secs(5),
            || {
                let reqs = server.requests();
                ["(ch-v1)", "(ch-a)", "(ch-a2)"].iter().all(|p| {
                    posts(&reqs, p)
                        .last()
                        .is_some_and(|r| frags_in(&r.body).len() == 4)
                })
            },
        );
        let status = pusher.finish(Duration::from_secs(3));
        let reqs = server.requests();
        for (i, (id, track)) in [("ch-v1", 1u32), ("ch-a", 2), ("ch-a2", 2)]
            .iter()
            .enumerate()
        {
            let path = format!("/live/ch.isml/Streams({id})");
            let mine: Vec<&Req> = reqs.iter().filter(|r| r.path == path).collect();
            assert_eq!(mine.len(), 2, "{path}: one probe and one POST: {mine:?}");
            let (probe, post) = (mine[0], mine[1]);
            assert_eq!(probe.method, "POST");
            assert!(probe.is_probe(), "probe has Content-Length: 0: {probe:?}");
            assert!(probe.body.is_empty());
            assert_eq!(probe.answered, Some(200));
            // The probe's keep-alive connection carries the long POST.
            assert_eq!(probe.conn, post.conn);
            assert_eq!(post.method, "POST");
            assert!(post.chunked);
            assert_eq!(
                post.header("content-length"),
                None,
                "no Content-Length with chunked"
            );
            assert!(post.complete, "{path}: terminated with 0\\r\\n\\r\\n");
            assert_eq!(post.answered, Some(200));
            // Body: the header bytes, then this track's fragments in order, then maybe mfra.
            let hdr = &headers[i];
            assert_eq!(&post.body[..hdr.len()], &hdr[..]);
            let mut expect = hdr.to_vec();
            for f in sent.iter().filter(|f| f.track_id == *track) {
                expect.extend_from_slice(&f.bytes);
            }
            if send_eos {
                expect.extend_from_slice(&hex::decode("000000086d667261").unwrap());
            }
            assert_eq!(post.body, expect, "{path} body (send_eos={send_eos})");
            // One chunk per header box, one per fragment, one for the EOS.
            let mut sizes = vec![24, hdr.len() - 24 - 24, 24];
            sizes.extend(
                sent.iter()
                    .filter(|f| f.track_id == *track)
                    .map(|f| f.bytes.len()),
            );
            if send_eos {
                sizes.push(8);
            }
            assert_eq!(post.chunk_sizes, sizes);
            let st = status_of(&status, "primary", id);
            assert_eq!(st.state, SessionState::Stopped);
            assert_eq!(st.fragments_sent, 4);
            assert_eq!(st.last_http_status, Some(200));
            assert_eq!(st.reconnects, 0);
            assert_eq!(st.last_error, None);
        }
    }
}

#[test]
fn reset_mid_fragment_reconnects_and_resends_headers_and_last_two() {
    let h = header("ch-v1", &[1]);
    let fsize = frag(1, 0, 3000).bytes.len();
    // Reset in the middle of fragment 3: header + fragments 1, 2 + half of 3.
    let reset_at = h.bytes.len() + 2 * fsize + fsize / 2;
    let server = TestServer::start(Arc::new(move |r: &Req| {
        if r.chunked && r.index == 1 {
            Action::ResetAfter(reset_at)
        } else {
            Action::Respond(200, vec![])
        }
    }));
    let pusher = Pusher::start(
        "ch",
        vec![h.clone()],
        &[dest("primary", server.url("/live/ch.isml"), Role::Primary)],
        &opts(),
        SystemClocks::new(),
    )
    .unwrap();
    wait_live(&pusher, "primary");
    for k in 1..=3 {
        pusher.submit(frag(1, k, 3000));
    }
    wait_until(
        "second POST carries the replay",
        Duration::from_secs(5),
        || {
            posts(&server.requests(), "ch-v1")
                .get(1)
                .is_some_and(|r| frags_in(&r.body).len() >= 2)
        },
    );
    for k in 4..=5 {
        pusher.submit(frag(1, k, 3000));
    }
    wait_until(
        "second POST carries the live fragments",
        Duration::from_secs(5),
        || {
            posts(&server.requests(), "ch-v1")
                .get(1)
                .is_some_and(|r| frags_in(&r.body).len() >= 4)
        },
    );
    let status = pusher.finish(Duration::from_secs(3));
    let reqs = server.requests();
    let p = posts(&reqs, "ch-v1");
    assert_eq!(p.len(), 2);
    assert!(!p[0].complete);
    // Cut inside fragment 3's mdat (its moof got through).
    assert_eq!(p[0].body.len(), reset_at);
    assert_eq!(frags_in(&p[0].body), vec![(1, 1), (1, 2), (1, 3)]);
    // The second POST: a new connection, probed again, byte-identical header.
    assert_ne!(p[0].conn, p[1].conn);
    assert!(reqs[p[1].index - 1].is_probe());
    assert_eq!(&p[0].body[..h.bytes.len()], &h.bytes[..]);
    assert_eq!(&p[1].body[..h.bytes.len()], &h.bytes[..]);
    // The last two fragments before the failure (2 and the cut 3), then live.
    assert_eq!(frags_in(&p[1].body), vec![(1, 2), (1, 3), (1, 4), (1, 5)]);
    assert!(p[1].complete);
    let st = status_of(&status, "primary", "ch-v1");
    assert_eq!(st.reconnects, 1);
    assert!(st.last_error.is_some(), "{st:?}");
    assert_eq!(st.last_http_status, Some(200));
}

#[test]
fn status_412_makes_encoder_resend_headers() {
    let h = header("ch-v1", &[1]);
    let server = TestServer::start(Arc::new(|r: &Req| {
        if r.chunked && r.index == 1 {
            Action::Early(412, vec![])
        } else {
            Action::Respond(200, vec![])
        }
    }));
    let status = {
        let pusher = Pusher::start(
            "ch412",
            vec![h.clone()],
            &[dest("primary", server.url("/live/ch.isml"), Role::Primary)],
            // A long backoff: a 412 must not wait for it.
            &PushOptions {
                max_backoff_secs: 10.0,
                ..opts()
            },
            SystemClocks::new(),
        )
        .unwrap();
        pusher.submit(frag(1, 1, 2000));
        wait_until(
            "a second POST after the 412",
            Duration::from_secs(5),
            || {
                posts(&server.requests(), "ch-v1")
                    .get(1)
                    .is_some_and(|r| !frags_in(&r.body).is_empty())
            },
        );
        pusher.submit(frag(1, 2, 2000));
        wait_until("fragment 2", Duration::from_secs(5), || {
            posts(&server.requests(), "ch-v1")
                .get(1)
                .is_some_and(|r| frags_in(&r.body).len() == 2)
        });
        pusher.finish(Duration::from_secs(3))
    };
    let logs = logs_of("ch412");
    let reqs = server.requests();
    let p = posts(&reqs, "ch-v1");
    assert_eq!(p[0].answered, Some(412));
    assert_eq!(
        &p[1].body[..h.bytes.len()],
        &h.bytes[..],
        "header sent again"
    );
    assert_eq!(frags_in(&p[1].body), vec![(1, 1), (1, 2)]);
    assert!(
        logs.lines()
            .any(|l| l.contains("reconnecting at once") && l.contains("412")),
        "{logs}"
    );
    assert!(!logs.contains("reconnecting after backoff"), "{logs}");
    let st = status_of(&status, "primary", "ch-v1");
    assert_eq!(st.reconnects, 1);
    assert!(st.last_error.as_deref().unwrap_or("").contains("412"));
}

#[test]
fn status_415_stops_session_and_alerts() {
    let server = TestServer::start(Arc::new(|r: &Req| {
        if r.chunked && r.path.contains("ch-v1") {
            Action::Early(415, vec![])
        } else {
            Action::Respond(200, vec![])
        }
    }));
    let status = {
        let pusher = Pusher::start(
            "ch415",
            vec![header("ch-v1", &[1]), header("ch-a", &[2])],
            &[dest("primary", server.url("/live/ch.isml"), Role::Primary)],
            &opts(),
            SystemClocks::new(),
        )
        .unwrap();
        wait_until("the video session fails", Duration::from_secs(5), || {
            pusher.status()[0].state == SessionState::Failed
        });
        for k in 0..3 {
            pusher.submit(frag(1, k, 100));
            pusher.submit(frag(2, k, 100));
        }
        wait_until("audio carries 3 fragments", Duration::from_secs(5), || {
            posts(&server.requests(), "ch-a")
                .last()
                .is_some_and(|r| frags_in(&r.body).len() == 3)
        });
        // Give a retrying session time to show itself.
        std::thread::sleep(Duration::from_millis(300));
        pusher.finish(Duration::from_secs(3))
    };
    let logs = logs_of("ch415");
    let reqs = server.requests();
    let video: Vec<&Req> = reqs.iter().filter(|r| r.path.contains("ch-v1")).collect();
    assert_eq!(video.len(), 2, "probe + one POST, then no retry: {video:?}");
    let st = status_of(&status, "primary", "ch-v1");
    assert_eq!(st.state, SessionState::Failed);
    assert_eq!(st.last_http_status, Some(415));
    assert!(st.last_error.as_deref().unwrap_or("").contains("415"));
    let audio = status_of(&status, "primary", "ch-a");
    assert_eq!(audio.state, SessionState::Stopped);
    assert_eq!(audio.fragments_sent, 3);
    assert!(
        logs.lines()
            .any(|l| l.contains("ERROR") && l.contains("alert") && l.contains("ch-v1")),
        "{logs}"
    );
}

#[test]
fn status_409_resumes_at_live_edge_and_403_is_counted() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let h = header("ch-v1", &[1]);
    let server = TestServer::start(server::ok());
    // A host name: resolved (again) on every connect.
    let url = format!("http://localhost:{}/live/ch.isml", server.addr.port());
    let status = {
        let pusher = Pusher::start(
            "ch409",
            vec![h.clone()],
            &[dest("primary", url, Role::Primary)],
            &opts(),
            SystemClocks::new(),
        )
        .unwrap();
        wait_live(&pusher, "primary");
        pusher.submit(frag(1, 1, 100));
        pusher.submit(frag(1, 2, 100));
        wait_until(
            "first POST carries 2 fragments",
            Duration::from_secs(5),
            || {
                posts(&server.requests(), "ch-v1")
                    .first()
                    .is_some_and(|r| frags_in(&r.body).len() == 2)
            },
        );
        // The next long POSTs: 409 (timeline rejected), then 403, then accepted.
        let n = Arc::new(AtomicUsize::new(0));
        server.set_behavior(Arc::new(move |r: &Req| {
            if !r.chunked {
                return Action::Respond(200, vec![]);
            }
            match n.fetch_add(1, Ordering::SeqCst) {
                0 => Action::Early(409, vec![]),
                1 => Action::Early(403, vec![]),
                _ => Action::Respond(200, vec![]),
            }
        }));
        server.kill_connections();
        wait_until("a fourth POST", Duration::from_secs(5), || {
            posts(&server.requests(), "ch-v1").len() == 4
        });
        pusher.submit(frag(1, 3, 100));
        wait_until("fragment 3", Duration::from_secs(5), || {
            posts(&server.requests(), "ch-v1")
                .get(3)
                .is_some_and(|r| frags_in(&r.body).len() == 1)
        });
        pusher.finish(Duration::from_secs(3))
    };
    let reqs = server.requests();
    let p = posts(&reqs, "ch-v1");
    assert_eq!(p[1].answered, Some(409));
    assert_eq!(p[2].answered, Some(403));
    assert_eq!(&p[3].body[..h.bytes.len()], &h.bytes[..]);
    // After a 409 the server refuses times it has: no replay of 1 and 2.
    assert_eq!(frags_in(&p[3].body), vec![(1, 3)]);
    let st = status_of(&status, "primary", "ch-v1");
    assert_eq!(st.forbidden, 1);
    assert_eq!(st.reconnects, 3, "{st:?}");
    assert_eq!(st.last_http_status, Some(200));
    let logs = logs_of("ch409");
    assert!(logs.contains("timeline rejected"), "{logs}");
    assert!(logs.contains("403"), "{logs}");
}

#[test]
fn stalled_server_hits_send_timeout_and_reconnects() {
    let h = header("ch-v1", &[1]);
    let server = TestServer::start(Arc::new(|r: &Req| {
        if r.chunked && r.index == 1 {
            Action::Stall
        } else {
            Action::Respond(200, vec![])
        }
    }));
    let pusher = Pusher::start(
        "ch",
        vec![h.clone()],
        &[dest("primary", server.url("/live/ch.isml"), Role::Primary)],
        &PushOptions {
            send_timeout_secs: 0.3,
            ..opts()
        },
        SystemClocks::new(),
    )
    .unwrap();
    // 12 MB: more than the socket buffers of a stalled loopback connection hold.
    for k in 1..=12 {
        pusher.submit(frag(1, k, 1 << 20));
    }
    wait_until(
        "a second POST carrying fragment 12",
        Duration::from_secs(10),
        || {
            posts(&server.requests(), "ch-v1")
                .get(1)
                .is_some_and(|r| frags_in(&r.body).last() == Some(&(1, 12)))
        },
    );
    let mid = pusher.status();
    let status = pusher.finish(Duration::from_secs(3));
    let reqs = server.requests();
    let p = posts(&reqs, "ch-v1");
    assert_eq!(p.len(), 2);
    assert!(p[0].body.is_empty(), "the stalled POST was never read");
    assert_eq!(&p[1].body[..h.bytes.len()], &h.bytes[..]);
    let got = frags_in(&p[1].body);
    // Contiguous up to the last fragment: replay of the last two sent, then the queue.
    assert!(got.windows(2).all(|w| w[1].1 == w[0].1 + 1), "{got:?}");
    assert!(got.len() >= 2);
    let st = status_of(&status, "primary", "ch-v1");
    assert_eq!(st.reconnects, 1);
    let err = status_of(&mid, "primary", "ch-v1").last_error.clone();
    assert!(
        err.as_deref().unwrap_or("").contains("send timed out"),
        "{err:?}"
    );
    assert!(p[1].complete);
}

#[test]
fn redirect_is_followed() {
    let target = TestServer::start(server::ok());
    let moved = target.url("/moved/ch.isml/Streams(ch-v1)");
    let origin = TestServer::start(Arc::new(move |_r: &Req| {
        Action::Respond(307, vec![("Location".to_string(), moved.clone())])
    }));
    let pusher = Pusher::start(
        "ch",
        vec![header("ch-v1", &[1])],
        &[dest("primary", origin.url("/live/ch.isml"), Role::Primary)],
        &opts(),
        SystemClocks::new(),
    )
    .unwrap();
    pusher.submit(frag(1, 1, 100));
    pusher.submit(frag(1, 2, 100));
    wait_until(
        "the redirect target gets the fragments",
        Duration::from_secs(5),
        || {
            posts(&target.requests(), "ch-v1")
                .last()
                .is_some_and(|r| frags_in(&r.body).len() == 2)
        },
    );
    let status = pusher.finish(Duration::from_secs(3));
    let o = origin.requests();
    assert_eq!(o.len(), 1, "only the first probe goes to the origin: {o:?}");
    assert!(o[0].is_probe());
    let t = target.requests();
    assert_eq!(t.len(), 2);
    assert!(t[0].is_probe());
    assert_eq!(t[0].path, "/moved/ch.isml/Streams(ch-v1)");
    assert!(t[1].chunked && t[1].complete);
    assert_eq!(t[1].path, "/moved/ch.isml/Streams(ch-v1)");
    let st = status_of(&status, "primary", "ch-v1");
    assert_eq!(st.url, target.url("/moved/ch.isml/Streams(ch-v1)"));
    assert_eq!(st.reconnects, 0);
}

/// Checks an RFC 7616 MD5/qop=auth answer the way a server would.
fn digest_ok(auth: &str, path: &str, user: &str, pass: &str, realm: &str, nonce: &str) -> bool {
    use md5::{Digest, Md5};
    let h = |s: String| hex::encode(Md5::digest(s.as_bytes()));
    let Some(params) = auth.strip_prefix("Digest ") else {
        return false;
    };
    let get = |k: &str| -> String {
        params
            .split(", ")
            .find_map(|p| p.strip_prefix(&format!("{k}=")))
            .unwrap_or("")
            .trim_matches('"')
            .to_string()
    };
    if get("username") != user || get("uri") != path || get("nonce") != nonce {
        return false;
    }
    let ha1 = h(format!("{user}:{realm}:{pass}"));
    let ha2 = h(format!("POST:{path}"));
    let expect = h(format!(
        "{ha1}:{nonce}:{}:{}:auth:{ha2}",
        get("nc"),
        get("cnonce")
    ));
    get("qop") == "auth" && get("response") == expect && get("opaque") == "opq"
}

#[test]
fn basic_auth_and_digest_auth() {
    let basic = TestServer::start(Arc::new(|r: &Req| {
        // base64("enc:pa ss")
        if r.header("authorization") == Some("Basic ZW5jOnBhIHNz") {
            Action::Respond(200, vec![])
        } else {
            Action::Respond(
                401,
                vec![("WWW-Authenticate".into(), "Basic realm=\"ingest\"".into())],
            )
        }
    }));
    let nc_seen = Arc::new(Mutex::new(Vec::new()));
    let nc2 = nc_seen.clone();
    let digest = TestServer::start(Arc::new(move |r: &Req| {
        let challenge = (
            "WWW-Authenticate".to_string(),
            "Digest realm=\"live@test\", qop=\"auth\", nonce=\"n0nce42\", opaque=\"opq\", algorithm=MD5"
                .to_string(),
        );
        match r.header("authorization") {
            Some(a) if digest_ok(a, &r.path, "enc", "pa ss", "live@test", "n0nce42") => {
                let nc = a.split("nc=").nth(1).map(|s| s[..8].to_string());
                nc2.lock().unwrap().push(nc);
                Action::Respond(200, vec![])
            }
            _ if r.chunked => Action::Early(401, vec![challenge]),
            _ => Action::Respond(401, vec![challenge]),
        }
    }));
    let pusher = Pusher::start(
        "ch",
        vec![header("ch-v1", &[1])],
        &[
            dest(
                "primary",
                basic.url_with_userinfo("enc:pa%20ss", "/live/ch.isml"),
                Role::Primary,
            ),
            dest(
                "backup",
                digest.url_with_userinfo("enc:pa%20ss", "/live/ch.isml"),
                Role::Backup,
            ),
        ],
        &opts(),
        SystemClocks::new(),
    )
    .unwrap();
    pusher.submit(frag(1, 1, 100));
    pusher.submit(frag(1, 2, 100));
    for s in [&basic, &digest] {
        wait_until(
            "authenticated POST carries fragments",
            Duration::from_secs(5),
            || {
                posts(&s.requests(), "ch-v1")
                    .last()
                    .is_some_and(|r| frags_in(&r.body).len() == 2)
            },
        );
    }
    let status = pusher.finish(Duration::from_secs(3));
    for s in [&basic, &digest] {
        let reqs = s.requests();
        // Challenge first: no credentials are sent before the server asks.
        assert_eq!(reqs[0].header("authorization"), None);
        assert_eq!(reqs[0].answered, Some(401));
        assert!(reqs[1].is_probe());
        assert_eq!(reqs[1].answered, Some(200));
        assert!(reqs[2].chunked && reqs[2].complete);
        assert_eq!(reqs[2].answered, Some(200));
        assert_eq!(reqs.len(), 3, "{reqs:?}");
    }
    // The nonce count grows per request with the same nonce.
    assert_eq!(
        *nc_seen.lock().unwrap(),
        vec![Some("00000001".to_string()), Some("00000002".to_string())]
    );
    for st in &status {
        assert_eq!(st.state, SessionState::Stopped);
        assert_eq!(st.fragments_sent, 2);
        assert_eq!(st.reconnects, 0, "{st:?}");
    }
}

#[test]
fn basic_auth_credentials_never_logged() {
    const USER: &str = "ingest-user-7";
    const PASS: &str = "s3cr3t!Pa55w0rd";
    let good = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{USER}:{PASS}")
        )
    );
    let good2 = good.clone();
    let server = TestServer::start(Arc::new(move |r: &Req| {
        if r.header("authorization") != Some(good2.as_str()) {
            Action::Respond(
                401,
                vec![("WWW-Authenticate".into(), "Basic realm=\"x\"".into())],
            )
        } else if r.chunked && r.index == 2 {
            // A failure on the long POST, so the error paths log too.
            Action::Early(503, vec![])
        } else {
            Action::Respond(200, vec![])
        }
    }));
    let url = server.url_with_userinfo(
        &format!("{USER}:s3cr3t%21Pa55w0rd"),
        "/live/ch.isml?token=abc",
    );
    let (mid, status) = {
        let pusher = Pusher::start(
            "chcred",
            vec![header("ch-v1", &[1])],
            &[dest("primary", url.clone(), Role::Primary)],
            &opts(),
            SystemClocks::new(),
        )
        .unwrap();
        pusher.submit(frag(1, 1, 100));
        wait_until(
            "the second POST carries the fragment",
            Duration::from_secs(5),
            || {
                posts(&server.requests(), "ch-v1")
                    .get(1)
                    .is_some_and(|r| frags_in(&r.body).len() == 1)
            },
        );
        let mid = pusher.status();
        (mid, pusher.finish(Duration::from_secs(3)))
    };
    // The capture works and saw the error path, with context.
    let logs = logs_of("chcred");
    assert!(logs.contains("503"), "{logs}");
    assert!(logs.contains("ch-v1"), "{logs}");
    assert!(logs.contains("/live/ch.isml/Streams(ch-v1)"), "{logs}");
    assert!(logs.contains("fragment sent"), "{logs}");
    let status_text = format!("{mid:?}{status:?}");
    let b64 = good.trim_start_matches("Basic ");
    // Every line of every test, not just this channel's.
    let everything = all_logs();
    for secret in [PASS, "s3cr3t%21Pa55w0rd", USER, b64, "token=abc"] {
        assert!(
            !everything.contains(secret),
            "'{secret}' leaked into the logs:\n{everything}"
        );
        assert!(
            !status_text.contains(secret),
            "'{secret}' leaked into the status: {status_text}"
        );
    }
    // And the server did get the right credentials.
    assert!(server
        .requests()
        .iter()
        .any(|r| r.chunked && r.complete && r.header("authorization") == Some(good.as_str())));
}

#[test]
fn slow_destination_is_marked_behind_and_does_not_stall_others() {
    let fast = TestServer::start(server::ok());
    let slow = TestServer::start(Arc::new(|r: &Req| {
        if r.chunked {
            Action::SlowRead {
                bytes: 8 * 1024,
                pause: Duration::from_millis(50),
            }
        } else {
            Action::Respond(200, vec![])
        }
    }));
    let pusher = Pusher::start(
        "ch",
        vec![header("ch-v1", &[1])],
        &[
            dest("fast", fast.url("/live/ch.isml"), Role::Primary),
            dest("slow", slow.url("/live/ch.isml"), Role::Backup),
        ],
        &PushOptions {
            // Slow, not dead: no send timeout during the test.
            send_timeout_secs: 30.0,
            queue_fragments: 4,
            ..opts()
        },
        SystemClocks::new(),
    )
    .unwrap();
    wait_until("both sessions live", Duration::from_secs(5), || {
        pusher
            .status()
            .iter()
            .all(|s| s.state == SessionState::Live)
    });
    // 20 MB: far more than the socket buffers between us and a slow reader can hold.
    let mut worst = Duration::ZERO;
    let mut saw_behind = false;
    for k in 1..=40 {
        let f = frag(1, k, 512 * 1024);
        let t = Instant::now();
        pusher.submit(f);
        worst = worst.max(t.elapsed());
        saw_behind |= status_of(&pusher.status(), "slow", "ch-v1").behind;
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(saw_behind, "the slow destination was never marked behind");
    assert!(
        worst < Duration::from_millis(250),
        "submit blocked for {worst:?}"
    );
    wait_until(
        "the fast destination gets every fragment",
        Duration::from_secs(10),
        || {
            posts(&fast.requests(), "ch-v1")
                .last()
                .is_some_and(|r| frags_in(&r.body).len() == 40)
        },
    );
    let mid = pusher.status();
    let slow_st = status_of(&mid, "slow", "ch-v1");
    assert!(slow_st.fragments_dropped > 0, "{slow_st:?}");
    assert_eq!(status_of(&mid, "fast", "ch-v1").fragments_dropped, 0);
    let status = pusher.finish(Duration::from_secs(1));
    let f = posts(&fast.requests(), "ch-v1")[0].clone();
    assert!(f.complete);
    assert_eq!(
        frags_in(&f.body),
        (1..=40).map(|k| (1, k)).collect::<Vec<_>>()
    );
    assert_eq!(
        status_of(&status, "fast", "ch-v1").state,
        SessionState::Stopped
    );
    assert_eq!(status_of(&status, "fast", "ch-v1").last_error, None);
    let slow_final = status_of(&status, "slow", "ch-v1");
    assert_eq!(slow_final.state, SessionState::Stopped);
    assert!(slow_final.last_error.is_some(), "{slow_final:?}");
}

#[test]
fn failover_mode_uses_backup_only_while_primary_down() {
    let primary = TestServer::start(server::ok());
    let backup = TestServer::start(server::ok());
    let h = header("ch-v1", &[1]);
    let pusher = Pusher::start(
        "ch",
        vec![h.clone()],
        &[
            dest("main", primary.url("/live/ch.isml"), Role::Primary),
            dest("spare", backup.url("/live/ch.isml"), Role::Backup),
        ],
        &PushOptions {
            mode: PushMode::Failover,
            ..opts()
        },
        SystemClocks::new(),
    )
    .unwrap();
    // Phase 1: primary healthy — the backup stays in standby, unconnected, buffering.
    wait_live(&pusher, "main");
    for k in 0..3 {
        pusher.submit(frag(1, k, 100));
    }
    wait_until("primary has 3 fragments", Duration::from_secs(5), || {
        posts(&primary.requests(), "ch-v1")
            .last()
            .is_some_and(|r| frags_in(&r.body).len() == 3)
    });
    std::thread::sleep(Duration::from_millis(100));
    let st = pusher.status();
    let spare = status_of(&st, "spare", "ch-v1");
    assert_eq!(spare.state, SessionState::Standby);
    assert_eq!(spare.replay_depth, 2, "last two kept while standing by");
    assert!(backup.requests().is_empty());

    // Phase 2: the primary goes down — the backup goes live and replays its buffer.
    primary.set_behavior(Arc::new(|_| Action::Respond(503, vec![])));
    primary.kill_connections();
    wait_until("backup live", Duration::from_secs(5), || {
        status_of(&pusher.status(), "spare", "ch-v1").state == SessionState::Live
    });
    for k in 3..6 {
        pusher.submit(frag(1, k, 100));
    }
    wait_until("backup carries fragment 5", Duration::from_secs(5), || {
        posts(&backup.requests(), "ch-v1")
            .last()
            .is_some_and(|r| frags_in(&r.body).last() == Some(&(1, 5)))
    });
    let b = posts(&backup.requests(), "ch-v1")[0].clone();
    assert_eq!(&b.body[..h.bytes.len()], &h.bytes[..]);
    assert_eq!(
        frags_in(&b.body),
        vec![(1, 1), (1, 2), (1, 3), (1, 4), (1, 5)],
        "replay of the standby buffer, then live"
    );
    assert_ne!(
        status_of(&pusher.status(), "main", "ch-v1").state,
        SessionState::Live
    );

    // Phase 3: the primary recovers — it takes over, the backup hands back and stands by.
    primary.set_behavior(server::ok());
    wait_until("primary live again", Duration::from_secs(5), || {
        status_of(&pusher.status(), "main", "ch-v1").state == SessionState::Live
    });
    wait_until("backup back in standby", Duration::from_secs(5), || {
        status_of(&pusher.status(), "spare", "ch-v1").state == SessionState::Standby
    });
    for k in 6..8 {
        pusher.submit(frag(1, k, 100));
    }
    wait_until("primary carries fragment 7", Duration::from_secs(5), || {
        posts(&primary.requests(), "ch-v1")
            .last()
            .is_some_and(|r| frags_in(&r.body).last() == Some(&(1, 7)))
    });
    let status = pusher.finish(Duration::from_secs(3));
    let breqs = backup.requests();
    let b = posts(&breqs, "ch-v1");
    assert_eq!(b.len(), 1, "one backup POST");
    assert!(
        b[0].complete,
        "the backup closed its POST when handing back"
    );
    assert!(frags_in(&b[0].body).iter().all(|f| f.1 < 6));
    assert!(
        !b[0].body.ends_with(b"\0\0\0\x08mfra"),
        "no EOS on hand-back"
    );
    let preqs = primary.requests();
    let p = posts(&preqs, "ch-v1");
    let last = p.last().unwrap();
    assert_eq!(&last.body[..h.bytes.len()], &h.bytes[..]);
    assert_eq!(frags_in(&last.body).last(), Some(&(1, 7)));
    assert_eq!(
        status_of(&status, "spare", "ch-v1").state,
        SessionState::Stopped
    );
}

// ---------------------------------------------------------------------------------------------
// TLS

struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn path(&self, f: &str) -> std::path::PathBuf {
        self.dir.path().join(f)
    }
}

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl CLI");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A throw-away CA with a server certificate for 127.0.0.1 and a client certificate.
fn make_pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=smoothcast test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(d, &ca);
    std::fs::write(
        d.join("server.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n",
    )
    .unwrap();
    std::fs::write(
        d.join("client.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    for who in ["server", "client"] {
        let key = format!("{who}.key");
        let csr = format!("{who}.csr");
        let pem = format!("{who}.pem");
        let ext = format!("{who}.ext");
        let subj = format!("/CN={who}");
        let mut req = vec!["req"];
        req.extend(ec);
        req.extend(["-keyout", &key, "-out", &csr, "-subj", &subj]);
        openssl(d, &req);
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "2",
                "-extfile",
                &ext,
            ],
        );
    }
    Pki { dir }
}

fn tls_acceptor(pki: &Pki) -> tokio_rustls::TlsAcceptor {
    use tokio_rustls::rustls;
    let read_certs = |p: std::path::PathBuf| {
        rustls_pemfile::certs(&mut std::io::BufReader::new(
            std::fs::File::open(p).unwrap(),
        ))
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in read_certs(pki.path("ca.pem")) {
        roots.add(c).unwrap();
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let key = rustls_pemfile::private_key(&mut std::io::BufReader::new(
        std::fs::File::open(pki.path("server.key")).unwrap(),
    ))
    .unwrap()
    .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(read_certs(pki.path("server.pem")), key)
        .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

#[test]
fn tls_with_custom_ca() {
    let pki = make_pki();
    let server = TestServer::start_tls(server::ok(), tls_acceptor(&pki));
    let url = server.url("/live/ch.isml");
    let good = PushOptions {
        ca_file: Some(pki.path("ca.pem")),
        client_cert: Some(pki.path("client.pem")),
        client_key: Some(pki.path("client.key")),
        ..opts()
    };
    let no_ca = PushOptions {
        client_cert: Some(pki.path("client.pem")),
        client_key: Some(pki.path("client.key")),
        ..opts()
    };
    let no_client_cert = PushOptions {
        ca_file: Some(pki.path("ca.pem")),
        ..opts()
    };
    let start = |id: &str, o: &PushOptions| {
        Pusher::start(
            "ch",
            vec![header(id, &[1])],
            &[dest("primary", url.clone(), Role::Primary)],
            o,
            SystemClocks::new(),
        )
        .unwrap()
    };
    let ok = start("good", &good);
    let untrusted = start("noca", &no_ca);
    let anonymous = start("nocert", &no_client_cert);
    for p in [&ok, &untrusted, &anonymous] {
        p.submit(frag(1, 1, 1000));
    }
    wait_until(
        "the verified session delivers",
        Duration::from_secs(5),
        || {
            posts(&server.requests(), "Streams(good)")
                .last()
                .is_some_and(|r| frags_in(&r.body).len() == 1)
        },
    );
    wait_until(
        "the other two have failed at least once",
        Duration::from_secs(5),
        || {
            [&untrusted, &anonymous]
                .iter()
                .all(|p| p.status()[0].reconnects >= 1)
        },
    );
    let bad_ca = untrusted.status()[0].clone();
    let bad_cert = anonymous.status()[0].clone();
    let good_status = ok.finish(Duration::from_secs(3));
    untrusted.finish(Duration::from_secs(1));
    anonymous.finish(Duration::from_secs(1));

    let reqs = server.requests();
    assert!(
        reqs.iter().all(|r| r.path.contains("Streams(good)")),
        "only the verified client got an HTTP request through: {reqs:?}"
    );
    let g = posts(&reqs, "Streams(good)")[0];
    assert!(g.complete);
    assert_eq!(good_status[0].state, SessionState::Stopped);
    assert_eq!(good_status[0].last_http_status, Some(200));
    assert!(server.tls_failures() >= 2);
    let e = bad_ca.last_error.unwrap_or_default();
    assert!(
        e.contains("TLS") && e.to_lowercase().contains("certificate"),
        "{e}"
    );
    assert_ne!(bad_ca.state, SessionState::Live);
    assert!(bad_cert.last_error.is_some());
    assert_ne!(bad_cert.state, SessionState::Live);
}

#[test]
fn bad_urls_and_options_are_rejected_at_start() {
    let d = |url: &str| vec![dest("primary", url.to_string(), Role::Primary)];
    let start = |dests: Vec<DestinationPlan>, o: PushOptions| {
        Pusher::start(
            "ch",
            vec![header("ch-v1", &[1])],
            &dests,
            &o,
            SystemClocks::new(),
        )
    };
    let e = start(d("ftp://u:hunter2@h/x.isml"), opts()).err().unwrap();
    let msg = e.to_string();
    assert!(msg.contains("scheme"), "{msg}");
    assert!(!msg.contains("hunter2"), "{msg}");
    assert!(start(
        d("http://h/x.isml"),
        PushOptions {
            send_timeout_secs: f64::NAN,
            ..opts()
        }
    )
    .is_err());
    assert!(start(
        d("https://h/x.isml"),
        PushOptions {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..opts()
        }
    )
    .is_err());
    let bad_id = Pusher::start(
        "ch",
        vec![header("a b", &[1])],
        &d("http://h/x.isml"),
        &opts(),
        SystemClocks::new(),
    );
    assert!(bad_id.is_err());
}
