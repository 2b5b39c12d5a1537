//! When to publish after changes: once they stop for a quiet time, and no later than a bound
//! after the first, so a burst yields one snapshot and a steady stream still yields some.
//! Pure: the caller says what time it is, so it is tested without sleeping.

use std::time::Duration;
use tokio::time::Instant;

#[derive(Clone, Debug)]
pub(crate) struct Debounce {
    quiet: Duration,
    max_delay: Duration,
    /// The first and the last change not yet published.
    pending: Option<(Instant, Instant)>,
}

impl Debounce {
    pub fn new(quiet: Duration, max_delay: Duration) -> Self {
        Self {
            quiet,
            max_delay: max_delay.max(quiet),
            pending: None,
        }
    }

    pub fn changed(&mut self, now: Instant) {
        let first = self.pending.map_or(now, |(first, _)| first);
        self.pending = Some((first, now));
    }

    /// When to publish; `None` while nothing is pending.
    pub fn deadline(&self) -> Option<Instant> {
        let (first, last) = self.pending?;
        Some((last + self.quiet).min(first + self.max_delay))
    }

    pub fn published(&mut self) {
        self.pending = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_burst_waits_for_quiet_and_no_longer_than_the_bound() {
        let t0 = Instant::now();
        let mut d = Debounce::new(150 * MS, 500 * MS);
        assert_eq!(d.deadline(), None);
        d.changed(t0);
        assert_eq!(d.deadline(), Some(t0 + 150 * MS));
        // Changes every 100 ms keep pushing the quiet time out...
        for i in 1..=3 {
            d.changed(t0 + i * 100 * MS);
            assert_eq!(d.deadline(), Some(t0 + (i * 100 + 150) * MS));
        }
        // ...until the bound, counted from the first change, caps it.
        d.changed(t0 + 400 * MS);
        assert_eq!(d.deadline(), Some(t0 + 500 * MS));
        d.changed(t0 + 499 * MS);
        assert_eq!(d.deadline(), Some(t0 + 500 * MS));
        d.published();
        assert_eq!(d.deadline(), None);
        // The next change starts a new window.
        d.changed(t0 + 600 * MS);
        assert_eq!(d.deadline(), Some(t0 + 750 * MS));
    }

    #[test]
    fn the_bound_is_never_shorter_than_the_quiet_time() {
        let t0 = Instant::now();
        let mut d = Debounce::new(200 * MS, 50 * MS);
        d.changed(t0);
        assert_eq!(d.deadline(), Some(t0 + 200 * MS));
    }
}
