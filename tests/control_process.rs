//! The real binary as systemd runs it: SIGTERM ends every POST cleanly and exits 0 within one
//! fragment duration + 2 s, a second SIGTERM exits at once, sd_notify READY/WATCHDOG/STOPPING
//! reach a fake `$NOTIFY_SOCKET`, the control endpoint is discoverable in the runtime directory,
//! and logs carry journald priorities when `$JOURNAL_STREAM` is stderr.

mod control_common;

use control_common::{get_json, profile, profile_with_fragments, wait_until, Ingest};
use smoothcast::control::api::Endpoint;
use smoothcast::control::discovery;
use std::net::SocketAddr;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_smoothcast")
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill {sig}");
}

fn wait_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if let Some(st) = child.try_wait().unwrap() {
            return Some(st);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// Kills the child if a test fails half-way.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Collects the datagrams sent to a fake notify socket.
fn notify_socket(path: &Path) -> Arc<Mutex<Vec<(Instant, String)>>> {
    let sock = UnixDatagram::bind(path).unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = sock.recv(&mut buf) {
            g.lock().unwrap().push((
                Instant::now(),
                String::from_utf8_lossy(&buf[..n]).to_string(),
            ));
        }
    });
    got
}

fn spawn(dir: &Path, profile_text: &str, envs: &[(&str, &str)]) -> Guard {
    let prof = dir.join("profile.toml");
    std::fs::write(&prof, profile_text).unwrap();
    let mut cmd = Command::new(bin());
    cmd.arg("run")
        .arg(&prof)
        .env("SMOOTHCAST_RUNTIME_DIR", dir.join("run"))
        .env_remove("NOTIFY_SOCKET")
        .env_remove("JOURNAL_STREAM")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.join("stdout")).unwrap())
        .stderr(std::fs::File::create(dir.join("stderr")).unwrap());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    Guard(cmd.spawn().unwrap())
}

/// The channel's endpoint, once its control API listens.
fn endpoint(dir: &Path, channel: &str) -> (PathBuf, Endpoint, SocketAddr) {
    let file = dir.join("run").join(format!("{channel}.json"));
    wait_until("the runtime file", Duration::from_secs(20), || {
        file.exists()
    });
    let ep: Endpoint = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let addr = ep.url.trim_start_matches("http://").parse().unwrap();
    (file, ep, addr)
}

fn stderr_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("stderr")).unwrap_or_default()
}

#[test]
fn first_sigterm_ends_every_post_cleanly_and_exits_zero_within_a_fragment_plus_two_seconds() {
    let ingest = Ingest::start();
    let dir = tempfile::tempdir().unwrap();
    let notify_path = dir.path().join("notify");
    let notes = notify_socket(&notify_path);
    let text = profile(
        "sig1",
        &[ingest.url("sig1")],
        "\n[control]\nlisten = \"127.0.0.1:0\"\n",
    );
    let mut child = spawn(
        dir.path(),
        &text,
        &[
            ("NOTIFY_SOCKET", notify_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "1000000"),
        ],
    );

    // Discovery: the runtime file names this process and its API.
    let (file, ep, addr) = endpoint(dir.path(), "sig1");
    assert_eq!(ep.pid, child.0.id());
    assert!(!ep.token_required);
    assert_eq!(
        discovery::read_dir_entries(&dir.path().join("run")),
        vec![ep.clone()]
    );

    // Every stream delivers fragments; READY=1 came, then watchdog pings.
    wait_until(
        "two fragments on every stream",
        Duration::from_secs(20),
        || {
            let posts = ingest.posts();
            posts.len() == 3 && posts.iter().all(|p| p.fragments_so_far() >= 2)
        },
    );
    wait_until(
        "READY=1 and two watchdog pings",
        Duration::from_secs(5),
        || {
            let n = notes.lock().unwrap();
            let ready = n
                .iter()
                .position(|(_, m)| m.lines().any(|l| l == "READY=1"));
            ready.is_some_and(|r| n[r..].iter().filter(|(_, m)| m == "WATCHDOG=1").count() >= 2)
        },
    );
    let st = get_json(addr, "/status");
    assert_eq!(st["state"], "running");
    assert_eq!(st["ready"], true);

    let t0 = Instant::now();
    signal(&child.0, "-TERM");
    let status = wait_exit(&mut child.0, Duration::from_secs(15)).expect("exits after SIGTERM");
    let took = t0.elapsed();
    eprintln!("exited {took:?} after SIGTERM");
    let stderr = stderr_of(dir.path());
    assert!(status.success(), "exit status {status}:\n{stderr}");
    assert!(
        took <= Duration::from_millis(3000),
        "exited {took:?} after SIGTERM; fragment (1 s) + 2 s allowed:\n{stderr}"
    );

    // Every POST ended with its terminating chunk and every stream ends on the same fragment.
    let posts = ingest.posts();
    assert_eq!(posts.len(), 3, "one POST per stream, no reconnect");
    assert!(
        posts.iter().all(|p| p.complete),
        "every POST ended with 0\\r\\n\\r\\n"
    );
    let last: Vec<u32> = posts
        .iter()
        .map(|p| p.fragments().last().map(|f| f.1).unwrap())
        .collect();
    assert!(
        last.windows(2).all(|w| w[0] == w[1]),
        "streams end together: {last:?}"
    );

    let n = notes.lock().unwrap();
    assert!(
        n.iter().any(|(_, m)| m.lines().any(|l| l == "STOPPING=1")),
        "{n:?}"
    );
    assert!(!file.exists(), "the runtime file is removed on exit");
}

