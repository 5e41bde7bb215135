//! End-to-end: a real channel (`smoothcast run` with its control API, pushing to an in-test
//! publishing point, its backup pointing at a dead port) and the real console inside a
//! detached tmux session. The test reads the screen with `capture-pane`, presses keys with
//! `send-keys`, and checks both what the screen shows and what the channel did.
//!
//! Needs `tmux` (Debian package `tmux`). Each test runs its own tmux server on a socket in a
//! temporary directory, so it never touches the developer's sessions.

use smoothcast::console::client;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_smoothcast")
}

/// A tmux server of its own (socket in a temporary directory) with one 100×30 session
/// running `command`.
struct Tmux {
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmux {
    fn start(command: &str) -> Tmux {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let t = Tmux {
            socket: dir.path().join("tmux.sock"),
            _dir: dir,
        };
        let ok = t
            .cmd(&[
                "new-session",
                "-d",
                "-s",
                "t",
                "-x",
                "100",
                "-y",
                "30",
                command,
            ])
            .status()
            .unwrap_or_else(|e| panic!("tmux is required for this test ({e})"));
        assert!(ok.success(), "tmux new-session failed");
        // Keep the pane (and its last screen) when the command exits.
        let _ = t
            .cmd(&["set-option", "-t", "t", "remain-on-exit", "on"])
            .status();
        t
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("tmux");
        c.arg("-S").arg(&self.socket).args(args);
        c.stdin(Stdio::null());
        c
    }

    fn output(&self, args: &[&str]) -> String {
        let out = self
            .cmd(args)
            .output()
            .unwrap_or_else(|e| panic!("tmux {args:?}: {e}"));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.output(&["capture-pane", "-p", "-J", "-t", "t"])
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "t"];
        args.extend_from_slice(keys);
        assert!(self.cmd(&args).status().is_ok_and(|s| s.success()));
    }

    fn pane(&self, format: &str) -> String {
        self.output(&["display-message", "-p", "-t", "t", format])
            .trim()
            .to_string()
    }

    /// Waits until the screen satisfies `cond`; returns that screen.
    fn wait_screen(&self, what: &str, cond: impl Fn(&str) -> bool) -> String {
        let t0 = Instant::now();
        loop {
            let s = self.screen();
            if cond(&s) {
                return s;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "timed out waiting for {what}; screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]).status();
    }
}

/// A publishing point on 127.0.0.1 that accepts probes and chunked POSTs and answers 200.
struct Ingest {
    port: u16,
    /// Body bytes received over all POSTs.
    bytes: Arc<AtomicUsize>,
}

impl Ingest {
    fn start() -> Ingest {
        let l = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
        let port = l.local_addr().map(|a| a.port()).unwrap_or(0);
        let bytes = Arc::new(AtomicUsize::new(0));
        let counter = bytes.clone();
        std::thread::spawn(move || {
            for conn in l.incoming().flatten() {
                let counter = counter.clone();
                std::thread::spawn(move || serve_ingest(conn, &counter));
            }
        });
        Ingest { port, bytes }
    }
}

fn serve_ingest(mut s: TcpStream, counter: &AtomicUsize) {
    let mut buf = [0u8; 64 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    loop {
        // Request head.
        let head_end = loop {
            if let Some(p) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => pending.extend_from_slice(&buf[..n]),
            }
        };
        let head = String::from_utf8_lossy(&pending[..head_end]).to_ascii_lowercase();
        pending.drain(..head_end);
        if head.contains("transfer-encoding: chunked") {
            // Chunks until the terminating `0\r\n\r\n`.
            loop {
                let line_end = loop {
                    if let Some(p) = pending.windows(2).position(|w| w == b"\r\n") {
                        break p;
                    }
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => pending.extend_from_slice(&buf[..n]),
                    }
                };
                let size_text = String::from_utf8_lossy(&pending[..line_end]).to_string();
                let Ok(size) =
                    usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                else {
                    return;
                };
                pending.drain(..line_end + 2);
                while pending.len() < size + 2 {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => pending.extend_from_slice(&buf[..n]),
                    }
                }
                counter.fetch_add(size, Ordering::Relaxed);
                pending.drain(..size + 2);
                if size == 0 {
                    break;
                }
            }
        }
        if s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            .is_err()
        {
            return;
        }
    }
}

/// A port nothing listens on.
fn dead_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    l.local_addr().map(|a| a.port()).unwrap_or(9)
}

