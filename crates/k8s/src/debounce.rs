//! When to publish after changes. A change that comes after a quiet time (nothing changed or
//! was published for that long) is published at once: most changes come alone (an endpoint
//! moves, a Service gets its address), and waiting would only delay them. A change that
//! follows another closely is held until changes stop for the quiet time, and no later than a
//! bound after the first, so the rest of a burst yields one snapshot and a steady stream
//! still yields some. Pure: the caller says what time it is, so it is tested without sleeping.

use std::time::Duration;
use tokio::time::Instant;

#[derive(Clone, Debug)]
pub(crate) struct Debounce {
    quiet: Duration,
    max_delay: Duration,
    /// The first and the last change not yet published.
    pending: Option<(Instant, Instant)>,
    /// When the last snapshot was published, or the last change was seen, whichever is later.
    busy_until: Option<Instant>,
    /// The pending change came alone, after a quiet time: publish it at once.
    alone: bool,
}

impl Debounce {
    pub fn new(quiet: Duration, max_delay: Duration) -> Self {
        Self {
            quiet,
            max_delay: max_delay.max(quiet),
            pending: None,
            busy_until: None,
            alone: false,
        }
    }

    pub fn changed(&mut self, now: Instant) {
        let quiet_before = self.busy_until.is_none_or(|at| now >= at + self.quiet);
        self.alone = self.pending.is_none() && quiet_before;
        let first = self.pending.map_or(now, |(first, _)| first);
        self.pending = Some((first, now));
        self.busy_until = Some(now);
    }

    /// When to publish; `None` while nothing is pending.
    pub fn deadline(&self) -> Option<Instant> {
        let (first, last) = self.pending?;
        if self.alone {
            return Some(first);
        }
        Some((last + self.quiet).min(first + self.max_delay))
    }

    pub fn published(&mut self, now: Instant) {
        self.pending = None;
        self.alone = false;
        self.busy_until = self.busy_until.max(Some(now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_change_alone_goes_out_at_once() {
        let t0 = Instant::now();
        let mut d = Debounce::new(150 * MS, 500 * MS);
        assert_eq!(d.deadline(), None);
        d.changed(t0);
        assert_eq!(d.deadline(), Some(t0), "nothing before it: at once");
        d.published(t0 + MS);
        // Another soon after the publication is held for the quiet time...
        d.changed(t0 + 100 * MS);
        assert_eq!(d.deadline(), Some(t0 + 250 * MS));
        d.published(t0 + 250 * MS);
        // ...and one after a quiet time goes out at once again.
        d.changed(t0 + 400 * MS);
        assert_eq!(d.deadline(), Some(t0 + 400 * MS));
    }

    #[test]
    fn a_burst_waits_for_quiet_and_no_longer_than_the_bound() {
        let t0 = Instant::now();
        let mut d = Debounce::new(150 * MS, 500 * MS);
        // Changes together (seen before the first could be published) make one window.
        d.changed(t0);
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
        d.published(t0 + 500 * MS);
        assert_eq!(d.deadline(), None);
        // The next change, within the quiet time of the publication, starts a new window.
        d.changed(t0 + 600 * MS);
        assert_eq!(d.deadline(), Some(t0 + 750 * MS));
    }

    #[test]
    fn the_bound_is_never_shorter_than_the_quiet_time() {
        let t0 = Instant::now();
        let mut d = Debounce::new(200 * MS, 50 * MS);
        d.changed(t0);
        d.changed(t0);
        assert_eq!(d.deadline(), Some(t0 + 200 * MS));
    }
}
