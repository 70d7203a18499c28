//! Sign-in attempts per account: a burst, then one more per interval, so a password cannot be
//! guessed at the speed of the network. Kept in memory per process.
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Attempts an account may make at once before it has to wait.
pub const BURST: u32 = 10;
/// After the burst, one more attempt per this long.
pub const REFILL: Duration = Duration::from_secs(30);
/// Accounts remembered before the ones that could try again anyway are forgotten.
const TRACKED: usize = 10_000;

pub struct SignInThrottle {
    limiter: DefaultKeyedRateLimiter<String>,
}

impl Default for SignInThrottle {
    fn default() -> Self {
        let burst = NonZeroU32::new(BURST).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(REFILL)
            .unwrap_or_else(|| Quota::per_minute(NonZeroU32::MIN))
            .allow_burst(burst);
        SignInThrottle {
            limiter: RateLimiter::keyed(quota),
        }
    }
}

impl SignInThrottle {
    /// Counts an attempt for `username` (any case). Err carries how long until the next one is
    /// allowed.
    pub fn attempt(&self, username: &str) -> Result<(), Duration> {
        if self.limiter.len() > TRACKED {
            self.limiter.retain_recent();
        }
        let key = username.trim().to_lowercase();
        self.limiter
            .check_key(&key)
            .map_err(|until| until.wait_time_from(DefaultClock::default().now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_gets_its_burst_then_waits_and_others_are_not_affected() {
        let throttle = SignInThrottle::default();
        for _ in 0..BURST {
            assert!(throttle.attempt("Casey").is_ok());
        }
        let wait = throttle
            .attempt("casey ")
            .expect_err("the burst is used up");
        assert!(wait > Duration::ZERO && wait <= REFILL, "{wait:?}");
        assert!(
            throttle.attempt("robin").is_ok(),
            "another account is not held up"
        );
    }
}
