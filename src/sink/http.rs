//! A deliberately small HTTP/1.1 server side: request-head parsing, an incremental chunked
//! body decoder and response formatting.
//!
//! Hand-rolled instead of hyper because the fault injector needs byte-level control of the
//! request body (reset after exactly N bytes, stop reading, read slowly) and because ingest
//! validation must see body bytes as they arrive. Both parsers are pure and never panic on
//! untrusted input, so they can be fuzzed on their own.

use std::fmt::Write as _;

/// Longest request head we accept (request line + headers).
pub const MAX_HEAD_LEN: usize = 16 * 1024;
/// Most header lines we accept in one request.
const MAX_HEADERS: usize = 64;
/// Longest chunk-size line (hex digits + extensions) we accept.
const MAX_CHUNK_LINE: usize = 1024;
/// Longest trailer section we accept after the last chunk.
const MAX_TRAILER: usize = 8 * 1024;

/// Why a request head or a chunked body could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// The request head is longer than [`MAX_HEAD_LEN`].
    #[error("request head exceeds {MAX_HEAD_LEN} bytes")]
    HeadTooLarge,
    /// The request line or a header line is malformed.
    #[error("malformed request head: {0}")]
    BadHead(&'static str),
    /// `Content-Length` and `Transfer-Encoding` disagree or are unparsable.
    #[error("bad body framing: {0}")]
    BadFraming(&'static str),
    /// The chunked transfer coding is malformed.
    #[error("bad chunked encoding: {0}")]
    BadChunk(&'static str),
}

/// How the request body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body (no `Content-Length`, no `Transfer-Encoding`) or `Content-Length: 0`.
    Empty,
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// Request method, e.g. `POST`.
    pub method: String,
    /// Path part of the request target, percent-decoding NOT applied (Smooth URLs use
    /// literal parentheses and `=`).
    pub path: String,
    /// Query string without the `?`, if any.
    pub query: Option<String>,
    /// Minor HTTP version (0 or 1).
    pub minor_version: u8,
    /// Body delimitation.
    pub framing: BodyFraming,
    /// Whether the client wants the connection kept open after this exchange.
    pub keep_alive: bool,
    /// `Expect: 100-continue` was sent.
    pub expect_continue: bool,
    /// `User-Agent`, for logs and reports.
    pub user_agent: Option<String>,
}

/// Parses a request head from the start of `buf`.
///
/// Returns `Ok(None)` when the head is not complete yet, or the head and the number of bytes
/// it occupied (including the blank line).
pub fn parse_head(buf: &[u8]) -> Result<Option<(RequestHead, usize)>, HttpError> {
    // Tolerate stray CRLFs before the request line (RFC 9112 §2.2), e.g. after a previous body.
    let mut skip = 0;
    while buf.len() >= skip + 2 && &buf[skip..skip + 2] == b"\r\n" {
        skip += 2;
    }
    let rest = &buf[skip..];
    let end = match find(rest, b"\r\n\r\n") {
        Some(e) => e,
        None => {
            if buf.len() > MAX_HEAD_LEN {
                return Err(HttpError::HeadTooLarge);
            }
            return Ok(None);
        }
    };
    if skip + end + 4 > MAX_HEAD_LEN {
        return Err(HttpError::HeadTooLarge);
    }
    let head = std::str::from_utf8(&rest[..end]).map_err(|_| HttpError::BadHead("not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let request_line = lines.next().ok_or(HttpError::BadHead("empty"))?;
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or_default();
    let target = parts
        .next()
        .ok_or(HttpError::BadHead("no request target"))?;
    let version = parts.next().ok_or(HttpError::BadHead("no HTTP version"))?;
    if parts.next().is_some()
        || method.is_empty()
        || !method.bytes().all(|b| b.is_ascii_uppercase())
    {
        return Err(HttpError::BadHead("bad request line"));
    }
    let minor_version = match version {
        "HTTP/1.1" => 1,
        "HTTP/1.0" => 0,
        _ => return Err(HttpError::BadHead("unsupported HTTP version")),
    };
    if !target.starts_with('/') {
        return Err(HttpError::BadHead("request target is not an absolute path"));
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (target.to_string(), None),
    };

    let mut content_length: Option<u64> = None;
    let mut chunked = false;
    let mut has_te = false;
    let mut connection_close = minor_version == 0;
    let mut expect_continue = false;
    let mut user_agent = None;
    let mut count = 0;
    for line in lines {
        count += 1;
        if count > MAX_HEADERS {
            return Err(HttpError::BadHead("too many headers"));
        }
        let (name, value) = line
            .split_once(':')
            .ok_or(HttpError::BadHead("header without colon"))?;
        if name.is_empty() || name.bytes().any(|b| b == b' ' || b == b'\t') {
            return Err(HttpError::BadHead("bad header name"));
        }
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let n: u64 = value
                .parse()
                .map_err(|_| HttpError::BadFraming("bad Content-Length"))?;
            if content_length.is_some_and(|c| c != n) {
                return Err(HttpError::BadFraming("conflicting Content-Length headers"));
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            has_te = true;
            // Only "chunked" (any case, as ASTool sends "Chunked") is supported, and it must be
            // the final coding.
            let last = value.rsplit(',').next().unwrap_or("").trim();
            if !last.eq_ignore_ascii_case("chunked") {
                return Err(HttpError::BadFraming("unsupported Transfer-Encoding"));
            }
            chunked = true;
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',') {
                let token = token.trim();
                if token.eq_ignore_ascii_case("close") {
                    connection_close = true;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    connection_close = false;
                }
            }
        } else if name.eq_ignore_ascii_case("expect") {
            expect_continue = value.eq_ignore_ascii_case("100-continue");
        } else if name.eq_ignore_ascii_case("user-agent") {
            user_agent = Some(value.chars().take(200).collect());
        }
    }
    // protocol.md §7 item 18: never mix Content-Length with Transfer-Encoding. RFC 9112 lets a
    // server reject such a request, which also keeps framing unambiguous.
    if has_te && content_length.is_some() {
        return Err(HttpError::BadFraming(
            "both Content-Length and Transfer-Encoding",
        ));
    }
    let framing = if chunked {
        BodyFraming::Chunked
    } else {
        match content_length {
            None | Some(0) => BodyFraming::Empty,
            Some(n) => BodyFraming::Length(n),
        }
    };
    Ok(Some((
        RequestHead {
            method: method.to_string(),
            path,
            query,
            minor_version,
            framing,
            keep_alive: !connection_close,
            expect_continue,
            user_agent,
        },
        skip + end + 4,
    )))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Reading the chunk-size line; holds the bytes of the line seen so far.
    Size,
    /// Inside chunk data; remaining payload bytes.
    Data(u64),
    /// After chunk data, expecting CR LF; how many of the two bytes were seen.
    DataEnd(u8),
    /// After the last (zero) chunk: trailer lines until an empty line.
    Trailer,
    /// Body complete.
    Done,
}

/// Incremental decoder of the HTTP/1.1 chunked transfer coding (RFC 9112 §7.1).
///
/// Fed arbitrary slices of the wire; yields payload slices borrowed from the input, so the
/// hot path copies nothing.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: ChunkState,
    line: Vec<u8>,
    trailer_len: usize,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    /// A decoder at the start of a chunked body.
    pub fn new() -> Self {
        Self {
            state: ChunkState::Size,
            line: Vec::new(),
            trailer_len: 0,
        }
    }

    /// True once the terminating zero-size chunk and the trailer were read.
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Consumes a prefix of `input`. Returns how many bytes were consumed and, if some of them
    /// were chunk payload, that payload. Call repeatedly until all input is consumed or
    /// [`is_done`](Self::is_done) is true; bytes after the body are left unconsumed.
    pub fn step<'a>(&mut self, input: &'a [u8]) -> Result<(usize, Option<&'a [u8]>), HttpError> {
        let mut pos = 0;
        while pos < input.len() {
            match self.state {
                ChunkState::Done => return Ok((pos, None)),
                ChunkState::Data(remaining) => {
                    let avail = (input.len() - pos) as u64;
                    let take = remaining.min(avail) as usize;
                    let payload = &input[pos..pos + take];
                    let left = remaining - take as u64;
                    self.state = if left == 0 {
                        ChunkState::DataEnd(0)
                    } else {
                        ChunkState::Data(left)
                    };
                    return Ok((pos + take, Some(payload)));
                }
                ChunkState::DataEnd(seen) => {
                    let expected = if seen == 0 { b'\r' } else { b'\n' };
                    if input[pos] != expected {
                        return Err(HttpError::BadChunk("chunk data not followed by CRLF"));
                    }
                    pos += 1;
                    self.state = if seen == 0 {
                        ChunkState::DataEnd(1)
                    } else {
                        ChunkState::Size
                    };
                }
                ChunkState::Size => {
                    let b = input[pos];
                    pos += 1;
                    if b == b'\n' {
                        let size = parse_chunk_size(&self.line)?;
                        self.line.clear();
                        self.state = if size == 0 {
                            ChunkState::Trailer
                        } else {
                            ChunkState::Data(size)
                        };
                    } else {
                        if self.line.len() >= MAX_CHUNK_LINE {
                            return Err(HttpError::BadChunk("chunk-size line too long"));
                        }
                        self.line.push(b);
                    }
                }
                ChunkState::Trailer => {
                    let b = input[pos];
                    pos += 1;
                    self.trailer_len += 1;
                    if self.trailer_len > MAX_TRAILER {
                        return Err(HttpError::BadChunk("trailer too long"));
                    }
                    if b == b'\n' {
                        let line_is_empty = self.line.is_empty() || self.line == b"\r";
                        self.line.clear();
                        if line_is_empty {
                            self.state = ChunkState::Done;
                            return Ok((pos, None));
                        }
                    } else {
                        self.line.push(b);
                    }
                }
            }
        }
        Ok((pos, None))
    }
}

