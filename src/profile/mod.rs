//! Profiles: the TOML file that fully describes a channel, its validation, and the resolved plan.
//!
//! ```text
//! profile.toml ──toml+serde (schema, deny_unknown_fields)──► ProfileFile ──resolve──► Plan
//! ```
//!
//! - [`schema`] is the file as written (one struct per table, a doc comment per field).
//! - `defaults` holds every default value, in one place.
//! - resolution validates everything and computes the derived values (GOP length, trackIDs,
//!   trackNames, stream ids); the channel consumes only the [`Plan`].
//! - every error names the file, the field path (`rung[1].bitrate`, 0-based indices) and what
//!   is wrong: [`ProfileError`].
//!
//! Resolution rules (also in `docs/profile.md`):
//! - trackIDs: rungs 1..=N in profile order, audio N+1.
//! - trackName: every rung `video` (Smooth groups the ladder under one StreamIndex whose
//!   QualityLevels differ by bitrate, so rung bitrates must differ), audio `audio`.
//! - stream ids: `per-track` → `<channel>-<rung>` per rung, `<channel>-audio` (and
//!   `<channel>-audio2` with `redundant_audio`); `single` → `<channel>` carrying every track.
//!   `push.stream_suffix` is appended by the pusher, not stored in the ids.
//! - relative paths resolve against the profile file's directory ([`load`]) or stay relative
//!   to the working directory ([`from_toml`]).

mod defaults;
mod describe;
pub mod plan;
mod resolve;
pub mod schema;
mod text;

pub use describe::describe;
pub use plan::*;

use std::path::Path;

/// The example profile the demo runs: synthetic 640x360 at 30 fps, three rungs, no
/// destinations (the demo adds its built-in sink at run time).
pub const DEMO_PROFILE: &str = include_str!("../../profiles/demo.toml");

/// A profile that cannot be loaded, with where and why.
///
/// Displays as `<origin>: <field.path>: <message>`, e.g.
/// `profiles/bad.toml: channel.fragment_duration: fragment duration 2 s at 30000/1001 is 59.94
/// frames; …`. When no field applies (the file cannot be read) it is `<origin>: <message>`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: {}{message}", if field.is_empty() { String::new() } else { format!("{field}: ") })]
pub struct ProfileError {
    origin: String,
    field: String,
    message: String,
}

impl ProfileError {
    fn new(origin: &str, field: impl Into<String>, message: impl Into<String>) -> ProfileError {
        ProfileError {
            origin: origin.to_owned(),
            field: field.into(),
            message: message.into(),
        }
    }

