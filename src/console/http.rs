//! A tiny blocking HTTP/1.1 client for the control API: one request per connection, a hard
//! deadline on the whole exchange, bounded header and body sizes.
//!
//! The console needs a GET and a POST to a local (or LAN) control API, from background
//! threads, with a deadline it controls exactly. A std `TcpStream` with read/write timeouts
//! re-armed to the remaining time does that without pulling an async runtime into the console.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Largest response head accepted.
const MAX_HEAD: usize = 16 * 1024;
/// Largest response body accepted (a status snapshot is a few kB).
pub const MAX_BODY: usize = 2 * 1024 * 1024;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The URL is not an `http://host:port/…` URL.
    #[error("bad URL: {0}")]
    Url(String),
    /// Name resolution or connecting failed.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The deadline passed.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// Reading or writing failed.
    #[error("{0}")]
    Io(String),
    /// The answer is not HTTP/1.x or breaks a limit.
    #[error("bad response: {0}")]
    Protocol(String),
}

/// A response: status code and the (de-chunked) body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Body bytes.
    pub body: Vec<u8>,
}

/// Sends `method` `base`+`path` (the body empty) and reads the answer, all within `timeout`.
/// `token` goes out as `Authorization: Bearer`.
pub fn request(
    method: &str,
    base: &str,
    path: &str,
    token: Option<&str>,
    timeout: Duration,
) -> Result<Response, HttpError> {
    let deadline = Instant::now() + timeout;
    let url = url::Url::parse(base).map_err(|e| HttpError::Url(format!("{base}: {e}")))?;
    if url.scheme() != "http" {
        return Err(HttpError::Url(format!(
            "{base}: only http:// control APIs are supported"
        )));
    }
    let host = url
        .host_str()
        .ok_or_else(|| HttpError::Url(format!("{base}: no host")))?
        .to_string();
    let port = url.port_or_known_default().unwrap_or(80);
    let mut full_path = url.path().trim_end_matches('/').to_string();
    full_path.push_str(path);
    if full_path.is_empty() {
        full_path.push('/');
    }

    let mut stream = connect(&host, port, deadline, timeout)?;
    let host_header = match url.port() {
        Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_string(),
    };
    let mut req = format!(
        "{method} {full_path} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: smoothcast-console\r\nAccept: application/json\r\nConnection: close\r\nContent-Length: 0\r\n"
    );
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    req.push_str("\r\n");
    arm(&stream, deadline, timeout)?;
    stream
        .write_all(req.as_bytes())
        .map_err(|e| io_err(e, timeout))?;
    read_response(&mut stream, deadline, timeout)
}

fn connect(
    host: &str,
    port: u16,
    deadline: Instant,
    timeout: Duration,
) -> Result<TcpStream, HttpError> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| HttpError::Connect(format!("{host}:{port}: {e}")))?
        .collect();
    let mut last = HttpError::Connect(format!("{host}:{port}: no address"));
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(HttpError::Timeout(timeout));
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                last = HttpError::Timeout(timeout)
            }
            Err(e) => last = HttpError::Connect(format!("{addr}: {e}")),
        }
    }
    Err(last)
}

/// Sets the socket timeouts to the time left before `deadline`.
fn arm(stream: &TcpStream, deadline: Instant, timeout: Duration) -> Result<(), HttpError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(HttpError::Timeout(timeout));
    }
    stream
        .set_read_timeout(Some(left))
        .and_then(|_| stream.set_write_timeout(Some(left)))
        .map_err(|e| HttpError::Io(e.to_string()))
}

fn io_err(e: std::io::Error, timeout: Duration) -> HttpError {
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            HttpError::Timeout(timeout)
        }
        _ => HttpError::Io(e.to_string()),
    }
}

