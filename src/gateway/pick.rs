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

use crate::api::WeightedBackend;

use super::balance::Balancers;

/// What stops a backend from taking a request now. Codes are the `code` label of the
/// recorded attempt (outcome `unavailable`), a fixed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// No InferenceBackend of that name (or one with neither `external` nor `selfHosted`).
    Missing,
    /// A self-hosted backend without a ready, warmed-up pod.
    NoEndpoints,
    /// The credentials Secret or its key is missing.
    NoCredentials,
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

/// Picks backends of a split. `can_take` answers for one backend whether it can take the
/// request now (`Ok`), or why not.
pub trait Balancer: Send + Sync {
    /// The backend the weights choose for the next request of `route`.
    fn land(&self, route: &str, split: &[WeightedBackend]) -> Option<String>;

    /// Another backend of the split by weight, among those not `tried` that can take it.
    fn repick(
        &self,
        split: &[WeightedBackend],
        tried: &[String],
        can_take: &mut dyn FnMut(&str) -> bool,
    ) -> Option<String>;
}

/// Smooth weighted round-robin for landings (exact shares even at low volume), weighted
/// random for re-picks (the set of candidates changes from request to request).
#[derive(Default)]
pub struct Weighted {
    landings: Balancers,
}

impl Balancer for Weighted {
    fn land(&self, route: &str, split: &[WeightedBackend]) -> Option<String> {
        self.landings.pick(route, split)
    }

    fn repick(
        &self,
        split: &[WeightedBackend],
        tried: &[String],
        can_take: &mut dyn FnMut(&str) -> bool,
    ) -> Option<String> {
        let candidates: Vec<&WeightedBackend> = split
            .iter()
            .filter(|b| b.weight > 0 && !tried.contains(&b.name))
            .filter(|b| can_take(&b.name))
            .collect();
        let total: u64 = candidates.iter().map(|b| b.weight as u64).sum();
        if total == 0 {
            return None;
        }
        let mut roll = fastrand::u64(..total);
        for b in candidates {
            if roll < b.weight as u64 {
                return Some(b.name.clone());
            }
            roll -= b.weight as u64;
        }
        None
    }
}

/// Whether the split is in panic: less than half of its weight can take requests and no
/// fallback tier can absorb the rest. `healthy` answers for a backend's health *including*
/// ejection.
pub fn panics(
    split: &[WeightedBackend],
    fallback: &[String],
    healthy: &mut dyn FnMut(&str) -> bool,
) -> bool {
    let total: i64 = split.iter().map(|b| i64::from(b.weight.max(0))).sum();
    let good: i64 = split
        .iter()
        .filter(|b| b.weight > 0 && healthy(&b.name))
        .map(|b| i64::from(b.weight))
        .sum();
    good * 2 < total && !fallback.iter().any(|f| healthy(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(pairs: &[(&str, i32)]) -> Vec<WeightedBackend> {
        pairs
            .iter()
            .map(|(n, w)| WeightedBackend {
                name: (*n).into(),
                weight: *w,
            })
            .collect()
    }

    #[test]
    fn a_share_that_cannot_be_taken_goes_to_the_others_by_weight() {
        let s = split(&[("a", 50), ("b", 30), ("c", 20)]);
        let w = Weighted::default();
        let mut counts = std::collections::HashMap::new();
        for _ in 0..10_000 {
            let got = w.repick(&s, &["a".into()], &mut |_| true).expect("b or c");
            *counts.entry(got).or_insert(0) += 1;
        }
        assert_eq!(counts.get("a"), None, "tried already");
        let b = counts["b"] as f64 / 10_000.0;
        assert!((0.56..0.64).contains(&b), "b gets 30/50 of a's share: {b}");
        // Only those that can take it.
        for _ in 0..100 {
            assert_eq!(
                w.repick(&s, &["a".into()], &mut |n| n != "b"),
                Some("c".into())
            );
        }
        assert_eq!(
            w.repick(&s, &["a".into(), "b".into(), "c".into()], &mut |_| true),
            None
        );
        assert_eq!(w.repick(&split(&[("z", 0)]), &[], &mut |_| true), None);
    }

    #[test]
    fn landings_follow_the_weights_whatever_the_health() {
        let s = split(&[("stable", 95), ("canary", 5)]);
        let w = Weighted::default();
        let canary = (0..100)
            .filter(|_| w.land("ns/r", &s).as_deref() == Some("canary"))
            .count();
        assert_eq!(canary, 5);
    }

    #[test]
    fn panic_below_half_healthy_weight_without_a_healthy_fallback() {
        let s = split(&[("a", 60), ("b", 40)]);
        let none: Vec<String> = vec![];
        assert!(!panics(&s, &none, &mut |_| true));
        assert!(!panics(&s, &none, &mut |n| n == "a"), "60% healthy");
        assert!(panics(&s, &none, &mut |n| n == "b"), "40% healthy");
        assert!(panics(&s, &none, &mut |_| false));
        let fallback = vec!["f".to_owned()];
        assert!(
            !panics(&s, &fallback, &mut |n| n != "a"),
            "the fallback tier absorbs a's share"
        );
        assert!(panics(&s, &fallback, &mut |n| n == "b"));
        let even = split(&[("a", 50), ("b", 50)]);
        assert!(
            !panics(&even, &none, &mut |n| n == "a"),
            "exactly half is not below"
        );
    }
}
