//! A breaker per route: after a run of consecutive failures the route pauses. While paused
//! no delivery of it is attempted but one probe now and then, so a receiver that is down
//! is not hammered and its deliveries do not use up their retry schedules waiting; the
//! first success resumes it.

use std::collections::HashMap;
use std::time::Duration;

/// What an outcome did to a route's breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Change {
    /// The route just paused.
    Paused,
    /// The route just resumed.
    Resumed,
}

#[derive(Debug, Default)]
struct Breaker {
    consecutive_failures: u32,
    paused: bool,
    /// While paused: when the next probe may start (unix ms).
    next_probe_at: i64,
    /// While paused: a probe is in flight.
    probing: bool,
}

/// The breakers of every route of this instance.
#[derive(Debug)]
pub(super) struct Breakers {
    routes: HashMap<String, Breaker>,
    /// Consecutive failures that pause a route; 0 = never.
    threshold: u32,
    probe_every: i64,
}

impl Breakers {
    pub(super) fn new(threshold: u32, probe_every: Duration) -> Self {
        Self {
            routes: HashMap::new(),
            threshold,
            probe_every: i64::try_from(probe_every.as_millis()).unwrap_or(i64::MAX / 4),
        }
    }

    /// The routes paused now.
    pub(super) fn paused(&self) -> Vec<String> {
        let mut paused: Vec<String> = self
            .routes
            .iter()
            .filter(|(_, b)| b.paused)
            .map(|(name, _)| name.clone())
            .collect();
        paused.sort_unstable();
        paused
    }

    /// Paused routes whose next probe may start at `now`; each is counted as probing
    /// until its outcome (or [`Breakers::no_probe`]) comes back.
    pub(super) fn probes_due(&mut self, now: i64) -> Vec<String> {
        let mut due = Vec::new();
        for (name, breaker) in &mut self.routes {
            if breaker.paused && !breaker.probing && breaker.next_probe_at <= now {
                breaker.probing = true;
                breaker.next_probe_at = now.saturating_add(self.probe_every);
                due.push(name.clone());
            }
        }
        due
    }

    /// A paused route had nothing to probe with: it waits for its next probe time.
    pub(super) fn no_probe(&mut self, route: &str) {
        if let Some(breaker) = self.routes.get_mut(route) {
            breaker.probing = false;
        }
    }

    /// When the earliest probe of a paused route falls due (unix ms).
    pub(super) fn next_probe_at(&self) -> Option<i64> {
        self.routes
            .values()
            .filter(|b| b.paused && !b.probing)
            .map(|b| b.next_probe_at)
            .min()
    }

    /// Records an attempt's outcome on `route`; says when it paused or resumed it.
    pub(super) fn record(&mut self, route: &str, success: bool, now: i64) -> Option<Change> {
        let threshold = self.threshold;
        let probe_every = self.probe_every;
        let breaker = self.routes.entry(route.to_owned()).or_default();
        breaker.probing = false;
        if success {
            breaker.consecutive_failures = 0;
            return std::mem::take(&mut breaker.paused).then_some(Change::Resumed);
        }
        breaker.consecutive_failures = breaker.consecutive_failures.saturating_add(1);
        if threshold == 0 || breaker.paused || breaker.consecutive_failures < threshold {
            return None;
        }
        breaker.paused = true;
        breaker.next_probe_at = now.saturating_add(probe_every);
        Some(Change::Paused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_after_the_threshold_probes_then_resumes_on_success() {
        let mut b = Breakers::new(3, Duration::from_secs(30));
        assert_eq!(b.record("r", false, 0), None);
        assert_eq!(b.record("r", false, 0), None);
        assert_eq!(b.record("r", false, 0), Some(Change::Paused));
        assert_eq!(b.record("r", false, 0), None, "paused once");
        assert_eq!(b.paused(), ["r"]);
        assert!(b.probes_due(29_999).is_empty());
        assert_eq!(b.probes_due(30_000), ["r"]);
        assert!(b.probes_due(30_000).is_empty(), "one probe at a time");
        assert_eq!(b.record("r", false, 30_100), None);
        assert_eq!(b.next_probe_at(), Some(60_000));
        assert_eq!(b.record("r", true, 60_100), Some(Change::Resumed));
        assert!(b.paused().is_empty());
        assert_eq!(b.record("other", false, 0), None);
    }

    #[test]
    fn a_success_resets_the_count_and_zero_never_pauses() {
        let mut b = Breakers::new(2, Duration::from_secs(1));
        b.record("r", false, 0);
        b.record("r", true, 0);
        assert_eq!(b.record("r", false, 0), None);
        let mut never = Breakers::new(0, Duration::from_secs(1));
        for _ in 0..100 {
            assert_eq!(never.record("r", false, 0), None);
        }
    }
}
