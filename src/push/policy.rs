//! What to do after each HTTP status (protocol.md §1.4) and how long to wait before retrying.
//! Pure functions: the session supplies the jitter draw, tests supply fixed ones.

use std::time::Duration;

/// First reconnect delay before jitter.
pub(crate) const BASE_BACKOFF: Duration = Duration::from_millis(250);

/// The encoder's reaction to a status code on the probe or the long POST.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reaction {
    /// 2xx on the probe: start the long POST.
    Proceed,
    /// 401: answer the challenge and retry.
    Authenticate,
    /// 30x with a Location: follow it with the same method.
    Redirect,
    /// 412: the server lacks our header boxes — reconnect at once and send them again.
    ResendHeaders,
    /// 415: configuration error — stop this session and alert.
    Fatal,
    /// Anything else (400, 403, 404, 409, 5xx, unknown): reconnect after a backoff.
    Retry(RetryKind),
}

/// Why a retry happens, for counters and log wording.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RetryKind {
    Forbidden,
    NotFound,
    /// 409: Unified Origin's "Stream is closed, cannot restart" (timestamps not later than
    /// what was ingested).
    TimelineRejected,
    BadRequest,
    ServerError,
    Other,
}

/// protocol.md §1.4 as a table.
pub(crate) fn reaction(status: u16) -> Reaction {
    match status {
        200..=299 => Reaction::Proceed,
        301 | 302 | 303 | 307 | 308 => Reaction::Redirect,
        401 => Reaction::Authenticate,
        412 => Reaction::ResendHeaders,
        415 => Reaction::Fatal,
        403 => Reaction::Retry(RetryKind::Forbidden),
        404 => Reaction::Retry(RetryKind::NotFound),
        409 => Reaction::Retry(RetryKind::TimelineRejected),
        400 => Reaction::Retry(RetryKind::BadRequest),
        500..=599 => Reaction::Retry(RetryKind::ServerError),
        _ => Reaction::Retry(RetryKind::Other),
    }
}

/// Capped exponential backoff with "equal jitter": attempt n waits
/// `d/2 + jitter × d/2` where `d = min(max, BASE × 2^n)`, so a fleet of encoders that lost the
/// same server does not reconnect in lock-step, yet the wait never collapses to zero.
#[derive(Clone, Debug)]
pub(crate) struct Backoff {
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub(crate) fn new(max: Duration) -> Backoff {
        Backoff { max, attempt: 0 }
    }

    /// The next delay; `jitter` is a uniform draw from `[0, 1)`.
    pub(crate) fn next_delay(&mut self, jitter: f64) -> Duration {
        let exp = BASE_BACKOFF.saturating_mul(1u32 << self.attempt.min(20));
        let d = exp.min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.5
        };
        d / 2 + d.mul_f64(jitter / 2.0)
    }

    /// Back to the first delay (after a long POST has carried a fragment).
    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }

    pub(crate) fn attempts(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_table_follows_protocol_1_4() {
        assert_eq!(reaction(200), Reaction::Proceed);
        assert_eq!(reaction(401), Reaction::Authenticate);
        assert_eq!(reaction(307), Reaction::Redirect);
        assert_eq!(reaction(301), Reaction::Redirect);
        assert_eq!(reaction(412), Reaction::ResendHeaders);
        assert_eq!(reaction(415), Reaction::Fatal);
        assert_eq!(reaction(403), Reaction::Retry(RetryKind::Forbidden));
        assert_eq!(reaction(404), Reaction::Retry(RetryKind::NotFound));
        assert_eq!(reaction(409), Reaction::Retry(RetryKind::TimelineRejected));
        assert_eq!(reaction(400), Reaction::Retry(RetryKind::BadRequest));
        assert_eq!(reaction(503), Reaction::Retry(RetryKind::ServerError));
        assert_eq!(reaction(418), Reaction::Retry(RetryKind::Other));
    }

    #[test]
    fn backoff_doubles_to_the_cap_with_bounded_jitter_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(2));
        let lows: Vec<Duration> = (0..6).map(|_| b.next_delay(0.0)).collect();
        assert_eq!(
            lows,
            [125, 250, 500, 1000, 1000, 1000].map(Duration::from_millis)
        );
        let mut b = Backoff::new(Duration::from_secs(2));
        let highs: Vec<Duration> = (0..6).map(|_| b.next_delay(1.0)).collect();
        assert_eq!(
            highs,
            [250, 500, 1000, 2000, 2000, 2000].map(Duration::from_millis)
        );
        assert_eq!(b.attempts(), 6);
        b.reset();
        assert_eq!(b.next_delay(0.5), Duration::from_micros(187_500));
        // Hours of failures never overflow.
        for _ in 0..10_000 {
            assert!(b.next_delay(f64::NAN) <= Duration::from_secs(2));
        }
    }
}