fn read_response(
    stream: &mut TcpStream,
    deadline: Instant,
    timeout: Duration,
) -> Result<Response, HttpError> {
    let mut buf: Vec<u8> = Vec::with_capacity(8 * 1024);
    let mut chunk = [0u8; 8 * 1024];
    let mut head: Option<Head> = None;
    loop {
        if let Some(h) = &head {
            if let Some(body) = h.body_if_complete(&buf)? {
                return Ok(Response {
                    status: h.status,
                    body,
                });
            }
        } else if let Some(end) = find(&buf, b"\r\n\r\n") {
            head = Some(Head::parse(&buf[..end], end + 4)?);
            continue;
        } else if buf.len() > MAX_HEAD {
            return Err(HttpError::Protocol("response head too large".into()));
        }
        arm(stream, deadline, timeout)?;
        let n = match stream.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(e, timeout)),
        };
        if n == 0 {
            // End of stream: a close-delimited body ends here; anything else is truncated.
            return match head {
                Some(h) if h.framing == Framing::Close => Ok(Response {
                    status: h.status,
                    body: buf.split_off(h.body_start.min(buf.len())),
                }),
                Some(_) => Err(HttpError::Protocol("connection closed mid-body".into())),
                None => Err(HttpError::Protocol(
                    "connection closed before a response".into(),
                )),
            };
        }
        if buf.len() + n > MAX_HEAD + MAX_BODY {
            return Err(HttpError::Protocol(format!(
                "response larger than {MAX_BODY} bytes"
            )));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    Length(usize),
    Chunked,
    Close,
}

struct Head {
    status: u16,
    body_start: usize,
    framing: Framing,
}

impl Head {
    fn parse(head: &[u8], body_start: usize) -> Result<Head, HttpError> {
        let text = std::str::from_utf8(head)
            .map_err(|_| HttpError::Protocol("response head is not text".into()))?;
        let mut lines = text.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default();
        if !version.starts_with("HTTP/1.") {
            return Err(HttpError::Protocol(format!(
                "not HTTP/1.x: {:?}",
                status_line.chars().take(40).collect::<String>()
            )));
        }
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .filter(|s| (100..600).contains(s))
            .ok_or_else(|| HttpError::Protocol("bad status code".into()))?;
        let mut framing = Framing::Close;
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("transfer-encoding")
                && value.to_ascii_lowercase().contains("chunked")
            {
                framing = Framing::Chunked;
            } else if name.eq_ignore_ascii_case("content-length") && framing != Framing::Chunked {
                let n: usize = value
                    .parse()
                    .map_err(|_| HttpError::Protocol("bad Content-Length".into()))?;
                if n > MAX_BODY {
                    return Err(HttpError::Protocol(format!(
                        "body of {n} bytes exceeds {MAX_BODY}"
                    )));
                }
                framing = Framing::Length(n);
            }
        }
        if status == 204 || status == 304 || (100..200).contains(&status) {
            framing = Framing::Length(0);
        }
        Ok(Head {
            status,
            body_start,
            framing,
        })
    }

    /// The body when `buf` holds all of it.
    fn body_if_complete(&self, buf: &[u8]) -> Result<Option<Vec<u8>>, HttpError> {
        let body = buf.get(self.body_start..).unwrap_or_default();
        match self.framing {
            Framing::Length(n) => Ok((body.len() >= n).then(|| body[..n].to_vec())),
            Framing::Chunked => dechunk(body),
            Framing::Close => Ok(None),
        }
    }
}

