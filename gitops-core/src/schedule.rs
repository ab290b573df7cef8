//! When a unit runs next: the interval with jitter after success, exponential backoff capped by
//! the retry interval after failure (Flux's rate limiter starts at 750 ms).

use std::time::Duration;

use rand::Rng;

/// Timing of one unit, as Flux's `interval`, `retryInterval` and `timeout`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timing {
    /// Period between successful reconciles (drift correction).
    pub interval: Duration,
    /// Cap of the backoff after failures; defaults to `interval`.
    pub retry_interval: Option<Duration>,
    /// Budget of each stage; defaults to `interval` (Flux: interval − 30 s, at least 30 s).
    pub timeout: Option<Duration>,
}

impl Timing {
    /// A timing with only an interval.
    pub fn every(interval: Duration) -> Self {
        Timing {
            interval,
            retry_interval: None,
            timeout: None,
        }
    }

    /// The effective retry interval.
    pub fn retry_interval(&self) -> Duration {
        self.retry_interval.unwrap_or(self.interval)
    }

    /// The effective timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout.unwrap_or_else(|| {
            self.interval
                .saturating_sub(Duration::from_secs(30))
                .max(Duration::from_secs(30))
        })
    }
}

/// Backoff and jitter settings of an engine.
#[derive(Clone, Debug, PartialEq)]
pub struct Backoff {
    /// Delay after the first failure (default 750 ms, Flux's rate limiter minimum).
    pub base: Duration,
    /// Jitter applied to intervals, as a fraction (default 0.05, Flux's 5 %).
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(750),
            jitter: 0.05,
        }
    }
}

impl Backoff {
    /// Delay before retry number `failures` (1 = first failure): `base * 2^(failures-1)`, capped
    /// by `cap`.
    pub fn retry_after(&self, failures: u32, cap: Duration) -> Duration {
        let exp = failures.saturating_sub(1).min(30);
        self.base.saturating_mul(1u32 << exp).min(cap)
    }

    /// `interval` ± `jitter` (uniformly random).
    pub fn jittered(&self, interval: Duration) -> Duration {
        if self.jitter <= 0.0 || interval.is_zero() {
            return interval;
        }
        let f = rand::rng().random_range(-self.jitter..=self.jitter);
        // Checked: a huge interval times 1.05 must not overflow (`mul_f64` would panic).
        Duration::try_from_secs_f64(interval.as_secs_f64() * (1.0 + f).max(0.0)).unwrap_or(interval)
    }
}

/// A duration string that is not in Go's `time.ParseDuration` format.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid duration {0:?}: expected Go duration syntax such as 30s, 5m, 1h30m, 1.5h")]
pub struct DurationError(pub String);

/// Parses a duration as Kubernetes and Flux write them (Go's `time.ParseDuration`): a sequence of
/// decimal numbers with units `ns`, `us`/`µs`, `ms`, `s`, `m`, `h`, e.g. `1m30s`, `1.5h`, `0s`.
/// Negative durations are refused.
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    let err = || DurationError(s.to_string());
    let mut rest = s.trim();
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(err());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(err)?;
        if num_len == 0 {
            return Err(err());
        }
        let value: f64 = rest[..num_len].parse().map_err(|_| err())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let secs = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(err()),
        };
        total += value * secs;
        rest = &rest[unit_len..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| err())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let b = Backoff::default();
        let cap = Duration::from_secs(5);
        assert_eq!(b.retry_after(1, cap), Duration::from_millis(750));
        assert_eq!(b.retry_after(2, cap), Duration::from_millis(1500));
        assert_eq!(b.retry_after(3, cap), Duration::from_millis(3000));
        assert_eq!(b.retry_after(4, cap), cap);
        assert_eq!(b.retry_after(1000, cap), cap);
    }

    #[test]
    fn extreme_intervals_do_not_overflow() {
        let b = Backoff::default();
        assert!(b.jittered(Duration::MAX) >= Duration::from_secs(1));
        assert_eq!(b.retry_after(u32::MAX, Duration::MAX), b.base * (1 << 30));
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let b = Backoff::default();
        for _ in 0..100 {
            let d = b.jittered(Duration::from_secs(100));
            assert!(
                d >= Duration::from_secs(95) && d <= Duration::from_secs(105),
                "{d:?}"
            );
        }
    }

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        for bad in ["", "10", "5x", "-1s", "m"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn timeout_defaults_like_flux() {
        assert_eq!(
            Timing::every(Duration::from_secs(600)).timeout(),
            Duration::from_secs(570)
        );
        assert_eq!(
            Timing::every(Duration::from_secs(40)).timeout(),
            Duration::from_secs(30)
        );
    }
}
