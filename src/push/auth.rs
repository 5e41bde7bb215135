//! HTTP authentication answers: Basic (RFC 7617) and Digest (RFC 7616: MD5, MD5-sess,
//! SHA-256, qop=auth with nc/cnonce, or the RFC 2069 form without qop).
//!
//! Credentials come from the URL userinfo. The `Authorization` value produced here is written to
//! the socket only; it is never logged.

use super::target::Credentials;
use base64::Engine;
use md5::Md5;
use sha2::{Digest as _, Sha256};

/// A challenge from a `WWW-Authenticate` header, remembered so later requests (reconnects, the
/// long POST after the probe) can answer preemptively.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Challenge {
    Basic,
    Digest(DigestChallenge),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DigestChallenge {
    pub(crate) realm: String,
    pub(crate) nonce: String,
    pub(crate) opaque: Option<String>,
    pub(crate) algorithm: DigestAlgorithm,
    /// The server offered `qop=auth`.
    pub(crate) qop_auth: bool,
    /// The server said the previous nonce was stale (credentials were fine).
    pub(crate) stale: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DigestAlgorithm {
    Md5,
    Md5Sess,
    Sha256,
    Sha256Sess,
}

impl DigestAlgorithm {
    fn name(self) -> &'static str {
        match self {
            DigestAlgorithm::Md5 => "MD5",
            DigestAlgorithm::Md5Sess => "MD5-sess",
            DigestAlgorithm::Sha256 => "SHA-256",
            DigestAlgorithm::Sha256Sess => "SHA-256-sess",
        }
    }

    fn hash(self, data: &str) -> String {
        match self {
            DigestAlgorithm::Md5 | DigestAlgorithm::Md5Sess => {
                hex::encode(Md5::digest(data.as_bytes()))
            }
            DigestAlgorithm::Sha256 | DigestAlgorithm::Sha256Sess => {
                hex::encode(Sha256::digest(data.as_bytes()))
            }
        }
    }

    fn is_sess(self) -> bool {
        matches!(self, DigestAlgorithm::Md5Sess | DigestAlgorithm::Sha256Sess)
    }
}

/// Picks the strongest challenge we can answer from all `WWW-Authenticate` header values:
/// Digest SHA-256, then Digest MD5, then Basic.
pub(crate) fn pick_challenge<'a>(values: impl Iterator<Item = &'a str>) -> Option<Challenge> {
    let mut best: Option<Challenge> = None;
    let rank = |c: &Challenge| match c {
        Challenge::Basic => 0,
        Challenge::Digest(d) => match d.algorithm {
            DigestAlgorithm::Md5 | DigestAlgorithm::Md5Sess => 1,
            _ => 2,
        },
    };
    for v in values {
        if let Some(c) = parse_challenge(v) {
            if best.as_ref().is_none_or(|b| rank(&c) > rank(b)) {
                best = Some(c);
            }
        }
    }
    best
}

/// Parses one challenge (`Basic realm="x"` or `Digest realm="x", nonce="y", …`).
pub(crate) fn parse_challenge(value: &str) -> Option<Challenge> {
    let value = value.trim();
    let (scheme, rest) = match value.find(|c: char| c.is_ascii_whitespace()) {
        Some(i) => (&value[..i], &value[i..]),
        None => (value, ""),
    };
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("digest") {
        return None;
    }
    let params = parse_params(rest);
    let get = |k: &str| {
        params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.clone())
    };
    let algorithm = match get("algorithm") {
        None => DigestAlgorithm::Md5,
        Some(a) => match a.to_ascii_uppercase().as_str() {
            "MD5" => DigestAlgorithm::Md5,
            "MD5-SESS" => DigestAlgorithm::Md5Sess,
            "SHA-256" => DigestAlgorithm::Sha256,
            "SHA-256-SESS" => DigestAlgorithm::Sha256Sess,
            _ => return None,
        },
    };
    let qop = get("qop");
    let qop_auth = qop
        .as_deref()
        .is_some_and(|q| q.split(',').any(|t| t.trim().eq_ignore_ascii_case("auth")));
    if qop.is_some() && !qop_auth {
        // Only auth-int offered: we cannot hash a never-ending body.
        return None;
    }
    Some(Challenge::Digest(DigestChallenge {
        realm: get("realm").unwrap_or_default(),
        nonce: get("nonce")?,
        opaque: get("opaque"),
        algorithm,
        qop_auth,
        stale: get("stale").is_some_and(|s| s.eq_ignore_ascii_case("true")),
    }))
}

/// `name=value` / `name="quoted value"` pairs separated by commas; total on any input.
fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars
            .peek()
            .is_some_and(|c| c.is_ascii_whitespace() || *c == ',')
        {
            chars.next();
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' || c.is_ascii_whitespace() {
                break;
            }
            name.push(c);
            chars.next();
        }
        if name.is_empty() {
            if chars.next().is_none() {
                break;
            }
            continue;
        }
        while chars.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            chars.next();
        }
        if chars.peek() != Some(&'=') {
            out.push((name, String::new()));
            continue;
        }
        chars.next();
        while chars.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => break,
                    _ => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
            value = value.trim().to_string();
        }
        out.push((name, value));
    }
    out
}