fn profile(name: &str, primary: &str, backup: &str) -> String {
    format!(
        r#"
[channel]
name = "{name}"
rate = "25"
fragment_duration = "1"

[video]
input = "synthetic"
width = 320
height = 180

[audio]
input = "synthetic"
bitrate = 64

[[rung]]
name = "180p"
width = 320
height = 180
bitrate = 300
preset = "ultrafast"
bframes = 0
threads = 1

[[rung]]
name = "90p"
width = 160
height = 90
bitrate = 100
preset = "ultrafast"
bframes = 0
threads = 1

[push]
max_backoff = 0.5
connect_timeout = 1

[[destination]]
role = "primary"
url = "{primary}"

[[destination]]
role = "backup"
url = "{backup}"
"#
    )
}

/// `smoothcast run` in the background; killed on drop.
struct Channel {
    child: Child,
    url: String,
}

impl Channel {
    /// Starts the channel with its control API on a free loopback port and finds the API
    /// through the runtime directory, the way a console does.
    fn start(dir: &Path, profile_text: &str) -> Channel {
        let profile = dir.join("channel.toml");
        std::fs::write(&profile, profile_text).unwrap_or_else(|e| panic!("write: {e}"));
        let runtime = dir.join("run");
        let child = Command::new(bin())
            .args(["run"])
            .arg(&profile)
            .args(["--control", "127.0.0.1:0"])
            .env("SMOOTHCAST_RUNTIME_DIR", &runtime)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("run.log")).map_or(Stdio::null(), Stdio::from))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn smoothcast run: {e}"));
        let mut ch = Channel {
            child,
            url: String::new(),
        };
        let t0 = Instant::now();
        loop {
            let found = client::discover(std::slice::from_ref(&runtime), None);
            if let Some(t) = found.first() {
                assert_eq!(t.name.as_deref(), Some("e2e"));
                ch.url = t.url.clone();
                return ch;
            }
            if let Ok(Some(status)) = ch.child.try_wait() {
                panic!(
                    "smoothcast run exited ({status}): {}",
                    std::fs::read_to_string(dir.join("run.log")).unwrap_or_default()
                );
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "the channel never announced its control API"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn status(&self) -> serde_json::Value {
        let r = smoothcast::console::http::request(
            "GET",
            &self.url,
            "/status",
            None,
            Duration::from_secs(5),
        )
        .unwrap_or_else(|e| panic!("GET /status: {e}"));
        serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("/status JSON: {e}"))
    }

    fn wait_status(&self, what: &str, cond: impl Fn(&serde_json::Value) -> bool) {
        let t0 = Instant::now();
        loop {
            let s = self.status();
            if cond(&s) {
                return;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "timed out waiting for {what}; status: {s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn line_with<'a>(screen: &'a str, needle: &str) -> &'a str {
    screen.lines().find(|l| l.contains(needle)).unwrap_or("")
}

#[test]
fn operator_watches_disables_backup_and_stops_channel_with_confirmation() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let ingest = Ingest::start();
    let channel = Channel::start(
        dir.path(),
        &profile(
            "e2e",
            &format!("http://127.0.0.1:{}/live/e2e.isml", ingest.port),
            &format!("http://127.0.0.1:{}/live/e2e.isml", dead_port()),
        ),
    );
    let dead = format!("http://127.0.0.1:{}", dead_port());
    let tmux = Tmux::start(&format!(
        "{} console --connect {} --connect {dead} --poll-ms 200; echo console exited $?; sleep 60",
        bin(),
        channel.url
    ));

    // Overview: the channel is on air at the primary only (backup down → degraded); the
    // channel that does not answer is shown as such without holding up the other.
    let s = tmux.wait_screen("the overview with both channels", |s| {
        line_with(s, "e2e").contains("DEGRADED")
            && s.contains("Destinations primary live 3/3")
            && s.contains("UNREACHABLE")
    });
    assert!(line_with(&s, "e2e").contains("live"), "{s}");
    assert!(
        line_with(&s, "UNREACHABLE").contains("127.0.0.1:"),
        "the dead channel is named by its address:\n{s}"
    );
    assert!(s.contains("backup backoff 0/3"), "{s}");
    assert!(ingest.bytes.load(Ordering::Relaxed) > 0);

    // The timecode runs: two screens a second apart differ.
    let tc = |s: &str| {
        line_with(s, "e2e")
            .split_whitespace()
            .find(|w| w.len() == 11 && w.matches(':').count() == 3)
            .map(str::to_string)
    };
    let before = tc(&s);
    assert!(before.is_some(), "no timecode on the e2e line:\n{s}");
    let s = tmux.wait_screen("the timecode to advance", |s| tc(s) != before);
    assert!(tc(&s).is_some(), "{s}");

    // Detail view of the channel.
    tmux.keys(&["Enter"]);
    let s = tmux.wait_screen("the detail view", |s| {
        s.contains("Ladder") && s.contains("Destinations") && s.contains("Audio dBFS")
    });
    assert!(line_with(&s, "▶ primary").contains("live"), "{s}");
    assert!(line_with(&s, "backup").contains("backoff"), "{s}");
    assert!(line_with(&s, "180p").contains("320x180"), "{s}");

    // Disable the backup: the primary is live, so no confirmation is needed.
    tmux.keys(&["Down", "d"]);
    let s = tmux.wait_screen("the backup disabled", |s| {
        line_with(s, "▶ backup").contains("disabled")
    });
    assert!(!s.contains("Confirm"), "{s}");
    channel.wait_status("backup disabled in the channel", |st| {
        st["destinations"][1]["enabled"] == serde_json::Value::Bool(false)
    });
    tmux.wait_screen("the channel fully on air", |s| s.contains("e2e  ON AIR"));

    // Stop asks first, and nothing happens before the answer.
    tmux.keys(&["s"]);
    let s = tmux.wait_screen("the confirmation", |s| s.contains("Confirm"));
    assert!(
        s.contains("Stop channel e2e? This takes it OFF AIR."),
        "{s}"
    );
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(channel.status()["state"], "running");

    tmux.keys(&["y"]);
    tmux.wait_screen("the channel off air", |s| {
        s.contains("e2e  OFF AIR") && !s.contains("Confirm")
    });
    channel.wait_status("the channel stopped", |st| st["state"] == "stopped");
    let s = tmux.wait_screen("the stop in the log tail", |s| {
        s.contains("stop e2e: ok") && s.contains("state stopping → stopped")
    });
    assert!(line_with(&s, "primary").contains("stopped"), "{s}");

    // Start needs no confirmation.
    tmux.keys(&["g"]);
    channel.wait_status("the channel running again", |st| st["state"] == "running");
    tmux.wait_screen("the channel on air again", |s| s.contains("e2e  ON AIR"));

    // Back to the overview, then quit: the console exits and leaves the main screen.
    tmux.keys(&["Escape"]);
    tmux.wait_screen("the overview again", |s| s.contains("CHANNEL"));
    tmux.keys(&["q"]);
    let s = tmux.wait_screen("the console to quit", |s| s.contains("console exited"));
    assert!(s.contains("console exited 0"), "{s}");
    assert!(!s.contains("CHANNEL"), "the console's screen is gone:\n{s}");
    assert_eq!(tmux.pane("#{alternate_on}"), "0", "alternate screen left");
}

/// The child half of [`panic_in_the_console_restores_the_terminal`]: runs only when that test
/// starts this binary inside tmux.
#[test]
#[ignore = "helper process of panic_in_the_console_restores_the_terminal"]
fn panic_child() {
    if std::env::var_os("SMOOTHCAST_PANIC_CHILD").is_none() {
        return;
    }
    let mut guard = match smoothcast::console::term::TerminalGuard::enter() {
        Ok(g) => g,
        Err(e) => panic!("terminal: {e}"),
    };
    let _ = guard.terminal.draw(|f| {
        f.render_widget(ratatui::widgets::Paragraph::new("console up"), f.area());
    });
    std::thread::sleep(Duration::from_millis(500));
    // Leak the guard: only the panic hook may restore the terminal here.
    std::mem::forget(guard);
    panic!("deliberate console panic");
}

#[test]
fn panic_in_the_console_restores_the_terminal() {
    let exe: PathBuf = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
    let tmux = Tmux::start(&format!(
            "SMOOTHCAST_PANIC_CHILD=1 RUST_BACKTRACE=0 {} panic_child --exact --ignored --nocapture --test-threads 1; stty -a; sleep 60",
            exe.display()
        ),
    );
    tmux.wait_screen("the child's screen", |s| s.contains("console up"));
    let s = tmux.wait_screen("the panic message and stty", |s| {
        s.contains("deliberate console panic") && s.contains("icanon")
    });
    // Raw mode is off (canonical input and echo back on), the cursor is back, and the panic
    // message is on the main screen, not lost in the alternate one.
    assert!(s.contains(" icanon") && !s.contains("-icanon"), "{s}");
    assert!(s.contains(" echo ") && !s.contains("-echo "), "{s}");
    assert!(!s.contains("console up"), "{s}");
    assert_eq!(tmux.pane("#{alternate_on}"), "0");
    assert_eq!(tmux.pane("#{cursor_flag}"), "1");
}