/// Decodes a chunked body; `None` while incomplete.
fn dechunk(mut data: &[u8]) -> Result<Option<Vec<u8>>, HttpError> {
    let mut out = Vec::new();
    loop {
        let Some(line_end) = find(data, b"\r\n") else {
            return Ok(None);
        };
        let line = std::str::from_utf8(&data[..line_end])
            .map_err(|_| HttpError::Protocol("bad chunk size".into()))?;
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| HttpError::Protocol(format!("bad chunk size {size_text:?}")))?;
        if size > MAX_BODY || out.len() + size > MAX_BODY {
            return Err(HttpError::Protocol("chunked body too large".into()));
        }
        data = &data[line_end + 2..];
        if size == 0 {
            // Trailers are ignored; the body is complete once the final chunk is seen.
            return Ok(Some(out));
        }
        if data.len() < size + 2 {
            return Ok(None);
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// Serves one connection with `answer` (written in `pieces` parts) and returns the request.
    fn serve_once(answer: Vec<u8>, pieces: usize) -> (String, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let h = std::thread::spawn(move || {
            let Ok((mut s, _)) = listener.accept() else {
                return String::new();
            };
            let mut req = Vec::new();
            let mut b = [0u8; 1024];
            while find(&req, b"\r\n\r\n").is_none() {
                match s.read(&mut b) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&b[..n]),
                }
            }
            let step = answer.len().div_ceil(pieces.max(1)).max(1);
            for part in answer.chunks(step) {
                let _ = s.write_all(part);
                let _ = s.flush();
                std::thread::sleep(Duration::from_millis(5));
            }
            String::from_utf8_lossy(&req).into_owned()
        });
        (format!("http://{addr}"), h)
    }

    #[test]
    fn content_length_body_with_token_and_base_path() {
        let (base, h) = serve_once(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".to_vec(),
            3,
        );
        let r = request(
            "POST",
            &format!("{base}/api/"),
            "/stop",
            Some("s3cret"),
            Duration::from_secs(2),
        );
        assert_eq!(
            r.ok(),
            Some(Response {
                status: 200,
                body: b"hello".to_vec()
            })
        );
        let req = h.join().unwrap_or_default();
        assert!(req.starts_with("POST /api/stop HTTP/1.1\r\n"), "{req}");
        assert!(req.contains("Authorization: Bearer s3cret\r\n"), "{req}");
    }

    #[test]
    fn chunked_body_split_across_reads() {
        let (base, _h) = serve_once(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n"
                .to_vec(),
            7,
        );
        let r = request("GET", &base, "/status", None, Duration::from_secs(2));
        assert_eq!(r.map(|r| r.body).ok(), Some(b"abcde".to_vec()));
    }

    #[test]
    fn close_delimited_body() {
        let (base, _h) = serve_once(b"HTTP/1.0 503 Busy\r\n\r\nlater".to_vec(), 1);
        let r = request("GET", &base, "/status", None, Duration::from_secs(2));
        assert_eq!(
            r.ok(),
            Some(Response {
                status: 503,
                body: b"later".to_vec()
            })
        );
    }

    #[test]
    fn silent_server_times_out_on_time() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
        let base = format!(
            "http://{}",
            listener
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_default()
        );
        let t0 = Instant::now();
        let r = request("GET", &base, "/status", None, Duration::from_millis(300));
        assert!(matches!(r, Err(HttpError::Timeout(_))), "{r:?}");
        assert!(t0.elapsed() < Duration::from_millis(1500));
        drop(listener);
    }

    #[test]
    fn refused_connection_is_a_connect_error() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
            l.local_addr().map(|a| a.port()).unwrap_or(1)
        };
        let r = request(
            "GET",
            &format!("http://127.0.0.1:{port}"),
            "/status",
            None,
            Duration::from_secs(1),
        );
        assert!(matches!(r, Err(HttpError::Connect(_))), "{r:?}");
    }

    #[test]
    fn garbage_and_oversized_answers_are_errors() {
        let (base, _h) = serve_once(b"SSH-2.0-OpenSSH\r\n\r\n".to_vec(), 1);
        assert!(matches!(
            request("GET", &base, "/", None, Duration::from_secs(2)),
            Err(HttpError::Protocol(_))
        ));
        let (base, _h) = serve_once(
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n".to_vec(),
            1,
        );
        assert!(matches!(
            request("GET", &base, "/", None, Duration::from_secs(2)),
            Err(HttpError::Protocol(_))
        ));
        let (base, _h) = serve_once(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec(),
            1,
        );
        assert!(matches!(
            request("GET", &base, "/", None, Duration::from_secs(2)),
            Err(HttpError::Protocol(_))
        ));
    }

    #[test]
    fn https_is_refused_up_front() {
        assert!(matches!(
            request("GET", "https://x", "/", None, Duration::from_secs(1)),
            Err(HttpError::Url(_))
        ));
    }
}
