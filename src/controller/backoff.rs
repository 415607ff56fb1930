//! Per-object exponential backoff for failed reconciles: 1 s doubling to 5 min, reset by the
//! next success. A fixed retry would hammer an API server that is refusing us (403, 422,
//! overload) as hard after an hour as after a second.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Delay after the first failure.
pub const FIRST: Duration = Duration::from_secs(1);
/// Longest delay between retries.
pub const MAX: Duration = Duration::from_secs(300);

/// The delay before retry number `failures` (1 for the first failure).
pub fn delay(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(20);
    FIRST.saturating_mul(1 << doublings).min(MAX)
}

/// Consecutive failures per object, keyed by `kind/namespace/name`.
#[derive(Default)]
pub struct Retries(Mutex<HashMap<String, u32>>);

impl Retries {
    /// Records a failure and returns how long to wait before the next attempt.
    pub fn failed(&self, key: &str) -> Duration {
        let mut map = self.0.lock().expect("backoff lock");
        let n = map.entry(key.to_owned()).or_default();
        *n = n.saturating_add(1);
        delay(*n)
    }

    /// A success forgets the object's failures.
    pub fn succeeded(&self, key: &str) {
        self.0.lock().expect("backoff lock").remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_one_second_to_five_minutes() {
        let secs: Vec<u64> = (1..=11).map(|n| delay(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(delay(u32::MAX), MAX);
    }

    #[test]
    fn per_object_and_reset_by_success() {
        let r = Retries::default();
        assert_eq!(r.failed("ib/a/x"), Duration::from_secs(1));
        assert_eq!(r.failed("ib/a/x"), Duration::from_secs(2));
        assert_eq!(r.failed("ib/a/y"), Duration::from_secs(1));
        assert_eq!(r.failed("ib/a/x"), Duration::from_secs(4));
        r.succeeded("ib/a/x");
        assert_eq!(r.failed("ib/a/x"), Duration::from_secs(1));
        assert_eq!(r.failed("ib/a/y"), Duration::from_secs(2));
    }
}
