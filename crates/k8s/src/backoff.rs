//! How long a failed watch waits before trying again: doubling from [`MIN`] and never more
//! than [`MAX`], each wait shortened by a random part of up to half, so a recovered API server
//! is found within about a second, and the nodes of a large cluster do not all come back to
//! it at once.
//!
//! kube-rs's default backoff grows to 30 s (client-go's reflector's), which is kind to an API
//! server in trouble but leaves a node blind for that long after it has recovered; herald
//! makes few requests per watch (a list, then one long watch), so retrying every second costs
//! the server little. The randomness is a seeded generator, so tests see a fixed sequence.

use kube::runtime::utils::Backoff;
use std::time::Duration;

/// The first wait after a failure.
pub const MIN: Duration = Duration::from_millis(100);
/// The longest wait.
pub const MAX: Duration = Duration::from_secs(1);

pub(crate) struct WatchBackoff {
    next: Duration,
    /// xorshift64* state; never 0.
    rng: u64,
}

impl WatchBackoff {
    pub fn new(seed: u64) -> Self {
        Self {
            next: MIN,
            rng: seed | 1,
        }
    }

    fn random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let full = self.next;
        self.next = (full * 2).min(MAX);
        // Between half and all of the full wait.
        let half = full / 2;
        let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX).max(1);
        Some(half + Duration::from_nanos(self.random() % nanos))
    }
}

impl Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.next = MIN;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_to_the_cap_and_never_past_it() {
        let mut b = WatchBackoff::new(7);
        let waits: Vec<Duration> = (&mut b).take(50).collect();
        assert!(waits[0] >= MIN / 2 && waits[0] <= MIN, "{waits:?}");
        assert!(waits.iter().all(|w| *w <= MAX), "{waits:?}");
        // Past the doubling, every wait lies between half the cap and the cap.
        assert!(waits[10..].iter().all(|w| *w >= MAX / 2), "{waits:?}");
        // Randomised: not all the same.
        assert!(waits[10..].windows(2).any(|w| w[0] != w[1]), "{waits:?}");
        b.reset();
        assert!(b.next().is_some_and(|w| w <= MIN));
    }

    #[test]
    fn seeds_spread_the_nodes() {
        let first = |seed| WatchBackoff::new(seed).nth(12);
        assert_ne!(first(1), first(2));
        assert_eq!(first(3), first(3));
    }
}
