//! Where a session sends to: the `…/name.isml/Streams(<id>)` URL, its credentials (kept apart
//! so they can never reach a log line) and the redacted form used everywhere else.

use url::Url;

/// User name and password taken from the URL userinfo (percent-decoded).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Credentials {
    pub(crate) user: String,
    pub(crate) password: String,
}

impl std::fmt::Debug for Credentials {
    // Never print the secret, even in debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials(<redacted>)")
    }
}

/// A parsed session URL without userinfo, plus the credentials that were in it.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    /// The URL with userinfo removed (query kept: it is sent on the wire).
    pub(crate) url: Url,
    pub(crate) credentials: Option<Credentials>,
    pub(crate) tls: bool,
    pub(crate) host: url::Host<String>,
    pub(crate) port: u16,
}

impl Target {
    /// Parses an absolute http(s) URL.
    #[cfg(test)]
    pub(crate) fn parse(raw: &str) -> Result<Target, String> {
        let url = Url::parse(raw).map_err(|e| format!("invalid URL ({e})"))?;
        Target::from_url(url)
    }

    pub(crate) fn from_url(mut url: Url) -> Result<Target, String> {
        let tls = match url.scheme() {
            "http" => false,
            "https" => true,
            other => return Err(format!("unsupported URL scheme '{other}' (http or https)")),
        };
        let host = match url.host() {
            Some(h) => h.to_owned(),
            None => return Err("URL has no host".to_string()),
        };
        let port = url
            .port_or_known_default()
            .unwrap_or(if tls { 443 } else { 80 });
        let credentials = if url.username().is_empty() && url.password().is_none() {
            None
        } else {
            Some(Credentials {
                user: percent_decode(url.username()),
                password: percent_decode(url.password().unwrap_or("")),
            })
        };
        // Removing userinfo cannot fail on a URL that has a host (checked above).
        let _ = url.set_username("");
        let _ = url.set_password(None);
        Ok(Target {
            url,
            credentials,
            tls,
            host,
            port,
        })
    }

    /// The URL for logs and status: no userinfo, no query (tokens often live there).
    pub(crate) fn redacted(&self) -> String {
        redact_url(&self.url)
    }

    /// `Host:` header value.
    pub(crate) fn host_header(&self) -> String {
        let host = match &self.host {
            url::Host::Domain(d) => d.clone(),
            url::Host::Ipv4(a) => a.to_string(),
            url::Host::Ipv6(a) => format!("[{a}]"),
        };
        let default = if self.tls { 443 } else { 80 };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// Request target: path plus query.
    pub(crate) fn request_target(&self) -> String {
        match self.url.query() {
            Some(q) => format!("{}?{}", self.url.path(), q),
            None => self.url.path().to_string(),
        }
    }

    /// Same scheme, host and port (credentials survive a redirect only within one origin).
    pub(crate) fn same_origin(&self, other: &Target) -> bool {
        self.tls == other.tls && self.host == other.host && self.port == other.port
    }
}

/// Removes userinfo and query from a URL string for display; unparsable input is hidden.
pub fn redact_url_str(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(u) => redact_url(&u),
        Err(_) => "<invalid URL>".to_string(),
    }
}

fn redact_url(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

/// The URL of one session: the publishing point URL + `/Streams(<stream id><suffix>)`.
pub(crate) fn session_url(
    destination_url: &str,
    stream_id: &str,
    suffix: Option<&str>,
) -> Result<Url, String> {
    let mut url = Url::parse(destination_url).map_err(|e| format!("invalid URL ({e})"))?;
    if url.cannot_be_a_base() {
        return Err("URL cannot carry a path".to_string());
    }
    let path = url.path().trim_end_matches('/').to_string();
    let id = format!("{stream_id}{}", suffix.unwrap_or(""));
    if id.is_empty()
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'))
    {
        return Err(format!("stream id '{id}' is not URL-safe"));
    }
    url.set_path(&format!("{path}/Streams({id})"));
    Ok(url)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hi = (bytes[i + 1] as char).to_digit(16);
            let lo = (bytes[i + 2] as char).to_digit(16);
            if let (Some(h), Some(l)) = (hi, lo) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_url_appends_streams_and_suffix() {
        let u = session_url("http://h:8080/live/ch.isml/", "ch-v1", Some("-a")).unwrap();
        assert_eq!(u.as_str(), "http://h:8080/live/ch.isml/Streams(ch-v1-a)");
        assert!(session_url("http://h/x.isml", "bad id", None).is_err());
    }

    #[test]
    fn credentials_are_split_off_and_redacted() {
        let t =
            Target::parse("https://us%40er:p%3Ass@example.org/a.isml/Streams(x)?tok=1").unwrap();
        let c = t.credentials.clone().unwrap();
        assert_eq!(c.user, "us@er");
        assert_eq!(c.password, "p:ss");
        assert_eq!(t.redacted(), "https://example.org/a.isml/Streams(x)");
        assert_eq!(t.request_target(), "/a.isml/Streams(x)?tok=1");
        assert_eq!(t.host_header(), "example.org");
        assert!(!format!("{t:?}").contains("p:ss"));
        let t2 = Target::parse("http://[::1]:99/a.isml").unwrap();
        assert_eq!(t2.host_header(), "[::1]:99");
        assert!(Target::parse("ftp://h/a.isml").is_err());
    }

    #[test]
    fn percent_decode_is_total() {
        assert_eq!(percent_decode("a%"), "a%");
        assert_eq!(percent_decode("a%4"), "a%4");
        assert_eq!(percent_decode("%41%zz"), "A%zz");
    }
}
