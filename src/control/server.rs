//! The HTTP/1.1 server of the control API (hyper 1), on its own single-threaded tokio runtime.
//! Handlers only read snapshots; actions that block (start opens encoders and may wait for a
//! fragment boundary) run on the runtime's blocking pool.

use super::api::Endpoint;
use super::api::{ActionResult, ErrorBody};
use super::discovery::{self, Published};
use super::supervisor::Supervisor;
use super::{metrics, snapshot, ControlError};
use crate::profile::{ControlPlan, ControlToken};
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Connections served at once; more are refused (closed) until one ends.
const MAX_CONNECTIONS: usize = 64;
/// A client must send its request head within this time.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest accepted token file.
const MAX_TOKEN_FILE: u64 = 4096;

type Body = Full<Bytes>;

struct Ctx {
    sup: Arc<Supervisor>,
    token: Option<String>,
}

/// A running control API; stops (and removes its runtime file) when dropped.
#[derive(Debug)]
pub struct ControlServer {
    addr: SocketAddr,
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    published: Option<Published>,
}

impl ControlServer {
    /// The address the API listens on (the real port when the plan said 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base URL a local client uses (`http://127.0.0.1:8701`; loopback for wildcard binds).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The runtime file announcing this endpoint, if one was written.
    pub fn runtime_file(&self) -> Option<&std::path::Path> {
        self.published.as_ref().map(Published::path)
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads the token a plan names (a file's first line, checked like an inline token).
pub fn load_token(channel: &str, token: &ControlToken) -> Result<String, ControlError> {
    let bad = |path: &std::path::Path, reason: String| ControlError::TokenFile {
        channel: channel.to_owned(),
        path: path.to_path_buf(),
        reason,
    };
    match token {
        ControlToken::Inline(t) => Ok(t.clone()),
        ControlToken::File(path) => {
            let meta = std::fs::metadata(path).map_err(|e| bad(path, e.to_string()))?;
            if meta.len() > MAX_TOKEN_FILE {
                return Err(bad(path, format!("{} bytes is too large", meta.len())));
            }
            let text = std::fs::read_to_string(path).map_err(|e| bad(path, e.to_string()))?;
            let t = text.lines().next().unwrap_or("").trim().to_owned();
            crate::profile::check_control_token(&t).map_err(|m| bad(path, m))?;
            Ok(t)
        }
    }
}

/// Binds `plan.listen`, publishes the endpoint in the runtime directory and serves the API for
/// `sup` on a thread of its own. A non-loopback address without a token is refused.
pub fn serve(sup: Arc<Supervisor>, plan: &ControlPlan) -> Result<ControlServer, ControlError> {
    let channel = sup.plan().channel.clone();
    let token = match &plan.token {
        Some(t) => Some(load_token(&channel, t)?),
        None => None,
    };
    if !plan.listen.ip().is_loopback() && token.is_none() {
        return Err(ControlError::Config {
            channel,
            reason: format!(
                "{} is reachable from other machines; a token is required \
                 (control.token or control.token_file)",
                plan.listen
            ),
        });
    }
    let std_listener =
        std::net::TcpListener::bind(plan.listen).map_err(|source| ControlError::Bind {
            channel: channel.clone(),
            addr: plan.listen,
            source,
        })?;
    let addr = std_listener
        .local_addr()
        .map_err(|source| ControlError::Bind {
            channel: channel.clone(),
            addr: plan.listen,
            source,
        })?;
    std_listener
        .set_nonblocking(true)
        .map_err(|source| ControlError::Bind {
            channel: channel.clone(),
            addr,
            source,
        })?;
    let local_ip = match addr.ip() {
        IpAddr::V4(a) if a.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(a) if a.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let url = format!("http://{}", SocketAddr::new(local_ip, addr.port()));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name(format!("control-{channel}"))
        .build()
        .map_err(|e| ControlError::Runtime {
            channel: channel.clone(),
            source: e,
        })?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    let token_required = token.is_some();
    let ctx = Arc::new(Ctx { sup, token });
    let thread = std::thread::Builder::new()
        .name("control-http".into())
        .spawn(move || {
            runtime.block_on(accept_loop(std_listener, ctx, stop_rx));
            // Blocking handlers (a start in progress) are not waited for.
            runtime.shutdown_timeout(Duration::from_millis(100));
        })
        .map_err(|e| ControlError::Thread(e.to_string()))?;
    tracing::info!(channel = %channel, url = %url, listen = %addr, token_required, "control API listening");
    let published = match discovery::runtime_dir() {
        Some(dir) => {
            let entry = Endpoint {
                channel: channel.clone(),
                url: url.clone(),
                pid: std::process::id(),
                token_required,
                version: env!("CARGO_PKG_VERSION").into(),
            };
            match discovery::publish(&dir, &entry) {
                Ok(p) => {
                    tracing::info!(file = %p.path().display(), "control endpoint published");
                    Some(p)
                }
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot publish the control endpoint");
                    None
                }
            }
        }
        None => {
            tracing::debug!("no runtime directory: control endpoint not published");
            None
        }
    };
    Ok(ControlServer {
        addr,
        url,
        stop: Some(stop_tx),
        thread: Some(thread),
        published,
    })
}

async fn accept_loop(
    listener: std::net::TcpListener,
    ctx: Arc<Ctx>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "control API cannot use its socket");
            return;
        }
    };
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            _ = &mut stop => return,
            a = listener.accept() => a,
        };
        let (stream, _) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of descriptors and the like: don't spin.
                tracing::warn!(error = %e, "control API accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue;
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let service = service_fn(move |req| {
                let ctx = ctx.clone();
                async move { Ok::<_, Infallible>(handle(req, ctx).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn respond(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    let h = r.headers_mut();
    if let Ok(v) = header::HeaderValue::from_str(content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    r
}

fn json<T: serde::Serialize>(status: StatusCode, v: &T) -> Response<Body> {
    match serde_json::to_vec_pretty(v) {
        Ok(mut b) => {
            b.push(b'\n');
            respond(status, "application/json", b)
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

fn error(status: StatusCode, msg: &str) -> Response<Body> {
    let body = ErrorBody {
        error: msg.to_owned(),
    };
    let mut b = serde_json::to_vec(&body).unwrap_or_default();
    b.push(b'\n');
    respond(status, "application/json", b)
}

/// Constant-time comparison (the length is not secret).
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn authorized(req: &Request<Incoming>, token: &str) -> bool {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .is_some_and(|t| same_secret(t.as_bytes(), token.as_bytes()))
}

/// The routes: path → allowed method.
enum Route {
    Index,
    Status,
    Profile,
    Health,
    Metrics,
    Start,
    Stop,
    Restart,
    Failback,
    Destination(String, bool),
}

fn route(path: &str) -> Option<(Route, Method)> {
    Some(match path {
        "/" => (Route::Index, Method::GET),
        "/status" => (Route::Status, Method::GET),
        "/profile" => (Route::Profile, Method::GET),
        "/health" => (Route::Health, Method::GET),
        "/metrics" => (Route::Metrics, Method::GET),
        "/start" => (Route::Start, Method::POST),
        "/stop" => (Route::Stop, Method::POST),
        "/restart" => (Route::Restart, Method::POST),
        "/failback" => (Route::Failback, Method::POST),
        _ => {
            let rest = path.strip_prefix("/destinations/")?;
            let (name, action) = rest.split_once('/')?;
            let enable = match action {
                "enable" => true,
                "disable" => false,
                _ => return None,
            };
            if name.is_empty() || name.contains('/') {
                return None;
            }
            (Route::Destination(name.to_owned(), enable), Method::POST)
        }
    })
}

async fn handle(req: Request<Incoming>, ctx: Arc<Ctx>) -> Response<Body> {
    let Some((route, allowed)) = route(req.uri().path()) else {
        return error(StatusCode::NOT_FOUND, "no such endpoint");
    };
    // Health stays open for load balancers and the standby agent: it tells nothing secret.
    if let Some(token) = &ctx.token {
        if !matches!(route, Route::Health) && !authorized(&req, token) {
            let mut r = error(
                StatusCode::UNAUTHORIZED,
                "missing or wrong bearer token (Authorization: Bearer <token>)",
            );
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"smoothcast\""),
            );
            return r;
        }
    }
    let head_ok = allowed == Method::GET && req.method() == Method::HEAD;
    if req.method() != allowed && !head_ok {
        let mut r = error(
            StatusCode::METHOD_NOT_ALLOWED,
            &format!("use {allowed} for {}", req.uri().path()),
        );
        if let Ok(v) = header::HeaderValue::from_str(allowed.as_str()) {
            r.headers_mut().insert(header::ALLOW, v);
        }
        return r;
    }
    let sup = ctx.sup.clone();
    match route {
        Route::Index => json(
            StatusCode::OK,
            &serde_json::json!({
                "channel": sup.plan().channel,
                "endpoints": [
                    "GET /status", "GET /profile", "GET /health", "GET /metrics",
                    "POST /start", "POST /stop", "POST /restart", "POST /failback",
                    "POST /destinations/<name>/enable", "POST /destinations/<name>/disable",
                ],
            }),
        ),
        Route::Status => json(StatusCode::OK, &snapshot::status(&sup)),
        Route::Profile => json(StatusCode::OK, &snapshot::profile_doc(&sup)),
        Route::Health => {
            let (doc, ok) = snapshot::health(&sup);
            let code = if ok {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            json(code, &doc)
        }
        Route::Metrics => respond(
            StatusCode::OK,
            metrics::CONTENT_TYPE,
            metrics::render(&snapshot::status(&sup)).into_bytes(),
        ),
        Route::Start => action(sup, |s| s.start()).await,
        Route::Stop => action(sup, |s| s.stop()).await,
        Route::Restart => action(sup, |s| s.restart()).await,
        Route::Failback => {
            action(sup, |s| match s.redundancy() {
                Some(r) => r.failback(),
                None => Err(ControlError::Conflict(
                    "this channel is not an N+M member (run it with --etcd)".into(),
                )),
            })
            .await
        }
        Route::Destination(name, enable) => {
            action(sup, move |s| s.set_destination_enabled(&name, enable)).await
        }
    }
}

async fn action<F>(sup: Arc<Supervisor>, f: F) -> Response<Body>
where
    F: FnOnce(&Arc<Supervisor>) -> Result<String, ControlError> + Send + 'static,
{
    let joined = tokio::task::spawn_blocking(move || {
        let r = f(&sup);
        (r, sup.state())
    })
    .await;
    match joined {
        Ok((Ok(message), state)) => json(StatusCode::OK, &ActionResult { message, state }),
        Ok((Err(e), _)) => {
            let code = match &e {
                ControlError::NotFound(_) => StatusCode::NOT_FOUND,
                ControlError::Conflict(_) => StatusCode::CONFLICT,
                ControlError::Channel(c) if c.is_bad_input() => StatusCode::UNPROCESSABLE_ENTITY,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            error(code, &e.to_string())
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_name_their_method_and_destination_actions() {
        assert!(matches!(
            route("/status"),
            Some((Route::Status, Method::GET))
        ));
        assert!(matches!(route("/stop"), Some((Route::Stop, Method::POST))));
        assert!(matches!(
            route("/destinations/backup/disable"),
            Some((Route::Destination(n, false), Method::POST)) if n == "backup"
        ));
        assert!(route("/destinations/backup/explode").is_none());
        assert!(route("/destinations//enable").is_none());
        assert!(route("/destinations/a/b/enable").is_none());
        assert!(route("/nope").is_none());
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"0123456789abcdef", b"0123456789abcdef"));
        assert!(!same_secret(b"0123456789abcdef", b"0123456789abcdeF"));
        assert!(!same_secret(b"0123456789abcdef", b"0123456789abcde"));
    }
}