/// State for answering one remembered challenge; the nonce count grows per request.
#[derive(Clone, Debug)]
pub(crate) struct AuthState {
    pub(crate) challenge: Challenge,
    nonce_count: u32,
}

impl AuthState {
    pub(crate) fn new(challenge: Challenge) -> AuthState {
        AuthState {
            challenge,
            nonce_count: 0,
        }
    }

    /// The `Authorization` header value for one request.
    pub(crate) fn authorization(&mut self, creds: &Credentials, method: &str, uri: &str) -> String {
        match &self.challenge {
            Challenge::Basic => basic(creds),
            Challenge::Digest(d) => {
                self.nonce_count = self.nonce_count.wrapping_add(1);
                let cnonce = hex::encode(rand::random::<[u8; 12]>());
                digest(d, creds, method, uri, self.nonce_count, &cnonce)
            }
        }
    }
}

fn basic(creds: &Credentials) -> String {
    let raw = format!("{}:{}", creds.user, creds.password);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// RFC 7616 §3.4 response computation.
pub(crate) fn digest(
    d: &DigestChallenge,
    creds: &Credentials,
    method: &str,
    uri: &str,
    nc: u32,
    cnonce: &str,
) -> String {
    let alg = d.algorithm;
    let mut ha1 = alg.hash(&format!("{}:{}:{}", creds.user, d.realm, creds.password));
    if alg.is_sess() {
        ha1 = alg.hash(&format!("{ha1}:{}:{cnonce}", d.nonce));
    }
    let ha2 = alg.hash(&format!("{method}:{uri}"));
    let nc_hex = format!("{nc:08x}");
    let response = if d.qop_auth {
        alg.hash(&format!("{ha1}:{}:{nc_hex}:{cnonce}:auth:{ha2}", d.nonce))
    } else {
        alg.hash(&format!("{ha1}:{}:{ha2}", d.nonce))
    };
    let mut out = format!(
        "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", algorithm={}, response=\"{}\"",
        quote(&creds.user),
        quote(&d.realm),
        quote(&d.nonce),
        quote(uri),
        alg.name(),
        response
    );
    if d.qop_auth {
        out.push_str(&format!(", qop=auth, nc={nc_hex}, cnonce=\"{cnonce}\""));
    }
    if let Some(o) = &d.opaque {
        out.push_str(&format!(", opaque=\"{}\"", quote(o)));
    }
    out
}

fn quote(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mufasa(pw: &str) -> Credentials {
        Credentials {
            user: "Mufasa".into(),
            password: pw.into(),
        }
    }

    #[test]
    fn digest_md5_matches_rfc2617_example() {
        let c = parse_challenge(
            "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        )
        .unwrap();
        let Challenge::Digest(d) = c else { panic!() };
        assert!(d.qop_auth);
        let h = digest(
            &d,
            &mufasa("Circle Of Life"),
            "GET",
            "/dir/index.html",
            1,
            "0a4f113b",
        );
        assert!(
            h.contains("response=\"6629fae49393a05397450978507c4ef1\""),
            "{h}"
        );
        assert!(h.contains("nc=00000001"));
        assert!(h.contains("opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""));
    }

    #[test]
    fn digest_sha256_matches_rfc7616_example() {
        let c = parse_challenge(
            "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", algorithm=SHA-256, \
             nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", \
             opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"",
        )
        .unwrap();
        let Challenge::Digest(d) = c else { panic!() };
        let h = digest(
            &d,
            &mufasa("Circle of Life"),
            "GET",
            "/dir/index.html",
            1,
            "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
        );
        assert!(
            h.contains(
                "response=\"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1\""
            ),
            "{h}"
        );
        let d_md5 = DigestChallenge {
            algorithm: DigestAlgorithm::Md5,
            ..d
        };
        let h = digest(
            &d_md5,
            &mufasa("Circle of Life"),
            "GET",
            "/dir/index.html",
            1,
            "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
        );
        assert!(
            h.contains("response=\"8ca523f5e9506fed4657c9700eebdbec\""),
            "{h}"
        );
    }

    #[test]
    fn strongest_challenge_wins_and_garbage_is_ignored() {
        let picked = pick_challenge(
            [
                "Basic realm=\"x\"",
                "Digest realm=\"r\", nonce=\"n\"",
                "Negotiate",
                "Digest nonce=",
                "Digest ,,,, =\"",
            ]
            .into_iter(),
        );
        match picked {
            Some(Challenge::Digest(d)) => assert_eq!(d.nonce, "n"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            pick_challenge(["Basic"].into_iter()),
            Some(Challenge::Basic)
        );
        assert_eq!(
            pick_challenge(["Digest qop=auth-int, nonce=x"].into_iter()),
            None
        );
    }

    #[test]
    fn basic_header_encodes_userinfo() {
        let mut a = AuthState::new(Challenge::Basic);
        assert_eq!(
            a.authorization(&mufasa("open sesame"), "POST", "/"),
            "Basic TXVmYXNhOm9wZW4gc2VzYW1l"
        );
    }
}