#[test]
fn a_second_sigterm_exits_at_once() {
    let dir = tempfile::tempdir().unwrap();
    // Long fragments: a clean stop could take seconds, exiting at once cannot.
    let text = profile_with_fragments("sig2", "4", &[], "");
    let mut child = spawn(dir.path(), &text, &[]);
    let (_, _, addr) = endpoint(dir.path(), "sig2");
    wait_until("running", Duration::from_secs(20), || {
        get_json(addr, "/status")["state"] == "running"
    });
    signal(&child.0, "-TERM");
    std::thread::sleep(Duration::from_millis(200));
    let t1 = Instant::now();
    signal(&child.0, "-TERM");
    let status = wait_exit(&mut child.0, Duration::from_secs(10)).expect("exits");
    let took = t1.elapsed();
    assert!(
        took < Duration::from_millis(700),
        "exited {took:?} after the second SIGTERM"
    );
    assert_eq!(status.code(), Some(1), "{}", stderr_of(dir.path()));
    assert!(stderr_of(dir.path()).contains("second stop request"));
}

#[test]
fn logs_carry_journald_priorities_only_when_journal_stream_is_stderr() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let run = |journal: bool| -> String {
        let path = dir.path().join(format!("stderr-{journal}"));
        let f = std::fs::File::create(&path).unwrap();
        let meta = f.metadata().unwrap();
        // The inode of stderr itself, or a neighbour's (the variable was inherited).
        let ino = if journal { meta.ino() } else { meta.ino() + 1 };
        let out = Command::new(bin())
            // A publishing point that refuses connections: warnings as well as infos.
            .args(["run", "--fast", "--duration", "2", "--no-control"])
            .args(["--push", "http://127.0.0.1:9/live/x.isml"])
            .env("JOURNAL_STREAM", format!("{}:{ino}", meta.dev()))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(f)
            .status()
            .unwrap();
        assert!(out.success());
        std::fs::read_to_string(&path).unwrap()
    };
    let journal = run(true);
    let lines: Vec<&str> = journal.lines().collect();
    assert!(lines.len() >= 2, "{journal}");
    for l in &lines {
        assert!(
            l.starts_with("<6>")
                || l.starts_with("<4>")
                || l.starts_with("<3>")
                || l.starts_with("<7>"),
            "no priority prefix: {l}"
        );
    }
    assert!(
        journal.contains("<6>") && journal.contains("<4>"),
        "{journal}"
    );
    assert!(!journal.contains('\u{1b}'), "no colours for journald");
    let plain = run(false);
    assert!(plain.lines().all(|l| !l.starts_with('<')), "{plain}");
}
