//! Helpers shared by the sink integration tests: a plain blocking HTTP/1.1 client over
//! `std::net::TcpStream` (so tests control chunk boundaries byte for byte and see resets), and
//! fixture slicing.
#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub const VALID: &str = "ffmpeg-ismv-push-valid.mp4";
pub const NEGATIVE_AUDIO: &str = "ffmpeg-ismv-push-negative-audio-tfxd.mp4";

pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from("/work/shared/fixtures").join(name)
}

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixture_path(name)).expect("fixture readable")
}

/// Top-level boxes of a body: (fourcc, bytes).
pub fn boxes(body: &[u8]) -> Vec<([u8; 4], Vec<u8>)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 8 <= body.len() {
        let size = u32::from_be_bytes(body[pos..pos + 4].try_into().unwrap()) as usize;
        let fourcc: [u8; 4] = body[pos + 4..pos + 8].try_into().unwrap();
        out.push((fourcc, body[pos..pos + size].to_vec()));
        pos += size;
    }
    out
}

/// The fixture split into (header boxes, fragments as moof+mdat, trailing boxes such as mfra).
pub struct Split {
    pub header: Vec<u8>,
    pub fragments: Vec<Vec<u8>>,
    pub tail: Vec<u8>,
}

pub fn split(body: &[u8]) -> Split {
    let bs = boxes(body);
    let mut header = Vec::new();
    let mut fragments = Vec::new();
    let mut tail = Vec::new();
    let mut i = 0;
    while i < bs.len() {
        match &bs[i].0 {
            b"moof" => {
                let mut f = bs[i].1.clone();
                f.extend_from_slice(&bs[i + 1].1);
                fragments.push(f);
                i += 2;
                continue;
            }
            b"mfra" => tail.extend_from_slice(&bs[i].1),
            _ => header.extend_from_slice(&bs[i].1),
        }
        i += 1;
    }
    Split {
        header,
        fragments,
        tail,
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// What a client observed.
#[derive(Debug)]
pub enum Outcome {
    Response(Response),
    /// The connection was reset (RST).
    Reset,
    /// The connection closed without a response.
    Closed,
    /// No response within the read timeout.
    Timeout,
}

impl Outcome {
    pub fn status(&self) -> Option<u16> {
        match self {
            Outcome::Response(r) => Some(r.status),
            _ => None,
        }
    }

    pub fn response(self) -> Response {
        match self {
            Outcome::Response(r) => r,
            other => panic!("expected a response, got {other:?}"),
        }
    }
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect to sink");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// Reads one response from `s`.
pub fn read_response(s: &mut TcpStream) -> Outcome {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 65536];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        match s.read(&mut tmp) {
            Ok(0) => return Outcome::Closed,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return Outcome::Reset,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Outcome::Timeout
            }
            Err(e) => panic!("read error {e}"),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        match s.read(&mut tmp) {
            Ok(0) => break,
            Ok(n) => body.extend_from_slice(&tmp[..n]),
            Err(_) => break,
        }
    }
    body.truncate(len);
    Outcome::Response(Response {
        status,
        headers,
        body,
    })
}

/// Sends a request head.
pub fn send_head(s: &mut TcpStream, method: &str, path: &str, extra: &str) -> std::io::Result<()> {
    let req =
        format!("{method} {path} HTTP/1.1\r\nHost: sink\r\nUser-Agent: sink-test\r\n{extra}\r\n");
    s.write_all(req.as_bytes())
}

/// Empty-body probe POST on a fresh connection.
pub fn probe(addr: SocketAddr, path: &str) -> Outcome {
    let mut s = connect(addr);
    if send_head(&mut s, "POST", path, "Content-Length: 0\r\n").is_err() {
        return read_response(&mut s);
    }
    read_response(&mut s)
}

/// GET on a fresh connection.
pub fn get(addr: SocketAddr, path: &str) -> Outcome {
    let mut s = connect(addr);
    if send_head(&mut s, "GET", path, "").is_err() {
        return Outcome::Reset;
    }
    read_response(&mut s)
}

/// Random chunk sizes in `1..=max` summing to `len`, reproducible from `seed`.
pub fn random_chunks(len: usize, max: usize, seed: u64) -> Vec<usize> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::new();
    let mut left = len;
    while left > 0 {
        let n = rng.gen_range(1..=max.min(left));
        out.push(n);
        left -= n;
    }
    out
}

/// Writes `body` as a chunked request body with the given chunk sizes (write errors are
/// ignored: the server may answer early and close). `terminate`: send the last chunk.
pub fn write_chunked(
    s: &mut TcpStream,
    body: &[u8],
    sizes: &[usize],
    terminate: bool,
) -> std::io::Result<()> {
    let mut pos = 0;
    let mut wire = Vec::with_capacity(body.len() + sizes.len() * 8 + 8);
    for &n in sizes {
        wire.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        wire.extend_from_slice(&body[pos..pos + n]);
        wire.extend_from_slice(b"\r\n");
        pos += n;
    }
    if terminate {
        wire.extend_from_slice(b"0\r\n\r\n");
    }
    // Write in pieces that follow the chunk layout loosely, so TCP segments split boxes too.
    for piece in wire.chunks(7919) {
        s.write_all(piece)?;
    }
    s.flush()
}

/// Chunked POST of `body` on a fresh connection, random chunk sizes up to `max_chunk`.
pub fn post_chunked(
    addr: SocketAddr,
    path: &str,
    body: &[u8],
    max_chunk: usize,
    seed: u64,
) -> Outcome {
    let mut s = connect(addr);
    let _ = send_head(&mut s, "POST", path, "Transfer-Encoding: chunked\r\n");
    let sizes = random_chunks(body.len(), max_chunk, seed);
    let _ = write_chunked(&mut s, body, &sizes, true);
    read_response(&mut s)
}

/// POST with Content-Length on a fresh connection.
pub fn post_length(addr: SocketAddr, path: &str, body: &[u8]) -> Outcome {
    let mut s = connect(addr);
    let _ = send_head(
        &mut s,
        "POST",
        path,
        &format!("Content-Length: {}\r\n", body.len()),
    );
    let _ = s.write_all(body);
    read_response(&mut s)
}

/// Probe then chunked POST on ONE keep-alive connection (as ASTool does).
pub fn probe_then_post(
    addr: SocketAddr,
    path: &str,
    body: &[u8],
    max_chunk: usize,
    seed: u64,
) -> (Outcome, Outcome) {
    let mut s = connect(addr);
    send_head(
        &mut s,
        "POST",
        path,
        "Content-Length: 0\r\nConnection: keep-alive\r\n",
    )
    .unwrap();
    let first = read_response(&mut s);
    let _ = send_head(
        &mut s,
        "POST",
        path,
        "Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n",
    );
    let sizes = random_chunks(body.len(), max_chunk, seed);
    let _ = write_chunked(&mut s, body, &sizes, true);
    (first, read_response(&mut s))
}

/// Runs `ffmpeg -v error -i <file> -f null -` and returns (success, stderr).
pub fn ffmpeg_decode(path: &std::path::Path) -> (bool, String) {
    let out = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