    /// The field path (`channel.rate`, `rung[2].preset`, `destination[0].url`; indices are
    /// 0-based), or `""` when the file itself could not be read.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// Where the profile came from (a file path, or the origin given to [`from_toml`]).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// What is wrong, without origin and field.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// Loads and resolves a profile file. The error's origin is `path` as given; relative paths
/// inside the profile resolve against the file's directory.
pub fn load(path: &Path) -> Result<Plan, ProfileError> {
    let origin = path.display().to_string();
    let meta =
        std::fs::metadata(path).map_err(|e| ProfileError::new(&origin, "", e.to_string()))?;
    if meta.len() > text::MAX_PROFILE_BYTES as u64 {
        return Err(ProfileError::new(
            &origin,
            "",
            format!("{} bytes is too large for a profile", meta.len()),
        ));
    }
    let content =
        std::fs::read_to_string(path).map_err(|e| ProfileError::new(&origin, "", e.to_string()))?;
    let base = match path.parent() {
        Some(p) if p.as_os_str().is_empty() => Path::new("."),
        Some(p) => p,
        None => Path::new("."),
    };
    parse(&content, &origin, Some(base))
}

/// Parses and resolves profile text. `origin` names it in errors (usually its file path);
/// relative paths inside stay relative (to the working directory).
pub fn from_toml(text: &str, origin: &str) -> Result<Plan, ProfileError> {
    parse(text, origin, None)
}

/// Like [`from_toml`], resolving relative paths against `base_dir` (the profile's directory).
pub fn from_toml_in(text: &str, origin: &str, base_dir: &Path) -> Result<Plan, ProfileError> {
    parse(text, origin, Some(base_dir))
}

/// The resolved demo profile ([`DEMO_PROFILE`]).
pub fn demo() -> Plan {
    match from_toml(DEMO_PROFILE, "profiles/demo.toml") {
        Ok(p) => p,
        // The text is compiled in and checked by tests/profiles.rs, so this cannot happen
        // in a build that passed its tests.
        Err(e) => panic!("built-in demo profile is invalid: {e}"),
    }
}

fn parse(content: &str, origin: &str, base: Option<&Path>) -> Result<Plan, ProfileError> {
    if content.len() > text::MAX_PROFILE_BYTES {
        return Err(ProfileError::new(
            origin,
            "",
            format!("{} bytes is too large for a profile", content.len()),
        ));
    }
    let de = toml::Deserializer::new(content);
    let file: schema::ProfileFile =
        serde_path_to_error::deserialize(de).map_err(|e| deserialize_error(content, origin, e))?;
    let today = || {
        chrono::Utc::now()
            .date_naive()
            .format("%Y-%m-%d")
            .to_string()
    };
    resolve::resolve(file, base, &today).map_err(|e| ProfileError::new(origin, e.field, e.message))
}

/// Maps a toml/serde error to a field path. Serde errors carry their exact path; a missing or
/// unknown field is reported at the field itself (`channel.framerate`), not at its table.
/// TOML syntax errors have no path, so the key on the offending line is looked up.
fn deserialize_error(
    content: &str,
    origin: &str,
    e: serde_path_to_error::Error<toml::de::Error>,
) -> ProfileError {
    let mut path = String::new();
    for seg in e.path().iter() {
        use serde_path_to_error::Segment;
        match seg {
            Segment::Seq { index } => path.push_str(&format!("[{index}]")),
            Segment::Map { key } => push_key(&mut path, key),
            Segment::Enum { variant } => push_key(&mut path, variant),
            Segment::Unknown => push_key(&mut path, "?"),
        }
    }
    let inner = e.into_inner();
    let message = plain_types(&one_line(inner.message()));
    // serde reports a missing field at its table; point at the field itself.
    if let Some(rest) = message.strip_prefix("missing field `") {
        if let Some((key, _)) = rest.split_once('`') {
            push_key(&mut path, key);
        }
        return ProfileError::new(origin, path, "missing field (required)");
    }
    if path.is_empty() {
        // A syntax error (or a type error toml reported before serde saw a key).
        if let Some(span) = inner.span() {
            let (line, col, key) = locate(content, span.start);
            return ProfileError::new(
                origin,
                key,
                format!("TOML syntax error at line {line}, column {col}: {message}"),
            );
        }
    }
    ProfileError::new(origin, path, message)
}

fn push_key(path: &mut String, key: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(key);
}

/// serde names Rust types ("expected u32"); say what to write instead.
fn plain_types(m: &str) -> String {
    let mut m = m.to_owned();
    for (rust, plain) in [
        ("expected u16", "expected a whole number from 0 to 65535"),
        (
            "expected u32",
            "expected a whole number from 0 to 4294967295",
        ),
        ("expected usize", "expected a whole number from 0"),
        ("expected f64", "expected a number"),
    ] {
        if let Some(head) = m.strip_suffix(rust) {
            m = format!("{head}{plain}");
        }
    }
    m
}

/// toml's messages span several lines ("invalid string\nexpected `\"`"); errors are one line.
fn one_line(m: &str) -> String {
    m.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// 1-based line and column of byte `offset`, and the best-effort field path there: the
/// current `[table]` / `[[array]]` header plus the key on the line.
fn locate(content: &str, offset: usize) -> (usize, usize, String) {
    let offset = offset.min(content.len());
    let before = content.get(..offset).unwrap_or(content);
    let line_no = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = content
        .get(line_start..offset)
        .map_or(1, |s| s.chars().count() + 1);
    let mut table = String::new();
    let mut arrays: Vec<(String, usize)> = Vec::new();
    let mut key = String::new();
    for (i, raw) in content.lines().enumerate().take(line_no) {
        let l = raw.trim();
        if let Some(name) = l
            .strip_prefix("[[")
            .and_then(|r| r.split_once("]]"))
            .map(|r| r.0.trim())
        {
            let n = match arrays.iter_mut().find(|(a, _)| a == name) {
                Some((_, c)) => {
                    *c += 1;
                    *c
                }
                None => {
                    arrays.push((name.to_owned(), 0));
                    0
                }
            };
            table = format!("{name}[{n}]");
            key.clear();
        } else if let Some(name) = l
            .strip_prefix('[')
            .and_then(|r| r.split_once(']'))
            .map(|r| r.0.trim())
        {
            // `[rung.x264]` after `[[rung]]` belongs to the latest rung.
            table = match name.split_once('.') {
                Some((head, tail)) => match arrays.iter().find(|(a, _)| a == head) {
                    Some((_, c)) => format!("{head}[{c}].{tail}"),
                    None => name.to_owned(),
                },
                None => name.to_owned(),
            };
            key.clear();
        } else if i + 1 == line_no {
            if let Some((k, _)) = l.split_once('=') {
                key = k.trim().trim_matches('"').trim_matches('\'').to_owned();
            }
        }
    }
    let mut path = table;
    if !key.is_empty() {
        push_key(&mut path, &key);
    }
    if path.is_empty() {
        path = format!("line {line_no}");
    }
    (line_no, col, path)
}

/// A URL with its password replaced by `***` (`http://user:***@host/live/x.isml`), safe for
/// logs and status. Strings that are not URLs are redacted the same way, best effort.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let auth_start = scheme_end + 3;
    let rest = &url[auth_start..];
    let auth_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..auth_len];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &authority[..at];
    let Some(colon) = userinfo.find(':') else {
        return url.to_owned();
    };
    format!(
        "{}{}:***{}",
        &url[..auth_start],
        &userinfo[..colon],
        &url[auth_start + at..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_url_hides_only_the_password() {
        assert_eq!(
            redact_url("https://enc:s3cr3t@ingest.example.com:8443/live/ch1.isml"),
            "https://enc:***@ingest.example.com:8443/live/ch1.isml"
        );
        assert_eq!(
            redact_url("http://user:p@ss:w@host/x.isml"),
            "http://user:***@host/x.isml"
        );
        assert_eq!(
            redact_url("http://user@host/x.isml"),
            "http://user@host/x.isml"
        );
        assert_eq!(
            redact_url("http://host/a@b/x.isml"),
            "http://host/a@b/x.isml"
        );
        assert_eq!(redact_url("not a url"), "not a url");
        assert_eq!(
            redact_url("http://:pw@host/x.isml"),
            "http://:***@host/x.isml"
        );
    }

    #[test]
    fn syntax_error_is_located_at_the_key_of_its_table() {
        let text = "[channel]\nname = \"a\"\n[[rung]]\nname = \"x\"\n[[rung]]\nbitrate = 3000 3\n";
        let off = text.find("3000 3").unwrap_or(0) + 5;
        let (line, col, path) = locate(text, off);
        assert_eq!((line, col, path.as_str()), (6, 16, "rung[1].bitrate"));
        let (_, _, path) = locate("[rung.x264]\n", 3);
        assert_eq!(path, "rung.x264");
        let (_, _, path) = locate("= 3\n", 0);
        assert_eq!(path, "line 1");
    }

    #[test]
    fn demo_profile_resolves() {
        let plan = demo();
        assert_eq!(plan.channel, "demo");
        assert_eq!(plan.fragments.gop, 60);
        assert!(plan.destinations.is_empty());
    }
}
