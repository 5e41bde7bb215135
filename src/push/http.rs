//! A minimal HTTP/1.1 client: exactly what a live ingest POST needs and nothing else.
//!
//! Hand-written (rather than hyper/reqwest) because the ingest needs exact control of chunk
//! framing, of reading the response while the body is still being written, and of reconnects.
//! Everything read from the server is untrusted: heads and bodies are bounded and parsing never
//! panics.

use bytes::{Buf, Bytes};
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest response head we accept.
const MAX_HEAD: usize = 32 * 1024;
/// Largest response body we read (the rest makes the connection non-reusable).
const MAX_BODY: usize = 64 * 1024;
/// Most response header lines we keep.
const MAX_HEADERS: usize = 100;

/// Status line and headers of one response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ResponseHead {
    pub(crate) status: u16,
    pub(crate) reason: String,
    /// HTTP/1.0 or `Connection: close`: the server will not take another request.
    pub(crate) close: bool,
    pub(crate) headers: Vec<(String, String)>,
}

impl ResponseHead {
    /// First value of a header (case-insensitive name).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All values of a header.
    pub(crate) fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why reading a response failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    #[error("connection closed by the server before a response")]
    Eof,
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("malformed response: {0}")]
    Malformed(String),
}

/// Buffered reader of responses on one connection.
pub(crate) struct ResponseReader<R> {
    inner: R,
    buf: Vec<u8>,
}

impl<R: AsyncRead + Unpin> ResponseReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        ResponseReader {
            inner,
            buf: Vec::with_capacity(1024),
        }
    }

    async fn fill(&mut self) -> Result<usize, io::Error> {
        let mut tmp = [0u8; 4096];
        let n = self.inner.read(&mut tmp).await?;
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(n)
    }

    /// Reads the next final (non-1xx) response head.
    pub(crate) async fn read_head(&mut self) -> Result<ResponseHead, ReadError> {
        loop {
            let end = loop {
                if let Some(pos) = find(&self.buf, b"\r\n\r\n") {
                    break pos + 4;
                }
                if self.buf.len() > MAX_HEAD {
                    return Err(ReadError::Malformed("response head too large".into()));
                }
                if self.fill().await? == 0 {
                    return Err(ReadError::Eof);
                }
            };
            let head = parse_head(&self.buf[..end])?;
            self.buf.drain(..end);
            if (100..200).contains(&head.status) {
                // 100 Continue and friends precede the real answer.
                continue;
            }
            return Ok(head);
        }
    }

    /// Reads (and returns, truncated) the body of `head`; `Ok(true)` if the connection can carry
    /// another request afterwards.
    pub(crate) async fn read_body(
        &mut self,
        head: &ResponseHead,
    ) -> Result<(Vec<u8>, bool), ReadError> {
        let chunked = head
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        if chunked {
            let body = self.read_chunked().await?;
            return Ok((body, !head.close));
        }
        match head.header("content-length") {
            Some(v) => {
                let len: usize = v
                    .trim()
                    .parse()
                    .map_err(|_| ReadError::Malformed("bad Content-Length".into()))?;
                if len > MAX_BODY {
                    return Ok((Vec::new(), false));
                }
                while self.buf.len() < len {
                    if self.fill().await? == 0 {
                        return Err(ReadError::Eof);
                    }
                }
                let body: Vec<u8> = self.buf.drain(..len).collect();
                Ok((body, !head.close))
            }
            // No framing: the body runs to EOF; don't wait for it, don't reuse.
            None => Ok((Vec::new(), false)),
        }
    }

    async fn read_chunked(&mut self) -> Result<Vec<u8>, ReadError> {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(p) = find(&self.buf, b"\r\n") {
                    break p;
                }
                if self.buf.len() > 1024 {
                    return Err(ReadError::Malformed("chunk size line too long".into()));
                }
                if self.fill().await? == 0 {
                    return Err(ReadError::Eof);
                }
            };
            let line = String::from_utf8_lossy(&self.buf[..line_end]).to_string();
            let size_str = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_str, 16)
                .map_err(|_| ReadError::Malformed("bad chunk size".into()))?;
            self.buf.drain(..line_end + 2);
            if size == 0 {
                // Trailers (ignored) end with an empty line.
                loop {
                    let p = loop {
                        if let Some(p) = find(&self.buf, b"\r\n") {
                            break p;
                        }
                        if self.buf.len() > MAX_HEAD {
                            return Err(ReadError::Malformed("trailers too large".into()));
                        }
                        if self.fill().await? == 0 {
                            return Err(ReadError::Eof);
                        }
                    };
                    self.buf.drain(..p + 2);
                    if p == 0 {
                        return Ok(body);
                    }
                }
            }
            if body.len() + size > MAX_BODY {
                return Err(ReadError::Malformed("response body too large".into()));
            }
            while self.buf.len() < size + 2 {
                if self.fill().await? == 0 {
                    return Err(ReadError::Eof);
                }
            }
            body.extend_from_slice(&self.buf[..size]);
            self.buf.drain(..size + 2);
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Parses `HTTP/1.x NNN reason\r\n(header: value\r\n)*\r\n`.
pub(crate) fn parse_head(raw: &[u8]) -> Result<ResponseHead, ReadError> {
    let text = String::from_utf8_lossy(raw);
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(ReadError::Malformed(format!(
            "not an HTTP/1.x status line: {:?}",
            truncate(status_line, 40)
        )));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .filter(|s| (100..1000).contains(s))
        .ok_or_else(|| ReadError::Malformed("bad status code".into()))?;
    let reason = truncate(parts.next().unwrap_or(""), 100).to_string();
    let mut headers = Vec::new();
    for line in lines {
        if line.is_empty() {
            continue;
        }
        if headers.len() >= MAX_HEADERS {
            break;
        }
        if let Some((n, v)) = line.split_once(':') {
            headers.push((n.trim().to_string(), v.trim().to_string()));
        }
    }
    let connection_close = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("connection") && v.to_ascii_lowercase().contains("close")
    });
    Ok(ResponseHead {
        status,
        reason,
        close: connection_close || version == "HTTP/1.0",
        headers,
    })
}

