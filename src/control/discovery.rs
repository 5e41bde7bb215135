//! How a console finds the channels running on a box: every `smoothcast run` writes
//! `<runtime dir>/<channel>.json` ([`Endpoint`]: channel, control URL, pid) once its control API
//! listens, and removes it when it exits.
//!
//! The runtime directory is the first of:
//! 1. `$SMOOTHCAST_RUNTIME_DIR` (tests, unusual layouts; created if missing);
//! 2. `$RUNTIME_DIRECTORY` (set by systemd from `RuntimeDirectory=smoothcast`: `/run/smoothcast`);
//! 3. `/run/smoothcast` if it exists and is writable;
//! 4. `$XDG_RUNTIME_DIR/smoothcast` (a user's own runs; created if missing).
//!
//! [`discover`] reads `$SMOOTHCAST_RUNTIME_DIR` alone when set, else `/run/smoothcast` and
//! `$XDG_RUNTIME_DIR/smoothcast`, and skips entries whose process is gone.

use super::api::Endpoint;
use std::path::{Path, PathBuf};

/// Overrides the runtime directory for writing and discovery.
pub const RUNTIME_DIR_ENV: &str = "SMOOTHCAST_RUNTIME_DIR";
/// The system-wide runtime directory (systemd's `RuntimeDirectory=smoothcast`).
pub const SYSTEM_RUNTIME_DIR: &str = "/run/smoothcast";

/// Entry files larger than this are not endpoints (and are not read whole).
const MAX_ENTRY_BYTES: u64 = 16 * 1024;

fn env_dir(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Where this process publishes its endpoint (see the module doc), or `None`.
pub fn runtime_dir() -> Option<PathBuf> {
    if let Some(d) = env_dir(RUNTIME_DIR_ENV) {
        return Some(d);
    }
    if let Some(d) = env_dir("RUNTIME_DIRECTORY") {
        // systemd may list several directories separated by ':'; ours is the first.
        let first = d.to_string_lossy().split(':').next().map(PathBuf::from);
        if first.is_some() {
            return first;
        }
    }
    let system = Path::new(SYSTEM_RUNTIME_DIR);
    if is_writable_dir(system) {
        return Some(system.to_path_buf());
    }
    env_dir("XDG_RUNTIME_DIR").map(|d| d.join("smoothcast"))
}

fn is_writable_dir(p: &Path) -> bool {
    let probe = p.join(format!(".probe-{}", std::process::id()));
    match std::fs::File::create(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            true
        }
        Err(_) => false,
    }
}

/// The directories [`discover`] reads.
pub fn discovery_dirs() -> Vec<PathBuf> {
    if let Some(d) = env_dir(RUNTIME_DIR_ENV) {
        return vec![d];
    }
    let mut v = vec![PathBuf::from(SYSTEM_RUNTIME_DIR)];
    if let Some(d) = env_dir("XDG_RUNTIME_DIR") {
        v.push(d.join("smoothcast"));
    }
    v
}

/// A published endpoint file; removed again on drop.
#[derive(Debug)]
pub struct Published {
    path: PathBuf,
}

impl Published {
    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Published {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Writes `dir/<channel>.json` atomically (temporary file + rename), world-readable: it holds
/// no secret.
pub fn publish(dir: &Path, entry: &Endpoint) -> std::io::Result<Published> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("{}.json", entry.channel));
    let tmp = dir.join(format!(".{}.json.{}", entry.channel, std::process::id()));
    let body = serde_json::to_vec_pretty(entry).map_err(std::io::Error::other)?;
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)?;
        f.write_all(&body)?;
        f.write_all(b"\n")?;
    }
    std::fs::rename(&tmp, &path)?;
    Ok(Published { path })
}

/// Every live channel endpoint in [`discovery_dirs`], sorted by channel name.
pub fn discover() -> Vec<Endpoint> {
    let mut out = Vec::new();
    for dir in discovery_dirs() {
        out.extend(read_dir_entries(&dir));
    }
    out.sort_by(|a, b| a.channel.cmp(&b.channel).then(a.url.cmp(&b.url)));
    out.dedup();
    out
}

/// The endpoints in one directory whose process still runs.
pub fn read_dir_entries(dir: &Path) -> Vec<Endpoint> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in rd.flatten() {
        let p = e.path();
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || !name.ends_with(".json") {
            continue;
        }
        if e.metadata().map_or(true, |m| m.len() > MAX_ENTRY_BYTES) {
            continue;
        }
        let Ok(text) = std::fs::read(&p) else {
            continue;
        };
        let Ok(entry) = serde_json::from_slice::<Endpoint>(&text) else {
            continue;
        };
        if Path::new(&format!("/proc/{}", entry.pid)).exists() {
            out.push(entry);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_entries_are_discovered_until_dropped_and_stale_ones_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let me = Endpoint {
            channel: "ch1".into(),
            url: "http://127.0.0.1:8701".into(),
            pid: std::process::id(),
            token_required: false,
            version: "0".into(),
        };
        let stale = Endpoint {
            channel: "gone".into(),
            pid: u32::MAX - 1,
            ..me.clone()
        };
        let p = publish(dir.path(), &me).unwrap();
        let _s = publish(dir.path(), &stale).unwrap();
        std::fs::write(dir.path().join("junk.json"), b"{not json").unwrap();
        assert_eq!(read_dir_entries(dir.path()), vec![me]);
        let path = p.path().to_path_buf();
        drop(p);
        assert!(!path.exists());
        assert!(read_dir_entries(dir.path()).is_empty());
    }
}