fn parse_chunk_size(line: &[u8]) -> Result<u64, HttpError> {
    let line = line
        .strip_suffix(b"\r")
        .ok_or(HttpError::BadChunk("chunk-size line not ended by CRLF"))?;
    // Chunk extensions (";name=value") carry nothing we use.
    let digits = match line.iter().position(|&b| b == b';') {
        Some(p) => &line[..p],
        None => line,
    };
    // Some senders pad the size with spaces before an extension; tolerate trailing blanks only.
    let digits = trim_trailing_blanks(digits);
    if digits.is_empty() || digits.len() > 15 {
        return Err(HttpError::BadChunk("bad chunk size"));
    }
    let mut n: u64 = 0;
    for &d in digits {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            b'A'..=b'F' => d - b'A' + 10,
            _ => return Err(HttpError::BadChunk("chunk size is not hex")),
        };
        n = n * 16 + u64::from(v);
    }
    Ok(n)
}

fn trim_trailing_blanks(mut s: &[u8]) -> &[u8] {
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Reason phrase for the status codes the sink sends.
pub fn reason(code: u16) -> &'static str {
    match code {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        412 => "Precondition Failed",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// Formats a response head with a `Content-Length` body.
pub fn response_head(code: u16, content_type: &str, len: usize, close: bool) -> Vec<u8> {
    let mut s = String::with_capacity(160);
    let _ = write!(
        s,
        "HTTP/1.1 {code} {}\r\nServer: smoothcast-sink\r\nContent-Type: {content_type}\r\nContent-Length: {len}\r\nCache-Control: no-cache\r\n",
        reason(code)
    );
    if close {
        s.push_str("Connection: close\r\n");
    }
    s.push_str("\r\n");
    s.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(wire: &[u8], piece: usize) -> Result<(Vec<u8>, bool, usize), HttpError> {
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        let mut consumed_total = 0;
        for part in wire.chunks(piece.max(1)) {
            let mut p = part;
            while !p.is_empty() && !d.is_done() {
                let (n, payload) = d.step(p)?;
                if let Some(pl) = payload {
                    out.extend_from_slice(pl);
                }
                consumed_total += n;
                p = &p[n..];
            }
        }
        Ok((out, d.is_done(), consumed_total))
    }

    #[test]
    fn chunked_body_decodes_identically_whatever_the_read_sizes() {
        let wire =
            b"5\r\nhello\r\n1A;ext=1\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        for piece in 1..wire.len() {
            let (out, done, consumed) = decode_all(wire, piece).unwrap();
            assert_eq!(out, b"helloabcdefghijklmnopqrstuvwxyz");
            assert!(done);
            assert_eq!(
                consumed,
                wire.len() - 4,
                "bytes after the body stay unconsumed"
            );
        }
    }

    #[test]
    fn chunked_rejects_missing_crlf_and_bad_hex() {
        assert!(decode_all(b"5\r\nhelloX\r\n", 3).is_err());
        assert!(decode_all(b"zz\r\n", 3).is_err());
        assert!(
            decode_all(b"5\nhello\r\n", 3).is_err(),
            "bare LF after size"
        );
        assert!(decode_all(&[b'1'; 2000], 7).is_err());
    }

    #[test]
    fn head_parses_chunked_post_with_capital_c() {
        let req = b"POST /live.isml/Streams(a) HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\nConnection: Keep-Alive\r\n\r\n18\r\n";
        let (h, n) = parse_head(req).unwrap().unwrap();
        assert_eq!(h.method, "POST");
        assert_eq!(h.path, "/live.isml/Streams(a)");
        assert_eq!(h.framing, BodyFraming::Chunked);
        assert!(h.keep_alive);
        assert_eq!(&req[n..], b"18\r\n");
    }

    #[test]
    fn head_rejects_mixed_framing_and_incomplete_is_none() {
        let req = b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(matches!(parse_head(req), Err(HttpError::BadFraming(_))));
        assert_eq!(parse_head(b"POST / HTTP/1.1\r\nHost"), Ok(None));
        assert!(parse_head(&[b'a'; MAX_HEAD_LEN + 10]).is_err());
    }
}
