//! Logging for the binary: `tracing` to stderr. Under systemd (`$JOURNAL_STREAM` names the
//! stderr stream) every line starts with its syslog priority (`<3>` error, `<4>` warning, `<6>`
//! info, `<7>` debug/trace, as `sd-daemon(3)` defines) and carries no timestamp or colour:
//! journald adds the time and files the line at that priority, so `journalctl -p warning -u
//! smoothcast@ch1` shows the warnings of one channel.

use std::fmt;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber (level from `$RUST_LOG`, default `info`). Does nothing if
/// one is already installed.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if journal_stream_is_stderr() {
        builder
            .with_ansi(false)
            .event_format(JournalFormat::default())
            .try_init()
    } else {
        use std::io::IsTerminal;
        builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init()
    };
}

/// True when `$JOURNAL_STREAM` (`<device>:<inode>`) is this process's stderr, i.e. stderr is
/// connected to journald (systemd.exec(5)); a variable inherited by a child whose stderr was
/// redirected elsewhere does not count.
pub fn journal_stream_is_stderr() -> bool {
    let Ok(v) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = parse_journal_stream(&v) else {
        return false;
    };
    stderr_identity().is_some_and(|(d, i)| d == dev && i == ino)
}

fn parse_journal_stream(v: &str) -> Option<(u64, u64)> {
    let (d, i) = v.trim().split_once(':')?;
    Some((d.parse().ok()?, i.parse().ok()?))
}

fn stderr_identity() -> Option<(u64, u64)> {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let fd = std::io::stderr().as_fd().try_clone_to_owned().ok()?;
    let meta = std::fs::File::from(fd).metadata().ok()?;
    Some((meta.dev(), meta.ino()))
}

/// The syslog priority of a level (`sd-daemon(3)` prefixes).
pub fn priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

/// `<priority>` then tracing's full format without time, level word or colour (journald
/// shows the priority itself).
#[derive(Debug)]
pub struct JournalFormat {
    inner: format::Format<format::Full, ()>,
}

impl Default for JournalFormat {
    fn default() -> JournalFormat {
        JournalFormat {
            inner: format::format()
                .without_time()
                .with_level(false)
                .with_ansi(false),
        }
    }
}

impl<S, N> FormatEvent<S, N> for JournalFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: format::Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write!(writer, "<{}>", priority(event.metadata().level()))?;
        self.inner.format_event(ctx, writer, event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_starts_with_its_syslog_priority() {
        let buf = Buf::default();
        let out = buf.clone();
        let sub = tracing_subscriber::fmt()
            .with_max_level(Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || out.clone())
            .event_format(JournalFormat::default())
            .finish();
        tracing::subscriber::with_default(sub, || {
            tracing::error!(channel = "ch1", "boom");
            tracing::warn!("careful");
            tracing::info!("hello");
            tracing::debug!("detail");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(
            lines[0].starts_with("<3>")
                && lines[0].contains("boom")
                && lines[0].contains("channel=\"ch1\""),
            "{text}"
        );
        assert!(
            lines[1].starts_with("<4>") && lines[1].contains("careful"),
            "{text}"
        );
        assert!(
            lines[2].starts_with("<6>") && lines[2].contains("hello"),
            "{text}"
        );
        assert!(lines[3].starts_with("<7>"), "{text}");
        assert!(!text.contains('\u{1b}'), "no colour codes: {text}");
    }

    #[test]
    fn journal_stream_is_device_colon_inode() {
        assert_eq!(parse_journal_stream("8:12345"), Some((8, 12345)));
        assert_eq!(parse_journal_stream("8:x"), None);
        assert_eq!(parse_journal_stream(""), None);
    }
}
