//! Helpers of the control tests: an in-test publishing point that records whether every
//! chunked POST ended with its terminating chunk, a tiny HTTP client, small profiles.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One request as the server saw it.
#[derive(Clone, Debug, Default)]
pub struct Req {
    pub conn: usize,
    pub method: String,
    pub path: String,
    pub chunked: bool,
    /// Decoded body so far.
    pub body: Vec<u8>,
    /// The terminating chunk `0\r\n\r\n` (or the whole Content-Length body) arrived.
    pub complete: bool,
    /// What the server answered.
    pub answered: Option<u16>,
}

impl Req {
    pub fn is_probe(&self) -> bool {
        !self.chunked && self.body.is_empty()
    }

    /// Complete `moof` boxes received so far (the body may end inside a box).
    pub fn fragments_so_far(&self) -> usize {
        let (mut pos, mut n) = (0usize, 0);
        while pos + 8 <= self.body.len() {
            let size = u32::from_be_bytes([
                self.body[pos],
                self.body[pos + 1],
                self.body[pos + 2],
                self.body[pos + 3],
            ]) as usize;
            if size < 8 || pos + size > self.body.len() {
                break;
            }
            if &self.body[pos + 4..pos + 8] == b"moof" {
                n += 1;
            }
            pos += size;
        }
        n
    }

    /// `(track_id, sequence)` of every fragment in the body (parsed with the project's parser).
    pub fn fragments(&self) -> Vec<(u32, u32)> {
        let parsed = smoothcast::piff::parse::parse_stream(&self.body)
            .unwrap_or_else(|e| panic!("{}: {e}", self.path));
        parsed
            .fragments
            .iter()
            .map(|f| (f.moof.trafs[0].track_id, f.moof.sequence))
            .collect()
    }
}

struct Inner {
    reqs: Mutex<Vec<Req>>,
    next_conn: AtomicUsize,
    /// Answer probes with this status instead of 200 (0 = 200).
    probe_status: AtomicU16,
}

/// A publishing point on 127.0.0.1 that accepts probes and chunked POSTs.
pub struct Ingest {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
    rt: Option<tokio::runtime::Runtime>,
}

impl Ingest {
    pub fn start() -> Ingest {
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
            next_conn: AtomicUsize::new(0),
            probe_status: AtomicU16::new(0),
        });
        let i2 = inner.clone();
        rt.spawn(async move {
            loop {
                let Ok((s, _)) = listener.accept().await else {
                    continue;
                };
                let conn = i2.next_conn.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(i2.clone(), s, conn));
            }
        });
        Ingest {
            addr,
            inner,
            rt: Some(rt),
        }
    }

    /// Publishing point URL `http://127.0.0.1:port/live/<name>.isml`.
    pub fn url(&self, name: &str) -> String {
        format!("http://{}/live/{name}.isml", self.addr)
    }

    pub fn requests(&self) -> Vec<Req> {
        self.inner.reqs.lock().unwrap().clone()
    }

    /// Long POSTs (chunked) so far.
    pub fn posts(&self) -> Vec<Req> {
        self.requests().into_iter().filter(|r| r.chunked).collect()
    }

    /// Answer probes with `status` (200 again with 0).
    pub fn set_probe_status(&self, status: u16) {
        self.inner.probe_status.store(status, Ordering::SeqCst);
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

async fn fill(s: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> usize {
    let mut tmp = [0u8; 64 * 1024];
    let n = s.read(&mut tmp).await.unwrap_or(0);
    buf.extend_from_slice(&tmp[..n]);
    n
}

async fn line(s: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(p) = find(buf, b"\r\n") {
            let l = String::from_utf8_lossy(&buf[..p]).to_string();
            buf.drain(..p + 2);
            return Some(l);
        }
        if fill(s, buf).await == 0 {
            return None;
        }
    }
}

async fn serve(inner: Arc<Inner>, mut s: tokio::net::TcpStream, conn: usize) {
    let mut buf = Vec::new();
    loop {
        let head_end = loop {
            if let Some(p) = find(&buf, b"\r\n\r\n") {
                break p + 4;
            }
            if fill(&mut s, &mut buf).await == 0 {
                return;
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        buf.drain(..head_end);
        let mut lines = head.split("\r\n");
        let mut rl = lines.next().unwrap_or("").split(' ');
        let method = rl.next().unwrap_or("").to_string();
        let path = rl.next().unwrap_or("").to_string();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let chunked = headers
            .iter()
            .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
        let index = {
            let mut reqs = inner.reqs.lock().unwrap();
            reqs.push(Req {
                conn,
                method,
                path,
                chunked,
                ..Req::default()
            });
            reqs.len() - 1
        };
        if chunked {
            loop {
                let Some(l) = line(&mut s, &mut buf).await else {
                    return;
                };
                let Ok(size) = usize::from_str_radix(l.split(';').next().unwrap_or("").trim(), 16)
                else {
                    return;
                };
                if size == 0 {
                    if line(&mut s, &mut buf).await.is_none() {
                        return;
                    }
                    break;
                }
                while buf.len() < size + 2 {
                    if fill(&mut s, &mut buf).await == 0 {
                        return;
                    }
                }
                inner.reqs.lock().unwrap()[index]
                    .body
                    .extend_from_slice(&buf[..size]);
                buf.drain(..size + 2);
            }
        } else {
            let len: usize = headers
                .iter()
                .find(|(n, _)| n == "content-length")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            while buf.len() < len {
                if fill(&mut s, &mut buf).await == 0 {
                    return;
                }
            }
            buf.drain(..len);
        }
        let probe_status = inner.probe_status.load(Ordering::SeqCst);
        let status = if !chunked && probe_status != 0 {
            probe_status
        } else {
            200
        };
        {
            let mut reqs = inner.reqs.lock().unwrap();
            reqs[index].complete = true;
            reqs[index].answered = Some(status);
        }
        let r = format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n");
        if s.write_all(r.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// A plain HTTP/1.1 request to the control API: `(status, headers lower-cased, body)`.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, Vec<(String, String)>, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n"
    );
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

/// `GET path` expecting 200 and JSON.
pub fn get_json(addr: SocketAddr, path: &str) -> serde_json::Value {
    let (status, _, body) = http(addr, "GET", path, &[]);
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < timeout, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A small real-time profile: two light rungs at 25 fps, 1 s fragments, synthetic inputs, one
/// primary (and optionally a backup) pushing to `ingest`, plus `extra` TOML.
pub fn profile(name: &str, urls: &[String], extra: &str) -> String {
    profile_with_fragments(name, "1", urls, extra)
}

/// [`profile`] with another fragment duration (seconds, exact text).
pub fn profile_with_fragments(name: &str, fragment: &str, urls: &[String], extra: &str) -> String {
    let mut p = format!(
        r#"
[channel]
name = "{name}"
rate = "25"
fragment_duration = "{fragment}"

[video]
input = "synthetic"
width = 320
height = 180

[audio]
input = "synthetic"
bitrate = 64

[[rung]]
name = "180p"
width = 320
height = 180
bitrate = 300
preset = "ultrafast"
bframes = 0
threads = 1

[[rung]]
name = "90p"
width = 160
height = 90
bitrate = 100
preset = "ultrafast"
bframes = 0
threads = 1

[push]
max_backoff = 0.2
connect_timeout = 2
"#
    );
    for (i, u) in urls.iter().enumerate() {
        let role = if i == 0 { "primary" } else { "backup" };
        p.push_str(&format!(
            "\n[[destination]]\nrole = \"{role}\"\nurl = \"{u}\"\n"
        ));
    }
    p.push_str(extra);
    p
}
