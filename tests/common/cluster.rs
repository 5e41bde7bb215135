//! Redundancy test rig: a real etcd on 127.0.0.1 (ephemeral ports, temp data dir), encoder
//! processes that are killed for real, a TCP proxy that can cut one box off from etcd, and
//! readers of the sink's arrival log.

use smoothcast::sink::{Arrival, Report};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A free TCP port on 127.0.0.1 (bound then released: good enough for a test).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A single-member etcd with fast elections (so a 1 s lease TTL is allowed), stopped on drop.
pub struct Etcd {
    child: Child,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Etcd {
    pub fn start() -> Etcd {
        let dir = tempfile::tempdir().expect("etcd dir");
        let (client, peer) = (free_port(), free_port());
        let url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let child = Command::new("etcd")
            .args([
                "--name",
                "t",
                "--data-dir",
                &dir.path().join("data").display().to_string(),
                "--listen-client-urls",
                &url,
                "--advertise-client-urls",
                &url,
                "--listen-peer-urls",
                &peer_url,
                "--initial-advertise-peer-urls",
                &peer_url,
                "--initial-cluster",
                &format!("t={peer_url}"),
                "--heartbeat-interval",
                "50",
                "--election-timeout",
                "500",
                "--log-level",
                "error",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start etcd (Debian package etcd-server)");
        let etcd = Etcd {
            child,
            url,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if http_get(client, "/health").is_some_and(|b| b.contains("\"health\":\"true\"")) {
                break;
            }
            assert!(Instant::now() < deadline, "etcd did not become healthy");
            std::thread::sleep(Duration::from_millis(100));
        }
        etcd
    }

    pub fn port(&self) -> u16 {
        self.url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET path` on 127.0.0.1:port, the body if the answer is 200.
pub fn http_get(port: u16, path: &str) -> Option<String> {
    let (code, body) = request(port, "GET", path, Duration::from_secs(5))?;
    if code != 200 {
        return None;
    }
    // Chunked answers (hyper): good enough to take the JSON object between the braces.
    match (body.find('{'), body.rfind('}')) {
        (Some(a), Some(b)) if b >= a => Some(body[a..=b].to_string()),
        _ => Some(body),
    }
}

/// `POST path` (empty body) on 127.0.0.1:port: (status, body).
pub fn http_post(port: u16, path: &str) -> Option<(u16, String)> {
    request(port, "POST", path, Duration::from_secs(10))
}

/// One request with an empty body on a fresh connection: (status, raw body).
fn request(port: u16, method: &str, path: &str, timeout: Duration) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let code = out.split(' ').nth(1)?.parse().ok()?;
    Some((code, out.split("\r\n\r\n").nth(1).unwrap_or("").to_string()))
}

/// An encoder process (`run` or `standby`), killed on drop.
pub struct Proc {
    pub name: String,
    pub child: Child,
}

impl Proc {
    pub fn spawn(name: &str, args: &[&str], log: &Path) -> Proc {
        let out = std::fs::File::create(log.join(format!("{name}.log"))).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = Command::new(super::bin())
            .args(args)
            .current_dir(super::repo())
            .env("RUST_LOG", "info")
            .env("SMOOTHCAST_RUNTIME_DIR", log.join(format!("{name}.run")))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn smoothcast");
        Proc {
            name: name.to_string(),
            child,
        }
    }

    /// SIGKILL (no chance to finish anything), returning the wall-clock time of the kill.
    pub fn kill(&mut self) -> u64 {
        let t = unix_ms();
        let _ = self.child.kill();
        let _ = self.child.wait();
        t
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP proxy on 127.0.0.1 that can cut every connection and refuse new ones.
pub struct Proxy {
    pub port: u16,
    cut: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    pub fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy bind");
        let port = listener.local_addr().expect("proxy addr").port();
        let cut = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (c2, k2) = (cut.clone(), conns.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if c2.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let mut list = k2.lock().unwrap();
                list.push(client.try_clone().unwrap());
                list.push(server.try_clone().unwrap());
                drop(list);
                pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
                pipe(server, client);
            }
        });
        Proxy { port, cut, conns }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Cuts every connection and refuses new ones until [`restore`](Self::restore).
    pub fn cut(&self) -> u64 {
        self.cut.store(true, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
        unix_ms()
    }

    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
    });
}

/// Which box delivered an arrival (`smoothcast/<v> (box <id>)` → `<id>`).
pub fn box_of(a: &Arrival) -> String {
    a.user_agent
        .as_deref()
        .and_then(|ua| ua.split("(box ").nth(1))
        .map(|s| s.trim_end_matches(')').to_string())
        .unwrap_or_default()
}

/// Accepted (non-duplicate) arrivals of a publishing point's track.
pub fn accepted<'a>(r: &'a Report, pubpoint: &str, track: &str) -> Vec<&'a Arrival> {
    r.arrivals
        .iter()
        .filter(|a| a.pubpoint == pubpoint && a.track == track && !a.duplicate)
        .collect()
}

/// The owner record of a channel in etcd, read with etcd's JSON gateway (`/v3/kv/range`).
pub fn owner(etcd_port: u16, channel: &str) -> Option<String> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64.encode(format!("/smoothcast/channels/{channel}/owner"));
    let mut s = TcpStream::connect(("127.0.0.1", etcd_port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let body = format!("{{\"key\":\"{key}\"}}");
    write!(
        s,
        "POST /v3/kv/range HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let json = &out[out.find('{')?..=out.rfind('}')?];
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let value = v["kvs"][0]["value"].as_str()?;
    let rec: serde_json::Value = serde_json::from_slice(&b64.decode(value).ok()?).ok()?;
    rec["box_id"].as_str().map(str::to_string)
}

/// Polls `f` every 50 ms until it returns `Some`, or panics after `limit` with `what`.
pub fn wait_for<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
