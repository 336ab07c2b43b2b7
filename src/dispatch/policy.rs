//! How deliveries are retried and paced: the retry schedule with its jitter, how many
//! attempts run at once, and when a route's breaker opens.

use std::time::Duration;

/// The waits of the default retry schedule, in seconds: about 28 hours in all, so a
/// receiver down for a deploy, a night or a day loses nothing.
pub const DEFAULT_SCHEDULE_SECS: [u64; 7] = [5, 300, 1800, 7200, 18000, 36000, 36000];

/// How a wait of the schedule is randomized, so that retries do not move in lockstep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    /// A random factor in [0.8, 1.2].
    Around,
    /// A random factor in [0.5, 1], as the exponential backoff of earlier versions did.
    Below,
}

/// Retry and pacing policy for handler calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryPolicy {
    /// Longest a single handler call may take; longer counts as a failure.
    pub attempt_timeout: Duration,
    /// The wait after each failed attempt; after the last one fails the delivery is `dead`.
    pub retry_schedule: Vec<Duration>,
    /// How each wait is randomized.
    pub jitter: Jitter,
    /// Most attempts in flight at once in this instance (at least 1).
    pub concurrency: usize,
    /// Consecutive failures of a route that pause it; 0 = never pause.
    pub breaker_failures: u32,
    /// While a route is paused, how often one delivery probes it.
    pub breaker_probe: Duration,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        Self {
            attempt_timeout: Duration::from_secs(30),
            retry_schedule: DEFAULT_SCHEDULE_SECS
                .iter()
                .map(|s| Duration::from_secs(*s))
                .collect(),
            jitter: Jitter::Around,
            concurrency: 16,
            breaker_failures: 5,
            breaker_probe: Duration::from_secs(30),
        }
    }
}

impl DeliveryPolicy {
    /// The schedule that `max_attempts`, `backoff_initial` and `backoff_max` described in
    /// earlier versions: `max_attempts - 1` waits, doubling from `initial`, capped at `max`.
    pub fn exponential_schedule(
        max_attempts: u32,
        initial: Duration,
        max: Duration,
    ) -> Vec<Duration> {
        (0..max_attempts.saturating_sub(1))
            .map(|i| initial.saturating_mul(1u32 << i.min(30)).min(max))
            .collect()
    }

    /// Attempts a delivery gets before it is dead.
    pub fn max_attempts(&self) -> u32 {
        u32::try_from(self.retry_schedule.len())
            .unwrap_or(u32::MAX)
            .saturating_add(1)
    }

    /// The wait after `failures` failed attempts (1 for the first), jittered; `None` when
    /// the schedule is used up and the delivery is dead.
    pub fn retry_after(&self, failures: u32) -> Option<Duration> {
        let index = usize::try_from(failures.checked_sub(1)?).ok()?;
        let wait = *self.retry_schedule.get(index)?;
        let r = rand::random::<f64>();
        let factor = match self.jitter {
            Jitter::Around => 0.8 + r * 0.4,
            Jitter::Below => 0.5 + r * 0.5,
        };
        Some(wait.mul_f64(factor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_schedule_spans_about_28_hours_and_then_gives_up() {
        let policy = DeliveryPolicy::default();
        assert_eq!(policy.max_attempts(), 8);
        let total: Duration = (1..8).filter_map(|n| policy.retry_after(n)).sum();
        let hours = total.as_secs_f64() / 3600.0;
        assert!((27.0 * 0.8..=27.0 * 1.2).contains(&hours), "{hours} h");
        assert_eq!(policy.retry_after(8), None);
        assert_eq!(policy.retry_after(0), None);
    }

    #[test]
    fn the_old_settings_give_the_old_backoff() {
        let waits = DeliveryPolicy::exponential_schedule(
            5,
            Duration::from_millis(1000),
            Duration::from_secs(5),
        );
        assert_eq!(waits, [1, 2, 4, 5].map(Duration::from_secs));
        let policy = DeliveryPolicy {
            retry_schedule: waits,
            jitter: Jitter::Below,
            ..DeliveryPolicy::default()
        };
        for _ in 0..100 {
            let wait = policy.retry_after(3).expect("a third wait");
            assert!(wait >= Duration::from_secs(2) && wait <= Duration::from_secs(4));
        }
        assert_eq!(policy.max_attempts(), 5);
    }
}
