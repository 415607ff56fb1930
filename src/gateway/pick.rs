//! Which backend of a split serves a request, given what each can take now.
//!
//! The split's weights choose a *landing* backend with no regard to health, so every backend
//! lands exactly its share of requests: one that cannot take the request is then recorded
//! (the controller's analysis sees an ejected canary fail) and the request is re-picked by
//! weight among the split's other backends that can, before any fallback tier. Below 50%
//! healthy weight, and with no healthy fallback tier to spill to, the split is in panic (Envoy's
//! panic threshold across priorities) and outlier ejection is ignored.
//!
//! Pure domain code behind a small trait, so the hot path can be rebuilt around it.

use std::sync::Mutex;

use super::balance::SmoothWeighted;

/// What stops a backend from taking a request now. Codes are the `code` label of the
/// recorded attempt (outcome `unavailable`), a fixed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// No InferenceBackend of that name (or one with neither `external` nor `selfHosted`, or
    /// a base URL that does not parse).
    Missing,
    /// A self-hosted backend without a ready, warmed-up pod.
    NoEndpoints,
    /// The credentials Secret or its key is missing.
    NoCredentials,
    /// The CA bundle Secret is missing, or holds no usable certificate.
    NoCaBundle,
    /// A 429's Retry-After has not passed.
    CoolingDown,
    /// `maxConcurrency` requests are in flight.
    Saturated,
    /// Ejected as an outlier.
    Ejected,
}

impl Unavailable {
    pub fn code(self) -> &'static str {
        match self {
            Unavailable::Missing => "missing",
            Unavailable::NoEndpoints => "no_endpoints",
            Unavailable::NoCredentials => "no_credentials",
            Unavailable::NoCaBundle => "no_ca_bundle",
            Unavailable::CoolingDown => "cooling_down",
            Unavailable::Saturated => "saturated",
            Unavailable::Ejected => "ejected",
        }
    }

    /// The status a caller sees when this is why nothing could serve it.
    pub fn status(self) -> u16 {
        match self {
            Unavailable::CoolingDown | Unavailable::Saturated => 429,
            _ => 503,
        }
    }
}

/// Picks backends of a split, by their position in it.
pub trait Balancer: Send + Sync {
    /// The position the weights choose for the next request of the route whose landing
    /// sequence `landings` is.
    fn land(&self, landings: &Mutex<SmoothWeighted>) -> Option<usize>;

    /// Another position by weight, among those `eligible` says are not tried yet and can
    /// take the request.
    fn repick(&self, weights: &[i32], eligible: &mut dyn FnMut(usize) -> bool) -> Option<usize>;
}

/// Smooth weighted round-robin for landings (exact shares even at low volume), weighted
/// random for re-picks (the set of candidates changes from request to request).
#[derive(Default)]
pub struct Weighted;

impl Balancer for Weighted {
    fn land(&self, landings: &Mutex<SmoothWeighted>) -> Option<usize> {
        landings.lock().unwrap_or_else(|e| e.into_inner()).pick()
    }

    fn repick(&self, weights: &[i32], eligible: &mut dyn FnMut(usize) -> bool) -> Option<usize> {
        // Only on the way to a second attempt, so a small allocation is fine here.
        let mut candidates: Vec<(usize, u64)> = Vec::with_capacity(weights.len());
        let mut total = 0u64;
        for (i, w) in weights.iter().enumerate() {
            if *w > 0 && eligible(i) {
                candidates.push((i, *w as u64));
                total += *w as u64;
            }
        }
        if total == 0 {
            return None;
        }
        let mut roll = fastrand::u64(..total);
        for (i, w) in &candidates {
            if roll < *w {
                return Some(*i);
            }
            roll -= w;
        }
        None
    }
}

/// Whether the split is in panic: less than half of its weight can take requests and no
/// fallback tier can absorb the rest. `healthy` answers for the backend at a position of
/// the split *including* ejection; `fallback_healthy` for whether any fallback tier is.
pub fn panics(
    weights: &[i32],
    healthy: &mut dyn FnMut(usize) -> bool,
    fallback_healthy: &mut dyn FnMut() -> bool,
) -> bool {
    let total: i64 = weights.iter().map(|w| i64::from((*w).max(0))).sum();
    let good: i64 = weights
        .iter()
        .enumerate()
        .filter(|(i, w)| **w > 0 && healthy(*i))
        .map(|(_, w)| i64::from(*w))
        .sum();
    good * 2 < total && !fallback_healthy()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: [&str; 4] = ["a", "b", "c", "d"];

    #[test]
    fn a_share_that_cannot_be_taken_goes_to_the_others_by_weight() {
        let s = [50, 30, 20];
        let w = Weighted;
        let mut counts = std::collections::HashMap::new();
        for _ in 0..10_000 {
            let got = w.repick(&s, &mut |i| i != 0).expect("b or c");
            *counts.entry(NAMES[got]).or_insert(0) += 1;
        }
        assert_eq!(counts.get("a"), None, "tried already");
        let b = counts["b"] as f64 / 10_000.0;
        assert!((0.56..0.64).contains(&b), "b gets 30/50 of a's share: {b}");
        // Only those that can take it.
        for _ in 0..100 {
            assert_eq!(w.repick(&s, &mut |i| i != 0 && i != 1), Some(2));
        }
        assert_eq!(w.repick(&s, &mut |_| false), None);
        assert_eq!(w.repick(&[0], &mut |_| true), None);
    }

    #[test]
    fn landings_follow_the_weights_whatever_the_health() {
        let landings = Mutex::new(SmoothWeighted::new([95, 5]));
        let w = Weighted;
        let canary = (0..100).filter(|_| w.land(&landings) == Some(1)).count();
        assert_eq!(canary, 5);
    }

    #[test]
    fn panic_below_half_healthy_weight_without_a_healthy_fallback() {
        let s = [60, 40];
        let no = &mut || false;
        assert!(!panics(&s, &mut |_| true, no));
        assert!(!panics(&s, &mut |i| i == 0, no), "60% healthy");
        assert!(panics(&s, &mut |i| i == 1, no), "40% healthy");
        assert!(panics(&s, &mut |_| false, no));
        assert!(
            !panics(&s, &mut |i| i != 0, &mut || true),
            "the fallback tier absorbs a's share"
        );
        let even = [50, 50];
        assert!(
            !panics(&even, &mut |i| i == 0, no),
            "exactly half is not below"
        );
    }
}