/// At most `max` characters of `s` (on a char boundary).
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Request head for a POST. `body` decides the framing header.
pub(crate) enum Framing {
    /// `Content-Length: 0` (the probe).
    Empty,
    /// `Transfer-Encoding: chunked` (the long POST).
    Chunked,
}

pub(crate) fn post_head(
    target: &str,
    host: &str,
    user_agent: &str,
    authorization: Option<&str>,
    framing: Framing,
) -> Vec<u8> {
    let mut h = String::with_capacity(256);
    h.push_str("POST ");
    h.push_str(target);
    h.push_str(" HTTP/1.1\r\nHost: ");
    h.push_str(host);
    h.push_str("\r\nUser-Agent: ");
    h.push_str(user_agent);
    h.push_str("\r\nConnection: keep-alive\r\n");
    match framing {
        Framing::Empty => h.push_str("Content-Length: 0\r\n"),
        Framing::Chunked => h.push_str("Transfer-Encoding: chunked\r\n"),
    }
    if let Some(a) = authorization {
        h.push_str("Authorization: ");
        h.push_str(a);
        h.push_str("\r\n");
    }
    h.push_str("\r\n");
    h.into_bytes()
}

/// Writes one chunk (`<hex len>\r\n<data>\r\n`) without copying `data`.
pub(crate) async fn write_chunk<W: AsyncWrite + Unpin>(w: &mut W, data: &Bytes) -> io::Result<()> {
    if data.is_empty() {
        // A zero-length chunk would end the body.
        return Ok(());
    }
    let prefix = Bytes::from(format!("{:x}\r\n", data.len()));
    let mut buf = prefix
        .chain(data.clone())
        .chain(Bytes::from_static(b"\r\n"));
    while buf.has_remaining() {
        w.write_all_buf(&mut buf).await?;
    }
    w.flush().await
}

/// The terminating zero-length chunk (no trailers).
pub(crate) const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_parsing_is_strict_about_the_status_line_and_lenient_about_headers() {
        let h = parse_head(b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic\r\nbogus\r\nConnection: Close\r\n\r\n").unwrap();
        assert_eq!(h.status, 401);
        assert_eq!(h.reason, "Unauthorized");
        assert!(h.close);
        assert_eq!(h.header("www-authenticate"), Some("Basic"));
        assert!(parse_head(b"ICY 200 OK\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 abc\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 20\r\n\r\n").is_err());
        assert!(!parse_head(b"HTTP/1.1 200\r\n\r\n").unwrap().close);
        assert!(parse_head(b"HTTP/1.0 200 OK\r\n\r\n").unwrap().close);
    }

    #[tokio::test]
    async fn reader_skips_1xx_reads_bodies_and_rejects_oversized_heads() {
        let data: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 500 X\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n";
        let mut r = ResponseReader::new(data);
        let h = r.read_head().await.unwrap();
        assert_eq!(h.status, 200);
        assert_eq!(r.read_body(&h).await.unwrap(), (b"abc".to_vec(), true));
        let h = r.read_head().await.unwrap();
        assert_eq!(h.status, 500);
        assert_eq!(r.read_body(&h).await.unwrap(), (b"hi".to_vec(), true));
        assert!(matches!(r.read_head().await, Err(ReadError::Eof)));

        let big = vec![b'a'; MAX_HEAD + 10];
        let mut r = ResponseReader::new(&big[..]);
        assert!(matches!(r.read_head().await, Err(ReadError::Malformed(_))));
    }

    #[tokio::test]
    async fn chunk_framing_is_hex_length_crlf_data_crlf() {
        let mut out: Vec<u8> = Vec::new();
        write_chunk(&mut out, &Bytes::from(vec![7u8; 26]))
            .await
            .unwrap();
        write_chunk(&mut out, &Bytes::new()).await.unwrap();
        let mut expect = b"1a\r\n".to_vec();
        expect.extend_from_slice(&[7u8; 26]);
        expect.extend_from_slice(b"\r\n");
        assert_eq!(out, expect);
    }
}
