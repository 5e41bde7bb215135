//! The unit files in systemd/: `systemd-analyze verify` accepts them without a single warning
//! (ExecStart pointed at the binary under test), their `systemd-analyze security` exposure stays
//! "OK" (≤ 2.0; 1.5 when written), they say what the operations design asks for, and the
//! sysusers file creates the service user in the video and audio groups.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const MAX_EXPOSURE: f64 = 2.0;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn units() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo().join("systemd"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "service"))
        .collect();
    v.sort();
    v
}

/// `key → values` of a unit file (keys may repeat).
fn directives(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for l in text.lines().map(str::trim) {
        if l.starts_with('#') || l.starts_with('[') || l.is_empty() {
            continue;
        }
        if let Some((k, v)) = l.split_once('=') {
            m.entry(k.to_string()).or_default().push(v.to_string());
        }
    }
    m
}

/// Copies a unit with ExecStart pointed at the built binary; templates get an instance name.
fn staged(dir: &Path, unit: &Path) -> PathBuf {
    let text = std::fs::read_to_string(unit).unwrap().replace(
        "/usr/local/bin/smoothcast",
        env!("CARGO_BIN_EXE_smoothcast"),
    );
    let name = unit
        .file_name()
        .unwrap()
        .to_string_lossy()
        .replace("@.service", "@test.service");
    let out = dir.join(name);
    std::fs::write(&out, text).unwrap();
    out
}

fn systemd_analyze(args: &[&str], unit: &Path) -> (bool, String, String) {
    let out = Command::new("systemd-analyze")
        .args(args)
        .arg(unit)
        .output()
        .expect("systemd-analyze (Debian package systemd)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn units_pass_systemd_analyze_verify_without_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let list = units();
    assert_eq!(
        list.len(),
        2,
        "smoothcast@.service and smoothcast-standby.service: {list:?}"
    );
    for unit in &list {
        let staged = staged(dir.path(), unit);
        let (ok, stdout, stderr) = systemd_analyze(&["verify"], &staged);
        assert!(ok, "{}: verify failed:\n{stdout}{stderr}", unit.display());
        assert!(
            stderr.trim().is_empty() && stdout.trim().is_empty(),
            "{}: verify warned:\n{stdout}{stderr}",
            unit.display()
        );
    }
    // The check has teeth: a misspelt directive is reported.
    let bad = dir.path().join("bad.service");
    std::fs::write(
        &bad,
        format!(
            "[Service]\nExecStart={}\nWatchdogSecs=20\n",
            env!("CARGO_BIN_EXE_smoothcast")
        ),
    )
    .unwrap();
    let (_, _, stderr) = systemd_analyze(&["verify"], &bad);
    assert!(stderr.contains("Unknown key"), "{stderr}");
}

#[test]
fn units_keep_their_systemd_analyze_security_exposure_ok() {
    let dir = tempfile::tempdir().unwrap();
    for unit in units() {
        let staged = staged(dir.path(), &unit);
        let (_, stdout, stderr) =
            systemd_analyze(&["security", "--offline=true", "--no-pager"], &staged);
        let line = stdout
            .lines()
            .chain(stderr.lines())
            .find(|l| l.contains("Overall exposure level"))
            .unwrap_or_else(|| panic!("no score for {}:\n{stdout}{stderr}", unit.display()));
        let score: f64 = line
            .rsplit(':')
            .next()
            .and_then(|r| r.split_whitespace().next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("unparsable: {line}"));
        eprintln!("{}: {line}", unit.display());
        assert!(score <= MAX_EXPOSURE, "{}: {line}", unit.display());
    }
}

#[test]
fn channel_unit_says_what_operations_need() {
    let text = std::fs::read_to_string(repo().join("systemd/smoothcast@.service")).unwrap();
    let d = directives(&text);
    let one = |k: &str| -> &str {
        d.get(k)
            .and_then(|v| v.last())
            .map(String::as_str)
            .unwrap_or_else(|| panic!("{k}= missing"))
    };
    assert_eq!(one("Type"), "notify");
    assert_eq!(
        one("ExecStart"),
        "/usr/local/bin/smoothcast run /etc/smoothcast/profiles/%i.toml"
    );
    assert_eq!(one("Restart"), "on-failure");
    assert!(one("WatchdogSec").ends_with('s'));
    assert_eq!(one("ProtectSystem"), "strict");
    assert_eq!(one("NoNewPrivileges"), "yes");
    assert_eq!(one("PrivateTmp"), "yes");
    assert_eq!(one("User"), "smoothcast");
    assert_eq!(one("SupplementaryGroups"), "video audio");
    assert_eq!(one("DevicePolicy"), "closed");
    assert_eq!(
        d["DeviceAllow"],
        [
            "char-video4linux rw".to_string(),
            "char-alsa rw".to_string()
        ]
    );
    assert_eq!(one("RuntimeDirectory"), "smoothcast");
    // SIGTERM needs at most one fragment (≤ 30 s by the profile rules) + 2 s.
    let stop: u64 = one("TimeoutStopSec").trim_end_matches('s').parse().unwrap();
    assert!(stop >= 32, "TimeoutStopSec={stop}");
}

#[test]
fn sysusers_creates_the_service_user_in_the_video_and_audio_groups() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("etc")).unwrap();
    let out = Command::new("systemd-sysusers")
        .arg("--dry-run")
        .arg(format!("--root={}", root.path().display()))
        .arg(repo().join("systemd/smoothcast.sysusers"))
        .output()
        .expect("systemd-sysusers");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    for want in [
        "Creating group 'video'",
        "Creating group 'audio'",
        "Creating user 'smoothcast'",
    ] {
        assert!(text.contains(want), "{want}: {text}");
    }
}
