//! Per-key rate limits: a token bucket per API key (`[api] rate_limit_per_sec`, refilled
//! continuously, holding at most `rate_limit_burst`). The API answers a request that finds its
//! key's bucket empty with 429 `rate_limited` and `Retry-After`, before anything else happens.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

/// Tokens are counted in thousandths, so a refill of a few per second is exact in integers.
const MILLI: u64 = 1000;

/// The buckets of every key that made a request.
#[derive(Debug)]
pub struct RateLimiter {
    per_sec: u64,
    burst: u64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    milli_tokens: u64,
    at: Instant,
}

impl RateLimiter {
    /// `per_sec` requests a second, bursts of `burst`; `per_sec` 0 turns the limit off.
    pub fn new(per_sec: u32, burst: u32) -> Self {
        RateLimiter { per_sec: u64::from(per_sec), burst: u64::from(burst.max(1)), buckets: Mutex::default() }
    }

    /// Takes a token from `key_id`'s bucket; when it is empty, the whole seconds until one is
    /// back (at least 1).
    pub fn take(&self, key_id: &str, now: Instant) -> Result<(), u64> {
        if self.per_sec == 0 {
            return Ok(());
        }
        let full = self.burst * MILLI;
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let bucket = buckets.entry(key_id.to_owned()).or_insert(Bucket { milli_tokens: full, at: now });
        let elapsed_ms = now.saturating_duration_since(bucket.at).as_millis() as u64;
        bucket.milli_tokens = (bucket.milli_tokens + elapsed_ms * self.per_sec).min(full);
        bucket.at = now;
        if bucket.milli_tokens >= MILLI {
            bucket.milli_tokens -= MILLI;
            return Ok(());
        }
        let missing = MILLI - bucket.milli_tokens;
        // `missing` thousandths at `per_sec` thousandths a millisecond, rounded up to seconds.
        let wait_ms = missing.div_ceil(self.per_sec);
        Err(wait_ms.div_ceil(1000).max(1))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_burst_is_served_then_refused_until_tokens_come_back() {
        let limiter = RateLimiter::new(2, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.take("k1", t0), Ok(()));
        }
        assert_eq!(limiter.take("k1", t0), Err(1));
        // Another key has its own bucket.
        assert_eq!(limiter.take("k2", t0), Ok(()));
        // Half a second at 2/s brings one token back, and only one.
        assert_eq!(limiter.take("k1", t0 + Duration::from_millis(500)), Ok(()));
        assert_eq!(limiter.take("k1", t0 + Duration::from_millis(500)), Err(1));
        // A long pause refills to the burst, not beyond.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(limiter.take("k1", later), Ok(()));
        }
        assert!(limiter.take("k1", later).is_err());
    }

    #[test]
    fn a_slow_refill_says_how_many_seconds_to_wait() {
        let limiter = RateLimiter::new(1, 1);
        let t0 = Instant::now();
        assert_eq!(limiter.take("k", t0), Ok(()));
        assert_eq!(limiter.take("k", t0 + Duration::from_millis(100)), Err(1));
        let off = RateLimiter::new(0, 1);
        for _ in 0..1000 {
            assert_eq!(off.take("k", t0), Ok(()));
        }
    }
}
