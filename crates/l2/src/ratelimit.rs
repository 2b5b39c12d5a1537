//! Token buckets, per interface and per source, for what a neighbour can make the responder do
//! beyond a one-for-one unicast answer: multicast answers (the Neighbor Advertisement that
//! defends an address against a DAD probe goes to every node), re-announcements answering an
//! address conflict, and log lines about what it sent. A hostile or broken host cannot turn
//! herald into an amplifier, nor fill the log.
//!
//! Pure: the caller says what time it is.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

/// A rate and the burst allowed above it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Tokens added per second.
    pub per_second: f64,
    /// The most tokens held: what may be spent at once after a quiet spell.
    pub burst: f64,
}

impl Rate {
    pub const fn new(per_second: f64, burst: f64) -> Rate {
        Rate { per_second, burst }
    }
}

/// One token bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenBucket {
    rate: Rate,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn new(rate: Rate, now: Instant) -> TokenBucket {
        TokenBucket {
            rate,
            tokens: rate.burst,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate.per_second).min(self.rate.burst);
        self.last = now.max(self.last);
    }

    /// Whether a token is there at `now` (without taking it).
    pub fn check(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= 1.0
    }

    /// Takes a token if there is one at `now`.
    pub fn take(&mut self, now: Instant) -> bool {
        if self.check(now) {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Full again at `now`: nothing it limits would be lost by forgetting it.
    fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= self.rate.burst
    }
}

/// The limits of one kind of action: a bucket for the whole interface and one per source.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub interface: Rate,
    pub per_source: Rate,
}

/// Sources tracked at most; past that, sources whose bucket is full are forgotten, and if
/// none is, all are (the interface bucket still bounds the total).
const MAX_SOURCES: usize = 4096;

/// An interface bucket and a bucket per source `K`: an action is allowed when both have a
/// token, and only then are tokens taken.
#[derive(Debug, Clone)]
pub struct Limiter<K: Ord> {
    limits: Limits,
    interface: TokenBucket,
    sources: BTreeMap<K, TokenBucket>,
}

impl<K: Ord + Clone> Limiter<K> {
    pub fn new(limits: Limits, now: Instant) -> Limiter<K> {
        Limiter {
            limits,
            interface: TokenBucket::new(limits.interface, now),
            sources: BTreeMap::new(),
        }
    }

    /// Whether `source` may act at `now`; if so its token and the interface's are taken.
    pub fn allow(&mut self, source: &K, now: Instant) -> bool {
        if !self.interface.check(now) {
            return false;
        }
        if !self.sources.contains_key(source) && self.sources.len() >= MAX_SOURCES {
            self.sources.retain(|_, bucket| !bucket.is_full(now));
            if self.sources.len() >= MAX_SOURCES {
                self.sources.clear();
            }
        }
        let per_source = self.limits.per_source;
        let bucket = self
            .sources
            .entry(source.clone())
            .or_insert_with(|| TokenBucket::new(per_source, now));
        if !bucket.take(now) {
            return false;
        }
        self.interface.take(now)
    }
}

/// The responder's limits, per interface. The defaults:
///
/// | action | per interface | per source |
/// |---|---|---|
/// | multicast answer (NA to ff02::1 defending against a DAD probe) | 10/s, burst 10 | 1/s, burst 3 (source: the probe's Ethernet source) |
/// | re-announcement answering an address conflict | 20/s, burst 20 | 5/s, burst 10 (source: the claimant's MAC); and at most 1/s per address, see [`crate::claim::ConflictDefense`] |
/// | log line about a conflict or a limit reached | 2/s, burst 5 | 1 per 10 s, burst 1 (source: the address) |
///
/// So 10,000 spoofed DAD probes per second for an owned address, from any number of MACs,
/// produce at most 10 multicast Neighbor Advertisements per second (plus a first burst of
/// 10), while unicast answers (one per question, to the asker) are not limited.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimits {
    pub multicast_answers: Limits,
    pub reannouncements: Limits,
    pub log_lines: Limits,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            multicast_answers: Limits {
                interface: Rate::new(10.0, 10.0),
                per_source: Rate::new(1.0, 3.0),
            },
            reannouncements: Limits {
                interface: Rate::new(20.0, 20.0),
                per_source: Rate::new(5.0, 10.0),
            },
            log_lines: Limits {
                interface: Rate::new(2.0, 5.0),
                per_source: Rate::new(0.1, 1.0),
            },
        }
    }
}

/// How long a bucket of `rate` takes to earn one token.
pub fn token_interval(rate: Rate) -> Duration {
    Duration::from_secs_f64(1.0 / rate.per_second.max(1e-9))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(Rate::new(10.0, 5.0), t0);
        assert_eq!((0..100).filter(|_| bucket.take(t0)).count(), 5);
        // 10 per second: one per 100 ms.
        assert!(!bucket.take(t0 + 99 * MS));
        assert!(bucket.take(t0 + 100 * MS));
        let second = t0 + 1100 * MS;
        let allowed: usize = (0..1000)
            .filter(|i| bucket.take(second + (*i as u32) * MS))
            .count();
        // A full bucket's 5, then the second's 10 at most.
        assert!((10..=15).contains(&allowed), "{allowed}");
    }

    #[test]
    fn a_flood_from_many_sources_is_held_to_the_interface_rate() {
        let limits = RateLimits::default().multicast_answers;
        let t0 = Instant::now();
        let mut limiter = Limiter::<u32>::new(limits, t0);
        // 10,000 probes in one second, each from a different source.
        let allowed = (0..10_000u32)
            .filter(|i| limiter.allow(i, t0 + Duration::from_micros(u64::from(*i) * 100)))
            .count();
        assert!(allowed <= 10 + 10, "{allowed}");
        assert!(allowed >= 10, "{allowed}");
    }

    #[test]
    fn one_source_is_held_to_its_own_rate_and_spares_the_others() {
        let limits = RateLimits::default().multicast_answers;
        let t0 = Instant::now();
        let mut limiter = Limiter::<u32>::new(limits, t0);
        let from_one = (0..1000).filter(|_| limiter.allow(&1, t0)).count();
        assert_eq!(from_one, 3);
        assert!(limiter.allow(&2, t0), "another source still gets an answer");
    }

    #[test]
    fn the_source_table_stays_bounded() {
        let limits = RateLimits::default().log_lines;
        let t0 = Instant::now();
        let mut limiter = Limiter::<u32>::new(
            Limits {
                interface: Rate::new(1e9, 1e9),
                ..limits
            },
            t0,
        );
        for i in 0..(3 * MAX_SOURCES as u32) {
            limiter.allow(&i, t0);
        }
        assert!(limiter.sources.len() <= MAX_SOURCES);
    }
}
