//! The systemd notification protocol (`sd_notify(3)`), spoken directly: newline-separated
//! `KEY=VALUE` assignments in one datagram to the Unix socket named by `$NOTIFY_SOCKET` (a path,
//! or `@name` in the abstract namespace).
//!
//! The supervisor sends `READY=1` once capture runs, a fragment was produced and (with
//! destinations) a probe POST succeeded; `WATCHDOG=1` every half `$WATCHDOG_USEC` while
//! fragments keep coming (or while idle because the operator stopped the channel); `STATUS=…`
//! when the state changes; `STOPPING=1` on SIGTERM.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// A connection to the service manager's notification socket.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// From `$NOTIFY_SOCKET` (and `$WATCHDOG_USEC` / `$WATCHDOG_PID`); `None` when the process
    /// does not run under a service manager that asked for notifications.
    pub fn from_env() -> Option<Notifier> {
        let path = std::env::var_os("NOTIFY_SOCKET")?;
        let watchdog = watchdog_from(
            std::env::var("WATCHDOG_USEC").ok().as_deref(),
            std::env::var("WATCHDOG_PID").ok().as_deref(),
            std::process::id(),
        );
        match Notifier::connect(&path.to_string_lossy(), watchdog) {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::warn!(error = %e, "NOTIFY_SOCKET is set but unusable; no systemd notifications");
                None
            }
        }
    }

    /// A notifier for `socket` (a path, or `@name` for the abstract namespace); `watchdog` is
    /// the service's watchdog timeout, if any.
    pub fn connect(socket: &str, watchdog: Option<Duration>) -> io::Result<Notifier> {
        let addr = match socket.strip_prefix('@') {
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                SocketAddr::from_abstract_name(name.as_bytes())?
            }
            None => SocketAddr::from_pathname(socket)?,
        };
        Ok(Notifier {
            socket: UnixDatagram::unbound()?,
            addr,
            watchdog,
        })
    }

    /// How often to send `WATCHDOG=1`: half the watchdog timeout, as `sd_watchdog_enabled(3)`
    /// recommends.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog.map(|w| w / 2)
    }

    /// Sends one notification; failures are logged, never fatal (the service manager may be
    /// gone while the encoder still has fragments to deliver).
    pub fn send(&self, message: &str) {
        if let Err(e) = self.socket.send_to_addr(message.as_bytes(), &self.addr) {
            tracing::debug!(error = %e, message, "sd_notify failed");
        }
    }
}

/// `$WATCHDOG_USEC` applies to this process unless `$WATCHDOG_PID` names another one.
fn watchdog_from(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    if let Some(p) = pid {
        if p.trim().parse::<u32>().ok() != Some(me) {
            return None;
        }
    }
    Some(Duration::from_micros(usec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_usec_applies_to_this_pid_only() {
        assert_eq!(
            watchdog_from(Some("20000000"), None, 7),
            Some(Duration::from_secs(20))
        );
        assert_eq!(
            watchdog_from(Some("20000000"), Some("7"), 7),
            Some(Duration::from_secs(20))
        );
        assert_eq!(watchdog_from(Some("20000000"), Some("8"), 7), None);
        assert_eq!(watchdog_from(Some("0"), None, 7), None);
        assert_eq!(watchdog_from(Some("x"), None, 7), None);
        assert_eq!(watchdog_from(None, None, 7), None);
    }

    #[test]
    fn notifications_arrive_as_one_datagram_on_a_path_and_an_abstract_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let rx = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::connect(path.to_str().unwrap(), Some(Duration::from_secs(4))).unwrap();
        assert_eq!(n.watchdog_interval(), Some(Duration::from_secs(2)));
        n.send("READY=1\nSTATUS=running");
        let mut buf = [0u8; 256];
        let len = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=running");

        use std::os::linux::net::SocketAddrExt;
        let name = format!("smoothcast-test-{}", std::process::id());
        let abs = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let rx = UnixDatagram::bind_addr(&abs).unwrap();
        let n = Notifier::connect(&format!("@{name}"), None).unwrap();
        n.send("WATCHDOG=1");
        let len = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"WATCHDOG=1");
    }
}
