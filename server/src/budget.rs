//! Token buckets: how much of something (messages, bytes, operations, CPU time) a client may
//! spend, refilled at a steady rate up to a burst. The time is passed in, so buckets work the
//! same in the sans-IO board core and in its tests.

use std::time::Instant;

/// `rate` tokens a second, up to `burst` in store; starts full.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(rate: f64, burst: f64, now: Instant) -> Self {
        let burst = burst.max(1.0);
        Self { rate: rate.max(0.0), burst, tokens: burst, last: now }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = self.last.max(now);
    }

    /// Takes `amount` tokens if that many are in store; false (and takes none) otherwise.
    pub fn take(&mut self, amount: f64, now: Instant) -> bool {
        self.refill(now);
        if self.tokens < amount {
            return false;
        }
        self.tokens -= amount;
        true
    }

    /// Takes `amount` tokens, going into debt if need be (for costs known only after the work,
    /// such as CPU time); false once the bucket is in debt.
    pub fn charge(&mut self, amount: f64, now: Instant) -> bool {
        self.refill(now);
        self.tokens -= amount;
        self.tokens >= 0.0
    }

    /// The whole tokens in store now.
    pub fn available(&mut self, now: Instant) -> u64 {
        self.refill(now);
        self.tokens.max(0.0) as u64
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_bucket_refills_at_its_rate_up_to_its_burst() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(10.0, 20.0, start);
        assert!(bucket.take(20.0, start));
        assert!(!bucket.take(1.0, start));
        assert!(bucket.take(5.0, start + Duration::from_millis(500)));
        assert_eq!(bucket.available(start + Duration::from_secs(60)), 20);
        assert!(!bucket.charge(25.0, start + Duration::from_secs(60)), "in debt");
        assert!(!bucket.take(1.0, start + Duration::from_secs(60)));
        assert!(bucket.take(1.0, start + Duration::from_secs(61)));
    }
}
